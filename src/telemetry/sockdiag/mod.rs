//! Per-socket TCP state over netlink `sock_diag` (`inet_diag`): what `ss -ti`
//! shows, read without running `ss`. It owns the netlink request and the
//! binary layouts of `inet_diag_msg` and `tcp_info`, and the aggregation of
//! repeated dumps into flat `Snapshot` metrics. It decides nothing.
//!
//! Some symptoms leave no trace in `/proc` counters: a send buffer that caps
//! a transfer, a receiver window that does, a congestion window that
//! collapses after idle. They show only in per-socket state, so the
//! diagnosis needs these metrics next to the `/proc` ones.
//!
//! A netlink socket reports the sockets of the network namespace it was
//! created in: `SockDiag::open` called from a thread that `setns()`ed into a
//! namespace keeps dumping that namespace, from any thread, for its life.
//!
//! # Metrics (`SockAggregator::metrics`)
//!
//! All are gauges over the sampling window: one aggregator is fed with
//! every dump of the window (`observe`), and each connection contributes the
//! last sample it was seen in (its `tcp_info` counters are cumulative).
//!
//! | metric | meaning |
//! |---|---|
//! | `sock.connections` | distinct non-listening TCP sockets seen |
//! | `sock.rtt_ms.p50`, `.p95` | smoothed RTT (`tcpi_rtt`) across connections, by connection |
//! | `sock.min_rtt_ms.min` | lowest `tcpi_min_rtt` seen |
//! | `sock.cwnd.p50`, `.max` | congestion window in segments (last sample per connection; max over all samples) |
//! | `sock.delivery_rate_bps.max` | highest `tcpi_delivery_rate`, bytes per second |
//! | `sock.bdp_bytes.max` | highest delivery rate × min RTT of one sample: the bandwidth-delay product a connection demonstrably used |
//! | `sock.busy_ms.sum` | time connections had data in flight (`tcpi_busy_time`) |
//! | `sock.rwnd_limited_pct.mean`, `.max` | share of busy time limited by the peer's receive window (`tcpi_rwnd_limited`): busy-time-weighted over connections, and the largest of one connection busy ≥ 10 ms |
//! | `sock.sndbuf_limited_pct.mean`, `.max` | the same for the local send buffer (`tcpi_sndbuf_limited`) |
//! | `sock.retrans.sum` | retransmitted segments (`tcpi_total_retrans`) |
//! | `sock.idle_restarts` | sends after an idle gap longer than the RTO, by a connection whose window had grown past the initial 10 segments |
//! | `sock.idle_cwnd_drop_pct.mean`, `.max` | cwnd lost across those restarts, `100 × (before − after) / before` (absent without restarts) |
//! | `sock.cc.<name>.share` | share of connections using congestion control `<name>`; 0 for every algorithm the aggregator was told is available and no connection used |
//! | `listen.count` | listening sockets |
//! | `listen.backlog.max` | largest effective backlog of a listener (`ss -lnt` Send-Q: min(application backlog, somaxconn) at `listen()`) |
//! | `listen.queue.max` | peak accept-queue length seen (`ss -lnt` Recv-Q) |
//! | `listen.<port>.backlog`, `listen.<port>.queue.max` | the same per listening port |
//! | `sock.peer.<addr>.connections`, `.rwnd_limited_pct`, `.sndbuf_limited_pct`, `.rtt_ms.p50`, `.bdp_bytes.max` | per remote address (dots and colons written as `_`) |
//!
//! With `SockAggregator::with_caps`, also the counts of sockets held at each
//! receive-buffer and backlog cap (`sock.tcp.rcv.*`, `sock.udp.rcv.*`,
//! `listen.full*`; see `limits`), from TCP and UDP dumps.
//!
//! # How a collapse after idle is seen
//!
//! Linux resets the window of a connection that sends after more than one
//! RTO of silence (`tcp_slow_start_after_idle`; skipped by algorithms with
//! their own `cong_control`, BBR). The reset happens inside the first send,
//! so no counter records it. Between two samples of one connection the
//! aggregator sees it as: the earlier sample had `tcpi_last_data_sent`
//! (ms since the last send) above `tcpi_rto`, and by the later sample the
//! socket has sent again (its last-send time moved forward). The cwnd of the
//! earlier sample is the window before the gap, the later one the window the
//! response starts with. Sampling every few tens of milliseconds catches the
//! restarted window before ACKs regrow it (one RTT later).

mod aggregate;
mod limits;
mod wire;

pub use aggregate::{SockAggregator, TCP_INIT_CWND};
pub use limits::BufferCaps;
pub use wire::{Chunk, SkMem, SockDiagError, SockRecord, States, TcpInfo, parse_diag_msg, parse_dump_chunk};

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use wire::{INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_SKMEMINFO, NETLINK_SOCK_DIAG, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, SOCK_DIAG_BY_FAMILY};

/// The request: `nlmsghdr` + `inet_diag_req_v2` asking for `tcp_info`, the congestion control and socket memory.
fn request(family: u8, proto: u8, states: States, seq: u32) -> Vec<u8> {
    let ext: u8 = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
    let total = NLMSG_HDRLEN + 56;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[family, proto, ext, 0]);
    b.extend_from_slice(&states.0.to_ne_bytes());
    // inet_diag_sockid: all zero (no filter), 48 bytes.
    b.extend_from_slice(&[0u8; 48]);
    b
}

/// A netlink `sock_diag` socket, bound to the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl SockDiag {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<SockDiag, SockDiagError> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(SockDiagError::Io { op: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)", source: io::Error::last_os_error() });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // 32 KiB: the kernel fills a dump buffer up to a page-multiple it
        // chooses (at most 32 KiB here); a smaller buffer would truncate.
        Ok(SockDiag { fd, seq: 1, buf: vec![0u8; 64 * 1024] })
    }

    /// Every IPv4 and IPv6 TCP socket of the namespace in `states`.
    pub fn dump(&mut self, states: States) -> Result<Vec<SockRecord>, SockDiagError> {
        let tcp = libc::IPPROTO_TCP as u8;
        let mut out = self.dump_family(libc::AF_INET as u8, tcp, states)?;
        out.extend(self.dump_family(libc::AF_INET6 as u8, tcp, states)?);
        Ok(out)
    }

    /// Every IPv4 and IPv6 UDP socket of the namespace (no `tcp_info`; socket memory and drops).
    pub fn dump_udp(&mut self) -> Result<Vec<SockRecord>, SockDiagError> {
        let udp = libc::IPPROTO_UDP as u8;
        let mut out = self.dump_family(libc::AF_INET as u8, udp, States::UDP)?;
        out.extend(self.dump_family(libc::AF_INET6 as u8, udp, States::UDP)?);
        Ok(out)
    }

    fn dump_family(&mut self, family: u8, proto: u8, states: States) -> Result<Vec<SockRecord>, SockDiagError> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(family, proto, states, self.seq);
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (pid 0 = the kernel).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0, (&sa as *const libc::sockaddr_nl).cast(), std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t)
        };
        if n < 0 {
            return Err(SockDiagError::Io { op: "sendto", source: io::Error::last_os_error() });
        }
        let name = if family == libc::AF_INET6 as u8 { "inet6" } else { "inet" };
        let mut out = Vec::new();
        loop {
            // SAFETY: recv into our own buffer of the given length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SockDiagError::Io { op: "recv", source: e });
            }
            if n == 0 {
                return Err(SockDiagError::Malformed { offset: 0, reason: "netlink socket closed mid-dump".into() });
            }
            match parse_dump_chunk(&self.buf[..n as usize], self.seq, name) {
                Ok(chunk) => {
                    out.extend(chunk.records);
                    if chunk.done {
                        return Ok(out);
                    }
                }
                // A kernel without IPv6 (or without inet6 diag) refuses that family: no sockets there.
                Err(SockDiagError::Kernel { source, .. }) if family == libc::AF_INET6 as u8 && matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::EAFNOSUPPORT)) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Samples the calling thread's network namespace every `step` for `window` (TCP and, where the
/// kernel offers it, UDP), classifying sockets against `caps`: what the live host's telemetry adds
/// to its second snapshot. Sleeps for `window` even when sock_diag cannot be opened (the error).
pub fn sample_window(window: std::time::Duration, step: std::time::Duration, caps: BufferCaps) -> Result<SockAggregator, SockDiagError> {
    let start = std::time::Instant::now();
    let mut agg = SockAggregator::new(available_congestion_control()).with_caps(caps);
    let mut diag = match SockDiag::open() {
        Ok(d) => d,
        Err(e) => {
            std::thread::sleep(window);
            return Err(e);
        }
    };
    let mut udp = true;
    loop {
        let t = start.elapsed();
        agg.observe(t.as_millis() as u64, &diag.dump(States::FULL)?);
        // A kernel without UDP diag refuses the dump: TCP alone, then.
        if udp {
            match diag.dump_udp() {
                Ok(r) => agg.observe_udp(&r),
                Err(_) => udp = false,
            }
        }
        if t >= window {
            return Ok(agg);
        }
        std::thread::sleep(step.min(window - t));
    }
}

/// The algorithms this kernel offers (`/proc/sys/net/ipv4/tcp_available_congestion_control`, a global list readable in every namespace).
pub fn available_congestion_control() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real kernel, in the test's own namespace (dumping needs no privilege).
    #[test]
    fn a_live_dump_shows_a_listener_and_its_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut d = SockDiag::open().unwrap();
        let recs = d.dump(States::FULL).unwrap();
        let lis = recs.iter().find(|r| r.is_listener() && r.local.port() == port).expect("the listener is in the dump");
        assert!(lis.wqueue >= 1, "Send-Q of a listener is its backlog");
        let conn = recs.iter().find(|r| r.local == c.local_addr().unwrap()).expect("the client socket is in the dump");
        let info = conn.info.as_ref().expect("tcp_info comes with the dump");
        assert!(info.snd_cwnd >= 1 && info.rto_us > 0);
        assert!(conn.cong.as_deref().is_some_and(|c| !c.is_empty()));
    }
}
