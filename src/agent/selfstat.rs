//! The agent's own cost: CPU time (user + system, all threads) from `getrusage`, in microseconds
//! where `/proc/self/stat` gives clock ticks of 10 ms (coarser than a 1 Hz agent's whole minute),
//! and the resident set from `statm` (pages), kept open and re-read with `pread`. Also what the
//! agent gives back after start-up (`release_startup_memory`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The agent's CPU and resident set, read each sample without opening a file.
pub struct SelfStat {
    statm: Option<File>,
    page: u64,
}

impl SelfStat {
    /// Opens `statm` in `dir` (`/proc/self`).
    pub fn open(dir: &Path) -> SelfStat {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        SelfStat { statm: File::open(dir.join("statm")).ok(), page }
    }

    /// CPU seconds (user + system, every thread) and resident bytes (0 when `statm` is unreadable).
    pub fn read(&self) -> (f64, u64) {
        let mut buf = [0u8; 128];
        let rss = self.statm.as_ref().and_then(|f| f.read_at(&mut buf, 0).ok()).and_then(|n| parse_statm(std::str::from_utf8(&buf[..n]).ok()?, self.page)).unwrap_or(0);
        (cpu_seconds(), rss)
    }
}

/// User + system CPU seconds of this process (every thread).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given; an all-zero rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident bytes from `statm`'s second field (pages).
pub fn parse_statm(statm: &str, page: u64) -> Option<u64> {
    Some(statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * page)
}

/// Gives back what start-up left resident and the loop does not use: the heap's free memory
/// (`malloc_trim`), and the pages of the program's own read-only mappings (its code and constant
/// data: argument parsing, the KB's TOML parser and validation run once), which stay in the page
/// cache and are mapped again on first use. Only mappings of the executable that are private,
/// not writable and hold no page of their own (`Anonymous: 0 kB`: not the relocated RELRO data,
/// which `MADV_DONTNEED` would turn back into the file's unrelocated bytes) are dropped; a
/// dropped page is re-read from the file, which cannot change under a running program. Returns
/// the bytes the resident set shrank by.
pub fn release_startup_memory() -> u64 {
    let stat = SelfStat::open(Path::new("/proc/self"));
    let before = stat.read().1;
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    for (start, end) in exe.iter().flat_map(|exe| file_backed_read_only(&smaps, exe.to_str().unwrap_or(""))) {
        // SAFETY: a whole private, read-only mapping of our own executable with no page of its own:
        // every page is re-read from the file on the next access, and no pointer into it changes.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    before.saturating_sub(stat.read().1)
}

/// The address ranges of `smaps` (the text of `/proc/self/smaps`) that map `path` privately, not
/// writable, with no anonymous (copied-on-write) page.
pub fn file_backed_read_only(smaps: &str, path: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping being read, while it qualifies: its range; cleared by an anonymous page.
    let mut current: Option<(usize, usize)> = None;
    // Whether its `Anonymous:` line was read and said 0 kB.
    let mut clean = false;
    fn finish(c: &mut Option<(usize, usize)>, clean: bool, out: &mut Vec<(usize, usize)>) {
        if let Some(r) = c.take().filter(|_| clean) {
            out.push(r);
        }
    }
    for l in smaps.lines() {
        let mut f = l.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|(a, b)| !a.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_hexdigit())) {
            finish(&mut current, clean, &mut out);
            clean = false;
            let perms = f.next().unwrap_or("");
            let name = f.nth(3).unwrap_or("");
            let ok = !path.is_empty() && name == path && perms.len() == 4 && perms.as_bytes()[1] == b'-' && perms.as_bytes()[3] == b'p';
            current = if ok { usize::from_str_radix(a, 16).ok().zip(usize::from_str_radix(b, 16).ok()) } else { None };
        } else if first == "Anonymous:" && current.is_some() {
            // Qualifies only once its Anonymous line says 0 kB.
            clean = f.next() == Some("0");
            if !clean {
                current = None;
            }
        }
    }
    finish(&mut current, clean, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_private_unrelocated_mappings_are_released() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 123 /usr/bin/semantos
Rss:                1024 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 123 /usr/bin/semantos
Anonymous:             0 kB
55d0a0900000-55d0a0980000 r--p 00900000 08:01 123 /usr/bin/semantos
Anonymous:           432 kB
55d0a0980000-55d0a0a00000 rw-p 00980000 08:01 123 /usr/bin/semantos
Anonymous:             8 kB
55d0a0a00000-55d0a0b00000 r--s 00000000 08:01 124 /usr/bin/semantos
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Anonymous:             4 kB
";
        // The relocated RELRO data (r--p with pages of its own) and everything else stay.
        assert_eq!(file_backed_read_only(smaps, "/usr/bin/semantos"), vec![(0x55d0a0000000, 0x55d0a0100000), (0x55d0a0100000, 0x55d0a0900000)]);
        assert_eq!(file_backed_read_only(smaps, ""), vec![]);
    }

    #[test]
    fn the_agents_own_cpu_and_resident_set_are_read() {
        assert_eq!(parse_statm("5000 1200 300 100 0 600 0", 4096), Some(1200 * 4096));
        assert_eq!(parse_statm("garbage", 4096), None);
        let s = SelfStat::open(Path::new("/proc/self"));
        let c0 = s.read().0;
        // Burn a little CPU: getrusage's microseconds see it where clock ticks of 10 ms may not.
        let mut x = 0u64;
        while cpu_seconds() < c0 + 0.002 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (c1, rss) = s.read();
        assert!(c1 > c0 && rss > 0, "{c0} {c1} {rss}");
        // Released pages come back on use: the program keeps running.
        release_startup_memory();
        assert!(s.read().1 > 0);
    }
}
