//! One HTTP/1.1 POST of the JSON report, signed, with hard time bounds: the report must never
//! hold up the power-off beyond its budget, so every connect, write and read has a timeout.
//!
//! Signature: `X-Rescue-Signature: sha256=<hex HMAC-SHA256(token, body)>` over the raw body
//! (docs/serve.md; `rescue-image serve` checks it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::net_config::ReportUrl;

pub const SIGNATURE_HEADER: &str = "X-Rescue-Signature";
/// Enough for a status line and headers; the body of the answer is not needed.
const MAX_RESPONSE: usize = 16 << 10;

/// `sha256=<hex>` of the body under `token`.
pub fn signature(token: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The request bytes (headers and body).
pub fn request(url: &ReportUrl, body: &[u8], token: Option<&str>, host_id: &str) -> Vec<u8> {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: rescue-agent/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-Rescue-Host: {host_id}\r\n\
         Connection: close\r\n",
        url.path,
        url.port,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("{SIGNATURE_HEADER}: {}\r\n", signature(t, body)));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one POST before `deadline`; `Ok(status)` for any HTTP answer, `Err` for no answer.
pub fn post(url: &ReportUrl, request: &[u8], deadline: Instant) -> Result<u16, String> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: cannot resolve: {e}", url.host))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{}: no address", url.host))?;
    let budget = left();
    if budget.is_zero() {
        return Err("out of time".into());
    }
    let mut stream = TcpStream::connect_timeout(addr, budget.min(Duration::from_secs(10)))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let io = |d: Duration| Some(d.max(Duration::from_millis(100)));
    stream
        .set_write_timeout(io(left()))
        .and_then(|_| stream.set_read_timeout(io(left())))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    while answer.len() < MAX_RESPONSE && !answer.windows(2).any(|w| w == b"\r\n") {
        if left().is_zero() {
            return Err(format!("{addr}: no answer in time"));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
    }
    status_of(&answer).ok_or_else(|| format!("{addr}: not an HTTP answer"))
}

/// The status code of `HTTP/1.x NNN ...`.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/1."))?;
    words
        .next()?
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn posts_and_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let url = ReportUrl::parse(&format!("http://127.0.0.1:{port}/report")).unwrap();
        let req = request(&url, b"{\"a\":1}", Some("k"), "uuid-1");
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(post(&url, &req, deadline), Ok(201));
        let seen = server.join().unwrap();
        assert!(seen.starts_with("POST /report HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("Content-Length: 7\r\n"));
        assert!(seen.contains(&format!(
            "X-Rescue-Signature: {}\r\n",
            signature("k", b"{\"a\":1}")
        )));
        assert!(seen.contains("X-Rescue-Host: uuid-1\r\n"));
    }

    #[test]
    fn a_silent_server_ends_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = ReportUrl::parse(&format!("http://127.0.0.1:{port}/report")).unwrap();
        let t = Instant::now();
        let r = post(&url, b"x", t + Duration::from_millis(400));
        assert!(r.is_err(), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drop(listener);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status_of(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 99x\r\n"), None);
    }
}
