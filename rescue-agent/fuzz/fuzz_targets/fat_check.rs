//! The bootbank FAT invariant check (fat_check.rs) on a volume built from the input: boot
//! sector, FATs, root directory and subdirectories, as every probe runs it on every bank. The
//! input is the volume's first bytes; the rest of an 8 MiB volume reads as zeros.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::fat_check;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("fatcheck-fuzz-{}.img", std::process::id()));
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(data).unwrap();
        f.set_len((data.len() as u64).max(8 << 20).div_ceil(512) * 512)
            .unwrap();
    }
    if let Ok(dev) = BlockDevice::open(&path, Access::ReadOnly) {
        let _ = fat_check::check_bank(&dev, 0);
    }
    let _ = std::fs::remove_file(&path);
});
