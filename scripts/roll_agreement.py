#!/usr/bin/env python3
"""Agreement of Segue's rolls with the reference tick-quantized roll (symusic method).

Usage: roll_agreement.py REFERENCE_DIR CORPUS_DIR ROLLS_DIR
ROLLS_DIR holds one uint8 T x 128 .npy per corpus file, named by the file's path relative to
CORPUS_DIR with '/' replaced by '__'. Prints one JSON object: files compared, mean and minimum
Jaccard (ones in both / ones in either, over the common length, as roll_convert.py computes
it), files identical, and the worst files.
"""
import glob
import json
import os
import sys

import numpy as np

ref_dir, corpus, rolls_dir = sys.argv[1:4]
sys.path.insert(0, ref_dir)
import roll_convert  # noqa: E402

files = sorted(
    f for f in glob.glob(os.path.join(corpus, "**", "*"), recursive=True)
    if f.lower().endswith((".mid", ".midi")) and os.path.isfile(f)
)
scores, missing = [], []
for f in files:
    rel = os.path.relpath(f, corpus).replace(os.sep, "__")
    ours_path = os.path.join(rolls_dir, rel + ".npy")
    if not os.path.exists(ours_path):
        missing.append(rel)
        continue
    try:
        ref, _, _ = roll_convert.conv_symusic(f)
    except Exception:  # the reference cannot read it: not compared
        missing.append(rel)
        continue
    ours = np.load(ours_path)
    scores.append((roll_convert.jaccard(ours, ref), rel, abs(ours.shape[0] - ref.shape[0])))
scores.sort()
out = dict(
    files=len(scores),
    missing=missing,
    mean=float(np.mean([s[0] for s in scores])) if scores else None,
    min=float(scores[0][0]) if scores else None,
    identical=sum(1 for s in scores if s[0] == 1.0),
    worst=[dict(file=r, jaccard=float(j), length_diff=int(d)) for j, r, d in scores[:5]],
)
print(json.dumps(out))
