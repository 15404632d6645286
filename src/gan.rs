//! The DCGAN in use: adversarial training on the shared loop (BCE with sum reduction, L2
//! regularisation on the discriminator, Adam with beta1 = 0.5 as in the DCGAN paper), loading,
//! and sampling 128-step snippets.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Corpus;
use crate::error::{Error, Result};
use crate::generate::sample_notes;
use crate::models::dcgan::{Config, Dcgan};
use crate::models::saved::{self, Saved};
use crate::models::standard_normal;
use crate::roll::{PITCHES, Roll};
use crate::train::{Adam, Control};
use crate::train_loop::{self, LoopEvent, LoopOptions, LoopOutcome, Scalars, Task};

/// Model kind in manifests and file names.
pub const KIND: &str = "dcgan";

/// File name of the shipped model in the weights folder.
pub const DEFAULT_FILE: &str = "dcgan.safetensors";

/// A loaded DCGAN.
pub type TrainedGan = Saved<Dcgan, Config>;

/// How to train the DCGAN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GanOptions {
    /// Sizes.
    pub config: Config,
    /// L2 regularisation weight on the discriminator's weights.
    pub discriminator_l2: f64,
    /// Loop options (snippets are always 128 steps).
    pub train: LoopOptions,
}

impl Default for GanOptions {
    fn default() -> Self {
        let mut train = LoopOptions::new(20_000, Config::SIZE);
        train.learning_rate = 2e-4;
        train.grad_clip = 1e6;
        train.valid_per_composer = 2;
        GanOptions {
            config: Config::studio(),
            discriminator_l2: 1e-3,
            train,
        }
    }
}

/// BCE with logits, summed over the batch.
fn bce_sum(logits: &Tensor, target: f32) -> candle_core::Result<Tensor> {
    let t = Tensor::full(target, logits.shape(), logits.device())?;
    crate::models::lstm_vae::bce_with_logits(&logits.unsqueeze(1)?, &t.unsqueeze(1)?)?
        .affine(logits.dim(0)? as f64, 0.0)
}

/// Codes `[n, latent]` from a seeded generator.
pub fn random_codes(
    n: usize,
    latent: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        standard_normal(rng, n * latent),
        (n, latent),
        device,
    )?)
}

/// The DCGAN's training step: one discriminator update, then one generator update.
pub struct GanTask {
    varmap: VarMap,
    model: Dcgan,
    adam_g: Adam,
    adam_d: Adam,
    opts: GanOptions,
}

impl GanTask {
    /// Freshly initialised networks (seeded).
    pub fn new(opts: &GanOptions, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = Dcgan::new(&opts.config, vb)?;
        train_loop::seeded_init(&varmap, opts.train.seed)?;
        let mut adam_g = Adam::over(&varmap, "generator.", opts.train.learning_rate)?;
        let mut adam_d = Adam::over(&varmap, "discriminator.", opts.train.learning_rate)?;
        adam_g.beta1 = 0.5;
        adam_d.beta1 = 0.5;
        adam_d.l2 = opts.discriminator_l2;
        Ok(GanTask {
            varmap,
            model,
            adam_g,
            adam_d,
            opts: opts.clone(),
        })
    }
}

impl Task for GanTask {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn optimizers(&mut self) -> Vec<&mut Adam> {
        vec![&mut self.adam_g, &mut self.adam_d]
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(self.opts.config).unwrap_or_default()
    }

    fn train_step(
        &mut self,
        x: &Tensor,
        _labels: &Tensor,
        _step: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Scalars> {
        let b = x.dim(0)?;
        let real = x.unsqueeze(1)?;
        let z = random_codes(b, self.opts.config.latent, rng, x.device())?;
        let fake = candle_nn::ops::sigmoid(&self.model.generator.forward_t(&z, true)?)?;
        let d = &self.model.discriminator;
        let d_real = d.forward_t(&real, true)?;
        let d_fake = d.forward_t(&fake.detach(), true)?;
        let loss_d = (bce_sum(&d_real, 1.0)? + bce_sum(&d_fake, 0.0)?)?;
        self.adam_d
            .apply(&loss_d.backward()?, self.opts.train.grad_clip)?;
        let loss_g = bce_sum(&d.forward_t(&fake, true)?, 1.0)?;
        self.adam_g
            .apply(&loss_g.backward()?, self.opts.train.grad_clip)?;
        let mean_prob = |t: &Tensor| -> candle_core::Result<f64> {
            Ok(candle_nn::ops::sigmoid(t)?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        Ok(Scalars::from([
            (
                "loss_d".into(),
                loss_d.to_scalar::<f32>()? as f64 / b as f64,
            ),
            (
                "loss_g".into(),
                loss_g.to_scalar::<f32>()? as f64 / b as f64,
            ),
            ("d_real".into(), mean_prob(&d_real)?),
            ("d_fake".into(), mean_prob(&d_fake)?),
        ]))
    }

    fn validate_chunk(&mut self, x: &Tensor, labels: &[usize]) -> Result<Scalars> {
        let n = labels.len();
        // The same codes at every validation, so the figures are comparable over training.
        let mut rng = ChaCha8Rng::seed_from_u64(0x5A11 + n as u64);
        let z = random_codes(n, self.opts.config.latent, &mut rng, x.device())?;
        let probs = self.model.sample_probabilities(&z)?;
        let d = &self.model.discriminator;
        let real = candle_nn::ops::sigmoid(&d.forward_t(&x.unsqueeze(1)?, false)?)?;
        let fake = candle_nn::ops::sigmoid(&d.forward_t(&probs.unsqueeze(1)?, false)?)?;
        let notes = probs
            .ge(0.5)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
        let steps = (n * Config::SIZE) as f64;
        Ok(Scalars::from([
            ("d_real".into(), real.sum_all()?.to_scalar::<f32>()? as f64),
            ("d_fake".into(), fake.sum_all()?.to_scalar::<f32>()? as f64),
            ("notes_per_step".into(), notes / steps * n as f64),
            ("n".into(), n as f64),
        ]))
    }
}

/// Trains a DCGAN on `corpus` into `out`.
pub fn train_gan(
    corpus: &Corpus,
    opts: &GanOptions,
    out: &Path,
    device: &Device,
    resume: bool,
    control: &Control,
    on_event: &mut dyn FnMut(LoopEvent),
) -> Result<LoopOutcome> {
    if opts.train.snippet_steps != Config::SIZE {
        return Err(Error::InvalidArgument(format!(
            "the DCGAN works on {0} x {0} snippets, not {1} steps",
            Config::SIZE,
            opts.train.snippet_steps
        )));
    }
    let mut task = GanTask::new(opts, device)?;
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

/// Loads a DCGAN file, checking everything.
pub fn load(path: &Path, device: &Device) -> Result<TrainedGan> {
    saved::load(path, KIND, device, |_: &Config, _| Ok(()), Dcgan::new)
}

/// The shipped model, if it is there.
pub fn default_path() -> Option<PathBuf> {
    let path = crate::models::trained::weights_dir().join(DEFAULT_FILE);
    path.is_file().then_some(path)
}

/// Samples `count` snippets of 128 steps, each cell drawn with the generator's probability
/// sharpened by `temperature`, at most `max_notes` per step; the same seed gives the same rolls.
pub fn sample(
    gan: &Dcgan,
    count: usize,
    temperature: f32,
    max_notes: usize,
    seed: u64,
) -> Result<Vec<Roll>> {
    crate::generate::check_sampling(temperature, max_notes)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let device = gan.generator.device();
    let z = random_codes(count, gan.config().latent, &mut rng, &device)?;
    let logits = gan
        .generator
        .forward_t(&z, false)?
        .squeeze(1)?
        .flatten_from(1)?
        .to_vec2::<f32>()?;
    let mut order = Vec::with_capacity(PITCHES);
    logits
        .iter()
        .map(|cells| {
            let mut binary = vec![0u8; cells.len()];
            for (t, row) in cells.chunks(PITCHES).enumerate() {
                sample_notes(row, temperature, max_notes, &mut rng, &mut order);
                for &p in &order {
                    binary[t * PITCHES + p] = 1;
                }
            }
            Roll::from_binary(Config::SIZE, &binary)
        })
        .collect()
}
