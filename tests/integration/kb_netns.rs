//! Privileged: the KB's `net.*` scopes hold on the real kernel.
//!
//! For every entry with `scope = "netns"` a fresh network namespace is
//! created (`ip netns add semantos-kbtest-<pid>-rw`, deleted by a Drop
//! guard), a valid in-range value different from the namespace's current
//! one is written inside it and read back, and the test checks that the
//! value of the test's own namespace did not move. For every entry with
//! `scope = "netns_read_only"` the namespace's mirror must refuse a write.
//!
//! Nothing is ever written outside the throwaway namespaces: the read-only
//! check writes the mirror's *current* value, so even a wrongly writable
//! mirror could not change the global setting.
//!
//! Needs root and `ip` (iproute2). Without them the tests print why and
//! pass, unless SEMANTOS_REQUIRE_PRIVILEGED=1, which turns that into a
//! failure (CI on a privileged runner sets it).

use semantos::kb::entry::NoRead;
use semantos::kb::validate::check_value;
use semantos::kb::{Kb, Param, Scope};
use semantos::sysctl::value::read_back_matches;
use semantos::sysctl::{SysctlKey, Value, ValueKind};
use std::path::PathBuf;
use std::process::{Command, Output};

/// Why privileged tests cannot run here, if they cannot.
fn missing_privilege() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (creating network namespaces needs CAP_SYS_ADMIN)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip -V` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
    }
}

/// True when the test may run; prints the reason and returns false when it
/// must be skipped; panics when it cannot run but SEMANTOS_REQUIRE_PRIVILEGED=1.
fn privileged(test: &str) -> bool {
    let Some(why) = missing_privilege() else { return true };
    if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: SEMANTOS_REQUIRE_PRIVILEGED=1 but the test cannot run: {why}");
    }
    eprintln!("skipping {test}: {why} (set SEMANTOS_REQUIRE_PRIVILEGED=1 to make this a failure)");
    false
}

/// A named network namespace that is deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: &str) -> Result<Netns, String> {
        // A namespace of this exact name can only be a leftover of this very
        // process (the name carries our PID), so removing it is safe.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let out = Command::new("ip").args(["netns", "add", name]).output().map_err(|e| format!("ip netns add {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Netns { name: name.to_string() })
    }

    /// Runs `sh -c script sh args...` inside the namespace.
    fn sh(&self, script: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script, "sh"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {}: {e}", self.name))
    }

    /// The key's value inside the namespace, or why it could not be read.
    fn read(&self, path: &str) -> Result<Value, String> {
        let o = self.sh("cat \"$1\"", &[path]);
        if o.status.success() { Ok(Value::from_kernel(&String::from_utf8_lossy(&o.stdout))) } else { Err(String::from_utf8_lossy(&o.stderr).trim().to_string()) }
    }

    /// Whether the file exists inside the namespace, and its octal mode.
    fn mode(&self, path: &str) -> Option<u32> {
        let o = self.sh("stat -c %a \"$1\"", &[path]);
        if !o.status.success() {
            return None;
        }
        u32::from_str_radix(String::from_utf8_lossy(&o.stdout).trim(), 8).ok()
    }

    /// Writes `value` in one printf and reads the key back; Err carries the shell's complaint.
    fn write_and_read(&self, path: &str, value: &str) -> Result<Option<Value>, String> {
        let o = self.sh("printf %s \"$1\" > \"$2\" || exit 1; [ -r \"$2\" ] || exit 0; cat \"$2\" 2>/dev/null || true", &[value, path]);
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&o.stdout);
        Ok(if text.is_empty() { None } else { Some(Value::from_kernel(&text)) })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn proc_path(key: &SysctlKey) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.rel_path())
}

/// The value in the test process's own namespace (the "host" side).
fn host_value(key: &SysctlKey) -> Option<Value> {
    std::fs::read_to_string(proc_path(key)).ok().map(|s| Value::from_kernel(&s))
}

/// Probe values for string keys, whose valid words the KB cannot enumerate:
/// reno is built into every kernel and always allowed in a child namespace.
fn string_probe(key: &str) -> Option<&'static str> {
    match key {
        "net.ipv4.tcp_congestion_control" => Some("reno"),
        "net.ipv4.ip_local_reserved_ports" => Some("40000"),
        _ => None,
    }
}

/// In-range values for `p` that differ from `current`, most useful first:
/// the KB's suggestions and default, then single steps from the current value.
fn candidates(p: &Param, current: &Value) -> Vec<String> {
    let mut raw: Vec<String> = Vec::new();
    if p.kind == ValueKind::String {
        raw.extend(string_probe(&p.key).map(str::to_string));
    }
    raw.extend([&p.suggest.latency, &p.suggest.throughput, &p.suggest.memory, &p.suggest.balanced, &p.default].into_iter().flatten().cloned());
    raw.extend(p.values.iter().cloned());
    if let Some(ints) = current.ints() {
        let idx = p.adjust_index.unwrap_or(ints.len().saturating_sub(1));
        for delta in [1i64, -1] {
            let mut v = ints.clone();
            if let Some(x) = v.get_mut(idx) {
                *x = x.saturating_add(delta);
                raw.push(Value::from_ints(&v).to_string());
            }
        }
        if p.kind == ValueKind::Bool
            && let Some(&b) = ints.first()
        {
            raw.push((1 - b.clamp(0, 1)).to_string());
        }
    }
    let mut out: Vec<String> = Vec::new();
    for r in raw {
        let Ok(v) = check_value(p, &r) else { continue };
        if &v != current && !out.contains(&v.to_string()) {
            out.push(v.to_string());
        }
    }
    out
}

fn netns_keys(kb: &Kb, scope: Scope) -> Vec<&Param> {
    kb.params.values().filter(|p| p.scope == scope).collect()
}

#[test]
fn netns_scoped_keys_are_private_to_a_fresh_namespace() {
    if !privileged("netns_scoped_keys_are_private_to_a_fresh_namespace") {
        return;
    }
    let kb = Kb::embedded().unwrap();
    let name = format!("semantos-kbtest-{}-rw", std::process::id());
    let mut failures = Vec::new();
    let (mut written, mut absent) = (Vec::new(), Vec::new());
    for p in netns_keys(&kb, Scope::Netns) {
        let key = SysctlKey::parse(&p.key).unwrap();
        let path = proc_path(&key).display().to_string();
        if !proc_path(&key).exists() {
            // Removed, not yet added, or not built: `kb validate --live` judges that.
            absent.push(p.key.clone());
            continue;
        }
        let ns = match Netns::create(&name) {
            Ok(ns) => ns,
            Err(e) => panic!("{e}"),
        };
        let Some(mode) = ns.mode(&path) else {
            failures.push(format!("{}: exists here but not in a fresh network namespace: the scope is global, not netns", p.key));
            continue;
        };
        if mode & 0o200 == 0 {
            failures.push(format!("{}: read-only (mode {mode:o}) in a fresh network namespace: the scope is netns_read_only, not netns", p.key));
            continue;
        }
        match p.no_read {
            // Secrets are not read, even in a throwaway namespace; the writable mode is the check.
            Some(NoRead::Secret) | Some(NoRead::SideEffect) => {
                written.push(format!("{} (mode only)", p.key));
                continue;
            }
            Some(NoRead::WriteOnly) => {
                match ns.write_and_read(&path, "1") {
                    Ok(_) => written.push(p.key.clone()),
                    Err(e) => failures.push(format!("{}: writing the action file inside the namespace failed: {e}", p.key)),
                }
                continue;
            }
            None => {}
        }
        let before = host_value(&key);
        let current = match ns.read(&path) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: cannot read it inside the namespace: {e}", p.key));
                continue;
            }
        };
        let cands = candidates(p, &current);
        if cands.is_empty() {
            failures.push(format!("{}: no valid in-range value other than {current:?} to write (add a probe value to string_probe)", p.key));
            continue;
        }
        let mut refused = Vec::new();
        let mut ok = false;
        for c in cands.iter().take(4) {
            match ns.write_and_read(&path, c) {
                Ok(Some(back)) => {
                    let want = Value::from_kernel(c);
                    if read_back_matches(&want, &back, p.rounding) {
                        ok = true;
                    } else {
                        failures.push(format!("{}: wrote {c:?} inside the namespace but read back {back:?} (rounding {:?})", p.key, p.rounding));
                        ok = true; // the write landed; the mismatch is already reported
                    }
                    break;
                }
                Ok(None) => {
                    failures.push(format!("{}: wrote {c:?} but could not read it back", p.key));
                    ok = true;
                    break;
                }
                Err(e) => refused.push(format!("{c:?}: {e}")),
            }
        }
        if !ok {
            failures.push(format!("{}: the kernel refused every candidate value inside the namespace: {}", p.key, refused.join("; ")));
        } else {
            written.push(p.key.clone());
        }
        let after = host_value(&key);
        if before != after {
            failures.push(format!("{}: the value outside the namespace moved from {before:?} to {after:?}: the key is not per-namespace", p.key));
        }
        drop(ns);
    }
    println!("netns entries: {} written inside fresh namespaces, {} absent on this kernel ({})", written.len(), absent.len(), absent.join(", "));
    assert!(!written.is_empty(), "no netns entry could be tested");
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn netns_read_only_keys_refuse_writes_in_a_fresh_namespace() {
    if !privileged("netns_read_only_keys_refuse_writes_in_a_fresh_namespace") {
        return;
    }
    let kb = Kb::embedded().unwrap();
    let ns = Netns::create(&format!("semantos-kbtest-{}-ro", std::process::id())).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for p in netns_keys(&kb, Scope::NetnsReadOnly) {
        let key = SysctlKey::parse(&p.key).unwrap();
        let path = proc_path(&key).display().to_string();
        let Some(before) = host_value(&key) else {
            // Absent (e.g. nf_conntrack not loaded): nothing to check here.
            continue;
        };
        let current = match ns.read(&path) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: exists here but not readable in a fresh namespace ({e}): the scope is global, not netns_read_only", p.key));
                continue;
            }
        };
        // The same value: even a wrongly writable mirror cannot change anything.
        match ns.write_and_read(&path, current.as_str()) {
            Ok(_) => failures.push(format!("{}: a fresh namespace accepted a write: the scope is netns, not netns_read_only", p.key)),
            Err(e) if e.contains("Permission denied") || e.contains("Read-only") || e.contains("not permitted") => checked.push(p.key.clone()),
            Err(e) => failures.push(format!("{}: the write failed, but not for lack of permission: {e}", p.key)),
        }
        if host_value(&key).as_ref() != Some(&before) {
            failures.push(format!("{}: the value outside the namespace moved", p.key));
        }
    }
    println!("netns_read_only entries refused a write: {}", checked.join(", "));
    assert!(!checked.is_empty(), "no netns_read_only entry could be tested");
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn candidate_values_stay_in_range_and_differ() {
    // Unprivileged: the value picker itself.
    let kb = Kb::embedded().unwrap();
    let p = kb.param("net.ipv4.tcp_ecn").unwrap();
    let c = candidates(p, &Value::int(2));
    assert!(!c.is_empty() && c.iter().all(|v| v != "2" && check_value(p, v).is_ok()), "{c:?}");
    let p = kb.param("net.ipv4.ip_local_port_range").unwrap();
    let c = candidates(p, &Value::from_ints(&[32768, 60999]));
    assert!(c.iter().all(|v| check_value(p, v).is_ok() && v != "32768 60999"), "{c:?}");
    let p = kb.param("net.ipv4.tcp_congestion_control").unwrap();
    assert_eq!(candidates(p, &Value::from_kernel("bbr")).first().map(String::as_str), Some("reno"));
    let p = kb.param("net.ipv4.tcp_sack").unwrap();
    assert!(candidates(p, &Value::int(1)).contains(&"0".to_string()));
}

/// What broke: on a kernel built without CONFIG_NET_FLOW_LIMIT, `semantos kb
/// validate --live` said "NOT consistent" (exit 1) for a key the build simply
/// lacks. Now the binary, on whatever kernel runs the suite, must find no
/// existence mismatch: build-dependent absences are explained from the
/// kernel's config or counted as "cannot tell". Values out of the KB's range
/// are a property of the host, not of the KB, and are not judged here.
#[test]
fn kb_validate_live_reports_no_existence_mismatch_on_this_kernels_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_semantos")).args(["kb", "validate", "--live", "--no-scope", "--json"]).output().expect("running semantos");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let live = &v["live"];
    let existence: Vec<String> = live["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["mismatches"].as_array().cloned().unwrap_or_default())
        .filter(|m| ["missing", "present_after_removal", "present_without_config"].contains(&m["kind"].as_str().unwrap_or("")))
        .map(|m| m["message"].as_str().unwrap_or("").to_string())
        .collect();
    println!("kernel {}, kernel config: {}", live["kernel"], live["build_config"]);
    assert!(existence.is_empty(), "{}", existence.join("\n"));
    // Every absent key the KB expects absent says why (a version or a build option).
    for e in live["entries"].as_array().unwrap().iter().filter(|e| e["status"] == "absent_as_expected" && e["expected_present"] == false) {
        assert!(e["why_absent"].as_str().is_some_and(|w| !w.is_empty()), "{e}");
    }
}
