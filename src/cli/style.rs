//! How the command line speaks: `--quiet`, `-v`, `--color`, and the
//! decisions they lead to (log level, colour, progress). The flags are one
//! clap group so every command takes them the same way.
//!
//! The decision is taken once in `main` and kept in process-wide flags:
//! the renderers and the progress display consult it, so the command
//! modules do not thread a style value through every call. A library test
//! never sets them, so its renderings stay plain.

use clap::{Args, ValueEnum};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// When to colour verdicts and outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is unset or empty.
    #[default]
    Auto,
    /// Always (even into a pipe or with NO_COLOR set).
    Always,
    /// Never.
    Never,
}

/// The output flags every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputStyle {
    /// Errors only: no tables, no progress, no log lines (--json documents are still printed).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr: -v info, -vv debug, -vvv trace (RUST_LOG, when set, decides instead).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour verdicts and outcomes: auto (stdout is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl OutputStyle {
    /// The tracing filter the flags ask for when RUST_LOG is not set.
    pub fn log_filter(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "semantos=info,warn",
            (false, 2) => "semantos=debug,warn",
            _ => "trace",
        }
    }
}

/// Whether to colour an output: `--color`, then NO_COLOR (https://no-color.org: any non-empty
/// value turns colour off), then whether the output is a terminal.
pub fn colour_wanted(choice: ColorChoice, no_color: Option<&std::ffi::OsStr>, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing (`--quiet`, `--json`).
    Off,
    /// One plain line per batch (stderr is not a terminal).
    Lines,
    /// A live bar with the seconds left (stderr is a terminal).
    Bar,
}

/// The progress display for these flags: pure, so it can be tested.
pub fn progress_mode(quiet: bool, json: bool, stderr_is_terminal: bool) -> ProgressMode {
    match (quiet || json, stderr_is_terminal) {
        (true, _) => ProgressMode::Off,
        (false, true) => ProgressMode::Bar,
        (false, false) => ProgressMode::Lines,
    }
}

static COLOUR: AtomicBool = AtomicBool::new(false);
static PROGRESS: AtomicU8 = AtomicU8::new(0);

/// Records the decisions of `main` for the renderers and the progress display.
pub fn set(colour: bool, progress: ProgressMode) {
    COLOUR.store(colour, Ordering::Relaxed);
    PROGRESS.store(progress as u8, Ordering::Relaxed);
}

/// Whether stdout is coloured.
pub fn colour() -> bool {
    COLOUR.load(Ordering::Relaxed)
}

/// The progress display in force (`Off` until `main` sets it).
pub fn progress() -> ProgressMode {
    match PROGRESS.load(Ordering::Relaxed) {
        1 => ProgressMode::Lines,
        2 => ProgressMode::Bar,
        _ => ProgressMode::Off,
    }
}

/// What a word says about the outcome, which picks its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Went as wished (accept, kept, committed): green.
    Good,
    /// Changed or left out, not an error (clamp, skip): yellow.
    Warn,
    /// Refused, rejected, rolled back: red.
    Bad,
}

/// `text` in the tone's colour when colour is on; as it is otherwise.
pub fn paint(text: &str, tone: Tone) -> String {
    paint_if(colour(), text, tone)
}

/// [`paint`] with the decision passed in.
pub fn paint_if(on: bool, text: &str, tone: Tone) -> String {
    if !on {
        return text.to_string();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Warn => "33",
        Tone::Bad => "1;31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The tone of a guardrail verdict label.
pub fn verdict_tone(label: &str) -> Tone {
    match label {
        "accept" => Tone::Good,
        "clamp" | "skip" => Tone::Warn,
        _ => Tone::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        use ColorChoice::*;
        assert!(colour_wanted(Auto, None, true));
        assert!(!colour_wanted(Auto, None, false), "a pipe gets no escape codes");
        assert!(!colour_wanted(Auto, Some(OsStr::new("1")), true), "NO_COLOR=1 turns auto off");
        assert!(colour_wanted(Auto, Some(OsStr::new("")), true), "an empty NO_COLOR is unset (no-color.org)");
        assert!(colour_wanted(Always, Some(OsStr::new("1")), false));
        assert!(!colour_wanted(Never, None, true));
    }

    #[test]
    fn progress_is_off_for_quiet_and_json_and_plain_off_a_terminal() {
        assert_eq!(progress_mode(true, false, true), ProgressMode::Off);
        assert_eq!(progress_mode(false, true, true), ProgressMode::Off);
        assert_eq!(progress_mode(false, false, false), ProgressMode::Lines);
        assert_eq!(progress_mode(false, false, true), ProgressMode::Bar);
    }

    #[test]
    fn verdicts_are_painted_by_tone_only_when_on() {
        assert_eq!(paint_if(false, "REJECT", verdict_tone("REJECT")), "REJECT");
        assert_eq!(paint_if(true, "REJECT", verdict_tone("REJECT")), "\x1b[1;31mREJECT\x1b[0m");
        assert_eq!(paint_if(true, "accept", verdict_tone("accept")), "\x1b[32maccept\x1b[0m");
        assert_eq!(verdict_tone("clamp"), Tone::Warn);
        assert_eq!(verdict_tone("refuse"), Tone::Bad);
    }
}
