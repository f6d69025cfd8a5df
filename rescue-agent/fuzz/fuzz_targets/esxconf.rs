//! esx.conf: owner lines, address forms, likely readings, disabled modules, in-place edits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::esxconf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let owners = esxconf::parse_owners(text);
    for o in &owners {
        let _ = esxconf::likely_readings(&o.key_addr);
    }
    let refs: Vec<&esxconf::OwnerLine> = owners.iter().collect();
    if let Ok(edited) = esxconf::set_owner_values(text, &refs, "vmkernel") {
        assert_eq!(esxconf::parse_owners(&edited).len(), owners.len());
    }
    let modules = esxconf::disabled_modules(text);
    let names: Vec<&str> = modules.iter().map(|m| m.module.as_str()).collect();
    let enabled = esxconf::enable_modules(text, &names);
    assert!(esxconf::disabled_modules(&enabled).len() <= modules.len());
});
