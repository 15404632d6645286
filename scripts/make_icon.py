#!/usr/bin/env python3
"""Draws Segue's icon (assets/icon.png, 256 x 256 RGBA): a piano roll whose notes turn from
style A's blue to style B's orange, beside a keyboard. Standard library only:
    python3 scripts/make_icon.py assets/icon.png
"""
import struct
import sys
import zlib

SIZE = 256
RADIUS = 44
BACKGROUND = (34, 38, 46)
BLUE = (70, 140, 230)
ORANGE = (240, 140, 50)
# (first step, steps, pitch row) of each note, on a 16 x 12 grid.
NOTES = [
    (0, 4, 7), (0, 4, 3), (4, 2, 8), (4, 2, 4), (6, 2, 9), (6, 4, 5), (8, 3, 10),
    (8, 2, 2), (10, 2, 6), (11, 3, 9), (12, 4, 4), (13, 3, 11), (14, 2, 7),
]


def inside_rounded(x, y):
    """Whether pixel (x, y) lies in the rounded square."""
    cx = min(max(x, RADIUS), SIZE - 1 - RADIUS)
    cy = min(max(y, RADIUS), SIZE - 1 - RADIUS)
    return (x - cx) ** 2 + (y - cy) ** 2 <= RADIUS ** 2


def mix(a, b, t):
    return tuple(round(p + (q - p) * t) for p, q in zip(a, b))


def draw():
    pixels = [[(0, 0, 0, 0)] * SIZE for _ in range(SIZE)]
    for y in range(SIZE):
        for x in range(SIZE):
            if inside_rounded(x, y):
                pixels[y][x] = BACKGROUND + (255,)
    # The keyboard along the left edge: a white strip, black keys over it, a line between
    # two white keys side by side.
    left, top, bottom, keys_w = 28, 36, 220, 34
    row_h = (bottom - top) / 12
    blacks = (1, 3, 6, 8, 10)
    for y in range(top, bottom):
        for x in range(left, left + keys_w):
            pixels[y][x] = (236, 236, 240, 255)
    for row in range(12):
        y0, y1 = round(top + row * row_h), round(top + (row + 1) * row_h)
        if row in blacks:
            for y in range(y0, y1):
                for x in range(left, left + round(keys_w * 0.6)):
                    pixels[y][x] = (30, 30, 34, 255)
        elif row > 0 and row - 1 not in blacks:
            for x in range(left, left + keys_w):
                pixels[y0][x] = (120, 120, 130, 255)
    # The roll: notes coloured by where they lie, A on the left to B on the right.
    roll_left, roll_right = left + keys_w + 8, 228
    step_w = (roll_right - roll_left) / 16
    for start, steps, row in NOTES:
        x0 = round(roll_left + start * step_w) + 1
        x1 = round(roll_left + (start + steps) * step_w) - 2
        y0 = round(top + (11 - row) * row_h) + 2
        y1 = round(top + (12 - row) * row_h) - 2
        for x in range(x0, x1):
            color = mix(BLUE, ORANGE, (x - roll_left) / (roll_right - roll_left))
            for y in range(y0, y1):
                pixels[y][x] = color + (255,)
    return pixels


def png(pixels):
    raw = b"".join(b"\0" + bytes(c for p in row for c in p) for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        f.write(png(draw()))
