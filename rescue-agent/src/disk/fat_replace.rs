//! Replace a root-level file of a FAT16 bootbank so that a power cut at any point leaves either
//! the complete old file or the complete new one under its name:
//!
//! 1. the new content is written complete as a temporary file (data, then FAT, then directory);
//! 2. one directory-entry update switches the name over: the file's 8.3 entry takes the
//!    temporary file's first cluster, size and time, and the temporary entries are marked free
//!    (one sector when they share it, as they do in a bootbank's short root directory);
//! 3. the old cluster chain is freed in every FAT copy.
//!
//! Between steps the volume holds at most lost clusters, never a name pointing at partial data.

use std::io::Write;

use anyhow::{bail, ensure, Context};

use crate::blockdev::BlockDevice;
use crate::fat_check::cluster_count;
use crate::fat_overlay::{self, FatGeometry, Overlay};
use crate::plan::ContentDigest;
use crate::sector_writer::{self, Batch, Step};

const TEMP_NAME: &str = "RSQNEW.TMP";
const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0F;
const ATTR_DIR_OR_LABEL: u8 = 0x18;
const DELETED: u8 = 0xE5;

/// A root directory entry found by its 8.3 name.
#[derive(Clone, Copy, Debug)]
struct DirSlot {
    /// Index of the 8.3 entry in the root directory.
    index: usize,
    /// Index of the first LFN entry belonging to it (== index when it has none).
    first: usize,
}

/// "state.tgz" → b"STATE   TGZ"; None when the name is not a valid 8.3 name.
pub fn short_name(name: &str) -> Option<[u8; 11]> {
    fn valid(s: &str, max: usize) -> bool {
        s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"$%'-_@~`!(){}^#&".contains(&b))
    }
    let upper = name.to_ascii_uppercase();
    let (base, ext) = upper.split_once('.').unwrap_or((&upper, ""));
    if base.is_empty() || !valid(base, 8) || !valid(ext, 3) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base.as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(out)
}

fn find_entry(root: &[u8], short: &[u8; 11]) -> Option<DirSlot> {
    let mut lfn_start: Option<usize> = None;
    for (i, e) in root.chunks_exact(ENTRY).enumerate() {
        match e[0] {
            0 => return None,
            DELETED => lfn_start = None,
            _ if e[11] == ATTR_LFN => {
                lfn_start.get_or_insert(i);
            }
            _ => {
                if e[11] & ATTR_DIR_OR_LABEL == 0 && e[..11] == short[..] {
                    return Some(DirSlot {
                        index: i,
                        first: lfn_start.unwrap_or(i),
                    });
                }
                lfn_start = None;
            }
        }
    }
    None
}

fn first_cluster(entry: &[u8]) -> u16 {
    u16::from_le_bytes([entry[26], entry[27]])
}
fn file_size(entry: &[u8]) -> u32 {
    u32::from_le_bytes(entry[28..32].try_into().expect("4 bytes"))
}

/// The clusters of a FAT16 chain, in order; a loop, a free or reserved link, or a chain longer
/// than the volume is an error (a bootbank with a looped chain must not hang the rescue).
fn chain(fat: &[u8], start: u16, clusters: usize) -> anyhow::Result<Vec<u16>> {
    let mut out = Vec::new();
    let mut seen = vec![false; clusters + 2];
    let mut c = start;
    if c == 0 {
        return Ok(out); // empty file
    }
    loop {
        let i = usize::from(c);
        ensure!(i >= 2 && i < clusters + 2, "cluster {c} outside the volume");
        ensure!(!seen[i], "cluster chain loops at cluster {c}");
        seen[i] = true;
        out.push(c);
        let next = u16::from_le_bytes([fat[i * 2], fat[i * 2 + 1]]);
        match next {
            0xFFF8..=0xFFFF => return Ok(out),
            0 | 1 | 0xFFF7 => bail!("cluster chain broken at cluster {c} (link {next:#06x})"),
            n => c = n,
        }
    }
}

/// Read a root-level file by walking its chain ourselves (bounded), for verification.
pub fn read_root_file(
    dev: &BlockDevice,
    part_offset: u64,
    name: &str,
    limit: u64,
) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(file) = locate_root_file(dev, part_offset, name, limit)? else {
        return Ok(None);
    };
    let mut data = Vec::with_capacity(file.size as usize);
    file.read(dev, part_offset, &mut |chunk| data.extend_from_slice(chunk))?;
    Ok(Some(data))
}

/// Size and sha256 of a root-level file, read one cluster at a time: a 64 MiB state.tgz is
/// checked against the plan without a second copy of it in memory.
pub fn root_file_digest(
    dev: &BlockDevice,
    part_offset: u64,
    name: &str,
    limit: u64,
) -> anyhow::Result<Option<ContentDigest>> {
    use sha2::Digest;
    let Some(file) = locate_root_file(dev, part_offset, name, limit)? else {
        return Ok(None);
    };
    let mut hasher = sha2::Sha256::new();
    file.read(dev, part_offset, &mut |chunk| hasher.update(chunk))?;
    Ok(Some(ContentDigest {
        len: file.size,
        sha256: crate::plan::lower_hex(&hasher.finalize()),
    }))
}

/// A root-level file's size and clusters, checked against the volume.
struct RootFile {
    geo: FatGeometry,
    size: u64,
    clusters: Vec<u16>,
}

/// Find a root-level file and walk its chain (bounded by `limit` and the volume); None when
/// there is no such file.
fn locate_root_file(
    dev: &BlockDevice,
    part_offset: u64,
    name: &str,
    limit: u64,
) -> anyhow::Result<Option<RootFile>> {
    let geo = FatGeometry::read_fat16(dev, part_offset)?;
    let short = short_name(name).with_context(|| format!("{name} is not an 8.3 name"))?;
    let root = dev.read_vec(
        part_offset + geo.root_start,
        (geo.data_start - geo.root_start) as usize,
    )?;
    let Some(slot) = find_entry(&root, &short) else {
        return Ok(None);
    };
    let entry = &root[slot.index * ENTRY..(slot.index + 1) * ENTRY];
    let fat = dev.read_vec(part_offset + geo.fat_start, geo.fat_bytes as usize)?;
    let size = u64::from(file_size(entry));
    ensure!(
        size <= limit,
        "{name} is {size} bytes, over the {limit}-byte limit"
    );
    let clusters = chain(&fat, first_cluster(entry), cluster_count(&geo, fat.len()))?;
    ensure!(
        clusters.len() as u64 * geo.cluster_bytes >= size,
        "{name}: {size} bytes but only {} clusters",
        clusters.len()
    );
    Ok(Some(RootFile {
        geo,
        size,
        clusters,
    }))
}

impl RootFile {
    /// Hand the content to `sink` one cluster at a time.
    fn read(
        &self,
        dev: &BlockDevice,
        part_offset: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<()> {
        let geo = &self.geo;
        let mut buf = vec![0u8; geo.cluster_bytes as usize];
        let mut left = self.size;
        for &c in &self.clusters {
            let take = left.min(geo.cluster_bytes) as usize;
            if take == 0 {
                break;
            }
            let at = geo.data_start + (u64::from(c) - 2) * geo.cluster_bytes;
            dev.read_at(part_offset + at, &mut buf[..take])?;
            sink(&buf[..take]);
            left -= take as u64;
        }
        Ok(())
    }
}

/// Where a replacement stops: all the way, or (to show what a power cut leaves) after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    TempWritten,
    Switched,
    Done,
}

/// Replace `name` (which must exist) in the FAT16 volume at `part_offset` with `content`.
pub fn replace_root_file(
    dev: &BlockDevice,
    part_offset: u64,
    part_len: u64,
    name: &str,
    content: &[u8],
) -> anyhow::Result<()> {
    replace_root_file_until(dev, part_offset, part_len, name, content, Until::Done)
}

/// As `replace_root_file`, stopping after the given step.
pub fn replace_root_file_until(
    dev: &BlockDevice,
    part_offset: u64,
    part_len: u64,
    name: &str,
    content: &[u8],
    until: Until,
) -> anyhow::Result<()> {
    let geo = FatGeometry::read_fat16(dev, part_offset)?;
    let short = short_name(name).with_context(|| format!("{name} is not an 8.3 name"))?;
    let temp_short = short_name(TEMP_NAME).expect("valid 8.3 name");
    let root_len = (geo.data_start - geo.root_start) as usize;
    // A temporary file a cut run left goes first, entry then chain (never a name on freed
    // clusters), each step flushed.
    let root = dev.read_vec(part_offset + geo.root_start, root_len)?;
    if let Some(stale) = find_entry(&root, &temp_short) {
        let fat = dev.read_vec(part_offset + geo.fat_start, geo.fat_bytes as usize)?;
        let entry = &root[stale.index * ENTRY..(stale.index + 1) * ENTRY];
        let stale_chain = chain(&fat, first_cluster(entry), cluster_count(&geo, fat.len()))
            .context("the temporary file a cut run left")?;
        let mut edited = root.clone();
        let sectors = mark_deleted(&mut edited, stale, geo.bytes_per_sector as usize);
        write_root_sectors(dev, part_offset, &geo, &root, &edited, &sectors)?;
        free_chain(dev, part_offset, &geo, &stale_chain)?;
    }
    let root = dev.read_vec(part_offset + geo.root_start, root_len)?;
    let target = find_entry(&root, &short).with_context(|| format!("no {name} in the bootbank"))?;
    let fat = dev.read_vec(part_offset + geo.fat_start, geo.fat_bytes as usize)?;
    let clusters = cluster_count(&geo, fat.len());
    let old_entry = &root[target.index * ENTRY..(target.index + 1) * ENTRY];
    let old_chain = chain(&fat, first_cluster(old_entry), clusters)
        .with_context(|| format!("{name} in the bootbank"))?;

    // 1. The complete new file under the temporary name.
    let clock = fat_overlay::clock_now();
    let mut overlay = Overlay::new(dev, part_offset, part_len).streaming_free_clusters(&geo)?;
    {
        let fs =
            fatfs::FileSystem::new(&mut overlay, fatfs::FsOptions::new().time_provider(clock))?;
        let root_dir = fs.root_dir();
        let stats = fs.stats()?;
        let free = u64::from(stats.free_clusters()) * u64::from(stats.cluster_size());
        ensure!(
            free >= content.len() as u64,
            "the bootbank has {free} bytes free; the new {name} needs {}",
            content.len()
        );
        let mut f = root_dir.create_file(TEMP_NAME)?;
        f.write_all(content)?;
        f.flush()?;
        drop(f);
        drop(root_dir);
        fs.unmount()?;
    }
    let staged = overlay.into_changes()?;
    fat_overlay::commit(dev, part_offset, &geo, &staged)?;
    if until == Until::TempWritten {
        return Ok(());
    }

    // 2. The switch: one directory-entry update.
    let was = dev.read_vec(part_offset + geo.root_start, root_len)?;
    let mut root = was.clone();
    let temp = find_entry(&root, &temp_short).context("the temporary file vanished")?;
    let target = find_entry(&root, &short).with_context(|| format!("{name} vanished"))?;
    let temp_entry: [u8; ENTRY] = root[temp.index * ENTRY..(temp.index + 1) * ENTRY]
        .try_into()
        .expect("32 bytes");
    let t = target.index * ENTRY;
    root[t + 20..t + 22].copy_from_slice(&temp_entry[20..22]); // high cluster word (0 on FAT16)
    root[t + 22..t + 26].copy_from_slice(&temp_entry[22..26]); // write time and date
    root[t + 26..t + 32].copy_from_slice(&temp_entry[26..32]); // first cluster and size
    let ss = geo.bytes_per_sector as usize;
    // The name's sector first: if the temporary entries live elsewhere, a cut in between leaves
    // two names on one complete chain, never a name on a partial one.
    let mut sectors = vec![t / ss];
    for s in mark_deleted(&mut root, temp, ss) {
        if !sectors.contains(&s) {
            sectors.push(s);
        }
    }
    write_root_sectors(dev, part_offset, &geo, &was, &root, &sectors)?;

    if until == Until::Switched {
        return Ok(());
    }

    // 3. Free the old chain in every FAT copy.
    free_chain(dev, part_offset, &geo, &old_chain)
}

/// Mark an entry and its LFN entries deleted; returns the root-directory sectors touched.
fn mark_deleted(root: &mut [u8], slot: DirSlot, sector_bytes: usize) -> Vec<usize> {
    let mut sectors = Vec::new();
    for i in slot.first..=slot.index {
        root[i * ENTRY] = DELETED;
        let s = i * ENTRY / sector_bytes;
        if !sectors.contains(&s) {
            sectors.push(s);
        }
    }
    sectors
}

/// Write the given root-directory sectors in order, each its own step (flushed, read back);
/// each must still hold what `was` holds.
fn write_root_sectors(
    dev: &BlockDevice,
    part_offset: u64,
    geo: &FatGeometry,
    was: &[u8],
    root: &[u8],
    sectors: &[usize],
) -> anyhow::Result<()> {
    let ss = geo.bytes_per_sector as usize;
    let steps: Vec<Step> = sectors
        .iter()
        .map(|&s| {
            let at = part_offset + geo.root_start + (s * ss) as u64;
            Step::one(
                Batch::new(
                    format!("root directory sector {s} at byte {at}"),
                    at,
                    &root[s * ss..(s + 1) * ss],
                )
                .expecting(&was[s * ss..(s + 1) * ss]),
            )
        })
        .collect();
    sector_writer::execute(dev, &steps)
}

/// Free a chain no directory entry names any more, in every FAT copy, as one step. Every copy
/// is expected to equal the first: a bank is reconciled before any file edit (fat_reconcile.rs),
/// so a copy that differs here changed under the edit and the step is refused; the chain then
/// stays allocated as lost clusters, which the next run reconciles.
fn free_chain(
    dev: &BlockDevice,
    part_offset: u64,
    geo: &FatGeometry,
    clusters: &[u16],
) -> anyhow::Result<()> {
    let ss = geo.bytes_per_sector as usize;
    let before = dev.read_vec(part_offset + geo.fat_start, geo.fat_bytes as usize)?;
    let mut fat = before.clone();
    for c in clusters {
        let i = usize::from(*c) * 2;
        fat[i..i + 2].copy_from_slice(&[0, 0]);
    }
    let mut batches = Vec::new();
    for copy in 0..geo.fats {
        let base = part_offset + geo.fat_start + copy * geo.fat_bytes;
        for (n, (new, old)) in fat.chunks(ss).zip(before.chunks(ss)).enumerate() {
            if new != old {
                let at = base + (n * ss) as u64;
                batches.push(
                    Batch::new(format!("FAT {} sector {n} at byte {at}", copy + 1), at, new)
                        .expecting(old),
                );
            }
        }
    }
    sector_writer::execute(dev, &[Step::of(batches)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(&short_name("state.tgz").unwrap(), b"STATE   TGZ");
        assert_eq!(&short_name("boot.cfg").unwrap(), b"BOOT    CFG");
        assert_eq!(&short_name("RSQNEW.TMP").unwrap(), b"RSQNEW  TMP");
        assert!(short_name("local.tgz.ve").is_none());
        assert!(short_name("toolongname.tgz").is_none());
    }

    #[test]
    fn looped_chain_is_an_error() {
        let mut fat = vec![0u8; 64];
        fat[4..6].copy_from_slice(&3u16.to_le_bytes()); // 2 -> 3
        fat[6..8].copy_from_slice(&2u16.to_le_bytes()); // 3 -> 2
        let e = chain(&fat, 2, 30).unwrap_err();
        assert!(e.to_string().contains("loops"), "{e}");
        fat[6..8].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert_eq!(chain(&fat, 2, 30).unwrap(), vec![2, 3]);
    }
}
