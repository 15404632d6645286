//! Model files: named tensors in safetensors, beside a JSON manifest (`model.safetensors` +
//! `model.json`). Writing is atomic; loading checks every tensor against what the model
//! expects, so a missing, truncated, wrong-shape or wrong-dtype file is refused with a message
//! that names the file and the tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result, candle_message};
use crate::fsutil;

/// The manifest path that goes with a weights path (`x.safetensors` -> `x.json`).
pub fn manifest_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// The dtype a manifest's `dtype` names for storage: `f16` or `bf16`, else f32.
pub fn storage_dtype(name: &str) -> DType {
    match name {
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => DType::F32,
    }
}

/// The name a manifest gives a storage dtype ([`storage_dtype`] the other way): `f16`, `bf16`,
/// else `f32`.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// Writes a model file and its manifest beside it: both checked writable before either is
/// written (no weights without a manifest), the weights recording `step` and `config` as
/// [`save_model`] does, each file written atomically.
pub fn save_with_manifest<C: serde::Serialize, M: serde::Serialize>(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: DType,
    step: usize,
    config: &C,
    manifest: &M,
) -> Result<()> {
    let manifest_path = manifest_path(path);
    fsutil::check_target(&manifest_path)?;
    save_model(path, tensors, dtype, step, config)?;
    write_manifest(&manifest_path, manifest)
}

fn format_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Writes `tensors` to `path` atomically, converted to `dtype` (F16 halves the size of shipped
/// weights; F32 keeps checkpoints exact).
pub fn save(path: &Path, tensors: &[(String, Tensor)], dtype: DType) -> Result<()> {
    save_at_step(path, tensors, dtype, None)
}

/// The safetensors metadata key that records the training step a file was written at.
const STEP_KEY: &str = "segue.step";

/// The safetensors metadata key that records the model's sizes and settings (its `Config` as
/// JSON), so that a manifest describing other settings is caught on loading, even those that
/// change no tensor's shape (a classifier's heads, the LSTM-VAE's metre map).
const CONFIG_KEY: &str = "segue.config";

/// [`save`], recording `step` (the training step of a checkpoint) in the file's metadata, so
/// that the files of one checkpoint can be checked to belong together ([`check_checkpoint`]).
pub fn save_at_step(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: DType,
    step: Option<usize>,
) -> Result<()> {
    let metadata = step.map(|s| HashMap::from([(STEP_KEY.to_string(), s.to_string())]));
    write(path, tensors, dtype, metadata)
}

/// Writes a model's weights, recording in the file's metadata the training `step` its
/// manifest describes and the model's `config` (its `Config` serialised), which
/// [`load_model`] checks against the manifest.
pub fn save_model<C: serde::Serialize>(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: DType,
    step: usize,
    config: &C,
) -> Result<()> {
    let config = serde_json::to_string(config)
        .map_err(|e| format_error(path, format!("model config: {e}")))?;
    let metadata = HashMap::from([
        (STEP_KEY.to_string(), step.to_string()),
        (CONFIG_KEY.to_string(), config),
    ]);
    write(path, tensors, dtype, Some(metadata))
}

fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: DType,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let converted = tensors
        .iter()
        .map(|(name, t)| {
            let t = t
                .to_device(&Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .and_then(|t| t.contiguous())
                .map_err(|e| format_error(path, format!("tensor {name}: {}", candle_message(e))))?;
            Ok((name.clone(), t))
        })
        .collect::<Result<Vec<_>>>()?;
    // What the loader would refuse is never written: a diverged run's checkpoint would
    // replace the last good one with one that cannot be used.
    let finite = |t: &Tensor| all_finite(t).map_err(|e| format_error(path, candle_message(e)));
    for ((name, t), (_, source)) in converted.iter().zip(tensors) {
        if t.dtype().is_float() && !finite(t)? {
            // Finite as they were, they are too large for the type they were to be stored as.
            let why = if source.dtype().is_float() && finite(source)? {
                format!("values too large for {dtype:?}: store it in a wider type (without --f16)")
            } else {
                "a training run has diverged: a lower --lr may help".to_string()
            };
            return Err(format_error(
                path,
                format!(
                    "tensor `{name}` holds values that are not finite numbers (NaN or infinity, \
                     or too large for {dtype:?}): nothing was written ({why})"
                ),
            ));
        }
    }
    let bytes = safetensors::serialize(converted.iter().map(|(n, t)| (n.as_str(), t)), metadata)
        .map_err(|e| format_error(path, format!("serialising: {e}")))?;
    fsutil::write_atomic(path, &bytes)
}

/// Whether every value of the float tensor `t` is a finite number.
fn all_finite(t: &Tensor) -> candle_core::Result<bool> {
    Ok(t.to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|x| x.is_finite()))
}

/// The training step recorded in a weights file by [`save_at_step`], if any.
fn saved_step(path: &Path) -> Result<Option<usize>> {
    let bytes = read_weights(path)?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| incomplete(path, e))?;
    Ok(meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STEP_KEY))
        .and_then(|s| s.parse().ok()))
}

/// Checks that the files of a checkpoint in `out` were written at one step: the model's
/// weights (`model`) and manifest, and the optimiser state (`state`), against `step` from the
/// state's record. They are written one after another; a crash between two writes leaves a
/// mix, which resuming must not silently continue from.
pub fn check_checkpoint(out: &Path, model: &Path, state: &Path, step: usize) -> Result<()> {
    let manifest: serde_json::Value = read_manifest(&manifest_path(model))?;
    let manifest_step = manifest["steps"].as_u64().map(|s| s as usize);
    // (what, the step it records, whether it may record none: weights files written by
    // older versions of Segue do not, and only their manifest can be checked).
    let found = [
        ("model weights", saved_step(model)?, true),
        ("model manifest", manifest_step, false),
        ("optimiser state", saved_step(state)?, true),
    ];
    let mismatch = found.iter().any(|(_, s, may_lack)| match s {
        Some(s) => *s != step,
        None => !may_lack,
    });
    if mismatch {
        let said: Vec<String> = found
            .iter()
            .map(|(what, s, _)| match s {
                Some(s) => format!("{what} at step {s}"),
                None => format!("{what} without a step"),
            })
            .collect();
        return Err(format_error(
            out,
            format!(
                "the checkpoint's files do not belong together ({}, its record at step {step}); \
                 was it interrupted while being written? Resuming would mix them: train into \
                 another folder, or put back a copy of this one",
                said.join(", ")
            ),
        ));
    }
    Ok(())
}

/// What a model expects of one tensor.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Tensor name.
    pub name: String,
    /// Its shape.
    pub dims: Vec<usize>,
}

/// Reads `path` and checks it holds exactly the `expected` tensors (names and shapes) in a
/// float dtype; returns them as f32 on `device`.
pub fn load(
    path: &Path,
    expected: &[Expected],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let bytes = read_weights(path)?;
    take(path, &parse(path, &bytes)?, expected, device)
}

/// Loads the weights of a model described by a manifest (at `manifest_path`): first refuses
/// sizes that need more than the file's parameters (at least `min_parameters`, from the sizes
/// alone), and only then lists the `expected` tensors, which builds a model of those sizes.
/// Absurd sizes in a manifest thus give a message, not a huge allocation. Every tensor must be
/// stored as the manifest's `dtype` says ("f32", "f16" or "bf16"), and weights that record a
/// training step must record the manifest's `steps`, weights that record their config
/// ([`save_model`]) the manifest's `config` (as read, so that a setting left out of either is
/// compared at its default).
#[allow(clippy::too_many_arguments)]
pub fn load_model<C: serde::de::DeserializeOwned + serde::Serialize + PartialEq>(
    path: &Path,
    manifest_path: &Path,
    dtype: &str,
    steps: usize,
    config: &C,
    min_parameters: u128,
    expected: impl FnOnce() -> Result<Vec<Expected>>,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let stored_as = match dtype {
        "f32" => safetensors::Dtype::F32,
        "f16" => safetensors::Dtype::F16,
        "bf16" => safetensors::Dtype::BF16,
        other => {
            return Err(format_error(
                manifest_path,
                format!("dtype `{other}` is not one of f32, f16, bf16"),
            ));
        }
    };
    let bytes = read_weights(path)?;
    let file = parse(path, &bytes)?;
    // Weights written at a training step must be the manifest's (a checkpoint's files from
    // two steps would pair one step's weights with another's statistics).
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| incomplete(path, e))?;
    if let Some(at) = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STEP_KEY))
        .and_then(|s| s.parse::<usize>().ok())
        && at != steps
    {
        return Err(format_error(
            path,
            format!(
                "these weights were written at step {at}, but {} describes step {steps}: the \
                 two files come from different checkpoints",
                crate::fsutil::shown(manifest_path)
            ),
        ));
    }
    if let Some(recorded) = meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
        check_recorded_config(path, manifest_path, recorded, config)?;
    }
    if let Some((name, view)) = file.iter().find(|(_, v)| v.dtype() != stored_as) {
        return Err(format_error(
            path,
            format!(
                "tensor `{name}` is stored as {:?}, but {} says {dtype}: are the weights and the \
                 manifest from different runs?",
                view.dtype(),
                crate::fsutil::shown(manifest_path)
            ),
        ));
    }
    let stored: u128 = file
        .iter()
        .map(|(_, view)| view.shape().iter().map(|&d| d as u128).product::<u128>())
        .sum();
    if min_parameters > stored {
        return Err(format_error(
            manifest_path,
            format!(
                "its sizes describe a model of at least {min_parameters} parameters, but {} \
                 holds {stored}",
                crate::fsutil::shown(path)
            ),
        ));
    }
    // Sizes the model builder refuses are a problem of the manifest.
    let expected = expected().map_err(|e| match e {
        Error::InvalidArgument(problem) => format_error(manifest_path, problem),
        other => other,
    })?;
    take(path, &file, &expected, device)
}

/// The largest header a safetensors file may have (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads a safetensors file whole once its header has said how long it is: a file whose length
/// is not what its header describes (bytes after the tensors, a 3 GB file in the weights'
/// place) is refused from its first bytes rather than read into memory first.
fn read_weights(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    fsutil::check_is_file(path)?;
    let io = |e| Error::io(path, "reading", e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let refuse = |why: String| {
        Err(format_error(
            path,
            format!("not a complete safetensors file ({why}); is it truncated or of another kind?"),
        ))
    };
    let mut size = [0u8; 8];
    if file.read_exact(&mut size).is_err() {
        return refuse(format!("{len} bytes: too short for a header"));
    }
    let n = u64::from_le_bytes(size);
    if n > MAX_HEADER_BYTES || n.saturating_add(8) > len {
        return refuse(format!(
            "its first bytes give a header of {n} bytes, in a file of {len}"
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let Some(end) = data_end(&header) else {
        return refuse("its header does not list tensors as safetensors does".into());
    };
    let described = end.saturating_add(8 + n);
    if described != len {
        return refuse(format!(
            "its header describes {described} bytes, the file holds {len}"
        ));
    }
    // The rest from where the header ends (the file is not opened or checked again).
    let mut bytes = Vec::with_capacity(len as usize);
    bytes.extend_from_slice(&size);
    bytes.extend_from_slice(&header);
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Compares the config a weights file recorded when it was written with the manifest's, both
/// read as the model's `Config` (a setting either leaves out takes its default).
fn check_recorded_config<C: serde::de::DeserializeOwned + serde::Serialize + PartialEq>(
    path: &Path,
    manifest_path: &Path,
    recorded: &str,
    config: &C,
) -> Result<()> {
    let recorded: C = serde_json::from_str(recorded).map_err(|e| {
        format_error(
            path,
            format!("the model settings recorded in its header do not read ({e})"),
        )
    })?;
    if recorded == *config {
        return Ok(());
    }
    let mut differ = Vec::new();
    if let (Ok(serde_json::Value::Object(was)), Ok(serde_json::Value::Object(says))) = (
        serde_json::to_value(&recorded),
        serde_json::to_value(config),
    ) {
        differences("", &was, &says, &mut differ);
    }
    if differ.is_empty() {
        differ.push("other settings".into());
    }
    Err(format_error(
        manifest_path,
        format!(
            "it does not describe {}: the weights were trained with {}; are the weights and the \
             manifest from different runs?",
            crate::fsutil::shown(path),
            differ.join(", ")
        ),
    ))
}

/// Lists, as "name recorded, not said", each setting whose values differ in `recorded` and
/// `said` (one a setting leaves out holds its default), those of a group (the classifier's
/// `stack`) by their dotted names.
fn differences(
    prefix: &str,
    recorded: &serde_json::Map<String, serde_json::Value>,
    said: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<String>,
) {
    let names: std::collections::BTreeSet<&String> = recorded.keys().chain(said.keys()).collect();
    for name in names {
        let shown =
            |v: Option<&serde_json::Value>| v.map_or("at its default".into(), |v| v.to_string());
        match (recorded.get(name), said.get(name)) {
            (Some(serde_json::Value::Object(was)), Some(serde_json::Value::Object(says))) => {
                differences(&format!("{prefix}{name}."), was, says, out)
            }
            (was, says) if was != says => out.push(format!(
                "{prefix}{name} {}, not {}",
                shown(was),
                shown(says)
            )),
            _ => {}
        }
    }
}

/// Where the tensors a safetensors header lists end, counted from the data's start, if the
/// header reads as one.
fn data_end(header: &[u8]) -> Option<u64> {
    let header: serde_json::Value = serde_json::from_slice(header).ok()?;
    (header.as_object()?.iter())
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(_, tensor)| tensor.get("data_offsets")?.get(1)?.as_u64())
        .try_fold(0u64, |end, e| Some(end.max(e?)))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| incomplete(path, e))
}

fn incomplete(path: &Path, e: safetensors::SafeTensorError) -> Error {
    format_error(
        path,
        format!("not a complete safetensors file ({e}); is it truncated or of another kind?"),
    )
}

/// The `expected` tensors of a parsed `file` (read from `path`), as f32 on `device`.
fn take(
    path: &Path,
    file: &safetensors::SafeTensors,
    expected: &[Expected],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(expected.len());
    for want in expected {
        let view = file.tensor(&want.name).map_err(|_| {
            format_error(
                path,
                format!(
                    "tensor `{}` is missing: the file is not weights for this model",
                    want.name
                ),
            )
        })?;
        if view.shape() != want.dims.as_slice() {
            return Err(format_error(
                path,
                format!(
                    "tensor `{}` has shape {:?}, this model needs {:?} (weights of another size?)",
                    want.name,
                    view.shape(),
                    want.dims
                ),
            ));
        }
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(format_error(
                    path,
                    format!(
                        "tensor `{}` is {other:?}; weights must be f32, f16 or bf16",
                        want.name
                    ),
                ));
            }
        };
        let on_cpu = Tensor::from_raw_buffer(view.data(), dtype, &want.dims, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| {
                format_error(
                    path,
                    format!("tensor `{}`: {}", want.name, candle_message(e)),
                )
            })?;
        // A NaN or an infinity would make silent or stuck music, not an error, later.
        let finite = all_finite(&on_cpu).map_err(|e| {
            format_error(
                path,
                format!("tensor `{}`: {}", want.name, candle_message(e)),
            )
        })?;
        if !finite {
            return Err(format_error(
                path,
                format!(
                    "tensor `{}` holds values that are not finite numbers (NaN or infinity): \
                     the weights are damaged, or come from a run that diverged",
                    want.name
                ),
            ));
        }
        let t = on_cpu.to_device(device).map_err(|e| {
            format_error(
                path,
                format!("tensor `{}`: {}", want.name, candle_message(e)),
            )
        })?;
        out.insert(want.name.clone(), t);
    }
    let extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !out.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    if !extra.is_empty() {
        return Err(format_error(
            path,
            format!("unexpected tensors {extra:?}: the file is not weights for this model"),
        ));
    }
    Ok(out)
}

/// The largest manifest read (the shipped ones hold 2-110 kB: their composers' latent
/// statistics).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Reads and parses a JSON manifest (at most [`MAX_MANIFEST_BYTES`]).
pub fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.exists() {
        let weights = path.with_extension("safetensors");
        let problem = if weights.exists() {
            format!(
                "missing: the weights {} need their JSON manifest beside them, of the same name",
                crate::fsutil::shown(&weights)
            )
        } else {
            format!(
                "not found, nor its weights {}",
                crate::fsutil::shown(&weights)
            )
        };
        return Err(format_error(path, problem));
    }
    let bytes = fsutil::read_at_most(path, MAX_MANIFEST_BYTES)?.map_err(|size| {
        format_error(
            path,
            format!("{size} bytes, more than a manifest holds ({MAX_MANIFEST_BYTES})"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format_error(path, manifest_problem("bad manifest", &e)))
}

/// What a manifest that does not read as `what` has wrong; a field this version does not know
/// is most likely a newer version's, and is said so.
pub fn manifest_problem(what: &str, e: &serde_json::Error) -> String {
    let newer = if e.to_string().starts_with("unknown field") {
        " (a newer version of Segue may have written it)"
    } else {
        ""
    };
    format!("{what}: {e}{newer}")
}

/// Writes a JSON manifest atomically.
pub fn write_manifest<T: serde::Serialize>(path: &Path, manifest: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(manifest)
        .map_err(|e| format_error(path, format!("serialising manifest: {e}")))?;
    fsutil::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights that are no longer numbers (a diverged run's) are not written over a file that
    /// is there; nor are f32 weights too large for the f16 they are to be stored in.
    #[test]
    fn weights_that_are_not_finite_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let good = Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        save(&path, &[("w".into(), good)], DType::F32).unwrap();
        let before = std::fs::read(&path).unwrap();
        for (values, dtype) in [
            ([1.0f32, f32::NAN], DType::F32),
            ([f32::INFINITY, 0.0], DType::F32),
            ([1e6, 0.0], DType::F16),
        ] {
            let bad = Tensor::new(&values, &Device::Cpu).unwrap();
            let e = save(&path, &[("w".into(), bad)], dtype)
                .unwrap_err()
                .to_string();
            assert!(e.contains("not finite numbers") && e.contains("`w`"), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), before);
        }
    }
}
