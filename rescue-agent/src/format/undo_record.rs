//! The undo record: every sector a repair changes, as it was before, with a manifest.
//!
//! A plain tar (inspect it with `tar tvf`): `manifest.json`, one `write-N.bin` per write with the
//! old bytes, and — in the copy kept on the ESXi disk — `fatmeta.gz`, the bank's FAT metadata
//! before the record was added, and `seal`, the sha256 of that metadata after. With those, undo
//! can also take the record itself back out of the bank byte-exactly when nothing changed since.

use std::io::{Read, Write};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

use crate::plan::{sha256_hex, FileEdit, SectorWrite, Target};

pub const FORMAT: &str = "esxi-rescue-undo/1";
/// Largest member of an undo record: the old state.tgz at most (bank_config::STATE_TGZ_LIMIT).
const MEMBER_LIMIT: u64 = 96 << 20;
/// fatmeta.gz holds one FAT16 bank's FATs and root directory: a few MiB at most.
const FAT_META_LIMIT: u64 = 4 << 20;
pub const SEAL_LEN: usize = 64;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedWrite {
    pub target: Target,
    pub offset: u64,
    pub len: u64,
    pub sha256_before: String,
    pub sha256_after: String,
    pub file: String,
}

/// A bootbank file the repair replaced; its old content is `file`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedFile {
    pub bank_slot: u32,
    pub first_lba: u64,
    pub sectors: u64,
    pub name: String,
    pub sha256_before: String,
    pub sha256_after: String,
    pub file: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub tool_version: String,
    pub created_unix: u64,
    pub disk_path: String,
    pub disk_size_bytes: u64,
    pub sector_size: u32,
    pub disk_guid: String,
    pub changes: Vec<String>,
    pub writes: Vec<RecordedWrite>,
    #[serde(default)]
    pub files: Vec<RecordedFile>,
    /// FAT sectors reconciled after an interrupted write: kept as they were, never put back by
    /// undo (that would bring back FAT copies that disagree).
    #[serde(default)]
    pub fat_fixes: Vec<RecordedWrite>,
}

/// The manifest entries of sector writes whose old bytes are kept as `{prefix}-N.bin`.
fn recorded(writes: &[SectorWrite], prefix: &str) -> Vec<RecordedWrite> {
    writes
        .iter()
        .enumerate()
        .map(|(i, w)| RecordedWrite {
            target: w.target,
            offset: w.offset,
            len: w.before.len() as u64,
            sha256_before: w.sha256_before.clone(),
            sha256_after: w.sha256_after.clone(),
            file: format!("{prefix}-{i}.bin"),
        })
        .collect()
}

const TAR_BLOCK: u64 = 512;

/// A member's data: made for the record, or borrowed from it.
enum Member<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
}

impl Member<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Member::Owned(v) => v,
            Member::Borrowed(b) => b,
        }
    }
}

/// A record's members in tar order, ready to be written ([`Record::serialised`]).
pub struct Serialised<'a> {
    members: Vec<(String, Member<'a>)>,
    mtime: u64,
}

impl Serialised<'_> {
    /// Length of the tar: a ustar header and the padded data per member (every name is short,
    /// so there are no extension headers), then the two end blocks.
    pub fn tar_len(&self) -> u64 {
        (self.members.iter())
            .map(|(_, m)| TAR_BLOCK + (m.bytes().len() as u64).div_ceil(TAR_BLOCK) * TAR_BLOCK)
            .sum::<u64>()
            + 2 * TAR_BLOCK
    }

    /// Write the tar into `out`; returns the offset of the seal's data, when there is a seal.
    pub fn write(&self, out: &mut dyn Write) -> anyhow::Result<Option<u64>> {
        let mut counted = CountingWriter {
            inner: out,
            count: 0,
        };
        let mut seal_at = None;
        let mut builder = tar::Builder::new(&mut counted);
        for (name, member) in &self.members {
            let data = member.bytes();
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(self.mtime);
            h.set_entry_type(tar::EntryType::Regular);
            if name == "seal" {
                seal_at = Some(builder.get_ref().count + TAR_BLOCK);
            }
            builder.append_data(&mut h, name, data)?;
        }
        builder.finish()?;
        Ok(seal_at)
    }
}

/// Counts what passes through, so the seal's offset is known without the bytes.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    count: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub manifest: Manifest,
    /// Old bytes per write, same order as `manifest.writes`.
    pub before: Vec<Vec<u8>>,
    /// Old content per replaced file, same order as `manifest.files` .
    pub file_before: Vec<Vec<u8>>,
    /// Old bytes per reconciled FAT sector batch, same order as `manifest.fat_fixes`.
    pub fat_fix_before: Vec<Vec<u8>>,
    /// FAT metadata of the bank holding this record, before the record was added.
    pub fat_meta: Option<Vec<u8>>,
    pub seal: Option<String>,
}

impl Record {
    pub fn from_writes(
        manifest_base: Manifest,
        writes: &[SectorWrite],
        edits: &[FileEdit],
        old_files: Vec<Vec<u8>>,
    ) -> Record {
        let mut manifest = manifest_base;
        manifest.writes = recorded(writes, "write");
        manifest.files = edits
            .iter()
            .enumerate()
            .map(|(i, f)| RecordedFile {
                bank_slot: f.bank_slot,
                first_lba: f.first_lba,
                sectors: f.sectors,
                name: f.name.clone(),
                sha256_before: f.sha256_before.clone(),
                sha256_after: f.sha256_after.clone(),
                file: format!("file-{i}.bin"),
            })
            .collect();
        Record {
            manifest,
            before: writes.iter().map(|w| w.before.clone()).collect(),
            file_before: old_files,
            fat_fix_before: Vec::new(),
            fat_meta: None,
            seal: None,
        }
    }

    /// Keep the old bytes of the FAT sectors a reconciliation rewrites.
    pub fn with_fat_fixes(mut self, writes: &[SectorWrite]) -> Record {
        self.manifest.fat_fixes = recorded(writes, "fatfix");
        self.fat_fix_before = writes.iter().map(|w| w.before.clone()).collect();
        self
    }

    /// Serialize. With a seal placeholder the record's size does not depend on the seal value,
    /// so the seal can be filled in later in place; returns (bytes, offset of the seal).
    pub fn to_tar(&self) -> anyhow::Result<(Vec<u8>, Option<u64>)> {
        let tar = self.serialised()?;
        let mut bytes = Vec::new();
        let seal_at = tar.write(&mut bytes)?;
        ensure!(
            bytes.len() as u64 == tar.tar_len(),
            "internal: undo record length"
        );
        if let Some(at) = seal_at {
            let at = at as usize;
            let seal = self.seal.as_deref().unwrap_or_default();
            ensure!(
                bytes[at..at + SEAL_LEN] == *seal.as_bytes(),
                "internal: seal position"
            );
        }
        Ok((bytes, seal_at))
    }

    /// The record ready to be written, as often as needed: the small members (manifest,
    /// fatmeta.gz) made once, the large ones (an old state.tgz) borrowed, so it streams into a
    /// file without a copy of itself in memory.
    pub fn serialised(&self) -> anyhow::Result<Serialised<'_>> {
        let mut members = vec![(
            "manifest.json".to_string(),
            Member::Owned(serde_json::to_vec_pretty(&self.manifest)?),
        )];
        for (w, data) in self.manifest.writes.iter().zip(&self.before) {
            members.push((w.file.clone(), Member::Borrowed(data)));
        }
        for (f, data) in self.manifest.files.iter().zip(&self.file_before) {
            members.push((f.file.clone(), Member::Borrowed(data)));
        }
        for (w, data) in self.manifest.fat_fixes.iter().zip(&self.fat_fix_before) {
            members.push((w.file.clone(), Member::Borrowed(data)));
        }
        if let Some(meta) = &self.fat_meta {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(meta)?;
            members.push(("fatmeta.gz".to_string(), Member::Owned(gz.finish()?)));
        }
        if let Some(seal) = &self.seal {
            ensure!(seal.len() == SEAL_LEN, "internal: seal length");
            members.push(("seal".to_string(), Member::Borrowed(seal.as_bytes())));
        }
        Ok(Serialised {
            members,
            mtime: self.manifest.created_unix,
        })
    }

    pub fn from_tar(data: &[u8]) -> anyhow::Result<Record> {
        let mut archive = tar::Archive::new(data);
        let mut manifest: Option<Manifest> = None;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut fat_meta = None;
        let mut seal = None;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            ensure!(entry.size() <= MEMBER_LIMIT, "member {name} is too large");
            let mut buf = Vec::new();
            entry.by_ref().take(MEMBER_LIMIT).read_to_end(&mut buf)?;
            match name.as_str() {
                "manifest.json" => {
                    manifest = Some(serde_json::from_slice(&buf).context("manifest.json")?)
                }
                "fatmeta.gz" => {
                    let mut out = Vec::new();
                    // The FAT metadata of one FAT16 bank: its FATs and root directory.
                    flate2::read::GzDecoder::new(&buf[..])
                        .take(FAT_META_LIMIT + 1)
                        .read_to_end(&mut out)?;
                    ensure!(
                        out.len() as u64 <= FAT_META_LIMIT,
                        "fatmeta.gz inflates past {FAT_META_LIMIT} bytes"
                    );
                    fat_meta = Some(out);
                }
                "seal" => seal = Some(String::from_utf8_lossy(&buf).into_owned()),
                _ => files.push((name, buf)),
            }
        }
        let manifest = manifest.context("no manifest.json: not an esxi-rescue undo record")?;
        if manifest.format != FORMAT {
            bail!(
                "undo record format {:?}, expected {FORMAT:?}",
                manifest.format
            );
        }
        // Each member is taken out of the list, not copied: an old state.tgz can be 64 MiB.
        let mut member = |file: &str, sha256: &str, len: Option<u64>| {
            let (_, data) = files
                .iter_mut()
                .find(|(n, _)| n == file)
                .with_context(|| format!("undo record lacks {file}"))?;
            ensure!(
                len.is_none_or(|l| data.len() as u64 == l) && sha256_hex(data) == sha256,
                "undo record member {file} does not match its manifest"
            );
            anyhow::Ok(std::mem::take(data))
        };
        let before = (manifest.writes.iter())
            .map(|w| member(&w.file, &w.sha256_before, Some(w.len)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let fat_fix_before = (manifest.fat_fixes.iter())
            .map(|w| member(&w.file, &w.sha256_before, Some(w.len)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let file_before = (manifest.files.iter())
            .map(|f| member(&f.file, &f.sha256_before, None))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Record {
            manifest,
            before,
            file_before,
            fat_fix_before,
            fat_meta,
            seal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let manifest = Manifest {
            format: FORMAT.into(),
            tool_version: "test".into(),
            created_unix: 1,
            disk_path: "/dev/x".into(),
            disk_size_bytes: 1 << 30,
            sector_size: 512,
            disk_guid: "G".into(),
            changes: vec!["slot 4 → 5".into()],
            writes: vec![],
            files: vec![],
            fat_fixes: vec![],
        };
        let w = SectorWrite {
            target: Target::PrimaryGptHeader,
            lba: 1,
            sectors: 1,
            offset: 512,
            sha256_before: sha256_hex(&[1; 512]),
            sha256_after: sha256_hex(&[2; 512]),
            before: vec![1; 512],
            after: vec![2; 512],
        };
        Record::from_writes(manifest, &[w], &[], Vec::new())
    }

    #[test]
    fn round_trip_with_seal() {
        let mut r = sample();
        r.fat_meta = Some(vec![0; 4096]);
        r.seal = Some("0".repeat(SEAL_LEN));
        let (mut bytes, at) = r.to_tar().unwrap();
        let at = at.unwrap() as usize;
        bytes[at..at + SEAL_LEN].copy_from_slice("a".repeat(SEAL_LEN).as_bytes());
        let back = Record::from_tar(&bytes).unwrap();
        assert_eq!(back.manifest, r.manifest);
        assert_eq!(back.before, r.before);
        assert_eq!(back.fat_meta.unwrap().len(), 4096);
        assert_eq!(back.seal.unwrap(), "a".repeat(SEAL_LEN));
    }

    #[test]
    fn tampered_member_is_refused() {
        let (mut bytes, _) = sample().to_tar().unwrap();
        let pos = bytes.windows(4).position(|w| w == [1, 1, 1, 1]).unwrap();
        bytes[pos] = 9;
        assert!(Record::from_tar(&bytes).is_err());
    }
}
