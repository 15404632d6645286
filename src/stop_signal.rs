//! Stopping on Ctrl+C and the termination signals (SIGTERM; SIGHUP, a closed terminal), as a
//! shell's user expects: long work stops at its next check and leaves no half-written file.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Signals this close after the first are the same stop, not a second one: `timeout -s INT`
/// sends its signal to the program and then to its process group, which holds the program
/// too (a training run so stopped ended at once, losing the steps since its checkpoint).
pub const ONE_STOP: Duration = Duration::from_millis(200);

/// Tells a second stop (end now) from the first (stop cleanly) and from signals that came
/// with the first ([`ONE_STOP`]).
#[derive(Debug, Default)]
pub struct Stops {
    first: OnceLock<Instant>,
}

impl Stops {
    /// No stop yet.
    pub const fn new() -> Self {
        Stops {
            first: OnceLock::new(),
        }
    }

    /// Takes note of a stop signal; whether it is a second stop, [`ONE_STOP`] or more after
    /// the first.
    pub fn again(&self) -> bool {
        self.first.get_or_init(Instant::now).elapsed() >= ONE_STOP
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_with_the_first_are_one_stop() {
        let stops = Stops::new();
        assert!(!stops.again(), "the first");
        assert!(!stops.again(), "one sent with it");
        std::thread::sleep(ONE_STOP);
        assert!(stops.again(), "a second stop");
    }
}
