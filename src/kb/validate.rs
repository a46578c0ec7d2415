//! Consistency checks over the knowledge base: per entry (ranges, defaults,
//! shapes) and across entries (every edge and symptom reference resolves).
//! Live checks against a running kernel live in `kb::live`.

use super::entry::{EdgeKind, Param};
use super::metric::{METRIC_PREFIXES, follows_conventions};
use super::Kb;
use crate::sysctl::value::{Value, ValueKind};
use crate::sysctl::SysctlKey;

/// Checks one entry on its own; the message names the field.
pub fn check_param(p: &Param) -> Result<(), String> {
    SysctlKey::parse(&p.key).map_err(|e| format!("key: {e}"))?;
    if let (Some(lo), Some(hi)) = (p.min, p.max)
        && lo > hi
    {
        return Err(format!("min {lo} is above max {hi}"));
    }
    if p.kind == ValueKind::Enum && p.values.is_empty() {
        return Err("type enum needs `values`".into());
    }
    if p.kind == ValueKind::Ints && p.count < 2 {
        return Err("type ints needs `count` of at least 2".into());
    }
    if let Some(i) = p.adjust_index
        && i >= p.elements()
    {
        return Err(format!("adjust_index {i} is past the {} element(s)", p.elements()));
    }
    if let Some(d) = &p.default {
        check_value(p, d).map_err(|e| format!("default: {e}"))?;
    }
    for (intent, s) in [("latency", &p.suggest.latency), ("throughput", &p.suggest.throughput), ("memory", &p.suggest.memory), ("balanced", &p.suggest.balanced)] {
        if let Some(s) = s {
            check_value(p, s).map_err(|e| format!("suggest.{intent}: {e}"))?;
        }
    }
    for c in &p.conditions {
        if c.sysctl.is_some() == c.metric.is_some() {
            return Err("each condition names exactly one of `sysctl` or `metric`".into());
        }
    }
    check_requires_config(&p.requires_config)
}

/// `requires_config` lists kernel config option names (all of them needed):
/// a misspelt one would never match the kernel's config and silently make
/// the key "absent as expected" everywhere.
fn check_requires_config(options: &[String]) -> Result<(), String> {
    for (i, o) in options.iter().enumerate() {
        if !super::live::kconfig::is_option_name(o) {
            return Err(format!(
                "requires_config: {o:?} is not a kernel config option name; write CONFIG_ followed by upper-case letters, digits or _ (e.g. \"CONFIG_NET_FLOW_LIMIT\"), and put conditions in words into `config`"
            ));
        }
        if options[..i].contains(o) {
            return Err(format!("requires_config: {o} is listed twice"));
        }
    }
    Ok(())
}

/// Parses `raw` as a value of `p` and checks it against the KB range and order.
pub fn check_value(p: &Param, raw: &str) -> Result<Value, String> {
    let v = Value::parse(raw, p.kind, p.elements(), &p.values).map_err(|e| e.to_string())?;
    // Every string key we may write (not `never`) holds names and numbers: congestion-control
    // names, port ranges. `bbr;reboot` is no such value, whichever door it came through (a plan,
    // an LLM reply, a backup that rollback would write back as root).
    if matches!(p.kind, ValueKind::String)
        && p.risk != super::entry::Risk::Never
        && let Some(c) = v.as_str().chars().find(|c| !(c.is_ascii_alphanumeric() || " _-.,:+".contains(*c)))
    {
        return Err(format!("holds {c:?}; a value of {} is made of names and numbers (letters, digits, spaces and _ - . , : +)", p.key));
    }
    if let Some(ints) = v.ints().filter(|_| matches!(p.kind, ValueKind::Int | ValueKind::Bool | ValueKind::Ints)) {
        for (i, x) in ints.iter().enumerate() {
            let which = if ints.len() > 1 { format!("element {} ({x})", i + 1) } else { format!("{x}") };
            if let Some(lo) = p.min
                && *x < lo
            {
                return Err(format!("{which} is below the minimum {lo}{}", unit(p)));
            }
            if let Some(hi) = p.max
                && *x > hi
            {
                return Err(format!("{which} is above the maximum {hi}{}", unit(p)));
            }
        }
        if p.ordered && ints.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("elements of {v} must be in non-decreasing order"));
        }
    }
    Ok(v)
}

fn unit(p: &Param) -> String {
    p.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
}

/// Cross-entry checks: every edge end, symptom reference and condition key resolves.
pub fn check_consistency(kb: &Kb) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    for e in &kb.edges {
        for end in [&e.from, &e.to] {
            if !kb.params.contains_key(end) {
                errs.push(format!("edge {:?} {} -> {}: no entry for {end}", e.kind, e.from, e.to));
            }
        }
        if e.kind == EdgeKind::Invariant && e.relation.is_none() {
            errs.push(format!("invariant {} -> {} has no relation", e.from, e.to));
        }
    }
    for p in kb.params.values() {
        for s in p.symptoms.iter().chain(&p.counter_symptoms) {
            if !kb.symptoms.contains_key(s) {
                errs.push(format!("{}: symptom {s:?} is not defined in any symptoms table", p.key));
            }
        }
        for c in &p.conditions {
            if let Some(k) = &c.sysctl
                && !kb.params.contains_key(k)
            {
                errs.push(format!("{}: condition names {k}, which has no entry", p.key));
            }
            if let Some(k) = c.value.strip_prefix('$')
                && !kb.params.contains_key(k)
            {
                errs.push(format!("{}: condition compares with ${k}, which has no entry", p.key));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}


/// Stricter checks the shipped knowledge base must pass on top of
/// [`check_consistency`]: they catch entries that load but cannot work as
/// written (an edge index past the end of a vector, a `set` direction
/// without a value, symptoms on a parameter that has no direction, a
/// `never` entry that carries suggestions, an absolute threshold on a count
/// whose meaning depends on a limit). Each message names the key, edge or
/// symptom and what would be valid. User override files are not held to this.
pub fn lint(kb: &Kb) -> Vec<String> {
    let mut out = lint_edges(kb);
    for p in kb.params.values() {
        out.extend(lint_param(p));
    }
    out.extend(lint_symptoms(kb));
    out.extend(super::limits::lint(kb));
    out
}

fn lint_edges(kb: &Kb) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &kb.edges {
        let name = format!("edge {:?} {} -> {}", e.kind, e.from, e.to);
        if e.from == e.to {
            out.push(format!("{name}: an edge from a key to itself"));
        }
        if !seen.insert((e.kind, e.from.clone(), e.to.clone())) {
            out.push(format!("{name}: duplicate"));
        }
        if e.note.trim().is_empty() {
            out.push(format!("{name}: empty note; say why the edge exists"));
        }
        let invariant = e.kind == EdgeKind::Invariant;
        if !invariant && (e.relation.is_some() || e.from_index.is_some() || e.to_index.is_some() || !e.unless_from.is_empty() || !e.unless_to.is_empty()) {
            out.push(format!("{name}: relation, indices and unless_* apply to invariants only"));
        }
        for (end, idx) in [(&e.from, e.from_index), (&e.to, e.to_index)] {
            let Some(p) = kb.params.get(end) else { continue };
            if invariant && !matches!(p.kind, ValueKind::Int | ValueKind::Bool | ValueKind::Ints) {
                out.push(format!("{name}: {end} is {:?}, but an invariant compares numbers", p.kind));
            }
            if let Some(i) = idx
                && i >= p.elements()
            {
                out.push(format!("{name}: index {i} is past the {} element(s) of {end}", p.elements()));
            }
            if invariant && idx.is_none() && p.elements() > 1 {
                out.push(format!("{name}: {end} has {} elements; say which one with from_index/to_index", p.elements()));
            }
        }
    }
    out
}

/// Directions, suggestions and risk of one entry agree with each other.
fn lint_param(p: &Param) -> Vec<String> {
    use super::entry::{Direction, Risk};
    let mut out = Vec::new();
    let k = &p.key;
    if p.references.is_empty() {
        out.push(format!("{k}: no references; cite the documentation section or commit the entry rests on"));
    }
    if (!p.symptoms.is_empty() || !p.counter_symptoms.is_empty()) && p.direction.is_empty() {
        out.push(format!("{k}: has symptoms but no direction, so no symptom can ever move it"));
    }
    for (intent, d) in [("latency", p.direction.latency), ("throughput", p.direction.throughput), ("memory", p.direction.memory), ("balanced", p.direction.balanced)] {
        let Some(d) = d else { continue };
        let suggested = match intent {
            "latency" => p.suggest.latency.as_ref(),
            "throughput" => p.suggest.throughput.as_ref(),
            "memory" => p.suggest.memory.as_ref(),
            _ => p.suggest.balanced.as_ref(),
        }
        .or(p.suggest.balanced.as_ref());
        if d == Direction::Set && suggested.is_none() {
            out.push(format!("{k}: direction.{intent} = \"set\" needs suggest.{intent} (or suggest.balanced): set to what?"));
        }
    }
    if p.risk == Risk::Never {
        let moving = [p.direction.latency, p.direction.throughput, p.direction.memory, p.direction.balanced].into_iter().flatten().any(|d| d != Direction::Keep);
        if moving || !p.suggest.is_empty() || !p.symptoms.is_empty() || !p.counter_symptoms.is_empty() || p.sizing.is_some() {
            out.push(format!("{k}: risk \"never\" but it carries a direction, suggestion, symptom or sizing; a never entry is never proposed"));
        }
    }
    if p.no_read.is_some() && p.risk != Risk::Never {
        out.push(format!("{k}: no_read is set but risk is {:?}; a key that cannot be read cannot be backed up, so it must be risk \"never\"", p.risk));
    }
    if p.ordered && p.kind != ValueKind::Ints {
        out.push(format!("{k}: ordered applies to type \"ints\" only"));
    }
    if !p.values.is_empty() && p.kind != ValueKind::Enum {
        out.push(format!("{k}: values applies to type \"enum\" only"));
    }
    out.extend(lint_versions(p));
    if p.default.is_none() && p.removed_in.is_none() && p.risk != Risk::Never {
        let said = |s: &str| s.to_lowercase().contains("default");
        if !said(&p.risk_reason) && !p.effect_note.as_deref().is_some_and(said) {
            out.push(format!("{k}: no default; when it is RAM- or build-dependent say so in risk_reason or effect_note"));
        }
    }
    out
}

/// `config`, `since` and `removed_in` say what live validation can check.
fn lint_versions(p: &Param) -> Vec<String> {
    use super::live::presence::KernelVersion;
    let mut out = Vec::new();
    let k = &p.key;
    if let Some(c) = &p.config
        && super::live::kconfig::is_option_name(c.trim())
    {
        out.push(format!("{k}: config = {c:?} names only a build option; write requires_config = [{c:?}] so live validation can check it against the kernel's config"));
    }
    if p.removed_in.is_some() && p.no_op {
        out.push(format!("{k}: both removed_in and no_op; a removed key is absent, a no-op key is present"));
    }
    if let (Some(s), Some(r)) = (&p.since, &p.removed_in)
        && KernelVersion::parse(s) >= KernelVersion::parse(r)
    {
        out.push(format!("{k}: since {s} is not before removed_in {r}"));
    }
    for v in [&p.since, &p.removed_in].into_iter().flatten() {
        if KernelVersion::parse(v).is_none() {
            out.push(format!("{k}: version {v:?} is not major.minor[.patch]"));
        }
    }
    out
}

fn lint_symptoms(kb: &Kb) -> Vec<String> {
    use super::entry::Measure;
    let mut out = Vec::new();
    for s in kb.symptoms.values() {
        for sig in &s.when {
            for m in std::iter::once(&sig.metric).chain(&sig.per) {
                if !follows_conventions(m) {
                    out.push(format!("symptom {}: metric {m:?} follows none of the telemetry conventions ({})", s.id, METRIC_PREFIXES.join(", ")));
                }
            }
            if (sig.measure == Measure::Ratio) != sig.per.is_some() {
                out.push(format!("symptom {}: metric {:?}: `per` is required with measure ratio and meaningless otherwise", s.id, sig.metric));
            }
            let stars = |m: &str| m.matches('*').count();
            let (num, den) = (stars(&sig.metric), sig.per.as_deref().map_or(0, stars));
            if num > 1 || den > 1 || (sig.per.is_some() && num != den) || (sig.measure != Measure::Ratio && num > 0) {
                out.push(format!("symptom {}: metric {:?}: a `*` (one instance, e.g. a listening port) is allowed once, in a ratio, in both `metric` and `per`", s.id, sig.metric));
            }
        }
        if s.when.is_empty() {
            out.push(format!("symptom {}: no signals, so it can never fire", s.id));
        }
    }
    out
}


#[cfg(test)]
mod tests {
    //! Schema and consistency tests over every shipped entry. The counts and
    //! lists here are the acceptance criteria of the knowledge base; the
    //! `seed_entries_*` test guards the entries the simulator depends on.

    use super::*;
    use crate::kb::entry::{Intent, Risk, Scope};
    use crate::kb::query::{count_by_subsystem, count_edges_by_kind, subsystem_of};

    fn kb() -> Kb {
        Kb::embedded().unwrap()
    }

    #[test]
    fn every_entry_passes_the_schema_checks() {
        let kb = kb();
        for p in kb.params.values() {
            check_param(p).unwrap_or_else(|e| panic!("{}: {e}", p.key));
            assert!(!p.controls.trim().is_empty() && !p.risk_reason.trim().is_empty(), "{}", p.key);
        }
        check_consistency(&kb).unwrap();
    }

    #[test]
    fn a_string_value_with_shell_characters_is_refused_for_a_key_we_may_write() {
        let kb = Kb::embedded().unwrap();
        let cc = kb.param("net.ipv4.tcp_congestion_control").unwrap();
        assert!(check_value(cc, "bbr").is_ok());
        assert!(check_value(cc, "bbr;reboot").unwrap_err().contains("';'"));
        let ports = kb.param("net.ipv4.ip_local_reserved_ports").unwrap();
        assert!(check_value(ports, "1000-1010,2000").is_ok());
        assert!(check_value(kb.param("net.ipv4.tcp_allowed_congestion_control").unwrap(), "reno cubic bbr").is_ok());
    }

    #[test]
    fn requires_config_must_name_config_options() {
        let entry = |req: &str| {
            let mut kb = Kb::default();
            let text = format!("[[param]]\nkey = \"net.core.flow_limit_table_len\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"low\"\nrisk_reason = \"r\"\ncontrols = \"c\"\nrequires_config = {req}\n");
            kb.merge_text(&text, "t.toml").map(|_| kb.params.into_values().next().unwrap()).map_err(|e| format!("{e:#}"))
        };
        let p = entry("[\"CONFIG_NET_FLOW_LIMIT\", \"CONFIG_RPS\"]").unwrap();
        assert_eq!(check_param(&p), Ok(()));
        for (bad, why) in [("[\"NET_FLOW_LIMIT\"]", "is not a kernel config option name"), ("[\"CONFIG_net\"]", "is not a kernel config option name"), ("[\"CONFIG_RPS\", \"CONFIG_RPS\"]", "listed twice")] {
            // Either the loader or check_param refuses it, naming the field.
            let err = entry(bad).and_then(|p| check_param(&p)).unwrap_err();
            assert!(err.contains("requires_config") && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn shipped_kb_is_lint_clean() {
        let problems = lint(&kb());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn lint_catches_unusable_entries() {
        let mut kb = Kb::default();
        let text = r#"
[[param]]
key = "vm.a"
type = "int"
scope = "global"
risk = "never"
risk_reason = "r"
controls = "c"
direction = { latency = "raise" }
references = ["x"]

[[param]]
key = "net.ipv4.b"
type = "ints"
count = 2
scope = "netns"
risk = "low"
risk_reason = "r"
controls = "c"
default = "1 2"
direction = { latency = "set" }
references = ["x"]

[[param]]
key = "vm.c"
type = "int"
scope = "global"
risk = "low"
risk_reason = "r"
controls = "c"
no_read = "secret"
symptoms = ["s"]
references = []

[[edge]]
kind = "invariant"
from = "vm.a"
to = "net.ipv4.b"
relation = "less_equal"
note = "n"

[[edge]]
kind = "requires"
from = "vm.a"
to = "net.ipv4.b"
to_index = 5
note = "n"

[[symptom]]
id = "s"
title = "t"
explain = "e"
when = [{ metric = "made.up", measure = "ratio", op = ">", value = 1.0 }]
"#;
        kb.merge_text(text, "t.toml").unwrap();
        let all = lint(&kb).join("\n");
        for frag in [
            "vm.a: risk \"never\" but it carries a direction",
            "net.ipv4.b: direction.latency = \"set\" needs suggest.latency",
            "net.ipv4.b has 2 elements; say which one",
            "relation, indices and unless_* apply to invariants only",
            "index 5 is past the 2 element(s) of net.ipv4.b",
            "vm.c: no references",
            "vm.c: has symptoms but no direction",
            "vm.c: no_read is set but risk is Low",
            "vm.c: no default",
            "metric \"made.up\" follows none of the telemetry conventions",
            "`per` is required with measure ratio",
        ] {
            assert!(all.contains(frag), "missing {frag:?} in:\n{all}");
        }
    }

    #[test]
    fn kb_covers_the_subsystems_practitioners_tune() {
        let kb = kb();
        assert!(kb.params.len() >= 160, "only {} parameters", kb.params.len());
        let by_sub = count_by_subsystem(&kb);
        for (sub, at_least) in [("vm", 30), ("net.core", 15), ("net.ipv4", 60), ("net.ipv6", 10), ("net.netfilter", 10), ("net.unix", 1), ("kernel", 40), ("fs", 15), ("user", 5)] {
            assert!(by_sub.get(sub).copied().unwrap_or(0) >= at_least, "{sub}: {:?}", by_sub.get(sub));
        }
        for prefix in ["net.ipv4.tcp_", "net.ipv4.udp_", "net.ipv4.ip_local_port_range", "net.ipv4.neigh.", "net.ipv4.conf.", "net.ipv4.ipfrag_", "net.ipv4.route."] {
            assert!(kb.params.keys().any(|k| k.starts_with(prefix)), "nothing under {prefix}");
        }
        assert!(kb.symptoms.len() >= 25);
        assert!(kb.edges.len() >= 40);
    }

    #[test]
    fn keys_that_must_never_be_touched_are_never() {
        let kb = kb();
        let never = [
            "kernel.randomize_va_space", "kernel.kptr_restrict", "kernel.dmesg_restrict", "kernel.perf_event_paranoid", "kernel.yama.ptrace_scope",
            "kernel.unprivileged_bpf_disabled", "fs.protected_symlinks", "fs.protected_hardlinks", "fs.protected_regular", "fs.protected_fifos",
            "fs.suid_dumpable", "kernel.core_pattern", "kernel.core_uses_pid", "kernel.sysrq", "kernel.io_uring_disabled", "vm.mmap_min_addr",
            "vm.unprivileged_userfaultfd", "vm.mmap_rnd_bits", "net.core.bpf_jit_enable", "net.core.bpf_jit_harden", "net.core.bpf_jit_kallsyms",
            "net.core.bpf_jit_limit", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "user.max_user_namespaces",
            "user.max_net_namespaces", "user.max_pid_namespaces", "user.max_mnt_namespaces", "kernel.modules_disabled", "kernel.kexec_load_disabled",
            "vm.drop_caches", "vm.compact_memory", "vm.stat_refresh", "net.ipv4.route.flush", "net.ipv6.route.flush", "net.ipv4.tcp_fastopen_key",
            "net.ipv6.conf.default.stable_secret", "kernel.panic", "kernel.panic_on_oops", "kernel.panic_on_warn", "vm.panic_on_oom", "kernel.tainted",
            "kernel.hostname", "kernel.domainname", "kernel.ns_last_pid", "kernel.modprobe", "kernel.poweroff_cmd", "kernel.cad_pid", "kernel.ctrl-alt-del",
            "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.all.accept_redirects",
            "net.ipv4.conf.all.accept_source_route", "net.ipv6.conf.all.disable_ipv6",
        ];
        for key in never {
            let p = kb.param(key).unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(p.risk, Risk::Never, "{key}");
        }
        for key in ["net.ipv4.tcp_fastopen_key", "net.ipv6.conf.default.stable_secret"] {
            assert_eq!(kb.param(key).unwrap().no_read, Some(crate::kb::entry::NoRead::Secret), "{key}");
        }
        assert_eq!(kb.param("vm.stat_refresh").unwrap().no_read, Some(crate::kb::entry::NoRead::SideEffect));
    }

    #[test]
    fn removed_and_inert_keys_say_so() {
        let kb = kb();
        for (key, removed) in [
            ("kernel.sched_latency_ns", "5.13"),
            ("kernel.sched_min_granularity_ns", "5.13"),
            ("kernel.sched_wakeup_granularity_ns", "5.13"),
            ("kernel.sched_migration_cost_ns", "5.13"),
            ("net.ipv4.tcp_tw_recycle", "4.12"),
            ("vm.percpu_pagelist_fraction", "5.14"),
        ] {
            let p = kb.param(key).unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(p.removed_in.as_deref(), Some(removed), "{key}");
            assert!(p.moved_to.is_some(), "{key}: say where it went");
        }
        for key in ["net.ipv4.tcp_low_latency", "net.ipv4.tcp_fack", "net.ipv4.tcp_adv_win_scale", "net.ipv4.udp_wmem_min", "net.ipv4.route.max_size"] {
            assert!(kb.param(key).unwrap().no_op, "{key}");
        }
        for (key, since) in [("net.ipv4.tcp_rto_max_ms", "6.15"), ("vm.defrag_mode", "6.15"), ("net.ipv4.tcp_ecn_option", "6.18"), ("kernel.io_uring_disabled", "6.6")] {
            assert_eq!(kb.param(key).unwrap().since.as_deref(), Some(since), "{key}");
        }
    }

    #[test]
    fn scopes_follow_the_netns_experiment() {
        let kb = kb();
        let scope = |k: &str| kb.param(k).unwrap_or_else(|| panic!("{k} missing")).scope;
        for k in ["net.core.somaxconn", "net.core.optmem_max", "net.ipv4.tcp_rmem", "net.ipv4.ip_local_port_range", "net.ipv4.ip_forward", "net.unix.max_dgram_qlen", "net.ipv6.conf.all.disable_ipv6"] {
            assert_eq!(scope(k), Scope::Netns, "{k}");
        }
        for k in ["net.core.rmem_max", "net.core.wmem_default", "net.netfilter.nf_conntrack_max", "net.ipv4.tcp_allowed_congestion_control"] {
            assert_eq!(scope(k), Scope::NetnsReadOnly, "{k}");
        }
        for k in ["net.core.netdev_max_backlog", "net.ipv4.tcp_mem", "net.ipv4.udp_mem", "net.ipv4.tcp_max_orphans", "net.ipv4.neigh.default.gc_thresh3", "vm.swappiness"] {
            assert_eq!(scope(k), Scope::Global, "{k}");
        }
        assert_eq!(scope("kernel.shmmax"), Scope::Ipcns);
        assert_eq!(scope("kernel.hostname"), Scope::Utsns);
        assert_eq!(scope("kernel.pid_max"), Scope::Pidns);
        assert_eq!(kb.param("net.core.rps_sock_flow_entries").unwrap().rounding, crate::sysctl::value::Rounding::PowerOfTwo);
        assert_eq!(kb.param("net.ipv4.tcp_invalid_ratelimit").unwrap().rounding, crate::sysctl::value::Rounding::JiffiesMs);
    }

    #[test]
    fn required_edges_are_present() {
        let kb = kb();
        let has = |kind: EdgeKind, from: &str, to: &str| kb.edges.iter().find(|e| e.kind == kind && e.from == from && e.to == to).cloned();
        for (a, b) in [("vm.dirty_bytes", "vm.dirty_ratio"), ("vm.dirty_background_bytes", "vm.dirty_background_ratio"), ("vm.overcommit_kbytes", "vm.overcommit_ratio")] {
            assert!(has(EdgeKind::MutuallyExclusive, a, b).is_some(), "{a} <-> {b}");
        }
        let inv = |a: &str, b: &str| has(EdgeKind::Invariant, a, b).unwrap_or_else(|| panic!("invariant {a} -> {b} missing"));
        assert_eq!(inv("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_port_range").to_index, Some(0));
        assert_eq!(inv("kernel.sched_rt_runtime_us", "kernel.sched_rt_period_us").unless_from, vec![-1]);
        inv("net.ipv4.tcp_reordering", "net.ipv4.tcp_max_reordering");
        inv("net.ipv4.ipfrag_low_thresh", "net.ipv4.ipfrag_high_thresh");
        inv("net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2");
        inv("net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3");
        assert!(kb.param("net.ipv4.ip_local_port_range").unwrap().ordered);
        let kinds = count_edges_by_kind(&kb);
        for k in [EdgeKind::SynergizesWith, EdgeKind::ConflictsWith, EdgeKind::Requires, EdgeKind::BoundedBy, EdgeKind::MutuallyExclusive, EdgeKind::Invariant] {
            assert!(kinds.get(&k).copied().unwrap_or(0) >= 1, "no {k:?} edge");
        }
    }

    /// The seed entries the simulator and the reproduction depend on: their
    /// type, range, symptoms, directions, suggestions, sizing and conditions
    /// must not drift. A change here is a change of the reproduction.
    #[test]
    fn seed_entries_the_simulator_uses_are_unchanged() {
        let kb = kb();
        let fingerprint = |key: &str| {
            let p = kb.param(key).unwrap_or_else(|| panic!("{key} missing"));
            let dir = |i: Intent| p.direction.get(i).map(|d| format!("{d:?}")).unwrap_or_default();
            let sug = |i: Intent| p.suggest.get(i).cloned().unwrap_or_default();
            format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}/{}/{}/{}|{}/{}/{}/{}|{:?}|{:?}|{}",
                p.kind,
                p.min,
                p.max,
                p.symptoms,
                p.counter_symptoms,
                p.adjust_index,
                dir(Intent::Latency),
                dir(Intent::Throughput),
                dir(Intent::Memory),
                dir(Intent::Balanced),
                sug(Intent::Latency),
                sug(Intent::Throughput),
                sug(Intent::Memory),
                sug(Intent::Balanced),
                p.sizing.as_ref().map(|s| (s.metric.clone(), s.factor, s.pow2)),
                p.conditions.iter().map(|c| (c.sysctl.clone(), c.metric.clone(), c.op.symbol(), c.value.clone())).collect::<Vec<_>>(),
                p.ordered,
            )
        };
        let expected = [
            ("vm.dirty_ratio", "Int|Some(1)|Some(100)|[\"dirty_writeback_stalls\"]|[\"dirty_throttling\"]|None|Lower/Raise/Lower/Lower|5/40/10/10|None|[]|false"),
            ("vm.dirty_background_ratio", "Int|Some(1)|Some(100)|[\"dirty_writeback_stalls\"]|[\"dirty_throttling\"]|None|Lower/Raise/Lower/Lower|2/10/5/5|None|[]|false"),
            ("vm.dirty_expire_centisecs", "Int|Some(100)|Some(360000)|[\"dirty_writeback_stalls\"]|[\"dirty_throttling\"]|None|Lower/Raise/Lower/Lower|1500/1500/1500/1500|None|[]|false"),
            ("vm.swappiness", "Int|Some(0)|Some(200)|[\"swap_in_stalls\"]|[\"file_cache_thrashing\"]|None|Lower/Lower/Keep/Lower|10/30/20/20|None|[]|false"),
            ("vm.watermark_scale_factor", "Int|Some(1)|Some(1000)|[\"direct_reclaim_stalls\"]|[]|None|Raise/Raise/Keep/Raise|100/50/50/50|None|[]|false"),
            ("net.core.somaxconn", "Int|Some(128)|Some(65535)|[\"accept_queue_overflow\", \"accept_queue_full\", \"syn_queue_drops\", \"syn_queue_full_cookies\"]|[]|None|Raise/Raise/Raise/Raise|4096/8192/4096/4096|None|[(None, Some(\"listen.backlog.max\"), \">=\", \"$net.core.somaxconn\")]|false"),
            ("net.core.netdev_max_backlog", "Int|Some(1000)|Some(262144)|[\"softnet_backlog_drops\"]|[]|None|Raise/Raise/Raise/Raise|8192/16384/8192/8192|None|[]|false"),
            ("net.core.netdev_budget", "Int|Some(300)|Some(4000)|[\"softnet_time_squeeze\"]|[]|None|Raise/Raise/Raise/Raise|600/1200/600/600|None|[]|false"),
            ("net.ipv4.tcp_rmem", "Ints|Some(4096)|Some(1073741824)|[\"receive_window_limited\"]|[]|Some(2)|Raise/Raise/Keep/Raise|///|Some((\"sock.bdp_bytes.max\", 4.0, true))|[]|true"),
            ("net.ipv4.tcp_wmem", "Ints|Some(4096)|Some(1073741824)|[\"send_buffer_limited\"]|[]|Some(2)|Raise/Raise/Keep/Raise|///|Some((\"sock.bdp_bytes.max\", 4.0, true))|[]|true"),
            ("net.ipv4.tcp_slow_start_after_idle", "Bool|None|None|[\"cwnd_collapse_after_idle\"]|[]|None|Set/Set/Set/Set|0/0/0/0|None|[(None, Some(\"sock.cc.bbr.share\"), \"<\", \"0.5\")]|false"),
            ("kernel.sched_latency_ns", "Int|Some(100000)|Some(1000000000)|[\"cpu_runqueue_delay\"]|[]|None|Lower/Raise/Keep/Keep|3000000///|None|[]|false"),
            ("kernel.sched_min_granularity_ns", "Int|Some(100000)|Some(1000000000)|[\"cpu_runqueue_delay\"]|[]|None|Lower/Raise/Keep/Keep|375000///|None|[]|false"),
            ("kernel.numa_balancing", "Int|Some(0)|Some(3)|[\"numa_hint_fault_overhead\"]|[]|None|Set/Set/Set/Set|0/0/0/0|None|[(None, Some(\"host.numa_nodes\"), \">\", \"1\")]|false"),
        ];
        let diffs: Vec<String> = expected.iter().filter(|(k, want)| fingerprint(k) != *want).map(|(k, want)| format!("{k}:\n  want {want}\n  got  {}", fingerprint(k))).collect();
        assert!(diffs.is_empty(), "{}", diffs.join("\n"));
        // Their symptoms stay theirs: no other entry reacts to the simulator's findings.
        let seed: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
        for p in kb.params.values().filter(|p| !seed.contains(&p.key.as_str())) {
            for s in p.symptoms.iter().chain(&p.counter_symptoms) {
                let owners: Vec<&str> = seed.iter().copied().filter(|k| kb.param(k).unwrap().symptoms.iter().chain(&kb.param(k).unwrap().counter_symptoms).any(|x| x == s)).collect();
                assert!(owners.is_empty(), "{} uses symptom {s} of the seed entries {owners:?}", p.key);
            }
        }
    }

    #[test]
    fn subsystem_of_every_key_is_known() {
        let kb = kb();
        for k in kb.params.keys() {
            assert!(
                ["vm", "kernel", "fs", "user", "net", "net.core", "net.ipv4", "net.ipv6", "net.netfilter", "net.unix"].contains(&subsystem_of(k)),
                "{k} -> {}",
                subsystem_of(k)
            );
        }
    }
}
