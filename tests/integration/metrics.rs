//! The agent's metrics as a scraper and node_exporter see them: `/metrics` over real HTTP (ureq)
//! parsed by a real text-format parser (openmetrics-parser's Prometheus grammar), the routes and
//! their status codes, label escaping, the bind error, and the atomic textfile.

use openmetrics_parser::{prometheus::parse_prometheus, PrometheusType, PrometheusValue};
use semantos::metrics::{render, serve, write_textfile, Advice, AgentMetrics, Conflict, ManagedKey, CONTENT_TYPE};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// One parsed sample: family type, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    kind: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses an exposition with the real parser; every sample keyed by its family name.
fn parse(text: &str) -> BTreeMap<String, Vec<Parsed>> {
    let exp = parse_prometheus(text).unwrap_or_else(|e| panic!("the exposition does not parse: {e:?}\n{text}"));
    let mut out = BTreeMap::new();
    for (name, fam) in exp.families {
        let kind = fam.family_type.to_string();
        let samples = fam
            .iter_samples()
            .map(|s| {
                let labels = s.get_labelset().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let value = match &s.value {
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    other => panic!("{name}: unexpected {other:?}"),
                };
                Parsed { kind: kind.clone(), labels, value }
            })
            .collect();
        assert_ne!(fam.family_type, PrometheusType::Unknown, "{name} has no TYPE line");
        assert!(!fam.help.is_empty(), "{name} has no HELP line");
        out.insert(name, samples);
    }
    out
}

/// The single sample of `name` whose labels include `want`.
fn value(p: &BTreeMap<String, Vec<Parsed>>, name: &str, want: &[(&str, &str)]) -> f64 {
    let fam = p.get(name).unwrap_or_else(|| panic!("{name} missing; have {:?}", p.keys().collect::<Vec<_>>()));
    let hits: Vec<_> = fam.iter().filter(|s| want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))).collect();
    assert_eq!(hits.len(), 1, "{name}{want:?}: {fam:?}");
    hits[0].value
}

fn sample_metrics() -> AgentMetrics {
    AgentMetrics {
        mode: "observe".into(),
        findings: vec!["listen_overflow".into(), "softnet_backlog_drops".into()],
        advice: vec![Advice { id: "adv-3f2a".into(), symptom: "listen_overflow".into(), key: "net.core.somaxconn".into(), count: 17 }],
        changes_applied_total: 4,
        changes_rolled_back_total: 2,
        managed: vec![
            ManagedKey { key: "net.core.somaxconn".into(), intended: "4096".into(), live: Some("1024".into()), in_agreement: false },
            ManagedKey { key: "net.ipv4.tcp_rmem".into(), intended: "4096 131072 6291456".into(), live: Some("4096 131072 6291456".into()), in_agreement: true },
        ],
        drift_total: 3,
        workload_changes_total: 5,
        conflicts: vec![Conflict { key: "net.core.somaxconn".into(), owner: "/etc/sysctl.d/99-net.conf".into() }],
        samples_total: 3600,
        cpu_seconds_total: 0.25,
        rss_bytes: 7 << 20,
        last_sample_seconds: 0.0004,
        advice_held_back: 1,
        advice_rolled_back_by_measurement_total: 6,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn metrics_endpoint_scraped_over_http_parses_and_carries_the_values_put_in() {
    let shared = Arc::new(Mutex::new(sample_metrics()));
    let server = serve(local(), Arc::clone(&shared)).unwrap();
    let url = format!("http://{}/metrics", server.local_addr());
    let mut resp = agent().get(&url).call().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap().to_str().unwrap(), CONTENT_TYPE);
    let p = parse(&resp.body_mut().read_to_string().unwrap());

    assert_eq!(value(&p, "semantos_agent_mode_info", &[("mode", "observe")]), 1.0);
    assert_eq!(value(&p, "semantos_findings", &[]), 2.0);
    assert_eq!(value(&p, "semantos_finding_present", &[("symptom", "softnet_backlog_drops")]), 1.0);
    assert_eq!(value(&p, "semantos_advice_seen_total", &[("id", "adv-3f2a"), ("key", "net.core.somaxconn")]), 17.0);
    assert_eq!(p["semantos_advice_seen_total"][0].kind, "counter");
    assert_eq!(value(&p, "semantos_changes_applied_total", &[]), 4.0);
    assert_eq!(value(&p, "semantos_changes_rolled_back_total", &[]), 2.0);
    assert_eq!(value(&p, "semantos_drift_total", &[]), 3.0);
    assert_eq!(value(&p, "semantos_workload_changes_total", &[]), 5.0);
    assert_eq!(value(&p, "semantos_managed_key_in_agreement", &[("key", "net.core.somaxconn")]), 0.0);
    assert_eq!(value(&p, "semantos_managed_key_in_agreement", &[("key", "net.ipv4.tcp_rmem")]), 1.0);
    assert_eq!(value(&p, "semantos_managed_key_intended_value", &[("key", "net.core.somaxconn"), ("field", "0")]), 4096.0);
    assert_eq!(value(&p, "semantos_managed_key_live_value", &[("key", "net.core.somaxconn"), ("field", "0")]), 1024.0);
    assert_eq!(value(&p, "semantos_managed_key_live_value", &[("key", "net.ipv4.tcp_rmem"), ("field", "2")]), 6291456.0);
    assert_eq!(value(&p, "semantos_ownership_conflict_info", &[("owner", "/etc/sysctl.d/99-net.conf")]), 1.0);
    assert_eq!(value(&p, "semantos_samples_total", &[]), 3600.0);
    assert_eq!(p["semantos_samples_total"][0].kind, "counter");
    assert_eq!(value(&p, "semantos_agent_cpu_seconds_total", &[]), 0.25);
    assert_eq!(value(&p, "semantos_agent_resident_memory_bytes", &[]), (7 << 20) as f64);
    assert_eq!(p["semantos_agent_resident_memory_bytes"][0].kind, "gauge");
    assert_eq!(value(&p, "semantos_last_sample_duration_seconds", &[]), 0.0004);

    // The endpoint renders the shared data at scrape time: the agent's next sample shows.
    shared.lock().unwrap().samples_total = 3601;
    let p = parse(&agent().get(&url).call().unwrap().body_mut().read_to_string().unwrap());
    assert_eq!(value(&p, "semantos_samples_total", &[]), 3601.0);
}

#[test]
fn metrics_endpoint_answers_404_elsewhere_and_405_to_other_methods() {
    let server = serve(local(), Arc::new(Mutex::new(AgentMetrics::default()))).unwrap();
    let base = format!("http://{}", server.local_addr());
    assert_eq!(agent().get(&format!("{base}/")).call().unwrap().status(), 404);
    assert_eq!(agent().get(&format!("{base}/metrics/x")).call().unwrap().status(), 404);
    let post = agent().post(&format!("{base}/metrics")).send("x").unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers().get("allow").unwrap().to_str().unwrap(), "GET, HEAD");
    assert_eq!(agent().get(&format!("{base}/metrics?debug=1")).call().unwrap().status(), 200);
}

#[test]
fn label_values_with_quotes_backslashes_and_newlines_are_escaped_and_round_trip() {
    let nasty_owner = "C:\\etc\\\"sysctl.d\"\nline two";
    let nasty_key = "net.core.\"odd\\key\"\n";
    let m = AgentMetrics {
        mode: "ob\"serve\\\n".into(),
        conflicts: vec![Conflict { key: nasty_key.into(), owner: nasty_owner.into() }],
        managed: vec![ManagedKey { key: nasty_key.into(), intended: "a \"b\"\n\\c".into(), live: None, in_agreement: false }],
        ..Default::default()
    };
    let text = render(&m);
    // Every line is one sample, comment or blank: an unescaped newline would split a sample.
    for line in text.lines() {
        assert!(line.is_empty() || line.starts_with("# ") || line.starts_with("semantos_"), "broken line {line:?} in\n{text}");
    }
    let p = parse(&text);
    assert_eq!(value(&p, "semantos_agent_mode_info", &[("mode", "ob\"serve\\\n")]), 1.0);
    assert_eq!(value(&p, "semantos_ownership_conflict_info", &[("key", nasty_key), ("owner", nasty_owner)]), 1.0);
    assert_eq!(value(&p, "semantos_managed_key_info", &[("key", nasty_key), ("intended", "a \"b\"\n\\c"), ("live", "")]), 1.0);
}

#[test]
fn metrics_bind_error_on_a_taken_port_names_the_address() {
    let taken = TcpListener::bind(local()).unwrap();
    let addr = taken.local_addr().unwrap();
    let err = serve(addr, Arc::new(Mutex::new(AgentMetrics::default()))).unwrap_err().to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.contains("--metrics-addr"), "the error says how to recover: {err}");
}

#[test]
fn dropping_the_metrics_server_stops_it_and_frees_the_port() {
    let server = serve(local(), Arc::new(Mutex::new(AgentMetrics::default()))).unwrap();
    let addr = server.local_addr();
    assert_eq!(agent().get(&format!("http://{addr}/metrics")).call().unwrap().status(), 200);
    let t = std::time::Instant::now();
    drop(server);
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "drop hung for {:?}", t.elapsed());
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still held after drop: {e}"));
}

fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn metrics_textfile_is_replaced_atomically_a_reader_sees_only_whole_files_and_no_temp_remains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("semantos.prom");
    // Two versions large enough that a non-atomic write would be seen half-done.
    let big = |n: u64| AgentMetrics {
        samples_total: n,
        managed: (0..400).map(|i| ManagedKey { key: format!("net.k{i}"), intended: format!("{n} {i}"), live: Some(i.to_string()), in_agreement: i % 2 == 0 }).collect(),
        ..Default::default()
    };
    let (a, b) = (big(1), big(2));
    let (ta, tb) = (render(&a), render(&b));
    write_textfile(&path, &a).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, stop, ta, tb) = (path.clone(), Arc::clone(&stop), ta.clone(), tb.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let got = std::fs::read_to_string(&path).expect("the file is always there");
                assert!(got == ta || got == tb, "a reader saw a partial file ({} bytes)", got.len());
                reads += 1;
            }
            reads
        })
    };
    for i in 0..200 {
        write_textfile(&path, if i % 2 == 0 { &b } else { &a }).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ta);
    parse(&ta);
    assert_eq!(dir_entries(dir.path()), ["semantos.prom"], "a temporary file was left behind");
}

#[test]
fn metrics_textfile_error_names_the_path_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("semantos.prom");
    let err = write_textfile(&missing, &AgentMetrics::default()).unwrap_err().to_string();
    assert!(err.contains("no-such-dir"), "{err}");

    // A target the rename cannot replace (a non-empty directory): error, the target untouched.
    let target = dir.path().join("semantos.prom");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let err = write_textfile(&target, &AgentMetrics::default()).unwrap_err().to_string();
    assert!(err.contains(&target.display().to_string()), "{err}");
    assert_eq!(dir_entries(dir.path()), ["semantos.prom"], "a temporary file was left behind");
    assert_eq!(std::fs::read_to_string(target.join("keep")).unwrap(), "x");

    let err = write_textfile(std::path::Path::new("/"), &AgentMetrics::default()).unwrap_err().to_string();
    assert!(err.contains("names no file"), "{err}");
}
