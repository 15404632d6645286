//! The LSTM-VAE's decoder as plain arrays, for sampling one step at a time on the CPU.
//!
//! Generation runs the decoder for one step, samples, and feeds the sample back, hundreds of
//! times with batch 1. Through candle each step is a few dozen small tensor operations, each
//! with its own allocation and dispatch; here a step is a handful of row products over weights
//! packed once, and nothing is allocated per step.

use candle_core::{Result, Tensor};

use crate::models::fused_lstm::cell_forward;
use crate::models::lstm_vae::LstmVae;
use crate::models::matmul::{Mat, MatMut, Panels, matmul_rows, matvec};

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(&candle_core::Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

struct Layer {
    w_ih_t: Panels,
    w_hh_t: Panels,
    bias: Vec<f32>,
}

/// A copy of a model's decoder for fast stepping, with its recurrent state.
pub struct StepDecoder {
    layers: Vec<Layer>,
    z_to_state_t: Panels,
    z_to_state_b: Vec<f32>,
    out_t: Panels,
    out_b: Vec<f32>,
    skip_t: Option<Panels>,
    hidden: usize,
    pitches: usize,
    latent: usize,
    metre: usize,
    h: Vec<Vec<f32>>,
    c: Vec<Vec<f32>>,
    input: Vec<f32>,
    gates: Vec<f32>,
    c_next: Vec<f32>,
    h_next: Vec<f32>,
}

fn linear_parts(l: &candle_nn::Linear) -> Result<(Panels, Vec<f32>, usize, usize)> {
    let (out, inp) = l.weight().dims2()?;
    let w = flat(l.weight())?;
    let b = match l.bias() {
        Some(b) => flat(b)?,
        None => vec![0.0; out],
    };
    Ok((Panels::pack(Mat::dense(&w, out, inp).t()), b, out, inp))
}

impl StepDecoder {
    /// Copies the decoder of `model`.
    pub fn new(model: &LstmVae) -> Result<Self> {
        let cfg = *model.config();
        let mut layers = Vec::new();
        for l in model.decoder_layers() {
            let (g4, i) = l.w_ih.dims2()?;
            let w_ih = flat(&l.w_ih)?;
            let w_hh = flat(&l.w_hh)?;
            let bias: Vec<f32> = flat(&l.b_ih)?
                .iter()
                .zip(flat(&l.b_hh)?)
                .map(|(a, b)| a + b)
                .collect();
            layers.push(Layer {
                w_ih_t: Panels::pack(Mat::dense(&w_ih, g4, i).t()),
                w_hh_t: Panels::pack(Mat::dense(&w_hh, g4, cfg.hidden).t()),
                bias,
            });
        }
        let (z_to_state_t, z_to_state_b, _, _) = linear_parts(model.z_to_state())?;
        let (out_t, out_b, pitches, _) = linear_parts(model.output_layer())?;
        let skip_t = match model.output_skip() {
            Some(skip) => Some(linear_parts(skip)?.0),
            None => None,
        };
        Ok(StepDecoder {
            layers,
            z_to_state_t,
            z_to_state_b,
            out_t,
            out_b,
            skip_t,
            hidden: cfg.hidden,
            pitches,
            latent: cfg.latent,
            metre: cfg.metre,
            h: vec![vec![0.0; cfg.hidden]; cfg.layers],
            c: vec![vec![0.0; cfg.hidden]; cfg.layers],
            input: vec![0.0; cfg.decoder_input()],
            gates: vec![0.0; 4 * cfg.hidden],
            c_next: vec![0.0; cfg.hidden],
            h_next: vec![0.0; cfg.hidden],
        })
    }

    /// Size of z.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Sets the recurrent state to the one z gives (the start of a decode).
    pub fn reset(&mut self, z: &[f32]) {
        assert_eq!(z.len(), self.latent, "z has the wrong size");
        let n = self.z_to_state_b.len();
        let mut s = self.z_to_state_b.clone();
        matmul_rows(
            MatMut::dense(&mut s, 1, n),
            Mat::dense(z, 1, self.latent),
            &self.z_to_state_t,
            true,
        );
        let h = self.hidden;
        for layer in 0..self.layers.len() {
            let hs = &s[2 * layer * h..(2 * layer + 1) * h];
            for (d, v) in self.h[layer].iter_mut().zip(hs) {
                *d = v.tanh();
            }
            self.c[layer].copy_from_slice(&s[(2 * layer + 1) * h..(2 * layer + 2) * h]);
        }
    }

    /// One step: the logits of the next step (`logits`, 128 values) given the previous step
    /// `previous` (0/1 per pitch), the code `z` and the step's position in its bar (see
    /// [`crate::models::lstm_vae::Config::bar_positions`]); advances the state.
    pub fn step(&mut self, previous: &[f32], z: &[f32], bar: usize, logits: &mut [f32]) {
        let (p, h) = (self.pitches, self.hidden);
        assert_eq!(
            (previous.len(), logits.len()),
            (p, p),
            "steps have 128 pitches"
        );
        let m = self.metre;
        self.input[..p].copy_from_slice(previous);
        if m > 0 {
            let one_hot = &mut self.input[p..p + m];
            one_hot.fill(0.0);
            one_hot[bar % m] = 1.0;
        }
        self.input[p + m..].copy_from_slice(z);
        for (k, layer) in self.layers.iter().enumerate() {
            self.gates.copy_from_slice(&layer.bias);
            let x: &[f32] = if k == 0 { &self.input } else { &self.h[k - 1] };
            matvec(&mut self.gates, x, &layer.w_ih_t, true);
            matvec(&mut self.gates, &self.h[k], &layer.w_hh_t, true);
            cell_forward(
                &mut self.gates,
                &self.c[k],
                &mut self.c_next,
                &mut self.h_next,
                h,
            );
            std::mem::swap(&mut self.h[k], &mut self.h_next);
            std::mem::swap(&mut self.c[k], &mut self.c_next);
        }
        logits.copy_from_slice(&self.out_b);
        let last = self.h.len() - 1;
        matmul_rows(
            MatMut::dense(logits, 1, p),
            Mat::dense(&self.h[last], 1, h),
            &self.out_t,
            true,
        );
        if let Some(skip_t) = &self.skip_t {
            matmul_rows(
                MatMut::dense(logits, 1, p),
                Mat::dense(previous, 1, p),
                skip_t,
                true,
            );
        }
    }
}
