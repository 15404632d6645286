//! A Transformer encoder stack (pre-norm self-attention blocks with learned positional
//! embeddings), shared by the composer classifier and the Transformer VAE.
//!
//! Shapes: `[B, T, W]` in, `[B, T, W]` out (W = width, T <= `max_len`).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};

/// Layer normalisation over the last axis, built from differentiable tensor operations
/// (candle's fused layer-norm and last-axis softmax kernels have no backward pass, so a model
/// trained through them would leave everything before them untrained).
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    /// A norm of `size` features under `vb` (`weight` = 1, `bias` = 0 initially).
    pub fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
        })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + 1e-5)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Sizes of a Transformer encoder stack (unknown fields refused, as in the models' configs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// Model width (token size).
    pub width: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// Hidden size of the feed-forward block.
    pub feed_forward: usize,
    /// Blocks.
    pub layers: usize,
    /// Longest sequence (learned positional embeddings).
    pub max_len: usize,
    /// Dropout probability in training.
    pub dropout: f32,
}

impl StackConfig {
    /// The weights of its projections, feed-forward blocks and positions (biases and norms
    /// left out): a lower bound on its parameter count.
    pub fn min_parameters(&self) -> u128 {
        use crate::models::saved::product;
        let per_layer = product(&[4, self.width, self.width]).saturating_add(product(&[
            2,
            self.width,
            self.feed_forward,
        ]));
        per_layer
            .saturating_mul(self.layers as u128)
            .saturating_add(product(&[self.max_len, self.width]))
    }

    /// Largest width a stack trains (sixteen times the paper's 128).
    pub const MAX_WIDTH: usize = 2048;
    /// Largest feed-forward size.
    pub const MAX_FEED_FORWARD: usize = 8192;
    /// Most blocks.
    pub const MAX_LAYERS: usize = 48;
    /// Longest sequence, in tokens.
    pub const MAX_LEN: usize = crate::train_loop::MAX_SNIPPET_STEPS;

    /// Checks that the sizes make a model (and one a run can allocate).
    pub fn check(&self) -> std::result::Result<(), String> {
        for (what, n, most) in [
            ("width", self.width, Self::MAX_WIDTH),
            (
                "feed-forward size",
                self.feed_forward,
                Self::MAX_FEED_FORWARD,
            ),
            ("number of layers", self.layers, Self::MAX_LAYERS),
            ("longest sequence", self.max_len, Self::MAX_LEN),
        ] {
            if n > most {
                return Err(format!("the {what} is at most {most}, not {n}"));
            }
        }
        if self.width == 0 || self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return Err(format!(
                "width {} must be a positive multiple of heads {}",
                self.width, self.heads
            ));
        }
        if self.layers == 0 || self.feed_forward == 0 || self.max_len == 0 {
            return Err("layers, feed-forward size and length must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        Ok(())
    }
}

/// Where training draws its dropout masks from: a seeded generator, so a training run is
/// reproducible by seed (candle's own dropout draws from an unseeded one). `None` = inference.
pub type DropoutRng<'a> = Option<&'a mut rand_chacha::ChaCha8Rng>;

/// Inverted dropout with a mask drawn from `rng`; the identity at inference.
pub fn dropout(x: &Tensor, p: f32, rng: DropoutRng) -> Result<Tensor> {
    let Some(rng) = rng else {
        return Ok(x.clone());
    };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rand::Rng::random::<f32>(rng) < p {
                0.0
            } else {
                scale
            }
        })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

/// Multi-head self-attention.
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(cfg: &StackConfig, vb: VarBuilder) -> Result<Self> {
        Ok(SelfAttention {
            qkv: linear(cfg.width, 3 * cfg.width, vb.pp("qkv"))?,
            out: linear(cfg.width, cfg.width, vb.pp("out"))?,
            heads: cfg.heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, w) = x.dims3()?;
        let hd = w / self.heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let y = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, w))?;
        self.out.forward(&y)
    }
}

/// One pre-norm block: x + attn(norm(x)), then x + ff(norm(x)).
#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    attn: SelfAttention,
    norm2: Norm,
    ff1: Linear,
    ff2: Linear,
    dropout: f32,
}

impl Block {
    fn new(cfg: &StackConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            norm1: Norm::new(cfg.width, vb.pp("norm1"))?,
            attn: SelfAttention::new(cfg, vb.pp("attn"))?,
            norm2: Norm::new(cfg.width, vb.pp("norm2"))?,
            ff1: linear(cfg.width, cfg.feed_forward, vb.pp("ff1"))?,
            ff2: linear(cfg.feed_forward, cfg.width, vb.pp("ff2"))?,
            dropout: cfg.dropout,
        })
    }

    fn forward(&self, x: &Tensor, mut rng: DropoutRng) -> Result<Tensor> {
        let a = self.attn.forward(&self.norm1.forward(x)?)?;
        let x = (x + dropout(&a, self.dropout, rng.as_deref_mut())?)?;
        let f = self
            .ff2
            .forward(&self.ff1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?)?;
        &x + dropout(&f, self.dropout, rng)?
    }
}

/// A stack of blocks with learned positional embeddings and a final layer norm.
#[derive(Debug, Clone)]
pub struct Stack {
    positions: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    cfg: StackConfig,
}

impl Stack {
    /// Builds the stack under `vb` (`positions`, `blocks.N.*`, `norm`).
    pub fn new(cfg: &StackConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check().map_err(candle_core::Error::Msg)?;
        let blocks = (0..cfg.layers)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Stack {
            positions: embedding(cfg.max_len, cfg.width, vb.pp("positions"))?,
            blocks,
            norm: Norm::new(cfg.width, vb.pp("norm"))?,
            cfg: *cfg,
        })
    }

    /// `[B, T, W]` tokens (positions are added here) -> `[B, T, W]`. Dropout is on when
    /// `rng` is given (training).
    pub fn forward(&self, x: &Tensor, mut rng: DropoutRng) -> Result<Tensor> {
        let t = x.dim(1)?;
        if t > self.cfg.max_len {
            candle_core::bail!(
                "sequence of {t} tokens is longer than the model's {}",
                self.cfg.max_len
            );
        }
        let ids = Tensor::arange(0u32, t as u32, x.device())?;
        let pos = self.positions.forward(&ids)?.unsqueeze(0)?;
        let mut h = dropout(
            &x.broadcast_add(&pos)?,
            self.cfg.dropout,
            rng.as_deref_mut(),
        )?;
        for block in &self.blocks {
            h = block.forward(&h, rng.as_deref_mut())?;
        }
        self.norm.forward(&h)
    }
}

/// Mean over the token axis: `[B, T, W]` -> `[B, W]`.
pub fn mean_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus2)
}
