//! One type for block devices and disk-image files: sector size, size, positioned I/O, flush.
//!
//! A block device opened for writing is opened O_DIRECT: every read and write moves whole
//! logical sectors between the device and an aligned buffer, bypassing the page cache, so a
//! write reaches the disk as exactly the sectors it names — not as the 4 KiB page around them
//! (which would also rewrite LBA 0, ESXi's boot code, with a GPT write, or the sectors of
//! boot.cfg with a report). A write that does not cover whole sectors is read-modify-written,
//! sector by sector. Image files use the page cache and fdatasync.
//!
//! With `RESCUE_AGENT_WRITE_LOG=FILE` in the environment every write is also logged there as
//! `offset length` (bytes), for audits and the tests that check no other sector was written;
//! `RESCUE_AGENT_WRITE_JOURNAL=FILE` keeps the bytes and the flushes too (write_journal.rs).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BlockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {what} at byte {offset} (+{len}) lies outside the disk ({size} bytes)")]
    OutOfRange {
        path: PathBuf,
        what: &'static str,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{path}: unsupported logical sector size {sector_size}")]
    SectorSize { path: PathBuf, sector_size: u32 },
}

// ioctl numbers from <linux/fs.h>.
nix::ioctl_read_bad!(blk_sector_size, 0x1268, libc_int); // BLKSSZGET
nix::ioctl_read!(blk_size64, 0x12, 114, u64); // BLKGETSIZE64
nix::ioctl_none_bad!(blk_flush_buffers, 0x1261); // BLKFLSBUF
#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

/// How a target is opened: probing never needs write access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    /// Read-write; block devices are opened O_EXCL so a mounted or in-use disk is refused.
    ReadWrite,
}

#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    path: PathBuf,
    is_block_device: bool,
    sector_size: u32,
    size: u64,
    writable: bool,
    /// Opened O_DIRECT: I/O in whole, aligned sectors.
    direct: bool,
}

const O_EXCL: i32 = 0o200;
const O_DIRECT: i32 = nix::libc::O_DIRECT;
pub const WRITE_LOG_ENV: &str = "RESCUE_AGENT_WRITE_LOG";

impl BlockDevice {
    pub fn open(path: &Path, access: Access) -> Result<Self, BlockError> {
        let io_err = |source| BlockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        let is_block_device = meta.file_type().is_block_device();
        if !is_block_device && !meta.is_file() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a block device nor a regular file",
            )));
        }
        let mut options = OpenOptions::new();
        options.read(true);
        let direct = access == Access::ReadWrite && is_block_device;
        if access == Access::ReadWrite {
            options.write(true);
            if is_block_device {
                options.custom_flags(O_EXCL | O_DIRECT);
            }
        }
        let file = options.open(path).map_err(io_err)?;
        let (size, sector_size) = if is_block_device {
            let mut size = 0u64;
            let mut ssz: libc_int = 0;
            // SAFETY: both ioctls write one integer of the given type into the pointer we pass.
            unsafe {
                blk_size64(file.as_raw_fd(), &mut size).map_err(|e| io_err(io::Error::from(e)))?;
                blk_sector_size(file.as_raw_fd(), &mut ssz)
                    .map_err(|e| io_err(io::Error::from(e)))?;
            }
            (size, ssz as u32)
        } else {
            let size = meta.len();
            (size, sector_size_of_image(&file, size).map_err(io_err)?)
        };
        if !matches!(sector_size, 512 | 4096) {
            return Err(BlockError::SectorSize {
                path: path.to_path_buf(),
                sector_size,
            });
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            is_block_device,
            sector_size,
            size,
            writable: access == Access::ReadWrite,
            direct,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_block_device(&self) -> bool {
        self.is_block_device
    }
    pub fn sector_size(&self) -> u32 {
        self.sector_size
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn sectors(&self) -> u64 {
        self.size / u64::from(self.sector_size)
    }
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn check_range(&self, what: &'static str, offset: u64, len: u64) -> Result<(), BlockError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(BlockError::OutOfRange {
                path: self.path.clone(),
                what,
                offset,
                len,
                size: self.size,
            }),
        }
    }

    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check_range("read", offset, buf.len() as u64)?;
        if self.direct {
            let (start, aligned) = self.read_aligned(offset, buf.len())?;
            let from = (offset - start) as usize;
            buf.copy_from_slice(&aligned.as_slice()[from..from + buf.len()]);
            return Ok(());
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: io::Error) -> BlockError {
        BlockError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The whole sectors around `offset..offset+len` (already range-checked), read O_DIRECT.
    fn read_aligned(
        &self,
        offset: u64,
        len: usize,
    ) -> Result<(u64, crate::aligned_buf::AlignedBuf), BlockError> {
        let ss = u64::from(self.sector_size);
        let start = offset / ss * ss;
        let end = (offset + len as u64).div_ceil(ss) * ss;
        let mut aligned = crate::aligned_buf::AlignedBuf::zeroed((end - start) as usize)
            .ok_or_else(|| self.io_error(io::ErrorKind::OutOfMemory.into()))?;
        self.file
            .read_exact_at(aligned.as_mut_slice(), start)
            .map_err(|source| self.io_error(source))?;
        Ok((start, aligned))
    }

    pub fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>, BlockError> {
        let mut buf = vec![0u8; len];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    pub fn read_sectors(&self, lba: u64, count: u64) -> Result<Vec<u8>, BlockError> {
        let ss = u64::from(self.sector_size);
        let len = count.checked_mul(ss).filter(|l| *l <= 64 << 20);
        match (lba.checked_mul(ss), len) {
            (Some(offset), Some(len)) => self.read_vec(offset, len as usize),
            _ => Err(BlockError::OutOfRange {
                path: self.path.clone(),
                what: "sector read",
                offset: lba.saturating_mul(ss),
                len: count.saturating_mul(ss),
                size: self.size,
            }),
        }
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        self.check_range("write", offset, data.len() as u64)?;
        log_write(offset, data.len());
        crate::write_journal::record_write(offset, data);
        if self.direct {
            // Whole sectors: those around the range, read first when it covers them partly.
            let ss = u64::from(self.sector_size);
            let whole = offset.is_multiple_of(ss) && (data.len() as u64).is_multiple_of(ss);
            let (start, mut aligned) = if whole {
                let buf = crate::aligned_buf::AlignedBuf::zeroed(data.len())
                    .ok_or_else(|| self.io_error(io::ErrorKind::OutOfMemory.into()))?;
                (offset, buf)
            } else {
                self.read_aligned(offset, data.len())?
            };
            let from = (offset - start) as usize;
            aligned.as_mut_slice()[from..from + data.len()].copy_from_slice(data);
            return self
                .file
                .write_all_at(aligned.as_slice(), start)
                .map_err(|source| self.io_error(source));
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|source| self.io_error(source))
    }

    /// Durably flush: fsync, and for block devices also drop the buffer cache so that the
    /// verification read afterwards comes from the device, not from memory.
    pub fn flush(&self) -> Result<(), BlockError> {
        let io_err = |source| BlockError::Io {
            path: self.path.clone(),
            source,
        };
        crate::write_journal::record_flush();
        self.file.sync_data().map_err(io_err)?;
        if self.is_block_device {
            // SAFETY: BLKFLSBUF takes no argument.
            unsafe { blk_flush_buffers(self.file.as_raw_fd()) }
                .map_err(|e| io_err(io::Error::from(e)))?;
        }
        Ok(())
    }
}

/// Appends `offset length` to the file named by RESCUE_AGENT_WRITE_LOG, when set.
fn log_write(offset: u64, len: usize) {
    use std::io::Write;
    let Some(path) = std::env::var_os(WRITE_LOG_ENV) else {
        return;
    };
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{offset} {len}");
    }
}

/// Images carry no sector size of their own: take it from where the GPT signature sits.
fn sector_size_of_image(file: &File, size: u64) -> io::Result<u32> {
    for candidate in [512u64, 4096] {
        if size >= candidate + 8 {
            let mut sig = [0u8; 8];
            file.read_exact_at(&mut sig, candidate)?;
            if &sig == b"EFI PART" {
                return Ok(candidate as u32);
            }
        }
    }
    Ok(512)
}

/// A read-only `Read + Seek` window onto a byte range of the device, for fatfs.
pub struct Slice<'a> {
    dev: &'a BlockDevice,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Slice<'a> {
    pub fn new(dev: &'a BlockDevice, start: u64, len: u64) -> Result<Self, BlockError> {
        dev.check_range("partition", start, len)?;
        Ok(Self {
            dev,
            start,
            len,
            pos: 0,
        })
    }
}

impl io::Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.dev
            .read_at(self.start + self.pos, &mut buf[..n])
            .map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// fatfs asks for `Write` even to list a directory; a slice never writes (sector_writer.rs does).
impl io::Write for Slice<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a read-only window: disk writes go through the sector writer",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Seek for Slice<'_> {
    fn seek(&mut self, from: io::SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.len, from)?;
        Ok(self.pos)
    }
}

/// The new position of a seek inside a window of `len` bytes; outside is an error.
pub fn seek_within(pos: u64, len: u64, from: io::SeekFrom) -> io::Result<u64> {
    let target = match from {
        io::SeekFrom::Start(p) => Some(p),
        io::SeekFrom::End(d) => len.checked_add_signed(d),
        io::SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    match target {
        Some(p) if p <= len => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek outside the partition",
        )),
    }
}
