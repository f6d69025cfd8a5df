//! Which ESXi driver modules serve the controller a Linux driver is bound to, and the policy for
//! re-enabling a disabled boot-storage driver (`--drivers` / `rescue.drivers=`).
//!
//! A module disabled with `esxcli system module set --enabled=false` (William Lam's vmkusb case)
//! leaves ESXi without its boot device even though nothing is passed through. The rescue
//! re-enables only the ESXi module(s) that drive the controller carrying the ESXi boot disk,
//! looked up from the Linux driver bound to that controller; every other disabled storage or USB
//! module is reported and left as the admin set it. docs/drivers.md has the table with sources.

use std::fmt;

/// Linux driver → the ESXi modules (native first, then the vmklinux-era name) for the same
/// controllers. Several ESXi releases are covered by listing every name a release used.
pub const LINUX_TO_ESXI: &[(&str, &[&str])] = &[
    (
        "megaraid_sas",
        &["lsi_mr3", "megaraid_sas", "megaraid_perc9"],
    ),
    (
        "mpt3sas",
        &[
            "lsi_msgpt3",
            "lsi_msgpt35",
            "lsi_msgpt2",
            "mpt3sas",
            "mpt2sas",
        ],
    ),
    ("mpt2sas", &["lsi_msgpt2", "mpt2sas"]),
    ("mptsas", &["mptsas"]),
    ("mptspi", &["mptspi"]),
    ("smartpqi", &["smartpqi"]),
    ("hpsa", &["nhpsa", "hpsa"]),
    ("aacraid", &["aacraid"]),
    ("ahci", &["vmw_ahci", "ahci", "sata_ahci"]),
    ("ata_piix", &["ata_piix"]),
    ("nvme", &["nvme_pcie", "nvme"]),
    ("vmd", &["iavmd"]),
    ("vmw_pvscsi", &["pvscsi"]),
    ("xhci_hcd", &["vmkusb", "xhci", "usb-storage"]),
    ("xhci_pci", &["vmkusb", "xhci", "usb-storage"]),
    ("ehci_pci", &["vmkusb", "ehci-hcd", "usb-storage"]),
    ("ehci_hcd", &["vmkusb", "ehci-hcd", "usb-storage"]),
    ("uhci_hcd", &["vmkusb", "usb-storage"]),
    ("usb-storage", &["vmkusb", "usb-storage"]),
    ("uas", &["vmkusb", "usb-storage"]),
    ("qla2xxx", &["qlnativefc", "qla2xxx"]),
    ("lpfc", &["lpfc", "brcmfcoe"]),
    ("fnic", &["nfnic", "fnic"]),
];

/// The ESXi module names that drive storage or USB: a disabled one is reported.
pub fn is_storage_or_usb_module(module: &str) -> bool {
    LINUX_TO_ESXI.iter().any(|(_, esxi)| esxi.contains(&module))
}

/// The ESXi modules for a Linux driver name (`-` and `_` compare equal, as in modprobe).
pub fn esxi_modules_for(linux_driver: &str) -> &'static [&'static str] {
    let norm = |s: &str| s.replace('-', "_");
    let wanted = norm(linux_driver);
    LINUX_TO_ESXI
        .iter()
        .find(|(linux, _)| norm(linux) == wanted)
        .map(|(_, esxi)| *esxi)
        .unwrap_or(&[])
}

/// What to do with disabled storage/USB modules.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverPolicy {
    /// Re-enable the ESXi module(s) of the controller that carries the ESXi disk.
    Boot,
    /// Leave every module as it is.
    None,
    /// Re-enable exactly these ESXi modules.
    List(Vec<String>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DriverPolicyError {
    #[error(
        "empty driver policy (expected boot, none, or ESXi module names like vmkusb,nvme_pcie)"
    )]
    Empty,
    #[error("driver policy item {0:?} is not an ESXi module name (letters, digits, _ and -)")]
    BadItem(String),
}

impl DriverPolicy {
    /// "boot" | "none" | "vmkusb,nvme_pcie". Same words on the CLI and as rescue.drivers=.
    pub fn parse(s: &str) -> Result<DriverPolicy, DriverPolicyError> {
        let input = s.trim();
        match input.to_ascii_lowercase().as_str() {
            "" => return Err(DriverPolicyError::Empty),
            "boot" => return Ok(DriverPolicy::Boot),
            "none" => return Ok(DriverPolicy::None),
            _ => {}
        }
        let mut names = Vec::new();
        for item in input.split(',').map(str::trim) {
            let ok = !item.is_empty()
                && item.len() <= 64
                && item
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(DriverPolicyError::BadItem(item.to_string()));
            }
            if !names.iter().any(|n| n == item) {
                names.push(item.to_string());
            }
        }
        Ok(DriverPolicy::List(names))
    }
}

impl fmt::Display for DriverPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverPolicy::Boot => f.write_str("boot"),
            DriverPolicy::None => f.write_str("none"),
            DriverPolicy::List(names) => f.write_str(&names.join(",")),
        }
    }
}

/// The verdict for one disabled module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DriverDecision {
    pub enable: bool,
    pub reason: String,
}

/// Decide for a disabled ESXi module, given the Linux drivers bound to the controllers that carry
/// the ESXi disk (`None` when unknown, e.g. an image file).
pub fn decide(
    policy: &DriverPolicy,
    module: &str,
    boot_drivers: &[Option<String>],
) -> DriverDecision {
    let keep = |reason: String| DriverDecision {
        enable: false,
        reason,
    };
    match policy {
        DriverPolicy::None => keep("rescue.drivers=none".into()),
        DriverPolicy::List(names) => {
            if names.iter().any(|n| n == module) {
                DriverDecision {
                    enable: true,
                    reason: "listed in rescue.drivers".into(),
                }
            } else {
                keep("not in rescue.drivers list".into())
            }
        }
        DriverPolicy::Boot => {
            if let Some(linux) = boot_drivers
                .iter()
                .flatten()
                .find(|d| esxi_modules_for(d).contains(&module))
            {
                return DriverDecision {
                    enable: true,
                    reason: format!(
                        "drives the controller of the ESXi disk (Linux driver {linux})"
                    ),
                };
            }
            if boot_drivers.iter().all(Option::is_none) {
                keep(format!(
                    "the boot controller's driver is unknown here; --drivers {module} re-enables it"
                ))
            } else {
                keep("does not drive the controller of the ESXi disk; left disabled".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_policy_enables_only_the_boot_controllers_module() {
        let usb = [Some("xhci_hcd".to_string())];
        assert!(decide(&DriverPolicy::Boot, "vmkusb", &usb).enable);
        let d = decide(&DriverPolicy::Boot, "lsi_mr3", &usb);
        assert!(!d.enable);
        assert!(d.reason.contains("left disabled"), "{}", d.reason);
        let nvme = [Some("nvme".to_string())];
        assert!(decide(&DriverPolicy::Boot, "nvme_pcie", &nvme).enable);
        let unknown = decide(&DriverPolicy::Boot, "vmkusb", &[None]);
        assert!(!unknown.enable);
        assert!(
            unknown.reason.contains("--drivers vmkusb"),
            "{}",
            unknown.reason
        );
        assert!(!decide(&DriverPolicy::None, "vmkusb", &usb).enable);
    }

    #[test]
    fn lists_and_words_parse() {
        assert_eq!(DriverPolicy::parse("boot"), Ok(DriverPolicy::Boot));
        assert_eq!(DriverPolicy::parse(" NONE "), Ok(DriverPolicy::None));
        assert_eq!(
            DriverPolicy::parse("vmkusb, nvme_pcie,vmkusb"),
            Ok(DriverPolicy::List(vec![
                "vmkusb".into(),
                "nvme_pcie".into()
            ]))
        );
        assert!(DriverPolicy::parse("").is_err());
        assert!(DriverPolicy::parse("vmk usb").is_err());
        assert!(DriverPolicy::parse("a,,b").is_err());
        assert!(is_storage_or_usb_module("vmkusb"));
        assert!(!is_storage_or_usb_module("ixgben"));
        assert_eq!(
            esxi_modules_for("usb-storage"),
            esxi_modules_for("usb_storage")
        );
    }
}
