//! Measuring a trained LSTM-VAE on held-out pieces: reconstruction, whether the latent is alive
//! and carries style, and what its generated music looks like next to the corpus.
//!
//! The held-out pieces are the ones the training split kept back (same seed and share as the
//! model's manifest records), so no figure here comes from music the model was trained on.

use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Corpus, SnippetRef, evaluation_snippets};
use crate::error::{Error, Result, candle};
use crate::generate::{self, GenerateOptions, Mode};
use crate::meter::{BarMap, StepMeter};
use crate::midi::Meter;
use crate::models::trained::TrainedModel;
use crate::models::vae::{bce_with_logits, bce_with_logits_per_item};
use crate::roll::{PITCHES, Roll};

/// Figures that describe a set of binary rolls, for comparing generated music with real music.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MusicStats {
    /// Mean notes sounding in a step, over steps where something sounds (the paper aims at 2-3);
    /// `None` for silence.
    pub notes_per_sounding_step: Option<f64>,
    /// Mean notes sounding per step, silent steps included.
    pub polyphony: f64,
    /// Note starts per beat (4 steps).
    pub onsets_per_beat: f64,
    /// Mean distance in semitones between the lowest and highest pitch of a 128-step window
    /// (`None` where no window holds a note).
    pub pitch_range: Option<f64>,
    /// Share of bars with no note at all, in the music's own metre (4/4 where it has none;
    /// the bars wholly inside each roll; `None` for rolls that hold no whole bar).
    pub empty_bar_rate: Option<f64>,
}

/// Accumulates [`MusicStats`] over binary rolls (`[T, 128]`, 0/1).
#[derive(Debug, Default)]
struct StatsAcc {
    steps: usize,
    sounding_steps: usize,
    notes: usize,
    onsets: usize,
    ranges: Vec<f64>,
    bars: usize,
    empty_bars: usize,
}

impl StatsAcc {
    /// Adds a binary roll whose step 0 lies at step `offset` of the metre map `meters`.
    fn add(&mut self, binary: &[u8], meters: &[StepMeter], offset: usize) {
        let steps = binary.len() / PITCHES;
        let on = |t: usize, p: usize| binary[t * PITCHES + p] != 0;
        for t in 0..steps {
            let n = (0..PITCHES).filter(|&p| on(t, p)).count();
            self.steps += 1;
            self.notes += n;
            self.sounding_steps += usize::from(n > 0);
            self.onsets += (0..PITCHES)
                .filter(|&p| on(t, p) && (t == 0 || !on(t - 1, p)))
                .count();
        }
        for w in (0..steps).step_by(128) {
            let end = (w + 128).min(steps);
            // Whole windows only (a shorter tail has a narrower range), unless the roll is
            // shorter than one.
            if end - w < 128 && w > 0 {
                break;
            }
            let pitches: Vec<usize> = (0..PITCHES)
                .filter(|&p| (w..end).any(|t| on(t, p)))
                .collect();
            if let (Some(lo), Some(hi)) = (pitches.first(), pitches.last()) {
                self.ranges.push((hi - lo) as f64);
            }
        }
        // The bars of its metre that lie wholly inside it.
        let bars = BarMap::new(meters);
        let end = offset + steps;
        let mut line = bars.next_bar_line(offset);
        while line < end {
            let next = bars.next_bar_line(line + 1);
            if next > end {
                break;
            }
            let sounds = (line - offset..next - offset).any(|t| (0..PITCHES).any(|p| on(t, p)));
            self.bars += 1;
            self.empty_bars += usize::from(!sounds);
            line = next;
        }
    }

    fn finish(&self) -> MusicStats {
        // A mean over nothing is not a figure (silence has no notes per sounding step).
        let mean = |a: f64, b: usize| (b > 0).then(|| a / b as f64);
        MusicStats {
            notes_per_sounding_step: mean(self.notes as f64, self.sounding_steps),
            polyphony: mean(self.notes as f64, self.steps).unwrap_or(0.0),
            onsets_per_beat: mean(self.onsets as f64 * 4.0, self.steps).unwrap_or(0.0),
            pitch_range: mean(self.ranges.iter().sum(), self.ranges.len()),
            empty_bar_rate: mean(self.empty_bars as f64, self.bars),
        }
    }
}

/// Frame-level precision, recall and F1 of predicted against true on-cells.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FrameScore {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

#[derive(Debug, Default)]
struct FrameAcc {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl FrameAcc {
    fn add(&mut self, predicted: bool, truth: bool) {
        match (predicted, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            _ => {}
        }
    }

    fn finish(&self) -> FrameScore {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        FrameScore {
            precision: p,
            recall: r,
            f1: if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            },
        }
    }
}

/// A figure of the snippets in 4/4 throughout and of those in other metres, with their counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MetreSplit {
    /// The figure over the snippets in 4/4 throughout.
    pub in_four_four: f64,
    /// Snippets in 4/4 throughout.
    pub four_four_snippets: usize,
    /// The figure over the snippets in other metres.
    pub in_other_metres: f64,
    /// Snippets in other metres.
    pub other_snippets: usize,
}

/// Everything `segue eval lstm-vae` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LstmVaeReport {
    /// Held-out snippets measured.
    pub snippets: usize,
    /// The corpus's composers the model does not know (by name): their pieces are not
    /// measured.
    pub composers_left_out: Vec<String>,
    /// Their length in steps.
    pub snippet_steps: usize,
    /// Teacher-forced reconstruction BCE per cell with z = the posterior mean.
    pub bce_per_cell_mean_z: f64,
    /// The same with z drawn from the model's prior: N(0, I), or for a composer-aware prior
    /// N(c, I) of the snippet's own composer.
    pub bce_per_cell_prior_z: f64,
    /// The same with z = the posterior mean of a snippet of another composer.
    pub bce_per_cell_other_z: f64,
    /// The BCE with the posterior mean of the snippets in 4/4 throughout, and of the others
    /// (in 3/4, 6/8 ... or changing metre).
    pub bce_per_cell_by_metre: MetreSplit,
    /// How much lower the BCE with the posterior mean is than with a prior sample (share).
    pub latent_gain_over_prior: f64,
    /// Teacher-forced frame scores, probabilities thresholded at 0.5.
    pub frame_thresholded: FrameScore,
    /// Teacher-forced frame scores at the threshold that gives the best F1 on snippets of
    /// training pieces (chosen there, measured here on the held-out snippets).
    pub frame_tuned: FrameScore,
    /// That threshold.
    pub tuned_threshold: f64,
    /// Teacher-forced frame scores, each cell sampled from its probability.
    pub frame_sampled: FrameScore,
    /// Frame scores of the trivial predictor "each step repeats the previous one", for scale.
    pub frame_copy_previous: FrameScore,
    /// Frame scores of a predictor that knows when every sounding note ends but never starts
    /// a new one: the ceiling of anything that cannot foresee onsets.
    pub frame_without_onsets: FrameScore,
    /// Share of the true on-cells that are onsets (off at the previous step).
    pub onset_share: f64,
    /// Teacher-forced recall at 0.5 on onset cells (off at the previous step).
    pub onset_recall: f64,
    /// Teacher-forced recall at 0.5 on held cells (on at the previous step too).
    pub held_recall: f64,
    /// KL(q(z|x) || prior) per snippet, nats (the prior as for `bce_per_cell_prior_z`).
    pub kl: f64,
    /// KL per latent dimension.
    pub kl_per_dim: Vec<f64>,
    /// Dimensions whose posterior mean varies across snippets (variance > 0.01).
    pub active_units: usize,
    /// Share of snippets whose posterior mean is nearest its own composer's centroid, the
    /// centroids being the means of the held-out posterior means themselves ("leave-one-in",
    /// the PyTorch reference's `composer_nearest_centroid_acc_mu`).
    pub centroid_accuracy: f64,
    /// The same with the centroids stored with the model (from training snippets): stricter,
    /// the held-out snippets play no part in their own centroids.
    pub training_centroid_accuracy: f64,
    /// The composer measure leave-one-out: each snippet's own composer's centroid is taken
    /// without it (composers with one snippet left out), so no snippet votes for itself.
    pub centroid_accuracy_leave_one_out: f64,
    /// Snippets the leave-one-out measure counts (those of composers with two or more; 0
    /// makes its accuracy meaningless, not 0).
    pub leave_one_out_snippets: usize,
    /// The composer measure leaving the snippet's whole piece out of its composer's centroid:
    /// the other snippets of its piece are alike, and with them in it the centroid of a
    /// composer with one held-out piece is that piece's. Composers whose snippets all come from
    /// one piece are left out (the strictest of the held-out measures; the stored training
    /// centroids are stricter still).
    pub centroid_accuracy_leave_piece_out: f64,
    /// Snippets the leave-piece-out measure counts (those of composers whose snippets come
    /// from two held-out pieces or more; 0 makes its accuracy meaningless, not 0).
    pub leave_piece_out_snippets: usize,
    /// Composers the leave-piece-out measure counts.
    pub leave_piece_out_composers: usize,
    /// Share of snippets whose posterior mean is nearest the centroid of its own piece, among
    /// the held-out pieces, leave-one-out (pieces with one snippet left out, since with itself
    /// in its centroid such a snippet would always be right): how consistently z describes
    /// one piece.
    pub piece_centroid_accuracy: f64,
    /// Held-out pieces with two snippets or more (those the piece measure counts; 0 makes
    /// its accuracy meaningless, not 0).
    pub pieces: usize,
    /// Held-out pieces with a snippet: the centroids each snippet is measured against (its
    /// chance level is one over this).
    pub piece_candidates: usize,
    /// The style strength of the composers' codes decoded (1 = their stored means).
    pub style_strength: f32,
    /// Mean Jaccard distance between decodings of one primer with two composers' codes
    /// (the per-composer codes stored with the model, at the style strength; same sampling
    /// seed).
    pub composer_z_distance: f64,
    /// The same with two codes drawn from the prior (for a composer-aware prior: from the
    /// whole mixture, a composer at random each).
    pub random_z_distance: f64,
    /// The PyTorch reference's `composer_swap`: one primer decoded with its own snippet's
    /// posterior mean and with the posterior mean of a snippet of another composer (same
    /// sampling seed), Jaccard distance.
    pub swap_other_composer_distance: f64,
    /// The same, the second code drawn from the prior instead.
    pub swap_prior_distance: f64,
    /// The same with one code and two sampling seeds (the noise floor).
    pub seed_only_distance: f64,
    /// The composer swap without sampling noise: one held-out snippet decoded teacher-forced
    /// with its own posterior mean and with another composer's snippet's, as the mean
    /// absolute difference of the note probabilities summed over the pitches (notes per step).
    pub tf_swap_other_composer: f64,
    /// The same, the second code drawn from the prior instead.
    pub tf_swap_prior: f64,
    /// Teacher-forced decodings of one snippet with two composers' stored codes (the same
    /// pairs as `composer_z_distance`), notes per step as above.
    pub tf_composer_codes: f64,
    /// The same with two codes drawn from the per-composer statistics stored with the model
    /// (a composer picked at random, then its mean + std x noise): random codes on the map of
    /// the training means rather than in the prior's hole.
    pub tf_stored_mixture_codes: f64,
    /// The same with two codes drawn from the prior.
    pub tf_random_codes: f64,
    /// Generated continuations (64-step primer + 256 steps, each with its composer's code).
    pub generated: MusicStats,
    /// The held-out snippets themselves.
    pub corpus: MusicStats,
}

/// Whether cell `i` of a flat `[T, 128]` roll sounded at the previous step (never at step 0).
fn sounded_before(roll: &[f32], i: usize) -> bool {
    i >= PITCHES && roll[i - PITCHES] > 0.5
}

/// Sum over all cells of |sigmoid(a) - sigmoid(b)| for two logit tensors of one shape.
fn probability_distance(a: &Tensor, b: &Tensor) -> Result<f64> {
    let d = || -> candle_core::Result<f32> {
        (candle_nn::ops::sigmoid(a)? - candle_nn::ops::sigmoid(b)?)?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()
    };
    Ok(d().map_err(candle)? as f64)
}

fn jaccard_distance(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        inter += usize::from(*x != 0 && *y != 0);
        union += usize::from(*x != 0 || *y != 0);
    }
    if union == 0 {
        0.0
    } else {
        1.0 - inter as f64 / union as f64
    }
}

/// Frame scores of one set of cells at the thresholds 0.05, 0.10, ... 0.95 at once.
struct ThresholdSweep {
    accs: Vec<(f64, FrameAcc)>,
}

impl ThresholdSweep {
    fn new() -> Self {
        ThresholdSweep {
            accs: (1..20)
                .map(|i| (i as f64 * 0.05, FrameAcc::default()))
                .collect(),
        }
    }

    fn add(&mut self, probability: f32, truth: bool) {
        for (th, acc) in &mut self.accs {
            acc.add(f64::from(probability) > *th, truth);
        }
    }

    /// The threshold with the best F1 (the lowest of equals).
    fn best(&self) -> f64 {
        let mut best = (0.5, -1.0);
        for (th, acc) in &self.accs {
            let f1 = acc.finish().f1;
            if f1 > best.1 {
                best = (*th, f1);
            }
        }
        best.0
    }
}

/// The threshold with the best teacher-forced frame F1 on `snippets` (decoded with their
/// posterior means).
fn best_threshold(
    model: &TrainedModel,
    corpus: &Corpus,
    snippets: &[(SnippetRef, usize)],
    steps: usize,
) -> Result<f64> {
    let mut sweep = ThresholdSweep::new();
    for chunk in snippets.chunks(20) {
        let refs: Vec<SnippetRef> = chunk.iter().map(|(s, _)| *s).collect();
        let x = crate::train_loop::snippet_tensor(corpus, &refs, steps, &Device::Cpu)?;
        let bars = crate::train::snippet_bars(corpus, &refs, steps, model.model.config());
        let run = || -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
            let q = model.model.encode(&x)?;
            let p = candle_nn::ops::sigmoid(&model.model.decode(&x, &q.mean, &bars)?)?;
            Ok((p.flatten_all()?.to_vec1()?, x.flatten_all()?.to_vec1()?))
        };
        let (p, truth) = run().map_err(candle)?;
        for (p, t) in p.iter().zip(&truth) {
            sweep.add(*p, *t > 0.5);
        }
    }
    Ok(sweep.best())
}

/// Per-class means of `points` (a class with no point gets an empty centroid).
fn class_means(points: &[Vec<f32>], labels: &[usize], classes: usize) -> Vec<Vec<f32>> {
    let dim = points.first().map_or(0, Vec::len);
    let mut sums = vec![vec![0f32; dim]; classes];
    let mut counts = vec![0usize; classes];
    for (p, &c) in points.iter().zip(labels) {
        counts[c] += 1;
        for (s, v) in sums[c].iter_mut().zip(p) {
            *s += v;
        }
    }
    sums.into_iter()
        .zip(counts)
        .map(|(s, k)| {
            if k == 0 {
                Vec::new()
            } else {
                s.into_iter().map(|v| v / k as f32).collect()
            }
        })
        .collect()
}

/// How many of `points` lie nearest (Euclidean) the centroid of their own label; empty
/// centroids never win.
fn nearest_centroid_hits(points: &[Vec<f32>], labels: &[usize], centroids: &[Vec<f32>]) -> usize {
    let nearest = |m: &[f32]| {
        centroids
            .iter()
            .enumerate()
            .filter(|(_, c)| c.len() == m.len())
            .map(|(c, mu)| {
                (
                    c,
                    m.iter().zip(mu).map(|(a, b)| (a - b).powi(2)).sum::<f32>(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
    };
    points
        .iter()
        .zip(labels)
        .filter(|(m, c)| nearest(m) == Some(**c))
        .count()
}

/// Nearest-centroid accuracy, leaving out: each point against the centroids of the other
/// classes and the centroid of its own class without every point of its group (its piece; or
/// itself alone, `groups` being all different: leave-one-out). Points whose class has no point
/// outside their group are not counted. Returns (accuracy, points counted, classes counted,
/// classes with a point: the centroids measured against).
fn leave_out_accuracy(
    points: &[Vec<f32>],
    labels: &[usize],
    groups: &[usize],
    classes: usize,
) -> (f64, usize, usize, usize) {
    let dim = points.first().map_or(0, Vec::len);
    let add = |sum: &mut Vec<f64>, p: &[f32]| {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += f64::from(*v);
        }
    };
    let mut sums = vec![vec![0f64; dim]; classes];
    let mut counts = vec![0usize; classes];
    let mut group_sums: std::collections::HashMap<(usize, usize), (Vec<f64>, usize)> =
        std::collections::HashMap::new();
    for ((p, &c), &g) in points.iter().zip(labels).zip(groups) {
        counts[c] += 1;
        add(&mut sums[c], p);
        let (sum, count) = group_sums
            .entry((c, g))
            .or_insert_with(|| (vec![0f64; dim], 0));
        add(sum, p);
        *count += 1;
    }
    let distance = |p: &[f32], centre: &dyn Fn(usize) -> f64| -> f64 {
        (p.iter().enumerate())
            .map(|(d, v)| (f64::from(*v) - centre(d)).powi(2))
            .sum()
    };
    let (mut hits, mut counted) = (0usize, 0usize);
    let mut classes_counted = vec![false; classes];
    for ((p, &own), &g) in points.iter().zip(labels).zip(groups) {
        let (group_sum, group_count) = &group_sums[&(own, g)];
        let rest = counts[own] - group_count;
        if rest == 0 {
            continue;
        }
        counted += 1;
        classes_counted[own] = true;
        let nearest = (0..classes)
            .filter(|&c| counts[c] > 0 && c != own)
            .map(|c| (c, distance(p, &|d| sums[c][d] / counts[c] as f64)))
            .chain(std::iter::once((
                own,
                distance(p, &|d| (sums[own][d] - group_sum[d]) / rest as f64),
            )))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|x| x.0);
        hits += usize::from(nearest == Some(own));
    }
    let classes_present = counts.iter().filter(|&&k| k >= 1).count();
    (
        hits as f64 / counted.max(1) as f64,
        counted,
        classes_counted.iter().filter(|&&c| c).count(),
        classes_present,
    )
}

/// What [`evaluate_lstm_vae`] measures on.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Held-out snippets per composer.
    pub per_composer: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Sampling temperature of the generated continuations.
    pub temperature: f32,
    /// Cap on notes per step of the generated continuations.
    pub max_notes: usize,
    /// Snippet length in 16th-note steps (None: the length the model was trained on).
    pub snippet_steps: Option<usize>,
    /// Style strength of the composers' codes decoded (see [`generate::composer_code`]).
    pub style_strength: f32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        let sampling = GenerateOptions::default();
        EvalOptions {
            per_composer: 10,
            seed: 1234,
            temperature: sampling.temperature,
            max_notes: sampling.max_notes,
            snippet_steps: None,
            style_strength: generate::DEFAULT_STYLE_STRENGTH,
        }
    }
}

/// Evaluates `model` on `opts.per_composer` held-out snippets of each composer of `corpus`.
/// `progress` gets the share done.
pub fn evaluate_lstm_vae(
    model: &TrainedModel,
    corpus: &Corpus,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(f32),
) -> Result<LstmVaeReport> {
    let (per_composer, seed) = (opts.per_composer, opts.seed);
    let (valid_fraction, split_seed) = model.manifest.held_out_split().unwrap_or((0.1, 1));
    let steps = opts
        .snippet_steps
        .unwrap_or_else(|| model.training_snippet_steps());
    if steps < 2 {
        return Err(Error::InvalidArgument(format!(
            "snippets of {steps} steps are too short to measure (at least 2)"
        )));
    }
    // Every piece gives at least one snippet, padded with silence where it is shorter: past
    // the longest piece (and the length the model learned on, padded as well) they would
    // measure padding, and a batch of them could fill the memory.
    let longest = (corpus.pieces.iter().map(|p| p.roll.steps()))
        .chain([model.training_snippet_steps()])
        .max()
        .unwrap_or(0);
    if steps > longest {
        return Err(Error::InvalidArgument(format!(
            "snippets of {steps} steps are longer than the corpus's longest piece and the model's training snippets ({longest} steps)"
        )));
    }
    // Held-out snippets start on multiples of their length; a model with a metre input that
    // counts bars from the piece's start learned from snippets starting on bar lines, so
    // these must too.
    let config = model.model.config();
    let metre = config.metre;
    if !config.snippets_hold_whole_bars(steps) {
        return Err(Error::InvalidArgument(format!(
            "this model reads bars of {metre} steps: measure it on snippets of a multiple of {metre} steps, not {steps}"
        )));
    }
    let split = corpus.split(valid_fraction, split_seed);
    // Labels follow the model's composer list (the corpus may order or name them otherwise).
    let label_of: Vec<Option<usize>> = corpus
        .composers
        .iter()
        .map(|c| model.composer_index(c))
        .collect();
    let snippets: Vec<(SnippetRef, usize)> =
        evaluation_snippets(corpus, &split.valid, steps, per_composer)
            .into_iter()
            .filter_map(|(s, c)| label_of[c].map(|l| (s, l)))
            .collect();
    if snippets.is_empty() {
        return Err(Error::InvalidArgument(
            "no held-out snippets of the model's composers in this corpus".into(),
        ));
    }
    // The composer figures compare composers: with one, each would compare a snippet with
    // itself and print a figure that means nothing.
    if snippets.iter().all(|s| s.1 == snippets[0].1) {
        return Err(Error::InvalidArgument(format!(
            "the held-out pieces hold snippets of one of the model's composers only ({}): the \
             evaluation compares composers, so it needs held-out pieces of two of them (a \
             composer needs at least two pieces to have one held out)",
            model.manifest.composers[snippets[0].1]
        )));
    }
    let n = snippets.len();
    let z_dim = model.manifest.config.latent;
    let tuned_threshold = best_threshold(
        model,
        corpus,
        &evaluation_snippets(corpus, &split.train, steps, 2),
        steps,
    )?;
    let mut tuned = FrameAcc::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut bce_mean, mut bce_prior, mut bce_other) = (0f64, 0f64, 0f64);
    // (sum over snippets, count): in 4/4, in other metres.
    let mut by_metre = [(0f64, 0usize); 2];
    let (mut thr, mut smp) = (FrameAcc::default(), FrameAcc::default());
    let mut kl_dims = vec![0f64; z_dim];
    let mut means: Vec<Vec<f32>> = Vec::with_capacity(n);
    let mut corpus_stats = StatsAcc::default();
    let mut rolls: Vec<Vec<f32>> = Vec::with_capacity(n);
    let (mut copy, mut without_onsets) = (FrameAcc::default(), FrameAcc::default());
    // Recall counts per kind of on-cell: (found, all) for onsets and for held notes.
    let (mut onsets, mut held) = ((0usize, 0usize), (0usize, 0usize));
    for (s, _) in &snippets {
        let mut data = vec![0f32; steps * PITCHES];
        corpus.pieces[s.piece]
            .roll
            .window_f32(s.start, steps, &mut data);
        for (i, truth) in data.iter().enumerate() {
            let previous = sounded_before(&data, i);
            copy.add(previous, *truth > 0.5);
            without_onsets.add(previous && *truth > 0.5, *truth > 0.5);
        }
        let binary: Vec<u8> = data.iter().map(|v| u8::from(*v > 0.5)).collect();
        corpus_stats.add(&binary, corpus.pieces[s.piece].roll.meters(), s.start);
        rolls.push(data);
    }
    // Posterior means first (the "other composer" code needs them all).
    let prior_means = model.manifest.prior.as_ref().map(|p| &p.means);
    for (k, chunk) in rolls.chunks(20).enumerate() {
        let x = Tensor::from_vec(chunk.concat(), (chunk.len(), steps, PITCHES), &Device::Cpu)
            .map_err(candle)?;
        let q = model.model.encode(&x).map_err(candle)?;
        let kd = match prior_means {
            Some(centres) => {
                let rows: Vec<f32> = snippets[k * 20..k * 20 + chunk.len()]
                    .iter()
                    .flat_map(|(_, c)| centres[*c].iter().copied())
                    .collect();
                Tensor::from_vec(rows, (chunk.len(), z_dim), &Device::Cpu)
                    .and_then(|m| q.kl_to_per_dim(&m))
            }
            None => q.kl_per_dim(),
        }
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle)?;
        for (acc, v) in kl_dims.iter_mut().zip(kd) {
            *acc += v as f64 * chunk.len() as f64;
        }
        means.extend(q.mean.to_vec2::<f32>().map_err(candle)?);
        progress(0.3 * means.len() as f32 / n as f32);
    }
    // An index of a snippet of another composer for each snippet.
    let other: Vec<usize> = (0..n)
        .map(|i| {
            (0..n)
                .map(|d| (i + n / 2 + d) % n)
                .find(|&j| snippets[j].1 != snippets[i].1)
                .unwrap_or(i)
        })
        .collect();
    // The composers' codes stored with the model (training snippets' mean codes).
    let stored: Vec<Vec<f32>> = model
        .manifest
        .latents
        .iter()
        .map(|s| s.mean.clone())
        .collect();
    // The composers' codes as generation decodes them (at the style strength asked for).
    let styled: Vec<Vec<f32>> = (0..stored.len())
        .map(|c| generate::composer_code(model, c, opts.style_strength))
        .collect::<Result<_>>()?;
    // The composers of the stored-code pairs (as in the sampled comparison below).
    let composers = model.manifest.composers.len();
    let other_composer = |i: usize, c: usize| (c + 1 + i % (composers - 1).max(1)) % composers;
    // Its own stream, so the draws of the sampled figures stay what they were.
    let mut tf_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7EAC_4E12);
    let (mut tf_other, mut tf_prior, mut tf_codes, mut tf_random) = (0f64, 0f64, 0f64, 0f64);
    let mut tf_mixture = 0f64;
    let mut mixture_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x3A1C_5E77);
    let latents = &model.manifest.latents;
    let mixture_draw = |rng: &mut ChaCha8Rng| latents[rng.random_range(0..latents.len())].draw(rng);
    for (k, chunk) in rolls.chunks(20).enumerate() {
        let b = chunk.len();
        let x =
            Tensor::from_vec(chunk.concat(), (b, steps, PITCHES), &Device::Cpu).map_err(candle)?;
        let idx: Vec<usize> = (k * 20..k * 20 + b).collect();
        let refs: Vec<SnippetRef> = idx.iter().map(|&i| snippets[i].0).collect();
        let bars = crate::train::snippet_bars(corpus, &refs, steps, model.model.config());
        let codes = |rows: Vec<Vec<f32>>| {
            Tensor::from_vec(rows.concat(), (b, z_dim), &Device::Cpu).map_err(candle)
        };
        let z_mean = codes(idx.iter().map(|&i| means[i].clone()).collect())?;
        // A prior draw for each snippet's own composer (N(0, I) for a standard prior).
        let z_prior = codes(
            idx.iter()
                .map(|&i| model.manifest.prior_draw(snippets[i].1, &mut rng))
                .collect(),
        )?;
        let z_other = codes(idx.iter().map(|&i| means[other[i]].clone()).collect())?;
        let bce = |z: &Tensor| -> Result<(f64, Tensor)> {
            let logits = model.model.decode(&x, z, &bars).map_err(candle)?;
            let v = bce_with_logits(&logits, &x)
                .and_then(|t| t.to_scalar::<f32>())
                .map_err(candle)?;
            Ok((v as f64 * b as f64, logits))
        };
        let (v, logits) = bce(&z_mean)?;
        bce_mean += v;
        let per_item = bce_with_logits_per_item(&logits, &x)
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle)?;
        for (&i, item) in idx.iter().zip(per_item) {
            let s = snippets[i].0;
            let roll = &corpus.pieces[s.piece].roll;
            // In 4/4 at its start, and no change of metre inside it.
            let inside = s.start + 1..s.start + steps;
            let four = roll.meter_at(s.start) == Meter::COMMON
                && !roll.meters().iter().any(|m| inside.contains(&m.step));
            let (sum, count) = &mut by_metre[usize::from(!four)];
            *sum += f64::from(item);
            *count += 1;
        }
        let (v, logits_prior) = bce(&z_prior)?;
        bce_prior += v;
        let (v, logits_other) = bce(&z_other)?;
        bce_other += v;
        let own_codes = codes(idx.iter().map(|&i| styled[snippets[i].1].clone()).collect())?;
        let other_codes = codes(
            idx.iter()
                .map(|&i| styled[other_composer(i, snippets[i].1)].clone())
                .collect(),
        )?;
        let decode = |z: &Tensor| model.model.decode(&x, z, &bars).map_err(candle);
        let second_prior = codes(
            (0..b)
                .map(|_| model.manifest.prior_draw_any(&mut tf_rng))
                .collect(),
        )?;
        // Summed over the chunk's snippets and pitches, per step.
        let per_step = steps as f64;
        tf_other += probability_distance(&logits, &logits_other)? / per_step;
        tf_prior += probability_distance(&logits, &logits_prior)? / per_step;
        tf_codes += probability_distance(&decode(&own_codes)?, &decode(&other_codes)?)? / per_step;
        tf_random += probability_distance(&logits_prior, &decode(&second_prior)?)? / per_step;
        let mixture_a = codes((0..b).map(|_| mixture_draw(&mut mixture_rng)).collect())?;
        let mixture_b = codes((0..b).map(|_| mixture_draw(&mut mixture_rng)).collect())?;
        tf_mixture += probability_distance(&decode(&mixture_a)?, &decode(&mixture_b)?)? / per_step;
        let l = logits
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle)?;
        for (logits, roll) in l.chunks(steps * PITCHES).zip(chunk) {
            for (i, (logit, truth)) in logits.iter().zip(roll).enumerate() {
                let p = 1.0 / (1.0 + (-logit).exp());
                let truth = *truth > 0.5;
                thr.add(p > 0.5, truth);
                tuned.add(f64::from(p) > tuned_threshold, truth);
                smp.add(rng.random::<f32>() < p, truth);
                if truth {
                    let kind = if sounded_before(roll, i) {
                        &mut held
                    } else {
                        &mut onsets
                    };
                    kind.0 += usize::from(p > 0.5);
                    kind.1 += 1;
                }
            }
        }
        progress(0.3 + 0.4 * ((k + 1) * 20).min(n) as f32 / n as f32);
    }
    let cells = (n * steps * PITCHES) as f64;
    let kl_per_dim: Vec<f64> = kl_dims.iter().map(|v| v / n as f64).collect();
    let active_units = (0..z_dim)
        .filter(|&d| {
            let m = means.iter().map(|v| v[d] as f64).sum::<f64>() / n as f64;
            means.iter().map(|v| (v[d] as f64 - m).powi(2)).sum::<f64>() / n as f64 > 0.01
        })
        .count();
    let labels: Vec<usize> = snippets.iter().map(|(_, c)| *c).collect();
    let training_hits = nearest_centroid_hits(&means, &labels, &stored);
    let held_out = class_means(&means, &labels, stored.len());
    let hits = nearest_centroid_hits(&means, &labels, &held_out);
    // The same by piece: how well snippets of one piece stay together.
    let mut pieces: Vec<usize> = snippets.iter().map(|(s, _)| s.piece).collect();
    pieces.sort_unstable();
    pieces.dedup();
    let piece_labels: Vec<usize> = snippets
        .iter()
        .map(|(s, _)| pieces.partition_point(|&p| p < s.piece))
        .collect();
    let each: Vec<usize> = (0..means.len()).collect();
    let loo = leave_out_accuracy(&means, &labels, &each, stored.len());
    // The composer measure with the snippet's whole piece left out of its composer's centroid:
    // snippets of one piece are alike, and with their siblings in it the centroid partly
    // measures the piece, not the composer.
    let lpo = leave_out_accuracy(&means, &labels, &piece_labels, stored.len());
    let piece_loo = leave_out_accuracy(&means, &piece_labels, &each, pieces.len());

    // Decoding one primer with different codes; and generated continuations.
    let cancel = AtomicBool::new(false);
    let (mut d_comp, mut d_rand, mut d_seed) = (0f64, 0f64, 0f64);
    let (mut d_swap, mut d_swap_prior) = (0f64, 0f64);
    let mut generated = StatsAcc::default();
    // At most 60 sampled pairs, spread over every composer (snippets come in composer order).
    let stride = n.div_ceil(60).max(1);
    let pairs = n.div_ceil(stride);
    for (i, &(s, c)) in snippets.iter().enumerate() {
        // The whole piece, primed from the snippet's start: a model with the metre map reads
        // the piece's bars there.
        let primer = &corpus.pieces[s.piece].roll;
        let base = GenerateOptions {
            mode: Mode::Continue,
            steps: 256,
            primer_steps: 64,
            primer_start: s.start,
            seed: seed ^ i as u64,
            temperature: opts.temperature,
            max_notes: opts.max_notes,
            ..GenerateOptions::default()
        };
        let decode = |za: &[f32], o: &GenerateOptions| {
            generate::generate(&model.model, primer, za, za, o, &mut |_| {}, &cancel)
        };
        let generated_part = |g: &generate::Generated, o: &GenerateOptions| {
            g.roll.slice(g.primer_steps, o.steps).binary()
        };
        let run = |za: &[f32], o: &GenerateOptions| -> Result<Vec<u8>> {
            Ok(generated_part(&decode(za, o)?, o))
        };
        let own = &styled[c];
        let g = decode(own, &base)?;
        let out = generated_part(&g, &base);
        // In the bars the continuation was generated in.
        generated.add(&out, &g.bars.0, g.bars.1 + g.primer_steps);
        if i % stride == 0 {
            let other_c = other_composer(i, c);
            d_comp += jaccard_distance(&out, &run(&styled[other_c], &base)?);
            let r1 = model.manifest.prior_draw_any(&mut rng);
            let r2 = model.manifest.prior_draw_any(&mut rng);
            d_rand += jaccard_distance(&run(&r1, &base)?, &run(&r2, &base)?);
            let reseeded = GenerateOptions {
                seed: base.seed ^ 0xFFFF,
                ..base.clone()
            };
            d_seed += jaccard_distance(&out, &run(own, &reseeded)?);
            let mine = run(&means[i], &base)?;
            d_swap += jaccard_distance(&mine, &run(&means[other[i]], &base)?);
            let prior = model.manifest.prior_draw_any(&mut rng);
            d_swap_prior += jaccard_distance(&mine, &run(&prior, &base)?);
        }
        progress(0.7 + 0.3 * (i + 1) as f32 / n as f32);
    }
    let bce_mean = bce_mean / cells;
    let bce_prior = bce_prior / cells;
    Ok(LstmVaeReport {
        snippets: n,
        composers_left_out: (corpus.composers.iter().zip(&label_of))
            .filter(|(_, l)| l.is_none())
            .map(|(c, _)| c.clone())
            .collect(),
        snippet_steps: steps,
        bce_per_cell_mean_z: bce_mean,
        bce_per_cell_prior_z: bce_prior,
        bce_per_cell_other_z: bce_other / cells,
        bce_per_cell_by_metre: {
            let cells_of = |n: usize| (n * steps * PITCHES).max(1) as f64;
            MetreSplit {
                in_four_four: by_metre[0].0 / cells_of(by_metre[0].1),
                four_four_snippets: by_metre[0].1,
                in_other_metres: by_metre[1].0 / cells_of(by_metre[1].1),
                other_snippets: by_metre[1].1,
            }
        },
        latent_gain_over_prior: 1.0 - bce_mean / bce_prior,
        frame_thresholded: thr.finish(),
        frame_tuned: tuned.finish(),
        tuned_threshold,
        frame_sampled: smp.finish(),
        frame_copy_previous: copy.finish(),
        frame_without_onsets: without_onsets.finish(),
        onset_share: onsets.1 as f64 / (onsets.1 + held.1).max(1) as f64,
        onset_recall: onsets.0 as f64 / onsets.1.max(1) as f64,
        held_recall: held.0 as f64 / held.1.max(1) as f64,
        kl: kl_per_dim.iter().sum(),
        kl_per_dim,
        active_units,
        centroid_accuracy: hits as f64 / n as f64,
        training_centroid_accuracy: training_hits as f64 / n as f64,
        centroid_accuracy_leave_one_out: loo.0,
        leave_one_out_snippets: loo.1,
        centroid_accuracy_leave_piece_out: lpo.0,
        leave_piece_out_snippets: lpo.1,
        leave_piece_out_composers: lpo.2,
        piece_centroid_accuracy: piece_loo.0,
        pieces: piece_loo.2,
        piece_candidates: piece_loo.3,
        style_strength: opts.style_strength,
        composer_z_distance: d_comp / pairs as f64,
        random_z_distance: d_rand / pairs as f64,
        swap_other_composer_distance: d_swap / pairs as f64,
        swap_prior_distance: d_swap_prior / pairs as f64,
        seed_only_distance: d_seed / pairs as f64,
        tf_swap_other_composer: tf_other / n as f64,
        tf_swap_prior: tf_prior / n as f64,
        tf_composer_codes: tf_codes / n as f64,
        tf_random_codes: tf_random / n as f64,
        tf_stored_mixture_codes: tf_mixture / n as f64,
        generated: generated.finish(),
        corpus: corpus_stats.finish(),
    })
}

/// [`MusicStats`] of one roll (binary view).
pub fn music_stats(roll: &Roll) -> MusicStats {
    pooled_music_stats([roll])
}

/// [`MusicStats`] of several rolls pooled (notes over all their sounding steps, not a mean
/// of per-roll ratios, where a silent roll would count as 0 notes a step).
pub fn pooled_music_stats<'a>(rolls: impl IntoIterator<Item = &'a Roll>) -> MusicStats {
    let mut acc = StatsAcc::default();
    for roll in rolls {
        acc.add(&roll.binary(), roll.meters(), 0);
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_distance_sums_the_differences_of_the_probabilities() {
        let a = Tensor::new(&[[0f32, 0.0], [20.0, -20.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[20f32, 0.0], [20.0, 20.0]], &Device::Cpu).unwrap();
        // 0.5 (0.5 vs 1) + 0 + 0 + 1 (0 vs 1).
        let d = probability_distance(&a, &b).unwrap();
        assert!((d - 1.5).abs() < 1e-5, "{d}");
        assert_eq!(probability_distance(&a, &a).unwrap(), 0.0);
    }

    #[test]
    fn music_stats_count_what_they_say() {
        // 48 steps: a 3-note chord held for steps 0..8, then silence (two of three bars empty).
        let mut binary = vec![0u8; 48 * PITCHES];
        for t in 0..8 {
            for p in [60, 64, 67] {
                binary[t * PITCHES + p] = 1;
            }
        }
        let roll_a = Roll::from_binary(48, &binary).unwrap();
        let s = music_stats(&roll_a);
        assert_eq!(s.notes_per_sounding_step, Some(3.0));
        assert_eq!(s.polyphony, 24.0 / 48.0);
        assert_eq!(s.onsets_per_beat, 3.0 * 4.0 / 48.0);
        assert_eq!(s.pitch_range, Some(7.0));
        assert_eq!(s.empty_bar_rate, Some(2.0 / 3.0));
        // Silence has no notes per sounding step and no pitch range (not 0: a figure of 0
        // would read as music with none), but it has its empty bars; no bar, no rate.
        let silence = music_stats(&Roll::from_binary(48, &vec![0u8; 48 * PITCHES]).unwrap());
        assert_eq!(silence.notes_per_sounding_step, None);
        assert_eq!(silence.pitch_range, None);
        assert_eq!(silence.polyphony, 0.0);
        assert_eq!(silence.empty_bar_rate, Some(1.0));
        let short = music_stats(&Roll::from_binary(8, &binary[..8 * PITCHES]).unwrap());
        assert_eq!(short.empty_bar_rate, None);
        // In 3/4 the same 48 steps are four bars of 12: the chord sounds in the first alone.
        let mut waltz = roll_a.clone();
        let three_four = Meter {
            numerator: 3,
            denominator: 4,
        };
        waltz.set_meters(vec![StepMeter {
            step: 0,
            meter: three_four,
        }]);
        assert_eq!(music_stats(&waltz).empty_bar_rate, Some(3.0 / 4.0));
        // Only bars wholly inside count: 40 steps from step 4 of a 4/4 map (steps 4..44) hold
        // one, 16..32, empty (the chord is at steps 4..12 of the map); from step 0, two bars,
        // the first sounding.
        let mut acc = StatsAcc::default();
        acc.add(&binary[..40 * PITCHES], &[], 4);
        assert_eq!((acc.bars, acc.empty_bars), (1, 1));
        let mut acc = StatsAcc::default();
        acc.add(&binary[..40 * PITCHES], &[], 0);
        assert_eq!((acc.bars, acc.empty_bars), (2, 1));
        let mut acc = FrameAcc::default();
        for (p, t) in [(true, true), (true, false), (false, true), (false, false)] {
            acc.add(p, t);
        }
        assert_eq!(acc.finish().f1, 0.5);
        assert_eq!(jaccard_distance(&[1, 1, 0], &[1, 0, 0]), 0.5);
    }

    #[test]
    fn the_sweep_picks_the_threshold_with_the_best_f1() {
        let mut sweep = ThresholdSweep::new();
        // Notes at 0.33 and 0.42, silence at 0.22 and below: the thresholds 0.25 and 0.30
        // are perfect, and the lower is chosen.
        for (p, truth) in [(0.33, true), (0.42, true), (0.22, false), (0.1, false)] {
            sweep.add(p, truth);
        }
        assert!((sweep.best() - 0.25).abs() < 1e-9, "{}", sweep.best());
        // No notes at all: every F1 is 0, the first threshold stays.
        let mut empty = ThresholdSweep::new();
        empty.add(0.9, false);
        assert!((empty.best() - 0.05).abs() < 1e-9, "{}", empty.best());
    }

    #[test]
    fn centroid_accuracy_counts_points_nearest_their_own_class() {
        // Class 0 around (0, 0), class 1 around (10, 0); the last point of class 1 sits at
        // (1, 0), nearer class 0's centroid. Class 2 has no point and must never win.
        let points = vec![
            vec![0.0, 0.0],
            vec![0.0, 2.0],
            vec![10.0, 0.0],
            vec![10.0, 2.0],
            vec![1.0, 0.0],
        ];
        let labels = [0, 0, 1, 1, 1];
        let centroids = class_means(&points, &labels, 3);
        assert_eq!(centroids[0], vec![0.0, 1.0]);
        assert_eq!(centroids[1], vec![7.0, 2.0 / 3.0]);
        assert!(centroids[2].is_empty());
        assert_eq!(nearest_centroid_hits(&points, &labels, &centroids), 4);
        // Centroids from elsewhere: only the class-0 points are near theirs.
        let stored = vec![vec![0.0, 1.0], vec![-20.0, 0.0], vec![5.0, 0.0]];
        assert_eq!(nearest_centroid_hits(&points, &labels, &stored), 2);
    }

    #[test]
    fn leave_one_out_accuracy_keeps_each_point_out_of_its_own_centroid() {
        // Class 0: two points at x = 0 and 1; class 1: (4, 0) and (5, 0); class 2: one point at
        // x = 0.4, which leave-one-in would count right (it is its own centroid).
        let points = vec![
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![4.0, 0.0],
            vec![5.0, 0.0],
            vec![0.4, 0.0],
        ];
        let labels = [0, 0, 1, 1, 2];
        // Leave-one-in: all right but (0, 0), which is nearer the lone point than (0.5, 0).
        let leave_in = class_means(&points, &labels, 3);
        assert_eq!(nearest_centroid_hits(&points, &labels, &leave_in), 4);
        // Left out: (0, 0) against class 0 = {1}: distance 1, class 2 = {0.4}: 0.4 -> wrong;
        // (1, 0) against {0}: 1, class 2: 0.6 -> wrong; class 1 both right; class 2 not
        // counted.
        let each = [0, 1, 2, 3, 4];
        let (accuracy, counted, classes, present) = leave_out_accuracy(&points, &labels, &each, 3);
        assert_eq!((counted, classes, present), (4, 2, 3));
        assert!((accuracy - 0.5).abs() < 1e-12, "{accuracy}");
    }

    #[test]
    fn leaving_the_piece_out_takes_a_snippets_siblings_out_of_its_centroid_too() {
        // Class 0: piece A at x = 0 and 0.2, piece B at x = 9; class 1: one piece at 6 and
        // 6.2. Leave-one-out, A's snippets have their sibling in class 0's centroid (4.6 and
        // 4.5) and are right, B is wrong (A's 0.1 is further than class 1's 6.1): 4 of 5. With
        // A left out, class 0's centroid is B's (9), and class 1 is nearer A's snippets; B is
        // wrong still; class 1 has one piece and is not counted: 0 of 3.
        let points: Vec<Vec<f32>> = [0.0, 0.2, 9.0, 6.0, 6.2]
            .iter()
            .map(|&x| vec![x, 0.0])
            .collect();
        let labels = [0, 0, 0, 1, 1];
        let pieces = [0, 0, 1, 2, 2];
        let each = [0, 1, 2, 3, 4];
        let loo = leave_out_accuracy(&points, &labels, &each, 2);
        assert_eq!(loo.1, 5);
        assert!((loo.0 - 0.8).abs() < 1e-12, "{loo:?}");
        let lpo = leave_out_accuracy(&points, &labels, &pieces, 2);
        assert_eq!((lpo.1, lpo.2, lpo.3), (3, 1, 2));
        assert_eq!(lpo.0, 0.0, "{lpo:?}");
    }
}
