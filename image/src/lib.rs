//! rescue-image: builds the boot artifacts of the ESXi rescue tool from Debian parts.
//!
//! Inputs are extracted Debian packages (`scripts/fetch-debian.sh`) and the static agent; outputs
//! are byte-reproducible (fixed mtimes, sorted archives, deterministic compressors).

pub mod archive;
pub mod build;
pub mod build_date;
pub mod cli;
pub mod compress;
pub mod cpio;
pub mod customize;
pub mod debian_inputs;
pub mod fat_image;
pub mod grub_bios;
pub mod grub_cfg;
pub mod initramfs;
pub mod iso;
pub mod kargs_area;
pub mod kernel_tree;
pub mod manifest;
pub mod modset;
pub mod pxe;
pub mod serve;
pub mod stage;
pub mod tools;
pub mod usb;
