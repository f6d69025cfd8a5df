//! rescue-image: builds the boot artifacts of the ESXi rescue tool from Debian parts.
//!
//! Inputs are extracted Debian packages (`scripts/fetch-debian.sh`) and the static agent; outputs
//! are byte-reproducible (fixed mtimes, sorted archives, deterministic compressors).

pub mod archive;
pub mod cli;
pub mod compress;
pub mod cpio;
pub mod initramfs;
pub mod kernel_tree;
pub mod modset;
