//! Advice with stable IDs, and the store that remembers it across restarts (`advice.json` in the
//! state directory). An ID is a hash of what the advice says (symptom, key, proposed value), never
//! of when it was said, so the same finding on the same key with the same proposal keeps one ID
//! across windows, runs and restarts; the store counts how often it was seen.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of `advice.json`.
pub const ADVICE_SCHEMA_VERSION: u32 = 1;

/// FNV-1a 64 (`telemetry::fnv`) of the parts, each followed by a 0 byte: a separator no part can
/// contain, so ("ab","c") and ("a","bc") differ.
fn fnv1a(parts: &[&str]) -> u64 {
    crate::telemetry::fnv::fnv1a64(parts.iter().flat_map(|p| p.bytes().chain(std::iter::once(0u8))))
}

/// The stable ID of advice: `kind` (`advice`, `drift`, `evidence-gone`), the symptom, the key and
/// the proposal (a value, or a direction when the advice names none).
pub fn id(kind: &str, symptom: &str, key: &str, proposal: &str) -> String {
    format!("SEM-{:016x}", fnv1a(&[kind, symptom, key, proposal]))
}

/// One piece of advice as remembered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// `advice`, `drift` or `evidence-gone`.
    pub kind: String,
    /// The KB symptom behind it (empty for drift).
    pub symptom: String,
    /// The key it concerns (empty when it proposes no change).
    pub key: String,
    /// What it proposes (`4096`, or a sentence for advice without a change).
    pub proposal: String,
    /// What the guardrails said of the proposal (`accept`, `refuse: …`).
    pub verdict: String,
    /// Milliseconds since the epoch when first seen.
    pub first_seen_ms: u64,
    /// Milliseconds since the epoch when last seen.
    pub last_seen_ms: u64,
    /// Windows in which it was seen.
    pub count: u64,
}

/// The file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schema_version: u32,
    advice: BTreeMap<String, Record>,
}

/// Calls of [`Store::save`] (one per window) between two writes that only carry new counts and
/// last-seen times: a minute at the default 1 s interval and 5-sample windows. Rewriting and
/// fsyncing the file every window for a count was most of the agent's disk writes; a new piece
/// of advice or a changed verdict is still written at once, and the counts on exit (`flush`). A
/// killed agent loses at most this many windows of counts.
pub const COUNTS_EVERY: u32 = 15;

/// Every piece of advice ever given, by ID.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    /// By ID.
    pub advice: BTreeMap<String, Record>,
    /// A record is new or its verdict changed: written at the next save.
    dirty: bool,
    /// Only counts and last-seen times changed: written every `COUNTS_EVERY` saves.
    counts: bool,
    /// Saves since the last write.
    since: u32,
}

impl Store {
    /// Loads `path`, or starts empty when it does not exist; a damaged file is an error naming it.
    pub fn open(path: &Path) -> Result<Store> {
        let advice = match std::fs::read(path) {
            Ok(bytes) => {
                let f: File = serde_json::from_slice(&bytes).with_context(|| format!("{}: the advice store is damaged; move it aside to start a fresh one (advice IDs stay the same)", path.display()))?;
                if f.schema_version != ADVICE_SCHEMA_VERSION {
                    bail!("{}: advice store schema_version {} is not {ADVICE_SCHEMA_VERSION}; move it aside to start a fresh one", path.display(), f.schema_version);
                }
                f.advice
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading the advice store {}", path.display())),
        };
        Ok(Store { path: path.to_path_buf(), advice, dirty: false, counts: false, since: 0 })
    }

    /// Records one sighting of `rec` (its first/last seen and count are the store's) at `now_ms`;
    /// returns true when the ID is new to the store.
    pub fn seen(&mut self, id: &str, rec: Record, now_ms: u64) -> bool {
        match self.advice.get_mut(id) {
            Some(r) => {
                r.last_seen_ms = now_ms;
                r.count += 1;
                self.counts = true;
                if r.verdict != rec.verdict {
                    r.verdict = rec.verdict;
                    self.dirty = true;
                }
                false
            }
            None => {
                self.advice.insert(id.to_string(), Record { first_seen_ms: now_ms, last_seen_ms: now_ms, count: 1, ..rec });
                self.dirty = true;
                true
            }
        }
    }

    /// Writes the store atomically when a record is new or its verdict changed, or when only
    /// counts changed and `COUNTS_EVERY` saves have passed since the last write.
    pub fn save(&mut self) -> Result<()> {
        self.since = self.since.saturating_add(1);
        if self.dirty || (self.counts && self.since >= COUNTS_EVERY) { self.write() } else { Ok(()) }
    }

    /// Writes whatever changed since the last write (on exit).
    pub fn flush(&mut self) -> Result<()> {
        if self.dirty || self.counts { self.write() } else { Ok(()) }
    }

    fn write(&mut self) -> Result<()> {
        let f = File { schema_version: ADVICE_SCHEMA_VERSION, advice: self.advice.clone() };
        crate::apply::files::write_atomic(&self.path, serde_json::to_string_pretty(&f)?.as_bytes(), 0o644).with_context(|| format!("writing the advice store {}", self.path.display()))?;
        self.dirty = false;
        self.counts = false;
        self.since = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(symptom: &str, key: &str, proposal: &str) -> Record {
        Record { kind: "advice".into(), symptom: symptom.into(), key: key.into(), proposal: proposal.into(), verdict: "accept".into(), first_seen_ms: 0, last_seen_ms: 0, count: 0 }
    }

    #[test]
    fn the_id_depends_on_what_is_advised_and_not_on_when() {
        let a = id("advice", "accept_queue_full", "net.core.somaxconn", "8192");
        assert_eq!(a, id("advice", "accept_queue_full", "net.core.somaxconn", "8192"));
        assert_ne!(a, id("advice", "accept_queue_full", "net.core.somaxconn", "16384"));
        assert_ne!(id("advice", "ab", "c", ""), id("advice", "a", "bc", ""));
        // Pinned: an ID a user has filed in a ticket must not change with a rebuild.
        // The literal was computed outside this code (FNV-1a 64 of the parts, each with a 0 byte
        // after it): a change of the hash, or of where it lives, fails here.
        assert_eq!(a, "SEM-7830865a81e1def3");
        assert_eq!(id("drift", "", "vm.swappiness", "10"), id("drift", "", "vm.swappiness", "10"));
    }

    #[test]
    fn a_store_counts_sightings_and_survives_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("advice.json");
        let mut s = Store::open(&p).unwrap();
        let i = id("advice", "x", "k", "1");
        assert!(s.seen(&i, rec("x", "k", "1"), 10));
        assert!(!s.seen(&i, rec("x", "k", "1"), 20));
        s.save().unwrap();
        let mut s = Store::open(&p).unwrap();
        assert!(!s.seen(&i, rec("x", "k", "1"), 30));
        let r = &s.advice[&i];
        assert_eq!((r.first_seen_ms, r.last_seen_ms, r.count), (10, 30, 3));
        std::fs::write(&p, "{not json").unwrap();
        let e = format!("{:#}", Store::open(&p).unwrap_err());
        assert!(e.contains("advice.json") && e.contains("move it aside"), "{e}");
    }

    #[test]
    fn the_advice_store_was_rewritten_every_window_when_only_a_count_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("advice.json");
        let mut s = Store::open(&p).unwrap();
        let i = id("advice", "x", "k", "1");
        s.seen(&i, rec("x", "k", "1"), 10);
        s.save().unwrap();
        let written = std::fs::read(&p).unwrap();
        // The same advice again: only its count moves; the file is not rewritten each window.
        for w in 1..COUNTS_EVERY {
            s.seen(&i, rec("x", "k", "1"), 10 + w as u64);
            s.save().unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), written, "rewritten at window {w} for a count");
        }
        s.seen(&i, rec("x", "k", "1"), 100);
        s.save().unwrap();
        assert_eq!(Store::open(&p).unwrap().advice[&i].count, COUNTS_EVERY as u64 + 1, "counts are written every COUNTS_EVERY windows");
        // A new verdict is written at once; counts pending are written on exit.
        let mut v = rec("x", "k", "1");
        v.verdict = "refuse: step".into();
        s.seen(&i, v, 200);
        s.save().unwrap();
        assert_eq!(Store::open(&p).unwrap().advice[&i].verdict, "refuse: step");
        s.seen(&i, rec("x", "k", "1"), 300);
        s.save().unwrap();
        s.seen(&i, rec("x", "k", "1"), 400);
        s.flush().unwrap();
        assert_eq!(Store::open(&p).unwrap().advice[&i].last_seen_ms, 400);
    }
}
