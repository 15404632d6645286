//! Studio responsiveness (`cargo bench --bench studio`): frame time with a 5-minute piece open,
//! and the time from releasing the A<->B slider to the new piece reaching the audio thread.
//! Headless (egui_kittest): a frame here is the app's whole egui pass plus tessellation, the
//! CPU work of a real frame; the GPU's share is not included.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use segue::studio::{Session, Studio};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let piece =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/chopin/chp_op18.mid");
    if !piece.exists() {
        eprintln!("{} is missing; nothing to measure", piece.display());
        return;
    }
    let Some(model) = segue::models::trained::default_model_path() else {
        eprintln!("no shipped weights; nothing to measure");
        return;
    };
    let session = Session {
        model_path: Some(model),
        ..Session::default()
    };
    let mut h: Harness<'static, Studio> = Harness::builder()
        .with_size(egui::vec2(1600.0, 900.0))
        .with_accessibility_check(false)
        .build_eframe(move |cc| Studio::new(&cc.egui_ctx, Some(session), Some(piece), false));
    // The models and the piece load on worker threads while the window shows.
    let t = Instant::now();
    while h.state().loading() {
        if t.elapsed() > Duration::from_secs(120) {
            panic!("the studio did not load in 2 minutes");
        }
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.step();
    let notes = h.state().session.score.notes.len();
    assert!(notes > 0, "the piece did not open");
    let steps = h.state().session.score.steps();
    // Frames while scrolling through the piece at two zoom levels (all notes in view at the
    // widest).
    let mut frames = Vec::new();
    for (zoom, label) in [(10.0f32, "close"), (0.3, "whole piece")] {
        h.state_mut().session.view.step_px = zoom;
        let mut times = Vec::new();
        for k in 0..120 {
            h.state_mut().session.view.scroll_step =
                (k * 37 % steps.max(1)) as f32 * (zoom > 1.0) as u8 as f32;
            let t = Instant::now();
            h.step();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let m = median(times.clone());
        let worst = times.iter().cloned().fold(0.0, f64::max);
        println!(
            "frame, {label} view ({notes} notes, {steps} steps): median {m:.2} ms, worst {worst:.2} ms"
        );
        frames.push(m);
    }
    // What each edit (each frame of a drag) sends to the audio thread: the whole piece as
    // sorted events, with its tempo map.
    let score = h.state().session.score.clone();
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let play = segue::studio::audio::PlayScore::from_notes(
            (score.notes.iter()).map(|n| (n.pitch, n.start, n.len, n.velocity)),
        )
        .with_speed(score.speed());
        std::hint::black_box(&play);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "playback score for an edit ({notes} notes, {} tempo changes): median {:.2} ms",
        score.tempo.len(),
        median(times)
    );
    // What the audio callback counts at each seek and loop turn: the notes sounding at the
    // place, in a piece of a million notes (at its end, the most to count).
    let dense = segue::studio::audio::PlayScore::from_notes(
        (0..1_000_000usize).map(|i| (21 + (i % 88) as u8, i / 4, 1 + i % 13, 80)),
    );
    let end = 1_000_000 / 4;
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        std::hint::black_box(dense.open_at(std::hint::black_box(end)));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "notes sounding at a seek, end of a 1 000 000-note piece (audio thread): median {:.1} us",
        median(times)
    );
    // Settling a move (Score::settle): every other note of each of 48 pitches in a
    // 100 000-note piece selected and moved a step, each onto the next note of its pitch.
    let mut piece = segue::studio::score::Score::new();
    for i in 0..100_000usize {
        piece.draw(40 + (i % 48) as u8, (i / 48) * 4, 4);
    }
    let moved: Vec<usize> = (0..100_000).filter(|i| i / 48 % 2 == 0).collect();
    piece.shift(&moved, 1, 0);
    assert!(
        piece.clone().settle(&moved).1,
        "the moved notes overlap others"
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut p = piece.clone();
        let t = Instant::now();
        std::hint::black_box(p.settle(&moved));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "settling 50 000 moved notes in a 100 000-note piece (on release): median {:.1} ms",
        median(times)
    );
    // Frames of a held arrow moving one note of a 100 000-note piece a step at each repeat
    // (the piece goes to the audio thread and the style meter at most every 100 ms of the
    // gesture, and at its end).
    let before = h.state().session.score.clone();
    h.state_mut().session.score = piece.clone();
    h.state_mut().session.view.selection = vec![0];
    h.step();
    let arrow = |h: &mut Harness<'static, Studio>, pressed: bool, repeat: bool| {
        h.event(egui::Event::Key {
            key: egui::Key::ArrowRight,
            physical_key: None,
            pressed,
            repeat,
            modifiers: egui::Modifiers::default(),
        });
        let t = Instant::now();
        h.step();
        t.elapsed().as_secs_f64() * 1e3
    };
    arrow(&mut h, true, false);
    let times: Vec<f64> = (0..40).map(|_| arrow(&mut h, true, true)).collect();
    arrow(&mut h, false, false);
    assert!(h.state().piece_sent(), "the gesture's end sent the piece");
    println!(
        "frame of a held arrow moving a note of a 100 000-note piece: median {:.2} ms",
        median(times)
    );
    h.state_mut().session.score = before;
    h.state_mut().session.view.selection.clear();
    h.step();
    // The training monitor following a day-long run of another model (a classifier's log at
    // about a step a second: 86 400 lines, validation every 50 steps), its panel open.
    let run = tempfile::tempdir().expect("a temporary folder");
    let mut log = String::new();
    for step in 1..=86_400usize {
        let x = step as f64;
        let valid = (step % 50 == 0).then(
            || serde_json::json!({"loss": 2.5 - x.ln() / 10.0, "accuracy": 0.2 + x.ln() / 100.0}),
        );
        let line = serde_json::json!({
            "step": step,
            "train": {"loss": 3.0 - x.ln() / 8.0, "accuracy": 0.1 + x.ln() / 20.0},
            "valid": valid,
            "seconds": x,
        });
        log.push_str(&line.to_string());
        log.push('\n');
    }
    std::fs::write(run.path().join("metrics.jsonl"), log).expect("the log is written");
    h.state_mut().follow_run(run.path().to_path_buf());
    h.state_mut().show_training_panel(true);
    let t = Instant::now();
    while h.state().loop_training_metrics().len() < 86_400 {
        if t.elapsed() > Duration::from_secs(120) {
            panic!("the log was not read in 2 minutes");
        }
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut times = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        h.step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "frame with the training monitor following a day-long run (86 400 log lines): median {:.2} ms",
        median(times)
    );
    // The frame that draws a line the run just added (each curve extended, not made again).
    let mut times = Vec::new();
    for step in 86_401..=86_410usize {
        let line = serde_json::json!({
            "step": step,
            "train": {"loss": 1.0, "accuracy": 0.5},
            "valid": serde_json::json!({"loss": 1.0, "accuracy": 0.5}),
            "seconds": step as f64,
        });
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(run.path().join("metrics.jsonl"))
            .expect("the log opens");
        std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
            .expect("the line is written");
        let t = Instant::now();
        while h.state().loop_training_metrics().len() < step {
            if t.elapsed() > Duration::from_secs(60) {
                panic!("the new line was not read in a minute");
            }
            let frame = Instant::now();
            h.step();
            if h.state().loop_training_metrics().len() == step {
                times.push(frame.elapsed().as_secs_f64() * 1e3);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!(
        "frame drawing a line the followed run added to its 86 400: median {:.2} ms",
        median(times)
    );
    h.state_mut().show_training_panel(false);
    // Slider release -> new piece on its way to the audio thread.
    let mut latencies = Vec::new();
    for k in 0..5 {
        let before = h.state().session.score.clone();
        let t = Instant::now();
        h.state_mut().set_alpha(if k % 2 == 0 { 0.9 } else { 0.1 });
        loop {
            h.step();
            if !h.state().generating() && h.state().session.score != before {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                panic!("no new piece after 30 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "slider release -> new piece sent to the audio thread (256 steps, 250 ms debounce included): median {:.0} ms",
        median(latencies)
    );
    idle_saves(&piece);
    memory_after_training_runs(&mut h);
}

/// The idle studio's save every 30 s with a 100 000-note piece open, unchanged since the last
/// save: the window's share and the whole save (what the writer thread does included).
fn idle_saves(piece: &segue::studio::score::Score) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut saver = segue::studio::session_file::Saver::new(dir.path().join("session.json"));
    let mut session = Session {
        score: piece.clone(),
        ..Session::default()
    };
    saver.save(&mut session);
    saver.finish();
    let (mut window, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let t = Instant::now();
        saver.save(&mut session);
        window.push(t.elapsed().as_secs_f64() * 1e3);
        saver.finish();
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "idle save of an unchanged 100 000-note piece: window {:.2} ms, whole save {:.2} ms (median)",
        median(window),
        median(whole)
    );
}

/// Resident memory after each of three training runs in the same window (the studio preset,
/// 12 steps each on 18 pieces of the corpus, then Stop).
fn memory_after_training_runs(h: &mut Harness<'static, Studio>) {
    let resident_mb = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        (status.lines())
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let corpus = dir.path().join("corpus");
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    for composer in ["bach", "chopin", "debussy"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(shared.join(composer))
            .expect("the corpus is there")
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        files.sort();
        std::fs::create_dir_all(corpus.join(composer)).expect("a folder");
        for file in files.iter().take(6) {
            let name = file.file_name().expect("a file name");
            std::fs::copy(file, corpus.join(composer).join(name)).expect("a copy");
        }
    }
    h.state_mut().session.train_preset = "studio".into();
    h.state_mut().session.train_steps = 20_000;
    // The user's roll cache is left alone.
    h.state_mut().roll_cache = None;
    let mut after = vec![resident_mb()];
    for run in 0..3 {
        let out = dir.path().join(format!("run{run}"));
        h.state_mut().start_training(corpus.clone(), out);
        let t = Instant::now();
        while h.state().training_metrics().len() < 12 {
            let status = h.state().training_status();
            assert!(h.state().training_running(), "{status}");
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "no 12 steps in 5 minutes"
            );
            h.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        h.state_mut().stop_training();
        while h.state().training_running() {
            h.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        after.push(resident_mb());
    }
    let shown: Vec<String> = after.iter().map(|mb| format!("{mb:.0}")).collect();
    println!(
        "resident memory before and after each of 3 training runs: {} MB",
        shown.join(" / ")
    );
}
