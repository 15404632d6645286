//! The composer classifier: a 6-layer Transformer encoder over the roll and a linear head.
//!
//! The roll `[B, T, 128]` is cut into tokens of `patch_steps` steps (one beat by default), each
//! projected linearly to the model width; the encoder's outputs are averaged over time and a
//! linear head gives one logit per composer. Patching a beat into one token makes a 16-bar
//! snippet 64 tokens long, which is what lets the stack train for many epochs on two cores.
//!
//! With [`Config::metre_map`] each token is also told where in its bar it starts and how long
//! its bar is, from the piece's metre map (two learned embeddings added to the token's).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};

use crate::meter::WindowBars;
use crate::models::transformer::{DropoutRng, Stack, StackConfig, mean_pool};
use crate::roll::PITCHES;

/// Rows of each metre embedding: places in a bar of 0..=32 steps, bar lengths of 1..=32 (8/4 at
/// most; a longer bar shares the last row, and a place past 32 too).
pub const BAR_ROWS: usize = 33;

/// Sizes of the classifier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Steps per token.
    pub patch_steps: usize,
    /// Composers (output classes).
    pub classes: usize,
    /// The encoder stack.
    pub stack: StackConfig,
    /// Whether each token is told its place in its bar and its bar's length, read from the
    /// piece's metre map (false in models from before it: they read the notes alone). Not
    /// written when false, so the sizes of a model without it read as they did before it (a
    /// run from then resumes).
    #[serde(default, skip_serializing_if = "is_false")]
    pub metre_map: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl crate::models::saved::MinParameters for Config {
    /// The stack's, the input embedding's and the head's weights.
    fn min_parameters(&self) -> u128 {
        use crate::models::saved::product;
        self.stack
            .min_parameters()
            .saturating_add(product(&[self.patch_steps, PITCHES, self.stack.width]))
            .saturating_add(product(&[self.stack.width, self.classes]))
            .saturating_add(if self.metre_map {
                product(&[2, BAR_ROWS, self.stack.width])
            } else {
                0
            })
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
            metre_map: false,
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
    /// Place in the bar and bar length of each token (with [`Config::metre_map`]).
    bars: Option<(Embedding, Embedding)>,
    stack: Stack,
    head: Linear,
    cfg: Config,
}

impl ComposerClassifier {
    /// Builds it under `vb` (`embed`, `stack.*`, `head`, and with the metre map
    /// `within_bar_positions.{place,length}`, named to sort after the others so that a seeded
    /// initialisation draws the other weights as it would without them).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.patch_steps == 0 || cfg.classes == 0 {
            candle_core::bail!("patch size and classes must be positive");
        }
        let bars = if cfg.metre_map {
            let vb = vb.pp("within_bar_positions");
            Some((
                embedding(BAR_ROWS, cfg.stack.width, vb.pp("place"))?,
                embedding(BAR_ROWS, cfg.stack.width, vb.pp("length"))?,
            ))
        } else {
            None
        };
        Ok(ComposerClassifier {
            embed: linear(cfg.patch_steps * PITCHES, cfg.stack.width, vb.pp("embed"))?,
            bars,
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
    /// dropout when `rng` is given (training). `bars` says where each step falls in its bar
    /// (read only with [`Config::metre_map`], and then of the roll's shape).
    pub fn forward_t(&self, roll: &Tensor, bars: &WindowBars, rng: DropoutRng) -> Result<Tensor> {
        let (b, t, p) = roll.dims3()?;
        let patch = self.cfg.patch_steps;
        if !t.is_multiple_of(patch) || t == 0 {
            candle_core::bail!("snippet of {t} steps is not a positive multiple of {patch}");
        }
        let tokens = roll.reshape((b, t / patch, patch * p))?;
        let mut x = self.embed.forward(&tokens)?;
        if let Some((place, length)) = &self.bars {
            if bars.items() != b || bars.steps() != t {
                candle_core::bail!(
                    "bar positions of {} windows of {} steps for {b} of {t}",
                    bars.items(),
                    bars.steps()
                );
            }
            let n = t / patch;
            let (mut places, mut lengths) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
            for item in 0..b {
                for k in 0..n {
                    let (into, len) = bars.at(item, k * patch);
                    places.push(into.min(BAR_ROWS - 1) as u32);
                    lengths.push(len.min(BAR_ROWS - 1) as u32);
                }
            }
            let device = x.device();
            let places = Tensor::from_vec(places, (b, n), device)?;
            let lengths = Tensor::from_vec(lengths, (b, n), device)?;
            x = ((x + place.forward(&places)?)? + length.forward(&lengths)?)?;
        }
        let h = self.stack.forward(&x, rng)?;
        self.head.forward(&mean_pool(&h)?)
    }

    /// Inference: roll -> logits.
    pub fn forward(&self, roll: &Tensor, bars: &WindowBars) -> Result<Tensor> {
        self.forward_t(roll, bars, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_without_the_metre_read_as_before_it() {
        // A checkpoint from before the metre input has no "metre_map": its run resumes only if
        // the sizes of a model without it are written the same way.
        let cfg = Config::studio(20);
        let json = serde_json::to_value(cfg).unwrap();
        assert!(json.get("metre_map").is_none(), "{json}");
        let told = Config {
            metre_map: true,
            ..cfg
        };
        let back: Config = serde_json::from_value(serde_json::to_value(told).unwrap()).unwrap();
        assert_eq!(back, told);
        assert_eq!(serde_json::from_value::<Config>(json).unwrap(), cfg);
    }
}
