//! Live playback: the built-in synth plays the score through the sound card.
//!
//! The GUI thread talks to the audio thread through lock-free single-producer rings
//! ([`rtrb`]): commands go in, and pieces the audio thread has replaced come back so that they
//! are freed on the GUI thread. The audio side never locks, allocates or frees: it renders into
//! a fixed buffer, swaps `Arc`s it is handed, and publishes the playhead through atomics. The
//! stream's errors, also reported on the audio thread, are stored in an atomic for the GUI to
//! read (a lost device is said, with a way to reconnect), never printed there.

use std::num::NonZero;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::synth::Synth;

/// Places in the ring of commands to the audio thread.
const COMMAND_SLOTS: usize = 64;

/// Sample rate of a detached engine (a device's engine runs at the device's own rate).
pub const SAMPLE_RATE: u32 = 44_100;

/// A note event on the step grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEvent {
    /// Step at which it happens.
    pub step: usize,
    /// Pitch.
    pub pitch: u8,
    /// Velocity; 0 = note off.
    pub velocity: u8,
}

/// What the audio thread plays: events sorted by step (offs before ons on a step).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayScore {
    /// Sorted events (not to be changed: [`PlayScore::open_before`] counts them).
    events: Vec<StepEvent>,
    /// Steps in all.
    pub steps: usize,
    /// The tempo map as speeds relative to the tempo command: (step, speed from there on),
    /// sorted by step; empty means one tempo throughout.
    pub speed: Vec<(usize, f64)>,
    /// Per pitch, the notes open before event `k * OPEN_EVERY`, for every k: what sounds at
    /// a place is found reading at most that many events (the audio callback seeks on every
    /// loop turn, and a piece of a million notes took milliseconds to count from its start).
    open_before: Vec<[u16; 128]>,
}

/// Events between two of [`PlayScore::open_before`]'s counts.
const OPEN_EVERY: usize = 4096;

impl PlayScore {
    /// Events of notes `(pitch, start, len, velocity)`.
    pub fn from_notes(notes: impl Iterator<Item = (u8, usize, usize, u8)>) -> Self {
        let mut events = Vec::with_capacity(2 * notes.size_hint().0);
        let mut steps = 0;
        for (pitch, start, len, velocity) in notes {
            events.push(StepEvent {
                step: start,
                pitch,
                velocity: velocity.max(1),
            });
            events.push(StepEvent {
                step: start + len,
                pitch,
                velocity: 0,
            });
            steps = steps.max(start + len);
        }
        // Offs before ons on a step; of two ons of one pitch on a step the louder last, so
        // that it is the one heard, as the exported file keeps the loudest.
        // (Events with equal keys are equal: no stable sort is needed.)
        events.sort_unstable_by_key(|e| (e.step, e.velocity != 0, e.pitch, e.velocity));
        // Before event 0, OPEN_EVERY, 2 OPEN_EVERY, ... up to the end (a count for every
        // index `open_before` can be asked).
        let mut open_before = vec![[0u16; 128]];
        for chunk in events.chunks_exact(OPEN_EVERY) {
            let last = open_before[open_before.len() - 1];
            open_before.push(open_after(last, chunk));
        }
        PlayScore {
            events,
            steps,
            speed: Vec::new(),
            open_before,
        }
    }

    /// Per pitch, the notes begun before `step` and not ended by it: what the audio thread
    /// counts at each seek and loop turn.
    pub fn open_at(&self, step: usize) -> [u16; 128] {
        self.open_before(self.first_at(step))
    }

    /// Per pitch, how many notes the events before `index` begin and do not end. No
    /// allocation, and at most [`OPEN_EVERY`] events read: it runs on the audio thread.
    fn open_before(&self, index: usize) -> [u16; 128] {
        let index = index.min(self.events.len());
        let k = index / OPEN_EVERY;
        let start = self.open_before.get(k).copied().unwrap_or([0; 128]);
        open_after(start, &self.events[k * OPEN_EVERY..index])
    }

    /// The same piece played along a tempo map of relative speeds (see [`PlayScore::speed`]);
    /// speeds that are not positive numbers are left out, the others kept within 1/100 and
    /// 100 times (an endless speed would fire every event of the piece in one block).
    pub fn with_speed(mut self, mut speed: Vec<(usize, f64)>) -> Self {
        speed.retain(|(_, s)| s.is_finite() && *s > 0.0);
        for (_, s) in &mut speed {
            *s = s.clamp(0.01, 100.0);
        }
        speed.sort_by_key(|(step, _)| *step);
        self.speed = speed;
        self
    }

    /// The speed in force at `position` and the step of the next change (if any).
    fn speed_at(&self, position: f64) -> (f64, Option<usize>) {
        let next = self
            .speed
            .partition_point(|(step, _)| *step as f64 <= position);
        let speed = next.checked_sub(1).map_or(1.0, |i| self.speed[i].1);
        (speed, self.speed.get(next).map(|(step, _)| *step))
    }

    /// Index of the first event at or after `step`.
    fn first_at(&self, step: usize) -> usize {
        self.events.partition_point(|e| e.step < step)
    }
}

/// What the GUI asks of the audio thread.
pub enum Command {
    /// Play from a step.
    Play(usize),
    /// Stop (notes release).
    Stop,
    /// Move the playhead to a step, playing on from there if playing.
    Seek(usize),
    /// Replace the piece; playback, if running, goes on from the same position.
    Score(Arc<PlayScore>),
    /// Tempo at the start in quarter notes per minute (the piece's tempo map, if any,
    /// multiplies it from there on).
    Tempo(f64),
    /// Loop the steps `[start, end)`, or no loop.
    Loop(Option<(usize, usize)>),
    /// Sound one key (pitch, velocity) for a moment.
    Preview(u8),
}

/// The playhead as the audio thread last published it.
#[derive(Debug, Default)]
pub struct Transport {
    /// Position in steps, as f64 bits.
    position: AtomicU64,
    /// Whether it is playing.
    playing: AtomicBool,
    /// Why the stream stopped for good: 0 while it runs, else a [`Lost`] code.
    lost: AtomicU8,
}

/// Why a sound stream stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The device went away (unplugged, or switched off).
    Disconnected,
    /// The system replaced the stream's setup (another default device, say).
    Invalidated,
    /// The sound server or subsystem stopped.
    ServerGone,
}

impl Lost {
    /// In words, for the window.
    pub fn describe(self) -> &'static str {
        match self {
            Lost::Disconnected => "the sound device was disconnected",
            Lost::Invalidated => "the system changed the sound device's setup",
            Lost::ServerGone => "the sound server stopped",
        }
    }

    /// The errors after which a stream never plays again; the others (an underrun, a route
    /// the system followed by itself) pass.
    fn of(kind: rodio::CpalErrorKind) -> Option<Lost> {
        use rodio::CpalErrorKind as K;
        match kind {
            K::DeviceNotAvailable => Some(Lost::Disconnected),
            K::StreamInvalidated => Some(Lost::Invalidated),
            K::HostUnavailable => Some(Lost::ServerGone),
            _ => None,
        }
    }
}

impl Transport {
    /// Position in steps (fractional).
    pub fn position(&self) -> f64 {
        f64::from_bits(self.position.load(Ordering::Relaxed))
    }

    /// Whether playback runs.
    pub fn playing(&self) -> bool {
        self.playing.load(Ordering::Relaxed)
    }

    /// Takes note of a stream error (called on the audio thread: one atomic store).
    pub fn report(&self, kind: rodio::CpalErrorKind) {
        if let Some(lost) = Lost::of(kind) {
            self.lost.store(lost as u8 + 1, Ordering::Relaxed);
        }
    }

    /// Whether, and why, the stream has stopped for good.
    pub fn lost(&self) -> Option<Lost> {
        match self.lost.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Lost::Disconnected),
            2 => Some(Lost::Invalidated),
            _ => Some(Lost::ServerGone),
        }
    }
}

/// Samples rendered per block (the synth's unit of work).
const BLOCK: usize = 128;
/// Preview notes last this many samples at `rate`: a third of a second.
fn preview_samples(rate: u32) -> u32 {
    rate / 3
}

/// The audio-thread side: the synth, the piece and the position.
pub struct Engine {
    synth: Synth,
    /// Samples a second.
    rate: u32,
    commands: Consumer<Command>,
    garbage: Producer<Arc<PlayScore>>,
    transport: Arc<Transport>,
    score: Arc<PlayScore>,
    next_event: usize,
    position: f64,
    /// The events at or before this step have fired (or were skipped by a seek): a block can
    /// end exactly on an event's step, which then fires at the start of the next block, so a
    /// new score put in place before it must still play it.
    fired_through: f64,
    playing: bool,
    bpm: f64,
    looped: Option<(usize, usize)>,
    preview: Option<(u8, u32)>,
    /// Per pitch, the score's notes that have begun and not yet ended at the position
    /// (previews aside): two overlapping notes of one pitch release the voice only when the
    /// second ends, as the exported file holds it.
    sounding: [u16; 128],
    /// Pitches the score has struck and not yet released (a note begun before a seek is
    /// counted above but was never struck): a preview of such a pitch is left to the score.
    struck: [bool; 128],
    buffer: [f32; BLOCK],
    cursor: usize,
}

/// Per pitch, how many notes are open after `events`, `open` having been before them. No
/// allocation: it runs on the audio thread.
fn open_after(mut open: [u16; 128], events: &[StepEvent]) -> [u16; 128] {
    for e in events {
        let count = &mut open[usize::from(e.pitch & 0x7f)];
        *count = if e.velocity == 0 {
            count.saturating_sub(1)
        } else {
            count.saturating_add(1)
        };
    }
    open
}

impl Engine {
    /// Steps a sample advances at `speed` times the tempo.
    fn steps_per_sample(&self, speed: f64) -> f64 {
        self.bpm * speed * 4.0 / 60.0 / f64::from(self.rate)
    }

    fn seek(&mut self, step: f64) {
        self.silence();
        self.position = step.max(0.0);
        let first = self.position.ceil();
        self.next_event = self.score.first_at(first as usize);
        self.fired_through = first - 0.5;
        // Notes begun before the position are not heard, but their ends are still counted.
        self.sounding = self.score.open_before(self.next_event);
    }

    fn silence(&mut self) {
        self.synth.all_notes_off();
        self.sounding = [0; 128];
        self.struck = [false; 128];
    }

    /// Puts `score` in place at the current position: notes that go on sounding in it are not
    /// cut (an edit while playing must not silence the held notes), notes it no longer holds
    /// here stop, and playback goes on with its next event. No allocation: a count per pitch.
    fn swap_score(&mut self, score: Arc<PlayScore>) {
        let old = std::mem::replace(&mut self.score, score);
        // Freed on the GUI thread; if the ring is full it is dropped here, which only happens
        // when the GUI stops collecting.
        let _ = self.garbage.push(old);
        let now = self.fired_through + 1e-9;
        let past = self.score.events.partition_point(|e| e.step as f64 <= now);
        let held = self.score.open_before(past);
        for pitch in 0..128u8 {
            let p = usize::from(pitch);
            if self.struck[p] && held[p] == 0 {
                self.synth.note_off(pitch);
                self.struck[p] = false;
            }
        }
        self.sounding = held;
        self.next_event = past;
    }

    fn handle_commands(&mut self) {
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                Command::Play(step) => {
                    self.seek(step as f64);
                    self.playing = true;
                }
                Command::Stop => {
                    self.playing = false;
                    self.silence();
                }
                Command::Seek(step) => self.seek(step as f64),
                Command::Score(score) => self.swap_score(score),
                Command::Tempo(bpm) if bpm.is_finite() => self.bpm = bpm.clamp(10.0, 1000.0),
                Command::Tempo(_) => {}
                Command::Loop(range) => self.looped = range.filter(|(a, b)| b > a),
                Command::Preview(pitch) => {
                    if let Some((p, _)) = self.preview
                        && !self.struck[usize::from(p & 0x7f)]
                    {
                        self.synth.note_off(p);
                    }
                    self.synth.note_on(pitch, 96);
                    self.preview = Some((pitch, preview_samples(self.rate)));
                }
            }
        }
    }

    /// Renders the next block into the buffer: between events and changes of tempo the synth
    /// renders whole chunks; events fire on the first sample at or after their step.
    fn render_block(&mut self) {
        self.handle_commands();
        let mut done = 0;
        while done < BLOCK {
            let mut chunk = BLOCK - done;
            let mut per_sample = 0.0;
            // The next change of tempo and the speed up to it.
            let mut ahead: Option<(usize, f64)> = None;
            if self.playing {
                let end = self.looped.map_or(self.score.steps, |(_, b)| b);
                self.fire_due(end);
                if self.playing {
                    let (speed, change) = self.score.speed_at(self.position);
                    per_sample = self.steps_per_sample(speed);
                    ahead = change.map(|c| (c, speed));
                    let next = self
                        .score
                        .events
                        .get(self.next_event)
                        .map_or(end, |e| e.step.min(end))
                        .min(change.unwrap_or(usize::MAX)) as f64;
                    let until = ((next - self.position) / per_sample).ceil().max(1.0);
                    chunk = chunk.min(until as usize);
                }
            }
            self.synth.render(&mut self.buffer[done..done + chunk]);
            done += chunk;
            if self.playing {
                let before = self.position;
                self.position += per_sample * chunk as f64;
                // A chunk ends on the sample at or after a change of tempo: the part of it past
                // the change goes at the new speed, so changes add no drift.
                if let Some((change, speed)) = ahead {
                    let at = change as f64;
                    if before < at && self.position > at {
                        let new = self.score.speed_at(at).0;
                        self.position = at + (self.position - at) * new / speed;
                    }
                }
            }
            if let Some((p, left)) = self.preview {
                let left = left.saturating_sub(chunk as u32);
                self.preview = if left == 0 {
                    // A note of the score on this pitch took the voice over: it ends with
                    // the score's note, not the preview.
                    if !self.struck[usize::from(p & 0x7f)] {
                        self.synth.note_off(p);
                    }
                    None
                } else {
                    Some((p, left))
                };
            }
        }
        self.transport
            .position
            .store(self.position.to_bits(), Ordering::Relaxed);
        self.transport
            .playing
            .store(self.playing, Ordering::Relaxed);
    }

    /// Plays the events that are due, then handles the end of the piece or of the loop.
    fn fire_due(&mut self, end: usize) {
        let now = self.position + 1e-9;
        self.fired_through = self.position;
        while let Some(e) = self.score.events.get(self.next_event) {
            if e.step as f64 > now || e.step >= end {
                break;
            }
            let p = usize::from(e.pitch & 0x7f);
            let open = &mut self.sounding[p];
            if e.velocity == 0 {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    self.synth.note_off(e.pitch);
                    self.struck[p] = false;
                }
            } else {
                *open = open.saturating_add(1);
                self.synth.note_on(e.pitch, e.velocity);
                self.struck[p] = true;
            }
            self.next_event += 1;
        }
        if now >= end as f64 {
            match self.looped {
                Some((a, _)) => self.seek(a as f64),
                None => {
                    self.playing = false;
                    self.silence();
                }
            }
        }
    }

    /// The next output sample (mono).
    pub fn next_sample(&mut self) -> f32 {
        if self.cursor == BLOCK {
            self.render_block();
            self.cursor = 0;
        }
        let s = self.buffer[self.cursor];
        self.cursor += 1;
        s
    }
}

impl Iterator for Engine {
    type Item = f32;
    fn next(&mut self) -> Option<f32> {
        Some(self.next_sample())
    }
}

impl rodio::Source for Engine {
    fn current_span_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> rodio::ChannelCount {
        NonZero::new(1).expect("1 is not zero")
    }
    fn sample_rate(&self) -> rodio::SampleRate {
        NonZero::new(self.rate).unwrap_or(NonZero::<u32>::MIN)
    }
    fn total_duration(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The GUI-thread side of playback.
pub struct Player {
    commands: Producer<Command>,
    /// Commands the audio thread had no room for yet (it stalled), in order; handed over by
    /// [`Player::flush`]. A newer piece, tempo or loop takes the place of the one waiting, a
    /// key heard replaces the one waiting, and a seek the seek just before it, so playback
    /// resumes with what the window shows, the transport's presses in their order.
    backlog: std::collections::VecDeque<Command>,
    garbage: Consumer<Arc<PlayScore>>,
    transport: Arc<Transport>,
    _sink: Option<rodio::MixerDeviceSink>,
}

impl Player {
    /// A player and its engine, not connected to any device (for tests and headless use:
    /// pull samples from the engine yourself).
    pub fn detached() -> (Player, Engine) {
        Player::with_transport(SAMPLE_RATE, Arc::new(Transport::default()))
    }

    /// A player and its engine at `rate` samples a second, publishing through `transport`.
    fn with_transport(rate: u32, transport: Arc<Transport>) -> (Player, Engine) {
        // Twice as many places for replaced pieces as for commands: the engine replaces a
        // piece only for a command, and the window empties the garbage each time it sends, so
        // at most the commands in the ring when it last emptied it, and those it sent then,
        // wait there: no piece is freed on the audio thread.
        let (commands, command_rx) = RingBuffer::new(COMMAND_SLOTS);
        let (garbage_tx, garbage) = RingBuffer::new(2 * COMMAND_SLOTS);
        let engine = Engine {
            synth: Synth::new(rate),
            rate,
            commands: command_rx,
            garbage: garbage_tx,
            transport: transport.clone(),
            score: Arc::new(PlayScore::default()),
            next_event: 0,
            position: 0.0,
            fired_through: -0.5,
            playing: false,
            bpm: 120.0,
            looped: None,
            preview: None,
            sounding: [0; 128],
            struck: [false; 128],
            buffer: [0.0; BLOCK],
            cursor: BLOCK,
        };
        (
            Player {
                commands,
                backlog: std::collections::VecDeque::new(),
                garbage,
                transport,
                _sink: None,
            },
            engine,
        )
    }

    /// Opens the default sound device (another output if it will not open) and starts the
    /// engine on it, at the device's own sample rate (nothing resampled on the way). Without a
    /// usable device this fails with a message; the studio then runs without sound. A device
    /// lost later shows in [`Transport::lost`].
    pub fn open() -> Result<Player, String> {
        let transport = Arc::new(Transport::default());
        let on_error = {
            let transport = transport.clone();
            move |e: rodio::CpalError| transport.report(e.kind())
        };
        let mut sink = open_sink(on_error).map_err(|e| format!("no audio output: {e}"))?;
        sink.log_on_drop(false);
        let rate = sink.config().sample_rate().get();
        let (mut player, engine) = Player::with_transport(rate, transport);
        sink.mixer().add(engine);
        player._sink = Some(sink);
        Ok(player)
    }

    /// The playhead, shared (to report a stream error to it from elsewhere, as a test does).
    pub fn shared_transport(&self) -> Arc<Transport> {
        self.transport.clone()
    }

    /// Sends a command; one the audio thread has no room for (it has not caught up with 64)
    /// waits for [`Player::flush`], never lost, a newer piece, tempo, loop or key heard taking
    /// the place of one waiting.
    pub fn send(&mut self, cmd: Command) {
        let kind = std::mem::discriminant(&cmd);
        let same = |c: &Command| std::mem::discriminant(c) == kind;
        match cmd {
            // State, not an action: the newest stands where the one waiting stood (a Play
            // sent after that one then plays the newest piece, not the one it replaced).
            Command::Score(_) | Command::Tempo(_) | Command::Loop(_) => {
                if let Some(waiting) = self.backlog.iter_mut().find(|c| same(c)) {
                    *waiting = cmd;
                    return self.flush();
                }
            }
            // A key heard late is heard last (a Stop before it would cut it).
            Command::Preview(_) => self.backlog.retain(|c| !same(c)),
            Command::Seek(_) if self.backlog.back().is_some_and(same) => {
                self.backlog.pop_back();
            }
            _ => {}
        }
        self.backlog.push_back(cmd);
        self.flush();
    }

    /// Whether commands wait for the audio thread (the window then looks again soon).
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Hands the audio thread the commands waiting, in order, as far as it has room (called
    /// every frame, and by [`Player::send`]); frees the pieces it has replaced.
    pub fn flush(&mut self) {
        while self.garbage.pop().is_ok() {}
        while let Some(cmd) = self.backlog.pop_front() {
            if let Err(rtrb::PushError::Full(cmd)) = self.commands.push(cmd) {
                self.backlog.push_front(cmd);
                break;
            }
        }
    }

    /// The playhead.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

/// A stream on the default output device, else on the first other output that opens (as
/// rodio's own default does), its errors passed to `on_error`.
fn open_sink(
    on_error: impl FnMut(rodio::CpalError) + Send + Clone + 'static,
) -> Result<rodio::MixerDeviceSink, rodio::DeviceSinkError> {
    use rodio::cpal::traits::{DeviceTrait, HostTrait};
    let open = |builder: rodio::DeviceSinkBuilder| {
        builder
            .with_error_callback(on_error.clone())
            .open_sink_or_fallback()
    };
    rodio::DeviceSinkBuilder::from_default_device()
        .and_then(open)
        .or_else(|first| {
            let Ok(outputs) = rodio::cpal::default_host().output_devices() else {
                return Err(first);
            };
            let mut outputs = outputs.filter(|d| {
                d.description()
                    // Not ALSA's null device; backends that name no driver (CoreAudio) pass.
                    .is_ok_and(|desc| desc.driver() != Some("null"))
            });
            outputs
                .find_map(|d| rodio::DeviceSinkBuilder::from_device(d).and_then(open).ok())
                .ok_or(first)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sounds before an event, read from the counts kept every few thousand events, is
    /// what counting every event from the start gives (notes of one pitch overlapping, and
    /// ending in other chunks than they began).
    #[test]
    fn open_notes_from_the_kept_counts_are_those_counted_from_the_start() {
        let notes = (0..3 * OPEN_EVERY).map(|i| {
            let pitch = 40 + (i % 7) as u8;
            (pitch, i / 2, 1 + (i * 37) % 900, 90)
        });
        let score = PlayScore::from_notes(notes);
        assert!(score.events.len() > 5 * OPEN_EVERY);
        for index in [
            0,
            1,
            OPEN_EVERY - 1,
            OPEN_EVERY,
            2 * OPEN_EVERY + 17,
            score.events.len(),
        ] {
            let counted = open_after([0; 128], &score.events[..index]);
            assert_eq!(score.open_before(index), counted, "before event {index}");
        }
        assert!(score.open_before(3 * OPEN_EVERY).iter().any(|&n| n > 1));
    }

    fn pull(engine: &mut Engine, samples: usize) -> f32 {
        (0..samples)
            .map(|_| engine.next_sample().abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn an_edit_while_playing_keeps_the_held_notes_and_stops_the_removed_ones() {
        let (mut player, mut engine) = Player::detached();
        let both =
            PlayScore::from_notes([(60u8, 0usize, 8usize, 100u8), (64, 0, 8, 100)].into_iter());
        player.send(Command::Score(Arc::new(both.clone())));
        player.send(Command::Tempo(120.0));
        player.send(Command::Play(0));
        pull(&mut engine, 4410); // step 0.8: both keys down
        assert!(engine.sounding[60] > 0 && engine.sounding[64] > 0);
        // The same piece again (an edit elsewhere): nothing is cut.
        player.send(Command::Score(Arc::new(both)));
        pull(&mut engine, 128);
        assert!(engine.sounding[60] > 0 && engine.sounding[64] > 0);
        // The E removed: it stops, the C sounds on, and ends on time.
        let c_only = PlayScore::from_notes([(60u8, 0usize, 8usize, 100u8)].into_iter());
        player.send(Command::Score(Arc::new(c_only)));
        pull(&mut engine, 128);
        assert!(engine.sounding[60] > 0 && engine.sounding[64] == 0);
        pull(&mut engine, 44_100); // past step 8
        assert!(engine.sounding[60] == 0);
    }

    /// A block can end exactly on an event's step: the event fires at the next block's start,
    /// and an edit arriving in between (the score swapped first) must not skip it.
    #[test]
    fn an_edit_arriving_as_a_note_is_due_does_not_swallow_it() {
        let (mut player, mut engine) = Player::detached();
        let score = PlayScore::from_notes([(60u8, 2usize, 4usize, 100u8)].into_iter());
        player.send(Command::Score(Arc::new(score.clone())));
        player.send(Command::Tempo(120.0));
        player.send(Command::Play(0));
        pull(&mut engine, 1280); // step 0.23
        assert!(engine.sounding[60] == 0);
        engine.position = 2.0; // the last block ended on the note's step
        player.send(Command::Score(Arc::new(score)));
        pull(&mut engine, 128);
        assert!(engine.sounding[60] > 0, "the due note was skipped");
    }

    /// Hearing a key while the score holds the same pitch does not cut the score's note.
    #[test]
    fn a_preview_ends_without_cutting_the_scores_note() {
        let (mut player, mut engine) = Player::detached();
        let score = PlayScore::from_notes([(60u8, 0usize, 16usize, 100u8)].into_iter());
        player.send(Command::Score(Arc::new(score)));
        player.send(Command::Tempo(120.0));
        player.send(Command::Play(0));
        pull(&mut engine, 1280);
        player.send(Command::Preview(60));
        pull(&mut engine, preview_samples(SAMPLE_RATE) as usize + 256);
        assert!(engine.preview.is_none() && engine.sounding[60] > 0);
        assert!(
            engine.synth.is_held(60),
            "the score's C was released with the preview"
        );
    }

    /// An audio thread that stalls (a device reconnecting) while the window sends on loses
    /// nothing: once it runs again it gets the newest piece and tempo and every Play and Stop,
    /// in order (commands past the ring's 64 were dropped, so the stale piece played on and a
    /// Stop was lost).
    #[test]
    fn commands_sent_while_the_audio_thread_stalls_are_delivered_after() {
        let (mut player, mut engine) = Player::detached();
        let note_at =
            |pitch: u8| PlayScore::from_notes([(pitch, 0usize, 64usize, 100u8)].into_iter());
        player.send(Command::Play(0));
        for pitch in 30..130u8 {
            player.send(Command::Score(Arc::new(note_at(pitch.min(127)))));
            player.send(Command::Tempo(f64::from(pitch)));
        }
        player.send(Command::Stop);
        player.send(Command::Play(0));
        assert!(player.backlog.len() <= 4, "{}", player.backlog.len());
        pull(&mut engine, 64); // the first 64 commands
        player.flush();
        pull(&mut engine, 4410);
        assert_eq!(engine.bpm, 129.0);
        assert!(engine.playing);
        assert!(engine.sounding[127] > 0, "the newest piece plays");
        assert!((30..127).all(|p| engine.sounding[p] == 0));
        // The Stop after it all is delivered too.
        player.send(Command::Stop);
        pull(&mut engine, 64);
        assert!(!engine.playing);
        // A piece sent after a Play that waits stands where the piece before it stood: the
        // Play plays it (taken to the back, the Play would have run past the old piece's end
        // and stopped).
        for _ in 0..70 {
            player.send(Command::Tempo(120.0));
        }
        player.send(Command::Score(Arc::new(note_at(40))));
        player.send(Command::Play(100));
        let longer = PlayScore::from_notes([(41u8, 0usize, 400usize, 100u8)].into_iter());
        player.send(Command::Score(Arc::new(longer)));
        assert!(matches!(
            player.backlog.make_contiguous(),
            [Command::Tempo(_), Command::Score(_), Command::Play(100)]
        ));
        pull(&mut engine, 2 * BLOCK);
        player.flush();
        pull(&mut engine, 2 * BLOCK);
        assert!(engine.playing, "the Play ran against the piece before");
    }

    /// Two notes of one pitch struck on one step (a paste over a note, say): the louder is
    /// struck last, so it is what is heard, as the export keeps the loudest.
    #[test]
    fn of_two_notes_struck_together_the_louder_is_heard() {
        let score =
            PlayScore::from_notes([(60u8, 0usize, 4usize, 100u8), (60, 0, 2, 40)].into_iter());
        let last_on = (score.events.iter())
            .rfind(|e| e.step == 0 && e.pitch == 60 && e.velocity > 0)
            .unwrap();
        assert_eq!(last_on.velocity, 100);
    }

    /// An engine at a device's own rate (48 kHz here) keeps time as one at 44.1 kHz does, and
    /// says so to the mixer (which then resamples nothing).
    #[test]
    fn keeps_time_at_the_devices_rate() {
        use rodio::Source;
        let positions: Vec<f64> = [44_100u32, 48_000, 96_000]
            .into_iter()
            .map(|rate| {
                let (mut player, mut engine) =
                    Player::with_transport(rate, Arc::new(Transport::default()));
                assert_eq!(engine.sample_rate().get(), rate);
                let score = PlayScore::from_notes([(60u8, 0usize, 64usize, 100u8)].into_iter());
                player.send(Command::Score(Arc::new(score)));
                player.send(Command::Tempo(120.0));
                player.send(Command::Play(0));
                pull(&mut engine, rate as usize); // one second: 8 steps at 120 bpm
                player.transport().position()
            })
            .collect();
        for p in positions {
            assert!((p - 8.0).abs() < 0.05, "{p}");
        }
    }

    /// Two notes of one pitch that overlap (an edit can make them): the first one's end does
    /// not cut the second, which sounds to its own end, as the exported file holds it.
    #[test]
    fn overlapping_notes_of_one_pitch_sound_to_the_last_end() {
        let (mut player, mut engine) = Player::detached();
        let score =
            PlayScore::from_notes([(60u8, 1usize, 4usize, 100u8), (60, 4, 4, 100)].into_iter());
        player.send(Command::Score(Arc::new(score)));
        player.send(Command::Tempo(120.0));
        player.send(Command::Play(0));
        pull(&mut engine, 35_700); // step 6.5: the first note ended at 5, the second holds
        assert!(engine.synth.is_held(60), "the second note was cut");
        assert_eq!(engine.sounding[60], 1);
        pull(&mut engine, 11_025); // step 8.5: both ended
        assert!(!engine.synth.is_held(60));
        assert_eq!(engine.sounding[60], 0);
    }

    /// Stopped mid-piece, a note drawn across the playhead (counted, never struck) does not
    /// keep a preview of its pitch ringing: the preview ends on its own time.
    #[test]
    fn a_preview_over_an_unheard_note_still_ends() {
        let (mut player, mut engine) = Player::detached();
        let score = PlayScore::from_notes([(60u8, 0usize, 16usize, 100u8)].into_iter());
        player.send(Command::Score(Arc::new(score.clone())));
        player.send(Command::Tempo(120.0));
        player.send(Command::Seek(6));
        pull(&mut engine, 256);
        assert_eq!(engine.sounding[60], 1);
        player.send(Command::Preview(60));
        pull(&mut engine, preview_samples(SAMPLE_RATE) as usize + 256);
        assert!(engine.preview.is_none());
        assert!(!engine.synth.is_held(60), "the preview rang on");
    }

    #[test]
    fn follows_the_tempo_map() {
        let (mut player, mut engine) = Player::detached();
        // Twice as fast from step 4, back to the tempo from step 8.
        let score = PlayScore::from_notes([(60u8, 0usize, 16usize, 100u8)].into_iter())
            .with_speed(vec![(0, 1.0), (4, 2.0), (8, 1.0), (9, f64::NAN)]);
        player.send(Command::Score(Arc::new(score)));
        player.send(Command::Tempo(120.0));
        player.send(Command::Play(0));
        // 120 bpm: steps 0..4 take 0.5 s, 4..8 0.25 s, then 0.125 s a step again.
        let at = |engine: &mut Engine, seconds: f64| {
            pull(engine, (seconds * f64::from(SAMPLE_RATE)) as usize);
            player.transport().position()
        };
        let p = at(&mut engine, 0.5);
        assert!((p - 4.0).abs() < 0.05, "position {p}");
        let p = at(&mut engine, 0.25);
        assert!((p - 8.0).abs() < 0.05, "position {p}");
        let p = at(&mut engine, 0.25);
        assert!((p - 10.0).abs() < 0.05, "position {p}");
    }

    #[test]
    fn plays_the_score_in_time_and_swaps_it_without_stopping() {
        let (mut player, mut engine) = Player::detached();
        let score =
            PlayScore::from_notes([(60u8, 0usize, 4usize, 100u8), (64, 8, 4, 100)].into_iter());
        player.send(Command::Score(Arc::new(score.clone())));
        player.send(Command::Tempo(120.0));
        assert_eq!(pull(&mut engine, 4410), 0.0, "silent before Play");
        player.send(Command::Play(0));
        assert!(pull(&mut engine, 4410) > 0.01, "sounds after Play");
        // 120 bpm: a step is 0.125 s, so 0.2 s in is step 1.6.
        pull(&mut engine, 4410);
        let at = player.transport().position();
        assert!((at - 1.6).abs() < 0.05, "position {at}");
        assert!(player.transport().playing());
        // A new piece keeps the position.
        player.send(Command::Score(Arc::new(score)));
        pull(&mut engine, 128);
        assert!(player.transport().position() >= at);
        // The piece ends at step 12 (1.5 s): playback stops by itself.
        pull(&mut engine, 44_100 * 2);
        assert!(!player.transport().playing());
        // A loop over steps 0..4 keeps playing and stays in range.
        player.send(Command::Loop(Some((0, 4))));
        player.send(Command::Play(0));
        pull(&mut engine, 44_100 * 2);
        assert!(player.transport().playing());
        assert!(player.transport().position() < 4.0);
        player.send(Command::Stop);
        pull(&mut engine, 44_100);
        assert!(
            pull(&mut engine, 4410) < 1e-4,
            "silent after Stop and release"
        );
    }
}
