//! The one place that writes files atomically: temp file in the same
//! directory, fsync, rename, fsync of the directory. A symlink at the target
//! is refused, so a planted link cannot redirect a root-owned write. Also
//! the one reader of the versioned JSON files those writes produce.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads a JSON file of kind `what` (`backup`, `rollout state`) whose `schema_version` must be `version`.
pub fn read_versioned_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str, version: u32) -> Result<T> {
    read_json_of_versions(path, what, &[version])
}

/// Reads a JSON file of kind `what` whose `schema_version` is one of `versions` (the newest last).
pub fn read_json_of_versions<T: serde::de::DeserializeOwned>(path: &Path, what: &str, versions: &[u32]) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let found = v.get("schema_version").and_then(|x| x.as_u64());
    if !versions.iter().any(|&w| found == Some(w as u64)) {
        let expected = versions.iter().map(u32::to_string).collect::<Vec<_>>().join(" or ");
        bail!("{}: {what} schema_version {} is not supported (expected {expected})", path.display(), v.get("schema_version").map(|x| x.to_string()).unwrap_or("missing".into()));
    }
    if let Some(k) = repeated_key(&text) {
        bail!("{}: the field {k:?} is duplicated in one object; a {what} names each field and key once (JSON keeps only the last, which would be a silent choice)", path.display());
    }
    serde_json::from_value(v).with_context(|| format!("{}: not a valid {what}", path.display()))
}

/// The first object key that appears twice in one object of `text` (valid JSON), if any.
fn repeated_key(text: &str) -> Option<String> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    /// Walks any JSON value and records the first repeated key of an object.
    struct Walk(Option<String>);
    impl<'de> Deserialize<'de> for Walk {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Walk, D::Error> {
            d.deserialize_any(WalkVisitor)
        }
    }
    struct WalkVisitor;
    impl<'de> Visitor<'de> for WalkVisitor {
        type Value = Walk;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_unit<E>(self) -> std::result::Result<Walk, E> { Ok(Walk(None)) }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Walk, A::Error> {
            let mut first = None;
            while let Some(Walk(k)) = a.next_element()? {
                first = first.or(k);
            }
            Ok(Walk(first))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Walk, A::Error> {
            let (mut seen, mut first) = (std::collections::BTreeSet::new(), None);
            while let Some(k) = a.next_key::<String>()? {
                let Walk(inner) = a.next_value()?;
                if !seen.insert(k.clone()) {
                    first = first.or(Some(k));
                }
                first = first.or(inner);
            }
            Ok(Walk(first))
        }
    }
    serde_json::from_str::<Walk>(text).ok().and_then(|w| w.0)
}

/// Writes `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    tracing::debug!(path = %path.display(), bytes = bytes.len(), mode = format_args!("{mode:o}"), "writing file atomically");
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_symlink()
    {
        bail!("{} is a symbolic link; refusing to write through it (remove the link or choose another path)", path.display());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Appends one line and fsyncs (journals and audit logs).
pub fn append_line(path: &Path, line: &str, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {} for append (a symbolic link there is refused)", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes()).with_context(|| format!("appending to {}", path.display()))?;
    f.sync_data().with_context(|| format!("fsync {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_repeated_in_a_backup_is_refused_not_last_wins() {
        assert_eq!(super::repeated_key(r#"{"a": 1, "o": {"vm.swappiness": "60", "vm.swappiness": "0"}}"#).as_deref(), Some("vm.swappiness"));
        assert_eq!(super::repeated_key(r#"[{"a": 1}, {"a": 2, "b": [{"c": 1, "c": 2}]}]"#).as_deref(), Some("c"));
        assert_eq!(super::repeated_key(r#"{"a": {"a": 1}, "b": [1, "x", null, true, 1.5]}"#), None);
    }

    #[test]
    fn atomic_write_sets_mode_and_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/backup.json");
        write_atomic(&p, b"{}", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(d.path().join("elsewhere"), &link).unwrap();
        let e = write_atomic(&link, b"x", 0o600).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!d.path().join("elsewhere").exists());
    }
}
