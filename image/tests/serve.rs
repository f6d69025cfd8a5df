//! `rescue-image serve`: the built binary on 127.0.0.1:0, spoken to in raw HTTP/1.1 over
//! TcpStream (and once through curl when the machine has it).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ISO_MTIME: u64 = 1_767_225_600;
const ISO_DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const ISO_SIZE: usize = 3 * 1024 * 1024 + 17;
const UUID: &str = "4C4C4544-0042-3510-8057-B4C04F564D32";
const HOST: &str = "4c4c4544-0042-3510-8057-b4c04f564d32";
const TOKEN: &str = "fleet-s3cret";

/// The served tree: root/ holds the files, a Cargo.toml sits beside it (outside).
struct Fixture {
    tmp: tempfile::TempDir,
    iso: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let iso: Vec<u8> = (0..ISO_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let path = root.join("esxi-rescue.iso");
        std::fs::write(&path, &iso).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(ISO_MTIME))
            .unwrap();
        std::fs::write(root.join("boot.ipxe"), "#!ipxe\nchain esxi-rescue.iso\n").unwrap();
        std::fs::write(root.join("sub/initrd.img"), b"initrd bytes").unwrap();
        std::fs::write(root.join("a b.txt"), b"spaced").unwrap();
        std::fs::write(tmp.path().join("Cargo.toml"), b"[package] # outside\n").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("Cargo.toml"), root.join("escape.iso")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink("sub/initrd.img", root.join("inner.img")).unwrap();
        Fixture { tmp, iso }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn reports(&self) -> PathBuf {
        self.tmp.path().join("reports")
    }

    fn token_file(&self) -> PathBuf {
        let p = self.tmp.path().join("token");
        std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
        p
    }

    fn serve(&self, extra: &[OsString]) -> Server {
        let mut args: Vec<OsString> = vec!["serve".into(), self.root().into()];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    fn serve_reports(&self, token: bool) -> Server {
        let mut args: Vec<OsString> = vec!["--reports".into(), self.reports().into()];
        if token {
            args.push("--token-file".into());
            args.push(self.token_file().into());
        }
        self.serve(&args)
    }

    /// Every file under reports/, relative, sorted.
    fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(hosts) = std::fs::read_dir(self.reports()) else {
            return out;
        };
        for host in hosts {
            let host = host.unwrap().path();
            for f in std::fs::read_dir(&host).unwrap() {
                let f = f.unwrap().path();
                out.push(format!(
                    "{}/{}",
                    host.file_name().unwrap().to_string_lossy(),
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        out.sort();
        out
    }
}

/// The running binary; killed when dropped, also when a test fails.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(args: &[OsString]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let mut guard = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let Some(addr) = first
            .strip_prefix("serve: listening on http://")
            .and_then(|r| r.strip_suffix("/\n"))
            .and_then(|a| a.parse().ok())
        else {
            std::thread::sleep(Duration::from_millis(200));
            panic!("first line {first:?}, stderr {:?}", guard.log_lines())
        };
        guard.addr = addr;
        guard
    }

    fn connect(&self) -> Conn {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    /// One request on a fresh connection.
    fn get(&self, raw: &str) -> Resp {
        let head = raw.starts_with("HEAD ");
        self.connect().request(raw.as_bytes(), head)
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log is written after the response: wait for a line to show up.
    fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.log_lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(Instant::now() < until, "log: {:#?}", self.log_lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    r: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    fn send(&mut self, raw: &[u8]) {
        self.r.get_mut().write_all(raw).unwrap();
    }

    fn request(&mut self, raw: &[u8], head: bool) -> Resp {
        self.send(raw);
        self.response(head)
    }

    /// Reads one response; the body by Content-Length (none for HEAD).
    fn response(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if !head {
            let len: usize = resp.header("content-length").unwrap().parse().unwrap();
            resp.body = vec![0; len];
            self.r.read_exact(&mut resp.body).unwrap();
        }
        resp
    }

    /// True when the server closed the connection (nothing more to read).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn report(uuid: &str, n: u32) -> Vec<u8> {
    format!(r#"{{"host":{{"uuid":"{uuid}","vendor":"Dell"}},"run":{n},"verdict":"repaired"}}"#)
        .into_bytes()
}

fn post(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn signed_post(body: &[u8]) -> Vec<u8> {
    post(
        "/report",
        body,
        &format!("X-Rescue-Signature: {}\r\n", signature(TOKEN, body)),
    )
}

#[test]
fn head_gives_the_representation_headers_and_no_body() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let mut c = srv.connect();
    let r = c.request(b"HEAD /esxi-rescue.iso HTTP/1.1\r\nHost: t\r\n\r\n", true);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(ISO_SIZE.to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-iso9660-image")
    );
    assert_eq!(r.header("last-modified"), Some(ISO_DATE));
    let etag = format!("\"{ISO_SIZE:x}-{ISO_MTIME:x}\"");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("connection"), None);
    // No body came: the next response on the connection starts right away.
    let r = c.request(b"HEAD /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\n", true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("29"));
    let r = c.request(b"HEAD /sub/initrd.img HTTP/1.1\r\nHost: t\r\n\r\n", true);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    srv.wait_log(|l| l.ends_with(" HEAD /esxi-rescue.iso 200 0"));
}

#[test]
fn full_get_is_the_file() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let r = srv.get(&get("/esxi-rescue.iso", ""));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), ISO_SIZE);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&fx.iso));
    assert_eq!(r.header("content-range"), None);
    let r = srv.get(&get("/boot.ipxe", ""));
    assert_eq!(r.text(), "#!ipxe\nchain esxi-rescue.iso\n");
    srv.wait_log(|l| l.ends_with(&format!(" GET /esxi-rescue.iso 200 {ISO_SIZE}")));
}

#[test]
fn ranges() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let size = ISO_SIZE as u64;
    let mut c = srv.connect();
    let mut range = |spec: &str| {
        let r = c.request(
            get("/esxi-rescue.iso", &format!("Range: {spec}\r\n")).as_bytes(),
            false,
        );
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str()),
            "{spec}"
        );
        r
    };

    let r = range("bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    assert_eq!(r.body, &fx.iso[100..200]);

    let r = range("bytes=3000000-");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 3000000-{}/{size}", size - 1).as_str())
    );
    assert_eq!(r.body, &fx.iso[3_000_000..]);

    let r = range("bytes=-500");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{size}", size - 500, size - 1).as_str())
    );
    assert_eq!(r.body, &fx.iso[ISO_SIZE - 500..]);

    // End past the size: clamped to the last byte.
    let r = range(&format!("bytes={}-{}", size - 10, size + 1000));
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{size}", size - 10, size - 1).as_str())
    );
    assert_eq!(r.body, &fx.iso[ISO_SIZE - 10..]);

    // A BMC-sized read in the middle (2 MiB, more than one chunk).
    let r = range("bytes=65536-2162687");
    assert_eq!(r.status, 206);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&fx.iso[65536..2_162_688]));

    for unsatisfiable in [format!("bytes={size}-"), "bytes=-0".to_string()] {
        let r = range(&unsatisfiable);
        assert_eq!(r.status, 416, "{unsatisfiable}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
    }

    for ignored in ["bytes=0-1,10-20", "bytes=5-2", "bytes=x-y", "lines=1-2"] {
        let r = range(ignored);
        assert_eq!(r.status, 200, "{ignored}");
        assert_eq!(r.body.len(), ISO_SIZE, "{ignored}");
        assert_eq!(r.header("content-range"), None);
    }

    // If-Range: a matching validator keeps the range, a stale one gets the whole file.
    let etag = format!("\"{ISO_SIZE:x}-{ISO_MTIME:x}\"");
    for (if_range, status) in [
        (etag.as_str(), 206),
        (ISO_DATE, 206),
        ("\"0-0\"", 200),
        ("Fri, 02 Jan 2026 00:00:00 GMT", 200),
    ] {
        let r = c.request(
            get(
                "/esxi-rescue.iso",
                &format!("Range: bytes=0-9\r\nIf-Range: {if_range}\r\n"),
            )
            .as_bytes(),
            false,
        );
        assert_eq!(r.status, status, "{if_range}");
    }

    // The log line names the span served.
    srv.wait_log(|l| l.ends_with(" GET /esxi-rescue.iso range=100-199 206 100"));
    srv.wait_log(|l| l.ends_with(&format!("range={}-{} 206 10", size - 10, size - 1)));
    srv.wait_log(|l| l.ends_with(" GET /esxi-rescue.iso 416 26"));
    // Seven answers were 206: the fleet test counts them by `range=`.
    let peer = c.r.get_ref().local_addr().unwrap();
    let ranged = || {
        srv.log_lines()
            .iter()
            .filter(|l| l.starts_with(&format!("serve: {peer} GET ")) && l.contains(" range="))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while ranged() < 7 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ranged(), 7, "{:#?}", srv.log_lines());
}

#[test]
fn keep_alive_and_close() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let mut c = srv.connect();
    let a = c.request(get("/boot.ipxe", "").as_bytes(), false);
    let b = c.request(
        get("/sub/initrd.img", "Range: bytes=0-5\r\n").as_bytes(),
        false,
    );
    assert_eq!((a.status, b.status), (200, 206));
    assert_eq!(b.text(), "initrd");
    // Pipelined: both requests in one write, answered in order.
    c.send(format!("{}{}", get("/boot.ipxe", ""), get("/a%20b.txt", "")).as_bytes());
    assert_eq!(c.response(false).text(), "#!ipxe\nchain esxi-rescue.iso\n");
    assert_eq!(c.response(false).text(), "spaced");
    let last = c.request(get("/boot.ipxe", "Connection: close\r\n").as_bytes(), false);
    assert_eq!(last.header("connection"), Some("close"));
    assert!(c.closed());

    let mut c = srv.connect();
    let r = c.request(b"GET /boot.ipxe HTTP/1.0\r\n\r\n", false);
    assert_eq!(r.status, 200);
    assert!(c.closed());

    let mut c = srv.connect();
    let r = c.request(
        b"GET /boot.ipxe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        false,
    );
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = c.request(b"GET /a%20b.txt HTTP/1.0\r\n\r\n", false);
    assert_eq!(r.text(), "spaced");
    assert!(c.closed());
}

#[test]
fn paths_outside_dir_and_directories_are_not_found() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E%2FCargo.toml",
        "/sub/../../Cargo.toml",
        "/sub/%2e%2e/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/escape.iso",
        "/up/Cargo.toml",
        "/",
        "/sub",
        "/sub/",
        "/missing.iso",
        "/boot.ipxe%00",
        "/boot.ipxe%00.iso",
    ] {
        let r = srv.get(&get(path, ""));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("outside"), "{path}");
    }
    for bad in ["/%zz", "/boot.ipxe%"] {
        assert_eq!(srv.get(&get(bad, "")).status, 400, "{bad}");
    }
    // Decoding works for names that are inside, and symlinks that stay inside are followed.
    assert_eq!(srv.get(&get("/a%20b.txt", "")).text(), "spaced");
    assert_eq!(srv.get(&get("/boot%2Eipxe?x=1", "")).status, 200);
    assert_eq!(srv.get(&get("/inner.img", "")).text(), "initrd bytes");
    assert_eq!(
        srv.get(&get("/./sub//initrd.img", "")).text(),
        "initrd bytes"
    );
    assert_eq!(
        srv.get(&get("http://t/boot.ipxe", "")).status,
        200,
        "absolute-form target"
    );
}

#[test]
fn symlink_out_of_dir_is_not_found() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let r = srv.get(&get("/escape.iso", ""));
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "404 Not Found\n");
    let r = srv.get("HEAD /escape.iso HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 404);
}

#[test]
fn signed_reports_are_stored_in_sequence() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(true);
    let first = report(UUID, 1);
    let r = srv.connect().request(&signed_post(&first), false);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), format!(r#"{{"stored":"{HOST}/000001.json"}}"#));
    let dir = fx.reports().join(HOST);
    assert_eq!(std::fs::read(dir.join("000001.json")).unwrap(), first);

    // Under /report/ too, and on the same keep-alive connection.
    let mut c = srv.connect();
    let second = report(UUID, 2);
    let mut raw = signed_post(&second);
    raw.splice(0..12, b"POST /report/dell-r750".iter().copied());
    let r = c.request(&raw, false);
    assert_eq!(r.text(), format!(r#"{{"stored":"{HOST}/000002.json"}}"#));
    assert_eq!(std::fs::read(dir.join("000002.json")).unwrap(), second);
    let r = c.request(get("/boot.ipxe", "").as_bytes(), false);
    assert_eq!(r.status, 200);

    assert_eq!(
        fx.stored(),
        [format!("{HOST}/000001.json"), format!("{HOST}/000002.json")]
    );
    srv.wait_log(|l| l.contains(" POST /report/dell-r750 201 "));
}

#[test]
fn expect_continue_gets_an_interim_answer() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(false);
    let body = report(UUID, 1);
    let mut c = srv.connect();
    let mut raw = post("/report", &body, "Expect: 100-continue\r\n");
    let head_len = raw.len() - body.len();
    c.send(&raw[..head_len]);
    let interim = c.response(true);
    assert_eq!(interim.status, 100);
    raw.drain(..head_len);
    let r = c.request(&raw, false);
    assert_eq!(r.status, 201);
    assert_eq!(fx.stored(), [format!("{HOST}/000001.json")]);
}

#[test]
fn bad_or_missing_signature_is_refused_and_nothing_stored() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(true);
    let body = report(UUID, 1);
    let wrong_key = signature("not-the-token", &body);
    let other_body = signature(TOKEN, b"{}");
    let upper = signature(TOKEN, &body)
        .to_uppercase()
        .replace("SHA256=", "sha256=");
    for extra in [
        String::new(),
        format!("X-Rescue-Signature: {wrong_key}\r\n"),
        format!("X-Rescue-Signature: {other_body}\r\n"),
        format!("X-Rescue-Signature: {upper}\r\n"),
        "X-Rescue-Signature: sha256=\r\n".to_string(),
        "X-Rescue-Signature: sha256=zz\r\n".to_string(),
    ] {
        let r = srv
            .connect()
            .request(&post("/report", &body, &extra), false);
        assert_eq!(r.status, 401, "{extra:?}: {}", r.text());
    }
    // The token itself (with its file's newline) is the key.
    let r = srv.connect().request(
        &post(
            "/report",
            &body,
            &format!(
                "X-Rescue-Signature: {}\r\n",
                signature(&format!("{TOKEN}\n"), &body)
            ),
        ),
        false,
    );
    assert_eq!(r.status, 401);
    assert!(fx.stored().is_empty(), "{:?}", fx.stored());
    assert_eq!(std::fs::read_dir(fx.reports()).unwrap().count(), 0);
}

#[test]
fn without_token_reports_are_stored_unsigned() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(false);
    let body = report("ABCDEF01-2345-6789-abcd-ef0123456789", 7);
    let r = srv.connect().request(&post("/report", &body, ""), false);
    assert_eq!(r.status, 201);
    assert_eq!(
        r.text(),
        r#"{"stored":"abcdef01-2345-6789-abcd-ef0123456789/000001.json"}"#
    );
    assert_eq!(
        std::fs::read(
            fx.reports()
                .join("abcdef01-2345-6789-abcd-ef0123456789/000001.json")
        )
        .unwrap(),
        body
    );
}

#[test]
fn oversize_report_is_413_and_closes() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(false);
    let mut c = srv.connect();
    c.send(b"POST /report HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // Exactly 1 MiB is still accepted (when it is a report).
    let mut body = report(UUID, 1);
    body.pop();
    let pad = 1024 * 1024 - body.len() - r#","pad":""}"#.len();
    body.extend_from_slice(format!(r#","pad":"{}"}}"#, "x".repeat(pad)).as_bytes());
    assert_eq!(body.len(), 1024 * 1024);
    let r = srv.connect().request(&post("/report", &body, ""), false);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(fx.stored(), [format!("{HOST}/000001.json")]);
}

#[test]
fn reports_without_a_usable_uuid_are_400() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(false);
    for body in [
        &br#"{"verdict":"repaired"}"#[..],
        br#"{"host":{"uuid":42}}"#,
        br#"{"host":{"uuid":"../../etc"}}"#,
        br#"{"host":{"uuid":"a/b"}}"#,
        br#"{"host":{"uuid":""}}"#,
        b"not json",
        b"",
    ] {
        let r = srv.connect().request(&post("/report", body, ""), false);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
    }
    let long = format!(r#"{{"host":{{"uuid":"{}"}}}}"#, "a".repeat(65));
    let r = srv
        .connect()
        .request(&post("/report", long.as_bytes(), ""), false);
    assert_eq!(r.status, 400);
    // No Content-Length: 411.
    let r = srv
        .connect()
        .request(b"POST /report HTTP/1.1\r\nHost: t\r\n\r\n", false);
    assert_eq!(r.status, 411);
    let r = srv.connect().request(
        b"POST /report HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 411);
    // POST elsewhere: not a report path.
    let r = srv
        .connect()
        .request(&post("/reports", &report(UUID, 1), ""), false);
    assert_eq!(r.status, 404);
    assert!(fx.stored().is_empty(), "{:?}", fx.stored());
}

#[test]
fn post_without_reports_dir_is_404() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let mut c = srv.connect();
    let r = c.request(&post("/report", &report(UUID, 1), ""), false);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no report sink"), "{}", r.text());
    // A bigger body is drained, not left to be read as the next request.
    let big = format!(
        r#"{{"host":{{"uuid":"{UUID}"}},"log":"{}"}}"#,
        "x".repeat(300_000)
    );
    let r = c.request(&post("/report", big.as_bytes(), ""), false);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), None);
    assert_eq!(
        c.request(get("/boot.ipxe", "").as_bytes(), false).status,
        200
    );
    assert!(!fx.reports().exists());
}

#[test]
fn clients_that_vanish_do_not_hurt_the_server() {
    let fx = Fixture::new();
    let srv = fx.serve_reports(false);
    // Half a body, then gone.
    let mut c = srv.connect();
    let body = report(UUID, 1);
    let raw = post("/report", &body, "");
    c.send(&raw[..raw.len() - body.len() / 2]);
    c.r.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(c);
    srv.wait_log(|l| l.contains(" POST /report 400 "));
    assert!(fx.stored().is_empty());

    // A download abandoned after its first bytes.
    let mut c = srv.connect();
    c.send(get("/esxi-rescue.iso", "").as_bytes());
    let mut some = [0u8; 4096];
    c.r.read_exact(&mut some).unwrap();
    drop(c);
    // Half a request head, then gone.
    let mut c = srv.connect();
    c.send(b"GET /boot.ipxe HTTP/1.1\r\nHo");
    drop(c);

    let r = srv.get(&get("/boot.ipxe", ""));
    assert_eq!(r.status, 200);
    let r = srv.connect().request(&post("/report", &body, ""), false);
    assert_eq!(r.status, 201);
    srv.wait_log(|l| l.contains(" GET /esxi-rescue.iso 200 "));
}

#[test]
fn other_methods_are_405() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    for method in ["PUT", "DELETE", "OPTIONS", "PATCH", "BREW"] {
        let r = srv.get(&format!("{method} /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    }
}

#[test]
fn malformed_requests_are_400_and_closed() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /boot.ipxe\r\n\r\n",
        b"GET /boot.ipxe HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /boot.ipxe HTTP/1.1\r\nHost : t\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let mut c = srv.connect();
        let r = c.request(raw, false);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
    }
    // Head limits: 16 KiB, 100 fields.
    let mut c = srv.connect();
    let big = format!(
        "GET /boot.ipxe HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    assert_eq!(c.request(big.as_bytes(), false).status, 431);
    assert!(c.closed());
    let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = srv.get(&get("/boot.ipxe", &many));
    assert_eq!(r.status, 431);
    let fine: String = (0..99).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(srv.get(&get("/boot.ipxe", &fine)).status, 200);
    srv.wait_log(|l| l.contains(" - - 431 "));
}

#[test]
fn the_65th_connection_gets_503() {
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    // 64 idle connections, proven accepted by a request each (the slot holds until they close).
    let mut idle: Vec<Conn> = (0..64).map(|_| srv.connect()).collect();
    for c in &mut idle {
        assert_eq!(
            c.request(get("/boot.ipxe", "").as_bytes(), false).status,
            200
        );
    }
    let mut extra = srv.connect();
    let r = extra.request(get("/boot.ipxe", "").as_bytes(), false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(extra.closed());
    drop(idle);
    // The slots come back once the server has seen the closes.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = srv.get(&get("/boot.ipxe", ""));
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < until, "still {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.wait_log(|l| l.contains(" GET /boot.ipxe 503 "));
}

#[test]
fn concurrent_reports_of_one_host_get_distinct_numbers() {
    let fx = Fixture::new();
    let srv = Arc::new(fx.serve_reports(true));
    let threads: Vec<_> = (0..12)
        .map(|n| {
            let srv = Arc::clone(&srv);
            std::thread::spawn(move || {
                let body = report(UUID, n);
                let r = srv.connect().request(&signed_post(&body), false);
                assert_eq!(r.status, 201);
                (r.text(), body)
            })
        })
        .collect();
    let mut stored: Vec<(String, Vec<u8>)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    stored.sort();
    let want: Vec<String> = (1..=12)
        .map(|i| format!(r#"{{"stored":"{HOST}/{i:06}.json"}}"#))
        .collect();
    assert_eq!(
        stored.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        want
    );
    for (answer, body) in &stored {
        let rel = answer
            .strip_prefix(r#"{"stored":""#)
            .and_then(|r| r.strip_suffix(r#""}"#))
            .unwrap();
        assert_eq!(&std::fs::read(fx.reports().join(rel)).unwrap(), body);
    }
    assert_eq!(fx.stored().len(), 12);
}

#[test]
fn bad_startup_arguments_are_errors() {
    let fx = Fixture::new();
    let empty = fx.tmp.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let run = |args: &[&Path]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[
        &fx.root(),
        Path::new("--reports"),
        &fx.reports(),
        Path::new("--token-file"),
        &empty,
    ]);
    assert!(err.contains("empty"), "{err}");
    let err = run(&[&fx.tmp.path().join("no-such-dir")]);
    assert!(err.contains("no-such-dir"), "{err}");
    // A token without a report sink has nothing to protect.
    let err = run(&[&fx.root(), Path::new("--token-file"), &fx.token_file()]);
    assert!(err.contains("--reports"), "{err}");
}

#[test]
fn curl_range_and_head() {
    if Command::new("curl").arg("--version").output().is_err() {
        println!("note: curl not found, skipping the curl test");
        return;
    }
    let fx = Fixture::new();
    let srv = fx.serve(&[]);
    let url = format!("http://{}/esxi-rescue.iso", srv.addr);
    let out_file = fx.tmp.path().join("part");
    let out = Command::new("curl")
        .args(["-sS", "-r", "100-199", "-o"])
        .arg(&out_file)
        .args(["-w", "%{http_code}", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "206");
    assert_eq!(std::fs::read(&out_file).unwrap(), &fx.iso[100..200]);

    let out = Command::new("curl")
        .args(["-sS", "-I", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        head.contains(&format!("content-length: {ISO_SIZE}\r\n")),
        "{head}"
    );
    assert!(head.contains("accept-ranges: bytes\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/x-iso9660-image\r\n"),
        "{head}"
    );
    srv.wait_log(|l| l.ends_with(" GET /esxi-rescue.iso range=100-199 206 100"));
}
