//! The USB stick image: a GPT disk with
//!   1. a BIOS boot partition holding GRUB's core image (boot.img in the protective MBR jumps
//!      there: what grub-install does on a GPT disk),
//!   2. the ESP: shim → Debian's signed GRUB → signed kernel, the menu, kernel and initramfs,
//!   3. a writable FAT partition whose GPT name and FAT label are both `RESCUE`: the agent keeps
//!      its reports and undo records there when it booted from this stick.

use crate::build_date::BuildDate;
use crate::debian_inputs::Inputs;
use crate::fat_image::{self, FatFile, FatSpec};
use crate::grub_bios::{self, Format};
use crate::grub_cfg::{self, Paths};
use crate::iso::efi_files;
use crate::stage;
use crate::tools::{run, tool};
use anyhow::{Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const FILE_NAME: &str = "esxi-rescue-usb.img";
/// GPT name and FAT label of the writable partition; the agent looks for this name.
pub const RESCUE_LABEL: &str = "RESCUE";
const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
const BIOS_BOOT_LBA: u64 = 2048;
const BIOS_BOOT_SECTORS: u64 = 2048;
const ESP_LBA: u64 = BIOS_BOOT_LBA + BIOS_BOOT_SECTORS;
/// Size of the RESCUE partition: room for many reports and undo records.
pub const RESCUE_BYTES: u64 = 64 * MIB;
/// Free space left in the ESP (a larger initramfs, a customized menu).
const ESP_SLACK: u64 = 6 * MIB;

#[derive(Debug, Clone, serde::Serialize)]
pub struct UsbReport {
    pub image_bytes: u64,
    pub esp_bytes: u64,
    pub esp_free_bytes: u64,
    pub rescue_bytes: u64,
    pub rescue_offset: u64,
    pub bios_core_bytes: u64,
}

pub fn build(
    inputs: &Inputs,
    initrd: &Path,
    kargs: &str,
    out: &Path,
    scratch: &Path,
    date: BuildDate,
) -> Result<UsbReport> {
    let esp_serial = date.serial("usb esp");
    let menu = grub_cfg::menu(
        Paths {
            kernel: "/boot/vmlinuz",
            initrd: "/boot/initrd.img",
        },
        kargs,
    )?;
    let menu_file = scratch.join("usb-grub.cfg");
    stage::write(&menu_file, menu.as_bytes())?;
    let mut files = efi_files(inputs, &menu_file);
    for (dest, src) in [
        ("boot/vmlinuz", &inputs.vmlinuz),
        ("boot/initrd.img", &initrd.to_path_buf()),
    ] {
        files.push(FatFile {
            dest: dest.into(),
            src: src.clone(),
        });
    }
    let esp_bytes = fat_image::size_for(&files, ESP_SLACK)?.div_ceil(MIB) * MIB;
    let esp_img = scratch.join("esp.img");
    fat_image::make(
        &esp_img,
        &FatSpec {
            label: "ESXI_RESCUE",
            serial: esp_serial,
            bytes: esp_bytes,
            hidden_sectors: ESP_LBA,
        },
        &files,
        date,
    )?;
    let esp_free_bytes = fat_image::free_bytes(&esp_img, date)?;

    let rescue_lba = ESP_LBA + esp_bytes / SECTOR;
    let readme = scratch.join("rescue-readme.txt");
    stage::write(
        &readme,
        b"esxi-rescue keeps its reports (RSQnnnnn.JSN) and undo records (RSQnnnnn.TAR)\r\n\
          on this partition when it was booted from this stick. See docs/media.md.\r\n",
    )?;
    let rescue_img = scratch.join("rescue.img");
    fat_image::make(
        &rescue_img,
        &FatSpec {
            label: RESCUE_LABEL,
            serial: date.serial("usb rescue"),
            bytes: RESCUE_BYTES,
            hidden_sectors: rescue_lba,
        },
        &[FatFile {
            dest: "README.TXT".into(),
            src: readme,
        }],
        date,
    )?;

    // Disk: partitions, then 1 MiB for the backup GPT.
    let rescue_end = rescue_lba + RESCUE_BYTES / SECTOR;
    let total = (rescue_end * SECTOR) + MIB;
    let tmp = scratch.join("usb.img");
    let _ = std::fs::remove_file(&tmp);
    File::create(&tmp)
        .and_then(|f| f.set_len(total))
        .with_context(|| format!("creating {}", tmp.display()))?;
    run(tool("sgdisk", date)
        .arg(format!("--disk-guid={}", date.guid("usb disk")))
        .arg(format!("--new=1:{BIOS_BOOT_LBA}:{}", ESP_LBA - 1))
        .args(["--typecode=1:EF02", "--change-name=1:BIOS boot"])
        .arg(format!("--partition-guid=1:{}", date.guid("usb bios boot")))
        .arg(format!("--new=2:{ESP_LBA}:{}", rescue_lba - 1))
        .args(["--typecode=2:EF00", "--change-name=2:EFI system partition"])
        .arg(format!("--partition-guid=2:{}", date.guid("usb esp")))
        .arg(format!("--new=3:{rescue_lba}:{}", rescue_end - 1))
        .arg("--typecode=3:0700")
        .arg(format!("--change-name=3:{RESCUE_LABEL}"))
        .arg(format!("--partition-guid=3:{}", date.guid("usb rescue")))
        .arg(&tmp))
    .context("writing the USB image's GPT")?;

    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tmp)
        .with_context(|| format!("opening {}", tmp.display()))?;
    copy_in(&disk, &esp_img, ESP_LBA * SECTOR)?;
    copy_in(&disk, &rescue_img, rescue_lba * SECTOR)?;

    let core = grub_bios::mkimage(
        &inputs.grub_pc_dir,
        Format::Disk,
        &grub_cfg::early(&grub_cfg_uuid(esp_serial), "/EFI/debian"),
        scratch,
        date,
    )?;
    let boot_img =
        std::fs::read(inputs.grub_pc_dir.join("boot.img")).context("reading boot.img")?;
    let mut mbr = vec![0u8; 512];
    disk.read_exact_at(&mut mbr, 0).context("reading the MBR")?;
    let (sector0, core_img) =
        grub_bios::install(&boot_img, &mbr, &core, BIOS_BOOT_LBA, BIOS_BOOT_SECTORS)?;
    disk.write_all_at(&sector0, 0).context("writing the MBR")?;
    disk.write_all_at(&core_img, BIOS_BOOT_LBA * SECTOR)
        .context("writing core.img")?;
    disk.sync_all().context("syncing the USB image")?;
    drop(disk);
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    Ok(UsbReport {
        image_bytes: total,
        esp_bytes,
        esp_free_bytes,
        rescue_bytes: RESCUE_BYTES,
        rescue_offset: rescue_lba * SECTOR,
        bios_core_bytes: core.len() as u64,
    })
}

fn grub_cfg_uuid(serial: u32) -> String {
    crate::build_date::fat_serial_text(serial)
}

fn copy_in(disk: &File, part: &Path, offset: u64) -> Result<()> {
    let data = std::fs::read(part).with_context(|| format!("reading {}", part.display()))?;
    disk.write_all_at(&data, offset)
        .with_context(|| format!("writing {} into the USB image", part.display()))
}
