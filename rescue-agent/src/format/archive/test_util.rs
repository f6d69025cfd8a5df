//! Test-only helpers shared by the archive unit tests: hand-made tar headers and
//! archives, a plain gzip, the splice assertion, and stand-ins for the public
//! functions that also run the `tar` crate cross-check on every archive they see.

use std::io::Write;

use super::cross_check::tar_crate_agrees;
use super::tar::normalise;
use super::{gunzip, ArchiveError, Limits, Member, Result};

/// [`super::list`], after checking the `tar` crate agrees on `tar`'s layout.
pub(super) fn list(tar: &[u8], limits: &Limits) -> Result<Vec<Member>> {
    tar_crate_agrees(tar, limits);
    super::list(tar, limits)
}

/// [`super::read_member`], after checking the `tar` crate agrees on `tar`'s layout.
pub(super) fn read_member(tar: &[u8], name: &str, limits: &Limits) -> Result<Vec<u8>> {
    tar_crate_agrees(tar, limits);
    super::read_member(tar, name, limits)
}

/// [`super::replace_member`], checking the `tar` crate agrees on the input and the output.
pub(super) fn replace_member(
    tar: &[u8],
    name: &str,
    content: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>> {
    tar_crate_agrees(tar, limits);
    let out = super::replace_member(tar, name, content, limits);
    if let Ok(out) = &out {
        tar_crate_agrees(out, limits);
    }
    out
}

/// [`super::replace_in_tgz`], checking the `tar` crate agrees on the tar inside the
/// input and inside the output.
pub(super) fn replace_in_tgz(
    tgz: &[u8],
    name: &str,
    content: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>> {
    let agrees_inside = |tgz: &[u8]| {
        if let Ok(tar) = gunzip(tgz, limits) {
            tar_crate_agrees(&tar, limits);
        }
    };
    agrees_inside(tgz);
    let out = super::replace_in_tgz(tgz, name, content, limits);
    if let Ok(out) = &out {
        agrees_inside(out);
    }
    out
}

/// Convenience: gunzip → read_member.
pub(super) fn read_from_tgz(tgz: &[u8], name: &str, limits: &Limits) -> Result<Vec<u8>> {
    let tar = gunzip(tgz, limits)?;
    read_member(&tar, name, limits)
}

pub(super) const ESX_CONF: &str = "etc/vmware/esx.conf";

/// A GNU header ("ustar  \0") as BusyBox writes it: root-owned, checksum
/// formatted "%06o\0 ". The name is written raw so `..` and `/x` are possible.
pub(super) fn header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = ::tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h.set_entry_type(::tar::EntryType::new(typeflag));
    let mut b = *h.as_bytes();
    b[..100].fill(0);
    b[..name.len()].copy_from_slice(name.as_bytes());
    busybox_cksum(&mut b);
    b
}

pub(super) fn busybox_cksum(b: &mut [u8; 512]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

pub(super) fn entry(name: &str, typeflag: u8, data: &[u8]) -> Vec<u8> {
    let mut v = header(name, typeflag, data.len() as u64).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

pub(super) fn finish(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

pub(super) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    finish(files.iter().flat_map(|(n, d)| entry(n, b'0', d)).collect())
}

pub(super) fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

pub(super) fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(super) fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/hosts", b"127.0.0.1 localhost\n".to_vec()),
        (
            ESX_CONF,
            b"/adv/Misc/HostName = \"esx01\"\n/device/00000:003:00.0/owner = \"vmkernel\"\n"
                .to_vec(),
        ),
        ("etc/passwd", vec![b'p'; 700]),
        ("etc/vmware/hostd/hostsvc.xml", vec![b'x'; 1024]),
        ("etc/empty", Vec::new()),
    ]
}

pub(super) fn sample_tar() -> Vec<u8> {
    let files = sample_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    tar_of(&refs)
}

pub(super) fn padded_end(m: &Member) -> usize {
    (m.data_offset + m.size.div_ceil(512) * 512) as usize
}

/// Every member except `edited` keeps header+data+padding bytes; the edited
/// header differs only in size and checksum; the tail after the last member is identical.
pub(super) fn assert_spliced(old: &[u8], new: &[u8], edited: &str, content: &[u8]) {
    let lim = Limits::default();
    let a = list(old, &lim).unwrap();
    let b = list(new, &lim).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        let ho = x.header_offset as usize;
        let hn = y.header_offset as usize;
        if normalise(&x.name) == normalise(edited) {
            let (ho_b, hn_b) = (&old[ho..ho + 512], &new[hn..hn + 512]);
            for i in 0..512 {
                if !(124..136).contains(&i) && !(148..156).contains(&i) {
                    assert_eq!(ho_b[i], hn_b[i], "edited header byte {i} changed");
                }
            }
            // checksum formatting style kept: same terminator bytes
            let style = |f: &[u8]| f.iter().map(|b| b.is_ascii_digit()).collect::<Vec<_>>();
            assert_eq!(style(&ho_b[148..156]), style(&hn_b[148..156]));
            for i in 148..156 {
                if !ho_b[i].is_ascii_digit() {
                    assert_eq!(ho_b[i], hn_b[i], "checksum terminator byte {i} changed");
                }
            }
            assert_eq!(&new[y.data_offset as usize..][..content.len()], content);
            assert!(new[y.data_offset as usize + content.len()..padded_end(y)]
                .iter()
                .all(|&z| z == 0));
            assert_eq!(y.size, content.len() as u64);
        } else {
            assert_eq!(
                &old[ho..padded_end(x)],
                &new[hn..padded_end(y)],
                "{}",
                x.name
            );
        }
    }
    let (ta, tb) = (padded_end(a.last().unwrap()), padded_end(b.last().unwrap()));
    assert_eq!(&old[ta..], &new[tb..], "end-of-archive blocks changed");
}

pub(super) fn refused(tar: &[u8], name: &str) -> ArchiveError {
    let lim = Limits::default();
    let e = replace_member(tar, name, b"new", &lim).unwrap_err();
    let tgz = gz(tar);
    assert!(replace_in_tgz(&tgz, name, b"new", &lim).is_err());
    e
}

/// `len` bytes of xorshift noise from `seed`: data deflate cannot shrink.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
