//! Where undo records live on the ESXi disk: root-level 8.3 files `RSQnnnnn.TAR` in a bootbank.

use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context};

use crate::blockdev::{BlockDevice, Slice};
use crate::fat_overlay::{self, FatGeometry, Overlay};
use crate::plan::sha256_hex;
use crate::sector_writer::{self, Batch, Step};
use crate::undo_record::{Record, SEAL_LEN};

/// A bootbank partition as located by the current GPT.
#[derive(Clone, Copy, Debug)]
pub struct BankLocation {
    pub slot: u32,
    pub first_lba: u64,
    pub sectors: u64,
}

impl BankLocation {
    fn offset(&self, dev: &BlockDevice) -> u64 {
        self.first_lba * u64::from(dev.sector_size())
    }
    fn len(&self, dev: &BlockDevice) -> u64 {
        self.sectors * u64::from(dev.sector_size())
    }
}

fn record_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let digits = upper.strip_prefix("RSQ")?.strip_suffix(".TAR")?;
    (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Every record in a bank, by number.
fn list_records(dev: &BlockDevice, bank: &BankLocation) -> anyhow::Result<Vec<(u32, String, u64)>> {
    let slice = Slice::new(dev, bank.offset(dev), bank.len(dev))?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())?;
    let mut out: Vec<(u32, String, u64)> = fs
        .root_dir()
        .iter()
        .filter_map(Result::ok)
        .filter(|e| e.is_file())
        .filter_map(|e| record_number(&e.file_name()).map(|n| (n, e.file_name(), e.len())))
        .collect();
    out.sort();
    Ok(out)
}

#[derive(Clone, Debug)]
pub struct StoredRecord {
    pub bank: BankLocation,
    pub name: String,
}

/// Add the record, numbered `number`, to the first bank that has room. Fills in `fat_meta`
/// and `seal`.
pub fn save(
    dev: &BlockDevice,
    banks: &[BankLocation],
    number: u32,
    record: &mut Record,
) -> anyhow::Result<StoredRecord> {
    let mut reasons = Vec::new();
    for bank in banks {
        match save_in_bank(dev, bank, number, record) {
            Ok(stored) => return Ok(stored),
            Err(e) => reasons.push(format!("bootbank slot {}: {e:#}", bank.slot)),
        }
    }
    bail!(
        "no bootbank could take the undo record ({})",
        reasons.join("; ")
    )
}

fn save_in_bank(
    dev: &BlockDevice,
    bank: &BankLocation,
    number: u32,
    record: &mut Record,
) -> anyhow::Result<StoredRecord> {
    let part = bank.offset(dev);
    let geo = FatGeometry::read_fat16(dev, part)?;
    anyhow::ensure!(number <= 99_999, "too many undo records");
    let name = format!("RSQ{number:05}.TAR");
    record.fat_meta = Some(dev.read_vec(part, geo.data_start as usize)?);
    record.seal = Some("0".repeat(SEAL_LEN));
    // The record streams into the file: a large old state.tgz is not copied once more.
    let tar = record.serialised()?;
    let record_len = tar.tar_len();

    let clock = fat_overlay::clock_now();
    let mut overlay = Overlay::new(dev, part, bank.len(dev)).streaming_free_clusters(&geo)?;
    let seal_at;
    {
        let fs =
            fatfs::FileSystem::new(&mut overlay, fatfs::FsOptions::new().time_provider(clock))?;
        let stats = fs.stats()?;
        let free = u64::from(stats.free_clusters()) * u64::from(stats.cluster_size());
        if free < record_len + u64::from(stats.cluster_size()) {
            bail!("{free} bytes free, the record needs {record_len}");
        }
        let mut file = fs.root_dir().create_file(&name)?;
        seal_at = tar.write(&mut file)?;
        file.flush()?;
        anyhow::ensure!(
            file.stream_position()? == record_len,
            "internal: the undo record came out a different length"
        );
        drop(file);
        fs.unmount()?;
    }
    drop(tar);
    let meta_after = read_meta(&mut overlay, geo.data_start)?;
    let seal = sha256_hex(&meta_after);
    // fatfs insists on starting from position 0.
    overlay.seek(SeekFrom::Start(0))?;
    {
        let fs =
            fatfs::FileSystem::new(&mut overlay, fatfs::FsOptions::new().time_provider(clock))?;
        let mut file = fs.root_dir().open_file(&name)?;
        file.seek(SeekFrom::Start(seal_at.context("internal: no seal")?))?;
        file.write_all(seal.as_bytes())?;
        file.flush()?;
        drop(file);
        fs.unmount()?;
    }
    anyhow::ensure!(
        read_meta(&mut overlay, geo.data_start)? == meta_after,
        "internal: sealing changed the FAT metadata"
    );
    record.seal = Some(seal);
    let changes = overlay.into_changes()?;
    fat_overlay::commit(dev, part, &geo, &changes)?;
    Ok(StoredRecord { bank: *bank, name })
}

fn read_meta(overlay: &mut Overlay, len: u64) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    overlay.seek(SeekFrom::Start(0))?;
    overlay.read_exact(&mut buf)?;
    Ok(buf)
}

/// Every record on the disk, newest (highest number across the banks) first.
fn all_records(dev: &BlockDevice, banks: &[BankLocation]) -> Vec<(u32, StoredRecord)> {
    let mut all = Vec::new();
    for bank in banks {
        // A bank whose FAT cannot be read holds no record we can use.
        let Ok(list) = list_records(dev, bank) else {
            continue;
        };
        all.extend(
            list.into_iter()
                .map(|(n, name, _)| (n, StoredRecord { bank: *bank, name })),
        );
    }
    all.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    all
}

/// The number the next record takes: one past the highest in any bank, so "newest" is one
/// record even when the banks take turns holding them.
pub fn next_number(dev: &BlockDevice, banks: &[BankLocation]) -> u32 {
    all_records(dev, banks).first().map_or(1, |(n, _)| n + 1)
}

/// The newest record that undo can act on: one that changed the partition table or a file
/// (a record of a FAT reconciliation alone keeps old bytes but has nothing to revert).
pub fn find_latest(
    dev: &BlockDevice,
    banks: &[BankLocation],
) -> anyhow::Result<Option<(StoredRecord, Record)>> {
    for (_, stored) in all_records(dev, banks) {
        let data = crate::fat_replace::read_root_file(
            dev,
            stored.bank.offset(dev),
            &stored.name,
            1 << 30,
        )?
        .context("undo record vanished while reading")?;
        let record = Record::from_tar(&data)
            .with_context(|| format!("{} in bootbank slot {}", stored.name, stored.bank.slot))?;
        if !record.manifest.writes.is_empty() || !record.manifest.files.is_empty() {
            return Ok(Some((stored, record)));
        }
    }
    Ok(None)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The bank was untouched since the record was added: its bytes are back as they were.
    Exact,
    /// The bank changed since (ESXi wrote to it): the record was deleted as an ordinary file.
    Deleted,
}

pub fn remove(
    dev: &BlockDevice,
    stored: &StoredRecord,
    record: &Record,
) -> anyhow::Result<Removal> {
    let bank = &stored.bank;
    let part = bank.offset(dev);
    let geo = FatGeometry::read_fat16(dev, part)?;
    let now = dev.read_vec(part, geo.data_start as usize)?;
    if let (Some(seal), Some(snapshot)) = (&record.seal, &record.fat_meta) {
        if *seal == sha256_hex(&now) && snapshot.len() == now.len() {
            restore_snapshot(dev, part, &geo, snapshot, &now)?;
            return Ok(Removal::Exact);
        }
    }
    let mut overlay = Overlay::new(dev, part, bank.len(dev));
    {
        let fs = fatfs::FileSystem::new(&mut overlay, fatfs::FsOptions::new())?;
        fs.root_dir().remove(&stored.name)?;
        fs.unmount()?;
    }
    let changes = overlay.into_changes()?;
    fat_overlay::commit(dev, part, &geo, &changes)?;
    Ok(Removal::Deleted)
}

/// Put the metadata back (directory first, then the FATs), then zero the clusters the record
/// occupied — they were free before, and the fixture and fresh installs keep free space zeroed.
fn restore_snapshot(
    dev: &BlockDevice,
    part: u64,
    geo: &FatGeometry,
    snapshot: &[u8],
    now: &[u8],
) -> anyhow::Result<()> {
    let ss = geo.bytes_per_sector as usize;
    let ranges = [
        (
            "directory",
            geo.root_start as usize,
            geo.data_start as usize,
        ),
        ("FAT", 0, geo.root_start as usize),
    ];
    let mut steps: Vec<Step> = ranges
        .iter()
        .map(|&(what, start, end)| {
            Step::of(
                (start..end)
                    .step_by(ss)
                    .filter(|&at| snapshot[at..at + ss] != now[at..at + ss])
                    .map(|at| {
                        Batch::new(
                            format!("{what} sector at partition byte {at}"),
                            part + at as u64,
                            &snapshot[at..at + ss],
                        )
                        .expecting(&now[at..at + ss])
                    })
                    .collect(),
            )
        })
        .collect();
    let fat_old = &snapshot[geo.fat_start as usize..(geo.fat_start + geo.fat_bytes) as usize];
    let fat_new = &now[geo.fat_start as usize..(geo.fat_start + geo.fat_bytes) as usize];
    let clusters = (geo.total_bytes.saturating_sub(geo.data_start) / geo.cluster_bytes) as usize;
    let zero = vec![0u8; geo.cluster_bytes as usize];
    let mut zeroing = Vec::new();
    for n in 2..(clusters + 2).min(fat_old.len() / 2) {
        let was = u16::from_le_bytes([fat_old[n * 2], fat_old[n * 2 + 1]]);
        let is = u16::from_le_bytes([fat_new[n * 2], fat_new[n * 2 + 1]]);
        if was == 0 && is != 0 {
            let at = geo.data_start + (n as u64 - 2) * geo.cluster_bytes;
            zeroing.push(Batch::new(
                format!("freed cluster {n} at partition byte {at}"),
                part + at,
                &zero,
            ));
        }
    }
    steps.push(Step::of(zeroing));
    sector_writer::execute(dev, &steps)
}

/// Write the JSON report beside its undo record (`RSQnnnnn.JSN`), crash-safe like the record.
pub fn save_report(
    dev: &BlockDevice,
    stored: &StoredRecord,
    json: &[u8],
) -> anyhow::Result<String> {
    let bank = &stored.bank;
    let part = bank.offset(dev);
    let geo = FatGeometry::read_fat16(dev, part)?;
    let name = stored.name.replace(".TAR", ".JSN");
    let mut overlay = Overlay::new(dev, part, bank.len(dev));
    {
        let fs = fatfs::FileSystem::new(
            &mut overlay,
            fatfs::FsOptions::new().time_provider(fat_overlay::clock_now()),
        )?;
        let mut file = fs.root_dir().create_file(&name)?;
        file.truncate()?;
        file.write_all(json)?;
        file.flush()?;
        drop(file);
        fs.unmount()?;
    }
    let changes = overlay.into_changes()?;
    fat_overlay::commit(dev, part, &geo, &changes)?;
    Ok(name)
}
