//! `segue info`, `segue roll` and `segue render`: one MIDI file read, shown, written as a roll
//! or rendered to WAV.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Args;

use super::output_files::{extension, not_an_input, output_kind};
use super::progress::progress_bar;
use super::stop::stop_on_ctrl_c;
use super::wording::{first_then, format_duration};
use segue::fsutil::shown;
use segue::midi::{Division, Song};
use segue::render::{RenderOptions, render_to_wav_noting};
use segue::roll::{QuantizeOptions, Roll};
use segue::{image, npy};

#[derive(Args, Clone, Copy)]
pub(crate) struct QuantizeArgs {
    /// Drop notes whose length rounds to 0 steps, as the paper did (default: keep as 1 step).
    #[arg(long)]
    paper_rounding: bool,
    /// Leave out channel 10 (drums); by default they are merged like every other channel.
    #[arg(long)]
    no_drums: bool,
    /// Hold notes on while the sustain pedal (controller 64) is down, as a piano sounds them
    /// (a note released under the pedal sounds until it is lifted or its key is struck again);
    /// by default notes sound as long as they are written, as the models were trained.
    #[arg(long)]
    pedal: bool,
}

impl QuantizeArgs {
    pub(crate) fn options(self) -> QuantizeOptions {
        QuantizeOptions {
            keep_short_notes: !self.paper_rounding,
            include_drums: !self.no_drums,
            sustain_pedal: self.pedal,
            ..QuantizeOptions::default()
        }
    }
}

/// `segue info`: what a MIDI file holds and the roll made of it (as text or JSON).
pub(crate) fn info(file: &Path, json: bool, opts: QuantizeOptions) -> Result<()> {
    let song = Song::read_named(file)?;
    let roll = Roll::from_song(&song, &opts).map_err(|p| segue::Error::midi(file, p))?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&info_json(file, &song, &roll, opts.sustain_pedal))?
        );
        return Ok(());
    }
    out!("file:          {}", shown(file));
    if let Some(title) = &song.title {
        out!("title:         {title}");
    }
    if let Some(copyright) = &song.copyright {
        out!("copyright:     {copyright}");
    }
    out!("format:        {}", song.format.number());
    out!("tracks:        {}", song.tracks);
    match song.division {
        Division::Metrical(tpq) => out!("division:      {tpq} ticks per quarter note"),
        Division::Timecode { fps, subframes } => out!(
            "division:      SMPTE {fps} fps x {subframes} ticks per frame (read on a 120 bpm grid)"
        ),
    }
    out!(
        "tempo changes: {} ({:.1} bpm at the start)",
        song.tempo.len(),
        song.initial_bpm()
    );
    // The metre the piece starts in and its key, then where they change (bars counted as the
    // studio counts them).
    let bars = segue::meter::BarMap::new(roll.meters());
    let at_bar = |step: usize| format!(" at bar {}", bars.position(step as f64).floor());
    if !song.time_signatures.is_empty() {
        let changes: Vec<String> = (roll.meters().iter().filter(|m| m.step > 0))
            .map(|m| format!("{}{}", m.meter, at_bar(m.step)))
            .collect();
        out!(
            "metre:         {}",
            first_then(roll.meter_at(0).to_string(), &changes)
        );
    }
    if let Some((first, later)) = roll.keys().split_first() {
        let first = match first.step {
            0 => first.key.to_string(),
            step => format!("{}{}", first.key, at_bar(step)),
        };
        let changes: Vec<String> = (later.iter())
            .map(|k| format!("{}{}", k.key, at_bar(k.step)))
            .collect();
        out!("key:           {}", first_then(first, &changes));
    }
    if let Some(pedal) = song.pedal_said(opts.sustain_pedal) {
        out!("pedal:         {pedal}");
    }
    let drums = song.drum_notes();
    out!(
        "notes:         {} ({} on channel 10)",
        song.notes.len(),
        drums
    );
    out!(
        "roll:          {} x 128 ({} sounding cells, {} notes after quantization, as the models read it)",
        roll.steps(),
        roll.active_cells(),
        roll.notes().len()
    );
    out!(
        "duration:      {}",
        format_duration(song.duration_seconds())
    );
    for w in &song.warnings {
        out!("warning:       {w}");
    }
    Ok(())
}

/// What `segue info --json` prints: the text's fields by stable names, each always there;
/// metres and keys as lists of changes (the first at step 0 where the piece starts with one),
/// bars counted as the studio counts them.
fn info_json(file: &Path, song: &Song, roll: &Roll, pedal_applied: bool) -> serde_json::Value {
    let bars = segue::meter::BarMap::new(roll.meters());
    let bar = |step: usize| bars.position(step as f64).floor() as u64;
    // As the text says it: the metre at the start (4/4 too, which the roll leaves unsaid),
    // then each change.
    let metre = |step: usize, meter: &segue::midi::Meter| serde_json::json!({"step": step, "bar": bar(step), "metre": meter.to_string()});
    let metres: Vec<_> = match song.time_signatures.is_empty() {
        true => Vec::new(),
        false => std::iter::once(metre(0, &roll.meter_at(0)))
            .chain((roll.meters().iter().filter(|m| m.step > 0)).map(|m| metre(m.step, &m.meter)))
            .collect(),
    };
    let keys: Vec<_> = (roll.keys().iter())
        .map(|k| serde_json::json!({"step": k.step, "bar": bar(k.step), "key": k.key.to_string()}))
        .collect();
    let division = match song.division {
        Division::Metrical(tpq) => serde_json::json!({"ticks_per_quarter": tpq}),
        Division::Timecode { fps, subframes } => {
            serde_json::json!({"smpte_fps": fps, "ticks_per_frame": subframes})
        }
    };
    serde_json::json!({
        "file": file.to_string_lossy(),
        "title": song.title,
        "copyright": song.copyright,
        "format": song.format.number(),
        "tracks": song.tracks,
        "division": division,
        "tempo_changes": song.tempo.len(),
        "bpm_at_start": song.initial_bpm(),
        "metres": metres,
        "keys": keys,
        "pedal_presses": song.pedal_presses(),
        "pedal_applied": pedal_applied,
        "notes": song.notes.len(),
        "drum_notes": song.drum_notes(),
        "roll": {
            "steps": roll.steps(),
            "pitches": 128,
            "sounding_cells": roll.active_cells(),
            "notes": roll.notes().len(),
        },
        "seconds": song.duration_seconds(),
        "warnings": song.warnings,
    })
}

/// `segue roll`: a MIDI file's roll written as `.npy`, `.png` or quantized MIDI.
pub(crate) fn roll_cmd(
    file: &Path,
    output: &Path,
    scale: usize,
    opts: QuantizeOptions,
) -> Result<()> {
    let kind = output_kind(output, &["npy", "png", "mid", "midi"])?;
    not_an_input(output, &[file])?;
    // A MIDI file out is a piece for a musician (repeated notes a 32nd off the grid kept
    // apart, its trailing rests kept); a roll out is data, read as the models were taught.
    let opts = match kind.as_str() {
        "npy" | "png" => opts,
        _ => opts.as_whole_file(),
    };
    let (roll, copyright, _) = read_midi_noted(file, &opts)?;
    match kind.as_str() {
        "npy" => npy::write_roll(output, &roll)?,
        "png" => image::write_png(output, &roll, scale)?,
        _ => roll.write_midi_noting(output, copyright.as_deref())?,
    }
    out!(
        "wrote {} ({} x 128, {} notes)",
        shown(output),
        roll.steps(),
        roll.notes().len()
    );
    Ok(())
}

/// Reads a MIDI file as a roll, saying on stderr what damage was skipped (a file cut short
/// plays only up to the cut; the user must hear of it, not only `segue info`).
pub(crate) fn read_midi(file: &Path, opts: &QuantizeOptions) -> Result<Roll> {
    Ok(read_midi_noted(file, opts)?.0)
}

/// A MIDI file given as a style (`--from`, `--to`): its roll, refused without notes (its code
/// would be the code of silence, taken as someone's style).
pub(crate) fn read_style(file: &Path, opts: &QuantizeOptions) -> Result<Roll> {
    let roll = read_midi(file, opts)?;
    if roll.active_cells() == 0 {
        bail!("{}: no notes to take a style from", shown(file));
    }
    Ok(roll)
}

/// A MIDI file's roll, its copyright notice, if it has one (an output made of its notes
/// keeps it), and how many notes the roll was made from (its drums left out unless asked).
pub(crate) fn read_midi_noted(
    file: &Path,
    opts: &QuantizeOptions,
) -> Result<(Roll, Option<String>, usize)> {
    let song = Song::read_named(file)?;
    for w in &song.warnings {
        warning!("{}: {w}", shown(file));
    }
    if let Some(drums) = song.drums_left_out().filter(|_| !opts.include_drums) {
        note!("{}: {drums}", shown(file));
    }
    if let Some(pedal) = song.pedal_said(opts.sustain_pedal) {
        let hint = if opts.sustain_pedal {
            ""
        } else {
            " (--pedal holds them)"
        };
        note!("{}: {pedal}{hint}", shown(file));
    }
    let roll = Roll::from_song(&song, opts).map_err(|p| segue::Error::midi(file, p))?;
    let read = (song.notes.iter())
        .filter(|n| opts.include_drums || n.channel != segue::midi::DRUM_CHANNEL)
        .count();
    Ok((roll, song.copyright, read))
}

/// The level a WAV is written at: the synth's own (`--no-normalize`), normalised to a -1 dBFS
/// peak (the default), or to a `--loudness` within [`segue::render::LOUDNESS_RANGE`].
pub(crate) fn level(no_normalize: bool, loudness: Option<f64>) -> Result<(bool, Option<f64>)> {
    if let Some(l) = loudness
        && !segue::render::LOUDNESS_RANGE.contains(&l)
    {
        bail!(
            "--loudness must be {}..={} LUFS, but was {l}",
            segue::render::LOUDNESS_RANGE.start(),
            segue::render::LOUDNESS_RANGE.end()
        );
    }
    Ok((!no_normalize, loudness))
}

/// `segue render`: a MIDI file rendered through the synth to a WAV file.
pub(crate) fn render_cmd(
    file: &Path,
    output: &Path,
    bpm: Option<f64>,
    (normalize, loudness): (bool, Option<f64>),
    opts: QuantizeOptions,
) -> Result<()> {
    output_kind(output, &["wav"])?;
    not_an_input(output, &[file])?;
    if extension(file) == "npy" && opts != QuantizeOptions::default() {
        bail!(
            "{}: a .npy roll is already quantized, with no pedal or channels: --pedal, \
             --no-drums and --paper-rounding apply to MIDI files",
            shown(file)
        );
    }
    if let Some(b) = bpm
        && !(1.0..=1000.0).contains(&b)
    {
        bail!("--bpm must be 1..=1000, but was {b}");
    }
    // A rendering of a file carries its copyright notice (CC BY-SA asks for its credit).
    // Rounded as the studio rounds a piece, but ending with its last note: the release tail
    // follows it (a stray event an hour later would otherwise render an hour of silence).
    let opts = QuantizeOptions {
        keep_length: false,
        ..opts.as_whole_file()
    };
    let (roll, copyright) = if extension(file) == "npy" {
        (npy::read_roll(file)?, None)
    } else {
        let (roll, copyright, read) = read_midi_noted(file, &opts)?;
        // Rendered as the models hear it: what the grid took away is said.
        let kept = roll.notes().len();
        if kept < read {
            let dropped = if opts.keep_short_notes {
                ""
            } else {
                " or, shorter than half a sixteenth, are dropped (--paper-rounding)"
            };
            note!(
                "{}: rendered from its roll on the sixteenth-note grid: {} of its {read} \
                 notes merge with another of the same key (struck again within a sixteenth, \
                 or at once on two channels){dropped}",
                shown(file),
                read - kept
            );
        }
        (roll, copyright)
    };
    let render_opts = RenderOptions {
        bpm,
        normalize,
        loudness,
        ..RenderOptions::default()
    };
    let bar = progress_bar(1000, "rendering");
    let rendered = render_to_wav_noting(
        &roll,
        &render_opts,
        output,
        copyright.as_deref(),
        &mut |f| bar.set_position((f * 1000.0) as u64),
        stop_on_ctrl_c(),
    )?;
    bar.finish_and_clear();
    out!(
        "wrote {} ({})",
        shown(output),
        rendered.describe(&render_opts)
    );
    Ok(())
}
