//! The agent's `/metrics` endpoint: one `tiny_http` server on its own thread, rendering the shared
//! [`AgentMetrics`] on each scrape. `GET` (and `HEAD`) `/metrics` → 200 with [`CONTENT_TYPE`];
//! another path → 404; another method → 405. Dropping the [`Server`] stops the thread and closes
//! the socket.

use super::{render, AgentMetrics, MetricsError, CONTENT_TYPE};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response};

/// A running metrics endpoint; dropping it stops serving and releases the port.
pub struct Server {
    /// `None` once dropped (see `Drop`).
    http: Option<Arc<tiny_http::Server>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// The address actually bound (the port the OS chose when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = &self.http {
            h.unblock();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The last reference: tiny_http closes its listener on its own accept thread, after
        // its drop returns. Wait (a second at most) until the port refuses connections, so a
        // restarted agent can bind it again at once.
        self.http = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < deadline && std::net::TcpStream::connect_timeout(&self.addr, std::time::Duration::from_millis(50)).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Serves `shared` on `addr` until the returned [`Server`] is dropped; the error names the address.
pub fn serve(addr: SocketAddr, shared: Arc<Mutex<AgentMetrics>>) -> Result<Server, MetricsError> {
    let http = tiny_http::Server::http(addr).map_err(|e| MetricsError::Bind { addr, reason: e.to_string() })?;
    let bound = http.server_addr().to_ip().unwrap_or(addr);
    let http = Arc::new(http);
    let stop = Arc::new(AtomicBool::new(false));
    let (h, s) = (Arc::clone(&http), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("semantos-metrics".into())
        .spawn(move || serve_loop(&h, &s, &shared))
        .map_err(|e| MetricsError::Bind { addr, reason: format!("cannot start the server thread: {e}") })?;
    Ok(Server { http: Some(http), stop, addr: bound, thread: Some(thread) })
}

fn serve_loop(http: &tiny_http::Server, stop: &AtomicBool, shared: &Mutex<AgentMetrics>) {
    while !stop.load(Ordering::SeqCst) {
        match http.recv() {
            Ok(rq) => respond(rq, shared),
            // An unblock (drop) or a failed accept: the loop condition decides; a failed accept
            // (too many open files, say) must not end the endpoint, nor spin on the CPU.
            Err(_) if !stop.load(Ordering::SeqCst) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(_) => {}
        }
    }
}

/// What a request gets: status, body, and whether the body is the exposition.
fn route(method: &Method, url: &str) -> (u16, &'static str) {
    let path = url.split(['?', '#']).next().unwrap_or("");
    match (method, path) {
        (Method::Get | Method::Head, "/metrics") => (200, ""),
        (_, "/metrics") => (405, "405 method not allowed: /metrics answers GET and HEAD\n"),
        _ => (404, "404 not found: the agent serves its metrics at /metrics\n"),
    }
}

fn respond(rq: Request, shared: &Mutex<AgentMetrics>) {
    let (status, body) = route(rq.method(), rq.url());
    let resp = if status == 200 {
        // Clone under the lock and render outside it: the agent's sampler waits on this lock.
        let snapshot = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Response::from_string(render(&snapshot)).with_header(header("Content-Type", CONTENT_TYPE))
    } else {
        let r = Response::from_string(body).with_status_code(status).with_header(header("Content-Type", "text/plain; charset=utf-8"));
        if status == 405 { r.with_header(header("Allow", "GET, HEAD")) } else { r }
    };
    // A scraper that hung up mid-response is its problem, not the agent's.
    let _ = rq.respond(resp);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("constant ASCII header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_metrics_by_path_and_method() {
        assert_eq!(route(&Method::Get, "/metrics").0, 200);
        assert_eq!(route(&Method::Get, "/metrics?x=1").0, 200);
        assert_eq!(route(&Method::Head, "/metrics").0, 200);
        assert_eq!(route(&Method::Post, "/metrics").0, 405);
        assert_eq!(route(&Method::Get, "/").0, 404);
        assert_eq!(route(&Method::Get, "/metricsx").0, 404);
        assert_eq!(route(&Method::Delete, "/other").0, 404);
    }
}
