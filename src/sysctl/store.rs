//! Sysctl stores: the one edge of the pipeline that writes to the world.
//!
//! `TreeStore` reads and writes a directory laid out like `/proc/sys`: the
//! real one (kernel mode: one `write()` of the whole value at offset 0, no
//! truncation, no creation) or a sandbox copy (sandbox mode: files are
//! truncated and rewritten, symlinks refused). `MemStore` is an in-memory
//! double, `GuardedStore` re-checks the whitelist at the moment of writing and
//! `FaultyStore` injects the failures the transaction tests need.

use super::key::SysctlKey;
use super::value::Value;
use crate::apply::token::WriteToken;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Failure of a store operation; always names the key and, when there is one, the path and errno.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key}: not present in {store} (no such key on this kernel or tree)")]
    NotFound { key: SysctlKey, store: String },
    #[error("{key}: {op} {path} failed: {source} (errno {errno})", errno = errno_name(.source))]
    Io { key: SysctlKey, op: &'static str, path: PathBuf, source: io::Error },
    #[error("{key}: short write to {path}: {written} of {len} bytes; the kernel ignores a second write, so the value is not set")]
    ShortWrite { key: SysctlKey, path: PathBuf, written: usize, len: usize },
    #[error("{key}: refused by the store: {reason}")]
    Refused { key: SysctlKey, reason: String },
    #[error("listing {path}: {source}")]
    List { path: PathBuf, source: io::Error },
}

impl StoreError {
    /// The OS error number behind this failure, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            StoreError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Symbolic name of an I/O error's errno (`EINVAL`), or `-` when it has none.
pub fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_symbol(n).map(str::to_string).unwrap_or_else(|| n.to_string()),
        None => "-".to_string(),
    }
}

/// Symbolic name for the errnos a sysctl write can return.
pub fn errno_symbol(n: i32) -> Option<&'static str> {
    Some(match n {
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBUSY => "EBUSY",
        libc::ERANGE => "ERANGE",
        libc::EROFS => "EROFS",
        libc::ELOOP => "ELOOP",
        libc::ENOSPC => "ENOSPC",
        _ => return None,
    })
}

/// Parses an errno symbol (`EIO`) back into its number; used by fault injection.
pub fn errno_from_symbol(s: &str) -> Option<i32> {
    [libc::EINVAL, libc::EPERM, libc::EACCES, libc::ENOENT, libc::EIO, libc::EBUSY, libc::ERANGE, libc::EROFS, libc::ENOSPC]
        .into_iter()
        .find(|n| errno_symbol(*n) == Some(s))
}

/// Read, write and list sysctl keys somewhere.
pub trait SysctlStore {
    /// Human description for logs and backups (`/proc/sys`, `sandbox:experiments/sandbox/proc_sys`).
    fn describe(&self) -> String;
    /// Reads the current value.
    fn read(&self, key: &SysctlKey) -> Result<Value, StoreError>;
    /// Writes the whole value in one operation; only the apply path holds a `WriteToken`.
    fn write(&self, token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError>;
    /// Whether the key exists here.
    fn exists(&self, key: &SysctlKey) -> bool;
    /// Whether the key exists and its mode allows writing.
    fn writable(&self, key: &SysctlKey) -> bool;
    /// Every key present, sorted.
    fn list(&self) -> Result<Vec<SysctlKey>, StoreError>;
}

/// How a `TreeStore` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeMode {
    /// The kernel's `/proc/sys`: never create or truncate; one write at offset 0.
    Kernel,
    /// A plain directory tree: truncate and rewrite, refuse symlinks.
    Sandbox,
}

/// A sysctl tree rooted at a directory (`/proc/sys` or a sandbox).
#[derive(Debug, Clone)]
pub struct TreeStore {
    root: PathBuf,
    mode: TreeMode,
}

impl TreeStore {
    /// The live kernel's `/proc/sys`.
    pub fn kernel() -> Self {
        Self { root: PathBuf::from("/proc/sys"), mode: TreeMode::Kernel }
    }

    /// A tree at `root` written the way the kernel is written (for a `/proc/sys` seen through another mount).
    pub fn kernel_at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), mode: TreeMode::Kernel }
    }

    /// A sandbox tree at `root` (a plain directory with one file per key).
    pub fn sandbox(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), mode: TreeMode::Sandbox }
    }

    /// The directory this store reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &SysctlKey) -> PathBuf {
        self.root.join(key.rel_path())
    }

    /// Creates (or overwrites) a key file in a sandbox tree; used to seed sandboxes. A kernel-mode
    /// tree is refused: seeding is creation, not a way around the apply path's write token.
    pub fn seed(&self, key: &SysctlKey, value: &Value) -> io::Result<()> {
        let path = self.path(key);
        if self.mode == TreeMode::Kernel {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{key}: refusing to seed {} in the kernel-mode tree {}; only a sandbox tree (TreeStore::sandbox) is seeded, and a kernel tree is written by apply", path.display(), self.root.display()),
            ));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, format!("{value}\n"))
    }
}

impl SysctlStore for TreeStore {
    fn describe(&self) -> String {
        match self.mode {
            TreeMode::Kernel => self.root.display().to_string(),
            TreeMode::Sandbox => format!("sandbox:{}", self.root.display()),
        }
    }

    fn read(&self, key: &SysctlKey) -> Result<Value, StoreError> {
        let path = self.path(key);
        let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound { key: key.clone(), store: self.describe() }
            } else {
                StoreError::Io { key: key.clone(), op: "open", path: path.clone(), source: e }
            }
        })?;
        let mut buf = Vec::new();
        let n = read_whole(&f, &mut buf).map_err(|e| StoreError::Io { key: key.clone(), op: "read", path: path.clone(), source: e })?;
        Ok(Value::from_kernel(&String::from_utf8_lossy(&buf[..n])))
    }

    fn write(&self, _token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError> {
        let path = self.path(key);
        let mut opts = OpenOptions::new();
        opts.write(true).custom_flags(libc::O_NOFOLLOW);
        let payload = match self.mode {
            TreeMode::Kernel => value.as_str().to_string(),
            TreeMode::Sandbox => {
                opts.truncate(true);
                format!("{value}\n")
            }
        };
        let mut f: File = opts.open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound { key: key.clone(), store: self.describe() }
            } else {
                StoreError::Io { key: key.clone(), op: "open for writing", path: path.clone(), source: e }
            }
        })?;
        // One write() of the whole value: a second write at an offset is silently ignored by the kernel.
        let n = f.write(payload.as_bytes()).map_err(|e| StoreError::Io { key: key.clone(), op: "write", path: path.clone(), source: e })?;
        if n != payload.len() {
            return Err(StoreError::ShortWrite { key: key.clone(), path, written: n, len: payload.len() });
        }
        if self.mode == TreeMode::Sandbox {
            f.sync_data().map_err(|e| StoreError::Io { key: key.clone(), op: "fsync", path, source: e })?;
        }
        Ok(())
    }

    fn exists(&self, key: &SysctlKey) -> bool {
        std::fs::symlink_metadata(self.path(key)).map(|m| m.is_file()).unwrap_or(false)
    }

    fn writable(&self, key: &SysctlKey) -> bool {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::symlink_metadata(self.path(key)) {
            Ok(m) if m.is_file() => m.permissions().mode() & 0o222 != 0,
            _ => false,
        }
    }

    fn list(&self) -> Result<Vec<SysctlKey>, StoreError> {
        let mut out = Vec::new();
        walk(&self.root, &mut Vec::new(), &mut out).map_err(|e| StoreError::List { path: self.root.clone(), source: e })?;
        out.sort();
        Ok(out)
    }
}

/// Reads a kernel file's whole text into `buf` (grown as needed, reused by the caller) and returns
/// its length, always from offset 0. The kernel formats an integer or bitmap sysctl on the first
/// read and answers a read at a later offset with end-of-file, so reading on in chunks would
/// silently cut a value longer than the first chunk (an `ip_local_reserved_ports` list can run to
/// tens of kilobytes): a read that fills the buffer is repeated from offset 0 with a buffer twice
/// the size. The kernel zeroes a buffer the size of each request, so the first is small.
pub fn read_whole(f: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    loop {
        let n = match f.read_at(buf, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if n < buf.len() {
            return Ok(n);
        }
        let doubled = buf.len() * 2;
        buf.resize(doubled, 0);
    }
}

fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<SysctlKey>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type()?;
        prefix.push(name);
        if ft.is_dir() {
            walk(&entry.path(), prefix, out)?;
        } else if ft.is_file() {
            // Names the key grammar refuses (none on real kernels) are skipped, not fatal.
            if let Ok(k) = SysctlKey::from_components(prefix.iter().cloned()) {
                out.push(k);
            }
        }
        prefix.pop();
    }
    Ok(())
}

/// An in-memory store for tests and simulations.
#[derive(Debug, Default)]
pub struct MemStore {
    values: Mutex<BTreeMap<SysctlKey, Value>>,
    read_only: Vec<SysctlKey>,
}

impl MemStore {
    /// A store holding `values`.
    pub fn new(values: impl IntoIterator<Item = (SysctlKey, Value)>) -> Self {
        Self { values: Mutex::new(values.into_iter().collect()), read_only: Vec::new() }
    }

    /// Marks `key` read-only (writes fail with EACCES, as a 0444 netns mirror does).
    pub fn with_read_only(mut self, key: SysctlKey) -> Self {
        self.read_only.push(key);
        self
    }

    /// A copy of every value.
    pub fn dump(&self) -> BTreeMap<SysctlKey, Value> {
        self.values.lock().unwrap().clone()
    }
}

impl SysctlStore for MemStore {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn read(&self, key: &SysctlKey) -> Result<Value, StoreError> {
        self.values.lock().unwrap().get(key).cloned().ok_or_else(|| StoreError::NotFound { key: key.clone(), store: self.describe() })
    }
    fn write(&self, _token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError> {
        if self.read_only.contains(key) {
            return Err(StoreError::Io { key: key.clone(), op: "open for writing", path: key.rel_path(), source: io::Error::from_raw_os_error(libc::EACCES) });
        }
        let mut m = self.values.lock().unwrap();
        match m.get_mut(key) {
            Some(v) => {
                *v = value.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound { key: key.clone(), store: "memory".into() }),
        }
    }
    fn exists(&self, key: &SysctlKey) -> bool {
        self.values.lock().unwrap().contains_key(key)
    }
    fn writable(&self, key: &SysctlKey) -> bool {
        self.exists(key) && !self.read_only.contains(key)
    }
    fn list(&self) -> Result<Vec<SysctlKey>, StoreError> {
        Ok(self.values.lock().unwrap().keys().cloned().collect())
    }
}

/// The write-time check of a `GuardedStore`: `Err(why)` refuses the key.
pub type KeyCheck = Box<dyn Fn(&SysctlKey) -> Result<(), String> + Send + Sync>;

/// A store that refuses, at the moment of writing, every key its whitelist does not allow.
pub struct GuardedStore<S> {
    inner: S,
    allowed: KeyCheck,
}

impl<S: SysctlStore> GuardedStore<S> {
    /// Wraps `inner`; `allowed` returns the refusal reason for a key it does not accept.
    pub fn new(inner: S, allowed: impl Fn(&SysctlKey) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self { inner, allowed: Box::new(allowed) }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: SysctlStore> SysctlStore for GuardedStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read(&self, key: &SysctlKey) -> Result<Value, StoreError> {
        self.inner.read(key)
    }
    fn write(&self, token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError> {
        (self.allowed)(key).map_err(|reason| StoreError::Refused { key: key.clone(), reason })?;
        self.inner.write(token, key, value)
    }
    fn exists(&self, key: &SysctlKey) -> bool {
        self.inner.exists(key)
    }
    fn writable(&self, key: &SysctlKey) -> bool {
        self.inner.writable(key)
    }
    fn list(&self) -> Result<Vec<SysctlKey>, StoreError> {
        self.inner.list()
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The Nth write (1-based, counting every write including rollback writes) fails with this errno.
    FailWrite { nth: usize, errno: i32 },
    /// Writes to this key fail with this errno.
    FailKey { key: SysctlKey, errno: i32 },
    /// After a write to this key succeeds, reads return this value instead (a read-back mismatch).
    Mismatch { key: SysctlKey, value: Value },
    /// The process is killed with SIGKILL just before the Nth write.
    KillBeforeWrite { nth: usize },
    /// The process is killed with SIGKILL just after the Nth write.
    KillAfterWrite { nth: usize },
}

impl Fault {
    /// Parses the `SEMANTOS_FAULT` syntax: `write#N:ERRNO`, `key:KEY:ERRNO`, `mismatch:KEY:VALUE`, `kill-before#N`, `kill-after#N`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let bad = || format!("fault {spec:?}: expected write#N:ERRNO, key:KEY:ERRNO, mismatch:KEY:VALUE, kill-before#N or kill-after#N");
        let errno = |s: &str| errno_from_symbol(s).ok_or_else(|| format!("fault {spec:?}: unknown errno {s:?} (EINVAL, EPERM, EACCES, EIO, ...)"));
        let nth = |s: &str| s.parse::<usize>().map_err(|_| bad());
        if let Some(rest) = spec.strip_prefix("write#") {
            let (n, e) = rest.split_once(':').ok_or_else(bad)?;
            return Ok(Fault::FailWrite { nth: nth(n)?, errno: errno(e)? });
        }
        if let Some(rest) = spec.strip_prefix("key:") {
            let (k, e) = rest.rsplit_once(':').ok_or_else(bad)?;
            return Ok(Fault::FailKey { key: SysctlKey::parse(k).map_err(|e| e.to_string())?, errno: errno(e)? });
        }
        if let Some(rest) = spec.strip_prefix("mismatch:") {
            let (k, v) = rest.split_once(':').ok_or_else(bad)?;
            return Ok(Fault::Mismatch { key: SysctlKey::parse(k).map_err(|e| e.to_string())?, value: Value::from_kernel(v) });
        }
        if let Some(n) = spec.strip_prefix("kill-before#") {
            return Ok(Fault::KillBeforeWrite { nth: nth(n)? });
        }
        if let Some(n) = spec.strip_prefix("kill-after#") {
            return Ok(Fault::KillAfterWrite { nth: nth(n)? });
        }
        Err(bad())
    }
}

/// A store wrapper that injects faults (tests, and the `SEMANTOS_FAULT` hook of a binary built with the `fault-injection` feature).
pub struct FaultyStore<S> {
    inner: S,
    faults: Vec<Fault>,
    writes: Mutex<usize>,
    mismatched: Mutex<BTreeMap<SysctlKey, Value>>,
}

impl<S: SysctlStore> FaultyStore<S> {
    /// Wraps `inner` with `faults`.
    pub fn new(inner: S, faults: Vec<Fault>) -> Self {
        Self { inner, faults, writes: Mutex::new(0), mismatched: Mutex::new(BTreeMap::new()) }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn kill_self() -> ! {
    // SAFETY: raising a signal on our own process has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    unreachable!("SIGKILL returned")
}

impl<S: SysctlStore> SysctlStore for FaultyStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read(&self, key: &SysctlKey) -> Result<Value, StoreError> {
        if let Some(v) = self.mismatched.lock().unwrap().get(key) {
            return Ok(v.clone());
        }
        self.inner.read(key)
    }
    fn write(&self, token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError> {
        let n = {
            let mut w = self.writes.lock().unwrap();
            *w += 1;
            *w
        };
        let fail = |errno: i32| StoreError::Io { key: key.clone(), op: "write", path: key.rel_path(), source: io::Error::from_raw_os_error(errno) };
        for f in &self.faults {
            match f {
                Fault::FailWrite { nth, errno } if *nth == n => return Err(fail(*errno)),
                Fault::FailKey { key: k, errno } if k == key => return Err(fail(*errno)),
                Fault::KillBeforeWrite { nth } if *nth == n => kill_self(),
                _ => {}
            }
        }
        self.inner.write(token, key, value)?;
        self.mismatched.lock().unwrap().remove(key);
        for f in &self.faults {
            match f {
                Fault::Mismatch { key: k, value: v } if k == key && v != value => {
                    self.mismatched.lock().unwrap().insert(key.clone(), v.clone());
                }
                Fault::KillAfterWrite { nth } if *nth == n => kill_self(),
                _ => {}
            }
        }
        Ok(())
    }
    fn exists(&self, key: &SysctlKey) -> bool {
        self.inner.exists(key)
    }
    fn writable(&self, key: &SysctlKey) -> bool {
        self.inner.writable(key)
    }
    fn list(&self) -> Result<Vec<SysctlKey>, StoreError> {
        self.inner.list()
    }
}

/// Stores behind references and boxes are stores: one delegation, written once.
macro_rules! delegate_store {
    ($($t:ty),*) => {$(
        impl<S: SysctlStore + ?Sized> SysctlStore for $t {
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn read(&self, key: &SysctlKey) -> Result<Value, StoreError> {
                (**self).read(key)
            }
            fn write(&self, token: &WriteToken, key: &SysctlKey, value: &Value) -> Result<(), StoreError> {
                (**self).write(token, key, value)
            }
            fn exists(&self, key: &SysctlKey) -> bool {
                (**self).exists(key)
            }
            fn writable(&self, key: &SysctlKey) -> bool {
                (**self).writable(key)
            }
            fn list(&self) -> Result<Vec<SysctlKey>, StoreError> {
                (**self).list()
            }
        }
    )*};
}

delegate_store!(&S, Box<S>);

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> SysctlKey {
        SysctlKey::parse(s).unwrap()
    }

    #[test]
    fn sandbox_tree_round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TreeStore::sandbox(dir.path());
        store.seed(&k("vm.swappiness"), &Value::int(60)).unwrap();
        store.seed(&k("net.ipv4.tcp_rmem"), &Value::from_ints(&[4096, 131072, 6291456])).unwrap();
        assert_eq!(store.read(&k("vm.swappiness")).unwrap().as_str(), "60");
        store.write(&WriteToken::for_tests(), &k("vm.swappiness"), &Value::int(10)).unwrap();
        assert_eq!(store.read(&k("vm.swappiness")).unwrap().as_str(), "10");
        assert_eq!(store.list().unwrap(), vec![k("net.ipv4.tcp_rmem"), k("vm.swappiness")]);
        assert!(matches!(store.read(&k("vm.nope")), Err(StoreError::NotFound { .. })));
        assert!(matches!(store.write(&WriteToken::for_tests(), &k("vm.nope"), &Value::int(1)), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn sandbox_refuses_symlinked_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::fs::create_dir_all(dir.path().join("vm")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("vm/swappiness")).unwrap();
        let store = TreeStore::sandbox(dir.path());
        let err = store.write(&WriteToken::for_tests(), &k("vm.swappiness"), &Value::int(1)).unwrap_err();
        assert!(err.to_string().contains("ELOOP"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");
    }

    #[test]
    fn seeding_a_kernel_tree_is_refused() {
        // `seed` creates sandbox trees; on a kernel-mode tree it would write a live value with no
        // token, no backup and no journal.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("vm")).unwrap();
        std::fs::write(dir.path().join("vm/swappiness"), "60\n").unwrap();
        let err = TreeStore::kernel_at(dir.path()).seed(&k("vm.swappiness"), &Value::int(1)).unwrap_err();
        assert!(err.to_string().contains("vm.swappiness: refusing to seed") && err.to_string().contains("sandbox"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("vm/swappiness")).unwrap(), "60\n");
    }

    #[test]
    fn guarded_store_refuses_keys_outside_whitelist() {
        let mem = MemStore::new([(k("vm.swappiness"), Value::int(60)), (k("kernel.panic"), Value::int(0))]);
        let g = GuardedStore::new(mem, |key| if key.subsystem() == "vm" { Ok(()) } else { Err("not in whitelist".into()) });
        g.write(&WriteToken::for_tests(), &k("vm.swappiness"), &Value::int(1)).unwrap();
        let err = g.write(&WriteToken::for_tests(), &k("kernel.panic"), &Value::int(1)).unwrap_err();
        assert!(err.to_string().contains("kernel.panic: refused by the store: not in whitelist"));
        assert_eq!(g.read(&k("kernel.panic")).unwrap().as_str(), "0");
    }

    #[test]
    fn live_proc_sys_is_readable() {
        let store = TreeStore::kernel();
        let v = store.read(&k("kernel.ostype")).unwrap();
        assert_eq!(v.as_str(), "Linux");
        assert!(store.exists(&k("vm.swappiness")));
        assert!(!store.exists(&k("kernel.sched_latency_ns")) || std::fs::metadata("/proc/sys/kernel/sched_latency_ns").is_ok());
    }
}
