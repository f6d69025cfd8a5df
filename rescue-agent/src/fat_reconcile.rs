//! Plan the reconciliation of bootbank FATs an interrupted write left behind (fat_check.rs),
//! and keep every write away from a bank whose FAT does not match its files.

use anyhow::{bail, ensure, Context};

use crate::blockdev::BlockDevice;
use crate::fat_check::{self, FatHealth, FatState};
use crate::fat_overlay::FatGeometry;
use crate::plan::{Change, FatFix, Plan, SectorWrite, Target};
use crate::probe::{Bank, Probe};
use crate::sector_snapshot::SectorSnapshot;
use crate::Refusal;

/// Add a fix for every sound bank with differing copies or lost clusters, and refuse a plan
/// that would edit a file in a bank whose FAT is inconsistent.
pub fn plan_fat(probe: &Probe, plan: &mut Plan) -> anyhow::Result<()> {
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
                let fix = plan_bank(&probe.sectors, bank, h)?;
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

/// Where a bank's FATs are, from its boot sector, checked to be whole sectors of the disk.
fn fat_region(boot: &[u8], bank: &Bank, ss: u64) -> anyhow::Result<(FatGeometry, u64, u64)> {
    let geo = FatGeometry::parse(boot)?;
    let region = bank.first_lba * ss + geo.fat_start;
    ensure!(
        region.is_multiple_of(ss) && geo.fat_bytes.is_multiple_of(ss),
        "bootbank slot {}: its FATs are not aligned to the disk's {ss}-byte sectors",
        bank.slot
    );
    Ok((geo, region / ss, geo.fats * geo.fat_bytes / ss))
}

/// Read what reconciling `bank` needs (its boot sector and every FAT copy) into `sectors`.
pub fn read_sectors(
    dev: &BlockDevice,
    bank: &Bank,
    sectors: &mut SectorSnapshot,
) -> anyhow::Result<()> {
    let ss = u64::from(dev.sector_size());
    // Validated as FAT16 (every size bounded) before any of it sizes a read.
    FatGeometry::read_fat16(dev, bank.first_lba * ss)?;
    sectors.read(dev, bank.first_lba, 1)?;
    let boot = sectors.get(bank.first_lba, 1).context("boot sector")?;
    let (_, lba, count) = fat_region(boot, bank, ss)?;
    sectors.read(dev, lba, count)?;
    Ok(())
}

/// The sector writes that make every FAT copy of `bank` the first copy minus its lost
/// clusters, computed from the FATs as the probe read them.
fn plan_bank(sectors: &SectorSnapshot, bank: &Bank, health: &FatHealth) -> anyhow::Result<FatFix> {
    let ss = sectors.sector_size();
    let missing = || {
        format!(
            "internal: the FATs of bootbank slot {} were not read",
            bank.slot
        )
    };
    let boot = sectors.get(bank.first_lba, 1).with_context(missing)?;
    let (geo, region_lba, count) = fat_region(boot, bank, ss)?;
    let now = sectors.get(region_lba, count).with_context(missing)?;
    let target = fat_check::reconciled_fat(&now[..geo.fat_bytes as usize], health);
    let mut writes = Vec::new();
    for (i, sector) in now.chunks(ss as usize).enumerate() {
        let within = i * ss as usize % geo.fat_bytes as usize;
        let want = &target[within..within + ss as usize];
        if sector != want {
            let lba = region_lba + i as u64;
            writes.extend(SectorWrite::new(
                sectors,
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
