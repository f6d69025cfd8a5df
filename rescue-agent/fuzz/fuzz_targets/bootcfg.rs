//! boot.cfg text and the active-bank rule.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::bootbank::{self, BootCfg};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    let (a, b) = text.split_at(mid);
    let cfgs = [BootCfg::parse(a), BootCfg::parse(b)];
    let refs: Vec<Option<&BootCfg>> = cfgs.iter().map(Option::as_ref).collect();
    let _ = bootbank::active_bank(&refs);
});
