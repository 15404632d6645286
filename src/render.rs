//! Rolls -> audio: note events timed by the roll's tempo map, rendered by [`Synth`], and WAV
//! export (16-bit PCM, written atomically).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::roll::Roll;
use crate::synth::{MIN_SAMPLE_RATE, Synth};

/// The sample rate of rendered audio.
pub const SAMPLE_RATE: u32 = 44_100;

/// A note-on (velocity > 0) or note-off (velocity 0) at a sample position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteEvent {
    /// When, in samples from the start.
    pub sample: u64,
    /// MIDI pitch 0-127.
    pub pitch: u8,
    /// Velocity 1-127 of a note-on; 0 for a note-off.
    pub velocity: u8,
}

/// How a roll is rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Samples per second (Hz).
    pub sample_rate: u32,
    /// Seconds of release tail after the last step.
    pub tail_seconds: f32,
    /// Play at this tempo (bpm) instead of the roll's own tempo map.
    pub bpm: Option<f64>,
    /// Bring the audio's peak to [`NORMALIZED_PEAK`] (-1 dBFS), as a DAW's normalised bounce:
    /// the synth plays at a fixed level that leaves most pieces far below full scale (a
    /// Debussy continuation peaks near -21 dBFS).
    pub normalize: bool,
    /// Normalising, bring the integrated loudness (EBU R128, in LUFS) to this instead, as far
    /// as the peak allows: it never goes above [`NORMALIZED_PEAK`], so a piece whose peak
    /// reaches -1 dBFS first stays quieter (and [`Rendered::loudness`] says how loud).
    pub loudness: Option<f64>,
}

/// The loudness targets a rendering may be normalised to, in LUFS: from a quiet film mix
/// (-31) to a loud master (-5).
pub const LOUDNESS_RANGE: std::ops::RangeInclusive<f64> = -31.0..=-5.0;

/// Measures how loud audio is as EBU R128 / ITU-R BS.1770 define it (K-weighted, gated at
/// -70 LUFS and 10 LU below the ungated level), over one channel.
pub struct LoudnessMeter(Option<ebur128::EbuR128>);

impl LoudnessMeter {
    /// A meter for mono audio at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        LoudnessMeter(ebur128::EbuR128::new(1, sample_rate, ebur128::Mode::I).ok())
    }

    /// Takes in the next samples.
    pub fn add(&mut self, samples: &[f32]) {
        if let Some(meter) = &mut self.0 {
            // Only a wrong channel count fails, and there is one channel.
            let _ = meter.add_frames_f32(samples);
        }
    }

    /// Takes in the next samples as they will be at `gain`, without a copy of them all.
    pub fn add_scaled(&mut self, samples: &[f32], gain: f32) {
        let mut scaled = [0f32; 1024];
        for chunk in samples.chunks(scaled.len()) {
            let scaled = &mut scaled[..chunk.len()];
            scaled
                .iter_mut()
                .zip(chunk)
                .for_each(|(s, &x)| *s = x * gain);
            self.add(scaled);
        }
    }

    /// The integrated loudness of everything taken in, in LUFS; minus infinity for silence
    /// (or audio wholly under the -70 LUFS gate).
    pub fn lufs(&self) -> f64 {
        (self.0.as_ref())
            .and_then(|meter| meter.loudness_global().ok())
            .filter(|l| l.is_finite())
            .unwrap_or(f64::NEG_INFINITY)
    }
}

/// The gain normalising gives: to the -1 dBFS peak (`by_peak`, from [`normalizing_gain`]),
/// or, with a `target` loudness, to that loudness as far as the peak allows. `lufs_at_peak`
/// is the integrated loudness of the audio already brought to the peak: measured there, not
/// at the synth's level, since the standard's -70 LUFS gate is fixed and would leave out the
/// blocks of a quiet piece that the gain will make audible. Silent even there (minus
/// infinity), the peak's gain.
pub fn loudness_gain(by_peak: f32, lufs_at_peak: f64, target: Option<f64>) -> f32 {
    match target {
        Some(target) if lufs_at_peak.is_finite() => {
            let down = 10f64.powf((target - lufs_at_peak) / 20.0).min(1.0) as f32;
            by_peak * down
        }
        _ => by_peak,
    }
}

/// The peak a normalised rendering has: -1 dBFS, the synth's limiter's ceiling.
pub const NORMALIZED_PEAK: f32 = crate::synth::LIMIT;

/// The most a normalised rendering is raised (60 dB): a piece quieter than that is left as
/// quiet rather than made into noise.
pub const MAX_GAIN: f32 = 1000.0;

/// The gain that brings audio peaking at `peak` to [`NORMALIZED_PEAK`] (at most [`MAX_GAIN`];
/// 1 for silence).
pub fn normalizing_gain(peak: f32) -> f32 {
    if peak > 0.0 && peak.is_finite() {
        (NORMALIZED_PEAK / peak).min(MAX_GAIN)
    } else {
        1.0
    }
}

/// What a rendering to a file came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rendered {
    /// Its length, release tail included.
    pub seconds: f64,
    /// The gain normalising applied (1 without it).
    pub gain: f32,
    /// The audio's peak as written (before dither; [`NORMALIZED_PEAK`] where normalising
    /// reached it).
    pub peak: f32,
    /// Its integrated loudness as written, in LUFS (EBU R128; minus infinity for silence).
    pub loudness: f64,
}

impl Rendered {
    /// The gain in decibels.
    pub fn gain_db(&self) -> f32 {
        20.0 * self.gain.log10()
    }

    /// The peak in dB below full scale (-inf for silence).
    pub fn peak_dbfs(&self) -> f32 {
        20.0 * self.peak.log10()
    }

    /// What the file holds, in words, as rendered with `opts`: its length, rate, the gain
    /// normalising applied and its loudness ("23.5 s at 44100 Hz, normalised: +11.5 dB to a
    /// -1 dBFS peak, -22.3 LUFS"; no gain where it changed the level by less than 0.05 dB; the
    /// peak reached where the gain was the most normalising gives; with a loudness target,
    /// whether it was met or the peak came first).
    pub fn describe(&self, opts: &RenderOptions) -> String {
        let lufs = if self.loudness.is_finite() {
            format!("{:.1} LUFS", self.loudness)
        } else {
            "silent".to_string()
        };
        let gain = self.gain_db();
        let asked = opts
            .loudness
            .filter(|_| opts.normalize && self.loudness.is_finite());
        // Where a loudness was asked for and not met, what stopped it: the -1 dBFS peak, or
        // the most normalising raises.
        let missed = asked.filter(|target| (self.loudness - target).abs() >= 0.1);
        let short =
            |why: &str| missed.map_or(String::new(), |t| format!(", short of {t:.1} ({why})"));
        let level = if self.gain >= MAX_GAIN {
            format!(
                "normalised: {gain:+.1} dB, the most it raises: its peak is at {:.1} dBFS, \
                 {lufs}{}",
                self.peak_dbfs(),
                short("the most it raises")
            )
        } else if missed.is_some() {
            format!(
                "normalised: {gain:+.1} dB to a -1 dBFS peak: {lufs}{}",
                short("louder would clip")
            )
        } else if asked.is_some() {
            format!(
                "normalised: {gain:+.1} dB to {lufs} (peak {:.1} dBFS)",
                self.peak_dbfs()
            )
        } else if gain.abs() >= 0.05 {
            format!("normalised: {gain:+.1} dB to a -1 dBFS peak, {lufs}")
        } else {
            lufs
        };
        format!("{:.1} s at {} Hz, {level}", self.seconds, opts.sample_rate)
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            sample_rate: SAMPLE_RATE,
            tail_seconds: 1.5,
            bpm: None,
            normalize: true,
            loudness: None,
        }
    }
}

/// Start time in seconds of each step and the end (T + 1 values), at the roll's tempo or `bpm`.
pub fn step_times(roll: &Roll, bpm: Option<f64>) -> Vec<f64> {
    match bpm {
        Some(bpm) if bpm > 0.0 => {
            let step = 60.0 / bpm / 4.0;
            (0..=roll.steps()).map(|i| i as f64 * step).collect()
        }
        _ => roll.step_times(),
    }
}

/// The roll's notes as time-ordered events (at one instant, offs come before ons).
pub fn schedule(roll: &Roll, sample_rate: u32, bpm: Option<f64>) -> Vec<NoteEvent> {
    let times = step_times(roll, bpm);
    let at = |step: usize| (times[step] * f64::from(sample_rate)).round() as u64;
    let mut events = Vec::new();
    for n in roll.notes() {
        events.push(NoteEvent {
            sample: at(n.start),
            pitch: n.pitch,
            velocity: n.velocity,
        });
        events.push(NoteEvent {
            // At least a sample after its start: an off sorted before its own on (at an
            // absurd tempo both round to one sample) would leave the note sounding.
            sample: at(n.start + n.len).max(at(n.start) + 1),
            pitch: n.pitch,
            velocity: 0,
        });
    }
    events.sort_by_key(|e| (e.sample, e.velocity != 0, e.pitch));
    events
}

/// The longest audio Segue renders, in seconds (2 hours: a 635 MB WAV file; in memory,
/// [`render_roll`] holds 1.3 GB of samples, [`render_to_wav`] a block).
pub const MAX_RENDER_SECONDS: f64 = 2.0 * 3600.0;

/// How long the audio of `roll` lasts, release tail included, or why Segue will not render
/// it (longer than [`MAX_RENDER_SECONDS`], or a sample rate below [`MIN_SAMPLE_RATE`]); lets
/// long work refuse before it starts.
pub fn render_seconds(roll: &Roll, opts: &RenderOptions) -> Result<f64> {
    // The synth runs at 8 kHz at least; a file claiming a lower rate would play slow.
    if opts.sample_rate < MIN_SAMPLE_RATE {
        return Err(Error::InvalidArgument(format!(
            "the sample rate must be at least {MIN_SAMPLE_RATE} Hz, not {}",
            opts.sample_rate
        )));
    }
    let end_time = step_times(roll, opts.bpm).last().copied().unwrap_or(0.0);
    let seconds = end_time + f64::from(opts.tail_seconds.max(0.0));
    if !seconds.is_finite() || seconds > MAX_RENDER_SECONDS {
        return Err(Error::InvalidArgument(format!(
            "the piece lasts {:.0} minutes at this tempo; Segue renders at most {:.0} \
             (a faster tempo or a shorter piece fits)",
            seconds / 60.0,
            MAX_RENDER_SECONDS / 60.0
        )));
    }
    Ok(seconds)
}

/// Renders a roll to mono samples, normalised where `opts` asks; `progress` gets the fraction
/// done now and then. A roll that would last longer than [`MAX_RENDER_SECONDS`] (a long file
/// at a very slow tempo) is refused before anything is allocated.
pub fn render_roll(
    roll: &Roll,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Vec<f32>> {
    let seconds = render_seconds(roll, opts)?;
    let mut out = Vec::new();
    render_blocks(roll, opts, seconds, progress, &mut |block| {
        out.extend_from_slice(block);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    if opts.normalize {
        let by_peak = normalizing_gain(peak(&out));
        let lufs_at_peak = opts.loudness.map_or(f64::NEG_INFINITY, |_| {
            let mut meter = LoudnessMeter::new(opts.sample_rate);
            meter.add_scaled(&out, by_peak);
            meter.lufs()
        });
        let gain = loudness_gain(by_peak, lufs_at_peak, opts.loudness);
        out.iter_mut().for_each(|s| *s *= gain);
    }
    Ok(out)
}

/// Renders a roll straight into a 16-bit WAV file at `path` (atomically), block by block: a
/// long piece needs no more memory than a short one (normalising renders it twice: once to
/// find its peak; to a loudness three times: once more to measure it at the peak's gain). Returns the audio's length, the gain applied and its peak; every error
/// names `path`. Setting `stop` ends the rendering at its next block with an error (an
/// [`Error::Io`] of kind `Interrupted`, naming `path`), the half-written file removed and a
/// file already at `path` left as it was.
pub fn render_to_wav(
    roll: &Roll,
    opts: &RenderOptions,
    path: &Path,
    progress: &mut dyn FnMut(f64),
    stop: &AtomicBool,
) -> Result<Rendered> {
    render_to_wav_noting(roll, opts, path, None, progress, stop)
}

/// [`render_to_wav`], with a `copyright` notice (the source file's, which a rendering of a
/// CC BY-SA piece must carry) written into the WAV's INFO list (`ICOP`), where players and
/// DAWs show it.
pub fn render_to_wav_noting(
    roll: &Roll,
    opts: &RenderOptions,
    path: &Path,
    copyright: Option<&str>,
    progress: &mut dyn FnMut(f64),
    stop: &AtomicBool,
) -> Result<Rendered> {
    // Refused before the file is touched.
    let seconds = render_seconds(roll, opts).map_err(|e| Error::format(path, e.to_string()))?;
    let stopped = || {
        std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "stopped before the end; nothing was written",
        )
    };
    // Write errors name `path` (write_atomic_with says so).
    let (mut gain, mut written_peak) = (1.0, 0f32);
    let mut written = LoudnessMeter::new(opts.sample_rate);
    fsutil::write_atomic_with(path, |w| {
        // Normalising renders first to find the peak, then (to a loudness) again to measure
        // the loudness at the peak's gain: the synth plays the same each time.
        let passes = match (opts.normalize, opts.loudness) {
            (false, _) => 0,
            (true, None) => 1,
            (true, Some(_)) => 2,
        };
        let share = 1.0 / (passes as f64 + 1.0);
        let mut pass = |k: usize, sink: &mut dyn FnMut(&[f32])| {
            render_blocks(
                roll,
                opts,
                seconds,
                &mut |f| progress((k as f64 + f) * share),
                &mut |block| {
                    if stop.load(Ordering::Relaxed) {
                        return Err(stopped());
                    }
                    sink(block);
                    Ok(())
                },
            )
        };
        if passes >= 1 {
            let mut loudest = 0f32;
            pass(0, &mut |block| loudest = loudest.max(peak(block)))?;
            gain = normalizing_gain(loudest);
        }
        if passes == 2 {
            let mut meter = LoudnessMeter::new(opts.sample_rate);
            pass(1, &mut |block| meter.add_scaled(block, gain))?;
            gain = loudness_gain(gain, meter.lufs(), opts.loudness);
        }
        let mut writer = hound::WavWriter::new(&mut *w, wav_spec(opts.sample_rate))
            .map_err(std::io::Error::other)?;
        let mut dither = Dither::new();
        let mut gained = Vec::new();
        let mut progress = |f: f64| progress((passes as f64 + f) * share);
        render_blocks(roll, opts, seconds, &mut progress, &mut |block| {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            gained.clear();
            gained.extend(block.iter().map(|s| s * gain));
            written_peak = written_peak.max(peak(&gained));
            written.add(&gained);
            gained.iter().try_for_each(|&s| {
                writer
                    .write_sample(dither.to_i16(s))
                    .map_err(std::io::Error::other)
            })
        })?;
        writer.finalize().map_err(std::io::Error::other)?;
        match copyright.filter(|c| !c.is_empty()) {
            Some(notice) => append_info(w, &[(*b"ICOP", notice)]),
            None => Ok(()),
        }
    })?;
    Ok(Rendered {
        seconds,
        gain,
        peak: written_peak,
        loudness: written.lufs(),
    })
}

/// The largest magnitude among `samples` (0 for none).
fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0f32, |m, s| m.max(s.abs()))
}

/// Appends a `LIST`/`INFO` chunk of text fields (id, text) to a finished WAV file and makes
/// its RIFF size count it. Text is written as MIDI text is (Windows-1252 where it fits),
/// NUL-terminated and padded to an even length, as RIFF asks.
fn append_info<W: std::io::Write + std::io::Seek>(
    w: &mut W,
    fields: &[([u8; 4], &str)],
) -> std::io::Result<()> {
    use std::io::SeekFrom;
    let mut list = b"INFO".to_vec();
    for (id, text) in fields {
        let mut bytes = crate::midi::encode_text(text).into_owned();
        bytes.push(0);
        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        list.extend_from_slice(id);
        list.extend_from_slice(&len.to_le_bytes());
        list.extend_from_slice(&bytes);
    }
    let end = w.seek(SeekFrom::End(0))?;
    let list_len = u32::try_from(list.len()).map_err(std::io::Error::other)?;
    w.write_all(b"LIST")?;
    w.write_all(&list_len.to_le_bytes())?;
    w.write_all(&list)?;
    let riff = end + 8 + u64::from(list_len) - 8;
    let riff = u32::try_from(riff).map_err(std::io::Error::other)?;
    w.seek(SeekFrom::Start(4))?;
    w.write_all(&riff.to_le_bytes())?;
    w.seek(SeekFrom::End(0))?;
    Ok(())
}

/// The rendering itself, `seconds` long (from [`render_seconds`]): `sink` gets the samples in
/// order, a block at a time; its first error stops the rendering.
fn render_blocks<E>(
    roll: &Roll,
    opts: &RenderOptions,
    seconds: f64,
    progress: &mut dyn FnMut(f64),
    sink: &mut dyn FnMut(&[f32]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let events = schedule(roll, opts.sample_rate, opts.bpm);
    let total = (seconds * f64::from(opts.sample_rate)).ceil() as usize;
    let mut synth = Synth::new(opts.sample_rate);
    // The synth's output is late by its limiter's look-ahead: it runs that much longer and
    // its first samples (silence) are dropped, so that notes land where the roll puts them.
    let late = synth.latency();
    let total = total + late;
    let mut next = 0;
    let mut pos = 0usize;
    const BLOCK: usize = 256;
    let mut block = [0f32; BLOCK];
    while pos < total {
        while next < events.len() && events[next].sample as usize <= pos {
            let e = events[next];
            synth.note_on(e.pitch, e.velocity);
            next += 1;
        }
        let until_event = events
            .get(next)
            .map_or(usize::MAX, |e| e.sample as usize - pos);
        let len = BLOCK.min(total - pos).min(until_event.max(1));
        block[..len].fill(0.0);
        synth.render(&mut block[..len]);
        let skip = late.saturating_sub(pos).min(len);
        if skip < len {
            sink(&block[skip..len])?;
        }
        pos += len;
        if pos % (BLOCK * 512) < len {
            progress(pos as f64 / total as f64);
        }
    }
    progress(1.0);
    Ok(())
}

fn wav_spec(sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// 16-bit quantisation with TPDF dither: triangular noise of +-1 step (the difference of two
/// uniform draws) is added before rounding, so a quiet piano tail fades into noise instead of
/// breaking into the rounding's distortion, as DAWs dither a 16-bit bounce. Digital silence
/// stays exactly 0 (no hiss between pieces or after the last note). The noise has a fixed seed:
/// the same rendering gives the same bytes.
pub struct Dither {
    rng: rand_chacha::ChaCha8Rng,
}

impl Dither {
    /// A ditherer at the start of a file.
    pub fn new() -> Self {
        use rand::SeedableRng;
        Dither {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(0x5e9e_d17e),
        }
    }

    /// The next sample as 16-bit PCM (clipped to full scale).
    pub fn to_i16(&mut self, s: f32) -> i16 {
        use rand::Rng;
        if s == 0.0 {
            return 0;
        }
        let noise = self.rng.random::<f32>() - self.rng.random::<f32>();
        let full = f32::from(i16::MAX);
        (s.clamp(-1.0, 1.0) * full + noise)
            .round()
            .clamp(f32::from(i16::MIN), full) as i16
    }
}

impl Default for Dither {
    fn default() -> Self {
        Self::new()
    }
}

/// Encodes mono samples as a 16-bit PCM WAV file in memory (dithered as [`Dither`] says).
pub fn encode_wav(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let spec = wav_spec(sample_rate);
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(samples.len() * 2 + 44));
    let wav_error = |e: hound::Error| Error::InvalidArgument(format!("WAV encoding failed: {e}"));
    {
        let mut writer = hound::WavWriter::new(&mut cursor, spec).map_err(wav_error)?;
        let mut dither = Dither::new();
        for &s in samples {
            writer.write_sample(dither.to_i16(s)).map_err(wav_error)?;
        }
        writer.finalize().map_err(wav_error)?;
    }
    Ok(cursor.into_inner())
}
