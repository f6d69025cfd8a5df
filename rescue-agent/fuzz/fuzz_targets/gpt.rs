//! GPT header and entry array parsing: any 512/4096-byte sector and any array bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::gpt::{EntryArray, Header};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let total = u64::from_le_bytes(data[..8].try_into().unwrap());
    let rest = &data[8..];
    if let Ok(h) = Header::parse(rest, 1, total) {
        let _ = (h.num_entries(), h.entry_size(), h.first_usable());
    }
    let entry_size = 128;
    let count = (rest.len() / 128).min(256) as u32;
    let array = EntryArray::parse(rest, entry_size, count);
    for (_, e) in array.used() {
        let _ = (e.sectors(), e.name(), e.first_lba(), e.last_lba());
    }
});
