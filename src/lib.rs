//! Segue: a piano-roll studio for neural music generation.
//!
//! The modules follow the data flow: MIDI files ([`midi`]) <-> piano rolls ([`roll`], with
//! [`npy`] and [`image`] views) -> corpus snippets and batches ([`dataset`]) -> audio
//! ([`synth`], [`render`]). [`bench`](mod@bench) measures conversion speed against the Python
//! references.

pub mod ascent;
pub mod bench;
pub mod bench_model;
pub mod classify;
pub mod correlation;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod gan;
pub mod generate;
pub mod image;
pub mod meter;
pub mod midi;
pub mod models;
pub mod npy;
pub mod plot;
pub mod render;
pub mod report;
pub mod roll;
pub mod stats_baseline;
pub mod stop_signal;
pub mod studio;
pub mod synth;
pub mod train;
pub mod train_loop;
pub mod tvae;

pub use error::{Error, MidiProblem, Result};
pub use roll::{QuantizeOptions, Roll};
