//! `rescue-image customize IMAGE --kargs "..."`: rewrites the default kernel arguments of a built
//! ISO, USB image (or a stick it was written to) in place. Every kernel-arguments area in the
//! image is found by scanning its bytes and only that fixed-size line is rewritten: no file
//! changes length, no signed binary is touched, so the image stays bootable under Secure Boot.

use crate::kargs_area::{self, Area, AREA_LEN};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

const WINDOW: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct Customized {
    /// The areas as they were before (offset and old arguments).
    pub before: Vec<Area>,
}

/// Every kernel-arguments area of the image.
pub fn scan(image: &Path) -> Result<Vec<Area>> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    scan_file(&f, image)
}

fn scan_file(f: &File, image: &Path) -> Result<Vec<Area>> {
    let mut areas = Vec::new();
    let mut buf = vec![0u8; WINDOW + AREA_LEN];
    let mut pos = 0u64;
    loop {
        let n = read_full_at(f, &mut buf, pos)
            .with_context(|| format!("reading {} at byte {pos}", image.display()))?;
        let window = &buf[..n];
        areas.extend(
            kargs_area::find_starting_before(window, pos, WINDOW.min(n))
                .with_context(|| image.display().to_string())?,
        );
        if n <= WINDOW {
            return Ok(areas);
        }
        pos += WINDOW as u64;
    }
}

/// Rewrites every area with `kargs`; refuses (writing nothing) when they do not fit, when the
/// image has no area, or when an area is damaged.
pub fn customize(image: &Path, kargs: &str) -> Result<Customized> {
    let line = kargs_area::line(kargs)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .with_context(|| format!("opening {} for writing", image.display()))?;
    let before = scan_file(&f, image)?;
    if before.is_empty() {
        bail!(
            "{}: no kernel-arguments area (not an image built by rescue-image build?)",
            image.display()
        );
    }
    for a in &before {
        f.write_all_at(&line, a.line_offset)
            .with_context(|| format!("writing {} at byte {}", image.display(), a.line_offset))?;
    }
    f.sync_all()
        .with_context(|| format!("syncing {}", image.display()))?;
    let after = scan_file(&f, image)?;
    if after.len() != before.len() || after.iter().any(|a| a.kargs != kargs) {
        bail!(
            "{}: read back {} areas that do not all hold the new arguments",
            image.display(),
            after.len()
        );
    }
    Ok(Customized { before })
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
fn read_full_at(f: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], pos + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_every_copy_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        let area = kargs_area::render("console=ttyS0").unwrap();
        let mut data = vec![0x5au8; WINDOW + WINDOW / 2];
        // One area straddling the window boundary, one well inside.
        let at1 = WINDOW - 100;
        data[at1..at1 + area.len()].copy_from_slice(area.as_bytes());
        data[1000..1000 + area.len()].copy_from_slice(area.as_bytes());
        std::fs::write(&img, &data).unwrap();
        assert_eq!(scan(&img).unwrap().len(), 2);
        let c = customize(&img, "console=ttyS1,115200 rescue.log=debug").unwrap();
        assert_eq!(c.before.len(), 2);
        assert!(c.before.iter().all(|a| a.kargs == "console=ttyS0"));
        let after = std::fs::read(&img).unwrap();
        assert_eq!(after.len(), data.len());
        let areas = scan(&img).unwrap();
        assert!(areas
            .iter()
            .all(|a| a.kargs == "console=ttyS1,115200 rescue.log=debug"));
        // Nothing outside the two lines changed.
        let changed: Vec<usize> = (0..data.len()).filter(|&i| data[i] != after[i]).collect();
        for i in changed {
            assert!(areas
                .iter()
                .any(|a| (a.line_offset as usize..a.line_offset as usize + 448).contains(&i)));
        }
        // Too long: refused, nothing written.
        let long = "x".repeat(kargs_area::MAX_KARGS + 1);
        assert!(customize(&img, &long).is_err());
        assert_eq!(std::fs::read(&img).unwrap(), after);
    }

    #[test]
    fn image_without_area_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let e = customize(&img, "quiet").unwrap_err();
        assert!(format!("{e:#}").contains("no kernel-arguments area"));
    }
}
