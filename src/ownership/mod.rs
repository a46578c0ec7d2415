//! Who owns a sysctl on this host: sysctl.d files (with systemd-sysctl's precedence), TuneD's
//! active profile, a running bpftune, kubelet's sysctl settings, and SemantOS's own drop-ins and
//! applied runs. Readers take a root path; the verdicts are pure functions over what they read.
//!
//! The one entry point is [`owners`]: the keys asked about, each with every owner found, and a
//! [`Report`] that says which owners block a write (`Report::refusal`, `Report::conflicts` for the
//! agent's metrics). SemantOS's own records come in as data ([`SemantosRecords`]): reading a
//! backup is `apply`'s business, and `apply` sits above this module.

pub mod model;
pub mod services;
pub mod sysctld;
pub mod tuned;

pub use model::{KeyOwners, Line, Owner, OwnerKind, Ours, Report, Roots, SemantosRecords};

use crate::sysctl::SysctlKey;
use anyhow::Result;

/// Every owner of each of `keys` under `roots`, SemantOS's `ours` included. An invalid key name is
/// an error; a file that cannot be read or understood is a warning in the report, never fatal.
pub fn owners(roots: &Roots, ours: &SemantosRecords, keys: &[String]) -> Result<Report> {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| SysctlKey::parse(k).map(|k| k.to_string()).map_err(|e| anyhow::anyhow!("{k:?} is not a sysctl name: {e}; give dotted names such as net.core.somaxconn")))
        .collect::<Result<_>>()?;
    let files = sysctld::read(roots);
    let profiles = tuned::read(roots);
    let bpftune = services::bpftune_pids(roots);
    let kubelet = services::kubelet(roots);
    let mut report = Report { keys: Vec::new(), looked_at: Vec::new(), warnings: Vec::new() };
    report.looked_at.extend(files.read.iter().map(|f| format!("sysctl.d {}", f.display())));
    report.looked_at.extend(files.masked.iter().map(|f| format!("sysctl.d {} (masked: a link to /dev/null)", f.display())));
    if !profiles.profiles.is_empty() {
        report.looked_at.push(format!("tuned active profile {}", profiles.profiles.join(" ")));
    }
    report.looked_at.extend(bpftune.iter().map(|p| format!("bpftune pid {p}")));
    report.looked_at.extend(kubelet.looked_at.iter().cloned());
    report.warnings.extend(files.warnings.iter().chain(&profiles.warnings).chain(&kubelet.warnings).cloned());
    for key in keys {
        let mut found = semantos_owners(ours, &key);
        found.extend(sysctld_owner(&files, ours, &key));
        found.extend(tuned_owner(&profiles, &key));
        found.extend(bpftune_owner(&bpftune, &key));
        found.extend(kubelet_owners(&kubelet, &key));
        report.keys.push(KeyOwners { key, owners: found });
    }
    Ok(report)
}

/// SemantOS's committed values of `key`.
fn semantos_owners(ours: &SemantosRecords, key: &str) -> Vec<Owner> {
    ours.values
        .iter()
        .filter(|o| o.key == key)
        .map(|o| Owner { kind: OwnerKind::Semantos, source: format!("{} run {} ({})", o.run_kind, o.run_id, o.source), value: Some(o.value.clone()), blocks: false, shadows: Vec::new(), note: None })
        .collect()
}

/// The sysctl.d line that wins for `key`; SemantOS's own drop-in is reported as SemantOS.
fn sysctld_owner(files: &sysctld::Files, ours: &SemantosRecords, key: &str) -> Option<Owner> {
    let (win, shadowed) = sysctld::winner(files, key)?;
    let mine = ours.dropins.iter().any(|d| d == &win.line.file || std::fs::canonicalize(d).ok() == std::fs::canonicalize(&win.line.file).ok());
    let mut notes = Vec::new();
    if win.key.is_none() {
        notes.push(format!("set through the glob {}", win.line.pattern));
    }
    if win.ignore_failure {
        notes.push("`-` prefix: a failure to set it is ignored at boot".to_string());
    }
    if let Some(p) = &win.problem {
        notes.push(format!("the line is applied as written, but: {p}"));
    }
    Some(Owner {
        kind: if mine { OwnerKind::Semantos } else { OwnerKind::SysctlD },
        source: win.line.at(),
        value: Some(win.line.value.clone()),
        blocks: !mine,
        shadows: shadowed.into_iter().map(|a| a.line.clone()).collect(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// TuneD's active profile setting `key`.
fn tuned_owner(active: &tuned::Active, key: &str) -> Option<Owner> {
    let s = active.sysctls.get(key)?;
    Some(Owner { kind: OwnerKind::Tuned, source: format!("profile {} ({})", s.profile, s.line.at()), value: Some(s.line.value.clone()), blocks: true, shadows: s.shadows.clone(), note: None })
}

/// A running bpftune whose tuners write `key`.
fn bpftune_owner(pids: &[u32], key: &str) -> Option<Owner> {
    let tuner = services::bpftune_tuner(key)?;
    let pid = pids.first()?;
    Some(Owner {
        kind: OwnerKind::Bpftune,
        source: format!("pid {pid} ({tuner})"),
        value: None,
        blocks: true,
        shadows: Vec::new(),
        note: Some("bpftune's sysctl_tuner turns its tuner for this key off when another program writes it".into()),
    })
}

/// kubelet's allowance for `key`, and static pods that set it (never blocking: see `services`).
fn kubelet_owners(k: &services::Kubelet, key: &str) -> Vec<Owner> {
    let note = || Some("pods set it in their own network namespaces; the host's value is not kubelet's".to_string());
    let allowed = k.allowed.iter().filter(|(p, _)| services::allowed_by(p, key)).map(|(p, f)| Owner {
        kind: OwnerKind::Kubelet,
        source: format!("{} allowedUnsafeSysctls {p}", f.display()),
        value: None,
        blocks: false,
        shadows: Vec::new(),
        note: note(),
    });
    let pods = k.pods.iter().filter(|(name, _)| name == key).map(|(_, l)| Owner {
        kind: OwnerKind::Kubelet,
        source: format!("static pod {} ({})", l.pattern, l.file.display()),
        value: Some(l.value.clone()),
        blocks: false,
        shadows: Vec::new(),
        note: note(),
    });
    allowed.chain(pods).collect()
}

#[cfg(test)]
mod tests;
