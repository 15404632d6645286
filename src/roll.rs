//! The piano roll: a T x 128 grid, one row per sixteenth note, as in the paper.
//!
//! The binary matrix the models see is `cells != 0`. Alongside it the roll keeps what export
//! needs: the velocity of each sounding cell, where notes start (so a repeated note stays two
//! notes), and the tempo and metre maps in steps.
//!
//! Quantization counts the file's own ticks, so tempo changes never shift the grid:
//! `start = round(tick * 4 / tpq)`, `length = round(duration_ticks * 4 / tpq)`, rounding half
//! to even as NumPy does. Notes whose length rounds to 0 steps are kept as 1 step by default
//! ([`QuantizeOptions::keep_short_notes`]); the paper dropped them. A musician's own piece is
//! opened rounding starts and ends half up instead ([`QuantizeOptions::round_half_up`]).
//! The tempo map keeps the file's time: a step in which the tempo changes takes the mean tempo.

use std::path::Path;

use crate::error::{Error, MidiProblem, Result};
use crate::fsutil;
use crate::meter::{self, BarMap, StepMeter};
use crate::midi::{
    self, DEFAULT_MICROS_PER_QUARTER, Key, KeySignature, Meter, OutNote, Song, TempoChange,
    TimeSignature,
};

/// Pitches per step (the whole MIDI range).
pub const PITCHES: usize = 128;
/// Steps per quarter note (one step is a sixteenth note).
pub const STEPS_PER_QUARTER: u64 = 4;
/// Velocity given to notes that carry none (drawn or generated).
pub const DEFAULT_VELOCITY: u8 = 80;
/// Ticks per quarter note used when a roll is written as MIDI.
pub const EXPORT_TICKS_PER_QUARTER: u16 = 480;

/// How MIDI notes become roll cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuantizeOptions {
    /// Keep notes whose length rounds to 0 steps as 1 step (the paper dropped them).
    pub keep_short_notes: bool,
    /// Merge channel 10 (drums) into the roll, as the paper did.
    pub include_drums: bool,
    /// Refuse files longer than this many steps (protects against absurd tick values).
    pub max_steps: usize,
    /// End the roll where the file ends (its last end-of-track marker), keeping trailing
    /// rests, instead of with its last note. Off for training data; on where a musician's
    /// piece is opened. An end past `max_steps` is ignored (the notes' end is kept).
    pub keep_length: bool,
    /// Round each note's start and end half up, its length being their difference: notes a
    /// step apart in the file stay a step apart, also a 32nd off the grid. Rounding half to
    /// even (the paper's, NumPy's, for training data) can put two such notes of one pitch on
    /// one step, where they become one. On where a musician's piece is opened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub round_half_up: bool,
    /// Hold notes on while the sustain pedal is down, as a piano sounds them
    /// ([`Song::pedalled_notes`]). Off by default: notes as long as they are written, as the
    /// paper's rolls (and the models trained on them) have them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sustain_pedal: bool,
}

/// The longest piece Segue reads or writes, in 16th-note steps (about seven hours at 120 bpm):
/// a file read refuses more, and generation and the studio stay within it, so whatever Segue
/// writes it can open again.
pub const MAX_STEPS: usize = 200_000;

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            keep_short_notes: true,
            include_drums: true,
            max_steps: MAX_STEPS,
            keep_length: false,
            round_half_up: false,
            sustain_pedal: false,
        }
    }
}

impl QuantizeOptions {
    /// How a musician's own piece is opened: as [`QuantizeOptions::default`], but the roll
    /// keeps the file's trailing rests and notes are rounded half up.
    pub fn whole_file() -> Self {
        Self::default().as_whole_file()
    }

    /// A musician's piece read to be continued, as the studio opens one and `segue generate`
    /// reads its primer: [`QuantizeOptions::whole_file`] without channel 10 (a piano model
    /// goes on from the piano: drums merged in would be struck as piano notes).
    pub fn primer() -> Self {
        QuantizeOptions {
            include_drums: false,
            ..Self::whole_file()
        }
    }

    /// These options, reading a musician's own piece as [`QuantizeOptions::whole_file`] does.
    pub fn as_whole_file(self) -> Self {
        QuantizeOptions {
            keep_length: true,
            round_half_up: true,
            ..self
        }
    }

    /// The paper's behaviour: notes shorter than half a step are dropped.
    pub fn paper() -> Self {
        QuantizeOptions {
            keep_short_notes: false,
            ..Self::default()
        }
    }
}

/// A tempo change at a roll step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepTempo {
    /// The step (16th note) it takes effect at.
    pub step: usize,
    /// The tempo, in microseconds per quarter note.
    pub micros_per_quarter: u32,
}

/// A tempo map of ticks (sorted) as one of steps that keeps time: every step starts when its
/// grid point (a sixteenth of `tpq`) sounds in the file. A step in which the tempo changes
/// takes the mean of its tempos, each weighed by the share of the step it holds, and the next
/// step the tempo then in force; moving the change to the nearest step instead would let a
/// piece of many off-grid changes drift from the file by seconds.
fn grid_tempo(changes: &[midi::TempoChange], tpq: u64, limit: u64) -> Vec<StepTempo> {
    // Ticks scaled by the steps of a quarter: step `s` spans [s * tpq, (s + 1) * tpq).
    let scaled = |tick: u64| u128::from(tick) * u128::from(STEPS_PER_QUARTER);
    let tpq = u128::from(tpq.max(1));
    let mut steps: Vec<u64> = Vec::with_capacity(changes.len() * 2);
    for c in changes {
        let at = scaled(c.tick);
        let step = u64::try_from(at / tpq).unwrap_or(u64::MAX);
        steps.push(step);
        if at % tpq != 0 {
            steps.push(step.saturating_add(1));
        }
    }
    steps.retain(|&s| s < limit.max(1));
    steps.sort_unstable();
    steps.dedup();
    // The tempo in force before each change: the file's first one counts from tick 0.
    let micros_before = |i: usize| {
        i.checked_sub(1)
            .map_or(u128::from(DEFAULT_MICROS_PER_QUARTER), |p| {
                u128::from(changes[p].micros_per_quarter)
            })
    };
    steps
        .into_iter()
        .map(|step| {
            let (from, to) = (u128::from(step) * tpq, u128::from(step + 1) * tpq);
            // The changes up to the step's end, each holding from its tick on.
            let first = changes.partition_point(|c| scaled(c.tick) <= from);
            let mut at = from;
            let mut micros = micros_before(first);
            let mut weighed = 0u128;
            for c in changes[first..].iter().take_while(|c| scaled(c.tick) < to) {
                weighed += (scaled(c.tick) - at) * micros;
                (at, micros) = (scaled(c.tick), u128::from(c.micros_per_quarter));
            }
            weighed += (to - at) * micros;
            StepTempo {
                step: step as usize,
                micros_per_quarter: u32::try_from((weighed + tpq / 2) / tpq).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

/// A key signature from a roll step on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepKey {
    /// The step (16th note) it takes effect at.
    pub step: usize,
    /// The key signature.
    pub key: Key,
}

/// How much better (in correlation with the key profiles) the generated notes must fit another
/// key than the primer's before a continuation's key signature changes at the join.
const KEY_CHANGE_MARGIN: f64 = 0.1;
/// The fewest sounding cells a continuation needs before its own key is estimated (a few notes
/// fit many keys).
const KEY_CHANGE_MIN_CELLS: usize = 64;

/// A note of a roll, in steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollNote {
    /// First step (16th note).
    pub start: usize,
    /// Length in steps.
    pub len: usize,
    /// MIDI pitch (0-127).
    pub pitch: u8,
    /// MIDI velocity (1-127).
    pub velocity: u8,
}

/// A piano roll of `steps` x 128 cells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roll {
    steps: usize,
    /// Row-major T x 128: 0 = silent, otherwise the velocity of the sounding note.
    cells: Vec<u8>,
    /// Row-major T x 128: true where a note starts.
    onsets: Vec<bool>,
    /// Tempo changes by step; empty means 120 bpm.
    tempo: Vec<StepTempo>,
    /// Changes of metre by step (normalized); empty means 4/4.
    meters: Vec<StepMeter>,
    /// Key signatures by step; none before the first (a file may say none).
    keys: Vec<StepKey>,
}

/// A change at a roll step (of tempo or of metre), for what their maps share.
trait StepChange: Copy {
    fn step(&self) -> usize;
    /// The same change at another step.
    fn at(self, step: usize) -> Self;
}

impl StepChange for StepTempo {
    fn step(&self) -> usize {
        self.step
    }
    fn at(self, step: usize) -> Self {
        StepTempo { step, ..self }
    }
}

impl StepChange for StepMeter {
    fn step(&self) -> usize {
        self.step
    }
    fn at(self, step: usize) -> Self {
        StepMeter { step, ..self }
    }
}

impl StepChange for StepKey {
    fn step(&self) -> usize {
        self.step
    }
    fn at(self, step: usize) -> Self {
        StepKey { step, ..self }
    }
}

/// `map` in its canonical form: sorted by step, the last of several changes on one step kept
/// (the sort is stable), and changes to what is already in force dropped (`before`: what is in
/// force before the first change, if anything is).
fn canonical<T: StepChange, V: PartialEq>(
    mut map: Vec<T>,
    value: impl Fn(&T) -> V,
    before: Option<V>,
) -> Vec<T> {
    map.sort_by_key(|c| c.step());
    let mut per_step: Vec<T> = Vec::with_capacity(map.len());
    for c in map {
        match per_step.last_mut() {
            Some(last) if last.step() == c.step() => *last = c,
            _ => per_step.push(c),
        }
    }
    let mut current = before;
    per_step.retain(|c| {
        let now = Some(value(c));
        let changes = now != current;
        current = now;
        changes
    });
    per_step
}

/// The change of `map` (sorted) in force at `step`, if any.
fn in_force<T: StepChange>(map: &[T], step: usize) -> Option<&T> {
    map.iter().take_while(|c| c.step() <= step).last()
}

/// The map of steps `start..start + len` of `map`, counted from `start`: `first` (what is in
/// force at `start`, if anything is) at step 0, then the changes inside.
fn window<T: StepChange>(map: &[T], first: Option<T>, start: usize, len: usize) -> Vec<T> {
    let inside = map
        .iter()
        .filter(|c| c.step() > start && c.step() < start + len);
    (first.map(|f| f.at(0)).into_iter())
        .chain(inside.map(|c| c.at(c.step() - start)))
        .collect()
}

/// `map` followed by the map of a roll appended at `offset`: `first` (what it starts in, if
/// anything) at `offset`, then its later changes moved by `offset`.
fn joined<T: StepChange>(map: &[T], first: Option<T>, other: &[T], offset: usize) -> Vec<T> {
    let later = other.iter().filter(|c| c.step() > 0);
    map.iter()
        .copied()
        .chain(first.map(|f| f.at(offset)))
        .chain(later.map(|c| c.at(c.step() + offset)))
        .collect()
}

/// Rounds `num / den` to the nearest integer, ties to even (NumPy's rule).
///
/// # Panics
/// When `den` is 0.
pub fn round_half_even(num: u64, den: u64) -> u64 {
    let q = num / den;
    let r = num % den;
    let twice = r * 2;
    if twice > den || (twice == den && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

impl Roll {
    /// A silent roll of `steps` steps.
    pub fn new(steps: usize) -> Roll {
        Roll {
            steps,
            cells: vec![0; steps * PITCHES],
            onsets: vec![false; steps * PITCHES],
            tempo: Vec::new(),
            meters: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// A roll from a binary T x 128 matrix (row-major, nonzero = on); notes get the default
    /// velocity and start where a run of cells starts.
    pub fn from_binary(steps: usize, binary: &[u8]) -> Result<Roll> {
        if binary.len() != steps * PITCHES {
            return Err(Error::InvalidArgument(format!(
                "a binary roll of {steps} steps needs {} cells, but got {}",
                steps * PITCHES,
                binary.len()
            )));
        }
        let mut roll = Roll::new(steps);
        for (i, &b) in binary.iter().enumerate() {
            if b != 0 {
                roll.cells[i] = DEFAULT_VELOCITY;
                roll.onsets[i] = i < PITCHES || binary[i - PITCHES] == 0;
            }
        }
        Ok(roll)
    }

    /// Quantizes a song onto the sixteenth-note grid (see the module docs).
    pub fn from_song(
        song: &Song,
        opts: &QuantizeOptions,
    ) -> std::result::Result<Roll, MidiProblem> {
        let tpq = u64::from(song.ticks_per_quarter);
        if tpq == 0 {
            // A song read from a file never has it; one made by hand may.
            return Err(MidiProblem::BadDivision(0));
        }
        let limit = opts.max_steps as u64;
        let pedalled;
        let written = if opts.sustain_pedal && !song.pedal.is_empty() {
            pedalled = song.pedalled_notes();
            &pedalled
        } else {
            &song.notes
        };
        let mut notes = Vec::with_capacity(written.len());
        let mut steps = 0u64;
        for n in written {
            if !opts.include_drums && n.channel == midi::DRUM_CHANNEL {
                continue;
            }
            let step_of = |tick: u64| tick.saturating_mul(STEPS_PER_QUARTER);
            let (start, mut len) = if opts.round_half_up {
                let half_up = |tick: u64| step_of(tick).saturating_add(tpq / 2) / tpq;
                let start = half_up(n.start);
                (start, half_up(n.end).saturating_sub(start))
            } else {
                let start = round_half_even(step_of(n.start), tpq);
                (start, round_half_even(step_of(n.end - n.start), tpq))
            };
            if len == 0 {
                if !opts.keep_short_notes {
                    continue;
                }
                len = 1;
            }
            let end = start.saturating_add(len);
            if end > limit {
                return Err(MidiProblem::TooLong { steps: end, limit });
            }
            steps = steps.max(end);
            notes.push(RollNote {
                start: start as usize,
                len: len as usize,
                pitch: n.pitch,
                velocity: n.velocity,
            });
        }
        // The step a tick falls on (for tempo and metre changes, and the file's end), rounded
        // as the notes' starts are: a bar line half a step off the grid lands where its
        // downbeat's notes do.
        let round = |tick: u64| {
            let scaled = tick.saturating_mul(STEPS_PER_QUARTER);
            if opts.round_half_up {
                scaled.saturating_add(tpq / 2) / tpq
            } else {
                round_half_even(scaled, tpq)
            }
        };
        let step_of = |tick: u64| round(tick).min(limit) as usize;
        let tempo = grid_tempo(&song.tempo, tpq, limit);
        if opts.keep_length {
            let end = round(song.end_tick);
            if end <= limit {
                steps = steps.max(end);
            }
        }
        let meters = song
            .time_signatures
            .iter()
            .map(|t| StepMeter {
                step: step_of(t.tick),
                meter: Meter {
                    numerator: t.numerator,
                    denominator: t.denominator,
                },
            })
            .collect();
        let keys = (song.key_signatures.iter())
            .map(|k| StepKey {
                step: step_of(k.tick),
                key: k.key,
            })
            .collect();
        let mut roll = Roll::from_notes(steps as usize, &notes, tempo);
        roll.set_meters(meters);
        roll.set_keys(keys);
        Ok(roll)
    }

    /// Builds a roll from notes in steps (notes past `steps` are cut) and a tempo map.
    ///
    /// A cell sounds when some note covers it; it carries the velocity of the latest onset of
    /// its pitch at or before it (the loudest, where several notes start together). This is the
    /// canonical form that [`Roll::notes`] inverts exactly.
    pub fn from_notes(steps: usize, notes: &[RollNote], tempo: Vec<StepTempo>) -> Roll {
        let mut roll = Roll::new(steps);
        let mut sorted: Vec<RollNote> = notes
            .iter()
            .filter(|n| n.start < steps && n.len > 0)
            .map(|n| RollNote {
                pitch: n.pitch & 127,
                velocity: n.velocity.clamp(1, 127),
                ..*n
            })
            .collect();
        sorted.sort_unstable_by_key(|n| (n.pitch, n.start));
        let mut i = 0;
        while i < sorted.len() {
            let pitch = sorted[i].pitch;
            let p = usize::from(pitch);
            let mut run_end = 0usize;
            while i < sorted.len() && sorted[i].pitch == pitch {
                // All notes of this pitch starting on this step form one onset.
                let start = sorted[i].start;
                let mut velocity = 0u8;
                while i < sorted.len() && sorted[i].pitch == pitch && sorted[i].start == start {
                    velocity = velocity.max(sorted[i].velocity);
                    run_end = run_end.max((start + sorted[i].len).min(steps));
                    i += 1;
                }
                let next_onset = if i < sorted.len() && sorted[i].pitch == pitch {
                    sorted[i].start
                } else {
                    steps
                };
                roll.onsets[start * PITCHES + p] = true;
                for t in start..run_end.min(next_onset) {
                    roll.cells[t * PITCHES + p] = velocity;
                }
            }
        }
        roll.set_tempo(tempo);
        roll
    }

    /// Gives every held cell the velocity of the onset that started its run, so a roll has one
    /// canonical form (what makes MIDI -> roll -> MIDI -> roll exact).
    fn canonicalize(&mut self) {
        self.canonicalize_from(0);
    }

    /// [`Roll::canonicalize`] of the steps from `start` on, the steps before it being
    /// canonical already (what an append needs: linear in what is appended, not the whole).
    fn canonicalize_from(&mut self, start: usize) {
        let mut current = [0u8; PITCHES];
        if start > 0 && start <= self.steps {
            // The runs sounding at the step before, with their velocities.
            current.copy_from_slice(&self.cells[(start - 1) * PITCHES..start * PITCHES]);
        }
        for t in start..self.steps {
            for (p, cur) in current.iter_mut().enumerate() {
                let i = t * PITCHES + p;
                if self.cells[i] == 0 {
                    *cur = 0;
                    self.onsets[i] = false;
                    continue;
                }
                if *cur == 0 && !self.onsets[i] {
                    // A run always starts with an onset; it keeps the velocity of the note it
                    // was part of (the tail of an erased or cut note stays as loud as it was).
                    self.onsets[i] = true;
                }
                if self.onsets[i] {
                    *cur = self.cells[i].max(1);
                }
                self.cells[i] = *cur;
            }
        }
    }

    /// Number of steps (T).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Velocity at (step, pitch); 0 when silent or out of range.
    pub fn velocity(&self, step: usize, pitch: usize) -> u8 {
        if step < self.steps && pitch < PITCHES {
            self.cells[step * PITCHES + pitch]
        } else {
            0
        }
    }

    /// Whether (step, pitch) sounds.
    pub fn is_on(&self, step: usize, pitch: usize) -> bool {
        self.velocity(step, pitch) != 0
    }

    /// Whether a note starts at (step, pitch).
    pub fn is_onset(&self, step: usize, pitch: usize) -> bool {
        step < self.steps && pitch < PITCHES && self.onsets[step * PITCHES + pitch]
    }

    /// One step's 128 velocities.
    ///
    /// # Panics
    /// When `step` is not below [`Roll::steps`] (as slice indexing does; [`Roll::velocity`]
    /// reads 0 past the end instead).
    pub fn row(&self, step: usize) -> &[u8] {
        &self.cells[step * PITCHES..(step + 1) * PITCHES]
    }

    /// The velocities of all cells, row-major T x 128.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// The binary matrix (1 = on), row-major T x 128.
    pub fn binary(&self) -> Vec<u8> {
        self.cells.iter().map(|&v| u8::from(v != 0)).collect()
    }

    /// Writes the binary matrix of steps `start..start+len` into `out` as 0.0/1.0, padding
    /// with silence past the end.
    pub fn window_f32(&self, start: usize, len: usize, out: &mut [f32]) {
        debug_assert_eq!(out.len(), len * PITCHES);
        for (t, row) in out.chunks_exact_mut(PITCHES).enumerate() {
            let s = start + t;
            if s < self.steps {
                for (o, &v) in row.iter_mut().zip(self.row(s)) {
                    *o = if v != 0 { 1.0 } else { 0.0 };
                }
            } else {
                row.fill(0.0);
            }
        }
    }

    /// Number of sounding cells.
    pub fn active_cells(&self) -> usize {
        self.cells.iter().filter(|&&v| v != 0).count()
    }

    /// The step after the last sounding one (0 for a silent roll): the roll without its
    /// trailing rests is `slice(0, sounding_end())`.
    pub fn sounding_end(&self) -> usize {
        self.cells
            .iter()
            .rposition(|&v| v != 0)
            .map_or(0, |i| i / PITCHES + 1)
    }

    /// The tempo map in steps (empty: 120 bpm).
    pub fn tempo(&self) -> &[StepTempo] {
        &self.tempo
    }

    /// Replaces the tempo map (sorted; of several changes on one step the last wins; changes
    /// at or past the roll's end are left out, as they change nothing).
    pub fn set_tempo(&mut self, mut tempo: Vec<StepTempo>) {
        tempo.retain(|t| (t.step == 0 || t.step < self.steps) && t.micros_per_quarter > 0);
        // Before the first change the tempo is 120 bpm, so a change to 120 bpm there is none.
        let before = Some(DEFAULT_MICROS_PER_QUARTER);
        self.tempo = canonical(tempo, |t| t.micros_per_quarter, before);
    }

    /// The metre map in steps (empty: 4/4 throughout).
    pub fn meters(&self) -> &[StepMeter] {
        &self.meters
    }

    /// Replaces the metre map (see [`meter::normalize`]); changes at or past the roll's end
    /// are left out (a MIDI file may hold one after its last note).
    pub fn set_meters(&mut self, mut meters: Vec<StepMeter>) {
        meters.retain(|m| m.step == 0 || m.step < self.steps);
        self.meters = meter::normalize(meters);
    }

    /// The key signatures by step (empty: the file said none).
    pub fn keys(&self) -> &[StepKey] {
        &self.keys
    }

    /// Replaces the key signatures (sorted; of several on one step the last wins; one that
    /// repeats the key before it, or lies at or past the roll's end, is left out).
    pub fn set_keys(&mut self, mut keys: Vec<StepKey>) {
        keys.retain(|k| k.step == 0 || k.step < self.steps);
        self.keys = canonical(keys, |k| k.key, None);
    }

    /// The key signature in force at `step`, if any.
    pub fn key_at(&self, step: usize) -> Option<Key> {
        in_force(&self.keys, step).map(|k| k.key)
    }

    /// The metre in force at `step`.
    pub fn meter_at(&self, step: usize) -> Meter {
        meter::meter_at(&self.meters, step)
    }

    /// Micro-seconds per quarter note in force at `step`.
    pub fn micros_per_quarter_at(&self, step: usize) -> u32 {
        in_force(&self.tempo, step).map_or(DEFAULT_MICROS_PER_QUARTER, |t| t.micros_per_quarter)
    }

    /// The time in seconds at which each step starts, plus the end time (T + 1 values).
    pub fn step_times(&self) -> Vec<f64> {
        let mut times = Vec::with_capacity(self.steps + 1);
        let mut t = 0.0;
        let mut tempo = self.tempo.iter().peekable();
        let mut micros = f64::from(DEFAULT_MICROS_PER_QUARTER);
        for step in 0..=self.steps {
            while let Some(change) = tempo.next_if(|c| c.step <= step) {
                micros = f64::from(change.micros_per_quarter);
            }
            times.push(t);
            t += micros / 1e6 / STEPS_PER_QUARTER as f64;
        }
        times
    }

    /// Duration in seconds, following the tempo map.
    pub fn duration_seconds(&self) -> f64 {
        self.step_times().last().copied().unwrap_or(0.0)
    }

    /// The notes of the roll: runs of sounding cells, split where a note starts.
    pub fn notes(&self) -> Vec<RollNote> {
        let mut notes = Vec::new();
        let mut open: [Option<usize>; PITCHES] = [None; PITCHES];
        for t in 0..=self.steps {
            for (p, slot) in open.iter_mut().enumerate() {
                let on = t < self.steps && self.cells[t * PITCHES + p] != 0;
                let onset = on && self.onsets[t * PITCHES + p];
                if let Some(start) = *slot
                    && (!on || onset)
                {
                    notes.push(RollNote {
                        start,
                        len: t - start,
                        pitch: p as u8,
                        velocity: self.cells[start * PITCHES + p],
                    });
                    *slot = None;
                }
                if on && slot.is_none() {
                    *slot = Some(t);
                }
            }
        }
        notes.sort_by_key(|n| (n.start, n.pitch));
        notes
    }

    /// Adds a note (cut at the end of the roll); it starts a new note even inside a held one.
    pub fn add_note(&mut self, note: RollNote) {
        let p = usize::from(note.pitch & 127);
        let end = (note.start + note.len).min(self.steps);
        if note.start >= end {
            return;
        }
        let velocity = note.velocity.clamp(1, 127);
        for t in note.start..end {
            self.cells[t * PITCHES + p] = velocity;
            self.onsets[t * PITCHES + p] = t == note.start;
        }
        // A held note that continues past the new one restarts after it.
        if end < self.steps && self.cells[end * PITCHES + p] != 0 {
            self.onsets[end * PITCHES + p] = true;
        }
        self.canonicalize();
    }

    /// Silences (step, pitch) .. (step + len, pitch).
    pub fn erase(&mut self, start: usize, len: usize, pitch: u8) {
        let p = usize::from(pitch & 127);
        for t in start..(start + len).min(self.steps) {
            self.cells[t * PITCHES + p] = 0;
            self.onsets[t * PITCHES + p] = false;
        }
        self.canonicalize();
    }

    /// Steps `start..start + len` as a new roll (silence past the end), keeping the tempo and
    /// the metre (its bars counted from its own start).
    pub fn slice(&self, start: usize, len: usize) -> Roll {
        let mut out = Roll::new(len);
        for t in 0..len {
            let s = start + t;
            if s >= self.steps {
                break;
            }
            out.cells[t * PITCHES..(t + 1) * PITCHES].copy_from_slice(self.row(s));
            out.onsets[t * PITCHES..(t + 1) * PITCHES]
                .copy_from_slice(&self.onsets[s * PITCHES..(s + 1) * PITCHES]);
        }
        out.canonicalize();
        let tempo = StepTempo {
            step: 0,
            micros_per_quarter: self.micros_per_quarter_at(start),
        };
        out.set_tempo(window(&self.tempo, Some(tempo), start, len));
        let meter = StepMeter {
            step: 0,
            meter: self.meter_at(start),
        };
        out.set_meters(window(&self.meters, Some(meter), start, len));
        let key = self.key_at(start).map(|key| StepKey { step: 0, key });
        out.set_keys(window(&self.keys, key, start, len));
        out
    }

    /// Appends generated steps, which have no tempo, metre or dynamics of their own, at the
    /// pace, in the metre and at the loudness this roll ends with: a continuation goes on at
    /// the primer's pace ([`Roll::closing_micros_per_quarter`]), in its metre and as loud as
    /// its last bars (appending a roll without those would switch to 120 bpm, 4/4 and
    /// [`DEFAULT_VELOCITY`] at the join).
    pub fn continue_with(&mut self, generated: &Roll) {
        let last = self.steps.saturating_sub(1);
        let mut tail = generated.clone();
        if let Some(velocity) = self.closing_velocity() {
            for cell in tail.cells.iter_mut().filter(|c| **c != 0) {
                *cell = velocity;
            }
        }
        tail.set_tempo(vec![StepTempo {
            step: 0,
            micros_per_quarter: self.closing_micros_per_quarter(),
        }]);
        tail.set_meters(vec![StepMeter {
            step: 0,
            meter: self.meter_at(last),
        }]);
        // The primer's key signature goes on, unless the generated notes clearly fit another
        // key (a composer's code carries its composer's keys): then they are written in that
        // one from the first bar line of the continuation (a notation program prints a
        // signature where it stands, mid-bar too), spelled with flats after flats, so that a
        // notation program spells them as they sound. A file without key signatures gets none.
        let key = self.key_at(last).map(|key| {
            let weights = generated.pitch_class_weights();
            let (step, new) = match Key::estimate(&weights) {
                Some((best, fit))
                    if best.spelled_like(key) != key
                        && generated.active_cells() >= KEY_CHANGE_MIN_CELLS
                        && fit - key.fit(&weights) >= KEY_CHANGE_MARGIN =>
                {
                    let bar = BarMap::new(&self.meters).next_bar_line(self.steps);
                    (bar - self.steps, best.spelled_like(key))
                }
                _ => (0, key),
            };
            // Before a change within the first bar, the primer's key goes on.
            StepKey { step, key: new }
        });
        tail.set_keys(key.filter(|k| k.step < tail.steps).into_iter().collect());
        self.append(&tail);
    }

    /// How long each pitch class sounds in the roll, in steps (C first).
    pub fn pitch_class_weights(&self) -> [f64; 12] {
        let mut weights = [0.0; 12];
        for row in self.cells.chunks(PITCHES) {
            for (pitch, &cell) in row.iter().enumerate() {
                if cell != 0 {
                    weights[pitch % 12] += 1.0;
                }
            }
        }
        weights
    }

    /// The first step of the bar that holds the roll's first note, in the roll's metre map (0
    /// for a roll without notes): where a file that opens with silent bars (a late entry, a
    /// count-in) has its music begin.
    pub fn first_bar_with_notes(&self) -> usize {
        let Some(first) = (0..self.steps).find(|&t| self.row(t).iter().any(|&v| v > 0)) else {
            return 0;
        };
        meter::bar_start(&self.meters, first)
    }

    /// The roll up to its last note: what a continuation goes on from (the rests after it are
    /// the piece's, not the primer's), in the studio and from the command line alike.
    pub fn up_to_last_note(&self) -> Roll {
        self.slice(0, self.sounding_end())
    }

    /// The pace the roll ends at: the tempo that plays its last 64 steps (four bars of 4/4; all
    /// of them in a shorter roll) in the time they take. Not the tempo of its very last step:
    /// a piece played with rubato (piano-midi.de's files are) can be at half or one and a half
    /// times its pace there, in a ritardando or a run.
    pub fn closing_micros_per_quarter(&self) -> u32 {
        let from = self.steps.saturating_sub(64);
        let steps = self.steps - from;
        if steps == 0 {
            return self.micros_per_quarter_at(0);
        }
        // Each tempo of the window times the steps it lasts.
        let mut sum = 0u64;
        let (mut at, mut micros) = (from, self.micros_per_quarter_at(from));
        for change in (self.tempo.iter()).filter(|c| c.step > from && c.step < self.steps) {
            sum += u64::from(micros) * (change.step - at) as u64;
            (at, micros) = (change.step, change.micros_per_quarter);
        }
        sum += u64::from(micros) * (self.steps - at) as u64;
        (sum as f64 / steps as f64).round() as u32
    }

    /// How loud the roll ends: the median velocity of the notes starting in its last 64 steps
    /// (four bars of 4/4), or of all its notes where none starts there; `None` without notes.
    pub fn closing_velocity(&self) -> Option<u8> {
        let onsets = |from: usize| {
            let mut v: Vec<u8> = (from * PITCHES..self.cells.len())
                .filter(|&i| self.onsets[i])
                .map(|i| self.cells[i])
                .collect();
            v.sort_unstable();
            v
        };
        let mut v = onsets(self.steps.saturating_sub(64));
        if v.is_empty() {
            v = onsets(0);
        }
        v.get(v.len() / 2).copied()
    }

    /// Appends `other` after this roll (its tempo and metre maps are kept from its own first
    /// step).
    pub fn append(&mut self, other: &Roll) {
        let offset = self.steps;
        let tempo = StepTempo {
            step: 0,
            micros_per_quarter: other.micros_per_quarter_at(0),
        };
        let tempo = joined(&self.tempo, Some(tempo), &other.tempo, offset);
        // The same metre goes on across the join in the bars it was in (restated, it would
        // start a bar there: see `meter::normalize`).
        let meter =
            (offset == 0 || other.meter_at(0) != self.meter_at(offset - 1)).then(|| StepMeter {
                step: 0,
                meter: other.meter_at(0),
            });
        let meters = joined(&self.meters, meter, &other.meters, offset);
        let key = other.key_at(0).map(|key| StepKey { step: 0, key });
        let keys = joined(&self.keys, key, &other.keys, offset);
        self.cells.extend_from_slice(&other.cells);
        self.onsets.extend_from_slice(&other.onsets);
        self.steps += other.steps;
        self.canonicalize_from(offset);
        // They drop the changes that change nothing (at the join, most often).
        self.set_tempo(tempo);
        self.set_meters(meters);
        self.set_keys(keys);
    }

    /// Makes every note sounding on both sides of `step` one held note across it (a run of
    /// sounding cells is one note, as in a roll made from a binary matrix): what joins a
    /// continuation to its primer without re-striking the notes it holds.
    pub fn join_held_at(&mut self, step: usize) {
        if step == 0 || step >= self.steps {
            return;
        }
        for p in 0..PITCHES {
            let (before, here) = ((step - 1) * PITCHES + p, step * PITCHES + p);
            if self.cells[before] > 0 && self.cells[here] > 0 {
                self.onsets[here] = false;
            }
        }
        self.canonicalize();
    }

    /// Jaccard similarity of the sounding cells over the common length (1 when both silent).
    pub fn jaccard(&self, other: &Roll) -> f64 {
        let n = self.steps.min(other.steps) * PITCHES;
        let (mut both, mut either) = (0usize, 0usize);
        for (a, b) in self.cells[..n].iter().zip(&other.cells[..n]) {
            let (a, b) = (*a != 0, *b != 0);
            both += usize::from(a && b);
            either += usize::from(a || b);
        }
        if either == 0 {
            1.0
        } else {
            both as f64 / either as f64
        }
    }

    /// Encodes the roll as a Standard MIDI File (piano, program 0, the roll's tempo map or
    /// 120 bpm, its metre map or 4/4, its key signatures, its velocities). The file lasts as long as the roll,
    /// trailing rests included. A `copyright` notice (the source's, for notes taken from a
    /// file) is written at its start.
    pub fn to_midi_bytes(&self, title: &str, copyright: Option<&str>) -> Result<Vec<u8>> {
        let ticks_per_step = u64::from(EXPORT_TICKS_PER_QUARTER) / STEPS_PER_QUARTER;
        let notes: Vec<OutNote> = self
            .notes()
            .iter()
            .map(|n| OutNote {
                start: n.start as u64 * ticks_per_step,
                end: (n.start + n.len) as u64 * ticks_per_step,
                pitch: n.pitch,
                velocity: n.velocity,
            })
            .collect();
        let tempo: Vec<TempoChange> = self
            .tempo
            .iter()
            .map(|t| TempoChange {
                tick: t.step as u64 * ticks_per_step,
                micros_per_quarter: t.micros_per_quarter,
            })
            .collect();
        let meters: Vec<TimeSignature> = self
            .meters
            .iter()
            .map(|m| TimeSignature {
                tick: m.step as u64 * ticks_per_step,
                numerator: m.meter.numerator,
                denominator: m.meter.denominator,
            })
            .collect();
        let keys: Vec<KeySignature> = (self.keys.iter())
            .map(|k| KeySignature {
                tick: k.step as u64 * ticks_per_step,
                key: k.key,
            })
            .collect();
        let end = self.steps as u64 * ticks_per_step;
        midi::write_smf(
            &notes,
            &tempo,
            midi::Signatures {
                meters: &meters,
                keys: &keys,
            },
            end,
            EXPORT_TICKS_PER_QUARTER,
            title,
            copyright,
        )
    }

    /// Writes the roll as a MIDI file (atomically).
    pub fn write_midi(&self, path: &Path) -> Result<()> {
        self.write_midi_noting(path, None)
    }

    /// Writes the roll as a MIDI file (atomically) with the `copyright` notice of the file its
    /// notes come from, if any: a conversion or continuation of a licensed piece keeps its
    /// attribution.
    pub fn write_midi_noting(&self, path: &Path, copyright: Option<&str>) -> Result<()> {
        // Cleaned as a title read from a file is (no control characters, at most 200 of them).
        let title = path
            .file_stem()
            .map(|s| crate::midi::decode_text(s.to_string_lossy().as_bytes()))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Segue".into());
        let bytes = self
            .to_midi_bytes(&title, copyright)
            .map_err(|e| Error::format(path, e.to_string()))?;
        fsutil::write_atomic(path, &bytes)
    }

    /// Reads a MIDI file and quantizes it.
    pub fn read_midi(path: &Path, opts: &QuantizeOptions) -> Result<Roll> {
        let song = Song::read(path)?;
        Roll::from_song(&song, opts).map_err(|p| Error::midi(path, p))
    }
}

/// The name of a MIDI pitch, e.g. 60 -> "C4", 61 -> "C#4".
pub fn pitch_name(pitch: u8) -> String {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    format!(
        "{}{}",
        NAMES[usize::from(pitch % 12)],
        i32::from(pitch / 12) - 1
    )
}
