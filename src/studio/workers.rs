//! Background work of the studio: generation and training run on their own threads and report
//! through channels, so the window never waits (but for a training run at the studio's end,
//! see [`TrainingJob`]'s `Drop`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::ascent::{self, AscentOptions};
use crate::classify::{self, Classifier, Verdict};
use crate::dataset::{Corpus, LoadOptions};
use crate::gan::{self, TrainedGan};
use crate::generate::{self, GenerateOptions, Generated, Mode};
use crate::models::ModelKind;
use crate::models::trained::TrainedModel;
use crate::roll::{QuantizeOptions, Roll};
use crate::studio::score::Score;
use crate::train::{self, TrainEvent, TrainOptions};
use crate::train_loop::{self, Control, LoopEvent, LoopMetrics};
use crate::tvae::{self, TrainedTvae};

/// Where a VAE's style A comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum StyleA {
    /// A code given (a composer's).
    Code(Vec<f32>),
    /// The primer's own code, read from it by the model's encoder on the generation thread
    /// (as `segue generate` reads it without `--from`).
    Primer,
}

impl StyleA {
    /// The code for a generation in `mode`: the one given, or the one `read` finds in `primer`
    /// (a primer without notes has no style to read). A transfer does not take the piece's own
    /// code as A (the transfer is from the piece to B): `otherwise` gives A's code then, as
    /// `segue generate` takes it without `--from`.
    fn code(
        &self,
        mode: Mode,
        primer: &Roll,
        read: impl FnOnce() -> crate::Result<Vec<f32>>,
        otherwise: impl FnOnce() -> crate::Result<Vec<f32>>,
    ) -> crate::Result<Vec<f32>> {
        match self {
            StyleA::Code(code) => Ok(code.clone()),
            StyleA::Primer if mode == Mode::Transfer => otherwise(),
            StyleA::Primer if primer.sounding_end() == 0 => Err(crate::Error::InvalidArgument(
                "style A is the piece's own, and the piece has no notes: open a MIDI file or \
                 draw some, or pick a composer for A"
                    .into(),
            )),
            StyleA::Primer => read(),
        }
    }

    /// The code given ([`Engine::with_style_a_read`] reads the primer's before a job).
    fn given(&self) -> crate::Result<&[f32]> {
        match self {
            StyleA::Code(code) => Ok(code),
            StyleA::Primer => Err(crate::Error::InvalidArgument(
                "style A's code is read from the primer before generating".into(),
            )),
        }
    }
}

/// Which model generates, with what it needs.
#[derive(Clone)]
pub enum Engine {
    /// The LSTM-VAE with styles A and B.
    LstmVae {
        /// The trained LSTM-VAE.
        model: Arc<TrainedModel>,
        /// Where style A's latent code comes from.
        code_a: StyleA,
        /// Style B's latent code (a composer's).
        code_b: Vec<f32>,
    },
    /// The Transformer VAE with styles A and B.
    TransformerVae {
        /// The trained Transformer VAE.
        model: Arc<TrainedTvae>,
        /// Where style A's latent code comes from.
        code_a: StyleA,
        /// Style B's latent code (a composer's).
        code_b: Vec<f32>,
    },
    /// Gradient ascent on the roll towards composer `target`, from the primer given (the
    /// studio gives none: seeded noise). At most the classifier's window, 2-3 notes a step.
    ClassifierAscent {
        /// The trained composer classifier.
        classifier: Arc<Classifier>,
        /// The target composer's index among the classifier's composers.
        target: usize,
    },
    /// DCGAN samples (128-step snippets, joined).
    Dcgan {
        /// The trained DCGAN.
        model: Arc<TrainedGan>,
    },
}

impl Engine {
    /// The engine with style A's code read from `primer` where A is the piece's own: once for
    /// all of a job's variations, as `mode` needs it.
    fn with_style_a_read(&self, primer: &Roll, mode: Mode) -> crate::Result<Engine> {
        let read = match self {
            Engine::LstmVae {
                model,
                code_a,
                code_b,
            } => {
                let steps = model.training_snippet_steps();
                let read = || generate::song_code(model, primer, steps);
                // Its transfer hears B's code alone.
                code_a.code(mode, primer, read, || Ok(code_b.clone()))?
            }
            Engine::TransformerVae { model, code_a, .. } => {
                let read = || tvae::song_code(model, primer);
                // Its transfer moves the piece's own code by B - A: from the composers' centre.
                let centre = || tvae::composer_code(model, 0, 0.0);
                code_a.code(mode, primer, read, centre)?
            }
            Engine::ClassifierAscent { .. } | Engine::Dcgan { .. } => return Ok(self.clone()),
        };
        let mut engine = self.clone();
        if let Engine::LstmVae { code_a, .. } | Engine::TransformerVae { code_a, .. } = &mut engine
        {
            *code_a = StyleA::Code(read);
        }
        Ok(engine)
    }
}

/// What a generation is primed with. The roll is made on the generation thread: an opened
/// file's roll is shared, not copied, and the piece is written out there, so a long piece
/// costs the window nothing.
#[derive(Clone)]
pub enum Primer {
    /// Nothing (the classifier ascent and the DCGAN start from noise).
    Empty,
    /// The file opened last.
    Opened(Arc<Roll>),
    /// The piece as it was when the generation was asked for.
    Piece(Arc<Score>),
}

impl Primer {
    /// The first step of the bar of the primer's first note (0 without notes), as
    /// [`Roll::first_bar_with_notes`] finds it, without making the piece's roll (on the
    /// window's thread).
    pub fn first_bar_with_notes(&self) -> usize {
        match self {
            Primer::Empty => 0,
            Primer::Opened(roll) => roll.first_bar_with_notes(),
            Primer::Piece(score) => score
                .notes
                .iter()
                .map(|n| n.start)
                .min()
                .map_or(0, |first| crate::meter::bar_start(&score.meters, first)),
        }
    }

    /// How many of the primer's steps a continuation asked to hear `primer_steps` of is
    /// primed with ([`generate::primer_steps_heard`]: its silent bars, then the bar line
    /// nearest `primer_steps` after them), without making the piece's roll (on the window's
    /// thread).
    pub fn steps_heard(&self, primer_steps: usize) -> usize {
        let first_bar = self.first_bar_with_notes();
        match self {
            Primer::Empty => generate::primer_steps_heard(&[], 0, 0, primer_steps),
            Primer::Opened(roll) => generate::primer_steps_heard(
                roll.meters(),
                first_bar,
                roll.sounding_end(),
                primer_steps,
            ),
            Primer::Piece(score) => {
                let end = (score.notes.iter()).map(|n| n.start + n.len).max();
                generate::primer_steps_heard(
                    &crate::meter::normalize(score.meters.to_vec()),
                    first_bar,
                    end.unwrap_or(0),
                    primer_steps,
                )
            }
        }
    }

    /// The roll up to its last note (trailing rests are kept in the piece, not continued
    /// from).
    pub fn roll(&self) -> Roll {
        match self {
            Primer::Empty => Roll::new(0),
            Primer::Opened(roll) => roll.up_to_last_note(),
            Primer::Piece(score) => score.to_roll().up_to_last_note(),
        }
    }
}

/// One generation job: `variations` pieces with seeds `opts.seed`, `opts.seed + 1`, ...
pub struct GenerationRequest {
    /// Increasing id; results of older ids are stale.
    pub id: u64,
    /// The model and its inputs.
    pub engine: Engine,
    /// The primer.
    pub primer: Primer,
    /// Controls.
    pub opts: GenerateOptions,
    /// How many pieces.
    pub variations: usize,
    /// Set to stop this job.
    pub cancel: Arc<AtomicBool>,
}

/// What the generation thread reports.
pub enum GenerationEvent {
    /// Share of the job done.
    Progress {
        /// Job id.
        id: u64,
        /// 0..1.
        fraction: f32,
    },
    /// The pieces, one per variation.
    Done {
        /// Job id.
        id: u64,
        /// Results.
        pieces: Vec<Generated>,
        /// The seed of the first piece (the next ones count up from it).
        first_seed: u64,
    },
    /// It failed or was cancelled.
    Failed {
        /// Job id.
        id: u64,
        /// Why.
        message: String,
    },
}

/// What a panic said (its message, where it has one), for a message to the user: a worker
/// that panics reports a failure instead of leaving the studio waiting for it.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    (payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "an internal error".into())
}

/// Runs `work`, turning a panic into `Err` with its message.
pub fn catching<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|p| panic_text(&*p))
}

/// The generation thread and its channels.
pub struct Generator {
    requests: Sender<GenerationRequest>,
    /// Reports, read by the GUI each frame.
    pub events: Receiver<GenerationEvent>,
    _thread: JoinHandle<()>,
}

impl Generator {
    /// Starts the thread; `wake` is called after each report (to repaint the window).
    pub fn start(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (requests, rx) = channel::<GenerationRequest>();
        let (tx, events) = channel();
        let thread = std::thread::Builder::new()
            .name("segue-generate".into())
            .spawn(move || {
                while let Ok(mut job) = rx.recv() {
                    // Only the newest request matters.
                    while let Ok(newer) = rx.try_recv() {
                        job = newer;
                    }
                    let report =
                        catching(|| run_generation(&job, &tx, &*wake)).unwrap_or_else(|e| {
                            GenerationEvent::Failed {
                                id: job.id,
                                message: format!("generation failed: {e}"),
                            }
                        });
                    let _ = tx.send(report);
                    wake();
                }
            })
            .expect("spawning the generation thread");
        Generator {
            requests,
            events,
            _thread: thread,
        }
    }

    /// Queues a job.
    pub fn request(&self, job: GenerationRequest) {
        let _ = self.requests.send(job);
    }
}

fn run_generation(
    job: &GenerationRequest,
    tx: &Sender<GenerationEvent>,
    wake: &(dyn Fn() + Send + Sync),
) -> GenerationEvent {
    let mut pieces = Vec::with_capacity(job.variations);
    let n = job.variations.max(1);
    let primer = job.primer.roll();
    // Silent bars the primer opens with are heard, and the steps asked for after them.
    let primer_steps = job.primer.steps_heard(job.opts.primer_steps);
    let engine = match job.engine.with_style_a_read(&primer, job.opts.mode) {
        Ok(engine) => engine,
        Err(e) => {
            return GenerationEvent::Failed {
                id: job.id,
                message: e.to_string(),
            };
        }
    };
    for k in 0..n {
        if job.cancel.load(Ordering::Relaxed) {
            break;
        }
        let opts = GenerateOptions {
            seed: job.opts.seed.wrapping_add(k as u64),
            primer_steps,
            ..job.opts.clone()
        };
        let mut last = 0.0f32;
        let mut progress = |f: f32| {
            let fraction = (k as f32 + f) / n as f32;
            if fraction - last > 0.05 {
                last = fraction;
                let _ = tx.send(GenerationEvent::Progress {
                    id: job.id,
                    fraction,
                });
                wake();
            }
        };
        let result = run_engine(&engine, &primer, &opts, &mut progress, &job.cancel);
        match result {
            Ok(g) => pieces.push(g),
            Err(e) => {
                return GenerationEvent::Failed {
                    id: job.id,
                    message: e.to_string(),
                };
            }
        }
    }
    if job.cancel.load(Ordering::Relaxed) {
        GenerationEvent::Failed {
            id: job.id,
            message: "cancelled".into(),
        }
    } else {
        GenerationEvent::Done {
            id: job.id,
            pieces,
            first_seed: job.opts.seed,
        }
    }
}

/// Runs one generation with `engine`.
fn run_engine(
    engine: &Engine,
    primer: &Roll,
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> crate::Result<Generated> {
    match engine {
        Engine::LstmVae {
            model,
            code_a,
            code_b,
        } => {
            let a = code_a.given()?;
            generate::generate(&model.model, primer, a, code_b, opts, progress, cancel)
        }
        Engine::TransformerVae {
            model,
            code_a,
            code_b,
        } => tvae::generate(
            model,
            primer,
            code_a.given()?,
            code_b,
            opts,
            progress,
            cancel,
        ),
        Engine::ClassifierAscent { classifier, target } => {
            let ascent_opts = AscentOptions {
                steps: opts.steps.min(classifier.config.max_steps()),
                notes_per_step: opts.max_notes.min(3),
                seed: opts.seed,
                ..AscentOptions::default()
            };
            let start = (primer.steps() > 0).then_some(primer);
            let a = ascent::ascend(classifier, *target, start, &ascent_opts, progress, cancel)?;
            Ok(Generated::new(a.roll, 0))
        }
        Engine::Dcgan { model } => {
            let roll = gan::sample_roll(
                &model.model,
                opts.steps,
                opts.temperature,
                opts.max_notes,
                opts.seed,
                cancel,
            )?;
            progress(1.0);
            Ok(Generated::new(roll, 0))
        }
    }
}

/// A mailbox that holds only the newest request: a sender never queues (a request replaces
/// the one not yet taken), so a worker slower than the requests never falls behind them.
pub struct Newest<T> {
    slot: Mutex<(Option<T>, bool)>,
    ready: Condvar,
}

impl<T> Default for Newest<T> {
    fn default() -> Self {
        Newest {
            slot: Mutex::new((None, false)),
            ready: Condvar::new(),
        }
    }
}

impl<T> Newest<T> {
    /// Puts `value` in, replacing a request not yet taken.
    pub fn put(&self, value: T) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 = Some(value);
        self.ready.notify_one();
    }

    /// Waits for a request and takes it; `None` once the mailbox is closed.
    pub fn take(&self) -> Option<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if slot.1 {
                return None;
            }
            if let Some(value) = slot.0.take() {
                return Some(value);
            }
            slot = self.ready.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Closes the mailbox: the waiting worker's `take` returns `None`.
    pub fn close(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_all();
    }
}

/// The style meter's thread: classifies the newest roll it is sent, window by window.
pub struct StyleMeter {
    requests: Arc<Newest<(u64, Score)>>,
    /// (request id, verdict or error), read by the GUI each frame.
    pub events: Receiver<(u64, Result<Verdict, String>)>,
    _thread: JoinHandle<()>,
}

impl Drop for StyleMeter {
    fn drop(&mut self) {
        self.requests.close();
    }
}

impl StyleMeter {
    /// Starts the thread for `classifier`; `wake` is called after each verdict.
    pub fn start(classifier: Arc<Classifier>, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let requests = Arc::new(Newest::<(u64, Score)>::default());
        let mailbox = requests.clone();
        let (tx, events) = channel();
        let thread = std::thread::Builder::new()
            .name("segue-style".into())
            .spawn(move || {
                // Edits made while a long piece is being judged replace one another: only
                // the newest is judged next.
                while let Some(job) = mailbox.take() {
                    // The roll is made here, not on the window's thread (a long piece is
                    // tens of megabytes), and only for the newest piece asked about.
                    let verdict = catching(|| {
                        let roll = job.1.to_roll();
                        let window = classify::window_steps(&classifier);
                        classify::classify_roll(&classifier, &roll, window, (window / 4).max(1))
                            .map_err(|e| e.to_string())
                    })
                    .unwrap_or_else(|e| Err(format!("the style meter failed: {e}")));
                    let _ = tx.send((job.0, verdict));
                    wake();
                }
            })
            .expect("spawning the style thread");
        StyleMeter {
            requests,
            events,
            _thread: thread,
        }
    }

    /// Asks for the verdict on the piece `score` (replacing a request not yet started).
    pub fn request(&self, id: u64, score: Score) {
        self.requests.put((id, score));
    }
}

/// What the training thread reports.
pub enum TrainingReport {
    /// Loading the corpus: files done of total.
    Loading(usize, usize),
    /// The corpus is loaded.
    Loaded {
        /// Composers (subfolders).
        composers: Vec<String>,
        /// Pieces read.
        pieces: usize,
        /// Files that could not be read.
        failures: usize,
        /// What may not be the layout the user meant ([`Corpus::layout_notes`]).
        notes: Vec<String>,
    },
    /// An event of the LSTM-VAE's trainer.
    Event(TrainEvent),
    /// An event of another model's trainer (the classifier's; a followed run's metrics of
    /// any model but the LSTM-VAE).
    Loop(LoopEvent),
    /// Following another run's log: its folder, its model file and planned steps once its
    /// first checkpoint has written them.
    Following {
        /// The run's folder.
        dir: PathBuf,
        /// The run's model file, once written.
        model: Option<PathBuf>,
        /// Steps the run is set to reach (from its manifest), if written yet.
        total: Option<usize>,
    },
    /// The followed log was started afresh (a new run in the same folder): drop what was read.
    Restarted,
    /// The followed folder holds no run (no log, no model, none training there): the monitor
    /// waits for one to start.
    NoRunYet,
    /// Whether a run trains in the followed folder now (holds its lock), at the start and at
    /// each change.
    Live(bool),
    /// It ended: where and how, or why not.
    Finished(Result<RunEnd, String>),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// The model file written last.
    pub model: PathBuf,
    /// Steps trained in all.
    pub steps: usize,
    /// Stopped (Stop, the studio closing, the time limit) before its last step.
    pub stopped_early: bool,
}

/// A training run in the background, or another run's log being followed.
pub struct TrainingJob {
    /// Pause and stop switches (following: stop ends it).
    pub control: Control,
    /// Whether this follows another run's log rather than training.
    pub following: bool,
    /// Reports.
    pub events: Receiver<TrainingReport>,
    thread: JoinHandle<()>,
    /// When a drop stops waiting for the run to write its checkpoint (see `Drop`).
    give_up_at: Option<std::time::Instant>,
}

/// Where and how a studio run on the shared loop trains, and where it reports.
struct LoopRun<'a> {
    corpus: &'a Corpus,
    device: &'a crate::models::Device,
    out: &'a Path,
    resume: bool,
    control: &'a Control,
    send: &'a dyn Fn(TrainingReport),
}

/// Snippets a step of an LSTM-VAE run started in the studio has at the least: the shipped
/// model's (one per composer of 20).
pub const STUDIO_SNIPPETS_PER_STEP: usize = 20;

/// `opts` for a run of the studio on a corpus of `composers`: a fresh run takes as many
/// balanced batches a step as give [`STUDIO_SNIPPETS_PER_STEP`] snippets (a folder of one
/// composer would train on one snippet a step; the command line's `--batches`); a resumed
/// run keeps its own.
pub fn studio_batches(opts: &TrainOptions, composers: usize, resume: bool) -> TrainOptions {
    let mut opts = opts.clone();
    if !resume {
        let wanted = STUDIO_SNIPPETS_PER_STEP.div_ceil(composers.max(1));
        opts.batches = opts.batches.max(wanted);
    }
    opts
}

impl LoopRun<'_> {
    /// Trains with `train` and `opts`; the model file written, or why not.
    fn train<O>(&self, train: train_loop::TrainFn<O>, opts: &O) -> crate::Result<RunEnd> {
        let send = self.send;
        let on_event = &mut |e| send(TrainingReport::Loop(e));
        train(
            self.corpus,
            opts,
            self.out,
            self.device,
            self.resume,
            self.control,
            on_event,
        )
        .map(|o| RunEnd {
            model: o.model_path,
            steps: o.steps,
            stopped_early: o.stopped_early,
        })
    }
}

/// How long a studio closing waits for its training run to write its checkpoint.
pub const CLOSING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl TrainingJob {
    /// Asks the run to stop at the end of its step and write its checkpoint (as Stop does);
    /// a drop then waits for that until [`CLOSING_WAIT`] from now at most. Returns that time.
    pub fn stop_for_closing(&mut self) -> std::time::Instant {
        self.control.stop.store(true, Ordering::Relaxed);
        *self
            .give_up_at
            .get_or_insert_with(|| std::time::Instant::now() + CLOSING_WAIT)
    }

    /// Whether its thread has ended (after its last report).
    pub fn ended(&self) -> bool {
        self.thread.is_finished()
    }
}

impl Drop for TrainingJob {
    /// A run still training when dropped (the studio ending without waiting for it, as a
    /// test's does) stops at the end of its step and writes its checkpoint, which Continue
    /// picks up at the next start; the drop waits for that, at most [`CLOSING_WAIT`] (from
    /// [`TrainingJob::stop_for_closing`], if that was called). Following a log just stops.
    fn drop(&mut self) {
        let until = self.stop_for_closing();
        if self.following {
            return;
        }
        wait_until(until, || self.thread.is_finished());
    }
}

/// Waits (briefly sleeping) until `done` holds or `deadline` passes: for work on another
/// thread that must end before the studio does.
pub fn wait_until(deadline: std::time::Instant, done: impl Fn() -> bool) {
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// What a training run in the studio trains, and how.
#[derive(Debug, Clone)]
pub enum TrainSpec {
    /// The LSTM-VAE (the generating model).
    LstmVae(TrainOptions),
    /// The composer classifier (the style meter, and classifier ascent).
    Classifier(classify::ClassifierOptions),
    /// The Transformer VAE (the generation panel's engine of that name).
    TransformerVae(tvae::TvaeOptions),
    /// The DCGAN (the generation panel's engine of that name).
    Dcgan(gan::GanOptions),
}

impl TrainSpec {
    /// The length of the snippets the run trains on, in steps.
    pub fn snippet_steps(&self) -> usize {
        match self {
            TrainSpec::LstmVae(o) => o.snippet_steps,
            TrainSpec::Classifier(o) => o.train.snippet_steps,
            TrainSpec::TransformerVae(o) => o.train.snippet_steps,
            TrainSpec::Dcgan(o) => o.train.snippet_steps,
        }
    }

    /// What the run whose model file is `model` trains, with the options its manifest
    /// records, to go on to `steps` steps in all (see [`TrainSpec::set_steps`]). The model is
    /// told by its file's name, as the trainers write it.
    pub fn of_run(model: &Path, steps: usize) -> Result<TrainSpec, String> {
        let dir = model.parent().unwrap_or(Path::new("."));
        let manifest = crate::models::weights::manifest_path(model);
        let training: serde_json::Value = crate::models::weights::read_manifest(&manifest)
            .map(|m: serde_json::Value| m["training"].clone())
            .map_err(|e| e.to_string())?;
        let unreadable = |e: serde_json::Error| {
            format!(
                "{}: its training options cannot be read ({e})",
                manifest.display()
            )
        };
        let kind = (ModelKind::ALL.into_iter())
            .find(|kind| model == train_loop::model_file(dir, kind.name()));
        let mut spec = match kind {
            Some(ModelKind::LstmVae) => {
                TrainSpec::LstmVae(serde_json::from_value(training).map_err(unreadable)?)
            }
            Some(ModelKind::Classifier) => {
                TrainSpec::Classifier(serde_json::from_value(training).map_err(unreadable)?)
            }
            Some(ModelKind::TransformerVae) => {
                TrainSpec::TransformerVae(serde_json::from_value(training).map_err(unreadable)?)
            }
            Some(ModelKind::Dcgan) => {
                TrainSpec::Dcgan(serde_json::from_value(training).map_err(unreadable)?)
            }
            None => {
                return Err(format!(
                    "{}: not a model file that a training run writes",
                    model.display()
                ));
            }
        };
        spec.set_steps(steps);
        Ok(spec)
    }

    /// Sets the steps in all, validates 20 times and writes 10 checkpoints along them (at
    /// least every 250 steps), and lifts any time limit (the studio's Stop ends a run).
    pub fn set_steps(&mut self, steps: usize) {
        let steps = steps.max(1);
        let eval_every = (steps / 20).clamp(1, 250);
        let checkpoint_every = (steps / 10).clamp(1, 250);
        let on_loop = |train: &mut train_loop::LoopOptions| {
            train.steps = steps;
            train.eval_every = eval_every;
            train.checkpoint_every = checkpoint_every;
            train.max_seconds = None;
        };
        match self {
            TrainSpec::LstmVae(o) => {
                o.steps = steps;
                o.eval_every = eval_every;
                o.checkpoint_every = checkpoint_every;
                o.max_seconds = None;
            }
            TrainSpec::Classifier(o) => on_loop(&mut o.train),
            TrainSpec::TransformerVae(o) => on_loop(&mut o.train),
            TrainSpec::Dcgan(o) => on_loop(&mut o.train),
        }
    }

    /// Sets the seed of the run (its held-out pieces, batches and initial weights).
    pub fn set_seed(&mut self, seed: u64) {
        match self {
            TrainSpec::LstmVae(o) => o.seed = seed,
            TrainSpec::Classifier(o) => o.train.seed = seed,
            TrainSpec::TransformerVae(o) => o.train.seed = seed,
            TrainSpec::Dcgan(o) => o.train.seed = seed,
        }
    }
}

/// Where a run trains: the device, and the folder of the corpus's cached rolls.
#[derive(Debug, Clone)]
pub struct TrainPlace {
    /// On CUDA device 0 (a build with the `cuda` feature), else on the CPU.
    pub gpu: bool,
    /// Rolls cached between loads of a corpus (None: read every file each time).
    pub roll_cache: Option<PathBuf>,
}

impl TrainingJob {
    /// Loads `corpus_dir` and trains what `spec` says into `out`, where `place` says.
    pub fn start(
        corpus_dir: PathBuf,
        spec: TrainSpec,
        out: PathBuf,
        place: TrainPlace,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self::launch(
            corpus_dir,
            Box::new(move || Ok(spec)),
            out,
            false,
            place,
            wake,
        )
    }

    /// Trains the run whose latest model file is `model` on from its checkpoint, to `steps`
    /// steps in all, with the options it was started with (see [`TrainSpec::of_run`]), on
    /// `corpus_dir` (the corpus it was trained on: another is refused).
    pub fn resume(
        corpus_dir: PathBuf,
        model: PathBuf,
        steps: usize,
        place: TrainPlace,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let out = model.parent().map(Path::to_path_buf).unwrap_or_default();
        // The manifest is read on the training thread (the window never reads files).
        let spec = move || TrainSpec::of_run(&model, steps);
        Self::launch(corpus_dir, Box::new(spec), out, true, place, wake)
    }

    /// Trains on a thread of its own: `spec` says what (it runs there), `resume` whether
    /// from the checkpoint in `out`, `place` on what and with which roll cache.
    fn launch(
        corpus_dir: PathBuf,
        spec: Box<dyn FnOnce() -> Result<TrainSpec, String> + Send>,
        out: PathBuf,
        resume: bool,
        place: TrainPlace,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let TrainPlace { gpu, roll_cache } = place;
        let control = Control::default();
        let (tx, events) = channel();
        let thread_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("segue-train".into())
            .spawn(move || {
                let send = |r: TrainingReport| {
                    let _ = tx.send(r);
                    wake();
                };
                // The run, to its end: everything it loaded (the corpus, the device) is freed
                // when it returns, before the end is reported, so the window, which lets the
                // job go on that report and waits for its thread, never waits on the freeing.
                let train = || -> Result<RunEnd, String> {
                    let spec = spec()?;
                    // The device is opened first: without it nothing else is worth loading.
                    let device = crate::models::device(gpu).map_err(|e| {
                        format!(
                            "cannot train on the GPU ({e}); untick \"on the GPU\" to train on \
                             the CPU"
                        )
                    })?;
                    // Another run training in the folder is refused before the corpus loads (a
                    // look only: the trainer takes the lock for the run itself).
                    if resume {
                        train_loop::check_not_in_use(&out).map_err(|busy| busy.to_string())?;
                    }
                    let load_opts = LoadOptions {
                        quantize: QuantizeOptions::default(),
                        cache_dir: roll_cache,
                    };
                    let corpus = Corpus::load(&corpus_dir, &load_opts, &|done, total| {
                        send(TrainingReport::Loading(done, total))
                    })
                    .map_err(|e| e.to_string())?;
                    let short = corpus.short_pieces_note(spec.snippet_steps());
                    send(TrainingReport::Loaded {
                        composers: corpus.composers.clone(),
                        pieces: corpus.pieces.len(),
                        failures: corpus.failures.len(),
                        notes: (corpus.layout_notes().into_iter())
                            .chain(short.map(|(note, _)| note))
                            .collect(),
                    });
                    // Stop pressed while the corpus loaded: nothing trained, nothing written.
                    if thread_control.stop.load(Ordering::Relaxed) {
                        return Err("stopped before training began".into());
                    }
                    // The classifier, the Transformer VAE and the DCGAN train on the shared loop.
                    let run = LoopRun {
                        corpus: &corpus,
                        device: &device,
                        out: &out,
                        resume,
                        control: &thread_control,
                        send: &send,
                    };
                    let result = match &spec {
                        TrainSpec::LstmVae(opts) => train::train_lstm_vae(
                            &corpus,
                            &studio_batches(opts, corpus.composers.len(), resume),
                            &out,
                            &device,
                            resume,
                            &thread_control,
                            &mut |e| send(TrainingReport::Event(e)),
                        )
                        .map(|o| RunEnd {
                            model: o.model_path,
                            steps: o.steps,
                            stopped_early: o.stopped_early,
                        }),
                        TrainSpec::Classifier(opts) => run.train(classify::train_classifier, opts),
                        TrainSpec::TransformerVae(opts) => run.train(tvae::train_tvae, opts),
                        TrainSpec::Dcgan(opts) => run.train(gan::train_gan, opts),
                    };
                    result.map_err(|e| e.to_string())
                };
                // A panic ends the run with its message, never silently.
                let end = catching(train).unwrap_or_else(|e| Err(format!("training failed: {e}")));
                release_freed_memory();
                send(TrainingReport::Finished(end));
            })
            .expect("spawning the training thread");
        TrainingJob {
            control,
            following: false,
            events,
            thread,
            give_up_at: None,
        }
    }

    /// Follows the metrics log of a run in `dir` (`segue train lstm-vae --out DIR` in a
    /// terminal, another model's run, or another studio's) as it grows: every line already
    /// there, then each new one, until stopped. The log is read on this thread, never by the
    /// window.
    pub fn follow(dir: PathBuf, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self::watch(dir, false, wake)
    }

    /// Shows the run in `dir` as [`TrainingJob::follow`] does, but ends after one reading of
    /// its log where no run is training there now (see [`train_loop::run_folder_in_use`]).
    pub fn show(dir: PathBuf, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self::watch(dir, true, wake)
    }

    fn watch(dir: PathBuf, until_idle: bool, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let control = Control::default();
        let (tx, events) = channel();
        let stop = control.stop.clone();
        let thread = std::thread::Builder::new()
            .name("segue-follow".into())
            .spawn(move || {
                // A panic here is said as the run's end, not left as a monitor that never
                // moves again.
                let (panic_tx, panic_wake) = (tx.clone(), wake.clone());
                let watched = catching(move || {
                    let send = |r: TrainingReport| {
                        let _ = tx.send(r);
                        wake();
                    };
                    let mut live = None;
                    let mut log = LogFollower::new(train::metrics_path(&dir));
                    let (mut model, mut total) = (None, None);
                    send(TrainingReport::Following {
                        dir: dir.clone(),
                        model: None,
                        total,
                    });
                    let mut manifest_seen = None;
                    let mut looked = false;
                    while !stop.load(Ordering::Relaxed) {
                        let live_now = train_loop::run_folder_in_use(&dir);
                        if live != Some(live_now) {
                            live = Some(live_now);
                            send(TrainingReport::Live(live_now));
                        }
                        // The model file appears at the run's first checkpoint (and another run
                        // may start in the folder); its manifest is read again only when a
                        // checkpoint has rewritten it.
                        let file = train_loop::run_model(&dir).map(|(_, file)| file);
                        let manifest = file.as_deref().map(crate::models::weights::manifest_path);
                        let modified = (manifest.as_ref())
                            .and_then(|m| std::fs::metadata(m).and_then(|m| m.modified()).ok());
                        let planned = if modified == manifest_seen && file == model {
                            total
                        } else {
                            match manifest.as_deref().and_then(planned_steps) {
                                Some(planned) => {
                                    manifest_seen = modified;
                                    Some(planned)
                                }
                                // Unreadable this time (or not written yet): keep what was read.
                                None if file == model => total,
                                None => None,
                            }
                        };
                        if planned != total || file != model {
                            (model, total) = (file, planned);
                            send(TrainingReport::Following {
                                dir: dir.clone(),
                                model: model.clone(),
                                total,
                            });
                        }
                        match log.poll() {
                            Ok(Polled { restarted, metrics }) => {
                                if restarted {
                                    send(TrainingReport::Restarted);
                                    // The monitor forgets the run's model: say it again.
                                    (model, manifest_seen) = (None, None);
                                }
                                for line in metrics {
                                    send(match line {
                                        LogLine::LstmVae(m) => {
                                            TrainingReport::Event(TrainEvent::Metrics(m))
                                        }
                                        LogLine::Model(m) => {
                                            TrainingReport::Loop(LoopEvent::Metrics(m))
                                        }
                                    });
                                }
                            }
                            Err(e) => return send(TrainingReport::Finished(Err(e))),
                        }
                        // Said once, at the first look: a folder picked by mistake (the runs'
                        // parent, say) is told from one whose run has not begun.
                        if !looked {
                            looked = true;
                            if !live_now && model.is_none() && !train::metrics_path(&dir).exists() {
                                send(TrainingReport::NoRunYet);
                            }
                        }
                        if until_idle && !live_now {
                            return send(TrainingReport::Finished(Err(format!(
                                "Last run: {} (not training now)",
                                dir.display()
                            ))));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                    send(TrainingReport::Finished(Err(format!(
                        "stopped following {}",
                        dir.display()
                    ))));
                });
                if let Err(panic) = watched {
                    let failed = format!("following the run failed: {panic}");
                    let _ = panic_tx.send(TrainingReport::Finished(Err(failed)));
                    panic_wake();
                }
            })
            .expect("spawning the log thread");
        TrainingJob {
            control,
            following: true,
            events,
            thread,
            give_up_at: None,
        }
    }
}

/// The steps a run is set to reach, from its model's manifest (written at its first
/// checkpoint): the LSTM-VAE's options hold them, the other models' in their loop options.
fn planned_steps(manifest: &std::path::Path) -> Option<usize> {
    let manifest: serde_json::Value = crate::models::weights::read_manifest(manifest).ok()?;
    let training = &manifest["training"];
    (training["steps"].as_u64())
        .or(training["train"]["steps"].as_u64())
        .map(|s| s as usize)
}

/// One line of a training run's metrics log.
#[derive(Debug, Clone)]
pub enum LogLine {
    /// The LSTM-VAE's.
    LstmVae(train::Metrics),
    /// Another model's (the classifier, the Transformer VAE, the DCGAN).
    Model(LoopMetrics),
}

impl LogLine {
    /// Steps done at this line.
    pub fn step(&self) -> usize {
        match self {
            LogLine::LstmVae(m) => m.step,
            LogLine::Model(m) => m.step,
        }
    }
}

/// What one look at a growing log found.
#[derive(Debug, Default)]
pub struct Polled {
    /// The file was shorter than what was read before: a new log; `metrics` start afresh.
    pub restarted: bool,
    /// The complete lines added since the last look.
    pub metrics: Vec<LogLine>,
}

/// Reads a JSON-lines metrics log as it grows, a complete line at a time (a line being
/// written is left for the next look).
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    line: usize,
    identity: Option<(u64, u64)>,
}

/// Which file a name points to (device and inode), where the system says.
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl LogFollower {
    /// Follows `path` (it need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        LogFollower {
            path,
            offset: 0,
            pending: Vec::new(),
            line: 0,
            identity: None,
        }
    }

    /// The lines added since the last call. A line that is not a metrics record of a Segue
    /// training run is an error naming the file and the line.
    pub fn poll(&mut self) -> Result<Polled, String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut polled = Polled::default();
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Ok(polled); // not written yet
        };
        let meta = file.metadata().ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let identity = meta.as_ref().and_then(file_identity);
        // A shorter file, or another file under the name (a resumed run rewrites its log
        // atomically), is a new log: read it from the start.
        if len < self.offset || (self.identity.is_some() && identity != self.identity) {
            *self = LogFollower::new(std::mem::take(&mut self.path));
            polled.restarted = true;
        }
        self.identity = identity;
        let mut added = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut added))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.offset += added.len() as u64;
        self.pending.extend_from_slice(&added);
        let complete = self
            .pending
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = self.pending.drain(..complete).collect();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.line += 1;
            let parsed = match serde_json::from_slice::<train::Metrics>(line) {
                Ok(m) => Ok(LogLine::LstmVae(m)),
                Err(vae) => serde_json::from_slice::<LoopMetrics>(line)
                    .map(LogLine::Model)
                    .map_err(|other| (vae, other)),
            };
            let m = parsed.map_err(|(vae, other)| {
                format!(
                    "{} line {}: not a metrics log of `segue train` (as the LSTM-VAE's: \
                     {vae}; as another model's: {other})",
                    self.path.display(),
                    self.line
                )
            })?;
            polled.metrics.push(m);
        }
        Ok(polled)
    }
}

/// Gives what a finished run freed back to the system. glibc's allocator keeps memory freed
/// by a thread in that thread's arena (up to 64 MB each; the compute threads have their own),
/// and a new run's threads take new ones, so each run in the same window left the process
/// larger (`cargo bench --bench studio`: 242 MB resident before three runs, 364 / 327 / 301 MB
/// after each; with this, 234 before and 100 / 99 / 99 MB after).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; it only hands the allocator's free pages back.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh run of the studio puts at least 20 snippets in a step whatever the number of
    /// composers; a resumed run, and a larger number asked for, stay as they are.
    #[test]
    fn a_studio_run_on_few_composers_takes_several_batches_a_step() {
        let opts = TrainOptions::preset("studio").unwrap();
        let batches = |composers, resume| studio_batches(&opts, composers, resume).batches;
        assert_eq!(batches(1, false), 20);
        assert_eq!(batches(3, false), 7);
        assert_eq!(batches(20, false), 1);
        assert_eq!(batches(1, true), opts.batches);
        let many = TrainOptions {
            batches: 30,
            ..opts.clone()
        };
        assert_eq!(studio_batches(&many, 1, false).batches, 30);
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catching(|| 7), Ok(7));
        assert_eq!(
            catching(|| -> u8 { panic!("static text") }),
            Err("static text".into())
        );
        let n = 3;
        assert_eq!(
            catching(|| -> u8 { panic!("made {n}") }),
            Err("made 3".into())
        );
    }

    /// Requests sent faster than a worker takes them replace one another: the worker gets the
    /// newest, never a queue of old ones; closing ends a waiting worker.
    #[test]
    fn the_newest_request_replaces_those_not_taken() {
        let mailbox = Arc::new(Newest::default());
        for k in 0..1000 {
            mailbox.put(k);
        }
        assert_eq!(mailbox.take(), Some(999));
        let worker = {
            let mailbox = mailbox.clone();
            std::thread::spawn(move || {
                let mut taken = Vec::new();
                while let Some(k) = mailbox.take() {
                    taken.push(k);
                }
                taken
            })
        };
        mailbox.put(1);
        while mailbox.slot.lock().unwrap().0.is_some() {
            std::thread::yield_now();
        }
        mailbox.close();
        assert_eq!(worker.join().unwrap(), vec![1]);
    }

    /// A generation that panics reports a failure with the panic's message instead of leaving
    /// the studio waiting, and the thread lives on to take the next request.
    #[test]
    fn a_generation_that_panics_fails_and_the_thread_goes_on() {
        let path = crate::gan::default_path().expect("the shipped DCGAN");
        let model = Arc::new(crate::gan::load(&path, &crate::models::Device::Cpu).unwrap());
        // The first progress report panics (a bug inside the job); later calls are quiet.
        let panicked = Arc::new(AtomicBool::new(false));
        let wake = {
            let panicked = panicked.clone();
            Arc::new(move || {
                if !panicked.swap(true, Ordering::SeqCst) {
                    panic!("a bug while generating");
                }
            })
        };
        let generator = Generator::start(wake);
        let request = |id| GenerationRequest {
            id,
            engine: Engine::Dcgan {
                model: model.clone(),
            },
            primer: Primer::Empty,
            opts: GenerateOptions {
                steps: 16,
                ..GenerateOptions::default()
            },
            variations: 1,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let last_of = |id| loop {
            let event = generator
                .events
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the generation thread answers");
            match event {
                GenerationEvent::Progress { .. } => {}
                GenerationEvent::Done { id: i, pieces, .. } if i == id => return Ok(pieces),
                GenerationEvent::Failed { id: i, message } if i == id => return Err(message),
                _ => panic!("an event of another job"),
            }
        };
        generator.request(request(1));
        let message = last_of(1).unwrap_err();
        assert!(
            message.contains("generation failed: a bug while generating"),
            "{message}"
        );
        generator.request(request(2));
        let pieces = last_of(2).expect("the thread takes the next request");
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].roll.steps(), 16);
    }

    /// How `job` ended (at most a minute from now).
    fn end_of(job: &TrainingJob) -> Result<RunEnd, String> {
        loop {
            match job.events.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(TrainingReport::Finished(result)) => return result,
                Ok(_) => {}
                Err(e) => panic!("no end: {e}"),
            }
        }
    }

    /// A training thread that panics ends its run with the panic's message: the panel does
    /// not wait for a run that is gone.
    #[test]
    fn a_run_that_panics_ends_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let place = TrainPlace {
            gpu: false,
            roll_cache: None,
        };
        let job = TrainingJob::launch(
            dir.path().join("corpus"),
            Box::new(|| panic!("a bug in the trainer")),
            dir.path().join("run"),
            false,
            place,
            Arc::new(|| {}),
        );
        let ended = end_of(&job);
        let problem = ended.unwrap_err();
        assert!(
            problem.contains("training failed: a bug in the trainer"),
            "{problem}"
        );
    }

    /// A run asked to train on the GPU where there is none (a build without CUDA, or no
    /// device) ends with a message saying so, before it reads or writes anything.
    #[test]
    fn a_run_on_a_gpu_that_is_not_there_says_so() {
        if crate::models::device(true).is_ok() {
            return; // a GPU is here: the run would train
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let job = TrainingJob::start(
            dir.path().join("no corpus"),
            TrainSpec::Dcgan(crate::gan::GanOptions::default()),
            out.clone(),
            TrainPlace {
                gpu: true,
                roll_cache: None,
            },
            Arc::new(|| {}),
        );
        let ended = end_of(&job);
        let problem = ended.unwrap_err();
        assert!(problem.contains("cannot train on the GPU"), "{problem}");
        assert!(!out.exists());
    }
}
