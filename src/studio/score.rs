//! The studio's editable piece: notes on the 16th-note grid, each remembering where it came
//! from (primer, generated, drawn by hand), with undo and redo.

use std::sync::Arc;

use crate::meter::{self, StepMeter};
use crate::roll::{DEFAULT_VELOCITY, PITCHES, Roll, RollNote, StepKey, StepTempo};

/// Where a note came from; the piano roll draws each kind in its own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// From the loaded MIDI file (the primer).
    Primer,
    /// Sampled by a model.
    Generated,
    /// Drawn, moved or resized by hand.
    Edited,
}

/// One note of the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScoreNote {
    /// MIDI pitch 0..=127.
    pub pitch: u8,
    /// First step.
    pub start: usize,
    /// Length in steps (at least 1).
    pub len: usize,
    /// MIDI velocity 1..=127.
    pub velocity: u8,
    /// Where it came from.
    pub origin: Origin,
}

impl ScoreNote {
    /// The step after the note.
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// The piece being edited.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    /// The notes, in no particular order.
    pub notes: Vec<ScoreNote>,
    /// Tempo at the start in quarter notes per minute (the tempo box); the tempo map, if
    /// any, follows scaled to it.
    pub bpm: f64,
    /// The tempo map of the opened file or of the primer a piece was generated from (empty:
    /// one tempo throughout). Only its shape counts: playback and export scale it so that it
    /// starts at `bpm`, so a rubato plays as in the file at any tempo. Shared between the
    /// undo snapshots, which edits of notes leave it the same in.
    #[serde(default)]
    pub tempo: Arc<[StepTempo]>,
    /// Steps of the primer at the start (0 if none).
    pub primer_steps: usize,
    /// The piece's length in steps where it runs past its last note (trailing rests of an
    /// opened file or a generated piece); 0 = it ends with its last note.
    #[serde(default)]
    pub length: usize,
    /// The metre map of the opened file, or of the primer a piece was generated from (empty:
    /// 4/4); the grid's bars and MIDI exports follow it. Shared like the tempo map.
    #[serde(default)]
    pub meters: Arc<[StepMeter]>,
    /// The key signatures of the opened file, or of the primer a piece was generated from
    /// (a MIDI export writes them, so a notation program spells the notes in the key).
    #[serde(default, skip_serializing_if = "<[StepKey]>::is_empty")]
    pub keys: Arc<[StepKey]>,
    /// The one metre a session file of an earlier version kept (read, never written).
    #[serde(default, rename = "meter", skip_serializing)]
    legacy_meter: Option<crate::midi::Meter>,
    /// The copyright notice of the file the piece was opened from (kept through edits and
    /// continuations): a MIDI export carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
}

/// What the style meter's classifier reads of a score: which notes sound where, the length
/// and the metre, not their loudness nor the tempo. Scores with equal keys get one verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct SoundingKey {
    notes: Vec<(u8, usize, usize)>,
    steps: usize,
    meters: Arc<[StepMeter]>,
}

impl Score {
    /// What the style meter reads of the score (see [`SoundingKey`]).
    pub fn sounding_key(&self) -> SoundingKey {
        SoundingKey {
            notes: (self.notes.iter())
                .map(|n| (n.pitch, n.start, n.len))
                .collect(),
            steps: self.steps(),
            meters: self.meters.clone(),
        }
    }

    /// The longest piece a score may hold, in steps: the longest file Segue opens, so that an
    /// export opens again.
    pub const MAX_STEPS: usize = crate::roll::MAX_STEPS;

    /// Brings a score read from disk into range: tempo 10-1000 bpm, notes inside the pitch,
    /// velocity and length ranges (notes past [`Score::MAX_STEPS`] are dropped), the primer
    /// no longer than the piece, the tempo and metre maps sorted and in range (the one metre
    /// an older session file kept becomes the map). Returns how many notes were dropped.
    pub fn sanitize(&mut self) -> usize {
        self.bpm = if self.bpm.is_finite() {
            self.bpm.clamp(10.0, 1000.0)
        } else {
            120.0
        };
        let notes = self.notes.len();
        self.notes.retain(|n| {
            n.pitch < 128
                && n.len >= 1
                && n.start
                    .checked_add(n.len)
                    .is_some_and(|end| end <= Self::MAX_STEPS)
        });
        for n in &mut self.notes {
            n.velocity = n.velocity.clamp(1, 127);
        }
        self.length = self.length.min(Self::MAX_STEPS);
        self.primer_steps = self.primer_steps.min(self.steps());
        let mut tempo = self.tempo.to_vec();
        tempo.retain(|t| t.micros_per_quarter > 0 && t.step <= Self::MAX_STEPS);
        tempo.sort_by_key(|t| t.step);
        self.tempo = tempo.into();
        let mut meters = self.meters.to_vec();
        if let Some(m) = self.legacy_meter.take().filter(|_| meters.is_empty()) {
            meters = vec![StepMeter { step: 0, meter: m }];
        }
        meters.retain(|m| m.step <= Self::MAX_STEPS);
        self.meters = meter::normalize(meters).into();
        let mut keys = self.keys.to_vec();
        keys.retain(|k| k.step <= Self::MAX_STEPS && (-7..=7).contains(&k.key.sharps));
        keys.sort_by_key(|k| k.step);
        self.keys = keys.into();
        notes - self.notes.len()
    }

    /// An empty score at 120 bpm.
    pub fn new() -> Self {
        Score {
            notes: Vec::new(),
            bpm: 120.0,
            tempo: Arc::from([]),
            primer_steps: 0,
            length: 0,
            meters: Arc::from([]),
            keys: Arc::from([]),
            legacy_meter: None,
            copyright: None,
        }
    }

    /// The notes of `roll`, all of one origin, with its tempo and metre maps; the score lasts
    /// as long as the roll.
    pub fn from_roll(roll: &Roll, origin: Origin) -> Self {
        // In the range playback and export take, so that the tempo box shows what plays.
        let bpm =
            (60_000_000.0 / f64::from(roll.micros_per_quarter_at(0).max(1))).clamp(10.0, 1000.0);
        // The map is scaled to start at the tempo box: an opening tempo out of that range is
        // brought into it alone, so that the rest of the piece keeps its own tempos (a first
        // chord held at 6 bpm would otherwise make all of it 10/6 times faster).
        let mut tempo = roll.tempo().to_vec();
        if let Some(first) = tempo.first_mut().filter(|t| t.step == 0) {
            first.micros_per_quarter = (60_000_000.0 / bpm).round() as u32;
        }
        Score {
            notes: roll
                .notes()
                .into_iter()
                .map(|n| ScoreNote {
                    pitch: n.pitch,
                    start: n.start,
                    len: n.len,
                    velocity: n.velocity,
                    origin,
                })
                .collect(),
            bpm,
            tempo: tempo.into(),
            primer_steps: 0,
            length: roll.steps(),
            meters: roll.meters().into(),
            keys: roll.keys().into(),
            legacy_meter: None,
            copyright: None,
        }
    }

    /// A generated piece: its first `primer_steps` are the primer, the rest generated.
    pub fn from_generated(roll: &Roll, primer_steps: usize, bpm: f64) -> Self {
        let mut score = Score::from_roll(roll, Origin::Generated);
        for n in &mut score.notes {
            if n.start < primer_steps {
                n.origin = Origin::Primer;
            }
        }
        score.bpm = bpm;
        score.primer_steps = primer_steps;
        score
    }

    /// The step after the last note (0 for no notes): where playback ends without a loop.
    pub fn last_note_end(&self) -> usize {
        self.notes.iter().map(ScoreNote::end).max().unwrap_or(0)
    }

    /// Steps up to the end of the piece: its last note, or its trailing rests.
    pub fn steps(&self) -> usize {
        self.last_note_end().max(self.length)
    }

    /// Steps of rest after the last note (what Trim removes).
    pub fn trailing_rests(&self) -> usize {
        self.length.saturating_sub(self.last_note_end())
    }

    /// The score as a roll (its tempo map scaled to the tempo box), for export, the models and
    /// the style meter.
    pub fn to_roll(&self) -> Roll {
        let notes: Vec<RollNote> = self
            .notes
            .iter()
            .map(|n| RollNote {
                start: n.start,
                len: n.len,
                pitch: n.pitch,
                velocity: n.velocity,
            })
            .collect();
        let tempo = self
            .speed()
            .into_iter()
            .map(|(step, speed)| StepTempo {
                step,
                micros_per_quarter: (60_000_000.0 / (self.start_bpm() * speed)).round() as u32,
            })
            .collect();
        let mut roll = Roll::from_notes(self.steps(), &notes, tempo);
        roll.set_meters(self.meters.to_vec());
        roll.set_keys(self.keys.to_vec());
        roll
    }

    /// The tempo at the start, in the range playback and export take.
    fn start_bpm(&self) -> f64 {
        if self.bpm.is_finite() {
            self.bpm.clamp(10.0, 1000.0)
        } else {
            120.0
        }
    }

    /// The tempo map as speeds relative to the start: (step, tempo there / tempo at the
    /// start), from step 0 on. Each change is held within 1/100..100 times the start, and the
    /// tempo at any step within 4..2000 bpm at any tempo box setting (MIDI cannot write a
    /// tempo below 3.58 bpm).
    pub fn speed(&self) -> Vec<(usize, f64)> {
        let micros_at = |step: usize| {
            self.tempo
                .iter()
                .take_while(|t| t.step <= step)
                .last()
                .map_or(crate::midi::DEFAULT_MICROS_PER_QUARTER, |t| {
                    t.micros_per_quarter
                })
        };
        let start = f64::from(micros_at(0).max(1));
        let bpm = self.start_bpm();
        let mut out = vec![(0, 1.0)];
        for t in self.tempo.iter().filter(|t| t.step > 0) {
            let speed = (start / f64::from(t.micros_per_quarter.max(1))).clamp(0.01, 100.0);
            out.push((t.step, speed.clamp(4.0 / bpm, 2000.0 / bpm)));
        }
        out
    }

    /// The time in seconds at which `step` (fractional) sounds, along the tempo map scaled to
    /// the tempo box, as playback and export have it.
    pub fn seconds_at(&self, step: f64) -> f64 {
        let speed = self.speed();
        let step_seconds = |s: f64| 60.0 / (self.start_bpm() * s) / 4.0;
        let mut seconds = 0.0;
        for (k, &(from, s)) in speed.iter().enumerate() {
            let until = speed.get(k + 1).map_or(f64::INFINITY, |n| n.0 as f64);
            let from = from as f64;
            if step <= from {
                break;
            }
            seconds += (step.min(until) - from) * step_seconds(s);
        }
        seconds
    }

    /// The bars that overlap `from..to` (steps), numbered from 1 along the metre map (the
    /// last metre goes on past the piece's end).
    pub fn bars(&self, from: f64, to: f64) -> Vec<meter::Bar> {
        let end = self.steps().max(to.ceil() as usize);
        meter::BarMap::new(&self.meters).bars(end, from, to)
    }

    /// The metre map laid out in bars, to find many steps' bars in (see [`meter::BarMap`]).
    pub fn bar_map(&self) -> meter::BarMap {
        meter::BarMap::new(&self.meters)
    }

    /// The index of the note sounding at (`step`, `pitch`), the last drawn first.
    pub fn note_at(&self, step: usize, pitch: u8) -> Option<usize> {
        self.notes
            .iter()
            .rposition(|n| n.pitch == pitch && n.start <= step && step < n.end())
    }

    /// Adds a hand-drawn note; returns its index.
    pub fn draw(&mut self, pitch: u8, start: usize, len: usize) -> usize {
        let len = len.clamp(1, Self::MAX_STEPS);
        self.notes.push(ScoreNote {
            pitch: pitch.min(PITCHES as u8 - 1),
            start: start.min(Self::MAX_STEPS - len),
            len,
            velocity: DEFAULT_VELOCITY,
            origin: Origin::Edited,
        });
        self.notes.len() - 1
    }

    /// Removes the notes with the given indices.
    pub fn delete(&mut self, indices: &[usize]) {
        let mut doomed = vec![false; self.notes.len()];
        for &i in indices {
            if let Some(d) = doomed.get_mut(i) {
                *d = true;
            }
        }
        // One pass, keeping the others in order (a whole piece may be deleted at once).
        let mut k = 0;
        self.notes.retain(|_| {
            k += 1;
            !doomed[k - 1]
        });
    }

    /// Moves notes by `steps` and `semitones` (clamped to the grid and the keyboard); they
    /// become hand-edited.
    pub fn shift(&mut self, indices: &[usize], steps: i64, semitones: i32) {
        for &i in indices {
            if let Some(n) = self.notes.get_mut(i) {
                // The piece ends by MAX_STEPS (what a saved score keeps).
                n.start = (n.start as i64 + steps)
                    .clamp(0, Self::MAX_STEPS.saturating_sub(n.len) as i64)
                    as usize;
                n.pitch = (i32::from(n.pitch) + semitones).clamp(0, PITCHES as i32 - 1) as u8;
                n.origin = Origin::Edited;
            }
        }
    }

    /// Changes the length of notes by `steps` (at least 1 step remains).
    pub fn stretch(&mut self, indices: &[usize], steps: i64) {
        for &i in indices {
            if let Some(n) = self.notes.get_mut(i) {
                n.len = (n.len as i64 + steps)
                    .clamp(1, Self::MAX_STEPS.saturating_sub(n.start).max(1) as i64)
                    as usize;
                n.origin = Origin::Edited;
            }
        }
    }

    /// Ends the overlaps of notes of one pitch that an edit of the notes at `edited` made, as
    /// a piano roll of a DAW does: an edited note stays as it is, and another of its pitch
    /// under it keeps only what lies outside it (cut short where it began before, started
    /// after it where it goes on past it, gone where wholly under it); of two edited notes
    /// that overlap, the later begun cuts the earlier short (of two begun together the longer
    /// stays). So the roll shows what an export writes and plays (a MIDI file holds one note
    /// of a pitch at a time), and no note hides under another. Only pitches where something
    /// overlapped change, their notes put last (drawn on top). Returns the edited notes' new
    /// indices and whether anything changed.
    pub fn settle(&mut self, edited: &[usize]) -> (Vec<usize>, bool) {
        use std::collections::{BTreeMap, HashSet};
        let is_edited: HashSet<usize> = edited.iter().copied().collect();
        let pitches: HashSet<u8> = (edited.iter())
            .filter_map(|&i| self.notes.get(i).map(|n| n.pitch))
            .collect();
        let mut groups: BTreeMap<u8, Vec<(ScoreNote, bool)>> = BTreeMap::new();
        for (i, n) in self.notes.iter().enumerate() {
            if pitches.contains(&n.pitch) {
                groups
                    .entry(n.pitch)
                    .or_default()
                    .push((*n, is_edited.contains(&i)));
            }
        }
        let settled: Vec<(u8, Vec<(ScoreNote, bool)>)> = (groups.into_iter())
            .filter_map(|(pitch, notes)| match settle_pitch(notes) {
                (notes, true) => Some((pitch, notes)),
                (_, false) => None,
            })
            .collect();
        if settled.is_empty() {
            return (edited.to_vec(), false);
        }
        let moved: HashSet<u8> = settled.iter().map(|(p, _)| *p).collect();
        let mut place = vec![None; self.notes.len()];
        let mut kept = Vec::with_capacity(self.notes.len());
        for (i, n) in std::mem::take(&mut self.notes).into_iter().enumerate() {
            if !moved.contains(&n.pitch) {
                place[i] = Some(kept.len());
                kept.push(n);
            }
        }
        let mut indices: Vec<usize> = (edited.iter())
            .filter_map(|&i| place.get(i).copied().flatten())
            .collect();
        for (_, notes) in settled {
            for (n, edited) in notes {
                if edited {
                    indices.push(kept.len());
                }
                kept.push(n);
            }
        }
        self.notes = kept;
        (indices, true)
    }

    /// Sets the velocity (1..=127) of the notes with the given indices; where they came from
    /// stays as it was.
    pub fn set_velocity(&mut self, indices: &[usize], velocity: u8) {
        for &i in indices {
            if let Some(n) = self.notes.get_mut(i) {
                n.velocity = velocity.clamp(1, 127);
            }
        }
    }

    /// Copies of the notes with the given indices, their starts counted from the first one's
    /// (what Copy puts on the clipboard), sorted by start and pitch.
    pub fn copy(&self, indices: &[usize]) -> Vec<ScoreNote> {
        let mut indices = indices.to_vec();
        indices.sort_unstable();
        indices.dedup();
        let mut notes: Vec<ScoreNote> = indices
            .iter()
            .filter_map(|&i| self.notes.get(i).copied())
            .collect();
        notes.sort_by_key(|n| (n.start, n.pitch));
        let first = notes.first().map_or(0, |n| n.start);
        for n in &mut notes {
            n.start -= first;
        }
        notes
    }

    /// Adds `notes` (starts counted from 0, as [`Score::copy`] gives them) from step `at` on,
    /// as hand-edited notes; near the longest piece a score keeps the group moves back whole
    /// to fit; a note that lands exactly on one of the same pitch and length is not added
    /// twice. Returns the indices of the pasted notes (of those they landed on, for those).
    pub fn paste(&mut self, notes: &[ScoreNote], at: usize) -> Vec<usize> {
        let span = notes
            .iter()
            .map(|n| n.start.saturating_add(n.len.max(1)))
            .max()
            .unwrap_or(0)
            .min(Self::MAX_STEPS);
        let at = at.min(Self::MAX_STEPS - span);
        // A note pasted onto the same note (a paste in place) is not stacked on it unseen:
        // the one there is selected instead.
        let there: std::collections::HashMap<(u8, usize, usize), usize> = (self.notes.iter())
            .enumerate()
            .map(|(i, n)| ((n.pitch, n.start, n.len), i))
            .collect();
        let mut selected = Vec::new();
        for n in notes.iter().filter(|n| n.pitch < PITCHES as u8) {
            let len = n.len.clamp(1, Self::MAX_STEPS);
            let start = at.saturating_add(n.start).min(Self::MAX_STEPS - len);
            if let Some(&i) = there.get(&(n.pitch, start, len)) {
                selected.push(i);
                continue;
            }
            selected.push(self.notes.len());
            self.notes.push(ScoreNote {
                start,
                len,
                velocity: n.velocity.clamp(1, 127),
                origin: Origin::Edited,
                ..*n
            });
        }
        selected.sort_unstable();
        selected.dedup();
        selected
    }

    /// How far the lengths of the given notes can change together, at most `steps`: the
    /// change [`Score::stretch`] makes without pressing any of them against the 1-step
    /// minimum or the longest piece (0 where one already is), so a chord keeps its shape.
    pub fn group_stretch(&self, indices: &[usize], steps: i64) -> i64 {
        let notes: Vec<&ScoreNote> = indices.iter().filter_map(|&i| self.notes.get(i)).collect();
        let (Some(shortest), Some(end)) = (
            notes.iter().map(|n| n.len).min(),
            notes.iter().map(|n| n.end()).max(),
        ) else {
            return 0;
        };
        let longer = Self::MAX_STEPS.saturating_sub(end) as i64;
        steps.clamp(1 - shortest as i64, longer)
    }

    /// How far the given notes can move together, at most `steps` and `semitones`: the move
    /// [`Score::shift`] makes without pressing any of them against the grid's start, the
    /// longest piece or the keyboard's ends (0 where one already is).
    pub fn group_move(&self, indices: &[usize], steps: i64, semitones: i32) -> (i64, i32) {
        let notes: Vec<&ScoreNote> = indices.iter().filter_map(|&i| self.notes.get(i)).collect();
        let (Some(start), Some(end)) = (
            notes.iter().map(|n| n.start).min(),
            notes.iter().map(|n| n.end()).max(),
        ) else {
            return (0, 0);
        };
        let low = notes.iter().map(|n| i32::from(n.pitch)).min().unwrap_or(0);
        let high = notes.iter().map(|n| i32::from(n.pitch)).max().unwrap_or(0);
        let later = Self::MAX_STEPS.saturating_sub(end) as i64;
        (
            steps.clamp(-(start as i64), later),
            semitones.clamp(-low, PITCHES as i32 - 1 - high),
        )
    }

    /// The steps the given notes span: (first start, last end); `None` for no notes.
    pub fn span(&self, indices: &[usize]) -> Option<(usize, usize)> {
        let notes = indices.iter().filter_map(|&i| self.notes.get(i));
        let start = notes.clone().map(|n| n.start).min()?;
        Some((start, notes.map(ScoreNote::end).max()?))
    }

    /// Indices of the notes inside the box of steps `[s0, s1)` and pitches `[p0, p1]`.
    pub fn in_box(&self, s0: usize, s1: usize, p0: u8, p1: u8) -> Vec<usize> {
        self.notes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.pitch >= p0 && n.pitch <= p1 && n.start < s1 && n.end() > s0)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The notes of one pitch (each with whether the edit moved it) without overlaps (see
/// [`Score::settle`]), and whether any had to change. Sorting and binary searches: a large
/// selection moved over a long piece settles in about n log n.
fn settle_pitch(notes: Vec<(ScoreNote, bool)>) -> (Vec<(ScoreNote, bool)>, bool) {
    // The edited notes' spans, merged where they touch.
    let mut spans: Vec<(usize, usize)> = (notes.iter())
        .filter(|(_, edited)| *edited)
        .map(|(n, _)| (n.start, n.end()))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut changed = false;
    let mut out = Vec::with_capacity(notes.len() + 1);
    for (n, edited) in notes {
        let (start, end) = (n.start, n.end());
        let first = merged.partition_point(|&(_, b)| b <= start);
        let over = merged[first..].iter().take_while(|&&(a, _)| a < end);
        if edited || over.clone().next().is_none() {
            out.push((n, edited));
            continue;
        }
        // What of it lies outside every edited note: a head before the first it meets, the
        // rest after the last; a note with an edited one inside keeps both sides.
        changed = true;
        let piece = |s: usize, e: usize| ScoreNote {
            start: s,
            len: e - s,
            ..n
        };
        let mut from = start;
        for &(a, b) in over {
            if a > from {
                out.push((piece(from, a), false));
            }
            from = from.max(b);
        }
        if from < end {
            out.push((piece(from, end), false));
        }
    }
    // Edited notes over edited ones (and notes that overlapped before the edit): the later
    // begun cuts the earlier; of two begun together the edited one stays, else the longer.
    out.sort_by_key(|(n, edited)| (n.start, !edited, std::cmp::Reverse(n.len)));
    let mut settled: Vec<(ScoreNote, bool)> = Vec::with_capacity(out.len());
    for (n, edited) in out {
        if let Some((last, _)) = settled.last_mut() {
            if last.start == n.start {
                changed = true;
                continue;
            }
            if last.end() > n.start {
                last.len = n.start - last.start;
                changed = true;
            }
        }
        settled.push((n, edited));
    }
    (settled, changed)
}

/// Undo and redo over whole-score snapshots (a score is small, thousands of notes; a dense
/// one keeps fewer snapshots, see `HISTORY_NOTES`).
#[derive(Debug, Clone, Default)]
pub struct History {
    undo: Vec<Score>,
    redo: Vec<Score>,
    /// Counts the steps recorded, undone and redone.
    revision: u64,
}

/// Snapshots kept for undo.
const HISTORY_LIMIT: usize = 200;
/// Notes the undo snapshots hold together at most (about 40 MB), so that a dense piece (a
/// million notes) keeps fewer steps rather than gigabytes; the latest step is always kept.
const HISTORY_NOTES: usize = 2_000_000;

impl History {
    /// Records `before` as the state to go back to; clears the redo list.
    pub fn record(&mut self, before: &Score) {
        // A change follows: the revision moves even where `before` is the step recorded last
        // (a file opened twice, then edited), so that the change is seen.
        self.revision += 1;
        if self.undo.last() == Some(before) {
            return;
        }
        self.undo.push(before.clone());
        self.redo.clear();
        let mut notes: usize = self.undo.iter().map(|s| s.notes.len()).sum();
        let mut oldest = 0;
        while self.undo.len() - oldest > 1
            && (self.undo.len() - oldest > HISTORY_LIMIT || notes > HISTORY_NOTES)
        {
            notes -= self.undo[oldest].notes.len();
            oldest += 1;
        }
        self.undo.drain(..oldest);
    }

    /// Goes back one step; returns whether anything changed.
    pub fn undo(&mut self, score: &mut Score) -> bool {
        match self.undo.pop() {
            Some(previous) => {
                self.redo.push(std::mem::replace(score, previous));
                self.revision += 1;
                true
            }
            None => false,
        }
    }

    /// Goes forward one step; returns whether anything changed.
    pub fn redo(&mut self, score: &mut Score) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(std::mem::replace(score, next));
                self.revision += 1;
                true
            }
            None => false,
        }
    }

    /// Changes with every step recorded (or asked to be: one equal to the last recorded is
    /// kept once), undone or redone: equal twice, nothing was done to the history in between.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether there is anything to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is anything to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A note moved, drawn or stretched onto notes of its pitch stays whole; they keep what
    /// lies outside it; notes of other pitches and pitches not edited stay as they were.
    #[test]
    fn settling_an_edit_leaves_no_note_under_another() {
        let note = |pitch: u8, start: usize, len: usize| ScoreNote {
            pitch,
            start,
            len,
            velocity: 80,
            origin: Origin::Primer,
        };
        let spans = |score: &Score, pitch: u8| {
            let mut v: Vec<(usize, usize)> = (score.notes.iter())
                .filter(|n| n.pitch == pitch)
                .map(|n| (n.start, n.len))
                .collect();
            v.sort_unstable();
            v
        };
        let mut score = Score::new();
        score.notes = vec![
            note(60, 0, 16), // the edited note lands inside: a head and a tail stay
            note(62, 8, 4),  // wholly under the edited D: gone
            note(62, 2, 8),  // begun before it: cut short
            note(62, 14, 6), // goes on past it: starts after it
            note(64, 8, 4),  // a pitch not edited
            note(64, 9, 4),  // (overlapping, and left so)
            note(60, 6, 4),  // edited
            note(62, 6, 10), // edited
        ];
        let (kept, changed) = score.settle(&[6, 7]);
        assert!(changed);
        assert_eq!(spans(&score, 60), vec![(0, 6), (6, 4), (10, 6)]);
        assert_eq!(spans(&score, 62), vec![(2, 4), (6, 10), (16, 4)]);
        assert_eq!(spans(&score, 64), vec![(8, 4), (9, 4)]);
        let edited: Vec<(u8, usize, usize)> = (kept.iter())
            .map(|&i| {
                (
                    score.notes[i].pitch,
                    score.notes[i].start,
                    score.notes[i].len,
                )
            })
            .collect();
        assert_eq!(edited, vec![(60, 6, 4), (62, 6, 10)]);
        // Two edited notes of one pitch: the later cuts the earlier; begun together, one goes.
        let mut score = Score::new();
        score.notes = vec![
            note(67, 0, 8),
            note(67, 4, 8),
            note(69, 0, 4),
            note(69, 0, 4),
        ];
        let (kept, _) = score.settle(&[0, 1, 2, 3]);
        assert_eq!(spans(&score, 67), vec![(0, 4), (4, 8)]);
        assert_eq!(spans(&score, 69), vec![(0, 4)]);
        assert_eq!(kept.len(), 3);
        // Nothing overlapping: nothing moves in the list (the style meter hears no change).
        let before = score.clone();
        assert_eq!(score.settle(&[2, 0]), (vec![2, 0], false));
        assert_eq!(score, before);
    }

    /// The style meter's key changes with what the classifier reads (which notes sound, the
    /// length, the metre) and not with the tempo or the notes' loudness.
    #[test]
    fn the_sounding_key_follows_what_sounds() {
        let mut score = Score {
            bpm: 120.0,
            ..Score::default()
        };
        score.notes.push(ScoreNote {
            pitch: 60,
            start: 4,
            len: 2,
            velocity: 80,
            origin: Origin::Edited,
        });
        let key = score.sounding_key();
        let same = |change: &dyn Fn(&mut Score)| {
            let mut s = score.clone();
            change(&mut s);
            s.sounding_key() == key
        };
        assert!(same(&|s| s.bpm = 90.0));
        assert!(same(&|s| s.notes[0].velocity = 30));
        assert!(same(&|s| s.notes[0].origin = Origin::Generated));
        assert!(!same(&|s| s.notes[0].pitch = 61));
        assert!(!same(&|s| s.notes[0].start = 5));
        assert!(!same(&|s| s.notes[0].len = 3));
        assert!(!same(&|s| s.length = 32));
        assert!(!same(&|s| {
            s.meters = vec![StepMeter {
                step: 0,
                meter: crate::midi::Meter {
                    numerator: 3,
                    denominator: 4,
                },
            }]
            .into()
        }));
    }

    /// A file faster than playback and export go (1200 bpm) opens with the tempo box at what
    /// plays and is exported (1000), not at a tempo nothing uses.
    #[test]
    fn an_opened_tempo_out_of_range_shows_what_plays() {
        let tempo = vec![crate::roll::StepTempo {
            step: 0,
            micros_per_quarter: 50_000,
        }];
        let roll = Roll::from_notes(8, &[], tempo);
        let score = Score::from_roll(&roll, Origin::Primer);
        let exported = 60e6 / f64::from(score.to_roll().micros_per_quarter_at(0));
        assert!(
            (score.bpm - exported).abs() < 1e-6,
            "{} vs {exported}",
            score.bpm
        );
        assert_eq!(score.bpm, 1000.0);
    }

    /// An opening slower than the tempo box goes (a first chord held at 6 bpm) plays at the
    /// slowest it takes; the rest of the piece keeps its own tempo.
    #[test]
    fn an_opened_tempo_out_of_range_leaves_the_later_tempos_alone() {
        let tempo = |step: usize, bpm: f64| crate::roll::StepTempo {
            step,
            micros_per_quarter: (60e6 / bpm) as u32,
        };
        let roll = Roll::from_notes(16, &[], vec![tempo(0, 6.0), tempo(8, 60.0)]);
        let exported = Score::from_roll(&roll, Origin::Primer).to_roll();
        let bpm_at = |step: usize| 60e6 / f64::from(exported.micros_per_quarter_at(step));
        assert!((bpm_at(0) - 10.0).abs() < 1e-3, "{}", bpm_at(0));
        assert!((bpm_at(8) - 60.0).abs() < 1e-3, "{}", bpm_at(8));
    }

    #[test]
    fn the_history_keeps_at_most_its_steps_and_notes() {
        let mut history = History::default();
        let mut score = Score::new();
        for k in 0..HISTORY_LIMIT + 10 {
            score.draw(60, k, 1);
            history.record(&score);
        }
        assert_eq!(history.undo.len(), HISTORY_LIMIT);
        // A dense piece: fewer steps, the newest kept.
        let mut dense = Score::new();
        dense.notes = vec![score.notes[0]; 900_000];
        for _ in 0..3 {
            history.record(&dense);
            dense.notes.pop();
        }
        assert_eq!(history.undo.len(), 2);
        assert_eq!(history.undo.last().unwrap().notes.len(), 899_998);
        let mut huge = Score::new();
        huge.notes = vec![score.notes[0]; HISTORY_NOTES + 1];
        history.record(&huge);
        assert_eq!(history.undo.len(), 1);
    }

    #[test]
    fn undo_snapshots_share_the_tempo_and_metre_maps() {
        let mut roll = Roll::new(64);
        roll.set_tempo(
            (0..32)
                .map(|k| StepTempo {
                    step: 2 * k,
                    micros_per_quarter: 400_000 + 1000 * k as u32,
                })
                .collect(),
        );
        let mut score = Score::from_roll(&roll, Origin::Primer);
        let mut history = History::default();
        for pitch in 60..70 {
            history.record(&score);
            score.draw(pitch, 0, 4);
        }
        assert_eq!(history.undo.len(), 10);
        for snapshot in &history.undo {
            assert!(Arc::ptr_eq(&snapshot.tempo, &score.tempo));
            assert!(Arc::ptr_eq(&snapshot.meters, &score.meters));
        }
        assert!(history.undo(&mut score));
        assert_eq!(score.tempo.len(), 32);
    }

    #[test]
    fn edits_round_trip_through_the_roll_and_undo() {
        let mut score = Score::new();
        let mut history = History::default();
        history.record(&score);
        let a = score.draw(60, 0, 4);
        score.draw(64, 2, 2);
        assert_eq!(score.steps(), 4);
        assert_eq!(score.note_at(3, 60), Some(a));
        assert_eq!(score.note_at(4, 60), None);
        history.record(&score);
        score.shift(&[a], 4, 12);
        score.stretch(&[a], 2);
        assert_eq!(score.notes[a].start, 4);
        assert_eq!(score.notes[a].pitch, 72);
        assert_eq!(score.notes[a].len, 6);
        let roll = score.to_roll();
        assert_eq!(roll.steps(), 10);
        let back = Score::from_roll(&roll, Origin::Edited);
        assert_eq!(back.notes.len(), 2);
        assert_eq!(back.steps(), 10);
        assert!((back.bpm - 120.0).abs() < 0.01);
        assert_eq!(score.in_box(0, 4, 60, 70).len(), 1);
        assert!(history.undo(&mut score));
        assert_eq!(score.notes[a].pitch, 60);
        assert!(history.undo(&mut score));
        assert!(score.notes.is_empty());
        assert!(!history.undo(&mut score));
        assert!(history.redo(&mut score));
        assert_eq!(score.notes.len(), 2);
        score.delete(&[0, 0, 7]);
        assert_eq!(score.notes.len(), 1);
    }

    #[test]
    fn trailing_rests_stay_through_the_roll() {
        // A bar of rests after the last note, as an opened file or a generation may end.
        let roll = Roll::from_notes(
            32,
            &[RollNote {
                start: 0,
                len: 4,
                pitch: 60,
                velocity: 90,
            }],
            Vec::new(),
        );
        let mut score = Score::from_roll(&roll, Origin::Primer);
        assert_eq!(score.steps(), 32);
        assert_eq!(score.trailing_rests(), 28);
        assert_eq!(score.to_roll().steps(), 32);
        // A note drawn past the end lengthens the piece; deleting it leaves the length.
        let late = score.draw(62, 40, 4);
        assert_eq!(score.steps(), 44);
        score.delete(&[late]);
        assert_eq!(score.steps(), 32);
        // Notes stay inside the longest piece a score keeps.
        let far = score.draw(60, usize::MAX, 8);
        assert_eq!(score.notes[far].end(), Score::MAX_STEPS);
        score.shift(&[far], i64::MAX / 2, 0);
        score.stretch(&[far], 1000);
        assert_eq!(score.notes[far].end(), Score::MAX_STEPS);
        score.delete(&[far]);
        // A saved length past the limit is brought into range.
        score.length = usize::MAX;
        score.sanitize();
        assert_eq!(score.steps(), Score::MAX_STEPS);
    }

    #[test]
    fn a_group_moves_as_one_and_pastes_whole() {
        let mut score = Score::new();
        score.draw(120, 2, 4);
        score.draw(60, 8, 4);
        let both = [0, 1];
        // Up by 12 would push the top note off the keyboard: the chord moves 7, whole.
        assert_eq!(score.group_move(&both, -4, 12), (-2, 7));
        assert_eq!(score.group_move(&both, 0, -100), (0, -60));
        assert_eq!(score.group_move(&[], 5, 5), (0, 0));
        // Shortened by 6, the 4-step notes would stop at 1 step while longer ones went on
        // shrinking: the group shrinks by 3, whole.
        score.draw(40, 20, 10);
        assert_eq!(score.group_stretch(&[0, 2], -6), -3);
        assert_eq!(score.group_stretch(&[0, 2], 5), 5);
        assert_eq!(score.group_stretch(&[], 5), 0);
        score.delete(&[2]);
        // Copied notes count from the first; a paste near the end moves back whole.
        let copied = score.copy(&[1, 0, 1]);
        assert_eq!(copied.len(), 2);
        assert_eq!((copied[0].start, copied[1].start), (0, 6));
        let pasted = score.paste(&copied, usize::MAX);
        let starts: Vec<usize> = pasted.iter().map(|&i| score.notes[i].start).collect();
        assert_eq!(starts, vec![Score::MAX_STEPS - 10, Score::MAX_STEPS - 4]);
        assert!(
            pasted
                .iter()
                .all(|&i| score.notes[i].origin == Origin::Edited)
        );
    }

    #[test]
    fn the_tempo_map_keeps_its_shape_at_any_tempo() {
        let mut roll = Roll::new(16);
        roll.set_tempo(vec![
            StepTempo {
                step: 0,
                micros_per_quarter: 500_000, // 120 bpm
            },
            StepTempo {
                step: 8,
                micros_per_quarter: 1_000_000, // 60 bpm
            },
        ]);
        let mut score = Score::from_roll(&roll, Origin::Primer);
        assert!((score.bpm - 120.0).abs() < 1e-9);
        assert_eq!(score.speed(), vec![(0, 1.0), (8, 0.5)]);
        assert_eq!(score.to_roll().tempo(), roll.tempo());
        // Twice the tempo in the box: the whole map twice as fast.
        score.bpm = 240.0;
        let micros: Vec<u32> = score
            .to_roll()
            .tempo()
            .iter()
            .map(|t| t.micros_per_quarter)
            .collect();
        assert_eq!(micros, vec![250_000, 500_000]);
        // 8 steps at 240 bpm (0.5 s), then 8 at 120 bpm (1 s).
        assert!((score.seconds_at(8.0) - 0.5).abs() < 1e-9);
        assert!((score.seconds_at(16.0) - 1.5).abs() < 1e-9);
        // An absurd change is held in range.
        let mut tempo = score.tempo.to_vec();
        tempo.push(StepTempo {
            step: 12,
            micros_per_quarter: 1,
        });
        score.tempo = tempo.into();
        assert_eq!(score.speed()[2].0, 12);
        assert!(score.speed()[2].1 * score.bpm <= 2000.0 + 1e-9);
    }

    #[test]
    fn the_metre_map_lays_out_bars_goes_to_the_roll_and_comes_from_old_sessions() {
        let waltz = crate::midi::Meter {
            numerator: 3,
            denominator: 4,
        };
        let mut score = Score::new();
        score.draw(60, 0, 40);
        score.meters = Arc::from([StepMeter {
            step: 0,
            meter: waltz,
        }]);
        let starts: Vec<f64> = score.bars(0.0, 40.0).iter().map(|b| b.start).collect();
        assert_eq!(starts, vec![0.0, 12.0, 24.0, 36.0]);
        assert_eq!(score.bar_map().position(18.0), 2.5);
        assert_eq!(score.to_roll().meter_at(39), waltz);
        // A session written before the metre map kept one metre, as `meter`.
        let old =
            r#"{"notes":[],"bpm":90.0,"primer_steps":0,"meter":{"numerator":3,"denominator":4}}"#;
        let mut read: Score = serde_json::from_str(old).unwrap();
        read.sanitize();
        assert_eq!(read.meters, score.meters);
        let written = serde_json::to_value(&read).unwrap();
        assert!(written.get("meter").is_none() && written.get("meters").is_some());
    }
}
