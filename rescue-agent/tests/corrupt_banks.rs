//! Damaged bootbank file systems (random bytes in the boot sector, FATs, root directory, or a
//! looped cluster chain) give errors or "not ESXi", never a panic or a hang.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use rescue_agent::bank_config::PolicyContext;
use rescue_agent::probe;

/// xorshift: deterministic, no dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn random_damage_in_bank_metadata_never_panics() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap().clone();
    let work = dir.path().join("work.img");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..150 {
        copy_image(&f.path, &work);
        let file = std::fs::OpenOptions::new().write(true).open(&work).unwrap();
        // Hit the boot sector, the FATs and the root directory of bank 5 (first 300 KiB).
        for _ in 0..(1 + rng(&mut seed) % 24) {
            let off = bank.first_lba * 512 + rng(&mut seed) % (300 << 10);
            let off = if round % 3 == 0 {
                bank.first_lba * 512 + off % 64
            } else {
                off
            };
            file.write_all_at(&[rng(&mut seed) as u8], off).unwrap();
        }
        drop(file);
        let result = std::panic::catch_unwind(|| {
            let _ = probe::probe_path(&work, &PolicyContext::default());
        });
        assert!(result.is_ok(), "round {round}: probe panicked");
        let r = run(&["scan", work.to_str().unwrap()]);
        assert!(r.code == 0 || r.code == 1, "round {round}: {}", r.stderr);
    }
}

#[test]
fn looped_state_tgz_chain_is_an_error_not_a_hang() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap().clone();
    let part = bank.first_lba * 512;
    let bs = esxi_fixtures::read_range(&f.path, part, 512).unwrap();
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([bs[o], bs[o + 1]]));
    let (bps, reserved, fats, root_entries, fat_sz) = (
        u16_at(11),
        u16_at(14),
        u64::from(bs[16]),
        u16_at(17),
        u16_at(22),
    );
    let fat = part + reserved * bps;
    let root = fat + fats * fat_sz * bps;
    let dirents = esxi_fixtures::read_range(&f.path, root, (root_entries * 32) as usize).unwrap();
    let entry = dirents
        .chunks(32)
        .position(|e| &e[..11] == b"STATE   TGZ")
        .expect("state.tgz in the root directory");
    let first = u16::from_le_bytes([dirents[entry * 32 + 26], dirents[entry * 32 + 27]]);
    // Point the file's first cluster at itself in both FATs.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&f.path)
        .unwrap();
    for copy in 0..fats {
        let at = fat + copy * fat_sz * bps + u64::from(first) * 2;
        file.write_all_at(&first.to_le_bytes(), at).unwrap();
    }
    drop(file);
    let before = hash(&f.path);
    let r = run(&[
        "repair",
        "--controller",
        "0000:16:00.0",
        f.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("loops"), "{}", r.stderr);
    assert_eq!(hash(&f.path), before);
}
