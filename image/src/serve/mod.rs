//! `rescue-image serve DIR`: the fleet's HTTP/1.1 server for BMC virtual media (ISOs streamed
//! with Range requests, which Python's http.server answers with 200 and breaks ISO boot) and for
//! the reports the booted agent POSTs back.
//!
//! std only: a thread per connection, at most [`MAX_CONNECTIONS`] at once, socket timeouts, and
//! bounded reads everywhere, so no client can take the server down.

mod date;
pub mod files;
pub mod range;
pub mod reports;
pub mod request;
mod response;

use anyhow::{ensure, Context, Result};
use request::{Body, RequestError, Version};
use response::{Outcome, Reply};
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const MAX_CONNECTIONS: usize = 64;
/// Connections past the limit get their 503 from a few short-lived threads of their own (a 503
/// written without reading the request can be lost to a TCP reset); past those, dropped.
const MAX_REJECTING: usize = 8;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const REJECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Options {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub reports: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

struct Server {
    /// Canonical: served paths are checked against it by prefix.
    root: PathBuf,
    sink: Option<reports::Sink>,
}

/// Binds, prints `serve: listening on http://IP:PORT/` and serves until the process is killed.
pub fn run(opts: &Options) -> Result<()> {
    let root = opts
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", opts.dir.display()))?;
    ensure!(root.is_dir(), "{} is not a directory", opts.dir.display());
    let token = opts
        .token_file
        .as_deref()
        .map(reports::read_token)
        .transpose()?;
    let sink = opts
        .reports
        .as_deref()
        .map(|dir| reports::Sink::new(dir, token))
        .transpose()?;
    let listener =
        TcpListener::bind(opts.listen).with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    announce(addr).context("writing the listening line to stdout")?;

    let server = Arc::new(Server { root, sink });
    let active = Arc::new(AtomicUsize::new(0));
    let rejecting = Arc::new(AtomicUsize::new(0));
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Some(slot) = Slot::take(&active, MAX_CONNECTIONS) {
                    let server = Arc::clone(&server);
                    spawn(move || {
                        let _slot = slot;
                        connection(&server, stream, peer);
                    });
                } else if let Some(slot) = Slot::take(&rejecting, MAX_REJECTING) {
                    spawn(move || {
                        let _slot = slot;
                        reject(stream, peer);
                    });
                }
            }
            // A client that gave up while queued.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                log_line(format_args!("serve: accept: {e}"));
                // Out of file descriptors and the like: do not spin while it lasts.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The fleet script and the tests read the port from this line, so it must be out before the
/// first connection can be expected.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "serve: listening on http://{addr}/")?;
    out.flush()
}

/// A spawn failure (out of threads) drops the closure, and with it the connection and its slot.
fn spawn(f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name("serve".into()).spawn(f) {
        log_line(format_args!("serve: spawning a connection thread: {e}"));
    }
}

/// One counted connection; the count goes down however its thread ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(count)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn connection(server: &Server, stream: TcpStream, peer: SocketAddr) {
    // Failing to set these only loses the protection; the connection still works.
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    // One reader for the whole connection: it may already hold the next pipelined request.
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    loop {
        let req = match request::read(&mut reader, IO_TIMEOUT) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                refuse(&mut writer, peer, &e);
                return;
            }
        };
        let outcome = dispatch(server, &req, &mut reader, &mut writer);
        log_request(peer, &req.method, &req.target, &outcome);
        if outcome.close {
            return;
        }
    }
}

/// A request head that could not be read: answered (when anyone is left to answer) and closed.
fn refuse(w: &mut impl Write, peer: SocketAddr, e: &RequestError) {
    if let Some(status) = e.status() {
        let reply = Reply {
            version: Version::Http11,
            close: true,
            head_only: false,
        };
        let outcome = reply.status(w, status, &[], &e.to_string());
        log_request(peer, "-", "-", &outcome);
    }
}

fn dispatch(
    server: &Server,
    req: &request::Request,
    r: &mut BufReader<&TcpStream>,
    w: &mut &TcpStream,
) -> Outcome {
    let mut reply = Reply {
        version: req.version,
        close: req.wants_close(),
        head_only: req.method == "HEAD",
    };
    let path = match req.path() {
        Ok(path) => path,
        Err(e) => {
            reply.close = true;
            return reply.status(w, 400, &[], &e.to_string());
        }
    };
    match req.method.as_str() {
        "GET" | "HEAD" => {
            // An unread body would be taken for the next request.
            reply.close |= req.body != Body::None;
            files::handle(&server.root, req, &path, reply, w)
        }
        "POST" => reports::handle(server.sink.as_ref(), req, &path, reply, r, w),
        _ => {
            reply.close |= req.body != Body::None;
            reply.status(w, 405, &[("Allow", "GET, HEAD, POST")], "")
        }
    }
}

/// Over the connection limit: read the request (briefly) so the 503 is not lost, answer, close.
fn reject(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_read_timeout(Some(REJECT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REJECT_TIMEOUT));
    let req = request::read(&mut BufReader::new(&stream), REJECT_TIMEOUT)
        .ok()
        .flatten();
    let reply = Reply {
        version: Version::Http11,
        close: true,
        head_only: req.as_ref().is_some_and(|r| r.method == "HEAD"),
    };
    let outcome = reply.status(
        &mut &stream,
        503,
        &[("Retry-After", "1")],
        "too many connections",
    );
    let (method, target) = req
        .as_ref()
        .map_or(("-", "-"), |r| (r.method.as_str(), r.target.as_str()));
    log_request(peer, method, target, &outcome);
}

/// `serve: PEER METHOD PATH [range=a-b] STATUS BYTES`; the fleet test counts Range requests by
/// the `range=` field.
fn log_request(peer: SocketAddr, method: &str, target: &str, o: &Outcome) {
    let range = o
        .range
        .map(|(a, b)| format!(" range={a}-{b}"))
        .unwrap_or_default();
    log_line(format_args!(
        "serve: {peer} {method} {target}{range} {} {}",
        o.status, o.bytes
    ));
}

/// Never `eprintln!`: it panics when stderr is gone, and a panic would end the server.
fn log_line(args: std::fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}
