//! Owner lines from real esx.conf files (shared/fixtures/real/esxconf): a passed-through PCI
//! bridge in front of the ESXi controller (ESX 4.0 sample), and a user's hex-form line with a
//! decimal device number appended to a real 7.0U2 esx.conf.

mod common;

use std::path::PathBuf;

use common::*;
use esxi_fixtures::{BankSpec, ConfigFlavor, ConfigSpec, Generation, Media, OwnerSpec, Spec};
use rescue_agent::esxconf::{self, PciAddr};
use rescue_agent::passthru_policy::{decide, PciFunction, Policy};

fn real(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/real/esxconf")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pa(s: &str) -> PciAddr {
    PciAddr::parse_linux(s).unwrap()
}

#[test]
fn passed_through_bridge_in_front_of_the_esxi_controller_flips_under_storage() {
    let owners = esxconf::parse_owners(&real("esx40-vmhelp-sample1.conf"));
    // The Adaptec behind bridge 0000:00:1e.0 (000:30.0) carries the ESXi disk.
    let hba = PciFunction {
        addr: pa("0000:03:00.0"),
        class: Some(0x010000),
        carries_esxi_disk: true,
        description: None,
        upstream: vec![pa("0000:00:1e.0")],
        driver: None,
    };
    let verdict = |key: &str| {
        let o = owners.iter().find(|o| o.key_addr == key).unwrap();
        decide(&Policy::Storage, o, std::slice::from_ref(&hba))
    };
    let bridge = verdict("000:30.0");
    assert!(bridge.flip, "{}", bridge.reason);
    assert!(
        bridge.reason.contains("bridge upstream of 0000:03:00.0"),
        "{}",
        bridge.reason
    );
    assert!(
        !verdict("000:27.0").flip,
        "the audio device keeps its passthrough"
    );
    assert!(
        !verdict("001:00.0").flip,
        "a bridge not in front of the ESXi disk is kept"
    );
}

#[test]
fn a_users_decimal_device_in_hex_form_is_a_reported_problem_and_flips_only_under_all() {
    let text = real("esx70u2-user-appends.conf");
    let owners = esxconf::parse_owners(&text);
    let odd = owners
        .iter()
        .find(|o| o.key_addr == "0000:00:31.2")
        .unwrap();
    assert_eq!(odd.addr, None);
    assert_eq!(
        esxconf::likely_readings(&odd.key_addr),
        vec![pa("0000:00:1f.2")]
    );

    // The same line on a disk: reported by scan, kept by default, flipped by --passthru all.
    let dir = tmpdir();
    let mut cfg = ConfigSpec::new(ConfigFlavor::Plain);
    cfg.set_owner(OwnerSpec::new("0000:00:31.2", "passthru", None));
    let spec = Spec::new(Generation::Esxi6, Media::Disk, 512).with_banks(
        BankSpec::active("6.7.0-8169922", Some(cfg)),
        BankSpec::alternate_empty("6.7.0-8169922"),
    );
    let f = build_at(dir.path(), "esxi.img", &spec);
    let img = f.path.to_str().unwrap();
    let scan = run_ok(&["scan", img]);
    assert!(
        scan.stdout
            .contains("not a valid PCI address (likely 0000:00:1f.2)"),
        "{}",
        scan.stdout
    );
    let untouched = hash(&f.path);
    let r = run_ok(&["repair", img]);
    assert!(r.stdout.contains("--passthru all"), "{}", r.stdout);
    assert_eq!(hash(&f.path), untouched);
    let r = run_ok(&["repair", "--passthru", "all", img]);
    assert!(
        r.stdout
            .contains("/device/0000:00:31.2/owner passthru → vmkernel"),
        "{}",
        r.stdout
    );
    let clean = run_ok(&["scan", img]);
    assert!(
        clean.stdout.contains("no problems found"),
        "{}",
        clean.stdout
    );
}
