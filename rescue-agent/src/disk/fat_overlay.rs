//! FAT edits staged in memory, then committed to the disk in a crash-safe order.
//!
//! fatfs runs against an `Overlay`: reads fall through to the partition, writes land in a sector
//! map. The map is then the exact set of sectors the edit changes, with their old contents on the
//! disk, so the edit can be backed up first and written data → FAT → directory: a cut before the
//! last step leaves at most lost clusters, never a directory entry pointing at unwritten data.
//!
//! New file data is the one exception ([`Overlay::streaming_free_clusters`]): whole sectors of
//! clusters that were free when the edit began go to the disk at once, a few MiB per step,
//! instead of being staged. Nothing names those clusters until the FAT and directory steps land,
//! so the order stays data → FAT → directory, and a 64 MiB state.tgz is not held twice more.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use anyhow::bail;

use crate::blockdev::BlockDevice;
use crate::sector_writer::{self, Batch, Step};

/// The regions of a FAT12/16/32 volume, in bytes from the partition start. On FAT32 the root
/// directory lives in the data area, so `root_start == data_start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatGeometry {
    pub bytes_per_sector: u64,
    pub cluster_bytes: u64,
    pub fat_start: u64,
    pub fat_bytes: u64,
    pub fats: u64,
    pub root_start: u64,
    pub data_start: u64,
    pub total_bytes: u64,
}

/// A FAT16 FAT holds at most 65525 + 2 entries of 2 bytes; mkfs rounds it up to whole sectors.
pub const MAX_FAT16_BYTES: u64 = 132 << 10;
/// The largest root directory FAT16 can declare (65535 entries of 32 bytes).
pub const MAX_ROOT_BYTES: u64 = 65535 * 32;
/// Reserved sectors before the first FAT: 1 to a few on real bootbanks; bounded so the FAT
/// metadata an undo record keeps (reserved area, FATs, root) stays well under its 4 MiB limit.
pub const MAX_RESERVED_BYTES: u64 = 256 << 10;

impl FatGeometry {
    pub fn parse(boot_sector: &[u8]) -> anyhow::Result<FatGeometry> {
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([boot_sector[o], boot_sector[o + 1]]));
        let bps = u16_at(11);
        let spc = u64::from(boot_sector[13]);
        let reserved = u16_at(14);
        let fats = u64::from(boot_sector[16]);
        let root_entries = u16_at(17);
        let total16 = u16_at(19);
        let fat16_size = u16_at(22);
        let total32 = u64::from(u32::from_le_bytes(boot_sector[32..36].try_into()?));
        let fat32_size = u64::from(u32::from_le_bytes(boot_sector[36..40].try_into()?));
        let fat_sectors = if fat16_size != 0 {
            fat16_size
        } else {
            fat32_size
        };
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || !spc.is_power_of_two()
            || reserved == 0
            || fats == 0
            || fats > 2
            || fat_sectors == 0
            || (fat16_size != 0 && root_entries == 0)
        {
            bail!("not a FAT boot sector");
        }
        let total = if total16 != 0 { total16 } else { total32 };
        let fat_start = reserved * bps;
        let fat_bytes = fat_sectors * bps;
        let root_start = fat_start + fats * fat_bytes;
        let data_start = root_start + (root_entries * 32).div_ceil(bps) * bps;
        Ok(FatGeometry {
            bytes_per_sector: bps,
            cluster_bytes: spc * bps,
            fat_start,
            fat_bytes,
            fats,
            root_start,
            data_start,
            total_bytes: total * bps,
        })
    }

    pub fn read(dev: &BlockDevice, part_offset: u64) -> anyhow::Result<FatGeometry> {
        Self::parse(&dev.read_vec(part_offset, 512)?)
    }

    /// FAT16 as bootbanks are: a fixed root directory and 16-bit FAT entries. Every size here
    /// later sizes a read, so each is checked against what FAT16 allows and against the volume:
    /// the FAT size comes from FATSz16 (a FAT32 field is no FAT16's), holds the clusters and at
    /// most [`MAX_FAT16_BYTES`]; the root directory at most [`MAX_ROOT_BYTES`]; the FATs, root
    /// and data area lie inside the volume.
    pub fn read_fat16(dev: &BlockDevice, part_offset: u64) -> anyhow::Result<FatGeometry> {
        let boot = dev.read_vec(part_offset, 512)?;
        let g = Self::parse(&boot)?;
        let fat16_size = u16::from_le_bytes([boot[22], boot[23]]);
        let clusters = g.total_bytes.saturating_sub(g.data_start) / g.cluster_bytes;
        if fat16_size == 0 || g.root_start == g.data_start || !(4085..65525).contains(&clusters) {
            bail!("not a FAT16 volume ({clusters} clusters); bootbanks are FAT16");
        }
        let needed = (clusters + 2) * 2;
        if g.fat_bytes < needed || g.fat_bytes > MAX_FAT16_BYTES {
            bail!(
                "FAT16 boot sector gives a {}-byte FAT for {clusters} clusters (needs {needed}, at most {MAX_FAT16_BYTES})",
                g.fat_bytes
            );
        }
        if g.fat_start > MAX_RESERVED_BYTES {
            bail!(
                "FAT16 boot sector: {} reserved bytes before the FAT (at most {MAX_RESERVED_BYTES})",
                g.fat_start
            );
        }
        if g.data_start - g.root_start > MAX_ROOT_BYTES || g.data_start >= g.total_bytes {
            bail!(
                "FAT16 boot sector: root directory or data area out of the volume ({} bytes)",
                g.total_bytes
            );
        }
        let end = part_offset.checked_add(g.total_bytes);
        if end.is_none_or(|e| e > dev.size()) {
            bail!(
                "FAT16 volume of {} bytes at byte {part_offset} runs past the end of the disk",
                g.total_bytes
            );
        }
        Ok(g)
    }
}

/// Copy-on-write view of a partition for fatfs.
pub struct Overlay<'a> {
    dev: &'a BlockDevice,
    start: u64,
    len: u64,
    pos: u64,
    block: u64,
    changed: BTreeMap<u64, Vec<u8>>,
    /// Sectors read and not changed. fatfs reads the FAT two bytes at a time (65 000 reads of
    /// 2 bytes to count a bank's free clusters); each sector comes from the disk once.
    clean: BTreeMap<u64, Vec<u8>>,
    clean_bytes: u64,
    /// Set by [`Overlay::streaming_free_clusters`]: what is written straight to the disk.
    direct: Option<DirectData>,
}

/// Whole data sectors of clusters free when the edit began, written through as they come.
struct DirectData {
    /// First data sector (in overlay sectors) and the bytes of a cluster.
    data_start: u64,
    cluster_sectors: u64,
    /// Per cluster (index 0 = cluster 2): free in the first FAT copy when the edit began.
    free: Vec<bool>,
    /// Adjacent sectors not yet written: (first sector index, bytes).
    pending: Option<(u64, Vec<u8>)>,
}

/// The most new file data held before it is written: one step of the sector writer.
const DIRECT_RUN_BYTES: usize = 4 << 20;

/// Enough for every FAT copy and the root directory of a FAT16 bank; file data past it is
/// read through without caching.
const CLEAN_CACHE_BYTES: u64 = 4 << 20;

impl<'a> Overlay<'a> {
    pub fn new(dev: &'a BlockDevice, start: u64, len: u64) -> Overlay<'a> {
        Overlay {
            dev,
            start,
            len,
            pos: 0,
            block: u64::from(dev.sector_size()),
            changed: BTreeMap::new(),
            clean: BTreeMap::new(),
            clean_bytes: 0,
            direct: None,
        }
    }

    /// Write whole sectors of clusters that are free now straight to the disk (FAT16, as
    /// bootbanks are; `geo` from [`FatGeometry::read_fat16`] of this partition).
    pub fn streaming_free_clusters(mut self, geo: &FatGeometry) -> anyhow::Result<Self> {
        if !geo.bytes_per_sector.is_multiple_of(self.block)
            || !geo.cluster_bytes.is_multiple_of(self.block)
        {
            bail!(
                "FAT sectors of {} bytes on a disk of {}-byte sectors",
                geo.bytes_per_sector,
                self.block
            );
        }
        let fat = self
            .dev
            .read_vec(self.start + geo.fat_start, geo.fat_bytes as usize)?;
        let clusters = crate::fat_check::cluster_count(geo, fat.len());
        let free = (2..clusters + 2)
            .map(|c| fat[c * 2] == 0 && fat[c * 2 + 1] == 0)
            .collect();
        self.direct = Some(DirectData {
            data_start: geo.data_start / self.block,
            cluster_sectors: geo.cluster_bytes / self.block,
            free,
            pending: None,
        });
        Ok(self)
    }

    /// Whether a whole-sector write at `index` goes straight to the disk.
    fn is_free_data(&self, index: u64) -> bool {
        let Some(d) = &self.direct else {
            return false;
        };
        let Some(rel) = index.checked_sub(d.data_start) else {
            return false;
        };
        let cluster = rel / d.cluster_sectors;
        usize::try_from(cluster)
            .ok()
            .and_then(|c| d.free.get(c))
            .copied()
            .unwrap_or(false)
    }

    /// Add a whole sector of new data to the pending run, writing the run first when the
    /// sector does not continue it or it is full.
    fn write_direct(&mut self, index: u64, bytes: &[u8]) -> io::Result<()> {
        let block = self.block;
        let continues = self
            .direct
            .as_ref()
            .and_then(|d| d.pending.as_ref())
            .is_some_and(|(first, buf)| {
                first + buf.len() as u64 / block == index && buf.len() < DIRECT_RUN_BYTES
            });
        if !continues {
            self.flush_direct()?;
        }
        let d = self.direct.as_mut().expect("direct writes are on");
        let (_, buf) = d
            .pending
            .get_or_insert_with(|| (index, Vec::with_capacity(DIRECT_RUN_BYTES)));
        buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Write the pending run of new data: one step (written, flushed, read back).
    fn flush_direct(&mut self) -> io::Result<()> {
        let Some((first, buf)) = self.direct.as_mut().and_then(|d| d.pending.take()) else {
            return Ok(());
        };
        let at = first * self.block;
        let batch = Batch::new(
            format!("new data sectors at partition byte {at}"),
            self.start + at,
            &buf,
        );
        sector_writer::execute(self.dev, &[Step::one(batch)]).map_err(io::Error::other)
    }

    /// Before sectors `from..to` are read: new data still pending there goes to the disk first.
    fn settle(&mut self, from: u64, to: u64) -> io::Result<()> {
        let block = self.block;
        let overlaps = self
            .direct
            .as_ref()
            .and_then(|d| d.pending.as_ref())
            .is_some_and(|(first, buf)| *first < to && from < first + buf.len() as u64 / block);
        if overlaps {
            self.flush_direct()?;
        }
        Ok(())
    }

    /// The sector as the edit sees it: staged, cached, or read from the disk (and cached).
    fn sector(&mut self, index: u64) -> io::Result<&[u8]> {
        self.settle(index, index + 1)?;
        if self.changed.contains_key(&index) {
            return Ok(&self.changed[&index]);
        }
        if !self.clean.contains_key(&index) {
            let bytes = self
                .dev
                .read_vec(self.start + index * self.block, self.block as usize)
                .map_err(io::Error::other)?;
            if self.clean_bytes + self.block > CLEAN_CACHE_BYTES {
                self.clean.clear();
                self.clean_bytes = 0;
            }
            self.clean_bytes += self.block;
            self.clean.insert(index, bytes);
        }
        Ok(&self.clean[&index])
    }

    fn load(&mut self, index: u64) -> io::Result<Vec<u8>> {
        self.settle(index, index + 1)?;
        if let Some(b) = self.changed.get(&index) {
            return Ok(b.clone());
        }
        match self.clean.remove(&index) {
            Some(b) => {
                self.clean_bytes -= self.block;
                Ok(b)
            }
            None => self
                .dev
                .read_vec(self.start + index * self.block, self.block as usize)
                .map_err(io::Error::other),
        }
    }

    /// The staged sectors that differ from the disk, as runs of adjacent sectors (one read of
    /// the old bytes per run, no per-sector copies of a large file's data).
    pub fn into_changes(mut self) -> anyhow::Result<Vec<StagedRun>> {
        self.flush_direct()?;
        let block = self.block;
        let mut groups: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
        for (index, sector) in self.changed {
            match groups.last_mut() {
                Some(g) if g.last().is_some_and(|(i, _)| i + 1 == index) => g.push((index, sector)),
                _ => groups.push(vec![(index, sector)]),
            }
        }
        let mut out = Vec::new();
        for group in groups {
            let offset = group[0].0 * block;
            let mut after = Vec::with_capacity(group.len() * block as usize);
            for (_, sector) in group {
                after.extend_from_slice(&sector);
            }
            let before = self.dev.read_vec(self.start + offset, after.len())?;
            // Sectors fatfs rewrote with the bytes they had are not changes.
            let b = block as usize;
            let changed: Vec<bool> = (0..after.len() / b)
                .map(|i| before[i * b..(i + 1) * b] != after[i * b..(i + 1) * b])
                .collect();
            if changed.iter().all(|c| *c) {
                out.push(StagedRun {
                    offset,
                    before,
                    after,
                });
                continue;
            }
            let mut i = 0;
            while i < changed.len() {
                if !changed[i] {
                    i += 1;
                    continue;
                }
                let from = i;
                while i < changed.len() && changed[i] {
                    i += 1;
                }
                out.push(StagedRun {
                    offset: offset + (from * b) as u64,
                    before: before[from * b..i * b].to_vec(),
                    after: after[from * b..i * b].to_vec(),
                });
            }
        }
        Ok(out)
    }
}

/// Adjacent staged sectors that differ from the disk.
#[derive(Clone, Debug)]
pub struct StagedRun {
    /// Byte offset within the partition.
    pub offset: u64,
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

impl Read for Overlay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        let mut done = 0;
        while done < n {
            let at = self.pos + done as u64;
            let (index, within) = (at / self.block, (at % self.block) as usize);
            let take = (self.block as usize - within).min(n - done);
            if take == self.block as usize && !self.changed.contains_key(&index) {
                // Whole sectors of file data: straight from the disk, not cached.
                let run = (n - done) / self.block as usize * self.block as usize;
                let run_end = index + (run as u64 / self.block);
                let staged_inside = self.changed.range(index..run_end).next().map(|(i, _)| *i);
                let whole = match staged_inside {
                    Some(i) => ((i - index) * self.block) as usize,
                    None => run,
                };
                if whole > 0 && !self.clean.contains_key(&index) {
                    self.settle(index, index + whole as u64 / self.block)?;
                    self.dev
                        .read_at(self.start + at, &mut buf[done..done + whole])
                        .map_err(io::Error::other)?;
                    done += whole;
                    continue;
                }
            }
            let sector = self.sector(index)?;
            buf[done..done + take].copy_from_slice(&sector[within..within + take]);
            done += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Overlay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "end of partition"));
        }
        let mut done = 0;
        while done < n {
            let at = self.pos + done as u64;
            let (index, within) = (at / self.block, (at % self.block) as usize);
            let take = (self.block as usize - within).min(n - done);
            let sector = if take == self.block as usize {
                // A whole sector (file data): nothing of the old bytes survives, so none is read.
                if self.clean.remove(&index).is_some() {
                    self.clean_bytes -= self.block;
                }
                if self.is_free_data(index) {
                    self.changed.remove(&index);
                    self.write_direct(index, &buf[done..done + take])?;
                    done += take;
                    continue;
                }
                buf[done..done + take].to_vec()
            } else {
                let mut sector = self.load(index)?;
                sector[within..within + take].copy_from_slice(&buf[done..done + take]);
                sector
            };
            self.changed.insert(index, sector);
            done += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Overlay<'_> {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.pos = crate::blockdev::seek_within(self.pos, self.len, from)?;
        Ok(self.pos)
    }
}

/// Write staged sectors of the partition at `part_offset`: data clusters first, then the FATs,
/// then the root directory and boot sector, each step flushed and read back (sector_writer.rs).
/// Every sector must still hold what it held when it was staged.
pub fn commit(
    dev: &BlockDevice,
    part_offset: u64,
    geometry: &FatGeometry,
    changes: &[StagedRun],
) -> anyhow::Result<()> {
    let g = geometry;
    let kinds: [(&str, Vec<(u64, u64)>); 3] = [
        ("data", vec![(g.data_start, u64::MAX)]),
        ("FAT", vec![(g.fat_start, g.root_start)]),
        (
            "directory",
            vec![(0, g.fat_start), (g.root_start, g.data_start)],
        ),
    ];
    let steps: Vec<Step> = kinds
        .iter()
        .map(|(kind, regions)| {
            let mut batches = Vec::new();
            for run in changes {
                let end = run.offset + run.after.len() as u64;
                for &(from, to) in regions {
                    let (a, b) = (run.offset.max(from), end.min(to));
                    if a >= b {
                        continue;
                    }
                    let (i, j) = ((a - run.offset) as usize, (b - run.offset) as usize);
                    batches.push(
                        Batch::new(
                            format!("{kind} sectors at partition byte {a}"),
                            part_offset + a,
                            &run.after[i..j],
                        )
                        .expecting(&run.before[i..j]),
                    );
                }
            }
            Step::of(batches)
        })
        .collect();
    sector_writer::execute(dev, &steps)
}

/// A fixed clock for fatfs: directory entries get one timestamp however often a file is written,
/// so an edit can be replayed or sealed without the directory changing again.
#[derive(Debug)]
pub struct FixedTime(pub fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// A `'static` fixed clock at the current UTC time (one small allocation per edit).
pub fn clock_now() -> &'static FixedTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Box::leak(Box::new(FixedTime(fat_datetime(secs))))
}

/// Unix seconds → FAT date and time (UTC), clamped to FAT's 1980–2107 range.
pub fn fat_datetime(unix: u64) -> fatfs::DateTime {
    let days = (unix / 86400) as i64;
    let rem = unix % 86400;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(1980, 2107) as u16;
    fatfs::DateTime {
        date: fatfs::Date { year, month, day },
        time: fatfs::Time {
            hour: (rem / 3600) as u16,
            min: (rem / 60 % 60) as u16,
            sec: (rem % 60) as u16 & !1,
            millis: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_to_fat_date() {
        let dt = fat_datetime(1_795_000_000); // 2026-11-18T...
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2026, 11, 18));
        let dt = fat_datetime(0);
        assert_eq!(dt.date.year, 1980);
    }
}
