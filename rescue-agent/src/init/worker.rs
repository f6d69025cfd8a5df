//! PID 1 outlives its worker: the probe and repair run in a child process, so whatever ends them
//! — a panic (abort), a failed allocation, the OOM killer, a hang — ends the child, never init.
//! The kernel would panic if init died, and the host would never reboot; instead init says on
//! every console what happened and where, and follows `rescue.idle`.
//!
//! The child tells the parent where it is (`stage`) and, at the end, its outcome, one line each
//! through a pipe. A test-only hook (`rescue.selftest=abort:STAGE`) aborts the worker when it
//! reaches a stage, so a QEMU test can show the parent surviving.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult, Pid};

use super::Outcome;

/// The write end of the pipe, in the worker only.
static STAGE_FD: OnceLock<i32> = OnceLock::new();
/// `rescue.selftest=abort:STAGE`: abort when a stage starting with this text begins.
static ABORT_AT: OnceLock<String> = OnceLock::new();

/// How the worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    Finished(Outcome),
    Died {
        how: String,
        last_stage: Option<String>,
    },
}

/// Marks the start of a stage of the run ("probing /dev/sda", "writing"). A no-op outside a
/// worker (the CLI).
pub fn stage(text: &str) {
    if let Some(fd) = STAGE_FD.get() {
        write_line(*fd, &format!("S {}", one_line(text)));
        if ABORT_AT.get().is_some_and(|a| text.starts_with(a.as_str())) {
            write_line(
                *fd,
                &format!("S {} (rescue.selftest abort)", one_line(text)),
            );
            std::process::abort();
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn write_line(fd: i32, line: &str) {
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: fd is the pipe's write end, open for the worker's life; the slice is valid.
        let n = unsafe { nix::libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// Runs `work` in a child process and waits for it, at most `limit`. `selftest` is the
/// `rescue.selftest=` value (`abort:STAGE`).
pub fn run(work: impl FnOnce() -> Outcome, limit: Duration, selftest: Option<&str>) -> WorkerEnd {
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            log::warn!("no pipe for a worker ({e}); running in init itself");
            return WorkerEnd::Finished(work());
        }
    };
    // SAFETY: init is single-threaded here (drivers loaded, disks settled, no threads started),
    // so the child may run ordinary Rust code after fork.
    match unsafe { fork() } {
        Err(e) => {
            log::warn!("fork failed ({e}); running in init itself");
            WorkerEnd::Finished(work())
        }
        Ok(ForkResult::Child) => {
            // init's hook parks the machine; a worker that panics must end, so the parent sees
            // SIGABRT and goes on.
            std::panic::set_hook(Box::new(|info| {
                eprintln!("rescue worker: {info}");
                std::process::abort();
            }));
            drop(read_end);
            let fd = write_end.as_raw_fd();
            let _ = STAGE_FD.set(fd);
            if let Some(stage) = selftest.and_then(|s| s.strip_prefix("abort:")) {
                let _ = ABORT_AT.set(stage.to_string());
            }
            let outcome = work();
            let json = serde_json::to_string(&outcome).unwrap_or_default();
            write_line(fd, &format!("O {json}"));
            drop(write_end);
            // SAFETY: ends the child at once, without running init's exit path twice.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            wait_for(child, read_end, limit)
        }
    }
}

/// Runs a yes/no question about hostile bytes (is this disk ESXi?) in a child: a panic, an
/// abort or a hang there answers "no" instead of ending init.
pub fn ask(question: impl FnOnce() -> bool, limit: Duration) -> bool {
    match run(
        || Outcome {
            repaired: question(),
            ..Outcome::idle(super::Verdict::NothingToDo, "")
        },
        limit,
        None,
    ) {
        WorkerEnd::Finished(o) => o.repaired,
        WorkerEnd::Died { how, .. } => {
            log::warn!("a disk check {how}; taken for no");
            false
        }
    }
}

fn wait_for(child: Pid, read_end: OwnedFd, limit: Duration) -> WorkerEnd {
    let start = Instant::now();
    let mut pipe = std::fs::File::from(read_end);
    let _ = nix::fcntl::fcntl(
        &pipe,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut text = Vec::new();
    let mut drain = |text: &mut Vec<u8>| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
    };
    loop {
        drain(&mut text);
        let status = waitpid(child, Some(WaitPidFlag::WNOHANG));
        let how = match status {
            Ok(WaitStatus::StillAlive) => {
                if start.elapsed() >= limit {
                    let _ = kill(child, Signal::SIGKILL);
                    // A child stuck in uninterruptible I/O (a dead path) is not reaped until the
                    // I/O ends: wait a little, then go on without it.
                    let reaped = (0..100).any(|_| {
                        std::thread::sleep(Duration::from_millis(50));
                        !matches!(
                            waitpid(child, Some(WaitPidFlag::WNOHANG)),
                            Ok(WaitStatus::StillAlive)
                        )
                    });
                    Some(format!(
                        "did not finish within {} s and was stopped{}",
                        limit.as_secs(),
                        if reaped { "" } else { " (it is stuck in I/O)" }
                    ))
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            Ok(WaitStatus::Exited(_, 0)) => None,
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exited with status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(describe_signal(sig)),
            Ok(other) => Some(format!("ended oddly ({other:?})")),
            Err(e) => Some(format!("could not be waited for ({e})")),
        };
        drain(&mut text);
        return parse(&String::from_utf8_lossy(&text), how);
    }
}

fn describe_signal(sig: Signal) -> String {
    let why = match sig {
        Signal::SIGABRT => "a panic or a failed memory allocation",
        Signal::SIGKILL => "most likely the kernel's out-of-memory killer",
        Signal::SIGSEGV | Signal::SIGBUS => "a memory fault",
        _ => "a signal",
    };
    format!("was killed by {sig} ({why})")
}

/// The worker's lines: `S stage` and a final `O {outcome json}`.
fn parse(text: &str, died: Option<String>) -> WorkerEnd {
    let mut last_stage = None;
    let mut outcome = None;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("S ") {
            last_stage = Some(s.to_string());
        } else if let Some(o) = line.strip_prefix("O ") {
            outcome = serde_json::from_str::<Outcome>(o).ok();
        }
    }
    match (died, outcome) {
        (None, Some(o)) => WorkerEnd::Finished(o),
        (None, None) => WorkerEnd::Died {
            how: "ended without a verdict".into(),
            last_stage,
        },
        (Some(how), _) => WorkerEnd::Died { how, last_stage },
    }
}

impl WorkerEnd {
    /// The outcome init acts on: the worker's own, or "nothing repaired" with what happened.
    pub fn into_outcome(self) -> Outcome {
        match self {
            WorkerEnd::Finished(o) => o,
            WorkerEnd::Died { how, last_stage } => Outcome::idle(
                super::Verdict::Failed,
                format!(
                    "the rescue worker {how}{}. Nothing more was written; the writes are ordered so a cut leaves a disk that boots the old or the new state (docs/safety.md). See the console above",
                    last_stage
                        .map(|s| format!(" while {s}"))
                        .unwrap_or_default()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_and_the_last_stage_come_back() {
        let ok = Outcome {
            repaired: true,
            ..Outcome::idle(super::super::Verdict::Repaired, "done")
        };
        let text = format!(
            "S probing disks\nS writing\nO {}\n",
            serde_json::to_string(&ok).unwrap()
        );
        assert_eq!(parse(&text, None), WorkerEnd::Finished(ok));
        let died = parse(
            "S probing disks\nS planning\n",
            Some(describe_signal(Signal::SIGABRT)),
        );
        let o = died.into_outcome();
        assert!(!o.repaired);
        assert!(o.summary.contains("SIGABRT"), "{}", o.summary);
        assert!(o.summary.contains("while planning"), "{}", o.summary);
        assert!(matches!(
            parse("S x\n", None),
            WorkerEnd::Died { how, .. } if how.contains("without a verdict")
        ));
    }

    #[test]
    fn a_worker_that_aborts_leaves_the_parent_standing() {
        let end = run(
            || {
                stage("planning");
                unreachable!("the selftest aborts at planning")
            },
            Duration::from_secs(30),
            Some("abort:planning"),
        );
        match end {
            WorkerEnd::Died { how, last_stage } => {
                assert!(how.contains("SIGABRT"), "{how}");
                assert!(last_stage.unwrap().starts_with("planning"));
            }
            other => panic!("{other:?}"),
        }
        // A panic ends the worker too (init's own hook would park it forever).
        let end = run(|| panic!("hostile bytes"), Duration::from_secs(30), None);
        assert!(
            matches!(&end, WorkerEnd::Died { how, .. } if how.contains("SIGABRT")),
            "{end:?}"
        );
        assert!(!ask(|| panic!("hostile"), Duration::from_secs(30)));
        assert!(ask(|| true, Duration::from_secs(30)));
        let end = run(
            || Outcome::idle(super::super::Verdict::NothingToDo, "fine"),
            Duration::from_secs(30),
            None,
        );
        assert!(matches!(end, WorkerEnd::Finished(o) if o.summary == "fine"));
    }
}
