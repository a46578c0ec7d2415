//! Loading a knowledge base: the files embedded at build time, a user's `--kb DIR` merged over
//! them, and one TOML text merged into a `Kb`. Each constructor runs the checks of `validate`
//! and `overrides` before it returns, so a `Kb` a caller gets is consistent.

use super::base::{Kb, KbFileError};
use super::{entry, overrides, validate};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/kb_files.rs"));

/// The `*.toml` files of a user's knowledge-base directory (`--kb DIR`), in name order, with their text.
pub fn override_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading knowledge-base directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.into_iter().map(|f| std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display())).map(|t| (f, t))).collect()
}

impl Kb {
    /// The knowledge base embedded in the binary.
    pub fn embedded() -> Result<Kb> {
        let mut kb = Kb::default();
        for (name, text) in KB_FILES {
            kb.merge_text(text, &format!("kb/{name}"))?;
        }
        validate::check_consistency(&kb).map_err(|errs| anyhow::anyhow!("embedded knowledge base is inconsistent:\n  {}", errs.join("\n  ")))?;
        Ok(kb)
    }

    /// The embedded KB with every `*.toml` file of `dir` merged over it (same key: the user's
    /// entry wins), as long as it only adds or narrows: loosening a built-in entry is refused
    /// (`overrides`), with the file, the key, the field and what is allowed.
    pub fn with_overrides(dir: &Path) -> Result<Kb> {
        let builtin = Kb::embedded()?;
        let mut kb = builtin.clone();
        for (f, text) in override_files(dir)? {
            kb.merge_text(&text, &f.display().to_string())?;
        }
        let loose = overrides::check(&builtin, &kb);
        if !loose.is_empty() {
            anyhow::bail!("knowledge base {} loosens the built-in one, which a --kb directory may not do (it may add entries and narrow built-in ones); nothing was changed:\n  {}", dir.display(), loose.join("\n  "));
        }
        validate::check_consistency(&kb).map_err(|errs| anyhow::anyhow!("knowledge base with {} is inconsistent:\n  {}", dir.display(), errs.join("\n  ")))?;
        Ok(kb)
    }

    /// Parses one TOML file and merges it in.
    pub fn merge_text(&mut self, text: &str, file: &str) -> Result<(), KbFileError> {
        let parsed: entry::KbFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0);
            KbFileError { file: file.to_string(), line, message: e.message().to_string() }
        })?;
        for p in parsed.param {
            if let Err(msg) = validate::check_param(&p) {
                let line = text.lines().position(|l| l.contains(&format!("\"{}\"", p.key))).map(|i| i + 1).unwrap_or(0);
                return Err(KbFileError { file: file.to_string(), line, message: format!("parameter {}: {msg}", p.key) });
            }
            self.origin.insert(p.key.clone(), file.to_string());
            self.params.insert(p.key.clone(), p);
        }
        for e in parsed.edge {
            self.edges.retain(|x| !(x.kind == e.kind && x.from == e.from && x.to == e.to));
            self.edges.push(e);
        }
        for s in parsed.symptom {
            self.symptoms.insert(s.id.clone(), s);
        }
        for l in parsed.limit {
            self.limits.retain(|x| x.usage != l.usage);
            self.limits.push(l);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_kb_loads_and_covers_the_seed_whitelist() {
        let kb = Kb::embedded().unwrap();
        for key in [
            "vm.dirty_ratio",
            "vm.dirty_background_ratio",
            "vm.swappiness",
            "net.core.somaxconn",
            "net.core.netdev_max_backlog",
            "kernel.sched_latency_ns",
            "kernel.sched_min_granularity_ns",
            "kernel.numa_balancing",
        ] {
            assert!(kb.param(key).is_some(), "{key} missing");
        }
        assert_eq!(kb.param("kernel.sched_latency_ns").unwrap().removed_in.as_deref(), Some("5.13"));
    }

    #[test]
    fn malformed_entry_names_file_line_and_field() {
        let mut kb = Kb::default();
        let text = "[[param]]\nkey = \"vm.x\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"lowish\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n";
        let e = kb.merge_text(text, "mine.toml").unwrap_err().to_string();
        assert!(e.starts_with("mine.toml:5:"), "{e}");
        assert!(e.contains("lowish"), "{e}");
        let text = "[[param]]\nkey = \"vm.x\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"low\"\nrisk_reason = \"r\"\ncontrols = \"c\"\nmin = 5\nmax = 1\n";
        let e = kb.merge_text(text, "mine.toml").unwrap_err().to_string();
        assert!(e.contains("mine.toml:2: parameter vm.x: min 5 is above max 1"), "{e}");
        let text = "[[param]]\nkey = \"vm.x\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"low\"\nrisk_reason = \"r\"\ncontrols = \"c\"\ncolour = 1\n";
        let e = kb.merge_text(text, "mine.toml").unwrap_err().to_string();
        assert!(e.contains("mine.toml:8:") && e.contains("colour"), "{e}");
    }
}
