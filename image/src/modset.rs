//! Which kernel modules go into the initramfs: a named set closed over modules.dep, and the
//! trimmed index files (modules.dep / modules.alias) that describe exactly that set.

use anyhow::{bail, Result};
use rescue_agent::modindex::ModuleIndex;
use std::collections::BTreeSet;

/// Storage controllers, buses and filesystems the agent may meet (see image-notes.md and
/// docs/hardware.md): every QEMU-emulated controller, the common server RAID/HBA drivers, and
/// the Fibre Channel HBAs of boot-from-SAN blades.
pub const STORAGE_MODULES: &[&str] = &[
    "ahci",
    "libahci",
    "libata",
    "nvme",
    "nvme_core",
    "vmd",
    "megaraid_sas",
    "mpt3sas",
    "mpi3mr",
    "mptsas",
    "mptspi",
    "mptbase",
    "mptscsih",
    "hpsa",
    "smartpqi",
    "aacraid",
    "sym53c8xx",
    "vmw_pvscsi",
    "ata_piix",
    "qla2xxx",
    "lpfc",
    "fnic",
    "scsi_transport_fc",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "xhci_pci",
    "ehci_pci",
    "ohci_pci",
    "uhci_hcd",
    "usb_storage",
    "uas",
    "sd_mod",
    "sr_mod",
    "isofs",
    "vfat",
    "efivarfs",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
];

/// The modules to ship, in insmod order (each after its dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSet {
    pub modules: Vec<String>,
    /// Requested names the kernel has built in (nothing to ship).
    pub builtin: Vec<String>,
}

/// Names built into the kernel, from the text of `modules.builtin` ("kernel/.../name.ko").
pub fn builtin_names(modules_builtin: &str) -> BTreeSet<String> {
    modules_builtin
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(|n| n.replace('-', "_"))
        .collect()
}

/// Closes `wanted` over modules.dep. Built-in names are skipped; unknown names are an error.
pub fn select(
    index: &ModuleIndex,
    builtin: &BTreeSet<String>,
    wanted: &[String],
) -> Result<ModuleSet> {
    let mut modules: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut unknown = Vec::new();
    for name in wanted {
        let name = name.replace('-', "_");
        let order = index.load_order(&name);
        if order.is_empty() {
            if builtin.contains(&name) {
                skipped.push(name);
            } else {
                unknown.push(name);
            }
            continue;
        }
        for m in order {
            if seen.insert(m.clone()) {
                modules.push(m);
            }
        }
    }
    if !unknown.is_empty() {
        bail!(
            "unknown kernel modules (neither in modules.dep nor built in): {}",
            unknown.join(" ")
        );
    }
    Ok(ModuleSet {
        modules,
        builtin: skipped,
    })
}

/// The lines of `modules.dep` whose module is in `set`, in their original order.
pub fn trim_dep(modules_dep: &str, set: &BTreeSet<String>) -> String {
    keep_lines(modules_dep, |line| {
        let path = line.split(':').next().unwrap_or("");
        module_of_path(path).is_some_and(|m| set.contains(&m))
    })
}

/// The lines of `modules.alias` naming a module in `set` (comments kept), in original order.
pub fn trim_alias(modules_alias: &str, set: &BTreeSet<String>) -> String {
    keep_lines(modules_alias, |line| {
        line.starts_with('#')
            || line
                .split_whitespace()
                .nth(2)
                .is_some_and(|m| set.contains(&m.replace('-', "_")))
    })
}

fn keep_lines(text: &str, keep: impl Fn(&str) -> bool) -> String {
    text.lines()
        .filter(|l| keep(l))
        .flat_map(|l| [l, "\n"])
        .collect()
}

fn module_of_path(path: &str) -> Option<String> {
    let file = path.trim().rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/scsi/sd_mod.ko: kernel/block/t10-pi.ko kernel/drivers/scsi/scsi_mod.ko
kernel/block/t10-pi.ko:
kernel/drivers/scsi/scsi_mod.ko:
kernel/drivers/net/e1000.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias scsi:t-0x00* sd_mod
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn closure_skips_builtins_and_refuses_unknowns() {
        let index = ModuleIndex::parse(ALIAS, DEP).unwrap();
        let builtin = builtin_names("kernel/fs/ext4/ext4.ko\nkernel/drivers/ata/libata.ko\n");
        let set = select(&index, &builtin, &names(&["sd-mod", "libata", "scsi_mod"])).unwrap();
        assert_eq!(set.modules, ["t10_pi", "scsi_mod", "sd_mod"]);
        assert_eq!(set.builtin, ["libata"]);
        let err = select(&index, &builtin, &names(&["sd_mod", "nosuch"])).unwrap_err();
        assert!(err.to_string().contains("nosuch"), "{err}");
    }

    #[test]
    fn trimmed_files_keep_only_the_set() {
        let set: BTreeSet<String> = names(&["sd_mod", "t10_pi", "scsi_mod"])
            .into_iter()
            .collect();
        assert_eq!(
            trim_dep(DEP, &set),
            "kernel/drivers/scsi/sd_mod.ko: kernel/block/t10-pi.ko kernel/drivers/scsi/scsi_mod.ko\n\
             kernel/block/t10-pi.ko:\nkernel/drivers/scsi/scsi_mod.ko:\n"
        );
        assert_eq!(
            trim_alias(ALIAS, &set),
            "# Aliases extracted from modules themselves.\nalias scsi:t-0x00* sd_mod\n"
        );
    }
}
