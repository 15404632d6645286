//! The LSTM-VAE of the paper: a recurrent variational autoencoder over piano rolls.
//!
//! Shapes (B = batch, T = steps, P = 128 pitches, H = hidden, L = layers, Z = latent):
//! - encoder: an L-layer LSTM reads the roll `[B, T, P]`; the final hidden states of all layers,
//!   concatenated `[B, L*H]`, map linearly to the mean and log-variance of z `[B, Z]`;
//! - decoder: its initial (h, c) for every layer is a linear map of z (h through tanh, the
//!   range an LSTM's h has); its input at step t is
//!   the roll at step t-1 (silence at t = 0) concatenated with z, `[B, P+Z]` (with the
//!   position in the bar between them, `[B, P+M+Z]`, where the config has a metre input of M,
//!   [`Config::decoder_input`]); a linear layer gives per-pitch logits `[B, T, P]` (sigmoid =
//!   Bernoulli probabilities).
//!
//! Loss = BCE (summed over cells, averaged over the batch, computed from logits for
//! stability) + beta * KL(q(z|x) || N(0, I)). Weight names follow PyTorch's `nn.LSTM`
//! (`encoder.weight_ih_l0`, ...).

use candle_core::{D, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder, linear, linear_no_bias};
use rand::Rng;

use crate::meter::{StepMeter, WindowBars};
use crate::models::fused_lstm::LstmWeights;
use crate::models::vae::{DiagonalGaussian, bce_with_logits};
use crate::roll::PITCHES;

/// The metre input's position of every step of a batch of decodes, `[B][T]` (see
/// [`Config::bar_positions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarPositions {
    steps: usize,
    at: Vec<u16>,
}

impl BarPositions {
    /// Positions for decodes of `steps` steps, one per `(metre map, first step)` window.
    pub fn new<'a>(
        cfg: &Config,
        steps: usize,
        windows: impl IntoIterator<Item = (&'a [StepMeter], usize)>,
    ) -> Self {
        let metre = cfg.metre.max(1);
        let at = if cfg.metre_map && cfg.metre > 0 {
            // Each map laid out once for all its windows (see WindowBars).
            let bars = &WindowBars::new(steps, windows);
            (0..bars.items())
                .flat_map(|i| (0..steps).map(move |t| (bars.at(i, t).0 % metre) as u16))
                .collect()
        } else {
            // Bars of `metre` steps from the piece's start (a window's first step is its step
            // `start`): training snippets start on those bar lines, so there it is the same as
            // counting from the window's start; a primer cut mid-bar keeps the piece's phase.
            windows
                .into_iter()
                .flat_map(|(_, start)| (0..steps).map(move |t| ((start + t) % metre) as u16))
                .collect()
        };
        BarPositions { steps, at }
    }

    /// `batch` decodes that each start on a bar line of 4/4 (or of `metre` steps): what a model
    /// without [`Config::metre_map`] is always told, and a model with it on a piece with no
    /// metre map.
    pub fn from_bar_line(cfg: &Config, batch: usize, steps: usize) -> Self {
        Self::new(cfg, steps, std::iter::repeat_n((&[][..], 0), batch))
    }

    /// How many decodes.
    pub fn items(&self) -> usize {
        self.at.len().checked_div(self.steps).unwrap_or(0)
    }

    /// The position of step `t` of decode `item`.
    pub fn at(&self, item: usize, t: usize) -> usize {
        usize::from(self.at[item * self.steps + t])
    }
}

/// Sizes of the LSTM-VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
/// Unknown fields are refused: a model of a newer version whose config says how it computes
/// in a way this one does not know would otherwise run as if it did not say it.
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Pitches per step (128).
    pub input: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// LSTM layers in the encoder and in the decoder.
    pub layers: usize,
    /// Size of the latent code z.
    pub latent: usize,
    /// Adds a linear map of the previous step to the output logits (`output_skip`), so that
    /// holding a note needs no trip through the LSTM and the recurrence models what changes.
    /// Off in the shipped presets; older manifests, which lack it, load as off.
    #[serde(default)]
    pub output_skip: bool,
    /// Metre input: when above 0, the decoder also sees, at each step, a one-hot of its
    /// position in its bar over `metre` steps (16 = a 4/4 bar of 16th notes; where the bars
    /// fall: [`Config::metre_map`]). Notes start and end mostly on beats; the plain decoder
    /// has to infer where the beats are. 0 = off (the paper's decoder); older manifests,
    /// which lack it, load as off.
    #[serde(default)]
    pub metre: usize,
    /// With the metre input, where the bars fall: false = every `metre` steps from the start of
    /// the piece, where training snippets start (4/4 bars for 16, whatever the piece's metre; the shipped presets before this
    /// field, and older manifests, which lack it); true = by the piece's own metre map (3/4 and
    /// 6/8 bars of 12 steps, a change of metre starting a bar), so a snippet may start
    /// anywhere. A bar longer than `metre` steps wraps round (the 17th step of a 6/4 bar of 24
    /// counts as its first).
    #[serde(default)]
    pub metre_map: bool,
}

/// The sizes in words, as training prints them: "hidden 256 x 3 layers, latent 20, metre 16
/// by each piece's map".
impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hidden {} x {} layers, latent {}",
            self.hidden, self.layers, self.latent
        )?;
        match (self.metre, self.metre_map) {
            (0, _) => write!(f, ", no metre input")?,
            (n, true) => write!(f, ", metre {n} by each piece's map")?,
            (n, false) => write!(f, ", metre {n} from each piece's start")?,
        }
        if self.output_skip {
            write!(f, ", output skip")?;
        }
        Ok(())
    }
}

impl Config {
    /// The paper's sizes: hidden 512, 3 layers, latent 20.
    pub fn paper() -> Self {
        Config {
            input: PITCHES,
            hidden: 512,
            layers: 3,
            latent: 20,
            output_skip: false,
            metre: 0,
            metre_map: false,
        }
    }

    /// The studio default: hidden 256, 2 layers, latent 20 (the size the PyTorch reference
    /// trains on CPU), and the metre input over a 16-step bar (lower reconstruction BCE and
    /// higher frame F1 than without it at the same training steps; see the README), its bars
    /// where each piece's metre map puts them (lower BCE than 4/4 bars counted from the
    /// piece's start, in a fine-tune of the same length).
    pub fn studio() -> Self {
        Config {
            input: PITCHES,
            hidden: 256,
            layers: 2,
            latent: 20,
            output_skip: false,
            metre: 16,
            metre_map: true,
        }
    }

    /// Width of the decoder's input at each step: previous step, metre one-hot, z.
    pub fn decoder_input(&self) -> usize {
        self.input + self.metre + self.latent
    }

    /// The model's parameter count, from its sizes alone (nothing allocated).
    pub fn parameters(&self) -> u128 {
        use crate::models::saved::product;
        let (h, layers) = (self.hidden, self.layers);
        // Each LSTM layer: input and recurrent weights of its four gates, and two biases.
        let stack = |input: usize| {
            let first = product(&[4, h, input + h]) + product(&[8, h]);
            let others = product(&[layers.saturating_sub(1), 4, h, 2 * h])
                + product(&[layers.saturating_sub(1), 8, h]);
            first.saturating_add(others)
        };
        let state = layers.saturating_mul(h);
        let linear = |i: usize, o: usize| product(&[i, o]) + o as u128;
        (stack(self.input))
            .saturating_add(stack(self.decoder_input()))
            .saturating_add(2 * linear(state, self.latent))
            .saturating_add(linear(self.latent, 2 * state))
            .saturating_add(linear(h, self.input))
            .saturating_add(match self.output_skip {
                true => product(&[self.input, self.input]),
                false => 0,
            })
    }

    /// Largest metre accepted (a bar of 4 whole notes in 16th-note steps).
    pub const MAX_METRE: usize = 64;
    /// Largest hidden size a run trains (eight times the paper's 512).
    pub const MAX_HIDDEN: usize = 4096;
    /// Most LSTM layers a run trains.
    pub const MAX_LAYERS: usize = 16;
    /// Largest latent a run trains.
    pub const MAX_LATENT: usize = 1024;

    /// Training snippets start on multiples of this many steps: bar lines where the metre
    /// input counts bars of `metre` steps from the piece's start, anywhere where it reads the
    /// metre map.
    pub fn snippet_alignment(&self) -> usize {
        if self.metre_map { 1 } else { self.metre.max(1) }
    }

    /// Whether weights of one config fit a model of the other: the same sizes (how the metre
    /// input counts bars is not a size).
    pub fn same_sizes(&self, other: &Config) -> bool {
        Config {
            metre_map: other.metre_map,
            ..*self
        } == *other
    }

    /// Whether snippets of `steps` steps, laid end to end from a piece's start, each start on
    /// a bar line as the model counts bars, as its training snippets did: always with the
    /// metre map or without the metre input; counting bars of `metre` steps from the piece's
    /// start, only whole bars.
    pub fn snippets_hold_whole_bars(&self, steps: usize) -> bool {
        self.metre == 0 || self.metre_map || steps.is_multiple_of(self.metre)
    }

    /// The metre input's position of each of the `steps` steps of a decode that starts at
    /// step `start` of a piece with metre map `meters` (see [`Config::metre_map`]): values in
    /// `0..metre`, all 0 without the metre input.
    pub fn bar_positions(&self, meters: &[StepMeter], start: usize, steps: usize) -> Vec<u16> {
        BarPositions::new(self, steps, [(meters, start)]).at
    }

    /// The name of the preset of these sizes, if any ("studio" or "paper"), however the
    /// metre input counts bars.
    pub fn preset_name(&self) -> Option<&'static str> {
        [("studio", Self::studio()), ("paper", Self::paper())]
            .into_iter()
            .find(|(_, preset)| preset.same_sizes(self))
            .map(|(name, _)| name)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::studio()
    }
}

/// The decoder's recurrent state: (h, c) per layer, each `[B, H]`.
#[derive(Debug, Clone)]
pub struct DecoderState {
    /// Hidden states, one per layer.
    pub h: Vec<Tensor>,
    /// Cell states, one per layer.
    pub c: Vec<Tensor>,
}

/// The LSTM-VAE.
pub struct LstmVae {
    cfg: Config,
    encoder: Vec<LstmWeights>,
    to_mean: Linear,
    to_logvar: Linear,
    z_to_state: Linear,
    decoder: Vec<LstmWeights>,
    output: Linear,
    output_skip: Option<Linear>,
    composed: bool,
}

fn lstm_stack(input: usize, cfg: &Config, vb: VarBuilder) -> Result<Vec<LstmWeights>> {
    (0..cfg.layers)
        .map(|layer| {
            let in_dim = if layer == 0 { input } else { cfg.hidden };
            LstmWeights::new(in_dim, cfg.hidden, layer, &vb)
        })
        .collect()
}

impl LstmVae {
    /// Builds the model, creating or loading its weights through `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let state = cfg.layers * cfg.hidden;
        Ok(LstmVae {
            cfg: *cfg,
            encoder: lstm_stack(cfg.input, cfg, vb.pp("encoder"))?,
            to_mean: linear(state, cfg.latent, vb.pp("to_mean"))?,
            to_logvar: linear(state, cfg.latent, vb.pp("to_logvar"))?,
            z_to_state: linear(cfg.latent, 2 * state, vb.pp("z_to_state"))?,
            decoder: lstm_stack(cfg.decoder_input(), cfg, vb.pp("decoder"))?,
            output: linear(cfg.hidden, cfg.input, vb.pp("output"))?,
            output_skip: if cfg.output_skip {
                Some(linear_no_bias(cfg.input, cfg.input, vb.pp("output_skip"))?)
            } else {
                None
            },
            composed: false,
        })
    }

    /// Runs the LSTMs step by step with candle's autograd instead of the fused operation
    /// (slow and memory-hungry; for comparing the two).
    pub fn use_composed_lstm(&mut self, composed: bool) {
        self.composed = composed;
    }

    /// The device its weights are on (where its inputs must be).
    pub fn device(&self) -> &Device {
        self.to_mean.weight().device()
    }

    /// The model's sizes.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The decoder's LSTM layers.
    pub fn decoder_layers(&self) -> &[LstmWeights] {
        &self.decoder
    }

    /// The map from z to the decoder's initial state (`[2 * L * H]`: h then c per layer).
    pub fn z_to_state(&self) -> &Linear {
        &self.z_to_state
    }

    /// The output layer (hidden -> per-pitch logits).
    pub fn output_layer(&self) -> &Linear {
        &self.output
    }

    /// The map from the previous step to the logits, when the config has `output_skip`.
    pub fn output_skip(&self) -> Option<&Linear> {
        self.output_skip.as_ref()
    }

    /// Logits from the top layer's hidden states and the previous step (both `[.., H]` /
    /// `[.., P]` with the same leading dimensions).
    fn logits(&self, hidden: &Tensor, previous: &Tensor) -> Result<Tensor> {
        let logits = self.output.forward(hidden)?;
        match &self.output_skip {
            Some(skip) => logits + skip.forward(previous)?,
            None => Ok(logits),
        }
    }

    /// q(z | roll) for rolls `[B, T, P]`.
    pub fn encode(&self, roll: &Tensor) -> Result<DiagonalGaussian> {
        let (b, t, _) = roll.dims3()?;
        if t == 0 {
            candle_core::bail!("a roll of no steps has nothing to encode");
        }
        let zeros = Tensor::zeros((b, self.cfg.hidden), roll.dtype(), roll.device())?;
        let mut x = roll.transpose(0, 1)?.contiguous()?;
        let mut finals = Vec::with_capacity(self.cfg.layers);
        for lstm in &self.encoder {
            x = lstm.sequence(&x, &zeros, &zeros, self.composed)?;
            finals.push(x.get(t - 1)?);
        }
        let h = Tensor::cat(&finals, D::Minus1)?;
        Ok(DiagonalGaussian {
            mean: self.to_mean.forward(&h)?,
            logvar: self.to_logvar.forward(&h)?,
        })
    }

    /// The decoder's initial state for codes `z` `[B, Z]`: one (h, c) per layer.
    pub fn initial_state(&self, z: &Tensor) -> Result<DecoderState> {
        let s = self.z_to_state.forward(z)?;
        let hidden = self.cfg.hidden;
        let mut state = DecoderState {
            h: Vec::with_capacity(self.cfg.layers),
            c: Vec::with_capacity(self.cfg.layers),
        };
        for layer in 0..self.cfg.layers {
            state
                .h
                .push(s.narrow(1, 2 * layer * hidden, hidden)?.tanh()?);
            state.c.push(
                s.narrow(1, (2 * layer + 1) * hidden, hidden)?
                    .contiguous()?,
            );
        }
        Ok(state)
    }

    /// Teacher-forced decoding: logits `[B, T, P]` of each step given the previous steps of
    /// `roll` `[B, T, P]`, the code `z` `[B, Z]` and where each step falls in its bar.
    pub fn decode(&self, roll: &Tensor, z: &Tensor, bars: &BarPositions) -> Result<Tensor> {
        self.decode_dropped(roll, z, bars, None)
    }

    /// [`LstmVae::decode`] with decoder input dropout: `keep` `[B, T]` (0 or 1) blanks the
    /// previous step the decoder sees at each position where it is 0, so the decoder has to
    /// rely on z (a remedy against posterior collapse, used in training only).
    pub fn decode_dropped(
        &self,
        roll: &Tensor,
        z: &Tensor,
        bars: &BarPositions,
        keep: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, t, p) = roll.dims3()?;
        if t == 0 {
            candle_core::bail!("a roll of no steps has nothing to decode");
        }
        if (bars.items(), bars.steps) != (b, t) {
            candle_core::bail!(
                "bar positions for {} items of {} steps, but the batch has {b} of {t}",
                bars.items(),
                bars.steps
            );
        }
        let silence = Tensor::zeros((b, 1, p), roll.dtype(), roll.device())?;
        let mut previous = Tensor::cat(&[&silence, &roll.narrow(1, 0, t - 1)?], 1)?;
        if let Some(keep) = keep {
            previous = previous.broadcast_mul(&keep.unsqueeze(2)?)?;
        }
        let previous = previous.transpose(0, 1)?;
        let mut x = self.decoder_input(&previous, z, |item, step| bars.at(item, step))?;
        let init = self.initial_state(z)?;
        for ((lstm, h), c) in self.decoder.iter().zip(&init.h).zip(&init.c) {
            x = lstm.sequence(&x, h, c, self.composed)?;
        }
        self.logits(&x, &previous)?.transpose(0, 1)
    }

    /// The decoder's input for T steps: the previous steps `[T, B, P]`, the metre one-hot
    /// (when the config has one; `bar(item, t)` is the position of step t of item) and the code
    /// `z` `[B, Z]`, concatenated to `[T, B, P + metre + Z]`.
    fn decoder_input(
        &self,
        previous: &Tensor,
        z: &Tensor,
        bar: impl Fn(usize, usize) -> usize,
    ) -> Result<Tensor> {
        let (t, b, _) = previous.dims3()?;
        let mut parts = vec![previous.clone()];
        let metre = self.cfg.metre;
        if metre > 0 {
            let mut data = vec![0f32; t * b * metre];
            for (k, row) in data.chunks_exact_mut(metre).enumerate() {
                row[bar(k % b, k / b) % metre] = 1.0;
            }
            parts.push(
                Tensor::from_vec(data, (t, b, metre), previous.device())?
                    .to_dtype(previous.dtype())?,
            );
        }
        parts.push(z.unsqueeze(0)?.broadcast_as((t, b, self.cfg.latent))?);
        Tensor::cat(&parts, D::Minus1)?.contiguous()
    }

    /// One sampling step: logits `[B, P]` for a step at position `bar` of its bar (see
    /// [`Config::bar_positions`]) given the previous step `[B, P]`, the code `z` and the
    /// decoder state, which is advanced in place.
    pub fn decode_step(
        &self,
        previous: &Tensor,
        z: &Tensor,
        bar: usize,
        state: &mut DecoderState,
    ) -> Result<Tensor> {
        let mut x = self
            .decoder_input(&previous.unsqueeze(0)?, z, |_, _| bar)?
            .squeeze(0)?;
        for (layer, lstm) in self.decoder.iter().enumerate() {
            let (h, c) = lstm.step(&x, &state.h[layer], &state.c[layer])?;
            x = h.clone();
            state.h[layer] = h;
            state.c[layer] = c;
        }
        self.logits(&x, previous)
    }

    /// Encodes, samples z with `rng`, decodes: (logits `[B, T, P]`, posterior).
    pub fn forward(
        &self,
        roll: &Tensor,
        bars: &BarPositions,
        rng: &mut impl Rng,
    ) -> Result<(Tensor, DiagonalGaussian)> {
        let posterior = self.encode(roll)?;
        let z = posterior.sample(rng)?;
        Ok((self.decode(roll, &z, bars)?, posterior))
    }
}

/// Loss parts of one batch.
#[derive(Debug, Clone)]
pub struct Loss {
    /// The total to minimise: recon + beta * kl.
    pub total: Tensor,
    /// Reconstruction BCE per snippet (summed over cells).
    pub recon: Tensor,
    /// KL per snippet (summed over latent dimensions).
    pub kl: Tensor,
}

/// The VAE loss for a batch `[B, T, P]` at KL weight `beta`.
pub fn loss(
    model: &LstmVae,
    roll: &Tensor,
    bars: &BarPositions,
    beta: f64,
    rng: &mut impl Rng,
) -> Result<Loss> {
    let (logits, posterior) = model.forward(roll, bars, rng)?;
    let recon = bce_with_logits(&logits, roll)?;
    let kl = posterior.kl_per_dim()?.sum_all()?;
    let total = (&recon + kl.affine(beta, 0.0)?)?;
    Ok(Loss { total, recon, kl })
}
