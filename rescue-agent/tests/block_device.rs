//! The same repair on a real block device (a loop device): BLKSSZGET, BLKGETSIZE64, O_EXCL,
//! BLKFLSBUF — and a device in use is refused.

mod common;

use std::process::Command;

use common::*;
use esxi_fixtures::{damage, Damage, Generation, Media, Spec};

struct Loop(String);

impl Loop {
    fn attach(img: &std::path::Path, sector_size: u32) -> Loop {
        let out = Command::new("losetup")
            .args([
                "--find",
                "--show",
                "--sector-size",
                &sector_size.to_string(),
            ])
            .arg(img)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["--detach", &self.0]).status();
    }
}

#[test]
fn repair_and_undo_through_a_loop_device() {
    for ss in [512u32, 4096] {
        let dir = tmpdir();
        let f = build_at(
            dir.path(),
            "loop.img",
            &Spec::new(Generation::Esxi6, Media::Disk, ss),
        );
        damage(&f.path, &Damage::CompactSorted).unwrap();
        let damaged = hash(&f.path);
        let dev = Loop::attach(&f.path, ss);
        let scan = run_ok(&["scan", "--json", &dev.0]);
        let v: serde_json::Value = serde_json::from_str(&scan.stdout).unwrap();
        assert_eq!(v["disks"][0]["block_device"], true);
        assert_eq!(v["disks"][0]["sector_size"], ss);
        assert_eq!(v["disks"][0]["esxi"]["generation"], "6.x");

        // In use (held open exclusively elsewhere): refused, nothing written.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _held = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(0o200) // O_EXCL
                .open(&dev.0)
                .unwrap();
            let busy = run(&["repair", &dev.0]);
            assert_eq!(busy.code, 1, "{}", busy.stderr);
            assert!(busy.stderr.contains(&dev.0), "{}", busy.stderr);
        }
        assert_eq!(hash(&f.path), damaged);

        let r = run_ok(&["repair", &dev.0]);
        assert!(r.stdout.contains("verified"), "{}", r.stdout);
        let again = run_ok(&["scan", &dev.0]);
        assert!(
            again.stdout.contains("no problems found"),
            "{}",
            again.stdout
        );
        run_ok(&["undo", &dev.0]);
        drop(dev);
        assert_eq!(
            hash(&f.path),
            damaged,
            "{ss}: undo through the device not byte-exact"
        );
    }
}

/// Sectors written to a block device so far (`/sys/block/NAME/stat`, field 7).
fn sectors_written(dev: &str) -> u64 {
    let name = dev.trim_start_matches("/dev/");
    let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
    stat.split_whitespace().nth(6).unwrap().parse().unwrap()
}

#[test]
fn writes_on_a_device_touch_only_the_sectors_they_name() {
    // O_DIRECT: a 512-byte GPT write reaches the device as that sector, not as its 4 KiB page
    // (which would also rewrite LBA 0, ESXi's boot code, with identical bytes).
    let dir = tmpdir();
    let f = build_at(
        dir.path(),
        "direct.img",
        &Spec::new(Generation::Esxi5, Media::Usb, 512),
    );
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let before = dir.path().join("before.img");
    assert!(Command::new("cp")
        .args(["--sparse=always"])
        .arg(&f.path)
        .arg(&before)
        .status()
        .unwrap()
        .success());
    let dev = Loop::attach(&f.path, 512);
    let log = dir.path().join("writes.log");
    let w0 = sectors_written(&dev.0);
    let out = agent()
        .env("RESCUE_AGENT_WRITE_LOG", &log)
        .args(["repair", &dev.0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever the kernel issued beyond the agent's own writes would show here.
    let _ = Command::new("sync").status();
    let written = sectors_written(&dev.0) - w0;
    let ranges: Vec<(u64, u64)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(|n| n.parse::<u64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    let logged: u64 = ranges
        .iter()
        .map(|(o, l)| (o + l).div_ceil(512) - o / 512)
        .sum();
    assert_eq!(
        written, logged,
        "the device saw exactly the sectors the agent wrote"
    );
    assert!(
        ranges.iter().all(|(o, _)| *o >= 512),
        "LBA 0 (the protective MBR and boot code) is never written: {ranges:?}"
    );
    drop(dev);
    // Every changed sector lies in a logged range (the 1 GiB images compared 1 MiB at a time).
    use std::io::Read;
    let (mut b, mut a) = (
        std::fs::File::open(&before).unwrap(),
        std::fs::File::open(&f.path).unwrap(),
    );
    let (mut bb, mut ab) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut base = 0u64;
    let mut changed = 0;
    loop {
        let n = b.read(&mut bb).unwrap();
        if n == 0 {
            break;
        }
        a.read_exact(&mut ab[..n]).unwrap();
        for (i, (x, y)) in bb[..n].chunks(512).zip(ab[..n].chunks(512)).enumerate() {
            if x != y {
                changed += 1;
                let at = base + i as u64 * 512;
                assert!(
                    ranges.iter().any(|(o, l)| at + 512 > *o && at < o + l),
                    "the sector at byte {at} changed outside the agent's writes"
                );
            }
        }
        base += n as u64;
    }
    assert!(changed > 0, "the repair changed something");
}
