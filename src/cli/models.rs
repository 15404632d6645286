//! Model files named on the command line: a shipped model's name, a file, a training run's
//! folder or a manifest; the device models run on (`--device`); and `segue convert-model`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::output_files::{extension, not_an_input, output_kind};
use super::stop::hold_stop;
use segue::fsutil::shown;
use segue::models::ModelKind;
use segue::models::trained::TrainedModel;

/// `segue convert-model`: rewrites a model file (a shipped model's name or a path) in f16 or
/// f32, its manifest beside it.
pub(crate) fn convert_model(input: PathBuf, output: &Path, f16: bool) -> Result<()> {
    let dtype = if f16 {
        candle_core::DType::F16
    } else {
        candle_core::DType::F32
    };
    // A model name converts the shipped file of that model; a path is read as given
    // (one that is not UTF-8 too).
    let (kind, input) = match input.to_str() {
        Some(given) => resolve_model(Some(given))?,
        None => (model_kind_of(&input)?, input),
    };
    output_kind(output, &["safetensors"])?;
    let manifest = segue::models::weights::manifest_path(output);
    not_an_input(output, &[&input])?;
    not_an_input(&manifest, &[&segue::models::weights::manifest_path(&input)])?;
    // The weights and their manifest belong together: a stop waits for both.
    let _both = hold_stop();
    if kind == "lstm-vae" {
        segue::models::trained::convert(&input, output, dtype)?;
    } else {
        segue::models::saved::convert_any(&input, output, dtype)?;
    }
    out!("wrote {}", shown(output));
    Ok(())
}

/// The classifier named by `--model`, or the shipped one.
pub(crate) fn load_classifier(path: Option<&Path>) -> Result<segue::classify::Classifier> {
    let path = match path {
        Some(p) => model_path_given(p)?,
        None => segue::classify::default_path()
            .with_context(|| not_shipped("classifier.safetensors", "--model FILE"))?,
    };
    Ok(segue::classify::load(&path, &candle_core::Device::Cpu)?)
}

/// The LSTM-VAE named by `--model`, or the shipped one.
pub(crate) fn load_model(path: Option<&Path>) -> Result<TrainedModel> {
    let path = match path {
        Some(p) => model_path_given(p)?,
        None => segue::models::trained::default_model_path().with_context(|| {
            not_shipped(segue::models::trained::DEFAULT_MODEL_FILE, "--model FILE")
        })?,
    };
    Ok(TrainedModel::load(&path, &candle_core::Device::Cpu)?)
}

/// Where a shipped weights `file` was looked for, and what to do: the folder is named as it
/// was found ($SEGUE_WEIGHTS where set, which a typo there would otherwise hide).
fn not_shipped(file: &str, instead: &str) -> String {
    let dir = segue::models::trained::weights_dir();
    let from = match segue::models::trained::weights_from_env() {
        Some(_) => " (from SEGUE_WEIGHTS)",
        None => "",
    };
    format!(
        "{} is not there{from}; set SEGUE_WEIGHTS to the weights folder or pass {instead}",
        shown(&dir.join(file))
    )
}

/// Which model `segue generate --model X` means: a kind name (its shipped weights) or a file.
pub(crate) fn resolve_model(given: Option<&str>) -> Result<(String, PathBuf)> {
    let kind = match given {
        None => ModelKind::LstmVae,
        Some("classifier-ascent") => ModelKind::Classifier,
        Some(name) => match ModelKind::from_name(name) {
            Some(kind) => kind,
            None => {
                let path = model_file_in(Path::new(name))?;
                return Ok((model_kind_of(&path)?, path));
            }
        },
    };
    let path = kind.shipped().with_context(|| {
        format!(
            "no shipped {} weights: {}",
            kind.name(),
            not_shipped(kind.shipped_file_name(), "--model FILE")
        )
    })?;
    Ok((kind.name().to_string(), path))
}

/// The model file `given` means: itself; the model of a training run's folder; the weights
/// beside a model's `.json` manifest.
fn model_file_in(given: &Path) -> Result<PathBuf> {
    if given.is_dir() {
        // A training run's folder: the model it trained, the newest should another model
        // have been trained there before (as the studio's runs list takes it).
        if segue::train_loop::has_run_files(given)
            && let Some((_, model)) = segue::train_loop::run_model(given)
        {
            return Ok(model);
        }
        let found: Vec<PathBuf> = (segue::train_loop::RUN_KINDS.iter())
            .map(|kind| given.join(format!("{kind}.safetensors")))
            .filter(|p| p.is_file())
            .collect();
        if let [one] = found.as_slice() {
            return Ok(one.clone());
        }
        // Not a training run's folder: any model file with its manifest beside it (the
        // weights folder's `lstm-vae-studio.safetensors`, say).
        let mut models: Vec<PathBuf> = std::fs::read_dir(given)
            .with_context(|| format!("{}: reading the folder failed", shown(given)))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|p| extension(p) == "safetensors" && p.with_extension("json").is_file())
            // A run's optimiser state is no model.
            .filter(|p| p.file_stem().is_none_or(|stem| stem != "train-state"))
            .collect();
        models.sort();
        return match models.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!(
                "{}: a folder without a model in it (pass the model's .safetensors file)",
                shown(given)
            ),
            _ => bail!(
                "{}: a folder of several models; pass one of them ({})",
                shown(given),
                (models.iter().map(|p| shown(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let weights = given.with_extension("safetensors");
    if extension(given) == "json" {
        if weights.is_file() {
            return Ok(weights);
        }
        if given.is_file() {
            bail!(
                "{}: a manifest without its weights: {} is not there",
                shown(given),
                shown(&weights)
            );
        }
    }
    if !given.is_file() {
        bail!(
            "{}: neither a model name (lstm-vae, transformer-vae, classifier-ascent, dcgan), a \
             model file nor a training run's folder",
            shown(given)
        );
    }
    Ok(given.to_path_buf())
}

/// The model file a `--model` of `classify` or `eval` means: a training run's folder or a
/// manifest as `generate` takes them ([`model_file_in`]), else the path itself (whose loader
/// names what is wrong with it).
fn model_path_given(given: &Path) -> Result<PathBuf> {
    if given.is_dir() || extension(given) == "json" {
        model_file_in(given)
    } else {
        Ok(given.to_path_buf())
    }
}

/// The kind of model a model file holds, as its manifest names it.
fn model_kind_of(path: &Path) -> Result<String> {
    let manifest_path = segue::models::weights::manifest_path(path);
    let manifest: serde_json::Value = segue::models::weights::read_manifest(&manifest_path)?;
    match manifest["model"].as_str() {
        Some(kind) => Ok(kind.to_string()),
        None => bail!(
            "{}: not a Segue model manifest (it names no `model`)",
            shown(&manifest_path)
        ),
    }
}

/// The device named by `--device` (cpu, cuda), with a hint when CUDA cannot be had.
pub(crate) fn compute_device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => segue::models::device(true).context(
            "cannot use CUDA (is this a build with `--features cuda`, and is a GPU there?)",
        ),
        other => bail!("--device {other}: unknown device (cpu, cuda)"),
    }
}
