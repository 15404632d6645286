//! Corpus folders: loading them (with the roll cache) and `segue corpus stats`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::midi_files::QuantizeArgs;
use super::progress::progress_bar;
use super::wording::counted;
use segue::dataset::{Corpus, LoadOptions};
use segue::roll::QuantizeOptions;

#[derive(Subcommand)]
pub(crate) enum CorpusCmd {
    /// Per composer: files, steps, notes, notes per sounding step (`notes_per_step` in --json),
    /// pitch range, failures.
    Stats {
        /// The corpus folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        quantize: QuantizeArgs,
    },
}

#[derive(Args, Clone)]
pub(crate) struct CacheArgs {
    /// Folder for cached rolls (default: $SEGUE_CACHE_DIR, else $XDG_CACHE_HOME/segue/rolls,
    /// else the platform's cache folder: ~/.cache/segue/rolls on Linux). A load that adds rolls
    /// prunes it to $SEGUE_CACHE_LIMIT_MB (default 1024), least recently used first.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the roll cache.
    #[arg(long)]
    no_cache: bool,
}

/// Reads a corpus folder with a progress bar (through the roll cache unless `--no-cache`),
/// saying the files skipped and what its layout means.
pub(crate) fn load_corpus(dir: &Path, cache: &CacheArgs, opts: QuantizeOptions) -> Result<Corpus> {
    let load_opts = LoadOptions {
        quantize: opts,
        cache_dir: if cache.no_cache {
            None
        } else {
            cache
                .cache_dir
                .clone()
                .or_else(segue::dataset::default_cache_dir)
        },
    };
    let bar = progress_bar(0, "loading");
    let corpus = Corpus::load(dir, &load_opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    for f in &corpus.failures {
        eprintln!("segue: skipped {}", f.error);
    }
    for note in corpus.layout_notes() {
        note!("{note}");
    }
    Ok(corpus)
}

/// `segue corpus stats`: per composer, the files, steps, notes, notes per sounding step,
/// pitches and failed files of a corpus folder (as a table or JSON).
pub(crate) fn corpus_stats(
    dir: &Path,
    json: bool,
    cache: &CacheArgs,
    opts: QuantizeOptions,
) -> Result<()> {
    let corpus = load_corpus(dir, cache, opts)?;
    let stats = corpus.stats();
    if json {
        out!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    out!(
        "{:<16} {:>6} {:>9} {:>8} {:>13} {:>9} {:>8}",
        "composer",
        "files",
        "steps",
        "notes",
        "sounding/step",
        "pitches",
        "failed"
    );
    let name = |p: Option<u8>| p.map_or("-".to_string(), segue::roll::pitch_name);
    for s in &stats {
        out!(
            "{:<16} {:>6} {:>9} {:>8} {:>13.2} {:>9} {:>8}",
            s.composer,
            s.files,
            s.steps,
            s.notes,
            s.notes_per_step,
            format!("{}-{}", name(s.lowest_pitch), name(s.highest_pitch)),
            s.failures
        );
    }
    let files: usize = stats.iter().map(|s| s.files).sum();
    let steps: usize = stats.iter().map(|s| s.steps).sum();
    out!(
        "{}, {files} files, {steps} steps, {} failed",
        counted(corpus.composers.len(), "composer"),
        corpus.failures.len(),
    );
    // How this run read them, which another run may find otherwise: not part of the table.
    note!(
        "{} of {} read from the roll cache",
        corpus.cache_hits,
        counted(files, "file")
    );
    Ok(())
}

/// `../shared/<what>` from the current folder, else from the source tree.
pub(crate) fn shared_dir(what: &str) -> PathBuf {
    let here = Path::new("../shared").join(what);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(what)
}

/// Says how many of the corpus's pieces are shorter than a training snippet
/// ([`Corpus::short_pieces_note`]): a warning when all are.
pub(crate) fn note_short_pieces(corpus: &Corpus, snippet_steps: usize) {
    match corpus.short_pieces_note(snippet_steps) {
        Some((all_short, true)) => warning!("{all_short}; a shorter --snippet-steps fits them"),
        Some((some_short, false)) => note!("{some_short}"),
        None => {}
    }
}

/// The corpus a model is measured on: the one given, else the shared corpus where the model
/// was trained on it. A model trained on another folder is measured on that folder only when
/// it is named: on the shared corpus its "held-out" pieces could be pieces it trained on.
pub(crate) fn eval_corpus(
    given: Option<&Path>,
    trained_on: &segue::models::trained::CorpusInfo,
) -> Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_path_buf()),
        None if trained_on.content_hash == segue::models::trained::SHARED_CORPUS_HASH => {
            Ok(shared_dir("corpus"))
        }
        None => bail!(
            "this model was trained on `{}` ({}), not the shared corpus: name that folder with \
             --corpus (its held-out pieces are the model's only there)",
            trained_on.name,
            counted(trained_on.pieces, "piece")
        ),
    }
}
