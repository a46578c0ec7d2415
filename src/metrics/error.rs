//! What can go wrong while publishing metrics: each error names the address or file it was about
//! and says how to recover.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A failure to serve or write the agent's metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The metrics endpoint could not listen on its address.
    #[error("cannot listen for metrics on {addr}: {reason} (is another process on that port? pick a free one with --metrics-addr, e.g. 127.0.0.1:9464)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// The node_exporter textfile could not be written; the previous file, if any, is left whole.
    #[error("cannot write the metrics textfile {path}: {source} (the directory must exist and be writable; the previous file is unchanged)")]
    Textfile {
        /// The file that was being replaced (or the temporary file beside it).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The textfile path names no file (empty, `/`, or ending in `..`).
    #[error("the metrics textfile path {0:?} names no file: give a file such as /var/lib/node_exporter/textfile_collector/semantos.prom")]
    TextfilePath(PathBuf),
}
