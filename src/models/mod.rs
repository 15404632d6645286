//! The neural models, in candle. Models know nothing of the studio: tensors in, tensors out.

pub mod classifier;
pub mod dcgan;
pub mod fused_lstm;
pub mod kind;
pub mod lstm_vae;
pub(crate) mod matmul;
pub mod saved;
pub mod step_decoder;
pub mod trained;
pub mod transformer;
pub mod transformer_vae;
pub mod vae;
pub mod weights;

/// Where a model's tensors live and its arithmetic runs (the CPU, or a CUDA GPU).
pub use candle_core::Device;
pub use kind::ModelKind;

use candle_core::Result;
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

/// The device to compute on: CUDA device 0 when `cuda` is asked for (an error in a build
/// without the `cuda` feature, or without a GPU: there is no fallback), else the CPU.
pub fn device(cuda: bool) -> Result<Device> {
    if cuda {
        Device::new_cuda(0)
    } else {
        Ok(Device::Cpu)
    }
}

/// Whether this is a build with the `cuda` feature (whether a GPU is there shows only when
/// [`device`] opens it).
pub fn cuda_built() -> bool {
    candle_core::utils::cuda_is_available()
}
