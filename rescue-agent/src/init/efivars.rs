//! UEFI boot variables through efivarfs: find the `Boot####` entry that starts a given GPT
//! partition (by its unique GUID in the entry's hard-drive device-path node) and set `BootNext`
//! to it, so the next boot goes to ESXi whatever the boot order says (the rescue medium may stay
//! attached).
//!
//! efivarfs files hold 4 attribute bytes (LE u32) followed by the variable's data; a write must be
//! one `write(2)` of attributes + data. Existing variables are immutable files until the flag is
//! cleared with FS_IOC_SETFLAGS.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// EFI_GLOBAL_VARIABLE, the vendor GUID of Boot####, BootOrder, BootNext.
pub const EFI_GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
pub const ATTR_NV_BS_RT: u32 = 0x07;
/// LOAD_OPTION_ACTIVE
pub const LOAD_OPTION_ACTIVE: u32 = 0x01;
/// Signature type of a hard-drive node whose signature is a GPT partition GUID.
pub const SIGNATURE_TYPE_GUID: u8 = 2;

const FS_IMMUTABLE_FL: nix::libc::c_int = 0x10;
const EFIVARFS_MAGIC: i128 = 0xde5e_81e4;

nix::ioctl_read_bad!(
    fs_ioc_getflags,
    nix::request_code_read!(b'f', 1, std::mem::size_of::<nix::libc::c_long>()),
    nix::libc::c_int
);
nix::ioctl_write_ptr_bad!(
    fs_ioc_setflags,
    nix::request_code_write!(b'f', 2, std::mem::size_of::<nix::libc::c_long>()),
    nix::libc::c_int
);

#[derive(Debug, thiserror::Error)]
pub enum EfiVarError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: {what}")]
    Parse { name: String, what: String },
    #[error("no UEFI boot entry points at partition {guid}")]
    NoEntry { guid: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EfiVarError + '_ {
    move |source| EfiVarError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One device path node: type, subtype and the bytes after the 4-byte header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicePathNode {
    pub kind: u8,
    pub subtype: u8,
    pub data: Vec<u8>,
}

/// MEDIA_DEVICE_PATH / HARDDRIVE (type 4, subtype 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HardDriveNode {
    pub partition_number: u32,
    pub start_lba: u64,
    pub size_lba: u64,
    /// GPT: the partition's unique GUID, in on-disk byte order.
    pub signature: [u8; 16],
    /// 1 = MBR, 2 = GPT.
    pub partition_format: u8,
    /// 0 = none, 1 = MBR disk signature, 2 = GUID.
    pub signature_type: u8,
}

impl DevicePathNode {
    pub fn hard_drive(&self) -> Option<HardDriveNode> {
        if self.kind != 4 || self.subtype != 1 || self.data.len() < 38 {
            return None;
        }
        let d = &self.data;
        Some(HardDriveNode {
            partition_number: u32::from_le_bytes(d[0..4].try_into().ok()?),
            start_lba: u64::from_le_bytes(d[4..12].try_into().ok()?),
            size_lba: u64::from_le_bytes(d[12..20].try_into().ok()?),
            signature: d[20..36].try_into().ok()?,
            partition_format: d[36],
            signature_type: d[37],
        })
    }

    /// Serialises the node (header + data).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![self.kind, self.subtype];
        v.extend_from_slice(&((self.data.len() + 4) as u16).to_le_bytes());
        v.extend_from_slice(&self.data);
        v
    }
}

impl HardDriveNode {
    pub fn to_node(&self) -> DevicePathNode {
        let mut d = Vec::with_capacity(38);
        d.extend_from_slice(&self.partition_number.to_le_bytes());
        d.extend_from_slice(&self.start_lba.to_le_bytes());
        d.extend_from_slice(&self.size_lba.to_le_bytes());
        d.extend_from_slice(&self.signature);
        d.push(self.partition_format);
        d.push(self.signature_type);
        DevicePathNode {
            kind: 4,
            subtype: 1,
            data: d,
        }
    }
}

/// EFI_LOAD_OPTION.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadOption {
    pub attributes: u32,
    pub description: String,
    /// Every node of the file path list (end nodes included).
    pub device_path: Vec<DevicePathNode>,
    pub optional_data: Vec<u8>,
}

impl LoadOption {
    pub fn is_active(&self) -> bool {
        self.attributes & LOAD_OPTION_ACTIVE != 0
    }

    pub fn hard_drives(&self) -> impl Iterator<Item = HardDriveNode> + '_ {
        self.device_path
            .iter()
            .filter_map(DevicePathNode::hard_drive)
    }

    /// Serialises the load option (without the efivarfs attribute prefix).
    pub fn to_bytes(&self) -> Vec<u8> {
        let path: Vec<u8> = self.device_path.iter().flat_map(|n| n.to_bytes()).collect();
        let mut v = Vec::new();
        v.extend_from_slice(&self.attributes.to_le_bytes());
        v.extend_from_slice(&(path.len() as u16).to_le_bytes());
        for u in self.description.encode_utf16().chain(std::iter::once(0)) {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v.extend_from_slice(&path);
        v.extend_from_slice(&self.optional_data);
        v
    }
}

/// Parses an EFI_LOAD_OPTION (the variable data, after the 4 efivarfs attribute bytes).
pub fn parse_load_option(data: &[u8]) -> Result<LoadOption, String> {
    if data.len() < 6 {
        return Err(format!("{} bytes, too short for a load option", data.len()));
    }
    let attributes = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let path_len = u16::from_le_bytes([data[4], data[5]]) as usize;
    let mut pos = 6;
    let mut units = Vec::new();
    loop {
        let Some(b) = data.get(pos..pos + 2) else {
            return Err("description without its terminating NUL".into());
        };
        pos += 2;
        let u = u16::from_le_bytes([b[0], b[1]]);
        if u == 0 {
            break;
        }
        units.push(u);
    }
    let description = String::from_utf16_lossy(&units);
    let path = data
        .get(pos..pos + path_len)
        .ok_or_else(|| format!("file path list of {path_len} bytes runs past the end"))?;
    let device_path = parse_device_path(path)?;
    Ok(LoadOption {
        attributes,
        description,
        device_path,
        optional_data: data[pos + path_len..].to_vec(),
    })
}

/// Splits a device path list into nodes.
pub fn parse_device_path(mut bytes: &[u8]) -> Result<Vec<DevicePathNode>, String> {
    let mut nodes = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return Err(format!("{} stray bytes after the last node", bytes.len()));
        }
        let len = u16::from_le_bytes([bytes[2], bytes[3]]) as usize;
        if len < 4 || len > bytes.len() {
            return Err(format!(
                "device path node {}/{} has length {len} ({} bytes left)",
                bytes[0],
                bytes[1],
                bytes.len()
            ));
        }
        nodes.push(DevicePathNode {
            kind: bytes[0],
            subtype: bytes[1],
            data: bytes[4..len].to_vec(),
        });
        bytes = &bytes[len..];
    }
    Ok(nodes)
}

/// One `Boot####` variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootEntry {
    pub number: u16,
    pub option: LoadOption,
}

/// What the boot variables say.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BootVars {
    /// Sorted by number.
    pub entries: Vec<BootEntry>,
    pub boot_order: Vec<u16>,
    pub boot_current: Option<u16>,
    pub boot_next: Option<u16>,
    /// `Boot####` variables that could not be read or parsed.
    pub problems: Vec<String>,
}

fn var_name(name: &str) -> String {
    format!("{name}-{EFI_GLOBAL_GUID}")
}

/// `Boot####` → entry number (four hex digits).
fn boot_number(file_name: &str) -> Option<u16> {
    let stem = file_name.strip_suffix(&format!("-{EFI_GLOBAL_GUID}"))?;
    let hex = stem.strip_prefix("Boot")?;
    (hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u16::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Reads a variable's data (without the attribute bytes); `None` when it does not exist.
fn read_var(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, EfiVarError> {
    let path = dir.join(var_name(name));
    match std::fs::read(&path) {
        Ok(b) if b.len() >= 4 => Ok(Some(b[4..].to_vec())),
        Ok(b) => Err(EfiVarError::Parse {
            name: name.into(),
            what: format!("{} bytes, shorter than the attributes", b.len()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn u16s(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Reads every `Boot####`, BootOrder, BootCurrent and BootNext from an efivarfs directory.
pub fn read_boot_vars(dir: &Path) -> Result<BootVars, EfiVarError> {
    let mut vars = BootVars::default();
    let rd = std::fs::read_dir(dir).map_err(io_err(dir))?;
    for e in rd.filter_map(Result::ok) {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(number) = boot_number(&file) else {
            continue;
        };
        let name = format!("Boot{number:04X}");
        match std::fs::read(e.path()) {
            Ok(b) if b.len() >= 4 => match parse_load_option(&b[4..]) {
                Ok(option) => vars.entries.push(BootEntry { number, option }),
                Err(what) => vars.problems.push(format!("{name}: {what}")),
            },
            Ok(b) => vars.problems.push(format!(
                "{name}: {} bytes, shorter than the attributes",
                b.len()
            )),
            Err(err) => vars.problems.push(format!("{name}: {err}")),
        }
    }
    vars.entries.sort_by_key(|e| e.number);
    vars.problems.sort();
    vars.boot_order = read_var(dir, "BootOrder")?
        .map(|d| u16s(&d))
        .unwrap_or_default();
    let single = |d: Vec<u8>| u16s(&d).first().copied();
    vars.boot_current = read_var(dir, "BootCurrent")?.and_then(single);
    vars.boot_next = read_var(dir, "BootNext")?.and_then(single);
    Ok(vars)
}

/// The entry that boots the partition with unique GUID `part_guid` (on-disk byte order): active
/// entries first, then in BootOrder order, then by number.
pub fn find_entry_for_partition(vars: &BootVars, part_guid: &[u8; 16]) -> Option<u16> {
    let mut hits: Vec<&BootEntry> = vars
        .entries
        .iter()
        .filter(|e| {
            e.option
                .hard_drives()
                .any(|hd| hd.signature_type == SIGNATURE_TYPE_GUID && &hd.signature == part_guid)
        })
        .collect();
    let order_pos = |n: u16| {
        vars.boot_order
            .iter()
            .position(|&o| o == n)
            .unwrap_or(usize::MAX)
    };
    hits.sort_by_key(|e| (!e.option.is_active(), order_pos(e.number), e.number));
    hits.first().map(|e| e.number)
}

/// Writes `BootNext = number` (attributes NV|BS|RT).
pub fn write_boot_next(dir: &Path, number: u16) -> Result<(), EfiVarError> {
    let mut buf = ATTR_NV_BS_RT.to_le_bytes().to_vec();
    buf.extend_from_slice(&number.to_le_bytes());
    write_var(dir, "BootNext", &buf)
}

/// Writes a variable file (attributes + data, in one write). An existing efivarfs file is
/// immutable: the flag is cleared first.
pub fn write_var(dir: &Path, name: &str, attrs_and_data: &[u8]) -> Result<(), EfiVarError> {
    let path = dir.join(var_name(name));
    if path.exists() {
        clear_immutable(&path).map_err(io_err(&path))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false) // efivarfs: one write replaces the variable; see below for plain files
        .open(&path)
        .map_err(io_err(&path))?;
    let n = f.write(attrs_and_data).map_err(io_err(&path))?;
    if n != attrs_and_data.len() {
        return Err(io_err(&path)(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", attrs_and_data.len()),
        )));
    }
    // efivarfs replaces the whole variable on write; an ordinary file (tests) keeps a longer
    // old tail unless cut.
    if !is_efivarfs(&path) {
        f.set_len(attrs_and_data.len() as u64)
            .map_err(io_err(&path))?;
    }
    Ok(())
}

fn is_efivarfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| i128::from(s.filesystem_type().0) == EFIVARFS_MAGIC)
        .unwrap_or(false)
}

/// Clears FS_IMMUTABLE_FL on `path`; filesystems without flags (ENOTTY …) are fine.
pub fn clear_immutable(path: &Path) -> std::io::Result<()> {
    use nix::errno::Errno;
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    let mut flags: nix::libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which points to `flags`.
    match unsafe { fs_ioc_getflags(f.as_raw_fd(), &mut flags) } {
        Ok(_) => {}
        Err(Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if flags & FS_IMMUTABLE_FL == 0 {
        return Ok(());
    }
    let new = flags & !FS_IMMUTABLE_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which points to `new`.
    unsafe { fs_ioc_setflags(f.as_raw_fd(), &new) }?;
    Ok(())
}

/// Finds the boot entry of the partition and sets BootNext to it; returns the entry number.
pub fn set_boot_next_for_partition(dir: &Path, part_guid: &[u8; 16]) -> Result<u16, EfiVarError> {
    let vars = read_boot_vars(dir)?;
    let n = find_entry_for_partition(&vars, part_guid).ok_or_else(|| EfiVarError::NoEntry {
        guid: format_guid(part_guid),
    })?;
    write_boot_next(dir, n)?;
    Ok(n)
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` from on-disk (mixed-endian) bytes.
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The inverse of [`format_guid`] (case-insensitive).
pub fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lens != [8, 4, 4, 4, 12]
        || !parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&u32::from_str_radix(parts[0], 16).ok()?.to_le_bytes());
    g[4..6].copy_from_slice(&u16::from_str_radix(parts[1], 16).ok()?.to_le_bytes());
    g[6..8].copy_from_slice(&u16::from_str_radix(parts[2], 16).ok()?.to_le_bytes());
    let tail = format!("{}{}", parts[3], parts[4]);
    for (i, byte) in g[8..].iter_mut().enumerate() {
        *byte = u8::from_str_radix(&tail[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;

    const ESXI_PART: &str = "5a3c21f0-8d7e-4b6a-9c1d-0e2f3a4b5c6d";

    fn end() -> DevicePathNode {
        DevicePathNode {
            kind: 0x7f,
            subtype: 0xff,
            data: vec![],
        }
    }

    /// A Boot#### file built by hand from the spec: attributes, then EFI_LOAD_OPTION.
    fn boot_file(attributes: u32, desc: &str, hd_guid: Option<[u8; 16]>, file: &str) -> Vec<u8> {
        let mut path = Vec::new();
        // PCI node (type 1 subtype 1: function, device)
        path.extend_from_slice(&[1, 1, 6, 0, 0, 5]);
        if let Some(g) = hd_guid {
            path.extend_from_slice(&[4, 1, 42, 0]);
            path.extend_from_slice(&1u32.to_le_bytes());
            path.extend_from_slice(&64u64.to_le_bytes());
            path.extend_from_slice(&8128u64.to_le_bytes());
            path.extend_from_slice(&g);
            path.extend_from_slice(&[2, 2]);
        }
        // File path node (type 4 subtype 4), UCS-2 NUL-terminated
        let f: Vec<u8> = file
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        path.extend_from_slice(&[4, 4]);
        path.extend_from_slice(&((f.len() + 4) as u16).to_le_bytes());
        path.extend_from_slice(&f);
        path.extend_from_slice(&[0x7f, 0xff, 4, 0]);
        let mut v = ATTR_NV_BS_RT.to_le_bytes().to_vec();
        v.extend_from_slice(&attributes.to_le_bytes());
        v.extend_from_slice(&(path.len() as u16).to_le_bytes());
        v.extend(desc.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
        v.extend_from_slice(&path);
        v.extend_from_slice(b"opt");
        v
    }

    fn efivars(t: &TempDir) -> PathBuf {
        let esxi = parse_guid(ESXI_PART).unwrap();
        let other = parse_guid("11111111-2222-3333-4444-555555555555").unwrap();
        t.write(
            &format!("efivars/Boot0000-{EFI_GLOBAL_GUID}"),
            boot_file(1, "UEFI Shell", None, "\\shell.efi"),
        );
        t.write(
            &format!("efivars/Boot0001-{EFI_GLOBAL_GUID}"),
            boot_file(1, "Debian", Some(other), "\\EFI\\debian\\shimx64.efi"),
        );
        t.write(
            &format!("efivars/Boot0003-{EFI_GLOBAL_GUID}"),
            boot_file(
                0,
                "VMware ESXi (old)",
                Some(esxi),
                "\\EFI\\VMware\\safeboot64.efi",
            ),
        );
        t.write(
            &format!("efivars/Boot000A-{EFI_GLOBAL_GUID}"),
            boot_file(1, "VMware ESXi", Some(esxi), "\\EFI\\BOOT\\BOOTX64.EFI"),
        );
        t.write(
            &format!("efivars/Boot0007-{EFI_GLOBAL_GUID}"),
            [7u8, 0, 0, 0, 1, 0, 0, 0, 200, 0, 0, 0],
        );
        t.write(
            &format!("efivars/BootOrder-{EFI_GLOBAL_GUID}"),
            [7, 0, 0, 0, 1, 0, 10, 0, 3, 0],
        );
        t.write(
            &format!("efivars/BootCurrent-{EFI_GLOBAL_GUID}"),
            [6, 0, 0, 0, 0, 0],
        );
        t.write(
            "efivars/Boot0002-00000000-0000-0000-0000-000000000000",
            [0u8; 4],
        );
        t.write(&format!("efivars/BootXYZW-{EFI_GLOBAL_GUID}"), [0u8; 4]);
        t.path().join("efivars")
    }

    #[test]
    fn guid_text_round_trip_is_mixed_endian() {
        let g = parse_guid(ESXI_PART).unwrap();
        assert_eq!(&g[..4], &[0xf0, 0x21, 0x3c, 0x5a]);
        assert_eq!(&g[8..10], &[0x9c, 0x1d]);
        assert_eq!(format_guid(&g), ESXI_PART);
        assert_eq!(parse_guid(&ESXI_PART.to_uppercase()), Some(g));
        assert_eq!(parse_guid("5a3c21f0-8d7e-4b6a-9c1d"), None);
        assert_eq!(parse_guid("5a3c21f0-8d7e-4b6a-9c1d-0e2f3a4b5c6x"), None);
    }

    #[test]
    fn reads_entries_order_and_problems() {
        let t = TempDir::new("efi");
        let dir = efivars(&t);
        let v = read_boot_vars(&dir).unwrap();
        let nums: Vec<u16> = v.entries.iter().map(|e| e.number).collect();
        assert_eq!(nums, [0, 1, 3, 10]);
        assert_eq!(v.boot_order, [1, 10, 3]);
        assert_eq!(v.boot_current, Some(0));
        assert_eq!(v.boot_next, None);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].starts_with("Boot0007: "), "{:?}", v.problems);
        let esxi = &v.entries[3].option;
        assert_eq!(esxi.description, "VMware ESXi");
        assert!(esxi.is_active());
        assert_eq!(esxi.optional_data, b"opt");
        let hd: Vec<HardDriveNode> = esxi.hard_drives().collect();
        assert_eq!(hd.len(), 1);
        assert_eq!(
            (hd[0].partition_number, hd[0].start_lba, hd[0].size_lba),
            (1, 64, 8128)
        );
        assert_eq!((hd[0].partition_format, hd[0].signature_type), (2, 2));
        assert_eq!(format_guid(&hd[0].signature), ESXI_PART);
        assert_eq!(esxi.device_path.last(), Some(&end()));
    }

    #[test]
    fn load_option_round_trip() {
        let raw = boot_file(
            1,
            "VMware ESXi",
            parse_guid(ESXI_PART),
            "\\EFI\\BOOT\\BOOTX64.EFI",
        );
        let opt = parse_load_option(&raw[4..]).unwrap();
        assert_eq!(opt.to_bytes(), raw[4..]);
        let hd = opt.hard_drives().next().unwrap();
        assert_eq!(hd.to_node().hard_drive(), Some(hd));
    }

    #[test]
    fn malformed_options_are_errors_not_panics() {
        assert!(parse_load_option(&[1, 0]).is_err());
        assert!(
            parse_load_option(&[1, 0, 0, 0, 0, 0, b'A', 0]).is_err(),
            "no NUL"
        );
        assert!(parse_load_option(&[1, 0, 0, 0, 8, 0, 0, 0, 0x7f, 0xff, 4, 0]).is_err());
        assert!(
            parse_device_path(&[4, 1, 2, 0]).is_err(),
            "length < 4 would loop"
        );
        assert!(parse_device_path(&[4, 1, 200, 0, 0, 0]).is_err());
        let raw = boot_file(1, "x", parse_guid(ESXI_PART), "\\a.efi");
        for cut in 0..raw.len() - 4 {
            let _ = parse_load_option(&raw[4..4 + cut]);
        }
    }

    #[test]
    fn finds_the_active_entry_and_writes_boot_next() {
        let t = TempDir::new("efi");
        let dir = efivars(&t);
        let esxi = parse_guid(ESXI_PART).unwrap();
        let v = read_boot_vars(&dir).unwrap();
        assert_eq!(
            find_entry_for_partition(&v, &esxi),
            Some(10),
            "active beats inactive Boot0003"
        );
        assert_eq!(find_entry_for_partition(&v, &[0u8; 16]), None);

        // Creating BootNext.
        assert_eq!(set_boot_next_for_partition(&dir, &esxi).unwrap(), 10);
        let path = dir.join(format!("BootNext-{EFI_GLOBAL_GUID}"));
        assert_eq!(std::fs::read(&path).unwrap(), [7, 0, 0, 0, 10, 0]);
        // Overwriting an existing (longer) one.
        std::fs::write(&path, [7, 0, 0, 0, 1, 0, 9, 9]).unwrap();
        write_boot_next(&dir, 0x1234).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [7, 0, 0, 0, 0x34, 0x12]);
        assert_eq!(read_boot_vars(&dir).unwrap().boot_next, Some(0x1234));

        let missing = parse_guid("99999999-2222-3333-4444-555555555555").unwrap();
        let e = set_boot_next_for_partition(&dir, &missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no UEFI boot entry points at partition 99999999-2222-3333-4444-555555555555"
        );
    }

    #[test]
    fn inactive_only_and_boot_order_tiebreak() {
        let g = parse_guid(ESXI_PART).unwrap();
        let entry = |number, attributes| BootEntry {
            number,
            option: LoadOption {
                attributes,
                description: String::new(),
                device_path: vec![
                    HardDriveNode {
                        partition_number: 1,
                        start_lba: 64,
                        size_lba: 1,
                        signature: g,
                        partition_format: 2,
                        signature_type: 2,
                    }
                    .to_node(),
                    end(),
                ],
                optional_data: vec![],
            },
        };
        let mut v = BootVars {
            entries: vec![entry(2, 0), entry(5, 1), entry(7, 1)],
            boot_order: vec![7, 5],
            ..BootVars::default()
        };
        assert_eq!(find_entry_for_partition(&v, &g), Some(7));
        v.entries = vec![entry(2, 0)];
        assert_eq!(find_entry_for_partition(&v, &g), Some(2));
    }

    #[test]
    fn clear_immutable_tolerates_plain_files() {
        let t = TempDir::new("efi");
        let p = t.write("f", "x");
        clear_immutable(&p).unwrap();
        assert!(clear_immutable(&t.path().join("missing")).is_err());
    }

    #[test]
    fn missing_dir_is_an_error() {
        let t = TempDir::new("efi");
        assert!(matches!(
            read_boot_vars(&t.path().join("none")),
            Err(EfiVarError::Io { .. })
        ));
    }
}
