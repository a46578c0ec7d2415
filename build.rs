//! Embeds every `kb/*.toml` file in the binary, so adding a knowledge-base
//! file needs no code change; and names the build for `--version`: the git
//! commit (`-dirty` with uncommitted changes to tracked files, "unknown"
//! outside git) and a digest of the embedded KB files (the KB has no version
//! of its own, so its content is its version).

use std::{env, fs, path::Path, path::PathBuf, process::Command};

// The eBPF programs (bpf/*.bpf.c) and the cfg that says they were built.
#[path = "bpf/build.rs"]
mod bpf_build;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = root.join("kb");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect())
        .unwrap_or_default();
    files.sort();
    let mut src = String::from("/// Knowledge-base files embedded at build time: (file name, contents).\npub static KB_FILES: &[(&str, &str)] = &[\n");
    // FNV-1a over each file's name and bytes: stable across builds and platforms, no dependency.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy();
        for b in name.bytes().chain([0]).chain(fs::read(&f).unwrap_or_default()).chain([0]) {
            digest = (digest ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        src.push_str(&format!("    ({:?}, include_str!({:?})),\n", name, f.display().to_string()));
    }
    src.push_str("];\n");
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("kb_files.rs"), src).unwrap();
    println!("cargo:rustc-env=SEMANTOS_KB_DIGEST={:012x}", digest >> 16);
    println!("cargo:rustc-env=SEMANTOS_GIT_COMMIT={}", git_commit(&root));
    bpf_build::compile();
}

/// `git rev-parse --short HEAD`, with `-dirty` when tracked files differ; "unknown" without git.
fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| Command::new("git").arg("-C").arg(root).args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown".into() };
    // A new commit moves HEAD (or the ref it names) and rewrites the index: rebuild the version then.
    for p in ["HEAD", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={}", root.join(path).display());
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &head_ref])
    {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    // --no-optional-locks: a plain `git status` refreshes and rewrites the index, whose new mtime
    // (watched above) then made the next cargo command rebuild everything (3 min in CI between
    // `cargo build` and `cargo test`).
    let dirty = git(&["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{commit}-dirty") } else { commit }
}
