//! The open piece and the studio's settings between runs: one JSON file, written atomically
//! (temporary file + rename) on a worker thread. eframe's own storage rewrites its file in
//! place, so a crash during its save would lose the piece; it keeps only window state here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Deserialize;
use serde_json::Value;

use super::score::{Score, ScoreNote};
use super::session::Session;
use crate::fsutil;

/// The studio's data folder (`~/.local/share/segue` on Linux): the session, and the models
/// trained in the studio under `models/`.
pub fn data_dir() -> Option<PathBuf> {
    eframe::storage_dir("Segue")
}

/// Where the session lives: `session.json` in the studio's data folder.
pub fn default_path() -> Option<PathBuf> {
    data_dir().map(|dir| dir.join("session.json"))
}

/// The largest session file read (a piece of a million notes takes about 60 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The largest session file whose every field is compared with what was read of it, and
/// which is read note by note where it does not read whole (about a quarter of a million
/// notes); a larger one is read whole or not at all, and only its session's and score's own
/// fields are compared, not its notes'.
const COMPARED_BYTES: usize = 16 << 20;

/// A session read from its file, and what of the file it could not keep.
#[derive(Debug)]
pub struct ReadSession {
    /// The session, within the ranges the controls allow ([`Session::sanitize`]).
    pub session: Session,
    /// Notes that had to be left out (past the longest piece, damaged), if any.
    pub left_out: Option<usize>,
    /// Where the file holds what this version does not read (a setting it does not know, a
    /// value of a newer version, a field it has not got), as paths such as `engine` or
    /// `score.notes[3].channel`; the next save would write the session without them.
    pub not_read: Vec<String>,
}

/// Reads a saved session. `Ok(None)` when there is none yet; an error names the file and the
/// problem (a file that is not JSON). A file of another version is read as far as it goes: a
/// setting this version cannot read takes its default, a note it cannot read is left out (one
/// of an origin it does not know is an edited note), and what was not kept is listed.
pub fn read(path: &Path) -> Result<Option<ReadSession>, String> {
    if let Err(e) = std::fs::metadata(path)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(None);
    }
    let bytes = fsutil::read_at_most(path, MAX_FILE_BYTES)
        .map_err(|e| e.to_string())?
        .map_err(|size| {
            format!(
                "{}: {size} bytes, more than a saved session holds ({MAX_FILE_BYTES})",
                path.display()
            )
        })?;
    // A large session is read straight into its types: a tree of JSON values of a million
    // notes, and another of what was read, would take a gigabyte or two (and a file of
    // millions of damaged notes minutes), so one that does not read so is not read at all.
    if bytes.len() > COMPARED_BYTES {
        let mut session = serde_json::from_slice::<Session>(&bytes).map_err(|e| {
            format!(
                "{}: not a session this version reads ({e}), and at {} MiB too large to read \
                 note by note",
                path.display(),
                bytes.len() >> 20
            )
        })?;
        // Its notes are not compared field by field, but the session's and the score's own
        // fields are (skipped over, not kept): one this version does not know (a newer
        // version's) would be dropped by the next save, so it is said, and the file copied
        // aside first.
        let not_read = unknown_fields(&bytes, &mut session);
        let left_out = session.sanitize();
        return Ok(Some(ReadSession {
            session,
            left_out: (left_out > 0).then_some(left_out),
            not_read,
        }));
    }
    let not_a_session = |e: String| format!("{}: not a saved session ({e})", path.display());
    let file: Value = serde_json::from_slice(&bytes).map_err(|e| not_a_session(e.to_string()))?;
    if !file.is_object() {
        return Err(not_a_session("not a JSON object".into()));
    }
    let (mut session, unreadable) = match Session::deserialize(&file) {
        Ok(session) => (session, Vec::new()),
        Err(_) => read_leniently(&file),
    };
    let mut kept = serde_json::to_value(&session).map_err(|e| not_a_session(e.to_string()))?;
    // The notes left out hold their places (as nulls), so that what was not read of the
    // others is named by their places in the file; they are counted, not listed.
    if let Some(Value::Array(notes)) = kept.pointer_mut("/score/notes") {
        *notes = with_gaps(std::mem::take(notes), &unreadable);
    }
    let mut not_read = Vec::new();
    lost(&file, &kept, "", &mut not_read);
    let left_out = session.sanitize() + unreadable.len();
    Ok(Some(ReadSession {
        session,
        left_out: (left_out > 0).then_some(left_out),
        not_read,
    }))
}

/// The fields of a session file, and of its score, that `session`, read from it, does not
/// write back (as [`lost`] finds them in a smaller file), read without keeping their values
/// and compared without the notes (a large file's).
fn unknown_fields(bytes: &[u8], session: &mut Session) -> Vec<String> {
    use serde::de::IgnoredAny;
    type Fields = std::collections::BTreeMap<String, IgnoredAny>;
    /// The file's fields, its score's apart, read in one pass.
    #[derive(serde::Deserialize, Default)]
    struct FileFields {
        #[serde(default)]
        score: Option<Fields>,
        #[serde(flatten)]
        rest: Fields,
    }
    let notes = std::mem::take(&mut session.score.notes);
    let kept = serde_json::to_value(&*session).unwrap_or_default();
    session.score.notes = notes;
    let dropped = |at: &str, field: &str| {
        let here = if at.is_empty() {
            field.to_string()
        } else {
            format!("{at}.{field}")
        };
        let pointer = format!("/{}", here.replace('.', "/"));
        (kept.pointer(&pointer).is_none() && !READ_ONLY_FIELDS.contains(&here.as_str()))
            .then_some(here)
    };
    let file = serde_json::from_slice::<FileFields>(bytes).unwrap_or_default();
    let score = file.score.unwrap_or_default();
    (file.rest.keys().filter_map(|f| dropped("", f)))
        .chain(score.keys().filter_map(|f| dropped("score", f)))
        .collect()
}

/// `notes` with a null put at each of the places `gaps` (ascending) of the result, as far as
/// it reaches (the rest after its end), in one pass: inserting them one by one moved every
/// note after each gap, minutes for a file of millions of unreadable notes.
fn with_gaps(notes: Vec<Value>, gaps: &[usize]) -> Vec<Value> {
    let mut out = Vec::with_capacity(notes.len() + gaps.len());
    let mut gaps = gaps.iter().peekable();
    for note in notes {
        while gaps.next_if(|&&g| g <= out.len()).is_some() {
            out.push(Value::Null);
        }
        out.push(note);
    }
    out.extend(gaps.map(|_| Value::Null));
    out
}

/// A session from a file the whole of which does not read as one: each setting that reads is
/// put on the defaults; so is each field of the score, and each of its notes that reads (one
/// of an origin this version does not know as an edited note). Returns it and the places in
/// the file's notes of those that did not read (ascending).
fn read_leniently(file: &Value) -> (Session, Vec<usize>) {
    let mut unreadable = Vec::new();
    let fields = (file.as_object().into_iter().flatten()).map(|(key, value)| {
        let value = match (key.as_str(), value) {
            ("score", Value::Object(score)) => {
                let (score, dropped) = readable_score(score);
                unreadable = dropped;
                score
            }
            _ => value.clone(),
        };
        (key.clone(), value)
    });
    let base = serde_json::to_value(Session::default()).unwrap_or_default();
    let merged = merge_readable::<Session>(base, fields);
    let session = Session::deserialize(&merged).unwrap_or_default();
    (session, unreadable)
}

/// `base` (a `T`'s defaults) with each of `fields` that reads as a `T` put on it. A field
/// reads or not whatever the others hold, so each is tried on `base` alone: the trials cost
/// the size of the defaults, not of everything merged before them (a file of many fields
/// and a large score took seconds).
fn merge_readable<T: serde::de::DeserializeOwned>(
    base: Value,
    fields: impl IntoIterator<Item = (String, Value)>,
) -> Value {
    let mut merged = base.clone();
    for (key, value) in fields {
        let mut trial = base.clone();
        trial[key.as_str()] = value;
        if T::deserialize(&trial).is_ok() {
            merged[key.as_str()] = trial[key.as_str()].take();
        }
    }
    match T::deserialize(&merged) {
        Ok(_) => merged,
        Err(_) => base,
    }
}

/// A score's JSON that reads: its fields that read put on an empty score's, its notes that
/// read, and the places of those that do not.
fn readable_score(score: &serde_json::Map<String, Value>) -> (Value, Vec<usize>) {
    let mut readable = serde_json::Map::new();
    let mut dropped = Vec::new();
    if let Some(Value::Array(notes)) = score.get("notes") {
        let mut kept = Vec::with_capacity(notes.len());
        for (i, note) in notes.iter().enumerate() {
            let reads = |n: &Value| ScoreNote::deserialize(n).is_ok();
            if reads(note) {
                kept.push(note.clone());
                continue;
            }
            // Only an object has an origin to replace (indexing another value by a key
            // panics): a number, a text or a list where a note should be is left out, unless
            // it reads as one (a list of a note's fields in their order does).
            if note.is_object() {
                let mut edited = note.clone();
                edited["origin"] = Value::from("Edited");
                if reads(&edited) {
                    kept.push(edited);
                    continue;
                }
            }
            dropped.push(i);
        }
        readable.insert("notes".to_string(), Value::Array(kept));
    }
    let fields = (score.iter()).map(|(key, value)| {
        let value = readable.remove(key).unwrap_or_else(|| value.clone());
        (key.clone(), value)
    });
    let base = serde_json::to_value(Score::new()).unwrap_or_default();
    (merge_readable::<Score>(base, fields), dropped)
}

/// Fields the reader takes from files of earlier versions and never writes: not lost.
const READ_ONLY_FIELDS: [&str; 1] = ["score.meter"];

/// Lists into `out` the places where `file` holds what `kept` (the session read from it,
/// written again) does not: fields missing, values changed, array items gone. A null is a
/// field left out; numbers compare as numbers (`120` is `120.0`).
fn lost(file: &Value, kept: &Value, at: &str, out: &mut Vec<String>) {
    let same_number = |a: &Value, b: &Value| matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if (x - y).abs() <= 1e-6 * x.abs().max(y.abs()));
    match (file, kept) {
        (Value::Object(f), Value::Object(k)) => {
            for (key, value) in f {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match k.get(key) {
                    Some(kept) => lost(value, kept, &here, out),
                    None if value.is_null() || READ_ONLY_FIELDS.contains(&here.as_str()) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(f), Value::Array(k)) => {
            for (i, value) in f.iter().enumerate() {
                match k.get(i) {
                    // A note left out (counted, not listed).
                    Some(Value::Null) if !value.is_null() => {}
                    Some(kept) => lost(value, kept, &format!("{at}[{i}]"), out),
                    None => out.push(format!("{at}[{i}..]")),
                }
                if i >= k.len() {
                    break;
                }
            }
        }
        (a, b) if a == b || same_number(a, b) => {}
        _ => out.push(at.to_string()),
    }
}

/// Moves an unreadable session file aside (`session.json` -> `session.unreadable.json`, or
/// `session.unreadable-2.json` and so on where that is taken), so that neither the next save
/// nor a later unreadable session overwrites what may still be recovered by hand. Returns
/// where it went.
pub fn set_aside(path: &Path) -> Option<PathBuf> {
    let aside = fsutil::free_name(path, "unreadable")?;
    std::fs::rename(path, &aside).ok().map(|_| aside)
}

/// Copies a session file that was read only in part (`session.json` ->
/// `session.before-repair.json`, numbered as in [`set_aside`]), so that what the studio
/// could not keep may still be recovered by hand. Returns where the copy went.
pub fn keep_copy(path: &Path) -> Option<PathBuf> {
    let copy = fsutil::free_name(path, "before-repair")?;
    std::fs::copy(path, &copy).ok().map(|_| copy)
}

/// How a session's bytes reach the disk (on the saver's worker thread).
pub type WriteSession = Arc<dyn Fn(&Path, &[u8]) -> Result<(), String> + Send + Sync>;

/// Creates the folder if need be, then writes atomically (temporary file + rename).
fn write_session(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create it: {e}", dir.display()))?;
    }
    fsutil::write_atomic(path, bytes).map_err(|e| e.to_string())
}

/// What tells one session from another without copying it: a hash of its notes and the
/// serialised rest (the settings, the view, the score's other fields: small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    notes: u64,
    rest: blake3::Hash,
}

/// The session's [`Fingerprint`] (its notes are set aside for the rest's serialisation, and
/// put back); none where the rest does not serialise (then it is always saved, and the
/// writer says why it cannot be).
fn fingerprint(session: &mut Session) -> Option<Fingerprint> {
    let notes = notes_hash(&session.score.notes);
    let kept = std::mem::take(&mut session.score.notes);
    let rest = serde_json::to_vec(&*session);
    session.score.notes = kept;
    Some(Fingerprint {
        notes,
        rest: blake3::hash(&rest.ok()?),
    })
}

/// A hash of the notes quick enough for the window's thread (a 100 000-note piece in well under
/// a millisecond): FxHash's multiply-rotate mix over each note's fields. Each step maps its
/// state one to one for a given field and a field one to one for a given state, so a change
/// to any one field of any note always changes the hash.
pub(crate) fn notes_hash(notes: &[ScoreNote]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, x: u64| (h.rotate_left(5) ^ x).wrapping_mul(K);
    notes.iter().fold(notes.len() as u64, |h, n| {
        let small = u64::from(n.pitch) | u64::from(n.velocity) << 8 | (n.origin as u64) << 16;
        mix(mix(mix(h, small), n.start as u64), n.len as u64)
    })
}

/// Writes sessions in the background, one at a time, in the order given; the window never
/// waits for a write (a slow disk only makes a newer save wait for the one before it).
pub struct Saver {
    path: PathBuf,
    write: WriteSession,
    /// The write in progress; it ends with the hash of the bytes now in the file.
    writing: Option<JoinHandle<Result<blake3::Hash, String>>>,
    /// The hash of the bytes the last write left in the file: a session that serialises to
    /// the same bytes is not written again (an idle studio's saves every 30 s cost no disk).
    written: Option<blake3::Hash>,
    /// The newest session asked for while a write was still going: written next.
    pending: Option<(Box<Session>, Option<Fingerprint>)>,
    /// The fingerprint of the session being written.
    writing_print: Option<Fingerprint>,
    /// The fingerprint of the session the last write left in the file (none after a failed
    /// write): the same session is not copied and serialised again.
    written_print: Option<Fingerprint>,
    /// How many sessions were handed to the writer thread (copied and serialised).
    started: usize,
    /// This studio's hold on the session (see [`Saver::claim`]), kept while it runs.
    _lock: Option<std::fs::File>,
    /// The last write's problem, if it failed.
    pub problem: Option<String>,
    /// Whether the last write that ended failed (what the file holds is older than the
    /// session handed to it).
    failed: bool,
}

impl std::fmt::Debug for Saver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saver")
            .field("path", &self.path)
            .field("writing", &self.writing.is_some())
            .field("waiting", &self.pending.is_some())
            .field("problem", &self.problem)
            .finish()
    }
}

impl Saver {
    /// A saver to `path`.
    pub fn new(path: PathBuf) -> Self {
        Self::with_writer(path, Arc::new(write_session))
    }

    /// A saver to `path` that writes with `write` (a slow disk, in tests).
    pub fn with_writer(path: PathBuf, write: WriteSession) -> Self {
        Saver {
            path,
            write,
            writing: None,
            written: None,
            pending: None,
            writing_print: None,
            written_print: None,
            started: 0,
            _lock: None,
            problem: None,
            failed: false,
        }
    }

    /// A saver to `path` for the one studio that keeps the session: it locks `path` with the
    /// extension `.lock` beside it for as long as it lives. A second studio open at the same
    /// time gets an error saying so (and should not save: the two would overwrite each
    /// other's piece). Where the lock cannot be taken for another reason (a read-only folder,
    /// a file system without locks), the saver goes on unlocked.
    pub fn claim(path: PathBuf) -> Result<Self, String> {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return Err(format!(
                "Cannot make the folder that keeps the session ({}: {e}): this window's piece \
                 is not kept when it closes; export it to keep it",
                dir.display()
            ));
        }
        let lock = match fsutil::try_lock_file(&path.with_extension("lock")) {
            Ok(fsutil::FileLock::Held(file)) => Some(file),
            Ok(fsutil::FileLock::Busy) => {
                return Err(format!(
                    "Another Segue studio is open and keeps the session ({}): this window's \
                     piece is not kept when it closes; export it to keep it",
                    path.display()
                ));
            }
            Ok(fsutil::FileLock::Unsupported(_)) | Err(_) => None,
        };
        let mut saver = Saver::new(path);
        saver._lock = lock;
        Ok(saver)
    }

    /// Starts writing `session` (copied now, serialised and written on a worker thread, so
    /// that a long piece costs the window no more than its copy). If the previous write is
    /// still going, this one waits for the next save (or [`Saver::finish`]), and only the
    /// newest such session is kept.
    ///
    /// A session as the one last written (or being written), whose file is still there, is
    /// not copied at all: an idle studio with a long piece open costs a hash of its notes
    /// every [`super::app::SAVE_EVERY`], not a copy, a thread and its serialisation.
    pub fn save(&mut self, session: &mut Session) {
        // A write that ended is taken in first: one that failed is tried again (and its
        // problem said), never taken for the session on disk.
        if self.writing.as_ref().is_some_and(|w| w.is_finished()) {
            self.join();
        }
        let print = fingerprint(session);
        let in_hand = match &self.pending {
            Some((_, pending)) => pending.as_ref(),
            None => self.writing_print.as_ref().or(self.written_print.as_ref()),
        };
        if print.is_some() && in_hand == print.as_ref() && self.path.exists() {
            return;
        }
        let session = Box::new(session.clone());
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            self.pending = Some((session, print));
            return;
        }
        self.join();
        self.pending = None;
        self.start(session, print);
    }

    /// How many sessions were copied and handed to the writer thread so far.
    pub fn saves_started(&self) -> usize {
        self.started
    }

    fn start(&mut self, session: Box<Session>, print: Option<Fingerprint>) {
        self.started += 1;
        self.writing_print = print;
        let path = self.path.clone();
        let write = self.write.clone();
        let written = self.written;
        self.writing = Some(std::thread::spawn(move || {
            let bytes = serde_json::to_vec(&*session)
                .map_err(|e| format!("cannot save the session: {e}"))?;
            // What the next start would refuse to read is not written (the last session
            // written stays).
            if bytes.len() as u64 > MAX_FILE_BYTES {
                return Err(format!(
                    "the piece is too large to keep as a session ({} bytes; at most \
                     {MAX_FILE_BYTES}): export it to keep it",
                    bytes.len()
                ));
            }
            let hash = blake3::hash(&bytes);
            // Unchanged, and still there (a file removed meanwhile is written again).
            if written == Some(hash) && path.exists() {
                return Ok(hash);
            }
            write(&path, &bytes).map(|()| hash)
        }));
    }

    /// Takes in a write that ended (its problem, if it failed, in [`Saver::problem`]) and
    /// starts writing the session that waited for it (called every frame: it never waits).
    pub fn poll(&mut self) {
        if self.writing.as_ref().is_some_and(|w| w.is_finished()) {
            self.join();
        }
        if self.writing.is_none()
            && let Some((session, print)) = self.pending.take()
        {
            self.start(session, print);
        }
    }

    /// Whether a write is still going on its thread (one that ended is taken in by the next
    /// [`Saver::poll`] or [`Saver::save`]).
    pub fn writing(&self) -> bool {
        self.writing.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// Whether a session waits for the previous write to end.
    pub fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Waits for the write in progress, if any, and records its problem.
    fn join(&mut self) {
        if let Some(handle) = self.writing.take() {
            let print = self.writing_print.take();
            self.written_print = None;
            self.problem = match handle.join() {
                Ok(Ok(hash)) => {
                    self.written = Some(hash);
                    self.written_print = print;
                    None
                }
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the session writer stopped unexpectedly".into()),
            };
            self.failed = self.problem.is_some();
        }
    }

    /// Waits until every session asked for is written, and says whether the last write
    /// failed (its problem, not yet said, in [`Saver::problem`]).
    pub fn finish_failed(&mut self) -> bool {
        self.finish();
        self.failed
    }

    /// Waits until every session asked for is written, and records the last problem.
    pub fn finish(&mut self) {
        self.join();
        if let Some((session, print)) = self.pending.take() {
            self.start(session, print);
            self.join();
        }
    }
}

impl Drop for Saver {
    /// The last save completes before the studio exits.
    fn drop(&mut self) {
        self.finish();
    }
}

/// The session's paths: UTF-8 ones as text; on Unix, a name in another encoding (a folder
/// copied from an old disk) as `{"unix_bytes": [...]}`, so that opening such a file never
/// stops the session from being saved. For `#[serde(with)]` on `Option<PathBuf>` fields.
pub mod stored_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Text(String),
        Bytes { unix_bytes: Vec<u8> },
    }

    /// Writes `path` as text where it is UTF-8, else as its bytes (Unix) or lossily.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        let Some(path) = path else {
            return s.serialize_none();
        };
        let stored = match path.to_str() {
            Some(text) => Stored::Text(text.to_string()),
            #[cfg(unix)]
            None => Stored::Bytes {
                unix_bytes: std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec(),
            },
            #[cfg(not(unix))]
            None => Stored::Text(path.to_string_lossy().into_owned()),
        };
        s.serialize_some(&stored)
    }

    /// Reads what [`serialize`] wrote (and plain text paths of older sessions).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(match Option::<Stored>::deserialize(d)? {
            None => None,
            Some(Stored::Text(text)) => Some(PathBuf::from(text)),
            #[cfg(unix)]
            Some(Stored::Bytes { unix_bytes }) => Some(PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&unix_bytes),
            )),
            #[cfg(not(unix))]
            Some(Stored::Bytes { unix_bytes }) => Some(PathBuf::from(
                String::from_utf8_lossy(&unix_bytes).into_owned(),
            )),
        })
    }

    #[cfg(all(test, unix))]
    mod tests {
        use std::os::unix::ffi::OsStrExt;
        use std::path::PathBuf;

        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Holder {
            #[serde(default, with = "super")]
            path: Option<PathBuf>,
        }

        #[test]
        fn paths_in_any_encoding_are_kept() {
            let latin1 = PathBuf::from(std::ffi::OsStr::from_bytes(b"/music/Dvo\xf8r\xe1k/a.mid"));
            for path in [
                None,
                Some(PathBuf::from("/music/Dvořák/a.mid")),
                Some(latin1),
            ] {
                let held = Holder { path };
                let json = serde_json::to_string(&held).unwrap();
                assert_eq!(
                    serde_json::from_str::<Holder>(&json).unwrap(),
                    held,
                    "{json}"
                );
            }
            // Sessions written before: plain text, or the field missing.
            let old: Holder = serde_json::from_str(r#"{"path": "/a/b.mid"}"#).unwrap();
            assert_eq!(old.path, Some(PathBuf::from("/a/b.mid")));
            assert_eq!(serde_json::from_str::<Holder>("{}").unwrap().path, None);
        }
    }
}
