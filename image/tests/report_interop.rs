//! The two ends of `rescue.report=` against each other: the agent's own request builder and
//! client (`rescue_agent::init::http_post`) posting a run report to the built `rescue-image serve`
//! binary, which must check the signature and file the report under the host's UUID.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rescue_agent::init::http_post::{post, request};
use rescue_agent::init::net_config::ReportUrl;
use rescue_agent::init::report_upload::{RunReport, SCHEMA_VERSION};
use rescue_agent::init::result_line::{RunResult, Verdict};
use rescue_agent::machine::smbios::HostIdentity;

const UUID: &str = "5a1e0000-0000-4000-8000-00000000f1ee";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, token: &str) -> Server {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .arg("serve")
        .arg(dir.join("www"))
        .args(["--listen", "127.0.0.1:0", "--reports"])
        .arg(dir.join("reports"))
        .arg("--token-file")
        .arg(dir.join("token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("serve: listening on http://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Server { child, port }
}

fn body() -> Vec<u8> {
    let host = HostIdentity {
        uuid: Some(UUID.into()),
        serial: Some("FLEET-HOST-01".into()),
    };
    let mut result = RunResult::new(Verdict::Repaired);
    result.changes = vec!["slot 4 → 5: bootbank".into()];
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: "rescue-agent test".into(),
        host: &host,
        result: &result,
        summary: "repaired",
        repair: None,
    }
    .to_json()
}

#[test]
fn the_agents_signed_report_is_filed_under_its_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "fleet-token");
    let url = ReportUrl::parse(&format!("http://127.0.0.1:{}/report", server.port)).unwrap();
    let body = body();
    let deadline = || Instant::now() + Duration::from_secs(10);

    let signed = request(&url, &body, Some("fleet-token"), UUID);
    assert_eq!(post(&url, &signed, deadline()), Ok(201));
    let stored = dir.path().join("reports").join(UUID).join("000001.json");
    assert_eq!(std::fs::read(&stored).unwrap(), body, "stored as sent");

    // A wrong key or no signature: refused, nothing more stored.
    for bad in [
        request(&url, &body, Some("other"), UUID),
        request(&url, &body, None, UUID),
    ] {
        assert_eq!(post(&url, &bad, deadline()), Ok(401));
    }
    let filed = std::fs::read_dir(dir.path().join("reports").join(UUID))
        .unwrap()
        .count();
    assert_eq!(filed, 1);

    // A second run of the same host gets the next number.
    assert_eq!(post(&url, &signed, deadline()), Ok(201));
    assert!(dir
        .path()
        .join("reports")
        .join(UUID)
        .join("000002.json")
        .is_file());
}
