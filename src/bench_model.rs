//! Timing the LSTM-VAE against the PyTorch reference (`lstm_vae_torch.py`), same sizes, same
//! work: one full training step (forward, BCE(sum) + KL, backward, Adam) on random rolls, and
//! generation (encode a 64-step primer, prime the decoder, sample 256 steps one at a time).
//!
//! Each measurement runs in its own process (`segue bench lstm-vae-worker`) so that its peak
//! memory is its own.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result, candle};
use crate::generate::{self, GenerateOptions};
use crate::models::lstm_vae::{Config, LstmVae, loss};
use crate::models::trained;
use crate::roll::{PITCHES, Roll};
use crate::train::{Adam, seeded_init};

/// The sizes of one benchmark case.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Case {
    /// Model sizes.
    pub config: Config,
    /// Batch size of the training step.
    pub batch: usize,
    /// Snippet length of the training step.
    pub steps: usize,
}

impl Case {
    /// The case of a preset: `studio` (batch 20 x 128 steps, how it trains) or `paper`
    /// (batch 20 x 320 steps).
    pub fn preset(name: &str) -> Result<Case> {
        match name {
            // Without the metre input: the PyTorch reference has none, and both sides must
            // run the same sizes (it adds 16 of the decoder's 164 inputs).
            "studio" => Ok(Case {
                config: Config {
                    metre: 0,
                    ..Config::studio()
                },
                batch: 20,
                steps: 128,
            }),
            "paper" => Ok(Case {
                config: Config::paper(),
                batch: 20,
                steps: 320,
            }),
            other => Err(Error::InvalidArgument(format!(
                "unknown preset `{other}` (studio, paper)"
            ))),
        }
    }
}

/// What one side measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// Trainable parameters.
    pub params: usize,
    /// Median seconds per training step.
    pub train_step_s: Option<f64>,
    /// Every timed training step.
    pub train_step_s_all: Vec<f64>,
    /// Median milliseconds of one generation (64-step primer + 256 steps).
    pub gen_ms: Option<f64>,
    /// Peak resident memory of the measuring process, MiB.
    pub max_rss_mib: f64,
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// Random binary rolls with `density` ones (the reference uses 3 %).
fn random_rolls(rng: &mut ChaCha8Rng, batch: usize, steps: usize, density: f64) -> Vec<f32> {
    (0..batch * steps * PITCHES)
        .map(|_| {
            if rng.random::<f64>() < density {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Peak resident memory of this process so far, MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Measures this implementation in this process: `warmup` + `iters` training steps (if
/// `train`), then `reps` + 1 generations (if `gen`).
pub fn time_own(
    case: &Case,
    warmup: usize,
    iters: usize,
    reps: usize,
    train: bool,
    generation: bool,
) -> Result<Timing> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = LstmVae::new(&case.config, vb).map_err(candle)?;
    seeded_init(&varmap, &case.config, 0)?;
    let named = trained::named_tensors(&varmap);
    let params = named.iter().map(|(_, t)| t.elem_count()).sum();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut timing = Timing {
        params,
        ..Timing::default()
    };
    if train {
        let data = varmap.data().lock().expect("varmap lock poisoned").clone();
        let vars = named
            .iter()
            .map(|(n, _)| (n.clone(), data[n].clone()))
            .collect();
        let mut adam = Adam::new(vars, 1e-4)?;
        let x = Tensor::from_vec(
            random_rolls(&mut rng, case.batch, case.steps, 0.03),
            (case.batch, case.steps, PITCHES),
            &device,
        )
        .map_err(candle)?;
        for i in 0..warmup + iters {
            let t0 = Instant::now();
            let l = loss(&model, &x, 1.0, &mut rng).map_err(candle)?;
            let grads = l.total.backward().map_err(candle)?;
            adam.apply(&grads, f64::INFINITY)?;
            let dt = t0.elapsed().as_secs_f64();
            if i >= warmup {
                timing.train_step_s_all.push(dt);
            }
        }
        timing.train_step_s = median(&timing.train_step_s_all);
    }
    if generation {
        let primer_data = random_rolls(&mut rng, 1, 64, 0.03);
        let binary: Vec<u8> = primer_data.iter().map(|v| u8::from(*v > 0.5)).collect();
        let primer = Roll::from_binary(64, &binary)?;
        let opts = GenerateOptions {
            steps: 256,
            primer_steps: 64,
            max_notes: PITCHES,
            ..GenerateOptions::default()
        };
        let cancel = AtomicBool::new(false);
        let mut times = Vec::new();
        for i in 0..reps + 1 {
            let t0 = Instant::now();
            let x =
                Tensor::from_vec(primer_data.clone(), (1, 64, PITCHES), &device).map_err(candle)?;
            let z = model
                .encode(&x)
                .and_then(|q| q.mean.squeeze(0))
                .and_then(|m| m.to_vec1::<f32>())
                .map_err(candle)?;
            generate::generate(&model, &primer, &z, &z, &opts, &mut |_| {}, &cancel)?;
            if i >= 1 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        timing.gen_ms = median(&times);
    }
    timing.max_rss_mib = peak_rss_mib();
    Ok(timing)
}

/// Runs `segue bench lstm-vae-worker` in a child process and reads its JSON.
pub fn time_own_in_child(
    case: &Case,
    iters: usize,
    train: bool,
    generation: bool,
) -> Result<Timing> {
    let exe = std::env::current_exe().map_err(|e| Error::io(Path::new("segue"), "locating", e))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "lstm-vae-worker", "--case"])
        .arg(serde_json::to_string(case).unwrap_or_default())
        .args(["--iters", &iters.to_string()]);
    if !train {
        cmd.arg("--no-train");
    }
    if !generation {
        cmd.arg("--no-gen");
    }
    let out = cmd.output().map_err(|e| Error::io(&exe, "running", e))?;
    if !out.status.success() {
        return Err(Error::InvalidArgument(format!(
            "the measuring process failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::InvalidArgument(format!("worker output: {e}")))
}

/// Makes sure `venv` has PyTorch (a CPU run of the PyPI wheel: about 3 GB to download, 5.4 GB
/// installed, on first use only).
pub fn ensure_torch(python: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    let has = Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Ok(());
    }
    log("installing PyTorch into the reference environment (first use only; about 3 GB)");
    crate::bench::run(
        Command::new(python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "torch==2.15.0",
        ]),
        python,
    )?;
    Ok(())
}

/// Runs the PyTorch reference script on `case` and reads its JSON.
pub fn time_reference(
    python: &Path,
    script: &Path,
    case: &Case,
    iters: usize,
    train: bool,
    generation: bool,
) -> Result<Timing> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--hidden", &case.config.hidden.to_string()])
        .args(["--layers", &case.config.layers.to_string()])
        .args(["--latent", &case.config.latent.to_string()])
        .args(["--batch", &case.batch.to_string()])
        .args(["--steps", &case.steps.to_string()])
        .args(["--iters", &iters.to_string()])
        .args(["--fixed-view", "--json"]);
    if !train {
        cmd.arg("--skip-train");
    }
    if !generation {
        cmd.arg("--skip-gen");
    }
    let out = crate::bench::run(&mut cmd, script)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::format(script, format!("reference output: {e}")))?;
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
    Ok(Timing {
        params: v.get("params").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
        train_step_s: f("train_step_s"),
        train_step_s_all: v
            .get("train_step_s_all")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default(),
        gen_ms: f("gen_ms"),
        max_rss_mib: f("max_rss_mib").unwrap_or(0.0),
    })
}
