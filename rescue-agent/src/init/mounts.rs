//! The pseudo filesystems PID 1 needs: /proc, /sys, /dev (devtmpfs: the kernel makes the device
//! nodes, no udev needed) and, on UEFI boots, efivarfs.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use serde::Serialize;

/// One mount to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub fstype: &'static str,
    /// Relative to the root, e.g. `proc`, `sys/firmware/efi/efivars`.
    pub target: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

/// What [`mount_all`] did, per target (e.g. `/proc`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MountReport {
    pub mounted: Vec<String>,
    /// Already mounted (found in /proc/self/mounts, or EBUSY).
    pub already: Vec<String>,
    /// Not attempted: efivarfs on a BIOS boot.
    pub skipped: Vec<String>,
    /// `(target, error)`.
    pub failed: Vec<(String, String)>,
}

const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The base mounts, in order.
pub fn base_mounts() -> [MountSpec; 3] {
    [
        MountSpec {
            fstype: "proc",
            target: "proc",
            flags: SAFE,
            data: None,
        },
        MountSpec {
            fstype: "sysfs",
            target: "sys",
            flags: SAFE,
            data: None,
        },
        MountSpec {
            fstype: "devtmpfs",
            target: "dev",
            flags: MsFlags::MS_NOSUID,
            data: Some("mode=0755"),
        },
    ]
}

/// efivarfs, wanted only when `<root>/sys/firmware/efi` exists (a UEFI boot).
pub fn efivarfs_mount() -> MountSpec {
    MountSpec {
        fstype: "efivarfs",
        target: "sys/firmware/efi/efivars",
        flags: SAFE,
        data: None,
    }
}

/// Mounts proc, sysfs, devtmpfs and (UEFI) efivarfs under `root` (`/` for PID 1), creating the
/// mount points when the initramfs lacks them. Already-mounted targets are fine; failures are
/// reported, not fatal (the agent can still say what went wrong on the console it has).
pub fn mount_all(root: &Path) -> MountReport {
    let mut report = mount_base(root);
    mount_efivarfs(root, &mut report);
    report
}

/// proc, sysfs and devtmpfs only. Debian builds efivarfs as a module: PID 1 mounts the base,
/// loads `fs-efivarfs` with the drivers, then calls [`mount_efivarfs`].
pub fn mount_base(root: &Path) -> MountReport {
    let mut report = MountReport::default();
    for spec in base_mounts() {
        mount_one(root, &spec, &mut report);
    }
    report
}

/// Whether this is a UEFI boot (`<root>/sys/firmware/efi` exists).
pub fn is_uefi(root: &Path) -> bool {
    root.join("sys/firmware/efi").is_dir()
}

/// efivarfs on a UEFI boot (skipped, and said so, on a BIOS boot).
pub fn mount_efivarfs(root: &Path, report: &mut MountReport) {
    if is_uefi(root) {
        mount_one(root, &efivarfs_mount(), report);
    } else {
        report.skipped.push(display_target(&efivarfs_mount()));
    }
}

fn display_target(spec: &MountSpec) -> String {
    format!("/{}", spec.target)
}

fn mount_one(root: &Path, spec: &MountSpec, report: &mut MountReport) {
    let target: PathBuf = root.join(spec.target);
    let shown = display_target(spec);
    let mounts = std::fs::read_to_string(root.join("proc/self/mounts")).unwrap_or_default();
    if is_mounted(&mounts, &target) {
        report.already.push(shown);
        return;
    }
    if let Err(e) = std::fs::create_dir_all(&target) {
        report.failed.push((shown, format!("mkdir: {e}")));
        return;
    }
    match nix::mount::mount(
        Some(spec.fstype),
        &target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    ) {
        Ok(()) => report.mounted.push(shown),
        Err(Errno::EBUSY) => report.already.push(shown),
        Err(e) => report.failed.push((shown, e.to_string())),
    }
}

/// Whether `target` is a mount point according to a /proc/self/mounts text (mount points there
/// escape space, tab, newline and backslash as `\040`-style octal).
pub fn is_mounted(mounts: &str, target: &Path) -> bool {
    let want = target.to_string_lossy();
    let want = want.trim_end_matches('/');
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .any(|m| unescape_mount_field(m).trim_end_matches('/') == want)
}

fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.len() >= i + 4
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reopens fds 0, 1 and 2 on `console` (normally /dev/console), so anything printed — including
/// by a later shell — reaches the console even when the kernel started init without stdio.
pub fn stdio_to_console(console: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(console)?;
    for fd in 0..=2 {
        if f.as_raw_fd() != fd {
            // SAFETY: dup2 onto the standard descriptors; `f` stays open until the end of scope
            // and the standard descriptors are owned by the process, not by any Rust object.
            let r = unsafe { nix::libc::dup2(f.as_raw_fd(), fd) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    if f.as_raw_fd() <= 2 {
        // The console landed on a standard fd itself: keep it open.
        std::mem::forget(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "rootfs / rootfs rw 0 0\n\
        proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
        sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
        /dev/sdb1 /mnt/with\\040space vfat rw 0 0\n";

    #[test]
    fn mounted_targets() {
        assert!(is_mounted(MOUNTS, Path::new("/proc")));
        assert!(is_mounted(MOUNTS, Path::new("/sys/")));
        assert!(!is_mounted(MOUNTS, Path::new("/dev")));
        assert!(!is_mounted(MOUNTS, Path::new("/sys/firmware/efi/efivars")));
        assert!(is_mounted(MOUNTS, Path::new("/mnt/with space")));
        assert!(!is_mounted("", Path::new("/proc")));
    }

    #[test]
    fn mount_table() {
        let b = base_mounts();
        let names: Vec<_> = b.iter().map(|m| (m.fstype, m.target)).collect();
        assert_eq!(
            names,
            [("proc", "proc"), ("sysfs", "sys"), ("devtmpfs", "dev")]
        );
        assert!(b[0].flags.contains(MsFlags::MS_NOEXEC));
        assert!(
            !b[2].flags.contains(MsFlags::MS_NODEV),
            "device nodes must work"
        );
        assert_eq!(efivarfs_mount().target, "sys/firmware/efi/efivars");
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_mount_field("a\\040b\\011c\\134"), "a b\tc\\");
        assert_eq!(unescape_mount_field("trail\\04"), "trail\\04");
    }
}
