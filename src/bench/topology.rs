//! The bench's network: a client namespace and a server namespace joined by
//! a veth pair (no delay) or by a shaped path (delay, rate, queue). The path
//! is shaped by `tc netem` where the kernel has it and otherwise by the
//! userspace TUN relay. Everything lives inside the two namespaces, which
//! are removed when the topology is dropped; the host's own namespace is
//! never touched.

use super::netns::Netns;
use super::relay::{LinkShape, Relay, RelayStats};
use anyhow::{Context, Result};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::process::Command;

/// How the two namespaces are joined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Link {
    /// A veth pair: sub-millisecond RTT, no bottleneck.
    Direct,
    /// A path with this shape in each direction.
    Shaped(LinkShape),
}

/// Client address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// Server address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
const CLIENT_DEV: &str = "sbc0";
const SERVER_DEV: &str = "sbs0";

/// Two namespaces and the link between them. Field order matters: the relay
/// stops before the namespaces are deleted.
pub struct Topology {
    relay: Option<Relay>,
    /// The client's namespace.
    pub client: Netns,
    /// The server's namespace.
    pub server: Netns,
    /// How the path is emulated, for the report (`veth`, `tc netem ...`, `userspace TUN relay ...`).
    pub emulation: String,
}

impl Topology {
    /// Creates `sbench-<pid>-<tag>-c` and `-s` and joins them by `link`.
    pub fn build(tag: &str, link: &Link) -> Result<Topology> {
        let client = Netns::create(&format!("{tag}-c"))?;
        let server = Netns::create(&format!("{tag}-s"))?;
        for ns in [&client, &server] {
            ns.ip(&["link", "set", "lo", "up"])?;
        }
        let mut t = Topology { relay: None, client, server, emulation: String::new() };
        match link {
            Link::Direct => {
                t.veth()?;
                t.emulation = "veth pair (no delay, no bottleneck)".into();
            }
            Link::Shaped(shape) => {
                t.veth()?;
                match t.netem(shape) {
                    Ok(desc) => t.emulation = desc,
                    Err(why) => {
                        t.client.ip(&["link", "del", CLIENT_DEV])?;
                        t.relay = Some(Relay::start(&t.client, CLIENT_DEV, &t.server, SERVER_DEV, *shape)?);
                        for (ns, dev, me, peer) in [(&t.client, CLIENT_DEV, CLIENT_IP, SERVER_IP), (&t.server, SERVER_DEV, SERVER_IP, CLIENT_IP)] {
                            ns.ip(&["addr", "add", &me.to_string(), "peer", &peer.to_string(), "dev", dev])?;
                            ns.ip(&["link", "set", dev, "up", "mtu", "1500", "txqueuelen", "20000"])?;
                        }
                        t.emulation = format!(
                            "userspace TUN relay: {} ms one way, {} Mbit/s, drop-tail queue {} bytes (tc netem unavailable: {why})",
                            shape.delay_ms, shape.rate_mbit, shape.queue_bytes
                        );
                    }
                }
            }
        }
        Ok(t)
    }

    fn veth(&self) -> Result<()> {
        crate::bench::netns::ip(self.client.name(), &["link", "add", CLIENT_DEV, "netns", self.client.name(), "type", "veth", "peer", "name", SERVER_DEV, "netns", self.server.name()])?;
        for (ns, dev, me) in [(&self.client, CLIENT_DEV, CLIENT_IP), (&self.server, SERVER_DEV, SERVER_IP)] {
            ns.ip(&["addr", "add", &format!("{me}/24"), "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// Shapes both veth ends with netem; the error says why it cannot.
    fn netem(&self, shape: &LinkShape) -> std::result::Result<String, String> {
        // netem's limit counts packets; the queue is sized in full-size frames.
        let limit = (shape.queue_bytes / 1500).max(100).to_string();
        let delay = format!("{}ms", shape.delay_ms);
        let rate = format!("{}mbit", shape.rate_mbit);
        for (ns, dev) in [(&self.client, CLIENT_DEV), (&self.server, SERVER_DEV)] {
            let out = Command::new("tc")
                .args(["-n", ns.name(), "qdisc", "add", "dev", dev, "root", "netem", "delay", &delay, "rate", &rate, "limit", &limit])
                .output()
                .map_err(|e| format!("running tc: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
        }
        Ok(format!("tc netem on the veth pair: delay {delay}, rate {rate}, limit {limit} packets"))
    }

    /// Both namespaces, server first (the side whose listeners and senders most scenarios watch).
    pub fn namespaces(&self) -> [&Netns; 2] {
        [&self.server, &self.client]
    }

    /// Stops the relay (if any) and removes the namespaces; returns the relay's counters.
    pub fn teardown(mut self) -> Option<RelayStats> {
        self.relay.take().map(Relay::stop)
    }
}

/// Checks that `ip` can create namespaces here (root, iproute2), naming what is missing.
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("semantos bench needs root: it creates network namespaces and writes their sysctls (re-run with sudo); nothing was changed");
    }
    Command::new("ip").arg("-V").output().context("semantos bench needs the `ip` command (iproute2): install it (scripts/setup/00-system.sh)")?;
    Ok(())
}
