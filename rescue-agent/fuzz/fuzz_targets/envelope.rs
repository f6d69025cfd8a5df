//! The 7.0U2+ envelope: encryption.info text and the .ve structure, decrypted with a fixed key
//! (the tag check fails on mutated input; the parse before it must never panic).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::envelope;

fuzz_target!(|data: &[u8]| {
    let _ = envelope::parse_encryption_info(&String::from_utf8_lossy(data));
    if let Ok(env) = envelope::parse_envelope(data) {
        let _ = envelope::next_iv(&env.iv);
    }
    let _ = envelope::decrypt_keeping_filler(data, &[7u8; 32]);
});
