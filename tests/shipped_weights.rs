//! The weights committed in `weights/` load, pass every check of their loaders and work: a
//! fresh clone must run the studio without training, so a broken or missing file fails here.

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use segue::generate::{GenerateOptions, Generated, Mode};
use segue::roll::{PITCHES, QuantizeOptions, Roll};

/// A file of the shared corpus.
fn corpus_file(rel: &str) -> PathBuf {
    common::shared("corpus").join(rel)
}

/// Notes per sounding step of the generated part, and its sounding steps.
fn density(g: &Generated) -> (f64, usize) {
    let part = g
        .roll
        .slice(g.primer_steps, g.roll.steps() - g.primer_steps);
    let binary = part.binary();
    let mut sounding = 0;
    let mut notes = 0;
    for row in binary.chunks(PITCHES) {
        let n = row.iter().filter(|&&c| c != 0).count();
        notes += n;
        sounding += usize::from(n > 0);
    }
    (notes as f64 / sounding.max(1) as f64, sounding)
}

fn options() -> GenerateOptions {
    GenerateOptions {
        mode: Mode::Transfer,
        steps: 64,
        primer_steps: 32,
        seed: 3,
        ..GenerateOptions::default()
    }
}

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
    assert_eq!(m.manifest.config, segue::models::lstm_vae::Config::studio());
    assert_eq!(m.manifest.dtype, "f16");
    // It makes music: a Chopin primer continued in Debussy's style is neither silent nor a
    // cluster (the corpus has about 3 notes per sounding step).
    let primer = Roll::read_midi(
        &corpus_file("chopin/chp_op18.mid"),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let code = |name: &str| {
        segue::generate::composer_code(&m, m.composer_index(name).unwrap(), 1.0).unwrap()
    };
    let g = segue::generate::generate(
        &m.model,
        &primer,
        &code("chopin"),
        &code("debussy"),
        &options(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(g.roll.steps(), 32 + 64);
    let (per_step, sounding) = density(&g);
    assert!(sounding >= 16, "{sounding} of 64 steps sound");
    // Neither a single line nor a cluster at the cap of 8 (the corpus: 3.2; the model's
    // continuations 2.4 on average).
    assert!(
        (1.3..=5.0).contains(&per_step),
        "{per_step} notes per sounding step"
    );
}

/// The library's one-call recipe is the command line's: a piece opening with two silent bars
/// and ending with rests is heard from its first note's bar to the nearest bar line, with
/// its own code as style A unless one is given.
#[test]
fn a_piece_is_continued_from_its_first_bar_of_music_to_a_bar_line() {
    use segue::generate::{continue_piece, generate, song_code};
    let path = segue::models::trained::default_model_path().expect("weights/ has the LSTM-VAE");
    let m = segue::models::trained::TrainedModel::load(&path, &Device::Cpu).unwrap();
    let chord = chord_roll(100);
    let mut piece = Roll::new(32);
    piece.continue_with(&chord);
    piece.continue_with(&Roll::new(40));
    let stop = AtomicBool::new(false);
    let opts = |primer_steps, mode| GenerateOptions {
        mode,
        steps: 32,
        primer_steps,
        seed: 5,
        ..GenerateOptions::default()
    };
    let run = |a: Option<&[f32]>, b: Option<&[f32]>, o: &GenerateOptions| {
        continue_piece(&m, &piece, a, b, o, &mut |_| {}, &stop).unwrap()
    };
    let primer = piece.up_to_last_note();
    let by_hand = |a: &[f32], b: &[f32], o: &GenerateOptions| {
        generate(&m.model, &primer, a, b, o, &mut |_| {}, &stop).unwrap()
    };
    // 44 steps asked after the silent 32 end at step 76: the bar line at 80 is nearer.
    let g = run(None, None, &opts(44, Mode::Continue));
    assert_eq!((g.primer_steps, g.roll.steps()), (80, 112));
    let own = song_code(&m, &primer, m.training_snippet_steps()).unwrap();
    assert_eq!(g.roll, by_hand(&own, &own, &opts(80, Mode::Continue)).roll);
    // More than the piece: heard up to its last note, not its trailing rests.
    assert_eq!(
        run(None, None, &opts(500, Mode::Continue)).primer_steps,
        132
    );
    // Styles given are used as given.
    let code = |name: &str| {
        segue::generate::composer_code(&m, m.composer_index(name).unwrap(), 1.0).unwrap()
    };
    let (chopin, debussy) = (code("chopin"), code("debussy"));
    let g = run(Some(&chopin), Some(&debussy), &opts(44, Mode::Transfer));
    assert_eq!(
        g.roll,
        by_hand(&chopin, &debussy, &opts(80, Mode::Transfer)).roll
    );
    assert_ne!(g.roll, run(None, None, &opts(44, Mode::Continue)).roll);
    // A primer from the middle of the piece is generate's, not this recipe's.
    let from_middle = GenerateOptions {
        primer_start: 8,
        ..opts(44, Mode::Continue)
    };
    let err = continue_piece(&m, &piece, None, None, &from_middle, &mut |_| {}, &stop);
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("from its start, not from step 8")
    );
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
    // It knows a Bach prelude (BWV 846, the shipped model puts Bach first at about 65 %).
    let prelude = Roll::read_midi(
        &corpus_file("bach/bach_846.mid"),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let verdict = segue::classify::classify_roll(&clf, &prelude, window, window).unwrap();
    let best = (0..verdict.overall.len())
        .max_by(|&a, &b| verdict.overall[a].total_cmp(&verdict.overall[b]))
        .unwrap();
    assert_eq!(verdict.composers[best], "bach", "{:?}", verdict.overall);
}

#[test]
fn the_shipped_transformer_vae_and_dcgan_load_and_make_music() {
    let path = segue::tvae::default_path().expect("weights/ has the Transformer VAE");
    let tvae = segue::tvae::load(&path, &Device::Cpu).unwrap();
    let primer = Roll::read_midi(
        &corpus_file("chopin/chp_op18.mid"),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let code = |name: &str| {
        let i = tvae
            .manifest
            .composers
            .iter()
            .position(|c| c == name)
            .unwrap();
        segue::tvae::composer_code(&tvae, i, 1.0).unwrap()
    };
    let g = segue::tvae::generate(
        &tvae,
        &primer,
        &code("chopin"),
        &code("debussy"),
        &options(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let (per_step, sounding) = density(&g);
    assert!(sounding >= 16, "{sounding} of 64 steps sound");
    assert!(
        (1.3..=5.0).contains(&per_step),
        "{per_step} notes per sounding step"
    );

    let path = segue::gan::default_path().expect("weights/ has the DCGAN");
    let gan = segue::gan::load(&path, &Device::Cpu).unwrap();
    for snippet in segue::gan::sample(&gan.model, 2, 1.0, 8, 1).unwrap() {
        assert_eq!(snippet.steps(), 128);
        assert!(snippet.active_cells() > 0, "a silent DCGAN sample");
    }
}

#[test]
fn the_shipped_weights_record_the_settings_they_were_trained_with() {
    // Each file beside its manifest with one setting changed that changes no tensor's shape:
    // refused, so a manifest edited by hand cannot make a shipped model compute otherwise.
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights");
    let dir = tempfile::tempdir().unwrap();
    type Loader = fn(&std::path::Path) -> Option<String>;
    let cases: [(&str, &str, serde_json::Value, Loader); 4] = [
        ("lstm-vae-studio", "/config/metre_map", false.into(), |p| {
            segue::models::trained::TrainedModel::load(p, &Device::Cpu)
                .err()
                .map(|e| e.to_string())
        }),
        ("classifier", "/config/stack/heads", 4.into(), |p| {
            segue::classify::load(p, &Device::Cpu)
                .err()
                .map(|e| e.to_string())
        }),
        ("transformer-vae", "/config/stack/heads", 4.into(), |p| {
            segue::tvae::load(p, &Device::Cpu)
                .err()
                .map(|e| e.to_string())
        }),
        ("dcgan", "/config/cells", "drawn".into(), |p| {
            segue::gan::load(p, &Device::Cpu)
                .err()
                .map(|e| e.to_string())
        }),
    ];
    for (name, pointer, value, load) in cases {
        let source = weights.join(format!("{name}.safetensors"));
        let copy = dir.path().join(format!("{name}.safetensors"));
        std::fs::copy(&source, &copy).unwrap();
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(source.with_extension("json")).unwrap()).unwrap();
        std::fs::write(copy.with_extension("json"), manifest.to_string()).unwrap();
        assert_eq!(load(&copy), None, "{name} loads as shipped");
        let setting = manifest.pointer_mut(pointer).unwrap();
        assert_ne!(*setting, value, "{name}: {pointer} is changed");
        *setting = value;
        std::fs::write(copy.with_extension("json"), manifest.to_string()).unwrap();
        let err = load(&copy).unwrap_or_default();
        assert!(
            err.contains("the weights were trained with"),
            "{name}: {err}"
        );
    }
}

#[test]
fn the_shipped_weights_credit_the_shared_corpus_they_were_trained_on() {
    // Their corpus is the one whose licence and credits training names; a model trained on
    // any other corpus does not claim them.
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights");
    for name in ["lstm-vae-studio", "classifier", "transformer-vae", "dcgan"] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(weights.join(format!("{name}.json"))).unwrap())
                .unwrap();
        assert_eq!(
            manifest["corpus"]["content_hash"],
            segue::models::trained::SHARED_CORPUS_HASH,
            "{name}"
        );
        assert_eq!(
            manifest["licence"],
            segue::models::trained::CORPUS_LICENCE,
            "{name}"
        );
        assert_eq!(
            manifest["credits"],
            serde_json::json!(segue::models::trained::CORPUS_CREDITS),
            "{name}"
        );
    }
}

#[test]
fn the_list_of_the_shared_corpus_files_is_the_corpus() {
    // Each file of the shared corpus is known as one (its licence and credits go with what is
    // trained on it); a file of one's own is not.
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut files = 0;
    for composer in std::fs::read_dir(&corpus).unwrap() {
        let composer = composer.unwrap().path();
        if !composer.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&composer).unwrap() {
            let file = file.unwrap().path();
            let hash = blake3::hash(&std::fs::read(&file).unwrap()).to_hex();
            assert!(
                segue::models::trained::is_shared_corpus_file(hash.as_str()),
                "{}",
                file.display()
            );
            files += 1;
        }
    }
    assert_eq!(files, 620);
    let listed = include_str!("../assets/shared-corpus.b3").lines().count();
    assert_eq!(listed, 620);
    assert!(!segue::models::trained::is_shared_corpus_file(
        blake3::hash(b"MThd not a piece").to_hex().as_str()
    ));
}
