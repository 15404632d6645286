//! The four kinds of model Segue trains and uses, by the names that manifests (`"model"`),
//! training runs' model files (`KIND.safetensors`) and `segue generate --model` give them, and
//! the files of their shipped weights.

use std::path::PathBuf;

/// A kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// The LSTM-VAE: continuation, style transfer, transitions and blends.
    LstmVae,
    /// The composer classifier: the style meter, and classifier ascent.
    Classifier,
    /// The Transformer VAE.
    TransformerVae,
    /// The DCGAN.
    Dcgan,
}

impl ModelKind {
    /// All four (a run folder's model files are looked for in this order).
    pub const ALL: [ModelKind; 4] = [
        ModelKind::LstmVae,
        ModelKind::Classifier,
        ModelKind::TransformerVae,
        ModelKind::Dcgan,
    ];

    /// Its name in manifests, run folders and on the command line (`lstm-vae`).
    pub const fn name(self) -> &'static str {
        match self {
            ModelKind::LstmVae => "lstm-vae",
            ModelKind::Classifier => "classifier",
            ModelKind::TransformerVae => "transformer-vae",
            ModelKind::Dcgan => "dcgan",
        }
    }

    /// The kind named `name` ([`ModelKind::name`]).
    pub fn from_name(name: &str) -> Option<ModelKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The file of its shipped weights in the weights folder.
    pub const fn shipped_file_name(self) -> &'static str {
        match self {
            ModelKind::LstmVae => "lstm-vae-studio.safetensors",
            ModelKind::Classifier => "classifier.safetensors",
            ModelKind::TransformerVae => "transformer-vae.safetensors",
            ModelKind::Dcgan => "dcgan.safetensors",
        }
    }

    /// Its shipped weights ([`crate::models::trained::weights_dir`]), if they are there.
    pub fn shipped(self) -> Option<PathBuf> {
        crate::models::trained::shipped_file(self.shipped_file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::ModelKind;

    #[test]
    fn names_go_both_ways() {
        for kind in ModelKind::ALL {
            assert_eq!(ModelKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ModelKind::from_name("classifier-ascent"), None);
    }
}
