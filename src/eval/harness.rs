//! The real-workload harness: a user's shell command, run with a deadline
//! (its whole process group killed at it) and, when asked, inside a named
//! network namespace, its printed latencies parsed. `bench --cmd`, `tune
//! --objective-cmd` and `apply --objective-cmd` all measure through it.

use super::process::{self, MAX_OUTPUT};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// A user's measuring command.
#[derive(Debug, Clone)]
pub struct UserCommand {
    /// The shell command; it prints one latency per line, or CSV with `column`.
    pub cmd: String,
    /// The network namespace to run it in (`ip netns exec`); `None`: this process's.
    pub netns: Option<String>,
    /// CSV column (header name, or 1-based index) holding the latency.
    pub column: Option<String>,
    /// How long one run may take; then its process group is killed and the run fails.
    pub timeout: Duration,
}

/// What one run of a user's command gave.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRun {
    /// The numbers it printed.
    pub samples: Vec<f64>,
    /// Printed lines that held no number.
    pub ignored: usize,
    /// Wall-clock seconds the run took.
    pub seconds: f64,
}

/// Runs `c` once; an error names the command and says why (exit status, timeout, output too large, no numbers).
pub fn run(c: &UserCommand) -> Result<CommandRun> {
    run_measured(c).map(|(r, _)| r)
}

/// `run`, and the run's peak RSS in MiB: of the shell and every process it waited for
/// (`wait4`'s `ru_maxrss`); a process the command left in the background is not counted.
pub fn run_measured(c: &UserCommand) -> Result<(CommandRun, Option<f64>)> {
    let command = match &c.netns {
        Some(ns) => {
            let mut x = std::process::Command::new("ip");
            x.args(["netns", "exec", ns, "sh", "-c", &c.cmd]);
            x
        }
        None => {
            let mut x = std::process::Command::new("sh");
            x.args(["-c", &c.cmd]);
            x
        }
    };
    let began = Instant::now();
    let out = process::run_group(command, None, c.timeout).with_context(|| format!("running {:?}", c.cmd))?;
    let seconds = began.elapsed().as_secs_f64();
    match out.status {
        Some(s) if s.success() => {}
        Some(s) => bail!("{:?} exited with {s}: {}", c.cmd, out.stderr_tail()),
        None => bail!("{:?} did not finish within {} s and was killed with its process group; raise --cmd-timeout if one run needs longer", c.cmd, c.timeout.as_secs_f64()),
    }
    if out.truncated {
        let mib = MAX_OUTPUT >> 20;
        bail!("{:?} printed more than {mib} MiB; only the first {mib} MiB are kept, so its samples would be incomplete: print one latency per line, nothing else", c.cmd);
    }
    let (samples, ignored) = parse_samples(&out.stdout, c.column.as_deref()).with_context(|| format!("reading the output of {:?}", c.cmd))?;
    Ok((CommandRun { samples, ignored, seconds }, out.peak_rss_kib.map(|k| k as f64 / 1024.0)))
}

/// Latency samples in a command's output: one number per line, or one CSV column.
/// Returns the samples and the number of lines that held none.
pub fn parse_samples(text: &str, column: Option<&str>) -> Result<(Vec<f64>, usize)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut out = Vec::new();
    let mut ignored = 0;
    match column {
        None => {
            for l in lines {
                match l.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => out.push(v),
                    _ => ignored += 1,
                }
            }
        }
        Some(col) => {
            let header: Vec<String> = lines.next().map(|h| h.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default();
            let idx = match header.iter().position(|h| h == col) {
                Some(i) => i,
                None => match col.parse::<usize>() {
                    Ok(n) if n >= 1 => n - 1,
                    _ => bail!("column {col:?} is not in the header {header:?} (give a header name or a 1-based index)"),
                },
            };
            for l in lines {
                match l.split(',').nth(idx).map(|f| f.trim().parse::<f64>()) {
                    Some(Ok(v)) if v.is_finite() => out.push(v),
                    _ => ignored += 1,
                }
            }
        }
    }
    if out.is_empty() {
        bail!("the command printed no latency samples ({ignored} non-numeric lines); print one number per line, or CSV with --column NAME");
    }
    Ok((out, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_per_line_or_from_a_csv_column() {
        assert_eq!(parse_samples("1.5\n\nx\n2\n", None).unwrap(), (vec![1.5, 2.0], 1));
        assert_eq!(parse_samples("id,lat_ms\n1,3.5\n2,4\n", Some("lat_ms")).unwrap().0, vec![3.5, 4.0]);
        assert_eq!(parse_samples("id,lat_ms\n1,3.5\n", Some("2")).unwrap().0, vec![3.5]);
        assert!(parse_samples("a\nb\n", None).unwrap_err().to_string().contains("no latency samples"));
        assert!(parse_samples("id,x\n1,2\n", Some("lat")).unwrap_err().to_string().contains("not in the header"));
    }

    #[test]
    fn a_command_that_fails_or_hangs_is_an_error_naming_it() {
        let c = |cmd: &str, t: f64| UserCommand { cmd: cmd.into(), netns: None, column: None, timeout: Duration::from_secs_f64(t) };
        assert_eq!(run(&c("echo 1; echo 2", 5.0)).unwrap().samples, vec![1.0, 2.0]);
        assert!(run(&c("exit 3", 5.0)).unwrap_err().to_string().contains("exited with"));
        assert!(run(&c("sleep 5", 0.3)).unwrap_err().to_string().contains("did not finish"));
    }
}
