//! Progress of an apply on stderr: which batch of how many, its keys, and
//! the seconds left in its monitor window. The transaction prints nothing;
//! this wraps its monitor and shows what the hooks report.
//!
//! On a terminal a bar counts the window down; otherwise one plain line per
//! batch (not per tick), so a log or CI output stays readable; nothing with
//! `--quiet` or `--json`. Never on stdout, which holds the result.

use super::style::ProgressMode;
use crate::apply::{Health, Monitor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A monitor whose batches are shown as they run.
pub struct Shown<'m> {
    inner: &'m mut dyn Monitor,
    window: Duration,
    mode: ProgressMode,
    total: usize,
}

impl<'m> Shown<'m> {
    /// Shows the batches `inner` watches, each for about `window`, in the display mode `main` chose.
    pub fn new(inner: &'m mut dyn Monitor, window: Duration) -> Self {
        Self { inner, window, mode: super::style::progress(), total: 0 }
    }

    fn label(&self, index: usize, keys: &[String]) -> String {
        format!("batch {}/{} [{}]", index + 1, self.total.max(index + 1), keys.join(", "))
    }

    /// Runs the inner monitor while a bar counts the window down.
    fn with_bar(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        let label = self.label(index, keys);
        let bar = ProgressBar::with_draw_target(Some(self.window.as_millis().max(1) as u64), ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {msg}").expect("a valid template").progress_chars("=> "));
        bar.set_prefix(label);
        let done = AtomicBool::new(false);
        let (window, start) = (self.window, Instant::now());
        let inner = &mut *self.inner;
        let health = std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let elapsed = start.elapsed().min(window);
                    bar.set_position(elapsed.as_millis() as u64);
                    bar.set_message(format!("monitoring, {:.0} s left", (window - elapsed).as_secs_f64().ceil()));
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let h = inner.after_batch(index, keys);
            done.store(true, Ordering::Relaxed);
            h
        });
        bar.finish_and_clear();
        health
    }
}

impl Monitor for Shown<'_> {
    fn batch_started(&mut self, index: usize, total: usize, keys: &[String]) {
        self.total = total;
        self.inner.batch_started(index, total, keys);
    }

    fn after_batch(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        match self.mode {
            ProgressMode::Off => self.inner.after_batch(index, keys),
            ProgressMode::Lines => {
                eprintln!("semantos: {}: written and read back; monitoring for {:.1} s", self.label(index, keys), self.window.as_secs_f64());
                self.inner.after_batch(index, keys)
            }
            ProgressMode::Bar => self.with_bar(index, keys),
        }
    }
}
