//! The machine's disks from /sys/block (whole disks only; no partitions, loops or RAM disks).

use std::path::PathBuf;

pub fn whole_disks() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .filter(|n| {
            // Removable media with no medium reports size 0.
            std::fs::read_to_string(format!("/sys/block/{n}/size"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|s| s > 0)
        })
        .map(|n| PathBuf::from("/dev").join(n))
        .collect();
    out.sort();
    out
}
