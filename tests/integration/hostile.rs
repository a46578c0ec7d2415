//! Hostile input through every door. `tests/hostile/manifest.toml` names
//! the doors (each a command line that takes a key, a value or a file), the
//! cases (one file each under `tests/hostile/<door>/`) and the matrices (one
//! hostile key or value rendered through the template of every door that
//! takes one). `check` is the one place that runs a case: a fresh sandbox
//! sysctl tree, the built binary, then the verdict — the message names the
//! problem, the exit code is the documented one, and a refused case left the
//! tree byte-identical with no backup, journal or drop-in behind.
//!
//! Cases marked `pending = "<engineer>"` wait for a fix in another branch:
//! they are run and printed, never failed. `HOSTILE_FILTER=text` runs only
//! the cases whose name contains `text`.

use crate::llm_contract::{Canned, FakeServer};
use crate::support::{bin, text};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    door: BTreeMap<String, Door>,
    #[serde(default)]
    case: Vec<Case>,
    #[serde(default)]
    matrix: Vec<Matrix>,
}

/// An entry point: how the binary is called with the case's input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Door {
    #[allow(dead_code)]
    about: String,
    /// Where the input goes, relative to the case directory (`input.json`, `kb/override.toml`).
    input: String,
    /// Arguments; `{input}`, `{csv}` (the sample telemetry) and `{llm_url}` are replaced.
    args: Vec<String>,
    /// A second run whose output gets the same verdict (the LLM door: replay of the recording).
    #[serde(default)]
    then: Vec<String>,
    /// Matrix template under tests/hostile/templates/, with {{KEY}}, {{VALUE}} (raw) and {{KEY_Q}}, {{VALUE_Q}} (quoted).
    #[serde(default)]
    template: Option<String>,
    /// The input is the assistant's reply, served by an in-process OpenAI-compatible server.
    #[serde(default)]
    llm: bool,
    /// The door can write the tree (`apply`, `rollback`); a door that cannot keeps it unchanged even when normalised.
    #[serde(default = "yes")]
    writes: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
enum Expect {
    /// A clear error, exit code `exit` (2 unless told), nothing written.
    Refused,
    /// Accepted in the documented form: exit `exit` (0 unless told), the tree holds `tree`.
    Normalised,
}

/// One case, from the manifest or expanded from a matrix.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    door: String,
    /// Input file under tests/hostile/.
    #[serde(default)]
    file: Option<String>,
    /// Input given inline.
    #[serde(default)]
    text: Option<String>,
    /// `{{BIG}}` in the input becomes this many `A`s (a 10 MB string without a 10 MB file).
    #[serde(default)]
    big: Option<usize>,
    /// `{{DEEP}}` in the input becomes this many `[` then as many `]`.
    #[serde(default)]
    deep: Option<usize>,
    /// Symbolic links made in the case directory before the run: link → target.
    #[serde(default)]
    symlink: BTreeMap<String, String>,
    expect: Expect,
    /// Substrings the output (stdout and stderr) must contain.
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    exit: Option<i32>,
    /// Tree files (relative to the sysctl root) and the value each must hold afterwards.
    #[serde(default)]
    tree: BTreeMap<String, String>,
    /// Waits for the fix of this engineer's branch (or names the owner of a reported defect).
    #[serde(default)]
    pending: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// One hostile key or value through the template of every door listed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Matrix {
    name: String,
    doors: Vec<String>,
    /// Door → pending owner for every row of this matrix through that door.
    #[serde(default)]
    door_pending: BTreeMap<String, String>,
    case: Vec<MatrixCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixCase {
    id: String,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default = "default_value")]
    value: String,
    expect: Expect,
    #[serde(default)]
    contains: Vec<String>,
    /// Door → substrings, replacing `contains` for that door.
    #[serde(default)]
    door_contains: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    exit: Option<i32>,
    /// Door → exit code, replacing `exit` for that door.
    #[serde(default)]
    door_exit: BTreeMap<String, i32>,
    /// Door → expectation, replacing `expect` for that door.
    #[serde(default)]
    door_expect: BTreeMap<String, Expect>,
    #[serde(default)]
    tree: BTreeMap<String, String>,
    #[serde(default)]
    pending: Option<String>,
    /// Door → pending owner, for a door whose fix is elsewhere.
    #[serde(default)]
    door_pending: BTreeMap<String, String>,
    /// Doors this case skips (the door cannot express it), with the reason in a comment.
    #[serde(default)]
    skip: Vec<String>,
}

fn default_key() -> String {
    "vm.swappiness".into()
}

fn default_value() -> String {
    "40".into()
}

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

fn load() -> Manifest {
    let path = hostile_dir().join("manifest.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn quoted(s: &str) -> String {
    // A JSON string literal is also a valid YAML double-quoted scalar and TOML basic string.
    serde_json::to_string(s).unwrap()
}

/// Every matrix row rendered into one case per door.
fn expand(m: &Manifest) -> Vec<(Case, Option<String>)> {
    let mut out = Vec::new();
    for c in &m.case {
        out.push((c.clone(), None));
    }
    for mx in &m.matrix {
        for d in &mx.doors {
            let door = m.door.get(d).unwrap_or_else(|| panic!("matrix {}: no door {d}", mx.name));
            let tpl = door.template.as_ref().unwrap_or_else(|| panic!("door {d} has no template for matrix {}", mx.name));
            let tpl = std::fs::read_to_string(hostile_dir().join("templates").join(tpl)).unwrap();
            for r in &mx.case {
                if r.skip.contains(d) {
                    continue;
                }
                let rendered = tpl.replace("{{KEY_Q}}", &quoted(&r.key)).replace("{{VALUE_Q}}", &quoted(&r.value)).replace("{{KEY}}", &r.key).replace("{{VALUE}}", &r.value);
                let case = Case {
                    id: format!("{}/{}/{}", mx.name, r.id, d),
                    door: d.clone(),
                    file: None,
                    text: None,
                    big: None,
                    deep: None,
                    symlink: BTreeMap::new(),
                    expect: r.door_expect.get(d).copied().unwrap_or(r.expect),
                    // A door whose expectation is overridden does not inherit the row's message.
                    contains: r.door_contains.get(d).cloned().unwrap_or_else(|| if r.door_expect.contains_key(d) { Vec::new() } else { r.contains.clone() }),
                    exit: r.door_exit.get(d).copied().or(r.exit),
                    tree: r.tree.clone(),
                    pending: r.door_pending.get(d).cloned().or_else(|| r.pending.clone()).or_else(|| mx.door_pending.get(d).cloned()),
                    note: None,
                };
                out.push((case, Some(rendered)));
            }
        }
    }
    out
}

/// Every file below `root` (symlinks recorded as links, not followed) with its bytes.
fn tree_bytes(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(root) else { return out };
    for e in rd {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            out.insert(p.clone(), format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes());
        } else if m.is_dir() {
            out.extend(tree_bytes(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// A case directory: the simulated host's sandbox tree and the helper files doors refer to.
fn prepare(dir: &Path) {
    semantos::sim::seed_sandbox(&semantos::sim::HostSpec::default(), &dir.join("tree")).unwrap();
    std::fs::write(dir.join("good.conf"), "vm.swappiness = 40\n").unwrap();
    std::fs::write(dir.join("aslr.conf"), "kernel.randomize_va_space = 0\n").unwrap();
    std::fs::write(dir.join("inv.yaml"), "hosts:\n  - name: a\n    address: 127.0.0.1\n    port: 1\n").unwrap();
    // A file that is not ours: a backup's `persisted_to` pointing here must leave it alone.
    std::fs::write(dir.join("not-ours.conf"), "# someone else's drop-in\n").unwrap();
    std::fs::create_dir_all(dir.join("kb")).unwrap();
}

fn input_of(case: &Case, rendered: Option<String>) -> Vec<u8> {
    let mut bytes = match (rendered, &case.text, &case.file) {
        (Some(r), _, _) => r.into_bytes(),
        (None, Some(t), _) => t.clone().into_bytes(),
        (None, None, Some(f)) => std::fs::read(hostile_dir().join(f)).unwrap_or_else(|e| panic!("{}: {f}: {e}", case.id)),
        (None, None, None) => panic!("{}: neither file nor text", case.id),
    };
    let replace = |bytes: Vec<u8>, pat: &str, with: &str| -> Vec<u8> {
        let s = String::from_utf8_lossy(&bytes);
        if s.contains(pat) { s.replace(pat, with).into_bytes() } else { bytes }
    };
    if let Some(n) = case.big {
        bytes = replace(bytes, "{{BIG}}", &"A".repeat(n));
    }
    if let Some(n) = case.deep {
        bytes = replace(bytes, "{{DEEP}}", &format!("{}{}", "[".repeat(n), "]".repeat(n)));
    }
    bytes
}

fn sample_csv() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/sample_telemetry.csv").display().to_string()
}

fn run(dir: &Path, args: &[String], input: &str, llm_url: &str) -> (Option<i32>, String) {
    let args: Vec<String> = args.iter().map(|a| a.replace("{input}", input).replace("{csv}", &sample_csv()).replace("{llm_url}", llm_url)).collect();
    // `timeout`: a hostile input that hangs the binary is a failure, not a stuck test.
    let o = Command::new("timeout")
        .arg("120")
        .arg(bin())
        .args(&args)
        .current_dir(dir)
        .env_remove("SEMANTOS_FAULT")
        .env_remove("SEMANTOS_LLM_URL")
        .env_remove("SEMANTOS_LLM_MODEL")
        .output()
        .expect("running semantos");
    let (out, err) = text(&o);
    (o.status.code(), format!("{out}{err}"))
}

/// Runs one case; `Err` says what went wrong.
fn check(door: &Door, case: &Case, rendered: Option<String>) -> Result<(), String> {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    prepare(dir);
    let input = dir.join(&door.input);
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let bytes = input_of(case, rendered);
    let server = door.llm.then(|| FakeServer::always(Canned::content(&String::from_utf8_lossy(&bytes), "stop")));
    if !door.llm {
        std::fs::write(&input, &bytes).unwrap();
    }
    for (link, target) in &case.symlink {
        let link = dir.join(link);
        // Linking the input itself: the input moves to the link's target.
        if link == input {
            std::fs::rename(&input, dir.join(target)).unwrap();
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
    }
    let url = server.as_ref().map(|s| s.url()).unwrap_or_default();
    let before = tree_bytes(&dir.join("tree"));
    let not_ours = std::fs::read(dir.join("not-ours.conf")).unwrap();
    let mut outputs = vec![run(dir, &door.args, &door.input, &url)];
    if !door.then.is_empty() {
        drop(server);
        outputs.push(run(dir, &door.then, &door.input, ""));
    }
    for (code, out) in &outputs {
        let short: String = out.chars().take(1500).collect();
        let want = case.exit.unwrap_or(if case.expect == Expect::Refused { 2 } else { 0 });
        if *code != Some(want) {
            return Err(format!("exit {code:?}, expected {want}:\n{short}"));
        }
        for c in &case.contains {
            if !out.contains(c.as_str()) {
                return Err(format!("output lacks {c:?}:\n{short}"));
            }
        }
        if out.contains("panicked at") || out.contains("RUST_BACKTRACE") {
            return Err(format!("the binary panicked:\n{short}"));
        }
    }
    // A case that smuggles a command (ssh ProxyCommand, a shell) tries to create PWNED.
    if dir.join("PWNED").exists() {
        return Err("a smuggled command ran: PWNED was created".into());
    }
    if std::fs::read(dir.join("not-ours.conf")).ok().as_ref() != Some(&not_ours) {
        return Err("not-ours.conf (a file SemantOS did not write) was changed or deleted".into());
    }
    let after = tree_bytes(&dir.join("tree"));
    match case.expect {
        Expect::Refused => {
            if after != before {
                let changed: Vec<_> = after.iter().filter(|(p, b)| before.get(*p) != Some(b)).map(|(p, b)| format!("{} = {:?}", p.strip_prefix(dir).unwrap().display(), String::from_utf8_lossy(b))).collect();
                return Err(format!("refused, yet the tree changed: {changed:?}"));
            }
            for f in crate::support::files_under(dir) {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                if name == "b.json" || name.contains("journal") || name == "persist.conf" {
                    return Err(format!("refused, yet {} was created", f.strip_prefix(dir).unwrap().display()));
                }
            }
        }
        Expect::Normalised => {
            let mut expected = before.clone();
            for (rel, v) in case.tree.iter().filter(|_| door.writes) {
                expected.insert(dir.join("tree").join(rel), format!("{v}\n").into_bytes());
            }
            let norm = |m: &BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, String> { m.iter().map(|(p, b)| (p.clone(), String::from_utf8_lossy(b).split_whitespace().collect::<Vec<_>>().join(" "))).collect() };
            if norm(&after) != norm(&expected) {
                let diff: Vec<_> = norm(&after).into_iter().filter(|(p, v)| norm(&expected).get(p) != Some(v)).map(|(p, v)| format!("{} = {v}", p.strip_prefix(dir).unwrap().display())).collect();
                return Err(format!("the tree is not the documented result; differs at {diff:?}"));
            }
        }
    }
    Ok(())
}

/// A case's id, door, pending owner and verdict.
type Outcome = (String, String, Option<String>, Result<(), String>);

#[test]
fn every_hostile_input_is_refused_or_normalised_and_nothing_is_written() {
    let m = load();
    let filter = std::env::var("HOSTILE_FILTER").unwrap_or_default();
    let cases: Vec<(Case, Option<String>)> = expand(&m).into_iter().filter(|(c, _)| c.id.contains(&filter)).collect();
    let mut ids = std::collections::BTreeSet::new();
    for (c, _) in &cases {
        assert!(ids.insert(c.id.clone()), "case {} appears twice in the manifest", c.id);
        assert!(m.door.contains_key(&c.door), "case {}: no door {}", c.id, c.door);
    }
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some((case, rendered)) = cases.get(i) else { break };
                    let r = check(&m.door[&case.door], case, rendered.clone());
                    results.lock().unwrap().push((case.id.clone(), case.door.clone(), case.pending.clone(), r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut per_door: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for (id, door, pending, r) in &results {
        *per_door.entry(door.clone()).or_default() += 1;
        match (pending, r) {
            (None, Ok(())) => {}
            (None, Err(e)) => failed.push(format!("{id}: {e}")),
            (Some(who), Ok(())) => eprintln!("PENDING {id} ({who}) now passes: drop `pending`"),
            (Some(who), Err(e)) => eprintln!("PENDING {id} (waits for {who}): {}", e.lines().next().unwrap_or("")),
        }
    }
    eprintln!("hostile cases per door: {per_door:?}; total {}", results.len());
    assert!(failed.is_empty(), "{} hostile case(s) failed:\n\n{}", failed.len(), failed.join("\n\n"));
}
