//! What the passthrough policy knows about this machine's PCI functions, from sysfs: the class
//! of every function, and which ones carry a disk of the ESXi install.

use std::collections::BTreeSet;
use std::path::Path;

use crate::bank_config::PolicyContext;
use crate::driver_map::DriverPolicy;
use crate::esxconf::PciAddr;
use crate::machine::sysfs;
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
            let upstream = upstream_bridges(&f.sysfs_path, &f.address);
            Some(PciFunction {
                upstream,
                driver: f.driver.clone(),
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
    PolicyContext {
        policy,
        functions,
        drivers: DriverPolicy::Boot,
    }
}

/// The PCI functions in a resolved sysfs path before `address` itself: the bridges in front of it.
fn upstream_bridges(sysfs_path: &Path, address: &str) -> Vec<PciAddr> {
    sysfs_path
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|c| sysfs::is_pci_addr(c) && *c != address)
        .filter_map(|c| PciAddr::parse_linux(c).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_come_from_the_resolved_path() {
        let path = Path::new("/sys/devices/pci0000:00/0000:00:1e.0/0000:03:00.0");
        assert_eq!(
            upstream_bridges(path, "0000:03:00.0"),
            vec![PciAddr::parse_linux("0000:00:1e.0").unwrap()]
        );
        assert!(upstream_bridges(
            Path::new("/sys/devices/pci0000:00/0000:00:1f.2"),
            "0000:00:1f.2"
        )
        .is_empty());
    }
}
