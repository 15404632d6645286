//! `segue classify`: a file's composers, whole and window by window.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::midi_files::read_midi;
use super::models::load_classifier;
use segue::fsutil::shown;
use segue::roll::QuantizeOptions;

/// `segue classify`: the composers of a file, ranked, for the whole file and per window.
pub(crate) fn classify_cmd(
    file: &Path,
    model: Option<&Path>,
    window: Option<usize>,
    hop: Option<usize>,
    top: usize,
    json: bool,
) -> Result<()> {
    if top == 0 {
        bail!("--top must be at least 1");
    }
    let clf = load_classifier(model)?;
    let roll = read_midi(file, &QuantizeOptions::default())?;
    if roll.active_cells() == 0 {
        bail!("{}: no notes to classify", shown(file));
    }
    let window = window.unwrap_or_else(|| segue::classify::window_steps(&clf));
    if hop == Some(0) {
        bail!("--hop 0: windows must start at least 1 step apart");
    }
    let verdict =
        segue::classify::classify_roll(&clf, &roll, window, hop.unwrap_or((window / 2).max(1)))
            .with_context(|| format!("--window {window}"))?;
    if json {
        /// The verdict with the file it is about and its length (a batch's outputs say which
        /// file each is).
        #[derive(serde::Serialize)]
        struct FileVerdict<'a> {
            file: std::borrow::Cow<'a, str>,
            steps: usize,
            #[serde(flatten)]
            verdict: &'a segue::classify::Verdict,
        }
        let v = FileVerdict {
            file: file.to_string_lossy(),
            steps: roll.steps(),
            verdict: &verdict,
        };
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!(
        "{} ({} steps), windows of {} steps:",
        shown(file),
        roll.steps(),
        verdict.window
    );
    for (rank, &c) in verdict.ranked().iter().enumerate() {
        out!(
            "{:>3}. {:<14} {:>6.1} %",
            rank + 1,
            verdict.composers[c],
            100.0 * verdict.overall[c]
        );
    }
    if let Some(a) = segue::classify::held_out_accuracy(&clf.manifest) {
        out!(
            "(at its last validation in training, on snippets of pieces it never trained on, this classifier named the right composer {:.0} % of the time; chance {:.0} %; `segue eval classifier` measures it on more)",
            100.0 * a,
            100.0 / verdict.composers.len().max(1) as f64
        );
    }
    // Bars counted along the piece's own metre map.
    let bars = segue::meter::BarMap::new(roll.meters());
    // A window shorter than a bar (a short roll read at its length) is a share of one.
    let bars_of_4_4 = match verdict.window {
        w if w % 16 == 0 => format!("{}", w / 16),
        w => format!("{:.2}", w as f64 / 16.0),
    };
    out!(
        "per window of {} steps ({bars_of_4_4} bars of 4/4; bars below in the piece's metre):",
        verdict.window,
    );
    for (start, p) in &verdict.windows {
        let best: Vec<String> = segue::classify::ranked(p)
            .iter()
            .take(top)
            .map(|&c| format!("{} {:.0}%", verdict.composers[c], 100.0 * p[c]))
            .collect();
        let end = (start + verdict.window).min(roll.steps()).max(start + 1);
        let first = bars.position(*start as f64).floor() as usize;
        let last = (bars.position((end - 1) as f64).floor() as usize).max(first);
        out!("  bars {:>4}-{:<4} {}", first, last, best.join(", "));
    }
    Ok(())
}
