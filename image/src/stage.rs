//! Staging trees for the media: copy or write files (creating parents), and pin every mtime to
//! the build date (xorriso records the tree's mtimes).

use crate::build_date::BuildDate;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, SystemTime};

pub fn copy(src: &Path, dest: &Path) -> Result<()> {
    parent(dest)?;
    std::fs::copy(src, dest)
        .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
    Ok(())
}

pub fn write(dest: &Path, data: &[u8]) -> Result<()> {
    parent(dest)?;
    std::fs::write(dest, data).with_context(|| format!("writing {}", dest.display()))
}

/// Sets the mtime of `root` and everything under it to the build date.
pub fn set_mtimes(root: &Path, date: BuildDate) -> Result<()> {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(date.epoch);
    let meta =
        std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", root.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            set_mtimes(&e.path(), date)?;
        }
    }
    std::fs::File::open(root)
        .and_then(|f| f.set_modified(when))
        .with_context(|| format!("setting the mtime of {}", root.display()))
}

fn parent(p: &Path) -> Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}
