//! The `segue` binary, run on temporary folders.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Ev, off, on, shared, simple, smf};
use midly::num::u15;
use midly::{Format, Timing};

/// Runs the binary with the shipped weights (not a `SEGUE_WEIGHTS` of the shell) and a roll
/// cache of this checkout's build folder (not the user's, nor one shared between users).
fn segue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segue"))
        .args(args)
        .env_remove("SEGUE_WEIGHTS")
        .env(
            "SEGUE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("segue-cli-test-cache"),
        )
        .output()
        .unwrap()
}

/// `segue train lstm-vae` on `corpus`, uncached, at sizes that train in milliseconds (no metre
/// input): the caller adds the snippet length, steps and folder.
fn tiny_lstm_vae(corpus: &Path) -> Vec<&str> {
    let mut args = vec!["train", "lstm-vae", "--corpus", p(corpus), "--no-cache"];
    args.extend(["--hidden", "16", "--latent", "4", "--metre", "0"]);
    args
}

/// The per-window lines of `segue classify`'s text ("bars 1-16 ...").
fn window_lines(text: &str) -> Vec<String> {
    (text.lines())
        .filter(|l| l.trim_start().starts_with("bars "))
        .map(String::from)
        .collect()
}

fn ok(args: &[&str]) -> String {
    let out = segue(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = segue(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail with code 1"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("segue: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn info_describes_a_corpus_file() {
    let file = shared("corpus/chopin/chp_op18.mid");
    let out = ok(&["info", p(&file)]);
    assert!(out.contains("format:        1"), "{out}");
    assert!(out.contains("480 ticks per quarter note"), "{out}");
    assert!(out.contains("tempo changes: 1358"), "{out}");
    assert!(out.contains("roll:          4302 x 128"), "{out}");
    assert!(out.contains("duration:      5:10"), "{out}");
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_segue"))
        .args(["corpus", "stats", p(&shared("corpus")), "--no-cache"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader went away, as with `| head -0`
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn roll_writes_npy_png_and_midi() {
    let dir = tempfile::tempdir().unwrap();
    let src = shared("corpus/bach/bach_846.mid");
    let npy = dir.path().join("r.npy");
    let png = dir.path().join("r.png");
    let mid = dir.path().join("r.mid");
    ok(&["roll", p(&src), "-o", p(&npy)]);
    ok(&["roll", p(&src), "-o", p(&png)]);
    ok(&["roll", p(&src), "-o", p(&mid)]);
    let (steps, binary) = segue::npy::decode(&std::fs::read(&npy).unwrap()).unwrap();
    let roll = segue::Roll::read_midi(&src, &Default::default()).unwrap();
    assert_eq!((steps, binary), (roll.steps(), roll.binary()));
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[1..4], b"PNG");
    // The header's size (IHDR: width, then height, big-endian): 2 pixels per step (the default
    // scale) and a row per pitch.
    let be = |i: usize| u32::from_be_bytes(png_bytes[i..i + 4].try_into().unwrap()) as usize;
    assert_eq!(&png_bytes[12..16], b"IHDR");
    assert_eq!((be(16), be(20)), (roll.steps() * 2, 128));
    // The quantized MIDI keeps the file's metre (a waltz stays in 3/4).
    let waltz = dir.path().join("waltz.mid");
    ok(&[
        "roll",
        p(&shared("corpus/chopin/chp_op18.mid")),
        "-o",
        p(&waltz),
    ]);
    assert!(ok(&["info", p(&waltz)]).contains("metre:         3/4, then 3/8 at bar 331"));
    std::fs::remove_file(&waltz).unwrap();
    // The quantized MIDI is the piece as the studio opens it, and reads back as that roll.
    let whole = segue::roll::QuantizeOptions::whole_file();
    let piece = segue::Roll::read_midi(&src, &whole).unwrap();
    assert_eq!(segue::Roll::read_midi(&mid, &whole).unwrap(), piece);
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    // A re-strike a 32nd off the grid (ticks 180 and 300 at 480 a quarter: steps 1.5 and
    // 2.5) stays two notes in a MIDI file or WAV made of it, as in the studio; the rests
    // after the last note stay too. The roll the models read joins them (rounding half to
    // even, as the paper's data was).
    let restrike = dir.path().join("restrike.mid");
    // The file ends a bar after the notes (its last event, a tempo, at tick 1920).
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(480)),
        &[vec![
            (180, on(0, 72, 90)),
            (300, off(0, 72)),
            (300, on(0, 72, 60)),
            (420, off(0, 72)),
            (1920, Ev::Tempo(500_000)),
        ]],
    );
    std::fs::write(&restrike, bytes).unwrap();
    let out = dir.path().join("restrike.out.mid");
    ok(&["roll", p(&restrike), "-o", p(&out)]);
    let back = segue::midi::Song::read(&out).unwrap();
    let starts: Vec<(u64, u8)> = back.notes.iter().map(|n| (n.start, n.velocity)).collect();
    assert_eq!(starts, [(240, 90), (360, 60)]);
    assert_eq!(back.end_tick, 1920);
    let data = dir.path().join("restrike.npy");
    ok(&["roll", p(&restrike), "-o", p(&data)]);
    let (steps, binary) = segue::npy::decode(&std::fs::read(&data).unwrap()).unwrap();
    assert_eq!((steps, binary.iter().filter(|&&c| c != 0).count()), (3, 1));
    let wav = dir.path().join("restrike.wav");
    ok(&["render", p(&restrike), "-o", p(&wav)]);
    // Up to the last note (step 4: 0.5 s at 120 bpm) and the 1.5 s tail: the rests after it
    // are not rendered (a stray event an hour on would make an hour of silence).
    assert_eq!(hound::WavReader::open(&wav).unwrap().duration(), 44_100 * 2);
}

/// `--pedal` holds notes on through the sustain pedal, as a piano sounds them (said, and
/// heard in the rendering's length); by default they are as long as written, and the pedal is
/// said not to be applied.
#[test]
fn render_applies_the_pedal_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("pedalled.mid");
    // A quarter note (0.5 s at 120 bpm) under a pedal held for four quarters.
    let events = vec![
        (0, Ev::Pedal(0, 127)),
        (0, on(0, 60, 90)),
        (96, off(0, 60)),
        (384, Ev::Pedal(0, 0)),
    ];
    std::fs::write(
        &mid,
        smf(
            Format::SingleTrack,
            Timing::Metrical(u15::new(96)),
            &[events],
        ),
    )
    .unwrap();
    let wav = dir.path().join("out.wav");
    let seconds = || hound::WavReader::open(&wav).unwrap().duration() as f64 / 44_100.0;
    let rendered = |args: &[&str]| {
        let out = segue(args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = rendered(&["render", p(&mid), "-o", p(&wav)]);
    assert!(
        err.contains("sustain pedal (1 press) is not applied") && err.contains("--pedal"),
        "{err}"
    );
    // The note and the 1.5 s release tail.
    assert!((seconds() - 2.0).abs() < 0.01, "{}", seconds());
    let err = rendered(&["render", p(&mid), "-o", p(&wav), "--pedal"]);
    assert!(err.contains("sustain pedal (1 press) is applied"), "{err}");
    // Held to the lift, four quarters (2 s), and the tail.
    assert!((seconds() - 3.5).abs() < 0.01, "{}", seconds());
}

#[test]
fn render_writes_a_wav_from_midi_or_npy() {
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("in.mid");
    std::fs::write(&mid, simple(96, &[(0, 192, 60, 100), (192, 384, 64, 100)])).unwrap();
    let npy = dir.path().join("in.npy");
    ok(&["roll", p(&mid), "-o", p(&npy)]);
    let wav = dir.path().join("out.wav");
    let wav_peak = || {
        let reader = hound::WavReader::open(&wav).unwrap();
        (reader.into_samples::<i16>())
            .map(|s| i32::from(s.unwrap()).abs())
            .max()
            .unwrap()
    };
    for input in [&mid, &npy] {
        let out = ok(&["render", p(input), "-o", p(&wav)]);
        // Normalised, by default: the gain is said, the peak is at -1 dBFS.
        assert!(
            out.contains("44100 Hz, normalised: +") && out.contains(" dB to a -1 dBFS peak"),
            "{out}"
        );
        assert!((wav_peak() - 29_196).abs() <= 2, "{}", wav_peak());
        let reader = hound::WavReader::open(&wav).unwrap();
        assert_eq!(reader.spec().sample_rate, 44_100);
        // 4 quarters at 120 bpm (2 s) plus the 1.5 s release tail.
        assert_eq!(reader.duration(), 44_100 * 7 / 2);
    }
    // What the sixteenth-note grid takes away is said: a key struck again within a sixteenth.
    let restruck = dir.path().join("restruck.mid");
    std::fs::write(
        &restruck,
        simple(96, &[(0, 11, 60, 100), (11, 96, 60, 100)]),
    )
    .unwrap();
    let out = segue(&["render", p(&restruck), "-o", p(&wav)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("restruck.mid: rendered from its roll on the sixteenth-note grid: 1 of its 2 notes merge"),
        "{err}"
    );
    let out = segue(&["render", p(&mid), "-o", p(&wav)]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("merge"));
    // What applies to reading MIDI is refused for a roll, not silently dropped.
    for flag in ["--pedal", "--no-drums", "--paper-rounding"] {
        let err = fails(&["render", p(&npy), "-o", p(&wav), flag]);
        assert!(
            err.contains("in.npy: a .npy roll is already quantized"),
            "{err}"
        );
    }
    // A note so soft that the most normalising raises (60 dB) leaves it below -1 dBFS: said.
    let soft = dir.path().join("soft.mid");
    std::fs::write(&soft, simple(96, &[(0, 192, 60, 1)])).unwrap();
    let out = ok(&["render", p(&soft), "-o", p(&wav)]);
    assert!(
        out.contains("normalised: +60.0 dB, the most it raises: its peak is at -"),
        "{out}"
    );
    // At the synth's own level, with --no-normalize (only with a WAV to write, for generate).
    let out = ok(&["render", p(&mid), "-o", p(&wav), "--no-normalize"]);
    assert!(
        out.contains("44100 Hz, -") && out.ends_with(" LUFS)\n"),
        "{out}"
    );
    assert!(wav_peak() < 25_000, "{}", wav_peak());
    // To a loudness (EBU R128) as far as the peak allows; said either way.
    let out = ok(&["render", p(&mid), "-o", p(&wav), "--loudness", "-30"]);
    assert!(out.contains(" dB to -30.0 LUFS (peak -"), "{out}");
    let out = ok(&["render", p(&mid), "-o", p(&wav), "--loudness", "-5"]);
    assert!(
        out.contains(" dB to a -1 dBFS peak: -")
            && out.contains("LUFS, short of -5.0 (louder would clip)"),
        "{out}"
    );
    let err = fails(&["render", p(&mid), "-o", p(&wav), "--loudness", "-40"]);
    assert!(
        err.contains("--loudness must be -31..=-5 LUFS, but was -40"),
        "{err}"
    );
    let clash = segue(&[
        "render",
        p(&mid),
        "-o",
        p(&wav),
        "--loudness",
        "-14",
        "--no-normalize",
    ]);
    assert_eq!(clash.status.code(), Some(2), "a usage error");
    let refused = segue(&[
        "generate",
        "--prime",
        p(&mid),
        "-o",
        p(&mid),
        "--no-normalize",
    ]);
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--wav"));
    // A rendering of a piece with a copyright notice carries it (CC BY-SA asks for the
    // credit), in the WAV's INFO list.
    let wav = dir.path().join("bach.wav");
    ok(&[
        "render",
        p(&shared("corpus/bach/bach_846.mid")),
        "-o",
        p(&wav),
    ]);
    let bytes = std::fs::read(&wav).unwrap();
    let credit = b"ICOP";
    let at = bytes
        .windows(4)
        .position(|w| w == credit)
        .expect("an ICOP field");
    assert!(
        bytes[at..].starts_with(b"ICOP")
            && bytes[at + 8..].starts_with(b"Copyright \xa9 1996  Bernd Krueger.")
    );
}

/// Classifier ascent primed with a piece starts from its notes and keeps its tempo map: the
/// piece's copyright notice goes with what it makes, in the MIDI file and the WAV (CC BY-SA
/// asks for the credit).
#[test]
fn an_ascent_from_a_licensed_piece_keeps_its_credit() {
    let dir = tempfile::tempdir().unwrap();
    let (mid, wav) = (dir.path().join("asc.mid"), dir.path().join("asc.wav"));
    let primer = shared("corpus/chopin/chpn-p15.mid");
    let said = ok(&[
        "generate",
        "--model",
        "classifier-ascent",
        "--prime",
        p(&primer),
        "--to",
        "debussy",
        "--steps",
        "32",
        "--iterations",
        "2",
        "-o",
        p(&mid),
        "--wav",
        p(&wav),
    ]);
    // The ascent's result is the command's output, on stdout with the files written.
    assert!(said.starts_with("debussy: probability "), "{said}");
    for file in [&mid, &wav] {
        let bytes = std::fs::read(file).unwrap();
        let credit = b"Copyright \xa9 2002 by Bernd Krueger";
        assert!(
            bytes.windows(credit.len()).any(|w| w == credit),
            "{} has no credit",
            file.display()
        );
    }
}

/// A primer without notes is said: the model starts from silence, not from the piece.
#[test]
fn an_empty_primer_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.mid");
    std::fs::write(&silent, simple(96, &[])).unwrap();
    let out = segue(&[
        "generate",
        "--prime",
        p(&silent),
        "--steps",
        "16",
        "-o",
        p(&dir.path().join("out.mid")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("silent.mid: no notes to continue: the model starts from silence"),
        "{err}"
    );
}

#[test]
fn corpus_stats_lists_every_composer() {
    let out = ok(&["corpus", "stats", p(&shared("corpus")), "--no-cache"]);
    assert!(out.contains("20 composers, 620 files"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("chopin")), "{out}");
    let json = ok(&["corpus", "stats", p(&shared("corpus")), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 20);
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mid");
    std::fs::write(&junk, b"this is not MIDI").unwrap();
    let err = fails(&["info", p(&junk)]);
    assert!(
        err.contains("junk.mid") && err.contains("not a standard MIDI file"),
        "{err}"
    );

    let empty = dir.path().join("empty.mid");
    std::fs::write(&empty, b"").unwrap();
    assert!(fails(&["roll", p(&empty), "-o", p(&dir.path().join("x.npy"))]).contains("empty"));

    let err = fails(&["info", p(&dir.path().join("missing.mid"))]);
    assert!(err.contains("missing.mid"), "{err}");

    let good = dir.path().join("good.mid");
    std::fs::write(&good, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let err = fails(&["roll", p(&good), "-o", "/nonexistent-folder/out.npy"]);
    assert!(err.contains("/nonexistent-folder/out.npy"), "{err}");
    let err = fails(&["roll", p(&good), "-o", p(&dir.path().join("out.xyz"))]);
    assert!(err.contains("unsupported output type"), "{err}");
    // A folder, or a name without a type, for the output: said as such.
    let err = fails(&["render", p(&good), "-o", p(dir.path())]);
    assert!(err.contains("is a folder"), "{err}");
    let err = fails(&["roll", p(&good), "-o", p(&dir.path().join("out"))]);
    assert!(err.contains("an output without a type"), "{err}");
    // A folder where no file can be made (a kernel's, here): said by the folder and the
    // system's reason, not by the temporary file's name.
    #[cfg(target_os = "linux")]
    {
        let err = fails(&["render", p(&good), "-o", "/proc/out.wav"]);
        assert!(
            err.contains("cannot make a file in the folder /proc: ") && !err.contains(".part"),
            "{err}"
        );
    }
    // `-o -` is not stdout: said so.
    let err = fails(&["render", p(&good), "-o", "-"]);
    assert!(
        err.contains("-: Segue writes files, not to stdout"),
        "{err}"
    );
    let err = fails(&[
        "render",
        p(&good),
        "-o",
        p(&dir.path().join("out.wav")),
        "--bpm",
        "0",
    ]);
    assert!(err.contains("--bpm"), "{err}");
    let bad_npy = dir.path().join("bad.npy");
    std::fs::write(&bad_npy, b"\x93NUMPY\x01\x00\x10\x00{'descr': '|u1'}").unwrap();
    let err = fails(&["render", p(&bad_npy), "-o", p(&dir.path().join("o.wav"))]);
    assert!(err.contains("bad.npy"), "{err}");
    let err = fails(&["corpus", "stats", p(&dir.path().join("no-such-dir"))]);
    assert!(err.contains("no-such-dir"), "{err}");
    // Training sizes and rates are checked before the corpus loads.
    let fm = "--feature-matching must be 0 or more";
    let d_lr = "--d-lr must be a positive number";
    for (model, flag, value, says) in [
        ("lstm-vae", "--latent", "0", "latent size"),
        ("classifier", "--patch-steps", "0", "--patch-steps"),
        ("classifier", "--width", "60", "multiple of heads"),
        ("dcgan", "--feature-matching", "-1", fm),
        ("dcgan", "--feature-matching", "nan", fm),
        ("dcgan", "--d-lr", "-0.001", d_lr),
        ("dcgan", "--d-lr", "0", d_lr),
        (
            "dcgan",
            "--real-label",
            "0.4",
            "--real-label must be above 0.5",
        ),
        (
            "dcgan",
            "--instance-noise",
            "-0.1",
            "--instance-noise must be 0 or more",
        ),
        (
            "classifier",
            "--weight-decay",
            "-1",
            "--weight-decay must be 0 or more",
        ),
        (
            "classifier",
            "--short-windows",
            "1.5",
            "--short-windows must be between 0 and 1",
        ),
    ] {
        let err = fails(&["train", model, "--corpus", p(dir.path()), flag, value]);
        assert!(err.contains(says), "{model} {flag} {value}: {err}");
    }
    // A folder another run trains in is refused before the corpus is read, by either trainer.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    let lock = segue::train_loop::lock_run_folder(&busy).unwrap();
    for model in ["lstm-vae", "classifier"] {
        let err = fails(&[
            "train",
            model,
            "--corpus",
            "/nonexistent-corpus",
            "--out",
            p(&busy),
            "--resume",
        ]);
        assert!(
            err.contains("another training run is using"),
            "{model}: {err}"
        );
    }
    drop(lock);

    // Negative numbers reach the program's own checks rather than read as unknown flags.
    let out = dir.path().join("g.mid");
    for (flag, value, says) in [
        (
            "--temperature",
            "-1",
            "temperature must be a positive number",
        ),
        ("--alpha", "-0.5", "--alpha must be between 0 and 1"),
        (
            "--style-strength",
            "-1",
            "style strength must be between 0 and 3, not -1",
        ),
        // A longer output than Segue (or the studio) opens is refused before any work.
        ("--steps", "100001", "--steps must be 1..=100000"),
        (
            "--primer-steps",
            "100001",
            "--primer-steps must be at most 100000",
        ),
    ] {
        let err = fails(&[
            "generate",
            "--prime",
            p(&good),
            "--mode",
            "blend",
            "--to",
            "bach",
            flag,
            value,
            "-o",
            p(&out),
        ]);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[test]
fn an_existing_file_survives_a_failed_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep.npy");
    std::fs::write(&out, b"precious").unwrap();
    let junk = dir.path().join("junk.mid");
    std::fs::write(&junk, b"MThd garbage").unwrap();
    fails(&["roll", p(&junk), "-o", p(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // A write cut off half way (the process killed by a file size limit of 4 KiB, where the
    // roll of 400 steps takes 51 KiB) leaves the file as it was: the new one is written beside
    // it and renamed over it only when whole.
    let walk = dir.path().join("walk.mid");
    let notes: Vec<(u64, u64, u8, u8)> = (0..100)
        .map(|i| (i * 96, i * 96 + 90, 48 + (i % 24) as u8, 80))
        .collect();
    std::fs::write(&walk, simple(96, &notes)).unwrap();
    let limited = Command::new("sh")
        .args(["-c", "ulimit -f 8 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_segue"))
        .args(["-q", "roll", p(&walk), "-o", p(&out)])
        .output()
        .unwrap();
    assert!(!limited.status.success(), "{limited:?}");
    let kept = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes == b"precious",
            "{} holds {} bytes",
            path.display(),
            bytes.len()
        );
    };
    kept(&out);
    // Nor is a whole write made into the old file: a second name for it keeps the old bytes.
    let second_name = dir.path().join("second-name.npy");
    std::fs::hard_link(&out, &second_name).unwrap();
    ok(&["roll", p(&walk), "-o", p(&out)]);
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x93NUMPY"));
    kept(&second_name);
}

#[test]
fn classify_ranks_every_composer_and_lists_windows_within_the_piece() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("walk.mid");
    // 100 quarter notes: 400 steps, 25 bars of 4/4.
    let notes: Vec<(u64, u64, u8, u8)> = (0..100)
        .map(|i| (i * 96, i * 96 + 90, 48 + (i % 24) as u8, 80))
        .collect();
    std::fs::write(&file, simple(96, &notes)).unwrap();
    let text = ok(&["classify", p(&file), "--top", "2"]);
    assert!(text.contains("(400 steps), windows of 256 steps"), "{text}");
    // As JSON, with the file it is about and its length (a batch's lines say which is which).
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["classify", p(&file), "--json"])).unwrap();
    assert_eq!(
        (v["file"].as_str(), v["steps"].as_u64()),
        (Some(p(&file)), Some(400))
    );
    assert_eq!(v["overall"].as_array().unwrap().len(), 20);
    let ranked: Vec<f64> = text
        .lines()
        .filter(|l| l.trim_end().ends_with('%') && l.contains(". "))
        .map(|l| l.split_whitespace().rev().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ranked.len(), 20, "{text}");
    assert!(ranked.windows(2).all(|w| w[0] >= w[1]), "{text}");
    // What the ranking is worth, from the classifier's manifest.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/classifier.json"))
            .unwrap(),
    )
    .unwrap();
    let accuracy = manifest["metrics"]["accuracy"].as_f64().unwrap();
    let caveat = format!(
        "at its last validation in training, on snippets of pieces it never trained on, this \
         classifier named the right composer {:.0} % of the time; chance 5 %",
        100.0 * accuracy
    );
    assert!(text.contains(&caveat), "{text}");
    assert!((ranked.iter().sum::<f64>() - 100.0).abs() < 0.5, "{text}");
    let windows = window_lines(&text);
    assert_eq!(windows.len(), 3, "{text}");
    assert!(windows[0].contains("bars    1-16"), "{text}");
    assert!(windows[2].contains("bars   17-25"), "{text}");

    // The same notes in 3/4 (12-step bars): the windows' bars follow the piece's metre.
    let mut events = vec![(0, Ev::Meter(3, 2))];
    for &(s, e, key, vel) in &notes {
        events.push((s, on(0, key, vel)));
        events.push((e, off(0, key)));
    }
    let waltz = dir.path().join("waltz.mid");
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(96)),
        &[events],
    );
    std::fs::write(&waltz, bytes).unwrap();
    let text = ok(&["classify", p(&waltz), "--top", "2"]);
    let windows = window_lines(&text);
    assert_eq!(windows.len(), 3, "{text}");
    // Steps 0-255: bars 1-22; the last window, steps 256-399: bars 22-34.
    assert!(windows[0].contains("bars    1-22"), "{text}");
    assert!(windows[2].contains("bars   22-34"), "{text}");
}

#[test]
fn a_damaged_primer_is_used_as_far_as_it_goes_and_the_damage_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let notes: Vec<(u64, u64, u8, u8)> = (0..200)
        .map(|i| (i * 96, i * 96 + 90, 60 + (i % 12) as u8, 80))
        .collect();
    let whole = simple(96, &notes);
    let cut = dir.path().join("cut.mid");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = dir.path().join("out.mid");
    let run = segue(&[
        "generate",
        "--prime",
        p(&cut),
        "--to",
        "bach",
        "--mode",
        "blend",
        "--steps",
        "16",
        "-o",
        p(&out),
    ]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("segue: warning:") && err.contains("cut.mid") && err.contains("truncated"),
        "{err}"
    );
    // The primer's first 64 steps, then the 16 generated ones (their rests kept).
    let written = segue::Roll::read_midi(&out, &segue::QuantizeOptions::whole_file()).unwrap();
    assert_eq!(written.steps(), 64 + 16);
}

/// A continuation is written in the primer's metre and tempo map: the waltz's 3/4 and its
/// rubato, then the generated steps at the pace the primer ends with (said).
#[test]
fn a_continuation_keeps_the_primers_metre_and_tempo_map() {
    let dir = tempfile::tempdir().unwrap();
    let waltz = shared("corpus/chopin/chp_op18.mid");
    let out = dir.path().join("out.mid");
    let said = ok(&[
        "generate",
        "--prime",
        p(&waltz),
        "--from",
        "chopin",
        "--steps",
        "32",
        "-o",
        p(&out),
    ]);
    let opts = segue::QuantizeOptions::default();
    // Its first five bars (60 steps: the default 64 end on the bar line nearest them).
    let primer = segue::Roll::read_midi(&waltz, &opts).unwrap().slice(0, 60);
    let written = segue::Roll::read_midi(&out, &segue::QuantizeOptions::whole_file()).unwrap();
    assert_eq!(written.steps(), 92);
    let three_four = segue::midi::Meter {
        numerator: 3,
        denominator: 4,
    };
    assert_eq!(written.meter_at(0), three_four);
    assert_eq!(written.meter_at(91), three_four);
    assert!(primer.tempo().len() > 3, "the primer has a rubato");
    assert_eq!(&written.tempo()[..primer.tempo().len()], primer.tempo());
    let pace = primer.closing_micros_per_quarter();
    assert_eq!(written.micros_per_quarter_at(91), pace);
    let bpm = format!("32 generated steps at {:.1} bpm", 60e6 / f64::from(pace));
    assert!(said.contains(&bpm), "{said}");
}

/// The Transformer VAE's transition over one snippet or less is one code, not a glide: said.
#[test]
fn a_short_transformer_vae_transition_is_said_to_be_one_code() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("in.mid");
    std::fs::write(&primer, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let out = dir.path().join("out.mid");
    let run = segue(&[
        "generate",
        "--model",
        "transformer-vae",
        "--prime",
        p(&primer),
        "--mode",
        "transition",
        "--from",
        "bach",
        "--to",
        "chopin",
        "--steps",
        "16",
        "-o",
        p(&out),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("a transition over 16 steps is a single code between A and B"),
        "{err}"
    );
}

/// A path that holds control characters (a terminal escape, a line break) is printed escaped,
/// and a MIDI file written under such a name gets a clean track name (Unix: Windows refuses
/// such names).
#[cfg(unix)]
#[test]
fn control_characters_in_file_names_are_not_printed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad\u{1b}[31m\nred.mid");
    std::fs::write(&bad, "junk").unwrap();
    let err = fails(&["info", p(&bad)]);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("bad\\u{1b}[31m\\u{a}red.mid"), "{err:?}");

    let good = dir.path().join("good.mid");
    std::fs::write(&good, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let out = dir.path().join("out\u{1b}[31m\nx.mid");
    let said = ok(&["roll", p(&good), "-o", p(&out)]);
    assert!(!said.contains('\u{1b}'), "{said:?}");
    let bytes = std::fs::read(&out).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    let names: Vec<String> = (smf.tracks.iter().flatten())
        .filter_map(|e| match e.kind {
            midly::TrackEventKind::Meta(midly::MetaMessage::TrackName(t)) => {
                Some(String::from_utf8_lossy(t).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(names, ["out [31m x"]);
}

/// A composer is picked by name with case and surrounding spaces aside, as the check on a
/// corpus's names promises.
#[test]
fn a_composer_is_picked_with_case_and_spaces_aside() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("in.mid");
    std::fs::write(&primer, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let generate = |from: &str| {
        let out = dir.path().join("out.mid");
        ok(&[
            "generate",
            "--prime",
            p(&primer),
            "--from",
            from,
            "--steps",
            "16",
        ]
        .into_iter()
        .chain(["--seed", "5", "-o", p(&out)])
        .collect::<Vec<_>>());
        std::fs::read(&out).unwrap()
    };
    assert_eq!(generate(" Chopin "), generate("chopin"));
}

/// A primer that opens with silent bars is heard up to its --primer-steps of music (said); a
/// generated part that starts fewer notes than it has bars is said to be nearly silent.
#[test]
fn a_late_entry_primes_with_music_and_a_sparse_output_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("late.mid");
    // 16th notes at 96 ticks a quarter (24 a step) from step 82 to 200.
    let notes: Vec<(u64, u64, u8, u8)> = (82..200u64)
        .map(|s| (s * 24, s * 24 + 24, 60 + (s % 7) as u8, 80))
        .collect();
    std::fs::write(&primer, simple(96, &notes)).unwrap();
    let out = dir.path().join("out.mid");
    let run = segue(&[
        "generate",
        "--prime",
        p(&primer),
        "--steps",
        "32",
        "--temperature",
        "0.05",
        "-o",
        p(&out),
    ]);
    let said = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(said.contains("(144 primer + 32 generated steps"), "{said}");
    assert!(
        err.contains("the primer's first 80 steps are silent: the model hears them and the 64"),
        "{err}"
    );
    assert!(
        err.contains("warning: the generated part is") && err.contains("a higher --temperature"),
        "{err}"
    );
}

/// A style file without notes is refused (its code would be the code of silence, taken as
/// someone's style without a word), for both VAEs.
#[test]
fn a_style_file_without_notes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("in.mid");
    std::fs::write(&primer, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let silent = dir.path().join("silent.mid");
    std::fs::write(&silent, simple(96, &[])).unwrap();
    for model in ["lstm-vae", "transformer-vae"] {
        let err = fails(&[
            "generate",
            "--model",
            model,
            "--prime",
            p(&primer),
            "--to",
            p(&silent),
            "--mode",
            "transfer",
            "-o",
            p(&dir.path().join("out.mid")),
        ]);
        assert!(
            err.contains("silent.mid: no notes to take a style from"),
            "{model}: {err}"
        );
    }
}

/// `classify` and `eval` take a training run's folder or a manifest as `--model`, as `generate`
/// does.
#[test]
fn classify_takes_a_run_folder_or_a_manifest_as_its_model() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["json", "safetensors"] {
        std::fs::copy(
            format!("weights/classifier.{ext}"),
            dir.path().join(format!("classifier.{ext}")),
        )
        .unwrap();
    }
    let file = shared("corpus/chopin/chpn-p19.mid");
    let shipped = ok(&["classify", p(&file)]);
    let manifest = dir.path().join("classifier.json");
    for model in [dir.path(), manifest.as_path()] {
        assert_eq!(ok(&["classify", p(&file), "--model", p(model)]), shipped);
    }
    // And `eval`: the folder is the shipped model, its figures the same.
    let corpus = shared("corpus");
    let eval = |model: Option<&Path>| {
        let mut args = vec![
            "eval",
            "classifier",
            "--corpus",
            p(&corpus),
            "--per-composer",
            "1",
        ];
        if let Some(model) = model {
            args.extend(["--model", p(model)]);
        }
        ok(&args)
    };
    assert_eq!(eval(Some(dir.path())), eval(None));
    // A manifest whose weights are gone is said so, not read as weights.
    std::fs::remove_file(dir.path().join("classifier.safetensors")).unwrap();
    let err = fails(&["classify", p(&file), "--model", p(&manifest)]);
    assert!(
        err.contains("classifier.json: a manifest without its weights: ")
            && err.contains("classifier.safetensors is not there"),
        "{err}"
    );
}

/// A Transformer VAE transfer without `--from` moves the primer's own code by B minus the
/// centre of all the composers: two primers give two pieces (with A as the primer's own code
/// the code was B alone, the same music after any primer).
#[test]
fn a_transformer_vae_transfer_without_from_keeps_its_primer() {
    let dir = tempfile::tempdir().unwrap();
    let after_primer = |primer: &str| {
        let out = dir.path().join("out.mid");
        ok(&[
            "generate",
            "--model",
            "transformer-vae",
            "--prime",
            p(&shared(primer)),
            "--to",
            "debussy",
            "--mode",
            "transfer",
            "--steps",
            "128",
            "--seed",
            "3",
            "-o",
            p(&out),
        ]);
        let roll =
            segue::roll::Roll::read_midi(&out, &segue::roll::QuantizeOptions::default()).unwrap();
        roll.slice(roll.steps() - 128, 128).binary()
    };
    let chopin = after_primer("corpus/chopin/chp_op18.mid");
    let bach = after_primer("corpus/bach/bach_846.mid");
    let differ = chopin.iter().zip(&bach).filter(|(a, b)| a != b).count();
    let notes = chopin.iter().filter(|&&c| c == 1).count();
    assert!(
        differ * 2 > notes,
        "the primer counts: {differ} cells differ"
    );
}

/// A primer's drums are left out, as the studio leaves them out (said); `--drums` keeps them as
/// piano notes.
#[test]
fn a_primers_drums_are_left_out_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut events: Vec<(u64, Ev)> = (0..16u64)
        .flat_map(|i| {
            let (ch, key) = if i % 2 == 0 {
                (0, 60 + i as u8)
            } else {
                (9, 36)
            };
            [(i * 48, on(ch, key, 90)), (i * 48 + 40, off(ch, key))]
        })
        .collect();
    events.sort_by_key(|e| e.0);
    let primer = dir.path().join("band.mid");
    std::fs::write(
        &primer,
        smf(
            Format::SingleTrack,
            Timing::Metrical(u15::new(96)),
            &[events],
        ),
    )
    .unwrap();
    let generate = |extra: &[&str]| {
        let out = dir.path().join("out.mid");
        let mut args = vec![
            "generate",
            "--prime",
            p(&primer),
            "--steps",
            "8",
            "-o",
            p(&out),
        ];
        args.extend_from_slice(extra);
        let run = segue(&args);
        assert!(run.status.success(), "{run:?}");
        let roll = segue::Roll::read_midi(&out, &segue::QuantizeOptions::whole_file()).unwrap();
        let primer_has_drums = (roll.notes().iter()).any(|n| n.pitch == 36 && n.start < 32);
        (
            String::from_utf8_lossy(&run.stderr).into_owned(),
            primer_has_drums,
        )
    };
    let (said, drums) = generate(&[]);
    assert!(
        said.contains("band.mid: its 8 drum notes (channel 10) are left out"),
        "{said}"
    );
    assert!(!drums);
    let (said, drums) = generate(&["--drums"]);
    assert!(!said.contains("left out"), "{said}");
    assert!(drums);
    // Without a file to read, the flag is refused, not ignored.
    let err = fails(&[
        "generate",
        "--model",
        "dcgan",
        "--drums",
        "-o",
        p(&dir.path().join("x.mid")),
    ]);
    assert!(err.contains("--drums is not used without --prime"), "{err}");
}

/// A command never writes its result over one of its inputs, and `generate` checks both its
/// outputs before any work, so a failure leaves no half of the result behind.
#[test]
fn outputs_never_replace_inputs_and_are_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let notes: Vec<(u64, u64, u8, u8)> = (0..40)
        .map(|i| (i * 48, i * 48 + 48, 60 + (i % 7) as u8, 90))
        .collect();
    let source = simple(96, &notes);
    std::fs::write(d("in.mid"), &source).unwrap();
    let primer = d("in.mid");
    let generate = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--prime",
            p(&primer),
            "--steps",
            "16",
            "-o",
            p(out),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run_fails = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args)
    };
    // Over the primer, or over the file by another name.
    let err = run_fails(generate(&d("in.mid"), &[]));
    assert!(err.contains("this is the input"), "{err}");
    let err = run_fails(generate(&dir.path().join(".").join("in.mid"), &[]));
    assert!(err.contains("this is the input"), "{err}");
    assert_eq!(std::fs::read(d("in.mid")).unwrap(), source);
    let err = fails(&["roll", p(&d("in.mid")), "-o", p(&d("in.mid"))]);
    assert!(err.contains("this is the input"), "{err}");
    assert_eq!(std::fs::read(d("in.mid")).unwrap(), source);
    // A WAV name that leads to the MIDI file (a link) is refused too: writes follow links.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(d("in.mid"), d("linked.wav")).unwrap();
        let err = fails(&["render", p(&d("in.mid")), "-o", p(&d("linked.wav"))]);
        assert!(err.contains("this is the input"), "{err}");
        assert_eq!(std::fs::read(d("in.mid")).unwrap(), source);
    }
    // A report folder that cannot be made is said before any evaluation.
    let err = fails(&["eval", "report", "--out", p(&d("in.mid"))]);
    assert!(
        err.contains("in.mid") && err.contains("report's folder"),
        "{err}"
    );
    // Wrong kinds of output, and a WAV that cannot be written: nothing is written at all.
    let err = run_fails(generate(&d("g.wav"), &[]));
    assert!(err.contains("unsupported output type '.wav'"), "{err}");
    let err = run_fails(generate(&d("g.mid"), &["--wav", p(&d("g.txt"))]));
    assert!(err.contains("unsupported output type '.txt'"), "{err}");
    let err = run_fails(generate(&d("g.mid"), &["--wav", p(&d("no/such/x.wav"))]));
    assert!(err.contains("does not exist"), "{err}");
    assert!(!d("g.mid").exists());
    // A model name that is neither a name nor a file.
    let err = run_fails(generate(&d("g.mid"), &["--model", "bogus-name"]));
    assert!(err.contains("neither a model name"), "{err}");
    // convert-model writes a .safetensors beside its manifest, never over the input's.
    let weights = segue::models::trained::default_model_path().unwrap();
    let err = fails(&["convert-model", p(&weights), p(&d("m.json"))]);
    assert!(err.contains("unsupported output type '.json'"), "{err}");
    let err = fails(&["convert-model", p(&weights), p(&weights)]);
    assert!(err.contains("this is the input"), "{err}");
    // A model name converts the shipped file of that model.
    let out = ok(&["convert-model", "classifier", p(&d("c.safetensors"))]);
    assert!(out.contains("wrote"), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d("c.json")).unwrap()).unwrap();
    assert_eq!(manifest["model"], "classifier");
    std::fs::create_dir(d("m.json")).unwrap();
    let err = fails(&["convert-model", p(&weights), p(&d("m.safetensors"))]);
    assert!(err.contains("m.json") && err.contains("folder"), "{err}");
    assert!(!d("m.safetensors").exists(), "weights without a manifest");
}

/// `classify` refuses what it cannot judge instead of judging nonsense.
#[test]
fn classify_refuses_silence_and_bad_windows() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.mid");
    std::fs::write(&silent, simple(96, &[])).unwrap();
    let err = fails(&["classify", p(&silent)]);
    assert!(err.contains("no notes to classify"), "{err}");
    let file = shared("corpus/bach/bach_846.mid");
    for (flag, value, says) in [
        ("--window", "0", "windows of 1 to"),
        ("--window", "18446744073709551613", "windows of 1 to"),
        ("--hop", "0", "at least 1 step apart"),
        ("--top", "0", "--top must be at least 1"),
    ] {
        let err = fails(&["classify", p(&file), flag, value]);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    // A hop longer than the piece: one window, the same verdict as a hop of a window.
    let text = ok(&["classify", p(&file), "--hop", "18446744073709551615"]);
    let one = window_lines(&text);
    assert_eq!(one.len(), 1, "{text}");
    let by_window = window_lines(&ok(&["classify", p(&file), "--hop", "256"]));
    assert!(by_window.len() > 1, "{by_window:?}");
    assert_eq!(one[0], by_window[0]);
    // A roll shorter than a bar is read at its length: a share of a bar, not "0 bars".
    let short = dir.path().join("short.mid");
    std::fs::write(&short, simple(96, &[(0, 24, 60, 90)])).unwrap();
    let text = ok(&["classify", p(&short)]);
    assert!(
        text.contains("per window of 4 steps (0.25 bars of 4/4"),
        "{text}"
    );
}

/// Training options no run can use are refused before the corpus is read (here it does not
/// even exist), naming the option.
/// `generate --device` takes the compute device as training does; one this build or machine
/// lacks is refused before any file is read or written.
#[test]
fn generate_runs_on_the_device_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mid");
    let base = [
        "generate",
        "--model",
        "dcgan",
        "--steps",
        "64",
        "-o",
        p(&out),
    ];
    let err = fails(&[&base[..], &["--device", "gpu"]].concat());
    assert!(
        err.contains("--device gpu: unknown device (cpu, cuda)"),
        "{err}"
    );
    if !cfg!(feature = "cuda") {
        let err = fails(&[&base[..], &["--device", "cuda", "--prime", "/nowhere.mid"]].concat());
        assert!(err.contains("cannot use CUDA"), "{err}");
    }
    assert!(!out.exists());
    ok(&[&base[..], &["--device", "cpu"]].concat());
    assert!(out.exists());
}

#[test]
fn bad_training_options_are_refused_before_any_work() {
    for (args, says) in [
        (&["lstm-vae", "--lr=-1e-3"][..], "learning rate"),
        (&["lstm-vae", "--lr", "nan"], "learning rate"),
        (&["lstm-vae", "--style-weight=-30"], "style weight"),
        (&["lstm-vae", "--minutes", "nan"], "time limit"),
        (
            &[
                "lstm-vae",
                "--snippet-steps",
                "100",
                "--metre",
                "16",
                "--metre-map",
                "false",
            ],
            "whole bars of 16 steps",
        ),
        (
            &["lstm-vae", "--metre", "0", "--metre-map", "true"],
            "without the metre input",
        ),
        (&["classifier", "--steps", "0"], "number of steps"),
        (
            &["classifier", "--steps", "10000001"],
            "number of steps is at most 10000000",
        ),
        (
            &["lstm-vae", "--steps", "10000001"],
            "number of steps is at most 10000000",
        ),
        (&["classifier", "--batches", "0"], "batches per step"),
        (&["lstm-vae", "--batches", "0"], "batches per step"),
        (
            &["lstm-vae", "--batches", "2", "--piece-weight", "1"],
            "--batches above 1",
        ),
        // Sizes no machine trains: a message, not an abort when memory runs out.
        (
            &["lstm-vae", "--snippet-steps", "100000000", "--metre", "0"],
            "snippet length is at most",
        ),
        (
            &["lstm-vae", "--hidden", "200000"],
            "hidden size is at most",
        ),
        (
            &["classifier", "--batches", "1000000000"],
            "batches per step is at most",
        ),
        (
            &["dcgan", "--snippet-steps", "100000000"],
            "snippet length is at most",
        ),
        (&["classifier", "--width", "1000000000"], "width is at most"),
        (
            &["transformer-vae", "--eval-every", "0"],
            "validation interval",
        ),
        (&["dcgan", "--lr", "0"], "learning rate"),
    ] {
        let mut all = vec!["train"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--corpus",
            "/nonexistent/corpus",
            "--out",
            "/nonexistent/out",
        ]);
        let err = fails(&all);
        assert!(
            err.contains(says) && !err.contains("/nonexistent"),
            "{all:?}: {err}"
        );
    }
}

/// A run folder that cannot be made, a corpus that is not there and a classifier of one
/// composer are each said plainly (the first two before the corpus is read).
#[test]
fn unusable_run_folders_and_corpora_are_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join("chopin")).unwrap();
    std::fs::write(
        corpus.join("chopin/a.mid"),
        simple(96, &[(0, 960, 60, 90), (960, 1920, 64, 90)]),
    )
    .unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let train = |model: &str, corpus: &Path, out: &Path| {
        fails(&[
            "train",
            model,
            "--corpus",
            p(corpus),
            "--out",
            p(out),
            "--steps",
            "1",
            "--no-cache",
        ])
    };
    let err = train(
        "lstm-vae",
        &dir.path().join("nothere"),
        &dir.path().join("run"),
    );
    assert!(err.contains("nothere: does not exist"), "{err}");
    let err = train("lstm-vae", &corpus, &file);
    assert!(
        err.contains("afile is a file: --out names the folder"),
        "{err}"
    );
    let err = train("dcgan", &corpus, &file.join("run"));
    assert!(
        err.contains("is a file, so the run folder cannot be made"),
        "{err}"
    );
    let err = train("classifier", &corpus, &dir.path().join("run"));
    assert!(err.contains("one composer (chopin)"), "{err}");
    assert!(!dir.path().join("run").exists());
}

/// `--init`: a model of other sizes is refused before the corpus is read; a fine-tune resumed
/// after Ctrl-C goes on as one (its learning rate, the model it started from).
#[test]
fn a_fine_tune_is_checked_first_and_resumes_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/lstm-vae-studio.safetensors");
    let err = fails(&[
        "train",
        "lstm-vae",
        "--corpus",
        "/nonexistent-corpus",
        "--init",
        p(&shipped),
        "--hidden",
        "16",
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(
        err.contains("lstm-vae-studio.safetensors") && err.contains("sizes"),
        "{err}"
    );
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--hidden", "16", "--latent", "4", "--metre", "0"]);
        args.extend(["--snippet-steps", "16"]);
        args.extend(extra);
        ok(&args);
    };
    let first = dir.path().join("first");
    let tuned = dir.path().join("tuned");
    train(&["--steps", "2", "--out", p(&first)]);
    let from = first.join("lstm-vae.safetensors");
    // Trained on a corpus of one's own: no credits, and no claim of the shared corpus's licence.
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let mut own = read(&first.join("lstm-vae.json"));
    assert_eq!(own["credits"], serde_json::json!([]));
    let licence = own["licence"].as_str().unwrap().to_string();
    assert!(licence.starts_with("not known to Segue"), "{licence}");
    // One file of the shared corpus among one's own: its licence and credits go with the model.
    let mixed = dir.path().join("mixed");
    common::write_tiny_corpus(&mixed);
    std::fs::create_dir(mixed.join("bach")).unwrap();
    std::fs::copy(
        shared("corpus/bach/bach_846.mid"),
        mixed.join("bach/bach_846.mid"),
    )
    .unwrap();
    let mixed_run = dir.path().join("mixed-run");
    let mut args = tiny_lstm_vae(&mixed);
    args.extend([
        "--snippet-steps",
        "16",
        "--steps",
        "1",
        "--out",
        p(&mixed_run),
    ]);
    ok(&args);
    let m = read(&mixed_run.join("lstm-vae.json"));
    let said = m["licence"].as_str().unwrap();
    assert!(
        said.starts_with("CC BY-SA 3.0 DE") && said.contains("shared corpus (1 of "),
        "{said}"
    );
    assert_eq!(
        m["credits"],
        serde_json::json!(segue::models::trained::CORPUS_CREDITS)
    );
    // Measured without its corpus named: refused, not measured on the shared corpus's pieces.
    let err = fails(&["eval", "lstm-vae", "--model", p(&from)]);
    assert!(
        err.contains("this model was trained on `corpus` (")
            && err.contains("name that folder with --corpus"),
        "{err}"
    );
    // A fine-tune carries the licence and credits of the weights it started from, resumed too.
    own["licence"] = "CC BY-SA (a test)".into();
    own["credits"] = serde_json::json!(["A. Composer"]);
    std::fs::write(first.join("lstm-vae.json"), own.to_string()).unwrap();
    train(&["--steps", "2", "--init", p(&from), "--out", p(&tuned)]);
    // As a checkpoint written before the starting weights' rights were kept: they are read
    // from the starting model again.
    let state = tuned.join("train-state.json");
    let mut kept = read(&state);
    assert_eq!(
        kept["init_rights"]["credits"],
        serde_json::json!(["A. Composer"])
    );
    kept.as_object_mut().unwrap().remove("init_rights");
    std::fs::write(&state, kept.to_string()).unwrap();
    train(&["--steps", "4", "--resume", "--out", p(&tuned)]);
    let manifest = read(&tuned.join("lstm-vae.json"));
    // A fine-tune of that fine-tune on the same folder says each licence once.
    let again = dir.path().join("tuned-again");
    let tuned_model = tuned.join("lstm-vae.safetensors");
    train(&[
        "--steps",
        "1",
        "--init",
        p(&tuned_model),
        "--out",
        p(&again),
    ]);
    assert_eq!(
        read(&again.join("lstm-vae.json"))["licence"],
        manifest["licence"]
    );
    assert_eq!(manifest["credits"], serde_json::json!(["A. Composer"]));
    assert_eq!(
        manifest["licence"],
        format!("{licence}; fine-tuned from weights under: CC BY-SA (a test)")
    );
    assert_eq!(manifest["steps"], 4);
    assert_eq!(manifest["init_steps"], 2);
    assert_eq!(manifest["training"]["learning_rate"], 1e-4);
    assert_eq!(manifest["training"]["init"].as_str(), Some(p(&from)));
    // Resumed as another preset: the run's own sizes are said, not a problem they cause.
    let err = fails(&[
        "train",
        "lstm-vae",
        "--corpus",
        p(&corpus),
        "--resume",
        "--preset",
        "paper",
        "--out",
        p(&tuned),
    ]);
    assert!(
        err.contains("the run is a model of hidden 16") && err.contains("not the paper preset's"),
        "{err}"
    );
    // A run stopped by its time limit says so, and resumed alone keeps the limit (it counts
    // the whole run, so it is used up): it does not go on to the run's 400 steps.
    let limited = dir.path().join("limited");
    let timed = |extra: &[&str]| {
        let mut args = tiny_lstm_vae(&corpus);
        args.extend(["--snippet-steps", "16", "--out", p(&limited)]);
        args.extend(extra);
        ok(&args)
    };
    let said = timed(&["--steps", "400", "--minutes", "0.00001"]);
    assert!(said.contains("its time limit (--minutes"), "{said}");
    let steps = || -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(limited.join("lstm-vae.json")).unwrap(),
        )
        .unwrap()["steps"]
            .clone()
    };
    let before = steps();
    assert!(before.as_u64().is_some_and(|s| s < 400), "{before}");
    let said = timed(&["--resume"]);
    assert!(said.contains("its time limit (--minutes"), "{said}");
    assert_eq!(steps(), before);
    // --minutes 0 lifts it: the run goes on to its steps.
    let said = timed(&["--resume", "--minutes", "0"]);
    assert!(said.contains("done after 400 steps"), "{said}");

    // A model in a folder named in another encoding than UTF-8 (Latin-1) is started from all
    // the same, and its path recorded as text (lossily): the run's files were not written.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"Lat\xe9n"));
        std::fs::rename(&first, &odd).unwrap();
        let again = dir.path().join("from-odd");
        let out = Command::new(env!("CARGO_BIN_EXE_segue"))
            .args(["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"])
            .args(["--hidden", "16", "--latent", "4", "--metre", "0"])
            .args([
                "--snippet-steps",
                "16",
                "--steps",
                "2",
                "--out",
                p(&again),
                "--init",
            ])
            .arg(odd.join("lstm-vae.safetensors"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(again.join("lstm-vae.json")).unwrap()).unwrap();
        let init = manifest["training"]["init"].as_str().unwrap();
        assert!(
            init.ends_with("Lat\u{fffd}n/lstm-vae.safetensors"),
            "{init}"
        );
        std::fs::rename(&odd, &first).unwrap();
    }

    // A run that counts bars from each snippet's start (as every run before the metre map
    // did) resumes as one without being told, and a fine-tune of it counts them that way too.
    let metred = |extra: &[&str]| {
        let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--hidden", "16", "--latent", "4", "--metre", "4"]);
        args.extend(["--snippet-steps", "16"]);
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("lstm-vae.json")).unwrap()).unwrap()
    };
    let counted = dir.path().join("counted");
    run(metred(&[
        "--steps",
        "2",
        "--metre-map",
        "false",
        "--out",
        p(&counted),
    ]));
    run(metred(&["--steps", "3", "--resume", "--out", p(&counted)]));
    assert_eq!(read(&counted)["steps"], 3);
    assert_eq!(read(&counted)["config"]["metre_map"], false);
    let again = dir.path().join("again");
    let counted_model = counted.join("lstm-vae.safetensors");
    run(metred(&[
        "--steps",
        "1",
        "--init",
        p(&counted_model),
        "--out",
        p(&again),
    ]));
    assert_eq!(read(&again)["config"]["metre_map"], false);
    assert_eq!(read(&again)["init_steps"], 3);
    // Told otherwise on resume, it says how the checkpoint counts them.
    let told = metred(&[
        "--steps",
        "4",
        "--resume",
        "--metre-map",
        "true",
        "--out",
        p(&counted),
    ]);
    let err = fails(&told.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--metre-map false"), "{err}");
}

/// A classifier run told the metre (or reading the statistics) resumes so without the flag;
/// told otherwise, it is refused, naming what differs.
#[test]
fn a_classifier_run_resumes_reading_the_metre_and_statistics_as_it_did() {
    for (flag, key) in [("--metre-map", "metre_map"), ("--statistics", "statistics")] {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus");
        common::write_tiny_corpus(&corpus);
        let out = dir.path().join("run");
        let args = |extra: &[&str]| {
            let mut args = vec!["train", "classifier", "--corpus", p(&corpus), "--no-cache"];
            args.extend(["--width", "16", "--snippet-steps", "32", "--out", p(&out)]);
            args.extend(extra);
            args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
        };
        let run_ok = |extra: &[&str]| {
            let a = args(extra);
            ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        };
        run_ok(&["--steps", "2", flag, "true"]);
        run_ok(&["--steps", "3", "--resume"]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("classifier.json")).unwrap()).unwrap();
        assert_eq!(manifest["steps"], 3);
        assert_eq!(manifest["config"][key], true, "{flag}");
        let a = args(&["--steps", "4", "--resume", flag, "false"]);
        let err = fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            err.contains(&format!("{key}: the checkpoint's true, this run's absent")),
            "{err}"
        );
        // Measured on a corpus of one piece per composer, none held out: refused, not an
        // accuracy of 0.
        let single = dir.path().join("single");
        for composer in std::fs::read_dir(&corpus).unwrap() {
            let composer = composer.unwrap().path();
            let mut files: Vec<_> = std::fs::read_dir(&composer)
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect();
            files.sort();
            let to = single.join(composer.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(&files[0], to.join(files[0].file_name().unwrap())).unwrap();
        }
        let model = out.join("classifier.safetensors");
        let err = fails(&[
            "eval",
            "classifier",
            "--model",
            p(&model),
            "--corpus",
            p(&single),
        ]);
        assert!(err.contains("no held-out snippets"), "{err}");
    }
}

/// A run with no piece held out (one per composer) validates nothing, and still logs a line of
/// its training figures at each checkpoint, for either trainer.
#[test]
fn a_run_with_nothing_held_out_still_logs_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    for (composer, pitch, steps) in [("arps", 60, 64), ("chords", 64, 128)] {
        std::fs::create_dir_all(corpus.join(composer)).unwrap();
        let notes: Vec<(u64, u64, u8, u8)> = (0..steps)
            .map(|i| (i * 24, i * 24 + 20, pitch, 80))
            .collect();
        std::fs::write(corpus.join(composer).join("a.mid"), simple(96, &notes)).unwrap();
    }
    let sizes: [(&str, &[&str]); 2] = [
        (
            "lstm-vae",
            &[
                "--hidden",
                "16",
                "--latent",
                "4",
                "--metre",
                "0",
                "--snippet-steps",
                "16",
            ],
        ),
        ("classifier", &["--width", "16", "--snippet-steps", "32"]),
    ];
    for (model, sizes) in sizes {
        let out = dir.path().join(model);
        let mut args = vec!["train", model, "--corpus", p(&corpus), "--no-cache"];
        args.extend(sizes);
        args.extend(["--steps", "4", "--checkpoint-every", "2", "--out", p(&out)]);
        let run = segue(&args);
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{model}: {said}");
        assert!(said.contains("none held out"), "{model}: {said}");
        let steps: Vec<&str> = (said.lines()).filter(|l| l.starts_with("step ")).collect();
        assert_eq!(steps.len(), 2, "{model}: {said}");
        assert!(steps[1].starts_with("step      4"), "{model}: {said}");
    }
    // Pieces shorter than a snippet are padded with silence: said, whether some or all are.
    for (snippet, says) in [
        ("100", "1 of the 2 pieces of"),
        ("200", "warning: every piece of"),
    ] {
        let out = dir.path().join(format!("short-{snippet}"));
        let mut args = tiny_lstm_vae(&corpus);
        args.extend(["--snippet-steps", snippet, "--steps", "1", "--out", p(&out)]);
        let run = segue(&args);
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{said}");
        assert!(
            said.contains(says)
                && said.contains(&format!(
                    "shorter than a training snippet ({snippet} steps)"
                )),
            "{said}"
        );
    }
}

/// A checkpoint written by a newer Segue (a higher state format) is not resumed but said, for
/// the LSTM-VAE and the other models alike; one written before formats were numbered resumes.
#[test]
fn a_checkpoint_of_a_newer_segue_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let sizes: [(&str, &[&str]); 2] = [
        (
            "lstm-vae",
            &["--hidden", "16", "--latent", "4", "--snippet-steps", "16"],
        ),
        ("classifier", &["--width", "16", "--snippet-steps", "32"]),
    ];
    for (model, sizes) in sizes {
        let run = dir.path().join(model);
        let mut args = vec!["train", model, "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--out", p(&run)]);
        args.extend(sizes);
        ok(&[args.as_slice(), &["--steps", "2"]].concat());
        let state_path = run.join("train-state.json");
        let state = || -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap()
        };
        let mut newer = state();
        assert_eq!(newer["format"], 1, "{model}");
        newer["format"] = 2.into();
        std::fs::write(&state_path, newer.to_string()).unwrap();
        let resume = [args.as_slice(), &["--steps", "3", "--resume"]].concat();
        let err = fails(&resume);
        assert!(
            err.contains("train-state.json: a checkpoint of a newer Segue (state format 2"),
            "{model}: {err}"
        );
        // A step no run reaches (its batches' draws would be replayed for hours) is refused.
        let mut forged = state();
        forged["format"] = 1.into();
        forged["step"] = 1_000_000_000_000u64.into();
        std::fs::write(&state_path, forged.to_string()).unwrap();
        let err = fails(&resume);
        assert!(
            err.contains("train-state.json: step 1000000000000 is past the most a run takes"),
            "{model}: {err}"
        );
        let mut older = state();
        older["step"] = 2.into();
        older.as_object_mut().unwrap().remove("format");
        std::fs::write(&state_path, older.to_string()).unwrap();
        ok(&resume);
        assert_eq!(state()["step"], 3, "{model}");
        // A run folder from elsewhere with its log linked to a file of the user's: the file
        // is not written through the link.
        #[cfg(unix)]
        {
            let victim = dir.path().join(format!("{model}-notes.txt"));
            std::fs::write(&victim, "a user's own notes\n").unwrap();
            let log = run.join("metrics.jsonl");
            std::fs::remove_file(&log).unwrap();
            std::os::unix::fs::symlink(&victim, &log).unwrap();
            let again = [args.as_slice(), &["--steps", "4", "--resume"]].concat();
            let err = fails(&again);
            assert!(
                err.contains(
                    "metrics.jsonl: a link to another file, where Segue keeps a file of its own"
                ),
                "{model}: {err}"
            );
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "a user's own notes\n"
            );
        }
    }
}

/// Classifiers trained on the folds of one cross-validation are pooled by `eval classifier
/// --cross-validated`, beside the statistics baseline on the same pieces and cross-validated
/// over all of them; a set that is not one cross-validation is refused.
#[test]
fn eval_classifier_pools_fold_runs_beside_the_statistics_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let run = |k: usize| dir.path().join(format!("fold{k}"));
    let models: Vec<String> = (1..=3)
        .map(|k| run(k).join("classifier.safetensors").display().to_string())
        .collect();
    let train = |steps: &str, fold: &str, out: &Path, resume: bool| {
        let mut args = vec!["train", "classifier", "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--width", "16", "--snippet-steps", "32", "--steps", steps]);
        args.extend(["--fold", fold, "--out", p(out)]);
        args.extend(resume.then_some("--resume"));
        args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    fn strs(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    for k in 1..=3 {
        ok(&strs(&train("2", &format!("{k}/3"), &run(k), false)));
    }
    let mut args = vec!["eval", "classifier", "--corpus", p(&corpus), "--no-cache"];
    args.extend(["--baseline", "--folds", "3", "--cross-validated"]);
    args.extend(models.iter().map(String::as_str));
    let out = ok(&args);
    assert!(
        out.contains("of 9 pieces (32 steps each; windows of 32), each judged by the one of 3"),
        "{out}"
    );
    assert!(
        out.contains("statistics baseline (logistic regression"),
        "{out}"
    );
    assert!(
        out.contains("cross-validated over all 9 pieces (3 folds by piece"),
        "{out}"
    );
    // The tiny corpus's composers differ in register and figure: the baseline gets them all,
    // on the fold runs' held-out pieces and cross-validated.
    let section = |title: &str| {
        let from = out.find(title).unwrap_or_else(|| panic!("{title}: {out}"));
        out[from..].split("\n\n").next().unwrap().to_string()
    };
    let all_right = "whole pieces right per composer: arps 3/3, chords 3/3, scales 3/3";
    for title in [
        "statistics baseline (logistic",
        "statistics baseline cross-validated",
    ] {
        assert!(section(title).contains(all_right), "{out}");
    }
    assert!(
        out.contains("the classifier and the baseline together"),
        "{out}"
    );
    // Snippets of another length, judged as `segue classify` judges a file that long; the
    // baseline reads windows only.
    let mut short = vec!["eval", "classifier", "--corpus", p(&corpus), "--no-cache"];
    short.extend(["--snippet-steps", "16", "--cross-validated"]);
    short.extend(models.iter().map(String::as_str));
    let out = ok(&short);
    assert!(out.contains("(16 steps each; windows of 32)"), "{out}");
    short.push("--baseline");
    let refused = segue(&short);
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("cannot be used with") && err.contains("--baseline"),
        "{err}"
    );
    let mut two = vec!["eval", "classifier", "--corpus", p(&corpus), "--no-cache"];
    two.extend(["--cross-validated", &models[0], &models[1]]);
    let err = fails(&two);
    assert!(
        err.contains("fold 1/3, but 2 classifiers were given"),
        "{err}"
    );
    // A fold run resumes on its own fold only.
    let err = fails(&strs(&train("3", "2/3", &run(1), true)));
    assert!(
        err.contains("--fold 2/3 (the checkpoint's is 1/3)"),
        "{err}"
    );
}

/// The training loss curve of a metrics log (without its timings and validations: a run
/// stopped early also validated where it stopped), and its last validation.
fn curve(run: &Path) -> (Vec<serde_json::Value>, serde_json::Value) {
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let mut last = serde_json::Value::Null;
    let lines = (log.lines())
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.remove("seconds");
            last = fields.remove("valid").unwrap();
            v
        })
        .collect();
    (lines, last)
}

/// A run resumed with `--resume` alone keeps every option it was started with (its seed,
/// KL schedule, loss terms, learning rate, regularisation): its loss curve is the one of the
/// same run never stopped. A prior switched on at the resume is refused.
#[test]
fn a_resumed_run_keeps_the_options_it_was_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let lstm: &[&str] = &[
        "--hidden",
        "16",
        "--latent",
        "4",
        "--metre",
        "0",
        "--snippet-steps",
        "16",
        "--seed",
        "7",
        "--beta",
        "0.3",
        "--beta-delay",
        "0",
        "--beta-ramp",
        "2",
        "--free-bits",
        "0.2",
        "--style-weight",
        "5",
        "--input-dropout",
        "0.3",
        "--lr",
        "2e-3",
        "--batches",
        "2",
    ];
    let classifier: &[&str] = &[
        "--width",
        "16",
        "--snippet-steps",
        "32",
        "--seed",
        "5",
        "--weight-decay",
        "0.01",
        "--lr",
        "5e-4",
        "--note-dropout",
        "0.1",
        "--eval-every",
        "2",
    ];
    for (model, flags) in [("lstm-vae", lstm), ("classifier", classifier)] {
        let train = |out: &Path, extra: &[&str]| {
            let mut args = vec!["train", model, "--corpus", p(&corpus), "--no-cache"];
            args.extend(["--out", p(out)]);
            args.extend(extra);
            ok(&args);
        };
        let whole = dir.path().join(format!("{model}-whole"));
        let stopped = dir.path().join(format!("{model}-stopped"));
        train(&whole, &[flags, &["--steps", "4"]].concat());
        train(&stopped, &[flags, &["--steps", "2"]].concat());
        train(&stopped, &["--steps", "4", "--resume"]);
        let (steps, valid) = curve(&whole);
        assert_eq!(steps.len(), 4, "{model}");
        assert!(!valid.is_null(), "{model}: validated at the end");
        assert_eq!((steps, valid), curve(&stopped), "{model}");
    }
    // Two batches a step are two snippets of each composer (another curve than one), and a
    // run keeps its number.
    let one_batch = dir.path().join("lstm-vae-one-batch");
    let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
    args.extend(["--out", p(&one_batch), "--steps", "4"]);
    args.extend(&lstm[..lstm.len() - 2]);
    ok(&args);
    let whole = dir.path().join("lstm-vae-whole");
    assert_ne!(curve(&one_batch).0, curve(&whole).0);
    let stopped = dir.path().join("lstm-vae-stopped");
    let resume_fails = |extra: &[&str]| {
        let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--steps", "6", "--resume", "--out", p(&stopped)]);
        args.extend(extra);
        fails(&args)
    };
    let err = resume_fails(&["--batches", "1"]);
    assert!(err.contains("--batches"), "{err}");
    // Options in the run's state file that no run can use (edited by hand) are refused
    // naming the file.
    let state = stopped.join("train-state.json");
    let saved = std::fs::read(&state).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    json["options"]["grad_clip"] = (-5.0).into();
    std::fs::write(&state, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = resume_fails(&[]);
    assert!(
        err.contains("train-state.json") && err.contains("gradient clip"),
        "{err}"
    );
    // So is a training time that is no time (it would move the --minutes limit).
    let mut json: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    json["seconds"] = (-500.0).into();
    std::fs::write(&state, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = resume_fails(&[]);
    assert!(
        err.contains("train-state.json: a training time of -500 s is no time"),
        "{err}"
    );
    std::fs::write(&state, saved).unwrap();
    // The start says what it trains on and holds out.
    let said = segue(
        &[
            &[
                "train",
                "classifier",
                "--corpus",
                p(&corpus),
                "--no-cache",
                "--steps",
                "1",
            ],
            &[
                "--out",
                p(&dir.path().join("said")),
                "--width",
                "16",
                "--snippet-steps",
                "32",
            ][..],
        ]
        .concat(),
    );
    let said = String::from_utf8_lossy(&said.stderr);
    assert!(said.contains("held out for validation"), "{said}");
    // A run already at the steps asked for is not resumed as if it trained.
    let run = dir.path().join("lstm-vae-stopped");
    let again = [
        "train",
        "lstm-vae",
        "--corpus",
        p(&corpus),
        "--no-cache",
        "--resume",
    ];
    let err = fails(&[&again[..], &["--out", p(&run), "--steps", "4"]].concat());
    assert!(err.contains("already at step 4"), "{err}");
    // A folder of another model's run is said as such, resumed or not.
    let classifier_run = dir.path().join("classifier-stopped");
    for resume in [true, false] {
        let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
        args.extend(["--out", p(&classifier_run), "--steps", "6"]);
        if resume {
            args.push("--resume");
        }
        let err = fails(&args);
        assert!(
            err.contains("holds a run of the classifier")
                && err.contains("segue train classifier --resume"),
            "{err}"
        );
    }
    // The model a run trained is what its folder, or its manifest, names to `generate`.
    let primer = dir.path().join("primer.mid");
    std::fs::write(&primer, simple(96, &[(0, 384, 60, 90)])).unwrap();
    let composer = std::fs::read_dir(&corpus)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let composer = composer.to_str().unwrap();
    let outputs: Vec<Vec<(u64, u64, u8)>> = [
        run.clone(),
        run.join("lstm-vae.json"),
        run.join("lstm-vae.safetensors"),
    ]
    .iter()
    .enumerate()
    .map(|(i, model)| {
        let out = dir.path().join(format!("g{i}.mid"));
        ok(&[
            "generate",
            "--model",
            p(model),
            "--prime",
            p(&primer),
            "--from",
            composer,
            "--steps",
            "16",
            "-o",
            p(&out),
        ]);
        let song = segue::midi::Song::read(&out).unwrap();
        song.notes
            .iter()
            .map(|n| (n.start, n.end, n.pitch))
            .collect()
    })
    .collect();
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    let err = fails(&[
        "generate",
        "--model",
        p(dir.path()),
        "-o",
        p(&dir.path().join("x.mid")),
    ]);
    assert!(err.contains("a folder without a model in it"), "{err}");
    let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
    args.extend([
        "--out",
        p(&run),
        "--steps",
        "5",
        "--resume",
        "--composer-prior",
    ]);
    let err = fails(&args);
    assert!(err.contains("a run keeps its prior"), "{err}");
    // A run's command repeated to resume it, its preset named again, counts bars as it did.
    let bars = dir.path().join("bars");
    let sizes = ["--hidden", "16", "--latent", "4", "--snippet-steps", "16"];
    let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
    args.extend(["--out", p(&bars), "--preset", "studio"]);
    args.extend(sizes);
    ok(&[args.as_slice(), &["--metre-map", "false", "--steps", "2"]].concat());
    ok(&[args.as_slice(), &["--steps", "3", "--resume"]].concat());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bars.join("lstm-vae.json")).unwrap()).unwrap();
    assert_eq!(manifest["steps"], 3);
    assert_eq!(manifest["config"]["metre_map"], false);
}

/// `bench lstm-vae` refuses what it cannot time before timing anything.
#[test]
fn bench_lstm_vae_refuses_bad_arguments_before_timing() {
    let zero = segue(&["bench", "lstm-vae", "--iters", "0", "--no-reference"]);
    assert_eq!(zero.status.code(), Some(2), "a usage error");
    let err = fails(&[
        "bench",
        "lstm-vae",
        "--presets",
        "studio,bogus",
        "--no-reference",
    ]);
    assert!(err.contains("unknown preset `bogus`"), "{err}");
    let err = fails(&["bench", "lstm-vae", "--reference", "/nonexistent-reference"]);
    assert!(
        err.contains("lstm_vae_torch.py") && err.contains("not there"),
        "{err}"
    );
}

/// The evaluations refuse counts they cannot measure with (a report of nothing would read
/// as perfect), and flags they would ignore, as usage errors before any work.
#[test]
fn evaluations_refuse_empty_counts_and_flags_they_do_not_use() {
    // No corpus and a folder of the test's own: were a check lost, the command would fail
    // at once, not evaluate for minutes nor write over the committed report.
    let dir = tempfile::tempdir().unwrap();
    let away = ["--corpus", "/nonexistent/corpus"];
    for args in [
        &[
            "eval",
            "report",
            "--per-composer",
            "0",
            "--out",
            p(dir.path()),
        ][..],
        &["eval", "report", "--pairs", "0", "--out", p(dir.path())],
        &["eval", "lstm-vae", "--per-composer", "0"],
        &["eval", "classifier", "--per-composer", "0"],
        &["eval", "classifier", "--seed", "5"],
        // Snippets no machine holds (the training limit, 4096 steps).
        &["eval", "classifier", "--snippet-steps", "1000000000"],
    ] {
        let out = segue(&[args, &away[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
    }
}

/// An evaluation whose held-out pieces are all one composer's says so, rather than print
/// composer figures that compare each snippet with itself.
#[test]
fn an_evaluation_of_one_composer_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = common::shared("corpus");
    for (composer, files) in [("bach", 3), ("chopin", 1)] {
        let to = dir.path().join(composer);
        std::fs::create_dir_all(&to).unwrap();
        let mut pieces: Vec<_> = std::fs::read_dir(corpus.join(composer))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        pieces.sort();
        for piece in &pieces[..files] {
            std::fs::copy(piece, to.join(piece.file_name().unwrap())).unwrap();
        }
    }
    // (After a note that this is not the model's training corpus.)
    let out = segue(&["eval", "lstm-vae", "--corpus", p(dir.path()), "--no-cache"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "segue: the held-out pieces hold snippets of one of the model's composers only (bach)"
        ),
        "{err}"
    );
}

/// `eval report` into a folder it cannot write to fails before the evaluation, naming it.
#[cfg(unix)]
#[test]
fn eval_report_refuses_a_folder_it_cannot_write_before_evaluating() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes into a read-only folder; not into sysfs.
    let Some(out) = [locked.as_path(), Path::new("/sys/kernel")]
        .into_iter()
        .find(|d| d.is_dir() && tempfile::tempfile_in(d).is_err())
    else {
        return;
    };
    let err = fails(&[
        "eval",
        "report",
        "--corpus",
        "/nonexistent/corpus",
        "--out",
        p(out),
    ]);
    assert!(
        err.contains(&out.display().to_string()) && err.contains("cannot write"),
        "{err}"
    );
}

/// `bench roll` without its Python reference says so (and how to go on) before timing, and
/// before making a Python environment.
#[test]
fn bench_roll_refuses_a_missing_reference_before_timing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.mid"), simple(96, &[(0, 96, 60, 90)])).unwrap();
    let venv = dir.path().join("venv");
    let err = fails(&[
        "bench",
        "roll",
        "--corpus",
        p(dir.path()),
        "--reference",
        "/nonexistent/reference",
        "--venv",
        p(&venv),
    ]);
    assert!(
        err.contains("roll_convert.py") && err.contains("--no-reference"),
        "{err}"
    );
    assert!(!venv.exists(), "a Python environment was made first");
}

/// `--from A --to B` runs in every mode of the LSTM-VAE (the form its issue gives), the style
/// a mode does not use said.
#[test]
fn generate_takes_both_styles_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("in.mid");
    std::fs::write(&primer, simple(96, &[(0, 96, 60, 90), (96, 192, 64, 90)])).unwrap();
    let out = dir.path().join("out.mid");
    let styled = |mode: &str, from: &str, to: &str, more: &[&str]| {
        let mut args = vec!["generate", "--prime", p(&primer), "--mode", mode];
        args.extend(["--from", from, "--to", to, "--steps", "16", "-o", p(&out)]);
        args.extend_from_slice(more);
        let run = segue(&args);
        let err = String::from_utf8_lossy(&run.stderr).into_owned();
        (run.status.code(), err)
    };
    for (mode, says) in [
        ("continue", Some("--to is not used by --mode continue")),
        (
            "transfer",
            Some("--from is not used by the LSTM-VAE's transfer"),
        ),
        ("transition", None),
        ("blend", None),
    ] {
        let (code, err) = styled(mode, "chopin", "debussy", &[]);
        assert_eq!(code, Some(0), "{mode}: {err}");
        match says {
            Some(note) => assert!(err.contains(note), "{mode}: {err}"),
            None => assert!(!err.contains("is not used"), "{mode}: {err}"),
        }
    }
    // The style a mode does not use is not read (a file that is not there), nor counted for
    // --style-strength (a composer there does not make a strength used).
    assert_eq!(styled("transfer", "nosuch.mid", "debussy", &[]).0, Some(0));
    assert_eq!(styled("continue", "chopin", "nosuch.mid", &[]).0, Some(0));
    let (code, err) = styled("transfer", "chopin", p(&primer), &[]);
    assert_eq!(code, Some(0), "{err}");
    let (_, err) = styled("transfer", "chopin", p(&primer), &["--style-strength", "2"]);
    assert!(err.contains("--style-strength is not used"), "{err}");
    // Unused, a style file is still an input: no output lands on it.
    let style = dir.path().join("style.mid");
    std::fs::copy(&primer, &style).unwrap();
    let before = std::fs::read(&style).unwrap();
    let args = [
        "generate",
        "--prime",
        p(&primer),
        "--from",
        "chopin",
        "--to",
        p(&style),
    ];
    let err = fails(&[&args[..], &["--steps", "16", "-o", p(&style)]].concat());
    assert!(err.contains("this is the input"), "{err}");
    assert_eq!(std::fs::read(&style).unwrap(), before);
}

/// `segue generate` refuses a flag the model or mode would drop (the music would not be what
/// was asked for), before reading the primer; and audio that would land on the MIDI file.
#[test]
fn generate_refuses_flags_it_would_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let primer = dir.path().join("in.mid");
    std::fs::write(&primer, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let out = dir.path().join("out.mid");
    for (args, says) in [
        (
            &["--mode", "blend", "--to", "bach", "--transition-steps", "8"][..],
            "outside --mode transition",
        ),
        (
            &[
                "--mode",
                "transition",
                "--to",
                "bach",
                "--transition-steps",
                "0",
            ],
            "1..=16",
        ),
        (
            &[
                "--mode",
                "transition",
                "--to",
                "bach",
                "--transition-steps",
                "17",
            ],
            "1..=16",
        ),
        (
            &["--model", "dcgan", "--to", "bach"],
            "is not used by the DCGAN",
        ),
        (
            &[
                "--model",
                "classifier-ascent",
                "--to",
                "bach",
                "--from",
                "chopin",
            ],
            "--from is not used",
        ),
        // A model without modes says so (it pointed to a --mode the model refuses).
        (
            &[
                "--model",
                "classifier-ascent",
                "--to",
                "bach",
                "--alpha",
                "0.3",
            ],
            "--alpha is not used by this model: only the VAEs have modes",
        ),
        (
            &["--model", "classifier-ascent", "--to", "bach", "--linear"],
            "--linear is not used by this model: only the VAEs have modes",
        ),
        // Controls with defaults, given where nothing uses them.
        (
            &["--mode", "transfer", "--to", "bach", "--alpha", "0.3"],
            "--alpha is not used outside --mode blend",
        ),
        (
            &["--mode", "transfer", "--to", "bach", "--linear"],
            "--linear is not used",
        ),
        (
            &["--iterations", "5"],
            "--iterations is not used outside classifier-ascent",
        ),
        (
            &[
                "--model",
                "classifier-ascent",
                "--to",
                "bach",
                "--mode",
                "blend",
            ],
            "--mode is not used",
        ),
        (
            &[
                "--model",
                "classifier-ascent",
                "--to",
                "bach",
                "--temperature",
                "0.5",
            ],
            "--temperature is not used by classifier-ascent",
        ),
        (
            &[
                "--model",
                "classifier-ascent",
                "--to",
                "bach",
                "--primer-steps",
                "10",
            ],
            "--primer-steps is not used",
        ),
        // A style strength where neither style is a composer (a file's code is its own).
        (
            &[
                "--mode",
                "transfer",
                "--to",
                p(&primer),
                "--style-strength",
                "2",
            ],
            "--style-strength is not used",
        ),
    ] {
        let mut all = vec![
            "generate",
            "--prime",
            p(&primer),
            "--steps",
            "16",
            "-o",
            p(&out),
        ];
        all.extend_from_slice(args);
        let err = fails(&all);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.exists());
    }
    // --pedal without a file to read (its primer or a style file) would be dropped.
    let ascent = ["--model", "classifier-ascent", "--to", "bach", "--pedal"];
    let err = fails(&[&["generate", "-o", p(&out)][..], &ascent].concat());
    assert!(err.contains("--pedal is not used without --prime"), "{err}");
    // Errors name the flag at fault (--steps is checked before the range that depends on it).
    let err = fails(&["generate", "--max-notes", "0", "-o", p(&out)]);
    assert!(err.contains("--max-notes"), "{err}");
    let err = fails(&[
        "generate",
        "--mode",
        "transition",
        "--to",
        "bach",
        "--steps",
        "0",
        "--transition-steps",
        "1",
        "-o",
        p(&out),
    ]);
    assert!(err.contains("--steps must be 1..=100000"), "{err}");
    let err = fails(&[
        "generate",
        "--model",
        "classifier-ascent",
        "--to",
        "bach",
        "--steps",
        "600",
        "-o",
        p(&out),
    ]);
    assert!(
        err.contains("600 steps") && err.contains("window of 512"),
        "{err}"
    );
    // The DCGAN has no primer (a damaged one is not even read), and the shipped one keeps its
    // strongest cells: it draws nothing a temperature would change.
    for (flag, value, says) in [
        ("--prime", "/nonexistent.mid", "--prime is not used"),
        ("--primer-steps", "10", "--primer-steps is not used"),
        (
            "--temperature",
            "0.5",
            "--temperature is not used by this DCGAN",
        ),
    ] {
        let err = fails(&["generate", "--model", "dcgan", flag, value, "-o", p(&out)]);
        assert!(err.contains(says), "{flag}: {err}");
    }
    assert!(!out.exists());
    // --wav linked to the MIDI file's place: refused, nothing written.
    #[cfg(unix)]
    {
        let wav = dir.path().join("out.wav");
        std::os::unix::fs::symlink(&out, &wav).unwrap();
        let err = fails(&[
            "generate",
            "--prime",
            p(&primer),
            "--steps",
            "16",
            "-o",
            p(&out),
            "--wav",
            p(&wav),
        ]);
        assert!(err.contains("where the MIDI file"), "{err}");
        assert!(!out.exists());
    }
}

/// The studio says why it cannot open before any window is tried: no display (winit's own
/// message names its source files), or a file to open that is not there.
#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn the_studio_says_what_keeps_it_from_opening() {
    let run = |display: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_segue"));
        c.args(args).env_remove("WAYLAND_DISPLAY");
        match display {
            Some(d) => c.env("DISPLAY", d),
            None => c.env_remove("DISPLAY"),
        };
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run(None, &[]);
    assert!(
        err.contains("no display") && err.contains("segue --help"),
        "{err}"
    );
    let err = run(Some(":9999"), &["studio", "/nonexistent/piece.mid"]);
    assert!(
        err.contains("/nonexistent/piece.mid") && err.contains("no such file"),
        "{err}"
    );
}

/// A pipe named like a MIDI file in a corpus is left out, saying why, rather than waited on
/// for ever; an output path that is a pipe is refused rather than replaced by a file; an
/// empty cache setting counts as unset, rather than filling the working folder with cache
/// files; a pipe named on the command line (process substitution) is read.
#[cfg(unix)]
#[test]
fn pipes_found_or_written_to_are_refused_named_ones_read_and_an_empty_cache_setting_unset() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let mkfifo = |path: &Path| {
        let made = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success());
    };
    mkfifo(&corpus.join("arps").join("pipe.mid"));
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // `timeout`: a reader waiting on the pipe would otherwise hold the test for ever.
    let run = |args: &[&str]| {
        Command::new("timeout")
            .arg("120")
            .arg(env!("CARGO_BIN_EXE_segue"))
            .args(args)
            .current_dir(&work)
            .env("SEGUE_CACHE_DIR", "")
            .env("XDG_CACHE_HOME", "")
            .env("HOME", dir.path().join("home"))
            .output()
            .unwrap()
    };
    let out = run(&["corpus", "stats", p(&corpus)]);
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("pipe.mid") && said.contains("not a regular file"),
        "{said}"
    );
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "the working folder got {left:?}");
    // The cache went where HOME's would be.
    assert!(dir.path().join("home/.cache/segue/rolls").is_dir());

    let pipe = work.join("out.npy");
    mkfifo(&pipe);
    let piece = corpus.join("arps").join("p0.mid");
    let out = run(&["roll", p(&piece), "-o", p(&pipe)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    let kind = std::fs::symlink_metadata(&pipe).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&kind),
        "the pipe was replaced"
    );

    // A pipe given as a style is read too (it was taken for a composer's name).
    let out_mid = work.join("styled.mid");
    let styled = Command::new("bash")
        .arg("-c")
        .arg(r#"timeout 120 "$0" generate --prime "$1" --mode blend --to <(cat "$1") --steps 8 -o "$2""#)
        .arg(env!("CARGO_BIN_EXE_segue"))
        .arg(&piece)
        .arg(&out_mid)
        .output()
        .unwrap();
    assert!(
        styled.status.success(),
        "{}",
        String::from_utf8_lossy(&styled.stderr)
    );
    assert!(out_mid.is_file());
    // A pipe the user names is read: process substitution has its writer.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"timeout 120 "$0" info <(cat "$1")"#)
        .arg(env!("CARGO_BIN_EXE_segue"))
        .arg(&piece)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("file:          /dev/fd/"), "{said}");
}

/// Starts rendering an hour of music into a folder of its own (through `wrapper`, if any), and
/// returns once the render has begun its file there: the child and the folder.
#[cfg(unix)]
fn begin_long_render(
    dir: &Path,
    wrapper: Option<&str>,
) -> (std::process::Child, std::path::PathBuf) {
    // An hour of a note every quarter at 120 bpm: seconds of rendering.
    let (piece, out_dir) = long_piece(dir, "hour.mid", 7200);
    let segue = env!("CARGO_BIN_EXE_segue");
    let mut command = Command::new(wrapper.unwrap_or(segue));
    if wrapper.is_some() {
        command.arg(segue);
    }
    let mut child = command
        .args(["render", p(&piece), "-o", p(&out_dir.join("hour.wav"))])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&out_dir).unwrap().next().is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before writing"
        );
        assert!(started.elapsed().as_secs() < 120, "no file was begun");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child, out_dir)
}

/// A piece of `quarters` notes a quarter apart written in `dir`, and an empty folder `out`
/// beside it for what a command makes of it.
#[cfg(unix)]
fn long_piece(dir: &Path, name: &str, quarters: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let notes: Vec<(u64, u64, u8, u8)> = (0..quarters)
        .map(|i| (i * 96, i * 96 + 90, 48 + (i % 24) as u8, 80))
        .collect();
    let piece = dir.join(name);
    std::fs::write(&piece, common::simple(96, &notes)).unwrap();
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    (piece, out_dir)
}

/// Asserts that `child`, sent a stop signal, ended with exit code 130 leaving `out_dir` empty
/// (no output, no hidden temporary file).
#[cfg(unix)]
fn assert_stopped_leaving_nothing(child: std::process::Child, out_dir: &Path) {
    let ended = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{err}");
    let left: Vec<_> = std::fs::read_dir(out_dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Waits until `child` handles signal number `signo` (Linux's /proc says which signals a
/// process catches), so that a signal sent next is not one that kills it before its handler
/// is there; elsewhere a pause stands in.
#[cfg(unix)]
fn wait_for_handler(child: &std::process::Child, signo: u32) {
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    while let Ok(text) = std::fs::read_to_string(&status) {
        // Ended already (a zombie keeps the mask it had): the caller's checks say how.
        if (text.lines()).any(|l| l.starts_with("State:") && l.contains('Z')) {
            return;
        }
        let caught = (text.lines())
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        if caught.is_some_and(|mask| mask & (1 << (signo - 1)) != 0) {
            return;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "no handler for signal {signo}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// Sends `signal` to `child`.
#[cfg(unix)]
fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A render ended by SIGTERM (`timeout`, a job scheduler, a closed terminal's SIGHUP) stops as
/// Ctrl+C stops it: exit code 130 and no hidden temporary file left in the output's folder
/// (without a handler for it the file stayed, 90 MB a try).
#[cfg(unix)]
#[test]
fn a_terminated_render_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (child, out_dir) = begin_long_render(dir.path(), None);
    signal(&child, "-TERM");
    assert_stopped_leaving_nothing(child, &out_dir);
}

/// A command that does not stop by itself (reading a long piece for a picture of it) ends at
/// once on SIGTERM, as on Ctrl+C, with exit code 130 and nothing written (the signal killed
/// it: a hidden temporary file stayed where it was writing).
#[cfg(unix)]
#[test]
fn a_terminated_picture_ends_at_once_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Nearly the longest roll read (196 000 steps): seconds of work.
    let (piece, out_dir) = long_piece(dir.path(), "long.mid", 49_000);
    let child = Command::new(env!("CARGO_BIN_EXE_segue"))
        .args([
            "roll",
            p(&piece),
            "-o",
            p(&out_dir.join("long.png")),
            "--scale",
            "8",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_handler(&child, 15);
    signal(&child, "-TERM");
    assert_stopped_leaving_nothing(child, &out_dir);
}

/// Under nohup a hangup stays ignored (the handler for a closed terminal replaced nohup's
/// "ignore", so logging out stopped a run started to outlive it): the render goes on to its end.
#[cfg(unix)]
#[test]
fn under_nohup_a_hangup_does_not_stop_a_render() {
    let dir = tempfile::tempdir().unwrap();
    let (child, out_dir) = begin_long_render(dir.path(), Some("nohup"));
    signal(&child, "-HUP");
    let ended = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(0), "{err}");
    assert!(out_dir.join("hour.wav").is_file(), "{err}");
}

/// Sizes that pass each check alone but together need more memory than the machine has are
/// refused with a message before training, rather than ending in an allocation failure.
#[test]
fn a_model_too_large_for_the_machine_is_refused_with_a_message() {
    // 4.2 billion weights: at least 67 GB with gradients and Adam's moments.
    if segue::train_loop::physical_memory().is_none_or(|m| m > 60_000_000_000) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let out = dir.path().join("run");
    let err = fails(&[
        "train",
        "lstm-vae",
        "--corpus",
        p(&corpus),
        "--no-cache",
        "--hidden",
        "4096",
        "--layers",
        "16",
        "--steps",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("GB of memory"), "{err}");
    assert!(!out.exists(), "a refused run leaves no folder");
}

/// A load that writes to the roll cache prunes it to `$SEGUE_CACHE_LIMIT_MB`, least recently
/// used entries first, keeping the rolls it has just used and anything that is not an entry.
#[test]
fn a_load_prunes_the_roll_cache_to_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let stale = cache.join("0123.roll");
    std::fs::write(&stale, vec![0u8; 2 << 20]).unwrap();
    let mine = cache.join("mine.txt");
    std::fs::write(&mine, vec![0u8; 2 << 20]).unwrap();
    let stats = |limit: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_segue"))
            .args(["corpus", "stats", p(&corpus), "--cache-dir", p(&cache)])
            .env("SEGUE_CACHE_LIMIT_MB", limit)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{said}");
        // The table on stdout (the same whatever the cache held), the cache's share on stderr.
        assert!(!said.contains("cache"), "{said}");
        said + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(stats("1").contains("9 files"));
    assert!(!stale.exists(), "the stale entry is removed");
    assert!(mine.exists(), "what is not an entry stays");
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 10, "the load's 9 rolls and the other file");
    // A load that writes (one roll made again) keeps only its own rolls at a limit of 0.
    let roll = (cache.read_dir().unwrap())
        .map(|e| e.unwrap().path())
        .find(|path| path != &mine)
        .unwrap();
    std::fs::remove_file(roll).unwrap();
    std::fs::write(cache.join("other.roll"), b"x").unwrap();
    assert!(
        stats("0").contains("segue: note: 8 of 9 files read from the roll cache"),
        "its own rolls stay"
    );
    assert!(!cache.join("other.roll").exists());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 10);

    // Within the limit nothing goes (a roll made again: a load that writes).
    let roll = (cache.read_dir().unwrap())
        .map(|e| e.unwrap().path())
        .find(|path| path != &mine)
        .unwrap();
    std::fs::remove_file(roll).unwrap();
    std::fs::write(&stale, vec![0u8; 2 << 20]).unwrap();
    assert!(stats("1024").contains("8 of 9 files read from the roll cache"));
    assert!(stale.exists());
}

/// An installed `segue` (a package's `/usr/bin/segue`, not the checkout's) finds the weights
/// where packages put them: `share/segue/weights` beside its `bin/`, else in the user's data
/// folder. The weights placed there are cut short, so the error names the file it chose.
#[test]
fn an_installed_program_finds_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("usr");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    let exe = prefix.join("bin/segue");
    std::fs::copy(env!("CARGO_BIN_EXE_segue"), &exe).unwrap();
    let place_cut_weights = |weights: &Path| {
        std::fs::create_dir_all(weights).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
        let model = std::fs::read(shipped.join("lstm-vae-studio.safetensors")).unwrap();
        std::fs::write(weights.join("lstm-vae-studio.safetensors"), &model[..5000]).unwrap();
        let manifest = shipped.join("lstm-vae-studio.json");
        std::fs::copy(manifest, weights.join("lstm-vae-studio.json")).unwrap();
    };
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = dir.path().join("out.mid");
    let run = || {
        let out = Command::new(&exe)
            .args(["generate", "--steps", "8", "-o"])
            .arg(&out)
            .current_dir(&home)
            .env_remove("SEGUE_WEIGHTS")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", &home)
            .env("XDG_DATA_DIRS", dir.path().join("nowhere"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    // Beside the program's bin/, then (that one gone) in the user's data folder.
    for weights in [
        prefix.join("share/segue/weights"),
        home.join(".local/share/segue/weights"),
    ] {
        place_cut_weights(&weights);
        let err = run();
        let chosen = weights.join("lstm-vae-studio.safetensors");
        assert!(
            err.contains(&format!("{}: not a complete", chosen.display())),
            "{err}"
        );
        std::fs::remove_dir_all(&weights).unwrap();
    }
    assert!(!out.exists());
}

/// `segue --version` gives the licences and the shipped weights' credits (CC BY-SA asks that
/// they go with the weights); `-V` the version alone.
#[test]
fn the_version_names_the_licences_and_credits() {
    let long = ok(&["--version"]);
    assert!(
        long.starts_with(&format!("segue {} (", env!("CARGO_PKG_VERSION"))),
        "{long}"
    );
    assert!(long.contains("MIT or Apache-2.0"), "{long}");
    assert!(
        long.contains("CC BY-SA 3.0 DE") && long.contains("\"Bernd Krueger, piano-midi.de\""),
        "{long}"
    );
    assert!(long.contains("music21 corpus (Cuthbert et al.)"), "{long}");
    let short = ok(&["-V"]);
    assert_eq!(short.lines().count(), 1, "{short}");
}

/// A reader done with stdout early (`segue generate ... | head -1`) does not hide a failure
/// that comes after it: the WAV that could not be written is still said on stderr, and the
/// exit code says it. Here the file-size limit (`ulimit -f`) stops the WAV half-way.
#[cfg(unix)]
#[test]
fn a_closed_stdout_does_not_hide_a_failed_wav() {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("out.mid");
    let wav = dir.path().join("out.wav");
    let primer = shared("corpus/bach/chorale_bwv281.mid");
    let mut command = Command::new(env!("CARGO_BIN_EXE_segue"));
    command
        .args(["generate", "--prime"])
        .arg(&primer)
        .args(["--steps", "64", "-o"])
        .arg(&mid)
        .arg("--wav")
        .arg(&wav)
        .env_remove("SEGUE_WEIGHTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the child only sets its own limit and a signal's
    // disposition, both async-signal-safe calls.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 100 << 10,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // The reader is gone before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the MIDI file was written, the audio was not") && err.contains("out.wav"),
        "{err}"
    );
    assert!(mid.exists() && !wav.exists());
}

/// `--model` with a folder: a training run's model, or the folder's one model file whatever
/// its name; a folder of several lists them all (the weights folder's LSTM-VAE too).
#[test]
fn a_model_folder_names_its_models() {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    // Refused, but should that ever break, written into a temporary folder, not the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let x = scratch.path().join("x.mid");
    let err = fails(&["generate", "--model", p(&weights), "-o", p(&x)]);
    assert!(
        err.contains("a folder of several models")
            && err.contains("lstm-vae-studio.safetensors")
            && err.contains("dcgan.safetensors"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    for ext in ["safetensors", "json"] {
        let from = weights.join(format!("dcgan.{ext}"));
        std::fs::copy(from, dir.path().join(format!("my-gan.{ext}"))).unwrap();
    }
    let out = dir.path().join("sampled.mid");
    ok(&[
        "generate",
        "--model",
        p(dir.path()),
        "--steps",
        "16",
        "-o",
        p(&out),
    ]);
    assert!(out.is_file());
    let empty = tempfile::tempdir().unwrap();
    let err = fails(&["generate", "--model", p(empty.path()), "-o", p(&x)]);
    assert!(err.contains("a folder without a model in it"), "{err}");
    // A run folder where a DCGAN was trained after an LSTM-VAE: the newest, the DCGAN (which
    // needs no primer; the LSTM-VAE would ask for one), as the studio's runs list takes it.
    let run = tempfile::tempdir().unwrap();
    for (from, to) in [("lstm-vae-studio", "lstm-vae"), ("dcgan", "dcgan")] {
        for ext in ["safetensors", "json"] {
            let to = run.path().join(format!("{to}.{ext}"));
            std::fs::copy(weights.join(format!("{from}.{ext}")), &to).unwrap();
            let ago = if from == "dcgan" { 60 } else { 3600 };
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(ago);
            let f = std::fs::File::options().write(true).open(&to).unwrap();
            f.set_modified(when).unwrap();
        }
    }
    std::fs::write(run.path().join("metrics.jsonl"), "").unwrap();
    ok(&[
        "generate",
        "--model",
        p(run.path()),
        "--steps",
        "16",
        "-o",
        p(&x),
    ]);
    assert!(x.is_file());
}

/// `info --json` gives what the text gives, by stable names for scripts: every field always
/// there (null or empty where the file has none), metres and keys as lists of changes.
#[test]
fn info_as_json_for_scripts() {
    let waltz = shared("corpus/chopin/chp_op18.mid");
    let v: serde_json::Value = serde_json::from_str(&ok(&["info", p(&waltz), "--json"])).unwrap();
    assert_eq!(v["title"], "Grand Valse Brillante in Es-Dur Opus 18");
    assert_eq!(
        (v["format"].as_u64(), v["tracks"].as_u64()),
        (Some(1), Some(7))
    );
    assert_eq!(v["division"]["ticks_per_quarter"], 480);
    assert_eq!(
        v["metres"][0],
        serde_json::json!({"step": 0, "bar": 1, "metre": "3/4"})
    );
    assert_eq!(v["metres"][1]["metre"], "3/8");
    assert_eq!(v["keys"][0]["key"], "Eb major");
    assert_eq!(v["pedal_presses"], 232);
    assert_eq!(v["pedal_applied"], false);
    assert_eq!(v["notes"], 4415);
    assert_eq!(v["roll"]["notes"], 4415);
    // With --pedal, the notes it holds sound on: the same notes, more sounding cells.
    let held: serde_json::Value =
        serde_json::from_str(&ok(&["info", p(&waltz), "--json", "--pedal"])).unwrap();
    assert_eq!(held["pedal_applied"], true);
    assert_eq!(held["notes"], 4415);
    let cells = |v: &serde_json::Value| v["roll"]["sounding_cells"].as_u64().unwrap();
    assert!(
        cells(&held) > cells(&v) * 11 / 10,
        "{} {}",
        cells(&held),
        cells(&v)
    );
    assert!(
        (v["seconds"].as_f64().unwrap() - 310.23).abs() < 0.01,
        "{}",
        v["seconds"]
    );
    // The text says the same.
    let text = ok(&["info", p(&waltz)]);
    let bar = v["metres"][1]["bar"].as_u64().unwrap();
    assert!(
        text.contains(&format!("metre:         3/4, then 3/8 at bar {bar}")),
        "{text}"
    );
    // A file with less in it: the same fields, empty.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.mid");
    std::fs::write(&plain, simple(96, &[(0, 96, 60, 90)])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&["info", p(&plain), "--json"])).unwrap();
    assert!(v["title"].is_null() && v["copyright"].is_null(), "{v}");
    assert_eq!(v["metres"], serde_json::json!([]));
    assert_eq!(v["pedal_presses"], 0);
    // A piece that says it starts in 4/4 says so here too, before its change to 3/4.
    let said = dir.path().join("said.mid");
    let notes = vec![(0, on(0, 60, 90)), (960, off(0, 60))];
    let metres = vec![(0, Ev::Meter(4, 2)), (384, Ev::Meter(3, 2))];
    std::fs::write(
        &said,
        smf(
            Format::Parallel,
            Timing::Metrical(96.into()),
            &[metres, notes],
        ),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&["info", p(&said), "--json"])).unwrap();
    assert_eq!(
        v["metres"],
        serde_json::json!([
            {"step": 0, "bar": 1, "metre": "4/4"},
            {"step": 16, "bar": 2, "metre": "3/4"}
        ])
    );
    assert_eq!(v["warnings"], serde_json::json!([]));
}

/// `--quiet` (`-q`, before or after the command) keeps notes off stderr for batch jobs; the
/// result and the errors are still said.
#[test]
fn quiet_keeps_notes_off_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("waltz.wav");
    let waltz = shared("corpus/chopin/chp_op18.mid");
    let run = |args: &[&str]| {
        let out = segue(args);
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (said, noted) = run(&["render", p(&waltz), "-o", p(&wav), "--bpm", "900"]);
    assert!(
        noted.contains("segue: note: ") && noted.contains("sustain pedal"),
        "{noted}"
    );
    for args in [
        &["-q", "render", p(&waltz), "-o", p(&wav), "--bpm", "900"][..],
        &[
            "render",
            p(&waltz),
            "-o",
            p(&wav),
            "--bpm",
            "900",
            "--quiet",
        ],
    ] {
        let (quiet_said, quiet_noted) = run(args);
        assert_eq!(
            (quiet_said.as_str(), quiet_noted.as_str()),
            (said.as_str(), "")
        );
    }
    let err = segue(&["-q", "info", p(&dir.path().join("missing.mid"))]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("missing.mid"));
}

/// `segue completions bash` is a script bash loads that completes the commands and their
/// options; `segue manual DIR` writes a page for `segue` and for each shown command (not the
/// hidden worker, not clap's `help`), each naming its options.
#[cfg(unix)]
#[test]
fn completions_and_manual_pages_cover_every_command() {
    let script = ok(&["completions", "bash"]);
    assert!(script.contains("--primer-steps"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("segue.bash");
    std::fs::write(&file, &script).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p segue && COMP_WORDS=(segue tr) && COMP_CWORD=1 && \
             COMP_LINE='segue tr' && COMP_POINT=8 && _segue segue tr segue && \
             echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success(), "{said}");
    assert!(said.contains("-F _segue segue"), "{said}");
    assert!(said.lines().last().unwrap().contains("train"), "{said}");

    let pages = dir.path().join("man");
    let out = ok(&["manual", p(&pages)]);
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        out.contains(&format!("{} manual pages", names.len())),
        "{out}"
    );
    for name in [
        "segue.1",
        "segue-generate.1",
        "segue-train-lstm-vae.1",
        "segue-eval-report.1",
    ] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing: {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("worker") || n.contains("help")),
        "{names:?}"
    );
    let generate = std::fs::read_to_string(pages.join("segue-generate.1")).unwrap();
    assert!(generate.contains(".TH segue-generate 1"), "{generate}");
    assert!(generate.contains("primer\\-steps"), "{generate}");
    let top = std::fs::read_to_string(pages.join("segue.1")).unwrap();
    assert!(top.contains("segue\\-generate(1)"), "{top}");
    // Not a folder where one can be made: said, exit 1.
    let err = fails(&["manual", "/proc/segue-manual"]);
    assert!(
        err.contains("/proc/segue-manual: cannot make the folder"),
        "{err}"
    );
}

/// The primer ends on a bar line: 64 steps (the default) of a waltz are five bars of 3/4, 60
/// steps, said in the summary; an asked length that is no bar line is said when moved.
#[test]
fn a_primer_ends_on_the_bar_line_nearest_its_length() {
    let waltz = shared("corpus/chopin/chp_op18.mid");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.mid");
    let run = |extra: &[&str]| {
        let mut args = vec!["generate", "--prime", p(&waltz), "--from", "chopin"];
        args.extend(["--steps", "16", "--seed", "1", "-o", p(&out)]);
        args.extend(extra);
        let done = segue(&args);
        assert!(done.status.success(), "{args:?}");
        let said = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (said(&done.stdout), said(&done.stderr))
    };
    let (said, notes) = run(&[]);
    assert!(said.contains("(60 primer + 16 generated steps"), "{said}");
    assert!(!notes.contains("bar line"), "{notes}");
    let (said, notes) = run(&["--primer-steps", "50"]);
    assert!(said.contains("(48 primer + 16 generated steps"), "{said}");
    assert!(
        notes.contains(
            "the primer ends on the bar line nearest --primer-steps: 48 steps (4 bars of 3/4)"
        ),
        "{notes}"
    );
    // On a bar line already, or less than a bar: as asked, nothing said.
    for (asked, heard) in [("36", "36"), ("7", "7")] {
        let (said, notes) = run(&["--primer-steps", asked]);
        assert!(said.contains(&format!("({heard} primer + 16")), "{said}");
        assert!(!notes.contains("bar line"), "{notes}");
    }
    let read = segue::roll::Roll::read_midi(&out, &segue::roll::QuantizeOptions::whole_file());
    assert_eq!(read.unwrap().meters()[0].meter.to_string(), "3/4");
}

/// Two stop signals at once (`timeout -s INT` sends one to the program, then one to its
/// process group) are one stop: a training run stops after its step and writes its checkpoint,
/// so `--resume` goes on from there (the second ended the run at once, and a run stopped before
/// its first checkpoint could not be resumed).
#[cfg(unix)]
#[test]
fn two_stop_signals_at_once_are_one_stop() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    common::write_tiny_corpus(&corpus);
    let out = dir.path().join("run");
    let mut args = vec!["train", "lstm-vae", "--corpus", p(&corpus), "--no-cache"];
    args.extend(["--hidden", "16", "--latent", "4", "--metre", "0"]);
    args.extend([
        "--snippet-steps",
        "16",
        "--steps",
        "1000000",
        "--out",
        p(&out),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_segue"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = out.join("metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::metadata(&log).map_or(true, |m| m.len() == 0) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before a step"
        );
        assert!(started.elapsed().as_secs() < 120, "no step logged");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Two signals 2 ms apart, sent from here: two `kill` processes could land further apart
    // than a double press on a loaded machine, and one `kill` of the process twice is merged
    // by the kernel into one signal (the second arrives while the first is pending).
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) reads no memory of ours; the pid is our own child's, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(2));
    // The first stop may already have ended it: a failed second send is fine.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let ended = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{err}");
    assert!(
        out.join("train-state.json").is_file(),
        "no checkpoint: {err}"
    );
    // Resumed to a few steps past where it stopped (however fast this machine ran it).
    let log = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let more = (last["step"].as_u64().unwrap() + 5).to_string();
    args.push("--resume");
    let at = args.iter().position(|a| *a == "1000000").unwrap();
    args[at] = &more;
    ok(&args);
}
