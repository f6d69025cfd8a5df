//! gzip framing of `state.tgz` / `local.tgz`: header parsing, a bounded two-pass
//! inflate that checks CRC32/ISIZE and refuses trailing data, and re-compression that
//! keeps the original header verbatim. Kept apart from the tar code because it knows
//! nothing of tar: it only turns one gzip member into bytes and back.

use std::io::Write;

use super::{gz_err, ArchiveError, Limits, Result};

/// Output chunk used while inflating.
const INFLATE_CHUNK: usize = 256 * 1024;

const GZ_FTEXT: u8 = 0x01;
const GZ_FHCRC: u8 = 0x02;
const GZ_FEXTRA: u8 = 0x04;
const GZ_FNAME: u8 = 0x08;
const GZ_FCOMMENT: u8 = 0x10;
const GZ_KNOWN_FLAGS: u8 = GZ_FTEXT | GZ_FHCRC | GZ_FEXTRA | GZ_FNAME | GZ_FCOMMENT;

/// Parsed fixed part of a gzip member header.
struct GzHeader {
    /// Length of the whole header, including optional fields and FHCRC.
    len: usize,
    /// Extra flags byte (compression level hint).
    xfl: u8,
}

fn parse_gzip_header(data: &[u8]) -> Result<GzHeader> {
    if data.len() < 10 {
        return Err(gz_err(format!(
            "truncated header: {} bytes, need at least 10 at offset 0",
            data.len()
        )));
    }
    if data[0] != 0x1f || data[1] != 0x8b {
        return Err(gz_err(format!(
            "bad magic {:02x} {:02x} at offset 0 (want 1f 8b)",
            data[0], data[1]
        )));
    }
    if data[2] != 8 {
        return Err(gz_err(format!(
            "unsupported compression method {} at offset 2",
            data[2]
        )));
    }
    let flags = data[3];
    if flags & !GZ_KNOWN_FLAGS != 0 {
        return Err(gz_err(format!(
            "reserved flag bits set ({flags:#04x}) at offset 3"
        )));
    }
    let xfl = data[8];
    let mut pos = 10usize;
    if flags & GZ_FEXTRA != 0 {
        let xlen = data
            .get(pos..pos + 2)
            .ok_or_else(|| gz_err(format!("truncated FEXTRA length at offset {pos}")))?;
        let xlen = usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
        pos += 2;
        if data.len() - pos < xlen {
            return Err(gz_err(format!(
                "truncated FEXTRA field at offset {pos} ({xlen} bytes declared)"
            )));
        }
        pos += xlen;
    }
    for (flag, what) in [(GZ_FNAME, "FNAME"), (GZ_FCOMMENT, "FCOMMENT")] {
        if flags & flag != 0 {
            let nul = data[pos..]
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| gz_err(format!("unterminated {what} field at offset {pos}")))?;
            pos += nul + 1;
        }
    }
    if flags & GZ_FHCRC != 0 {
        let stored = data
            .get(pos..pos + 2)
            .ok_or_else(|| gz_err(format!("truncated FHCRC field at offset {pos}")))?;
        let stored = u16::from_le_bytes([stored[0], stored[1]]);
        let computed = crc32fast::hash(&data[..pos]) as u16;
        if stored != computed {
            return Err(gz_err(format!(
                "header CRC16 mismatch at offset {pos}: stored {stored:04x}, computed {computed:04x}"
            )));
        }
        pos += 2;
    }
    Ok(GzHeader { len: pos, xfl })
}

/// gunzip with limits; verifies CRC32 and ISIZE; refuses trailing garbage after the
/// gzip member except zero padding; rejects multi-member gzip. Returns the tar bytes.
pub fn gunzip(data: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    if data.len() as u64 > limits.max_compressed {
        return Err(ArchiveError::TooLarge {
            what: format!("compressed input of {} bytes", data.len()),
            limit: limits.max_compressed,
        });
    }
    let header = parse_gzip_header(data)?;

    // Pass 1 only counts and checksums, so a bomb costs no memory and stops at the
    // limit; pass 2 stores the output, now known to be valid and bounded.
    let (pos, total) = inflate_checked(data, header.len, limits, &mut |_| {})?;
    let capacity = usize::try_from(total).map_err(|_| gz_err("output too large"))?;
    let mut out = Vec::with_capacity(capacity);
    let (pos2, total2) =
        inflate_checked(data, header.len, limits, &mut |c| out.extend_from_slice(c))?;
    if (pos2, total2) != (pos, total) || out.len() as u64 != total {
        return Err(gz_err("second inflate pass disagrees with the first"));
    }
    Ok(out)
}

/// Inflates the raw deflate stream starting at `start`, feeding output to `sink`,
/// then verifies the trailer (CRC32, ISIZE) and that only zero padding follows.
/// Returns the offset just after the trailer and the output size.
fn inflate_checked(
    data: &[u8],
    start: usize,
    limits: &Limits,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(usize, u64)> {
    let mut inflater = flate2::Decompress::new(false);
    let mut total: u64 = 0;
    let mut crc = crc32fast::Hasher::new();
    let mut chunk = vec![0u8; INFLATE_CHUNK];
    let mut pos = start;
    loop {
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(&data[pos..], &mut chunk, flate2::FlushDecompress::None)
            .map_err(|e| {
                gz_err(format!(
                    "corrupt deflate data near offset {}: {e}",
                    pos as u64 + (inflater.total_in() - in_before)
                ))
            })?;
        let consumed = usize::try_from(inflater.total_in() - in_before)
            .map_err(|_| gz_err("inflater consumed an impossible amount"))?;
        let produced = usize::try_from(inflater.total_out() - out_before)
            .map_err(|_| gz_err("inflater produced an impossible amount"))?;
        if consumed > data.len() - pos || produced > chunk.len() {
            return Err(gz_err("inflater reported impossible progress"));
        }
        pos += consumed;
        total += produced as u64;
        if total > limits.max_uncompressed {
            return Err(ArchiveError::TooLarge {
                what: format!(
                    "decompressed size (more than {} bytes, stopped at input offset {pos})",
                    total - 1
                ),
                limit: limits.max_uncompressed,
            });
        }
        sink(&chunk[..produced]);
        crc.update(&chunk[..produced]);
        match status {
            flate2::Status::StreamEnd => break,
            _ if consumed == 0 && produced == 0 => {
                return Err(gz_err(if pos >= data.len() {
                    format!("truncated deflate stream at offset {pos} (input ended mid-stream)")
                } else {
                    format!("deflate stream makes no progress at offset {pos}")
                }));
            }
            _ => {}
        }
    }

    let trailer = data.get(pos..pos + 8).ok_or_else(|| {
        gz_err(format!(
            "truncated trailer at offset {pos}: {} of 8 bytes present",
            data.len() - pos
        ))
    })?;
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let stored_isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let computed_crc = crc.finalize();
    if stored_crc != computed_crc {
        return Err(gz_err(format!(
            "CRC32 mismatch at offset {pos}: stored {stored_crc:08x}, computed {computed_crc:08x}"
        )));
    }
    let computed_isize = total as u32; // ISIZE is the length mod 2^32
    if stored_isize != computed_isize {
        return Err(gz_err(format!(
            "ISIZE mismatch at offset {}: stored {stored_isize}, actual {computed_isize}",
            pos + 4
        )));
    }
    let rest_at = pos + 8;
    let rest = &data[rest_at..];
    if rest.len() >= 2 && rest[0] == 0x1f && rest[1] == 0x8b {
        return Err(gz_err(format!(
            "multi-member gzip: second member at offset {rest_at}"
        )));
    }
    if let Some(i) = rest.iter().position(|&b| b != 0) {
        return Err(gz_err(format!(
            "trailing garbage after the gzip member at offset {}",
            rest_at + i
        )));
    }
    Ok((rest_at, total))
}

/// Re-gzip `tar` reusing the gzip header of `original_gz` verbatim (if it has FHCRC,
/// recompute that header CRC16 — it stays identical since the header is identical).
pub fn regzip_like(original_gz: &[u8], tar: &[u8]) -> Result<Vec<u8>> {
    GzipFrame::of(original_gz)?.regzip(tar)
}

/// What re-compressing a layer "like the original" needs of it: its header bytes (verbatim: an
/// FHCRC in them was checked when parsed, and the header does not change) and how it was
/// compressed. Kept apart from the layer so the layer can be freed before its edited tar is
/// compressed again (a 64 MiB state.tgz then needs one buffer less).
pub struct GzipFrame {
    header: Vec<u8>,
    /// Data the original compressor could not shrink (a layer that holds an already
    /// compressed or encrypted member) goes out in stored blocks: deflating it again costs
    /// seconds per 64 MiB and saves nothing.
    incompressible: bool,
    /// Otherwise the level the header's hint names: 2 = best, 4 = fastest.
    level: flate2::Compression,
}

impl GzipFrame {
    pub fn of(original_gz: &[u8]) -> Result<GzipFrame> {
        let header = parse_gzip_header(original_gz)?;
        let level = match header.xfl {
            2 => flate2::Compression::best(),
            4 => flate2::Compression::fast(),
            _ => flate2::Compression::default(),
        };
        Ok(GzipFrame {
            header: original_gz[..header.len].to_vec(),
            incompressible: was_incompressible(original_gz),
            level,
        })
    }

    /// [`GzipFrame::regzip`] taking the tar: a layer that was stored (incompressible) becomes
    /// its gzip member in the tar's own buffer, so a 64 MiB layer is never held twice. A
    /// deflated layer is compressed into a new buffer, a fraction of the tar's size.
    pub fn regzip_owned(&self, tar: Vec<u8>) -> Result<Vec<u8>> {
        if self.incompressible {
            return Ok(stored_gzip_in_place(&self.header, tar));
        }
        self.regzip(&tar)
    }

    pub fn regzip(&self, tar: &[u8]) -> Result<Vec<u8>> {
        if self.incompressible {
            return Ok(stored_gzip_in_place(&self.header, tar.to_vec()));
        }
        // A deflated layer starts at a quarter of the tar and grows.
        let mut out = Vec::with_capacity(self.header.len() + tar.len() / 4 + 64);
        out.extend_from_slice(&self.header);
        let mut encoder = flate2::write::DeflateEncoder::new(out, self.level);
        encoder
            .write_all(tar)
            .map_err(|e| gz_err(format!("deflate failed: {e}")))?;
        let mut out = encoder
            .finish()
            .map_err(|e| gz_err(format!("deflate failed: {e}")))?;
        out.extend_from_slice(&crc32fast::hash(tar).to_le_bytes());
        out.extend_from_slice(&(tar.len() as u32).to_le_bytes());
        out.shrink_to_fit();
        Ok(out)
    }
}

/// Largest stored deflate block (RFC 1951 3.2.4: LEN is 16 bits).
const STORED_BLOCK: usize = 65_535;

/// `header`, then `data` in stored deflate blocks, then CRC32 and ISIZE, built in `data`'s own
/// buffer. Every block moves right by the headers before it, so the blocks are moved last to
/// first and none overwrites data not yet moved.
fn stored_gzip_in_place(header: &[u8], mut data: Vec<u8>) -> Vec<u8> {
    let n = data.len();
    let crc = crc32fast::hash(&data);
    let blocks = n.div_ceil(STORED_BLOCK).max(1);
    let block_at = |i: usize| header.len() + i * (STORED_BLOCK + 5);
    data.resize(header.len() + n + 5 * blocks + 8, 0);
    for i in (0..blocks).rev() {
        let from = i * STORED_BLOCK;
        let len = (n - from).min(STORED_BLOCK);
        let at = block_at(i);
        data.copy_within(from..from + len, at + 5);
        let last = i + 1 == blocks;
        data[at] = u8::from(last); // BFINAL, BTYPE 00 (stored), then padding to the byte
        data[at + 1..at + 3].copy_from_slice(&(len as u16).to_le_bytes());
        data[at + 3..at + 5].copy_from_slice(&(!(len as u16)).to_le_bytes());
    }
    data[..header.len()].copy_from_slice(header);
    let end = header.len() + n + 5 * blocks;
    data[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    data[end + 4..end + 8].copy_from_slice(&(n as u32).to_le_bytes());
    data
}

/// The gzip member is at least 98 % of the size it inflates to (its trailer's ISIZE), and big
/// enough for that to mean something: deflate found nothing to take out.
fn was_incompressible(gz: &[u8]) -> bool {
    const MEANINGFUL: usize = 1 << 20;
    let Some(trailer) = gz.len().checked_sub(4).map(|at| &gz[at..]) else {
        return false;
    };
    let isize = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    isize >= MEANINGFUL && gz.len() as u64 * 100 >= isize as u64 * 98
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_util::replace_in_tgz;
    use crate::archive::test_util::{gz, noise, read_from_tgz, sample_tar};

    #[test]
    fn stored_in_place_inflates_back_at_every_block_boundary() {
        let lim = Limits::default();
        let noise = noise(3 * STORED_BLOCK + 7, 0x2545_f491_4f6c_dd1d);
        // An FHCRC header: copied as it is, its CRC16 still right.
        let mut header = vec![0x1f, 0x8b, 8, GZ_FHCRC, 0, 0, 0, 0, 0, 3];
        let crc16 = (crc32fast::hash(&header) as u16).to_le_bytes();
        header.extend_from_slice(&crc16);
        for len in [
            0,
            1,
            STORED_BLOCK - 1,
            STORED_BLOCK,
            STORED_BLOCK + 1,
            noise.len(),
        ] {
            let data = &noise[..len];
            let gz = stored_gzip_in_place(&header, data.to_vec());
            assert_eq!(&gz[..header.len()], &header[..]);
            assert_eq!(gunzip(&gz, &lim).unwrap(), data, "length {len}");
            let mut other = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut other)
                .unwrap();
            assert_eq!(other, data, "flate2 reads length {len}");
            let blocks = len.div_ceil(STORED_BLOCK).max(1);
            assert_eq!(gz.len(), header.len() + len + 5 * blocks + 8);
        }
    }

    #[test]
    fn incompressible_layers_are_stored_compressible_ones_deflated() {
        let lim = Limits::default();
        // 2 MiB of xorshift noise: deflate cannot shrink it.
        let noise = noise(2 << 20, 0x9e37_79b9_7f4a_7c15);
        let original = gz(&noise);
        assert!(was_incompressible(&original));
        let again = regzip_like(&original, &noise).unwrap();
        assert_eq!(gunzip(&again, &lim).unwrap(), noise);
        // Stored blocks: 5 bytes per block of up to 64 KiB, plus header and trailer.
        assert!(again.len() <= noise.len() + 5 * 64 + 64, "{}", again.len());
        assert_eq!(&again[..10], &original[..10], "the header is kept");

        let text = b"/device/000:05.0/owner = \"passthru\"\n".repeat(60_000);
        let original = gz(&text);
        assert!(!was_incompressible(&original));
        let again = regzip_like(&original, &text).unwrap();
        assert_eq!(gunzip(&again, &lim).unwrap(), text);
        assert!(again.len() < text.len() / 20, "{}", again.len());
        // Too small to judge: a short incompressible tail is deflated as the header says.
        assert!(!was_incompressible(&gz(&noise[..4096])));
        assert!(!was_incompressible(b"\x1f\x8b"));
    }

    #[test]
    fn gzip_refusals() {
        let lim = Limits::default();
        let tgz = gz(&sample_tar());
        let n = tgz.len();
        let is_gz = |r: Result<Vec<u8>>| matches!(r, Err(ArchiveError::Gzip(_)));
        let r = gunzip(&tgz[..n / 2], &lim);
        assert!(
            matches!(r, Err(ArchiveError::Gzip(ref m)) if m.contains("truncated")),
            "{r:?}"
        );
        assert!(is_gz(gunzip(&tgz[..n - 3], &lim)), "truncated trailer");
        assert!(is_gz(gunzip(&tgz[..5], &lim)), "truncated header");
        assert!(is_gz(gunzip(&[], &lim)));
        let mut t = tgz.clone();
        t[n - 8] ^= 0x01;
        assert!(matches!(gunzip(&t, &lim), Err(ArchiveError::Gzip(m)) if m.contains("CRC32")));
        let mut t = tgz.clone();
        t[n - 4] ^= 0x01;
        assert!(matches!(gunzip(&t, &lim), Err(ArchiveError::Gzip(m)) if m.contains("ISIZE")));
        let mut t = tgz.clone();
        t.extend_from_slice(b"garbage!");
        assert!(matches!(gunzip(&t, &lim), Err(ArchiveError::Gzip(m)) if m.contains("garbage")));
        let t = [tgz.clone(), gz(b"second")].concat();
        assert!(
            matches!(gunzip(&t, &lim), Err(ArchiveError::Gzip(m)) if m.contains("multi-member"))
        );
        let mut t = tgz.clone();
        t.extend_from_slice(&[0u8; 4096]);
        assert_eq!(
            gunzip(&t, &lim).unwrap(),
            sample_tar(),
            "zero padding is fine"
        );
        let mut t = tgz.clone();
        t[0] = 0x1e;
        assert!(is_gz(gunzip(&t, &lim)));
        let mut t = tgz.clone();
        t[3] = 0x80;
        assert!(is_gz(gunzip(&t, &lim)), "reserved flag");
        let mut t = tgz.clone();
        t[12] ^= 0xff;
        assert!(gunzip(&t, &lim).is_err(), "corrupt deflate");
        let tiny = Limits {
            max_compressed: 10,
            ..lim
        };
        assert!(matches!(
            gunzip(&tgz, &tiny),
            Err(ArchiveError::TooLarge { .. })
        ));
        assert!(is_gz(regzip_like(b"not gzip", b"x")));
    }

    /// Streams `len` zero bytes through a gzip encoder without holding them.
    fn zero_bomb(len: u64) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let chunk = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            e.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit_fast() {
        let lim = Limits::default();
        let t0 = std::time::Instant::now();
        let bomb = zero_bomb(2 << 30);
        eprintln!("made a {}-byte bomb in {:?}", bomb.len(), t0.elapsed());
        assert!(bomb.len() < 16 << 20, "bomb is {} bytes", bomb.len());
        let t0 = std::time::Instant::now();
        let r = gunzip(&bomb, &lim);
        assert!(
            matches!(r, Err(ArchiveError::TooLarge { limit, .. }) if limit == lim.max_uncompressed)
        );
        assert!(read_from_tgz(&bomb, "x", &lim).is_err());
        assert!(replace_in_tgz(&bomb, "x", b"", &lim).is_err());
        // Time is a benchmark matter; printed here for the curious, not asserted.
        eprintln!("3 refusals of the bomb took {:?}", t0.elapsed());

        // A lying ISIZE defeats the trailer shortcut; streaming must still stop.
        let mut liar = zero_bomb(256 << 20);
        let n = liar.len();
        liar[n - 4..].copy_from_slice(&1u32.to_le_bytes());
        let small = Limits {
            max_uncompressed: 32 << 20,
            ..lim
        };
        let r = gunzip(&liar, &small);
        assert!(matches!(r, Err(ArchiveError::TooLarge { .. })), "{r:?}");
    }
}
