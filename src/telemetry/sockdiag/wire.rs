//! The `sock_diag` wire format: the netlink and `inet_diag` constants, the
//! state mask of a request, the binary layouts of `inet_diag_msg`, `tcp_info`
//! and `skmeminfo`, and their parsers. It does no I/O: the socket that sends
//! the request and receives these bytes is the parent module's.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `NETLINK_SOCK_DIAG` (linux/netlink.h).
pub(super) const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
pub(super) const SOCK_DIAG_BY_FAMILY: u16 = 20;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(super) const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`.
const INET_DIAG_MSG_LEN: usize = 72;
/// Attribute types (linux/inet_diag.h).
pub(super) const INET_DIAG_INFO: u16 = 2;
pub(super) const INET_DIAG_CONG: u16 = 4;
pub(super) const INET_DIAG_SKMEMINFO: u16 = 7;
/// TCP states (include/net/tcp_states.h).
pub(super) const TCP_LISTEN: u8 = 10;

/// Which TCP states a dump asks for (bit `1 << state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct States(pub u32);

impl States {
    /// Every state that has a full socket with `tcp_info`: all but TIME_WAIT, CLOSE and NEW_SYN_RECV
    /// (mini-sockets, thousands of them after a burst of short connections, with nothing to report).
    pub const FULL: States = States((1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11));
    /// Listening sockets only.
    pub const LISTEN: States = States(1 << TCP_LISTEN);
    /// UDP sockets: connected (ESTABLISHED) and unconnected (CLOSE, how the kernel files a bound UDP socket).
    pub const UDP: States = States((1 << 1) | (1 << 7));
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
    /// Packets dropped at this socket (`d`, `sk_drops`), on kernels that report it.
    pub drops: Option<u32>,
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
                // SK_MEMINFO_DROPS is the ninth field (4.x and later).
                let drops = (payload.len() >= 36).then(|| u(8));
                rec.skmem = Some(SkMem { rmem_alloc: u(0), rcvbuf: u(1), wmem_alloc: u(2), sndbuf: u(3), wmem_queued: u(5), drops });
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
        let i = TcpInfo::parse(&[0u8; 104]).unwrap();
        assert_eq!((i.busy_time_us, i.delivery_rate, i.min_rtt_us), (None, None, None));
        assert!(TcpInfo::parse(&[0u8; 50]).is_none());
    }
}
