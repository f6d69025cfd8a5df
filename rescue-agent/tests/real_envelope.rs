//! The real 7.0U2 envelope (shared/fixtures/real/ve-70u2): the agent decrypts it to the published
//! local.tgz and re-encrypts it the way ESXi wrote it.

mod common;

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

#[test]
fn a_state_tgz_around_the_real_envelope_opens_and_rebuilds_in_place() {
    use rescue_agent::archive::{self, Limits};
    use rescue_agent::state_archive::{Flavor, StateArchive, ESX_CONF};
    let lim = Limits::default();
    let ve = real("local.tgz.ve");
    let tar = common::tar_of(&[
        common::member("local.tgz.ve", tar::EntryType::Regular, &ve, None),
        common::member(
            "encryption.info",
            tar::EntryType::Regular,
            &real("encryption.info"),
            None,
        ),
    ]);
    let opened = StateArchive::open(common::gz(&tar)).unwrap();
    assert_eq!(opened.flavor, Flavor::Encrypted);
    let local_tar = archive::gunzip(&real("local.tgz"), &lim).unwrap();
    let conf = archive::read_member(&local_tar, ESX_CONF, &lim).unwrap();
    assert_eq!(opened.esx_conf.as_bytes(), &conf[..]);

    // Unchanged: ESXi's fixed IV is kept, so the outer tar comes back byte for byte, the real
    // local.tgz.ve in it included.
    let same = opened.with_changes(None, None).unwrap();
    assert!(archive::gunzip(&same, &lim).unwrap() == tar);

    // One esx.conf line changed: the new state.tgz opens to exactly that, and every other
    // member of the real local.tgz is as it was.
    let edited = format!("{}/adv/Misc/HostName = \"rescued\"\n", opened.esx_conf);
    let changed = StateArchive::open(opened.with_changes(Some(&edited), None).unwrap()).unwrap();
    assert_eq!(changed.esx_conf, edited);
    assert_eq!(changed.configstore, opened.configstore);
    let new_tar = archive::gunzip(&changed.with_changes(None, None).unwrap(), &lim).unwrap();
    let new_ve = archive::read_member(&new_tar, "local.tgz.ve", &lim).unwrap();
    let key = envelope::derive_key(
        &envelope::parse_encryption_info(&String::from_utf8(real("encryption.info")).unwrap())
            .unwrap(),
    )
    .unwrap();
    let new_local = envelope::decrypt(&new_ve, &key).unwrap();
    let new_local_tar = archive::gunzip(&new_local, &lim).unwrap();
    for m in archive::list(&local_tar, &lim).unwrap() {
        let got = archive::read_member(&new_local_tar, &m.name, &lim).unwrap();
        if m.name.trim_start_matches("./") == ESX_CONF {
            assert_eq!(got, edited.as_bytes());
        } else {
            assert!(
                got == archive::read_member(&local_tar, &m.name, &lim).unwrap(),
                "{} changed",
                m.name
            );
        }
    }
}
