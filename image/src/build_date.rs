//! The build's one clock: SOURCE_DATE_EPOCH. Every date written into an artifact (ISO volume
//! dates and UUID, FAT timestamps) and every identifier that would otherwise be random (FAT volume
//! serials, GPT GUIDs) derives from it, so two builds from the same inputs are byte-identical.

use anyhow::{bail, Context, Result};
use rescue_agent::gpt::Guid;
use sha2::{Digest, Sha256};

/// Epoch used when SOURCE_DATE_EPOCH is unset: 2026-01-01 00:00:00 UTC (a fixed value, so even
/// builds without it are reproducible; FAT cannot store dates before 1980).
pub const DEFAULT_EPOCH: u64 = 1_767_225_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildDate {
    pub epoch: u64,
}

impl BuildDate {
    /// SOURCE_DATE_EPOCH when set, else [`DEFAULT_EPOCH`]. Dates before 1980 are refused: FAT
    /// timestamps start there.
    pub fn from_env() -> Result<BuildDate> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => {
                let epoch: u64 = v
                    .trim()
                    .parse()
                    .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number"))?;
                BuildDate::new(epoch)
            }
            _ => BuildDate::new(DEFAULT_EPOCH),
        }
    }

    pub fn new(epoch: u64) -> Result<BuildDate> {
        // 1980-01-01 .. 2099-12-31: FAT and the ISO9660 date fields both hold these.
        if !(315_532_800..4_102_444_800).contains(&epoch) {
            bail!("build date {epoch} is outside 1980..2099");
        }
        Ok(BuildDate { epoch })
    }

    /// (year, month, day, hour, minute, second) in UTC.
    pub fn civil(&self) -> (u64, u64, u64, u64, u64, u64) {
        let days = self.epoch / 86_400;
        let secs = self.epoch % 86_400;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
    }

    /// xorriso's `--modification-date` value, `YYYYMMDDhhmmsscc` (cc = centiseconds, 00).
    pub fn iso_modification_date(&self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00")
    }

    /// The ISO9660 "UUID" GRUB derives from that date: `YYYY-MM-DD-hh-mm-ss-cc`.
    pub fn iso_uuid(&self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}-00")
    }

    /// 32 bits derived from the date and a purpose label (FAT volume serials).
    pub fn serial(&self, purpose: &str) -> u32 {
        let h = self.digest(purpose);
        u32::from_be_bytes([h[0], h[1], h[2], h[3]])
    }

    /// A version-4-shaped GUID derived from the date and a purpose label (GPT disk and
    /// partition GUIDs).
    pub fn guid(&self, purpose: &str) -> Guid {
        let h = self.digest(purpose);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        // On-disk order: byte 7 is the high byte of the third field (version), byte 8 the
        // variant.
        b[7] = (b[7] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    fn digest(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"esxi-rescue build id\0");
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(self.epoch.to_le_bytes());
        h.finalize().into()
    }
}

/// GRUB's text form of a FAT volume serial: `ABCD-1234` (as `search --fs-uuid` wants it).
pub fn fat_serial_text(serial: u32) -> String {
    format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = BuildDate::new(1_700_000_000).unwrap();
        assert_eq!(d.civil(), (2023, 11, 14, 22, 13, 20));
        assert_eq!(d.iso_modification_date(), "2023111422132000");
        assert_eq!(d.iso_uuid(), "2023-11-14-22-13-20-00");
        let d = BuildDate::new(DEFAULT_EPOCH).unwrap();
        assert_eq!(d.civil(), (2026, 1, 1, 0, 0, 0));
        // Leap day.
        assert_eq!(
            BuildDate::new(951_782_400).unwrap().civil(),
            (2000, 2, 29, 0, 0, 0)
        );
        assert!(BuildDate::new(0).is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let d = BuildDate::new(1_700_000_000).unwrap();
        assert_eq!(d.serial("esp"), d.serial("esp"));
        assert_ne!(d.serial("esp"), d.serial("rescue"));
        let g = d.guid("disk");
        assert_eq!(g, d.guid("disk"));
        let text = g.to_string();
        assert_eq!(&text[14..15], "4", "{text}");
        assert!(matches!(&text[19..20], "8" | "9" | "A" | "B"), "{text}");
        assert_eq!(fat_serial_text(0x1234_abcd), "1234-ABCD");
        let e = BuildDate::new(1_700_000_001).unwrap();
        assert_ne!(d.guid("disk"), e.guid("disk"));
    }
}
