//! PID 1: the agent as `/init` of a minimal initramfs (no shell, no udev).
//!
//! [`boot`] runs the whole life of the machine: pseudo filesystems → consoles → panic hook →
//! kernel arguments → driver coldplug → disk settling → the repair (`run`, supplied by the
//! caller) → the finish the kernel arguments ask for. Each building block takes its roots as
//! parameters so it is tested on fake trees without being PID 1.

pub mod coldplug;
pub mod console;
pub mod console_text;
pub mod efivars;
pub mod http_post;
pub mod kargs;
pub mod mounts;
pub mod net_config;
pub mod network;
pub mod panic;
pub mod power;
pub mod report_upload;
pub mod result_line;
pub mod settle;
pub mod worker;

/// A generous bound for one probe-and-repair run: past it the worker is taken for hung.
pub const WORKER_LIMIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

#[cfg(test)]
pub(crate) mod testutil;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use console::Consoles;
pub use kargs::{After, KernelArgs, LogLevel, Mode};
pub use result_line::{RunResult, Verdict};

use crate::machine::smbios;

/// What the repair pipeline reports back to [`boot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Something was written (and verified): the machine should restart into ESXi.
    pub repaired: bool,
    /// One or two short lines for the consoles.
    pub summary: String,
    /// The machine-readable verdict (init adds the host and mode before printing it).
    #[serde(default)]
    pub result: RunResult,
    /// The full JSON report when the run wrote one, for `rescue.report=`.
    #[serde(default)]
    pub report: Option<String>,
}

impl Outcome {
    /// Nothing was repaired: `text` says why, `verdict` says it in one word.
    pub fn idle(verdict: Verdict, text: impl Into<String>) -> Outcome {
        let text = text.into();
        let mut result = RunResult::new(verdict);
        if matches!(verdict, Verdict::Failed | Verdict::Refused) {
            result.errors.push(text.clone());
        }
        Outcome {
            repaired: false,
            summary: text,
            result,
            report: None,
        }
    }
}

/// The driver passes may take this long even when `rescue.wait` is shorter.
pub const MIN_COLDPLUG_SECS: u64 = 10;

/// Seconds of warning before a reboot or power-off.
pub const COUNTDOWN_SECS: u64 = 10;

/// Whether this process is the system's init: PID 1, or started as `…/init`.
pub fn is_init() -> bool {
    nix::unistd::getpid().as_raw() == 1
        || std::env::args_os()
            .next()
            .is_some_and(|a| a.to_string_lossy().ends_with("/init"))
}

/// The finish for an outcome: `rescue.mode=shell` → shell; repaired → `rescue.after`; nothing
/// repaired → `rescue.idle` (default halt: no reboot loop while the rescue medium stays attached).
pub fn choose_action(args: &KernelArgs, outcome: Option<&Outcome>) -> After {
    match outcome {
        _ if args.mode == Mode::Shell => After::Shell,
        Some(o) if o.repaired => args.after,
        _ => args.idle,
    }
}

/// `[  1.234 s] text`
fn stamp(t0: Instant, text: &str) -> String {
    let e = t0.elapsed();
    format!("[{:3}.{:03} s] {text}", e.as_secs(), e.subsec_millis())
}

/// The drivers line: "drivers: 14 modules in 3 passes, 412 ms; failed: crct10dif_pclmul (ENODEV: …)".
pub fn coldplug_summary(r: &coldplug::ColdplugReport) -> String {
    if let Some(e) = &r.index_error {
        return format!("drivers: none loaded ({e})");
    }
    let ok = r.loads.iter().filter(|l| l.error.is_none()).count();
    let mut s = format!(
        "drivers: {ok} modules in {} passes, {} ms",
        r.passes, r.elapsed_ms
    );
    // Each module with its load time: what a support call asks first.
    let each: Vec<String> = r
        .loads
        .iter()
        .filter(|l| l.error.is_none())
        .map(|l| format!("{} {}ms", l.module, l.ms))
        .collect();
    if !each.is_empty() {
        s.push_str(&format!(" ({})", each.join(", ")));
    }
    let failed: Vec<String> = r
        .failures()
        .map(|l| format!("{} ({})", l.module, l.error.as_deref().unwrap_or("")))
        .collect();
    if !failed.is_empty() {
        s.push_str(&format!("; failed: {}", failed.join(", ")));
    }
    if r.deadline_hit {
        s.push_str("; stopped by rescue.wait");
    }
    s
}

/// The disks line: "disks: sda (0000:03:00.0 megaraid_sas), nvme0n1 (0000:00:04.0 nvme); no disk
/// behind 0000:00:1f.2 (ahci)".
pub fn settle_summary(r: &settle::SettleReport) -> String {
    let mut parts = Vec::new();
    for c in &r.controllers {
        for d in &c.disks {
            parts.push(format!("{d} ({} {})", c.id, c.driver));
        }
    }
    let mut s = format!(
        "disks after {} ms: {}",
        r.elapsed_ms,
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    );
    let empty: Vec<String> = r
        .controllers
        .iter()
        .filter(|c| c.disks.is_empty())
        .map(|c| format!("{} ({})", c.id, c.driver))
        .collect();
    if !empty.is_empty() {
        s.push_str(&format!("; no disk behind {}", empty.join(", ")));
    }
    if r.timed_out {
        s.push_str("; gave up waiting (rescue.wait)");
    }
    s
}

/// The boot's side of the disk wait: a coldplug pass per poll, a read-only identification of
/// each new disk (GPT, ESXi layout, a readable boot.cfg; no configuration is opened), and the
/// once-a-second progress line on every console.
struct BootSettleHooks<'a> {
    coldplug: &'a mut coldplug::Coldplug,
    loader: &'a mut coldplug::KernelLoader,
    say: &'a dyn Fn(&str),
}

impl settle::SettleHooks for BootSettleHooks<'_> {
    fn poll(&mut self) -> bool {
        self.coldplug.pass(self.loader) > 0
    }
    fn is_esxi(&mut self, disk: &str) -> bool {
        // The disk's bytes may be hostile: parse them in a child, never in init.
        let path = Path::new("/dev").join(disk);
        worker::ask(|| crate::probe::is_esxi(&path), Duration::from_secs(20))
    }
    fn progress(&mut self, line: &str) {
        (self.say)(line)
    }
}

/// Runs the machine as PID 1 and never returns: mounts, consoles, panic hook, kernel arguments,
/// drivers, disks, then `run` (skipped under `rescue.mode=shell`), then the finish.
pub fn boot(run: impl FnOnce(&KernelArgs, &Consoles) -> Outcome) -> ! {
    let t0 = Instant::now();
    let root = Path::new("/");
    let mut mount_report = mounts::mount_base(root);
    let _ = mounts::stdio_to_console(Path::new("/dev/console"));
    let consoles = Consoles::discover(Path::new("/proc"), Path::new("/dev"));
    panic::install_panic_hook(consoles.clone());
    let say = |text: &str| consoles.say(&stamp(t0, text));

    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    say(&format!(
        "rescue-agent {} as init, Linux {release}",
        env!("CARGO_PKG_VERSION")
    ));
    let mut mounted = format!("mounted: {}", mount_report.mounted.join(" "));
    if !mount_report.already.is_empty() {
        mounted.push_str(&format!("; already: {}", mount_report.already.join(" ")));
    }
    say(&mounted);
    for (target, e) in &mount_report.failed {
        say(&format!("mount {target} failed: {e}"));
    }

    let args = KernelArgs::from_proc(Path::new("/proc")).unwrap_or_else(|e| {
        let mut a = KernelArgs::default();
        a.errors.push(format!("/proc/cmdline: {e}; using defaults"));
        a
    });
    let level = match args.log {
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
    };
    console::ConsoleLogger::install(consoles.clone(), level);
    for u in &args.unknown {
        say(&format!("unknown kernel argument ignored: {u}"));
    }
    for e in &args.errors {
        say(&format!("bad kernel argument, default kept: {e}"));
    }

    // rescue.wait bounds the wait for disks (from here); the driver passes get at least
    // MIN_COLDPLUG_SECS, so rescue.wait=0 still loads drivers.
    let wait_start = Instant::now();
    let deadline = wait_start + Duration::from_secs(args.wait_secs);
    let coldplug_deadline = wait_start + Duration::from_secs(args.wait_secs.max(MIN_COLDPLUG_SECS));
    let modules_dir = Path::new("/lib/modules").join(&release);
    let sys = Path::new("/sys");
    let mut loader = coldplug::KernelLoader;
    let mut cp = coldplug::Coldplug::new(sys, &modules_dir);
    coldplug::run_passes(&mut cp, &mut loader, coldplug_deadline);
    if mounts::is_uefi(root) {
        // Debian builds efivarfs as a module; no device asks for it.
        cp.load_alias("fs-efivarfs", &mut loader);
        mounts::mount_efivarfs(root, &mut mount_report);
        match mount_report
            .failed
            .iter()
            .find(|(t, _)| t.contains("efivars"))
        {
            Some((t, e)) => say(&format!("mount {t} failed: {e}")),
            None => say("UEFI boot: efivarfs mounted"),
        }
    }
    say(&coldplug_summary(&cp.report));
    for l in cp.report.loads.iter() {
        log::debug!(
            "module {} pass {} {} ms {:?}",
            l.module,
            l.pass,
            l.ms,
            l.error
        );
    }

    let cfg =
        settle::SettleConfig::with_timeout(deadline.saturating_duration_since(Instant::now()));
    let loads_before = cp.report.loads.len();
    let settled = settle::settle(
        sys,
        cfg,
        &mut settle::RealClock::default(),
        &mut BootSettleHooks {
            coldplug: &mut cp,
            loader: &mut loader,
            say: &say,
        },
    );
    if cp.report.loads.len() > loads_before {
        say(&format!("late {}", coldplug_summary(&cp.report)));
    }
    say(&settle_summary(&settled));

    let outcome = if args.mode == Mode::Shell {
        say("rescue.mode=shell: no scan, no repair");
        None
    } else {
        // The probe and repair run in a child: whatever ends it, init stays to say so.
        let end = worker::run(
            || run(&args, &consoles),
            WORKER_LIMIT,
            args.selftest.as_deref(),
        );
        if let worker::WorkerEnd::Died { how, last_stage } = &end {
            say(&format!(
                "the rescue worker {how}{}",
                last_stage
                    .as_ref()
                    .map(|s| format!(" while {s}"))
                    .unwrap_or_default()
            ));
        }
        let mut o = end.into_outcome();
        // The last screenful is what the person at the BMC console sees: keep it ≤ 80×25.
        let verdict = if o.repaired {
            "REPAIRED"
        } else {
            "NOTHING REPAIRED"
        };
        consoles.write_all(&format!(
            "{:=^80}\n{}\n{:=^80}\n",
            format!(" esxi-rescue: {verdict} "),
            o.summary.trim_end(),
            ""
        ));
        let host = smbios::host_identity(sys);
        o.result.uuid = host.uuid.clone();
        o.result.serial = host.serial.clone();
        o.result.mode = match args.mode {
            Mode::Plan => "plan",
            _ => "repair",
        }
        .to_string();
        if let Some(url) = &args.report {
            let body = report_upload::RunReport {
                schema_version: report_upload::SCHEMA_VERSION,
                tool: format!("rescue-agent {}", env!("CARGO_PKG_VERSION")),
                host: &host,
                result: &o.result,
                summary: &o.summary,
                repair: o
                    .report
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok()),
            }
            .to_json();
            let to = report_upload::Destination {
                url,
                token: args.token.as_deref(),
                net: &args.net,
            };
            let key = host.uuid.as_deref().unwrap_or("unknown");
            let mut load_nics = || {
                let before = cp.report.loads.len();
                cp.release_nic_drivers(&mut loader);
                cp.report.loads[before..]
                    .iter()
                    .map(|l| match &l.error {
                        None => l.module.clone(),
                        Some(e) => format!("{} (failed: {e})", l.module),
                    })
                    .collect()
            };
            match report_upload::send(&to, sys, &body, key, &mut load_nics, &say) {
                Ok(line) => say(&line),
                Err(e) => {
                    say(&format!("report not sent: {e}"));
                    o.result.errors.push(format!("report not sent: {e}"));
                }
            }
        }
        Some(o)
    };
    let action = choose_action(&args, outcome.as_ref());
    match action {
        After::Reboot | After::Poweroff => {
            consoles.countdown(COUNTDOWN_SECS, power::describe(action))
        }
        After::Halt => say("halting; the machine stays here (power it off or reset it)"),
        After::Shell => say("starting /bin/sh"),
    }
    // Last on every console: the verdict a fleet reads from its serial-over-LAN capture.
    if let Some(o) = &outcome {
        consoles.write_all(&format!("{}\n", o.result.line()));
    }
    power::finish(action, &consoles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_choice() {
        let repaired = Outcome {
            repaired: true,
            ..Outcome::idle(Verdict::Repaired, "")
        };
        let idle = Outcome::idle(Verdict::NothingToDo, "");
        let mut a = KernelArgs::default();
        assert_eq!(choose_action(&a, Some(&repaired)), After::Reboot);
        assert_eq!(choose_action(&a, Some(&idle)), After::Halt);
        assert_eq!(choose_action(&a, None), After::Halt);
        a.after = After::Poweroff;
        a.idle = After::Shell;
        assert_eq!(choose_action(&a, Some(&repaired)), After::Poweroff);
        assert_eq!(choose_action(&a, Some(&idle)), After::Shell);
        a.mode = Mode::Shell;
        assert_eq!(choose_action(&a, Some(&repaired)), After::Shell);
    }

    #[test]
    fn not_init_under_test() {
        assert!(!is_init());
    }

    #[test]
    fn summaries() {
        let r = coldplug::ColdplugReport {
            loads: vec![
                coldplug::ModuleLoad {
                    module: "ahci".into(),
                    pass: 1,
                    ms: 3,
                    error: None,
                    modalias: String::new(),
                },
                coldplug::ModuleLoad {
                    module: "crct10dif_pclmul".into(),
                    pass: 1,
                    ms: 1,
                    error: Some("ENODEV: No such device".into()),
                    modalias: String::new(),
                },
            ],
            passes: 3,
            elapsed_ms: 412,
            ..Default::default()
        };
        assert_eq!(
            coldplug_summary(&r),
            "drivers: 1 modules in 3 passes, 412 ms (ahci 3ms); failed: crct10dif_pclmul (ENODEV: No such device)"
        );
        let s = settle::SettleReport {
            controllers: vec![
                settle::Controller {
                    id: "0000:03:00.0".into(),
                    kind: "pci 0x010400".into(),
                    driver: "megaraid_sas".into(),
                    disks: vec!["sda".into()],
                    path: Default::default(),
                },
                settle::Controller {
                    id: "0000:00:1f.2".into(),
                    kind: "pci 0x010601".into(),
                    driver: "ahci".into(),
                    disks: vec![],
                    path: Default::default(),
                },
            ],
            disks: vec!["sda".into()],
            esxi_disks: vec![],
            empty_controllers: vec!["0000:00:1f.2".into()],
            elapsed_ms: 30000,
            timed_out: true,
            polls: 600,
        };
        assert_eq!(
            settle_summary(&s),
            "disks after 30000 ms: sda (0000:03:00.0 megaraid_sas); no disk behind 0000:00:1f.2 \
             (ahci); gave up waiting (rescue.wait)"
        );
        assert!(stamp(Instant::now(), "x").starts_with("[  0.0"));
    }
}
