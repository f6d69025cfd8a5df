//! The byte-exact edit: replace one member's data in a tar by rewriting only its
//! size and checksum fields (in their original formatting), its data and its padding,
//! then re-gzip like the original. Everything else in the archive stays byte-identical.

use super::gzip::{gunzip, regzip_like};
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
    let parsed = walk(tar, limits)?;
    let found = find(&parsed, name)?;
    if !found.extensions.is_empty() || parsed.global_pax.is_some() {
        return Err(ArchiveError::PaxOnEdited {
            name: name.to_string(),
        });
    }
    if content.len() as u64 > limits.max_member {
        return Err(ArchiveError::TooLarge {
            what: format!("new content for {name:?} ({} bytes)", content.len()),
            limit: limits.max_member,
        });
    }
    let m = &found.member;
    let header_at = m.header_offset as usize;
    let data_at = m.data_offset as usize;
    let old_end = data_at + (m.size as usize).div_ceil(BLOCK) * BLOCK;

    let mut header = [0u8; BLOCK];
    header.copy_from_slice(&tar[header_at..header_at + BLOCK]);
    write_num_like(&mut header[124..136], content.len() as u64, "size")?;
    let sum = header_sum(&header);
    write_num_like(&mut header[148..156], sum, "checksum")?;

    let new_padded = content.len().div_ceil(BLOCK) * BLOCK;
    let new_len = tar.len() - (old_end - data_at) + new_padded;
    if new_len as u64 > limits.max_uncompressed {
        return Err(ArchiveError::TooLarge {
            what: format!("edited tar ({new_len} bytes)"),
            limit: limits.max_uncompressed,
        });
    }
    let mut out = Vec::with_capacity(new_len);
    out.extend_from_slice(&tar[..header_at]);
    out.extend_from_slice(&header);
    out.extend_from_slice(content);
    out.resize(data_at + new_padded, 0);
    out.extend_from_slice(&tar[old_end..]);

    // Self-check: the result must parse with the same members and the new content.
    let check = walk(&out, limits)
        .map_err(|e| tar_err(format!("edited archive does not re-parse: {e}")))?;
    let same_shape = check.members.len() == parsed.members.len()
        && check
            .members
            .iter()
            .zip(&parsed.members)
            .all(|(a, b)| a.member.name == b.member.name);
    let readback = find(&check, name).map(|f| member_data(&out, &f.member) == content);
    if !same_shape || !matches!(readback, Ok(true)) {
        return Err(tar_err("edited archive does not read back as expected"));
    }
    Ok(out)
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
    let mut tar = gunzip(tgz, limits)?;
    for (name, content) in replacements {
        tar = replace_member(&tar, name, content, limits)?;
    }
    let new_tar = tar;
    let out = regzip_like(tgz, &new_tar)?;
    if out.len() as u64 > limits.max_compressed {
        return Err(ArchiveError::TooLarge {
            what: format!("re-compressed archive ({} bytes)", out.len()),
            limit: limits.max_compressed,
        });
    }
    Ok(out)
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
