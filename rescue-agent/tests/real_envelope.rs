//! The real 7.0U2 envelope (shared/fixtures/real/ve-70u2): the agent decrypts it to the published
//! local.tgz and re-encrypts it the way ESXi wrote it.

use std::path::PathBuf;

use rescue_agent::envelope;
use rescue_agent::plan::sha256_hex;

fn real(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/real/ve-70u2")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn real_envelope_decrypts_to_the_published_local_tgz_and_round_trips_byte_exact() {
    let ve = real("local.tgz.ve");
    let info =
        envelope::parse_encryption_info(&String::from_utf8(real("encryption.info")).unwrap())
            .unwrap();
    let key = envelope::derive_key(&info).unwrap();
    let (local, filler) = envelope::decrypt_keeping_filler(&ve, &key).unwrap();
    assert_eq!(filler.pad.len(), 4011, "the sample's pad");
    assert!(
        filler.footer_head.iter().any(|b| *b != 0),
        "ESXi fills the footer block"
    );
    assert_eq!(
        sha256_hex(&local),
        "fe131620351b9fd5fc4aef219bf3211340f3742464c038e1695e7b6667f86952"
    );
    assert_eq!(local, real("local.tgz"));

    let env = envelope::parse_envelope(&ve).unwrap();
    assert_eq!(&env.iv, b"WMV_\0\0\0\0\0\0\0\0", "ESXi's IV scheme");
    let iv = envelope::next_iv(&env.iv);
    assert_eq!(iv, env.iv, "ESXi's fixed IV is kept");
    let again = envelope::encrypt_with_filler(&env, &key, iv, &local, &filler).unwrap();
    assert_eq!(again.len(), ve.len());
    assert_eq!(
        sha256_hex(&again),
        sha256_hex(&ve),
        "same bytes as ESXi wrote"
    );
}

#[test]
fn a_random_iv_is_replaced_by_a_fresh_one() {
    let random = [7u8; 12];
    assert_ne!(envelope::next_iv(&random), random);
}
