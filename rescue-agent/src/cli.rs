//! The offline command line: scan, plan, repair, undo — on block devices or image files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::apply;
use crate::backup_sink::{BackupSink, DirSink};
use crate::bank_config::PolicyContext;
use crate::blockdev::{Access, BlockDevice};
use crate::driver_map::DriverPolicy;
use crate::esxconf::PciAddr;
use crate::passthru_policy::{PciFunction, Policy};
use crate::pci_context;
use crate::pipeline;
use crate::probe::{self, DiskReport};
use crate::repair_report::{DiskLine, RepairReport};
use crate::report::{describe_disk, describe_plan, SCHEMA_VERSION};
use crate::select::{self, Choice};
use crate::sysblock;
use crate::undo;
use crate::Refusal;

#[derive(Parser, Debug)]
#[command(
    name = "rescue-agent",
    version,
    about = "Find an ESXi boot disk and repair its GPT slot layout",
    long_about = "Find an ESXi boot disk and repair its GPT slot layout.\n\
                  Exit codes: 0 repaired or healthy, 1 error, 2 refused (not ESXi, ambiguous, unsupported)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which passthrough owners to flip back to vmkernel, and what the disk sits behind.
#[derive(clap::Args, Debug, Clone)]
struct PassthruArgs {
    /// storage (default: owners of the ESXi disk's controller and mass-storage devices), all,
    /// none, or a list of PCI addresses (0000:16:00.0,0000:17:00.0)
    #[arg(long, value_name = "POLICY", default_value = "storage", value_parser = parse_policy)]
    passthru: Policy,
    /// For image files: the PCI function (Linux form, 0000:16:00.0) the disk sits behind, or
    /// the chain from the root with its bridges (0000:00:1e.0/0000:03:00.0)
    #[arg(long, value_name = "ADDR[/ADDR…]", value_parser = parse_chain)]
    controller: Vec<Vec<PciAddr>>,
    /// boot (default: re-enable the ESXi driver of the controller that carries the ESXi disk
    /// when a bank disabled it), none, or a list of ESXi module names (vmkusb,nvme_pcie)
    #[arg(long, value_name = "DRIVERS", default_value = "boot", value_parser = parse_drivers)]
    drivers: DriverPolicy,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).map_err(|e| e.to_string())
}
fn parse_chain(s: &str) -> Result<Vec<PciAddr>, String> {
    s.split('/')
        .map(|a| PciAddr::parse_linux(a).map_err(|e| e.to_string()))
        .collect()
}
fn parse_drivers(s: &str) -> Result<DriverPolicy, String> {
    DriverPolicy::parse(s).map_err(|e| e.to_string())
}

impl PassthruArgs {
    /// For a block device named without --controller, the PCI facts come from sysfs, as at boot.
    fn context_for(&self, target: &Path) -> PolicyContext {
        let is_dev = std::fs::metadata(target)
            .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
            .unwrap_or(false);
        match target.file_name() {
            Some(name) if is_dev && self.controller.is_empty() => {
                let mut ctx = pci_context::from_sysfs(
                    Path::new("/sys"),
                    self.passthru.clone(),
                    &[name.to_string_lossy().into_owned()],
                );
                ctx.drivers = self.drivers.clone();
                ctx
            }
            _ => self.context(),
        }
    }

    fn context(&self) -> PolicyContext {
        let functions = self
            .controller
            .iter()
            .filter_map(|chain| {
                let (addr, upstream) = chain.split_last()?;
                Some(PciFunction {
                    addr: *addr,
                    class: None,
                    carries_esxi_disk: true,
                    description: Some("named by --controller".into()),
                    upstream: upstream.to_vec(),
                    driver: None,
                })
            })
            .collect();
        PolicyContext {
            policy: self.passthru.clone(),
            functions,
            drivers: self.drivers.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe every disk (all of /sys/block when none is given); writes nothing
    Scan {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passthru: PassthruArgs,
        targets: Vec<PathBuf>,
    },
    /// Show the exact changes a repair would make; writes nothing
    Plan {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passthru: PassthruArgs,
        /// Name the disk by serial, WWN (naa.…: the LUN, whatever the path), by-path or sysfs path
        #[arg(long, value_name = "SPEC", conflicts_with = "target")]
        disk: Option<String>,
        /// Disk or image; when omitted, the only ESXi disk (or LUN) in /sys/block
        target: Option<PathBuf>,
    },
    /// Back up, apply the plan, verify
    Repair {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passthru: PassthruArgs,
        /// Also keep the undo record in this directory
        #[arg(long, value_name = "DIR")]
        backup_dir: Option<PathBuf>,
        /// Name the disk by serial, WWN (naa.…: the LUN, whatever the path), by-path or sysfs path
        #[arg(long, value_name = "SPEC", conflicts_with = "target")]
        disk: Option<String>,
        target: Option<PathBuf>,
    },
    /// Restore what the last repair changed, byte-exact; refuses if the disk changed since
    Undo {
        #[arg(long)]
        json: bool,
        /// Use this undo record instead of the newest one on the disk
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        target: PathBuf,
    },
}

pub fn main() -> i32 {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fatfs=error"))
        .format_timestamp(None)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<Refusal>() {
                eprintln!("refused: {r}");
                2
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scan {
            json,
            passthru,
            targets,
        } => scan(json, targets, &passthru),
        Command::Plan {
            json,
            passthru,
            disk,
            target,
        } => plan_cmd(json, target, disk.as_deref(), &passthru),
        Command::Repair {
            json,
            passthru,
            backup_dir,
            disk,
            target,
        } => repair(
            json,
            target,
            disk.as_deref(),
            backup_dir.as_deref(),
            &passthru,
        ),
        Command::Undo { json, from, target } => undo_cmd(json, &target, from.as_deref()),
    }
}

fn scan(json: bool, targets: Vec<PathBuf>, passthru: &PassthruArgs) -> anyhow::Result<()> {
    let targets = if targets.is_empty() {
        sysblock::whole_disks()
    } else {
        targets
    };
    let mut reports = Vec::new();
    for t in &targets {
        match probe::probe_path(t, &passthru.context_for(t)) {
            Ok(p) => reports.push(p.report),
            Err(e) if targets.len() > 1 => eprintln!("{}: {e:#}", t.display()),
            Err(e) => return Err(e.context(t.display().to_string())),
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "schema_version": SCHEMA_VERSION, "disks": reports })
            )?
        );
    } else {
        if reports.is_empty() {
            println!("no disks found");
        }
        for r in &reports {
            print!("{}", describe_disk(r));
        }
    }
    Ok(())
}

/// The disk a plan or repair acts on, and how it was found.
struct Resolved {
    target: PathBuf,
    /// Every path to the ESXi LUN (the target first); just the target when it was named.
    paths: Vec<String>,
    /// The disks looked at when none was named.
    disks: Vec<DiskLine>,
}

/// The target named, or the single ESXi disk (or multipath LUN) of the machine, among the disks
/// `--disk` names when given.
fn resolve_target(target: Option<PathBuf>, disk: Option<&str>) -> anyhow::Result<Resolved> {
    if let Some(t) = target {
        return Ok(Resolved {
            paths: vec![t.display().to_string()],
            target: t,
            disks: Vec::new(),
        });
    }
    let sys = Path::new("/sys");
    let candidates = select::candidates(sys, disk)
        .map_err(|_| Refusal(format!("--disk {}: no such disk", disk.unwrap_or_default())))?;
    match select::choose(&candidates) {
        Choice::None => bail!(Refusal("no ESXi disk found; name one".into())),
        Choice::One {
            target,
            paths,
            lun_key,
        } => {
            if paths.len() > 1 {
                eprintln!(
                    "ESXi LUN {}: {} paths ({}); acting through {}",
                    lun_key.as_deref().unwrap_or("-"),
                    paths.len(),
                    select::joined(&paths),
                    target.display()
                );
            }
            Ok(Resolved {
                target,
                paths: paths.iter().map(|p| p.display().to_string()).collect(),
                disks: candidates.iter().map(|d| DiskLine::of(d, sys)).collect(),
            })
        }
        Choice::Many(disks) => bail!(Refusal(format!(
            "{} ESXi disks found ({}); name the one to act on",
            disks.len(),
            select::joined(&disks)
        ))),
    }
}

/// The run's report as `--json` prints it (the shape PID 1 keeps in the bootbank).
fn cli_report<'a>(resolved: Resolved, before: &'a DiskReport, verdict: &str) -> RepairReport<'a> {
    let argv: Vec<String> = std::env::args().collect();
    RepairReport {
        disks: resolved.disks,
        esxi_disk: Some(resolved.target.display().to_string()),
        esxi_paths: resolved.paths,
        before: Some(before),
        verdict: verdict.to_string(),
        ..RepairReport::new("cli", serde_json::json!(argv))
    }
}

fn plan_cmd(
    json: bool,
    target: Option<PathBuf>,
    disk: Option<&str>,
    passthru: &PassthruArgs,
) -> anyhow::Result<()> {
    let resolved = resolve_target(target, disk)?;
    let ctx = &passthru.context_for(&resolved.target);
    let dev = BlockDevice::open(&resolved.target, Access::ReadOnly)?;
    let probe = probe::probe(&dev, ctx)?;
    let plan = pipeline::plan_repair(&probe, ctx)?;
    if json {
        let report = RepairReport {
            plan: Some(&plan),
            ..cli_report(resolved, &probe.report, "planned: nothing written")
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", describe_disk(&probe.report));
        print!("{}", describe_plan(&plan, "plan (nothing written)"));
    }
    Ok(())
}

fn repair(
    json: bool,
    target: Option<PathBuf>,
    disk: Option<&str>,
    backup_dir: Option<&Path>,
    passthru: &PassthruArgs,
) -> anyhow::Result<()> {
    let resolved = resolve_target(target, disk)?;
    let ctx = &passthru.context_for(&resolved.target);
    // Probe through the writable, exclusive handle so nothing changes between plan and write.
    let dev = BlockDevice::open(&resolved.target, Access::ReadWrite)
        .with_context(|| format!("opening {} for writing", resolved.target.display()))?;
    let mut probe = probe::probe(&dev, ctx)?;
    let mut plan = pipeline::plan_repair(&probe, ctx)?;
    if plan.is_empty() {
        if json {
            let verdict = if probe.report.healthy() {
                "healthy: nothing written"
            } else {
                "nothing to repair under this policy: nothing written"
            };
            let report = RepairReport {
                plan: Some(&plan),
                ..cli_report(resolved, &probe.report, verdict)
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", describe_disk(&probe.report));
            if probe.report.healthy() {
                println!("  healthy: nothing to repair, nothing written");
            } else {
                for k in &plan.kept {
                    println!("    {k}");
                }
                println!(
                    "  nothing to repair under this policy; the {} problem(s) above are left as they are, nothing written",
                    probe.report.problems.len()
                );
            }
        }
        return Ok(());
    }
    let dir_sink = backup_dir.map(|d| DirSink(d.to_path_buf()));
    let sinks: Vec<&dyn BackupSink> = dir_sink.iter().map(|s| s as &dyn BackupSink).collect();
    probe.release_archives();
    let applied = apply::apply(&dev, &probe, &mut plan, &sinks, ctx)?;
    if json {
        let report = RepairReport {
            plan: Some(&plan),
            applied: Some(&applied),
            ..cli_report(resolved, &probe.report, "repaired and verified")
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", describe_disk(&probe.report));
        print!("{}", describe_plan(&plan, "repaired"));
        if let Some(b) = &applied.backup_on_disk {
            println!("  undo record: {b}");
        }
        for c in &applied.backup_copies {
            println!("  undo record copy: {c}");
        }
        println!("  verified: re-read from the disk, no problem left");
    }
    Ok(())
}

fn undo_cmd(json: bool, target: &Path, from: Option<&Path>) -> anyhow::Result<()> {
    let dev = BlockDevice::open(target, Access::ReadWrite)
        .with_context(|| format!("opening {} for writing", target.display()))?;
    let done = undo::undo(&dev, from)?;
    if json {
        let mut doc = serde_json::to_value(&done)?;
        doc["schema_version"] = json!(SCHEMA_VERSION);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{}: undone from {}", target.display(), done.record);
        for c in &done.changes_reverted {
            println!("  reverted: {c}");
        }
        println!(
            "  {} regions and {} bootbank files restored byte-exact and verified",
            done.restored_writes, done.restored_files
        );
        match done.record_removal.as_deref() {
            Some("exact") => {
                println!("  undo record removed; the bootbank is byte-exact as before")
            }
            Some(_) => println!("  undo record deleted (the bootbank changed since the repair)"),
            None => {}
        }
    }
    Ok(())
}
