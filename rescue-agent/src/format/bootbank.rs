//! Bootbanks: the VMware FAT header, boot.cfg, and safeboot's active-bank rule
//! (shared/docs/esxi-format.md §1 "Bootbank FAT identity" and §2).

use serde::Serialize;

use crate::blockdev::{BlockDevice, BlockError};
use crate::layout::VmwareFatHeader;

pub const VMWARE_FAT_MAGIC: &[u8; 16] = b"VMWARE FAT16    ";
/// boot.cfg is a few hundred bytes; anything past this is not a boot.cfg.
const BOOT_CFG_LIMIT: u64 = 64 * 1024;

/// Look for the header where safeboot reads it (the partition's second sector) and where the
/// 6.7 installer writes it (byte 512); they differ only on 4Kn disks.
pub fn read_vmware_header(
    dev: &BlockDevice,
    first_lba: u64,
) -> Result<Option<VmwareFatHeader>, BlockError> {
    let ss = u64::from(dev.sector_size());
    let start = first_lba.saturating_mul(ss);
    let mut offsets = vec![ss];
    if ss != 512 {
        offsets.push(512);
    }
    for off in offsets {
        let Some(at) = start.checked_add(off) else {
            continue;
        };
        if at + 32 > dev.size() {
            continue;
        }
        let b = dev.read_vec(at, 32)?;
        if &b[..16] == VMWARE_FAT_MAGIC {
            return Ok(Some(VmwareFatHeader {
                uuid: b[16..32].try_into().expect("16 bytes"),
            }));
        }
    }
    Ok(None)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BootCfg {
    pub bootstate: Option<u32>,
    pub build: String,
    pub updated: Option<u64>,
    pub kernel: String,
    pub title: String,
}

impl BootCfg {
    /// Keys are matched case-insensitively and only at the start of a line (mboot's rule).
    /// Returns None when the text has no `kernel=` line: then it is not a boot.cfg.
    pub fn parse(text: &str) -> Option<BootCfg> {
        let mut cfg = BootCfg::default();
        let mut has_kernel = false;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim_end().to_ascii_lowercase().as_str() {
                "bootstate" => cfg.bootstate = value.parse().ok(),
                "build" => cfg.build = value.to_string(),
                "updated" => cfg.updated = value.parse().ok(),
                "title" => cfg.title = value.to_string(),
                "kernel" => {
                    has_kernel = true;
                    cfg.kernel = value.to_string();
                }
                _ => {}
            }
        }
        has_kernel.then_some(cfg)
    }

    /// safeboot: `updated` > 0, a build, and bootstate 0 (valid) or 1/2 (upgrade being tried).
    /// State 1 is turned into 2 by safeboot before it decides, so both count.
    pub fn eligible(&self) -> bool {
        self.updated.unwrap_or(0) > 0
            && !self.build.is_empty()
            && matches!(self.bootstate, Some(0..=2))
    }
}

/// Which bank safeboot would boot: among eligible banks the highest `updated` wins.
/// Ties go to the first bank (slot 5), which is what scanning volumes in order does.
pub fn active_bank(cfgs: &[Option<&BootCfg>]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, cfg) in cfgs.iter().enumerate() {
        if let Some(c) = cfg.filter(|c| c.eligible()) {
            let u = c.updated.unwrap_or(0);
            if best.is_none_or(|(_, bu)| u > bu) {
                best = Some((i, u));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// boot.cfg of the bank starting at `first_lba`, read through the bounded, loop-checked walk.
pub fn read_boot_cfg(dev: &BlockDevice, first_lba: u64) -> anyhow::Result<Option<BootCfg>> {
    let offset = first_lba * u64::from(dev.sector_size());
    let data = crate::fat_replace::read_root_file(dev, offset, "boot.cfg", BOOT_CFG_LIMIT)?;
    Ok(data.and_then(|d| BootCfg::parse(&String::from_utf8_lossy(&d))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "bootstate=0\ntitle=Loading VMware ESXi\ntimeout=5\nprefix=\nkernel=b.b00\nkernelopt=autoPartition=FALSE\nmodules=jumpstrt.gz --- useropts.gz --- state.tgz\nbuild=6.5.0-4564106\nupdated=2\n";

    #[test]
    fn parses_installer_template() {
        let c = BootCfg::parse(SAMPLE).unwrap();
        assert_eq!(c.bootstate, Some(0));
        assert_eq!(c.build, "6.5.0-4564106");
        assert_eq!(c.updated, Some(2));
        assert!(c.eligible());
    }

    #[test]
    fn not_a_boot_cfg() {
        assert!(BootCfg::parse("hello=world\n").is_none());
    }

    #[test]
    fn active_bank_rule() {
        let mk = |state, updated| BootCfg {
            bootstate: Some(state),
            build: "7.0.3-1".into(),
            updated: Some(updated),
            kernel: "b.b00".into(),
            title: String::new(),
        };
        let (a, b) = (mk(0, 2), mk(3, 3));
        assert_eq!(active_bank(&[Some(&a), Some(&b)]), Some(0));
        let (a, b) = (mk(0, 2), mk(1, 3));
        assert_eq!(active_bank(&[Some(&a), Some(&b)]), Some(1));
        let (a, b) = (mk(0, 5), mk(0, 3));
        assert_eq!(active_bank(&[Some(&a), Some(&b)]), Some(0));
        let empty = BootCfg {
            updated: Some(0),
            ..mk(0, 0)
        };
        assert_eq!(active_bank(&[Some(&empty), None]), None);
    }
}
