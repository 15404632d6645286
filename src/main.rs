//! The `segue` command line: a thin layer of argument parsing, progress bars and printing over
//! the library. Errors print as `segue: <what went wrong>` and exit with code 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use segue::dataset::{Corpus, LoadOptions};
use segue::fsutil::shown;
use segue::generate;
use segue::midi::{Division, Song};
use segue::models::trained::TrainedModel;
use segue::render::{RenderOptions, render_to_wav_noting};
use segue::roll::{QuantizeOptions, Roll};
use segue::train::{Control, TrainEvent, TrainOptions};
use segue::{bench, image, npy};

/// `println!` for a closed stdout (`segue info f | head`): a command whose work is files
/// ([`WRITES_FILES`]) goes on quietly, the rest of its output dropped, so that its errors (a
/// WAV that could not be written) are still said on stderr and in the exit code; a command
/// whose only product is its output ends there, quietly (exit code 0).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = writeln!(std::io::stdout(), $($arg)*)
        {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
            if !WRITES_FILES.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::exit(0);
            }
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }};
}

/// Whether the command's work is files (roll, render, generate, convert-model, train, eval
/// report), not its output alone.
static WRITES_FILES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once stdout turned out to be closed (a reader such as `head` done with it).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A note on stderr ("segue: note: ..."): something worth knowing that is not wrong (a
/// file's pedal not applied, a cache's share), unless `--quiet` asked for none.
macro_rules! note {
    ($($arg:tt)*) => {{
        if !quiet() {
            eprintln!("segue: note: {}", format_args!($($arg)*));
        }
    }};
}

/// A warning on stderr ("segue: warning: ..."): something that changes how a result should
/// be read (an evaluation on another corpus than the model's), said even with `--quiet`.
macro_rules! warning {
    ($($arg:tt)*) => {{
        eprintln!("segue: warning: {}", format_args!($($arg)*));
    }};
}

/// `--quiet`: no notes and no progress bars (warnings and errors are still said).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--quiet` was given.
fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SEGUE_COMMIT"), ")");

/// `segue --version`: the version and the licences, the shipped weights' credits with them
/// (CC BY-SA asks that they go wherever the weights go).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SEGUE_COMMIT"),
    ")\n",
    "code: MIT or Apache-2.0\n",
    "shipped weights: CC BY-SA 3.0 DE, trained on piano-midi.de files (credit: \"Bernd Krueger, \
     piano-midi.de\") and Bach chorales of the music21 corpus (credit: \"music21 corpus \
     (Cuthbert et al.)\"); see LICENSE in the weights folder",
);

/// Segue: a piano-roll studio for neural music generation.
#[derive(Parser)]
#[command(name = "segue", version = VERSION, long_version = LONG_VERSION, about, long_about = None)]
struct Cli {
    /// No notes and no progress bars on stderr (warnings and errors are still said): for
    /// batch jobs.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open the studio window (also what `segue` alone does), with FILE as the primer.
    Studio {
        /// A MIDI file to open.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print what a MIDI file holds: title, copyright, format, tracks, timing, tempo changes,
    /// metre, key, sustain pedal, notes, roll shape, duration, and the damage skipped.
    Info {
        /// The MIDI file to describe.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print it as one JSON object (every field always there, null or empty where the file
        /// has none), for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Convert a MIDI file to a piano roll: OUT's extension picks .npy, .png or .mid. A .npy
    /// or .png is the roll the models train on; a .mid is read as the studio opens a piece
    /// (each note's start and end rounded half up, trailing rests kept), drums kept unless
    /// --no-drums (the studio leaves them out).
    Roll {
        /// The MIDI file to convert.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the roll (.npy: uint8 T x 128; .png: picture; .mid: quantized MIDI).
        #[arg(short, long, visible_alias = "out", value_name = "OUT")]
        output: PathBuf,
        /// Horizontal pixels per step in a .png (1 to 8).
        #[arg(long, default_value_t = 2, value_name = "NUM",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
        scale: usize,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Render a .mid or .npy roll to a WAV file with the built-in piano synth (a .mid rounded
    /// as the studio opens a piece, up to its last note and the release after it).
    Render {
        /// The .mid or .npy file to render.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The WAV file to write (44.1 kHz, 16-bit, mono).
        #[arg(short, long, visible_alias = "out", value_name = "OUT.wav")]
        output: PathBuf,
        /// Play at this tempo instead of the file's own (bpm).
        #[arg(long, value_name = "BPM", allow_negative_numbers = true)]
        bpm: Option<f64>,
        /// Leave the audio at the synth's own level (by default its peak is brought to -1
        /// dBFS, as a DAW normalises a bounce).
        #[arg(long)]
        no_normalize: bool,
        /// Normalise to this integrated loudness (EBU R128, in LUFS, -31 to -5; streaming
        /// services play at about -14) instead of the peak, as far as a -1 dBFS peak allows.
        #[arg(
            long,
            value_name = "LUFS",
            allow_negative_numbers = true,
            conflicts_with = "no_normalize"
        )]
        loudness: Option<f64>,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Work with a corpus folder (composer subfolders of MIDI files).
    Corpus {
        #[command(subcommand)]
        command: CorpusCmd,
    },
    /// Generate music: LSTM-VAE or Transformer VAE (continue, transfer, transition, blend),
    /// classifier gradient ascent, or DCGAN samples.
    Generate(Box<GenerateArgs>),
    /// Rank the composers of a MIDI file with the composer classifier, whole and per window.
    Classify {
        /// The MIDI file to judge.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The classifier file, its manifest or its training run's folder (default: the shipped
        /// one).
        #[arg(long, value_name = "FILE.safetensors")]
        model: Option<PathBuf>,
        /// Window length in steps (default: the classifier's training snippet length).
        #[arg(long, value_name = "N")]
        window: Option<usize>,
        /// Steps between window starts (default: half a window).
        #[arg(long, value_name = "N")]
        hop: Option<usize>,
        /// Composers listed per window.
        #[arg(long, default_value_t = 3, value_name = "N")]
        top: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a model file, checked, optionally stored as f16 (how the shipped weights are made).
    ConvertModel {
        /// The model file (.safetensors, with its .json beside it).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Where to write it.
        #[arg(value_name = "OUT")]
        output: PathBuf,
        /// Store the tensors as f16.
        #[arg(long)]
        f16: bool,
    },
    /// Measure a trained model on held-out pieces.
    Eval {
        #[command(subcommand)]
        command: EvalCmd,
    },
    /// Train a model on a corpus folder (composer subfolders of MIDI files).
    Train {
        #[command(subcommand)]
        command: TrainCmd,
    },
    /// Measure speed against the Python references, in the same run.
    Bench {
        #[command(subcommand)]
        command: BenchCmd,
    },
    /// Print a completion script for a shell (bash: save it as
    /// ~/.local/share/bash-completion/completions/segue).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (segue.1 and one for each command, segue-generate.1 and so on)
    /// into a folder (for `man -l`, or for a package's share/man/man1).
    Manual {
        /// The folder (made if it is not there).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CorpusCmd {
    /// Per composer: files, steps, notes, notes per sounding step (`notes_per_step` in --json),
    /// pitch range, failures.
    Stats {
        /// The corpus folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
}

#[derive(Args)]
struct GenerateArgs {
    /// The MIDI file whose start comes first in the output: the LSTM-VAE continues it, the
    /// Transformer VAE keeps it before its part (and reads its code in transfer mode),
    /// classifier-ascent starts from its first --steps steps.
    #[arg(long, value_name = "FILE")]
    prime: Option<PathBuf>,
    /// Keep the primer's channel 10 (drums), merged as piano notes; by default they are left
    /// out (said), as the studio leaves them out: a piano model goes on from the piano.
    #[arg(long)]
    drums: bool,
    /// Hold the notes of the primer (and of a MIDI file as --from or --to) on while its
    /// sustain pedal is down, as a piano sounds them (as `segue render --pedal`); by default
    /// they sound as long as they are written, as the models were trained.
    #[arg(long)]
    pedal: bool,
    /// Style A: a composer of the model, or a MIDI file (default: the primer itself; not
    /// used by the LSTM-VAE's transfer, which decodes the primer with B).
    #[arg(long, value_name = "A")]
    from: Option<String>,
    /// Style B: a composer of the model, or a MIDI file (transfer, transition, blend).
    #[arg(long, value_name = "B")]
    to: Option<String>,
    /// continue (style A), transfer (style B), transition (A to B), blend (alpha of B); the
    /// VAEs only [default: continue].
    #[arg(long, value_name = "MODE")]
    mode: Option<String>,
    /// Blend amount, 0 = A .. 1 = B (--mode blend only) [default: 0.5].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    alpha: Option<f32>,
    /// Steps to generate (16th notes).
    #[arg(long, default_value_t = 256, value_name = "N")]
    steps: usize,
    /// Primer steps taken from --prime, from the bar of its first note to the bar line
    /// nearest N (the VAEs; classifier ascent starts from its first --steps steps) [default: 64:
    /// four bars of 4/4, five of 3/4].
    #[arg(long, value_name = "N")]
    primer_steps: Option<usize>,
    /// Transition length in steps, 1 to --steps (default: all generated steps; --mode
    /// transition only).
    #[arg(long, value_name = "N")]
    transition_steps: Option<usize>,
    /// Interpolate linearly instead of along the sphere (--mode transition and blend).
    #[arg(long)]
    linear: bool,
    /// How strongly a composer's style counts (the VAEs, where A or B is a composer; not a MIDI
    /// file's code): its code is moved away from the centre of all composers' by this factor
    /// (1 = its mean code; 0 = no composer's style in particular; at most 3) [default: 1].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    style_strength: Option<f32>,
    /// Sampling temperature (1 = the model's probabilities; below 1 sparser, above denser).
    /// The VAEs and a DCGAN that draws its cells use it; classifier ascent and the shipped
    /// DCGAN (which thresholds its cells) do not sample [default: 0.9].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// At most this many notes per step (classifier ascent keeps 2-3, as the paper; fewer with 1
    /// or 2).
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_notes: usize,
    /// Seed: the same seed gives the same music (classifier-ascent from --prime draws
    /// nothing: its start is the primer, so every seed gives the same).
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// lstm-vae (default), transformer-vae, classifier-ascent (to the composer --to) or dcgan
    /// (the shipped weights of each), or a model file of any of them, or the folder of a
    /// training run (`--model runs/mine`: the model it trained).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Where to compute: cpu, or cuda (needs a build with the `cuda` feature). The LSTM-VAE
    /// reads its codes there but samples step by step on the CPU whatever this says (one step
    /// of batch 1 is faster there).
    #[arg(long, default_value = "cpu", value_name = "DEV")]
    device: String,
    /// Gradient steps of classifier-ascent, 1 to 10000 [default: 200].
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    iterations: Option<usize>,
    /// The MIDI file to write.
    #[arg(short, long, visible_alias = "out", value_name = "OUT.mid")]
    output: PathBuf,
    /// Also render a WAV file.
    #[arg(long, value_name = "OUT.wav")]
    wav: Option<PathBuf>,
    /// Leave the WAV at the synth's own level (by default its peak is brought to -1 dBFS, as a
    /// DAW normalises a bounce).
    #[arg(long, requires = "wav")]
    no_normalize: bool,
    /// Normalise the WAV to this integrated loudness (EBU R128, in LUFS, -31 to -5; streaming
    /// services play at about -14) instead of the peak, as far as a -1 dBFS peak allows.
    #[arg(
        long,
        value_name = "LUFS",
        allow_negative_numbers = true,
        requires = "wav",
        conflicts_with = "no_normalize"
    )]
    loudness: Option<f64>,
}

/// The controls with defaults: given or not is kept, so that one a model or mode would not
/// use is refused (see [`check_generate_flags`]), not silently dropped.
/// The defaults are the library's own (`GenerateOptions`, `AscentOptions`).
impl GenerateArgs {
    fn mode_name(&self) -> &str {
        self.mode.as_deref().unwrap_or("continue")
    }
    fn alpha(&self) -> f32 {
        self.alpha
            .unwrap_or_else(|| generate::GenerateOptions::default().alpha)
    }
    fn primer_steps(&self) -> usize {
        self.primer_steps
            .unwrap_or_else(|| generate::GenerateOptions::default().primer_steps)
    }
    fn style_strength(&self) -> f32 {
        self.style_strength
            .unwrap_or(generate::DEFAULT_STYLE_STRENGTH)
    }
    fn temperature(&self) -> f32 {
        self.temperature.unwrap_or(generate::DEFAULT_TEMPERATURE)
    }
    fn iterations(&self) -> usize {
        self.iterations
            .unwrap_or_else(|| segue::ascent::AscentOptions::default().iterations)
    }
}

#[derive(Subcommand)]
enum EvalCmd {
    /// Reconstruction, latent health and style, and generated-music figures of the LSTM-VAE.
    LstmVae(LstmVaeEvalArgs),
    /// Accuracy and confusion matrix of the composer classifier on held-out pieces.
    Classifier(ClassifierEvalArgs),
    /// Compare every model on the same held-out snippets: writes report.md + PNG charts.
    Report(ReportArgs),
}

#[derive(Args)]
struct ReportArgs {
    /// The corpus the models were trained on (default: ../shared/corpus).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Output folder.
    #[arg(
        short,
        long,
        visible_alias = "output",
        default_value = "report",
        value_name = "DIR"
    )]
    out: PathBuf,
    /// Held-out snippets per composer.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    per_composer: usize,
    /// Composer pairs for transfers, transitions and blends.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pairs: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Style strength of the VAEs' composer codes, as `segue generate --style-strength`.
    #[arg(long, default_value_t = segue::generate::DEFAULT_STYLE_STRENGTH, value_name = "X", allow_negative_numbers = true)]
    style_strength: f32,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// The model file, its manifest or its training run's folder (default: the shipped weights
    /// of that kind, e.g. weights/lstm-vae-studio.safetensors or weights/classifier.safetensors).
    #[arg(long, value_name = "FILE.safetensors")]
    model: Option<PathBuf>,
    /// The corpus the model was trained on (its held-out pieces are measured; default:
    /// ../shared/corpus, for a model trained on it: one trained on another folder needs it
    /// named).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Held-out snippets per composer.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    per_composer: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
struct ClassifierEvalArgs {
    #[command(flatten)]
    common: EvalArgs,
    /// Also fit a statistics baseline on the classifier's training pieces and judge it on the
    /// same held-out snippets and pieces: logistic regression on which pitches and pitch
    /// classes sound, where notes start, how long notes are and how dense each window is.
    #[arg(long)]
    baseline: bool,
    /// With --baseline: also cross-validate the baseline over every piece of the corpus, the
    /// pieces dealt into K folds per composer, each fold held out once.
    #[arg(long, value_name = "K", requires = "baseline", value_parser = clap::value_parser!(u64).range(2..))]
    folds: Option<u64>,
    /// Pool classifiers trained on the N folds of one cross-validation (`segue train
    /// classifier --fold K/N` for K = 1..N, the same seed), each judged on its own held-out
    /// fold: every piece is judged once by a classifier that never trained on it.
    #[arg(long, value_name = "FILE", num_args = 2.., conflicts_with = "model")]
    cross_validated: Vec<PathBuf>,
    /// Judge held-out snippets of N 16th-note steps (default: the classifier's window), each as
    /// `segue classify` judges a file that long: a shorter one read at its own length, a longer
    /// one window by window. Whole pieces are judged as always.
    #[arg(long, value_name = "N", conflicts_with = "baseline", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=segue::train_loop::MAX_SNIPPET_STEPS as u64))]
    snippet_steps: Option<usize>,
}

#[derive(Args)]
struct LstmVaeEvalArgs {
    #[command(flatten)]
    common: EvalArgs,
    /// Seed of the sampling (the priors' draws and the continuations).
    #[arg(long, default_value_t = 1234, value_name = "S")]
    seed: u64,
    /// Sampling temperature of the generated continuations.
    #[arg(long, default_value_t = segue::generate::DEFAULT_TEMPERATURE, value_name = "T")]
    temperature: f32,
    /// Cap on notes per step of the generated continuations.
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_notes: usize,
    /// Snippet length in 16th-note steps (default: the length the model was trained on)
    #[arg(long, value_name = "N")]
    snippet_steps: Option<usize>,
    /// Style strength of the composers' codes decoded, as `segue generate --style-strength`.
    #[arg(long, default_value_t = segue::generate::DEFAULT_STYLE_STRENGTH, value_name = "X", allow_negative_numbers = true)]
    style_strength: f32,
}

#[derive(Subcommand)]
enum TrainCmd {
    /// The LSTM-VAE (the studio's model).
    #[command(after_help = lstm_vae_defaults())]
    LstmVae(Box<TrainArgs>),
    /// The composer classifier (6-layer Transformer encoder + linear head).
    #[command(after_help = loop_defaults(&segue::classify::ClassifierOptions::default().train))]
    Classifier(Box<ClassifierArgs>),
    /// The Transformer VAE (6 + 6 layers, whole snippets at once).
    #[command(after_help = loop_defaults(&segue::tvae::TvaeOptions::default().train))]
    TransformerVae(Box<LoopArgs>),
    /// The DCGAN on 128 x 128 roll snippets.
    #[command(after_help = loop_defaults(&segue::gan::GanOptions::default().train))]
    Dcgan(Box<DcganArgs>),
}

/// The defaults a `train` help lists for a model on the shared loop (read from the model's
/// own options, so the help cannot drift from them).
fn loop_defaults(o: &segue::train_loop::LoopOptions) -> String {
    format!(
        "Defaults (a resumed run keeps its own): {} steps, seed {}, snippets of {} steps, {} \
         balanced batch(es) a step, learning rate {}, transposition up to {} semitones, \
         validation every {} steps, a checkpoint every {} steps.",
        o.steps,
        o.seed,
        o.snippet_steps,
        o.batches_per_step,
        o.learning_rate,
        o.transpose,
        o.eval_every,
        o.checkpoint_every
    )
}

/// The defaults `train lstm-vae --help` lists: the studio preset's.
fn lstm_vae_defaults() -> String {
    match segue::train::TrainOptions::preset("studio") {
        Ok(o) => format!(
            "Defaults, the studio preset's (a resumed run keeps its own; --init changes the \
             learning rate and KL weight as it says): {} steps, seed {}, snippets of {} steps, \
             learning rate {}, KL weight 0 for {} steps, then up to {} over {} steps, free bits \
             {} per dimension, input dropout {}, composer term weight {}, validation every {} \
             steps, a checkpoint every {} steps.",
            o.steps,
            o.seed,
            o.snippet_steps,
            o.learning_rate,
            o.beta.delay,
            o.beta.end,
            o.beta.ramp,
            o.free_bits,
            o.input_dropout,
            o.style_weight,
            o.eval_every,
            o.checkpoint_every
        ),
        Err(_) => String::new(),
    }
}

/// Options of the models trained on the shared loop (classifier, Transformer VAE, DCGAN);
/// unset ones keep the model's defaults (a resumed run: its own, as its checkpoint recorded).
#[derive(Args)]
struct LoopArgs {
    /// The corpus folder: one subfolder of MIDI files per composer.
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,
    /// Optimiser steps in all (a resumed run continues up to this; default below, or a resumed
    /// run's own).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Stop (with a checkpoint) after this many minutes of training in all: a resumed run
    /// counts its earlier sessions, not time spent paused, and keeps its limit unless given
    /// another (0: none).
    #[arg(long, value_name = "MIN")]
    minutes: Option<f64>,
    /// Seed of every random choice: the same seed gives the same loss curve (default 1; a
    /// resumed run keeps its own).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Output folder: model, checkpoints, metrics.jsonl (default: runs/MODEL).
    #[arg(short, long, visible_alias = "output", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Where to compute: cpu, or cuda (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu", value_name = "DEV")]
    device: String,
    /// Snippet length in 16th-note steps.
    #[arg(long, value_name = "N")]
    snippet_steps: Option<usize>,
    /// Balanced batches (one snippet per composer) per optimiser step.
    #[arg(long, value_name = "N")]
    batches: Option<usize>,
    /// Adam learning rate.
    #[arg(long, value_name = "X")]
    lr: Option<f64>,
    /// Random transposition of each snippet by up to this many semitones (0 = off).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=i64::from(segue::train_loop::MAX_TRANSPOSE)))]
    transpose: Option<u8>,
    /// Leave out each note of each training snippet with this probability (default 0).
    #[arg(long, value_name = "P")]
    note_dropout: Option<f64>,
    /// Draw each composer's pieces equally often (default: every snippet start equally, so
    /// long pieces give more snippets).
    #[arg(long)]
    by_piece: bool,
    /// Validate every N steps.
    #[arg(long, value_name = "N")]
    eval_every: Option<usize>,
    /// Checkpoint every N steps.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
struct ClassifierArgs {
    #[command(flatten)]
    run: LoopArgs,
    /// Dropout in the encoder layers (default 0.1).
    #[arg(long, value_name = "P")]
    dropout: Option<f32>,
    /// L2 weight decay (default 0).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Share of steps (0 to 1) that train on a shorter window, the first 64 to all steps of
    /// each snippet, so short rolls (read at their own length) are judged better (default 0).
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    short_windows: Option<f64>,
    /// Roll steps per token (default 4, one beat); the longest snippet is 128 tokens.
    #[arg(long, value_name = "N")]
    patch_steps: Option<usize>,
    /// Model width of the 6 encoder layers (default 128; a multiple of the 8 heads); the
    /// feed-forward blocks are twice as wide.
    #[arg(long, value_name = "N")]
    width: Option<usize>,
    /// Tell each token where in its bar it starts and how long its bar is, from each piece's
    /// metre map (default false: the notes alone).
    #[arg(long, value_name = "BOOL")]
    metre_map: Option<bool>,
    /// Add a second linear head that reads a few statistics of each snippet (which pitches
    /// and pitch classes sound, on which sixteenth of the bar notes start, how dense it is),
    /// trained with the encoder (default false).
    #[arg(long, value_name = "BOOL")]
    statistics: Option<bool>,
    /// For cross-validation: hold out fold K of N (each composer's pieces dealt round N folds
    /// in an order drawn from the seed) instead of a tenth of each composer's pieces; `segue
    /// eval classifier --cross-validated` pools the N runs.
    #[arg(long, value_name = "K/N")]
    fold: Option<segue::dataset::Fold>,
}

#[derive(Args)]
struct DcganArgs {
    #[command(flatten)]
    run: LoopArgs,
    /// How the generator's output becomes notes, in training what the discriminator sees:
    /// probabilities (the plain DCGAN), drawn (cells drawn 0/1) or thresholded (cells above
    /// 0.5); the binary kinds pass the gradient straight through (default: thresholded).
    #[arg(long, value_name = "KIND")]
    cells: Option<segue::models::dcgan::Cells>,
    /// The discriminator's Adam learning rate (default: --lr, the generator's); lower makes
    /// a two-timescale game in which the discriminator wins later.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    d_lr: Option<f64>,
    /// Weight of feature matching in the generator's loss (default 0, off): the generator
    /// also matches the batch means of the discriminator's last hidden features on real
    /// snippets.
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    feature_matching: Option<f64>,
    /// The discriminator's target for real snippets (default 1; 0.9 is one-sided label
    /// smoothing).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    real_label: Option<f64>,
    /// Gaussian noise (standard deviation) added to every cell the discriminator sees,
    /// falling to 0 at the step count the run started with (kept when it is continued to more
    /// steps; default 0, off).
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    instance_noise: Option<f64>,
    /// Spectral normalisation of the discriminator's convolutions (each kernel divided by its
    /// largest singular value).
    #[arg(long)]
    spectral_norm: bool,
}

/// A run's time limit in seconds from `--minutes` (0: none), else the one it had (a resumed
/// run's, or none).
fn time_limit(minutes: Option<f64>, had: Option<f64>) -> Option<f64> {
    match minutes {
        Some(0.0) => None,
        Some(m) => Some(m * 60.0),
        None => had,
    }
}

impl LoopArgs {
    /// Applies the given flags over a model's default loop options (or, resuming, the run's
    /// own).
    fn apply(&self, o: &mut segue::train_loop::LoopOptions) {
        if let Some(v) = self.steps {
            o.steps = v;
        }
        o.max_seconds = time_limit(self.minutes, o.max_seconds);
        if let Some(v) = self.seed {
            o.seed = v;
        }
        if let Some(v) = self.snippet_steps {
            o.snippet_steps = v;
        }
        if let Some(v) = self.batches {
            o.batches_per_step = v;
        }
        if let Some(v) = self.lr {
            o.learning_rate = v;
        }
        if let Some(v) = self.transpose {
            o.transpose = v;
        }
        if let Some(v) = self.note_dropout {
            o.note_dropout = v;
        }
        o.by_piece |= self.by_piece;
        if let Some(v) = self.eval_every {
            o.eval_every = v;
        }
        if let Some(v) = self.checkpoint_every {
            o.checkpoint_every = v;
        }
    }

    fn out_dir(&self, kind: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(kind))
    }
}

#[derive(Args)]
struct TrainArgs {
    /// The corpus folder: one subfolder of MIDI files per composer.
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,
    /// Model size: studio (the default; a resumed run keeps its own) or paper (hidden 512, 3
    /// layers).
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// Optimiser steps in all (a resumed run continues up to this; default 7000 for studio,
    /// about an hour on two cores, 12000 for paper, or a resumed run's own).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Stop (with a checkpoint) after this many minutes of training in all: a resumed run
    /// counts its earlier sessions, not time spent paused, and keeps its limit unless given
    /// another (0: none).
    #[arg(long, value_name = "MIN")]
    minutes: Option<f64>,
    /// Seed of every random choice: the same seed gives the same loss curve (default 1; a
    /// resumed run keeps its own).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Output folder: model, checkpoints, metrics.jsonl.
    #[arg(
        short,
        long,
        visible_alias = "output",
        default_value = "runs/lstm-vae",
        value_name = "DIR"
    )]
    out: PathBuf,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Where to compute: cpu, or cuda (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu", value_name = "DEV")]
    device: String,
    /// Snippet length in 16th-note steps.
    #[arg(long, value_name = "N")]
    snippet_steps: Option<usize>,
    /// Adam learning rate.
    #[arg(long, value_name = "X")]
    lr: Option<f64>,
    /// Final KL weight.
    #[arg(long, value_name = "X")]
    beta: Option<f64>,
    /// Steps at KL weight 0 before the ramp.
    #[arg(long, value_name = "N")]
    beta_delay: Option<usize>,
    /// Steps of the linear KL-weight ramp.
    #[arg(long, value_name = "N")]
    beta_ramp: Option<usize>,
    /// Free bits per latent dimension (nats).
    #[arg(long, value_name = "X")]
    free_bits: Option<f64>,
    /// Probability of hiding the previous step from the decoder.
    #[arg(long, value_name = "P")]
    input_dropout: Option<f64>,
    /// Probability of hiding each sounding note from the encoder during training (note
    /// dropout on its input; default 0 = off).
    #[arg(long, value_name = "P")]
    encoder_dropout: Option<f64>,
    /// Weight of the composer term on the latent means.
    #[arg(long, value_name = "X")]
    style_weight: Option<f64>,
    /// Spread of that term's composer centres at the start (standard deviation; default 1).
    #[arg(long, value_name = "X")]
    centre_scale: Option<f64>,
    /// Weight of the piece term: each snippet's latent mean must pick out another snippet of
    /// its own piece among the batch (default 0 = off).
    #[arg(long, value_name = "X")]
    piece_weight: Option<f64>,
    /// Weight of the MMD term (InfoVAE): pulls the sampled codes as a whole onto N(0, I), so
    /// a prior sample lands where the decoder was trained (default 0 = off).
    #[arg(long, value_name = "X")]
    mmd_weight: Option<f64>,
    /// Spread of the MMD term's target N(0, S^2 I): above 1 the codes spread wider than the
    /// prior, so a prior sample falls inside them (default 1).
    #[arg(long, value_name = "S")]
    mmd_scale: Option<f64>,
    /// Weight of the covariance term (DIP-VAE-II): the codes as a whole must have the
    /// identity's covariance, filling N(0, I) in every direction (default 0 = off).
    #[arg(long, value_name = "X")]
    covariance_weight: Option<f64>,
    /// Start from a trained model's weights instead of random ones, e.g. the shipped model on
    /// a folder of your own: fine-tuning (fresh optimiser, learning rate 1e-4 and the full KL
    /// weight from the start, unless set). Its sizes must be this run's; the composer term
    /// starts at its stored codes for the composers it knows by name.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Take the KL against a composer-aware prior N(c_composer, I) (learned centres, stored
    /// with the model) instead of N(0, I).
    #[arg(long)]
    composer_prior: bool,
    /// Random transposition of each training snippet by up to this many semitones
    /// (0 = off, the default).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=i64::from(segue::train_loop::MAX_TRANSPOSE)))]
    transpose: Option<u8>,
    /// Balanced batches (one snippet per composer) per optimiser step (default 1; a folder of
    /// one or two composers trains better on several).
    #[arg(long, value_name = "N")]
    batches: Option<usize>,
    /// Add a linear map from the previous step to the output logits (a skip past the LSTM:
    /// held notes need no trip through the recurrence).
    #[arg(long)]
    output_skip: bool,
    /// LSTM hidden size (overrides the preset).
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// LSTM layers (overrides the preset).
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Size of the latent code z (overrides the preset's 20).
    #[arg(long, value_name = "N")]
    latent: Option<usize>,
    /// Give the decoder its position in the bar: a one-hot over N steps (16 = a 4/4 bar of
    /// sixteenths; --metre-map says where the bars fall). 0 = off. Default: the preset's (16
    /// for studio, 0 for paper).
    #[arg(long, value_name = "N")]
    metre: Option<usize>,
    /// Where the metre input's bars fall: true = by each piece's own metre map (3/4 and 6/8
    /// bars of 12 steps; snippets may start anywhere), false = every N steps from the
    /// piece's start, whatever the piece's metre (training snippets then start on those bar
    /// lines). Default: the preset's (true for studio), the model's with --init, a resumed
    /// run's own.
    #[arg(long, value_name = "BOOL")]
    metre_map: Option<bool>,
    /// Validate every N steps.
    #[arg(long, value_name = "N")]
    eval_every: Option<usize>,
    /// Checkpoint every N steps.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Use candle's autograd over a step-by-step LSTM instead of the fused LSTM (slow; for
    /// comparing loss curves).
    #[arg(long)]
    composed_lstm: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Convert the whole corpus to rolls and compare with symusic and pretty_midi.
    Roll(BenchRollArgs),
    /// Time LSTM-VAE training steps and generation against the PyTorch reference.
    LstmVae(BenchModelArgs),
    /// One measurement in its own process (used by `bench lstm-vae`).
    #[command(hide = true)]
    LstmVaeWorker {
        #[arg(long)]
        case: String,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long)]
        no_train: bool,
        #[arg(long)]
        no_gen: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Args)]
struct BenchRollArgs {
    /// The corpus folder to convert (default: ../shared/corpus from the current folder, else
    /// beside the source tree).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// The folder holding the reference roll_convert.py (default: ../shared/bench/reference,
    /// found as the corpus is).
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
    /// The Python virtual environment for the references, created on first use (about 110 MB
    /// for the roll references; `bench lstm-vae` adds PyTorch: about 3 GB downloaded, 5 GB
    /// installed); a relative path is from the current folder.
    #[arg(long, value_name = "DIR", default_value = "target/bench-venv")]
    venv: PathBuf,
    /// Timed passes over the corpus, of Segue's conversion and of each Python reference alike
    /// (the median pass is reported), 1 to 100.
    #[arg(long, default_value_t = 5, value_name = "NUM", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    repeats: usize,
    /// Skip the Python references (Segue's own timings only).
    #[arg(long)]
    no_reference: bool,
    /// Exit with an error when the mean agreement with the reference roll is below this.
    #[arg(long, value_name = "X", conflicts_with = "no_reference")]
    check_agreement: Option<f64>,
}

#[derive(Args)]
struct BenchModelArgs {
    /// Presets to time: studio, paper (comma-separated).
    #[arg(long, default_value = "studio,paper", value_delimiter = ',')]
    presets: Vec<String>,
    /// Timed training steps per side (after 2 warm-up steps); the median is reported.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    iters: usize,
    /// The folder holding the reference lstm_vae_torch.py (default: ../shared/bench/reference
    /// from the current folder, else beside the source tree).
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
    /// The Python virtual environment for the references, created on first use (about 110 MB
    /// for the roll references; `bench lstm-vae` adds PyTorch: about 3 GB downloaded, 5 GB
    /// installed); a relative path is from the current folder.
    #[arg(long, value_name = "DIR", default_value = "target/bench-venv")]
    venv: PathBuf,
    /// Skip PyTorch (Segue's own timings only).
    #[arg(long)]
    no_reference: bool,
    /// Where both sides run: cpu, or cuda (a build with `--features cuda`; PyTorch then runs
    /// on the GPU too).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: String,
    /// A Python that already has PyTorch (a GPU machine's own, say), instead of the
    /// environment in --venv.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
}

#[derive(Args, Clone, Copy)]
struct QuantizeArgs {
    /// Drop notes whose length rounds to 0 steps, as the paper did (default: keep as 1 step).
    #[arg(long)]
    paper_rounding: bool,
    /// Leave out channel 10 (drums); by default they are merged like every other channel.
    #[arg(long)]
    no_drums: bool,
    /// Hold notes on while the sustain pedal (controller 64) is down, as a piano sounds them
    /// (a note released under the pedal sounds until it is lifted or its key is struck again);
    /// by default notes sound as long as they are written, as the models were trained.
    #[arg(long)]
    pedal: bool,
}

impl QuantizeArgs {
    fn options(self) -> QuantizeOptions {
        QuantizeOptions {
            keep_short_notes: !self.paper_rounding,
            include_drums: !self.no_drums,
            sustain_pedal: self.pedal,
            ..QuantizeOptions::default()
        }
    }
}

#[derive(Args, Clone)]
struct CacheArgs {
    /// Folder for cached rolls (default: $SEGUE_CACHE_DIR, else $XDG_CACHE_HOME/segue/rolls,
    /// else the platform's cache folder: ~/.cache/segue/rolls on Linux). A load that adds rolls
    /// prunes it to $SEGUE_CACHE_LIMIT_MB (default 1024), least recently used first.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the roll cache.
    #[arg(long)]
    no_cache: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let writes_files = matches!(
        cli.command,
        Some(
            Cmd::Roll { .. }
                | Cmd::Render { .. }
                | Cmd::Generate(_)
                | Cmd::ConvertModel { .. }
                | Cmd::Train { .. }
                | Cmd::Eval {
                    command: EvalCmd::Report(_)
                }
        )
    );
    WRITES_FILES.store(writes_files, std::sync::atomic::Ordering::Relaxed);
    // The studio handles the signals itself (it saves the piece and closes).
    if !matches!(cli.command, None | Some(Cmd::Studio { .. })) {
        install_stop_handler();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("segue: {err:#}");
            // Stopped by Ctrl+C: the shell's code for an interrupted program.
            if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// How many bars `len` steps from the bar line `from` fill: "5 bars of 3/4", "4.5 bars of
/// 4/4", or "6 bars" across a change of metre.
fn bars_of(meters: &[segue::meter::StepMeter], from: usize, len: usize) -> String {
    let map = segue::meter::BarMap::new(meters);
    let bars = map.position((from + len) as f64) - map.position(from as f64);
    let bars = (bars * 100.0).round() / 100.0;
    let bars = format!("{bars} bar{}", if bars == 1.0 { "" } else { "s" });
    let meter = segue::meter::meter_at(meters, from);
    if meters
        .iter()
        .any(|m| m.step > from && m.step < from + len && m.meter != meter)
    {
        bars
    } else {
        format!("{bars} of {meter}")
    }
}

/// Prints `shell`'s completion script for every command and option.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "segue", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(())
}

/// Writes the manual pages: `segue.1`, then one for each command that is shown in `--help`
/// (`segue-generate.1`, `segue-train-lstm-vae.1`), each written whole or not at all.
fn manual(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot make the folder", shown(dir)))?;
    let mut cli = Cli::command();
    cli.build();
    let mut written = 0;
    let mut pages = vec![(String::from("segue"), cli)];
    while let Some((name, cmd)) = pages.pop() {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            // `help` is clap's own; its page would say what `--help` says.
            if sub.get_name() != "help" {
                pages.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.name(name.clone()))
            .source(format!("segue {VERSION}"))
            .manual("Segue")
            .render(&mut page)
            .context("making a manual page")?;
        let path = dir.join(format!("{name}.1"));
        segue::fsutil::write_atomic(&path, &page).with_context(|| shown(&path).to_string())?;
        written += 1;
    }
    out!("{written} manual pages in {}", shown(dir));
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        // Without the studio, `segue` alone is help, not an error.
        None if !cfg!(feature = "studio") => Ok(Cli::command().print_help()?),
        None => studio(None),
        Some(Cmd::Studio { file }) => studio(file),
        Some(Cmd::Completions { shell }) => completions(shell),
        Some(Cmd::Manual { dir }) => manual(&dir),
        Some(Cmd::Info {
            file,
            json,
            quantize,
        }) => info(&file, json, quantize.options()),
        Some(Cmd::Roll {
            file,
            output,
            scale,
            quantize,
        }) => roll_cmd(&file, &output, scale, quantize.options()),
        Some(Cmd::Render {
            file,
            output,
            bpm,
            no_normalize,
            loudness,
            quantize,
        }) => render_cmd(
            &file,
            &output,
            bpm,
            level(no_normalize, loudness)?,
            quantize.options(),
        ),
        Some(Cmd::Corpus {
            command:
                CorpusCmd::Stats {
                    dir,
                    json,
                    cache,
                    quantize,
                },
        }) => corpus_stats(&dir, json, &cache, quantize.options()),
        Some(Cmd::Bench {
            command: BenchCmd::Roll(args),
        }) => bench_roll(args),
        Some(Cmd::Bench {
            command: BenchCmd::LstmVae(args),
        }) => bench_lstm_vae(args),
        Some(Cmd::Bench {
            command:
                BenchCmd::LstmVaeWorker {
                    case,
                    iters,
                    no_train,
                    no_gen,
                    device,
                },
        }) => {
            let case: segue::bench_model::Case = serde_json::from_str(&case)?;
            let device = compute_device(&device)?;
            let t = segue::bench_model::time_own(&case, 2, iters, 5, !no_train, !no_gen, &device)?;
            out!("{}", serde_json::to_string(&t)?);
            Ok(())
        }
        Some(Cmd::Generate(args)) => generate_cmd(*args),
        Some(Cmd::Classify {
            file,
            model,
            window,
            hop,
            top,
            json,
        }) => classify_cmd(&file, model.as_deref(), window, hop, top, json),
        Some(Cmd::ConvertModel { input, output, f16 }) => {
            let dtype = if f16 {
                candle_core::DType::F16
            } else {
                candle_core::DType::F32
            };
            // A model name converts the shipped file of that model; a path is read as given
            // (one that is not UTF-8 too).
            let (kind, input) = match input.to_str() {
                Some(given) => resolve_model(Some(given))?,
                None => (model_kind_of(&input)?, input),
            };
            output_kind(&output, &["safetensors"])?;
            let manifest = segue::models::weights::manifest_path(&output);
            not_an_input(&output, &[&input])?;
            not_an_input(&manifest, &[&segue::models::weights::manifest_path(&input)])?;
            // The weights and their manifest belong together: a stop waits for both.
            let _both = hold_stop();
            if kind == "lstm-vae" {
                segue::models::trained::convert(&input, &output, dtype)?;
            } else {
                segue::models::saved::convert_any(&input, &output, dtype)?;
            }
            out!("wrote {}", shown(&output));
            Ok(())
        }
        Some(Cmd::Eval {
            command: EvalCmd::LstmVae(args),
        }) => eval_cmd(args),
        Some(Cmd::Eval {
            command: EvalCmd::Classifier(args),
        }) => eval_classifier(args),
        Some(Cmd::Eval {
            command: EvalCmd::Report(args),
        }) => eval_report(args),
        Some(Cmd::Train {
            command: TrainCmd::Classifier(args),
        }) => {
            let ClassifierArgs {
                run,
                dropout,
                weight_decay,
                short_windows,
                patch_steps,
                width,
                metre_map,
                statistics,
                fold,
            } = *args;
            let mut defaults = starting_options(
                &run,
                segue::classify::KIND,
                segue::classify::ClassifierOptions::default(),
            )?;
            if fold.is_some() {
                defaults.train.fold = fold;
            }
            if let Some(w) = width {
                let stack = &mut defaults.config.stack;
                stack.width = w;
                stack.feed_forward = w.saturating_mul(2);
                // Checked before the corpus loads, like the other models' sizes.
                stack
                    .check()
                    .map_err(|e| anyhow::anyhow!("--width {w}: {e}"))?;
            }
            if let Some(n) = patch_steps {
                // Checked before the corpus loads, like the other models' sizes.
                if n == 0 {
                    anyhow::bail!("--patch-steps must be at least 1");
                }
                defaults.config.patch_steps = n;
            }
            if let Some(p) = dropout {
                defaults.config.stack.dropout = p;
            }
            // A resumed run reads the metre as it did, unless told otherwise (and then it is
            // refused, naming what differs).
            if let Some(m) = metre_map {
                defaults.config.metre_map = m;
            }
            if let Some(s) = statistics {
                defaults.config.statistics = s;
            }
            if let Some(w) = weight_decay {
                // Checked before the corpus loads (the library refuses it too).
                if !(w.is_finite() && w >= 0.0) {
                    anyhow::bail!("--weight-decay must be 0 or more, not {w}");
                }
                defaults.weight_decay = w;
            }
            if let Some(p) = short_windows {
                if !(0.0..=1.0).contains(&p) {
                    anyhow::bail!("--short-windows must be between 0 and 1, not {p}");
                }
                defaults.short_windows = p;
            }
            train_on_loop_from(
                segue::classify::KIND,
                run,
                defaults,
                |o: &mut segue::classify::ClassifierOptions| &mut o.train,
                segue::classify::train_classifier,
            )
        }
        Some(Cmd::Train {
            command: TrainCmd::TransformerVae(args),
        }) => {
            let defaults = starting_options(&args, segue::tvae::KIND, Default::default())?;
            train_on_loop_from(
                segue::tvae::KIND,
                *args,
                defaults,
                |o: &mut segue::tvae::TvaeOptions| &mut o.train,
                segue::tvae::train_tvae,
            )
        }
        Some(Cmd::Train {
            command: TrainCmd::Dcgan(args),
        }) => {
            let DcganArgs {
                run,
                cells,
                d_lr,
                feature_matching,
                real_label,
                instance_noise,
                spectral_norm,
            } = *args;
            // Checked before the corpus loads (the library refuses them too).
            if let Some(w) = feature_matching.filter(|w| !(w.is_finite() && *w >= 0.0)) {
                anyhow::bail!("--feature-matching must be 0 or more, not {w}");
            }
            if let Some(r) = d_lr.filter(|r| !(r.is_finite() && *r > 0.0)) {
                anyhow::bail!("--d-lr must be a positive number, not {r}");
            }
            if let Some(r) = real_label.filter(|r| !(r.is_finite() && *r > 0.5 && *r <= 1.0)) {
                anyhow::bail!("--real-label must be above 0.5 and at most 1, not {r}");
            }
            if let Some(s) = instance_noise.filter(|s| !(s.is_finite() && *s >= 0.0)) {
                anyhow::bail!("--instance-noise must be 0 or more, not {s}");
            }
            let mut defaults: segue::gan::GanOptions =
                starting_options(&run, segue::gan::KIND, Default::default())?;
            if d_lr.is_some() {
                defaults.discriminator_learning_rate = d_lr;
            }
            if let Some(w) = feature_matching {
                defaults.feature_matching = w;
            }
            if let Some(r) = real_label {
                defaults.real_label = r;
            }
            if let Some(s) = instance_noise {
                defaults.instance_noise = s;
            }
            if let Some(c) = cells {
                defaults.config.cells = c;
            }
            defaults.config.spectral_norm |= spectral_norm;
            train_on_loop_from(
                segue::gan::KIND,
                run,
                defaults,
                |o: &mut segue::gan::GanOptions| &mut o.train,
                segue::gan::train_gan,
            )
        }
        Some(Cmd::Train {
            command: TrainCmd::LstmVae(args),
        }) => train_lstm_vae(*args),
    }
}

fn info(file: &Path, json: bool, opts: QuantizeOptions) -> Result<()> {
    let song = Song::read_named(file)?;
    let roll = Roll::from_song(&song, &opts).map_err(|p| segue::Error::midi(file, p))?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&info_json(file, &song, &roll, opts.sustain_pedal))?
        );
        return Ok(());
    }
    out!("file:          {}", shown(file));
    if let Some(title) = &song.title {
        out!("title:         {title}");
    }
    if let Some(copyright) = &song.copyright {
        out!("copyright:     {copyright}");
    }
    out!("format:        {}", song.format.number());
    out!("tracks:        {}", song.tracks);
    match song.division {
        Division::Metrical(tpq) => out!("division:      {tpq} ticks per quarter note"),
        Division::Timecode { fps, subframes } => out!(
            "division:      SMPTE {fps} fps x {subframes} ticks per frame (read on a 120 bpm grid)"
        ),
    }
    out!(
        "tempo changes: {} ({:.1} bpm at the start)",
        song.tempo.len(),
        song.initial_bpm()
    );
    // The metre the piece starts in and its key, then where they change (bars counted as the
    // studio counts them).
    let bars = segue::meter::BarMap::new(roll.meters());
    let at_bar = |step: usize| format!(" at bar {}", bars.position(step as f64).floor());
    if !song.time_signatures.is_empty() {
        let changes: Vec<String> = (roll.meters().iter().filter(|m| m.step > 0))
            .map(|m| format!("{}{}", m.meter, at_bar(m.step)))
            .collect();
        out!(
            "metre:         {}",
            first_then(roll.meter_at(0).to_string(), &changes)
        );
    }
    if let Some((first, later)) = roll.keys().split_first() {
        let first = match first.step {
            0 => first.key.to_string(),
            step => format!("{}{}", first.key, at_bar(step)),
        };
        let changes: Vec<String> = (later.iter())
            .map(|k| format!("{}{}", k.key, at_bar(k.step)))
            .collect();
        out!("key:           {}", first_then(first, &changes));
    }
    if let Some(pedal) = song.pedal_said(opts.sustain_pedal) {
        out!("pedal:         {pedal}");
    }
    let drums = song.drum_notes();
    out!(
        "notes:         {} ({} on channel 10)",
        song.notes.len(),
        drums
    );
    out!(
        "roll:          {} x 128 ({} sounding cells, {} notes after quantization, as the models read it)",
        roll.steps(),
        roll.active_cells(),
        roll.notes().len()
    );
    out!(
        "duration:      {}",
        format_duration(song.duration_seconds())
    );
    for w in &song.warnings {
        out!("warning:       {w}");
    }
    Ok(())
}

/// What `segue info --json` prints: the text's fields by stable names, each always there;
/// metres and keys as lists of changes (the first at step 0 where the piece starts with one),
/// bars counted as the studio counts them.
fn info_json(file: &Path, song: &Song, roll: &Roll, pedal_applied: bool) -> serde_json::Value {
    let bars = segue::meter::BarMap::new(roll.meters());
    let bar = |step: usize| bars.position(step as f64).floor() as u64;
    // As the text says it: the metre at the start (4/4 too, which the roll leaves unsaid),
    // then each change.
    let metre = |step: usize, meter: &segue::midi::Meter| serde_json::json!({"step": step, "bar": bar(step), "metre": meter.to_string()});
    let metres: Vec<_> = match song.time_signatures.is_empty() {
        true => Vec::new(),
        false => std::iter::once(metre(0, &roll.meter_at(0)))
            .chain((roll.meters().iter().filter(|m| m.step > 0)).map(|m| metre(m.step, &m.meter)))
            .collect(),
    };
    let keys: Vec<_> = (roll.keys().iter())
        .map(|k| serde_json::json!({"step": k.step, "bar": bar(k.step), "key": k.key.to_string()}))
        .collect();
    let division = match song.division {
        Division::Metrical(tpq) => serde_json::json!({"ticks_per_quarter": tpq}),
        Division::Timecode { fps, subframes } => {
            serde_json::json!({"smpte_fps": fps, "ticks_per_frame": subframes})
        }
    };
    serde_json::json!({
        "file": file.to_string_lossy(),
        "title": song.title,
        "copyright": song.copyright,
        "format": song.format.number(),
        "tracks": song.tracks,
        "division": division,
        "tempo_changes": song.tempo.len(),
        "bpm_at_start": song.initial_bpm(),
        "metres": metres,
        "keys": keys,
        "pedal_presses": song.pedal_presses(),
        "pedal_applied": pedal_applied,
        "notes": song.notes.len(),
        "drum_notes": song.drum_notes(),
        "roll": {
            "steps": roll.steps(),
            "pitches": 128,
            "sounding_cells": roll.active_cells(),
            "notes": roll.notes().len(),
        },
        "seconds": song.duration_seconds(),
        "warnings": song.warnings,
    })
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02} ({seconds:.2} s)", s / 60, s % 60)
}

/// The file's extension in lowercase ("" when it has none).
fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

fn output_kind(output: &Path, allowed: &[&str]) -> Result<String> {
    let ext = extension(output);
    if output == Path::new("-") {
        bail!(
            "-: Segue writes files, not to stdout (a WAV or MIDI file is made whole, then put in place): name a file"
        );
    }
    let names = || {
        (allowed.iter().map(|a| format!(".{a}")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if output.is_dir() {
        bail!(
            "{} is a folder: name the file to write (ending in {})",
            shown(output),
            names()
        );
    }
    if !allowed.contains(&ext.as_str()) {
        let kind = if ext.is_empty() {
            "an output without a type".to_string()
        } else {
            format!("unsupported output type '.{ext}'")
        };
        bail!("{}: {kind} (use one of: {})", shown(output), names());
    }
    Ok(ext)
}

/// Refuses to write `output` over one of the command's `inputs` (the user's own file would be
/// replaced by the result).
fn not_an_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    if let Some(input) = inputs.iter().find(|i| segue::fsutil::same_file(output, i)) {
        bail!(
            "{}: this is the input {}; write the result to another file",
            shown(output),
            shown(input)
        );
    }
    Ok(())
}

fn roll_cmd(file: &Path, output: &Path, scale: usize, opts: QuantizeOptions) -> Result<()> {
    let kind = output_kind(output, &["npy", "png", "mid", "midi"])?;
    not_an_input(output, &[file])?;
    // A MIDI file out is a piece for a musician (repeated notes a 32nd off the grid kept
    // apart, its trailing rests kept); a roll out is data, read as the models were taught.
    let opts = match kind.as_str() {
        "npy" | "png" => opts,
        _ => opts.as_whole_file(),
    };
    let (roll, copyright, _) = read_midi_noted(file, &opts)?;
    match kind.as_str() {
        "npy" => npy::write_roll(output, &roll)?,
        "png" => image::write_png(output, &roll, scale)?,
        _ => roll.write_midi_noting(output, copyright.as_deref())?,
    }
    out!(
        "wrote {} ({} x 128, {} notes)",
        shown(output),
        roll.steps(),
        roll.notes().len()
    );
    Ok(())
}

/// Reads a MIDI file as a roll, saying on stderr what damage was skipped (a file cut short
/// plays only up to the cut; the user must hear of it, not only `segue info`).
fn read_midi(file: &Path, opts: &QuantizeOptions) -> Result<Roll> {
    Ok(read_midi_noted(file, opts)?.0)
}

/// A MIDI file given as a style (`--from`, `--to`): its roll, refused without notes (its code
/// would be the code of silence, taken as someone's style).
fn read_style(file: &Path, opts: &QuantizeOptions) -> Result<Roll> {
    let roll = read_midi(file, opts)?;
    if roll.active_cells() == 0 {
        bail!("{}: no notes to take a style from", shown(file));
    }
    Ok(roll)
}

/// A MIDI file's roll, its copyright notice, if it has one (an output made of its notes
/// keeps it), and how many notes the roll was made from (its drums left out unless asked).
fn read_midi_noted(file: &Path, opts: &QuantizeOptions) -> Result<(Roll, Option<String>, usize)> {
    let song = Song::read_named(file)?;
    for w in &song.warnings {
        warning!("{}: {w}", shown(file));
    }
    if let Some(drums) = song.drums_left_out().filter(|_| !opts.include_drums) {
        note!("{}: {drums}", shown(file));
    }
    if let Some(pedal) = song.pedal_said(opts.sustain_pedal) {
        let hint = if opts.sustain_pedal {
            ""
        } else {
            " (--pedal holds them)"
        };
        note!("{}: {pedal}{hint}", shown(file));
    }
    let roll = Roll::from_song(&song, opts).map_err(|p| segue::Error::midi(file, p))?;
    let read = (song.notes.iter())
        .filter(|n| opts.include_drums || n.channel != segue::midi::DRUM_CHANNEL)
        .count();
    Ok((roll, song.copyright, read))
}

/// The level a WAV is written at: the synth's own (`--no-normalize`), normalised to a -1 dBFS
/// peak (the default), or to a `--loudness` within [`segue::render::LOUDNESS_RANGE`].
fn level(no_normalize: bool, loudness: Option<f64>) -> Result<(bool, Option<f64>)> {
    if let Some(l) = loudness
        && !segue::render::LOUDNESS_RANGE.contains(&l)
    {
        bail!(
            "--loudness must be {}..={} LUFS, but was {l}",
            segue::render::LOUDNESS_RANGE.start(),
            segue::render::LOUDNESS_RANGE.end()
        );
    }
    Ok((!no_normalize, loudness))
}

fn render_cmd(
    file: &Path,
    output: &Path,
    bpm: Option<f64>,
    (normalize, loudness): (bool, Option<f64>),
    opts: QuantizeOptions,
) -> Result<()> {
    output_kind(output, &["wav"])?;
    not_an_input(output, &[file])?;
    if extension(file) == "npy" && opts != QuantizeOptions::default() {
        bail!(
            "{}: a .npy roll is already quantized, with no pedal or channels: --pedal, \
             --no-drums and --paper-rounding apply to MIDI files",
            shown(file)
        );
    }
    if let Some(b) = bpm
        && !(1.0..=1000.0).contains(&b)
    {
        bail!("--bpm must be 1..=1000, but was {b}");
    }
    // A rendering of a file carries its copyright notice (CC BY-SA asks for its credit).
    // Rounded as the studio rounds a piece, but ending with its last note: the release tail
    // follows it (a stray event an hour later would otherwise render an hour of silence).
    let opts = QuantizeOptions {
        keep_length: false,
        ..opts.as_whole_file()
    };
    let (roll, copyright) = if extension(file) == "npy" {
        (npy::read_roll(file)?, None)
    } else {
        let (roll, copyright, read) = read_midi_noted(file, &opts)?;
        // Rendered as the models hear it: what the grid took away is said.
        let kept = roll.notes().len();
        if kept < read {
            let dropped = if opts.keep_short_notes {
                ""
            } else {
                " or, shorter than half a sixteenth, are dropped (--paper-rounding)"
            };
            note!(
                "{}: rendered from its roll on the sixteenth-note grid: {} of its {read} \
                 notes merge with another of the same key (struck again within a sixteenth, \
                 or at once on two channels){dropped}",
                shown(file),
                read - kept
            );
        }
        (roll, copyright)
    };
    let render_opts = RenderOptions {
        bpm,
        normalize,
        loudness,
        ..RenderOptions::default()
    };
    let bar = progress_bar(1000, "rendering");
    let rendered = render_to_wav_noting(
        &roll,
        &render_opts,
        output,
        copyright.as_deref(),
        &mut |f| bar.set_position((f * 1000.0) as u64),
        stop_on_ctrl_c(),
    )?;
    bar.finish_and_clear();
    out!(
        "wrote {} ({})",
        shown(output),
        rendered.describe(&render_opts)
    );
    Ok(())
}

/// Set by Ctrl+C (or SIGTERM, SIGHUP): the exit code is then 130.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether the running work checks [`STOP`] and stops by itself at its next check; else a stop
/// ends the program at once.
static STOP_WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// While positive, writes that belong together are under way: a first stop waits for them.
static STOP_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// The stop flag of the training run under way, if any.
static TRAINING_STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

/// Handles Ctrl+C, SIGTERM and SIGHUP for every command but the studio: work that watches for
/// a stop ([`stop_on_ctrl_c`], a training run) stops at its next check; writes that belong
/// together ([`hold_stop`]) are finished first; anything else ends at once. Ending, the
/// temporary files of the writes cut short are removed and the exit code is 130; a second
/// signal ends the program at once, unless it came with the first
/// ([`segue::stop_signal::ONE_STOP`]).
fn install_stop_handler() {
    use std::sync::atomic::Ordering;
    static STOPS: segue::stop_signal::Stops = segue::stop_signal::Stops::new();
    let _ = segue::stop_signal::on_stop(|| {
        STOP.store(true, Ordering::Relaxed);
        let again = STOPS.again();
        if let Some(training) = TRAINING_STOP.get() {
            training.store(true, Ordering::Relaxed);
        }
        let waits = STOP_WATCHED.load(Ordering::Relaxed) || STOP_HELD.load(Ordering::Relaxed) > 0;
        if again || !waits {
            segue::fsutil::remove_unfinished_and_exit(130);
        }
    });
}

/// The flag a stop sets, for long work that writes a file: it stops at its next check and
/// removes what it had half written (a second Ctrl+C ends the program at once, removing the
/// temporary files of the writes it cuts short).
fn stop_on_ctrl_c() -> &'static std::sync::atomic::AtomicBool {
    STOP_WATCHED.store(true, std::sync::atomic::Ordering::Relaxed);
    &STOP
}

/// Holds a stop back while it lives (writes that belong together: a model's weights and
/// manifest, a report's files); a stop that came meanwhile ends the program when it is dropped.
fn hold_stop() -> StopHeld {
    STOP_HELD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    StopHeld
}

/// See [`hold_stop`].
struct StopHeld;

impl Drop for StopHeld {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let last = STOP_HELD.fetch_sub(1, Ordering::Relaxed) == 1;
        if last && STOP.load(Ordering::Relaxed) && !STOP_WATCHED.load(Ordering::Relaxed) {
            segue::fsutil::remove_unfinished_and_exit(130);
        }
    }
}

fn progress_bar(len: u64, message: &'static str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn load_corpus(dir: &Path, cache: &CacheArgs, opts: QuantizeOptions) -> Result<Corpus> {
    let load_opts = LoadOptions {
        quantize: opts,
        cache_dir: if cache.no_cache {
            None
        } else {
            cache
                .cache_dir
                .clone()
                .or_else(segue::dataset::default_cache_dir)
        },
    };
    let bar = progress_bar(0, "loading");
    let corpus = Corpus::load(dir, &load_opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    for f in &corpus.failures {
        eprintln!("segue: skipped {}", f.error);
    }
    for note in corpus.layout_notes() {
        note!("{note}");
    }
    Ok(corpus)
}

fn corpus_stats(dir: &Path, json: bool, cache: &CacheArgs, opts: QuantizeOptions) -> Result<()> {
    let corpus = load_corpus(dir, cache, opts)?;
    let stats = corpus.stats();
    if json {
        out!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    out!(
        "{:<16} {:>6} {:>9} {:>8} {:>13} {:>9} {:>8}",
        "composer",
        "files",
        "steps",
        "notes",
        "sounding/step",
        "pitches",
        "failed"
    );
    let name = |p: Option<u8>| p.map_or("-".to_string(), segue::roll::pitch_name);
    for s in &stats {
        out!(
            "{:<16} {:>6} {:>9} {:>8} {:>13.2} {:>9} {:>8}",
            s.composer,
            s.files,
            s.steps,
            s.notes,
            s.notes_per_step,
            format!("{}-{}", name(s.lowest_pitch), name(s.highest_pitch)),
            s.failures
        );
    }
    let files: usize = stats.iter().map(|s| s.files).sum();
    let steps: usize = stats.iter().map(|s| s.steps).sum();
    out!(
        "{}, {files} files, {steps} steps, {} failed",
        counted(corpus.composers.len(), "composer"),
        corpus.failures.len(),
    );
    // How this run read them, which another run may find otherwise: not part of the table.
    note!(
        "{} of {} read from the roll cache",
        corpus.cache_hits,
        counted(files, "file")
    );
    Ok(())
}

/// `../shared/<what>` from the current folder, else from the source tree.
fn shared_dir(what: &str) -> PathBuf {
    let here = Path::new("../shared").join(what);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(what)
}

fn bench_roll(args: BenchRollArgs) -> Result<()> {
    let corpus = args.corpus.unwrap_or_else(|| shared_dir("corpus"));
    let reference = args
        .reference
        .unwrap_or_else(|| shared_dir("bench/reference"));
    let files =
        segue::dataset::midi_files(&corpus).with_context(|| "listing the benchmark corpus")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    out!(
        "{} MIDI files under {} ({} cores); read + parse + roll, paper rounding, median of {} passes (Segue and the references alike)",
        files.len(),
        shown(&corpus),
        cores,
        args.repeats
    );
    if files.is_empty() {
        bail!("{}: no MIDI files to convert", shown(&corpus));
    }
    // The references are made ready (or refused) before Segue is timed, so that a missing
    // script or a failed install costs no timing that would then be lost.
    let python = if args.no_reference {
        None
    } else {
        let script = reference.join("roll_convert.py");
        if !script.is_file() {
            bail!(
                "{}: the Python reference is not there (give its folder with --reference, or \
                 --no-reference)",
                shown(&script)
            );
        }
        Some(bench::ensure_venv(&args.venv, &mut |m| note!("{m}"))?)
    };
    let bar = progress_bar(3, "timing Segue (warm-up, 1 thread, all cores)");
    // Warm the file cache so every method reads from memory.
    bench::time_own(&files, cores, 1)?;
    bar.inc(1);
    let single = bench::time_own(&files, 1, args.repeats)?;
    bar.inc(1);
    let multi = bench::time_own(&files, cores, args.repeats)?;
    bar.finish_and_clear();
    // (label, files/s, seconds, failed, files read)
    let mut rows: Vec<(String, f64, f64, usize, usize)> = vec![
        (
            single.label.clone(),
            single.files_per_s,
            single.seconds,
            single.failed,
            files.len(),
        ),
        (
            multi.label.clone(),
            multi.files_per_s,
            multi.seconds,
            multi.failed,
            files.len(),
        ),
    ];
    let mut agreement = None;
    if let Some(python) = python {
        let spinner = progress_bar(1, "timing the Python references");
        let refs = bench::time_reference(
            &python,
            &reference,
            &corpus,
            &["symusic_native", "symusic", "pretty_midi"],
            args.repeats,
        )?;
        spinner.set_message("comparing the rolls with the reference's");
        for r in refs {
            rows.push((
                format!("python {}", r.method),
                r.files_per_s,
                r.seconds,
                r.failed,
                r.files,
            ));
        }
        agreement = Some(bench::agreement(&python, &reference, &corpus, &files)?);
        spinner.finish_and_clear();
    }
    out!(
        "\n{:<28} {:>10} {:>9} {:>7}",
        "method",
        "files/s",
        "total s",
        "failed"
    );
    for (label, fps, secs, failed, _) in &rows {
        out!("{label:<28} {fps:>10.1} {secs:>9.3} {failed:>7}");
    }
    if rows.len() > 2 {
        out!("\nratios (files/s of segue / files/s of the reference):");
        for (label, fps, _, failed, read) in &rows[2..] {
            // A ratio compares the same work: the same files, as many converted.
            if *read != files.len() || *failed != single.failed {
                out!(
                    "  {label:<24} no ratio: it read {read} files ({failed} failed), Segue {} ({} failed)",
                    files.len(),
                    single.failed
                );
                continue;
            }
            out!(
                "  {:<24} 1 thread {:>7.2}x   {} threads {:>7.2}x",
                label,
                single.files_per_s / fps,
                cores,
                multi.files_per_s / fps
            );
        }
    }
    if let Some(a) = &agreement {
        let (Some(mean), Some(min)) = (a.mean, a.min) else {
            bail!(
                "no file could be compared with the reference roll ({} missing)",
                a.missing.len()
            );
        };
        out!(
            "\nagreement with the reference roll (symusic ticks, paper rounding): mean Jaccard {mean:.5}, min {min:.4}, {} of {} files identical",
            a.identical,
            a.files
        );
        if !a.missing.is_empty() {
            out!(
                "  {} files not compared (one side could not convert them): {}",
                a.missing.len(),
                a.missing.join(", ")
            );
        }
        if let Some(threshold) = args.check_agreement
            && mean < threshold
        {
            bail!("mean agreement {mean:.5} is below the required {threshold}");
        }
    } else if args.check_agreement.is_some() {
        bail!("--check-agreement needs the Python reference (drop --no-reference)");
    }
    Ok(())
}

fn train_options(a: &TrainArgs) -> Result<TrainOptions> {
    // A folder of another model's run, or with nothing to resume, is said as such first.
    if a.resume {
        segue::train::check_out_folder(&a.out, true)?;
    }
    // A resumed run starts from the options its checkpoint recorded, so a flag not given
    // again keeps the run's value (its KL schedule, terms, prior, fine-tuning start...); one
    // given overrides it, and what must not change is refused as before.
    let saved = match a.resume {
        true => segue::train::saved_options(&a.out)?,
        false => None,
    };
    // How the run counted bars, kept even when its preset is named again.
    let saved_bars = saved.as_ref().map(|s| s.config.metre_map);
    // A resumed run named with a preset: its sizes, preset, and the preset named.
    let mut run_sizes = None;
    let mut o = match (saved, &a.preset) {
        (Some(saved), None) => saved,
        (Some(mut saved), Some(name)) => {
            let preset = TrainOptions::preset(name)?;
            run_sizes = Some((saved.config, saved.preset.clone(), name.clone()));
            saved.preset = preset.preset;
            saved.config = preset.config;
            saved
        }
        (None, name) => TrainOptions::preset(name.as_deref().unwrap_or("studio"))?,
    };
    let preset_config = match o.preset.as_str() {
        "custom" => None,
        name => Some(TrainOptions::preset(name)?.config),
    };
    o.config.hidden = a.hidden.unwrap_or(o.config.hidden);
    o.config.layers = a.layers.unwrap_or(o.config.layers);
    o.config.latent = a.latent.unwrap_or(o.config.latent);
    o.config.metre = a.metre.unwrap_or(o.config.metre);
    o.config.output_skip |= a.output_skip;
    // A run keeps its sizes: another preset's (not made the run's by the size flags) is another
    // model; the bars it counts are the run's either way.
    if let Some((run, run_preset, name)) = run_sizes {
        let asked = segue::models::lstm_vae::Config {
            metre_map: run.metre_map,
            ..o.config
        };
        if asked != run {
            bail!(
                "{}: the run is a model of {run} ({run_preset}), not the {name} preset's {asked}: \
                 leave --preset out to resume it, or start a new run (another --out) with \
                 --preset {name}",
                shown(&a.out),
            );
        }
    }
    // Fine-tuning's defaults first: the options below override them.
    if let Some(init) = &a.init {
        // Bars counted as the model counts them (a manifest that cannot be read is refused,
        // naming the file, before the corpus loads).
        let model = segue::models::weights::read_manifest::<segue::models::trained::Manifest>(
            &segue::models::weights::manifest_path(init),
        );
        o.fine_tune_from(init.clone(), model.ok().map(|m| m.config).as_ref());
    }
    // `--metre 0` alone turns the metre input off, its metre map with it; a resumed run
    // counts bars as it did (runs from before the metre map counted them from the start).
    let bars = saved_bars.unwrap_or(o.config.metre_map && o.config.metre > 0);
    o.config.metre_map = a.metre_map.unwrap_or(bars);
    if preset_config.is_some_and(|c| c != o.config) {
        o.preset = "custom".into();
    }
    // The preset's seed (1) or the resumed run's.
    o.seed = a.seed.unwrap_or(o.seed);
    o.steps = a.steps.unwrap_or(o.steps);
    o.max_seconds = time_limit(a.minutes, o.max_seconds);
    o.snippet_steps = a.snippet_steps.unwrap_or(o.snippet_steps);
    o.learning_rate = a.lr.unwrap_or(o.learning_rate);
    o.beta.end = a.beta.unwrap_or(o.beta.end);
    o.beta.delay = a.beta_delay.unwrap_or(o.beta.delay);
    o.beta.ramp = a.beta_ramp.unwrap_or(o.beta.ramp);
    o.free_bits = a.free_bits.unwrap_or(o.free_bits);
    o.input_dropout = a.input_dropout.unwrap_or(o.input_dropout);
    o.encoder_dropout = a.encoder_dropout.unwrap_or(o.encoder_dropout);
    o.style_weight = a.style_weight.unwrap_or(o.style_weight);
    o.centre_scale = a.centre_scale.unwrap_or(o.centre_scale);
    o.piece_weight = a.piece_weight.unwrap_or(o.piece_weight);
    o.mmd_weight = a.mmd_weight.unwrap_or(o.mmd_weight);
    o.mmd_scale = a.mmd_scale.unwrap_or(o.mmd_scale);
    o.covariance_weight = a.covariance_weight.unwrap_or(o.covariance_weight);
    o.composer_prior |= a.composer_prior;
    o.transpose = a.transpose.unwrap_or(o.transpose);
    o.batches = a.batches.unwrap_or(o.batches);
    o.eval_every = a.eval_every.unwrap_or(o.eval_every);
    o.checkpoint_every = a.checkpoint_every.unwrap_or(o.checkpoint_every);
    // How the LSTM is computed, not what is trained: chosen anew by each command.
    o.composed_lstm = a.composed_lstm;
    // Refused before the corpus loads.
    o.check()?;
    Ok(o)
}

fn compute_device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => segue::models::lstm_vae::device(true).context(
            "cannot use CUDA (is this a build with `--features cuda`, and is a GPU there?)",
        ),
        other => bail!("--device {other}: unknown device (cpu, cuda)"),
    }
}

/// The bar of a training run.
fn training_bar(total: usize, prefix: String) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// Prints a line above the bar on a terminal, to stderr when the output is a log file.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn train_lstm_vae(args: TrainArgs) -> Result<()> {
    let opts = train_options(&args)?;
    let device = compute_device(&args.device)?;
    // A forgotten or mistaken --resume is refused before the corpus loads.
    segue::train::check_out_folder(&args.out, args.resume)?;
    // So is a model to start from that this run cannot take.
    if let Some(init) = opts.init.as_deref().filter(|_| !args.resume) {
        segue::train::check_init(init, &opts, &candle_core::Device::Cpu)?;
    }
    let corpus = load_corpus(&args.corpus, &args.cache, QuantizeOptions::default())?;
    note_short_pieces(&corpus, opts.snippet_steps);
    let control = stop_training_on_ctrl_c();
    let bar = training_bar(opts.steps, "training".into());
    let mut valid_text = String::new();
    // Whether the run holds pieces out (and so validates at intervals), and the line of a
    // step not yet said where it does not.
    let (mut validated, mut unsaid) = (true, None);
    let outcome = segue::train::train_lstm_vae(
        &corpus,
        &opts,
        &args.out,
        &device,
        args.resume,
        &control,
        &mut |event| match event {
            TrainEvent::Started {
                step,
                total,
                parameters,
                pieces,
                held_out,
            } => {
                say(
                    &bar,
                    format!(
                        "{} ({} parameters; {}) on {}, {}; steps {step}..{total}",
                        opts.preset,
                        parameters,
                        opts.config,
                        counted(corpus.composers.len(), "composer"),
                        pieces_said(pieces, held_out)
                    ),
                );
                validated = held_out > 0;
                bar.set_position(step as u64);
            }
            TrainEvent::Metrics(m) => {
                let line = format!(
                    "step {:>6} {:>7.0}s  train {:.4}/cell kl {:.1} beta {:.3} style {:.2} piece {:.2} mmd {:.4} cov {:.2}",
                    m.step,
                    m.seconds,
                    m.recon_per_cell,
                    m.kl,
                    m.beta,
                    m.style,
                    m.piece,
                    m.mmd,
                    m.covariance
                );
                if let Some(v) = &m.valid {
                    valid_text = format!(
                        " | valid {:.4}/cell kl {:.1} act {} style {:.2}",
                        v.recon_per_cell, v.kl, v.active_units, v.style_accuracy
                    );
                    say(&bar, format!("{line}{valid_text}"));
                } else if !validated {
                    unsaid = Some(line);
                }
                bar.set_position(m.step as u64);
                bar.set_message(format!(
                    "{:.4}/cell kl {:.1} b {:.2}{valid_text}",
                    m.recon_per_cell, m.kl, m.beta
                ));
            }
            // With nothing held out no step is validated: the log gets a line a checkpoint.
            TrainEvent::Checkpoint { .. } => {
                if let Some(line) = unsaid.take() {
                    say(&bar, line);
                }
            }
        },
    )?;
    bar.finish_and_clear();
    run_ended(outcome.stopped_early, outcome.steps, &outcome.model_path)
}

/// The pieces a run trains on and holds out, and what holding out none means.
fn pieces_said(pieces: usize, held_out: usize) -> String {
    let pieces = counted(pieces, "piece");
    if held_out == 0 {
        format!(
            "{pieces}, none held out (a composer needs two pieces for one to be held out): no \
             validation figures"
        )
    } else {
        format!("{pieces} and {held_out} held out for validation")
    }
}

/// `n` and the noun, plural but for one ("1 composer", "3 composers").
fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A training run's control, stopped by Ctrl+C: the run finishes its step, writes a
/// checkpoint and ends; `--resume` continues it.
fn stop_training_on_ctrl_c() -> Control {
    let control = Control::default();
    // The exit code then says it was interrupted (130), so `train ... && eval ...` stops; a
    // second stop ends at once (an interrupted checkpoint is recovered by the next run).
    let _ = TRAINING_STOP.set(control.stop.clone());
    STOP_WATCHED.store(true, std::sync::atomic::Ordering::Relaxed);
    control
}

/// `first`, then the `changes` after it: all of them up to four, else the first three and how
/// many more.
fn first_then(first: String, changes: &[String]) -> String {
    let shown = if changes.len() > 4 { 3 } else { changes.len() };
    match changes.len() - shown {
        _ if shown == 0 => first,
        0 => format!("{first}, then {}", changes.join(", ")),
        more => format!(
            "{first}, then {} and {more} more changes",
            changes[..shown].join(", ")
        ),
    }
}

/// Says how a training run ended; one stopped by Ctrl+C is an error (exit code 130) after
/// saying where its checkpoint is.
fn run_ended(stopped_early: bool, steps: usize, model: &Path) -> Result<()> {
    let how = if stopped_early { "stopped" } else { "done" };
    out!("{how} after {steps} steps: {}", shown(model));
    // Stopped by Ctrl+C (one that came after the last step stopped nothing).
    if stopped_early && STOP.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted; continue the run with --resume");
    }
    // Else by its time limit, which counts the whole run.
    if stopped_early {
        out!(
            "its time limit (--minutes, counting every session of the run) is used up: \
             --resume with a larger --minutes continues it"
        );
    }
    Ok(())
}

/// Says how many of the corpus's pieces are shorter than a training snippet: training pads
/// them with silence, which a model then learns as part of their music.
fn note_short_pieces(corpus: &Corpus, snippet_steps: usize) {
    let short = (corpus.pieces.iter())
        .filter(|p| p.roll.steps() < snippet_steps)
        .count();
    match short {
        0 => {}
        n if n == corpus.pieces.len() => warning!(
            "every piece of {} is shorter than a training snippet ({snippet_steps} steps): each \
             is padded with silence to it; a shorter --snippet-steps fits them",
            shown(&corpus.root)
        ),
        n => note!(
            "{n} of the {} pieces of {} are shorter than a training snippet ({snippet_steps} \
             steps): they are padded with silence to it",
            corpus.pieces.len(),
            shown(&corpus.root)
        ),
    }
}

/// Runs one of the shared-loop trainings with a progress bar and Ctrl-C handling.
fn run_training_loop(
    kind: &str,
    args: &LoopArgs,
    total: usize,
    snippet_steps: usize,
    train: impl FnOnce(
        &Corpus,
        &Path,
        &candle_core::Device,
        &Control,
        &mut dyn FnMut(segue::train_loop::LoopEvent),
    ) -> segue::Result<segue::train_loop::LoopOutcome>,
) -> Result<()> {
    use segue::train_loop::LoopEvent;
    let device = compute_device(&args.device)?;
    let out = args.out_dir(kind);
    // A forgotten or mistaken --resume is refused before the corpus loads.
    segue::train_loop::check_out_folder(&out, kind, args.resume)?;
    let corpus = load_corpus(&args.corpus, &args.cache, QuantizeOptions::default())?;
    note_short_pieces(&corpus, snippet_steps);
    let control = stop_training_on_ctrl_c();
    let bar = training_bar(total, format!("training {kind}"));
    let figures = |s: &segue::train_loop::Scalars| {
        s.iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // As for the LSTM-VAE: whether the run validates, and a step's line not yet said.
    let (mut validated, mut unsaid) = (true, None);
    let outcome = train(&corpus, &out, &device, &control, &mut |event| match event {
        LoopEvent::Started {
            step,
            total,
            parameters,
            pieces,
            held_out,
        } => {
            say(
                &bar,
                format!(
                    "{kind} ({parameters} parameters) on {}, {}; steps {step}..{total}",
                    counted(corpus.composers.len(), "composer"),
                    pieces_said(pieces, held_out)
                ),
            );
            validated = held_out > 0;
            bar.set_position(step as u64);
        }
        LoopEvent::Metrics(m) => {
            let line = format!(
                "step {:>6} {:>7.0}s  train: {}",
                m.step,
                m.seconds,
                figures(&m.train)
            );
            if let Some(v) = &m.valid {
                say(&bar, format!("{line} | valid: {}", figures(v)));
            } else if !validated {
                unsaid = Some(line);
            }
            bar.set_position(m.step as u64);
            bar.set_message(figures(&m.train));
        }
        // With nothing held out no step is validated: the log gets a line a checkpoint.
        LoopEvent::Checkpoint { .. } => {
            if let Some(line) = unsaid.take() {
                say(&bar, line);
            }
        }
    })?;
    bar.finish_and_clear();
    run_ended(outcome.stopped_early, outcome.steps, &outcome.model_path)
}

/// The options a run starts from: resuming, those its checkpoint recorded (a flag not given
/// again keeps the run's value, one given overrides it and is checked as before), else `fresh`.
fn starting_options<O: serde::de::DeserializeOwned>(
    run: &LoopArgs,
    kind: &str,
    fresh: O,
) -> Result<O> {
    if !run.resume {
        return Ok(fresh);
    }
    let out = run.out_dir(kind);
    // A folder of another model's run, or with nothing to resume, is said as such first.
    segue::train_loop::check_out_folder(&out, kind, true)?;
    Ok(
        segue::train_loop::checkpoint_options(&out, kind).unwrap_or_else(|| {
            // A checkpoint must be there (checked later, with the reason); this one's options
            // cannot be read (a run of an older Segue, say): the defaults and the flags given,
            // any that differ from what decides its batches refused as always.
            warning!(
                "{}: the run's own options cannot be read from its model manifest; \
             resuming with the defaults and the flags given",
                shown(&out)
            );
            fresh
        }),
    )
}

/// Trains a shared-loop model from `opts` with the flags of `args` applied.
fn train_on_loop_from<O>(
    kind: &str,
    args: LoopArgs,
    mut opts: O,
    loop_options: fn(&mut O) -> &mut segue::train_loop::LoopOptions,
    train: segue::train_loop::TrainFn<O>,
) -> Result<()> {
    args.apply(loop_options(&mut opts));
    // Refused before the corpus loads.
    loop_options(&mut opts).check()?;
    let total = loop_options(&mut opts).steps;
    let snippet_steps = loop_options(&mut opts).snippet_steps;
    run_training_loop(
        kind,
        &args,
        total,
        snippet_steps,
        |corpus, out, device, control, on_event| {
            train(corpus, &opts, out, device, args.resume, control, on_event)
        },
    )
}

fn load_classifier(path: Option<&Path>) -> Result<segue::classify::Classifier> {
    let path = match path {
        Some(p) => model_path_given(p)?,
        None => segue::classify::default_path()
            .with_context(|| not_shipped("classifier.safetensors", "--model FILE"))?,
    };
    Ok(segue::classify::load(&path, &candle_core::Device::Cpu)?)
}

fn classify_cmd(
    file: &Path,
    model: Option<&Path>,
    window: Option<usize>,
    hop: Option<usize>,
    top: usize,
    json: bool,
) -> Result<()> {
    if top == 0 {
        bail!("--top must be at least 1");
    }
    let clf = load_classifier(model)?;
    let roll = read_midi(file, &QuantizeOptions::default())?;
    if roll.active_cells() == 0 {
        bail!("{}: no notes to classify", shown(file));
    }
    let window = window.unwrap_or_else(|| segue::classify::window_steps(&clf));
    if hop == Some(0) {
        bail!("--hop 0: windows must start at least 1 step apart");
    }
    let verdict =
        segue::classify::classify_roll(&clf, &roll, window, hop.unwrap_or((window / 2).max(1)))
            .with_context(|| format!("--window {window}"))?;
    if json {
        /// The verdict with the file it is about and its length (a batch's outputs say which
        /// file each is).
        #[derive(serde::Serialize)]
        struct FileVerdict<'a> {
            file: std::borrow::Cow<'a, str>,
            steps: usize,
            #[serde(flatten)]
            verdict: &'a segue::classify::Verdict,
        }
        let v = FileVerdict {
            file: file.to_string_lossy(),
            steps: roll.steps(),
            verdict: &verdict,
        };
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!(
        "{} ({} steps), windows of {} steps:",
        shown(file),
        roll.steps(),
        verdict.window
    );
    for (rank, &c) in verdict.ranked().iter().enumerate() {
        out!(
            "{:>3}. {:<14} {:>6.1} %",
            rank + 1,
            verdict.composers[c],
            100.0 * verdict.overall[c]
        );
    }
    if let Some(a) = segue::classify::held_out_accuracy(&clf.manifest) {
        out!(
            "(at its last validation in training, on snippets of pieces it never trained on, this classifier named the right composer {:.0} % of the time; chance {:.0} %; `segue eval classifier` measures it on more)",
            100.0 * a,
            100.0 / verdict.composers.len().max(1) as f64
        );
    }
    // Bars counted along the piece's own metre map.
    let bars = segue::meter::BarMap::new(roll.meters());
    // A window shorter than a bar (a short roll read at its length) is a share of one.
    let bars_of_4_4 = match verdict.window {
        w if w % 16 == 0 => format!("{}", w / 16),
        w => format!("{:.2}", w as f64 / 16.0),
    };
    out!(
        "per window of {} steps ({bars_of_4_4} bars of 4/4; bars below in the piece's metre):",
        verdict.window,
    );
    for (start, p) in &verdict.windows {
        let best: Vec<String> = segue::classify::ranked(p)
            .iter()
            .take(top)
            .map(|&c| format!("{} {:.0}%", verdict.composers[c], 100.0 * p[c]))
            .collect();
        let end = (start + verdict.window).min(roll.steps()).max(start + 1);
        let first = bars.position(*start as f64).floor() as usize;
        let last = (bars.position((end - 1) as f64).floor() as usize).max(first);
        out!("  bars {:>4}-{:<4} {}", first, last, best.join(", "));
    }
    Ok(())
}

fn eval_classifier(args: ClassifierEvalArgs) -> Result<()> {
    let a = &args.common;
    let classifiers = if args.cross_validated.is_empty() {
        vec![load_classifier(a.model.as_deref())?]
    } else {
        (args.cross_validated.iter())
            .map(|p| load_classifier(Some(p)))
            .collect::<Result<Vec<_>>>()?
    };
    let clf = &classifiers[0];
    let dir = eval_corpus(a.corpus.as_deref(), &clf.manifest.corpus)?;
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    if corpus.content_hash() != clf.manifest.corpus.content_hash {
        warning!(
            "{} is not the corpus this classifier was trained on (content hash differs); its held-out split is not the model's",
            shown(&dir)
        );
    }
    let bar = progress_bar(1, "classifying");
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let window = segue::classify::window_steps(clf);
    let (per, steps) = (a.per_composer, args.snippet_steps);
    let judged = if args.cross_validated.is_empty() {
        segue::classify::judge_held_out(clf, &corpus, per, steps, &mut progress)?
    } else {
        segue::classify::judge_folds(&classifiers, &corpus, per, steps, &mut progress)?
    };
    bar.finish_and_clear();
    // A corpus with no piece held out (one piece per composer), or none of the model's
    // composers, has nothing to measure: an accuracy of 0 would read as a verdict.
    if judged.snippets.is_empty() {
        bail!(
            "{}: no held-out snippets of the classifier's composers in this corpus (a composer \
             needs two pieces or more for one to be held out)",
            shown(&dir)
        );
    }
    let composers = corpus.composers.clone();
    let report = judged.report(composers.clone());
    let fit = segue::stats_baseline::FitOptions::default();
    let (baseline, together) = if args.baseline {
        let spinner = progress_bar(1, "fitting the baseline");
        let b = segue::stats_baseline::judge_beside(&classifiers, &corpus, a.per_composer, &fit)?;
        spinner.finish_and_clear();
        let together = judged.product(&b)?.report(composers.clone());
        (Some(b.report(composers.clone())), Some(together))
    } else {
        (None, None)
    };
    let folds = match args.folds {
        Some(k) => {
            let bar = progress_bar(k, "cross-validating the baseline (folds)");
            let k = usize::try_from(k).context("--folds: too many folds")?;
            let report = segue::stats_baseline::cross_validate(
                &corpus,
                k,
                window,
                segue::classify::training_seed(clf),
                &fit,
                &mut |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            Some((k, report))
        }
        None => None,
    };
    if a.json {
        let json = if args.baseline {
            serde_json::json!({
                "classifier": report,
                "baseline": baseline,
                "together": together,
                "baseline_cross_validated": folds.as_ref().map(|(k, r)| serde_json::json!({"folds": k, "report": r})),
            })
        } else {
            serde_json::to_value(&report)?
        };
        out!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if args.cross_validated.is_empty() {
        out!(
            "{} snippets of {} held-out pieces ({} steps each; windows of {window})",
            report.snippets,
            report.pieces,
            steps.unwrap_or(window)
        );
    } else {
        out!(
            "{} snippets of {} pieces ({} steps each; windows of {window}), each judged by the one of {} classifiers that held its fold out",
            report.snippets,
            report.pieces,
            steps.unwrap_or(window),
            classifiers.len()
        );
    }
    print_classifier_report(&report, true)?;
    if let Some(b) = &baseline {
        out!(
            "\nstatistics baseline (logistic regression on pitch, pitch-class, onset-place, note-length and density statistics of each window; fitted on the same training pieces), on the same snippets and pieces:"
        );
        print_classifier_report(b, false)?;
    }
    if let Some(t) = &together {
        out!("\nthe classifier and the baseline together (their probabilities multiplied):");
        print_classifier_report(t, false)?;
    }
    if let Some((k, cv)) = &folds {
        out!(
            "\nstatistics baseline cross-validated over all {} pieces ({k} folds by piece; {} windows of {window} steps, each judged by a baseline fitted without its piece):",
            cv.pieces,
            cv.snippets
        );
        print_classifier_report(cv, false)?;
    }
    Ok(())
}

/// A classifier report's figures, and its confusion matrix when `confusion` is set.
fn print_classifier_report(
    report: &segue::classify::ClassifierReport,
    confusion: bool,
) -> Result<()> {
    out!(
        "accuracy {:.3}, top-3 {:.3}, whole pieces {:.3}, whole pieces by composer {:.3} (chance {:.3})",
        report.accuracy,
        report.top3,
        report.piece_accuracy,
        report.piece_balanced_accuracy,
        1.0 / report.composers.len().max(1) as f64
    );
    let per: Vec<String> = report
        .composers
        .iter()
        .zip(&report.pieces_right)
        .filter(|(_, (n, _))| *n > 0)
        .map(|(name, (n, right))| format!("{name} {right}/{n}"))
        .collect();
    out!("whole pieces right per composer: {}", per.join(", "));
    // Without the composer most pieces come from (Bach's chorales, in the shared corpus).
    let most = (0..report.composers.len()).max_by_key(|&c| report.pieces_right[c].0);
    if let Some(most) = most.filter(|_| report.composers.len() > 1) {
        let (n, right) = (report.pieces_right.iter().enumerate())
            .filter(|&(c, _)| c != most)
            .fold((0, 0), |(n, r), (_, &(pn, pr))| (n + pn, r + pr));
        out!(
            "whole pieces right outside {} (the composer with the most): {right} of {n}",
            report.composers[most]
        );
    }
    if confusion {
        out!("confusion (rows: true composer, columns: predicted, in label order):");
        for (name, row) in report.composers.iter().zip(&report.confusion) {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>3}")).collect();
            out!("{:<14}{}", name, cells.join(""));
        }
    }
    Ok(())
}

fn eval_report(a: ReportArgs) -> Result<()> {
    segue::generate::check_style_strength(a.style_strength)?;
    // The folder is made (or refused) before minutes of evaluation, not after.
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot make the report's folder here", shown(&a.out)))?;
    // A folder that is there but cannot be written to is refused now too, and so is one
    // whose report.md is someone's own page.
    tempfile::tempfile_in(&a.out)
        .with_context(|| format!("{}: cannot write the report's files here", shown(&a.out)))?;
    segue::report::check_report_folder(&a.out)?;
    let device = candle_core::Device::Cpu;
    let optional = |path: Option<PathBuf>, what: &str| {
        if path.is_none() {
            note!("no shipped {what}; the report leaves it out");
        }
        path
    };
    let models = segue::report::Models {
        lstm: load_model(None)?,
        tvae: optional(segue::tvae::default_path(), "Transformer VAE")
            .map(|p| segue::tvae::load(&p, &device))
            .transpose()?,
        classifier: optional(segue::classify::default_path(), "classifier")
            .map(|p| segue::classify::load(&p, &device))
            .transpose()?,
        gan: optional(segue::gan::default_path(), "DCGAN")
            .map(|p| segue::gan::load(&p, &device))
            .transpose()?,
    };
    let dir = a.corpus.clone().unwrap_or_else(|| shared_dir("corpus"));
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    let opts = segue::report::ReportOptions {
        per_composer: a.per_composer,
        pairs: a.pairs,
        seed: a.seed,
        style_strength: a.style_strength,
        ..Default::default()
    };
    let bar = progress_bar(1000, "evaluating");
    let report = segue::report::evaluate_all(&models, &corpus, &opts, &mut |f, what| {
        bar.set_position((f * 1000.0) as u64);
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    let mut command = format!(
        "segue eval report --per-composer {} --pairs {} --seed {}",
        a.per_composer, a.pairs, a.seed
    );
    if a.style_strength != segue::generate::DEFAULT_STYLE_STRENGTH {
        command += &format!(" --style-strength {}", a.style_strength);
    }
    // The page, its figures and its charts belong together: a stop waits for all of them.
    let _whole = hold_stop();
    segue::report::write_report(&report, &a.out, &command)?;
    out!(
        "wrote {} (its figures in report.json, its plots as PNG beside it)",
        shown(&a.out.join("report.md"))
    );
    Ok(())
}

fn load_model(path: Option<&Path>) -> Result<TrainedModel> {
    let path = match path {
        Some(p) => model_path_given(p)?,
        None => segue::models::trained::default_model_path().with_context(|| {
            not_shipped(segue::models::trained::DEFAULT_MODEL_FILE, "--model FILE")
        })?,
    };
    Ok(TrainedModel::load(&path, &candle_core::Device::Cpu)?)
}

/// Refuses `--style-strength` where neither style names a composer of the model (a MIDI
/// file's code is its own, and a continuation without --from keeps the primer's).
fn check_strength_used(a: &GenerateArgs, is_composer: impl Fn(&str) -> bool) -> Result<()> {
    let styles = [a.from.as_deref(), a.to.as_deref()];
    if a.style_strength.is_some() && !styles.into_iter().flatten().any(is_composer) {
        bail!(
            "--style-strength is not used: neither style A nor B is a composer of the model (a \
             MIDI file's code, and a primer's, are its own)"
        );
    }
    Ok(())
}

/// The LSTM-VAE's codes A and B for `segue generate`.
fn lstm_codes(
    model: &TrainedModel,
    primer: &Roll,
    a: &GenerateArgs,
    mode: generate::Mode,
    quantize: QuantizeOptions,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_strength_used(a, |s| model.composer_index(s).is_some())?;
    let code_a = match &a.from {
        Some(s) => style_code(model, s, a.style_strength(), quantize)?,
        None => generate::song_code(model, primer, model.training_snippet_steps())?,
    };
    let code_b = match (&a.to, mode) {
        (Some(s), _) => style_code(model, s, a.style_strength(), quantize)?,
        (None, generate::Mode::Continue) => code_a.clone(),
        (None, _) => bail!(
            "--mode {} needs --to (a composer or a MIDI file)",
            a.mode_name()
        ),
    };
    Ok((code_a, code_b))
}

/// A style given on the command line: a composer of the model or a MIDI file.
fn style_code(
    model: &TrainedModel,
    style: &str,
    strength: f32,
    quantize: QuantizeOptions,
) -> Result<Vec<f32>> {
    if let Some(c) = model.composer_index(style) {
        return Ok(generate::composer_code(model, c, strength)?);
    }
    let path = Path::new(style);
    if segue::fsutil::is_named_input(path) {
        let roll = read_style(path, &quantize)?;
        return Ok(generate::song_code(
            model,
            &roll,
            model.training_snippet_steps(),
        )?);
    }
    bail!(
        "`{style}` is neither a composer of this model ({}) nor a MIDI file",
        model.manifest.composers.join(", ")
    )
}

/// Where a shipped weights `file` was looked for, and what to do: the folder is named as it
/// was found ($SEGUE_WEIGHTS where set, which a typo there would otherwise hide).
fn not_shipped(file: &str, instead: &str) -> String {
    let dir = segue::models::trained::weights_dir();
    let from = match segue::models::trained::weights_from_env() {
        Some(_) => " (from SEGUE_WEIGHTS)",
        None => "",
    };
    format!(
        "{} is not there{from}; set SEGUE_WEIGHTS to the weights folder or pass {instead}",
        shown(&dir.join(file))
    )
}

/// Which model `segue generate --model X` means: a kind name (its shipped weights) or a file.
fn resolve_model(given: Option<&str>) -> Result<(String, PathBuf)> {
    let shipped = |kind: &str, path: Option<PathBuf>, file: &str| -> Result<(String, PathBuf)> {
        let path = path.with_context(|| {
            format!(
                "no shipped {kind} weights: {}",
                not_shipped(file, "--model FILE")
            )
        })?;
        Ok((kind.to_string(), path))
    };
    match given {
        None | Some("lstm-vae") => shipped(
            "lstm-vae",
            segue::models::trained::default_model_path(),
            segue::models::trained::DEFAULT_MODEL_FILE,
        ),
        Some("transformer-vae") => shipped(
            "transformer-vae",
            segue::tvae::default_path(),
            segue::tvae::DEFAULT_FILE,
        ),
        Some("classifier-ascent" | "classifier") => shipped(
            "classifier",
            segue::classify::default_path(),
            segue::classify::DEFAULT_FILE,
        ),
        Some("dcgan") => shipped(
            "dcgan",
            segue::gan::default_path(),
            segue::gan::DEFAULT_FILE,
        ),
        Some(file) => {
            let path = model_file_in(Path::new(file))?;
            Ok((model_kind_of(&path)?, path))
        }
    }
}

/// The model file `given` means: itself; the model of a training run's folder; the weights
/// beside a model's `.json` manifest.
fn model_file_in(given: &Path) -> Result<PathBuf> {
    if given.is_dir() {
        let found: Vec<PathBuf> = (segue::train_loop::RUN_KINDS.iter())
            .map(|kind| given.join(format!("{kind}.safetensors")))
            .filter(|p| p.is_file())
            .collect();
        if let [one] = found.as_slice() {
            return Ok(one.clone());
        }
        // Not a training run's folder: any model file with its manifest beside it (the
        // weights folder's `lstm-vae-studio.safetensors`, say).
        let mut models: Vec<PathBuf> = std::fs::read_dir(given)
            .with_context(|| format!("{}: reading the folder failed", shown(given)))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|p| extension(p) == "safetensors" && p.with_extension("json").is_file())
            // A run's optimiser state is no model.
            .filter(|p| p.file_stem().is_none_or(|stem| stem != "train-state"))
            .collect();
        models.sort();
        return match models.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!(
                "{}: a folder without a model in it (pass the model's .safetensors file)",
                shown(given)
            ),
            _ => bail!(
                "{}: a folder of several models; pass one of them ({})",
                shown(given),
                (models.iter().map(|p| shown(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let weights = given.with_extension("safetensors");
    if extension(given) == "json" {
        if weights.is_file() {
            return Ok(weights);
        }
        if given.is_file() {
            bail!(
                "{}: a manifest without its weights: {} is not there",
                shown(given),
                shown(&weights)
            );
        }
    }
    if !given.is_file() {
        bail!(
            "{}: neither a model name (lstm-vae, transformer-vae, classifier-ascent, dcgan), a \
             model file nor a training run's folder",
            shown(given)
        );
    }
    Ok(given.to_path_buf())
}

/// The model file a `--model` of `classify` or `eval` means: a training run's folder or a
/// manifest as `generate` takes them ([`model_file_in`]), else the path itself (whose loader
/// names what is wrong with it).
fn model_path_given(given: &Path) -> Result<PathBuf> {
    if given.is_dir() || extension(given) == "json" {
        model_file_in(given)
    } else {
        Ok(given.to_path_buf())
    }
}

/// The kind of model a model file holds, as its manifest names it.
fn model_kind_of(path: &Path) -> Result<String> {
    let manifest_path = segue::models::weights::manifest_path(path);
    let manifest: serde_json::Value = segue::models::weights::read_manifest(&manifest_path)?;
    match manifest["model"].as_str() {
        Some(kind) => Ok(kind.to_string()),
        None => bail!(
            "{}: not a Segue model manifest (it names no `model`)",
            shown(&manifest_path)
        ),
    }
}

/// Refuses the flags of `segue generate` that the model or mode would not use (a flag given
/// and silently dropped would make the music other than asked for), but for the styles of
/// `--from A --to B` ([`drop_unused_style`]).
fn check_generate_flags(kind: &str, mode: generate::Mode, a: &GenerateArgs) -> Result<()> {
    let unused = |flag: &str, why: &str| -> Result<()> { bail!("{flag} is not used {why}") };
    let vae = matches!(kind, "lstm-vae" | "transformer-vae");
    let dcgan = kind == "dcgan";
    let noise = "by the DCGAN: it samples from noise, with no primer or style";
    let interpolating = matches!(mode, generate::Mode::Transition | generate::Mode::Blend);
    let modeless = "by this model: only the VAEs have modes, and so blends and transitions";
    // (flag, given, used, why not): the first flag given where it is not used is refused.
    for (flag, given, used, why) in [
        ("--prime", a.prime.is_some(), !dcgan, noise),
        ("--from", a.from.is_some(), !dcgan, noise),
        ("--to", a.to.is_some(), !dcgan, noise),
        (
            "--drums",
            a.drums,
            a.prime.is_some() || [&a.from, &a.to].iter().any(|s| s.is_some()),
            "without --prime (or a MIDI file as --from or --to): it keeps a file's drums",
        ),
        (
            "--pedal",
            a.pedal,
            a.prime.is_some()
                || [&a.from, &a.to]
                    .iter()
                    .any(|s| s.as_deref().is_some_and(|s| Path::new(s).is_file())),
            "without --prime (or a MIDI file as --from or --to): it holds a file's notes \
             through its sustain pedal",
        ),
        (
            "--from",
            a.from.is_some(),
            kind != "classifier",
            "by classifier-ascent: it ascends to --to from --prime (or noise)",
        ),
        (
            "--mode",
            a.mode.is_some(),
            vae,
            "by this model: only the VAEs have modes",
        ),
        // The DCGAN and the ascent have no modes: said first.
        ("--alpha", a.alpha.is_some(), vae, modeless),
        ("--linear", a.linear, vae, modeless),
        (
            "--transition-steps",
            a.transition_steps.is_some(),
            vae,
            modeless,
        ),
        (
            "--alpha",
            a.alpha.is_some(),
            mode == generate::Mode::Blend,
            "outside --mode blend",
        ),
        (
            "--linear",
            a.linear,
            interpolating,
            "outside --mode transition and blend (nothing is interpolated)",
        ),
        (
            "--primer-steps",
            a.primer_steps.is_some(),
            vae,
            "by this model (classifier-ascent starts from the primer's first --steps steps; the \
             DCGAN has none)",
        ),
        (
            "--style-strength",
            a.style_strength.is_some(),
            vae,
            "by this model: only the VAEs have composer codes",
        ),
        (
            "--temperature",
            a.temperature.is_some(),
            kind != "classifier",
            "by classifier-ascent: it thresholds, it does not sample",
        ),
        (
            "--iterations",
            a.iterations.is_some(),
            kind == "classifier",
            "outside classifier-ascent",
        ),
    ] {
        if given && !used {
            unused(flag, why)?;
        }
    }
    if let Some(n) = a.transition_steps {
        if mode != generate::Mode::Transition {
            unused("--transition-steps", "outside --mode transition")?;
        }
        if n == 0 || n > a.steps {
            bail!(
                "--transition-steps must be 1..={} (--steps), not {n}: the transition reaches B \
                 within the generated steps",
                a.steps
            );
        }
    }
    Ok(())
}

/// Drops the style the mode does not use (`--to` in a VAE's continuation, `--from` in the
/// LSTM-VAE's transfer), saying so: `--from A --to B` runs in every mode of the VAEs (a script
/// may pass both whatever the mode), and the style dropped is neither read nor counted for
/// `--style-strength`.
fn drop_unused_style(kind: &str, mode: generate::Mode, a: &mut GenerateArgs) {
    let vae = matches!(kind, "lstm-vae" | "transformer-vae");
    if vae && mode == generate::Mode::Continue && a.to.take().is_some() {
        note!(
            "--to is not used by --mode continue (a continuation keeps the style of --from, or \
             the primer's own); --mode transfer, transition or blend use style B"
        );
    }
    if kind == "lstm-vae" && mode == generate::Mode::Transfer && a.from.take().is_some() {
        note!(
            "--from is not used by the LSTM-VAE's transfer: it decodes the primer (song A) with \
             B's code"
        );
    }
}

fn generate_cmd(a: GenerateArgs) -> Result<()> {
    // Other checks read --steps (the transition's range): it is checked first.
    if a.steps == 0 || a.steps > 100_000 {
        bail!("--steps must be 1..=100000");
    }
    segue::generate::check_style_strength(a.style_strength())?;
    let (normalize, loudness) = level(a.no_normalize, a.loudness)?;
    // A device this build or machine lacks is refused before any file is read.
    let device = compute_device(&a.device)?;
    let (kind, path) = resolve_model(a.model.as_deref())?;
    // The VAEs hear a primer and sample; the classifier ascent and the DCGAN do neither.
    let vae = matches!(kind.as_str(), "lstm-vae" | "transformer-vae");
    let mode: generate::Mode = a.mode_name().parse()?;
    check_generate_flags(&kind, mode, &a)?;
    // The files given, used or not: no output may land on one of them.
    let inputs: Vec<PathBuf> = [a.from.as_deref(), a.to.as_deref()]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .chain(a.prime.clone())
        .filter(|p| segue::fsutil::is_named_input(p))
        .collect();
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut a = a;
    drop_unused_style(&kind, mode, &mut a);
    // Read as the studio opens a file and continued from its last note as the studio
    // continues it, so that a seed gives the same music in both.
    let quantize = QuantizeOptions {
        include_drums: a.drums,
        sustain_pedal: a.pedal,
        ..QuantizeOptions::primer()
    };
    let (primer, copyright) = match a.prime.as_deref() {
        Some(p) => {
            let (roll, copyright, _) = read_midi_noted(p, &quantize)?;
            (Some(roll.up_to_last_note()), copyright)
        }
        None => (None, None),
    };
    if !(0.0..=1.0).contains(&a.alpha()) {
        bail!("--alpha must be between 0 and 1");
    }
    // Together at most the longest piece Segue opens (roll::MAX_STEPS), so the output opens.
    if a.primer_steps() > 100_000 {
        bail!("--primer-steps must be at most 100000");
    }
    // A primer that opens with silent bars is heard up to its --primer-steps of music, as the
    // studio hears it.
    let primer_steps = match primer.as_ref() {
        Some(p) if vae => generate::primer_steps_heard(
            p.meters(),
            p.first_bar_with_notes(),
            p.steps(),
            a.primer_steps(),
        ),
        _ => a.primer_steps(),
    };
    generate::check_sampling(a.temperature(), 1).context("--temperature")?;
    // Classifier ascent starts from the primer's notes and keeps its tempo map.
    let ascended_from_primer = kind == "classifier" && primer.is_some();
    generate::check_sampling(1.0, a.max_notes).context("--max-notes")?;
    // The outputs are checked before any work: right kinds, writable, not an input, not one
    // file twice, and the audio not too long to render.
    output_kind(&a.output, &["mid", "midi"])?;
    segue::fsutil::check_target(&a.output)?;
    not_an_input(&a.output, &inputs)?;
    if let Some(wav) = &a.wav {
        output_kind(wav, &["wav"])?;
        segue::fsutil::check_target(wav)?;
        not_an_input(wav, &inputs)?;
        if segue::fsutil::same_landing(wav, &a.output) {
            bail!(
                "{}: this is where the MIDI file {} goes; write the audio to another file",
                shown(wav),
                shown(&a.output)
            );
        }
        // What will be rendered: the VAEs' primer head at its tempo, then the generated steps
        // at the tempo it ends with; the other models' steps alone, at 120 bpm.
        let estimate = match (kind.as_str(), primer.as_ref()) {
            ("lstm-vae" | "transformer-vae", Some(p)) => {
                let mut head = p.slice(0, primer_steps.min(p.steps()));
                head.continue_with(&Roll::new(a.steps));
                head
            }
            _ => Roll::new(a.steps),
        };
        segue::render::render_seconds(&estimate, &RenderOptions::default())
            .with_context(|| shown(wav).to_string())?;
    }
    if let Some(p) = primer.as_ref()
        && primer_steps > 0
        && vae
    {
        let silent = p.first_bar_with_notes();
        let heard = primer_steps.min(p.steps()) - silent;
        if silent > 0 {
            note!(
                "the primer's first {silent} steps are silent: the model hears them \
                 and the {heard} steps after them",
            );
        }
        // Said when asked for: the default ends on a bar line without a word.
        if a.primer_steps.is_some_and(|asked| asked != heard) && primer_steps < p.steps() {
            note!(
                "the primer ends on the bar line nearest --primer-steps: {heard} steps \
                 ({})",
                bars_of(p.meters(), silent, heard)
            );
        }
    }
    if let (Some(p), Some(file)) = (primer.as_ref(), a.prime.as_ref())
        && p.notes().is_empty()
    {
        note!(
            "{}: no notes to continue: the model starts from silence",
            shown(file)
        );
    }
    let opts = generate::GenerateOptions {
        mode,
        steps: a.steps,
        primer_steps,
        primer_start: 0,
        temperature: a.temperature(),
        max_notes: a.max_notes,
        alpha: a.alpha(),
        transition_steps: a.transition_steps.unwrap_or(0),
        interpolation: if a.linear {
            generate::Interpolation::Linear
        } else {
            generate::Interpolation::Spherical
        },
        seed: a.seed,
    };
    let need_primer = || {
        primer
            .as_ref()
            .context("--prime FILE is needed with this model")
    };
    let bar = progress_bar(1000, "generating");
    let mut verdict = None;
    let cancel = stop_on_ctrl_c();
    let mut progress = |f: f32| bar.set_position((f * 1000.0) as u64);
    let (roll, primer_steps) = match kind.as_str() {
        "lstm-vae" => {
            let model = TrainedModel::load(&path, &device)?;
            let primer = need_primer()?;
            // A model of one composer (trained on one folder) has no second style to move to.
            // (Without --from, A is the primer's own style, which a transfer does move from.)
            if let [only] = model.manifest.composers.as_slice()
                && mode != generate::Mode::Continue
                && a.from.as_deref() == Some(only.as_str())
                && a.to.as_deref().is_none_or(|to| to == only)
            {
                warning!(
                    "the model knows one composer ({only}): there is no second \
                     style to move to (--to a MIDI file takes that piece's)"
                );
            }
            let (code_a, code_b) = lstm_codes(&model, primer, &a, mode, quantize)?;
            // The library's recipe, which heard the primer as `primer_steps` says.
            let asked = generate::GenerateOptions {
                primer_steps: a.primer_steps(),
                ..opts.clone()
            };
            let g = generate::continue_piece(
                &model,
                primer,
                Some(&code_a),
                Some(&code_b),
                &asked,
                &mut progress,
                cancel,
            )?;
            (g.roll, g.primer_steps)
        }
        "transformer-vae" => {
            let model = segue::tvae::load(&path, &device)?;
            // One code a snippet: a short transition is one step from A to B, not a glide.
            if mode == generate::Mode::Transition
                && let Some(note) =
                    segue::tvae::one_code_transition(&model, opts.transition_length())
            {
                note!("the {note}");
            }
            let primer = need_primer()?;
            check_strength_used(&a, |s| model.composer_index(s).is_some())?;
            let code = |style: &str| -> Result<Vec<f32>> {
                if let Some(c) = model.composer_index(style) {
                    return Ok(segue::tvae::composer_code(&model, c, a.style_strength())?);
                }
                let p = Path::new(style);
                if segue::fsutil::is_named_input(p) {
                    return Ok(segue::tvae::song_code(&model, &read_style(p, &quantize)?)?);
                }
                bail!(
                    "`{style}` is neither a composer of this model ({}) nor a MIDI file",
                    model.manifest.composers.join(", ")
                )
            };
            let code_a = match &a.from {
                Some(s) => code(s)?,
                // A transfer moves the primer's own code by B - A: without A, from the centre
                // of all the composers (A as the primer's own code would make it B alone, the
                // same music for every primer).
                None if mode == generate::Mode::Transfer => {
                    segue::tvae::composer_code(&model, 0, 0.0)?
                }
                None => segue::tvae::song_code(&model, primer)?,
            };
            let code_b = match (&a.to, mode) {
                (Some(s), _) => code(s)?,
                (None, generate::Mode::Continue) => code_a.clone(),
                (None, _) => bail!(
                    "--mode {} needs --to (a composer or a MIDI file)",
                    a.mode_name()
                ),
            };
            let g = segue::tvae::generate(
                &model,
                primer,
                &code_a,
                &code_b,
                &opts,
                &mut progress,
                cancel,
            )?;
            (g.roll, g.primer_steps)
        }
        "classifier" => {
            let clf = segue::classify::load(&path, &device)?;
            let target =
                a.to.as_deref()
                    .context("classifier-ascent needs --to COMPOSER (the style to ascend to)")?;
            let target = clf.composer_index(target).with_context(|| {
                format!(
                    "`{target}` is not a composer of the classifier ({})",
                    clf.manifest.composers.join(", ")
                )
            })?;
            let ascent_opts = segue::ascent::AscentOptions {
                steps: a.steps,
                iterations: a.iterations(),
                notes_per_step: a.max_notes.min(3),
                seed: a.seed,
                ..segue::ascent::AscentOptions::default()
            };
            let r = segue::ascent::ascend(
                &clf,
                target,
                primer.as_ref(),
                &ascent_opts,
                &mut progress,
                cancel,
            )?;
            // The ascent's result, on stdout with the files written.
            verdict = Some(format!(
                "{}: probability {:.3} at the start, {:.3} after the ascent, {:.3} thresholded",
                clf.manifest.composers[target],
                r.start_probabilities[target],
                r.ascended_probability,
                r.thresholded_probability
            ));
            (r.roll, 0)
        }
        "dcgan" => {
            let gan = segue::gan::load(&path, &device)?;
            if a.temperature.is_some()
                && gan.config.cells == segue::models::dcgan::Cells::Thresholded
            {
                bail!(
                    "--temperature is not used by this DCGAN: it keeps the cells above 0.5 (trained \
                     with --cells thresholded, as the shipped one), it does not sample"
                );
            }
            let count = a.steps.div_ceil(128);
            let mut roll = Roll::new(0);
            for snippet in segue::gan::sample_until(
                &gan.model,
                count,
                a.temperature(),
                a.max_notes,
                a.seed,
                cancel,
            )? {
                roll.append(&snippet);
            }
            (roll.slice(0, a.steps), 0)
        }
        other => bail!("{}: `{other}` models cannot generate", shown(&path)),
    };
    bar.finish_and_clear();
    // A model that does not look at the flag (the DCGAN) is stopped here.
    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("stopped (Ctrl+C or a stop signal); nothing was written");
    }
    let result = generate::Generated::new(roll, primer_steps);
    // The audio first: stopped while it renders (Ctrl+C), neither file has changed; the MIDI
    // file, written in a moment, follows. Audio that fails otherwise (a full disk) still
    // leaves the MIDI file written, then says why the audio is not.
    let mut rendered = None;
    let mut audio_failed = None;
    // Made from the primer's notes (kept, or ascended from): its copyright notice goes with
    // them.
    let copyright = copyright.filter(|_| result.primer_steps > 0 || ascended_from_primer);
    let render_opts = RenderOptions {
        normalize,
        loudness,
        ..RenderOptions::default()
    };
    if let Some(wav) = &a.wav {
        let bar = progress_bar(1000, "rendering");
        match render_to_wav_noting(
            &result.roll,
            &render_opts,
            wav,
            copyright.as_deref(),
            &mut |f| bar.set_position((f * 1000.0) as u64),
            cancel,
        ) {
            Ok(r) => rendered = Some(r),
            Err(e) if cancel.load(std::sync::atomic::Ordering::Relaxed) => return Err(e.into()),
            Err(e) => audio_failed = Some(e),
        }
        bar.finish_and_clear();
    }
    result
        .roll
        .write_midi_noting(&a.output, copyright.as_deref())?;
    // The ascent's result, once the files it made are written.
    if let Some(verdict) = verdict {
        out!("{verdict}");
    }
    out!(
        "wrote {} ({} primer + {} generated steps at {:.1} bpm)",
        shown(&a.output),
        result.primer_steps,
        result.roll.steps() - result.primer_steps,
        60e6 / f64::from(
            result
                .roll
                .micros_per_quarter_at(result.primer_steps)
                .max(1)
        )
    );
    if result.generated_part_is_sparse() {
        // Only where the temperature is a flag the model takes.
        let samples = a.temperature.is_some() || vae;
        let what = if result.generated_part_is_silent() {
            "silent".to_string()
        } else {
            format!(
                "nearly silent: {} notes start in its {} steps",
                result.generated_onsets(),
                result.roll.steps() - result.primer_steps
            )
        };
        warning!(
            "the generated part is {what}{}",
            if samples && a.temperature() < 1.0 {
                " (a higher --temperature gives the model's notes more chance)"
            } else {
                ""
            }
        );
    }
    if let Some(e) = audio_failed {
        return Err(anyhow::Error::from(e).context("the MIDI file was written, the audio was not"));
    }
    if let (Some(wav), Some(r)) = (&a.wav, &rendered) {
        out!("wrote {} ({})", shown(wav), r.describe(&render_opts));
    }
    Ok(())
}

/// The corpus a model is measured on: the one given, else the shared corpus where the model
/// was trained on it. A model trained on another folder is measured on that folder only when
/// it is named: on the shared corpus its "held-out" pieces could be pieces it trained on.
fn eval_corpus(
    given: Option<&Path>,
    trained_on: &segue::models::trained::CorpusInfo,
) -> Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_path_buf()),
        None if trained_on.content_hash == segue::models::trained::SHARED_CORPUS_HASH => {
            Ok(shared_dir("corpus"))
        }
        None => bail!(
            "this model was trained on `{}` ({}), not the shared corpus: name that folder with \
             --corpus (its held-out pieces are the model's only there)",
            trained_on.name,
            counted(trained_on.pieces, "piece")
        ),
    }
}

fn eval_cmd(args: LstmVaeEvalArgs) -> Result<()> {
    segue::generate::check_sampling(args.temperature, args.max_notes)?;
    segue::generate::check_style_strength(args.style_strength)?;
    let a = args.common;
    let model = load_model(a.model.as_deref())?;
    let dir = eval_corpus(a.corpus.as_deref(), &model.manifest.corpus)?;
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    if corpus.content_hash() != model.manifest.corpus.content_hash {
        warning!(
            "{} is not the corpus this model was trained on (content hash differs); its held-out split is not the model's",
            shown(&dir)
        );
    }
    let bar = progress_bar(1000, "evaluating");
    let opts = segue::eval::EvalOptions {
        per_composer: a.per_composer,
        seed: args.seed,
        temperature: args.temperature,
        max_notes: args.max_notes,
        snippet_steps: args.snippet_steps,
        style_strength: args.style_strength,
    };
    let r = segue::eval::evaluate_lstm_vae(&model, &corpus, &opts, &mut |f| {
        bar.set_position((f * 1000.0) as u64)
    })?;
    bar.finish_and_clear();
    if !r.composers_left_out.is_empty() {
        warning!(
            "the corpus's composers {} are not the model's; their pieces are left \
             out",
            r.composers_left_out.join(", ")
        );
    }
    if a.json {
        out!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    out!(
        "model {} ({} steps), {} held-out snippets of {} steps",
        shown(&model.path),
        model.manifest.total_steps(),
        r.snippets,
        r.snippet_steps
    );
    if model.manifest.prior.is_some() {
        out!("prior: composer-aware, N(c_composer, I); prior samples below are drawn from it");
    }
    out!("reconstruction BCE per cell (teacher-forced)");
    out!("  z = posterior mean          {:.5}", r.bce_per_cell_mean_z);
    out!(
        "  z = prior sample            {:.5}   (mean is {:.1}% lower)",
        r.bce_per_cell_prior_z,
        100.0 * r.latent_gain_over_prior
    );
    out!(
        "  z = other composer's mean   {:.5}",
        r.bce_per_cell_other_z
    );
    let m = &r.bce_per_cell_by_metre;
    out!(
        "  posterior mean, by metre    {:.5} in 4/4 ({} snippets), {:.5} in other metres ({})",
        m.in_four_four,
        m.four_four_snippets,
        m.in_other_metres,
        m.other_snippets
    );
    let f = |s: &segue::eval::FrameScore| {
        format!("F1 {:.3} (P {:.3} / R {:.3})", s.f1, s.precision, s.recall)
    };
    out!(
        "frame scores (teacher-forced): thresholded {}, sampled {}",
        f(&r.frame_thresholded),
        f(&r.frame_sampled)
    );
    out!(
        "  thresholded at {:.2} (the best F1 on training snippets): {}",
        r.tuned_threshold,
        f(&r.frame_tuned)
    );
    out!(
        "  for scale, repeating the previous step: {}",
        f(&r.frame_copy_previous)
    );
    out!(
        "  for scale, knowing every note's end but no onset: {} ({:.1} % of the on-cells are onsets)",
        f(&r.frame_without_onsets),
        100.0 * r.onset_share
    );
    out!(
        "  recall at 0.5 on onsets {:.3}, on held notes {:.3}",
        r.onset_recall,
        r.held_recall
    );
    out!(
        "KL {:.1} nats per snippet, active units {}/{}",
        r.kl,
        r.active_units,
        r.kl_per_dim.len()
    );
    out!(
        "nearest-composer-centroid accuracy of posterior means (chance {:.3}): {} with held-out centroids (the reference's measure), {} leaving each snippet out of its own centroid ({} snippets of composers with two or more), {:.3} with the stored training centroids",
        1.0 / model.manifest.composers.len() as f64,
        // With no composer of two snippets, each snippet is its own centroid: always right.
        match r.leave_one_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy),
        },
        match r.leave_one_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy_leave_one_out),
        },
        r.leave_one_out_snippets,
        r.training_centroid_accuracy
    );
    out!(
        "  leaving each snippet's whole piece out of its composer's centroid (its other snippets are alike): {} ({} snippets of the {} composers whose snippets come from two held-out pieces or more)",
        match r.leave_piece_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy_leave_piece_out),
        },
        r.leave_piece_out_snippets,
        r.leave_piece_out_composers
    );
    out!(
        "nearest-piece-centroid accuracy (by piece, leave-one-out, {} held-out pieces with two snippets or more among {}, chance {}): {}",
        r.pieces,
        r.piece_candidates,
        // Each snippet is measured against every piece's centroid (its own without it).
        match r.pieces {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", 1.0 / r.piece_candidates.max(1) as f64),
        },
        match r.pieces {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.piece_centroid_accuracy),
        }
    );
    out!("one primer decoded twice, same seed (Jaccard distance of the outputs):");
    out!(
        "  own snippet's z vs another composer's snippet z {:.3}, vs a prior z {:.3} (the reference's composer swap)",
        r.swap_other_composer_distance,
        r.swap_prior_distance
    );
    let strength = if r.style_strength == segue::generate::DEFAULT_STYLE_STRENGTH {
        String::new()
    } else {
        format!(" (at style strength {})", r.style_strength)
    };
    out!(
        "  two composers' stored codes{strength} {:.3}, two prior z {:.3}; one z, two seeds {:.3} (noise floor)",
        r.composer_z_distance,
        r.random_z_distance,
        r.seed_only_distance
    );
    out!(
        "one held-out snippet decoded teacher-forced, no sampling (sum over pitches of |p_a - p_b|, notes per step):"
    );
    out!(
        "  own snippet's z vs another composer's snippet z {:.3}, vs a prior z {:.3}",
        r.tf_swap_other_composer,
        r.tf_swap_prior
    );
    out!(
        "  two composers' stored codes{strength} {:.3}, two prior z {:.3}, two draws from the stored composer statistics {:.3}",
        r.tf_composer_codes,
        r.tf_random_codes,
        r.tf_stored_mixture_codes
    );
    out!("{:<26} {:>10} {:>10}", "", "generated", "corpus");
    let (g, c) = (&r.generated, &r.corpus);
    let rows = [
        (
            "notes per sounding step",
            g.notes_per_sounding_step,
            c.notes_per_sounding_step,
        ),
        ("notes per step", Some(g.polyphony), Some(c.polyphony)),
        (
            "onsets per beat (a cell after a silent one)",
            Some(g.onsets_per_beat),
            Some(c.onsets_per_beat),
        ),
        ("pitch range (semitones)", g.pitch_range, c.pitch_range),
        (
            "empty-bar rate (its own metre)",
            g.empty_bar_rate,
            c.empty_bar_rate,
        ),
    ];
    // A mean over nothing (silence has no notes per sounding step) is n/a, not 0.
    let figure = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"));
    for (name, g, c) in rows {
        out!("{name:<26} {:>10} {:>10}", figure(g), figure(c));
    }
    Ok(())
}

fn bench_lstm_vae(a: BenchModelArgs) -> Result<()> {
    use segue::bench_model::{Case, Timing, ensure_torch, time_own_in_child, time_reference};
    let script = a
        .reference
        .clone()
        .unwrap_or_else(|| shared_dir("bench/reference"))
        .join("lstm_vae_torch.py");
    // Fail early, before any timing, on a device this build or machine lacks, a preset that
    // does not exist or a reference script that is not there.
    let cuda = !compute_device(&a.device)?.is_cpu();
    for preset in &a.presets {
        segue::bench_model::Case::preset(preset)?;
    }
    if !a.no_reference && !script.is_file() {
        bail!(
            "{}: the PyTorch reference is not there (give its folder with --reference, or \
             --no-reference)",
            shown(&script)
        );
    }
    let python = if a.no_reference {
        None
    } else if let Some(python) = &a.python {
        segue::bench_model::check_torch(python)?;
        Some(python.clone())
    } else {
        let python = bench::ensure_venv(&a.venv, &mut |m| note!("{m}"))?;
        ensure_torch(&python, &mut |m| note!("{m}"))?;
        Some(python)
    };
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
        _ => "-".into(),
    };
    let s = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.3} {unit}"));
    for preset in &a.presets {
        let case = Case::preset(preset)?;
        let c = case.config;
        out!(
            "{preset} on {}: hidden {}, layers {}+{}, latent {}, batch {}, {} steps",
            a.device,
            c.hidden,
            c.layers,
            c.layers,
            c.latent,
            case.batch,
            case.steps
        );
        let bar = progress_bar(0, "segue");
        let own = time_own_in_child(&case, a.iters, true, true, &a.device)?;
        bar.finish_and_clear();
        let reference = match &python {
            Some(py) => {
                let bar = progress_bar(0, "pytorch");
                let r = time_reference(py, &script, &case, a.iters, true, true, cuda)?;
                bar.finish_and_clear();
                Some(r)
            }
            None => None,
        };
        let r = reference.clone().unwrap_or(Timing::default());
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "",
            "segue",
            "pytorch",
            "ratio"
        );
        // Without the reference its column says so ("-"), not 0.
        let theirs = |f: &dyn Fn(&Timing) -> String| reference.as_ref().map_or("-".into(), f);
        out!(
            "  {:<28} {:>14} {:>14}",
            "parameters",
            own.params,
            theirs(&|r| r.params.to_string())
        );
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "training step (median)",
            s(own.train_step_s, "s"),
            s(r.train_step_s, "s"),
            ratio(own.train_step_s, r.train_step_s)
        );
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "peak memory",
            format!("{:.0} MiB", own.max_rss_mib),
            theirs(&|r| format!("{:.0} MiB", r.max_rss_mib)),
            ratio(
                Some(own.max_rss_mib),
                reference.as_ref().map(|r| r.max_rss_mib)
            )
        );
        if cuda {
            out!(
                "  {:<28} {:>14} {:>14}",
                "peak GPU memory (PyTorch's)",
                "-",
                r.max_gpu_mib
                    .map_or("-".to_string(), |m| format!("{m:.0} MiB"))
            );
        }
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "generation 64 + 256 steps",
            s(own.gen_ms, "ms"),
            s(r.gen_ms, "ms"),
            ratio(own.gen_ms, r.gen_ms)
        );
        out!(
            "  {:<28} {:>14} {:>14}",
            "generation per step",
            s(own.gen_ms.map(|v| v / 256.0), "ms"),
            s(r.gen_ms.map(|v| v / 256.0), "ms")
        );
        // The shipped model, where it has more than the reference can run (the metre input).
        if let Some(shipped) = Case::shipped(preset) {
            let bar = progress_bar(0, "segue, shipped");
            let own = time_own_in_child(&shipped, a.iters, false, true, &a.device)?;
            bar.finish_and_clear();
            out!(
                "  {:<28} {:>14} {:>14}",
                "generation, shipped model",
                s(own.gen_ms, "ms"),
                "-"
            );
            out!(
                "  {:<28} {:>14} {:>14}",
                "  per step",
                s(own.gen_ms.map(|v| v / 256.0), "ms"),
                "-"
            );
        }
    }
    Ok(())
}

fn studio(file: Option<PathBuf>) -> Result<()> {
    // A build without it says so first (a display would not help).
    if !cfg!(feature = "studio") {
        return open_studio(file);
    }
    // Said before a window is tried: winit's own message names its source files.
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!(
            "no display to open the studio on (neither DISPLAY nor WAYLAND_DISPLAY is set): it \
             needs a desktop session (or `xvfb-run -a segue`); every other command works \
             without one (segue --help)"
        );
    }
    if let Some(f) = &file
        && !f.is_file()
    {
        let problem = match std::fs::metadata(f) {
            Err(_) => "no such file to open",
            Ok(m) if m.is_dir() => "a folder, not a MIDI file to open",
            Ok(_) => "not a regular file (a pipe or a device): open a MIDI file",
        };
        bail!("{}: {problem}", shown(f));
    }
    open_studio(file)
}

#[cfg(feature = "studio")]
fn open_studio(file: Option<PathBuf>) -> Result<()> {
    segue::studio::run(file).map_err(|e| anyhow::anyhow!(e))
}

/// A build without the `studio` feature (Segue as a library, its commands without a window).
#[cfg(not(feature = "studio"))]
fn open_studio(_file: Option<PathBuf>) -> Result<()> {
    bail!(
        "this segue was built without the studio (cargo's `studio` feature); every other \
         command works (segue --help)"
    )
}

#[cfg(test)]
mod tests {
    /// "1 composer", "3 composers": what a training run says it trains on reads right for a
    /// folder of one composer.
    #[test]
    fn counts_read_as_english() {
        assert_eq!(super::counted(1, "composer"), "1 composer");
        assert_eq!(super::counted(0, "composer"), "0 composers");
        assert_eq!(
            super::pieces_said(3, 1),
            "3 pieces and 1 held out for validation"
        );
        assert!(super::pieces_said(1, 0).starts_with("1 piece, none held out"));
    }

    /// clap's own consistency checks over every subcommand (no two flags share a name or a
    /// short letter, defaults parse; Cargo.toml turns clap's debug assertions on for them).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
