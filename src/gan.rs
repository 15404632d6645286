//! The DCGAN in use: adversarial training on the shared loop (BCE with sum reduction, L2
//! regularisation on the discriminator, Adam with beta1 = 0.5 as in the DCGAN paper), loading,
//! and sampling 128-step snippets.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::Corpus;
use crate::error::{Error, Result};
use crate::generate::sample_notes;
use crate::meter::WindowBars;
use crate::models::ModelKind;
use crate::models::dcgan::{Cells, Config, Dcgan, Generator};
use crate::models::saved::{self, Saved};
use crate::models::standard_normal;
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};
use crate::train_loop::{self, Chunk, Control, LoopEvent, LoopOptions, LoopOutcome, Scalars, Task};

/// Model kind in manifests and file names.
pub const KIND: &str = ModelKind::Dcgan.name();

/// File name of the shipped model in the weights folder.
pub const DEFAULT_FILE: &str = ModelKind::Dcgan.shipped_file_name();

/// A loaded DCGAN.
pub type TrainedGan = Saved<Dcgan, Config>;

/// How to train the DCGAN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GanOptions {
    /// Sizes.
    pub config: Config,
    /// L2 regularisation weight on the discriminator's weights.
    pub discriminator_l2: f64,
    /// The discriminator's Adam learning rate, if not the loop's (a two-timescale update:
    /// a slower discriminator keeps the game going longer).
    #[serde(default)]
    pub discriminator_learning_rate: Option<f64>,
    /// Weight of feature matching in the generator's loss (0 = off, the plain DCGAN): the
    /// squared distance between the batch means of the discriminator's last hidden features
    /// (its batch norm on running statistics) for real and generated snippets, times the
    /// batch size to match the summed BCE. It asks the generator to match the statistics
    /// the discriminator looks at rather than only to fool its verdict (Salimans et al.
    /// 2016).
    #[serde(default)]
    pub feature_matching: f64,
    /// The discriminator's target for real snippets (1 = the plain DCGAN; 0.9 is one-sided
    /// label smoothing, Salimans et al. 2016: a discriminator never quite sure keeps giving
    /// the generator gradients).
    #[serde(default = "one")]
    pub real_label: f64,
    /// Standard deviation of Gaussian noise added to every cell the discriminator sees, real
    /// and generated, falling linearly to 0 at [`GanOptions::instance_noise_steps`] (instance
    /// noise, Sønderby et al. 2017: the two distributions overlap early, so the discriminator
    /// cannot win at once). 0 = off.
    #[serde(default)]
    pub instance_noise: f64,
    /// The step at which the instance noise reaches 0: None takes the run's step count as it
    /// starts, and the run records it, so that a run continued to more steps keeps its
    /// schedule (the noise does not come back).
    #[serde(default)]
    pub instance_noise_steps: Option<usize>,
    /// Loop options (snippets are always 128 steps).
    pub train: LoopOptions,
}

impl GanOptions {
    /// The step at which the instance noise reaches 0 (see [`GanOptions::instance_noise_steps`]).
    fn noise_steps(&self) -> usize {
        self.instance_noise_steps.unwrap_or(self.train.steps).max(1)
    }

    /// The instance noise's standard deviation at `step`: [`GanOptions::instance_noise`] at
    /// the start, falling linearly to 0.
    pub fn instance_noise_at(&self, step: usize) -> f64 {
        let left = 1.0 - step as f64 / self.noise_steps() as f64;
        self.instance_noise * left.max(0.0)
    }
}

impl Default for GanOptions {
    fn default() -> Self {
        // The shipped model's recipe: the game turns unstable past about 700 steps (see the
        // README's limits), so a run without --steps stops where the shipped one did.
        let mut train = LoopOptions::new(500, Config::SIZE);
        train.eval_every = 50;
        train.checkpoint_every = 100;
        train.learning_rate = 2e-4;
        train.grad_clip = 1e6;
        train.valid_per_composer = 2;
        GanOptions {
            config: Config::studio(),
            discriminator_l2: 1e-3,
            discriminator_learning_rate: None,
            feature_matching: 0.0,
            real_label: 1.0,
            instance_noise: 0.0,
            instance_noise_steps: None,
            train,
        }
    }
}

fn one() -> f64 {
    1.0
}

/// BCE with logits, summed over the batch.
fn bce_sum(logits: &Tensor, target: f32) -> candle_core::Result<Tensor> {
    let t = Tensor::full(target, logits.shape(), logits.device())?;
    crate::models::vae::bce_with_logits(&logits.unsqueeze(1)?, &t.unsqueeze(1)?)?
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

/// The cells of the generator's output shown to the discriminator (see [`Cells`]): binary
/// kinds pass the gradient straight through to the probabilities.
fn shown_cells(cells: Cells, probs: Tensor, rng: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
    match cells {
        Cells::Probabilities => Ok(probs),
        Cells::Drawn => straight_through_bernoulli(&probs, rng),
        Cells::Thresholded => {
            let on = probs.ge(0.5)?.to_dtype(probs.dtype())?;
            &probs + (on - &probs)?.detach()
        }
    }
}

/// Cells drawn as 0/1 with probabilities `probs`, from uniform numbers of `rng`; the gradient
/// passes straight through to `probs` (the straight-through estimator of binary neurons).
pub fn straight_through_bernoulli(
    probs: &Tensor,
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<Tensor> {
    let uniform: Vec<f32> = (0..probs.elem_count()).map(|_| rng.random()).collect();
    let uniform = Tensor::from_vec(uniform, probs.shape(), probs.device())?;
    let drawn = probs.gt(&uniform)?.to_dtype(probs.dtype())?;
    probs + (drawn - probs)?.detach()
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
        // The output bias, if any, starts at the corpus's sparsity.
        let bias = varmap
            .data()
            .lock()
            .expect("varmap lock poisoned")
            .get("generator.conv5.bias")
            .cloned();
        if let Some(bias) = bias {
            bias.set(
                &bias
                    .ones_like()?
                    .affine(f64::from(Generator::INITIAL_OUTPUT_LOGIT), 0.0)?,
            )?;
        }
        let mut adam_g = Adam::over(&varmap, "generator.", opts.train.learning_rate)?;
        let lr_d = opts
            .discriminator_learning_rate
            .unwrap_or(opts.train.learning_rate);
        if !(opts.feature_matching.is_finite() && opts.feature_matching >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the feature-matching weight must be 0 or more, not {}",
                opts.feature_matching
            )));
        }
        if !(opts.real_label.is_finite() && opts.real_label > 0.5 && opts.real_label <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "the real label must be above 0.5 and at most 1, not {}",
                opts.real_label
            )));
        }
        if !(opts.instance_noise.is_finite() && opts.instance_noise >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the instance noise must be 0 or more, not {}",
                opts.instance_noise
            )));
        }
        if !(lr_d.is_finite() && lr_d > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the discriminator's learning rate must be a positive number, not {lr_d}"
            )));
        }
        let mut adam_d = Adam::over(&varmap, "discriminator.", lr_d)?;
        adam_g.beta1 = 0.5;
        adam_d.beta1 = 0.5;
        train_loop::check_number(
            "discriminator's L2 weight",
            opts.discriminator_l2,
            0.0,
            false,
        )?;
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

    /// About 4 numbers per cell of the 128 x 128 image and channel of the two networks' widest
    /// layers at the least (measured: 8.5).
    fn memory_per_snippet(&self, _steps: usize) -> u64 {
        let c = &self.opts.config;
        let channels = (c.generator_channels + c.discriminator_channels) as u64;
        let side = crate::models::dcgan::Config::SIZE as u64;
        16 * channels * side * side
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
        _bars: &WindowBars,
        step: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Scalars> {
        let b = x.dim(0)?;
        let real = x.unsqueeze(1)?;
        let z = random_codes(b, self.opts.config.latent, rng, x.device())?;
        let probs = candle_nn::ops::sigmoid(&self.model.generator.forward_t(&z, true)?)?;
        let fake = shown_cells(self.opts.config.cells, probs, rng)?;
        let sigma = self.opts.instance_noise_at(step);
        let mut noisy = |t: Tensor| -> Result<Tensor> {
            if sigma == 0.0 {
                return Ok(t);
            }
            let noise = standard_normal(rng, t.elem_count());
            let noise = Tensor::from_vec(noise, t.shape(), t.device())?;
            Ok((t + noise.affine(sigma, 0.0)?)?)
        };
        let (real, fake) = (noisy(real)?, noisy(fake)?);
        let d = &self.model.discriminator;
        let d_real = d.forward_t(&real, true)?;
        let d_fake = d.forward_t(&fake.detach(), true)?;
        let real_label = self.opts.real_label as f32;
        let loss_d = (bce_sum(&d_real, real_label)? + bce_sum(&d_fake, 0.0)?)?;
        self.adam_d
            .apply(&loss_d.backward()?, self.opts.train.grad_clip)?;
        let mut loss_g = bce_sum(&d.forward_t(&fake, true)?, 1.0)?;
        let mut matching = None;
        if self.opts.feature_matching > 0.0 {
            // Batch norm in inference mode (running statistics): in training mode each batch
            // is normalised by its own statistics, which hides most of the difference.
            let real_mean = d.features_t(&real, false)?.detach().mean(0)?;
            let fake_mean = d.features_t(&fake, false)?.mean(0)?;
            let gap = (fake_mean - real_mean)?.sqr()?.sum_all()?;
            matching = Some(gap.to_scalar::<f32>()? as f64);
            loss_g = (loss_g + gap.affine(self.opts.feature_matching * b as f64, 0.0)?)?;
        }
        self.adam_g
            .apply(&loss_g.backward()?, self.opts.train.grad_clip)?;
        let mean_prob = |t: &Tensor| -> candle_core::Result<f64> {
            Ok(candle_nn::ops::sigmoid(t)?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        let mut scalars = Scalars::from([
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
        ]);
        if let Some(gap) = matching {
            scalars.insert("feature_gap".into(), gap);
        }
        Ok(scalars)
    }

    fn validate_chunk(&mut self, chunk: &Chunk) -> Result<Scalars> {
        let (x, labels) = (&chunk.x, &chunk.labels);
        let n = labels.len();
        // The same codes at every validation, so the figures are comparable over training.
        let mut rng = ChaCha8Rng::seed_from_u64(0x5A11 + n as u64);
        let z = random_codes(n, self.opts.config.latent, &mut rng, x.device())?;
        let probs = self.model.sample_probabilities(&z)?;
        let shown = shown_cells(self.opts.config.cells, probs.clone(), &mut rng)?;
        let d = &self.model.discriminator;
        let real = candle_nn::ops::sigmoid(&d.forward_t(&x.unsqueeze(1)?, false)?)?;
        let fake = candle_nn::ops::sigmoid(&d.forward_t(&shown.unsqueeze(1)?, false)?)?;
        let notes = probs
            .ge(0.5)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
        let expected = probs.sum_all()?.to_scalar::<f32>()? as f64;
        let steps = (n * Config::SIZE) as f64;
        Ok(Scalars::from([
            ("d_real".into(), real.sum_all()?.to_scalar::<f32>()? as f64),
            ("d_fake".into(), fake.sum_all()?.to_scalar::<f32>()? as f64),
            ("notes_per_step".into(), notes / steps * n as f64),
            ("drawn_notes_per_step".into(), expected / steps * n as f64),
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
    let mut opts = opts.clone();
    opts.instance_noise_steps = Some(opts.noise_steps());
    let mut task = GanTask::new(&opts, device)?;
    let training = serde_json::to_value(&opts).unwrap_or_default();
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
    crate::models::trained::shipped_file(DEFAULT_FILE)
}

/// Samples `count` snippets of 128 steps, at most `max_notes` per step; the same seed gives the
/// same rolls. Each cell is drawn with the generator's probability sharpened by `temperature`,
/// or, for a generator trained on thresholded cells, on where its probability is above 0.5
/// (strongest first; `temperature` is then not used).
pub fn sample(
    gan: &Dcgan,
    count: usize,
    temperature: f32,
    max_notes: usize,
    seed: u64,
) -> Result<Vec<Roll>> {
    let never = std::sync::atomic::AtomicBool::new(false);
    sample_until(gan, count, temperature, max_notes, seed, &never)
}

/// Snippets the generator makes at a time in [`sample_until`] (a long piece's need not all be
/// in memory at once, and a stop is heard between them).
const SAMPLE_BATCH: usize = 16;

/// [`sample`], stopping with [`Error::Cancelled`] when `cancel` is set (checked between
/// batches of snippets); the snippets are the same however many are made at a time.
pub fn sample_until(
    gan: &Dcgan,
    count: usize,
    temperature: f32,
    max_notes: usize,
    seed: u64,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Vec<Roll>> {
    crate::generate::check_sampling(temperature, max_notes)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let device = gan.generator.device();
    let z = random_codes(count, gan.config().latent, &mut rng, &device)?;
    // The cells are drawn from a stream of their own, snippet after snippet, so that a
    // snippet's notes do not depend on how many snippets were asked for.
    rng.set_stream(1);
    rng.set_word_pos(0);
    let mut order = Vec::with_capacity(PITCHES);
    let mut rolls = Vec::with_capacity(count);
    for start in (0..count).step_by(SAMPLE_BATCH) {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let batch = z.narrow(0, start, SAMPLE_BATCH.min(count - start))?;
        // Batch norm in inference mode: each snippet is made alone, whatever the batch.
        let logits = gan
            .generator
            .forward_t(&batch, false)?
            .squeeze(1)?
            .flatten_from(1)?
            .to_vec2::<f32>()?;
        for cells in &logits {
            let mut binary = vec![0u8; cells.len()];
            for (t, row) in cells.chunks(PITCHES).enumerate() {
                if gan.config().cells == Cells::Thresholded {
                    strongest_positive(row, max_notes, &mut order);
                } else {
                    sample_notes(row, temperature, max_notes, &mut rng, &mut order);
                }
                for &p in &order {
                    binary[t * PITCHES + p] = 1;
                }
            }
            rolls.push(Roll::from_binary(Config::SIZE, &binary)?);
        }
    }
    Ok(rolls)
}

/// `steps` steps of music: [`sample_until`]'s 128-step snippets joined end to end and cut to
/// `steps` (what `segue generate` and the studio make with a DCGAN).
pub fn sample_roll(
    gan: &Dcgan,
    steps: usize,
    temperature: f32,
    max_notes: usize,
    seed: u64,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Roll> {
    let count = steps.div_ceil(Config::SIZE).max(1);
    let mut roll = Roll::new(0);
    for snippet in sample_until(gan, count, temperature, max_notes, seed, cancel)? {
        roll.append(&snippet);
    }
    Ok(roll.slice(0, steps))
}

/// The pitches whose logit is above 0, strongest first, at most `max_notes`, into `order`.
fn strongest_positive(logits: &[f32], max_notes: usize, order: &mut Vec<usize>) {
    order.clear();
    order.extend((0..logits.len()).filter(|&p| logits[p] > 0.0));
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(max_notes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// The noise falls to 0 at the step the run started with, also when it is continued to
    /// more steps (it does not come back).
    #[test]
    fn instance_noise_keeps_its_schedule_when_a_run_goes_on() {
        let mut o = GanOptions {
            instance_noise: 0.2,
            ..GanOptions::default()
        };
        o.train.steps = 4;
        assert_eq!(o.instance_noise_at(0), 0.2);
        assert!((o.instance_noise_at(2) - 0.1).abs() < 1e-12);
        assert_eq!(o.instance_noise_at(4), 0.0);
        // Recorded as the run starts, then continued to 8 steps.
        o.instance_noise_steps = Some(o.noise_steps());
        o.train.steps = 8;
        assert_eq!(o.instance_noise_at(4), 0.0);
        assert_eq!(o.instance_noise_at(6), 0.0);
    }

    #[test]
    fn thresholding_keeps_the_strongest_positive_cells() {
        let mut order = Vec::new();
        let logits = [-1.0f32, 2.0, 0.5, 3.0, -0.1, 1.0];
        strongest_positive(&logits, 2, &mut order);
        assert_eq!(order, [3, 1]);
        strongest_positive(&logits, 10, &mut order);
        assert_eq!(order, [3, 1, 5, 2]);
        strongest_positive(&[-1.0, 0.0], 4, &mut order);
        assert!(order.is_empty());
    }

    #[test]
    fn straight_through_draws_binary_cells_and_passes_the_gradient() {
        let probs =
            Var::from_vec(vec![0.0f32, 1.0, 0.3, 0.7, 0.5, 0.9], (2, 3), &Device::Cpu).unwrap();
        let weights = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let drawn = straight_through_bernoulli(probs.as_tensor(), &mut rng).unwrap();
        let cells = drawn.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(cells.iter().all(|&v| v == 0.0 || v == 1.0), "{cells:?}");
        // Probability 0 never sounds, probability 1 always does.
        assert_eq!((cells[0], cells[1]), (0.0, 1.0));
        // d(sum(w * drawn)) / d(probs) = w: the gradient goes straight through.
        let grads = (drawn * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = grads.get(probs.as_tensor()).unwrap();
        assert_eq!(
            g.to_vec2::<f32>().unwrap(),
            weights.to_vec2::<f32>().unwrap()
        );
        // The same seed draws the same cells; over many draws the share follows the probability.
        let again =
            straight_through_bernoulli(probs.as_tensor(), &mut ChaCha8Rng::seed_from_u64(3))
                .unwrap();
        assert_eq!(
            again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cells
        );
        let many = Tensor::full(0.3f32, (100, 100), &Device::Cpu).unwrap();
        let share = straight_through_bernoulli(&many, &mut rng)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((share - 0.3).abs() < 0.03, "{share}");
    }

    #[test]
    fn thresholded_cells_keep_the_strongest_positive_logits() {
        let mut order = Vec::new();
        strongest_positive(&[-1.0, 2.0, 0.5, 3.0, 0.0], 2, &mut order);
        assert_eq!(order, vec![3, 1]);
        strongest_positive(&[-1.0, -2.0], 4, &mut order);
        assert!(order.is_empty());
        let probs = Tensor::new(&[0.2f32, 0.5, 0.9], &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let shown = shown_cells(Cells::Thresholded, probs, &mut rng).unwrap();
        assert_eq!(shown.to_vec1::<f32>().unwrap(), vec![0.0, 1.0, 1.0]);
    }
}
