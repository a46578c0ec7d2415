//! Which limit each socket runs on: receive buffers and listen backlogs
//! compared with the sysctl caps read when the window was sampled
//! (`BufferCaps`). This measures, it does not decide: it counts the sockets
//! at each cap, and the KB's `binds_when` says what a count means.
//!
//! The kernel leaves exact traces (net/core/sock.c, net/ipv4/tcp_input.c):
//! * `setsockopt(SO_RCVBUF, n)` sets `sk_rcvbuf = 2 × min(n, rmem_max)` and
//!   locks it (no autotuning): a socket whose application asked for at least
//!   rmem_max sits at exactly 2 × rmem_max;
//! * TCP autotuning (`tcp_rcv_space_adjust`) grows `sk_rcvbuf` up to
//!   `tcp_rmem[2]` and no further: an autotuned socket held by the cap sits at
//!   exactly tcp_rmem[2];
//! * the same holds for send buffers: SO_SNDBUF gives 2 × min(n, wmem_max),
//!   locked; `tcp_sndbuf_expand` grows an unlocked one up to `tcp_wmem[2]`;
//! * a UDP socket that never set SO_RCVBUF runs on `rmem_default`;
//! * a listener's backlog (its Send-Q) is min(listen() argument, somaxconn)
//!   at `listen()`: a full listener whose backlog is somaxconn was clamped by
//!   it, one whose backlog is smaller runs on its application's own number.
//!
//! A socket "receives" in the window when its receive queue held data, its
//! drop count grew, or (TCP) its `bytes_received` grew.
//!
//! | metric | meaning |
//! |---|---|
//! | `sock.tcp.rcv.receiving` | TCP sockets receiving in the window |
//! | `sock.tcp.rcv.at_rmem_max` | of those, sockets at 2 × rmem_max (sized by the application, capped) |
//! | `sock.tcp.rcv.at_tcp_rmem_max` | of those, sockets at tcp_rmem[2] (autotuned up to the cap) |
//! | `sock.tcp.rcv.below_caps` | of those, sockets at neither (sized by the application below the cap, or still growing) |
//! | `sock.tcp.rcv.rcvbuf.max` | largest receive buffer among them, bytes |
//! | `sock.tcp.rcv.drops` | packets those sockets dropped in the window |
//! | `sock.udp.rcv.receiving`, `.at_rmem_max`, `.at_rmem_default`, `.below_caps`, `.rcvbuf.max`, `.drops` | the same for UDP, with rmem_default as the default |
//! | `sock.tcp.snd.sending`, `.at_wmem_max`, `.at_tcp_wmem_max`, `.below_caps`, `.sndbuf.max` | the same for TCP send buffers: sockets with queued data or bytes sent in the window, at 2 × wmem_max (SO_SNDBUF, capped) or at tcp_wmem[2] (autotuned to the cap) |
//! | `listen.full` | listeners whose accept queue reached their backlog |
//! | `listen.full.at_somaxconn` | of those, listeners whose backlog is somaxconn (clamped at listen()) |
//! | `listen.full.below_somaxconn` | of those, listeners whose application asked for a smaller backlog |

use super::wire::SockRecord;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The caps a socket's buffer or backlog can sit at, in the kernel's units (bytes, connections).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferCaps {
    /// `net.core.rmem_max`.
    pub rmem_max: Option<u64>,
    /// `net.core.rmem_default`.
    pub rmem_default: Option<u64>,
    /// `net.ipv4.tcp_rmem[2]`.
    pub tcp_rmem_max: Option<u64>,
    /// `net.core.somaxconn`.
    pub somaxconn: Option<u64>,
    /// `net.core.wmem_max`.
    pub wmem_max: Option<u64>,
    /// `net.ipv4.tcp_wmem[2]`.
    pub tcp_wmem_max: Option<u64>,
}

impl BufferCaps {
    /// Reads the caps under a sysctl root (`/proc/sys` for the namespace the process runs in); an unreadable one is None.
    pub fn read(sysctl_root: &Path) -> BufferCaps {
        let nth = |rel: &str, i: usize| std::fs::read_to_string(sysctl_root.join(rel)).ok().and_then(|t| t.split_whitespace().nth(i).and_then(|v| v.parse().ok()));
        BufferCaps {
            rmem_max: nth("net/core/rmem_max", 0),
            rmem_default: nth("net/core/rmem_default", 0),
            tcp_rmem_max: nth("net/ipv4/tcp_rmem", 2),
            somaxconn: nth("net/core/somaxconn", 0),
            wmem_max: nth("net/core/wmem_max", 0),
            tcp_wmem_max: nth("net/ipv4/tcp_wmem", 2),
        }
    }
}

/// What is kept of one receiving socket across samples.
#[derive(Debug, Clone, Default)]
struct Rcv {
    first_received: Option<u64>,
    received: Option<u64>,
    first_drops: Option<u32>,
    drops: Option<u32>,
    queued: bool,
    rcvbuf: u32,
}

impl Rcv {
    fn receiving(&self) -> bool {
        self.queued || self.drops > self.first_drops || self.received > self.first_received
    }
}

/// What is kept of one sending TCP socket across samples.
#[derive(Debug, Clone, Default)]
struct Snd {
    first_sent: Option<u64>,
    sent: Option<u64>,
    queued: bool,
    sndbuf: u32,
}

/// Receive buffers of TCP and UDP sockets, and send buffers of TCP sockets, across a window, by socket cookie.
#[derive(Debug, Clone, Default)]
pub struct Receivers {
    tcp: HashMap<u64, Rcv>,
    udp: HashMap<u64, Rcv>,
    snd: HashMap<u64, Snd>,
}

impl Receivers {
    /// Adds one socket's sample (`udp` for a UDP dump).
    pub fn observe(&mut self, r: &SockRecord, udp: bool) {
        let Some(m) = r.skmem else { return };
        let map = if udp { &mut self.udp } else { &mut self.tcp };
        let e = map.entry(r.cookie).or_default();
        let received = r.info.as_ref().and_then(|i| i.bytes_received);
        if e.first_received.is_none() {
            e.first_received = received;
        }
        if e.first_drops.is_none() {
            e.first_drops = m.drops;
        }
        e.received = received.or(e.received);
        e.drops = m.drops.or(e.drops);
        e.queued |= m.rmem_alloc > 0;
        e.rcvbuf = m.rcvbuf;
        if udp {
            return;
        }
        let sent = r.info.as_ref().and_then(|i| i.bytes_sent);
        let e = self.snd.entry(r.cookie).or_default();
        if e.first_sent.is_none() {
            e.first_sent = sent;
        }
        e.sent = sent.or(e.sent);
        e.queued |= m.wmem_queued > 0;
        e.sndbuf = m.sndbuf;
    }

    /// The counts per cap (see the module table); nothing without caps, since nothing can be told.
    pub fn metrics(&self, caps: &BufferCaps, m: &mut BTreeMap<String, f64>) {
        let twice = caps.rmem_max.map(|v| v * 2);
        classify(&self.tcp, "sock.tcp.rcv", &[("at_rmem_max", twice), ("at_tcp_rmem_max", caps.tcp_rmem_max)], m);
        classify(&self.udp, "sock.udp.rcv", &[("at_rmem_max", twice), ("at_rmem_default", caps.rmem_default)], m);
        let snd: Vec<u32> = self.snd.values().filter(|s| s.queued || s.sent > s.first_sent).map(|s| s.sndbuf).collect();
        counts(&snd, "sock.tcp.snd", "sending", "sndbuf", &[("at_wmem_max", caps.wmem_max.map(|v| v * 2)), ("at_tcp_wmem_max", caps.tcp_wmem_max)], m);
    }
}

fn classify(socks: &HashMap<u64, Rcv>, prefix: &str, caps: &[(&str, Option<u64>)], m: &mut BTreeMap<String, f64>) {
    let rx: Vec<&Rcv> = socks.values().filter(|r| r.receiving()).collect();
    if !counts(&rx.iter().map(|r| r.rcvbuf).collect::<Vec<_>>(), prefix, "receiving", "rcvbuf", caps, m) {
        return;
    }
    m.insert(format!("{prefix}.drops"), rx.iter().map(|r| r.drops.unwrap_or(0).saturating_sub(r.first_drops.unwrap_or(0))).sum::<u32>() as f64);
}

/// `<prefix>.<active>` (how many buffers), `.<cap name>` per cap, `.below_caps` and `.<buf>.max`;
/// false (and nothing written) without any cap to compare with.
fn counts(bufs: &[u32], prefix: &str, active: &str, buf: &str, caps: &[(&str, Option<u64>)], m: &mut BTreeMap<String, f64>) -> bool {
    if caps.iter().all(|(_, c)| c.is_none()) {
        return false;
    }
    m.insert(format!("{prefix}.{active}"), bufs.len() as f64);
    for (name, cap) in caps {
        if let Some(c) = cap {
            m.insert(format!("{prefix}.{name}"), bufs.iter().filter(|b| **b as u64 == *c).count() as f64);
        }
    }
    let below = bufs.iter().filter(|b| !caps.iter().any(|(_, c)| *c == Some(**b as u64))).count();
    m.insert(format!("{prefix}.below_caps"), below as f64);
    m.insert(format!("{prefix}.{buf}.max"), bufs.iter().copied().max().unwrap_or(0) as f64);
    true
}

/// `listen.full*` from listeners as (latest backlog, peak queue), given somaxconn.
pub fn listener_metrics(listeners: &BTreeMap<u16, (u32, u32)>, caps: &BufferCaps, m: &mut BTreeMap<String, f64>) {
    let Some(somax) = caps.somaxconn else { return };
    // Full: the queue reached the backlog (the kernel drops once it passes it).
    let full: Vec<u32> = listeners.values().filter(|(backlog, peak)| *backlog > 0 && peak >= backlog).map(|(b, _)| *b).collect();
    m.insert("listen.full".into(), full.len() as f64);
    // At or above: a backlog set while somaxconn was larger stays until the next listen().
    m.insert("listen.full.at_somaxconn".into(), full.iter().filter(|b| **b as u64 >= somax).count() as f64);
    m.insert("listen.full.below_somaxconn".into(), full.iter().filter(|b| (**b as u64) < somax).count() as f64);
}

#[cfg(test)]
mod tests {
    use super::super::wire::{SkMem, TcpInfo};
    use super::*;

    fn rec(cookie: u64, rcvbuf: u32, rmem: u32, received: u64) -> SockRecord {
        SockRecord {
            state: 1,
            local: "127.0.0.1:5555".parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            cookie,
            inode: 1,
            rqueue: 0,
            wqueue: 0,
            cong: None,
            info: Some(TcpInfo { bytes_received: Some(received), ..Default::default() }),
            skmem: Some(SkMem { rmem_alloc: rmem, rcvbuf, drops: Some(0), ..Default::default() }),
        }
    }

    #[test]
    fn receivers_are_counted_at_the_cap_their_buffer_sits_at() {
        let caps = BufferCaps { rmem_max: Some(4194304), rmem_default: Some(212992), tcp_rmem_max: Some(262144), somaxconn: Some(4096), ..Default::default() };
        let mut r = Receivers::default();
        for (t, got) in [(0, 1000), (1, 9000)] {
            let _ = t;
            // Autotuned to tcp_rmem[2]; locked at 2 × rmem_max; sized below both; idle (not receiving).
            r.observe(&rec(1, 262144, 0, got), false);
            r.observe(&rec(2, 8388608, 5000, 7), false);
            r.observe(&rec(3, 65536, 0, got), false);
            r.observe(&rec(4, 262144, 0, 5), false);
        }
        let mut m = BTreeMap::new();
        r.metrics(&caps, &mut m);
        assert_eq!((m["sock.tcp.rcv.receiving"], m["sock.tcp.rcv.at_tcp_rmem_max"], m["sock.tcp.rcv.at_rmem_max"], m["sock.tcp.rcv.below_caps"]), (3.0, 1.0, 1.0, 1.0));
        assert_eq!(m["sock.tcp.rcv.rcvbuf.max"], 8388608.0);
        // Without caps nothing can be told, so nothing is said.
        let mut none = BTreeMap::new();
        r.metrics(&BufferCaps::default(), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn senders_are_counted_at_the_send_cap_their_buffer_sits_at() {
        let caps = BufferCaps { wmem_max: Some(4194304), tcp_wmem_max: Some(4194304), ..Default::default() };
        let snd = |cookie: u64, sndbuf: u32, queued: u32| SockRecord {
            skmem: Some(SkMem { sndbuf, wmem_queued: queued, ..Default::default() }),
            info: Some(TcpInfo { bytes_sent: Some(0), ..Default::default() }),
            ..rec(cookie, 131072, 0, 0)
        };
        let mut r = Receivers::default();
        r.observe(&snd(1, 4194304, 1000), false);
        r.observe(&snd(2, 8388608, 1000), false);
        r.observe(&snd(3, 16384, 0), false);
        let mut m = BTreeMap::new();
        r.metrics(&caps, &mut m);
        assert_eq!((m["sock.tcp.snd.sending"], m["sock.tcp.snd.at_tcp_wmem_max"], m["sock.tcp.snd.at_wmem_max"], m["sock.tcp.snd.below_caps"]), (2.0, 1.0, 1.0, 0.0));
    }

    #[test]
    fn a_full_listener_is_told_clamped_by_somaxconn_from_one_with_its_own_small_backlog() {
        let caps = BufferCaps { somaxconn: Some(4096), ..Default::default() };
        let listeners = BTreeMap::from([(80, (4096, 4097)), (8080, (16, 17)), (22, (128, 0))]);
        let mut m = BTreeMap::new();
        listener_metrics(&listeners, &caps, &mut m);
        assert_eq!((m["listen.full"], m["listen.full.at_somaxconn"], m["listen.full.below_somaxconn"]), (2.0, 1.0, 1.0));
    }
}
