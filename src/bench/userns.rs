//! A throwaway user namespace holding one inotify instance. Since 5.11 the
//! inotify limits are ucounts: each user namespace has its own
//! `/proc/sys/user/max_inotify_watches` and `max_inotify_instances`
//! (a fresh one starts at INT_MAX), writable by the namespace's root, and a
//! watch is charged to the namespace the instance was created in and to
//! every ancestor. So a small limit set inside a child namespace binds the
//! watcher there while the host's `fs.inotify.*` stay as they are
//! (verified on 6.18: a child set to 100 fails the 101st
//! `inotify_add_watch` with ENOSPC, the host still reads 192540).
//!
//! A multithreaded process may not `unshare(CLONE_NEWUSER)`, so a forked
//! child does it: it writes the limits, creates the instance and waits; the
//! bench takes a copy of the instance's descriptor with `pidfd_getfd` and
//! kills the child. The watches the bench then adds are charged to the
//! child's namespace. Between fork and its end the child only makes raw
//! system calls on memory prepared before the fork (no allocation, no lock).

use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How the child failed: stage codes written to the shared page.
const STAGES: [&str; 5] = ["", "unshare(CLONE_NEWUSER)", "opening a limit file of the new user namespace", "writing a limit of the new user namespace", "inotify_init1"];

/// An anonymous shared page the child reports through: `[fd + 1 or -stage, errno]`.
struct Shared(*mut AtomicI64);

impl Shared {
    fn new() -> Result<Shared> {
        // SAFETY: a fresh anonymous shared mapping; checked for MAP_FAILED.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
        if p == libc::MAP_FAILED {
            bail!("mmap of a shared page for the user-namespace child: {}", std::io::Error::last_os_error());
        }
        Ok(Shared(p.cast()))
    }

    fn slot(&self, i: usize) -> &AtomicI64 {
        // SAFETY: the page holds 512 zero-initialised i64 slots; i < 2.
        unsafe { &*self.0.add(i) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

/// The child's side: never returns. Only raw system calls on prepared memory.
unsafe fn child(limits: &[(CString, Vec<u8>)], sh: &Shared) -> ! {
    let fail = |stage: i64| -> ! {
        sh.slot(1).store(i64::from(unsafe { *libc::__errno_location() }), Ordering::SeqCst);
        sh.slot(0).store(-stage, Ordering::SeqCst);
        unsafe { libc::_exit(1) }
    };
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            fail(1);
        }
        for (path, value) in limits {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                fail(2);
            }
            if libc::write(fd, value.as_ptr().cast(), value.len()) != value.len() as isize {
                fail(3);
            }
            libc::close(fd);
        }
        let ifd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        if ifd < 0 {
            fail(4);
        }
        sh.slot(0).store(i64::from(ifd) + 1, Ordering::SeqCst);
        loop {
            libc::pause();
        }
    }
}

/// An inotify instance created in a fresh user namespace whose `/proc/sys/<file>` are set to the given values
/// (`("user/max_inotify_watches", "8192")`); the namespace lives as long as the descriptor.
pub fn inotify_in_fresh_userns(limits: &[(&str, String)]) -> Result<OwnedFd> {
    let prepared: Vec<(CString, Vec<u8>)> = limits
        .iter()
        .map(|(file, v)| Ok((CString::new(format!("/proc/sys/{file}")).context("limit file name")?, format!("{}\n", v.trim()).into_bytes())))
        .collect::<Result<_>>()?;
    let sh = Shared::new()?;
    // SAFETY: the child runs `child` only (raw system calls on memory prepared above) and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork for the user-namespace child: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe { child(&prepared, &sh) }
    }
    let reap = |kill: bool| {
        // SAFETY: our own child.
        unsafe {
            if kill {
                libc::kill(pid, libc::SIGKILL);
            }
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let s = sh.slot(0).load(Ordering::SeqCst);
        if s != 0 {
            break s;
        }
        if Instant::now() > deadline {
            reap(true);
            bail!("the user-namespace child did not set up its inotify instance within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if state < 0 {
        reap(false);
        let errno = std::io::Error::from_raw_os_error(sh.slot(1).load(Ordering::SeqCst) as i32);
        let what = STAGES.get((-state) as usize).copied().unwrap_or("?");
        bail!(
            "creating a throwaway user namespace for the inotify watcher: {what} failed: {errno} (the kernel needs CONFIG_USER_NS and user.max_user_namespaces > 0; limits {limits:?}); nothing on the host was changed"
        );
    }
    let got = (|| -> Result<OwnedFd> {
        // SAFETY: pidfd_open and pidfd_getfd on our own live child; results checked.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd < 0 {
            bail!("pidfd_open of the user-namespace child: {}", std::io::Error::last_os_error());
        }
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, std::os::fd::AsRawFd::as_raw_fd(&pidfd), state - 1, 0) };
        if fd < 0 {
            bail!("pidfd_getfd of the child's inotify descriptor: {}", std::io::Error::last_os_error());
        }
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    })();
    reap(true);
    got
}
