//! The desktop studio (eframe + egui): the app on top of the library. It does no tensor math;
//! models, generation, training and audio run on their own threads.

pub mod app;
pub mod audio;
pub mod messages;
pub mod piano_roll;
pub mod plot_words;
pub mod runs;
pub mod score;
pub mod session_file;
pub mod workers;

pub use app::{EngineKind, OtherModels, Session, Studio, run};
