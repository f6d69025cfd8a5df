//! Reading and writing the disk: block devices and image files (O_DIRECT, flushes, the write
//! journal), the bootbank FAT (staged edits, the crash-safe file switch, the invariant check),
//! where undo records live, and the copies kept off the disk.

pub mod aligned_buf;
pub mod backup_sink;
pub mod blockdev;
pub mod fat_check;
pub mod fat_overlay;
pub mod fat_replace;
pub mod record_store;
pub mod sector_snapshot;
pub mod sector_writer;
pub mod write_journal;
