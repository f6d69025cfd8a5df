//! The offline command line: scan, plan, repair, undo — on block devices or image files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::apply;
use crate::blockdev::{Access, BlockDevice};
use crate::gpt_repair;
use crate::plan::Plan;
use crate::probe::{self, DiskReport, Probe};
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

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe every disk (all of /sys/block when none is given); writes nothing
    Scan {
        #[arg(long)]
        json: bool,
        targets: Vec<PathBuf>,
    },
    /// Show the exact writes a repair would make; writes nothing
    Plan {
        #[arg(long)]
        json: bool,
        /// Disk or image; when omitted, the only ESXi disk in /sys/block
        target: Option<PathBuf>,
    },
    /// Back up, apply the plan, verify
    Repair {
        #[arg(long)]
        json: bool,
        /// Also keep the undo record in this directory
        #[arg(long, value_name = "DIR")]
        backup_dir: Option<PathBuf>,
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
        Command::Scan { json, targets } => scan(json, targets),
        Command::Plan { json, target } => plan_cmd(json, target),
        Command::Repair {
            json,
            backup_dir,
            target,
        } => repair(json, target, backup_dir.as_deref()),
        Command::Undo { json, from, target } => undo_cmd(json, &target, from.as_deref()),
    }
}

fn scan(json: bool, targets: Vec<PathBuf>) -> anyhow::Result<()> {
    let targets = if targets.is_empty() {
        sysblock::whole_disks()
    } else {
        targets
    };
    let mut reports = Vec::new();
    for t in &targets {
        match probe::probe_path(t) {
            Ok(p) => reports.push(p.report),
            Err(e) if targets.len() > 1 => eprintln!("{}: {e:#}", t.display()),
            Err(e) => return Err(e.context(t.display().to_string())),
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "disks": reports }))?
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

/// The target named, or the single ESXi disk of the machine.
fn resolve_target(target: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(t) = target {
        return Ok(t);
    }
    let esxi: Vec<PathBuf> = sysblock::whole_disks()
        .into_iter()
        .filter(|d| probe::probe_path(d).is_ok_and(|p| p.report.esxi.is_some()))
        .collect();
    match esxi.len() {
        0 => bail!(Refusal("no ESXi disk found; name one".into())),
        1 => Ok(esxi[0].clone()),
        _ => bail!(Refusal(format!(
            "{} ESXi disks found ({}); name the one to act on",
            esxi.len(),
            esxi.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn plan_for(dev: &BlockDevice, probe: &Probe) -> anyhow::Result<Plan> {
    let (Some(gpt), Some(layout)) = (&probe.gpt, &probe.layout) else {
        bail!(Refusal(format!(
            "{}: not an ESXi disk ({}); nothing written",
            dev.path().display(),
            probe.report.not_esxi.as_deref().unwrap_or("unrecognised")
        )));
    };
    gpt_repair::plan_gpt(dev, gpt, layout)
}

fn plan_cmd(json: bool, target: Option<PathBuf>) -> anyhow::Result<()> {
    let target = resolve_target(target)?;
    let dev = BlockDevice::open(&target, Access::ReadOnly)?;
    let probe = probe::probe(&dev)?;
    let plan = plan_for(&dev, &probe)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "disk": probe.report, "plan": plan }))?
        );
    } else {
        print!("{}", describe_disk(&probe.report));
        print!("{}", describe_plan(&plan, "plan (nothing written)"));
    }
    Ok(())
}

fn repair(json: bool, target: Option<PathBuf>, backup_dir: Option<&Path>) -> anyhow::Result<()> {
    let target = resolve_target(target)?;
    // Probe through the writable, exclusive handle so nothing changes between plan and write.
    let dev = BlockDevice::open(&target, Access::ReadWrite)
        .with_context(|| format!("opening {} for writing", target.display()))?;
    let probe = probe::probe(&dev)?;
    let plan = plan_for(&dev, &probe)?;
    if plan.is_empty() {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "disk": probe.report, "plan": plan, "applied": null })
                )?
            );
        } else {
            print!("{}", describe_disk(&probe.report));
            println!("  healthy: nothing to repair, nothing written");
        }
        return Ok(());
    }
    let applied = apply::apply(&dev, &probe, &plan, backup_dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "disk": probe.report, "plan": plan, "applied": applied })
            )?
        );
    } else {
        print!("{}", describe_disk(&probe.report));
        print!("{}", describe_plan(&plan, "repaired"));
        if let Some(b) = &applied.backup_on_disk {
            println!("  undo record: {b}");
        }
        if let Some(f) = &applied.backup_file {
            println!("  undo record copy: {}", f.display());
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
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!("{}: undone from {}", target.display(), done.record);
        for c in &done.changes_reverted {
            println!("  reverted: {c}");
        }
        println!(
            "  {} regions restored byte-exact and verified",
            done.restored_writes
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

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn describe_disk(r: &DiskReport) -> String {
    let mut s = format!(
        "{}  {}  {}-byte sectors  {:?}\n",
        r.path,
        gib(r.size_bytes),
        r.sector_size,
        r.table
    )
    .replace("Gpt", "GPT")
    .replace("Mbr", "MBR")
    .replace("None", "no partition table");
    let Some(e) = &r.esxi else {
        s += &format!(
            "  not ESXi: {}; will not be touched\n",
            r.not_esxi.as_deref().unwrap_or("unrecognised")
        );
        return s;
    };
    s += &format!(
        "  {} ({} install){}\n",
        e.generation.label(),
        match e.media {
            crate::layout::Media::Disk => "disk",
            crate::layout::Media::Usb => "USB/SD",
        },
        e.build
            .as_ref()
            .map(|b| format!(", build {b}"))
            .unwrap_or_default()
    );
    for b in &e.banks {
        let cfg = match &b.boot_cfg {
            Some(c) => format!(
                "build {}, bootstate {}, updated {}",
                if c.build.is_empty() { "-" } else { &c.build },
                c.bootstate.map_or("-".into(), |v| v.to_string()),
                c.updated.map_or("-".into(), |v| v.to_string())
            ),
            None => b.error.clone().unwrap_or_else(|| "no boot.cfg".into()),
        };
        s += &format!(
            "  bootbank slot {} (LBA {}–{}){}: {}\n",
            b.slot,
            b.first_lba,
            b.last_lba,
            if b.active { " active" } else { "" },
            cfg
        );
    }
    if r.problems.is_empty() {
        s += "  no problems found\n";
    }
    for p in &r.problems {
        s += &format!("  problem: {}\n", p.describe());
    }
    s
}

pub fn describe_plan(plan: &Plan, title: &str) -> String {
    if plan.is_empty() {
        return "  nothing to do\n".into();
    }
    let mut s = format!("  {title}:\n");
    for c in &plan.changes {
        s += &format!("    {c}\n");
    }
    s += "  writes, in order:\n";
    for w in &plan.writes {
        s += &format!(
            "    {:<24} LBA {} (+{} sectors)\n",
            w.target.label(),
            w.lba,
            w.sectors
        );
    }
    s
}
