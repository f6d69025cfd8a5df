//! Undo: put back every sector a repair changed, byte-exact, but only if the disk still holds
//! exactly what the repair wrote.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::apply::bank_locations;
use crate::blockdev::BlockDevice;
use crate::plan::sha256_hex;
use crate::probe;
use crate::record_store::{self, Removal};
use crate::undo_record::Record;
use crate::Refusal;

#[derive(Clone, Debug, Serialize)]
pub struct Undone {
    pub record: String,
    pub restored_writes: usize,
    pub changes_reverted: Vec<String>,
    /// How the on-disk record was taken out: "exact" or "deleted" (the bank changed since).
    pub record_removal: Option<String>,
}

pub fn undo(dev: &BlockDevice, from: Option<&Path>) -> anyhow::Result<Undone> {
    let probe = probe::probe(dev)?;
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
    if already == m.writes.len() && !m.writes.is_empty() {
        bail!(Refusal(format!("{label}: already undone")));
    }
    for (w, before) in m.writes.iter().zip(&record.before) {
        dev.write_at(w.offset, before)
            .with_context(|| format!("restoring the {}", w.target.label()))?;
        dev.flush()?;
    }
    for w in &m.writes {
        if sha256_hex(&dev.read_vec(w.offset, w.len as usize)?) != w.sha256_before {
            bail!(
                "verification failed: the {} did not read back as restored",
                w.target.label()
            );
        }
    }
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
        changes_reverted: m.changes.clone(),
        record_removal,
    })
}
