//! What the passthrough policy knows about this machine's PCI functions, from sysfs: the class
//! of every function, and which ones carry a disk of the ESXi install.

use std::collections::BTreeSet;
use std::path::Path;

use crate::bank_config::PolicyContext;
use crate::esxconf::PciAddr;
use crate::init::sysfs;
use crate::passthru_policy::{PciFunction, Policy};

/// `carrier_disks`: block device names (sda, nvme0n1) of the ESXi disk and of disks with VMFS.
pub fn from_sysfs(sys: &Path, policy: Policy, carrier_disks: &[String]) -> PolicyContext {
    let carriers: BTreeSet<String> = carrier_disks
        .iter()
        .filter_map(|name| sysfs::pci_function_of_block(sys, name))
        .collect();
    let functions = sysfs::pci_functions(sys)
        .into_iter()
        .filter_map(|f| {
            let addr = PciAddr::parse_linux(&f.address).ok()?;
            Some(PciFunction {
                addr,
                class: Some(f.class),
                carries_esxi_disk: carriers.contains(&f.address),
                description: Some(format!(
                    "{:04x}:{:04x}{}",
                    f.vendor,
                    f.device,
                    f.driver
                        .as_ref()
                        .map(|d| format!(" {d}"))
                        .unwrap_or_default()
                )),
            })
        })
        .collect();
    PolicyContext { policy, functions }
}
