//! Which esx.conf passthrough owner lines the rescue flips back to `vmkernel`.
//!
//! The policy comes from the CLI or the kernel argument `rescue.passthru=`:
//!
//! * `storage` (default): flip passthrough only where it takes storage away
//!   from ESXi — the function carries a disk of the ESXi install, or it is a
//!   mass-storage controller (PCI base class 0x01). GPUs, NICs, USB
//!   controllers not carrying ESXi keep their passthrough.
//! * `all`: flip every passthru line.
//! * `none`: flip nothing (report only).
//! * a comma-separated list of Linux hex addresses (`0000:01:00.0,…`): flip
//!   exactly those.
//!
//! The same policy decides for ConfigStore `esx/hardware/pci_devices` rows (7.0U2+).
//! Under `storage`, a PCI bridge upstream of a function that carries an ESXi disk flips too:
//! passing the bridge through hands everything behind it to a VM.
//!
//! Lines whose address could not be parsed never flip, with one exception: an address shaped
//! like PCI but out of range (`0000:00:31.2`, a decimal device in the hex form) flips under
//! `all`. SR-IOV `.vf` names and garbage never flip.

use crate::esxconf::{self, OwnerLine, PciAddr};
use std::fmt;

/// What to do with passthru owner lines.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Storage,
    All,
    None,
    List(Vec<PciAddr>),
}

/// Why a policy string did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("empty passthrough policy (expected storage, all, none, or a comma-separated list of PCI addresses like 0000:01:00.0)")]
    Empty,
    #[error("passthrough policy {input:?}: item {index} is empty")]
    EmptyItem { input: String, index: usize },
    #[error(
        "passthrough policy item {index} ({item:?}) is neither storage/all/none \
         nor a PCI address: {source}"
    )]
    BadItem {
        index: usize,
        item: String,
        source: crate::esxconf::AddrError,
    },
}

impl Policy {
    /// "storage" | "all" | "none" | "0000:01:00.0,0000:02:00.0" (Linux hex, comma separated). Same words on the CLI and as the kernel argument rescue.passthru=. Error says which item is bad.
    ///
    /// Words are case-insensitive; surrounding whitespace is ignored; repeated
    /// addresses are kept once, in first-seen order.
    pub fn parse(s: &str) -> Result<Policy, PolicyError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(PolicyError::Empty);
        }
        match input.to_ascii_lowercase().as_str() {
            "storage" => return Ok(Policy::Storage),
            "all" => return Ok(Policy::All),
            "none" => return Ok(Policy::None),
            _ => {}
        }
        let mut addrs: Vec<PciAddr> = Vec::new();
        for (i, raw) in input.split(',').enumerate() {
            let item = raw.trim();
            if item.is_empty() {
                return Err(PolicyError::EmptyItem {
                    input: input.to_string(),
                    index: i + 1,
                });
            }
            let addr = PciAddr::parse_linux(item).map_err(|source| PolicyError::BadItem {
                index: i + 1,
                item: item.to_string(),
                source,
            })?;
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(Policy::List(addrs))
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Policy, PolicyError> {
        Policy::parse(s)
    }
}

impl fmt::Display for Policy {
    /// The same spelling [`Policy::parse`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Storage => f.write_str("storage"),
            Policy::All => f.write_str("all"),
            Policy::None => f.write_str("none"),
            Policy::List(addrs) => {
                for (i, a) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
        }
    }
}

/// What is known about one PCI function on this machine (from sysfs on a live system, or from --controller for image files).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PciFunction {
    pub addr: PciAddr,
    /// 24-bit PCI class code, e.g. 0x010400 RAID.
    pub class: Option<u32>,
    pub carries_esxi_disk: bool,
    pub description: Option<String>,
    /// The PCI bridges between the root and this function, nearest the root first.
    pub upstream: Vec<PciAddr>,
    /// The Linux driver bound to it (live systems only).
    pub driver: Option<String>,
}

/// The verdict for one owner line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub flip: bool,
    pub reason: String,
}

impl Decision {
    fn flip(reason: impl Into<String>) -> Decision {
        Decision {
            flip: true,
            reason: reason.into(),
        }
    }

    fn keep(reason: impl Into<String>) -> Decision {
        Decision {
            flip: false,
            reason: reason.into(),
        }
    }
}

/// PCI base class of mass-storage controllers.
const BASE_MASS_STORAGE: u32 = 0x01;

/// `0x010400` → `"0x0104 RAID"`.
fn class_label(class: u32) -> String {
    format!("0x{:04x} {}", (class >> 8) & 0xffff, class_name(class))
}

/// Decide for one owner line. Only passthru lines can flip. Storage (default): flip when the function carries a disk of the ESXi install (boot disk or VMFS) or its class is mass storage (base class 0x01); keep others (GPU 0x03, NIC 0x02, USB 0x0c03 not carrying ESXi …) with a reason naming the class when known. All: flip every passthru line. None: flip nothing. List: flip exactly the listed addresses. An unparseable address never flips. Reasons are short and specific, e.g. "carries the ESXi boot disk", "mass-storage controller (class 0x0104)", "not a storage device (class 0x0300 display); passthrough kept", "not in rescue.passthru list", "policy none".
///
/// Under `storage`, the function is looked up by numeric address; when several
/// entries share the address, any one carrying an ESXi disk counts and the
/// first known class is used.
pub fn decide(policy: &Policy, owner: &OwnerLine, functions: &[PciFunction]) -> Decision {
    if !owner.is_passthru() {
        return Decision::keep(format!(
            "owner is {:?}, not passthru; nothing to change",
            owner.value
        ));
    }
    match owner.addr {
        Some(addr) => decide_addr(policy, addr, functions),
        None => decide_unreadable(policy, &owner.key_addr),
    }
}

/// Decide for a passthrough owner whose address could not be read. Only `all` flips, and only
/// addresses with a likely reading (a PCI-shaped key with a field out of range).
pub fn decide_unreadable(policy: &Policy, key_addr: &str) -> Decision {
    let readings = esxconf::likely_readings(key_addr);
    if readings.is_empty() {
        return Decision::keep(format!(
            "unrecognised device address {key_addr:?}; left unchanged"
        ));
    }
    let list = readings
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" or ");
    match policy {
        Policy::All => Decision::flip(format!(
            "policy all (address {key_addr:?} is not a valid PCI address; likely {list})"
        )),
        _ => Decision::keep(format!(
            "address {key_addr:?} is not a valid PCI address (likely {list}); left unchanged, --passthru all flips it"
        )),
    }
}

/// Decide for a passthrough owner at `addr` (an esx.conf line or a ConfigStore row).
pub fn decide_addr(policy: &Policy, addr: PciAddr, functions: &[PciFunction]) -> Decision {
    match policy {
        Policy::None => Decision::keep("policy none"),
        Policy::All => Decision::flip("policy all"),
        Policy::List(list) => {
            if list.contains(&addr) {
                Decision::flip("listed in rescue.passthru")
            } else {
                Decision::keep("not in rescue.passthru list")
            }
        }
        Policy::Storage => decide_storage(addr, functions),
    }
}

fn decide_storage(addr: PciAddr, functions: &[PciFunction]) -> Decision {
    if let Some(below) = functions
        .iter()
        .find(|f| f.carries_esxi_disk && f.upstream.contains(&addr))
    {
        return Decision::flip(format!(
            "PCI bridge upstream of {}, which carries a disk of the ESXi install",
            below.addr
        ));
    }
    let matching: Vec<&PciFunction> = functions.iter().filter(|f| f.addr == addr).collect();
    if matching.is_empty() {
        return Decision::keep(format!(
            "no PCI function at {addr} on this machine; passthrough kept"
        ));
    }
    let class = matching.iter().find_map(|f| f.class);
    if matching.iter().any(|f| f.carries_esxi_disk) {
        return Decision::flip(match class {
            Some(c) => format!(
                "carries a disk of the ESXi install (boot disk or VMFS; class {})",
                class_label(c)
            ),
            None => "carries a disk of the ESXi install (boot disk or VMFS)".to_string(),
        });
    }
    match class {
        Some(c) if (c >> 16) & 0xff == BASE_MASS_STORAGE => Decision::flip(format!(
            "mass-storage controller (class {})",
            class_label(c)
        )),
        Some(c) => Decision::keep(format!(
            "not a storage device (class {}); passthrough kept",
            class_label(c)
        )),
        None => {
            Decision::keep("class unknown and carries no ESXi disk; passthrough kept".to_string())
        }
    }
}

/// A few common base/sub classes: "SATA/AHCI", "RAID", "NVMe", "SAS", "SCSI", "USB", "display", "network", … else "other".
///
/// `class` is the 24-bit class code (base, subclass, programming interface).
pub fn class_name(class: u32) -> &'static str {
    let base = (class >> 16) & 0xff;
    let sub = (class >> 8) & 0xff;
    match (base, sub) {
        (0x01, 0x00) => "SCSI",
        (0x01, 0x01) => "IDE",
        (0x01, 0x04) => "RAID",
        (0x01, 0x05) => "ATA",
        (0x01, 0x06) => "SATA/AHCI",
        (0x01, 0x07) => "SAS",
        (0x01, 0x08) => "NVMe",
        (0x01, _) => "mass storage",
        (0x02, _) => "network",
        (0x03, _) => "display",
        (0x04, _) => "multimedia",
        (0x05, _) => "memory",
        (0x06, _) => "bridge",
        (0x07, _) => "communication",
        (0x08, _) => "system peripheral",
        (0x0c, 0x03) => "USB",
        (0x0c, 0x04) => "Fibre Channel",
        (0x0c, 0x05) => "SMBus",
        (0x0c, _) => "serial bus",
        (0x0d, _) => "wireless",
        (0x10, _) => "encryption",
        (0x12, _) => "accelerator",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxconf::{parse_owners, AddrError, AddrForm};

    fn pa(s: &str) -> PciAddr {
        PciAddr::parse_linux(s).unwrap()
    }

    fn owner(key_addr: &str, value: &str) -> OwnerLine {
        let text = format!("/device/{key_addr}/owner = \"{value}\"\n");
        let mut v = parse_owners(&text);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn func(addr: &str, class: Option<u32>, carries: bool) -> PciFunction {
        PciFunction {
            addr: pa(addr),
            class,
            carries_esxi_disk: carries,
            description: None,
            upstream: Vec::new(),
            driver: None,
        }
    }

    // ---- Policy::parse ----

    #[test]
    fn parse_words() {
        assert_eq!(Policy::parse("storage"), Ok(Policy::Storage));
        assert_eq!(Policy::parse("all"), Ok(Policy::All));
        assert_eq!(Policy::parse("none"), Ok(Policy::None));
        assert_eq!(Policy::parse(" Storage\n"), Ok(Policy::Storage));
        assert_eq!(Policy::parse("NONE"), Ok(Policy::None));
        assert_eq!("all".parse::<Policy>(), Ok(Policy::All));
    }

    #[test]
    fn parse_lists() {
        assert_eq!(
            Policy::parse("0000:01:00.0,0000:02:00.0"),
            Ok(Policy::List(vec![pa("0000:01:00.0"), pa("0000:02:00.0")]))
        );
        assert_eq!(
            Policy::parse("0000:3B:00.1"),
            Ok(Policy::List(vec![pa("0000:3b:00.1")]))
        );
        // Short lspci form, spaces, duplicates.
        assert_eq!(
            Policy::parse("01:00.0, 0000:01:00.0 ,02:00.0"),
            Ok(Policy::List(vec![pa("0000:01:00.0"), pa("0000:02:00.0")]))
        );
        assert_eq!(
            "0000:16:00.0".parse::<Policy>(),
            Ok(Policy::List(vec![pa("0000:16:00.0")]))
        );
    }

    #[test]
    fn parse_errors_name_the_item() {
        assert_eq!(Policy::parse(""), Err(PolicyError::Empty));
        assert_eq!(Policy::parse("  "), Err(PolicyError::Empty));

        let e = Policy::parse("0000:01:00.0,,0000:02:00.0").unwrap_err();
        assert!(
            matches!(e, PolicyError::EmptyItem { index: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("item 2"), "{e}");
        assert!(matches!(
            Policy::parse("0000:01:00.0,"),
            Err(PolicyError::EmptyItem { index: 2, .. })
        ));

        let e = Policy::parse("0000:01:00.0,0000:01:40.0").unwrap_err();
        match &e {
            PolicyError::BadItem {
                index,
                item,
                source,
                ..
            } => {
                assert_eq!(*index, 2);
                assert_eq!(item, "0000:01:40.0");
                assert!(matches!(
                    source,
                    AddrError::OutOfRange {
                        field: "device",
                        ..
                    }
                ));
            }
            other => panic!("{other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("item 2") && msg.contains("0000:01:40.0"),
            "{msg}"
        );

        // Misspelled word.
        let e = Policy::parse("storag").unwrap_err();
        assert!(matches!(e, PolicyError::BadItem { index: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("storag"), "{e}");
        // ESXi decimal form is not a Linux address.
        assert!(matches!(
            Policy::parse("000:31.2"),
            Err(PolicyError::BadItem { index: 1, .. })
        ));
        // Words cannot be mixed into a list.
        assert!(matches!(
            Policy::parse("storage,0000:01:00.0"),
            Err(PolicyError::BadItem { index: 1, .. })
        ));
        // `FromStr` gives the same error.
        assert_eq!("storag".parse::<Policy>(), Policy::parse("storag"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["storage", "all", "none", "0000:01:00.0,0000:3b:00.1"] {
            let p = Policy::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
        }
    }

    // ---- decide ----

    #[test]
    fn vmkernel_lines_never_flip() {
        let o = owner("000:31.2", "vmkernel");
        let fs = [func("0000:00:1f.2", Some(0x010601), true)];
        for p in [
            Policy::Storage,
            Policy::All,
            Policy::None,
            Policy::List(vec![pa("0000:00:1f.2")]),
        ] {
            let d = decide(&p, &o, &fs);
            assert!(!d.flip, "{p:?}");
            assert!(d.reason.contains("vmkernel"), "{}", d.reason);
        }
        // Any other value is vmkernel to ESXi: also not flipped.
        assert!(!decide(&Policy::All, &owner("000:31.2", "Passthru"), &fs).flip);
    }

    #[test]
    fn unparseable_address_never_flips() {
        let o = owner("000:022:00.0.vf0", "passthru");
        assert_eq!(o.addr, None);
        for p in [
            Policy::Storage,
            Policy::All,
            Policy::None,
            Policy::List(vec![pa("0000:16:00.0")]),
        ] {
            let d = decide(&p, &o, &[func("0000:16:00.0", Some(0x010400), true)]);
            assert!(!d.flip, "{p:?}");
            assert!(d.reason.contains("000:022:00.0.vf0"), "{}", d.reason);
        }
    }

    #[test]
    fn policy_all_and_none() {
        let o = owner("000:02.0", "passthru");
        let gpu = [func("0000:00:02.0", Some(0x030000), false)];
        assert_eq!(
            decide(&Policy::All, &o, &gpu),
            Decision {
                flip: true,
                reason: "policy all".into()
            }
        );
        assert_eq!(
            decide(
                &Policy::None,
                &o,
                &[func("0000:00:02.0", Some(0x010601), true)]
            ),
            Decision {
                flip: false,
                reason: "policy none".into()
            }
        );
    }

    #[test]
    fn bridge_upstream_of_the_esxi_controller_flips_under_storage() {
        // ESX 4.0 sample: 000:30.0 is the bridge 0000:00:1e.0 in front of bus 3.
        let o = owner("000:30.0", "passthru");
        let mut hba = func("0000:03:00.0", Some(0x010400), true);
        hba.upstream = vec![pa("0000:00:1e.0")];
        let d = decide(&Policy::Storage, &o, &[hba.clone()]);
        assert!(d.flip, "{}", d.reason);
        assert!(
            d.reason.contains("upstream of 0000:03:00.0"),
            "{}",
            d.reason
        );
        // A bridge in front of nothing ESXi needs stays passed through.
        let mut gpu = func("0000:04:00.0", Some(0x030000), false);
        gpu.upstream = vec![pa("0000:00:1e.0")];
        let bridge = func("0000:00:1e.0", Some(0x060400), false);
        assert!(!decide(&Policy::Storage, &o, &[gpu, bridge]).flip);
    }

    #[test]
    fn out_of_range_address_flips_only_under_all() {
        // Device 0x31 > 0x1f: the user wrote decimal 31 (the AHCI 00:1f.2) in the hex form.
        let o = owner("0000:00:31.2", "passthru");
        assert_eq!(o.addr, None);
        let fs = [func("0000:00:1f.2", Some(0x010601), true)];
        let keep = decide(&Policy::Storage, &o, &fs);
        assert!(!keep.flip);
        assert!(
            keep.reason.contains("likely 0000:00:1f.2"),
            "{}",
            keep.reason
        );
        assert!(keep.reason.contains("--passthru all"), "{}", keep.reason);
        assert!(decide(&Policy::All, &o, &fs).flip);
        assert!(!decide(&Policy::None, &o, &fs).flip);
    }

    #[test]
    fn policy_list_matches_numerically_across_forms() {
        // Seed 001: bus 22 decimal == 0x16.
        let p = Policy::parse("0000:16:00.0").unwrap();
        for key in ["000:022:00:0", "000:022:00.0", "0000:16:00.0"] {
            let d = decide(&p, &owner(key, "passthru"), &[]);
            assert!(d.flip, "{key}");
            assert_eq!(d.reason, "listed in rescue.passthru");
        }
        let d = decide(&p, &owner("0000:22:00.0", "passthru"), &[]);
        assert_eq!(
            d,
            Decision {
                flip: false,
                reason: "not in rescue.passthru list".into()
            }
        );
        // KB: 000:11.0 is device 0x0b.
        let p = Policy::parse("0000:00:0b.0").unwrap();
        assert!(decide(&p, &owner("000:11.0", "passthru"), &[]).flip);
        // A hex digit in the decimal form is not a valid address: never flips.
        assert!(!decide(&p, &owner("000:0b.0", "passthru"), &[]).flip);
    }

    #[test]
    fn storage_flips_when_carrying_esxi_disk() {
        // flobernd.de: a renumbered bus points an old GPU entry at the boot NVMe.
        let o = owner("003:00.0", "passthru");
        let fs = [
            func("0000:02:00.0", Some(0x030000), false),
            func("0000:03:00.0", Some(0x010802), true),
        ];
        let d = decide(&Policy::Storage, &o, &fs);
        assert!(d.flip);
        assert!(
            d.reason.starts_with("carries a disk of the ESXi install"),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("0x0108 NVMe"), "{}", d.reason);

        // USB controller holding the ESXi boot stick flips too.
        let o = owner("000:20.0", "passthru");
        let d = decide(
            &Policy::Storage,
            &o,
            &[func("0000:00:14.0", Some(0x0c0330), true)],
        );
        assert!(d.flip, "{d:?}");
        assert!(d.reason.contains("USB"), "{}", d.reason);

        // Class unknown (image mode --controller) but carries the disk.
        let d = decide(&Policy::Storage, &o, &[func("0000:00:14.0", None, true)]);
        assert_eq!(
            d,
            Decision {
                flip: true,
                reason: "carries a disk of the ESXi install (boot disk or VMFS)".into()
            }
        );
    }

    #[test]
    fn storage_flips_mass_storage_class() {
        // Seed 001: LSI MegaRAID at bus 22 (decimal), written 000:022:00:0.
        let o = owner("000:022:00:0", "passthru");
        let raid = [func("0000:16:00.0", Some(0x010400), false)];
        assert_eq!(
            decide(&Policy::Storage, &o, &raid),
            Decision {
                flip: true,
                reason: "mass-storage controller (class 0x0104 RAID)".into()
            }
        );
        // Seed 002: Ibex Peak SATA controller, AHCI.
        let o = owner("000:31.2", "passthru");
        let d = decide(
            &Policy::Storage,
            &o,
            &[func("0000:00:1f.2", Some(0x010601), false)],
        );
        assert!(d.flip);
        assert_eq!(d.reason, "mass-storage controller (class 0x0106 SATA/AHCI)");
    }

    #[test]
    fn storage_keeps_non_storage_devices() {
        let cases = [
            (
                Some(0x030000),
                "not a storage device (class 0x0300 display); passthrough kept",
            ),
            (
                Some(0x020000),
                "not a storage device (class 0x0200 network); passthrough kept",
            ),
            (
                Some(0x0c0330),
                "not a storage device (class 0x0c03 USB); passthrough kept",
            ),
            (
                Some(0x0c0400),
                "not a storage device (class 0x0c04 Fibre Channel); passthrough kept",
            ),
            (
                None,
                "class unknown and carries no ESXi disk; passthrough kept",
            ),
        ];
        let o = owner("0000:01:00.0", "passthru");
        assert_eq!(o.form, Some(AddrForm::LinuxHex));
        for (class, reason) in cases {
            let d = decide(&Policy::Storage, &o, &[func("0000:01:00.0", class, false)]);
            assert_eq!(
                d,
                Decision {
                    flip: false,
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn storage_keeps_absent_function() {
        let o = owner("001:00.0", "passthru");
        let d = decide(
            &Policy::Storage,
            &o,
            &[func("0000:02:00.0", Some(0x010400), true)],
        );
        assert!(!d.flip);
        assert_eq!(
            d.reason,
            "no PCI function at 0000:01:00.0 on this machine; passthrough kept"
        );
        assert!(!decide(&Policy::Storage, &o, &[]).flip);
    }

    #[test]
    fn storage_duplicate_entries_any_carrier_counts() {
        let o = owner("001:00.0", "passthru");
        let fs = [
            func("0000:01:00.0", None, false),
            func("0000:01:00.0", Some(0x030000), true),
        ];
        let d = decide(&Policy::Storage, &o, &fs);
        assert!(d.flip);
        assert!(d.reason.contains("0x0300 display"), "{}", d.reason);
    }

    #[test]
    fn class_names() {
        assert_eq!(class_name(0x010000), "SCSI");
        assert_eq!(class_name(0x010185), "IDE");
        assert_eq!(class_name(0x010400), "RAID");
        assert_eq!(class_name(0x010520), "ATA");
        assert_eq!(class_name(0x010601), "SATA/AHCI");
        assert_eq!(class_name(0x010700), "SAS");
        assert_eq!(class_name(0x010802), "NVMe");
        assert_eq!(class_name(0x018000), "mass storage");
        assert_eq!(class_name(0x020000), "network");
        assert_eq!(class_name(0x030200), "display");
        assert_eq!(class_name(0x040300), "multimedia");
        assert_eq!(class_name(0x060400), "bridge");
        assert_eq!(class_name(0x0c0330), "USB");
        assert_eq!(class_name(0x0c0400), "Fibre Channel");
        assert_eq!(class_name(0x0c0500), "SMBus");
        assert_eq!(class_name(0x0c8000), "serial bus");
        assert_eq!(class_name(0x120000), "accelerator");
        assert_eq!(class_name(0xff0000), "other");
        assert_eq!(class_name(0x000000), "other");
        // Bits above 24 are ignored.
        assert_eq!(class_name(0xff010400), "RAID");
    }

    #[test]
    fn serialize_shapes() {
        fn is_serialize<T: serde::Serialize>() {}
        is_serialize::<Policy>();
        is_serialize::<PciFunction>();
        is_serialize::<Decision>();
    }
}
