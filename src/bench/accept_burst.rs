//! Connection bursts against a small pool of accepting workers: the
//! accept-queue workload (reference `a_accept_queue.py`).
//!
//! Server: a pre-fork style pool of `workers` threads, each `accept` → read
//! one request line → `work` of backend time (a sleep) → 512-byte reply →
//! close. It listens with `listen(65535)`, so the effective backlog is the
//! namespace's `somaxconn` at `listen()` time; the server is started afresh
//! for every run, so a changed `somaxconn` takes effect.
//!
//! Client: `bursts` bursts of `conc` simultaneous non-blocking connects, one
//! request each, driven by `poll`; latency runs from the `connect` call to
//! the last byte of the reply. A SYN dropped because the accept queue is full
//! is retransmitted after 1 s, then 3 s, 7 s: that is what lands in p95/p99.
//! A request unanswered after `timeout` counts as an error with the timeout
//! as its sample.

use super::sockets;
use super::topology::SERVER_IP;
use super::workload::{Env, RunOutput, Workload};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The accept-burst workload.
#[derive(Debug, Clone)]
pub struct AcceptBurst {
    /// Connections per burst.
    pub conc: usize,
    /// Bursts per run.
    pub bursts: usize,
    /// Time from the start of one burst to the start of the next (longer if a burst takes longer).
    pub gap: Duration,
    /// Give up on a request after this long.
    pub timeout: Duration,
    /// Accepting threads.
    pub workers: usize,
    /// Backend time per request.
    pub work: Duration,
    /// Server port.
    pub port: u16,
}

impl Workload for AcceptBurst {
    fn describe(&self) -> String {
        format!(
            "{} bursts of {} concurrent connects, {} accepting workers with {} ms of work per request, listen(65535)",
            self.bursts,
            self.conc,
            self.workers,
            self.work.as_secs_f64() * 1000.0
        )
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        let topo = env.topology()?;
        let addr = SocketAddrV4::new(SERVER_IP, self.port);
        let listener = Arc::new(topo.server.run(|| sockets::listen(addr, 65535, None))?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..self.workers {
            let (l, stop, work) = (listener.clone(), stop.clone(), self.work);
            workers.push(std::thread::Builder::new().name(format!("accept-worker-{i}")).spawn(move || serve(&l, &stop, work))?);
        }
        let me = self.clone();
        let out = topo.client.run(move || me.client(addr));
        stop.store(true, Ordering::Relaxed);
        sockets::shutdown_listener(&listener);
        for w in workers {
            let _ = w.join();
        }
        out
    }
}

/// One accepting worker: until the listener is shut down (also the server of `syn-burst`).
pub(super) fn serve(l: &TcpListener, stop: &AtomicBool, work: Duration) {
    loop {
        match l.accept() {
            Ok((s, _)) => handle(s, work),
            Err(_) if stop.load(Ordering::Relaxed) => return,
            // EMFILE, ECONNABORTED: not this worker's end; back off a little.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn handle(mut s: TcpStream, work: Duration) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 256];
    let mut seen = Vec::new();
    while !seen.ends_with(b"\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    std::thread::sleep(work);
    let mut reply = vec![b'x'; 512];
    reply.push(b'\n');
    let _ = s.write_all(&reply);
}

/// Where one client connection stands.
enum Phase {
    Connecting,
    Reading,
}

struct Conn {
    fd: OwnedFd,
    t0: Instant,
    phase: Phase,
}

impl AcceptBurst {
    /// Runs every burst from the client namespace; returns the samples.
    fn client(&self, addr: SocketAddrV4) -> Result<RunOutput> {
        sockets::raise_nofile_limit();
        let mut out = RunOutput::default();
        sockets::in_bursts(self.bursts, self.gap, |b, start| self.burst(addr, start, &mut out).with_context(|| format!("burst {b} against {addr}")))?;
        Ok(out)
    }

    fn burst(&self, addr: SocketAddrV4, start: Instant, out: &mut RunOutput) -> Result<()> {
        let mut conns: Vec<Conn> = Vec::with_capacity(self.conc);
        for _ in 0..self.conc {
            let t0 = Instant::now();
            match sockets::connect_nonblocking(addr) {
                Ok(fd) => conns.push(Conn { fd, t0, phase: Phase::Connecting }),
                Err(_) => out.errors += 1,
            }
        }
        let deadline = start + self.timeout;
        let mut buf = [0u8; 4096];
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
        while !conns.is_empty() && Instant::now() < deadline {
            pfds.clear();
            pfds.extend(conns.iter().map(|c| libc::pollfd {
                fd: c.fd.as_raw_fd(),
                events: match c.phase {
                    Phase::Connecting => libc::POLLOUT,
                    Phase::Reading => libc::POLLIN,
                },
                revents: 0,
            }));
            // SAFETY: pfds is a valid array of its length.
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
            if r <= 0 {
                continue;
            }
            let mut done = vec![false; conns.len()];
            for (i, p) in pfds.iter().enumerate() {
                if p.revents == 0 {
                    continue;
                }
                let c = &mut conns[i];
                let fd = c.fd.as_raw_fd();
                match c.phase {
                    Phase::Connecting => {
                        let req = b"GET /\n";
                        // SAFETY: send of a local buffer on our socket.
                        if sockets::socket_error(fd) != 0 || unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), libc::MSG_NOSIGNAL) } != req.len() as isize {
                            out.errors += 1;
                            done[i] = true;
                        } else {
                            c.phase = Phase::Reading;
                        }
                    }
                    Phase::Reading => {
                        // SAFETY: recv into a local buffer.
                        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                        if n > 0 {
                            if buf[n as usize - 1] == b'\n' {
                                out.samples_ms.push(c.t0.elapsed().as_secs_f64() * 1000.0);
                                done[i] = true;
                            }
                        } else if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                            out.errors += 1;
                            done[i] = true;
                        }
                    }
                }
            }
            let mut i = 0;
            conns.retain(|_| {
                i += 1;
                !done[i - 1]
            });
        }
        // Unanswered at the deadline: an error, with the timeout as its latency.
        for _ in &conns {
            out.errors += 1;
            out.samples_ms.push(self.timeout.as_secs_f64() * 1000.0);
        }
        Ok(())
    }
}
