//! Ctrl+C, SIGTERM and SIGHUP for the commands (the studio handles them itself): a stop asked
//! for ends the work at its next safe point, and files being written are finished first.

use segue::train_loop::Control;

/// Set by Ctrl+C (or SIGTERM, SIGHUP): the exit code is then 130.
pub(crate) static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether the running work checks [`STOP`] and stops by itself at its next check; else a stop
/// ends the program at once.
static STOP_WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// While positive, writes that belong together are under way: a first stop waits for them.
static STOP_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// The stop flag of the training run under way, if any.
static TRAINING_STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

/// Handles Ctrl+C, SIGTERM and SIGHUP for every command but the studio: work that watches for
/// a stop ([`stop_on_ctrl_c`], a training run) stops at its next check; writes that belong
/// together ([`hold_stop`]) are finished first; anything else ends at once. Ending, the
/// temporary files of the writes cut short are removed and the exit code is 130; a second
/// signal ends the program at once, unless it came with the first
/// ([`segue::stop_signal::ONE_STOP`]).
pub(crate) fn install_stop_handler() {
    use std::sync::atomic::Ordering;
    static STOPS: segue::stop_signal::Stops = segue::stop_signal::Stops::new();
    let _ = segue::stop_signal::on_stop(|| {
        STOP.store(true, Ordering::Relaxed);
        let again = STOPS.again();
        if let Some(training) = TRAINING_STOP.get() {
            training.store(true, Ordering::Relaxed);
        }
        let waits = STOP_WATCHED.load(Ordering::Relaxed) || STOP_HELD.load(Ordering::Relaxed) > 0;
        if again || !waits {
            segue::fsutil::remove_unfinished_and_exit(130);
        }
    });
}

/// The flag a stop sets, for long work that writes a file: it stops at its next check and
/// removes what it had half written (a second Ctrl+C ends the program at once, removing the
/// temporary files of the writes it cuts short).
pub(crate) fn stop_on_ctrl_c() -> &'static std::sync::atomic::AtomicBool {
    STOP_WATCHED.store(true, std::sync::atomic::Ordering::Relaxed);
    &STOP
}

/// Holds a stop back while it lives (writes that belong together: a model's weights and
/// manifest, a report's files); a stop that came meanwhile ends the program when it is dropped.
pub(crate) fn hold_stop() -> StopHeld {
    STOP_HELD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    StopHeld
}

/// See [`hold_stop`].
pub(crate) struct StopHeld;

impl Drop for StopHeld {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let last = STOP_HELD.fetch_sub(1, Ordering::Relaxed) == 1;
        if last && STOP.load(Ordering::Relaxed) && !STOP_WATCHED.load(Ordering::Relaxed) {
            segue::fsutil::remove_unfinished_and_exit(130);
        }
    }
}

/// A training run's control, stopped by Ctrl+C: the run finishes its step, writes a
/// checkpoint and ends; `--resume` continues it.
pub(crate) fn stop_training_on_ctrl_c() -> Control {
    let control = Control::default();
    // The exit code then says it was interrupted (130), so `train ... && eval ...` stops; a
    // second stop ends at once (an interrupted checkpoint is recovered by the next run).
    let _ = TRAINING_STOP.set(control.stop.clone());
    STOP_WATCHED.store(true, std::sync::atomic::Ordering::Relaxed);
    control
}
