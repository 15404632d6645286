//! The studio window: generation controls on the left, the piano roll in the middle, the
//! training monitor on the right, files and transport on top. Each panel is drawn by its own
//! module below this one (`top_bar`, `generation_panel`, `style_meter`, `training_panel`),
//! and what the other threads report is taken in by `reports`; this one
//! holds the window's state and the actions the panels ask for.
//!
//! The window only reads and writes plain state: models, generation, training, audio and file
//! dialogs all live on other threads and report through channels (see [`super::workers`],
//! [`super::audio`]). No tensor math happens here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::accesskit::Live;
use egui::{Color32, RichText, Ui};

use crate::classify::Verdict;
use crate::generate::{self, GenerateOptions, Generated, Mode};
use crate::midi::Song;
use crate::models::ModelKind;
use crate::models::trained::{self, TrainedModel};
use crate::render::{RenderOptions, render_to_wav_noting};
use crate::roll::{QuantizeOptions, Roll};
use crate::studio::audio::{Command, PlayScore, Player};
use crate::studio::engines::{EngineKind, LoadedOther, OtherKind, OtherModels, TrainModel};
use crate::studio::messages::MessageLog;
use crate::studio::piano_roll::{Tool, piano_roll};
use crate::studio::plot_words;
use crate::studio::runs::RunSummary;
use crate::studio::score::{History, Origin, Score};
use crate::studio::session::Session;
use crate::studio::session_file;
use crate::studio::workers::{
    Engine, GenerationRequest, Generator, Primer, StyleA, StyleMeter, TrainPlace, TrainSpec,
    TrainingJob, catching,
};
use crate::train::{self, Metrics, TrainOptions, Validation};
use crate::train_loop::LoopMetrics;

mod generation_panel;
mod reports;
mod style_meter;
mod top_bar;
mod training_panel;

/// Seconds the slider must rest before it regenerates.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// How often a gesture that moves notes at every frame (a drag, a held arrow) sends the piece
/// to the audio thread and the style meter: sending costs the whole piece (a held arrow's frame
/// took 16 ms in a piece of 100 000 notes), and the gesture's end sends it at once.
const SEND_EVERY_IN_GESTURE: Duration = Duration::from_millis(100);

/// The largest seed the studio's seed box holds exactly (its editor works in f64); the command
/// line takes any 64-bit seed.
pub const MAX_STUDIO_SEED: u64 = 1 << 53;

/// The levels Export WAV offers: the peak at -1 dBFS, or a loudness (LUFS) with what uses it.
pub const WAV_LEVELS: [(Option<f64>, &str); 4] = [
    (None, "Peak at -1 dBFS"),
    (Some(-14.0), "-14 LUFS (streaming)"),
    (Some(-16.0), "-16 LUFS (podcasts)"),
    (Some(-23.0), "-23 LUFS (broadcast)"),
];

/// Live state of a training run in the monitor.
#[derive(Default)]
struct TrainingView {
    job: Option<TrainingJob>,
    /// What the run trains (its curves and its "Use" button differ); None: a followed run
    /// whose model file is not written yet.
    model: Option<TrainModel>,
    metrics: Vec<Metrics>,
    /// The classifier's figures, step by step.
    loop_metrics: Vec<LoopMetrics>,
    /// The monitor's curves as last drawn.
    curves: std::cell::RefCell<Curves>,
    last_valid: Option<Validation>,
    status: String,
    checkpoint: Option<PathBuf>,
    total: usize,
    paused: bool,
    /// Whether the followed run is training now (elsewhere): it cannot be continued here.
    live: bool,
}

impl TrainingView {
    /// "Step 12 of 2000", or "Step 12" while the total is unknown (a followed run's manifest
    /// is not written yet).
    fn step_status(&self, step: usize) -> String {
        if self.total > 0 {
            format!("Step {step} of {}", self.total)
        } else {
            format!("Step {step}")
        }
    }
}

/// The studio application.
pub struct Studio {
    /// What is saved between sessions.
    pub session: Session,
    /// Writes the session when eframe asks (None: not saved, as in tests).
    pub saver: Option<session_file::Saver>,
    /// Where training caches the corpus's rolls (the user's cache folder; None: none, as in
    /// tests).
    pub roll_cache: Option<PathBuf>,
    /// Where the training panel's runs go, one folder each (the user's data folder, not the
    /// install's: that may be read-only; None: the weights folder's `user/`).
    pub models_dir: Option<PathBuf>,
    history: History,
    model: Option<Arc<TrainedModel>>,
    model_error: Option<String>,
    primer: Option<Arc<Roll>>,
    player: Option<Player>,
    audio_error: Option<String>,
    /// Whether the window offers to open the sound device again (it failed to open, or the
    /// stream was lost).
    audio_retry: bool,
    /// Opens the sound device ([`Player::open`]; another in tests).
    audio_opener: Arc<dyn Fn() -> Result<Player, String> + Send + Sync>,
    /// Where playback was when the device was lost: a reconnected one starts there.
    lost_at: Option<f64>,
    /// Whether the sound device is still being opened (on a worker thread).
    opening_audio: bool,
    /// The MIDI file opened last (kept through edits): exports are named after it.
    opened_file: Option<PathBuf>,
    generator: Generator,
    job_id: u64,
    job_cancel: Arc<AtomicBool>,
    job_progress: Option<f32>,
    variations: Vec<Generated>,
    chosen_variation: usize,
    /// The seed of the shown variations' first one.
    variations_seed: u64,
    /// Where the running job's primer ends, if notes drawn by hand lie past it (the result
    /// replaces them, which the studio says).
    job_replaces_edits: Option<usize>,
    /// Whether the running job starts from nothing (the classifier ascent, the DCGAN) over a
    /// piece with notes not generated (opened or drawn): its result replaces them all, which
    /// the studio says.
    job_replaces_piece: bool,
    /// Whether the piece was edited while the running job worked (its result replaces the
    /// edit, which the studio says).
    edited_during_job: bool,
    /// Whether an undo or redo was made while the running job worked: its result would
    /// clear what Redo holds, so it waits under Variations instead.
    undone_during_job: bool,
    /// Whether the variations shown have not been put in the piece (they wait to be picked).
    variations_held: bool,
    /// The engine the running (or last) job generates with, for its message.
    job_engine: EngineKind,
    /// What the running (or last) job's message adds about how it was made (a Transformer VAE
    /// transition of one code), from the controls it was asked with.
    job_note: String,
    /// The history's revision when the variation last chosen was put in place: choosing
    /// another before anything else was recorded, undone or redone records no new undo step.
    shown_variation: Option<u64>,
    regenerate_at: Option<Instant>,
    /// Whether the slider asked for the next generation (a blend to be heard).
    blend_asked: bool,
    /// Whether that blend is to start playback (not if playback was stopped since).
    blend_plays: bool,
    /// Whether the slider asked for the running generation.
    job_from_slider: bool,
    /// Whether the running generation makes a piece from nothing (ascent, the DCGAN): when it
    /// arrives, it is what the VAEs continue next, not the file opened before.
    job_from_scratch: bool,
    /// The primer of the last generation the slider's blends start from (None: the next one
    /// takes the file or piece as it is then).
    blend_primer: Option<Primer>,
    /// Whether playback starts when the running generation arrives.
    play_when_done: bool,
    /// The loop range the audio thread was last told.
    sent_loop: Option<(usize, usize)>,
    /// When the piece was last sent to the audio thread, and whether it changed since (a
    /// gesture's edits wait for [`SEND_EVERY_IN_GESTURE`] or its end).
    score_sent: (Instant, bool),
    /// The steps Loop loops: the range of the selection as the Select tool last left it (a
    /// note drawn or clicked with the Draw tool does not move the loop). None: the whole piece.
    loop_span: Option<(usize, usize)>,
    /// The selection's range the loop last followed: the loop moves when the musician changes
    /// the selection, not when the studio lets go of it (a generation, an undo).
    span_followed: Option<(usize, usize)>,
    message: Option<(String, bool)>,
    /// The last error said, kept in view (beside later notes) until dismissed or replaced by
    /// another: a "Generated" note must not hide a failed export.
    standing_error: Option<String>,
    /// Every note said this session, for the Messages window.
    messages: MessageLog,
    /// The Messages window is open.
    show_messages: bool,
    dialogs: Vec<Receiver<DialogResult>>,
    training: TrainingView,
    /// The training panel's list of the runs trained here.
    runs: RunsList,
    show_training: bool,
    others: OtherModels,
    style: Option<StyleMeter>,
    style_id: u64,
    /// What the style meter was last asked to judge: a change of tempo or loudness alone
    /// asks nothing (the classifier reads which notes sound).
    style_asked: Option<crate::studio::score::SoundingKey>,
    verdict: Option<Verdict>,
    /// The piece the shown verdict is of (`style_id` when it is of the piece as it is).
    verdict_id: u64,
    /// Whether closing was held once because the session could not be saved (the next
    /// request closes).
    close_unsaved_said: bool,
    /// The history's revision when the velocity box's current drag or typing recorded its
    /// undo step (another step since, an undo say, makes its next change a step of its own).
    velocity_recorded: Option<u64>,
    /// The same for the tempo box.
    tempo_recorded: Option<u64>,
    /// The history's revision when the last file was opened, and what the piece was then:
    /// any step since that left it otherwise (a deletion, a velocity, the tempo) is work on
    /// the piece, as generated or drawn notes are.
    opened_as: Option<(u64, ScorePrint)>,
    /// Whether the models are still loading after the start.
    loading: bool,
    /// Whether a model was chosen since the start (the start's own then gives way to it).
    model_chosen: bool,
    /// The other models chosen since the start (likewise).
    others_chosen: Vec<OtherKind>,
    /// The order loads (files, models) were asked in.
    loads: LoadOrder,
    /// Whether the window waits to close until the training run has written its checkpoint.
    closing: bool,
    /// When the session was last handed to the saver.
    last_saved: Instant,
    /// The playhead last frame, while playing (see [`Studio::follow_playhead`]).
    last_playhead: Option<f64>,
    /// Exports (MIDI, WAV) being written on worker threads: closing waits for them.
    exports: Arc<Exports>,
    /// Set as the studio ends with an export still rendering: it stops and removes its
    /// half-written file.
    stop_exports: Arc<AtomicBool>,
    /// Whether composer A or B was picked since the start (the last session's then give way).
    composers_picked: bool,
    /// Repaints the window at once (a worker's result).
    wake: Arc<dyn Fn() + Send + Sync>,
    /// Repaints the window within [`TRAINING_REPAINT`]: a training run's reports, which come
    /// with every step (a GPU's many a second), cost at most that many frames.
    wake_soon: Arc<dyn Fn() + Send + Sync>,
}

/// The most often a training run's reports repaint the window (10 frames a second).
pub const TRAINING_REPAINT: Duration = Duration::from_millis(100);

/// The order loads were asked in, and the newest put in place per place (the primer, the
/// LSTM-VAE, the Transformer VAE, the classifier, the DCGAN): a slower, older load that
/// finishes after a newer one is dropped rather than replacing what the musician asked for
/// last.
#[derive(Debug, Default)]
struct LoadOrder {
    asked: u64,
    shown: [u64; 5],
}

/// Where a load puts what it loaded.
#[derive(Debug, Clone, Copy)]
enum LoadPlace {
    Primer,
    LstmVae,
    Other(OtherKind),
}

impl LoadOrder {
    /// The number of a load asked for now.
    fn ask(&mut self) -> u64 {
        self.asked += 1;
        self.asked
    }

    /// Whether load `number` is newer than what `place` holds; if so it is marked there.
    fn admit(&mut self, number: u64, place: LoadPlace) -> bool {
        let shown = &mut self.shown[match place {
            LoadPlace::Primer => 0,
            LoadPlace::LstmVae => 1,
            LoadPlace::Other(kind) => 2 + kind as usize,
        }];
        if *shown > number {
            return false;
        }
        *shown = number;
        true
    }
}

/// The runs in the models folder, as the training panel lists them.
#[derive(Default)]
struct RunsList {
    /// As last listed (on a worker thread); `None`: listed again when the list is shown.
    listed: Option<Vec<RunSummary>>,
    /// A listing is under way.
    listing: bool,
    /// The run whose Remove was pressed, waiting for the second press.
    confirm: Option<PathBuf>,
    /// Counts the times the list went stale: a listing asked for before the last of them is
    /// not shown.
    generation: u64,
}

impl RunsList {
    /// The runs may have changed (a run started, checkpointed, ended, or one was removed):
    /// listed again when shown.
    fn went_stale(&mut self) {
        self.listed = None;
        self.generation += 1;
    }
}

enum DialogResult {
    Open(PathBuf),
    ExportMidi(PathBuf),
    ExportWav(PathBuf),
    TrainDir(PathBuf),
    /// A run folder whose metrics log the monitor is to follow.
    FollowDir(PathBuf),
    Model(PathBuf),
    /// A MIDI file was read (the roll and its damage warnings).
    Opened(PathBuf, Result<Opened, String>),
    /// A MIDI or WAV export finished (a WAV says what it holds: length, gain, loudness); it
    /// counts as being written until this is handled (so that a window closing once its
    /// exports are written says how they went first).
    Written(Result<(PathBuf, Option<String>), String>, Option<Exporting>),
    /// A model file was loaded; the flag: one the user chose (a file, a run's model), which
    /// the generation panel turns to.
    ModelLoaded(PathBuf, Result<LoadedModel, String>, bool),
    /// A file of one of the other models was loaded.
    OtherLoaded(OtherKind, PathBuf, Result<LoadedOther, String>),
    /// A load's result, with its number in the order the loads were asked for.
    Ordered(u64, Box<DialogResult>),
    /// The shipped Transformer VAE, classifier and DCGAN were loaded (and what failed).
    ShippedOthers(OtherModels, Vec<String>),
    /// What the studio loads as it starts.
    Started(Box<Startup>),
    /// The sound device was opened (or why not).
    Audio(Result<Player, String>),
    /// The runs in the models folder were listed, as of that [`RunsList::generation`].
    Runs(u64, Vec<RunSummary>),
    /// A run's folder was removed (or why not).
    RunRemoved(PathBuf, Result<(), String>),
    /// The work panicked, with this message.
    Failed(String),
}

/// What the studio loads as it starts, on a worker thread, so that the window shows at once.
#[derive(Default)]
struct Startup {
    /// The Transformer VAE, classifier and DCGAN, and what failed to load.
    others: OtherModels,
    problems: Vec<String>,
    /// The LSTM-VAE of the last session (or the shipped one).
    model: Option<(PathBuf, Result<LoadedModel, String>)>,
    /// The shipped LSTM-VAE, where the last session's no longer loads.
    fallback: Option<(PathBuf, Result<LoadedModel, String>)>,
    /// The other models the last session used instead of the shipped ones.
    saved_others: Vec<(OtherKind, PathBuf, Result<LoadedOther, String>)>,
    /// The last session's primer file, read again (the models continue it), or why it no
    /// longer reads.
    primer: Option<Result<Roll, String>>,
    /// The file given on the command line.
    opened: Option<(PathBuf, Result<Opened, String>)>,
    /// The last session's training run, if its log is still there.
    last_run: Option<PathBuf>,
}

impl Startup {
    /// Loads everything (the slow part of starting).
    fn load(
        model: Option<PathBuf>,
        saved_others: Vec<(OtherKind, PathBuf)>,
        primer: Option<PathBuf>,
        file: Option<PathBuf>,
        last_run: Option<PathBuf>,
        (primer_pedal, pedal): (bool, bool),
    ) -> Self {
        let saved_others: Vec<_> = (saved_others.into_iter())
            .map(|(kind, path)| {
                let loaded = kind.load(&path);
                (kind, path, loaded)
            })
            .collect();
        // The shipped ones only where the session's own are not there to replace them.
        let shipped: Vec<OtherKind> = (OtherKind::ALL.into_iter())
            .filter(|&k| !saved_others.iter().any(|(s, _, l)| *s == k && l.is_ok()))
            .collect();
        let (others, problems) = OtherModels::load_shipped(&shipped);
        let model = model.map(|p| {
            let p = absolute(p);
            let loaded = load_trained(&p);
            (p, loaded)
        });
        // A model of an earlier session that no longer loads (moved, retrained): the shipped
        // one instead.
        let fallback = match &model {
            Some((path, Err(_))) => trained::default_model_path()
                .filter(|s| std::fs::canonicalize(s).ok() != std::fs::canonicalize(path).ok())
                .map(|s| {
                    let s = absolute(s);
                    let loaded = load_trained(&s);
                    (s, loaded)
                }),
            _ => None,
        };
        Startup {
            others,
            problems,
            model,
            fallback,
            saved_others,
            primer: primer.map(|p| {
                Roll::read_midi(&p, &primer_options(primer_pedal)).map_err(|e| e.to_string())
            }),
            opened: file.map(|f| {
                // Absolute, so that the next start finds it from any folder.
                let f = absolute(f);
                let read = read_primer(&f, pedal);
                (f, read)
            }),
            last_run: last_run.filter(|dir| train::metrics_path(dir).is_file()),
        }
    }
}

/// The exports being written: how many, and to which files.
#[derive(Default)]
struct Exports {
    count: AtomicUsize,
    targets: Mutex<Vec<PathBuf>>,
}

/// One export being written: counted from its start until its worker is done with it, however
/// that ends, and its file listed meanwhile.
struct Exporting(Arc<Exports>, PathBuf);

impl Exporting {
    fn start(exports: &Arc<Exports>, path: &Path) -> Self {
        exports.count.fetch_add(1, Ordering::AcqRel);
        lock(&exports.targets).push(path.to_path_buf());
        Exporting(exports.clone(), path.to_path_buf())
    }
}

impl Drop for Exporting {
    fn drop(&mut self) {
        let mut targets = lock(&self.0.targets);
        if let Some(i) = targets.iter().position(|t| *t == self.1) {
            targets.swap_remove(i);
        }
        drop(targets);
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What tells a piece from another as the musician hears and edits it: its notes (hashed), its
/// tempo and its length.
type ScorePrint = (u64, u64, usize);

fn score_print(score: &Score) -> ScorePrint {
    (
        session_file::notes_hash(&score.notes),
        score.bpm.to_bits(),
        score.length,
    )
}

/// A lock of a mutex that a panic elsewhere while holding it does not make unusable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The monitor's curves by name, each made once and then extended with the lines its log
/// gained (a followed run's log of a day holds 86 400 lines: walking it for every curve at
/// every frame cost 9 ms; made again at every new line, a dozen curves of 20 000 lines took
/// 34 ms of the window's time a step).
type Curves = std::collections::HashMap<String, Curve>;

/// Where the monitor's logs stood: for the LSTM-VAE's and the other models', how many lines
/// and the step of the last.
type LogMark = [(usize, Option<usize>); 2];

/// One curve of the monitor.
#[derive(Default)]
struct Curve {
    /// The logs it was made from.
    made_for: LogMark,
    points: Vec<[f64; 2]>,
    /// `points` thinned for drawing.
    thin: Vec<[f64; 2]>,
}

impl TrainingView {
    /// Where the logs stand now.
    fn log_mark(&self) -> LogMark {
        [
            (self.metrics.len(), self.metrics.last().map(|m| m.step)),
            (
                self.loop_metrics.len(),
                self.loop_metrics.last().map(|m| m.step),
            ),
        ]
    }

    /// Whether the logs hold every line they held at `mark` (they only grew since): else one
    /// was replaced (another run).
    fn extends(&self, mark: LogMark) -> bool {
        let [(lstm, lstm_last), (others, others_last)] = mark;
        let kept = |len: usize, last: Option<usize>, step_at: &dyn Fn(usize) -> Option<usize>| {
            len == 0 || step_at(len - 1) == last
        };
        kept(lstm, lstm_last, &|i| self.metrics.get(i).map(|m| m.step))
            && kept(others, others_last, &|i| {
                self.loop_metrics.get(i).map(|m| m.step)
            })
    }

    /// The curve called `name`, thinned: `make(from)` gives its points from the lines `from.0..`
    /// of the LSTM-VAE's log and `from.1..` of the other models' (all of them the first time,
    /// then those the logs gained; all again where a log was replaced).
    fn curve(
        &self,
        name: &str,
        make: impl FnOnce((usize, usize)) -> Vec<[f64; 2]>,
    ) -> Vec<[f64; 2]> {
        let now = self.log_mark();
        let mut curves = self.curves.borrow_mut();
        if !curves.contains_key(name) {
            // Made from empty logs: every line is new.
            curves.insert(name.to_owned(), Curve::default());
        }
        let Some(curve) = curves.get_mut(name) else {
            return Vec::new();
        };
        if curve.made_for != now {
            let from = if self.extends(curve.made_for) {
                (curve.made_for[0].0, curve.made_for[1].0)
            } else {
                curve.points.clear();
                (0, 0)
            };
            curve.points.extend(make(from));
            curve.thin = thinned(&curve.points);
            curve.made_for = now;
        }
        curve.thin.clone()
    }
}

/// Points a training curve draws at most: a long run's curve is drawn as the means of runs
/// of consecutive points (each frame draws every curve; 20 000 steps would not keep up).
const CURVE_POINTS: usize = 1000;

/// `points` as at most [`CURVE_POINTS`] points: the means of equal runs of consecutive ones.
fn thinned(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    if points.len() <= CURVE_POINTS {
        return points.to_vec();
    }
    let run = points.len().div_ceil(CURVE_POINTS);
    points
        .chunks(run)
        .map(|c| {
            let n = c.len() as f64;
            let (x, y) = c.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
            [x / n, y / n]
        })
        .collect()
}

/// `parent/name`, or `parent/name-2`, `-3`, ... if taken: each training run in the studio
/// gets its own folder, so an earlier model (perhaps the one in use) is never overwritten.
fn unused_folder(parent: &Path, name: &str) -> PathBuf {
    let first = parent.join(name);
    if !first.exists() {
        return first;
    }
    (2u64..)
        .map(|k| parent.join(format!("{name}-{k}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// The window's icon (`assets/icon.png`, made by `scripts/make_icon.py`; the desktop entry
/// `assets/segue.desktop` names the same picture).
pub fn window_icon() -> egui::IconData {
    const PNG: &[u8] = include_bytes!("../../assets/icon.png");
    let decoded = (|| {
        let mut reader = png::Decoder::new(std::io::Cursor::new(PNG))
            .read_info()
            .ok()?;
        let mut rgba = vec![0; reader.output_buffer_size()?];
        let frame = reader.next_frame(&mut rgba).ok()?;
        (frame.color_type == png::ColorType::Rgba && frame.bit_depth == png::BitDepth::Eight).then(
            || {
                rgba.truncate(frame.buffer_size());
                egui::IconData {
                    rgba,
                    width: frame.width,
                    height: frame.height,
                }
            },
        )
    })();
    // The picture is the program's own, checked by a test: a default icon only in theory.
    decoded.unwrap_or_default()
}

/// A model's file, licence and credits in words: "From FILE. Licence: ... Credits: a; b."
fn model_about(path: &Path, licence: &str, credits: &[String]) -> String {
    let mut about = format!("From {}.", path.display());
    if !licence.is_empty() {
        about.push_str(&format!(" Licence: {licence}."));
    }
    if !credits.is_empty() {
        about.push_str(&format!(" Credits: {}.", credits.join("; ")));
    }
    about
}

/// The A <-> B slider's ends in words: "0 is chopin, 1 is debussy" (the composers' names as
/// the model has them; style A may be the piece itself).
fn slider_ends(s: &Session, composers: &[String]) -> String {
    let name = |i: usize| composers.get(i).map_or("", String::as_str);
    let a = match s.a_is_the_piece {
        true => THE_PIECE,
        false => name(s.composer_a),
    };
    format!("0 is {a}, 1 is {}", name(s.composer_b))
}

/// Says why `shown` is greyed out, on hover and (while it is) as its accessible description:
/// a screen reader does not read a disabled widget's hover text.
fn why_disabled(shown: egui::Response, why: impl Into<String>) -> egui::Response {
    let why = why.into();
    if !shown.enabled() {
        let text = why.clone();
        describe(&shown, || text);
    }
    shown.on_disabled_hover_text(why)
}

/// Gives the widget `shown` an accessible description: what a screen reader says after its
/// name and value (`text` is made only while one is listening).
fn describe(shown: &egui::Response, text: impl FnOnce() -> String) {
    (shown.ctx).accesskit_node_builder(shown.id, |node| node.set_description(text()));
}

/// Names a progress bar for screen readers (it is said as its share done, not as what).
fn say_progress(bar: &egui::Response, what: &str) {
    bar.ctx
        .accesskit_node_builder(bar.id, |node| node.set_label(what));
}

/// Makes the widget `shown` a live region: a screen reader says its text whenever it changes
/// (`Polite`: when the reader is done speaking; `Assertive`: at once, for errors).
fn say_live(shown: &egui::Response, live: Live) {
    (shown.ctx).accesskit_node_builder(shown.id, |node| node.set_live(live));
}

/// Labels a plot that `shown` drew with what it shows, in words, for screen readers
/// ([`plot_words::describe`]).
fn say_plot<R>(
    shown: &egui_plot::PlotResponse<R>,
    title: &str,
    x_name: &str,
    curves: &[(&str, Vec<[f64; 2]>)],
) {
    // Made only when asked for (a screen reader is listening), not every frame.
    (shown.response).widget_info(|| {
        let curves: Vec<plot_words::Curve> = (curves.iter())
            .map(|(name, points)| (*name, points.as_slice()))
            .collect();
        let text = plot_words::describe(title, x_name, &curves);
        egui::WidgetInfo::labeled(egui::Role::Figure, true, text)
    });
}

/// A mode as the Mode picker names it.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Continue => "Continue (A)",
        Mode::Transfer => "Style transfer (B)",
        Mode::Transition => "Transition A to B",
        Mode::Blend => "Blend (slider)",
    }
}

/// Style A's picker's name for the piece's own style.
const THE_PIECE: &str = "the piece itself";

/// What "Open a model file..." opens.
const OPEN_MODEL_HINT: &str = "An LSTM-VAE, Transformer VAE or DCGAN for the generation panel, \
     or a composer classifier for the style meter (files that segue train writes)";

/// Which of the other models the file at `path` holds, by its manifest's "model"; None for
/// an LSTM-VAE, or a manifest that cannot be read (the LSTM-VAE's loader then says why).
fn other_kind_of_file(path: &Path) -> Option<OtherKind> {
    let manifest: serde_json::Value =
        crate::models::weights::read_manifest(&crate::models::weights::manifest_path(path)).ok()?;
    OtherKind::of_kind(ModelKind::from_name(manifest["model"].as_str()?)?)
}

/// `path` made absolute, so that a session finds it again from any folder (where it can be:
/// as it is otherwise). A file system call: made on the worker threads that load models.
fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// An LSTM-VAE loaded on a worker thread.
struct LoadedModel {
    model: Arc<TrainedModel>,
    /// Whether it is a shipped default model (found out there too: the GUI thread does not
    /// look at the disk).
    shipped: bool,
}

/// Loads an LSTM-VAE model file for the studio (on the CPU, where generation runs).
fn load_trained(path: &Path) -> Result<LoadedModel, String> {
    let model = TrainedModel::load(path, &crate::models::Device::Cpu).map_err(|e| e.to_string())?;
    Ok(LoadedModel {
        model: Arc::new(model),
        shipped: trained::is_shipped_default(path),
    })
}

/// A MIDI file read for the studio.
struct Opened {
    /// The roll, with the file's tempo and metre maps.
    roll: Roll,
    /// Its notes for the roll view (made on the reading thread: a long piece's take a while).
    score: Score,
    /// The damage that was skipped.
    warnings: Vec<String>,
    /// What was said of its drums, left out ([`Song::drums_left_out`]).
    drums: Option<String>,
    /// What its sustain pedal comes to ([`Song::pedal_said`]).
    pedal: Option<String>,
    /// Whether it was read with the sustain pedal applied.
    pedalled: bool,
}

/// How the studio reads a MIDI file: as a primer, its notes held on through the sustain pedal
/// where `pedal` asks for it.
fn primer_options(pedal: bool) -> QuantizeOptions {
    QuantizeOptions {
        sustain_pedal: pedal,
        ..QuantizeOptions::primer()
    }
}

/// Reads a MIDI file as a primer roll, with its metre and the damage that was skipped; its
/// notes held on through the sustain pedal where `pedal` asks for it.
fn read_primer(path: &Path, pedal: bool) -> Result<Opened, String> {
    Song::read(path)
        .and_then(|song| {
            Roll::from_song(&song, &primer_options(pedal))
                .map(|roll| {
                    let mut score = Score::from_roll(&roll, Origin::Primer);
                    score.primer_steps = roll.steps();
                    score.copyright = song.copyright.clone();
                    Opened {
                        roll,
                        score,
                        drums: song.drums_left_out(),
                        pedal: (song.pedal_said(pedal)).map(|said| {
                            if pedal {
                                said
                            } else {
                                said + " (Pedal holds them)"
                            }
                        }),
                        pedalled: pedal,
                        warnings: song.warnings,
                    }
                })
                .map_err(|p| crate::Error::midi(path, p))
        })
        .map_err(|e| e.to_string())
}

impl Studio {
    /// A studio on `ctx`, restoring `session`, with `file` as primer if given. `audio` picks
    /// whether to open the sound device (tests run without).
    pub fn new(
        ctx: &egui::Context,
        session: Option<Session>,
        file: Option<PathBuf>,
        audio: bool,
    ) -> Self {
        let repaint = ctx.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || repaint.request_repaint());
        let repaint = ctx.clone();
        let wake_soon: Arc<dyn Fn() + Send + Sync> =
            Arc::new(move || repaint.request_repaint_after(TRAINING_REPAINT));
        // The sound device opens on a worker thread (a slow or hanging sound server must not
        // keep the window from showing); playback is there once it has.
        let audio_error = (!audio).then(|| "Playback off.".to_string());
        let mut session = session.unwrap_or_default();
        // A session read from its file was brought into range there, and said so.
        let left_out = session.sanitize();
        let mut studio = Studio {
            session,
            saver: None,
            roll_cache: crate::dataset::default_cache_dir(),
            models_dir: session_file::data_dir().map(|dir| dir.join("models")),
            history: History::default(),
            model: None,
            model_error: None,
            primer: None,
            player: None,
            audio_error,
            audio_retry: false,
            audio_opener: Arc::new(Player::open),
            lost_at: None,
            opening_audio: audio,
            opened_file: None,
            generator: Generator::start(wake.clone()),
            job_id: 0,
            job_cancel: Arc::new(AtomicBool::new(false)),
            job_progress: None,
            variations: Vec::new(),
            chosen_variation: 0,
            variations_seed: 0,
            job_replaces_edits: None,
            job_replaces_piece: false,
            edited_during_job: false,
            undone_during_job: false,
            variations_held: false,
            job_engine: EngineKind::default(),
            job_note: String::new(),
            shown_variation: None,
            regenerate_at: None,
            blend_asked: false,
            blend_plays: false,
            job_from_slider: false,
            job_from_scratch: false,
            blend_primer: None,
            play_when_done: false,
            sent_loop: None,
            score_sent: (Instant::now(), false),
            loop_span: None,
            span_followed: None,
            message: None,
            standing_error: None,
            messages: MessageLog::default(),
            show_messages: false,
            dialogs: Vec::new(),
            training: TrainingView::default(),
            runs: RunsList::default(),
            show_training: false,
            others: OtherModels::default(),
            style: None,
            style_id: 0,
            style_asked: None,
            verdict: None,
            verdict_id: 0,
            close_unsaved_said: false,
            velocity_recorded: None,
            tempo_recorded: None,
            opened_as: None,
            loading: false,
            model_chosen: false,
            others_chosen: Vec::new(),
            loads: LoadOrder::default(),
            closing: false,
            last_saved: Instant::now(),
            last_playhead: None,
            exports: Arc::default(),
            stop_exports: Arc::default(),
            composers_picked: false,
            wake,
            wake_soon,
        };
        let model = studio.model_path_or_default(studio.session.model_path.clone());
        let saved_others: Vec<(OtherKind, PathBuf)> = (OtherKind::ALL.into_iter())
            .filter_map(|k| Some((k, studio.session.other_path(k).clone()?)))
            .collect();
        let primer = studio.session.primer_path.clone();
        let last_run = studio.session.train_run.clone();
        // The last session's primer as it was read; a file given now as the box says.
        let pedal = (studio.session.primer_pedal, studio.session.sustain_pedal);
        studio.loading = true;
        studio.in_background(move || {
            // A panic while loading must not leave the studio waiting: it is said instead.
            let loaded =
                catching(move || Startup::load(model, saved_others, primer, file, last_run, pedal));
            DialogResult::Started(Box::new(loaded.unwrap_or_else(|e| Startup {
                problems: vec![format!("loading the models failed: {e}")],
                ..Startup::default()
            })))
        });
        if left_out > 0 {
            studio.say(left_out_message(left_out, None), true);
        }
        if audio {
            studio.reopen_audio();
        }
        studio.push_score();
        studio
    }

    /// Puts what was loaded at the start in place: the models, the last session's primer, the
    /// file given on the command line. What the user did meanwhile wins: a model chosen, a
    /// piece changed (opened, generated, edited) is not replaced. An error said meanwhile (a
    /// damaged session file) is said on with this one's.
    fn use_startup(&mut self, s: Startup) {
        self.loading = false;
        let earlier = self.standing_error.clone();
        // The last session's choice, unless composers were picked meanwhile (with a model
        // chosen while these loaded).
        let saved_names = self.session.composer_names.clone();
        let saved_choice = (self.session.composer_a, self.session.composer_b);
        let mut others = s.others;
        let mut problems = s.problems;
        // A model chosen meanwhile wins over the last session's.
        for &kind in &self.others_chosen {
            others.take_kind(kind, &self.others);
        }
        for (kind, path, loaded) in s.saved_others {
            if self.others_chosen.contains(&kind) {
                continue;
            }
            match loaded {
                Ok(m) => others.put(m),
                Err(e) => {
                    let shipped = if others.has(kind) {
                        format!("; using the shipped {}", kind.name())
                    } else {
                        String::new()
                    };
                    problems.push(format!(
                        "could not load the {} {}: {e}{shipped}",
                        kind.name(),
                        path.display()
                    ));
                    *self.session.other_path(kind) = None;
                }
            }
        }
        self.set_other_models(others);
        // Every error said stays in view: one said meanwhile, the start's problems, the
        // model's and the file's (a note such as "Opened ..." gives way to them).
        let mut errors: Vec<String> = earlier.into_iter().collect();
        if !problems.is_empty() {
            errors.push(problems.join("; "));
        }
        let keep_error = |studio: &mut Studio, errors: &mut Vec<String>| {
            if let Some((m, true)) = &studio.message {
                if !errors.contains(m) {
                    errors.push(m.clone());
                }
                studio.message = None;
            }
        };
        if !self.model_chosen {
            if let Some((path, loaded)) = s.model {
                self.use_model(path, loaded);
            }
            if let Some((path, loaded)) = s.fallback {
                let message = self.message.clone();
                self.use_model(path, loaded);
                match message {
                    Some((m, _)) if self.model.is_some() => {
                        self.say(format!("{m}; using the shipped model"), true);
                    }
                    // The shipped model failed too: both errors are said.
                    Some((m, _)) => errors.push(m),
                    None => {}
                }
            }
            keep_error(self, &mut errors);
        }
        // Composers A and B by name, as the last session left them (the models loaded may
        // list other composers, or the same in another order).
        if !saved_names.is_empty() && !self.composers_picked {
            (self.session.composer_a, self.session.composer_b) = saved_choice;
            self.keep_composers(&saved_names);
        }
        // Every change of the piece is a step of the history.
        let untouched = !self.history.can_undo();
        if untouched && self.session.primer_path.is_some() {
            match s.primer {
                Some(Ok(roll)) => self.primer = Some(Arc::new(roll)),
                // Moved or changed since: the piece on the roll primes instead, and says so
                // (unless a file opened now replaces the primer anyway).
                Some(Err(e)) => {
                    self.session.primer_path = None;
                    if s.opened.is_none() {
                        errors.push(format!(
                            "the file opened last no longer reads ({e}); Generate primes with \
                             the piece on the roll"
                        ));
                    }
                }
                None => {}
            }
        }
        match s.opened {
            Some((path, read)) if untouched => self.use_opened(path, read),
            // What the user did meanwhile wins, but the file asked for is not forgotten
            // without a word.
            Some((path, Ok(_))) => errors.push(format!(
                "{} was not opened over the edits made while the studio started; open it again \
                 to hear it",
                path.display()
            )),
            Some((_, Err(e))) => errors.push(e),
            None => {}
        }
        // The last run in the monitor again (live, should it still train elsewhere), unless
        // a run was started or followed meanwhile.
        if let Some(dir) = s.last_run
            && self.training.job.is_none()
            && self.training.checkpoint.is_none()
        {
            self.training = TrainingView {
                job: Some(TrainingJob::show(dir, self.wake_soon.clone())),
                status: "Reading the last run's log...".into(),
                ..TrainingView::default()
            };
        }
        match self.message.take() {
            Some((now, true)) if !errors.contains(&now) => errors.push(now),
            now => self.message = now,
        }
        if !errors.is_empty() {
            self.say(errors.join("; "), true);
        }
        // The score went to the audio and the style meter in set_other_models (and again in
        // use_opened where a file was opened): nothing else here changes it.
    }

    /// Whether the models are still loading after the start.
    pub fn loading(&self) -> bool {
        self.loading
    }

    /// The loaded model, if any.
    pub fn model(&self) -> Option<&TrainedModel> {
        self.model.as_deref()
    }

    /// Why the last model could not be loaded, if it could not.
    pub fn model_error(&self) -> Option<&str> {
        self.model_error.as_deref()
    }

    /// The message shown in the status bar (text, is-error).
    pub fn message(&self) -> Option<&(String, bool)> {
        self.message.as_ref()
    }

    /// Whether a generation job is running.
    pub fn generating(&self) -> bool {
        self.job_progress.is_some()
    }

    /// Plays through `player` from now on (a detached one: headless, as in tests).
    pub fn use_player(&mut self, player: Player) {
        self.player = Some(player);
        self.audio_error = None;
        self.audio_retry = false;
        self.opening_audio = false;
        // The new engine has no loop yet.
        self.sent_loop = None;
        self.push_score();
        if let (Some(at), Some(p)) = (self.lost_at.take(), &mut self.player) {
            p.send(Command::Seek(at as usize));
        }
    }

    /// Opens the sound device (again) with the studio's opener, as **Reconnect** does.
    pub fn reopen_audio(&mut self) {
        let open = self.audio_opener.clone();
        self.open_audio_with(move || open());
    }

    /// Sets how the studio opens the sound device from now on ([`Player::open`] by default;
    /// a detached player in tests).
    pub fn set_audio_opener(
        &mut self,
        open: impl Fn() -> Result<Player, String> + Send + Sync + 'static,
    ) {
        self.audio_opener = Arc::new(open);
    }

    /// Hands the audio thread the commands waiting for it (looking again soon while some
    /// wait). A stream that stopped for good (its device unplugged, say) is let go and said,
    /// with a way to reconnect; playback then resumes where it was.
    fn check_audio(&mut self, ctx: &egui::Context) {
        if let Some(player) = &mut self.player {
            player.flush();
            if player.has_backlog() {
                ctx.request_repaint_after(Duration::from_millis(10));
            }
        }
        let Some(lost) = self.player.as_ref().and_then(|p| p.transport().lost()) else {
            return;
        };
        self.lost_at = self.playhead();
        self.player = None;
        self.audio_error = Some(format!(
            "Sound stopped: {}. Reconnect when it is back; everything else works.",
            lost.describe()
        ));
        self.audio_retry = true;
    }

    /// Opens the sound device with `open` on a worker thread (`Player::open` as the studio
    /// starts; another opener in tests): meanwhile the window says so, and playback comes once
    /// it has opened.
    pub fn open_audio_with(
        &mut self,
        open: impl FnOnce() -> Result<Player, String> + Send + 'static,
    ) {
        self.audio_error = None;
        self.audio_retry = false;
        self.opening_audio = true;
        self.in_background(move || {
            DialogResult::Audio(
                catching(open)
                    .map_err(|e| format!("opening the sound device failed: {e}"))
                    .and_then(|opened| opened),
            )
        });
    }

    /// Whether the sound device is still being opened.
    pub fn opening_audio(&self) -> bool {
        self.opening_audio
    }

    /// Why there is no playback, if there is none (the device failed to open, or playback
    /// is off).
    pub fn audio_problem(&self) -> Option<&str> {
        self.audio_error.as_deref()
    }

    fn use_audio(&mut self, opened: Result<Player, String>) {
        self.opening_audio = false;
        // A player given meanwhile (a detached one, in tests) stays.
        if self.player.is_some() {
            return;
        }
        match opened {
            Ok(p) => self.use_player(p),
            Err(e) => {
                self.audio_error = Some(format!(
                    "Playback unavailable ({e}); everything else works."
                ));
                self.audio_retry = true;
            }
        }
    }

    /// Where playback is, in steps (None without a player).
    pub fn playhead(&self) -> Option<f64> {
        self.player.as_ref().map(|p| p.transport().position())
    }

    /// Whether the slider has asked for a blend that has not started yet.
    pub fn regenerating(&self) -> bool {
        self.regenerate_at.is_some()
    }

    /// Metrics received from the training run so far.
    pub fn training_metrics(&self) -> &[Metrics] {
        &self.training.metrics
    }

    /// The monitor's figures of a model on the shared loop (the classifier, the Transformer
    /// VAE, the DCGAN), step by step.
    pub fn loop_training_metrics(&self) -> &[LoopMetrics] {
        &self.training.loop_metrics
    }

    /// The model file of the monitor's run (its latest checkpoint, or the finished model).
    pub fn training_checkpoint(&self) -> Option<&Path> {
        self.training.checkpoint.as_deref()
    }

    /// The Transformer VAE, classifier and DCGAN in use.
    pub fn other_models(&self) -> &OtherModels {
        &self.others
    }

    /// The monitor's status line ("Step 12 of 2000", "Finished: ...", "Failed: ...").
    pub fn training_status(&self) -> &str {
        &self.training.status
    }

    /// Stops the run training here at the end of its step, as its Stop button does (it
    /// writes its checkpoint and model first); a followed run is not this studio's to stop.
    pub fn stop_training(&mut self) {
        if let Some(job) = (self.training.job.as_ref()).filter(|j| !j.following) {
            job.control.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Opens or closes the Train panel (the monitor's curves with it).
    pub fn show_training_panel(&mut self, show: bool) {
        self.show_training = show;
    }

    /// Whether a training run is going on.
    pub fn training_running(&self) -> bool {
        self.training.job.is_some()
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        self.messages.push(&text, error);
        if error {
            self.standing_error = Some(text.clone());
        }
        self.message = Some((text, error));
    }

    /// Every note said this session (the Messages window's).
    pub fn messages(&self) -> &MessageLog {
        &self.messages
    }

    /// The error kept in view beside later notes, if any (see [`Studio::dismiss_error`]).
    pub fn standing_error(&self) -> Option<&str> {
        self.standing_error.as_deref()
    }

    /// Takes the standing error out of view (its "x" button).
    pub fn dismiss_error(&mut self) {
        self.standing_error = None;
        if self.message.as_ref().is_some_and(|m| m.1) {
            self.message = None;
        }
    }

    /// Loads a model file (None = the shipped default) on a worker thread; the studio uses it
    /// once it has loaded, and says what went wrong otherwise.
    pub fn load_model(&mut self, path: Option<PathBuf>) {
        let chosen = path.is_some();
        let Some(path) = self.model_path_or_default(path) else {
            return;
        };
        self.model_chosen = true;
        self.in_order(move || {
            let path = absolute(path);
            let loaded = load_trained(&path);
            DialogResult::ModelLoaded(path, loaded, chosen)
        });
    }

    /// Goes back to the models shipped in the weights folder, all four (on worker threads):
    /// the way back from models trained or opened since.
    pub fn use_shipped_models(&mut self) {
        self.load_model(None);
        self.in_order(|| {
            let (others, problems) = OtherModels::load_shipped(&OtherKind::ALL);
            DialogResult::ShippedOthers(others, problems)
        });
    }

    /// Puts the shipped models of `kinds` in place (the others stay as they are: a newer
    /// load put them there).
    fn use_shipped_others(
        &mut self,
        shipped: OtherModels,
        problems: Vec<String>,
        kinds: &[OtherKind],
    ) {
        if kinds.is_empty() {
            return;
        }
        let before = self.composers();
        let mut models = self.others.clone();
        for &kind in kinds {
            *self.session.other_path(kind) = None;
            // Chosen: the start's own, should it come later, gives way.
            if !self.others_chosen.contains(&kind) {
                self.others_chosen.push(kind);
            }
            models.take_kind(kind, &shipped);
        }
        self.set_other_models(models);
        self.keep_composers(&before);
        match problems.is_empty() {
            true => self.say("Using the shipped models", false),
            false => self.say(problems.join("; "), true),
        }
    }

    /// Opens a model file of any of the four kinds (told by its manifest) on a worker thread:
    /// an LSTM-VAE becomes the generation panel's, the others as "Use this ..." makes them.
    pub fn open_model_file(&mut self, path: PathBuf) {
        self.in_order(move || match other_kind_of_file(&path) {
            Some(kind) => {
                let path = absolute(path);
                let loaded = kind.load(&path);
                DialogResult::OtherLoaded(kind, path, loaded)
            }
            None => {
                let path = absolute(path);
                let loaded = load_trained(&path);
                DialogResult::ModelLoaded(path, loaded, true)
            }
        });
    }

    /// Loads a file of one of the other models on a worker thread; once loaded it is the one
    /// the studio uses, at this start and the next ones: a classifier for the style meter and
    /// classifier ascent, a Transformer VAE or DCGAN for the generation panel (which turns
    /// to it).
    pub fn load_other(&mut self, kind: OtherKind, path: PathBuf) {
        self.in_order(move || {
            let path = absolute(path);
            let loaded = kind.load(&path);
            DialogResult::OtherLoaded(kind, path, loaded)
        });
    }

    fn use_other(&mut self, kind: OtherKind, path: PathBuf, loaded: Result<LoadedOther, String>) {
        let model = match loaded {
            Ok(m) => m,
            Err(e) => return self.say(format!("Could not load {}: {e}", path.display()), true),
        };
        let said = match &model {
            LoadedOther::Classifier(c) => format!(
                "The style meter now knows {}",
                c.manifest.composers.join(", ")
            ),
            LoadedOther::TransformerVae(t) => format!(
                "Generating with the Transformer VAE of {}",
                t.manifest.composers.join(", ")
            ),
            LoadedOther::Dcgan(_) => format!("Sampling from the DCGAN {}", path.display()),
        };
        // Loaded: the start's own model of this kind, if it comes later, gives way to it.
        if !self.others_chosen.contains(&kind) {
            self.others_chosen.push(kind);
        }
        let before = self.composers();
        let mut others = self.others.clone();
        others.put(model);
        if kind == OtherKind::Classifier {
            // The style meter listens with the new one.
            self.set_other_models(others);
        } else {
            self.others = others;
        }
        match kind {
            OtherKind::TransformerVae => self.session.engine = EngineKind::TransformerVae,
            OtherKind::Dcgan => self.session.engine = EngineKind::Dcgan,
            OtherKind::Classifier => {}
        }
        self.keep_composers(&before);
        *self.session.other_path(kind) = Some(path);
        self.say(said, false);
    }

    fn model_path_or_default(&mut self, path: Option<PathBuf>) -> Option<PathBuf> {
        let path = path.or_else(trained::default_model_path);
        if path.is_none() {
            self.model_error = Some(format!(
                "No model: {} is missing. Train one in the Train panel.",
                trained::weights_dir()
                    .join(trained::DEFAULT_MODEL_FILE)
                    .display()
            ));
        }
        path
    }

    fn use_model(&mut self, path: PathBuf, loaded: Result<LoadedModel, String>) {
        match loaded {
            Ok(LoadedModel { model: m, shipped }) => {
                // Composers A and B stay the composers they were, where the model knows them.
                let before = self.composers();
                self.model = Some(m);
                self.keep_composers(&before);
                self.model_error = None;
                // Absolute (made so where it was loaded), so the next start finds it from any
                // folder; the shipped one is not named, so that the next start takes the
                // weights shipped then (a newer install's).
                self.session.model_path = (!shipped).then_some(path);
            }
            Err(e) => {
                self.say(format!("Could not load {}: {e}", path.display()), true);
                self.model_error = Some(e);
            }
        }
    }

    /// Runs `work` on a worker thread; its result comes back through the dialog channel and
    /// is handled in [`Studio::poll`] (the GUI thread never waits on files or models).
    fn in_background(&mut self, work: impl FnOnce() -> DialogResult + Send + 'static) {
        let (tx, rx) = channel();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            // A panic is said, not taken for a dialog cancelled.
            let _ = tx.send(catching(work).unwrap_or_else(DialogResult::Failed));
            wake();
        });
        self.dialogs.push(rx);
    }

    /// [`Studio::in_background`] for a load that puts something in place (a primer, a
    /// model): numbered, so that one asked for earlier never replaces one asked for later.
    fn in_order(&mut self, work: impl FnOnce() -> DialogResult + Send + 'static) {
        let number = self.loads.ask();
        self.in_background(move || DialogResult::Ordered(number, Box::new(work())));
    }

    /// Whether file or model work started by the studio is still running (or a file dialog
    /// is open, or the sound device is being opened).
    pub fn background_work(&self) -> bool {
        !self.dialogs.is_empty()
    }

    /// Opens a MIDI file as the primer (and shows it), reading it on a worker thread.
    pub fn open_file(&mut self, path: &Path) {
        let path = path.to_path_buf();
        let pedal = self.session.sustain_pedal;
        self.in_order(move || {
            // Absolute, so that the next start finds it from any folder.
            let path = absolute(path);
            let read = read_primer(&path, pedal);
            DialogResult::Opened(path, read)
        });
    }

    /// The sustain pedal setting was changed: the opened file is read again with it, where the
    /// piece holds nothing but that file's notes (generated or edited notes are not replaced
    /// for it: the setting then applies to the next file opened).
    fn pedal_changed(&mut self) {
        let Some(path) = self.session.primer_path.clone() else {
            return;
        };
        // A generation on its way counts as work: the file read again would cancel it. While
        // other file work runs (another file being opened, say), reading this one again could
        // land after it and replace it.
        let worked = self.generating() || self.worked_on();
        let busy = self.background_work();
        if !worked && !busy && path.is_file() {
            self.open_file(&path);
            return;
        }
        let (opened, again) = if self.session.sustain_pedal {
            ("with the sustain pedal applied", "with it")
        } else {
            ("without the sustain pedal", "without it")
        };
        let why = if worked {
            format!(
                "the piece keeps its generated and edited notes (open {} again to hear it \
                 {again})",
                path.display()
            )
        } else if busy {
            format!("open {} again to hear it {again}", path.display())
        } else {
            format!("{} is no longer there to read again", path.display())
        };
        self.say(
            format!("Files opened from now on are read {opened}; {why}"),
            false,
        );
    }

    /// Puts a file read by [`Studio::open_file`] (or at the start) in place as the primer.
    fn use_opened(&mut self, path: PathBuf, read: Result<Opened, String>) {
        match read {
            Ok(Opened {
                roll,
                score,
                warnings,
                drums,
                pedal,
                pedalled,
            }) => {
                self.cancel_generation();
                self.blend_primer = None;
                // A piece with work in it (generated or edited notes) is kept only by the undo
                // history, which does not outlive the studio: said with the opening.
                let replaced_work = self.worked_on();
                let mut keep = String::new();
                for said in drums.iter().chain(&pedal) {
                    keep += &format!("; {said}");
                }
                if replaced_work {
                    keep += "; Ctrl+Z brings back the piece it replaced (export that to keep it)";
                }
                self.record_step();
                self.session.score = score;
                self.forget_notes(false);
                self.primer = Some(Arc::new(roll));
                self.variations.clear();
                self.variations_held = false;
                self.push_score();
                self.rewind_if_stopped();
                self.opened_file = Some(path.clone());
                self.opened_as = Some((self.history.revision(), score_print(&self.session.score)));
                // A damaged file opens with what was readable; the damage is said, in red.
                match warnings.as_slice() {
                    [] => self.say(format!("Opened {}{keep}", path.display()), false),
                    [first, rest @ ..] => {
                        let more = match rest.len() {
                            0 => String::new(),
                            n => format!(" (and {n} more)"),
                        };
                        self.say(
                            format!("Opened {} with damage: {first}{more}{keep}", path.display()),
                            true,
                        );
                    }
                }
                self.session.primer_path = Some(path);
                self.session.primer_pedal = pedalled;
            }
            Err(e) => self.say(e, true),
        }
    }

    /// Starts an export to `path` on a worker thread, saying `doing`: `write` writes the piece
    /// there and says what it wrote. Refused where an earlier export is still writing `path`
    /// (the later could finish first and be replaced by the older piece), or where `path` is
    /// the file the piece was opened from under any name (on the grid and without drums, the
    /// export would replace the original; looked at on the worker, not the window's thread).
    fn export(
        &mut self,
        path: &Path,
        doing: &str,
        write: impl FnOnce(&Path) -> Result<Option<String>, String> + Send + 'static,
    ) {
        if lock(&self.exports.targets).iter().any(|t| t == path) {
            let why = format!(
                "{} is still being written by an earlier export; export again once it is done",
                path.display()
            );
            return self.say(why, true);
        }
        let path = path.to_path_buf();
        let exporting = Exporting::start(&self.exports, &path);
        let sources: Vec<PathBuf> = [&self.opened_file, &self.session.primer_path]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        self.say(format!("{doing} {}...", path.display()), false);
        self.in_background(move || {
            let written = match sources
                .iter()
                .find(|s| crate::fsutil::same_landing(&path, s))
            {
                Some(source) => Err(format!(
                    "{} is the file the piece was opened from; export to another name (Segue \
                     writes the piece as it holds it: on the sixteenth-note grid, without drums)",
                    source.display()
                )),
                None => write(&path).map(|what| (path, what)),
            };
            DialogResult::Written(written, Some(exporting))
        });
    }

    /// Writes the score as MIDI (on a worker thread).
    pub fn export_midi(&mut self, path: &Path) {
        // The roll is made on the worker: a long piece's is tens of megabytes.
        let score = self.session.score.clone();
        self.export(path, "Writing", move |path| {
            (score.to_roll())
                .write_midi_noting(path, score.copyright.as_deref())
                .map(|()| None)
                .map_err(|e| e.to_string())
        });
    }

    /// Renders the score to a WAV file (on a worker thread: a long piece takes a moment).
    pub fn export_wav(&mut self, path: &Path) {
        let score = self.session.score.clone();
        let stop = self.stop_exports.clone();
        let opts = RenderOptions {
            loudness: self.session.wav_loudness,
            ..RenderOptions::default()
        };
        self.export(path, "Rendering", move |path| {
            let copyright = score.copyright.as_deref();
            let roll = score.to_roll();
            render_to_wav_noting(&roll, &opts, path, copyright, &mut |_| {}, &stop)
                .map(|r| Some(r.describe(&opts)))
                .map_err(|e| e.to_string())
        });
    }

    /// Whether an export is being written.
    pub fn exporting(&self) -> bool {
        self.exports.count.load(Ordering::Acquire) > 0
    }

    /// The primer for generation: the opened file, else the current piece (made into a roll
    /// on the generation thread).
    fn primer(&self) -> Primer {
        match &self.primer {
            Some(roll) => Primer::Opened(roll.clone()),
            None => Primer::Piece(Arc::new(self.session.score.clone())),
        }
    }

    /// The composers the chosen engine knows, in its own order (the DCGAN knows none).
    pub fn composers(&self) -> Vec<String> {
        match self.session.engine {
            EngineKind::LstmVae => self.model.as_ref().map(|m| m.manifest.composers.clone()),
            EngineKind::TransformerVae => self
                .others
                .tvae
                .as_ref()
                .map(|t| t.manifest.composers.clone()),
            EngineKind::ClassifierAscent => self
                .others
                .classifier
                .as_ref()
                .map(|c| c.manifest.composers.clone()),
            EngineKind::Dcgan => None,
        }
        .unwrap_or_default()
    }

    /// The model and inputs the Generate button uses now, or why there are none.
    fn engine(&self) -> Result<Engine, String> {
        let s = &self.session;
        let composers = self.composers();
        let name = |i: usize| composers.get(i).cloned().unwrap_or_default();
        let missing = |what: &str| {
            let dir = trained::weights_dir();
            format!("No {what}: its weights are not in {}.", dir.display())
        };
        match s.engine {
            EngineKind::LstmVae => {
                let model = self.model.clone().ok_or_else(|| {
                    self.model_error
                        .clone()
                        .unwrap_or_else(|| "No model loaded.".into())
                })?;
                let code = |c: usize| {
                    generate::composer_code(&model, c, s.style_strength).map_err(|e| e.to_string())
                };
                Ok(Engine::LstmVae {
                    code_a: self.style_a(code)?,
                    code_b: code(s.composer_b)?,
                    model,
                })
            }
            EngineKind::TransformerVae => {
                let t = self
                    .others
                    .tvae
                    .clone()
                    .ok_or_else(|| missing("Transformer VAE"))?;
                let code = |i: usize| {
                    t.composer_index(&name(i))
                        .ok_or_else(|| format!("the Transformer VAE does not know {}", name(i)))
                        .and_then(|c| {
                            crate::tvae::composer_code(&t, c, s.style_strength)
                                .map_err(|e| e.to_string())
                        })
                };
                Ok(Engine::TransformerVae {
                    code_a: self.style_a(code)?,
                    code_b: code(s.composer_b)?,
                    model: t,
                })
            }
            EngineKind::ClassifierAscent => {
                let c = self
                    .others
                    .classifier
                    .clone()
                    .ok_or_else(|| missing("classifier"))?;
                let target = c.composer_index(&name(s.composer_b)).ok_or_else(|| {
                    format!("the classifier does not know {}", name(s.composer_b))
                })?;
                Ok(Engine::ClassifierAscent {
                    classifier: c,
                    target,
                })
            }
            EngineKind::Dcgan => Ok(Engine::Dcgan {
                model: self.others.gan.clone().ok_or_else(|| missing("DCGAN"))?,
            }),
        }
    }

    /// Style A as chosen: the piece's own, or composer A's code as `code` gives it.
    fn style_a(&self, code: impl Fn(usize) -> Result<Vec<f32>, String>) -> Result<StyleA, String> {
        match self.session.a_is_the_piece {
            true => Ok(StyleA::Primer),
            false => code(self.session.composer_a).map(StyleA::Code),
        }
    }

    /// Starts generating with the current controls (older jobs are cancelled).
    pub fn generate(&mut self) {
        // The slider's regeneration waits for the models of the start.
        if self.loading {
            self.regenerate_at = Some(Instant::now() + DEBOUNCE);
            return;
        }
        let from_slider = std::mem::take(&mut self.blend_asked);
        // The button's job replaces a blend the slider asked for and that has not started.
        self.regenerate_at = None;
        let engine = match self.engine() {
            Ok(e) => e,
            Err(message) => return self.say(message, true),
        };
        self.play_when_done =
            from_slider && std::mem::take(&mut self.blend_plays) && self.session.play_blends;
        self.job_from_slider = from_slider;
        let s = &self.session;
        self.job_cancel.store(true, Ordering::Relaxed);
        self.job_cancel = Arc::new(AtomicBool::new(false));
        self.job_id += 1;
        self.job_progress = Some(0.0);
        self.job_replaces_edits = None;
        self.job_replaces_piece = false;
        self.edited_during_job = false;
        self.undone_during_job = false;
        self.job_engine = self.session.engine;
        // A model of one composer has no modes to move between (its picker is greyed out, on
        // the mode a session kept): it continues.
        let mode = if self.composers().len() == 1 {
            Mode::Continue
        } else {
            s.mode
        };
        let opts = GenerateOptions {
            mode,
            steps: s.length,
            primer_steps: s.primer_steps,
            primer_start: 0,
            temperature: s.temperature,
            max_notes: s.max_notes,
            alpha: s.alpha,
            transition_steps: s.transition_steps.min(s.length),
            interpolation: s.interpolation,
            seed: s.seed,
        };
        self.job_note = self.one_code_transition(self.job_engine, &opts);
        let s = &self.session;
        if let Engine::ClassifierAscent { classifier, .. } = &engine {
            let most = classifier.config.max_steps();
            if s.length > most {
                self.say(
                    format!(
                        "Classifier ascent makes at most {most} steps (the classifier's window); \
                         generating {most}"
                    ),
                    false,
                );
            }
        }
        let primer = match self.session.engine {
            EngineKind::LstmVae | EngineKind::TransformerVae => {
                // The primer of the last generation is kept until the piece is edited (or
                // another file opened): the slider's blends, and another Generate (a new seed,
                // other controls), start from it again, not from the result each one
                // replaced. After an edit, Generate primes with the piece as it is then.
                match &self.blend_primer {
                    Some(kept) => kept.clone(),
                    None => {
                        let primer = self.primer();
                        self.blend_primer = Some(primer.clone());
                        let heard = primer.steps_heard(self.session.primer_steps);
                        // The opened piece's own notes, or drawn ones, past what the model
                        // hears: replaced, which is said (generated ones are expected to go).
                        let past = (self.session.score.notes.iter())
                            .any(|n| n.origin != Origin::Generated && n.start >= heard);
                        self.job_replaces_edits = past.then_some(heard);
                        primer
                    }
                }
            }
            // Ascent starts from noise (a primer would be judged, not continued); the GAN
            // needs nothing. The piece it makes primes what comes next.
            EngineKind::ClassifierAscent | EngineKind::Dcgan => {
                self.blend_primer = None;
                self.job_replaces_piece =
                    (self.session.score.notes.iter()).any(|n| n.origin != Origin::Generated);
                Primer::Empty
            }
        };
        self.job_from_scratch = !self.session.engine.is_vae();
        let s = &self.session;
        self.generator.request(GenerationRequest {
            id: self.job_id,
            engine,
            primer,
            opts,
            variations: s.variations.max(1),
            cancel: self.job_cancel.clone(),
        });
    }

    /// The style meter's latest verdict on the piece, if a classifier is loaded.
    pub fn style_verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// Whether a classifier is loaded, so that the style meter listens to the piece.
    pub fn style_meter_on(&self) -> bool {
        self.style.is_some()
    }

    /// Uses `others` as the Transformer VAE, classifier (and style meter) and DCGAN.
    pub fn set_other_models(&mut self, others: OtherModels) {
        self.style = others
            .classifier
            .clone()
            .map(|c| StyleMeter::start(c, self.wake.clone()));
        self.verdict = None;
        self.style_asked = None;
        self.others = others;
        self.push_score();
    }

    /// Picks the generating model. Composers A and B stay the same composers where the new
    /// model knows them (each model lists its own, perhaps in another order).
    pub fn set_engine(&mut self, engine: EngineKind) {
        let before = self.composers();
        self.session.engine = engine;
        self.keep_composers(&before);
    }

    /// Composers A and B stay the composers they were in `before` (the pickers' list before a
    /// change of model) where the pickers still list them.
    fn keep_composers(&mut self, before: &[String]) {
        let after = self.composers();
        let (a, b) = (self.session.composer_a, self.session.composer_b);
        for chosen in [&mut self.session.composer_a, &mut self.session.composer_b] {
            match (before.get(*chosen))
                .and_then(|name| crate::dataset::composer_position(&after, name))
            {
                Some(i) => *chosen = i,
                None if !after.is_empty() => *chosen = (*chosen).min(after.len() - 1),
                None => {}
            }
        }
        // Two composers do not become one (both clamped to the last of a shorter list): B
        // moves to another, or the slider would blend a composer with itself.
        let s = &mut self.session;
        if a != b && s.composer_a == s.composer_b && after.len() > 1 {
            s.composer_b = (s.composer_a + 1) % after.len();
        }
    }

    /// What a Transformer VAE transition over one snippet or less is, as `generate` says it,
    /// for the job of `engine` with `opts`; else nothing.
    fn one_code_transition(&self, engine: EngineKind, opts: &GenerateOptions) -> String {
        match self.others.tvae.as_ref() {
            Some(t) if engine == EngineKind::TransformerVae && opts.mode == Mode::Transition => {
                crate::tvae::one_code_transition(t, opts.transition_length())
                    .map_or(String::new(), |note| format!(" The {note}."))
            }
            _ => String::new(),
        }
    }

    /// Cancels the running generation, and the one the slider has asked for (a piece
    /// arriving later would replace what the user has in front of them).
    pub fn cancel_generation(&mut self) {
        self.job_cancel.store(true, Ordering::Relaxed);
        self.job_id += 1;
        self.job_progress = None;
        self.regenerate_at = None;
        self.blend_asked = false;
        self.blend_plays = false;
        self.play_when_done = false;
    }

    /// Sets the slider as a user would: the result regenerates after a short rest.
    pub fn set_alpha(&mut self, alpha: f32) {
        self.session.alpha = alpha.clamp(0.0, 1.0);
        // The slider is the blend: moving it asks for one.
        if self.session.engine.is_vae() {
            self.session.mode = Mode::Blend;
        }
        self.ask_blend();
    }

    /// Asks for a blend after a short rest (moves in quick succession ask once), to be heard
    /// when it arrives.
    fn ask_blend(&mut self) {
        self.regenerate_at = Some(Instant::now() + DEBOUNCE);
        self.blend_asked = true;
        self.blend_plays = true;
    }

    /// Picks composers A and B as the pickers do (indices into the model's list). While the
    /// piece is the slider's blend (Blend mode, after a generation), a change blends again
    /// with the same primer, as moving the slider does.
    pub fn pick_composers(&mut self, a: usize, b: usize) {
        self.pick_styles(false, a, b);
    }

    /// Picks style A (the piece's own when `a_is_the_piece`, else composer `a`) and composer
    /// `b`, as the pickers do: a blend shown is made again with them.
    pub fn pick_styles(&mut self, a_is_the_piece: bool, a: usize, b: usize) {
        self.composers_picked = true;
        let s = &mut self.session;
        let now = (a_is_the_piece, a, b);
        let changed = now != (s.a_is_the_piece, s.composer_a, s.composer_b);
        (s.a_is_the_piece, s.composer_a, s.composer_b) = now;
        if changed {
            self.blend_again_if_shown();
        }
    }

    /// Sets the style strength as its slider does (clamped to 0 ..
    /// [`generate::MAX_STYLE_STRENGTH`]; NaN is ignored). While the piece is the slider's
    /// blend, the blend is made again with the same primer, as picking a composer does;
    /// otherwise the next Generate uses it.
    pub fn set_style_strength(&mut self, strength: f32) {
        if strength.is_nan() {
            return;
        }
        let strength = strength.clamp(0.0, generate::MAX_STYLE_STRENGTH);
        if strength != self.session.style_strength {
            self.session.style_strength = strength;
            self.blend_again_if_shown();
        }
    }

    /// Asks for the blend again (with the primer of the last one) if the piece is the
    /// slider's blend: a control of the blend changed.
    fn blend_again_if_shown(&mut self) {
        let s = &self.session;
        if s.engine.is_vae() && s.mode == Mode::Blend && self.blend_primer.is_some() {
            self.ask_blend();
        }
    }

    fn choose_variation(&mut self, k: usize) {
        if k < self.variations.len() {
            self.variations_held = false;
            // Auditioning one variation after another is one step of the history: the piece
            // before them comes back with one undo.
            if self.shown_variation != Some(self.history.revision()) {
                self.record_step();
            }
            let g = &self.variations[k];
            // The result's tempo and metre maps are its primer's (a DCGAN sample has none: one
            // tempo, 4/4); the tempo box stays as it is.
            let bpm = self.session.score.bpm;
            let mut score = Score::from_generated(&g.roll, g.primer_steps, bpm);
            // A continuation of the piece is still made of its notes: the notice stays.
            let continued = g.primer_steps > 0;
            if continued {
                score.copyright = self.session.score.copyright.clone();
            }
            self.session.score = score;
            self.shown_variation = Some(self.history.revision());
            // Another take of the same primer keeps the loop; a DCGAN sample is another piece.
            self.forget_notes(continued);
            self.chosen_variation = k;
            self.push_score();
        }
    }

    /// The status line's notes: the sound device's state (with Reconnect), the last error
    /// (with its dismiss button) and the last message, each cut to the room there is (in full
    /// on hover).
    fn status_notes(&mut self, ui: &mut Ui) {
        // Each note takes what it needs of the room, leaving the buttons theirs and each later
        // note at least LATER_NOTE; a long one is cut.
        const LATER_NOTE: f32 = 200.0;
        let error = self.standing_error.is_some();
        let message = matches!(self.message, Some((_, false)));
        let reconnect = if self.audio_error.is_some() && self.audio_retry {
            90.0
        } else {
            0.0
        };
        let dismiss_button = if error { 30.0 } else { 0.0 };
        // (room the buttons after it need, notes after it) for each note.
        let after = [
            (
                reconnect + dismiss_button,
                usize::from(error) + usize::from(message),
            ),
            (dismiss_button, usize::from(message)),
            (0.0, 0),
        ];
        // Each note is a live region: a screen reader says it as it changes (an error at once).
        let note = |ui: &mut Ui, k: usize, color: Color32, text: &str, live: Live| {
            let (buttons, later) = after[k];
            let room = ui.available_width() - buttons - later as f32 * (LATER_NOTE + 12.0);
            ui.scope(|ui| {
                ui.set_max_width(room.max(40.0));
                let shown = ui.add(egui::Label::new(RichText::new(text).color(color)).truncate());
                say_live(&shown, live);
            });
        };
        // The theme's own colours, legible on a light theme as on a dark one.
        let (warn, error_color, weak) = {
            let v = ui.visuals();
            (v.warn_fg_color, v.error_fg_color, v.weak_text_color())
        };
        if let Some(e) = &self.audio_error {
            note(ui, 0, warn, e, Live::Assertive);
            if self.audio_retry
                && ui
                    .small_button("Reconnect")
                    .on_hover_text("Open the sound device again")
                    .clicked()
            {
                self.reopen_audio();
            }
            ui.separator();
        } else if self.opening_audio {
            note(ui, 0, weak, "Opening the sound device...", Live::Polite);
            ui.separator();
        }
        // The last error stays in view (with its dismiss button) beside later notes.
        let mut dismiss = false;
        if let Some(e) = &self.standing_error {
            note(ui, 1, error_color, e, Live::Assertive);
            let button = ui.small_button("x").on_hover_text("Dismiss the error");
            // Said as what it does, not as the letter it shows.
            let name = || egui::WidgetInfo::labeled(egui::Role::Button, true, "Dismiss the error");
            button.widget_info(name);
            dismiss = button.clicked();
        }
        if let Some((m, false)) = &self.message {
            if self.standing_error.is_some() {
                ui.separator();
            }
            note(ui, 2, weak, m, Live::Polite);
        }
        if dismiss {
            self.dismiss_error();
        }
    }

    /// The selected notes' velocity: shows the first one's, sets all of them (one undo step
    /// per drag or typed value, recorded at its first change); greyed out without a selection.
    fn velocity_box(&mut self, ui: &mut Ui) {
        let score = &self.session.score;
        let selection = &self.session.view.selection;
        let mut velocity = selection
            .first()
            .and_then(|&i| score.notes.get(i))
            .map_or(crate::roll::DEFAULT_VELOCITY, |n| n.velocity);
        let label = ui.label("Velocity");
        let r = ui
            .add_enabled(
                !selection.is_empty(),
                egui::DragValue::new(&mut velocity).range(1..=127),
            )
            .labelled_by(label.id)
            .on_hover_text("How hard the selected notes are struck (1-127)");
        if r.changed() {
            if self.velocity_recorded != Some(self.history.revision()) {
                self.record_step();
                self.velocity_recorded = Some(self.history.revision());
            }
            let selection = self.session.view.selection.clone();
            self.session.score.set_velocity(&selection, velocity);
            self.edited_by_hand();
        }
        if !r.dragged() && !r.has_focus() {
            self.velocity_recorded = None;
        }
    }

    /// Whether the piece holds work of the user's: notes generated or drawn, or a change
    /// since the file it holds was opened (a deletion, a velocity, the tempo; not an undo
    /// and its redo).
    fn worked_on(&self) -> bool {
        let score = &self.session.score;
        (score.notes.iter()).any(|n| n.origin != Origin::Primer)
            || (self.opened_as.as_ref()).is_some_and(|(at, print)| {
                *at != self.history.revision() && *print != score_print(score)
            })
    }

    /// Records the piece as it is as the step an edit goes back to (what a gesture in the
    /// roll moved settled first: no overlap it made is recorded).
    fn record_step(&mut self) {
        self.session.view.settle_now(&mut self.session.score);
        self.history.record(&self.session.score);
    }

    /// Undoes the last step, or redoes the last one undone (`forward`).
    fn undo_or_redo(&mut self, forward: bool) {
        // An overlap a gesture in progress made goes no further than it: settled first.
        self.session.view.settle_now(&mut self.session.score);
        let changed = if forward {
            self.history.redo(&mut self.session.score)
        } else {
            self.history.undo(&mut self.session.score)
        };
        if changed {
            self.undone_during_job |= self.generating();
            // The loop, a range of steps of the same piece, stays.
            self.forget_notes(true);
            self.edited_by_hand();
        }
    }

    /// The piece changed by hand (an edit, undo, redo): from now on the models hear the piece
    /// as it is, not the file opened before.
    fn edited_by_hand(&mut self) {
        self.primer = None;
        self.blend_primer = None;
        self.session.primer_path = None;
        // A blend asked for before the edit would replace it when it arrives: called off. (A
        // generation the button asked for goes on, and undo brings the edit back.)
        if self.regenerate_at.is_some() || (self.job_from_slider && self.generating()) {
            self.cancel_generation();
            self.say("Blend called off: the piece was edited", false);
        }
        self.edited_during_job |= self.generating();
        if self.score_send_due() {
            self.push_score();
        } else {
            self.score_sent.1 = true;
        }
    }

    /// Whether an edit may be sent on now: outside a gesture, or [`SEND_EVERY_IN_GESTURE`]
    /// after the last send.
    fn score_send_due(&self) -> bool {
        !self.session.view.in_gesture() || self.score_sent.0.elapsed() >= SEND_EVERY_IN_GESTURE
    }

    /// Whether the audio thread and the style meter have the piece as it stands (a gesture's
    /// edits reach them every 100 ms and at its end).
    pub fn piece_sent(&self) -> bool {
        !self.score_sent.1
    }

    /// Sends the score to the audio thread (playback goes on from the playhead).
    fn push_score(&mut self) {
        self.score_sent = (Instant::now(), false);
        if let Some(meter) = &self.style {
            let key = self.session.score.sounding_key();
            if self.style_asked.as_ref() != Some(&key) {
                self.style_asked = Some(key);
                self.style_id += 1;
                if self.session.score.notes.is_empty() {
                    // Silence has no style.
                    self.verdict = None;
                } else {
                    meter.request(self.style_id, self.session.score.clone());
                }
            }
        }
        let score = &self.session.score;
        let play = PlayScore::from_notes(
            score
                .notes
                .iter()
                .map(|n| (n.pitch, n.start, n.len, n.velocity)),
        )
        .with_speed(score.speed());
        let bpm = score.bpm;
        if let Some(p) = &mut self.player {
            p.send(Command::Score(Arc::new(play)));
            p.send(Command::Tempo(bpm));
        }
    }

    /// Whether playback is running.
    pub fn playing(&self) -> bool {
        self.player
            .as_ref()
            .is_some_and(|p| p.transport().playing())
    }

    fn toggle_play(&mut self) {
        if self.playing() {
            // A blend on its way no longer starts playback the musician has just stopped.
            self.play_when_done = false;
            self.blend_plays = false;
            if let Some(p) = &mut self.player {
                p.send(Command::Stop);
            }
        } else {
            self.start_playback(false);
        }
    }

    /// A new piece (a file opened, a generation) while stopped: the playhead goes back to the
    /// start (of the loop), so Space plays it from there. Playing, it plays on.
    fn rewind_if_stopped(&mut self) {
        if !self.playing() {
            self.seek_to_start();
        }
    }

    /// The playhead to the start (of the loop); playing, playback goes on from there.
    fn seek_to_start(&mut self) {
        let start = self.loop_range().map_or(0, |l| l.0);
        if let Some(p) = &mut self.player {
            p.send(Command::Seek(start));
        }
    }

    /// Starts playback: from where the playhead stands (where playback stopped, or where the
    /// ruler was clicked), unless `from_start`, or the playhead is past the piece (or outside
    /// the loop): then from the start (of the loop).
    fn start_playback(&mut self, from_start: bool) {
        let looped = self.loop_range();
        self.play_when_done = false;
        self.blend_plays = false;
        let at = self.playhead().map_or(0, |p| p.max(0.0).floor() as usize);
        // Without a loop playback ends with the last note (the rests after it are silent).
        let (first, end) = looped.unwrap_or((0, self.session.score.last_note_end()));
        let from = if !from_start && (first..end).contains(&at) {
            at
        } else {
            first
        };
        if let Some(p) = &mut self.player {
            p.send(Command::Loop(looped));
            p.send(Command::Play(from));
        }
        self.sent_loop = looped;
    }

    /// Forgets the selection and a drag in progress: their notes belong to a score that was
    /// just replaced (another piece, or the piece an undo or redo brought back). The loop, a
    /// range of steps, stays where `keep_loop` (another take of the same primer: the musician
    /// looping bars of the continuation while moving the slider; an undo), cut to the piece
    /// where it is played ([`Studio::loop_range`]); an opened file loops whole.
    fn forget_notes(&mut self, keep_loop: bool) {
        self.session.view.forget_notes();
        self.span_followed = None;
        if !keep_loop {
            self.loop_span = None;
        }
    }

    /// Playing with Follow on, the roll turns a page to the playhead when it runs past the
    /// view's right edge, or jumps out of a view that was on it (a loop, a seek), or playback
    /// starts out of view; a view scrolled away from the playhead is left where the musician
    /// put it.
    fn follow_playhead(&mut self, playhead: Option<f64>) {
        let now = playhead.filter(|_| self.playing());
        let was = std::mem::replace(&mut self.last_playhead, now);
        let (Some(now), Some(grid)) = (self.last_playhead, self.session.view.grid_rect) else {
            return;
        };
        let view = &mut self.session.view;
        let visible = grid.width() / view.step_px;
        let inside = |step: f64| {
            (f64::from(view.scroll_step)..f64::from(view.scroll_step + visible)).contains(&step)
        };
        // Starting to play turns to the playhead; playing, only a view that was on it.
        let turn = match was {
            None => !inside(now),
            Some(was) => !inside(now) && inside(was),
        };
        // Never under a note being dragged: it would jump a page with the view.
        if self.session.follow_playhead && turn && !view.dragging() {
            view.scroll_step = (now as f32 - 0.1 * visible).max(0.0);
        }
    }

    /// What Loop loops (None: Loop is off): the range the Select tool last selected, or the
    /// whole piece.
    pub fn loop_range(&self) -> Option<(usize, usize)> {
        if !self.session.looping {
            return None;
        }
        // A range of steps an undo took the piece from under is cut to it.
        let steps = self.session.score.steps();
        let span = (self.loop_span)
            .filter(|&(start, _)| start < steps)
            .map(|(start, end)| (start, end.min(steps)));
        span.or((steps > 0).then_some((0, steps)))
    }

    /// The range of the selected notes' steps, if any are selected.
    fn selected_span(&self) -> Option<(usize, usize)> {
        let notes = &self.session.score.notes;
        let selected = || (self.session.view.selection.iter()).filter_map(|&i| notes.get(i));
        Some((
            selected().map(|n| n.start).min()?,
            selected().map(|n| n.end()).max()?,
        ))
    }

    /// Follows the metrics log of a run in `dir` (one started from the command line, say):
    /// its curves fill the monitor as it trains.
    pub fn follow_run(&mut self, dir: PathBuf) {
        if let Some(job) = &self.training.job {
            // The studio's own run goes on (the folder was picked while it started).
            if !job.following {
                return self.say(
                    "A training run is going on: stop it to follow another",
                    true,
                );
            }
            job.control.stop.store(true, Ordering::Relaxed);
        }
        self.session.train_run = Some(dir.clone());
        self.training = TrainingView {
            job: Some(TrainingJob::follow(dir, self.wake_soon.clone())),
            status: "Reading the log...".into(),
            ..TrainingView::default()
        };
    }

    /// Where the next run trains: on the GPU if asked for, in a build with CUDA (a session
    /// saved by such a build trains on the CPU in one without); with the roll cache.
    fn train_place(&self) -> TrainPlace {
        TrainPlace {
            gpu: self.session.train_on_gpu && crate::models::cuda_built(),
            roll_cache: self.roll_cache.clone(),
        }
    }

    /// The LSTM-VAE in use, where a run can start from it: of the chosen preset's sizes,
    /// without a composer prior (the preset has none).
    fn fine_tunable(&self) -> Option<&TrainedModel> {
        let preset = TrainOptions::preset(&self.session.train_preset).ok()?;
        (self.model.as_deref())
            .filter(|m| m.manifest.config.same_sizes(&preset.config) && m.manifest.prior.is_none())
    }

    /// The LSTM-VAE in use, where the next run starts from it: asked for, and it can.
    fn fine_tunes(&self) -> Option<&TrainedModel> {
        let asked =
            self.session.train_from_model && self.session.train_model == TrainModel::LstmVae;
        self.fine_tunable().filter(|_| asked)
    }

    /// Starts training on the chosen folder.
    pub fn start_training(&mut self, dir: PathBuf, out: PathBuf) {
        match &self.training.job {
            Some(job) if job.following => job.control.stop.store(true, Ordering::Relaxed),
            Some(_) => return self.say("A training run is going on: stop it first", true),
            None => {}
        }
        let mut spec = match self.session.train_model {
            TrainModel::LstmVae => match TrainOptions::preset(&self.session.train_preset) {
                Ok(mut o) => {
                    if let Some(from) = self.fine_tunes() {
                        o.fine_tune_from(from.path.clone(), Some(&from.manifest.config));
                    }
                    TrainSpec::LstmVae(o)
                }
                Err(e) => return self.say(e.to_string(), true),
            },
            TrainModel::Classifier => {
                TrainSpec::Classifier(crate::classify::ClassifierOptions::default())
            }
            TrainModel::TransformerVae => {
                TrainSpec::TransformerVae(crate::tvae::TvaeOptions::default())
            }
            TrainModel::Dcgan => TrainSpec::Dcgan(crate::gan::GanOptions::default()),
        };
        spec.set_steps(self.session.train_steps);
        spec.set_seed(self.session.train_seed);
        self.session.train_run = Some(out.clone());
        self.runs.went_stale();
        self.training = TrainingView {
            job: Some(TrainingJob::start(
                dir,
                spec,
                out,
                self.train_place(),
                self.wake_soon.clone(),
            )),
            model: Some(self.session.train_model),
            status: "Starting...".into(),
            ..TrainingView::default()
        };
    }

    /// Closing while a run trains or an export is being written: the window stays until the
    /// run has stopped at the end of its step and written its checkpoint (at most
    /// [`crate::studio::workers::CLOSING_WAIT`]) and the exports are written, saying so.
    fn close_when_work_is_saved(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested()) {
            let mut wait = false;
            if let Some(job) = (self.training.job.as_mut()).filter(|j| !j.following) {
                let until = job.stop_for_closing();
                if Instant::now() < until && !job.ended() {
                    wait = true;
                    self.training.status = "Writing the checkpoint before closing...".into();
                    self.say(
                        "Closing once the training run has written its checkpoint",
                        false,
                    );
                }
            }
            // A second request closes (a long render could otherwise hold the window).
            if self.exporting() && !self.closing {
                wait = true;
                self.say(
                    "Closing once the export is written (close again to close now)",
                    false,
                );
            }
            // The session cannot be written (a full disk, a folder made read-only): closing
            // would lose the piece's changes since the last write. Said, once; the window
            // stays (closing again closes it).
            if !wait && !self.close_unsaved_said && self.last_save_failed() {
                self.close_unsaved_said = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                let problem = (self.saver.as_mut())
                    .and_then(|s| s.problem.take())
                    .map_or(String::new(), |p| format!(" ({p})"));
                self.say(
                    format!(
                        "The session could not be saved{problem}: closing now loses the piece's \
                         latest changes. Export it to keep it, or close again to close anyway"
                    ),
                    true,
                );
                return;
            }
            if wait {
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                self.closing = true;
                ctx.request_repaint_after(Duration::from_millis(100));
                // The piece is on disk now, not only once the window goes: a second Ctrl+C,
                // or a logout, ends the program at once while it waits.
                self.save_session();
            }
        } else if self.closing {
            if self.training.job.as_ref().is_some_and(|j| j.ended()) {
                // Its last reports (the checkpoint, the end) go to the monitor first.
                self.poll_training();
            }
            let done = self.training.job.as_ref().is_none_or(|j| j.ended());
            let until = self.training.job.as_mut().map(|j| j.stop_for_closing());
            if !done && until.is_some_and(|u| Instant::now() >= u) {
                // Not closed behind the musician's back: they choose to wait or to lose the
                // steps since the last checkpoint.
                let waited = crate::studio::workers::CLOSING_WAIT.as_secs();
                self.closing = false;
                self.say(
                    format!(
                        "The training run has not written its checkpoint after {waited} s; the \
                         window stays open (closing again closes it now, losing the steps since \
                         the last checkpoint)"
                    ),
                    true,
                );
            } else if done && self.closing && !self.exporting() {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else if self.closing {
                ctx.request_repaint_after(Duration::from_millis(100));
            }
        }
    }

    /// Says `problem` as an error; a window waiting to close once its work was written stays
    /// open, so that the musician sees it (closing again closes).
    fn failed_while_closing(&mut self, problem: String) {
        if std::mem::take(&mut self.closing) {
            self.say(format!("{problem}; the window stays open"), true);
        } else {
            self.say(problem, true);
        }
    }

    /// The steps the monitor's run has done, as far as its curves show.
    fn training_steps_done(&self) -> usize {
        let lstm = self.training.metrics.last().map(|m| m.step);
        let other = self.training.loop_metrics.last().map(|m| m.step);
        lstm.max(other).unwrap_or(0)
    }

    /// Trains the monitor's run (the studio's own, or one followed) on from its latest
    /// checkpoint to the steps of the slider, with the options it was started with, on the
    /// chosen folder (which must be the corpus it was trained on). Its curves go on where
    /// they are.
    pub fn continue_training(&mut self, corpus: PathBuf) {
        let Some(model) = self.training.checkpoint.clone() else {
            return self.say("No run to continue: start one, or follow one first", true);
        };
        match &self.training.job {
            Some(job) if job.following => job.control.stop.store(true, Ordering::Relaxed),
            Some(_) => return self.say("A training run is going on", true),
            None => {}
        }
        let steps = self.session.train_steps.max(1);
        self.training.job = Some(TrainingJob::resume(
            corpus,
            model,
            steps,
            self.train_place(),
            self.wake_soon.clone(),
        ));
        self.training.paused = false;
        self.training.status = "Continuing...".into();
    }
}

impl eframe::App for Studio {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll(&ctx);
        // Keyboard: Space plays, Ctrl+Z undoes, Ctrl+Shift+Z or Ctrl+Y redoes (held, they
        // repeat; Space held does not, or playback would stutter on and off). Only typing in a
        // text field turns them off: a button or slider with keyboard focus (after Tab) does
        // not, and Space is taken before such a button could read it as a press.
        let typing = ctx.text_edit_focused();
        let (space, undo, redo) = ctx.input_mut(|i| {
            let z = i.key_pressed(egui::Key::Z) && i.modifiers.command;
            let y = i.key_pressed(egui::Key::Y) && i.modifiers.command;
            let is_space = |e: &egui::Event| {
                matches!(e, egui::Event::Key { key: egui::Key::Space, pressed: true, modifiers, .. }
                    if modifiers.is_none())
            };
            let space = i
                .events
                .iter()
                .any(|e| is_space(e) && matches!(e, egui::Event::Key { repeat: false, .. }));
            if !typing {
                i.events.retain(|e| !is_space(e));
            }
            (space, z && !i.modifiers.shift, z && i.modifiers.shift || y)
        });
        if !typing {
            if space {
                self.toggle_play();
            }
            // F6: the keyboard focus to the roll (its arrows, Escape and step input), from
            // wherever Tab left it.
            if ctx.input(|i| i.key_pressed(egui::Key::F6))
                && let Some(id) = self.session.view.roll_id
            {
                ctx.memory_mut(|m| m.request_focus(id));
            }
            // Home: the playhead back to the start (of the loop), and the roll with it.
            if ctx.input(|i| i.key_pressed(egui::Key::Home)) {
                self.seek_to_start();
                let start = self.loop_range().map_or(0, |l| l.0);
                self.session.view.scroll_step = start as f32;
                // Step input's cursor goes with the playhead.
                self.session.view.entry = Some(start);
            }
            // Page Up / Page Down: the roll a page back or on in time (a tenth stays in view).
            let view = &mut self.session.view;
            if let Some(grid) = view.grid_rect {
                let page = 0.9 * grid.width() / view.step_px;
                for (key, direction) in [(egui::Key::PageDown, 1.0), (egui::Key::PageUp, -1.0)] {
                    if ctx.input(|i| i.key_pressed(key)) {
                        view.scroll_step = (view.scroll_step + direction * page)
                            .clamp(0.0, Score::MAX_STEPS as f32);
                    }
                }
            }
            if undo || redo {
                self.undo_or_redo(redo);
            }
        }
        egui::Panel::top("toolbar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| {
            let score = &self.session.score;
            let clock = |seconds: f64| {
                let s = seconds.max(0.0).round() as u64;
                format!("{}:{:02}", s / 60, s % 60)
            };
            // Where the playhead is, in bars and time, and how long the piece lasts.
            let at = self.player.as_ref().map(|p| p.transport().position());
            let mut text = format!(
                "{} notes, {} steps ({})",
                score.notes.len(),
                score.steps(),
                clock(score.seconds_at(score.steps() as f64))
            );
            if let Some(at) = at {
                text = format!(
                    "bar {}, {}  |  {text}",
                    score.bar_map().position(at).floor(),
                    clock(score.seconds_at(at))
                );
            }
            // The position on the right first; the notes on the left are cut to the room left
            // (in full on hover), never drawn over it.
            let right_to_left = egui::Layout::right_to_left(egui::Align::Center);
            ui.with_layout(right_to_left, |ui| {
                ui.label(text);
                ui.separator();
                let log = ui
                    .selectable_label(self.show_messages, "Messages")
                    .on_hover_text("Every note of this session, in full, to read again or copy");
                if log.clicked() {
                    self.show_messages = !self.show_messages;
                }
                ui.separator();
                ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                    self.status_notes(ui)
                });
            });
        });
        if self.show_messages {
            let mut open = true;
            egui::Window::new("Messages")
                .open(&mut open)
                .default_width(520.0)
                .default_height(300.0)
                .show(ui.ctx(), |ui| self.messages.show(ui));
            self.show_messages = open;
            // Its "how long ago" stays true while it is open.
            ui.ctx().request_repaint_after(Duration::from_secs(1));
        }
        if self.style.is_some() {
            egui::Panel::bottom("style")
                .default_size(150.0)
                .show(ui, |ui| self.style_panel(ui));
        }
        egui::Panel::left("generate")
            .default_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.generation_panel(ui));
            });
        if self.show_training {
            egui::Panel::right("train")
                .default_size(340.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| self.training_panel(ui));
                });
        }
        let playhead = self.player.as_ref().map(|p| p.transport().position());
        // The loop follows the selection made with the Select tool, and the Loop switch,
        // while playing; drawing leaves it where it is, and so does the studio letting go of
        // the selection (see `span_followed`).
        if self.session.view.tool == Tool::Select {
            let span = self.selected_span();
            if span != self.span_followed {
                self.loop_span = span;
                self.span_followed = span;
            }
        }
        let looped = self.loop_range();
        if looped != self.sent_loop
            && let Some(p) = &mut self.player
        {
            p.send(Command::Loop(looped));
            self.sent_loop = looped;
        }
        self.follow_playhead(playhead);
        egui::CentralPanel::default().show(ui, |ui| {
            let r = piano_roll(
                ui,
                &mut self.session.score,
                &mut self.session.view,
                &mut self.history,
                playhead,
                looped,
            );
            if r.changed {
                self.edited_by_hand();
            }
            if !self.piece_sent() {
                if self.score_send_due() {
                    self.push_score();
                } else {
                    ui.ctx().request_repaint_after(SEND_EVERY_IN_GESTURE);
                }
            }
            if let Some(p) = r.preview
                && let Some(player) = &mut self.player
            {
                player.send(Command::Preview(p));
            }
            // A click on the ruler moves the playhead: playing, playback jumps there;
            // stopped, Space starts there.
            if let Some(step) = r.seek
                && let Some(player) = &mut self.player
            {
                player.send(Command::Seek(step));
                self.play_when_done = false;
                self.blend_plays = false;
            }
        });
        // The playhead moves while playing. Nothing else repaints on a clock: a generation job
        // wakes the window with its progress (every 5 %), a training run or a followed log
        // with its reports (at most every TRAINING_REPAINT), so that frames do not take the
        // cores the work runs on.
        if self.playing() {
            ctx.request_repaint_after(Duration::from_millis(30));
        }
        // The session is saved (every 30 s) before a frame: one idle frame at least that
        // often, so a change is on disk within a minute even if nothing else happens.
        ctx.request_repaint_after(SAVE_EVERY);
    }

    /// Runs before each frame, and while the window is hidden (minimised) too.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.close_when_work_is_saved(ctx);
        self.check_audio(ctx);
        // The studio saves on its own clock, not eframe's: eframe saves only where it could
        // make its own storage folder.
        if self.last_saved.elapsed() >= SAVE_EVERY {
            self.save_session();
        }
        let mut problem = None;
        if let Some(saver) = &mut self.saver {
            saver.poll();
            if saver.waiting() {
                ctx.request_repaint_after(Duration::from_millis(200));
            }
            // A write that failed is said at once (and tried again at the next save).
            problem = saver.problem.take();
        }
        if let Some(problem) = problem {
            self.say(problem, true);
        }
    }
}

/// How often the session is saved while the studio is open (and once more as it closes).
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

impl Studio {
    /// Hands the session to the saver (written on its thread) and says a failed earlier write
    /// (every [`SAVE_EVERY`], and as the studio ends).
    pub fn save_session(&mut self) {
        let problem = (self.hand_session_to_saver()).and_then(|saver| saver.problem.take());
        if let Some(problem) = problem {
            self.say(problem, true);
        }
    }

    /// Hands the session to the saver, which it returns (none where the session is not kept).
    fn hand_session_to_saver(&mut self) -> Option<&mut session_file::Saver> {
        self.last_saved = Instant::now();
        // The pickers' list (none while the models load: the last session's then stands).
        let names = self.composers();
        if !names.is_empty() {
            self.session.composer_names = names;
        }
        let saver = self.saver.as_mut()?;
        saver.save(&mut self.session);
        Some(saver)
    }

    /// Saves the session now and waits for it: whether it could not be written.
    fn last_save_failed(&mut self) -> bool {
        (self.hand_session_to_saver()).is_some_and(|saver| saver.finish_failed())
    }
}

impl Drop for Studio {
    /// The last save, as the window closes (the saver's own drop waits for it to be written);
    /// an export still rendering (closed a second time without waiting for it) stops and
    /// removes its half-written file.
    fn drop(&mut self) {
        // The window is gone: a last write that fails is said in the terminal.
        self.save_session();
        if let Some(saver) = &mut self.saver {
            saver.finish();
            if let Some(problem) = saver.problem.take() {
                eprintln!("segue: {problem}");
            }
        }
        self.stop_exports.store(true, Ordering::Relaxed);
        // Results no one will read: an export's, written, no longer counts as running.
        self.dialogs.clear();
        crate::studio::workers::wait_until(Instant::now() + Duration::from_secs(2), || {
            !self.exporting()
        });
    }
}

/// The name an export dialog suggests: the opened file's name with `-segue` (so the original
/// is not overwritten by accident), else `segue`; with `extension`.
pub fn export_name(opened: Option<&Path>, extension: &str) -> String {
    let stem = (opened.and_then(Path::file_stem)).map_or("segue".to_string(), |s| {
        format!("{}-segue", s.to_string_lossy())
    });
    format!("{stem}.{extension}")
}

/// `path` as chosen in a save dialog, with the first of `extensions` added where it has none
/// of them (a name typed without one would give a file that a DAW does not recognise).
pub fn with_extension(path: PathBuf, extensions: &[&str]) -> PathBuf {
    let has = (path.extension().and_then(|e| e.to_str()))
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)));
    match (has, extensions.first()) {
        (false, Some(first)) => {
            let mut name = path.into_os_string();
            name.push(format!(".{first}"));
            PathBuf::from(name)
        }
        _ => path,
    }
}

/// What the style meter's verdict is worth: the classifier's accuracy on snippets of pieces
/// it never trained on, as its manifest records it.
pub fn style_meter_caveat(manifest: &crate::models::saved::ModelManifest) -> String {
    let chance = 100.0 / manifest.composers.len().max(1) as f64;
    match crate::classify::held_out_accuracy(manifest) {
        Some(a) => format!(
            "The composer classifier's probabilities along the piece. At its last validation in \
             training, on snippets of pieces it never trained on, it named the right composer \
             {:.0}% of the time (chance {chance:.0}%): a hint of style, not a verdict.",
            100.0 * a
        ),
        None => "The composer classifier's probabilities along the piece (its file records no \
                 accuracy on held-out pieces)."
            .into(),
    }
}

/// How the style meter's errors begin (a good verdict later takes them out of view).
const STYLE_METER_ERROR: &str = "Style meter: ";

/// What the studio says when notes of the last session could not be kept (past the longest
/// piece, or damaged), and where the session as it was is kept, if it is.
pub fn left_out_message(notes: usize, kept: Option<&Path>) -> String {
    let kept = kept.map_or(String::new(), |p| {
        format!("; the session as it was is kept as {}", p.display())
    });
    format!(
        "{notes} note(s) of the last session lay past step {} (the longest piece Segue keeps) \
         or were damaged, and were left out{kept}",
        Score::MAX_STEPS
    )
}

/// How the training monitor says the folder it follows holds no run.
const NO_RUN_YET: &str = "No training run in";

/// What a session file held that the studio could not keep: notes left out, and what this
/// version does not read (the first few places named), and where the file as it was is kept.
pub fn read_problems(read: &session_file::ReadSession, kept: Option<&Path>) -> String {
    let kept_as = kept.map_or(String::new(), |p| {
        format!("; the session as it was is kept as {}", p.display())
    });
    let mut said = Vec::new();
    if let Some(notes) = read.left_out {
        said.push(left_out_message(notes, None));
    }
    if !read.not_read.is_empty() {
        const SHOWN: usize = 4;
        let mut places = read.not_read[..read.not_read.len().min(SHOWN)].join(", ");
        if read.not_read.len() > SHOWN {
            places += &format!(" and {} more", read.not_read.len() - SHOWN);
        }
        said.push(format!(
            "the last session holds what this version of Segue does not read ({places}; a \
             newer version may have written it): settings take their defaults"
        ));
    }
    said.join("; ") + &kept_as
}

/// What the studio found of the last session before its window opened.
enum LastSession {
    /// The session file read whole.
    Whole(Box<Session>),
    /// The session file read in part (notes left out, or what this version does not read).
    Partial(Box<session_file::ReadSession>),
    /// The session file could not be read: why.
    Unreadable(String),
    /// No session file (or no folder for one).
    None,
}

/// Opens the studio window (blocks until it closes). `file` is opened as the primer.
pub fn run(file: Option<PathBuf>) -> Result<(), String> {
    // The last session is read before the window opens, so that no frame waits on it.
    let path = session_file::default_path();
    // One studio keeps the session; a second one open at the same time says so (and leaves
    // the session file to the first).
    let saver = path.clone().map(session_file::Saver::claim);
    let owner = matches!(saver, Some(Ok(_)));
    // Only read here: a file kept aside or copied is so once the window is there to say it
    // (a window that cannot open leaves the file as it was).
    let last = match path.as_deref().map(session_file::read) {
        Some(Ok(Some(read))) if read.left_out.is_none() && read.not_read.is_empty() => {
            LastSession::Whole(Box::new(read.session))
        }
        Some(Ok(Some(read))) => LastSession::Partial(Box::new(read)),
        Some(Err(problem)) => LastSession::Unreadable(problem),
        _ => LastSession::None,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Segue")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true)
            .with_app_id("segue")
            .with_icon(window_icon()),
        ..Default::default()
    };
    let shown = eframe::run_native(
        "Segue",
        options,
        Box::new(move |cc| {
            // Ctrl+C in the terminal closes the window as its close button does: the piece is
            // saved, an export or a training checkpoint is waited for. A second Ctrl+C ends
            // the program at once (a window that no longer answers); signals that come with
            // the first (`timeout -s INT` sends two) are one.
            let ctx = cc.egui_ctx.clone();
            let stops = crate::stop_signal::Stops::new();
            let _ = crate::stop_signal::on_stop(move || {
                if stops.again() {
                    crate::fsutil::remove_unfinished_and_exit(130);
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                ctx.request_repaint();
            });
            let (session, problem) = match last {
                LastSession::Whole(session) => (Some(*session), None),
                // Notes were left out, or what this version does not read: the file as it
                // was is kept beside it (by the studio that keeps the session), since the
                // next save writes the piece without them.
                LastSession::Partial(read) => {
                    let kept = (path.as_deref())
                        .filter(|_| owner)
                        .and_then(session_file::keep_copy);
                    let mut problem = read_problems(&read, kept.as_deref());
                    if owner && kept.is_none() {
                        problem += " (no copy of the file could be kept)";
                    }
                    (Some(read.session), Some(problem))
                }
                LastSession::Unreadable(problem) => {
                    let aside = (path.as_deref())
                        .filter(|_| owner)
                        .and_then(session_file::set_aside);
                    let kept = aside.map_or(String::new(), |p| {
                        format!("; it is kept as {}", p.display())
                    });
                    (None, Some(format!("{problem}{kept}; starting a new piece")))
                }
                // No session file yet: one saved by an earlier Segue in eframe's storage
                // (`Studio::new` brings it into range).
                LastSession::None => (
                    cc.storage
                        .and_then(|s| eframe::get_value::<Session>(s, eframe::APP_KEY)),
                    None,
                ),
            };
            let mut studio = Studio::new(&cc.egui_ctx, session, file, true);
            // Both problems are said, in one message (a second would replace the first).
            let mut problems: Vec<String> = problem.into_iter().collect();
            match saver {
                Some(Ok(saver)) => studio.saver = Some(saver),
                Some(Err(problem)) => problems.push(problem),
                None => problems.push(
                    "No folder to keep the session in (no home folder): this window's piece is \
                     not kept when it closes; export it to keep it"
                        .into(),
                ),
            }
            if !problems.is_empty() {
                studio.say(problems.join("; "), true);
            }
            Ok(Box::new(studio))
        }),
    )
    .map_err(|e| format!("cannot open the studio window: {e}"));
    // Writes still going (an export closed on without waiting, a training checkpoint past
    // its wait) end with the process: their temporary files are removed, not left beside
    // the musician's files, and none is begun or put in place until the process has ended.
    std::mem::forget(crate::fsutil::remove_unfinished_writes());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two files (or models) opened one after the other: whichever finishes last, the
    /// second is what stays; loads of other places do not hold each other back.
    #[test]
    fn an_older_load_never_replaces_a_newer_one() {
        let mut loads = LoadOrder::default();
        let (a, b) = (loads.ask(), loads.ask());
        assert!(loads.admit(b, LoadPlace::Primer));
        assert!(
            !loads.admit(a, LoadPlace::Primer),
            "the older file arrived last"
        );
        let (c, d) = (loads.ask(), loads.ask());
        assert!(loads.admit(c, LoadPlace::Primer));
        assert!(
            loads.admit(d, LoadPlace::Primer),
            "in order, both are shown"
        );
        // A model asked for before the last file still goes in: another place.
        assert!(loads.admit(a, LoadPlace::LstmVae));
        // The shipped models arriving after a newer classifier (admitted place by place) go
        // in everywhere but there.
        let (shipped, classifier) = (loads.ask(), loads.ask());
        assert!(loads.admit(classifier, LoadPlace::Other(OtherKind::Classifier)));
        let places = OtherKind::ALL.map(|kind| loads.admit(shipped, LoadPlace::Other(kind)));
        assert_eq!(places, [true, false, true]);
    }

    #[test]
    fn exports_are_named_after_the_opened_file_and_get_their_extension() {
        assert_eq!(export_name(None, "mid"), "segue.mid");
        let opened = Path::new("/music/chp_op18.mid");
        assert_eq!(export_name(Some(opened), "wav"), "chp_op18-segue.wav");
        let ext = |p: &str| with_extension(PathBuf::from(p), &["mid", "midi"]);
        assert_eq!(ext("/out/chorale"), PathBuf::from("/out/chorale.mid"));
        assert_eq!(ext("/out/chorale.MIDI"), PathBuf::from("/out/chorale.MIDI"));
        assert_eq!(ext("/out/take.2"), PathBuf::from("/out/take.2.mid"));
    }

    #[test]
    fn the_monitors_curves_follow_the_log() {
        let line = |step: usize| LoopMetrics {
            step,
            train: [("loss".to_string(), step as f64)].into_iter().collect(),
            valid: None,
            seconds: 0.0,
        };
        let mut view = TrainingView::default();
        view.loop_metrics.extend((1..=3).map(line));
        let asked = std::cell::RefCell::new(Vec::new());
        let loss = |view: &TrainingView| {
            view.curve("loss", |from| {
                asked.borrow_mut().push(from.1);
                (view.loop_metrics[from.1..].iter())
                    .map(|m| [m.step as f64, m.train["loss"]])
                    .collect()
            })
        };
        assert_eq!(loss(&view).len(), 3);
        // Kept while the log stands (the maker is not asked again), extended as it grows with
        // the new lines only, made again whole where the log was replaced.
        assert_eq!(view.curve("loss", |_| Vec::new()).len(), 3);
        view.loop_metrics.push(line(4));
        view.loop_metrics.push(line(5));
        let curve = loss(&view);
        assert_eq!(curve.len(), 5);
        assert_eq!(curve.last(), Some(&[5.0, 5.0]));
        view.loop_metrics = (1..=2).map(|s| line(s * 10)).collect();
        assert_eq!(loss(&view), [[10.0, 10.0], [20.0, 20.0]]);
        assert_eq!(*asked.borrow(), [0, 3, 0]);
    }

    #[test]
    fn long_curves_are_thinned_to_their_means() {
        let short: Vec<[f64; 2]> = (0..CURVE_POINTS).map(|i| [i as f64, 1.0]).collect();
        assert_eq!(thinned(&short), short);
        let long: Vec<[f64; 2]> = (0..20_000).map(|i| [i as f64, (i % 2) as f64]).collect();
        let thin = thinned(&long);
        assert_eq!(thin.len(), CURVE_POINTS);
        // Runs of 20 steps: their mean step, and the mean of an alternating 0/1 figure.
        assert_eq!(thin[0], [9.5, 0.5]);
        assert_eq!(thin[CURVE_POINTS - 1], [19_989.5, 0.5]);
    }
}
