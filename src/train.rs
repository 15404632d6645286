//! Training the LSTM-VAE: balanced batches, Adam, an annealed KL weight with free bits, decoder
//! input dropout and a composer-aware term on the latent means (so z keeps the style, see
//! [`TrainOptions`]), validation on held-out pieces, atomic checkpoints, resume, and a JSON-lines
//! metrics log that the studio's monitor reads live.
//!
//! Files in the output folder:
//! - `lstm-vae.safetensors` + `lstm-vae.json`: the model at the latest checkpoint, loadable by
//!   `segue generate` and the studio;
//! - `train-state.safetensors` + `train-state.json`: optimiser moments and progress, for resume;
//! - `metrics.jsonl`: one [`Metrics`] object per logged step;
//! - `run.lock`: held by the run training in the folder (see
//!   [`crate::train_loop::lock_run_folder`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::atomic::Ordering;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{BalancedSampler, Corpus, SnippetRef, evaluation_snippets};
use crate::error::{Error, Result, candle};
use crate::models::lstm_vae::{BarPositions, Config, LstmVae};
use crate::models::standard_normal;
use crate::models::trained::{self, CorpusInfo, LatentStats, Manifest};
use crate::models::vae::{DiagonalGaussian, bce_with_logits};
use crate::models::weights;
use crate::optim::Adam;
use crate::roll::PITCHES;
use crate::train_loop::{
    Control, STEP_DRAWS, check_count, check_number, check_probability, check_same_data,
    check_transpose, option, snippet_tensor, step_rng, transpose_batch,
};

/// The KL weight over training: 0 for `delay` steps, then a linear ramp to `end` over `ramp`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BetaSchedule {
    /// Steps at beta = 0.
    pub delay: usize,
    /// Steps of the linear ramp.
    pub ramp: usize,
    /// Final beta.
    pub end: f64,
}

impl BetaSchedule {
    /// Beta at `step`.
    pub fn at(&self, step: usize) -> f64 {
        if step < self.delay {
            0.0
        } else if self.ramp == 0 {
            self.end
        } else {
            self.end * (((step - self.delay) as f64) / self.ramp as f64).min(1.0)
        }
    }
}

fn one_batch() -> usize {
    1
}

fn one() -> f64 {
    1.0
}

/// The learning rate of a run that starts from a trained model ([`TrainOptions::fine_tune_from`]).
pub const FINE_TUNE_LEARNING_RATE: f64 = 1e-4;

/// How to train.
///
/// Against posterior collapse (the paper's KL weight of 1e9 left z carrying nothing) this uses
/// three things together: a KL weight well below 1 (`beta`), free bits (each latent dimension
/// pays no KL below `free_bits` nats), decoder input dropout (the decoder sometimes does not
/// see the previous step, so it must rely on z), and a composer-aware term (`style_weight`):
/// the posterior means are classified by their distance to one learned centre per composer,
/// which makes z carry the style the studio's slider moves along.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Preset name ("studio", "paper" or "custom").
    pub preset: String,
    /// Model sizes.
    pub config: Config,
    /// Optimiser steps in all (a resumed run continues up to this).
    pub steps: usize,
    /// Snippet length in 16th-note steps.
    pub snippet_steps: usize,
    /// Balanced batches (one snippet per composer each) per step: a folder of few composers
    /// trains on more than a snippet or two a step.
    #[serde(default = "one_batch")]
    pub batches: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// KL weight schedule.
    pub beta: BetaSchedule,
    /// Free bits per latent dimension, nats.
    pub free_bits: f64,
    /// Probability that the decoder does not see the previous step.
    pub input_dropout: f64,
    /// Probability that a sounding cell is hidden from the encoder (note dropout on its
    /// input; the decoder still reconstructs every note), so z must summarise what survives
    /// random deletions rather than the exact notes of the training pieces. 0 = off.
    #[serde(default)]
    pub encoder_dropout: f64,
    /// Weight of the composer-classification term on the posterior means.
    pub style_weight: f64,
    /// Spread of the composer centres of that term at the start: each coordinate is drawn
    /// from N(0, centre_scale^2).
    #[serde(default = "one")]
    pub centre_scale: f64,
    /// Weight of the piece term: each snippet's posterior mean must pick out, among the
    /// batch, the mean of another snippet of its own piece (a contrastive loss over distances),
    /// so z describes a piece consistently over time. 0 = off.
    #[serde(default)]
    pub piece_weight: f64,
    /// Weight of the MMD term (InfoVAE, Zhao et al. 2019): the maximum mean discrepancy
    /// between the batch's sampled codes and draws from N(0, I). It pulls the codes as a whole
    /// onto the prior, so that a prior sample lands where the decoder was trained, without the
    /// per-snippet KL cost that erases what z says of each snippet. 0 = off.
    #[serde(default)]
    pub mmd_weight: f64,
    /// Spread of the MMD term's target: the codes are pulled onto N(0, mmd_scale^2 I). Above
    /// 1 the codes spread wider than the prior, so that a prior sample falls inside them.
    #[serde(default = "one")]
    pub mmd_scale: f64,
    /// Weight of the covariance term (DIP-VAE-II, Kumar et al. 2018): the squared distance
    /// between the covariance of the batch's codes as a whole (the spread of the posterior
    /// means plus the mean posterior variance) and the identity. It asks the codes to fill
    /// N(0, I) in every direction, not only along the axes, so that a prior sample is not off
    /// the decoder's map in a direction the codes never take. 0 = off.
    #[serde(default)]
    pub covariance_weight: f64,
    /// A trained model whose weights the run starts from (fine-tuning, with a fresh
    /// optimiser), instead of random ones, so a small corpus of one's own trains from the
    /// shipped model. Its sizes must be the run's. The composer term's centres start at its
    /// stored means for the composers it knows (by name); the corpus's others at random.
    /// (Kept as text, absolute: a record of where the weights came from, which a name in
    /// another encoding than UTF-8 must not stop from being written.)
    #[serde(default, serialize_with = "crate::fsutil::serialize_path_lossy")]
    pub init: Option<std::path::PathBuf>,
    /// A composer-aware prior: the KL is taken against N(c_y, I), c_y being the learned
    /// centre of the snippet's composer (the style term's centres), instead of N(0, I). The
    /// centres are stored with the model, so its prior can be sampled.
    #[serde(default)]
    pub composer_prior: bool,
    /// Each training snippet is transposed by a random number of semitones in +-this
    /// (0 = off): more keys per composer, so z and the style term lean less on the key.
    #[serde(default)]
    pub transpose: u8,
    /// Share of each composer's pieces held out for validation.
    pub valid_fraction: f64,
    /// Validation snippets per composer.
    pub valid_per_composer: usize,
    /// Validate every this many steps.
    pub eval_every: usize,
    /// Checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many seconds of training, if set.
    pub max_seconds: Option<f64>,
    /// Train through candle's autograd over a step-by-step LSTM instead of the fused LSTM
    /// (slow; to check that both give the same loss curve).
    #[serde(default)]
    pub composed_lstm: bool,
}

impl TrainOptions {
    /// Refuses options no run can use (checked before the corpus is loaded, and again when
    /// training starts).
    pub fn check(&self) -> Result<()> {
        let c = &self.config;
        if c.hidden == 0 || c.layers == 0 || c.latent == 0 {
            return Err(Error::InvalidArgument(
                "the hidden size, layers and latent size must be at least 1".into(),
            ));
        }
        use crate::train_loop::{MAX_SNIPPET_STEPS, check_at_most};
        check_at_most("hidden size", c.hidden, Config::MAX_HIDDEN)?;
        check_at_most("number of layers", c.layers, Config::MAX_LAYERS)?;
        check_at_most("latent size", c.latent, Config::MAX_LATENT)?;
        check_at_most("snippet length", self.snippet_steps, MAX_SNIPPET_STEPS)?;
        if c.metre > Config::MAX_METRE {
            return Err(Error::InvalidArgument(format!(
                "the metre input takes at most {} steps a bar, not {}",
                Config::MAX_METRE,
                c.metre
            )));
        }
        if c.metre_map && c.metre == 0 {
            return Err(Error::InvalidArgument(
                "the metre map tells the metre input where bars fall; without the metre input \
                 (--metre 0) there is none"
                    .into(),
            ));
        }
        check_count("number of steps", self.steps)?;
        check_at_most(
            "number of steps",
            self.steps,
            crate::train_loop::MAX_TRAINING_STEPS,
        )?;
        check_count("number of batches per step", self.batches)?;
        check_at_most(
            "number of batches per step",
            self.batches,
            crate::train_loop::MAX_BATCHES_PER_STEP,
        )?;
        if self.snippet_steps < 2 {
            return Err(Error::InvalidArgument(
                "snippets must be at least 2 steps long".into(),
            ));
        }
        // Counting bars from the piece's start, training snippets start on bar lines;
        // validation snippets follow one another, so each must be whole bars too, to be
        // snippets of the kind the model learns from. With the metre map, the map says where
        // bars are.
        if !c.snippets_hold_whole_bars(self.snippet_steps) {
            return Err(Error::InvalidArgument(format!(
                "with the metre input the snippet length must be whole bars of {} steps, not {}",
                c.metre, self.snippet_steps
            )));
        }
        check_count("validation interval", self.eval_every)?;
        check_count("checkpoint interval", self.checkpoint_every)?;
        check_number("learning rate", self.learning_rate, 0.0, true)?;
        check_number("gradient clip", self.grad_clip, 0.0, true)?;
        check_number("final KL weight (beta)", self.beta.end, 0.0, false)?;
        check_number("free bits", self.free_bits, 0.0, false)?;
        check_number("style weight", self.style_weight, 0.0, false)?;
        check_number("centre scale", self.centre_scale, 0.0, true)?;
        check_number("piece weight", self.piece_weight, 0.0, false)?;
        check_number("MMD weight", self.mmd_weight, 0.0, false)?;
        check_number("MMD scale", self.mmd_scale, 0.0, true)?;
        check_number("covariance weight", self.covariance_weight, 0.0, false)?;
        check_probability("input dropout", self.input_dropout)?;
        check_probability("encoder dropout", self.encoder_dropout)?;
        check_probability("validation share", self.valid_fraction)?;
        check_transpose(self.transpose)?;
        if self.piece_weight > 0.0 && self.batches > 1 {
            return Err(Error::InvalidArgument(
                "the piece term tells each snippet's piece among the batch's, one snippet a \
                 piece; with several batches a step a piece can come twice: it cannot be \
                 combined with --batches above 1"
                    .into(),
            ));
        }
        if self.piece_weight > 0.0 && self.transpose > 0 {
            return Err(Error::InvalidArgument(
                "the piece term compares a snippet with another of its piece untransposed; \
                 it cannot be combined with --transpose"
                    .into(),
            ));
        }
        if let Some(limit) = self.max_seconds {
            check_number("time limit", limit, 0.0, true)?;
        }
        Ok(())
    }

    /// Starts the run from the trained model `path` (of config `model`, where known) the way
    /// fine-tuning goes: a tenth of the preset's learning rate (the shipped model's last), the
    /// full KL weight from the start (the latent is already alive; annealing again would let it
    /// drift), and bars counted as the model counts them ([`Config::metre_map`]).
    pub fn fine_tune_from(&mut self, path: std::path::PathBuf, model: Option<&Config>) {
        if let Some(model) = model {
            self.config.metre_map = model.metre_map;
        }
        self.init = Some(std::path::absolute(&path).unwrap_or(path));
        self.learning_rate = FINE_TUNE_LEARNING_RATE;
        self.beta.delay = 0;
        self.beta.ramp = 0;
    }

    /// Defaults for a preset ("studio" or "paper").
    pub fn preset(name: &str) -> Result<Self> {
        let config = match name {
            "studio" => Config::studio(),
            "paper" => Config::paper(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown preset `{other}` (studio, paper)"
                )));
            }
        };
        // The studio preset trains on 128-step snippets (more updates in its hour on two
        // cores), 7000 steps (0.35-0.5 s each on two cores: 41-58 minutes; the shipped
        // weights' first stage had validation BCE 0.0435 at 6463); the paper preset on the
        // paper's 320, 12000 steps.
        let (snippet_steps, steps) = if name == "paper" {
            (320, 12_000)
        } else {
            (128, 7_000)
        };
        Ok(TrainOptions {
            preset: name.to_string(),
            config,
            steps,
            snippet_steps,
            seed: 1,
            learning_rate: 1e-3,
            grad_clip: 10.0,
            beta: BetaSchedule {
                delay: 500,
                ramp: 2000,
                end: 0.1,
            },
            free_bits: 0.25,
            input_dropout: 0.25,
            encoder_dropout: 0.0,
            style_weight: 30.0,
            centre_scale: 1.0,
            piece_weight: 0.0,
            mmd_weight: 0.0,
            mmd_scale: 1.0,
            covariance_weight: 0.0,
            init: None,
            composer_prior: false,
            transpose: 0,
            batches: 1,
            valid_fraction: 0.1,
            valid_per_composer: 4,
            eval_every: 250,
            checkpoint_every: 250,
            max_seconds: None,
            composed_lstm: false,
        })
    }
}

/// Validation figures on held-out pieces (teacher-forced, z = posterior mean).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Validation {
    /// Reconstruction BCE per snippet.
    pub recon: f64,
    /// Reconstruction BCE per cell.
    pub recon_per_cell: f64,
    /// KL per snippet, nats.
    pub kl: f64,
    /// KL per latent dimension, nats.
    pub kl_per_dim: Vec<f64>,
    /// Dimensions whose posterior mean varies across snippets (variance > 0.01).
    pub active_units: usize,
    /// Share of snippets whose posterior mean is nearest its own composer's learned centre.
    pub style_accuracy: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Optimiser steps done.
    pub step: usize,
    /// Training reconstruction BCE per snippet.
    pub recon: f64,
    /// Training reconstruction BCE per cell.
    pub recon_per_cell: f64,
    /// Training KL per snippet (unclamped), nats.
    pub kl: f64,
    /// KL weight at this step.
    pub beta: f64,
    /// Composer-classification cross-entropy of the posterior means.
    pub style: f64,
    /// Cross-entropy of the piece term (0 when it is off).
    #[serde(default)]
    pub piece: f64,
    /// Squared MMD between the sampled codes and prior draws (0 when the term is off).
    #[serde(default)]
    pub mmd: f64,
    /// The covariance term's squared distance from the identity (0 when the term is off).
    #[serde(default)]
    pub covariance: f64,
    /// Validation figures, on the steps that have them.
    pub valid: Option<Validation>,
    /// Seconds of training so far.
    pub seconds: f64,
}

/// What the trainer reports while it runs.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// Training (re)starts at `step` of `total`.
    Started {
        /// First step to run.
        step: usize,
        /// Last step.
        total: usize,
        /// Trainable parameters.
        parameters: usize,
        /// Pieces it trains on.
        pieces: usize,
        /// Pieces held out for validation.
        held_out: usize,
    },
    /// A step (or validation) finished.
    Metrics(Metrics),
    /// A checkpoint was written.
    Checkpoint {
        /// Steps done.
        step: usize,
        /// The loadable model file.
        path: PathBuf,
    },
}

/// Where training left off.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TrainState {
    /// [`crate::train_loop::STATE_FORMAT`] when written.
    #[serde(default = "crate::train_loop::first_state_format")]
    format: u32,
    options: TrainOptions,
    step: usize,
    /// The steps of the model the run started from ([`Manifest::init_steps`]).
    #[serde(default)]
    init_steps: usize,
    /// The licence and credits of the model the run started from (checkpoints before these
    /// were kept lack them: those runs' weights credit their corpus's).
    #[serde(default)]
    init_rights: Option<trained::Rights>,
    seconds: f64,
    corpus_hash: String,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Steps done in all.
    pub steps: usize,
    /// The model file.
    pub model_path: PathBuf,
    /// Whether it stopped early (Ctrl-C, stop switch or time limit).
    pub stopped_early: bool,
    /// Last validation.
    pub validation: Option<Validation>,
}

/// Paths of the files in a training folder.
pub fn model_path(out: &Path) -> PathBuf {
    out.join(format!("{}.safetensors", crate::models::trained::KIND))
}

/// The metrics log of a training folder.
pub fn metrics_path(out: &Path) -> PathBuf {
    out.join("metrics.jsonl")
}

fn state_path(out: &Path) -> PathBuf {
    out.join("train-state.safetensors")
}

/// What the optional loss terms of a training step take besides the batch.
struct TermInputs<'a> {
    /// Another snippet of each item's piece (the piece term).
    partners: Option<&'a Tensor>,
    /// Draws from the MMD term's target distribution.
    prior: Option<&'a Tensor>,
}

/// The metre input's positions for `snippets` of `steps` steps under `cfg` (see
/// [`Config::bar_positions`]).
pub(crate) fn snippet_bars(
    corpus: &Corpus,
    snippets: &[SnippetRef],
    steps: usize,
    cfg: &Config,
) -> BarPositions {
    BarPositions::new(cfg, steps, corpus.snippet_metres(snippets))
}

/// Another snippet of the piece of each of `sources`, at a random start (it may overlap).
fn partner_snippets(
    corpus: &Corpus,
    sources: &[SnippetRef],
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<SnippetRef> {
    sources
        .iter()
        .map(|s| {
            let starts = crate::dataset::snippet_starts(corpus.pieces[s.piece].roll.steps(), steps);
            SnippetRef {
                piece: s.piece,
                start: rng.random_range(0..starts),
            }
        })
        .collect()
}

/// The covariance term of [`TrainOptions::covariance_weight`]: the squared Frobenius distance
/// between the covariance of the mixture of the batch's posteriors and the identity.
fn covariance_gap(q: &DiagonalGaussian) -> candle_core::Result<Tensor> {
    let (b, z) = q.mean.dims2()?;
    let centred = q.mean.broadcast_sub(&q.mean.mean_keepdim(0)?)?;
    let spread = (centred.t()?.matmul(&centred)? / b as f64)?;
    let eye = Tensor::eye(z, DType::F32, q.mean.device())?;
    // The mean posterior variance on the diagonal, less the identity's 1.
    let variance = (q.logvar.exp()?.mean_keepdim(0)? - 1.0)?;
    (spread + eye.broadcast_mul(&variance)?)?.sqr()?.sum_all()
}

/// Prior draws per code of the batch in the MMD term.
const MMD_PRIOR_DRAWS: usize = 10;

/// Squared maximum mean discrepancy (the biased estimate) between the rows of `a` `[N, Z]`
/// and of `b` `[M, Z]`, with InfoVAE's Gaussian kernel exp(-|x - y|^2 / Z).
fn squared_mmd(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let scale = -1.0 / a.dim(1)? as f64;
    let kernel = |x: &Tensor, y: &Tensor| {
        squared_distances(x, y)?
            .affine(scale, 0.0)?
            .exp()?
            .mean_all()
    };
    (kernel(a, a)? + kernel(b, b)?)? - kernel(a, b)?.affine(2.0, 0.0)?
}

/// Squared distances `[B, C]` from posterior means `[B, Z]` to centres `[C, Z]`.
fn squared_distances(mean: &Tensor, centres: &Tensor) -> candle_core::Result<Tensor> {
    let m2 = mean.sqr()?.sum_keepdim(1)?;
    let c2 = centres.sqr()?.sum_keepdim(1)?.t()?;
    let cross = mean.matmul(&centres.t()?)?;
    m2.broadcast_add(&c2)?
        .broadcast_sub(&cross.affine(2.0, 0.0)?)
}

/// Draws every initial weight from the seeded generator (candle's own initialisers use an
/// unseeded one): uniform in +-1/sqrt(H) for the LSTMs, as PyTorch does, and +-1/sqrt(fan-in)
/// for the linear maps.
pub(crate) fn seeded_init(varmap: &VarMap, cfg: &Config, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1417_0000);
    for name in names {
        let var = &data[name];
        let fan_in = if name.starts_with("encoder.") || name.starts_with("decoder.") {
            cfg.hidden
        } else {
            let prefix = name.rsplit_once('.').map_or(name.as_str(), |p| p.0);
            data.get(&format!("{prefix}.weight"))
                .and_then(|w| w.dims().get(1).copied())
                .unwrap_or(cfg.hidden)
        };
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let t = Tensor::from_vec(values, var.shape(), var.device()).map_err(candle)?;
        var.set(&t).map_err(candle)?;
    }
    Ok(())
}

/// The trainer's state over one run.
struct Trainer<'a> {
    corpus: &'a Corpus,
    opts: TrainOptions,
    device: Device,
    varmap: VarMap,
    model: LstmVae,
    centres: Var,
    adam: Adam,
    train_pieces: Vec<usize>,
    /// Pieces held out for validation.
    held_out: usize,
    valid: Vec<(SnippetRef, usize)>,
    /// Steps of the model the run started from (0 from scratch).
    init_steps: usize,
    /// The licence and credits of the model the run started from, if any: its weights carry
    /// them on.
    init_rights: Option<trained::Rights>,
}

impl<'a> Trainer<'a> {
    fn new(corpus: &'a Corpus, opts: &TrainOptions, device: &Device) -> Result<Self> {
        opts.check()?;
        let split = corpus.split(opts.valid_fraction, opts.seed);
        if split.train.is_empty() {
            return Err(Error::InvalidArgument(
                "no training pieces in the corpus".into(),
            ));
        }
        // One snippet per composer a step; each keeps, at the least, about 20 numbers per
        // step, layer and hidden unit of both LSTMs for the backward pass (measured: 21-47).
        let cfg = &opts.config;
        let per_snippet = 80 * 2 * (opts.snippet_steps * cfg.layers * cfg.hidden) as u64;
        crate::train_loop::check_training_memory(
            device,
            cfg.parameters(),
            corpus.composers.len().saturating_mul(opts.batches),
            per_snippet,
            "train fewer batches a step (--batches), on shorter snippets (--snippet-steps), or a \
             smaller model (--hidden, --layers)",
        )?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let mut model = LstmVae::new(&opts.config, vb).map_err(candle)?;
        model.use_composed_lstm(opts.composed_lstm);
        seeded_init(&varmap, &opts.config, opts.seed)?;
        let centres = Var::from_tensor(
            &Tensor::from_vec(
                crate::models::standard_normal(
                    &mut ChaCha8Rng::seed_from_u64(opts.seed ^ 0xCE47),
                    corpus.composers.len() * opts.config.latent,
                )
                .into_iter()
                .map(|v| v * opts.centre_scale as f32)
                .collect(),
                (corpus.composers.len(), opts.config.latent),
                device,
            )
            .map_err(candle)?,
        )
        .map_err(candle)?;
        let mut vars = trained::named_tensors(&varmap)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>();
        vars.sort();
        let data = varmap.data().lock().expect("varmap lock poisoned").clone();
        let mut params: Vec<(String, Var)> = vars
            .into_iter()
            .map(|n| (n.clone(), data[&n].clone()))
            .collect();
        params.push(("style.centres".into(), centres.clone()));
        let adam = Adam::new(params, opts.learning_rate)?;
        let valid = evaluation_snippets(
            corpus,
            &split.valid,
            opts.snippet_steps,
            opts.valid_per_composer,
        );
        Ok(Trainer {
            corpus,
            opts: opts.clone(),
            device: device.clone(),
            varmap,
            model,
            centres,
            adam,
            train_pieces: split.train,
            held_out: split.valid.len(),
            valid,
            init_steps: 0,
            init_rights: None,
        })
    }

    fn parameters(&self) -> usize {
        trained::named_tensors(&self.varmap)
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum()
    }

    /// One optimiser step on the batch `x` (its bar positions `bars`, composers `labels`), with
    /// the inputs of the optional terms in `terms`. Returns (recon, kl, style, piece, mmd,
    /// covariance).
    fn step(
        &mut self,
        x: &Tensor,
        bars: &BarPositions,
        terms: TermInputs,
        labels: &Tensor,
        beta: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<[f64; 6]> {
        let TermInputs { partners, prior } = terms;
        let o = &self.opts;
        let (b, t, _) = x.dims3().map_err(candle)?;
        let keep: Vec<f32> = (0..b * t)
            .map(|_| {
                if rng.random::<f64>() < o.input_dropout {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        // Drawn only when on, so runs without it keep their loss curves.
        let seen: Option<Vec<f32>> = (o.encoder_dropout > 0.0).then(|| {
            (0..b * t * PITCHES)
                .map(|_| f32::from(u8::from(rng.random::<f64>() >= o.encoder_dropout)))
                .collect()
        });
        let run = || -> candle_core::Result<[Tensor; 7]> {
            let keep = Tensor::from_vec(keep, (b, t), &self.device)?;
            let posterior = match seen {
                Some(seen) => {
                    let seen = Tensor::from_vec(seen, (b, t, PITCHES), &self.device)?;
                    self.model.encode(&(x * seen)?)?
                }
                None => self.model.encode(x)?,
            };
            let z = posterior.sample(rng)?;
            let logits = self.model.decode_dropped(x, &z, bars, Some(&keep))?;
            let recon = bce_with_logits(&logits, x)?;
            let kl_dims = self.kl_per_dim(&posterior, labels)?;
            let kl = kl_dims.sum_all()?;
            let kl_paid = kl_dims.maximum(o.free_bits as f32)?.sum_all()?;
            let logits_c =
                squared_distances(&posterior.mean, self.centres.as_tensor())?.affine(-0.5, 0.0)?;
            let style = candle_nn::loss::cross_entropy(&logits_c, labels)?;
            let mut total = ((&recon + (kl_paid * beta)?)? + (&style * o.style_weight)?)?;
            let piece = match partners {
                Some(p) => {
                    // The partners' means are targets (no gradient): one more encoder pass,
                    // forward only.
                    let keys = self.model.encode(p)?.mean.detach();
                    let logits = squared_distances(&posterior.mean, &keys)?.affine(-0.5, 0.0)?;
                    let own = Tensor::arange(0u32, b as u32, &self.device)?;
                    let piece = candle_nn::loss::cross_entropy(&logits, &own)?;
                    total = (total + (&piece * o.piece_weight)?)?;
                    piece
                }
                None => Tensor::zeros((), DType::F32, &self.device)?,
            };
            let mmd = match prior {
                Some(p) => {
                    let mmd = squared_mmd(&z, p)?;
                    total = (total + (&mmd * o.mmd_weight)?)?;
                    mmd
                }
                None => Tensor::zeros((), DType::F32, &self.device)?,
            };
            let covariance = if o.covariance_weight > 0.0 {
                let gap = covariance_gap(&posterior)?;
                total = (total + (&gap * o.covariance_weight)?)?;
                gap
            } else {
                Tensor::zeros((), DType::F32, &self.device)?
            };
            Ok([total, recon, kl, style, piece, mmd, covariance])
        };
        let [total, recon, kl, style, piece, mmd, covariance] = run().map_err(candle)?;
        let grads = total.backward().map_err(candle)?;
        self.adam.apply(&grads, o.grad_clip)?;
        let scalar = |t: &Tensor| t.to_scalar::<f32>().map(|v| v as f64).map_err(candle);
        Ok([
            scalar(&recon)?,
            scalar(&kl)?,
            scalar(&style)?,
            scalar(&piece)?,
            scalar(&mmd)?,
            scalar(&covariance)?,
        ])
    }

    /// KL per latent dimension against the prior the run uses: N(0, I), or with
    /// `composer_prior` N(c, I) of each snippet's composer (`labels`).
    fn kl_per_dim(&self, q: &DiagonalGaussian, labels: &Tensor) -> candle_core::Result<Tensor> {
        if self.opts.composer_prior {
            q.kl_to_per_dim(&self.centres.as_tensor().index_select(labels, 0)?)
        } else {
            q.kl_per_dim()
        }
    }

    fn validate(&self) -> Result<Validation> {
        let steps = self.opts.snippet_steps;
        let (mut recon, mut kl, mut hits) = (0f64, 0f64, 0usize);
        let z_dim = self.opts.config.latent;
        let mut kl_dims = vec![0f64; z_dim];
        let mut means: Vec<Vec<f32>> = Vec::new();
        let n = self.valid.len().max(1);
        for chunk in self.valid.chunks(20) {
            let refs: Vec<SnippetRef> = chunk.iter().map(|(s, _)| *s).collect();
            let x = snippet_tensor(self.corpus, &refs, steps, &self.device)?;
            let bars = snippet_bars(self.corpus, &refs, steps, &self.opts.config);
            type Chunk = (f64, Vec<f32>, Vec<Vec<f32>>, Vec<u32>);
            let run = || -> candle_core::Result<Chunk> {
                let q = self.model.encode(&x)?;
                let logits = self.model.decode(&x, &q.mean, &bars)?;
                let r =
                    bce_with_logits(&logits, &x)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                let labels: Vec<u32> = chunk.iter().map(|(_, c)| *c as u32).collect();
                let labels = Tensor::new(labels.as_slice(), &self.device)?;
                let kd = (self.kl_per_dim(&q, &labels)? * chunk.len() as f64)?.to_vec1::<f32>()?;
                let nearest = squared_distances(&q.mean, self.centres.as_tensor())?
                    .argmin(D::Minus1)?
                    .to_vec1::<u32>()?;
                Ok((r, kd, q.mean.to_vec2::<f32>()?, nearest))
            };
            let (r, kd, m, nearest) = run().map_err(candle)?;
            recon += r;
            for (acc, v) in kl_dims.iter_mut().zip(&kd) {
                *acc += *v as f64;
            }
            kl += kd.iter().map(|v| *v as f64).sum::<f64>();
            hits += chunk
                .iter()
                .zip(&nearest)
                .filter(|((_, c), n)| *c == **n as usize)
                .count();
            means.extend(m);
        }
        let active_units = (0..z_dim)
            .filter(|&d| {
                let mean = means.iter().map(|m| m[d] as f64).sum::<f64>() / n as f64;
                let var = means
                    .iter()
                    .map(|m| (m[d] as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                var > 0.01
            })
            .count();
        let recon = recon / n as f64;
        Ok(Validation {
            recon,
            recon_per_cell: recon / (steps * PITCHES) as f64,
            kl: kl / n as f64,
            kl_per_dim: kl_dims.iter().map(|v| v / n as f64).collect(),
            active_units,
            style_accuracy: hits as f64 / n as f64,
        })
    }

    /// Per-composer statistics of posterior means over training snippets.
    fn latent_stats(&self) -> Result<Vec<LatentStats>> {
        let steps = self.opts.snippet_steps;
        let snippets = evaluation_snippets(self.corpus, &self.train_pieces, steps, 8);
        let mut per: Vec<Vec<Vec<f32>>> = vec![Vec::new(); self.corpus.composers.len()];
        for chunk in snippets.chunks(20) {
            let refs: Vec<SnippetRef> = chunk.iter().map(|(s, _)| *s).collect();
            let x = snippet_tensor(self.corpus, &refs, steps, &self.device)?;
            let means = self
                .model
                .encode(&x)
                .and_then(|q| q.mean.to_vec2::<f32>())
                .map_err(candle)?;
            for ((_, c), m) in chunk.iter().zip(means) {
                per[*c].push(m);
            }
        }
        Ok(per.iter().map(|ms| LatentStats::of(ms)).collect())
    }

    fn checkpoint(
        &self,
        out: &Path,
        step: usize,
        seconds: f64,
        last: Option<&Validation>,
    ) -> Result<PathBuf> {
        let rights = trained::Rights::of_corpus(self.corpus);
        let rights = match &self.init_rights {
            Some(from) => rights.fine_tuned_from(from),
            None => rights,
        };
        let manifest = Manifest {
            format: trained::MANIFEST_FORMAT,
            model: crate::models::trained::KIND.into(),
            preset: self.opts.preset.clone(),
            config: self.opts.config,
            composers: self.corpus.composers.clone(),
            latents: self.latent_stats()?,
            corpus: CorpusInfo::of(self.corpus, self.train_pieces.len()),
            steps: step,
            init_steps: self.init_steps,
            seconds,
            training: serde_json::to_value(&self.opts).unwrap_or_default(),
            metrics: serde_json::to_value(last).unwrap_or_default(),
            licence: rights.licence,
            credits: rights.credits,
            dtype: "f32".into(),
            written_by: trained::written_by(),
            prior: if self.opts.composer_prior {
                Some(trained::ComposerPrior {
                    means: self.centres.as_tensor().to_vec2::<f32>().map_err(candle)?,
                })
            } else {
                None
            },
        };
        // The four files are one checkpoint: written beside the previous one, then moved into
        // place together (see fsutil::commit_set).
        let stage = crate::fsutil::begin_set(out)?;
        trained::save(&model_path(&stage), &self.varmap, &manifest)?;
        // Optimiser state: parameters of the style term and Adam's moments.
        let mut tensors = vec![(
            "style.centres".to_string(),
            self.centres.as_tensor().clone(),
        )];
        for (name, _, m, s) in &self.adam.params {
            tensors.push((format!("adam.m.{name}"), m.as_tensor().clone()));
            tensors.push((format!("adam.v.{name}"), s.as_tensor().clone()));
        }
        weights::save_at_step(&state_path(&stage), &tensors, DType::F32, Some(step))?;
        let state = TrainState {
            format: crate::train_loop::STATE_FORMAT,
            options: self.opts.clone(),
            step,
            init_steps: self.init_steps,
            init_rights: self.init_rights.clone(),
            seconds,
            corpus_hash: self.corpus.content_hash(),
        };
        weights::write_manifest(&weights::manifest_path(&state_path(&stage)), &state)?;
        crate::fsutil::commit_set(out)?;
        Ok(model_path(out))
    }

    /// Takes the weights of the trained model `path` (see [`TrainOptions::init`]).
    fn initialise_from(&mut self, path: &Path) -> Result<()> {
        let (m, tensors) = check_init(path, &self.opts, &self.device)?;
        check_held_out(path, &m, self.corpus, &self.opts)?;
        self.init_steps = m.total_steps();
        self.init_rights = Some(m.rights());
        for (name, v, _, _) in &self.adam.params {
            if let Some(t) = tensors.get(name) {
                v.set(t).map_err(candle)?;
            }
        }
        // A composer the model knows starts at its centre (its prior's, where it has one; else
        // its stored mean code); another corpus's own composers keep their seeded random ones.
        let mut centres = self.centres.as_tensor().to_vec2::<f32>().map_err(candle)?;
        for (centre, name) in centres.iter_mut().zip(&self.corpus.composers) {
            if let Some(k) = crate::dataset::composer_position(&m.composers, name) {
                match &m.prior {
                    Some(prior) => centre.clone_from(&prior.means[k]),
                    None => centre.clone_from(&m.latents[k].mean),
                }
            }
        }
        let centres = Tensor::new(centres, &self.device).map_err(candle)?;
        self.centres.set(&centres).map_err(candle)
    }

    /// Restores weights and optimiser state from `out`; returns (step, seconds).
    fn restore(&mut self, out: &Path) -> Result<(usize, f64)> {
        let path = weights::manifest_path(&state_path(out));
        let state: TrainState = crate::train_loop::read_state_file(&path)?;
        crate::train_loop::check_progress(&path, state.step, state.seconds)?;
        let (was, now) = (&state.options.config, &self.opts.config);
        if was.same_sizes(now) && was.metre_map != now.metre_map {
            return Err(Error::InvalidArgument(format!(
                "{}: the checkpoint's metre input counts bars {}; resume with --metre-map {}",
                crate::fsutil::shown(out),
                if was.metre_map {
                    "by each piece's metre map"
                } else {
                    "every so many steps from each piece's start"
                },
                was.metre_map
            )));
        }
        if state.options.config != self.opts.config {
            return Err(Error::InvalidArgument(format!(
                "{}: the checkpoint is of a model {:?}, not {:?}",
                crate::fsutil::shown(out),
                state.options.config,
                self.opts.config
            )));
        }
        crate::train_loop::check_same_corpus(out, &state.corpus_hash, self.corpus)?;
        // The prior the KL is taken against is what the codes mean: not switched mid-run.
        if state.options.composer_prior != self.opts.composer_prior {
            let prior = |composer: bool| match composer {
                true => "a composer-aware prior (--composer-prior)",
                false => "N(0, I)",
            };
            return Err(Error::InvalidArgument(format!(
                "{}: the checkpoint takes its KL against {}, this run against {}; a run keeps its prior (start a new run, or --init from the model, to change it)",
                crate::fsutil::shown(out),
                prior(state.options.composer_prior),
                prior(self.opts.composer_prior)
            )));
        }
        // What decides the split and the batches must stay: another seed would move trained
        // pieces into validation, another snippet length would change the batch order.
        let (was, now) = (&state.options, &self.opts);
        check_same_data(
            out,
            &[
                option("--seed", was.seed, now.seed),
                option("--snippet-steps", was.snippet_steps, now.snippet_steps),
                option("--batches", was.batches, now.batches),
                option("--transpose", was.transpose, now.transpose),
                option("valid_fraction", was.valid_fraction, now.valid_fraction),
                option(
                    "valid_per_composer",
                    was.valid_per_composer,
                    now.valid_per_composer,
                ),
            ],
        )?;
        weights::check_checkpoint(out, &model_path(out), &state_path(out), state.step)?;
        self.init_steps = state.init_steps;
        // Checkpoints written before the rights were kept: those of the model the run started
        // from, where its manifest can still be read.
        self.init_rights = state.init_rights.or_else(|| {
            let init = self.opts.init.as_deref()?;
            let m: trained::Manifest =
                weights::read_manifest(&weights::manifest_path(init)).ok()?;
            Some(m.rights())
        });
        let expected = trained::expected_tensors(&self.opts.config)?;
        let model = weights::load(&model_path(out), &expected, &self.device)?;
        let mut opt_expected = vec![weights::Expected {
            name: "style.centres".into(),
            dims: self.centres.dims().to_vec(),
        }];
        for (name, v, _, _) in &self.adam.params {
            for kind in ["m", "v"] {
                opt_expected.push(weights::Expected {
                    name: format!("adam.{kind}.{name}"),
                    dims: v.dims().to_vec(),
                });
            }
        }
        let opt = weights::load(&state_path(out), &opt_expected, &self.device)?;
        let set = |v: &Var, t: &Tensor| v.set(t).map_err(candle);
        set(&self.centres, &opt["style.centres"])?;
        for (name, v, m, s) in &self.adam.params {
            if let Some(t) = model.get(name) {
                set(v, t)?;
            }
            set(m, &opt[&format!("adam.m.{name}")])?;
            set(s, &opt[&format!("adam.v.{name}")])?;
        }
        self.adam.step = state.step;
        Ok((state.step, state.seconds))
    }
}

/// Loads the model a run is to start from (see [`TrainOptions::init`]) onto `device` and
/// checks that the run can take it: the same sizes, and a composer prior only where the run
/// has one too. Returns its manifest and tensors. Called before the corpus loads (the CLI)
/// and when the run starts.
pub fn check_init(
    path: &Path,
    opts: &TrainOptions,
    device: &Device,
) -> Result<(trained::Manifest, std::collections::HashMap<String, Tensor>)> {
    let (m, tensors) = trained::TrainedModel::load_checked(path, device)?;
    if !m.config.same_sizes(&opts.config) {
        return Err(Error::format(
            path,
            format!(
                "a model of sizes {:?}, but this run trains {:?}",
                m.config, opts.config
            ),
        ));
    }
    if m.prior.is_some() != opts.composer_prior {
        let (was, now) = match opts.composer_prior {
            true => ("without", "with"),
            false => ("with", "without"),
        };
        return Err(Error::format(
            path,
            format!(
                "a model trained {was} a composer prior; this run trains {now} one \
                 (--composer-prior)"
            ),
        ));
    }
    Ok((m, tensors))
}

/// A model fine-tuned on the corpus it was trained on must hold out the same pieces: with
/// another split, the run (and `segue eval` after it) would validate on pieces the starting
/// model learned.
fn check_held_out(
    path: &Path,
    m: &trained::Manifest,
    corpus: &Corpus,
    opts: &TrainOptions,
) -> Result<()> {
    if m.corpus.content_hash != corpus.content_hash() {
        return Ok(());
    }
    match m.held_out_split() {
        Some((fraction, seed)) if seed == opts.seed && fraction == opts.valid_fraction => Ok(()),
        Some((fraction, seed)) => {
            let (was, now, fix) = if seed != opts.seed {
                let fix = format!("train with seed {seed}");
                (format!("seed {seed}"), format!("seed {}", opts.seed), fix)
            } else {
                let fix = format!("hold out {fraction} of the pieces");
                let now = format!("{} held out", opts.valid_fraction);
                (format!("{fraction} of its pieces held out"), now, fix)
            };
            Err(Error::InvalidArgument(format!(
                "{}: the model was trained on this corpus with {was}, which chose the pieces it \
                 held out; fine-tuning it with {now} would validate on pieces it learned: {fix}",
                crate::fsutil::shown(path)
            )))
        }
        None => Err(Error::format(
            path,
            "the manifest does not say which pieces the model held out (training.seed and \
             training.valid_fraction), so fine-tuning it on the corpus it was trained on \
             cannot hold out the same ones",
        )),
    }
}

/// The options a run folder's checkpoint was trained with, if it has one (a resumed run of
/// the CLI takes what it is not told again from them, see [`TrainOptions::fine_tune_from`]).
/// Options that do not pass [`TrainOptions::check`] (a state file edited by hand, or damaged)
/// are an error naming the file.
pub fn saved_options(out: &Path) -> Result<Option<TrainOptions>> {
    let path = weights::manifest_path(&state_path(out));
    // A newer Segue's state is said as such; one that does not read otherwise is no state.
    let Ok(value) = weights::read_manifest::<serde_json::Value>(&path) else {
        return Ok(None);
    };
    crate::train_loop::check_state_format(&path, &value)?;
    let Ok(state) = serde_json::from_value::<TrainState>(value) else {
        return Ok(None);
    };
    match state.options.check() {
        Ok(()) => Ok(Some(state.options)),
        Err(e) => Err(Error::format(
            &path,
            format!("the run's options in it are not valid ({e}); was it edited?"),
        )),
    }
}

/// Checks the run folder `out` before any work: no other run may be training there, with
/// `resume` it must hold a checkpoint, without it no run (a checkpoint interrupted while being
/// moved into place counts; the run itself finishes it). Nothing is left changed (see
/// [`crate::train_loop::check_out_folder`]).
pub fn check_out_folder(out: &Path, resume: bool) -> Result<()> {
    crate::train_loop::check_not_in_use(out)?;
    crate::train_loop::check_run_folder(out, &model_path(out), &state_path(out), resume)
}

/// Trains an LSTM-VAE on `corpus` into `out`, reporting through `on_event`. With `resume`,
/// continues from the checkpoint in `out` (its options must describe the same model).
pub fn train_lstm_vae(
    corpus: &Corpus,
    opts: &TrainOptions,
    out: &Path,
    device: &Device,
    resume: bool,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Outcome> {
    // The options, the corpus and a model to start from are checked before a run folder is
    // made, so that a run refused leaves nothing behind.
    let mut trainer = Trainer::new(corpus, opts, device)?;
    if let (false, Some(init)) = (resume, &opts.init) {
        trainer.initialise_from(init)?;
    }
    // Held until the run ends: nothing in the folder is touched before it is ours.
    let (lock, created) =
        crate::train_loop::open_run_folder(out, &model_path(out), &state_path(out), resume)?;
    let (mut step, seconds_before) = if resume {
        trainer.restore(out)?
    } else {
        (0, 0.0)
    };
    crate::train_loop::check_steps_left(out, step, opts.steps)?;
    let metrics_file = metrics_path(out);
    let mut log = crate::train_loop::open_metrics_log(&metrics_file, step)?;

    let mut sampler = BalancedSampler::aligned(
        corpus,
        &trainer.train_pieces,
        opts.snippet_steps,
        opts.config.snippet_alignment(),
        opts.seed,
    )?;
    sampler.skip(step * opts.batches);
    on_event(TrainEvent::Started {
        step,
        total: opts.steps,
        parameters: trainer.parameters(),
        pieces: trainer.train_pieces.len(),
        held_out: trainer.held_out,
    });
    let mut clock = crate::train_loop::TrainingClock::new(seconds_before);
    let mut last_valid = None;
    let mut last_checkpoint = step;
    let mut stopped_early = false;
    let mut model_file = model_path(out);
    while step < opts.steps {
        clock.wait_while_paused(control);
        if control.stop.load(Ordering::Relaxed)
            || opts
                .max_seconds
                .is_some_and(|limit| clock.seconds() >= limit)
        {
            stopped_early = true;
            break;
        }
        let mut batch = sampler.next_batch();
        for _ in 1..opts.batches {
            batch.append(sampler.next_batch());
        }
        let bars = snippet_bars(corpus, &batch.sources, opts.snippet_steps, &opts.config);
        let mut shift_rng = step_rng(opts.seed, 0x2545_F491_4F6C_DD1D, step);
        transpose_batch(&mut batch, opts.transpose, &mut shift_rng);
        let x = Tensor::from_vec(
            batch.data,
            (batch.composers.len(), batch.steps, PITCHES),
            device,
        )
        .map_err(candle)?;
        let labels: Vec<u32> = batch.composers.iter().map(|&c| c as u32).collect();
        let labels = Tensor::new(labels.as_slice(), device).map_err(candle)?;
        let beta = opts.beta.at(step);
        let mut rng = step_rng(opts.seed, STEP_DRAWS, step);
        let partners = if opts.piece_weight > 0.0 {
            let mut pick = step_rng(opts.seed, 0xD1B5_4A32_D192_ED03, step);
            let refs = partner_snippets(corpus, &batch.sources, opts.snippet_steps, &mut pick);
            Some(snippet_tensor(corpus, &refs, opts.snippet_steps, device)?)
        } else {
            None
        };
        // Drawn only when on, from their own generator, so runs without it keep their curves.
        let prior = if opts.mmd_weight > 0.0 {
            let mut draw = step_rng(opts.seed, 0x94D0_49BB_1331_11EB, step);
            let n = batch.composers.len() * MMD_PRIOR_DRAWS;
            let z = opts.config.latent;
            Some(
                Tensor::from_vec(
                    (standard_normal(&mut draw, n * z).into_iter())
                        .map(|v| v * opts.mmd_scale as f32)
                        .collect(),
                    (n, z),
                    device,
                )
                .map_err(candle)?,
            )
        } else {
            None
        };
        let [recon, kl, style, piece, mmd, covariance] = trainer.step(
            &x,
            &bars,
            TermInputs {
                partners: partners.as_ref(),
                prior: prior.as_ref(),
            },
            &labels,
            beta,
            &mut rng,
        )?;
        step += 1;
        // Without held-out pieces (every composer has one piece) there is nothing to
        // validate on: no figures rather than zeros.
        // A checkpoint is validated too, so the figures in its manifest are its own.
        let due = step.is_multiple_of(opts.eval_every)
            || step.is_multiple_of(opts.checkpoint_every)
            || step == opts.steps;
        let valid = if due && !trainer.valid.is_empty() {
            let v = trainer.validate()?;
            last_valid = Some((step, v.clone()));
            Some(v)
        } else {
            None
        };
        let m = Metrics {
            step,
            recon,
            recon_per_cell: recon / (opts.snippet_steps * PITCHES) as f64,
            kl,
            beta,
            style,
            piece,
            mmd,
            covariance,
            valid,
            seconds: clock.seconds(),
        };
        let line = serde_json::to_string(&m).unwrap_or_default();
        writeln!(log, "{line}")
            .and_then(|_| log.flush())
            .map_err(|e| Error::io(&metrics_file, "writing", e))?;
        on_event(TrainEvent::Metrics(m));
        if let Some((at, v)) = &last_valid
            && *at == step
            && !(v.recon.is_finite() && v.kl.is_finite())
        {
            let figures = format!("reconstruction {} a snippet, KL {}", v.recon, v.kl);
            return Err(crate::train_loop::diverged(step, &figures, last_checkpoint));
        }
        if step.is_multiple_of(opts.checkpoint_every) {
            let valid = last_valid.as_ref().map(|(_, v)| v);
            model_file = trainer.checkpoint(out, step, clock.seconds(), valid)?;
            last_checkpoint = step;
            on_event(TrainEvent::Checkpoint {
                step,
                path: model_file.clone(),
            });
        }
    }
    if step == 0 {
        // Stopped before the first step: nothing trained, nothing left behind.
        drop(log);
        crate::train_loop::discard_empty_run(out, &metrics_file, created, lock);
        return Err(Error::InvalidArgument(
            "stopped before the first training step: nothing was trained or written".into(),
        ));
    }
    if last_checkpoint != step || !model_file.exists() {
        // Stopped between validations: the model written is validated as it is.
        if last_valid.as_ref().is_none_or(|(at, _)| *at != step) && !trainer.valid.is_empty() {
            last_valid = Some((step, trainer.validate()?));
        }
        let valid = last_valid.as_ref().map(|(_, v)| v);
        model_file = trainer.checkpoint(out, step, clock.seconds(), valid)?;
        on_event(TrainEvent::Checkpoint {
            step,
            path: model_file.clone(),
        });
    }
    Ok(Outcome {
        steps: step,
        model_path: model_file,
        stopped_early,
        validation: last_valid.map(|(_, v)| v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_covariance_gap_is_small_for_even_codes_and_grows_when_they_lie_on_a_line() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, z) = (4000, 4);
        let even = Tensor::from_vec(standard_normal(&mut rng, n * z), (n, z), &dev).unwrap();
        let gap = |mean: &Tensor, logvar: f32| {
            let q = DiagonalGaussian {
                mean: mean.clone(),
                logvar: (mean.zeros_like().unwrap() + f64::from(logvar)).unwrap(),
            };
            covariance_gap(&q).unwrap().to_scalar::<f32>().unwrap()
        };
        // Means of N(0, I) with exact codes, or means of N(0, I/2) with posterior variance
        // 1/2: both fill N(0, I).
        assert!(gap(&even, -30.0) < 0.02, "{}", gap(&even, -30.0));
        let half = (&even * 0.5f64.sqrt()).unwrap();
        assert!(
            gap(&half, 0.5f32.ln()) < 0.02,
            "{}",
            gap(&half, 0.5f32.ln())
        );
        // Every code on one line: three directions empty, one too full.
        let first = even.narrow(1, 0, 1).unwrap();
        let line = Tensor::cat(&[&first, &first, &first, &first], 1).unwrap();
        assert!(gap(&line, -30.0) > 10.0, "{}", gap(&line, -30.0));
    }

    #[test]
    fn the_mmd_is_zero_for_one_set_and_grows_with_the_distance_between_two() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = Tensor::from_vec(standard_normal(&mut rng, 64 * 4), (64, 4), &dev).unwrap();
        let mmd = |b: &Tensor| squared_mmd(&a, b).unwrap().to_scalar::<f32>().unwrap();
        assert!(mmd(&a).abs() < 1e-6, "{}", mmd(&a));
        let near = mmd(&(&a + 0.5).unwrap());
        let far = mmd(&(&a + 2.0).unwrap());
        assert!(0.0 < near && near < far, "{near} {far}");
    }
}
