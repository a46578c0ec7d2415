//! The running kernel's build configuration (Kconfig), read so live
//! validation can tell a key that is missing because the kernel was built
//! without its option (`CONFIG_NET_FLOW_LIMIT`) from a KB error.
//!
//! Sources, in order: `<root>/proc/config.gz` (the kernel's own copy, with
//! `CONFIG_IKCONFIG_PROC`), then `<root>/boot/config-<release>` (what
//! distributions install beside the image). The reader takes a root so tests
//! feed fixture files and never read the host's by accident. Parsing is two
//! steps, as for `/proc`: raw lines into a name → value map, then
//! [`Setting`] per option; a malformed line is an error naming the file and
//! the line.

use flate2::read::GzDecoder;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How one option is set in a kernel config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// `=y`, or a value (`="bbr"`, `=1`): compiled into the image.
    BuiltIn,
    /// `=m`: built as a module; its keys exist only while it is loaded.
    Module,
    /// `# CONFIG_X is not set`, or not mentioned at all (a hidden option whose dependencies are off).
    NotSet,
}

/// A parsed kernel config and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    /// The file read (`/proc/config.gz`), named in every explanation.
    pub source: String,
    options: BTreeMap<String, String>,
}

/// What live validation knows about the kernel's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildConfig {
    /// The config of the kernel behind the store.
    Known(KernelConfig),
    /// No config: why not (not found, unreadable, the store is not the running kernel).
    Unknown(String),
}

impl BuildConfig {
    /// The config, when known.
    pub fn config(&self) -> Option<&KernelConfig> {
        match self {
            BuildConfig::Known(c) => Some(c),
            BuildConfig::Unknown(_) => None,
        }
    }
}

/// A config file that cannot be read or parsed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum KconfigError {
    /// Reading (or decompressing) the file failed.
    #[error("{}: {source}; the kernel config cannot be read, so build-dependent keys cannot be judged", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A line is neither `CONFIG_NAME=value`, `# CONFIG_NAME is not set`, a comment nor blank.
    #[error("{}: line {line}: {text:?} is not `CONFIG_NAME=value` or `# CONFIG_NAME is not set`; is this a kernel .config?", path.display())]
    Malformed {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Decompressed configs are about 250 KiB; anything past this is not a kernel config.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Whether `s` is a Kconfig option name as the KB writes it: `CONFIG_` then upper-case letters, digits or `_`.
pub fn is_option_name(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
}

impl KernelConfig {
    /// Parses the text of a kernel `.config`; `path` names it in errors and explanations.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KconfigError> {
        let mut options = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                // `# CONFIG_X is not set` records an explicit "no"; other comments are headers.
                if let Some(name) = comment.trim().strip_suffix(" is not set").filter(|n| n.starts_with("CONFIG_")) {
                    options.insert(name.to_string(), "n".to_string());
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let parsed = line.split_once('=').filter(|(name, _)| name.starts_with("CONFIG_") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            let Some((name, value)) = parsed else {
                return Err(KconfigError::Malformed { path: path.to_path_buf(), line: n + 1, text: raw.to_string() });
            };
            options.insert(name.to_string(), value.to_string());
        }
        Ok(Self { source: path.display().to_string(), options })
    }

    /// How `option` (`CONFIG_RPS`) is set.
    pub fn setting(&self, option: &str) -> Setting {
        match self.options.get(option).map(String::as_str) {
            None | Some("n") => Setting::NotSet,
            Some("m") => Setting::Module,
            Some(_) => Setting::BuiltIn,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::BuiltIn => "=y",
            Setting::Module => "=m",
            Setting::NotSet => "not set",
        })
    }
}

/// Reads the config of the kernel `release` (`6.18.44-fc-v1300`, from
/// `kernel.osrelease`) under `root` (`/` for this machine): `proc/config.gz`
/// first, then `boot/config-<release>`. `Ok(None)` when neither exists.
pub fn read_running(root: &Path, release: Option<&str>) -> Result<Option<KernelConfig>, KconfigError> {
    let gz = root.join("proc/config.gz");
    match std::fs::File::open(&gz) {
        Ok(f) => {
            let mut text = String::new();
            GzDecoder::new(f).take(MAX_CONFIG_BYTES).read_to_string(&mut text).map_err(|source| KconfigError::Io { path: gz.clone(), source })?;
            return KernelConfig::parse(&text, &gz).map(Some);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(KconfigError::Io { path: gz, source }),
    }
    // A /boot config only describes the running kernel when its release matches exactly.
    let Some(release) = release.filter(|r| !r.is_empty() && !r.contains('/')) else { return Ok(None) };
    let boot = root.join("boot").join(format!("config-{release}"));
    match std::fs::read(&boot) {
        Ok(bytes) => KernelConfig::parse(&String::from_utf8_lossy(&bytes), &boot).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KconfigError::Io { path: boot, source }),
    }
}

/// [`read_running`] as a [`BuildConfig`]: a missing or broken config becomes
/// `Unknown` with the reason, so validation goes on and says "cannot tell".
pub fn running_build(root: &Path, release: Option<&str>) -> BuildConfig {
    match read_running(root, release) {
        Ok(Some(c)) => BuildConfig::Known(c),
        Ok(None) => BuildConfig::Unknown(format!(
            "no kernel config found ({} nor {}); build the kernel with CONFIG_IKCONFIG_PROC or install its config in /boot",
            root.join("proc/config.gz").display(),
            root.join(format!("boot/config-{}", release.unwrap_or("<release>"))).display()
        )),
        Err(e) => BuildConfig::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &str = "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_RPS=y\n# CONFIG_NET_FLOW_LIMIT is not set\nCONFIG_IPV6=m\nCONFIG_LSM=\"landlock,lockdown\"\nCONFIG_HZ=1000\n\n";

    fn gzip(text: &str) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn settings_follow_the_kconfig_syntax() {
        let c = KernelConfig::parse(TEXT, Path::new("t")).unwrap();
        assert_eq!(c.setting("CONFIG_RPS"), Setting::BuiltIn);
        assert_eq!(c.setting("CONFIG_NET_FLOW_LIMIT"), Setting::NotSet);
        assert_eq!(c.setting("CONFIG_IPV6"), Setting::Module);
        assert_eq!(c.setting("CONFIG_LSM"), Setting::BuiltIn);
        assert_eq!(c.setting("CONFIG_HZ"), Setting::BuiltIn);
        // A hidden option whose dependencies are off is not written at all.
        assert_eq!(c.setting("CONFIG_NEVER_MENTIONED"), Setting::NotSet);
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let err = KernelConfig::parse("CONFIG_A=y\nthis is not a config\n", Path::new("/boot/config-x")).unwrap_err().to_string();
        assert!(err.contains("/boot/config-x: line 2") && err.contains("this is not a config"), "{err}");
    }

    #[test]
    fn proc_config_gz_comes_first_then_boot_config_of_the_same_release() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(read_running(root, Some("6.1.0-x")).unwrap(), None);
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("boot/config-6.1.0-other"), "CONFIG_RPS=y\n").unwrap();
        assert_eq!(read_running(root, Some("6.1.0-x")).unwrap(), None, "another release's config must not be used");
        std::fs::write(root.join("boot/config-6.1.0-x"), "CONFIG_RPS=m\n").unwrap();
        let c = read_running(root, Some("6.1.0-x")).unwrap().unwrap();
        assert_eq!((c.setting("CONFIG_RPS"), c.source.ends_with("boot/config-6.1.0-x")), (Setting::Module, true));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/config.gz"), gzip(TEXT)).unwrap();
        let c = read_running(root, Some("6.1.0-x")).unwrap().unwrap();
        assert_eq!((c.setting("CONFIG_RPS"), c.source.ends_with("proc/config.gz")), (Setting::BuiltIn, true));
    }

    #[test]
    fn a_corrupt_config_gz_is_an_error_and_an_unknown_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("proc/config.gz"), b"not gzip").unwrap();
        let err = read_running(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("proc/config.gz"), "{err}");
        assert!(matches!(running_build(dir.path(), None), BuildConfig::Unknown(why) if why.contains("config.gz")));
    }

    #[test]
    fn option_names_are_upper_case_config_symbols() {
        assert!(is_option_name("CONFIG_NET_FLOW_LIMIT") && is_option_name("CONFIG_64BIT"));
        for bad in ["NET_FLOW_LIMIT", "CONFIG_", "CONFIG_net", "CONFIG_A-B", "the nf_conntrack module"] {
            assert!(!is_option_name(bad), "{bad}");
        }
    }

    /// This machine's own config parses (when it has one): the reader works on a real file.
    #[test]
    fn this_machines_config_parses_when_present() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
        match read_running(Path::new("/"), release.as_deref().map(str::trim)) {
            Ok(Some(c)) => assert!(c.options.len() > 100, "{}: only {} options", c.source, c.options.len()),
            Ok(None) => println!("no kernel config on this machine"),
            Err(e) => panic!("{e}"),
        }
    }
}
