//! The LLM backend's contract, against an in-process OpenAI-compatible
//! server (a TcpListener on 127.0.0.1 in a thread). Every hostile or broken
//! reply is a file under tests/llm/replies/ that says what it is and the
//! verdict it must get; `check` is the one place that runs one.

use crate::support::{run_in, text};
use semantos::kb::{Intent, Kb};
use semantos::llm::{self, Fallback, FormatMode, LlmReasoner, Partial, Settings, Source};
use semantos::reasoning::{self, Context, Findings};
use semantos::safety::Policy;
use semantos::sysctl::Value;
use semantos::telemetry::{Snapshot, Window};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

// ---------------------------------------------------------------- the server

/// What the fake server answers to one request.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    /// A 200 chat completion whose assistant content is `content`.
    pub fn content(content: &str, finish_reason: &str) -> Canned {
        let body = json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": finish_reason }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 }
        });
        Canned { status: 200, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Json,
}

type Script = dyn Fn(usize, &Json) -> Canned + Send + Sync;

/// An OpenAI-compatible server on a free loopback port; stopped on drop.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let n: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some(Seen { path, headers, body: serde_json::from_slice(&body).unwrap_or(Json::Null) })
}

impl FakeServer {
    /// Serves `script(request index, request body)` for every request.
    pub fn start(script: impl Fn(usize, &Json) -> Canned + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else { continue };
                let i = {
                    let mut s = seen2.lock().unwrap();
                    s.push(req.clone());
                    s.len() - 1
                };
                let c = script(i, &req.body);
                std::thread::sleep(c.delay);
                let reason = match c.status {
                    200 => "OK",
                    400 => "Bad Request",
                    422 => "Unprocessable Entity",
                    429 => "Too Many Requests",
                    _ => "Error",
                };
                let mut head = format!("HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n", c.status, c.body.len());
                for (k, v) in &c.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                // The client may have given up (timeout tests): a failed write is expected then.
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(c.body.as_bytes()));
            }
        });
        FakeServer { addr, seen, stop, thread: Some(thread) }
    }

    /// Always the same answer.
    pub fn always(c: Canned) -> FakeServer {
        FakeServer::start(move |_, _| c.clone())
    }

    /// The base URL (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- the inputs

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample telemetry: eight findings (accept_queue_overflow, swap_in_stalls, ...).
pub(crate) fn sample_csv() -> PathBuf {
    repo().join("experiments/data/sample_telemetry.csv")
}

fn snapshots() -> (Snapshot, Snapshot) {
    let s = semantos::telemetry::csv::read_file(&sample_csv()).unwrap();
    (s[0].clone(), s[s.len() - 1].clone())
}

/// The simulated host's starting values (what a sandbox tree holds).
fn current() -> BTreeMap<String, Value> {
    let spec = semantos::sim::HostSpec::default();
    let mut m: BTreeMap<String, Value> = spec.kernel_defaults().into_iter().map(|(k, v)| (k, Value::from_kernel(&v))).collect();
    for (k, v) in &spec.start {
        m.insert(k.clone(), Value::from_kernel(v));
    }
    m
}

fn settings(url: &str, tweak: impl FnOnce(&mut Partial)) -> Settings {
    let mut p = Partial { url: Some(url.into()), model: Some("fake-model".into()), timeout_s: Some(1.0), connect_timeout_s: Some(1.0), fallback: Some(Fallback::Fail), ..Partial::default() };
    tweak(&mut p);
    Settings::resolve(p, None).unwrap()
}

struct World {
    kb: Kb,
    before: Snapshot,
    after: Snapshot,
    findings: Findings,
    current: BTreeMap<String, Value>,
}

impl World {
    fn new() -> World {
        let kb = Kb::embedded().unwrap();
        let (before, after) = snapshots();
        let findings = reasoning::diagnose(&before, &after, &kb);
        World { kb, before, after, findings, current: current() }
    }
    fn ctx(&self) -> Context<'_> {
        Context { kb: &self.kb, intent: Intent::Latency, current: &self.current, window: Window::new(&self.before, &self.after) }
    }
}

// ---------------------------------------------------------------- reply files

/// The canned answer a reply file describes.
fn canned(spec: &Json) -> Canned {
    let status = spec["status"].as_u64().unwrap_or(200) as u16;
    let delay = Duration::from_millis(spec["delay_ms"].as_u64().unwrap_or(0));
    let headers = spec["headers"].as_object().map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()).unwrap_or_default();
    let finish = spec["finish_reason"].as_str().unwrap_or("stop");
    let mut c = if let Some(body) = spec["body"].as_str() {
        Canned { status, headers: Vec::new(), body: body.into(), delay }
    } else if !spec["envelope"].is_null() {
        Canned { status, headers: Vec::new(), body: spec["envelope"].to_string(), delay }
    } else if let Some(text) = spec["content"].as_str() {
        Canned::content(text, finish)
    } else {
        Canned::content(&spec["reply"].to_string(), finish)
    };
    c.status = status;
    c.headers = headers;
    c.delay = delay;
    c
}

fn reply_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/llm/replies")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    v.sort();
    v
}

/// Runs one reply file through the LLM backend and asserts the verdict it names. Returns the verdict label.
fn check(file: &Path, world: &World) -> String {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let spec: Json = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expect = &spec["expect"];
    assert!(spec["about"].is_string(), "{name}: say what the case is in `about`");
    let server = FakeServer::always(canned(&spec));
    let policy = Policy::default();
    let ctx = world.ctx();
    let run = |fallback: Fallback| {
        let s = settings(&server.url(), |p| {
            p.fallback = Some(fallback);
            // The fence case is what plain-mode models write.
            if name.contains("fence") {
                p.response_format = Some(FormatMode::Plain);
            }
        });
        let llm = LlmReasoner::new(s, &policy).unwrap();
        llm::propose(&llm, &world.findings, &ctx, &policy)
    };
    let messages: Vec<&str> = expect["message"].as_array().map(|a| a.iter().map(|m| m.as_str().unwrap()).collect()).unwrap_or_default();
    if let Some(rule) = expect["failure"].as_str() {
        let (failure, llm_run) = *run(Fallback::Fail).err().unwrap_or_else(|| panic!("{name}: expected the run to fail with [{rule}]"));
        let msg = failure.to_string();
        assert_eq!(failure.rule(), rule, "{name}: {msg}");
        for m in &messages {
            assert!(msg.contains(m), "{name}: the message should contain {m:?}: {msg}");
        }
        // Transport and envelope failures name the server; none carries a raw control character.
        if !matches!(rule, "schema" | "schema-version" | "injection") {
            assert!(msg.contains(&server.addr.to_string()), "{name}: the message should name the URL: {msg}");
        }
        assert!(!msg.chars().any(|c| c.is_control() && c != '\n'), "{name}: raw control character in {msg:?}");
        assert_eq!(llm_run.samples.last().unwrap().verdict, rule, "{name}");
        // The same reply with --llm-fallback rules: the rule engine's plan, and the plan says so.
        let p = run(Fallback::Rules).unwrap_or_else(|_| panic!("{name}: the fall back should give a plan"));
        assert!(matches!(&p.source, Source::FellBack { because } if because.rule() == rule), "{name}: {:?}", p.source);
        assert!(p.checked.plan.created_by.starts_with("rules (fallback: llm:fake-model") && p.checked.plan.created_by.contains(&format!("[{rule}]")), "{name}: {}", p.checked.plan.created_by);
        return rule.to_string();
    }
    let p = run(Fallback::Fail).unwrap_or_else(|b| panic!("{name}: expected a plan, got {}", b.0.verdict()));
    assert_eq!(p.source, Source::Llm, "{name}");
    let c = &p.checked;
    assert!(c.plan.created_by == "llm:fake-model", "{name}: {}", c.plan.created_by);
    let want: BTreeMap<String, String> = expect["guardrail"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
    assert_eq!(c.changes.len(), want.len(), "{name}: {:#?}", c.changes);
    for x in &c.changes {
        let got = match &x.verdict {
            semantos::safety::Verdict::Clamp { rule, .. } | semantos::safety::Verdict::Refuse { rule, .. } | semantos::safety::Verdict::Reject { rule, .. } => format!("{}:{rule}", x.verdict.label()),
            v => v.label().to_string(),
        };
        assert_eq!(Some(&got), want.get(&x.change.key), "{name}: {} → {}", x.change.key, x.verdict.reason());
        // Every LLM change carries its uncertainty and its citations.
        assert!(x.change.uncertainty.is_some() && !x.change.finding_ids.is_empty() && x.change.kb_key.as_deref() == Some(x.change.key.as_str()), "{name}: {:?}", x.change);
    }
    assert_eq!(c.aborted.is_some(), expect["aborted"].as_bool().unwrap(), "{name}: {:?}", c.aborted);
    for m in &messages {
        assert!(c.aborted.as_deref().unwrap_or_default().contains(m), "{name}: {m:?} not in {:?}", c.aborted);
    }
    let writes: Vec<String> = c.writes().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let want_writes: Vec<String> = expect["writes"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();
    assert_eq!(writes, want_writes, "{name}");
    for k in expect["considered"].as_array().into_iter().flatten() {
        let k = k.as_str().unwrap();
        assert!(c.plan.considered.iter().any(|x| x.key == k && x.reason.contains("[citation]")), "{name}: {k} not refused for citation: {:?}", c.plan.considered);
    }
    if c.aborted.is_some() { "guardrails".into() } else { "plan".into() }
}

#[test]
fn every_reply_file_gets_its_verdict() {
    let world = World::new();
    let files = reply_files();
    assert!(files.len() >= 20, "tests/llm/replies holds {} files", files.len());
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        *tally.entry(check(f, &world)).or_default() += 1;
    }
    eprintln!("reply verdicts: {tally:?}");
    for rule in ["injection", "schema", "schema-version", "truncated", "not-json", "http-status", "rate-limited", "timeout", "empty-choices", "guardrails", "plan"] {
        assert!(tally.contains_key(rule), "no reply file exercises [{rule}]");
    }
}

// ---------------------------------------------------------------- behaviours

pub(crate) fn reply_with(changes: &[(&str, &str, &str)]) -> String {
    let changes: Vec<Json> = changes.iter().map(|(k, v, f)| json!({"key": k, "kb_key": k, "finding_id": f, "value": v, "rationale": "because"})).collect();
    json!({"schema_version": 1, "changes": changes}).to_string()
}

#[test]
fn self_consistency_marks_disputed_changes_advice_only() {
    let world = World::new();
    // Sample 0 and 1 agree on swappiness; somaxconn gets three different values; dirty_ratio appears once.
    let server = FakeServer::start(|i, _| {
        let somax = ["512", "1024", "256"][i % 3];
        let mut changes = vec![("vm.swappiness", "10", "swap_in_stalls"), ("net.core.somaxconn", somax, "accept_queue_overflow")];
        if i == 2 {
            changes[0].1 = "30";
            changes.push(("vm.dirty_ratio", "10", "dirty_writeback_stalls"));
        }
        Canned::content(&reply_with(&changes), "stop")
    });
    let policy = Policy::default();
    let llm = LlmReasoner::new(settings(&server.url(), |_| {}), &policy).unwrap();
    let p = llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0));
    let by_key = |k: &str| p.checked.changes.iter().find(|c| c.change.key == k).unwrap();
    let sw = by_key("vm.swappiness");
    assert_eq!((sw.change.to.as_str(), sw.change.advice_only), ("10", false));
    assert!((sw.change.uncertainty.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(sw.change.rationale.contains("2 of 3 samples agree") && sw.change.rationale.contains("30 ×1"), "{}", sw.change.rationale);
    for k in ["net.core.somaxconn", "vm.dirty_ratio"] {
        let c = by_key(k);
        assert!(c.change.advice_only && c.change.uncertainty.unwrap() >= 0.5, "{k}: {:?}", c.change);
        assert!(matches!(&c.verdict, semantos::safety::Verdict::Skip { reason } if reason.contains("advice only")), "{k}: {:?}", c.verdict);
    }
    assert_eq!(p.checked.writes().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(), ["vm.swappiness=10"]);
    assert!(p.run.agreement.unwrap() < 0.5);
    // Each sample had its own seed, so a server can vary them and a recording can tell them apart.
    let seeds: Vec<u64> = server.requests().iter().map(|r| r.body["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [0, 1, 2]);
    // τ = 1: nothing is advice only (u < 1 for every change that at least one sample proposed, k = 3).
    let llm = LlmReasoner::new(settings(&server.url(), |p| p.tau = Some(1.0)), &policy).unwrap();
    let p = llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0));
    assert!(p.checked.plan.changes.iter().all(|c| !c.advice_only));
    // k = 1: no agreement signal, so every change is advice only.
    let llm = LlmReasoner::new(settings(&server.url(), |p| p.samples = Some(1)), &policy).unwrap();
    let p = llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0));
    assert!(p.checked.plan.changes.iter().all(|c| c.advice_only && c.uncertainty == Some(1.0)) && p.checked.writes().is_empty());
    // Calibration records pair each change's u with its outcome.
    let recs = llm::calibration::records(&p);
    assert!(recs.iter().all(|r| r.outcome == "advice_only" && r.u == 1.0 && r.k == 1), "{recs:?}");
}

#[test]
fn the_prompt_holds_findings_candidates_values_and_intent_and_asks_for_the_schema() {
    let world = World::new();
    let server = FakeServer::always(Canned::content(&reply_with(&[]), "stop"));
    let policy = Policy::default();
    let llm = LlmReasoner::new(settings(&server.url(), |p| p.samples = Some(1)), &policy).unwrap();
    llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.body["model"], "fake-model");
    assert_eq!(r.body["stream"], false);
    let user = r.body["messages"][1]["content"].as_str().unwrap();
    for needle in ["INTENT: latency", "id accept_queue_overflow", "ListenOverflows = 35.76/s", "\"key\":\"net.core.somaxconn\",\"now\":\"128\"", "\"max\":200", "\"calls_for\":{\"swap_in_stalls\":\"lower\"}"] {
        assert!(user.contains(needle), "the prompt lacks {needle}:\n{user}");
    }
    // Only candidates: a never-touch key, and a key no finding calls for, are not offered.
    for absent in ["kernel.randomize_va_space", "vm.drop_caches", "net.ipv4.tcp_fastopen_key", "net.ipv4.ip_forward\""] {
        assert!(!user.contains(absent), "the prompt offers {absent}");
    }
    let rf = &r.body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    let schema = &rf["json_schema"]["schema"];
    assert_eq!(rf["json_schema"]["strict"], true);
    // One alternative per candidate: key and kb_key pinned to it, finding_id to the findings that call for it.
    let alts = schema["properties"]["changes"]["items"]["anyOf"].as_array().unwrap();
    let alt = |k: &str| alts.iter().find(|a| a["properties"]["key"]["enum"] == json!([k])).unwrap_or_else(|| panic!("no alternative for {k}"));
    assert_eq!(alt("net.core.somaxconn")["properties"]["kb_key"]["enum"], json!(["net.core.somaxconn"]));
    assert_eq!(alt("net.core.somaxconn")["properties"]["finding_id"]["enum"], json!(["accept_queue_overflow"]));
    assert_eq!(alt("vm.swappiness")["properties"]["finding_id"]["enum"], json!(["swap_in_stalls"]));
    assert!(alts.iter().all(|a| a["additionalProperties"] == false && a["required"].as_array().unwrap().len() == 5));
    assert!(!alts.iter().any(|a| a["properties"]["key"]["enum"] == json!(["kernel.randomize_va_space"])));
}

#[test]
fn response_format_steps_down_when_the_server_refuses_it() {
    let world = World::new();
    // Refuses json_schema (422) and json_object (400, "unknown field schema"); answers plain.
    let server = FakeServer::start(|_, body| match body["response_format"]["type"].as_str() {
        Some("json_schema") => Canned { status: 422, headers: vec![], body: r#"{"error": "response_format json_schema unsupported"}"#.into(), delay: Duration::ZERO },
        Some(_) => Canned { status: 400, headers: vec![], body: r#"{"error": "unknown field schema"}"#.into(), delay: Duration::ZERO },
        None => Canned::content(&reply_with(&[("vm.swappiness", "10", "swap_in_stalls")]), "stop"),
    });
    let policy = Policy::default();
    let llm = LlmReasoner::new(settings(&server.url(), |_| {}), &policy).unwrap();
    let p = llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0));
    let formats: Vec<String> = server.requests().iter().map(|r| r.body["response_format"]["type"].as_str().unwrap_or("plain").to_string()).collect();
    // One step down each, once per run: samples 1 and 2 go straight to plain.
    assert_eq!(formats, ["json_schema", "json_object", "plain", "plain", "plain"]);
    assert!(p.run.samples.iter().all(|s| s.format == "plain" && s.verdict == "ok"));
    // With a fixed mode there is no stepping down: the refusal is the verdict.
    let llm = LlmReasoner::new(settings(&server.url(), |p| p.response_format = Some(FormatMode::JsonSchema)), &policy).unwrap();
    let (f, _) = *llm::propose(&llm, &world.findings, &world.ctx(), &policy).err().unwrap();
    assert_eq!(f.rule(), "http-status", "{f}");
}

#[test]
fn record_then_replay_without_the_server() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let policy = Policy::default();
    let recorded = {
        let server = FakeServer::start(|i, _| Canned::content(&reply_with(&[("vm.swappiness", ["10", "10", "20"][i % 3], "swap_in_stalls")]), "stop"));
        let llm = LlmReasoner::new(settings(&server.url(), |p| p.record = Some(rec.clone())), &policy).unwrap();
        llm::propose(&llm, &world.findings, &world.ctx(), &policy).unwrap_or_else(|b| panic!("{}", b.0)).checked
    };
    assert_eq!(std::fs::read_dir(&rec).unwrap().count(), 3);
    // The server is gone; the replay gives the same plan, byte for byte.
    let replay = |intent: Intent| {
        let s = Settings::resolve(Partial { model: Some("fake-model".into()), replay: Some(rec.clone()), fallback: Some(Fallback::Fail), ..Partial::default() }, None).unwrap();
        let llm = LlmReasoner::new(s, &policy).unwrap();
        let mut ctx = world.ctx();
        ctx.intent = intent;
        llm::propose(&llm, &world.findings, &ctx, &policy)
    };
    let replayed = replay(Intent::Latency).unwrap_or_else(|b| panic!("{}", b.0)).checked;
    assert_eq!(replayed.plan.to_json(), recorded.plan.to_json());
    assert_eq!(replayed.changes, recorded.changes);
    // Another prompt (another intent) has no recording: a clear verdict, never a stale answer.
    let (f, _) = *replay(Intent::Throughput).err().unwrap();
    assert_eq!(f.rule(), "replay");
    assert!(f.to_string().contains("--llm-record") && f.to_string().contains(&rec.display().to_string()), "{f}");
}

#[test]
fn nothing_listening_is_a_transport_verdict_naming_the_url() {
    let world = World::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let policy = Policy::default();
    let llm = LlmReasoner::new(settings(&format!("http://127.0.0.1:{port}/v1"), |_| {}), &policy).unwrap();
    let (f, run) = *llm::propose(&llm, &world.findings, &world.ctx(), &policy).err().unwrap();
    assert_eq!(f.rule(), "transport");
    assert!(f.to_string().contains(&format!("127.0.0.1:{port}")), "{f}");
    // A dead server is asked once, not k times.
    assert_eq!(run.samples.len(), 1);
}

// ---------------------------------------------------------------- the binary

/// A sandbox sysctl tree with the simulated host's starting values.
pub(crate) fn sandbox(dir: &Path) -> String {
    let root = dir.join("tree");
    semantos::sim::seed_sandbox(&semantos::sim::HostSpec::default(), &root).unwrap();
    root.display().to_string()
}

#[test]
fn recommend_with_the_llm_falls_back_or_fails_as_configured_and_never_prints_the_key() {
    let d = tempfile::tempdir().unwrap();
    let tree = sandbox(d.path());
    let csv = sample_csv().display().to_string();
    let key = "sk-test-DO-NOT-PRINT-1234";
    // A hostile server: every reply proposes the ASLR switch.
    let server = FakeServer::always(Canned::content(&reply_with(&[("kernel.randomize_va_space", "0", "cpu_runqueue_delay")]), "stop"));
    let url = server.url();
    let base = ["recommend", "--telemetry", &csv, "--sysctl-root", &tree, "--reasoner", "llm", "--llm-url", &url, "--llm-model", "fake-model", "--llm-timeout", "2"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        std::process::Command::new(crate::support::bin()).args(&args).current_dir(d.path()).env("SEMANTOS_LLM_API_KEY", key).env_remove("SEMANTOS_LLM_URL").output().unwrap()
    };
    let o = run(&["--json", "--llm-record", "rec"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("[guardrails]") && err.contains("never-touch") && err.contains("falling back to the rule engine (--llm-fallback rules)"), "{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    assert!(v["plan"]["created_by"].as_str().unwrap().starts_with("rules (fallback: llm:fake-model"), "{}", v["plan"]["created_by"]);
    // The key went to the server as a bearer token and nowhere else.
    assert!(server.requests().iter().all(|r| r.headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {key}"))));
    let o = run(&["--llm-fallback", "fail"]);
    let (out2, err2) = text(&o);
    assert_eq!(o.status.code(), Some(2), "an aborted LLM plan is invalid input, as for any plan: {err2}");
    assert!(out2.contains("PLAN ABORTED") && out2.contains("kernel.randomize_va_space"), "{out2}");
    // A broken server with --llm-fallback fail: exit 1, the verdict named.
    let broken = FakeServer::always(Canned { status: 500, headers: vec![], body: "boom".into(), delay: Duration::ZERO });
    let burl = broken.url();
    let mut args = base.to_vec();
    args[8] = &burl;
    args.extend_from_slice(&["--llm-fallback", "fail"]);
    let o = std::process::Command::new(crate::support::bin()).args(&args).current_dir(d.path()).env("SEMANTOS_LLM_API_KEY", key).output().unwrap();
    let (out3, err3) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err3}");
    assert!(err3.contains("--llm-fallback is fail") && err3.contains("[http-status]") && err3.contains(&burl), "{err3}");
    let mut everything = format!("{out}{err}{out2}{err2}{out3}{err3}");
    for f in crate::support::files_under(d.path()) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    assert!(!everything.contains(key), "the API key leaked");
    // Calibration records were written for the LLM's own (rejected) plan.
    let cal = std::fs::read_to_string(d.path().join("logs/llm-calibration.jsonl")).unwrap();
    assert!(cal.lines().all(|l| serde_json::from_str::<Json>(l).unwrap()["verdict"] == "reject"), "{cal}");
    // Settings errors are invalid input naming the flag.
    let o = run_in(d.path(), &["recommend", "--telemetry", &csv, "--reasoner", "llm", "--llm-model", "m", "--llm-url", "ftp://api.example/v1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--llm-url ftp://api.example/v1"), "{}", text(&o).1);
    // A plan file and the LLM both claiming to be the plan's source: a usage error, no request sent.
    let before = server.requests().len();
    std::fs::write(d.path().join("p.conf"), "vm.swappiness = 10\n").unwrap();
    let o = run(&["--plan", "p.conf"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(text(&o).1.contains("--plan p.conf and --reasoner llm"), "{}", text(&o).1);
    assert_eq!(server.requests().len(), before, "the model was asked anyway");
}

#[test]
fn compare_puts_rules_and_llm_side_by_side_on_the_simulator() {
    let d = tempfile::tempdir().unwrap();
    let server = FakeServer::always(Canned::content(&reply_with(&[("vm.swappiness", "10", "swap_in_stalls"), ("vm.dirty_ratio", "500", "dirty_writeback_stalls")]), "stop"));
    let url = server.url();
    let o = run_in(d.path(), &["compare", "--reasoners", "rules,llm", "--llm-url", &url, "--llm-model", "fake-model", "--trials", "3"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let row = |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row:\n{out}")).to_string();
    assert!(row("rules ").contains(" no "), "{out}");
    // The LLM's plan proposes an out-of-range dirty_ratio: aborted, nothing applied, p95 unchanged.
    let llm_row = row("llm:fake-model");
    assert!(llm_row.contains(" yes ") && llm_row.contains("+0.0%"), "{llm_row}");
    assert!(out.contains("REJECT  vm.dirty_ratio") && out.contains("[range]"), "{out}");
    let csv = std::fs::read_to_string(d.path().join("experiments/results/compare/compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let j: Json = serde_json::from_str(&std::fs::read_to_string(d.path().join("experiments/results/compare/compare.json")).unwrap()).unwrap();
    assert_eq!(j["rows"][1]["llm"]["samples"].as_array().unwrap().len(), 3);
    let cal = std::fs::read_to_string(d.path().join("logs/llm-calibration.jsonl")).unwrap();
    assert!(cal.lines().any(|l| l.contains("\"key\":\"vm.dirty_ratio\"") && l.contains("\"outcome\":\"rejected\"")), "{cal}");
    // The experiment config's `llm:` section is enough; a flag still wins over it.
    std::fs::write(d.path().join("exp.yaml"), format!("trials: 3\nllm:\n  url: {url}\n  model: from-config\n  samples: 2\n")).unwrap();
    let seen = server.requests().len();
    let o = run_in(d.path(), &["compare", "--config", "exp.yaml", "--reasoners", "llm", "--llm-model", "from-flag"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("llm:from-flag"), "{out}");
    assert_eq!(server.requests().len(), seen + 2, "samples: 2 from the config");
}
