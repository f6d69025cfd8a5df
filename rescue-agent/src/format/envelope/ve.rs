//! The `.ve` file itself: header block with its TLV attributes, AES-256-GCM over
//! data, pad and crypto footer, and the AEAD footer with the tag. Parses and decrypts
//! it, and re-encrypts repaired data into the same layout (same header, pad and
//! footer bytes, IV per [`next_iv`]).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};

use super::{
    EnvelopeError, AAD_SUFFIX, AEAD_FOOTER_MAGIC, AEAD_TAGLEN_OFF, AEAD_TAG_LEN, AEAD_TAG_OFF,
    AEAD_VERSION, AEAD_VERSION_OFF, ATTR_CIPHER, ATTR_IV, ATTR_KEY_HASH, ATTR_KEY_INFO, BLOCK,
    CIPHER_NAME, CRYPTO_FOOTER_MAGIC, CRYPTO_MAGIC_OFF, CRYPTO_PAD_OFF, CRYPTO_VERSION,
    CRYPTO_VERSION_OFF, ENVELOPE_MAGIC, HEADER_FIXED, HEADER_SIZE_OFF, HEADER_VERSION,
    HEADER_VERSION_OFF, TYPE_BYTES, TYPE_STRING,
};

/// Parsed header of a `.ve` file.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The whole header block (`512 + size` bytes), verbatim.
    pub header: Vec<u8>,
    /// `vmware.iv`.
    pub iv: [u8; 12],
    /// `vmware.keyInfo` (key UUID string).
    pub key_info: String,
    /// `vmware.cipherName` (`AES-256-GCM`).
    pub cipher_name: String,
    /// `vmware.keyHash` (SHA-256 of cipherName ‖ key, 32 bytes).
    pub key_hash: Vec<u8>,
}

fn read_u32(buf: &[u8], off: usize, what: &'static str) -> Result<u32, EnvelopeError> {
    let end = off.checked_add(4);
    match end.and_then(|e| buf.get(off..e)) {
        Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(EnvelopeError::Truncated {
            what,
            offset: off as u64,
            need: 4,
            have: buf.len(),
        }),
    }
}

fn check_magic(
    buf: &[u8],
    off: usize,
    magic: &'static [u8],
    what: &'static str,
    base: usize,
) -> Result<(), EnvelopeError> {
    let ok = off
        .checked_add(magic.len())
        .and_then(|e| buf.get(off..e))
        .is_some_and(|b| b == magic);
    if ok {
        Ok(())
    } else {
        Err(EnvelopeError::BadMagic {
            what,
            offset: base + off,
            expected: std::str::from_utf8(magic).unwrap_or("?"),
        })
    }
}

/// Attribute value location inside the header block.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// Offset of the attribute's type byte.
    attr_off: usize,
    /// Value type (0x0B or 0x0C).
    ty: u8,
    /// Start and end of the value bytes (string without its NUL).
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct ParsedHeader {
    header_len: usize,
    iv: Span,
    key_info: Span,
    cipher: Span,
    key_hash: Span,
}

/// Find a NUL in `buf[from..limit]`; returns its index.
fn find_nul(buf: &[u8], from: usize, limit: usize) -> Option<usize> {
    buf.get(from..limit)?
        .iter()
        .position(|&b| b == 0)
        .map(|p| from + p)
}

/// Parse the header block at the start of `buf` (which may extend beyond it).
fn parse_header(buf: &[u8]) -> Result<ParsedHeader, EnvelopeError> {
    if buf.len() < HEADER_FIXED {
        return Err(EnvelopeError::Truncated {
            what: "envelope header (fixed part)",
            offset: 0,
            need: HEADER_FIXED as u64,
            have: buf.len(),
        });
    }
    check_magic(buf, 0, ENVELOPE_MAGIC, "envelope header", 0)?;
    let size = read_u32(buf, HEADER_SIZE_OFF, "envelope header size")?;
    let version = read_u32(buf, HEADER_VERSION_OFF, "envelope header version")?;
    if version != HEADER_VERSION {
        return Err(EnvelopeError::BadVersion {
            what: "envelope header",
            offset: HEADER_VERSION_OFF,
            found: version,
            expected: HEADER_VERSION,
        });
    }
    let header_len_u64 = HEADER_FIXED as u64 + u64::from(size);
    if header_len_u64 > buf.len() as u64 {
        return Err(EnvelopeError::Truncated {
            what: "envelope header block (512 + size field at offset 504)",
            offset: 0,
            need: header_len_u64,
            have: buf.len(),
        });
    }
    let header_len = header_len_u64 as usize;
    let hdr = &buf[..header_len];

    let mut iv = None;
    let mut key_info = None;
    let mut cipher = None;
    let mut key_hash = None;
    let mut pos = HEADER_FIXED;
    while pos < header_len {
        let attr_off = pos;
        let ty = hdr[pos];
        if ty == 0 {
            break;
        }
        if pos + 4 > header_len {
            return Err(EnvelopeError::BadAttribute {
                offset: attr_off,
                reason: "type/flag/padding run past the end of the header block".into(),
            });
        }
        let name_start = pos + 4;
        let name_end =
            find_nul(hdr, name_start, header_len).ok_or_else(|| EnvelopeError::BadAttribute {
                offset: attr_off,
                reason: "attribute name is not NUL-terminated within the header block".into(),
            })?;
        let name = std::str::from_utf8(&hdr[name_start..name_end]).map_err(|_| {
            EnvelopeError::BadAttribute {
                offset: attr_off,
                reason: "attribute name is not UTF-8".into(),
            }
        })?;
        let vstart = name_end + 1;
        let (start, end, next) = match ty {
            TYPE_STRING => {
                let nul = find_nul(hdr, vstart, header_len).ok_or_else(|| {
                    EnvelopeError::BadAttribute {
                        offset: attr_off,
                        reason: format!(
                            "string value of {name:?} is not NUL-terminated within the header block"
                        ),
                    }
                })?;
                (vstart, nul, nul + 1)
            }
            TYPE_BYTES => {
                let len_bytes = vstart
                    .checked_add(8)
                    .and_then(|e| hdr.get(vstart..e))
                    .ok_or_else(|| EnvelopeError::BadAttribute {
                        offset: attr_off,
                        reason: format!(
                            "length of {name:?} at offset {vstart} runs past the header block"
                        ),
                    })?;
                let mut lb = [0u8; 8];
                lb.copy_from_slice(len_bytes);
                let len = u64::from_le_bytes(lb);
                let dstart = vstart + 8;
                let room = (header_len - dstart) as u64;
                if len > room {
                    return Err(EnvelopeError::BadAttribute {
                        offset: attr_off,
                        reason: format!(
                            "{name:?} claims {len} value bytes at offset {dstart}, only {room} left in the header block"
                        ),
                    });
                }
                let dend = dstart + len as usize;
                (dstart, dend, dend)
            }
            other => {
                return Err(EnvelopeError::BadAttribute {
                    offset: attr_off,
                    reason: format!("unknown value type 0x{other:02x} for {name:?}"),
                })
            }
        };
        let span = Span {
            attr_off,
            ty,
            start,
            end,
        };
        let slot = match name {
            ATTR_IV => Some(&mut iv),
            ATTR_KEY_INFO => Some(&mut key_info),
            ATTR_CIPHER => Some(&mut cipher),
            ATTR_KEY_HASH => Some(&mut key_hash),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(EnvelopeError::BadAttribute {
                    offset: attr_off,
                    reason: format!("duplicate attribute {name:?}"),
                });
            }
            *slot = Some(span);
        }
        pos = next;
    }

    let iv = iv.ok_or(EnvelopeError::AttributeMissing(ATTR_IV))?;
    let key_info = key_info.ok_or(EnvelopeError::AttributeMissing(ATTR_KEY_INFO))?;
    let cipher = cipher.ok_or(EnvelopeError::AttributeMissing(ATTR_CIPHER))?;
    let key_hash = key_hash.ok_or(EnvelopeError::AttributeMissing(ATTR_KEY_HASH))?;
    let expect = |s: &Span, name: &str, ty: u8, len: Option<usize>| {
        if s.ty != ty {
            return Err(EnvelopeError::BadAttribute {
                offset: s.attr_off,
                reason: format!("{name} has value type 0x{:02x}, expected 0x{ty:02x}", s.ty),
            });
        }
        if let Some(l) = len {
            if s.end - s.start != l {
                return Err(EnvelopeError::BadAttribute {
                    offset: s.attr_off,
                    reason: format!("{name} is {} bytes, expected {l}", s.end - s.start),
                });
            }
        }
        Ok(())
    };
    expect(&iv, ATTR_IV, TYPE_BYTES, Some(12))?;
    expect(&key_info, ATTR_KEY_INFO, TYPE_STRING, None)?;
    expect(&cipher, ATTR_CIPHER, TYPE_STRING, None)?;
    expect(&key_hash, ATTR_KEY_HASH, TYPE_BYTES, Some(32))?;
    for (s, name) in [(&key_info, ATTR_KEY_INFO), (&cipher, ATTR_CIPHER)] {
        if std::str::from_utf8(&hdr[s.start..s.end]).is_err() {
            return Err(EnvelopeError::BadAttribute {
                offset: s.attr_off,
                reason: format!("{name} value is not UTF-8"),
            });
        }
    }
    Ok(ParsedHeader {
        header_len,
        iv,
        key_info,
        cipher,
        key_hash,
    })
}

fn envelope_from(hdr: &[u8], p: &ParsedHeader) -> Envelope {
    let mut iv = [0u8; 12];
    iv.copy_from_slice(&hdr[p.iv.start..p.iv.end]);
    let s = |sp: &Span| String::from_utf8_lossy(&hdr[sp.start..sp.end]).into_owned();
    Envelope {
        header: hdr[..p.header_len].to_vec(),
        iv,
        key_info: s(&p.key_info),
        cipher_name: s(&p.cipher),
        key_hash: hdr[p.key_hash.start..p.key_hash.end].to_vec(),
    }
}

/// Check the AEAD footer (last 4096 bytes) and return the tag.
fn parse_aead_footer(ve: &[u8], header_len: usize) -> Result<[u8; 16], EnvelopeError> {
    let min = header_len as u64 + 2 * BLOCK as u64;
    if (ve.len() as u64) < min {
        return Err(EnvelopeError::Truncated {
            what: "envelope (header block + 4096-byte crypto footer + 4096-byte AEAD footer)",
            offset: 0,
            need: min,
            have: ve.len(),
        });
    }
    let base = ve.len() - BLOCK;
    let f = &ve[base..];
    check_magic(f, 0, AEAD_FOOTER_MAGIC, "AEAD footer", base)?;
    let tag_len = read_u32(f, AEAD_TAGLEN_OFF, "AEAD footer tag length")?;
    if tag_len as usize != AEAD_TAG_LEN {
        return Err(EnvelopeError::BadTagLength {
            offset: base + AEAD_TAGLEN_OFF,
            found: tag_len,
        });
    }
    let version = read_u32(f, AEAD_VERSION_OFF, "AEAD footer version")?;
    if version != AEAD_VERSION {
        return Err(EnvelopeError::BadVersion {
            what: "AEAD footer",
            offset: base + AEAD_VERSION_OFF,
            found: version,
            expected: AEAD_VERSION,
        });
    }
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&f[AEAD_TAG_OFF..AEAD_TAG_OFF + AEAD_TAG_LEN]);
    Ok(tag)
}

/// Parse and bounds-check a `.ve` file: header block, attributes and AEAD footer.
/// The ciphertext must be at least 4096 bytes (room for the crypto footer).
pub fn parse_envelope(ve: &[u8]) -> Result<Envelope, EnvelopeError> {
    let p = parse_header(ve)?;
    parse_aead_footer(ve, p.header_len)?;
    Ok(envelope_from(ve, &p))
}

fn key_hash(cipher_name: &str, key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cipher_name.as_bytes());
    h.update(key);
    h.finalize().into()
}

fn aad(header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + AAD_SUFFIX.len());
    a.extend_from_slice(header);
    a.extend_from_slice(AAD_SUFFIX);
    a
}

fn check_key(cipher_name: &str, stored_hash: &[u8], key: &[u8; 32]) -> Result<(), EnvelopeError> {
    if cipher_name != CIPHER_NAME {
        return Err(EnvelopeError::UnsupportedCipher(cipher_name.to_string()));
    }
    if key_hash(cipher_name, key).as_slice() != stored_hash {
        return Err(EnvelopeError::KeyHashMismatch);
    }
    Ok(())
}

/// Decrypt a `.ve` file and return the data (`local.tgz`).
///
/// Order of checks: structure ([`parse_envelope`]), cipher name, `vmware.keyHash`
/// against the key ([`EnvelopeError::KeyHashMismatch`]), the GCM tag
/// ([`EnvelopeError::AuthFailed`]), then the crypto footer and its pad.
pub fn decrypt(ve: &[u8], key: &[u8; 32]) -> Result<Vec<u8>, EnvelopeError> {
    decrypt_keeping_filler(ve, key).map(|(data, _)| data)
}

/// The bytes ESXi puts where the data does not: the pad after the data and the first 3584 bytes
/// of the crypto footer block. ESXi fills both (they are not zero in the real sample); a
/// re-encryption that reuses them writes the envelope the way ESXi laid it out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filler {
    pub pad: Vec<u8>,
    pub footer_head: Vec<u8>,
}

/// [`decrypt`], also returning the original's [`Filler`].
pub fn decrypt_keeping_filler(
    ve: &[u8],
    key: &[u8; 32],
) -> Result<(Vec<u8>, Filler), EnvelopeError> {
    decrypt_owned(ve.to_vec(), key)
}

/// [`decrypt_keeping_filler`] in the envelope's own buffer: the plaintext of a 64 MiB
/// local.tgz.ve takes its place instead of a second buffer beside it.
pub fn decrypt_owned(ve: Vec<u8>, key: &[u8; 32]) -> Result<(Vec<u8>, Filler), EnvelopeError> {
    let p = parse_header(&ve)?;
    let tag = parse_aead_footer(&ve, p.header_len)?;
    let env = envelope_from(&ve, &p);
    check_key(&env.cipher_name, &env.key_hash, key)?;

    let ct_start = p.header_len;
    let ct_end = ve.len() - BLOCK;
    let mut buf = ve;
    buf.truncate(ct_end);
    buf.drain(..ct_start);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&env.iv),
            &aad(&env.header),
            &mut buf,
            Tag::from_slice(&tag),
        )
        .map_err(|_| EnvelopeError::AuthFailed)?;

    // Crypto footer: last 4096 bytes of the plaintext (length >= 4096 checked above).
    let fbase = buf.len() - BLOCK;
    let footer = &buf[fbase..];
    check_magic(
        footer,
        CRYPTO_MAGIC_OFF,
        CRYPTO_FOOTER_MAGIC,
        "crypto footer (plaintext)",
        fbase,
    )?;
    let version = read_u32(footer, CRYPTO_VERSION_OFF, "crypto footer version")?;
    if version != CRYPTO_VERSION {
        return Err(EnvelopeError::BadVersion {
            what: "crypto footer (plaintext)",
            offset: fbase + CRYPTO_VERSION_OFF,
            found: version,
            expected: CRYPTO_VERSION,
        });
    }
    let pad = read_u32(footer, CRYPTO_PAD_OFF, "crypto footer pad")?;
    let pad_off = fbase + CRYPTO_PAD_OFF;
    if pad as usize >= BLOCK {
        return Err(EnvelopeError::BadPadding {
            offset: pad_off,
            pad,
            reason: "must be below 4096".into(),
        });
    }
    if pad as usize > fbase {
        return Err(EnvelopeError::BadPadding {
            offset: pad_off,
            pad,
            reason: format!("only {fbase} bytes precede the crypto footer"),
        });
    }
    if !fbase.is_multiple_of(BLOCK) {
        return Err(EnvelopeError::BadPadding {
            offset: pad_off,
            pad,
            reason: format!("data + pad is {fbase} bytes, not a multiple of 4096"),
        });
    }
    let data_len = fbase - pad as usize;
    let filler = Filler {
        pad: buf[data_len..fbase].to_vec(),
        footer_head: buf[fbase..fbase + CRYPTO_MAGIC_OFF].to_vec(),
    };
    buf.truncate(data_len);
    Ok((buf, filler))
}

/// Re-encrypt `data` with the same header attributes as `template` except a fresh `iv`.
///
/// `template.header` is the source of truth: it is re-parsed, and the new header is
/// the same block (same attribute order, flags, unknown attributes and header length)
/// with the `vmware.iv` value replaced by `iv`.  The key must match the template's
/// `vmware.keyHash` ([`EnvelopeError::KeyHashMismatch`] otherwise).  The output has a
/// valid tag in the AEAD footer and decrypts with [`decrypt`].
pub fn encrypt(
    template: &Envelope,
    key: &[u8; 32],
    iv: [u8; 12],
    data: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    encrypt_with_filler(template, key, iv, data, &Filler::default())
}

/// [`encrypt`] with the pad and footer-head bytes taken from `filler` (cycled when the new pad
/// is longer, zeros when it is empty), so the layout matches the envelope it came from.
pub fn encrypt_with_filler(
    template: &Envelope,
    key: &[u8; 32],
    iv: [u8; 12],
    data: &[u8],
    filler: &Filler,
) -> Result<Vec<u8>, EnvelopeError> {
    encrypt_owned(template, key, iv, data.to_vec(), filler)
}

/// [`encrypt_with_filler`] in the plaintext's own buffer: the envelope of a 64 MiB local.tgz
/// is built where the plaintext was, without a second buffer beside it.
pub fn encrypt_owned(
    template: &Envelope,
    key: &[u8; 32],
    iv: [u8; 12],
    data: Vec<u8>,
    filler: &Filler,
) -> Result<Vec<u8>, EnvelopeError> {
    let p =
        parse_header(&template.header).map_err(|e| EnvelopeError::BadTemplate(e.to_string()))?;
    if p.header_len != template.header.len() {
        return Err(EnvelopeError::BadTemplate(format!(
            "header is {} bytes but its size field at offset 504 gives {}",
            template.header.len(),
            p.header_len
        )));
    }
    let tpl = envelope_from(&template.header, &p);
    check_key(&tpl.cipher_name, &tpl.key_hash, key)?;

    let mut header = template.header.clone();
    header[p.iv.start..p.iv.end].copy_from_slice(&iv);

    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    let total = data
        .len()
        .checked_add(pad + BLOCK)
        .ok_or_else(|| EnvelopeError::Cipher("data too large".into()))?;
    let data_len = data.len();
    let mut buf = data;
    buf.reserve_exact(total - data_len + header.len() + BLOCK);
    if filler.pad.is_empty() {
        buf.resize(data_len + pad, 0);
    } else {
        buf.extend(filler.pad.iter().cycle().take(pad));
    }
    let mut footer = [0u8; BLOCK];
    let head = filler.footer_head.len().min(CRYPTO_MAGIC_OFF);
    footer[..head].copy_from_slice(&filler.footer_head[..head]);
    footer[CRYPTO_MAGIC_OFF..CRYPTO_MAGIC_OFF + CRYPTO_FOOTER_MAGIC.len()]
        .copy_from_slice(CRYPTO_FOOTER_MAGIC);
    footer[CRYPTO_PAD_OFF..CRYPTO_PAD_OFF + 4].copy_from_slice(&(pad as u32).to_le_bytes());
    footer[CRYPTO_VERSION_OFF..CRYPTO_VERSION_OFF + 4]
        .copy_from_slice(&CRYPTO_VERSION.to_le_bytes());
    buf.extend_from_slice(&footer);

    let cipher = Aes256Gcm::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&iv), &aad(&header), &mut buf)
        .map_err(|e| EnvelopeError::Cipher(e.to_string()))?;

    let mut aead = [0u8; BLOCK];
    aead[..AEAD_FOOTER_MAGIC.len()].copy_from_slice(AEAD_FOOTER_MAGIC);
    aead[AEAD_TAG_OFF..AEAD_TAG_OFF + AEAD_TAG_LEN].copy_from_slice(tag.as_slice());
    aead[AEAD_TAGLEN_OFF..AEAD_TAGLEN_OFF + 4]
        .copy_from_slice(&(AEAD_TAG_LEN as u32).to_le_bytes());
    aead[AEAD_VERSION_OFF..AEAD_VERSION_OFF + 4].copy_from_slice(&AEAD_VERSION.to_le_bytes());

    buf.splice(0..0, header.iter().copied());
    buf.extend_from_slice(&aead);
    Ok(buf)
}

/// Build a template for a brand-new envelope (no existing `.ve` to copy from):
/// a 4096-byte header with attributes `vmware.iv` (zero IV; [`encrypt`] replaces it),
/// `vmware.keyInfo`, `vmware.cipherName` = AES-256-GCM and `vmware.keyHash`, all
/// with flag byte 0.  Prefer re-using the header of the host's own `.ve`.
pub fn new_template(key_info: &str, key: &[u8; 32]) -> Result<Envelope, EnvelopeError> {
    if key_info.as_bytes().contains(&0) {
        return Err(EnvelopeError::BadTemplate(
            "keyInfo contains a NUL byte".into(),
        ));
    }
    let mut h = vec![0u8; BLOCK];
    h[..ENVELOPE_MAGIC.len()].copy_from_slice(ENVELOPE_MAGIC);
    h[HEADER_SIZE_OFF..HEADER_SIZE_OFF + 4]
        .copy_from_slice(&((BLOCK - HEADER_FIXED) as u32).to_le_bytes());
    h[HEADER_VERSION_OFF..HEADER_VERSION_OFF + 4].copy_from_slice(&HEADER_VERSION.to_le_bytes());
    let mut attrs = Vec::new();
    let mut push = |ty: u8, name: &str, value: &[u8]| {
        attrs.extend_from_slice(&[ty, 0, 0, 0]);
        attrs.extend_from_slice(name.as_bytes());
        attrs.push(0);
        if ty == TYPE_BYTES {
            attrs.extend_from_slice(&(value.len() as u64).to_le_bytes());
            attrs.extend_from_slice(value);
        } else {
            attrs.extend_from_slice(value);
            attrs.push(0);
        }
    };
    push(TYPE_BYTES, ATTR_IV, &[0u8; 12]);
    push(TYPE_STRING, ATTR_KEY_INFO, key_info.as_bytes());
    push(TYPE_STRING, ATTR_CIPHER, CIPHER_NAME.as_bytes());
    push(TYPE_BYTES, ATTR_KEY_HASH, &key_hash(CIPHER_NAME, key));
    // Keep at least one zero byte as the list terminator.
    if attrs.len() >= BLOCK - HEADER_FIXED {
        return Err(EnvelopeError::BadTemplate(format!(
            "attributes need {} bytes, the header has room for {}",
            attrs.len(),
            BLOCK - HEADER_FIXED - 1
        )));
    }
    h[HEADER_FIXED..HEADER_FIXED + attrs.len()].copy_from_slice(&attrs);
    let p = parse_header(&h)?;
    Ok(envelope_from(&h, &p))
}

/// ESXi's own IV: `WMV_` and eight zero bytes, in the real 7.0U2 sample.
pub const ESXI_IV: [u8; 12] = *b"WMV_\0\0\0\0\0\0\0\0";

/// The IV for re-encrypting an envelope whose IV was `original`, keeping its scheme: ESXi's
/// fixed `WMV_`-prefixed IV stays exactly as ESXi wrote it (the sample, from a host backed up
/// many times, still has a zero counter: the IV is constant, not counted); any other IV is
/// taken for random and replaced by a fresh one. Re-using ESXi's fixed IV costs nothing it
/// does not already cost: in mode NONE the key is derivable from encryption.info.
pub fn next_iv(original: &[u8; 12]) -> [u8; 12] {
    if original[..4] == ESXI_IV[..4] {
        *original
    } else {
        fresh_iv()
    }
}

/// 12 random bytes for a GCM IV, read from `/dev/urandom`.
///
/// If `/dev/urandom` cannot be read (it always can on Linux), falls back to
/// SHA-256 over time, pid, a process-wide counter and a stack address, which
/// still gives the uniqueness GCM needs; it never panics.
pub fn fresh_iv() -> [u8; 12] {
    use std::io::Read;
    let mut iv = [0u8; 12];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut iv).is_ok() {
            return iv;
        }
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update((&iv as *const _ as usize).to_le_bytes());
    let d = h.finalize();
    iv.copy_from_slice(&d[..12]);
    iv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::test_util::{hex, test_key};
    use crate::envelope::{derive_key, parse_encryption_info};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Python reference implementation (absolute path while developed out of tree).
    const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/scripts/envelope.py");

    struct TmpDir(PathBuf);
    impl TmpDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "envelope-test-{}-{}-{}",
                std::process::id(),
                tag,
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TmpDir(p)
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }
    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn python_available() -> bool {
        let ok = Path::new(PY_SCRIPT).exists()
            && Command::new("python3")
                .args(["-c", "import cryptography"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        // scripts/setup.sh installs python3-cryptography: missing is a failure, not a skip.
        assert!(
            ok,
            "python3 with `cryptography` and {PY_SCRIPT} are required (scripts/setup.sh)"
        );
        ok
    }

    fn py(args: &[&str]) {
        let out = Command::new("python3")
            .arg(PY_SCRIPT)
            .args(args)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "envelope.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sample_data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    fn make_ve(data: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let key = test_key();
        let t = new_template("7e62cec5-6aef-4d7e-838b-cae32eefd251", &key).unwrap();
        (encrypt(&t, &key, [7u8; 12], data).unwrap(), key)
    }

    #[test]
    fn rust_round_trip_sizes() {
        let key = test_key();
        let t = new_template("uuid", &key).unwrap();
        for n in [0usize, 1, 4095, 4096, 4097, 10000] {
            let data = sample_data(n);
            let ve = encrypt(&t, &key, fresh_iv(), &data).unwrap();
            assert_eq!(ve.len() % BLOCK, 0);
            assert_eq!(ve.len(), BLOCK + n.div_ceil(BLOCK) * BLOCK + 2 * BLOCK);
            assert_eq!(decrypt(&ve, &key).unwrap(), data, "size {n}");
        }
    }

    #[test]
    fn encrypt_keeps_header_except_iv() {
        let (ve, key) = make_ve(b"hello");
        let env = parse_envelope(&ve).unwrap();
        assert_eq!(env.iv, [7u8; 12]);
        assert_eq!(env.cipher_name, CIPHER_NAME);
        assert_eq!(env.key_info, "7e62cec5-6aef-4d7e-838b-cae32eefd251");
        let iv2 = [0xA5u8; 12];
        let ve2 = encrypt(&env, &key, iv2, b"other data").unwrap();
        let env2 = parse_envelope(&ve2).unwrap();
        assert_eq!(env2.iv, iv2);
        assert_eq!(env2.header.len(), env.header.len());
        let diff: Vec<usize> = (0..env.header.len())
            .filter(|&i| env.header[i] != env2.header[i])
            .collect();
        assert!(diff.len() <= 12 && !diff.is_empty());
        assert_eq!(decrypt(&ve2, &key).unwrap(), b"other data");
        // Wrong key for the template.
        assert!(matches!(
            encrypt(&env, &[1u8; 32], iv2, b"x"),
            Err(EnvelopeError::KeyHashMismatch)
        ));
        // Template whose header length disagrees with its size field.
        let mut bad = env.clone();
        bad.header.push(0);
        assert!(matches!(
            encrypt(&bad, &key, iv2, b"x"),
            Err(EnvelopeError::BadTemplate(_))
        ));
    }

    #[test]
    fn wrong_key() {
        let (ve, _) = make_ve(b"data");
        assert!(matches!(
            decrypt(&ve, &[0u8; 32]),
            Err(EnvelopeError::KeyHashMismatch)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let (ve, key) = make_ve(&sample_data(5000));
        // Flipped ciphertext byte.
        let mut v = ve.clone();
        v[BLOCK + 10] ^= 1;
        assert!(matches!(decrypt(&v, &key), Err(EnvelopeError::AuthFailed)));
        // Flipped tag byte.
        let mut v = ve.clone();
        let tag_off = v.len() - BLOCK + 32;
        v[tag_off] ^= 0x80;
        assert!(matches!(decrypt(&v, &key), Err(EnvelopeError::AuthFailed)));
        // Flipped byte in an unused part of the header (covered by the AAD).
        let mut v = ve.clone();
        v[BLOCK - 1] ^= 1;
        assert!(matches!(decrypt(&v, &key), Err(EnvelopeError::AuthFailed)));
        // Tag length field.
        let mut v = ve.clone();
        let n = v.len();
        v[n - 8] = 12;
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadTagLength { found: 12, .. })
        ));
        // AEAD footer version.
        let mut v = ve.clone();
        v[n - 4] = 9;
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadVersion {
                what: "AEAD footer",
                ..
            })
        ));
    }

    #[test]
    fn truncation_and_bad_magic() {
        let (ve, key) = make_ve(&sample_data(5000));
        for cut in [0usize, 10, 511, 600, 4096, 4096 + 100, 2 * BLOCK + 5] {
            let e = decrypt(&ve[..cut], &key).unwrap_err();
            assert!(
                matches!(e, EnvelopeError::Truncated { .. }),
                "cut {cut}: {e}"
            );
            assert!(parse_envelope(&ve[..cut]).is_err());
        }
        // Cut in the middle: the tail is no longer an AEAD footer.
        let e = decrypt(&ve[..ve.len() - 100], &key).unwrap_err();
        assert!(
            matches!(
                e,
                EnvelopeError::BadMagic {
                    what: "AEAD footer",
                    ..
                }
            ),
            "{e}"
        );
        // Whole blocks removed from the ciphertext: footer intact, tag fails.
        let mut v = ve[..BLOCK].to_vec();
        v.extend_from_slice(&ve[2 * BLOCK..]);
        assert!(matches!(decrypt(&v, &key), Err(EnvelopeError::AuthFailed)));
        let mut v = ve.clone();
        v[0] = b'X';
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadMagic {
                what: "envelope header",
                offset: 0,
                ..
            })
        ));
        let mut v = ve.clone();
        v[508] = 3;
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadVersion {
                offset: 508,
                found: 3,
                ..
            })
        ));
    }

    #[test]
    fn huge_size_field() {
        let (ve, key) = make_ve(b"abc");
        for size in [u32::MAX, u32::MAX - 511, 0x7fff_ffff, ve.len() as u32] {
            let mut v = ve.clone();
            v[504..508].copy_from_slice(&size.to_le_bytes());
            let e = decrypt(&v, &key).unwrap_err();
            assert!(matches!(e, EnvelopeError::Truncated { .. }), "{size}: {e}");
            let msg = e.to_string();
            assert!(msg.contains("offset 504"), "{msg}");
        }
        // Size pointing into the attribute list: missing attributes, not a panic.
        let mut v = ve.clone();
        v[504..508].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::AttributeMissing("vmware.iv"))
        ));
        let mut v = ve.clone();
        v[504..508].copy_from_slice(&30u32.to_le_bytes());
        assert!(decrypt(&v, &key).is_err());
    }

    /// Overwrite the name of the attribute `name` in the header (keeps the layout).
    fn rename_attr(v: &mut [u8], name: &str, new: &str) {
        assert_eq!(name.len(), new.len());
        let pos = v[..BLOCK]
            .windows(name.len() + 1)
            .position(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
            .unwrap();
        v[pos..pos + new.len()].copy_from_slice(new.as_bytes());
    }

    #[test]
    fn missing_and_bad_attributes() {
        let (ve, key) = make_ve(b"abc");
        for (name, new) in [
            ("vmware.iv", "vmware.xx"),
            ("vmware.keyInfo", "vmware.xxxInfo"),
            ("vmware.cipherName", "vmware.xxxxxxName"),
            ("vmware.keyHash", "vmware.xxxHash"),
        ] {
            let mut v = ve.clone();
            rename_attr(&mut v, name, new);
            let e = decrypt(&v, &key).unwrap_err();
            assert!(
                matches!(e, EnvelopeError::AttributeMissing(n) if n == name),
                "{name}: {e}"
            );
        }
        // Unknown type byte on the first attribute.
        let mut v = ve.clone();
        v[512] = 0x42;
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadAttribute { offset: 512, .. })
        ));
        // Huge u64 length on vmware.iv (value length field at 512+4+10).
        let mut v = ve.clone();
        v[526..534].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadAttribute { offset: 512, .. })
        ));
        // iv of the wrong length (11): the remaining list no longer parses.
        let mut v = ve.clone();
        v[526] = 11;
        assert!(decrypt(&v, &key).is_err());
        // Attribute list without NUL terminators (header full of 0x0B).
        let mut v = ve.clone();
        for b in &mut v[512..BLOCK] {
            *b = 0x0B;
        }
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::BadAttribute { offset: 512, .. })
        ));
        // Unsupported cipher.
        let mut v = ve.clone();
        let pos = v[..BLOCK]
            .windows(11)
            .position(|w| w == b"AES-256-GCM")
            .unwrap();
        v[pos + 4] = b'1';
        assert!(matches!(
            decrypt(&v, &key),
            Err(EnvelopeError::UnsupportedCipher(_))
        ));
    }

    #[test]
    fn no_panic_on_garbage() {
        let key = test_key();
        let (ve, _) = make_ve(&sample_data(300));
        // Every single-byte corruption of the header, footer region and a few
        // ciphertext bytes must yield Err (or, for IV-independent bytes, Ok).
        let mut seed = 0x1234_5678u32;
        for _ in 0..3000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (seed as usize >> 3) % ve.len();
            let mut v = ve.clone();
            v[i] ^= (seed >> 24) as u8 | 1;
            let _ = decrypt(&v, &key);
            let _ = parse_envelope(&v);
        }
        for n in 0..2000usize {
            let junk: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            assert!(decrypt(&junk, &key).is_err());
        }
        let _ = parse_encryption_info("\u{feff}%%%=\"%\"\n=\n\"\n");
    }

    #[test]
    fn plaintext_footer_checks() {
        // Build an envelope whose (authenticated) crypto footer is wrong, by
        // encrypting by hand with the same primitives.
        let key = test_key();
        let t = new_template("k", &key).unwrap();
        let build = |plain: &[u8]| -> Vec<u8> {
            let mut buf = plain.to_vec();
            let c = Aes256Gcm::new((&key).into());
            let tag = c
                .encrypt_in_place_detached(Nonce::from_slice(&t.iv), &aad(&t.header), &mut buf)
                .unwrap();
            let mut f = vec![0u8; BLOCK];
            f[..AEAD_FOOTER_MAGIC.len()].copy_from_slice(AEAD_FOOTER_MAGIC);
            f[32..48].copy_from_slice(&tag);
            f[4088..4092].copy_from_slice(&16u32.to_le_bytes());
            f[4092..4096].copy_from_slice(&1u32.to_le_bytes());
            [t.header.clone(), buf, f].concat()
        };
        let good = {
            let ve = encrypt(&t, &key, t.iv, b"xyz").unwrap();
            let mut b = ve[BLOCK..ve.len() - BLOCK].to_vec();
            let c = Aes256Gcm::new((&key).into());
            let tag = Tag::clone_from_slice(&ve[ve.len() - BLOCK + 32..ve.len() - BLOCK + 48]);
            c.decrypt_in_place_detached(Nonce::from_slice(&t.iv), &aad(&t.header), &mut b, &tag)
                .unwrap();
            b
        };
        assert_eq!(decrypt(&build(&good), &key).unwrap(), b"xyz");
        let n = good.len();
        let mut p = good.clone();
        p[n - 512] = b'x';
        assert!(matches!(
            decrypt(&build(&p), &key),
            Err(EnvelopeError::BadMagic { offset: 7680, .. })
        ));
        let mut p = good.clone();
        p[n - 8..n - 4].copy_from_slice(&5000u32.to_le_bytes());
        assert!(matches!(
            decrypt(&build(&p), &key),
            Err(EnvelopeError::BadPadding { pad: 5000, .. })
        ));
        let mut p = good.clone();
        p[n - 4] = 1;
        assert!(matches!(
            decrypt(&build(&p), &key),
            Err(EnvelopeError::BadVersion { found: 1, .. })
        ));
        // Footer only, pad 1 with no data: pad exceeds what precedes the footer.
        let mut p = good[n - BLOCK..].to_vec();
        p[BLOCK - 8..BLOCK - 4].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(
            decrypt(&build(&p), &key),
            Err(EnvelopeError::BadPadding { pad: 1, .. })
        ));
        // Plaintext not a multiple of 4096.
        let mut p = vec![0u8; 100];
        p.extend_from_slice(&good[n - BLOCK..]);
        p[100 + BLOCK - 8..100 + BLOCK - 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            decrypt(&build(&p), &key),
            Err(EnvelopeError::BadPadding { pad: 0, .. })
        ));
    }

    #[test]
    fn fresh_iv_differs() {
        assert_ne!(fresh_iv(), fresh_iv());
    }

    #[test]
    fn python_encrypt_rust_decrypt() {
        if !python_available() {
            return;
        }
        let d = TmpDir::new("py2rs");
        let info_p = d.path("encryption.info");
        let in_p = d.path("local.tgz");
        let ve_p = d.path("local.tgz.ve");
        let data = sample_data(12345);
        std::fs::write(&in_p, &data).unwrap();
        py(&[
            "make-info",
            "--out",
            info_p.to_str().unwrap(),
            "--seed",
            "rust-test",
        ]);
        py(&[
            "encrypt",
            "--info",
            info_p.to_str().unwrap(),
            "--in",
            in_p.to_str().unwrap(),
            "--out",
            ve_p.to_str().unwrap(),
            "--iv",
            "000102030405060708090a0b",
        ]);
        let info = parse_encryption_info(&std::fs::read_to_string(&info_p).unwrap()).unwrap();
        assert_eq!(info.mode, "NONE");
        assert_eq!(info.key_id.len(), 16);
        let key = derive_key(&info).unwrap();
        let ve = std::fs::read(&ve_p).unwrap();
        let env = parse_envelope(&ve).unwrap();
        assert_eq!(hex(&env.iv), "000102030405060708090a0b");
        assert_eq!(Some(env.key_info.clone()), info.key_uuid());
        assert_eq!(decrypt(&ve, &key).unwrap(), data);

        // Same IV and data through Rust's encrypt must give identical bytes.
        let again = encrypt(&env, &key, env.iv, &data).unwrap();
        assert_eq!(again, ve);

        // A different seed gives a different key.
        let other_p = d.path("other.info");
        py(&[
            "make-info",
            "--out",
            other_p.to_str().unwrap(),
            "--seed",
            "other",
        ]);
        let other = derive_key(
            &parse_encryption_info(&std::fs::read_to_string(&other_p).unwrap()).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            decrypt(&ve, &other),
            Err(EnvelopeError::KeyHashMismatch)
        ));

        // TPM-mode info from the script.
        let tpm_p = d.path("tpm.info");
        py(&[
            "make-info",
            "--out",
            tpm_p.to_str().unwrap(),
            "--mode",
            "TPM",
        ]);
        let tpm = parse_encryption_info(&std::fs::read_to_string(&tpm_p).unwrap()).unwrap();
        assert!(matches!(
            derive_key(&tpm),
            Err(EnvelopeError::TpmSealed { .. })
        ));
    }

    #[test]
    fn rust_encrypt_python_decrypt() {
        if !python_available() {
            return;
        }
        let d = TmpDir::new("rs2py");
        let info_p = d.path("encryption.info");
        let seed_ve = d.path("seed.ve");
        let empty = d.path("empty");
        std::fs::write(&empty, b"").unwrap();
        py(&[
            "make-info",
            "--out",
            info_p.to_str().unwrap(),
            "--seed",
            "roundtrip",
        ]);
        // Python makes the template .ve (as a host would have), Rust re-encrypts.
        py(&[
            "encrypt",
            "--info",
            info_p.to_str().unwrap(),
            "--in",
            empty.to_str().unwrap(),
            "--out",
            seed_ve.to_str().unwrap(),
        ]);
        let info = parse_encryption_info(&std::fs::read_to_string(&info_p).unwrap()).unwrap();
        let key = derive_key(&info).unwrap();
        let template = parse_envelope(&std::fs::read(&seed_ve).unwrap()).unwrap();
        for n in [0usize, 1, 4096, 70000] {
            let data = sample_data(n);
            let ve = encrypt(&template, &key, fresh_iv(), &data).unwrap();
            let ve_p = d.path(&format!("rs{n}.ve"));
            let out_p = d.path(&format!("rs{n}.out"));
            std::fs::write(&ve_p, &ve).unwrap();
            py(&[
                "decrypt",
                "--info",
                info_p.to_str().unwrap(),
                "--in",
                ve_p.to_str().unwrap(),
                "--out",
                out_p.to_str().unwrap(),
            ]);
            assert_eq!(std::fs::read(&out_p).unwrap(), data, "size {n}");
        }
        // Python must reject a Rust file with a flipped ciphertext byte.
        let mut ve = encrypt(&template, &key, fresh_iv(), b"abc").unwrap();
        ve[BLOCK] ^= 1;
        let bad_p = d.path("bad.ve");
        std::fs::write(&bad_p, &ve).unwrap();
        let st = Command::new("python3")
            .arg(PY_SCRIPT)
            .args(["decrypt", "--info", info_p.to_str().unwrap(), "--in"])
            .arg(&bad_p)
            .arg("--out")
            .arg(d.path("bad.out"))
            .output()
            .unwrap();
        assert!(!st.status.success());
    }
}
