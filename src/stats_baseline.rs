//! A yardstick for the composer classifier: multinomial logistic regression on a few
//! statistics of each window (which pitches and pitch classes sound, on which of every 16
//! steps notes start, how long notes are, how dense the texture is), fitted on the windows of
//! the training pieces. What it gets right on held-out pieces says how much of the composer
//! simple statistics tell; `segue eval classifier --baseline` prints it beside the
//! classifier's figures, and `--folds K` cross-validates it over every piece of the corpus.

use candle_core::{D, DType, Device, Tensor, Var};

use crate::classify::{self, ClassifierReport, Judged};
use crate::dataset::{Corpus, SnippetRef, Split, evaluation_snippets, fixed_snippets};
use crate::error::{Error, Result, candle};
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};

/// Statistics per window: 128 pitches, 12 pitch classes, 16 onset places, 12 note lengths and
/// 4 densities.
pub const FEATURES: usize = PITCHES + 12 + 16 + LENGTH_BINS.len() + 4;

/// Upper bounds (in steps) of the note-length bins; the last bin takes anything longer.
const LENGTH_BINS: [usize; 12] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, usize::MAX];

/// How the regression is fitted: full-batch Adam from zero weights (so it draws nothing at
/// random), with an L2 penalty and each composer's windows weighed equally in the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Adam steps (each over all the windows).
    pub iterations: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// L2 penalty: `l2 * w` is added to each gradient (0 = none).
    pub l2: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            iterations: 600,
            learning_rate: 1e-2,
            l2: 1e-3,
        }
    }
}

/// The statistics of `len` steps of `roll` from `start`: for each pitch, the share of the
/// steps held on which it sounds; then three groups of shares that each sum to 1 where they
/// have anything to count: the sounding cells of each pitch class, the onsets on each step of
/// 16 counted from the window's start (every 16 steps, whatever the piece's metre), the notes
/// of each length (cut at the window's edges); then onsets per step, sounding cells per step,
/// the share of silent steps and the share of the window the roll fills.
pub fn window_features(roll: &Roll, start: usize, len: usize) -> Vec<f32> {
    let mut f = vec![0f32; FEATURES];
    let start = start.min(roll.steps());
    let held = len.min(roll.steps() - start);
    let (pcs, places, lengths, dens) = (PITCHES, PITCHES + 12, PITCHES + 28, FEATURES - 4);
    let (mut onsets, mut on, mut silent) = (0f32, 0f32, 0f32);
    for t in start..start + held {
        let mut any = false;
        for (p, &v) in roll.row(t).iter().enumerate() {
            if v == 0 {
                continue;
            }
            any = true;
            on += 1.0;
            f[p] += 1.0;
            f[pcs + p % 12] += 1.0;
            if roll.is_onset(t, p) {
                onsets += 1.0;
                f[places + (t - start) % 16] += 1.0;
            }
        }
        silent += f32::from(u8::from(!any));
    }
    for note in roll.slice(start, held).notes() {
        let bin = LENGTH_BINS.iter().position(|&b| note.len <= b);
        f[lengths + bin.unwrap_or(LENGTH_BINS.len() - 1)] += 1.0;
    }
    let steps = held.max(1) as f32;
    f[..PITCHES].iter_mut().for_each(|x| *x /= steps);
    for group in [pcs..places, places..lengths, lengths..dens] {
        let total: f32 = f[group.clone()].iter().sum();
        if total > 0.0 {
            f[group].iter_mut().for_each(|x| *x /= total);
        }
    }
    f[dens] = onsets / steps;
    f[dens + 1] = on / steps;
    f[dens + 2] = silent / steps;
    f[dens + 3] = held as f32 / len.max(1) as f32;
    f
}

/// A fitted regression: feature standardisation from its training windows, weights and
/// biases.
#[derive(Debug, Clone)]
pub struct Baseline {
    mean: Tensor,
    std: Tensor,
    weights: Tensor,
    bias: Tensor,
}

impl Baseline {
    /// Fits `classes` composers to the feature rows `x` (each [`FEATURES`] long) with their
    /// composers `labels`.
    pub fn fit(
        x: &[Vec<f32>],
        labels: &[usize],
        classes: usize,
        opts: &FitOptions,
    ) -> Result<Baseline> {
        if x.is_empty() || x.len() != labels.len() || labels.iter().any(|&c| c >= classes) {
            return Err(Error::InvalidArgument(format!(
                "cannot fit {classes} composers to {} windows with {} labels",
                x.len(),
                labels.len()
            )));
        }
        let device = Device::Cpu;
        let rows = features_tensor(x, &device)?;
        // No floor under the spread beyond what keeps it from 0: a pitch few training windows
        // play scales a held-out window that plays it to many deviations, and that is what
        // tells a register apart (a floor of 0.05 lowered every figure: 0.382 of the 246
        // held-out snippets instead of 0.447, 0.372 cross-validated instead of 0.393); the L2
        // penalty bounds the weights.
        let (mean, std) = mean_and_spread(&rows, 1e-6)?;
        let xs = rows
            .broadcast_sub(&mean)
            .and_then(|v| v.broadcast_div(&std))
            .map_err(candle)?;
        // Each composer's windows weigh as much in the loss as another's.
        let mut counts = vec![0f32; classes];
        labels.iter().for_each(|&c| counts[c] += 1.0);
        let present = counts.iter().filter(|&&n| n > 0.0).count() as f32;
        let weight: Vec<f32> = labels
            .iter()
            .map(|&c| 1.0 / (counts[c] * present))
            .collect();
        let weight = Tensor::from_vec(weight, (labels.len(), 1), &device).map_err(candle)?;
        let onehot: Vec<f32> = labels
            .iter()
            .flat_map(|&c| (0..classes).map(move |k| f32::from(u8::from(k == c))))
            .collect();
        let onehot = Tensor::from_vec(onehot, (labels.len(), classes), &device).map_err(candle)?;
        let w = Var::zeros((FEATURES, classes), DType::F32, &device).map_err(candle)?;
        let b = Var::zeros((1, classes), DType::F32, &device).map_err(candle)?;
        let mut adam = Adam::new(
            vec![("w".into(), w.clone()), ("b".into(), b.clone())],
            opts.learning_rate,
        )?;
        adam.l2 = opts.l2;
        for _ in 0..opts.iterations {
            let logits = xs
                .matmul(w.as_tensor())
                .and_then(|l| l.broadcast_add(b.as_tensor()))
                .map_err(candle)?;
            let loss = candle_nn::ops::log_softmax(&logits, D::Minus1)
                .and_then(|lp| lp * &onehot)
                .and_then(|lp| lp.broadcast_mul(&weight))
                .and_then(|lp| lp.sum_all())
                .and_then(|l| l.neg())
                .map_err(candle)?;
            adam.apply(&loss.backward().map_err(candle)?, f64::INFINITY)?;
        }
        Ok(Baseline {
            mean,
            std,
            weights: w.as_tensor().clone(),
            bias: b.as_tensor().clone(),
        })
    }

    /// Composer probabilities of each feature row.
    pub fn probabilities(&self, x: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let rows = features_tensor(x, self.mean.device())?;
        rows.broadcast_sub(&self.mean)
            .and_then(|v| v.broadcast_div(&self.std))
            .and_then(|v| v.matmul(&self.weights))
            .and_then(|v| v.broadcast_add(&self.bias))
            .and_then(|v| candle_nn::ops::softmax(&v, D::Minus1))
            .and_then(|v| v.to_vec2::<f32>())
            .map_err(candle)
    }
}

/// The mean of the rows `[N, F]` and their spread (population standard deviation) plus
/// `floor`, each `[1, F]`: how a feature is standardised, here and by the classifier's
/// statistics head.
pub fn mean_and_spread(rows: &Tensor, floor: f64) -> Result<(Tensor, Tensor)> {
    let mean = rows.mean_keepdim(0).map_err(candle)?;
    let std = (rows.broadcast_sub(&mean))
        .and_then(|v| v.sqr())
        .and_then(|v| v.mean_keepdim(0))
        .and_then(|v| v.sqrt())
        .and_then(|v| v + floor)
        .map_err(candle)?;
    Ok((mean, std))
}

fn features_tensor(x: &[Vec<f32>], device: &Device) -> Result<Tensor> {
    if let Some(row) = x.iter().find(|r| r.len() != FEATURES) {
        return Err(Error::InvalidArgument(format!(
            "a feature row of {} values, not {FEATURES}",
            row.len()
        )));
    }
    Tensor::from_vec(x.concat(), (x.len(), FEATURES), device).map_err(candle)
}

/// Each snippet's statistics.
fn features_of(corpus: &Corpus, snippets: &[SnippetRef], window: usize) -> Vec<Vec<f32>> {
    snippets
        .iter()
        .map(|s| window_features(&corpus.pieces[s.piece].roll, s.start, window))
        .collect()
}

/// A whole piece's probabilities: its windows' (end to end, as `segue classify` cuts a piece
/// with the hop equal to the window), each weighed by the steps it holds.
fn piece_probabilities(baseline: &Baseline, roll: &Roll, window: usize) -> Result<Vec<f32>> {
    let starts = classify::window_starts(roll.steps(), window, window);
    let x: Vec<Vec<f32>> = starts
        .iter()
        .map(|&s| window_features(roll, s, window))
        .collect();
    let probs = baseline.probabilities(&x)?;
    Ok(classify::weighted_overall(
        &probs,
        &starts,
        roll.steps(),
        window,
    ))
}

fn check_window(window: usize) -> Result<()> {
    if window == 0 {
        return Err(Error::InvalidArgument(
            "the baseline's windows must be at least 1 step long".into(),
        ));
    }
    Ok(())
}

/// Fits the baseline on the windows (`window` steps, end to end) of `split.train`.
pub fn fit_split(
    corpus: &Corpus,
    split: &Split,
    window: usize,
    opts: &FitOptions,
) -> Result<Baseline> {
    check_window(window)?;
    let windows = fixed_snippets(corpus, &split.train, window, window);
    let labels: Vec<usize> = windows
        .iter()
        .map(|s| corpus.pieces[s.piece].composer)
        .collect();
    Baseline::fit(
        &features_of(corpus, &windows, window),
        &labels,
        corpus.composers.len(),
        opts,
    )
}

/// The baseline fitted on `split.train` judges what `classify::judge_held_out` has the
/// classifier judge: `per_composer` snippets of each composer's held-out pieces
/// (`split.valid`), and the held-out pieces whole.
pub fn judge_split(
    corpus: &Corpus,
    split: &Split,
    window: usize,
    per_composer: usize,
    opts: &FitOptions,
) -> Result<Judged> {
    let baseline = fit_split(corpus, split, window, opts)?;
    let snippets = evaluation_snippets(corpus, &split.valid, window, per_composer);
    let refs: Vec<SnippetRef> = snippets.iter().map(|&(s, _)| s).collect();
    let probs = baseline.probabilities(&features_of(corpus, &refs, window))?;
    let judged_snippets = probs
        .into_iter()
        .zip(snippets.iter().map(|&(_, c)| c))
        .collect();
    let pieces = split
        .valid
        .iter()
        .map(|&p| {
            let piece = &corpus.pieces[p];
            Ok((
                piece_probabilities(&baseline, &piece.roll, window)?,
                piece.composer,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Judged {
        snippets: judged_snippets,
        pieces,
    })
}

/// The baseline beside classifiers: fitted on each one's training pieces, judging the
/// snippets and pieces it holds out (the same as `classify::judge_held_out`, or
/// `classify::judge_folds` for the folds of a cross-validation).
pub fn judge_beside(
    classifiers: &[classify::Classifier],
    corpus: &Corpus,
    per_composer: usize,
    opts: &FitOptions,
) -> Result<Judged> {
    let mut judged = Judged::default();
    for clf in classifiers {
        let split = classify::training_split(clf, corpus)?;
        let window = classify::window_steps(clf);
        judged.extend(judge_split(corpus, &split, window, per_composer, opts)?);
    }
    Ok(judged)
}

/// Cross-validation over every piece: each composer's pieces are dealt in a seeded order
/// round `folds` folds (the folds `segue train classifier --fold K/N` holds out with the same
/// seed); each fold is held out once while the baseline is fitted on the others. The report
/// pools every held-out window (end to end, `window` steps) and every piece, so each of the
/// corpus's pieces is judged once by a baseline that never saw it. A fold left empty (more
/// folds than a corpus's pieces allow) is refused.
pub fn cross_validate(
    corpus: &Corpus,
    folds: usize,
    window: usize,
    seed: u64,
    opts: &FitOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifierReport> {
    check_window(window)?;
    if folds < 2 {
        return Err(Error::InvalidArgument(format!(
            "cross-validation needs 2 folds or more, not {folds}"
        )));
    }
    // Every fold must hold some pieces and leave some to fit on: checked before any fit.
    let fold_of = corpus.folds(folds, seed);
    let splits: Vec<Split> = (0..folds)
        .map(|index| {
            let (valid, train): (Vec<usize>, Vec<usize>) =
                (0..corpus.pieces.len()).partition(|&p| fold_of[p] == index);
            if valid.is_empty() || train.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{folds} folds of {} pieces: fold {}/{folds} would hold {} of them",
                    corpus.pieces.len(),
                    index + 1,
                    valid.len()
                )));
            }
            Ok(Split { train, valid })
        })
        .collect::<Result<_>>()?;
    let mut judged = Judged::default();
    for (index, split) in splits.iter().enumerate() {
        progress(index, folds);
        // Every window of the held-out pieces, not a sample of them.
        judged.extend(judge_split(corpus, split, window, usize::MAX, opts)?);
    }
    progress(folds, folds);
    Ok(judged.report(corpus.composers.clone()))
}
