//! A plan: the ordered, exact writes a repair would make, each with the reason for it.
//! Dry run prints it; apply executes it; the backup and undo are derived from it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use anyhow::Context;

pub use crate::change::Change;
use crate::sector_snapshot::SectorSnapshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    BackupGptArray,
    BackupGptHeader,
    PrimaryGptArray,
    PrimaryGptHeader,
    /// A FAT sector of a bootbank, reconciled after an interrupted write.
    BootbankFat,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::BackupGptArray => "backup GPT entry array",
            Target::BackupGptHeader => "backup GPT header",
            Target::PrimaryGptArray => "primary GPT entry array",
            Target::PrimaryGptHeader => "primary GPT header",
            Target::BootbankFat => "bootbank FAT sector",
        }
    }
}

/// Replace whole sectors. `before` is what the disk held when the plan was made.
#[derive(Clone, Debug, Serialize)]
pub struct SectorWrite {
    pub target: Target,
    pub lba: u64,
    pub sectors: u64,
    pub offset: u64,
    pub sha256_before: String,
    pub sha256_after: String,
    #[serde(skip)]
    pub before: Vec<u8>,
    #[serde(skip)]
    pub after: Vec<u8>,
}

impl SectorWrite {
    /// None when the disk, as the probe read it, already holds exactly `after`. The sectors
    /// must be in the snapshot: a plan never reads the disk.
    pub fn new(
        sectors: &SectorSnapshot,
        target: Target,
        lba: u64,
        after: Vec<u8>,
    ) -> anyhow::Result<Option<SectorWrite>> {
        let ss = sectors.sector_size();
        anyhow::ensure!(
            ss > 0 && (after.len() as u64).is_multiple_of(ss),
            "internal: {} is not whole sectors",
            target.label()
        );
        let count = after.len() as u64 / ss;
        let before = sectors
            .get(lba, count)
            .with_context(|| {
                format!(
                    "internal: the {} at LBA {lba} was not read by the probe",
                    target.label()
                )
            })?
            .to_vec();
        if before == after {
            return Ok(None);
        }
        Ok(Some(SectorWrite {
            target,
            lba,
            sectors: count,
            offset: lba * ss,
            sha256_before: sha256_hex(&before),
            sha256_after: sha256_hex(&after),
            before,
            after,
        }))
    }
}

/// Size and sha256 of a file's content.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContentDigest {
    pub len: u64,
    pub sha256: String,
}

impl ContentDigest {
    pub fn of(data: &[u8]) -> ContentDigest {
        ContentDigest {
            len: data.len() as u64,
            sha256: sha256_hex(data),
        }
    }
}

/// Replace a root-level file of a bootbank (state.tgz) through the crash-safe switch.
#[derive(Clone, Debug, Serialize)]
pub struct FileEdit {
    /// ESXi's slot of the bank (5 or 6) and where its partition starts.
    pub bank_slot: u32,
    pub first_lba: u64,
    pub sectors: u64,
    pub name: String,
    pub size_before: u64,
    pub size_after: u64,
    pub sha256_before: String,
    pub sha256_after: String,
    /// The new content. The old one is not kept: apply reads it from the disk for the undo
    /// record, checked against `sha256_before` (a bank's state.tgz can be tens of MiB).
    #[serde(skip)]
    pub after: Vec<u8>,
}

impl FileEdit {
    pub fn new(
        bank_slot: u32,
        first_lba: u64,
        sectors: u64,
        name: &str,
        before: &ContentDigest,
        after: Vec<u8>,
    ) -> FileEdit {
        FileEdit {
            bank_slot,
            first_lba,
            sectors,
            name: name.to_string(),
            size_before: before.len,
            size_after: after.len() as u64,
            sha256_before: before.sha256.clone(),
            sha256_after: sha256_hex(&after),
            after,
        }
    }

    /// Drop the new content once it is written; sizes and digests stay for the report.
    pub fn release_bytes(&mut self) {
        self.after = Vec::new();
    }
}

/// One bank's FAT made whole again: the first copy, with its lost clusters freed, in every copy.
#[derive(Clone, Debug, Serialize)]
pub struct FatFix {
    pub bank_slot: u32,
    pub differing_sectors: usize,
    pub lost_clusters: usize,
    pub writes: Vec<SectorWrite>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// What changes, in order (rendered for people as "slot 4 → 5: bootbank (LBA 8224–520191)").
    pub changes: Vec<Change>,
    /// In the order they are applied: backup copy first, primary header last.
    pub writes: Vec<SectorWrite>,
    /// Applied after the GPT writes, one bank at a time.
    pub file_edits: Vec<FileEdit>,
    /// Passthrough owners left as they are, with the reason (shown, not acted on).
    pub kept: Vec<String>,
    /// Banks whose FAT an interrupted write left unreconciled: written first, right after the
    /// undo record (which is never put in such a bank).
    pub fat_fixes: Vec<FatFix>,
}

/// JSON: `changes` as the long lines (as always), `actions` as the typed values.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            changes: Vec<String>,
            actions: &'a [Change],
            writes: &'a [SectorWrite],
            file_edits: &'a [FileEdit],
            kept: &'a [String],
            fat_fixes: &'a [FatFix],
        }
        View {
            changes: self.change_lines(),
            actions: &self.changes,
            writes: &self.writes,
            file_edits: &self.file_edits,
            kept: &self.kept,
            fat_fixes: &self.fat_fixes,
        }
        .serialize(s)
    }
}

impl Plan {
    /// One long line per change.
    pub fn change_lines(&self) -> Vec<String> {
        self.changes.iter().map(Change::long).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.file_edits.is_empty() && self.fat_fixes.is_empty()
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    lower_hex(&Sha256::digest(data))
}

/// Bytes as lowercase hex, as sha256sum prints a digest.
pub fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
