//! A power cut during the state.tgz switch leaves the complete old or the complete new file, and
//! the next run finishes the job.

mod common;

use common::*;
use esxi_fixtures::read_bank_file;
use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::fat_replace::{replace_root_file_until, Until};

#[test]
fn every_cut_leaves_a_complete_file_and_the_next_run_recovers() {
    for until in [Until::TempWritten, Until::Switched] {
        let dir = tmpdir();
        let f = esxi5_raid_passthru(dir.path());
        let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap().clone();
        let old = read_bank_file(&f.path, &f, 5, "state.tgz")
            .unwrap()
            .unwrap();
        let new: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        {
            let dev = BlockDevice::open(&f.path, Access::ReadWrite).unwrap();
            let (off, len) = (
                bank.first_lba * 512,
                (bank.last_lba - bank.first_lba + 1) * 512,
            );
            replace_root_file_until(&dev, off, len, "state.tgz", &new, until).unwrap();
        }
        let now = read_bank_file(&f.path, &f, 5, "state.tgz")
            .unwrap()
            .unwrap();
        match until {
            Until::TempWritten => {
                assert_eq!(
                    now, old,
                    "cut after the temporary file: the old file must be intact"
                );
                // The volume is consistent: both files complete.
                fsck_vfat_clean(
                    &f.path,
                    bank.first_lba * 512,
                    (bank.last_lba - bank.first_lba + 1) * 512,
                );
            }
            _ => assert_eq!(
                now, new,
                "cut after the switch: the new file must be complete"
            ),
        }
        // The next run (the real repair) cleans up whatever the cut left and succeeds.
        let r = run(&["repair", "--passthru", "all", f.path.to_str().unwrap()]);
        assert!(
            r.code == 0 || r.code == 2,
            "{until:?}: {}\n{}",
            r.stdout,
            r.stderr
        );
        if until == Until::TempWritten {
            assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        }
        let root = read_bank_file(&f.path, &f, 5, "RSQNEW.TMP").unwrap();
        assert!(
            root.is_none(),
            "{until:?}: the temporary file was left behind"
        );
    }
}
