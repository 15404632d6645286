//! Timing the LSTM-VAE against the PyTorch reference (`lstm_vae_torch.py`), same sizes, same
//! work: one full training step (forward, BCE(sum) + KL, backward, Adam) on random rolls, and
//! generation (encode a 64-step primer, prime the decoder, sample 256 steps one at a time).
//!
//! Each measurement runs in its own process (`segue bench lstm-vae-worker`) so that its peak
//! memory is its own.
//!
//! On a GPU (`--device cuda`) both sides run there: Segue through candle's CUDA backend, the
//! reference through [`TORCH_ON_CUDA`], which runs the same script with every tensor on the GPU
//! and its timer synchronised with the device. Generation on a GPU goes through candle one step
//! at a time ([`generate_on_device`]), each sample drawn on the host and fed back, as the
//! reference does; on the CPU it is the product's own step decoder.

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
use crate::models::lstm_vae::{BarPositions, Config, LstmVae, loss};
use crate::models::trained;
use crate::optim::Adam;
use crate::roll::{PITCHES, Roll};
use crate::train::seeded_init;

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
                    metre_map: false,
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

    /// The model a preset ships as, where its case differs from it (the `studio` case leaves
    /// out the metre input the shipped model has): timed for Segue alone.
    pub fn shipped(name: &str) -> Option<Case> {
        let case = Case::preset(name).ok()?;
        let shipped = match name {
            "studio" => Config::studio(),
            _ => return None,
        };
        (shipped != case.config).then_some(Case {
            config: shipped,
            ..case
        })
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
    /// Peak GPU memory the framework allocated, MiB (PyTorch on a GPU only: candle keeps no
    /// such count).
    #[serde(default)]
    pub max_gpu_mib: Option<f64>,
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

/// Waits for the work queued on `device` (a no-op on the CPU), so a timer read after it
/// covers the work and not only its launch.
fn settle(device: &Device) -> Result<()> {
    device.synchronize().map_err(candle)
}

/// One generation through candle on `device`: encode the `primer_steps`-step primer
/// (`[primer_steps * 128]` row-major), run the decoder over it a step at a time, then sample
/// `steps` steps, each drawn on the host from the decoder's probabilities and fed back.
/// Returns the sampled steps, `[steps * 128]`.
pub fn generate_on_device(
    model: &LstmVae,
    primer: &[f32],
    primer_steps: usize,
    steps: usize,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<u8>> {
    let x =
        Tensor::from_vec(primer.to_vec(), (1, primer_steps, PITCHES), device).map_err(candle)?;
    let z = model.encode(&x).map_err(candle)?.mean;
    let mut state = model.initial_state(&z).map_err(candle)?;
    let mut previous = Tensor::zeros((1, PITCHES), DType::F32, device).map_err(candle)?;
    for s in 0..primer_steps {
        model
            .decode_step(&previous, &z, s, &mut state)
            .map_err(candle)?;
        previous = x.get(0).and_then(|r| r.narrow(0, s, 1)).map_err(candle)?;
    }
    let mut out = vec![0u8; steps * PITCHES];
    for (t, row) in out.chunks_mut(PITCHES).enumerate() {
        let logits = model
            .decode_step(&previous, &z, primer_steps + t, &mut state)
            .map_err(candle)?;
        let p = candle_nn::ops::sigmoid(&logits)
            .and_then(|p| p.flatten_all())
            .and_then(|p| p.to_vec1::<f32>())
            .map_err(candle)?;
        let sample: Vec<f32> = p
            .iter()
            .map(|&p| f32::from(rng.random::<f32>() < p))
            .collect();
        for (cell, v) in row.iter_mut().zip(&sample) {
            *cell = u8::from(*v > 0.5);
        }
        previous = Tensor::from_vec(sample, (1, PITCHES), device).map_err(candle)?;
    }
    Ok(out)
}

/// Measures this implementation in this process on `device`: `warmup` + `iters` training
/// steps (if `train`), then `reps` + 1 generations (if `gen`).
pub fn time_own(
    case: &Case,
    warmup: usize,
    iters: usize,
    reps: usize,
    train: bool,
    generation: bool,
    device: &Device,
) -> Result<Timing> {
    let device = device.clone();
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
        let bars = BarPositions::from_bar_line(model.config(), case.batch, case.steps);
        for i in 0..warmup + iters {
            let t0 = Instant::now();
            let l = loss(&model, &x, &bars, 1.0, &mut rng).map_err(candle)?;
            let grads = l.total.backward().map_err(candle)?;
            adam.apply(&grads, f64::INFINITY)?;
            settle(&device)?;
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
            if device.is_cpu() {
                let x = Tensor::from_vec(primer_data.clone(), (1, 64, PITCHES), &device)
                    .map_err(candle)?;
                let z = model
                    .encode(&x)
                    .and_then(|q| q.mean.squeeze(0))
                    .and_then(|m| m.to_vec1::<f32>())
                    .map_err(candle)?;
                generate::generate(&model, &primer, &z, &z, &opts, &mut |_| {}, &cancel)?;
            } else {
                generate_on_device(&model, &primer_data, 64, 256, &device, &mut rng)?;
                settle(&device)?;
            }
            if i >= 1 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        timing.gen_ms = median(&times);
    }
    timing.max_rss_mib = peak_rss_mib();
    Ok(timing)
}

/// CPU threads of both sides of `segue bench lstm-vae` (the reference's default).
pub const BENCH_THREADS: usize = 2;

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

/// Runs a reference script (its path and arguments follow) with PyTorch on the GPU: tensors
/// are made on `cuda`, except the random rolls, which are drawn from the script's CPU
/// generator as on the CPU (the same data) and then moved; `time.perf_counter` waits for the
/// GPU before it reads the clock, so the script's timings cover the work, not its launch. The
/// peak GPU memory PyTorch allocated is added to its JSON as `max_gpu_mib`.
pub const TORCH_ON_CUDA: &str = r#"
import json, runpy, sys, time, torch
torch.set_default_device("cuda")
_rand = torch.rand
def _rand_from_host_generator(*size, generator=None, **kw):
    if generator is not None and generator.device.type == "cpu":
        return _rand(*size, generator=generator, device="cpu", **kw).to("cuda")
    return _rand(*size, generator=generator, **kw)
torch.rand = _rand_from_host_generator
_clock = time.perf_counter
def _settled_clock():
    torch.cuda.synchronize()
    return _clock()
time.perf_counter = _settled_clock
_dumps = json.dumps
def _dumps_with_gpu(obj, *a, **k):
    if isinstance(obj, dict) and "params" in obj and "hidden" in obj:
        obj = dict(obj, max_gpu_mib=torch.cuda.max_memory_allocated() / 2**20,
                   device=torch.cuda.get_device_name())
    return _dumps(obj, *a, **k)
json.dumps = _dumps_with_gpu
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"#;

/// Checks that `python` (one given by the user, not the managed environment) can import
/// PyTorch, before any timing starts.
pub fn check_torch(python: &Path) -> Result<()> {
    crate::bench::run(Command::new(python).args(["-c", "import torch"]), python).map(|_| ())
}

/// Runs the PyTorch reference script on `case` (on the GPU when `cuda`) and reads its JSON.
pub fn time_reference(
    python: &Path,
    script: &Path,
    case: &Case,
    iters: usize,
    train: bool,
    generation: bool,
    cuda: bool,
) -> Result<Timing> {
    let mut cmd = Command::new(python);
    if cuda {
        cmd.args(["-c", TORCH_ON_CUDA]);
    }
    cmd.arg(script)
        .args(["--hidden", &case.config.hidden.to_string()])
        .args(["--layers", &case.config.layers.to_string()])
        .args(["--latent", &case.config.latent.to_string()])
        .args(["--batch", &case.batch.to_string()])
        .args(["--steps", &case.steps.to_string()])
        .args(["--iters", &iters.to_string()])
        .args(["--fixed-view", "--json"])
        .args(["--threads", &BENCH_THREADS.to_string()]);
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
        max_gpu_mib: f("max_gpu_mib"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::step_decoder::StepDecoder;

    /// The studio case runs the reference's sizes; the model as shipped (its metre input) is
    /// timed besides it; the paper's case is its shipped size.
    #[test]
    fn the_shipped_studio_model_is_timed_besides_its_case() {
        let case = Case::preset("studio").unwrap();
        assert_eq!(case.config.metre, 0);
        let shipped = Case::shipped("studio").unwrap();
        assert_eq!(shipped.config, Config::studio());
        assert!(shipped.config.metre > 0);
        assert_eq!((shipped.batch, shipped.steps), (case.batch, case.steps));
        assert_eq!(Case::shipped("paper"), None);
    }

    fn tiny_model() -> (LstmVae, VarMap) {
        let cfg = Config {
            hidden: 16,
            layers: 2,
            latent: 4,
            metre: 4,
            ..Config::studio()
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = LstmVae::new(&cfg, vb).unwrap();
        seeded_init(&varmap, &cfg, 3).unwrap();
        (model, varmap)
    }

    /// The candle path a GPU takes draws the same samples as the product's step decoder fed
    /// the same primer, code and random numbers (so its timings are of the same work).
    #[test]
    fn generation_through_candle_matches_the_step_decoder() {
        let (model, _vars) = tiny_model();
        let (primer_steps, steps) = (6, 12);
        let primer = random_rolls(&mut ChaCha8Rng::seed_from_u64(1), 1, primer_steps, 0.1);
        let run = |seed| {
            generate_on_device(
                &model,
                &primer,
                primer_steps,
                steps,
                &Device::Cpu,
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
            .unwrap()
        };
        let out = run(5);
        assert_eq!(out, run(5), "same seed, same output");
        assert_eq!(out.len(), steps * PITCHES);

        let x = Tensor::from_vec(primer.clone(), (1, primer_steps, PITCHES), &Device::Cpu).unwrap();
        let z = model.encode(&x).unwrap().mean.flatten_all().unwrap();
        let z = z.to_vec1::<f32>().unwrap();
        let mut decoder = StepDecoder::new(&model).unwrap();
        decoder.reset(&z);
        let mut previous = vec![0f32; PITCHES];
        let mut logits = vec![0f32; PITCHES];
        for (s, row) in primer.chunks(PITCHES).enumerate() {
            decoder.step(&previous, &z, s, &mut logits);
            previous.copy_from_slice(row);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut expected = Vec::new();
        for t in 0..steps {
            decoder.step(&previous, &z, primer_steps + t, &mut logits);
            for (prev, &l) in previous.iter_mut().zip(&logits) {
                let p = 1.0 / (1.0 + (-l).exp());
                *prev = f32::from(rng.random::<f32>() < p);
                expected.push(u8::from(*prev > 0.5));
            }
        }
        assert_eq!(out, expected);
        assert!(out.contains(&1), "some notes were drawn");
    }
}
