//! `[tasks]`: how the node runs tasks — worker slots for plan and step jobs, and the tools'
//! limits that are the owner's to choose.

use serde::{Deserialize, Serialize};

use super::schema::FieldError;

/// `[tasks]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Plan and step jobs run at once (model calls wait on the network, so this can exceed
    /// the cores). Per-agent limits come from each agent's definition.
    pub workers: usize,
    /// `http_fetch`: largest response body, in bytes.
    pub fetch_max_bytes: usize,
    /// `http_fetch`: seconds for the whole fetch, redirects included.
    pub fetch_timeout_secs: u64,
    /// `shell`: seconds a command may run.
    pub shell_timeout_secs: u64,
    /// Private address ranges `http_fetch` may reach anyway (CIDR, e.g. `192.168.1.10/32` for
    /// a service on your LAN). Empty by default: private, loopback, link-local, CGNAT and ULA
    /// addresses are refused. Each entry widens what a prompt-injected agent can reach.
    pub fetch_allow_cidrs: Vec<String>,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            fetch_max_bytes: 10 * 1024 * 1024,
            fetch_timeout_secs: 30,
            shell_timeout_secs: 30,
            fetch_allow_cidrs: Vec::new(),
        }
    }
}

impl TasksConfig {
    pub(crate) fn validate(&self, out: &mut Vec<FieldError>) {
        let mut check = |ok: bool, key: &'static str, message: &str| {
            if !ok {
                out.push(FieldError { key, message: message.to_owned() });
            }
        };
        check((1..=4096).contains(&self.workers), "tasks.workers", "allowed 1 to 4096");
        check(
            (1024..=100 * 1024 * 1024).contains(&self.fetch_max_bytes),
            "tasks.fetch_max_bytes",
            "allowed 1024 to 104857600",
        );
        check(
            (1..=300).contains(&self.fetch_timeout_secs),
            "tasks.fetch_timeout_secs",
            "allowed 1 to 300",
        );
        check(
            (1..=600).contains(&self.shell_timeout_secs),
            "tasks.shell_timeout_secs",
            "allowed 1 to 600",
        );
        check(self.fetch_allow_cidrs.len() <= 64, "tasks.fetch_allow_cidrs", "at most 64 entries");
        for c in &self.fetch_allow_cidrs {
            let ok = c.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok()
            });
            check(ok, "tasks.fetch_allow_cidrs", &format!("{c:?} is not a CIDR like 10.0.0.5/32"));
        }
    }
}
