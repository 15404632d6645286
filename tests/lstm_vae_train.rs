//! Training, resume, model files and generation on a tiny synthetic corpus with a tiny model.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::write_tiny_corpus as write_corpus;
use segue::dataset::{Corpus, LoadOptions};
use segue::generate::{self, GenerateOptions, Mode};
use segue::meter::StepMeter;
use segue::midi::Meter;
use segue::models::lstm_vae::Config;
use segue::models::trained::TrainedModel;
use segue::roll::QuantizeOptions;
use segue::train::{self, Metrics, TrainOptions};
use segue::train_loop::Control;

fn corpus(dir: &Path) -> Corpus {
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: None,
    };
    Corpus::load(dir, &opts, &|_, _| {}).unwrap()
}

fn tiny_options(steps: usize) -> TrainOptions {
    let mut o = TrainOptions::preset("studio").unwrap();
    o.preset = "custom".into();
    o.config = Config {
        input: 128,
        hidden: 16,
        layers: 2,
        latent: 4,
        output_skip: false,
        metre: 0,
        metre_map: false,
    };
    o.steps = steps;
    o.snippet_steps = 16;
    o.valid_fraction = 0.34;
    o.eval_every = 2;
    o.checkpoint_every = 2;
    o.beta.delay = 1;
    o.beta.ramp = 2;
    o
}

fn run(corpus: &Corpus, opts: &TrainOptions, out: &Path, resume: bool) -> Vec<Metrics> {
    let mut seen = Vec::new();
    train::train_lstm_vae(
        corpus,
        opts,
        out,
        &candle_core::Device::Cpu,
        resume,
        &Control::default(),
        &mut |e| {
            if let train::TrainEvent::Metrics(m) = e {
                seen.push(m);
            }
        },
    )
    .unwrap();
    seen
}

/// The error of a training run that must be refused.
fn refused(corpus: &Corpus, opts: &TrainOptions, out: &Path) -> segue::Error {
    refused_at(corpus, opts, out, false)
}

/// Why training (or resuming, with `resume`) into `out` is refused.
fn refused_at(corpus: &Corpus, opts: &TrainOptions, out: &Path, resume: bool) -> segue::Error {
    train::train_lstm_vae(
        corpus,
        opts,
        out,
        &candle_core::Device::Cpu,
        resume,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap_err()
}

/// `steps` generated after an 8-step primer, from composer 0 towards composer 1.
fn generated(
    model: &TrainedModel,
    primer: &segue::roll::Roll,
    mode: Mode,
    steps: usize,
    seed: u64,
) -> generate::Generated {
    let opts = GenerateOptions {
        mode,
        steps,
        primer_steps: 8,
        seed,
        ..GenerateOptions::default()
    };
    let za = generate::composer_code(model, 0, 1.0).unwrap();
    let zb = generate::composer_code(model, 1, 1.0).unwrap();
    generate::generate(
        &model.model,
        primer,
        &za,
        &zb,
        &opts,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// Evaluation on two held-out snippets of `steps` steps per composer.
fn snippets_of(steps: usize) -> segue::eval::EvalOptions {
    segue::eval::EvalOptions {
        per_composer: 2,
        seed: 5,
        snippet_steps: Some(steps),
        ..Default::default()
    }
}

fn curve(ms: &[Metrics]) -> Vec<(usize, f64, f64)> {
    ms.iter().map(|m| (m.step, m.recon, m.kl)).collect()
}

fn read_log(out: &Path) -> Vec<Metrics> {
    std::fs::read_to_string(train::metrics_path(out))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn same_seed_same_curve_and_resume_continues_it() {
    let data = tempfile::tempdir().unwrap();
    write_corpus(data.path());
    let corpus = corpus(data.path());
    assert_eq!(corpus.composers.len(), 3);

    let a = tempfile::tempdir().unwrap();
    let full = run(&corpus, &tiny_options(6), a.path(), false);
    assert_eq!(full.len(), 6);
    assert!(full.iter().all(|m| m.recon.is_finite() && m.kl >= 0.0));
    assert!(full[1].valid.is_some() && full[0].valid.is_none());
    assert_eq!(curve(&read_log(a.path())), curve(&full));

    let b = tempfile::tempdir().unwrap();
    assert_eq!(
        curve(&run(&corpus, &tiny_options(6), b.path(), false)),
        curve(&full)
    );

    // Stop after 4 steps, then resume to 6: the same curve as the uninterrupted run.
    let c = tempfile::tempdir().unwrap();
    let first = run(&corpus, &tiny_options(4), c.path(), false);
    let rest = run(&corpus, &tiny_options(6), c.path(), true);
    assert_eq!(rest.first().map(|m| m.step), Some(5));
    let joined: Vec<Metrics> = first.into_iter().chain(rest).collect();
    assert_eq!(curve(&joined), curve(&full));
    assert_eq!(curve(&read_log(c.path())), curve(&full));

    // A checkpoint interrupted while being written (new weights beside the older manifest
    // and optimiser state) is refused, not resumed from a mix.
    let e = tempfile::tempdir().unwrap();
    run(&corpus, &tiny_options(4), e.path(), false);
    std::fs::copy(train::model_path(a.path()), train::model_path(e.path())).unwrap();
    let err = refused_at(&corpus, &tiny_options(6), e.path(), true).to_string();
    assert!(
        err.contains("do not belong together") && err.contains("model weights at step 6"),
        "{err}"
    );

    // A forgotten --resume does not overwrite a run; --resume in a folder without one does
    // not silently start over.
    let start =
        |out: &Path, resume: bool| refused_at(&corpus, &tiny_options(6), out, resume).to_string();
    let err = start(c.path(), false);
    assert!(err.contains("already holds a run"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = start(empty.path(), true);
    assert!(err.contains("nothing to resume"), "{err}");
    assert!(!train::model_path(empty.path()).exists());

    // While a run trains in a folder (here: holds its lock), a second one there is refused
    // before it touches anything; once the first is done, it goes on.
    let log_before = std::fs::read(train::metrics_path(c.path())).unwrap();
    let lock = segue::train_loop::lock_run_folder(c.path()).unwrap();
    let err = refused_at(&corpus, &tiny_options(8), c.path(), true);
    assert!(matches!(err, segue::Error::RunInUse { .. }), "{err}");
    assert!(err.to_string().contains("another training run"), "{err}");
    assert_eq!(
        std::fs::read(train::metrics_path(c.path())).unwrap(),
        log_before
    );
    // A checkpoint half written into the folder meanwhile is the live run's, not cleared.
    let stage = c.path().join(".segue-next");
    std::fs::create_dir(&stage).unwrap();
    std::fs::write(stage.join("lstm-vae.safetensors"), b"half").unwrap();
    assert!(matches!(
        refused_at(&corpus, &tiny_options(8), c.path(), true),
        segue::Error::RunInUse { .. }
    ));
    assert!(stage.join("lstm-vae.safetensors").exists());
    assert!(segue::train_loop::run_folder_in_use(c.path()));
    drop(lock);
    assert!(!segue::train_loop::run_folder_in_use(c.path()));
    // Released (that run crashed mid-checkpoint): the half-written set is cleared, and the
    // run goes on from its last whole checkpoint.
    let on = run(&corpus, &tiny_options(7), c.path(), true);
    assert_eq!(on.iter().map(|m| m.step).collect::<Vec<_>>(), [7]);
    assert!(!stage.exists());

    // On another corpus (here: one piece fewer): refused, naming the folder given.
    let fewer = tempfile::tempdir().unwrap();
    write_corpus(fewer.path());
    std::fs::remove_file(fewer.path().join("arps").join("p2.mid")).unwrap();
    let err = refused_at(
        &self::corpus(fewer.path()),
        &tiny_options(8),
        c.path(),
        true,
    )
    .to_string();
    assert!(
        err.contains("another corpus than") && err.contains(&fewer.path().display().to_string()),
        "{err}"
    );

    // Resuming with another seed would move trained pieces into validation: refused.
    let mut reseeded = tiny_options(6);
    reseeded.seed = 9;
    let err = refused_at(&corpus, &reseeded, c.path(), true).to_string();
    assert!(
        err.contains("cannot resume with --seed 9 (the checkpoint's is 1)"),
        "{err}"
    );

    // A different seed gives a different curve.
    let d = tempfile::tempdir().unwrap();
    let mut other = tiny_options(6);
    other.seed = 2;
    assert_ne!(curve(&run(&corpus, &other, d.path(), false)), curve(&full));

    // The model file loads, names the composers, and generates reproducibly by seed.
    let model =
        TrainedModel::load(&train::model_path(a.path()), &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.manifest.composers, ["arps", "chords", "scales"]);
    assert_eq!(model.manifest.steps, 6);
    // A corpus other than the shared one: its files' licences, not piano-midi.de's credits.
    assert!(model.manifest.credits.is_empty());
    assert!(model.manifest.licence.starts_with("not known to Segue"));
    // The evaluation on held-out pieces: figures in range, reproducible by seed.
    let report = |seed| {
        let opts = segue::eval::EvalOptions {
            per_composer: 2,
            seed,
            ..Default::default()
        };
        segue::eval::evaluate_lstm_vae(&model, &corpus, &opts, &mut |_| {}).unwrap()
    };
    let r = report(5);
    assert_eq!(
        r.snippets, 6,
        "one held-out piece per composer, 2 snippets each"
    );
    assert_eq!(r.pieces, 3, "{r:?}");
    for notes in [
        r.tf_swap_other_composer,
        r.tf_swap_prior,
        r.tf_composer_codes,
        r.tf_random_codes,
        r.tf_stored_mixture_codes,
    ] {
        // At most all 128 pitches differ; different codes move the probabilities somewhat.
        assert!(notes > 0.0 && notes <= 128.0, "{r:?}");
    }
    for share in [
        r.centroid_accuracy,
        r.training_centroid_accuracy,
        r.piece_centroid_accuracy,
        r.frame_thresholded.f1,
        r.frame_tuned.f1,
        r.frame_copy_previous.f1,
        r.swap_other_composer_distance,
        r.swap_prior_distance,
        r.composer_z_distance,
        r.random_z_distance,
    ] {
        assert!((0.0..=1.0).contains(&share), "{r:?}");
    }
    assert!(
        (0.05..=0.95).contains(&r.tuned_threshold),
        "{}",
        r.tuned_threshold
    );
    // Chords are held for 3 of every 4 steps, so repeating the previous step is often right.
    assert!(r.frame_copy_previous.f1 > 0.2, "{r:?}");
    // Knowing every note's end but no onset: never wrong, and it misses exactly the onsets.
    let ceiling = &r.frame_without_onsets;
    assert_eq!(ceiling.precision, 1.0, "{r:?}");
    assert!(
        (ceiling.recall - (1.0 - r.onset_share)).abs() < 1e-9,
        "{r:?}"
    );
    assert!(ceiling.f1 >= r.frame_copy_previous.f1, "{r:?}");
    assert!((0.1..0.6).contains(&r.onset_share), "{r:?}");
    for share in [r.onset_recall, r.held_recall] {
        assert!((0.0..=1.0).contains(&share), "{r:?}");
    }
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&report(5)).unwrap()
    );
    // At style strength 0 every composer's code is the centre of all: decoding one primer with
    // two composers' codes is decoding it twice with one.
    let centred = segue::eval::EvalOptions {
        per_composer: 2,
        seed: 5,
        style_strength: 0.0,
        ..Default::default()
    };
    let c = segue::eval::evaluate_lstm_vae(&model, &corpus, &centred, &mut |_| {}).unwrap();
    assert_eq!((c.composer_z_distance, c.tf_composer_codes), (0.0, 0.0));
    assert!(
        r.composer_z_distance > 0.0 && r.tf_composer_codes > 0.0,
        "{r:?}"
    );
    assert_eq!(c.random_z_distance, r.random_z_distance);
    // Other snippet lengths than the training one can be measured; too short is refused.
    let short =
        segue::eval::evaluate_lstm_vae(&model, &corpus, &snippets_of(16), &mut |_| {}).unwrap();
    assert_eq!(short.snippet_steps, 16);
    assert_eq!(short.snippets, 6);
    let err =
        segue::eval::evaluate_lstm_vae(&model, &corpus, &snippets_of(1), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
    // Longer than every piece: refused, not a batch of silence (or of the whole memory).
    let longest = (corpus.pieces.iter().map(|p| p.roll.steps()))
        .chain([model.training_snippet_steps()])
        .max()
        .unwrap();
    let err =
        segue::eval::evaluate_lstm_vae(&model, &corpus, &snippets_of(longest + 1), &mut |_| {})
            .unwrap_err();
    assert!(err.to_string().contains("longest piece"), "{err}");

    let primer = corpus.pieces[0].roll.clone();
    let za = generate::composer_code(&model, 0, 1.0).unwrap();
    let zb = generate::composer_code(&model, 1, 1.0).unwrap();
    let make = |mode, seed| generated(&model, &primer, mode, 40, seed);
    let one = make(Mode::Blend, 7);
    assert_eq!(one.roll.steps(), 48);
    assert_eq!(one.primer_steps, 8);
    assert_eq!(one.roll.binary(), make(Mode::Blend, 7).roll.binary());
    assert_ne!(one.roll.binary(), make(Mode::Blend, 8).roll.binary());
    // The primer is kept as it was.
    assert_eq!(one.roll.slice(0, 8).binary(), primer.slice(0, 8).binary());
    // Cancelling stops the work.
    let cancelled = generate::generate(
        &model.model,
        &primer,
        &za,
        &zb,
        &GenerateOptions::default(),
        &mut |_| {},
        &AtomicBool::new(true),
    );
    assert!(matches!(cancelled, Err(segue::Error::Cancelled)));
}

#[test]
fn a_metre_model_trains_reloads_generates_and_is_measured_on_whole_bars() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(2);
    o.config.metre = 4;
    let out = dir.path().join("metre");
    let metrics = run(&c, &o, &out, false);
    assert!(metrics.iter().all(|m| m.recon.is_finite()), "{metrics:?}");
    let model = TrainedModel::load(&train::model_path(&out), &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.model.config().metre, 4);
    // Generation steps the metre clock; the same seed gives the same piece.
    let make = |seed| generated(&model, &c.pieces[0].roll, Mode::Transition, 24, seed);
    assert_eq!(make(3).roll.binary(), make(3).roll.binary());
    assert_eq!(make(3).roll.steps(), 32);
    // Held-out snippets must be whole bars, or their starts would not fall on bar lines.
    let err = segue::eval::evaluate_lstm_vae(&model, &c, &snippets_of(6), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("bars of 4 steps"), "{err}");
    assert!(segue::eval::evaluate_lstm_vae(&model, &c, &snippets_of(8), &mut |_| {}).is_ok());
    // An absurd metre is refused before anything is built.
    o.config.metre = Config::MAX_METRE + 1;
    let err = refused(&c, &o, &dir.path().join("absurd"));
    assert!(err.to_string().contains("metre"), "{err}");
}

/// Named tensors sorted by name, as a model file is written.
fn tensors_sorted(
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
) -> Vec<(String, candle_core::Tensor)> {
    let mut named: Vec<_> = tensors.clone().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn damaged_model_files_are_refused_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    write_corpus(data.path());
    let corpus = corpus(data.path());
    let out = tempfile::tempdir().unwrap();
    run(&corpus, &tiny_options(2), out.path(), false);
    let good = train::model_path(out.path());
    let bytes = std::fs::read(&good).unwrap();
    let manifest = std::fs::read_to_string(good.with_extension("json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, weights: &[u8], manifest: &str| {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, weights).unwrap();
        std::fs::write(path.with_extension("json"), manifest).unwrap();
        match TrainedModel::load(&path, &candle_core::Device::Cpu) {
            Ok(_) => String::from("loaded"),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(load("good", &bytes, &manifest), "loaded");
    let truncated = load("truncated", &bytes[..bytes.len() / 2], &manifest);
    assert!(
        truncated.contains("truncated.safetensors") && truncated.contains("is it truncated"),
        "{truncated}"
    );
    // A file far longer than its header describes (3 GB, sparse) is refused from its header,
    // not read into memory first; so is one of another kind (a WAV file's first bytes give no
    // safetensors header).
    let long = dir.path().join("long.safetensors");
    std::fs::write(long.with_extension("json"), &manifest).unwrap();
    let huge = 3u64 << 30;
    let load_long = |start: &[u8]| {
        std::fs::write(&long, start).unwrap();
        let file = std::fs::File::options().write(true).open(&long).unwrap();
        file.set_len(huge).unwrap();
        let err = TrainedModel::load(&long, &candle_core::Device::Cpu).err();
        let err = err.unwrap().to_string();
        assert!(err.contains("long.safetensors"), "{err}");
        err
    };
    let err = load_long(&bytes);
    assert!(
        err.contains(&format!("describes {} bytes", bytes.len()))
            && err.contains(&format!("the file holds {huge}")),
        "{err}"
    );
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.resize(4096, 0);
    let err = load_long(&wav);
    assert!(err.contains("its first bytes give a header"), "{err}");
    let bigger = manifest.replace("\"hidden\": 16", "\"hidden\": 32");
    let shape = load("shape", &bytes, &bigger);
    assert!(
        shape.contains("shape.json") && shape.contains("trained with hidden 16, not 32"),
        "{shape}"
    );
    // The same weights without the settings they were trained with (as earlier versions wrote
    // them): each tensor is checked against the sizes.
    let plain = {
        let tensors = candle_core::safetensors::load(&good, &candle_core::Device::Cpu).unwrap();
        let path = dir.path().join("plain-src.safetensors");
        candle_core::safetensors::save(&tensors, &path).unwrap();
        std::fs::read(&path).unwrap()
    };
    assert_eq!(load("plain", &plain, &manifest), "loaded");
    let shape = load("shape", &plain, &bigger);
    assert!(shape.contains("has shape"), "{shape}");
    // A metre input the weights do not have, and an absurd one (refused before building).
    let metred = load(
        "metred",
        &plain,
        &manifest.replace("\"metre\": 0", "\"metre\": 16"),
    );
    assert!(metred.contains("has shape"), "{metred}");
    let absurd = load(
        "absurd",
        &bytes,
        &manifest.replace("\"metre\": 0", "\"metre\": 1000000000000"),
    );
    assert!(absurd.contains("impossible model sizes"), "{absurd}");
    let huge = load(
        "huge",
        &plain,
        &manifest.replace("\"hidden\": 16", "\"hidden\": 100000000"),
    );
    assert!(
        huge.contains("huge.json") && huge.contains("holds"),
        "{huge}"
    );
    // A held-out share that is none (evaluations would hold out pieces it trained on).
    let mut edited: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(edited["training"]["valid_fraction"].is_number());
    edited["training"]["valid_fraction"] = 5.0.into();
    let share = load("share", &bytes, &edited.to_string());
    assert!(
        share.contains("share.json: training.valid_fraction 5.0 is not a share from 0 up to 1"),
        "{share}"
    );
    // None held out is a share training accepts (the split still holds one piece out).
    edited["training"]["valid_fraction"] = 0.0.into();
    assert_eq!(load("none", &bytes, &edited.to_string()), "loaded");
    // A latent too large for the file, its statistics as long (so that only the sizes are
    // wrong): refused before a model of that size is built.
    let mut wide: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let latent = 400_000;
    wide["config"]["latent"] = serde_json::json!(latent);
    for stats in wide["latents"].as_array_mut().unwrap() {
        stats["mean"] = serde_json::json!(vec![0.0; latent]);
        stats["std"] = serde_json::json!(vec![1.0; latent]);
    }
    assert!(wide.get("prior").is_none_or(|p| p.is_null()));
    let wide = load("wide", &plain, &wide.to_string());
    // A composer name with a terminal escape in it would be printed as it is.
    let mut escaped: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    escaped["composers"][0] = serde_json::json!("ba\u{1b}[31mch");
    let escaped = load("escaped", &bytes, &escaped.to_string());
    assert!(
        escaped.contains("escaped.json") && escaped.contains("control characters"),
        "{escaped}"
    );
    assert!(
        wide.contains("wide.json") && wide.contains("holds"),
        "{wide}"
    );
    // A training length no snippet can have: evaluation would cut rolls into it.
    let mut long: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(long["training"]["snippet_steps"].is_u64(), "{manifest}");
    long["training"]["snippet_steps"] = serde_json::json!(1u64 << 57);
    let long = load("long", &bytes, &long.to_string());
    assert!(
        long.contains("long.json") && long.contains("training snippets of"),
        "{long}"
    );
    // A manifest larger than any is refused unread (sparse: no disk is used).
    load("bulky", &bytes, &manifest);
    std::fs::File::create(dir.path().join("bulky.json"))
        .unwrap()
        .set_len(segue::models::weights::MAX_MANIFEST_BYTES + 1)
        .unwrap();
    let bulky = TrainedModel::load(
        &dir.path().join("bulky.safetensors"),
        &candle_core::Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        bulky.contains("bulky.json") && bulky.contains("more than a manifest holds"),
        "{bulky}"
    );
    let missing = std::fs::remove_file(dir.path().join("good.json"));
    assert!(missing.is_ok());
    let no_manifest = TrainedModel::load(
        &dir.path().join("good.safetensors"),
        &candle_core::Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(no_manifest.contains("good.json"), "{no_manifest}");
    let garbage = load("garbage", b"not a model", &manifest);
    assert!(garbage.contains("garbage.safetensors"), "{garbage}");
    // The good file's tensors, one of them changed, saved with each tensor's own dtype.
    let tensors = candle_core::safetensors::load(&good, &candle_core::Device::Cpu).unwrap();
    let altered =
        |name: &str,
         change: &dyn Fn(&mut std::collections::HashMap<String, candle_core::Tensor>)| {
            let mut t = tensors.clone();
            change(&mut t);
            let path = dir.path().join(format!("{name}-src.safetensors"));
            candle_core::safetensors::save(&t, &path).unwrap();
            load(name, &std::fs::read(&path).unwrap(), &manifest)
        };
    assert!(manifest.contains("\"dtype\": \"f32\""), "{manifest}");
    // A tensor stored as integers, and one stored in another float type than the manifest says.
    for (name, dtype, shown) in [
        ("ints", candle_core::DType::U32, "U32"),
        ("halves", candle_core::DType::F16, "F16"),
    ] {
        let err = altered(name, &|t| {
            let bias = t["output.bias"].to_dtype(dtype).unwrap();
            t.insert("output.bias".into(), bias);
        });
        assert!(
            err.contains(&format!("tensor `output.bias` is stored as {shown}"))
                && err.contains("says f32"),
            "{err}"
        );
    }
    // A tensor the model does not have.
    let extra = altered("extra", &|t| {
        t.insert("stray".into(), t["output.bias"].clone());
    });
    assert!(
        extra.contains("unexpected tensors") && extra.contains("stray"),
        "{extra}"
    );
    // Weights of one checkpoint beside the manifest of another.
    let later = load(
        "later",
        &bytes,
        &manifest.replace("\"steps\": 2,", "\"steps\": 99,"),
    );
    assert!(
        later.contains("written at step 2") && later.contains("describes step 99"),
        "{later}"
    );
    // A manifest of other settings than the weights were trained with, where no shape shows
    // it: the metre map (read by bars rather than from the start), said or left to its default.
    assert!(manifest.contains("\"metre_map\": false"), "{manifest}");
    let mapped = load(
        "mapped",
        &bytes,
        &manifest.replace("\"metre_map\": false", "\"metre_map\": true"),
    );
    assert!(
        mapped.contains("mapped.json") && mapped.contains("trained with metre_map false, not true"),
        "{mapped}"
    );
    // Left out of the manifest, a setting is compared at its default.
    let mut left_out: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    left_out["config"]["metre_map"] = true.into();
    let stamped = dir.path().join("stamped-src.safetensors");
    let config: Config = serde_json::from_value(left_out["config"].clone()).unwrap();
    segue::models::weights::save_model(
        &stamped,
        &tensors_sorted(&tensors),
        candle_core::DType::F32,
        2,
        &config,
    )
    .unwrap();
    left_out["config"]
        .as_object_mut()
        .unwrap()
        .remove("metre_map");
    let left_out = load(
        "left-out",
        &std::fs::read(&stamped).unwrap(),
        &left_out.to_string(),
    );
    assert!(
        left_out.contains("trained with metre_map true, not false"),
        "{left_out}"
    );
    // Weights written before the settings were recorded are read as before.
    assert_eq!(
        load(
            "unstamped",
            &plain,
            &manifest.replace("\"metre_map\": false", "\"metre_map\": true")
        ),
        "loaded"
    );
    // A dtype the manifest may not name.
    let named = load(
        "named",
        &bytes,
        &manifest.replace("\"dtype\": \"f32\"", "\"dtype\": \"f8\""),
    );
    assert!(named.contains("`f8` is not one of"), "{named}");
    // Latent statistics that are not numbers.
    let latents: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let mut nan = latents.clone();
    nan["latents"][0]["std"][0] = serde_json::Value::String("x".into());
    let not_a_number = load("nan", &bytes, &nan.to_string());
    assert!(not_a_number.contains("nan.json"), "{not_a_number}");
    // A config field this version does not know (one saying how a newer model computes) is
    // refused, not run as if the model did not say it.
    let mut newer = latents.clone();
    newer["config"]["pitch_shift"] = serde_json::json!(12);
    let newer = load("newer", &bytes, &newer.to_string());
    assert!(
        newer.contains("unknown field `pitch_shift`") && newer.contains("newer version"),
        "{newer}"
    );
}

#[test]
fn the_fast_step_decoder_matches_the_candle_decoder() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use segue::models::lstm_vae::LstmVae;
    use segue::models::step_decoder::StepDecoder;
    // With and without the output skip (previous step -> logits) and the metre input.
    for (output_skip, metre) in [(false, 0), (true, 0), (false, 4)] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = Config {
            input: 128,
            hidden: 24,
            layers: 3,
            latent: 5,
            output_skip,
            metre,
            metre_map: false,
        };
        assert_eq!(
            LstmVae::new(&cfg, vb).unwrap().output_skip().is_some(),
            output_skip
        );
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = LstmVae::new(&cfg, vb).unwrap();
        segue::train_loop::seeded_init(&varmap, 1).unwrap();
        let z: Vec<f32> = (0..5).map(|i| i as f32 * 0.3 - 0.6).collect();
        let zt = Tensor::from_vec(z.clone(), (1, 5), &Device::Cpu).unwrap();
        let mut state = model.initial_state(&zt).unwrap();
        let mut fast = StepDecoder::new(&model).unwrap();
        fast.reset(&z);
        let mut prev = vec![0f32; 128];
        let mut logits = vec![0f32; 128];
        for t in 0..6 {
            let pt = Tensor::from_vec(prev.clone(), (1, 128), &Device::Cpu).unwrap();
            let want: Vec<f32> = model
                .decode_step(&pt, &zt, t, &mut state)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            fast.step(&prev, &z, t, &mut logits);
            for (a, b) in logits.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "step {t}: {a} vs {b}");
            }
            prev.fill(0.0);
            prev[60 + t] = 1.0;
            prev[64] = 1.0;
        }
    }
}

#[test]
fn the_centre_scale_moves_the_composer_term_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(1);
    let base = run(&c, &o, &dir.path().join("base"), false);
    o.centre_scale = 3.0;
    let wide = run(&c, &o, &dir.path().join("wide"), false);
    // The same seed and snippets: only the spread of the composer centres differs.
    assert_eq!(base[0].recon, wide[0].recon);
    assert_ne!(base[0].style, wide[0].style);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        o.centre_scale = bad;
        let err = refused(&c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains("centre scale"), "{err}");
    }
}

#[test]
fn the_piece_term_is_off_by_default_seeded_when_on_and_bad_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(3);
    let off = run(&c, &o, &dir.path().join("off"), false);
    assert!(off.iter().all(|m| m.piece == 0.0), "{off:?}");
    o.piece_weight = 10.0;
    let on = run(&c, &o, &dir.path().join("on"), false);
    let again = run(&c, &o, &dir.path().join("again"), false);
    // The same first batch and draws: the term changes the update, not the data.
    assert_eq!(on[0].recon, off[0].recon);
    assert_ne!(curve(&on), curve(&off));
    assert!(
        on.iter().all(|m| m.piece.is_finite() && m.piece > 0.0),
        "{on:?}"
    );
    let pieces = |ms: &[Metrics]| ms.iter().map(|m| m.piece).collect::<Vec<_>>();
    assert_eq!(curve(&on), curve(&again));
    assert_eq!(pieces(&on), pieces(&again));
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        o.piece_weight = bad;
        let err = refused(&c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains("piece weight"), "{err}");
    }
}

#[test]
fn the_mmd_term_is_off_by_default_seeded_when_on_and_bad_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(3);
    assert_eq!(o.mmd_weight, 0.0);
    let off = run(&c, &o, &dir.path().join("off"), false);
    assert!(off.iter().all(|m| m.mmd == 0.0), "{off:?}");
    o.mmd_weight = 50.0;
    let on = run(&c, &o, &dir.path().join("on"), false);
    let again = run(&c, &o, &dir.path().join("again"), false);
    // The prior draws come from their own generator: the first step sees the same batch and
    // the same code samples, and only the update differs.
    assert_eq!(on[0].recon, off[0].recon);
    assert_eq!(on[0].kl, off[0].kl);
    assert_ne!(curve(&on), curve(&off));
    assert!(
        on.iter().all(|m| m.mmd.is_finite() && m.mmd > 0.0),
        "{on:?}"
    );
    let mmds = |ms: &[Metrics]| ms.iter().map(|m| m.mmd).collect::<Vec<_>>();
    assert_eq!(curve(&on), curve(&again));
    assert_eq!(mmds(&on), mmds(&again));
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        o.mmd_weight = bad;
        let err = refused(&c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains("MMD weight"), "{err}");
    }
}

#[test]
fn encoder_dropout_is_off_by_default_seeded_when_on_and_bad_rates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(3);
    assert_eq!(o.encoder_dropout, 0.0);
    let off = run(&c, &o, &dir.path().join("off"), false);
    o.encoder_dropout = 0.5;
    let on = run(&c, &o, &dir.path().join("on"), false);
    let again = run(&c, &o, &dir.path().join("again"), false);
    assert_ne!(curve(&on), curve(&off));
    assert_eq!(curve(&on), curve(&again));
    for bad in [-0.1, 1.0, f64::NAN] {
        o.encoder_dropout = bad;
        let err = refused(&c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains("encoder dropout"), "{err}");
    }
    o.encoder_dropout = 0.0;
    o.input_dropout = 1.0;
    let err = refused(&c, &o, &dir.path().join("bad"));
    assert!(err.to_string().contains("input dropout"), "{err}");
}

#[test]
fn the_composer_prior_changes_the_kl_is_stored_with_the_model_and_drives_the_eval() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(4);
    let standard = run(&c, &o, &dir.path().join("standard"), false);
    o.composer_prior = true;
    let out = dir.path().join("composer");
    let composer = run(&c, &o, &out, false);
    let again = run(&c, &o, &dir.path().join("again"), false);
    // The same first batch and draws: only the KL's prior differs.
    assert_eq!(standard[0].recon, composer[0].recon);
    assert_ne!(standard[0].kl, composer[0].kl);
    assert_eq!(curve(&composer), curve(&again));

    let model = TrainedModel::load(&train::model_path(&out), &candle_core::Device::Cpu).unwrap();
    let prior = model.manifest.prior.as_ref().expect("the prior is stored");
    assert_eq!(prior.means.len(), 3);
    assert!(prior.means.iter().all(|m| m.len() == 4));
    let plain = TrainedModel::load(
        &train::model_path(&dir.path().join("standard")),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(plain.manifest.prior.is_none());
    // A manifest whose prior does not fit the model is refused, by name.
    let json = out.join("lstm-vae.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    manifest["prior"]["means"].as_array_mut().unwrap().pop();
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(train::model_path(&out), train::model_path(&broken)).unwrap();
    std::fs::write(broken.join("lstm-vae.json"), manifest.to_string()).unwrap();
    let err = TrainedModel::load(&train::model_path(&broken), &candle_core::Device::Cpu)
        .err()
        .expect("a prior of 2 centres for 3 composers is refused");
    assert!(
        err.to_string().contains("composer prior of 2 centres"),
        "{err}"
    );

    let opts = segue::eval::EvalOptions {
        per_composer: 2,
        seed: 5,
        ..Default::default()
    };
    let r = segue::eval::evaluate_lstm_vae(&model, &c, &opts, &mut |_| {}).unwrap();
    // The KL is taken against the composer centres, as in training.
    let valid = composer.last().unwrap().valid.as_ref().unwrap();
    assert!(r.kl.is_finite() && r.kl >= 0.0, "{r:?}");
    assert!(valid.kl.is_finite() && valid.kl >= 0.0, "{valid:?}");
    assert!(r.bce_per_cell_prior_z.is_finite() && r.bce_per_cell_prior_z > 0.0);
    // Without its centres the same model measures the KL against N(0, I): another figure.
    let mut plain =
        TrainedModel::load(&train::model_path(&out), &candle_core::Device::Cpu).unwrap();
    plain.manifest.prior = None;
    let r0 = segue::eval::evaluate_lstm_vae(&plain, &c, &opts, &mut |_| {}).unwrap();
    assert_eq!(r0.bce_per_cell_mean_z, r.bce_per_cell_mean_z);
    assert_ne!(r0.kl, r.kl);
}

#[test]
fn transposition_changes_the_data_reproducibly_and_too_far_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let mut o = tiny_options(3);
    let plain = run(&c, &o, &dir.path().join("plain"), false);
    o.transpose = 5;
    let shifted = run(&c, &o, &dir.path().join("shifted"), false);
    let again = run(&c, &o, &dir.path().join("again"), false);
    // Shifted snippets reconstruct differently from the first step on, and by seed the same.
    assert_ne!(plain[0].recon, shifted[0].recon);
    assert_eq!(curve(&shifted), curve(&again));
    o.transpose = 30;
    let err = refused(&c, &o, &dir.path().join("bad"));
    assert!(err.to_string().contains("30 semitones"), "{err}");
}

#[test]
fn a_corpus_with_nothing_to_hold_out_trains_without_validation_figures() {
    // One piece per composer: every piece trains, none is held out.
    let dir = tempfile::tempdir().unwrap();
    for (name, pitch) in [("a", 60u8), ("b", 67)] {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        let notes: Vec<(u64, u64, u8, u8)> = (0..64u64)
            .map(|i| (i * 24, i * 24 + 20, pitch + (i % 5) as u8, 80))
            .collect();
        std::fs::write(
            dir.path().join(name).join("only.mid"),
            common::simple(96, &notes),
        )
        .unwrap();
    }
    let c = corpus(dir.path());
    let mut o = tiny_options(2);
    o.eval_every = 1;
    let out = tempfile::tempdir().unwrap();
    let seen = run(&c, &o, out.path(), false);
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|m| m.valid.is_none()), "{seen:?}");
    assert!(TrainedModel::load(&train::model_path(out.path()), &candle_core::Device::Cpu).is_ok());
}

/// Stopped before its first step, a run writes nothing (no untrained model as its result).
#[test]
fn a_run_stopped_before_its_first_step_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let c = corpus(dir.path());
    let out = dir.path().join("out");
    let control = Control::default();
    control
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = train::train_lstm_vae(
        &c,
        &tiny_options(4),
        &out,
        &candle_core::Device::Cpu,
        false,
        &control,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nothing was trained"), "{err}");
    assert!(!out.exists(), "the run left its folder behind");
}

/// With the metre map, the metre input reads each piece's own bars: a fine-tune of a model that
/// counted bars from the snippet's start takes it on (and keeps it in its manifest); in 4/4
/// the two count alike, in 3/4 only the map knows where the bars are.
#[test]
fn a_metre_map_model_follows_the_metre_of_the_piece() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(&dir.path().join("c"));
    let c = corpus(&dir.path().join("c"));
    // A model that counts 16-step bars from each snippet's start...
    let mut o = tiny_options(2);
    o.config.metre = 16;
    let counted = dir.path().join("counted");
    run(&c, &o, &counted, false);
    // ...goes on with bars where each piece's metre map puts them (the same sizes, so a run
    // can start from it), on snippets that start anywhere and need not be whole bars.
    o.config.metre_map = true;
    o.snippet_steps = 14;
    o.init = Some(train::model_path(&counted));
    let out = dir.path().join("mapped");
    assert!(run(&c, &o, &out, false).iter().all(|m| m.recon.is_finite()));
    let dev = candle_core::Device::Cpu;
    let mapped = TrainedModel::load(&train::model_path(&out), &dev).unwrap();
    assert!(mapped.model.config().metre_map);
    // Measured on snippets of any length; the BCE split by metre adds up to the whole.
    let r = segue::eval::evaluate_lstm_vae(&mapped, &c, &snippets_of(6), &mut |_| {}).unwrap();
    let m = r.bce_per_cell_by_metre;
    assert_eq!((m.four_four_snippets, m.other_snippets), (r.snippets, 0));
    assert!(
        (m.in_four_four - r.bce_per_cell_mean_z).abs() < 1e-6,
        "{m:?}"
    );
    // The same weights, told to count bars from the start (written without the settings they
    // were trained with, which would refuse the manifest's).
    let copy = dir.path().join("copy.safetensors");
    let tensors = candle_core::safetensors::load(train::model_path(&out), &dev).unwrap();
    candle_core::safetensors::save(&tensors, &copy).unwrap();
    let manifest = std::fs::read_to_string(train::model_path(&out).with_extension("json"))
        .unwrap()
        .replace("\"metre_map\": true", "\"metre_map\": false");
    std::fs::write(copy.with_extension("json"), manifest).unwrap();
    let from_start = TrainedModel::load(&copy, &dev).unwrap();
    assert!(!from_start.model.config().metre_map);
    // In 4/4 both count the same bars; in 3/4 only the map knows where they are, and the
    // generated piece goes on in the primer's metre.
    let piece = |model: &TrainedModel, primer: &segue::roll::Roll| {
        generated(model, primer, Mode::Continue, 24, 3)
            .roll
            .binary()
    };
    let four = c.pieces[0].roll.clone();
    assert!(four.meters().is_empty());
    assert_eq!(piece(&mapped, &four), piece(&from_start, &four));
    let waltz = StepMeter {
        step: 0,
        meter: Meter {
            numerator: 3,
            denominator: 4,
        },
    };
    let mut three = four.clone();
    three.set_meters(vec![waltz]);
    assert!(
        piece(&mapped, &three) != piece(&from_start, &three),
        "the metre map changed nothing"
    );
    // The same corpus in 3/4: every snippet counts in the other metres.
    let mut waltzes = c.clone();
    for piece in &mut waltzes.pieces {
        piece.roll.set_meters(vec![waltz]);
    }
    let r =
        segue::eval::evaluate_lstm_vae(&mapped, &waltzes, &snippets_of(6), &mut |_| {}).unwrap();
    let m = r.bce_per_cell_by_metre;
    assert_eq!((m.four_four_snippets, m.other_snippets), (0, r.snippets));
    assert!(
        (m.in_other_metres - r.bce_per_cell_mean_z).abs() < 1e-6,
        "{m:?}"
    );
    // Only the primer's head (8 steps here) counts: a change of metre after it is not part of
    // the piece generated, which goes on in 3/4.
    let mut later_four = three.clone();
    later_four.set_meters(vec![
        waltz,
        StepMeter {
            step: 12,
            meter: Meter::COMMON,
        },
    ]);
    let later = generated(&mapped, &later_four, Mode::Continue, 24, 3);
    assert_eq!(later.roll.binary(), piece(&mapped, &three));
    assert_eq!(later.roll.meters(), &[waltz]);
    // Primed from the middle of the piece, the bars are the piece's: from a bar line it is
    // the piece cut there; from inside a bar, not (a cut restarts the bars).
    let from = |primer: &segue::roll::Roll, start: usize| {
        let opts = GenerateOptions {
            steps: 24,
            primer_steps: 8,
            primer_start: start,
            seed: 3,
            ..GenerateOptions::default()
        };
        let z = generate::composer_code(&mapped, 0, 1.0).unwrap();
        let cancel = AtomicBool::new(false);
        generate::generate(&mapped.model, primer, &z, &z, &opts, &mut |_| {}, &cancel).unwrap()
    };
    let cut = |start: usize| three.slice(start, three.steps() - start);
    let on_bar_line = from(&three, 12).roll;
    assert_eq!(on_bar_line.binary(), from(&cut(12), 0).roll.binary());
    assert_eq!(
        on_bar_line.slice(0, 8).binary(),
        cut(12).slice(0, 8).binary()
    );
    let inside = from(&three, 17);
    // The roll returned starts its bars afresh; it says where it lay in the bars it was
    // generated in (the piece's map up to the primer's end, from the primer's first step).
    assert_eq!(inside.bars, (vec![waltz], 17));
    assert_eq!(from(&later_four, 0).bars, (vec![waltz], 0));
    assert_eq!(from(&later_four, 8).bars, (later_four.meters().to_vec(), 8));
    let inside = inside.roll;
    assert_eq!(inside.slice(0, 8).binary(), cut(17).slice(0, 8).binary());
    assert!(
        inside.binary() != from(&cut(17), 0).roll.binary(),
        "the bars were cut"
    );
    // A fine-tune goes on counting bars as its model does, and one without the metre input
    // cannot read the map.
    o.config.metre_map = false;
    o.fine_tune_from(train::model_path(&out), Some(mapped.model.config()));
    assert!(o.config.metre_map);
    o.config.metre = 0;
    o.init = None;
    let err = refused(&c, &o, &dir.path().join("no metre"));
    assert!(err.to_string().contains("metre map"), "{err}");
}

/// `--init`: a run starts from a trained model's weights (at a learning rate too small to move
/// them, the model it writes after one step is that model), and refuses one of other sizes.
/// `--mmd-scale` widens the MMD term's target: the same codes are further from a narrow one.
#[test]
fn a_run_starts_from_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(&dir.path().join("c"));
    let c = corpus(&dir.path().join("c"));
    let first = dir.path().join("first");
    run(&c, &tiny_options(4), &first, false);
    let trained = train::model_path(&first);
    let mut o = tiny_options(1);
    o.init = Some(trained.clone());
    o.learning_rate = 1e-12;
    o.mmd_weight = 1.0;
    o.mmd_scale = 3.0;
    let next = dir.path().join("next");
    let wide = run(&c, &o, &next, false);
    let dev = candle_core::Device::Cpu;
    let ta = candle_core::safetensors::load(&trained, &dev).unwrap();
    let tb = candle_core::safetensors::load(train::model_path(&next), &dev).unwrap();
    assert_eq!(ta.len(), tb.len());
    for (name, t) in &ta {
        let diff = (t - &tb[name]).unwrap().abs().unwrap();
        let most = diff.flatten_all().unwrap().max(0).unwrap();
        assert!(most.to_scalar::<f32>().unwrap() < 1e-5, "{name} moved");
    }
    // The same codes against draws from N(0, I): a smaller discrepancy.
    o.mmd_scale = 1.0;
    let narrow = run(&c, &o, &dir.path().join("narrow"), false);
    assert!(
        narrow[0].mmd < wide[0].mmd,
        "{} {}",
        narrow[0].mmd,
        wide[0].mmd
    );
    // A corpus of other composers (one renamed here) trains from it too.
    let mine = dir.path().join("mine");
    write_corpus(&mine);
    std::fs::rename(mine.join("arps"), mine.join("my arpeggios")).unwrap();
    let mine = corpus(&mine);
    assert_ne!(mine.composers, c.composers);
    let from = dir.path().join("from");
    let from_shipped = run(&mine, &o, &from, false);
    assert!(from_shipped[0].recon.is_finite());
    // The composers it knows start at its stored codes; the renamed one does not.
    let state = candle_core::safetensors::load(from.join("train-state.safetensors"), &dev).unwrap();
    let centres = state["style.centres"].to_vec2::<f32>().unwrap();
    let model = TrainedModel::load(&trained, &dev).unwrap();
    let stored = |name: &str| {
        model.manifest.latents[model.composer_index(name).unwrap()]
            .mean
            .clone()
    };
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    for (row, name) in centres.iter().zip(&mine.composers) {
        match name.as_str() {
            "my arpeggios" => assert!(!close(row, &stored("arps"))),
            known => assert!(close(row, &stored(known)), "{known}"),
        }
    }
    // On the corpus it was trained on, another seed would hold out pieces it learned: refused
    // before a run folder is made.
    let mut reseeded = tiny_options(1);
    reseeded.seed += 1;
    reseeded.init = Some(trained.clone());
    let out = dir.path().join("reseeded");
    let err = refused(&c, &reseeded, &out).to_string();
    assert!(err.contains("held out") && err.contains("seed"), "{err}");
    assert!(!out.exists(), "a refused run left its folder");
    // A model of other sizes is refused, naming the file.
    let mut other = tiny_options(1);
    other.config.hidden = 8;
    other.init = Some(trained);
    let err = refused(&c, &other, &dir.path().join("other")).to_string();
    assert!(
        err.contains("lstm-vae.safetensors") && err.contains("sizes"),
        "{err}"
    );
}
