//! `rescue.report=URL`: after the run, load the NIC drivers, get an address, POST the run report
//! (signed with `rescue.token`), all inside [`BUDGET`]: a report server that is down or a NIC
//! without a link delays the power-off by at most that, never more.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http_post;
use super::net_config::{NetConfig, ReportUrl};
use super::network;
use super::result_line::RunResult;
use crate::machine::smbios::HostIdentity;

/// Everything the network report may take: drivers, link, DHCP and the POST retries.
pub const BUDGET: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 4;
const PER_ATTEMPT: Duration = Duration::from_secs(12);
const BETWEEN_ATTEMPTS: Duration = Duration::from_secs(2);

/// The report a run sends: one shape for every verdict (`schema_version` 2, docs/report.md).
#[derive(Serialize)]
pub struct RunReport<'a> {
    pub schema_version: u32,
    pub tool: String,
    pub host: &'a HostIdentity,
    pub result: &'a RunResult,
    /// The closing screen's text.
    pub summary: &'a str,
    /// The full report written beside the undo record, when the run wrote one.
    pub repair: Option<serde_json::Value>,
}

pub use crate::report::SCHEMA_VERSION;

impl RunReport<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Where and how to send.
pub struct Destination<'a> {
    pub url: &'a ReportUrl,
    pub token: Option<&'a str>,
    pub net: &'a NetConfig,
}

/// Brings the network up (`load_nics` loads the held-back drivers and names them) and POSTs
/// `body`; the line to print either way.
pub fn send(
    to: &Destination,
    sys: &Path,
    body: &[u8],
    host_key: &str,
    load_nics: &mut dyn FnMut() -> Vec<String>,
    say: &dyn Fn(&str),
) -> Result<String, String> {
    let start = Instant::now();
    let deadline = start + BUDGET;
    let loaded = load_nics();
    say(&format!(
        "report to {}: NIC drivers loaded: {}",
        to.url,
        if loaded.is_empty() {
            "none (no NIC in this machine has a driver in the image)".to_string()
        } else {
            loaded.join(" ")
        }
    ));
    let iface = network::configure(sys, to.net, deadline)?;
    say(&format!(
        "report: {iface} configured ({}) after {} ms",
        match to.net {
            NetConfig::Dhcp => "DHCP",
            NetConfig::Static { .. } => "static",
        },
        start.elapsed().as_millis()
    ));
    let request = http_post::request(to.url, body, to.token, host_key);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let until = deadline.min(Instant::now() + PER_ATTEMPT);
        match http_post::post(to.url, &request, until) {
            Ok(status) if (200..300).contains(&status) => {
                return Ok(format!(
                    "report sent to {} (HTTP {status}, {} bytes, attempt {attempt}, {} ms)",
                    to.url,
                    body.len(),
                    start.elapsed().as_millis()
                ))
            }
            // The server understood and said no (bad signature, too large): retrying won't help.
            Ok(status) if (400..500).contains(&status) => {
                return Err(format!(
                    "the report server refused the report: HTTP {status}"
                ))
            }
            Ok(status) => last = format!("HTTP {status}"),
            Err(e) => last = e,
        }
        if Instant::now() + BETWEEN_ATTEMPTS >= deadline {
            break;
        }
        std::thread::sleep(BETWEEN_ATTEMPTS);
    }
    Err(format!(
        "report not sent within {} s: {last}",
        BUDGET.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_report_shape() {
        let host = HostIdentity {
            uuid: Some("4c4c4544-0042-3510-8052-b4c04f4e4d32".into()),
            serial: None,
        };
        let result = RunResult::new(super::super::Verdict::NothingToDo);
        let r = RunReport {
            schema_version: SCHEMA_VERSION,
            tool: "rescue-agent 0.1.0".into(),
            host: &host,
            result: &result,
            summary: "healthy",
            repair: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["schema_version"], 2);
        assert_eq!(v["host"]["uuid"], "4c4c4544-0042-3510-8052-b4c04f4e4d32");
        assert_eq!(v["result"]["verdict"], "nothing_to_do");
        assert!(v["repair"].is_null());
    }
}
