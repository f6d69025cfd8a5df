//! The end of the road for PID 1: reboot, power off, halt, or a shell — and never an exit (the
//! kernel panics when init exits).

use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

use nix::sys::reboot::RebootMode;

use super::console::Consoles;
use super::kargs::After;

/// The shell `After::Shell` runs, when the image has one.
pub const SHELL: &str = "/bin/sh";

/// The reboot(2) command for an action; `None` for the shell.
pub fn reboot_mode(action: After) -> Option<RebootMode> {
    match action {
        After::Reboot => Some(RebootMode::RB_AUTOBOOT),
        After::Poweroff => Some(RebootMode::RB_POWER_OFF),
        After::Halt => Some(RebootMode::RB_HALT_SYSTEM),
        After::Shell => None,
    }
}

/// "rebooting", "powering off", "halting", "starting a shell".
pub fn describe(action: After) -> &'static str {
    match action {
        After::Reboot => "rebooting",
        After::Poweroff => "powering off",
        After::Halt => "halting",
        After::Shell => "starting a shell",
    }
}

/// Flushes the disks, then does `action`. `Shell`: runs /bin/sh on the console (halting when
/// it ends, or right away when the image has none). Never returns: if reboot(2) itself fails,
/// says so and sleeps forever.
pub fn finish(action: After, consoles: &Consoles) -> ! {
    nix::unistd::sync();
    let action = if action == After::Shell {
        match run_shell(Path::new(SHELL)) {
            Ok(status) => consoles.say(&format!("the shell ended ({status}); halting")),
            Err(e) => consoles.say(&format!("no shell: {e}; halting instead")),
        }
        nix::unistd::sync();
        After::Halt
    } else {
        action
    };
    if let Some(mode) = reboot_mode(action) {
        let Err(e) = nix::sys::reboot::reboot(mode);
        consoles.say(&format!(
            "{} failed: {e}; the machine stays here",
            describe(action)
        ));
    }
    park()
}

/// Sleeps forever (what is left when nothing else can be done; PID 1 must not exit).
pub fn park() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs `shell` in a new session with fd 0 as its controlling terminal (job control works),
/// waits for it, and returns how it ended. Forking (rather than exec'ing the shell as PID 1)
/// means typing `exit` ends the shell, not init — which would panic the kernel.
pub fn run_shell(shell: &Path) -> Result<String, String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    if !shell.exists() {
        return Err(format!("{} is not in this image", shell.display()));
    }
    let path = CString::new(shell.as_os_str().as_encoded_bytes())
        .map_err(|_| "shell path contains NUL".to_string())?;
    let argv = [path.clone()];
    // SAFETY: the child only makes async-signal-safe calls (setsid, ioctl, execv, _exit) before
    // exec; everything it needs was allocated before the fork.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let _ = nix::unistd::setsid();
            // SAFETY: TIOCSCTTY on fd 0 with arg 0; failure (no tty) is harmless.
            unsafe {
                nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0);
            }
            let _ = nix::unistd::execv(&path, &argv);
            // SAFETY: exec failed; leave the child without running the parent's destructors.
            unsafe { nix::libc::_exit(127) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(format!("exit status {code}")),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(format!("killed by {sig}")),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("waitpid: {e}")),
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        assert_eq!(reboot_mode(After::Reboot), Some(RebootMode::RB_AUTOBOOT));
        assert_eq!(reboot_mode(After::Poweroff), Some(RebootMode::RB_POWER_OFF));
        assert_eq!(reboot_mode(After::Halt), Some(RebootMode::RB_HALT_SYSTEM));
        assert_eq!(reboot_mode(After::Shell), None);
        assert_eq!(describe(After::Poweroff), "powering off");
    }

    #[test]
    fn shell_missing_and_present() {
        let e = run_shell(Path::new("/nonexistent/sh")).unwrap_err();
        assert_eq!(e, "/nonexistent/sh is not in this image");
        // A "shell" that ends at once: exit status reported, the caller (PID 1) carries on.
        if Path::new("/bin/true").exists() {
            assert_eq!(run_shell(Path::new("/bin/true")).unwrap(), "exit status 0");
        }
        if Path::new("/bin/false").exists() {
            assert_eq!(run_shell(Path::new("/bin/false")).unwrap(), "exit status 1");
        }
    }
}
