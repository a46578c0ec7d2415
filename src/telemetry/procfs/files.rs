//! What every telemetry reader shares: the error type, which always names
//! the file, and the small-read helpers (`Scratch`, `read_small`). Kept apart
//! from the `/proc` snapshot so the limit readers can use them without
//! depending on the reader that calls them.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Failure of a telemetry reader; always names the file, and the line when the text is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An I/O error other than "file not present".
    #[error("{}: {op} failed: {source}", path.display())]
    Io {
        /// File or directory being read.
        path: PathBuf,
        /// What was being done (`open`, `read`, `list`).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file the snapshot cannot do without is absent.
    #[error("{}: required file is missing; is this a procfs? (point --proc-root at a directory laid out like /proc)", path.display())]
    Missing {
        /// The absent file.
        path: PathBuf,
    },
    /// A line that does not follow its file's format.
    #[error("{}:{line}: {reason}: {text:?}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
        /// The line (cut to 120 characters).
        text: String,
    },
    /// A file name given to `ProcReader::with_files` that a snapshot does not read.
    #[error("{name:?} is not a snapshot file; the files a snapshot reads are: {valid}")]
    UnknownFile {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
}

impl TelemetryError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            TelemetryError::Io { path, .. } | TelemetryError::Missing { path } | TelemetryError::Malformed { path, .. } => path,
            TelemetryError::UnknownFile { name, .. } => Path::new(name),
        }
    }
}

/// Builds a `Malformed` error for line `line` (1-based) of `path`.
pub(crate) fn malformed(path: &Path, line: usize, reason: impl Into<String>, text: &str) -> TelemetryError {
    let text: String = text.chars().take(120).collect();
    TelemetryError::Malformed { path: path.to_path_buf(), line, reason: reason.into(), text }
}

/// Errors that mean "this file has no data here", not "something is wrong".
pub(crate) fn is_absent(e: &io::Error) -> bool {
    // EOPNOTSUPP: PSI compiled in but disabled (psi=0), or a cgroup with cgroup.pressure=0.
    // ENODEV: a cgroup removed between listing and reading.
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENODEV))
}

/// Largest single read request. Small on purpose: on `/proc/sys` the kernel
/// allocates and zeroes a buffer the size of each request (perf-facts.md),
/// and seq_file files hand out at most their own page-sized buffer per read
/// anyway.
pub(crate) const READ_CHUNK: usize = 4096;

/// A reusable read buffer: one allocation per snapshot, grown in 4 KiB steps.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
    len: usize,
}

impl Scratch {
    /// A buffer that holds the largest snapshot file without growing.
    pub(crate) fn new() -> Self {
        Self { buf: vec![0; 4 * READ_CHUNK], len: 0 }
    }

    /// Reads `f` to the end, from its current position (`pread == false`) or with `pread` from offset 0.
    pub(crate) fn fill(&mut self, f: &File, pread: bool) -> io::Result<()> {
        self.len = 0;
        loop {
            if self.buf.len() - self.len < READ_CHUNK {
                self.buf.resize(self.buf.len() + READ_CHUNK, 0);
            }
            let dst = &mut self.buf[self.len..self.len + READ_CHUNK];
            // Read until a read returns 0: a short read is not the end of a
            // seq_file with many records (softnet_stat on a large machine):
            // the kernel stops at its page-sized buffer.
            let r = if pread { f.read_at(dst, self.len as u64) } else { (&*f).read(dst) };
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The bytes read.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The bytes read, as text (lossless for the ASCII files of `/proc`; anything else fails the line that holds it).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        let b = &self.buf[..self.len];
        // from_utf8 is much faster than the lossy decoder on the valid text we always get.
        match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        }
    }
}

/// Reads a small file (sysfs, `/proc/sys`) with small reads; `Ok(None)` when it is absent.
pub(crate) fn read_small(path: &Path, scratch: &mut Scratch) -> Result<Option<String>, TelemetryError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TelemetryError::Io { path: path.to_path_buf(), op: "open", source: e }),
    };
    match scratch.fill(&f, false) {
        Ok(()) => Ok(Some(scratch.text().into_owned())),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(TelemetryError::Io { path: path.to_path_buf(), op: "read", source: e }),
    }
}

