//! The Debian parts the media are made of, found in the cache `scripts/fetch-debian.sh` fills:
//! the signed kernel, shim and MokManager, Debian's signed GRUB images (disk and network), the
//! i386-pc GRUB modules, and the package list with versions.

use crate::kernel_tree::KernelTree;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Inputs {
    pub kernel_version: String,
    /// The signed kernel, used as is.
    pub vmlinuz: PathBuf,
    /// shimx64.efi.signed (Microsoft-signed, trusts Debian's key).
    pub shim: PathBuf,
    /// mmx64.efi.signed (MokManager, which shim starts when a MOK change is pending).
    pub mokmanager: PathBuf,
    /// grubx64.efi.signed: prefix /EFI/debian on the device it was loaded from.
    pub grub_efi: PathBuf,
    /// grubnetx64.efi.signed: prefix /grub on the TFTP server.
    pub grub_net: PathBuf,
    /// grub-pc-bin's module directory (i386-pc): boot.img, boot_hybrid.img, *.mod.
    pub grub_pc_dir: PathBuf,
    /// `(package, version)` from packages.txt, in its order.
    pub packages: Vec<(String, String)>,
}

impl Inputs {
    pub fn find(cache: &Path) -> Result<Inputs> {
        let hint = "run scripts/fetch-debian.sh";
        let tree = KernelTree::open(&cache.join("kernel-root"))
            .with_context(|| format!("{}: no extracted kernel; {hint}", cache.display()))?;
        let file = |rel: &str| -> Result<PathBuf> {
            let p = cache.join(rel);
            if !p.is_file() {
                bail!("{} is missing; {hint}", p.display());
            }
            Ok(p)
        };
        let vmlinuz = tree.vmlinuz();
        if !vmlinuz.is_file() {
            bail!("{} is missing; {hint}", vmlinuz.display());
        }
        let grub_pc_dir = cache.join("root-grub-pc-bin/usr/lib/grub/i386-pc");
        if !grub_pc_dir.join("boot.img").is_file() {
            bail!("{}: no boot.img; {hint}", grub_pc_dir.display());
        }
        let list = cache.join("packages.txt");
        let text = std::fs::read_to_string(&list)
            .with_context(|| format!("reading {}; {hint}", list.display()))?;
        let packages = parse_packages(&text)?;
        Ok(Inputs {
            kernel_version: tree.version().to_string(),
            vmlinuz,
            shim: file("root-shim-signed/usr/lib/shim/shimx64.efi.signed")?,
            mokmanager: file("root-shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed")?,
            grub_efi: file(
                "root-grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
            )?,
            grub_net: file(
                "root-grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
            )?,
            grub_pc_dir,
            packages,
        })
    }
}

/// `package version` per line.
pub fn parse_packages(text: &str) -> Result<Vec<(String, String)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(p), Some(v), None) => Ok((p.to_string(), v.to_string())),
                _ => bail!("packages.txt: bad line {l:?}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_list() {
        let p = parse_packages("shim-signed 1.51\n\ngrub-pc-bin 2.06-13\n").unwrap();
        assert_eq!(p[1], ("grub-pc-bin".into(), "2.06-13".into()));
        assert!(parse_packages("only-name\n").is_err());
    }
}
