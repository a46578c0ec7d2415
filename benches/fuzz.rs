//! A fuzz harness on stable Rust for every parser of untrusted input; not run
//! in CI (it takes minutes). Each parser gets `--cases N` inputs (default
//! 1,000,000; env `FUZZ_CASES` also works): half arbitrary bytes, half
//! mutations of valid seeds taken from the repository's own fixtures (byte
//! flips, truncation, duplication, splicing with another seed, insertion of
//! a hostile token). Inputs come from `proptest` strategies driven by a
//! seeded runner, so a run is reproducible (`--seed S`). A panic is caught
//! (`catch_unwind`), counted, and its first inputs are saved under
//! `target/fuzz-panics/` to become a regression test.
//!
//!     cargo bench --bench fuzz -- [--cases N] [--seed S] [--only NAME]
//!
//! Prints, per parser: cases run, panics, slow inputs (over 100 ms each),
//! seconds, cases per second.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use semantos::sysctl::{SysctlKey, Value, ValueKind, sysctld};
use semantos::telemetry::procfs;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Parses one input, result discarded: only a panic or the time it takes counts.
type Parse = Box<dyn Fn(&[u8])>;

/// One parser under test: its name, its seeds, and a call that parses one input.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static str],
    run: Parse,
}

/// How one input is mutated.
#[derive(Debug, Clone)]
struct Op {
    kind: u8,
    at: Index,
    byte: u8,
    other: Index,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively) whose name ends with one of `exts` (empty: any).
fn files(dir: &Path, exts: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            out.extend(files(&p, exts));
        } else if exts.is_empty() || exts.iter().any(|e| p.to_string_lossy().ends_with(e)) {
            // Big seeds slow every case down and add nothing a small one lacks.
            if let Ok(b) = std::fs::read(&p)
                && b.len() <= 64 * 1024
            {
                out.push(b);
            }
        }
    }
    out
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Applies `ops` to a copy of `seed`; `seeds` feed splicing.
fn mutate(seed: &[u8], ops: &[Op], seeds: &[Vec<u8>], tokens: &[&str]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for op in ops {
        let at = if b.is_empty() { 0 } else { op.at.index(b.len() + 1) };
        match op.kind % 6 {
            0 if at < b.len() => b[at] ^= 1 << (op.byte % 8),
            1 if at < b.len() => b[at] = op.byte,
            2 => b.truncate(at),
            3 => {
                // Duplicate a slice of up to 64 bytes in place.
                let end = (at + 1 + op.byte as usize % 64).min(b.len());
                let piece = b[at.min(end)..end].to_vec();
                b.splice(at..at, piece);
            }
            4 => {
                let other = &seeds[op.other.index(seeds.len())];
                let from = if other.is_empty() { 0 } else { op.other.index(other.len()) };
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
            _ => {
                let t = tokens[op.other.index(tokens.len())];
                b.splice(at..at, t.bytes());
            }
        }
    }
    b
}

const COMMON: &[&str] = &[
    "..", "/", "\0", "\n", "\r\n", "\t", " ", "=", "#", ";", ":", ",", "\"", "'", "\\", "-", "+", "0", "-1", "010", "0x10", "1e9", "NaN", "inf", "-inf", "18446744073709551616", "-9223372036854775808",
    "99999999999999999999999", "\u{feff}", "\u{202e}", "é", "٤", "[", "]", "{", "}", "{}", "[]", "null", "true", "&a", "*a", "<<: *a", "!!binary", "---", "...", "\u{1b}[2J",
];

fn targets() -> Vec<Target> {
    let r = repo();
    let hostile = r.join("tests/hostile");
    let keys: Vec<Vec<u8>> = {
        let kb = files(&r.join("kb"), &[".toml"]);
        let mut v: Vec<Vec<u8>> = kb.iter().flat_map(|f| text(f).lines().filter_map(|l| l.strip_prefix("key = \"").map(|k| k.trim_end_matches('"').as_bytes().to_vec())).collect::<Vec<_>>()).collect();
        v.extend([b"net/ipv4/conf/eth0.100/rp_filter".to_vec(), b"net.ipv4.conf.eth0/100.rp_filter".to_vec()]);
        v
    };
    let values: Vec<Vec<u8>> = ["60", "0", "-1", "4096 131072 6291456", "4096\t131072\t6291456", "cubic", "bbr", "1", "32768 60999"].iter().map(|s| s.as_bytes().to_vec()).collect();
    let proc_seeds = files(&r.join("tests/fixtures/proc"), &[]);
    let reply_seeds: Vec<Vec<u8>> = files(&r.join("tests/llm/replies"), &[".json"])
        .iter()
        .filter_map(|f| serde_json::from_slice::<serde_json::Value>(f).ok())
        .filter_map(|v| v.get("reply").map(|r| if let Some(s) = r.as_str() { s.as_bytes().to_vec() } else { r.to_string().into_bytes() }))
        .chain(files(&hostile.join("llm"), &[]))
        .collect();
    let findings: BTreeSet<String> = ["swap_in_stalls", "accept_queue_overflow", "dirty_writeback_stalls", "cpu_runqueue_delay"].iter().map(|s| s.to_string()).collect();
    let envelopes: Vec<Vec<u8>> = reply_seeds
        .iter()
        .map(|c| serde_json::json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": String::from_utf8_lossy(c)}, "finish_reason": "stop"}]}).to_string().into_bytes())
        .collect();
    // The backup and state readers take a path: their inputs go through a file in memory when there is one.
    let shm = scratch_dir();
    std::fs::create_dir_all(&shm).unwrap();
    let backup_path = shm.join("backup.json");
    let state_path = shm.join("state.json");
    let mut backup_seeds = files(&hostile.join("backup"), &[".json"]);
    backup_seeds.push(std::fs::read(hostile.join("templates/backup.json")).unwrap());
    let mut state_seeds = files(&hostile.join("state_resume"), &[".json"]);
    state_seeds.push(std::fs::read(hostile.join("templates/state.json")).unwrap());
    let mut plan_seeds = files(&hostile.join("plan_json"), &[".json"]);
    plan_seeds.push(std::fs::read(hostile.join("templates/plan.json")).unwrap());
    let mut inv_seeds = files(&hostile.join("inv_ours"), &[]);
    inv_seeds.extend(files(&hostile.join("inv_ansible_yaml"), &[]));
    inv_seeds.extend(files(&hostile.join("inv_ini"), &[]));
    inv_seeds.extend(files(&r.join("tests/integration/fleet"), &[".yaml", ".yml", ".ini"]));
    let mut csv_seeds = files(&hostile.join("csv"), &[]);
    csv_seeds.push(std::fs::read(r.join("experiments/data/sample_telemetry.csv")).unwrap());
    vec![
        Target {
            name: "sysctl.d",
            seeds: { let mut s = files(&hostile.join("plan_conf"), &[]); s.push(b"# c\n; c\nvm.swappiness = 10\n-net.core.somaxconn=4096\nnet.ipv4.tcp_rmem = 4096\t131072 33554432\n".to_vec()); s },
            tokens: COMMON,
            run: Box::new(|b| drop(black_box(sysctld::parse(&text(b), "fuzz.conf")))),
        },
        Target { name: "SysctlKey", seeds: keys, tokens: COMMON, run: Box::new(|b| drop(black_box(SysctlKey::parse(&text(b))))) },
        Target {
            name: "Value",
            seeds: values,
            tokens: COMMON,
            run: Box::new(|b| {
                let t = text(b);
                let allowed = vec!["cubic".to_string(), "bbr".to_string()];
                for (kind, count) in [(ValueKind::Int, 1), (ValueKind::Bool, 1), (ValueKind::Enum, 1), (ValueKind::String, 1), (ValueKind::Ints, 3), (ValueKind::Ints, 0)] {
                    if let Ok(v) = Value::parse(&t, kind, count, &allowed) {
                        black_box((v.ints(), v.as_int()));
                    }
                }
                black_box(Value::from_kernel(&t));
            }),
        },
        Target {
            name: "procfs",
            seeds: proc_seeds,
            tokens: COMMON,
            run: Box::new(|b| {
                let t = text(b);
                let p = Path::new("/proc/fuzz");
                drop(black_box(procfs::parse_meminfo(&t, p)));
                drop(black_box(procfs::parse_flat_keyed(&t, p)));
                drop(black_box(procfs::parse_vmstat(&t, p)));
                drop(black_box(procfs::parse_header_value_pairs(&t, p)));
                drop(black_box(procfs::parse_sockstat(&t, p)));
                drop(black_box(procfs::parse_softnet(&t, p)));
                drop(black_box(procfs::parse_psi(&t, p)));
                drop(black_box(procfs::parse_loadavg(&t, p)));
                black_box(procfs::count_cpu_list(&t));
            }),
        },
        Target {
            name: "sock_diag",
            seeds: sockdiag_seeds(),
            tokens: &["\x00\x00\x00\x00", "\x14\x00", "\x03\x00", "\x02\x00", "\x7f\x7f\x7f\x7f", "\x10\x00\x00\x00", "\x08\x00\x02\x00"],
            run: Box::new(|b| {
                drop(black_box(semantos::telemetry::sockdiag::parse_dump_chunk(b, 7, "inet")));
                drop(black_box(semantos::telemetry::sockdiag::parse_diag_msg(b)));
                black_box(semantos::telemetry::sockdiag::TcpInfo::parse(b));
            }),
        },
        Target {
            name: "inventory",
            seeds: inv_seeds.into_iter().filter(|s| !nested_ranges(&text(s))).collect(),
            tokens: COMMON,
            run: Box::new(|b| {
                let t = text(b);
                // Until the INI range cap covers a name with several ranges (the "edges" fix,
                // tests/hostile/inv_ini/nested_ranges.ini), such a name expands to the product of its
                // ranges — 10^8 hosts, gigabytes — and would stop the run rather than find anything new.
                if !nested_ranges(&t) {
                    drop(black_box(semantos::rollout::inventory::Inventory::parse(&t, "fuzz.inv")));
                }
            }),
        },
        Target { name: "plan JSON", seeds: plan_seeds, tokens: COMMON, run: Box::new(|b| drop(black_box(semantos::reasoning::Plan::from_json(&text(b), "fuzz.json")))) },
        Target { name: "telemetry CSV", seeds: csv_seeds, tokens: COMMON, run: Box::new(|b| drop(black_box(semantos::telemetry::csv::from_csv(&text(b), "fuzz.csv")))) },
        Target { name: "LLM reply", seeds: reply_seeds, tokens: COMMON, run: Box::new(move |b| drop(black_box(semantos::llm::reply::parse("http://fuzz/v1", &text(b), &findings)))) },
        Target {
            name: "LLM wire",
            seeds: envelopes,
            tokens: COMMON,
            run: Box::new(|b| {
                let (status, body) = match b.first() {
                    Some(0) => (429, &b[1..]),
                    Some(1) => (500, &b[1..]),
                    _ => (200, b),
                };
                let reply = semantos::llm::wire::HttpReply { status, retry_after: (status == 429).then(|| "1".into()), body: text(body).into_owned() };
                drop(black_box(semantos::llm::wire::completion("http://fuzz/v1", &reply, 1024)));
            }),
        },
        Target {
            name: "backup reader",
            seeds: backup_seeds,
            tokens: COMMON,
            run: Box::new(move |b| {
                std::fs::write(&backup_path, b).unwrap();
                drop(black_box(semantos::apply::Backup::load(&backup_path)));
            }),
        },
        Target {
            name: "rollout state reader",
            seeds: state_seeds,
            tokens: COMMON,
            run: Box::new(move |b| {
                std::fs::write(&state_path, b).unwrap();
                drop(black_box(semantos::rollout::state::RolloutState::load(&state_path)));
            }),
        },
    ]
}

/// Well-formed `sock_diag` dump chunks: header, `inet_diag_msg`, attributes of every kind the parser reads.
fn sockdiag_seeds() -> Vec<Vec<u8>> {
    let attr = |kind: u16, payload: &[u8]| -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    };
    let msg = |kind: u16, seq: u32, body: &[u8]| -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    };
    let mut out = Vec::new();
    for (family, state) in [(2u8, 10u8), (10, 1)] {
        let mut diag = vec![0u8; 72];
        diag[0] = family;
        diag[1] = state;
        diag[4] = 0x1f;
        diag[5] = 0x90;
        let mut body = diag.clone();
        body.extend(attr(2, &[0u8; 232]));
        body.extend(attr(4, b"cubic\0"));
        body.extend(attr(7, &[0u8; 36]));
        let mut chunk = msg(20, 7, &body);
        chunk.extend(msg(3, 7, &[0u8; 4]));
        out.push(chunk);
        out.push(msg(2, 7, &(-13i32).to_ne_bytes()));
        out.push(diag);
    }
    out
}

/// Where file-reading parsers get their input: /dev/shm when present (a disk-backed /tmp makes them 100× slower).
fn scratch_dir() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("semantos-fuzz-{}", std::process::id()))
}

/// A line naming a host with more than one `[a:b]` range.
fn nested_ranges(t: &str) -> bool {
    t.lines().any(|l| l.matches('[').filter(|_| l.contains(':')).count() > 1 && l.matches(':').count() > 1)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `--cases N` (or FUZZ_CASES) sets the count.
    let cases: u64 = arg("--cases").or_else(|| std::env::var("FUZZ_CASES").ok()).map(|s| s.replace('_', "").parse().expect("--cases N: a whole number")).unwrap_or(1_000_000);
    let seed: u64 = arg("--seed").map(|s| s.parse().expect("--seed S: a whole number")).unwrap_or(1);
    let only = arg("--only");
    let saved = repo().join("target/fuzz-panics");
    // Panics are counted, not printed: a quiet hook, the message kept for the first of each target.
    let last_panic = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let lp = last_panic.clone();
    std::panic::set_hook(Box::new(move |info| *lp.lock().unwrap() = info.to_string()));
    println!("{:<22} {:>10} {:>7} {:>6} {:>9} {:>11}", "parser", "cases", "panics", "slow", "seconds", "cases/s");
    let mut total_panics = 0u64;
    for mut t in targets() {
        if only.as_deref().is_some_and(|o| !t.name.contains(o)) {
            continue;
        }
        // A seed that is slow on its own (an inventory range expanding to thousands of hosts) would
        // make every mutation of it slow too: it is left out and said so; slowness is counted below.
        let before = t.seeds.len();
        let run = &t.run;
        t.seeds.retain(|s| {
            let start = Instant::now();
            let _ = catch_unwind(AssertUnwindSafe(|| run(s)));
            start.elapsed().as_millis() < 5
        });
        if t.seeds.len() < before {
            println!("    {}: {} slow seed(s) left out", t.name, before - t.seeds.len());
        }
        assert!(!t.seeds.is_empty(), "{}: no seeds found", t.name);
        let mut rng_seed = [0u8; 32];
        rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
        rng_seed[8..8 + t.name.len().min(24)].copy_from_slice(&t.name.as_bytes()[..t.name.len().min(24)]);
        let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed));
        let raw = vec(any::<u8>(), 0..512);
        let ops = (any::<Index>(), vec((any::<u8>(), any::<Index>(), any::<u8>(), any::<Index>()).prop_map(|(kind, at, byte, other)| Op { kind, at, byte, other }), 1..6));
        let (mut panics, mut slow, mut first) = (0u64, 0u64, None::<String>);
        let start = Instant::now();
        for i in 0..cases {
            let input = if i % 2 == 0 {
                raw.new_tree(&mut runner).unwrap().current()
            } else {
                let (s, ops) = ops.new_tree(&mut runner).unwrap().current();
                mutate(&t.seeds[s.index(t.seeds.len())], &ops, &t.seeds, t.tokens)
            };
            let one = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| (t.run)(&input)));
            // Slow: one input taking over 100 ms (a parser that can be made to spin or balloon).
            if one.elapsed().as_millis() > 100 {
                slow += 1;
                if slow <= 3 {
                    std::fs::create_dir_all(&saved).unwrap();
                    std::fs::write(saved.join(format!("{}-slow-{slow}.bin", t.name.replace(' ', "_"))), &input).unwrap();
                }
            }
            if result.is_err() {
                panics += 1;
                if panics <= 5 {
                    std::fs::create_dir_all(&saved).unwrap();
                    let f = saved.join(format!("{}-{panics}.bin", t.name.replace(' ', "_")));
                    std::fs::write(&f, &input).unwrap();
                    first.get_or_insert_with(|| format!("{} (input saved as {})", last_panic.lock().unwrap(), f.display()));
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{:<22} {:>10} {:>7} {:>6} {:>9.1} {:>11.0}", t.name, cases, panics, slow, secs, cases as f64 / secs);
        if let Some(f) = first {
            println!("    first panic: {f}");
        }
        total_panics += panics;
    }
    let _ = std::fs::remove_dir_all(scratch_dir());
    println!("total panics: {total_panics}");
}
