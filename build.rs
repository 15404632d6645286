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
    println!("cargo:rerun-if-changed=.git/HEAD");
    // HEAD names a branch; a commit moves the branch's ref (a file, or a line of
    // packed-refs), not HEAD itself. Only files that exist are watched: a missing one would
    // rebuild the crate every time.
    let branch = std::fs::read_to_string(".git/HEAD").ok().and_then(|head| {
        head.strip_prefix("ref: ")
            .map(|r| format!(".git/{}", r.trim()))
    });
    for watched in branch.into_iter().chain([".git/packed-refs".to_string()]) {
        if std::path::Path::new(&watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
