//! GET and HEAD of the regular files under the served directory: a path resolution that cannot
//! leave it, the validators BMCs cache by, one Range span, and a body streamed from the file
//! (ISOs are tens of MB; nothing is read whole).

use super::date;
use super::range::{self, Span};
use super::request::Request;
use super::response::{Outcome, Reply};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `root` is canonical; `path` is the decoded request path.
pub fn handle(
    root: &Path,
    req: &Request,
    path: &[u8],
    reply: Reply,
    w: &mut impl Write,
) -> Outcome {
    let Some(file) = locate(root, path) else {
        return reply.status(w, 404, &[], "");
    };
    // Size and mtime from the open handle: they describe the bytes sent even if the path is
    // replaced meanwhile (a rebuilt ISO renamed into place).
    let Some((mut f, meta)) = File::open(&file)
        .ok()
        .and_then(|f| f.metadata().ok().map(|m| (f, m)))
        .filter(|(_, m)| m.is_file())
    else {
        return reply.status(w, 404, &[], "");
    };
    let size = meta.len();
    let mtime = meta.modified().map_or(0, date::unix_seconds);
    let etag = format!("\"{size:x}-{mtime:x}\"");
    let last_modified = date::format(mtime);
    let content_type = content_type(&file);

    // RFC 9110 §14.2: Range is defined for GET only; a multiple or repeated header is ignored.
    let span = match req.header("range") {
        Some(value) if req.method == "GET" && req.header_count("range") == 1 => {
            let still_valid = req
                .header("if-range")
                .is_none_or(|v| if_range_holds(v, &etag, &last_modified));
            if still_valid {
                range::resolve(value, size)
            } else {
                Span::Full
            }
        }
        _ => Span::Full,
    };

    let validators = [
        ("Accept-Ranges", "bytes"),
        ("Last-Modified", last_modified.as_str()),
        ("ETag", etag.as_str()),
    ];
    let (status, first, content_range) = match span {
        Span::Full => (200, 0, None),
        Span::Part { first, last } => (206, first, Some(format!("bytes {first}-{last}/{size}"))),
        Span::Unsatisfiable => {
            let unsatisfied = format!("bytes */{size}");
            let mut fields = vec![("Content-Range", unsatisfied.as_str())];
            fields.extend_from_slice(&validators);
            return reply.status(w, 416, &fields, "");
        }
    };
    let len = span.len(size);
    let len_text = len.to_string();
    let mut fields = vec![
        ("Content-Type", content_type),
        ("Content-Length", len_text.as_str()),
    ];
    fields.extend_from_slice(&validators);
    if let Some(cr) = &content_range {
        fields.push(("Content-Range", cr.as_str()));
    }
    let mut outcome = Outcome {
        status,
        bytes: 0,
        range: match span {
            Span::Part { first, last } => Some((first, last)),
            _ => None,
        },
        close: reply.close,
    };
    if w.write_all(&reply.head(status, &fields)).is_err() {
        outcome.close = true;
        return outcome;
    }
    if reply.head_only {
        return outcome;
    }
    let (sent, complete) = stream(&mut f, first, len, w);
    outcome.bytes = sent;
    // A client gone mid-body, or a file that shrank while being sent (the client would wait for
    // bytes that never come): only closing ends it.
    outcome.close |= !complete;
    outcome
}

const CHUNK: usize = 64 * 1024;

/// Copies `len` bytes from offset `first`, a chunk at a time; returns the bytes sent and whether
/// that was all of them.
fn stream(f: &mut File, first: u64, len: u64, w: &mut impl Write) -> (u64, bool) {
    if f.seek(SeekFrom::Start(first)).is_err() {
        return (0, false);
    }
    let mut buf = vec![0u8; usize::try_from(len).map_or(CHUNK, |l| l.min(CHUNK))];
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent).map_or(buf.len(), |r| r.min(buf.len()));
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if w.write_all(&buf[..n]).is_err() {
            return (sent, false);
        }
        sent += n as u64;
    }
    (sent, sent == len && w.flush().is_ok())
}

/// The canonical path of a regular file inside `root`, or None (→ 404). `..` is refused outright
/// rather than resolved, NUL cannot name a file, `/` and directories have no listing, and a
/// symlink counts by where it leads: outside `root` is not found.
pub fn locate(root: &Path, path: &[u8]) -> Option<PathBuf> {
    if path.contains(&0) {
        return None;
    }
    let mut rel = PathBuf::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return None,
            s => rel.push(OsStr::from_bytes(s)),
        }
    }
    if rel.as_os_str().is_empty() {
        return None;
    }
    let full = root.join(rel).canonicalize().ok()?;
    // Checked before opening: opening a FIFO would block this thread until a writer appears.
    (full.starts_with(root) && fs::metadata(&full).ok()?.is_file()).then_some(full)
}

fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("iso") => "application/x-iso9660-image",
        Some("ipxe" | "txt" | "cfg") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// If-Range (RFC 9110 §13.1.5): an entity tag compares strongly (a weak one never matches), a
/// date must be exactly our Last-Modified.
fn if_range_holds(value: &str, etag: &str, last_modified: &str) -> bool {
    let v = value.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        v == etag
    } else {
        v == last_modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.iso"), b"iso").unwrap();
        fs::write(root.join("sub/b.txt"), b"b").unwrap();
        fs::write(tmp.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", root.join("in")).unwrap();
        let root = root.canonicalize().unwrap();

        assert_eq!(locate(&root, b"/a.iso"), Some(root.join("a.iso")));
        assert_eq!(
            locate(&root, b"//sub/./b.txt"),
            Some(root.join("sub/b.txt"))
        );
        assert_eq!(locate(&root, b"/in"), Some(root.join("sub/b.txt")));
        for bad in [
            &b"/"[..],
            b"",
            b"/sub",
            b"/sub/",
            b"/../secret",
            b"/sub/../a.iso",
            b"/out",
            b"/a.iso\0",
            b"/missing",
        ] {
            assert_eq!(locate(&root, bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("x/esxi-rescue.ISO")),
            "application/x-iso9660-image"
        );
        assert_eq!(content_type(Path::new("boot.ipxe")), "text/plain");
        assert_eq!(content_type(Path::new("grub.cfg")), "text/plain");
        assert_eq!(content_type(Path::new("a.txt")), "text/plain");
        assert_eq!(
            content_type(Path::new("initrd.img")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("vmlinuz")),
            "application/octet-stream"
        );
    }

    #[test]
    fn if_range() {
        let etag = "\"10-5\"";
        let lm = "Thu, 01 Jan 1970 00:00:05 GMT";
        assert!(if_range_holds("\"10-5\"", etag, lm));
        assert!(!if_range_holds("W/\"10-5\"", etag, lm));
        assert!(!if_range_holds("\"10-6\"", etag, lm));
        assert!(if_range_holds(lm, etag, lm));
        assert!(!if_range_holds("Thu, 01 Jan 1970 00:00:06 GMT", etag, lm));
    }
}
