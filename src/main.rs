//! The `segue` command line: a thin layer of argument parsing, progress bars and printing over
//! the library. This file holds the arguments and sends each command to its module under
//! `cli/`; with no command it opens the studio. Errors print as `segue: <what went wrong>` and
//! exit with code 1; a run stopped by Ctrl+C (or SIGTERM, SIGHUP) exits with 130.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};

use cli::bench::{BenchCmd, bench_lstm_vae, bench_lstm_vae_worker, bench_roll};
use cli::classify::classify_cmd;
use cli::corpus::{CorpusCmd, corpus_stats};
use cli::eval::{EvalCmd, eval_classifier, eval_cmd, eval_report};
use cli::generate::{GenerateArgs, generate_cmd};
use cli::midi_files::{QuantizeArgs, info, level, render_cmd, roll_cmd};
use cli::models::convert_model;
use cli::stop::{STOP, install_stop_handler};
use cli::train::{TrainCmd, train_classifier, train_dcgan, train_lstm_vae, train_transformer_vae};
use segue::fsutil::shown;

/// `println!` for a closed stdout (`segue info f | head`): a command whose work is files
/// ([`WRITES_FILES`]) goes on quietly, the rest of its output dropped, so that its errors (a
/// WAV that could not be written) are still said on stderr and in the exit code; a command
/// whose only product is its output ends there, quietly (exit code 0).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = writeln!(std::io::stdout(), $($arg)*)
        {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
            if !$crate::WRITES_FILES.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::exit(0);
            }
            $crate::STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }};
}

/// Whether the command's work is files (roll, render, generate, convert-model, train, eval
/// report), not its output alone.
static WRITES_FILES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once stdout turned out to be closed (a reader such as `head` done with it).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A note on stderr ("segue: note: ..."): something worth knowing that is not wrong (a
/// file's pedal not applied, a cache's share), unless `--quiet` asked for none.
macro_rules! note {
    ($($arg:tt)*) => {{
        if !$crate::quiet() {
            eprintln!("segue: note: {}", format_args!($($arg)*));
        }
    }};
}

/// A warning on stderr ("segue: warning: ..."): something that changes how a result should
/// be read (an evaluation on another corpus than the model's), said even with `--quiet`.
macro_rules! warning {
    ($($arg:tt)*) => {{
        eprintln!("segue: warning: {}", format_args!($($arg)*));
    }};
}

mod cli;

/// `--quiet`: no notes and no progress bars (warnings and errors are still said).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--quiet` was given.
fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SEGUE_COMMIT"), ")");

/// `segue --version`: the version and the licences, the shipped weights' credits with them
/// (CC BY-SA asks that they go wherever the weights go).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SEGUE_COMMIT"),
    ")\n",
    "code: MIT or Apache-2.0\n",
    "shipped weights: CC BY-SA 3.0 DE, trained on piano-midi.de files (credit: \"Bernd Krueger, \
     piano-midi.de\") and Bach chorales of the music21 corpus (credit: \"music21 corpus \
     (Cuthbert et al.)\"); see LICENSE in the weights folder",
);

/// Segue: a piano-roll studio for neural music generation.
#[derive(Parser)]
#[command(name = "segue", version = VERSION, long_version = LONG_VERSION, about, long_about = None)]
struct Cli {
    /// No notes and no progress bars on stderr (warnings and errors are still said): for
    /// batch jobs.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open the studio window (also what `segue` alone does), with FILE as the primer.
    Studio {
        /// A MIDI file to open.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print what a MIDI file holds: title, copyright, format, tracks, timing, tempo changes,
    /// metre, key, sustain pedal, notes, roll shape, duration, and the damage skipped.
    Info {
        /// The MIDI file to describe.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print it as one JSON object (every field always there, null or empty where the file
        /// has none), for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Convert a MIDI file to a piano roll: OUT's extension picks .npy, .png or .mid. A .npy
    /// or .png is the roll the models train on; a .mid is read as the studio opens a piece
    /// (each note's start and end rounded half up, trailing rests kept), drums kept unless
    /// --no-drums (the studio leaves them out).
    Roll {
        /// The MIDI file to convert.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the roll (.npy: uint8 T x 128; .png: picture; .mid: quantized MIDI).
        #[arg(short, long, visible_alias = "out", value_name = "OUT")]
        output: PathBuf,
        /// Horizontal pixels per step in a .png (1 to 8).
        #[arg(long, default_value_t = 2, value_name = "NUM",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
        scale: usize,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Render a .mid or .npy roll to a WAV file with the built-in piano synth (a .mid rounded
    /// as the studio opens a piece, up to its last note and the release after it).
    Render {
        /// The .mid or .npy file to render.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The WAV file to write (44.1 kHz, 16-bit, mono).
        #[arg(short, long, visible_alias = "out", value_name = "OUT.wav")]
        output: PathBuf,
        /// Play at this tempo instead of the file's own (bpm).
        #[arg(long, value_name = "BPM", allow_negative_numbers = true)]
        bpm: Option<f64>,
        /// Leave the audio at the synth's own level (by default its peak is brought to -1
        /// dBFS, as a DAW normalises a bounce).
        #[arg(long)]
        no_normalize: bool,
        /// Normalise to this integrated loudness (EBU R128, in LUFS, -31 to -5; streaming
        /// services play at about -14) instead of the peak, as far as a -1 dBFS peak allows.
        #[arg(
            long,
            value_name = "LUFS",
            allow_negative_numbers = true,
            conflicts_with = "no_normalize"
        )]
        loudness: Option<f64>,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
    /// Work with a corpus folder (composer subfolders of MIDI files).
    Corpus {
        #[command(subcommand)]
        command: CorpusCmd,
    },
    /// Generate music: LSTM-VAE or Transformer VAE (continue, transfer, transition, blend),
    /// classifier gradient ascent, or DCGAN samples.
    Generate(Box<GenerateArgs>),
    /// Rank the composers of a MIDI file with the composer classifier, whole and per window.
    Classify {
        /// The MIDI file to judge.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The classifier file, its manifest or its training run's folder (default: the shipped
        /// one).
        #[arg(long, value_name = "FILE.safetensors")]
        model: Option<PathBuf>,
        /// Window length in steps (default: the classifier's training snippet length).
        #[arg(long, value_name = "N")]
        window: Option<usize>,
        /// Steps between window starts (default: half a window).
        #[arg(long, value_name = "N")]
        hop: Option<usize>,
        /// Composers listed per window.
        #[arg(long, default_value_t = 3, value_name = "N")]
        top: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a model file, checked, optionally stored as f16 (how the shipped weights are made).
    ConvertModel {
        /// The model file (.safetensors, with its .json beside it).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Where to write it.
        #[arg(value_name = "OUT")]
        output: PathBuf,
        /// Store the tensors as f16.
        #[arg(long)]
        f16: bool,
    },
    /// Measure a trained model on held-out pieces.
    Eval {
        #[command(subcommand)]
        command: EvalCmd,
    },
    /// Train a model on a corpus folder (composer subfolders of MIDI files).
    Train {
        #[command(subcommand)]
        command: TrainCmd,
    },
    /// Measure speed against the Python references, in the same run.
    Bench {
        #[command(subcommand)]
        command: BenchCmd,
    },
    /// Print a completion script for a shell (bash: save it as
    /// ~/.local/share/bash-completion/completions/segue).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (segue.1 and one for each command, segue-generate.1 and so on)
    /// into a folder (for `man -l`, or for a package's share/man/man1).
    Manual {
        /// The folder (made if it is not there).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let writes_files = matches!(
        cli.command,
        Some(
            Cmd::Roll { .. }
                | Cmd::Render { .. }
                | Cmd::Generate(_)
                | Cmd::ConvertModel { .. }
                | Cmd::Train { .. }
                | Cmd::Eval {
                    command: EvalCmd::Report(_)
                }
        )
    );
    WRITES_FILES.store(writes_files, std::sync::atomic::Ordering::Relaxed);
    // The studio handles the signals itself (it saves the piece and closes).
    if !matches!(cli.command, None | Some(Cmd::Studio { .. })) {
        install_stop_handler();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("segue: {err:#}");
            // Stopped by Ctrl+C: the shell's code for an interrupted program.
            if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Prints `shell`'s completion script for every command and option.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "segue", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(())
}

/// Writes the manual pages: `segue.1`, then one for each command that is shown in `--help`
/// (`segue-generate.1`, `segue-train-lstm-vae.1`), each written whole or not at all.
fn manual(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot make the folder", shown(dir)))?;
    let mut cli = Cli::command();
    cli.build();
    let mut written = 0;
    let mut pages = vec![(String::from("segue"), cli)];
    while let Some((name, cmd)) = pages.pop() {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            // `help` is clap's own; its page would say what `--help` says.
            if sub.get_name() != "help" {
                pages.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.name(name.clone()))
            .source(format!("segue {VERSION}"))
            .manual("Segue")
            .render(&mut page)
            .context("making a manual page")?;
        let path = dir.join(format!("{name}.1"));
        segue::fsutil::write_atomic(&path, &page).with_context(|| shown(&path).to_string())?;
        written += 1;
    }
    out!("{written} manual pages in {}", shown(dir));
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        // Without the studio, `segue` alone is help, not an error.
        None if !cfg!(feature = "studio") => Ok(Cli::command().print_help()?),
        None => studio(None),
        Some(Cmd::Studio { file }) => studio(file),
        Some(Cmd::Completions { shell }) => completions(shell),
        Some(Cmd::Manual { dir }) => manual(&dir),
        Some(Cmd::Info {
            file,
            json,
            quantize,
        }) => info(&file, json, quantize.options()),
        Some(Cmd::Roll {
            file,
            output,
            scale,
            quantize,
        }) => roll_cmd(&file, &output, scale, quantize.options()),
        Some(Cmd::Render {
            file,
            output,
            bpm,
            no_normalize,
            loudness,
            quantize,
        }) => render_cmd(
            &file,
            &output,
            bpm,
            level(no_normalize, loudness)?,
            quantize.options(),
        ),
        Some(Cmd::Corpus {
            command:
                CorpusCmd::Stats {
                    dir,
                    json,
                    cache,
                    quantize,
                },
        }) => corpus_stats(&dir, json, &cache, quantize.options()),
        Some(Cmd::Bench {
            command: BenchCmd::Roll(args),
        }) => bench_roll(args),
        Some(Cmd::Bench {
            command: BenchCmd::LstmVae(args),
        }) => bench_lstm_vae(args),
        Some(Cmd::Bench {
            command:
                BenchCmd::LstmVaeWorker {
                    case,
                    iters,
                    no_train,
                    no_gen,
                    device,
                },
        }) => bench_lstm_vae_worker(&case, iters, no_train, no_gen, &device),
        Some(Cmd::Generate(args)) => generate_cmd(*args),
        Some(Cmd::Classify {
            file,
            model,
            window,
            hop,
            top,
            json,
        }) => classify_cmd(&file, model.as_deref(), window, hop, top, json),
        Some(Cmd::ConvertModel { input, output, f16 }) => convert_model(input, &output, f16),
        Some(Cmd::Eval {
            command: EvalCmd::LstmVae(args),
        }) => eval_cmd(args),
        Some(Cmd::Eval {
            command: EvalCmd::Classifier(args),
        }) => eval_classifier(args),
        Some(Cmd::Eval {
            command: EvalCmd::Report(args),
        }) => eval_report(args),
        Some(Cmd::Train {
            command: TrainCmd::Classifier(args),
        }) => train_classifier(*args),
        Some(Cmd::Train {
            command: TrainCmd::TransformerVae(args),
        }) => train_transformer_vae(*args),
        Some(Cmd::Train {
            command: TrainCmd::Dcgan(args),
        }) => train_dcgan(*args),
        Some(Cmd::Train {
            command: TrainCmd::LstmVae(args),
        }) => train_lstm_vae(*args),
    }
}

fn studio(file: Option<PathBuf>) -> Result<()> {
    // A build without it says so first (a display would not help).
    if !cfg!(feature = "studio") {
        return open_studio(file);
    }
    // Said before a window is tried: winit's own message names its source files.
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!(
            "no display to open the studio on (neither DISPLAY nor WAYLAND_DISPLAY is set): it \
             needs a desktop session (or `xvfb-run -a segue`); every other command works \
             without one (segue --help)"
        );
    }
    if let Some(f) = &file
        && !f.is_file()
    {
        let problem = match std::fs::metadata(f) {
            Err(_) => "no such file to open",
            Ok(m) if m.is_dir() => "a folder, not a MIDI file to open",
            Ok(_) => "not a regular file (a pipe or a device): open a MIDI file",
        };
        bail!("{}: {problem}", shown(f));
    }
    open_studio(file)
}

#[cfg(feature = "studio")]
fn open_studio(file: Option<PathBuf>) -> Result<()> {
    segue::studio::run(file).map_err(|e| anyhow::anyhow!(e))
}

/// A build without the `studio` feature (Segue as a library, its commands without a window).
#[cfg(not(feature = "studio"))]
fn open_studio(_file: Option<PathBuf>) -> Result<()> {
    bail!(
        "this segue was built without the studio (cargo's `studio` feature); every other \
         command works (segue --help)"
    )
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (no two flags share a name or a
    /// short letter, defaults parse; Cargo.toml turns clap's debug assertions on for them).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
