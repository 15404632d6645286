//! The built-in piano-like synthesizer.
//!
//! A plain struct with no threads, no locks and no allocation after [`Synth::new`]: the studio's
//! audio callback and the WAV export run the very same code. Each voice reads band-limited
//! wavetables (no harmonic above 20 kHz at any pitch) and fades from a bright to a mellow
//! timbre as it decays, like a struck string; its envelope has a short attack ramp, a two-stage
//! decay that is longer for low notes, and a smooth release, so nothing clicks. Loudness and
//! brightness follow velocity. A peak limiter on the sum keeps every sample inside [-1, 1]
//! even with all 128 keys held.

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
    limiter_envelope: f32,
    limiter_release: f32,
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
            limiter_envelope: 0.0,
            limiter_release: (-1.0 / (0.15 * sample_rate)).exp(),
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
        self.limiter_envelope = 0.0;
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
            if level(voice) < 1e-4 {
                voice.active = false;
            }
        }
        for sample in out.iter_mut() {
            let x = *sample * MASTER_GAIN;
            let peak = x.abs();
            self.limiter_envelope = if peak > self.limiter_envelope {
                peak
            } else {
                peak + (self.limiter_envelope - peak) * self.limiter_release
            };
            let gain = if self.limiter_envelope > LIMIT {
                LIMIT / self.limiter_envelope
            } else {
                1.0
            };
            *sample = x * gain;
        }
        flush_denormal(&mut self.limiter_envelope);
    }

    /// The smallest decaying level of any sounding voice, or of the limiter: 0 or a normal
    /// number, never a denormal one.
    #[cfg(test)]
    fn smallest_level(&self) -> f32 {
        (self.voices.iter().chain(&self.fades).filter(|v| v.active))
            .flat_map(|v| [v.fast, v.slow, v.brightness, v.release_gain])
            .chain([self.limiter_envelope])
            .fold(f32::INFINITY, f32::min)
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
