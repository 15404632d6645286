//! Small PNG charts for the evaluation report: grouped bars, lines and a heat map, drawn on an
//! RGB canvas with light grid lines. They carry no text; the report's markdown gives the
//! legend, axis ranges and numbers next to each picture.

use crate::error::Result;

/// Series colours, in order (colour-blind-friendly Okabe-Ito palette).
pub const PALETTE: [[u8; 3]; 8] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [240, 228, 66],
    [0, 114, 178],
    [213, 94, 0],
    [204, 121, 167],
    [120, 120, 120],
];

/// An RGB canvas.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

const MARGIN: usize = 12;

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        let mut c = Canvas {
            width,
            height,
            pixels: vec![255; width * height * 3],
        };
        // Grid: five horizontal lines over the plot area, and the axes.
        for k in 0..=4 {
            let y = MARGIN + k * (height - 2 * MARGIN) / 4;
            c.fill(MARGIN, y, width - 2 * MARGIN, 1, [225, 225, 225]);
        }
        c.fill(MARGIN, height - MARGIN, width - 2 * MARGIN, 1, [60, 60, 60]);
        c.fill(MARGIN, MARGIN, 1, height - 2 * MARGIN, [60, 60, 60]);
        c
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                let i = (yy * self.width + xx) * 3;
                self.pixels[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// Plot-area y of a value in `0..=max`.
    fn y_of(&self, v: f64, max: f64) -> usize {
        let span = (self.height - 2 * MARGIN) as f64;
        let frac = if max > 0.0 {
            (v / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.height - MARGIN - (frac * span).round() as usize
    }

    fn line(&mut self, (x0, y0): (usize, usize), (x1, y1): (usize, usize), rgb: [u8; 3]) {
        let steps = x0.abs_diff(x1).max(y0.abs_diff(y1)).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let x = (x0 as f64 + t * (x1 as f64 - x0 as f64)).round() as usize;
            let y = (y0 as f64 + t * (y1 as f64 - y0 as f64)).round() as usize;
            self.fill(x.saturating_sub(1), y.saturating_sub(1), 3, 3, rgb);
        }
    }

    fn png(&self) -> Result<Vec<u8>> {
        crate::image::encode_rgb(self.width as u32, self.height as u32, &self.pixels)
    }
}

/// Grouped bars: `groups[g][s]` is series `s` in group `g`; the y axis runs from 0 to `max`.
pub fn bars(groups: &[Vec<f64>], max: f64) -> Result<Vec<u8>> {
    let mut c = Canvas::new(480, 240);
    let n = groups.len().max(1);
    let slot = (c.width - 2 * MARGIN) / n;
    for (g, series) in groups.iter().enumerate() {
        let bar = (slot * 3 / 4) / series.len().max(1);
        for (s, v) in series.iter().enumerate() {
            let x = MARGIN + g * slot + slot / 8 + s * bar;
            let top = c.y_of(*v, max);
            let h = c.height - MARGIN - top;
            c.fill(
                x,
                top,
                bar.saturating_sub(1).max(1),
                h,
                PALETTE[s % PALETTE.len()],
            );
        }
    }
    c.png()
}

/// Lines: `series[s][i]` at evenly spaced x; the y axis runs from 0 to `max`.
pub fn lines(series: &[Vec<f64>], max: f64) -> Result<Vec<u8>> {
    let mut c = Canvas::new(480, 240);
    for (s, values) in series.iter().enumerate() {
        let n = values.len();
        let x_of = |i: usize| MARGIN + i * (480 - 2 * MARGIN - 1) / (n.max(2) - 1);
        // One value has no segment: a short mark shows it.
        if n == 1 {
            let y = c.y_of(values[0], max);
            c.line((x_of(0), y), (x_of(0) + 4, y), PALETTE[s % PALETTE.len()]);
        }
        for i in 1..n {
            let a = (x_of(i - 1), c.y_of(values[i - 1], max));
            let b = (x_of(i), c.y_of(values[i], max));
            c.line(a, b, PALETTE[s % PALETTE.len()]);
        }
    }
    c.png()
}

/// A heat map of a square count matrix (rows top to bottom), darker = larger share of its row.
pub fn heatmap(matrix: &[Vec<usize>]) -> Result<Vec<u8>> {
    let n = matrix.len().max(1);
    let cell = 16;
    let mut c = Canvas {
        width: n * cell,
        height: n * cell,
        pixels: vec![255; n * cell * n * cell * 3],
    };
    for (r, row) in matrix.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (k, v) in row.iter().enumerate() {
            let share = *v as f64 / total;
            let level = (255.0 - share * 215.0).round() as u8;
            let rgb = if r == k {
                [level, level, 255]
            } else {
                [255, level, level]
            };
            c.fill(k * cell, r * cell, cell - 1, cell - 1, rgb);
        }
    }
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A curve of one value (a run's first validation) shows, and nothing odd panics.
    #[test]
    fn a_single_value_is_drawn() {
        let empty = lines(&[vec![]], 1.0).unwrap();
        assert_ne!(lines(&[vec![0.5]], 1.0).unwrap(), empty);
        for odd in [f64::NAN, f64::INFINITY, -1.0] {
            lines(&[vec![odd], vec![odd, 0.2]], 1.0).unwrap();
        }
        lines(&[vec![0.5, 0.7]], 0.0).unwrap();
    }
}
