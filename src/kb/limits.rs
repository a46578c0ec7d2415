//! Counts against their limits. `[[limit]]` entries (kb/limits.toml) pair a
//! usage metric with the limits it runs into on the same host; this module
//! finds the entry for a metric and lints the symptoms against them: a count
//! whose meaning depends on a limit is judged only as a ratio to that limit,
//! read from the same snapshot, because 30 000 conntrack entries are nothing
//! on one host and a full table on another.

use super::Kb;
use super::entry::{Limit, Measure};
use super::metric::{follows_conventions, match_metric};

/// The `[[limit]]` entry whose usage is `metric` (a pattern entry matches
/// each of its instances), and the instance its `*` matched.
pub fn limit_of<'a, 'm>(kb: &'a Kb, metric: &'m str) -> Option<(&'a Limit, &'m str)> {
    kb.limits.iter().find_map(|l| if l.usage == metric { Some((l, "")) } else { match_metric(&l.usage, metric).map(|i| (l, i)) })
}

/// The limits of `l` for one instance (`*` replaced; a pattern signal keeps its `*`).
fn limits_for(l: &Limit, instance: &str) -> Vec<String> {
    if instance.is_empty() { l.limits.clone() } else { l.limits.iter().map(|m| m.replacen('*', instance, 1)).collect() }
}

/// Problems with the `[[limit]]` entries and with symptoms that judge a
/// usage metric other than as a ratio to one of its limits. Each message
/// names the symptom, the metric, its limits and the form to write.
pub fn lint(kb: &Kb) -> Vec<String> {
    let mut out = lint_entries(kb);
    out.extend(lint_sysctl_names(kb));
    for s in kb.symptoms.values() {
        for sig in &s.when {
            let Some((l, instance)) = limit_of(kb, &sig.metric) else { continue };
            let limits = limits_for(l, instance);
            let per = sig.per.as_deref().unwrap_or("");
            if sig.measure != Measure::Ratio {
                out.push(format!(
                    "symptom {}: {} {} {} is an absolute threshold on a count that runs into a limit ({}: {}); the same count is harmless on one host and exhausting on another. Write it as {{ metric = \"{}\", measure = \"ratio\", per = \"{}\", op = \"{}\", value = <fraction of the limit> }}",
                    s.id,
                    sig.metric,
                    sig.op.symbol(),
                    sig.value,
                    limits.join(", "),
                    l.note,
                    sig.metric,
                    limits[0],
                    sig.op.symbol()
                ));
            } else if !limits.iter().any(|m| m == per) {
                out.push(format!("symptom {}: {} per {per:?}: {per:?} is not a limit {} runs into; divide by one of {}", s.id, sig.metric, sig.metric, limits.join(", ")));
            }
        }
    }
    out
}

/// A `sysctl.<key>` metric names a key the KB knows and may read: the live
/// diagnosis reads nothing else (a secret, or `vm.stat_refresh`, which acts
/// when read), so any other name would be "no data" forever.
fn lint_sysctl_names(kb: &Kb) -> Vec<String> {
    let signals = kb.symptoms.values().flat_map(|s| s.when.iter().flat_map(move |w| std::iter::once(&w.metric).chain(&w.per).map(move |m| (format!("symptom {}", s.id), m))));
    let limits = kb.limits.iter().flat_map(|l| l.limits.iter().map(move |m| (format!("limit {:?}", l.usage), m)));
    let mut out = Vec::new();
    for (who, m) in signals.chain(limits) {
        let Some(key) = m.strip_prefix("sysctl.") else { continue };
        match kb.param(key) {
            None => out.push(format!("{who}: {m} names {key}, which has no KB entry; a live diagnosis reads only keys the KB knows")),
            Some(p) if p.no_read.is_some() => out.push(format!("{who}: {m} names {key}, which is never read (no_read); divide by another limit")),
            Some(_) => {}
        }
    }
    out
}

/// Each entry names snapshot metrics, at least one limit, a reason, and uses `*` consistently.
fn lint_entries(kb: &Kb) -> Vec<String> {
    let mut out = Vec::new();
    for (i, l) in kb.limits.iter().enumerate() {
        let name = format!("limit {:?}", l.usage);
        if kb.limits[..i].iter().any(|x| x.usage == l.usage) {
            out.push(format!("{name}: listed twice"));
        }
        if l.limits.is_empty() {
            out.push(format!("{name}: no limits; name the metric of the limit it runs into"));
        }
        if l.note.trim().is_empty() {
            out.push(format!("{name}: empty note; say which kernel mechanism makes the limit bind"));
        }
        let stars = l.usage.matches('*').count();
        for m in std::iter::once(&l.usage).chain(&l.limits) {
            if !follows_conventions(m) {
                out.push(format!("{name}: {m:?} follows none of the telemetry conventions; the limit must be read from the same snapshot"));
            }
            if m.matches('*').count() != stars || stars > 1 {
                out.push(format!("{name}: {m:?}: a `*` stands for one instance and must appear once in the usage and in every limit, or nowhere"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(text: &str) -> Kb {
        let mut kb = Kb::default();
        kb.merge_text(text, "t.toml").unwrap();
        kb
    }

    const LIMITS: &str = r#"
[[limit]]
usage = "vmstat.nr_dirty"
limits = ["vmstat.nr_dirty_background_threshold", "vmstat.nr_dirty_threshold"]
note = "writeback starts at the background threshold"

[[limit]]
usage = "listen.*.queue.max"
limits = ["listen.*.backlog"]
note = "the accept queue overflows past the backlog in force"
"#;

    fn check(when: &str) -> String {
        lint(&kb(&format!("{LIMITS}\n[[symptom]]\nid = \"s\"\ntitle = \"t\"\nexplain = \"e\"\nwhen = [{when}]\n"))).join("\n")
    }

    #[test]
    fn an_absolute_threshold_on_a_count_with_a_limit_is_an_error() {
        let msg = check(r#"{ metric = "vmstat.nr_dirty", measure = "gauge", op = ">", value = 32768.0 }"#);
        assert!(msg.contains("symptom s: vmstat.nr_dirty > 32768 is an absolute threshold"), "{msg}");
        assert!(msg.contains("per = \"vmstat.nr_dirty_background_threshold\""), "{msg}");
        let msg = check(r#"{ metric = "listen.8080.queue.max", measure = "gauge", op = ">", value = 100.0 }"#);
        assert!(msg.contains("per = \"listen.8080.backlog\""), "{msg}");
    }

    #[test]
    fn a_ratio_must_divide_by_a_limit_the_count_runs_into() {
        let msg = check(r#"{ metric = "vmstat.nr_dirty", measure = "ratio", per = "meminfo.MemTotal", op = ">", value = 0.5 }"#);
        assert!(msg.contains("\"meminfo.MemTotal\" is not a limit vmstat.nr_dirty runs into"), "{msg}");
        for good in [
            r#"{ metric = "vmstat.nr_dirty", measure = "ratio", per = "vmstat.nr_dirty_threshold", op = ">", value = 0.5 }"#,
            r#"{ metric = "listen.*.queue.max", measure = "ratio", per = "listen.*.backlog", op = ">=", value = 1.0 }"#,
            r#"{ metric = "netstat.TcpExt.ListenOverflows", measure = "rate", op = ">", value = 0.2 }"#,
        ] {
            assert_eq!(check(good), "", "{good}");
        }
    }

    #[test]
    fn a_sysctl_limit_must_be_a_key_the_kb_may_read() {
        let text = "[[param]]\nkey = \"vm.stat_refresh\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"never\"\nrisk_reason = \"r\"\ncontrols = \"c\"\nno_read = \"side_effect\"\n\n[[limit]]\nusage = \"sockstat.TCP.orphan\"\nlimits = [\"sysctl.vm.stat_refresh\", \"sysctl.net.ipv4.no_such_key\"]\nnote = \"n\"\n";
        let msg = lint(&kb(text)).join("\n");
        assert!(msg.contains("names vm.stat_refresh, which is never read"), "{msg}");
        assert!(msg.contains("names net.ipv4.no_such_key, which has no KB entry"), "{msg}");
    }

    #[test]
    fn limit_entries_are_checked() {
        let bad = kb("[[limit]]\nusage = \"made.up\"\nlimits = []\nnote = \" \"\n\n[[limit]]\nusage = \"listen.*.queue.max\"\nlimits = [\"listen.backlog.max\"]\nnote = \"n\"\n");
        let msg = lint(&bad).join("\n");
        for frag in ["no limits", "empty note", "\"made.up\" follows none", "must appear once in the usage and in every limit"] {
            assert!(msg.contains(frag), "missing {frag:?} in:\n{msg}");
        }
    }
}
