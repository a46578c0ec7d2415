//! The few socket operations `std::net` does not offer: a listener with an
//! explicit backlog (std picks its own), a per-socket congestion control
//! (`TCP_CONGESTION`), a non-blocking connect, and shutting a listener down
//! so that threads blocked in `accept` return. Everything else uses
//! `std::net` types built from these descriptors.

use anyhow::{Result, bail};
use std::io;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn last(what: &str, addr: SocketAddrV4) -> anyhow::Error {
    anyhow::anyhow!("{what} {addr}: {}", io::Error::last_os_error())
}

/// A new IPv4 TCP socket (close-on-exec), optionally non-blocking.
fn tcp_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket(2); checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, flags, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip().octets()) },
        sin_zero: [0; 8],
    }
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a valid int of the stated size.
    let r = unsafe { libc::setsockopt(fd, level, opt, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Chooses the congestion control of one socket (a listener passes it to the sockets it accepts).
///
/// In a child namespace this works for algorithms outside
/// `tcp_allowed_congestion_control` too, given CAP_NET_ADMIN, where making it
/// the namespace default does not (EPERM).
pub fn set_congestion(fd: RawFd, name: &str) -> Result<()> {
    // SAFETY: passes a buffer of the stated length.
    let r = unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, name.as_ptr().cast(), name.len() as libc::socklen_t) };
    if r < 0 {
        bail!("setsockopt TCP_CONGESTION {name:?}: {} (is tcp_{name} available? see /proc/sys/net/ipv4/tcp_available_congestion_control)", io::Error::last_os_error());
    }
    Ok(())
}

/// The congestion control a socket uses.
pub fn congestion_of(fd: RawFd) -> Option<String> {
    let mut buf = [0u8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buffer and length describe our local array.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, buf.as_mut_ptr().cast(), &mut len) };
    if r < 0 {
        return None;
    }
    let s = &buf[..len as usize];
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// A listener on `addr` with `listen(backlog)` (the kernel caps it at the
/// namespace's `somaxconn` at this moment) and, if given, congestion control `cc`.
pub fn listen(addr: SocketAddrV4, backlog: i32, cc: Option<&str>) -> Result<TcpListener> {
    let fd = tcp_socket(false).map_err(|e| anyhow::anyhow!("socket for {addr}: {e}"))?;
    setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(|e| anyhow::anyhow!("SO_REUSEADDR on {addr}: {e}"))?;
    if let Some(cc) = cc {
        set_congestion(fd.as_raw_fd(), cc)?;
    }
    let sa = sockaddr(addr);
    // SAFETY: a valid sockaddr_in of the stated size.
    if unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t) } < 0 {
        return Err(last("bind", addr));
    }
    // SAFETY: listen(2) on our socket.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        return Err(last("listen", addr));
    }
    Ok(TcpListener::from(fd))
}

/// A blocking connection to `addr` using congestion control `cc`, if given.
pub fn connect(addr: SocketAddrV4, cc: Option<&str>) -> Result<TcpStream> {
    let fd = tcp_socket(false).map_err(|e| anyhow::anyhow!("socket for {addr}: {e}"))?;
    if let Some(cc) = cc {
        set_congestion(fd.as_raw_fd(), cc)?;
    }
    let sa = sockaddr(addr);
    // SAFETY: a valid sockaddr_in of the stated size.
    if unsafe { libc::connect(fd.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t) } < 0 {
        return Err(last("connect", addr));
    }
    Ok(TcpStream::from(fd))
}

/// Starts a non-blocking connect; the socket becomes writable when it completes (check `SO_ERROR`).
pub fn connect_nonblocking(addr: SocketAddrV4) -> io::Result<OwnedFd> {
    let fd = tcp_socket(true)?;
    let sa = sockaddr(addr);
    // SAFETY: a valid sockaddr_in of the stated size.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(fd)
}

/// The pending error of a socket (`SO_ERROR`), 0 when none.
pub fn socket_error(fd: RawFd) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: an int and its length.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut v as *mut i32).cast(), &mut len) };
    if r < 0 { io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) } else { v }
}

/// Turns Nagle off (request/response traffic).
pub fn nodelay(fd: RawFd) -> Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1).map_err(|e| anyhow::anyhow!("TCP_NODELAY: {e}"))
}

/// Shuts a listener down: every thread blocked in `accept` on it returns an error.
pub fn shutdown_listener(l: &TcpListener) {
    // SAFETY: shutdown(2) on a descriptor the listener owns.
    unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Runs `bursts` bursts, each started `gap` after the previous one began (no wait after the
/// last); `burst(index, started)` runs one and adds its samples.
pub fn in_bursts(bursts: usize, gap: std::time::Duration, mut burst: impl FnMut(usize, std::time::Instant) -> Result<()>) -> Result<()> {
    for b in 0..bursts {
        let start = std::time::Instant::now();
        burst(b, start)?;
        if b + 1 < bursts
            && let Some(rest) = gap.checked_sub(start.elapsed())
        {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}

/// Raises this process's open-file soft limit to its hard limit (bursts of
/// hundreds of sockets); a process-local setting, nothing global changes.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
