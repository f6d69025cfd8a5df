//! Passthrough repair inside the bootbanks (seeds 000, 001, 002): only the intended esx.conf
//! lines change, each bank on its own, GNU tar/gzip and fsck.vfat agree, undo is byte-exact.

mod common;

use std::path::Path;

use common::*;
use esxi_fixtures::{
    inspect_state_tgz, read_bank_file, BankSpec, ConfigFlavor, ConfigSpec, ConfigView, Fixture,
    Generation, Media, OwnerSpec, Spec,
};

fn owner(addr: &str, value: &str, vmkname: Option<&str>) -> OwnerSpec {
    OwnerSpec {
        key_addr: addr.into(),
        value: value.into(),
        vmkname: vmkname.map(str::to_string),
    }
}

fn config(flavor: ConfigFlavor, owners: Vec<OwnerSpec>) -> ConfigSpec {
    ConfigSpec {
        flavor,
        owners,
        hostname: "esx01".into(),
        store: Default::default(),
    }
}

fn state(f: &Fixture, slot: u32) -> Vec<u8> {
    read_bank_file(&f.path, f, slot, "state.tgz")
        .unwrap()
        .unwrap_or_else(|| panic!("bank {slot} has no state.tgz"))
}

fn view(bytes: &[u8]) -> ConfigView {
    let dir = tmpdir();
    inspect_state_tgz(bytes, dir.path()).expect("GNU tar/gzip read the state.tgz")
}

/// Lines of `after` that differ from `before` (same line count required).
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(b.len(), a.len(), "esx.conf gained or lost lines");
    b.iter()
        .zip(&a)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

fn banks_fsck_clean(f: &Fixture) {
    let ss = u64::from(f.spec.sector_size);
    for p in f.partitions.iter().filter(|p| p.slot == 5 || p.slot == 6) {
        fsck_vfat_clean(
            &f.path,
            p.first_lba * ss,
            (p.last_lba - p.first_lba + 1) * ss,
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn seed_001_raid_controller_passthru_in_both_banks() {
    let dir = tmpdir();
    let cfg = config(
        ConfigFlavor::Plain,
        vec![
            owner("000:022:00.0", "passthru", Some("vmhba2")),
            owner("000:31.2", "vmkernel", Some("vmhba0")),
        ],
    );
    let spec = Spec::new(Generation::Esxi5, Media::Disk, 512).with_banks(
        BankSpec::active("5.5.0-1331820", Some(cfg.clone())),
        BankSpec::alternate_valid("5.5.0-1331820", Some(cfg)),
    );
    let f = build_at(dir.path(), "seed001.img", &spec);
    let before5 = state(&f, 5);
    let before6 = state(&f, 6);
    let img = s(&f.path);

    let scan = run_ok(&["scan", "--controller", "0000:16:00.0", img]);
    assert!(
        scan.stdout
            .contains("/device/000:022:00.0/owner = passthru [0000:16:00.0]"),
        "{}",
        scan.stdout
    );
    assert!(scan.stdout.contains("FLIP"), "{}", scan.stdout);

    let plan_before = hash(&f.path);
    let plan = run_ok(&["plan", "--controller", "0000:16:00.0", img]);
    assert!(
        plan.stdout
            .contains("bootbank slot 5 (active): /device/000:022:00.0/owner passthru → vmkernel"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("bootbank slot 6: /device/000:022:00.0/owner passthru → vmkernel"),
        "{}",
        plan.stdout
    );
    assert_eq!(hash(&f.path), plan_before, "plan wrote");

    let r = run_ok(&["repair", "--controller", "0000:16:00.0", img]);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    for (slot, before) in [(5, &before5), (6, &before6)] {
        let (old, new) = (view(before), view(&state(&f, slot)));
        assert_eq!(new.state_members, old.state_members);
        assert_eq!(new.state_members, vec!["local.tgz".to_string()]);
        let diff = changed_lines(&old.esx_conf, &new.esx_conf);
        assert_eq!(
            diff,
            vec![(
                "/device/000:022:00.0/owner = \"passthru\"".to_string(),
                "/device/000:022:00.0/owner = \"vmkernel\"".to_string()
            )],
            "bank {slot}"
        );
        // Every other member of local.tgz keeps its metadata; esx.conf keeps its size (same length word).
        assert_eq!(new.local_listing, old.local_listing, "bank {slot}");
    }
    banks_fsck_clean(&f);
    let again = run_ok(&["repair", "--controller", "0000:16:00.0", img]);
    assert!(again.stdout.contains("healthy"), "{}", again.stdout);

    let u = run_ok(&["undo", img]);
    assert!(
        u.stdout.contains("2 bootbank files restored"),
        "{}",
        u.stdout
    );
    assert_eq!(
        state(&f, 5),
        before5,
        "undo: bank 5 state.tgz not byte-exact"
    );
    assert_eq!(
        state(&f, 6),
        before6,
        "undo: bank 6 state.tgz not byte-exact"
    );
    banks_fsck_clean(&f);
}

#[test]
fn seed_002_sata_passthru_in_active_bank_only() {
    let dir = tmpdir();
    let spec = Spec::new(Generation::Esxi6, Media::Disk, 512).with_banks(
        BankSpec::active(
            "6.5.0-4564106",
            Some(config(
                ConfigFlavor::Plain,
                vec![owner("000:31.2", "passthru", Some("vmhba0"))],
            )),
        ),
        BankSpec::alternate_valid(
            "6.0.0-3620759",
            Some(config(
                ConfigFlavor::Plain,
                vec![owner("000:31.2", "vmkernel", Some("vmhba0"))],
            )),
        ),
    );
    let f = build_at(dir.path(), "seed002.img", &spec);
    let before5 = state(&f, 5);
    let before6 = state(&f, 6);
    let img = s(&f.path);
    // 000:31.2 is ESXi's decimal BBB:DD.F form: bus 0, device 31 (0x1f), function 2.
    let r = run_ok(&["repair", "--controller", "0000:00:1f.2", img]);
    assert!(
        r.stdout
            .contains("bootbank slot 5 (active): /device/000:31.2/owner passthru → vmkernel"),
        "{}",
        r.stdout
    );
    assert_eq!(state(&f, 6), before6, "the alternate bank must not change");
    let diff = changed_lines(&view(&before5).esx_conf, &view(&state(&f, 5)).esx_conf);
    assert_eq!(diff.len(), 1);
    assert!(diff[0].1.contains("\"vmkernel\""));
    banks_fsck_clean(&f);
}

#[test]
fn seed_000_encrypted_nvme_passthru_gpu_kept() {
    let dir = tmpdir();
    let owners = vec![
        owner("000:001:00.0", "passthru", None), // the old GPU's address, now a GPU again
        owner("000:003:00.0", "passthru", Some("vmhba1")), // the boot NVMe inherited this one
    ];
    let spec = Spec::new(Generation::Esxi7, Media::Disk, 512).with_banks(
        BankSpec::active(
            "8.0.3-24022510",
            Some(config(ConfigFlavor::Encrypted, owners.clone())),
        ),
        BankSpec::alternate_valid(
            "8.0.2-22380479",
            Some(config(ConfigFlavor::Encrypted, owners)),
        ),
    );
    let f = build_at(dir.path(), "seed000.img", &spec);
    let before5 = state(&f, 5);
    let img = s(&f.path);
    let scan = run_ok(&["scan", "--controller", "0000:03:00.0", img]);
    assert!(scan.stdout.contains("encrypted"), "{}", scan.stdout);
    let r = run_ok(&["repair", "--controller", "0000:03:00.0", img]);
    assert!(
        r.stdout
            .contains("keep /device/000:001:00.0/owner = passthru"),
        "{}",
        r.stdout
    );
    for slot in [5, 6] {
        let v = view(&state(&f, slot));
        assert!(v.encrypted, "bank {slot} lost its encryption");
        assert_eq!(
            v.state_members,
            vec!["local.tgz.ve".to_string(), "encryption.info".to_string()]
        );
        assert!(
            v.esx_conf
                .contains("/device/000:003:00.0/owner = \"vmkernel\""),
            "bank {slot}"
        );
        assert!(
            v.esx_conf
                .contains("/device/000:001:00.0/owner = \"passthru\""),
            "bank {slot}: GPU passthrough must stay"
        );
    }
    // encryption.info is carried over unchanged (same key): compare through GNU tar.
    let info = |b: &[u8]| {
        let d = tmpdir();
        std::fs::write(d.path().join("s.tgz"), b).unwrap();
        let out = std::process::Command::new("tar")
            .args(["-xzOf", "s.tgz", "encryption.info"])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(info(&state(&f, 5)), info(&before5));
    banks_fsck_clean(&f);
    run_ok(&["undo", img]);
    assert_eq!(state(&f, 5), before5);
}

#[test]
fn tpm_sealed_configuration_explicit_flip_is_refused_with_the_recovery_route() {
    let dir = tmpdir();
    let f = esxi_with_owners(
        dir.path(),
        Generation::Esxi7,
        ConfigFlavor::EncryptedTpm,
        "8.0.3-24022510",
        &[("000:003:00.0", "passthru")],
    );
    let before = hash(&f.path);
    // An explicit request the rescue cannot honour offline is refused; the default policy goes
    // on and says what it left (tests/configstore_repair.rs).
    let r = run(&["repair", "--passthru", "0000:03:00.0", s(&f.path)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("encryptionRecoveryKey="), "{}", r.stderr);
    assert!(r.stderr.contains("Shift+O"), "{}", r.stderr);
    assert_eq!(hash(&f.path), before);
}

#[test]
fn configstore_without_pci_rows_stays_byte_identical() {
    let dir = tmpdir();
    let f = esxi_with_owners(
        dir.path(),
        Generation::Esxi7,
        ConfigFlavor::ConfigStore,
        "7.0.1-16850804",
        &[("000:022:00.0", "passthru")],
    );
    let before = view(&state(&f, 5));
    let scan = run_ok(&["scan", "--controller", "0000:16:00.0", s(&f.path)]);
    assert!(
        scan.stdout.contains("ConfigStore: 0 pci_devices row(s)"),
        "{}",
        scan.stdout
    );
    run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    let after = view(&state(&f, 5));
    let store = |v: &ConfigView| {
        v.local_listing
            .iter()
            .find(|l| l.contains("current-store-1"))
            .cloned()
            .expect("the ConfigStore member")
    };
    assert_eq!(store(&after), store(&before));
    assert_eq!(changed_lines(&before.esx_conf, &after.esx_conf).len(), 1);
}

#[test]
fn every_address_form_matches_its_controller() {
    // The RAID controller at 0000:16:00.0 (bus 22 decimal) as each esx.conf form writes it.
    for form in ["000:022:00.0", "022:00.0", "0000:16:00.0", "000:022:00:0"] {
        let dir = tmpdir();
        let f = esxi_with_owners(
            dir.path(),
            Generation::Esxi5,
            ConfigFlavor::Plain,
            "5.5.0-1331820",
            &[(form, "passthru")],
        );
        let r = run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
        assert!(
            r.stdout
                .contains(&format!("/device/{form}/owner passthru → vmkernel")),
            "{form}: {}",
            r.stdout
        );
        let v = view(&state(&f, 5));
        assert!(
            v.esx_conf
                .contains(&format!("/device/{form}/owner = \"vmkernel\"")),
            "{form}"
        );
    }
}

#[test]
fn policies_none_all_and_list() {
    let dir = tmpdir();
    let owners = vec![
        owner("000:001:00.0", "passthru", None),
        owner("000:022:00.0", "passthru", None),
    ];
    let spec = Spec::new(Generation::Esxi6, Media::Disk, 512).with_banks(
        BankSpec::active("6.7.0-8169922", Some(config(ConfigFlavor::Plain, owners))),
        BankSpec::alternate_empty("6.7.0-8169922"),
    );
    let base = build_at(dir.path(), "p.img", &spec);
    let img = dir.path().join("work.img");

    copy_image(&base.path, &img);
    let before = hash(&img);
    let r = run_ok(&[
        "repair",
        "--passthru",
        "none",
        "--controller",
        "0000:16:00.0",
        s(&img),
    ]);
    assert!(r.stdout.contains("healthy"), "{}", r.stdout);
    assert_eq!(hash(&img), before, "--passthru none wrote");

    copy_image(&base.path, &img);
    run_ok(&["repair", "--passthru", "all", s(&img)]);
    let f = esxi_fixtures::Fixture {
        path: img.clone(),
        ..base.clone()
    };
    let v = view(&state(&f, 5));
    assert!(
        !v.esx_conf.contains("\"passthru\""),
        "--passthru all left passthru:\n{}",
        v.esx_conf
    );

    copy_image(&base.path, &img);
    run_ok(&["repair", "--passthru", "0000:01:00.0", s(&img)]);
    let v = view(&state(&f, 5));
    assert!(v
        .esx_conf
        .contains("/device/000:001:00.0/owner = \"vmkernel\""));
    assert!(v
        .esx_conf
        .contains("/device/000:022:00.0/owner = \"passthru\""));

    let bad = run(&["plan", "--passthru", "0000:zz:00.0", s(&img)]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("0000:zz:00.0"), "{}", bad.stderr);
}

#[test]
fn undo_refuses_when_esxi_saved_its_configuration_since() {
    let dir = tmpdir();
    let f = esxi5_raid_passthru(dir.path());
    run_ok(&["repair", "--controller", "0000:16:00.0", s(&f.path)]);
    // ESXi's hourly backup rewrites state.tgz.
    let bank = f.partitions.iter().find(|p| p.slot == 5).unwrap();
    let newer = dir.path().join("state.tgz");
    std::fs::write(&newer, b"a newer state.tgz written by ESXi").unwrap();
    let st = std::process::Command::new("mcopy")
        .args(["-o", "-i"])
        .arg(format!("{}@@{}", s(&f.path), bank.first_lba * 512))
        .arg(&newer)
        .arg("::state.tgz")
        .status()
        .unwrap();
    assert!(st.success());
    let before = hash(&f.path);
    let r = run(&["undo", s(&f.path)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("changed since the repair"),
        "{}",
        r.stderr
    );
    assert_eq!(hash(&f.path), before);
}
