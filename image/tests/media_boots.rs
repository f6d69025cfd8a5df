//! Boots every form of the media under QEMU TCG up to the agent, which must find and repair a
//! damaged ESXi fixture disk on virtio-blk; the disk must scan clean afterwards. Needs
//! scripts/build.sh (out/rescue-agent) and scripts/fetch-debian.sh (out/cache); the media are
//! built once per run into target/media-test/. Each boot prints "BOOT name: agent after N s".

mod support;

use std::path::{Path, PathBuf};
use support::media::{
    damaged_fixture, mdir, partition_info, partition_offset, real_media, scan, scratch_dir,
};
use support::qemu::{Firmware, Run, Vm};

/// A fresh damaged fixture and a scratch dir for one boot.
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    let disk = dir.join("esxi5.img");
    damaged_fixture(&disk);
    (dir, disk)
}

fn check(run: &Run, disk: &Path) {
    run.assert_repaired();
    let after = scan(disk);
    assert!(
        after.contains("no problems found"),
        "after the boot:\n{after}"
    );
    assert!(
        run.kernel_cmdline()
            .contains("console=tty0 console=ttyS0,115200n8"),
        "{}",
        run.kernel_cmdline()
    );
}

/// A writable copy of a built image.
fn copy_of(name: &str, dir: &Path) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(real_media().join(name), &dest).unwrap();
    dest
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn seabios_iso_as_ide_cd() {
    let (dir, disk) = setup("seabios-cd");
    let run = Vm::new("seabios-cd", Firmware::SeaBios, &dir)
        .ide_cd(&real_media().join("esxi-rescue.iso"))
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Booting from DVD/CD"), "{}", run.serial);
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn ovmf_iso_as_usb_cd() {
    let (dir, disk) = setup("ovmf-usb-cd");
    let run = Vm::new("ovmf-usb-cd", Firmware::Ovmf, &dir)
        .usb_cd(&real_media().join("esxi-rescue.iso"))
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Secure boot disabled"));
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn ovmf_secure_boot_iso_as_usb_cd() {
    let (dir, disk) = setup("ovmf-sb-usb-cd");
    let run = Vm::new("ovmf-sb-usb-cd", Firmware::OvmfSecureBoot, &dir)
        .usb_cd(&real_media().join("esxi-rescue.iso"))
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(
        run.serial.contains("Secure boot enabled"),
        "Secure Boot was not on"
    );
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn iso_written_to_a_stick_seabios() {
    let (dir, disk) = setup("seabios-iso-stick");
    let stick = copy_of("esxi-rescue.iso", &dir);
    let run = Vm::new("seabios-iso-stick", Firmware::SeaBios, &dir)
        .usb_stick(&stick)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Booting from Hard Disk"));
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn iso_written_to_a_stick_ovmf_secure_boot() {
    let (dir, disk) = setup("ovmf-sb-iso-stick");
    let stick = copy_of("esxi-rescue.iso", &dir);
    let run = Vm::new("ovmf-sb-iso-stick", Firmware::OvmfSecureBoot, &dir)
        .usb_stick(&stick)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Secure boot enabled"));
}

/// After a boot from the stick, the agent's undo record (.tar) and report (.json) are on the
/// stick's partition named RESCUE (FAT label RESCUE).
fn assert_report_on_rescue_partition(stick: &Path) {
    let info = partition_info(stick, 3);
    assert!(info.contains("Partition name: 'RESCUE'"), "{info}");
    let listing = mdir(stick, partition_offset(stick, 3));
    eprintln!("RESCUE partition after the boot:\n{listing}");
    assert!(
        listing.contains("Volume in drive : is RESCUE"),
        "FAT label: {listing}"
    );
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".tar")),
        "no undo record on RESCUE:\n{listing}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".json")),
        "no report on RESCUE:\n{listing}"
    );
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn usb_image_seabios() {
    let (dir, disk) = setup("seabios-usb");
    let stick = copy_of("esxi-rescue-usb.img", &dir);
    let run = Vm::new("seabios-usb", Firmware::SeaBios, &dir)
        .usb_stick(&stick)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("GRUB loading"), "not GRUB's boot.img");
    assert_report_on_rescue_partition(&stick);
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn usb_image_ovmf() {
    let (dir, disk) = setup("ovmf-usb");
    let stick = copy_of("esxi-rescue-usb.img", &dir);
    let run = Vm::new("ovmf-usb", Firmware::Ovmf, &dir)
        .usb_stick(&stick)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert_report_on_rescue_partition(&stick);
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn ipxe_tftp_seabios() {
    let (dir, disk) = setup("seabios-ipxe");
    let run = Vm::new("seabios-ipxe", Firmware::SeaBios, &dir)
        .pxe(&real_media().join("pxe"), "boot.ipxe", true)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("boot.ipxe... ok"), "not iPXE");
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn secure_boot_firmware_pxe_shim_grubnet() {
    let (dir, disk) = setup("ovmf-sb-pxe");
    let run = Vm::new("ovmf-sb-pxe", Firmware::OvmfSecureBoot, &dir)
        .pxe(&real_media().join("pxe"), "bootx64.efi", false)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Secure boot enabled"));
    assert!(run.serial.contains("PXE"), "not the firmware's PXE");
    assert!(!run.serial.contains("iPXE"), "iPXE ran");
}

#[test]
#[ignore = "boots QEMU; run by scripts/test.sh"]
fn customized_iso_boots_with_the_new_arguments() {
    let (dir, disk) = setup("customized");
    let iso = copy_of("esxi-rescue.iso", &dir);
    let kargs = "console=tty0 console=ttyS0,115200n8 rescue.log=debug rescue.customized=yes";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .arg("customize")
        .arg(&iso)
        .arg("--kargs")
        .arg(kargs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Vm::new("customized", Firmware::OvmfSecureBoot, &dir)
        .usb_cd(&iso)
        .virtio_disk(&disk)
        .run();
    check(&run, &disk);
    assert!(run.serial.contains("Secure boot enabled"));
    assert!(
        run.kernel_cmdline().ends_with(kargs),
        "{}",
        run.kernel_cmdline()
    );
    // The agent saw them: rescue.log=debug lists module loads; the unknown one is reported.
    assert!(run.serial.contains("DEBUG module "), "no debug lines");
    assert!(run
        .serial
        .contains("unknown kernel argument ignored: rescue.customized=yes"));
}
