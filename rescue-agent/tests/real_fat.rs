//! The FAT invariant check on real ESXi bytes: the 6.7 installer's boot partition image from
//! shared/fixtures/real (mkdosfs FAT16 with subdirectories; FATs and directories byte for byte,
//! file data zeroed) is sound and clean, and a cut FAT update made on it is found.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::fat_check::{self, FatState};

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/real/esxi67-installer")
        .join(name)
}

fn unpacked(dir: &Path) -> PathBuf {
    let mut gz =
        flate2::read::GzDecoder::new(std::fs::File::open(real("bootpart-meta.img.gz")).unwrap());
    let mut bytes = Vec::new();
    gz.read_to_end(&mut bytes).unwrap();
    let path = dir.join("bootpart.img");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn state(path: &Path) -> FatState {
    let dev = BlockDevice::open(path, Access::ReadOnly).unwrap();
    fat_check::check_bank(&dev, 0).unwrap()
}

#[test]
fn the_real_installer_boot_partition_is_sound_and_a_cut_update_on_it_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = unpacked(dir.path());
    assert_eq!(
        state(&path),
        FatState::Sound(fat_check::FatHealth {
            fats: 2,
            ..Default::default()
        }),
        "mkdosfs's real FAT16 (with subdirectories) is clean"
    );
    // The boot sector: 2 reserved sectors, 32-sector FATs. Mark the last cluster used in the
    // first copy only, as a cut between the two FAT copies of an allocation leaves it.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let fat0 = 2 * 512;
    file.write_all_at(&0xFFFFu16.to_le_bytes(), fat0 + 8000 * 2)
        .unwrap();
    match state(&path) {
        FatState::Sound(h) => {
            assert_eq!(h.lost_clusters, vec![8000]);
            assert_eq!(h.differing_sectors, vec![(8000 * 2 / 512) as u64]);
        }
        other => panic!("{other:?}"),
    }
}
