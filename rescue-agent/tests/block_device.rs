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
