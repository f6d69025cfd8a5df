//! A bank left with differing FAT copies or lost clusters (a power cut inside a FAT update) is
//! reconciled before anything else is written, and fsck.vfat then finds it clean; a bank whose
//! first FAT does not match its files is never written.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use esxi_fixtures::{damage, Damage, Fixture};

/// Where one bank's FAT16 structures are, in bytes from the start of the image.
struct BankFat {
    fat: u64,
    fat_bytes: u64,
    root: u64,
    root_bytes: u64,
    part: u64,
    len: u64,
    /// Data clusters the boot sector declares.
    clusters: u64,
}

impl BankFat {
    fn of(f: &Fixture, slot: u32) -> BankFat {
        let p = f.partitions.iter().find(|p| p.slot == slot).unwrap();
        let part = p.first_lba * 512;
        let bs = esxi_fixtures::read_range(&f.path, part, 512).unwrap();
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([bs[o], bs[o + 1]]));
        let (bps, spc, reserved, fats, root_entries, fat_sz) = (
            u16_at(11),
            u64::from(bs[13]),
            u16_at(14),
            u64::from(bs[16]),
            u16_at(17),
            u16_at(22),
        );
        let fat = part + reserved * bps;
        let total = match u16_at(19) {
            0 => u64::from(u32::from_le_bytes(bs[32..36].try_into().unwrap())),
            n => n,
        } * bps;
        let data = reserved * bps + fats * fat_sz * bps + root_entries * 32;
        BankFat {
            clusters: (total - data) / (spc * bps),
            fat,
            fat_bytes: fat_sz * bps,
            root: fat + fats * fat_sz * bps,
            root_bytes: root_entries * 32,
            part,
            len: (p.last_lba - p.first_lba + 1) * 512,
        }
    }

    fn copy(&self, path: &Path, n: u64) -> Vec<u8> {
        esxi_fixtures::read_range(path, self.fat + n * self.fat_bytes, self.fat_bytes as usize)
            .unwrap()
    }

    fn set(&self, path: &Path, copy: u64, cluster: u64, value: u16) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let at = self.fat + copy * self.fat_bytes + cluster * 2;
        file.write_all_at(&value.to_le_bytes(), at).unwrap();
    }

    /// (first cluster, size) of every file in the root directory, by 8.3 name.
    fn files(&self, path: &Path) -> Vec<([u8; 11], u16, u32)> {
        let root = esxi_fixtures::read_range(path, self.root, self.root_bytes as usize).unwrap();
        root.chunks(32)
            .take_while(|e| e[0] != 0)
            .filter(|e| e[0] != 0xE5 && e[11] & 0x18 == 0 && e[11] != 0x0F)
            .map(|e| {
                (
                    e[..11].try_into().unwrap(),
                    u16::from_le_bytes([e[26], e[27]]),
                    u32::from_le_bytes(e[28..32].try_into().unwrap()),
                )
            })
            .collect()
    }

    /// The highest cluster still free in the first FAT.
    fn free_cluster_near_end(&self, path: &Path) -> u64 {
        let fat = self.copy(path, 0);
        (2..self.clusters + 2)
            .rev()
            .find(|&c| fat[c as usize * 2..c as usize * 2 + 2] == [0, 0])
            .unwrap()
    }
}

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
