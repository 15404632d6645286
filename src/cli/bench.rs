//! `segue bench roll` and `segue bench lstm-vae`: this implementation and the Python
//! references timed in one run, with the ratios.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::corpus::shared_dir;
use super::models::compute_device;
use super::progress::progress_bar;
use segue::bench;
use segue::fsutil::shown;

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Convert the whole corpus to rolls and compare with symusic and pretty_midi.
    Roll(BenchRollArgs),
    /// Time LSTM-VAE training steps and generation against the PyTorch reference.
    LstmVae(BenchModelArgs),
    /// One measurement in its own process (used by `bench lstm-vae`).
    #[command(hide = true)]
    LstmVaeWorker {
        #[arg(long)]
        case: String,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long)]
        no_train: bool,
        #[arg(long)]
        no_gen: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Args)]
pub(crate) struct BenchRollArgs {
    /// The corpus folder to convert (default: ../shared/corpus from the current folder, else
    /// beside the source tree).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// The folder holding the reference roll_convert.py (default: ../shared/bench/reference,
    /// found as the corpus is).
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
    /// The Python virtual environment for the references, created on first use (about 110 MB
    /// for the roll references; `bench lstm-vae` adds PyTorch: about 3 GB downloaded, 5 GB
    /// installed); a relative path is from the current folder.
    #[arg(long, value_name = "DIR", default_value = "target/bench-venv")]
    venv: PathBuf,
    /// Timed passes over the corpus, of Segue's conversion and of each Python reference alike
    /// (the median pass is reported), 1 to 100.
    #[arg(long, default_value_t = 5, value_name = "NUM", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    repeats: usize,
    /// Skip the Python references (Segue's own timings only).
    #[arg(long)]
    no_reference: bool,
    /// Exit with an error when the mean agreement with the reference roll is below this.
    #[arg(long, value_name = "X", conflicts_with = "no_reference")]
    check_agreement: Option<f64>,
}

#[derive(Args)]
pub(crate) struct BenchModelArgs {
    /// Presets to time: studio, paper (comma-separated).
    #[arg(long, default_value = "studio,paper", value_delimiter = ',')]
    presets: Vec<String>,
    /// Timed training steps per side (after 2 warm-up steps); the median is reported.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    iters: usize,
    /// The folder holding the reference lstm_vae_torch.py (default: ../shared/bench/reference
    /// from the current folder, else beside the source tree).
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
    /// The Python virtual environment for the references, created on first use (about 110 MB
    /// for the roll references; `bench lstm-vae` adds PyTorch: about 3 GB downloaded, 5 GB
    /// installed); a relative path is from the current folder.
    #[arg(long, value_name = "DIR", default_value = "target/bench-venv")]
    venv: PathBuf,
    /// Skip PyTorch (Segue's own timings only).
    #[arg(long)]
    no_reference: bool,
    /// Where both sides run: cpu, or cuda (a build with `--features cuda`; PyTorch then runs
    /// on the GPU too).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: String,
    /// A Python that already has PyTorch (a GPU machine's own, say), instead of the
    /// environment in --venv.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
}

/// `segue bench lstm-vae-worker`: one measurement of this implementation in a process of its
/// own (`bench lstm-vae` runs it), printed as JSON.
pub(crate) fn bench_lstm_vae_worker(
    case: &str,
    iters: usize,
    no_train: bool,
    no_gen: bool,
    device: &str,
) -> Result<()> {
    let case: segue::bench_model::Case = serde_json::from_str(case)?;
    let device = compute_device(device)?;
    let t = segue::bench_model::time_own(&case, 2, iters, 5, !no_train, !no_gen, &device)?;
    out!("{}", serde_json::to_string(&t)?);
    Ok(())
}

/// `segue bench roll`: the whole corpus read into rolls by Segue and by the Python references
/// (symusic, pretty_midi) in one run; the ratios and whether the rolls agree.
pub(crate) fn bench_roll(args: BenchRollArgs) -> Result<()> {
    let corpus = args.corpus.unwrap_or_else(|| shared_dir("corpus"));
    let reference = args
        .reference
        .unwrap_or_else(|| shared_dir("bench/reference"));
    let files =
        segue::dataset::midi_files(&corpus).with_context(|| "listing the benchmark corpus")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    out!(
        "{} MIDI files under {} ({} cores); read + parse + roll, paper rounding, median of {} passes (Segue and the references alike)",
        files.len(),
        shown(&corpus),
        cores,
        args.repeats
    );
    if files.is_empty() {
        bail!("{}: no MIDI files to convert", shown(&corpus));
    }
    // The references are made ready (or refused) before Segue is timed, so that a missing
    // script or a failed install costs no timing that would then be lost.
    let python = if args.no_reference {
        None
    } else {
        let script = reference.join("roll_convert.py");
        if !script.is_file() {
            bail!(
                "{}: the Python reference is not there (give its folder with --reference, or \
                 --no-reference)",
                shown(&script)
            );
        }
        Some(bench::ensure_venv(&args.venv, &mut |m| note!("{m}"))?)
    };
    let bar = progress_bar(3, "timing Segue (warm-up, 1 thread, all cores)");
    // Warm the file cache so every method reads from memory.
    bench::time_own(&files, cores, 1)?;
    bar.inc(1);
    let single = bench::time_own(&files, 1, args.repeats)?;
    bar.inc(1);
    let multi = bench::time_own(&files, cores, args.repeats)?;
    bar.finish_and_clear();
    // (label, files/s, seconds, failed, files read)
    let mut rows: Vec<(String, f64, f64, usize, usize)> = vec![
        (
            single.label.clone(),
            single.files_per_s,
            single.seconds,
            single.failed,
            files.len(),
        ),
        (
            multi.label.clone(),
            multi.files_per_s,
            multi.seconds,
            multi.failed,
            files.len(),
        ),
    ];
    let mut agreement = None;
    if let Some(python) = python {
        let spinner = progress_bar(1, "timing the Python references");
        let refs = bench::time_reference(
            &python,
            &reference,
            &corpus,
            &["symusic_native", "symusic", "pretty_midi"],
            args.repeats,
        )?;
        spinner.set_message("comparing the rolls with the reference's");
        for r in refs {
            rows.push((
                format!("python {}", r.method),
                r.files_per_s,
                r.seconds,
                r.failed,
                r.files,
            ));
        }
        agreement = Some(bench::agreement(&python, &reference, &corpus, &files)?);
        spinner.finish_and_clear();
    }
    out!(
        "\n{:<28} {:>10} {:>9} {:>7}",
        "method",
        "files/s",
        "total s",
        "failed"
    );
    for (label, fps, secs, failed, _) in &rows {
        out!("{label:<28} {fps:>10.1} {secs:>9.3} {failed:>7}");
    }
    if rows.len() > 2 {
        out!("\nratios (files/s of segue / files/s of the reference):");
        for (label, fps, _, failed, read) in &rows[2..] {
            // A ratio compares the same work: the same files, as many converted.
            if *read != files.len() || *failed != single.failed {
                out!(
                    "  {label:<24} no ratio: it read {read} files ({failed} failed), Segue {} ({} failed)",
                    files.len(),
                    single.failed
                );
                continue;
            }
            out!(
                "  {:<24} 1 thread {:>7.2}x   {} threads {:>7.2}x",
                label,
                single.files_per_s / fps,
                cores,
                multi.files_per_s / fps
            );
        }
    }
    if let Some(a) = &agreement {
        let (Some(mean), Some(min)) = (a.mean, a.min) else {
            bail!(
                "no file could be compared with the reference roll ({} missing)",
                a.missing.len()
            );
        };
        out!(
            "\nagreement with the reference roll (symusic ticks, paper rounding): mean Jaccard {mean:.5}, min {min:.4}, {} of {} files identical",
            a.identical,
            a.files
        );
        if !a.missing.is_empty() {
            out!(
                "  {} files not compared (one side could not convert them): {}",
                a.missing.len(),
                a.missing.join(", ")
            );
        }
        if let Some(threshold) = args.check_agreement
            && mean < threshold
        {
            bail!("mean agreement {mean:.5} is below the required {threshold}");
        }
    } else if args.check_agreement.is_some() {
        bail!("--check-agreement needs the Python reference (drop --no-reference)");
    }
    Ok(())
}

/// `segue bench lstm-vae`: LSTM-VAE training steps and generation timed here and in the
/// PyTorch reference in one run; the ratios and peak memory.
pub(crate) fn bench_lstm_vae(a: BenchModelArgs) -> Result<()> {
    use segue::bench_model::{Case, Timing, ensure_torch, time_reference};
    let script = a
        .reference
        .clone()
        .unwrap_or_else(|| shared_dir("bench/reference"))
        .join("lstm_vae_torch.py");
    // Fail early, before any timing, on a device this build or machine lacks, a preset that
    // does not exist or a reference script that is not there.
    let cuda = !compute_device(&a.device)?.is_cpu();
    for preset in &a.presets {
        segue::bench_model::Case::preset(preset)?;
    }
    if !a.no_reference && !script.is_file() {
        bail!(
            "{}: the PyTorch reference is not there (give its folder with --reference, or \
             --no-reference)",
            shown(&script)
        );
    }
    let python = if a.no_reference {
        None
    } else if let Some(python) = &a.python {
        segue::bench_model::check_torch(python)?;
        Some(python.clone())
    } else {
        let python = bench::ensure_venv(&a.venv, &mut |m| note!("{m}"))?;
        ensure_torch(&python, &mut |m| note!("{m}"))?;
        Some(python)
    };
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
        _ => "-".into(),
    };
    let s = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.3} {unit}"));
    for preset in &a.presets {
        let case = Case::preset(preset)?;
        let c = case.config;
        out!(
            "{preset} on {}: hidden {}, layers {}+{}, latent {}, batch {}, {} steps",
            a.device,
            c.hidden,
            c.layers,
            c.layers,
            c.latent,
            case.batch,
            case.steps
        );
        let bar = progress_bar(0, "segue");
        let own = time_own_in_child(&case, a.iters, true, true, &a.device)?;
        bar.finish_and_clear();
        let reference = match &python {
            Some(py) => {
                let bar = progress_bar(0, "pytorch");
                let r = time_reference(py, &script, &case, a.iters, true, true, cuda)?;
                bar.finish_and_clear();
                Some(r)
            }
            None => None,
        };
        let r = reference.clone().unwrap_or(Timing::default());
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "",
            "segue",
            "pytorch",
            "ratio"
        );
        // Without the reference its column says so ("-"), not 0.
        let theirs = |f: &dyn Fn(&Timing) -> String| reference.as_ref().map_or("-".into(), f);
        out!(
            "  {:<28} {:>14} {:>14}",
            "parameters",
            own.params,
            theirs(&|r| r.params.to_string())
        );
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "training step (median)",
            s(own.train_step_s, "s"),
            s(r.train_step_s, "s"),
            ratio(own.train_step_s, r.train_step_s)
        );
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "peak memory",
            format!("{:.0} MiB", own.max_rss_mib),
            theirs(&|r| format!("{:.0} MiB", r.max_rss_mib)),
            ratio(
                Some(own.max_rss_mib),
                reference.as_ref().map(|r| r.max_rss_mib)
            )
        );
        if cuda {
            out!(
                "  {:<28} {:>14} {:>14}",
                "peak GPU memory (PyTorch's)",
                "-",
                r.max_gpu_mib
                    .map_or("-".to_string(), |m| format!("{m:.0} MiB"))
            );
        }
        out!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "generation 64 + 256 steps",
            s(own.gen_ms, "ms"),
            s(r.gen_ms, "ms"),
            ratio(own.gen_ms, r.gen_ms)
        );
        out!(
            "  {:<28} {:>14} {:>14}",
            "generation per step",
            s(own.gen_ms.map(|v| v / 256.0), "ms"),
            s(r.gen_ms.map(|v| v / 256.0), "ms")
        );
        // The shipped model, where it has more than the reference can run (the metre input).
        if let Some(shipped) = Case::shipped(preset) {
            let bar = progress_bar(0, "segue, shipped");
            let own = time_own_in_child(&shipped, a.iters, false, true, &a.device)?;
            bar.finish_and_clear();
            out!(
                "  {:<28} {:>14} {:>14}",
                "generation, shipped model",
                s(own.gen_ms, "ms"),
                "-"
            );
            out!(
                "  {:<28} {:>14} {:>14}",
                "  per step",
                s(own.gen_ms.map(|v| v / 256.0), "ms"),
                "-"
            );
        }
    }
    Ok(())
}

/// Runs `segue bench lstm-vae-worker` in a child process on `device` (`cpu` or `cuda`) and
/// reads its JSON.
fn time_own_in_child(
    case: &segue::bench_model::Case,
    iters: usize,
    train: bool,
    generation: bool,
    device: &str,
) -> Result<segue::bench_model::Timing> {
    let exe = std::env::current_exe().context("locating the segue program")?;
    let mut cmd = std::process::Command::new(&exe);
    // The same threads as the reference (candle's matrix products and the fused LSTM both use
    // rayon's pool), so a machine with more cores compares like with like.
    cmd.env(
        "RAYON_NUM_THREADS",
        segue::bench_model::BENCH_THREADS.to_string(),
    );
    cmd.args(["bench", "lstm-vae-worker", "--case"])
        .arg(serde_json::to_string(case).unwrap_or_default())
        .args(["--iters", &iters.to_string()])
        .args(["--device", device]);
    if !train {
        cmd.arg("--no-train");
    }
    if !generation {
        cmd.arg("--no-gen");
    }
    let out = cmd
        .output()
        .with_context(|| format!("{}: running it failed", shown(&exe)))?;
    if !out.status.success() {
        bail!(
            "the measuring process failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the measuring process's output")
}
