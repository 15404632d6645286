//! The training loop shared by the composer classifier, the Transformer VAE and the DCGAN:
//! balanced batches from the training pieces, optional transposition, one [`Task`] step per
//! batch, validation on held-out pieces, atomic checkpoints of weights and optimiser state,
//! resume, a JSON-lines metrics log and an indicatif-friendly event stream.
//!
//! Files in the output folder: `MODEL.safetensors` + `MODEL.json` (the model at the latest
//! checkpoint), `train-state.safetensors` + `train-state.json` (optimiser state),
//! `metrics.jsonl` (one [`LoopMetrics`] per step) and `run.lock` (see [`lock_run_folder`]).
//!
//! Also what every trainer shares, the LSTM-VAE's included: the run folder (its lock, its
//! model, [`run_model`]), the stop and pause switches ([`Control`]), batches of snippets as
//! tensors, the limits on sizes and steps, and the checkpoint format.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{BalancedSampler, Batch, Corpus, SnippetRef, evaluation_snippets};
use crate::error::{Error, Result, candle};
use crate::fsutil;
use crate::meter::WindowBars;
use crate::models::ModelKind;
use crate::models::saved::{self, ModelManifest};
use crate::models::trained::{self, CorpusInfo, LatentStats};
use crate::models::weights;
use crate::optim::Adam;
use crate::roll::PITCHES;

/// Stop and pause switches another thread (Ctrl-C, the studio) may flip.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Stop at the next step, after a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Wait while set.
    pub pause: Arc<AtomicBool>,
}

/// Builds a batch tensor `[B, T, P]` of the given snippets.
pub(crate) fn snippet_tensor(
    corpus: &Corpus,
    snippets: &[SnippetRef],
    steps: usize,
    device: &Device,
) -> Result<Tensor> {
    let block = steps * PITCHES;
    let mut data = vec![0f32; snippets.len() * block];
    for (k, s) in snippets.iter().enumerate() {
        corpus.pieces[s.piece].roll.window_f32(
            s.start,
            steps,
            &mut data[k * block..(k + 1) * block],
        );
    }
    Tensor::from_vec(data, (snippets.len(), steps, PITCHES), device).map_err(candle)
}

/// Named scalar figures of one step or one validation.
pub type Scalars = BTreeMap<String, f64>;

/// Options every model's training shares.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopOptions {
    /// Optimiser steps in all (a resumed run continues up to this).
    pub steps: usize,
    /// Snippet length in 16th-note steps.
    pub snippet_steps: usize,
    /// Balanced batches (one snippet per composer each) per step.
    pub batches_per_step: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Each snippet is transposed by a random number of semitones in +-this (0 = off).
    pub transpose: u8,
    /// Each note of each snippet is left out with this probability (0 = off): the input
    /// changes from one epoch to the next, so exact note sets are harder to memorise.
    #[serde(default)]
    pub note_dropout: f64,
    /// Draw each composer's pieces equally often (default: every snippet start equally, so
    /// long pieces give more snippets).
    #[serde(default)]
    pub by_piece: bool,
    /// Share of each composer's pieces held out for validation (the LSTM-VAE's split when the
    /// seed and share are the same).
    pub valid_fraction: f64,
    /// For cross-validation: hold out one fold of the pieces instead of `valid_fraction` of
    /// them (none in runs from before it, and not written then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<crate::dataset::Fold>,
    /// Validation snippets per composer.
    pub valid_per_composer: usize,
    /// Validate every this many steps.
    pub eval_every: usize,
    /// Checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many seconds of training, if set.
    pub max_seconds: Option<f64>,
}

/// The training and held-out pieces of a run: `fold` of a cross-validation if set, else
/// `valid_fraction` of each composer's pieces; drawn from `seed` either way.
pub fn run_split(
    corpus: &Corpus,
    valid_fraction: f64,
    fold: Option<crate::dataset::Fold>,
    seed: u64,
) -> crate::dataset::Split {
    match fold {
        Some(f) => corpus.fold_split(f, seed),
        None => corpus.split(valid_fraction, seed),
    }
}

/// Refuses a number that is not finite or not above `min` (`strict`) / at least `min`.
pub fn check_number(what: &str, v: f64, min: f64, strict: bool) -> Result<()> {
    let ok = v.is_finite() && if strict { v > min } else { v >= min };
    if !ok {
        let bound = if strict { "above" } else { "at least" };
        return Err(Error::InvalidArgument(format!(
            "the {what} must be a number {bound} {min}, not {v}"
        )));
    }
    Ok(())
}

/// Refuses a count below 1.
pub fn check_count(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidArgument(format!(
            "the {what} must be at least 1"
        )));
    }
    Ok(())
}

/// The longest training snippet, steps (256 bars of 4/4): a longer one asks for more memory
/// than a batch of it is worth, and is refused with a message, not an allocation failure.
pub const MAX_SNIPPET_STEPS: usize = 4096;
/// The most batches one training step may add up.
pub const MAX_BATCHES_PER_STEP: usize = 1024;
/// The most steps a training run may take (at the CPU's 0.35 s a step, 40 days).
pub const MAX_TRAINING_STEPS: usize = 10_000_000;
/// The longest line of a metrics log read back (a step's is about 200 bytes).
const MAX_METRICS_LINE: u64 = 1 << 20;

/// The machine's physical memory in bytes, where the system says (Linux).
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses a run on the CPU that needs more memory than the machine has, with a message
/// rather than an allocation failure (or the system ending the process) at its first step.
/// `weights` are counted four times over (each, its gradient, and Adam's two moments, in
/// f32), and each of the step's `snippets` as `per_snippet` bytes: a lower bound measured on
/// this machine kind, so that no run that fits is refused. `smaller` says how to ask for less.
pub fn check_training_memory(
    device: &Device,
    weights: u128,
    snippets: usize,
    per_snippet: u64,
    smaller: &str,
) -> Result<()> {
    if !device.is_cpu() {
        return Ok(());
    }
    let Some(total) = physical_memory() else {
        return Ok(());
    };
    let needed = weights
        .saturating_mul(16)
        .saturating_add(u128::from(per_snippet).saturating_mul(snippets as u128));
    if needed > u128::from(total) {
        let gb = |bytes: u128| bytes as f64 / 1e9;
        let weights = match weights {
            w if w >= 1_000_000 => format!("{:.1} million", w as f64 / 1e6),
            w => w.to_string(),
        };
        return Err(Error::InvalidArgument(format!(
            "this run needs at least {:.1} GB of memory ({weights} weights with their gradients \
             and optimiser state, and {snippets} snippets a step), more than this machine's \
             {:.1} GB: {smaller}",
            gb(needed),
            gb(u128::from(total))
        )));
    }
    Ok(())
}

/// Refuses a count above `most` (a size no machine trains: a message, not an abort when the
/// memory runs out).
pub fn check_at_most(what: &str, n: usize, most: usize) -> Result<()> {
    if n > most {
        return Err(Error::InvalidArgument(format!(
            "the {what} is at most {most}, not {n}"
        )));
    }
    Ok(())
}

impl LoopOptions {
    /// Refuses options no run can use (checked before the corpus is loaded, and again by
    /// [`run`]).
    pub fn check(&self) -> Result<()> {
        check_count("number of steps", self.steps)?;
        check_at_most("number of steps", self.steps, MAX_TRAINING_STEPS)?;
        check_count("snippet length", self.snippet_steps)?;
        check_at_most("snippet length", self.snippet_steps, MAX_SNIPPET_STEPS)?;
        check_count("number of batches per step", self.batches_per_step)?;
        check_at_most(
            "number of batches per step",
            self.batches_per_step,
            MAX_BATCHES_PER_STEP,
        )?;
        check_count("validation interval", self.eval_every)?;
        check_count("checkpoint interval", self.checkpoint_every)?;
        check_number("learning rate", self.learning_rate, 0.0, true)?;
        check_number("gradient clip", self.grad_clip, 0.0, true)?;
        check_transpose(self.transpose)?;
        check_probability("note dropout", self.note_dropout)?;
        check_probability("validation share", self.valid_fraction)?;
        if let Some(limit) = self.max_seconds {
            check_number("time limit", limit, 0.0, true)?;
        }
        Ok(())
    }

    /// Defaults for `steps` steps on `snippet_steps`-long snippets.
    pub fn new(steps: usize, snippet_steps: usize) -> Self {
        LoopOptions {
            steps,
            snippet_steps,
            batches_per_step: 1,
            seed: 1,
            learning_rate: 3e-4,
            grad_clip: 5.0,
            transpose: 0,
            note_dropout: 0.0,
            by_piece: false,
            valid_fraction: 0.1,
            fold: None,
            valid_per_composer: 8,
            eval_every: 250,
            checkpoint_every: 250,
            max_seconds: None,
        }
    }
}

/// One model's part of training.
pub trait Task {
    /// Model kind as written in the manifest ("classifier", ...).
    fn kind(&self) -> &'static str;
    /// The model's variables (everything saved in the model file).
    fn varmap(&self) -> &VarMap;
    /// The optimisers (their state is checkpointed).
    fn optimizers(&mut self) -> Vec<&mut Adam>;
    /// The model's sizes, for the manifest.
    fn config(&self) -> serde_json::Value;
    /// One optimiser step on a batch `x` `[B, T, 128]` with composer `labels` `[B]`, whose
    /// steps fall in their bars as `bars` says (for models told the metre).
    fn train_step(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        bars: &WindowBars,
        step: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Scalars>;
    /// Figures on a chunk of held-out snippets (at most 20), summed by the caller: return
    /// per-chunk sums and a count under the key "n" to average by.
    fn validate_chunk(&mut self, chunk: &Chunk) -> Result<Scalars>;
    /// Bytes a training step needs for each snippet of `steps` steps, at the least (the
    /// activations kept for the backward pass; see [`check_training_memory`]).
    fn memory_per_snippet(&self, steps: usize) -> u64;
    /// Per-composer latent statistics (latent-variable models), from training snippets.
    fn latents(&mut self, _snippets: &[Chunk], _composers: usize) -> Result<Vec<LatentStats>> {
        Ok(Vec::new())
    }
}

/// Snippets judged together: the rolls `[B, T, 128]`, their composers, and where each of
/// their steps falls in its bar.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The rolls, `[B, T, 128]` (1.0 where a note sounds).
    pub x: Tensor,
    /// Each snippet's composer index.
    pub labels: Vec<usize>,
    /// Where each step of each snippet falls in its bar.
    pub bars: WindowBars,
}

/// Where each step of `snippets` of `steps` steps falls in its bar, from its piece's metre map.
pub fn window_bars(corpus: &Corpus, snippets: &[SnippetRef], steps: usize) -> WindowBars {
    WindowBars::new(steps, corpus.snippet_metres(snippets))
}

/// One line of the metrics log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopMetrics {
    /// Steps done.
    pub step: usize,
    /// Training figures of this step.
    pub train: Scalars,
    /// Validation figures, on steps that validated.
    pub valid: Option<Scalars>,
    /// Wall-clock seconds of training so far.
    pub seconds: f64,
}

/// What the loop reports while it runs.
#[derive(Debug, Clone)]
pub enum LoopEvent {
    /// Training began (or resumed) at `step` of `total`.
    Started {
        /// Optimiser steps already done (0 on a fresh start).
        step: usize,
        /// Optimiser steps in all.
        total: usize,
        /// The model's parameter count.
        parameters: usize,
        /// Pieces it trains on.
        pieces: usize,
        /// Pieces held out for validation.
        held_out: usize,
    },
    /// One step's figures.
    Metrics(LoopMetrics),
    /// A checkpoint was written.
    Checkpoint {
        /// Optimiser steps done.
        step: usize,
        /// The model file written.
        path: PathBuf,
    },
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    /// Steps done.
    pub steps: usize,
    /// The model file.
    pub model_path: PathBuf,
    /// Whether it stopped before `steps` (Ctrl-C, stop button, time limit).
    pub stopped_early: bool,
    /// The last validation figures.
    pub validation: Option<Scalars>,
}

/// The format of the checkpoints' state files (`train-state.json`) this version writes and
/// resumes: a newer Segue's, which may mean other things by the same fields, is refused rather
/// than resumed wrongly.
pub(crate) const STATE_FORMAT: u32 = 1;

/// The format of a state file written before formats were numbered.
pub(crate) fn first_state_format() -> u32 {
    1
}

/// Reads a checkpoint's state file as `T`, refusing one of a newer format than
/// [`STATE_FORMAT`] first (its fields may not read here, or read as other things).
pub(crate) fn read_state_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let value: serde_json::Value = weights::read_manifest(path)?;
    check_state_format(path, &value)?;
    serde_json::from_value(value)
        .map_err(|e| Error::format(path, weights::manifest_problem("bad state file", &e)))
}

/// Refuses the `value` of a checkpoint's `state` file of a newer format than [`STATE_FORMAT`]
/// (or a format that is not a number); one without a format is of the first.
pub(crate) fn check_state_format(state: &Path, value: &serde_json::Value) -> Result<()> {
    let format = value
        .get("format")
        .map_or(Some(1), serde_json::Value::as_u64);
    if format.is_some_and(|f| f <= u64::from(STATE_FORMAT)) {
        return Ok(());
    }
    let format = value.get("format").map_or(String::new(), |f| f.to_string());
    Err(Error::format(
        state,
        format!(
            "a checkpoint of a newer Segue (state format {format}; this one resumes format \
             {STATE_FORMAT}): resume it with that version, or train afresh in another folder"
        ),
    ))
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LoopState {
    #[serde(default = "first_state_format")]
    format: u32,
    kind: String,
    config: serde_json::Value,
    options: LoopOptions,
    step: usize,
    seconds: f64,
    corpus_hash: String,
}

/// The options the run in `out` trains its `kind` model with, as its last checkpoint recorded
/// them (`None` without a readable one): a resumed run starts from these, so a flag not given
/// again keeps the run's own value rather than the default's.
pub fn checkpoint_options<O: serde::de::DeserializeOwned>(out: &Path, kind: &str) -> Option<O> {
    let manifest: serde_json::Value =
        weights::read_manifest(&weights::manifest_path(&model_file(out, kind))).ok()?;
    serde_json::from_value(manifest.get("training")?.clone()).ok()
}

/// The model file a training folder holds for `kind`.
pub fn model_file(out: &Path, kind: &str) -> PathBuf {
    out.join(format!("{kind}.safetensors"))
}

fn state_file(out: &Path) -> PathBuf {
    out.join("train-state.safetensors")
}

/// The manifest of the checkpoint in `out`.
fn read_state(out: &Path) -> Result<LoopState> {
    read_state_file(&weights::manifest_path(&state_file(out)))
}

/// Refuses a checkpoint's training time that is no time (negative, or not a number: a state
/// file edited or damaged), which would move the run's `--minutes` limit and its log's clock.
pub(crate) fn check_progress(state: &Path, step: usize, seconds: f64) -> Result<()> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(Error::format(
            state,
            format!("a training time of {seconds} s is no time (was the file edited?)"),
        ));
    }
    // A resumed run replays its batches' draws up to `step`: a step no run reaches would
    // keep it drawing for hours before a word.
    if step > MAX_TRAINING_STEPS {
        return Err(Error::format(
            state,
            format!(
                "step {step} is past the most a run takes ({MAX_TRAINING_STEPS}; was the file \
                 edited?)"
            ),
        ));
    }
    Ok(())
}

/// The widest random transposition training accepts, semitones (two octaves).
pub const MAX_TRANSPOSE: u8 = 24;

/// Refuses a random transposition wider than [`MAX_TRANSPOSE`] (every trainer checks with this).
pub fn check_transpose(max: u8) -> Result<()> {
    if max > MAX_TRANSPOSE {
        return Err(Error::InvalidArgument(format!(
            "transposition by up to {max} semitones is too far (at most {MAX_TRANSPOSE})"
        )));
    }
    Ok(())
}

/// Refuses a dropout rate outside [0, 1) (NaN included), naming what it is the rate of.
pub fn check_probability(what: &str, p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidArgument(format!(
            "the {what} must be a probability in [0, 1), not {p}"
        )));
    }
    Ok(())
}

/// Transposes each item of a batch by a random number of semitones in `+-max` (notes pushed
/// off the keyboard are dropped).
pub fn transpose_batch(batch: &mut Batch, max: u8, rng: &mut impl Rng) {
    if max == 0 {
        return;
    }
    let block = batch.steps * PITCHES;
    let max = max as i32;
    for item in batch.data.chunks_mut(block) {
        let shift = rng.random_range(-max..=max);
        if shift == 0 {
            continue;
        }
        for row in item.chunks_mut(PITCHES) {
            if shift > 0 {
                let s = (shift as usize).min(PITCHES);
                row.copy_within(0..PITCHES - s, s);
                row[..s].fill(0.0);
            } else {
                let s = ((-shift) as usize).min(PITCHES);
                row.copy_within(s.., 0);
                row[PITCHES - s..].fill(0.0);
            }
        }
    }
}

/// Leaves out each note (a run of sounding steps of one pitch) of each batch item with
/// probability `p`, whole (`p` is clamped to [0, 1]; NaN leaves the batch as it is).
pub fn drop_notes_batch(batch: &mut Batch, p: f64, rng: &mut impl Rng) {
    if p.is_nan() || p <= 0.0 {
        return;
    }
    let p = p.min(1.0);
    let steps = batch.steps;
    for item in batch.data.chunks_mut(steps * PITCHES) {
        for pitch in 0..PITCHES {
            let (mut was_on, mut dropping) = (false, false);
            for t in 0..steps {
                let cell = t * PITCHES + pitch;
                let on = item[cell] != 0.0;
                if on && !was_on {
                    dropping = rng.random_bool(p);
                }
                if on && dropping {
                    item[cell] = 0.0;
                }
                was_on = on;
            }
        }
    }
}

/// The sizes in which a checkpoint's model differs from the one asked for, named: " (metre_map:
/// the checkpoint's true, this run's absent)"; empty when neither is a JSON object.
fn config_differences(was: &serde_json::Value, now: &serde_json::Value) -> String {
    let (Some(was), Some(now)) = (was.as_object(), now.as_object()) else {
        return String::new();
    };
    let shown = |v: Option<&serde_json::Value>| v.map_or("absent".to_string(), |v| v.to_string());
    let keys: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| was.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k}: the checkpoint's {}, this run's {}",
                shown(was.get(k)),
                shown(now.get(k))
            )
        })
        .collect();
    if differ.is_empty() {
        String::new()
    } else {
        format!(" ({})", differ.join("; "))
    }
}

/// Per-chunk validation sums averaged by their "n".
fn average(sums: Scalars) -> Scalars {
    let n = sums.get("n").copied().unwrap_or(1.0).max(1.0);
    sums.into_iter()
        .filter(|(k, _)| k != "n")
        .map(|(k, v)| (k, v / n))
        .collect()
}

struct Runner<'a> {
    corpus: &'a Corpus,
    opts: &'a LoopOptions,
    device: Device,
    train_pieces: Vec<usize>,
    valid: Vec<(SnippetRef, usize)>,
}

impl Runner<'_> {
    fn corpus_info(&self) -> CorpusInfo {
        CorpusInfo::of(self.corpus, self.train_pieces.len())
    }

    fn chunks(&self, snippets: &[(SnippetRef, usize)]) -> Result<Vec<Chunk>> {
        let steps = self.opts.snippet_steps;
        snippets
            .chunks(20)
            .map(|chunk| {
                let refs: Vec<SnippetRef> = chunk.iter().map(|(s, _)| *s).collect();
                let x = snippet_tensor(self.corpus, &refs, steps, &self.device)?;
                Ok(Chunk {
                    x,
                    labels: chunk.iter().map(|(_, c)| *c).collect(),
                    bars: window_bars(self.corpus, &refs, steps),
                })
            })
            .collect()
    }

    fn validate(&self, task: &mut dyn Task) -> Result<Scalars> {
        let mut sums = Scalars::new();
        for chunk in self.chunks(&self.valid)? {
            for (k, v) in task.validate_chunk(&chunk)? {
                *sums.entry(k).or_default() += v;
            }
        }
        Ok(average(sums))
    }

    fn checkpoint(
        &self,
        task: &mut dyn Task,
        training: &serde_json::Value,
        out: &Path,
        step: usize,
        seconds: f64,
        last: Option<&Scalars>,
    ) -> Result<PathBuf> {
        let snippets =
            evaluation_snippets(self.corpus, &self.train_pieces, self.opts.snippet_steps, 8);
        let chunks = self.chunks(&snippets)?;
        let mut manifest = ModelManifest::new(
            task.kind(),
            task.config(),
            self.corpus_info(),
            trained::Rights::of_corpus(self.corpus),
        );
        manifest.composers = self.corpus.composers.clone();
        manifest.latents = task.latents(&chunks, self.corpus.composers.len())?;
        manifest.steps = step;
        manifest.seconds = seconds;
        manifest.training = training.clone();
        manifest.metrics = serde_json::to_value(last).unwrap_or_default();
        // The four files are one checkpoint: written beside the previous one, then moved into
        // place together (see fsutil::commit_set).
        let stage = fsutil::begin_set(out)?;
        saved::save(
            &model_file(&stage, task.kind()),
            &trained::named_tensors(task.varmap()),
            &manifest,
        )?;
        let state: Vec<(String, Tensor)> =
            task.optimizers().iter().flat_map(|a| a.state()).collect();
        weights::save_at_step(
            &state_file(&stage),
            &state,
            candle_core::DType::F32,
            Some(step),
        )?;
        let info = LoopState {
            format: STATE_FORMAT,
            kind: task.kind().into(),
            config: task.config(),
            options: self.opts.clone(),
            step,
            seconds,
            corpus_hash: self.corpus.content_hash(),
        };
        weights::write_manifest(&weights::manifest_path(&state_file(&stage)), &info)?;
        fsutil::commit_set(out)?;
        Ok(model_file(out, task.kind()))
    }

    fn restore(&self, task: &mut dyn Task, out: &Path) -> Result<(usize, f64)> {
        let info = read_state(out)?;
        check_progress(
            &weights::manifest_path(&state_file(out)),
            info.step,
            info.seconds,
        )?;
        // Another corpus is said before the sizes it changes (the classifier's classes).
        if info.kind == task.kind() {
            check_same_corpus(out, &info.corpus_hash, self.corpus)?;
        }
        if info.kind != task.kind() || info.config != task.config() {
            return Err(Error::InvalidArgument(format!(
                "{}: the checkpoint is of a {} model {}, not {} {}{}",
                crate::fsutil::shown(out),
                info.kind,
                info.config,
                task.kind(),
                task.config(),
                config_differences(&info.config, &task.config())
            )));
        }
        let (was, now) = (&info.options, &self.opts);
        check_same_data(
            out,
            &[
                option("--seed", was.seed, now.seed),
                option("--snippet-steps", was.snippet_steps, now.snippet_steps),
                option("--batches", was.batches_per_step, now.batches_per_step),
                option("--by-piece", was.by_piece, now.by_piece),
                option("--transpose", was.transpose, now.transpose),
                option("--note-dropout", was.note_dropout, now.note_dropout),
                option("valid_fraction", was.valid_fraction, now.valid_fraction),
                option("--fold", fold_name(was.fold), fold_name(now.fold)),
                option(
                    "valid_per_composer",
                    was.valid_per_composer,
                    now.valid_per_composer,
                ),
            ],
        )?;
        let path = model_file(out, task.kind());
        weights::check_checkpoint(out, &path, &state_file(out), info.step)?;
        let expected: Vec<weights::Expected> = trained::named_tensors(task.varmap())
            .into_iter()
            .map(|(name, t)| weights::Expected {
                name,
                dims: t.dims().to_vec(),
            })
            .collect();
        let tensors = weights::load(&path, &expected, &self.device)?;
        {
            let data = task.varmap().data().lock().expect("varmap lock poisoned");
            for (name, var) in data.iter() {
                if let Some(t) = tensors.get(name) {
                    var.set(t).map_err(candle)?;
                }
            }
        }
        let mut opt_expected = Vec::new();
        for adam in task.optimizers() {
            opt_expected.extend(adam.expected_state());
        }
        let state = weights::load(&state_file(out), &opt_expected, &self.device)?;
        for adam in task.optimizers() {
            adam.restore(&state, info.step)?;
        }
        Ok((info.step, info.seconds))
    }
}

/// One option for [`check_same_data`]: its name, the checkpoint's value and the value now.
pub(crate) fn option<T: std::fmt::Display>(
    name: &'static str,
    was: T,
    now: T,
) -> (&'static str, String, String) {
    (name, was.to_string(), now.to_string())
}

/// Refuses to resume the run in `out` on another corpus than its checkpoint's (`hash`).
pub(crate) fn check_same_corpus(out: &Path, hash: &str, corpus: &Corpus) -> Result<()> {
    if hash != corpus.content_hash() {
        return Err(Error::InvalidArgument(format!(
            "{}: the checkpoint was trained on another corpus than {} (its content hash \
             differs: other files, or files changed since); continue it on the folder it \
             trained on",
            crate::fsutil::shown(out),
            crate::fsutil::shown(&corpus.root)
        )));
    }
    Ok(())
}

fn fold_name(fold: Option<crate::dataset::Fold>) -> String {
    fold.map_or_else(|| "none".into(), |f| f.to_string())
}

/// Refuses to resume the run in `out` when an option that decides the split or the batches
/// differs from the checkpoint's: `(name, at the checkpoint, now)`. The run's loss curve would
/// no longer be one run's, and held-out figures could include trained pieces.
pub(crate) fn check_same_data(
    out: &Path,
    options: &[(&'static str, String, String)],
) -> Result<()> {
    let changed: Vec<String> = options
        .iter()
        .filter(|(_, was, now)| was != now)
        .map(|(name, was, now)| format!("{name} {now} (the checkpoint's is {was})"))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{}: cannot resume with {}: these decide the held-out pieces and the batches; resume \
         with the checkpoint's values",
        crate::fsutil::shown(out),
        changed.join(", ")
    )))
}

/// Keeps only the lines of a metrics log up to `step` (after a resume); any JSON object with a
/// `step` field counts as a line. The log is read a line at a time into its replacement (a
/// month's run writes hundreds of megabytes of it); a line longer than any the log holds
/// ([`MAX_METRICS_LINE`]) is damage, and left out.
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    use std::io::{BufRead, Read};
    if !path.exists() {
        return Ok(());
    }
    fsutil::check_is_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "reading", e))?;
    let mut log = std::io::BufReader::new(file);
    let mut line = Vec::new();
    fsutil::write_atomic_with(path, |out| {
        loop {
            line.clear();
            let read = (&mut log)
                .take(MAX_METRICS_LINE)
                .read_until(b'\n', &mut line)?;
            if read == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && read as u64 == MAX_METRICS_LINE {
                // Overlong: the rest of it is passed over, a bounded piece at a time.
                loop {
                    line.clear();
                    let read = (&mut log)
                        .take(MAX_METRICS_LINE)
                        .read_until(b'\n', &mut line)?;
                    if read == 0 || line.last() == Some(&b'\n') {
                        break;
                    }
                }
                continue;
            }
            let kept = serde_json::from_slice::<serde_json::Value>(line.trim_ascii())
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step);
            if kept {
                out.write_all(line.trim_ascii_end())?;
                out.write_all(b"\n")?;
            }
        }
    })
}

/// The error of a run whose figures (`figures`) stopped being finite numbers at `step`:
/// nothing more is written, the checkpoint of `kept` stays.
pub(crate) fn diverged(step: usize, figures: &str, kept: usize) -> Error {
    let kept = if kept == 0 {
        "no checkpoint was written".to_string()
    } else {
        format!("the checkpoint of step {kept} stays")
    };
    Error::InvalidArgument(format!(
        "training diverged at step {step}: its figures are not finite numbers ({figures}); \
         {kept} (a lower --lr may help)"
    ))
}

/// Checks the run folder `out` of a `kind` model before any work (see
/// [`crate::train::check_out_folder`]). Nothing is left changed (a trial folder made where the
/// run folder would go is removed at once): another run may be
/// training there (the trainer itself refuses that, see [`lock_run_folder`]).
pub fn check_out_folder(out: &Path, kind: &str, resume: bool) -> Result<()> {
    check_not_in_use(out)?;
    check_run_folder(out, &model_file(out, kind), &state_file(out), resume)
}

/// Refuses a folder another run is training in now (a look only: the run takes the lock).
pub fn check_not_in_use(out: &Path) -> Result<()> {
    if run_folder_in_use(out) {
        return Err(Error::RunInUse {
            path: out.to_path_buf(),
        });
    }
    Ok(())
}

/// A run folder must hold a checkpoint to resume, and must not hold a run (or a model) to
/// start afresh: a forgotten `--resume` would otherwise overwrite hours of training, and a
/// mistyped folder would silently start over. A checkpoint written whole but interrupted
/// while moving into place counts (the run's own [`open_run_folder`] finishes it). Leaves
/// nothing changed (where the folder is still to be made, a trial folder beside it is made and
/// removed at once, to know it can be).
pub(crate) fn check_run_folder(out: &Path, model: &Path, state: &Path, resume: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is a file: --out names the folder a run writes into",
            crate::fsutil::shown(out)
        )));
    }
    // The folder is made once the corpus has loaded: one that cannot be is said before (a
    // folder made and removed at once where it would go tells).
    if !out.exists()
        && let Some(parent) = (out.ancestors().skip(1))
            .map(|a| {
                if a.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    a
                }
            })
            .find(|a| a.exists())
    {
        if !parent.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: {} is a file, so the run folder cannot be made there",
                crate::fsutil::shown(out),
                crate::fsutil::shown(parent)
            )));
        }
        tempfile::Builder::new()
            .prefix(".segue-")
            .tempdir_in(parent)
            .map_err(|e| {
                // Its kind, not its text: that names the trial folder.
                let e = std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot make a folder in {}: {}",
                        crate::fsutil::shown(parent),
                        e.kind()
                    ),
                );
                Error::io(out, "making the run folder", e)
            })?;
    }
    // A folder holding another model's run: said as such (its checkpoint would be read as
    // this model's and refused for a missing option or config).
    let kind_of = |model: &Path| {
        let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned());
        stem.unwrap_or_default()
    };
    if out.is_dir()
        && state.exists()
        && !model.exists()
        // The run its state belongs to: the newest model written there.
        && let Some((other, _)) = run_model(out)
    {
        let other = other.name();
        return Err(Error::InvalidArgument(format!(
            "{} holds a run of the {other} (continued with `segue train {other} --resume --out \
             {}`): train the {} into another folder",
            crate::fsutil::shown(out),
            crate::fsutil::shown(out),
            kind_of(model),
        )));
    }
    let pending = fsutil::set_pending(out);
    if resume && !state.exists() && !pending {
        return Err(Error::InvalidArgument(format!(
            "{}: nothing to resume ({} is missing); train without --resume to start a run",
            crate::fsutil::shown(out),
            state.file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    if !resume && (state.exists() || model.exists() || pending) {
        return Err(Error::InvalidArgument(format!(
            "{} already holds a run; continue it with --resume, or train into another folder",
            crate::fsutil::shown(out)
        )));
    }
    Ok(())
}

/// Refuses to resume a run already at (or past) the steps asked for: it would end at once,
/// as if it had trained.
pub(crate) fn check_steps_left(out: &Path, done: usize, steps: usize) -> Result<()> {
    if done > 0 && done >= steps {
        return Err(Error::InvalidArgument(format!(
            "{}: the run is already at step {done}; ask for more steps (--steps above {done}) \
             to train it on",
            crate::fsutil::shown(out)
        )));
    }
    Ok(())
}

/// Whether `dir` holds the files of a training run besides its model: a metrics log or a
/// training state (the weights folder, say, holds models alone).
pub fn has_run_files(dir: &Path) -> bool {
    [
        "metrics.jsonl",
        "train-state.json",
        "train-state.safetensors",
    ]
    .iter()
    .any(|f| dir.join(f).is_file())
}

/// The model file a training run in `dir` has written, and its kind: of whichever model it
/// trains, the newest, should an earlier run of another model have left its own there.
pub fn run_model(dir: &Path) -> Option<(ModelKind, PathBuf)> {
    (ModelKind::ALL.into_iter())
        .filter_map(|kind| {
            let file = model_file(dir, kind.name());
            let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok()?;
            Some((modified, kind, file))
        })
        .max_by_key(|(modified, ..)| *modified)
        .map(|(_, kind, file)| (kind, file))
}

/// The models a run folder may hold a run of, as `segue train` names them (each run's model
/// file is `KIND.safetensors`).
pub const RUN_KINDS: [&str; 4] = [
    ModelKind::ALL[0].name(),
    ModelKind::ALL[1].name(),
    ModelKind::ALL[2].name(),
    ModelKind::ALL[3].name(),
];

/// Purposes of the per-step generators ([`step_rng`]).
pub(crate) const STEP_DRAWS: u64 = 0x9E37_79B9_7F4A_7C15;

/// The generator of one purpose at one training step of a run (a resumed run draws what an
/// uninterrupted one would). It is keyed by `seed * purpose ^ step`, as runs have always
/// been, so their curves and checkpoints stay valid; for seed 0 and seeds with 32 or more
/// trailing zero bits (2^63, say), where that product would give purposes one stream (every
/// purpose is odd), (seed, purpose, step) is the generator's whole 32-byte key (a checkpoint
/// made with such a seed before this keying resumes on other draws).
pub(crate) fn step_rng(seed: u64, purpose: u64, step: usize) -> ChaCha8Rng {
    if seed.trailing_zeros() < 32 {
        return ChaCha8Rng::seed_from_u64(seed.wrapping_mul(purpose) ^ step as u64);
    }
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&purpose.to_le_bytes());
    key[16..24].copy_from_slice(&(step as u64).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Seconds of training: those of earlier sessions of the run, plus this one's, less the time
/// it spent paused (the figure in the metrics and manifests, and what `--minutes` limits).
pub(crate) struct TrainingClock {
    before: f64,
    started: Instant,
    paused: std::time::Duration,
}

impl TrainingClock {
    /// A clock that has already counted `before` seconds.
    pub(crate) fn new(before: f64) -> Self {
        TrainingClock {
            before,
            started: Instant::now(),
            paused: std::time::Duration::ZERO,
        }
    }

    /// Seconds of training so far.
    pub(crate) fn seconds(&self) -> f64 {
        self.before
            + self
                .started
                .elapsed()
                .saturating_sub(self.paused)
                .as_secs_f64()
    }

    /// Waits while `control` is paused (and not stopped), not counting the wait.
    pub(crate) fn wait_while_paused(&mut self, control: &Control) {
        let from = Instant::now();
        while control.pause.load(Ordering::Relaxed) && !control.stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.paused += from.elapsed();
    }
}

/// The file in a run folder that the run training in it holds locked.
pub const LOCK_FILE: &str = "run.lock";

/// A run folder's lock, held while one run trains in it; dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// Locks the run folder `out` (which must exist) for one training run. A second run on it,
/// a `--resume` in another terminal or the studio's Continue while the first still trains, is
/// refused with [`Error::RunInUse`] before it touches anything, instead of both writing the
/// checkpoints and the log. The lock is the operating system's on [`LOCK_FILE`] (`flock` on
/// Unix, `LockFileEx` on Windows), so a run that crashed or was killed leaves none behind;
/// where the file system cannot lock files (some network file systems), runs go unlocked.
pub fn lock_run_folder(out: &Path) -> Result<RunLock> {
    let path = out.join(LOCK_FILE);
    // A look at the folder (run_folder_in_use) holds the lock for a moment: a few tries
    // over 200 ms tell it from a run.
    for attempt in 0..10 {
        match fsutil::try_lock_file(&path)? {
            // The file may have been removed (a run stopped before its first step discards
            // its folder) between the opening and the lock: then lock the one there now.
            fsutil::FileLock::Held(file) if same_file(&file, &path) => {
                return Ok(RunLock { _file: file });
            }
            fsutil::FileLock::Held(_) => continue,
            fsutil::FileLock::Busy if attempt < 9 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            fsutil::FileLock::Busy => break,
            // No locks here (ENOLCK, unsupported): unlocked, as before locks.
            fsutil::FileLock::Unsupported(file) => return Ok(RunLock { _file: file }),
        }
    }
    Err(Error::RunInUse {
        path: out.to_path_buf(),
    })
}

/// Whether the open `file` is still the one at `path` (not removed or replaced since).
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the open `file` is still the one at `path` (elsewhere a file held open cannot be
/// removed, so it is).
#[cfg(not(unix))]
fn same_file(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Whether a run is training in the folder `out` now (holds its lock). A folder without a
/// lock file has none; the lock taken to look is released at once.
pub fn run_folder_in_use(out: &Path) -> bool {
    let Ok(file) = std::fs::File::open(out.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Opens the run folder `out` for a run of the model in `model` with its state in `state`:
/// checked (see [`check_run_folder`]), created if missing, locked for this run (see
/// [`lock_run_folder`]), then a checkpoint interrupted while being written is finished or
/// cleared and the folder checked again. Nothing in a folder another run holds is touched.
/// Returns the lock, to hold until the run ends, and whether the folder was created.
pub(crate) fn open_run_folder(
    out: &Path,
    model: &Path,
    state: &Path,
    resume: bool,
) -> Result<(RunLock, bool)> {
    // A run refused at once creates nothing.
    check_run_folder(out, model, state, resume)?;
    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, "creating", e))?;
    let lock = lock_run_folder(out)?;
    fsutil::recover_set(out)?;
    check_run_folder(out, model, state, resume)?;
    Ok((lock, created))
}

/// Removes what a run stopped before its first step made: its empty metrics log, and its
/// folder with its lock file if the run `created` it and nothing else is there (the lock file
/// is removed while still held, so no other run can hold a lock on a removed file meanwhile).
pub(crate) fn discard_empty_run(out: &Path, metrics: &Path, created: bool, lock: RunLock) {
    if std::fs::metadata(metrics).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(metrics);
    }
    if created {
        let _ = std::fs::remove_file(out.join(LOCK_FILE));
    }
    drop(lock);
    if created {
        let _ = std::fs::remove_dir(out); // only if empty
    }
}

/// Opens a run's metrics log for appending after `step` optimiser steps: a resumed run keeps
/// only the lines up to its checkpoint, a fresh run (`step` 0) starts an empty log, setting
/// an earlier run's aside (`metrics.earlier.jsonl`, ...: a run stopped before its first
/// checkpoint, or one of another model in the folder), never deleting it.
pub(crate) fn open_metrics_log(path: &Path, step: usize) -> Result<std::fs::File> {
    fsutil::check_not_link(path)?;
    if step > 0 {
        truncate_metrics(path, step)?;
    } else if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        let aside = fsutil::free_name(path, "earlier").ok_or_else(|| {
            Error::io(
                path,
                "setting aside",
                std::io::Error::other("no free name beside it"),
            )
        })?;
        std::fs::rename(path, &aside).map_err(|e| Error::io(path, "setting aside", e))?;
    } else if path.exists() {
        std::fs::remove_file(path).map_err(|e| Error::io(path, "removing", e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, "opening", e))
}

/// A model's trainer on this loop (the classifier's, the Transformer VAE's, the DCGAN's):
/// corpus, the model's options, run folder, device, resume, control, events.
pub type TrainFn<O> = fn(
    &Corpus,
    &O,
    &Path,
    &Device,
    bool,
    &Control,
    &mut dyn FnMut(LoopEvent),
) -> Result<LoopOutcome>;

/// Trains `task` on `corpus` into `out`. With `resume`, continues from the checkpoint in
/// `out` (same kind, sizes and corpus). `training` is recorded in the manifest as the options.
#[allow(clippy::too_many_arguments)]
pub fn run(
    corpus: &Corpus,
    task: &mut dyn Task,
    opts: &LoopOptions,
    training: &serde_json::Value,
    out: &Path,
    device: &Device,
    resume: bool,
    control: &Control,
    on_event: &mut dyn FnMut(LoopEvent),
) -> Result<LoopOutcome> {
    opts.check()?;
    // A corpus with nothing to train on is refused before a run folder is made.
    let split = run_split(corpus, opts.valid_fraction, opts.fold, opts.seed);
    if let Some(fold) = opts.fold
        && split.valid.is_empty()
    {
        return Err(Error::InvalidArgument(format!(
            "fold {fold} holds none of the corpus's {} pieces (no composer has {} pieces)",
            corpus.pieces.len(),
            fold.of()
        )));
    }
    if split.train.is_empty() {
        return Err(Error::InvalidArgument(
            "no training pieces in the corpus".into(),
        ));
    }
    let weights: usize = (task.varmap().all_vars().iter())
        .map(|v| v.elem_count())
        .sum();
    check_training_memory(
        device,
        weights as u128,
        opts.batches_per_step.saturating_mul(corpus.composers.len()),
        task.memory_per_snippet(opts.snippet_steps),
        "train fewer batches a step (--batches), on shorter snippets (--snippet-steps), or a \
         smaller model",
    )?;
    // Held until the run ends: nothing in the folder is touched before it is ours.
    let (lock, created) =
        open_run_folder(out, &model_file(out, task.kind()), &state_file(out), resume)?;
    let runner = Runner {
        corpus,
        opts,
        device: device.clone(),
        valid: evaluation_snippets(
            corpus,
            &split.valid,
            opts.snippet_steps,
            opts.valid_per_composer,
        ),
        train_pieces: split.train,
    };
    let (mut step, seconds_before) = if resume {
        runner.restore(task, out)?
    } else {
        (0, 0.0)
    };
    check_steps_left(out, step, opts.steps)?;
    let metrics_file = out.join("metrics.jsonl");
    let mut log = open_metrics_log(&metrics_file, step)?;
    let mut sampler =
        BalancedSampler::new(corpus, &runner.train_pieces, opts.snippet_steps, opts.seed)?;
    if opts.by_piece {
        sampler = sampler.pieces_equally();
    }
    let per_step = opts.batches_per_step.max(1);
    sampler.skip(step * per_step);
    on_event(LoopEvent::Started {
        step,
        total: opts.steps,
        parameters: trained::named_tensors(task.varmap())
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum(),
        pieces: runner.train_pieces.len(),
        held_out: split.valid.len(),
    });
    let mut clock = TrainingClock::new(seconds_before);
    let mut last_valid = None;
    let mut last_checkpoint = step;
    let mut stopped_early = false;
    let mut path = model_file(out, task.kind());
    while step < opts.steps {
        clock.wait_while_paused(control);
        if control.stop.load(Ordering::Relaxed)
            || opts.max_seconds.is_some_and(|l| clock.seconds() >= l)
        {
            stopped_early = true;
            break;
        }
        let mut rng = step_rng(opts.seed, STEP_DRAWS, step);
        let mut data = Vec::new();
        let mut labels = Vec::new();
        let mut sources = Vec::new();
        for _ in 0..per_step {
            let mut batch = sampler.next_batch();
            transpose_batch(&mut batch, opts.transpose, &mut rng);
            drop_notes_batch(&mut batch, opts.note_dropout, &mut rng);
            data.extend_from_slice(&batch.data);
            labels.extend(batch.composers.iter().map(|&c| c as u32));
            sources.extend_from_slice(&batch.sources);
        }
        let x = Tensor::from_vec(data, (labels.len(), opts.snippet_steps, PITCHES), device)
            .map_err(candle)?;
        let labels = Tensor::new(labels.as_slice(), device).map_err(candle)?;
        let bars = window_bars(corpus, &sources, opts.snippet_steps);
        let train = task.train_step(&x, &labels, &bars, step, &mut rng)?;
        if train.values().any(|v| !v.is_finite()) {
            return Err(diverged(step + 1, &format!("{train:?}"), last_checkpoint));
        }
        step += 1;
        // Without held-out pieces there is nothing to validate on: no figures, not zeros.
        // A checkpoint is validated too, so the figures in its manifest are its own.
        let due = step.is_multiple_of(opts.eval_every)
            || step.is_multiple_of(opts.checkpoint_every)
            || step == opts.steps;
        let valid = if due && !runner.valid.is_empty() {
            let v = runner.validate(task)?;
            last_valid = Some((step, v.clone()));
            Some(v)
        } else {
            None
        };
        let m = LoopMetrics {
            step,
            train,
            valid,
            seconds: clock.seconds(),
        };
        writeln!(log, "{}", serde_json::to_string(&m).unwrap_or_default())
            .and_then(|_| log.flush())
            .map_err(|e| Error::io(&metrics_file, "writing", e))?;
        on_event(LoopEvent::Metrics(m));
        if let Some((at, v)) = &last_valid
            && *at == step
            && v.values().any(|x| !x.is_finite())
        {
            return Err(diverged(step, &format!("{v:?}"), last_checkpoint));
        }
        if step.is_multiple_of(opts.checkpoint_every) {
            path = runner.checkpoint(
                task,
                training,
                out,
                step,
                clock.seconds(),
                last_valid.as_ref().map(|(_, v)| v),
            )?;
            last_checkpoint = step;
            on_event(LoopEvent::Checkpoint {
                step,
                path: path.clone(),
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
    if last_checkpoint != step || !path.exists() {
        // Stopped between validations: the model written is validated as it is.
        if last_valid.as_ref().is_none_or(|(at, _)| *at != step) && !runner.valid.is_empty() {
            last_valid = Some((step, runner.validate(task)?));
        }
        path = runner.checkpoint(
            task,
            training,
            out,
            step,
            clock.seconds(),
            last_valid.as_ref().map(|(_, v)| v),
        )?;
        on_event(LoopEvent::Checkpoint {
            step,
            path: path.clone(),
        });
    }
    Ok(LoopOutcome {
        steps: step,
        model_path: path,
        stopped_early,
        validation: last_valid.map(|(_, v)| v),
    })
}

/// Draws every trainable weight from a generator seeded by `seed` (candle's initialisers use
/// an unseeded one): matrices and convolution kernels uniform in +-1/sqrt(fan-in), positional
/// embeddings normal(0, 0.02), biases zero; normalisation weights and statistics keep their
/// initial ones and zeros.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7EA5_0000);
    for name in names {
        let var = &data[name];
        let dims = var.dims();
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_norm = name
            .split('.')
            .any(|p| p.starts_with("norm") || p.starts_with("bn"));
        if is_norm || leaf.starts_with("running") {
            continue;
        }
        let n = var.elem_count();
        let values: Vec<f32> = if leaf == "bias" {
            vec![0.0; n]
        } else if name.contains("positions") {
            crate::models::standard_normal(&mut rng, n)
                .into_iter()
                .map(|v| v * 0.02)
                .collect()
        } else {
            let fan_in = match dims {
                [_, i] => *i,
                [_, i, k1, k2] => i * k1 * k2,
                _ => dims.last().copied().unwrap_or(1),
            };
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let t = Tensor::from_vec(values, var.shape(), var.device()).map_err(candle)?;
        var.set(&t).map_err(candle)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Sets the modification time of `file` to `secs` seconds ago.
    pub(crate) fn aged(file: &Path, secs: u64) {
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
        let f = std::fs::File::options().write(true).open(file).unwrap();
        f.set_modified(when).unwrap();
    }

    /// A folder whose checkpoint belongs to another model's run names that run, the newest
    /// model written there (it named the first kind found, whose --resume then failed on the
    /// other model's checkpoint).
    #[test]
    fn a_folder_of_another_run_names_its_newest_model() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for file in [
            "lstm-vae.safetensors",
            "dcgan.safetensors",
            "train-state.safetensors",
        ] {
            std::fs::write(out.join(file), "x").unwrap();
        }
        aged(&out.join("lstm-vae.safetensors"), 3600);
        aged(&out.join("dcgan.safetensors"), 60);
        let said = check_out_folder(out, "classifier", false)
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("holds a run of the dcgan (continued with `segue train dcgan"),
            "{said}"
        );
        aged(&out.join("lstm-vae.safetensors"), 10);
        let said = check_out_folder(out, "classifier", true)
            .unwrap_err()
            .to_string();
        assert!(said.contains("holds a run of the lstm-vae"), "{said}");
    }

    /// A resumed run's log keeps its lines up to the checkpoint's step, read a line at a time:
    /// damaged lines, an overlong one among them, are left out; the others are kept whole.
    #[test]
    fn a_resumed_log_keeps_its_lines_up_to_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("metrics.jsonl");
        let mut text = String::new();
        text += "{\"step\": 1, \"bce\": 0.5}\n";
        text += "not json\n";
        text += &format!("{{\"step\": 2, \"pad\": \"{}\"}}\n", "x".repeat(3 << 20));
        text += "{\"step\": 2, \"bce\": 0.4}\r\n";
        text += "{\"step\": 3, \"validation\": 0.45}\n";
        text += "{\"step\": 4, \"bce\": 0.3}\n";
        text += "{\"step\": 3}";
        std::fs::write(&log, text).unwrap();
        truncate_metrics(&log, 3).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"step\": 1, \"bce\": 0.5}\n{\"step\": 2, \"bce\": 0.4}\n\
             {\"step\": 3, \"validation\": 0.45}\n{\"step\": 3}\n"
        );
    }

    /// A fresh run in a folder with an earlier run's log sets that log aside, numbered, never
    /// deleting it; an empty one is simply replaced.
    #[test]
    fn a_fresh_run_sets_an_earlier_log_aside() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("metrics.jsonl");
        for (k, earlier) in ["{\"step\":1}\n", "{\"step\":2}\n"].iter().enumerate() {
            std::fs::write(&log, earlier).unwrap();
            let mut f = open_metrics_log(&log, 0).unwrap();
            writeln!(f, "new").unwrap();
            let aside = match k {
                0 => dir.path().join("metrics.earlier.jsonl"),
                _ => dir.path().join("metrics.earlier-2.jsonl"),
            };
            assert_eq!(std::fs::read_to_string(&aside).unwrap(), *earlier);
            assert_eq!(std::fs::read_to_string(&log).unwrap(), "new\n");
        }
        std::fs::write(&log, "").unwrap();
        drop(open_metrics_log(&log, 0).unwrap());
        assert!(!dir.path().join("metrics.earlier-3.jsonl").exists());
    }

    #[test]
    fn step_generators_differ_by_purpose_and_step_even_for_seed_0() {
        use rand::Rng;
        let first = |seed, purpose, step| step_rng(seed, purpose, step).random::<u64>();
        assert_ne!(first(0, 1, 5), first(0, 2, 5));
        assert_ne!(first(0, 1, 5), first(0, 1, 6));
        assert_ne!(first(0, 1, 5), first(1, 1, 5));
        assert_eq!(first(7, 1, 5), first(7, 1, 5));
        // Nor for a seed whose product with every (odd) purpose is the same: 2^63.
        let top = 1u64 << 63;
        assert_ne!(
            first(top, STEP_DRAWS, 5),
            first(top, 0x2545_F491_4F6C_DD1D, 5)
        );
        // Runs with other seeds draw what they always drew.
        let old = ChaCha8Rng::seed_from_u64(0x9E37_79B9_7F4A_7C15 ^ 12).random::<u64>();
        assert_eq!(first(1, STEP_DRAWS, 12), old);
    }

    #[test]
    fn paused_time_is_not_training_time() {
        let control = Control::default();
        control.pause.store(true, Ordering::Relaxed);
        let release = control.clone();
        // No margin of wall-clock time is assumed (a loaded machine stalls anywhere): the
        // training time is the time outside the pause, whatever both were.
        let outer = std::time::Instant::now();
        let mut clock = TrainingClock::new(10.0);
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            release.pause.store(false, Ordering::Relaxed);
        });
        clock.wait_while_paused(&control);
        t.join().unwrap();
        let s = clock.seconds();
        let (all, paused) = (outer.elapsed().as_secs_f64(), clock.paused.as_secs_f64());
        assert!(paused >= 0.2, "the pause was not waited: {paused}");
        assert!(
            s >= 10.0 && s <= 10.0 + all - paused + 1e-6,
            "{s} ({all} s, {paused} paused)"
        );
    }
    use rand::SeedableRng;

    fn one_note_batch(pitch: usize) -> Batch {
        let mut data = vec![0.0; 2 * PITCHES];
        data[pitch] = 1.0;
        data[PITCHES + pitch] = 1.0;
        Batch {
            steps: 2,
            data,
            composers: vec![0],
            sources: Vec::new(),
        }
    }

    #[test]
    fn note_dropout_leaves_out_whole_notes_and_nothing_at_zero() {
        // 20 items, each with two 3-step notes on pitch 60 (steps 0-2 and 4-6) and one on 64.
        let steps = 8;
        let mut data = vec![0.0; 20 * steps * PITCHES];
        for item in data.chunks_mut(steps * PITCHES) {
            for t in [0, 1, 2, 4, 5, 6] {
                item[t * PITCHES + 60] = 1.0;
            }
            for t in 2..7 {
                item[t * PITCHES + 64] = 1.0;
            }
        }
        let batch = Batch {
            steps,
            data,
            composers: vec![0; 20],
            sources: Vec::new(),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut same = batch.clone();
        drop_notes_batch(&mut same, 0.0, &mut rng);
        drop_notes_batch(&mut same, f64::NAN, &mut rng);
        assert_eq!(same.data, batch.data);
        let mut silent = batch.clone();
        drop_notes_batch(&mut silent, 2.0, &mut rng);
        assert!(silent.data.iter().all(|&c| c == 0.0), "past 1 is all");

        let mut dropped = batch.clone();
        drop_notes_batch(&mut dropped, 0.5, &mut rng);
        let (mut kept, mut left_out) = (0, 0);
        for item in dropped.data.chunks(steps * PITCHES) {
            for (pitch, note) in [(60, 0..3), (60, 4..7), (64, 2..7)] {
                let on: Vec<bool> = note.map(|t| item[t * PITCHES + pitch] > 0.0).collect();
                assert!(
                    on.iter().all(|&c| c == on[0]),
                    "a note is kept or left out whole"
                );
                if on[0] { kept += 1 } else { left_out += 1 }
            }
        }
        assert!(
            kept > 15 && left_out > 15,
            "kept {kept}, left out {left_out} of 60"
        );
        let stray = dropped
            .data
            .iter()
            .zip(&batch.data)
            .filter(|(d, b)| **d > **b)
            .count();
        assert_eq!(stray, 0, "no note is added");
    }

    #[test]
    fn transposition_moves_every_step_alike_and_drops_notes_off_the_keyboard() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut pitches = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let mut b = one_note_batch(60);
            transpose_batch(&mut b, 4, &mut rng);
            let on: Vec<usize> = (0..2 * PITCHES).filter(|&i| b.data[i] > 0.0).collect();
            assert_eq!(on.len(), 2);
            assert_eq!(on[1], on[0] + PITCHES, "both steps move alike");
            pitches.insert(on[0]);
        }
        // Every shift of up to 4 semitones either way is drawn, and none further.
        assert_eq!(pitches, (56..=64).collect(), "{pitches:?}");
        // Shifts past the keyboard's size leave silence rather than panic.
        let mut silent = 0;
        for _ in 0..20 {
            let mut b = one_note_batch(127);
            transpose_batch(&mut b, 255, &mut rng);
            let left = b.data.iter().filter(|v| **v > 0.0).count();
            assert!(left == 0 || left == 2, "{left}");
            silent += usize::from(left == 0);
        }
        assert!(silent > 0, "no shift left the keyboard");
    }

    #[test]
    fn transpositions_past_two_octaves_are_refused() {
        assert!(check_transpose(MAX_TRANSPOSE).is_ok());
        let err = check_transpose(MAX_TRANSPOSE + 1).unwrap_err().to_string();
        assert!(err.contains("at most 24"), "{err}");
    }
}
