//! The byte-exact edit: replace one member's data in a tar by rewriting only its
//! size and checksum fields (in their original formatting), its data and its padding,
//! then re-gzip like the original. Everything else in the archive stays byte-identical.

use super::gzip::{gunzip, GzipFrame};
use super::tar::{find, header_sum, member_data, walk};
use super::{tar_err, ArchiveError, Limits, Result, BLOCK};

/// Writes `value` into `field` in the same style as the field's current content:
/// base-256 stays base-256; octal keeps its width, its padding character (zeros or
/// leading spaces) and its terminator bytes (e.g. `"%06o\0 "` for checksums written
/// by GNU tar / BusyBox, `"%07o\0"` as the `tar` crate writes them).
fn write_num_like(field: &mut [u8], value: u64, what: &str) -> Result<()> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let n = field.len();
        if n < 9 && value >> (8 * (n - 1)) != 0 {
            return Err(tar_err(format!(
                "new {what} {value} does not fit the base-256 field"
            )));
        }
        field.fill(0);
        field[0] = 0x80;
        for (i, slot) in field.iter_mut().rev().take(8).enumerate() {
            *slot |= (value >> (8 * i)) as u8;
        }
        return Ok(());
    }
    if field.iter().all(|&b| b == 0) && !field.is_empty() {
        // Empty field (read as 0): write the usual "%0<n-1>o\0".
        let width = field.len() - 1;
        let text = format!("{value:0width$o}");
        if text.len() > width {
            return Err(tar_err(format!(
                "new {what} {value} does not fit the {width}-digit field"
            )));
        }
        field[..width].copy_from_slice(text.as_bytes());
        return Ok(());
    }
    let spaces = field.iter().take_while(|&&b| b == b' ').count();
    let digits = field[spaces..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let width = spaces + digits;
    if digits == 0 {
        return Err(tar_err(format!("original {what} field has no digits")));
    }
    let text = if spaces > 0 {
        format!("{value:>width$o}")
    } else {
        format!("{value:0width$o}")
    };
    if text.len() > width {
        return Err(tar_err(format!(
            "new {what} {value} does not fit the original {width}-character field"
        )));
    }
    field[..width].copy_from_slice(text.as_bytes());
    Ok(())
}

/// New tar with `name`'s data replaced: its header changes only in the size and
/// checksum fields (each keeps its original formatting style); data padded to 512
/// with zeros; all other bytes (other headers, data, padding, end-of-archive blocks
/// and any trailing blocks) identical.
pub fn replace_member(tar: &[u8], name: &str, content: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let mut out = tar.to_vec();
    replace_member_in_place(&mut out, name, content, limits)?;
    Ok(out)
}

/// [`replace_member`] within the tar's own buffer: a 64 MiB layer is edited without a second
/// copy of it. On an error the buffer may hold a partial edit and is not to be used.
pub fn replace_member_in_place(
    tar: &mut Vec<u8>,
    name: &str,
    content: &[u8],
    limits: &Limits,
) -> Result<()> {
    let parsed = walk(tar, limits)?;
    let found = find(&parsed, name)?;
    if !found.extensions.is_empty() || parsed.global_pax.is_some() {
        return Err(ArchiveError::PaxOnEdited {
            name: name.to_string(),
        });
    }
    let m = &found.member;
    let header_at = m.header_offset as usize;
    let data_at = m.data_offset as usize;
    let old_end = data_at + (m.size as usize).div_ceil(BLOCK) * BLOCK;
    let header = patched_header(&tar[header_at..data_at], content.len(), name, limits)?;
    let new_padded = content.len().div_ceil(BLOCK) * BLOCK;
    let new_len = tar.len() - (old_end - data_at) + new_padded;
    check_length(new_len, limits)?;
    let names = member_names(&parsed);
    tar.reserve_exact(new_len.saturating_sub(tar.len()));
    tar[header_at..data_at].copy_from_slice(&header);
    let padding = std::iter::repeat_n(0u8, new_padded - content.len());
    tar.splice(data_at..old_end, content.iter().copied().chain(padding));
    check_spliced(tar, &names, name, |data| data == content, limits)
}

/// A tar that held one edited member, put back together around its new content: `prefix` is
/// everything up to and including that member's header (as [`OuterFrame`] keeps it),
/// `suffix` everything after its padded data. The header's size and checksum are rewritten
/// in their own style, as [`replace_member`] does; the content's buffer becomes the tar's.
pub fn rebuild_around(
    frame: &OuterFrame,
    mut content: Vec<u8>,
    limits: &Limits,
) -> Result<Vec<u8>> {
    if frame.has_extensions {
        return Err(ArchiveError::PaxOnEdited {
            name: frame.name.clone(),
        });
    }
    let prefix = &frame.prefix;
    let header_at = prefix
        .len()
        .checked_sub(BLOCK)
        .ok_or_else(|| tar_err("internal: no member header to rebuild around"))?;
    let header = patched_header(&prefix[header_at..], content.len(), &frame.name, limits)?;
    let len = content.len();
    let new_len = prefix.len() + len.div_ceil(BLOCK) * BLOCK + frame.suffix.len();
    check_length(new_len, limits)?;
    let digest = crc32fast::hash(&content);
    content.reserve_exact(new_len - len);
    content.resize(len.div_ceil(BLOCK) * BLOCK, 0);
    content.extend_from_slice(&frame.suffix);
    content.splice(0..0, prefix[..header_at].iter().chain(&header).copied());
    check_spliced(
        &content,
        &frame.names,
        &frame.name,
        |data| data.len() == len && crc32fast::hash(data) == digest,
        limits,
    )?;
    Ok(content)
}

/// What of a tar [`rebuild_around`] needs once one member's data is cut out of it.
pub struct OuterFrame {
    name: String,
    names: Vec<String>,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    /// The member has PAX/GNU extension headers (or the tar a global one): it can be read, and
    /// [`rebuild_around`] refuses it, as [`replace_member`] does.
    has_extensions: bool,
}

impl OuterFrame {
    /// Everything of `tar` but the data of `name` (a few KiB for state.tgz's outer tar).
    pub fn around(tar: &[u8], name: &str, limits: &Limits) -> Result<OuterFrame> {
        let parsed = walk(tar, limits)?;
        let found = find(&parsed, name)?;
        let has_extensions = !found.extensions.is_empty() || parsed.global_pax.is_some();
        let m = &found.member;
        let data_at = m.data_offset as usize;
        let old_end = data_at + (m.size as usize).div_ceil(BLOCK) * BLOCK;
        Ok(OuterFrame {
            name: m.name.clone(),
            names: member_names(&parsed),
            prefix: tar[..data_at].to_vec(),
            suffix: tar[old_end..].to_vec(),
            has_extensions,
        })
    }
}

/// The member's header with the size and checksum fields rewritten for `len` bytes of data.
fn patched_header(old: &[u8], len: usize, name: &str, limits: &Limits) -> Result<[u8; BLOCK]> {
    if len as u64 > limits.max_member {
        return Err(ArchiveError::TooLarge {
            what: format!("new content for {name:?} ({len} bytes)"),
            limit: limits.max_member,
        });
    }
    let mut header = [0u8; BLOCK];
    header.copy_from_slice(old);
    write_num_like(&mut header[124..136], len as u64, "size")?;
    let sum = header_sum(&header);
    write_num_like(&mut header[148..156], sum, "checksum")?;
    Ok(header)
}

fn check_length(new_len: usize, limits: &Limits) -> Result<()> {
    if new_len as u64 > limits.max_uncompressed {
        return Err(ArchiveError::TooLarge {
            what: format!("edited tar ({new_len} bytes)"),
            limit: limits.max_uncompressed,
        });
    }
    Ok(())
}

fn member_names(parsed: &super::tar::Walk) -> Vec<String> {
    parsed
        .members
        .iter()
        .map(|f| f.member.name.clone())
        .collect()
}

/// Self-check of an edit: the result parses with the same members, in order, and the edited
/// member's data is what was put there.
fn check_spliced(
    tar: &[u8],
    names: &[String],
    name: &str,
    data_is_new: impl Fn(&[u8]) -> bool,
    limits: &Limits,
) -> Result<()> {
    let check =
        walk(tar, limits).map_err(|e| tar_err(format!("edited archive does not re-parse: {e}")))?;
    let same_shape = check.members.len() == names.len()
        && check
            .members
            .iter()
            .zip(names)
            .all(|(a, b)| a.member.name == *b);
    let readback = find(&check, name).map(|f| data_is_new(member_data(tar, &f.member)));
    if !same_shape || !matches!(readback, Ok(true)) {
        return Err(tar_err("edited archive does not read back as expected"));
    }
    Ok(())
}

/// Convenience: gunzip → replace_member → regzip_like.
pub fn replace_in_tgz(tgz: &[u8], name: &str, content: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    replace_members_in_tgz(tgz, &[(name, content)], limits)
}

/// [`replace_in_tgz`] for several members at once: one inflate and one deflate, whatever the
/// number of members (esx.conf and the ConfigStore database of one local.tgz).
pub fn replace_members_in_tgz(
    tgz: &[u8],
    replacements: &[(&str, &[u8])],
    limits: &Limits,
) -> Result<Vec<u8>> {
    let frame = GzipFrame::of(tgz)?;
    let mut tar = gunzip(tgz, limits)?;
    for (name, content) in replacements {
        replace_member_in_place(&mut tar, name, content, limits)?;
    }
    // The inflated tar becomes the new layer in its own buffer when the layer was stored.
    super::within_compressed_limit(frame.regzip_owned(tar)?, "archive", limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_util::{
        assert_spliced, finish, header, sample_files, sample_tar, ESX_CONF,
    };
    use crate::archive::test_util::{read_member, replace_member};

    #[test]
    fn replace_keeps_everything_else_bigger_and_smaller() {
        let lim = Limits::default();
        let tar = sample_tar();
        for content in [
            vec![b'A'; 3000],
            b"tiny\n".to_vec(),
            Vec::new(),
            vec![b'z'; 512],
        ] {
            let new = replace_member(&tar, ESX_CONF, &content, &lim).unwrap();
            assert_spliced(&tar, &new, ESX_CONF, &content);
            assert_eq!(read_member(&new, ESX_CONF, &lim).unwrap(), content);
            for (n, d) in sample_files() {
                if n != ESX_CONF {
                    assert_eq!(read_member(&new, n, &lim).unwrap(), d);
                }
            }
        }
        // first and last members, and "./" spelling
        let new = replace_member(&tar, "./etc/hosts", b"x", &lim).unwrap();
        assert_spliced(&tar, &new, "etc/hosts", b"x");
        let new = replace_member(&tar, "etc/empty", &[7u8; 1500], &lim).unwrap();
        assert_spliced(&tar, &new, "etc/empty", &[7u8; 1500]);
    }

    #[test]
    fn checksum_and_size_styles_are_kept() {
        let lim = Limits::default();
        // tar crate style: checksum "%07o\0"
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o600);
        h.set_path(ESX_CONF).unwrap();
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert_eq!(tar[155], 0);
        let new = replace_member(&tar, ESX_CONF, &[1u8; 2000], &lim).unwrap();
        assert!(new[148..155].iter().all(u8::is_ascii_digit));
        assert_eq!(new[155], 0);
        assert_spliced(&tar, &new, ESX_CONF, &[1u8; 2000]);

        // space-padded old style "  1234\0 " and size "      3 "
        let mut h = header(ESX_CONF, b'0', 3);
        h[124..136].copy_from_slice(b"          3 ");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&x| u32::from(x)).sum();
        h[148..156].copy_from_slice(format!("{sum:>6o}\0 ").as_bytes());
        let mut tar = h.to_vec();
        tar.extend_from_slice(b"abc");
        let tar = finish({
            tar.resize(1024, 0);
            tar
        });
        let new = replace_member(&tar, ESX_CONF, &[1u8; 700], &lim).unwrap();
        assert_eq!(&new[124..136], b"       1274 ");
        assert_eq!(new[148], b' ');
        assert_eq!(&new[154..156], b"\0 ");
        assert_spliced(&tar, &new, ESX_CONF, &[1u8; 700]);
    }
}
