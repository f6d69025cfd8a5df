//! The bootbank FAT invariant: every FAT copy is identical, no cluster is marked used that no
//! file or directory reaches, and every chain the directory tree names is whole.
//!
//! A power cut inside a FAT update (ours or ESXi's) breaks the first two and nothing else: FAT
//! sectors are written after the data they describe and before the directory entry that names
//! them, and freed after the entry is gone. So when the first copy still matches the directory
//! tree it is the truth, and the repair is to copy it over the others with the lost clusters
//! freed. When it does not match, nothing here can tell which bytes are right: the bank is
//! reported and never written.

use serde::Serialize;

use crate::blockdev::BlockDevice;
use crate::fat_overlay::FatGeometry;

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0F;
const ATTR_LABEL: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const DELETED: u8 = 0xE5;
const BAD: u16 = 0xFFF7;
/// FAT allows 65536 entries per directory; bootbanks have one root directory of a few files.
const MAX_DIR_BYTES: usize = 65536 * ENTRY;
const MAX_TREE_BYTES: usize = 4 * MAX_DIR_BYTES;

/// What a sound bank's FAT needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FatHealth {
    pub fats: u64,
    /// FAT sectors (counted within one FAT) where a later copy differs from the first.
    pub differing_sectors: Vec<u64>,
    /// Clusters the first FAT marks used (not bad) that no file or directory reaches.
    #[serde(skip)]
    pub lost_clusters: Vec<u16>,
    pub lost_cluster_count: usize,
}

impl FatHealth {
    pub fn is_clean(&self) -> bool {
        self.differing_sectors.is_empty() && self.lost_clusters.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fat", rename_all = "snake_case")]
pub enum FatState {
    /// The first FAT matches the directory tree (perhaps with copies to align or lost clusters).
    Sound(FatHealth),
    /// The first FAT does not match the directory tree: never written.
    Inconsistent { reason: String },
}

impl FatState {
    /// Sound and with nothing to reconcile: a bank the repair may write to.
    pub fn is_clean(&self) -> bool {
        matches!(self, FatState::Sound(h) if h.is_clean())
    }
}

/// Read the FATs and walk the directory tree of the FAT16 bank at `part_offset`.
pub fn check_bank(dev: &BlockDevice, part_offset: u64) -> anyhow::Result<FatState> {
    let geo = FatGeometry::read_fat16(dev, part_offset)?;
    let fats = dev.read_vec(
        part_offset + geo.fat_start,
        (geo.fats * geo.fat_bytes) as usize,
    )?;
    let root = dev.read_vec(
        part_offset + geo.root_start,
        (geo.data_start - geo.root_start) as usize,
    )?;
    let copies: Vec<&[u8]> = fats.chunks(geo.fat_bytes as usize).collect();
    let mut read_cluster = |c: u16| {
        let at = geo.data_start + (u64::from(c) - 2) * geo.cluster_bytes;
        Ok(dev.read_vec(part_offset + at, geo.cluster_bytes as usize)?)
    };
    analyse(&geo, &copies, &root, &mut read_cluster)
}

/// Clusters a FAT of `fat_len` bytes can describe on this volume.
pub fn cluster_count(geo: &FatGeometry, fat_len: usize) -> usize {
    let by_size = (geo.total_bytes.saturating_sub(geo.data_start) / geo.cluster_bytes) as usize;
    by_size.min((fat_len / 2).saturating_sub(2))
}

fn link(fat: &[u8], c: usize) -> u16 {
    u16::from_le_bytes([fat[c * 2], fat[c * 2 + 1]])
}

fn display_name(e: &[u8]) -> String {
    let part = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    let (base, ext) = (part(&e[..8]), part(&e[8..11]));
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// The invariant over bytes: `fats` are the copies, `root` the fixed root directory, and
/// `read_cluster` reads one data cluster (for subdirectories). Every cluster is visited at
/// most once, so the walk is bounded by the volume whatever the bytes say.
pub fn analyse(
    geo: &FatGeometry,
    fats: &[&[u8]],
    root: &[u8],
    read_cluster: &mut dyn FnMut(u16) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<FatState> {
    let first = fats.first().copied().unwrap_or_default();
    let clusters = cluster_count(geo, first.len());
    let mut owned = vec![false; clusters + 2];
    let mut dirs: Vec<(String, Vec<u8>)> = vec![("/".to_string(), root.to_vec())];
    let mut tree_bytes = 0usize;
    while let Some((dir_name, bytes)) = dirs.pop() {
        for e in bytes.chunks_exact(ENTRY) {
            if e[0] == 0 {
                break;
            }
            if e[0] == DELETED || e[11] == ATTR_LFN || e[11] & ATTR_LABEL != 0 || e[0] == b'.' {
                continue;
            }
            let name = format!("{}{}", dir_name, display_name(e));
            let start = u16::from_le_bytes([e[26], e[27]]);
            let size = u64::from(u32::from_le_bytes([e[28], e[29], e[30], e[31]]));
            let is_dir = e[11] & ATTR_DIR != 0;
            let mut chain = Vec::new();
            let mut c = start;
            while c != 0 {
                let i = usize::from(c);
                if i < 2 || i >= clusters + 2 {
                    return inconsistent(format!("{name}: cluster {c} outside the volume"));
                }
                if owned[i] {
                    return inconsistent(format!(
                        "{name}: cluster {c} is in two chains (cross-linked or looped)"
                    ));
                }
                owned[i] = true;
                chain.push(c);
                match link(first, i) {
                    0xFFF8..=0xFFFF => break,
                    next @ (0 | 1 | BAD) => {
                        return inconsistent(format!(
                            "{name}: chain broken at cluster {c} (link {next:#06x})"
                        ))
                    }
                    next => c = next,
                }
            }
            if is_dir {
                if chain.is_empty() {
                    return inconsistent(format!("{name}: a directory without clusters"));
                }
                let bytes = chain.len() * geo.cluster_bytes as usize;
                tree_bytes += bytes;
                if bytes > MAX_DIR_BYTES || tree_bytes > MAX_TREE_BYTES {
                    return inconsistent(format!(
                        "{name}: directories of {tree_bytes} bytes, more than FAT allows"
                    ));
                }
                let mut content = Vec::new();
                for c in &chain {
                    content.extend(read_cluster(*c)?);
                }
                dirs.push((format!("{name}/"), content));
            } else if (chain.len() as u64) * geo.cluster_bytes < size {
                return inconsistent(format!(
                    "{name}: {size} bytes but {} cluster(s) of {} bytes",
                    chain.len(),
                    geo.cluster_bytes
                ));
            }
        }
    }
    let lost_clusters: Vec<u16> = (2..clusters + 2)
        .filter(|&c| !owned[c] && !matches!(link(first, c), 0 | BAD))
        .map(|c| c as u16)
        .collect();
    let ss = geo.bytes_per_sector as usize;
    let differing_sectors = (0..first.len() / ss)
        .filter(|&s| {
            fats[1..]
                .iter()
                .any(|copy| copy.get(s * ss..(s + 1) * ss) != Some(&first[s * ss..(s + 1) * ss]))
        })
        .map(|s| s as u64)
        .collect();
    Ok(FatState::Sound(FatHealth {
        fats: fats.len() as u64,
        differing_sectors,
        lost_cluster_count: lost_clusters.len(),
        lost_clusters,
    }))
}

fn inconsistent(reason: String) -> anyhow::Result<FatState> {
    Ok(FatState::Inconsistent { reason })
}

/// The FAT every copy should hold: the first copy with the lost clusters freed.
pub fn reconciled_fat(first: &[u8], health: &FatHealth) -> Vec<u8> {
    let mut fat = first.to_vec();
    for &c in &health.lost_clusters {
        let i = usize::from(c) * 2;
        fat[i..i + 2].copy_from_slice(&[0, 0]);
    }
    fat
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4096 clusters of 512 bytes, two 9-sector FATs, a one-sector root directory.
    fn geo() -> FatGeometry {
        FatGeometry {
            bytes_per_sector: 512,
            cluster_bytes: 512,
            fat_start: 512,
            fat_bytes: 9 * 512,
            fats: 2,
            root_start: 512 + 18 * 512,
            data_start: 512 + 19 * 512,
            total_bytes: 512 + 19 * 512 + 4100 * 512,
        }
    }

    fn set(fat: &mut [u8], c: usize, v: u16) {
        fat[c * 2..c * 2 + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn entry(name: &[u8; 11], attr: u8, start: u16, size: u32) -> Vec<u8> {
        let mut e = vec![0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[26..28].copy_from_slice(&start.to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    /// STATE.TGZ on clusters 2→3→4 (1200 bytes), BOOT.CFG on 5, a subdirectory on 6 holding
    /// A.TXT on 7.
    fn volume() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut fat = vec![0u8; 9 * 512];
        set(&mut fat, 0, 0xFFF8);
        set(&mut fat, 1, 0xFFFF);
        set(&mut fat, 2, 3);
        set(&mut fat, 3, 4);
        set(&mut fat, 4, 0xFFFF);
        set(&mut fat, 5, 0xFFFF);
        set(&mut fat, 6, 0xFFFF);
        set(&mut fat, 7, 0xFFFF);
        let mut root = Vec::new();
        root.extend(entry(b"VOLUME     ", ATTR_LABEL, 0, 0));
        root.extend(entry(b"STATE   TGZ", 0x20, 2, 1200));
        root.extend(entry(b"\xE5SQNEW  TMP", 0x20, 9, 100));
        root.extend(entry(b"BOOT    CFG", 0x20, 5, 300));
        root.extend(entry(b"SUB        ", ATTR_DIR, 6, 0));
        root.resize(512, 0);
        let mut sub = Vec::new();
        sub.extend(entry(b".          ", ATTR_DIR, 6, 0));
        sub.extend(entry(b"..         ", ATTR_DIR, 0, 0));
        sub.extend(entry(b"A       TXT", 0x20, 7, 10));
        sub.resize(512, 0);
        (fat, root, sub)
    }

    fn run(fat0: &[u8], fat1: &[u8], root: &[u8], sub: &[u8]) -> FatState {
        let mut read = |c: u16| {
            assert_eq!(c, 6, "only the subdirectory's cluster is read");
            Ok(sub.to_vec())
        };
        analyse(&geo(), &[fat0, fat1], root, &mut read).unwrap()
    }

    fn health(s: FatState) -> FatHealth {
        match s {
            FatState::Sound(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_clean_volume_is_clean() {
        let (fat, root, sub) = volume();
        assert!(run(&fat, &fat, &root, &sub).is_clean());
    }

    #[test]
    fn a_cut_allocation_leaves_lost_clusters_and_differing_copies() {
        let (fat, root, sub) = volume();
        // A temporary file's chain 300→301 reached the first FAT only (cut before the second
        // copy and before the directory entry), plus a stray cluster in sector 2.
        let mut cut = fat.clone();
        set(&mut cut, 300, 301);
        set(&mut cut, 301, 0xFFFF);
        set(&mut cut, 700, 0xFFFF);
        let h = health(run(&cut, &fat, &root, &sub));
        assert_eq!(h.lost_clusters, vec![300, 301, 700]);
        assert_eq!(h.differing_sectors, vec![1, 2]);
        let fixed = reconciled_fat(&cut, &h);
        assert_eq!(fixed, fat, "the reconciled FAT is the one before the cut");
        // The deleted entry's cluster 9 is free: it is neither lost nor checked.
        assert!(!h.lost_clusters.contains(&9));
    }

    #[test]
    fn a_cut_free_leaves_the_old_chain_lost_in_one_copy() {
        let (fat, mut root, sub) = volume();
        // After the switch STATE.TGZ names 10→11; the old 2→3→4 is freed in the second copy only.
        root[32..64].copy_from_slice(&entry(b"STATE   TGZ", 0x20, 10, 900));
        let mut first = fat.clone();
        set(&mut first, 10, 11);
        set(&mut first, 11, 0xFFFF);
        let mut second = first.clone();
        for c in 2..=4 {
            set(&mut second, c, 0);
        }
        let h = health(run(&first, &second, &root, &sub));
        assert_eq!(h.lost_clusters, vec![2, 3, 4]);
        assert_eq!(reconciled_fat(&first, &h), second);
    }

    #[test]
    fn a_first_copy_that_does_not_match_the_files_is_inconsistent() {
        let (fat, root, sub) = volume();
        // (cluster, new link, what the reason must say)
        let cases = [
            (3, 0, "chain broken at cluster 3"),
            (4, 2, "cross-linked or looped"),
            (3, 5, "cross-linked or looped"),
            (3, 0xFFFF, "1200 bytes but 2 cluster"),
            (4, 0xFFF0, "outside the volume"),
            (7, BAD, "/SUB/A.TXT: chain broken"),
        ];
        for (cluster, value, want) in cases {
            let mut bad = fat.clone();
            set(&mut bad, cluster, value);
            match run(&bad, &bad, &root, &sub) {
                FatState::Inconsistent { reason } => {
                    assert!(reason.contains(want), "{reason:?} lacks {want:?}")
                }
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_clusters_are_not_lost() {
        let (mut fat, root, sub) = volume();
        set(&mut fat, 500, BAD);
        assert!(run(&fat, &fat, &root, &sub).is_clean());
    }
}
