//! The one writer: steps are checked, written, flushed and read back in order; a step whose
//! expected bytes are gone writes nothing; and no other production file writes to a disk.

use std::path::Path;

use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::sector_writer::{execute, Batch, Step};
use rescue_agent::write_journal;

/// The write journal is chosen by an environment variable: tests that write take turns.
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn image(dir: &Path, sectors: u64) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    let bytes: Vec<u8> = (0..sectors * 512).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn steps_run_in_order_and_a_changed_sector_stops_its_step_before_any_write() {
    let _turn = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), 64);
    let dev = BlockDevice::open(&path, Access::ReadWrite).unwrap();
    let sector = |lba: u64| dev.read_vec(lba * 512, 512).unwrap();
    let (s3, s9) = (sector(3), sector(9));
    let (a, b, c) = (vec![0xAA; 512], vec![0xBB; 1024], vec![0xCC; 512]);
    let wrong = vec![0u8; 512];
    let steps = [
        Step::one(Batch::new("sector 3", 3 * 512, &a).expecting(&s3)),
        Step::of(vec![
            // The first batch of the step is as expected; the second is not: neither is written.
            Batch::new("sectors 9-10", 9 * 512, &b),
            Batch::new("sector 20", 20 * 512, &c).expecting(&wrong),
        ]),
        Step::one(Batch::new("sector 30", 30 * 512, &c)),
    ];
    let err = execute(&dev, &steps).unwrap_err();
    assert!(rescue_agent::pipeline::is_refusal(&err), "{err:#}");
    assert!(
        err.to_string()
            .contains("sector 20 changed since it was planned"),
        "{err:#}"
    );
    assert_eq!(sector(3), a, "the first step was written");
    assert_eq!(sector(9), s9, "nothing of the refused step was written");
    assert_ne!(sector(30), c, "no step after the refused one ran");
}

#[test]
fn every_step_ends_in_a_flush_and_empty_steps_do_not_flush() {
    let _turn = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), 64);
    let journal = dir.path().join("journal");
    std::env::set_var(write_journal::WRITE_JOURNAL_ENV, &journal);
    let dev = BlockDevice::open(&path, Access::ReadWrite).unwrap();
    let (a, b) = (vec![1u8; 512], vec![2u8; 512]);
    let steps = [
        Step::of(vec![
            Batch::new("sector 1", 512, &a),
            Batch::new("sector 2", 1024, &b),
        ]),
        Step::default(),
        Step::one(Batch::new("sector 5", 5 * 512, &a)),
    ];
    execute(&dev, &steps).unwrap();
    std::env::remove_var(write_journal::WRITE_JOURNAL_ENV);
    let entries = write_journal::parse(&std::fs::read(&journal).unwrap()).unwrap();
    let shape: Vec<String> = entries
        .iter()
        .map(|e| match e {
            write_journal::JournalEntry::Write { offset, data } => {
                format!("w{}+{}", offset, data.len())
            }
            write_journal::JournalEntry::Flush => "f".into(),
        })
        .collect();
    assert_eq!(shape, ["w512+512", "w1024+512", "f", "w2560+512", "f"]);
    assert_eq!(dev.read_vec(512, 512).unwrap(), a);
    assert_eq!(dev.read_vec(5 * 512, 512).unwrap(), a);
}

/// `grep` for disk writes in the agent's sources: the sector writer alone calls `write_at` and
/// flushes a device (blockdev.rs defines them).
#[test]
fn no_module_but_the_sector_writer_writes_to_a_disk() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel == "disk/sector_writer.rs" || rel == "disk/blockdev.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains(".write_at(") || line.contains("dev.flush()") {
                    offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "disk writes outside the sector writer:\n{}",
        offenders.join("\n")
    );
}
