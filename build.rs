//! Build script: records the commit the binary was built from, for `segue --version` and for
//! the manifests of trained weights.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEGUE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // What a commit or a checkout changes, in the repository's own folder (`.git` may be a
    // file, in a worktree): HEAD, its log (written at every commit, also when the branch's ref
    // lives in packed-refs) and the branch's ref. Only files that exist are watched: a missing
    // one would rebuild the crate every time (a source tarball has none).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = git_dir {
        let head = dir.join("HEAD");
        let branch = std::fs::read_to_string(&head)
            .ok()
            .and_then(|text| text.strip_prefix("ref: ").map(|r| dir.join(r.trim())));
        let watched = [Some(head), Some(dir.join("logs").join("HEAD")), branch];
        for path in watched.into_iter().flatten() {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
