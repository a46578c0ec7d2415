//! A userspace link emulator for kernels without `sch_netem`: one TUN device
//! in each of two namespaces and a thread relaying IP packets between them
//! with a fixed one-way delay, a bottleneck rate and a byte-limited
//! drop-tail queue. It is the Rust form of the reference `tundelay.c`.
//!
//! The model, per direction: a packet that arrives while the bottleneck is
//! still serialising earlier ones waits behind them; if the bytes already
//! waiting exceed the queue limit it is dropped (drop-tail); otherwise it
//! leaves the bottleneck when its own serialisation ends and is delivered one
//! delay later. Packets are held in a preallocated ring of 2 KiB slots
//! (pages are touched only when used), so the relay allocates nothing per
//! packet.

use super::netns::Netns;
use anyhow::{Result, bail};
use serde::Serialize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest packet the relay carries (the devices run MTU 1500).
const SLOT: usize = 2048;
/// Ring size per direction: well above the packets one delay plus one full queue can hold at 1 Gbit/s.
const NSLOTS: usize = 1 << 15;
/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Shape of the emulated path, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkShape {
    /// One-way delay, milliseconds (the RTT is twice this).
    pub delay_ms: f64,
    /// Bottleneck rate, Mbit/s (0: no bottleneck).
    pub rate_mbit: f64,
    /// Bottleneck queue, bytes (drop-tail).
    pub queue_bytes: u64,
}

impl LinkShape {
    /// A path of `delay_ms` one way and `rate_mbit`, with a queue of `queue_bdp` bandwidth-delay products.
    pub fn new(delay_ms: f64, rate_mbit: f64, queue_bdp: f64) -> Self {
        let bdp = rate_mbit * 1e6 / 8.0 * (2.0 * delay_ms / 1000.0);
        Self { delay_ms, rate_mbit, queue_bytes: (bdp * queue_bdp) as u64 }
    }

    /// The path's bandwidth-delay product, bytes.
    pub fn bdp_bytes(&self) -> f64 {
        self.rate_mbit * 1e6 / 8.0 * (2.0 * self.delay_ms / 1000.0)
    }
}

/// What the relay did, per direction (0: first namespace → second).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelayStats {
    /// Packets delivered.
    pub forwarded: [u64; 2],
    /// Packets dropped at the full bottleneck queue.
    pub dropped_queue: [u64; 2],
    /// Packets dropped because the ring was full.
    pub dropped_ring: [u64; 2],
}

/// Creates TUN device `dev` inside `ns` (the device lives as long as the descriptor).
fn open_tun(ns: &Netns, dev: &str) -> Result<OwnedFd> {
    if dev.is_empty() || dev.len() > 15 {
        bail!("netns {}: TUN device name {dev:?} must be 1 to 15 characters", ns.name());
    }
    ns.run(|| {
        // SAFETY: open(2) of a fixed path; the result is checked.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd < 0 {
            bail!("netns {}: opening /dev/net/tun failed: {} (the kernel needs CONFIG_TUN)", ns.name(), std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // struct ifreq: 16 bytes of name, then the union whose first member is ifr_flags.
        let mut ifr = [0u8; 40];
        ifr[..dev.len()].copy_from_slice(dev.as_bytes());
        ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is laid out as.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } < 0 {
            bail!("netns {}: TUNSETIFF {dev} failed: {}", ns.name(), std::io::Error::last_os_error());
        }
        Ok(fd)
    })
}

/// One direction's delay line.
struct Dir {
    inp: RawFd,
    out: RawFd,
    buf: Vec<u8>,
    due: Vec<u64>,
    len: Vec<u32>,
    head: usize,
    tail: usize,
    /// When the bottleneck finishes serialising the last accepted packet, ns.
    busy_until: u64,
}

impl Dir {
    fn new(inp: RawFd, out: RawFd) -> Self {
        Self { inp, out, buf: vec![0u8; NSLOTS * SLOT], due: vec![0; NSLOTS], len: vec![0; NSLOTS], head: 0, tail: 0, busy_until: 0 }
    }

    fn next_due(&self) -> Option<u64> {
        (self.head != self.tail).then(|| self.due[self.head % NSLOTS])
    }

    /// Reads what the device has queued (up to a bound, to stay fair to the other direction).
    fn rx(&mut self, now: u64, shape: &LinkShape, i: usize, st: &mut RelayStats) {
        let delay_ns = (shape.delay_ms * 1e6) as u64;
        let bps = shape.rate_mbit * 1e6;
        for _ in 0..256 {
            let idx = self.tail % NSLOTS;
            if self.tail - self.head >= NSLOTS {
                let mut tmp = [0u8; SLOT];
                // SAFETY: read into a local buffer of SLOT bytes.
                if unsafe { libc::read(self.inp, tmp.as_mut_ptr().cast(), SLOT) } <= 0 {
                    return;
                }
                st.dropped_ring[i] += 1;
                continue;
            }
            let slot = &mut self.buf[idx * SLOT..(idx + 1) * SLOT];
            // SAFETY: read into our own slot of SLOT bytes.
            let n = unsafe { libc::read(self.inp, slot.as_mut_ptr().cast(), SLOT) };
            if n <= 0 {
                return;
            }
            let mut leave = now;
            if bps > 0.0 {
                let start = self.busy_until.max(now);
                let waiting = ((start - now) as f64 * bps / 8e9) as u64;
                if waiting > shape.queue_bytes {
                    st.dropped_queue[i] += 1;
                    continue;
                }
                self.busy_until = start + (n as f64 * 8e9 / bps) as u64;
                leave = self.busy_until;
            }
            self.due[idx] = leave + delay_ns;
            self.len[idx] = n as u32;
            self.tail += 1;
        }
    }

    /// Delivers every packet whose time has come.
    fn tx(&mut self, now: u64, i: usize, st: &mut RelayStats) {
        while self.head != self.tail {
            let idx = self.head % NSLOTS;
            if self.due[idx] > now {
                break;
            }
            let pkt = &self.buf[idx * SLOT..idx * SLOT + self.len[idx] as usize];
            // SAFETY: write of our own slot.
            let r = unsafe { libc::write(self.out, pkt.as_ptr().cast(), pkt.len()) };
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
                break;
            }
            st.forwarded[i] += 1;
            self.head += 1;
        }
    }
}

/// A running relay; stops (and its devices disappear) on `stop` or drop.
pub struct Relay {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<RelayStats>>,
}

impl Relay {
    /// Creates `dev_a` in `a` and `dev_b` in `b` and starts relaying. The
    /// devices exist when this returns; the caller gives them addresses and
    /// brings them up.
    pub fn start(a: &Netns, dev_a: &str, b: &Netns, dev_b: &str, shape: LinkShape) -> Result<Relay> {
        let fa = open_tun(a, dev_a)?;
        let fb = open_tun(b, dev_b)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("tun-relay".into()).spawn(move || relay_loop(fa, fb, shape, &flag))?;
        Ok(Relay { stop, handle: Some(handle) })
    }

    /// Stops the relay and returns its counters.
    pub fn stop(mut self) -> RelayStats {
        self.finish()
    }

    fn finish(&mut self) -> RelayStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish();
    }
}

fn relay_loop(fa: OwnedFd, fb: OwnedFd, shape: LinkShape, stop: &AtomicBool) -> RelayStats {
    let base = Instant::now();
    let now = || base.elapsed().as_nanos() as u64;
    let mut st = RelayStats::default();
    let mut dirs = [Dir::new(fa.as_raw_fd(), fb.as_raw_fd()), Dir::new(fb.as_raw_fd(), fa.as_raw_fd())];
    let mut pfd = [libc::pollfd { fd: fa.as_raw_fd(), events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: fb.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // Sleep at most this long, so a stop request is seen promptly.
    let max_sleep = Duration::from_millis(20).as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        let t = now();
        let next = dirs.iter().filter_map(Dir::next_due).fold(t + max_sleep, u64::min);
        let wait = next.saturating_sub(t);
        let ts = libc::timespec { tv_sec: (wait / 1_000_000_000) as libc::time_t, tv_nsec: (wait % 1_000_000_000) as libc::c_long };
        for p in &mut pfd {
            p.revents = 0;
        }
        // SAFETY: two valid pollfds and a valid timeout; no signal mask change.
        let r = unsafe { libc::ppoll(pfd.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        let t = now();
        for i in 0..2 {
            if pfd[i].revents & libc::POLLIN != 0 {
                dirs[i].rx(t, &shape, i, &mut st);
            }
        }
        let t = now();
        for (i, d) in dirs.iter_mut().enumerate() {
            d.tx(t, i, &mut st);
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_limit_is_one_bdp_by_default() {
        let s = LinkShape::new(50.0, 500.0, 1.0);
        assert_eq!(s.bdp_bytes(), 6_250_000.0);
        assert_eq!(s.queue_bytes, 6_250_000);
    }

    #[test]
    fn packets_wait_for_the_bottleneck_and_the_delay_and_overflow_is_dropped() {
        // A pipe stands in for the TUN device: each write is one packet.
        let mut fds = [0; 2];
        let mut out = [0; 2];
        // SAFETY: pipe2 fills two descriptors we close below.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK), 0);
            assert_eq!(libc::pipe2(out.as_mut_ptr(), libc::O_NONBLOCK), 0);
        }
        // 8 Mbit/s: 1000 bytes take 1 ms; queue 1500 bytes; delay 10 ms.
        let shape = LinkShape { delay_ms: 10.0, rate_mbit: 8.0, queue_bytes: 1500 };
        let mut d = Dir::new(fds[0], out[1]);
        let mut st = RelayStats::default();
        for _ in 0..4 {
            // SAFETY: write of a local buffer into our pipe.
            unsafe { libc::write(fds[1], [7u8; 1000].as_ptr().cast(), 1000) };
            d.rx(0, &shape, 0, &mut st);
        }
        // The second packet waits 1000 bytes behind the first; the third and fourth find 2000 and 3000 waiting, above the limit.
        assert_eq!(d.tail, 2);
        assert_eq!(st.dropped_queue[0], 2);
        assert_eq!((d.due[0], d.due[1]), (11_000_000, 12_000_000));
        d.tx(5_000_000, 0, &mut st);
        assert_eq!(st.forwarded[0], 0, "nothing leaves before its delay");
        d.tx(11_500_000, 0, &mut st);
        assert_eq!(st.forwarded[0], 1);
        d.tx(100_000_000, 0, &mut st);
        assert_eq!(st.forwarded[0], 2);
        // SAFETY: closing descriptors we opened.
        unsafe {
            for fd in fds.into_iter().chain(out) {
                libc::close(fd);
            }
        }
    }
}
