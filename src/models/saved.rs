//! Model files of the paper's other models (composer classifier, Transformer VAE, DCGAN):
//! safetensors + a JSON manifest with the same rules as the LSTM-VAE's (config, composers,
//! corpus hash, steps, metrics, licence, credits), checked tensor by tensor on loading.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::models::trained::{self, CorpusInfo, LatentStats, MANIFEST_FORMAT};
use crate::models::weights::{self, Expected};

/// Everything a model file says about itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Model kind: "classifier", "transformer-vae" or "dcgan".
    pub model: String,
    /// Sizes, as the model's own `Config`.
    pub config: serde_json::Value,
    /// Composer names, in label order.
    pub composers: Vec<String>,
    /// Per composer latent statistics (latent-variable models only).
    #[serde(default)]
    pub latents: Vec<LatentStats>,
    /// Training corpus.
    pub corpus: CorpusInfo,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Wall-clock training seconds.
    pub seconds: f64,
    /// The training options, as given.
    pub training: serde_json::Value,
    /// Latest figures.
    pub metrics: serde_json::Value,
    /// Licence of the weights.
    pub licence: String,
    /// Credits of the training data.
    pub credits: Vec<String>,
    /// Storage dtype of the tensors.
    pub dtype: String,
    /// Segue version and commit that wrote the file.
    pub written_by: String,
}

impl ModelManifest {
    /// A manifest for weights trained on the corpus `corpus` describes, with the licence and
    /// credits `rights` ([`trained::Rights::of_corpus`]).
    pub fn new(
        model: &str,
        config: serde_json::Value,
        corpus: CorpusInfo,
        rights: trained::Rights,
    ) -> Self {
        ModelManifest {
            format: MANIFEST_FORMAT,
            model: model.into(),
            config,
            composers: Vec::new(),
            latents: Vec::new(),
            corpus,
            steps: 0,
            seconds: 0.0,
            training: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            licence: rights.licence,
            credits: rights.credits,
            dtype: "f32".into(),
            written_by: trained::written_by(),
        }
    }
}

/// A loaded model with its sizes and manifest.
#[derive(Debug, Clone)]
pub struct Saved<M, C> {
    /// The network.
    pub model: M,
    /// Its sizes.
    pub config: C,
    /// What the file says about it.
    pub manifest: ModelManifest,
    /// Where it came from.
    pub path: PathBuf,
}

impl<M, C> Saved<M, C> {
    /// Index of a composer by name (case-insensitive).
    pub fn composer_index(&self, name: &str) -> Option<usize> {
        crate::dataset::composer_position(&self.manifest.composers, name)
    }
}

/// A lower bound on a model's parameter count, from its sizes alone (nothing allocated), so
/// that a manifest whose sizes are larger than its weights file can hold is refused before the
/// model is built (building allocates every parameter).
pub trait MinParameters {
    /// At most the number of parameters a model of these sizes has.
    fn min_parameters(&self) -> u128;
}

/// The product of `factors`, saturating: parameter counts of untrusted sizes.
pub fn product(factors: &[usize]) -> u128 {
    factors
        .iter()
        .fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// Checks the snippet length of a manifest's training options, if it has one: 1 to `max`
/// steps (the model's longest input). Generation and judging cut rolls into snippets of it.
pub fn check_snippet_steps(m: &ModelManifest, max: usize) -> std::result::Result<(), String> {
    match m.training.pointer("/train/snippet_steps") {
        None => Ok(()),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= max as u64 => Ok(()),
            _ => Err(format!(
                "training snippets of {v} steps; a model of these sizes takes 1 to {max}"
            )),
        },
    }
}

/// Names and shapes of every variable a model builder creates.
pub fn expected_of<M>(
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> Result<Vec<Expected>> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build(vb).map_err(|e| {
        Error::InvalidArgument(format!("model config: {}", crate::error::candle_message(e)))
    })?;
    Ok(trained::named_tensors(&varmap)
        .into_iter()
        .map(|(name, t)| Expected {
            name,
            dims: t.dims().to_vec(),
        })
        .collect())
}

/// Writes weights (`.safetensors`) and manifest (`.json`) atomically.
pub fn save(path: &Path, tensors: &[(String, Tensor)], manifest: &ModelManifest) -> Result<()> {
    weights::save_with_manifest(
        path,
        tensors,
        weights::storage_dtype(&manifest.dtype),
        manifest.steps,
        &manifest.config,
        manifest,
    )
}

/// Loads a model file of kind `kind`, checking the manifest, the config (with `check`) and
/// every tensor, and builds the model with `build`.
pub fn load<M, C: DeserializeOwned + serde::Serialize + PartialEq + Clone + MinParameters>(
    path: &Path,
    kind: &str,
    device: &Device,
    check: impl Fn(&C, &ModelManifest) -> std::result::Result<(), String>,
    build: impl Fn(&C, VarBuilder) -> candle_core::Result<M>,
) -> Result<Saved<M, C>> {
    let manifest_path = weights::manifest_path(path);
    let manifest: ModelManifest = weights::read_manifest(&manifest_path)?;
    let bad = |problem: String| Error::format(&manifest_path, problem);
    if manifest.format != MANIFEST_FORMAT || manifest.model != kind {
        return Err(bad(format!(
            "this is a `{}` manifest of format {}; expected a {kind} manifest of format {MANIFEST_FORMAT}",
            manifest.model, manifest.format
        )));
    }
    crate::dataset::check_composer_names(&manifest.composers).map_err(bad)?;
    let config: C = serde_json::from_value(manifest.config.clone())
        .map_err(|e| bad(weights::manifest_problem("config", &e)))?;
    check(&config, &manifest).map_err(bad)?;
    let tensors = weights::load_model(
        path,
        &manifest_path,
        &manifest.dtype,
        manifest.steps,
        &config,
        config.min_parameters(),
        || expected_of(|vb| build(&config, vb)),
        device,
    )?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let model =
        build(&config, vb).map_err(|e| Error::format(path, crate::error::candle_message(e)))?;
    Ok(Saved {
        model,
        config,
        manifest,
        path: path.to_path_buf(),
    })
}

/// Copies a classifier, Transformer VAE or DCGAN file to `output` with its tensors stored as
/// `dtype` (F16, BF16, else F32), after loading it as its kind (manifest, sizes and every
/// tensor checked). The LSTM-VAE's files convert with [`crate::models::trained::convert`].
pub fn convert_any(input: &Path, output: &Path, dtype: DType) -> Result<()> {
    let manifest_path = weights::manifest_path(input);
    let manifest: ModelManifest = weights::read_manifest(&manifest_path)?;
    let cpu = Device::Cpu;
    match manifest.model.as_str() {
        "classifier" => drop(crate::classify::load(input, &cpu)?),
        "transformer-vae" => drop(crate::tvae::load(input, &cpu)?),
        "dcgan" => drop(crate::gan::load(input, &cpu)?),
        other => {
            return Err(Error::format(
                &manifest_path,
                format!("a model of kind `{other}`, which Segue does not know"),
            ));
        }
    }
    let tensors = candle_core::safetensors::load(input, &Device::Cpu)
        .map_err(|e| Error::format(input, crate::error::candle_message(e)))?;
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifest = manifest;
    manifest.dtype = weights::dtype_name(dtype).into();
    save(output, &named, &manifest)
}
