//! The agent's own cost, read from `/proc/self` (under a root path, so tests read a fixture): CPU
//! time from `stat` (utime + stime, in clock ticks) and the resident set from `statm` (pages).

use std::path::Path;

/// CPU seconds (user + system) and resident bytes of the process whose `/proc/<pid>` is `dir`.
pub fn read(dir: &Path) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let statm = std::fs::read_to_string(dir.join("statm")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let (tick, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    parse(&stat, &statm, tick.max(1) as f64, page.max(1) as u64)
}

/// Pure part of [`read`]: fields 14 and 15 of `stat` (after the parenthesised command, which may
/// hold spaces), field 2 of `statm`.
pub fn parse(stat: &str, statm: &str, ticks_per_s: f64, page: u64) -> Option<(f64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let (ut, st) = (f.get(11)?.parse::<f64>().ok()?, f.get(12)?.parse::<f64>().ok()?);
    let rss = statm.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(((ut + st) / ticks_per_s, rss * page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_with_spaces_and_parens_does_not_shift_the_fields() {
        let stat = "4242 (sem (a) b) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse(stat, "5000 1200 300 100 0 600 0", 100.0, 4096), Some((3.0, 1200 * 4096)));
        assert_eq!(parse("garbage", "1 2", 100.0, 4096), None);
        let (cpu, rss) = read(Path::new("/proc/self")).unwrap();
        assert!(cpu >= 0.0 && rss > 0);
    }
}
