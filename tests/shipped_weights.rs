//! The weights committed in `weights/` load, pass every check of their loaders and work: a
//! fresh clone must run the studio without training, so a broken or missing file fails here.

use candle_core::Device;
use segue::roll::{PITCHES, Roll};

/// A C major chord held over `steps` steps, as a binary roll.
fn chord_roll(steps: usize) -> Roll {
    let mut cells = vec![0u8; steps * PITCHES];
    for step in 0..steps {
        for pitch in [60, 64, 67] {
            cells[step * PITCHES + pitch] = 1;
        }
    }
    Roll::from_binary(steps, &cells).unwrap()
}

#[test]
fn the_shipped_lstm_vae_loads_with_its_composer_codes() {
    let path = segue::models::trained::default_model_path().expect("weights/ has the LSTM-VAE");
    let m = segue::models::trained::TrainedModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(m.manifest.composers.len(), 20);
    assert_eq!(m.manifest.latents.len(), 20);
}

#[test]
fn the_shipped_classifier_loads_and_ranks_every_composer() {
    let path = segue::classify::default_path().expect("weights/ has the classifier");
    let clf = segue::classify::load(&path, &Device::Cpu).unwrap();
    assert_eq!(clf.manifest.composers.len(), 20);
    let window = segue::classify::window_steps(&clf);
    let verdict =
        segue::classify::classify_roll(&clf, &chord_roll(2 * window), window, window).unwrap();
    assert_eq!(verdict.overall.len(), 20);
    let total: f32 = verdict.overall.iter().sum();
    assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {total}");
    assert!(verdict.overall.iter().all(|p| p.is_finite() && *p >= 0.0));
}

#[test]
fn the_shipped_transformer_vae_and_dcgan_load() {
    let tvae = segue::tvae::default_path().expect("weights/ has the Transformer VAE");
    segue::tvae::load(&tvae, &Device::Cpu).unwrap();
    let gan = segue::gan::default_path().expect("weights/ has the DCGAN");
    segue::gan::load(&gan, &Device::Cpu).unwrap();
}
