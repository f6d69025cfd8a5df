//! The hybrid ISO: BIOS through GRUB's El Torito core image (and, written to a stick, through
//! boot_hybrid.img in the MBR), UEFI through shim → Debian's signed GRUB → the signed kernel from
//! an El Torito EFI image that is also MBR partition 2 (the ESP of a stick the ISO was written
//! to). The ISO9660 tree holds the kernel, the initramfs and the one real menu.

use crate::build_date::BuildDate;
use crate::debian_inputs::Inputs;
use crate::fat_image::{self, FatFile, FatSpec};
use crate::grub_bios::{self, Format};
use crate::grub_cfg::{self, Paths};
use crate::stage;
use crate::tools::{run, tool};
use anyhow::{Context, Result};
use std::path::Path;

pub const VOLUME_ID: &str = "ESXI_RESCUE";
pub const FILE_NAME: &str = "esxi-rescue.iso";

#[derive(Debug, Clone, serde::Serialize)]
pub struct IsoReport {
    pub iso_bytes: u64,
    pub efi_img_bytes: u64,
    pub efi_img_free_bytes: u64,
    pub bios_core_bytes: u64,
    pub iso_uuid: String,
}

pub fn build(
    inputs: &Inputs,
    initrd: &Path,
    kargs: &str,
    out: &Path,
    scratch: &Path,
    date: BuildDate,
) -> Result<IsoReport> {
    let root = scratch.join("iso-root");
    let _ = std::fs::remove_dir_all(&root);
    let uuid = date.iso_uuid();

    stage::copy(&inputs.vmlinuz, &root.join("boot/vmlinuz"))?;
    stage::copy(initrd, &root.join("boot/initrd.img"))?;
    let menu = grub_cfg::menu(
        Paths {
            kernel: "/boot/vmlinuz",
            initrd: "/boot/initrd.img",
        },
        kargs,
    )?;
    stage::write(&root.join("boot/grub/grub.cfg"), menu.as_bytes())?;
    let stub = grub_cfg::iso_efi_stub(&uuid);
    stage::write(&root.join("EFI/debian/grub.cfg"), stub.as_bytes())?;
    let core = grub_bios::mkimage(
        &inputs.grub_pc_dir,
        Format::Eltorito,
        &grub_cfg::early(&uuid, "/boot/grub"),
        scratch,
        date,
    )?;
    stage::write(&root.join("boot/grub/eltorito.img"), &core)?;

    let stub_file = scratch.join("efi-stub.cfg");
    stage::write(&stub_file, stub.as_bytes())?;
    let files = efi_files(inputs, &stub_file);
    let efi_img = scratch.join("efi.img");
    let spec = FatSpec {
        label: "ESXI_RESCUE",
        serial: date.serial("iso efi.img"),
        bytes: fat_image::size_for(&files, 256 << 10)?,
        hidden_sectors: 0,
    };
    fat_image::make(&efi_img, &spec, &files, date)?;
    let efi_img_free_bytes = fat_image::free_bytes(&efi_img, date)?;
    stage::set_mtimes(&root, date)?;

    let _ = std::fs::remove_file(out);
    run(tool("xorriso", date)
        .args([
            "-as",
            "mkisofs",
            "-r",
            "-J",
            "-joliet-long",
            "-V",
            VOLUME_ID,
        ])
        .arg(format!(
            "--modification-date={}",
            date.iso_modification_date()
        ))
        .arg("--grub2-mbr")
        .arg(inputs.grub_pc_dir.join("boot_hybrid.img"))
        .args(["-partition_offset", "16", "--mbr-force-bootable"])
        .args(["-append_partition", "2", "0xef"])
        .arg(&efi_img)
        .args(["-c", "boot/boot.cat", "-b", "boot/grub/eltorito.img"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args(["--grub2-boot-info", "-eltorito-alt-boot"])
        .args([
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
        ])
        .arg("-o")
        .arg(out)
        .arg(&root))
    .context("making the ISO")?;
    Ok(IsoReport {
        iso_bytes: len(out)?,
        efi_img_bytes: spec.bytes,
        efi_img_free_bytes,
        bios_core_bytes: core.len() as u64,
        iso_uuid: uuid,
    })
}

/// The removable-media boot path: shim as BOOTX64.EFI with Debian's signed GRUB and MokManager
/// beside it (no fbx64.efi: shim's fallback would create boot entries and reset), and the GRUB
/// config where that GRUB looks (`/EFI/debian`).
pub fn efi_files(inputs: &Inputs, grub_cfg: &Path) -> Vec<FatFile> {
    [
        ("EFI/BOOT/BOOTX64.EFI", &inputs.shim),
        ("EFI/BOOT/grubx64.efi", &inputs.grub_efi),
        ("EFI/BOOT/mmx64.efi", &inputs.mokmanager),
        ("EFI/debian/grub.cfg", &grub_cfg.to_path_buf()),
    ]
    .into_iter()
    .map(|(dest, src)| FatFile {
        dest: dest.into(),
        src: src.clone(),
    })
    .collect()
}

fn len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len())
}
