//! The paper's other models on a tiny synthetic corpus with tiny sizes: gradients reach every
//! weight, training is reproducible by seed and resumes exactly, files load back and refuse
//! damage, and each model's generation works and is reproducible.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::write_tiny_corpus;
use segue::dataset::{Corpus, LoadOptions};
use segue::generate::{GenerateOptions, Mode};
use segue::meter::WindowBars;
use segue::models::dcgan::Cells;
use segue::models::transformer::StackConfig;
use segue::roll::QuantizeOptions;
use segue::train_loop::{Control, LoopEvent, LoopMetrics, LoopOptions, TrainFn};
use segue::{ascent, classify, gan, tvae};

/// The tiny three-composer corpus, written into a fresh temporary folder (kept alive by the
/// returned handle) and loaded.
fn tiny_corpus() -> (tempfile::TempDir, Corpus) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_corpus(dir.path());
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: None,
    };
    let c = Corpus::load(dir.path(), &opts, &|_, _| {}).unwrap();
    (dir, c)
}

fn tiny_stack(max_len: usize, width: usize) -> StackConfig {
    StackConfig {
        width,
        heads: 4,
        feed_forward: 32,
        layers: 2,
        max_len,
        dropout: 0.1,
    }
}

fn tiny_loop(steps: usize, snippet: usize) -> LoopOptions {
    let mut o = LoopOptions::new(steps, snippet);
    o.valid_fraction = 0.34;
    o.eval_every = 2;
    o.checkpoint_every = 2;
    o.learning_rate = 1e-3;
    o
}

fn collect(seen: &mut Vec<LoopMetrics>) -> impl FnMut(LoopEvent) + '_ {
    |e| {
        if let LoopEvent::Metrics(m) = e {
            seen.push(m);
        }
    }
}

fn classifier_options(steps: usize) -> classify::ClassifierOptions {
    let mut o = classify::ClassifierOptions::default();
    o.config.stack = tiny_stack(8, 32);
    o.train = tiny_loop(steps, 32);
    o.train.transpose = 2;
    o
}

/// A DCGAN of 2 channels and an 8-d z, trained 2 steps.
fn tiny_gan_options() -> gan::GanOptions {
    let mut o = gan::GanOptions::default();
    o.config.generator_channels = 2;
    o.config.discriminator_channels = 2;
    o.config.latent = 8;
    o.train = tiny_loop(2, 128);
    o.train.valid_per_composer = 1;
    o
}

/// Trains on the CPU with `train`, returning the validation metrics seen.
fn train_with<O>(
    train: TrainFn<O>,
    c: &Corpus,
    o: &O,
    out: &Path,
    resume: bool,
) -> Vec<LoopMetrics> {
    let mut seen = Vec::new();
    train(
        c,
        o,
        out,
        &Device::Cpu,
        resume,
        &Control::default(),
        &mut collect(&mut seen),
    )
    .unwrap();
    seen
}

/// The error of a training run that must be refused.
fn refused<O>(train: TrainFn<O>, c: &Corpus, o: &O, out: &Path) -> segue::Error {
    refused_run(train, c, o, out, false)
}

/// The error of a resumed run that must be refused.
fn refused_to_resume<O>(train: TrainFn<O>, c: &Corpus, o: &O, out: &Path) -> segue::Error {
    refused_run(train, c, o, out, true)
}

fn refused_run<O>(train: TrainFn<O>, c: &Corpus, o: &O, out: &Path, resume: bool) -> segue::Error {
    train(
        c,
        o,
        out,
        &Device::Cpu,
        resume,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap_err()
}

fn train_classifier(
    c: &Corpus,
    o: &classify::ClassifierOptions,
    out: &Path,
    resume: bool,
) -> Vec<LoopMetrics> {
    train_with(classify::train_classifier, c, o, out, resume)
}

/// A tiny classifier of 3 composers, with the metre input and the statistics head as told,
/// its weights drawn from `seed`.
fn tiny_classifier(
    metre_map: bool,
    statistics: bool,
    seed: u64,
) -> (VarMap, segue::models::classifier::ComposerClassifier) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut cfg = segue::models::classifier::Config::studio(3);
    cfg.stack = tiny_stack(8, 32);
    cfg.metre_map = metre_map;
    cfg.statistics = statistics;
    let model = segue::models::classifier::ComposerClassifier::new(&cfg, vb).unwrap();
    segue::train_loop::seeded_init(&varmap, seed).unwrap();
    (varmap, model)
}

#[test]
fn gradients_reach_every_transformer_weight() {
    // candle's fused layer norm and softmax have no backward pass; the stack must not use them.
    for (metre_map, statistics) in [(false, false), (true, false), (false, true)] {
        let (varmap, model) = tiny_classifier(metre_map, statistics, 3);
        let cells: Vec<f32> = (0..2 * 16 * 128)
            .map(|k| ((k * 7919 % 1000) as f32) / 1000.0)
            .collect();
        let x = Tensor::from_vec(cells, (2, 16, 128), &Device::Cpu).unwrap();
        let bars = WindowBars::common(2, 16);
        let loss = model
            .forward(&x, &bars)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let names = nonzero_gradients(&varmap, &grads);
        assert_eq!(
            names.iter().any(|n| n.contains("within_bar")),
            metre_map,
            "{names:?}"
        );
        assert_eq!(
            names.iter().any(|n| n.contains("statistics_head.weight")),
            statistics,
            "{names:?}"
        );
    }
}

#[test]
fn the_metre_input_and_statistics_head_leave_the_other_weights_drawn_as_without_them() {
    // The experiment's control is the model without the input, trained from the same seed:
    // the two must start from the same weights but for the new ones.
    let drawn = |metre_map: bool, statistics: bool| {
        let (varmap, _) = tiny_classifier(metre_map, statistics, 7);
        let data = varmap.data().lock().unwrap();
        data.iter()
            .map(|(name, var)| {
                let values = var
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                (name.clone(), values)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let plain = drawn(false, false);
    for (told, added) in [(drawn(true, false), 2), (drawn(false, true), 4)] {
        assert_eq!(told.len(), plain.len() + added);
        for (name, values) in &plain {
            assert_eq!(&told[name], values, "{name} drawn otherwise");
        }
    }
}

/// The names of `varmap`'s weights, each checked to have a nonzero gradient in `grads`; a
/// `running_*` statistic is checked to have none (no optimiser may move it).
fn nonzero_gradients(varmap: &VarMap, grads: &candle_core::backprop::GradStore) -> Vec<String> {
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        if name.rsplit('.').next().unwrap().starts_with("running") {
            assert!(grads.get(var).is_none(), "a gradient for {name}");
            continue;
        }
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "zero gradient for {name}");
    }
    data.keys().cloned().collect()
}

/// The tiny corpus with every piece's notes replaced by those of the first, each composer's
/// pieces in a metre of its own (4/4, 3/4, 5/4): only the metre tells the composers apart.
fn metre_only_corpus() -> (tempfile::TempDir, Corpus) {
    let (dir, mut c) = tiny_corpus();
    let notes = c.pieces[0].roll.clone();
    for piece in &mut c.pieces {
        let mut roll = notes.clone();
        let numerator = [4, 3, 5][piece.composer];
        roll.set_meters(vec![segue::meter::StepMeter {
            step: 0,
            meter: segue::midi::Meter {
                numerator,
                denominator: 4,
            },
        }]);
        piece.roll = roll;
    }
    (dir, c)
}

#[test]
fn a_classifier_told_the_metre_reads_each_pieces_bars() {
    let (dir, c) = metre_only_corpus();
    let held_out = |metre_map: bool, name: &str| {
        let mut o = classifier_options(60);
        o.config.metre_map = metre_map;
        o.train.eval_every = 60;
        o.train.checkpoint_every = 60;
        let seen = train_classifier(&c, &o, &dir.path().join(name), false);
        seen.last().unwrap().valid.clone().unwrap()["accuracy"]
    };
    // Training and validation give each snippet its piece's bars: told them, it tells the
    // composers apart; reading the notes alone, it cannot.
    let told = held_out(true, "told");
    let untold = held_out(false, "untold");
    assert!(told > 0.95, "told the metre: {told}");
    assert!(untold < 0.7, "notes alone: {untold}");

    // Classifying a roll reads the roll's own metre map, window by window.
    let clf = classify::load(
        &dir.path().join("told/classifier.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert!(clf.config.metre_map);
    for piece in &c.pieces {
        let v = classify::classify_roll(&clf, &piece.roll, 32, 16).unwrap();
        assert_eq!(v.ranked()[0], piece.composer);
        let mut plain = piece.roll.clone();
        plain.set_meters(Vec::new());
        let v = classify::classify_roll(&clf, &plain, 32, 16).unwrap();
        assert_eq!(v.ranked()[0], 0, "no metre map is 4/4");
    }
    let report = classify::evaluate(&clf, &c, 4, &mut |_, _| {}).unwrap();
    assert_eq!(report.accuracy, 1.0, "{report:?}");
    // Each window is read at its own place in the piece's bars: the window at step 5 of a
    // 3/4 piece starts 5 steps into a bar, not on a bar line (which would change its verdict).
    let waltz = &c.pieces.iter().find(|p| p.composer == 1).unwrap().roll;
    let v = classify::classify_roll(&clf, waltz, 32, 5).unwrap();
    assert_eq!(v.windows[1].0, 5);
    let window = Tensor::from_vec(
        {
            let mut data = vec![0f32; 32 * 128];
            waltz.window_f32(5, 32, &mut data);
            data
        },
        (1, 32, 128),
        &Device::Cpu,
    )
    .unwrap();
    let at = |start: usize| {
        let bars = WindowBars::new(32, [(waltz.meters(), start)]);
        classify::probabilities(&clf.model, &window, &bars).unwrap()[0].clone()
    };
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(close(&v.windows[1].1, &at(5)));
    assert!(
        !close(&at(5), &at(0)),
        "the place in the bar changes nothing"
    );
    // A window cut from the piece is read where it lay in the piece's bars.
    let cut = waltz.slice(5, 32);
    let placed = classify::classify_roll_in(&clf, &cut, (waltz.meters(), 5), 32, 32).unwrap();
    assert!(close(&placed.windows[0].1, &at(5)));
    // Training snippets get their pieces' bars from where they start.
    let refs = [segue::dataset::SnippetRef {
        piece: c.pieces.iter().position(|p| p.composer == 1).unwrap(),
        start: 7,
    }];
    let bars = segue::train_loop::window_bars(&c, &refs, 32);
    assert_eq!(
        (bars.at(0, 0), bars.at(0, 5), bars.at(0, 6)),
        ((7, 12), (0, 12), (1, 12))
    );

    // A run resumed with the metre input switched is refused, naming what differs.
    let mut other = classifier_options(62);
    other.train.eval_every = 60;
    other.train.checkpoint_every = 60;
    let err = refused_to_resume(
        classify::train_classifier,
        &c,
        &other,
        &dir.path().join("told"),
    )
    .to_string();
    assert!(
        err.contains("metre_map: the checkpoint's true, this run's absent"),
        "{err}"
    );

    // Bars of another shape than the roll's are refused.
    let x = Tensor::zeros((2, 32, 128), DType::F32, &Device::Cpu).unwrap();
    let err = clf
        .model
        .forward(&x, &WindowBars::common(1, 32))
        .unwrap_err();
    assert!(
        err.to_string().contains("bar positions of 1 windows"),
        "{err}"
    );
}

#[test]
fn classifier_trains_reproducibly_resumes_and_classifies() {
    let (dir, c) = tiny_corpus();
    let a = train_classifier(&c, &classifier_options(6), &dir.path().join("a"), false);
    let b = train_classifier(&c, &classifier_options(6), &dir.path().join("b"), false);
    assert_eq!(a.len(), 6);
    let same = |x: &[LoopMetrics], y: &[LoopMetrics]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|(p, q)| p.step == q.step && p.train == q.train && p.valid == q.valid)
    };
    assert!(same(&a, &b), "same seed, different curves");
    let mut other = classifier_options(6);
    other.train.seed = 2;
    let o = train_classifier(&c, &other, &dir.path().join("o"), false);
    assert!(!same(&a, &o), "another seed gave the same curve");
    // Weight decay changes the curve; an impossible dropout is refused before any work.
    let mut decayed = classifier_options(6);
    decayed.weight_decay = 0.05;
    let d = train_classifier(&c, &decayed, &dir.path().join("d"), false);
    assert!(!same(&a, &d), "weight decay had no effect");
    // So does transposing each snippet (the options above shift them by up to 2 semitones).
    let mut plain = classifier_options(6);
    plain.train.transpose = 0;
    let t = train_classifier(&c, &plain, &dir.path().join("t"), false);
    assert!(!same(&a, &t), "transposition had no effect");
    let mut bad = classifier_options(6);
    bad.config.stack.dropout = 1.5;
    let err = refused(
        classify::train_classifier,
        &c,
        &bad,
        &dir.path().join("bad"),
    );
    assert!(err.to_string().contains("dropout 1.5"), "{err}");

    // A folder another run trains in is refused, and left as it was.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    let lock = segue::train_loop::lock_run_folder(&busy).unwrap();
    let err = refused(
        classify::train_classifier,
        &c,
        &classifier_options(2),
        &busy,
    );
    assert!(matches!(err, segue::Error::RunInUse { .. }), "{err}");
    let left: Vec<_> = std::fs::read_dir(&busy).unwrap().collect();
    assert_eq!(left.len(), 1, "only the lock file");
    drop(lock);

    let r = dir.path().join("r");
    let first = train_classifier(&c, &classifier_options(4), &r, false);
    let rest = train_classifier(&c, &classifier_options(6), &r, true);
    let mut joined = first;
    joined.extend(rest);
    assert!(same(&a, &joined), "resumed curve differs");
    // Resuming with batches drawn otherwise is refused.
    let mut by_piece = classifier_options(8);
    by_piece.train.by_piece = true;
    let err = refused_to_resume(classify::train_classifier, &c, &by_piece, &r).to_string();
    assert!(
        err.contains("--by-piece true (the checkpoint's is false)"),
        "{err}"
    );
    // Resuming on a corpus of one more composer is refused for the corpus, not for the
    // classes it changes.
    let more = tempfile::tempdir().unwrap();
    write_tiny_corpus(more.path());
    std::fs::create_dir(more.path().join("waltzes")).unwrap();
    let notes: Vec<(u64, u64, u8, u8)> = (0..48).map(|i| (i * 72, i * 72 + 60, 50, 80)).collect();
    std::fs::write(
        more.path().join("waltzes/w.mid"),
        common::simple(96, &notes),
    )
    .unwrap();
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: None,
    };
    let bigger = Corpus::load(more.path(), &opts, &|_, _| {}).unwrap();
    assert_eq!(bigger.composers.len(), 4);
    let err = refused_to_resume(
        classify::train_classifier,
        &bigger,
        &classifier_options(8),
        &r,
    );
    assert!(
        err.to_string().contains("trained on another corpus"),
        "{err}"
    );
    // So is each other change to what is drawn (a new seed would deal the held-out pieces
    // anew, so the run would train on pieces it held out).
    type Change = fn(&mut LoopOptions);
    let changes: [(&str, Change); 4] = [
        ("--seed 99 (", |o| o.seed = 99),
        ("--batches 2 (", |o| o.batches_per_step = 2),
        ("--transpose 1 (", |o| o.transpose = 1),
        ("--note-dropout 0.5 (", |o| o.note_dropout = 0.5),
    ];
    for (said, change) in changes {
        let mut other = classifier_options(8);
        change(&mut other.train);
        let err = refused_to_resume(classify::train_classifier, &c, &other, &r).to_string();
        assert!(err.contains(said), "{said}: {err}");
    }

    let clf = classify::load(&dir.path().join("a/classifier.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(clf.manifest.composers, vec!["arps", "chords", "scales"]);
    // A corpus other than the shared one: its files' licences, not piano-midi.de's credits.
    assert!(clf.manifest.credits.is_empty());
    assert!(
        clf.manifest.licence.starts_with("not known to Segue"),
        "{}",
        clf.manifest.licence
    );
    let roll = &c.pieces[0].roll;
    let v = classify::classify_roll(&clf, roll, 32, 16).unwrap();
    assert!(v.windows.len() > 1);
    assert_eq!(v.window, 32);
    assert_eq!(v.windows[1].0, 16);
    // More windows than one batch of 32 (a hop of 1): each judged as it is on its own.
    let many = classify::classify_roll(&clf, roll, 32, 1).unwrap();
    assert!(many.windows.len() > 40, "{}", many.windows.len());
    for &k in &[0, 31, 32, many.windows.len() - 1] {
        let (start, p) = &many.windows[k];
        let alone = classify::classify_roll(&clf, &roll.slice(*start, 32), 32, 32).unwrap();
        for (a, b) in p.iter().zip(&alone.windows[0].1) {
            assert!((a - b).abs() < 1e-5, "window {k}: {a} {b}");
        }
    }
    // The whole-roll verdict weighs each window by the steps of the roll it holds: windows
    // at 0, 32 and 64 of a 66-step roll weigh 32, 32 and 2.
    let odd = roll.slice(0, 66);
    let v = classify::classify_roll(&clf, &odd, 32, 32).unwrap();
    assert_eq!(
        v.windows.iter().map(|w| w.0).collect::<Vec<_>>(),
        [0, 32, 64]
    );
    for (c, overall) in v.overall.iter().enumerate() {
        let weighted =
            (v.windows[0].1[c] * 32.0 + v.windows[1].1[c] * 32.0 + v.windows[2].1[c] * 2.0) / 66.0;
        assert!((overall - weighted).abs() < 1e-5, "{overall} {weighted}");
    }
    for (_, p) in &v.windows {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert!((v.overall.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // A roll shorter than a window is read at its own length, not padded with silence to a
    // window (which reads as a sparser piece).
    let short = roll.slice(0, 20);
    let v = classify::classify_roll(&clf, &short, 32, 32).unwrap();
    assert_eq!(v.window, 20);
    assert_eq!(v.windows.len(), 1);
    let padded = classify::classify_roll(&clf, &roll.slice(0, 20).slice(0, 32), 32, 32).unwrap();
    assert_eq!(padded.window, 32);
    let moved = (v.overall.iter().zip(&padded.overall)).any(|(a, b)| (a - b).abs() > 1e-4);
    assert!(moved, "{:?} {:?}", v.overall, padded.overall);
    let report = classify::evaluate(&clf, &c, 4, &mut |_, _| {}).unwrap();
    let total: usize = report.confusion.iter().flatten().sum();
    assert_eq!(total, report.snippets);
    assert!(report.snippets > 0 && report.pieces == 3);
    let counted: usize = report.pieces_right.iter().map(|&(n, _)| n).sum();
    assert_eq!(counted, report.pieces);
    let right: usize = report.pieces_right.iter().map(|&(_, r)| r).sum();
    assert!((report.piece_accuracy - right as f64 / 3.0).abs() < 1e-12);
    assert!((0.0..=1.0).contains(&report.piece_balanced_accuracy));
    // Held-out snippets of another length: each judged as `classify_roll` judges a roll that
    // long; the window's own length is the default's figures; no steps is refused.
    let judged = |steps| classify::judge_held_out(&clf, &c, 4, steps, &mut |_, _| {});
    let same = judged(Some(32)).unwrap().report(c.composers.clone());
    assert_eq!(same.confusion, report.confusion);
    let short = judged(Some(12)).unwrap().report(c.composers.clone());
    assert!(short.snippets > report.snippets, "{}", short.snippets);
    let long = judged(Some(48)).unwrap().report(c.composers.clone());
    assert!(long.snippets > 0 && long.snippets < report.snippets);
    let err = judged(Some(0)).unwrap_err().to_string();
    assert!(err.contains("0 steps"), "{err}");
}

/// Steps on shorter windows (`short_windows`) change the curve, reproducibly from the seed;
/// a share outside 0..=1 is refused before any work.
#[test]
fn a_classifier_can_train_on_shorter_windows_too() {
    let (dir, c) = tiny_corpus();
    let options = |share: f64| {
        let mut o = classifier_options(4);
        o.config.stack = tiny_stack(32, 32);
        o.train = tiny_loop(4, 128);
        o.short_windows = share;
        o
    };
    let curve = |o: &classify::ClassifierOptions, name: &str| {
        let m = train_classifier(&c, o, &dir.path().join(name), false);
        m.iter()
            .map(|l| format!("{:?}", l.train))
            .collect::<Vec<_>>()
    };
    let whole = curve(&options(0.0), "whole");
    let short = curve(&options(1.0), "short");
    assert_eq!(
        short,
        curve(&options(1.0), "again"),
        "same seed, same curve"
    );
    assert_ne!(whole, short);
    // Every step of the second run trained on a window of 64 to 128 steps, not all whole.
    let m = train_classifier(&c, &options(1.0), &dir.path().join("windows"), false);
    let windows: Vec<f64> = m
        .iter()
        .filter_map(|l| l.train.get("window").copied())
        .collect();
    assert_eq!(windows.len(), 4);
    assert!(
        windows.iter().all(|w| (64.0..=128.0).contains(w)),
        "{windows:?}"
    );
    assert!(windows.iter().any(|&w| w < 128.0), "{windows:?}");
    // With the metre and the statistics head, which read the bars of the window trained on.
    let mut told = options(1.0);
    told.config.metre_map = true;
    told.config.statistics = true;
    let m = train_classifier(&c, &told, &dir.path().join("told"), false);
    assert_eq!(m.len(), 4);
    let err = refused(
        classify::train_classifier,
        &c,
        &options(1.5),
        &dir.path().join("bad"),
    );
    assert!(err.to_string().contains("at most 1"), "{err}");
}

#[test]
fn a_classifier_with_longer_tokens_trains_and_judges_any_window() {
    let (dir, c) = tiny_corpus();
    // Two steps per token: a 32-step snippet is 16 tokens, twice what 8 positions allow at 1.
    let mut o = classifier_options(2);
    o.config.patch_steps = 2;
    o.config.stack.max_len = 16;
    train_classifier(&c, &o, &dir.path().join("a"), false);
    let clf = classify::load(&dir.path().join("a/classifier.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(clf.config.patch_steps, 2);
    assert_eq!(classify::window_steps(&clf), 32);
    // A window that is not a whole number of tokens is rounded up to one.
    let v = classify::classify_roll(&clf, &c.pieces[0].roll, 7, 7).unwrap();
    assert_eq!(v.window, 8);
    // So is a roll shorter than a window read at its own length.
    let v = classify::classify_roll(&clf, &c.pieces[0].roll.slice(0, 7), 32, 32).unwrap();
    assert_eq!(v.window, 8);
    assert!((v.overall.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // A snippet that does not split into tokens is refused before any work.
    let mut odd = classifier_options(2);
    odd.config.patch_steps = 3;
    odd.config.stack.max_len = 16;
    let err = refused(classify::train_classifier, &c, &odd, &dir.path().join("b"));
    assert!(err.to_string().contains("multiple of 3"), "{err}");
    odd.config.patch_steps = 0;
    let err = refused(classify::train_classifier, &c, &odd, &dir.path().join("c"));
    assert!(err.to_string().contains("at least 1 step"), "{err}");
}

#[test]
fn balanced_accuracy_counts_every_class_once() {
    // 9 of 10 right in a big class, 0 of 1 in a small one, one class absent: plain 9/11,
    // balanced (0.9 + 0) / 2.
    let b = classify::balanced_accuracy(&[(10, 9), (1, 0), (0, 0)]);
    assert!((b - 0.45).abs() < 1e-12, "{b}");
    assert_eq!(classify::balanced_accuracy(&[(0, 0)]), 0.0);
    assert_eq!(classify::balanced_accuracy(&[(2, 2), (4, 4)]), 1.0);
}

#[test]
fn classifier_learns_the_tiny_composers() {
    let (dir, c) = tiny_corpus();
    let mut o = classifier_options(150);
    // Transposition is what lets it generalise from two pieces per composer.
    o.train.transpose = 3;
    o.train.eval_every = 150;
    let seen = train_classifier(&c, &o, &dir.path().join("a"), false);
    let valid = seen.last().unwrap().valid.clone().unwrap();
    let train: Vec<f64> = seen
        .iter()
        .rev()
        .take(10)
        .map(|m| m.train["accuracy"])
        .collect();
    assert!(
        valid["accuracy"] > 0.9,
        "held-out accuracy {valid:?}, train {train:?}"
    );
}

#[test]
fn damaged_model_files_are_refused_with_the_file_named() {
    let (dir, c) = tiny_corpus();
    train_classifier(&c, &classifier_options(2), &dir.path().join("a"), false);
    let file = dir.path().join("a/classifier.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(
        dir.path().join("a/classifier.json"),
        dir.path().join("cut.json"),
    )
    .unwrap();
    let err = classify::load(&cut, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
    // The same weights beside a manifest with one value changed: (file, loading error).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/classifier.json")).unwrap())
            .unwrap();
    // The same tensors without the settings they were trained with (as earlier versions wrote
    // them), so that the sizes are checked against the tensors themselves.
    let plain = dir.path().join("plain.safetensors");
    candle_core::safetensors::save(
        &candle_core::safetensors::load(&file, &Device::Cpu).unwrap(),
        &plain,
    )
    .unwrap();
    let tampered_from = |weights: &Path, name: &str, pointer: &str, value: serde_json::Value| {
        let mut m = manifest.clone();
        *m.pointer_mut(pointer).unwrap() = value;
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::copy(weights, &path).unwrap();
        std::fs::write(path.with_extension("json"), m.to_string()).unwrap();
        let err = classify::load(&path, &Device::Cpu).unwrap_err().to_string();
        (path, err)
    };
    let tampered = |name: &str, pointer: &str, value: serde_json::Value| {
        tampered_from(&file, name, pointer, value)
    };
    // A setting that changes no tensor's shape, against the one the weights record.
    assert_eq!(manifest["config"]["stack"]["heads"], 4);
    let (_, err) = tampered("heads", "/config/stack/heads", serde_json::json!(1));
    assert!(
        err.contains("heads.json") && err.contains("trained with stack.heads 4, not 1"),
        "{err}"
    );
    // One the manifest says and the weights record by leaving it out, at its default.
    assert!(manifest["config"].get("metre_map").is_none());
    let (_, err) = tampered("mapped", "/config", {
        let mut c = manifest["config"].clone();
        c["metre_map"] = true.into();
        c
    });
    assert!(
        err.contains("trained with metre_map at its default, not true"),
        "{err}"
    );
    // Weights written without them are read as before.
    std::fs::write(plain.with_extension("json"), manifest.to_string()).unwrap();
    assert!(classify::load(&plain, &Device::Cpu).is_ok());
    // Absurd sizes are refused from the manifest, before a model of that size is built:
    // sizes no run trains, and sizes larger than the weights file holds.
    let (_, err) = tampered(
        "absurd",
        "/config/stack/layers",
        serde_json::json!(1u64 << 40),
    );
    assert!(
        err.contains("absurd.json") && err.contains("layers is at most 48"),
        "{err}"
    );
    let (huge, err) = tampered_from(&plain, "huge", "/config/stack/layers", 48.into());
    assert!(
        err.contains("huge.json") && err.contains("at least") && err.contains("holds"),
        "{err}"
    );
    // Converting checks the file as its kind first, and writes nothing when it is wrong.
    let converted = dir.path().join("converted.safetensors");
    let err = segue::models::saved::convert_any(&huge, &converted, DType::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("huge.json"), "{err}");
    assert!(!converted.exists());
    // Two composers alike but for case could not be told apart by name.
    let first = manifest["composers"][0].as_str().unwrap().to_uppercase();
    let (_, err) = tampered("twins", "/composers/1", serde_json::json!(first));
    assert!(
        err.contains("twins.json") && err.contains("differ only in case"),
        "{err}"
    );
    // Snippets of 0 steps would cut rolls into nothing.
    let (_, err) = tampered(
        "empty",
        "/training/train/snippet_steps",
        serde_json::json!(0),
    );
    assert!(
        err.contains("empty.json") && err.contains("0 steps"),
        "{err}"
    );
    // So is an input embedding too large for the file (the stack itself small).
    let (_, err) = tampered_from(
        &plain,
        "patch",
        "/config/patch_steps",
        serde_json::json!(50_000_000),
    );
    assert!(err.contains("patch.json") && err.contains("holds"), "{err}");
    // A weight that is not a finite number is refused, the tensor and the file named.
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let name = "head.weight".to_string();
    let head = tensors[&name].clone();
    let nan = Tensor::full(f32::NAN, head.dims(), &Device::Cpu)
        .unwrap()
        .to_dtype(head.dtype())
        .unwrap();
    tensors.insert(name.clone(), nan);
    let damaged = dir.path().join("nan.safetensors");
    candle_core::safetensors::save(&tensors, &damaged).unwrap();
    std::fs::copy(
        dir.path().join("a/classifier.json"),
        damaged.with_extension("json"),
    )
    .unwrap();
    let err = classify::load(&damaged, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nan.safetensors") && err.contains(&name) && err.contains("not finite"),
        "{err}"
    );
    // Finite weights too large for the sums load, but their verdict is refused rather than
    // printed as NaN percents.
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    for t in tensors.values_mut() {
        let huge = Tensor::full(1e30f32, t.dims(), &Device::Cpu).unwrap();
        *t = huge.to_dtype(t.dtype()).unwrap();
    }
    let overflowing = dir.path().join("huge-values.safetensors");
    candle_core::safetensors::save(&tensors, &overflowing).unwrap();
    std::fs::copy(
        dir.path().join("a/classifier.json"),
        overflowing.with_extension("json"),
    )
    .unwrap();
    let clf = classify::load(&overflowing, &Device::Cpu).unwrap();
    let err = classify::classify_roll(&clf, &c.pieces[0].roll, 32, 32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("huge-values.safetensors") && err.contains("not numbers"),
        "{err}"
    );
    // Stored as f16 they would be infinite: refused, saying so (not "a run diverged").
    let half = dir.path().join("half.safetensors");
    let err = segue::models::saved::convert_any(&overflowing, &half, DType::F16)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("half.safetensors") && err.contains("values too large for F16"),
        "{err}"
    );
    assert!(!half.exists());
    // Weights without their manifest say so.
    std::fs::remove_file(damaged.with_extension("json")).unwrap();
    let err = classify::load(&damaged, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nan.json") && err.contains("manifest beside them"),
        "{err}"
    );
    // A classifier file is not a Transformer VAE.
    let err = tvae::load(&file, &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("classifier") && err.contains("classifier.json"),
        "{err}"
    );
}

#[test]
fn transformer_vae_trains_and_generates_every_mode() {
    let (dir, c) = tiny_corpus();
    let mut o = tvae::TvaeOptions::default();
    o.config.stack = tiny_stack(16, 128);
    o.train = tiny_loop(4, 16);
    o.beta.delay = 1;
    o.beta.ramp = 2;
    let out = dir.path().join("t");
    let seen = train_with(tvae::train_tvae, &c, &o, &out, false);
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|m| m.train["recon_per_cell"].is_finite()));
    let model = tvae::load(&out.join("transformer-vae.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(model.manifest.latents.len(), 3);
    let a = tvae::composer_code(&model, 0, 1.0).unwrap();
    let b = tvae::composer_code(&model, 2, 1.0).unwrap();
    let primer = &c.pieces[0].roll;
    let generate = |primer: &segue::roll::Roll, opts: &GenerateOptions| {
        tvae::generate(
            &model,
            primer,
            &a,
            &b,
            opts,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap()
    };
    // No longer than the longest piece Segue opens again.
    let endless = GenerateOptions {
        steps: segue::roll::MAX_STEPS,
        primer_steps: 8,
        ..GenerateOptions::default()
    };
    let stop = AtomicBool::new(false);
    let refused = tvae::generate(&model, primer, &a, &b, &endless, &mut |_| {}, &stop);
    let err = refused.unwrap_err().to_string();
    assert!(err.contains("more than the longest piece"), "{err}");
    let mut outputs = Vec::new();
    for mode in [
        Mode::Continue,
        Mode::Transfer,
        Mode::Transition,
        Mode::Blend,
    ] {
        let opts = GenerateOptions {
            mode,
            steps: 40,
            primer_steps: 8,
            ..GenerateOptions::default()
        };
        let g1 = generate(primer, &opts);
        let g2 = generate(primer, &opts);
        assert_eq!(g1.roll.steps(), 48);
        assert_eq!(g1.primer_steps, 8);
        assert_eq!(
            g1.roll.cells(),
            g2.roll.cells(),
            "{mode:?} not reproducible"
        );
        // The primer's steps are the primer's.
        assert_eq!(g1.roll.slice(0, 8).cells(), primer.slice(0, 8).cells());
        outputs.push(g1.roll);
    }
    // Composer A's code and composer B's give different music from one primer and seed.
    assert_ne!(
        outputs[0].cells(),
        outputs[1].cells(),
        "Continue == Transfer"
    );

    // A pitch sounding on both sides of the join is one note, not struck again there (almost
    // every cell drawn at a high temperature: some of the primer's two notes go on).
    let scales = &c.pieces[c.pieces.len() - 1].roll;
    let crossing = |g: &segue::roll::Roll| -> Vec<usize> {
        (0..128)
            .filter(|&k| g.is_on(7, k) && g.is_on(8, k))
            .collect()
    };
    let mut crossed = 0;
    for seed in 0..8 {
        let opts = GenerateOptions {
            steps: 16,
            primer_steps: 8,
            temperature: 50.0,
            max_notes: 128,
            seed,
            ..GenerateOptions::default()
        };
        let g = generate(scales, &opts);
        for k in crossing(&g.roll) {
            assert!(
                !g.roll.is_onset(8, k),
                "pitch {k} struck again (seed {seed})"
            );
            crossed += 1;
        }
    }
    assert!(crossed > 0);
}

#[test]
fn dcgan_trains_and_samples_reproducibly() {
    let (dir, c) = tiny_corpus();
    // The two binary kinds, and the plain DCGAN without an output bias as files made before
    // binary cells are: those still load and sample.
    for (cells, output_bias) in [
        (Cells::Drawn, true),
        (Cells::Thresholded, true),
        (Cells::Probabilities, false),
    ] {
        let mut o = tiny_gan_options();
        o.config.cells = cells;
        o.config.output_bias = output_bias;
        let out = dir.path().join(format!("g-{cells:?}"));
        let seen = train_with(gan::train_gan, &c, &o, &out, false);
        assert_eq!(seen.len(), 2);
        let before = &seen[0].train;
        assert!(before["loss_d"].is_finite() && before["loss_g"].is_finite());
        let mut file = out.join("dcgan.safetensors");
        if cells == Cells::Thresholded {
            // Two steps leave every cell below 0.5, and so thresholded snippets silent: the
            // output's bias raised (the file rewritten without its step) puts some above.
            let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
            let bias = (tensors["generator.conv5.bias"].clone() + 4.0).unwrap();
            tensors.insert("generator.conv5.bias".into(), bias);
            file = out.join("raised.safetensors");
            candle_core::safetensors::save(&tensors, &file).unwrap();
            std::fs::copy(out.join("dcgan.json"), file.with_extension("json")).unwrap();
        }
        let model = gan::load(&file, &Device::Cpu).unwrap();
        // The way cells become notes is part of the model file.
        assert_eq!(model.model.config().cells, cells);
        assert_eq!(model.model.config().output_bias, output_bias);
        let x = gan::sample(&model.model, 2, 1.0, 4, 7).unwrap();
        let y = gan::sample(&model.model, 2, 1.0, 4, 7).unwrap();
        assert_eq!(x.len(), 2);
        // The first snippet does not depend on how many follow it (a longer piece asked for
        // in the studio keeps its opening bars).
        let more = gan::sample(&model.model, 3, 1.0, 4, 7).unwrap();
        assert!(
            x[0].cells() == more[0].cells(),
            "{cells:?}: the first snippet changed"
        );
        // Nor on how many are made at a time (16: the second batch's first is the same).
        let many = gan::sample(&model.model, 20, 1.0, 4, 7).unwrap();
        let seventeen = gan::sample(&model.model, 17, 1.0, 4, 7).unwrap();
        assert_eq!(many.len(), 20);
        assert!(
            many[..2]
                .iter()
                .zip(&x)
                .all(|(a, b)| a.cells() == b.cells())
        );
        assert_eq!(many[16].cells(), seventeen[16].cells());
        let stopped = std::sync::atomic::AtomicBool::new(true);
        assert!(matches!(
            gan::sample_until(&model.model, 2, 1.0, 4, 7, &stopped),
            Err(segue::Error::Cancelled)
        ));
        assert!(
            x[1].cells() == more[1].cells(),
            "{cells:?}: the second snippet changed"
        );
        assert_eq!(x[0].steps(), 128);
        assert!(x[0].binary().iter().any(|&c| c != 0), "{cells:?}: silent");
        assert_eq!(x[0].cells(), y[0].cells());
        for t in 0..128 {
            assert!((0..128).filter(|&p| x[0].is_on(t, p)).count() <= 4);
        }
        let z = gan::sample(&model.model, 2, 1.0, 4, 8).unwrap();
        assert_ne!(x[0].cells(), z[0].cells(), "{cells:?}: another seed");
    }
}

/// Spectral normalisation: the run resumes exactly (the singular vector estimates are saved
/// with the model), the file says so and samples.
#[test]
fn a_spectrally_normalised_dcgan_resumes_exactly_and_loads() {
    let (dir, c) = tiny_corpus();
    let options = |steps: usize| {
        let mut o = tiny_gan_options();
        o.config.spectral_norm = true;
        o.train.steps = steps;
        o
    };
    let losses = |seen: &[LoopMetrics]| {
        seen.iter()
            .map(|m| (m.step, m.train["loss_d"], m.train["loss_g"]))
            .collect::<Vec<_>>()
    };
    let whole = train_with(
        gan::train_gan,
        &c,
        &options(4),
        &dir.path().join("w"),
        false,
    );
    let part = dir.path().join("p");
    let mut joined = train_with(gan::train_gan, &c, &options(2), &part, false);
    joined.extend(train_with(gan::train_gan, &c, &options(4), &part, true));
    assert_eq!(losses(&whole), losses(&joined));
    let plain = train_with(
        gan::train_gan,
        &c,
        &tiny_gan_options(),
        &dir.path().join("x"),
        false,
    );
    assert_ne!(losses(&whole)[..2], losses(&plain)[..2]);
    let model = gan::load(&part.join("dcgan.safetensors"), &Device::Cpu).unwrap();
    assert!(model.model.config().spectral_norm);
    assert_eq!(gan::sample(&model.model, 1, 1.0, 4, 7).unwrap().len(), 1);
}

#[test]
fn a_slower_discriminator_changes_the_game_and_bad_rates_are_refused() {
    let (dir, c) = tiny_corpus();
    let mut o = tiny_gan_options();
    let losses = |seen: &[LoopMetrics]| {
        seen.iter()
            .map(|m| (m.train["loss_d"], m.train["loss_g"]))
            .collect::<Vec<_>>()
    };
    let same = train_with(gan::train_gan, &c, &o, &dir.path().join("same"), false);
    o.discriminator_learning_rate = Some(o.train.learning_rate * 0.1);
    let slow = train_with(gan::train_gan, &c, &o, &dir.path().join("slow"), false);
    let again = train_with(gan::train_gan, &c, &o, &dir.path().join("again"), false);
    // The first discriminator loss comes before any update; after it the slower update shows.
    assert_eq!(losses(&same)[0].0, losses(&slow)[0].0);
    assert_ne!(losses(&same), losses(&slow));
    assert_eq!(losses(&slow), losses(&again));
    for bad in [0.0, -1e-3, f64::NAN] {
        o.discriminator_learning_rate = Some(bad);
        let err = refused(gan::train_gan, &c, &o, &dir.path().join("bad"));
        assert!(
            err.to_string().contains("discriminator's learning rate"),
            "{err}"
        );
    }
}

#[test]
fn label_smoothing_and_instance_noise_change_what_the_discriminator_learns() {
    let (dir, c) = tiny_corpus();
    let mut o = tiny_gan_options();
    let plain = train_with(gan::train_gan, &c, &o, &dir.path().join("plain"), false);
    // A real label of 0.9: the same verdicts at the first step (nothing has learned yet), a
    // different discriminator loss.
    o.real_label = 0.9;
    let smooth = train_with(gan::train_gan, &c, &o, &dir.path().join("smooth"), false);
    assert_eq!(smooth[0].train["d_real"], plain[0].train["d_real"]);
    assert_ne!(smooth[0].train["loss_d"], plain[0].train["loss_d"]);
    // Instance noise: the discriminator sees other cells from the first step on; the same seed
    // gives the same run.
    o.real_label = 1.0;
    o.instance_noise = 0.3;
    let noisy = train_with(gan::train_gan, &c, &o, &dir.path().join("noisy"), false);
    let again = train_with(gan::train_gan, &c, &o, &dir.path().join("again"), false);
    assert_ne!(noisy[0].train["d_real"], plain[0].train["d_real"]);
    let curve = |seen: &[LoopMetrics]| seen.iter().map(|m| m.train.clone()).collect::<Vec<_>>();
    assert_eq!(curve(&noisy), curve(&again));
    // The run records where its noise ends (its step count as it started), so a run continued
    // to more steps keeps the schedule.
    let recorded: gan::GanOptions =
        segue::train_loop::checkpoint_options(&dir.path().join("noisy"), gan::KIND).unwrap();
    assert_eq!(recorded.instance_noise_steps, Some(o.train.steps));
    for (label, noise, says) in [
        (0.5, 0.0, "real label"),
        (1.5, 0.0, "real label"),
        (f64::NAN, 0.0, "real label"),
        (1.0, -0.1, "instance noise"),
        (1.0, f64::INFINITY, "instance noise"),
    ] {
        o.real_label = label;
        o.instance_noise = noise;
        let err = refused(gan::train_gan, &c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn feature_matching_adds_its_weighted_gap_to_the_generator_loss() {
    let (dir, c) = tiny_corpus();
    let mut o = tiny_gan_options();
    let plain = train_with(gan::train_gan, &c, &o, &dir.path().join("plain"), false);
    assert!(!plain[0].train.contains_key("feature_gap"));
    o.feature_matching = 0.5;
    let fm = train_with(gan::train_gan, &c, &o, &dir.path().join("fm"), false);
    let again = train_with(gan::train_gan, &c, &o, &dir.path().join("again"), false);
    let gap = fm[0].train["feature_gap"];
    assert!(gap > 0.0, "{gap}");
    // At the first step both discriminators and generators are the same when the generator's
    // loss is taken, so the only difference is the weighted gap (losses are per snippet).
    let extra = fm[0].train["loss_g"] - plain[0].train["loss_g"];
    assert!(
        (extra - 0.5 * gap).abs() < 1e-3 * (1.0 + gap),
        "{extra} vs {gap}"
    );
    assert_eq!(fm[0].train["loss_d"], plain[0].train["loss_d"]);
    let curve = |seen: &[LoopMetrics]| seen.iter().map(|m| m.train.clone()).collect::<Vec<_>>();
    assert_eq!(curve(&fm), curve(&again));
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        o.feature_matching = bad;
        let err = refused(gan::train_gan, &c, &o, &dir.path().join("bad"));
        assert!(err.to_string().contains("feature-matching weight"), "{err}");
    }
}

#[test]
fn gradient_ascent_raises_the_target_composer() {
    let (dir, c) = tiny_corpus();
    let mut o = classifier_options(30);
    o.train.eval_every = 30;
    train_classifier(&c, &o, &dir.path().join("a"), false);
    let clf = classify::load(&dir.path().join("a/classifier.safetensors"), &Device::Cpu).unwrap();
    let opts = ascent::AscentOptions {
        steps: 32,
        iterations: 40,
        ..ascent::AscentOptions::default()
    };
    // The composer the starting noise is least like.
    let no_steps = ascent::AscentOptions {
        iterations: 0,
        ..opts.clone()
    };
    let cancel = AtomicBool::new(false);
    let start = ascent::ascend(&clf, 0, None, &no_steps, &mut |_| {}, &cancel).unwrap();
    let p0 = &start.start_probabilities;
    let target = (0..3).min_by(|&a, &b| p0[a].total_cmp(&p0[b])).unwrap();
    let out = ascent::ascend(&clf, target, None, &opts, &mut |_| {}, &cancel).unwrap();
    assert_eq!(out.roll.steps(), 32);
    let before = out.start_probabilities[target];
    assert!(
        out.ascended_probability > before + 0.1,
        "target {target}: {before} -> {} (thresholded {})",
        out.ascended_probability,
        out.thresholded_probability
    );
    for t in 0..32 {
        let n = (0..128).filter(|&p| out.roll.is_on(t, p)).count();
        assert!((2..=3).contains(&n), "{n} notes at step {t}");
    }
    let again = ascent::ascend(
        &clf,
        target,
        None,
        &opts,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(out.roll.cells(), again.roll.cells());
    // Ascended from a piece, the result keeps the piece's tempo, metre and key.
    let mut piece = segue::Roll::new(40);
    piece.set_keys(vec![segue::roll::StepKey {
        step: 0,
        key: segue::midi::Key {
            sharps: -3,
            minor: true,
        },
    }]);
    piece.set_tempo(vec![segue::roll::StepTempo {
        step: 0,
        micros_per_quarter: 400_000,
    }]);
    piece.set_meters(vec![segue::meter::StepMeter {
        step: 0,
        meter: segue::midi::Meter {
            numerator: 3,
            denominator: 4,
        },
    }]);
    for k in 0..10 {
        piece.add_note(segue::roll::RollNote {
            start: 4 * k,
            len: 4,
            pitch: 60 + (k % 7) as u8,
            velocity: 80,
        });
    }
    let from_piece =
        ascent::ascend(&clf, target, Some(&piece), &opts, &mut |_| {}, &cancel).unwrap();
    assert_eq!(from_piece.roll.tempo(), piece.tempo());
    assert_eq!(from_piece.roll.meters(), piece.meters());
    assert_eq!(from_piece.roll.keys(), piece.keys());
    // Its verdict at the start is the classifier's on the piece's notes, as `segue classify`
    // reads its first window.
    let verdict = classify::classify_roll(&clf, &piece, 32, 32).unwrap();
    let (first, read) = &verdict.windows[0];
    assert_eq!(*first, 0);
    for (p, q) in from_piece.start_probabilities.iter().zip(read) {
        assert!(
            (p - q).abs() < 1e-5,
            "{:?} vs {read:?}",
            from_piece.start_probabilities
        );
    }
}

#[test]
fn the_evaluation_report_measures_every_model_and_refuses_other_composers() {
    use segue::report::{Models, ReportOptions, evaluate_all, write_report};
    let (dir, c) = tiny_corpus();
    let mut lstm = segue::train::TrainOptions::preset("studio").unwrap();
    lstm.preset = "custom".into();
    lstm.config.hidden = 16;
    lstm.config.layers = 1;
    lstm.config.latent = 4;
    lstm.config.metre = 0;
    lstm.config.metre_map = false;
    lstm.steps = 2;
    lstm.snippet_steps = 16;
    lstm.valid_fraction = 0.34;
    let lstm_out = dir.path().join("lstm");
    segue::train::train_lstm_vae(
        &c,
        &lstm,
        &lstm_out,
        &Device::Cpu,
        false,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    // The report judges and reconstructs 128-step snippets.
    let mut co = classifier_options(2);
    co.config.stack.max_len = 32;
    train_classifier(&c, &co, &dir.path().join("c"), false);
    let mut t = tvae::TvaeOptions::default();
    t.config.stack = tiny_stack(128, 128);
    t.train = tiny_loop(2, 16);
    train_with(tvae::train_tvae, &c, &t, &dir.path().join("t"), false);
    train_with(
        gan::train_gan,
        &c,
        &tiny_gan_options(),
        &dir.path().join("g"),
        false,
    );
    let models = || Models {
        lstm: segue::models::trained::TrainedModel::load(
            &segue::train::model_path(&lstm_out),
            &Device::Cpu,
        )
        .unwrap(),
        tvae: Some(
            tvae::load(
                &dir.path().join("t/transformer-vae.safetensors"),
                &Device::Cpu,
            )
            .unwrap(),
        ),
        classifier: Some(
            classify::load(&dir.path().join("c/classifier.safetensors"), &Device::Cpu).unwrap(),
        ),
        gan: Some(gan::load(&dir.path().join("g/dcgan.safetensors"), &Device::Cpu).unwrap()),
    };
    let opts = ReportOptions {
        per_composer: 1,
        outputs_per_composer: 1,
        pairs: 1,
        ascent_iterations: 2,
        seed: 3,
        ..ReportOptions::default()
    };
    let report = evaluate_all(&models(), &c, &opts, &mut |_, _| {}).unwrap();
    assert!(report.snippets > 0);
    let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["LSTM-VAE", "Transformer VAE", "DCGAN", "Classifier ascent"]
    );
    for m in &report.models {
        // Notes per sounding step: a figure, unless every output was silent.
        let silent = m.silent_outputs == m.outputs;
        assert!(
            m.notes_per_step.is_some_and(f64::is_finite) != silent,
            "{m:?}"
        );
        assert!((0.0..=1.0).contains(&m.pitch_class_overlap), "{m:?}");
        // One held-out snippet per composer: a model generating for a composer has no pair
        // of its real snippets to compare with (n/a, not 0); the unconditional DCGAN is
        // compared with every pair (in pitch classes and counts always; in intervals and
        // lengths where its outputs have them).
        let comparable = m.name == "DCGAN";
        assert!(
            m.overlap_areas[..2]
                .iter()
                .all(|a| a.is_some() == comparable),
            "{m:?}"
        );
        assert!(
            comparable || m.overlap_areas.iter().all(Option::is_none),
            "{m:?}"
        );
    }
    let again = evaluate_all(&models(), &c, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "the same seed gives the same report"
    );
    let out = dir.path().join("report");
    write_report(&report, &out, "segue eval report").unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("LSTM-VAE"), "{md}");
    // Every picture the markdown shows is there, and is a PNG.
    let pictures: Vec<&str> = md
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|link| link.ends_with(".png"))
        .collect();
    assert!(pictures.len() >= 4, "{md}");
    for link in pictures {
        let bytes = std::fs::read(out.join(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(&bytes[1..4], b"PNG", "{link}");
    }
    // Written again without the style and classifier sections: their plots of the earlier
    // report go with it.
    let had = (
        out.join("confusion.png").exists(),
        report.classifier.is_some(),
    );
    assert_eq!(had.0, had.1);
    let mut lean = report.clone();
    lean.style = None;
    lean.classifier = None;
    write_report(&lean, &out, "segue eval report").unwrap();
    assert!(!out.join("confusion.png").exists() && !out.join("blend-curve.png").exists());
    // Someone's own report.md in the folder is not replaced.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("report.md"), "# My notes\n").unwrap();
    let err = write_report(&report, &theirs, "segue eval report")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("report.md") && err.contains("not a Segue report"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("report.md")).unwrap(),
        "# My notes\n"
    );
    // A folder with pictures of its own but no report keeps them.
    let pictures = dir.path().join("pictures");
    std::fs::create_dir(&pictures).unwrap();
    std::fs::write(pictures.join("confusion.png"), b"mine").unwrap();
    write_report(&lean, &pictures, "segue eval report").unwrap();
    assert_eq!(
        std::fs::read(pictures.join("confusion.png")).unwrap(),
        b"mine"
    );
    // A classifier of other composers would read the corpus's composer numbers wrongly.
    let mut other = models();
    if let Some(clf) = other.classifier.as_mut() {
        clf.manifest.composers.reverse();
    }
    let err = evaluate_all(&other, &c, &opts, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("classifier knows the composers"), "{err}");
    // A Transformer VAE that trained on pieces the LSTM-VAE holds out cannot be compared on
    // them.
    let mut other = models();
    if let Some(t) = other.tvae.as_mut() {
        t.manifest.training["train"]["seed"] = serde_json::json!(99);
    }
    let err = evaluate_all(&other, &c, &opts, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("which the LSTM-VAE holds out"), "{err}");
}

/// A window's statistics count what it holds: pitches and pitch classes, onset places, note
/// lengths (cut at the window's end) and densities.
#[test]
fn window_statistics_count_what_the_window_holds() {
    use segue::roll::{Roll, RollNote};
    use segue::stats_baseline::{FEATURES, window_features};
    let note = |start, len, pitch| RollNote {
        start,
        len,
        pitch,
        velocity: 80,
    };
    // C4 for 4 steps, E4 for 8 from step 4, (silence 12..16), G5 for 24 from step 16.
    let roll = Roll::from_notes(
        40,
        &[note(0, 4, 60), note(4, 8, 64), note(16, 24, 79)],
        Vec::new(),
    );
    let f = window_features(&roll, 0, 32);
    assert_eq!(f.len(), FEATURES);
    let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
    assert!(close(f[60], 4.0 / 32.0) && close(f[64], 8.0 / 32.0) && close(f[79], 16.0 / 32.0));
    assert!(
        f[..128]
            .iter()
            .enumerate()
            .all(|(p, &v)| [60, 64, 79].contains(&p) || v == 0.0)
    );
    // Pitch classes C, E, G of the 28 sounding cells.
    assert!(close(f[128], 4.0 / 28.0) && close(f[128 + 4], 8.0 / 28.0));
    assert!(close(f[128 + 7], 16.0 / 28.0));
    // Onsets at steps 0, 4 and 16 from the window's start: places 0 (twice) and 4 of 16.
    let places = &f[140..156];
    assert!(close(places[0], 2.0 / 3.0) && close(places[4], 1.0 / 3.0));
    // Note lengths 4, 8 and 16 (the G cut at the window's end): bins 4, <= 8, <= 16.
    let lengths = &f[156..168];
    assert!(close(lengths[3], 1.0 / 3.0) && close(lengths[5], 1.0 / 3.0));
    assert!(close(lengths[7], 1.0 / 3.0));
    // Onsets and sounding cells per step, silent steps, the share of the window held.
    assert!(close(f[168], 3.0 / 32.0) && close(f[169], 28.0 / 32.0));
    assert!(close(f[170], 4.0 / 32.0) && close(f[171], 1.0));
    // Places are counted from the window's start: from step 4, the onsets at 4 and 16 fall
    // on places 0 and 12.
    let later = window_features(&roll, 4, 32);
    assert!(close(later[140], 0.5) && close(later[140 + 12], 0.5));
    // Past the roll's end the window holds 8 of its 32 steps: shares of what it holds.
    let tail = window_features(&roll, 32, 32);
    assert!(close(tail[79], 1.0) && close(tail[171], 8.0 / 32.0));
    assert!(close(tail[168], 0.0) && close(tail[156 + 5], 1.0));
}

/// The classifier's own statistics count what each snippet of a roll tensor holds, with onset
/// places counted from the bar lines (also in a snippet that starts mid-bar, or whose length is
/// no multiple of 16); an empty or one-step roll gives finite figures; the gradient reaches the
/// roll (the ascent climbs through them).
#[test]
fn the_classifiers_statistics_count_what_each_snippet_holds() {
    use segue::models::classifier::{STATISTICS, roll_statistics};
    // C4 for 4 steps, E4 for 8 from step 4, (silence 12..16), G5 from step 16 to the end; a
    // second snippet: one D at step 17 of 20.
    let (t, mut cells) = (32, vec![0f32; 2 * 32 * 128]);
    let mut set = |item: usize, steps: std::ops::Range<usize>, pitch: usize| {
        steps.for_each(|s| cells[(item * t + s) * 128 + pitch] = 1.0)
    };
    set(0, 0..4, 60);
    set(0, 4..12, 64);
    set(0, 16..32, 79);
    set(1, 17..18, 62);
    let roll = Tensor::from_vec(cells, (2, t, 128), &Device::Cpu).unwrap();
    let stats =
        |x: &Tensor, bars: &WindowBars| roll_statistics(x, bars).unwrap().to_vec2::<f32>().unwrap();
    let f = stats(&roll, &WindowBars::common(2, t));
    assert_eq!(f[0].len(), STATISTICS);
    let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
    let a = &f[0];
    assert!(close(a[60], 4.0 / 32.0) && close(a[64], 8.0 / 32.0) && close(a[79], 16.0 / 32.0));
    let others = a[..128].iter().enumerate();
    assert!(
        others
            .filter(|(p, _)| ![60, 64, 79].contains(p))
            .all(|(_, &v)| v == 0.0)
    );
    // Pitch classes C, E, G of the 28 sounding cells.
    assert!(close(a[128], 4.0 / 28.0) && close(a[132], 8.0 / 28.0) && close(a[135], 16.0 / 28.0));
    // Onsets at steps 0, 4 and 16: places 0 (twice) and 4 of 16.
    assert!(close(a[140], 2.0 / 3.0) && close(a[144], 1.0 / 3.0));
    // Onsets and sounding cells per step, silent steps, ln(1 + cells per onset).
    assert!(close(a[156], 3.0 / 32.0) && close(a[157], 28.0 / 32.0));
    assert!(close(a[158], 4.0 / 32.0) && close(a[159], (1.0f32 + 28.0 / 3.0).ln()));
    // The second snippet's single onset at step 17 falls on place 1 of its bar.
    let b = &f[1];
    assert!(close(b[141], 1.0) && close(b[128 + 2], 1.0) && close(b[158], 31.0 / 32.0));
    assert!(close(b[159], 2f32.ln()));
    // Cut from step 4 of a piece, the same notes lie 4 steps later in their bars: the first
    // snippet's onsets at window steps 0, 4 and 16 fall on places 4, 8 and 4.
    let late = WindowBars::new(t, [(&[][..], 4), (&[][..], 4)]);
    let g = stats(&roll, &late);
    assert!(close(g[0][144], 2.0 / 3.0) && close(g[0][148], 1.0 / 3.0) && close(g[1][145], 1.0));
    // Onset places of a 20-step roll.
    let short = roll.narrow(0, 1, 1).unwrap().narrow(1, 0, 20).unwrap();
    let g = stats(&short, &WindowBars::common(1, 20));
    assert!(close(g[0][141], 1.0) && close(g[0][156], 1.0 / 20.0));
    // Silence, and a single step: finite, silent.
    for steps in [32, 1] {
        let silent = Tensor::zeros((1, steps, 128), DType::F32, &Device::Cpu).unwrap();
        let g = stats(&silent, &WindowBars::common(1, steps));
        assert!(g[0].iter().all(|v| v.is_finite()) && close(g[0][158], 1.0));
        assert!(g[0][..158].iter().chain(&g[0][159..]).all(|&v| v == 0.0));
    }
    // Bars for other windows than the roll's are refused.
    let err = roll_statistics(&roll, &WindowBars::common(1, t)).unwrap_err();
    assert!(
        err.to_string().contains("bar positions of 1 windows"),
        "{err}"
    );

    let var = candle_core::Var::from_tensor(&roll.affine(0.5, 0.25).unwrap()).unwrap();
    let grads = roll_statistics(var.as_tensor(), &WindowBars::common(2, t))
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = grads
        .get(var.as_tensor())
        .expect("no gradient for the roll");
    assert!(
        g.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

/// The statistics head adds to the encoder's logits its linear map of the statistics,
/// standardised by the stored mean and spread and clamped to [`STANDARD_LIMIT`] spreads.
#[test]
fn the_statistics_head_adds_its_standardised_clamped_logits() {
    use segue::models::classifier::{STANDARD_LIMIT, STATISTICS, roll_statistics};
    let (_, plain) = tiny_classifier(false, false, 5);
    let (vars, model) = tiny_classifier(false, true, 5);
    // A fixed pattern, a tenth of the cells sounding; pitch 0 of the first snippet on steps 0
    // and 10.
    let cells: Vec<f32> = (0..2 * 16 * 128)
        .map(|i| {
            let (item, t, p) = (i / (16 * 128), i / 128 % 16, i % 128);
            f32::from(u8::from((t * 7 + p * 13 + item * 5) % 10 == 0))
        })
        .collect();
    let x = Tensor::from_vec(cells, (2, 16, 128), &Device::Cpu).unwrap();
    let bars = WindowBars::common(2, 16);
    let f = roll_statistics(&x, &bars)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // A mean and spread that put statistic 0 of the first snippet past the limit.
    let mean: Vec<f32> = (0..STATISTICS).map(|k| 0.01 * k as f32).collect();
    let mut std: Vec<f32> = (0..STATISTICS).map(|k| 0.05 + 0.001 * k as f32).collect();
    std[0] = (f[0][0] - mean[0]).abs() / (4.0 * STANDARD_LIMIT) + 1e-6;
    {
        let data = vars.data().lock().unwrap();
        for (name, values) in [("running_mean", &mean), ("running_std", &std)] {
            let t = Tensor::from_slice(values, STATISTICS, &Device::Cpu).unwrap();
            data[&format!("statistics_head.{name}")].set(&t).unwrap();
        }
    }
    let weight = vars.data().lock().unwrap()["statistics_head.weight"]
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    let bias = vars.data().lock().unwrap()["statistics_head.bias"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    let with = model.forward(&x, &bars).unwrap().to_vec2::<f32>().unwrap();
    let without = plain.forward(&x, &bars).unwrap().to_vec2::<f32>().unwrap();
    for item in 0..2 {
        let z: Vec<f32> = (0..STATISTICS)
            .map(|k| ((f[item][k] - mean[k]) / std[k]).clamp(-STANDARD_LIMIT, STANDARD_LIMIT))
            .collect();
        if item == 0 {
            assert!(
                z[0].abs() == STANDARD_LIMIT && f[0][0] == 2.0 / 16.0,
                "{}",
                z[0]
            );
        }
        for c in 0..3 {
            let head: f32 = bias[c] + (0..STATISTICS).map(|k| weight[c][k] * z[k]).sum::<f32>();
            let got = with[item][c] - without[item][c];
            assert!(
                (got - head).abs() < 1e-3,
                "item {item} class {c}: {got} vs {head}"
            );
        }
    }
}

/// A classifier reading statistics standardises them on the windows of its training pieces
/// (their mean, and their spread plus the floor), keeps them through training and in its
/// file, and loads and classifies like any other.
#[test]
fn a_classifier_reading_statistics_standardises_them_on_its_training_pieces() {
    use segue::models::classifier::{SPREAD_FLOOR, STATISTICS, roll_statistics};
    let (dir, c) = tiny_corpus();
    let mut o = classifier_options(4);
    o.config.statistics = true;
    let out = dir.path().join("a");
    train_classifier(&c, &o, &out, false);
    let file = out.join("classifier.safetensors");
    let stored = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let read = |name: &str| {
        stored[&format!("statistics_head.running_{name}")]
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (mean, std) = (read("mean"), read("std"));

    let split = segue::train_loop::run_split(&c, o.train.valid_fraction, None, o.train.seed);
    assert!(!split.valid.is_empty());
    let window = o.train.snippet_steps;
    let statistics_of = |pieces: &[usize]| -> Vec<Vec<f32>> {
        let windows = segue::dataset::fixed_snippets(&c, pieces, window, window);
        let mut cells = vec![0f32; window * 128];
        windows
            .iter()
            .flat_map(|w| {
                c.pieces[w.piece]
                    .roll
                    .window_f32(w.start, window, &mut cells);
                let x = Tensor::from_slice(&cells, (1, window, 128), &Device::Cpu).unwrap();
                let bars = segue::train_loop::window_bars(&c, std::slice::from_ref(w), window);
                roll_statistics(&x, &bars)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap()
            })
            .collect()
    };
    let mean_of =
        |rows: &[Vec<f32>], k: usize| rows.iter().map(|r| r[k]).sum::<f32>() / rows.len() as f32;
    let rows = statistics_of(&split.train);
    for k in 0..STATISTICS {
        let m = mean_of(&rows, k);
        let var = rows.iter().map(|r| (r[k] - m).powi(2)).sum::<f32>() / rows.len() as f32;
        assert!((mean[k] - m).abs() < 1e-4, "mean {k}: {} vs {m}", mean[k]);
        let spread = var.sqrt() + SPREAD_FLOOR as f32;
        assert!(
            (std[k] - spread).abs() < 1e-4,
            "spread {k}: {} vs {spread}",
            std[k]
        );
    }
    // Every piece's windows, held-out ones too, would have given another mean.
    let all: Vec<usize> = (0..c.pieces.len()).collect();
    let every = statistics_of(&all);
    assert!((0..STATISTICS).any(|k| (mean_of(&every, k) - mean[k]).abs() > 1e-3));

    let clf = classify::load(&file, &Device::Cpu).unwrap();
    assert!(clf.config.statistics);
    let piece = &c.pieces[split.valid[0]];
    let v = classify::classify_roll(&clf, &piece.roll, 32, 32).unwrap();
    assert!((v.overall.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // Resuming without the head is refused, naming it.
    let mut plain = classifier_options(6);
    plain.train.eval_every = 4;
    plain.train.checkpoint_every = 4;
    let err = refused_to_resume(classify::train_classifier, &c, &plain, &out).to_string();
    assert!(err.contains("statistics: the checkpoint's true"), "{err}");
}

/// The baseline, fitted without randomness, tells the tiny corpus's composers apart on pieces
/// it never saw, and cross-validation judges every piece once.
#[test]
fn the_statistics_baseline_judges_held_out_pieces_and_every_piece_once() {
    use segue::dataset::Fold;
    use segue::stats_baseline::{self, Baseline, FitOptions};
    let (_dir, c) = tiny_corpus();
    let fit = FitOptions::default();
    let split = c.fold_split(Fold::new(0, 3).unwrap(), 1);
    let report = stats_baseline::judge_split(&c, &split, 32, 4, &fit)
        .unwrap()
        .report(c.composers.clone());
    // The classifier's held-out snippets, and nothing else.
    let expected = segue::dataset::evaluation_snippets(&c, &split.valid, 32, 4).len();
    assert_eq!(report.snippets, expected);
    assert_eq!(report.pieces, 3);
    assert_eq!(report.accuracy, 1.0, "{report:?}");
    assert_eq!(report.piece_accuracy, 1.0);
    let mut folds_seen = Vec::new();
    let cv =
        stats_baseline::cross_validate(&c, 3, 32, 1, &fit, &mut |k, n| folds_seen.push((k, n)))
            .unwrap();
    assert_eq!(folds_seen.last(), Some(&(3, 3)));
    assert_eq!(cv.pieces, 9);
    assert_eq!(cv.pieces_right, vec![(3, 3); 3]);
    // Every window of every piece, each judged once.
    let all: Vec<usize> = (0..c.pieces.len()).collect();
    let windows = segue::dataset::fixed_snippets(&c, &all, 32, 32).len();
    assert!(windows >= 18);
    assert_eq!(cv.snippets, windows);
    assert_eq!(cv.confusion.iter().flatten().sum::<usize>(), windows);
    assert!(stats_baseline::cross_validate(&c, 1, 32, 1, &fit, &mut |_, _| {}).is_err());
    // Four folds of three pieces per composer leave one fold empty: refused, not skipped.
    let err = stats_baseline::cross_validate(&c, 4, 32, 1, &fit, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("fold 4/4 would hold 0"), "{err}");
    // A whole piece is its windows' probabilities, each weighed by the steps it holds (the
    // last one holds what is left of the piece).
    let baseline = stats_baseline::fit_split(&c, &split, 64, &fit).unwrap();
    let whole = stats_baseline::judge_split(&c, &split, 64, 4, &fit).unwrap();
    let roll = &c.pieces[split.valid[0]].roll;
    assert!(roll.steps() > 64 && roll.steps() < 128, "{}", roll.steps());
    let windows = [0, 64].map(|s| stats_baseline::window_features(roll, s, 64));
    let probs = baseline.probabilities(&windows).unwrap();
    let (first, last) = (64.0, (roll.steps() - 64) as f32);
    for (k, got) in whole.pieces[0].0.iter().enumerate() {
        let want = (probs[0][k] * first + probs[1][k] * last) / (first + last);
        assert!((got - want).abs() < 1e-5, "{got} {want}");
    }
    // Nothing of a held-out piece reaches the fit: a composer none of whose pieces is trained
    // on is never named.
    let mut blind = split.clone();
    blind.train.retain(|&p| c.pieces[p].composer != 2);
    let judged = stats_baseline::judge_split(&c, &blind, 32, 4, &fit).unwrap();
    assert!(judged.snippets.iter().any(|&(_, t)| t == 2));
    for (p, _) in judged.snippets.iter().chain(&judged.pieces) {
        let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_ne!(best, 2, "{p:?}");
    }
    // The same windows give the same fit: no random draw.
    let x: Vec<Vec<f32>> = (0..3)
        .map(|k| stats_baseline::window_features(&c.pieces[k * 3].roll, 0, 32))
        .collect();
    let labels: Vec<usize> = (0..3).map(|k| c.pieces[k * 3].composer).collect();
    let a = Baseline::fit(&x, &labels, 3, &fit).unwrap();
    let b = Baseline::fit(&x, &labels, 3, &fit).unwrap();
    let (pa, pb) = (a.probabilities(&x).unwrap(), b.probabilities(&x).unwrap());
    assert_eq!(pa, pb);
    for (p, &truth) in pa.iter().zip(&labels) {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[truth] > 0.9, "{p:?}");
    }
    assert!(Baseline::fit(&x, &labels[..2], 3, &fit).is_err());
    assert!(Baseline::fit(&x, &[0, 1, 3], 3, &fit).is_err());
    assert!(a.probabilities(&[vec![0.0; 5]]).is_err());
}

/// Folds deal each composer's pieces round: each fold holds some of every composer with enough
/// pieces, no piece is both trained on and held out, and every piece is held out once.
#[test]
fn folds_hold_every_piece_out_once() {
    use segue::dataset::Fold;
    let (_dir, c) = tiny_corpus();
    let mut held = vec![0; c.pieces.len()];
    for index in 0..3 {
        let s = c.fold_split(Fold::new(index, 3).unwrap(), 7);
        assert_eq!(s.train.len() + s.valid.len(), c.pieces.len());
        assert!(s.valid.iter().all(|p| !s.train.contains(p)));
        let composers: Vec<usize> = s.valid.iter().map(|&p| c.pieces[p].composer).collect();
        assert_eq!(composers, [0, 1, 2], "one piece of each composer per fold");
        s.valid.iter().for_each(|&p| held[p] += 1);
    }
    assert_eq!(held, vec![1; c.pieces.len()]);
    // Another seed deals them differently.
    let other: Vec<_> = (0..3)
        .map(|index| c.fold_split(Fold::new(index, 3).unwrap(), 8).valid)
        .collect();
    let first: Vec<_> = (0..3)
        .map(|index| c.fold_split(Fold::new(index, 3).unwrap(), 7).valid)
        .collect();
    assert_ne!(other, first);
    // Written K/N from 1, as the command line takes it.
    let f: Fold = "2/3".parse().unwrap();
    assert_eq!(f, Fold::new(1, 3).unwrap());
    assert_eq!(f.to_string(), "2/3");
    for bad in ["0/3", "4/3", "1/1", "3", "a/b", "1/0"] {
        assert!(bad.parse::<Fold>().is_err(), "{bad}");
    }
    // No fold past the last, nor of fewer than two, however it is read.
    assert!(Fold::new(3, 3).is_err() && Fold::new(0, 1).is_err());
    assert!(serde_json::from_value::<Fold>(serde_json::json!({"index": 3, "of": 3})).is_err());
    let read: Fold = serde_json::from_value(serde_json::json!({"index": 2, "of": 3})).unwrap();
    assert_eq!(read, Fold::new(2, 3).unwrap());
}

/// Classifiers trained on the folds of one cross-validation are judged each on its own fold
/// and pooled; a set that is not one cross-validation is refused.
#[test]
fn fold_classifiers_pool_into_one_report_over_every_piece() {
    use segue::dataset::Fold;
    let (dir, c) = tiny_corpus();
    // `steps` steps on `fold` into the folder `name`, resuming the run there if `resume`.
    let run = |steps: usize, fold: Option<Fold>, name: &str, resume: bool| {
        let mut o = classifier_options(steps);
        o.train.fold = fold;
        let out = dir.path().join(name);
        classify::train_classifier(
            &c,
            &o,
            &out,
            &Device::Cpu,
            resume,
            &Control::default(),
            &mut |_| {},
        )
    };
    let train = |fold: Option<Fold>, name: &str| {
        run(2, fold, name, false).unwrap();
        let file = dir.path().join(name).join("classifier.safetensors");
        classify::load(&file, &Device::Cpu).unwrap()
    };
    let folds: Vec<_> = (0..3)
        .map(|index| train(Some(Fold::new(index, 3).unwrap()), &format!("f{index}")))
        .collect();
    let mut held_out = Vec::new();
    for (k, clf) in folds.iter().enumerate() {
        assert_eq!(
            classify::training_fold(clf).unwrap(),
            Some(Fold::new(k, 3).unwrap())
        );
        let held = classify::training_split(clf, &c).unwrap().valid;
        assert_eq!(held.len(), 3);
        held_out.extend(held);
    }
    held_out.sort_unstable();
    assert_eq!(
        held_out,
        (0..9).collect::<Vec<_>>(),
        "every piece held out once"
    );
    // Together, each judged on its own fold: the judgements of each, one after another.
    let pooled = classify::judge_folds(&folds, &c, 4, None, &mut |_, _| {}).unwrap();
    let mut each = classify::Judged::default();
    for clf in &folds {
        each.extend(classify::judge_held_out(clf, &c, 4, None, &mut |_, _| {}).unwrap());
    }
    assert_eq!(pooled, each);
    assert_eq!(pooled.pieces.len(), 9);
    let mut truths: Vec<usize> = pooled.pieces.iter().map(|&(_, t)| t).collect();
    truths.sort_unstable();
    assert_eq!(truths, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    // Two of three folds, a fold twice, or a classifier not trained on a fold: refused.
    let err = classify::judge_folds(&folds[..2], &c, 4, None, &mut |_, _| {}).unwrap_err();
    assert!(
        err.to_string().contains("fold 1/3, but 2 classifiers"),
        "{err}"
    );
    let twice = [folds[0].clone(), folds[0].clone(), folds[2].clone()];
    let err = classify::check_folds(&twice).unwrap_err();
    assert!(err.to_string().contains("fold 1/3 is given twice"), "{err}");
    let plain = train(None, "plain");
    let err = classify::check_folds(&[plain, folds[1].clone()]).unwrap_err();
    assert!(err.to_string().contains("not trained on a fold"), "{err}");
    // Folds of runs with another seed, or on another corpus, are not one cross-validation.
    let mut reseeded = folds.clone();
    reseeded[2].manifest.training["train"]["seed"] = serde_json::json!(2);
    let err = classify::check_folds(&reseeded).unwrap_err();
    assert!(
        err.to_string()
            .contains("classifier 3 differs from the first in its seed"),
        "{err}"
    );
    let mut elsewhere = folds.clone();
    elsewhere[1].manifest.corpus.content_hash = "another".into();
    let err = classify::check_folds(&elsewhere).unwrap_err();
    assert!(err.to_string().contains("in its corpus"), "{err}");
    // A manifest whose fold is not one is refused, not read as no fold.
    let mut odd = folds[0].clone();
    odd.manifest.training["train"]["fold"] = serde_json::json!({"index": 5, "of": 3});
    let err = classify::training_fold(&odd).unwrap_err().to_string();
    assert!(
        err.contains("f0/classifier.json: the manifest records the fold"),
        "{err}"
    );
    assert!(classify::check_folds(&[odd, folds[1].clone(), folds[2].clone()]).is_err());
    // The manifest's accuracy is the last validation's on held-out snippets (what the studio
    // and `segue classify` quote), not the training batches'.
    let log = std::fs::read_to_string(dir.path().join("f0/metrics.jsonl")).unwrap();
    let last_valid = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|v| !v["valid"].is_null())
        .unwrap();
    assert_eq!(
        classify::held_out_accuracy(&folds[0].manifest),
        last_valid["valid"]["accuracy"].as_f64()
    );
    // A fold that holds none of the corpus's pieces is refused before training.
    let err = run(2, Some(Fold::new(3, 4).unwrap()), "empty", false).unwrap_err();
    assert!(err.to_string().contains("fold 4/4 holds none"), "{err}");
    // A fold run resumes only on its own fold.
    let err = run(3, Some(Fold::new(1, 3).unwrap()), "f0", true).unwrap_err();
    assert!(
        err.to_string()
            .contains("--fold 2/3 (the checkpoint's is 1/3)"),
        "{err}"
    );
}

/// Judgements add up as counts, not as a mean of shares, and two judges multiply.
#[test]
fn judgements_add_up_as_counts_and_two_judges_multiply() {
    use classify::Judged;
    let names = vec!["a".to_string(), "b".to_string()];
    let right = (vec![0.9f32, 0.1], 0usize);
    let wrong = (vec![0.9f32, 0.1], 1usize);
    let mut small = Judged {
        snippets: vec![right.clone()],
        pieces: vec![right.clone()],
    };
    let large = Judged {
        snippets: vec![right.clone(), wrong.clone(), wrong.clone()],
        pieces: vec![wrong.clone(), wrong.clone()],
    };
    small.extend(large);
    let r = small.report(names.clone());
    // 2 of 4 snippets (not the mean of 1 and 1/3), 1 of 3 pieces; by composer: a 1/1, b 0/2.
    assert_eq!((r.snippets, r.pieces), (4, 3));
    assert!((r.accuracy - 0.5).abs() < 1e-12);
    assert!((r.piece_accuracy - 1.0 / 3.0).abs() < 1e-12);
    assert!((r.piece_balanced_accuracy - 0.5).abs() < 1e-12);
    assert_eq!(r.confusion, vec![vec![2, 0], vec![2, 0]]);
    assert_eq!(r.top3, 1.0);
    // 0.6 x 0.2 against 0.4 x 0.8: together they name the second.
    let p = Judged {
        snippets: vec![(vec![0.6, 0.4], 1)],
        pieces: vec![],
    };
    let q = Judged {
        snippets: vec![(vec![0.2, 0.8], 1)],
        pieces: vec![],
    };
    let pq = p.product(&q).unwrap();
    let joint = &pq.snippets[0].0;
    assert!((joint[0] - 0.12 / 0.44).abs() < 1e-6 && (joint[1] - 0.32 / 0.44).abs() < 1e-6);
    assert_eq!(pq.report(names.clone()).accuracy, 1.0);
    assert!(p.product(&small).is_err());
    // The same number of judgements, of other truths: not the same snippets.
    let other = Judged {
        snippets: vec![(vec![0.2, 0.8], 0)],
        pieces: vec![],
    };
    assert!(p.product(&other).is_err());
}

/// A corpus of which nothing could be read is refused before anything is written, with a
/// message about the corpus (not about the model's sizes).
#[test]
fn a_corpus_with_nothing_readable_is_refused_and_leaves_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = dir.path().join("corpus");
    std::fs::create_dir_all(corpus_dir.join("someone")).unwrap();
    std::fs::write(corpus_dir.join("someone/broken.mid"), b"MThd garbage").unwrap();
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: None,
    };
    let c = Corpus::load(&corpus_dir, &opts, &|_, _| {}).unwrap();
    assert!(c.pieces.is_empty());
    let refused = |train: &dyn Fn(&Path) -> segue::Result<_>, name: &str| {
        let out = dir.path().join(name);
        let err = train(&out).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("corpus"), "{name}: {err}");
        assert!(!out.exists(), "{name}: a refused run left its folder");
    };
    let run = |out: &Path| {
        let (cpu, stop) = (Device::Cpu, Control::default());
        classify::train_classifier(
            &c,
            &classifier_options(2),
            out,
            &cpu,
            false,
            &stop,
            &mut |_| {},
        )
    };
    refused(&run, "classifier");
    let run = |out: &Path| {
        let (cpu, stop) = (Device::Cpu, Control::default());
        gan::train_gan(
            &c,
            &tiny_gan_options(),
            out,
            &cpu,
            false,
            &stop,
            &mut |_| {},
        )
    };
    refused(&run, "dcgan");
    let run = |out: &Path| {
        let mut o = segue::train::TrainOptions::preset("studio").unwrap();
        o.steps = 1;
        let (cpu, stop) = (Device::Cpu, Control::default());
        segue::train::train_lstm_vae(&c, &o, out, &cpu, false, &stop, &mut |_| {})
    };
    let out = dir.path().join("lstm-vae");
    let err = run(&out).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("corpus"), "{err}");
    assert!(!out.exists(), "a refused run left its folder");
}

/// A held-out piece shorter than the classifier's window is judged at its own length, as
/// `segue classify` judges it, not padded with silence to a window.
#[test]
fn a_held_out_piece_shorter_than_a_window_is_judged_at_its_own_length() {
    let (dir, c) = tiny_corpus();
    let mut o = classifier_options(2);
    o.config.stack = tiny_stack(32, 32);
    o.train = tiny_loop(2, 128);
    let out = dir.path().join("clf");
    train_classifier(&c, &o, &out, false);
    let clf = classify::load(&out.join("classifier.safetensors"), &Device::Cpu).unwrap();
    assert!(c.pieces.iter().all(|p| p.roll.steps() < 128));
    let judged = classify::judge_held_out(&clf, &c, 4, None, &mut |_, _| {}).unwrap();
    // One held-out piece a composer, one snippet each (the whole piece).
    assert_eq!(judged.snippets.len(), 3);
    for ((snippet, truth), (piece, of)) in judged.snippets.iter().zip(&judged.pieces) {
        assert_eq!(truth, of);
        for (a, b) in snippet.iter().zip(piece) {
            assert!((a - b).abs() < 1e-5, "{snippet:?} {piece:?}");
        }
    }
}
