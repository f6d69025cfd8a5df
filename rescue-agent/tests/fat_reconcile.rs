//! A bank left with differing FAT copies or lost clusters (a power cut inside a FAT update) is
//! reconciled before anything else is written, and fsck.vfat then finds it clean; a bank whose
//! first FAT does not match its files is never written.

mod common;

use std::path::Path;

use common::*;
use esxi_fixtures::{damage, Damage, Fixture};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_cut_allocation_is_reconciled_first_and_the_repair_finishes() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let bank = BankFat::of(&f, 5);
    // A three-cluster chain that reached the first FAT only: the cut fell between the two FAT
    // copies of an allocation, before the directory entry.
    let c = bank.free_cluster_near_end(&f.path);
    bank.set(&f.path, 0, c - 2, (c - 1) as u16);
    bank.set(&f.path, 0, c - 1, c as u16);
    bank.set(&f.path, 0, c, 0xFFFF);
    assert_ne!(bank.copy(&f.path, 0), bank.copy(&f.path, 1));

    let scan = run(&["scan", s(&f.path)]);
    assert!(
        scan.stdout
            .contains("FAT copies differ in 1 sector(s), 3 lost cluster(s)"),
        "{}",
        scan.stdout
    );
    let untouched = hash(&f.path);
    let plan = run_ok(&["plan", "--controller", "0000:16:00.0", s(&f.path)]);
    assert!(
        plan.stdout.contains("bootbank slot 5: FAT reconciled"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("bootbank slot 5 FAT sector LBA"),
        "{}",
        plan.stdout
    );
    assert_eq!(hash(&f.path), untouched, "plan writes nothing");

    let r = run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    // The record went to the other bank: a bank with a FAT to reconcile takes no new file.
    assert!(
        r.stdout.contains("undo record: bootbank slot 6"),
        "{}",
        r.stdout
    );
    assert_eq!(bank.copy(&f.path, 0), bank.copy(&f.path, 1));
    for slot in [5, 6] {
        let b = BankFat::of(&f, slot);
        fsck_vfat_clean(&f.path, b.part, b.len);
    }
    let again = run_ok(&["scan", s(&f.path)]);
    assert!(!again.stdout.contains("FAT"), "{}", again.stdout);
    assert_sgdisk_clean(&f.path, 512);
}

#[test]
fn a_cut_free_in_one_copy_is_finished_on_a_healthy_disk() {
    // Nothing else wrong: the FAT reconciliation is the whole repair.
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    let bank = BankFat::of(&f, 6);
    // The second copy freed a cluster chain the first still marks used.
    let c = bank.free_cluster_near_end(&f.path);
    bank.set(&f.path, 0, c - 1, c as u16);
    bank.set(&f.path, 0, c, 0xFFFF);
    let r = run_ok(&["repair", s(&f.path)]);
    assert!(
        r.stdout.contains("bootbank slot 6: FAT reconciled"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2 lost cluster(s) freed"), "{}", r.stdout);
    fsck_vfat_clean(&f.path, bank.part, bank.len);
    let r = run_ok(&["repair", s(&f.path)]);
    assert!(r.stdout.contains("healthy"), "{}", r.stdout);
}

#[test]
fn a_first_fat_that_does_not_match_its_files_is_never_written() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let bank = BankFat::of(&f, 5);
    // Cut a module file's chain short in the first FAT: its size says more clusters.
    let (name, first, _) = bank
        .files(&f.path)
        .into_iter()
        .filter(|(n, _, _)| n != b"STATE   TGZ")
        .max_by_key(|(_, _, size)| *size)
        .unwrap();
    assert!(
        bank.copy(&f.path, 0)[first as usize * 2..first as usize * 2 + 2] != [0xFF, 0xFF],
        "{} spans more than one cluster",
        String::from_utf8_lossy(&name)
    );
    bank.set(&f.path, 0, u64::from(first), 0xFFFF);
    let before = hash(&f.path);
    let r = run(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("bootbank slot 5: its FAT does not match its files"),
        "{}",
        r.stderr
    );
    assert_eq!(hash(&f.path), before, "nothing written");

    // The partition table alone can still be repaired; the bank gets neither the record nor
    // any other write.
    let bank5 = esxi_fixtures::read_range(&f.path, bank.part, bank.len as usize).unwrap();
    let r = run_ok(&["repair", "--passthru", "none", s(&f.path)]);
    assert!(
        r.stdout.contains("undo record: bootbank slot 6"),
        "{}",
        r.stdout
    );
    assert_eq!(
        esxi_fixtures::read_range(&f.path, bank.part, bank.len as usize).unwrap(),
        bank5,
        "bank 5 byte-identical"
    );
    assert_sgdisk_clean(&f.path, 512);
}

#[test]
fn undo_waits_for_a_bank_to_be_reconciled() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    let original = read_state(&f);
    run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    let bank = BankFat::of(&f, 5);
    let c = bank.free_cluster_near_end(&f.path);
    bank.set(&f.path, 1, c, 0xFFFF);
    let before = hash(&f.path);
    let r = run(&["undo", s(&f.path)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("bootbank slot 5: its FAT needs reconciling first"),
        "{}",
        r.stderr
    );
    assert_eq!(hash(&f.path), before, "nothing written");
    let r = run_ok(&["repair", "--passthru", "none", s(&f.path)]);
    assert!(r.stdout.contains("FAT reconciled"), "{}", r.stdout);
    run_ok(&["undo", s(&f.path)]);
    assert_eq!(
        read_state(&f),
        original,
        "the configuration is back as it was"
    );
    fsck_vfat_clean(&f.path, bank.part, bank.len);
}

fn read_state(f: &Fixture) -> Vec<u8> {
    esxi_fixtures::read_bank_file(&f.path, f, 5, "state.tgz")
        .unwrap()
        .unwrap()
}
