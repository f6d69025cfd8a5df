//! A whole probe of a small disk image built from the input: GPT copies, layout, bootbank FAT,
//! boot.cfg, state.tgz and everything inside, as PID 1 runs it on every attached disk, then the
//! plan from those findings. The input is the image's first bytes, padded to at least 128 KiB.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use rescue_agent::bank_config::PolicyContext;
use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::{pipeline, probe};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("probe-fuzz-{}.img", std::process::id()));
    let mut image = data.to_vec();
    if image.len() < 128 << 10 {
        image.resize(128 << 10, 0);
    }
    image.truncate(image.len() / 512 * 512);
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&image).unwrap();
    }
    if let Ok(dev) = BlockDevice::open(&path, Access::ReadOnly) {
        // The plan too: it is computed from the findings alone, hostile ones included.
        let ctx = PolicyContext::default();
        if let Ok(p) = probe::probe(&dev, &ctx) {
            let _ = pipeline::plan_repair(&p, &ctx);
        }
    }
    let _ = std::fs::remove_file(&path);
});
