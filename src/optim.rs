//! Adam (Kingma and Ba, 2015), as PyTorch's `torch.optim.Adam` computes it, over candle
//! variables: the optimiser every model of Segue trains with (and classifier ascent, and the
//! classifier's statistical baseline). Its moments are part of each checkpoint, so that a
//! resumed run goes on as an uninterrupted one.

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;

use crate::error::{Error, Result, candle};
use crate::models::weights;

/// Adam with bias correction and optional L2 regularisation; its moments are checkpointed.
pub struct Adam {
    lr: f64,
    /// L2 regularisation: `l2 * w` is added to each gradient (0 = none).
    pub(crate) l2: f64,
    /// First-moment decay (0.9; DCGANs train with 0.5).
    pub(crate) beta1: f64,
    /// Steps taken (the bias correction's count).
    pub(crate) step: usize,
    /// Each variable by name, with its first and second moments.
    pub(crate) params: Vec<(String, Var, Var, Var)>,
}

impl Adam {
    pub(crate) fn new(vars: Vec<(String, Var)>, lr: f64) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|(n, v)| {
                let m = Var::zeros(v.shape(), DType::F32, v.device())?;
                let s = Var::zeros(v.shape(), DType::F32, v.device())?;
                Ok((n, v, m, s))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(candle)?;
        Ok(Adam {
            lr,
            l2: 0.0,
            beta1: 0.9,
            step: 0,
            params,
        })
    }

    /// Adam over every variable of `varmap` whose name starts with `prefix`, in name order.
    pub(crate) fn over(varmap: &VarMap, prefix: &str, lr: f64) -> Result<Self> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let mut vars: Vec<(String, Var)> = data
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        drop(data);
        Adam::new(vars, lr)
    }

    /// The moments as named tensors (`adam.m.NAME`, `adam.v.NAME`), for checkpoints.
    pub(crate) fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, _, m, s) in &self.params {
            out.push((format!("adam.m.{name}"), m.as_tensor().clone()));
            out.push((format!("adam.v.{name}"), s.as_tensor().clone()));
        }
        out
    }

    /// What [`Adam::state`] holds, for checking a checkpoint.
    pub(crate) fn expected_state(&self) -> Vec<weights::Expected> {
        let mut out = Vec::new();
        for (name, v, _, _) in &self.params {
            for kind in ["m", "v"] {
                out.push(weights::Expected {
                    name: format!("adam.{kind}.{name}"),
                    dims: v.dims().to_vec(),
                });
            }
        }
        out
    }

    /// Restores moments from `state` and the step count.
    pub(crate) fn restore(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        step: usize,
    ) -> Result<()> {
        for (name, _, m, s) in &self.params {
            if let (Some(tm), Some(ts)) = (
                state.get(&format!("adam.m.{name}")),
                state.get(&format!("adam.v.{name}")),
            ) {
                m.set(tm).map_err(candle)?;
                s.set(ts).map_err(candle)?;
            }
        }
        self.step = step;
        Ok(())
    }

    /// One Adam step from `grads`, clipped to the global norm `clip`; returns the norm. A
    /// gradient that is not finite is an error (nothing is updated).
    pub(crate) fn apply(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        clip: f64,
    ) -> Result<f64> {
        let (b1, b2, eps) = (self.beta1, 0.999f64, 1e-8f64);
        let mut sq = 0f64;
        for (_, v, _, _) in &self.params {
            if let Some(g) = grads.get(v) {
                sq += g
                    .sqr()
                    .and_then(|t| t.sum_all())
                    .and_then(|t| t.to_scalar::<f32>())
                    .map_err(candle)? as f64;
            }
        }
        let norm = sq.sqrt();
        let scale = if norm.is_finite() && norm > clip {
            clip / norm
        } else {
            1.0
        };
        // Every trainer stops here: a step skipped would put Adam's count out of step with
        // the run's (and a resumed run off its curve), and what follows a non-finite gradient
        // is not worth a checkpoint over the last good one.
        if !norm.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "training diverged at step {}: the gradient is not finite",
                self.step + 1
            )));
        }
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (_, v, m, s) in &self.params {
            let Some(g) = grads.get(v) else { continue };
            let run = || -> candle_core::Result<()> {
                let mut g = g.affine(scale, 0.0)?;
                if self.l2 > 0.0 {
                    g = (g + (v.as_tensor() * self.l2)?)?;
                }
                let m_new = ((m.as_tensor() * b1)? + (&g * (1.0 - b1))?)?;
                let s_new = ((s.as_tensor() * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                let update = ((&m_new / c1)? / ((&s_new / c2)?.sqrt()? + eps)?)?;
                v.set(&(v.as_tensor() - (update * self.lr)?)?)?;
                m.set(&m_new)?;
                s.set(&s_new)
            };
            run().map_err(candle)?;
        }
        Ok(norm)
    }
}
