//! Atomic file writes: every file Segue writes goes to a temporary file in the same folder
//! first and is renamed over the target only when complete, so a crash or a full disk never
//! leaves a half-written file where the user's work was; sets of files that belong together
//! (begun, committed, recovered), the leftovers of killed writes removed.
//!
//! Also the other file system work that input and output share: reads with a size limit,
//! checks on the paths given (a folder, a link, two names of one file), advisory locks, and
//! paths shown in messages with their hidden characters made visible ([`shown`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// The temporary files being written now, for [`remove_unfinished`].
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Lists a temporary file in [`UNFINISHED`] while it lives.
struct Unfinished(PathBuf);

impl Unfinished {
    fn new(path: &Path) -> Self {
        unfinished().push(path.to_owned());
        Unfinished(path.to_owned())
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let mut list = unfinished();
        if let Some(i) = list.iter().position(|p| *p == self.0) {
            list.swap_remove(i);
        }
    }
}

fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files of the writes in progress (those in `dir`, or all); no write
/// can rename its file into place while the returned guard lives (those cut short fail when
/// they try).
fn remove_unfinished(dir: Option<&Path>) -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let list = unfinished();
    for path in list.iter().filter(|p| dir.is_none_or(|d| p.starts_with(d))) {
        let _ = std::fs::remove_file(path);
    }
    list
}

/// Ends the process with `code` at once, removing the temporary files of the writes it cuts
/// short: for a second Ctrl+C, which must not wait for the writes but must not leave their
/// hidden `.segue-*.part` files behind either.
pub fn remove_unfinished_and_exit(code: i32) -> ! {
    let _held = remove_unfinished(None);
    std::process::exit(code)
}

/// Removes the temporary files of every write in progress, for a program about to end
/// without waiting for them; none of them can rename its file into place while the returned
/// guard lives.
pub fn remove_unfinished_writes() -> impl Drop {
    remove_unfinished(None)
}

/// A buffered temporary file being written (it can seek, as a WAV writer needs to).
pub type AtomicWriter<'a> = std::io::BufWriter<&'a std::fs::File>;

/// Writes `bytes` to `path` as [`write_atomic`] does, but without syncing it to disk: for a
/// file that can be made again and is checked when read (a roll cache entry, which ends with
/// a checksum). A power cut may lose it, or leave it empty; a reader sees it whole or not at
/// all otherwise. Two syncs a file made a cold corpus load wait on the disk 1240 times.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_inner(path, |w| w.write_all(bytes), false)
}

/// Streams content into `path` atomically: `fill` writes into a buffered temporary file that
/// replaces `path` only if `fill` and the flush succeed.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut AtomicWriter<'_>) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_inner(path, fill, true)
}

/// [`write_atomic_with`], synced to disk (the file and its folder) where `durable`.
fn write_atomic_inner(
    path: &Path,
    fill: impl FnOnce(&mut AtomicWriter<'_>) -> std::io::Result<()>,
    durable: bool,
) -> Result<()> {
    // Writing through a symbolic link updates the file it points to; the link stays.
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match path.canonicalize() {
            Ok(target) => {
                resolved = target;
                resolved.as_path()
            }
            // A link to nothing is replaced, as a missing file would be created.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => path,
            Err(e) => return Err(Error::io(path, "following the link", e)),
        },
        _ => path,
    };
    let dir = check_target(path)?;
    sweep_abandoned_writes(dir);
    let mut builder = tempfile::Builder::new();
    builder.prefix(PART_PREFIX).suffix(PART_SUFFIX);
    // The finished file keeps the mode of the file it replaces exactly; a new one gets the
    // usual 0644, less the umask.
    let replaced = std::fs::metadata(path).ok().map(|m| m.permissions());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        // The temporary file's own name says nothing to the user: the folder does.
        let e = match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                std::io::Error::new(
                    e.kind(),
                    format!("the folder {} is not writable", shown(dir)),
                )
            }
            // The system's reason without the temporary file's path tempfile adds to it.
            _ => {
                // tempfile writes the system's reason, then " at path" and its own file's.
                let said = e.to_string();
                let cause = said
                    .rsplit_once(" at path ")
                    .map_or(said.as_str(), |(c, _)| c);
                std::io::Error::new(
                    e.kind(),
                    format!("cannot make a file in the folder {}: {cause}", shown(dir)),
                )
            }
        };
        Error::io(path, "preparing to write", e)
    })?;
    let listed = Unfinished::new(tmp.path());
    if let Some(mode) = replaced {
        // Best effort: some network file systems refuse to change modes.
        let _ = tmp.as_file().set_permissions(mode);
    }
    {
        let mut buf = std::io::BufWriter::new(tmp.as_file());
        fill(&mut buf).map_err(|e| Error::io(path, "writing", e))?;
        buf.flush().map_err(|e| Error::io(path, "writing", e))?;
    }
    if durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(path, "syncing", e))?;
    }
    // Still listed while it is renamed: an exit meanwhile waits for the rename to end.
    let persisted = {
        let _renaming = unfinished();
        tmp.persist(path)
    };
    drop(listed);
    persisted.map_err(|e| Error::io(path, "renaming the finished file onto", e.error))?;
    if durable {
        sync_dir(dir);
    }
    Ok(())
}

/// How the temporary file of a write is named: `.segue-XXXXXX.part`, hidden beside its target.
const PART_PREFIX: &str = ".segue-";
const PART_SUFFIX: &str = ".part";

/// A temporary file untouched this long belongs to a write that was killed (`kill -9`, a power
/// cut: no handler ran to remove it); a write in progress touches its file every moment.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary files of killed writes from `dir` (see [`ABANDONED_AFTER`]), once per
/// folder in a process: a folder written into often (the roll cache) is listed once. Best
/// effort: what cannot be listed or removed stays.
fn sweep_abandoned_writes(dir: &Path) {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if swept.iter().any(|d| d == dir) {
            return;
        }
        swept.push(dir.to_owned());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(PART_PREFIX) && name.ends_with(PART_SUFFIX)) {
            continue;
        }
        let abandoned = (entry.metadata().ok())
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Makes a rename into `dir` durable (a power cut could otherwise lose the new name while the
/// file's contents are on disk). Best effort: not every file system syncs a folder.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `path` with a tag before its extension (`session.json` -> `session.TAG.json`, or
/// `session.TAG-2.json` and so on where that is taken), the first such name not taken: where
/// a file is set aside rather than overwritten.
pub fn free_name(path: &Path, tag: &str) -> Option<std::path::PathBuf> {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    (1u32..1000)
        .map(|k| {
            let tag = match k {
                1 => tag.to_string(),
                k => format!("{tag}-{k}"),
            };
            path.with_extension(match &ext {
                Some(e) => format!("{tag}.{e}"),
                None => tag,
            })
        })
        .find(|p| !p.exists())
}

/// Checks that a file can be written at `path` (it is not a folder nor a read-only file, one
/// no one may write to; its folder exists), so that long work can refuse a bad output path before it starts. Returns
/// the folder.
pub fn check_target(path: &Path) -> Result<&Path> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(Error::io(
            path,
            "writing",
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "the path is a folder"),
        ));
    }
    check_is_file(path)?;
    // `out/piece.mid/` names a folder that is not there: the rename would fail at the end.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/")
        || cfg!(windows) && path.as_os_str().as_encoded_bytes().ends_with(b"\\")
    {
        return Err(Error::io(
            path,
            "writing",
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the name ends with a separator, as a folder's would: name the file without it",
            ),
        ));
    }
    // Renaming over a file needs only its folder to be writable: a file the user protected
    // would be replaced without a word.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        return Err(Error::io(
            path,
            "writing",
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the file is read-only; Segue does not replace it",
            ),
        ));
    }
    if !dir.is_dir() {
        return Err(Error::io(
            path,
            "writing",
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", shown(dir)),
            ),
        ));
    }
    Ok(dir)
}

/// What trying to lock a file gave (see [`try_lock_file`]).
pub enum FileLock {
    /// The lock is held while the file stays open.
    Held(std::fs::File),
    /// Another process (or another open of the file) holds it.
    Busy,
    /// The file system cannot lock files (some network file systems): the file, unlocked.
    Unsupported(std::fs::File),
}

/// Opens `path` (created if missing, never truncated) and tries to take the operating system's
/// exclusive advisory lock on it (`flock` on Unix, `LockFileEx` on Windows), without waiting.
/// A process that crashes or is killed leaves no lock behind.
pub fn try_lock_file(path: &Path) -> Result<FileLock> {
    check_not_link(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, "opening", e))?;
    Ok(match file.try_lock() {
        Ok(()) => FileLock::Held(file),
        Err(std::fs::TryLockError::WouldBlock) => FileLock::Busy,
        Err(std::fs::TryLockError::Error(_)) => FileLock::Unsupported(file),
    })
}

/// Refuses a link at `path`, where Segue keeps a file of its own (a run's log and lock): it
/// does not write through a link there (a run folder from elsewhere could point one at any
/// file of the user's). Nothing there is fine.
pub fn check_not_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::format(
            path,
            "a link to another file, where Segue keeps a file of its own; it does not write \
             through it (remove the link)",
        )),
        _ => Ok(()),
    }
}

/// Whether `a` and `b` name the same existing file (through links and `..`).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether writing `a` and writing `b` would land on one file, also where neither is there
/// yet: a link at either is followed (a link to a file written first then leads to it, as
/// [`write_atomic_with`] follows it), and their folders are resolved.
pub fn same_landing(a: &Path, b: &Path) -> bool {
    let landing = |path: &Path| -> Option<PathBuf> {
        let path = match std::fs::read_link(path) {
            Ok(target) => path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => path.to_path_buf(),
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new(".")).canonicalize().ok()?;
        Some(dir.join(path.file_name()?))
    };
    landing(a).is_some_and(|a| Some(a) == landing(b))
}

/// Refuses a path that is there but is no file (a pipe or a device: reading one can wait for
/// ever, and a write would replace it with a file).
pub fn check_is_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Err(Error::format(
            path,
            "not a regular file (a pipe or a device): Segue reads and writes files only",
        )),
        _ => Ok(()),
    }
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    check_is_file(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, "reading", e))
}

/// Reads `path` if it holds at most `limit` bytes; else `Ok(Err(size))`, having read no more
/// than `limit + 1` bytes (its size as the file system gives it, where that is larger). A pipe
/// or a device is refused (see [`check_is_file`]); the read is bounded whatever the file
/// system says all the same.
pub fn read_at_most(path: &Path, limit: u64) -> Result<std::result::Result<Vec<u8>, u64>> {
    // A pipe would wait for a writer for ever.
    check_is_file(path)?;
    read_bounded(path, limit)
}

/// As [`read_at_most`], for a file the user named on the command line: a pipe is read too
/// (process substitution, `segue info <(curl ...)`: the user gave it, and its writer), a
/// device is still refused. Never for files found in a folder or picked in the studio, where
/// a pipe with no writer would hold the work for ever.
pub fn read_named_at_most(path: &Path, limit: u64) -> Result<std::result::Result<Vec<u8>, u64>> {
    if !is_pipe(path) {
        check_is_file(path)?;
    }
    read_bounded(path, limit)
}

/// Whether `path` names a file the user may give on the command line: a regular file, or a
/// pipe (process substitution; see [`read_named_at_most`]).
pub fn is_named_input(path: &Path) -> bool {
    path.is_file() || is_pipe(path)
}

/// Whether `path` is a named pipe (always false off Unix).
fn is_pipe(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Reads at most `limit + 1` bytes of `path` (see [`read_at_most`]).
fn read_bounded(path: &Path, limit: u64) -> Result<std::result::Result<Vec<u8>, u64>> {
    use std::io::Read;
    let io = |e| Error::io(path, "reading", e);
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Ok(Err(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// The folder inside `target` where a set of files that belong together (a checkpoint: weights,
/// manifest, optimiser state) is written before it replaces the previous set.
fn staging_dir(target: &Path) -> std::path::PathBuf {
    target.join(".segue-next")
}

/// Written into the staging folder once every file of the set is complete.
const SET_COMPLETE: &str = "COMPLETE";

/// Starts writing a set of files for `target`: returns an empty staging folder to write them
/// into (each file atomically), to be moved into `target` by [`commit_set`]. Until then the
/// previous set in `target` is untouched, so a crash while writing loses only the new set.
pub fn begin_set(target: &Path) -> Result<std::path::PathBuf> {
    let stage = staging_dir(target);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| Error::io(&stage, "clearing", e))?;
    }
    std::fs::create_dir_all(&stage).map_err(|e| Error::io(&stage, "creating", e))?;
    Ok(stage)
}

/// Moves the complete set written since [`begin_set`] into `target`, replacing the files of
/// the same names. The set is first marked complete, so that if this is interrupted between
/// two renames, [`recover_set`] finishes the move instead of leaving old and new files mixed.
pub fn commit_set(target: &Path) -> Result<()> {
    let stage = staging_dir(target);
    write_atomic(&stage.join(SET_COMPLETE), b"")?;
    move_set(&stage, target)
}

/// Whether a set for `target` was written whole but not yet moved into place (a crash while
/// moving it): [`recover_set`] will finish it.
pub fn set_pending(target: &Path) -> bool {
    staging_dir(target).join(SET_COMPLETE).exists()
}

/// Finishes a set interrupted while being moved into `target`, or drops one interrupted while
/// being written (the previous set is then whole). Call before reading `target`'s set.
pub fn recover_set(target: &Path) -> Result<()> {
    let stage = staging_dir(target);
    if !stage.exists() {
        return Ok(());
    }
    if stage.join(SET_COMPLETE).exists() {
        move_set(&stage, target)
    } else {
        std::fs::remove_dir_all(&stage).map_err(|e| Error::io(&stage, "clearing", e))
    }
}

fn move_set(stage: &Path, target: &Path) -> Result<()> {
    let entries = std::fs::read_dir(stage).map_err(|e| Error::io(stage, "reading", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(stage, "reading", e))?;
        let name = entry.file_name();
        if name == SET_COMPLETE || name.to_string_lossy().starts_with(".segue-") {
            continue;
        }
        let to = target.join(&name);
        std::fs::rename(entry.path(), &to).map_err(|e| Error::io(&to, "moving into place", e))?;
    }
    sync_dir(target);
    std::fs::remove_dir_all(stage).map_err(|e| Error::io(stage, "clearing", e))
}

/// A path as a terminal may show it: control characters (an escape sequence, a line break in
/// a file's name) and the bidirectional-text overrides escaped as `\u{1b}`, the rest as
/// [`Path::display`] gives it.
pub fn shown(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.chars().any(hides_text) {
        return text;
    }
    text.chars()
        .map(|c| {
            if hides_text(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A character that printed raw could change what a terminal shows around it: a control
/// character or a bidirectional-text override or isolate.
pub fn hides_text(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Serialises an optional path as text, lossily where it is not UTF-8 (for records of where
/// something came from, which must not stop a file from being written).
pub fn serialize_path_lossy<S: serde::Serializer>(
    path: &Option<std::path::PathBuf>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match path {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_shown_without_control_characters() {
        let p = Path::new("/music/a\u{1b}[2J\nb\u{202e}c.mid");
        assert_eq!(super::shown(p), "/music/a\\u{1b}[2J\\u{a}b\\u{202e}c.mid");
        assert_eq!(
            super::shown(Path::new("/music/Dvořák é.mid")),
            "/music/Dvořák é.mid"
        );
    }

    use super::*;

    /// A name ending with a separator is refused before anything is written, naming why (the
    /// rename at the end said "Not a directory").
    #[test]
    fn a_name_ending_with_a_separator_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = PathBuf::from(format!("{}/piece.mid/", dir.path().display()));
        let e = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(e.contains("ends with a separator"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The hidden temporary file of a write killed outright (no handler ran) is removed by the
    /// next write into its folder once an hour old; one being written and the user's own
    /// files stay.
    #[test]
    fn a_write_removes_what_killed_writes_left_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let part = |name: &str, age: std::time::Duration| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            path
        };
        let hour = ABANDONED_AFTER;
        let killed = part(".segue-AbCdEf.part", hour * 2);
        let writing = part(".segue-GhIjKl.part", hour / 2);
        let users = part("take.part", hour * 2);
        write_atomic(&dir.path().join("piece.mid"), b"MThd").unwrap();
        assert!(!killed.exists(), "a killed write's file stayed");
        assert!(writing.exists() && users.exists());
    }

    /// A write cut short by a second Ctrl+C leaves no temporary file, and the file it was to
    /// replace stays as it was.
    #[test]
    fn a_write_cut_short_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("piece.wav");
        std::fs::write(&out, "earlier").unwrap();
        let parts = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".part")
                })
                .count()
        };
        let (started, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let writer = {
            let out = out.clone();
            std::thread::spawn(move || {
                write_atomic_with(&out, |w| {
                    w.write_all(b"half")?;
                    started.0.send(()).unwrap();
                    go.1.recv().unwrap();
                    w.write_all(b" of it")
                })
            })
        };
        started.1.recv().unwrap();
        assert_eq!(parts(), 1);
        let held = remove_unfinished(Some(dir.path()));
        assert_eq!(parts(), 0, "the temporary file is still there");
        drop(held);
        go.0.send(()).unwrap();
        assert!(
            writer.join().unwrap().is_err(),
            "a write cut short finished"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier");
        assert_eq!(parts(), 0);
    }

    #[test]
    fn a_set_replaces_the_previous_one_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let read = |name: &str| std::fs::read_to_string(t.join(name)).unwrap();
        for (a, b) in [("a1", "b1"), ("a2", "b2")] {
            let stage = begin_set(t).unwrap();
            write_atomic(&stage.join("a"), a.as_bytes()).unwrap();
            write_atomic(&stage.join("b"), b.as_bytes()).unwrap();
            commit_set(t).unwrap();
        }
        assert_eq!((read("a"), read("b")), ("a2".into(), "b2".into()));
        // Interrupted while writing: the previous set stays, the partial one is dropped.
        let stage = begin_set(t).unwrap();
        write_atomic(&stage.join("a"), b"a3").unwrap();
        recover_set(t).unwrap();
        assert_eq!((read("a"), read("b")), ("a2".into(), "b2".into()));
        assert!(!stage.exists());
        // Interrupted between two renames: recovery finishes the move.
        let stage = begin_set(t).unwrap();
        write_atomic(&stage.join("a"), b"a4").unwrap();
        write_atomic(&stage.join("b"), b"b4").unwrap();
        write_atomic(&stage.join(SET_COMPLETE), b"").unwrap();
        std::fs::rename(stage.join("a"), t.join("a")).unwrap();
        assert_eq!((read("a"), read("b")), ("a4".into(), "b2".into()));
        recover_set(t).unwrap();
        assert_eq!((read("a"), read("b")), ("a4".into(), "b4".into()));
        assert!(!stage.exists());
    }

    #[cfg(unix)]
    #[test]
    fn writing_through_a_link_updates_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.mid");
        let link = dir.path().join("link.mid");
        std::fs::write(&target, b"old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A link to nothing is replaced by the file.
        let dangling = dir.path().join("dangling.mid");
        std::os::unix::fs::symlink(dir.path().join("gone.mid"), &dangling).unwrap();
        write_atomic(&dangling, b"here").unwrap();
        assert_eq!(std::fs::read(&dangling).unwrap(), b"here");
        assert!(!std::fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert!(!dir.path().join("gone.mid").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_read_only_one_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let shared = dir.path().join("shared.mid");
        std::fs::write(&shared, b"old").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o664)).unwrap();
        write_atomic(&shared, b"new").unwrap();
        assert_eq!(mode(&shared), 0o664);
        let kept = dir.path().join("kept.mid");
        std::fs::write(&kept, b"mine").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_atomic(&kept, b"theirs").unwrap_err().to_string();
        assert!(
            err.contains("kept.mid") && err.contains("read-only"),
            "{err}"
        );
        assert_eq!(std::fs::read(&kept).unwrap(), b"mine");
        // Nothing half-written is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
