//! The network boot tree, served as the TFTP (or HTTP) root:
//!   vmlinuz, initrd.img, boot.ipxe          iPXE (BIOS or UEFI without Secure Boot)
//!   bootx64.efi, grubx64.efi, mmx64.efi     firmware-native UEFI PXE, Secure Boot included:
//!                                           shim, Debian's signed network GRUB, MokManager
//!   grub/grub.cfg                           where that GRUB looks (its prefix is /grub)

use crate::debian_inputs::Inputs;
use crate::grub_cfg::{self, Paths, ENTRIES};
use crate::stage;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const DIR_NAME: &str = "pxe";

/// Writes the tree into `dir` (emptied first); returns the files written, relative to `dir`.
pub fn build(inputs: &Inputs, initrd: &Path, kargs: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    let mut written = Vec::new();
    for (name, src) in [
        ("vmlinuz", &inputs.vmlinuz),
        ("initrd.img", &initrd.to_path_buf()),
        ("bootx64.efi", &inputs.shim),
        ("grubx64.efi", &inputs.grub_net),
        ("mmx64.efi", &inputs.mokmanager),
    ] {
        stage::copy(src, &dir.join(name))?;
        written.push(PathBuf::from(name));
    }
    stage::write(&dir.join("boot.ipxe"), ipxe_script(kargs).as_bytes())?;
    written.push("boot.ipxe".into());
    let menu = grub_cfg::menu(
        Paths {
            kernel: "/vmlinuz",
            initrd: "/initrd.img",
        },
        kargs,
    )?;
    stage::write(&dir.join("grub/grub.cfg"), menu.as_bytes())?;
    written.push("grub/grub.cfg".into());
    written.sort();
    Ok(written)
}

/// The iPXE script: the same four choices as the GRUB menu, "Repair" after 5 s. Paths are
/// relative, so the tree works from any TFTP or HTTP directory.
pub fn ipxe_script(kargs: &str) -> String {
    let mut s = format!(
        "#!ipxe\n\
         # esxi-rescue over iPXE (written by rescue-image). Chain this script from the\n\
         # directory that holds vmlinuz and initrd.img.\n\
         set rescue_kargs {kargs}\n\
         set rescue_choice repair\n\
         menu esxi-rescue || goto rescue_boot_repair\n"
    );
    for (title, id, _) in ENTRIES {
        // iPXE menus are plain ASCII.
        let title = title.replace('\u{2014}', "-");
        s.push_str(&format!("item {id} {title}\n"));
    }
    s.push_str(
        "choose --default repair --timeout 5000 rescue_choice || goto rescue_boot_repair\n\
         goto rescue_boot_${rescue_choice}\n",
    );
    for (_, id, extra) in ENTRIES {
        let sep = if extra.is_empty() { "" } else { " " };
        s.push_str(&format!(
            ":rescue_boot_{id}\n\
             kernel vmlinuz initrd=initrd.img ${{rescue_kargs}}{sep}{extra}\n\
             initrd initrd.img\n\
             boot\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_script_has_every_entry() {
        let s = ipxe_script("console=ttyS0");
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("set rescue_kargs console=ttyS0\n"));
        assert!(s.contains("item plan Dry run - report only\n"));
        assert!(s.contains(
            ":rescue_boot_plan\nkernel vmlinuz initrd=initrd.img ${rescue_kargs} rescue.mode=plan\n"
        ));
        assert!(
            s.contains(":rescue_boot_repair\nkernel vmlinuz initrd=initrd.img ${rescue_kargs}\n")
        );
    }
}
