//! Connect bursts against a listener whose queues are small: the SYN
//! backlog workload. The server is `accept_burst`'s worker pool; it listens
//! with `listen(listen_backlog)`, so the accept queue in force is
//! `min(listen_backlog, somaxconn)` at `listen()` time, and with
//! `tcp_syncookies` 0 a SYN is also dropped once the queue of half-open
//! connections passes three quarters of `tcp_max_syn_backlog`.
//!
//! Client: `bursts` bursts of `conc` simultaneous non-blocking connects;
//! the sample is the connect latency, from the `connect` call to the
//! handshake completing (the socket turning writable). A SYN dropped at a
//! full queue is retransmitted after 1 s, 3 s, 7 s: that is the p99. A
//! connect that fails (reset, refused) or has not completed after `timeout`
//! is an error; a timed-out one also counts its timeout as a sample. Each
//! connection then sends one request and closes, so the workers keep the
//! accept queue as busy as real clients would.

use super::sockets;
use super::topology::SERVER_IP;
use super::workload::{Env, RunOutput, Workload};
use anyhow::{Context, Result};
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The syn-burst workload.
#[derive(Debug, Clone)]
pub struct SynBurst {
    /// Connections per burst.
    pub conc: usize,
    /// Bursts per run.
    pub bursts: usize,
    /// Time from the start of one burst to the start of the next (longer if a burst takes longer).
    pub gap: Duration,
    /// Give up on a connect after this long.
    pub timeout: Duration,
    /// The server's `listen()` argument.
    pub listen_backlog: i32,
    /// Accepting threads.
    pub workers: usize,
    /// Backend time per connection.
    pub work: Duration,
    /// Server port.
    pub port: u16,
}

impl Workload for SynBurst {
    fn describe(&self) -> String {
        format!(
            "{} bursts of {} concurrent connects timed to the handshake, {} accepting workers with {} ms of work per connection, listen({})",
            self.bursts,
            self.conc,
            self.workers,
            self.work.as_secs_f64() * 1000.0,
            self.listen_backlog
        )
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        let topo = env.topology()?;
        let addr = SocketAddrV4::new(SERVER_IP, self.port);
        let listener = Arc::new(topo.server.run(|| sockets::listen(addr, self.listen_backlog, None))?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..self.workers {
            let (l, stop, work) = (listener.clone(), stop.clone(), self.work);
            workers.push(std::thread::Builder::new().name(format!("syn-worker-{i}")).spawn(move || super::accept_burst::serve(&l, &stop, work))?);
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

impl SynBurst {
    fn client(&self, addr: SocketAddrV4) -> Result<RunOutput> {
        sockets::raise_nofile_limit();
        let mut out = RunOutput::default();
        sockets::in_bursts(self.bursts, self.gap, |b, start| self.burst(addr, start, &mut out).with_context(|| format!("burst {b} against {addr}")))?;
        Ok(out)
    }

    fn burst(&self, addr: SocketAddrV4, start: Instant, out: &mut RunOutput) -> Result<()> {
        let mut pending: Vec<(OwnedFd, Instant)> = Vec::with_capacity(self.conc);
        for _ in 0..self.conc {
            let t0 = Instant::now();
            match sockets::connect_nonblocking(addr) {
                Ok(fd) => pending.push((fd, t0)),
                Err(_) => out.errors += 1,
            }
        }
        let deadline = start + self.timeout;
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(pending.len());
        while !pending.is_empty() && Instant::now() < deadline {
            pfds.clear();
            pfds.extend(pending.iter().map(|(fd, _)| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }));
            // SAFETY: pfds is a valid array of its length.
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
            if r <= 0 {
                continue;
            }
            let now = Instant::now();
            let mut keep = Vec::with_capacity(pending.len());
            for ((fd, t0), p) in pending.drain(..).zip(pfds.iter()) {
                if p.revents == 0 {
                    keep.push((fd, t0));
                    continue;
                }
                if sockets::socket_error(fd.as_raw_fd()) != 0 {
                    out.errors += 1;
                    continue;
                }
                out.samples_ms.push((now - t0).as_secs_f64() * 1000.0);
                let req = b"GET /\n";
                // SAFETY: send of a local buffer on our socket; the reply is not awaited (the sample is the connect).
                let _ = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), libc::MSG_NOSIGNAL) };
            }
            pending = keep;
        }
        // Not connected at the deadline: an error, with the timeout as its latency.
        for _ in &pending {
            out.errors += 1;
            out.samples_ms.push(self.timeout.as_secs_f64() * 1000.0);
        }
        Ok(())
    }
}
