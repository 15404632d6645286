//! The built-in synth: pitch, silence, no clipping, no clicks, and WAV output.

use segue::render::{RenderOptions, encode_wav, render_roll, render_to_wav};
use segue::roll::{Roll, RollNote};
use segue::synth::Synth;

const SR: u32 = 44_100;

/// Magnitude of the DFT of `x` at `hz` (Goertzel).
fn magnitude(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(SR);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt()
}

fn play(notes: &[(u8, u8)], seconds: f32) -> Vec<f32> {
    let mut synth = Synth::new(SR);
    for &(p, v) in notes {
        synth.note_on(p, v);
    }
    let mut out = vec![0f32; (seconds * SR as f32) as usize];
    synth.render(&mut out);
    out
}

/// A WAV export is normalised by default: a quiet piece's peak is brought to -1 dBFS, the
/// gain said, the samples only scaled; without normalising it keeps the synth's level, and
/// silence is left silent.
#[test]
fn exports_are_normalised_to_a_peak_of_minus_one_dbfs() {
    use segue::render::NORMALIZED_PEAK;
    let mut roll = Roll::new(32);
    roll.add_note(RollNote {
        start: 0,
        len: 8,
        pitch: 60,
        velocity: 20,
    });
    let plain = RenderOptions {
        normalize: false,
        ..RenderOptions::default()
    };
    let peak = |s: &[f32]| s.iter().fold(0f32, |m, v| m.max(v.abs()));
    let quiet = render_roll(&roll, &plain, &mut |_| {}).unwrap();
    let loud = render_roll(&roll, &RenderOptions::default(), &mut |_| {}).unwrap();
    assert!(peak(&quiet) < 0.3, "{}", peak(&quiet));
    assert!((peak(&loud) - NORMALIZED_PEAK).abs() < 1e-5);
    let gain = peak(&loud) / peak(&quiet);
    assert!(
        quiet
            .iter()
            .zip(&loud)
            .all(|(q, l)| (q * gain - l).abs() < 1e-5)
    );
    // Into a file: the same gain, said; the file's peak at -1 dBFS (within the dither).
    let dir = tempfile::tempdir().unwrap();
    let go = std::sync::atomic::AtomicBool::new(false);
    let file_peak = |path: &std::path::Path| {
        let reader = hound::WavReader::open(path).unwrap();
        (reader.into_samples::<i16>())
            .map(|s| i32::from(s.unwrap()).abs())
            .max()
            .unwrap_or(0)
    };
    let path = dir.path().join("loud.wav");
    let rendered =
        render_to_wav(&roll, &RenderOptions::default(), &path, &mut |_| {}, &go).unwrap();
    assert!((rendered.gain - gain).abs() < 1e-3 * gain);
    assert!((rendered.peak - NORMALIZED_PEAK).abs() < 1e-5);
    assert!((rendered.gain_db() - 20.0 * gain.log10()).abs() < 0.01);
    let full = f32::from(i16::MAX);
    assert!((file_peak(&path) - (NORMALIZED_PEAK * full).round() as i32).abs() <= 2);
    let rendered = render_to_wav(&roll, &plain, &path, &mut |_| {}, &go).unwrap();
    assert_eq!(rendered.gain, 1.0);
    assert!((file_peak(&path) - (peak(&quiet) * full).round() as i32).abs() <= 2);
    // Silence: left silent, no gain.
    let rendered = render_to_wav(
        &Roll::new(16),
        &RenderOptions::default(),
        &path,
        &mut |_| {},
        &go,
    )
    .unwrap();
    assert_eq!((rendered.gain, file_peak(&path)), (1.0, 0));
}

/// Loudness is measured as EBU R128 defines it: a 997 Hz sine peaking at -20 dBFS reads -23.0
/// LUFS (its mean square, the K-filter's gain there cancelling the standard's -0.691 dB),
/// 6 dB softer reads 6 LU lower, silence reads minus infinity.
#[test]
fn loudness_is_measured_as_ebu_r128_defines_it() {
    use segue::render::LoudnessMeter;
    let sine = |amplitude: f32| {
        let mut meter = LoudnessMeter::new(48_000);
        let samples: Vec<f32> = (0..48_000 * 5)
            .map(|i| amplitude * (2.0 * std::f32::consts::PI * 997.0 * i as f32 / 48_000.0).sin())
            .collect();
        meter.add(&samples);
        meter.lufs()
    };
    let lufs = sine(0.1);
    assert!((lufs + 23.0).abs() < 0.05, "{lufs}");
    let softer = sine(0.05);
    assert!((lufs - softer - 6.02).abs() < 0.05, "{softer}");
    assert_eq!(sine(0.0), f64::NEG_INFINITY);
}

/// `loudness` normalises to an integrated loudness, as far as the -1 dBFS peak allows: a target
/// within reach is met (the file's own loudness said), one beyond it stops at the peak.
#[test]
fn exports_can_be_normalised_to_a_loudness() {
    use segue::render::NORMALIZED_PEAK;
    let mut roll = Roll::new(64);
    for (k, pitch) in [48u8, 55, 60, 64, 67].into_iter().enumerate() {
        roll.add_note(RollNote {
            start: k * 8,
            len: 24,
            pitch,
            velocity: 70,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loud.wav");
    let go = std::sync::atomic::AtomicBool::new(false);
    let to = |target: f64| RenderOptions {
        loudness: Some(target),
        ..RenderOptions::default()
    };
    let by_peak = render_to_wav(&roll, &RenderOptions::default(), &path, &mut |_| {}, &go).unwrap();
    assert!(
        by_peak.loudness.is_finite() && by_peak.loudness < -5.0,
        "{by_peak:?}"
    );
    // Quieter than the peak's normalising: met, the peak lower.
    let target = by_peak.loudness - 6.0;
    let met = render_to_wav(&roll, &to(target), &path, &mut |_| {}, &go).unwrap();
    assert!((met.loudness - target).abs() < 0.05, "{met:?}");
    assert!(
        (met.peak_dbfs() - (by_peak.peak_dbfs() - 6.0)).abs() < 0.1,
        "{met:?}"
    );
    // The file read back measures what was said.
    let mut meter = segue::render::LoudnessMeter::new(44_100);
    let samples: Vec<f32> = (hound::WavReader::open(&path).unwrap().into_samples::<i16>())
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    meter.add(&samples);
    assert!(
        (meter.lufs() - met.loudness).abs() < 0.05,
        "{}",
        meter.lufs()
    );
    // Louder than the peak allows: the peak comes first, at -1 dBFS.
    let short = render_to_wav(&roll, &to(by_peak.loudness + 6.0), &path, &mut |_| {}, &go).unwrap();
    assert!((short.peak - NORMALIZED_PEAK).abs() < 1e-5);
    assert!(
        (short.loudness - by_peak.loudness).abs() < 0.05,
        "{short:?}"
    );
    // In memory, the same gain.
    let samples = render_roll(&roll, &to(target), &mut |_| {}).unwrap();
    let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((peak - met.peak).abs() < 1e-4, "{peak} {}", met.peak);
    // A piece so soft that the synth's level is mostly under the standard's -70 LUFS gate is
    // measured at the gain it will have: the target is met, and said as met.
    for velocity in [2, 3, 4] {
        let mut soft = Roll::new(64);
        for k in 0..8 {
            soft.add_note(RollNote {
                start: k * 8,
                len: 6,
                pitch: 60 + k as u8,
                velocity,
            });
        }
        let r = render_to_wav(&soft, &to(-23.0), &path, &mut |_| {}, &go).unwrap();
        assert!(
            (r.loudness + 23.0).abs() < 0.1,
            "velocity {velocity}: {r:?}"
        );
        let said = r.describe(&to(-23.0));
        assert!(said.contains(" dB to -23.0 LUFS (peak -"), "{said}");
    }
}

/// The 16-bit export is dithered: a tone a third of a step high, which plain rounding would
/// turn into silence, comes through as the noise's average (with the tone's shape), the same
/// every time; digital silence stays exactly silent, full scale stays in range.
#[test]
fn sixteen_bit_export_is_dithered() {
    let step = 1.0 / f32::from(i16::MAX);
    let tone: Vec<f32> = (0..44_100)
        .map(|i| step / 3.0 * (i as f32 * 2.0 * std::f32::consts::PI * 50.0 / 44_100.0).sin())
        .collect();
    let out = |samples: &[f32]| -> Vec<i16> {
        let mut d = segue::render::Dither::new();
        samples.iter().map(|&s| d.to_i16(s)).collect()
    };
    let dithered = out(&tone);
    assert!(
        tone.iter().all(|&s| (s / step).round() == 0.0),
        "plain rounding: silence"
    );
    // Correlated with the tone: its average over each half-cycle has the tone's sign.
    let half = 441;
    let agree = (dithered.chunks(half).zip(tone.chunks(half)))
        .filter(|(d, t)| {
            let d: f64 = d.iter().map(|&v| f64::from(v)).sum();
            let t: f64 = t.iter().map(|&v| f64::from(v)).sum();
            d.signum() == t.signum()
        })
        .count();
    assert!(agree >= 90, "{agree} of 100 half-cycles follow the tone");
    assert!(dithered.iter().all(|&v| v.abs() <= 2));
    assert_eq!(dithered, out(&tone), "the same every time");
    assert_eq!(out(&[0.0; 64]), [0; 64]);
    assert!(
        out(&[1.5, -1.5, 1.0, -1.0])
            .iter()
            .all(|&v| i32::from(v).abs() >= 32766)
    );
}

#[test]
fn a4_has_its_fundamental_at_440_hz() {
    let out = play(&[(69, 100)], 1.0);
    let (best, _) = (300..600)
        .map(|hz| (hz, magnitude(&out, f64::from(hz))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(best, 440);
    // Harmonics are there (not a bare sine) but below the fundamental.
    let (f1, f2, f3) = (
        magnitude(&out, 440.0),
        magnitude(&out, 880.0),
        magnitude(&out, 1320.0),
    );
    assert!(f2 > f1 * 0.05 && f2 < f1, "{f1} {f2}");
    assert!(f3 > f1 * 0.01 && f3 < f1);
    // Between harmonics there is nothing.
    assert!(magnitude(&out, 660.0) < f1 * 0.01);
}

#[test]
fn silence_renders_silent() {
    assert!(play(&[], 0.5).iter().all(|&s| s == 0.0));
    let empty = Roll::new(64);
    let out = render_roll(&empty, &RenderOptions::default(), &mut |_| {}).unwrap();
    assert!(!out.is_empty() && out.iter().all(|&s| s == 0.0));
}

#[test]
fn a_full_chord_does_not_clip() {
    let all: Vec<(u8, u8)> = (0..128).map(|p| (p, 127)).collect();
    let out = play(&all, 2.0);
    let peak = out.iter().fold(0f32, |m, &s| m.max(s.abs()));
    assert!(peak <= 0.9, "peak {peak}");
    assert!(peak > 0.3, "still loud: {peak}");
    // Every key of the piano at full velocity, too.
    let piano: Vec<(u8, u8)> = (21..=108).map(|p| (p, 127)).collect();
    assert!(play(&piano, 1.0).iter().all(|s| s.abs() <= 0.9));
}

#[test]
fn every_key_of_a_full_chord_sounds() {
    let mut synth = Synth::new(SR);
    for p in 0..128 {
        synth.note_on(p, 100);
    }
    let silent: Vec<u8> = (0..128).filter(|&p| !synth.is_held(p)).collect();
    assert!(silent.is_empty(), "keys stolen by later ones: {silent:?}");
    // Re-striking every key lets the earlier strikes ring on, and still every key sounds.
    for p in 0..128 {
        synth.note_on(p, 100);
    }
    assert!((0..128).all(|p| synth.is_held(p)));
}

#[test]
fn velocity_sets_loudness() {
    let rms = |x: &[f32]| (x.iter().map(|s| f64::from(s * s)).sum::<f64>() / x.len() as f64).sqrt();
    let soft = rms(&play(&[(60, 30)], 0.5));
    let loud = rms(&play(&[(60, 120)], 0.5));
    assert!(loud > soft * 3.0, "{soft} {loud}");
}

#[test]
fn notes_start_and_stop_without_clicks() {
    // Short repeated low notes: a click (an abrupt start or stop) would jump by about the
    // note's amplitude from one sample to the next; a smooth envelope moves far less.
    let mut roll = Roll::new(64);
    for start in (0..64).step_by(2) {
        roll.add_note(RollNote {
            start,
            len: 1,
            pitch: 48,
            velocity: 100,
        });
        roll.add_note(RollNote {
            start: start + 1,
            len: 1,
            pitch: 43,
            velocity: 100,
        });
    }
    let out = render_roll(&roll, &RenderOptions::default(), &mut |_| {}).unwrap();
    let peak = out.iter().fold(0f32, |m, s| m.max(s.abs()));
    let max_jump = out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0f32, f32::max);
    assert!(peak > 0.1, "peak {peak}");
    assert!(
        max_jump < peak * 0.15,
        "largest jump {max_jump} against a peak of {peak}"
    );
    // The same test catches a hard cut: a synth stopped mid-note jumps by its amplitude.
    let mut synth = Synth::new(SR);
    synth.note_on(48, 100);
    let mut buf = vec![0f32; 4410];
    synth.render(&mut buf);
    let last = buf[buf.len() - 1];
    synth.reset();
    synth.render(&mut buf[..1]);
    let note_peak = buf[..4410].iter().fold(0f32, |m, s| m.max(s.abs()));
    let cut = (buf[0] - last).abs();
    assert!(
        cut > 0.15 * note_peak,
        "reset is a hard cut (a jump of {cut} against a peak of {note_peak}), the release is not"
    );
    // The tail decays to silence.
    assert!(out[out.len() - 100..].iter().all(|s| s.abs() < 1e-3));
}

#[test]
fn render_follows_the_tempo_and_wav_is_valid() {
    let mut roll = Roll::new(16); // 4 quarters at 120 bpm = 2 s
    roll.add_note(RollNote {
        start: 0,
        len: 16,
        pitch: 60,
        velocity: 90,
    });
    let opts = RenderOptions {
        tail_seconds: 0.0,
        ..Default::default()
    };
    let audio = render_roll(&roll, &opts, &mut |_| {}).unwrap();
    assert_eq!(audio.len(), 2 * SR as usize);
    // The note starts at the file's first sample (its attack ramps up from 0): the synth's
    // limiter is late by its look-ahead, which the rendering takes back.
    assert_eq!(audio[0], 0.0);
    assert!(audio[1] != 0.0);
    // A second note, at step 8 (1 s), sounds from sample 44100 on, not before (at the
    // synth's own level, which the second note does not change).
    let one = roll.clone();
    roll.add_note(RollNote {
        start: 8,
        len: 8,
        pitch: 72,
        velocity: 90,
    });
    let plain = RenderOptions {
        normalize: false,
        ..opts
    };
    let audio = render_roll(&one, &plain, &mut |_| {}).unwrap();
    let both = render_roll(&roll, &plain, &mut |_| {}).unwrap();
    let first_difference = both.iter().zip(&audio).position(|(x, y)| x != y);
    assert_eq!(first_difference, Some(SR as usize + 1));
    let fast = RenderOptions {
        bpm: Some(240.0),
        ..opts
    };
    assert_eq!(
        render_roll(&roll, &fast, &mut |_| {}).unwrap().len(),
        SR as usize
    );
    // 16 steps at 1 bpm last 4 minutes; 40000 steps would last 166 hours: refused, not
    // allocated.
    let slow = RenderOptions {
        bpm: Some(1.0),
        ..opts
    };
    assert_eq!(
        render_roll(&roll, &slow, &mut |_| {}).unwrap().len(),
        240 * SR as usize
    );
    let mut long = Roll::new(40_000);
    long.add_note(RollNote {
        start: 39_000,
        len: 16,
        pitch: 60,
        velocity: 90,
    });
    let err = render_roll(&long, &slow, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 120"), "{err}");
    // The synth does not run below 8 kHz: a file claiming 4 kHz would play an octave low.
    let low = RenderOptions {
        sample_rate: 4000,
        ..opts
    };
    let err = render_roll(&roll, &low, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 8000 Hz, not 4000"), "{err}");
    let wav = encode_wav(&[0.0, 0.5, -0.5], SR).unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    assert_eq!(reader.spec().sample_rate, SR);
    let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
    // Dithered: within a step and a half of 16383.5, silence exact.
    assert_eq!(samples[0], 0);
    assert!(
        samples[1..].iter().all(|s| (s.abs() - 16383).abs() <= 1),
        "{samples:?}"
    );
    // Rendered straight into a file, block by block: the same file as in memory; a piece too
    // long is refused with the file named, and nothing written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed.wav");
    let go = std::sync::atomic::AtomicBool::new(false);
    let seconds = render_to_wav(&roll, &opts, &path, &mut |_| {}, &go)
        .unwrap()
        .seconds;
    let in_memory = encode_wav(&render_roll(&roll, &opts, &mut |_| {}).unwrap(), SR).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), in_memory);
    assert!((seconds * f64::from(SR) - (in_memory.len() - 44) as f64 / 2.0).abs() < 1.0);
    // With a copyright notice (a CC BY-SA source's credit): the same samples, and an INFO list
    // after them that players show; the RIFF size counts it.
    let noted = dir.path().join("noted.wav");
    let notice = "Copyright © 2008 by Bernd Krüger";
    segue::render::render_to_wav_noting(&roll, &opts, &noted, Some(notice), &mut |_| {}, &go)
        .unwrap();
    let bytes = std::fs::read(&noted).unwrap();
    assert_eq!(&bytes[..in_memory.len()][8..], &in_memory[8..]);
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff, bytes.len() - 8);
    let list = &bytes[in_memory.len()..];
    assert_eq!(&list[..4], b"LIST");
    assert_eq!(&list[8..16], b"INFOICOP");
    let text = b"Copyright \xa9 2008 by Bernd Kr\xfcger\0";
    assert_eq!(&list[16..20], &(text.len() as u32).to_le_bytes());
    assert_eq!(&list[20..20 + text.len()], text);
    assert_eq!(list.len() % 2, 0);
    let reader = hound::WavReader::open(&noted).unwrap();
    assert_eq!(reader.duration() as usize, (in_memory.len() - 44) / 2);
    std::fs::remove_file(&noted).unwrap();
    let refused = dir.path().join("long.wav");
    let err = render_to_wav(&long, &slow, &refused, &mut |_| {}, &go)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("long.wav") && err.contains("at most 120"),
        "{err}"
    );
    assert!(!refused.exists());
    // Stopped (Ctrl+C, the studio closing): the file already there stays as it was, and no
    // half-written file is left in the folder.
    let stop = std::sync::atomic::AtomicBool::new(true);
    let err = render_to_wav(&roll, &opts, &path, &mut |_| {}, &stop)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("streamed.wav") && err.contains("stopped before the end"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), in_memory);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("streamed.wav")]);
}

#[test]
fn extreme_tempos_and_low_sample_rates_stay_in_range() {
    use segue::render::schedule;
    use segue::roll::StepTempo;
    // A file tempo of 1 microsecond a quarter: every note starts and ends on one sample; its
    // off must still come after its on.
    let mut roll = Roll::new(8);
    roll.add_note(RollNote {
        start: 0,
        len: 4,
        pitch: 60,
        velocity: 90,
    });
    roll.set_tempo(vec![StepTempo {
        step: 0,
        micros_per_quarter: 1,
    }]);
    let events = schedule(&roll, 44_100, None);
    assert_eq!(events.len(), 2);
    assert!(
        events[0].velocity > 0 && events[1].velocity == 0,
        "{events:?}"
    );
    assert!(events[1].sample > events[0].sample);
    // At 8 kHz the top key steps more than a whole wavetable a sample.
    let mut synth = Synth::new(8000);
    synth.note_on(127, 127);
    let mut buf = vec![0f32; 4000];
    synth.render(&mut buf);
    assert!(buf.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
}

/// Silence asked for a loudness stays silent and is said as silent (no gain, nothing "short").
#[test]
fn silence_asked_for_a_loudness_is_said_as_silent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silence.wav");
    let go = std::sync::atomic::AtomicBool::new(false);
    let opts = RenderOptions {
        loudness: Some(-23.0),
        ..RenderOptions::default()
    };
    let r = render_to_wav(&Roll::new(16), &opts, &path, &mut |_| {}, &go).unwrap();
    assert_eq!((r.gain, r.loudness), (1.0, f64::NEG_INFINITY));
    assert_eq!(
        r.describe(&opts),
        format!("{:.1} s at 44100 Hz, silent", r.seconds)
    );
}
