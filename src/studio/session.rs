//! The studio's settings and piece, saved between sessions (see [`super::session_file`] for
//! how they are read and written).

use std::path::PathBuf;

use crate::generate::{self, GenerateOptions, Interpolation, Mode};
use crate::models::trained;
use crate::studio::piano_roll::{
    ENTRY_OCTAVES, MAX_KEY_PX, MAX_STEP_PX, MIN_KEY_PX, MIN_STEP_PX, RollView,
};
use crate::studio::score::Score;

use super::app::WAV_LEVELS;
use super::engines::{EngineKind, OtherKind, TrainModel};

/// Settings and the piece, saved between sessions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The piece.
    pub score: Score,
    /// Zoom, scroll and tool.
    pub view: RollView,
    /// Model file in use (None = the shipped default).
    #[serde(default, with = "super::session_file::stored_path")]
    pub model_path: Option<PathBuf>,
    /// Composer A.
    pub composer_a: usize,
    /// Composer B.
    pub composer_b: usize,
    /// Style A is the piece's own (its code, read from the primer as `segue generate` reads it
    /// without `--from`), not composer A's.
    #[serde(default)]
    pub a_is_the_piece: bool,
    /// The slider, 0 = A .. 1 = B.
    pub alpha: f32,
    /// Mode.
    pub mode: Mode,
    /// Steps to generate.
    pub length: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Seed.
    pub seed: u64,
    /// Variations per Generate.
    pub variations: usize,
    /// Loop the selected range while playing.
    pub looping: bool,
    /// Playing, the roll turns to the playhead as it leaves the view.
    #[serde(default = "yes")]
    pub follow_playhead: bool,
    /// The primer file, if one was opened.
    #[serde(default, with = "super::session_file::stored_path")]
    pub primer_path: Option<PathBuf>,
    /// Training: the corpus folder.
    #[serde(default, with = "super::session_file::stored_path")]
    pub train_dir: Option<PathBuf>,
    /// Training: preset.
    pub train_preset: String,
    /// Training: steps.
    pub train_steps: usize,
    /// The generating model.
    #[serde(default)]
    pub engine: EngineKind,
    /// Steps of the primer (the opened file, or the roll) the model hears first.
    #[serde(default = "default_primer_steps")]
    pub primer_steps: usize,
    /// At most this many notes sound in a generated step.
    #[serde(default = "default_max_notes")]
    pub max_notes: usize,
    /// Transition mode: steps over which z moves from A to B (0 = the whole length).
    #[serde(default)]
    pub transition_steps: usize,
    /// How the codes of A and B are mixed.
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    /// How strongly the composers' styles count (see [`generate::composer_code`]).
    #[serde(default = "default_style_strength")]
    pub style_strength: f32,
    /// Training: which model.
    #[serde(default)]
    pub train_model: TrainModel,
    /// Classifier file in use for the style meter and classifier ascent (None = the shipped
    /// one), one trained in the Train panel.
    #[serde(default, with = "super::session_file::stored_path")]
    pub classifier_path: Option<PathBuf>,
    /// Transformer VAE file in use (None = the shipped one), one trained in the Train panel.
    #[serde(default, with = "super::session_file::stored_path")]
    pub tvae_path: Option<PathBuf>,
    /// DCGAN file in use (None = the shipped one), one trained in the Train panel.
    #[serde(default, with = "super::session_file::stored_path")]
    pub gan_path: Option<PathBuf>,
    /// The folder of the run the training monitor showed last (one started or followed): the
    /// next start shows it again, so that it can be continued.
    #[serde(default, with = "super::session_file::stored_path")]
    pub train_run: Option<PathBuf>,
    /// Training: the seed (the held-out pieces, the batches, the initial weights: the same
    /// seed and folder give the same run).
    #[serde(default = "default_train_seed")]
    pub train_seed: u64,
    /// The composer pickers' list when the session was saved: composers A and B are kept by
    /// name at the next start, should its models list other composers (a model lost since).
    #[serde(default)]
    pub composer_names: Vec<String>,
    /// Start playback when a blend the slider asked for arrives and nothing is playing, so
    /// that moving the slider is heard at once.
    #[serde(default = "default_play_blends")]
    pub play_blends: bool,
    /// Training: on the GPU (CUDA device 0), in a build with the `cuda` feature.
    #[serde(default)]
    pub train_on_gpu: bool,
    /// Training the LSTM-VAE: start from the model in use (fine-tuning) where it has the
    /// preset's sizes, rather than from random weights.
    #[serde(default = "default_train_from_model")]
    pub train_from_model: bool,
    /// Open MIDI files with their notes held on while the sustain pedal is down, as a piano
    /// sounds them ([`crate::roll::QuantizeOptions::sustain_pedal`]); off, notes are as long
    /// as written.
    #[serde(default)]
    pub sustain_pedal: bool,
    /// Whether the primer file was read with the sustain pedal applied: it is read so again at
    /// the next start (the Pedal box may have changed since, for files opened later).
    #[serde(default)]
    pub primer_pedal: bool,
    /// The level Export WAV writes at: an integrated loudness in LUFS (as `segue render
    /// --loudness`), as far as a -1 dBFS peak allows; None: the peak at -1 dBFS.
    #[serde(default)]
    pub wav_loudness: Option<f64>,
}

fn default_train_from_model() -> bool {
    true
}

fn default_play_blends() -> bool {
    true
}

impl Session {
    /// The model files in use instead of the shipped ones (the LSTM-VAE's, then the others').
    pub fn model_files(&self) -> impl Iterator<Item = &PathBuf> {
        [
            &self.model_path,
            &self.tvae_path,
            &self.classifier_path,
            &self.gan_path,
        ]
        .into_iter()
        .flatten()
    }

    /// The file of `kind` in use instead of the shipped one, if any.
    pub fn other_path(&mut self, kind: OtherKind) -> &mut Option<PathBuf> {
        match kind {
            OtherKind::TransformerVae => &mut self.tvae_path,
            OtherKind::Classifier => &mut self.classifier_path,
            OtherKind::Dcgan => &mut self.gan_path,
        }
    }

    /// Brings a session read from disk into the ranges the controls allow. A damaged or
    /// hand-edited file must not hang the roll (a zoom of 0 draws endless grid lines) or hand
    /// absurd sizes to the models. Composer numbers are checked when the model loads.
    /// Returns how many notes of the piece were dropped (see [`Score::sanitize`]).
    pub fn sanitize(&mut self) -> usize {
        let within = |v: f32, lo: f32, hi: f32, fallback: f32| {
            if v.is_finite() {
                v.clamp(lo, hi)
            } else {
                fallback
            }
        };
        let d = Session::default();
        let v = &mut self.view;
        v.step_px = within(v.step_px, MIN_STEP_PX, MAX_STEP_PX, d.view.step_px);
        v.key_px = within(v.key_px, MIN_KEY_PX, MAX_KEY_PX, d.view.key_px);
        v.scroll_step = within(v.scroll_step, 0.0, Score::MAX_STEPS as f32, 0.0);
        v.top_pitch = within(v.top_pitch, 0.0, 127.0, d.view.top_pitch);
        v.draw_len = v.draw_len.clamp(1, Score::MAX_STEPS);
        v.entry_octave = v
            .entry_octave
            .clamp(*ENTRY_OCTAVES.start(), *ENTRY_OCTAVES.end());
        self.alpha = within(self.alpha, 0.0, 1.0, d.alpha);
        self.temperature = within(self.temperature, 0.2, 2.0, d.temperature);
        self.style_strength = within(
            self.style_strength,
            0.0,
            generate::MAX_STYLE_STRENGTH,
            d.style_strength,
        );
        self.length = self.length.clamp(16, 2048);
        // One of the box's levels (another would be written but shown as the peak's).
        self.wav_loudness =
            (self.wav_loudness).filter(|l| WAV_LEVELS.iter().any(|w| w.0 == Some(*l)));
        self.primer_steps = self.primer_steps.clamp(1, 512);
        self.max_notes = self.max_notes.clamp(1, 16);
        self.transition_steps = self.transition_steps.min(2048);
        self.variations = self.variations.clamp(1, 8);
        self.train_steps = self.train_steps.clamp(10, 20_000);
        // Sessions of earlier versions named the shipped model's file: an upgraded install
        // would go on with the old one.
        if (self.model_path.as_deref()).is_some_and(trained::is_shipped_default) {
            self.model_path = None;
        }
        self.score.sanitize()
    }
}

fn default_train_seed() -> u64 {
    1
}

fn yes() -> bool {
    true
}

fn default_primer_steps() -> usize {
    GenerateOptions::default().primer_steps
}

fn default_max_notes() -> usize {
    GenerateOptions::default().max_notes
}

fn default_interpolation() -> Interpolation {
    GenerateOptions::default().interpolation
}

fn default_style_strength() -> f32 {
    generate::DEFAULT_STYLE_STRENGTH
}

impl Default for Session {
    fn default() -> Self {
        Session {
            score: Score::new(),
            view: RollView::default(),
            model_path: None,
            composer_a: 0,
            composer_b: 1,
            a_is_the_piece: false,
            alpha: 0.5,
            mode: Mode::Blend,
            length: 256,
            temperature: generate::DEFAULT_TEMPERATURE,
            seed: 1,
            variations: 1,
            looping: false,
            follow_playhead: true,
            primer_path: None,
            train_dir: None,
            train_preset: "studio".into(),
            train_steps: 2000,
            engine: EngineKind::LstmVae,
            primer_steps: default_primer_steps(),
            max_notes: default_max_notes(),
            transition_steps: 0,
            interpolation: default_interpolation(),
            style_strength: default_style_strength(),
            train_model: TrainModel::LstmVae,
            classifier_path: None,
            tvae_path: None,
            gan_path: None,
            train_run: None,
            train_seed: default_train_seed(),
            composer_names: Vec::new(),
            play_blends: default_play_blends(),
            train_on_gpu: false,
            train_from_model: default_train_from_model(),
            sustain_pedal: false,
            primer_pedal: false,
            wav_loudness: None,
        }
    }
}
