//! The evaluation report: every model on the same held-out snippets, written as markdown with
//! PNG charts (`segue eval report`).
//!
//! Figures:
//! - reconstruction BCE per step (nats, summed over the 128 pitches) of the two VAEs;
//! - for generated music of each model: notes per sounding step, pitch-class histogram overlap
//!   with the target composer's, and the classifier's probability of the target;
//! - the classifier's verdict on LSTM-VAE style transfers and transitions (share classified as
//!   the target; chroma similarity to the source as content kept) and, along an 8-step A -> B
//!   blend, the Spearman correlation between the blend amount and P(B);
//! - the overlapping areas of Yang and Lerch (2018) for pitch-class histogram, pitch count,
//!   inter-onset interval and note length against the target composers' real snippets (of
//!   their training pieces, as the pitch-class histograms: the LSTM-VAE's primers are held
//!   out, and no output is measured against its primer's piece).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;

use crate::ascent::{self, AscentOptions};
use crate::classify::{self, Classifier};
use crate::dataset::{Corpus, SnippetRef, evaluation_snippets};
use crate::error::{Error, Result};
use crate::eval::pooled_music_stats;
use crate::gan::{self, TrainedGan};
use crate::generate::{self, GenerateOptions, Generated, Mode};
use crate::meter::StepMeter;
use crate::models::trained::TrainedModel;
use crate::models::vae::bce_with_logits;
use crate::roll::Roll;
use crate::train::snippet_bars;
use crate::train_loop::snippet_tensor;
use crate::tvae::{self, TrainedTvae};
use crate::{fsutil, plot};

/// The models to compare (the LSTM-VAE is required, the others are measured when given).
pub struct Models {
    /// The LSTM-VAE.
    pub lstm: TrainedModel,
    /// The Transformer VAE, if measured.
    pub tvae: Option<TrainedTvae>,
    /// The composer classifier, if given: its ascent outputs are measured, and it judges the
    /// outputs of every model.
    pub classifier: Option<Classifier>,
    /// The DCGAN, if measured.
    pub gan: Option<TrainedGan>,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Held-out snippets per composer for reconstruction and the real-music statistics.
    pub per_composer: usize,
    /// Generated pieces per composer per model.
    pub outputs_per_composer: usize,
    /// Composer pairs for transfers, transitions and blends.
    pub pairs: usize,
    /// Gradient steps of classifier ascent.
    pub ascent_iterations: usize,
    /// Seed of all sampling.
    pub seed: u64,
    /// Style strength of the VAEs' composer codes (see [`generate::composer_code`]).
    pub style_strength: f32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            per_composer: 4,
            outputs_per_composer: 2,
            pairs: 10,
            ascent_iterations: 100,
            seed: 1,
            style_strength: generate::DEFAULT_STYLE_STRENGTH,
        }
    }
}

/// Figures of one generating model.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModelFigures {
    /// Model name.
    pub name: String,
    /// Reconstruction BCE per step on held-out snippets (VAEs only).
    pub recon_per_step: Option<f64>,
    /// Mean notes per sounding step of its output (`None` where it was all silent).
    pub notes_per_step: Option<f64>,
    /// Mean histogram intersection (0..1) of output and target pitch-class histograms.
    pub pitch_class_overlap: f64,
    /// Mean classifier probability of the target composer.
    pub target_probability: Option<f64>,
    /// Share of outputs the classifier assigns to the target composer.
    pub target_share: Option<f64>,
    /// Yang-Lerch overlapping areas: pitch-class histogram, pitch count, IOI, note length
    /// (`None` where there was nothing to compare: fewer than two real snippets of a target).
    pub overlap_areas: [Option<f64>; 4],
    /// Outputs measured.
    pub outputs: usize,
    /// Outputs without a note (each scores a pitch-class overlap of 0; they have no
    /// inter-onset interval or note length to compare).
    pub silent_outputs: usize,
}

/// The classifier's verdict on LSTM-VAE transfers, transitions and blends.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StyleVerdict {
    /// Share of transfers (primer A, z of B) classified as B.
    pub transfer_share: f64,
    /// Share classified as A, the primer's composer.
    pub transfer_source_share: f64,
    /// Mean chroma (pitch-class) cosine similarity of a transfer to its source's continuation.
    pub transfer_chroma_similarity: f64,
    /// The same for plain continuations in A's own style, for comparison.
    pub continuation_chroma_similarity: f64,
    /// Share of transitions (z from A to B over one window) whose next window, at B's code,
    /// is classified as B.
    pub transition_share: f64,
    /// Mean chroma cosine similarity of the transition's window (z moving from A to B) to
    /// the source's continuation.
    pub transition_chroma_similarity: f64,
    /// Mean P(B) at each of the 8 blend amounts 0, 1/7, ..., 1.
    pub blend_curve: Vec<f64>,
    /// Mean Spearman correlation between blend amount and P(B) over the pairs where it is
    /// defined (`None` where it is for none).
    pub blend_spearman: Option<f64>,
    /// The pairs whose P(B) varied along the blend (those the mean is over).
    pub blend_spearman_pairs: usize,
    /// Pairs measured.
    pub pairs: usize,
}

/// The whole report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Held-out snippets used for reconstruction.
    pub snippets: usize,
    /// Style strength of the VAEs' composer codes.
    pub style_strength: f32,
    /// Corpus figures: notes per sounding step.
    pub corpus_notes_per_step: Option<f64>,
    /// Per model.
    pub models: Vec<ModelFigures>,
    /// LSTM-VAE style figures (needs the classifier).
    pub style: Option<StyleVerdict>,
    /// Classifier accuracy on held-out snippets and pieces.
    pub classifier: Option<classify::ClassifierReport>,
}

/// Pitch-class histogram of a roll's note starts, normalised (zeros if empty).
pub fn pitch_classes(roll: &Roll) -> [f64; 12] {
    let mut h = [0f64; 12];
    for n in roll.notes() {
        h[n.pitch as usize % 12] += 1.0;
    }
    let total: f64 = h.iter().sum();
    if total > 0.0 {
        h.iter_mut().for_each(|v| *v /= total);
    }
    h
}

fn intersection(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.min(*y)).sum()
}

fn cosine(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The Yang-Lerch features of a roll: pitch-class histogram, pitch count, mean inter-onset
/// interval (steps; mgeval's `avg_IOI`), note-length histogram (mgeval's `note_length_hist`).
struct Features {
    pitch_classes: [f64; 12],
    pitch_count: f64,
    /// Mean steps between onsets; `None` with fewer than two.
    ioi: Option<f64>,
    /// The share of notes of each of [`NOTE_LENGTH_CLASSES`]; `None` without notes.
    note_lengths: Option<[f64; 12]>,
}

/// The note lengths of Yang and Lerch's note-length histogram, in steps of a 4/4 bar of 16
/// (mgeval's order): whole, half, quarter, 8th, 16th; dotted half, quarter, 8th, 16th; half,
/// quarter and 8th triplets. A note counts for the nearest (the first of two as near).
const NOTE_LENGTH_CLASSES: [f64; 12] = [
    16.0,
    8.0,
    4.0,
    2.0,
    1.0,
    12.0,
    6.0,
    3.0,
    1.5,
    16.0 / 3.0,
    8.0 / 3.0,
    4.0 / 3.0,
];

/// The normalised histogram of `lengths` (steps) over [`NOTE_LENGTH_CLASSES`].
fn note_length_histogram(lengths: impl Iterator<Item = usize>) -> Option<[f64; 12]> {
    let mut h = [0.0; 12];
    let mut total = 0.0;
    for len in lengths {
        let distance = |i: usize| (NOTE_LENGTH_CLASSES[i] - len as f64).abs();
        // `min_by` keeps the first of equal ones, as mgeval's argmin does.
        let nearest = (0..12).min_by(|&a, &b| distance(a).total_cmp(&distance(b)));
        h[nearest.unwrap_or(0)] += 1.0;
        total += 1.0;
    }
    (total > 0.0).then(|| h.map(|v| v / total))
}

fn features(roll: &Roll) -> Features {
    let notes = roll.notes();
    let mut pitches: Vec<u8> = notes.iter().map(|n| n.pitch).collect();
    pitches.sort_unstable();
    pitches.dedup();
    let mut onsets: Vec<usize> = notes.iter().map(|n| n.start).collect();
    onsets.sort_unstable();
    onsets.dedup();
    let ioi = (onsets.len() > 1)
        .then(|| (onsets[onsets.len() - 1] - onsets[0]) as f64 / (onsets.len() - 1) as f64);
    Features {
        pitch_classes: pitch_classes(roll),
        pitch_count: pitches.len() as f64,
        ioi,
        note_lengths: note_length_histogram(notes.iter().map(|n| n.len)),
    }
}

/// The distance of two snippets in feature `which` (pitch classes, pitch count, inter-onset
/// interval, note length); `None` where either lacks it (a snippet of one onset has no
/// interval: counting it as 0 would match it with every other such snippet).
fn feature_distance(a: &Features, b: &Features, which: usize) -> Option<f64> {
    let apart = |x: Option<f64>, y: Option<f64>| Some((x? - y?).abs());
    // Histograms are apart by their Euclidean distance, as mgeval's `c_dist` has it.
    let euclidean = |x: &[f64; 12], y: &[f64; 12]| {
        (x.iter().zip(y))
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    match which {
        0 => Some(euclidean(&a.pitch_classes, &b.pitch_classes)),
        1 => Some((a.pitch_count - b.pitch_count).abs()),
        2 => apart(a.ioi, b.ioi),
        _ => Some(euclidean(
            a.note_lengths.as_ref()?,
            b.note_lengths.as_ref()?,
        )),
    }
}

/// Overlapping area of two samples' Gaussian kernel density estimates, as Yang and Lerch's own
/// code (mgeval's `overlap_area`) computes it: scipy's `gaussian_kde` bandwidth (Scott's rule,
/// the sample's standard deviation with one degree of freedom taken) and min(pdf_a, pdf_b)
/// integrated over the range the two samples span, not beyond (distances are never negative);
/// `None` when either is empty (nothing to compare is not "no overlap").
pub fn overlap_area(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let bandwidth = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let sd = if x.len() > 1 {
            (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        // A sample of one value has no spread: a narrow kernel stands for it.
        (sd * n.powf(-0.2)).max(1e-3)
    };
    let (ha, hb) = (bandwidth(a), bandwidth(b));
    let mut lo = a.iter().chain(b).cloned().fold(f64::INFINITY, f64::min);
    let mut hi = a.iter().chain(b).cloned().fold(f64::NEG_INFINITY, f64::max);
    if hi - lo < 1e-9 {
        // Both samples one and the same value: over its kernels, not over no width.
        lo -= 5.0 * ha.max(hb);
        hi += 5.0 * ha.max(hb);
    }
    let pdf = |x: &[f64], h: f64, t: f64| {
        x.iter()
            .map(|v| (-0.5 * ((t - v) / h).powi(2)).exp())
            .sum::<f64>()
            / (x.len() as f64 * h * (2.0 * std::f64::consts::PI).sqrt())
    };
    // The trapezoid rule on a grid fine for the narrowest kernel the range holds.
    let grid = (((hi - lo) / ha.min(hb)) * 8.0).clamp(400.0, 20_000.0) as usize;
    let dx = (hi - lo) / grid as f64;
    let area = (0..=grid)
        .map(|i| {
            let t = lo + i as f64 * dx;
            let edge = if i == 0 || i == grid { 0.5 } else { 1.0 };
            edge * pdf(a, ha, t).min(pdf(b, hb, t)) * dx
        })
        .sum::<f64>();
    Some(area.min(1.0))
}

/// The sampling seed of a report's output `k` (of a composer, a pair): `seed` and `k` mixed
/// (SplitMix64's finaliser), so that reports of nearby seeds share no output, as `seed + k`
/// made them (a Transformer VAE's output k of seed 2 was output k + 1 of seed 1).
fn output_seed(seed: u64, k: usize) -> u64 {
    let mut x = seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Generated outputs of one model.
struct Outputs {
    name: String,
    rolls: Vec<Output>,
    recon_per_step: Option<f64>,
}

/// One generated roll and the composer it targets (`None` = the whole corpus).
struct Output {
    roll: Roll,
    target: Option<usize>,
    /// Where its step 0 lies in the bars it was generated in: the metre map of the roll it
    /// was cut from, and the step (what a classifier told the metre reads).
    bars: (Vec<StepMeter>, usize),
}

impl Output {
    /// A roll as generated.
    fn whole(roll: Roll, target: Option<usize>) -> Self {
        let bars = (roll.meters().to_vec(), 0);
        Output { roll, target, bars }
    }

    /// The first `len` generated steps of `g` (after its primer), in the bars they were
    /// generated in.
    fn continuation(g: &Generated, len: usize, target: Option<usize>) -> Self {
        Output {
            roll: g.roll.slice(g.primer_steps, len),
            target,
            bars: (g.bars.0.clone(), g.bars.1.saturating_add(g.primer_steps)),
        }
    }
}

/// `held[c]`: whether composer `c` has held-out pieces (and so a pitch-class target).
fn measure(
    out: &Outputs,
    real: &[(Roll, usize)],
    composer_pc: &[[f64; 12]],
    held: &[bool],
    clf: Option<&Classifier>,
) -> Result<ModelFigures> {
    let n = out.rolls.len().max(1) as f64;
    let mut f = ModelFigures {
        name: out.name.clone(),
        recon_per_step: out.recon_per_step,
        outputs: out.rolls.len(),
        ..ModelFigures::default()
    };
    // The whole corpus's: the mean of the composers that have held-out pieces.
    let all_pc = {
        let targets = held.iter().filter(|&&h| h).count().max(1) as f64;
        let mut h = [0f64; 12];
        for (pc, _) in composer_pc.iter().zip(held).filter(|(_, h)| **h) {
            for (a, b) in h.iter_mut().zip(pc) {
                *a += b / targets;
            }
        }
        h
    };
    f.notes_per_step =
        pooled_music_stats(out.rolls.iter().map(|o| &o.roll)).notes_per_sounding_step;
    f.silent_outputs = (out.rolls.iter())
        .filter(|o| o.roll.active_cells() == 0)
        .count();
    let (mut prob, mut share) = (0f64, 0usize);
    for Output { roll, target, bars } in &out.rolls {
        let target_pc = target.map_or(all_pc, |c| composer_pc[c]);
        f.pitch_class_overlap += intersection(&pitch_classes(roll), &target_pc) / n;
        if let (Some(clf), Some(c)) = (clf, target) {
            let window = roll.steps().max(1);
            let v = classify::classify_roll_in(clf, roll, (&bars.0, bars.1), window, window)?;
            prob += v.overall[*c] as f64;
            share += usize::from(v.ranked()[0] == *c);
        }
    }
    let targeted = out.rolls.iter().filter(|o| o.target.is_some()).count();
    if clf.is_some() && targeted > 0 {
        f.target_probability = Some(prob / targeted as f64);
        f.target_share = Some(share as f64 / targeted as f64);
    }
    // Yang-Lerch: intra-set distances among real snippets of one composer, against inter-set
    // distances between an output and its target's real snippets. An unconditional model's
    // target is the whole corpus: its reference is then every pair of real snippets.
    // Read as the models' outputs are (from binary cells, where a note held on is one note
    // however the file struck it), so that the representation alone makes no difference.
    let real_features: Vec<(Features, usize)> = real
        .iter()
        .map(|(r, c)| Ok((features(&Roll::from_binary(r.steps(), &r.binary())?), *c)))
        .collect::<Result<_>>()?;
    let untargeted = out.rolls.iter().all(|o| o.target.is_none());
    for which in 0..4 {
        let mut intra = Vec::new();
        for (i, (a, ca)) in real_features.iter().enumerate() {
            for (b, cb) in &real_features[i + 1..] {
                if untargeted || ca == cb {
                    intra.extend(feature_distance(a, b, which));
                }
            }
        }
        let mut inter = Vec::new();
        for Output { roll, target, .. } in &out.rolls {
            let g = features(roll);
            for (r, c) in &real_features {
                if target.is_none_or(|t| t == *c) {
                    inter.extend(feature_distance(&g, r, which));
                }
            }
        }
        f.overlap_areas[which] = overlap_area(&intra, &inter);
    }
    Ok(f)
}

/// Measures every model on the held-out pieces of `corpus` (the split of the LSTM-VAE's
/// manifest: seed and share), their outputs against the target composers' training pieces,
/// reporting progress as a share done.
pub fn evaluate_all(
    models: &Models,
    corpus: &Corpus,
    opts: &ReportOptions,
    progress: &mut dyn FnMut(f32, &str),
) -> Result<Report> {
    let lstm = &models.lstm;
    // Every model's composer numbers are read as the corpus's.
    let known = [
        ("LSTM-VAE", Some(&lstm.manifest.composers)),
        (
            "Transformer VAE",
            models.tvae.as_ref().map(|m| &m.manifest.composers),
        ),
        (
            "classifier",
            models.classifier.as_ref().map(|m| &m.manifest.composers),
        ),
    ];
    for (name, composers) in known {
        if let Some(composers) = composers
            && *composers != corpus.composers
        {
            return Err(Error::InvalidArgument(format!(
                "the {name} knows the composers {composers:?}, the corpus has {:?}",
                corpus.composers
            )));
        }
    }
    let (valid_fraction, seed) = lstm.manifest.held_out_split().unwrap_or((0.1, 1));
    let split = corpus.split(valid_fraction, seed);
    // The Transformer VAE's reconstruction is measured on the LSTM-VAE's held-out pieces: it
    // must not have trained on any of them.
    if let Some(t) = &models.tvae {
        let its = classify::training_split(t, corpus)?;
        if let Some(&p) = split.valid.iter().find(|p| !its.valid.contains(p)) {
            return Err(Error::InvalidArgument(format!(
                "the Transformer VAE trained on {}, which the LSTM-VAE holds out: the report \
                 compares them on pieces neither trained on (train both with the same seed \
                 and validation share)",
                crate::fsutil::shown(&corpus.pieces[p].path)
            )));
        }
    }
    // The classifier judges continuations of held-out primers: a piece it trained on would
    // be judged from memory.
    if let Some(c) = &models.classifier {
        let its = classify::training_split(c, corpus)?;
        if let Some(&p) = split.valid.iter().find(|p| !its.valid.contains(p)) {
            return Err(Error::InvalidArgument(format!(
                "the classifier trained on {}, which the LSTM-VAE holds out: the report judges \
                 continuations of pieces neither trained on (train both with the same seed and \
                 validation share)",
                crate::fsutil::shown(&corpus.pieces[p].path)
            )));
        }
    }
    let steps: usize = 128;
    // Held-out snippets start on multiples of 128 steps; a model that counts bars from the
    // piece's start learned from snippets starting on bar lines (as `segue eval lstm-vae`
    // checks).
    let config = lstm.model.config();
    if !config.snippets_hold_whole_bars(steps) {
        return Err(Error::InvalidArgument(format!(
            "the LSTM-VAE reads bars of {} steps counted from each piece's start, which the \
             report's {steps}-step snippets do not hold whole",
            config.metre
        )));
    }
    let snippets: Vec<(SnippetRef, usize)> =
        evaluation_snippets(corpus, &split.valid, steps, opts.per_composer);
    let device = Device::Cpu;
    let real: Vec<(Roll, usize)> = snippets
        .iter()
        .map(|(s, c)| (corpus.pieces[s.piece].roll.slice(s.start, steps), *c))
        .collect();
    // What every model's outputs are measured against: the target composers' training
    // pieces. The LSTM-VAE continues held-out snippets, and measured against held-out pieces
    // it would meet the piece its primer came from (a composer with one held-out piece: all
    // of its reference); the same music for every model.
    let reference: Vec<(Roll, usize)> =
        evaluation_snippets(corpus, &split.train, steps, opts.per_composer)
            .iter()
            .map(|(s, c)| (corpus.pieces[s.piece].roll.slice(s.start, steps), *c))
            .collect();
    // Each composer's pitch classes, from its training pieces.
    let composer_pc: Vec<[f64; 12]> = (0..corpus.composers.len())
        .map(|c| {
            let mut h = [0f64; 12];
            let pieces: Vec<usize> = split
                .train
                .iter()
                .copied()
                .filter(|&p| corpus.pieces[p].composer == c)
                .collect();
            for &p in &pieces {
                for (a, b) in h.iter_mut().zip(pitch_classes(&corpus.pieces[p].roll)) {
                    *a += b / pieces.len().max(1) as f64;
                }
            }
            h
        })
        .collect();
    let corpus_notes = pooled_music_stats(real.iter().map(|(r, _)| r)).notes_per_sounding_step;
    // Composers with no held-out piece (one piece in all) have no target to measure against:
    // no model generates for them, and the whole corpus's pitch classes leave them out.
    let held: Vec<bool> = (0..corpus.composers.len())
        .map(|c| (split.valid.iter()).any(|&p| corpus.pieces[p].composer == c))
        .collect();

    // Reconstruction per step of both VAEs on the same snippets.
    progress(0.0, "reconstruction");
    let (mut lstm_recon, mut tvae_recon) = (0f64, 0f64);
    for chunk in snippets.chunks(20) {
        let refs: Vec<SnippetRef> = chunk.iter().map(|(s, _)| *s).collect();
        let x = snippet_tensor(corpus, &refs, steps, &device)?;
        let bars = snippet_bars(corpus, &refs, steps, lstm.model.config());
        let q = lstm.model.encode(&x)?;
        let logits = lstm.model.decode(&x, &q.mean, &bars)?;
        lstm_recon += bce_with_logits(&logits, &x)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        if let Some(t) = &models.tvae {
            let logits = t.model.forward(&x)?;
            tvae_recon +=
                bce_with_logits(&logits, &x)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        }
    }
    let per_step = |total: f64| total / (snippets.len().max(1) * steps) as f64;

    let cancel = AtomicBool::new(false);
    let composers = corpus.composers.len();
    // The k-th held-out snippet of composer c as a primer: its piece and where it starts (a
    // model with the metre map reads the piece's bars there).
    let primer_of = |c: usize, k: usize| -> Option<(&Roll, usize)> {
        let mine: Vec<&SnippetRef> = (snippets.iter())
            .filter(|(_, sc)| *sc == c)
            .map(|(s, _)| s)
            .collect();
        (!mine.is_empty()).then(|| {
            let s = mine[k % mine.len()];
            (&corpus.pieces[s.piece].roll, s.start)
        })
    };
    let gen_opts = |mode: Mode, steps: usize, seed: u64| GenerateOptions {
        mode,
        steps,
        primer_steps: 64,
        seed,
        ..GenerateOptions::default()
    };
    let mut all = Vec::new();

    // LSTM-VAE continuations in each composer's style from a held-out primer of theirs.
    progress(0.1, "LSTM-VAE");
    let mut rolls = Vec::new();
    for c in 0..composers {
        for k in 0..opts.outputs_per_composer {
            let Some((piece, start)) = primer_of(c, k) else {
                continue;
            };
            let z = generate::composer_code(lstm, c, opts.style_strength)?;
            let g = generate::generate(
                &lstm.model,
                piece,
                &z,
                &z,
                &GenerateOptions {
                    primer_start: start,
                    ..gen_opts(Mode::Continue, steps, output_seed(opts.seed, k))
                },
                &mut |_| {},
                &cancel,
            )?;
            rolls.push(Output::continuation(&g, steps, Some(c)));
        }
    }
    all.push(Outputs {
        name: "LSTM-VAE".into(),
        rolls,
        recon_per_step: Some(per_step(lstm_recon)),
    });

    if let Some(t) = &models.tvae {
        progress(0.25, "Transformer VAE");
        let mut rolls = Vec::new();
        for c in (0..composers).filter(|&c| held[c]) {
            for k in 0..opts.outputs_per_composer {
                let z = tvae::composer_code(t, c, opts.style_strength)?;
                let g = tvae::generate(
                    t,
                    &Roll::new(0),
                    &z,
                    &z,
                    &gen_opts(Mode::Continue, steps, output_seed(opts.seed, k)),
                    &mut |_| {},
                    &cancel,
                )?;
                rolls.push(Output::whole(g.roll, Some(c)));
            }
        }
        all.push(Outputs {
            name: "Transformer VAE".into(),
            rolls,
            recon_per_step: Some(per_step(tvae_recon)),
        });
    }
    if let Some(g) = &models.gan {
        progress(0.35, "DCGAN");
        let n = held.iter().filter(|&&h| h).count() * opts.outputs_per_composer;
        let sampling = GenerateOptions::default();
        let rolls = gan::sample(
            &g.model,
            n,
            sampling.temperature,
            sampling.max_notes,
            opts.seed,
        )?
        .into_iter()
        .map(|r| Output::whole(r, None))
        .collect();
        all.push(Outputs {
            name: "DCGAN".into(),
            rolls,
            recon_per_step: None,
        });
    }
    if let Some(clf) = &models.classifier {
        progress(0.45, "classifier ascent");
        let mut rolls = Vec::new();
        for c in (0..composers).filter(|&c| held[c]) {
            let a = ascent::ascend(
                clf,
                c,
                None,
                &AscentOptions {
                    steps,
                    iterations: opts.ascent_iterations,
                    seed: output_seed(opts.seed, c),
                    ..AscentOptions::default()
                },
                &mut |_| {},
                &cancel,
            )?;
            rolls.push(Output::whole(a.roll, Some(c)));
        }
        all.push(Outputs {
            name: "Classifier ascent".into(),
            rolls,
            recon_per_step: None,
        });
    }
    progress(0.6, "measuring");
    let figures = all
        .iter()
        .map(|o| {
            measure(
                o,
                &reference,
                &composer_pc,
                &held,
                models.classifier.as_ref(),
            )
        })
        .collect::<Result<Vec<_>>>()?;

    let style = match &models.classifier {
        Some(clf) => Some(style_verdict(
            lstm,
            clf,
            corpus,
            &split.valid,
            opts,
            progress,
        )?),
        None => None,
    };
    let classifier = match &models.classifier {
        Some(clf) => Some(classify::evaluate(
            clf,
            corpus,
            opts.per_composer * 2,
            &mut |_, _| {},
        )?),
        None => None,
    };
    progress(1.0, "done");
    Ok(Report {
        snippets: snippets.len(),
        style_strength: opts.style_strength,
        corpus_notes_per_step: corpus_notes,
        models: figures,
        style,
        classifier,
    })
}

fn style_verdict(
    lstm: &TrainedModel,
    clf: &Classifier,
    corpus: &Corpus,
    valid: &[usize],
    opts: &ReportOptions,
    progress: &mut dyn FnMut(f32, &str),
) -> Result<StyleVerdict> {
    let window = classify::window_steps(clf);
    let composers = corpus.composers.len();
    let cancel = AtomicBool::new(false);
    let mut v = StyleVerdict {
        blend_curve: vec![0.0; 8],
        ..StyleVerdict::default()
    };
    let mut rhos = Vec::new();
    let mut pairs = 0;
    for k in 0..opts.pairs {
        progress(
            0.7 + 0.25 * k as f32 / opts.pairs as f32,
            "transfers and blends",
        );
        let a = k % composers;
        let b = (a + 1 + k * 7) % composers;
        let b = if b == a { (a + 1) % composers } else { b };
        // A held-out piece of A long enough for a primer and a window of its continuation.
        let Some(&piece) = valid.iter().find(|&&p| {
            corpus.pieces[p].composer == a && corpus.pieces[p].roll.steps() >= 64 + window
        }) else {
            continue;
        };
        let source = &corpus.pieces[piece].roll;
        let source_pc = pitch_classes(&source.slice(64, window));
        let za = generate::composer_code(lstm, a, opts.style_strength)?;
        let zb = generate::composer_code(lstm, b, opts.style_strength)?;
        let run_for = |mode: Mode, alpha: f32, steps: usize, transition_steps: usize| {
            let g = generate::generate(
                &lstm.model,
                source,
                &za,
                &zb,
                &GenerateOptions {
                    mode,
                    steps,
                    primer_steps: 64,
                    alpha,
                    transition_steps,
                    seed: output_seed(opts.seed, k),
                    ..GenerateOptions::default()
                },
                &mut |_| {},
                &cancel,
            )?;
            Ok::<Output, Error>(Output::continuation(&g, steps, Some(b)))
        };
        let run = |mode: Mode, alpha: f32| run_for(mode, alpha, window, 0);
        // Judges `len` steps from `from` of an output, read in the bars it was generated in.
        let judge_part = |o: &Output, from: usize, len: usize| -> Result<Vec<f32>> {
            let part = o.roll.slice(from, len);
            let bars = (&o.bars.0[..], o.bars.1.saturating_add(from));
            Ok(classify::classify_roll_in(clf, &part, bars, window, window)?.overall)
        };
        let judge = |o: &Output| judge_part(o, 0, o.roll.steps());
        let transfer = run(Mode::Transfer, 1.0)?;
        let p = judge(&transfer)?;
        let best = (0..p.len())
            .max_by(|&x, &y| p[x].total_cmp(&p[y]))
            .unwrap_or(0);
        v.transfer_share += f64::from(u8::from(best == b));
        v.transfer_source_share += f64::from(u8::from(best == a));
        v.transfer_chroma_similarity += cosine(&pitch_classes(&transfer.roll), &source_pc);
        let own = run(Mode::Continue, 0.0)?;
        v.continuation_chroma_similarity += cosine(&pitch_classes(&own.roll), &source_pc);
        // A transition over one window, then a window at B's code: is that one judged B?
        let transition = run_for(Mode::Transition, 0.0, 2 * window, window)?;
        v.transition_chroma_similarity += cosine(
            &pitch_classes(&transition.roll.slice(0, window)),
            &source_pc,
        );
        let p = judge_part(&transition, window, window)?;
        let best = (0..p.len())
            .max_by(|&x, &y| p[x].total_cmp(&p[y]))
            .unwrap_or(0);
        v.transition_share += f64::from(u8::from(best == b));
        let mut alphas = Vec::new();
        let mut probs = Vec::new();
        for i in 0..8 {
            let alpha = i as f32 / 7.0;
            let p = judge(&run(Mode::Blend, alpha)?)?[b] as f64;
            v.blend_curve[i] += p;
            alphas.push(alpha as f64);
            probs.push(p);
        }
        // A P(B) that does not move along the blend (saturated, say) has no rank order.
        rhos.extend(crate::correlation::spearman(&alphas, &probs));
        pairs += 1;
    }
    let n = pairs.max(1) as f64;
    v.transfer_share /= n;
    v.transfer_source_share /= n;
    v.transfer_chroma_similarity /= n;
    v.continuation_chroma_similarity /= n;
    v.transition_share /= n;
    v.transition_chroma_similarity /= n;
    v.blend_curve.iter_mut().for_each(|p| *p /= n);
    v.blend_spearman = (!rhos.is_empty()).then(|| rhos.iter().sum::<f64>() / rhos.len() as f64);
    v.blend_spearman_pairs = rhos.len();
    v.pairs = pairs;
    Ok(v)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.digits$}"))
}

/// A model's outputs measured, and how many were silent.
fn outputs(m: &ModelFigures) -> String {
    match m.silent_outputs {
        0 => m.outputs.to_string(),
        silent => format!("{} ({silent} silent)", m.outputs),
    }
}

/// Writes `report.md` and its PNG charts into `dir`.
/// The first line of every report page: how an earlier report in a folder is told from
/// someone's own `report.md`.
const REPORT_TITLE: &str = "# Segue evaluation report\n";

/// Refuses a folder whose `report.md` is not a Segue report (someone's own page, which a
/// report would replace); an earlier report there is replaced, as asked. Says whether there
/// is one.
pub fn check_report_folder(dir: &Path) -> Result<bool> {
    let page = dir.join("report.md");
    match std::fs::File::open(&page) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(&page, "reading", e)),
        Ok(file) => {
            use std::io::Read;
            let mut start = Vec::new();
            (file.take(REPORT_TITLE.len() as u64))
                .read_to_end(&mut start)
                .map_err(|e| Error::io(&page, "reading", e))?;
            if start == REPORT_TITLE.as_bytes() {
                Ok(true)
            } else {
                Err(Error::format(
                    &page,
                    "not a Segue report: it is not replaced; choose another folder (--out)",
                ))
            }
        }
    }
}

/// Writes `report` into `dir`: `report.md` with its PNG plots, and `report.json`; the page
/// says it was made by `command`.
pub fn write_report(report: &Report, dir: &Path, command: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating", e))?;
    let earlier = check_report_folder(dir)?;
    let mut md = String::new();
    md.push_str(REPORT_TITLE);
    md.push('\n');
    md.push_str(&format!(
        "Made by `{command}`. Reconstruction, the corpus's notes per step and the LSTM-VAE's primers come from held-out pieces (never seen in training): {} snippets of 128 steps. Every model's outputs are compared with the target composers' training pieces (pitch classes, and as many snippets for the overlapping areas), so that no output meets the piece its primer came from, and every model meets the same music. Generative models sample at temperature {} (the default) with at most {} notes a step.\n\n",
        report.snippets,
        generate::DEFAULT_TEMPERATURE,
        GenerateOptions::default().max_notes
    ));
    md.push_str("## Models\n\n| Model | Recon BCE / step | Notes / sounding step | PC overlap with target | P(target) | Classified as target | OA pitch classes | OA pitch count | OA IOI | OA note length | Outputs |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for m in &report.models {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} |\n",
            m.name,
            opt(m.recon_per_step, 3),
            opt(m.notes_per_step, 2),
            m.pitch_class_overlap,
            opt(m.target_probability, 3),
            opt(m.target_share, 3),
            opt(m.overlap_areas[0], 3),
            opt(m.overlap_areas[1], 3),
            opt(m.overlap_areas[2], 3),
            opt(m.overlap_areas[3], 3),
            outputs(m)
        ));
    }
    md.push_str(&format!(
        "| Corpus (held-out) | | {} | | | | | | | | |\n\n",
        opt(report.corpus_notes_per_step, 2)
    ));
    let recon: Vec<&ModelFigures> = report
        .models
        .iter()
        .filter(|m| m.recon_per_step.is_some())
        .collect();
    if recon.len() == 2 {
        let (l, t) = (
            recon[0].recon_per_step.unwrap_or(0.0),
            recon[1].recon_per_step.unwrap_or(1.0),
        );
        md.push_str(&format!(
            "The LSTM-VAE's reconstruction BCE is {:.0} % lower than the Transformer VAE's (the paper found 50-55 %).\n\n",
            100.0 * (1.0 - l / t)
        ));
    }
    md.push_str("Notes: reconstruction is teacher-forced for the LSTM-VAE and whole-snippet for the Transformer VAE, both with z = posterior mean. PC overlap is the histogram intersection of pitch-class histograms (1 = identical). OA = overlapping area of Yang and Lerch (2018), computed as their code (mgeval) does: the overlap of the distribution of distances between generated and real snippets of the target composer with the distribution of distances among the real snippets themselves (Gaussian kernel densities, Scott's bandwidth, over the range of the distances; 1 = indistinguishable); both sides are read from binary cells (a note held on is one note); note lengths are mgeval's 12-class histogram (whole to 8th-note triplet, each note counted for the nearest length in a 4/4 bar of 16 steps), inter-onset intervals each snippet's mean (mgeval's `avg_IOI`). The DCGAN is unconditional: its target is the whole corpus.\n\nThe DCGAN's PC overlap is against the mean of all the composers' histograms, which is nearly flat, so noise spread over all twelve pitch classes scores high there. Two features differ from mgeval's: inter-onset intervals are taken between distinct onsets (mgeval's `avg_IOI` also counts the zero intervals within a chord), and pitch-class histograms count note starts (mgeval weighs its histogram by duration and velocity).\n\n");
    let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
    let legend = |names: &[&str]| -> String {
        const COLOURS: [&str; 8] = [
            "orange",
            "sky blue",
            "green",
            "yellow",
            "blue",
            "vermilion",
            "pink",
            "grey",
        ];
        names
            .iter()
            .zip(COLOURS)
            .map(|(n, c)| format!("{c} = {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let notes: Vec<Vec<f64>> = vec![
        report
            .models
            .iter()
            .map(|m| m.notes_per_step.unwrap_or(0.0))
            .chain([report.corpus_notes_per_step.unwrap_or(0.0)])
            .collect(),
    ];
    let max_notes = notes[0].iter().cloned().fold(1.0, f64::max);
    fsutil::write_atomic(
        &dir.join("notes-per-step.png"),
        &plot::bars(&notes, max_notes * 1.1)?,
    )?;
    md.push_str(&format!(
        "![notes per step](notes-per-step.png)\n\nNotes per sounding step (y from 0 to {:.1}): {}.\n\n",
        max_notes * 1.1,
        legend(&[names.as_slice(), &["corpus"]].concat())
    ));
    let oa: Vec<Vec<f64>> = (0..4)
        .map(|k| {
            (report.models.iter())
                .map(|m| m.overlap_areas[k].unwrap_or(0.0))
                .collect()
        })
        .collect();
    fsutil::write_atomic(&dir.join("overlap-areas.png"), &plot::bars(&oa, 1.0)?)?;
    md.push_str(&format!(
        "![overlapping areas](overlap-areas.png)\n\nOverlapping areas (y from 0 to 1) in four groups: pitch-class histogram, pitch count, inter-onset interval, note length; {}.\n\n",
        legend(&names)
    ));
    if let Some(s) = &report.style {
        md.push_str(&format!(
            "## Style: the classifier's verdict on the LSTM-VAE ({} composer pairs)\n\n| Figure | Value |\n|---|---|\n| Transfers classified as the target B | {:.3} |\n| Transfers still classified as the source A | {:.3} |\n| Chroma similarity of transfers to the source's continuation | {:.3} |\n| Chroma similarity of plain continuations (A's own z) | {:.3} |\n| Transitions (A to B over one window) whose next window, at B, is classified as B | {:.3} |\n| Chroma similarity of the transition window to the source's continuation | {:.3} |\n| Spearman correlation of blend amount and P(B), 8 steps | {} |\n\n",
            s.pairs,
            s.transfer_share,
            s.transfer_source_share,
            s.transfer_chroma_similarity,
            s.continuation_chroma_similarity,
            s.transition_share,
            s.transition_chroma_similarity,
            match s.blend_spearman {
                Some(rho) if s.blend_spearman_pairs < s.pairs => format!(
                    "{rho:.3} (the {} pairs whose P(B) moved)",
                    s.blend_spearman_pairs
                ),
                rho => opt(rho, 3),
            }
        ));
        let max = s.blend_curve.iter().cloned().fold(0.05, f64::max) * 1.2;
        fsutil::write_atomic(
            &dir.join("blend-curve.png"),
            &plot::lines(std::slice::from_ref(&s.blend_curve), max)?,
        )?;
        md.push_str(&format!(
            "![P(B) along the blend](blend-curve.png)\n\nMean P(B) along the A -> B blend (x: alpha 0 to 1 in 8 steps; y: 0 to {max:.2}): {}.\n\n",
            s.blend_curve.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(c) = &report.classifier {
        md.push_str(&format!(
            "## Composer classifier on held-out pieces\n\n{} snippets of {} held-out pieces: accuracy {:.3}, top-3 {:.3}; whole pieces {:.3} (by composer, each composer counted once: {:.3}); chance {:.3}.\n\n![confusion](confusion.png)\n\nConfusion matrix (rows: true composer, columns: predicted; blue diagonal = right, red = wrong, darker = larger share of the row), in the order {}.\n\n",
            c.snippets,
            c.pieces,
            c.accuracy,
            c.top3,
            c.piece_accuracy,
            c.piece_balanced_accuracy,
            1.0 / c.composers.len().max(1) as f64,
            c.composers.join(", ")
        ));
        fsutil::write_atomic(&dir.join("confusion.png"), &plot::heatmap(&c.confusion)?)?;
    }
    // The figures first, the page that quotes them last: a write that fails between them
    // never leaves a new page over old figures.
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    fsutil::write_atomic(&dir.join("report.json"), &json)?;
    fsutil::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    // An earlier report's plots of sections this one has not go with it, once the new page
    // (which does not show them) is in place; a folder without a report keeps its pictures.
    if earlier {
        for (plot, kept) in [
            ("blend-curve.png", report.style.is_some()),
            ("confusion.png", report.classifier.is_some()),
        ] {
            let path = dir.join(plot);
            if !kept && path.is_file() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, "removing", e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::RollNote;

    /// Each note counts for the nearest of mgeval's twelve lengths (the first of two as
    /// near); snippets differ by the Euclidean distance of their shares.
    #[test]
    fn note_lengths_fall_in_mgevals_classes() {
        // 1: 16th; 2: 8th; 3: dotted 8th; 5: half-note triplet (5.33); 7: as near 8 as 6,
        // the half note (listed first); 40: whole.
        let h = note_length_histogram([1, 2, 3, 5, 7, 40].into_iter()).unwrap();
        let sixth = 1.0 / 6.0;
        assert_eq!(
            h,
            [
                sixth, sixth, 0.0, sixth, sixth, 0.0, 0.0, sixth, 0.0, sixth, 0.0, 0.0
            ]
        );
        assert_eq!(note_length_histogram(std::iter::empty()), None);
        let snippet = |len: usize| {
            let mut roll = Roll::new(32);
            roll.add_note(RollNote {
                start: 0,
                len,
                pitch: 60,
                velocity: 80,
            });
            features(&roll)
        };
        let (quarter, half) = (snippet(4), snippet(8));
        assert_eq!(feature_distance(&quarter, &quarter, 3), Some(0.0));
        let apart = feature_distance(&quarter, &half, 3).unwrap();
        assert!((apart - 2f64.sqrt()).abs() < 1e-12, "{apart}");
        assert_eq!(
            feature_distance(&quarter, &features(&Roll::new(8)), 3),
            None
        );
    }

    #[test]
    fn a_continuation_is_placed_in_the_bars_it_was_generated_in() {
        // Primed at step 17 of a 3/4 piece with 8 primer steps: the roll returned starts its
        // bars afresh, the generated steps lie at step 25 of the piece's.
        let waltz = StepMeter {
            step: 0,
            meter: crate::midi::Meter {
                numerator: 3,
                denominator: 4,
            },
        };
        let mut roll = Roll::new(40);
        roll.set_meters(vec![waltz]);
        let g = Generated {
            roll,
            primer_steps: 8,
            bars: (vec![waltz], 17),
        };
        let o = Output::continuation(&g, 32, Some(2));
        assert_eq!((o.roll.steps(), o.target), (32, Some(2)));
        assert_eq!(o.bars, (vec![waltz], 25));
        let whole = Output::whole(g.roll.clone(), None);
        assert_eq!(whole.bars, (vec![waltz], 0));
    }

    #[test]
    fn a_silent_model_scores_no_intervals_or_lengths() {
        // Real snippets of one composer: a note every 4 steps, 2 or 3 steps long.
        let real: Vec<(Roll, usize)> = (2..5)
            .map(|len| {
                let notes: Vec<RollNote> = (0..8)
                    .map(|k| RollNote {
                        start: 4 * k,
                        len,
                        pitch: 60 + k as u8,
                        velocity: 80,
                    })
                    .collect();
                (Roll::from_notes(32, &notes, Vec::new()), 0)
            })
            .collect();
        let mut pc = [0.0; 12];
        pc[0] = 1.0;
        let silent = Outputs {
            name: "silent".into(),
            rolls: (0..3)
                .map(|_| Output::whole(Roll::new(32), Some(0)))
                .collect(),
            recon_per_step: None,
        };
        let f = measure(&silent, &real, &[pc], &[true], None).unwrap();
        assert_eq!((f.outputs, f.silent_outputs), (3, 3));
        assert_eq!(f.notes_per_step, None);
        assert_eq!(f.pitch_class_overlap, 0.0);
        // Silence has no onsets to space or notes to measure: nothing to compare, where an
        // interval and a length of 0 would have been compared as figures.
        assert_eq!(f.overlap_areas[2], None);
        assert_eq!(f.overlap_areas[3], None);
        // Its pitch count (0) is a figure, far from the real snippets' 8.
        assert!(f.overlap_areas[1].unwrap() < 0.01, "{:?}", f.overlap_areas);
        let md_outputs = outputs(&f);
        assert_eq!(md_outputs, "3 (3 silent)");
    }

    #[test]
    fn reports_of_nearby_seeds_share_no_output_seed() {
        let of = |seed: u64| -> std::collections::HashSet<u64> {
            (0..64).map(|k| output_seed(seed, k)).collect()
        };
        assert_eq!(of(1).len(), 64);
        for other in [0, 2, 3, 64, u64::MAX] {
            assert!(of(1).is_disjoint(&of(other)), "seeds 1 and {other}");
        }
        // The mix is SplitMix64's: its first output from state 0, the published value, so a
        // report's outputs stay those of its seed from one version to the next.
        assert_eq!(output_seed(0, 1), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn overlap_area_of_same_and_distant_samples() {
        let a: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
        // mgeval's figures (scipy's bandwidth, integrated over the samples' range), computed
        // independently with numpy on a 200 001-point grid.
        let close = |x: f64, y: f64| (x - y).abs() < 1e-3;
        assert!(close(overlap_area(&a, &a).unwrap(), 0.88342));
        let x = [0.0, 1.0, 2.0, 3.0];
        assert!(close(
            overlap_area(&x, &[1.0, 2.0, 3.0, 4.0]).unwrap(),
            0.67276
        ));
        let y = [0.5, 1.0, 1.5, 4.0, 2.0];
        assert!(close(overlap_area(&y, &[2.0, 2.5, 6.0]).unwrap(), 0.56022));
        assert!(close(overlap_area(&[2.0; 3], &[2.0; 5]).unwrap(), 1.0));
        let far: Vec<f64> = a.iter().map(|v| v + 100.0).collect();
        assert!(overlap_area(&a, &far).unwrap() < 0.01);
        // Nothing to compare is not "no overlap".
        assert_eq!(overlap_area(&a, &[]), None);
    }
}
