//! The desktop studio (eframe + egui): the app on top of the library. It does no tensor math;
//! models, generation, training and audio run on their own threads.

pub mod app;
pub mod audio;
pub mod engines;
pub mod messages;
pub mod piano_roll;
pub mod plot_words;
pub mod runs;
pub mod score;
pub mod session;
pub mod session_file;
pub mod workers;

pub use app::{Studio, run};
pub use engines::{EngineKind, OtherModels};
pub use session::Session;
