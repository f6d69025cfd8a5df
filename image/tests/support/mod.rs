//! Shared by the integration tests: a small synthetic kernel package tree (here), and building
//! the boot media and booting them under QEMU TCG (`media`, `qemu`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod media;
pub mod qemu;

use std::path::Path;

pub const VERSION: &str = "9.9.9-test";

/// Writes `root/lib/modules/<VERSION>/` with three fake modules, their modules.dep/alias/builtin
/// (as depmod would have written them), and `root/boot/vmlinuz-<VERSION>`.
pub fn fake_kernel_tree(root: &Path) {
    let dir = root.join("lib/modules").join(VERSION);
    for (rel, body) in [
        ("kernel/drivers/scsi/scsi_mod.ko", "scsi_mod body"),
        (
            "kernel/drivers/scsi/sd_mod.ko",
            "sd_mod body ~Module signature appended~\n",
        ),
        ("kernel/drivers/net/e1000.ko", "not wanted"),
    ] {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    std::fs::write(
        dir.join("modules.dep"),
        "kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko\n\
         kernel/drivers/scsi/scsi_mod.ko:\nkernel/drivers/net/e1000.ko:\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("modules.alias"),
        "alias scsi:t-0x00* sd_mod\nalias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n",
    )
    .unwrap();
    std::fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(
        root.join("boot").join(format!("vmlinuz-{VERSION}")),
        "signed kernel",
    )
    .unwrap();
}
