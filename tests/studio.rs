//! The studio driven through egui_kittest: the real app state, headless (wgpu on Mesa's
//! lavapipe for the screenshot).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use segue::dataset::{Corpus, LoadOptions};
use segue::roll::{QuantizeOptions, Roll};
use segue::studio::piano_roll::origin_color;
use segue::studio::plot_words;
use segue::studio::score::Origin;
use segue::studio::{Session, Studio};
use segue::train::{self, TrainOptions};
use segue::train_loop::Control;

/// A tiny model trained for a few steps on the synthetic corpus in `dir`.
fn tiny_model(dir: &Path) -> PathBuf {
    common::write_tiny_corpus(&dir.join("corpus"));
    let corpus = Corpus::load(
        &dir.join("corpus"),
        &LoadOptions {
            quantize: QuantizeOptions::default(),
            cache_dir: None,
        },
        &|_, _| {},
    )
    .unwrap();
    let mut o = TrainOptions::preset("studio").unwrap();
    o.config.hidden = 16;
    o.steps = 12;
    o.snippet_steps = 16;
    o.valid_fraction = 0.34;
    let out = dir.join("model");
    train::train_lstm_vae(
        &corpus,
        &o,
        &out,
        &candle_core::Device::Cpu,
        false,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    train::model_path(&out)
}

/// A studio whose training reads every file, caching no rolls in the user's cache folder.
fn uncached(mut studio: Studio) -> Studio {
    studio.roll_cache = None;
    // Runs started with Start go to a temporary folder, not the user's models folder.
    let models = std::env::temp_dir().join(format!("segue-test-models-{}", std::process::id()));
    studio.models_dir = Some(models);
    studio
}

/// The studio window, `size` points, opening `session` and `file` (and, with `audio`, the
/// sound device); its models load on a worker thread meanwhile.
fn window(
    session: Session,
    file: Option<PathBuf>,
    size: egui::Vec2,
    audio: bool,
) -> Harness<'static, Studio> {
    Harness::builder()
        .with_size(size)
        .build_eframe(move |cc| uncached(Studio::new(&cc.egui_ctx, Some(session), file, audio)))
}

fn studio(model: &Path, file: Option<PathBuf>) -> Harness<'static, Studio> {
    let session = Session {
        model_path: Some(model.to_path_buf()),
        length: 48,
        ..Session::default()
    };
    let mut h = window(session, file, egui::vec2(1280.0, 800.0), false);
    // The models (and the file) load on a worker thread while the window shows.
    wait(&mut h, "the start", |s| !s.loading());
    h
}

/// A studio with a tiny model in `dir` and playback without a sound card: the test pulls the
/// samples from the engine returned.
fn studio_with_player(dir: &Path) -> (Harness<'static, Studio>, segue::studio::audio::Engine) {
    let model = tiny_model(dir);
    let mut h = studio(&model, None);
    let (player, engine) = segue::studio::audio::Player::detached();
    h.state_mut().use_player(player);
    (h, engine)
}

/// Lets the detached audio `engine` play for `seconds` (the test pulls its samples), runs a
/// frame, and returns the playhead.
fn listen(
    h: &mut Harness<'static, Studio>,
    engine: &mut segue::studio::audio::Engine,
    seconds: f64,
) -> f64 {
    for _ in 0..(seconds * 44_100.0) as usize {
        engine.next_sample();
    }
    h.step();
    h.state().playhead().unwrap()
}

/// Space (stop, if playing) then Home, the detached engine playing between the keys as a sound
/// card's would: the playhead back at the start, stopped.
fn stop_and_rewind(h: &mut Harness<'static, Studio>, engine: &mut segue::studio::audio::Engine) {
    h.key_press(egui::Key::Space);
    h.step();
    listen(h, engine, 0.05);
    h.key_press(egui::Key::Home);
    h.step();
    listen(h, engine, 0.05);
}

/// Steps the app until `done` holds (work happens on other threads meanwhile), for at most
/// two minutes (the tests share two cores with each other).
fn wait(h: &mut Harness<'static, Studio>, what: &str, done: impl Fn(&Studio) -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < until {
        h.step();
        if done(h.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// Asks the window to close, as its close button does, and runs one frame.
fn request_close(h: &mut Harness<'static, Studio>) {
    (h.input_mut().viewports)
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
}

/// What the last frame asked of the window (close, cancel a close...).
fn window_commands(h: &Harness<'static, Studio>) -> Vec<egui::ViewportCommand> {
    (h.output().viewport_output.get(&egui::ViewportId::ROOT))
        .map(|v| v.commands.clone())
        .unwrap_or_default()
}

/// Presses the pointer at `from`, moves it to `to` and releases it there, a frame each.
fn drag_between(h: &mut Harness<'static, Studio>, from: egui::Pos2, to: egui::Pos2) {
    h.hover_at(from);
    h.step();
    h.drag_at(from);
    h.step();
    h.hover_at(to);
    h.step();
    h.drop_at(to);
    h.step();
}

/// Presses and releases the pointer at `at` (a click on the roll or its ruler), a frame each.
fn click_at(h: &mut Harness<'static, Studio>, at: egui::Pos2) {
    h.hover_at(at);
    h.step();
    h.drag_at(at);
    h.step();
    h.drop_at(at);
    h.step();
}

/// A studio with a tiny model in `dir` and one note drawn by a click at the roll's centre
/// (returned), as a musician draws one.
fn studio_with_a_drawn_note(dir: &Path) -> (Harness<'static, Studio>, egui::Pos2) {
    let model = tiny_model(dir);
    let mut h = studio(&model, None);
    h.step();
    h.step();
    let at = (h.state().session.view.grid_rect)
        .expect("the roll was drawn")
        .center();
    click_at(&mut h, at);
    let notes = &h.state().session.score.notes;
    assert_eq!(notes.len(), 1, "one note drawn");
    assert_eq!(notes[0].origin, Origin::Edited);
    (h, at)
}

/// A studio with a tiny model in `dir` and the notes (pitch, start, length) drawn, all selected.
fn studio_with_selected(dir: &Path, notes: &[(u8, usize, usize)]) -> Harness<'static, Studio> {
    let model = tiny_model(dir);
    let mut h = studio(&model, None);
    h.step();
    for &(pitch, start, len) in notes {
        h.state_mut().session.score.draw(pitch, start, len);
    }
    h.state_mut().session.view.selection = (0..notes.len()).collect();
    h.step();
    h
}

/// One keyboard repeat of `key` held down (as the system sends while a key stays down), and a
/// frame.
fn key_repeat(h: &mut Harness<'static, Studio>, key: egui::Key) {
    h.event(egui::Event::Key {
        key,
        physical_key: None,
        pressed: true,
        repeat: true,
        modifiers: egui::Modifiers::default(),
    });
    h.step();
}

/// Clicks Generate and waits until a new piece replaces the current one.
fn generate_new_piece(h: &mut Harness<'static, Studio>, what: &str) {
    let before = h.state().session.score.clone();
    h.get_by_label("Generate").click();
    h.step();
    wait(h, what, |s| !s.generating() && s.session.score != before);
}

fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("primer.mid");
    let notes: Vec<(u64, u64, u8, u8)> = (0..32u64)
        .map(|i| (i * 48, i * 48 + 48, 60 + (i % 5) as u8, 90))
        .collect();
    std::fs::write(&path, common::simple(96, &notes)).unwrap();
    path
}

/// The sound device opens as the studio starts (on a worker thread, so that a slow sound
/// server cannot keep the window from showing): then there is playback, or a message saying
/// why not (as on a machine without a sound card).
#[test]
fn the_sound_device_gives_playback_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let session = Session {
        model_path: Some(model),
        ..Session::default()
    };
    let mut h = window(session, None, egui::vec2(1280.0, 800.0), true);
    wait(&mut h, "the sound device", |s| !s.opening_audio());
    h.step();
    let play = h.get_by_label("Play").accesskit_node().is_disabled();
    match h.state().audio_problem() {
        Some(problem) => {
            assert!(problem.starts_with("Playback unavailable"), "{problem}");
            assert!(play);
        }
        None => assert!(!play),
    }
}

/// A sound server that takes its time keeps nothing waiting: the window draws and answers
/// meanwhile, saying the device is being opened, and playback comes once it has.
#[test]
fn a_slow_sound_device_keeps_nothing_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (player, mut engine) = segue::studio::audio::Player::detached();
    h.state_mut().open_audio_with(move || {
        // Held until the test lets it go (at most 300 s, longer than any wait below, so a
        // studio that waited for it would fail there rather than hang).
        let _ = held.recv_timeout(std::time::Duration::from_secs(300));
        Ok(player)
    });
    for _ in 0..3 {
        h.step();
    }
    assert!(h.state().opening_audio());
    h.get_by_label("Opening the sound device...");
    assert!(h.get_by_label("Play").accesskit_node().is_disabled());
    // The window answers meanwhile: a new piece is made and shown.
    generate_new_piece(&mut h, "a piece while the device opens");
    assert!(h.state().opening_audio());
    release.send(()).unwrap();
    wait(&mut h, "the sound device", |s| !s.opening_audio());
    h.step();
    assert_eq!(h.state().audio_problem(), None);
    assert!(!h.get_by_label("Play").accesskit_node().is_disabled());
    // And it plays.
    h.get_by_label("Play").click();
    h.step();
    assert!(listen(&mut h, &mut engine, 0.5) > 0.0);
}

/// A sound device lost while playing (unplugged) is said, with Reconnect; the studio goes on
/// without sound meanwhile, and a reconnected device plays on from where it stopped.
#[test]
fn a_lost_sound_device_can_be_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    let (player, mut engine) = segue::studio::audio::Player::detached();
    let transport = player.shared_transport();
    h.state_mut().use_player(player);
    generate_new_piece(&mut h, "a piece to play");
    h.get_by_label("Play").click();
    h.step();
    let was_at = listen(&mut h, &mut engine, 0.5);
    assert!(was_at > 0.0 && h.state().playing());
    // The stream reports the device gone (as cpal does on the audio thread).
    transport.report(rodio::CpalErrorKind::DeviceNotAvailable);
    h.step();
    h.step();
    let problem = h.state().audio_problem().unwrap_or_default().to_string();
    assert!(problem.contains("disconnected"), "{problem}");
    assert!(!h.state().playing());
    assert!(h.get_by_label("Play").accesskit_node().is_disabled());
    // An underrun is no loss.
    let (player, _engine) = segue::studio::audio::Player::detached();
    player.shared_transport().report(rodio::CpalErrorKind::Xrun);
    assert_eq!(player.transport().lost(), None);
    // Reconnect opens a device again (here a detached one, handed to the test).
    let (engines, reconnected) = std::sync::mpsc::channel();
    let engines = std::sync::Mutex::new(engines);
    h.state_mut().set_audio_opener(move || {
        let (player, engine) = segue::studio::audio::Player::detached();
        engines.lock().unwrap().send(engine).unwrap();
        Ok(player)
    });
    h.get_by_label("Reconnect").click();
    wait(&mut h, "the sound device", |s| !s.opening_audio());
    h.step();
    assert_eq!(h.state().audio_problem(), None);
    let mut engine = reconnected.recv().unwrap();
    // The device runs (stopped): its playhead stands where the lost one was.
    let at = listen(&mut h, &mut engine, 0.01);
    assert_eq!(at, was_at.floor());
    h.get_by_label("Play").click();
    h.step();
    let now = listen(&mut h, &mut engine, 0.2);
    assert!(now > was_at, "played from {now}, not on from {was_at}");
}

/// A sound device whose opening panics (a driver's bug) is said, not waited for forever.
#[test]
fn a_sound_device_that_panics_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.state_mut()
        .open_audio_with(|| panic!("the driver fell over"));
    wait(&mut h, "the sound device", |s| !s.opening_audio());
    let problem = h.state().audio_problem().unwrap_or_default().to_string();
    assert!(problem.contains("the driver fell over"), "{problem}");
}

#[test]
fn generate_and_the_slider_change_the_roll() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let primer = fixture(dir.path());
    let mut h = studio(&model, Some(primer));
    h.step();
    assert_eq!(h.state().model().unwrap().manifest.composers.len(), 3);
    // Two composers, then Generate.
    h.state_mut().session.composer_a = 0;
    h.state_mut().session.composer_b = 2;
    generate_new_piece(&mut h, "the first generation");
    let first = h.state().session.score.clone();
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.origin == segue::studio::score::Origin::Generated)
    );
    assert_eq!(first.primer_steps, 64.min(first.steps()));
    // Moving the slider (even in another mode) blends: it regenerates after a short rest and
    // the result differs.
    h.state_mut().session.mode = segue::generate::Mode::Continue;
    h.state_mut().set_alpha(1.0);
    assert_eq!(h.state().session.mode, segue::generate::Mode::Blend);
    wait(&mut h, "the regeneration", |s| {
        !s.generating() && s.session.score != first
    });
    // Undo brings the previous piece back.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score, first);
    // More controls: a shorter primer and one note per step at most.
    h.get_by_label("More controls").click();
    h.step();
    assert!(
        h.query_all_by_label("notes per step, at most")
            .next()
            .is_some()
    );
    h.state_mut().session.primer_steps = 16;
    h.state_mut().session.max_notes = 1;
    generate_new_piece(&mut h, "the capped generation");
    let capped = &h.state().session.score;
    assert_eq!(capped.primer_steps, 16);
    let roll = capped.to_roll();
    assert!(roll.steps() > 16);
    for t in 16..roll.steps() {
        let sounding = roll.row(t).iter().filter(|&&v| v > 0).count();
        assert!(sounding <= 1, "step {t}: {sounding} notes");
    }
}

/// With no file open, the piece as it was when Generate was pressed primes every blend the
/// slider asks for after it (not the result each one replaced), and an edit made while a
/// blend is on its way keeps it from replacing the edited piece.
#[test]
fn the_slider_blends_from_the_same_primer_and_an_edit_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    let mut listen = |h: &mut Harness<'static, Studio>| {
        for _ in 0..1024 {
            engine.next_sample();
        }
        h.state().playing()
    };
    // A motif shorter than the primer's 64 steps, drawn by hand.
    h.state_mut().session.score.draw(60, 0, 4);
    h.state_mut().session.score.draw(64, 4, 4);
    h.state_mut().session.composer_a = 0;
    h.state_mut().session.composer_b = 2;
    generate_new_piece(&mut h, "the first generation");
    // Generate does not start playback; a blend the slider asked for does.
    assert!(!listen(&mut h));
    let blend = |h: &mut Harness<'static, Studio>, alpha: f32| {
        let before = h.state().session.score.clone();
        h.state_mut().set_alpha(alpha);
        wait(h, "the blend", |s| {
            !s.generating() && !s.regenerating() && s.session.score != before
        });
        h.state().session.score.clone()
    };
    let towards_b = blend(&mut h, 1.0);
    assert!(listen(&mut h));
    h.key_press(egui::Key::Space);
    h.step();
    assert!(!listen(&mut h));
    assert_eq!(towards_b.primer_steps, 8);
    assert_eq!(towards_b.steps(), 8 + 48);
    // Unless the musician turned that off.
    h.state_mut().session.play_blends = false;
    let towards_a = blend(&mut h, 0.0);
    assert!(!listen(&mut h));
    assert_eq!(towards_a.primer_steps, 8);
    // Back to B: the same primer, seed and code give the same piece.
    assert_eq!(blend(&mut h, 1.0), towards_b);
    // Playing, the slider moves, and the musician stops playback before the blend arrives:
    // it does not start playback again.
    h.state_mut().session.play_blends = true;
    h.key_press(egui::Key::Space);
    h.step();
    assert!(listen(&mut h));
    h.state_mut().set_alpha(0.0);
    h.key_press(egui::Key::Space);
    h.step();
    assert!(!listen(&mut h));
    wait(&mut h, "the blend", |s| {
        !s.generating() && !s.regenerating() && s.session.score == towards_a
    });
    assert!(!listen(&mut h));
    // Generate (the button) with another seed is another try from the same motif, not a
    // continuation of the blend on screen.
    h.state_mut().session.seed = 5;
    generate_new_piece(&mut h, "another try");
    assert_eq!(h.state().session.score.primer_steps, 8);
    assert_eq!(blend(&mut h, 1.0).primer_steps, 8);
    for _ in 0..2 {
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
        h.step();
    }
    assert_eq!(h.state().session.score, towards_a);
    // The slider moves, then an edit (here an undo) comes before the blend: the blend is
    // called off and the edited piece stays.
    h.state_mut().set_alpha(0.5);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    let undone = h.state().session.score.clone();
    assert_ne!(undone, towards_a);
    assert!(!h.state().generating() && !h.state().regenerating());
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..5 {
        h.step();
    }
    assert_eq!(h.state().session.score, undone);
}

/// In Blend mode, picking another composer (or another style strength) blends again from the
/// same primer, as moving the slider does; in another mode the pick waits for Generate.
#[test]
fn picking_a_composer_blends_the_sliders_piece_again() {
    use segue::generate::Mode;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.state_mut().session.score.draw(60, 0, 4);
    h.state_mut().session.score.draw(64, 4, 4);
    h.state_mut().session.mode = Mode::Blend;
    h.state_mut().session.alpha = 1.0;
    // Nothing generated yet: nothing to blend again.
    h.state_mut().pick_composers(0, 2);
    assert!(!h.state().regenerating());
    generate_new_piece(&mut h, "the first blend");
    let first = h.state().session.score.clone();
    h.state_mut().pick_composers(0, 1);
    assert!(h.state().regenerating());
    wait(&mut h, "the blend with another B", |s| {
        !s.generating() && !s.regenerating() && s.session.score != first
    });
    assert_eq!(h.state().session.score.primer_steps, 8);
    // Back to the first B: the same primer, seed and code give the first blend.
    h.state_mut().pick_composers(0, 2);
    wait(&mut h, "the blend with the first B", |s| {
        !s.generating() && !s.regenerating() && s.session.score == first
    });
    // The style strength blends again the same way, and reaches the codes: at 0 every
    // composer's code is the centre of all, so another B changes nothing; back at 1, B's own
    // blend returns.
    let no_error = |s: &Studio| s.message().is_none_or(|(_, error)| !error);
    h.state_mut().set_style_strength(0.0);
    assert!(h.state().regenerating());
    wait(&mut h, "the blend at style strength 0", |s| {
        !s.generating() && !s.regenerating()
    });
    assert!(no_error(h.state()), "{:?}", h.state().message());
    let centred = h.state().session.score.clone();
    h.state_mut().pick_composers(0, 1);
    assert!(h.state().regenerating());
    wait(
        &mut h,
        "the blend at style strength 0 with another B",
        |s| !s.generating() && !s.regenerating(),
    );
    assert!(no_error(h.state()), "{:?}", h.state().message());
    assert_eq!(h.state().session.score, centred);
    h.state_mut().pick_composers(0, 2);
    wait(
        &mut h,
        "the blend at style strength 0 with the first B",
        |s| !s.generating() && !s.regenerating(),
    );
    h.state_mut().set_style_strength(1.0);
    assert!(h.state().regenerating());
    wait(&mut h, "the blend at style strength 1", |s| {
        !s.generating() && !s.regenerating() && s.session.score == first
    });
    // Out of range is clamped, NaN ignored.
    h.state_mut().set_style_strength(7.0);
    assert_eq!(h.state().session.style_strength, 3.0);
    h.state_mut().set_style_strength(f32::NAN);
    assert_eq!(h.state().session.style_strength, 3.0);
    h.state_mut().set_style_strength(1.0);
    wait(&mut h, "the blend at style strength 1 again", |s| {
        !s.generating() && !s.regenerating()
    });
    // In another mode a pick, or a change of strength, changes nothing until Generate.
    h.state_mut().session.mode = Mode::Continue;
    h.state_mut().pick_composers(1, 2);
    h.state_mut().set_style_strength(2.0);
    assert!(!h.state().regenerating() && !h.state().generating());
}

/// A window closing once its export is written, whose export then fails (its folder was
/// removed while it rendered), stays open and says so, rather than closing on an error no
/// one saw.
#[test]
fn an_export_failing_while_the_window_closes_keeps_it_open() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    let waltz = common::shared("corpus").join("chopin/chp_op18.mid");
    h.state_mut().open_file(&waltz);
    wait(&mut h, "the waltz", |s| !s.background_work());
    let folder = dir.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let saved = dir.path().join("session.json");
    h.state_mut().saver = Some(segue::studio::session_file::Saver::new(saved.clone()));
    h.state_mut().session.seed = 99;
    // Five minutes of music: a second or so to render.
    h.state_mut().export_wav(&folder.join("waltz.wav"));
    request_close(&mut h);
    assert!(window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    // The piece is saved as the close is asked for (a second Ctrl+C while the window waits
    // ends the program at once), not only when the window goes.
    h.state_mut().saver = None; // dropping the saver finishes its write
    let back = segue::studio::session_file::read(&saved).unwrap();
    assert_eq!(back.map(|r| r.session.seed), Some(99));
    // The export may make its temporary file in the folder while it is being removed (the
    // folder is then not empty): again until it is gone.
    for tries in 0.. {
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => break,
            Err(e) if tries == 100 => panic!("{}: {e}", folder.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    wait(&mut h, "the export's end", |s| !s.exporting());
    for _ in 0..3 {
        h.step();
        assert!(!window_commands(&h).contains(&egui::ViewportCommand::Close));
    }
    let (text, error) = h.state().message().unwrap().clone();
    assert!(error && text.ends_with("the window stays open"), "{text}");
    assert!(text.contains("waltz.wav"), "{text}");
    // Closing again closes.
    request_close(&mut h);
    assert!(!window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
}

/// The Pedal box opens files with the sustain pedal applied: ticked, the opened file is read
/// again with its notes held on through the pedal; with generated notes in the piece, it is
/// not replaced for it (said), the next file opened has it.
#[test]
fn the_pedal_box_holds_notes_through_the_sustain_pedal() {
    use common::Ev;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let pedalled = dir.path().join("pedalled.mid");
    // 24 ticks a step: two notes of one step under a pedal lifted at step 16.
    let events = vec![
        (0, Ev::Pedal(0, 127)),
        (0, common::on(0, 60, 90)),
        (24, common::off(0, 60)),
        (96, common::on(0, 64, 90)),
        (120, common::off(0, 64)),
        (384, Ev::Pedal(0, 0)),
    ];
    let bytes = common::smf(
        midly::Format::SingleTrack,
        midly::Timing::Metrical(96.into()),
        &[events],
    );
    std::fs::write(&pedalled, bytes).unwrap();
    let mut h = studio(&model, None);
    h.step();
    let settle = |h: &mut Harness<'static, Studio>| wait(h, "file work", |s| !s.background_work());
    let lengths = |h: &Harness<'static, Studio>| -> Vec<(u8, usize)> {
        (h.state().session.score.notes.iter())
            .map(|n| (n.pitch, n.len))
            .collect()
    };
    h.state_mut().open_file(&pedalled);
    settle(&mut h);
    assert_eq!(lengths(&h), [(60, 1), (64, 1)]);
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("is not applied") && text.contains("Pedal holds them"),
        "{text}"
    );
    h.get_by_label("Pedal").click();
    h.step();
    h.step();
    settle(&mut h);
    assert!(h.state().session.sustain_pedal);
    assert_eq!(lengths(&h), [(60, 16), (64, 12)]);
    // The next start reads the primer as it was read.
    assert!(h.state().session.primer_pedal);
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("sustain pedal (1 press) is applied"),
        "{text}"
    );
    // With generated notes in the piece, unticking does not replace them.
    generate_new_piece(&mut h, "a continuation");
    let piece = h.state().session.score.clone();
    h.get_by_label("Pedal").click();
    h.step();
    h.step();
    settle(&mut h);
    assert!(!h.state().session.sustain_pedal);
    assert_eq!(h.state().session.score, piece);
    assert!(
        h.state().session.primer_pedal,
        "the primer was read with the pedal"
    );
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("from now on are read without the sustain pedal"),
        "{text}"
    );
    // The next file opened is read as written.
    h.state_mut().open_file(&pedalled);
    settle(&mut h);
    assert_eq!(lengths(&h), [(60, 1), (64, 1)]);
    assert!(!h.state().session.primer_pedal);
    // The file gone, ticking says so rather than failing to read it.
    std::fs::remove_file(&pedalled).unwrap();
    h.get_by_label("Pedal").click();
    h.step();
    h.step();
    settle(&mut h);
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        !error && text.contains("is no longer there to read again"),
        "{text}"
    );
}

/// The WAV level box picks the level Export WAV writes at: the peak at -1 dBFS, or a
/// loudness as `segue render --loudness` has it (said, as the command line says it); a level
/// out of range in a session file is the peak's.
#[test]
fn the_wav_level_box_picks_the_exports_loudness() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let primer = fixture(dir.path());
    let mut h = studio(&model, Some(primer));
    h.step();
    let settle = |h: &mut Harness<'static, Studio>| wait(h, "file work", |s| !s.background_work());
    let wav = dir.path().join("level.wav");
    h.state_mut().export_wav(&wav);
    settle(&mut h);
    let said =
        |h: &Harness<'static, Studio>| h.state().messages().notes().last().unwrap().text.clone();
    assert!(said(&h).contains("dB to a -1 dBFS peak"), "{}", said(&h));
    h.get_by_label("WAV level").click();
    h.step();
    h.step();
    h.get_by_label("-23 LUFS (broadcast)").click();
    h.step();
    h.step();
    assert_eq!(h.state().session.wav_loudness, Some(-23.0));
    h.state_mut().export_wav(&wav);
    settle(&mut h);
    assert!(
        said(&h).contains("dB to -23.0 LUFS (peak -"),
        "{}",
        said(&h)
    );
    // A level the box does not offer (out of range, or -18 in a file edited by hand) is the
    // peak's, as the box then shows.
    for odd in [5.0, -18.0] {
        let mut session = Session {
            wav_loudness: Some(odd),
            ..Session::default()
        };
        session.sanitize();
        assert_eq!(session.wav_loudness, None);
    }
    let mut session = Session {
        wav_loudness: Some(-16.0),
        ..Session::default()
    };
    session.sanitize();
    assert_eq!(session.wav_loudness, Some(-16.0));
}

/// An export never replaces the file the piece was opened from (it would come back on the
/// grid and without its drums), nor a file an earlier export is still writing (the earlier
/// could finish last and leave the older piece there).
#[test]
fn an_export_keeps_off_the_opened_file_and_a_file_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    let settle = |h: &mut Harness<'static, Studio>| wait(h, "file work", |s| !s.background_work());
    let waltz = dir.path().join("waltz.mid");
    std::fs::copy(common::shared("corpus").join("chopin/chp_op18.mid"), &waltz).unwrap();
    let original = std::fs::read(&waltz).unwrap();
    h.state_mut().open_file(&waltz);
    settle(&mut h);
    let said = |h: &Harness<'static, Studio>| h.state().message().unwrap().0.clone();
    h.state_mut().export_midi(&waltz);
    settle(&mut h);
    assert!(
        said(&h).contains("waltz.mid is the file the piece was opened from"),
        "{}",
        said(&h)
    );
    // Under another name for it (a link), found on the export's worker.
    let link = dir.path().join("link.mid");
    std::os::unix::fs::symlink(&waltz, &link).unwrap();
    h.state_mut().export_midi(&link);
    settle(&mut h);
    assert!(
        said(&h).contains("is the file the piece was opened from"),
        "{}",
        said(&h)
    );
    assert_eq!(std::fs::read(&waltz).unwrap(), original);
    // Five minutes of music render for a second or so: a second export to its file waits.
    let wav = dir.path().join("waltz.wav");
    h.state_mut().export_wav(&wav);
    assert!(h.state().exporting());
    h.state_mut().export_wav(&wav);
    assert!(
        said(&h).contains("waltz.wav is still being written by an earlier export"),
        "{}",
        said(&h)
    );
    settle(&mut h);
    assert!(!h.state().exporting());
    h.state_mut().export_wav(&wav);
    settle(&mut h);
    assert!(said(&h).contains("Wrote "), "{}", said(&h));
}

#[test]
fn opens_a_midi_file_and_exports_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let primer = fixture(dir.path());
    let mut h = studio(&model, None);
    h.step();
    // Files are read and written on worker threads; the window goes on meanwhile.
    let settle = |h: &mut Harness<'static, Studio>| wait(h, "file work", |s| !s.background_work());
    h.state_mut().open_file(&primer);
    settle(&mut h);
    let roll = Roll::read_midi(&primer, &QuantizeOptions::default()).unwrap();
    assert_eq!(h.state().session.score.notes.len(), roll.notes().len());
    let out = dir.path().join("out.mid");
    h.state_mut().export_midi(&out);
    settle(&mut h);
    assert!(h.state().message().unwrap().0.contains("out.mid"));
    let back = Roll::read_midi(&out, &QuantizeOptions::default()).unwrap();
    assert_eq!(back.binary(), roll.binary());
    // A waltz comes back out in 3/4.
    let waltz = common::shared("corpus").join("chopin/chp_op18.mid");
    h.state_mut().open_file(&waltz);
    settle(&mut h);
    let out = dir.path().join("waltz.mid");
    h.state_mut().export_midi(&out);
    settle(&mut h);
    let song = segue::midi::Song::read(&out).unwrap();
    let meter = song.first_meter().unwrap();
    assert_eq!((meter.numerator, meter.denominator), (3, 4));
    // Its copyright notice goes with it (the fixture had none, and its export none).
    let notice = song.copyright.expect("the waltz's notice was dropped");
    assert!(notice.contains("Bernd Kr"), "{notice}");
    let fixture_out = dir.path().join("out.mid");
    assert_eq!(
        segue::midi::Song::read(&fixture_out).unwrap().copyright,
        None
    );
    // A continuation of it is still made of its notes: the notice stays. (The model heard
    // its start; the rest of the waltz was replaced, which is said.)
    generate_new_piece(&mut h, "a continuation of the waltz");
    let (text, _) = h.state().message().unwrap().clone();
    assert!(text.contains("replaced the piece's notes after"), "{text}");
    let continued = dir.path().join("continued.mid");
    h.state_mut().export_midi(&continued);
    settle(&mut h);
    let song = segue::midi::Song::read(&continued).unwrap();
    assert_eq!(song.copyright.as_deref(), Some(notice.as_str()));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    // Closing while a WAV renders (five minutes of music: a second or so) waits for it.
    let wav = dir.path().join("waltz.wav");
    h.state_mut().export_wav(&wav);
    assert!(h.state().exporting());
    request_close(&mut h);
    assert!(window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    wait(&mut h, "the closing", |s| !s.exporting());
    h.step();
    assert!(window_commands(&h).contains(&egui::ViewportCommand::Close));
    // What it holds is said, as the command line says it: the gain and the loudness.
    let said = &h.state().messages().notes().last().unwrap().text;
    assert!(
        said.contains("waltz.wav (311.7 s at 44100 Hz, normalised: +"),
        "{said}"
    );
    assert!(
        said.ends_with(" dB to a -1 dBFS peak, -24.4 LUFS)"),
        "{said}"
    );
    // A second request while it renders closes at once.
    h.state_mut().export_wav(&wav);
    request_close(&mut h);
    request_close(&mut h);
    assert!(h.state().exporting());
    assert!(!window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    let rendered = hound::WavReader::open(&wav).unwrap();
    assert!(rendered.duration() > 44_100 * 300);
    // The rendering carries the waltz's credit, as its MIDI export does.
    let bytes = std::fs::read(&wav).unwrap();
    assert!(bytes.windows(4).any(|w| w == b"ICOP"));
    assert!(bytes.windows(9).any(|w| w == b"Bernd Kr\xfc"), "the credit");
    settle(&mut h);
    // With its change to 3/8 near the end, where the original has it.
    let meters = |path: &Path| {
        Roll::read_midi(path, &QuantizeOptions::whole_file())
            .unwrap()
            .meters()
            .to_vec()
    };
    assert_eq!(meters(&out).len(), 2);
    assert_eq!(meters(&out), meters(&waltz));
    // And with its rubato: every one of its tempo changes, where the file has it.
    let tempo = |path: &Path| {
        Roll::read_midi(path, &QuantizeOptions::whole_file())
            .unwrap()
            .tempo()
            .to_vec()
    };
    assert!(tempo(&waltz).len() > 1000);
    assert_eq!(tempo(&out), tempo(&waltz));
    // A bad file gives a message in the window, not a crash.
    let bad = dir.path().join("bad.mid");
    std::fs::write(&bad, b"MThd garbage").unwrap();
    h.state_mut().open_file(&bad);
    settle(&mut h);
    let (text, error) = h.state().message().unwrap().clone();
    assert!(error && text.contains("bad.mid"), "{text}");
    // A file cut short opens with what was readable, and the window says notes were lost.
    let whole = std::fs::read(&primer).unwrap();
    let cut = dir.path().join("cut.mid");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    h.state_mut().open_file(&cut);
    settle(&mut h);
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        error && text.contains("cut.mid") && text.contains("truncated"),
        "{text}"
    );
    assert!(!h.state().session.score.notes.is_empty());
    // A later note does not hide the error: it stays in view until dismissed.
    generate_new_piece(&mut h, "a piece after the error");
    assert!(!h.state().message().unwrap().1);
    assert!(
        h.state()
            .standing_error()
            .is_some_and(|e| e.contains("cut.mid"))
    );
    h.get_by_label("Dismiss the error").click();
    h.step();
    assert!(h.state().standing_error().is_none());
    // A model file that is not there: said, and the loaded model stays in use.
    h.state_mut()
        .load_model(Some(dir.path().join("missing.safetensors")));
    settle(&mut h);
    let err = h.state().model_error().unwrap_or_default().to_string();
    assert!(
        err.contains("missing.json") && err.contains("not found, nor its weights"),
        "{err}"
    );
    assert!(h.state().model().is_some());
    // A good one loads in the background, and is kept as a canonical path (the next start
    // may be in another folder).
    let roundabout = model
        .parent()
        .unwrap()
        .join("..")
        .join("model")
        .join(model.file_name().unwrap());
    h.state_mut().load_model(Some(roundabout));
    settle(&mut h);
    assert!(h.state().model_error().is_none());
    let kept = h.state().session.model_path.clone().unwrap();
    assert!(
        kept.is_absolute()
            && !kept
                .components()
                .any(|c| c == std::path::Component::ParentDir),
        "{}",
        kept.display()
    );
}

#[test]
fn the_training_panel_trains_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.get_by_label("Train...").click();
    h.step();
    h.state_mut().session.train_steps = 4;
    h.state_mut().session.train_preset = "studio".into();
    // The studio preset is too big for a test; the panel trains whatever preset it is given,
    // so train the studio preset for 4 steps on the tiny corpus.
    let trained = dir.path().join("trained");
    h.state_mut()
        .start_training(dir.path().join("corpus"), trained.clone());
    wait(&mut h, "training to finish", |s| !s.training_running());
    assert_eq!(h.state().training_metrics().len(), 4);
    assert!(
        h.state()
            .training_metrics()
            .iter()
            .all(|m| m.recon.is_finite())
    );
    assert!(trained.join("lstm-vae.safetensors").exists());
    // The tiny corpus's pieces (96 steps) are shorter than the preset's snippets (128): the
    // musician is told they are padded with silence, as the command line tells.
    let told = (h.state().messages().notes()).any(|n| {
        n.text.starts_with("Training folder: every piece of")
            && n.text
                .contains("shorter than a training snippet (128 steps)")
    });
    assert!(
        told,
        "{:?}",
        h.state().messages().to_text(std::time::Instant::now())
    );
    // The plots are said in words to a screen reader, the last step's values first.
    h.step();
    let last = h.state().training_metrics().last().unwrap().clone();
    let said = plot_said(&h, "Reconstruction BCE per cell (plot): ");
    let train = format!(
        "train {} at step {}",
        plot_words::number(last.recon_per_cell),
        last.step
    );
    assert!(said.contains(&train), "{said}");
    let said = plot_said(&h, "KL (nats per snippet) (plot): ");
    assert!(
        said.starts_with("KL (nats per snippet) (plot): KL "),
        "{said}"
    );
}

/// Start puts a run in the user's models folder (the weights folder may be read-only, as in a
/// package), in a folder named after the one it trains on, and Stop ends it.
#[test]
fn the_training_panel_trains_into_the_users_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio(&tiny_model(dir.path()), None);
    h.get_by_label("Train...").click();
    h.step();
    h.state_mut().session.train_dir = Some(dir.path().join("corpus"));
    h.state_mut().models_dir = Some(dir.path().join("models"));
    h.get_by_label("Start").click();
    h.step();
    assert!(h.state().training_running());
    wait(&mut h, "the first step", |s| {
        s.training_status().starts_with("Step ")
    });
    h.get_by_label("Stop").click();
    wait(&mut h, "training to stop", |s| !s.training_running());
    let run = dir.path().join("models").join("corpus");
    assert!(
        run.join("metrics.jsonl").is_file(),
        "{:?}",
        std::fs::read_dir(&run)
    );
}

/// The training panel lists the runs trained here with their model, steps and size; one can
/// be used, and removed after a second press on a button that names it, but not while its
/// model is in use or while a run trains in it.
#[test]
fn runs_trained_here_are_listed_used_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let models = dir.path().join("models");
    let old = models.join("old");
    std::fs::create_dir_all(&old).unwrap();
    for ext in ["safetensors", "json"] {
        std::fs::copy(
            model.with_extension(ext),
            old.join(format!("lstm-vae.{ext}")),
        )
        .unwrap();
    }
    std::fs::copy(
        dir.path().join("model/metrics.jsonl"),
        old.join("metrics.jsonl"),
    )
    .unwrap();
    let busy = models.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("metrics.jsonl"), "").unwrap();
    let lock = segue::train_loop::lock_run_folder(&busy).unwrap();
    let mut h = studio(&model, None);
    h.state_mut().models_dir = Some(models.clone());
    h.get_by_label("Train...").click();
    h.step();
    h.get_by_label_contains("Runs trained here").click();
    let listed = |h: &mut Harness<'static, Studio>| {
        wait(h, "the list", |_| true);
        h.query_by_label_contains("Runs trained here (2,").is_some()
    };
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !listed(&mut h) {
        assert!(std::time::Instant::now() < until, "never listed");
    }
    h.get_by_label_contains("old: LSTM-VAE, 12 steps, ");
    h.get_by_label_contains("busy: no model yet, 0.0 MB");
    h.get_by_label("(training)");
    // Remove asks again, naming the run; Keep it leaves it.
    h.get_by_label("Remove...").click();
    h.step();
    h.step();
    h.get_by_label("Keep it").click();
    h.step();
    h.step();
    assert!(h.query_by_label("Remove old for good").is_none());
    // Its model in use: not removable.
    h.get_by_label("Use").click();
    let used = old.join("lstm-vae.safetensors");
    wait(&mut h, "its model", |s| {
        s.session.model_path.as_ref() == Some(&used)
    });
    h.step();
    assert!(h.get_by_label("Remove...").accesskit_node().is_disabled());
    h.state_mut().load_model(Some(model.clone()));
    wait(&mut h, "the first model", |s| {
        s.session.model_path.as_ref() == Some(&model)
    });
    h.step();
    h.get_by_label("Remove...").click();
    h.step();
    h.step();
    h.get_by_label("Remove old for good").click();
    wait(&mut h, "the removal", |s| {
        s.message()
            .is_some_and(|(text, _)| text.starts_with("Removed the run"))
    });
    assert!(!old.exists());
    assert!(
        busy.join("metrics.jsonl").exists(),
        "the run training is left"
    );
    drop(lock);
}

/// The words a plot whose label begins with `title` is said in (one such plot).
fn plot_said(h: &Harness<'static, Studio>, title: &str) -> String {
    let plot = h.get_by(|n| n.label().is_some_and(|l| l.starts_with(title)));
    plot.accesskit_node().label().unwrap()
}

/// "from the model in use": the LSTM-VAE run starts from the shipped model (the preset's
/// sizes), even on a corpus of other composers; a model of other sizes trains from scratch.
#[test]
fn the_training_panel_fine_tunes_the_model_in_use() {
    let Some(shipped) = segue::models::trained::default_model_path() else {
        return; // no shipped weights in this checkout
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_corpus(&dir.path().join("corpus"));
    let mut h = studio(&shipped, None);
    h.state_mut().session.train_steps = 2;
    assert!(h.state().session.train_from_model);
    let out = dir.path().join("tuned");
    h.state_mut()
        .start_training(dir.path().join("corpus"), out.clone());
    wait(&mut h, "training to finish", |s| !s.training_running());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("lstm-vae.json")).unwrap()).unwrap();
    let training = &manifest["training"];
    assert_eq!(
        training["init"].as_str().map(PathBuf::from),
        Some(h.state().model().unwrap().path.clone())
    );
    assert_eq!(training["learning_rate"], 1e-4);
    assert_eq!(
        manifest["composers"],
        serde_json::json!(["arps", "chords", "scales"])
    );
}

/// The Train panel trains the composer classifier too, and "Use this classifier" gives the
/// style meter (and classifier ascent) its composers, at this start and the next ones.
#[test]
fn the_training_panel_trains_a_classifier_for_the_style_meter() {
    use segue::studio::engines::TrainModel;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, Some(fixture(dir.path())));
    h.get_by_label("Train...").click();
    h.step();
    assert!(h.query_by_label("Preset").is_some());
    h.state_mut().session.train_model = TrainModel::Classifier;
    h.step();
    // The presets are the LSTM-VAE's.
    assert!(h.query_by_label("Preset").is_none());
    // Fewer steps than the slider offers (it would take them back to 10 at the next frame).
    h.state_mut().session.train_steps = 3;
    h.state_mut()
        .start_training(dir.path().join("corpus"), dir.path().join("clf"));
    wait(&mut h, "training to finish", |s| !s.training_running());
    let metrics = h.state().loop_training_metrics();
    assert_eq!(metrics.len(), 3, "{:?}", h.state().message());
    assert!(metrics.iter().all(|m| m.train["loss"].is_finite()));
    assert!(metrics.iter().any(|m| m.valid.is_some()));
    assert!(h.state().training_metrics().is_empty());
    let file = dir.path().join("clf").join("classifier.safetensors");
    assert_eq!(h.state().training_checkpoint(), Some(file.as_path()));
    h.step();
    let said = plot_said(&h, "Cross-entropy (plot): ");
    assert!(
        said.contains("train ") && said.contains("; validation "),
        "{said}"
    );
    assert!(h.query_by_label("Use this model").is_none());
    // Classifier ascent aims at the shipped classifier's composer 15; the new one has 3.
    h.state_mut()
        .set_engine(segue::studio::EngineKind::ClassifierAscent);
    h.state_mut().session.composer_b = 15;
    h.get_by_label("Use this classifier").click();
    h.step();
    let tiny = |s: &Studio| {
        s.style_verdict()
            .is_some_and(|v| v.composers == ["arps", "chords", "scales"])
    };
    wait(&mut h, "the style meter to use the classifier", tiny);
    let kept = h.state().session.classifier_path.clone().unwrap();
    assert!(kept.is_absolute() && kept.ends_with("clf/classifier.safetensors"));
    assert!(h.state().session.composer_b < 3);

    // Followed as a run training elsewhere (`segue train classifier --out clf`), its curves
    // and its "Use" button are the classifier's.
    h.state_mut().follow_run(dir.path().join("clf"));
    wait(&mut h, "the followed log", |s| {
        s.loop_training_metrics().len() == 3 && s.training_checkpoint() == Some(&file)
    });
    assert!(h.state().training_metrics().is_empty());
    h.step();
    assert!(h.query_by_label("Use this classifier").is_some());
    h.get_by_label("Stop following").click();
    wait(&mut h, "following to stop", |s| !s.training_running());

    // The next start uses it again.
    let start = |session: Session| {
        let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
        wait(&mut h, "the start", |s| !s.loading());
        h
    };
    let session = h.state().session.clone();
    let mut h = start(session.clone());
    wait(&mut h, "the style meter, after a restart", tiny);

    // Gone: the shipped classifier instead, and the studio says so.
    std::fs::remove_file(&kept).unwrap();
    let h = start(session);
    let (message, error) = h.state().message().cloned().unwrap();
    assert!(
        error
            && message.contains("could not load the classifier")
            && message.contains("using the shipped classifier"),
        "{message}"
    );
    assert!(h.state().session.classifier_path.is_none());
    let shipped = h.state().other_models().classifier.as_ref();
    assert_eq!(
        shipped
            .expect("the shipped classifier")
            .manifest
            .composers
            .len(),
        20
    );
}

/// The Train panel trains the Transformer VAE and the DCGAN too: "Use this ..." turns the
/// generation panel to the new model, and the next start loads it again (or says it is gone).
#[test]
fn the_training_panel_trains_the_transformer_vae_and_the_dcgan() {
    use segue::studio::EngineKind;
    use segue::studio::engines::TrainModel;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, Some(fixture(dir.path())));
    h.get_by_label("Train...").click();
    h.step();
    let tiny = ["arps", "chords", "scales"];
    let runs = [
        (
            TrainModel::TransformerVae,
            "tvae",
            "transformer-vae.safetensors",
            "Use this Transformer VAE",
            EngineKind::TransformerVae,
        ),
        (
            TrainModel::Dcgan,
            "gan",
            "dcgan.safetensors",
            "Use this DCGAN",
            EngineKind::Dcgan,
        ),
    ];
    for (train_model, out, file, button, engine) in runs {
        h.state_mut().session.train_model = train_model;
        h.step();
        assert!(h.query_by_label("Preset").is_none());
        // Fewer steps than the slider offers (it would take them back to 10 at the next frame).
        h.state_mut().session.train_steps = 2;
        h.state_mut()
            .start_training(dir.path().join("corpus"), dir.path().join(out));
        wait(&mut h, "training to finish", |s| !s.training_running());
        let metrics = h.state().loop_training_metrics();
        assert_eq!(metrics.len(), 2, "{:?}", h.state().message());
        assert!(
            metrics
                .iter()
                .all(|m| m.train.values().all(|v| v.is_finite()))
        );
        assert!(metrics.iter().any(|m| m.valid.is_some()));
        let file = dir.path().join(out).join(file);
        assert_eq!(h.state().training_checkpoint(), Some(file.as_path()));
        h.step();
        assert!(h.query_by_label("Use this model").is_none());
        h.get_by_label(button).click();
        h.step();
        wait(&mut h, "the studio to use the new model", |s| {
            s.session.engine == engine
        });
        let others = h.state().other_models();
        let composers = match engine {
            EngineKind::TransformerVae => &others.tvae.as_ref().unwrap().manifest.composers,
            _ => &others.gan.as_ref().unwrap().manifest.composers,
        };
        assert_eq!(composers, &tiny);
        assert!(!h.state().message().unwrap().1, "{:?}", h.state().message());
        // The generation panel generates with it.
        h.get_by_label("Generate").click();
        h.step();
        wait(&mut h, "a generation", |s| !s.generating());
        assert!(
            !h.state().message().is_some_and(|m| m.1),
            "{:?}",
            h.state().message()
        );
        // A Transformer VAE transition within one snippet is one code, said as the CLI says it.
        if engine == EngineKind::TransformerVae {
            h.state_mut().session.mode = segue::generate::Mode::Transition;
            h.state_mut().session.length = 16;
            h.get_by_label("Generate").click();
            h.step();
            wait(&mut h, "a transition", |s| !s.generating());
            let (text, _) = h.state().message().unwrap().clone();
            assert!(
                text.contains("a transition over 16 steps is a single code between A and B"),
                "{text}"
            );
        }
    }
    let session = h.state().session.clone();
    for (path, out) in [(&session.tvae_path, "tvae"), (&session.gan_path, "gan")] {
        let path = path.as_ref().unwrap();
        assert!(path.is_absolute() && path.parent().unwrap().ends_with(out));
    }
    assert_eq!(h.state().composers(), Vec::<String>::new());

    // The next start uses both again.
    let start = |session: Session| {
        let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
        wait(&mut h, "the start", |s| !s.loading());
        h
    };
    let h = start(session.clone());
    let others = h.state().other_models();
    assert_eq!(others.tvae.as_ref().unwrap().manifest.composers, tiny);
    assert_eq!(others.gan.as_ref().unwrap().manifest.composers, tiny);
    assert!(h.state().message().is_none_or(|m| !m.1));

    // Gone: the shipped ones instead (where shipped), and the studio names both.
    std::fs::remove_dir_all(dir.path().join("tvae")).unwrap();
    std::fs::remove_dir_all(dir.path().join("gan")).unwrap();
    let h = start(session);
    let (message, error) = h.state().message().cloned().unwrap();
    assert!(error, "{message}");
    assert!(
        message.contains("could not load the Transformer VAE"),
        "{message}"
    );
    assert!(message.contains("could not load the DCGAN"), "{message}");
    assert!(h.state().session.tvae_path.is_none() && h.state().session.gan_path.is_none());
    // The shipped ones (committed in weights/) are in use, and the message says so.
    assert!(
        message.contains("using the shipped Transformer VAE")
            && message.contains("using the shipped DCGAN"),
        "{message}"
    );
    let others = h.state().other_models();
    let tvae = others.tvae.as_ref().expect("the shipped Transformer VAE");
    let gan = others.gan.as_ref().expect("the shipped DCGAN");
    assert_eq!(tvae.manifest.composers.len(), 20);
    assert_ne!(gan.manifest.composers, tiny);
}

/// Steps of the monitor's curves, whichever model they are of.
fn monitor_steps(s: &Studio) -> Vec<usize> {
    let lstm = s.training_metrics().iter().map(|m| m.step);
    lstm.chain(s.loop_training_metrics().iter().map(|m| m.step))
        .collect()
}

/// A studio on a tiny model in `dir`, its Train panel open and training `model` on the tiny
/// corpus for `steps` steps with `seed`, into `dir/run`: the studio, the corpus and the run.
fn training_in_panel(
    dir: &Path,
    model: segue::studio::engines::TrainModel,
    steps: usize,
    seed: u64,
) -> (Harness<'static, Studio>, PathBuf, PathBuf) {
    let tiny = tiny_model(dir);
    let corpus = dir.join("corpus");
    let out = dir.join("run");
    let mut h = studio(&tiny, None);
    h.get_by_label("Train...").click();
    h.step();
    let s = &mut h.state_mut().session;
    s.train_dir = Some(corpus.clone());
    s.train_model = model;
    s.train_seed = seed;
    s.train_steps = steps;
    h.state_mut().start_training(corpus.clone(), out.clone());
    (h, corpus, out)
}

/// A studio closed while it trains stops the run with a checkpoint; the next start shows
/// that run again, and "Continue to N steps" trains it on from there, its curves going on.
#[test]
fn a_run_cut_short_by_closing_the_studio_continues_at_the_next_start() {
    use segue::studio::engines::TrainModel;
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _, out) = training_in_panel(dir.path(), TrainModel::Classifier, 2000, 1);
    wait(&mut h, "two steps", |s| monitor_steps(s).len() >= 2);
    let session = h.state().session.clone();
    assert_eq!(session.train_run.as_deref(), Some(out.as_path()));
    // Closing: the window stays until the run has stopped at the end of its step and written
    // its checkpoint, then closes.
    request_close(&mut h);
    assert!(window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    assert!(h.state().training_status().contains("before closing"));
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while !window_commands(&h).contains(&egui::ViewportCommand::Close) {
        assert!(std::time::Instant::now() < until, "the window never closed");
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    wait(&mut h, "the run's end", |s| !s.training_running());
    drop(h);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let done = log.lines().count();
    assert!(done >= 2);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("classifier.json")).unwrap()).unwrap();
    assert_eq!(manifest["steps"], done);

    // The next start shows it; while a run trains there (here: holds the folder), live and
    // without Continue, which comes once that run has ended.
    let lock = segue::train_loop::lock_run_folder(&out).unwrap();
    let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
    wait(&mut h, "the last run in the monitor", |s| {
        !s.loading() && monitor_steps(s).len() == done && s.training_checkpoint().is_some()
    });
    h.get_by_label("Train...").click();
    h.step();
    assert!(h.state().training_running(), "followed live");
    assert!(h.query_by_label("Continue to 2000 steps").is_none());
    drop(lock);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while h.query_by_label("Continue to 2000 steps").is_none() {
        assert!(
            std::time::Instant::now() < until,
            "no Continue once the run ended"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.get_by_label("Continue to 2000 steps").click();
    h.step();
    wait(&mut h, "the run to go on", |s| {
        monitor_steps(s).len() >= done + 2
    });
    h.get_by_label("Stop").click();
    wait(&mut h, "the run to stop", |s| !s.training_running());
    let steps = monitor_steps(h.state());
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>());
    // Stopped, not finished: the status says where.
    let status = h.state().training_status();
    assert!(
        status.starts_with(&format!("Stopped at step {}", steps.len())),
        "{status}"
    );
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), steps.len());
}

/// A finished run goes on from its checkpoint with its own options; while another run
/// trains in its folder, Continue is refused and nothing is touched.
#[test]
fn the_training_panel_continues_a_run() {
    use segue::studio::engines::TrainModel;
    let dir = tempfile::tempdir().unwrap();
    let (mut h, corpus, out) = training_in_panel(dir.path(), TrainModel::LstmVae, 2, 7);
    wait(&mut h, "training to finish", |s| !s.training_running());
    assert_eq!(
        monitor_steps(h.state()),
        [1, 2],
        "{}",
        h.state().training_status()
    );
    let status = h.state().training_status();
    assert!(status.starts_with("Finished, 2 steps"), "{status}");
    // Continued to 2000 steps, it validates and checkpoints as a 2000-step run would, with
    // its own seed and no time limit.
    let checkpoint = h.state().training_checkpoint().unwrap().to_path_buf();
    match segue::studio::workers::TrainSpec::of_run(&checkpoint, 2000).unwrap() {
        segue::studio::workers::TrainSpec::LstmVae(o) => {
            assert_eq!(
                (o.steps, o.eval_every, o.checkpoint_every),
                (2000, 100, 200)
            );
            assert_eq!((o.seed, o.max_seconds), (7, None));
        }
        _ => panic!("not the LSTM-VAE's options"),
    }
    // The slider's least: 10 steps.
    h.state_mut().session.train_steps = 10;
    h.step();
    h.get_by_label("Continue to 10 steps").click();
    h.step();
    wait(&mut h, "the run to go on", |s| !s.training_running());
    let all: Vec<usize> = (1..=10).collect();
    assert_eq!(
        monitor_steps(h.state()),
        all,
        "{}",
        h.state().training_status()
    );
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 10);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("lstm-vae.json")).unwrap()).unwrap();
    assert_eq!(manifest["steps"], 10);
    // The panel's seed, kept by the continued run.
    assert_eq!(manifest["training"]["seed"], 7);

    // Another run holds the folder: refused, nothing touched.
    let lock = segue::train_loop::lock_run_folder(&out).unwrap();
    h.state_mut().session.train_steps = 12;
    h.state_mut().continue_training(corpus.clone());
    wait(&mut h, "the refusal", |s| !s.training_running());
    let status = h.state().training_status().to_string();
    assert!(status.contains("another training run"), "{status}");
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
        log
    );
    drop(lock);
}

/// Composers A and B come back by name: the model loaded at the start may list them in
/// another order (or be another model, when the last one is lost).
#[test]
fn the_composers_come_back_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let session = Session {
        model_path: Some(model),
        composer_names: ["scales", "arps", "chords"].map(String::from).to_vec(),
        composer_a: 0,
        composer_b: 1,
        ..Session::default()
    };
    let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
    wait(&mut h, "the start", |s| !s.loading());
    let s = h.state();
    assert_eq!(s.composers(), ["arps", "chords", "scales"]);
    assert_eq!((s.session.composer_a, s.session.composer_b), (2, 0));
}

/// "Open a model file..." takes any of the four models, told by its manifest.
#[test]
fn a_model_file_of_any_kind_opens() {
    use segue::studio::{EngineKind, OtherModels};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    assert_eq!(h.state().model().unwrap().manifest.composers.len(), 3);
    // The shipped LSTM-VAE: the generation panel's model.
    let shipped = segue::models::trained::default_model_path().unwrap();
    h.state_mut().open_model_file(shipped);
    wait(&mut h, "the LSTM-VAE", |s| {
        s.model().is_some_and(|m| m.manifest.composers.len() == 20)
    });
    // A DCGAN: the generation panel turns to it.
    h.state_mut().set_other_models(OtherModels::default());
    let gan = segue::gan::default_path().unwrap();
    h.state_mut().open_model_file(gan);
    wait(&mut h, "the DCGAN", |s| s.other_models().gan.is_some());
    assert_eq!(h.state().session.engine, EngineKind::Dcgan);
    // Not a model: the file is named.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    h.state_mut().open_model_file(junk);
    wait(&mut h, "the error", |s| {
        s.message()
            .is_some_and(|(m, error)| *error && m.contains("junk.safetensors"))
    });
    assert_eq!(h.state().model().unwrap().manifest.composers.len(), 20);
    // An LSTM-VAE opened while the DCGAN generates: the panel turns back to the LSTM-VAE, and
    // two composers it does not know do not become one (both would clamp to its last).
    h.state_mut().session.composer_a = 4;
    h.state_mut().session.composer_b = 13;
    h.state_mut().open_model_file(model.clone());
    wait(&mut h, "the tiny LSTM-VAE", |s| {
        s.model().is_some_and(|m| m.manifest.composers.len() == 3)
    });
    let session = &h.state().session;
    assert_eq!(session.engine, EngineKind::LstmVae);
    assert_ne!(session.composer_a, session.composer_b);
    assert!(session.composer_a < 3 && session.composer_b < 3);
}

/// Loop without a selection loops the whole piece; with one, the selected notes' range.
#[test]
fn loop_plays_the_selection_or_the_whole_piece() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    // Two notes over 16 steps: 2 s at 120 bpm.
    let score = &mut h.state_mut().session.score;
    score.draw(60, 0, 8);
    score.draw(64, 8, 8);
    h.state_mut().session.looping = true;
    h.step();
    h.key_press(egui::Key::Space);
    h.step();
    // Three seconds later it plays on, inside the piece.
    let at = listen(&mut h, &mut engine, 3.0);
    assert!(h.state().playing());
    assert!((0.0..16.0).contains(&at), "{at}");
    // The second note selected with the Select tool: the loop is its range.
    h.state_mut().session.view.tool = segue::studio::piano_roll::Tool::Select;
    h.state_mut().session.view.selection = vec![1];
    h.step();
    let at = listen(&mut h, &mut engine, 3.0);
    assert!((8.0..16.0).contains(&at), "{at}");
    // Back to drawing: a note clicked (selected) with the Draw tool leaves the loop alone.
    h.state_mut().session.view.tool = segue::studio::piano_roll::Tool::Draw;
    h.state_mut().session.view.selection = vec![0];
    h.step();
    let at = listen(&mut h, &mut engine, 3.0);
    assert!((8.0..16.0).contains(&at), "{at}");
    // An edit undone: the loop is a range of the same piece, and stays.
    h.key_press(egui::Key::ArrowUp);
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    for _ in 0..12 {
        let at = listen(&mut h, &mut engine, 0.25);
        assert!((8.0..16.0).contains(&at), "the loop was dropped: {at}");
    }
    // Without Loop, the piece ends.
    h.state_mut().session.looping = false;
    h.state_mut().session.view.selection.clear();
    h.step();
    listen(&mut h, &mut engine, 3.0);
    assert!(!h.state().playing());
}

/// Looping bars while trying takes: a new generation from the same primer, an undo and a redo
/// keep the loop the Select tool made (they let go of the selection, the musician did not),
/// cut to the piece; a new selection moves it.
#[test]
fn a_new_take_and_an_undo_keep_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _engine) = studio_with_player(dir.path());
    let score = &mut h.state_mut().session.score;
    score.draw(60, 0, 8);
    score.draw(64, 8, 8);
    h.state_mut().session.looping = true;
    h.state_mut().session.view.tool = segue::studio::piano_roll::Tool::Select;
    h.state_mut().session.view.selection = vec![1];
    h.step();
    assert_eq!(h.state().loop_range(), Some((8, 16)));
    generate_new_piece(&mut h, "a new take");
    assert!(h.state().session.view.selection.is_empty());
    assert!(h.state().session.score.steps() > 16);
    assert_eq!(
        h.state().loop_range(),
        Some((8, 16)),
        "the take dropped the loop"
    );
    // A loop in the new part, then an undo back to the 16 steps: the loop past the piece's
    // end gives way to the whole piece (it looped silence).
    let late = (h.state().session.score.notes.iter())
        .position(|n| n.start >= 16)
        .expect("a generated note");
    h.state_mut().session.view.selection = vec![late];
    h.step();
    assert!(h.state().loop_range().unwrap().0 >= 16);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.step();
    assert_eq!(h.state().session.score.steps(), 16);
    assert_eq!(h.state().loop_range(), Some((0, 16)), "a loop past the end");
    // Undo and redo keep a loop inside the piece.
    h.state_mut().session.view.selection = vec![1];
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Y);
    h.step();
    h.step();
    assert!(h.state().session.score.steps() > 16, "redone");
    assert_eq!(
        h.state().loop_range(),
        Some((8, 16)),
        "the redo dropped the loop"
    );
    h.state_mut().session.view.selection = vec![0];
    h.step();
    assert_eq!(h.state().loop_range(), Some((0, 8)));
    // Let go of by the musician: the whole piece.
    h.key_press(egui::Key::Escape);
    h.step();
    h.step();
    let steps = h.state().session.score.steps();
    assert_eq!(h.state().loop_range(), Some((0, steps)));
}

/// Playing, the roll turns a page to the playhead as it runs past the view's right edge
/// (Follow, on by default); a view the musician scrolled away is left there; with Follow off
/// the view stays.
#[test]
fn the_roll_follows_the_playhead() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    // 64 steps: 8 s at 120 bpm; at 60 points a step about 16 steps are in view.
    h.state_mut().open_file(&fixture(dir.path()));
    wait(&mut h, "the file", |s| !s.background_work());
    h.state_mut().session.view.step_px = 60.0;
    h.step();
    let grid = h.state().session.view.grid_rect.unwrap();
    let visible = grid.width() / 60.0;
    assert!(visible < 30.0, "{visible} steps in view");
    h.key_press(egui::Key::Space);
    h.step();
    let mut at = 0.0;
    for _ in 0..40 {
        at = listen(&mut h, &mut engine, 0.25);
        if at >= f64::from(visible) + 4.0 {
            break;
        }
    }
    assert!(
        at >= f64::from(visible) + 4.0,
        "the playhead stayed at {at}"
    );
    let scroll = h.state().session.view.scroll_step;
    assert!(
        f64::from(scroll) <= at && at < f64::from(scroll + visible),
        "the playhead at {at} is out of the view from {scroll}"
    );
    assert!(scroll > 0.0);
    // A note held by the pointer: the view does not turn under it.
    stop_and_rewind(&mut h, &mut engine);
    h.state_mut().session.view.scroll_step = 0.0;
    h.step();
    let row = |pitch: f32| {
        let v = &h.state().session.view;
        grid.top() + (v.top_pitch - pitch - 0.5) * v.key_px
    };
    // The fixture's first note: pitch 60 at steps 0-1.
    let on_note = egui::pos2(grid.left() + 30.0, row(60.0));
    h.hover_at(on_note);
    h.step();
    h.drag_at(on_note);
    h.step();
    h.key_press(egui::Key::Space);
    h.step();
    for _ in 0..40 {
        if listen(&mut h, &mut engine, 0.25) >= f64::from(visible) + 4.0 {
            break;
        }
    }
    assert_eq!(
        h.state().session.view.scroll_step,
        0.0,
        "turned under a drag"
    );
    h.drop_at(on_note);
    h.step();
    // Scrolled away by the musician (the playhead out of view): left there.
    h.state_mut().session.view.scroll_step = 0.0;
    h.step();
    listen(&mut h, &mut engine, 0.25);
    assert_eq!(h.state().session.view.scroll_step, 0.0);
    // Follow off, from the start: the view stays as the playhead runs out of it. (The engine
    // runs between the keys, as a sound card's would.)
    stop_and_rewind(&mut h, &mut engine);
    h.state_mut().session.follow_playhead = false;
    h.key_press(egui::Key::Space);
    h.step();
    for _ in 0..40 {
        let at = listen(&mut h, &mut engine, 0.25);
        if at >= f64::from(visible) + 4.0 {
            break;
        }
    }
    assert!(h.state().playing());
    assert_eq!(h.state().session.view.scroll_step, 0.0);
}

/// Space stops and plays on from where playback stopped (past the end, from the start); Home
/// takes the playhead back to the start; a click on the ruler while stopped moves the playhead
/// without playing.
#[test]
fn space_plays_on_from_the_playhead() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    // 64 steps: 8 s at 120 bpm.
    let file = fixture(dir.path());
    h.state_mut().open_file(&file);
    wait(&mut h, "the file", |s| !s.background_work());
    assert_eq!(h.state().session.score.steps(), 64);
    // Rests after the last note, as most files and generations have: playback ends with the
    // last note.
    h.state_mut().session.score.length = 80;
    h.key_press(egui::Key::Space);
    h.step();
    let stopped_at = listen(&mut h, &mut engine, 1.0);
    assert!((6.0..10.0).contains(&stopped_at), "{stopped_at}");
    h.key_press(egui::Key::Space);
    h.step();
    let stopped_at = listen(&mut h, &mut engine, 0.1);
    assert!(!h.state().playing());
    h.key_press(egui::Key::Space);
    h.step();
    let at = listen(&mut h, &mut engine, 0.25);
    assert!(h.state().playing());
    assert!(at > stopped_at, "{at} after stopping at {stopped_at}");
    // Played to the end: the next Space starts from the start.
    listen(&mut h, &mut engine, 8.0);
    assert!(!h.state().playing());
    h.key_press(egui::Key::Space);
    h.step();
    assert!(listen(&mut h, &mut engine, 0.25) < 4.0);
    h.key_press(egui::Key::Space);
    h.step();
    // Home: back to the start, still stopped.
    h.key_press(egui::Key::Home);
    h.step();
    assert_eq!(listen(&mut h, &mut engine, 0.1), 0.0);
    assert!(!h.state().playing());
    // A click on the ruler, stopped: the playhead moves there, nothing plays.
    let grid = h
        .state()
        .session
        .view
        .grid_rect
        .expect("the roll was drawn");
    let on_ruler = egui::pos2(
        grid.left() + 10.0 * h.state().session.view.step_px + 1.0,
        grid.top() - 4.0,
    );
    click_at(&mut h, on_ruler);
    let at = listen(&mut h, &mut engine, 0.1);
    assert!(!h.state().playing());
    assert!(at > 0.0, "{at}");
    // A new piece, stopped: the playhead goes back to the start.
    h.state_mut().open_file(&file);
    wait(&mut h, "the file again", |s| !s.background_work());
    assert_eq!(listen(&mut h, &mut engine, 0.1), 0.0);
    // Space held down: the keyboard's repeats do not stop what the press started.
    h.key_down(egui::Key::Space);
    h.step();
    listen(&mut h, &mut engine, 0.05);
    assert!(h.state().playing());
    for _ in 0..3 {
        key_repeat(&mut h, egui::Key::Space);
        // The engine renders between repeats, so the studio knows it is playing.
        listen(&mut h, &mut engine, 0.05);
    }
    h.key_up(egui::Key::Space);
    listen(&mut h, &mut engine, 0.05);
    assert!(h.state().playing(), "a key repeat stopped playback");
}

/// "Shipped models" goes back to the four models of the weights folder, from models trained
/// or opened since, and the next start keeps them.
#[test]
fn the_shipped_models_come_back() {
    use segue::studio::OtherModels;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    assert_eq!(h.state().model().unwrap().manifest.composers.len(), 3);
    h.state_mut().set_other_models(OtherModels::default());
    h.state_mut().session.gan_path = Some(dir.path().join("gone.safetensors"));
    h.get_by_label("Shipped models").click();
    h.step();
    wait(&mut h, "the shipped models", |s| {
        let o = s.other_models();
        !s.background_work()
            && s.model().is_some_and(|m| m.manifest.composers.len() == 20)
            && o.tvae.is_some()
            && o.classifier.is_some()
            && o.gan.is_some()
    });
    let session = &h.state().session;
    assert!(session.gan_path.is_none() && session.tvae_path.is_none());
    assert!(session.model_path.is_none());
    assert!(h.state().style_meter_on());
}

/// The monitor follows a run training elsewhere: its log's lines as they are written.
#[test]
fn the_monitor_follows_another_runs_log() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = model.parent().unwrap().to_path_buf();
    let log = train::metrics_path(&run);
    let lines = std::fs::read_to_string(&log).unwrap();
    let n = lines.lines().count();
    assert!(n >= 3, "{n} lines");
    // The run is "still training" (it holds its folder): its log holds its first line, then
    // the rest comes.
    let (first, rest) = lines.split_once('\n').unwrap();
    std::fs::write(&log, format!("{first}\n")).unwrap();
    let lock = segue::train_loop::lock_run_folder(&run).unwrap();
    let mut h = studio(&model, None);
    h.get_by_label("Train...").click();
    h.step();
    // A folder without a run (picked by mistake, or before the run starts) says so.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    h.state_mut().follow_run(empty);
    wait(&mut h, "the look at the folder", |s| {
        s.training_status().starts_with("No training run in")
    });
    h.state_mut().follow_run(run.clone());
    wait(&mut h, "the first line", |s| {
        s.training_metrics().len() == 1
    });
    assert!(h.state().training_running());
    std::fs::write(&log, format!("{first}\n{rest}")).unwrap();
    wait(&mut h, "the new lines", |s| s.training_metrics().len() == n);
    // Its model file is the LSTM-VAE's: the monitor offers it to the generation panel.
    wait(&mut h, "the run's model file", |s| {
        s.training_checkpoint() == Some(model.as_path())
    });
    h.step();
    assert!(h.query_by_label("Use this model").is_some());
    assert!(h.query_by_label("Use this classifier").is_none());
    // Training elsewhere: it cannot be continued here; once it has ended, it can.
    let continue_button = "Continue to 2000 steps";
    assert!(h.query_by_label(continue_button).is_none());
    drop(lock);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while h.query_by_label(continue_button).is_none() {
        assert!(
            std::time::Instant::now() < until,
            "no Continue once the run ended"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    let steps: Vec<usize> = h
        .state()
        .training_metrics()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, (1..=n).collect::<Vec<_>>());
    h.get_by_label("Stop following").click();
    wait(&mut h, "following to stop", |s| !s.training_running());
    assert_eq!(h.state().training_metrics().len(), n);
}

/// The log reader: complete lines only, a new log after a truncation, bad lines named.
#[test]
fn the_log_follower_reads_complete_lines() {
    use segue::studio::workers::LogFollower;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let full = std::fs::read_to_string(train::metrics_path(model.parent().unwrap())).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let path = dir.path().join("metrics.jsonl");
    let mut f = LogFollower::new(path.clone());
    // Not written yet: nothing, no error.
    assert!(f.poll().unwrap().metrics.is_empty());
    // One line and half of the next.
    let half = lines[1].len() / 2;
    std::fs::write(&path, format!("{}\n{}", lines[0], &lines[1][..half])).unwrap();
    let p = f.poll().unwrap();
    assert_eq!((p.restarted, p.metrics.len()), (false, 1));
    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let p = f.poll().unwrap();
    assert_eq!(p.metrics.iter().map(|m| m.step()).collect::<Vec<_>>(), [2]);
    // A new run in the same folder starts a shorter log.
    std::fs::write(&path, format!("{}\n", lines[0])).unwrap();
    let p = f.poll().unwrap();
    assert!(p.restarted);
    assert_eq!(p.metrics.iter().map(|m| m.step()).collect::<Vec<_>>(), [1]);
    // A log replaced by another file (as a resumed run rewrites it), even a longer one.
    let next = dir.path().join("next.jsonl");
    std::fs::write(&next, format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    std::fs::rename(&next, &path).unwrap();
    let p = f.poll().unwrap();
    assert!(p.restarted);
    assert_eq!(
        p.metrics.iter().map(|m| m.step()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // A line of another kind of log.
    std::fs::write(&path, format!("{}\n{{\"loss\": 1}}\n", lines[0])).unwrap();
    let err = f.poll().unwrap_err();
    assert!(
        err.contains("metrics.jsonl line 2") && err.contains("not a metrics log of `segue train`"),
        "{err}"
    );
}

/// Renders the window with a generated piece; with SEGUE_SCREENSHOT=path, saves it there
/// (the README's picture comes from `SEGUE_SCREENSHOT=assets/studio.png cargo test --test studio screenshot`).
#[test]
fn screenshot() {
    let dir = tempfile::tempdir().unwrap();
    let model = match segue::models::trained::default_model_path() {
        Some(p) => p,
        None => tiny_model(dir.path()),
    };
    // Without the shared corpus the picture is of the model's own music (no primer).
    let primer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/chopin/chp_op18.mid");
    let primer = primer.exists().then_some(primer);
    let mut h = studio(&model, primer);
    h.state_mut().session.length = 256;
    h.state_mut().generate();
    wait(&mut h, "generation", |s| !s.generating());
    if h.state().style_meter_on() {
        // Let the meter hear the whole generated piece, so the picture shows it.
        wait(&mut h, "the style meter", |s| {
            s.style_verdict().is_some_and(|v| {
                v.windows.last().map_or(0, |w| w.0) + v.window >= s.session.score.steps()
            })
        });
    }
    h.state_mut().session.view.step_px = 3.0;
    h.state_mut().session.view.top_pitch = 100.0;
    h.step();
    h.step();
    match h.render() {
        Ok(image) => {
            if let Ok(path) = std::env::var("SEGUE_SCREENSHOT") {
                image.save(&path).unwrap();
            }
            // The window's size (at its pixels per point), and the generated notes drawn in
            // their colour.
            let ppp = h.ctx.pixels_per_point();
            assert_eq!(
                (image.width(), image.height()),
                ((1280.0 * ppp).round() as u32, (800.0 * ppp).round() as u32)
            );
            let generated = origin_color(Origin::Generated);
            let orange = image
                .pixels()
                .filter(|p| {
                    p.0.iter()
                        .zip(generated.to_array())
                        .take(3)
                        .all(|(a, b)| a.abs_diff(b) <= 8)
                })
                .count();
            assert!(orange > 100, "{orange} pixels of generated notes");
        }
        // No GPU adapter at all (not even lavapipe): nothing to draw with. scripts/test (and
        // so CI) sets SEGUE_REQUIRE_RENDER, where this is a failure.
        Err(e) if std::env::var_os("SEGUE_REQUIRE_RENDER").is_none() => {
            eprintln!("screenshot skipped: {e}")
        }
        Err(e) => panic!("the studio could not be drawn: {e}"),
    }
}

/// An undo made while a generation runs is not wiped out by its result: the piece stays as
/// the undo left it, Redo still brings the undone edit back, and the result waits under
/// Variations to be picked.
#[test]
fn a_result_arriving_after_an_undo_keeps_the_redo() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = studio_with_a_drawn_note(dir.path());
    let drawn = h.state().session.score.clone();
    // Long enough to still be running a frame later.
    h.state_mut().session.length = 4096;
    h.state_mut().session.variations = 8;
    h.get_by_label("Generate").click();
    h.step();
    assert!(h.state().generating());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert!(h.state().generating(), "the job outlived the undo");
    assert!(
        h.state().session.score.notes.is_empty(),
        "the drawn note undone"
    );
    wait(&mut h, "the generation", |s| !s.generating());
    let (text, error) = h.state().message().unwrap().clone();
    assert!(!error, "{text}");
    assert_eq!(
        text,
        "Generated 8 variation(s) with the LSTM-VAE, seed 1. Not put in the piece, which was \
         undone while it ran (Redo still holds what was undone): pick it under Variations."
    );
    assert!(h.state().session.score.notes.is_empty());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Y);
    h.step();
    assert_eq!(h.state().session.score, drawn, "Redo brought the note back");
    // The result is there to pick.
    h.get_by_label("#1 (seed 1)").click();
    h.step();
    let notes = &h.state().session.score.notes;
    assert!(notes.iter().any(|n| n.origin == Origin::Generated));
}

/// After an edit, Generate primes with the piece as it is then, and says so where notes drawn
/// by hand lie past what the model hears (they are replaced; undo brings them back). The
/// variation buttons show the seeds they were made with, not the seed box's later value.
/// Trim is an edit: a blend on its way is called off.
#[test]
fn generate_after_an_edit_says_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = studio_with_a_drawn_note(dir.path());
    let drawn = h.state().session.score.notes[0];
    assert!(drawn.start > 16);
    // A note in the first bar (the silent bars a piece opens with are heard as well, and the
    // primer's steps after them), and the model hears the bars before the drawn note.
    h.state_mut().session.score.draw(48, 0, 2);
    h.state_mut().session.primer_steps = drawn.start / 16 * 16;
    h.state_mut().session.variations = 2;
    generate_new_piece(&mut h, "a piece after the drawn note");
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        !error && text.contains("replaced the piece's notes after"),
        "{text}"
    );
    assert!(!h.state().session.score.notes.contains(&drawn));
    h.state_mut().session.seed = 40;
    h.step();
    assert!(h.query_by_label("#2 (seed 2)").is_some());
    // Another try (nothing edited since): the same primer, nothing more to say.
    let before_try = h.state().session.score.clone();
    generate_new_piece(&mut h, "another try");
    let (text, _) = h.state().message().unwrap().clone();
    assert_eq!(text, "Generated 2 variation(s) with the LSTM-VAE, seed 40.");
    assert!(h.query_by_label("#2 (seed 41)").is_some());
    // Auditioning the variations is one step: one undo brings back the piece before them.
    let first = h.state().session.score.clone();
    h.get_by_label("#2 (seed 41)").click();
    h.step();
    assert_ne!(h.state().session.score, first);
    h.get_by_label("#1 (seed 40)").click();
    h.step();
    assert_eq!(h.state().session.score, first);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(
        h.state().session.score,
        before_try,
        "undo went through the variations"
    );
    let redo = egui::Modifiers::COMMAND | egui::Modifiers::SHIFT;
    h.key_press_modifiers(redo, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score, first);
    // An edit undone, then another variation: that is a step of its own, and the undone edit
    // (of the other variation) can no longer be redone over it.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::ArrowUp);
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score, first);
    h.get_by_label("#2 (seed 41)").click();
    h.step();
    let second = h.state().session.score.clone();
    h.key_press_modifiers(redo, egui::Key::Z);
    h.step();
    assert_eq!(
        h.state().session.score,
        second,
        "an edit of #1 was redone over #2"
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score, first);
    // Notes moved while a long generation runs: its result replaces them, and says so.
    h.state_mut().session.length = 2048;
    h.state_mut().session.variations = 8;
    let before = h.state().session.score.clone();
    h.get_by_label("Generate").click();
    h.step();
    assert!(h.state().generating());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::ArrowUp);
    h.step();
    assert!(
        h.state().generating(),
        "the generation ended before the edit"
    );
    assert_ne!(h.state().session.score, before, "nothing was edited");
    wait(&mut h, "the long generation", |s| !s.generating());
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("replaced the edits made while it ran"),
        "{text}"
    );
    h.state_mut().session.length = 256;
    h.state_mut().session.variations = 2;
    // Trim while the slider's blend is on its way.
    let steps = h.state().session.score.steps();
    h.state_mut().session.score.length = steps + 40;
    h.state_mut().set_alpha(0.9);
    h.get_by_label("Trim").click();
    h.step();
    assert!(!h.state().regenerating() && !h.state().generating());
    assert!(h.state().message().unwrap().0.contains("Blend called off"));
}

/// A model of one composer (a musician's own folder) has no second style: B, the slider and
/// the modes are greyed out, and the slider says why.
#[test]
fn a_model_of_one_composer_offers_no_blend() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    // The same weights, their manifest naming one composer (its codes: the first one's).
    std::fs::copy(&model, one.join("lstm-vae.safetensors")).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.with_extension("json")).unwrap()).unwrap();
    let first = manifest["composers"][0].clone();
    manifest["composers"] = serde_json::json!([first]);
    let latents = manifest["latents"][0].clone();
    manifest["latents"] = serde_json::json!([latents]);
    std::fs::write(one.join("lstm-vae.json"), manifest.to_string()).unwrap();
    let mut h = studio(&one.join("lstm-vae.safetensors"), None);
    h.step();
    assert_eq!(h.state().composers().len(), 1, "{:?}", h.state().message());
    let slider_off = |h: &Harness<'static, Studio>| {
        (h.query_all_by_label("A <-> B")).all(|n| n.accesskit_node().is_disabled())
    };
    assert!(slider_off(&h));
    // Why, in words a screen reader reads (a disabled widget's hover text it does not).
    let why = (h.get_all_by_label("A <-> B"))
        .find_map(|n| n.accesskit_node().description())
        .unwrap_or_default();
    assert!(why.starts_with("This model knows one composer"), "{why}");
    // The piece itself as style A is a second style: B and the slider are there.
    h.state_mut().pick_styles(true, 0, 0);
    h.step();
    assert!(!slider_off(&h));
    let mut h = studio(&model, None);
    h.step();
    assert!(!slider_off(&h));
}

/// The window's icon is the program's own picture, not a blank default.
#[test]
fn the_window_has_its_icon() {
    let icon = segue::studio::app::window_icon();
    assert_eq!((icon.width, icon.height), (256, 256));
    assert_eq!(icon.rgba.len(), 256 * 256 * 4);
    let opaque = icon.rgba.chunks(4).filter(|p| p[3] == 255).count();
    assert!(opaque > 256 * 200, "{opaque}");
}

/// The model's line says where the model came from and its licence and credits (CC BY-SA
/// asks that the credits go with the weights), on hover and to a screen reader.
#[test]
fn the_model_line_gives_its_credits() {
    let shipped = segue::models::trained::default_model_path().unwrap();
    let mut h = studio(&shipped, None);
    h.step();
    let line = h.get_by(|n| {
        n.role() == egui::accesskit::Role::Label
            && (n.value()).is_some_and(|v| v.starts_with("LSTM-VAE: studio ("))
    });
    let about = line.accesskit_node().description().unwrap_or_default();
    assert!(
        about.starts_with("From ") && about.contains("lstm-vae-studio.safetensors. "),
        "{about}"
    );
    assert!(about.contains("Licence: CC BY-SA 3.0 DE"), "{about}");
    assert!(
        about.contains("Credits: Bernd Krueger, piano-midi.de"),
        "{about}"
    );
}

/// The A <-> B slider tells a screen reader which style each end is: the composers picked,
/// or the piece itself as style A.
#[test]
fn the_slider_names_its_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio(&tiny_model(dir.path()), None);
    h.step();
    let names = h.state().composers();
    assert!(names.len() >= 2, "{names:?}");
    let ends = |h: &Harness<'static, Studio>| {
        (h.get_all_by_label("A <-> B"))
            .find_map(|n| n.accesskit_node().description())
            .unwrap_or_default()
    };
    h.state_mut().pick_styles(false, 1, 0);
    h.step();
    assert_eq!(ends(&h), format!("0 is {}, 1 is {}", names[1], names[0]));
    h.state_mut().pick_styles(true, 0, 1);
    h.step();
    assert_eq!(
        ends(&h),
        format!("0 is the piece itself, 1 is {}", names[1])
    );
}

/// A note longer than the status line has room for is cut there; the Messages button (Tab
/// reaches it) opens every note of the session in full, newest first.
#[test]
fn the_messages_window_shows_every_note_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio(&tiny_model(dir.path()), None);
    h.step();
    let long = dir
        .path()
        .join(format!("{}.mid", "a-long-name-".repeat(20)));
    h.state_mut().open_file(&long);
    wait(&mut h, "the file", |s| !s.background_work());
    let (said, error) = h.state().message().unwrap().clone();
    assert!(error && said.contains("a-long-name-a-long"), "{said}");
    // Labels holding `text` (not their selectable text runs).
    let labels = |h: &Harness<'static, Studio>, text: &dyn Fn(&str) -> bool| {
        let label = egui::accesskit::Role::Label;
        (h.query_all_by(|n| n.role() == label && n.value().is_some_and(|v| text(&v)))).count()
    };
    let whole = |v: &str| v.contains(&said);
    // The status line's note holds it (cut on screen); the window, not yet open, does not.
    assert_eq!(labels(&h, &whole), 1);
    assert_eq!(h.state().messages().notes().last().unwrap().text, said);
    h.get_by_label("Messages").click();
    h.step();
    h.step();
    assert_eq!(labels(&h, &whole), 2);
    assert_eq!(labels(&h, &|v| v.starts_with("just now: error: /")), 1);
}

/// Page Down and Page Up turn the roll a page on and back in time (a tenth of it stays in
/// view); Home brings it back to the start with the playhead.
#[test]
fn home_and_the_page_keys_turn_the_roll() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    let view = &h.state().session.view;
    let page = 0.9 * view.grid_rect.unwrap().width() / view.step_px;
    let scrolled = |h: &Harness<'static, Studio>| h.state().session.view.scroll_step;
    h.key_press(egui::Key::PageDown);
    h.step();
    assert!(
        (scrolled(&h) - page).abs() < 1e-3,
        "{} vs {page}",
        scrolled(&h)
    );
    h.key_press(egui::Key::PageDown);
    h.step();
    h.key_press(egui::Key::PageUp);
    h.step();
    assert!(
        (scrolled(&h) - page).abs() < 1e-3,
        "{} vs {page}",
        scrolled(&h)
    );
    h.key_press(egui::Key::Home);
    h.step();
    assert_eq!(scrolled(&h), 0.0);
}

/// A narrow window puts the rest of the toolbar on a second row: every control stays in view.
#[test]
fn a_narrow_window_keeps_the_whole_toolbar() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let session = Session {
        model_path: Some(model),
        ..Session::default()
    };
    let mut h = window(session, None, egui::vec2(800.0, 500.0), false);
    wait(&mut h, "the start", |s| !s.loading());
    for label in ["Open MIDI...", "Undo", "Select", "Train..."] {
        let rect = h.get_by_label(label).rect();
        assert!(
            rect.right() <= 800.0 && rect.bottom() <= 500.0,
            "{label}: {rect:?}"
        );
    }
}

/// With a button focused (after Tab), the studio's keys still work: Space plays (and does not
/// press the button), Delete, Ctrl+Z and Ctrl+Y edit; Escape lets go of the selection.
#[test]
fn the_keys_work_with_a_button_focused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    h.state_mut().session.score.draw(60, 0, 4);
    h.state_mut().session.score.draw(64, 4, 4);
    h.state_mut().session.looping = true;
    h.step();
    // A screen reader hears what the roll holds.
    h.get_by_label("Piano roll: 2 notes, 0 selected");
    let before = h.state().session.score.clone();
    h.get_by_label("Generate").focus();
    h.step();
    assert!(
        h.ctx.memory(|m| m.focused().is_some()),
        "a button has the focus"
    );
    h.key_press(egui::Key::Space);
    h.step();
    listen(&mut h, &mut engine, 0.05);
    assert!(h.state().playing(), "Space plays");
    assert!(!h.state().generating(), "and does not press Generate");
    h.key_press(egui::Key::Space);
    h.step();
    listen(&mut h, &mut engine, 0.05);
    assert!(!h.state().playing());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    assert_eq!(h.state().session.view.selection.len(), 2);
    h.key_press(egui::Key::Delete);
    h.step();
    assert!(h.state().session.score.notes.is_empty());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score, before);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Y);
    h.step();
    assert!(h.state().session.score.notes.is_empty(), "Ctrl+Y redoes");
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.key_press(egui::Key::Escape);
    h.step();
    assert!(
        h.state().session.view.selection.is_empty(),
        "Escape deselects"
    );
}

#[test]
fn drawing_deleting_and_undo_in_the_piano_roll() {
    let dir = tempfile::tempdir().unwrap();
    // Draw: a click on empty grid.
    let (mut h, at) = studio_with_a_drawn_note(dir.path());
    let notes = &h.state().session.score.notes;
    assert_eq!(notes[0].len, 4);
    // Trim ends the piece with its last note; Undo gives the rests back.
    let end = notes[0].start + notes[0].len;
    h.state_mut().session.score.length = end + 40;
    h.step();
    h.get_by_label("Trim").click();
    h.step();
    assert_eq!(h.state().session.score.steps(), end);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score.steps(), end + 40);
    assert_eq!(h.state().session.score.notes.len(), 1);
    // Backspace typed into a text field (here the tempo) edits the field, not the roll, even
    // with a note selected (which Backspace deletes where no field has the keys).
    h.state_mut().session.view.selection = vec![0];
    h.get_by_label("Tempo").focus();
    h.step();
    h.key_press(egui::Key::Backspace);
    h.step();
    assert_eq!(h.state().session.score.notes.len(), 1, "the note survives");
    h.key_press(egui::Key::Escape);
    h.step();
    h.state_mut().session.view.selection = vec![0];
    // Delete removes the selected note; Ctrl+Z brings it back, Ctrl+Shift+Z removes it again.
    h.key_press(egui::Key::Delete);
    h.step();
    assert!(h.state().session.score.notes.is_empty());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().session.score.notes.len(), 1);
    // Clicking the note (to hear it) changes nothing, so the redo step stays.
    click_at(&mut h, at);
    assert_eq!(h.state().session.score.notes.len(), 1);
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.step();
    assert!(h.state().session.score.notes.is_empty());
}

/// Turns the wheel over the roll with `modifiers` held and runs frames until it settles.
fn wheel(h: &mut Harness<'static, Studio>, at: egui::Pos2, modifiers: egui::Modifiers, dy: f32) {
    h.hover_at(at);
    h.step();
    // The keys stay held while the wheel's smoothed motion plays out, as a hand holds them.
    h.event(egui::Event::ModifiersChanged(modifiers));
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, dy),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers,
    });
    for _ in 0..60 {
        h.step();
    }
    h.event(egui::Event::ModifiersChanged(egui::Modifiers::default()));
    h.step();
}

/// Dragging while drawing sets the note's length to end at the pointer (and that length is
/// the next note's); Ctrl+wheel zooms time, Ctrl+Shift+wheel the pitch rows.
#[test]
fn drag_drawing_sets_the_length_and_the_wheel_zooms() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    h.step();
    let grid = h
        .state()
        .session
        .view
        .grid_rect
        .expect("the roll was drawn");
    let px = h.state().session.view.step_px;
    let at = grid.center();
    // Two cells to the right of the pressed one: a note three steps long.
    drag_between(&mut h, at, at + egui::vec2(2.0 * px, 0.0));
    let notes = &h.state().session.score.notes;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].len, 3, "the note ends at the pointer's cell");
    assert_eq!(h.state().session.view.draw_len, 3);
    // The next click draws that length, not more.
    let below = at + egui::vec2(0.0, 6.0 * h.state().session.view.key_px);
    click_at(&mut h, below);
    let notes = &h.state().session.score.notes;
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1].len, 3);

    // A click that wobbles less than egui's drag threshold into the next cell draws the
    // drawing length (3), not a longer note, and leaves that length as it was.
    // Pressed 1 pt before the line between two cells, let go 2 pt after it.
    let boundary = grid.left() + (30.0 - h.state().session.view.scroll_step) * px;
    let wobble = egui::pos2(
        boundary - 1.0,
        below.y + 12.0 * h.state().session.view.key_px,
    );
    drag_between(&mut h, wobble, wobble + egui::vec2(3.0, 0.0));
    let notes = &h.state().session.score.notes;
    assert_eq!(notes.len(), 3);
    assert_eq!(notes[2].len, 3, "a wobble stretched the note");
    assert_eq!(h.state().session.view.draw_len, 3);

    // A zoom keeps the step under the pointer where it is.
    let (step_px, key_px) = (
        h.state().session.view.step_px,
        h.state().session.view.key_px,
    );
    let view = &h.state().session.view;
    let step_under =
        |v: &segue::studio::piano_roll::RollView| (at.x - grid.left()) / v.step_px + v.scroll_step;
    let pitch_under =
        |v: &segue::studio::piano_roll::RollView| v.top_pitch - (at.y - grid.top()) / v.key_px;
    let (step_before, pitch_before) = (step_under(view), pitch_under(view));
    wheel(&mut h, at, egui::Modifiers::COMMAND, 60.0);
    let view = &h.state().session.view;
    assert!(
        view.step_px > step_px,
        "Ctrl+wheel zooms time in: {} -> {}",
        step_px,
        view.step_px
    );
    assert_eq!(view.key_px, key_px);
    assert!(
        (step_under(view) - step_before).abs() < 1e-3,
        "the step under the pointer moved: {step_before} -> {}",
        step_under(view)
    );
    let step_px = view.step_px;
    wheel(
        &mut h,
        at,
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        60.0,
    );
    let view = &h.state().session.view;
    assert!(
        view.key_px > key_px,
        "Ctrl+Shift+wheel makes the rows taller"
    );
    assert_eq!(view.step_px, step_px);
    assert!(
        (pitch_under(view) - pitch_before).abs() < 1e-3,
        "the pitch under the pointer moved"
    );
}

/// In a compound metre the counted beat is dotted: in 6/8 Shift+arrow moves a selection by
/// three eighths and Ctrl+D repeats it after whole dotted beats, not single eighths.
#[test]
fn a_beat_in_six_eight_is_three_eighths() {
    use egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio_with_selected(dir.path(), &[(60, 12, 2), (64, 14, 4)]);
    let six_eight = segue::meter::StepMeter {
        step: 0,
        meter: segue::midi::Meter {
            numerator: 6,
            denominator: 8,
        },
    };
    h.state_mut().session.score.meters = vec![six_eight].into();
    let starts = |h: &Harness<'static, Studio>| {
        let notes = &h.state().session.score.notes;
        let mut v: Vec<_> = notes.iter().map(|n| (n.pitch, n.start)).collect();
        v.sort_unstable();
        v
    };
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowRight);
    h.step();
    assert_eq!(starts(&h), vec![(60, 18), (64, 20)]);
    // The selection spans steps 18..24, 6 steps: one dotted beat, so the repeat starts at 24.
    h.key_press_modifiers(Modifiers::COMMAND, Key::D);
    h.step();
    assert_eq!(starts(&h), vec![(60, 18), (60, 24), (64, 20), (64, 26)]);
}

/// A pickup is bar 0, as a score numbers it: the roll draws it and a screen reader hears its
/// notes "in the pickup", those of the first whole bar "at bar 1".
#[test]
fn a_pickup_is_bar_0_in_the_roll() {
    use egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio_with_selected(dir.path(), &[(60, 0, 2), (64, 4, 2)]);
    let meter = |step, numerator| segue::meter::StepMeter {
        step,
        meter: segue::midi::Meter {
            numerator,
            denominator: 4,
        },
    };
    h.state_mut().session.score.meters = vec![meter(0, 1), meter(4, 3)].into();
    h.state_mut().session.view.selection.clear();
    h.step();
    h.key_press(Key::F6);
    h.step();
    let said = |h: &Harness<'static, Studio>, what: &str| h.query_by_label_contains(what).is_some();
    h.key_press_modifiers(Modifiers::ALT, Key::ArrowRight);
    h.step();
    assert!(said(&h, "(C4 in the pickup, step 1 of it, 2 steps long)"));
    h.key_press_modifiers(Modifiers::ALT, Key::ArrowRight);
    h.step();
    assert!(said(&h, "(E4 at bar 1, step 1 of the bar, 2 steps long)"));
}

/// An arrow held down moves the selection on with the key's repeats, as one undo step; an
/// octave that does not fit is not moved part of the way (that would be another key).
#[test]
fn held_arrows_are_one_undo_step_and_octaves_move_whole() {
    use egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio_with_selected(dir.path(), &[(118, 16, 4), (122, 16, 4)]);
    let starts = |h: &Harness<'static, Studio>| {
        let notes = &h.state().session.score.notes;
        notes.iter().map(|n| (n.pitch, n.start)).collect::<Vec<_>>()
    };
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowUp);
    h.step();
    assert_eq!(starts(&h), vec![(118, 16), (122, 16)], "part of an octave");
    // Up held with Shift (refused), Shift let go: the repeats move a semitone each, as an
    // undo step of their own.
    h.key_down_modifiers(Modifiers::SHIFT, Key::ArrowUp);
    h.step();
    assert_eq!(starts(&h), vec![(118, 16), (122, 16)]);
    key_repeat(&mut h, Key::ArrowUp);
    h.key_up(Key::ArrowUp);
    h.step();
    assert_eq!(starts(&h), vec![(119, 16), (123, 16)]);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(starts(&h), vec![(118, 16), (122, 16)]);
    h.state_mut().session.view.selection = vec![0, 1];
    h.step();
    // Held: the press, then three repeats.
    h.key_down(Key::ArrowRight);
    h.step();
    for _ in 0..3 {
        key_repeat(&mut h, Key::ArrowRight);
    }
    // The repeats send the piece at most every 100 ms; the release sends what it became.
    assert!(h.state().session.view.in_gesture());
    h.key_up(Key::ArrowRight);
    h.step();
    assert_eq!(starts(&h), vec![(118, 20), (122, 20)]);
    assert!(
        h.state().piece_sent(),
        "the last moves never reached playback"
    );
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(starts(&h), vec![(118, 16), (122, 16)], "one undo step");
}

/// A note moved onto another of its pitch does not stack on it unseen (the roll shows what
/// the export writes): the moved note stays whole, the one it covers goes (one undo step
/// brings both back); zoomed out so far that the steps are not drawn, a click places a note
/// on the beat drawn before it; Shift on a selected note only takes it out of the selection.
#[test]
fn edited_notes_settle_and_snap_to_the_grid_shown() {
    use egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio_with_selected(dir.path(), &[(60, 0, 4), (60, 8, 4)]);
    let notes = |h: &Harness<'static, Studio>| {
        let mut n: Vec<(u8, usize, usize)> = (h.state().session.score.notes.iter())
            .map(|n| (n.pitch, n.start, n.len))
            .collect();
        n.sort_unstable();
        n
    };
    h.state_mut().session.view.selection = vec![0];
    h.step();
    for _ in 0..8 {
        h.key_press(Key::ArrowRight);
        h.step();
    }
    assert_eq!(notes(&h), vec![(60, 8, 4)]);
    let selected = &h.state().session.view.selection;
    assert_eq!(selected.len(), 1, "the moved note stays selected");
    for _ in 0..8 {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.step();
    }
    assert_eq!(notes(&h), vec![(60, 0, 4), (60, 8, 4)]);
    // Escape while an arrow is held: what it moved is settled before the selection goes.
    h.state_mut().session.view.selection = vec![0];
    h.step();
    h.key_down(Key::ArrowRight);
    h.step();
    for _ in 0..4 {
        key_repeat(&mut h, Key::ArrowRight);
    }
    h.key_press(Key::Escape);
    h.step();
    h.key_up(Key::ArrowRight);
    h.step();
    assert_eq!(notes(&h), vec![(60, 5, 4), (60, 9, 3)]);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(notes(&h), vec![(60, 0, 4), (60, 8, 4)]);
    // A repeat (Ctrl+D) that covers a shorter note of its pitch takes its place: the same
    // number of notes, and still an undo step that brings the shorter one back.
    let mut short = h.state().session.score.notes[0];
    (short.start, short.len) = (4, 2);
    let mut long = short;
    (long.start, long.len) = (0, 4);
    h.state_mut().session.score.notes = vec![long, short];
    h.state_mut().session.view.selection = vec![0];
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::D);
    h.step();
    assert_eq!(notes(&h), vec![(60, 0, 4), (60, 4, 4)]);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(notes(&h), vec![(60, 0, 4), (60, 4, 2)]);

    // Zoomed out: 2.5 points a step, beats (4 steps) drawn, steps not.
    let view = &mut h.state_mut().session.view;
    view.step_px = 2.5;
    view.scroll_step = 0.0;
    view.selection.clear();
    h.step();
    let grid = h.state().session.view.grid_rect.unwrap();
    let y = grid.center().y;
    let pitch = h.state().session.score.notes.len();
    click_at(&mut h, egui::pos2(grid.left() + 2.5 * 21.2, y));
    let drawn = h.state().session.score.notes.clone();
    assert_eq!(drawn.len(), pitch + 1);
    let new = drawn.iter().find(|n| n.pitch != 60).unwrap();
    assert_eq!(new.start, 20, "on the beat at step 20, not step 21");

    // Shift-pressing a selected note and dragging moves nothing.
    let before = h.state().session.score.clone();
    h.state_mut().session.view.selection = (0..before.notes.len()).collect();
    h.step();
    let at = egui::pos2(grid.left() + 2.5 * 22.0, y);
    h.hover_at(at);
    h.step();
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: Modifiers::SHIFT,
        },
        Modifiers::SHIFT,
    );
    h.step();
    let to = egui::pos2(at.x + 40.0, y);
    h.hover_at(to);
    h.step();
    h.drop_at(to);
    h.step();
    assert_eq!(h.state().session.score.notes, before.notes);
    assert_eq!(
        h.state().session.view.selection.len(),
        before.notes.len() - 1
    );
}

/// The keyboard edits the selection: arrows move it, Ctrl+D repeats it, copy and paste go
/// through the system clipboard's text, Ctrl+A selects all, cut removes; each is one undo step.
#[test]
fn keyboard_editing_of_the_selection() {
    use egui::{Event, Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let mut h = studio_with_selected(dir.path(), &[(60, 16, 4), (64, 18, 4)]);
    let notes = |h: &Harness<'static, Studio>| {
        let mut n: Vec<(u8, usize, usize)> = h
            .state()
            .session
            .score
            .notes
            .iter()
            .map(|n| (n.pitch, n.start, n.len))
            .collect();
        n.sort_unstable();
        n
    };
    // Up a semitone, right a step; Shift: an octave down, a beat (4 steps in 4/4) left.
    h.key_press(Key::ArrowUp);
    h.key_press(Key::ArrowRight);
    h.step();
    assert_eq!(notes(&h), vec![(61, 17, 4), (65, 19, 4)]);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowDown);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowLeft);
    h.step();
    assert_eq!(notes(&h), vec![(49, 13, 4), (53, 15, 4)]);
    // Each key was its own step of the undo history.
    for _ in 0..2 {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.step();
    }
    assert_eq!(notes(&h), vec![(61, 17, 4), (65, 19, 4)]);
    // Ctrl+D: the selection again right after itself, whole beats after its start (it spans
    // steps 17..23, 6 steps: 2 beats, so from 25), selected. (Undo replaced the score, and
    // with it the selection.)
    h.state_mut().session.view.selection = vec![0, 1];
    h.key_press_modifiers(Modifiers::COMMAND, Key::D);
    h.step();
    assert_eq!(
        notes(&h),
        vec![(61, 17, 4), (61, 25, 4), (65, 19, 4), (65, 27, 4)]
    );
    let selected = |h: &Harness<'static, Studio>| {
        let s = h.state();
        let mut v: Vec<(u8, usize)> = (s.session.view.selection.iter())
            .map(|&i| {
                (
                    s.session.score.notes[i].pitch,
                    s.session.score.notes[i].start,
                )
            })
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(selected(&h), vec![(61, 25), (65, 27)]);
    // Copy puts the notes on the clipboard as text; pasting it with the pointer off the
    // grid adds them after the piece's end (step 31).
    h.event(Event::Copy);
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .expect("Copy wrote the clipboard");
    assert!(copied.starts_with("segue-notes:"), "{copied}");
    h.event(Event::Paste(copied.clone()));
    h.step();
    assert_eq!(notes(&h).len(), 6);
    assert!(notes(&h).contains(&(61, 31, 4)) && notes(&h).contains(&(65, 33, 4)));
    // Pasted where the same notes are (in place, the pointer on the first): nothing is
    // stacked unseen on them; they are selected.
    let grid = h.state().session.view.grid_rect.unwrap();
    let (step_px, key_px, top) = {
        let v = &h.state().session.view;
        (v.step_px, v.key_px, v.top_pitch)
    };
    let on_first = egui::pos2(
        grid.left() + (31.0 - h.state().session.view.scroll_step + 0.5) * step_px,
        grid.top() + (top - 61.5) * key_px,
    );
    h.hover_at(on_first);
    h.event(Event::Paste(copied));
    h.step();
    assert_eq!(notes(&h).len(), 6, "a paste in place stacked copies");
    h.hover_at(egui::pos2(1.0, 1.0));
    // Text that is not notes pastes nothing.
    h.event(Event::Paste("hello".into()));
    h.step();
    assert_eq!(notes(&h).len(), 6);
    // Ctrl+A then cut: everything goes; one undo brings it all back.
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.step();
    h.event(Event::Cut);
    h.step();
    assert!(notes(&h).is_empty());
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(notes(&h).len(), 6);
    // The velocity box sets the selected notes' velocity, and nothing else.
    h.state_mut().session.view.selection = vec![0, 1];
    h.step();
    h.get_by_label("Velocity").focus();
    h.step();
    h.get_by_label("Velocity").type_text("110");
    h.key_press(Key::Enter);
    h.step();
    let velocities = |h: &Harness<'static, Studio>| {
        let notes = &h.state().session.score.notes;
        notes.iter().map(|n| n.velocity).collect::<Vec<u8>>()
    };
    assert_eq!(velocities(&h), vec![110, 110, 80, 80, 80, 80]);
    assert_eq!(notes(&h).len(), 6);
    // Typing the value was one step of the undo history, however many keys it took.
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(velocities(&h), vec![80; 6]);
    assert_eq!(notes(&h).len(), 6);
    // So is a new tempo, on its own: undo takes it back and leaves the notes as they are.
    let bpm = h.state().session.score.bpm;
    h.get_by_label("Tempo").focus();
    h.step();
    h.get_by_label("Tempo").type_text("93");
    h.key_press(Key::Enter);
    h.step();
    assert_eq!(h.state().session.score.bpm, 93.0);
    let with_tempo = h.state().session.score.notes.clone();
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().session.score.bpm, bpm);
    assert_eq!(h.state().session.score.notes, with_tempo);
    // A step recorded while the box keeps the focus (here a generation's result) ends the
    // box's step: its next change is a step of its own, which Undo takes back alone (it was
    // merged into the generation's, and Undo took back both).
    h.get_by_label("Tempo").focus();
    h.step();
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().session.score.bpm, bpm + 1.0);
    let before = h.state().session.score.clone();
    h.state_mut().generate();
    wait(&mut h, "a generation", |s| {
        !s.generating() && s.session.score.notes != before.notes
    });
    let generated = h.state().session.score.notes.clone();
    let tempo = h.state().session.score.bpm;
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().session.score.bpm, tempo + 1.0);
    h.get_by_label("Undo").click();
    h.step();
    h.step();
    assert_eq!(h.state().session.score.notes, generated);
    assert_eq!(h.state().session.score.bpm, tempo);
}

/// A file faster than the tempo box drags over keeps its tempo map through the window and
/// the export; a trimmed piece exports at its length, though its file changed tempo later.
#[test]
fn a_fast_file_keeps_its_tempo_and_a_trimmed_piece_its_length() {
    use common::{Ev, off, on, smf};
    use midly::{Format, Timing, num::u15};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let file = dir.path().join("fast.mid");
    let events = vec![
        (0, Ev::Tempo(150_000)), // 400 bpm
        (0, on(0, 60, 90)),
        (96, off(0, 60)),
        (192, Ev::Tempo(200_000)), // 300 bpm from step 8
        (192, on(0, 62, 90)),
        (288, off(0, 62)),
        (960, Ev::Tempo(300_000)), // past the last note, at the file's end
    ];
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(96)),
        &[events],
    );
    std::fs::write(&file, bytes).unwrap();
    let mut h = studio(&model, Some(file));
    for _ in 0..3 {
        h.step();
    }
    assert_eq!(h.state().session.score.bpm, 400.0);
    let export = |h: &mut Harness<'static, Studio>, name: &str| {
        let out = dir.path().join(name);
        h.state_mut().export_midi(&out);
        wait(h, "the export", |s| !s.background_work());
        Roll::read_midi(&out, &QuantizeOptions::whole_file()).unwrap()
    };
    let tempo = |roll: &Roll| {
        (roll.tempo().iter())
            .map(|t| (t.step, t.micros_per_quarter))
            .collect::<Vec<_>>()
    };
    let whole = export(&mut h, "whole.mid");
    assert_eq!(whole.steps(), 40);
    assert_eq!(tempo(&whole), vec![(0, 150_000), (8, 200_000)]);
    h.get_by_label("Trim").click();
    h.step();
    let trimmed = export(&mut h, "trimmed.mid");
    assert_eq!(trimmed.steps(), 12);
    assert_eq!(tempo(&trimmed), vec![(0, 150_000), (8, 200_000)]);
}

/// A studio with a tiny model in `dir` and a file given on the command line, both still
/// loading.
fn loading_studio(dir: &Path) -> Harness<'static, Studio> {
    let model = tiny_model(dir);
    let file = fixture(dir);
    let session = Session {
        model_path: Some(model),
        ..Session::default()
    };
    window(session, Some(file), egui::vec2(1280.0, 800.0), false)
}

/// The window shows before the models have loaded (on a worker thread), with Generate greyed
/// out and a file given on the command line still to come; then everything is in place.
#[test]
fn the_window_shows_while_the_models_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = loading_studio(dir.path());
    h.step();
    // Loading takes far longer than a frame.
    assert!(h.state().loading());
    assert!(h.state().model().is_none());
    assert!(h.get_by_label("Generate").accesskit_node().is_disabled());
    wait(&mut h, "the start", |s| !s.loading());
    assert!(h.state().model().is_some());
    assert!(
        !h.state().session.score.notes.is_empty(),
        "the file is open"
    );
    h.step();
    assert!(!h.get_by_label("Generate").accesskit_node().is_disabled());
}

/// A note drawn while the models load wins over the file given on the command line, which is
/// said (not opened, and not forgotten without a word).
#[test]
fn a_file_given_at_the_start_is_not_opened_over_edits_made_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = loading_studio(dir.path());
    h.step();
    h.step();
    assert!(h.state().loading());
    let at = (h.state().session.view.grid_rect)
        .expect("the roll was drawn")
        .center();
    click_at(&mut h, at);
    assert_eq!(h.state().session.score.notes.len(), 1);
    wait(&mut h, "the start", |s| !s.loading());
    assert_eq!(
        h.state().session.score.notes.len(),
        1,
        "the drawn note stays"
    );
    let (said, _) = h.state().message().unwrap().clone();
    assert!(
        said.contains("primer.mid was not opened over the edits made while the studio started"),
        "{said}"
    );
}

/// A file opened while the slider's regeneration is pending is not replaced by it.
#[test]
fn opening_a_file_cancels_the_pending_generation() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    h.state_mut().set_alpha(0.7);
    h.state_mut().open_file(&fixture(dir.path()));
    wait(&mut h, "the file", |s| !s.background_work());
    let opened = h.state().session.score.clone();
    assert!(opened.notes.iter().all(|n| n.origin == Origin::Primer));
    // Past the slider's rest: still the file, nothing generating.
    std::thread::sleep(Duration::from_millis(400));
    for _ in 0..5 {
        h.step();
    }
    assert!(!h.state().generating());
    assert_eq!(h.state().session.score, opened);
}

/// Opening a file over a piece with work in it says how to get that piece back; over a file
/// opened and left as it was, it says nothing more.
#[test]
fn opening_a_file_over_work_says_how_to_get_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = studio_with_a_drawn_note(dir.path());
    let file = fixture(dir.path());
    h.state_mut().open_file(&file);
    wait(&mut h, "the file", |s| !s.background_work());
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("Ctrl+Z brings back the piece it replaced"),
        "{text}"
    );
    h.state_mut().open_file(&file);
    wait(&mut h, "the file again", |s| !s.background_work());
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.starts_with("Opened") && !text.contains("Ctrl+Z"),
        "{text}"
    );
    // An undo and its redo leave the file's piece as it was: no work.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.step();
    h.state_mut().open_file(&file);
    wait(&mut h, "the file after an undo and a redo", |s| {
        !s.background_work()
    });
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.starts_with("Opened") && !text.contains("Ctrl+Z"),
        "{text}"
    );
    // A note deleted from the file's is work too, though every note left is the file's.
    let count = h.state().session.score.notes.len();
    h.key_press(egui::Key::F6);
    h.step();
    h.state_mut().session.view.selection = vec![0];
    h.key_press(egui::Key::Delete);
    h.step();
    assert_eq!(h.state().session.score.notes.len(), count - 1);
    assert!(
        h.state()
            .session
            .score
            .notes
            .iter()
            .all(|n| n.origin == Origin::Primer)
    );
    h.state_mut().open_file(&file);
    wait(&mut h, "the file once more", |s| !s.background_work());
    let (text, _) = h.state().message().unwrap().clone();
    assert!(
        text.contains("Ctrl+Z brings back the piece it replaced"),
        "{text}"
    );
}

/// A file with drums opens without them (a piano model goes on from the piano), saying so; its
/// sustain pedal, not applied, is said too (why it sounds drier than in another player).
#[test]
fn a_file_opens_without_its_drums_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    let file = dir.path().join("band.mid");
    let events = vec![
        (0, common::Ev::Pedal(0, 127)),
        (0, common::on(0, 60, 90)),
        (0, common::on(9, 36, 100)),
        (48, common::off(9, 36)),
        (96, common::off(0, 60)),
        (96, common::on(9, 38, 100)),
        (144, common::off(9, 38)),
    ];
    let bytes = common::smf(
        midly::Format::SingleTrack,
        midly::Timing::Metrical(96.into()),
        &[events],
    );
    std::fs::write(&file, bytes).unwrap();
    h.state_mut().open_file(&file);
    wait(&mut h, "the file", |s| !s.background_work());
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        !error
            && text.contains("its 2 drum notes (channel 10) are left out")
            && text.contains("its sustain pedal (1 press) is not applied"),
        "{text}"
    );
    let pitches: Vec<u8> = (h.state().session.score.notes.iter())
        .map(|n| n.pitch)
        .collect();
    assert_eq!(pitches, [60]);
}

/// A model of an earlier session that no longer loads gives way to the shipped one.
#[test]
fn a_lost_model_falls_back_to_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.safetensors");
    std::fs::write(&gone, b"not a model").unwrap();
    std::fs::write(gone.with_extension("json"), b"{}").unwrap();
    // A file opened at the start too: its "Opened ..." does not hide the fallback.
    let h = studio(&gone, Some(fixture(dir.path())));
    assert!(h.state().model().is_some());
    // The shipped model is not named in the session: the next start takes the one shipped
    // then (a newer install's).
    assert_eq!(h.state().session.model_path, None);
    let (message, error) = h.state().message().unwrap();
    assert!(
        *error && message.contains("gone") && message.contains("using the shipped model"),
        "{message}"
    );
}

#[test]
fn the_other_models_generate_and_the_style_meter_follows_the_piece() {
    use segue::studio::{EngineKind, OtherModels};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let corpus = Corpus::load(
        &dir.path().join("corpus"),
        &LoadOptions {
            quantize: QuantizeOptions::default(),
            cache_dir: None,
        },
        &|_, _| {},
    )
    .unwrap();
    // A tiny classifier and DCGAN, trained for two steps each.
    let mut c = segue::classify::ClassifierOptions::default();
    c.config.stack.layers = 1;
    c.config.stack.width = 32;
    c.config.stack.heads = 4;
    c.config.stack.max_len = 16;
    c.train = segue::train_loop::LoopOptions::new(2, 32);
    c.train.valid_fraction = 0.34;
    let out = dir.path().join("clf");
    segue::classify::train_classifier(
        &corpus,
        &c,
        &out,
        &candle_core::Device::Cpu,
        false,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    let classifier = segue::classify::load(
        &out.join("classifier.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut g = segue::gan::GanOptions::default();
    g.config.generator_channels = 2;
    g.config.discriminator_channels = 2;
    // Drawn cells: an untrained generator's cells all lie below 0.5, so thresholded ones would
    // leave the roll empty.
    g.config.cells = segue::models::dcgan::Cells::Drawn;
    g.train = segue::train_loop::LoopOptions::new(1, 128);
    g.train.valid_fraction = 0.34;
    g.train.valid_per_composer = 1;
    let out = dir.path().join("gan");
    segue::gan::train_gan(
        &corpus,
        &g,
        &out,
        &candle_core::Device::Cpu,
        false,
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    let gan = segue::gan::load(&out.join("dcgan.safetensors"), &candle_core::Device::Cpu).unwrap();

    let mut h = studio(&model, Some(fixture(dir.path())));
    h.state_mut().set_other_models(OtherModels {
        tvae: None,
        classifier: Some(Arc::new(classifier)),
        gan: Some(Arc::new(gan)),
    });
    wait(&mut h, "the style meter", |s| s.style_verdict().is_some());
    let v = h.state().style_verdict().unwrap().clone();
    assert_eq!(v.composers, vec!["arps", "chords", "scales"]);
    assert!((v.overall.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    h.step();
    assert!(
        h.query_by_label_contains("Style meter (composer classifier)")
            .is_some()
    );
    let said = plot_said(&h, "Style meter, probability by composer (plot): ");
    let ranked = v.ranked();
    assert!(
        said.contains(&format!(": {} ", v.composers[ranked[0]])),
        "{said}"
    );
    assert!(h.query_by_label_contains("updating").is_none());
    // Every note deleted: the meter says there is nothing to judge.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.key_press(egui::Key::Delete);
    h.step();
    h.step();
    assert!(h.state().session.score.notes.is_empty());
    assert!(h.query_by_label_contains("nothing to judge").is_some());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();

    for engine in [EngineKind::Dcgan, EngineKind::ClassifierAscent] {
        h.state_mut().set_engine(engine);
        generate_new_piece(&mut h, "a generation");
    }
    // A piece made from nothing (here the DCGAN's) is what the LSTM-VAE continues next, not
    // the file opened before it.
    let file = fixture(dir.path());
    h.state_mut().open_file(&file);
    wait(&mut h, "the file", |s| !s.background_work());
    let opening = |s: &Studio| -> Vec<(u8, usize)> {
        let mut v: Vec<(u8, usize)> = (s.session.score.notes.iter())
            .filter(|n| n.start < 8)
            .map(|n| (n.pitch, n.start))
            .collect();
        v.sort();
        v
    };
    let opened = opening(h.state());
    h.state_mut().set_engine(EngineKind::Dcgan);
    generate_new_piece(&mut h, "a DCGAN sample");
    let sample = opening(h.state());
    assert_ne!(sample, opened);
    // The opened piece it replaced is said to be gone (and where to get it back); another
    // sample over a generated piece replaces nothing of the user's, and says nothing of it.
    let said = |h: &Harness<'static, Studio>| h.state().message().unwrap().0.clone();
    assert!(
        said(&h).contains("It replaced the whole piece"),
        "{}",
        said(&h)
    );
    h.state_mut().session.seed += 1;
    generate_new_piece(&mut h, "another DCGAN sample");
    assert!(
        !said(&h).contains("replaced the whole piece"),
        "{}",
        said(&h)
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(opening(h.state()), sample);
    h.state_mut().session.seed -= 1;
    h.state_mut().set_engine(EngineKind::LstmVae);
    generate_new_piece(&mut h, "its continuation");
    assert_eq!(
        opening(h.state()),
        sample,
        "the continuation starts with the sample"
    );
    // No Transformer VAE here: the studio says so instead of failing silently.
    h.state_mut().set_engine(EngineKind::TransformerVae);
    h.get_by_label("Generate").click();
    h.step();
    let (message, error) = h.state().message().cloned().unwrap();
    assert!(error && message.contains("Transformer VAE"), "{message}");
}

/// Notes of a saved session that no longer fit (an earlier Segue kept longer pieces) are
/// left out with a message, not silently.
#[test]
fn notes_left_out_of_a_session_are_said() {
    use segue::studio::score::{Origin, ScoreNote};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut session = Session {
        model_path: Some(model),
        ..Session::default()
    };
    for start in [0, 300_000] {
        session.score.notes.push(ScoreNote {
            pitch: 60,
            start,
            len: 4,
            velocity: 90,
            origin: Origin::Edited,
        });
    }
    let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
    wait(&mut h, "the start", |s| !s.loading());
    assert_eq!(h.state().session.score.notes.len(), 1);
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        error && text.contains("1 note(s)") && text.contains("left out"),
        "{text}"
    );
}

/// The last session's primer file, moved or damaged since, is said at the start (Generate then
/// primes with the piece on the roll), not silently dropped.
#[test]
fn a_primer_file_that_no_longer_reads_is_said_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let gone = dir.path().join("moved-away.mid");
    let session = Session {
        model_path: Some(model),
        primer_path: Some(gone),
        ..Session::default()
    };
    let mut h = window(session, None, egui::vec2(1280.0, 800.0), false);
    wait(&mut h, "the start", |s| !s.loading());
    let (text, error) = h.state().message().unwrap().clone();
    assert!(
        error && text.contains("moved-away.mid") && text.contains("no longer reads"),
        "{text}"
    );
    assert_eq!(h.state().session.primer_path, None);
}

/// The studio saves its session itself, not through eframe's storage (which it has only where
/// eframe could make its own folder; a harness has none): closing writes the piece.
#[test]
fn closing_the_studio_saves_the_session_without_eframe_storage() {
    use segue::studio::session_file::{self, Saver};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let path = dir.path().join("data/session.json");
    let mut h = studio(&model, None);
    h.state_mut().saver = Some(Saver::claim(path.clone()).unwrap());
    h.state_mut().session.seed = 4242;
    h.run_steps(2);
    drop(h);
    let saved = session_file::read(&path)
        .unwrap()
        .expect("the session was written");
    assert_eq!(saved.session.seed, 4242);
    assert!(saved.not_read.is_empty(), "{:?}", saved.not_read);
}

/// A session written by a newer Segue (settings, fields and values this one does not know)
/// opens with its notes; what was not read is listed and said, and the file as it was is kept
/// beside it before the next save writes the session without it.
#[test]
fn a_session_of_a_newer_version_keeps_its_notes_and_says_what_it_did_not_read() {
    use segue::studio::score::{Origin, ScoreNote};
    use segue::studio::session_file;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let mut s = Session {
        seed: 42,
        ..Session::default()
    };
    for (i, origin) in [Origin::Primer, Origin::Generated, Origin::Edited]
        .into_iter()
        .enumerate()
    {
        s.score.notes.push(ScoreNote {
            pitch: 60 + i as u8,
            start: 4 * i,
            len: 4,
            velocity: 90,
            origin,
        });
    }
    let mut json = serde_json::to_value(&s).unwrap();
    json["engine"] = serde_json::json!("Diffusion");
    json["markers"] = serde_json::json!([{"step": 16, "name": "B"}]);
    json["score"]["notes"][0]["pitch"] = serde_json::json!("C4");
    json["score"]["notes"][1]["channel"] = serde_json::json!(2);
    json["score"]["notes"][2]["origin"] = serde_json::json!("Harmonized");
    json["score"]["bpm"] = serde_json::json!("fast");
    json["view"]["tool"] = serde_json::json!("Lasso");
    std::fs::write(&path, json.to_string()).unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    // The settings it knows are kept, those it cannot read take their defaults.
    assert_eq!(read.session.seed, 42);
    assert_eq!(read.session.engine, Session::default().engine);
    // The notes are kept, though a field of the score beside them (its tempo) does not read:
    // one of an origin it does not know as edited; one it cannot read at all (a pitch that is
    // not a number) is left out, and counted.
    let notes = &read.session.score.notes;
    assert_eq!(notes.len(), 2);
    assert_eq!((notes[0].pitch, notes[0].origin), (61, Origin::Generated));
    assert_eq!((notes[1].pitch, notes[1].origin), (62, Origin::Edited));
    assert_eq!(read.session.score.bpm, 120.0);
    assert_eq!(read.left_out, Some(1));
    // The note left out is counted, not listed; the others are named by their places in the
    // file (as the copy kept beside it holds them).
    let places = [
        "engine",
        "markers",
        "score.bpm",
        "score.notes[1].channel",
        "score.notes[2].origin",
        "view.tool",
    ];
    assert_eq!(read.not_read, places, "{:?}", read.not_read);
    let copy = session_file::keep_copy(&path).unwrap();
    let said = segue::studio::app::read_problems(&read, Some(&copy));
    assert!(
        said.contains("1 note(s)")
            && said.contains("does not read (")
            && said.contains("newer version")
            && said.contains("before-repair"),
        "{said}"
    );
    // Not JSON at all is still refused whole (the studio sets such a file aside).
    std::fs::write(&path, b"[1, 2]").unwrap();
    assert!(
        session_file::read(&path)
            .unwrap_err()
            .contains("not a saved session")
    );
}

/// A session file of many fields that does not read whole (a newer version's, with a setting
/// this one cannot read) is read field by field in time that grows with its size, not its
/// square (20 000 fields and 20 000 notes took seconds, the window black meanwhile).
#[test]
fn a_large_session_that_does_not_read_whole_is_read_field_by_field() {
    use segue::studio::score::{Origin, ScoreNote};
    use segue::studio::session_file;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let mut s = Session {
        seed: 42,
        ..Session::default()
    };
    s.score.notes = (0..20_000)
        .map(|i| ScoreNote {
            pitch: 40 + (i % 40) as u8,
            start: i,
            len: 2,
            velocity: 80,
            origin: Origin::Edited,
        })
        .collect();
    let mut json = serde_json::to_value(&s).unwrap();
    json["alpha"] = serde_json::json!("halfway");
    for i in 0..20_000 {
        json[format!("setting_{i}")] = serde_json::json!({ "on": true });
    }
    std::fs::write(&path, json.to_string()).unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    assert_eq!(read.session.seed, 42);
    assert_eq!(read.session.alpha, Session::default().alpha);
    assert_eq!(read.session.score.notes, s.score.notes);
    assert_eq!(read.not_read.len(), 20_001);
    assert!(read.not_read.contains(&"alpha".to_string()));
}

/// Notes that are not objects at all (numbers, text, lists: a newer version's compact notes,
/// damage) are left out and counted; the studio does not panic on its every start. Many of
/// them before the notes that read cost time in proportion, not squared (2 million took
/// minutes when each was put back in its place one by one).
#[test]
fn notes_that_are_not_objects_are_left_out() {
    use segue::studio::session_file;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let note =
        serde_json::json!({"pitch": 60, "start": 4, "len": 2, "velocity": 80, "origin": "Edited"});
    let notes = serde_json::json!([0, "x", [60, 0, 4, 90, "Primer"], true, note, {}, 1.5]);
    std::fs::write(
        &path,
        serde_json::json!({"seed": 5, "score": {"notes": notes}}).to_string(),
    )
    .unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    assert_eq!(read.session.seed, 5);
    // (A list of a note's fields in order reads as that note, as serde reads a struct.)
    let starts: Vec<usize> = read.session.score.notes.iter().map(|n| n.start).collect();
    assert_eq!(starts, [0, 4]);
    assert_eq!(read.left_out, Some(5));
    // Those left out are counted, not listed (the list note is named: written as an object).
    assert_eq!(read.not_read, ["score.notes[2]"]);
    // Half a million unreadable notes before 100 000 that read, and one after them.
    let mut many: Vec<serde_json::Value> = vec![serde_json::json!(0); 500_000];
    many.extend((0..100_000).map(|i| {
        serde_json::json!({"pitch": 60, "start": i, "len": 1, "velocity": 80, "origin": "Edited"})
    }));
    many.push(serde_json::json!([1]));
    many.push(serde_json::json!({"pitch": 61, "start": 0, "len": 1, "velocity": 80, "origin": "Edited", "x": 1}));
    std::fs::write(
        &path,
        serde_json::json!({"score": {"notes": many}}).to_string(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let read = session_file::read(&path).unwrap().unwrap();
    assert_eq!(read.session.score.notes.len(), 100_001);
    assert_eq!(read.left_out, Some(500_001));
    // The note after the gaps is named by its place in the file.
    assert_eq!(read.not_read, ["score.notes[600001].x"]);
    eprintln!("read in {:?}", started.elapsed());
    // Over 16 MB a file that does not read whole is refused (the studio sets it aside), not
    // read note by note in gigabytes.
    let mut large: Vec<serde_json::Value> = (0..250_000)
        .map(|i| serde_json::json!({"pitch": 60, "start": i, "len": 1, "velocity": 80, "origin": "Edited"}))
        .collect();
    large.push(serde_json::json!(0));
    let text = serde_json::json!({"score": {"notes": large}}).to_string();
    assert!(text.len() > 16 << 20);
    std::fs::write(&path, text).unwrap();
    let err = session_file::read(&path).unwrap_err();
    assert!(err.contains("too large to read note by note"), "{err}");
    // One that reads whole has its own fields and its score's compared (not its notes'): as
    // this version writes it, nothing is said; a field of a newer version is named, so that
    // the studio copies the file aside before its next save drops it.
    large.pop();
    let mut value = serde_json::to_value(Session::default()).unwrap();
    value["score"]["notes"] = serde_json::Value::Array(large);
    // With the fields a session writes only when they hold something (a file's notice).
    value["score"]["copyright"] = serde_json::json!("Copyright 1997 by Bernd Krueger");
    let session: Session = serde_json::from_value(value).unwrap();
    std::fs::write(&path, serde_json::to_vec(&session).unwrap()).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 16 << 20);
    let read = session_file::read(&path).unwrap().unwrap();
    assert!(read.not_read.is_empty(), "{:?}", read.not_read);
    // Written in another order (a JSON tree sorts its keys), with the metre field an earlier
    // version wrote (read, not written back): nothing is said of that either.
    let mut other = serde_json::to_value(&session).unwrap();
    other["score"]["meter"] = serde_json::json!({"numerator": 3, "denominator": 4});
    std::fs::write(&path, other.to_string()).unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    assert!(read.not_read.is_empty(), "{:?}", read.not_read);
    let mut newer = other;
    newer["chords"] = serde_json::json!(true);
    newer["score"]["swing"] = serde_json::json!(0.6);
    std::fs::write(&path, newer.to_string()).unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    assert_eq!(read.not_read, ["chords", "score.swing"]);
    // (Those past the longest piece, step 200 000, are left out as always.)
    assert_eq!(read.session.score.notes.len(), 200_000);
}

/// A session of an earlier version named the shipped model's file: it is read as the shipped
/// model (whichever is shipped now), a model of the user's own stays named.
#[test]
fn a_session_names_no_shipped_model() {
    use segue::studio::session_file;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let old_install = dir
        .path()
        .join("segue-0.9/weights/lstm-vae-studio.safetensors");
    let own = dir.path().join("runs/mine/lstm-vae.safetensors");
    for (model, kept) in [(old_install, None), (own.clone(), Some(own))] {
        let s = Session {
            model_path: Some(model),
            ..Session::default()
        };
        std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
        let read = session_file::read(&path).unwrap().unwrap();
        assert_eq!(read.session.model_path, kept);
        assert!(read.not_read.is_empty(), "{:?}", read.not_read);
    }
}

/// A disk that takes its time keeps nothing waiting: saving and the per-frame poll return at
/// once while a write hangs, later saves wait their turn (only the newest is kept), and it is
/// written once the disk answers.
#[test]
fn a_slow_disk_keeps_the_window_from_waiting_for_a_session_write() {
    use segue::studio::session_file::Saver;
    use std::sync::{Arc, Mutex, mpsc};
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let written: Arc<Mutex<Vec<u64>>> = Arc::default();
    let log = written.clone();
    let mut saver = Saver::with_writer(
        PathBuf::from("session.json"),
        Arc::new(move |_, bytes| {
            // Each write waits for the test (at most 20 s, so a saver that waited for it
            // fails below rather than hangs).
            let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(20));
            let session: Session = serde_json::from_slice(bytes).unwrap();
            log.lock().unwrap().push(session.seed);
            Ok(())
        }),
    );
    for seed in [1, 2, 3] {
        saver.save(&mut Session {
            seed,
            ..Session::default()
        });
        saver.poll();
    }
    // Nothing is written yet: had the saver waited for the disk, the writes would be done.
    assert!(written.lock().unwrap().is_empty(), "the saver waited");
    assert!(saver.waiting(), "the newest save waits its turn");
    // The disk answers: the first write ends, the newest waiting one (3) follows; 2 is skipped.
    release.send(()).unwrap();
    release.send(()).unwrap();
    saver.finish();
    assert_eq!(*written.lock().unwrap(), vec![1, 3]);
    assert!(saver.problem.is_none(), "{:?}", saver.problem);
}

/// An idle studio's saves every 30 s write nothing and copy nothing: a session as the one in
/// the file is not saved again, unless the file has gone meanwhile; any change is.
#[test]
fn an_unchanged_session_is_not_written_again() {
    use segue::studio::score::ScoreNote;
    use segue::studio::session_file::Saver;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let writes: Arc<Mutex<usize>> = Arc::default();
    let count = writes.clone();
    let mut saver = Saver::with_writer(
        path.clone(),
        Arc::new(move |path, bytes| {
            *count.lock().unwrap() += 1;
            std::fs::write(path, bytes).map_err(|e| e.to_string())
        }),
    );
    let mut session = Session::default();
    session.score.notes.push(ScoreNote {
        pitch: 60,
        start: 4,
        len: 8,
        velocity: 90,
        origin: Origin::Edited,
    });
    // (writes to the disk, sessions copied and serialised) after a save.
    let mut save = |session: &mut Session| {
        saver.save(session);
        saver.finish();
        (*writes.lock().unwrap(), saver.saves_started())
    };
    assert_eq!(save(&mut session), (1, 1));
    // Not even copied: an idle studio with a long piece pays a hash of its notes.
    assert_eq!(
        save(&mut session),
        (1, 1),
        "an unchanged session was saved again"
    );
    session.seed += 1;
    assert_eq!(save(&mut session), (2, 2));
    session.score.notes[0].velocity = 91;
    assert_eq!(save(&mut session), (3, 3), "a note's change was not saved");
    session.view.step_px *= 2.0;
    assert_eq!(
        save(&mut session),
        (4, 4),
        "the view's change was not saved"
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        save(&mut session),
        (5, 5),
        "a removed session file was not written again"
    );
    assert!(path.exists());
    let back = segue::studio::session_file::read(&path).unwrap().unwrap();
    assert_eq!(back.session.score.notes[0].velocity, 91);
}

/// A write that fails (a full disk) is not taken for the session on disk: the next save of
/// the same session, the studio's 30 s one or the last as it closes, tries again, and the
/// problem is said; the file keeps the last session written whole meanwhile.
#[test]
fn a_failed_session_write_is_tried_again_and_said() {
    use segue::studio::session_file::Saver;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    let full = Arc::new(AtomicBool::new(false));
    let disk = full.clone();
    let mut saver = Saver::with_writer(
        path.clone(),
        Arc::new(move |path, bytes| match disk.load(Ordering::Relaxed) {
            true => Err("No space left on device".into()),
            false => std::fs::write(path, bytes).map_err(|e| e.to_string()),
        }),
    );
    let mut session = Session::default();
    saver.save(&mut session);
    saver.finish();
    full.store(true, Ordering::Relaxed);
    session.seed += 1;
    let fail = |saver: &mut Saver, session: &mut Session| {
        full.store(true, Ordering::Relaxed);
        session.seed += 1;
        saver.save(session);
        // The failed write ends on its thread; the window goes on without waiting for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while saver.writing() {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        full.store(false, Ordering::Relaxed);
    };
    // The next save of the same session writes it, and the failure is said.
    fail(&mut saver, &mut session);
    let started = saver.saves_started();
    saver.save(&mut session);
    assert_eq!(
        saver.saves_started(),
        started + 1,
        "the failed write was not tried again"
    );
    assert_eq!(
        saver.problem.take().as_deref(),
        Some("No space left on device")
    );
    saver.finish();
    assert!(saver.problem.is_none());
    // Each frame's poll says a failure at once.
    fail(&mut saver, &mut session);
    saver.poll();
    assert_eq!(
        saver.problem.take().as_deref(),
        Some("No space left on device")
    );
    saver.save(&mut session);
    saver.finish();
    let back = segue::studio::session_file::read(&path).unwrap().unwrap();
    assert_eq!(back.session.seed, session.seed);
}

/// Closing while the session cannot be written (a full disk) is held once, saying that the
/// piece's latest changes would be lost and how to keep them; closing again closes.
#[test]
fn closing_while_the_session_cannot_be_saved_is_said_first() {
    use segue::studio::session_file::Saver;
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = studio_with_a_drawn_note(dir.path());
    h.state_mut().saver = Some(Saver::with_writer(
        dir.path().join("session.json"),
        std::sync::Arc::new(|_, _| Err("No space left on device".into())),
    ));
    request_close(&mut h);
    assert!(window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    let (said, error) = h.state().message().unwrap().clone();
    assert!(error, "{said}");
    assert!(
        said.starts_with("The session could not be saved (No space left on device): closing now")
            && said.contains("Export it to keep it"),
        "{said}"
    );
    request_close(&mut h);
    assert!(!window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
    // Where it can be written, closing closes at once.
    let other = tempfile::tempdir().unwrap();
    let (mut h, _) = studio_with_a_drawn_note(other.path());
    h.state_mut().saver = Some(Saver::new(dir.path().join("kept.json")));
    request_close(&mut h);
    assert!(!window_commands(&h).contains(&egui::ViewportCommand::CancelClose));
}

#[test]
fn the_session_is_saved_atomically_and_damaged_ones_are_set_aside_or_clamped() {
    use segue::studio::score::{Origin, ScoreNote};
    use segue::studio::session_file::{self, Saver};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/session.json");
    assert!(session_file::read(&path).unwrap().is_none(), "none yet");
    let mut s = Session {
        seed: 42,
        ..Session::default()
    };
    s.score.notes.push(ScoreNote {
        pitch: 60,
        start: 4,
        len: 8,
        velocity: 90,
        origin: Origin::Edited,
    });
    let mut saver = Saver::new(path.clone());
    saver.save(&mut s);
    saver.finish();
    assert!(saver.problem.is_none(), "{:?}", saver.problem);
    let back = session_file::read(&path).unwrap().unwrap();
    assert_eq!(
        (
            back.session.seed,
            back.session.score.notes.len(),
            back.left_out
        ),
        (42, 1, None)
    );
    // All of it was read: nothing is said.
    assert!(back.not_read.is_empty(), "{:?}", back.not_read);
    // Saves in quick succession (the window does not wait for the one before): the newest
    // is what is on disk once they are done.
    for seed in [7, 8, 9] {
        saver.save(&mut Session { seed, ..s.clone() });
    }
    saver.finish();
    assert_eq!(session_file::read(&path).unwrap().unwrap().session.seed, 9);
    // A save is written beside the session and renamed over it, never into it: a second name
    // for the session before (a hard link) keeps what it held.
    let before = dir.path().join("before.json");
    std::fs::hard_link(&path, &before).unwrap();
    saver.save(&mut s);
    saver.finish();
    assert_eq!(session_file::read(&path).unwrap().unwrap().session.seed, 42);
    assert_eq!(
        session_file::read(&before).unwrap().unwrap().session.seed,
        9
    );
    // Only the session itself is left in its folder (no temporary file).
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    // Out-of-range values come back inside the controls' ranges.
    let mut json = serde_json::to_value(&s).unwrap();
    json["view"]["step_px"] = serde_json::json!(0.0);
    json["alpha"] = serde_json::json!(1e30);
    json["length"] = serde_json::json!(0);
    json["score"]["notes"][0]["start"] = serde_json::json!(u64::MAX);
    std::fs::write(&path, json.to_string()).unwrap();
    let read = session_file::read(&path).unwrap().unwrap();
    let (clamped, left_out) = (read.session, read.left_out);
    assert_eq!(clamped.view.step_px, 1.0);
    assert_eq!(clamped.alpha, 1.0);
    assert_eq!(clamped.length, 16);
    // A note past the end is dropped, and counted; a copy of the file as it was can be kept
    // beside it (the studio says where).
    assert!(clamped.score.notes.is_empty());
    assert_eq!(left_out, Some(1));
    let copy = session_file::keep_copy(&path).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap());
    assert!(copy.ends_with("session.before-repair.json"), "{copy:?}");
    let message = segue::studio::app::left_out_message(1, Some(&copy));
    assert!(
        message.contains("1 note(s)") && message.contains("before-repair"),
        "{message}"
    );
    std::fs::remove_file(&copy).unwrap();

    // A file larger than any session is refused unread (a sparse one: no disk is used).
    let huge = path.with_file_name("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(session_file::MAX_FILE_BYTES + 1).unwrap();
    let err = session_file::read(&huge).unwrap_err();
    assert!(
        err.contains("huge.json") && err.contains("more than a saved session holds"),
        "{err}"
    );
    std::fs::remove_file(&huge).unwrap();

    // A damaged file is an error naming it, and is set aside rather than overwritten.
    let bytes = serde_json::to_vec(&s).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = session_file::read(&path).unwrap_err();
    assert!(
        err.contains("session.json") && err.contains("not a saved session"),
        "{err}"
    );
    let aside = session_file::set_aside(&path).unwrap();
    assert!(aside.exists() && !path.exists());
    // A second damaged one goes beside the first, which stays as it was.
    std::fs::write(&path, b"{").unwrap();
    let second = session_file::set_aside(&path).unwrap();
    assert!(second != aside && second.exists() && !path.exists());
    assert_eq!(std::fs::read(&aside).unwrap(), &bytes[..bytes.len() / 2]);

    // One studio at a time keeps the session: a second one is told, until the first ends.
    let first = Saver::claim(path.clone()).unwrap();
    let err = Saver::claim(path.clone()).unwrap_err();
    assert!(
        err.contains("Another Segue studio") && err.contains("session.json"),
        "{err}"
    );
    drop(first);
    assert!(Saver::claim(path.clone()).is_ok());

    // A folder that cannot be made is reported, not panicked on.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"").unwrap();
    let mut saver = Saver::new(blocked.join("session.json"));
    saver.save(&mut s);
    saver.finish();
    let problem = saver.problem.take().unwrap();
    assert!(problem.contains("file"), "{problem}");
    // Claimed there, the studio is told at once that its piece will not be kept.
    let err = Saver::claim(blocked.join("session.json")).unwrap_err();
    assert!(
        err.contains("Cannot make the folder") && err.contains("not kept"),
        "{err}"
    );

    // The studio opens on a session with a zoom of 0 (which once drew endless grid lines).
    let mut broken = Session::default();
    broken.view.step_px = 0.0;
    let mut h = window(broken, None, egui::vec2(800.0, 600.0), false);
    h.step();
    assert_eq!(h.state().session.view.step_px, 1.0);

    // The studio writes the session file itself (eframe's own storage is left alone).
    struct Untouched;
    impl eframe::Storage for Untouched {
        fn get_string(&self, _: &str) -> Option<String> {
            None
        }
        fn set_string(&mut self, key: &str, _: String) {
            panic!("the session went to eframe's storage under {key}");
        }
        fn remove_string(&mut self, _: &str) {}
        fn flush(&mut self) {}
    }
    let saved = dir.path().join("studio/session.json");
    wait(&mut h, "the start", |s| !s.loading());
    h.state_mut().saver = Some(Saver::new(saved.clone()));
    h.state_mut().session.seed = 77;
    // eframe's save hook gives its storage nothing; the studio saves on its own.
    eframe::App::save(h.state_mut(), &mut Untouched);
    h.state_mut().save_session();
    h.state_mut().saver = None; // dropping the saver finishes its write
    let back = session_file::read(&saved).unwrap().unwrap().session;
    assert_eq!(back.seed, 77);
    // With the pickers' composers, by name for the next start.
    assert_eq!(back.composer_names, h.state().composers());
    assert!(!back.composer_names.is_empty());
}

/// The style meter says, on hover, what its verdict is worth: the classifier's accuracy on
/// pieces it never trained on, from its manifest.
#[test]
fn the_style_meter_says_how_often_its_classifier_is_right() {
    use segue::studio::app::style_meter_caveat;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/classifier.json");
    let mut manifest: segue::models::saved::ModelManifest =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let accuracy = manifest.metrics["accuracy"].as_f64().unwrap();
    let text = style_meter_caveat(&manifest);
    assert!(
        text.contains(&format!(
            "right composer {:.0}% of the time (chance 5%)",
            100.0 * accuracy
        )),
        "{text}"
    );
    manifest.metrics = serde_json::json!({});
    assert!(style_meter_caveat(&manifest).contains("records no accuracy"));
}

/// A right-click erases one note and leaves the rest of the selection selected; a box
/// dragged with Shift adds to the selection.
#[test]
fn right_click_keeps_the_selection_and_shift_boxes_add_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    let top = h.state().session.view.top_pitch.floor() as u8;
    let score = &mut h.state_mut().session.score;
    for (k, start) in [4usize, 12, 20].iter().enumerate() {
        score.draw(top - 10 - k as u8, *start, 4);
    }
    h.state_mut().session.view.selection = vec![0, 2];
    h.step();
    let grid = h.state().session.view.grid_rect.unwrap();
    let view = h.state().session.view.clone();
    let at = |step: f32, pitch: f32| {
        egui::pos2(
            grid.left() + (step - view.scroll_step) * view.step_px,
            grid.top() + (view.top_pitch - pitch) * view.key_px,
        )
    };
    // Right-click on the middle note (index 1).
    let middle = at(13.5, f32::from(top - 11) + 0.5);
    h.hover_at(middle);
    h.step();
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: middle,
            button: egui::PointerButton::Secondary,
            pressed,
            modifiers: egui::Modifiers::default(),
        });
        h.step();
    }
    assert_eq!(h.state().session.score.notes.len(), 2);
    assert_eq!(h.state().session.view.selection, vec![0, 1]);
    // Select the first alone, then Shift+box around the last: both selected.
    h.state_mut().session.view.selection = vec![0];
    h.step();
    let (from, to) = (
        at(18.5, f32::from(top - 12) + 3.0),
        at(25.5, f32::from(top - 12) - 2.0),
    );
    h.hover_at(from);
    h.step();
    h.event_modifiers(
        egui::Event::PointerButton {
            pos: from,
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: egui::Modifiers::SHIFT,
        },
        egui::Modifiers::SHIFT,
    );
    h.step();
    h.hover_at(to);
    h.step();
    h.drop_at(to);
    h.step();
    assert_eq!(h.state().session.view.selection, vec![0, 1]);
}

/// A piece generated in the studio is the one `segue generate` makes from the same file,
/// controls and seed (the status line shows the seed for that), notes half a step off the
/// grid included (both read the file alike), a file ending in a rest within the primer's
/// length (both continue from its last note; the command line continued after the rest) and
/// opening with two silent bars (both hear them and the primer's steps after them).
#[test]
fn the_command_line_makes_what_the_studio_made() {
    studio_and_command_line_agree(Some(1), 32, 57);
}

/// With the piece itself as style A, the studio continues in the primer's own style, as
/// `segue generate` does without `--from` (not in a composer's); both end a primer of 20
/// steps on the bar line nearest them (a bar and a quarter: one bar).
#[test]
fn a_continuation_in_the_piece_s_own_style_is_the_command_line_s() {
    studio_and_command_line_agree(None, 20, 48);
}

/// The piece itself as style A needs notes to read a style from: with none, Generate says so
/// (and a transfer, which hears B's code alone, does not need them).
#[test]
fn the_piece_s_own_style_needs_notes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    for (mode, refused) in [
        (segue::generate::Mode::Continue, true),
        (segue::generate::Mode::Transfer, false),
    ] {
        let s = &mut h.state_mut().session;
        (s.mode, s.a_is_the_piece, s.length) = (mode, true, 16);
        h.get_by_label("Generate").click();
        h.step();
        wait(&mut h, "the generation's end", |s| !s.generating());
        let said = h.state().message().cloned();
        let no_notes = said.as_ref().is_some_and(|(text, error)| {
            *error && text.contains("style A is the piece's own, and the piece has no notes")
        });
        assert_eq!(no_notes, refused, "{mode:?}: {said:?}");
    }
    // The error is said at once to a screen reader (a live region), not only painted.
    h.step();
    let error = h.get_by_label_contains("style A is the piece's own");
    assert_eq!(
        error.accesskit_node().live(),
        egui::accesskit::Live::Assertive
    );
}

/// The Transformer VAE's transfer with the piece itself as style A moves the piece's own code
/// towards B from the composers' centre, as `segue generate --mode transfer` does without
/// `--from` (with A taken as the piece, it would be a plain continuation).
#[test]
fn a_transformer_vae_transfer_from_the_piece_is_the_command_line_s() {
    use segue::studio::{EngineKind, OtherModels};
    let Some(dir) = segue::models::trained::default_model_path().and_then(|p| {
        let tvae = p.parent()?.join(segue::tvae::DEFAULT_FILE);
        tvae.exists().then_some(tvae)
    }) else {
        return; // no shipped weights in this checkout
    };
    let tvae = segue::tvae::load(&dir, &candle_core::Device::Cpu).unwrap();
    let primer = common::shared("corpus").join("chopin/chpn-p15.mid");
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let mut h = studio(&model, Some(primer.clone()));
    h.state_mut().set_other_models(OtherModels {
        tvae: Some(std::sync::Arc::new(tvae)),
        classifier: None,
        gan: None,
    });
    h.state_mut().set_engine(EngineKind::TransformerVae);
    h.step();
    let composers = h.state().composers();
    let b = composers.iter().position(|c| c == "debussy").unwrap();
    {
        let s = &mut h.state_mut().session;
        s.mode = segue::generate::Mode::Transfer;
        (s.a_is_the_piece, s.composer_b) = (true, b);
        (s.seed, s.length, s.variations, s.primer_steps) = (3, 64, 1, 32);
    }
    generate_new_piece(&mut h, "a transfer");
    let made = h.state().session.score.to_roll();
    let s = &h.state().session;
    let out = tmp.path().join("cli.mid");
    let args = [
        "generate",
        "--model",
        "transformer-vae",
        "--prime",
        primer.to_str().unwrap(),
        "--mode",
        "transfer",
        "--to",
        "debussy",
        "--steps",
        "64",
        "--seed",
        "3",
        "--primer-steps",
        "32",
        "-o",
        out.to_str().unwrap(),
    ];
    let controls = sampling_flags(s, true);
    let args: Vec<&str> = (args.iter().copied())
        .chain(controls.iter().map(String::as_str))
        .collect();
    let cli = made_by_the_command_line(&args, &out);
    assert!(
        cli.binary() == made.binary(),
        "the command line made other notes"
    );
}

/// The studio's sampling controls as `segue generate` flags (temperature, note cap, and the
/// style strength where a composer's code is used).
fn sampling_flags(s: &Session, strength: bool) -> Vec<String> {
    let mut flags = vec![
        "--temperature".to_string(),
        s.temperature.to_string(),
        "--max-notes".into(),
        s.max_notes.to_string(),
    ];
    if strength {
        flags.extend(["--style-strength".into(), s.style_strength.to_string()]);
    }
    flags
}

/// What `segue` run with `args` wrote to `out`, as a roll (the run must succeed).
fn made_by_the_command_line(args: &[&str], out: &Path) -> Roll {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_segue"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    Roll::read_midi(out, &QuantizeOptions::whole_file()).unwrap()
}

/// A continuation of the piece in `offgrid.mid` from the studio (style A: composer `a`, or
/// the piece itself) has the notes of `segue generate`'s with the same controls.
/// Generates in the studio and from the command line with `primer_steps`, the studio's piece
/// having `heard` primer steps.
fn studio_and_command_line_agree(a: Option<usize>, primer_steps: usize, heard: usize) {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let primer = dir.path().join("offgrid.mid");
    // Two silent bars, 16 notes over 25 steps, then a rest to step 64 (an event there).
    let mut events: Vec<(u64, common::Ev)> = (0..16u64)
        .flat_map(|i| {
            let key = 60 + (i % 7) as u8;
            [
                (768 + i * 36 + 12, common::on(0, key, 90)),
                (768 + i * 36 + 48, common::off(0, key)),
            ]
        })
        .collect();
    events.push((96 * 16, common::Ev::Tempo(500_000)));
    events.sort_by_key(|e| e.0);
    let bytes = common::smf(
        midly::Format::SingleTrack,
        midly::Timing::Metrical(96.into()),
        &[events],
    );
    std::fs::write(&primer, bytes).unwrap();
    let read = Roll::read_midi(&primer, &QuantizeOptions::whole_file()).unwrap();
    assert_eq!((read.sounding_end(), read.steps()), (57, 64));
    assert_eq!(read.first_bar_with_notes(), 32);
    let mut h = studio(&model, Some(primer.clone()));
    h.step();
    let composers = h.state().model().unwrap().manifest.composers.clone();
    {
        let s = &mut h.state_mut().session;
        s.mode = segue::generate::Mode::Continue;
        s.composer_a = a.unwrap_or(0);
        s.a_is_the_piece = a.is_none();
        s.seed = 7;
        s.length = 64;
        s.variations = 1;
        s.primer_steps = primer_steps;
    }
    generate_new_piece(&mut h, "a continuation");
    let made = h.state().session.score.to_roll();
    let s = &h.state().session;
    assert_eq!(s.score.primer_steps, heard);
    let out = dir.path().join("cli.mid");
    let mut args: Vec<String> = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prime",
        primer.to_str().unwrap(),
        "--mode",
        "continue",
        "--steps",
        "64",
        "--seed",
        "7",
        "--primer-steps",
        &primer_steps.to_string(),
        "-o",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(sampling_flags(s, a.is_some()));
    if let Some(a) = a {
        args.extend(["--from".to_string(), composers[a].clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = made_by_the_command_line(&args, &out);
    assert_eq!(cli.steps(), made.steps());
    assert!(
        cli.binary() == made.binary(),
        "the command line made other notes"
    );
}

/// Moving the selection in pitch with the arrows sounds the moved note (as clicking it does),
/// so a musician hears where it went; moving it in time does not.
#[test]
fn an_arrow_that_moves_a_note_in_pitch_sounds_it() {
    use egui::Key;
    let dir = tempfile::tempdir().unwrap();
    let (mut h, mut engine) = studio_with_player(dir.path());
    h.step();
    let loudest = |engine: &mut segue::studio::audio::Engine| {
        (0..8820)
            .map(|_| engine.next_sample().abs())
            .fold(0f32, f32::max)
    };
    {
        let studio = h.state_mut();
        let i = studio.session.score.draw(60, 0, 4);
        studio.session.view.selection = vec![i];
    }
    h.step();
    loudest(&mut engine);
    h.key_press(Key::ArrowRight);
    h.step();
    assert!(loudest(&mut engine) < 1e-4, "a move in time is silent");
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().session.score.notes[0].pitch, 61);
    assert!(loudest(&mut engine) > 0.01, "the moved note sounds");
}

/// Step input: with it on, the computer keyboard enters notes at a cursor (the start here, no
/// player): A S D F G H J K the white keys from the octave's C, W E T Y U the black keys; each
/// note has the drawing length and moves the cursor on, Shift keeps it for a chord, `.` is a
/// rest, Z and X move the octave; the notes at the cursor are selected; a held key does not
/// repeat, Ctrl+key is still a command, and off, the keys enter nothing.
#[test]
fn step_input_enters_notes_from_the_computer_keyboard() {
    use egui::{Key, Modifiers};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    h.get_by_label("Keys").click();
    h.step();
    h.state_mut().session.view.draw_len = 2;
    let press = |h: &mut Harness<'static, Studio>, modifiers: Modifiers, key: Key| {
        h.key_press_modifiers(modifiers, key);
        h.step();
    };
    let notes = |h: &Harness<'static, Studio>| -> Vec<(u8, usize, usize)> {
        let mut n: Vec<_> = (h.state().session.score.notes.iter())
            .map(|n| (n.pitch, n.start, n.len))
            .collect();
        n.sort_by_key(|&(p, s, _)| (s, p));
        n
    };
    press(&mut h, Modifiers::NONE, Key::A);
    press(&mut h, Modifiers::SHIFT, Key::D);
    press(&mut h, Modifiers::NONE, Key::G);
    assert_eq!(
        h.state().session.view.selection.len(),
        2,
        "the chord is selected"
    );
    press(&mut h, Modifiers::NONE, Key::Period);
    press(&mut h, Modifiers::NONE, Key::X);
    press(&mut h, Modifiers::NONE, Key::K);
    press(&mut h, Modifiers::NONE, Key::Z);
    press(&mut h, Modifiers::NONE, Key::Z);
    press(&mut h, Modifiers::NONE, Key::W);
    assert_eq!(
        notes(&h),
        [(60, 0, 2), (64, 2, 2), (67, 2, 2), (84, 6, 2), (49, 8, 2)]
    );
    assert_eq!(h.state().session.view.entry, Some(10));
    // Each key is one undo step.
    press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(notes(&h).len(), 4);
    // A held key enters one note (its repeats none), and keys with Ctrl are commands.
    let key = |h: &mut Harness<'static, Studio>, pressed: bool| {
        h.event(egui::Event::Key {
            key: Key::A,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers: Modifiers::NONE,
        });
        h.step();
    };
    key(&mut h, true);
    key_repeat(&mut h, Key::A);
    key_repeat(&mut h, Key::A);
    key(&mut h, false);
    assert_eq!(notes(&h)[4], (48, 10, 2), "{:?}", notes(&h));
    assert_eq!(notes(&h).len(), 5, "{:?}", notes(&h));
    press(&mut h, Modifiers::COMMAND, Key::A);
    assert_eq!(notes(&h).len(), 5);
    assert_eq!(
        h.state().session.view.selection.len(),
        5,
        "Ctrl+A selected all"
    );
    // A click on the ruler puts the cursor there (as it does the playhead).
    let view = &h.state().session.view;
    let (grid, step_px) = (view.grid_rect.unwrap(), view.step_px);
    click_at(
        &mut h,
        egui::pos2(grid.left() + 20.5 * step_px, grid.top() - 5.0),
    );
    assert_eq!(h.state().session.view.entry, Some(20));
    // Escape lets go of the selection; then the arrows move the cursor (Shift: a beat), `[`
    // and `]` set the length, Delete takes a note back and the cursor with it.
    press(&mut h, Modifiers::NONE, Key::Escape);
    press(&mut h, Modifiers::NONE, Key::ArrowRight);
    press(&mut h, Modifiers::SHIFT, Key::ArrowRight);
    press(&mut h, Modifiers::NONE, Key::ArrowLeft);
    assert_eq!(h.state().session.view.entry, Some(24));
    press(&mut h, Modifiers::NONE, Key::CloseBracket);
    press(&mut h, Modifiers::NONE, Key::CloseBracket);
    press(&mut h, Modifiers::NONE, Key::OpenBracket);
    press(&mut h, Modifiers::NONE, Key::F);
    assert_eq!(notes(&h)[5], (53, 24, 4));
    press(&mut h, Modifiers::NONE, Key::Delete);
    assert_eq!(
        (notes(&h).len(), h.state().session.view.entry),
        (5, Some(24))
    );
    // At the top octave (C9), keys above G9 enter nothing; the view follows the octave.
    for _ in 0..6 {
        press(&mut h, Modifiers::NONE, Key::X);
    }
    assert_eq!(h.state().session.view.entry_octave, 9);
    assert!(h.state().session.view.top_pitch >= 127.0);
    press(&mut h, Modifiers::NONE, Key::K);
    assert_eq!(notes(&h).len(), 5);
    press(&mut h, Modifiers::NONE, Key::G);
    assert_eq!(notes(&h)[5], (127, 24, 4));
    // Alt+Left / Alt+Right step through the notes one by one (Shift adds), each said to a
    // screen reader (pitch, bar, length).
    press(&mut h, Modifiers::NONE, Key::Escape);
    press(&mut h, Modifiers::ALT, Key::ArrowRight);
    let selected = |h: &Harness<'static, Studio>| -> Vec<(u8, usize)> {
        let s = &h.state().session;
        let mut v: Vec<_> = (s.view.selection.iter())
            .map(|&i| (s.score.notes[i].pitch, s.score.notes[i].start))
            .collect();
        v.sort();
        v
    };
    assert_eq!(selected(&h), [(60, 0)]);
    assert!(
        h.query_by_label_contains("(C4 at bar 1, step 1 of the bar, 2 steps long)")
            .is_some()
    );
    press(&mut h, Modifiers::ALT, Key::ArrowRight);
    press(&mut h, Modifiers::ALT | Modifiers::SHIFT, Key::ArrowRight);
    assert_eq!(selected(&h), [(64, 2), (67, 2)]);
    press(&mut h, Modifiers::ALT, Key::ArrowLeft);
    assert_eq!(selected(&h), [(60, 0)]);
    press(&mut h, Modifiers::ALT, Key::ArrowLeft);
    assert_eq!(selected(&h), [(60, 0)], "nothing before the first note");
    // Ctrl+Right / Ctrl+Left lengthen and shorten the selection (Shift: a beat).
    press(&mut h, Modifiers::COMMAND, Key::ArrowRight);
    press(
        &mut h,
        Modifiers::COMMAND | Modifiers::SHIFT,
        Key::ArrowRight,
    );
    press(&mut h, Modifiers::COMMAND, Key::ArrowLeft);
    assert_eq!(notes(&h)[0], (60, 0, 6));
    press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(notes(&h)[0], (60, 0, 7), "each key one undo step");
    // F6 gives the roll the keyboard focus back from a button Tab reached.
    h.get_by_label("Generate").focus();
    h.step();
    press(&mut h, Modifiers::NONE, Key::F6);
    assert!(
        h.get_by_label_contains("Piano roll: ")
            .accesskit_node()
            .is_focused()
    );
    // Off, the keys are keys again.
    h.get_by_label("Keys").click();
    h.step();
    press(&mut h, Modifiers::NONE, Key::S);
    assert_eq!(notes(&h).len(), 6);
}

/// The seed box holds seeds up to 2^53, where its editor (working in f64) is exact: a larger
/// one is brought to that bound rather than shown as one number and used as another.
#[test]
fn the_seed_box_holds_only_seeds_it_can_show_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut h = studio(&model, None);
    h.step();
    h.state_mut().session.seed = u64::MAX;
    h.step();
    assert_eq!(h.state().session.seed, segue::studio::app::MAX_STUDIO_SEED);
    h.state_mut().session.seed = (1 << 53) - 1;
    h.step();
    assert_eq!(h.state().session.seed, (1 << 53) - 1);
}

/// The bar a piece's music begins in, and the primer steps a continuation hears, are found
/// from its notes and metre map as from its roll (the window's thread does not make the roll
/// of a large piece to know them).
#[test]
fn a_piece_s_first_bar_with_notes_is_its_roll_s() {
    use segue::studio::score::Score;
    use segue::studio::workers::Primer;
    let mut score = Score::default();
    let first_bar = |score: &Score| {
        let piece = Primer::Piece(std::sync::Arc::new(score.clone()));
        let from_notes = piece.first_bar_with_notes();
        assert_eq!(from_notes, score.to_roll().first_bar_with_notes());
        let opened = Primer::Opened(std::sync::Arc::new(score.to_roll()));
        for asked in [0, 5, 16, 20, 30, 31, 47, 64] {
            assert_eq!(
                piece.steps_heard(asked),
                opened.steps_heard(asked),
                "{asked}"
            );
        }
        from_notes
    };
    assert_eq!(first_bar(&score), 0);
    score.draw(60, 40, 4);
    score.draw(64, 70, 2);
    assert_eq!(first_bar(&score), 32);
    score.meters = vec![segue::meter::StepMeter {
        step: 0,
        meter: segue::midi::Meter {
            numerator: 3,
            denominator: 4,
        },
    }]
    .into();
    assert_eq!(first_bar(&score), 36);
    // From the bar at 36, 20 steps end nearest the bar line at 60 (a third of a bar early)...
    let piece = Primer::Piece(std::sync::Arc::new(score.clone()));
    assert_eq!(piece.steps_heard(20), 60);
    // ...and 31 at the bar line at 72, where the piece's last note ends.
    assert_eq!(piece.steps_heard(31), 72);
}
