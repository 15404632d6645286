//! Helpers shared by the integration tests: MIDI fixtures built in code, and the shared data.
#![allow(dead_code)]

use std::path::PathBuf;

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

/// `../shared/<what>` beside the repository.
pub fn shared(what: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(what);
    // Said plainly, not as a "No such file" deep in a test.
    assert!(
        path.exists(),
        "{} is not there: these tests need the shared folder beside the checkout (see the \
         README's Tests section)",
        path.display()
    );
    path
}

/// An event at an absolute tick.
#[derive(Clone, Copy, Debug)]
pub enum Ev {
    On {
        ch: u8,
        key: u8,
        vel: u8,
    },
    Off {
        ch: u8,
        key: u8,
    },
    Tempo(u32),
    /// The sustain pedal (controller 64) on a channel: its value (64 and above: down).
    Pedal(u8, u8),
    /// Any controller on a channel: its number and value.
    Control(u8, u8, u8),
    /// A time signature: numerator and the power of two of the denominator.
    Meter(u8, u8),
    /// A key signature: sharps (negative: flats) and whether minor.
    Key(i8, bool),
}

/// A note-on event (velocity 0 is a note-off, as in the files).
pub fn on(ch: u8, key: u8, vel: u8) -> Ev {
    Ev::On { ch, key, vel }
}

/// A note-off event.
pub fn off(ch: u8, key: u8) -> Ev {
    Ev::Off { ch, key }
}

/// A format-0 file at `tpq` whose header division bytes are replaced by `hi`, `lo`.
pub fn with_division(hi: u8, lo: u8) -> Vec<u8> {
    let mut bytes = simple(96, &[(0, 96, 60, 90)]);
    bytes[12] = hi;
    bytes[13] = lo;
    bytes
}

/// Builds SMF bytes from tracks of absolute-tick events (sorted here, stable).
pub fn smf(format: Format, timing: Timing, tracks: &[Vec<(u64, Ev)>]) -> Vec<u8> {
    let mut out_tracks = Vec::new();
    for t in tracks {
        let mut t = t.clone();
        t.sort_by_key(|e| e.0);
        let mut last = 0;
        let mut track = Vec::new();
        for (tick, ev) in t {
            let kind = match ev {
                Ev::On { ch, key, vel } => TrackEventKind::Midi {
                    channel: u4::new(ch),
                    message: MidiMessage::NoteOn {
                        key: u7::new(key),
                        vel: u7::new(vel),
                    },
                },
                Ev::Off { ch, key } => TrackEventKind::Midi {
                    channel: u4::new(ch),
                    message: MidiMessage::NoteOff {
                        key: u7::new(key),
                        vel: u7::new(0),
                    },
                },
                Ev::Tempo(m) => TrackEventKind::Meta(MetaMessage::Tempo(u24::new(m))),
                Ev::Pedal(ch, value) | Ev::Control(ch, 64, value) => TrackEventKind::Midi {
                    channel: u4::new(ch),
                    message: MidiMessage::Controller {
                        controller: u7::new(64),
                        value: u7::new(value),
                    },
                },
                Ev::Control(ch, controller, value) => TrackEventKind::Midi {
                    channel: u4::new(ch),
                    message: MidiMessage::Controller {
                        controller: u7::new(controller),
                        value: u7::new(value),
                    },
                },
                Ev::Meter(n, d) => TrackEventKind::Meta(MetaMessage::TimeSignature(n, d, 24, 8)),
                Ev::Key(sharps, minor) => {
                    TrackEventKind::Meta(MetaMessage::KeySignature(sharps, minor))
                }
            };
            track.push(TrackEvent {
                delta: u28::new((tick - last) as u32),
                kind,
            });
            last = tick;
        }
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        out_tracks.push(track);
    }
    let smf = Smf {
        header: Header::new(format, timing),
        tracks: out_tracks,
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    bytes
}

/// A format-0 file at `tpq` with notes (start tick, end tick, pitch, velocity) on channel 1.
pub fn simple(tpq: u16, notes: &[(u64, u64, u8, u8)]) -> Vec<u8> {
    let mut evs = Vec::new();
    for &(s, e, key, vel) in notes {
        evs.push((s, Ev::On { ch: 0, key, vel }));
        evs.push((e, Ev::Off { ch: 0, key }));
    }
    smf(Format::SingleTrack, Timing::Metrical(u15::new(tpq)), &[evs])
}

/// Three "composers" with distinct figures: low arpeggios, high repeated chords, a scale.
pub fn write_tiny_corpus(dir: &std::path::Path) {
    for (c, name) in ["arps", "chords", "scales"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for piece in 0..3u64 {
            let mut notes = Vec::new();
            for i in 0..96u64 {
                let t = i * 24; // 16th notes at 96 ticks per quarter
                match c {
                    0 => notes.push((t, t + 24, 40 + (i % 4 * 4) as u8 + piece as u8, 80)),
                    1 => {
                        if i % 4 == 0 {
                            for k in [72u8, 76, 79] {
                                notes.push((t, t + 72, k + piece as u8, 70));
                            }
                        }
                    }
                    _ => notes.push((t, t + 48, 55 + (i % 12) as u8 + piece as u8, 90)),
                }
            }
            std::fs::write(
                dir.join(name).join(format!("p{piece}.mid")),
                simple(96, &notes),
            )
            .unwrap();
        }
    }
}
