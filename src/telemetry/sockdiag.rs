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

use super::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETLINK_SOCK_DIAG` (linux/netlink.h).
const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`.
const INET_DIAG_MSG_LEN: usize = 72;
/// Attribute types (linux/inet_diag.h).
const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_CONG: u16 = 4;
const INET_DIAG_SKMEMINFO: u16 = 7;
/// TCP states (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 10;
/// Linux's initial congestion window (`TCP_INIT_CWND`): a socket at or below it has no window to lose.
pub const TCP_INIT_CWND: u32 = 10;

/// Which TCP states a dump asks for (bit `1 << state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct States(pub u32);

impl States {
    /// Every state that has a full socket with `tcp_info`: all but TIME_WAIT, CLOSE and NEW_SYN_RECV
    /// (mini-sockets, thousands of them after a burst of short connections, with nothing to report).
    pub const FULL: States = States((1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11));
    /// Listening sockets only.
    pub const LISTEN: States = States(1 << TCP_LISTEN);
}

/// Failure of a `sock_diag` read; names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// A system call failed.
    #[error("sock_diag: {op} failed: {source}")]
    Io {
        /// `socket`, `sendto`, `recv`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel answered with an error message.
    #[error("sock_diag: the kernel refused the {family} dump: {source}")]
    Kernel {
        /// `inet` or `inet6`.
        family: &'static str,
        /// The errno it sent.
        source: io::Error,
    },
    /// The answer does not follow the netlink layout.
    #[error("sock_diag: malformed answer at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset in the receive buffer.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The fields of `struct tcp_info` (linux/tcp.h) the metrics use. Fields a
/// kernel's shorter struct lacks are `None` (busy/limited times need 4.10+,
/// `snd_wnd` 5.4+).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TcpInfo {
    /// `tcpi_state`.
    pub state: u8,
    /// `tcpi_ca_state` (0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss).
    pub ca_state: u8,
    /// `tcpi_delivery_rate_app_limited`: the last rate sample was limited by the application.
    pub delivery_rate_app_limited: bool,
    /// Retransmission timeout, µs.
    pub rto_us: u32,
    /// Sender MSS, bytes.
    pub snd_mss: u32,
    /// Segments in flight.
    pub unacked: u32,
    /// Milliseconds since the last data sent.
    pub last_data_sent_ms: u32,
    /// Milliseconds since the last data received.
    pub last_data_recv_ms: u32,
    /// Smoothed RTT, µs.
    pub rtt_us: u32,
    /// RTT variance, µs.
    pub rttvar_us: u32,
    /// Slow-start threshold, segments.
    pub snd_ssthresh: u32,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// Receiver-side RTT estimate, µs.
    pub rcv_rtt_us: u32,
    /// Receive space (autotuning's estimate of what the application reads per RTT), bytes.
    pub rcv_space: u32,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// Pacing rate, bytes per second.
    pub pacing_rate: Option<u64>,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: Option<u64>,
    /// Bytes received.
    pub bytes_received: Option<u64>,
    /// Unsent bytes in the write queue.
    pub notsent_bytes: Option<u32>,
    /// Minimum RTT seen, µs.
    pub min_rtt_us: Option<u32>,
    /// Latest delivery-rate sample, bytes per second.
    pub delivery_rate: Option<u64>,
    /// Time with data in flight, µs.
    pub busy_time_us: Option<u64>,
    /// Part of the busy time limited by the peer's receive window, µs.
    pub rwnd_limited_us: Option<u64>,
    /// Part of the busy time limited by the send buffer, µs.
    pub sndbuf_limited_us: Option<u64>,
    /// Bytes sent, retransmissions included.
    pub bytes_sent: Option<u64>,
    /// Peer's advertised window, bytes.
    pub snd_wnd: Option<u32>,
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4).map(|s| u32::from_ne_bytes(s.try_into().unwrap()))
}

fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off + 8).map(|s| u64::from_ne_bytes(s.try_into().unwrap()))
}

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2).map(|s| u16::from_ne_bytes(s.try_into().unwrap()))
}

impl TcpInfo {
    /// Parses the payload of an `INET_DIAG_INFO` attribute; `None` when it is shorter than
    /// the fields every kernel since 2.6 has (104 bytes).
    pub fn parse(b: &[u8]) -> Option<TcpInfo> {
        if b.len() < 104 {
            return None;
        }
        let u = |off| rd_u32(b, off).unwrap_or(0);
        Some(TcpInfo {
            state: b[0],
            ca_state: b[1],
            delivery_rate_app_limited: b[7] & 1 == 1,
            rto_us: u(8),
            snd_mss: u(16),
            unacked: u(24),
            last_data_sent_ms: u(44),
            last_data_recv_ms: u(52),
            rtt_us: u(68),
            rttvar_us: u(72),
            snd_ssthresh: u(76),
            snd_cwnd: u(80),
            rcv_rtt_us: u(92),
            rcv_space: u(96),
            total_retrans: u(100),
            pacing_rate: rd_u64(b, 104),
            bytes_acked: rd_u64(b, 120),
            bytes_received: rd_u64(b, 128),
            notsent_bytes: rd_u32(b, 144),
            min_rtt_us: rd_u32(b, 148),
            delivery_rate: rd_u64(b, 160),
            busy_time_us: rd_u64(b, 168),
            rwnd_limited_us: rd_u64(b, 176),
            sndbuf_limited_us: rd_u64(b, 184),
            bytes_sent: rd_u64(b, 200),
            snd_wnd: rd_u32(b, 228),
        })
    }
}

/// `INET_DIAG_SKMEMINFO` (what `ss -m` prints as `skmem:(...)`), bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkMem {
    /// Receive queue memory (`r`).
    pub rmem_alloc: u32,
    /// Receive buffer size (`rb`).
    pub rcvbuf: u32,
    /// Transmit queue memory (`t`).
    pub wmem_alloc: u32,
    /// Send buffer size (`tb`).
    pub sndbuf: u32,
    /// Queued for sending (`w`).
    pub wmem_queued: u32,
}

/// One socket of a dump.
#[derive(Debug, Clone, PartialEq)]
pub struct SockRecord {
    /// TCP state (`TCP_ESTABLISHED` = 1, `TCP_LISTEN` = 10, ...).
    pub state: u8,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for listeners).
    pub remote: SocketAddr,
    /// Kernel socket cookie: unique for the life of the machine's boot.
    pub cookie: u64,
    /// Socket inode (0 for sockets without a file).
    pub inode: u32,
    /// Listener: current accept-queue length. Other: bytes not yet read.
    pub rqueue: u32,
    /// Listener: effective backlog. Other: bytes not yet acknowledged.
    pub wqueue: u32,
    /// Congestion-control algorithm.
    pub cong: Option<String>,
    /// `tcp_info`, when the kernel sent it.
    pub info: Option<TcpInfo>,
    /// Socket memory, when the kernel sent it.
    pub skmem: Option<SkMem>,
}

impl SockRecord {
    /// Whether this is a listening socket.
    pub fn is_listener(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

fn addr(family: u8, raw: &[u8], port: u16) -> SocketAddr {
    if family == libc::AF_INET6 as u8 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&raw[..16]);
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])), port)
    }
}

/// Parses one `inet_diag_msg` with its attributes (the payload of one netlink message).
pub fn parse_diag_msg(b: &[u8]) -> Option<SockRecord> {
    if b.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let family = b[0];
    let sport = u16::from_be_bytes([b[4], b[5]]);
    let dport = u16::from_be_bytes([b[6], b[7]]);
    let cookie = (rd_u32(b, 44)? as u64) | ((rd_u32(b, 48)? as u64) << 32);
    let mut rec = SockRecord {
        state: b[1],
        local: addr(family, &b[8..24], sport),
        remote: addr(family, &b[24..40], dport),
        cookie,
        inode: rd_u32(b, 68)?,
        rqueue: rd_u32(b, 56)?,
        wqueue: rd_u32(b, 60)?,
        cong: None,
        info: None,
        skmem: None,
    };
    let mut off = INET_DIAG_MSG_LEN;
    while off + 4 <= b.len() {
        let len = rd_u16(b, off)? as usize;
        let kind = rd_u16(b, off + 2)? & 0x3fff;
        if len < 4 || off + len > b.len() {
            break;
        }
        let payload = &b[off + 4..off + len];
        match kind {
            INET_DIAG_INFO => rec.info = TcpInfo::parse(payload),
            INET_DIAG_CONG => {
                let end = payload.iter().position(|&c| c == 0).unwrap_or(payload.len());
                rec.cong = Some(String::from_utf8_lossy(&payload[..end]).into_owned());
            }
            INET_DIAG_SKMEMINFO if payload.len() >= 24 => {
                let u = |i: usize| rd_u32(payload, i * 4).unwrap_or(0);
                rec.skmem = Some(SkMem { rmem_alloc: u(0), rcvbuf: u(1), wmem_alloc: u(2), sndbuf: u(3), wmem_queued: u(5) });
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Some(rec)
}

/// What one receive buffer of a dump held.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Sockets in it.
    pub records: Vec<SockRecord>,
    /// The dump ended in it (`NLMSG_DONE`).
    pub done: bool,
}

/// Parses one buffer of netlink messages of the `family` (`inet`, `inet6`) dump with sequence number `seq`.
/// An `NLMSG_ERROR` with a non-zero errno is `SockDiagError::Kernel`.
pub fn parse_dump_chunk(buf: &[u8], seq: u32, family: &'static str) -> Result<Chunk, SockDiagError> {
    let mut out = Chunk::default();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let len = rd_u32(buf, off).unwrap() as usize;
        let kind = rd_u16(buf, off + 4).unwrap();
        let mseq = rd_u32(buf, off + 8).unwrap();
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(SockDiagError::Malformed { offset: off, reason: format!("message length {len} with {} bytes left", buf.len() - off) });
        }
        let body = &buf[off + NLMSG_HDRLEN..off + len];
        off += (len + 3) & !3;
        if mseq != seq {
            // A leftover of an earlier, interrupted dump on this socket.
            continue;
        }
        match kind {
            NLMSG_DONE => {
                out.done = true;
                return Ok(out);
            }
            NLMSG_ERROR => {
                let errno = body.get(0..4).map(|s| i32::from_ne_bytes(s.try_into().unwrap())).unwrap_or(0);
                if errno != 0 {
                    return Err(SockDiagError::Kernel { family, source: io::Error::from_raw_os_error(-errno) });
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(r) = parse_diag_msg(body) {
                    out.records.push(r);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The request: `nlmsghdr` + `inet_diag_req_v2` asking for `tcp_info`, the congestion control and socket memory.
fn request(family: u8, states: States, seq: u32) -> Vec<u8> {
    let ext: u8 = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
    let total = NLMSG_HDRLEN + 56;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, ext, 0]);
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
        let mut out = self.dump_family(libc::AF_INET as u8, states)?;
        out.extend(self.dump_family(libc::AF_INET6 as u8, states)?);
        Ok(out)
    }

    fn dump_family(&mut self, family: u8, states: States) -> Result<Vec<SockRecord>, SockDiagError> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(family, states, self.seq);
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

/// What the aggregator keeps of one connection between samples.
#[derive(Debug, Clone)]
struct Track {
    remote: IpAddr,
    cong: Option<String>,
    /// Time of the latest sample, ms on the caller's clock.
    t_ms: u64,
    info: TcpInfo,
    cwnd_max: u32,
    bdp_max: f64,
}

/// Folds repeated dumps of one or more namespaces into window metrics.
#[derive(Debug, Clone, Default)]
pub struct SockAggregator {
    known_cc: BTreeSet<String>,
    tracks: HashMap<u64, Track>,
    /// Listening port → (latest backlog, peak queue).
    listeners: BTreeMap<u16, (u32, u32)>,
    idle_drops: Vec<f64>,
    samples: usize,
}

impl SockAggregator {
    /// An aggregator that reports a share (0 when unused) for each algorithm in `known_cc`
    /// (e.g. `tcp_available_congestion_control`), so "nobody used BBR" is a measured 0, not an absence.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(known_cc: I) -> Self {
        Self { known_cc: known_cc.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Number of dumps observed.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Adds one dump taken at `t_ms` (the caller's monotonic clock, milliseconds).
    pub fn observe(&mut self, t_ms: u64, records: &[SockRecord]) {
        self.samples += 1;
        for r in records {
            if r.is_listener() {
                let e = self.listeners.entry(r.local.port()).or_insert((0, 0));
                e.0 = r.wqueue;
                e.1 = e.1.max(r.rqueue);
                continue;
            }
            let Some(info) = r.info.clone() else { continue };
            let bdp = match (info.delivery_rate, info.min_rtt_us) {
                (Some(rate), Some(rtt)) if rate > 0 && rtt > 0 => rate as f64 * rtt as f64 / 1e6,
                _ => 0.0,
            };
            match self.tracks.get_mut(&r.cookie) {
                Some(tr) => {
                    let prev = &tr.info;
                    // Last-send instants on the caller's clock; equal up to a jiffy when nothing was sent.
                    let prev_send = tr.t_ms as i64 - prev.last_data_sent_ms as i64;
                    let cur_send = t_ms as i64 - info.last_data_sent_ms as i64;
                    let idle_before = prev.last_data_sent_ms as u64 * 1000 > prev.rto_us as u64 && prev.rto_us > 0;
                    if idle_before && cur_send > prev_send + 10 && prev.snd_cwnd > TCP_INIT_CWND {
                        let drop = (prev.snd_cwnd as f64 - info.snd_cwnd as f64) / prev.snd_cwnd as f64 * 100.0;
                        self.idle_drops.push(drop.max(0.0));
                    }
                    tr.t_ms = t_ms;
                    tr.cwnd_max = tr.cwnd_max.max(info.snd_cwnd);
                    tr.bdp_max = tr.bdp_max.max(bdp);
                    if r.cong.is_some() {
                        tr.cong = r.cong.clone();
                    }
                    tr.info = info;
                }
                None => {
                    self.tracks.insert(r.cookie, Track { remote: r.remote.ip(), cong: r.cong.clone(), t_ms, cwnd_max: info.snd_cwnd, bdp_max: bdp, info });
                }
            }
        }
    }

    /// The window's metrics (see the module documentation for names and meanings).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let tracks: Vec<&Track> = self.tracks.values().collect();
        m.insert("sock.connections".into(), tracks.len() as f64);
        if !self.listeners.is_empty() {
            m.insert("listen.count".into(), self.listeners.len() as f64);
            m.insert("listen.backlog.max".into(), self.listeners.values().map(|l| l.0).max().unwrap_or(0) as f64);
            m.insert("listen.queue.max".into(), self.listeners.values().map(|l| l.1).max().unwrap_or(0) as f64);
            for (port, (backlog, queue)) in &self.listeners {
                m.insert(format!("listen.{port}.backlog"), *backlog as f64);
                m.insert(format!("listen.{port}.queue.max"), *queue as f64);
            }
        }
        if tracks.is_empty() {
            return m;
        }
        let rtts: Vec<f64> = tracks.iter().filter(|t| t.info.rtt_us > 0).map(|t| t.info.rtt_us as f64 / 1000.0).collect();
        if !rtts.is_empty() {
            m.insert("sock.rtt_ms.p50".into(), nearest_rank(&rtts, 50.0));
            m.insert("sock.rtt_ms.p95".into(), nearest_rank(&rtts, 95.0));
        }
        if let Some(min) = tracks.iter().filter_map(|t| t.info.min_rtt_us).filter(|&v| v > 0 && v != u32::MAX).min() {
            m.insert("sock.min_rtt_ms.min".into(), min as f64 / 1000.0);
        }
        let cwnds: Vec<f64> = tracks.iter().map(|t| t.info.snd_cwnd as f64).collect();
        m.insert("sock.cwnd.p50".into(), nearest_rank(&cwnds, 50.0));
        m.insert("sock.cwnd.max".into(), tracks.iter().map(|t| t.cwnd_max).max().unwrap_or(0) as f64);
        if let Some(rate) = tracks.iter().filter_map(|t| t.info.delivery_rate).max() {
            m.insert("sock.delivery_rate_bps.max".into(), rate as f64);
        }
        let bdp = tracks.iter().map(|t| t.bdp_max).fold(0.0, f64::max);
        if bdp > 0.0 {
            m.insert("sock.bdp_bytes.max".into(), bdp.round());
        }
        m.insert("sock.retrans.sum".into(), tracks.iter().map(|t| t.info.total_retrans as f64).sum());
        m.insert("sock.busy_ms.sum".into(), tracks.iter().filter_map(|t| t.info.busy_time_us).sum::<u64>() as f64 / 1000.0);
        limited_share(&tracks, |i| i.rwnd_limited_us, "sock.rwnd_limited_pct", &mut m);
        limited_share(&tracks, |i| i.sndbuf_limited_us, "sock.sndbuf_limited_pct", &mut m);
        m.insert("sock.idle_restarts".into(), self.idle_drops.len() as f64);
        if !self.idle_drops.is_empty() {
            m.insert("sock.idle_cwnd_drop_pct.mean".into(), self.idle_drops.iter().sum::<f64>() / self.idle_drops.len() as f64);
            m.insert("sock.idle_cwnd_drop_pct.max".into(), self.idle_drops.iter().copied().fold(0.0, f64::max));
        }
        let with_cc: Vec<&str> = tracks.iter().filter_map(|t| t.cong.as_deref()).collect();
        let names: BTreeSet<&str> = self.known_cc.iter().map(String::as_str).chain(with_cc.iter().copied()).collect();
        if !with_cc.is_empty() {
            for name in names {
                let n = with_cc.iter().filter(|c| **c == name).count();
                m.insert(format!("sock.cc.{name}.share"), n as f64 / with_cc.len() as f64);
            }
        }
        let mut peers: BTreeMap<IpAddr, Vec<&Track>> = BTreeMap::new();
        for t in &tracks {
            peers.entry(t.remote).or_default().push(t);
        }
        for (ip, ts) in peers {
            let p = format!("sock.peer.{}", ip.to_string().replace(['.', ':'], "_"));
            m.insert(format!("{p}.connections"), ts.len() as f64);
            let rtts: Vec<f64> = ts.iter().filter(|t| t.info.rtt_us > 0).map(|t| t.info.rtt_us as f64 / 1000.0).collect();
            if !rtts.is_empty() {
                m.insert(format!("{p}.rtt_ms.p50"), nearest_rank(&rtts, 50.0));
            }
            let bdp = ts.iter().map(|t| t.bdp_max).fold(0.0, f64::max);
            if bdp > 0.0 {
                m.insert(format!("{p}.bdp_bytes.max"), bdp.round());
            }
            let busy: u64 = ts.iter().filter_map(|t| t.info.busy_time_us).sum();
            if busy > 0 {
                let rw: u64 = ts.iter().filter_map(|t| t.info.rwnd_limited_us).sum();
                let sb: u64 = ts.iter().filter_map(|t| t.info.sndbuf_limited_us).sum();
                m.insert(format!("{p}.rwnd_limited_pct"), 100.0 * rw as f64 / busy as f64);
                m.insert(format!("{p}.sndbuf_limited_pct"), 100.0 * sb as f64 / busy as f64);
            }
        }
        m
    }

    /// Adds the metrics to `snap` (overwriting metrics of the same name).
    pub fn add_to(&self, snap: &mut Snapshot) {
        for (k, v) in self.metrics() {
            snap.set(k, v);
        }
    }
}

/// Busy time below which one connection's limited share is too noisy to be its `.max`.
const MIN_BUSY_US: u64 = 10_000;

/// `<name>.mean` (busy-time-weighted share over all connections) and `<name>.max`.
fn limited_share(tracks: &[&Track], limited: impl Fn(&TcpInfo) -> Option<u64>, name: &str, m: &mut BTreeMap<String, f64>) {
    let busy: u64 = tracks.iter().filter(|t| limited(&t.info).is_some()).filter_map(|t| t.info.busy_time_us).sum();
    if busy == 0 {
        return;
    }
    let lim: u64 = tracks.iter().filter_map(|t| limited(&t.info)).sum();
    m.insert(format!("{name}.mean"), 100.0 * lim as f64 / busy as f64);
    let max = tracks
        .iter()
        .filter_map(|t| Some((t.info.busy_time_us?, limited(&t.info)?)))
        .filter(|(b, _)| *b >= MIN_BUSY_US)
        .map(|(b, l)| 100.0 * l as f64 / b as f64)
        .fold(f64::NAN, f64::max);
    if max.is_finite() {
        m.insert(format!("{name}.max"), max);
    }
}

/// Nearest-rank percentile (`p` in percent) of a non-empty slice.
fn nearest_rank(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = ((p / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[k - 1]
}

/// The algorithms this kernel offers (`/proc/sys/net/ipv4/tcp_available_congestion_control`, a global list readable in every namespace).
pub fn available_congestion_control() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `tcp_info` of 232 bytes with the given fields.
    fn info_bytes(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = vec![0u8; 232];
        f(&mut b);
        b
    }

    fn put32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    /// One netlink message holding an `inet_diag_msg` for 10.0.0.1:sport → 10.0.0.2:dport.
    fn msg(seq: u32, state: u8, sport: u16, dport: u16, cookie: u64, rq: u32, wq: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut d = vec![0u8; INET_DIAG_MSG_LEN];
        d[0] = libc::AF_INET as u8;
        d[1] = state;
        d[4..6].copy_from_slice(&sport.to_be_bytes());
        d[6..8].copy_from_slice(&dport.to_be_bytes());
        d[8..12].copy_from_slice(&[10, 0, 0, 1]);
        d[24..28].copy_from_slice(&[10, 0, 0, 2]);
        put32(&mut d, 44, cookie as u32);
        put32(&mut d, 48, (cookie >> 32) as u32);
        put32(&mut d, 56, rq);
        put32(&mut d, 60, wq);
        put32(&mut d, 68, 4242);
        for a in attrs {
            d.extend_from_slice(a);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + d.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&d);
        m
    }

    fn done(seq: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0i32.to_ne_bytes());
        m
    }

    #[test]
    fn a_dump_is_parsed_with_info_cong_and_memory() {
        let info = info_bytes(|b| {
            put32(b, 8, 304_000);
            put32(b, 68, 101_500);
            put32(b, 80, 1455);
            put32(b, 148, 100_200);
            put64(b, 160, 62_500_000);
            put64(b, 168, 1_000_000);
            put64(b, 176, 250_000);
            put64(b, 184, 600_000);
        });
        let mem: Vec<u8> = [1u32, 2, 3, 4194304, 5, 6, 7, 8, 9].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut buf = msg(7, 1, 9090, 40000, 0x1_0000_0002, 0, 1448, &[attr(INET_DIAG_INFO, &info), attr(INET_DIAG_CONG, b"cubic\0"), attr(INET_DIAG_SKMEMINFO, &mem)]);
        buf.extend(msg(7, TCP_LISTEN, 8080, 0, 3, 17, 128, &[]));
        buf.extend(msg(6, 1, 1, 1, 99, 0, 0, &[])); // an old dump's leftover: ignored
        buf.extend(done(7));
        let chunk = parse_dump_chunk(&buf, 7, "inet").unwrap();
        assert!(chunk.done);
        assert_eq!(chunk.records.len(), 2);
        let r = &chunk.records[0];
        assert_eq!(r.local, "10.0.0.1:9090".parse().unwrap());
        assert_eq!(r.remote, "10.0.0.2:40000".parse().unwrap());
        assert_eq!(r.cookie, 0x1_0000_0002);
        assert_eq!(r.cong.as_deref(), Some("cubic"));
        assert_eq!(r.skmem.unwrap().sndbuf, 4194304);
        let i = r.info.as_ref().unwrap();
        assert_eq!((i.rto_us, i.rtt_us, i.snd_cwnd), (304_000, 101_500, 1455));
        assert_eq!((i.busy_time_us, i.rwnd_limited_us, i.sndbuf_limited_us), (Some(1_000_000), Some(250_000), Some(600_000)));
        assert!(chunk.records[1].is_listener());
        assert_eq!((chunk.records[1].rqueue, chunk.records[1].wqueue), (17, 128));
    }

    #[test]
    fn kernel_errors_and_truncation_are_reported() {
        let mut e = Vec::new();
        e.extend_from_slice(&36u32.to_ne_bytes());
        e.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e.extend_from_slice(&0u16.to_ne_bytes());
        e.extend_from_slice(&5u32.to_ne_bytes());
        e.extend_from_slice(&0u32.to_ne_bytes());
        e.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        e.extend_from_slice(&[0u8; 16]);
        match parse_dump_chunk(&e, 5, "inet") {
            Err(SockDiagError::Kernel { family: "inet", source }) => assert_eq!(source.raw_os_error(), Some(libc::EPERM)),
            other => panic!("{other:?}"),
        }
        let mut m = msg(1, 1, 1, 1, 1, 0, 0, &[]);
        m.truncate(40);
        assert!(matches!(parse_dump_chunk(&m, 1, "inet"), Err(SockDiagError::Malformed { offset: 0, .. })));
    }

    #[test]
    fn a_short_tcp_info_of_an_old_kernel_leaves_new_fields_absent() {
        let i = TcpInfo::parse(&vec![0u8; 104]).unwrap();
        assert_eq!((i.busy_time_us, i.delivery_rate, i.min_rtt_us), (None, None, None));
        assert!(TcpInfo::parse(&[0u8; 50]).is_none());
    }

    fn rec(cookie: u64, state: u8, info: TcpInfo, cong: &str) -> SockRecord {
        SockRecord {
            state,
            local: "10.0.0.1:9090".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
            cookie,
            inode: 1,
            rqueue: 0,
            wqueue: 0,
            cong: Some(cong.into()),
            info: Some(info),
            skmem: None,
        }
    }

    #[test]
    fn limited_shares_are_weighted_by_busy_time() {
        let mut a = SockAggregator::new(["reno", "bbr", "cubic"]);
        let sender = TcpInfo { busy_time_us: Some(1_000_000), rwnd_limited_us: Some(900_000), sndbuf_limited_us: Some(0), snd_cwnd: 900, delivery_rate: Some(25_000_000), min_rtt_us: Some(100_000), rtt_us: 120_000, ..Default::default() };
        let requester = TcpInfo { busy_time_us: Some(1_000), rwnd_limited_us: Some(0), sndbuf_limited_us: Some(0), snd_cwnd: 10, rtt_us: 100_000, ..Default::default() };
        a.observe(0, &[rec(1, 1, sender, "cubic"), rec(2, 1, requester, "cubic")]);
        let m = a.metrics();
        assert!((m["sock.rwnd_limited_pct.mean"] - 100.0 * 900_000.0 / 1_001_000.0).abs() < 1e-9);
        assert_eq!(m["sock.rwnd_limited_pct.max"], 90.0);
        assert_eq!(m["sock.sndbuf_limited_pct.mean"], 0.0);
        assert_eq!(m["sock.bdp_bytes.max"], 2_500_000.0);
        assert_eq!(m["sock.cc.cubic.share"], 1.0);
        assert_eq!(m["sock.cc.bbr.share"], 0.0, "an unused available algorithm is a measured zero");
        assert_eq!(m["sock.peer.10_0_0_2.connections"], 2.0);
        assert!(!m.contains_key("sock.idle_cwnd_drop_pct.mean"), "no restart seen, no value");
    }

    #[test]
    fn a_send_after_idle_longer_than_rto_with_a_smaller_window_is_a_collapse() {
        let mut a = SockAggregator::new(["cubic"]);
        let at = |sent_ago: u32, cwnd: u32| TcpInfo { rto_us: 300_000, last_data_sent_ms: sent_ago, snd_cwnd: cwnd, ..Default::default() };
        // Busy, then 1 s of silence, then a response that starts from cwnd 100.
        a.observe(0, &[rec(1, 1, at(0, 800), "cubic")]);
        a.observe(500, &[rec(1, 1, at(500, 800), "cubic")]);
        a.observe(1000, &[rec(1, 1, at(1000, 800), "cubic")]);
        a.observe(1025, &[rec(1, 1, at(5, 100), "cubic")]);
        // Idle shorter than the RTO: no event.
        a.observe(1200, &[rec(1, 1, at(180, 700), "cubic")]);
        a.observe(1230, &[rec(1, 1, at(2, 700), "cubic")]);
        // A requester at the initial window: nothing to lose, not counted.
        a.observe(3000, &[rec(2, 1, at(2000, 10), "cubic")]);
        a.observe(3025, &[rec(2, 1, at(1, 10), "cubic")]);
        let m = a.metrics();
        assert_eq!(m["sock.idle_restarts"], 1.0);
        assert_eq!(m["sock.idle_cwnd_drop_pct.mean"], 87.5);
    }

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

    #[test]
    fn listeners_report_backlog_and_peak_queue() {
        let mut a = SockAggregator::new(Vec::<String>::new());
        let l = |rq, wq| SockRecord { state: TCP_LISTEN, local: "10.0.0.2:8080".parse().unwrap(), remote: "0.0.0.0:0".parse().unwrap(), cookie: 9, inode: 1, rqueue: rq, wqueue: wq, cong: None, info: None, skmem: None };
        a.observe(0, &[l(0, 128)]);
        a.observe(50, &[l(129, 128)]);
        a.observe(100, &[l(3, 128)]);
        let m = a.metrics();
        assert_eq!((m["listen.backlog.max"], m["listen.queue.max"], m["listen.8080.queue.max"]), (128.0, 129.0, 129.0));
        assert_eq!(m["sock.connections"], 0.0);
    }
}
