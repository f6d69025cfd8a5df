//! ESXi partition layouts per generation (shared/docs/esxi-format.md §1, tables A, B, C) and the
//! pure classification of a disk's partitions into one of them — positively or not at all.

use serde::Serialize;

use crate::gpt::Guid;

pub const EFI_SYSTEM: Guid = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
pub const BASIC_DATA: Guid = Guid::from_str_const("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
pub const VMK_DIAGNOSTIC: Guid = Guid::from_str_const("9D275380-40AD-11DB-BF97-000C2911D1B8");
pub const VMFS: Guid = Guid::from_str_const("AA31E02A-400F-11DB-9590-000C2911D1B8");
pub const VMFS_L: Guid = Guid::from_str_const("4EB2EA39-7855-4790-A79E-FAE495E21F8D");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Generation {
    /// Table A: 5.x, and 6.x installs that kept the minimum layout.
    #[serde(rename = "5.x")]
    Esxi5,
    /// Table B: 6.x extended layout with the large coredump in slot 9.
    #[serde(rename = "6.x")]
    Esxi6,
    /// Table C: 7.x and 8.x.
    #[serde(rename = "7.x/8.x")]
    Esxi7,
}

impl Generation {
    pub fn label(self) -> &'static str {
        match self {
            Generation::Esxi5 => "ESXi 5.x layout",
            Generation::Esxi6 => "ESXi 6.x layout",
            Generation::Esxi7 => "ESXi 7.x/8.x layout",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Disk,
    /// USB stick or SD card install (no VMFS; 0xE nibble in the bootbank UUID).
    Usb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SystemBoot,
    Bootbank,
    Diagnostic,
    Locker,
    LargeDiagnostic,
    Scratch,
    Vmfs,
    OsData,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::SystemBoot => "system boot",
            Role::Bootbank => "bootbank",
            Role::Diagnostic => "coredump",
            Role::Locker => "locker",
            Role::LargeDiagnostic => "large coredump",
            Role::Scratch => "scratch",
            Role::Vmfs => "VMFS datastore",
            Role::OsData => "OSDATA",
        }
    }
}

/// What classification needs to know of one used slot; gathered by the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFacts {
    pub slot: u32,
    pub type_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: String,
    /// "VMWARE FAT16    " found at the start of the partition's second sector (or byte 512).
    pub vmware_fat: Option<VmwareFatHeader>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmwareFatHeader {
    pub uuid: [u8; 16],
}

impl VmwareFatHeader {
    /// The installer's UUID starts with nibble 7 on disk installs and 0xE on USB/embedded ones.
    pub fn media(&self) -> Option<Media> {
        match self.uuid[0] >> 4 {
            0x7 => Some(Media::Disk),
            0xE => Some(Media::Usb),
            _ => None,
        }
    }
    /// The `/vmfs/volumes/<uuid>` form: struct '<16sIIH6s' → %08x-%08x-%04x-<12 hex>.
    pub fn volume_uuid(&self) -> String {
        let u = &self.uuid;
        let a = u32::from_le_bytes([u[0], u[1], u[2], u[3]]);
        let b = u32::from_le_bytes([u[4], u[5], u[6], u[7]]);
        let c = u16::from_le_bytes([u[8], u[9]]);
        let tail: String = u[10..].iter().map(|x| format!("{x:02x}")).collect();
        format!("{a:08x}-{b:08x}-{c:04x}-{tail}")
    }
}

/// One partition of a recognised ESXi disk: where it is now and where ESXi keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub role: Role,
    pub current_slot: u32,
    pub canonical_slot: u32,
    pub first_lba: u64,
    pub last_lba: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub generation: Generation,
    pub media: Media,
    /// In physical (start LBA) order.
    pub placements: Vec<Placement>,
}

impl Layout {
    pub fn misplaced(&self) -> impl Iterator<Item = &Placement> {
        self.placements
            .iter()
            .filter(|p| p.current_slot != p.canonical_slot)
    }
    pub fn bootbanks(&self) -> impl Iterator<Item = &Placement> {
        self.placements.iter().filter(|p| p.role == Role::Bootbank)
    }
}

/// Why a disk is not (positively) an ESXi disk; shown to the user as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotEsxi {
    #[error("no partitions")]
    Empty,
    #[error("partition {index} in disk order (slot {slot}, type {type_guid}) does not fit any ESXi layout")]
    Unexpected {
        index: usize,
        slot: u32,
        type_guid: Guid,
    },
    #[error("only {0} partitions: too few for an ESXi layout")]
    TooFew(usize),
    #[error("no VMware FAT header on the two bootbank candidates")]
    NoVmwareHeader,
    #[error("bootbank candidates differ in size ({0} vs {1} sectors)")]
    BankSizes(u64, u64),
    #[error("partitions overlap (slots {0} and {1})")]
    Overlap(u32, u32),
}

/// A step of a layout pattern: the type it must have, its role and ESXi's slot for it.
struct Step {
    type_guid: Guid,
    role: Role,
    slot: u32,
    optional: bool,
}

const fn step(type_guid: Guid, role: Role, slot: u32, optional: bool) -> Step {
    Step {
        type_guid,
        role,
        slot,
        optional,
    }
}

/// Physical order of each generation's partitions (tables A, B, C).
fn pattern(generation: Generation) -> &'static [Step] {
    const A: &[Step] = &[
        step(EFI_SYSTEM, Role::SystemBoot, 1, false),
        step(BASIC_DATA, Role::Bootbank, 5, false),
        step(BASIC_DATA, Role::Bootbank, 6, false),
        step(VMK_DIAGNOSTIC, Role::Diagnostic, 7, false),
        step(BASIC_DATA, Role::Locker, 8, false),
        step(BASIC_DATA, Role::Scratch, 2, true),
        step(VMFS, Role::Vmfs, 3, true),
    ];
    const B: &[Step] = &[
        step(EFI_SYSTEM, Role::SystemBoot, 1, false),
        step(BASIC_DATA, Role::Bootbank, 5, false),
        step(BASIC_DATA, Role::Bootbank, 6, false),
        step(VMK_DIAGNOSTIC, Role::Diagnostic, 7, false),
        step(BASIC_DATA, Role::Locker, 8, false),
        step(VMK_DIAGNOSTIC, Role::LargeDiagnostic, 9, false),
        step(BASIC_DATA, Role::Scratch, 2, true),
        step(VMFS, Role::Vmfs, 3, true),
    ];
    const C: &[Step] = &[
        step(EFI_SYSTEM, Role::SystemBoot, 1, false),
        step(BASIC_DATA, Role::Bootbank, 5, false),
        step(BASIC_DATA, Role::Bootbank, 6, false),
        step(VMFS_L, Role::OsData, 7, false),
        step(VMFS, Role::Vmfs, 8, true),
    ];
    match generation {
        Generation::Esxi5 => A,
        Generation::Esxi6 => B,
        Generation::Esxi7 => C,
    }
}

/// Match the used partitions, sorted by start, against a pattern: every partition must take a
/// step, in order; optional steps may be skipped; nothing may be left over.
fn match_pattern(sorted: &[&PartFacts], steps: &[Step]) -> Result<Vec<Placement>, NotEsxi> {
    let mut out = Vec::new();
    let mut s = 0;
    for (index, p) in sorted.iter().enumerate() {
        loop {
            let Some(st) = steps.get(s) else {
                return Err(NotEsxi::Unexpected {
                    index: index + 1,
                    slot: p.slot,
                    type_guid: p.type_guid,
                });
            };
            s += 1;
            if st.type_guid == p.type_guid {
                out.push(Placement {
                    role: st.role,
                    current_slot: p.slot,
                    canonical_slot: st.slot,
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                });
                break;
            }
            if !st.optional {
                return Err(NotEsxi::Unexpected {
                    index: index + 1,
                    slot: p.slot,
                    type_guid: p.type_guid,
                });
            }
        }
    }
    if steps[s..].iter().any(|st| !st.optional) {
        return Err(NotEsxi::TooFew(sorted.len()));
    }
    Ok(out)
}

/// Classify a disk's used partitions. Ok only when the arrangement is exactly one of ESXi's and
/// the bootbank candidates carry the VMware FAT header.
pub fn classify(parts: &[PartFacts]) -> Result<Layout, NotEsxi> {
    if parts.is_empty() {
        return Err(NotEsxi::Empty);
    }
    let mut sorted: Vec<&PartFacts> = parts.iter().collect();
    sorted.sort_by_key(|p| (p.first_lba, p.slot));
    for w in sorted.windows(2) {
        if w[1].first_lba <= w[0].last_lba {
            return Err(NotEsxi::Overlap(w[0].slot, w[1].slot));
        }
    }
    // 6.x differs from 5.x only by the second coredump; try the longer pattern first.
    let mut last_err = NotEsxi::Empty;
    let mut found = None;
    for generation in [Generation::Esxi6, Generation::Esxi5, Generation::Esxi7] {
        match match_pattern(&sorted, pattern(generation)) {
            Ok(placements) => {
                found = Some((generation, placements));
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let (generation, placements) = found.ok_or(last_err)?;

    let banks: Vec<&PartFacts> = placements
        .iter()
        .filter(|p| p.role == Role::Bootbank)
        .filter_map(|p| parts.iter().find(|f| f.slot == p.current_slot))
        .collect();
    let (a, b) = (banks[0], banks[1]);
    let size = |p: &PartFacts| p.last_lba - p.first_lba + 1;
    if size(a) != size(b) {
        return Err(NotEsxi::BankSizes(size(a), size(b)));
    }
    let header = a
        .vmware_fat
        .or(b.vmware_fat)
        .ok_or(NotEsxi::NoVmwareHeader)?;
    let has_vmfs = placements.iter().any(|p| p.role == Role::Vmfs);
    let media = header
        .media()
        .unwrap_or(if has_vmfs { Media::Disk } else { Media::Usb });
    Ok(Layout {
        generation,
        media,
        placements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(slot: u32, t: Guid, first: u64, last: u64, vmfat: bool) -> PartFacts {
        PartFacts {
            slot,
            type_guid: t,
            first_lba: first,
            last_lba: last,
            name: String::new(),
            vmware_fat: vmfat.then_some(VmwareFatHeader { uuid: [0x7a; 16] }),
        }
    }

    fn table_a() -> Vec<PartFacts> {
        vec![
            part(1, EFI_SYSTEM, 64, 8191, false),
            part(2, BASIC_DATA, 1843200, 10229759, false),
            part(3, VMFS, 10229760, 16777182, false),
            part(5, BASIC_DATA, 8224, 520191, true),
            part(6, BASIC_DATA, 520224, 1032191, true),
            part(7, VMK_DIAGNOSTIC, 1032224, 1257471, false),
            part(8, BASIC_DATA, 1257504, 1843199, false),
        ]
    }

    #[test]
    fn table_a_is_5x_and_canonical() {
        let l = classify(&table_a()).unwrap();
        assert_eq!(l.generation, Generation::Esxi5);
        assert_eq!(l.media, Media::Disk);
        assert_eq!(l.misplaced().count(), 0);
    }

    #[test]
    fn compacted_table_a_maps_back() {
        let mut parts = table_a();
        for (i, p) in parts.iter_mut().enumerate() {
            p.slot = i as u32 + 1;
        }
        let l = classify(&parts).unwrap();
        let moves: Vec<(u32, u32)> = l
            .misplaced()
            .map(|p| (p.current_slot, p.canonical_slot))
            .collect();
        assert_eq!(moves, vec![(4, 5), (5, 6), (6, 7), (7, 8)]);
    }

    #[test]
    fn without_vmware_header_is_not_esxi() {
        let mut parts = table_a();
        parts.iter_mut().for_each(|p| p.vmware_fat = None);
        assert_eq!(classify(&parts), Err(NotEsxi::NoVmwareHeader));
    }

    #[test]
    fn extra_partition_is_not_esxi() {
        let mut parts = table_a();
        parts.push(part(9, BASIC_DATA, 20_000_000, 20_000_100, false));
        assert!(classify(&parts).is_err());
    }

    #[test]
    fn windows_layout_is_not_esxi() {
        let msr = Guid::from_str_const("E3C9E316-0B5C-4DB8-817D-F92DF00215AE");
        let parts = vec![
            part(1, EFI_SYSTEM, 2048, 206847, false),
            part(2, msr, 206848, 239615, false),
            part(3, BASIC_DATA, 239616, 9_000_000, false),
        ];
        assert!(classify(&parts).is_err());
    }

    #[test]
    fn table_c_with_usb_uuid() {
        let mut parts = vec![
            part(1, EFI_SYSTEM, 64, 204863, false),
            part(5, BASIC_DATA, 208896, 2306047, true),
            part(6, BASIC_DATA, 2308096, 4405247, true),
            part(7, VMFS_L, 4407296, 31116254, false),
        ];
        parts[1].vmware_fat = Some(VmwareFatHeader { uuid: [0xE1; 16] });
        let l = classify(&parts).unwrap();
        assert_eq!(l.generation, Generation::Esxi7);
        assert_eq!(l.media, Media::Usb);
    }
}
