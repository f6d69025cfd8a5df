//! Undo: put back every sector a repair changed, byte-exact, but only if the disk still holds
//! exactly what the repair wrote.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::apply::{bank_locations, replace_file};
use crate::bank_config::STATE_TGZ_LIMIT;
use crate::blockdev::BlockDevice;
use crate::fat_reconcile;
use crate::fat_replace;
use crate::plan::sha256_hex;
use crate::plan::{ContentDigest, FileEdit};
use crate::probe;
use crate::record_store::{self, Removal};
use crate::sector_writer::{self, Batch, Step};
use crate::undo_record::Record;
use crate::Refusal;

#[derive(Clone, Debug, Serialize)]
pub struct Undone {
    pub record: String,
    pub restored_writes: usize,
    pub restored_files: usize,
    pub changes_reverted: Vec<String>,
    /// How the on-disk record was taken out: "exact" or "deleted" (the bank changed since).
    pub record_removal: Option<String>,
}

pub fn undo(dev: &BlockDevice, from: Option<&Path>) -> anyhow::Result<Undone> {
    // Only the banks and their FATs matter here: no configuration is opened.
    let probe = probe::identify(dev)?;
    let banks = bank_locations(&probe);
    let (record, stored, label) = match from {
        Some(path) => {
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let record = Record::from_tar(&data).with_context(|| path.display().to_string())?;
            (record, None, path.display().to_string())
        }
        None => {
            if probe.report.esxi.is_none() {
                bail!(Refusal(format!(
                    "{}: not an ESXi disk ({}); no undo record to look for",
                    dev.path().display(),
                    probe.report.not_esxi.clone().unwrap_or_default()
                )));
            }
            let Some((stored, record)) = record_store::find_latest(dev, &banks)? else {
                bail!(Refusal(format!(
                    "{}: no undo record on this disk",
                    dev.path().display()
                )));
            };
            let label = format!("bootbank slot {}: {}", stored.bank.slot, stored.name);
            (record, Some(stored), label)
        }
    };
    let m = &record.manifest;
    if m.disk_size_bytes != dev.size() || m.sector_size != dev.sector_size() {
        bail!(Refusal(format!(
            "{label} was made for a disk of {} bytes / {}-byte sectors; this one has {} / {}",
            m.disk_size_bytes,
            m.sector_size,
            dev.size(),
            dev.sector_size()
        )));
    }
    let mut already = 0;
    for w in &m.writes {
        let now = sha256_hex(&dev.read_vec(w.offset, w.len as usize)?);
        if now == w.sha256_before {
            already += 1;
        } else if now != w.sha256_after {
            bail!(Refusal(format!(
                "the {} at byte {} changed since the repair; undo would destroy that change. Nothing written",
                w.target.label(),
                w.offset
            )));
        }
    }
    let ss = u64::from(dev.sector_size());
    let bank_offset = |first_lba: u64| {
        first_lba
            .checked_mul(ss)
            .filter(|o| *o < dev.size())
            .with_context(|| format!("undo record names a bank at LBA {first_lba}, past the disk"))
    };
    for f in &m.files {
        let now = fat_replace::root_file_digest(
            dev,
            bank_offset(f.first_lba)?,
            &f.name,
            STATE_TGZ_LIMIT,
        )?
        .map(|d| d.sha256);
        if now.as_deref() == Some(f.sha256_before.as_str()) {
            already += 1;
        } else if now.as_deref() != Some(f.sha256_after.as_str()) {
            bail!(Refusal(format!(
                "bootbank slot {}: {} changed since the repair (ESXi may have saved its configuration since); undo would destroy that change. Nothing written",
                f.bank_slot, f.name
            )));
        }
    }
    // A bank an interrupted write left unreconciled (or inconsistent) is not written to.
    let slots = m.files.iter().map(|f| f.bank_slot);
    for slot in slots.chain(stored.iter().map(|s| s.bank.slot)) {
        let bank = probe
            .report
            .esxi
            .as_ref()
            .and_then(|e| e.banks.iter().find(|b| b.slot == slot));
        if bank.is_some_and(|b| !fat_reconcile::writable(b)) {
            bail!(Refusal(format!(
                "bootbank slot {slot}: its FAT needs reconciling first (an interrupted write); run `rescue-agent repair --passthru none` on this disk, then undo. Nothing written"
            )));
        }
    }
    let total = m.writes.len() + m.files.len();
    if already == total && total > 0 {
        bail!(Refusal(format!("{label}: already undone")));
    }
    // Files first (the reverse of apply), then the partition table.
    for (f, before) in m.files.iter().zip(&record.file_before).rev() {
        let edit = FileEdit::new(
            f.bank_slot,
            f.first_lba,
            f.sectors,
            &f.name,
            &ContentDigest::of(before),
            Vec::new(),
        );
        let current = fat_replace::root_file_digest(
            dev,
            bank_offset(f.first_lba)?,
            &f.name,
            STATE_TGZ_LIMIT,
        )?
        .map(|d| d.sha256)
        .unwrap_or_default();
        if current == f.sha256_before {
            continue;
        }
        replace_file(dev, &edit, &current, before, &f.sha256_before)?;
    }
    // Each restore its own step (flushed, read back), in the record's order.
    let steps: Vec<Step> = m
        .writes
        .iter()
        .zip(&record.before)
        .map(|(w, before)| {
            Step::one(Batch::new(
                format!("the {} at byte {}", w.target.label(), w.offset),
                w.offset,
                before,
            ))
        })
        .collect();
    sector_writer::execute(dev, &steps)?;
    let record_removal = match &stored {
        Some(stored) => Some(match record_store::remove(dev, stored, &record)? {
            Removal::Exact => "exact".to_string(),
            Removal::Deleted => "deleted".to_string(),
        }),
        None => None,
    };
    Ok(Undone {
        record: label,
        restored_writes: m.writes.len(),
        restored_files: m.files.len(),
        changes_reverted: m.changes.clone(),
        record_removal,
    })
}
