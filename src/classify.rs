//! The composer classifier in use: training it (on the shared loop), loading it, ranking the
//! composers of a roll as a whole and window by window (the studio's style meter), and its
//! accuracy and confusion matrix on snippets of held-out pieces.

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Corpus, Fold, evaluation_snippets};
use crate::error::{Error, Result, candle};
use crate::meter::{StepMeter, WindowBars};
use crate::models::ModelKind;
use crate::models::classifier::{ComposerClassifier, Config, SPREAD_FLOOR, roll_statistics};
use crate::models::saved::{self, Saved};
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};
use crate::train_loop::{
    self, Chunk, Control, LoopEvent, LoopOptions, LoopOutcome, Scalars, Task, snippet_tensor,
};

/// Model kind in manifests and file names.
pub const KIND: &str = ModelKind::Classifier.name();

/// File name of the shipped classifier in the weights folder.
pub const DEFAULT_FILE: &str = ModelKind::Classifier.shipped_file_name();

/// A loaded classifier.
pub type Classifier = Saved<ComposerClassifier, Config>;

/// How to train the classifier.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierOptions {
    /// Sizes (`classes` is set from the corpus).
    pub config: Config,
    /// L2 weight decay added to the gradients (0 = off).
    #[serde(default)]
    pub weight_decay: f64,
    /// Share of training steps (0..=1) that train on a shorter window: the first L steps of
    /// each snippet, L drawn (from the step's seeded generator) between
    /// [`SHORTEST_TRAINING_WINDOW`] and the snippet's length in whole tokens, so the model
    /// also learns to judge the short rolls it reads at their own length (a sketch in the
    /// studio). 0 = off, every step on whole snippets.
    #[serde(default)]
    pub short_windows: f64,
    /// Loop options.
    pub train: LoopOptions,
}

/// The shortest window a step with [`ClassifierOptions::short_windows`] trains on (4 bars).
pub const SHORTEST_TRAINING_WINDOW: usize = 64;

impl Default for ClassifierOptions {
    fn default() -> Self {
        let mut train = LoopOptions::new(20_000, 256);
        train.batches_per_step = 2;
        train.learning_rate = 3e-4;
        train.transpose = 3;
        ClassifierOptions {
            config: Config::studio(20),
            weight_decay: 0.0,
            short_windows: 0.0,
            train,
        }
    }
}

/// The classifier's training step: cross-entropy on composer labels.
pub struct ClassifierTask {
    varmap: VarMap,
    model: ComposerClassifier,
    adam: Adam,
    cfg: Config,
    grad_clip: f64,
    /// See [`ClassifierOptions::short_windows`].
    short_windows: f64,
}

impl ClassifierTask {
    /// A freshly initialised classifier of `cfg` (seeded).
    pub fn new(cfg: &Config, opts: &LoopOptions, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, device);
        let model = ComposerClassifier::new(cfg, vb)?;
        crate::train_loop::seeded_init(&varmap, opts.seed)?;
        let adam = Adam::over(&varmap, "", opts.learning_rate)?;
        Ok(ClassifierTask {
            varmap,
            model,
            adam,
            cfg: *cfg,
            grad_clip: opts.grad_clip,
            short_windows: 0.0,
        })
    }
}

impl Task for ClassifierTask {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// About 25 numbers per token, layer and unit of width at the least (measured: 61-86).
    fn memory_per_snippet(&self, steps: usize) -> u64 {
        let tokens = steps.div_ceil(self.cfg.patch_steps.max(1));
        let s = &self.cfg.stack;
        100 * (tokens * s.layers * s.width) as u64
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn optimizers(&mut self) -> Vec<&mut Adam> {
        vec![&mut self.adam]
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).unwrap_or_default()
    }

    fn train_step(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        bars: &WindowBars,
        _step: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Scalars> {
        // Drawn only when asked for: runs without it draw their dropout as they always did.
        let patch = self.cfg.patch_steps;
        let (steps, tokens) = (x.dim(1)?, x.dim(1)? / patch.max(1));
        let fewest = SHORTEST_TRAINING_WINDOW.div_ceil(patch.max(1)).max(1);
        let short = if self.short_windows > 0.0
            && tokens > fewest
            && rng.random::<f64>() < self.short_windows
        {
            Some(rng.random_range(fewest..=tokens) * patch)
        } else {
            None
        };
        let (x, bars) = match short.filter(|&len| len < steps) {
            Some(len) => (&x.narrow(1, 0, len)?, &bars.first_steps(len)),
            None => (x, bars),
        };
        let logits = self.model.forward_t(x, bars, Some(rng))?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        let correct = logits
            .argmax(D::Minus1)?
            .eq(labels)?
            .to_dtype(candle_core::DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()?;
        let grads = loss.backward()?;
        self.adam.apply(&grads, self.grad_clip)?;
        let mut scalars = Scalars::from([
            ("loss".into(), loss.to_scalar::<f32>()? as f64),
            ("accuracy".into(), correct as f64),
        ]);
        if self.short_windows > 0.0 {
            // The window this step trained on, in the log.
            scalars.insert("window".into(), x.dim(1)? as f64);
        }
        Ok(scalars)
    }

    fn validate_chunk(&mut self, chunk: &Chunk) -> Result<Scalars> {
        let (x, labels) = (&chunk.x, &chunk.labels);
        let logits = self.model.forward(x, &chunk.bars)?;
        let target: Vec<u32> = labels.iter().map(|&c| c as u32).collect();
        let target = Tensor::new(target.as_slice(), x.device())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &target)?.to_scalar::<f32>()? as f64;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let correct = predicted
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p as usize == **l)
            .count();
        let n = labels.len() as f64;
        Ok(Scalars::from([
            ("loss".into(), loss * n),
            ("accuracy".into(), correct as f64),
            ("n".into(), n),
        ]))
    }
}

/// Trains a classifier on `corpus` into `out` (`classifier.safetensors` + manifest).
pub fn train_classifier(
    corpus: &Corpus,
    opts: &ClassifierOptions,
    out: &Path,
    device: &Device,
    resume: bool,
    control: &Control,
    on_event: &mut dyn FnMut(LoopEvent),
) -> Result<LoopOutcome> {
    match corpus.composers.as_slice() {
        [] => {
            return Err(Error::InvalidArgument(
                "the corpus has no composer with a piece that could be read: nothing to \
                 classify"
                    .into(),
            ));
        }
        [one] => {
            return Err(Error::InvalidArgument(format!(
                "the corpus holds one composer ({one}): a classifier tells composers apart, so \
                 it needs a folder for each of at least two"
            )));
        }
        _ => {}
    }
    let mut cfg = opts.config;
    cfg.classes = corpus.composers.len();
    cfg.stack.check().map_err(Error::InvalidArgument)?;
    if cfg.patch_steps == 0 {
        return Err(Error::InvalidArgument(
            "a token must hold at least 1 step (patch_steps 0)".into(),
        ));
    }
    if !opts.train.snippet_steps.is_multiple_of(cfg.patch_steps)
        || opts.train.snippet_steps > cfg.max_steps()
    {
        return Err(Error::InvalidArgument(format!(
            "snippet length {} must be a multiple of {} and at most {}",
            opts.train.snippet_steps,
            cfg.patch_steps,
            cfg.max_steps()
        )));
    }
    crate::train_loop::check_number("weight decay", opts.weight_decay, 0.0, false)?;
    if !(0.0..=1.0).contains(&opts.short_windows) {
        return Err(Error::InvalidArgument(format!(
            "the share of short windows must be at least 0 and at most 1, not {}",
            opts.short_windows
        )));
    }
    let mut task = ClassifierTask::new(&cfg, &opts.train, device)?;
    task.adam.l2 = opts.weight_decay;
    task.short_windows = opts.short_windows;
    if cfg.statistics && !resume {
        // A resumed run restores them from its checkpoint.
        let split = train_loop::run_split(
            corpus,
            opts.train.valid_fraction,
            opts.train.fold,
            opts.train.seed,
        );
        set_statistics_spread(
            &mut task.varmap,
            corpus,
            &split.train,
            opts.train.snippet_steps,
        )?;
    }
    let mut recorded = opts.clone();
    recorded.config = cfg;
    let training = serde_json::to_value(&recorded).unwrap_or_default();
    train_loop::run(
        corpus,
        &mut task,
        &opts.train,
        &training,
        out,
        device,
        resume,
        control,
        on_event,
    )
}

/// Sets the statistics head's standardisation (`statistics_head.running_{mean,std}`) from the
/// statistics of the windows (`window` steps, end to end, untransposed) of `pieces`: their
/// mean, and their spread plus [`SPREAD_FLOOR`] (as `stats_baseline::Baseline::fit`
/// standardises its own, with a smaller floor).
pub fn set_statistics_spread(
    varmap: &mut VarMap,
    corpus: &Corpus,
    pieces: &[usize],
    window: usize,
) -> Result<()> {
    let device = Device::Cpu;
    let windows = match window {
        0 => Vec::new(),
        _ => crate::dataset::fixed_snippets(corpus, pieces, window, window),
    };
    if windows.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no window of {window} steps among {} training pieces to standardise the statistics on",
            pieces.len()
        )));
    }
    let rows = windows
        .chunks(64)
        .map(|chunk| {
            let x = snippet_tensor(corpus, chunk, window, &device)?;
            let bars = train_loop::window_bars(corpus, chunk, window);
            roll_statistics(&x, &bars).map_err(candle)
        })
        .collect::<Result<Vec<_>>>()?;
    let rows = Tensor::cat(&rows, 0).map_err(candle)?;
    let (mean, std) = crate::stats_baseline::mean_and_spread(&rows, SPREAD_FLOOR)?;
    for (name, values) in [("running_mean", mean), ("running_std", std)] {
        let name = format!("statistics_head.{name}");
        // Computed on the CPU, set where the model lives (a GPU's variables take no CPU copy).
        let target = (varmap.data().lock().expect("varmap lock poisoned"))
            .get(&name)
            .map_or(Device::Cpu, |v| v.device().clone());
        let values = values.squeeze(0).and_then(|v| v.to_device(&target));
        varmap
            .set_one(name, values.map_err(candle)?)
            .map_err(candle)?;
    }
    Ok(())
}

/// Loads a classifier file, checking everything.
pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
    saved::load(
        path,
        KIND,
        device,
        |cfg: &Config, m| {
            cfg.stack.check()?;
            if cfg.patch_steps == 0 {
                return Err("tokens of 0 steps".into());
            }
            saved::check_snippet_steps(m, cfg.max_steps())?;
            if cfg.classes != m.composers.len() {
                return Err(format!(
                    "{} classes but {} composers",
                    cfg.classes,
                    m.composers.len()
                ));
            }
            Ok(())
        },
        ComposerClassifier::new,
    )
}

/// The shipped classifier, if it is there.
pub fn default_path() -> Option<PathBuf> {
    crate::models::trained::shipped_file(DEFAULT_FILE)
}

/// The snippet length a classifier was trained on (the window it judges best).
pub fn window_steps(clf: &Classifier) -> usize {
    clf.manifest
        .training
        .pointer("/train/snippet_steps")
        .and_then(|v| v.as_u64())
        .map_or(256, |v| v as usize)
        .min(clf.config.max_steps())
}

/// Composer probabilities of a roll: for the whole and per window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Composer names, in label order.
    pub composers: Vec<String>,
    /// Mean of the window probabilities, per composer.
    pub overall: Vec<f32>,
    /// Per window: its first step and the composer probabilities.
    pub windows: Vec<(usize, Vec<f32>)>,
    /// Steps per window.
    pub window: usize,
}

impl Verdict {
    /// Composer indices from most to least likely overall.
    pub fn ranked(&self) -> Vec<usize> {
        ranked(&self.overall)
    }
}

/// Refuses probabilities that are not numbers, naming the classifier's file: weights each
/// finite but too large overflow in the sums, and the verdict would be NaN percents, or the
/// first composer for every piece.
pub fn check_numbers<'a>(clf: &Classifier, probs: impl IntoIterator<Item = &'a f32>) -> Result<()> {
    if probs.into_iter().any(|p| !p.is_finite()) {
        return Err(Error::format(
            &clf.path,
            "its outputs are not numbers for this piece: weights too large for the sums (a \
             damaged or diverged model)",
        ));
    }
    Ok(())
}

/// Probabilities `[N, C]` for rolls `x` `[N, T, 128]` whose steps fall in their bars as
/// `bars` says, in chunks of 32.
pub fn probabilities(
    clf: &ComposerClassifier,
    x: &Tensor,
    bars: &WindowBars,
) -> Result<Vec<Vec<f32>>> {
    let n = x.dim(0)?;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = 32.min(n - start);
        let logits = clf.forward(&x.narrow(0, start, len)?, &bars.narrow(start, len))?;
        out.extend(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?);
        start += len;
    }
    Ok(out)
}

/// Classifies `roll` window by window (`window` steps, hop `hop`; a roll shorter than a window
/// is read at its own length, rounded up to whole tokens, not padded with silence to a
/// window, which would read as a sparse piece). The verdict on the whole roll weighs each window by the steps of
/// the roll it holds, so a last window of a few steps and much padding counts for little (a
/// 269-step piece: 256 and 13).
pub fn classify_roll(clf: &Classifier, roll: &Roll, window: usize, hop: usize) -> Result<Verdict> {
    classify_roll_in(clf, roll, (roll.meters(), 0), window, hop)
}

/// [`classify_roll`] for a roll cut from a piece (a slice starts its bars afresh): its step 0
/// lies at step `bars.1` of a piece with metre map `bars.0`, and a classifier told the metre
/// reads each window at its place in that piece's bars.
pub fn classify_roll_in(
    clf: &Classifier,
    roll: &Roll,
    bars: (&[StepMeter], usize),
    window: usize,
    hop: usize,
) -> Result<Verdict> {
    let (meters, offset) = bars;
    let patch = clf.config.patch_steps;
    let most = clf.config.max_steps();
    if window == 0 || window > most {
        return Err(Error::InvalidArgument(format!(
            "a window of {window} steps: this classifier reads windows of 1 to {most} steps"
        )));
    }
    if hop == 0 {
        return Err(Error::InvalidArgument(
            "windows must start at least 1 step apart".into(),
        ));
    }
    // A roll shorter than a window is read at its own length: padded with silence it would
    // read as a sparse piece. Whole tokens (the classifier's maximum is a whole number of
    // them).
    let window = window.min(roll.steps().max(1)).div_ceil(patch) * patch;
    let starts = window_starts(roll.steps(), window, hop);
    // 32 windows at a time: a long piece (hours of music) never needs all its windows in
    // memory at once.
    let block = window * PITCHES;
    let device = clf.model_device();
    let mut probs = Vec::with_capacity(starts.len());
    let mut data = Vec::new();
    for chunk in starts.chunks(32) {
        data.clear();
        data.resize(chunk.len() * block, 0f32);
        for (k, &s) in chunk.iter().enumerate() {
            roll.window_f32(s, window, &mut data[k * block..(k + 1) * block]);
        }
        let x =
            Tensor::from_slice(&data, (chunk.len(), window, PITCHES), &device).map_err(candle)?;
        let bars = WindowBars::new(
            window,
            chunk.iter().map(|&s| (meters, offset.saturating_add(s))),
        );
        probs.extend(probabilities(&clf.model, &x, &bars)?);
    }
    check_numbers(clf, probs.iter().flatten())?;
    let overall = weighted_overall(&probs, &starts, roll.steps(), window);
    Ok(Verdict {
        composers: clf.manifest.composers.clone(),
        overall,
        windows: starts.into_iter().zip(probs).collect(),
        window,
    })
}

/// Where the windows of `window` steps, `hop` apart, that judge a roll of `steps` start: from
/// 0 until one reaches the end (the last may hold fewer steps; a roll shorter than a window is
/// one window).
pub fn window_starts(steps: usize, window: usize, hop: usize) -> Vec<usize> {
    let mut starts = vec![0usize];
    while let Some(&s) = starts.last()
        && s.saturating_add(window) < steps
    {
        let next = s.saturating_add(hop.max(1));
        if next >= steps {
            break; // a hop longer than a window can step past the end
        }
        starts.push(next);
    }
    starts
}

/// A whole roll's probabilities from its windows' (`probs`, the windows starting at
/// `starts`): each weighed by the steps of the roll it holds, so a last window of a few steps
/// and much padding counts for little.
pub fn weighted_overall(
    probs: &[Vec<f32>],
    starts: &[usize],
    steps: usize,
    window: usize,
) -> Vec<f32> {
    let held = |s: usize| steps.saturating_sub(s).min(window).max(1) as f32;
    let total: f32 = starts.iter().map(|&s| held(s)).sum();
    let mut overall = vec![0f32; probs.first().map_or(0, Vec::len)];
    for (p, &s) in probs.iter().zip(starts) {
        for (o, v) in overall.iter_mut().zip(p) {
            *o += v * held(s) / total;
        }
    }
    overall
}

impl Classifier {
    /// The device the weights live on.
    pub fn model_device(&self) -> Device {
        self.model.device()
    }
}

/// Accuracy and confusion of a classifier on snippets of held-out pieces.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassifierReport {
    /// Composer names.
    pub composers: Vec<String>,
    /// Snippets judged.
    pub snippets: usize,
    /// Held-out pieces they come from.
    pub pieces: usize,
    /// Share of snippets whose top composer is right.
    pub accuracy: f64,
    /// Share whose right composer is among the top 3.
    pub top3: f64,
    /// Share of held-out pieces whose mean window probabilities put the right composer first.
    pub piece_accuracy: f64,
    /// The same by composer, averaged over the composers with a held-out piece: every
    /// composer counts once, however many pieces it has (the corpus holds 343 Bach chorales
    /// and 5 Ravel pieces, so the plain share is mostly Bach's).
    pub piece_balanced_accuracy: f64,
    /// Per composer: held-out pieces, and how many of them were put first right.
    pub pieces_right: Vec<(usize, usize)>,
    /// `confusion[true][predicted]` snippet counts.
    pub confusion: Vec<Vec<usize>>,
}

/// The share of validation snippets, from pieces it never trained on, that the classifier
/// named right at the end of its training, as its manifest records it.
pub fn held_out_accuracy(manifest: &crate::models::saved::ModelManifest) -> Option<f64> {
    manifest.metrics.get("accuracy").and_then(|v| v.as_f64())
}

/// The seed a model's training run (on the shared loop: the classifier, the Transformer VAE,
/// the DCGAN) drew everything from (its split included).
pub fn training_seed<M, C>(clf: &Saved<M, C>) -> u64 {
    clf.manifest.training["train"]["seed"].as_u64().unwrap_or(1)
}

/// The split of `corpus` a model of the shared loop was trained on (the seed and held-out
/// share, or fold, its manifest records).
pub fn training_split<M, C>(clf: &Saved<M, C>, corpus: &Corpus) -> Result<crate::dataset::Split> {
    let fraction = clf.manifest.training["train"]["valid_fraction"]
        .as_f64()
        .unwrap_or(0.1);
    Ok(train_loop::run_split(
        corpus,
        fraction,
        training_fold(clf)?,
        training_seed(clf),
    ))
}

/// The fold of a cross-validation a model of the shared loop was trained on, if it was; a
/// manifest whose fold is not one (say fold 5 of 3) is refused.
pub fn training_fold<M, C>(clf: &Saved<M, C>) -> Result<Option<Fold>> {
    let value = &clf.manifest.training["train"]["fold"];
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "{}: the manifest records the fold {value}, which is not one of a \
                 cross-validation ({e})",
                crate::fsutil::shown(&crate::models::weights::manifest_path(&clf.path))
            ))
        })
}

/// Composer probabilities against the truth: `(probabilities, true composer)` of each snippet
/// judged and of each whole piece. Judgements of disjoint held-out sets (the folds of a
/// cross-validation) add up by [`Judged::extend`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    /// Per snippet judged: (probability of each composer, index of the true composer).
    pub snippets: Vec<(Vec<f32>, usize)>,
    /// Per held-out piece, judged whole: (probability of each composer, true composer index).
    pub pieces: Vec<(Vec<f32>, usize)>,
}

impl Judged {
    /// Adds another held-out set's judgements.
    pub fn extend(&mut self, other: Judged) {
        self.snippets.extend(other.snippets);
        self.pieces.extend(other.pieces);
    }

    /// Two judges of the same snippets and pieces together: their probabilities multiplied
    /// and renormalised (a product of experts). Refused when they did not judge the same.
    pub fn product(&self, other: &Judged) -> Result<Judged> {
        let same = |a: &[(Vec<f32>, usize)], b: &[(Vec<f32>, usize)]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.1 == y.1 && x.0.len() == y.0.len())
        };
        if !same(&self.snippets, &other.snippets) || !same(&self.pieces, &other.pieces) {
            return Err(Error::InvalidArgument(
                "the two judges did not judge the same snippets and pieces".into(),
            ));
        }
        let multiply = |a: &[(Vec<f32>, usize)], b: &[(Vec<f32>, usize)]| {
            a.iter()
                .zip(b)
                .map(|((p, truth), (q, _))| {
                    let joint: Vec<f32> = p.iter().zip(q).map(|(x, y)| x * y).collect();
                    let total: f32 = joint.iter().sum();
                    let norm = if total > 0.0 { total } else { 1.0 };
                    (joint.iter().map(|v| v / norm).collect(), *truth)
                })
                .collect()
        };
        Ok(Judged {
            snippets: multiply(&self.snippets, &other.snippets),
            pieces: multiply(&self.pieces, &other.pieces),
        })
    }

    /// The figures: accuracy, top-3, whole pieces, by composer, confusion.
    pub fn report(&self, composers: Vec<String>) -> ClassifierReport {
        let c = composers.len();
        let mut confusion = vec![vec![0usize; c]; c];
        let (mut hits, mut top3) = (0usize, 0usize);
        for (p, truth) in &self.snippets {
            let order = ranked(p);
            let first = order.first().copied();
            if let (Some(row), Some(first)) = (confusion.get_mut(*truth), first)
                && let Some(cell) = row.get_mut(first)
            {
                *cell += 1;
            }
            hits += usize::from(first == Some(*truth));
            top3 += usize::from(order[..3.min(order.len())].contains(truth));
        }
        let mut pieces_right = vec![(0usize, 0usize); c];
        for (p, truth) in &self.pieces {
            if let Some(right) = pieces_right.get_mut(*truth) {
                right.0 += 1;
                right.1 += usize::from(ranked(p).first() == Some(truth));
            }
        }
        let piece_hits: usize = pieces_right.iter().map(|&(_, right)| right).sum();
        let n = self.snippets.len().max(1) as f64;
        ClassifierReport {
            composers,
            snippets: self.snippets.len(),
            pieces: self.pieces.len(),
            accuracy: hits as f64 / n,
            top3: top3 as f64 / n,
            piece_accuracy: piece_hits as f64 / self.pieces.len().max(1) as f64,
            piece_balanced_accuracy: balanced_accuracy(&pieces_right),
            pieces_right,
            confusion,
        }
    }
}

/// Judges snippets of the pieces the classifier's training split held out (same seed and
/// share, or fold, as its manifest records), `per_composer` each.
pub fn evaluate(
    clf: &Classifier,
    corpus: &Corpus,
    per_composer: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifierReport> {
    Ok(judge_held_out(clf, corpus, per_composer, None, progress)?.report(corpus.composers.clone()))
}

/// What [`evaluate`] counts: the classifier's probabilities for `per_composer` snippets of
/// each composer's held-out pieces, and for each held-out piece whole. The snippets are a
/// window long, or `snippet_steps` long when given: each then judged as [`classify_roll`]
/// judges a roll that long (a shorter one at its own length, a longer one window by window),
/// at its place in its piece's bars.
pub fn judge_held_out(
    clf: &Classifier,
    corpus: &Corpus,
    per_composer: usize,
    snippet_steps: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Judged> {
    let composers = &clf.manifest.composers;
    if composers != &corpus.composers {
        return Err(Error::InvalidArgument(format!(
            "the classifier knows the composers {composers:?}, the corpus has {:?}",
            corpus.composers
        )));
    }
    let split = training_split(clf, corpus)?;
    let window = window_steps(clf);
    let mut judged = Judged::default();
    if let Some(steps) = snippet_steps.filter(|&n| n != window) {
        if steps == 0 {
            return Err(Error::InvalidArgument(
                "snippets of 0 steps: there is nothing to judge".into(),
            ));
        }
        crate::train_loop::check_at_most(
            "snippet length",
            steps,
            crate::train_loop::MAX_SNIPPET_STEPS,
        )?;
        let snippets = evaluation_snippets(corpus, &split.valid, steps, per_composer);
        for (k, (s, truth)) in snippets.iter().enumerate() {
            progress(k, snippets.len());
            judged
                .snippets
                .push((judge_snippet(clf, corpus, s, steps)?, *truth));
        }
    } else {
        judge_window_snippets(
            clf,
            corpus,
            &split.valid,
            per_composer,
            &mut judged,
            progress,
        )?;
    }
    for &piece in &split.valid {
        let v = classify_roll(clf, &corpus.pieces[piece].roll, window, window)?;
        judged
            .pieces
            .push((v.overall, corpus.pieces[piece].composer));
    }
    progress(1, 1);
    Ok(judged)
}

/// The classifier's verdict on `steps` steps of a piece from the snippet's start, as
/// `segue classify` judges a file that long (one shorter than a window at its own length).
fn judge_snippet(
    clf: &Classifier,
    corpus: &Corpus,
    s: &crate::dataset::SnippetRef,
    steps: usize,
) -> Result<Vec<f32>> {
    let window = window_steps(clf);
    let roll = &corpus.pieces[s.piece].roll;
    let snippet = roll.slice(s.start, steps);
    Ok(classify_roll_in(clf, &snippet, (roll.meters(), s.start), window, window)?.overall)
}

/// Snippets of one window each, `per_composer` of each composer's `pieces`, judged 32 at a
/// time (one of a piece shorter than a window at its own length).
fn judge_window_snippets(
    clf: &Classifier,
    corpus: &Corpus,
    pieces: &[usize],
    per_composer: usize,
    judged: &mut Judged,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let window = window_steps(clf);
    let snippets = evaluation_snippets(corpus, pieces, window, per_composer);
    let device = clf.model_device();
    for (k, chunk) in snippets.chunks(32).enumerate() {
        progress(k * 32, snippets.len());
        let refs: Vec<_> = chunk.iter().map(|(s, _)| *s).collect();
        let x = snippet_tensor(corpus, &refs, window, &device)?;
        let bars = train_loop::window_bars(corpus, &refs, window);
        let mut probs = probabilities(&clf.model, &x, &bars)?;
        check_numbers(clf, probs.iter().flatten())?;
        // A piece shorter than a window is read at its own length, as `segue classify` reads
        // it (and as a shorter --snippet-steps would), not padded with silence.
        for (p, (s, _)) in probs.iter_mut().zip(chunk) {
            let steps = corpus.pieces[s.piece].roll.steps().saturating_sub(s.start);
            if steps < window {
                *p = judge_snippet(clf, corpus, s, steps)?;
            }
        }
        (judged.snippets).extend(probs.into_iter().zip(chunk.iter().map(|(_, truth)| *truth)));
    }
    Ok(())
}

/// Judges classifiers trained on the folds of one cross-validation (`segue train classifier
/// --fold K/N`, N runs, K = 1..=N, the same seed, corpus and snippet length), each on its own
/// held-out fold as [`judge_held_out`] does, together: every piece of the corpus is judged
/// once, by a classifier that never trained on it. `progress` gets (folds done, folds).
pub fn judge_folds(
    classifiers: &[Classifier],
    corpus: &Corpus,
    per_composer: usize,
    snippet_steps: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Judged> {
    check_folds(classifiers)?;
    let mut judged = Judged::default();
    for (k, clf) in classifiers.iter().enumerate() {
        progress(k, classifiers.len());
        judged.extend(judge_held_out(
            clf,
            corpus,
            per_composer,
            snippet_steps,
            &mut |_, _| {},
        )?);
    }
    progress(classifiers.len(), classifiers.len());
    Ok(judged)
}

/// Refuses classifiers that are not the N folds of one cross-validation: each trained with
/// `--fold K/N` for the same N, every K once, with the same seed and snippet length, on the
/// same corpus and composers.
pub fn check_folds(classifiers: &[Classifier]) -> Result<()> {
    let bad = |why: String| {
        Err(Error::InvalidArgument(format!(
            "not one cross-validation: {why}"
        )))
    };
    let n = classifiers.len();
    if n < 2 {
        return bad(format!(
            "{n} classifier(s); a cross-validation has 2 folds or more"
        ));
    }
    let mut seen = vec![false; n];
    let first = &classifiers[0].manifest;
    for (i, clf) in classifiers.iter().enumerate() {
        let Some(fold) = training_fold(clf)? else {
            return bad(format!(
                "classifier {} was not trained on a fold (segue train classifier --fold K/N)",
                i + 1
            ));
        };
        if fold.of() != n {
            return bad(format!(
                "classifier {} held out fold {fold}, but {n} classifiers were given",
                i + 1
            ));
        }
        if std::mem::replace(&mut seen[fold.index()], true) {
            return bad(format!("fold {fold} is given twice"));
        }
        let this = &clf.manifest;
        let train =
            |m: &crate::models::saved::ModelManifest, key: &str| m.training["train"][key].clone();
        for (what, differs) in [
            ("seed", train(this, "seed") != train(first, "seed")),
            (
                "snippet length",
                train(this, "snippet_steps") != train(first, "snippet_steps"),
            ),
            ("composers", this.composers != first.composers),
            (
                "corpus",
                this.corpus.content_hash != first.corpus.content_hash,
            ),
        ] {
            if differs {
                return bad(format!(
                    "classifier {} differs from the first in its {what}",
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

/// Class indices from the most probable down (ties keep index order).
pub fn ranked(p: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    order
}

/// Mean over the classes that occur of the share of them put right, from per-class
/// `(count, right)` pairs; 0 when no class occurs.
pub fn balanced_accuracy(per_class: &[(usize, usize)]) -> f64 {
    let (sum, classes) = per_class
        .iter()
        .filter(|&&(n, _)| n > 0)
        .fold((0.0, 0usize), |(sum, k), &(n, right)| {
            (sum + right as f64 / n as f64, k + 1)
        });
    if classes == 0 {
        0.0
    } else {
        sum / classes as f64
    }
}
