//! A trained LSTM-VAE as shipped and loaded: the model plus its manifest (config, composers,
//! per-composer latent statistics, corpus hash, training summary, metrics, licence, credits).
//!
//! Also what every model's manifest shares: the manifest format, the corpus a model was
//! trained on ([`CorpusInfo`]) and the licence and credits it carries ([`Rights`]), and the
//! weights folder where the shipped models are found ([`weights_dir`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{Error, Result};
use crate::models::ModelKind;
use crate::models::lstm_vae::{Config, LstmVae};
use crate::models::weights::{self, Expected};

/// Manifest format version.
pub const MANIFEST_FORMAT: u32 = 1;

/// Credits and licence for weights trained on the shared corpus (its README asks for them).
pub const CORPUS_CREDITS: [&str; 2] = [
    "Bernd Krueger, piano-midi.de (Creative Commons BY-SA Germany)",
    "music21 corpus (Cuthbert et al.)",
];

/// [`CORPUS_CREDITS`] as a manifest stores them.
pub fn corpus_credits() -> Vec<String> {
    CORPUS_CREDITS.iter().map(|s| s.to_string()).collect()
}

/// The program version and commit that writes a manifest.
pub fn written_by() -> String {
    format!(
        "segue {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("SEGUE_COMMIT")
    )
}

/// Licence of weights trained on the shared corpus: they are derived from piano-midi.de files.
pub const CORPUS_LICENCE: &str = "CC BY-SA 3.0 DE (derived from piano-midi.de files); \
     Bach chorales from the music21 corpus";

/// The content hash ([`crate::dataset::Corpus::content_hash`]) of the shared corpus, which the
/// shipped weights were trained on.
pub const SHARED_CORPUS_HASH: &str =
    "d8c30254a2ba2cd47c3e87c3021b4d950eb8db8f77c7452dde7116e2b227f4f8";

/// The BLAKE3 hash of each file of the shared corpus (`assets/shared-corpus.b3`, one a line):
/// a piece among them is piano-midi.de's or music21's, whose licence and credits
/// [`CORPUS_LICENCE`] and [`CORPUS_CREDITS`] are.
const SHARED_CORPUS_FILES: &str = include_str!("../../assets/shared-corpus.b3");

/// Whether a file of content hash `hash` (BLAKE3, hex) is one of the shared corpus's.
pub fn is_shared_corpus_file(hash: &str) -> bool {
    static FILES: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    FILES
        .get_or_init(|| SHARED_CORPUS_FILES.lines().map(str::trim).collect())
        .contains(hash)
}

/// Joins the clauses of a licence that says what weights were fine-tuned from.
const FINE_TUNED_FROM: &str = "; fine-tuned from weights under: ";

/// The licence and credits a model file carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rights {
    /// The licence of the weights.
    pub licence: String,
    /// Whom the weights must credit.
    pub credits: Vec<String>,
}

impl Rights {
    /// Those of weights trained on `corpus`: the shared corpus's licence and credits (its
    /// README asks for them) where any of its pieces is one of the shared corpus's files; for
    /// the other files, their own licences, which Segue cannot know (a folder of one's own
    /// music is not piano-midi.de's).
    pub fn of_corpus(corpus: &crate::dataset::Corpus) -> Self {
        let shared = (corpus.pieces.iter())
            .filter(|p| is_shared_corpus_file(&p.content_hash))
            .count();
        let name = corpus_name(&corpus.root);
        let others = format!(
            "the licences of the training files of `{name}` apply to what the model learnt from \
             them"
        );
        match shared {
            0 => Rights {
                licence: format!("not known to Segue: {others}"),
                credits: Vec::new(),
            },
            n if n == corpus.pieces.len() => Rights {
                licence: CORPUS_LICENCE.into(),
                credits: corpus_credits(),
            },
            n => Rights {
                licence: format!(
                    "{CORPUS_LICENCE}, for its files from the shared corpus ({n} of {}); for the \
                     others, {others}",
                    corpus.pieces.len()
                ),
                credits: corpus_credits(),
            },
        }
    }

    /// Those of a model fine-tuned from weights of rights `from`: its own corpus's, with the
    /// starting weights' licence and credits carried along (weights derived from CC BY-SA
    /// weights stay under it); a licence already said is not said again, so a fine-tune of a
    /// fine-tune on one folder says each once.
    pub fn fine_tuned_from(self, from: &Rights) -> Self {
        let mut clauses: Vec<&str> = Vec::new();
        for clause in self
            .licence
            .split(FINE_TUNED_FROM)
            .chain(from.licence.split(FINE_TUNED_FROM))
        {
            if !clauses.contains(&clause) {
                clauses.push(clause);
            }
        }
        let mut credits = from.credits.clone();
        for c in self.credits {
            if !credits.contains(&c) {
                credits.push(c);
            }
        }
        Rights {
            licence: clauses.join(FINE_TUNED_FROM),
            credits,
        }
    }
}

/// A corpus folder's name, as a manifest records it: the folder's own name, also where it was
/// given as `.` or with a trailing `..`.
pub fn corpus_name(root: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(root)
        .or_else(|| root.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_default()
}

/// Where the latent codes of one composer's training snippets lie.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatentStats {
    /// Mean of the posterior means, per dimension.
    pub mean: Vec<f32>,
    /// Standard deviation of the posterior means, per dimension.
    pub std: Vec<f32>,
    /// Snippets the statistics come from.
    pub snippets: usize,
}

impl LatentStats {
    /// Mean and standard deviation, per dimension, of a set of codes.
    pub fn of(codes: &[Vec<f32>]) -> Self {
        let dims = codes.first().map_or(0, |c| c.len());
        let n = codes.len().max(1) as f64;
        let mean: Vec<f64> = (0..dims)
            .map(|d| codes.iter().map(|m| m[d] as f64).sum::<f64>() / n)
            .collect();
        let std = (0..dims)
            .map(|d| {
                (codes
                    .iter()
                    .map(|m| (m[d] as f64 - mean[d]).powi(2))
                    .sum::<f64>()
                    / n)
                    .sqrt() as f32
            })
            .collect();
        LatentStats {
            mean: mean.iter().map(|v| *v as f32).collect(),
            std,
            snippets: codes.len(),
        }
    }

    /// A code drawn from these statistics: mean + std x standard normal noise, per dimension.
    pub fn draw(&self, rng: &mut impl rand::Rng) -> Vec<f32> {
        let noise = crate::models::standard_normal(rng, self.mean.len());
        self.mean
            .iter()
            .zip(&self.std)
            .zip(noise)
            .map(|((m, s), e)| m + s * e)
            .collect()
    }
}

/// The code of composer `composer` at style strength `strength`: its stored mean code moved
/// away from (above 1) or towards (below 1) the centre of all the composers' mean codes, so
/// what sets it apart from the others counts `strength` times. 1 is the stored mean itself, 0
/// the centre (no composer's style in particular). None if there is no such composer.
pub fn style_code(latents: &[LatentStats], composer: usize, strength: f32) -> Option<Vec<f32>> {
    let own = &latents.get(composer)?.mean;
    if strength == 1.0 {
        return Some(own.clone());
    }
    let n = latents.len() as f32;
    Some(
        (own.iter().enumerate())
            .map(|(d, m)| {
                let centre = latents.iter().map(|l| l.mean[d]).sum::<f32>() / n;
                centre + strength * (m - centre)
            })
            .collect(),
    )
}

/// The corpus a model was trained on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusInfo {
    /// Folder name.
    pub name: String,
    /// BLAKE3 over the corpus files' content hashes.
    pub content_hash: String,
    /// Pieces loaded.
    pub pieces: usize,
    /// Pieces held out for validation.
    pub valid_pieces: usize,
}

impl CorpusInfo {
    /// Describes `corpus` trained on `train_pieces` of its pieces (the rest held out).
    pub fn of(corpus: &crate::dataset::Corpus, train_pieces: usize) -> Self {
        CorpusInfo {
            name: corpus_name(&corpus.root),
            content_hash: corpus.content_hash(),
            pieces: corpus.pieces.len(),
            valid_pieces: corpus.pieces.len().saturating_sub(train_pieces),
        }
    }
}

/// Everything a model file says about itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Always "lstm-vae" here.
    pub model: String,
    /// Preset name, or "custom".
    pub preset: String,
    /// Sizes.
    pub config: Config,
    /// Composer names, in label order.
    pub composers: Vec<String>,
    /// Per composer, in the same order.
    pub latents: Vec<LatentStats>,
    /// Training corpus.
    pub corpus: CorpusInfo,
    /// Optimiser steps taken (by this run: see `init_steps`).
    pub steps: usize,
    /// Steps of the model this one was fine-tuned from, its own `init_steps` included (0 for a
    /// model trained from scratch; older manifests lack it): the model had `init_steps +
    /// steps` in all.
    #[serde(default)]
    pub init_steps: usize,
    /// Wall-clock training seconds (of this run).
    pub seconds: f64,
    /// The training options, as given.
    pub training: serde_json::Value,
    /// Latest figures (validation losses and the like).
    pub metrics: serde_json::Value,
    /// Licence of the weights.
    pub licence: String,
    /// Credits of the training data.
    pub credits: Vec<String>,
    /// Storage dtype of the tensors.
    pub dtype: String,
    /// Segue version and commit that wrote the file.
    pub written_by: String,
    /// The composer-aware prior the model was trained with; none = N(0, I).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<ComposerPrior>,
}

impl Manifest {
    /// The licence and credits the weights carry.
    pub fn rights(&self) -> Rights {
        Rights {
            licence: self.licence.clone(),
            credits: self.credits.clone(),
        }
    }
}

/// A composer-aware prior: composer `c`'s codes are drawn from N(`means[c]`, I).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComposerPrior {
    /// One centre per composer, in the manifest's composer order.
    pub means: Vec<Vec<f32>>,
}

impl Manifest {
    /// What chose the pieces the model held out: (share held out, seed) from its training
    /// options, where the manifest records them.
    pub fn held_out_split(&self) -> Option<(f64, u64)> {
        let fraction = self.training.get("valid_fraction")?.as_f64()?;
        Some((fraction, self.training.get("seed")?.as_u64()?))
    }

    /// Optimiser steps in all, those of the models it was fine-tuned from included.
    pub fn total_steps(&self) -> usize {
        self.init_steps.saturating_add(self.steps)
    }

    /// A draw from the model's prior for composer `composer`: N(0, I) for a standard prior,
    /// N(c_composer, I) for a composer-aware one.
    pub fn prior_draw(&self, composer: usize, rng: &mut impl rand::Rng) -> Vec<f32> {
        let noise = crate::models::standard_normal(rng, self.config.latent);
        match self.prior.as_ref().and_then(|p| p.means.get(composer)) {
            Some(centre) => centre.iter().zip(noise).map(|(c, e)| c + e).collect(),
            None => noise,
        }
    }

    /// A draw from the model's whole prior: N(0, I), or for a composer-aware prior a composer
    /// at random and then N(c_composer, I).
    pub fn prior_draw_any(&self, rng: &mut impl rand::Rng) -> Vec<f32> {
        match &self.prior {
            Some(p) if !p.means.is_empty() => {
                let c = rng.random_range(0..p.means.len());
                self.prior_draw(c, rng)
            }
            _ => crate::models::standard_normal(rng, self.config.latent),
        }
    }
}

/// A loaded model with its manifest.
pub struct TrainedModel {
    /// The network.
    pub model: LstmVae,
    /// What the file says about it.
    pub manifest: Manifest,
    /// Where it came from.
    pub path: PathBuf,
}

/// The largest size of a stored latent statistic a manifest may hold (the shipped codes lie
/// within 10 of the origin).
pub const MAX_CODE: f32 = 1e4;

/// File name of the shipped default model in the weights folder.
pub const DEFAULT_MODEL_FILE: &str = ModelKind::LstmVae.shipped_file_name();

/// The model's name in manifests and run folders.
pub const KIND: &str = ModelKind::LstmVae.name();

/// The folder of shipped weights: `$SEGUE_WEIGHTS`, else the first of [`weights_places`]
/// holding the default model, else the folder named when the program was built
/// (`SEGUE_WEIGHTS_DIR` at build time, for a package; else the source tree's `weights/`).
pub fn weights_dir() -> PathBuf {
    if let Some(dir) = weights_from_env() {
        return dir;
    }
    let exe = std::env::current_exe().ok();
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    find_weights(weights_places(exe.as_deref(), var)).unwrap_or_else(built_in_weights_dir)
}

/// The weights folder named when the program was built: `SEGUE_WEIGHTS_DIR` then (a package
/// built for `/usr/share/segue/weights`, say), else the source tree's `weights/`.
fn built_in_weights_dir() -> PathBuf {
    match option_env!("SEGUE_WEIGHTS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights"),
    }
}

/// `$SEGUE_WEIGHTS`, where it is set and not empty (empty is unset: it would name the
/// working folder).
pub fn weights_from_env() -> Option<PathBuf> {
    std::env::var_os("SEGUE_WEIGHTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where shipped weights may be, in the order they are looked for: the current folder's
/// `weights/`; a `weights/` beside the executable `exe` or up to two folders above it (an
/// unpacked release, `target/debug/`); then an installed `share/segue/weights`: the user's in
/// `$XDG_DATA_HOME` (else `~/.local/share`), beside the executable's folder (`/usr/bin/segue`:
/// `/usr/share/segue/weights`) and in each of `$XDG_DATA_DIRS` (else `/usr/local/share` and
/// `/usr/share`), each folder once. `var` reads the environment (a variable set but empty is unset); the XDG
/// folders count only where absolute, as their specification says.
pub fn weights_places(exe: Option<&Path>, var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut places = vec![PathBuf::from("weights")];
    let above_exe = exe.into_iter().flat_map(|exe| exe.ancestors().skip(1));
    places.extend(above_exe.clone().take(3).map(|dir| dir.join("weights")));
    let installed = |share: &Path| share.join("segue").join("weights");
    // The user's own copy first, as the XDG specification ranks its folders.
    let absolute = |dir: PathBuf| dir.is_absolute().then_some(dir);
    let data_home = var("XDG_DATA_HOME").map(PathBuf::from).and_then(absolute);
    let data_home = data_home.or_else(|| var("HOME").map(|h| Path::new(&h).join(".local/share")));
    places.extend(data_home.map(|dir| installed(&dir)));
    if let Some(prefix) = above_exe.clone().nth(1) {
        places.push(installed(&prefix.join("share")));
    }
    let data_dirs = var("XDG_DATA_DIRS").unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    let data_dirs = std::env::split_paths(&data_dirs).filter_map(absolute);
    for dir in data_dirs.map(|dir| installed(&dir)) {
        if !places.contains(&dir) {
            places.push(dir);
        }
    }
    places
}

/// The first of the `weights` folders that holds the default model.
fn find_weights(weights: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    (weights.into_iter()).find(|dir| dir.join(DEFAULT_MODEL_FILE).is_file())
}

/// Whether `path` is a shipped default model: this install's, or one in another `weights/`
/// folder (an earlier install's), as opposed to one trained or chosen by the user.
pub fn is_shipped_default(path: &Path) -> bool {
    let named = |p: &Path, name: &str| p.file_name().is_some_and(|n| n == name);
    let in_weights =
        named(path, DEFAULT_MODEL_FILE) && path.parent().is_some_and(|d| named(d, "weights"));
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    in_weights
        || default_model_path()
            .is_some_and(|d| canonical(&d).is_some() && canonical(&d) == canonical(path))
}

/// The shipped default model, if it is there.
pub fn default_model_path() -> Option<PathBuf> {
    shipped_file(DEFAULT_MODEL_FILE)
}

/// The shipped model file `name` in the weights folder ([`weights_dir`]), if it is there.
pub fn shipped_file(name: &str) -> Option<PathBuf> {
    let path = weights_dir().join(name);
    path.is_file().then_some(path)
}

/// Names and shapes of every tensor of a model of `cfg`.
pub fn expected_tensors(cfg: &Config) -> Result<Vec<Expected>> {
    crate::models::saved::expected_of(|vb| LstmVae::new(cfg, vb))
}

/// The named tensors of a model's variables, sorted by name.
pub fn named_tensors(varmap: &VarMap) -> Vec<(String, Tensor)> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut out: Vec<(String, Tensor)> = data
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes `weights` (`.safetensors`) and its manifest (`.json`) atomically.
pub fn save(path: &Path, varmap: &VarMap, manifest: &Manifest) -> Result<()> {
    weights::save_with_manifest(
        path,
        &named_tensors(varmap),
        weights::storage_dtype(&manifest.dtype),
        manifest.steps,
        &manifest.config,
        manifest,
    )
}

/// Copies a model file to `output` with its tensors stored as `dtype` (F16 halves the size of
/// shipped weights), checking it on the way.
pub fn convert(input: &Path, output: &Path, dtype: DType) -> Result<()> {
    let loaded = TrainedModel::load(input, &Device::Cpu)?;
    let tensors = weights::load(
        input,
        &expected_tensors(&loaded.manifest.config)?,
        &Device::Cpu,
    )?;
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifest = loaded.manifest;
    manifest.dtype = weights::dtype_name(dtype).into();
    // The step and config recorded as in every model file, so a manifest of another step or
    // other settings is refused.
    weights::save_with_manifest(
        output,
        &named,
        dtype,
        manifest.steps,
        &manifest.config,
        &manifest,
    )
}

impl TrainedModel {
    /// Loads `path` (`.safetensors`, with its `.json` manifest beside it) onto `device`,
    /// checking the manifest and every tensor.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (manifest, tensors) = Self::load_checked(path, device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let model = LstmVae::new(&manifest.config, vb).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            problem: crate::error::candle_message(e),
        })?;
        Ok(TrainedModel {
            model,
            manifest,
            path: path.to_path_buf(),
        })
    }

    /// The manifest and the tensors (f32, on `device`) of the model file `path`, checked as
    /// [`TrainedModel::load`] checks them, without building the network (a run that starts
    /// from them sets its own).
    pub fn load_checked(
        path: &Path,
        device: &Device,
    ) -> Result<(Manifest, std::collections::HashMap<String, Tensor>)> {
        let manifest_path = weights::manifest_path(path);
        let bad = |problem: String| Error::Format {
            path: manifest_path.clone(),
            problem,
        };
        // Another model's manifest is said as such, not as a field this one lacks.
        let value: serde_json::Value = weights::read_manifest(&manifest_path)?;
        if let Some(other) = value.get("model").and_then(|m| m.as_str())
            && other != KIND
        {
            return Err(bad(format!(
                "this is a `{other}` manifest; expected an lstm-vae manifest (`segue generate \
                 --model FILE` reads any model's file)"
            )));
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| bad(weights::manifest_problem("bad manifest", &e)))?;
        if manifest.format != MANIFEST_FORMAT || manifest.model != KIND {
            return Err(bad(format!(
                "this is a `{}` manifest of format {}; expected an lstm-vae manifest of format {MANIFEST_FORMAT}",
                manifest.model, manifest.format
            )));
        }
        let c = &manifest.config;
        if c.input != crate::roll::PITCHES
            || c.hidden == 0
            || c.layers == 0
            || c.latent == 0
            || c.metre > Config::MAX_METRE
        {
            return Err(bad(format!("impossible model sizes {c:?}")));
        }
        crate::dataset::check_composer_names(&manifest.composers).map_err(bad)?;
        // Evaluations take the run's held-out pieces from it: another share would hold out
        // pieces it trained on.
        if let Some(f) = manifest.training.get("valid_fraction")
            && !f.as_f64().is_some_and(|f| (0.0..1.0).contains(&f))
        {
            return Err(bad(format!(
                "training.valid_fraction {f} is not a share from 0 up to 1 (was the file edited?)"
            )));
        }
        if manifest.composers.is_empty() || manifest.latents.len() != manifest.composers.len() {
            return Err(bad(format!(
                "{} composers but {} latent statistics",
                manifest.composers.len(),
                manifest.latents.len()
            )));
        }
        if let Some(s) = manifest
            .latents
            .iter()
            .find(|s| s.mean.len() != c.latent || s.std.len() != c.latent)
        {
            return Err(bad(format!(
                "latent statistics of size {} for a latent of size {}",
                s.mean.len(),
                c.latent
            )));
        }
        // Codes live within a few units of the origin; one of 1e20 would overflow the
        // interpolation's arithmetic into silence rather than say anything.
        if manifest.latents.iter().any(|s| {
            s.mean
                .iter()
                .chain(&s.std)
                .any(|v| v.is_nan() || v.abs() > MAX_CODE)
        }) {
            return Err(bad(format!(
                "latent statistics that are not finite numbers of at most {MAX_CODE} in size"
            )));
        }
        if let Some(p) = &manifest.prior
            && (p.means.len() != manifest.composers.len()
                || p.means.iter().any(|m| {
                    m.len() != c.latent || m.iter().any(|v| v.is_nan() || v.abs() > MAX_CODE)
                }))
        {
            return Err(bad(format!(
                "a composer prior of {} centres for {} composers and a latent of size {} \
                 (each centre must have that many finite values)",
                p.means.len(),
                manifest.composers.len(),
                c.latent
            )));
        }
        // Evaluation and the composer codes cut rolls into snippets of the training length.
        if let Some(v) = manifest.training.get("snippet_steps") {
            use crate::train_loop::MAX_SNIPPET_STEPS;
            if !v
                .as_u64()
                .is_some_and(|n| (1..=MAX_SNIPPET_STEPS as u64).contains(&n))
            {
                return Err(bad(format!(
                    "training snippets of {v} steps; a model is trained on 1 to {MAX_SNIPPET_STEPS}"
                )));
            }
        }
        // The recurrent weights (4 gates x hidden x hidden per layer, encoder and decoder) and
        // the maps into and out of z (mean, log-variance, the decoder's initial state).
        use crate::models::saved::product;
        let least = product(&[8, c.hidden, c.hidden, c.layers])
            .saturating_add(product(&[4, c.layers, c.hidden, c.latent]));
        let tensors = weights::load_model(
            path,
            &manifest_path,
            &manifest.dtype,
            manifest.steps,
            c,
            least,
            || expected_tensors(c),
            device,
        )?;
        Ok((manifest, tensors))
    }

    /// The snippet length the model was trained on (from the manifest; 128 if not stated).
    pub fn training_snippet_steps(&self) -> usize {
        self.manifest
            .training
            .get("snippet_steps")
            .and_then(|v| v.as_u64())
            .map_or(128, |v| v as usize)
    }

    /// Index of a composer by name (case-insensitive).
    pub fn composer_index(&self, name: &str) -> Option<usize> {
        crate::dataset::composer_position(&self.manifest.composers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_corpus_given_as_a_dot_is_named_by_its_folder() {
        let here = std::env::current_dir().unwrap();
        let name = here.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(corpus_name(Path::new(".")), name);
        assert_eq!(corpus_name(&here.join("src").join("..")), name);
        assert_eq!(corpus_name(&here), name);
    }

    #[test]
    fn a_fine_tune_of_a_fine_tune_says_each_licence_once() {
        let rights = |licence: &str, credits: &[&str]| Rights {
            licence: licence.into(),
            credits: credits.iter().map(|c| c.to_string()).collect(),
        };
        let shipped = rights("CC BY-SA", &["piano-midi.de"]);
        let own = rights("own", &[]);
        let once = own.clone().fine_tuned_from(&shipped);
        assert_eq!(
            once,
            rights(
                "own; fine-tuned from weights under: CC BY-SA",
                &["piano-midi.de"]
            )
        );
        assert_eq!(own.clone().fine_tuned_from(&once), once);
        assert_eq!(shipped.clone().fine_tuned_from(&shipped), shipped);
        let other = rights("other", &["me"]).fine_tuned_from(&once);
        assert_eq!(
            other,
            rights(
                "other; fine-tuned from weights under: own; fine-tuned from weights under: CC BY-SA",
                &["piano-midi.de", "me"]
            )
        );
    }

    #[test]
    fn the_weights_are_found_beside_the_program() {
        // An unpacked release: `segue` in bin/, the weights one folder up; the current
        // folder has a `weights/` without the model (someone's own folder of that name).
        let root = tempfile::tempdir().unwrap();
        let release = root.path().join("segue-1.0");
        let bin = release.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.path().join("cwd/weights")).unwrap();
        std::fs::create_dir_all(release.join("weights")).unwrap();
        std::fs::write(release.join("weights").join(DEFAULT_MODEL_FILE), b"").unwrap();
        let exe = bin.join("segue");
        let cwd = root.path().join("cwd");
        let places = |cwd: &Path| {
            let mut places = weights_places(Some(&exe), |_| None);
            places[0] = cwd.join(&places[0]);
            places
        };
        assert_eq!(find_weights(places(&cwd)), Some(release.join("weights")));
        // The current folder's, where it holds the model, comes first.
        std::fs::write(cwd.join("weights").join(DEFAULT_MODEL_FILE), b"").unwrap();
        assert_eq!(find_weights(places(&cwd)), Some(cwd.join("weights")));
        assert_eq!(find_weights([root.path().to_path_buf()]), None);
    }

    #[test]
    fn installed_weights_are_found_where_packages_put_them() {
        let env = |name: &str| match name {
            "HOME" => Some("/home/ada".into()),
            "XDG_DATA_DIRS" => Some("/opt/share:relative/share:/usr/share".into()),
            _ => None,
        };
        let places = weights_places(Some(Path::new("/usr/bin/segue")), env);
        let shown: Vec<_> = places.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            shown,
            [
                "weights",
                "/usr/bin/weights",
                "/usr/weights",
                "/weights",
                "/home/ada/.local/share/segue/weights",
                "/usr/share/segue/weights",
                "/opt/share/segue/weights",
            ]
        );
        // $XDG_DATA_HOME replaces ~/.local/share where it is absolute; the data dirs default
        // to /usr/local/share and /usr/share.
        let env = |name: &str| match name {
            "HOME" => Some("/home/ada".into()),
            "XDG_DATA_HOME" => Some("/data".into()),
            _ => None,
        };
        let places = weights_places(Some(Path::new("/opt/segue/bin/segue")), env);
        let shown: Vec<_> = places[4..].iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            shown,
            [
                "/data/segue/weights",
                "/opt/segue/share/segue/weights",
                "/usr/local/share/segue/weights",
                "/usr/share/segue/weights",
            ]
        );
    }

    #[test]
    fn a_draw_follows_the_statistics_and_its_seed() {
        let stats = LatentStats {
            mean: vec![1.0, -2.0, 0.5],
            std: vec![0.0, 0.5, 0.0],
            snippets: 4,
        };
        let draw = |seed| stats.draw(&mut ChaCha8Rng::seed_from_u64(seed));
        let a = draw(3);
        // No spread, no noise: those dimensions are the mean.
        assert_eq!((a[0], a[2]), (1.0, 0.5));
        assert_ne!(a[1], -2.0);
        assert_eq!(a, draw(3));
        assert_ne!(a, draw(4));
    }

    #[test]
    fn a_style_code_moves_a_composer_from_the_centre_of_all() {
        let stats = |mean: Vec<f32>| LatentStats {
            std: vec![1.0; mean.len()],
            mean,
            snippets: 3,
        };
        let latents = [
            stats(vec![2.0, 0.0]),
            stats(vec![0.0, 4.0]),
            stats(vec![-2.0, 2.0]),
        ];
        // The centre is (0, 2): composer 0 lies (2, -2) from it.
        assert_eq!(style_code(&latents, 0, 1.0).unwrap(), vec![2.0, 0.0]);
        assert_eq!(style_code(&latents, 0, 0.0).unwrap(), vec![0.0, 2.0]);
        assert_eq!(style_code(&latents, 0, 2.0).unwrap(), vec![4.0, -2.0]);
        assert_eq!(style_code(&latents, 1, 1.5).unwrap(), vec![0.0, 5.0]);
        assert_eq!(style_code(&latents, 3, 1.0), None);
    }

    #[test]
    fn prior_draws_follow_the_prior_and_their_seed() {
        let manifest = |prior| Manifest {
            format: MANIFEST_FORMAT,
            model: KIND.into(),
            preset: "custom".into(),
            config: Config {
                input: 128,
                hidden: 4,
                layers: 1,
                latent: 2,
                output_skip: false,
                metre: 0,
                metre_map: false,
            },
            composers: vec!["a".into(), "b".into()],
            latents: Vec::new(),
            corpus: CorpusInfo {
                name: String::new(),
                content_hash: String::new(),
                pieces: 0,
                valid_pieces: 0,
            },
            steps: 0,
            init_steps: 0,
            seconds: 0.0,
            training: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            licence: String::new(),
            credits: Vec::new(),
            dtype: "f32".into(),
            written_by: String::new(),
            prior,
        };
        let rng = |seed| ChaCha8Rng::seed_from_u64(seed);
        let standard = manifest(None);
        let noise = crate::models::standard_normal(&mut rng(7), 2);
        // A standard prior: N(0, I) whatever the composer, the same stream as plain noise.
        assert_eq!(standard.prior_draw(1, &mut rng(7)), noise);
        assert_eq!(standard.prior_draw_any(&mut rng(7)), noise);
        let centred = manifest(Some(ComposerPrior {
            means: vec![vec![100.0, 0.0], vec![0.0, -100.0]],
        }));
        let b = centred.prior_draw(1, &mut rng(7));
        assert_eq!(b, vec![noise[0], noise[1] - 100.0]);
        // The whole mixture: some draws near each centre, reproducible by seed.
        let mut r = rng(9);
        let draws: Vec<Vec<f32>> = (0..40).map(|_| centred.prior_draw_any(&mut r)).collect();
        assert!(draws.iter().any(|d| d[0] > 50.0));
        assert!(draws.iter().any(|d| d[1] < -50.0));
        assert_eq!(
            centred.prior_draw_any(&mut rng(3)),
            centred.prior_draw_any(&mut rng(3))
        );
    }
}
