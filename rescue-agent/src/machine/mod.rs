//! The machine the disks hang off: /sys (disks, PCI functions, drivers), the PCI context the
//! passthrough policy decides with, multipath grouping, Linux-to-ESXi driver names, and the
//! kernel's module index, the NIC drivers held back for reports, and the host's SMBIOS identity.

pub mod driver_map;
pub mod modindex;
pub mod multipath;
pub mod nic_modules;
pub mod pci_context;
pub mod smbios;
pub mod sysblock;
pub mod sysfs;
