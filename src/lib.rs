//! Segue: a piano-roll studio for neural music generation.
//!
//! The modules follow the data flow: MIDI files ([`midi`]) <-> piano rolls ([`roll`], with
//! [`npy`] and [`image`] views) -> corpus snippets and batches ([`dataset`]) -> the models
//! ([`models`]: the LSTM-VAE, Transformer VAE, composer classifier and DCGAN, in candle) and
//! their training ([`train`] for the LSTM-VAE, [`train_loop`] for the others, each model's
//! task in [`classify`], [`tvae`] and [`gan`], which also load and use them) -> generation
//! ([`generate`], [`ascent`]) -> audio ([`synth`], [`render`]) and MIDI export
//! ([`Roll::write_midi`]); [`eval`] and [`report`] measure the models, [`bench`](mod@bench)
//! the speed against the Python references, and `studio` (the default feature of that name)
//! is the window on top of it all.
//!
//! A transition from Chopin to Debussy after the start of a piece, with the shipped LSTM-VAE,
//! written as MIDI and WAV, as `segue generate` makes it ([`generate::continue_piece`] ends
//! the primer on a bar line and, without a style A, reads it from the piece;
//! [`generate::generate`] takes any primer and codes):
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//!
//! use segue::generate::{self, GenerateOptions, Mode};
//! use segue::models::trained::{self, TrainedModel};
//! use segue::render::{self, RenderOptions};
//! use segue::{QuantizeOptions, Roll};
//!
//! # fn main() -> segue::Result<()> {
//! let primer = Roll::read_midi(Path::new("piece.mid"), &QuantizeOptions::primer())?;
//! let weights = trained::default_model_path().expect("Segue's weights folder");
//! let model = TrainedModel::load(&weights, &candle_core::Device::Cpu)?;
//! let strength = generate::DEFAULT_STYLE_STRENGTH;
//! let chopin = model.composer_index("Chopin").expect("a composer of the shipped model");
//! let debussy = model.composer_index("Debussy").expect("a composer of the shipped model");
//! let a = generate::composer_code(&model, chopin, strength)?;
//! let b = generate::composer_code(&model, debussy, strength)?;
//! let opts = GenerateOptions {
//!     mode: Mode::Transition,
//!     seed: 7,
//!     ..GenerateOptions::default()
//! };
//! let stop = AtomicBool::new(false);
//! let (a, b) = (Some(a.as_slice()), Some(b.as_slice()));
//! let piece = generate::continue_piece(&model, &primer, a, b, &opts, &mut |_| {}, &stop)?;
//! piece.roll.write_midi(Path::new("chopin-to-debussy.mid"))?;
//! let wav = Path::new("chopin-to-debussy.wav");
//! render::render_to_wav(&piece.roll, &RenderOptions::default(), wav, &mut |_| {}, &stop)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

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
pub mod optim;
pub mod plot;
pub mod render;
pub mod report;
pub mod roll;
pub mod stats_baseline;
pub mod stop_signal;
#[cfg(feature = "studio")]
pub mod studio;
pub mod synth;
pub mod train;
pub mod train_loop;
pub mod tvae;

pub use error::{Error, MidiProblem, Result};
pub use roll::{QuantizeOptions, Roll};
