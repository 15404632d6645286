//! The paper's DCGAN over 128 x 128 roll snippets (128 steps x 128 pitches, one channel).
//!
//! - Generator: z `[B, 128]` -> 6 transposed convolutions (1 -> 4 -> 8 -> 16 -> 32 -> 64 -> 128
//!   pixels), batch norm and ReLU between them; logits `[B, 1, 128, 128]` (sigmoid = the
//!   probability that a cell sounds).
//! - Discriminator: 6 convolutions (128 -> 64 -> ... -> 4 -> 1 pixels), leaky ReLU, batch norm
//!   after the first (or, as an option, spectral normalisation of every convolution instead);
//!   one logit per snippet (sigmoid = probability of "real").

use candle_core::{Module, ModuleT, Result, Tensor, Var};
use candle_nn::{
    BatchNorm, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, VarBuilder,
    batch_norm, conv_transpose2d, conv_transpose2d_no_bias, conv2d_no_bias,
};

/// A batch norm of `n` channels (eps 1e-5) whose stored variances are checked: a negative one
/// (a damaged file) would make NaN, and silent music, rather than an error.
fn checked_batch_norm(n: usize, vb: VarBuilder) -> candle_core::Result<BatchNorm> {
    let name = vb.prefix();
    let norm = batch_norm(n, 1e-5, vb)?;
    let variances = (norm.running_var().to_dtype(candle_core::DType::F32)?).to_vec1::<f32>()?;
    if let Some(bad) = variances.iter().find(|v| v.is_nan() || **v < 0.0) {
        candle_core::bail!(
            "{name}.running_var holds a variance of {bad}: variances are never below 0"
        );
    }
    Ok(norm)
}

/// Sizes of the DCGAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
/// Unknown fields are refused: a model of a newer version whose config says how it computes
/// in a way this one does not know would otherwise run as if it did not say it.
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Size of the generator's input z.
    pub latent: usize,
    /// Channels of the generator's last hidden layer (the others are 2x, 4x, ... 16x).
    pub generator_channels: usize,
    /// Channels of the discriminator's first layer (the others are 2x, 4x, ... 16x).
    pub discriminator_channels: usize,
    /// How the generator's output becomes notes (in training, what the discriminator sees).
    #[serde(default)]
    pub cells: Cells,
    /// The generator's output layer has a bias (models made before binary cells had none and
    /// still load).
    #[serde(default)]
    pub output_bias: bool,
    /// Spectral normalisation of the discriminator's convolutions (Miyato et al. 2018): each
    /// kernel is divided by its largest singular value (one power iteration per training
    /// pass), so the discriminator cannot sharpen its verdict without bound. It replaces the
    /// discriminator's batch norms, which would undo it (a batch norm gives the same output
    /// for any scale of its input). Off in the shipped model; older manifests, which lack it,
    /// load as off (and a run made without it is written as before, so it resumes).
    #[serde(default, skip_serializing_if = "is_false")]
    pub spectral_norm: bool,
}

/// How the generator's cell probabilities become a binary roll. Real rolls are exactly 0 or 1,
/// so a discriminator shown probabilities wins at once on that alone; with a binary kind it
/// sees 0/1 cells and the gradient passes straight through to the probabilities (binary
/// neurons, as in BinaryMuseGAN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cells {
    /// Probabilities in training, cells drawn with them when sampling (the plain DCGAN).
    #[default]
    Probabilities,
    /// Each cell drawn with its probability.
    Drawn,
    /// Each cell on where its probability is above 0.5.
    Thresholded,
}

impl std::str::FromStr for Cells {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "probabilities" => Ok(Cells::Probabilities),
            "drawn" => Ok(Cells::Drawn),
            "thresholded" => Ok(Cells::Thresholded),
            other => Err(format!(
                "unknown kind of cells `{other}` (probabilities, drawn, thresholded)"
            )),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Config {
    /// The shipped sizes: latent 128, 8 base channels (small enough to train on two cores),
    /// thresholded cells.
    pub fn studio() -> Self {
        Config {
            latent: 128,
            generator_channels: 8,
            discriminator_channels: 8,
            cells: Cells::Thresholded,
            output_bias: true,
            spectral_norm: false,
        }
    }

    /// Snippet side in steps and pitches.
    pub const SIZE: usize = 128;
}

fn up(stride1: bool) -> ConvTranspose2dConfig {
    ConvTranspose2dConfig {
        padding: if stride1 { 0 } else { 1 },
        stride: if stride1 { 1 } else { 2 },
        ..Default::default()
    }
}

fn down(stride1: bool) -> Conv2dConfig {
    Conv2dConfig {
        padding: if stride1 { 0 } else { 1 },
        stride: if stride1 { 1 } else { 2 },
        ..Default::default()
    }
}

/// Channel multipliers of the five hidden layers.
const WIDTHS: [usize; 5] = [16, 8, 4, 2, 1];

impl crate::models::saved::MinParameters for Config {
    /// The generator's first two transposed convolutions (4 x 4 kernels: latent to 16g, 16g
    /// to 8g channels) and the discriminator's last (8d to 16d).
    fn min_parameters(&self) -> u128 {
        use crate::models::saved::product;
        let g = self.generator_channels;
        let d = self.discriminator_channels;
        product(&[16, self.latent, 16, g])
            .saturating_add(product(&[16, 16, g, 8, g]))
            .saturating_add(product(&[16, 8, d, 16, d]))
    }
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Generator {
    convs: Vec<ConvTranspose2d>,
    norms: Vec<BatchNorm>,
    latent: usize,
}

impl Generator {
    /// Builds it under `vb` (`conv{i}`, `bn{i}`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let g = cfg.generator_channels;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut input = cfg.latent;
        for (i, w) in WIDTHS.iter().enumerate() {
            convs.push(conv_transpose2d_no_bias(
                input,
                w * g,
                4,
                up(i == 0),
                vb.pp(format!("conv{i}")),
            )?);
            norms.push(checked_batch_norm(w * g, vb.pp(format!("bn{i}")))?);
            input = w * g;
        }
        // With an output bias, training can start from the corpus's sparsity.
        let output = if cfg.output_bias {
            conv_transpose2d
        } else {
            conv_transpose2d_no_bias
        };
        convs.push(output(input, 1, 4, up(false), vb.pp("conv5"))?);
        Ok(Generator {
            convs,
            norms,
            latent: cfg.latent,
        })
    }

    /// Logit that every cell of the output starts from: about 3 of 128 pitches sound in a step
    /// of the corpus, so an untrained generator draws sparse rolls, not noise at p = 0.5.
    pub const INITIAL_OUTPUT_LOGIT: f32 = -3.7;

    /// The device its weights live on.
    pub fn device(&self) -> candle_core::Device {
        self.convs[0].weight().device().clone()
    }

    /// z `[B, latent]` -> logits `[B, 1, 128, 128]`; batch statistics when `train`.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let b = z.dim(0)?;
        let mut h = z.reshape((b, self.latent, 1, 1))?;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = norm.forward_t(&conv.forward(&h)?, train)?.relu()?;
        }
        self.convs[5].forward(&h)
    }
}

/// The discriminator.
#[derive(Debug, Clone)]
pub struct Discriminator {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    /// With spectral normalisation: each convolution's left singular vector estimate
    /// (`sn{i}.running_u`), carried from one training pass to the next (power iteration);
    /// variables without a gradient, so saved with the model and restored on resume like a
    /// batch norm's running statistics, and left alone by the optimiser.
    singular: Option<Vec<Var>>,
}

/// `t / |t|`.
fn unit(t: &Tensor) -> Result<Tensor> {
    let norm = t.sqr()?.sum_all()?.sqrt()?.affine(1.0, 1e-12)?;
    t.broadcast_div(&norm)
}

impl Discriminator {
    /// Builds it under `vb` (`conv{i}`, `bn{i}`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.discriminator_channels;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut input = 1;
        for (i, w) in WIDTHS.iter().rev().enumerate() {
            convs.push(conv2d_no_bias(
                input,
                w * d,
                4,
                down(false),
                vb.pp(format!("conv{i}")),
            )?);
            if i > 0 && !cfg.spectral_norm {
                norms.push(checked_batch_norm(w * d, vb.pp(format!("bn{i}")))?);
            }
            input = w * d;
        }
        convs.push(conv2d_no_bias(input, 1, 4, down(true), vb.pp("conv5"))?);
        let singular = if cfg.spectral_norm {
            let start = |(i, c): (usize, &Conv2d)| -> Result<Var> {
                let out = c.weight().dim(0)?;
                let u = vb.pp(format!("sn{i}")).get_with_hints(
                    out,
                    "running_u",
                    candle_nn::Init::Const(1.0 / (out as f64).sqrt()),
                )?;
                Var::from_tensor(&u)
            };
            Some(convs.iter().enumerate().map(start).collect::<Result<_>>()?)
        } else {
            None
        };
        Ok(Discriminator {
            convs,
            norms,
            singular,
        })
    }

    /// Convolution `i` of `x`, its kernel divided by its largest singular value where
    /// spectral normalisation is on (the estimate moves on one power iteration when `train`).
    fn conv(&self, i: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        let conv = &self.convs[i];
        let Some(singular) = &self.singular else {
            return conv.forward(x);
        };
        let w = conv.weight();
        let mat = w.reshape((w.dim(0)?, ()))?;
        let fixed = mat.detach();
        let previous = singular[i].as_tensor().detach();
        let v = unit(&fixed.t()?.matmul(&previous.unsqueeze(1)?)?)?;
        let u = unit(&fixed.matmul(&v)?)?;
        // sigma = u^T W v, with the gradient through W only.
        let sigma = u.t()?.matmul(&mat)?.matmul(&v)?.reshape(())?;
        if train {
            singular[i].set(&u.squeeze(1)?)?;
        }
        let c = conv.config();
        x.conv2d(
            &w.broadcast_div(&sigma)?,
            c.padding,
            c.stride,
            c.dilation,
            c.groups,
        )
    }

    /// Snippets `[B, 1, 128, 128]` (values in 0..1) -> logits `[B]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.logits(&self.features_t(x, train)?, train)
    }

    /// Snippets -> the last hidden layer's features `[B, C, 4, 4]`, before the final
    /// convolution (what feature matching compares).
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let leaky = |t: Tensor| -> Result<Tensor> { t.maximum(&(&t * 0.2)?) };
        let mut h = leaky(self.conv(0, x, train)?)?;
        for i in 1..5 {
            let c = self.conv(i, &h, train)?;
            h = leaky(match self.norms.get(i - 1) {
                Some(norm) => norm.forward_t(&c, train)?,
                None => c,
            })?;
        }
        Ok(h)
    }

    /// Features from [`Self::features_t`] -> logits `[B]`.
    fn logits(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        self.conv(5, features, train)?.flatten_all()
    }
}

/// Both networks.
#[derive(Debug, Clone)]
pub struct Dcgan {
    /// z -> snippet.
    pub generator: Generator,
    /// snippet -> real?
    pub discriminator: Discriminator,
    cfg: Config,
}

impl Dcgan {
    /// Builds both under `vb` (`generator.*`, `discriminator.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.latent == 0 || cfg.generator_channels == 0 || cfg.discriminator_channels == 0 {
            candle_core::bail!("DCGAN sizes must be positive: {cfg:?}");
        }
        Ok(Dcgan {
            generator: Generator::new(cfg, vb.pp("generator"))?,
            discriminator: Discriminator::new(cfg, vb.pp("discriminator"))?,
            cfg: *cfg,
        })
    }

    /// The sizes.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Inference: z `[B, latent]` -> cell probabilities `[B, 128 steps, 128 pitches]`.
    pub fn sample_probabilities(&self, z: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.generator.forward_t(z, false)?)?.squeeze(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The largest singular value of `w` (`[out, ...]` as a matrix), by many power iterations.
    fn largest_singular_value(w: &Tensor) -> f32 {
        let m = w.reshape((w.dim(0).unwrap(), ())).unwrap();
        let mut v =
            unit(&Tensor::ones((m.dim(1).unwrap(), 1), DType::F32, &Device::Cpu).unwrap()).unwrap();
        for _ in 0..500 {
            let u = unit(&m.matmul(&v).unwrap()).unwrap();
            v = unit(&m.t().unwrap().matmul(&u).unwrap()).unwrap();
        }
        let mv = m.matmul(&v).unwrap();
        mv.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn spectral_norm_divides_each_kernel_by_its_largest_singular_value() {
        let cfg = Config {
            discriminator_channels: 2,
            generator_channels: 2,
            spectral_norm: true,
            ..Config::studio()
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let d = Discriminator::new(&cfg, vb).unwrap();
        // Seeded kernels: how fast the power iteration converges depends on them.
        crate::train_loop::seeded_init(&varmap, 1).unwrap();
        // No batch norms (they would undo it); the estimates are variables of the model.
        assert!(d.norms.is_empty());
        assert!(varmap.data().lock().unwrap().contains_key("sn3.running_u"));
        let estimates = |d: &Discriminator| -> Vec<Vec<f32>> {
            let us = d.singular.as_ref().unwrap();
            us.iter()
                .map(|u| u.as_tensor().to_vec1().unwrap())
                .collect()
        };
        let x = Tensor::ones((2, 1, 128, 128), DType::F32, &Device::Cpu).unwrap();
        // Inference passes do not move the estimates; training passes do.
        let start = estimates(&d);
        d.forward_t(&x, false).unwrap();
        assert_eq!(estimates(&d), start);
        for _ in 0..60 {
            d.forward_t(&x, true).unwrap();
        }
        assert_ne!(estimates(&d), start);
        // Each convolution now runs with its kernel divided by the exact largest singular
        // value, to within the estimate's error.
        let inputs = [
            Tensor::ones((1, 1, 128, 128), DType::F32, &Device::Cpu).unwrap(),
            Tensor::ones((1, 2, 64, 64), DType::F32, &Device::Cpu).unwrap(),
        ];
        for (i, x) in inputs.iter().enumerate() {
            let w = d.convs[i].weight();
            let exact = largest_singular_value(w);
            let got = d.conv(i, x, false).unwrap();
            let c = d.convs[i].config();
            let want = x
                .conv2d(&(w / exact as f64).unwrap(), c.padding, c.stride, 1, 1)
                .unwrap();
            let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap();
            let scale = want.abs().unwrap().max_all().unwrap();
            let (diff, scale) = (
                diff.to_scalar::<f32>().unwrap(),
                scale.to_scalar::<f32>().unwrap(),
            );
            assert!(diff <= 0.02 * scale, "conv {i}: off by {diff} of {scale}");
        }
        // Without it, the kernels are used as they are, with the batch norms.
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let plain = Discriminator::new(&Config::studio(), vb).unwrap();
        assert!(plain.singular.is_none() && plain.norms.len() == 4);
        // A config without it is written as before (so older runs resume).
        let json = serde_json::to_value(Config::studio()).unwrap();
        assert!(json.get("spectral_norm").is_none());
    }

    /// A stored variance below 0 (a damaged file) is refused, naming it, not made into NaN.
    #[test]
    fn a_negative_stored_variance_is_refused() {
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        checked_batch_norm(4, vb.pp("bn0")).unwrap();
        let negative = Tensor::full(-1f32, 4, &Device::Cpu).unwrap();
        varmap.set_one("bn0.running_var", negative).unwrap();
        let e = checked_batch_norm(4, vb.pp("bn0")).unwrap_err().to_string();
        assert!(e.contains("bn0.running_var holds a variance of -1"), "{e}");
        // A NaN anywhere, not only first.
        let nan = Tensor::new(&[1f32, 1.0, f32::NAN, 1.0], &Device::Cpu).unwrap();
        varmap.set_one("bn0.running_var", nan).unwrap();
        let e = checked_batch_norm(4, vb.pp("bn0")).unwrap_err().to_string();
        assert!(e.contains("a variance of NaN"), "{e}");
    }
}
