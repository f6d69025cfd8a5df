//! Software-RAID members: disks whose metadata sits at their end, where a "grown disk" repair
//! would put the backup GPT. Intel VROC/RST (IMSM), SNIA DDF (some Dell/LSI software RAID) and
//! Linux md with v0.90 or v1.0 superblocks. Linux sees each member raw; the ESXi GPT inside
//! belongs to the RAID volume, so a member is reported and never written.

use serde::Serialize;

use crate::blockdev::BlockDevice;

/// IMSM MPB signature at the start of the second-to-last 512-byte sector (mdadm super-intel.c).
const IMSM_SIGNATURE: &[u8] = b"Intel Raid ISM Cfg Sig. ";
/// DDF anchor header signature, big-endian, at the start of the last sector.
const DDF_SIGNATURE: u32 = 0xDE11_DE11;
/// md superblock magic, little-endian, at the start of the superblock.
const MD_MAGIC: u32 = 0xA92B_4EFC;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RaidKind {
    /// Intel Matrix Storage (VROC, RST): the volume lives on the vmd/md array.
    IntelImsm,
    /// SNIA DDF.
    Ddf,
    /// Linux md, superblock 0.90 (64 KiB-aligned, near the end).
    Md090,
    /// Linux md, superblock 1.0 (8 KiB before the end).
    Md10,
}

impl RaidKind {
    pub fn label(self) -> &'static str {
        match self {
            RaidKind::IntelImsm => "Intel IMSM (VROC/RST) software RAID",
            RaidKind::Ddf => "SNIA DDF software RAID",
            RaidKind::Md090 => "Linux md software RAID (superblock 0.90)",
            RaidKind::Md10 => "Linux md software RAID (superblock 1.0)",
        }
    }

    /// What the admin should do instead.
    pub fn advice(self) -> &'static str {
        match self {
            RaidKind::IntelImsm => {
                "repair through the RAID volume (the vmd/md array, which this image does not assemble), not a member"
            }
            _ => "repair through the RAID volume, not a member",
        }
    }
}

/// The RAID metadata at the end of `dev`, if any. Reads at most the last 128 KiB.
pub fn detect(dev: &BlockDevice) -> Option<RaidKind> {
    let size = dev.size();
    let tail_len = size.min(128 << 10);
    let tail_start = size - tail_len;
    let tail = dev.read_vec(tail_start, tail_len as usize).ok()?;
    let at = |offset: u64, len: usize| -> Option<&[u8]> {
        let start = offset.checked_sub(tail_start)? as usize;
        tail.get(start..start.checked_add(len)?)
    };
    let ss = u64::from(dev.sector_size());
    // IMSM: the MPB is written 2 sectors before the end (mdadm writes at size - 2*sector);
    // 512-byte sectors are used on 4Kn disks too, so look at both.
    for back in [2 * ss, 1024] {
        if size >= back && at(size - back, IMSM_SIGNATURE.len()) == Some(IMSM_SIGNATURE) {
            return Some(RaidKind::IntelImsm);
        }
    }
    // DDF: the anchor is in the last sector; mdadm writes it 512 bytes before the end whatever
    // the sector size, so a 4Kn member has it inside its last LBA.
    for back in [ss, 512] {
        if size >= back {
            if let Some(b) = at(size - back, 4) {
                if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == DDF_SIGNATURE {
                    return Some(RaidKind::Ddf);
                }
            }
        }
    }
    let md_at = |offset: u64| {
        at(offset, 4).is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == MD_MAGIC)
    };
    // v1.0: 8 KiB before the end, rounded down to 4 KiB (md's "(size - 16) & ~7" in sectors).
    if size >= 16 << 10 {
        let v10 = ((size - (8 << 10)) / 4096) * 4096;
        if md_at(v10) {
            return Some(RaidKind::Md10);
        }
    }
    // v0.90: the last 64 KiB-aligned 64 KiB block.
    if size >= 128 << 10 {
        let v090 = (size / (64 << 10)) * (64 << 10) - (64 << 10);
        if md_at(v090) {
            return Some(RaidKind::Md090);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockdev::Access;

    fn disk_with(size: u64, offset: u64, bytes: &[u8]) -> (tempfile_path::Tmp, BlockDevice) {
        let tmp = tempfile_path::Tmp::new();
        let mut data = vec![0u8; size as usize];
        data[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&tmp.0, &data).unwrap();
        let dev = BlockDevice::open(&tmp.0, Access::ReadOnly).unwrap();
        (tmp, dev)
    }

    mod tempfile_path {
        pub struct Tmp(pub std::path::PathBuf);
        impl Tmp {
            pub fn new() -> Tmp {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                Tmp(std::env::temp_dir().join(format!(
                    "raid-member-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                )))
            }
        }
        impl Drop for Tmp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const SIZE: u64 = 4 << 20;

    #[test]
    fn each_kind_is_found_where_its_tools_write_it() {
        let (_t, d) = disk_with(SIZE, SIZE - 1024, IMSM_SIGNATURE);
        assert_eq!(detect(&d), Some(RaidKind::IntelImsm));
        let (_t, d) = disk_with(SIZE, SIZE - 512, &DDF_SIGNATURE.to_be_bytes());
        assert_eq!(detect(&d), Some(RaidKind::Ddf));
        let (_t, d) = disk_with(SIZE, SIZE - 8192, &MD_MAGIC.to_le_bytes());
        assert_eq!(detect(&d), Some(RaidKind::Md10));
        let (_t, d) = disk_with(SIZE, SIZE - 65536, &MD_MAGIC.to_le_bytes());
        assert_eq!(detect(&d), Some(RaidKind::Md090));
    }

    #[test]
    fn ddf_on_a_4kn_member_sits_512_bytes_before_the_end() {
        let tmp = tempfile_path::Tmp::new();
        let mut data = vec![0u8; SIZE as usize];
        data[4096..4104].copy_from_slice(b"EFI PART");
        let at = SIZE as usize - 512;
        data[at..at + 4].copy_from_slice(&DDF_SIGNATURE.to_be_bytes());
        std::fs::write(&tmp.0, &data).unwrap();
        let d = BlockDevice::open(&tmp.0, Access::ReadOnly).unwrap();
        assert_eq!(d.sector_size(), 4096);
        assert_eq!(detect(&d), Some(RaidKind::Ddf));
    }

    #[test]
    fn plain_disks_and_near_misses_are_not_members() {
        let (_t, d) = disk_with(SIZE, 0, b"EFI PART");
        assert_eq!(detect(&d), None);
        // The signature one sector off is not IMSM; DDF little-endian is not DDF.
        let (_t, d) = disk_with(SIZE, SIZE - 1536, IMSM_SIGNATURE);
        assert_eq!(detect(&d), None);
        let (_t, d) = disk_with(SIZE, SIZE - 512, &DDF_SIGNATURE.to_le_bytes());
        assert_eq!(detect(&d), None);
        let (_t, d) = disk_with(1024, 0, b"x");
        assert_eq!(detect(&d), None);
    }
}
