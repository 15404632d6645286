//! Stopping on Ctrl+C and the termination signals (SIGTERM; SIGHUP, a closed terminal), as a
//! shell's user expects: long work stops at its next check and leaves no half-written file.

/// Installs `handler` for Ctrl+C, SIGTERM and SIGHUP (at most one handler a process). A SIGHUP
/// that was ignored when it was installed (`nohup segue train ...`) stays ignored, so that
/// logging out does not stop work started to outlive the session.
pub fn on_stop(handler: impl FnMut() + Send + 'static) -> Result<(), ctrlc::Error> {
    let hangup_ignored = hangup_ignored();
    let installed = ctrlc::set_handler(handler);
    if hangup_ignored {
        ignore_hangup();
    }
    installed
}

#[cfg(unix)]
fn hangup_ignored() -> bool {
    // SAFETY: with no new action given, sigaction only reads SIGHUP's current one into `old`,
    // a plain struct zeroed beforehand.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

#[cfg(unix)]
fn ignore_hangup() {
    // SAFETY: SIG_IGN installs no code of ours; only the signal's disposition changes.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn hangup_ignored() -> bool {
    false
}

#[cfg(not(unix))]
fn ignore_hangup() {}
