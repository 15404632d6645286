//! The Transformer VAE in use: training (on the shared loop, with the LSTM-VAE's defences
//! against posterior collapse: an annealed KL weight and free bits), loading, and generation.
//!
//! It decodes a whole snippet from one z, so generation works snippet by snippet; each
//! generated snippet gets one code:
//! - continue: the code of A (by default the primer's own) for every snippet;
//! - transfer: the primer's own code moved by (B - A), the latent "same content, other style";
//! - transition: from A to B over `transition_steps` (all the generated steps if 0), each
//!   snippet taking the code the LSTM-VAE would give its middle step;
//! - blend: the mix `alpha` of A and B.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Corpus;
use crate::error::{Error, Result};
use crate::generate::{GenerateOptions, Generated, Mode, interpolate, sample_notes};
use crate::meter::WindowBars;
use crate::models::ModelKind;
use crate::models::saved::{self, Saved};
use crate::models::trained::LatentStats;
use crate::models::transformer_vae::{Config, TransformerVae};
use crate::models::vae::bce_with_logits;
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};
use crate::train::BetaSchedule;
use crate::train_loop::{self, Chunk, Control, LoopEvent, LoopOptions, LoopOutcome, Scalars, Task};

/// Model kind in manifests and file names.
pub const KIND: &str = ModelKind::TransformerVae.name();

/// File name of the shipped model in the weights folder.
pub const DEFAULT_FILE: &str = ModelKind::TransformerVae.shipped_file_name();

/// A loaded Transformer VAE.
pub type TrainedTvae = Saved<TransformerVae, Config>;

/// How to train the Transformer VAE.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TvaeOptions {
    /// Sizes.
    pub config: Config,
    /// KL weight schedule.
    pub beta: BetaSchedule,
    /// Free bits per latent dimension, nats.
    pub free_bits: f64,
    /// Loop options.
    pub train: LoopOptions,
}

impl Default for TvaeOptions {
    fn default() -> Self {
        let mut train = LoopOptions::new(20_000, 128);
        train.learning_rate = 3e-4;
        TvaeOptions {
            config: Config::paper(),
            // Shorter than the LSTM-VAE's: this model takes ~1 s a step on two cores, so its
            // runs are a few hundred to a few thousand steps.
            beta: BetaSchedule {
                delay: 100,
                ramp: 400,
                end: 0.1,
            },
            free_bits: 0.1,
            train,
        }
    }
}

/// The Transformer VAE's training step.
pub struct TvaeTask {
    varmap: VarMap,
    model: TransformerVae,
    adam: Adam,
    opts: TvaeOptions,
}

impl TvaeTask {
    /// A freshly initialised model (seeded).
    pub fn new(opts: &TvaeOptions, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = TransformerVae::new(&opts.config, vb)?;
        train_loop::seeded_init(&varmap, opts.train.seed)?;
        let adam = Adam::over(&varmap, "", opts.train.learning_rate)?;
        Ok(TvaeTask {
            varmap,
            model,
            adam,
            opts: opts.clone(),
        })
    }
}

impl Task for TvaeTask {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// About 25 numbers per step, layer (of both stacks) and unit of width at the least
    /// (measured: 28-43).
    fn memory_per_snippet(&self, steps: usize) -> u64 {
        let s = &self.opts.config.stack;
        100 * (steps * 2 * s.layers * s.width) as u64
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn optimizers(&mut self) -> Vec<&mut Adam> {
        vec![&mut self.adam]
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(self.opts.config).unwrap_or_default()
    }

    fn train_step(
        &mut self,
        x: &Tensor,
        _labels: &Tensor,
        _bars: &WindowBars,
        step: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Scalars> {
        let (_, t, _) = x.dims3()?;
        let q = self.model.encode_t(x, Some(rng))?;
        let z = q.sample(rng)?;
        let logits = self.model.decode_t(&z, t, Some(rng))?;
        let recon = bce_with_logits(&logits, x)?;
        let kl_dims = q.kl_per_dim()?;
        let kl = kl_dims.sum_all()?;
        let paid = kl_dims.maximum(self.opts.free_bits as f32)?.sum_all()?;
        let beta = self.opts.beta.at(step);
        let total = (&recon + (paid * beta)?)?;
        let grads = total.backward()?;
        self.adam.apply(&grads, self.opts.train.grad_clip)?;
        let recon = recon.to_scalar::<f32>()? as f64;
        Ok(Scalars::from([
            ("recon_per_cell".into(), recon / (t * PITCHES) as f64),
            ("kl".into(), kl.to_scalar::<f32>()? as f64),
            ("beta".into(), beta),
        ]))
    }

    fn validate_chunk(&mut self, chunk: &Chunk) -> Result<Scalars> {
        let (x, labels) = (&chunk.x, &chunk.labels);
        let (b, t, _) = x.dims3()?;
        let q = self.model.encode(x)?;
        let logits = self.model.decode(&q.mean, t)?;
        let recon = bce_with_logits(&logits, x)?.to_scalar::<f32>()? as f64;
        let kl = q.kl_per_dim()?.sum_all()?.to_scalar::<f32>()? as f64;
        let n = labels.len() as f64;
        debug_assert_eq!(b, labels.len());
        Ok(Scalars::from([
            ("recon_per_cell".into(), recon / (t * PITCHES) as f64 * n),
            ("kl".into(), kl * n),
            ("n".into(), n),
        ]))
    }

    fn latents(&mut self, snippets: &[Chunk], composers: usize) -> Result<Vec<LatentStats>> {
        let mut per: Vec<Vec<Vec<f32>>> = vec![Vec::new(); composers];
        for Chunk { x, labels, .. } in snippets {
            let means = self.model.encode(x)?.mean.to_vec2::<f32>()?;
            for (c, m) in labels.iter().zip(means) {
                per[*c].push(m);
            }
        }
        Ok(per.iter().map(|ms| LatentStats::of(ms)).collect())
    }
}

/// Trains a Transformer VAE on `corpus` into `out`.
pub fn train_tvae(
    corpus: &Corpus,
    opts: &TvaeOptions,
    out: &Path,
    device: &Device,
    resume: bool,
    control: &Control,
    on_event: &mut dyn FnMut(LoopEvent),
) -> Result<LoopOutcome> {
    if opts.train.snippet_steps > opts.config.stack.max_len {
        return Err(Error::InvalidArgument(format!(
            "snippet length {} is longer than the model's {} positions",
            opts.train.snippet_steps, opts.config.stack.max_len
        )));
    }
    let mut task = TvaeTask::new(opts, device)?;
    let training = serde_json::to_value(opts).unwrap_or_default();
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

/// Loads a Transformer VAE file, checking everything.
pub fn load(path: &Path, device: &Device) -> Result<TrainedTvae> {
    saved::load(
        path,
        KIND,
        device,
        |cfg: &Config, m| {
            cfg.stack.check()?;
            saved::check_snippet_steps(m, cfg.stack.max_len)?;
            if m.composers.is_empty() {
                return Err("no composers: its codes come from theirs".into());
            }
            if m.latents.len() != m.composers.len()
                || m.latents.iter().any(|l| {
                    l.mean.len() != cfg.latent()
                        || l.std.len() != cfg.latent()
                        || (l.mean.iter().chain(&l.std))
                            .any(|v| v.is_nan() || v.abs() > crate::models::trained::MAX_CODE)
                })
            {
                return Err(format!(
                    "latent statistics do not match {} composers and a latent of {} (finite \
                     values of at most {} in size)",
                    m.composers.len(),
                    cfg.latent(),
                    crate::models::trained::MAX_CODE
                ));
            }
            Ok(())
        },
        TransformerVae::new,
    )
}

/// The shipped model, if it is there.
pub fn default_path() -> Option<PathBuf> {
    crate::models::trained::shipped_file(DEFAULT_FILE)
}

/// The snippet length a model was trained on.
pub fn snippet_steps(model: &TrainedTvae) -> usize {
    model
        .manifest
        .training
        .pointer("/train/snippet_steps")
        .and_then(|v| v.as_u64())
        .map_or(128, |v| v as usize)
        .min(model.config.stack.max_len)
}

/// The code of a composer (mean of its training snippets' codes) at style strength `strength`
/// (as [`crate::generate::composer_code`]).
pub fn composer_code(model: &TrainedTvae, composer: usize, strength: f32) -> Result<Vec<f32>> {
    crate::generate::code_of_composer(&model.manifest.latents, composer, strength)
}

/// The code of a song: the posterior mean of its first snippet from the bar of its first note
/// (silent bars before it are no part of its style).
pub fn song_code(model: &TrainedTvae, roll: &Roll) -> Result<Vec<f32>> {
    let steps = snippet_steps(model);
    let mut data = vec![0f32; steps * PITCHES];
    roll.window_f32(roll.first_bar_with_notes(), steps, &mut data);
    let x = Tensor::from_vec(data, (1, steps, PITCHES), &model.model.device())?;
    Ok(model.model.encode(&x)?.mean.squeeze(0)?.to_vec1::<f32>()?)
}

/// How far from A towards B the `k`th generated snippet of `snippet` steps is in a transition
/// (one code per snippet): the LSTM-VAE's share at the snippet's middle step, so both models
/// reach B after `transition_steps` (all the generated steps if 0).
fn transition_share(k: usize, snippet: usize, opts: &GenerateOptions) -> f32 {
    let transition = opts.transition_length();
    let first = k * snippet;
    let last = ((k + 1) * snippet).min(opts.steps).max(first + 1) - 1;
    let middle = (first + last) as f32 / 2.0;
    (middle / (transition.max(2) - 1) as f32).min(1.0)
}

/// What a transition over `over` steps is when that is one snippet or less (one code a snippet
/// makes it a single code between A and B, the same as a blend), said after "the " by the
/// command line and the studio; `None` for a longer one.
pub fn one_code_transition(model: &TrainedTvae, over: usize) -> Option<String> {
    let snippet = snippet_steps(model);
    (over <= snippet).then(|| {
        format!(
            "Transformer VAE takes one code per {snippet} steps, so a transition over {over} \
             steps is a single code between A and B (the LSTM-VAE moves step by step)"
        )
    })
}

/// Snippets decoded at once in generation.
const DECODE_BATCH: usize = 16;

/// Generates `opts.steps` steps after the primer's first `opts.primer_steps` (see the module
/// docs for what each mode does), sampled with the temperature, note cap and seed of `opts`.
pub fn generate(
    model: &TrainedTvae,
    primer: &Roll,
    a: &[f32],
    b: &[f32],
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Generated> {
    let latent = model.config.latent();
    if a.len() != latent || b.len() != latent {
        return Err(Error::InvalidArgument(format!(
            "codes must have {latent} values"
        )));
    }
    crate::generate::check_sampling(opts.temperature, opts.max_notes)?;
    crate::generate::check_length(primer, opts)?;
    // Primed from `primer_start` on (this model has no metre input: the cut loses nothing).
    let cut;
    let primer = match opts.primer_start.min(primer.steps()) {
        0 => primer,
        start => {
            cut = primer.slice(start, primer.steps() - start);
            &cut
        }
    };
    let snippet = snippet_steps(model);
    let count = opts.steps.div_ceil(snippet).max(1);
    let own = if opts.mode == Mode::Transfer {
        song_code(model, primer)?
    } else {
        Vec::new()
    };
    let codes: Vec<f32> = (0..count)
        .flat_map(|k| match opts.mode {
            Mode::Continue => a.to_vec(),
            Mode::Transfer => own
                .iter()
                .zip(a.iter().zip(b))
                .map(|(o, (x, y))| o + y - x)
                .collect(),
            Mode::Blend => interpolate(a, b, opts.alpha, opts.interpolation),
            Mode::Transition => {
                interpolate(a, b, transition_share(k, snippet, opts), opts.interpolation)
            }
        })
        .collect();
    let device = model.model.device();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut binary = vec![0u8; opts.steps * PITCHES];
    let mut order = Vec::with_capacity(PITCHES);
    let mut step = 0;
    // A few snippets at a time: a long piece's logits need not all be in memory at once (the
    // sampling, one step after another from one seed, is the same).
    'outer: for batch in codes.chunks(DECODE_BATCH * latent) {
        let z = Tensor::from_vec(batch.to_vec(), (batch.len() / latent, latent), &device)?;
        let logits = model
            .model
            .decode(&z, snippet)?
            .flatten_to(1)?
            .to_vec2::<f32>()?;
        for snippet_logits in &logits {
            for row in snippet_logits.chunks(PITCHES) {
                if step == opts.steps {
                    break 'outer;
                }
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                sample_notes(row, opts.temperature, opts.max_notes, &mut rng, &mut order);
                for &p in &order {
                    binary[step * PITCHES + p] = 1;
                }
                step += 1;
            }
            progress(step as f32 / opts.steps.max(1) as f32);
        }
    }
    let primer_steps = opts.primer_steps.min(primer.steps());
    let mut roll = primer.slice(0, primer_steps);
    roll.continue_with(&Roll::from_binary(opts.steps, &binary)?);
    // A pitch sounding on both sides of the join is one note, as in the LSTM-VAE's output (a
    // held primer note is not struck again).
    roll.join_held_at(primer_steps);
    Ok(Generated::new(roll, primer_steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(steps: usize, transition_steps: usize) -> GenerateOptions {
        GenerateOptions {
            mode: Mode::Transition,
            steps,
            transition_steps,
            ..GenerateOptions::default()
        }
    }

    #[test]
    fn a_transition_moves_each_snippet_as_far_as_the_lstm_vae_at_its_middle() {
        // One snippet: half way (at its middle step), not B throughout.
        let one = transition(128, 0);
        assert!((transition_share(0, 128, &one) - 0.5).abs() < 1e-6);
        // Two snippets over all the steps: a quarter and three quarters of the way.
        let two = transition(256, 0);
        assert!((transition_share(0, 128, &two) - 63.5 / 255.0).abs() < 1e-6);
        assert!((transition_share(1, 128, &two) - 191.5 / 255.0).abs() < 1e-6);
        // A transition of 128 steps is half way at the first snippet's middle, and over by
        // the second's.
        let short = transition(256, 128);
        assert!((transition_share(0, 128, &short) - 63.5 / 127.0).abs() < 1e-6);
        assert_eq!(transition_share(1, 128, &short), 1.0);
        // A last snippet cut short is judged at the middle of the steps it has.
        let ragged = transition(192, 0);
        assert!((transition_share(1, 128, &ragged) - 159.5 / 191.0).abs() < 1e-6);
    }
}
