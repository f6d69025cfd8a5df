//! `encryption.info`: the VMX-style key file next to `local.tgz.ve`. Parses its
//! `key = "value"` lines (with `%XX` and base64 decoding) and derives the AES-256 key
//! for `mode = "NONE"`; any TPM mode is refused with the recovery route.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::Sha256;

use super::{EnvelopeError, KDF_ITERATIONS, KDF_SUFFIX};

/// Contents of `encryption.info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionInfo {
    /// `mode` (`NONE` or a TPM mode).
    pub mode: String,
    /// `keyId` from `ConfigEncData`, base64-decoded (a 16-byte UUID on real hosts).
    pub key_id: Vec<u8>,
    /// `data1` from `ConfigEncData`, base64-decoded (PBKDF2 password prefix).
    pub data1: Vec<u8>,
    /// `data2` from `ConfigEncData`, base64-decoded (PBKDF2 salt).
    pub data2: Vec<u8>,
    /// `version` from `ConfigEncData` (`1`).
    pub version: String,
}

impl EncryptionInfo {
    /// `true` when the key can be derived offline (`mode = "NONE"`).
    pub fn is_mode_none(&self) -> bool {
        self.mode.trim().eq_ignore_ascii_case("NONE")
    }

    /// `keyId` formatted as a UUID string (what `vmware.keyInfo` carries), if 16 bytes.
    pub fn key_uuid(&self) -> Option<String> {
        if self.key_id.len() != 16 {
            return None;
        }
        let h: String = self.key_id.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }
}

fn b64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes (either hex case).
fn url_unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_val);
            let lo = b.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(format!("bad %-escape at character {i}")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn unescape_str(field: &'static str, s: &str) -> Result<String, EnvelopeError> {
    let bytes = url_unescape(s).map_err(|reason| EnvelopeError::InfoField { field, reason })?;
    String::from_utf8(bytes).map_err(|_| EnvelopeError::InfoField {
        field,
        reason: "value is not UTF-8 after %-unescaping".into(),
    })
}

fn decode_b64_field(field: &'static str, raw: &str) -> Result<Vec<u8>, EnvelopeError> {
    let s = unescape_str(field, raw)?;
    b64_engine()
        .decode(s.trim())
        .map_err(|e| EnvelopeError::InfoField {
            field,
            reason: format!("not base64 ({e})"),
        })
}

/// Parse the text of `encryption.info`.
///
/// Lines are `key = "value"` (quotes optional); blank lines and `#` comments are
/// skipped; keys are matched case-insensitively; values are `%XX`-unescaped.
/// For `mode = "NONE"`, `ConfigEncData` with `keyId`, `data1`, `data2` and
/// `version` is required.  For any other (TPM) mode the fields are parsed if
/// present and otherwise left empty, so that [`derive_key`] can report
/// [`EnvelopeError::TpmSealed`].
pub fn parse_encryption_info(text: &str) -> Result<EncryptionInfo, EnvelopeError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut mode: Option<String> = None;
    let mut enc_data: Option<(usize, String)> = None;
    for (idx, raw_line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(EnvelopeError::InfoSyntax {
                line: line_no,
                reason: format!("expected `key = \"value\"`, found {line:?}"),
            });
        };
        let key = k.trim();
        let v = v.trim();
        let value = if let Some(rest) = v.strip_prefix('"') {
            match rest.strip_suffix('"') {
                Some(inner) => inner,
                None => {
                    return Err(EnvelopeError::InfoSyntax {
                        line: line_no,
                        reason: format!("unterminated quoted value for {key:?}"),
                    })
                }
            }
        } else {
            v
        };
        if key.is_empty() {
            return Err(EnvelopeError::InfoSyntax {
                line: line_no,
                reason: "empty key".into(),
            });
        }
        if key.eq_ignore_ascii_case("mode") {
            if mode.is_some() {
                return Err(EnvelopeError::InfoSyntax {
                    line: line_no,
                    reason: "duplicate `mode`".into(),
                });
            }
            mode = Some(unescape_str("mode", value)?.trim().to_string());
        } else if key.eq_ignore_ascii_case("ConfigEncData") {
            if enc_data.is_some() {
                return Err(EnvelopeError::InfoSyntax {
                    line: line_no,
                    reason: "duplicate `ConfigEncData`".into(),
                });
            }
            enc_data = Some((line_no, value.to_string()));
        }
    }
    let mode = mode.ok_or(EnvelopeError::InfoMissing("mode"))?;
    if mode.is_empty() {
        return Err(EnvelopeError::InfoField {
            field: "mode",
            reason: "empty".into(),
        });
    }
    let need_all = mode.eq_ignore_ascii_case("NONE");

    let mut key_id = None;
    let mut data1 = None;
    let mut data2 = None;
    let mut version = None;
    match &enc_data {
        None if need_all => return Err(EnvelopeError::InfoMissing("ConfigEncData")),
        None => {}
        Some((line_no, value)) => {
            for part in value.split(':') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (name, val) = part.split_once('=').unwrap_or((part, ""));
                let (slot, field): (&mut Option<String>, &'static str) = match name.trim() {
                    "keyId" => (&mut key_id, "ConfigEncData.keyId"),
                    "data1" => (&mut data1, "ConfigEncData.data1"),
                    "data2" => (&mut data2, "ConfigEncData.data2"),
                    "version" => (&mut version, "ConfigEncData.version"),
                    _ => continue,
                };
                if slot.is_some() {
                    return Err(EnvelopeError::InfoSyntax {
                        line: *line_no,
                        reason: format!("duplicate field {field}"),
                    });
                }
                *slot = Some(val.trim().to_string());
            }
        }
    }
    let take_b64 = |v: Option<String>, field: &'static str| -> Result<Vec<u8>, EnvelopeError> {
        match v {
            Some(s) => decode_b64_field(field, &s),
            None if need_all => Err(EnvelopeError::InfoMissing(field)),
            None => Ok(Vec::new()),
        }
    };
    let key_id = take_b64(key_id, "ConfigEncData.keyId")?;
    let data1 = take_b64(data1, "ConfigEncData.data1")?;
    let data2 = take_b64(data2, "ConfigEncData.data2")?;
    let version = match version {
        Some(s) => unescape_str("ConfigEncData.version", &s)?,
        None if need_all => return Err(EnvelopeError::InfoMissing("ConfigEncData.version")),
        None => String::new(),
    };
    Ok(EncryptionInfo {
        mode,
        key_id,
        data1,
        data2,
        version,
    })
}

/// Derive the AES-256 key for `mode = "NONE"`:
/// PBKDF2-HMAC-SHA256(data1 ‖ [`KDF_SUFFIX`], salt = data2, 100000 iterations, 32 bytes).
///
/// Any other mode returns [`EnvelopeError::TpmSealed`]; a `ConfigEncData`
/// version other than `1` is refused (the derivation may differ).
pub fn derive_key(info: &EncryptionInfo) -> Result<[u8; 32], EnvelopeError> {
    if !info.is_mode_none() {
        return Err(EnvelopeError::TpmSealed {
            mode: info.mode.clone(),
        });
    }
    if info.version.trim() != "1" {
        return Err(EnvelopeError::InfoField {
            field: "ConfigEncData.version",
            reason: format!("unsupported version {:?} (only 1 is known)", info.version),
        });
    }
    let mut password = Vec::with_capacity(info.data1.len() + KDF_SUFFIX.len());
    password.extend_from_slice(&info.data1);
    password.extend_from_slice(KDF_SUFFIX);
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(&password, &info.data2, KDF_ITERATIONS, &mut key);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::test_util::{hex, test_key, INFO_TEXT};

    /// Known answer computed with Python:
    /// `hashlib.pbkdf2_hmac("sha256", bytes(range(32)) + SUFFIX, bytes(range(32, 64)), 100000, 32)`.
    const KAT_KEY_HEX: &str = "a0fa0fa71cd86782b9b68566d7717f1707135fd4842fb9f62faaacdba23cc886";

    #[test]
    fn parse_info_fields() {
        let info = parse_encryption_info(INFO_TEXT).unwrap();
        assert_eq!(info.mode, "NONE");
        assert_eq!(info.key_id.len(), 16);
        assert_eq!(
            info.key_uuid().unwrap(),
            "7e62cec5-6aef-4d7e-838b-cae32eefd251"
        );
        assert_eq!(info.data1, (0u8..32).collect::<Vec<_>>());
        assert_eq!(info.data2, (32u8..64).collect::<Vec<_>>());
        assert_eq!(info.version, "1");
        // Unescaped '+' and '/' and lowercase %3d as in a real host file.
        let real = "mode = \"NONE\"\nConfigEncData = \"keyId=fmLOxWrvTX6Di8rjLu/SUQ%3d%3d:data1=Uz8MFZfqTbWN2jIHbFPhag%3d%3d:data2=IDcZE41aR+uxDv7Iz8zJSA%3d%3d:version=1\"\n";
        let r = parse_encryption_info(real).unwrap();
        assert_eq!(r.data1.len(), 16);
        assert_eq!(r.data2.len(), 16);
    }

    #[test]
    fn parse_info_errors() {
        assert!(matches!(
            parse_encryption_info("includeKeyCache = \"FALSE\"\n"),
            Err(EnvelopeError::InfoMissing("mode"))
        ));
        assert!(matches!(
            parse_encryption_info("mode = \"NONE\"\n"),
            Err(EnvelopeError::InfoMissing("ConfigEncData"))
        ));
        assert!(matches!(
            parse_encryption_info(
                "mode = \"NONE\"\nConfigEncData = \"keyId=AA%3D%3D:data1=AA%3D%3D:version=1\"\n"
            ),
            Err(EnvelopeError::InfoMissing("ConfigEncData.data2"))
        ));
        assert!(matches!(
            parse_encryption_info("mode = \"NONE\nx"),
            Err(EnvelopeError::InfoSyntax { line: 1, .. })
        ));
        assert!(matches!(
            parse_encryption_info("mode = \"NONE\"\ngarbage\n"),
            Err(EnvelopeError::InfoSyntax { line: 2, .. })
        ));
        assert!(matches!(
            parse_encryption_info(
                "mode = \"NONE\"\nConfigEncData = \"keyId=%zz:data1=AA:data2=AA:version=1\"\n"
            ),
            Err(EnvelopeError::InfoField {
                field: "ConfigEncData.keyId",
                ..
            })
        ));
        assert!(matches!(
            parse_encryption_info(
                "mode = \"NONE\"\nConfigEncData = \"keyId=AA:data1=!!!:data2=AA:version=1\"\n"
            ),
            Err(EnvelopeError::InfoField {
                field: "ConfigEncData.data1",
                ..
            })
        ));
        let mut info = parse_encryption_info(INFO_TEXT).unwrap();
        info.version = "2".into();
        assert!(matches!(
            derive_key(&info),
            Err(EnvelopeError::InfoField {
                field: "ConfigEncData.version",
                ..
            })
        ));
    }

    #[test]
    fn tpm_mode_is_refused_with_recovery_route() {
        let text = "mode = \"TPM\"\nincludeKeyCache = \"FALSE\"\n";
        let info = parse_encryption_info(text).unwrap();
        let e = derive_key(&info).unwrap_err();
        assert!(matches!(&e, EnvelopeError::TpmSealed { mode } if mode == "TPM"));
        let msg = e.to_string();
        assert!(msg.contains("mode TPM"), "{msg}");
        assert!(msg.contains("Shift+O"), "{msg}");
        assert!(msg.contains("encryptionRecoveryKey="), "{msg}");
        assert!(msg.contains("/sbin/auto-backup.sh"), "{msg}");
        // TPM mode with ConfigEncData present is still sealed.
        let info2 =
            parse_encryption_info(&INFO_TEXT.replace("\"NONE\"", "\"TPM_SEALED\"")).unwrap();
        assert!(matches!(
            derive_key(&info2),
            Err(EnvelopeError::TpmSealed { .. })
        ));
    }

    #[test]
    fn derive_key_known_answer() {
        let key = test_key();
        assert_eq!(hex(&key), KAT_KEY_HEX);
    }
}
