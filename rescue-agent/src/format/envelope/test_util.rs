//! Test-only fixtures shared by the `encryption.info` and `.ve` unit tests.

use super::{derive_key, parse_encryption_info};

pub(super) const INFO_TEXT: &str = ".encoding = \"UTF-8\"\n\
includeKeyCache = \"FALSE\"\n\
mode = \"NONE\"\n\
ConfigEncData = \"keyId=fmLOxWrvTX6Di8rjLu%2FSUQ%3D%3D:data1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8%3D:data2=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8%3d:version=1\"\n";

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn test_key() -> [u8; 32] {
    derive_key(&parse_encryption_info(INFO_TEXT).unwrap()).unwrap()
}
