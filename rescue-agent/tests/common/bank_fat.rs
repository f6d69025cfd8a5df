//! One bank's FAT16 structures, read from the boot sector by the tests' own arithmetic (not the
//! agent's parser), to damage a FAT the way a power cut does and to check it after.

use std::os::unix::fs::FileExt;
use std::path::Path;

use esxi_fixtures::Fixture;

/// Where one bank's FAT16 structures are, in bytes from the start of the image.
pub struct BankFat {
    pub fat: u64,
    pub fat_bytes: u64,
    pub root: u64,
    pub root_bytes: u64,
    pub part: u64,
    pub len: u64,
    /// Data clusters the boot sector declares.
    pub clusters: u64,
}

impl BankFat {
    pub fn of(f: &Fixture, slot: u32) -> BankFat {
        let p = f.partitions.iter().find(|p| p.slot == slot).unwrap();
        let part = p.first_lba * 512;
        let bs = esxi_fixtures::read_range(&f.path, part, 512).unwrap();
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([bs[o], bs[o + 1]]));
        let (bps, spc, reserved, fats, root_entries, fat_sz) = (
            u16_at(11),
            u64::from(bs[13]),
            u16_at(14),
            u64::from(bs[16]),
            u16_at(17),
            u16_at(22),
        );
        let fat = part + reserved * bps;
        let total = match u16_at(19) {
            0 => u64::from(u32::from_le_bytes(bs[32..36].try_into().unwrap())),
            n => n,
        } * bps;
        let data = reserved * bps + fats * fat_sz * bps + root_entries * 32;
        BankFat {
            clusters: (total - data) / (spc * bps),
            fat,
            fat_bytes: fat_sz * bps,
            root: fat + fats * fat_sz * bps,
            root_bytes: root_entries * 32,
            part,
            len: (p.last_lba - p.first_lba + 1) * 512,
        }
    }

    pub fn copy(&self, path: &Path, n: u64) -> Vec<u8> {
        esxi_fixtures::read_range(path, self.fat + n * self.fat_bytes, self.fat_bytes as usize)
            .unwrap()
    }

    pub fn set(&self, path: &Path, copy: u64, cluster: u64, value: u16) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let at = self.fat + copy * self.fat_bytes + cluster * 2;
        file.write_all_at(&value.to_le_bytes(), at).unwrap();
    }

    /// (first cluster, size) of every file in the root directory, by 8.3 name.
    pub fn files(&self, path: &Path) -> Vec<([u8; 11], u16, u32)> {
        let root = esxi_fixtures::read_range(path, self.root, self.root_bytes as usize).unwrap();
        root.chunks(32)
            .take_while(|e| e[0] != 0)
            .filter(|e| e[0] != 0xE5 && e[11] & 0x18 == 0 && e[11] != 0x0F)
            .map(|e| {
                (
                    e[..11].try_into().unwrap(),
                    u16::from_le_bytes([e[26], e[27]]),
                    u32::from_le_bytes(e[28..32].try_into().unwrap()),
                )
            })
            .collect()
    }

    /// The highest cluster still free in the first FAT.
    pub fn free_cluster_near_end(&self, path: &Path) -> u64 {
        let fat = self.copy(path, 0);
        (2..self.clusters + 2)
            .rev()
            .find(|&c| fat[c as usize * 2..c as usize * 2 + 2] == [0, 0])
            .unwrap()
    }
}
