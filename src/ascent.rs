//! Music from the composer classifier by gradient ascent on the input roll, as the paper did:
//! start from noise (or a given roll), raise the log-probability of a target composer with
//! penalties on loudness (L2) and on changes between neighbouring steps (continuity), then keep
//! the strongest 2-3 notes per step. The paper found the result sounds like noise; it is here
//! for completeness and as a comparison.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{D, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::classify::Classifier;
use crate::error::{Error, Result};
use crate::meter::WindowBars;
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};

/// Controls of the ascent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AscentOptions {
    /// Length of the roll in steps (the ascent runs on whole tokens of the classifier).
    pub steps: usize,
    /// Gradient steps.
    pub iterations: usize,
    /// Adam learning rate on the roll's logits.
    pub learning_rate: f64,
    /// Weight of the L2 penalty on the roll.
    pub l2: f64,
    /// Weight of the penalty on squared changes between neighbouring steps.
    pub continuity: f64,
    /// The most notes kept per step after the ascent (the paper thresholded to 2-3).
    pub notes_per_step: usize,
    /// The notes kept per step whatever their values (the strongest), at most
    /// `notes_per_step`.
    pub min_notes: usize,
    /// A note past the first `min_notes` of its step is kept only if its value (a sigmoid)
    /// is at least this. None: the median over the roll's steps of their strongest value past
    /// the first `min_notes`, so that about half the steps keep one note more (2-3 notes a
    /// step by default, as the paper thresholded; the ascended values sit near 0.5, where the
    /// L2 penalty holds them, so no fixed level does that for every roll).
    pub min_level: Option<f32>,
    /// Seed of the starting noise.
    pub seed: u64,
}

impl Default for AscentOptions {
    fn default() -> Self {
        AscentOptions {
            steps: 128,
            iterations: 200,
            learning_rate: 0.05,
            l2: 1e-3,
            continuity: 1e-2,
            notes_per_step: 3,
            min_notes: 2,
            min_level: None,
            seed: 1,
        }
    }
}

/// The result of an ascent.
#[derive(Debug, Clone)]
pub struct Ascended {
    /// The thresholded roll.
    pub roll: Roll,
    /// The classifier's composer probabilities for the starting roll: the roll given, read
    /// as notes (as `segue classify` reads it), else the noise the ascent starts from.
    pub start_probabilities: Vec<f32>,
    /// The target's probability for the ascended (continuous) roll.
    pub ascended_probability: f32,
    /// The target's probability for the thresholded roll (as the classifier read it: whole
    /// tokens, so a length that is not a whole number of tokens is judged with its last
    /// token filled out).
    pub thresholded_probability: f32,
}

/// The pitches of each step of the ascended roll `rows` that are kept: its strongest
/// `min_notes`, then those past them that reach the level ([`AscentOptions::min_level`], by
/// default taken over the first `opts.steps` rows, those returned), at most `notes_per_step`.
fn kept_notes(rows: &[Vec<f32>], opts: &AscentOptions) -> Vec<Vec<usize>> {
    let ordered: Vec<Vec<usize>> = (rows.iter())
        .map(|row| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order
        })
        .collect();
    let level = opts.min_level.unwrap_or_else(|| {
        let mut next: Vec<f32> = (rows.iter().zip(&ordered))
            .take(opts.steps)
            .filter_map(|(row, order)| Some(row[*order.get(opts.min_notes)?]))
            .collect();
        next.sort_by(f32::total_cmp);
        next.get(next.len() / 2).copied().unwrap_or(f32::INFINITY)
    });
    (rows.iter().zip(ordered))
        .map(|(row, order)| {
            (order.into_iter().enumerate())
                .take_while(|&(i, p)| i < opts.min_notes || row[p] >= level)
                .take(opts.notes_per_step)
                .map(|(_, p)| p)
                .collect()
        })
        .collect()
}

fn probabilities(clf: &Classifier, x: &Tensor, bars: &WindowBars) -> Result<Vec<f32>> {
    let p = candle_nn::ops::softmax(&clf.model.forward(x, bars)?, D::Minus1)?;
    let p = p.squeeze(0)?.to_vec1::<f32>()?;
    crate::classify::check_numbers(clf, &p)?;
    Ok(p)
}

/// Runs the ascent towards composer `target` from `start` (or from seeded noise).
pub fn ascend(
    clf: &Classifier,
    target: usize,
    start: Option<&Roll>,
    opts: &AscentOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Ascended> {
    if target >= clf.config.classes {
        return Err(Error::InvalidArgument(format!(
            "no composer number {target}"
        )));
    }
    if opts.steps == 0 || opts.notes_per_step == 0 {
        return Err(Error::InvalidArgument(
            "classifier ascent needs at least 1 step and 1 note per step".into(),
        ));
    }
    // The classifier reads whole tokens: the ascent runs on whole tokens, the roll returned
    // has the length asked for.
    let patch = clf.config.patch_steps;
    let steps = opts.steps.div_ceil(patch) * patch;
    if steps > clf.config.max_steps() {
        let rounded = match steps == opts.steps {
            true => String::new(),
            false => format!(" ({steps} in whole tokens of {patch})"),
        };
        return Err(Error::InvalidArgument(format!(
            "{} steps{rounded} is longer than the classifier's window of {} steps: ask for at \
             most that many",
            opts.steps,
            clf.config.max_steps()
        )));
    }
    let device = clf.model_device();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // The roll given, as the classifier reads it (notes 0/1), if there is one.
    let given: Option<Vec<f32>> = start.map(|roll| {
        let mut data = vec![0f32; steps * PITCHES];
        roll.window_f32(0, steps, &mut data);
        data
    });
    let init: Vec<f32> = match &given {
        Some(data) => data
            .iter()
            .map(|v| if *v > 0.5 { 2.0 } else { -2.0 })
            .collect(),
        None => (0..steps * PITCHES)
            .map(|_| rng.random_range(-3.0f32..-1.0))
            .collect(),
    };
    let logits = Var::from_tensor(&Tensor::from_vec(init, (1, steps, PITCHES), &device)?)?;
    // The bars of the piece ascended from (4/4 from noise), as a model told the metre reads them.
    let bars = WindowBars::new(steps, [(start.map_or(&[][..], |r| r.meters()), 0)]);
    // The verdict on the start: the roll given as `segue classify` reads it (not its soft
    // version the ascent moves), else the noise the ascent starts from.
    let before = match given {
        Some(data) => probabilities(
            clf,
            &Tensor::from_vec(data, (1, steps, PITCHES), &device)?,
            &bars,
        )?,
        None => probabilities(clf, &candle_nn::ops::sigmoid(logits.as_tensor())?, &bars)?,
    };
    let mut adam = Adam::new(vec![("roll".into(), logits.clone())], opts.learning_rate)?;
    let labels = Tensor::new(&[target as u32], &device)?;
    for i in 0..opts.iterations {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let x = candle_nn::ops::sigmoid(logits.as_tensor())?;
        let class = candle_nn::loss::cross_entropy(&clf.model.forward(&x, &bars)?, &labels)?;
        let l2 = x.sqr()?.sum_all()?;
        let diff = (x.narrow(1, 1, steps - 1)? - x.narrow(1, 0, steps - 1)?)?;
        let continuity = diff.sqr()?.sum_all()?;
        let loss = ((class + (l2 * opts.l2)?)? + (continuity * opts.continuity)?)?;
        adam.apply(&loss.backward()?, 1e6)?;
        if i % 10 == 0 {
            progress(i as f32 / opts.iterations.max(1) as f32);
        }
    }
    let ascended = candle_nn::ops::sigmoid(logits.as_tensor())?;
    let ascended_probability = probabilities(clf, &ascended, &bars)?[target];
    let values = ascended.squeeze(0)?.to_vec2::<f32>()?;
    let mut binary = vec![0u8; steps * PITCHES];
    for (t, kept) in kept_notes(&values, opts).into_iter().enumerate() {
        for p in kept {
            binary[t * PITCHES + p] = 1;
        }
    }
    let mut roll = Roll::from_binary(steps, &binary)?.slice(0, opts.steps);
    // Ascended from a piece, the result keeps its tempo, metre and key.
    if let Some(start) = start {
        let start = start.slice(0, opts.steps);
        roll.set_tempo(start.tempo().to_vec());
        roll.set_meters(start.meters().to_vec());
        roll.set_keys(start.keys().to_vec());
    }
    let x: Vec<f32> = binary.iter().map(|&v| v as f32).collect();
    let x = Tensor::from_vec(x, (1, steps, PITCHES), &device)?;
    let thresholded = probabilities(clf, &x, &bars)?;
    progress(1.0);
    Ok(Ascended {
        roll,
        start_probabilities: before,
        ascended_probability,
        thresholded_probability: thresholded[target],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each step keeps its two strongest notes, and a third where it reaches the level: by
    /// default the median of the steps' third-strongest values, so about half the steps.
    #[test]
    fn a_step_keeps_two_or_three_notes() {
        let step = |third: f32| {
            let mut row = vec![0.1f32; PITCHES];
            (row[60], row[64], row[67], row[72]) = (0.9, 0.8, third, third - 0.01);
            row
        };
        let rows: Vec<Vec<f32>> = [0.3, 0.6, 0.5, 0.2].into_iter().map(step).collect();
        let opts = AscentOptions::default();
        let kept = kept_notes(&rows, &opts);
        // The level is the median third value, 0.5: the steps of 0.6 and 0.5 keep three.
        assert_eq!(kept[0], [60, 64]);
        assert_eq!(kept[1], [60, 64, 67]);
        assert_eq!(kept[2], [60, 64, 67]);
        assert_eq!(kept[3], [60, 64]);
        // Over the steps returned only (here the first two: the level is 0.6).
        let two = AscentOptions {
            steps: 2,
            ..opts.clone()
        };
        assert_eq!(kept_notes(&rows, &two)[2], [60, 64]);
        let fixed = AscentOptions {
            min_level: Some(0.55),
            ..opts.clone()
        };
        assert_eq!(kept_notes(&rows, &fixed)[2], [60, 64]);
        let one = AscentOptions {
            notes_per_step: 1,
            ..opts.clone()
        };
        assert!(kept_notes(&rows, &one).iter().all(|k| k == &[60]));
    }
}
