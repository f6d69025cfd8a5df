//! Assess: the findings of one probe, under a policy, become problems and decisions. Pure —
//! nothing here reads a disk — so one read of a disk serves any policy, and verification is
//! "read again, assess again".

use crate::bank_config::{self, ConfigReport, PolicyContext};
use crate::esxconf;
use crate::fat_check::FatState;
use crate::gpt::DiskGpt;
use crate::layout::{Layout, Placement};
use crate::passthru_policy::Policy;
use crate::probe::{Bank, DiskReport, Probe, Problem};

/// The report of `probe` under `ctx`: each bank's configuration with the policies' decisions,
/// and every problem, partition table and FATs included (recomputed, so assessing twice under
/// different policies gives each its own answer).
pub fn assess(probe: &Probe, ctx: &PolicyContext) -> DiskReport {
    let mut report = probe.report.clone();
    let Some(esxi) = report.esxi.as_mut() else {
        return report;
    };
    let mut problems = match (&probe.gpt, &probe.layout) {
        (Some(gpt), Some(layout)) => gpt_problems(gpt, layout),
        _ => Vec::new(),
    };
    problems.extend(esxi.banks.iter().filter_map(fat_problem));
    for (i, bank) in esxi.banks.iter_mut().enumerate() {
        match probe.configs.get(i).and_then(Option::as_ref) {
            Some(facts) => {
                let config = bank_config::assess_config(facts, ctx);
                problems.extend(config_problems(bank.slot, &config, &ctx.policy));
                bank.config = Some(config);
            }
            None => bank.config = None,
        }
    }
    report.problems = problems;
    report
}

fn config_problems(slot: u32, config: &ConfigReport, policy: &Policy) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut owners: Vec<String> = config
        .flips()
        .map(|o| format!("/device/{}/owner ({})", o.owner.key_addr, o.decision.reason))
        .collect();
    owners.extend(config.store_flips().map(|r| {
        format!(
            "ConfigStore pci_devices {} ({})",
            r.row.identifier, r.decision.reason
        )
    }));
    if !owners.is_empty() {
        out.push(Problem::PassthruOnEsxiDevice { slot, owners });
    }
    let unreadable_lines = config
        .owners
        .iter()
        .filter(|o| o.owner.is_passthru() && o.owner.addr.is_none() && !o.decision.flip)
        .map(|o| o.owner.key_addr.clone());
    let unreadable_rows = config
        .configstore
        .iter()
        .flat_map(|s| s.pci_devices.iter())
        .filter(|r| r.row.is_passthru() && r.row.addr.is_none() && !r.decision.flip)
        .map(|r| r.row.identifier.clone());
    for key in unreadable_lines.chain(unreadable_rows) {
        let likely: Vec<String> = esxconf::likely_readings(&key)
            .iter()
            .map(|a| a.to_string())
            .collect();
        if !likely.is_empty() {
            out.push(Problem::UnreadableOwnerKey { slot, key, likely });
        }
    }
    for m in &config.disabled_modules {
        out.push(Problem::DriverDisabled {
            slot,
            module: m.module.clone(),
            found_in: m.found_in.clone(),
            enable: m.decision.enable,
            reason: m.decision.reason.clone(),
        });
    }
    if *policy != Policy::None && config.present {
        if config.tpm_sealed {
            out.push(Problem::ConfigSealed { slot });
        } else if let Some(reason) = &config.unreadable {
            out.push(Problem::ConfigUnreadable {
                slot,
                reason: reason.clone(),
            });
        } else if let Some(e) = config.configstore.as_ref().and_then(|s| s.error.as_ref()) {
            out.push(Problem::ConfigUnreadable {
                slot,
                reason: e.clone(),
            });
        }
    }
    out
}

pub fn fat_problem(bank: &Bank) -> Option<Problem> {
    match bank.fat.as_ref()? {
        FatState::Sound(h) if !h.is_clean() => Some(Problem::FatNotReconciled {
            slot: bank.slot,
            differing_sectors: h.differing_sectors.len(),
            lost_clusters: h.lost_clusters.len(),
        }),
        FatState::Sound(_) => None,
        FatState::Inconsistent { reason } => Some(Problem::FatInconsistent {
            slot: bank.slot,
            reason: reason.clone(),
        }),
    }
}

/// Everything about the GPT of a recognised ESXi disk that a repair would change.
pub fn gpt_problems(g: &DiskGpt, layout: &Layout) -> Vec<Problem> {
    let mut problems = Vec::new();
    let last = g.last_lba();
    if let Err(e) = &g.primary {
        problems.push(Problem::PrimaryInvalid {
            reason: e.to_string(),
        });
    }
    if let Err(e) = &g.backup {
        problems.push(Problem::BackupInvalid {
            reason: e.to_string(),
        });
    }
    let alternate = g.primary_alternate_lba.unwrap_or(last);
    let backup_at = g.backup.as_ref().ok().and(g.backup_lba);
    if backup_at.is_some_and(|b| b != last) || alternate != last {
        problems.push(Problem::BackupNotAtEnd {
            backup_lba: backup_at,
            alternate_lba: alternate,
            last_lba: last,
        });
    }
    if let (Ok(p), Ok(b)) = (&g.primary, &g.backup) {
        let same_header = p.header.disk_guid() == b.header.disk_guid()
            && p.header.first_usable() == b.header.first_usable()
            && p.header.num_entries() == b.header.num_entries()
            && p.header.entry_size() == b.header.entry_size();
        if p.array != b.array || !same_header {
            problems.push(Problem::CopiesDiffer);
        }
    }
    let moves: Vec<Placement> = layout.misplaced().cloned().collect();
    if !moves.is_empty() {
        problems.push(Problem::SlotsNotCanonical { moves });
    }
    problems
}
