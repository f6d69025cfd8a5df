//! The rescue USB stick's RESCUE partition takes copies of undo records and reports.

mod common;

use std::process::Command;

use common::*;
use rescue_agent::backup_sink::{BackupSink, RescuePartition};

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn copies_land_on_the_rescue_partition_and_fsck_stays_clean() {
    let dir = tmpdir();
    let img = dir.path().join("usb.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    // An ESP and a FAT partition named RESCUE, as the USB image has them.
    sh(Command::new("sgdisk")
        .args(["-n", "1:2048:+64M", "-t", "1:ef00", "-c", "1:ESP"])
        .args(["-n", "2:0:0", "-t", "2:0700", "-c", "2:RESCUE"])
        .arg(&img));
    let start2 = 2048 + 64 * 2048;
    let sectors = (256 << 20) / 512 - start2 - 34;
    sh(Command::new("mkfs.fat")
        .args(["-F", "32", "-n", "RESCUE", "--offset", &start2.to_string()])
        .arg(&img)
        .arg((sectors / 2).to_string()));
    let other = dir.path().join("other.img");
    std::fs::File::create(&other)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();

    let found = RescuePartition::find(&[other.clone(), img.clone()]).expect("RESCUE found");
    assert_eq!(found.disk, img);
    assert_eq!(found.first_lba, start2);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let at = found.save("esxi-rescue-test.tar", &data).unwrap();
    assert!(at.contains("RESCUE partition"), "{at}");
    found
        .save("esxi-rescue-report-1.json", b"{\"ok\":true}")
        .unwrap();

    // mtools reads both back; fsck.vfat is clean.
    let out = Command::new("mtype")
        .args([
            "-i",
            &format!("{}@@{}", img.display(), start2 * 512),
            "::esxi-rescue-test.tar",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    fsck_vfat_clean(&img, start2 * 512, sectors / 2 * 1024);
    assert!(RescuePartition::find(&[other]).is_none());
}
