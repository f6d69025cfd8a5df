//! What must never be written, and what must be refused with a clear one-line reason.

mod common;

use common::*;
use esxi_fixtures::{
    build_foreign, damage, patch_primary_header, read_range, Damage, Foreign, Generation, Media,
    Spec,
};

const GIB: u64 = 1 << 30;

fn foreign_untouched(kind: Foreign) {
    let dir = tmpdir();
    let img = dir.path().join("foreign.img");
    build_foreign(&img, kind, 8 * GIB).unwrap();
    let before = hash(&img);
    let s = img.to_str().unwrap();
    let scan = run_ok(&["scan", s]);
    assert!(
        scan.stdout.contains("not ESXi"),
        "{kind:?}: {}",
        scan.stdout
    );
    for cmd in ["plan", "repair", "undo"] {
        let r = run(&[cmd, s]);
        assert_eq!(
            r.code, 2,
            "{cmd} on {kind:?} must refuse:\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(r.stderr.starts_with("refused: "), "{}", r.stderr);
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "refusal must be one line: {}",
            r.stderr
        );
    }
    assert_eq!(hash(&img), before, "{kind:?} changed");
}

#[test]
fn linux_gpt_untouched() {
    foreign_untouched(Foreign::LinuxGpt);
}
#[test]
fn windows_gpt_untouched() {
    foreign_untouched(Foreign::WindowsGpt);
}
#[test]
fn mbr_only_untouched() {
    foreign_untouched(Foreign::MbrOnly);
}
#[test]
fn blank_untouched() {
    foreign_untouched(Foreign::Blank);
}
#[test]
fn random_bytes_untouched() {
    foreign_untouched(Foreign::RandomBytes);
}
#[test]
fn basic_data_in_slots_5_and_6_without_vmware_header_untouched() {
    foreign_untouched(Foreign::BasicDataInSlots5And6);
}

#[test]
fn healthy_esxi_disk_is_left_alone() {
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "esxi.img",
        &Spec::new(Generation::Esxi6, Media::Disk, 512),
    );
    let before = hash(&f.path);
    let s = f.path.to_str().unwrap();
    let scan = run_ok(&["scan", s]);
    assert!(
        scan.stdout.contains("ESXi 6.x layout") && scan.stdout.contains("no problems"),
        "{}",
        scan.stdout
    );
    let r = run_ok(&["repair", s]);
    assert!(r.stdout.contains("healthy"), "{}", r.stdout);
    assert_eq!(hash(&f.path), before);
}

#[test]
fn scan_reports_two_esxi_disks() {
    let dir = tmpdir();
    let a = build_at(
        dir.path(),
        "a.img",
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    );
    let b = build_at(
        dir.path(),
        "b.img",
        &Spec::new(Generation::Esxi5, Media::Usb, 512),
    );
    let r = run_ok(&[
        "scan",
        "--json",
        a.path.to_str().unwrap(),
        b.path.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let disks = v["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[0]["esxi"]["generation"], "7.x/8.x");
    assert_eq!(disks[1]["esxi"]["generation"], "5.x");
    assert_eq!(disks[1]["esxi"]["media"], "usb");
}

#[test]
fn hostile_primary_headers_are_errors_not_panics() {
    // (field offset, value) with the CRC made valid again, so only the bounds checks stand guard.
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (12, 0u32.to_le_bytes().to_vec()),
        (12, 0xFFFF_FFFFu32.to_le_bytes().to_vec()),
        (84, 0u32.to_le_bytes().to_vec()),
        (84, 1u32.to_le_bytes().to_vec()),
        (84, 0x8000_0000u32.to_le_bytes().to_vec()),
        (80, 0xFFFF_FFFFu32.to_le_bytes().to_vec()),
        (80, 0x0100_0000u32.to_le_bytes().to_vec()),
        (72, u64::MAX.to_le_bytes().to_vec()),
        (72, 1u64.to_le_bytes().to_vec()),
        (32, u64::MAX.to_le_bytes().to_vec()),
        (40, u64::MAX.to_le_bytes().to_vec()),
        (48, 0u64.to_le_bytes().to_vec()),
        (24, 12345u64.to_le_bytes().to_vec()),
    ];
    for (field, value) in cases {
        for fix_crc in [true, false] {
            let dir = tmpdir();
            let f = build_at(
                dir.path(),
                "h.img",
                &Spec::new(Generation::Esxi5, Media::Disk, 512),
            );
            patch_primary_header(&f.path, field, &value, fix_crc).unwrap();
            let s = f.path.to_str().unwrap();
            let scan = run(&["scan", s]);
            assert_eq!(
                scan.code, 0,
                "scan failed on field {field}: {}",
                scan.stderr
            );
            // The backup is intact, so the only sane repair is rebuilding the primary from it.
            let r = run(&["repair", s]);
            assert_eq!(r.code, 0, "field {field}: {}\n{}", r.stdout, r.stderr);
            assert!(
                r.stdout.contains("rebuilt from the backup"),
                "field {field}: {}",
                r.stdout
            );
            assert_sgdisk_clean(&f.path, 512);
        }
    }
}

#[test]
fn both_copies_hostile_is_not_esxi_and_untouched() {
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "h.img",
        &Spec::new(Generation::Esxi7, Media::Usb, 512),
    );
    patch_primary_header(&f.path, 84, &0x8000_0000u32.to_le_bytes(), true).unwrap();
    // Wreck the backup header's signature too.
    let last = f.total_sectors - 1;
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&f.path)
            .unwrap();
        file.write_all_at(b"NOT PART", last * 512).unwrap();
    }
    let before = hash(&f.path);
    let r = run(&["repair", f.path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not an ESXi disk"), "{}", r.stderr);
    assert_eq!(hash(&f.path), before);
}

#[test]
fn undo_refuses_when_the_disk_changed_since() {
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "u.img",
        &Spec::new(Generation::Esxi5, Media::Disk, 512),
    );
    damage(&f.path, &Damage::CompactKeepOrder).unwrap();
    let s = f.path.to_str().unwrap();
    run_ok(&["repair", s]);
    // Someone changes the partition table afterwards (a different disk GUID, CRC fixed).
    patch_primary_header(&f.path, 56, &[0x11; 16], true).unwrap();
    let before = hash(&f.path);
    let r = run(&["undo", s]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("changed since the repair"),
        "{}",
        r.stderr
    );
    assert_eq!(hash(&f.path), before, "a refused undo wrote");
}

#[test]
fn backup_dir_copy_undoes_too() {
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "b.img",
        &Spec::new(Generation::Esxi7, Media::Disk, 4096),
    );
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let damaged = dir.path().join("damaged.img");
    copy_image(&f.path, &damaged);
    let backups = dir.path().join("backups");
    let s = f.path.to_str().unwrap();
    let r = run_ok(&[
        "repair",
        "--json",
        "--backup-dir",
        backups.to_str().unwrap(),
        s,
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let copy = v["applied"]["backup_copies"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(v["applied"]["backup_on_disk"]
        .as_str()
        .unwrap()
        .contains("RSQ00001.TAR"));
    run_ok(&["undo", "--from", &copy, s]);
    // Both GPT copies are back as they were; the on-disk record stays (undo used the copy).
    let ends = |p: &std::path::Path| {
        let tail = (f.total_sectors - 5) * 4096;
        (
            read_range(p, 0, 6 * 4096).unwrap(),
            read_range(p, tail, 5 * 4096).unwrap(),
        )
    };
    assert_eq!(ends(&f.path), ends(&damaged));
    let scan = run_ok(&["scan", "--json", s]);
    assert!(
        scan.stdout.contains("slots_not_canonical"),
        "{}",
        scan.stdout
    );
    // The on-disk record is still there, and it matches the disk again: undo from it refuses
    // as "already undone" instead of writing.
    let again = run(&["undo", s]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already undone"), "{}", again.stderr);
}

#[test]
fn plan_json_lists_exact_writes() {
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "p.img",
        &Spec::new(Generation::Esxi5, Media::Disk, 512),
    );
    damage(&f.path, &Damage::CompactKeepOrder).unwrap();
    let r = run_ok(&["plan", "--json", f.path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // The repair report, as PID 1 keeps it in the bootbank (docs/report.md).
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["front_end"], "cli");
    assert_eq!(v["verdict"], "planned: nothing written");
    assert_eq!(v["esxi_disk"], f.path.to_str().unwrap());
    assert!(v["before"]["problems"].is_array(), "{v}");
    assert!(v["applied"].is_null(), "{v}");
    let changes: Vec<&str> = v["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"slot 4 → 5: bootbank (LBA 8224–520191)"),
        "{changes:?}"
    );
    let targets: Vec<&str> = v["plan"]["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "backup_gpt_array",
            "backup_gpt_header",
            "primary_gpt_array",
            "primary_gpt_header"
        ]
    );
}

#[test]
fn missing_target_is_a_one_line_error() {
    let r = run(&["scan", "/nonexistent/disk.img"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.contains("/nonexistent/disk.img"),
        "{}",
        r.stderr
    );
}
