//! Human-readable rendering of findings and plans: short, specific, ≤ 80 columns where it
//! matters (the BMC console), shared by the CLI and the unattended run.

use crate::bank_config::ConfigReport;
use crate::layout::Media;
use crate::plan::Plan;
use crate::probe::DiskReport;
use crate::state_archive::Flavor;

/// The version of every JSON document the agent writes (CLI `--json`, the bootbank report, the
/// run report): raised when a field changes meaning or goes away (docs/report.md). 2: the CLI's
/// plan and repair documents take the bootbank report's shape (`disk` became `before`).
pub const SCHEMA_VERSION: u32 = 2;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn describe_disk(r: &DiskReport) -> String {
    let mut s = format!(
        "{}  {}  {}-byte sectors  {}\n",
        r.path,
        gib(r.size_bytes),
        r.sector_size,
        r.table
    );
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
            Media::Disk => "disk",
            Media::Usb => "USB/SD",
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
        if let Some(c) = &b.config {
            s += &describe_config(c);
        }
    }
    if r.problems.is_empty() {
        s += "  no problems found\n";
    }
    for p in &r.problems {
        s += &format!("  problem: {}\n", p.describe());
    }
    s
}

fn describe_config(c: &ConfigReport) -> String {
    let mut s = String::new();
    if let Some(why) = &c.unreadable {
        return format!("    configuration: {why}\n");
    }
    let flavor = match c.flavor {
        Some(Flavor::Encrypted) => "encrypted (7.0U2+, mode NONE)",
        _ => "plain",
    };
    let passthru: Vec<_> = c.owners.iter().filter(|o| o.owner.is_passthru()).collect();
    s += &format!(
        "    state.tgz {} bytes, {flavor}; {} passthru owner(s)\n",
        c.state_tgz_bytes.unwrap_or(0),
        passthru.len()
    );
    for o in passthru {
        s += &format!(
            "      /device/{}/owner = passthru{}{}{} → {}: {}\n",
            o.owner.key_addr,
            o.normalised
                .as_ref()
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default(),
            o.owner
                .vmkname
                .as_ref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default(),
            o.class
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            if o.decision.flip { "FLIP" } else { "keep" },
            o.decision.reason
        );
    }
    match &c.configstore {
        None => {}
        Some(store) if store.error.is_some() => {
            s += &format!(
                "    ConfigStore unreadable: {}\n",
                store.error.as_deref().unwrap_or_default()
            );
        }
        Some(store) => {
            let rows: Vec<_> = store
                .pci_devices
                .iter()
                .filter(|r| r.row.is_passthru())
                .collect();
            s += &format!(
                "    ConfigStore: {} pci_devices row(s), {} OWNER_PASSTHRU\n",
                store.pci_devices.len(),
                rows.len()
            );
            for r in rows {
                s += &format!(
                    "      pci_devices {} owner OWNER_PASSTHRU{}{} -> {}: {}\n",
                    r.row.identifier,
                    r.row
                        .hardware_label
                        .as_ref()
                        .map(|l| format!(" label {l:?}"))
                        .unwrap_or_default(),
                    r.class
                        .as_ref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default(),
                    if r.decision.flip { "FLIP" } else { "keep" },
                    r.decision.reason
                );
            }
        }
    }
    for m in &c.disabled_modules {
        s += &format!(
            "    driver {} disabled ({}) -> {}: {}\n",
            m.module,
            m.found_in.join(", "),
            if m.decision.enable { "ENABLE" } else { "keep" },
            m.decision.reason
        );
    }
    s
}

pub fn describe_plan(plan: &Plan, title: &str) -> String {
    if plan.is_empty() {
        return "  nothing to do\n".into();
    }
    let mut s = format!("  {title}:\n");
    for c in &plan.changes {
        s += &format!("    {}\n", c.long());
    }
    for k in &plan.kept {
        s += &format!("    {k}\n");
    }
    s += "  writes, in order:\n";
    for f in &plan.fat_fixes {
        for w in &f.writes {
            s += &format!(
                "    bootbank slot {} FAT sector LBA {} (+{} sectors)\n",
                f.bank_slot, w.lba, w.sectors
            );
        }
    }
    for w in &plan.writes {
        s += &format!(
            "    {:<24} LBA {} (+{} sectors)\n",
            w.target.label(),
            w.lba,
            w.sectors
        );
    }
    for f in &plan.file_edits {
        s += &format!(
            "    bootbank slot {}: {} {} → {} bytes (new file first, then one directory-entry switch)\n",
            f.bank_slot, f.name, f.size_before, f.size_after
        );
    }
    s
}
