//! The runs trained in the studio, in its models folder: listed with what each holds (its
//! model, the steps in its log, its size on disk), and removed when the musician asks, so that
//! runs of 20-odd megabytes each do not pile up unseen.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::models::ModelKind;
use crate::train_loop::{RUN_KINDS, lock_run_folder, run_folder_in_use};

/// A run folder in the models folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The folder.
    pub dir: PathBuf,
    /// The model it trains, from the model file it holds (the newest, see
    /// [`crate::train_loop::run_model`]); `None` before its first checkpoint.
    pub kind: Option<ModelKind>,
    /// The last step of its metrics log (`None`: no step logged).
    pub steps: Option<usize>,
    /// Bytes of its files.
    pub bytes: u64,
    /// When its files last changed.
    pub modified: Option<SystemTime>,
    /// Whether a run is training in it now (here or in another program).
    pub in_use: bool,
}

impl RunSummary {
    /// Its folder's name.
    pub fn name(&self) -> String {
        (self.dir.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// One line of what it is, as of `now`: "chopin: LSTM-VAE, 1200 steps, 23.4 MB, 2 h ago".
    pub fn describe(&self, now: SystemTime) -> String {
        let kind = match self.kind {
            None => "no model yet",
            Some(ModelKind::Classifier) => "composer classifier",
            Some(ModelKind::TransformerVae) => "Transformer VAE",
            Some(ModelKind::Dcgan) => "DCGAN",
            Some(ModelKind::LstmVae) => "LSTM-VAE",
        };
        let steps = self.steps.map_or(String::new(), |s| format!(", {s} steps"));
        let size = format!("{:.1} MB", self.bytes as f64 / 1e6);
        let age = (self.modified)
            .and_then(|m| now.duration_since(m).ok())
            .map_or(String::new(), |d| {
                format!(", {}", super::messages::ago(d.as_secs()))
            });
        format!("{}: {kind}{steps}, {size}{age}", self.name())
    }
}

/// The files that make a folder a run's: a metrics log, a training state or a model file.
fn is_run_folder(dir: &Path) -> bool {
    crate::train_loop::has_run_files(dir)
        || RUN_KINDS
            .iter()
            .any(|k| dir.join(format!("{k}.safetensors")).is_file())
}

/// The runs in `models`, most recently changed first (nothing when the folder is not there
/// yet). Other folders and files there are left out.
pub fn list_runs(models: &Path) -> Vec<RunSummary> {
    let Ok(entries) = std::fs::read_dir(models) else {
        return Vec::new();
    };
    let mut runs: Vec<RunSummary> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        // Not a folder being removed (`.removing-NAME`), nor another hidden one.
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|dir| is_run_folder(dir))
        .map(|dir| summarize(&dir))
        .collect();
    runs.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.dir.cmp(&b.dir)));
    runs
}

/// What the run in `dir` holds.
fn summarize(dir: &Path) -> RunSummary {
    let (mut bytes, mut modified) = (0u64, None::<SystemTime>);
    for file in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(meta) = file.metadata()
            && meta.is_file()
        {
            bytes += meta.len();
            modified = modified.max(meta.modified().ok());
        }
    }
    RunSummary {
        dir: dir.to_path_buf(),
        // The model "Use" loads, as a run followed in the monitor reads it.
        kind: crate::train_loop::run_model(dir).map(|(kind, _)| kind),
        steps: last_logged_step(&dir.join("metrics.jsonl")),
        bytes,
        modified,
        in_use: run_folder_in_use(dir),
    }
}

/// The `step` of the last whole line of a metrics log (read from its end: a day-long run's
/// log is megabytes).
fn last_logged_step(log: &Path) -> Option<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(64 << 10);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    file.take(64 << 10).read_to_end(&mut tail).ok()?;
    #[derive(serde::Deserialize)]
    struct Step {
        step: usize,
    }
    (tail.split(|&b| b == b'\n').rev())
        .find_map(|line| serde_json::from_slice::<Step>(line).ok())
        .map(|s| s.step)
}

/// Removes the run folder `dir`, which must be a run's folder directly inside `models`: never
/// one a run is training in (its lock is taken first, so none can start meanwhile), never one
/// holding a file of `in_use` (the models the studio uses, however their paths are spelt),
/// never anything else. The folder is first renamed out of the list (`.removing-NAME`), so
/// that a removal cut short leaves no half run to use or continue. The error says why, naming
/// the folder.
pub fn remove_run(models: &Path, dir: &Path, in_use: &[PathBuf]) -> Result<(), String> {
    let shown = crate::fsutil::shown(dir);
    let (Ok(models), Ok(real)) = (models.canonicalize(), dir.canonicalize()) else {
        return Err(format!("{shown}: not a run in the models folder"));
    };
    if real.parent() != Some(models.as_path()) || !is_run_folder(&real) {
        return Err(format!("{shown}: not a run in the models folder"));
    }
    if (in_use.iter()).any(|p| p.canonicalize().is_ok_and(|p| p.starts_with(&real))) {
        return Err(format!(
            "{shown}: its model is in use; use another one first"
        ));
    }
    let lock = lock_run_folder(&real).map_err(|e| match e {
        crate::error::Error::RunInUse { .. } => {
            format!("{shown}: a run is training in it; stop it first")
        }
        e => format!("{shown}: cannot lock it to remove it: {e}"),
    })?;
    let name = real.file_name().unwrap_or_default().to_string_lossy();
    let aside = models.join(format!(".removing-{name}"));
    let removed = (|| -> std::io::Result<()> {
        // What a removal cut short left aside is gone with it.
        if aside.exists() {
            std::fs::remove_dir_all(&aside)?;
        }
        // Renamed while locked: a run that starts now makes a new folder of that name.
        std::fs::rename(&real, &aside)?;
        drop(lock);
        std::fs::remove_dir_all(&aside)
    })();
    removed.map_err(|e| format!("{shown}: could not remove it: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(models: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = models.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    /// A folder where a run of another model was trained after an earlier one is listed as
    /// the newer run's, the model "Use" loads and the monitor follows (it was listed as the
    /// older LSTM-VAE's, by the order of the kinds).
    #[test]
    fn a_run_is_listed_as_its_newest_model() {
        let models = tempfile::tempdir().unwrap();
        let dir = run(
            models.path(),
            "both",
            &[
                ("lstm-vae.safetensors", "older"),
                ("dcgan.safetensors", "newer"),
            ],
        );
        let aged = |file: &str, secs| crate::train_loop::tests::aged(&dir.join(file), secs);
        aged("lstm-vae.safetensors", 3600);
        aged("dcgan.safetensors", 60);
        assert_eq!(list_runs(models.path())[0].kind, Some(ModelKind::Dcgan));
        let (kind, file) = crate::train_loop::run_model(&dir).unwrap();
        assert_eq!(
            (kind.name(), file),
            ("dcgan", dir.join("dcgan.safetensors"))
        );
        aged("lstm-vae.safetensors", 10);
        assert_eq!(list_runs(models.path())[0].kind, Some(ModelKind::LstmVae));
    }

    /// Runs are listed with their model, last step and size; other folders are not.
    #[test]
    fn lists_the_runs_and_what_they_hold() {
        let models = tempfile::tempdir().unwrap();
        let log = "{\"step\":10}\n{\"step\":20}\n{\"step\":3";
        let a = run(models.path(), "a", &[("metrics.jsonl", log)]);
        let b = run(
            models.path(),
            "b",
            &[
                ("classifier.safetensors", "12345"),
                ("train-state.json", "{}"),
            ],
        );
        run(models.path(), "photos", &[("x.jpg", "...")]);
        std::fs::write(models.path().join("notes.txt"), "").unwrap();
        let mut runs = list_runs(models.path());
        runs.sort_by(|x, y| x.dir.cmp(&y.dir));
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(
            (runs[0].dir.clone(), runs[0].kind, runs[0].steps),
            (a, None, Some(20))
        );
        assert_eq!(runs[0].bytes, log.len() as u64);
        assert_eq!(
            (runs[1].dir.clone(), runs[1].kind),
            (b, Some(ModelKind::Classifier))
        );
        assert_eq!(
            (runs[1].steps, runs[1].bytes, runs[1].name()),
            (None, 7, "b".into())
        );
        assert!(!runs[0].in_use);
        assert!(list_runs(&models.path().join("none")).is_empty());
        let day = std::time::Duration::from_secs(86_400);
        let then = runs[1].modified.unwrap();
        assert_eq!(
            runs[1].describe(then + 3 * day),
            "b: composer classifier, 0.0 MB, 3 days ago"
        );
        let big = RunSummary {
            kind: Some(ModelKind::LstmVae),
            steps: Some(1200),
            bytes: 23_400_000,
            ..runs[0].clone()
        };
        let then = big.modified.unwrap();
        assert_eq!(
            big.describe(then),
            "a: LSTM-VAE, 1200 steps, 23.4 MB, just now"
        );
    }

    /// A run is removed whole; a folder that is not a run of the models folder, or one a run
    /// trains in, is not touched.
    #[test]
    fn removes_only_idle_runs_of_the_models_folder() {
        let models = tempfile::tempdir().unwrap();
        let done = run(
            models.path(),
            "done",
            &[("metrics.jsonl", "{\"step\":1}\n")],
        );
        std::fs::create_dir(done.join("sub")).unwrap();
        remove_run(models.path(), &done, &[]).unwrap();
        assert!(!done.exists());
        assert_eq!(
            std::fs::read_dir(models.path()).unwrap().count(),
            0,
            "nothing left aside"
        );

        let busy = run(models.path(), "busy", &[("metrics.jsonl", "")]);
        let lock = lock_run_folder(&busy).unwrap();
        assert!(list_runs(models.path())[0].in_use);
        let err = remove_run(models.path(), &busy, &[]).unwrap_err();
        assert!(err.contains("a run is training in it"), "{err}");
        assert!(busy.join("metrics.jsonl").exists());
        drop(lock);
        // Its model in use, by a path spelt another way (through "..").
        std::fs::write(busy.join("lstm-vae.safetensors"), "").unwrap();
        let spelt = models.path().join("done/../busy/lstm-vae.safetensors");
        std::fs::create_dir(models.path().join("done")).unwrap();
        let err = remove_run(models.path(), &busy, &[spelt]).unwrap_err();
        assert!(err.contains("its model is in use"), "{err}");
        std::fs::remove_dir(models.path().join("done")).unwrap();
        remove_run(models.path(), &busy, &[]).unwrap();
        // A folder being removed (a removal cut short) is not listed.
        run(models.path(), ".removing-x", &[("metrics.jsonl", "")]);
        assert!(list_runs(models.path()).is_empty());
        std::fs::remove_dir_all(models.path().join(".removing-x")).unwrap();

        let other = run(models.path(), "photos", &[("x.jpg", "")]);
        let err = remove_run(models.path(), &other, &[]).unwrap_err();
        assert!(err.contains("not a run in the models folder"), "{err}");
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = run(elsewhere.path(), "r", &[("metrics.jsonl", "")]);
        assert!(remove_run(models.path(), &outside, &[]).is_err());
        let nested = run(&other, "r", &[("metrics.jsonl", "")]);
        assert!(remove_run(models.path(), &nested, &[]).is_err());
        assert!(outside.exists() && nested.exists() && other.join("x.jpg").exists());
    }
}
