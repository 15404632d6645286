//! What the two VAEs share (the LSTM-VAE and the Transformer VAE): the diagonal Gaussian
//! posterior q(z|x) with its sampling and KL, and the reconstruction loss, binary
//! cross-entropy computed from logits (also the DCGAN's).

use candle_core::{Result, Tensor};
use rand::Rng;

use crate::models::standard_normal;

/// A diagonal Gaussian posterior q(z|x).
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    /// `[B, Z]`
    pub mean: Tensor,
    /// `[B, Z]`
    pub logvar: Tensor,
}

impl DiagonalGaussian {
    /// z = mean + exp(logvar / 2) * eps, with eps drawn from the seeded `rng`.
    pub fn sample(&self, rng: &mut impl Rng) -> Result<Tensor> {
        let eps = Tensor::from_vec(
            standard_normal(rng, self.mean.elem_count()),
            self.mean.shape(),
            self.mean.device(),
        )?
        .to_dtype(self.mean.dtype())?;
        &self.mean + (self.logvar.affine(0.5, 0.0)?.exp()? * eps)?
    }

    /// KL(q || N(0, I)) per latent dimension, averaged over the batch: `[Z]`.
    pub fn kl_per_dim(&self) -> Result<Tensor> {
        self.kl_of_offset(&self.mean)
    }

    /// KL(q || N(prior_mean, I)) per latent dimension, averaged over the batch: `[Z]`.
    /// `prior_mean` is `[B, Z]` (a composer-aware prior: each snippet's own composer centre).
    pub fn kl_to_per_dim(&self, prior_mean: &Tensor) -> Result<Tensor> {
        self.kl_of_offset(&(&self.mean - prior_mean)?)
    }

    /// 0.5 * (offset^2 + exp(logvar) - 1 - logvar), averaged over the batch, where `offset`
    /// is the posterior mean minus the prior's.
    fn kl_of_offset(&self, offset: &Tensor) -> Result<Tensor> {
        let kl = ((offset.sqr()? + self.logvar.exp()?)? - self.logvar.affine(1.0, 1.0)?)?
            .affine(0.5, 0.0)?;
        kl.mean(0)
    }
}

/// Binary cross-entropy of `logits` against 0/1 `targets`, summed over all but the batch
/// dimension and averaged over the batch; stable for large logits.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(0)? as f64;
    bce_cells(logits, targets)?
        .sum_all()?
        .affine(1.0 / batch, 0.0)
}

/// [`bce_with_logits`] of each item of the batch: `[B]`, summed over its cells.
pub fn bce_with_logits_per_item(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    bce_cells(logits, targets)?.flatten_from(1)?.sum(1)
}

/// The BCE of each cell, from logits: max(l, 0) - l * y + log(1 + exp(-|l|)).
fn bce_cells(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let softplus = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (logits.relu()? - (logits * targets)?)? + softplus
}
