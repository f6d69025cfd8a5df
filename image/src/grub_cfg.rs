//! The GRUB configurations of the media: the boot menu (one text for every form, only the file
//! paths differ), the stub the UEFI side of the ISO reads first, and the early configs embedded in
//! the BIOS core images. Only commands built into Debian's signed GRUB images (and embedded in
//! our BIOS images) are used: under Secure Boot GRUB cannot load modules from disk.

use crate::kargs_area;
use anyhow::Result;

/// The default kernel arguments: BMC video and serial-over-LAN (the last console becomes
/// /dev/console).
pub const DEFAULT_KARGS: &str = "console=tty0 console=ttyS0,115200n8";

/// The four menu entries: title, GRUB id, arguments added to the defaults.
pub const ENTRIES: &[(&str, &str, &str)] = &[
    ("Repair ESXi boot disk", "repair", ""),
    ("Dry run \u{2014} report only", "plan", "rescue.mode=plan"),
    (
        "Repair, then power off",
        "poweroff",
        "rescue.after=poweroff",
    ),
    ("Shell", "shell", "rescue.mode=shell"),
];

/// Where the kernel and initrd are, as seen from GRUB's `$root`.
#[derive(Debug, Clone, Copy)]
pub struct Paths<'a> {
    pub kernel: &'a str,
    pub initrd: &'a str,
}

/// The boot menu: serial + video, default "Repair" after 5 s, the kernel-arguments area.
pub fn menu(paths: Paths<'_>, kargs: &str) -> Result<String> {
    let mut s = String::from(
        "# esxi-rescue boot menu (written by rescue-image).\n\
         # Change the default kernel arguments of a built image with\n\
         #   rescue-image customize IMAGE --kargs \"...\"\n\
         # which rewrites the fixed-size area below in place.\n\
         serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set default=repair\n\
         set timeout=5\n\
         set timeout_style=menu\n",
    );
    s.push_str(&kargs_area::render(kargs)?);
    for (title, id, extra) in ENTRIES {
        let sep = if extra.is_empty() { "" } else { " " };
        s.push_str(&format!(
            "menuentry \"{title}\" --id {id} {{\n\
             \techo \"Loading the rescue kernel and initramfs...\"\n\
             \tlinux {kernel} $rescue_kargs{sep}{extra}\n\
             \tinitrd {initrd}\n\
             }}\n",
            kernel = paths.kernel,
            initrd = paths.initrd,
        ));
    }
    Ok(s)
}

/// `/EFI/debian/grub.cfg` of the ISO (ISO9660 tree and efi.img): Debian's signed GRUB reads it
/// first (its prefix is `/EFI/debian` on the device it was loaded from). It finds the ISO9660
/// filesystem by UUID — the CD itself, or the stick the ISO was written to — and reads the one
/// real menu there, so the kernel arguments live in a single file.
pub fn iso_efi_stub(iso_uuid: &str) -> String {
    format!(
        "# esxi-rescue: the menu is /boot/grub/grub.cfg on the ISO9660 filesystem.\n\
         search --no-floppy --fs-uuid --set=root {iso_uuid}\n\
         set prefix=($root)/boot/grub\n\
         source $prefix/grub.cfg\n"
    )
}

/// The config embedded in a BIOS core image: find our filesystem by UUID, read the menu in `dir`.
pub fn early(fs_uuid: &str, dir: &str) -> String {
    format!(
        "search --no-floppy --fs-uuid --set=root {fs_uuid}\n\
         set prefix=($root){dir}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_has_entries_and_one_area() {
        let m = menu(
            Paths {
                kernel: "/boot/vmlinuz",
                initrd: "/boot/initrd.img",
            },
            DEFAULT_KARGS,
        )
        .unwrap();
        assert!(m.contains("set default=repair\nset timeout=5\n"));
        assert!(m.contains("terminal_output serial console\n"));
        assert!(m.contains("linux /boot/vmlinuz $rescue_kargs rescue.mode=plan\n"));
        assert!(m.contains("linux /boot/vmlinuz $rescue_kargs\n"));
        assert!(m.contains("menuentry \"Dry run \u{2014} report only\" --id plan {"));
        let areas = kargs_area::find(m.as_bytes(), 0).unwrap();
        assert_eq!(areas.len(), 1);
        assert_eq!(areas[0].kargs, DEFAULT_KARGS);
    }
}
