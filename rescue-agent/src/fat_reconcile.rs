//! Plan the reconciliation of bootbank FATs an interrupted write left behind (fat_check.rs),
//! and keep every write away from a bank whose FAT does not match its files.

use anyhow::{bail, ensure};

use crate::blockdev::BlockDevice;
use crate::fat_check::{self, FatState};
use crate::fat_overlay::FatGeometry;
use crate::plan::{Change, FatFix, Plan, SectorWrite, Target};
use crate::probe::{Bank, Probe};
use crate::Refusal;

/// Add a fix for every sound bank with differing copies or lost clusters, and refuse a plan
/// that would edit a file in a bank whose FAT is inconsistent.
pub fn plan_fat(dev: &BlockDevice, probe: &Probe, plan: &mut Plan) -> anyhow::Result<()> {
    let Some(esxi) = &probe.report.esxi else {
        return Ok(());
    };
    let mut lines = Vec::new();
    for bank in &esxi.banks {
        match &bank.fat {
            Some(FatState::Inconsistent { reason })
                if plan.file_edits.iter().any(|e| e.bank_slot == bank.slot) =>
            {
                bail!(Refusal(format!(
                    "bootbank slot {}: its FAT does not match its files ({reason}); nothing written (use --passthru none to repair only the partition table)",
                    bank.slot
                )));
            }
            Some(FatState::Sound(h)) if !h.is_clean() => {
                let fix = plan_bank(dev, bank)?;
                lines.push(Change::ReconcileFat {
                    slot: bank.slot,
                    differing_sectors: fix.differing_sectors,
                    lost_clusters: fix.lost_clusters,
                });
                plan.fat_fixes.push(fix);
            }
            _ => {}
        }
    }
    plan.changes.splice(0..0, lines);
    Ok(())
}

/// The sector writes that make every FAT copy of `bank` the first copy minus its lost
/// clusters, computed from the disk as it is now (the health is re-derived, not trusted).
fn plan_bank(dev: &BlockDevice, bank: &Bank) -> anyhow::Result<FatFix> {
    let ss = u64::from(dev.sector_size());
    let part = bank.first_lba * ss;
    let FatState::Sound(health) = fat_check::check_bank(dev, part)? else {
        bail!(
            "bootbank slot {}: its FAT changed while planning",
            bank.slot
        );
    };
    let geo = FatGeometry::read_fat16(dev, part)?;
    let region = part + geo.fat_start;
    let len = geo.fats * geo.fat_bytes;
    ensure!(
        region.is_multiple_of(ss) && geo.fat_bytes.is_multiple_of(ss),
        "bootbank slot {}: its FATs are not aligned to the disk's {ss}-byte sectors",
        bank.slot
    );
    let now = dev.read_vec(region, len as usize)?;
    let target = fat_check::reconciled_fat(&now[..geo.fat_bytes as usize], &health);
    let mut writes = Vec::new();
    for (i, sector) in now.chunks(ss as usize).enumerate() {
        let within = i * ss as usize % geo.fat_bytes as usize;
        let want = &target[within..within + ss as usize];
        if sector != want {
            let lba = region / ss + i as u64;
            writes.extend(SectorWrite::new(
                dev,
                Target::BootbankFat,
                lba,
                want.to_vec(),
            )?);
        }
    }
    Ok(FatFix {
        bank_slot: bank.slot,
        differing_sectors: health.differing_sectors.len(),
        lost_clusters: health.lost_clusters.len(),
        writes,
    })
}

/// Whether a bank may take new files (the undo record, the report): sound and reconciled.
pub fn writable(bank: &Bank) -> bool {
    bank.fat.as_ref().is_some_and(FatState::is_clean)
}
