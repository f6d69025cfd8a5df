//! Response heads and short, complete responses; what the log line reports about each.

use super::date;
use super::request::Version;
use std::io::Write;

/// What one request came to: the log line's status, body bytes and span, and whether the
/// connection ends after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub bytes: u64,
    /// The inclusive span a 206 carried.
    pub range: Option<(u64, u64)>,
    pub close: bool,
}

/// How to answer one request.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub version: Version,
    pub close: bool,
    /// HEAD: the same head as GET, no body.
    pub head_only: bool,
}

impl Reply {
    /// Status line, `Date`, `Server`, the given fields and the connection's fate.
    pub fn head(&self, status: u16, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: rescue-image\r\n",
            reason(status),
            date::now()
        );
        for (name, value) in fields {
            h.push_str(name);
            h.push_str(": ");
            h.push_str(value);
            h.push_str("\r\n");
        }
        if self.close {
            h.push_str("Connection: close\r\n");
        } else if self.version == Version::Http10 {
            h.push_str("Connection: keep-alive\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    /// A whole response with a small in-memory body. A failed write ends the connection.
    pub fn send(
        &self,
        w: &mut impl Write,
        status: u16,
        content_type: &str,
        fields: &[(&str, &str)],
        body: &[u8],
    ) -> Outcome {
        let len = body.len().to_string();
        let mut all = vec![("Content-Type", content_type), ("Content-Length", &len)];
        all.extend_from_slice(fields);
        let mut out = self.head(status, &all);
        if !self.head_only {
            out.extend_from_slice(body);
        }
        let sent = w.write_all(&out).and_then(|()| w.flush()).is_ok();
        Outcome {
            status,
            bytes: if sent && !self.head_only {
                body.len() as u64
            } else {
                0
            },
            range: None,
            close: self.close || !sent,
        }
    }

    /// An error or status answer whose body is its status line, plus an optional detail.
    pub fn status(
        &self,
        w: &mut impl Write,
        status: u16,
        fields: &[(&str, &str)],
        detail: &str,
    ) -> Outcome {
        let mut body = format!("{status} {}", reason(status));
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        body.push('\n');
        self.send(w, status, "text/plain", fields, body.as_bytes())
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_and_close_heads() {
        let r = Reply {
            version: Version::Http10,
            close: false,
            head_only: false,
        };
        let h = String::from_utf8(r.head(200, &[("X", "1")])).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{h}");
        assert!(h.ends_with("X: 1\r\nConnection: keep-alive\r\n\r\n"), "{h}");

        let mut out = Vec::new();
        let o = Reply {
            version: Version::Http11,
            close: true,
            head_only: true,
        }
        .status(&mut out, 404, &[], "");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Length: 14\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert_eq!(
            o,
            Outcome {
                status: 404,
                bytes: 0,
                range: None,
                close: true
            }
        );
    }
}
