//! `segue generate`: its options, checked against the model and mode, and the generation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::midi_files::{level, read_midi_noted, read_style};
use super::models::compute_device;
use super::models::resolve_model;
use super::output_files::{not_an_input, output_kind};
use super::progress::progress_bar;
use super::stop::stop_on_ctrl_c;
use super::wording::bars_of;
use segue::fsutil::shown;
use segue::generate;
use segue::models::trained::TrainedModel;
use segue::render::{RenderOptions, render_to_wav_noting};
use segue::roll::{QuantizeOptions, Roll};

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// The MIDI file whose start comes first in the output: the LSTM-VAE continues it, the
    /// Transformer VAE keeps it before its part (and reads its code in transfer mode),
    /// classifier-ascent starts from its first --steps steps.
    #[arg(long, value_name = "FILE")]
    prime: Option<PathBuf>,
    /// Keep the primer's channel 10 (drums), merged as piano notes; by default they are left
    /// out (said), as the studio leaves them out: a piano model goes on from the piano.
    #[arg(long)]
    drums: bool,
    /// Hold the notes of the primer (and of a MIDI file as --from or --to) on while its
    /// sustain pedal is down, as a piano sounds them (as `segue render --pedal`); by default
    /// they sound as long as they are written, as the models were trained.
    #[arg(long)]
    pedal: bool,
    /// Style A: a composer of the model, or a MIDI file (default: the primer itself; not
    /// used by the LSTM-VAE's transfer, which decodes the primer with B).
    #[arg(long, value_name = "A")]
    from: Option<String>,
    /// Style B: a composer of the model, or a MIDI file (transfer, transition, blend).
    #[arg(long, value_name = "B")]
    to: Option<String>,
    /// continue (style A), transfer (style B), transition (A to B), blend (alpha of B); the
    /// VAEs only [default: continue].
    #[arg(long, value_name = "MODE")]
    mode: Option<String>,
    /// Blend amount, 0 = A .. 1 = B (--mode blend only) [default: 0.5].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    alpha: Option<f32>,
    /// Steps to generate (16th notes).
    #[arg(long, default_value_t = 256, value_name = "N")]
    steps: usize,
    /// Primer steps taken from --prime, from the bar of its first note to the bar line
    /// nearest N (the VAEs; classifier ascent starts from its first --steps steps) [default: 64:
    /// four bars of 4/4, five of 3/4].
    #[arg(long, value_name = "N")]
    primer_steps: Option<usize>,
    /// Transition length in steps, 1 to --steps (default: all generated steps; --mode
    /// transition only).
    #[arg(long, value_name = "N")]
    transition_steps: Option<usize>,
    /// Interpolate linearly instead of along the sphere (--mode transition and blend).
    #[arg(long)]
    linear: bool,
    /// How strongly a composer's style counts (the VAEs, where A or B is a composer; not a MIDI
    /// file's code): its code is moved away from the centre of all composers' by this factor
    /// (1 = its mean code; 0 = no composer's style in particular; at most 3) [default: 1].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    style_strength: Option<f32>,
    /// Sampling temperature (1 = the model's probabilities; below 1 sparser, above denser).
    /// The VAEs and a DCGAN that draws its cells use it; classifier ascent and the shipped
    /// DCGAN (which thresholds its cells) do not sample [default: 0.9].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// At most this many notes per step (classifier ascent keeps 2-3, as the paper; fewer with 1
    /// or 2).
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_notes: usize,
    /// Seed: the same seed gives the same music (classifier-ascent from --prime draws
    /// nothing: its start is the primer, so every seed gives the same).
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// lstm-vae (default), transformer-vae, classifier-ascent (to the composer --to) or dcgan
    /// (the shipped weights of each), or a model file of any of them, or the folder of a
    /// training run (`--model runs/mine`: the model it trained).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Where to compute: cpu, or cuda (needs a build with the `cuda` feature). The LSTM-VAE
    /// reads its codes there but samples step by step on the CPU whatever this says (one step
    /// of batch 1 is faster there).
    #[arg(long, default_value = "cpu", value_name = "DEV")]
    device: String,
    /// Gradient steps of classifier-ascent, 1 to 10000 [default: 200].
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    iterations: Option<usize>,
    /// The MIDI file to write.
    #[arg(short, long, visible_alias = "out", value_name = "OUT.mid")]
    output: PathBuf,
    /// Also render a WAV file.
    #[arg(long, value_name = "OUT.wav")]
    wav: Option<PathBuf>,
    /// Leave the WAV at the synth's own level (by default its peak is brought to -1 dBFS, as a
    /// DAW normalises a bounce).
    #[arg(long, requires = "wav")]
    no_normalize: bool,
    /// Normalise the WAV to this integrated loudness (EBU R128, in LUFS, -31 to -5; streaming
    /// services play at about -14) instead of the peak, as far as a -1 dBFS peak allows.
    #[arg(
        long,
        value_name = "LUFS",
        allow_negative_numbers = true,
        requires = "wav",
        conflicts_with = "no_normalize"
    )]
    loudness: Option<f64>,
}

/// The controls with defaults: given or not is kept, so that one a model or mode would not
/// use is refused (see [`check_generate_flags`]), not silently dropped.
/// The defaults are the library's own (`GenerateOptions`, `AscentOptions`).
impl GenerateArgs {
    fn mode_name(&self) -> &str {
        self.mode.as_deref().unwrap_or("continue")
    }
    fn alpha(&self) -> f32 {
        self.alpha
            .unwrap_or_else(|| generate::GenerateOptions::default().alpha)
    }
    fn primer_steps(&self) -> usize {
        self.primer_steps
            .unwrap_or_else(|| generate::GenerateOptions::default().primer_steps)
    }
    fn style_strength(&self) -> f32 {
        self.style_strength
            .unwrap_or(generate::DEFAULT_STYLE_STRENGTH)
    }
    fn temperature(&self) -> f32 {
        self.temperature.unwrap_or(generate::DEFAULT_TEMPERATURE)
    }
    fn iterations(&self) -> usize {
        self.iterations
            .unwrap_or_else(|| segue::ascent::AscentOptions::default().iterations)
    }
}

/// Refuses `--style-strength` where neither style names a composer of the model (a MIDI
/// file's code is its own, and a continuation without --from keeps the primer's).
fn check_strength_used(a: &GenerateArgs, is_composer: impl Fn(&str) -> bool) -> Result<()> {
    let styles = [a.from.as_deref(), a.to.as_deref()];
    if a.style_strength.is_some() && !styles.into_iter().flatten().any(is_composer) {
        bail!(
            "--style-strength is not used: neither style A nor B is a composer of the model (a \
             MIDI file's code, and a primer's, are its own)"
        );
    }
    Ok(())
}

/// The LSTM-VAE's codes A and B for `segue generate`.
fn lstm_codes(
    model: &TrainedModel,
    primer: &Roll,
    a: &GenerateArgs,
    mode: generate::Mode,
    quantize: QuantizeOptions,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_strength_used(a, |s| model.composer_index(s).is_some())?;
    let code_a = match &a.from {
        Some(s) => style_code(model, s, a.style_strength(), quantize)?,
        None => generate::song_code(model, primer, model.training_snippet_steps())?,
    };
    let code_b = match (&a.to, mode) {
        (Some(s), _) => style_code(model, s, a.style_strength(), quantize)?,
        (None, generate::Mode::Continue) => code_a.clone(),
        (None, _) => bail!(
            "--mode {} needs --to (a composer or a MIDI file)",
            a.mode_name()
        ),
    };
    Ok((code_a, code_b))
}

/// A style given on the command line: a composer of the model or a MIDI file.
fn style_code(
    model: &TrainedModel,
    style: &str,
    strength: f32,
    quantize: QuantizeOptions,
) -> Result<Vec<f32>> {
    if let Some(c) = model.composer_index(style) {
        return Ok(generate::composer_code(model, c, strength)?);
    }
    let path = Path::new(style);
    if segue::fsutil::is_named_input(path) {
        let roll = read_style(path, &quantize)?;
        return Ok(generate::song_code(
            model,
            &roll,
            model.training_snippet_steps(),
        )?);
    }
    bail!(
        "`{style}` is neither a composer of this model ({}) nor a MIDI file",
        model.manifest.composers.join(", ")
    )
}

/// Refuses the flags of `segue generate` that the model or mode would not use (a flag given
/// and silently dropped would make the music other than asked for), but for the styles of
/// `--from A --to B` ([`drop_unused_style`]).
fn check_generate_flags(kind: &str, mode: generate::Mode, a: &GenerateArgs) -> Result<()> {
    let unused = |flag: &str, why: &str| -> Result<()> { bail!("{flag} is not used {why}") };
    let vae = matches!(kind, "lstm-vae" | "transformer-vae");
    let dcgan = kind == "dcgan";
    let noise = "by the DCGAN: it samples from noise, with no primer or style";
    let interpolating = matches!(mode, generate::Mode::Transition | generate::Mode::Blend);
    let modeless = "by this model: only the VAEs have modes, and so blends and transitions";
    // (flag, given, used, why not): the first flag given where it is not used is refused.
    for (flag, given, used, why) in [
        ("--prime", a.prime.is_some(), !dcgan, noise),
        ("--from", a.from.is_some(), !dcgan, noise),
        ("--to", a.to.is_some(), !dcgan, noise),
        (
            "--drums",
            a.drums,
            a.prime.is_some() || [&a.from, &a.to].iter().any(|s| s.is_some()),
            "without --prime (or a MIDI file as --from or --to): it keeps a file's drums",
        ),
        (
            "--pedal",
            a.pedal,
            a.prime.is_some()
                || [&a.from, &a.to]
                    .iter()
                    .any(|s| s.as_deref().is_some_and(|s| Path::new(s).is_file())),
            "without --prime (or a MIDI file as --from or --to): it holds a file's notes \
             through its sustain pedal",
        ),
        (
            "--from",
            a.from.is_some(),
            kind != "classifier",
            "by classifier-ascent: it ascends to --to from --prime (or noise)",
        ),
        (
            "--mode",
            a.mode.is_some(),
            vae,
            "by this model: only the VAEs have modes",
        ),
        // The DCGAN and the ascent have no modes: said first.
        ("--alpha", a.alpha.is_some(), vae, modeless),
        ("--linear", a.linear, vae, modeless),
        (
            "--transition-steps",
            a.transition_steps.is_some(),
            vae,
            modeless,
        ),
        (
            "--alpha",
            a.alpha.is_some(),
            mode == generate::Mode::Blend,
            "outside --mode blend",
        ),
        (
            "--linear",
            a.linear,
            interpolating,
            "outside --mode transition and blend (nothing is interpolated)",
        ),
        (
            "--primer-steps",
            a.primer_steps.is_some(),
            vae,
            "by this model (classifier-ascent starts from the primer's first --steps steps; the \
             DCGAN has none)",
        ),
        (
            "--style-strength",
            a.style_strength.is_some(),
            vae,
            "by this model: only the VAEs have composer codes",
        ),
        (
            "--temperature",
            a.temperature.is_some(),
            kind != "classifier",
            "by classifier-ascent: it thresholds, it does not sample",
        ),
        (
            "--iterations",
            a.iterations.is_some(),
            kind == "classifier",
            "outside classifier-ascent",
        ),
    ] {
        if given && !used {
            unused(flag, why)?;
        }
    }
    if let Some(n) = a.transition_steps {
        if mode != generate::Mode::Transition {
            unused("--transition-steps", "outside --mode transition")?;
        }
        if n == 0 || n > a.steps {
            bail!(
                "--transition-steps must be 1..={} (--steps), not {n}: the transition reaches B \
                 within the generated steps",
                a.steps
            );
        }
    }
    Ok(())
}

/// Drops the style the mode does not use (`--to` in a VAE's continuation, `--from` in the
/// LSTM-VAE's transfer), saying so: `--from A --to B` runs in every mode of the VAEs (a script
/// may pass both whatever the mode), and the style dropped is neither read nor counted for
/// `--style-strength`.
fn drop_unused_style(kind: &str, mode: generate::Mode, a: &mut GenerateArgs) {
    let vae = matches!(kind, "lstm-vae" | "transformer-vae");
    if vae && mode == generate::Mode::Continue && a.to.take().is_some() {
        note!(
            "--to is not used by --mode continue (a continuation keeps the style of --from, or \
             the primer's own); --mode transfer, transition or blend use style B"
        );
    }
    if kind == "lstm-vae" && mode == generate::Mode::Transfer && a.from.take().is_some() {
        note!(
            "--from is not used by the LSTM-VAE's transfer: it decodes the primer (song A) with \
             B's code"
        );
    }
}

/// `segue generate`: music from a model in one of its modes, written as MIDI (and WAV).
pub(crate) fn generate_cmd(a: GenerateArgs) -> Result<()> {
    // Other checks read --steps (the transition's range): it is checked first.
    if a.steps == 0 || a.steps > 100_000 {
        bail!("--steps must be 1..=100000");
    }
    segue::generate::check_style_strength(a.style_strength())?;
    let (normalize, loudness) = level(a.no_normalize, a.loudness)?;
    // A device this build or machine lacks is refused before any file is read.
    let device = compute_device(&a.device)?;
    let (kind, path) = resolve_model(a.model.as_deref())?;
    // The VAEs hear a primer and sample; the classifier ascent and the DCGAN do neither.
    let vae = matches!(kind.as_str(), "lstm-vae" | "transformer-vae");
    let mode: generate::Mode = a.mode_name().parse()?;
    check_generate_flags(&kind, mode, &a)?;
    // The files given, used or not: no output may land on one of them.
    let inputs: Vec<PathBuf> = [a.from.as_deref(), a.to.as_deref()]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .chain(a.prime.clone())
        .filter(|p| segue::fsutil::is_named_input(p))
        .collect();
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut a = a;
    drop_unused_style(&kind, mode, &mut a);
    // Read as the studio opens a file and continued from its last note as the studio
    // continues it, so that a seed gives the same music in both.
    let quantize = QuantizeOptions {
        include_drums: a.drums,
        sustain_pedal: a.pedal,
        ..QuantizeOptions::primer()
    };
    let (primer, copyright) = match a.prime.as_deref() {
        Some(p) => {
            let (roll, copyright, _) = read_midi_noted(p, &quantize)?;
            (Some(roll.up_to_last_note()), copyright)
        }
        None => (None, None),
    };
    if !(0.0..=1.0).contains(&a.alpha()) {
        bail!("--alpha must be between 0 and 1");
    }
    // Together at most the longest piece Segue opens (roll::MAX_STEPS), so the output opens.
    if a.primer_steps() > 100_000 {
        bail!("--primer-steps must be at most 100000");
    }
    // A primer that opens with silent bars is heard up to its --primer-steps of music, as the
    // studio hears it.
    let primer_steps = match primer.as_ref() {
        Some(p) if vae => generate::primer_steps_heard(
            p.meters(),
            p.first_bar_with_notes(),
            p.steps(),
            a.primer_steps(),
        ),
        _ => a.primer_steps(),
    };
    generate::check_sampling(a.temperature(), 1).context("--temperature")?;
    // Classifier ascent starts from the primer's notes and keeps its tempo map.
    let ascended_from_primer = kind == "classifier" && primer.is_some();
    generate::check_sampling(1.0, a.max_notes).context("--max-notes")?;
    // The outputs are checked before any work: right kinds, writable, not an input, not one
    // file twice, and the audio not too long to render.
    output_kind(&a.output, &["mid", "midi"])?;
    segue::fsutil::check_target(&a.output)?;
    not_an_input(&a.output, &inputs)?;
    if let Some(wav) = &a.wav {
        output_kind(wav, &["wav"])?;
        segue::fsutil::check_target(wav)?;
        not_an_input(wav, &inputs)?;
        if segue::fsutil::same_landing(wav, &a.output) {
            bail!(
                "{}: this is where the MIDI file {} goes; write the audio to another file",
                shown(wav),
                shown(&a.output)
            );
        }
        // What will be rendered: the VAEs' primer head at its tempo, then the generated steps
        // at the tempo it ends with; the other models' steps alone, at 120 bpm.
        let estimate = match (kind.as_str(), primer.as_ref()) {
            ("lstm-vae" | "transformer-vae", Some(p)) => {
                let mut head = p.slice(0, primer_steps.min(p.steps()));
                head.continue_with(&Roll::new(a.steps));
                head
            }
            _ => Roll::new(a.steps),
        };
        segue::render::render_seconds(&estimate, &RenderOptions::default())
            .with_context(|| shown(wav).to_string())?;
    }
    if let Some(p) = primer.as_ref()
        && primer_steps > 0
        && vae
    {
        let silent = p.first_bar_with_notes();
        let heard = primer_steps.min(p.steps()) - silent;
        if silent > 0 {
            note!(
                "the primer's first {silent} steps are silent: the model hears them \
                 and the {heard} steps after them",
            );
        }
        // Said when asked for: the default ends on a bar line without a word.
        if a.primer_steps.is_some_and(|asked| asked != heard) && primer_steps < p.steps() {
            note!(
                "the primer ends on the bar line nearest --primer-steps: {heard} steps \
                 ({})",
                bars_of(p.meters(), silent, heard)
            );
        }
    }
    if let (Some(p), Some(file)) = (primer.as_ref(), a.prime.as_ref())
        && p.notes().is_empty()
    {
        note!(
            "{}: no notes to continue: the model starts from silence",
            shown(file)
        );
    }
    let opts = generate::GenerateOptions {
        mode,
        steps: a.steps,
        primer_steps,
        primer_start: 0,
        temperature: a.temperature(),
        max_notes: a.max_notes,
        alpha: a.alpha(),
        transition_steps: a.transition_steps.unwrap_or(0),
        interpolation: if a.linear {
            generate::Interpolation::Linear
        } else {
            generate::Interpolation::Spherical
        },
        seed: a.seed,
    };
    let need_primer = || {
        primer
            .as_ref()
            .context("--prime FILE is needed with this model")
    };
    let bar = progress_bar(1000, "generating");
    let mut verdict = None;
    let cancel = stop_on_ctrl_c();
    let mut progress = |f: f32| bar.set_position((f * 1000.0) as u64);
    let (roll, primer_steps) = match kind.as_str() {
        "lstm-vae" => {
            let model = TrainedModel::load(&path, &device)?;
            let primer = need_primer()?;
            // A model of one composer (trained on one folder) has no second style to move to.
            // (Without --from, A is the primer's own style, which a transfer does move from.)
            if let [only] = model.manifest.composers.as_slice()
                && mode != generate::Mode::Continue
                && a.from.as_deref() == Some(only.as_str())
                && a.to.as_deref().is_none_or(|to| to == only)
            {
                warning!(
                    "the model knows one composer ({only}): there is no second \
                     style to move to (--to a MIDI file takes that piece's)"
                );
            }
            let (code_a, code_b) = lstm_codes(&model, primer, &a, mode, quantize)?;
            // The library's recipe, which heard the primer as `primer_steps` says.
            let asked = generate::GenerateOptions {
                primer_steps: a.primer_steps(),
                ..opts.clone()
            };
            let g = generate::continue_piece(
                &model,
                primer,
                Some(&code_a),
                Some(&code_b),
                &asked,
                &mut progress,
                cancel,
            )?;
            (g.roll, g.primer_steps)
        }
        "transformer-vae" => {
            let model = segue::tvae::load(&path, &device)?;
            // One code a snippet: a short transition is one step from A to B, not a glide.
            if mode == generate::Mode::Transition
                && let Some(note) =
                    segue::tvae::one_code_transition(&model, opts.transition_length())
            {
                note!("the {note}");
            }
            let primer = need_primer()?;
            check_strength_used(&a, |s| model.composer_index(s).is_some())?;
            let code = |style: &str| -> Result<Vec<f32>> {
                if let Some(c) = model.composer_index(style) {
                    return Ok(segue::tvae::composer_code(&model, c, a.style_strength())?);
                }
                let p = Path::new(style);
                if segue::fsutil::is_named_input(p) {
                    return Ok(segue::tvae::song_code(&model, &read_style(p, &quantize)?)?);
                }
                bail!(
                    "`{style}` is neither a composer of this model ({}) nor a MIDI file",
                    model.manifest.composers.join(", ")
                )
            };
            let code_a = match &a.from {
                Some(s) => code(s)?,
                // A transfer moves the primer's own code by B - A: without A, from the centre
                // of all the composers (A as the primer's own code would make it B alone, the
                // same music for every primer).
                None if mode == generate::Mode::Transfer => {
                    segue::tvae::composer_code(&model, 0, 0.0)?
                }
                None => segue::tvae::song_code(&model, primer)?,
            };
            let code_b = match (&a.to, mode) {
                (Some(s), _) => code(s)?,
                (None, generate::Mode::Continue) => code_a.clone(),
                (None, _) => bail!(
                    "--mode {} needs --to (a composer or a MIDI file)",
                    a.mode_name()
                ),
            };
            let g = segue::tvae::generate(
                &model,
                primer,
                &code_a,
                &code_b,
                &opts,
                &mut progress,
                cancel,
            )?;
            (g.roll, g.primer_steps)
        }
        "classifier" => {
            let clf = segue::classify::load(&path, &device)?;
            let target =
                a.to.as_deref()
                    .context("classifier-ascent needs --to COMPOSER (the style to ascend to)")?;
            let target = clf.composer_index(target).with_context(|| {
                format!(
                    "`{target}` is not a composer of the classifier ({})",
                    clf.manifest.composers.join(", ")
                )
            })?;
            let ascent_opts = segue::ascent::AscentOptions {
                steps: a.steps,
                iterations: a.iterations(),
                notes_per_step: a.max_notes.min(3),
                seed: a.seed,
                ..segue::ascent::AscentOptions::default()
            };
            let r = segue::ascent::ascend(
                &clf,
                target,
                primer.as_ref(),
                &ascent_opts,
                &mut progress,
                cancel,
            )?;
            // The ascent's result, on stdout with the files written.
            verdict = Some(format!(
                "{}: probability {:.3} at the start, {:.3} after the ascent, {:.3} thresholded",
                clf.manifest.composers[target],
                r.start_probabilities[target],
                r.ascended_probability,
                r.thresholded_probability
            ));
            (r.roll, 0)
        }
        "dcgan" => {
            let gan = segue::gan::load(&path, &device)?;
            if a.temperature.is_some()
                && gan.config.cells == segue::models::dcgan::Cells::Thresholded
            {
                bail!(
                    "--temperature is not used by this DCGAN: it keeps the cells above 0.5 (trained \
                     with --cells thresholded, as the shipped one), it does not sample"
                );
            }
            let roll = segue::gan::sample_roll(
                &gan.model,
                a.steps,
                a.temperature(),
                a.max_notes,
                a.seed,
                cancel,
            )?;
            (roll, 0)
        }
        other => bail!("{}: `{other}` models cannot generate", shown(&path)),
    };
    bar.finish_and_clear();
    // A model that does not look at the flag (the DCGAN) is stopped here.
    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("stopped (Ctrl+C or a stop signal); nothing was written");
    }
    let result = generate::Generated::new(roll, primer_steps);
    // The audio first: stopped while it renders (Ctrl+C), neither file has changed; the MIDI
    // file, written in a moment, follows. Audio that fails otherwise (a full disk) still
    // leaves the MIDI file written, then says why the audio is not.
    let mut rendered = None;
    let mut audio_failed = None;
    // Made from the primer's notes (kept, or ascended from): its copyright notice goes with
    // them.
    let copyright = copyright.filter(|_| result.primer_steps > 0 || ascended_from_primer);
    let render_opts = RenderOptions {
        normalize,
        loudness,
        ..RenderOptions::default()
    };
    if let Some(wav) = &a.wav {
        let bar = progress_bar(1000, "rendering");
        match render_to_wav_noting(
            &result.roll,
            &render_opts,
            wav,
            copyright.as_deref(),
            &mut |f| bar.set_position((f * 1000.0) as u64),
            cancel,
        ) {
            Ok(r) => rendered = Some(r),
            Err(e) if cancel.load(std::sync::atomic::Ordering::Relaxed) => return Err(e.into()),
            Err(e) => audio_failed = Some(e),
        }
        bar.finish_and_clear();
    }
    result
        .roll
        .write_midi_noting(&a.output, copyright.as_deref())?;
    // The ascent's result, once the files it made are written.
    if let Some(verdict) = verdict {
        out!("{verdict}");
    }
    out!(
        "wrote {} ({} primer + {} generated steps at {:.1} bpm)",
        shown(&a.output),
        result.primer_steps,
        result.roll.steps() - result.primer_steps,
        60e6 / f64::from(
            result
                .roll
                .micros_per_quarter_at(result.primer_steps)
                .max(1)
        )
    );
    if result.generated_part_is_sparse() {
        // Only where the temperature is a flag the model takes.
        let samples = a.temperature.is_some() || vae;
        let what = if result.generated_part_is_silent() {
            "silent".to_string()
        } else {
            format!(
                "nearly silent: {} notes start in its {} steps",
                result.generated_onsets(),
                result.roll.steps() - result.primer_steps
            )
        };
        warning!(
            "the generated part is {what}{}",
            if samples && a.temperature() < 1.0 {
                " (a higher --temperature gives the model's notes more chance)"
            } else {
                ""
            }
        );
    }
    if let Some(e) = audio_failed {
        return Err(anyhow::Error::from(e).context("the MIDI file was written, the audio was not"));
    }
    if let (Some(wav), Some(r)) = (&a.wav, &rendered) {
        out!("wrote {} ({})", shown(wav), r.describe(&render_opts));
    }
    Ok(())
}
