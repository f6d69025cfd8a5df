//! The strict tar walk: numeric fields, header checksum, PAX and GNU long-name
//! extension headers, and the validation of every header (names, types, sizes), plus
//! [`list`] and [`read_member`] on top of it. This is the one tar parser the agent
//! uses; `splice.rs` edits only what this walk has validated.

use super::{tar_err, ArchiveError, Limits, Member, Result, BLOCK};

/// Largest GNU long-name (`L`/`K`) payload accepted.
const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest PAX extended header payload accepted.
const MAX_PAX: u64 = 1024 * 1024;

/// Parses a tar numeric field: octal (leading spaces, digits, then NUL/space or end)
/// or GNU base-256 (high bit of the first byte set, positive values only).
pub(super) fn parse_num(field: &[u8]) -> std::result::Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] != 0x80 {
            return Err("negative or oversized base-256 value".into());
        }
        let mut v: u64 = 0;
        for &b in &field[1..] {
            if v >> 56 != 0 {
                return Err("base-256 value overflows 64 bits".into());
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    if field.first() == Some(&0) {
        // An empty (all-NUL) field reads as 0 in GNU tar and BusyBox; anything
        // after a leading NUL would be read differently by different tars.
        return if field.iter().all(|&b| b == 0) {
            Ok(0)
        } else {
            Err(format!(
                "numeric field {:?} starts with NUL",
                String::from_utf8_lossy(field)
            ))
        };
    }
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let digits = field[start..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    if digits == 0 {
        return Err(format!(
            "no octal digits in {:?}",
            String::from_utf8_lossy(field)
        ));
    }
    let end = start + digits;
    if end < field.len() && field[end] != 0 && field[end] != b' ' {
        return Err(format!(
            "bad octal field {:?}",
            String::from_utf8_lossy(field)
        ));
    }
    let mut v: u64 = 0;
    for &b in &field[start..end] {
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| "octal value overflows 64 bits".to_string())?;
    }
    Ok(v)
}

/// Unsigned header checksum with the checksum field counted as spaces.
pub(super) fn header_sum(header: &[u8]) -> u64 {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// A regular-file member found by [`walk`].
pub(super) struct Found {
    pub(super) member: Member,
    /// Normalised name used for matching (no `.` or empty components).
    norm: String,
    /// Offsets of extension headers (`x`, `L`, `K`) belonging to this member.
    pub(super) extensions: Vec<u64>,
}

pub(super) struct Walk {
    pub(super) members: Vec<Found>,
    /// Offset of the first global PAX header, if any.
    pub(super) global_pax: Option<u64>,
}

/// Extension data collected for the next member.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: bool,
    pax: Option<Pax>,
    offsets: Vec<u64>,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
    sparse: bool,
}

/// Parses PAX records (`"<len> <key>=<value>\n"`), strictly.
fn parse_pax_records(data: &[u8], at: u64) -> Result<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    let mut rest = data;
    let mut off = at;
    while !rest.is_empty() {
        let bad = |why: &str| tar_err(format!("malformed PAX record at offset {off}: {why}"));
        let sp = rest
            .iter()
            .take(21)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        if sp == 0 || !rest[..sp].iter().all(u8::is_ascii_digit) {
            return Err(bad("bad length"));
        }
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad length"))?;
        if len < sp + 3 || len > rest.len() {
            return Err(bad("length out of range"));
        }
        let record = &rest[sp + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("record does not end in a newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no '='"))?;
        if eq == 0 {
            return Err(bad("empty key"));
        }
        let key = &record[..eq];
        if records.iter().any(|(k, _)| *k == key) {
            return Err(bad("duplicate key"));
        }
        records.push((key, &record[eq + 1..]));
        rest = &rest[len..];
        off += len as u64;
    }
    Ok(records)
}

fn parse_pax(data: &[u8], at: u64) -> Result<Pax> {
    let mut pax = Pax::default();
    for (key, value) in parse_pax_records(data, at)? {
        match key {
            b"path" => {
                if value.is_empty() {
                    return Err(tar_err(format!("empty PAX path at offset {at}")));
                }
                pax.path = Some(value.to_vec());
            }
            b"size" => {
                let ok =
                    !value.is_empty() && value.len() <= 20 && value.iter().all(u8::is_ascii_digit);
                let size = std::str::from_utf8(value)
                    .ok()
                    .filter(|_| ok)
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| tar_err(format!("bad PAX size record at offset {at}")))?;
                pax.size = Some(size);
            }
            k if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
    }
    Ok(pax)
}

fn type_name(typeflag: u8) -> &'static str {
    match typeflag {
        b'1' => "hardlink",
        b'2' => "symlink",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "fifo",
        b'7' => "contiguous file",
        b'S' => "GNU sparse file",
        b'D' => "GNU dump directory",
        b'M' => "GNU multi-volume continuation",
        b'V' => "GNU volume label",
        b'N' => "GNU old long name entry",
        _ => "unknown entry type",
    }
}

pub(super) fn normalise(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn bytes_until_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Whether a size or checksum field reads as other tar readers (the `tar` crate among
/// them) read it: the text before the first NUL, trimmed, is an octal number. The walk
/// itself reads a little more (an all-NUL field as 0, digits ended by a space with more
/// text after it, a base-256 checksum); an archive relying on that is refused after the
/// walk, so that every reader sees the same headers.
fn reads_as_plain_octal(field: &[u8]) -> bool {
    std::str::from_utf8(bytes_until_nul(field))
        .is_ok_and(|text| u64::from_str_radix(text.trim(), 8).is_ok())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Ustar,
    Gnu,
    V7,
}

/// Walks and validates every header of an uncompressed tar.
pub(super) fn walk(tar: &[u8], limits: &Limits) -> Result<Walk> {
    if tar.len() as u64 > limits.max_uncompressed {
        return Err(ArchiveError::TooLarge {
            what: format!("tar of {} bytes", tar.len()),
            limit: limits.max_uncompressed,
        });
    }
    let mut walk = Walk {
        members: Vec::new(),
        global_pax: None,
    };
    let mut pending = Pending::default();
    // The first thing other tar readers would not read the same way; reported only once
    // the walk has found nothing else wrong.
    let mut unportable: Option<String> = None;
    let mut pos = 0usize;
    loop {
        if pos >= tar.len() {
            // Archive ends without end-of-archive blocks; accepted like GNU tar does.
            break;
        }
        let avail = (tar.len() - pos).min(BLOCK);
        let block = &tar[pos..pos + avail];
        if block.iter().all(|&b| b == 0) {
            if let Some(i) = tar[pos..].iter().position(|&b| b != 0) {
                return Err(tar_err(format!(
                    "non-zero data at offset {} after the end-of-archive block at offset {pos}",
                    pos + i
                )));
            }
            if avail < BLOCK {
                unportable.get_or_insert_with(|| {
                    format!("truncated end-of-archive block at offset {pos}: {avail} of 512 bytes")
                });
            }
            break;
        }
        if avail < BLOCK {
            return Err(tar_err(format!(
                "truncated header at offset {pos}: {avail} of 512 bytes"
            )));
        }
        let at = pos as u64;

        let stored = parse_num(&block[148..156])
            .map_err(|e| tar_err(format!("bad checksum field in header at offset {pos}: {e}")))?;
        let computed = header_sum(block);
        if stored != computed {
            return Err(tar_err(format!(
                "bad header checksum at offset {pos}: stored {stored:o}, computed {computed:o}"
            )));
        }
        if !reads_as_plain_octal(&block[148..156]) {
            unportable.get_or_insert_with(|| {
                format!("checksum field of the header at offset {pos} is not plain octal text")
            });
        }
        let format = match &block[257..265] {
            b"ustar\x0000" => Format::Ustar,
            b"ustar  \x00" => Format::Gnu,
            m if m.iter().all(|&b| b == 0) => Format::V7,
            _ => {
                return Err(tar_err(format!(
                    "unrecognised header magic at offset {}",
                    pos + 257
                )))
            }
        };
        let typeflag = block[156];
        let size = parse_num(&block[124..136])
            .map_err(|e| tar_err(format!("bad size field in header at offset {pos}: {e}")))?;
        // A base-256 size reads the same everywhere; octal must be plain.
        if block[124] & 0x80 == 0 && !reads_as_plain_octal(&block[124..136]) {
            unportable.get_or_insert_with(|| {
                format!("size field of the header at offset {pos} is not plain octal text")
            });
        }
        if size > limits.max_member {
            return Err(ArchiveError::TooLarge {
                what: format!("member at offset {pos} with declared size {size}"),
                limit: limits.max_member,
            });
        }
        let data_offset = pos + BLOCK;
        let size_usize = usize::try_from(size)
            .map_err(|_| tar_err(format!("size {size} at offset {pos} too large")))?;
        let padded = size_usize
            .checked_add(BLOCK - 1)
            .map(|s| s / BLOCK * BLOCK)
            .ok_or_else(|| tar_err(format!("size overflow at offset {pos}")))?;
        let end = data_offset
            .checked_add(padded)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| {
                tar_err(format!(
                    "member data at offset {data_offset} ({size} bytes, padded {padded}) \
                     runs past the end of the {}-byte archive",
                    tar.len()
                ))
            })?;
        let data = &tar[data_offset..data_offset + size_usize];

        match typeflag {
            b'L' | b'K' => {
                if format != Format::Gnu {
                    return Err(tar_err(format!(
                        "GNU long-name header at offset {pos} in a non-GNU header"
                    )));
                }
                if size > MAX_LONG_NAME {
                    return Err(ArchiveError::TooLarge {
                        what: format!("GNU long-name header at offset {pos} ({size} bytes)"),
                        limit: MAX_LONG_NAME,
                    });
                }
                if typeflag == b'L' {
                    if pending.long_name.is_some() {
                        return Err(tar_err(format!(
                            "second GNU long-name header at offset {pos} for the same member"
                        )));
                    }
                    pending.long_name = Some(bytes_until_nul(data).to_vec());
                } else {
                    if pending.long_link {
                        return Err(tar_err(format!(
                            "second GNU long-link header at offset {pos} for the same member"
                        )));
                    }
                    pending.long_link = true;
                }
                pending.offsets.push(at);
            }
            b'x' | b'g' => {
                if size > MAX_PAX {
                    return Err(ArchiveError::TooLarge {
                        what: format!("PAX header at offset {pos} ({size} bytes)"),
                        limit: MAX_PAX,
                    });
                }
                let pax = parse_pax(data, data_offset as u64)?;
                if typeflag == b'g' {
                    if pax.path.is_some() || pax.size.is_some() || pax.sparse {
                        return Err(tar_err(format!(
                            "global PAX header at offset {pos} sets path, size or sparse keys"
                        )));
                    }
                    walk.global_pax.get_or_insert(at);
                } else {
                    if pending.pax.is_some() {
                        return Err(tar_err(format!(
                            "second PAX header at offset {pos} for the same member"
                        )));
                    }
                    pending.pax = Some(pax);
                    pending.offsets.push(at);
                }
            }
            _ => {
                let pending = std::mem::take(&mut pending);
                let pax = pending.pax.unwrap_or_default();
                let raw_name: Vec<u8> = match (pending.long_name, pax.path) {
                    (Some(_), Some(_)) => {
                        return Err(tar_err(format!(
                            "member at offset {pos} has both a GNU long name and a PAX path"
                        )))
                    }
                    (Some(n), None) | (None, Some(n)) => n,
                    (None, None) => {
                        let name = bytes_until_nul(&block[0..100]);
                        let prefix = bytes_until_nul(&block[345..500]);
                        if format == Format::Ustar && !prefix.is_empty() {
                            [prefix, b"/", name].concat()
                        } else {
                            name.to_vec()
                        }
                    }
                };
                let name = String::from_utf8(raw_name).map_err(|e| {
                    tar_err(format!(
                        "member name at offset {pos} is not UTF-8: {:?}",
                        String::from_utf8_lossy(e.as_bytes())
                    ))
                })?;
                if name.is_empty() || name.contains('\0') {
                    return Err(tar_err(format!("empty member name at offset {pos}")));
                }
                if name.starts_with('/') {
                    return Err(ArchiveError::AbsolutePath { name });
                }
                if name.split('/').any(|c| c == "..") {
                    return Err(ArchiveError::Traversal { name });
                }
                let norm = normalise(&name);
                if norm.is_empty() {
                    return Err(tar_err(format!(
                        "member name {name:?} at offset {pos} names no file"
                    )));
                }
                match typeflag {
                    b'0' | b'\0' if name.ends_with('/') => {
                        return Err(ArchiveError::NotRegular {
                            name,
                            kind: "directory",
                        })
                    }
                    b'0' | b'\0' => {}
                    other => {
                        return Err(ArchiveError::NotRegular {
                            name,
                            kind: type_name(other),
                        })
                    }
                }
                if pax.sparse {
                    return Err(ArchiveError::NotRegular {
                        name,
                        kind: "PAX sparse file",
                    });
                }
                if pending.long_link {
                    return Err(tar_err(format!(
                        "regular file {name:?} at offset {pos} has a GNU long-link header"
                    )));
                }
                if let Some(pax_size) = pax.size {
                    if pax_size != size {
                        return Err(tar_err(format!(
                            "PAX size {pax_size} differs from header size {size} for {name:?} at offset {pos}"
                        )));
                    }
                }
                let field = |range: std::ops::Range<usize>, what: &str| {
                    parse_num(&block[range]).map_err(|e| {
                        tar_err(format!("bad {what} field in header at offset {pos}: {e}"))
                    })
                };
                let mode = u32::try_from(field(100..108, "mode")?)
                    .map_err(|_| tar_err(format!("mode out of range at offset {pos}")))?;
                let uid = field(108..116, "uid")?;
                let gid = field(116..124, "gid")?;
                let mtime = field(136..148, "mtime")?;
                if walk.members.len() >= limits.max_members {
                    return Err(ArchiveError::TooLarge {
                        what: format!("member count (member at offset {pos})"),
                        limit: limits.max_members as u64,
                    });
                }
                walk.members.push(Found {
                    member: Member {
                        name,
                        size,
                        mode,
                        uid,
                        gid,
                        mtime,
                        header_offset: at,
                        data_offset: data_offset as u64,
                    },
                    norm,
                    extensions: pending.offsets,
                });
            }
        }
        pos = end;
    }
    if let Some(&first) = pending.offsets.first() {
        return Err(tar_err(format!(
            "extension header at offset {first} is not followed by a member"
        )));
    }
    if let Some(why) = unportable {
        return Err(tar_err(format!(
            "{why}; other tar readers would not read it the same way"
        )));
    }
    Ok(walk)
}

pub(super) fn find<'w>(walk: &'w Walk, name: &str) -> Result<&'w Found> {
    let wanted = normalise(name);
    let mut hits = walk
        .members
        .iter()
        .filter(|f| !wanted.is_empty() && f.norm == wanted);
    let first = hits.next().ok_or_else(|| ArchiveError::MemberMissing {
        name: name.to_string(),
    })?;
    if hits.next().is_some() {
        return Err(ArchiveError::Duplicate {
            name: name.to_string(),
        });
    }
    Ok(first)
}

pub(super) fn member_data<'t>(tar: &'t [u8], m: &Member) -> &'t [u8] {
    // Offsets and sizes were validated by `walk` against this very slice.
    &tar[m.data_offset as usize..(m.data_offset + m.size) as usize]
}

/// [`read_member`] that takes the tar and cuts the member's data out of its buffer in place:
/// the 64 MiB local.tgz of a 64 MiB state.tgz is not copied out of the outer tar.
pub fn take_member(mut tar: Vec<u8>, name: &str, limits: &Limits) -> Result<Vec<u8>> {
    let parsed = walk(&tar, limits)?;
    let found = find(&parsed, name)?;
    // Offsets and sizes were validated by `walk` against this very buffer.
    let (at, size) = (
        found.member.data_offset as usize,
        found.member.size as usize,
    );
    tar.truncate(at + size);
    tar.drain(..at);
    tar.shrink_to_fit();
    Ok(tar)
}

/// List members of a tar (uncompressed), validating every header: regular files
/// only, no `..` component, no absolute path, sizes within limits and within the
/// archive.
pub fn list(tar: &[u8], limits: &Limits) -> Result<Vec<Member>> {
    Ok(walk(tar, limits)?
        .members
        .into_iter()
        .map(|f| f.member)
        .collect())
}

/// Returns the content of member `name` (matched after dropping `.` and empty path
/// components, so `./etc/x` matches `etc/x`). Refuses missing and duplicate names.
pub fn read_member(tar: &[u8], name: &str, limits: &Limits) -> Result<Vec<u8>> {
    let parsed = walk(tar, limits)?;
    let found = find(&parsed, name)?;
    Ok(member_data(tar, &found.member).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_util::{
        assert_spliced, busybox_cksum, entry, finish, gz, header, pax_record, read_from_tgz,
        refused, sample_files, sample_tar, tar_of, ESX_CONF,
    };
    use crate::archive::test_util::{list, read_member, replace_member};

    #[test]
    fn list_reports_fields() {
        let tar = sample_tar();
        let l = list(&tar, &Limits::default()).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(
            l[1],
            Member {
                name: ESX_CONF.into(),
                size: sample_files()[1].1.len() as u64,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_700_000_000,
                header_offset: 1024,
                data_offset: 1536,
            }
        );
    }

    #[test]
    fn refuses_bad_names_and_types() {
        let lim = Limits::default();
        let ok = entry(ESX_CONF, b'0', b"x");
        let with = |e: Vec<u8>| finish([ok.clone(), e].concat());

        let t = with(entry("../etc/passwd", b'0', b"root"));
        assert!(
            matches!(list(&t, &lim), Err(ArchiveError::Traversal { name }) if name == "../etc/passwd")
        );
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::Traversal { .. }
        ));
        let t = with(entry("etc/a/../../x", b'0', b"root"));
        assert!(matches!(
            list(&t, &lim),
            Err(ArchiveError::Traversal { .. })
        ));
        let t = with(entry("/etc/shadow", b'0', b"root"));
        assert!(
            matches!(list(&t, &lim), Err(ArchiveError::AbsolutePath { name }) if name == "/etc/shadow")
        );
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::AbsolutePath { .. }
        ));

        for (flag, kind) in [
            (b'2', "symlink"),
            (b'1', "hardlink"),
            (b'5', "directory"),
            (b'3', "character device"),
            (b'4', "block device"),
            (b'6', "fifo"),
        ] {
            let mut h = header("etc/thing", flag, 0);
            h[157..157 + 11].copy_from_slice(b"/etc/shadow");
            busybox_cksum(&mut h);
            let t = with(h.to_vec());
            match list(&t, &lim) {
                Err(ArchiveError::NotRegular { name, kind: k }) => {
                    assert_eq!(name, "etc/thing");
                    assert_eq!(k, kind);
                }
                other => panic!("{kind}: {other:?}"),
            }
            assert!(matches!(
                refused(&t, ESX_CONF),
                ArchiveError::NotRegular { .. }
            ));
        }
        // old-style directory: regular type with a trailing slash
        let t = with(entry("etc/dir/", b'0', b""));
        assert!(matches!(
            list(&t, &lim),
            Err(ArchiveError::NotRegular {
                kind: "directory",
                ..
            })
        ));
    }

    #[test]
    fn refuses_extension_headers_on_edited_member() {
        let lim = Limits::default();
        let other = entry("etc/hosts", b'0', b"h");
        // PAX header before the edited member
        let pax = entry(
            "././@PaxHeader",
            b'x',
            pax_record("mtime", "1700000000.5").as_bytes(),
        );
        let t = finish([other.clone(), pax, entry(ESX_CONF, b'0', b"x")].concat());
        assert_eq!(list(&t, &lim).unwrap().len(), 2);
        assert_eq!(read_member(&t, ESX_CONF, &lim).unwrap(), b"x");
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::PaxOnEdited { .. }
        ));
        // ...but another member can still be edited
        let new = replace_member(&t, "etc/hosts", b"hh", &lim).unwrap();
        assert_spliced(&t, &new, "etc/hosts", b"hh");

        // PAX path naming the edited member
        let pax = entry(
            "././@PaxHeader",
            b'x',
            pax_record("path", ESX_CONF).as_bytes(),
        );
        let t = finish([other.clone(), pax, entry("short", b'0', b"x")].concat());
        assert_eq!(list(&t, &lim).unwrap()[1].name, ESX_CONF);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::PaxOnEdited { .. }
        ));
        // PAX path with traversal
        let pax = entry(
            "././@PaxHeader",
            b'x',
            pax_record("path", "../../x").as_bytes(),
        );
        let t = finish([pax, entry("short", b'0', b"x")].concat());
        assert!(matches!(
            list(&t, &lim),
            Err(ArchiveError::Traversal { .. })
        ));
        // PAX size disagreeing with the header
        let pax = entry("././@PaxHeader", b'x', pax_record("size", "5").as_bytes());
        let t = finish([pax, entry("a", b'0', b"x")].concat());
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));

        // GNU long name before the edited member
        let long = entry("././@LongLink", b'L', format!("{ESX_CONF}\0").as_bytes());
        let t = finish([long, entry("etc/vmware/esx.con", b'0', b"x"), other.clone()].concat());
        assert_eq!(list(&t, &lim).unwrap()[0].name, ESX_CONF);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::PaxOnEdited { .. }
        ));
        let long = entry("././@LongLink", b'L', b"/etc/shadow\0");
        let t = finish([long, entry("etc/x", b'0', b"x")].concat());
        assert!(matches!(
            list(&t, &lim),
            Err(ArchiveError::AbsolutePath { .. })
        ));

        // global PAX header anywhere
        let g = entry(
            "pax_global_header",
            b'g',
            pax_record("comment", "hi").as_bytes(),
        );
        let t = finish([g, other.clone(), entry(ESX_CONF, b'0', b"x")].concat());
        assert_eq!(list(&t, &lim).unwrap().len(), 2);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::PaxOnEdited { .. }
        ));

        // dangling extension header
        let pax = entry("././@PaxHeader", b'x', pax_record("mtime", "1").as_bytes());
        let t = finish([other, pax].concat());
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));
    }

    #[test]
    fn refuses_duplicates_and_missing() {
        let lim = Limits::default();
        let t = tar_of(&[(ESX_CONF, b"a"), ("etc/hosts", b"h"), (ESX_CONF, b"b")]);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::Duplicate { .. }
        ));
        assert!(matches!(
            read_member(&t, ESX_CONF, &lim),
            Err(ArchiveError::Duplicate { .. })
        ));
        let t = tar_of(&[(ESX_CONF, b"a"), ("./etc//vmware/esx.conf", b"b")]);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::Duplicate { .. }
        ));
        let t = tar_of(&[("etc/hosts", b"h")]);
        assert!(matches!(
            refused(&t, ESX_CONF),
            ArchiveError::MemberMissing { .. }
        ));
        assert!(matches!(
            read_member(&t, "", &lim),
            Err(ArchiveError::MemberMissing { .. })
        ));
        assert!(matches!(
            read_from_tgz(&gz(&t), "nope", &lim),
            Err(ArchiveError::MemberMissing { .. })
        ));
    }

    #[test]
    fn refuses_what_the_tar_crate_reads_differently() {
        // Each of these passes every other rule of the walk, but the `tar` crate (which
        // re-read every archive in production until the walk took over its refusals)
        // does not read it: a partial end-of-archive block, and a size or checksum field
        // that is not plain octal text before its first NUL.
        let lim = Limits::default();
        let files = tar_of(&[("a", b"x")]);
        for cut in [1024 + 1, 1024 + 100, 1024 + 511] {
            assert!(
                matches!(list(&files[..cut], &lim), Err(ArchiveError::Tar(_))),
                "{cut}"
            );
        }
        assert!(matches!(list(&[0u8; 100], &lim), Err(ArchiveError::Tar(_))));
        // whole zero blocks followed by a partial one, or no end blocks at all, are fine
        assert_eq!(list(&files[..1024 + 512 + 100], &lim).unwrap().len(), 1);
        assert_eq!(list(&files[..1024], &lim).unwrap().len(), 1);
        assert!(list(&[], &lim).unwrap().is_empty());

        let one = |h: [u8; 512], data: &[u8]| {
            let mut t = h.to_vec();
            t.extend_from_slice(data);
            t.resize(t.len().div_ceil(512) * 512, 0);
            finish(t)
        };
        let sized = |size: &[u8; 12]| {
            let mut h = header("a", b'0', 1);
            h[124..136].copy_from_slice(size);
            busybox_cksum(&mut h);
            h
        };
        // text after the space that ends the size digits
        let t = one(sized(b"0000000001 x"), b"x");
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));
        // ...but trailing spaces are fine
        let t = one(sized(b"0000000001  "), b"x");
        assert_eq!(read_member(&t, "a", &lim).unwrap(), b"x");
        // an all-NUL size field (the walk alone reads it as 0), on a member or an
        // extension header
        let t = one(sized(&[0; 12]), b"");
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));
        let mut pax = header("././@PaxHeader", b'x', 0);
        pax[124..136].fill(0);
        busybox_cksum(&mut pax);
        let t = finish([pax.to_vec(), entry("a", b'0', b"x")].concat());
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));

        let summed = |field: &dyn Fn(u32) -> [u8; 8]| {
            let mut h = header("a", b'0', 1);
            h[148..156].fill(b' ');
            let sum: u32 = h.iter().map(|&x| u32::from(x)).sum();
            h[148..156].copy_from_slice(&field(sum));
            h
        };
        // text after the space that ends the checksum digits
        let h = summed(&|sum| format!("{sum:06o} x").as_bytes().try_into().unwrap());
        assert!(matches!(
            list(&one(h, b"x"), &lim),
            Err(ArchiveError::Tar(_))
        ));
        let h = summed(&|sum| format!("{sum:06o}  ").as_bytes().try_into().unwrap());
        assert_eq!(list(&one(h, b"x"), &lim).unwrap().len(), 1);
        // a base-256 checksum
        let h = summed(&|sum| {
            let mut f = [0u8; 8];
            f[0] = 0x80;
            f[4..].copy_from_slice(&sum.to_be_bytes());
            f
        });
        assert!(matches!(
            list(&one(h, b"x"), &lim),
            Err(ArchiveError::Tar(_))
        ));
    }

    #[test]
    fn refuses_huge_declared_sizes_and_bad_structure() {
        let lim = Limits::default();
        for size in [8u64 << 30, (8u64 << 30) - 1, u64::MAX >> 1] {
            let mut t = header(ESX_CONF, b'0', size).to_vec();
            t.extend_from_slice(&[b'x'; 512]);
            let t = finish(t);
            assert!(
                matches!(list(&t, &lim), Err(ArchiveError::TooLarge { .. })),
                "{size}"
            );
            let big = Limits {
                max_member: u64::MAX,
                ..lim
            };
            assert!(
                matches!(list(&t, &big), Err(ArchiveError::Tar(_))),
                "{size}"
            );
        }
        let good = sample_tar();
        // bad checksum
        let mut t = good.clone();
        t[5] ^= 1;
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(m)) if m.contains("checksum")));
        // truncated header and truncated data
        assert!(matches!(
            list(&good[..700], &lim),
            Err(ArchiveError::Tar(_))
        ));
        assert!(matches!(
            list(&good[..1024 + 300], &lim),
            Err(ArchiveError::Tar(_))
        ));
        // garbage after end-of-archive, and garbage header
        let mut t = good.clone();
        t.extend_from_slice(&entry("etc/hidden", b'0', b"x"));
        assert!(matches!(list(&t, &lim), Err(ArchiveError::Tar(_))));
        assert!(matches!(
            list(&[0x41u8; 2048], &lim),
            Err(ArchiveError::Tar(_))
        ));
        // limits on counts and total size
        let few = Limits {
            max_members: 2,
            ..lim
        };
        assert!(matches!(
            list(&good, &few),
            Err(ArchiveError::TooLarge { .. })
        ));
        let small = Limits {
            max_uncompressed: 1000,
            ..lim
        };
        assert!(matches!(
            list(&good, &small),
            Err(ArchiveError::TooLarge { .. })
        ));
        let small = Limits {
            max_member: 100,
            ..lim
        };
        assert!(matches!(
            replace_member(&tar_of(&[("a", b"x")]), "a", &[0u8; 101], &small),
            Err(ArchiveError::TooLarge { .. })
        ));
        // archive without end blocks and with extra zero records is fine and kept
        let files = tar_of(&[("a", b"x")]);
        let bare = &files[..1024];
        assert_eq!(list(bare, &lim).unwrap().len(), 1);
        let new = replace_member(bare, "a", b"yy", &lim).unwrap();
        assert_eq!(new.len(), 1024);
        let mut padded = files.clone();
        padded.resize(10240, 0);
        let new = replace_member(&padded, "a", &[1u8; 600], &lim).unwrap();
        assert_eq!(new.len(), 10240 + 512);
        assert_spliced(&padded, &new, "a", &[1u8; 600]);
    }
}
