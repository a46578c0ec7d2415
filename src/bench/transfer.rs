//! Request/response over one persistent connection, the shape of the two
//! long-path workloads: `BdpTransfer` fetches large objects back to back
//! (reference `b_tcp_buffers_bdp.py`), `IdleSlowStart` fetches 1 MiB
//! responses with idle gaps between them (reference `c_slow_start_idle.py`).
//!
//! Server: accepts one connection and answers each `GET <bytes>\n` line with
//! that many bytes. Client: one connection, one request at a time; latency
//! runs from sending the request to the last byte of the response. Both
//! ends choose their congestion control per socket (`TCP_CONGESTION`), as an
//! application can: a child namespace may not make cubic its default while
//! the host's allowed list lacks it.

use super::sockets;
use super::topology::{SERVER_IP, Topology};
use super::workload::{Env, RunOutput, Workload};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Longest one response may take; then the run is cut and the response and every one after it
/// count as failed requests with this time as their sample. Why: the grid spans each key's whole
/// KB range, down to buffers of a few KiB that move a 32 MiB object over the 100 ms path at
/// 40 KB/s (an hour a run); such a point is many times worse than the start values (about 1.6 s
/// an object), so its figure only needs to be known as "at least this bad", which a cut run
/// records, in bounded time. Ten seconds is the connect timeout of the burst workloads too.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Large objects fetched back to back over one connection.
#[derive(Debug, Clone)]
pub struct BdpTransfer {
    /// Object size, bytes.
    pub object_bytes: usize,
    /// Timed objects per run.
    pub objects: usize,
    /// Untimed objects first (the first includes slow start).
    pub warmup: usize,
    /// Congestion control of both ends.
    pub cc: String,
    /// Server port.
    pub port: u16,
}

/// Responses after idle gaps over one connection.
#[derive(Debug, Clone)]
pub struct IdleSlowStart {
    /// Response size, bytes.
    pub response_bytes: usize,
    /// Timed requests per run.
    pub requests: usize,
    /// Untimed requests first.
    pub warmup: usize,
    /// Silence after each response (longer than the RTO, so an idle restart applies).
    pub idle: Duration,
    /// Congestion control of both ends.
    pub cc: String,
    /// Server port.
    pub port: u16,
}

impl Workload for BdpTransfer {
    fn describe(&self) -> String {
        format!("{} + {} warm-up objects of {} MiB back to back over one {} connection", self.objects, self.warmup, self.object_bytes >> 20, self.cc)
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        let topo = env.topology()?;
        let plan = vec![(self.object_bytes, Duration::ZERO); self.warmup + self.objects];
        exchange(topo, self.port, &self.cc, false, &plan, self.warmup)
    }
}

impl Workload for IdleSlowStart {
    fn describe(&self) -> String {
        format!(
            "{} + {} warm-up responses of {} KiB, {} s idle after each, over one {} connection",
            self.requests,
            self.warmup,
            self.response_bytes >> 10,
            self.idle.as_secs_f64(),
            self.cc
        )
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        let topo = env.topology()?;
        let plan = vec![(self.response_bytes, self.idle); self.warmup + self.requests];
        exchange(topo, self.port, &self.cc, true, &plan, self.warmup)
    }
}

/// One run: `plan` is (response bytes, idle after it) per request; the first `warmup` are not timed samples.
fn exchange(topo: &Topology, port: u16, cc: &str, nodelay: bool, plan: &[(usize, Duration)], warmup: usize) -> Result<RunOutput> {
    let addr = SocketAddrV4::new(SERVER_IP, port);
    let listener = topo.server.run(|| sockets::listen(addr, 16, Some(cc)))?;
    std::thread::scope(|s| {
        let server = s.spawn(|| serve_one(&listener, nodelay));
        let client = topo.client.run(|| fetch(addr, cc, plan, warmup, RESPONSE_TIMEOUT));
        // A client that failed before connecting leaves the server in accept: release it.
        sockets::shutdown_listener(&listener);
        let served = server.join().map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
        let out = client?;
        // A cut run closed the connection under the server's writes: its error is that cut.
        if out.errors == 0 {
            served.context("server")?;
        }
        Ok(out)
    })
}

/// Serves one connection until the client closes it.
fn serve_one(l: &TcpListener, nodelay: bool) -> Result<()> {
    let Ok((s, _)) = l.accept() else { return Ok(()) };
    if nodelay {
        sockets::nodelay(s.as_raw_fd())?;
    }
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let chunk = vec![0u8; 1 << 20];
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let n: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).with_context(|| format!("bad request {line:?}"))?;
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            w.write_all(&chunk[..k])?;
            left -= k;
        }
    }
}

/// Requests `from..total` of a run cut at `timeout`: each a failed request whose sample is the timeout.
fn cut(out: &mut RunOutput, from: usize, total: usize, warmup: usize, timeout: Duration) {
    let ms = timeout.as_secs_f64() * 1000.0;
    for j in from..total {
        if j < warmup { out.warmup_ms.push(ms) } else { out.samples_ms.push(ms) }
        out.errors += 1;
    }
}

/// The client side of a run, inside the client namespace.
fn fetch(addr: SocketAddrV4, cc: &str, plan: &[(usize, Duration)], warmup: usize, timeout: Duration) -> Result<RunOutput> {
    let mut s: TcpStream = sockets::connect(addr, Some(cc))?;
    if let Some(got) = sockets::congestion_of(s.as_raw_fd())
        && got != cc
    {
        bail!("the client socket uses {got}, not {cc}");
    }
    let mut out = RunOutput::default();
    let mut buf = vec![0u8; 1 << 20];
    for (i, (n, idle)) in plan.iter().enumerate() {
        let t0 = Instant::now();
        s.write_all(format!("GET {n}\n").as_bytes())?;
        let mut got = 0;
        while got < *n {
            let left = timeout.saturating_sub(t0.elapsed());
            if left.is_zero() {
                cut(&mut out, i, plan.len(), warmup, timeout);
                return Ok(out);
            }
            s.set_read_timeout(Some(left))?;
            match s.read(&mut buf) {
                Ok(0) => bail!("the server closed the connection after {got} of {n} bytes of response {i}"),
                Ok(k) => got += k,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).with_context(|| format!("reading response {i} ({got} of {n} bytes)")),
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if i < warmup { out.warmup_ms.push(ms) } else { out.samples_ms.push(ms) }
        if !idle.is_zero() && i + 1 < plan.len() {
            std::thread::sleep(*idle);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_slower_than_the_timeout_cuts_the_run_into_failed_requests_instead_of_waiting_for_it() {
        // A grid point with a 4 KiB buffer moved 32 MiB at 40 KB/s: the run would have taken an hour.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else { unreachable!() };
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap()).read_line(&mut line).unwrap();
            // A trickle of the response, then silence until the client goes.
            let _ = s.write_all(&[0u8; 1000]);
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let t0 = Instant::now();
        let plan = vec![(1 << 20, Duration::ZERO); 3];
        let out = fetch(addr, "cubic", &plan, 1, Duration::from_millis(300)).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "waited {:?}", t0.elapsed());
        assert_eq!(out.errors, 3, "{out:?}");
        assert_eq!(out.samples_ms, vec![300.0, 300.0], "the measured requests record the timeout as a lower bound");
        assert_eq!(out.warmup_ms, vec![300.0]);
        server.join().unwrap();
    }
}
