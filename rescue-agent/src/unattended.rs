//! The unattended run as PID 1: the same probe → plan → apply → verify path as the CLI, with the
//! policy from the kernel arguments and the PCI function of every disk from sysfs.

use std::path::Path;

use crate::apply::{self, Applied};
use crate::backup_sink::{BackupSink, RescuePartition};
use crate::blockdev::{Access, BlockDevice};
use crate::driver_map::DriverPolicy;
use crate::init::console::Consoles;
use crate::init::kargs::{KernelArgs, Mode};
use crate::init::{efivars, worker, Outcome, RunResult, Verdict};
use crate::machine::sysfs;
use crate::passthru_policy::Policy;
use crate::pci_context;
use crate::pipeline;
use crate::plan::Plan;
use crate::probe::{self, DiskReport};
use crate::record_store;
use crate::repair_report::{DiskLine, RepairReport};
use crate::report::{describe_disk, describe_plan};
use crate::select::{self, Choice, NoSuchDisk};

const SYS: &str = "/sys";
const EFIVARS: &str = "/sys/firmware/efi/efivars";

pub fn run(args: &KernelArgs, consoles: &Consoles) -> Outcome {
    let unbound = unbound_storage_controllers(Path::new(SYS));
    for u in &unbound {
        consoles.say(u);
    }
    let mut outcome = match run_inner(args, consoles, &unbound) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("ERROR: {e:#}. Nothing further was written.");
            consoles.say(&msg);
            Outcome::idle(Verdict::Failed, msg)
        }
    };
    if !unbound.is_empty() {
        let ids: Vec<&str> = unbound
            .iter()
            .filter_map(|u| u.split_whitespace().next())
            .collect();
        outcome.summary.push_str(&format!(
            "\nno driver for storage controller {}: an ESXi disk behind it cannot be seen",
            ids.join(", ")
        ));
    }
    outcome
}

/// Every mass-storage PCI function (class 0x01) that no driver bound after coldplug, one line
/// each: "0000:03:00.0 [1000:00b3] mass-storage controller: no driver in this image".
pub fn unbound_storage_controllers(sys: &Path) -> Vec<String> {
    sysfs::pci_functions(sys)
        .iter()
        .filter(|f| f.is_mass_storage() && f.driver.is_none())
        .map(|f| {
            format!(
                "{} [{:04x}:{:04x}] mass-storage controller: no driver in this image",
                f.address, f.vendor, f.device
            )
        })
        .collect()
}

fn idle(consoles: &Consoles, verdict: Verdict, text: String) -> anyhow::Result<Outcome> {
    consoles.say(&text);
    Ok(Outcome::idle(verdict, text))
}

fn run_inner(
    args: &KernelArgs,
    consoles: &Consoles,
    unbound: &[String],
) -> anyhow::Result<Outcome> {
    let say = |t: &str| consoles.say(t);
    let policy = match Policy::parse(&args.passthru) {
        Ok(p) => p,
        Err(e) => {
            return idle(
                consoles,
                Verdict::Refused,
                format!("rescue.passthru={}: {e}; nothing written", args.passthru),
            )
        }
    };
    let drivers = match DriverPolicy::parse(&args.drivers) {
        Ok(d) => d,
        Err(e) => {
            return idle(
                consoles,
                Verdict::Refused,
                format!("rescue.drivers={}: {e}; nothing written", args.drivers),
            )
        }
    };
    let sys = Path::new(SYS);

    // 1. Every disk, read-only, with no policy yet: which hold ESXi or VMFS. Identification
    // only: the chosen disk is probed in full once, below, with the policy.
    worker::stage("probing the disks");
    let disks = match select::candidates(sys, args.disk.as_deref()) {
        Ok(d) => d,
        Err(NoSuchDisk) => {
            return idle(
                consoles,
                Verdict::NoEsxiDisk,
                format!(
                    "rescue.disk={}: no such disk; nothing written",
                    args.disk.as_deref().unwrap_or_default()
                ),
            )
        }
    };

    // 2. PCI functions: which carry a disk of the ESXi install (boot disk or VMFS).
    let carriers: Vec<String> = disks
        .iter()
        .filter(|d| d.is_esxi() || d.has_vmfs())
        .filter_map(|d| d.identity.as_ref().map(|i| i.name.clone()))
        .collect();
    let mut ctx = pci_context::from_sysfs(sys, policy, &carriers);
    ctx.drivers = drivers;

    let lines: Vec<DiskLine> = disks.iter().map(|d| DiskLine::of(d, sys)).collect();
    say(&format!("disks: {}", lines.len()));
    for l in &lines {
        say(&format!(
            "  {} {:.1} GiB {} {}{}",
            l.path,
            l.size_bytes as f64 / (1u64 << 30) as f64,
            l.pci.as_deref().unwrap_or("-"),
            l.driver.as_deref().unwrap_or(""),
            match (&l.esxi, &l.note) {
                (Some(e), _) => format!(": {e}"),
                (None, Some(n)) => format!(": {n}"),
                _ => String::new(),
            }
        ));
    }
    // Boot from SAN: the paths of one LUN are one ESXi disk, written through its first path.
    let (target, paths) = match select::choose(&disks) {
        Choice::None => {
            return idle(
                consoles,
                Verdict::NoEsxiDisk,
                "no ESXi disk found; nothing written".into(),
            )
        }
        Choice::One {
            target,
            paths,
            lun_key,
        } => {
            if paths.len() > 1 {
                say(&format!(
                    "ESXi LUN {}: {} paths ({}); writing through {}",
                    lun_key.as_deref().unwrap_or("-"),
                    paths.len(),
                    select::joined(&paths),
                    target.display()
                ));
            }
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            (target, paths)
        }
        Choice::Many(many) => {
            return idle(
                consoles,
                Verdict::Refused,
                format!(
                    "{} ESXi disks found ({}); set rescue.disk= to the one to repair; nothing written",
                    many.len(),
                    select::joined(&many)
                ),
            );
        }
    };

    // 3. The same path as the CLI: probe with the policy, plan, and (repair mode) apply.
    worker::stage(&format!("probing {} with the policy", target.display()));
    let access = if args.mode == Mode::Repair {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    let dev = BlockDevice::open(&target, access)?;
    let mut probe = probe::probe(&dev, &ctx)?;
    say(&describe_disk(&probe.report));
    if probe.layout.is_none() {
        return idle(
            consoles,
            Verdict::Failed,
            "the ESXi disk is no longer recognised; nothing written".into(),
        )
        .map(|o| o.on_disk(&target));
    }
    worker::stage("planning");
    let mut plan = match pipeline::plan_repair(&probe, &ctx) {
        Ok(plan) => plan,
        Err(e) if pipeline::is_refusal(&e) => {
            return idle(consoles, Verdict::Refused, format!("refused: {e}"))
                .map(|o| o.on_disk(&target))
        }
        Err(e) => return Err(e),
    };
    if plan.is_empty() {
        let text = if probe.report.healthy() {
            format!(
                "{}: the ESXi install is healthy; nothing to repair, nothing written",
                target.display()
            )
        } else {
            let mut text = format!(
                "{}: nothing to repair under rescue.passthru={} rescue.drivers={}; left as found:",
                target.display(),
                args.passthru,
                args.drivers
            );
            for p in &probe.report.problems {
                text += &format!("\n  {}", p.describe());
            }
            for k in &plan.kept {
                text += &format!("\n  {k}");
            }
            text + "\nnothing written"
        };
        return idle(consoles, Verdict::NothingToDo, text).map(|o| o.on_disk(&target));
    }
    if args.mode != Mode::Repair {
        say(&describe_plan(
            &plan,
            "plan (rescue.mode=plan: nothing written)",
        ));
        let mut outcome =
            Outcome::idle(Verdict::Planned, "plan shown; nothing written").on_disk(&target);
        outcome.result.changes = plan.changes.iter().map(|c| c.head()).collect();
        return Ok(outcome);
    }
    // Booted from the rescue USB stick: keep a copy of everything on its RESCUE partition.
    let rescue = RescuePartition::find(
        &disks
            .iter()
            .filter(|d| d.path != target)
            .map(|d| d.path.clone())
            .collect::<Vec<_>>(),
    );
    let sinks: Vec<&dyn BackupSink> = rescue.iter().map(|r| r as &dyn BackupSink).collect();
    worker::stage(&format!("writing the repair to {}", target.display()));
    probe.release_archives();
    let applied = apply::apply(&dev, &probe, &mut plan, &sinks, &ctx)?;
    worker::stage("writing the report");
    say(&describe_plan(&plan, "REPAIRED"));
    if let Some(b) = &applied.backup_on_disk {
        say(&format!(
            "  undo record: {b} (rescue-agent undo {} restores it)",
            target.display()
        ));
    }
    say("  verified: re-read from the disk, no problem left");

    // 4. Point the firmware at ESXi for the next boot.
    let boot_next = set_boot_next(&dev, consoles);

    // 5. The full report beside the undo record.
    let report = RepairReport {
        args: serde_json::to_value(args)?,
        disks: lines,
        unbound_controllers: unbound,
        esxi_disk: Some(target.display().to_string()),
        esxi_paths: paths,
        before: Some(&probe.report),
        plan: Some(&plan),
        applied: Some(&applied),
        boot_next: boot_next.clone(),
        verdict: "repaired and verified".into(),
        ..RepairReport::new("pid1", serde_json::Value::Null)
    };
    let json = serde_json::to_vec_pretty(&report)?;
    if let Some(r) = &rescue {
        let name = format!("esxi-rescue-report-{}.json", apply::unix_now());
        match r.save(&name, &json) {
            Ok(at) => say(&format!("  report copy: {at}")),
            Err(e) => say(&format!(
                "  report copy not saved on the RESCUE partition: {e:#}"
            )),
        }
    }
    let mut result = RunResult::new(Verdict::Repaired);
    if let Some(stored) = &applied.record {
        match record_store::save_report(&dev, stored, &json) {
            Ok(name) => {
                say(&format!(
                    "  report: bootbank slot {}: {name}",
                    stored.bank.slot
                ));
                result.report = Some(name);
            }
            Err(e) => {
                say(&format!("  report not saved: {e:#}"));
                result.errors.push(format!("report not saved: {e:#}"));
            }
        }
    }
    result.disk = Some(target.display().to_string());
    result.changes = plan.changes.iter().map(|c| c.head()).collect();
    Ok(Outcome {
        repaired: true,
        summary: summary(
            &target,
            &probe.report,
            &plan,
            &applied,
            boot_next.as_deref(),
        ),
        result,
        report: String::from_utf8(json).ok(),
    })
}

impl Outcome {
    /// The run came as far as choosing `disk`.
    fn on_disk(mut self, disk: &Path) -> Outcome {
        self.result.disk = Some(disk.display().to_string());
        self
    }
}

/// The closing screen: what was found, what changed, where the undo record is, what is next.
fn summary(
    target: &Path,
    before: &DiskReport,
    plan: &Plan,
    applied: &Applied,
    boot_next: Option<&str>,
) -> String {
    // Kept settings are still prose: cut at the reason when the line does not fit.
    let short = |line: &str| -> String {
        let line = line.replace('→', "->");
        let after_arrow = line.find("->").unwrap_or(0);
        let mut line = match line[after_arrow..].find(" (") {
            Some(i) if line.len() > 78 => line[..after_arrow + i].to_string(),
            _ => line,
        };
        if line.chars().count() > 78 {
            line = line.chars().take(75).collect::<String>() + "...";
        }
        line
    };
    let mut out = Vec::new();
    let what = before.esxi.as_ref().map(|e| e.label()).unwrap_or_default();
    out.push(format!("{}: {what}", target.display()));
    out.push("changed (verified by re-reading the disk):".to_string());
    let changes = plan.changes.iter().take(10);
    out.extend(changes.map(|c| format!("  {}", c.short())));
    if plan.changes.len() > 10 {
        out.push(format!(
            "  ... and {} more (see the report)",
            plan.changes.len() - 10
        ));
    }
    for k in plan.kept.iter().take(4) {
        out.push(format!("  {}", short(k)));
    }
    if let Some(b) = &applied.backup_on_disk {
        out.push(format!(
            "undo record: {b}; `rescue-agent undo {}` reverts",
            target.display()
        ));
    }
    out.push(match boot_next {
        Some(n) => format!("next boot: firmware entry {n} (the ESXi disk)"),
        None => "next boot: the firmware's boot order".to_string(),
    });
    out.join("\n")
}

/// BootNext → the firmware entry whose HD() node is the ESXi disk's system partition (slot 1).
fn set_boot_next(dev: &BlockDevice, consoles: &Consoles) -> Option<String> {
    let dir = Path::new(EFIVARS);
    if !dir.exists() {
        return None;
    }
    let guid = crate::gpt::read_disk_gpt(dev).ok().and_then(|g| {
        g.source()
            .and_then(|c| c.array.entries.first().map(|e| e.unique_guid()))
    });
    let Some(guid) = guid.filter(|g| !g.is_zero()) else {
        consoles.say("  BootNext: no system partition in slot 1; rebooting normally");
        return None;
    };
    match efivars::set_boot_next_for_partition(dir, &guid.0) {
        Ok(n) => {
            let text = format!("Boot{n:04X}");
            consoles.say(&format!(
                "  BootNext set to {text} (the ESXi system partition {guid})"
            ));
            Some(text)
        }
        Err(e) => {
            consoles.say(&format!(
                "  BootNext not set: {e}; the firmware's boot order decides"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;
    use crate::machine::sysfs::tests::fake_sys;

    #[test]
    fn every_storage_controller_without_a_driver_is_named() {
        let t = TempDir::new("unbound");
        let sys = fake_sys(&t);
        assert_eq!(
            unbound_storage_controllers(&sys),
            ["0000:00:07.0 [1000:0054] mass-storage controller: no driver in this image"]
        );
    }
}
