//! Step one of the tolerant parsing: the text of each /proc file becomes a
//! `RawMap` of key → value pairs that borrow the text. A line that does not
//! follow its file's format is an error naming the file and the line.

use super::{TelemetryError, malformed};
use std::path::Path;

/// One pair of step one: `section.field = value`, borrowing the file's text (`section` is empty for flat files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEntry<'a> {
    /// Section (`TcpExt`, `TCP`, `some`), or empty for flat files (meminfo, vmstat).
    pub section: &'a str,
    /// Field name as the kernel spells it.
    pub field: &'a str,
    /// The number.
    pub value: f64,
}

/// Step one of parsing: a file's key → value pairs in file order, borrowing its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawMap<'a> {
    /// The pairs.
    pub entries: Vec<RawEntry<'a>>,
}

impl<'a> RawMap<'a> {
    fn with_capacity(n: usize) -> Self {
        Self { entries: Vec::with_capacity(n) }
    }

    fn push(&mut self, section: &'a str, field: &'a str, value: f64) {
        self.entries.push(RawEntry { section, field, value });
    }

    /// The value of `section.field` (`section` empty for flat files), if present.
    pub fn get(&self, section: &str, field: &str) -> Option<f64> {
        self.entries.iter().find(|e| e.section == section && e.field == field).map(|e| e.value)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Step two: appends `prefix.section.field` (or `prefix.field`) metrics to `out`.
    pub fn emit(&self, prefix: &str, out: &mut Vec<(String, f64)>) {
        for e in &self.entries {
            let mut name = String::with_capacity(prefix.len() + e.section.len() + e.field.len() + 2);
            name.push_str(prefix);
            name.push('.');
            if !e.section.is_empty() {
                name.push_str(e.section);
                name.push('.');
            }
            name.push_str(e.field);
            out.push((name, e.value));
        }
    }
}

/// Where a parser puts the pairs it finds, in file order: a `RawMap`, or the reader's layout
/// check, which keeps only the values and so allocates nothing per snapshot.
pub(crate) trait Sink<'a> {
    /// One `section.field = value` pair (`section` empty for flat files); `token` is the text the
    /// value was parsed from when it is one whitespace-delimited token of the file (a slice of it),
    /// else empty (softnet's sums, loadavg's `runnable/tasks`).
    fn pair(&mut self, section: &'a str, field: &'a str, value: f64, token: &'a str);
}

impl<'a> Sink<'a> for RawMap<'a> {
    fn pair(&mut self, section: &'a str, field: &'a str, value: f64, _token: &'a str) {
        self.push(section, field, value);
    }
}

/// Parses a number as the kernel prints it: decimal integers (the fast, common case), negatives, decimals.
pub(crate) fn parse_num(s: &str) -> Option<f64> {
    parse_num_bytes(s.as_bytes())
}

/// `parse_num` over bytes (a token of a file not validated as UTF-8 as a whole).
#[inline]
pub(crate) fn parse_num_bytes(b: &[u8]) -> Option<f64> {
    if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
        // At most 19 digits cannot overflow a u64.
        let mut v: u64 = 0;
        for &c in b {
            v = v * 10 + (c - b'0') as u64;
        }
        return Some(v as f64);
    }
    // Rare: negatives (snmp Tcp MaxConn -1), decimals (PSI, loadavg), 20-digit counters.
    // Rust's float parser also accepts "inf" and "nan", which no kernel prints: refuse them.
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Lines of `text` with 1-based numbers, skipping blank lines.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty())
}

/// `/proc/meminfo`: `Field:   value [kB]` per line.
pub fn parse_meminfo<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(64);
    visit_meminfo(text, path, &mut m)?;
    Ok(m)
}

/// `parse_meminfo` into any sink.
pub(crate) fn visit_meminfo<'a>(text: &'a str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    for (n, line) in numbered_lines(text) {
        let (key, rest) = line.split_once(':').ok_or_else(|| malformed(path, n, "expected `Field: value [kB]`", line))?;
        let mut toks = rest.split_ascii_whitespace();
        let tok = toks.next().unwrap_or_default();
        let v = parse_num(tok).ok_or_else(|| malformed(path, n, "expected a number after the colon", line))?;
        match toks.next() {
            None | Some("kB") if toks.next().is_none() => {}
            _ => return Err(malformed(path, n, "expected at most a `kB` unit after the number", line)),
        }
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(malformed(path, n, "expected a field name without spaces before the colon", line));
        }
        m.pair("", key, v, tok);
    }
    Ok(())
}

/// Flat keyed files: `key value` per line (`/proc/vmstat`, cgroup `cpu.stat`, `memory.stat`, `memory.events`).
pub fn parse_flat_keyed<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(200);
    visit_flat_keyed(text, path, &mut m)?;
    Ok(m)
}

/// `parse_flat_keyed` into any sink.
pub(crate) fn visit_flat_keyed<'a>(text: &'a str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    for (n, line) in numbered_lines(text) {
        let mut toks = line.split_ascii_whitespace();
        let (Some(key), Some(val), None) = (toks.next(), toks.next(), toks.next()) else {
            return Err(malformed(path, n, "expected `key value`", line));
        };
        let v = parse_num(val).ok_or_else(|| malformed(path, n, format!("value of {key} is not a number"), line))?;
        m.pair("", key, v, val);
    }
    Ok(())
}

/// `/proc/vmstat`: `key value` per line.
pub fn parse_vmstat<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    parse_flat_keyed(text, path)
}

/// `/proc/net/netstat` and `/proc/net/snmp`: pairs of `Section: names...` / `Section: values...` lines.
///
/// Fields are matched by the header, never by position: each kernel adds
/// fields (and `snmp` has `IcmpMsg` only once an ICMP message was seen).
pub fn parse_header_value_pairs<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(256);
    visit_header_value_pairs(text, path, &mut m)?;
    Ok(m)
}

/// `parse_header_value_pairs` into any sink.
pub(crate) fn visit_header_value_pairs<'a>(text: &'a str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    let mut lines = numbered_lines(text);
    while let Some((hn, header)) = lines.next() {
        let (hsec, hnames) = header.split_once(':').ok_or_else(|| malformed(path, hn, "expected a `Section: Field ...` header line", header))?;
        let Some((vn, values)) = lines.next() else {
            return Err(malformed(path, hn, format!("header line of {hsec} has no value line after it"), header));
        };
        let (vsec, vvals) = values.split_once(':').ok_or_else(|| malformed(path, vn, format!("expected the `{hsec}: values ...` line"), values))?;
        if vsec != hsec {
            return Err(malformed(path, vn, format!("value line is for section {vsec}, but the header above it is for {hsec}"), values));
        }
        let mut names = hnames.split_ascii_whitespace();
        let mut vals = vvals.split_ascii_whitespace();
        loop {
            match (names.next(), vals.next()) {
                (Some(name), Some(val)) => {
                    let v = parse_num(val).ok_or_else(|| malformed(path, vn, format!("value of {hsec}.{name} is not a number: {val:?}"), values))?;
                    m.pair(hsec, name, v, val);
                }
                (None, None) => break,
                _ => {
                    let (h, v) = (hnames.split_ascii_whitespace().count(), vvals.split_ascii_whitespace().count());
                    return Err(malformed(path, vn, format!("{hsec} has {h} field names but {v} values"), values));
                }
            }
        }
    }
    Ok(())
}

/// `/proc/net/sockstat`: `Section: key value key value ...` per line.
pub fn parse_sockstat<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(16);
    visit_sockstat(text, path, &mut m)?;
    Ok(m)
}

/// `parse_sockstat` into any sink.
pub(crate) fn visit_sockstat<'a>(text: &'a str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    for (n, line) in numbered_lines(text) {
        let (sec, rest) = line.split_once(':').ok_or_else(|| malformed(path, n, "expected `Section: key value ...`", line))?;
        let mut toks = rest.split_ascii_whitespace();
        while let Some(key) = toks.next() {
            let val = toks.next().ok_or_else(|| malformed(path, n, format!("{sec}.{key} has no value"), line))?;
            let v = parse_num(val).ok_or_else(|| malformed(path, n, format!("value of {sec}.{key} is not a number"), line))?;
            m.pair(sec.trim(), key, v, val);
        }
    }
    Ok(())
}

/// `/proc/net/softnet_stat`: per-CPU rows of hex columns, summed over CPUs.
///
/// Layouts seen: 9 columns (before 2.6.35), 10 (+ received_rps), 11 (+
/// flow_limit_count, 3.11), 13 (+ backlog length and CPU index, 5.10) and 15
/// (+ input and process queue lengths, 6.x). Rows narrower than 9 columns, or
/// narrower or wider than the first row, are malformed (a torn or corrupted
/// file); columns beyond 15 are ignored.
pub fn parse_softnet(text: &str, path: &Path) -> Result<RawMap<'static>, TelemetryError> {
    let mut m = RawMap::with_capacity(6);
    visit_softnet(text, path, &mut m)?;
    Ok(m)
}

/// `parse_softnet` into any sink.
pub(crate) fn visit_softnet<'a>(text: &str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    let mut sums = [0u64; 5];
    let (mut rows, mut width) = (0u64, None);
    for (n, line) in numbered_lines(text) {
        let mut cols = 0usize;
        for tok in line.split_ascii_whitespace() {
            let v = u64::from_str_radix(tok, 16).map_err(|_| malformed(path, n, format!("column {} is not hexadecimal", cols + 1), line))?;
            let slot = match cols {
                0 => Some(0),
                1 => Some(1),
                2 => Some(2),
                9 => Some(3),
                10 => Some(4),
                _ => None,
            };
            if let Some(s) = slot {
                sums[s] = sums[s].wrapping_add(v);
            }
            cols += 1;
        }
        if cols < 9 {
            return Err(malformed(path, n, format!("{cols} columns; every kernel prints at least 9"), line));
        }
        match width {
            None => width = Some(cols),
            Some(w) if w != cols => return Err(malformed(path, n, format!("{cols} columns, but the first row has {w}"), line)),
            _ => {}
        }
        rows += 1;
    }
    if rows == 0 {
        return Ok(());
    }
    let w = width.unwrap_or(0);
    m.pair("", "processed", sums[0] as f64, "");
    m.pair("", "dropped", sums[1] as f64, "");
    m.pair("", "time_squeeze", sums[2] as f64, "");
    if w >= 10 {
        m.pair("", "received_rps", sums[3] as f64, "");
    }
    if w >= 11 {
        m.pair("", "flow_limit_count", sums[4] as f64, "");
    }
    m.pair("", "cpus", rows as f64, "");
    Ok(())
}

/// `/proc/pressure/*` and cgroup `*.pressure`: `some avg10=.. avg60=.. avg300=.. total=..` (and `full ...`).
pub fn parse_psi<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(8);
    visit_psi(text, path, &mut m)?;
    Ok(m)
}

/// `parse_psi` into any sink.
pub(crate) fn visit_psi<'a>(text: &'a str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    for (n, line) in numbered_lines(text) {
        let mut toks = line.split_ascii_whitespace();
        let kind = toks.next().unwrap_or_default();
        let mut any = false;
        for tok in toks {
            let (k, v) = tok.split_once('=').ok_or_else(|| malformed(path, n, format!("expected key=value, found {tok:?}"), line))?;
            let value = parse_num(v).ok_or_else(|| malformed(path, n, format!("value of {kind}.{k} is not a number"), line))?;
            m.pair(kind, k, value, v);
            any = true;
        }
        if !any {
            return Err(malformed(path, n, "expected `some|full avg10=.. avg60=.. avg300=.. total=..`", line));
        }
    }
    Ok(())
}

/// `/proc/loadavg`: `1.00 0.50 0.25 runnable/tasks last_pid`.
pub fn parse_loadavg(text: &str, path: &Path) -> Result<RawMap<'static>, TelemetryError> {
    let mut m = RawMap::with_capacity(5);
    visit_loadavg(text, path, &mut m)?;
    Ok(m)
}

/// `parse_loadavg` into any sink.
pub(crate) fn visit_loadavg<'a>(text: &str, path: &Path, m: &mut impl Sink<'a>) -> Result<(), TelemetryError> {
    let Some((n, line)) = numbered_lines(text).next() else {
        return Err(malformed(path, 1, "empty file; expected `1.00 0.50 0.25 runnable/tasks last_pid`", ""));
    };
    let bad = || malformed(path, n, "expected `1.00 0.50 0.25 runnable/tasks last_pid`", line);
    let mut toks = [""; 4];
    let mut count = 0;
    for t in line.split_ascii_whitespace().take(4) {
        toks[count] = t;
        count += 1;
    }
    if count < 4 {
        return Err(bad());
    }
    for (name, tok) in ["1", "5", "15"].into_iter().zip(&toks) {
        m.pair("", name, parse_num(tok).ok_or_else(bad)?, "");
    }
    let (run, tasks) = toks[3].split_once('/').ok_or_else(bad)?;
    m.pair("", "runnable", parse_num(run).ok_or_else(bad)?, "");
    m.pair("", "tasks", parse_num(tasks).ok_or_else(bad)?, "");
    Ok(())
}

/// Counts CPUs in a sysfs CPU list (`0-3,8,10-11`).
pub fn count_cpu_list(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let mut n = 0u32;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}
