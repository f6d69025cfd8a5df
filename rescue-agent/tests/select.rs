//! `select::choose` over identification probes of synthetic disks: none, one, several, and two
//! paths of one multipath LUN.

use std::path::{Path, PathBuf};

use esxi_fixtures::{build, build_foreign, Foreign, Generation, Media, Spec};
use rescue_agent::machine::sysfs::DiskIdentity;
use rescue_agent::probe;
use rescue_agent::select::{choose, Candidate, Choice};

fn candidate(path: &str, image: &Path, wwn: Option<&str>) -> Candidate {
    Candidate {
        path: PathBuf::from(path),
        identity: wwn.map(|w| DiskIdentity {
            name: path.trim_start_matches("/dev/").into(),
            device_path: PathBuf::new(),
            pci: None,
            serial: None,
            wwn: Some(w.into()),
            model: None,
            by_path: None,
            size_bytes: None,
        }),
        probe: Some(probe::identify_path(image).unwrap()),
        error: None,
    }
}

#[test]
fn none_one_many_and_one_lun_through_two_paths() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::new(Generation::Esxi6, Media::Disk, 512);
    let esxi = build(&dir.path().join("esxi.img"), &spec).unwrap().path;
    let other = build(
        &dir.path().join("other.img"),
        &Spec::new(Generation::Esxi5, Media::Disk, 512),
    )
    .unwrap()
    .path;
    let linux = dir.path().join("linux.img");
    build_foreign(&linux, Foreign::LinuxGpt, 256 << 20).unwrap();

    assert_eq!(choose(&[candidate("/dev/sdc", &linux, None)]), Choice::None);
    assert_eq!(
        choose(&[
            candidate("/dev/sdc", &linux, None),
            candidate("/dev/sda", &esxi, None)
        ]),
        Choice::One {
            target: "/dev/sda".into(),
            paths: vec!["/dev/sda".into()],
            lun_key: None
        }
    );
    assert_eq!(
        choose(&[
            candidate("/dev/sda", &esxi, None),
            candidate("/dev/sdb", &other, None)
        ]),
        Choice::Many(vec!["/dev/sda".into(), "/dev/sdb".into()])
    );
    // The same LUN seen twice (same WWN, size and disk GUID): one disk, written through sda.
    let wwn = Some("naa.600508b1001c4d2f");
    assert_eq!(
        choose(&[
            candidate("/dev/sda", &esxi, wwn),
            candidate("/dev/sdb", &esxi, wwn)
        ]),
        Choice::One {
            target: "/dev/sda".into(),
            paths: vec!["/dev/sda".into(), "/dev/sdb".into()],
            lun_key: Some("naa.600508b1001c4d2f".into())
        }
    );
    // One WWN but different disks behind it (a clone restored elsewhere): not merged.
    assert!(matches!(
        choose(&[
            candidate("/dev/sda", &esxi, wwn),
            candidate("/dev/sdb", &other, wwn)
        ]),
        Choice::Many(_)
    ));
}
