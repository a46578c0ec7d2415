//! Which network namespace the tool runs in: the initial one (the host's)
//! or a child (`ip netns exec`, a container). Keys under `net.` are per
//! network namespace; some of them are only read-only mirrors of the host's
//! value in a child (`rmem_max`, `nf_conntrack_max`), and the global ones
//! are absent there. The guardrails need to know where they run to refuse a
//! write that cannot happen here (see `safety::scope`).
//!
//! The test is the one the kernel offers: the namespace link of this process
//! (`/proc/self/ns/net`, "net:[4026531840]") against PID 1's. PID 1 lives in
//! the initial namespace unless the process also has its own PID namespace
//! (a container), where this cannot tell: that case reads as "initial" and is
//! said so in the description. Reading PID 1's link needs root (ptrace
//! access to PID 1). When it cannot be read, the kernel's fixed number for
//! the initial namespace (`PROC_NET_INIT_INO`, 6.18 and later) decides;
//! otherwise the place is `Unknown`, with the reason, never a guess.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where this process runs, as far as the network namespace goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "netns", content = "detail", rename_all = "snake_case")]
pub enum NetnsPlace {
    /// The initial (host) network namespace: every key can be written here.
    Initial,
    /// A child network namespace: global keys are absent, `netns_read_only` keys are read-only.
    Child,
    /// Could not tell; the reason (a file that could not be read).
    Unknown(String),
}

impl NetnsPlace {
    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            NetnsPlace::Initial => "the initial (host) network namespace (same as PID 1's; in a container with its own PID namespace this cannot be told apart)".into(),
            NetnsPlace::Child => "a child network namespace (not PID 1's)".into(),
            NetnsPlace::Unknown(why) => format!("an unknown network namespace ({why})"),
        }
    }
}

/// The inode of the initial network namespace on kernels that fix it (`PROC_NET_INIT_INO`,
/// 0xEFFFFFF9). Dynamically numbered namespaces start at 0xF0000000, so on any kernel a
/// namespace with this number is the initial one.
const INIT_NET_INO: u64 = 0xEFFF_FFF9;

/// First kernel (major, minor) known to number the initial network namespace `INIT_NET_INO`:
/// from there on, any other number is a child.
const INIT_NET_INO_SINCE: (u32, u32) = (6, 18);

/// Compares `<proc_root>/self/ns/net` with `<proc_root>/1/ns/net`. Where PID 1's link cannot
/// be read (no ptrace access to PID 1, as in some VMs and containers even for root), the
/// inode alone decides on kernels that fix the initial namespace's number.
pub fn detect(proc_root: &Path) -> NetnsPlace {
    let link = |who: &str| {
        let p = proc_root.join(who).join("ns/net");
        std::fs::read_link(&p).map(|t| t.to_string_lossy().into_owned()).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let me = match link("self") {
        Ok(me) => me,
        Err(e) => return NetnsPlace::Unknown(e),
    };
    let pid1 = match link("1") {
        Ok(init) => return if me == init { NetnsPlace::Initial } else { NetnsPlace::Child },
        Err(e) => e,
    };
    let ino = me.strip_prefix("net:[").and_then(|r| r.strip_suffix(']')).and_then(|n| n.parse::<u64>().ok());
    let release = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    match ino {
        Some(INIT_NET_INO) => NetnsPlace::Initial,
        Some(_) if release_at_least(&release, INIT_NET_INO_SINCE) => NetnsPlace::Child,
        _ => NetnsPlace::Unknown(format!("{pid1}, and this kernel ({}) does not give the initial namespace a fixed number to compare {me} with", release.trim())),
    }
}

/// Whether a kernel release string ("6.18.0-1-amd64") is at least `(major, minor)`.
fn release_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().unwrap_or(0));
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fake_proc(me: &str, init: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("self/ns")).unwrap();
        symlink(me, d.path().join("self/ns/net")).unwrap();
        if let Some(i) = init {
            std::fs::create_dir_all(d.path().join("1/ns")).unwrap();
            symlink(i, d.path().join("1/ns/net")).unwrap();
        }
        d
    }

    #[test]
    fn netns_is_told_from_the_link_targets_of_self_and_pid_1() {
        assert_eq!(detect(fake_proc("net:[4026531840]", Some("net:[4026531840]")).path()), NetnsPlace::Initial);
        assert_eq!(detect(fake_proc("net:[4026532301]", Some("net:[4026531840]")).path()), NetnsPlace::Child);
    }

    #[test]
    fn netns_is_told_from_the_fixed_init_net_inode_when_pid_1_cannot_be_read() {
        let with_release = |me: &str, rel: Option<&str>| {
            let d = fake_proc(me, None);
            if let Some(r) = rel {
                std::fs::create_dir_all(d.path().join("sys/kernel")).unwrap();
                std::fs::write(d.path().join("sys/kernel/osrelease"), r).unwrap();
            }
            detect(d.path())
        };
        assert_eq!(with_release("net:[4026531833]", None), NetnsPlace::Initial);
        assert_eq!(with_release("net:[4026532301]", Some("6.18.0-1-amd64\n")), NetnsPlace::Child);
        let NetnsPlace::Unknown(why) = with_release("net:[4026532301]", Some("6.1.0-13-amd64\n")) else { panic!("an old kernel without PID 1 must be unknown") };
        assert!(why.contains("1/ns/net") && why.contains("6.1.0-13-amd64"), "{why}");
        assert!(release_at_least("6.18", (6, 18)) && release_at_least("7.0.1", (6, 18)) && !release_at_least("6.9.2", (6, 18)));
    }

    #[test]
    fn netns_of_the_test_process_is_detected_on_the_real_proc() {
        // Whatever the test runs in, a readable /proc gives an answer that says what it is.
        let place = detect(Path::new("/proc"));
        assert!(!place.describe().is_empty());
    }
}
