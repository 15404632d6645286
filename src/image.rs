//! PNG pictures of rolls: time left to right, pitch 127 at the top, brightness by velocity,
//! faint lines at every C and every bar (of the roll's metre map) so the picture can be read.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::roll::{PITCHES, Roll};

/// Encodes the roll as an RGB PNG, `scale` pixels per cell horizontally (1..=8).
pub fn encode_png(roll: &Roll, scale: usize) -> Result<Vec<u8>> {
    let scale = scale.clamp(1, 8);
    let width = (roll.steps().max(1) * scale) as u32;
    let height = PITCHES as u32;
    let mut pixels = vec![0u8; width as usize * PITCHES * 3];
    let mut bar_line = vec![false; roll.steps() + 1];
    let steps = roll.steps() as f64;
    for bar in crate::meter::BarMap::new(roll.meters()).bars(roll.steps(), 0.0, steps) {
        bar_line[bar.start.round() as usize] = true;
    }
    for row in 0..PITCHES {
        let pitch = PITCHES - 1 - row;
        let background: [u8; 3] = if pitch.is_multiple_of(12) {
            [40, 40, 48]
        } else {
            [24, 24, 28]
        };
        for x in 0..width as usize {
            let step = x / scale;
            let velocity = roll.velocity(step, pitch);
            let rgb = if velocity != 0 {
                let level = 110 + (u16::from(velocity) * 145 / 127) as u8;
                [level, (u16::from(level) * 3 / 4) as u8, 60]
            } else if bar_line[step] && x.is_multiple_of(scale) {
                [52, 52, 60]
            } else {
                background
            };
            let i = (row * width as usize + x) * 3;
            pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }
    encode_rgb(width, height, &pixels)
}

/// Encodes `pixels` (8-bit RGB, row by row from the top) as a PNG of `width` x `height`.
pub(crate) fn encode_rgb(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| Error::InvalidArgument(format!("PNG encoding failed: {e}")))?;
        writer
            .write_image_data(pixels)
            .map_err(|e| Error::InvalidArgument(format!("PNG encoding failed: {e}")))?;
    }
    Ok(out)
}

/// Writes the roll as a PNG picture (atomically).
pub fn write_png(path: &Path, roll: &Roll, scale: usize) -> Result<()> {
    let bytes = encode_png(roll, scale).map_err(|e| Error::format(path, e.to_string()))?;
    fsutil::write_atomic(path, &bytes)
}
