//! The composer classifier: a 6-layer Transformer encoder over the roll and a linear head.
//!
//! The roll `[B, T, 128]` is cut into tokens of `patch_steps` steps (one beat by default), each
//! projected linearly to the model width; the encoder's outputs are averaged over time and a
//! linear head gives one logit per composer. Patching a beat into one token makes a 16-bar
//! snippet 64 tokens long, which is what lets the stack train for many epochs on two cores.
//!
//! With [`Config::metre_map`] each token is also told where in its bar it starts and how long
//! its bar is, from the piece's metre map (two learned embeddings added to the token's).
//!
//! With [`Config::statistics`] a second linear head reads a few statistics of the whole snippet
//! ([`roll_statistics`]: which pitches and pitch classes sound, on which sixteenth of the bar
//! notes start, how dense the texture is), standardised by their spread over the training windows,
//! and its logits are added to the encoder's; both are trained together.

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
/// Unknown fields are refused: a model of a newer version whose config says how it computes
/// in a way this one does not know would otherwise run as if it did not say it.
#[serde(deny_unknown_fields)]
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
    /// Whether a second linear head reads the snippet's statistics ([`roll_statistics`]) and
    /// adds its logits to the encoder's (false in models from before it; not written when
    /// false, so their sizes read as before).
    #[serde(default, skip_serializing_if = "is_false")]
    pub statistics: bool,
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
            .saturating_add(if self.statistics {
                product(&[STATISTICS, self.classes])
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
            statistics: false,
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
    /// The statistics head and the features' training mean and spread (with
    /// [`Config::statistics`]).
    statistics: Option<StatisticsHead>,
    cfg: Config,
}

/// A linear head over standardised [`roll_statistics`].
#[derive(Debug, Clone)]
struct StatisticsHead {
    mean: Tensor,
    std: Tensor,
    head: Linear,
}

/// How many spreads from its training mean a statistic may count for (further is clamped).
pub const STANDARD_LIMIT: f32 = 10.0;

/// What is added to each statistic's spread over the training windows before it divides: a
/// statistic that hardly varies there (a pitch almost never played) still scales sensibly.
pub const SPREAD_FLOOR: f64 = 1e-3;

/// Statistics [`roll_statistics`] gives per snippet: 128 pitches, 12 pitch classes, 16 onset
/// places and 4 densities.
pub const STATISTICS: usize = PITCHES + 12 + 16 + 4;

/// A few statistics of each snippet of `roll` `[B, T, 128]` (cells 0..1), `[B, STATISTICS]`:
/// for each pitch, the share of the steps on which it sounds; the shares of the sounding cells
/// that fall on each pitch class; the shares of the onsets that fall on each sixteenth of the
/// bar (the step past the bar line `bars` gives, counted round 16 in a longer bar); then onsets
/// per step, sounding cells per step, the share of silent steps, and ln(1 + sounding cells per
/// onset), a mean note length. An onset is a cell sounding where the step before did not (or at
/// the snippet's start): a note struck again on a held pitch is not one, unlike the statistics
/// baseline's (`stats_baseline::window_features`), which reads the roll's own onsets. Steps of
/// silence padding count as steps. Built of tensor operations, so a gradient reaches the roll.
pub fn roll_statistics(roll: &Tensor, bars: &WindowBars) -> Result<Tensor> {
    let (b, t, p) = roll.dims3()?;
    if p != PITCHES || t == 0 {
        candle_core::bail!("statistics of a roll [{b}, {t}, {p}], not [B, T>0, {PITCHES}]");
    }
    if bars.items() != b || bars.steps() != t {
        candle_core::bail!(
            "bar positions of {} windows of {} steps for {b} of {t}",
            bars.items(),
            bars.steps()
        );
    }
    let eps = 1e-6;
    let steps = t as f64;
    let shares =
        |x: &Tensor| -> Result<Tensor> { x.broadcast_div(&x.sum_keepdim(1)?.affine(1.0, eps)?) };
    let cells = roll.sum(1)?;
    let octaves = PITCHES.div_ceil(12);
    let classes = cells
        .pad_with_zeros(1, 0, octaves * 12 - PITCHES)?
        .reshape((b, octaves, 12))?
        .sum(1)?;
    let before = roll.narrow(1, 0, t - 1)?.pad_with_zeros(1, 1, 0)?;
    let onsets = (roll * before.affine(-1.0, 1.0)?)?.sum(2)?;
    // Each step's sixteenth of its bar, one-hot: [B, T, 16].
    let mut place = vec![0f32; b * t * 16];
    for item in 0..b {
        for step in 0..t {
            place[(item * t + step) * 16 + bars.at(item, step).0 % 16] = 1.0;
        }
    }
    let place = Tensor::from_vec(place, (b, t, 16), roll.device())?;
    let places = onsets.unsqueeze(1)?.matmul(&place)?.squeeze(1)?;
    let onset_count = onsets.sum_keepdim(1)?;
    let sounding = cells.sum_keepdim(1)?;
    let silent = roll.max(2)?.affine(-1.0, 1.0)?.mean_keepdim(1)?;
    let length = sounding
        .div(&onset_count.affine(1.0, eps)?)?
        .affine(1.0, 1.0)?
        .log()?;
    Tensor::cat(
        &[
            (cells / steps)?,
            shares(&classes)?,
            shares(&places)?,
            (onset_count / steps)?,
            (sounding / steps)?,
            silent,
            length,
        ],
        1,
    )
}

impl ComposerClassifier {
    /// Builds it under `vb` (`embed`, `stack.*`, `head`, and with the metre map
    /// `within_bar_positions.{place,length}`, named to sort after the others so that a seeded
    /// initialisation draws the other weights as it would without them).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        if cfg.patch_steps == 0 || cfg.classes == 0 {
            candle_core::bail!("patch size and classes must be positive");
        }
        // Named to sort after the stack and the head (a seeded initialisation draws them as
        // without it; the metre embeddings, which sort after it, are drawn otherwise); the mean
        // and spread are `running_*`, so it leaves them alone (the training run sets them from
        // its windows) and no optimiser moves them (they take no gradient).
        let statistics = if cfg.statistics {
            let vb = vb.pp("statistics_head");
            let std = vb.get_with_hints(STATISTICS, "running_std", candle_nn::Init::Const(1.0))?;
            // Divided by: a spread of 0 would turn every verdict into NaN.
            let smallest = (std.to_dtype(candle_core::DType::F32)?.flatten_all()?)
                .min(0)?
                .to_scalar::<f32>()?;
            if smallest.is_nan() || smallest <= 0.0 {
                candle_core::bail!(
                    "statistics_head.running_std holds a spread of {smallest}: spreads must be \
                     above 0"
                );
            }
            Some(StatisticsHead {
                mean: vb.get_with_hints(STATISTICS, "running_mean", candle_nn::Init::Const(0.0))?,
                std,
                head: linear(STATISTICS, cfg.classes, vb)?,
            })
        } else {
            None
        };
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
            statistics,
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
        let logits = self.head.forward(&mean_pool(&h)?)?;
        match &self.statistics {
            None => Ok(logits),
            Some(s) => {
                // Clamped: a pitch the training windows hardly play has a tiny spread, and a
                // snippet that plays it much must not outvote everything else.
                let z = roll_statistics(roll, bars)?
                    .broadcast_sub(&s.mean.detach())?
                    .broadcast_div(&s.std.detach())?
                    .clamp(-STANDARD_LIMIT, STANDARD_LIMIT)?;
                logits + s.head.forward(&z)?
            }
        }
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

    /// A file whose statistics head has a spread of 0 (the head divides by it) is refused,
    /// not turned into NaN verdicts.
    #[test]
    fn a_statistics_spread_of_zero_is_refused() {
        let cfg = Config {
            statistics: true,
            ..Config::studio(3)
        };
        let mut varmap = candle_nn::VarMap::new();
        let vb =
            VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
        ComposerClassifier::new(&cfg, vb.clone()).unwrap();
        let zeros = Tensor::zeros(
            STATISTICS,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        varmap
            .set_one("statistics_head.running_std", zeros)
            .unwrap();
        let e = ComposerClassifier::new(&cfg, vb).unwrap_err().to_string();
        assert!(e.contains("running_std holds a spread of 0"), "{e}");
    }
}
