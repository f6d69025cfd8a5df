//! A bank whose state.tgz is tens of MiB (the benchmark's 64 MiB case, at 12 MiB): the repair
//! writes the new file's data straight to clusters that were free, in steps of at most 4 MiB,
//! all of them before the bank's FAT and directory change; GNU tar and gzip read the result;
//! undo puts the old file back byte for byte.

mod common;

use common::*;
use esxi_fixtures::{inspect_state_tgz, read_bank_file};
use rescue_agent::write_journal::{self, JournalEntry, WRITE_JOURNAL_ENV};

const CONF: &[u8] = b"/adv/Misc/HostName = \"esx01\"\n/device/000:022:00.0/owner = \"passthru\"\n";
const BIG: usize = 12 << 20;
const STEP_LIMIT: usize = 4 << 20;

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_12_mib_state_tgz_goes_to_free_clusters_in_bounded_steps_before_its_fat() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    let big = noise(BIG);
    let old = state_with_local(&[
        member("etc/vmware/esx.conf", tar::EntryType::Regular, CONF, None),
        member("etc/vmware/dvsdata.db", tar::EntryType::Regular, &big, None),
    ]);
    put_state(&f, dir.path(), &old);
    let fat = BankFat::of(&f, 5);
    let journal = dir.path().join("journal");
    let out = agent()
        .env(WRITE_JOURNAL_ENV, &journal)
        .args(["repair", "--controller", "0000:16:00.0"])
        .arg(&f.path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every write into bank 5, in order: its data area, or its FATs and directory.
    let data_start = fat.root + fat.root_bytes;
    let entries = write_journal::parse(&std::fs::read(&journal).unwrap()).unwrap();
    let writes: Vec<(u64, usize)> = entries
        .iter()
        .filter_map(|e| match e {
            JournalEntry::Write { offset, data } => Some((*offset, data.len())),
            JournalEntry::Flush => None,
        })
        .filter(|(at, _)| *at >= fat.part && *at < fat.part + fat.len)
        .collect();
    let data_bytes: usize = (writes.iter())
        .filter(|(at, _)| *at >= data_start)
        .map(|(_, n)| n)
        .sum();
    // The undo record (the old file) and the new state.tgz: two files of about 12 MiB each.
    assert!(data_bytes >= 2 * BIG, "{data_bytes} bytes of data written");
    assert!(
        writes.iter().all(|(_, n)| *n <= STEP_LIMIT),
        "a write of more than 4 MiB: {:?}",
        writes.iter().map(|(_, n)| n).max()
    );
    // Each file's data is complete before the FAT that allocates it: the first write into the
    // FATs comes after the record's data, the second FAT update after the new file's.
    let is_meta = |at: u64| at >= fat.fat && at < data_start;
    let first_meta = writes.iter().position(|(at, _)| is_meta(*at)).unwrap();
    let before_meta: usize = writes[..first_meta].iter().map(|(_, n)| n).sum();
    assert!(
        before_meta >= BIG,
        "{before_meta} bytes before the first FAT write"
    );
    let last_data = writes.iter().rposition(|(at, _)| !is_meta(*at)).unwrap();
    assert!(
        writes[last_data + 1..].iter().all(|(at, _)| is_meta(*at)),
        "data written after the last FAT and directory steps"
    );

    // GNU tar and gzip read the new state.tgz: the owner flipped, the big member unchanged.
    let new = read_bank_file(&f.path, &f, 5, "state.tgz")
        .unwrap()
        .unwrap();
    let view = inspect_state_tgz(&new, dir.path()).unwrap();
    assert!(
        view.esx_conf
            .contains("/device/000:022:00.0/owner = \"vmkernel\""),
        "{}",
        view.esx_conf
    );
    assert!(
        view.local_listing
            .iter()
            .any(|l| l.contains(&BIG.to_string()) && l.ends_with("etc/vmware/dvsdata.db")),
        "{:?}",
        view.local_listing
    );
    // Incompressible layers stay stored: the new file is the old one's size within 1 %.
    assert!(
        new.len().abs_diff(old.len()) * 100 < old.len(),
        "{} vs {}",
        new.len(),
        old.len()
    );
    fsck_vfat_clean(&f.path, fat.part, fat.len);

    run_ok(&["undo", f.path.to_str().unwrap()]);
    let back = read_bank_file(&f.path, &f, 5, "state.tgz")
        .unwrap()
        .unwrap();
    assert!(
        back == old,
        "undo did not put the old state.tgz back byte for byte"
    );
}
