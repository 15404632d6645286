//! An LSTM layer as one operation over the whole sequence, with hand-written backpropagation
//! through time (CPU, f32).
//!
//! Autograd over a step-by-step LSTM keeps every small intermediate of every step and runs
//! hundreds of tiny products; the paper's 6-layer model did not fit in 24 GB that way. Here the
//! forward pass computes the input projection of all steps as one product, runs the recurrence
//! step by step, and keeps only the activated gates and the cell states. The backward pass walks
//! the steps back once for the recurrent gradients and then forms the weight and input
//! gradients as three large products over all steps.
//!
//! The layer plugs into candle's autograd as a [`CustomOp3`], so everything around it (linear
//! maps, the loss, the optimiser) stays ordinary candle code. Gate order and weight layout follow
//! PyTorch's `nn.LSTM` (i, f, g, o; `weight_ih [4H, I]`, `weight_hh [4H, H]`, two biases).

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, bail};

use rayon::prelude::*;

use crate::models::matmul::{Mat, MatMut, Panels, matmul, matmul_rows};

/// Sizes of one layer's sequence pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Time steps T.
    pub steps: usize,
    /// Batch B.
    pub batch: usize,
    /// Input features I.
    pub input: usize,
    /// Hidden size H.
    pub hidden: usize,
}

impl Dims {
    /// Row length of the packed weights `[w_ih | w_hh | b_ih | b_hh]`: I + H + 2.
    pub fn packed_cols(&self) -> usize {
        self.input + self.hidden + 2
    }

    fn gates(&self) -> usize {
        4 * self.hidden
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct Saved {
    /// Activated gates (i, f, g, o) of every step, `[T, B, 4H]`.
    pub gates: Vec<f32>,
    /// Cell states c_0 (the initial one) .. c_T, `[T+1, B, H]`.
    pub cells: Vec<f32>,
}

/// e^x to about 2e-7 relative, in straight-line f32 arithmetic that the compiler vectorises
/// (libm's `exp` and `tanh` are calls and dominated the recurrence before).
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2_E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((k as i32 + 127) as u32) << 23) * p
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// Splits one step's gate rows `[4H]` into the four gates.
#[inline(always)]
fn four(g: &mut [f32], h: usize) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
    let (i, rest) = g.split_at_mut(h);
    let (f, rest) = rest.split_at_mut(h);
    let (gg, o) = rest.split_at_mut(h);
    (i, f, gg, o)
}

/// The cell update of some batch rows: activates the gate pre-activations in place and writes
/// the new cell and hidden states.
#[inline(always)]
fn cell_forward_impl(
    gates: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
    h: usize,
) {
    for (n, g) in gates.chunks_exact_mut(4 * h).enumerate() {
        let (gi, gf, gg, go) = four(g, h);
        let rows = n * h..(n + 1) * h;
        let (cp, cn, hn) = (
            &c_prev[rows.clone()],
            &mut c_next[rows.clone()],
            &mut h_next[rows],
        );
        for k in 0..h {
            let (i, f, g, o) = (sigmoid(gi[k]), sigmoid(gf[k]), tanh(gg[k]), sigmoid(go[k]));
            (gi[k], gf[k], gg[k], go[k]) = (i, f, g, o);
            let c = f * cp[k] + i * g;
            cn[k] = c;
            hn[k] = o * tanh(c);
        }
    }
}

/// Gradients of the gate pre-activations of some batch rows at one step; `dh` holds the
/// gradient reaching h_t (from the output and from step t+1), `dc` the one reaching c_t from
/// step t+1 and becomes the one reaching c_{t-1}.
#[inline(always)]
fn cell_backward_impl(
    gates: &[f32],
    c_prev: &[f32],
    c_now: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    d_pre: &mut [f32],
    h: usize,
) {
    for (n, (g, dg)) in gates
        .chunks_exact(4 * h)
        .zip(d_pre.chunks_exact_mut(4 * h))
        .enumerate()
    {
        let (gi, gf, gg, go) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..]);
        let (di, df, dgg, d_o) = four(dg, h);
        let rows = n * h..(n + 1) * h;
        let (cp, cn, dh, dc) = (
            &c_prev[rows.clone()],
            &c_now[rows.clone()],
            &dh[rows.clone()],
            &mut dc[rows],
        );
        for k in 0..h {
            let (i, f, g, o) = (gi[k], gf[k], gg[k], go[k]);
            let tc = tanh(cn[k]);
            let dcell = dc[k] + dh[k] * o * (1.0 - tc * tc);
            di[k] = dcell * g * i * (1.0 - i);
            df[k] = dcell * cp[k] * f * (1.0 - f);
            dgg[k] = dcell * i * (1.0 - g * g);
            d_o[k] = dh[k] * tc * o * (1.0 - o);
            dc[k] = dcell * f;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_forward_avx2(
    gates: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
    h: usize,
) {
    cell_forward_impl(gates, c_prev, c_next, h_next, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_backward_avx2(
    gates: &[f32],
    c_prev: &[f32],
    c_now: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    d_pre: &mut [f32],
    h: usize,
) {
    cell_backward_impl(gates, c_prev, c_now, dh, dc, d_pre, h)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The LSTM cell update for some batch rows: activates the pre-activations `gates`
/// (`[rows, 4H]`, order i, f, g, o) in place and writes c_t and h_t (`[rows, H]`) from c_{t-1}.
pub fn cell_forward(
    gates: &mut [f32],
    c_prev: &[f32],
    c_next: &mut [f32],
    h_next: &mut [f32],
    h: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { cell_forward_avx2(gates, c_prev, c_next, h_next, h) };
    }
    cell_forward_impl(gates, c_prev, c_next, h_next, h)
}

fn cell_backward(
    gates: &[f32],
    c_prev: &[f32],
    c_now: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    d_pre: &mut [f32],
    h: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { cell_backward_avx2(gates, c_prev, c_now, dh, dc, d_pre, h) };
    }
    cell_backward_impl(gates, c_prev, c_now, dh, dc, d_pre, h)
}

/// Batch rows per parallel part of a step: the recurrence of a step is independent across
/// batch items, so each core takes a share of the rows (product and cell update together).
fn rows_per_part(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().clamp(1, batch.max(1)))
}

/// Runs one layer over a time-major sequence.
///
/// `x`: `[T, B, I]`; `w`: packed weights `[4H, I+H+2]`; `h0`, `c0`: `[B, H]`.
/// Returns the hidden states `[T, B, H]` and what the backward pass needs.
pub fn forward(d: Dims, x: &[f32], w: &[f32], h0: &[f32], c0: &[f32]) -> (Vec<f32>, Saved) {
    let (t_len, b, i_len, h) = (d.steps, d.batch, d.input, d.hidden);
    let (g4, ld) = (d.gates(), d.packed_cols());
    assert_eq!(x.len(), t_len * b * i_len);
    assert_eq!(w.len(), g4 * ld);
    assert_eq!((h0.len(), c0.len()), (b * h, b * h));

    // Pre-activations of all steps: bias, then the input projection as one product.
    let mut gates = vec![0.0f32; t_len * b * g4];
    for row in gates.chunks_exact_mut(g4) {
        for (r, g) in row.iter_mut().enumerate() {
            *g = w[r * ld + i_len + h] + w[r * ld + i_len + h + 1];
        }
    }
    matmul(
        MatMut::dense(&mut gates, t_len * b, g4),
        Mat::dense(x, t_len * b, i_len),
        Mat::rows(w, g4, i_len, ld).t(),
        true,
    );

    let w_hh_t = Panels::pack(Mat::rows(&w[i_len..], g4, h, ld).t());
    let mut out = vec![0.0f32; t_len * b * h];
    let mut cells = vec![0.0f32; (t_len + 1) * b * h];
    cells[..b * h].copy_from_slice(c0);
    let part = rows_per_part(b);
    // The steps run on one of rayon's threads: from there each step's parallel part is shared
    // with the other threads directly, where a caller outside the pool would hand it over and
    // sleep until it is done, at every step.
    rayon::scope(|_| {
        for t in 0..t_len {
            let step_gates = &mut gates[t * b * g4..(t + 1) * b * g4];
            let (done, rest) = out.split_at_mut(t * b * h);
            let h_prev = if t == 0 { h0 } else { &done[(t - 1) * b * h..] };
            let h_next = &mut rest[..b * h];
            let (past, rest) = cells.split_at_mut((t + 1) * b * h);
            let c_prev = &past[t * b * h..];
            let c_next = &mut rest[..b * h];
            step_gates
                .par_chunks_mut(part * g4)
                .zip(h_next.par_chunks_mut(part * h))
                .zip(c_next.par_chunks_mut(part * h))
                .enumerate()
                .for_each(|(p, ((g, hn), cn))| {
                    let rows = hn.len() / h;
                    let span = p * part * h..(p * part + rows) * h;
                    matmul_rows(
                        MatMut::dense(g, rows, g4),
                        Mat::dense(&h_prev[span.clone()], rows, h),
                        &w_hh_t,
                        true,
                    );
                    cell_forward(g, &c_prev[span], cn, hn, h);
                });
        }
    });
    (out, Saved { gates, cells })
}

/// Gradients of one layer's inputs.
#[derive(Debug, Clone)]
pub struct Grads {
    /// `[T, B, I]`
    pub x: Vec<f32>,
    /// Packed like the weights, `[4H, I+H+2]` (the two bias columns get the same gradient).
    pub w: Vec<f32>,
    /// `[B, H]`
    pub h0: Vec<f32>,
    /// `[B, H]`
    pub c0: Vec<f32>,
}

/// Backpropagation through time for one layer: given the gradient of the loss with respect to
/// every hidden state `d_out` `[T, B, H]`, the gradients of the inputs of [`forward`].
pub fn backward(
    d: Dims,
    x: &[f32],
    w: &[f32],
    h0: &[f32],
    out: &[f32],
    saved: &Saved,
    d_out: &[f32],
) -> Grads {
    let (t_len, b, i_len, h) = (d.steps, d.batch, d.input, d.hidden);
    let (g4, ld) = (d.gates(), d.packed_cols());
    assert_eq!(d_out.len(), t_len * b * h);
    assert_eq!(out.len(), t_len * b * h);

    // Gradients of the pre-activations of every step, filled from the last step back.
    let mut d_pre = vec![0.0f32; t_len * b * g4];
    let mut dh_next = vec![0.0f32; b * h];
    let mut dc_next = vec![0.0f32; b * h];
    let w_hh = Panels::pack(Mat::rows(&w[i_len..], g4, h, ld));
    let part = rows_per_part(b);
    let mut dh = vec![0.0f32; b * h];
    // On one of rayon's threads, as in `forward`.
    rayon::scope(|_| {
        for t in (0..t_len).rev() {
            let gates = &saved.gates[t * b * g4..(t + 1) * b * g4];
            let c_prev = &saved.cells[t * b * h..(t + 1) * b * h];
            let c_now = &saved.cells[(t + 1) * b * h..(t + 2) * b * h];
            let d_step = &d_out[t * b * h..(t + 1) * b * h];
            d_pre[t * b * g4..(t + 1) * b * g4]
                .par_chunks_mut(part * g4)
                .zip(dh_next.par_chunks_mut(part * h))
                .zip(dc_next.par_chunks_mut(part * h))
                .zip(dh.par_chunks_mut(part * h))
                .enumerate()
                .for_each(|(p, (((dg, dhn), dcn), dh))| {
                    let rows = dhn.len() / h;
                    let span = p * part * h..(p * part + rows) * h;
                    for ((d, o), n) in dh.iter_mut().zip(&d_step[span.clone()]).zip(dhn.iter()) {
                        *d = o + n;
                    }
                    let gspan = p * part * g4..(p * part + rows) * g4;
                    cell_backward(
                        &gates[gspan],
                        &c_prev[span.clone()],
                        &c_now[span],
                        dh,
                        dcn,
                        dg,
                        h,
                    );
                    // dh_{t-1} = dA_t W_hh
                    matmul_rows(
                        MatMut::dense(dhn, rows, h),
                        Mat::dense(dg, rows, g4),
                        &w_hh,
                        false,
                    );
                });
        }
    });

    let mut dw = vec![0.0f32; g4 * ld];
    let rows = t_len * b;
    let d_pre_all = Mat::dense(&d_pre, rows, g4);
    // dW_ih = dA^T X
    matmul(
        MatMut::rows(&mut dw, g4, i_len, ld),
        d_pre_all.t(),
        Mat::dense(x, rows, i_len),
        false,
    );
    // dW_hh = dA^T [h_0; h_1 .. h_{T-1}]: the first step's part with h0, the rest in one product.
    matmul(
        MatMut::rows(&mut dw[i_len..], g4, h, ld),
        Mat::dense(&d_pre[..b * g4], b, g4).t(),
        Mat::dense(h0, b, h),
        false,
    );
    if t_len > 1 {
        matmul(
            MatMut::rows(&mut dw[i_len..], g4, h, ld),
            Mat::dense(&d_pre[b * g4..], rows - b, g4).t(),
            Mat::dense(&out[..(t_len - 1) * b * h], rows - b, h),
            true,
        );
    }
    // Both biases: the column sums of dA.
    let mut db = vec![0.0f32; g4];
    for row in d_pre.chunks_exact(g4) {
        for (acc, v) in db.iter_mut().zip(row) {
            *acc += v;
        }
    }
    for (r, v) in db.iter().enumerate() {
        dw[r * ld + i_len + h] = *v;
        dw[r * ld + i_len + h + 1] = *v;
    }
    // dX = dA W_ih
    let mut dx = vec![0.0f32; rows * i_len];
    matmul(
        MatMut::dense(&mut dx, rows, i_len),
        d_pre_all,
        Mat::rows(w, g4, i_len, ld),
        false,
    );
    Grads {
        x: dx,
        w: dw,
        h0: dh_next,
        c0: dc_next,
    }
}

/// The candle operation: `x [T, B, I]`, packed weights `[4H, I+H+2]`, initial state
/// `[2, B, H]` (h then c) -> hidden states `[T, B, H]`.
struct SequenceOp {
    dims: Dims,
    saved: Mutex<Option<Saved>>,
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => bail!("fused LSTM: {what} must be f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("fused LSTM: {what} must be contiguous"),
    }
}

fn cpu_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp3 for SequenceOp {
    fn name(&self) -> &'static str {
        "fused-lstm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weights")?;
        let state = contiguous_f32(s3, l3, "initial state")?;
        let (bh, g4) = (d.batch * d.hidden, d.gates());
        if x.len() != d.steps * d.batch * d.input
            || w.len() != g4 * d.packed_cols()
            || state.len() != 2 * bh
        {
            bail!("fused LSTM: argument sizes do not match {d:?}");
        }
        let (out, saved) = forward(d, x, w, &state[..bh], &state[bh..]);
        *self.saved.lock().expect("fused LSTM state poisoned") = Some(saved);
        Ok((
            CpuStorage::F32(out),
            Shape::from((d.steps, d.batch, d.hidden)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        state: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let saved = self.saved.lock().expect("fused LSTM state poisoned").take();
        let Some(saved) = saved else {
            bail!("fused LSTM: backward run twice or before forward")
        };
        let bh = d.batch * d.hidden;
        let state_v = cpu_vec(state)?;
        let g = backward(
            d,
            &cpu_vec(x)?,
            &cpu_vec(w)?,
            &state_v[..bh],
            &cpu_vec(res)?,
            &saved,
            &cpu_vec(grad_res)?,
        );
        let dev = &Device::Cpu;
        let mut d_state = g.h0;
        d_state.extend_from_slice(&g.c0);
        Ok((
            Some(Tensor::from_vec(g.x, x.shape(), dev)?),
            Some(Tensor::from_vec(g.w, w.shape(), dev)?),
            Some(Tensor::from_vec(d_state, state.shape(), dev)?),
        ))
    }
}

/// One LSTM layer's weights, named like PyTorch's `nn.LSTM` layer `k`
/// (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`).
#[derive(Debug, Clone)]
pub struct LstmWeights {
    /// `[4H, I]`
    pub w_ih: Tensor,
    /// `[4H, H]`
    pub w_hh: Tensor,
    /// `[4H]`
    pub b_ih: Tensor,
    /// `[4H]`
    pub b_hh: Tensor,
}

impl LstmWeights {
    /// Gets (or creates, with PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)) init) layer `layer`.
    pub fn new(
        input: usize,
        hidden: usize,
        layer: usize,
        vb: &candle_nn::VarBuilder,
    ) -> Result<Self> {
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(LstmWeights {
            w_ih: vb.get_with_hints((4 * hidden, input), &format!("weight_ih_l{layer}"), init)?,
            w_hh: vb.get_with_hints((4 * hidden, hidden), &format!("weight_hh_l{layer}"), init)?,
            b_ih: vb.get_with_hints(4 * hidden, &format!("bias_ih_l{layer}"), init)?,
            b_hh: vb.get_with_hints(4 * hidden, &format!("bias_hh_l{layer}"), init)?,
        })
    }

    /// Hidden size H.
    pub fn hidden(&self) -> usize {
        self.w_hh.dim(1).unwrap_or(0)
    }

    /// Input size I.
    pub fn input(&self) -> usize {
        self.w_ih.dim(1).unwrap_or(0)
    }

    /// One step: `x [B, I]`, `(h, c) [B, H]` -> the next `(h, c)`. Composed candle operations
    /// (autograd-friendly and on every device); used for generation and on CUDA.
    pub fn step(&self, x: &Tensor, h: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let gates = (x.matmul(&self.w_ih.t()?)? + h.matmul(&self.w_hh.t()?)?)?
            .broadcast_add(&(&self.b_ih + &self.b_hh)?)?;
        let chunks = gates.chunk(4, 1)?;
        let i = candle_nn::ops::sigmoid(&chunks[0])?;
        let f = candle_nn::ops::sigmoid(&chunks[1])?;
        let g = chunks[2].tanh()?;
        let o = candle_nn::ops::sigmoid(&chunks[3])?;
        let c = ((f * c)? + (i * g)?)?;
        let h = (o * c.tanh()?)?;
        Ok((h, c))
    }

    /// The whole sequence `x [T, B, I]` (time-major) from `(h0, c0) [B, H]`: hidden states
    /// `[T, B, H]`. On the CPU in f32 this is the fused operation; elsewhere it composes
    /// [`LstmWeights::step`] (fine on a GPU, where autograd memory is not the limit).
    /// `composed` forces the step-by-step path (to compare the two).
    pub fn sequence(&self, x: &Tensor, h0: &Tensor, c0: &Tensor, composed: bool) -> Result<Tensor> {
        if !composed && x.device().is_cpu() && x.dtype() == DType::F32 {
            self.sequence_fused(x, h0, c0)
        } else {
            self.sequence_composed(x, h0, c0)
        }
    }

    /// The fused operation (CPU, f32).
    pub fn sequence_fused(&self, x: &Tensor, h0: &Tensor, c0: &Tensor) -> Result<Tensor> {
        let (steps, batch, input) = x.dims3()?;
        let hidden = self.hidden();
        let dims = Dims {
            steps,
            batch,
            input,
            hidden,
        };
        let packed = Tensor::cat(
            &[
                &self.w_ih,
                &self.w_hh,
                &self.b_ih.unsqueeze(1)?,
                &self.b_hh.unsqueeze(1)?,
            ],
            1,
        )?;
        let state = Tensor::stack(&[h0, c0], 0)?.contiguous()?;
        x.contiguous()?.apply_op3(
            &packed,
            &state,
            SequenceOp {
                dims,
                saved: Mutex::new(None),
            },
        )
    }

    /// The same sequence by stepping composed operations (autograd through every step).
    pub fn sequence_composed(&self, x: &Tensor, h0: &Tensor, c0: &Tensor) -> Result<Tensor> {
        let steps = x.dim(0)?;
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut outs = Vec::with_capacity(steps);
        for t in 0..steps {
            (h, c) = self.step(&x.get(t)?, &h, &c)?;
            outs.push(h.clone());
        }
        Tensor::stack(&outs, 0)
    }
}
