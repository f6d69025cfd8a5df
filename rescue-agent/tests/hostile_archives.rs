//! Hostile or broken state.tgz files in a bootbank: refused with one line, nothing written.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use esxi_fixtures::Fixture;
use flate2::write::GzEncoder;
use flate2::Compression;

const CONF: &[u8] = b"/adv/Misc/HostName = \"esx01\"\n/device/000:022:00.0/owner = \"passthru\"\n";

fn esxi_with_passthru(dir: &Path) -> Fixture {
    esxi5_raid_passthru(dir)
}

fn refused(case: &str, state: Vec<u8>, expect_in_message: &str) {
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(&f, dir.path(), &state);
    let before = hash(&f.path);
    let r = run(&[
        "repair",
        "--controller",
        "0000:16:00.0",
        f.path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{case}: {}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "{case}: not one line: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .to_lowercase()
            .contains(&expect_in_message.to_lowercase()),
        "{case}: {}",
        r.stderr
    );
    assert_eq!(hash(&f.path), before, "{case}: the image changed");
}

#[test]
fn sane_handmade_archive_is_repaired() {
    // The control: the same construction without anything hostile is accepted and repaired.
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(
        &f,
        dir.path(),
        &state_with_local(&[member(
            "etc/vmware/esx.conf",
            tar::EntryType::Regular,
            CONF,
            None,
        )]),
    );
    run_ok(&[
        "repair",
        "--controller",
        "0000:16:00.0",
        f.path.to_str().unwrap(),
    ]);
}

#[test]
fn traversal_member_is_refused() {
    refused(
        "traversal",
        state_with_local(&[
            member("etc/vmware/esx.conf", tar::EntryType::Regular, CONF, None),
            member(
                "../etc/passwd",
                tar::EntryType::Regular,
                b"root::0:0::/:/bin/sh\n",
                None,
            ),
        ]),
        "..",
    );
}

#[test]
fn absolute_member_is_refused() {
    refused(
        "absolute",
        state_with_local(&[member(
            "/etc/vmware/esx.conf",
            tar::EntryType::Regular,
            CONF,
            None,
        )]),
        "/etc/vmware/esx.conf",
    );
}

#[test]
fn symlink_member_is_refused() {
    refused(
        "symlink",
        state_with_local(&[
            member("etc/vmware/esx.conf", tar::EntryType::Regular, CONF, None),
            member(
                "etc/shadow",
                tar::EntryType::Symlink,
                b"",
                Some("/etc/passwd"),
            ),
        ]),
        "etc/shadow",
    );
}

#[test]
fn gzip_bomb_is_refused() {
    // 1.5 GiB of zeros as local.tgz's tar: over the 1 GiB decompression limit.
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    enc.write_all(&member(
        "etc/vmware/esx.conf",
        tar::EntryType::Regular,
        CONF,
        None,
    ))
    .unwrap();
    for _ in 0..1536 {
        enc.write_all(&zeros).unwrap();
    }
    let local = enc.finish().unwrap();
    let state = gz(&tar_of(&[member(
        "local.tgz",
        tar::EntryType::Regular,
        &local,
        None,
    )]));
    refused("bomb", state, "limit");
}

#[test]
fn truncated_gzip_is_refused() {
    let good = state_with_local(&[member(
        "etc/vmware/esx.conf",
        tar::EntryType::Regular,
        CONF,
        None,
    )]);
    refused("truncated", good[..good.len() / 2].to_vec(), "state.tgz");
}

#[test]
fn bad_gzip_crc_is_refused() {
    let mut bad = state_with_local(&[member(
        "etc/vmware/esx.conf",
        tar::EntryType::Regular,
        CONF,
        None,
    )]);
    let n = bad.len();
    bad[n - 8] ^= 0xFF; // CRC32 of the trailer
    refused("bad crc", bad, "crc");
}

#[test]
fn nested_gzip_within_the_old_limits_is_refused_in_bounded_memory() {
    // 400 KB of state.tgz that inflates to a 200 MiB inner tar: past the limits sized for ESXi.
    let big = vec![0u8; 200 << 20];
    let state = state_with_local(&[
        member("etc/vmware/esx.conf", tar::EntryType::Regular, CONF, None),
        member("var/big", tar::EntryType::Regular, &big, None),
    ]);
    drop(big);
    assert!(state.len() < 1 << 20, "{}", state.len());
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(&f, dir.path(), &state);
    let before = hash(&f.path);
    let r = run_capped(
        768,
        &[
            "repair",
            "--controller",
            "0000:16:00.0",
            f.path.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("limit"), "{}", r.stderr);
    assert_eq!(hash(&f.path), before);
}

#[test]
fn an_esx_conf_past_16_mib_is_refused() {
    let mut conf = CONF.to_vec();
    conf.resize(17 << 20, b'#');
    refused(
        "huge esx.conf",
        state_with_local(&[member(
            "etc/vmware/esx.conf",
            tar::EntryType::Regular,
            &conf,
            None,
        )]),
        "limit",
    );
}

#[test]
fn a_member_past_16_mib_beside_esx_conf_leaves_the_configuration_readable() {
    // The esx.conf limit is esx.conf's own: a big dvsdata.db beside it (the 64 MiB benchmark
    // case) once made the whole configuration unreadable.
    let big = vec![0x5Au8; 20 << 20];
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(
        &f,
        dir.path(),
        &state_with_local(&[
            member("etc/vmware/esx.conf", tar::EntryType::Regular, CONF, None),
            member("etc/vmware/dvsdata.db", tar::EntryType::Regular, &big, None),
        ]),
    );
    let r = run_ok(&[
        "scan",
        "--controller",
        "0000:16:00.0",
        f.path.to_str().unwrap(),
    ]);
    assert!(r.stdout.contains("1 passthru owner(s)"), "{}", r.stdout);
}

#[test]
fn a_hundred_thousand_owner_lines_parse_in_one_pass() {
    // Quadratic vmkname lookups once stalled the probe on this (40 k lines took 3.4 s).
    let mut conf = CONF.to_vec();
    for i in 0..100_000u32 {
        conf.extend_from_slice(
            format!(
                "/device/000:{:03}:{:02}.{}/owner = \"vmkernel\"\n",
                i % 256,
                (i / 256) % 32,
                (i / 8192) % 8
            )
            .as_bytes(),
        );
    }
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(
        &f,
        dir.path(),
        &state_with_local(&[member(
            "etc/vmware/esx.conf",
            tar::EntryType::Regular,
            &conf,
            None,
        )]),
    );
    let r = run_ok(&[
        "scan",
        "--controller",
        "0000:16:00.0",
        f.path.to_str().unwrap(),
    ]);
    assert!(r.stdout.contains("1 passthru owner(s)"), "{}", r.stdout);
}

#[test]
fn a_pax_header_on_local_tgz_leaves_the_configuration_readable_and_its_edit_refused() {
    // GNU tar --format=pax gives every member an 'x' header: a state.tgz repacked by hand.
    let local = gz(&tar_of(&[member(
        "etc/vmware/esx.conf",
        tar::EntryType::Regular,
        CONF,
        None,
    )]));
    let state = gz(&tar_of(&[
        member(
            "PaxHeaders/local.tgz",
            tar::EntryType::XHeader,
            b"20 mtime=1600000000\n",
            None,
        ),
        member("local.tgz", tar::EntryType::Regular, &local, None),
    ]));
    let dir = tmpdir();
    let f = esxi_with_passthru(dir.path());
    put_state(&f, dir.path(), &state);
    let path = f.path.to_str().unwrap();
    let scan = run_ok(&["scan", "--controller", "0000:16:00.0", path]);
    assert!(
        scan.stdout.contains("1 passthru owner(s)"),
        "{}",
        scan.stdout
    );
    let before = hash(&f.path);
    let r = run(&["repair", "--controller", "0000:16:00.0", path]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("PAX"), "{}", r.stderr);
    assert_eq!(hash(&f.path), before);
}
