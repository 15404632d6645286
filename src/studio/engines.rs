//! The models the studio generates and trains with: which one the Generate button uses, what
//! the Train panel trains, and the models other than the LSTM-VAE, loaded.

use std::path::Path;
use std::sync::Arc;

use crate::classify::Classifier;
use crate::gan::TrainedGan;
use crate::models::ModelKind;
use crate::tvae::TrainedTvae;

/// Which model the Generate button uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EngineKind {
    /// The LSTM-VAE (continue, transfer, transition, blend).
    #[default]
    LstmVae,
    /// The Transformer VAE (same modes, whole snippets at once).
    TransformerVae,
    /// Gradient ascent on the roll towards composer B with the classifier.
    ClassifierAscent,
    /// DCGAN samples.
    Dcgan,
}

/// What the Train panel trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainModel {
    /// The LSTM-VAE: the composers of the generation panel.
    #[default]
    LstmVae,
    /// The composer classifier: the style meter's composers (and classifier ascent's).
    Classifier,
    /// The Transformer VAE: the generation panel's engine of that name.
    TransformerVae,
    /// The DCGAN: the generation panel's engine of that name.
    Dcgan,
}

impl TrainModel {
    /// Every model the panel trains, in the picker's order.
    pub const ALL: [TrainModel; 4] = [
        TrainModel::LstmVae,
        TrainModel::TransformerVae,
        TrainModel::Classifier,
        TrainModel::Dcgan,
    ];

    /// Name shown in the picker.
    pub fn label(self) -> &'static str {
        match self {
            TrainModel::LstmVae => "LSTM-VAE (generation)",
            TrainModel::Classifier => "Composer classifier (style meter)",
            TrainModel::TransformerVae => "Transformer VAE (generation)",
            TrainModel::Dcgan => "DCGAN (samples)",
        }
    }

    /// The other model this is, if it is not the LSTM-VAE.
    pub fn other(self) -> Option<OtherKind> {
        match self {
            TrainModel::LstmVae => None,
            TrainModel::Classifier => Some(OtherKind::Classifier),
            TrainModel::TransformerVae => Some(OtherKind::TransformerVae),
            TrainModel::Dcgan => Some(OtherKind::Dcgan),
        }
    }
}

/// One of the paper's other models, as the studio loads, trains and keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherKind {
    /// The Transformer VAE.
    TransformerVae,
    /// The composer classifier (the style meter, and classifier ascent).
    Classifier,
    /// The DCGAN.
    Dcgan,
}

impl OtherKind {
    /// All of them.
    pub const ALL: [OtherKind; 3] = [
        OtherKind::TransformerVae,
        OtherKind::Classifier,
        OtherKind::Dcgan,
    ];

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            OtherKind::TransformerVae => "Transformer VAE",
            OtherKind::Classifier => "classifier",
            OtherKind::Dcgan => "DCGAN",
        }
    }

    /// Its kind of model.
    pub fn model_kind(self) -> ModelKind {
        match self {
            OtherKind::TransformerVae => ModelKind::TransformerVae,
            OtherKind::Classifier => ModelKind::Classifier,
            OtherKind::Dcgan => ModelKind::Dcgan,
        }
    }

    /// The other model of `kind` (none for the LSTM-VAE).
    pub fn of_kind(kind: ModelKind) -> Option<OtherKind> {
        Self::ALL.into_iter().find(|k| k.model_kind() == kind)
    }

    /// Its kind in manifests and file names.
    pub(crate) fn file_kind(self) -> &'static str {
        self.model_kind().name()
    }

    /// Loads a file of this model for the studio (on the CPU, where the studio runs them).
    pub(crate) fn load(self, path: &Path) -> Result<LoadedOther, String> {
        let cpu = &crate::models::Device::Cpu;
        match self {
            OtherKind::TransformerVae => {
                crate::tvae::load(path, cpu).map(|m| LoadedOther::TransformerVae(Arc::new(m)))
            }
            OtherKind::Classifier => {
                crate::classify::load(path, cpu).map(|m| LoadedOther::Classifier(Arc::new(m)))
            }
            OtherKind::Dcgan => {
                crate::gan::load(path, cpu).map(|m| LoadedOther::Dcgan(Arc::new(m)))
            }
        }
        .map_err(|e| e.to_string())
    }
}

/// One of the other models, loaded.
#[derive(Clone)]
pub enum LoadedOther {
    /// A Transformer VAE.
    TransformerVae(Arc<TrainedTvae>),
    /// A composer classifier.
    Classifier(Arc<Classifier>),
    /// A DCGAN.
    Dcgan(Arc<TrainedGan>),
}

impl EngineKind {
    /// Whether it is one of the VAEs (composers A and B, modes, the slider, a primer).
    pub fn is_vae(self) -> bool {
        matches!(self, EngineKind::LstmVae | EngineKind::TransformerVae)
    }

    /// How a message says a piece was made by it.
    pub(crate) fn made_by(self) -> &'static str {
        match self {
            EngineKind::LstmVae => "with the LSTM-VAE",
            EngineKind::TransformerVae => "with the Transformer VAE",
            EngineKind::ClassifierAscent => "by classifier ascent",
            EngineKind::Dcgan => "with the DCGAN",
        }
    }

    /// Name shown in the picker.
    pub fn label(self) -> &'static str {
        match self {
            EngineKind::LstmVae => "LSTM-VAE",
            EngineKind::TransformerVae => "Transformer VAE",
            EngineKind::ClassifierAscent => "Classifier ascent (to B)",
            EngineKind::Dcgan => "DCGAN",
        }
    }
}

/// The paper's other models, loaded from the shipped weights when present.
#[derive(Default, Clone)]
pub struct OtherModels {
    /// Transformer VAE.
    pub tvae: Option<Arc<TrainedTvae>>,
    /// Composer classifier (also the style meter).
    pub classifier: Option<Arc<Classifier>>,
    /// DCGAN.
    pub gan: Option<Arc<TrainedGan>>,
}

impl OtherModels {
    /// Loads the shipped ones of `kinds`, where they are shipped (a damaged file is reported,
    /// not fatal).
    pub fn load_shipped(kinds: &[OtherKind]) -> (Self, Vec<String>) {
        let mut others = OtherModels::default();
        let mut problems = Vec::new();
        for (kind, path) in kinds
            .iter()
            .filter_map(|&k| Some((k, k.model_kind().shipped()?)))
        {
            match kind.load(&path) {
                Ok(m) => others.put(m),
                Err(e) => problems.push(e),
            }
        }
        (others, problems)
    }

    /// Puts `model` in its place, instead of the one there.
    pub fn put(&mut self, model: LoadedOther) {
        match model {
            LoadedOther::TransformerVae(m) => self.tvae = Some(m),
            LoadedOther::Classifier(m) => self.classifier = Some(m),
            LoadedOther::Dcgan(m) => self.gan = Some(m),
        }
    }

    /// Whether a model of `kind` is here.
    pub fn has(&self, kind: OtherKind) -> bool {
        match kind {
            OtherKind::TransformerVae => self.tvae.is_some(),
            OtherKind::Classifier => self.classifier.is_some(),
            OtherKind::Dcgan => self.gan.is_some(),
        }
    }

    /// The model of `kind` becomes `from`'s (none, if `from` has none).
    pub(crate) fn take_kind(&mut self, kind: OtherKind, from: &OtherModels) {
        match kind {
            OtherKind::TransformerVae => self.tvae = from.tvae.clone(),
            OtherKind::Classifier => self.classifier = from.classifier.clone(),
            OtherKind::Dcgan => self.gan = from.gan.clone(),
        }
    }
}
