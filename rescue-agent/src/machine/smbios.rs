//! The host's identity from SMBIOS (`/sys/class/dmi/id`): the system UUID and serial number a
//! fleet keys its reports on. Placeholder strings vendors leave in unset fields count as absent.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    /// `product_uuid`, lower case.
    pub uuid: Option<String>,
    /// `product_serial` (the system serial; the chassis serial is often blank on whitebox).
    pub serial: Option<String>,
}

/// Reads `<sys>/class/dmi/id/{product_uuid,product_serial}` (root only on Linux).
pub fn host_identity(sys: &Path) -> HostIdentity {
    let dmi = sys.join("class/dmi/id");
    let read = |name: &str| {
        std::fs::read(dmi.join(name))
            .ok()
            .and_then(|bytes| clean(&String::from_utf8_lossy(&bytes)))
    };
    HostIdentity {
        uuid: read("product_uuid")
            .map(|u| u.to_ascii_lowercase())
            .filter(|u| is_uuid(u) && !is_blank_uuid(u)),
        serial: read("product_serial"),
    }
}

/// Trims, keeps printable ASCII only, and drops the placeholders BIOS vendors ship.
fn clean(text: &str) -> Option<String> {
    let text: String = text
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect();
    let lower = text.to_ascii_lowercase();
    let placeholder = [
        "",
        "none",
        "not specified",
        "not applicable",
        "default string",
        "to be filled by o.e.m.",
        "system serial number",
        "0123456789",
    ];
    (!placeholder.contains(&lower.as_str())).then_some(text)
}

fn is_uuid(u: &str) -> bool {
    u.len() == 36
        && u.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// All zeros or all ones: firmware that never set the UUID.
fn is_blank_uuid(u: &str) -> bool {
    u.chars().filter(|c| *c != '-').all(|c| c == '0')
        || u.chars().filter(|c| *c != '-').all(|c| c == 'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::init::testutil::TempDir;

    fn sys_with(uuid: &str, serial: &str) -> TempDir {
        let d = TempDir::new("smbios");
        d.write("class/dmi/id/product_uuid", uuid);
        d.write("class/dmi/id/product_serial", serial);
        d
    }

    #[test]
    fn reads_uuid_and_serial() {
        let d = sys_with("4C4C4544-0042-3510-8052-B4C04F4E4D32\n", " CZ2D1234AB \n");
        let id = host_identity(d.path());
        assert_eq!(
            id.uuid.as_deref(),
            Some("4c4c4544-0042-3510-8052-b4c04f4e4d32")
        );
        assert_eq!(id.serial.as_deref(), Some("CZ2D1234AB"));
    }

    #[test]
    fn placeholders_and_garbage_are_absent() {
        let d = sys_with(
            "00000000-0000-0000-0000-000000000000\n",
            "To Be Filled By O.E.M.\n",
        );
        assert_eq!(host_identity(d.path()), HostIdentity::default());
        let d = sys_with("not-a-uuid\n", "\n");
        assert_eq!(host_identity(d.path()), HostIdentity::default());
        let missing = TempDir::new("smbios-none");
        assert_eq!(host_identity(missing.path()), HostIdentity::default());
    }
}
