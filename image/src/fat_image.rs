//! FAT filesystem images made with mtools (mformat, mmd, mcopy): the ISO's efi.img, the USB
//! image's ESP and its RESCUE partition. Dates come from SOURCE_DATE_EPOCH (mtools honours it),
//! the volume serial is given, files go in in the order listed: the bytes are reproducible.

use crate::build_date::BuildDate;
use crate::tools::{run, tool};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FatSpec<'a> {
    /// Volume label (at most 11 characters, upper case).
    pub label: &'a str,
    pub serial: u32,
    /// Size of the filesystem; a multiple of 512.
    pub bytes: u64,
    /// Sectors before the filesystem on its disk (the partition's start LBA; 0 for efi.img).
    pub hidden_sectors: u64,
}

/// A file to put into the filesystem: `dest` is its path there (`EFI/BOOT/BOOTX64.EFI`).
#[derive(Debug, Clone)]
pub struct FatFile {
    pub dest: String,
    pub src: PathBuf,
}

/// Creates `path` holding a fresh FAT filesystem with `files`.
pub fn make(path: &Path, spec: &FatSpec<'_>, files: &[FatFile], date: BuildDate) -> Result<()> {
    if !spec.bytes.is_multiple_of(512) || spec.label.len() > 11 {
        bail!("bad FAT spec {spec:?}");
    }
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(spec.bytes)
        .with_context(|| format!("sizing {}", path.display()))?;
    drop(f);
    let img = path.as_os_str();
    run(tool("mformat", date)
        .arg("-i")
        .arg(img)
        .args(["-T", &(spec.bytes / 512).to_string()])
        .args(["-h", "64", "-s", "32", "-m", "0xf8"])
        .args(["-H", &spec.hidden_sectors.to_string()])
        .args(["-v", spec.label])
        .args(["-N", &format!("{:08x}", spec.serial)])
        .arg("::"))?;
    let mut dirs = BTreeSet::new();
    for file in files {
        let parts: Vec<&str> = file.dest.split('/').collect();
        for depth in 1..parts.len() {
            let dir = parts[..depth].join("/");
            if dirs.insert(dir.clone()) {
                run(tool("mmd", date)
                    .arg("-i")
                    .arg(img)
                    .arg(format!("::/{dir}")))?;
            }
        }
        run(tool("mcopy", date)
            .arg("-i")
            .arg(img)
            .arg(&file.src)
            .arg(format!("::/{}", file.dest)))
        .with_context(|| format!("{}: no room for {}?", path.display(), file.dest))?;
    }
    Ok(())
}

/// Free bytes in a FAT image (from `mdir`'s last line).
pub fn free_bytes(path: &Path, date: BuildDate) -> Result<u64> {
    let out = run(tool("mdir", date).arg("-i").arg(path).arg("::"))?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("bytes free"))
        .with_context(|| format!("mdir {}: no 'bytes free' line", path.display()))?;
    let digits: String = line
        .split("bytes free")
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .with_context(|| format!("mdir {}: {line:?}", path.display()))
}

/// A filesystem size that holds `files` with `slack` bytes to spare: every file rounded up to
/// 4 KiB clusters, plus FATs, directories and the slack, rounded up to 64 KiB.
pub fn size_for(files: &[FatFile], slack: u64) -> Result<u64> {
    let mut total = 0u64;
    for f in files {
        let len = std::fs::metadata(&f.src)
            .with_context(|| format!("reading {}", f.src.display()))?
            .len();
        total += len.div_ceil(4096) * 4096 + 4096;
    }
    // FAT tables and the root directory: generously 2% + 128 KiB.
    let raw = total + total / 50 + (128 << 10) + slack;
    Ok(raw.div_ceil(64 << 10) * (64 << 10))
}
