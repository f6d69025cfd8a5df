//! The GPT head of a real ESXi 7.x disk (shared/fixtures/real/gpt_esxi.bin): parsed slot-exactly,
//! classified as 7.x, and restored byte-for-byte after compaction.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::gpt::{self, EntryArray};
use rescue_agent::gpt_repair;
use rescue_agent::layout::{self, Generation, PartFacts, VmwareFatHeader};
use rescue_agent::sector_snapshot::SectorSnapshot;

const TOTAL_SECTORS: u64 = 297_795_584;

fn real_head() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/real/gpt_esxi.bin");
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared must sit beside the project)",
            path.display()
        )
    });
    assert_eq!(data.len(), 32768);
    data
}

fn image_with_head(dir: &Path, head: &[u8]) -> PathBuf {
    let p = dir.join("real.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(TOTAL_SECTORS * 512).unwrap();
    f.write_all_at(head, 0).unwrap();
    p
}

/// The real head carries no bootbank contents, so the VMware FAT header fact is supplied here.
fn facts(array: &EntryArray) -> Vec<PartFacts> {
    array
        .used()
        .map(|(slot, e)| PartFacts {
            slot,
            type_guid: e.type_guid(),
            first_lba: e.first_lba(),
            last_lba: e.last_lba(),
            name: e.name(),
            vmware_fat: (e.type_guid() == layout::BASIC_DATA)
                .then_some(VmwareFatHeader { uuid: [0x7f; 16] }),
        })
        .collect()
}

/// The probe's part (the sectors a repair may write), then the pure plan.
fn plan_from_disk(
    dev: &BlockDevice,
    g: &gpt::DiskGpt,
    l: &layout::Layout,
) -> rescue_agent::plan::Plan {
    let mut sectors = SectorSnapshot::new(dev.sector_size());
    gpt_repair::read_sectors(dev, g, &mut sectors).unwrap();
    gpt_repair::plan_gpt(g, l, &sectors).unwrap()
}

fn apply(dev: &BlockDevice, plan: &rescue_agent::plan::Plan) {
    for w in &plan.writes {
        dev.write_at(w.offset, &w.after).unwrap();
    }
    dev.flush().unwrap();
}

#[test]
fn real_head_parses_slot_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_head(dir.path(), &real_head());
    let dev = BlockDevice::open(&img, Access::ReadOnly).unwrap();
    let copy = gpt::read_copy(&dev, 1).unwrap();
    assert_eq!(copy.header.alternate_lba(), TOTAL_SECTORS - 1);
    assert_eq!(copy.header.last_usable(), 297_795_550);
    let used: Vec<(u32, String, u64, u64)> = copy
        .array
        .used()
        .map(|(s, e)| (s, e.name(), e.first_lba(), e.last_lba()))
        .collect();
    assert_eq!(
        used,
        vec![
            (1, "BOOT".into(), 64, 204_863),
            (5, "BOOTBANK1".into(), 208_896, 8_595_455),
            (6, "BOOTBANK2".into(), 8_597_504, 16_984_063),
            (7, "OSDATA".into(), 16_986_112, 268_435_455),
            (8, "datastore1".into(), 268_437_504, 297_795_550),
        ]
    );
    let l = layout::classify(&facts(&copy.array)).unwrap();
    assert_eq!(l.generation, Generation::Esxi7);
    assert_eq!(l.misplaced().count(), 0);
}

#[test]
fn compacted_real_head_is_restored_byte_for_byte() {
    let head = real_head();
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_head(dir.path(), &head);
    let dev = BlockDevice::open(&img, Access::ReadWrite).unwrap();

    // First give it the backup GPT it lacks (the sample is only the head): a plan that only adds
    // the backup copy and leaves the head alone.
    let g = gpt::read_disk_gpt(&dev).unwrap();
    let l = layout::classify(&facts(&g.primary.as_ref().unwrap().array)).unwrap();
    let plan = plan_from_disk(&dev, &g, &l);
    let targets: Vec<_> = plan.writes.iter().map(|w| w.target.label()).collect();
    assert_eq!(targets, ["backup GPT entry array", "backup GPT header"]);
    apply(&dev, &plan);
    assert_eq!(dev.read_vec(0, 32768).unwrap(), head);
    let complete_tail = dev.read_vec((TOTAL_SECTORS - 33) * 512, 33 * 512).unwrap();

    // Compact both copies the way seed 003's tool did, CRCs valid.
    let primary = gpt::read_copy(&dev, 1).unwrap();
    let mut compacted = primary.array.clone();
    let used: Vec<_> = compacted.used().map(|(_, e)| e.clone()).collect();
    for (i, slot) in compacted.entries.iter_mut().enumerate() {
        *slot = used
            .get(i)
            .cloned()
            .unwrap_or_else(|| primary.array.empty_entry());
    }
    let bytes = compacted.to_bytes();
    let crc = crc32fast::hash(&bytes);
    let h = &primary.header;
    let p = h.relocated(1, TOTAL_SECTORS - 1, 2, h.last_usable(), crc);
    let b = h.relocated(
        TOTAL_SECTORS - 1,
        1,
        TOTAL_SECTORS - 33,
        h.last_usable(),
        crc,
    );
    dev.write_at(2 * 512, &bytes).unwrap();
    dev.write_at(512, p.to_bytes()).unwrap();
    dev.write_at((TOTAL_SECTORS - 33) * 512, &bytes).unwrap();
    dev.write_at((TOTAL_SECTORS - 1) * 512, b.to_bytes())
        .unwrap();
    assert_ne!(dev.read_vec(0, 32768).unwrap(), head);

    let g = gpt::read_disk_gpt(&dev).unwrap();
    let l = layout::classify(&facts(&g.primary.as_ref().unwrap().array)).unwrap();
    let moves: Vec<(u32, u32)> = l
        .misplaced()
        .map(|p| (p.current_slot, p.canonical_slot))
        .collect();
    assert_eq!(moves, vec![(2, 5), (3, 6), (4, 7), (5, 8)]);
    let plan = plan_from_disk(&dev, &g, &l);
    apply(&dev, &plan);
    assert_eq!(
        dev.read_vec(0, 32768).unwrap(),
        head,
        "head not restored byte-for-byte"
    );
    assert_eq!(
        dev.read_vec((TOTAL_SECTORS - 33) * 512, 33 * 512).unwrap(),
        complete_tail
    );
}
