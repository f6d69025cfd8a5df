//! The `rescue.*` kernel arguments, parsed from /proc/cmdline.
//!
//! Bad values are reported (in `errors`) and replaced by the default, unknown `rescue.*` keys are
//! listed (in `unknown`), everything else on the command line belongs to the kernel and is ignored.
//! A key given twice: the last one wins. `rescue.x=` (empty value) resets `x` to its default.

use std::path::Path;

use serde::Serialize;

use super::net_config::{NetConfig, ReportUrl};

/// What the agent does once the disks are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Probe, plan, repair, verify (the default).
    Repair,
    /// Probe and print the plan; write nothing.
    Plan,
    /// Go to the shell (if the image has one) instead of the normal finish.
    Shell,
}

/// What to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Reboot,
    Poweroff,
    Halt,
    Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Debug,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelArgs {
    /// `rescue.mode=repair|plan|shell`
    pub mode: Mode,
    /// `rescue.passthru=…`, raw (the passthrough policy parser lives elsewhere).
    pub passthru: String,
    /// `rescue.drivers=boot|none|MODULE,…`, raw: which disabled ESXi storage drivers to re-enable.
    pub drivers: String,
    /// `rescue.disk=…`: serial, WWN, by-path, /dev or sysfs path of the disk to act on.
    pub disk: Option<String>,
    /// `rescue.after=…`: what to do after a repair (default reboot).
    pub after: After,
    /// `rescue.idle=…`: what to do when nothing was repaired (default halt: no reboot loop while
    /// the virtual media stays attached).
    pub idle: After,
    /// `rescue.wait=SECONDS`: the longest wait for disks to appear (default 30).
    pub wait_secs: u64,
    /// `rescue.log=info|debug`
    pub log: LogLevel,
    /// `rescue.selftest=abort:STAGE` (tests only): the worker aborts when STAGE begins.
    pub selftest: Option<String>,
    /// `rescue.report=http://HOST[:PORT]/PATH`: POST the JSON report there (loads NIC drivers).
    pub report: Option<ReportUrl>,
    /// `rescue.token=SECRET`: HMAC-SHA256 key that signs the report. Never printed.
    #[serde(skip)]
    pub token: Option<String>,
    /// `rescue.net=dhcp|static:ADDR/PREFIX[,GATEWAY[,DNS]]` (default dhcp).
    pub net: NetConfig,
    /// Every `rescue.*` argument we do not know, as given.
    pub unknown: Vec<String>,
    /// One line per bad value; the default is kept for those.
    pub errors: Vec<String>,
}

pub const DEFAULT_PASSTHRU: &str = "storage";
pub const DEFAULT_DRIVERS: &str = "boot";
pub const DEFAULT_WAIT_SECS: u64 = 30;
/// Upper bound for `rescue.wait` (one hour): a typo must not park the machine for days.
pub const MAX_WAIT_SECS: u64 = 3600;

impl Default for KernelArgs {
    fn default() -> Self {
        KernelArgs {
            mode: Mode::Repair,
            passthru: DEFAULT_PASSTHRU.to_string(),
            drivers: DEFAULT_DRIVERS.to_string(),
            selftest: None,
            report: None,
            token: None,
            net: NetConfig::Dhcp,
            disk: None,
            after: After::Reboot,
            idle: After::Halt,
            wait_secs: DEFAULT_WAIT_SECS,
            log: LogLevel::Info,
            unknown: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl KernelArgs {
    /// Reads `<proc_root>/cmdline`.
    pub fn from_proc(proc_root: &Path) -> std::io::Result<KernelArgs> {
        let text = std::fs::read_to_string(proc_root.join("cmdline"))?;
        Ok(KernelArgs::parse(&text))
    }

    /// Parses a kernel command line.
    pub fn parse(cmdline: &str) -> KernelArgs {
        let mut args = KernelArgs::default();
        for (key, value) in split_cmdline(cmdline) {
            let Some(name) = key.strip_prefix("rescue.") else {
                continue;
            };
            args.apply(name, &key, value.as_deref());
        }
        args
    }

    fn apply(&mut self, name: &str, key: &str, value: Option<&str>) {
        const AFTER: &str = "reboot|poweroff|halt|shell";
        let known = [
            "mode", "passthru", "drivers", "disk", "after", "idle", "wait", "log", "selftest",
            "report", "token", "net",
        ];
        if !known.contains(&name) {
            self.unknown.push(match value {
                Some(v) => format!("{key}={v}"),
                None => key.to_string(),
            });
            return;
        }
        let Some(value) = value else {
            self.errors.push(format!("{key}: expected {key}=VALUE"));
            return;
        };
        let value = value.trim();
        let lower = value.to_ascii_lowercase();
        let empty = value.is_empty();
        match name {
            "mode" => match lower.as_str() {
                "" | "repair" => self.mode = Mode::Repair,
                "plan" | "dry-run" | "dryrun" => self.mode = Mode::Plan,
                "shell" => self.mode = Mode::Shell,
                _ => self
                    .errors
                    .push(format!("{key}={value}: expected repair|plan|shell")),
            },
            "passthru" => {
                self.passthru = if empty {
                    DEFAULT_PASSTHRU.to_string()
                } else {
                    value.to_string()
                }
            }
            "drivers" => {
                self.drivers = if empty {
                    DEFAULT_DRIVERS.to_string()
                } else {
                    value.to_string()
                }
            }
            "disk" => self.disk = (!empty).then(|| value.to_string()),
            "selftest" => self.selftest = (!empty).then(|| value.to_string()),
            "report" if empty => self.report = None,
            "report" => match ReportUrl::parse(value) {
                Ok(u) => self.report = Some(u),
                Err(e) => self.errors.push(format!("{key}={value}: {e}")),
            },
            "token" => self.token = (!empty).then(|| value.to_string()),
            "net" => match NetConfig::parse(value) {
                Ok(n) => self.net = n,
                Err(e) => self.errors.push(format!("{key}={value}: {e}")),
            },
            "after" | "idle" => {
                let default = if name == "after" {
                    After::Reboot
                } else {
                    After::Halt
                };
                let parsed = if empty {
                    Some(default)
                } else {
                    parse_after(&lower)
                };
                match parsed {
                    Some(a) if name == "after" => self.after = a,
                    Some(a) => self.idle = a,
                    None => self.errors.push(format!("{key}={value}: expected {AFTER}")),
                }
            }
            "wait" => {
                let digits = lower.strip_suffix('s').unwrap_or(&lower);
                match digits.parse::<u64>() {
                    _ if empty => self.wait_secs = DEFAULT_WAIT_SECS,
                    Ok(n) if n <= MAX_WAIT_SECS => self.wait_secs = n,
                    Ok(_) => self.errors.push(format!(
                        "{key}={value}: expected seconds, at most {MAX_WAIT_SECS}"
                    )),
                    Err(_) => self
                        .errors
                        .push(format!("{key}={value}: expected a number of seconds")),
                }
            }
            "log" => match lower.as_str() {
                "" | "info" => self.log = LogLevel::Info,
                "debug" => self.log = LogLevel::Debug,
                _ => self
                    .errors
                    .push(format!("{key}={value}: expected info|debug")),
            },
            _ => unreachable!("every known key is handled"),
        }
    }
}

fn parse_after(s: &str) -> Option<After> {
    match s {
        "reboot" => Some(After::Reboot),
        "poweroff" | "power-off" | "off" => Some(After::Poweroff),
        "halt" => Some(After::Halt),
        "shell" => Some(After::Shell),
        _ => None,
    }
}

/// Splits a command line into `(key, value)` pairs the way the kernel does (lib/cmdline.c
/// `next_arg`): whitespace separates arguments except inside double quotes; a leading quote on the
/// whole argument or on the value is dropped together with a trailing quote. `key` without `=`
/// gives `None`, `key=` gives `Some("")`. The `--` separator itself is skipped (what follows is
/// init's argv, and still ours to read).
pub fn split_cmdline(cmdline: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let chars: Vec<char> = cmdline.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() || chars[i] == '\0' {
            i += 1;
            continue;
        }
        let mut in_quote = false;
        let start = i;
        while i < chars.len() {
            let c = chars[i];
            if (c.is_whitespace() || c == '\0') && !in_quote {
                break;
            }
            if c == '"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        if token == "--" {
            continue;
        }
        out.push(split_token(&token));
    }
    out
}

fn split_token(token: &str) -> (String, Option<String>) {
    let (quoted, body) = match token.strip_prefix('"') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let strip_end = |s: &str| s.strip_suffix('"').map(str::to_string);
    match body.split_once('=') {
        None => {
            let key = if quoted {
                strip_end(body).unwrap_or_else(|| body.to_string())
            } else {
                body.to_string()
            };
            (key, None)
        }
        Some((key, value)) => {
            let value = match value.strip_prefix('"') {
                Some(v) => strip_end(v).unwrap_or_else(|| v.to_string()),
                None if quoted => strip_end(value).unwrap_or_else(|| value.to_string()),
                None => value.to_string(),
            };
            (key.to_string(), Some(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_nothing_is_given() {
        let a = KernelArgs::parse("BOOT_IMAGE=/vmlinuz console=ttyS0,115200n8 quiet\n");
        assert_eq!(a, KernelArgs::default());
        assert_eq!(a.mode, Mode::Repair);
        assert_eq!(a.passthru, "storage");
        assert_eq!(a.drivers, "boot");
        assert_eq!(a.after, After::Reboot);
        assert_eq!(a.idle, After::Halt);
        assert_eq!(a.wait_secs, 30);
        assert_eq!(a.log, LogLevel::Info);
    }

    #[test]
    fn every_key() {
        let a = KernelArgs::parse(
            "rescue.mode=plan rescue.passthru=0000:03:00.0,0000:04:00.0 rescue.disk=S3Z9NB0K \
             rescue.after=poweroff rescue.idle=shell rescue.wait=5 rescue.log=debug",
        );
        assert_eq!(a.mode, Mode::Plan);
        assert_eq!(a.passthru, "0000:03:00.0,0000:04:00.0");
        assert_eq!(a.disk.as_deref(), Some("S3Z9NB0K"));
        assert_eq!(a.after, After::Poweroff);
        assert_eq!(a.idle, After::Shell);
        assert_eq!(a.wait_secs, 5);
        assert_eq!(a.log, LogLevel::Debug);
        assert!(a.unknown.is_empty() && a.errors.is_empty(), "{a:?}");
    }

    #[test]
    fn quoting_like_the_kernel() {
        let a = KernelArgs::parse(r#"rescue.disk="WD Blue 1234" "rescue.passthru=all" x=1"#);
        assert_eq!(a.disk.as_deref(), Some("WD Blue 1234"));
        assert_eq!(a.passthru, "all");
        let pairs = split_cmdline(r#"a="b c" "d=e f" g h= "i""#);
        let want = [
            ("a", Some("b c")),
            ("d", Some("e f")),
            ("g", None),
            ("h", Some("")),
            ("i", None),
        ];
        let got: Vec<(&str, Option<&str>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn last_wins_and_empty_resets() {
        let a = KernelArgs::parse(
            "rescue.after=halt rescue.after=shell rescue.disk=sda rescue.disk= rescue.wait=9 \
             rescue.wait= rescue.passthru=none rescue.passthru=",
        );
        assert_eq!(a.after, After::Shell);
        assert_eq!(a.disk, None);
        assert_eq!(a.wait_secs, 30);
        assert_eq!(a.passthru, "storage");
        assert!(a.errors.is_empty(), "{:?}", a.errors);
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let a = KernelArgs::parse(
            "rescue.after=foo rescue.wait=soon rescue.mode=fix rescue.log=trace rescue.idle \
             rescue.wait=999999",
        );
        assert_eq!(a.after, After::Reboot);
        assert_eq!(a.wait_secs, 30);
        assert_eq!(a.mode, Mode::Repair);
        assert_eq!(a.log, LogLevel::Info);
        assert_eq!(a.idle, After::Halt);
        assert_eq!(
            a.errors,
            [
                "rescue.after=foo: expected reboot|poweroff|halt|shell",
                "rescue.wait=soon: expected a number of seconds",
                "rescue.mode=fix: expected repair|plan|shell",
                "rescue.log=trace: expected info|debug",
                "rescue.idle: expected rescue.idle=VALUE",
                "rescue.wait=999999: expected seconds, at most 3600",
            ]
        );
    }

    #[test]
    fn unknown_rescue_keys_are_listed_others_ignored() {
        let a = KernelArgs::parse("rescue.foo=1 rescue.dryrun rescue=1 rescuex.y=2 -- rescue.bar");
        assert_eq!(a.unknown, ["rescue.foo=1", "rescue.dryrun", "rescue.bar"]);
    }

    #[test]
    fn lenient_spellings() {
        let a = KernelArgs::parse("rescue.after=PowerOff rescue.wait=10s rescue.mode=Shell");
        assert_eq!(a.after, After::Poweroff);
        assert_eq!(a.wait_secs, 10);
        assert_eq!(a.mode, Mode::Shell);
    }

    #[test]
    fn report_settings_and_the_token_stays_out_of_the_json() {
        let a = KernelArgs::parse(
            "rescue.report=http://10.0.2.2:8080/report rescue.token=s3cret rescue.net=static:10.0.2.15/24,10.0.2.2",
        );
        assert_eq!(
            a.report.as_ref().unwrap().to_string(),
            "http://10.0.2.2:8080/report"
        );
        assert_eq!(a.token.as_deref(), Some("s3cret"));
        assert!(matches!(a.net, NetConfig::Static { prefix: 24, .. }));
        assert!(a.errors.is_empty(), "{:?}", a.errors);
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        let b = KernelArgs::parse("rescue.report=https://x/ rescue.net=bootp");
        assert_eq!(b.report, None);
        assert_eq!(b.net, NetConfig::Dhcp);
        assert_eq!(b.errors.len(), 2, "{:?}", b.errors);
    }

    #[test]
    fn reads_proc_cmdline() {
        let proc = crate::init::testutil::TempDir::new("kargs");
        proc.write("cmdline", "ro rescue.after=halt\n");
        let a = KernelArgs::from_proc(proc.path()).unwrap();
        assert_eq!(a.after, After::Halt);
        assert!(KernelArgs::from_proc(&proc.path().join("missing")).is_err());
    }
}
