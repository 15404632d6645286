//! Background work of the studio: generation and training run on their own threads and report
//! through channels, so the window never waits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::dataset::{Corpus, LoadOptions};
use crate::generate::{self, GenerateOptions, Generated};
use crate::models::trained::TrainedModel;
use crate::roll::{QuantizeOptions, Roll};
use crate::train::{self, Control, TrainEvent, TrainOptions};

/// One generation job: `variations` pieces with seeds `opts.seed`, `opts.seed + 1`, ...
pub struct GenerationRequest {
    /// Increasing id; results of older ids are stale.
    pub id: u64,
    /// The model.
    pub model: Arc<TrainedModel>,
    /// The primer.
    pub primer: Roll,
    /// Code of style A.
    pub code_a: Vec<f32>,
    /// Code of style B.
    pub code_b: Vec<f32>,
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
    },
    /// It failed or was cancelled.
    Failed {
        /// Job id.
        id: u64,
        /// Why.
        message: String,
    },
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
                    let report = run_generation(&job, &tx, &*wake);
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
    for k in 0..n {
        if job.cancel.load(Ordering::Relaxed) {
            break;
        }
        let opts = GenerateOptions {
            seed: job.opts.seed.wrapping_add(k as u64),
            ..job.opts.clone()
        };
        let mut last = 0.0f32;
        let result = generate::generate(
            &job.model.model,
            &job.primer,
            &job.code_a,
            &job.code_b,
            &opts,
            &mut |f| {
                let fraction = (k as f32 + f) / n as f32;
                if fraction - last > 0.05 {
                    last = fraction;
                    let _ = tx.send(GenerationEvent::Progress {
                        id: job.id,
                        fraction,
                    });
                    wake();
                }
            },
            &job.cancel,
        );
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
        GenerationEvent::Done { id: job.id, pieces }
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
    },
    /// A trainer event.
    Event(TrainEvent),
    /// It ended: the model file, or why not.
    Finished(Result<PathBuf, String>),
}

/// A training run in the background.
pub struct TrainingJob {
    /// Pause and stop switches.
    pub control: Control,
    /// Reports.
    pub events: Receiver<TrainingReport>,
    _thread: JoinHandle<()>,
}

impl TrainingJob {
    /// Loads `corpus_dir` and trains into `out` on the CPU.
    pub fn start(
        corpus_dir: PathBuf,
        opts: TrainOptions,
        out: PathBuf,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
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
                let load_opts = LoadOptions {
                    quantize: QuantizeOptions::default(),
                    cache_dir: crate::dataset::default_cache_dir(),
                };
                let corpus = match Corpus::load(&corpus_dir, &load_opts, &|done, total| {
                    send(TrainingReport::Loading(done, total))
                }) {
                    Ok(c) => c,
                    Err(e) => return send(TrainingReport::Finished(Err(e.to_string()))),
                };
                send(TrainingReport::Loaded {
                    composers: corpus.composers.clone(),
                    pieces: corpus.pieces.len(),
                    failures: corpus.failures.len(),
                });
                let result = train::train_lstm_vae(
                    &corpus,
                    &opts,
                    &out,
                    &candle_core::Device::Cpu,
                    false,
                    &thread_control,
                    &mut |e| send(TrainingReport::Event(e)),
                );
                send(TrainingReport::Finished(
                    result.map(|o| o.model_path).map_err(|e| e.to_string()),
                ));
            })
            .expect("spawning the training thread");
        TrainingJob {
            control,
            events,
            _thread: thread,
        }
    }
}
