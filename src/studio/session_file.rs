//! The open piece and the studio's settings between runs: one JSON file, written atomically
//! (temporary file + rename) on a worker thread. eframe's own storage rewrites its file in
//! place, so a crash during its save would lose the piece; it keeps only window state here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::app::Session;
use crate::fsutil;

/// Where the session lives: `session.json` in eframe's storage folder for the studio.
pub fn default_path() -> Option<PathBuf> {
    eframe::storage_dir("Segue").map(|dir| dir.join("session.json"))
}

/// The largest session file read (a piece of a million notes takes about 60 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads a saved session. `Ok(None)` when there is none yet; an error names the file and the
/// problem. The session is brought into the ranges the controls allow ([`Session::sanitize`]),
/// with the number of notes that had to be left out, if any.
pub fn read(path: &Path) -> Result<Option<(Session, Option<usize>)>, String> {
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
    let mut session: Session = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a saved session ({e})", path.display()))?;
    let left_out = session.sanitize();
    Ok(Some((session, (left_out > 0).then_some(left_out))))
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
    pending: Option<Box<Session>>,
    /// This studio's hold on the session (see [`Saver::claim`]), kept while it runs.
    _lock: Option<std::fs::File>,
    /// The last write's problem, if it failed.
    pub problem: Option<String>,
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
            _lock: None,
            problem: None,
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
    pub fn save(&mut self, session: &Session) {
        let session = Box::new(session.clone());
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            self.pending = Some(session);
            return;
        }
        self.join();
        self.pending = None;
        self.start(session);
    }

    fn start(&mut self, session: Box<Session>) {
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

    /// Starts writing the session that waited for the previous write, once that is done
    /// (called every frame: it never waits).
    pub fn poll(&mut self) {
        if self.pending.is_some() && self.writing.as_ref().is_none_or(|w| w.is_finished()) {
            self.join();
            if let Some(session) = self.pending.take() {
                self.start(session);
            }
        }
    }

    /// Whether a session waits for the previous write to end.
    pub fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Waits for the write in progress, if any, and records its problem.
    fn join(&mut self) {
        if let Some(handle) = self.writing.take() {
            self.problem = match handle.join() {
                Ok(Ok(hash)) => {
                    self.written = Some(hash);
                    None
                }
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the session writer stopped unexpectedly".into()),
            };
        }
    }

    /// Waits until every session asked for is written, and records the last problem.
    pub fn finish(&mut self) {
        self.join();
        if let Some(session) = self.pending.take() {
            self.start(session);
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
