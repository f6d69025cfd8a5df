//! Apply: the order of a repair. Backup first, then the plan's writes in order, each step through
//! the sector writer (checked, flushed, read back), then verification by a fresh probe.

use anyhow::{bail, Context};
use serde::Serialize;

use crate::backup_sink::BackupSink;
use crate::bank_config::{PolicyContext, STATE_TGZ_LIMIT};
use crate::blockdev::BlockDevice;
use crate::fat_reconcile;
use crate::fat_replace;
use crate::plan::{ContentDigest, FileEdit, Plan, SectorWrite};
use crate::probe::{self, Probe};
use crate::record_store::{self, BankLocation, StoredRecord};
use crate::sector_writer::{self, Batch, Step};
use crate::undo_record::{Manifest, Record, FORMAT};
use crate::Refusal;

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// "bootbank slot 5: RSQ00001.TAR" — where undo finds the record on the disk.
    pub backup_on_disk: Option<String>,
    /// Copies of the record outside the disk (--backup-dir, the RESCUE partition).
    pub backup_copies: Vec<String>,
    pub verified: bool,
    #[serde(skip)]
    pub record: Option<StoredRecord>,
}

/// The bootbank partitions of a probed ESXi disk, where records are kept (active bank first).
pub fn bank_locations(probe: &Probe) -> Vec<BankLocation> {
    let Some(esxi) = &probe.report.esxi else {
        return Vec::new();
    };
    let mut banks: Vec<&crate::probe::Bank> = esxi
        .banks
        .iter()
        .filter(|b| b.volume_uuid.is_some())
        .collect();
    banks.sort_by_key(|b| !b.active);
    banks
        .iter()
        .map(|b| BankLocation {
            slot: b.slot,
            first_lba: b.first_lba,
            sectors: b.last_lba - b.first_lba + 1,
        })
        .collect()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn disk_guid(probe: &Probe) -> String {
    probe
        .gpt
        .as_ref()
        .and_then(|g| g.source())
        .map(|c| c.header.disk_guid().to_string())
        .unwrap_or_default()
}

pub fn apply(
    dev: &BlockDevice,
    probe: &Probe,
    plan: &mut Plan,
    sinks: &[&dyn BackupSink],
    ctx: &PolicyContext,
) -> anyhow::Result<Applied> {
    if probe.report.esxi.is_none() {
        bail!(Refusal(format!(
            "{}: not an ESXi disk; nothing written",
            dev.path().display()
        )));
    }
    let base = Manifest {
        format: FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: unix_now(),
        disk_path: dev.path().display().to_string(),
        disk_size_bytes: dev.size(),
        sector_size: dev.sector_size(),
        disk_guid: disk_guid(probe),
        changes: plan.change_lines(),
        writes: Vec::new(),
        files: Vec::new(),
        fat_fixes: Vec::new(),
    };
    let fat_writes: Vec<SectorWrite> = plan
        .fat_fixes
        .iter()
        .flat_map(|f| f.writes.iter().cloned())
        .collect();
    let old_files = plan
        .file_edits
        .iter()
        .map(|edit| read_unchanged(dev, edit))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut record = Record::from_writes(base, &plan.writes, &plan.file_edits, old_files)
        .with_fat_fixes(&fat_writes);

    // 1. Backups: the copies elsewhere first (they never touch this disk), then on the disk.
    let copy_name = format!(
        "esxi-rescue-{}-{}.tar",
        if record.manifest.disk_guid.is_empty() {
            "disk".to_string()
        } else {
            record.manifest.disk_guid.to_lowercase()
        },
        record.manifest.created_unix
    );
    let mut backup_copies = Vec::new();
    // The record streams into each copy: on a large state.tgz it is as large as the file.
    if !sinks.is_empty() {
        let tar = record.serialised()?;
        for sink in sinks {
            backup_copies.push(sink.save_streamed(&copy_name, &|w| {
                tar.write(w)?;
                Ok(())
            })?);
        }
    }
    // Never into a bank whose FAT is unreconciled or inconsistent: the record would change the
    // FAT sectors the fix was planned on.
    let all_banks = bank_locations(probe);
    let record_banks: Vec<BankLocation> = (all_banks.iter())
        .filter(|l| bank_is_writable(probe, l.slot))
        .copied()
        .collect();
    let number = record_store::next_number(dev, &all_banks);
    let stored: Option<StoredRecord> =
        match record_store::save(dev, &record_banks, number, &mut record) {
            Ok(s) => Some(s),
            Err(e) if !backup_copies.is_empty() => {
                log::warn!("{e:#}; the only backup is the --backup-dir copy");
                None
            }
            Err(e) => bail!(Refusal(format!(
                "{e:#}; give --backup-dir DIR to keep the backup elsewhere. Nothing written"
            ))),
        };

    // 2. FATs an interrupted write left unreconciled, before anything else touches the banks:
    //    one step, every sector still as planned.
    let fat_step = Step::of(fat_writes.iter().map(planned_batch).collect());
    sector_writer::execute(dev, &[fat_step])?;

    // 3. The GPT writes, in plan order (backup copy first, primary header last), one step each.
    let gpt_steps: Vec<Step> = plan
        .writes
        .iter()
        .map(|w| Step::one(planned_batch(w)))
        .collect();
    sector_writer::execute(dev, &gpt_steps)?;

    // The record is on the disk (or refused above): its copies of the old files go.
    drop(record);

    // 4. Each bank's state.tgz, through the crash-safe switch. Once written, a file's bytes
    //    are released, so the verifying probe below does not hold them beside its own.
    for edit in &mut plan.file_edits {
        replace_file(
            dev,
            edit,
            &edit.sha256_before,
            &edit.after,
            &edit.sha256_after,
        )?;
        edit.release_bytes();
    }

    // 5. Verify: every step was read back as it was written; now a fresh probe must find
    //    nothing left (a bank's FAT copies differing or lost clusters count as left).
    let after = probe::probe(dev, ctx)?;
    if after.report.repairable().next().is_some() || after.report.esxi.is_none() {
        let left: Vec<String> = after.report.repairable().map(|p| p.describe()).collect();
        bail!(
            "verification failed: after the repair the disk still shows: {}",
            left.join("; ")
        );
    }
    Ok(Applied {
        backup_on_disk: stored
            .as_ref()
            .map(|s| format!("bootbank slot {}: {}", s.bank.slot, s.name)),
        backup_copies,
        verified: true,
        record: stored,
    })
}

fn bank_is_writable(probe: &Probe, slot: u32) -> bool {
    probe.report.esxi.as_ref().is_some_and(|e| {
        e.banks
            .iter()
            .any(|b| b.slot == slot && fat_reconcile::writable(b))
    })
}

/// A planned sector write as the sector writer takes it: only over the bytes the plan saw.
fn planned_batch(w: &SectorWrite) -> Batch<'_> {
    Batch::new(
        format!("the {} at LBA {}", w.target.label(), w.lba),
        w.offset,
        &w.after,
    )
    .expecting(&w.before)
}

/// The content a file edit replaces, read from the disk for the undo record; it must still be
/// what the plan was made from.
fn read_unchanged(dev: &BlockDevice, edit: &FileEdit) -> anyhow::Result<Vec<u8>> {
    let offset = edit.first_lba * u64::from(dev.sector_size());
    let what = format!("bootbank slot {}: {}", edit.bank_slot, edit.name);
    let now = fat_replace::read_root_file(dev, offset, &edit.name, STATE_TGZ_LIMIT)?
        .with_context(|| format!("{what} is missing"))?;
    if crate::plan::sha256_hex(&now) != edit.sha256_before {
        bail!(Refusal(format!(
            "{what} changed since it was read; nothing written"
        )));
    }
    Ok(now)
}

/// Replace a bootbank file whose content must still have the digest `expected_sha256`, then
/// check that it reads back as `content` (digest `content_sha256`). Both checks read the file a
/// cluster at a time, so no second copy of a large state.tgz is held.
pub fn replace_file(
    dev: &BlockDevice,
    edit: &FileEdit,
    expected_sha256: &str,
    content: &[u8],
    content_sha256: &str,
) -> anyhow::Result<()> {
    let ss = u64::from(dev.sector_size());
    let offset = edit.first_lba * ss;
    let what = format!("bootbank slot {}: {}", edit.bank_slot, edit.name);
    let now = fat_replace::root_file_digest(dev, offset, &edit.name, STATE_TGZ_LIMIT)?
        .with_context(|| format!("{what} is missing"))?;
    if now.sha256 != expected_sha256 {
        bail!(Refusal(format!(
            "{what} changed since it was read; nothing written to it"
        )));
    }
    fat_replace::replace_root_file(dev, offset, edit.sectors * ss, &edit.name, content)
        .with_context(|| format!("replacing {what}"))?;
    let back = fat_replace::root_file_digest(dev, offset, &edit.name, STATE_TGZ_LIMIT)?;
    let expected = ContentDigest {
        len: content.len() as u64,
        sha256: content_sha256.to_string(),
    };
    if back.as_ref() != Some(&expected) {
        bail!("verification failed: {what} does not read back as written");
    }
    Ok(())
}
