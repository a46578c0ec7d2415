//! The LLM backend over https, against a real TLS server: Python's
//! `http.server` wrapped in `ssl`, with a certificate from a throwaway CA
//! made by the `openssl` command. Trusting that CA with `--llm-ca-file`
//! gets the plan; without it the certificate is refused and the run says so;
//! a key never goes over plain http to another machine.

use crate::llm_contract::{Canned, reply_with, sample_csv, sandbox};
use crate::support::{bin, text};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SERVER: &str = r#"
import http.server, ssl, sys
body = open(sys.argv[3], 'rb').read()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('content-length', 0)))
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (scripts/setup/00-system.sh installs it)");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o).1);
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it (`srv.pem`, `srv.key`).
fn make_ca(dir: &Path) {
    openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=semantos test CA"]);
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("srv.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(dir, &["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "srv.ext"]);
}

/// The https server, killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, body: &str) -> TlsServer {
    std::fs::write(dir.join("server.py"), SERVER).unwrap();
    std::fs::write(dir.join("reply.json"), body).unwrap();
    let mut child = Command::new("python3").args(["server.py", "srv.pem", "srv.key", "reply.json"]).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("the https server printed {line:?}"));
    TlsServer { child, port }
}

#[test]
fn https_with_a_trusted_ca_gets_the_plan_and_an_unknown_ca_is_refused() {
    let d = tempfile::tempdir().unwrap();
    make_ca(d.path());
    let server = serve(d.path(), &Canned::content(&reply_with(&[("vm.swappiness", "30", "swap_in_stalls")]), "stop").body);
    let url = format!("https://127.0.0.1:{}/v1", server.port);
    let (csv, tree) = (sample_csv().display().to_string(), sandbox(d.path()));
    let run = |extra: &[&str]| {
        let o = Command::new(bin())
            .args(["--json", "recommend", "--telemetry", &csv, "--sysctl-root", &tree, "--reasoner", "llm", "--llm-url", &url, "--llm-model", "m", "--llm-fallback", "fail", "--llm-timeout", "10"])
            .args(extra)
            .current_dir(d.path())
            .env("SEMANTOS_LLM_API_KEY", "sk-tls-test")
            .env_remove("SEMANTOS_LLM_CA_FILE")
            .output()
            .unwrap();
        let (out, err) = text(&o);
        (o.status.code(), out, err)
    };
    // Trusted: the model's plan, verified and checked.
    let (code, out, err) = run(&["--llm-ca-file", "ca.pem"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    assert!(v["plan"]["created_by"].as_str().unwrap().starts_with("llm:m"), "{}", v["plan"]["created_by"]);
    assert!(v["plan"]["changes"].as_array().unwrap().iter().any(|c| c["key"] == "vm.swappiness" && c["to"] == "30"), "{out}");
    // The built-in roots do not know this CA: a transport verdict naming the certificate problem.
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("[transport]") && err.to_lowercase().contains("certificate"), "{err}");
    // A CA file that is not PEM, and a key over plain http to another machine, are refused before anything is sent.
    std::fs::write(d.path().join("junk.pem"), "junk").unwrap();
    let (code, _, err) = run(&["--llm-ca-file", "junk.pem"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--llm-ca-file junk.pem"), "{err}");
    let o = Command::new(bin())
        .args(["recommend", "--telemetry", &csv, "--sysctl-root", &tree, "--reasoner", "llm", "--llm-url", "http://192.0.2.7:8080/v1", "--llm-model", "m"])
        .current_dir(d.path())
        .env("SEMANTOS_LLM_API_KEY", "sk-tls-test")
        .output()
        .unwrap();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("clear text") && !err.contains("sk-tls-test"), "{err}");
}
