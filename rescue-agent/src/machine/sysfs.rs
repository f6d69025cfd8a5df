//! Disks and the PCI functions they sit behind, read from sysfs (root passed in, so tests use
//! fake trees). Disks are always mapped through the resolved `/sys/block/X/device` path, never by
//! their sdX names.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Whether `s` is a PCI function address `dddd:bb:dd.f` (lowercase hex, as sysfs writes it).
pub fn is_pci_addr(s: &str) -> bool {
    let b = s.as_bytes();
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

/// The PCI function closest to the device at `resolved` (the last PCI address in the path: a
/// controller behind a bridge, not the bridge).
pub fn pci_function_in_path(resolved: &Path) -> Option<String> {
    resolved
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .rfind(|c| is_pci_addr(c))
        .map(str::to_string)
}

/// The resolved device path of block device `name` (`/sys/block/<name>/device`, or the block
/// directory itself for devices without one, e.g. loop).
pub fn block_device_path(sys_root: &Path, name: &str) -> Option<PathBuf> {
    let block = sys_root.join("block").join(name);
    std::fs::canonicalize(block.join("device"))
        .or_else(|_| std::fs::canonicalize(&block))
        .ok()
}

/// The PCI function block device `name` sits behind.
pub fn pci_function_of_block(sys_root: &Path, name: &str) -> Option<String> {
    pci_function_in_path(&block_device_path(sys_root, name)?)
}

/// A PCI function as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciFunction {
    pub address: String,
    /// 24-bit class code, e.g. 0x010400 (RAID), 0x010601 (AHCI), 0x010802 (NVMe).
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    /// Bound driver (`driver` link), if any.
    pub driver: Option<String>,
    /// Resolved sysfs path (`/sys/devices/pci0000:00/…/0000:03:00.0`).
    pub sysfs_path: PathBuf,
}

impl PciFunction {
    /// Class 0x01xxxx: mass storage controller.
    pub fn is_mass_storage(&self) -> bool {
        self.class >> 16 == 0x01
    }

    /// `1000:0060` style id.
    pub fn id(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_hex(p: &Path) -> Option<u32> {
    let s = read_trim(p)?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// The driver bound to the device at `dir` (the name its `driver` link points to).
pub fn driver_of(dir: &Path) -> Option<String> {
    std::fs::read_link(dir.join("driver"))
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// One PCI function by address, from `<sys>/bus/pci/devices/<address>`.
pub fn pci_function(sys_root: &Path, address: &str) -> Option<PciFunction> {
    let dir = sys_root.join("bus/pci/devices").join(address);
    let sysfs_path = std::fs::canonicalize(&dir).ok()?;
    Some(PciFunction {
        address: address.to_string(),
        class: read_hex(&dir.join("class"))?,
        vendor: read_hex(&dir.join("vendor")).unwrap_or(0xffff) as u16,
        device: read_hex(&dir.join("device")).unwrap_or(0xffff) as u16,
        driver: driver_of(&dir),
        sysfs_path,
    })
}

/// Every PCI function, sorted by address.
pub fn pci_functions(sys_root: &Path) -> Vec<PciFunction> {
    let mut names: Vec<String> = std::fs::read_dir(sys_root.join("bus/pci/devices"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| is_pci_addr(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter_map(|n| pci_function(sys_root, n))
        .collect()
}

/// What identifies a disk, so `rescue.disk=` can name it by serial, WWN, by-path or sysfs path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskIdentity {
    /// `sda`, `nvme0n1`
    pub name: String,
    /// Resolved `/sys/block/<name>/device`.
    pub device_path: PathBuf,
    pub pci: Option<String>,
    pub serial: Option<String>,
    /// `naa.…`, `eui.…`, `t10.…` as the kernel reports it.
    pub wwn: Option<String>,
    pub model: Option<String>,
    /// udev's by-path form: `pci-0000:00:05.0-scsi-0:0:0:0`, `pci-0000:00:04.0-nvme-1`,
    /// `pci-0000:00:1f.2-ata-1`, `pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0`, `pci-0000:00:06.0`.
    pub by_path: Option<String>,
    pub size_bytes: Option<u64>,
}

/// Reads the identity of block device `name`.
pub fn disk_identity(sys_root: &Path, name: &str) -> Option<DiskIdentity> {
    let block = sys_root.join("block").join(name);
    let dev = block.join("device");
    let device_path = block_device_path(sys_root, name)?;
    let serial = read_trim(&dev.join("serial"))
        .or_else(|| read_trim(&block.join("serial"))) // virtio-blk
        .or_else(|| {
            std::fs::read(dev.join("vpd_pg80"))
                .ok()
                .and_then(|b| vpd_pg80_serial(&b))
        });
    let serial =
        serial.or_else(|| usb_device_dir(&device_path).and_then(|d| read_trim(&d.join("serial"))));
    let wwn = read_trim(&block.join("wwid")) // nvme namespaces
        .or_else(|| read_trim(&dev.join("wwid")))
        .or_else(|| read_trim(&dev.join("wwn")));
    let model = read_trim(&dev.join("model"));
    let size_bytes = read_trim(&block.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| s * 512);
    let pci = pci_function_in_path(&device_path);
    let by_path = by_path(sys_root, name, &device_path);
    Some(DiskIdentity {
        name: name.to_string(),
        device_path,
        pci,
        serial,
        wwn,
        model,
        by_path,
        size_bytes,
    })
}

/// The serial in a SCSI VPD page 0x80 (4-byte header, byte 3 = length, then ASCII).
pub fn vpd_pg80_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = page[3] as usize;
    let body = page.get(4..4 + len.min(page.len() - 4))?;
    let s = String::from_utf8_lossy(body)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string();
    (!s.is_empty()).then_some(s)
}

fn is_scsi_addr(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// udev's `ID_PATH` for the common cases (an approximation of path_id: SCSI host numbers are
/// taken as 0, which holds for one SCSI host per PCI function).
fn by_path(sys_root: &Path, name: &str, device_path: &Path) -> Option<String> {
    let pci = pci_function_in_path(device_path)?;
    let comps: Vec<String> = device_path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let after_pci: Vec<&str> = comps
        .iter()
        .skip_while(|c| **c != pci)
        .skip(1)
        .map(String::as_str)
        .collect();
    let mut out = format!("pci-{pci}");
    let last = comps.last().map(String::as_str).unwrap_or("");
    if after_pci.first().is_some_and(|c| *c == "nvme") {
        let nsid = read_trim(&sys_root.join("block").join(name).join("nsid"))
            .or_else(|| name.rsplit_once('n').map(|(_, n)| n.to_string()))?;
        out.push_str(&format!("-nvme-{nsid}"));
        return Some(out);
    }
    if let Some(intf) = after_pci.iter().find(|c| is_usb_interface(c)) {
        // "2-1.4:1.0" → usb-0:1.4:1.0
        let (_, rest) = intf.split_once('-')?;
        out.push_str(&format!("-usb-0:{rest}"));
    }
    if let Some(ata) = after_pci.iter().find_map(|c| c.strip_prefix("ata")) {
        if ata.bytes().all(|c| c.is_ascii_digit()) && !ata.is_empty() {
            let port = read_trim(
                &sys_root
                    .join("class/ata_port")
                    .join(format!("ata{ata}"))
                    .join("port_no"),
            )
            .unwrap_or_else(|| ata.to_string());
            out.push_str(&format!("-ata-{port}"));
            return Some(out);
        }
    }
    if is_scsi_addr(last) {
        let mut p = last.splitn(2, ':');
        let _host = p.next();
        out.push_str(&format!("-scsi-0:{}", p.next()?));
    }
    Some(out)
}

/// The USB device (`…/2-1`) above a USB disk's interface (`…/2-1/2-1:1.0/host3/…`).
fn usb_device_dir(device_path: &Path) -> Option<PathBuf> {
    device_path
        .ancestors()
        .find(|a| {
            a.file_name()
                .is_some_and(|n| is_usb_interface(&n.to_string_lossy()))
        })?
        .parent()
        .map(Path::to_path_buf)
}

fn is_usb_interface(c: &str) -> bool {
    // bus-port[.port…]:config.interface, e.g. 2-1:1.0, 1-1.4:1.0
    let Some((dev, intf)) = c.split_once(':') else {
        return false;
    };
    let Some((bus, ports)) = dev.split_once('-') else {
        return false;
    };
    let digits_dots = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    bus.bytes().all(|b| b.is_ascii_digit())
        && !bus.is_empty()
        && digits_dots(ports)
        && intf
            .split_once('.')
            .is_some_and(|(a, b)| digits_dots(a) && digits_dots(b))
}

impl DiskIdentity {
    /// Whether a `rescue.disk=` value names this disk: `sda` / `/dev/sda`, a serial (case- and
    /// blank-insensitive), a WWN (with or without `naa.`/`eui.`/`wwn-`/`0x`), a by-path form
    /// (with or without `/dev/disk/by-path/`), or a sysfs path (`/sys/block/sda`, the resolved
    /// device path).
    pub fn matches(&self, spec: &str) -> bool {
        let spec = spec.trim();
        if spec.is_empty() {
            return false;
        }
        let name = spec.strip_prefix("/dev/").unwrap_or(spec);
        if name == self.name {
            return true;
        }
        if spec.starts_with('/') {
            let p = spec.trim_end_matches('/');
            let p = p.strip_suffix("/device").unwrap_or(p);
            if p.strip_prefix("/sys/block/") == Some(self.name.as_str()) {
                return true;
            }
            // The resolved device path, or its `…/block/<name>` directory.
            let block_dir = format!("/block/{}", self.name);
            let p = p.strip_suffix(block_dir.as_str()).unwrap_or(p);
            if Path::new(p) == self.device_path {
                return true;
            }
        }
        let squash = |s: &str| {
            s.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        if self
            .serial
            .as_deref()
            .is_some_and(|s| squash(s) == squash(spec))
        {
            return true;
        }
        if let Some(w) = &self.wwn {
            if norm_wwn(w) == norm_wwn(spec) && !norm_wwn(spec).is_empty() {
                return true;
            }
        }
        if let Some(p) = &self.by_path {
            let s = spec.strip_prefix("/dev/disk/by-path/").unwrap_or(spec);
            let s = s.strip_prefix("virtio-").unwrap_or(s);
            if s == p {
                return true;
            }
        }
        false
    }
}

impl DiskIdentity {
    /// What names the LUN behind this path: the WWN as the kernel reports it (lower case), or
    /// `serial:<serial>` when there is none. Paths of one multipath LUN share it. USB sticks and
    /// SD cards never give a serial key: cheap ones share serials, and a cloned stick is a
    /// second disk, not a second path.
    pub fn lun_key(&self) -> Option<String> {
        if let Some(w) = self.wwn.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
            return Some(w.to_ascii_lowercase());
        }
        let removable_kind = self.name.starts_with("mmcblk")
            || self.by_path.as_deref().is_some_and(|p| p.contains("-usb-"));
        if removable_kind {
            return None;
        }
        self.serial
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("serial:{s}"))
    }
}

fn norm_wwn(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_prefix("/dev/disk/by-id/").unwrap_or(&s);
    let s = s.strip_prefix("wwn-").unwrap_or(s);
    let s = ["naa.", "eui.", "t10.", "0x"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::init::testutil::TempDir;

    /// A fake /sys: megaraid_sas behind a bridge with sda, NVMe, AHCI, virtio-blk, USB storage,
    /// and a loop device. Returns the sys root inside the temp dir.
    pub(crate) fn fake_sys(t: &TempDir) -> PathBuf {
        let pci =
            |addr: &str, path: &str, class: &str, ven: &str, dev: &str, driver: Option<&str>| {
                let d = format!("sys/devices/pci0000:00/{path}");
                t.write(&format!("{d}/class"), format!("{class}\n"));
                t.write(&format!("{d}/vendor"), format!("{ven}\n"));
                t.write(&format!("{d}/device"), format!("{dev}\n"));
                if let Some(drv) = driver {
                    t.mkdir(&format!("sys/bus/pci/drivers/{drv}"));
                    t.symlink(
                        &format!("{d}/driver"),
                        &format!("../../../bus/pci/drivers/{drv}"),
                    );
                }
                t.symlink(
                    &format!("sys/bus/pci/devices/{addr}"),
                    &format!("../../../devices/pci0000:00/{path}"),
                );
            };
        pci(
            "0000:00:01.0",
            "0000:00:01.0",
            "0x060400",
            "0x8086",
            "0x7191",
            Some("pcieport"),
        );
        pci(
            "0000:03:00.0",
            "0000:00:01.0/0000:03:00.0",
            "0x010400",
            "0x1000",
            "0x0060",
            Some("megaraid_sas"),
        );
        pci(
            "0000:00:04.0",
            "0000:00:04.0",
            "0x010802",
            "0x1b36",
            "0x0010",
            Some("nvme"),
        );
        pci(
            "0000:00:1f.2",
            "0000:00:1f.2",
            "0x010601",
            "0x8086",
            "0x2922",
            Some("ahci"),
        );
        pci(
            "0000:00:06.0",
            "0000:00:06.0",
            "0x010000",
            "0x1af4",
            "0x1001",
            Some("virtio-pci"),
        );
        pci(
            "0000:00:14.0",
            "0000:00:14.0",
            "0x0c0330",
            "0x1b36",
            "0x000d",
            Some("xhci_hcd"),
        );
        pci(
            "0000:00:07.0",
            "0000:00:07.0",
            "0x010700",
            "0x1000",
            "0x0054",
            None,
        );

        let block = |name: &str, devpath: &str| {
            let full = format!("sys/devices/pci0000:00/{devpath}");
            t.mkdir(&format!("{full}/block/{name}"));
            t.symlink(&format!("{full}/block/{name}/device"), "../..");
            t.symlink(
                &format!("sys/block/{name}"),
                &format!("../devices/pci0000:00/{devpath}/block/{name}"),
            );
            t.write(&format!("{full}/block/{name}/size"), "2097152\n");
            full
        };
        let sda = block("sda", "0000:00:01.0/0000:03:00.0/host0/target0:2:0/0:2:0:0");
        t.write(&format!("{sda}/model"), "MR9361-8i\n");
        t.write(
            &format!("{sda}/wwid"),
            "naa.600605b00d0ce1602a8c6f2d1b4e6c1f\n",
        );
        let mut pg80 = vec![0u8, 0x80, 0, 12];
        pg80.extend_from_slice(b"  SV12345678");
        t.write(&format!("{sda}/vpd_pg80"), pg80);
        // NVMe: /sys/block/nvme0n1/device → …/0000:00:04.0/nvme/nvme0
        let nvme = "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0";
        t.write(&format!("{nvme}/serial"), "NVME0001   \n");
        t.mkdir(&format!("{nvme}/nvme0n1"));
        t.symlink(&format!("{nvme}/nvme0n1/device"), "..");
        t.write(&format!("{nvme}/nvme0n1/nsid"), "1\n");
        t.write(&format!("{nvme}/nvme0n1/wwid"), "eui.0011223344556677\n");
        t.symlink(
            "sys/block/nvme0n1",
            "../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1",
        );
        block("sdb", "0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0");
        t.write("sys/class/ata_port/ata3/port_no", "3\n");
        let vda = block("vda", "0000:00:06.0/virtio2");
        t.write(&format!("{vda}/block/vda/serial"), "vdisk-1\n");
        block(
            "sdc",
            "0000:00:14.0/usb2/2-1/2-1:1.0/host3/target3:0:0/3:0:0:0",
        );
        t.write(
            "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/serial",
            "USB0001\n",
        );
        t.write(
            "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/bInterfaceClass",
            "08\n",
        );
        t.mkdir("sys/bus/usb/drivers/usb-storage");
        t.symlink(
            "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/driver",
            "../../../../../../bus/usb/drivers/usb-storage",
        );
        t.symlink(
            "sys/bus/usb/devices/2-1:1.0",
            "../../../devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0",
        );
        t.mkdir("sys/devices/virtual/block/loop0");
        t.symlink("sys/block/loop0", "../devices/virtual/block/loop0");
        t.path().join("sys")
    }

    #[test]
    fn pci_addresses() {
        assert!(is_pci_addr("0000:03:00.0"));
        assert!(is_pci_addr("10de:af:1f.7"));
        assert!(!is_pci_addr("0000:03:00.8"));
        assert!(!is_pci_addr("0000:03:0G.0"));
        assert!(!is_pci_addr("0000:03:00.00"));
        assert!(!is_pci_addr("pci0000:00"));
        assert!(!is_pci_addr("0000:0A:00.0"));
    }

    #[test]
    fn disk_behind_bridge_maps_to_the_controller_not_the_bridge() {
        let t = TempDir::new("sysfs");
        let sys = fake_sys(&t);
        assert_eq!(
            pci_function_of_block(&sys, "sda").as_deref(),
            Some("0000:03:00.0")
        );
        assert_eq!(
            pci_function_of_block(&sys, "nvme0n1").as_deref(),
            Some("0000:00:04.0")
        );
        assert_eq!(
            pci_function_of_block(&sys, "sdc").as_deref(),
            Some("0000:00:14.0")
        );
        assert_eq!(pci_function_of_block(&sys, "loop0"), None);
        assert_eq!(pci_function_of_block(&sys, "sdz"), None);
        let f = pci_function(&sys, "0000:03:00.0").unwrap();
        assert_eq!(f.class, 0x010400);
        assert_eq!(f.id(), "1000:0060");
        assert_eq!(f.driver.as_deref(), Some("megaraid_sas"));
        assert!(f.is_mass_storage());
        assert!(f
            .sysfs_path
            .ends_with("pci0000:00/0000:00:01.0/0000:03:00.0"));
    }

    #[test]
    fn all_functions_with_class() {
        let t = TempDir::new("sysfs");
        let sys = fake_sys(&t);
        let all = pci_functions(&sys);
        let got: Vec<(&str, u32, Option<&str>)> = all
            .iter()
            .map(|f| (f.address.as_str(), f.class, f.driver.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("0000:00:01.0", 0x060400, Some("pcieport")),
                ("0000:00:04.0", 0x010802, Some("nvme")),
                ("0000:00:06.0", 0x010000, Some("virtio-pci")),
                ("0000:00:07.0", 0x010700, None),
                ("0000:00:14.0", 0x0c0330, Some("xhci_hcd")),
                ("0000:00:1f.2", 0x010601, Some("ahci")),
                ("0000:03:00.0", 0x010400, Some("megaraid_sas")),
            ]
        );
    }

    #[test]
    fn identities_and_by_path() {
        let t = TempDir::new("sysfs");
        let sys = fake_sys(&t);
        let sda = disk_identity(&sys, "sda").unwrap();
        assert_eq!(sda.serial.as_deref(), Some("SV12345678"));
        assert_eq!(
            sda.wwn.as_deref(),
            Some("naa.600605b00d0ce1602a8c6f2d1b4e6c1f")
        );
        assert_eq!(sda.model.as_deref(), Some("MR9361-8i"));
        assert_eq!(
            sda.by_path.as_deref(),
            Some("pci-0000:03:00.0-scsi-0:2:0:0")
        );
        assert_eq!(sda.size_bytes, Some(1 << 30));
        let nvme = disk_identity(&sys, "nvme0n1").unwrap();
        assert_eq!(nvme.serial.as_deref(), Some("NVME0001"));
        assert_eq!(nvme.wwn.as_deref(), Some("eui.0011223344556677"));
        assert_eq!(nvme.by_path.as_deref(), Some("pci-0000:00:04.0-nvme-1"));
        let sdb = disk_identity(&sys, "sdb").unwrap();
        assert_eq!(sdb.by_path.as_deref(), Some("pci-0000:00:1f.2-ata-3"));
        let vda = disk_identity(&sys, "vda").unwrap();
        assert_eq!(vda.serial.as_deref(), Some("vdisk-1"));
        assert_eq!(vda.by_path.as_deref(), Some("pci-0000:00:06.0"));
        let sdc = disk_identity(&sys, "sdc").unwrap();
        assert_eq!(
            sdc.by_path.as_deref(),
            Some("pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0")
        );
        assert_eq!(sdc.serial.as_deref(), Some("USB0001"));
        let loop0 = disk_identity(&sys, "loop0").unwrap();
        assert_eq!((loop0.pci, loop0.by_path), (None, None));
    }

    #[test]
    fn lun_keys_come_from_wwns_and_from_serials_only_off_usb_and_sd() {
        let id = |name: &str, wwn: Option<&str>, serial: Option<&str>, by_path: Option<&str>| {
            DiskIdentity {
                name: name.into(),
                device_path: PathBuf::new(),
                pci: None,
                serial: serial.map(str::to_string),
                wwn: wwn.map(str::to_string),
                model: None,
                by_path: by_path.map(str::to_string),
                size_bytes: None,
            }
        };
        assert_eq!(
            id("sda", Some("naa.5000C500AA"), Some("S1"), None)
                .lun_key()
                .as_deref(),
            Some("naa.5000c500aa")
        );
        assert_eq!(
            id(
                "sdb",
                None,
                Some("S1"),
                Some("pci-0000:05:00.0-sas-0x5000-lun-0")
            )
            .lun_key()
            .as_deref(),
            Some("serial:S1")
        );
        let usb = Some("pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0");
        assert_eq!(id("sdc", None, Some("0123456789"), usb).lun_key(), None);
        assert_eq!(id("mmcblk0", None, Some("0x1234"), None).lun_key(), None);
    }

    #[test]
    fn rescue_disk_matching() {
        let t = TempDir::new("sysfs");
        let sys = fake_sys(&t);
        let sda = disk_identity(&sys, "sda").unwrap();
        for yes in [
            "sda",
            "/dev/sda",
            "sv12345678",
            " SV12345678 ",
            "naa.600605b00d0ce1602a8c6f2d1b4e6c1f",
            "600605B00D0CE1602A8C6F2D1B4E6C1F",
            "wwn-0x600605b00d0ce1602a8c6f2d1b4e6c1f",
            "pci-0000:03:00.0-scsi-0:2:0:0",
            "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:2:0:0",
            "/sys/block/sda",
        ] {
            assert!(sda.matches(yes), "{yes}");
        }
        let resolved = sda.device_path.to_string_lossy().into_owned();
        assert!(sda.matches(&resolved));
        for no in [
            "sdb",
            "",
            "SV1234567",
            "pci-0000:03:00.0",
            "/sys/block/sdb",
            "naa.",
        ] {
            assert!(!sda.matches(no), "{no}");
        }
        let vda = disk_identity(&sys, "vda").unwrap();
        assert!(vda.matches("virtio-pci-0000:00:06.0"));
    }

    #[test]
    fn vpd_page() {
        assert_eq!(
            vpd_pg80_serial(&[0, 0x80, 0, 3, b'A', b'B', b'C']).as_deref(),
            Some("ABC")
        );
        assert_eq!(
            vpd_pg80_serial(&[0, 0x80, 0, 9, b'A']).as_deref(),
            Some("A")
        );
        assert_eq!(vpd_pg80_serial(&[0, 0x83, 0, 1, b'A']), None);
        assert_eq!(vpd_pg80_serial(&[0, 0x80]), None);
    }
}
