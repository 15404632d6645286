//! MIDI -> roll quantization and roll -> MIDI export.

mod common;

use common::{Ev, off, on, simple, smf};
use midly::num::u15;
use midly::{Format, Timing};
use proptest::prelude::*;
use segue::meter::StepMeter;
use segue::midi::{Division, SmfFormat, Song};
use segue::roll::{QuantizeOptions, Roll, RollNote, StepTempo, round_half_even};

fn roll_of(bytes: &[u8], opts: &QuantizeOptions) -> Roll {
    Roll::from_song(&Song::parse(bytes).unwrap(), opts).unwrap()
}

fn on_cells(roll: &Roll) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for t in 0..roll.steps() {
        for p in 0..128 {
            if roll.is_on(t, p) {
                v.push((t, p));
            }
        }
    }
    v
}

#[test]
fn rounding_is_half_to_even_like_numpy() {
    assert_eq!(round_half_even(5, 2), 2); // 2.5 -> 2
    assert_eq!(round_half_even(7, 2), 4); // 3.5 -> 4
    assert_eq!(round_half_even(11, 4), 3); // 2.75 -> 3
    assert_eq!(round_half_even(9, 4), 2); // 2.25 -> 2
    assert_eq!(round_half_even(0, 7), 0);
}

#[test]
fn quarter_note_is_four_steps_at_any_resolution() {
    for tpq in [96u16, 480, 10080, 7] {
        let q = u64::from(tpq);
        let roll = roll_of(
            &simple(tpq, &[(0, q, 60, 100), (q, 2 * q, 64, 50)]),
            &QuantizeOptions::default(),
        );
        assert_eq!(roll.steps(), 8, "tpq {tpq}");
        assert_eq!(
            on_cells(&roll),
            (0..4)
                .map(|t| (t, 60))
                .chain((4..8).map(|t| (t, 64)))
                .collect::<Vec<_>>()
        );
        assert_eq!(roll.velocity(0, 60), 100);
        assert_eq!(roll.velocity(3, 60), 100);
        assert_eq!(roll.velocity(5, 64), 50);
    }
}

#[test]
fn tempo_changes_do_not_move_the_grid_and_are_kept() {
    let tpq = 480u64;
    let bytes = smf(
        Format::Parallel,
        Timing::Metrical(u15::new(480)),
        &[
            vec![
                (0, Ev::Tempo(500_000)),
                (tpq, Ev::Tempo(250_000)),
                (3 * tpq, Ev::Tempo(1_000_000)),
            ],
            vec![
                (0, on(0, 60, 90)),
                (tpq, off(0, 60)),
                (2 * tpq, on(1, 67, 90)),
                (4 * tpq, off(1, 67)),
            ],
        ],
    );
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(song.format, SmfFormat::Parallel);
    assert_eq!(song.division, Division::Metrical(480));
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert!(roll.is_on(0, 60) && roll.is_on(3, 60) && !roll.is_on(4, 60));
    assert!(roll.is_on(8, 67) && roll.is_on(15, 67) && roll.steps() == 16);
    assert_eq!(
        roll.tempo(),
        &[
            StepTempo {
                step: 4,
                micros_per_quarter: 250_000
            },
            StepTempo {
                step: 12,
                micros_per_quarter: 1_000_000
            }
        ]
    );
    // 1 quarter at 120 bpm + 2 at 240 + 1 at 60 = 0.5 + 0.5 + 1.0 s.
    assert!((roll.duration_seconds() - 2.0).abs() < 1e-9);
    assert!((song.duration_seconds() - 2.0).abs() < 1e-9);
}

#[test]
fn tempo_changes_between_steps_keep_time() {
    // A step is 120 ticks. Changes at ticks 160 (a triplet's place) and 200, then 1000: each
    // step starts when its grid point sounds in the file, and the piece lasts as long.
    let bytes = smf(
        Format::Parallel,
        Timing::Metrical(u15::new(480)),
        &[
            vec![
                (160, Ev::Tempo(1_500_000)),
                (200, Ev::Tempo(750_000)),
                (1000, Ev::Tempo(400_000)),
            ],
            vec![(0, on(0, 60, 90)), (1920, off(0, 60))],
        ],
    );
    let song = Song::parse(&bytes).unwrap();
    let roll = Roll::from_song(&song, &QuantizeOptions::whole_file()).unwrap();
    let file_time = |tick: f64| {
        let parts = [
            (0.0, 500_000.0),
            (160.0, 1_500_000.0),
            (200.0, 750_000.0),
            (1000.0, 400_000.0),
        ];
        let mut seconds = 0.0;
        for (i, &(from, micros)) in parts.iter().enumerate() {
            let to = parts.get(i + 1).map_or(f64::INFINITY, |p| p.0).min(tick);
            if to > from {
                seconds += (to - from) / 480.0 * micros / 1e6;
            }
        }
        seconds
    };
    let times = roll.step_times();
    assert_eq!(times.len(), 17);
    for (step, &t) in times.iter().enumerate() {
        let want = file_time(step as f64 * 120.0);
        assert!(
            (t - want).abs() < 1e-5,
            "step {step}: {t} s, the file {want} s"
        );
    }
    assert!((roll.duration_seconds() - song.duration_seconds()).abs() < 1e-5);
    // Step 1 holds 40 ticks of 120 bpm, 40 of 40 bpm and 40 of 80 bpm.
    assert_eq!(roll.micros_per_quarter_at(1), 916_667);
    assert_eq!(roll.micros_per_quarter_at(2), 750_000);
    // The written file keeps the time too.
    let back = Song::parse(&roll.to_midi_bytes("t", None).unwrap()).unwrap();
    assert!((back.duration_seconds() - song.duration_seconds()).abs() < 1e-5);
}

#[test]
fn the_metronome_clicks_on_the_beat_a_musician_counts() {
    let meter = |numerator, denominator| segue::midi::Meter {
        numerator,
        denominator,
    };
    // (metre, its time signature event: FF 58 04, numerator, power of two, MIDI clocks a
    // click, 32nds a quarter): a quarter is 24 clocks, 6/8 clicks on dotted quarters, 3/8 on
    // eighths, 2/2 on halves.
    for (m, clocks) in [
        (meter(4, 4), 24u8),
        (meter(6, 8), 36),
        (meter(3, 8), 12),
        (meter(2, 2), 48),
        (meter(12, 16), 18),
    ] {
        let mut roll = Roll::new(64);
        roll.set_meters(vec![StepMeter { step: 0, meter: m }]);
        let bytes = roll.to_midi_bytes("x", None).unwrap();
        let power = m.denominator.trailing_zeros() as u8;
        let event = [0xff, 0x58, 4, m.numerator, power, clocks, 8];
        assert!(bytes.windows(7).any(|w| w == event), "{m}");
    }
}

/// Key signatures come through a roll as the file has them (a notation program spells its
/// notes by them): kept by an export, a slice, a continuation and the studio's score.
#[test]
fn key_signatures_are_kept() {
    let bytes = smf(
        Format::Parallel,
        Timing::Metrical(u15::new(480)),
        &[
            vec![
                (0, Ev::Key(-3, false)),
                (1920, Ev::Key(-5, false)),
                (3840, Ev::Key(-5, false)),
            ],
            vec![
                (0, on(0, 63, 90)),
                (3840, off(0, 63)),
                (3840, on(0, 61, 90)),
                (5760, off(0, 61)),
            ],
        ],
    );
    let song = Song::parse(&bytes).unwrap();
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    let key = |sharps| segue::midi::Key {
        sharps,
        minor: false,
    };
    // The repeated one says nothing new.
    let keys = |r: &Roll| r.keys().iter().map(|k| (k.step, k.key)).collect::<Vec<_>>();
    assert_eq!(keys(&roll), [(0, key(-3)), (16, key(-5))]);
    assert_eq!(key(-3).to_string(), "Eb major");
    let back = Roll::from_song(
        &Song::parse(&roll.to_midi_bytes("x", None).unwrap()).unwrap(),
        &QuantizeOptions::default(),
    )
    .unwrap();
    assert_eq!(keys(&back), keys(&roll));
    // A slice starts in the key in force; a continuation goes on in the key it ends in.
    assert_eq!(keys(&roll.slice(20, 8)), [(0, key(-5))]);
    let mut continued = roll.slice(0, 8);
    continued.continue_with(&Roll::new(8));
    assert_eq!(keys(&continued), [(0, key(-3))]);
    // The studio's piece keeps them too.
    #[cfg(feature = "studio")]
    {
        use segue::studio::score::{Origin, Score};
        assert_eq!(
            keys(&Score::from_roll(&roll, Origin::Primer).to_roll()),
            keys(&roll)
        );
    }
    // A file without one stays without one (not C major).
    let plain = roll_of(&simple(96, &[(0, 96, 60, 90)]), &QuantizeOptions::default());
    assert!(plain.keys().is_empty());
    let written = Song::parse(&plain.to_midi_bytes("x", None).unwrap()).unwrap();
    assert!(written.key_signatures.is_empty());
}

/// The sustain pedal is counted, not applied: presses are the times it goes down on a channel
/// (a half-pedalled file sends many values while it stays down), and the notes keep the
/// lengths they were written with.
#[test]
fn the_sustain_pedal_is_counted_not_applied() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(96.into()),
        &[vec![
            (0, Ev::Pedal(0, 127)),
            (
                0,
                Ev::On {
                    ch: 0,
                    key: 60,
                    vel: 90,
                },
            ),
            (24, Ev::Off { ch: 0, key: 60 }),
            (30, Ev::Pedal(0, 100)),
            (40, Ev::Pedal(1, 64)),
            (90, Ev::Pedal(0, 0)),
            (96, Ev::Pedal(0, 70)),
            (100, Ev::Pedal(1, 63)),
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(song.pedal_presses(), 3);
    // One channel's pedal repeated in two tracks is pressed once; another channel's counts.
    let track = |ch: u8| {
        vec![
            (0, Ev::Pedal(ch, 127)),
            (48, Ev::Pedal(ch, 0)),
            (96, Ev::Pedal(ch, 127)),
            (120, Ev::Pedal(ch, 0)),
        ]
    };
    let twice = smf(
        Format::Parallel,
        Timing::Metrical(96.into()),
        &[track(0), track(0), track(1)],
    );
    assert_eq!(Song::parse(&twice).unwrap().pedal_presses(), 4);
    let said = song.pedal_said(false).unwrap();
    assert!(
        said.contains("sustain pedal (3 presses) is not applied"),
        "{said}"
    );
    assert_eq!((song.notes[0].start, song.notes[0].end), (0, 24));
    let plain = Song::parse(&simple(96, &[(0, 96, 60, 90)])).unwrap();
    assert_eq!(plain.pedal_said(false), None);
    assert_eq!(plain.pedal_said(true), None);
}

#[test]
fn all_notes_off_ends_every_note_of_its_channel() {
    let on = |ch: u8, key: u8| Ev::On { ch, key, vel: 80 };
    let off = |ch: u8, key: u8| Ev::Off { ch, key };
    // All Notes Off (123), All Sound Off (120) and the mode messages that imply it (124-127),
    // each after a chord of channel 0 and a note of channel 1 that it leaves sounding; a C4
    // struck later is paired with its own note-off, not the chord's C4.
    for controller in [123, 120, 124, 125, 126, 127] {
        let bytes = smf(
            Format::SingleTrack,
            Timing::Metrical(96.into()),
            &[vec![
                (0, on(0, 60)),
                (0, on(0, 64)),
                (0, on(0, 67)),
                (0, on(1, 48)),
                (96, Ev::Control(0, controller, 0)),
                (384, on(0, 60)),
                (480, off(0, 60)),
                (576, off(1, 48)),
            ]],
        );
        let song = Song::parse(&bytes).unwrap();
        let mut notes: Vec<_> = (song.notes.iter())
            .map(|n| (n.channel, n.pitch, n.start, n.end))
            .collect();
        notes.sort();
        assert_eq!(
            notes,
            [
                (0, 60, 0, 96),
                (0, 60, 384, 480),
                (0, 64, 0, 96),
                (0, 67, 0, 96),
                (1, 48, 0, 576)
            ],
            "controller {controller}"
        );
    }
    // Reset All Controllers (121) lifts the sustain pedal.
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(96.into()),
        &[vec![
            (0, Ev::Pedal(0, 127)),
            (0, on(0, 60)),
            (24, off(0, 60)),
            (48, Ev::Control(0, 121, 0)),
            (96, on(0, 62)),
            (120, off(0, 62)),
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    let held = song.pedalled_notes();
    assert_eq!((held[0].start, held[0].end), (0, 48));
}

#[test]
fn the_sustain_pedal_holds_notes_when_applied() {
    let on = |ch: u8, key: u8| Ev::On { ch, key, vel: 80 };
    let off = |ch: u8, key: u8| Ev::Off { ch, key };
    // 96 ticks a quarter: 24 ticks a step; absolute ticks, in this order at one tick.
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(96.into()),
        &[vec![
            (0, on(0, 60)), // released at 24, before the pedal: as written
            (0, on(0, 64)), // released at 48 as the pedal goes down: caught
            (0, on(1, 67)), // channel 1, released under channel 0's pedal: as written
            (0, on(2, 55)), // channel 2 has no pedal: it follows the others', held to 192
            (24, off(0, 60)),
            (48, off(0, 64)),
            (48, Ev::Pedal(0, 127)),
            (48, on(0, 72)), // released at 72, held to the lift at 192
            (48, off(1, 67)),
            (48, on(0, 76)), // released at 72, struck again at 120: held to 120
            (60, off(2, 55)),
            (72, off(0, 72)),
            (72, off(0, 76)),
            (120, on(0, 76)), // released at 144, held to the lift
            (144, off(0, 76)),
            (192, Ev::Pedal(0, 0)),
            (200, Ev::Pedal(1, 127)), // channel 1's own pedal, after its note
            (210, Ev::Pedal(1, 0)),
            (192, on(0, 79)), // released at 216, after the lift: as written
            (216, off(0, 79)),
            (240, Ev::Pedal(0, 100)), // never lifted: held to the last note's end
            (240, on(0, 48)),
            (264, off(0, 48)),
            (336, on(0, 50)), // the last note, of no length
            (336, off(0, 50)),
            (960, Ev::Tempo(500_000)), // the file's last event, long after
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(song.pedal_presses(), 3);
    let spans = |notes: &[segue::midi::Note]| -> Vec<(u8, u64, u64)> {
        notes.iter().map(|n| (n.pitch, n.start, n.end)).collect()
    };
    let written = spans(&song.notes);
    assert_eq!(
        written,
        [
            (55, 0, 60),
            (60, 0, 24),
            (64, 0, 48),
            (67, 0, 48),
            (72, 48, 72),
            (76, 48, 72),
            (76, 120, 144),
            (79, 192, 216),
            (48, 240, 264),
            (50, 336, 336)
        ]
    );
    assert_eq!(
        spans(&song.pedalled_notes()),
        [
            (55, 0, 192),
            (60, 0, 24),
            (64, 0, 192),
            (67, 0, 48),
            (72, 48, 192),
            (76, 48, 120),
            (76, 120, 192),
            (79, 192, 216),
            (48, 240, 336),
            (50, 336, 336)
        ]
    );
    // Written notes stay as they are; a roll holds them only when asked.
    assert_eq!(spans(&song.notes), written);
    let roll = |pedal: bool| {
        let opts = QuantizeOptions {
            sustain_pedal: pedal,
            ..QuantizeOptions::default()
        };
        Roll::from_song(&song, &opts).unwrap()
    };
    let (plain, held) = (roll(false), roll(true));
    // Pitch 72 sounds steps 2..3 as written, 2..8 held by the pedal (ticks 48..192).
    assert!(plain.is_on(2, 72) && !plain.is_on(3, 72));
    assert!((2..8).all(|t| held.is_on(t, 72)) && !held.is_on(8, 72));
    // Struck again at step 5, 76 sounds anew there: two notes, not one.
    let seventy_six: Vec<_> = (held.notes().into_iter())
        .filter(|n| n.pitch == 76)
        .map(|n| (n.start, n.len))
        .collect();
    assert_eq!(seventy_six, [(2, 3), (5, 3)]);
    // The drums' pedal holds nothing but the drums (nor do the drums follow another's).
    let drums_pedal = smf(
        Format::SingleTrack,
        Timing::Metrical(96.into()),
        &[vec![
            (0, Ev::Pedal(9, 127)),
            (0, on(0, 60)),
            (24, off(0, 60)),
            (384, Ev::Pedal(9, 0)),
        ]],
    );
    let drums_pedal = Song::parse(&drums_pedal).unwrap();
    assert_eq!(spans(&drums_pedal.pedalled_notes()), [(60, 0, 24)]);
    assert!(
        (song.pedal_said(true).unwrap()).contains("sustain pedal (3 presses) is applied"),
        "{:?}",
        song.pedal_said(true)
    );
}

/// A song made by hand (not read from a file) with no ticks per quarter is refused, not
/// divided by.
#[test]
fn a_song_without_ticks_per_quarter_is_refused() {
    let mut song = Song::parse(&simple(96, &[(0, 96, 60, 90)])).unwrap();
    song.ticks_per_quarter = 0;
    let err = Roll::from_song(&song, &QuantizeOptions::default()).unwrap_err();
    assert_eq!(err, segue::MidiProblem::BadDivision(0));
}

#[test]
fn velocity_zero_note_on_is_a_note_off() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(4)),
        &[vec![
            (0, on(0, 50, 64)),
            (2, on(0, 50, 0)),
            (6, on(0, 50, 64)),
            (7, on(0, 50, 0)),
        ]],
    );
    let roll = roll_of(&bytes, &QuantizeOptions::default());
    assert_eq!(on_cells(&roll), vec![(0, 50), (1, 50), (6, 50)]);
}

#[test]
fn overlapping_notes_of_one_pitch_pair_first_in_first_out() {
    // Two note-ons of pitch 60 before any note-off: the first off ends the first note, the
    // second off the second note; both onsets survive in the roll.
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(4)),
        &[vec![
            (0, on(0, 60, 40)),
            (2, on(0, 60, 120)),
            (4, off(0, 60)),
            (8, off(0, 60)),
            (20, off(0, 60)), // stray off: ignored
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    let notes: Vec<_> = song
        .notes
        .iter()
        .map(|n| (n.start, n.end, n.velocity))
        .collect();
    assert_eq!(notes, vec![(0, 4, 40), (2, 8, 120)]);
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.steps(), 8);
    assert!(roll.is_onset(0, 60) && roll.is_onset(2, 60));
    assert_eq!(roll.velocity(1, 60), 40);
    assert_eq!(roll.velocity(5, 60), 120);
    let exported: Vec<_> = roll
        .notes()
        .iter()
        .map(|n| (n.start, n.len, n.velocity))
        .collect();
    assert_eq!(exported, vec![(0, 2, 40), (2, 6, 120)]);
}

#[test]
fn short_notes_are_kept_as_one_step_unless_the_paper_rule_is_asked() {
    // tpq 480: a 32nd note (60 ticks) rounds to 0.5 -> 0 steps.
    let bytes = simple(480, &[(0, 60, 72, 80), (480, 960, 60, 80)]);
    let kept = roll_of(&bytes, &QuantizeOptions::default());
    assert!(kept.is_on(0, 72) && !kept.is_on(1, 72));
    let paper = roll_of(&bytes, &QuantizeOptions::paper());
    assert!(!paper.is_on(0, 72));
    assert!(paper.is_on(4, 60));
}

#[test]
fn drums_merge_by_default_and_can_be_left_out() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(4)),
        &[vec![
            (0, on(9, 36, 100)),
            (1, off(9, 36)),
            (0, on(0, 60, 100)),
            (4, off(0, 60)),
        ]],
    );
    assert!(roll_of(&bytes, &QuantizeOptions::default()).is_on(0, 36));
    let opts = QuantizeOptions {
        include_drums: false,
        ..Default::default()
    };
    let roll = roll_of(&bytes, &opts);
    assert!(!roll.is_on(0, 36) && roll.is_on(0, 60));
}

#[test]
fn format_2_sequences_play_one_after_another() {
    let seq = |key| {
        vec![
            (
                0,
                Ev::On {
                    ch: 0,
                    key,
                    vel: 90,
                },
            ),
            (4, Ev::Off { ch: 0, key }),
        ]
    };
    let bytes = smf(
        Format::Sequential,
        Timing::Metrical(u15::new(4)),
        &[seq(60), seq(62)],
    );
    let roll = roll_of(&bytes, &QuantizeOptions::default());
    assert_eq!(
        on_cells(&roll),
        (0..4)
            .map(|t| (t, 60))
            .chain((4..8).map(|t| (t, 62)))
            .collect::<Vec<_>>()
    );
}

/// Each pattern of a format 2 file has its own tempo and metre: one that states none plays at
/// 120 bpm in 4/4 after a pattern at 60 bpm in 3/4, and one that states its own keeps it.
#[test]
fn format_2_patterns_start_at_their_own_tempo_and_metre() {
    let pattern = |tempo: Option<u32>, end: u64| {
        let mut events = vec![
            (0, on(0, 60, 90)),
            (480, off(0, 60)),
            (end, Ev::Key(0, false)),
        ];
        if let Some(micros) = tempo {
            events.push((0, Ev::Tempo(micros)));
            events.push((0, Ev::Meter(3, 2)));
        }
        events
    };
    let two = |second: Option<u32>| {
        smf(
            Format::Sequential,
            Timing::Metrical(u15::new(480)),
            &[pattern(Some(1_000_000), 1440), pattern(second, 1920)],
        )
    };
    // 3 quarters at 60 bpm, then 4 at 120 bpm.
    let song = Song::parse(&two(None)).unwrap();
    assert!(
        (song.duration_seconds() - 5.0).abs() < 1e-9,
        "{}",
        song.duration_seconds()
    );
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.meter_at(0).to_string(), "3/4");
    assert_eq!(roll.meter_at(12).to_string(), "4/4");
    // A second pattern at 75 bpm in 3/4 of its own: 3 s, then 4 quarters of 0.8 s.
    let song = Song::parse(&two(Some(800_000))).unwrap();
    assert!(
        (song.duration_seconds() - 6.2).abs() < 1e-9,
        "{}",
        song.duration_seconds()
    );
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.meter_at(12).to_string(), "3/4");
}

#[test]
fn smpte_files_are_read_on_a_120_bpm_grid() {
    // 25 fps x 40 ticks = 1000 ticks per second; a quarter at 120 bpm is 500 ticks. A tempo
    // event (60 bpm) does not change time counted in seconds.
    let bytes = smf(
        Format::SingleTrack,
        Timing::Timecode(midly::Fps::Fps25, 40),
        &[vec![
            (0, Ev::Tempo(1_000_000)),
            (0, on(0, 60, 90)),
            (500, off(0, 60)),
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(
        song.division,
        Division::Timecode {
            fps: 25,
            subframes: 40
        }
    );
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.steps(), 4);
    assert!((song.duration_seconds() - 0.5).abs() < 1e-9);
}

#[test]
fn smpte_drop_frame_files_run_at_29_97_frames_a_second() {
    // 30 / 1.001 fps x 100 ticks: a minute of music is 179_820 ticks (to 0.2 of a tick), 120
    // quarters at 120 bpm. Read at 29 fps it would last 62 s, at 30 fps 59.94 s.
    let bytes = smf(
        Format::SingleTrack,
        Timing::Timecode(midly::Fps::Fps29, 100),
        &[vec![(0, on(0, 60, 90)), (179_820, off(0, 60))]],
    );
    let song = Song::parse(&bytes).unwrap();
    assert!(
        (song.duration_seconds() - 60.0).abs() < 1e-3,
        "{}",
        song.duration_seconds()
    );
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.steps(), 480);
}

#[test]
fn a_continuation_joined_to_its_primer_holds_the_notes_across_the_join() {
    // The primer holds C from step 2 to its end (step 8); the continuation goes on holding
    // it for 4 steps and starts an E.
    let primer = Roll::from_notes(
        8,
        &[RollNote {
            start: 2,
            len: 6,
            pitch: 60,
            velocity: 80,
        }],
        Vec::new(),
    );
    let mut binary = vec![0u8; 6 * 128];
    for t in 0..4 {
        binary[t * 128 + 60] = 1;
    }
    binary[2 * 128 + 64] = 1;
    let continuation = Roll::from_binary(6, &binary).unwrap();
    let mut joined = primer.slice(0, 8);
    joined.append(&continuation);
    // Appended as is, the C is struck again where the continuation starts.
    assert_eq!(joined.notes().len(), 3);
    joined.join_held_at(8);
    let notes = joined.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    let c = notes.iter().find(|n| n.pitch == 60).unwrap();
    assert_eq!((c.start, c.len, c.velocity), (2, 10, 80));
    assert!(notes.iter().any(|n| n.pitch == 64 && n.start == 10));
    // The tail of a quiet note, cut by a slice or an erase, stays quiet.
    let mut quiet = Roll::new(8);
    quiet.add_note(RollNote {
        start: 0,
        len: 8,
        pitch: 60,
        velocity: 30,
    });
    assert_eq!(quiet.slice(4, 4).notes()[0].velocity, 30);
    quiet.erase(0, 4, 60);
    assert_eq!(quiet.notes()[0].velocity, 30);
    assert_eq!(quiet.notes()[0].start, 4);
    // Out of range: nothing to join.
    joined.join_held_at(0);
    joined.join_held_at(1000);
    assert_eq!(joined.notes().len(), 2);
}

#[test]
fn export_is_a_standard_piano_file_with_tempo_and_velocity() {
    let mut roll = Roll::from_notes(
        16,
        &[
            RollNote {
                start: 0,
                len: 4,
                pitch: 60,
                velocity: 30,
            },
            RollNote {
                start: 4,
                len: 4,
                pitch: 60,
                velocity: 90,
            },
        ],
        vec![StepTempo {
            step: 0,
            micros_per_quarter: 600_000,
        }],
    );
    roll.add_note(RollNote {
        start: 8,
        len: 8,
        pitch: 67,
        velocity: 127,
    });
    let bytes = roll.to_midi_bytes("test", None).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    assert_eq!(smf.header.format, midly::Format::Parallel);
    let has_program_0 = smf.tracks.iter().flatten().any(|e| {
        matches!(e.kind, midly::TrackEventKind::Midi { message: midly::MidiMessage::ProgramChange { program }, .. } if program == 0)
    });
    assert!(has_program_0);
    let song = Song::parse(&bytes).unwrap();
    assert!((song.initial_bpm() - 100.0).abs() < 1e-9);
    let notes: Vec<_> = song
        .notes
        .iter()
        .map(|n| (n.start, n.end, n.pitch, n.velocity))
        .collect();
    assert_eq!(
        notes,
        vec![(0, 480, 60, 30), (480, 960, 60, 90), (960, 1920, 67, 127)]
    );
    // In the file itself, the repeated C's first note ends before its second starts at the
    // same tick: a player that keeps one note a key would otherwise cut the second at once.
    let mut at_480 = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        for e in track {
            tick += u64::from(e.delta.as_int());
            if let midly::TrackEventKind::Midi { message, .. } = e.kind
                && tick == 480
            {
                at_480.push(match message {
                    midly::MidiMessage::NoteOff { .. } => "off",
                    midly::MidiMessage::NoteOn { vel, .. } if vel == 0 => "off",
                    midly::MidiMessage::NoteOn { .. } => "on",
                    _ => "other",
                });
            }
        }
    }
    assert_eq!(at_480, ["off", "on"]);
}

/// A roll's music begins at the bar of its first note, in its own metre.
#[test]
fn the_first_bar_with_notes_is_found_in_the_roll_s_metre() {
    let note = |start| RollNote {
        start,
        len: 2,
        pitch: 60,
        velocity: 80,
    };
    let mut roll = Roll::from_notes(100, &[note(82)], Vec::new());
    assert_eq!(roll.first_bar_with_notes(), 80);
    // A continuation hears the silent bars and the steps asked for after them; none, none.
    let heard = |meters: &[segue::meter::StepMeter], first_bar, end, asked| {
        segue::generate::primer_steps_heard(meters, first_bar, end, asked)
    };
    assert_eq!(heard(&[], 80, 200, 16), 96);
    assert_eq!(heard(&[], 80, 200, 0), 0);
    roll.set_meters(vec![segue::meter::StepMeter {
        step: 0,
        meter: segue::midi::Meter {
            numerator: 3,
            denominator: 4,
        },
    }]);
    assert_eq!(roll.first_bar_with_notes(), 72, "bars of 12 steps");
    let (waltz, common) = (roll.meters().to_vec(), Vec::new());
    assert_eq!(heard(&common, 0, 400, 64), 64, "four bars of 4/4");
    assert_eq!(heard(&waltz, 0, 400, 64), 60, "five bars of 3/4, not 5 1/3");
    assert_eq!(heard(&waltz, 0, 400, 66), 60, "half way: the shorter");
    assert_eq!(heard(&waltz, 0, 400, 67), 72);
    assert_eq!(
        heard(&waltz, 24, 400, 64),
        84,
        "from the bar of the first note"
    );
    assert_eq!(heard(&waltz, 0, 400, 8), 8, "less than a bar: as asked");
    assert_eq!(heard(&waltz, 0, 50, 64), 64, "a shorter primer: all of it");
    assert_eq!(
        heard(&waltz, 0, 66, 64),
        66,
        "its end nearer than a bar line"
    );
    // 4/4 up to step 32, then 3/4: bar lines at 32, 44, 56, 68.
    let changed = segue::meter::normalize(vec![segue::meter::StepMeter {
        step: 32,
        ..waltz[0]
    }]);
    assert_eq!(heard(&changed, 0, 400, 64), 68);
    assert_eq!(heard(&changed, 0, 400, 61), 56);
    assert_eq!(Roll::new(50).first_bar_with_notes(), 0);
    assert_eq!(
        Roll::from_notes(10, &[note(0)], Vec::new()).first_bar_with_notes(),
        0
    );
}

/// A roll that ends in rests exports a file of its whole length, and opening that file as a
/// musician's piece gives the rests back; training data still ends with the last note.
#[test]
fn trailing_rests_survive_export() {
    let roll = Roll::from_notes(
        64,
        &[RollNote {
            start: 0,
            len: 8,
            pitch: 60,
            velocity: 90,
        }],
        Vec::new(),
    );
    let bytes = roll.to_midi_bytes("rests", None).unwrap();
    let song = Song::parse(&bytes).unwrap();
    // 64 sixteenths = 16 quarters.
    assert_eq!(
        song.end_tick,
        16 * u64::from(segue::roll::EXPORT_TICKS_PER_QUARTER)
    );
    assert_eq!(roll_of(&bytes, &QuantizeOptions::whole_file()).steps(), 64);
    assert_eq!(roll.sounding_end(), 8);
    assert_eq!(Roll::new(5).sounding_end(), 0);
    assert_eq!(roll_of(&bytes, &QuantizeOptions::default()).steps(), 8);
    // An end-of-track far past the limit is not taken as the piece's length.
    let opts = QuantizeOptions {
        max_steps: 32,
        ..QuantizeOptions::whole_file()
    };
    assert_eq!(roll_of(&bytes, &opts).steps(), 8);
}

fn arb_notes() -> impl Strategy<Value = Vec<(u64, u64, u8, u8)>> {
    prop::collection::vec((0u64..4000, 1u64..1500, 0u8..128, 1u8..128), 0..60).prop_map(|v| {
        v.into_iter()
            .map(|(s, d, p, vel)| (s, s + d, p, vel))
            .collect()
    })
}

proptest! {
    // A fixed seed: every run checks the same cases, so a failure can be reproduced.
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5E6E),
        ..ProptestConfig::default()
    })]

    /// MIDI -> roll -> MIDI -> roll is the identity on the roll (cells, velocities, onsets,
    /// tempo and metre maps), whatever the source resolution.
    #[test]
    fn midi_roll_midi_roll_is_identical(
        notes in arb_notes(),
        tpq in prop::sample::select(vec![24u16, 96, 120, 480, 960, 10080]),
        tempos in prop::collection::vec((0u64..5000, 200_000u32..1_500_000), 1..6),
        meters in prop::collection::vec((0u64..5000, 1u8..13, 0u8..5), 0..5),
        keys in prop::collection::vec((0u64..5000, -7i8..=7, any::<bool>()), 0..4),
        keep in any::<bool>(),
        keep_length in any::<bool>(),
    ) {
        let mut evs: Vec<(u64, Ev)> = tempos.iter().map(|&(t, m)| (t, Ev::Tempo(m))).collect();
        evs.extend(meters.iter().map(|&(t, n, d)| (t, Ev::Meter(n, d))));
        evs.extend(keys.iter().map(|&(t, s, m)| (t, Ev::Key(s, m))));
        for &(s, e, key, vel) in &notes {
            evs.push((s, Ev::On { ch: 0, key, vel }));
            evs.push((e, Ev::Off { ch: 0, key }));
        }
        let bytes = smf(Format::SingleTrack, Timing::Metrical(u15::new(tpq)), &[evs]);
        let opts = QuantizeOptions { keep_short_notes: keep, keep_length, ..Default::default() };
        let first = roll_of(&bytes, &opts);
        let again = roll_of(&first.to_midi_bytes("x", None).unwrap(), &opts);
        prop_assert_eq!(&first, &again);
        // And the cached form too.
        let cached = segue::dataset::decode_cached(&segue::dataset::encode_cached(&first)).unwrap();
        prop_assert_eq!(&first, &cached);
    }

    /// The npy form keeps the binary matrix.
    #[test]
    fn npy_round_trip(notes in arb_notes()) {
        let roll = roll_of(&simple(96, &notes), &QuantizeOptions::default());
        let bytes = segue::npy::encode_u8(roll.steps(), &roll.binary());
        let (steps, binary) = segue::npy::decode(&bytes).unwrap();
        prop_assert_eq!(steps, roll.steps());
        prop_assert_eq!(binary, roll.binary());
        prop_assert_eq!((bytes.len() - steps * 128) % 64, 0);
    }
}

/// A `.npy` roll longer than Segue opens is refused from its header, before its cells are
/// decoded (as a MIDI file that long is).
#[test]
fn an_overlong_npy_roll_is_refused() {
    let most = segue::roll::MAX_STEPS;
    let ok = segue::npy::encode_u8(most, &vec![0; most * 128]);
    assert_eq!(segue::npy::decode(&ok).unwrap().0, most);
    // Only the header: the refusal comes before the cells are looked at.
    let header_only = segue::npy::encode_u8(most + 1, &[]);
    let err = segue::npy::decode(&header_only).unwrap_err();
    assert!(err.contains("longest piece"), "{err}");
    // A file larger than any roll Segue opens is refused before it is read (a sparse file:
    // nothing is written to the disk).
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.npy");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(segue::npy::MAX_FILE_BYTES + 1).unwrap();
    let err = segue::npy::read_roll(&huge).unwrap_err().to_string();
    assert!(
        err.contains("huge.npy") && err.contains("more than a roll"),
        "{err}"
    );
}

#[test]
fn slicing_and_appending_keep_notes_and_tempo() {
    let roll = Roll::from_notes(
        32,
        &[RollNote {
            start: 2,
            len: 20,
            pitch: 40,
            velocity: 70,
        }],
        vec![StepTempo {
            step: 16,
            micros_per_quarter: 400_000,
        }],
    );
    let a = roll.slice(0, 10);
    let b = roll.slice(10, 22);
    assert!(
        b.is_onset(0, 40),
        "a note cut by a slice restarts at the cut"
    );
    assert_eq!(b.micros_per_quarter_at(6), 400_000);
    let mut joined = a.clone();
    joined.append(&b);
    assert_eq!(joined.binary(), roll.binary());
    assert_eq!(joined.tempo(), roll.tempo());
    // The note, cut in two at the join, keeps its velocity on both sides; joined, it is one.
    let halves: Vec<(usize, usize, u8)> = (joined.notes().iter())
        .map(|n| (n.start, n.len, n.velocity))
        .collect();
    assert_eq!(halves, vec![(2, 8, 70), (10, 12, 70)]);
    joined.join_held_at(10);
    assert_eq!(joined.notes(), roll.notes());
    assert_eq!(roll.slice(30, 8).steps(), 8);
}

/// A note never switched off ends with its track.
#[test]
fn a_note_left_on_ends_with_its_track() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(96)),
        &[vec![
            (0, on(0, 60, 90)),
            (48, on(0, 64, 90)),
            (72, off(0, 64)),
            (96, Ev::Tempo(500_000)),
        ]],
    );
    let song = Song::parse(&bytes).unwrap();
    let notes: Vec<_> = song
        .notes
        .iter()
        .map(|n| (n.start, n.end, n.pitch))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.contains(&(0, 96, 60)), "{notes:?}");
    assert!(notes.contains(&(48, 72, 64)), "{notes:?}");
}

/// The agreement measure: shared sounding cells over cells sounding in either roll, over the
/// common length; two silent rolls agree.
#[test]
fn jaccard_counts_shared_cells_over_the_common_length() {
    let roll = |cells: &[(usize, usize)], steps| {
        let mut b = vec![0u8; steps * 128];
        for &(t, p) in cells {
            b[t * 128 + p] = 1;
        }
        Roll::from_binary(steps, &b).unwrap()
    };
    let a = roll(&[(0, 60), (1, 60), (2, 64)], 4);
    let b = roll(&[(0, 60), (2, 64), (3, 67)], 4);
    assert!((a.jaccard(&b) - 2.0 / 4.0).abs() < 1e-12);
    assert_eq!(a.jaccard(&a), 1.0);
    assert_eq!(roll(&[], 4).jaccard(&roll(&[], 8)), 1.0);
    assert_eq!(a.jaccard(&roll(&[], 4)), 0.0);
    // Only the common length counts: a longer roll's tail is not compared.
    let longer = roll(&[(0, 60), (1, 60), (2, 64), (6, 70)], 8);
    assert_eq!(a.jaccard(&longer), 1.0);
}

#[test]
fn pitch_names_follow_middle_c_as_c4() {
    use segue::roll::pitch_name;
    assert_eq!(pitch_name(60), "C4");
    assert_eq!(pitch_name(61), "C#4");
    assert_eq!(pitch_name(21), "A0");
    assert_eq!(pitch_name(108), "C8");
    assert_eq!(pitch_name(0), "C-1");
    assert_eq!(pitch_name(127), "G9");
}

/// A continuation goes on at the primer's pace: the tempo that plays its last 64 steps in the
/// time they take, not the tempo of its last step (a ritardando there made the continuation
/// of a rubato piece half as fast as its primer).
#[test]
fn a_continuation_keeps_the_primers_pace() {
    let tempo = |step, micros_per_quarter| StepTempo {
        step,
        micros_per_quarter,
    };
    // 80 steps at 120 bpm, the last two slowed to 30 bpm.
    let mut primer = Roll::new(80);
    primer.set_tempo(vec![
        tempo(0, 400_000),
        tempo(16, 500_000),
        tempo(78, 2_000_000),
    ]);
    let mut roll = primer.clone();
    roll.continue_with(&Roll::new(8));
    assert_eq!(roll.steps(), 88);
    // Steps 16..80: 62 at 500 000 and 2 at 2 000 000 us a quarter.
    let pace = (62 * 500_000 + 2 * 2_000_000) / 64;
    assert_eq!(primer.closing_micros_per_quarter(), pace);
    assert_eq!(roll.micros_per_quarter_at(80), pace);
    let times = roll.step_times();
    let step = f64::from(pace) / 4e6;
    for t in 80..88 {
        assert!((times[t + 1] - times[t] - step).abs() < 1e-9, "step {t}");
    }
    // The primer keeps its own tempo map.
    assert_eq!(roll.micros_per_quarter_at(79), 2_000_000);
    // A primer shorter than 64 steps: all of it.
    let mut short = Roll::new(8);
    short.set_tempo(vec![tempo(0, 500_000), tempo(4, 1_000_000)]);
    assert_eq!(short.closing_micros_per_quarter(), 750_000);
    assert_eq!(Roll::new(0).closing_micros_per_quarter(), 500_000);
}

/// A generated part is as loud as the primer's last bars (the median of the note starts in
/// its last 64 steps), not at a fixed velocity that jumps at the join.
#[test]
fn a_continuation_keeps_the_primers_loudness() {
    let note = |start, velocity| RollNote {
        start,
        len: 2,
        pitch: 60 + (start % 12) as u8,
        velocity,
    };
    // Loud at first, then quiet in the last 64 steps: 40, 44 and 52 start there.
    let notes = [
        note(0, 120),
        note(4, 110),
        note(70, 44),
        note(80, 40),
        note(90, 52),
    ];
    let primer = Roll::from_notes(96, &notes, Vec::new());
    assert_eq!(primer.closing_velocity(), Some(44));
    let mut generated = vec![0u8; 8 * 128];
    generated[2 * 128 + 67] = 1;
    let mut roll = primer.clone();
    roll.continue_with(&Roll::from_binary(8, &generated).unwrap());
    assert_eq!(roll.velocity(98, 67), 44);
    // No note in the last 64 steps: all of them count; none at all: the default.
    let early = Roll::from_notes(200, &notes[..2], Vec::new());
    assert_eq!(early.closing_velocity(), Some(120));
    assert_eq!(Roll::new(16).closing_velocity(), None);
    let mut silent = Roll::new(16);
    silent.continue_with(&Roll::from_binary(8, &generated).unwrap());
    assert_eq!(silent.velocity(18, 67), segue::roll::DEFAULT_VELOCITY);
}

fn meter(numerator: u8, denominator: u16) -> segue::midi::Meter {
    segue::midi::Meter {
        numerator,
        denominator,
    }
}

fn at(step: usize, numerator: u8, denominator: u16) -> StepMeter {
    StepMeter {
        step,
        meter: meter(numerator, denominator),
    }
}

/// A roll keeps the file's metre map: every change comes back from an export, a metre MIDI
/// cannot write is left out, and a roll without one is written in 4/4.
#[test]
fn exports_keep_the_metre_map() {
    let mut roll = Roll::from_notes(
        64,
        &[RollNote {
            start: 0,
            len: 4,
            pitch: 60,
            velocity: 90,
        }],
        Vec::new(),
    );
    let meters_of = |roll: &Roll| {
        let song = Song::parse(&roll.to_midi_bytes("x", None).unwrap()).unwrap();
        let back = Roll::from_song(&song, &QuantizeOptions::whole_file()).unwrap();
        (song.first_meter().unwrap(), back.meters().to_vec())
    };
    assert_eq!(meters_of(&roll), (segue::midi::Meter::COMMON, vec![]));
    let map = vec![
        at(0, 3, 4),
        at(24, 2, 4),
        at(32, 6, 8),
        at(44, 7, 6),
        at(56, 5, 4),
    ];
    roll.set_meters(map);
    let expected = vec![at(0, 3, 4), at(24, 2, 4), at(32, 6, 8), at(56, 5, 4)];
    assert_eq!(roll.meters(), expected.as_slice());
    assert_eq!(meters_of(&roll), (meter(3, 4), expected));
}

/// A continuation goes on in the metre the primer ends in; a slice starts in the metre in force
/// where it starts; appending keeps both rolls' maps.
#[test]
fn continuations_slices_and_joins_keep_the_metre() {
    let mut primer = Roll::new(32);
    primer.set_meters(vec![at(0, 3, 4), at(24, 6, 8)]);
    let mut continued = primer.clone();
    continued.continue_with(&Roll::new(16));
    assert_eq!(continued.meters(), primer.meters());
    assert_eq!(continued.meter_at(40), meter(6, 8));

    let slice = primer.slice(12, 16);
    assert_eq!(slice.meters(), &[at(0, 3, 4), at(12, 6, 8)]);

    let mut joined = Roll::new(8);
    joined.append(&slice);
    assert_eq!(joined.meters(), &[at(8, 3, 4), at(20, 6, 8)]);
    assert_eq!(joined.meter_at(0), segue::midi::Meter::COMMON);
}

/// Two tempo events at tick 0 (one per track): the start's tempo is the one playback and the
/// roll take (the last), in `segue info` too.
#[test]
fn the_tempo_at_the_start_is_the_one_playback_takes() {
    let bytes = smf(
        Format::Parallel,
        Timing::Metrical(u15::new(96)),
        &[
            vec![(0, Ev::Tempo(500_000))],
            vec![
                (0, Ev::Tempo(600_000)),
                (0, on(0, 60, 90)),
                (96, off(0, 60)),
            ],
        ],
    );
    let song = Song::parse(&bytes).unwrap();
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    assert_eq!(roll.micros_per_quarter_at(0), 600_000);
    assert!(
        (song.initial_bpm() - 100.0).abs() < 1e-9,
        "{}",
        song.initial_bpm()
    );
}

/// Damaged or unusual `.npy` files are refused saying what is wrong: a version-2 header cut
/// short is "truncated" (not an unknown version), a big-endian array names the byte order.
#[test]
fn npy_refusals_say_what_is_wrong() {
    let err = segue::npy::decode(b"\x93NUMPY\x02\x00\x00\x00").unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    let mut big_endian = segue::npy::encode_u8(1, &[0; 128]);
    let at = (big_endian.windows(3)).position(|w| w == b"|u1").unwrap();
    big_endian[at..at + 3].copy_from_slice(b">f4");
    let err = segue::npy::decode(&big_endian).unwrap_err();
    assert!(
        err.contains("'>f4'") && err.contains("little-endian"),
        "{err}"
    );
    // Bytes past the array, a key named twice (NumPy would take its last value), values that
    // are not numbers: refused, not read one way or another.
    let mut longer = segue::npy::encode_u8(1, &[0; 128]);
    longer.push(0);
    let err = segue::npy::decode(&longer).unwrap_err();
    assert!(err.contains("1 bytes follow the 128 data bytes"), "{err}");
    let npy = |header: &str, data: &[u8]| {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    };
    let twice = npy(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 128), 'shape': (2, 128), }\n",
        &[0; 256],
    );
    let err = segue::npy::decode(&twice).unwrap_err();
    assert!(err.contains("names 'shape' more than once"), "{err}");
    let floats = |x: f32| -> Vec<u8> { (0..128).flat_map(|_| x.to_le_bytes()).collect() };
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 128), }\n";
    assert!(segue::npy::decode(&npy(header, &floats(1.0))).is_ok());
    let err = segue::npy::decode(&npy(header, &floats(f32::NAN))).unwrap_err();
    assert!(err.contains("not numbers (NaN)"), "{err}");
}

/// A musician's piece keeps two notes of one pitch a 16th apart, also a 32nd off the grid:
/// rounded half up, they land a step apart. Training data rounds half to even (the paper's),
/// where the two land on one step and become one.
#[test]
fn notes_a_step_apart_off_the_grid_stay_apart_in_an_opened_piece() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(480)),
        &[vec![
            (180, on(0, 60, 90)),
            (300, off(0, 60)),
            (300, on(0, 60, 90)),
            (420, off(0, 60)),
        ]],
    );
    let starts = |opts: &QuantizeOptions| -> Vec<(usize, usize)> {
        let roll = roll_of(&bytes, opts);
        roll.notes().iter().map(|n| (n.start, n.len)).collect()
    };
    assert_eq!(starts(&QuantizeOptions::whole_file()), [(2, 1), (3, 1)]);
    assert_eq!(starts(&QuantizeOptions::default()), [(2, 1)]);
}

/// An opened piece rounds its metre changes as it rounds its notes: three bars of 3/32 (4.5
/// steps), then 4/4 with a note on its downbeat: the bar line lands on the note, half up in
/// the studio's rounding, half to even in training's.
#[test]
fn a_bar_line_off_the_grid_lands_where_its_downbeat_does() {
    let bytes = smf(
        Format::SingleTrack,
        Timing::Metrical(u15::new(480)),
        &[vec![
            (0, Ev::Meter(3, 5)),
            (540, Ev::Meter(4, 2)),
            (540, on(0, 60, 90)),
            (660, off(0, 60)),
        ]],
    );
    for opts in [QuantizeOptions::whole_file(), QuantizeOptions::default()] {
        let roll = roll_of(&bytes, &opts);
        let downbeat = roll.notes()[0].start;
        let change = roll
            .meters()
            .iter()
            .find(|m| m.meter.numerator == 4)
            .unwrap();
        assert_eq!(change.step, downbeat, "{opts:?}");
    }
}

/// A title is read as its file wrote it: UTF-8, the Latin-1 of older files (the corpus's
/// "F\xfcr Elise"), or Shift-JIS; never a terminal's control codes, never a page long.
#[test]
fn titles_read_in_their_own_encoding() {
    use segue::midi::decode_text;
    assert_eq!(decode_text("Für Elise".as_bytes()), "Für Elise");
    assert_eq!(decode_text(b"F\xfcr Elise"), "Für Elise");
    assert_eq!(
        decode_text(b"Lyrische St\xfccke, B\xe4chlein"),
        "Lyrische Stücke, Bächlein"
    );
    // Windows-1252, not ISO 8859-1: its quotes.
    assert_eq!(
        decode_text(b"\x93Moonlight\x94"),
        "\u{201c}Moonlight\u{201d}"
    );
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("ピアノ曲");
    assert_eq!(decode_text(&sjis), "ピアノ曲");
    // Kanji alone (a copyright notice): bytes Windows-1252 leaves undefined tell it apart.
    for text in ["著作権", "交響曲", "日本の夜想曲"] {
        let (kanji, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        assert_eq!(decode_text(&kanji), text);
    }
    assert_eq!(decode_text(b"\x1b[31mred\x07\nline"), "[31mred  line");
    let long = decode_text("é".repeat(1000).as_bytes());
    assert_eq!(long.chars().count(), 201);
    assert!(long.ends_with('…'));
    // And from a file's track name.
    let mut bytes = simple(96, &[(0, 96, 60, 90)]);
    let track = b"MTrk";
    let at = bytes.windows(4).position(|w| w == track).unwrap() + 8;
    let name = b"\x00\xff\x03\x0aF\xfcr Elise";
    bytes.splice(at..at, name.iter().copied());
    let len = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) + name.len() as u32;
    bytes[at - 4..at].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Song::parse(&bytes).unwrap().title.as_deref(),
        Some("Für Elise")
    );
}

/// A file's copyright notice is read, and a MIDI file made of its notes keeps it (the
/// corpus's pieces are CC BY-SA: a conversion or continuation must carry the attribution).
#[test]
fn the_copyright_notice_goes_with_the_notes() {
    let mut bytes = simple(96, &[(0, 96, 60, 90)]);
    let at = bytes.windows(4).position(|w| w == b"MTrk").unwrap() + 8;
    let notice = b"\x00\xff\x02\x1aCopyright \xa9 1997 Kr\xfcger ok";
    bytes.splice(at..at, notice.iter().copied());
    let len = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) + notice.len() as u32;
    bytes[at - 4..at].copy_from_slice(&len.to_be_bytes());
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(
        song.copyright.as_deref(),
        Some("Copyright © 1997 Krüger ok")
    );
    let roll = Roll::from_song(&song, &QuantizeOptions::default()).unwrap();
    let again = roll.to_midi_bytes("x", song.copyright.as_deref()).unwrap();
    let back = Song::parse(&again).unwrap();
    assert_eq!(back.copyright, song.copyright);
    // Written as Windows-1252 (what most readers take MIDI text for: a UTF-8 "©" shows as
    // "Â©" there), as the file had it.
    let written = |bytes: &[u8], text: &[u8]| bytes.windows(text.len()).any(|w| w == text);
    assert!(written(&again, b"Copyright \xa9 1997 Kr\xfcger ok"));
    // Text Windows-1252 cannot hold, or whose bytes there would read back as other UTF-8,
    // is written as UTF-8.
    for title in ["ピアノ曲 ©", "Ã©tude", "Étude ƒƒ"] {
        let bytes = roll.to_midi_bytes(title, None).unwrap();
        assert!(written(&bytes, title.as_bytes()), "{title}");
        assert_eq!(Song::parse(&bytes).unwrap().title.as_deref(), Some(title));
    }
    assert_eq!(
        Song::parse(&roll.to_midi_bytes("x", None).unwrap())
            .unwrap()
            .copyright,
        None
    );
}

/// Keys by tonic and back; a passage's key estimated from its pitch classes (Krumhansl and
/// Schmuckler).
#[test]
fn keys_are_named_by_tonic_and_estimated_from_pitch_classes() {
    use segue::midi::Key;
    for tonic in 0..12u8 {
        for minor in [false, true] {
            let key = Key::from_tonic(tonic, minor);
            assert_eq!(key.tonic(), tonic, "{key}");
            assert!((-5..=6).contains(&key.sharps), "{key}");
        }
    }
    let f_major = Key {
        sharps: -1,
        minor: false,
    };
    assert_eq!(f_major.tonic(), 5);
    assert_eq!(Key::from_tonic(9, true).to_string(), "A minor");
    assert_eq!(Key::from_tonic(2, false).to_string(), "D major");
    // A D major scale, the tonic and fifth longest.
    let mut weights = [0.0; 12];
    for (pc, w) in [
        (2, 4.0),
        (4, 1.0),
        (6, 2.0),
        (7, 1.0),
        (9, 3.0),
        (11, 1.0),
        (1, 1.0),
    ] {
        weights[pc] = w;
    }
    let (key, fit) = Key::estimate(&weights).unwrap();
    assert_eq!(key.to_string(), "D major");
    assert!(fit > f_major.fit(&weights) + 0.1);
    assert_eq!(Key::estimate(&[0.0; 12]), None);
}

/// A continuation keeps the primer's key signature unless its notes clearly fit another key,
/// which it is then written in from the join; a primer without a key signature gives none.
#[test]
fn a_continuation_is_written_in_the_key_its_notes_are_in() {
    use segue::midi::Key;
    use segue::roll::StepKey;
    let f_major = Key {
        sharps: -1,
        minor: false,
    };
    let chord = |pitches: &[u8], steps: usize| {
        let mut notes = Vec::new();
        for bar in 0..steps / 8 {
            for &p in pitches {
                notes.push(RollNote {
                    start: bar * 8,
                    len: 6,
                    pitch: p,
                    velocity: 80,
                });
            }
        }
        Roll::from_notes(steps, &notes, Vec::new())
    };
    let mut primer = chord(&[53, 57, 60, 65], 32); // F A C F
    primer.set_keys(vec![StepKey {
        step: 0,
        key: f_major,
    }]);
    // D major (D F# A D): another key, clearly.
    let d_major = chord(&[50, 54, 57, 62], 64);
    let mut joined = primer.clone();
    joined.continue_with(&d_major);
    let keys: Vec<String> = joined
        .keys()
        .iter()
        .map(|k| format!("{} {}", k.step, k.key))
        .collect();
    assert_eq!(keys, ["0 F major", "32 D major"]);
    // More of F major: the signature goes on.
    let mut same = primer.clone();
    same.continue_with(&chord(&[53, 57, 60, 65, 58], 64));
    assert_eq!(same.key_at(40), Some(f_major));
    assert_eq!(same.keys().len(), 1);
    // A few notes fit many keys: too few to change it.
    let mut few = primer.clone();
    few.continue_with(&chord(&[50, 54], 16));
    assert_eq!(few.keys().len(), 1);
    // No signature in the primer: none invented.
    let mut none = chord(&[53, 57, 60, 65], 32);
    none.continue_with(&d_major);
    assert!(none.keys().is_empty());
    // A primer ending mid-bar (36 steps of 4/4; 64 of 3/4): the new key begins at the next bar
    // line, the primer's goes on until then.
    let mut mid_bar = chord(&[53, 57, 60, 65], 36);
    mid_bar.set_keys(primer.keys().to_vec());
    let mut short = mid_bar.slice(0, 36);
    mid_bar.continue_with(&d_major);
    let starts: Vec<(usize, Key)> = mid_bar.keys().iter().map(|k| (k.step, k.key)).collect();
    assert_eq!(starts, [(0, f_major), (48, Key::from_tonic(2, false))]);
    let mut waltz_primer = chord(&[53, 57, 60, 65], 64);
    waltz_primer.set_keys(primer.keys().to_vec());
    waltz_primer.set_meters(vec![segue::meter::StepMeter {
        step: 0,
        meter: segue::midi::Meter {
            numerator: 3,
            denominator: 4,
        },
    }]);
    waltz_primer.continue_with(&d_major);
    assert_eq!(waltz_primer.keys()[1].step, 72);
    // A continuation too short to reach that bar line keeps the primer's key.
    short.continue_with(&chord(&[50, 54, 57, 62], 8));
    assert_eq!(short.keys().len(), 1);
    // Six sharps or six flats: flats after a key of flats (Gb major after F major), sharps
    // after sharps (F# major after G major).
    let f_sharp = chord(&[54, 58, 61, 66], 64);
    let mut after_flats = primer.clone();
    after_flats.continue_with(&f_sharp);
    assert_eq!(after_flats.keys()[1].key.to_string(), "Gb major");
    let mut after_sharps = chord(&[55, 59, 62, 67], 32);
    after_sharps.set_keys(vec![StepKey {
        step: 0,
        key: Key {
            sharps: 1,
            minor: false,
        },
    }]);
    after_sharps.continue_with(&f_sharp);
    assert_eq!(after_sharps.keys()[1].key.to_string(), "F# major");
}

/// A small file cannot make reading it take gigabytes: note-ons that never end, past
/// `MAX_KEPT_EVENTS` (as many read), are refused (12 MB of them took 23 times their size); a file of more
/// chunks than a header can count stops at 65 535 tracks, and its problems are listed up to a
/// few dozen, the rest counted (70 000 damaged chunks made 700 000 warnings).
#[test]
fn a_hostile_file_is_read_in_bounded_memory_and_words() {
    fn chunk(kind: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }
    let header = chunk(b"MThd", &[0, 0, 0, 1, 0, 96]);
    // Note-ons at delta 0 in running status: 3 bytes each, all on one channel's 128 keys;
    // as many as kept (they read), and one more (refused).
    let ons = |count: usize| {
        let mut body = vec![0x00, 0x90, 60, 100];
        for i in 1..count {
            body.extend([0x00, (i % 128) as u8, 100]);
        }
        body.extend([0x01, 0xFF, 0x2F, 0x00]);
        let mut bytes = header.clone();
        bytes.extend(chunk(b"MTrk", &body));
        bytes
    };
    let most = segue::midi::MAX_KEPT_EVENTS;
    assert_eq!(Song::parse(&ons(most)).unwrap().notes.len(), most);
    let err = Song::parse(&ons(most + 1)).unwrap_err().to_string();
    assert!(
        err.contains("more than 4000000 notes and other events"),
        "{err}"
    );
    // 70 000 chunks, each with an illegal message.
    let mut bytes = header;
    for _ in 0..70_000 {
        bytes.extend(chunk(b"MTrk", &[0x00, 0xF9, 0x00, 0xFF, 0x2F, 0x00]));
    }
    let song = Song::parse(&bytes).unwrap();
    assert_eq!(song.tracks, 65_535);
    assert!(song.warnings.len() <= 34, "{}", song.warnings.len());
    assert!(
        song.warnings
            .iter()
            .any(|w| w == "more than 65535 track chunks: the rest skipped"),
        "{:?}",
        song.warnings
    );
    assert!(
        (song.warnings.last().unwrap()).ends_with("more problems of the file not listed"),
        "{:?}",
        song.warnings
    );
}
