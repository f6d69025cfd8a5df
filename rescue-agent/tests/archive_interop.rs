//! GNU tar / gzip interoperability of the archive splice: archives made by the real
//! tools are read and edited, and the results are checked with the real tools again.
//! Uses only the public `rescue_agent::archive` API; the helpers below are copies of the
//! unit tests' ones, and `list`/`read_member`/`replace_member`/`replace_in_tgz` here
//! also re-read each archive with the `tar` crate (the cross-check the unit tests run).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use rescue_agent::archive::{self, gunzip, ArchiveError, Limits, Member};

type Result<T> = std::result::Result<T, ArchiveError>;

/// gzip header flags (RFC 1952).
const GZ_FHCRC: u8 = 0x02;
const GZ_FEXTRA: u8 = 0x04;
const GZ_FNAME: u8 = 0x08;
const GZ_FCOMMENT: u8 = 0x10;

/// Length of a gzip member header, optional fields and FHCRC included (input trusted).
fn gzip_header_len(data: &[u8]) -> usize {
    let flags = data[3];
    let mut pos = 10;
    if flags & GZ_FEXTRA != 0 {
        pos += 2 + usize::from(u16::from_le_bytes([data[pos], data[pos + 1]]));
    }
    for flag in [GZ_FNAME, GZ_FCOMMENT] {
        if flags & flag != 0 {
            pos += data[pos..].iter().position(|&b| b == 0).unwrap() + 1;
        }
    }
    if flags & GZ_FHCRC != 0 {
        pos += 2;
    }
    pos
}

/// Member-name matching as the archive module does it (no `.` or empty components).
fn normalise(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// If `list` accepts `tar`, the `tar` crate (raw headers) must find the same regular
/// members at the same header and data offsets with the same sizes. (The unit tests'
/// cross-check compares extension headers too; the public API does not expose them.)
fn tar_crate_agrees(tar: &[u8], limits: &Limits) {
    let Ok(members) = archive::list(tar, limits) else {
        return;
    };
    let mut regular = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("tar crate refused the archive: {e}"))
        .raw(true);
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("tar crate refused the archive: {e}"));
        if !matches!(
            entry.header().entry_type().as_byte(),
            b'x' | b'g' | b'L' | b'K'
        ) {
            regular.push((
                entry.raw_header_position(),
                entry.raw_file_position(),
                entry.size(),
            ));
        }
    }
    let ours: Vec<_> = members
        .iter()
        .map(|m| (m.header_offset, m.data_offset, m.size))
        .collect();
    assert_eq!(regular, ours, "tar crate disagrees about the members");
}

fn list(tar: &[u8], limits: &Limits) -> Result<Vec<Member>> {
    tar_crate_agrees(tar, limits);
    archive::list(tar, limits)
}

fn read_member(tar: &[u8], name: &str, limits: &Limits) -> Result<Vec<u8>> {
    tar_crate_agrees(tar, limits);
    archive::read_member(tar, name, limits)
}

fn replace_member(tar: &[u8], name: &str, content: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    tar_crate_agrees(tar, limits);
    let out = archive::replace_member(tar, name, content, limits);
    if let Ok(out) = &out {
        tar_crate_agrees(out, limits);
    }
    out
}

fn replace_in_tgz(tgz: &[u8], name: &str, content: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let agrees_inside = |tgz: &[u8]| {
        if let Ok(tar) = gunzip(tgz, limits) {
            tar_crate_agrees(&tar, limits);
        }
    };
    agrees_inside(tgz);
    let out = archive::replace_in_tgz(tgz, name, content, limits);
    if let Ok(out) = &out {
        agrees_inside(out);
    }
    out
}

/// Convenience: gunzip → read_member.
fn read_from_tgz(tgz: &[u8], name: &str, limits: &Limits) -> Result<Vec<u8>> {
    let tar = gunzip(tgz, limits)?;
    read_member(&tar, name, limits)
}

const ESX_CONF: &str = "etc/vmware/esx.conf";

/// A GNU header ("ustar  \0") as BusyBox writes it: root-owned, checksum
/// formatted "%06o\0 ". The name is written raw so `..` and `/x` are possible.
fn header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h.set_entry_type(tar::EntryType::new(typeflag));
    let mut b = *h.as_bytes();
    b[..100].fill(0);
    b[..name.len()].copy_from_slice(name.as_bytes());
    busybox_cksum(&mut b);
    b
}

fn busybox_cksum(b: &mut [u8; 512]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

fn entry(name: &str, typeflag: u8, data: &[u8]) -> Vec<u8> {
    let mut v = header(name, typeflag, data.len() as u64).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn finish(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    finish(files.iter().flat_map(|(n, d)| entry(n, b'0', d)).collect())
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
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

fn sample_tar() -> Vec<u8> {
    let files = sample_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    tar_of(&refs)
}

fn padded_end(m: &Member) -> usize {
    (m.data_offset + m.size.div_ceil(512) * 512) as usize
}

/// Every member except `edited` keeps header+data+padding bytes; the edited
/// header differs only in size and checksum; the tail after the last member is identical.
fn assert_spliced(old: &[u8], new: &[u8], edited: &str, content: &[u8]) {
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

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write_tree(dir: &Path) {
    for (n, d) in sample_files() {
        let p = dir.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
}

#[test]
fn gnu_tar_and_gzip_accept_the_result() {
    assert!(have("tar") && have("gzip"), "GNU tar and gzip are required");
    let lim = Limits::default();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_tree(&src);
    let names: Vec<&str> = sample_files().iter().map(|(n, _)| *n).collect();
    let tar_path = dir.path().join("local.tar");
    run(Command::new("tar")
        .args(["--format=gnu", "--owner=0", "--group=0", "--numeric-owner"])
        .arg("-cf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&src)
        .args(&names));
    // gzip without -n stores FNAME ("local.tar") and the mtime
    run(Command::new("gzip").arg(&tar_path));
    let gz_path = dir.path().join("local.tar.gz");
    let tgz = std::fs::read(&gz_path).unwrap();
    assert_ne!(tgz[3] & GZ_FNAME, 0, "gzip wrote no FNAME");
    let hlen = gzip_header_len(&tgz);
    assert!(tgz[..hlen].ends_with(b"local.tar\0"));

    let tar = gunzip(&tgz, &lim).unwrap();
    let content = b"/adv/Misc/HostName = \"rescued\"\n".repeat(40);
    let out = replace_in_tgz(&tgz, ESX_CONF, &content, &lim).unwrap();
    assert_eq!(&out[..hlen], &tgz[..hlen], "gzip header not verbatim");
    let new_tar = gunzip(&out, &lim).unwrap();
    assert_spliced(&tar, &new_tar, ESX_CONF, &content);
    // GNU tar writes checksums as "%06o\0 "; still so
    let m = &list(&new_tar, &lim).unwrap()[1];
    let h = m.header_offset as usize;
    assert_eq!(&new_tar[h + 154..h + 156], b"\0 ");

    let out_path = dir.path().join("out.tgz");
    std::fs::write(&out_path, &out).unwrap();
    run(Command::new("gzip").arg("-t").arg(&out_path));
    let listing = String::from_utf8(run(Command::new("tar").arg("-tvzf").arg(&out_path))).unwrap();
    assert_eq!(listing.lines().count(), names.len(), "{listing}");
    assert!(
        listing.contains(&format!("{} ", content.len())),
        "{listing}"
    );
    for (n, d) in sample_files() {
        let got = run(Command::new("tar").arg("-xzOf").arg(&out_path).arg(n));
        if n == ESX_CONF {
            assert_eq!(got, content);
        } else {
            assert_eq!(got, d, "{n}");
        }
    }
    // GNU tar's full extraction agrees, and tar -d style check of others
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&out_path)
        .arg("-C")
        .arg(&x));
    assert_eq!(std::fs::read(x.join(ESX_CONF)).unwrap(), content);
}

#[test]
fn gnu_tar_long_names_pax_and_directories() {
    assert!(have("tar"), "GNU tar is required");
    let lim = Limits::default();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_tree(&src);
    let long = format!("etc/{}/deep.conf", "d".repeat(120));
    std::fs::create_dir_all(src.join(&long).parent().unwrap()).unwrap();
    std::fs::write(src.join(&long), b"deep").unwrap();
    for format in ["gnu", "pax"] {
        let tar_path = dir.path().join(format!("{format}.tar"));
        run(Command::new("tar")
            .arg(format!("--format={format}"))
            .args([
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--no-recursion",
            ])
            .arg("-cf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&src)
            .args([ESX_CONF, long.as_str(), "etc/hosts"]));
        let tar = std::fs::read(&tar_path).unwrap();
        let names: Vec<String> = list(&tar, &lim)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, [ESX_CONF, long.as_str(), "etc/hosts"], "{format}");
        assert_eq!(read_member(&tar, &long, &lim).unwrap(), b"deep");
        assert!(matches!(
            replace_member(&tar, &long, b"x", &lim),
            Err(ArchiveError::PaxOnEdited { .. })
        ));
        if format == "pax" {
            // GNU tar's pax format gives every member an 'x' header (times).
            assert!(matches!(
                replace_member(&tar, "etc/hosts", b"x", &lim),
                Err(ArchiveError::PaxOnEdited { .. })
            ));
            continue;
        }
        let new = replace_member(&tar, "etc/hosts", &[b'h'; 900], &lim).unwrap();
        assert_spliced(&tar, &new, "etc/hosts", &[b'h'; 900]);
        let out = dir.path().join(format!("{format}-out.tar"));
        std::fs::write(&out, &new).unwrap();
        let got = run(Command::new("tar").arg("-xOf").arg(&out).arg("etc/hosts"));
        assert_eq!(got, vec![b'h'; 900]);
        let got = run(Command::new("tar").arg("-xOf").arg(&out).arg(&long));
        assert_eq!(got, b"deep");
    }
    // default recursion stores directory entries: refused
    let tar_path = dir.path().join("dirs.tar");
    run(Command::new("tar")
        .args(["--format=gnu", "-cf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&src)
        .arg("etc"));
    let tar = std::fs::read(&tar_path).unwrap();
    assert!(matches!(
        list(&tar, &lim),
        Err(ArchiveError::NotRegular {
            kind: "directory",
            ..
        })
    ));
    // a symlink made by GNU tar is refused too
    std::os::unix::fs::symlink("/etc/shadow", src.join("etc/link")).unwrap();
    run(Command::new("tar")
        .args(["--format=gnu", "-cf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&src)
        .args(["etc/hosts", "etc/link"]));
    let tar = std::fs::read(&tar_path).unwrap();
    assert!(matches!(
        list(&tar, &lim),
        Err(ArchiveError::NotRegular {
            kind: "symlink",
            ..
        })
    ));
}

#[test]
fn fhcrc_fextra_fcomment_header_verbatim() {
    let lim = Limits::default();
    let tar = sample_tar();
    // hand-made header with every optional field
    let mut hdr = vec![0x1f, 0x8b, 8, GZ_FEXTRA | GZ_FNAME | GZ_FCOMMENT | GZ_FHCRC];
    hdr.extend_from_slice(&[0x10, 0x20, 0x30, 0x40, 0, 3]);
    hdr.extend_from_slice(&[4, 0, b'A', b'B', 0, 0]);
    hdr.extend_from_slice(b"local.tar\0a comment\0");
    let crc = (crc32fast::hash(&hdr) as u16).to_le_bytes();
    hdr.extend_from_slice(&crc);
    let mut enc = flate2::write::DeflateEncoder::new(hdr.clone(), flate2::Compression::best());
    enc.write_all(&tar).unwrap();
    let mut tgz = enc.finish().unwrap();
    tgz.extend_from_slice(&crc32fast::hash(&tar).to_le_bytes());
    tgz.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    assert_eq!(gunzip(&tgz, &lim).unwrap(), tar);

    let out = replace_in_tgz(&tgz, ESX_CONF, b"new\n", &lim).unwrap();
    assert_eq!(&out[..hdr.len()], &hdr[..]);
    assert_eq!(read_from_tgz(&out, ESX_CONF, &lim).unwrap(), b"new\n");
    if have("gzip") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.gz");
        std::fs::write(&p, &out).unwrap();
        run(Command::new("gzip").arg("-t").arg(&p));
    }
    // a wrong FHCRC is refused
    let mut bad = tgz.clone();
    bad[hdr.len() - 1] ^= 1;
    assert!(matches!(gunzip(&bad, &lim), Err(ArchiveError::Gzip(_))));
}

#[test]
fn nested_state_local_esx_conf_round_trip() {
    let lim = Limits::default();
    let local_tar = sample_tar();
    let local_tgz = gz(&local_tar);
    let state_tar = finish(entry("local.tgz", b'0', &local_tgz));
    let state_tgz = gz(&state_tar);

    let local = read_from_tgz(&state_tgz, "local.tgz", &lim).unwrap();
    assert_eq!(local, local_tgz);
    let conf = read_from_tgz(&local, ESX_CONF, &lim).unwrap();
    let mut new_conf = conf.clone();
    new_conf.extend_from_slice(b"/device/00000:004:00.0/owner = \"passthru\"\n");
    let new_local = replace_in_tgz(&local, ESX_CONF, &new_conf, &lim).unwrap();
    let new_state = replace_in_tgz(&state_tgz, "local.tgz", &new_local, &lim).unwrap();

    assert_eq!(&new_state[..10], &state_tgz[..10]);
    let l2 = read_from_tgz(&new_state, "local.tgz", &lim).unwrap();
    assert_eq!(&l2[..10], &local_tgz[..10]);
    assert_eq!(read_from_tgz(&l2, ESX_CONF, &lim).unwrap(), new_conf);
    assert_spliced(&local_tar, &gunzip(&l2, &lim).unwrap(), ESX_CONF, &new_conf);
    assert_spliced(
        &state_tar,
        &gunzip(&new_state, &lim).unwrap(),
        "local.tgz",
        &new_local,
    );

    if have("tar") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.tgz"), &new_state).unwrap();
        run(Command::new("tar")
            .arg("-xzf")
            .arg("state.tgz")
            .current_dir(dir.path()));
        run(Command::new("tar")
            .arg("-xzf")
            .arg("local.tgz")
            .current_dir(dir.path()));
        assert_eq!(std::fs::read(dir.path().join(ESX_CONF)).unwrap(), new_conf);
        assert_eq!(
            std::fs::read(dir.path().join("etc/passwd")).unwrap(),
            vec![b'p'; 700]
        );
    }
}
