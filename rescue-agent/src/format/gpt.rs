//! GPT header and entry array: parse and serialize slot-exactly (never compacting), both copies.
//!
//! Every header field is bounds-checked before it is used to size an allocation or a read, so a
//! hostile header yields a `GptError`, never a panic or a huge allocation.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::blockdev::{BlockDevice, BlockError};

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
pub const MIN_HEADER_SIZE: u32 = 92;
/// Largest entry array we accept: 1 MiB (the standard one is 16 KiB).
pub const MAX_ARRAY_BYTES: u64 = 1 << 20;
pub const MAX_ENTRY_SIZE: u32 = 4096;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GptError {
    #[error("no GPT signature at LBA {lba}")]
    NoSignature { lba: u64 },
    #[error("GPT header at LBA {lba}: header size {size} outside 92..={max}")]
    HeaderSize { lba: u64, size: u32, max: u32 },
    #[error(
        "GPT header at LBA {lba}: header CRC {stored:#010x} stored, {computed:#010x} computed"
    )]
    HeaderCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    #[error("GPT header at LBA {lba}: MyLBA says {my_lba}")]
    MyLba { lba: u64, my_lba: u64 },
    #[error("GPT header at LBA {lba}: entry size {size} is not a multiple of 128 within 128..={MAX_ENTRY_SIZE}")]
    EntrySize { lba: u64, size: u32 },
    #[error("GPT header at LBA {lba}: {count} entries of {size} bytes exceed the {MAX_ARRAY_BYTES}-byte limit")]
    EntryCount { lba: u64, count: u32, size: u32 },
    #[error(
        "GPT header at LBA {lba}: {field} = {value} lies outside the disk (last LBA {last_lba})"
    )]
    LbaRange {
        lba: u64,
        field: &'static str,
        value: u64,
        last_lba: u64,
    },
    #[error("GPT header at LBA {lba}: usable range {first}..{last} is inconsistent")]
    UsableRange { lba: u64, first: u64, last: u64 },
    #[error("GPT header at LBA {lba}: entry array at LBA {entries_lba} overlaps the header or the usable area")]
    ArrayPlacement { lba: u64, entries_lba: u64 },
    #[error("GPT entry array at LBA {entries_lba}: CRC {stored:#010x} stored, {computed:#010x} computed")]
    ArrayCrc {
        entries_lba: u64,
        stored: u32,
        computed: u32,
    },
    #[error("GPT entry {slot}: first LBA {first} > last LBA {last} or outside the usable area")]
    EntryRange { slot: u32, first: u64, last: u64 },
    #[error("reading the disk: {0}")]
    Io(String),
}

impl From<BlockError> for GptError {
    fn from(e: BlockError) -> Self {
        GptError::Io(e.to_string())
    }
}

/// A GUID as stored on disk (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub const ZERO: Guid = Guid([0; 16]);

    /// Parse the canonical text form ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").
    pub const fn from_str_const(s: &str) -> Guid {
        let b = s.as_bytes();
        let mut hex = [0u8; 16];
        let mut i = 0;
        let mut n = 0;
        while i < b.len() {
            if b[i] != b'-' {
                let v = match b[i] {
                    b'0'..=b'9' => b[i] - b'0',
                    b'a'..=b'f' => b[i] - b'a' + 10,
                    b'A'..=b'F' => b[i] - b'A' + 10,
                    _ => panic!("bad hex digit in GUID"),
                };
                if n % 2 == 0 {
                    hex[n / 2] = v << 4;
                } else {
                    hex[n / 2] |= v;
                }
                n += 1;
            }
            i += 1;
        }
        assert!(n == 32, "GUID must have 32 hex digits");
        // Text order -> on-disk mixed-endian order.
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut out = [0u8; 16];
        let mut j = 0;
        while j < 16 {
            out[j] = hex[order[j]];
            j += 1;
        }
        Guid(out)
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A validated GPT header. `raw` is the whole sector so bytes past `header_size` survive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    raw: Vec<u8>,
}

// Field offsets from the UEFI specification.
const OFF_HEADER_SIZE: usize = 12;
const OFF_HEADER_CRC: usize = 16;
const OFF_MY_LBA: usize = 24;
const OFF_ALTERNATE_LBA: usize = 32;
const OFF_FIRST_USABLE: usize = 40;
const OFF_LAST_USABLE: usize = 48;
const OFF_DISK_GUID: usize = 56;
const OFF_ENTRIES_LBA: usize = 72;
const OFF_NUM_ENTRIES: usize = 80;
const OFF_ENTRY_SIZE: usize = 84;
const OFF_ENTRIES_CRC: usize = 88;

impl Header {
    /// Parse and validate the header sector read from `lba` of a disk of `total_sectors`.
    pub fn parse(sector: &[u8], lba: u64, total_sectors: u64) -> Result<Header, GptError> {
        if sector.len() < 512 || &sector[..8] != SIGNATURE {
            return Err(GptError::NoSignature { lba });
        }
        let max = sector.len() as u32;
        let size = u32_at(sector, OFF_HEADER_SIZE);
        if !(MIN_HEADER_SIZE..=max).contains(&size) {
            return Err(GptError::HeaderSize { lba, size, max });
        }
        let header = Header {
            raw: sector.to_vec(),
        };
        let stored = header.header_crc();
        let computed = header.compute_header_crc();
        if stored != computed {
            return Err(GptError::HeaderCrc {
                lba,
                stored,
                computed,
            });
        }
        header.check_fields(lba, total_sectors)?;
        Ok(header)
    }

    fn check_fields(&self, lba: u64, total_sectors: u64) -> Result<(), GptError> {
        let last_lba = total_sectors.saturating_sub(1);
        if self.my_lba() != lba {
            return Err(GptError::MyLba {
                lba,
                my_lba: self.my_lba(),
            });
        }
        let size = self.entry_size();
        if !(128..=MAX_ENTRY_SIZE).contains(&size) || !size.is_multiple_of(128) {
            return Err(GptError::EntrySize { lba, size });
        }
        let count = self.num_entries();
        if count == 0 || u64::from(count) * u64::from(size) > MAX_ARRAY_BYTES {
            return Err(GptError::EntryCount { lba, count, size });
        }
        for (field, value) in [
            ("AlternateLBA", self.alternate_lba()),
            ("FirstUsableLBA", self.first_usable()),
            ("LastUsableLBA", self.last_usable()),
            ("PartitionEntryLBA", self.entries_lba()),
        ] {
            if value > last_lba {
                return Err(GptError::LbaRange {
                    lba,
                    field,
                    value,
                    last_lba,
                });
            }
        }
        let (first, last) = (self.first_usable(), self.last_usable());
        if first > last || first < 2 {
            return Err(GptError::UsableRange { lba, first, last });
        }
        let array_sectors = self.array_bytes().div_ceil(self.raw.len() as u64);
        let array_start = self.entries_lba();
        let array_end = array_start + array_sectors; // exclusive; cannot overflow: both bounded
        let overlaps_usable = array_start <= last && array_end > first;
        let overlaps_header = array_start <= lba && array_end > lba;
        if array_start < 1 || array_end > total_sectors || overlaps_usable || overlaps_header {
            return Err(GptError::ArrayPlacement {
                lba,
                entries_lba: array_start,
            });
        }
        Ok(())
    }

    pub fn sector_size(&self) -> usize {
        self.raw.len()
    }
    pub fn header_size(&self) -> u32 {
        u32_at(&self.raw, OFF_HEADER_SIZE)
    }
    pub fn header_crc(&self) -> u32 {
        u32_at(&self.raw, OFF_HEADER_CRC)
    }
    pub fn my_lba(&self) -> u64 {
        u64_at(&self.raw, OFF_MY_LBA)
    }
    pub fn alternate_lba(&self) -> u64 {
        u64_at(&self.raw, OFF_ALTERNATE_LBA)
    }
    pub fn first_usable(&self) -> u64 {
        u64_at(&self.raw, OFF_FIRST_USABLE)
    }
    pub fn last_usable(&self) -> u64 {
        u64_at(&self.raw, OFF_LAST_USABLE)
    }
    pub fn disk_guid(&self) -> Guid {
        Guid(
            self.raw[OFF_DISK_GUID..OFF_DISK_GUID + 16]
                .try_into()
                .expect("16"),
        )
    }
    pub fn entries_lba(&self) -> u64 {
        u64_at(&self.raw, OFF_ENTRIES_LBA)
    }
    pub fn num_entries(&self) -> u32 {
        u32_at(&self.raw, OFF_NUM_ENTRIES)
    }
    pub fn entry_size(&self) -> u32 {
        u32_at(&self.raw, OFF_ENTRY_SIZE)
    }
    pub fn entries_crc(&self) -> u32 {
        u32_at(&self.raw, OFF_ENTRIES_CRC)
    }
    pub fn array_bytes(&self) -> u64 {
        u64::from(self.num_entries()) * u64::from(self.entry_size())
    }
    pub fn array_sectors(&self) -> u64 {
        self.array_bytes().div_ceil(self.raw.len() as u64)
    }

    fn compute_header_crc(&self) -> u32 {
        let size = self.header_size() as usize;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.raw[..OFF_HEADER_CRC]);
        hasher.update(&[0; 4]);
        hasher.update(&self.raw[OFF_HEADER_CRC + 4..size]);
        hasher.finalize()
    }

    fn set_u64(&mut self, at: usize, v: u64) {
        self.raw[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// The same header placed at another location: the fields that say where it and its array
    /// live change, everything else is kept byte for byte. CRCs are recomputed.
    pub fn relocated(
        &self,
        my_lba: u64,
        alternate_lba: u64,
        entries_lba: u64,
        last_usable: u64,
        entries_crc: u32,
    ) -> Header {
        let mut h = self.clone();
        h.set_u64(OFF_MY_LBA, my_lba);
        h.set_u64(OFF_ALTERNATE_LBA, alternate_lba);
        h.set_u64(OFF_ENTRIES_LBA, entries_lba);
        h.set_u64(OFF_LAST_USABLE, last_usable);
        h.raw[OFF_ENTRIES_CRC..OFF_ENTRIES_CRC + 4].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = h.compute_header_crc();
        h.raw[OFF_HEADER_CRC..OFF_HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub fn to_bytes(&self) -> &[u8] {
        &self.raw
    }
}

/// One slot of the entry array, kept as its raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    raw: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "Entry(empty)");
        }
        write!(
            f,
            "Entry({} {}..={} {:?})",
            self.type_guid(),
            self.first_lba(),
            self.last_lba(),
            self.name()
        )
    }
}

impl Entry {
    pub fn from_raw(raw: Vec<u8>) -> Entry {
        debug_assert!(raw.len() >= 128);
        Entry { raw }
    }
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    pub fn type_guid(&self) -> Guid {
        Guid(self.raw[0..16].try_into().expect("16"))
    }
    pub fn unique_guid(&self) -> Guid {
        Guid(self.raw[16..32].try_into().expect("16"))
    }
    pub fn first_lba(&self) -> u64 {
        u64_at(&self.raw, 32)
    }
    pub fn last_lba(&self) -> u64 {
        u64_at(&self.raw, 40)
    }
    pub fn name(&self) -> String {
        let units: Vec<u16> = self.raw[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }
    /// The UEFI rule: an entry whose type GUID is zero is unused.
    pub fn is_empty(&self) -> bool {
        self.type_guid().is_zero()
    }
    pub fn sectors(&self) -> u64 {
        self.last_lba()
            .saturating_sub(self.first_lba())
            .saturating_add(1)
    }
}

/// The entry array of one GPT copy, slot by slot (slot = index + 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryArray {
    pub entry_size: u32,
    pub entries: Vec<Entry>,
}

impl EntryArray {
    pub fn parse(bytes: &[u8], entry_size: u32, count: u32) -> EntryArray {
        let entries = bytes
            .chunks_exact(entry_size as usize)
            .take(count as usize)
            .map(|c| Entry::from_raw(c.to_vec()))
            .collect();
        EntryArray {
            entry_size,
            entries,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(|e| e.raw.iter().copied())
            .collect()
    }
    /// (slot, entry) for every used slot, in array order.
    pub fn used(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
            .map(|(i, e)| (i as u32 + 1, e))
    }
    pub fn empty_entry(&self) -> Entry {
        Entry::from_raw(vec![0; self.entry_size as usize])
    }
}

/// One complete, validated copy (header + array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptCopy {
    pub header: Header,
    pub array: EntryArray,
}

/// Read and validate the copy whose header sits at `lba`.
pub fn read_copy(dev: &BlockDevice, lba: u64) -> Result<GptCopy, GptError> {
    let total = dev.sectors();
    if lba == 0 || lba >= total {
        return Err(GptError::NoSignature { lba });
    }
    let sector = dev.read_sectors(lba, 1)?;
    let header = Header::parse(&sector, lba, total)?;
    let bytes = dev.read_sectors(header.entries_lba(), header.array_sectors())?;
    let bytes = &bytes[..header.array_bytes() as usize];
    let computed = crc32fast::hash(bytes);
    if computed != header.entries_crc() {
        return Err(GptError::ArrayCrc {
            entries_lba: header.entries_lba(),
            stored: header.entries_crc(),
            computed,
        });
    }
    let array = EntryArray::parse(bytes, header.entry_size(), header.num_entries());
    for (slot, e) in array.used() {
        if e.first_lba() > e.last_lba()
            || e.first_lba() < header.first_usable()
            || e.last_lba() > header.last_usable()
        {
            return Err(GptError::EntryRange {
                slot,
                first: e.first_lba(),
                last: e.last_lba(),
            });
        }
    }
    Ok(GptCopy { header, array })
}

/// Both copies of a disk's GPT as found, each valid or with the reason it is not.
#[derive(Clone, Debug)]
pub struct DiskGpt {
    pub sector_size: u32,
    pub total_sectors: u64,
    pub primary: Result<GptCopy, GptError>,
    /// Where the backup was looked for and what was found there, best first.
    pub backup: Result<GptCopy, GptError>,
    pub backup_lba: Option<u64>,
    /// The primary header's AlternateLBA when the primary header itself parsed.
    pub primary_alternate_lba: Option<u64>,
}

impl DiskGpt {
    /// The copy repairs start from: the primary when valid, else the backup.
    pub fn source(&self) -> Option<&GptCopy> {
        self.primary.as_ref().ok().or(self.backup.as_ref().ok())
    }
    pub fn last_lba(&self) -> u64 {
        self.total_sectors - 1
    }
}

/// Read the primary at LBA 1 and the backup at the primary's AlternateLBA, then at the last LBA.
pub fn read_disk_gpt(dev: &BlockDevice) -> Result<DiskGpt, BlockError> {
    let total = dev.sectors();
    let primary = read_copy(dev, 1);
    // The primary header may parse even when its array does not; its AlternateLBA still helps.
    let primary_alternate_lba = match &primary {
        Ok(c) => Some(c.header.alternate_lba()),
        Err(_) if total > 1 => dev
            .read_sectors(1, 1)
            .ok()
            .and_then(|s| Header::parse(&s, 1, total).ok())
            .map(|h| h.alternate_lba()),
        Err(_) => None,
    };
    let mut candidates: Vec<u64> = primary_alternate_lba.into_iter().collect();
    if total > 1 && !candidates.contains(&(total - 1)) {
        candidates.push(total - 1);
    }
    let mut backup = Err(GptError::NoSignature {
        lba: total.saturating_sub(1),
    });
    let mut backup_lba = None;
    for lba in candidates {
        match read_copy(dev, lba) {
            Ok(copy) => {
                backup = Ok(copy);
                backup_lba = Some(lba);
                break;
            }
            // Keep the most informative error: a damaged header beats "no signature".
            Err(e) if matches!(backup, Err(GptError::NoSignature { .. })) => backup = Err(e),
            Err(_) => {}
        }
    }
    Ok(DiskGpt {
        sector_size: dev.sector_size(),
        total_sectors: total,
        primary,
        backup,
        backup_lba,
        primary_alternate_lba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trip() {
        let g = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(g.0[0], 0x28);
        assert_eq!(g.0[3], 0xC1);
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }

    fn header_sector() -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[..8].copy_from_slice(SIGNATURE);
        s[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        s[12..16].copy_from_slice(&92u32.to_le_bytes());
        s[24..32].copy_from_slice(&1u64.to_le_bytes());
        s[32..40].copy_from_slice(&999u64.to_le_bytes());
        s[40..48].copy_from_slice(&34u64.to_le_bytes());
        s[48..56].copy_from_slice(&966u64.to_le_bytes());
        s[72..80].copy_from_slice(&2u64.to_le_bytes());
        s[80..84].copy_from_slice(&128u32.to_le_bytes());
        s[84..88].copy_from_slice(&128u32.to_le_bytes());
        fix_crc(&mut s);
        s
    }

    fn fix_crc(s: &mut [u8]) {
        s[16..20].fill(0);
        let size = u32_at(s, 12) as usize;
        let crc = crc32fast::hash(&s[..size.min(s.len())]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn valid_header_parses() {
        let h = Header::parse(&header_sector(), 1, 1000).unwrap();
        assert_eq!(h.array_sectors(), 32);
        assert_eq!(h.alternate_lba(), 999);
    }

    #[test]
    fn hostile_fields_are_errors() {
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (12, 0u32.to_le_bytes().to_vec()),
            (12, 100_000u32.to_le_bytes().to_vec()),
            (84, 0u32.to_le_bytes().to_vec()),
            (84, 127u32.to_le_bytes().to_vec()),
            (84, 0x8000_0000u32.to_le_bytes().to_vec()),
            (80, u32::MAX.to_le_bytes().to_vec()),
            (80, 0u32.to_le_bytes().to_vec()),
            (32, u64::MAX.to_le_bytes().to_vec()),
            (48, 5000u64.to_le_bytes().to_vec()),
            (40, 0u64.to_le_bytes().to_vec()),
            (72, 40u64.to_le_bytes().to_vec()),
            (72, u64::MAX.to_le_bytes().to_vec()),
            (24, 7u64.to_le_bytes().to_vec()),
        ];
        for (at, bytes) in cases {
            let mut s = header_sector();
            s[at..at + bytes.len()].copy_from_slice(&bytes);
            if at != 12 {
                fix_crc(&mut s);
            }
            assert!(
                Header::parse(&s, 1, 1000).is_err(),
                "field at {at} = {bytes:?} accepted"
            );
        }
    }

    #[test]
    fn relocation_keeps_other_bytes() {
        let mut s = header_sector();
        s[200] = 0xAB; // beyond header_size: must survive
        fix_crc(&mut s);
        let h = Header::parse(&s, 1, 1000).unwrap();
        let b = h.relocated(999, 1, 967, 966, 0x1234);
        let parsed = Header::parse(b.to_bytes(), 999, 1000).unwrap();
        assert_eq!(parsed.to_bytes()[200], 0xAB);
        assert_eq!(parsed.entries_crc(), 0x1234);
        assert_eq!(parsed.disk_guid(), h.disk_guid());
    }
}
