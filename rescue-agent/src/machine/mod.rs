//! The machine the disks hang off: /sys (disks, PCI functions, drivers), the PCI context the
//! passthrough policy decides with, multipath grouping, Linux-to-ESXi driver names, and the
//! kernel's module index.

pub mod driver_map;
pub mod modindex;
pub mod multipath;
pub mod pci_context;
pub mod sysblock;
pub mod sysfs;
