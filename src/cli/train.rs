//! `segue train ...`: the options of each model's training, checked before the corpus loads,
//! the progress bar and the lines said while a run trains.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::corpus::{CacheArgs, load_corpus, note_short_pieces};
use super::models::compute_device;
use super::progress::{say, training_bar};
use super::stop::{STOP, stop_training_on_ctrl_c};
use super::wording::{counted, pieces_said};
use segue::dataset::Corpus;
use segue::fsutil::shown;
use segue::roll::QuantizeOptions;
use segue::train::{TrainEvent, TrainOptions};
use segue::train_loop::Control;

#[derive(Subcommand)]
pub(crate) enum TrainCmd {
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
pub(crate) struct LoopArgs {
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
pub(crate) struct ClassifierArgs {
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
pub(crate) struct DcganArgs {
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
pub(crate) struct TrainArgs {
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

/// `segue train classifier`: the loop's options, the classifier's own settings checked before
/// the corpus loads.
pub(crate) fn train_classifier(args: ClassifierArgs) -> Result<()> {
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
    } = args;
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

/// `segue train transformer-vae`.
pub(crate) fn train_transformer_vae(args: LoopArgs) -> Result<()> {
    let defaults = starting_options(&args, segue::tvae::KIND, Default::default())?;
    train_on_loop_from(
        segue::tvae::KIND,
        args,
        defaults,
        |o: &mut segue::tvae::TvaeOptions| &mut o.train,
        segue::tvae::train_tvae,
    )
}

/// `segue train dcgan`: the loop's options, the GAN's own settings checked before the corpus
/// loads.
pub(crate) fn train_dcgan(args: DcganArgs) -> Result<()> {
    let DcganArgs {
        run,
        cells,
        d_lr,
        feature_matching,
        real_label,
        instance_noise,
        spectral_norm,
    } = args;
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

/// `segue train lstm-vae`: a run started, resumed or fine-tuned, its progress said until it
/// ends or is stopped.
pub(crate) fn train_lstm_vae(args: TrainArgs) -> Result<()> {
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
