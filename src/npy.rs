//! NumPy `.npy` files for rolls, so Python users can `np.load` them.
//!
//! Written: uint8 T x 128, C order, format version 1.0. Read: any of `|u1`, `|b1`, `|i1`,
//! `<i4`, `<i8`, `<f4`, `<f8` with shape (T, 128); a cell is on when its value is > 0.5
//! (model probabilities threshold as expected, 0/1 integers as they are).

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::roll::{PITCHES, Roll};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a binary T x 128 matrix (row-major) as `.npy` bytes.
pub fn encode_u8(steps: usize, cells: &[u8]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({steps}, {PITCHES}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + cells.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(cells);
    out
}

/// Writes the roll's binary matrix as `.npy` (atomically).
pub fn write_roll(path: &Path, roll: &Roll) -> Result<()> {
    fsutil::write_atomic(path, &encode_u8(roll.steps(), &roll.binary()))
}

/// The largest `.npy` file a roll Segue opens can take: the longest piece in the widest
/// dtype (8 bytes a cell) after the largest header NumPy writes (version 1: 64 KiB).
pub const MAX_FILE_BYTES: u64 = 12 + 65_535 + (crate::roll::MAX_STEPS * PITCHES * 8) as u64;

/// Reads a `.npy` matrix of shape (T, 128) as a roll. A file larger than any such roll
/// ([`MAX_FILE_BYTES`]) is refused before it is read.
pub fn read_roll(path: &Path) -> Result<Roll> {
    let bytes = fsutil::read_at_most(path, MAX_FILE_BYTES)?.map_err(|size| {
        Error::format(
            path,
            format!(
                "{size} bytes, more than a roll of the longest piece Segue opens ({} steps) \
                 can take ({MAX_FILE_BYTES} bytes)",
                crate::roll::MAX_STEPS
            ),
        )
    })?;
    let (steps, binary) = decode(&bytes).map_err(|p| Error::format(path, p))?;
    Roll::from_binary(steps, &binary)
}

/// Decodes `.npy` bytes to (T, binary cells).
pub fn decode(bytes: &[u8]) -> std::result::Result<(usize, Vec<u8>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file (bad magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err("truncated .npy header".into()),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    // NumPy keeps a key's last value, a first-found reading its first: refused rather than
    // read otherwise than NumPy does.
    for key in ["descr", "fortran_order", "shape"] {
        if values_of(header, key).count() > 1 {
            return Err(format!("the .npy header names '{key}' more than once"));
        }
    }
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported; save with C order".into());
    }
    let shape = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry '{s}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    if dims.len() != 2 || dims[1] != PITCHES {
        return Err(format!(
            "expected shape (T, 128), but the file has {dims:?}"
        ));
    }
    let steps = dims[0];
    if steps > crate::roll::MAX_STEPS {
        return Err(format!(
            "{steps} steps, longer than the longest piece Segue opens ({} steps)",
            crate::roll::MAX_STEPS
        ));
    }
    let n = steps
        .checked_mul(PITCHES)
        .ok_or("absurd shape in the .npy header")?;
    let data = &bytes[data_start..];
    let (width, on): (usize, fn(&[u8]) -> bool) = match descr {
        // Any nonzero byte (0/1, 0/255 masks) is on; signed bytes must be positive.
        "|u1" | "|b1" | "<u1" => (1, |b| b[0] != 0),
        "|i1" => (1, |b| b[0] != 0 && b[0] < 0x80),
        "<i4" => (4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) > 0),
        "<i8" => (8, |b| {
            i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) > 0
        }),
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) > 0.5),
        "<f8" => (8, |b| {
            f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) > 0.5
        }),
        other => {
            return Err(format!(
                "unsupported dtype '{other}' (use bool, uint8, int8 or little-endian int32, int64, \
                 float32 or float64)"
            ));
        }
    };
    let need = n
        .checked_mul(width)
        .ok_or("absurd shape in the .npy header")?;
    if data.len() < need {
        return Err(format!(
            "truncated: the header promises {need} data bytes but only {} follow",
            data.len()
        ));
    }
    if data.len() > need {
        return Err(format!(
            "{} bytes follow the {need} data bytes the header describes: not one array of \
             that shape",
            data.len() - need
        ));
    }
    let not_a_number = match descr {
        "<f4" => {
            (data.chunks_exact(4)).any(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_nan())
        }
        "<f8" => (data.chunks_exact(8))
            .any(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])).is_nan()),
        _ => false,
    };
    if not_a_number {
        return Err(
            "the array holds values that are not numbers (NaN): no cell can be told \
                    on or off"
                .into(),
        );
    }
    let mut binary: Vec<u8> = data[..need]
        .chunks_exact(width)
        .map(|c| u8::from(on(c)))
        .collect();
    if descr == "|u1" || descr == "<u1" {
        // Any nonzero uint8 (e.g. 0/255 masks) counts as on.
        binary = data[..n].iter().map(|&b| u8::from(b != 0)).collect();
    }
    Ok((steps, binary))
}

/// The text after `'key':` up to the next top-level comma (or the closing parenthesis of a
/// tuple value).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let rest = values_of(header, key).next()?;
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        Some(&rest[..=end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// The header's text after each place `'key':` stands, where it is a key (the quoted name
/// followed by a colon; the same text as a value is not).
fn values_of<'a>(header: &'a str, key: &str) -> impl Iterator<Item = &'a str> {
    let quoted = format!("'{key}'");
    let len = quoted.len();
    let places: Vec<usize> = header.match_indices(&quoted).map(|(at, _)| at).collect();
    places.into_iter().filter_map(move |at| {
        header[at + len..]
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
    })
}

#[cfg(test)]
mod tests {
    use super::dict_value;

    /// A key is read where it is a key: the same quoted text as a value is passed over.
    #[test]
    fn a_key_is_found_where_it_is_a_key_not_a_value() {
        let header = "{'descr': 'shape', 'fortran_order': False, 'shape': (3, 128), }";
        assert_eq!(dict_value(header, "shape"), Some("(3, 128)"));
        assert_eq!(dict_value(header, "descr"), Some("'shape'"));
        assert_eq!(dict_value(header, "fortran_order"), Some("False"));
        assert_eq!(dict_value("{'descr': 'shape', }", "shape"), None);
    }
}
