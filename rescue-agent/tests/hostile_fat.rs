//! A bootbank boot sector whose sizes are well-formed but hostile (found by review: FATSz16 0 with
//! a 4 GiB FATSz32 once sized a 4 GiB read): every size is checked against FAT16 and the disk
//! before it sizes a read, so scan and repair finish in bounded memory with a one-line reason.

mod common;

use std::os::unix::fs::FileExt;

use common::*;

#[test]
fn a_fat32_size_in_a_bank_boot_sector_sizes_no_read() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap();
    let at = bank.first_lba * 512;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&f.path)
        .unwrap();
    let patch = |off: u64, bytes: &[u8]| file.write_all_at(bytes, at + off).unwrap();
    patch(11, &512u16.to_le_bytes()); // BytsPerSec
    patch(13, &[64]); // SecPerClus
    patch(16, &[1]); // NumFATs
    patch(17, &512u16.to_le_bytes()); // RootEntCnt
    patch(19, &0u16.to_le_bytes()); // TotSec16
    patch(22, &0u16.to_le_bytes()); // FATSz16
    patch(32, &8_708_641u32.to_le_bytes()); // TotSec32
    patch(36, &8_388_608u32.to_le_bytes()); // FATSz32: 4 GiB
    drop(file);
    let before = hash(&f.path);
    let scan = run_capped(512, &["scan", f.path.to_str().unwrap()]);
    assert_eq!(scan.code, 0, "{}\n{}", scan.stdout, scan.stderr);
    assert!(
        scan.stdout.contains("not a FAT16 volume"),
        "{}",
        scan.stdout
    );
    let r = run_capped(
        512,
        &[
            "repair",
            "--controller",
            "0000:16:00.0",
            f.path.to_str().unwrap(),
        ],
    );
    // The other bank still identifies the disk; the broken one is shown and left alone.
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not a FAT16 volume"), "{}", r.stdout);
    assert_eq!(hash(&f.path), before, "nothing written");
}
