//! state.tgz files made byte by byte (any member name or type, nested gzip), and putting one
//! into a bank with mtools.

use std::io::Write;
use std::path::Path;

use esxi_fixtures::Fixture;
use flate2::write::GzEncoder;
use flate2::Compression;

/// A tar member with any name and type, bypassing the tar crate's path checks.
pub fn member(name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

pub fn tar_of(members: &[Vec<u8>]) -> Vec<u8> {
    let mut t: Vec<u8> = members.concat();
    t.extend_from_slice(&[0u8; 1024]);
    t
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn state_with_local(local_members: &[Vec<u8>]) -> Vec<u8> {
    let local = gz(&tar_of(local_members));
    gz(&tar_of(&[member(
        "local.tgz",
        tar::EntryType::Regular,
        &local,
        None,
    )]))
}

/// Put `bytes` into bootbank slot 5 as state.tgz (mcopy: not the agent's own FAT code).
pub fn put_state(f: &Fixture, dir: &Path, bytes: &[u8]) {
    let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap();
    let file = dir.join("state.tgz");
    std::fs::write(&file, bytes).unwrap();
    let st = std::process::Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@{}", f.path.display(), bank.first_lba * 512))
        .arg(&file)
        .arg("::state.tgz")
        .status()
        .unwrap();
    assert!(st.success(), "mcopy");
}
