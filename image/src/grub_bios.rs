//! GRUB for BIOS: core images made with `grub-mkimage` from grub-pc-bin's modules (everything the
//! menu needs is embedded, so the media carry no i386-pc module directory), and the install of a
//! core image onto a GPT disk image: boot.img in the protective MBR's code area, core.img in the
//! BIOS boot partition — what `grub-install` does, done on an image file.

use crate::build_date::BuildDate;
use crate::tools::{run, tool};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Modules embedded in both BIOS core images (grub-mkimage adds their dependencies).
pub const MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "part_gpt",
    "iso9660",
    "fat",
    "search",
    "search_fs_uuid",
    "normal",
    "linux",
    "serial",
    "terminal",
    "echo",
    "test",
    "configfile",
];

/// Which core image: El Torito (ISO) or disk (USB BIOS boot partition).
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Eltorito,
    Disk,
}

/// Runs grub-mkimage with `early` as the embedded config; returns the image bytes.
pub fn mkimage(
    grub_pc_dir: &Path,
    format: Format,
    early: &str,
    scratch: &Path,
    date: BuildDate,
) -> Result<Vec<u8>> {
    let cfg = scratch.join("early.cfg");
    std::fs::write(&cfg, early).with_context(|| format!("writing {}", cfg.display()))?;
    let out = scratch.join("core.img");
    let target = match format {
        Format::Eltorito => "i386-pc-eltorito",
        Format::Disk => "i386-pc",
    };
    run(tool("grub-mkimage", date)
        .arg("-d")
        .arg(grub_pc_dir)
        .args(["-O", target, "-p", "/boot/grub", "-c"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .args(MODULES))?;
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

// Offsets in boot.img (grub's include/grub/i386/pc/boot.h).
const BPB_START: usize = 0x03;
const BPB_END: usize = 0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const NT_MAGIC: usize = 0x1b8;
/// The first blocklist entry sits at the end of diskboot.img (core.img's first sector):
/// start (u64), len (u16), segment (u16).
const BLOCKLIST: usize = 512 - 12;

/// Makes the MBR and the core image for a disk whose core.img starts at `core_lba`.
/// `mbr` is the disk's current sector 0 (its partition table is kept); returns the new sector 0
/// and the patched core image.
pub fn install(
    boot_img: &[u8],
    mbr: &[u8],
    core: &[u8],
    core_lba: u64,
    room_sectors: u64,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if boot_img.len() != 512 || mbr.len() != 512 {
        bail!("boot.img and the MBR must be 512 bytes");
    }
    let sectors = core.len().div_ceil(512) as u64;
    if sectors < 2 || sectors > room_sectors {
        bail!("core.img is {sectors} sectors; the BIOS boot partition holds {room_sectors}");
    }
    let mut sector0 = boot_img[..NT_MAGIC].to_vec();
    sector0.extend_from_slice(&mbr[NT_MAGIC..]);
    // Keep whatever BPB the disk had (none on a fresh GPT disk), as grub-setup does.
    sector0[BPB_START..BPB_END].copy_from_slice(&mbr[BPB_START..BPB_END]);
    sector0[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    sector0[BOOT_DRIVE] = 0xff;
    // A hard disk: trust no BIOS-provided drive number below 0x80 (grub-setup's workaround).
    sector0[DRIVE_CHECK] = 0x90;
    sector0[DRIVE_CHECK + 1] = 0x90;

    let mut core = core.to_vec();
    core.resize(sectors as usize * 512, 0);
    let len = u16::from_le_bytes([core[BLOCKLIST + 8], core[BLOCKLIST + 9]]) as u64;
    if len != sectors - 1 {
        bail!(
            "core.img blocklist says {len} sectors follow diskboot, the image has {}",
            sectors - 1
        );
    }
    if core[BLOCKLIST - 12..BLOCKLIST].iter().any(|&b| b != 0) {
        bail!("core.img: the blocklist terminator before the first entry is not zero");
    }
    core[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    Ok((sector0, core))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_patches_mbr_and_blocklist() {
        let mut boot = vec![0xAAu8; 512];
        boot[KERNEL_SECTOR] = 1;
        let mut mbr = vec![0u8; 512];
        mbr[0x1be] = 0x00;
        mbr[0x1c2] = 0xee;
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let mut core = vec![0u8; 3 * 512];
        core[BLOCKLIST] = 2;
        core[BLOCKLIST + 8] = 2;
        core[BLOCKLIST + 10..BLOCKLIST + 12].copy_from_slice(&0x820u16.to_le_bytes());
        let (s0, c) = install(&boot, &mbr, &core, 2048, 2048).unwrap();
        assert_eq!(
            &s0[KERNEL_SECTOR..KERNEL_SECTOR + 8],
            &2048u64.to_le_bytes()
        );
        assert_eq!(s0[0x1c2], 0xee);
        assert_eq!(&s0[510..], &[0x55, 0xaa]);
        assert_eq!(&s0[BPB_START..BPB_END], &mbr[BPB_START..BPB_END]);
        assert_eq!(s0[0], 0xAA);
        assert_eq!(&c[BLOCKLIST..BLOCKLIST + 8], &2049u64.to_le_bytes());
        // Too big for the partition; blocklist length mismatch.
        assert!(install(&boot, &mbr, &core, 2048, 2).is_err());
        core[BLOCKLIST + 8] = 5;
        assert!(install(&boot, &mbr, &core, 2048, 2048).is_err());
    }
}
