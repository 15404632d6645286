//! `segue bench roll`: MIDI -> roll conversion speed against the Python references, in the
//! same run, and agreement with the reference roll.
//!
//! The Python methods (`symusic_native`, `symusic`, `pretty_midi` from the shared
//! `roll_convert.py`) run in a local virtual environment that is created on first use.
//! Absolute times on shared machines are noise; the ratios are what to read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::midi::Song;
use crate::roll::{QuantizeOptions, Roll};

/// The agreement helper, shipped inside the binary.
pub const AGREEMENT_SCRIPT: &str = include_str!("../scripts/roll_agreement.py");
/// Python packages the reference methods need, at the versions the reference figures were
/// made with (an unpinned install would change what CI's agreement check compares with when
/// one of them is released anew).
pub const PYTHON_PACKAGES: &[&str] = &[
    // numpy 2.4 needs Python 3.11 or newer; an older Python takes the last numpy it runs.
    "numpy==2.4.6; python_version >= '3.11'",
    "numpy==2.2.6; python_version < '3.11'",
    "symusic==0.6.0",
    "pretty_midi==0.2.11.post0",
    "mido==1.3.3",
];

/// Converts one file (read + parse + quantize).
pub fn convert_file(path: &Path, opts: &QuantizeOptions) -> Result<Roll> {
    let bytes = fsutil::read(path)?;
    let song = Song::parse(&bytes).map_err(|p| Error::midi(path, p))?;
    Roll::from_song(&song, opts).map_err(|p| Error::midi(path, p))
}

/// One timed run of Segue's converter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OwnTiming {
    /// Row label, e.g. "segue (1 thread)".
    pub label: String,
    /// Threads used (1 = single-threaded).
    pub threads: usize,
    /// Files attempted.
    pub files: usize,
    /// Files that failed to convert.
    pub failed: usize,
    /// Median seconds over the repetitions.
    pub seconds: f64,
    /// Files attempted per second of the median run.
    pub files_per_s: f64,
}

/// Times converting every file, `repeats` times, on `threads` threads (1 = single-threaded).
pub fn time_own(files: &[PathBuf], threads: usize, repeats: usize) -> Result<OwnTiming> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?;
    let opts = QuantizeOptions::paper();
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        failed = if threads <= 1 {
            files
                .iter()
                .filter(|f| convert_file(f, &opts).is_err())
                .count()
        } else {
            pool.install(|| {
                files
                    .par_iter()
                    .filter(|f| convert_file(f, &opts).is_err())
                    .count()
            })
        };
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    Ok(OwnTiming {
        label: if threads <= 1 {
            "segue (1 thread)".into()
        } else {
            format!("segue ({threads} threads)")
        },
        threads,
        files: files.len(),
        failed,
        seconds,
        files_per_s: files.len() as f64 / seconds,
    })
}

/// A Python virtual environment with the reference packages, created on first use.
pub fn ensure_venv(venv: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let ready = venv.join(".segue-ready");
    let wanted = PYTHON_PACKAGES.join("\n");
    // Made for these packages (an environment made for other versions is brought to them).
    if python.exists() && std::fs::read_to_string(&ready).is_ok_and(|made| made == wanted) {
        return Ok(python);
    }
    log(&format!(
        "setting up the reference Python environment in {} (first use, or its packages changed)",
        venv.display()
    ));
    run(
        Command::new("python3").arg("-m").arg("venv").arg(venv),
        venv,
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_PACKAGES),
        venv,
    )?;
    fsutil::write_atomic(&ready, wanted.as_bytes())?;
    Ok(python)
}

/// Runs a helper process; a failure to start names the program, a failure of the helper names
/// `context` and carries the helper's stderr.
pub(crate) fn run(cmd: &mut Command, context: &Path) -> Result<std::process::Output> {
    let out = cmd
        .output()
        .map_err(|e| Error::io(cmd.get_program(), "starting", e))?;
    if !out.status.success() {
        return Err(Error::format(
            context,
            format!(
                "the Python helper failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out)
}

/// One reference method's result, from `roll_convert.py --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferenceTiming {
    /// The reference method's name, e.g. "pretty_midi".
    pub method: String,
    /// Files the reference attempted.
    pub files: usize,
    /// Files it failed to convert.
    pub failed: usize,
    /// Total seconds of the run (NaN when the reference gave none).
    pub seconds: f64,
    /// Files per second, as the reference reports it (NaN when it gave none).
    pub files_per_s: f64,
}

/// Runs the reference methods on the corpus `repeats` times (each a fresh process, as Segue's
/// own passes) and keeps, per method, the pass of median time.
pub fn time_reference(
    python: &Path,
    reference_dir: &Path,
    corpus: &Path,
    methods: &[&str],
    repeats: usize,
) -> Result<Vec<ReferenceTiming>> {
    let mut passes: Vec<Vec<ReferenceTiming>> = vec![Vec::new(); methods.len()];
    for _ in 0..repeats.max(1) {
        for (pass, timing) in
            passes
                .iter_mut()
                .zip(time_reference_once(python, reference_dir, corpus, methods)?)
        {
            pass.push(timing);
        }
    }
    Ok(passes
        .into_iter()
        .filter_map(|mut pass| {
            pass.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let middle = pass.len() / 2;
            pass.into_iter().nth(middle)
        })
        .collect())
}

/// One run of the reference script over the corpus.
fn time_reference_once(
    python: &Path,
    reference_dir: &Path,
    corpus: &Path,
    methods: &[&str],
) -> Result<Vec<ReferenceTiming>> {
    let script = reference_dir.join("roll_convert.py");
    if !script.is_file() {
        return Err(Error::format(&script, "the reference script is missing"));
    }
    let json_file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .map_err(|e| Error::io(&script, "creating a temporary file for", e))?;
    run(
        Command::new(python)
            .arg(&script)
            .arg(corpus)
            .arg("--libs")
            .arg(methods.join(","))
            .arg("--json")
            .arg(json_file.path()),
        &script,
    )?;
    let text = fsutil::read(json_file.path())?;
    // Python writes a rate over no files as a bare NaN, which JSON has not: read as missing,
    // so that a run that found other files than Segue is said as such, not as bad JSON.
    let text = String::from_utf8_lossy(&text)
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    let summary: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::format(
            json_file.path(),
            format!("bad JSON from the reference: {e}"),
        )
    })?;
    let mut out = Vec::new();
    for &m in methods {
        let r = &summary["results"][m];
        if let Some(err) = r["error"].as_str() {
            return Err(Error::format(&script, format!("{m}: {err}")));
        }
        out.push(ReferenceTiming {
            method: m.to_string(),
            files: r["files_attempted"].as_u64().unwrap_or(0) as usize,
            failed: r["files_failed"].as_u64().unwrap_or(0) as usize,
            seconds: r["total_s"].as_f64().unwrap_or(f64::NAN),
            files_per_s: r["files_per_s"].as_f64().unwrap_or(f64::NAN),
        });
    }
    Ok(out)
}

/// Agreement of Segue's paper-rounded rolls with the reference `symusic` rolls.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    /// Files compared.
    pub files: usize,
    /// Files one side could not convert (not compared).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Mean Jaccard over the files compared (`None` when none was).
    pub mean: Option<f64>,
    /// The lowest Jaccard.
    pub min: Option<f64>,
    /// Files whose rolls are identical.
    pub identical: usize,
    /// The least alike files.
    pub worst: Vec<serde_json::Value>,
}

/// Writes Segue's rolls (paper rounding, as the reference) and compares them in Python.
pub fn agreement(
    python: &Path,
    reference_dir: &Path,
    corpus: &Path,
    files: &[PathBuf],
) -> Result<Agreement> {
    let dir =
        tempfile::tempdir().map_err(|e| Error::io(corpus, "creating a temporary folder for", e))?;
    let opts = QuantizeOptions::paper();
    // A file Segue cannot convert (timed as failed above) is left out: the helper lists it
    // as not compared.
    files.par_iter().try_for_each(|f| -> Result<()> {
        let Ok(roll) = convert_file(f, &opts) else {
            return Ok(());
        };
        let rel = f
            .strip_prefix(corpus)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('/', "__");
        crate::npy::write_roll(&dir.path().join(format!("{rel}.npy")), &roll)
    })?;
    let script = dir.path().join("roll_agreement.py");
    fsutil::write_atomic(&script, AGREEMENT_SCRIPT.as_bytes())?;
    let out = run(
        Command::new(python)
            .arg(&script)
            .arg(reference_dir)
            .arg(corpus)
            .arg(dir.path()),
        &script,
    )?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::format(&script, format!("bad JSON from the agreement helper: {e}")))
}
