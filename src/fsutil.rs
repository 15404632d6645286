//! Atomic file writes: every file Segue writes goes to a temporary file in the same folder
//! first and is renamed over the target only when complete, so a crash or a full disk never
//! leaves a half-written file where the user's work was.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Streams content into `path` atomically: `fill` writes into a buffered temporary file that
/// replaces `path` only if `fill` and the flush succeed.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = check_target(path)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".segue-").suffix(".part");
    // Temporary files are private (0600); the finished file gets the mode of the file it
    // replaces, or the usual 0644 (less the umask) for a new one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777);
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, "preparing to write", e))?;
    {
        let mut buf = std::io::BufWriter::new(tmp.as_file());
        fill(&mut buf).map_err(|e| Error::io(path, "writing", e))?;
        buf.flush().map_err(|e| Error::io(path, "writing", e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(path, "syncing", e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(path, "renaming the finished file onto", e.error))?;
    Ok(())
}

/// Checks that a file can be written at `path` (it is not a folder, its folder exists), so
/// that long work can refuse a bad output path before it starts. Returns the folder.
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
    if !dir.is_dir() {
        return Err(Error::io(
            path,
            "writing",
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            ),
        ));
    }
    Ok(dir)
}

/// Whether `a` and `b` name the same existing file (through links and `..`).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, "reading", e))
}
