//! Music from a trained LSTM-VAE: continuation, style transfer, transitions and blends.
//!
//! Every mode primes the decoder with the start of a song, then samples one step at a time
//! (Bernoulli per pitch, fed back). The modes differ only in the code z the decoder sees at
//! each step:
//! - continue: z of A throughout (A is a composer, or the primer itself);
//! - transfer: z of B throughout (the primer is song A);
//! - transition: z moves from A to B over `transition_steps` (linearly or along the sphere);
//! - blend: the fixed mix `alpha` of A and B (the studio's slider).
//!
//! A composer's z is the mean of its training snippets' codes, stored in the model's manifest,
//! so generation needs no corpus. The same seed gives the same music on the same kind of CPU
//! (where fused multiply-add is missing, logits differ in their last bits, which can flip a
//! rare draw).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::meter::StepMeter;
use crate::models::lstm_vae::LstmVae;
use crate::models::step_decoder::StepDecoder;
use crate::models::trained::{self, TrainedModel};
use crate::roll::{MAX_STEPS, PITCHES, Roll};

/// How the code moves over the generated steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// z of A.
    Continue,
    /// z of B, primed with song A.
    Transfer,
    /// From A to B over `transition_steps`.
    Transition,
    /// The mix `alpha` of A and B.
    Blend,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "continue" => Ok(Mode::Continue),
            "transfer" => Ok(Mode::Transfer),
            "transition" => Ok(Mode::Transition),
            "blend" => Ok(Mode::Blend),
            other => Err(Error::InvalidArgument(format!(
                "unknown mode `{other}` (continue, transfer, transition, blend)"
            ))),
        }
    }
}

/// How to mix two codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Interpolation {
    /// (1 - t) a + t b.
    Linear,
    /// Along the great circle, with the norm interpolated linearly (keeps codes at the
    /// typical distance from the origin).
    Spherical,
}

/// Controls of one generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerateOptions {
    /// Which code each step gets.
    pub mode: Mode,
    /// Steps to generate after the primer.
    pub steps: usize,
    /// Steps of the primer to prime with (fewer if the primer is shorter).
    pub primer_steps: usize,
    /// The step of the primer roll priming starts at (0 = its start; past its end = an empty
    /// primer): a primer taken from the middle of a piece, given as the whole piece, keeps the
    /// piece's bar lines for the model (a roll sliced from it would count bars from the cut).
    /// The roll returned starts at the cut, its bars counted from there as
    /// [`Roll::slice`] counts them. (Options written before it read as 0.)
    #[serde(default)]
    pub primer_start: usize,
    /// Sampling temperature: logits are divided by it (1 = the model's own probabilities).
    pub temperature: f32,
    /// At most this many notes sound in a step (the most probable are kept).
    pub max_notes: usize,
    /// Blend amount (0 = A, 1 = B).
    pub alpha: f32,
    /// Transition length in steps (0 = all generated steps).
    pub transition_steps: usize,
    /// How codes are mixed.
    pub interpolation: Interpolation,
    /// Seed of the sampling.
    pub seed: u64,
}

/// The default sampling temperature. At 1 the shipped LSTM-VAE's continuations are denser
/// than the music it learned from (3.4 notes per sounding step and 4.5 onsets per beat against
/// the held-out corpus's 3.2 and 4.1); at 0.95 they match it (3.1 and 4.0); at 0.9 they are a
/// little thinner (2.8 and 3.4), inside the paper's 2-3 notes per step (`segue eval lstm-vae
/// --temperature T`). Lower makes them sparser still.
pub const DEFAULT_TEMPERATURE: f32 = 0.9;

impl GenerateOptions {
    /// The steps a transition takes: `transition_steps`, or all the generated steps if 0.
    pub fn transition_length(&self) -> usize {
        match self.transition_steps {
            0 => self.steps,
            n => n,
        }
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            mode: Mode::Continue,
            steps: 256,
            primer_steps: 64,
            primer_start: 0,
            temperature: DEFAULT_TEMPERATURE,
            max_notes: 8,
            alpha: 0.5,
            transition_steps: 0,
            interpolation: Interpolation::Spherical,
            seed: 1,
        }
    }
}

/// A generated piece: the primer's steps followed by the new ones.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Primer + generated steps.
    pub roll: Roll,
    /// How many of the first steps are the primer.
    pub primer_steps: usize,
    /// Where the roll's step 0 lies in the bars it was generated in: a metre map and a step
    /// of it. A roll primed from the middle of a piece starts its own bars afresh (as a
    /// slice does), but the model read the piece's: its map up to the primer's end, from the
    /// primer's first step.
    pub bars: (Vec<StepMeter>, usize),
}

impl Generated {
    /// Whether the generated part holds no note at all (a temperature far below 1 can make
    /// one: every pitch's chance falls under the draw).
    pub fn generated_part_is_silent(&self) -> bool {
        (self.primer_steps..self.roll.steps()).all(|t| (0..PITCHES).all(|p| !self.roll.is_on(t, p)))
    }

    /// Notes the generated part starts (one the primer holds on over the join is not one).
    pub fn generated_onsets(&self) -> usize {
        (self.primer_steps..self.roll.steps())
            .map(|t| (0..PITCHES).filter(|&p| self.roll.is_onset(t, p)).count())
            .sum()
    }

    /// Whether the generated part starts fewer notes than it has bars of 16 steps (one held
    /// note, a few, none): what a temperature well below 1 tends to make.
    pub fn generated_part_is_sparse(&self) -> bool {
        let steps = self.roll.steps().saturating_sub(self.primer_steps);
        steps > 0 && self.generated_onsets() * 16 < steps.max(16)
    }

    /// A roll generated in its own bars.
    pub fn new(roll: Roll, primer_steps: usize) -> Self {
        let bars = (roll.meters().to_vec(), 0);
        Generated {
            roll,
            primer_steps,
            bars,
        }
    }
}

/// Mixes codes `a` and `b` at `t` in [0, 1].
pub fn interpolate(a: &[f32], b: &[f32], t: f32, how: Interpolation) -> Vec<f32> {
    let t = t.clamp(0.0, 1.0);
    let linear = || a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    if how == Interpolation::Linear {
        return linear();
    }
    let na = a.iter().map(|v| v * v).sum::<f32>().sqrt();
    let nb = b.iter().map(|v| v * v).sum::<f32>().sqrt();
    if na < 1e-6 || nb < 1e-6 {
        return linear();
    }
    let cos = (a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let norm = na + t * (nb - na);
    if omega.sin().abs() < 1e-4 {
        if cos > 0.0 {
            return linear(); // the same direction
        }
        // Opposite directions: no great circle is singled out, and the straight line passes
        // through the origin. Turn through a direction at right angles to `a` instead.
        let side = orthogonal_unit(a, na);
        let angle = t * std::f32::consts::PI;
        return a
            .iter()
            .zip(&side)
            .map(|(x, u)| norm * (angle.cos() * x / na + angle.sin() * u))
            .collect();
    }
    let (wa, wb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    // Slerp of the unit directions, scaled by the linearly interpolated norm.
    a.iter()
        .zip(b)
        .map(|(x, y)| norm * (wa * x / na + wb * y / nb))
        .collect()
}

/// A unit vector at right angles to `a` (of norm `na` > 0): the axis where `a` is smallest,
/// with `a`'s part along it taken out.
fn orthogonal_unit(a: &[f32], na: f32) -> Vec<f32> {
    let k = (0..a.len())
        .min_by(|&i, &j| a[i].abs().total_cmp(&a[j].abs()))
        .unwrap_or(0);
    let along = a[k] / (na * na);
    let mut u: Vec<f32> = a.iter().map(|x| -along * x).collect();
    u[k] += 1.0;
    let nu = u
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    u.iter_mut().for_each(|v| *v /= nu);
    u
}

/// The default style strength of composer codes (see [`composer_code`]).
pub const DEFAULT_STYLE_STRENGTH: f32 = 1.0;

/// The code of a composer: the mean of its training snippets' codes, with what sets it apart
/// from the other composers' counted `strength` times ([`trained::style_code`]; 1 = the mean
/// itself).
pub fn composer_code(model: &TrainedModel, composer: usize, strength: f32) -> Result<Vec<f32>> {
    code_of_composer(&model.manifest.latents, composer, strength)
}

/// The code of composer `composer` among any VAE's stored `latents` at style strength
/// `strength` (checked), as [`composer_code`] gives it.
pub fn code_of_composer(
    latents: &[trained::LatentStats],
    composer: usize,
    strength: f32,
) -> Result<Vec<f32>> {
    check_style_strength(strength)?;
    trained::style_code(latents, composer, strength)
        .ok_or_else(|| Error::InvalidArgument(format!("no composer number {composer}")))
}

/// Checks a style strength: a number from 0 to [`MAX_STYLE_STRENGTH`].
pub fn check_style_strength(strength: f32) -> Result<()> {
    if (0.0..=MAX_STYLE_STRENGTH).contains(&strength) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "the style strength must be between 0 and {MAX_STYLE_STRENGTH}, not {strength}"
        )))
    }
}

/// The strongest style strength: further out, codes leave the region the decoder learned.
pub const MAX_STYLE_STRENGTH: f32 = 3.0;

/// The code of a song: the posterior mean of its first `steps` steps from the bar of its first
/// note (silent bars before it are no part of its style).
pub fn song_code(model: &TrainedModel, roll: &Roll, steps: usize) -> Result<Vec<f32>> {
    let start = roll.first_bar_with_notes();
    let steps = steps.clamp(1, (roll.steps() - start).max(1));
    let mut data = vec![0f32; steps * PITCHES];
    roll.window_f32(start, steps, &mut data);
    // On the model's device: a model loaded on the GPU encodes there.
    let x = Tensor::from_vec(data, (1, steps, PITCHES), model.model.device())?;
    let q = model.model.encode(&x)?;
    Ok(q.mean.squeeze(0)?.to_vec1::<f32>()?)
}

/// How many steps of a primer a continuation asked to hear `primer_steps` of is primed with:
/// the silent bars it opens with, if any (`first_bar`, from [`Roll::first_bar_with_notes`]),
/// so that a late entry or a count-in primes the model with music, not silence; then
/// `primer_steps` from that bar on, ending on the bar line nearest them, so that the model's
/// part starts on a downbeat in any metre (the default 64 steps are four bars of 4/4, five of
/// 3/4: 60). Less than a bar is heard as asked, and a primer whose notes end first
/// (`sounding_end`) is heard whole. `meters` is the primer's normalized metre map.
pub fn primer_steps_heard(
    meters: &[StepMeter],
    first_bar: usize,
    sounding_end: usize,
    primer_steps: usize,
) -> usize {
    // No primer heard: its silent bars are not heard either.
    if primer_steps == 0 {
        return 0;
    }
    let asked = first_bar + primer_steps;
    if asked >= sounding_end {
        return asked;
    }
    let bars = crate::meter::BarMap::new(meters);
    let before = asked - bars.steps_into_bar(asked);
    if before <= first_bar {
        return asked;
    }
    let after = bars.next_bar_line(asked).min(sounding_end);
    if after - asked < asked - before {
        after
    } else {
        before
    }
}

/// Checks sampling controls: the temperature must be a positive number and the note cap at
/// least 1 (a cap of 0 would generate silence).
pub fn check_sampling(temperature: f32, max_notes: usize) -> Result<()> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "temperature must be a positive number, not {temperature}"
        )));
    }
    if max_notes == 0 {
        return Err(Error::InvalidArgument(
            "the cap on notes per step must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Draws the pitches of one step: each sounds with probability sigmoid(logit / temperature);
/// if more than `max_notes` do, the most probable are kept. The pitches go to `order`.
pub fn sample_notes(
    logits: &[f32],
    temperature: f32,
    max_notes: usize,
    rng: &mut impl Rng,
    order: &mut Vec<usize>,
) {
    order.clear();
    for (k, l) in logits.iter().enumerate() {
        let p = 1.0 / (1.0 + (-l / temperature).exp());
        if rng.random::<f32>() < p {
            order.push(k);
        }
    }
    if order.len() > max_notes {
        order.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
        order.truncate(max_notes);
    }
}

/// The threads decoding runs on when asked from outside any rayon pool (the CLI, the studio's
/// generation thread): a pool of its own, sized like rayon's global one (`RAYON_NUM_THREADS`
/// or the cores), so that a thread of a generation waiting for its share of a product never
/// picks up a long job of the global pool (a training step running in the studio) meanwhile,
/// nor a training thread a generation. None if its threads could not be started.
fn decoding_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("segue-decode-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Generates from `primer` with codes `a` and `b` (see the module docs). `progress` gets the
/// share done, on the caller's thread; setting `cancel` stops the work with
/// [`Error::Cancelled`]. Called from outside a rayon pool, it blocks while the decoding runs on
/// its own pool's threads; called from inside one, it decodes there.
pub fn generate(
    model: &LstmVae,
    primer: &Roll,
    a: &[f32],
    b: &[f32],
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Generated> {
    let latent = model.config().latent;
    if a.len() != latent || b.len() != latent {
        return Err(Error::InvalidArgument(format!(
            "codes must have {latent} values"
        )));
    }
    check_sampling(opts.temperature, opts.max_notes)?;
    check_length(primer, opts)?;
    let pool = match rayon::current_thread_index() {
        None => decoding_pool(),
        Some(_) => None,
    };
    let Some(pool) = pool else {
        return decode(model, primer, a, b, opts, progress, cancel);
    };
    // Decoding runs on one of the pool's threads, so that each step's products are shared with
    // the others (a caller outside the pool would sleep and wake up at every product); the
    // progress comes back here, to the caller's thread.
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut result = None;
    let slot = &mut result;
    pool.in_place_scope(|scope| {
        scope.spawn(move |_| {
            let mut report = |share: f32| {
                let _ = sender.send(share);
            };
            *slot = Some(decode(model, primer, a, b, opts, &mut report, cancel));
        });
        for share in receiver {
            progress(share);
        }
    });
    // The scope has waited for the job, so the slot is filled (a panic there went on above).
    result.expect("the decoding job ran")
}

/// Generates from the start of a piece as `segue generate` and the studio do, in one call:
/// the piece is cut after its last note (trailing rests are not continued from) and heard from
/// the bar of its first note to the bar line nearest `opts.primer_steps` after it
/// ([`primer_steps_heard`]); style A is the piece's own code ([`song_code`] over the model's
/// snippet length) unless `a` is given, and B is A unless `b` is. The piece is heard from its
/// start: an `opts.primer_start` other than 0 is refused (give [`generate`] the primer then).
pub fn continue_piece(
    model: &TrainedModel,
    piece: &Roll,
    a: Option<&[f32]>,
    b: Option<&[f32]>,
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Generated> {
    if opts.primer_start != 0 {
        return Err(Error::InvalidArgument(format!(
            "a piece is continued from its start, not from step {}; give generate the primer",
            opts.primer_start
        )));
    }
    let primer = piece.up_to_last_note();
    let heard = primer_steps_heard(
        primer.meters(),
        primer.first_bar_with_notes(),
        primer.steps(),
        opts.primer_steps,
    );
    let own;
    let a = match a {
        Some(a) => a,
        None => {
            own = song_code(model, &primer, model.training_snippet_steps())?;
            &own
        }
    };
    let opts = GenerateOptions {
        primer_steps: heard,
        ..opts.clone()
    };
    generate(
        &model.model,
        &primer,
        a,
        b.unwrap_or(a),
        &opts,
        progress,
        cancel,
    )
}

/// Refuses a generation longer than the longest piece Segue reads (its primer's steps heard
/// and `opts.steps`), so that whatever it writes it can open again.
pub fn check_length(primer: &Roll, opts: &GenerateOptions) -> Result<()> {
    let heard = (opts.primer_steps).min(primer.steps().saturating_sub(opts.primer_start));
    if heard.saturating_add(opts.steps) > MAX_STEPS {
        return Err(Error::InvalidArgument(format!(
            "{heard} primer steps and {} generated would be more than the longest piece, \
             {MAX_STEPS} steps",
            opts.steps
        )));
    }
    Ok(())
}

/// The body of [`generate`], once its arguments are checked.
fn decode(
    model: &LstmVae,
    primer: &Roll,
    a: &[f32],
    b: &[f32],
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Generated> {
    let mut decoder = StepDecoder::new(model).map_err(|e| {
        let e = crate::error::candle_message(e);
        Error::InvalidArgument(format!("preparing the decoder: {e}"))
    })?;
    let code_at = |t: usize| code_for_step(a, b, opts, t);
    let start = opts.primer_start.min(primer.steps());
    let primer_steps = opts.primer_steps.min(primer.steps() - start);
    // The generated part goes on in the metre the primer's head ends in (as the roll
    // returned does): changes past the head are not the piece's any more (the metre in
    // force at its first step is, even when the head is empty).
    let head_meters: Vec<StepMeter> = (primer.meters().iter())
        .copied()
        .take_while(|m| m.step < start + primer_steps.max(1))
        .collect();
    let bars = model
        .config()
        .bar_positions(&head_meters, start, primer_steps + opts.steps);
    let mut z = code_at(0);
    decoder.reset(&z);
    let mut previous = vec![0f32; PITCHES];
    let mut logits = vec![0f32; PITCHES];
    let mut row = vec![0f32; PITCHES];
    for (s, &bar) in bars[..primer_steps].iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        decoder.step(&previous, &z, bar.into(), &mut logits);
        primer.window_f32(start + s, 1, &mut row);
        previous.copy_from_slice(&row);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // The generated part, preceded by the primer's last step so held notes are not re-struck.
    let mut binary = vec![0u8; (opts.steps + 1) * PITCHES];
    for (cell, v) in binary.iter_mut().zip(&previous) {
        *cell = u8::from(*v > 0.5);
    }
    let mut order: Vec<usize> = Vec::with_capacity(PITCHES);
    for t in 0..opts.steps {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if opts.mode == Mode::Transition || t == 0 {
            z = code_at(t);
        }
        decoder.step(&previous, &z, bars[primer_steps + t].into(), &mut logits);
        sample_notes(
            &logits,
            opts.temperature,
            opts.max_notes,
            &mut rng,
            &mut order,
        );
        previous.fill(0.0);
        let out = &mut binary[(t + 1) * PITCHES..(t + 2) * PITCHES];
        for &k in &order {
            previous[k] = 1.0;
            out[k] = 1;
        }
        if t % 16 == 0 {
            progress(t as f32 / opts.steps as f32);
        }
    }
    progress(1.0);
    let generated = Roll::from_binary(opts.steps + 1, &binary)?.slice(1, opts.steps);
    let mut roll = primer.slice(start, primer_steps);
    roll.continue_with(&generated);
    // `slice` starts the generated part's notes afresh; those the primer holds go on.
    roll.join_held_at(primer_steps);
    Ok(Generated {
        roll,
        primer_steps,
        bars: (head_meters, start),
    })
}

/// The code the LSTM-VAE's decoder hears at generated step `t`, A and B mixed as `opts.mode`
/// says: a transition is A at its first step and B at its last and after.
pub fn code_for_step(a: &[f32], b: &[f32], opts: &GenerateOptions, t: usize) -> Vec<f32> {
    match opts.mode {
        Mode::Continue => a.to_vec(),
        Mode::Transfer => b.to_vec(),
        Mode::Blend => interpolate(a, b, opts.alpha, opts.interpolation),
        Mode::Transition => {
            // A transition of one step is B from that step (it stayed on A).
            let frac = match opts.transition_length() {
                0 | 1 => 1.0,
                n => t as f32 / (n - 1) as f32,
            };
            interpolate(a, b, frac, opts.interpolation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_goes_from_a_to_b() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let opts = GenerateOptions {
            mode: Mode::Transition,
            steps: 20,
            transition_steps: 11,
            interpolation: Interpolation::Linear,
            ..GenerateOptions::default()
        };
        let at = |t| code_for_step(&a, &b, &opts, t);
        assert_eq!(at(0), a);
        assert_eq!(at(5), [0.5, 0.5]);
        assert_eq!(at(10), b);
        assert_eq!(at(19), b, "B after the transition");
        let one = GenerateOptions {
            transition_steps: 1,
            ..opts.clone()
        };
        assert_eq!(code_for_step(&a, &b, &one, 0), b);
    }

    #[test]
    fn a_silent_generated_part_is_told_from_a_silent_primer() {
        let mut cells = vec![0u8; 8 * PITCHES];
        cells[PITCHES + 60] = 1; // a note in the primer (steps 0..4)
        let quiet = Generated::new(Roll::from_binary(8, &cells).unwrap(), 4);
        assert!(quiet.generated_part_is_silent());
        cells[6 * PITCHES + 62] = 1;
        let heard = Generated::new(Roll::from_binary(8, &cells).unwrap(), 4);
        assert!(!heard.generated_part_is_silent());
    }

    #[test]
    fn a_generated_part_with_fewer_note_starts_than_bars_is_sparse() {
        // 8 primer steps, 32 generated: a note held over the join starts nothing.
        let mut cells = vec![0u8; 40 * PITCHES];
        for t in 4..40 {
            cells[t * PITCHES + 60] = 1;
        }
        let held = Generated::new(Roll::from_binary(40, &cells).unwrap(), 8);
        assert_eq!(held.generated_onsets(), 0);
        assert!(held.generated_part_is_sparse() && !held.generated_part_is_silent());
        cells[20 * PITCHES + 64] = 1;
        let one = Generated::new(Roll::from_binary(40, &cells).unwrap(), 8);
        assert_eq!(one.generated_onsets(), 1);
        assert!(one.generated_part_is_sparse());
        cells[30 * PITCHES + 67] = 1;
        let two = Generated::new(Roll::from_binary(40, &cells).unwrap(), 8);
        assert!(!two.generated_part_is_sparse(), "one start a bar");
    }
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Mean notes drawn per step from `logits` over many seeded draws.
    fn mean_notes(logits: &[f32], temperature: f32, max_notes: usize) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut order = Vec::new();
        let draws = 2000;
        (0..draws)
            .map(|_| {
                sample_notes(logits, temperature, max_notes, &mut rng, &mut order);
                order.len()
            })
            .sum::<usize>() as f64
            / draws as f64
    }

    #[test]
    fn interpolation_keeps_the_ends_and_the_spherical_one_keeps_the_norm() {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
        let a = [3.0f32, 0.0, 0.0];
        let b = [0.0f32, 4.0, 0.0];
        for how in [Interpolation::Linear, Interpolation::Spherical] {
            assert!(close(&interpolate(&a, &b, 0.0, how), &a));
            assert!(close(&interpolate(&a, &b, 1.0, how), &b));
        }
        assert!(close(
            &interpolate(&a, &b, 0.5, Interpolation::Linear),
            &[1.5, 2.0, 0.0]
        ));
        // Spherical: halfway along the quarter circle, at the mean norm 3.5.
        let mid = interpolate(&a, &b, 0.5, Interpolation::Spherical);
        let h = 3.5 * std::f32::consts::FRAC_1_SQRT_2;
        assert!(close(&mid, &[h, h, 0.0]), "{mid:?}");
        assert!((norm(&mid) - 3.5).abs() < 1e-5, "{mid:?}");
        // Opposite codes: the path keeps its norm instead of crossing the origin.
        let neg = [-3.0f32, 0.0, 0.0];
        for t in [0.25, 0.5, 0.75] {
            let v = interpolate(&a, &neg, t, Interpolation::Spherical);
            assert!((norm(&v) - 3.0).abs() < 1e-4, "{t}: {v:?}");
        }
        assert!(close(
            &interpolate(&a, &neg, 1.0, Interpolation::Spherical),
            &neg
        ));
        // A zero code falls back to the straight line.
        let zero = [0.0f32; 3];
        assert!(close(
            &interpolate(&zero, &b, 0.5, Interpolation::Spherical),
            &[0.0, 2.0, 0.0]
        ));
    }

    #[test]
    fn sampling_controls_are_checked() {
        assert!(check_sampling(DEFAULT_TEMPERATURE, 8).is_ok());
        for (t, cap) in [
            (0.0, 8),
            (-1.0, 8),
            (f32::NAN, 8),
            (f32::INFINITY, 8),
            (1.0, 0),
        ] {
            let err = check_sampling(t, cap).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{t} {cap}: {err}");
        }
    }

    #[test]
    fn temperature_and_cap_shape_the_notes_drawn() {
        // Two likely notes (p = 0.88) among 126 unlikely ones (p = 0.018 each at temperature 1).
        let mut logits = vec![-4.0f32; PITCHES];
        logits[60] = 2.0;
        logits[64] = 2.0;
        let at_one = mean_notes(&logits, 1.0, PITCHES);
        let expected = 2.0 * 0.8808 + 126.0 * 0.01799;
        assert!((at_one - expected).abs() < 0.15, "{at_one} vs {expected}");
        // Below 1 the unlikely notes fade faster than the likely ones gain.
        let cooler = mean_notes(&logits, DEFAULT_TEMPERATURE, PITCHES);
        assert!(cooler < at_one - 0.3, "{cooler} vs {at_one}");
        // The cap keeps the most probable: two near-certain notes among many likely ones.
        let mut crowded = vec![1.0f32; PITCHES];
        crowded[60] = 12.0;
        crowded[64] = 11.0;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut order = Vec::new();
        for _ in 0..50 {
            sample_notes(&crowded, 1.0, 2, &mut rng, &mut order);
            assert_eq!(order, [60, 64]);
        }
    }
}
