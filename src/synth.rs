//! The built-in piano-like synthesizer.
//!
//! A plain struct with no threads, no locks and no allocation after [`Synth::new`]: the studio's
//! audio callback and the WAV export run the very same code. Each voice reads band-limited
//! wavetables (no harmonic above 20 kHz at any pitch) and fades from a bright to a mellow
//! timbre as it decays, like a struck string; its envelope has a short attack ramp, a two-stage
//! decay that is longer for low notes, and a smooth release, so nothing clicks. Loudness and
//! brightness follow velocity. A peak limiter on the sum keeps every sample under -1 dBFS
//! even with all 128 keys held: it looks ahead 1.5 ms (the sum is delayed that long), so its
//! gain has fallen by the time a peak is played and no peak is flattened against the ceiling.

use std::f32::consts::TAU;

/// Maximum simultaneous voices: every key held, and as many again ringing on after their
/// release (a full chord struck twice). Beyond it the quietest releasing voice is stolen:
/// faded out in a spare slot, not cut (where every spare slot fades a louder voice, the
/// quietest of them all is cut).
pub const MAX_VOICES: usize = 256;
/// Voices fading out after being stolen.
const FADES: usize = 32;
/// The time constant of a stolen voice's fade, seconds (silent about 30 ms on).
const STEAL_FADE_SECONDS: f32 = 0.003;
const TABLE_LEN: usize = 2048;
const BANDS: usize = 11; // one wavetable pair per octave of MIDI pitch
/// The lowest sample rate the synth renders at.
pub const MIN_SAMPLE_RATE: u32 = 8000;

/// The limiter's ceiling: -1 dBFS.
pub const LIMIT: f32 = 0.891;
const MASTER_GAIN: f32 = 0.22;
/// How far below its own strike a voice decays before it stops (-94 dB): a file normalised
/// to its loudest note hears the stop under a 16-bit step, however softly it was played.
/// (At an absolute level of 1e-4, a soft note was cut while held, and a pianissimo piece,
/// normalised, clicked at every note's end.)
const SILENT_ENVELOPE: f32 = 2e-5;

/// Frequency of a MIDI pitch in equal temperament, A4 (69) = 440 Hz.
pub fn pitch_hz(pitch: u8) -> f32 {
    440.0 * 2f32.powf((f32::from(pitch) - 69.0) / 12.0)
}

#[derive(Clone, Copy, Default)]
struct Voice {
    active: bool,
    pitch: u8,
    /// Phase in table samples.
    phase: f32,
    /// Table samples per output sample.
    increment: f32,
    band: usize,
    amplitude: f32,
    brightness: f32,
    /// Samples since the note started.
    age: u32,
    attack_samples: u32,
    fast: f32,
    slow: f32,
    fast_decay: f32,
    slow_decay: f32,
    bright_decay: f32,
    releasing: bool,
    release_gain: f32,
    release_decay: f32,
}

/// A polyphonic piano-like synthesizer rendering mono f32 samples.
pub struct Synth {
    sample_rate: f32,
    voices: [Voice; MAX_VOICES],
    /// Stolen voices fading out; not counted against [`MAX_VOICES`].
    fades: [Voice; FADES],
    /// Per band: bright table then mellow table.
    tables: Vec<[Vec<f32>; 2]>,
    limiter: Limiter,
}

impl Synth {
    /// A synth for `sample_rate` Hz (all allocation happens here; below
    /// [`MIN_SAMPLE_RATE`] it runs at that rate).
    pub fn new(sample_rate: u32) -> Synth {
        let sample_rate = sample_rate.max(MIN_SAMPLE_RATE) as f32;
        let tables = (0..BANDS)
            .map(|band| {
                // The highest pitch of the band decides how many harmonics fit under 20 kHz.
                let top = pitch_hz(((band + 1) * 12).min(128) as u8 - 1);
                let ceiling = (sample_rate * 0.5).min(20_000.0);
                let max_harmonic = ((ceiling / top).floor() as usize).max(1);
                let bright: Vec<(usize, f32)> = (1..=12)
                    .map(|h| {
                        (
                            h,
                            1.0 / (h as f32).powf(1.15) * if h % 7 == 0 { 0.3 } else { 1.0 },
                        )
                    })
                    .collect();
                let mellow = [(1, 1.0), (2, 0.35), (3, 0.12), (4, 0.04)];
                [
                    wavetable(&bright, max_harmonic),
                    wavetable(&mellow, max_harmonic),
                ]
            })
            .collect();
        Synth {
            sample_rate,
            voices: [Voice::default(); MAX_VOICES],
            fades: [Voice::default(); FADES],
            tables,
            limiter: Limiter::new(sample_rate),
        }
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate as u32
    }

    /// Starts a note (velocity 1..=127; 0 is a note-off). A key still sounding is released
    /// first, as a piano re-strikes.
    pub fn note_on(&mut self, pitch: u8, velocity: u8) {
        if velocity == 0 {
            self.note_off(pitch);
            return;
        }
        let pitch = pitch.min(127);
        self.note_off(pitch);
        let sr = self.sample_rate;
        // A key whose fundamental lies above half the sample rate cannot sound: it would
        // alias to another pitch.
        if pitch_hz(pitch) >= 0.5 * sr {
            return;
        }
        let slot = self.free_voice();
        let v = f32::from(velocity.min(127)) / 127.0;
        // Low strings ring for seconds, high ones briefly.
        let ring = 0.35 + 7.0 * (-(f32::from(pitch) - 21.0).max(0.0) / 26.0).exp();
        let band = usize::from(pitch / 12).min(BANDS - 1);
        self.voices[slot] = Voice {
            active: true,
            pitch,
            phase: 0.0,
            increment: pitch_hz(pitch) * TABLE_LEN as f32 / sr,
            band,
            amplitude: v.powf(1.6),
            brightness: 0.25 + 0.75 * v,
            age: 0,
            attack_samples: (0.004 * sr) as u32,
            fast: 0.45,
            slow: 0.55,
            fast_decay: (-1.0 / (0.12 * sr)).exp(),
            slow_decay: (-1.0 / (ring * sr)).exp(),
            bright_decay: (-1.0 / (0.35 * sr)).exp(),
            releasing: false,
            release_gain: 1.0,
            release_decay: (-1.0 / (0.07 * sr)).exp(),
        };
    }

    /// Releases every sounding voice of `pitch`.
    pub fn note_off(&mut self, pitch: u8) {
        for v in self.voices.iter_mut() {
            if v.active && !v.releasing && v.pitch == pitch {
                v.releasing = true;
            }
        }
    }

    /// Releases every voice.
    pub fn all_notes_off(&mut self) {
        for v in self.voices.iter_mut().filter(|v| v.active) {
            v.releasing = true;
        }
    }

    /// Silences everything at once (the next samples are 0).
    pub fn reset(&mut self) {
        for v in self.voices.iter_mut().chain(self.fades.iter_mut()) {
            v.active = false;
        }
        self.limiter.reset();
    }

    /// Number of voices sounding (including releasing and fading ones).
    pub fn active_voices(&self) -> usize {
        (self.voices.iter().chain(&self.fades))
            .filter(|v| v.active)
            .count()
    }

    /// Whether the key `pitch` is down: a voice of it sounds and has not been released.
    pub fn is_held(&self, pitch: u8) -> bool {
        (self.voices.iter()).any(|v| v.active && !v.releasing && v.pitch == pitch)
    }

    /// A slot for a new voice: a silent one, or else the quietest releasing voice (the
    /// oldest of equally quiet ones; a held key only where no voice is releasing), which
    /// fades out in a spare slot rather than stopping dead (unless it is quieter than every
    /// voice fading there: then it is the one cut).
    fn free_voice(&mut self) -> usize {
        if let Some(i) = self.voices.iter().position(|v| !v.active) {
            return i;
        }
        let victim = (self.voices.iter().enumerate())
            .min_by(|(_, a), (_, b)| {
                (b.releasing.cmp(&a.releasing))
                    .then(level(a).total_cmp(&level(b)))
                    .then(b.age.cmp(&a.age))
            })
            .map_or(0, |(i, _)| i);
        let fade = (self.fades.iter().enumerate())
            .min_by(|(_, a), (_, b)| (a.active.cmp(&b.active)).then(level(a).total_cmp(&level(b))))
            .map_or(0, |(i, _)| i);
        let taken = &self.fades[fade];
        if taken.active && level(taken) > level(&self.voices[victim]) {
            return victim;
        }
        self.fades[fade] = Voice {
            releasing: true,
            release_decay: (-1.0 / (STEAL_FADE_SECONDS * self.sample_rate)).exp(),
            ..self.voices[victim]
        };
        victim
    }

    /// Renders into `out` (mono), overwriting it. Never allocates or blocks.
    pub fn render(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        let voices = self.voices.iter_mut().chain(self.fades.iter_mut());
        for voice in voices.filter(|v| v.active) {
            let [bright, mellow] = &self.tables[voice.band];
            for sample in out.iter_mut() {
                let i = voice.phase as usize;
                let frac = voice.phase - i as f32;
                let j = (i + 1) & (TABLE_LEN - 1);
                let b = bright[i] + (bright[j] - bright[i]) * frac;
                let m = mellow[i] + (mellow[j] - mellow[i]) * frac;
                let timbre = m + (b - m) * voice.brightness;
                let attack = if voice.age < voice.attack_samples {
                    let x = voice.age as f32 / voice.attack_samples as f32;
                    x * x * (3.0 - 2.0 * x)
                } else {
                    1.0
                };
                let envelope = (voice.fast + voice.slow) * attack * voice.release_gain;
                *sample += timbre * envelope * voice.amplitude;

                voice.phase += voice.increment;
                if voice.phase >= TABLE_LEN as f32 {
                    // At low sample rates a high key steps more than a whole table.
                    voice.phase %= TABLE_LEN as f32;
                }
                voice.age = voice.age.saturating_add(1);
                voice.fast *= voice.fast_decay;
                voice.slow *= voice.slow_decay;
                voice.brightness *= voice.bright_decay;
                if voice.releasing {
                    voice.release_gain *= voice.release_decay;
                }
            }
            // A decay that reaches the denormal range stays there (x * 0.9998 rounds back to
            // x), and each denormal multiply costs the audio thread about 100 cycles: flushed.
            flush_denormal(&mut voice.fast);
            flush_denormal(&mut voice.brightness);
            if (voice.fast + voice.slow) * voice.release_gain < SILENT_ENVELOPE {
                voice.active = false;
            }
        }
        for sample in out.iter_mut() {
            *sample = self.limiter.process(*sample * MASTER_GAIN);
        }
    }

    /// How many samples late the output is: the limiter's look-ahead.
    pub fn latency(&self) -> usize {
        self.limiter.lookahead()
    }

    /// The smallest decaying level of any sounding voice, or of the limiter: 0 or a normal
    /// number, never a denormal one.
    #[cfg(test)]
    fn smallest_level(&self) -> f32 {
        (self.voices.iter().chain(&self.fades).filter(|v| v.active))
            .flat_map(|v| [v.fast, v.slow, v.brightness, v.release_gain])
            .chain([self.limiter.released])
            .fold(f32::INFINITY, f32::min)
    }
}

/// A peak limiter with look-ahead, for a real-time thread: no allocation after [`Limiter::new`],
/// a constant amount of work a sample.
///
/// The signal is delayed by `L` samples. A sample's gain is the average over `L + 1` samples
/// of a gain that is, at each sample, at most the least gain any of the `L + 1` newest
/// samples needs to stay under [`LIMIT`] (it rises again over 150 ms). Every one of the
/// averaged gains therefore covers the sample being played, so it never passes the ceiling,
/// and the gain falls along a ramp of `L` samples rather than at once.
struct Limiter {
    /// The last `L + 1` input samples, by sample number modulo `L + 1`.
    delay: Vec<f32>,
    /// The last `L + 1` gains averaged, likewise.
    gains: Vec<f32>,
    /// Their sum.
    sum: f64,
    /// Sample numbers and needed gains, increasing, of the samples of the window whose
    /// gain no later sample's undercuts (so the first is the window's least): a ring.
    least: Vec<(u64, f32)>,
    least_first: usize,
    least_len: usize,
    /// Samples seen.
    count: u64,
    /// The gain after the release (1 = none).
    released: f32,
    release: f32,
}

impl Limiter {
    fn new(sample_rate: f32) -> Limiter {
        let window = (0.0015 * sample_rate).round() as usize + 1;
        Limiter {
            delay: vec![0.0; window],
            gains: vec![1.0; window],
            sum: window as f64,
            least: vec![(0, 1.0); window],
            least_first: 0,
            least_len: 0,
            count: 0,
            released: 1.0,
            release: (-1.0 / (0.15 * sample_rate)).exp(),
        }
    }

    /// The delay, in samples.
    fn lookahead(&self) -> usize {
        self.delay.len() - 1
    }

    /// Silence, no gain reduction.
    fn reset(&mut self) {
        self.delay.fill(0.0);
        self.gains.fill(1.0);
        self.sum = self.gains.len() as f64;
        self.least_len = 0;
        self.released = 1.0;
    }

    /// Takes a sample and gives the one `lookahead` samples before it, limited.
    fn process(&mut self, x: f32) -> f32 {
        let window = self.delay.len();
        let n = self.count;
        self.count += 1;
        let slot = (n % window as u64) as usize;
        self.delay[slot] = x;
        let delayed = self.delay[(slot + 1) % window];
        let needed = if x.abs() > LIMIT {
            LIMIT / x.abs()
        } else {
            1.0
        };
        // The window's least needed gain: drop from the front what leaves the window with
        // this sample, from the back what this sample undercuts; then add it (so at most the
        // window's samples are held, this one among them).
        while self.least_len > 0 && self.least[self.least_first].0 + (window as u64) <= n {
            self.least_first = (self.least_first + 1) % window;
            self.least_len -= 1;
        }
        while self.least_len > 0 {
            let back = (self.least_first + self.least_len - 1) % window;
            if self.least[back].1 < needed {
                break;
            }
            self.least_len -= 1;
        }
        let back = (self.least_first + self.least_len) % window;
        self.least[back] = (n, needed);
        self.least_len += 1;
        let least = self.least[self.least_first].1;
        let rising = self.released + (1.0 - self.released) * (1.0 - self.release);
        self.released = least.min(rising);
        self.sum += f64::from(self.released) - f64::from(self.gains[slot]);
        self.gains[slot] = self.released;
        let gain = (self.sum / window as f64) as f32;
        delayed * gain.min(1.0)
    }
}

/// A voice's present level (its envelope times its loudness; the attack ramp aside).
fn level(v: &Voice) -> f32 {
    (v.fast + v.slow) * v.release_gain * v.amplitude
}

/// Sets a level that has decayed below any audible one to exactly 0.
fn flush_denormal(level: &mut f32) {
    if *level < 1e-20 {
        *level = 0.0;
    }
}

/// One cycle of a sum of harmonics (those above `max_harmonic` left out), peak-normalised.
fn wavetable(harmonics: &[(usize, f32)], max_harmonic: usize) -> Vec<f32> {
    let mut table: Vec<f32> = (0..TABLE_LEN)
        .map(|i| {
            let x = i as f32 / TABLE_LEN as f32;
            harmonics
                .iter()
                .filter(|(h, _)| *h <= max_harmonic)
                .map(|&(h, a)| a * (TAU * h as f32 * x).sin())
                .sum()
        })
        .collect();
    let peak = table.iter().fold(0f32, |m, &s| m.max(s.abs())).max(1e-6);
    table.iter_mut().for_each(|s| *s /= peak);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every voice busy with a note ringing on after its release (30 ms of notes, one every
    /// 8 samples).
    fn every_voice_releasing() -> Synth {
        let mut synth = Synth::new(44_100);
        let mut block = [0f32; 8];
        for k in 0..MAX_VOICES {
            let pitch = 30 + (k % 60) as u8;
            synth.note_on(pitch, 60);
            synth.note_off(pitch);
            synth.render(&mut block);
        }
        assert_eq!(synth.active_voices(), MAX_VOICES);
        synth
    }

    #[test]
    fn a_stolen_voice_fades_out_rather_than_stopping_dead() {
        let (mut stolen, mut kept) = (every_voice_releasing(), every_voice_releasing());
        // The new notes are too soft to hear: what differs is the voices they took the place
        // of, as many at once as there are spare slots to fade them in.
        for pitch in 90..90 + FADES as u8 {
            stolen.note_on(pitch, 1);
        }
        let fading = stolen.active_voices() - MAX_VOICES;
        assert_eq!(fading, FADES, "the stolen ones fade");
        let (mut a, mut b) = (vec![0f32; 2000], vec![0f32; 2000]);
        stolen.render(&mut a);
        kept.render(&mut b);
        let diff: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).collect();
        let peak = diff.iter().fold(0f32, |m, &d| m.max(d));
        let first = diff[..4].iter().fold(0f32, |m, &d| m.max(d));
        assert!(peak > 1e-3, "the stolen voice was audible: {peak}");
        assert!(first < 0.1 * peak, "a cut, not a fade: {first} of {peak}");
        // Every spare slot fading a loud voice, and soft notes released meanwhile: stealing
        // again cuts the softest (inaudible), not a loud one fading.
        let mut burst = every_voice_releasing();
        for pitch in 90..90 + FADES as u8 {
            burst.note_on(pitch, 1);
        }
        for pitch in 90..90 + FADES as u8 {
            burst.note_off(pitch);
        }
        let fading = |s: &Synth| -> Vec<f32> { s.fades.iter().map(level).collect() };
        let loud = fading(&burst);
        assert!(loud.iter().all(|&l| l > 0.01), "{loud:?}");
        burst.note_on(40, 1);
        assert_eq!(fading(&burst), loud, "a loud voice fading was cut");
    }

    #[test]
    fn a_soft_note_sounds_while_held_and_fades_below_a_16_bit_step() {
        let sr = 44_100;
        let mut synth = Synth::new(sr);
        synth.note_on(72, 3);
        let mut block = vec![0f32; sr as usize];
        let mut peak = 0f32;
        for second in 0..4 {
            synth.render(&mut block);
            peak = block.iter().fold(peak, |m, x| m.max(x.abs()));
            assert_eq!(
                synth.active_voices(),
                1,
                "cut while held, in second {second}"
            );
        }
        synth.note_off(72);
        let mut last = 0f32;
        for _ in 0..3 {
            synth.render(&mut block);
            if let Some(x) = block.iter().rev().find(|x| **x != 0.0) {
                last = x.abs();
            }
        }
        assert_eq!(synth.active_voices(), 0);
        // Its last sample, raised as a file of it alone is normalised (its peak to -1 dBFS,
        // by at most 60 dB), is under a 16-bit step.
        let gain = (LIMIT / peak).min(1000.0);
        assert!(
            last * gain < 1.0 / 32768.0,
            "it stopped at {last:e}, raised {gain}"
        );
    }

    #[test]
    fn a_loud_chord_is_limited_without_flattened_peaks() {
        let sr = 44_100;
        let mut synth = Synth::new(sr);
        for pitch in [48, 52, 55, 60, 64, 67, 72, 76, 79, 88] {
            synth.note_on(pitch, 127);
        }
        let mut out = vec![0f32; sr as usize / 2];
        synth.render(&mut out);
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak <= LIMIT * (1.0 + 1e-6), "{peak}");
        assert!(peak > 0.95 * LIMIT, "limited far under the ceiling: {peak}");
        let mut run = 0;
        let mut longest = 0;
        for x in &out {
            run = if x.abs() >= LIMIT * (1.0 - 1e-5) {
                run + 1
            } else {
                0
            };
            longest = longest.max(run);
        }
        assert!(longest <= 1, "{longest} samples in a row at the ceiling");
        // Its first samples are the look-ahead's silence; a soft note passes unchanged, late
        // by the look-ahead.
        let late = synth.latency();
        assert_eq!(late, 66);
        let (mut limited, mut plain) = (Synth::new(sr), Synth::new(sr));
        plain.limiter = Limiter::new(0.0);
        limited.note_on(60, 40);
        plain.note_on(60, 40);
        let (mut a, mut b) = (vec![0f32; 2000], vec![0f32; 2000]);
        limited.render(&mut a);
        plain.render(&mut b);
        assert!(a[..late].iter().all(|&x| x == 0.0));
        assert!(a[late..].iter().zip(&b).all(|(x, y)| x == y));
    }

    /// A loud low tone falls past the ceiling for longer than the look-ahead at every period:
    /// its samples stay under the ceiling all the same (the window's list of least gains held
    /// one sample too many, and the gain read from it went wrong for good).
    #[test]
    fn a_loud_low_tone_stays_under_the_ceiling() {
        let sr = 44_100.0;
        let mut limiter = Limiter::new(sr);
        let mut peak = 0f32;
        for i in 0..44_100 {
            let x = 2.0 * (TAU * 30.0 * i as f32 / sr).sin();
            peak = peak.max(limiter.process(x).abs());
        }
        assert!(peak <= LIMIT * (1.0 + 1e-6), "{peak}");
        assert!(peak > 0.99 * LIMIT, "{peak}");
        // And every low key struck at once, through the whole synth.
        let mut synth = Synth::new(44_100);
        for pitch in 21..50 {
            synth.note_on(pitch, 127);
        }
        let mut out = vec![0f32; 44_100];
        synth.render(&mut out);
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak <= LIMIT * (1.0 + 1e-6), "{peak}");
    }

    #[test]
    fn long_held_notes_and_long_silences_leave_no_denormal_levels() {
        let mut synth = Synth::new(MIN_SAMPLE_RATE);
        synth.note_on(21, 127);
        let mut block = vec![0f32; 800];
        // 40 s of a held A0: its fast decay passes the denormal range after about 10 s, its
        // brightness after about 31 s.
        for _ in 0..400 {
            synth.render(&mut block);
            let least = synth.smallest_level();
            assert!(least == 0.0 || least.is_normal(), "a level of {least:e}");
        }
        assert_eq!(synth.active_voices(), 1);
        // Then 20 s of silence: the limiter's envelope decays too.
        synth.all_notes_off();
        for _ in 0..200 {
            synth.render(&mut block);
            let least = synth.smallest_level();
            assert!(least == 0.0 || least.is_normal(), "a level of {least:e}");
        }
    }
}
