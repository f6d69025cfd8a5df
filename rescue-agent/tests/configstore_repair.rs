//! Passthrough and disabled drivers in the ConfigStore (7.0U2+ / 8.x; seed 000): the agent flips
//! exactly the `owner` field of the intended `esx/hardware/pci_devices` rows (and their
//! DesiredUserConfig twin) and re-enables only the intended module; judged by an independent
//! reader (Python's sqlite3) row by row, with GNU tar/gzip reading the archives. The stores start
//! from the real 7.0U2a ConfigStore in shared/fixtures/real.

mod common;

use std::path::Path;

use common::*;
use esxi_fixtures::{
    damage, dump_store, inspect_state_tgz, read_bank_file, BankSpec, ConfigFlavor, ConfigSpec,
    ConfigView, Damage, Fixture, Generation, Media, OwnerSpec, Spec, StoreDump, StorePciRow,
};
use serde_json::Value;

const BOOT: &str = "0000:03:00.0";
const GPU: &str = "0000:00:02.0";

fn store_config(flavor: ConfigFlavor, passthru_line: bool) -> ConfigSpec {
    let mut c = ConfigSpec::new(flavor);
    if passthru_line {
        c.set_owner(OwnerSpec::new("000:003:00.0", "passthru", None));
    }
    c.store.pci_devices = vec![
        StorePciRow::new(BOOT, "OWNER_PASSTHRU", Some("boot-nvme")),
        StorePciRow::new(GPU, "OWNER_PASSTHRU", Some("gpu")),
    ];
    c.store.desired = vec![StorePciRow::new(BOOT, "OWNER_PASSTHRU", None)];
    c
}

fn build(dir: &Path, generation: Generation, media: Media, a: BankSpec, b: BankSpec) -> Fixture {
    let spec = Spec::new(generation, media, 512).with_banks(a, b);
    build_at(dir, "esxi.img", &spec)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn state(f: &Fixture, slot: u32) -> Option<Vec<u8>> {
    read_bank_file(&f.path, f, slot, "state.tgz").unwrap()
}

fn view(bytes: &[u8]) -> ConfigView {
    let dir = tmpdir();
    inspect_state_tgz(bytes, dir.path()).expect("GNU tar/gzip read the state.tgz")
}

fn dump(v: &ConfigView) -> StoreDump {
    let dir = tmpdir();
    dump_store(v.configstore.as_ref().expect("a ConfigStore"), dir.path()).unwrap()
}

/// The column index of `name` in table Config (real schema order).
fn col(name: &str) -> usize {
    [
        "Component",
        "ConfigGroup",
        "Name",
        "Identifier",
        "ModifiedTime",
        "CreationTime",
        "Version",
        "Success",
        "AutoConfValue",
        "UserValue",
        "VitalValue",
        "CachedValue",
        "DesiredValue",
        "Revision",
    ]
    .iter()
    .position(|c| *c == name)
    .unwrap()
}

fn json(v: &Value) -> Value {
    serde_json::from_str(v.as_str().expect("JSON text")).expect("valid JSON")
}

fn row<'a>(d: &'a StoreDump, name: &str, id: &str) -> &'a Vec<Value> {
    d.tables["Config"]
        .iter()
        .find(|r| r[col("Name")] == name && r[col("Identifier")] == id)
        .unwrap_or_else(|| panic!("no {name} row {id}"))
}

/// The store keeps its format, every other table and row, and in the flipped row only `owner`
/// (plus the triggers' ModifiedTime and Revision + 1) changed.
fn assert_only_owner_flipped(before: &StoreDump, after: &StoreDump, flipped: &str) {
    assert_eq!(after.integrity, "ok");
    assert_eq!(
        (
            after.page_size,
            after.user_version,
            after.journal_mode.as_str()
        ),
        (4096, 2, "delete")
    );
    assert_eq!(after.header_journal_bytes, [1, 1], "rollback journal kept");
    assert_eq!(after.schema, before.schema);
    for (table, rows) in &before.tables {
        if table != "Config" && table != "DesiredUserConfig" {
            assert_eq!(&after.tables[table], rows, "table {table} unchanged");
        }
    }
    assert_eq!(after.tables["Config"].len(), before.tables["Config"].len());
    let mut changed = 0;
    for (b, a) in before.tables["Config"].iter().zip(&after.tables["Config"]) {
        if b == a {
            continue;
        }
        changed += 1;
        assert_eq!(
            b[col("Identifier")],
            flipped,
            "only the flipped row changes"
        );
        for (i, (x, y)) in b.iter().zip(a).enumerate() {
            if i == col("UserValue") {
                let (mut x, y) = (json(x), json(y));
                assert_eq!(x["owner"], "OWNER_PASSTHRU");
                assert_eq!(y["owner"], "OWNER_VMKERNEL");
                x["owner"] = y["owner"].clone();
                assert_eq!(x, y, "every other field kept");
            } else if i == col("Revision") {
                assert_eq!(y.as_i64(), x.as_i64().map(|r| r + 1), "Revision + 1");
            } else if i != col("ModifiedTime") {
                assert_eq!(x, y, "column {i} kept");
            }
        }
    }
    assert_eq!(changed, 1, "exactly one Config row changed");
    let desired = |d: &StoreDump| d.tables["DesiredUserConfig"].clone();
    for (b, a) in desired(before).iter().zip(&desired(after)) {
        if b[4] == flipped {
            assert_eq!(json(&a[3])["owner"], "OWNER_VMKERNEL");
            assert_eq!(json(&a[3])["sbdf"], json(&b[3])["sbdf"]);
        } else {
            assert_eq!(a, b);
        }
    }
}

/// local.tgz listings equal except the ConfigStore line.
fn assert_only_store_member_changed(before: &ConfigView, after: &ConfigView) {
    let strip = |v: &ConfigView| -> Vec<String> {
        v.local_listing
            .iter()
            .filter(|l| !l.ends_with("current-store-1"))
            .cloned()
            .collect()
    };
    assert_eq!(strip(after), strip(before));
    assert_eq!(after.state_members, before.state_members);
}

#[test]
fn encrypted_8x_both_banks_boot_row_flipped_gpu_kept() {
    let dir = tmpdir();
    let build_id = "8.0.3-24022510";
    let cfg = store_config(ConfigFlavor::Encrypted, false);
    let f = build(
        dir.path(),
        Generation::Esxi7,
        Media::Disk,
        BankSpec::active(build_id, Some(cfg.clone())),
        BankSpec::alternate_valid(build_id, Some(cfg)),
    );
    let before: Vec<ConfigView> = [5, 6]
        .iter()
        .map(|s| view(&state(&f, *s).unwrap()))
        .collect();

    let scan = run_ok(&["scan", "--controller", BOOT, s(&f.path)]);
    assert!(
        scan.stdout
            .contains("pci_devices 0000:03:00.0 owner OWNER_PASSTHRU label \"boot-nvme\""),
        "{}",
        scan.stdout
    );
    assert!(scan.stdout.contains("-> FLIP"), "{}", scan.stdout);
    let json_scan = run_ok(&["scan", "--json", "--controller", BOOT, s(&f.path)]);
    let v: Value = serde_json::from_str(&json_scan.stdout).unwrap();
    let rows = &v["disks"][0]["esxi"]["banks"][0]["config"]["configstore"]["pci_devices"];
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(rows.as_array().unwrap().iter().any(|r| r["sbdf"] == GPU
        && r["decision"]["flip"] == false
        && r["hardware_label"] == "gpu"));

    let r = run_ok(&["repair", "--controller", BOOT, s(&f.path)]);
    assert!(
        r.stdout
            .contains("ConfigStore pci_devices 0000:03:00.0 owner OWNER_PASSTHRU → OWNER_VMKERNEL"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("keep ConfigStore pci_devices 0000:00:02.0"),
        "{}",
        r.stdout
    );
    for (i, slot) in [5, 6].iter().enumerate() {
        let after = view(&state(&f, *slot).unwrap());
        assert!(after.encrypted);
        assert_eq!(after.esx_conf, before[i].esx_conf, "esx.conf untouched");
        assert_only_store_member_changed(&before[i], &after);
        let (b, a) = (dump(&before[i]), dump(&after));
        assert_only_owner_flipped(&b, &a, BOOT);
        let gpu = row(&a, "pci_devices", GPU);
        assert_eq!(json(&gpu[col("UserValue")])["owner"], "OWNER_PASSTHRU");
    }
    let again = run_ok(&["repair", "--controller", BOOT, s(&f.path)]);
    assert!(again.stdout.contains("healthy"), "{}", again.stdout);
    run_ok(&["undo", s(&f.path)]);
    assert_eq!(
        state(&f, 5).map(|s| view(&s).local_listing),
        Some(before[0].local_listing.clone())
    );
}

#[test]
fn plain_702_one_bank_with_an_esx_conf_line_for_the_same_device() {
    let dir = tmpdir();
    let build_id = "7.0.2-17867351";
    let f = build(
        dir.path(),
        Generation::Esxi7,
        Media::Disk,
        BankSpec::active(
            build_id,
            Some(store_config(ConfigFlavor::ConfigStore, true)),
        ),
        BankSpec::alternate_valid(build_id, Some(ConfigSpec::new(ConfigFlavor::ConfigStore))),
    );
    let before5 = view(&state(&f, 5).unwrap());
    let before6 = state(&f, 6).unwrap();
    let r = run_ok(&["repair", "--controller", BOOT, s(&f.path)]);
    assert!(
        r.stdout
            .contains("/device/000:003:00.0/owner passthru → vmkernel"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("ConfigStore pci_devices 0000:03:00.0"),
        "{}",
        r.stdout
    );
    let after5 = view(&state(&f, 5).unwrap());
    assert!(!after5.encrypted);
    assert!(after5
        .esx_conf
        .contains("/device/000:003:00.0/owner = \"vmkernel\""));
    assert_only_owner_flipped(&dump(&before5), &dump(&after5), BOOT);
    assert_eq!(
        state(&f, 6).unwrap(),
        before6,
        "the other bank is byte-identical"
    );
}

#[test]
fn policy_none_and_lists_decide_for_store_rows_too() {
    let dir = tmpdir();
    let build_id = "8.0.3-24022510";
    let f = build(
        dir.path(),
        Generation::Esxi7,
        Media::Disk,
        BankSpec::active(build_id, Some(store_config(ConfigFlavor::Encrypted, false))),
        BankSpec::alternate_empty(build_id),
    );
    let untouched = hash(&f.path);
    let r = run_ok(&[
        "repair",
        "--passthru",
        "none",
        "--controller",
        BOOT,
        s(&f.path),
    ]);
    assert!(r.stdout.contains("nothing"), "{}", r.stdout);
    assert_eq!(hash(&f.path), untouched);
    // A list naming only the GPU flips the GPU row and keeps the boot row.
    let before = view(&state(&f, 5).unwrap());
    run_ok(&["repair", "--passthru", GPU, s(&f.path)]);
    let after = dump(&view(&state(&f, 5).unwrap()));
    assert_only_owner_flipped(&dump(&before), &after, GPU);
}

#[test]
fn disabled_vmkusb_on_a_usb_install_is_reported_and_enabled_only_when_asked() {
    let dir = tmpdir();
    let build_id = "8.0.3-24022510";
    let mut cfg = ConfigSpec::new(ConfigFlavor::Encrypted);
    cfg.store.disabled_modules = vec!["vmkusb".into(), "lsi_mr3".into()];
    let f = build(
        dir.path(),
        Generation::Esxi7,
        Media::Usb,
        BankSpec::active(build_id, Some(cfg)),
        BankSpec::alternate_empty(build_id),
    );
    let before = view(&state(&f, 5).unwrap());
    let scan = run_ok(&["scan", s(&f.path)]);
    assert!(
        scan.stdout.contains("driver vmkusb disabled"),
        "{}",
        scan.stdout
    );
    assert!(
        scan.stdout.contains("driver lsi_mr3 disabled"),
        "{}",
        scan.stdout
    );
    // An image file does not say which driver its controller needs: nothing is guessed.
    let untouched = hash(&f.path);
    let r = run_ok(&["repair", s(&f.path)]);
    assert!(r.stdout.contains("--drivers vmkusb"), "{}", r.stdout);
    assert_eq!(hash(&f.path), untouched);
    run_ok(&["repair", "--drivers", "none", s(&f.path)]);
    assert_eq!(hash(&f.path), untouched);

    let r = run_ok(&["repair", "--drivers", "vmkusb", s(&f.path)]);
    assert!(
        r.stdout.contains("driver vmkusb disabled → enabled"),
        "{}",
        r.stdout
    );
    let (b, a) = (dump(&before), dump(&view(&state(&f, 5).unwrap())));
    assert_eq!(a.integrity, "ok");
    let enabled = |d: &StoreDump, m: &str| {
        json(&row(d, "module_settings", m)[col("UserValue")])["enabled"].clone()
    };
    assert_eq!(enabled(&b, "vmkusb"), false);
    assert_eq!(enabled(&a, "vmkusb"), true);
    assert_eq!(
        enabled(&a, "lsi_mr3"),
        false,
        "not the boot driver: left disabled"
    );
    let changed = b.tables["Config"]
        .iter()
        .zip(&a.tables["Config"])
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(changed, 1);
}

#[test]
fn disabled_module_line_in_a_plain_esx_conf_is_enabled_in_place() {
    let dir = tmpdir();
    let build_id = "6.7.0-8169922";
    let mut cfg = ConfigSpec::new(ConfigFlavor::Plain);
    cfg.store.disabled_modules = vec!["vmkusb".into()];
    let f = build(
        dir.path(),
        Generation::Esxi6,
        Media::Usb,
        BankSpec::active(build_id, Some(cfg)),
        BankSpec::alternate_empty(build_id),
    );
    let before = view(&state(&f, 5).unwrap());
    let r = run_ok(&["repair", "--drivers", "vmkusb", s(&f.path)]);
    assert!(r.stdout.contains("esx.conf line"), "{}", r.stdout);
    let after = view(&state(&f, 5).unwrap());
    assert_eq!(
        after.esx_conf,
        before.esx_conf.replace(
            "/vmkernel/module/vmkusb/enabled = \"false\"",
            "/vmkernel/module/vmkusb/enabled = \"true\""
        )
    );
    assert_ne!(after.esx_conf, before.esx_conf);
}

#[test]
fn tpm_sealed_bank_does_not_stop_the_gpt_repair_and_explicit_flips_are_refused() {
    let dir = tmpdir();
    let build_id = "8.0.3-24022510";
    let f = build(
        dir.path(),
        Generation::Esxi7,
        Media::Disk,
        BankSpec::active(
            build_id,
            Some(store_config(ConfigFlavor::EncryptedTpm, true)),
        ),
        BankSpec::alternate_empty(build_id),
    );
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let damaged = hash(&f.path);
    let r = run(&["repair", "--passthru", BOOT, s(&f.path)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("encryptionRecoveryKey="), "{}", r.stderr);
    assert!(r.stderr.contains("Shift+O"), "{}", r.stderr);
    assert_eq!(hash(&f.path), damaged, "refused: nothing written");

    let sealed_state = state(&f, 5).unwrap();
    let r = run_ok(&["repair", "--controller", BOOT, s(&f.path)]);
    assert!(r.stdout.contains("sealed by the TPM"), "{}", r.stdout);
    assert!(r.stdout.contains("encryptionRecoveryKey="), "{}", r.stdout);
    assert!(r.stdout.contains("primary GPT"), "{}", r.stdout);
    let scan = run_ok(&["scan", "--json", s(&f.path)]);
    let v: Value = serde_json::from_str(&scan.stdout).unwrap();
    let problems = v["disks"][0]["problems"].as_array().unwrap();
    assert!(
        problems.iter().all(|p| p["kind"] == "config_sealed"),
        "only the sealed bank is left: {problems:?}"
    );
    assert_eq!(
        state(&f, 5).unwrap(),
        sealed_state,
        "the sealed bank is left as it is"
    );
}
