//! Corpus loading, the roll cache, the split by piece and balanced batches, on the shared corpus.

mod common;

use std::collections::HashSet;

use common::{shared, simple};
use segue::dataset::{BalancedSampler, Corpus, LoadOptions, fixed_snippets};
use segue::roll::QuantizeOptions;

fn load(cache: Option<&std::path::Path>) -> Corpus {
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: cache.map(Into::into),
    };
    Corpus::load(&shared("corpus"), &opts, &|_, _| {}).unwrap()
}

/// Loads a corpus folder made by a test, without the cache.
fn load_uncached(dir: &std::path::Path) -> Corpus {
    let opts = LoadOptions {
        cache_dir: None,
        ..Default::default()
    };
    Corpus::load(dir, &opts, &|_, _| {}).unwrap()
}

#[test]
fn loads_the_corpus_and_the_cache_gives_the_same_rolls() {
    let cache = tempfile::tempdir().unwrap();
    let first = load(Some(cache.path()));
    assert_eq!(first.composers.len(), 20);
    assert_eq!(first.pieces.len(), 620);
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(first.cache_hits, 0);
    assert_eq!(first.composers[0], "albeniz");
    assert_eq!(
        first
            .pieces_of(first.composers.iter().position(|c| c == "bach").unwrap())
            .len(),
        343
    );

    let second = load(Some(cache.path()));
    assert_eq!(
        second.cache_hits, 620,
        "every roll comes from the cache the second time"
    );
    for (a, b) in first.pieces.iter().zip(&second.pieces) {
        assert_eq!(a.path, b.path);
        assert_eq!(a.roll, b.roll, "{}", a.path.display());
    }
    assert_eq!(first.content_hash(), second.content_hash());

    // A damaged cache entry is ignored and rebuilt, never trusted: garbage, and a byte changed
    // that keeps the layout (a note's velocity).
    let mut entries = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path());
    for (k, path) in entries.by_ref().take(5).enumerate() {
        std::fs::write(&path, b"SEGROLL2garbage").unwrap();
        // One of them read-only: replaced all the same.
        if k == 0 {
            let mut mode = std::fs::metadata(&path).unwrap().permissions();
            mode.set_readonly(true);
            std::fs::set_permissions(&path, mode).unwrap();
        }
    }
    for path in entries.take(3) {
        let mut bytes = std::fs::read(&path).unwrap();
        let velocity = bytes.len() - 17; // the last note's, before the checksum
        bytes[velocity] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = load(Some(cache.path()));
    assert_eq!(third.cache_hits, 612);
    assert_eq!(
        load(Some(cache.path())).cache_hits,
        620,
        "every entry rebuilt"
    );
    assert!(
        third
            .pieces
            .iter()
            .zip(&first.pieces)
            .all(|(a, b)| a.roll == b.roll)
    );
}

#[test]
fn split_is_by_piece_per_composer_and_seeded() {
    let corpus = load(None);
    let split = corpus.split(0.1, 7);
    let train: HashSet<_> = split.train.iter().collect();
    assert!(
        split.valid.iter().all(|p| !train.contains(p)),
        "no piece on both sides"
    );
    assert_eq!(split.train.len() + split.valid.len(), corpus.pieces.len());
    for c in 0..corpus.composers.len() {
        assert!(
            split.valid.iter().any(|&p| corpus.pieces[p].composer == c),
            "composer {c} validated"
        );
        assert!(
            split.train.iter().any(|&p| corpus.pieces[p].composer == c),
            "composer {c} trained"
        );
    }
    assert_eq!(split, corpus.split(0.1, 7));
    assert_ne!(split, corpus.split(0.1, 8));
}

#[test]
fn balanced_batches_hold_one_snippet_per_composer_and_repeat_by_seed() {
    let corpus = load(None);
    let split = corpus.split(0.1, 0);
    let mut a = BalancedSampler::new(&corpus, &split.train, 320, 42).unwrap();
    let mut b = BalancedSampler::new(&corpus, &split.train, 320, 42).unwrap();
    let mut c = BalancedSampler::new(&corpus, &split.train, 320, 43).unwrap();
    for _ in 0..5 {
        let (x, y, z) = (a.next_batch(), b.next_batch(), c.next_batch());
        assert_eq!(x.len(), 20);
        assert_eq!(x.composers, (0..20).collect::<Vec<_>>());
        assert_eq!(x.data.len(), 20 * 320 * 128);
        assert_eq!(x.sources, y.sources);
        assert_eq!(x.data, y.data);
        assert_ne!(x.sources, z.sources);
        for (k, s) in x.sources.iter().enumerate() {
            assert!(split.train.contains(&s.piece));
            assert_eq!(corpus.pieces[s.piece].composer, x.composers[k]);
            // The data is the roll's window.
            let roll = &corpus.pieces[s.piece].roll;
            let mut expect = vec![0f32; 320 * 128];
            roll.window_f32(s.start, 320, &mut expect);
            assert_eq!(&x.data[k * 320 * 128..(k + 1) * 320 * 128], &expect[..]);
            assert!(s.start + 320 <= roll.steps().max(320));
        }
        assert!(x.data.contains(&1.0));
    }
    // Aligned starts fall on multiples of the alignment, still one composer each.
    let mut bars = BalancedSampler::aligned(&corpus, &split.train, 320, 16, 42).unwrap();
    for _ in 0..5 {
        let batch = bars.next_batch();
        assert_eq!(batch.composers, (0..20).collect::<Vec<_>>());
        assert!(batch.sources.iter().all(|s| s.start % 16 == 0));
        assert!(batch.sources.iter().any(|s| s.start > 0));
    }
    assert!(BalancedSampler::aligned(&corpus, &split.train, 320, 0, 42).is_err());
    let fixed = fixed_snippets(&corpus, &split.valid, 320, 320);
    assert!(fixed.len() > split.valid.len());
    assert!(fixed.iter().all(|s| split.valid.contains(&s.piece)));
}

#[test]
fn pieces_can_be_drawn_equally_whatever_their_length() {
    let corpus = load(None);
    let split = corpus.split(0.1, 0);
    let chopin = corpus.composers.iter().position(|c| c == "chopin").unwrap();
    let pieces: Vec<usize> = split
        .train
        .iter()
        .copied()
        .filter(|&i| corpus.pieces[i].composer == chopin)
        .collect();
    let longest = *pieces
        .iter()
        .max_by_key(|&&i| corpus.pieces[i].roll.steps())
        .unwrap();
    let share_of_longest = |sampler: &mut BalancedSampler| {
        let draws = 3000;
        let hits = (0..draws)
            .filter(|_| sampler.next_batch().sources[chopin].piece == longest)
            .count();
        hits as f64 / draws as f64
    };
    let even = 1.0 / pieces.len() as f64;
    let mut by_start = BalancedSampler::new(&corpus, &split.train, 128, 7).unwrap();
    let mut by_piece = BalancedSampler::new(&corpus, &split.train, 128, 7)
        .unwrap()
        .pieces_equally();
    let (long_by_start, long_by_piece) = (
        share_of_longest(&mut by_start),
        share_of_longest(&mut by_piece),
    );
    assert!(
        long_by_start > 2.0 * even,
        "by start {long_by_start}, 1/n {even}"
    );
    assert!(
        (0.5 * even..1.5 * even).contains(&long_by_piece),
        "by piece {long_by_piece}, 1/n {even}"
    );

    // Skipping draws what next_batch would have, so a resumed run goes on with the same batches.
    let mut fresh = BalancedSampler::new(&corpus, &split.train, 128, 9)
        .unwrap()
        .pieces_equally();
    let mut skipped = BalancedSampler::new(&corpus, &split.train, 128, 9)
        .unwrap()
        .pieces_equally();
    for _ in 0..3 {
        fresh.next_batch();
    }
    skipped.skip(3);
    let (a, b) = (fresh.next_batch(), skipped.next_batch());
    assert_eq!(a.sources, b.sources);
    assert!(a.sources.iter().all(|s| split.train.contains(&s.piece)));
}

#[test]
fn bad_files_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let chopin = dir.path().join("chopin");
    let debussy = dir.path().join("debussy");
    std::fs::create_dir_all(&chopin).unwrap();
    std::fs::create_dir_all(&debussy).unwrap();
    std::fs::write(chopin.join("good.mid"), simple(96, &[(0, 96, 60, 90)])).unwrap();
    std::fs::write(chopin.join("bad.mid"), b"definitely not midi").unwrap();
    std::fs::write(debussy.join("empty.mid"), b"").unwrap();
    std::fs::write(debussy.join("ok.midi"), simple(96, &[(0, 960, 62, 90)])).unwrap();
    std::fs::write(debussy.join("notes.txt"), b"ignored").unwrap();
    // A composer whose every file is bad has nothing to learn from: left out, files listed.
    let brahms = dir.path().join("brahms");
    std::fs::create_dir_all(&brahms).unwrap();
    std::fs::write(brahms.join("broken.mid"), b"MThd").unwrap();
    // A readable file with no notes is not a piece either.
    std::fs::write(brahms.join("silent.mid"), simple(96, &[])).unwrap();
    let corpus = load_uncached(dir.path());
    assert_eq!(corpus.composers, vec!["chopin", "debussy"]);
    assert_eq!(corpus.pieces.len(), 2);
    assert_eq!(corpus.failures.len(), 4);
    assert!(
        corpus
            .failures
            .iter()
            .any(|f| f.path.ends_with("silent.mid") && f.error.contains("no notes"))
    );
    assert!(
        corpus
            .failures
            .iter()
            .any(|f| f.path.ends_with("broken.mid"))
    );
    assert!(
        corpus
            .failures
            .iter()
            .any(|f| f.error.contains("bad.mid") && f.error.contains("not a standard MIDI file"))
    );
    assert!(
        corpus
            .failures
            .iter()
            .any(|f| f.error.contains("empty.mid") && f.error.contains("empty"))
    );
    let stats = corpus.stats();
    assert_eq!(stats[0].failures, 1);
    assert_eq!(stats[1].files, 1);
    assert_eq!(stats[1].lowest_pitch, Some(62));
    assert_eq!(stats[1].failures, 1);
    // The composer left out has its row too (no files, its failures), after the others.
    assert_eq!(stats.len(), 3);
    assert_eq!(
        (
            stats[2].composer.as_str(),
            stats[2].files,
            stats[2].failures
        ),
        ("brahms", 0, 2)
    );
    // Each failure names the composer it would have taught, the one left out too.
    let of = |name: &str| {
        corpus
            .failures
            .iter()
            .filter(|f| f.composer == name)
            .count()
    };
    assert_eq!((of("chopin"), of("debussy"), of("brahms")), (1, 1, 2));

    let err = Corpus::load(
        &dir.path().join("nope"),
        &LoadOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// A byte-identical copy of a piece (in its own folder or another composer's) is left out and
/// listed, so it cannot be trained on and held out at once.
#[test]
fn identical_files_are_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let chopin = dir.path().join("chopin");
    let debussy = dir.path().join("debussy");
    std::fs::create_dir_all(&chopin).unwrap();
    std::fs::create_dir_all(&debussy).unwrap();
    let piece = simple(96, &[(0, 96, 60, 90), (96, 192, 64, 90)]);
    std::fs::write(chopin.join("a.mid"), &piece).unwrap();
    std::fs::write(chopin.join("b.mid"), &piece).unwrap();
    std::fs::write(chopin.join("c.mid"), simple(96, &[(0, 96, 67, 90)])).unwrap();
    std::fs::write(debussy.join("copy.mid"), &piece).unwrap();
    std::fs::write(debussy.join("own.mid"), simple(96, &[(0, 960, 62, 90)])).unwrap();
    let corpus = load_uncached(dir.path());
    let kept: Vec<_> = corpus
        .pieces
        .iter()
        .map(|p| p.path.strip_prefix(dir.path()).unwrap().to_path_buf())
        .collect();
    assert_eq!(
        kept,
        ["chopin/a.mid", "chopin/c.mid", "debussy/own.mid"]
            .map(std::path::PathBuf::from)
            .to_vec()
    );
    assert_eq!(corpus.failures.len(), 2);
    for f in &corpus.failures {
        assert!(
            f.error.contains("the same file as") && f.error.contains("a.mid"),
            "{}",
            f.error
        );
        // A copy under another composer says whom the kept one teaches.
        let other = f.path.ends_with("debussy/copy.mid");
        assert_eq!(
            f.error.contains("which teaches chopin"),
            other,
            "{}",
            f.error
        );
    }
    let hashes: HashSet<_> = corpus.pieces.iter().map(|p| &p.content_hash).collect();
    assert_eq!(hashes.len(), corpus.pieces.len());
}

/// Cached rolls are keyed by the quantize options too: the paper's rounding is not served the
/// rolls of the default one.
#[test]
fn the_cache_key_holds_the_quantize_options() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let chopin = dir.path().join("chopin");
    std::fs::create_dir_all(&chopin).unwrap();
    // A grace note of 4 ticks: kept as one step by default, dropped by the paper's rounding.
    std::fs::write(
        chopin.join("a.mid"),
        simple(96, &[(0, 4, 59, 90), (0, 96, 60, 90)]),
    )
    .unwrap();
    let load = |quantize| {
        let opts = LoadOptions {
            quantize,
            cache_dir: Some(cache.path().into()),
        };
        Corpus::load(dir.path(), &opts, &|_, _| {}).unwrap()
    };
    let first = load(QuantizeOptions::default());
    let paper = load(QuantizeOptions::paper());
    assert_eq!(paper.cache_hits, 0);
    assert_ne!(first.pieces[0].roll, paper.pieces[0].roll);
    assert_eq!(load(QuantizeOptions::paper()).cache_hits, 1);
    assert_eq!(load(QuantizeOptions::default()).cache_hits, 1);
}

/// Each composer holds out about a tenth of its pieces: none of one piece, one of two or more.
#[test]
fn the_split_holds_out_a_share_of_each_composer() {
    use segue::dataset::Piece;
    use segue::roll::Roll;
    let counts = [1usize, 2, 9, 25];
    let mut pieces = Vec::new();
    for (composer, &n) in counts.iter().enumerate() {
        for i in 0..n {
            pieces.push(Piece {
                path: format!("c{composer}/p{i}.mid").into(),
                composer,
                roll: Roll::new(16),
                content_hash: format!("{composer}-{i}"),
            });
        }
    }
    let corpus = Corpus {
        root: "corpus".into(),
        composers: (0..counts.len()).map(|c| format!("c{c}")).collect(),
        pieces,
        failures: Vec::new(),
        cache_hits: 0,
    };
    let split = corpus.split(0.1, 7);
    let held = |c: usize| {
        split
            .valid
            .iter()
            .filter(|&&i| corpus.pieces[i].composer == c)
            .count()
    };
    assert_eq!((0..4).map(held).collect::<Vec<_>>(), [0, 1, 1, 3]);
    assert_eq!(split.train.len() + split.valid.len(), 37);
    assert!(split.train.iter().all(|i| !split.valid.contains(i)));
    // Seeded: the same seed, the same split; another seed, another one.
    assert_eq!(corpus.split(0.1, 7), split);
    assert_ne!(corpus.split(0.1, 8), split);
}

/// A linked folder is read, but a link back up the tree is not followed round and round.
#[cfg(unix)]
#[test]
fn a_link_back_up_the_corpus_is_not_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let chopin = dir.path().join("chopin");
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&chopin).unwrap();
    std::fs::write(chopin.join("a.mid"), simple(96, &[(0, 96, 60, 90)])).unwrap();
    std::fs::write(
        elsewhere.path().join("b.mid"),
        simple(96, &[(0, 96, 64, 90)]),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), chopin.join("all")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("debussy")).unwrap();
    let files = segue::dataset::midi_files(dir.path()).unwrap();
    assert_eq!(
        files,
        vec![chopin.join("a.mid"), dir.path().join("debussy/b.mid")],
        "{files:?}"
    );
    let corpus = load_uncached(dir.path());
    assert_eq!(corpus.composers, vec!["chopin", "debussy"]);
}

/// A folder below the corpus that cannot be listed is said, named, and left out, the rest read.
/// Root lists any folder, so where the tests run as root (as CI does) the program runs
/// without the capabilities that let it (`setpriv`, from util-linux).
#[cfg(unix)]
#[test]
fn a_folder_that_cannot_be_listed_is_said_and_the_rest_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    for (path, pitch) in [
        ("satie/locked/d.mid", 66),
        ("satie/e.mid", 67),
        ("bach/a.mid", 60),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, simple(96, &[(0, 96, pitch, 90)])).unwrap();
    }
    let locked = root.join("satie/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_root = std::fs::read_dir(&locked).is_ok();
    let mut command = if as_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search"])
            .arg(env!("CARGO_BIN_EXE_segue"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_segue"))
    };
    let out = command
        .args(["corpus", "stats"])
        .arg(&root)
        .env("SEGUE_CACHE_DIR", "")
        .env("XDG_CACHE_HOME", "")
        .env("HOME", dir.path().join("home"))
        .output()
        .unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("satie/locked: could not be listed (Permission denied"),
        "{stderr}"
    );
    assert!(stdout.contains("2 composers, 2 files"), "{stdout}");
}

/// A corpus as users' disks hold it: macOS's hidden companions and `__MACOSX` folders are not
/// music, a folder reached by two links is read once (a chain of such links would otherwise
/// cost twice as much with every level), and a folder that cannot be listed is noted among
/// the failures, not the end of the whole corpus.
#[cfg(unix)]
#[test]
fn system_files_shared_folders_and_locked_folders() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let piece = |pitch| simple(96, &[(0, 96, pitch, 90)]);
    for (path, bytes) in [
        ("chopin/a.mid", piece(60)),
        ("chopin/._a.mid", b"Mac OS X        \x00\x05".to_vec()),
        (".DS_Store", b"\x00\x00\x00\x01Bud1".to_vec()),
        ("__MACOSX/chopin/._a.mid", b"Mac OS X".to_vec()),
        ("debussy/b.mid", piece(62)),
        ("shared/c.mid", piece(64)),
        ("satie/locked/d.mid", piece(66)),
        ("satie/e.mid", piece(67)),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // Two levels of two links each to one folder: one folder, read once; a link that sorts
    // before the folder it names does not take its composer's place.
    symlink(root.join("shared"), root.join("shared/x")).unwrap();
    std::fs::create_dir(root.join("links")).unwrap();
    symlink(root.join("shared"), root.join("links/one")).unwrap();
    symlink(root.join("shared"), root.join("links/two")).unwrap();
    symlink(root.join("chopin"), root.join("aa_favourites")).unwrap();
    let locked = root.join("satie/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root (as CI runs) lists it anyway: then it is simply read.
    let can_lock = std::fs::read_dir(&locked).is_err();
    let listing = segue::dataset::list_midi(root).unwrap();
    let corpus = load_uncached(root);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut expected = vec![
        root.join("chopin/a.mid"),
        root.join("debussy/b.mid"),
        root.join("satie/e.mid"),
        root.join("shared/c.mid"),
    ];
    // The second ways are named, with the way each folder is read by.
    assert_eq!(
        listing.repeated,
        vec![
            (root.join("aa_favourites"), root.join("chopin")),
            (root.join("links/one"), root.join("shared")),
            (root.join("links/two"), root.join("shared")),
        ]
    );
    let noted = |f: &&segue::dataset::Failure| f.error.contains("the same folder as");
    assert_eq!(corpus.failures.iter().filter(noted).count(), 3);
    if can_lock {
        assert_eq!(listing.unlisted.len(), 1, "{:?}", listing.unlisted);
        assert_eq!(listing.unlisted[0].0, locked);
        let failure = &corpus.failures[0];
        assert_eq!(failure.composer, "satie");
        assert!(
            failure.error.contains("could not be listed"),
            "{}",
            failure.error
        );
    } else {
        expected.insert(3, locked.join("d.mid"));
        assert!(listing.unlisted.is_empty());
    }
    assert_eq!(listing.files, expected);
    assert_eq!(
        corpus.composers,
        vec!["chopin", "debussy", "satie", "shared"]
    );
}

/// A layout that may not be what the user meant is noted (files lying in the corpus folder
/// itself); composers whose folder names differ only in case or spaces, or hold a line break,
/// are refused (a model trained on them could not be asked for one of the two by name).
#[test]
fn a_doubtful_layout_is_noted_and_clashing_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, pitch) in [
        ("Bach/a.mid", 60),
        ("Bach /b.mid", 62),
        ("chopin/c.mid", 64),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, simple(96, &[(0, 96, pitch, 90)])).unwrap();
    }
    let opts = LoadOptions {
        cache_dir: None,
        ..Default::default()
    };
    let refused = |root: &std::path::Path| {
        Corpus::load(root, &opts, &|_, _| {})
            .map(|c| c.composers)
            .unwrap_err()
            .to_string()
    };
    let e = refused(root);
    assert!(
        e.contains(&root.display().to_string())
            && e.contains("\"Bach\" and \"Bach \" differ only in case or spaces"),
        "{e}"
    );
    std::fs::rename(root.join("Bach "), root.join("ba\nch")).unwrap();
    let e = refused(root);
    assert!(e.contains("\"ba\\nch\" holds control characters"), "{e}");
    // A right-to-left override would turn the names printed after it around.
    std::fs::rename(root.join("ba\nch"), root.join("bach\u{202e}hcab")).unwrap();
    let e = refused(root);
    assert!(e.contains("bidirectional-text overrides"), "{e}");
    std::fs::remove_dir_all(root.join("bach\u{202e}hcab")).unwrap();
    assert!(load_uncached(root).layout_notes().is_empty());
    std::fs::write(root.join("loose.mid"), simple(96, &[(0, 96, 66, 90)])).unwrap();
    let notes = load_uncached(root).layout_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("1 file(s) lie in the corpus folder itself"),
        "{notes:?}"
    );
    let clean = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(clean.path().join("bach")).unwrap();
    std::fs::write(
        clean.path().join("bach/a.mid"),
        simple(96, &[(0, 96, 60, 90)]),
    )
    .unwrap();
    assert!(load_uncached(clean.path()).layout_notes().is_empty());
    // The composers' folders one level further down: one composer of two subfolders.
    let nested = tempfile::tempdir().unwrap();
    for (path, pitch) in [("midi/chopin/a.mid", 60), ("midi/debussy/b.mid", 62)] {
        let path = nested.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, simple(96, &[(0, 96, pitch, 90)])).unwrap();
    }
    let notes = load_uncached(nested.path()).layout_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("\"midi\" has all its files in subfolders (chopin, debussy)")
            && notes[0].contains(&format!(
                "--corpus {}",
                nested.path().join("midi").display()
            )),
        "{notes:?}"
    );
    // A composer's own pieces sorted into subfolders beside pieces of its own is no such case.
    let own = nested.path().join("midi/c.mid");
    std::fs::write(own, simple(96, &[(0, 96, 64, 90)])).unwrap();
    assert!(load_uncached(nested.path()).layout_notes().is_empty());
}

/// The roll cache keeps its most recently used entries within its limit, never removing what
/// the caller keeps nor anything but `*.roll` files.
#[test]
fn the_cache_is_pruned_least_recently_used_first() {
    use segue::dataset::{Pruned, prune_cache};
    use std::time::{Duration, SystemTime};
    let cache = tempfile::tempdir().unwrap();
    let days_ago = |d: u64| SystemTime::now() - Duration::from_secs(d * 24 * 3600);
    let entry = |name: &str, len: usize, used: SystemTime| {
        let path = cache.path().join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(used).unwrap();
        path
    };
    let oldest = entry("a.roll", 1000, days_ago(5));
    let old = entry("b.roll", 1000, days_ago(3));
    let recent = entry("c.roll", 1000, days_ago(1));
    let newest = entry("d.roll", 1000, days_ago(0));
    let other = entry("notes.txt", 9000, days_ago(9));
    let part = entry(".segue-x.roll.part", 9000, days_ago(9));
    let left = || -> HashSet<std::path::PathBuf> {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };

    let nothing = HashSet::new();
    assert_eq!(
        prune_cache(cache.path(), 4000, &nothing).unwrap(),
        Pruned {
            removed: 0,
            kept_bytes: 4000
        },
        "within its limit"
    );
    assert_eq!(left().len(), 6);

    // The oldest is kept (a load has just used it): the next two go.
    let keep = HashSet::from([oldest.clone()]);
    assert_eq!(
        prune_cache(cache.path(), 2500, &keep).unwrap(),
        Pruned {
            removed: 2,
            kept_bytes: 2000
        }
    );
    assert_eq!(left(), HashSet::from([oldest, newest, other, part]));
    assert!(!old.exists() && !recent.exists());

    // A limit of 0 leaves only what is kept.
    let pruned = prune_cache(cache.path(), 0, &HashSet::new()).unwrap();
    assert_eq!(pruned.kept_bytes, 0);
    assert_eq!(left().len(), 2, "{:?}", left());
}

/// A cache hit records the entry's use (its time stamp) when the record is over a day old, so
/// pruning removes what has not been used, not what was written first.
#[test]
fn a_cache_hit_records_its_use() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    common::write_tiny_corpus(dir.path());
    let opts = LoadOptions {
        quantize: QuantizeOptions::default(),
        cache_dir: Some(cache.path().into()),
    };
    assert_eq!(
        Corpus::load(dir.path(), &opts, &|_, _| {})
            .unwrap()
            .cache_hits,
        0
    );
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 9);
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    let hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    for (k, path) in entries.iter().enumerate() {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(if k == 0 { hours_ago } else { long_ago })
            .unwrap();
    }
    let again = Corpus::load(dir.path(), &opts, &|_, _| {}).unwrap();
    assert_eq!(again.cache_hits, 9);
    let used = |path: &std::path::Path| std::fs::metadata(path).unwrap().modified().unwrap();
    for path in &entries[1..] {
        assert!(used(path) > hours_ago, "{} recorded", path.display());
    }
    // Within a day: left as it was (a warm load stays reads).
    let within = used(&entries[0]);
    assert!(within <= hours_ago + Duration::from_secs(1));
}

/// A composer folder whose name is not UTF-8 is refused by name: read lossily, two such folders
/// would have been one composer.
#[cfg(unix)]
#[test]
fn a_composer_folder_not_named_in_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    for name in [&b"Dvo\xf8r\xe1k"[..], b"Dvo\xe8r\xe1k", b"bach"] {
        let folder = dir.path().join(std::ffi::OsStr::from_bytes(name));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("a.mid"), simple(96, &[(0, 96, 60, 90)])).unwrap();
    }
    let opts = LoadOptions {
        cache_dir: None,
        ..Default::default()
    };
    let err = Corpus::load(dir.path(), &opts, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Dvo\u{fffd}r\u{fffd}k: a composer folder whose name is not UTF-8"),
        "{err}"
    );
}
