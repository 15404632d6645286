//! The composer classifier: a 6-layer Transformer encoder over the roll and a linear head.
//!
//! The roll `[B, T, 128]` is cut into tokens of `patch_steps` steps (one beat by default), each
//! projected linearly to the model width; the encoder's outputs are averaged over time and a
//! linear head gives one logit per composer. Patching a beat into one token makes a 16-bar
//! snippet 64 tokens long, which is what lets the stack train for many epochs on two cores.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use crate::models::transformer::{DropoutRng, Stack, StackConfig, mean_pool};
use crate::roll::PITCHES;

/// Sizes of the classifier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Steps per token.
    pub patch_steps: usize,
    /// Composers (output classes).
    pub classes: usize,
    /// The encoder stack.
    pub stack: StackConfig,
}

impl crate::models::saved::MinParameters for Config {
    /// The stack's, the input embedding's and the head's weights.
    fn min_parameters(&self) -> u128 {
        use crate::models::saved::product;
        self.stack
            .min_parameters()
            .saturating_add(product(&[self.patch_steps, PITCHES, self.stack.width]))
            .saturating_add(product(&[self.stack.width, self.classes]))
    }
}

impl Config {
    /// The shipped sizes: 6 layers of width 128, 8 heads, one beat per token, up to 128 beats.
    pub fn studio(classes: usize) -> Self {
        Config {
            patch_steps: 4,
            classes,
            stack: StackConfig {
                width: 128,
                heads: 8,
                feed_forward: 256,
                layers: 6,
                max_len: 128,
                dropout: 0.1,
            },
        }
    }

    /// Longest snippet in steps.
    pub fn max_steps(&self) -> usize {
        self.patch_steps.saturating_mul(self.stack.max_len)
    }
}

/// The classifier network.
#[derive(Debug, Clone)]
pub struct ComposerClassifier {
    embed: Linear,
    stack: Stack,
    head: Linear,
    cfg: Config,
}

impl ComposerClassifier {
    /// Builds it under `vb` (`embed`, `stack.*`, `head`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.patch_steps == 0 || cfg.classes == 0 {
            candle_core::bail!("patch size and classes must be positive");
        }
        Ok(ComposerClassifier {
            embed: linear(cfg.patch_steps * PITCHES, cfg.stack.width, vb.pp("embed"))?,
            stack: Stack::new(&cfg.stack, vb.pp("stack"))?,
            head: linear(cfg.stack.width, cfg.classes, vb.pp("head"))?,
            cfg: *cfg,
        })
    }

    /// The device its weights live on.
    pub fn device(&self) -> candle_core::Device {
        self.head.weight().device().clone()
    }

    /// The sizes.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Roll `[B, T, 128]` (T a multiple of `patch_steps`) -> composer logits `[B, C]`, with
    /// dropout when `rng` is given (training).
    pub fn forward_t(&self, roll: &Tensor, rng: DropoutRng) -> Result<Tensor> {
        let (b, t, p) = roll.dims3()?;
        if !t.is_multiple_of(self.cfg.patch_steps) || t == 0 {
            candle_core::bail!(
                "snippet of {t} steps is not a positive multiple of {}",
                self.cfg.patch_steps
            );
        }
        let tokens = roll.reshape((b, t / self.cfg.patch_steps, self.cfg.patch_steps * p))?;
        let h = self.stack.forward(&self.embed.forward(&tokens)?, rng)?;
        self.head.forward(&mean_pool(&h)?)
    }

    /// Inference: roll -> logits.
    pub fn forward(&self, roll: &Tensor) -> Result<Tensor> {
        self.forward_t(roll, None)
    }
}
