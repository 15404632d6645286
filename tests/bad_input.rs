//! Bad input never panics: malformed fixtures made here, and the public parser test suite.

mod common;

use common::{shared, simple, with_division};
use segue::error::{Error, MidiProblem};
use segue::midi::Song;
use segue::roll::{QuantizeOptions, Roll};

fn parse(bytes: &[u8]) -> Result<Roll, MidiProblem> {
    let song = Song::parse(bytes)?;
    Roll::from_song(&song, &QuantizeOptions::default())
}

#[test]
fn empty_and_non_midi_files_are_refused_clearly() {
    assert_eq!(parse(&[]), Err(MidiProblem::Empty));
    let err = parse(b"RIFF but not really a midi file").unwrap_err();
    assert!(matches!(err, MidiProblem::NotMidi(_)), "{err}");
    let err = parse(b"hello, I am a text file\n").unwrap_err();
    assert!(
        err.to_string().contains("not a standard MIDI file"),
        "{err}"
    );
}

#[test]
fn zero_ticks_per_quarter_is_refused() {
    let err = parse(&with_division(0, 0)).unwrap_err();
    assert_eq!(err, MidiProblem::BadDivision(0));
    assert_eq!(
        err.to_string(),
        "ticks per quarter note must be 1..=32767, but was 0"
    );
}

#[test]
fn smpte_division_of_minus_128_frames_is_refused_not_a_panic() {
    // Found by the fuzzer: midly negates the frame-rate byte 0x80 as an i8 and overflows.
    let err = parse(&with_division(0x80, 0x60)).unwrap_err();
    assert!(matches!(err, MidiProblem::BadTimecode { .. }), "{err}");
    // Other SMPTE rates that midly does not know are refused too.
    assert!(parse(&with_division(0xE0, 0x60)).is_err()); // -32 fps
}

#[test]
fn absurd_tick_values_give_a_clear_error_not_a_huge_allocation() {
    // A note 200 million ticks in at tpq 1: 800 million steps.
    let bytes = simple(1, &[(200_000_000, 200_000_001, 60, 90)]);
    let err = parse(&bytes).unwrap_err();
    assert!(matches!(err, MidiProblem::TooLong { .. }), "{err}");
    assert!(err.to_string().contains("absurd"), "{err}");
}

#[test]
fn hours_long_files_load_and_absurdly_long_ones_are_refused() {
    // Three hours at 120 bpm (tpq 96): 21,600 quarters, one note per quarter.
    let notes: Vec<(u64, u64, u8, u8)> = (0..21_600u64)
        .map(|q| (q * 96, q * 96 + 90, 48 + (q % 24) as u8, 80))
        .collect();
    let roll = parse(&simple(96, &notes)).unwrap();
    assert_eq!(roll.steps(), 86_400);
    assert!((roll.duration_seconds() - 3.0 * 3600.0).abs() < 1.0);
    // Ten hours is past the default limit: a clear error, not a 100 MB roll.
    let err = parse(&simple(
        96,
        &[(0, 96, 60, 80), (72_000 * 96, 72_001 * 96, 60, 80)],
    ))
    .unwrap_err();
    assert!(
        matches!(err, MidiProblem::TooLong { limit: 200_000, .. }),
        "{err}"
    );
}

#[test]
fn every_truncation_of_a_real_file_is_handled() {
    let bytes = std::fs::read(shared("corpus/bach/chorale_bwv1.6.mid")).unwrap();
    for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        // Either a clean error or a roll of what was readable; never a panic.
        if let Ok(roll) = parse(&bytes[..cut]) {
            assert!(roll.steps() < 100_000);
        }
    }
}

/// A file cut short mid-track (an interrupted download) reads the notes before the cut and says
/// so; a whole file says nothing.
#[test]
fn a_file_cut_mid_track_warns_that_notes_are_lost() {
    let notes: Vec<_> = (0..64u64)
        .map(|i| (i * 120, i * 120 + 100, 48 + (i % 24) as u8, 80))
        .collect();
    let whole = simple(480, &notes);
    let song = Song::parse(&whole).unwrap();
    assert!(song.warnings.is_empty(), "{:?}", song.warnings);
    assert_eq!(song.notes.len(), 64);

    let cut = Song::parse(&whole[..whole.len() / 2]).unwrap();
    assert!(cut.notes.len() < 64);
    let warning = cut
        .warnings
        .iter()
        .find(|w| w.contains("truncated"))
        .unwrap_or_else(|| panic!("no truncation warning: {:?}", cut.warnings));
    assert!(warning.starts_with("track 0:"), "{warning}");
    assert!(
        warning.contains("notes after the cut are lost"),
        "{warning}"
    );

    // A real corpus file cut at 300 bytes: the same.
    let bytes = std::fs::read(shared("corpus/chopin/chp_op18.mid")).unwrap();
    let song = Song::parse(&bytes[..300]).unwrap();
    assert!(song.warnings.iter().any(|w| w.contains("truncated")));
}

#[test]
fn corrupted_bytes_never_panic() {
    let original = simple(
        480,
        &[(0, 480, 60, 90), (240, 960, 64, 80), (960, 1200, 67, 70)],
    );
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % bytes.len();
            bytes[i] = (state >> 32) as u8;
        }
        let _ = parse(&bytes);
    }
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.mid");
    std::fs::write(&path, b"MThd\x00\x00").unwrap();
    let err = Roll::read_midi(&path, &QuantizeOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Midi { .. }));
    assert!(err.to_string().contains("broken.mid"), "{err}");
    let missing = dir.path().join("missing.mid");
    let err = Roll::read_midi(&missing, &QuantizeOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("missing.mid") && err.to_string().contains("reading"),
        "{err}"
    );
    // A file far larger than any MIDI file (a video dropped on the window) is refused
    // before it is read (sparse here: nothing is written to the disk).
    let huge = dir.path().join("film.mid");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(segue::midi::Song::MAX_FILE_BYTES + 1).unwrap();
    let err = Roll::read_midi(&huge, &QuantizeOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("film.mid") && err.to_string().contains("is it a MIDI file?"),
        "{err}"
    );
}

/// What the suite's README says: every file parses in mido and symusic except a few. A good
/// reader reads what is valid and refuses clearly what is not. Segue refuses only files with
/// no MIDI content at all, and reads the valid events of the damaged ones (with warnings).
#[test]
fn the_public_parser_test_suite() {
    let dir = shared("midi-edge-cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mid"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 72, "the suite has 72 files");
    let refused: &[&str] = &["test-empty-file.mid", "test-not-a-midi-file.mid"];
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let result = Roll::read_midi(path, &QuantizeOptions::default());
        if refused.contains(&name) {
            let err = result.expect_err(name).to_string();
            assert!(err.contains(name), "{err}");
        } else {
            let roll = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                roll.steps() <= QuantizeOptions::default().max_steps,
                "{name}"
            );
        }
    }
    let notes = |name: &str| Song::read(&dir.join(name)).unwrap();
    // The scale after an illegal system message is read, and the message reported.
    for name in [
        "test-illegal-message-f4.mid",
        "test-illegal-message-all.mid",
        "test-illegal-message-f2-xx-xx.mid",
    ] {
        let song = notes(name);
        assert_eq!(song.notes.len(), 8, "{name}");
        assert!(
            song.warnings.iter().any(|w| w.contains("illegal message")),
            "{name}"
        );
    }
    // Note-on velocity 0 as note-off, running status across meta events, VLQ widths.
    assert_eq!(notes("test-c-major-scale.mid").notes.len(), 8);
    assert_eq!(notes("test-running-status-metaevent.mid").notes.len(), 4);
    for n in 2..=4 {
        assert_eq!(notes(&format!("test-vlq-{n}-byte.mid")).notes.len(), 8);
    }
    // Format 2 plays its tracks in sequence; format 0 and 1 versions overlap in time.
    let f0 = Roll::read_midi(
        &dir.join("test-2-tracks-type-0.mid"),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let f2 = Roll::read_midi(
        &dir.join("test-2-tracks-type-2.mid"),
        &QuantizeOptions::default(),
    )
    .unwrap();
    assert!(f2.steps() > f0.steps());
    // Drums are merged by default and can be left out.
    let drums = &dir.join("test-all-gm-percussion.mid");
    let with = Roll::read_midi(drums, &QuantizeOptions::default()).unwrap();
    let without = Roll::read_midi(
        drums,
        &QuantizeOptions {
            include_drums: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(with.active_cells() > 0 && without.active_cells() == 0);
}

/// A format-0 file at 96 ticks per quarter holding `events` (raw track bytes, delta times
/// included) before one middle C and the end of the track.
fn track_of(events: &[u8]) -> Vec<u8> {
    let mut track = events.to_vec();
    track.extend_from_slice(&[
        0x00, 0x90, 60, 64, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00,
    ]);
    let mut bytes = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk".to_vec();
    bytes.extend_from_slice(&(track.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&track);
    bytes
}

#[test]
fn a_meta_event_midly_refuses_is_skipped_not_the_rest_of_the_track() {
    // A drop-frame (29.97 fps) SMPTE offset at frame 29, which midly counts as out of range,
    // and a key signature of one byte: the note after them is still read.
    let bytes = track_of(&[
        0x00, 0xFF, 0x54, 0x05, 0x41, 0x00, 0x00, 0x1D, 0x00, // SMPTE offset 01:00:00:29
        0x00, 0xFF, 0x59, 0x01, 0x00, // key signature, one byte
    ]);
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(song.notes.len(), 1, "{:?}", song.warnings);
    assert_eq!((song.notes[0].start, song.notes[0].pitch), (0, 60));
    for kind in ["0x54", "0x59"] {
        let said = format!("unreadable meta event {kind} at tick 0 skipped");
        assert!(
            song.warnings.iter().any(|w| w.contains(&said)),
            "{:?}",
            song.warnings
        );
    }
    // A meta event whose length runs past the track still ends it, with a warning.
    let song = Song::parse(&track_of(&[0x00, 0xFF, 0x54, 0x7F, 0x41])).unwrap();
    assert!(song.notes.is_empty());
    assert!(song.warnings.iter().any(|w| w.contains("corrupt event")));
}

#[test]
fn millions_of_stray_bytes_make_a_few_warnings_not_millions() {
    // 20 realtime bytes (illegal in a file) before the note: 8 reported, the rest counted.
    let stray: Vec<u8> = std::iter::repeat_n([0x00, 0xF8], 20).flatten().collect();
    let song = Song::parse(&track_of(&stray)).unwrap();
    assert_eq!(song.notes.len(), 1);
    assert_eq!(song.warnings.len(), 9, "{:?}", song.warnings);
    assert!(song.warnings[8].contains("12 more"), "{}", song.warnings[8]);
}
