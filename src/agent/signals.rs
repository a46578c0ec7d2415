//! SIGTERM and SIGINT as a flag the loop polls: the handler only stores, so the loop decides what
//! stopping means (`on_exit: keep | rollback`) at a point where no change is half made.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
}

/// Installs the handlers for SIGTERM and SIGINT.
pub fn install() {
    // SAFETY: the handler is async-signal-safe (one atomic store).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
}

/// The signal received, if any (`SIGTERM`, `SIGINT`).
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

/// Sleeps up to `d`, waking early when a signal arrives: `nanosleep` returns on a handled signal
/// (it is never restarted), where `std::thread::sleep` would sleep on. Waking only on time or a
/// signal keeps an idle agent at one wake-up per sample.
pub fn sleep(d: std::time::Duration) {
    let end = std::time::Instant::now() + d;
    while received().is_none() {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let ts = libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long };
        // SAFETY: a valid timespec; the remainder is not needed (the loop recomputes it).
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
}
