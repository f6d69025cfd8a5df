//! POST /report: the agent's JSON report, signed with HMAC-SHA256 when a token is configured,
//! stored as `REPORTS/<host uuid>/<seq>.json` (000001, 000002, ...), each written atomically.

use super::request::{Body, Request};
use super::response::{Outcome, Reply};
use anyhow::{bail, Context};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

pub const MAX_BODY: u64 = 1024 * 1024;
pub const SIGNATURE_HEADER: &str = "X-Rescue-Signature";
/// A slow body cannot hold a connection slot for longer than this.
const BODY_DEADLINE: Duration = Duration::from_secs(120);
/// Six digits in the file name.
const MAX_SEQ: u32 = 999_999;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("no {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("{SIGNATURE_HEADER} is not sha256=<64 lowercase hex>")]
    MalformedSignature,
    #[error("signature does not match the body")]
    BadSignature,
    #[error("body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("no string field host.uuid")]
    NoUuid,
    #[error("host.uuid {0:?} is not [0-9a-z-]{{1,64}} once lower-cased")]
    BadUuid(String),
    #[error("host directory already holds report {MAX_SEQ}")]
    Full,
    #[error("storing the report: {0}")]
    Store(#[from] io::Error),
}

impl ReportError {
    pub fn status(&self) -> u16 {
        match self {
            ReportError::MissingSignature
            | ReportError::MalformedSignature
            | ReportError::BadSignature => 401,
            ReportError::NotJson(_) | ReportError::NoUuid | ReportError::BadUuid(_) => 400,
            ReportError::Full => 507,
            ReportError::Store(_) => 500,
        }
    }
}

pub struct Sink {
    dir: PathBuf,
    token: Option<Vec<u8>>,
    /// Sequence numbers are allocated under it: two reports of one host never share a file.
    alloc: Mutex<()>,
}

impl Sink {
    /// Creates `dir` when missing.
    pub fn new(dir: &Path, token: Option<Vec<u8>>) -> anyhow::Result<Sink> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        Ok(Sink {
            dir,
            token,
            alloc: Mutex::new(()),
        })
    }

    /// Checks and stores one report body; returns `<uuid>/<seq>.json`.
    pub fn accept(&self, signature: Option<&str>, body: &[u8]) -> Result<String, ReportError> {
        if let Some(token) = &self.token {
            verify(token, signature, body)?;
        }
        let host = host_key(body)?;
        self.store(&host, body)
    }

    fn store(&self, host: &str, body: &[u8]) -> Result<String, ReportError> {
        // A poisoned lock only means another request panicked; the directory is still consistent.
        let _alloc = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.dir.join(host);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            sync_dir(&self.dir)?;
        }
        let seq = last_seq(&dir)? + 1;
        if seq > MAX_SEQ {
            return Err(ReportError::Full);
        }
        let name = format!("{seq:06}.json");
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = write_synced(&tmp, body).and_then(|()| fs::rename(&tmp, dir.join(&name)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        // The rename itself is durable only once the directory is.
        sync_dir(&dir)?;
        Ok(format!("{host}/{name}"))
    }
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The highest `NNNNNN.json` in `dir`, 0 when none; temp files and anything else are ignored.
fn last_seq(dir: &Path) -> io::Result<u32> {
    let mut last = 0;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            last = last.max(digits.parse().unwrap_or(0));
        }
    }
    Ok(last)
}

/// `sha256=<64 lowercase hex>` must be HMAC-SHA256(key = token, message = the raw body),
/// compared in constant time.
fn verify(token: &[u8], signature: Option<&str>, body: &[u8]) -> Result<(), ReportError> {
    let signature = signature.ok_or(ReportError::MissingSignature)?;
    let expected = signature
        .strip_prefix("sha256=")
        .and_then(lower_hex_32)
        .ok_or(ReportError::MalformedSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token).map_err(|_| ReportError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| ReportError::BadSignature)
}

fn lower_hex_32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The directory name of a report: its `host.uuid` lower-cased, only when it cannot name
/// anything but one directory level.
pub fn host_key(body: &[u8]) -> Result<String, ReportError> {
    let report: serde_json::Value = serde_json::from_slice(body)?;
    let uuid = report
        .get("host")
        .and_then(|h| h.get("uuid"))
        .and_then(|u| u.as_str())
        .ok_or(ReportError::NoUuid)?;
    let key = uuid.to_ascii_lowercase();
    let valid = (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
    if valid {
        Ok(key)
    } else {
        Err(ReportError::BadUuid(uuid.to_string()))
    }
}

/// Reads a token file: its bytes with one trailing newline removed; empty is an error (an empty
/// HMAC key would accept anyone who guesses that).
pub fn read_token(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut token = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if token.last() == Some(&b'\n') {
        token.pop();
        if token.last() == Some(&b'\r') {
            token.pop();
        }
    }
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

/// The HTTP side of a POST. `path` is the decoded request path.
pub fn handle(
    sink: Option<&Sink>,
    req: &Request,
    path: &[u8],
    mut reply: Reply,
    r: &mut impl Read,
    w: &mut impl Write,
) -> Outcome {
    let is_report = path == b"/report" || path.starts_with(b"/report/");
    let Some(sink) = sink.filter(|_| is_report) else {
        // A body left unread would be parsed as the next request, and closing with it unread
        // can reset the connection before the client reads the answer: a small one is drained.
        match req.body {
            Body::None => {}
            Body::Length(n) if n <= MAX_BODY && !req.expects_continue() => {
                reply.close |= read_body(r, n).is_err();
            }
            Body::Length(_) | Body::Encoded => reply.close = true,
        }
        let detail = if is_report {
            "no report sink (--reports)"
        } else {
            ""
        };
        return reply.status(w, 404, &[], detail);
    };
    let len = match req.body {
        Body::Length(n) => n,
        Body::None if req.header("content-length").is_some() => 0,
        Body::None => return reply.status(w, 411, &[], ""),
        Body::Encoded => {
            reply.close = true;
            return reply.status(w, 411, &[], "Transfer-Encoding is not supported");
        }
    };
    if len > MAX_BODY {
        // Nothing more is read: the connection ends here.
        reply.close = true;
        return reply.status(w, 413, &[], "a report is at most 1 MiB");
    }
    if req.expects_continue() && w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
        reply.close = true;
        return reply.status(w, 400, &[], "");
    }
    let body = match read_body(r, len) {
        Ok(body) => body,
        Err(_) => {
            // The client went away or stalled mid-body; the answer is for the log line.
            reply.close = true;
            return reply.status(w, 400, &[], "incomplete body");
        }
    };
    match sink.accept(req.header(SIGNATURE_HEADER), &body) {
        Ok(stored) => {
            let json = serde_json::json!({ "stored": stored }).to_string();
            reply.send(w, 201, "application/json", &[], json.as_bytes())
        }
        Err(e) => reply.status(w, e.status(), &[], &e.to_string()),
    }
}

fn read_body(r: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + BODY_DEADLINE;
    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut chunk = [0u8; 16 * 1024];
    let mut left = len;
    while left > 0 {
        if Instant::now() > deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let want = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
        let n = match r.read(&mut chunk[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        body.extend_from_slice(&chunk[..n]);
        left -= n as u64;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(token: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(token).unwrap();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    const BODY: &[u8] =
        br#"{"host":{"uuid":"4C4C4544-0042-3510-8057-B4C04F564D32"},"verdict":"repaired"}"#;

    #[test]
    fn signatures() {
        let good = sign(b"k", BODY);
        assert!(verify(b"k", Some(&good), BODY).is_ok());
        assert!(matches!(
            verify(b"other", Some(&good), BODY),
            Err(ReportError::BadSignature)
        ));
        assert!(matches!(
            verify(b"k", Some(&good), b"{}"),
            Err(ReportError::BadSignature)
        ));
        assert!(matches!(
            verify(b"k", None, BODY),
            Err(ReportError::MissingSignature)
        ));
        for bad in [
            good.to_uppercase(),
            good.replace("sha256=", "sha1="),
            good[..good.len() - 2].to_string(),
            format!("{good}00"),
            good.replace("sha256=", "sha256= "),
        ] {
            assert!(
                matches!(
                    verify(b"k", Some(&bad), BODY),
                    Err(ReportError::MalformedSignature)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_keys() {
        assert_eq!(
            host_key(BODY).unwrap(),
            "4c4c4544-0042-3510-8057-b4c04f564d32"
        );
        assert!(matches!(
            host_key(b"not json"),
            Err(ReportError::NotJson(_))
        ));
        assert!(matches!(
            host_key(br#"{"host":{}}"#),
            Err(ReportError::NoUuid)
        ));
        assert!(matches!(
            host_key(br#"{"host":{"uuid":5}}"#),
            Err(ReportError::NoUuid)
        ));
        assert!(matches!(host_key(br#"[1]"#), Err(ReportError::NoUuid)));
        let long = "a".repeat(65);
        for bad in ["", "../x", "a/b", "a.b", "é", "a b", long.as_str()] {
            let body = serde_json::json!({"host": {"uuid": bad}}).to_string();
            assert!(
                matches!(host_key(body.as_bytes()), Err(ReportError::BadUuid(_))),
                "{bad:?}"
            );
        }
        let max = "a".repeat(64);
        let body = serde_json::json!({"host": {"uuid": max}}).to_string();
        assert_eq!(host_key(body.as_bytes()).unwrap(), max);
    }

    #[test]
    fn numbering_and_atomic_files() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = Sink::new(&tmp.path().join("reports"), None).unwrap();
        let host = "4c4c4544-0042-3510-8057-b4c04f564d32";
        assert_eq!(
            sink.accept(None, BODY).unwrap(),
            format!("{host}/000001.json")
        );
        let dir = tmp.path().join("reports").join(host);
        // A leftover temp file and foreign names do not count.
        fs::write(dir.join(".000002.json.tmp"), b"x").unwrap();
        fs::write(dir.join("notes.json"), b"x").unwrap();
        fs::write(dir.join("000041.json.bak"), b"x").unwrap();
        assert_eq!(
            sink.accept(None, BODY).unwrap(),
            format!("{host}/000002.json")
        );
        assert_eq!(fs::read(dir.join("000002.json")).unwrap(), BODY);
        assert!(!dir.join(".000002.json.tmp").exists());
        fs::write(dir.join("000041.json"), b"x").unwrap();
        assert_eq!(
            sink.accept(None, BODY).unwrap(),
            format!("{host}/000042.json")
        );
        fs::write(dir.join("999999.json"), b"x").unwrap();
        assert!(matches!(sink.accept(None, BODY), Err(ReportError::Full)));
    }

    #[test]
    fn tokens() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t");
        for (content, want) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\n", b"secret"),
            (b"secret", b"secret"),
            (b"secret\n\n", b"secret\n"),
        ] {
            fs::write(&p, content).unwrap();
            assert_eq!(read_token(&p).unwrap(), want);
        }
        for empty in [&b""[..], b"\n", b"\r\n"] {
            fs::write(&p, empty).unwrap();
            assert!(read_token(&p).is_err());
        }
        assert!(read_token(&tmp.path().join("missing")).is_err());
    }
}
