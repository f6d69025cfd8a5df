//! The request line and header section (RFC 9112), read with hard limits so a client cannot make
//! the server buffer without bound: 16 KiB for the whole head, 100 header fields, and a deadline
//! once the first byte has arrived (a slow trickle cannot hold a connection slot forever).

use std::io::{self, BufRead};
use std::time::{Duration, Instant};
use thiserror::Error;

pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// What the head says about a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    /// Any Transfer-Encoding: not supported, the connection cannot be reused after it.
    Encoded,
}

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent (visible ASCII only), for the log line.
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Error)]
pub enum RequestError {
    #[error("connection closed inside the request head")]
    Incomplete,
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    #[error("request head not complete in time")]
    Timeout,
    #[error("request head over {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("HTTP version not supported")]
    Version,
}

impl RequestError {
    /// The status to answer with; None when there is nobody left to answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Incomplete | RequestError::Io(_) => None,
            RequestError::Timeout => Some(408),
            RequestError::TooLarge | RequestError::TooManyHeaders => Some(431),
            RequestError::Malformed(_) => Some(400),
            RequestError::Version => Some(505),
        }
    }
}

/// Reads one request head. `Ok(None)`: the client closed (or went idle past the socket's read
/// timeout) between requests, which is the normal end of a keep-alive connection.
pub fn read(r: &mut impl BufRead, deadline: Duration) -> Result<Option<Request>, RequestError> {
    let mut head = HeadReader {
        budget: MAX_HEAD_BYTES,
        started: None,
        deadline,
    };
    let mut line = Vec::new();
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    loop {
        if !head.line(r, &mut line)? {
            return Ok(None);
        }
        if !line.is_empty() {
            break;
        }
    }
    let (method, target, version) = request_line(&line)?;
    let mut headers = Vec::new();
    loop {
        if !head.line(r, &mut line)? {
            return Err(RequestError::Incomplete);
        }
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(RequestError::TooManyHeaders);
        }
        headers.push(header_field(&line)?);
    }
    let body = body_of(&headers)?;
    Ok(Some(Request {
        method,
        target,
        version,
        headers,
        body,
    }))
}

struct HeadReader {
    budget: usize,
    started: Option<Instant>,
    deadline: Duration,
}

impl HeadReader {
    /// One line without its LF (or CRLF) into `line`; false at end of stream between lines.
    fn line(&mut self, r: &mut impl BufRead, line: &mut Vec<u8>) -> Result<bool, RequestError> {
        line.clear();
        loop {
            if self.started.is_some_and(|t| t.elapsed() > self.deadline) {
                return Err(RequestError::Timeout);
            }
            let buf = match r.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if self.started.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    return Err(RequestError::Timeout)
                }
                // Idle between requests (the socket's read timeout) ends the connection quietly.
                Err(e) => return Err(RequestError::Io(e)),
            };
            if buf.is_empty() {
                return if line.is_empty() {
                    Ok(false)
                } else {
                    Err(RequestError::Incomplete)
                };
            }
            self.started.get_or_insert_with(Instant::now);
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if take > self.budget {
                return Err(RequestError::TooLarge);
            }
            self.budget -= take;
            line.extend_from_slice(&buf[..take]);
            r.consume(take);
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.contains(&b'\r') {
                    return Err(RequestError::Malformed("bare CR"));
                }
                return Ok(true);
            }
        }
    }
}

fn request_line(line: &[u8]) -> Result<(String, String, Version), RequestError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(RequestError::Malformed("method"));
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(RequestError::Malformed("request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(RequestError::Version)
        }
        _ => return Err(RequestError::Malformed("version")),
    };
    // Both checked to be ASCII above.
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        String::from_utf8_lossy(target).into_owned(),
        version,
    ))
}

fn header_field(line: &[u8]) -> Result<(String, String), RequestError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(RequestError::Malformed("header field without colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Also rejects whitespace before the colon and obs-fold continuation lines (RFC 9112 §5).
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(RequestError::Malformed("header field name"));
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(RequestError::Malformed("control character in header field"));
    }
    let value = value.trim_ascii();
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// Content-Length / Transfer-Encoding; both at once is how requests get smuggled: refused.
fn body_of(headers: &[(String, String)]) -> Result<Body, RequestError> {
    let encoded = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let mut length = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::Malformed("Content-Length"));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| RequestError::Malformed("Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(RequestError::Malformed("conflicting Content-Length"));
        }
        length = Some(n);
    }
    match (encoded, length) {
        (true, Some(_)) => Err(RequestError::Malformed(
            "both Transfer-Encoding and Content-Length",
        )),
        (true, None) => Ok(Body::Encoded),
        (false, Some(0)) | (false, None) => Ok(Body::None),
        (false, Some(n)) => Ok(Body::Length(n)),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Request {
    /// The first field of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes unless `keep-alive`.
    pub fn wants_close(&self) -> bool {
        match self.version {
            Version::Http11 => self.connection_has("close"),
            Version::Http10 => self.connection_has("close") || !self.connection_has("keep-alive"),
        }
    }

    /// `Expect: 100-continue` (HTTP/1.1 only): the client waits for an interim answer before
    /// sending the body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    /// The decoded path of the target: absolute-form cut to its path, query and fragment dropped,
    /// percent-escapes decoded. Bytes, not text: a path is not necessarily UTF-8.
    pub fn path(&self) -> Result<Vec<u8>, RequestError> {
        let t = self.target.as_str();
        let t = if t.starts_with('/') {
            t
        } else {
            let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
            let rest = if lower.starts_with("http://") {
                t.get(7..)
            } else if lower.starts_with("https://") {
                t.get(8..)
            } else {
                None
            }
            .ok_or(RequestError::Malformed("request target"))?;
            rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/")
        };
        let t = t.split(['?', '#']).next().unwrap_or(t);
        percent_decode(t).ok_or(RequestError::Malformed("percent-encoding"))
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = hex_digit(*b.get(i + 1)?)?;
            let lo = hex_digit(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Request>, RequestError> {
        read(&mut io::BufReader::new(raw), Duration::from_secs(30))
    }

    fn ok(raw: &[u8]) -> Request {
        parse(raw).unwrap().unwrap()
    }

    fn status(raw: &[u8]) -> Option<u16> {
        parse(raw).unwrap_err().status()
    }

    #[test]
    fn simple_get() {
        let r = ok(b"\r\nGET /a.iso HTTP/1.1\r\nHost: x\r\nRange:  bytes=0-9 \r\n\r\n");
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a.iso");
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.header("range"), Some("bytes=0-9"));
        assert_eq!(r.header("HOST"), Some("x"));
        assert_eq!(r.body, Body::None);
        assert!(!r.wants_close());
    }

    #[test]
    fn bare_lf_lines_and_pipelining() {
        let raw = b"GET /1 HTTP/1.1\nHost: x\n\nHEAD /2 HTTP/1.0\r\n\r\n";
        let mut r = io::BufReader::new(&raw[..]);
        let a = read(&mut r, Duration::from_secs(1)).unwrap().unwrap();
        let b = read(&mut r, Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!((a.target.as_str(), b.target.as_str()), ("/1", "/2"));
        assert!(b.wants_close());
        assert!(read(&mut r, Duration::from_secs(1)).unwrap().is_none());
    }

    #[test]
    fn connection_tokens() {
        assert!(ok(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").wants_close());
        assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").wants_close());
        assert!(ok(b"GET / HTTP/1.0\r\n\r\n").wants_close());
    }

    #[test]
    fn bodies() {
        let r = ok(b"POST /report HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(r.body, Body::Length(12));
        let r = ok(b"POST /report HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.body, Body::Encoded);
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(status(bad), Some(400), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn malformed_heads() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        ] {
            assert_eq!(status(bad), Some(400), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), Some(505));
    }

    #[test]
    fn limits() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&big), Some(431));

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        let mut over = many.clone();
        many.extend_from_slice(b"\r\n");
        assert_eq!(ok(&many).headers.len(), MAX_HEADERS);
        over.extend_from_slice(b"X-last: y\r\n\r\n");
        assert_eq!(status(&over), Some(431));
    }

    #[test]
    fn end_of_stream() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b"\r\n\r\n").unwrap().is_none());
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost:"),
            Err(RequestError::Incomplete)
        ));
        assert_eq!(status(b"GET / HTTP/1.1\r\n"), None);
    }

    fn path_of(target: &str) -> Result<Vec<u8>, RequestError> {
        ok(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).path()
    }

    #[test]
    fn paths() {
        assert_eq!(path_of("/a%20b.iso").unwrap(), b"/a b.iso");
        assert_eq!(path_of("/%2e%2E/x").unwrap(), b"/../x");
        assert_eq!(path_of("/a?x=/../b#f").unwrap(), b"/a");
        assert_eq!(path_of("/%00").unwrap(), b"/\0");
        assert_eq!(path_of("/%ff").unwrap(), b"/\xff");
        assert_eq!(path_of("http://host:8080/p/q").unwrap(), b"/p/q");
        assert_eq!(path_of("HTTPS://host").unwrap(), b"/");
        for bad in ["/%", "/%2", "/%zz", "/%%41", "*", "x/y", "ftp://h/x"] {
            assert!(path_of(bad).is_err(), "{bad}");
        }
    }
}
