//! Build script: records the commit the binary was built from, for `segue --version` and for
//! the manifests of trained weights.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `git rev-parse <what>` says, if git and a repository are there.
fn git(what: &[&str]) -> Option<String> {
    Command::new("git")
        .arg("rev-parse")
        .args(what)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEGUE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // What a commit or a checkout changes: HEAD and its log (written at every commit, also when
    // the branch's ref lives in packed-refs) in the repository's own folder (`.git` may be a
    // file, in a worktree), and the branch's ref and packed-refs in the common one. Only files
    // that exist are watched: a missing one would rebuild the crate every time (a source
    // tarball has none).
    let (Some(dir), Some(common)) = (
        git(&["--absolute-git-dir"]).map(PathBuf::from),
        git(&["--git-common-dir"]).map(PathBuf::from),
    ) else {
        return;
    };
    let common = if common.is_absolute() {
        common
    } else {
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(common)
    };
    let head = dir.join("HEAD");
    let branch = std::fs::read_to_string(&head)
        .ok()
        .and_then(|text| text.strip_prefix("ref: ").map(|r| common.join(r.trim())));
    let watched = [
        Some(head),
        Some(dir.join("logs").join("HEAD")),
        branch,
        Some(common.join("packed-refs")),
    ];
    for path in watched.into_iter().flatten() {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
