//! Extra places an undo record (and the report) is copied to, besides the ESXi disk itself:
//! a directory (`--backup-dir`) or the FAT partition named RESCUE on the rescue USB stick.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::blockdev::{Access, BlockDevice};
use crate::fat_overlay::{self, FatGeometry, Overlay};
use crate::gpt;

/// What writes a copy's content: called once per copy, so an undo record streams from its
/// parts into each place instead of being serialised into memory first.
pub type Content<'a> = &'a dyn Fn(&mut dyn Write) -> anyhow::Result<()>;

pub trait BackupSink {
    /// Store what `content` writes as `name`; returns where it went, for people.
    fn save_streamed(&self, name: &str, content: Content<'_>) -> anyhow::Result<String>;

    /// Store `data` as `name`.
    fn save(&self, name: &str, data: &[u8]) -> anyhow::Result<String> {
        self.save_streamed(name, &|w| Ok(w.write_all(data)?))
    }
}

pub struct DirSink(pub PathBuf);

impl BackupSink for DirSink {
    fn save_streamed(&self, name: &str, content: Content<'_>) -> anyhow::Result<String> {
        let dir = &self.0;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(name);
        let tmp = path.with_extension("part");
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        content(&mut out).with_context(|| format!("writing {}", tmp.display()))?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", tmp.display()))?
            .sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(path.display().to_string())
    }
}

/// The writable FAT partition of the rescue USB image (GPT partition name "RESCUE").
#[derive(Clone, Debug)]
pub struct RescuePartition {
    pub disk: PathBuf,
    pub first_lba: u64,
    pub sectors: u64,
}

pub const RESCUE_NAME: &str = "RESCUE";

impl RescuePartition {
    /// The first disk among `disks` with a partition named RESCUE.
    pub fn find(disks: &[PathBuf]) -> Option<RescuePartition> {
        disks.iter().find_map(|d| Self::on_disk(d))
    }

    fn on_disk(disk: &Path) -> Option<RescuePartition> {
        let dev = BlockDevice::open(disk, Access::ReadOnly).ok()?;
        let g = gpt::read_disk_gpt(&dev).ok()?;
        let copy = g.source()?;
        let found = copy
            .array
            .used()
            .find(|(_, e)| e.name() == RESCUE_NAME)
            .map(|(_, e)| RescuePartition {
                disk: disk.to_path_buf(),
                first_lba: e.first_lba(),
                sectors: e.sectors(),
            });
        found
    }
}

impl BackupSink for RescuePartition {
    fn save_streamed(&self, name: &str, content: Content<'_>) -> anyhow::Result<String> {
        let dev = BlockDevice::open(&self.disk, Access::ReadWrite)?;
        let ss = u64::from(dev.sector_size());
        let (offset, len) = (self.first_lba * ss, self.sectors * ss);
        let geo = FatGeometry::read(&dev, offset)
            .with_context(|| format!("the RESCUE partition on {}", self.disk.display()))?;
        // On FAT16 (the size the image builds it at) new data goes straight to free clusters.
        let mut overlay = match FatGeometry::read_fat16(&dev, offset) {
            Ok(fat16) => Overlay::new(&dev, offset, len).streaming_free_clusters(&fat16)?,
            Err(_) => Overlay::new(&dev, offset, len),
        };
        {
            let fs = fatfs::FileSystem::new(
                &mut overlay,
                fatfs::FsOptions::new().time_provider(fat_overlay::clock_now()),
            )?;
            let mut f = fs.root_dir().create_file(name)?;
            f.truncate()?;
            content(&mut f)?;
            f.flush()?;
            drop(f);
            fs.unmount()?;
        }
        let changes = overlay.into_changes()?;
        fat_overlay::commit(&dev, offset, &geo, &changes)?;
        Ok(format!("{} RESCUE partition: {name}", self.disk.display()))
    }
}
