//! Every ESXi generation × damage mode × sector size: repair restores ESXi's exact GPT, `plan`
//! writes nothing, and undo gives back the damaged image byte for byte.

mod common;

use common::*;
use esxi_fixtures::{damage, read_range, Damage, Fixture, Generation, Media, Spec};

const GIB: u64 = 1 << 30;

fn array_sectors(ss: u64) -> u64 {
    16384 / ss
}

/// The first (MBR, header, array) and last (array, header) sectors of an image.
fn head_and_tail(f: &Fixture, path: &std::path::Path, total_sectors: u64) -> (Vec<u8>, Vec<u8>) {
    let ss = u64::from(f.spec.sector_size);
    let a = array_sectors(ss);
    let head = read_range(path, 0, ((2 + a) * ss) as usize).unwrap();
    let tail = read_range(path, (total_sectors - 1 - a) * ss, ((1 + a) * ss) as usize).unwrap();
    (head, tail)
}

fn primary_array(path: &std::path::Path, ss: u64) -> Vec<u8> {
    read_range(path, 2 * ss, 16384).unwrap()
}

/// The `gpt` crate (read-only) as a second, independent reader: same slots, same extents.
fn independent_slot_check(img: &std::path::Path, ss: u32, original: &Fixture) {
    let lb = if ss == 512 {
        gpt::disk::LogicalBlockSize::Lb512
    } else {
        gpt::disk::LogicalBlockSize::Lb4096
    };
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .open(img)
        .expect("gpt crate opens the repaired image");
    let found: Vec<(u32, u64, u64)> = disk
        .partitions()
        .iter()
        .map(|(slot, p)| (*slot, p.first_lba, p.last_lba))
        .collect();
    let mut expected: Vec<(u32, u64, u64)> = original
        .partitions
        .iter()
        .map(|p| (p.slot, p.first_lba, p.last_lba))
        .collect();
    expected.sort();
    assert_eq!(found, expected, "the gpt crate reads other slots");
}

fn scenario(generation: Generation, media: Media, ss: u32, damages: &[Damage]) {
    let dir = tmpdir();
    let spec = Spec::new(generation, media, ss);
    let original = build_at(dir.path(), "original.img", &spec);
    let img = dir.path().join("damaged.img");
    copy_image(&original.path, &img);
    for d in damages {
        damage(&img, d).unwrap();
    }
    let grew: u64 = damages
        .iter()
        .map(|d| if let Damage::Grow(b) = d { *b } else { 0 })
        .sum();
    let damaged_hash = hash(&img);
    let img_s = img.to_str().unwrap();

    // scan sees an ESXi disk with problems; plan is a dry run.
    let scan = run_ok(&["scan", img_s]);
    assert!(
        scan.stdout.contains("problem:"),
        "scan found nothing:\n{}",
        scan.stdout
    );
    let plan = run_ok(&["plan", img_s]);
    assert!(plan.stdout.contains("writes, in order"), "{}", plan.stdout);
    assert_eq!(hash(&img), damaged_hash, "plan wrote to the image");

    let repair = run_ok(&["repair", img_s]);
    assert!(repair.stdout.contains("verified"), "{}", repair.stdout);

    let ss64 = u64::from(ss);
    assert_eq!(
        primary_array(&img, ss64),
        primary_array(&original.path, ss64),
        "canonical array not restored:\n{}",
        repair.stdout
    );
    assert_sgdisk_clean(&img, ss);
    independent_slot_check(&img, ss, &original);
    let total = (spec.disk_bytes + grew) / ss64;
    let (head, tail) = head_and_tail(&original, &img, total);
    let (orig_head, orig_tail) = head_and_tail(&original, &original.path, original.total_sectors);
    assert_eq!(&head[..512], &orig_head[..512], "protective MBR changed");
    if grew == 0 {
        assert_eq!(
            head, orig_head,
            "first sectors differ from the undamaged original"
        );
        assert_eq!(
            tail, orig_tail,
            "last sectors differ from the undamaged original"
        );
    } else {
        // Backup header at the new last LBA, pointing home; LastUsable moved to the new end.
        let a = array_sectors(ss64);
        let hdr = &tail[(a * ss64) as usize..];
        assert_eq!(&hdr[..8], b"EFI PART");
        assert_eq!(
            u64::from_le_bytes(hdr[24..32].try_into().unwrap()),
            total - 1
        );
        assert_eq!(u64::from_le_bytes(hdr[32..40].try_into().unwrap()), 1);
        assert_eq!(
            u64::from_le_bytes(hdr[48..56].try_into().unwrap()),
            total - 2 - a
        );
    }
    // Bootbanks still fsck-clean with the undo record in one of them.
    for p in original
        .partitions
        .iter()
        .filter(|p| p.slot == 5 || p.slot == 6)
    {
        fsck_vfat_clean(
            &img,
            p.first_lba * ss64,
            (p.last_lba - p.first_lba + 1) * ss64,
        );
    }

    // A second repair finds nothing to do.
    let again = run_ok(&["repair", img_s]);
    assert!(again.stdout.contains("healthy"), "{}", again.stdout);

    let undo = run_ok(&["undo", img_s]);
    assert!(
        undo.stdout.contains("restored byte-exact"),
        "{}",
        undo.stdout
    );
    assert_eq!(
        hash(&img),
        damaged_hash,
        "undo did not restore the damaged image byte-exact"
    );
}

macro_rules! matrix {
    ($($name:ident: $gen:expr, $media:expr, $ss:expr, [$($d:expr),*];)*) => {
        $( #[test] fn $name() { scenario($gen, $media, $ss, &[$($d),*]); } )*
    };
}

use Damage::*;
use Generation::*;
use Media::*;

matrix! {
    esxi5_compact_keep_512: Esxi5, Disk, 512, [CompactKeepOrder];
    esxi5_compact_sorted_512: Esxi5, Disk, 512, [CompactSorted];
    esxi5_grown_512: Esxi5, Disk, 512, [Grow(3 * GIB)];
    esxi5_seed003_512: Esxi5, Disk, 512, [Grow(2 * GIB), RelocateBackupToEnd, CompactKeepOrder];
    esxi5_primary_corrupt_512: Esxi5, Disk, 512, [CorruptPrimaryHeader];
    esxi5_compact_keep_4k: Esxi5, Disk, 4096, [CompactKeepOrder];
    esxi5_seed003_4k: Esxi5, Disk, 4096, [Grow(GIB), RelocateBackupToEnd, CompactKeepOrder];
    esxi5_usb_compact_sorted_512: Esxi5, Usb, 512, [CompactSorted];
    esxi6_compact_keep_512: Esxi6, Disk, 512, [CompactKeepOrder];
    esxi6_compact_sorted_512: Esxi6, Disk, 512, [CompactSorted];
    esxi6_grown_512: Esxi6, Disk, 512, [Grow(5 * GIB)];
    esxi6_seed003_512: Esxi6, Disk, 512, [Grow(GIB), RelocateBackupToEnd, CompactSorted];
    esxi6_primary_corrupt_512: Esxi6, Disk, 512, [CorruptPrimaryHeader];
    esxi6_compact_sorted_4k: Esxi6, Disk, 4096, [CompactSorted];
    esxi6_primary_corrupt_4k: Esxi6, Disk, 4096, [CorruptPrimaryHeader];
    esxi6_usb_compact_keep_512: Esxi6, Usb, 512, [CompactKeepOrder];
    esxi7_compact_keep_512: Esxi7, Disk, 512, [CompactKeepOrder];
    esxi7_compact_sorted_512: Esxi7, Disk, 512, [CompactSorted];
    esxi7_grown_512: Esxi7, Disk, 512, [Grow(16 * GIB)];
    esxi7_seed003_512: Esxi7, Disk, 512, [Grow(GIB), RelocateBackupToEnd, CompactKeepOrder];
    esxi7_primary_corrupt_512: Esxi7, Disk, 512, [CorruptPrimaryHeader];
    esxi7_compact_keep_4k: Esxi7, Disk, 4096, [CompactKeepOrder];
    esxi7_grown_4k: Esxi7, Disk, 4096, [Grow(GIB)];
    esxi7_primary_corrupt_4k: Esxi7, Disk, 4096, [CorruptPrimaryHeader];
    esxi7_usb_compact_sorted_512: Esxi7, Usb, 512, [CompactSorted];
    esxi7_usb_grown_4k: Esxi7, Usb, 4096, [Grow(GIB)];
}
