//! The commands of `segue`, one module each (`midi_files` for info, roll and render), and
//! what they share: the model files and devices named on the command line (`models`), the
//! corpus folders (`corpus`), the files a command writes (`output_files`), progress bars,
//! stopping on a signal and counts in words.

pub(crate) mod bench;
pub(crate) mod classify;
pub(crate) mod corpus;
pub(crate) mod eval;
pub(crate) mod generate;
pub(crate) mod midi_files;
pub(crate) mod models;
pub(crate) mod output_files;
pub(crate) mod progress;
pub(crate) mod stop;
pub(crate) mod train;
pub(crate) mod wording;
