//! Running a child process (ssh, ansible-playbook, the user's health command,
//! a bench workload) with bytes on its standard input, both outputs
//! captured, and a deadline after which it is killed. The fleet engines
//! never go through a shell on the controller: every argument is passed as
//! one argv element.
//!
//! A user's shell command (`run_group`) gets its own process group, and the
//! whole group is killed at the deadline and again when the command ends:
//! killing only `sh` would leave `sh -c 'sleep 1000 & wait'`'s sleep running,
//! holding our pipes and whatever it was doing.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a finished (or killed) child left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit status; `None` when the child was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Output past `MAX_OUTPUT` on either stream was read and dropped.
    pub truncated: bool,
    /// Peak resident set of the child and the descendants it waited for, KiB (`wait4`'s
    /// `ru_maxrss`); only for a user's command (`run_group`) that exited by itself.
    pub peak_rss_kib: Option<u64>,
}

/// Most bytes kept of each output stream: a command printing without end (`yes`, a runaway
/// loop, a remote login script) must not fill the controller's memory before its deadline.
/// The rest is still read, so the child never blocks on a full pipe, and then dropped.
pub const MAX_OUTPUT: usize = 64 << 20;

impl Finished {
    /// The exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Killed at the deadline.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// The last non-empty line of stderr (where ssh and semantos put their verdict).
    pub fn stderr_tail(&self) -> String {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }
}

/// Output collected so far by a reader thread, whether the pipe reached its end, and whether bytes past `limit` were dropped.
type Sink = Arc<Mutex<(Vec<u8>, bool, bool)>>;

fn drain<R: Read + Send + 'static>(r: Option<R>, limit: usize) -> Sink {
    let sink: Sink = Arc::new(Mutex::new((Vec::new(), r.is_none(), false)));
    let s = sink.clone();
    if let Some(mut r) = r {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                        let keep = n.min(limit.saturating_sub(g.0.len()));
                        g.0.extend_from_slice(&chunk[..keep]);
                        g.2 |= keep < n;
                    }
                }
            }
            s.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        });
    }
    sink
}

/// Whether `pid` (our child) has exited, without reaping it: while it is unreaped its pid, and
/// so its process group id, cannot be reused, and killing the group cannot hit a stranger.
fn exited_unreaped(pid: u32) -> std::io::Result<bool> {
    // SAFETY: waitid with WNOWAIT only inspects our own child; siginfo_t is plain data.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is filled (or left zero by WNOHANG) for a WEXITED query.
    Ok(unsafe { info.si_pid() } != 0)
}

/// SIGKILL to every process in group `pgid` (ESRCH, an empty group, is fine).
fn kill_group(pgid: u32) {
    // SAFETY: kill has no memory preconditions; a negative pid names the group.
    unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
}

/// Reaps our exited child with `wait4`, for its resource usage: the peak RSS of the child and of
/// every descendant it waited for (Linux folds those into the child's own `ru_maxrss`), in KiB.
fn reap_with_usage(child: &mut Child) -> std::io::Result<(ExitStatus, Option<u64>)> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    // SAFETY: wait4 on our own child, which has exited (so this does not block); rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if rc <= 0 {
        return child.wait().map(|s| (s, None));
    }
    Ok((ExitStatus::from_raw(status), u64::try_from(usage.ru_maxrss).ok()))
}

fn wait_until(child: &mut Child, deadline: Instant, group: bool) -> std::io::Result<(Option<ExitStatus>, Option<u64>)> {
    // Polling keeps this free of signal handling; 5 ms is far below any ssh round trip.
    loop {
        if group {
            if exited_unreaped(child.id())? {
                // What the command left running in its group goes with it.
                kill_group(child.id());
                return reap_with_usage(child).map(|(s, rss)| (Some(s), rss));
            }
        } else if let Some(s) = child.try_wait()? {
            return Ok((Some(s), None));
        }
        if Instant::now() >= deadline {
            if group {
                kill_group(child.id());
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok((None, None));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes the child die with the thread that runs it: a controller killed mid-wave must not leave
/// an `ansible-playbook` carrying on with later waves, nor ssh clients it no longer reads. (The
/// remote side is the host's business: each remote command runs under `timeout`, and a late
/// apply finds its rollout fenced.) A daemon the child forks, such as an ssh multiplexing
/// master, is not affected: the kernel clears the setting across fork.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (getpid, prctl, getppid).
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the controller exited while starting a child"));
            }
            Ok(())
        });
    }
}

/// Runs `cmd`, writes `stdin` to it (then closes it), and kills it after `timeout`.
pub fn run(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> std::io::Result<Finished> {
    run_with(cmd, stdin, timeout, false)
}

/// Like `run`, for a user's command: it runs in a new process group, and the whole group is
/// killed at the deadline and when the command exits, so nothing it started outlives it.
pub fn run_group(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> std::io::Result<Finished> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    run_with(cmd, stdin, timeout, true)
}

fn run_with(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration, group: bool) -> std::io::Result<Finished> {
    run_limited(&mut cmd, stdin, timeout, group, MAX_OUTPUT)
}

fn run_limited(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration, group: bool, limit: usize) -> std::io::Result<Finished> {
    let start = Instant::now();
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take(), limit);
    let err = drain(child.stderr.take(), limit);
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A writer thread: a child that never reads its input must not block us past the deadline.
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let (status, peak_rss_kib) = wait_until(&mut child, start + timeout, group)?;
    // A background ssh master (ControlPersist) could inherit the pipes if it
    // did not detach them; never wait on it for more than a moment.
    let (stdout, cut_out) = join_within(out, Duration::from_millis(500));
    let (stderr, cut_err) = join_within(err, Duration::from_millis(500));
    Ok(Finished { status, stdout, stderr, elapsed: start.elapsed(), truncated: cut_out || cut_err, peak_rss_kib })
}

/// Waits up to `grace` for the pipe's end, then takes whatever arrived, and whether some was dropped.
fn join_within(sink: Sink, grace: Duration) -> (String, bool) {
    let until = Instant::now() + grace;
    loop {
        let g = sink.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 || Instant::now() >= until {
            return (String::from_utf8_lossy(&g.0).into_owned(), g.2);
        }
        drop(g);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_stdin_and_captures_outputs() {
        let mut c = Command::new("sh");
        c.args(["-c", "cat; echo err >&2; exit 3"]);
        let f = run(c, Some(b"plan text"), Duration::from_secs(10)).unwrap();
        assert_eq!(f.stdout, "plan text");
        assert_eq!(f.stderr_tail(), "err");
        assert_eq!(f.code(), Some(3));
    }

    #[test]
    fn endless_output_is_capped_not_collected() {
        let mut c = Command::new("sh");
        c.args(["-c", "yes | head -c 1000000; echo end >&2"]);
        let f = run_limited(&mut c, None, Duration::from_secs(20), false, 1000).unwrap();
        assert_eq!((f.stdout.len(), f.truncated, f.code()), (1000, true, Some(0)), "the child ran to its end and only 1000 bytes were kept");
        assert_eq!(f.stderr_tail(), "end");
        let mut c = Command::new("echo");
        c.arg("short");
        assert!(!run(c, None, Duration::from_secs(10)).unwrap().truncated);
    }

    #[test]
    fn kills_at_the_deadline() {
        let mut c = Command::new("sleep");
        c.arg("5");
        let f = run(c, None, Duration::from_millis(100)).unwrap();
        assert!(f.timed_out());
        assert!(f.elapsed < Duration::from_secs(3));
    }

    /// Pids whose command line is exactly `argv` (NUL-separated in /proc/PID/cmdline).
    fn running(argv: &[&str]) -> Vec<u32> {
        let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
        std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok().as_deref() == Some(&want[..])).collect()
    }

    #[test]
    fn a_timed_out_user_command_leaves_no_background_child() {
        // A distinctive duration so that no other test's sleep is counted.
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 987.25 & wait"]);
        let f = run_group(c, None, Duration::from_millis(300)).unwrap();
        assert!(f.timed_out());
        assert!(f.elapsed < Duration::from_secs(3), "{:?}: the background sleep held the pipes", f.elapsed);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(running(&["sleep", "987.25"]), Vec::<u32>::new(), "the background sleep outlived its killed group");
    }

    #[test]
    fn a_finished_user_command_takes_its_stragglers_with_it() {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 987.5 >/dev/null 2>&1 & echo done"]);
        let f = run_group(c, None, Duration::from_secs(10)).unwrap();
        assert_eq!((f.code(), f.stdout.as_str()), (Some(0), "done\n"));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(running(&["sleep", "987.5"]), Vec::<u32>::new());
    }

    #[test]
    fn a_user_command_reports_the_peak_rss_of_what_it_ran() {
        // 64 MiB held by sort (one line without a newline), a process the shell forked: its peak is the run's figure.
        let mut c = Command::new("sh");
        c.args(["-c", "head -c 67108864 /dev/zero | sort >/dev/null"]);
        let big = run_group(c, None, Duration::from_secs(20)).unwrap().peak_rss_kib.unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "true"]);
        let small = run_group(c, None, Duration::from_secs(20)).unwrap().peak_rss_kib.unwrap();
        assert!(big > 60 * 1024 && small < 20 * 1024, "peak RSS {big} KiB vs {small} KiB");
    }
}
