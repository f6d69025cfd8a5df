//! Power cuts at every point of a repair, replayed from the agent's own write journal.
//!
//! The repair runs once with `RESCUE_AGENT_WRITE_JOURNAL` set. Its writes, split at the flushes
//! into epochs, are then replayed onto the original disk: every prefix, and within each epoch
//! (where a drive may persist writes in any order) subsets — all of them for small epochs,
//! otherwise each one left out and each tail — plus each multi-sector write torn in half.
//! Every such disk must boot the old or the new state (a valid GPT that is the old or the new
//! table, every bank's first FAT matching its files, state.tgz the old or the complete new
//! file, boot.cfg untouched), and a second run must finish the whole repair: the new table,
//! the new configuration, identical FAT copies, no lost clusters and a clean `fsck.vfat -n`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use esxi_fixtures::{
    damage, dump_store, inspect_state_tgz, BankSpec, ConfigFlavor, ConfigSpec, Damage, Fixture,
    Generation, Media, OwnerSpec, Spec, StorePciRow,
};
use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::fat_check::{self, FatState};
use rescue_agent::fat_replace::{read_root_file, replace_root_file_until, Until};
use rescue_agent::gpt::{self, EntryArray};
use rescue_agent::write_journal::{self, JournalEntry, WRITE_JOURNAL_ENV};

type Write = (u64, Vec<u8>);
/// A bank's state.tgz and boot.cfg, when readable.
type BankFiles = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What a disk reads as: the table it boots from and each bank's files.
#[derive(Clone, Debug, PartialEq)]
struct Reading {
    table: Option<EntryArray>,
    /// Per bank (slot order): state.tgz and boot.cfg.
    banks: Vec<BankFiles>,
}

fn bank_offsets(f: &Fixture) -> Vec<(u32, u64, u64)> {
    f.partitions
        .iter()
        .filter(|p| p.slot == 5 || p.slot == 6)
        .map(|p| {
            (
                p.slot,
                p.first_lba * 512,
                (p.last_lba - p.first_lba + 1) * 512,
            )
        })
        .collect()
}

fn read(f: &Fixture) -> Reading {
    let dev = BlockDevice::open(&f.path, Access::ReadOnly).unwrap();
    let table = gpt::read_disk_gpt(&dev)
        .unwrap()
        .source()
        .map(|c| c.array.clone());
    let banks = bank_offsets(f)
        .iter()
        .map(|&(_, off, _)| {
            let file = |name| read_root_file(&dev, off, name, 96 << 20).ok().flatten();
            (file("state.tgz"), file("boot.cfg"))
        })
        .collect();
    Reading { table, banks }
}

fn fat_states(f: &Fixture) -> Vec<(u32, FatState)> {
    let dev = BlockDevice::open(&f.path, Access::ReadOnly).unwrap();
    bank_offsets(f)
        .iter()
        .map(|&(slot, off, _)| (slot, fat_check::check_bank(&dev, off).unwrap()))
        .collect()
}

fn repair(f: &Fixture, args: &[&str], journal: &Path) -> Run {
    let _ = std::fs::remove_file(journal);
    let out = agent()
        .env(WRITE_JOURNAL_ENV, journal)
        .arg("repair")
        .args(args)
        .arg(&f.path)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The journal's writes split at its flushes (no journal: the run wrote nothing).
fn epochs(journal: &Path) -> Vec<Vec<Write>> {
    let bytes = std::fs::read(journal).unwrap_or_default();
    let entries = write_journal::parse(&bytes).unwrap();
    let mut out = vec![Vec::new()];
    for e in entries {
        match e {
            JournalEntry::Write { offset, data } => out.last_mut().unwrap().push((offset, data)),
            JournalEntry::Flush => out.push(Vec::new()),
        }
    }
    out.retain(|e| !e.is_empty());
    out
}

/// The disks a cut can leave: lists of writes to put onto the original disk, in order.
fn cut_states(epochs: &[Vec<Write>]) -> Vec<(String, Vec<Write>)> {
    let mut out: Vec<(String, Vec<Write>)> = Vec::new();
    let mut base: Vec<Write> = Vec::new();
    for (e, whole) in epochs.iter().enumerate() {
        // A drive persists sectors, not writes: small writes (metadata) are cut per sector.
        let epoch: Vec<Write> = whole
            .iter()
            .flat_map(|(offset, data)| {
                let per_sector = data.len() <= 8 * 512;
                let unit = if per_sector { 512 } else { data.len() };
                data.chunks(unit)
                    .enumerate()
                    .map(move |(i, c)| (offset + (i * unit) as u64, c.to_vec()))
            })
            .collect();
        let n = epoch.len();
        let mut subsets: BTreeSet<Vec<usize>> = BTreeSet::new();
        if n <= 4 {
            for mask in 0..(1u32 << n) - 1 {
                subsets.insert((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        } else {
            // Large epochs are a file's data clusters: every eighth cut point, and the last.
            let step = n.div_ceil(8);
            for k in (0..n).step_by(step).chain([n - 1]) {
                subsets.insert((0..k).collect()); // prefix
                subsets.insert((0..n).filter(|&i| i != k).collect()); // one left out
                subsets.insert((k + 1..n).collect()); // tail
            }
        }
        for subset in subsets {
            let mut disk = base.clone();
            disk.extend(subset.iter().map(|&i| epoch[i].clone()));
            out.push((format!("epoch {e}, writes {subset:?} of {n}"), disk));
        }
        for (i, (offset, data)) in epoch.iter().enumerate() {
            let sectors = data.len() / 512;
            if sectors > 1 && n <= 8 {
                let mut disk = base.clone();
                disk.extend(epoch[..i].iter().cloned());
                disk.push((*offset, data[..sectors / 2 * 512].to_vec()));
                out.push((
                    format!("epoch {e}, write {i} torn after {} sectors", sectors / 2),
                    disk,
                ));
            }
        }
        base.extend(epoch.iter().cloned());
    }
    out.push(("after the last flush".into(), base));
    out
}

/// The same configuration: the same bytes, or (a ConfigStore's triggers stamp ModifiedTime
/// with the clock) the same esx.conf, members and store rows apart from ModifiedTime.
fn same_config(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>, dir: &Path) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return a == b;
    };
    if a == b {
        return true;
    }
    let view = |bytes: &[u8], sub: &str| {
        let work = dir.join(sub);
        let v = inspect_state_tgz(bytes, &work).unwrap();
        let store = v.configstore.as_ref().map(|db| {
            let mut d = dump_store(db, &work).unwrap();
            for row in d.tables.get_mut("Config").into_iter().flatten() {
                row[4] = serde_json::Value::Null; // ModifiedTime
            }
            d.tables
        });
        (v.esx_conf, v.state_members, v.encrypted, store)
    };
    view(a, "view-a") == view(b, "view-b")
}

struct Disk<'a> {
    f: &'a Fixture,
    pristine: std::fs::File,
    work: std::fs::File,
    /// Byte ranges any run wrote since the disk was last put back.
    touched: Vec<(u64, usize)>,
}

impl Disk<'_> {
    fn put_back(&mut self) {
        for (offset, len) in self.touched.drain(..) {
            let mut buf = vec![0u8; len];
            self.pristine.read_exact_at(&mut buf, offset).unwrap();
            self.work.write_all_at(&buf, offset).unwrap();
        }
    }
    fn apply(&mut self, writes: &[Write]) {
        for (offset, data) in writes {
            self.work.write_all_at(data, *offset).unwrap();
            self.touched.push((*offset, data.len()));
        }
        self.work.sync_data().unwrap();
    }
    fn touched_by(&mut self, journal: &Path) {
        for epoch in epochs(journal) {
            self.touched
                .extend(epoch.iter().map(|(o, d)| (*o, d.len())));
        }
    }
    fn path(&self) -> &Path {
        &self.f.path
    }
}

fn replay(name: &str, f: &Fixture, args: &[&str]) {
    let dir = f.path.parent().unwrap();
    let pristine_path = dir.join("pristine.img");
    copy_image(&f.path, &pristine_path);
    let old = read(f);
    let j1 = dir.join("first.journal");
    let r = repair(f, args, &j1);
    assert_eq!(
        r.code, 0,
        "{name}: the uncut repair:\n{}\n{}",
        r.stdout, r.stderr
    );
    let new = read(f);
    assert_ne!(old.table, new.table, "{name}: the scenario repairs the GPT");
    assert_ne!(
        old.banks, new.banks,
        "{name}: the scenario repairs a configuration"
    );
    let epochs = epochs(&j1);
    let states = cut_states(&epochs);
    eprintln!(
        "{name}: {} writes in {} flush epochs; {} cut states",
        epochs.iter().map(Vec::len).sum::<usize>(),
        epochs.len(),
        states.len()
    );

    let mut disk = Disk {
        f,
        pristine: std::fs::File::open(&pristine_path).unwrap(),
        work: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&f.path)
            .unwrap(),
        touched: Vec::new(),
    };
    disk.touched_by(&j1);
    let j2 = dir.join("second.journal");
    for (label, writes) in &states {
        disk.put_back();
        disk.apply(writes);
        let what = format!("{name}, cut at {label}");

        // It boots the old or the new state.
        let now = read(f);
        assert!(now.table.is_some(), "{what}: no valid GPT copy");
        assert!(
            now.table == old.table || now.table == new.table,
            "{what}: the GPT ESXi boots from is neither the old nor the new table"
        );
        for (i, (state, boot_cfg)) in now.banks.iter().enumerate() {
            assert_eq!(*boot_cfg, old.banks[i].1, "{what}: bank {i} boot.cfg");
            assert!(
                *state == old.banks[i].0 || *state == new.banks[i].0,
                "{what}: bank {i} state.tgz is neither the old nor the complete new file"
            );
        }
        for (slot, state) in fat_states(f) {
            assert!(
                matches!(state, FatState::Sound(_)),
                "{what}: bootbank slot {slot}: first FAT does not match the files: {state:?}"
            );
        }

        // The next run finishes the repair.
        let r = repair(f, args, &j2);
        disk.touched_by(&j2);
        assert_eq!(r.code, 0, "{what}: second run:\n{}\n{}", r.stdout, r.stderr);
        let done = read(f);
        assert_eq!(done.table, new.table, "{what}: second run: the table");
        for (i, (state, _)) in done.banks.iter().enumerate() {
            assert!(
                same_config(state, &new.banks[i].0, dir),
                "{what}: second run: bank {i} state.tgz is not the repaired configuration\n{}",
                r.stdout
            );
        }
        for (slot, state) in fat_states(f) {
            assert!(
                state.is_clean(),
                "{what}: second run: bootbank slot {slot}: {state:?}"
            );
        }
        for (_, off, len) in bank_offsets(f) {
            fsck_vfat_clean(disk.path(), off, len);
        }
    }
    disk.put_back();
    assert_eq!(read(f), old, "{name}: the disk was put back between cuts");
}

#[test]
fn every_cut_of_a_plain_esxi5_repair_boots_and_the_next_run_finishes() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    damage(&f.path, &Damage::CompactSorted).unwrap();
    replay("ESXi 5.5 plain", &f, &["--controller", "0000:16:00.0"]);
}

#[test]
fn every_cut_of_an_encrypted_8x_repair_boots_and_the_next_run_finishes() {
    let dir = tmpdir();
    let build_id = "8.0.3-24022510";
    let config = || {
        let mut c = ConfigSpec::new(ConfigFlavor::Encrypted);
        c.set_owner(OwnerSpec::new("000:003:00.0", "passthru", None));
        c.store.pci_devices = vec![
            StorePciRow::new("0000:03:00.0", "OWNER_PASSTHRU", Some("boot-nvme")),
            StorePciRow::new("0000:00:02.0", "OWNER_PASSTHRU", Some("gpu")),
        ];
        c
    };
    let spec = Spec::new(Generation::Esxi7, Media::Disk, 512).with_banks(
        BankSpec::active(build_id, Some(config())),
        BankSpec::alternate_valid(build_id, Some(config())),
    );
    let f = build_at(dir.path(), "esxi.img", &spec);
    damage(&f.path, &Damage::CompactSorted).unwrap();
    replay("ESXi 8.0 encrypted", &f, &["--controller", "0000:03:00.0"]);
}

#[test]
fn every_cut_after_an_earlier_cut_run_left_its_temporary_file_boots_and_the_next_run_finishes() {
    // An earlier run was cut right after writing RSQNEW.TMP: this run deletes it first (entry,
    // then chain) and every cut of that deletion must leave the first FAT matching the files.
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let (_, off, len) = bank_offsets(&f)[0];
    {
        let dev = BlockDevice::open(&f.path, Access::ReadWrite).unwrap();
        let leftover: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        replace_root_file_until(&dev, off, len, "state.tgz", &leftover, Until::TempWritten)
            .unwrap();
    }
    replay(
        "ESXi 5.5 plain after a cut run",
        &f,
        &["--controller", "0000:16:00.0"],
    );
}
