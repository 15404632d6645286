//! The neural models, in candle. Models know nothing of the studio: tensors in, tensors out.

pub mod classifier;
pub mod dcgan;
pub mod fused_lstm;
pub mod lstm_vae;
pub(crate) mod matmul;
pub mod saved;
pub mod step_decoder;
pub mod trained;
pub mod transformer;
pub mod transformer_vae;
pub mod weights;

use rand::Rng;

/// Standard normal samples from a seeded generator (Box-Muller), so every random draw of a
/// model is reproducible by seed on every device.
pub fn standard_normal(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}
