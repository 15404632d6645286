//! The paper's Transformer VAE: a whole snippet in, a whole snippet out.
//!
//! Shapes (B = batch, T = steps, W = 128 = the roll itself, no input projection):
//! - encoder: learned positional embeddings + a stack of Transformer encoder layers over the
//!   roll `[B, T, W]`; the first output `[B, W]` is the mean of z and the last the
//!   log-variance, so z has W = 128 values;
//! - decoder: z replicated over the T positions, plus positional embeddings, through another
//!   stack; a linear layer gives per-pitch logits `[B, T, W]` (sigmoid = probabilities).
//!
//! Loss = BCE (sum) + beta * KL, as for the LSTM-VAE.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use crate::models::transformer::{DropoutRng, Stack, StackConfig};
use crate::models::vae::DiagonalGaussian;
use crate::roll::PITCHES;

/// Sizes of the Transformer VAE (encoder and decoder stacks share them).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
/// Unknown fields are refused: a model of a newer version whose config says how it computes
/// in a way this one does not know would otherwise run as if it did not say it.
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Each stack; `width` must be 128 (the roll).
    pub stack: StackConfig,
}

impl crate::models::saved::MinParameters for Config {
    /// Two stacks of these sizes, encoder and decoder.
    fn min_parameters(&self) -> u128 {
        self.stack.min_parameters().saturating_mul(2)
    }
}

impl Config {
    /// The paper's shape: 6 + 6 layers of width 128 (8 heads), positions up to 320 steps.
    pub fn paper() -> Self {
        Config {
            stack: StackConfig {
                width: PITCHES,
                heads: 8,
                feed_forward: 512,
                layers: 6,
                max_len: 320,
                dropout: 0.0,
            },
        }
    }

    /// Size of z.
    pub fn latent(&self) -> usize {
        self.stack.width
    }
}

/// The Transformer VAE.
#[derive(Debug, Clone)]
pub struct TransformerVae {
    encoder: Stack,
    decoder: Stack,
    output: Linear,
    cfg: Config,
}

impl TransformerVae {
    /// Builds it under `vb` (`encoder.*`, `decoder.*`, `output`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.stack.width != PITCHES {
            candle_core::bail!("the width must be {PITCHES} (the roll itself)");
        }
        Ok(TransformerVae {
            encoder: Stack::new(&cfg.stack, vb.pp("encoder"))?,
            decoder: Stack::new(&cfg.stack, vb.pp("decoder"))?,
            output: linear(cfg.stack.width, PITCHES, vb.pp("output"))?,
            cfg: *cfg,
        })
    }

    /// The sizes.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device its weights live on.
    pub fn device(&self) -> candle_core::Device {
        self.output.weight().device().clone()
    }

    /// q(z | x) for rolls `[B, T, 128]`: mean from the first output, log-variance from the last.
    pub fn encode_t(&self, x: &Tensor, rng: DropoutRng) -> Result<DiagonalGaussian> {
        let t = x.dim(1)?;
        let h = self.encoder.forward(x, rng)?;
        Ok(DiagonalGaussian {
            mean: h.narrow(1, 0, 1)?.squeeze(1)?,
            logvar: h.narrow(1, t - 1, 1)?.squeeze(1)?,
        })
    }

    /// Inference encoding.
    pub fn encode(&self, x: &Tensor) -> Result<DiagonalGaussian> {
        self.encode_t(x, None)
    }

    /// Logits `[B, T, 128]` of a `steps`-long snippet from codes `z` `[B, 128]`.
    pub fn decode_t(&self, z: &Tensor, steps: usize, rng: DropoutRng) -> Result<Tensor> {
        let (b, w) = z.dims2()?;
        let tokens = z.unsqueeze(1)?.broadcast_as((b, steps, w))?.contiguous()?;
        self.output.forward(&self.decoder.forward(&tokens, rng)?)
    }

    /// Inference decoding.
    pub fn decode(&self, z: &Tensor, steps: usize) -> Result<Tensor> {
        self.decode_t(z, steps, None)
    }

    /// Logits of the reconstruction of `x` through its posterior mean.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let q = self.encode(x)?;
        self.decode(&q.mean, x.dim(1)?)
    }
}
