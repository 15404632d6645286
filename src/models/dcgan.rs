//! The paper's DCGAN over 128 x 128 roll snippets (128 steps x 128 pitches, one channel).
//!
//! - Generator: z `[B, 128]` -> 6 transposed convolutions (1 -> 4 -> 8 -> 16 -> 32 -> 64 -> 128
//!   pixels), batch norm and ReLU between them; logits `[B, 1, 128, 128]` (sigmoid = the
//!   probability that a cell sounds).
//! - Discriminator: 6 convolutions (128 -> 64 -> ... -> 4 -> 1 pixels), leaky ReLU, batch norm
//!   after the first; one logit per snippet (sigmoid = probability of "real").

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{
    BatchNorm, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, VarBuilder,
    batch_norm, conv_transpose2d, conv_transpose2d_no_bias, conv2d_no_bias,
};

/// Sizes of the DCGAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
            norms.push(batch_norm(w * g, 1e-5, vb.pp(format!("bn{i}")))?);
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
            if i > 0 {
                norms.push(batch_norm(w * d, 1e-5, vb.pp(format!("bn{i}")))?);
            }
            input = w * d;
        }
        convs.push(conv2d_no_bias(input, 1, 4, down(true), vb.pp("conv5"))?);
        Ok(Discriminator { convs, norms })
    }

    /// Snippets `[B, 1, 128, 128]` (values in 0..1) -> logits `[B]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.logits(&self.features_t(x, train)?)
    }

    /// Snippets -> the last hidden layer's features `[B, C, 4, 4]`, before the final
    /// convolution (what feature matching compares).
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let leaky = |t: Tensor| -> Result<Tensor> { t.maximum(&(&t * 0.2)?) };
        let mut h = leaky(self.convs[0].forward(x)?)?;
        for (conv, norm) in self.convs[1..5].iter().zip(&self.norms) {
            h = leaky(norm.forward_t(&conv.forward(&h)?, train)?)?;
        }
        Ok(h)
    }

    /// Features from [`Self::features_t`] -> logits `[B]`.
    fn logits(&self, features: &Tensor) -> Result<Tensor> {
        self.convs[5].forward(features)?.flatten_all()
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
