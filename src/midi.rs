//! Standard MIDI files <-> timed notes and a tempo map (via `midly`).
//!
//! Reading keeps ticks as they are in the file (so tempo changes never move the grid) and pairs
//! note-ons with note-offs per track, channel and pitch, first in first out. A note-on with
//! velocity 0 is a note-off. Format 0 and 1 tracks are merged; format 2 tracks are independent
//! sequences and are played one after another. SMPTE-timed files are read on a 120 bpm grid
//! (they carry no musical tempo). The reader is lenient like the good readers of the field: a
//! track that is corrupt half-way keeps the events before the damage, and the damage is listed
//! in [`Song::warnings`]; a file with nothing readable is refused with a clear error.

use std::collections::VecDeque;
use std::path::Path;

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Fps, Header, MetaMessage, MidiMessage, Timing, TrackEvent, TrackEventKind};

use crate::error::{Error, MidiProblem, Result};
use crate::fsutil;

/// The General MIDI percussion channel (channel 10, zero-based 9).
pub const DRUM_CHANNEL: u8 = 9;
/// Tempo used where a file gives none: 120 bpm.
pub const DEFAULT_MICROS_PER_QUARTER: u32 = 500_000;

/// One note, in the file's ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// Start tick (absolute).
    pub start: u64,
    /// End tick (absolute, >= start).
    pub end: u64,
    /// MIDI pitch 0..=127.
    pub pitch: u8,
    /// Note-on velocity 1..=127.
    pub velocity: u8,
    /// MIDI channel 0..=15 (9 is drums).
    pub channel: u8,
    /// Index of the track the note came from.
    pub track: u16,
}

/// A tempo change at an absolute tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempoChange {
    /// Tick it takes effect at (absolute).
    pub tick: u64,
    /// The tempo, in microseconds per quarter note.
    pub micros_per_quarter: u32,
}

/// A time signature at an absolute tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSignature {
    /// Tick it takes effect at (absolute).
    pub tick: u64,
    /// Beats a bar (3 for 3/4).
    pub numerator: u8,
    /// The denominator itself (4 for x/4), not its power of two.
    pub denominator: u16,
}

/// A key signature: sharps (1..=7) or flats (-7..=-1) in the signature, and whether the key
/// is minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// Sharps (positive) or flats (negative) in the signature, -7..=7.
    pub sharps: i8,
    /// Whether the key is minor.
    pub minor: bool,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MAJOR: [&str; 15] = [
            "Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#",
        ];
        const MINOR: [&str; 15] = [
            "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#", "G#", "D#", "A#",
        ];
        let names = if self.minor { MINOR } else { MAJOR };
        let name = names[(self.sharps.clamp(-7, 7) + 7) as usize];
        write!(f, "{name} {}", if self.minor { "minor" } else { "major" })
    }
}

/// Krumhansl and Kessler's key profiles (how well each pitch class above the tonic fits a major
/// and a minor key), what [`Key::estimate`] correlates a passage's pitch classes with.
const MAJOR_PROFILE: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const MINOR_PROFILE: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

impl Key {
    /// The pitch class of the key's tonic (0 = C).
    pub fn tonic(self) -> u8 {
        let major = (i32::from(self.sharps) * 7).rem_euclid(12);
        // A minor key's tonic lies a minor third below its relative major's.
        ((major + if self.minor { 9 } else { 0 }) % 12) as u8
    }

    /// The key of tonic `tonic` (a pitch class), spelled with at most 5 flats or 6 sharps.
    pub fn from_tonic(tonic: u8, minor: bool) -> Key {
        let major = (i32::from(tonic) + if minor { 3 } else { 0 }) % 12;
        // Sharps of a major key: its tonic's place in the circle of fifths (7 is its own
        // inverse modulo 12).
        let sharps = (major * 7) % 12;
        Key {
            sharps: if sharps > 6 { sharps - 12 } else { sharps } as i8,
            minor,
        }
    }

    /// The key spelled as `like` is where its two spellings are equally simple (F# or Gb major,
    /// D# or Eb minor: six sharps or six flats): with flats after a key of flats, else with
    /// sharps, so that a notation program does not turn five flats into six sharps.
    pub fn spelled_like(self, like: Key) -> Key {
        match self.sharps {
            6 | -6 => Key {
                sharps: if like.sharps < 0 { -6 } else { 6 },
                ..self
            },
            _ => self,
        }
    }

    /// How well a passage with these pitch-class weights fits the key: the correlation of the
    /// weights with the key's profile (-1..=1).
    pub fn fit(self, weights: &[f64; 12]) -> f64 {
        let profile = if self.minor {
            &MINOR_PROFILE
        } else {
            &MAJOR_PROFILE
        };
        let tonic = usize::from(self.tonic());
        let rotated: Vec<f64> = (0..12).map(|pc| profile[(pc + 12 - tonic) % 12]).collect();
        crate::correlation::pearson(weights, &rotated).unwrap_or(0.0)
    }

    /// The key a passage with these pitch-class weights fits best and how well (the
    /// Krumhansl-Schmuckler estimate); `None` for a passage without notes.
    pub fn estimate(weights: &[f64; 12]) -> Option<(Key, f64)> {
        if weights.iter().sum::<f64>() <= 0.0 {
            return None;
        }
        (0..12u8)
            .flat_map(|tonic| [false, true].map(|minor| Key::from_tonic(tonic, minor)))
            .map(|key| (key, key.fit(weights)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// A key signature at an absolute tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySignature {
    /// Tick it takes effect at (absolute).
    pub tick: u64,
    /// The key signature.
    pub key: Key,
}

/// A metre: beats a bar over the beat's note value (3/4, 6/8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meter {
    /// Beats a bar (3 for 3/4).
    pub numerator: u8,
    /// The note value itself (4 for x/4), a power of two.
    pub denominator: u16,
}

impl Meter {
    /// 4/4, what a file that says nothing is taken to be in.
    pub const COMMON: Meter = Meter {
        numerator: 4,
        denominator: 4,
    };
}

/// The file's layout as declared in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmfFormat {
    /// Format 0: one track.
    SingleTrack,
    /// Format 1: simultaneous tracks.
    Parallel,
    /// Format 2: independent sequences (read one after another).
    Sequential,
}

impl SmfFormat {
    /// The number the header stores.
    pub fn number(self) -> u8 {
        match self {
            SmfFormat::SingleTrack => 0,
            SmfFormat::Parallel => 1,
            SmfFormat::Sequential => 2,
        }
    }
}

/// How the file counts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Division {
    /// Ticks per quarter note.
    Metrical(u16),
    /// SMPTE frames per second and ticks per frame.
    Timecode {
        /// Frames per second (29 for 29.97 drop-frame).
        fps: u8,
        /// Ticks per frame.
        subframes: u8,
    },
}

/// A MIDI file read into notes, tempo and meter, all in absolute ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// The file's format (0, 1 or 2).
    pub format: SmfFormat,
    /// How the file counts time, as its header declares.
    pub division: Division,
    /// Ticks per quarter note used for quantization (for SMPTE files: the ticks of one
    /// quarter note at 120 bpm, its ticks scaled to whole ones as they are read).
    pub ticks_per_quarter: u32,
    /// Number of track chunks read.
    pub tracks: usize,
    /// Notes sorted by start tick, then pitch.
    pub notes: Vec<Note>,
    /// Tempo changes sorted by tick (may be empty: 120 bpm).
    pub tempo: Vec<TempoChange>,
    /// Time signatures sorted by tick.
    pub time_signatures: Vec<TimeSignature>,
    /// Key signatures sorted by tick (a notation program spells the notes by them).
    pub key_signatures: Vec<KeySignature>,
    /// The last tick of any event.
    pub end_tick: u64,
    /// The first track or sequence name found, if any.
    pub title: Option<String>,
    /// The first copyright notice found, if any (an export of the notes keeps it).
    pub copyright: Option<String>,
    /// Damage that was skipped while reading (the file is still usable).
    pub warnings: Vec<String>,
    /// Where each channel's sustain pedal (controller 64) is held down, sorted by channel
    /// and time. Notes keep their written lengths ([`Song::notes`]); a roll holds them on
    /// through the pedal only when asked ([`Song::pedalled_notes`]).
    pub pedal: Vec<PedalHold>,
}

/// A span in which a channel's sustain pedal is held down: from the tick it went down to the
/// tick it was lifted (the end of the file's last note, for a pedal never lifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PedalHold {
    /// MIDI channel 0..=15.
    pub channel: u8,
    /// The tick the pedal went down.
    pub down: u64,
    /// The tick it was lifted (> `down`, or = for a press at the file's very end).
    pub up: u64,
}

/// A bounded reader of `fsutil` ([`fsutil::read_at_most`], [`fsutil::read_named_at_most`]).
type ReadAtMost = fn(&Path, u64) -> Result<std::result::Result<Vec<u8>, u64>>;

impl Song {
    /// The largest file [`Song::read`] reads: 256 MiB, far beyond any piece (the corpus's
    /// largest file is 155 KiB), so that a wrong file dropped on the window is not read whole.
    pub const MAX_FILE_BYTES: u64 = 256 << 20;

    /// How often a sustain pedal goes down, on any channel (a channel's changes in every track
    /// merged by time: a pedal repeated in two tracks is pressed once).
    pub fn pedal_presses(&self) -> usize {
        self.pedal.len()
    }

    /// Says what became of its sustain pedal, if it has one: held notes on through it
    /// (`applied`, [`Song::pedalled_notes`]), or not (why its notes may sound shorter than in
    /// another player).
    pub fn pedal_said(&self, applied: bool) -> Option<String> {
        let presses = match self.pedal_presses() {
            0 => return None,
            1 => "1 press".to_string(),
            n => format!("{n} presses"),
        };
        Some(if applied {
            format!(
                "its sustain pedal ({presses}) is applied: a note it holds sounds until the \
                 pedal is lifted or its key is struck again"
            )
        } else {
            format!(
                "its sustain pedal ({presses}) is not applied: notes sound as long as they are \
                 written"
            )
        })
    }

    /// The notes as a piano sounds them with the sustain pedal: a note whose key is released
    /// while its channel's pedal is down sounds on until the pedal is lifted, or until its key
    /// is struck again, whichever comes first (a note released as the pedal goes down, at
    /// the same tick, is caught by it). A channel without a pedal of its own follows the
    /// others' (one piano spread over several channels, each hand or voice on its own, has
    /// one pedal), but for the drums (channel 10). Sorted as [`Song::notes`].
    pub fn pedalled_notes(&self) -> Vec<Note> {
        let mut notes = self.notes.clone();
        if self.pedal.is_empty() {
            return notes;
        }
        // Every channel's holds merged (but the drums'), for the channels without their own.
        let mut shared: Vec<PedalHold> = Vec::new();
        let mut by_time: Vec<PedalHold> = (self.pedal.iter())
            .filter(|h| h.channel != DRUM_CHANNEL)
            .copied()
            .collect();
        by_time.sort_by_key(|h| (h.down, h.up));
        for hold in by_time {
            match shared.last_mut() {
                Some(last) if hold.down < last.up => last.up = last.up.max(hold.up),
                _ => shared.push(PedalHold {
                    channel: u8::MAX,
                    ..hold
                }),
            }
        }
        // Walking back from the last note: the next start of each key (channel, pitch).
        let mut next_start = vec![u64::MAX; 16 * 128];
        for n in notes.iter_mut().rev() {
            let slot = usize::from(n.channel & 15) * 128 + usize::from(n.pitch & 127);
            let next = std::mem::replace(&mut next_start[slot], n.start);
            // The holds of this channel begin at its first hold; the one that may hold the
            // note is the last that went down at or before the note's end.
            let first = self.pedal.partition_point(|h| h.channel < n.channel);
            let holds = &self.pedal[first..];
            let holds = match &holds[..holds.partition_point(|h| h.channel == n.channel)] {
                [] if n.channel == DRUM_CHANNEL => continue,
                [] => &shared[..],
                own => own,
            };
            let before = holds.partition_point(|h| h.down <= n.end);
            if let Some(hold) = before.checked_sub(1).map(|i| holds[i])
                && n.end < hold.up
            {
                n.end = n.end.max(hold.up.min(next));
            }
        }
        notes.sort_by_key(|n| (n.start, n.pitch, n.end, n.channel, n.track));
        notes
    }

    /// Says how many drum notes (channel 10) a reading that leaves them out left out, if any.
    pub fn drums_left_out(&self) -> Option<String> {
        match self.drum_notes() {
            0 => None,
            1 => Some("its drum note (channel 10) is left out".into()),
            n => Some(format!("its {n} drum notes (channel 10) are left out")),
        }
    }

    /// How many of its notes are on channel 10 (drums).
    pub fn drum_notes(&self) -> usize {
        (self.notes.iter())
            .filter(|n| n.channel == DRUM_CHANNEL)
            .count()
    }

    /// Reads and parses a MIDI file (at most [`Song::MAX_FILE_BYTES`]).
    pub fn read(path: &Path) -> Result<Song> {
        let bytes = Self::read_bytes(path)?;
        Song::parse(&bytes).map_err(|p| Error::midi(path, p))
    }

    /// As [`Song::read`], for a file the user named on the command line: a pipe is read too
    /// (`segue info <(...)`), see [`fsutil::read_named_at_most`].
    pub fn read_named(path: &Path) -> Result<Song> {
        let bytes = Self::bytes_by(path, fsutil::read_named_at_most)?;
        Song::parse(&bytes).map_err(|p| Error::midi(path, p))
    }

    /// The bytes of a MIDI file, refused from its size where it has more than
    /// [`Song::MAX_FILE_BYTES`] (it is then not read).
    pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
        Self::bytes_by(path, fsutil::read_at_most)
    }

    /// The bytes `read` gives of at most [`Song::MAX_FILE_BYTES`], a larger file refused.
    fn bytes_by(path: &Path, read: ReadAtMost) -> Result<Vec<u8>> {
        let limit = Self::MAX_FILE_BYTES;
        read(path, limit)?
            .map_err(|bytes| Error::midi(path, MidiProblem::TooLarge { bytes, limit }))
    }

    /// Parses the bytes of a Standard MIDI File (also RIFF-wrapped `.rmi`).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Song, MidiProblem> {
        if bytes.is_empty() {
            return Err(MidiProblem::Empty);
        }
        check_smpte_division(bytes)?;
        let (header, track_iter) =
            midly::parse(bytes).map_err(|e| MidiProblem::NotMidi(e.to_string()))?;
        let (division, ticks_per_quarter, tick_scale) = division_of(&header)?;
        let format = match header.format {
            Format::SingleTrack => SmfFormat::SingleTrack,
            Format::Parallel => SmfFormat::Parallel,
            Format::Sequential => SmfFormat::Sequential,
        };

        let mut song = Song {
            format,
            division,
            ticks_per_quarter,
            tracks: 0,
            notes: Vec::new(),
            tempo: Vec::new(),
            time_signatures: Vec::new(),
            key_signatures: Vec::new(),
            end_tick: 0,
            title: None,
            copyright: None,
            warnings: truncated_chunks(bytes),
            pedal: Vec::new(),
        };
        // Open notes per (channel, pitch): FIFO of (start tick, velocity).
        let mut open: Vec<VecDeque<(u64, u8)>> = vec![VecDeque::new(); 16 * 128];
        // Each sustain-pedal change: (channel, tick, down), counted once all tracks are read.
        let mut pedal: Vec<(u8, u64, bool)> = Vec::new();
        let mut offset = 0u64;
        // Problems past the first REPORTED_WARNINGS of the file, counted (a file of a million
        // damaged chunks must not make a million warnings).
        let mut unlisted = 0usize;
        let mut warn = |warnings: &mut Vec<String>, text: String| {
            if warnings.len() < REPORTED_WARNINGS {
                warnings.push(text);
            } else {
                unlisted += 1;
            }
        };
        // Events read since the last look at how much is kept.
        let mut events_since_check = 0usize;
        for (index, track) in track_iter.enumerate() {
            // A header counts at most 65 535 tracks; chunks past as many are not a piece's.
            if index >= usize::from(u16::MAX) {
                song.warnings.push(format!(
                    "more than {} track chunks: the rest skipped",
                    u16::MAX
                ));
                break;
            }
            let events = match track {
                Ok(events) => events,
                Err(e) => {
                    warn(
                        &mut song.warnings,
                        format!("track {index}: unreadable chunk skipped ({e})"),
                    );
                    continue;
                }
            };
            song.tracks += 1;
            let track_no = u16::try_from(index).unwrap_or(u16::MAX);
            // Each pattern of a format 2 file is a piece of its own: one that states no tempo
            // or metre of its own plays at MIDI's 120 bpm in 4/4, not at the previous pattern's
            // (what it states at its start comes after these, and counts).
            if format == SmfFormat::Sequential && song.tracks > 1 {
                if !song.tempo.is_empty() && matches!(song.division, Division::Metrical(_)) {
                    song.tempo.push(TempoChange {
                        tick: offset,
                        micros_per_quarter: DEFAULT_MICROS_PER_QUARTER,
                    });
                }
                if !song.time_signatures.is_empty() {
                    song.time_signatures.push(TimeSignature {
                        tick: offset,
                        numerator: 4,
                        denominator: 4,
                    });
                }
            }
            let mut tick = offset;
            let mut events = events;
            // Messages skipped in this track; the first few are reported one by one.
            let mut skipped = 0usize;
            loop {
                let before = events.unread();
                let running = events.running_status();
                match events.next() {
                    Some(Ok(event)) => {
                        tick = advance(tick, event.delta.as_int(), tick_scale);
                        song.handle_event(event.kind, tick, track_no, &mut open, &mut pedal);
                        events_since_check += 1;
                        if events_since_check == 1 << 16 {
                            events_since_check = 0;
                            song.check_kept_events(&open, &pedal)?;
                        }
                    }
                    // Only with midly's `strict` feature, which Segue does not enable.
                    Some(Err(_)) => break,
                    None if before.is_empty() => break,
                    None => match skip_illegal_message(before) {
                        // midly stops a track at an illegal status byte or an unreadable meta
                        // event; skip it and go on.
                        Some(m) => {
                            tick = advance(tick, m.delta, tick_scale);
                            skipped += 1;
                            if skipped <= REPORTED_SKIPS {
                                let what = match m.meta {
                                    Some(kind) => format!("unreadable meta event 0x{kind:02X}"),
                                    None => format!("illegal message 0x{:02X}", m.status),
                                };
                                warn(
                                    &mut song.warnings,
                                    format!("track {index}: {what} at tick {tick} skipped"),
                                );
                            }
                            events = midly::EventIter::new(m.rest);
                            // Realtime bytes leave running status alone; system common and
                            // meta events cancel it.
                            if m.status >= 0xF8 && m.status != 0xFF {
                                *events.running_status_mut() = running;
                            }
                        }
                        None => {
                            warn(
                                &mut song.warnings,
                                format!(
                                    "track {index}: corrupt event after tick {tick}, the last {} \
                                     bytes of the track skipped",
                                    before.len()
                                ),
                            );
                            break;
                        }
                    },
                }
            }
            if skipped > REPORTED_SKIPS {
                warn(
                    &mut song.warnings,
                    format!(
                        "track {index}: {} more unreadable or illegal messages skipped",
                        skipped - REPORTED_SKIPS
                    ),
                );
            }
            // Notes never switched off end with their track.
            for (key, queue) in open.iter_mut().enumerate() {
                for (start, velocity) in queue.drain(..) {
                    if tick > start {
                        song.notes.push(Note {
                            start,
                            end: tick,
                            pitch: (key % 128) as u8,
                            velocity,
                            channel: (key / 128) as u8,
                            track: track_no,
                        });
                    }
                }
            }
            song.end_tick = song.end_tick.max(tick);
            if format == SmfFormat::Sequential {
                offset = tick;
            }
        }
        // Counted every 65 536 events while reading, and once more for those after the last.
        song.check_kept_events(&open, &pedal)?;
        if unlisted > 0 {
            song.warnings
                .push(format!("{unlisted} more problems of the file not listed"));
        }
        // A press is a channel's pedal going down, its changes in every track merged by time (a
        // file that repeats a channel's pedal in two tracks presses it once).
        pedal.sort_by_key(|&(channel, tick, _)| (channel, tick));
        let mut down: [Option<u64>; 16] = [None; 16];
        for (channel, tick, now) in pedal {
            let held = &mut down[usize::from(channel)];
            match (*held, now) {
                (None, true) => *held = Some(tick),
                (Some(since), false) => {
                    song.pedal.push(PedalHold {
                        channel,
                        down: since,
                        up: tick,
                    });
                    *held = None;
                }
                _ => {}
            }
        }
        // Held to the end of the last note (not to the file's last event, which may lie
        // hours after it).
        let last_note_end = song.notes.iter().map(|n| n.end).max().unwrap_or(0);
        for (channel, held) in (0u8..).zip(down) {
            if let Some(since) = held {
                song.pedal.push(PedalHold {
                    channel,
                    down: since,
                    up: last_note_end.max(since),
                });
            }
        }
        song.pedal.sort_by_key(|h| (h.channel, h.down));
        if song.tracks == 0 {
            let why = song
                .warnings
                .first()
                .cloned()
                .unwrap_or_else(|| "the header declares tracks but none follow".into());
            return Err(MidiProblem::NoTracks(why));
        }
        song.notes
            .sort_by_key(|n| (n.start, n.pitch, n.end, n.channel, n.track));
        song.tempo.sort_by_key(|t| t.tick);
        song.time_signatures.sort_by_key(|t| t.tick);
        song.key_signatures.sort_by_key(|k| k.tick);
        Ok(song)
    }

    /// Refuses a file once reading has kept more than [`MAX_KEPT_EVENTS`] notes and other
    /// events: the notes, those still sounding, the pedal's changes, and the tempo, metre and
    /// key changes.
    fn check_kept_events(
        &self,
        open: &[VecDeque<(u64, u8)>],
        pedal: &[(u8, u64, bool)],
    ) -> std::result::Result<(), MidiProblem> {
        let sounding: usize = open.iter().map(VecDeque::len).sum();
        let kept = self.notes.len()
            + sounding
            + pedal.len()
            + self.tempo.len()
            + self.time_signatures.len()
            + self.key_signatures.len();
        if kept > MAX_KEPT_EVENTS {
            return Err(MidiProblem::TooManyEvents {
                limit: MAX_KEPT_EVENTS,
            });
        }
        Ok(())
    }

    fn handle_event(
        &mut self,
        kind: TrackEventKind,
        tick: u64,
        track: u16,
        open: &mut [VecDeque<(u64, u8)>],
        pedal: &mut Vec<(u8, u64, bool)>,
    ) {
        match kind {
            TrackEventKind::Midi { channel, message } => {
                let channel = channel.as_int();
                let (key, on_velocity) = match message {
                    MidiMessage::NoteOn { key, vel } => (key.as_int(), vel.as_int()),
                    MidiMessage::NoteOff { key, .. } => (key.as_int(), 0),
                    MidiMessage::Controller { controller, value } => {
                        match controller.as_int() {
                            64 => pedal.push((channel, tick, value.as_int() >= 64)),
                            // Reset All Controllers lifts the pedal.
                            121 => pedal.push((channel, tick, false)),
                            // All Sound Off, All Notes Off, and the mode messages that imply
                            // it (omni off/on, mono, poly) end every note of the channel.
                            120 | 123..=127 => self.end_channel_notes(channel, tick, track, open),
                            _ => {}
                        }
                        return;
                    }
                    _ => return,
                };
                let slot = usize::from(channel) * 128 + usize::from(key);
                if on_velocity > 0 {
                    open[slot].push_back((tick, on_velocity));
                } else if let Some((start, velocity)) = open[slot].pop_front() {
                    self.notes.push(Note {
                        start,
                        end: tick,
                        pitch: key,
                        velocity,
                        channel,
                        track,
                    });
                }
            }
            TrackEventKind::Meta(meta) => match meta {
                // SMPTE ticks are already seconds: a tempo event does not change them.
                MetaMessage::Tempo(t)
                    if t.as_int() > 0 && matches!(self.division, Division::Metrical(_)) =>
                {
                    self.tempo.push(TempoChange {
                        tick,
                        micros_per_quarter: t.as_int(),
                    })
                }
                MetaMessage::TimeSignature(num, den_pow, _, _) if num > 0 && den_pow < 16 => {
                    self.time_signatures.push(TimeSignature {
                        tick,
                        numerator: num,
                        denominator: 1u16 << den_pow,
                    })
                }
                MetaMessage::KeySignature(sharps, minor) if (-7..=7).contains(&sharps) => {
                    self.key_signatures.push(KeySignature {
                        tick,
                        key: Key { sharps, minor },
                    })
                }
                MetaMessage::Copyright(text) if self.copyright.is_none() => {
                    let text = decode_text_within(text, MAX_NOTICE_CHARS);
                    if !text.is_empty() {
                        self.copyright = Some(text);
                    }
                }
                MetaMessage::TrackName(name) if self.title.is_none() => {
                    let name = decode_text(name);
                    if !name.is_empty() {
                        self.title = Some(name);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Ends at `tick` every note of `channel` still sounding in `track` (in pitch order, each
    /// pitch's notes in the order they started), as its note-offs would.
    fn end_channel_notes(
        &mut self,
        channel: u8,
        tick: u64,
        track: u16,
        open: &mut [VecDeque<(u64, u8)>],
    ) {
        let first = usize::from(channel) * 128;
        for (pitch, queue) in open[first..first + 128].iter_mut().enumerate() {
            for (start, velocity) in queue.drain(..) {
                self.notes.push(Note {
                    start,
                    end: tick,
                    pitch: pitch as u8,
                    velocity,
                    channel,
                    track,
                });
            }
        }
    }

    /// The metre the piece starts in, if the file says (a time signature at its first tick;
    /// without one MIDI means 4/4).
    pub fn first_meter(&self) -> Option<Meter> {
        self.time_signatures
            .first()
            .filter(|t| t.tick == 0)
            .map(|t| Meter {
                numerator: t.numerator,
                denominator: t.denominator,
            })
    }

    /// Beats per minute at the start: of the tempo events at tick 0 the last, as playback and
    /// the roll take it (120 when there is none).
    pub fn initial_bpm(&self) -> f64 {
        let micros = (self.tempo.iter())
            .take_while(|t| t.tick == 0)
            .last()
            .map_or(DEFAULT_MICROS_PER_QUARTER, |t| t.micros_per_quarter);
        60_000_000.0 / f64::from(micros)
    }

    /// Length of the song in seconds, following the tempo map.
    pub fn duration_seconds(&self) -> f64 {
        let tpq = f64::from(self.ticks_per_quarter);
        let mut seconds = 0.0;
        let mut last_tick = 0u64;
        let mut micros = f64::from(DEFAULT_MICROS_PER_QUARTER);
        for t in self.tempo.iter().filter(|t| t.tick <= self.end_tick) {
            seconds += (t.tick - last_tick) as f64 / tpq * micros / 1e6;
            last_tick = t.tick;
            micros = f64::from(t.micros_per_quarter);
        }
        seconds + (self.end_tick - last_tick) as f64 / tpq * micros / 1e6
    }
}

/// Most characters of a title kept (one longer is cut, with an ellipsis).
const MAX_TITLE_CHARS: usize = 200;

/// Most characters of a copyright notice kept (it goes on into exports: long enough for any
/// licence line, short enough never to flood a terminal).
const MAX_NOTICE_CHARS: usize = 2000;

/// A text event's bytes as text: UTF-8 where they are; else Shift-JIS where they read as such
/// and hold kana, kanji or bytes Windows-1252 leaves undefined (Japanese files); else
/// Windows-1252, the Latin-1 of most older files ("F\xfcr
/// Elise"). Control characters (a terminal's colour codes, line breaks) become spaces, and the
/// text is trimmed and cut to 200 characters.
pub fn decode_text(bytes: &[u8]) -> String {
    decode_text_within(bytes, MAX_TITLE_CHARS)
}

/// [`decode_text`], cut to `max_chars`.
fn decode_text_within(bytes: &[u8], max_chars: usize) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => {
            let latin = encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0;
            // Bytes Windows-1252 leaves undefined (read as C1 controls) are no Latin text: kanji
            // without kana ("著作権") hold them.
            let not_latin = latin.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c));
            let kana = |c: &char| ('\u{3041}'..='\u{30ff}').contains(c);
            let kanji = |c: &char| ('\u{4e00}'..='\u{9fff}').contains(c);
            let half_width = |c: &char| ('\u{ff61}'..='\u{ff9f}').contains(c);
            encoding_rs::SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(bytes)
                .filter(|t| {
                    // Kana, or two kanji or more and no half-width katakana (what Latin
                    // letters with accents read as in Shift-JIS).
                    not_latin
                        || t.chars().any(|c| kana(&c))
                        || (t.chars().filter(kanji).count() >= 2
                            && !t.chars().any(|c| half_width(&c)))
                })
                .unwrap_or(latin)
        }
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", clean[..cut].trim_end()),
        None => clean.to_string(),
    }
}

/// Refuses an SMPTE division whose frame-rate byte is -128: midly 0.5 negates it as an `i8`,
/// which overflows (found by fuzzing).
fn check_smpte_division(bytes: &[u8]) -> std::result::Result<(), MidiProblem> {
    let head = &bytes[..bytes.len().min(64)];
    if let Some(at) = head.windows(4).position(|w| w == b"MThd")
        && let (Some(&hi), Some(&lo)) = (bytes.get(at + 12), bytes.get(at + 13))
        && hi == 0x80
    {
        return Err(MidiProblem::BadTimecode {
            fps: 128,
            subframes: lo,
        });
    }
    Ok(())
}

/// Warnings for track chunks that declare more bytes than the file holds (a download or copy
/// cut short): the reader keeps what is there, so the loss must be said, not silent.
fn truncated_chunks(bytes: &[u8]) -> Vec<String> {
    let mut warnings = Vec::new();
    if !bytes.starts_with(b"MThd") {
        return warnings;
    }
    let mut at = 0usize;
    let mut track = 0usize;
    while let Some(head) = bytes.get(at..at + 8) {
        let declared = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let held = bytes.len() - (at + 8);
        let is_track = &head[..4] == b"MTrk";
        if declared > held {
            if is_track {
                warnings.push(format!(
                    "track {track}: truncated: the chunk declares {declared} bytes, the file \
                     holds {held}; the notes after the cut are lost"
                ));
            }
            break;
        }
        track += usize::from(is_track);
        at += 8 + declared;
    }
    warnings
}

/// The division, the ticks per quarter for quantization, and a factor applied to every delta.
fn division_of(header: &Header) -> std::result::Result<(Division, u32, u64), MidiProblem> {
    match header.timing {
        Timing::Metrical(tpq) => {
            let tpq = tpq.as_int();
            if tpq == 0 {
                return Err(MidiProblem::BadDivision(0));
            }
            Ok((Division::Metrical(tpq), u32::from(tpq), 1))
        }
        Timing::Timecode(fps, subframes) => {
            let fps_int = fps.as_int();
            if subframes == 0 || fps_int == 0 {
                return Err(MidiProblem::BadTimecode {
                    fps: fps_int,
                    subframes,
                });
            }
            // A quarter note at 120 bpm lasts half a second: fps * subframes / 2 ticks. Ticks
            // are scaled so that this stays an integer: doubled for odd products, and for
            // 29.97 drop-frame (30 / 1.001 frames a second; midly's `as_int` says 29) counted
            // as 30000 * subframes per 2002 ticks.
            let (per_second, scale) = match fps {
                Fps::Fps29 => (30_000 * u32::from(subframes), 2002),
                _ => (u32::from(fps_int) * u32::from(subframes), 2),
            };
            Ok((
                Division::Timecode {
                    fps: fps_int,
                    subframes,
                },
                per_second,
                scale,
            ))
        }
    }
}

/// The most notes and other events (pedal, tempo, metre and key changes) a file may hold, so
/// that reading one takes a few hundred megabytes at most (a file of note-ons that never end
/// took 23 times its size): over 200 times the corpus's largest piece (17 225 notes); a
/// "Black MIDI" of tens of millions of notes is refused.
pub const MAX_KEPT_EVENTS: usize = 4_000_000;

/// The problems of a file listed one by one; the rest are counted in one warning.
const REPORTED_WARNINGS: usize = 32;

/// Skipped messages reported one by one per track; the rest are counted in one warning (a
/// file of millions of stray bytes must not make millions of warnings).
const REPORTED_SKIPS: usize = 8;

/// `tick` moved on by `delta` ticks of the file, `scale` of ours each; a file long enough to
/// overflow stops at `u64::MAX` (and is then refused as too long) rather than wrapping.
fn advance(tick: u64, delta: u32, scale: u64) -> u64 {
    tick.saturating_add(u64::from(delta).saturating_mul(scale))
}

/// A message midly could not read but whose length is known, so the track goes on after it.
struct Skipped<'a> {
    /// Its delta time.
    delta: u32,
    /// Its status byte.
    status: u8,
    /// The type of a meta event (status 0xFF).
    meta: Option<u8>,
    /// The bytes after it.
    rest: &'a [u8],
}

/// A variable-length number (at most 4 bytes) at the start of `raw`, and the bytes it took.
fn read_varlen(raw: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, &b) in raw.iter().take(4).enumerate() {
        value = (value << 7) | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// If `raw` starts with a delta time and either a system common or realtime status byte
/// (illegal in a MIDI file) or a meta event midly refuses for its content (an SMPTE offset
/// with an out-of-range frame, a key signature of one byte), returns what to skip.
fn skip_illegal_message(raw: &[u8]) -> Option<Skipped<'_>> {
    let (delta, i) = read_varlen(raw)?;
    let status = *raw.get(i)?;
    if status == 0xFF {
        let meta = *raw.get(i + 1)?;
        let (len, n) = read_varlen(raw.get(i + 2..)?)?;
        let end = (i + 2 + n).checked_add(usize::try_from(len).ok()?)?;
        return Some(Skipped {
            delta,
            status,
            meta: Some(meta),
            rest: raw.get(end..)?,
        });
    }
    let data_bytes = match status {
        0xF1 | 0xF3 => 1,
        0xF2 => 2,
        0xF4..=0xF6 | 0xF8..=0xFE => 0,
        _ => return None,
    };
    let rest = raw.get(i + 1 + data_bytes..)?;
    // Data bytes must have the top bit clear.
    if raw[i + 1..i + 1 + data_bytes].iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    Some(Skipped {
        delta,
        status,
        meta: None,
        rest,
    })
}

/// A note to write, in steps or ticks chosen by the caller (see [`write_smf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutNote {
    /// Start, in steps or ticks.
    pub start: u64,
    /// End, in the same unit (a note that does not end after its start is not written).
    pub end: u64,
    /// MIDI pitch 0..=127.
    pub pitch: u8,
    /// Note-on velocity 1..=127 (others are clamped).
    pub velocity: u8,
}

/// Text as MIDI files hold it: Windows-1252 (Latin-1 with curly quotes and the euro), as most
/// readers take it, where every character has a place there; else UTF-8 (which
/// [`decode_text`] reads first).
pub(crate) fn encode_text(text: &str) -> std::borrow::Cow<'_, [u8]> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    // Only bytes that read back as the same text ([`decode_text`] tries UTF-8 and Shift-JIS
    // first: "Ã©" would read as "é", "ƒƒ" as kana) are written as Windows-1252.
    let same = |b: &[u8]| {
        decode_text_within(b, usize::MAX) == decode_text_within(text.as_bytes(), usize::MAX)
    };
    if unmappable || (!bytes.is_ascii() && !same(&bytes)) {
        std::borrow::Cow::Borrowed(text.as_bytes())
    } else {
        bytes
    }
}

/// The signatures a file's tempo track holds besides its tempo: time and key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signatures<'a> {
    /// Time signatures, at ticks of the file written.
    pub meters: &'a [TimeSignature],
    /// Key signatures, at ticks of the file written.
    pub keys: &'a [KeySignature],
}

/// Encodes notes, a tempo map, a metre map and key signatures as a format-1 Standard MIDI
/// File: a tempo track and one piano track (program 0, channel 1). Ticks are in
/// `ticks_per_quarter`. At equal ticks note-offs come before note-ons, so repeated notes
/// re-strike. Both tracks end at `end_tick`, or at their last event if that is later, so
/// trailing rests are kept. The tempo track starts with a time signature (4/4 unless the
/// metres have one at tick 0), after the `copyright` notice if there is one; metres MIDI
/// cannot write are left out.
pub fn write_smf(
    notes: &[OutNote],
    tempo: &[TempoChange],
    signatures: Signatures<'_>,
    end_tick: u64,
    ticks_per_quarter: u16,
    title: &str,
    copyright: Option<&str>,
) -> Result<Vec<u8>> {
    if ticks_per_quarter == 0 || ticks_per_quarter > 0x7fff {
        return Err(Error::InvalidArgument(format!(
            "ticks per quarter note must be 1..=32767, but was {ticks_per_quarter}"
        )));
    }
    let mut meters: Vec<(u64, Meter)> = signatures
        .meters
        .iter()
        .map(|t| {
            let meter = Meter {
                numerator: t.numerator,
                denominator: t.denominator,
            };
            (t.tick, meter)
        })
        .filter(|(_, m)| m.is_valid())
        .collect();
    meters.sort_by_key(|m| m.0);
    if meters.first().is_none_or(|m| m.0 > 0) {
        meters.insert(0, (0, Meter::COMMON));
    }
    let mut tempo_track: Vec<(u64, TrackEventKind)> = meters
        .iter()
        .map(|&(tick, meter)| {
            let power = meter.denominator.trailing_zeros() as u8;
            // The metronome clicks on the beat a musician counts (a dotted quarter in 6/8):
            // 24 MIDI clocks a quarter, 6 a step.
            let click = (meter.pulse_steps() * 6.0).round().clamp(1.0, 255.0) as u8;
            let signature = MetaMessage::TimeSignature(meter.numerator, power, click, 8);
            (tick, TrackEventKind::Meta(signature))
        })
        .collect();
    // After the time signature at a shared tick (the sort below is stable).
    tempo_track.extend(signatures.keys.iter().map(|k| {
        let key = MetaMessage::KeySignature(k.key.sharps.clamp(-7, 7), k.key.minor);
        (k.tick, TrackEventKind::Meta(key))
    }));
    let mut tempo_sorted = tempo.to_vec();
    tempo_sorted.sort_by_key(|t| t.tick);
    if tempo_sorted.first().is_none_or(|t| t.tick > 0) {
        tempo_sorted.insert(
            0,
            TempoChange {
                tick: 0,
                micros_per_quarter: DEFAULT_MICROS_PER_QUARTER,
            },
        );
    }
    for t in &tempo_sorted {
        let micros =
            u24::try_from(t.micros_per_quarter.clamp(1, 0xff_ffff)).unwrap_or(u24::max_value());
        tempo_track.push((t.tick, TrackEventKind::Meta(MetaMessage::Tempo(micros))));
    }
    // Time signatures and tempo changes in time order (a stable sort: a time signature comes
    // first at a shared tick).
    tempo_track.sort_by_key(|e| e.0);
    // The notice first, as the standard asks.
    let notice_bytes = encode_text(copyright.unwrap_or_default());
    if !notice_bytes.is_empty() {
        let notice = MetaMessage::Copyright(&notice_bytes);
        tempo_track.insert(0, (0, TrackEventKind::Meta(notice)));
    }

    let channel = u4::new(0);
    let mut note_events: Vec<(u64, u8, TrackEventKind)> = Vec::with_capacity(notes.len() * 2);
    for n in notes.iter().filter(|n| n.end > n.start && n.pitch < 128) {
        let key = u7::new(n.pitch);
        note_events.push((
            n.start,
            1,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn {
                    key,
                    vel: u7::new(n.velocity.clamp(1, 127)),
                },
            },
        ));
        note_events.push((
            n.end,
            0,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOff {
                    key,
                    vel: u7::new(64),
                },
            },
        ));
    }
    // Offs (0) before ons (1) at the same tick; stable order otherwise.
    note_events.sort_by_key(|e| (e.0, e.1));
    let title_bytes = encode_text(title);
    let mut piano: Vec<(u64, TrackEventKind)> = vec![
        (
            0,
            TrackEventKind::Meta(MetaMessage::TrackName(&title_bytes)),
        ),
        (
            0,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::ProgramChange {
                    program: u7::new(0),
                },
            },
        ),
    ];
    piano.extend(note_events.into_iter().map(|(t, _, k)| (t, k)));

    let header = Header::new(
        Format::Parallel,
        Timing::Metrical(u15::new(ticks_per_quarter)),
    );
    let tracks = [
        to_track(&tempo_track, end_tick)?,
        to_track(&piano, end_tick)?,
    ];
    let mut out = Vec::new();
    midly::write_std(&header, tracks.iter(), &mut out)
        .map_err(|e| Error::InvalidArgument(format!("encoding MIDI failed: {e}")))?;
    Ok(out)
}

/// Absolute-tick events -> delta-timed track with an end-of-track marker at `end_tick` (or
/// at the last event, if later).
fn to_track<'a>(
    events: &[(u64, TrackEventKind<'a>)],
    end_tick: u64,
) -> Result<Vec<TrackEvent<'a>>> {
    let mut track = Vec::with_capacity(events.len() + 1);
    let mut last = 0u64;
    for &(tick, kind) in events {
        track.push(TrackEvent {
            delta: delta_time(tick.saturating_sub(last))?,
            kind,
        });
        last = last.max(tick);
    }
    track.push(TrackEvent {
        delta: delta_time(end_tick.saturating_sub(last))?,
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    Ok(track)
}

/// A gap in ticks as a MIDI delta time.
fn delta_time(delta: u64) -> Result<u28> {
    u32::try_from(delta)
        .ok()
        .and_then(u28::try_from)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a gap of {delta} ticks does not fit a MIDI delta time (at most 268435455)"
            ))
        })
}
