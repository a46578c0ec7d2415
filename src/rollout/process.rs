//! Running a child process (ssh, ansible-playbook) with bytes on its
//! standard input, both outputs captured, and a deadline after which it is
//! killed. The fleet engines never go through a shell on the controller:
//! every argument is passed as one argv element.

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
}

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

/// Output collected so far by a reader thread, and whether the pipe reached its end.
type Sink = Arc<Mutex<(Vec<u8>, bool)>>;

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Sink {
    let sink: Sink = Arc::new(Mutex::new((Vec::new(), r.is_none())));
    let s = sink.clone();
    if let Some(mut r) = r {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.lock().unwrap_or_else(|p| p.into_inner()).0.extend_from_slice(&chunk[..n]),
                }
            }
            s.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        });
    }
    sink
}

fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    // Polling keeps this free of signal handling; 5 ms is far below any ssh round trip.
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
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
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> std::io::Result<Finished> {
    let start = Instant::now();
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A writer thread: a child that never reads its input must not block us past the deadline.
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let status = wait_until(&mut child, start + timeout)?;
    // A background ssh master (ControlPersist) could inherit the pipes if it
    // did not detach them; never wait on it for more than a moment.
    let stdout = join_within(out, Duration::from_millis(500));
    let stderr = join_within(err, Duration::from_millis(500));
    Ok(Finished { status, stdout, stderr, elapsed: start.elapsed() })
}

/// Waits up to `grace` for the pipe's end, then takes whatever arrived.
fn join_within(sink: Sink, grace: Duration) -> String {
    let until = Instant::now() + grace;
    loop {
        let g = sink.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 || Instant::now() >= until {
            return String::from_utf8_lossy(&g.0).into_owned();
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
    fn kills_at_the_deadline() {
        let mut c = Command::new("sleep");
        c.arg("5");
        let f = run(c, None, Duration::from_millis(100)).unwrap();
        assert!(f.timed_out());
        assert!(f.elapsed < Duration::from_secs(3));
    }
}
