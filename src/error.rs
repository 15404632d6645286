//! Typed errors of the Segue library.
//!
//! Every error that comes from a file names that file. Messages are lowercase and say what was
//! expected and what was found, so the CLI and the studio can show them as they are.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written. The I/O error is part of the message (and not a
    /// chained source, so that `{:#}` does not print it twice).
    #[error("{}: {action} failed: {error}", crate::fsutil::shown(.path))]
    Io {
        /// The file (or folder).
        path: PathBuf,
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A MIDI file could not be understood.
    #[error("{}: {problem}", crate::fsutil::shown(.path))]
    Midi {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: MidiProblem,
    },
    /// A file had the wrong content for its kind (npy, cache, weights...).
    #[error("{}: {problem}", crate::fsutil::shown(.path))]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A corpus folder was unusable as a whole.
    #[error("{}: {problem}", crate::fsutil::shown(.path))]
    Corpus {
        /// The corpus folder.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A caller passed an argument outside its valid range.
    #[error("{0}")]
    InvalidArgument(String),
    /// Another training run (another `segue train`, or the studio) holds the run folder.
    #[error(
        "{}: another training run is using this folder (segue train or the studio); \
         wait for it to end, or stop it first",
        crate::fsutil::shown(.path)
    )]
    RunInUse {
        /// The run folder.
        path: PathBuf,
    },
    /// A tensor computation of a model failed (shapes, device, out of memory). Converted
    /// from candle's error without the backtrace candle adds under `RUST_BACKTRACE` (fifty
    /// lines of our frames under a message meant for a musician).
    #[error("tensor computation failed: {0}")]
    Tensor(candle_core::Error),
    /// Long work was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

/// What is wrong with a MIDI file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MidiProblem {
    /// The file is empty.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// The bytes are not a Standard MIDI File.
    #[error("not a standard MIDI file: {0}")]
    NotMidi(String),
    /// The header's time division is unusable.
    #[error("ticks per quarter note must be 1..=32767, but was {0}")]
    BadDivision(u16),
    /// SMPTE time division with an unusable frame rate or resolution.
    #[error("SMPTE time division with {fps} frames/s and {subframes} ticks per frame is unusable")]
    BadTimecode {
        /// Frames per second, as the header gives them.
        fps: u8,
        /// Ticks per frame.
        subframes: u8,
    },
    /// A time value is far beyond anything musical.
    #[error(
        "the piece would be {steps} sixteenth-note steps long (more than the limit of {limit}): absurd delta times or tick values"
    )]
    TooLong {
        /// The length the piece would have, in steps (16th notes).
        steps: u64,
        /// The most steps a piece may have.
        limit: u64,
    },
    /// The file has no readable track at all.
    #[error("no readable track: {0}")]
    NoTracks(String),
    /// The file is larger than any MIDI file Segue reads (it is not read).
    #[error(
        "at least {bytes} bytes, more than the {limit} bytes a MIDI file may have here; is it a MIDI file?"
    )]
    TooLarge {
        /// The size found, in bytes (at least this many).
        bytes: u64,
        /// The most bytes a MIDI file may have.
        limit: u64,
    },
    /// The file holds more notes and other events than Segue keeps of a file.
    #[error("more than {limit} notes and other events, more than a piece Segue opens may hold")]
    TooManyEvents {
        /// The most notes and other events kept of a file.
        limit: usize,
    },
}

impl Error {
    /// Wraps an I/O error with the path and the action that failed.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            error: source,
        }
    }

    /// A MIDI problem in the named file.
    pub fn midi(path: impl Into<PathBuf>, problem: MidiProblem) -> Self {
        Error::Midi {
            path: path.into(),
            problem,
        }
    }

    /// A content problem in the named file.
    pub fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Tensor(without_backtrace(e))
    }
}

/// A candle error with the backtraces in it taken out.
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => without_backtrace(*inner),
        E::Context { inner, context } => E::Context {
            inner: Box::new(without_backtrace(*inner)),
            context,
        },
        E::WithPath { inner, path } => E::WithPath {
            inner: Box::new(without_backtrace(*inner)),
            path,
        },
        other => other,
    }
}

/// A candle error's message, without the backtrace candle adds under `RUST_BACKTRACE`.
pub(crate) fn candle_message(e: candle_core::Error) -> String {
    without_backtrace(e).to_string()
}

/// Wraps a candle error (for `map_err` where `?` cannot convert, e.g. inside closures).
pub(crate) fn candle(e: candle_core::Error) -> Error {
    Error::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candle_error_is_said_without_its_backtrace() {
        let traced = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("sizes must be positive".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let wrapped = candle_core::Error::Context {
            inner: Box::new(traced),
            context: Box::new("loading"),
        };
        assert_eq!(
            Error::from(wrapped).to_string(),
            "tensor computation failed: loading\nsizes must be positive"
        );
    }
}
