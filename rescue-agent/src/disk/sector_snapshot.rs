//! Sectors as the probe read them. A plan compares its target bytes with these and records
//! them as the bytes the sector writer must still find on the disk, so planning itself never
//! reads the device — and can be tested on bytes alone.

use crate::blockdev::{BlockDevice, BlockError};

#[derive(Clone, Debug, Default)]
pub struct SectorSnapshot {
    sector_size: u64,
    /// (first LBA, whole sectors), in the order read.
    regions: Vec<(u64, Vec<u8>)>,
}

impl SectorSnapshot {
    pub fn new(sector_size: u32) -> SectorSnapshot {
        SectorSnapshot {
            sector_size: u64::from(sector_size),
            regions: Vec::new(),
        }
    }

    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// Keep `count` sectors from `lba` (bounded by `BlockDevice::read_sectors`).
    pub fn read(&mut self, dev: &BlockDevice, lba: u64, count: u64) -> Result<(), BlockError> {
        if self.get(lba, count).is_none() {
            let bytes = dev.read_sectors(lba, count)?;
            self.regions.push((lba, bytes));
        }
        Ok(())
    }

    /// Keep bytes known by other means (tests over fixture bytes); whole sectors only.
    pub fn insert(&mut self, lba: u64, bytes: Vec<u8>) {
        assert!(
            self.sector_size > 0 && (bytes.len() as u64).is_multiple_of(self.sector_size),
            "a snapshot holds whole sectors"
        );
        self.regions.push((lba, bytes));
    }

    /// The `count` sectors from `lba`, when one region read holds them all.
    pub fn get(&self, lba: u64, count: u64) -> Option<&[u8]> {
        let ss = self.sector_size;
        self.regions.iter().find_map(|(start, bytes)| {
            let have = bytes.len() as u64 / ss;
            let from = lba.checked_sub(*start)?;
            let to = from.checked_add(count)?;
            (to <= have).then(|| &bytes[(from * ss) as usize..(to * ss) as usize])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_served_only_from_one_region_that_holds_all_of_it() {
        let mut s = SectorSnapshot::new(512);
        s.insert(10, (0..4 * 512).map(|i| (i / 512) as u8).collect());
        assert_eq!(s.get(11, 2).unwrap()[0], 1);
        assert_eq!(s.get(11, 2).unwrap()[512], 2);
        assert_eq!(s.get(11, 2).unwrap().len(), 1024);
        assert!(s.get(9, 2).is_none(), "starts before the region");
        assert!(s.get(12, 3).is_none(), "runs past the region");
        assert!(s.get(u64::MAX, 2).is_none());
        assert!(s.get(10, u64::MAX).is_none());
    }
}
