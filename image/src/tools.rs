//! Running the external tools the media need (xorriso, mtools, grub-mkimage, sgdisk) in a fixed
//! environment: UTC, C locale, SOURCE_DATE_EPOCH set, no user mtools configuration.

use crate::build_date::BuildDate;
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::process::Command;

/// A command with the build's environment.
pub fn tool(program: &str, date: BuildDate) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("SOURCE_DATE_EPOCH", date.epoch.to_string())
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("MTOOLSRC", "/dev/null");
    cmd
}

/// Runs `cmd`; fails with its stderr when it exits non-zero. Returns stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("running {shown} (is it installed? scripts/setup.sh)"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line of `program --version` (recorded in the manifest), or "unknown".
pub fn version(program: &str, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args().take(12) {
        s.push(' ');
        s.push_str(&OsStr::to_string_lossy(a));
    }
    if cmd.get_args().len() > 12 {
        s.push_str(" ...");
    }
    s
}
