//! ESXi 7.0U2+ configuration envelope (`local.tgz.ve` + `encryption.info`).
//!
//! From 7.0U2 on, `state.tgz` holds `local.tgz.ve` (the encrypted `local.tgz`)
//! and `encryption.info` (a VMX-style key file).  With `mode = "NONE"` the key
//! is derived from `encryption.info` alone (PBKDF2-HMAC-SHA256), so the
//! configuration can be decrypted, repaired and re-encrypted offline.  Any other
//! mode means the key is sealed in the TPM and there is no offline path.
//!
//! `.ve` layout (see `docs/esxi-format.md` §3, "checked against a real 7.0U2 sample"):
//!
//! ```text
//! header block   "DataTransformEnvelope" @0, u32 size @504, u32 version 2 @508,
//!                header length = 512 + size; TLV attributes from @512:
//!                u8 type, u8 flag, 2 pad, NUL-terminated name, value
//!                (0x0B: NUL-terminated string, 0x0C: u64 LE length + bytes),
//!                a zero type ends the list.
//! ciphertext     AES-256-GCM(data ‖ pad zero bytes ‖ 4096-byte crypto footer),
//!                AAD = header block ‖ "ESXConfiguration", IV = vmware.iv
//! AEAD footer    last 4096 bytes: "DataTransformAeadFooter" @0, tag @32,
//!                u32 tag length (16) @4088, u32 version 1 @4092
//! ```
//!
//! The crypto footer (last 4096 bytes of the plaintext) holds
//! "DataTransformCryptoFooter" @3584, u32 pad @4088 and u32 version 2 @4092.
//!
//! Every parser here is bounds-checked and returns an [`EnvelopeError`] that
//! names the structure and offset; nothing panics on malformed input.
//!
//! `info.rs` reads `encryption.info` and derives the key; `ve.rs` parses, decrypts and
//! re-encrypts the `.ve` file. This file holds the layout constants and the error type.

mod info;
mod ve;

#[cfg(test)]
mod test_util;

pub use self::info::{derive_key, parse_encryption_info, EncryptionInfo};
pub use self::ve::{
    decrypt, decrypt_keeping_filler, decrypt_owned, encrypt, encrypt_owned, encrypt_with_filler,
    fresh_iv, new_template, next_iv, parse_envelope, Envelope, Filler, ESXI_IV,
};

/// Magic at offset 0 of the header block.
pub const ENVELOPE_MAGIC: &[u8] = b"DataTransformEnvelope";
/// Magic at offset 0 of the AEAD footer (last 4096 bytes of the file).
pub const AEAD_FOOTER_MAGIC: &[u8] = b"DataTransformAeadFooter";
/// Magic at offset 3584 of the crypto footer (last 4096 bytes of the plaintext).
pub const CRYPTO_FOOTER_MAGIC: &[u8] = b"DataTransformCryptoFooter";
/// Additional authenticated data appended after the header block.
pub const AAD_SUFFIX: &[u8] = b"ESXConfiguration";
/// The only cipher ESXi uses for the configuration envelope.
pub const CIPHER_NAME: &str = "AES-256-GCM";
/// Appended to `data1` to form the PBKDF2 password.
pub const KDF_SUFFIX: &[u8] =
    b"This is obfuscation, not encryption. If you want encryption, use TPM.";
/// PBKDF2 iteration count for `mode = "NONE"`.
pub const KDF_ITERATIONS: u32 = 100_000;

/// Size of the AEAD footer, the crypto footer and the data alignment unit.
pub const BLOCK: usize = 4096;
/// Fixed part of the header before the attributes.
const HEADER_FIXED: usize = 512;
const HEADER_SIZE_OFF: usize = 504;
const HEADER_VERSION_OFF: usize = 508;
const HEADER_VERSION: u32 = 2;
const AEAD_TAG_OFF: usize = 32;
const AEAD_TAG_LEN: usize = 16;
const AEAD_TAGLEN_OFF: usize = 4088;
const AEAD_VERSION_OFF: usize = 4092;
const AEAD_VERSION: u32 = 1;
const CRYPTO_MAGIC_OFF: usize = 3584;
const CRYPTO_PAD_OFF: usize = 4088;
const CRYPTO_VERSION_OFF: usize = 4092;
const CRYPTO_VERSION: u32 = 2;

const TYPE_STRING: u8 = 0x0B;
const TYPE_BYTES: u8 = 0x0C;

const ATTR_IV: &str = "vmware.iv";
const ATTR_KEY_INFO: &str = "vmware.keyInfo";
const ATTR_CIPHER: &str = "vmware.cipherName";
const ATTR_KEY_HASH: &str = "vmware.keyHash";

/// Errors from parsing `encryption.info`, deriving the key, or handling a `.ve`.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// A line of `encryption.info` is not `key = "value"`.
    #[error("encryption.info line {line}: {reason}")]
    InfoSyntax { line: usize, reason: String },
    /// A required entry (`mode`, `ConfigEncData` or one of its fields) is absent.
    #[error("encryption.info: required entry {0} is missing")]
    InfoMissing(&'static str),
    /// A `ConfigEncData` field (or `mode`) has a value that cannot be used.
    #[error("encryption.info: {field}: {reason}")]
    InfoField { field: &'static str, reason: String },
    /// The key is sealed in the TPM; no offline decryption is possible.
    #[error(
        "configuration is TPM-sealed (mode {mode}): no offline repair; boot ESXi, press Shift+O \
         and add encryptionRecoveryKey=<your recovery key>, then fix passthrough and run \
         /sbin/auto-backup.sh"
    )]
    TpmSealed { mode: String },
    /// A magic string is not where it should be.
    #[error("{what}: bad magic at offset {offset} (expected {expected:?})")]
    BadMagic {
        what: &'static str,
        offset: usize,
        expected: &'static str,
    },
    /// A version field holds an unknown value.
    #[error("{what}: unsupported version {found} at offset {offset} (expected {expected})")]
    BadVersion {
        what: &'static str,
        offset: usize,
        found: u32,
        expected: u32,
    },
    /// The input ends before a structure does.
    #[error("truncated: {what} needs {need} bytes at offset {offset}, but the input has {have}")]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: usize,
    },
    /// A header attribute (TLV) is malformed.
    #[error("header attribute at offset {offset}: {reason}")]
    BadAttribute { offset: usize, reason: String },
    /// A required header attribute is absent.
    #[error("header attribute {0} is missing (attribute list starts at offset 512)")]
    AttributeMissing(&'static str),
    /// `vmware.cipherName` is not AES-256-GCM.
    #[error("vmware.cipherName is {0:?}; only AES-256-GCM is supported")]
    UnsupportedCipher(String),
    /// `vmware.keyHash` does not match SHA-256("AES-256-GCM" ‖ key).
    #[error(
        "vmware.keyHash in the envelope header does not match SHA-256(cipherName ‖ key): \
         wrong key (encryption.info does not belong to this local.tgz.ve)"
    )]
    KeyHashMismatch,
    /// The GCM tag (AEAD footer offset 32) does not authenticate header + ciphertext.
    #[error(
        "GCM authentication failed: the tag at AEAD footer offset 32 (file offset len-4064) \
         does not match the header block and ciphertext (file corrupted or modified)"
    )]
    AuthFailed,
    /// The AEAD footer's tag length is not 16.
    #[error("AEAD footer: tag length {found} at offset {offset} (expected 16)")]
    BadTagLength { offset: usize, found: u32 },
    /// The crypto footer's pad value is inconsistent with the plaintext length.
    #[error("crypto footer: pad {pad} at plaintext offset {offset} is invalid: {reason}")]
    BadPadding {
        offset: usize,
        pad: u32,
        reason: String,
    },
    /// The `template` given to [`encrypt`] cannot be re-packed.
    #[error("envelope template: {0}")]
    BadTemplate(String),
    /// The cipher refused the input (only for absurd sizes beyond GCM limits).
    #[error("AES-256-GCM encryption failed: {0}")]
    Cipher(String),
}
