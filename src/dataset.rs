//! Corpus folders -> rolls -> snippets and balanced batches.
//!
//! A corpus is a folder of composer subfolders (the label is the folder name; MIDI files
//! directly inside the top folder form one composer named after it). Files convert in
//! parallel; each converted roll is cached on disk under the BLAKE3 hash of the file's bytes
//! and the quantization options, so a second load only reads the cache. Bad files are skipped
//! and listed. The split into training and validation is **by piece**, so no piece has
//! snippets on both sides; every random choice takes a seed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::meter::StepMeter;
use crate::midi::Meter;
use crate::roll::{PITCHES, QuantizeOptions, Roll, RollNote, StepKey, StepTempo};

const CACHE_MAGIC: &[u8; 8] = b"SEGROLL3";
/// The largest roll cache entry read: [`crate::midi::MAX_KEPT_EVENTS`] notes of 10 bytes and
/// a tempo change at every one of [`crate::roll::MAX_STEPS`] steps fit in it.
const MAX_CACHE_ENTRY_BYTES: u64 = 64 << 20;
/// The version of the MIDI reader and quantiser, part of every cache key: raise it whenever a
/// change to `midi.rs` or `roll.rs` can change the roll of a file, so cached rolls of the older
/// code are not read back. 2: SMPTE 29.97 fps read at 30/1.001, tempo events of SMPTE files
/// ignored. 3: the metre map. 4: no tempo or metre changes at or past the roll's end. 5: a meta
/// event midly refuses for its content is skipped, not the rest of its track. 6: a tempo change
/// between steps keeps time (the step takes the mean tempo), not moved to the nearest step.
/// 7: key signatures (and the cache entry holds them, after the metres). 8: a restatement of
/// the metre off its bar lines is kept.
const ROLL_VERSION: u32 = 8;

/// One piece of music in the corpus.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The MIDI file.
    pub path: PathBuf,
    /// Index into [`Corpus::composers`].
    pub composer: usize,
    /// The file's piano roll.
    pub roll: Roll,
    /// BLAKE3 hash of the file's bytes (hex).
    pub content_hash: String,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The file (or folder) that could not be used.
    pub path: PathBuf,
    /// The composer (folder) the file would have taught.
    pub composer: String,
    /// Why, as a message.
    pub error: String,
}

/// How a corpus is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How the files' notes become roll cells.
    pub quantize: QuantizeOptions,
    /// Where converted rolls are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            quantize: QuantizeOptions::default(),
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$SEGUE_CACHE_DIR`, else `$XDG_CACHE_HOME/segue/rolls`, else the platform's cache folder:
/// `~/.cache/segue/rolls` (Linux), `~/Library/Caches/segue/rolls` (macOS),
/// `%LOCALAPPDATA%\segue\rolls` (Windows, which sets no `HOME`).
pub fn default_cache_dir() -> Option<PathBuf> {
    // Set but empty is unset (an empty folder name would be the working folder).
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("SEGUE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let home_cache = |home: PathBuf| {
        if cfg!(target_os = "macos") {
            home.join("Library").join("Caches")
        } else {
            home.join(".cache")
        }
    };
    // The XDG folders are absolute or not set (the specification's rule).
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            cfg!(windows)
                .then(|| var("LOCALAPPDATA").map(PathBuf::from))
                .flatten()
        })
        .or_else(|| var("HOME").map(|h| home_cache(PathBuf::from(h))))?;
    Some(base.join("segue").join("rolls"))
}

/// The most megabytes the roll cache keeps by default (`$SEGUE_CACHE_LIMIT_MB` sets another):
/// about 60 000 pieces of the shared corpus's size.
pub const DEFAULT_CACHE_LIMIT_MB: u64 = 1024;

/// How long a cache entry's last use may be out of date before a hit records it again (one
/// write of its time stamp at most a day per entry, so warm loads stay reads).
const USE_RECORDED_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The roll cache's size limit in bytes: `$SEGUE_CACHE_LIMIT_MB` if set to a whole number
/// (0 keeps only the rolls of the last load), else [`DEFAULT_CACHE_LIMIT_MB`].
pub fn cache_limit_bytes() -> u64 {
    let mb = std::env::var("SEGUE_CACHE_LIMIT_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_CACHE_LIMIT_MB);
    mb.saturating_mul(1 << 20)
}

/// What [`prune_cache`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries removed.
    pub removed: usize,
    /// Bytes the cache's entries hold afterwards.
    pub kept_bytes: u64,
}

/// Removes the least recently used roll-cache entries (`*.roll` files of `dir`, oldest time
/// stamp first) until the entries hold at most `limit` bytes, never one named in `keep` (the
/// rolls a load has just used, so a corpus larger than the limit is kept whole). Nothing else
/// in the folder is touched; an entry that cannot be removed is passed over.
pub fn prune_cache(dir: &Path, limit: u64, keep: &HashSet<PathBuf>) -> std::io::Result<Pruned> {
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "roll") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        entries.push((used, meta.len(), path));
    }
    let mut total: u64 = entries.iter().map(|e| e.1).sum();
    let mut removed = 0;
    if total > limit {
        entries.sort();
        for (_, len, path) in &entries {
            if total <= limit {
                break;
            }
            if keep.contains(path) {
                continue;
            }
            if std::fs::remove_file(path).is_ok() {
                total -= len;
                removed += 1;
            }
        }
    }
    Ok(Pruned {
        removed,
        kept_bytes: total,
    })
}

/// Records a cache hit on `entry` for [`prune_cache`]'s "least recently used" (its time stamp,
/// if more than [`USE_RECORDED_EVERY`] old); failing only makes it look older.
fn record_use(entry: &Path) {
    let stale = std::fs::metadata(entry)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > USE_RECORDED_EVERY);
    if stale && let Ok(file) = std::fs::File::options().write(true).open(entry) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// What loading one piece did with the roll cache.
#[derive(Default)]
struct CacheTouch {
    /// The entry its roll was read from or written to.
    entry: Option<PathBuf>,
    /// Read from the cache (else converted).
    hit: bool,
    /// Written to the cache.
    wrote: bool,
}

/// A loaded corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The folder loaded (one subfolder per composer).
    pub root: PathBuf,
    /// Composer names, sorted.
    pub composers: Vec<String>,
    /// Pieces sorted by path.
    pub pieces: Vec<Piece>,
    /// Files and folders that could not be used.
    pub failures: Vec<Failure>,
    /// How many rolls came from the cache.
    pub cache_hits: usize,
}

/// Every `.mid`/`.midi`/`.kar`/`.smf` file under `dir`, recursively, sorted.
pub fn midi_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list_midi(dir)?.files)
}

/// The most folders a corpus is looked through for (one given as `/` would otherwise list the
/// whole system).
pub const MAX_FOLDERS: usize = 100_000;

/// What [`list_midi`] found under a folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// The MIDI files, sorted.
    pub files: Vec<PathBuf>,
    /// Folders below it that could not be listed (their files are not there), and why.
    pub unlisted: Vec<(PathBuf, String)>,
    /// Folders reached a second way (a link to a folder already read), each with the path
    /// it was read by: their files are read once, there.
    pub repeated: Vec<(PathBuf, PathBuf)>,
}

/// Whether a folder entry is the system's, not music: hidden files and folders (`.DS_Store`,
/// macOS's `._piece.mid` companions, `.Trashes`) and macOS archives' `__MACOSX`.
fn is_system_entry(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") || name == b"__MACOSX"
}

/// Every MIDI file under `dir`, recursively, in name order: linked folders are followed, but
/// no folder is looked through twice (a link back up, or two links to one folder: the folder
/// itself, else the first link in name order nearest the top, is the one read; the others are
/// noted), hidden entries are passed over, and a folder below `dir` that cannot be listed (no
/// permission) is noted rather than ending the whole listing. The same files in the same
/// order whatever order the file system lists them in.
pub fn list_midi(dir: &Path) -> Result<Listing> {
    let canonical = |d: &Path| d.canonicalize().unwrap_or_else(|_| d.to_path_buf());
    let mut listing = Listing::default();
    // Each real folder found, with the path it is read by.
    let mut seen = HashMap::from([(canonical(dir), dir.to_path_buf())]);
    let mut stack = vec![dir.to_path_buf()];
    let mut listed = 0;
    while let Some(d) = stack.pop() {
        listed += 1;
        if listed > MAX_FOLDERS {
            return Err(Error::Corpus {
                path: dir.into(),
                problem: format!(
                    "more than {MAX_FOLDERS} folders below it: name the folder of composer \
                     folders"
                ),
            });
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if d == dir => return Err(Error::io(&d, "listing", e)),
            Err(e) => {
                listing.unlisted.push((d, e.to_string()));
                continue;
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) if is_system_entry(&entry.file_name()) => {}
                Ok(entry) => paths.push(entry.path()),
                Err(e) => {
                    listing.unlisted.push((d.clone(), e.to_string()));
                    break;
                }
            }
        }
        // Folders themselves before links to them, each in name order.
        paths.sort_by_key(|p| (p.is_symlink(), p.clone()));
        let mut folders = Vec::new();
        for path in paths {
            if path.is_dir() {
                match seen.entry(canonical(&path)) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(path.clone());
                        folders.push(path);
                    }
                    std::collections::hash_map::Entry::Occupied(o) => {
                        // A link back up into its own folder is no second way to anything.
                        if !d.starts_with(o.get()) {
                            listing.repeated.push((path, o.get().clone()));
                        }
                    }
                }
            } else if is_midi_path(&path) {
                listing.files.push(path);
            }
        }
        folders.sort();
        stack.extend(folders.into_iter().rev());
    }
    listing.files.sort();
    Ok(listing)
}

/// Whether the path has a MIDI file extension.
pub fn is_midi_path(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "mid" | "midi" | "kar" | "smf"
        )
    })
}

impl Corpus {
    /// Loads every MIDI file under `root` in parallel; `progress(done, total)` is called as
    /// files finish (from worker threads).
    pub fn load(
        root: &Path,
        opts: &LoadOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Corpus> {
        if !root.is_dir() {
            let problem = if root.exists() {
                "not a folder (expected a folder of composer subfolders)"
            } else {
                "does not exist (expected a folder of composer subfolders)"
            };
            return Err(Error::Corpus {
                path: root.into(),
                problem: problem.into(),
            });
        }
        let Listing {
            files,
            unlisted,
            repeated,
        } = list_midi(root)?;
        if files.is_empty() {
            let unlisted: Vec<String> = (unlisted.iter())
                .map(|(folder, why)| format!("{} ({why})", fsutil::shown(folder)))
                .collect();
            let problem = match unlisted.as_slice() {
                [] => "no MIDI files (.mid, .midi, .kar, .smf) found".to_string(),
                _ => format!(
                    "no MIDI files (.mid, .midi, .kar, .smf) found; these folders could not be \
                     listed: {}",
                    unlisted.join(", ")
                ),
            };
            return Err(Error::Corpus {
                path: root.into(),
                problem,
            });
        }
        // A model names its composers in UTF-8 (its manifest is JSON): a folder named in another
        // encoding would be read under a lossy name that another folder could share.
        let odd_folder = files.iter().find_map(|f| {
            let first = f.strip_prefix(root).ok()?.components().next()?;
            let top = root.join(first.as_os_str());
            (top != *f && first.as_os_str().to_str().is_none()).then_some(top)
        });
        if let Some(folder) = odd_folder {
            return Err(Error::Corpus {
                path: folder,
                problem: "a composer folder whose name is not UTF-8 text (a model names its \
                          composers in UTF-8): rename it"
                    .into(),
            });
        }
        let root_name = root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "corpus".into());
        // The composer of what lies in a folder: the top-level folder it is in (or is), else
        // (the corpus folder itself) the corpus's name.
        let folder_label = |folder: &Path| -> String {
            let rel = folder.strip_prefix(root).unwrap_or(folder);
            rel.components().next().map_or_else(
                || root_name.clone(),
                |first| first.as_os_str().to_string_lossy().into_owned(),
            )
        };
        let label_of = |file: &Path| folder_label(file.parent().unwrap_or(root));
        let mut composers: Vec<String> = files.iter().map(|f| label_of(f)).collect();
        composers.sort();
        composers.dedup();
        // A model trained here names its composers by these: two that differ only in case
        // could not be told apart when picked by name, a line break would break every list.
        check_composer_names(&composers).map_err(|problem| Error::Corpus {
            path: root.into(),
            problem: format!(
                "{problem} (composers are named after their folders: name them alike for one \
                 composer, apart for two)"
            ),
        })?;

        if let Some(dir) = &opts.cache_dir {
            // An unusable cache folder only costs speed.
            let _ = std::fs::create_dir_all(dir);
        }
        let done = AtomicUsize::new(0);
        let total = files.len();
        let results: Vec<std::result::Result<(Piece, CacheTouch), Failure>> = files
            .par_iter()
            .map(|path| {
                let r = load_piece(path, opts);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                r.map(|(roll, content_hash, touch)| {
                    let piece = Piece {
                        path: path.clone(),
                        composer: composers.binary_search(&label_of(path)).unwrap_or(0),
                        roll,
                        content_hash,
                    };
                    (piece, touch)
                })
                .map_err(|e| Failure {
                    path: path.clone(),
                    composer: label_of(path),
                    error: e.to_string(),
                })
            })
            .collect();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut failures: Vec<Failure> = unlisted
            .into_iter()
            .map(|(folder, why)| Failure {
                error: format!(
                    "{}: could not be listed ({why}); any files in it are left out",
                    fsutil::shown(&folder)
                ),
                composer: folder_label(&folder),
                path: folder,
            })
            .collect();
        failures.extend(repeated.into_iter().map(|(link, read)| Failure {
            error: format!(
                "{}: the same folder as {}; its files are read once, there (teaching {})",
                fsutil::shown(&link),
                fsutil::shown(&read),
                folder_label(&read)
            ),
            composer: folder_label(&link),
            path: link,
        }));
        // A byte-identical copy of a file already read is left out: it could otherwise land on
        // both sides of the training/validation split (or teach two composers one piece).
        let mut first_of: HashMap<String, usize> = HashMap::new();
        // The cache entries this load used (kept by pruning), how many it read, whether it
        // wrote one.
        let (mut used, mut hits, mut wrote) = (HashSet::new(), 0, false);
        for r in results {
            let r = r.map(|(p, touch)| {
                used.extend(touch.entry);
                hits += usize::from(touch.hit);
                wrote |= touch.wrote;
                p
            });
            match r {
                Ok(p) => match first_of.get(&p.content_hash) {
                    Some(&i) => failures.push(Failure {
                        error: format!(
                            "{}: the same file as {}{}; left out",
                            fsutil::shown(&p.path),
                            fsutil::shown(&pieces[i].path),
                            if pieces[i].composer == p.composer {
                                String::new()
                            } else {
                                format!(
                                    ", which teaches {} (move or remove one copy if that is not \
                                     its composer)",
                                    composers[pieces[i].composer]
                                )
                            }
                        ),
                        path: p.path,
                        composer: composers[p.composer].clone(),
                    }),
                    None => {
                        first_of.insert(p.content_hash.clone(), pieces.len());
                        pieces.push(p);
                    }
                },
                Err(f) => failures.push(f),
            }
        }
        // A composer whose files all failed has nothing to learn from (a model trained here
        // would list it with no statistics): it is left out, its files stay in `failures`.
        let mut kept = vec![false; composers.len()];
        for p in &pieces {
            kept[p.composer] = true;
        }
        if kept.contains(&false) {
            let mut renumbered = vec![0; composers.len()];
            let mut next = 0;
            for (c, &keep) in kept.iter().enumerate() {
                renumbered[c] = next;
                next += usize::from(keep);
            }
            for p in &mut pieces {
                p.composer = renumbered[p.composer];
            }
            let mut keep = kept.iter();
            composers.retain(|_| keep.next().copied().unwrap_or(false));
        }
        if let Some(dir) = &opts.cache_dir
            && wrote
        {
            // Only a write grows the cache. A cache that cannot be pruned only costs disk.
            let _ = prune_cache(dir, cache_limit_bytes(), &used);
        }
        Ok(Corpus {
            root: root.into(),
            composers,
            pieces,
            failures,
            cache_hits: hits,
        })
    }

    /// What may not be what the user meant by the corpus's layout: files lying in the corpus
    /// folder itself (they form a composer named after it), and a composer whose files all lie
    /// in two or more subfolders of its folder (the composers' folders one level further down:
    /// `--corpus` names the folder above them). Worth a note, not a refusal (folder names that
    /// differ only in case are refused: see [`check_composer_names`]).
    pub fn layout_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let loose = (self.pieces.iter())
            .filter(|p| p.path.parent().is_some_and(|d| d == self.root))
            .count();
        if loose > 0 {
            let name = self
                .pieces
                .iter()
                .find(|p| p.path.parent().is_some_and(|d| d == self.root))
                .map_or("", |p| self.composers[p.composer].as_str());
            notes.push(format!(
                "{loose} file(s) lie in the corpus folder itself, not in a composer's folder: \
                 they form a composer named after it ({name:?})"
            ));
        }
        for (c, name) in self.composers.iter().enumerate() {
            let mut folder = None;
            let mut subfolders = std::collections::BTreeSet::new();
            let mut loose = false;
            for p in self.pieces.iter().filter(|p| p.composer == c) {
                let parts: Vec<_> = p
                    .path
                    .strip_prefix(&self.root)
                    .map(|r| r.components().collect())
                    .unwrap_or_default();
                folder = parts.first().map(|f| self.root.join(f));
                match parts.get(1).filter(|_| parts.len() > 2) {
                    Some(sub) => {
                        subfolders.insert(sub.as_os_str().to_string_lossy().into_owned());
                    }
                    None => loose = true,
                }
            }
            if let (Some(folder), false, true) = (folder, loose, subfolders.len() > 1) {
                let listed: Vec<&str> = subfolders.iter().take(3).map(String::as_str).collect();
                let more = if subfolders.len() > 3 { ", ..." } else { "" };
                notes.push(format!(
                    "the composer {name:?} has all its files in subfolders ({}{more}): if they \
                     are the composers, name their folder as the corpus (--corpus {})",
                    listed.join(", "),
                    fsutil::shown(&folder)
                ));
            }
        }
        notes
    }

    /// The pieces shorter than a training snippet of `snippet_steps`, said: training pads them
    /// with silence, which a model then learns as part of their music. `None` when every piece
    /// is long enough; with the text, whether every piece is short.
    pub fn short_pieces_note(&self, snippet_steps: usize) -> Option<(String, bool)> {
        let short = (self.pieces.iter())
            .filter(|p| p.roll.steps() < snippet_steps)
            .count();
        let root = fsutil::shown(&self.root);
        match short {
            0 => None,
            n if n == self.pieces.len() => Some((
                format!(
                    "every piece of {root} is shorter than a training snippet ({snippet_steps} \
                     steps): each is padded with silence to it"
                ),
                true,
            )),
            n => Some((
                format!(
                    "{n} of the {} pieces of {root} are shorter than a training snippet \
                     ({snippet_steps} steps): they are padded with silence to it",
                    self.pieces.len()
                ),
                false,
            )),
        }
    }

    /// A hash of the whole corpus: composer labels and the content hashes of every piece.
    pub fn content_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for p in &self.pieces {
            hasher.update(self.composers[p.composer].as_bytes());
            hasher.update(b"\0");
            hasher.update(p.content_hash.as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Indices of the pieces of one composer.
    pub fn pieces_of(&self, composer: usize) -> Vec<usize> {
        (0..self.pieces.len())
            .filter(|&i| self.pieces[i].composer == composer)
            .collect()
    }

    /// Splits pieces into training and validation, per composer: `valid_fraction` of each
    /// composer's pieces (at least one when it has two or more) go to validation.
    pub fn split(&self, valid_fraction: f64, seed: u64) -> Split {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut split = Split::default();
        for c in 0..self.composers.len() {
            let mut ids = self.pieces_of(c);
            ids.shuffle(&mut rng);
            let n_valid = if ids.len() >= 2 {
                ((ids.len() as f64 * valid_fraction).round() as usize).clamp(1, ids.len() - 1)
            } else {
                0
            };
            split.valid.extend_from_slice(&ids[..n_valid]);
            split.train.extend_from_slice(&ids[n_valid..]);
        }
        split.train.sort_unstable();
        split.valid.sort_unstable();
        split
    }

    /// The fold (`0..folds`) of each piece for cross-validation: each composer's pieces, in
    /// an order drawn from `seed`, are dealt round the folds from the first, so a fold holds
    /// n / folds of a composer's n pieces, rounded down or (the first folds) up; a composer
    /// with fewer pieces than folds is missing from the last ones.
    pub fn folds(&self, folds: usize, seed: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut fold_of = vec![0; self.pieces.len()];
        for c in 0..self.composers.len() {
            let mut ids = self.pieces_of(c);
            ids.shuffle(&mut rng);
            for (k, id) in ids.into_iter().enumerate() {
                fold_of[id] = k % folds.max(1);
            }
        }
        fold_of
    }

    /// The pieces `fold` holds out, and the others to train on ([`Corpus::folds`] with
    /// `seed`).
    pub fn fold_split(&self, fold: Fold, seed: u64) -> Split {
        let fold_of = self.folds(fold.of, seed);
        let (valid, train) = (0..self.pieces.len()).partition(|&p| fold_of[p] == fold.index);
        Split { train, valid }
    }
}

/// One fold of a cross-validation: fold `index` (from 0) of `of` (2 or more), as dealt by
/// [`Corpus::folds`]. Written `K/N`, K from 1, as the command line takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FoldParts")]
pub struct Fold {
    index: usize,
    of: usize,
}

#[derive(serde::Deserialize)]
struct FoldParts {
    index: usize,
    of: usize,
}

impl TryFrom<FoldParts> for Fold {
    type Error = String;

    fn try_from(parts: FoldParts) -> std::result::Result<Fold, String> {
        Fold::new(parts.index, parts.of)
    }
}

impl Fold {
    /// Fold `index` (from 0) of `of`; refused unless `of >= 2` and `index < of`.
    pub fn new(index: usize, of: usize) -> std::result::Result<Fold, String> {
        if of < 2 || index >= of {
            return Err(format!(
                "fold {index} (from 0) of {of}: a cross-validation has 2 folds or more, and \
                 a fold is one of them"
            ));
        }
        Ok(Fold { index, of })
    }

    /// Which fold, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many folds.
    pub fn of(&self) -> usize {
        self.of
    }
}

impl std::fmt::Display for Fold {
    /// `K/N`, counting folds from 1 as the command line does.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.of)
    }
}

impl std::str::FromStr for Fold {
    type Err = String;

    /// `K/N`: fold K (1..=N) of N (2 or more).
    fn from_str(s: &str) -> std::result::Result<Fold, String> {
        let bad = || format!("a fold is K/N, fold K of N (1 <= K <= N, N >= 2), not {s:?}");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Fold::new(k.checked_sub(1).ok_or_else(bad)?, n).map_err(|_| bad())
    }
}

/// The longest composer name a corpus or a model may hold, in characters (a folder name's
/// limit on most file systems).
pub const MAX_COMPOSER_NAME: usize = 255;

/// The form a composer's name is compared in: trimmed and in lower case, so that a composer
/// is picked by name with case and surrounding spaces aside (and two such names are refused as
/// one corpus's or model's composers).
pub fn composer_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Where `name` is among `composers`, compared as [`composer_key`]s (case and surrounding
/// spaces aside).
pub fn composer_position(composers: &[String], name: &str) -> Option<usize> {
    let key = composer_key(name);
    composers.iter().position(|c| composer_key(c) == key)
}

/// Checks the composer names of a corpus or a model: each a line of at most
/// [`MAX_COMPOSER_NAME`] characters, not blank, and no two alike but for case or surrounding
/// spaces (`Bach`, `bach `: a composer is picked by name, case aside). The problem, if any.
pub fn check_composer_names(names: &[String]) -> std::result::Result<(), String> {
    for name in names {
        if name.trim().is_empty() {
            return Err(format!("a composer with a blank name ({name:?})"));
        }
        let chars = name.chars().count();
        if chars > MAX_COMPOSER_NAME {
            return Err(format!(
                "a composer name of {chars} characters (at most {MAX_COMPOSER_NAME})"
            ));
        }
        if name.chars().any(crate::fsutil::hides_text) {
            return Err(format!(
                "the composer name {name:?} holds control characters (a line break, a tab, an \
                 escape) or bidirectional-text overrides"
            ));
        }
    }
    let mut keys: Vec<(String, &String)> = (names.iter()).map(|n| (composer_key(n), n)).collect();
    keys.sort();
    match keys.windows(2).find(|w| w[0].0 == w[1].0) {
        Some(w) => Err(format!(
            "the composers {:?} and {:?} differ only in case or spaces: one could not be picked \
             by name apart from the other",
            w[0].1, w[1].1
        )),
        None => Ok(()),
    }
}

/// Piece indices on each side of a split (disjoint by construction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Pieces trained on.
    pub train: Vec<usize>,
    /// Pieces held out for validation.
    pub valid: Vec<usize>,
}

fn load_piece(path: &Path, opts: &LoadOptions) -> Result<(Roll, String, CacheTouch)> {
    // A pipe named like a MIDI file would wait for a writer for ever (and a device never
    // ends): only files are read from a folder.
    crate::fsutil::check_is_file(path)?;
    let bytes = crate::midi::Song::read_bytes(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    let content_hash = hasher.finalize().to_hex().to_string();
    hasher.update(&serde_json::to_vec(&opts.quantize).unwrap_or_default());
    hasher.update(CACHE_MAGIC);
    hasher.update(&ROLL_VERSION.to_le_bytes());
    let cache_file = opts
        .cache_dir
        .as_ref()
        .map(|d| d.join(format!("{}.roll", hasher.finalize().to_hex())));
    // Bounded: a cache entry larger than any roll's is damaged (and rewritten), not read.
    let read = (cache_file.as_deref()).and_then(|f| {
        crate::fsutil::read_at_most(f, MAX_CACHE_ENTRY_BYTES)
            .ok()?
            .ok()
    });
    let damaged = read.is_some();
    let cached = read.and_then(|bytes| decode_cached(&bytes));
    let damaged = damaged && cached.is_none();
    let from_cache = cached.is_some();
    let roll = match cached {
        Some(roll) => roll,
        None => {
            let song = crate::midi::Song::parse(&bytes).map_err(|p| Error::midi(path, p))?;
            Roll::from_song(&song, &opts.quantize).map_err(|p| Error::midi(path, p))?
        }
    };
    if roll.active_cells() == 0 {
        // Nothing to learn from: a model would take its silence for the composer's style.
        return Err(Error::format(path, "no notes to learn from"));
    }
    let mut touch = CacheTouch {
        hit: from_cache,
        ..CacheTouch::default()
    };
    if from_cache {
        if let Some(file) = &cache_file {
            record_use(file);
        }
        touch.entry = cache_file;
        return Ok((roll, content_hash, touch));
    }
    if let Some(file) = cache_file {
        // A damaged entry goes first (one made read-only would otherwise never be replaced,
        // a miss on every run); a cache that cannot be written only costs speed next time.
        if damaged {
            let _ = std::fs::remove_file(&file);
        }
        // Made again if lost: not synced (the checksum catches an entry a power cut emptied).
        touch.wrote = fsutil::write_atomic_unsynced(&file, &encode_cached(&roll)).is_ok();
        touch.entry = Some(file);
    }
    Ok((roll, content_hash, touch))
}

/// Bytes of the checksum that ends a cache entry (the start of a BLAKE3 hash of the rest).
const CACHE_CHECKSUM: usize = 16;

/// The start of the BLAKE3 hash of `bytes`: a cache entry's checksum.
fn cache_checksum(bytes: &[u8]) -> [u8; CACHE_CHECKSUM] {
    let mut sum = [0u8; CACHE_CHECKSUM];
    sum.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CACHE_CHECKSUM]);
    sum
}

/// The compact cache form of a roll: its notes, tempo and metre maps, and a checksum (damage
/// that keeps the layout is not read as a roll).
pub fn encode_cached(roll: &Roll) -> Vec<u8> {
    let notes = roll.notes();
    let mut out = Vec::with_capacity(
        32 + notes.len() * 10
            + roll.tempo().len() * 8
            + roll.meters().len() * 7
            + roll.keys().len() * 6,
    );
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(roll.steps() as u32).to_le_bytes());
    out.extend_from_slice(&(roll.tempo().len() as u32).to_le_bytes());
    for t in roll.tempo() {
        out.extend_from_slice(&(t.step as u32).to_le_bytes());
        out.extend_from_slice(&t.micros_per_quarter.to_le_bytes());
    }
    out.extend_from_slice(&(roll.meters().len() as u32).to_le_bytes());
    for m in roll.meters() {
        out.extend_from_slice(&(m.step as u32).to_le_bytes());
        out.push(m.meter.numerator);
        out.extend_from_slice(&m.meter.denominator.to_le_bytes());
    }
    out.extend_from_slice(&(roll.keys().len() as u32).to_le_bytes());
    for k in roll.keys() {
        out.extend_from_slice(&(k.step as u32).to_le_bytes());
        out.extend_from_slice(&k.key.sharps.to_le_bytes());
        out.push(u8::from(k.key.minor));
    }
    out.extend_from_slice(&(notes.len() as u32).to_le_bytes());
    for n in &notes {
        out.extend_from_slice(&(n.start as u32).to_le_bytes());
        out.extend_from_slice(&(n.len as u32).to_le_bytes());
        out.push(n.pitch);
        out.push(n.velocity);
    }
    let sum = cache_checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// Decodes [`encode_cached`] output; `None` for anything damaged.
pub fn decode_cached(bytes: &[u8]) -> Option<Roll> {
    let (body, sum) = bytes.split_last_chunk::<CACHE_CHECKSUM>()?;
    if cache_checksum(body) != *sum {
        return None;
    }
    decode_cache_body(body)
}

/// Decodes a cache entry without its checksum (what [`decode_cached`] reads once the
/// checksum holds; public for the fuzz target, which feeds it arbitrary bytes). `None` for
/// anything malformed.
pub fn decode_cache_body(bytes: &[u8]) -> Option<Roll> {
    let mut r = bytes.strip_prefix(CACHE_MAGIC.as_slice())?;
    fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = r.split_first_chunk::<N>()?;
        *r = rest;
        Some(*head)
    }
    let u32_ = |r: &mut &[u8]| take::<4>(r).map(u32::from_le_bytes);
    let steps = u32_(&mut r)? as usize;
    let n_tempo = u32_(&mut r)? as usize;
    let mut tempo = Vec::with_capacity(n_tempo.min(1 << 16));
    for _ in 0..n_tempo {
        tempo.push(StepTempo {
            step: u32_(&mut r)? as usize,
            micros_per_quarter: u32_(&mut r)?,
        });
    }
    let n_meters = u32_(&mut r)? as usize;
    let mut meters = Vec::with_capacity(n_meters.min(1 << 16));
    for _ in 0..n_meters {
        let step = u32_(&mut r)? as usize;
        let [numerator] = take::<1>(&mut r)?;
        let denominator = take::<2>(&mut r).map(u16::from_le_bytes)?;
        meters.push(StepMeter {
            step,
            meter: Meter {
                numerator,
                denominator,
            },
        });
    }
    let n_keys = u32_(&mut r)? as usize;
    let mut keys = Vec::with_capacity(n_keys.min(1 << 16));
    for _ in 0..n_keys {
        let step = u32_(&mut r)? as usize;
        let [sharps, minor] = take::<2>(&mut r)?;
        let sharps = i8::from_le_bytes([sharps]);
        if !(-7..=7).contains(&sharps) || minor > 1 {
            return None;
        }
        keys.push(StepKey {
            step,
            key: crate::midi::Key {
                sharps,
                minor: minor == 1,
            },
        });
    }
    let n_notes = u32_(&mut r)? as usize;
    let mut notes = Vec::with_capacity(n_notes.min(1 << 20));
    for _ in 0..n_notes {
        let start = u32_(&mut r)? as usize;
        let len = u32_(&mut r)? as usize;
        let pv = take::<2>(&mut r)?;
        notes.push(RollNote {
            start,
            len,
            pitch: pv[0],
            velocity: pv[1],
        });
    }
    // A damaged entry must not make a roll longer than any file read makes (it is re-read).
    if !r.is_empty() || steps > crate::roll::MAX_STEPS {
        return None;
    }
    let mut roll = Roll::from_notes(steps, &notes, tempo);
    roll.set_meters(meters);
    roll.set_keys(keys);
    Some(roll)
}

/// Where a snippet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnippetRef {
    /// Index into [`Corpus::pieces`].
    pub piece: usize,
    /// The step (16th note) of the piece's roll it starts at.
    pub start: usize,
}

/// A batch of snippets as a dense f32 array `[batch, steps, 128]` (0.0/1.0).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Steps (16th notes) per snippet.
    pub steps: usize,
    /// The cells, row-major `[batch, steps, 128]`: 1.0 where a note sounds, else 0.0.
    pub data: Vec<f32>,
    /// Composer index of each item.
    pub composers: Vec<usize>,
    /// Where each item comes from.
    pub sources: Vec<SnippetRef>,
}

impl Batch {
    /// Puts the items of `other` (snippets of the same length) after this batch's.
    pub fn append(&mut self, other: Batch) {
        self.data.extend(other.data);
        self.composers.extend(other.composers);
        self.sources.extend(other.sources);
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.composers.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.composers.is_empty()
    }
}

/// Draws balanced batches: one random snippet per composer per batch, as in the paper.
/// Within a composer every possible snippet start of every piece is equally likely (every
/// multiple of `align` steps, for models that take the start to be a bar line), or, with
/// [`BalancedSampler::pieces_equally`], every piece is, then every start within it.
pub struct BalancedSampler<'a> {
    corpus: &'a Corpus,
    steps: usize,
    align: usize,
    by_piece: bool,
    /// Per composer: its pieces and the cumulative count of snippet starts.
    by_composer: Vec<(usize, Vec<usize>, Vec<u64>)>,
    rng: ChaCha8Rng,
}

impl<'a> BalancedSampler<'a> {
    /// A sampler over the given pieces (e.g. [`Split::train`]) for `steps`-long snippets.
    pub fn new(corpus: &'a Corpus, pieces: &[usize], steps: usize, seed: u64) -> Result<Self> {
        Self::aligned(corpus, pieces, steps, 1, seed)
    }

    /// A sampler whose snippets start on multiples of `align` steps (1 = anywhere, as
    /// [`BalancedSampler::new`]; 16 = on the bar lines of a 4/4 grid).
    pub fn aligned(
        corpus: &'a Corpus,
        pieces: &[usize],
        steps: usize,
        align: usize,
        seed: u64,
    ) -> Result<Self> {
        if align == 0 {
            return Err(Error::InvalidArgument(
                "snippet alignment must be at least 1 step".into(),
            ));
        }
        if steps == 0 {
            return Err(Error::InvalidArgument(
                "snippet length must be at least 1 step".into(),
            ));
        }
        let mut by_composer = Vec::new();
        for c in 0..corpus.composers.len() {
            let ids: Vec<usize> = pieces
                .iter()
                .copied()
                .filter(|&i| i < corpus.pieces.len() && corpus.pieces[i].composer == c)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut cumulative = Vec::with_capacity(ids.len());
            let mut total = 0u64;
            for &i in &ids {
                total +=
                    snippet_starts(corpus.pieces[i].roll.steps(), steps).div_ceil(align) as u64;
                cumulative.push(total);
            }
            by_composer.push((c, ids, cumulative));
        }
        if by_composer.is_empty() {
            return Err(Error::InvalidArgument(
                "no pieces to sample snippets from".into(),
            ));
        }
        Ok(BalancedSampler {
            corpus,
            steps,
            align,
            by_piece: false,
            by_composer,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Draws each composer's pieces equally often, whatever their lengths (a long piece
    /// otherwise gives more snippets than a short one).
    pub fn pieces_equally(mut self) -> Self {
        self.by_piece = true;
        self
    }

    /// One draw for the composer at `k`: the index of the piece in its list and the start.
    fn draw(&mut self, k: usize) -> (usize, usize) {
        let (_, ids, cumulative) = &self.by_composer[k];
        let starts_before = |j: usize| if j == 0 { 0 } else { cumulative[j - 1] };
        if self.by_piece {
            let j = self.rng.random_range(0..ids.len());
            let starts = (cumulative[j] - starts_before(j)).max(1);
            return (j, self.rng.random_range(0..starts) as usize * self.align);
        }
        let total = *cumulative.last().unwrap_or(&1);
        let pick = self.rng.random_range(0..total.max(1));
        let j = cumulative
            .partition_point(|&x| x <= pick)
            .min(ids.len() - 1);
        (j, (pick - starts_before(j)) as usize * self.align)
    }

    /// Number of composers represented (= batch size).
    pub fn composers(&self) -> usize {
        self.by_composer.len()
    }

    /// Draws and discards `batches` batches, as if [`BalancedSampler::next_batch`] had been
    /// called that many times (a resumed training run continues the same sequence).
    pub fn skip(&mut self, batches: usize) {
        for _ in 0..batches {
            for k in 0..self.by_composer.len() {
                self.draw(k);
            }
        }
    }

    /// The next batch: one snippet of each composer, in composer order.
    pub fn next_batch(&mut self) -> Batch {
        let n = self.by_composer.len();
        let mut batch = Batch {
            steps: self.steps,
            data: vec![0.0; n * self.steps * PITCHES],
            composers: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
        };
        let block = self.steps * PITCHES;
        for k in 0..n {
            let (j, start) = self.draw(k);
            let (c, ids, _) = &self.by_composer[k];
            let piece = ids[j];
            self.corpus.pieces[piece].roll.window_f32(
                start,
                self.steps,
                &mut batch.data[k * block..(k + 1) * block],
            );
            batch.composers.push(*c);
            batch.sources.push(SnippetRef { piece, start });
        }
        batch
    }
}

/// Number of snippet starts in a piece (at least 1: short pieces are padded with silence).
pub(crate) fn snippet_starts(piece_steps: usize, snippet_steps: usize) -> usize {
    piece_steps.saturating_sub(snippet_steps) + 1
}

/// Non-overlapping snippets of the given pieces, hop `hop` steps, for deterministic
/// evaluation; the last partial window of a piece is dropped unless the piece is shorter
/// than one snippet.
pub fn fixed_snippets(
    corpus: &Corpus,
    pieces: &[usize],
    steps: usize,
    hop: usize,
) -> Vec<SnippetRef> {
    let hop = hop.max(1);
    let mut out = Vec::new();
    for &piece in pieces {
        let len = corpus.pieces[piece].roll.steps();
        let mut start = 0;
        loop {
            out.push(SnippetRef { piece, start });
            start += hop;
            if start + steps > len {
                break;
            }
        }
    }
    out
}

/// Up to `per_composer` snippets of each composer's `pieces`, evenly spread, with labels.
pub fn evaluation_snippets(
    corpus: &Corpus,
    pieces: &[usize],
    steps: usize,
    per_composer: usize,
) -> Vec<(SnippetRef, usize)> {
    let mut out = Vec::new();
    for c in 0..corpus.composers.len() {
        let mine: Vec<usize> = pieces
            .iter()
            .copied()
            .filter(|&p| corpus.pieces[p].composer == c)
            .collect();
        let all = fixed_snippets(corpus, &mine, steps, steps);
        if all.is_empty() {
            continue;
        }
        let n = per_composer.min(all.len());
        for k in 0..n {
            out.push((all[k * all.len() / n], c));
        }
    }
    out
}

/// Per-composer figures of a corpus (what `segue corpus stats` prints).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ComposerStats {
    /// The composer's name (folder).
    pub composer: String,
    /// Pieces read.
    pub files: usize,
    /// Total length of the pieces, in steps (16th notes).
    pub steps: usize,
    /// Notes in the pieces.
    pub notes: usize,
    /// Mean number of sounding pitches per step, silent steps included.
    pub notes_per_step: f64,
    /// Lowest MIDI pitch (0-127) that sounds; `None` with no notes.
    pub lowest_pitch: Option<u8>,
    /// Highest MIDI pitch (0-127) that sounds; `None` with no notes.
    pub highest_pitch: Option<u8>,
    /// Files of the composer that could not be used.
    pub failures: usize,
}

impl ComposerStats {
    /// The figures of a composer with no piece (yet), and `failures` files that failed.
    fn empty(composer: String, failures: usize) -> Self {
        ComposerStats {
            composer,
            files: 0,
            steps: 0,
            notes: 0,
            notes_per_step: 0.0,
            lowest_pitch: None,
            highest_pitch: None,
            failures,
        }
    }
}

impl Corpus {
    /// Each snippet's piece's metre map and the step it starts at: where its bars fall, for
    /// the models told the metre.
    pub fn snippet_metres<'a>(
        &'a self,
        snippets: &'a [SnippetRef],
    ) -> impl Iterator<Item = (&'a [StepMeter], usize)> + 'a {
        snippets
            .iter()
            .map(|s| (self.pieces[s.piece].roll.meters(), s.start))
    }

    /// Figures per composer.
    pub fn stats(&self) -> Vec<ComposerStats> {
        self.composers
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let mut s = ComposerStats::empty(name.clone(), 0);
                let mut cells = 0usize;
                for p in self.pieces.iter().filter(|p| p.composer == c) {
                    s.files += 1;
                    s.steps += p.roll.steps();
                    s.notes += p.roll.notes().len();
                    cells += p.roll.active_cells();
                    for pitch in 0..PITCHES {
                        if (0..p.roll.steps()).any(|t| p.roll.is_on(t, pitch)) {
                            let pitch = pitch as u8;
                            s.lowest_pitch = Some(s.lowest_pitch.map_or(pitch, |l| l.min(pitch)));
                            s.highest_pitch = Some(s.highest_pitch.map_or(pitch, |h| h.max(pitch)));
                        }
                    }
                }
                s.notes_per_step = if s.steps > 0 {
                    cells as f64 / s.steps as f64
                } else {
                    0.0
                };
                s.failures = (self.failures.iter())
                    .filter(|f| f.composer == *name)
                    .count();
                s
            })
            .chain(
                (self.failed_only().into_iter())
                    .map(|(name, failures)| ComposerStats::empty(name, failures)),
            )
            .collect()
    }

    /// Folders none of whose files could be read (so no composer of the corpus), with how
    /// many failed, by name.
    fn failed_only(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for f in &self.failures {
            if !self.composers.contains(&f.composer) {
                *counts.entry(f.composer.as_str()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|(n, k)| (n.to_string(), k))
            .collect()
    }
}
