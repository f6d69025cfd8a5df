//! ConfigStore databases from the disk: read the pci_devices and module_settings rows, and
//! rewrite the first passthrough row, all under the defensive open (tables only, untrusted
//! schema, length limits, an instruction budget).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::configstore::{self, StoreEdit};

fuzz_target!(|data: &[u8]| {
    let Ok(found) = configstore::read(data) else {
        return;
    };
    let edit = StoreEdit {
        owners_to_vmkernel: found
            .pci_devices
            .iter()
            .filter(|r| r.is_passthru())
            .map(|r| r.identifier.clone())
            .take(1)
            .collect(),
        modules_to_enable: found
            .disabled_modules
            .iter()
            .map(|m| m.module.clone())
            .take(1)
            .collect(),
    };
    if !edit.is_empty() {
        let _ = configstore::rewrite(data, &edit);
    }
});
