//! A panic in PID 1 must not reach the kernel ("Attempted to kill init!"): the hook prints the
//! message on every console and parks the thread forever. With `panic = "abort"` (release) the
//! hook runs before the abort, so it never returning is what keeps init alive; with unwinding
//! (tests, debug) nothing unwinds either.

use std::panic::PanicHookInfo;

use super::console::Consoles;
use super::power;

pub const PANIC_HEADER: &str =
    "rescue-agent hit an internal error; nothing further will be written; the machine stays here";

/// The text shown on the consoles for a panic.
pub fn panic_report(message: &str, location: Option<&str>) -> String {
    let rule = "=".repeat(78);
    let mut s = format!("\n{rule}\n{PANIC_HEADER}\n\n{message}\n");
    if let Some(l) = location {
        s.push_str(&format!("at {l}\n"));
    }
    s.push_str(&format!("{rule}\n"));
    s
}

/// The panic payload as text (`panic!("...")` gives &str or String).
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Installs the PID 1 panic hook: report on every console, flush the disks, sleep forever.
pub fn install_panic_hook(consoles: Consoles) {
    std::panic::set_hook(Box::new(move |info: &PanicHookInfo| {
        let message = payload_text(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let thread = std::thread::current();
        let message = match thread.name() {
            Some(name) if name != "main" => format!("(thread {name}) {message}"),
            _ => message,
        };
        consoles.say(&panic_report(&message, location.as_deref()));
        // Whatever was written so far reaches the disk (every write step is crash-safe).
        nix::unistd::sync();
        power::park()
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text() {
        let r = panic_report("index out of bounds", Some("src/gpt.rs:10:5"));
        assert!(r.contains(PANIC_HEADER));
        assert!(r.contains("\nindex out of bounds\nat src/gpt.rs:10:5\n"));
        for l in r.lines() {
            assert!(l.chars().count() <= 96, "{l}");
        }
        assert!(!panic_report("x", None).contains("at "));
    }

    #[test]
    fn payloads() {
        let a: Box<dyn std::any::Any + Send> = Box::new("static");
        let b: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
        let c: Box<dyn std::any::Any + Send> = Box::new(42u8);
        assert_eq!(payload_text(a.as_ref()), "static");
        assert_eq!(payload_text(b.as_ref()), "owned");
        assert_eq!(payload_text(c.as_ref()), "(a panic without a message)");
    }

    #[test]
    fn hook_reports_and_parks_the_thread() {
        // In a child process (the hook is process-wide and never returns): the panicking thread
        // must not end the process, and the report must reach the console file.
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        let t = crate::init::testutil::TempDir::new("panic");
        let console = t.write("console", "");
        let consoles = Consoles::from_paths(vec![console.clone()]);
        // SAFETY: the child installs the hook and panics on its own single thread.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                install_panic_hook(consoles);
                panic!("boom in child");
            }
            ForkResult::Parent { child } => {
                let mut alive = false;
                for _ in 0..200 {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    let text = std::fs::read_to_string(&console).unwrap();
                    if text.contains("boom in child") {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        alive = matches!(
                            waitpid(child, Some(WaitPidFlag::WNOHANG)),
                            Ok(WaitStatus::StillAlive)
                        );
                        break;
                    }
                }
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                let text = std::fs::read_to_string(&console).unwrap();
                let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(words(&text).contains(PANIC_HEADER), "{text}");
                assert!(text.contains("boom in child"), "{text}");
                assert!(alive, "the panicking process must stay alive");
            }
        }
    }
}
