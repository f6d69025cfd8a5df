//! Software-RAID members (Intel VROC/RST IMSM, SNIA DDF, Linux md 1.0) that carry an ESXi GPT:
//! the volume is smaller than the member, so the GPT looks like a "grown disk" whose backup a
//! repair would move to the end: right over the RAID metadata. They are reported as members and
//! stay byte-identical.

mod common;

use common::*;
use esxi_fixtures::{damage, stamp_raid_member, Damage, Generation, Media, RaidStamp, Spec};

fn member(dir: &std::path::Path, kind: Option<RaidStamp>) -> std::path::PathBuf {
    let f = build_at(
        dir,
        "member.img",
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    );
    // The RAID metadata reserve past the volume's end.
    damage(&f.path, &Damage::Grow(4 << 20)).unwrap();
    if let Some(k) = kind {
        stamp_raid_member(&f.path, k).unwrap();
    }
    f.path.clone()
}

#[test]
fn members_are_reported_and_never_written() {
    for (kind, label) in [
        (RaidStamp::IntelImsm, "Intel IMSM"),
        (RaidStamp::Ddf, "SNIA DDF"),
        (RaidStamp::Md10, "Linux md"),
    ] {
        let dir = tmpdir();
        let img = member(dir.path(), Some(kind));
        let path = img.to_str().unwrap();
        let before = hash(&img);
        let scan = run_ok(&["scan", path]);
        assert!(scan.stdout.contains(label), "{kind:?}: {}", scan.stdout);
        assert!(
            scan.stdout.contains("repair through the RAID volume"),
            "{}",
            scan.stdout
        );
        let r = run(&["repair", path]);
        assert_eq!(r.code, 2, "{kind:?}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("software-RAID member"), "{}", r.stderr);
        assert_eq!(hash(&img), before, "{kind:?}: byte-identical");
        let json = run_ok(&["scan", "--json", path]);
        assert!(json.stdout.contains("\"raid_member\""), "{}", json.stdout);
    }
}

#[test]
fn the_same_disk_without_raid_metadata_is_repaired() {
    // Shows what the members are spared: the backup GPT moves to the end.
    let dir = tmpdir();
    let img = member(dir.path(), None);
    let before = hash(&img);
    let r = run_ok(&["repair", img.to_str().unwrap()]);
    assert!(r.stdout.contains("backup GPT"), "{}", r.stdout);
    assert_ne!(hash(&img), before);
}
