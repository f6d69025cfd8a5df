//! Test-only: the `tar` crate cross-check. Production has one tar parser, the strict
//! walk in `tar.rs`; it used to re-read every archive it accepted with the `tar` crate
//! as well, and the walk now refuses by itself what that re-read refused. The check
//! lives here and runs, through the stand-ins in `test_util.rs`, over every archive the
//! unit tests hand to `list`, `read_member`, `replace_member` and `replace_in_tgz`, in
//! both directions: what the walk accepts the `tar` crate reads with the same layout,
//! and what the walk refuses only for the `tar` crate's sake the `tar` crate refuses.

use super::tar::parse_num;
use super::{list, ArchiveError, Limits, BLOCK};

/// How the walk's refusals on other readers' behalf end (see `reads_as_plain_octal`).
const UNPORTABLE: &str = "other tar readers would not read it the same way";

/// (header offset, data offset, declared size) of every header the strict walk steps
/// over, in an archive it has accepted (so every header block is whole and every size
/// field parses).
fn header_chain(tar: &[u8]) -> Vec<(u64, u64, u64)> {
    let mut chain = Vec::new();
    let mut pos = 0usize;
    while pos < tar.len()
        && tar[pos..(pos + BLOCK).min(tar.len())]
            .iter()
            .any(|&b| b != 0)
    {
        let size = parse_num(&tar[pos + 124..pos + 136]).expect("size field the walk accepted");
        chain.push((pos as u64, (pos + BLOCK) as u64, size));
        pos += BLOCK + (size as usize).div_ceil(BLOCK) * BLOCK;
    }
    chain
}

/// If the strict walk accepts `tar` under `limits`, the `tar` crate must see exactly the
/// same header/data layout (every header, extension headers included), and every listed
/// member must sit on that chain; if the walk refuses it only because other readers
/// would read it differently, the `tar` crate must refuse it. Panics otherwise; returns
/// how many headers it compared (0 when the walk refuses the archive).
pub(super) fn tar_crate_agrees(tar: &[u8], limits: &Limits) -> usize {
    let members = match list(tar, limits) {
        Ok(members) => members,
        Err(ArchiveError::Tar(why)) if why.ends_with(UNPORTABLE) => {
            let mut archive = ::tar::Archive::new(tar);
            let refused = archive
                .entries()
                .map_or(true, |entries| entries.raw(true).any(|e| e.is_err()));
            assert!(refused, "the tar crate reads what the walk refused: {why}");
            return 0;
        }
        Err(_) => return 0,
    };
    let headers = header_chain(tar);
    let mut archive = ::tar::Archive::new(tar);
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("tar crate refused the archive: {e}"))
        .raw(true);
    let mut seen = 0usize;
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("tar crate refused the archive: {e}"));
        let got = (
            entry.raw_header_position(),
            entry.raw_file_position(),
            entry.size(),
        );
        assert_eq!(
            headers.get(seen),
            Some(&got),
            "tar crate disagrees about the header at offset {}",
            got.0
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        headers.len(),
        "tar crate saw {seen} headers, expected {}",
        headers.len()
    );
    for m in &members {
        assert!(
            headers.contains(&(m.header_offset, m.data_offset, m.size)),
            "member {:?} is not on the header chain",
            m.name
        );
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_util::{entry, finish, pax_record, sample_tar};

    #[test]
    fn tar_crate_sees_the_walks_layout() {
        let lim = Limits::default();
        assert_eq!(tar_crate_agrees(&sample_tar(), &lim), 5);
        // extension headers (PAX 'x', GNU 'L', global 'g') are compared too
        let pax = entry(
            "././@PaxHeader",
            b'x',
            pax_record("path", "etc/long").as_bytes(),
        );
        let long = entry("././@LongLink", b'L', b"etc/longer/name\0");
        let g = entry(
            "pax_global_header",
            b'g',
            pax_record("comment", "hi").as_bytes(),
        );
        let t = finish(
            [
                g,
                pax,
                entry("p", b'0', b"pp"),
                long,
                entry("q", b'0', b"qq"),
            ]
            .concat(),
        );
        assert_eq!(list(&t, &lim).unwrap().len(), 2);
        assert_eq!(tar_crate_agrees(&t, &lim), 5);
        // an archive the walk refuses is not compared; one it refuses for other readers'
        // sake must be refused by the tar crate too
        assert_eq!(tar_crate_agrees(&[0x41u8; 2048], &lim), 0);
        let t = sample_tar();
        assert_eq!(tar_crate_agrees(&t[..t.len() - 1024 + 100], &lim), 0);
    }
}
