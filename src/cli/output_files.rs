//! Checks on the files a command is told to write: their kind by extension, and that they
//! are not one of its inputs.

use std::path::Path;

use anyhow::{Result, bail};

use segue::fsutil::shown;

/// The file's extension in lowercase ("" when it has none).
pub(crate) fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// The type of the file to write (its extension, lower case), refused unless it is one of
/// `allowed`; `-` (stdout) and a folder are refused too.
pub(crate) fn output_kind(output: &Path, allowed: &[&str]) -> Result<String> {
    let ext = extension(output);
    if output == Path::new("-") {
        bail!(
            "-: Segue writes files, not to stdout (a WAV or MIDI file is made whole, then put in place): name a file"
        );
    }
    let names = || {
        (allowed.iter().map(|a| format!(".{a}")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if output.is_dir() {
        bail!(
            "{} is a folder: name the file to write (ending in {})",
            shown(output),
            names()
        );
    }
    if !allowed.contains(&ext.as_str()) {
        let kind = if ext.is_empty() {
            "an output without a type".to_string()
        } else {
            format!("unsupported output type '.{ext}'")
        };
        bail!("{}: {kind} (use one of: {})", shown(output), names());
    }
    Ok(ext)
}

/// Refuses to write `output` over one of the command's `inputs` (the user's own file would be
/// replaced by the result).
pub(crate) fn not_an_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    if let Some(input) = inputs.iter().find(|i| segue::fsutil::same_file(output, i)) {
        bail!(
            "{}: this is the input {}; write the result to another file",
            shown(output),
            shown(input)
        );
    }
    Ok(())
}
