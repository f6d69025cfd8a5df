//! Every console the kernel writes to (/proc/consoles), so the BMC's video console and
//! serial-over-LAN both show the report — /dev/console alone is only the last `console=`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines are wrapped to this many columns (BMC consoles are 80 wide).
pub const WIDTH: usize = 80;

/// The console devices to write to. Cheap to clone (shared list).
#[derive(Debug, Clone)]
pub struct Consoles {
    paths: Arc<[PathBuf]>,
}

impl Consoles {
    /// The consoles listed in `<proc_root>/consoles` that have a node under `dev_root`; when the
    /// file is missing or names no usable device, `<dev_root>/console`.
    pub fn discover(proc_root: &Path, dev_root: &Path) -> Consoles {
        let names = std::fs::read_to_string(proc_root.join("consoles"))
            .map(|t| parse_proc_consoles(&t))
            .unwrap_or_default();
        let mut paths: Vec<PathBuf> = names
            .iter()
            .map(|n| dev_root.join(n))
            .filter(|p| p.exists())
            .collect();
        paths.dedup();
        if paths.is_empty() {
            paths.push(dev_root.join("console"));
        }
        Consoles::from_paths(paths)
    }

    pub fn from_paths(paths: Vec<PathBuf>) -> Consoles {
        Consoles {
            paths: paths.into(),
        }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Writes `text` as is to every console; a console that fails (gone, stalled by flow control
    /// for over a second) is skipped, the others still get everything.
    /// Writes `text`, in ASCII (console_text.rs), to every console.
    pub fn write_all(&self, text: &str) {
        let text = super::console_text::ascii(text);
        for p in self.paths.iter() {
            let _ = write_one(p, text.as_bytes());
        }
    }

    /// Writes `text` wrapped to [`WIDTH`] columns, ending with a newline.
    pub fn say(&self, text: &str) {
        let mut t = wrap(text, WIDTH);
        if !t.ends_with('\n') {
            t.push('\n');
        }
        self.write_all(&t);
    }

    /// [`countdown`] on these consoles with a real sleep.
    pub fn countdown(&self, secs: u64, what: &str) {
        countdown(secs, what, &mut |l| self.say(l), &mut std::thread::sleep);
    }
}

fn write_one(path: &Path, mut buf: &[u8]) -> std::io::Result<()> {
    // Non-blocking: a serial port held by flow control must not hang PID 1. O_NOCTTY: writing a
    // report must not make the port our controlling terminal.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let mut last_progress = Instant::now();
    while !buf.is_empty() {
        match f.write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if last_progress.elapsed() > Duration::from_secs(1) {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Device names from /proc/consoles (first column: `ttyS0  -W- (EC p a)  4:64`).
pub fn parse_proc_consoles(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| !n.contains('/') && *n != "." && *n != "..")
        .map(str::to_string)
        .collect()
}

/// Word-wraps every line of `text` to at most `width` columns (characters). Continuation lines
/// keep the line's indentation; a word longer than the room left is split.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(8);
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.trim_end();
        let indent: String = line.chars().take_while(|c| *c == ' ').collect();
        let indent = if indent.len() > width / 2 {
            String::new()
        } else {
            indent
        };
        let mut cur = String::new();
        let mut cur_len = 0usize;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let mut word: Vec<char> = word.chars().collect();
            loop {
                let lead = if cur_len == 0 { indent.len() } else { 1 };
                if cur_len + lead + word.len() <= width {
                    if cur_len == 0 {
                        cur.push_str(&indent);
                    } else {
                        cur.push(' ');
                    }
                    cur.extend(word.iter());
                    cur_len += lead + word.len();
                    break;
                }
                if cur_len > 0 {
                    flush(&mut cur, &mut cur_len, &mut out);
                    continue;
                }
                // Word longer than a whole line: split it.
                let room = width - indent.len();
                cur.push_str(&indent);
                cur.extend(word[..room].iter());
                cur_len = width;
                word.drain(..room);
                flush(&mut cur, &mut cur_len, &mut out);
                if word.is_empty() {
                    break;
                }
            }
        }
        if cur_len > 0 {
            flush(&mut cur, &mut cur_len, &mut out);
        }
    }
    out
}

fn flush(cur: &mut String, cur_len: &mut usize, out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(cur);
    cur.clear();
    *cur_len = 0;
}

/// Counts down `secs` seconds before `what` ("rebooting", "powering off"), saying so at the
/// start, every 5 s and on each of the last 3 seconds, then "<what> now". `sleep` is injected so
/// tests run instantly.
pub fn countdown(
    secs: u64,
    what: &str,
    say: &mut dyn FnMut(&str),
    sleep: &mut dyn FnMut(Duration),
) {
    for left in (1..=secs).rev() {
        if left == secs || left % 5 == 0 || left <= 3 {
            say(&format!(
                "{what} in {left} s (press nothing; this is unattended)"
            ));
        }
        sleep(Duration::from_secs(1));
    }
    say(&format!("{what} now"));
}

/// A `log` backend writing `[  1.234] LEVEL message` lines to every console.
pub struct ConsoleLogger {
    consoles: Consoles,
    start: Instant,
    level: log::LevelFilter,
}

impl ConsoleLogger {
    /// Installs the logger (once per process; later calls only change the level).
    pub fn install(consoles: Consoles, level: log::LevelFilter) {
        let logger = Box::leak(Box::new(ConsoleLogger {
            consoles,
            start: Instant::now(),
            level,
        }));
        let _ = log::set_logger(logger);
        log::set_max_level(level);
    }
}

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // fatfs warns about every bootbank's (legal) reserved-sector count: noise on a console.
        let noisy = metadata.target().starts_with("fatfs") && metadata.level() > log::Level::Error;
        metadata.level() <= self.level && !noisy
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let t = self.start.elapsed();
            self.consoles.say(&format!(
                "[{:4}.{:03}] {} {}",
                t.as_secs(),
                t.subsec_millis(),
                record.level(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;

    #[test]
    fn proc_consoles_names() {
        let t =
            "tty0                 -WU (E  p  )    4:1\nttyS0                -W- (E  p a)    4:64\n";
        assert_eq!(parse_proc_consoles(t), ["tty0", "ttyS0"]);
        assert!(parse_proc_consoles("").is_empty());
    }

    #[test]
    fn discover_uses_proc_consoles_and_falls_back() {
        let d = TempDir::new("consoles");
        let proc = d.mkdir("proc");
        let dev = d.mkdir("dev");
        d.write("dev/ttyS0", "");
        d.write("dev/tty0", "");
        d.write("dev/console", "");
        // No /proc/consoles: /dev/console.
        let c = Consoles::discover(&proc, &dev);
        assert_eq!(c.paths(), [dev.join("console")]);
        // netcon0 has no device node: skipped.
        d.write(
            "proc/consoles",
            "netcon0 -W- (E) \ntty0 -WU (E p) 4:1\nttyS0 -W- (E p a) 4:64\n",
        );
        let c = Consoles::discover(&proc, &dev);
        assert_eq!(c.paths(), [dev.join("tty0"), dev.join("ttyS0")]);
        c.write_all("hello\n");
        c.say("world");
        for p in c.paths() {
            assert_eq!(std::fs::read_to_string(p).unwrap(), "hello\nworld\n");
        }
    }

    #[test]
    fn a_failing_console_does_not_stop_the_others() {
        let d = TempDir::new("consoles2");
        let good = d.write("good", "");
        let c = Consoles::from_paths(vec![d.path().join("missing/dir/tty"), good.clone()]);
        c.write_all("x");
        assert_eq!(std::fs::read_to_string(good).unwrap(), "x");
    }

    #[test]
    fn wrap_keeps_lines_within_width() {
        let text = "disk sda (SEAGATE ST1000NM0033 Z1W0ABCD) behind 0000:03:00.0 megaraid_sas: \
                    ESXi 8.0 install, GPT slot layout repaired, bootbank 1 active\n  indented \
                    continuation with a long word 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890";
        let w = wrap(text, 40);
        for l in w.lines() {
            assert!(l.chars().count() <= 40, "{l:?}");
        }
        let words = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(words(&w), words(text));
        assert!(w.lines().nth(4).unwrap().starts_with("  indented"), "{w}");
        assert!(w.lines().nth(5).unwrap().starts_with("  0123"), "{w}");
        assert_eq!(wrap("short\n\nlines", 80), "short\n\nlines");
        assert_eq!(wrap("aaa bbb ccc", 8), "aaa bbb\nccc");
    }

    #[test]
    fn countdown_lines() {
        let mut said = Vec::new();
        let mut slept = Duration::ZERO;
        countdown(
            10,
            "rebooting",
            &mut |l| said.push(l.to_string()),
            &mut |d| slept += d,
        );
        assert_eq!(slept, Duration::from_secs(10));
        let lefts: Vec<&str> = said
            .iter()
            .map(|l| {
                l.split(" in ")
                    .nth(1)
                    .unwrap_or(l)
                    .split(' ')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(lefts, ["10", "5", "3", "2", "1", "rebooting"]);
        assert_eq!(
            said[0],
            "rebooting in 10 s (press nothing; this is unattended)"
        );
        assert_eq!(said.last().unwrap(), "rebooting now");
        said.clear();
        countdown(0, "halting", &mut |l| said.push(l.to_string()), &mut |_| {});
        assert_eq!(said, ["halting now"]);
    }
}
