//! Assess and plan, table-driven: each disk is read once, the image is then deleted, and every
//! row assesses and plans the same findings under its own policy. A plan that read the disk
//! would fail here; so would an assessment that depended on an earlier one.
//!
//! The disks are built to docs/esxi-format.md's layouts (the 7.x stores start from the real
//! 7.0U2a ConfigStore in shared/fixtures/real).

mod common;

use std::path::Path;

use common::*;
use esxi_fixtures::{
    damage, BankSpec, ConfigFlavor, ConfigSpec, Damage, Generation, Media, OwnerSpec, Spec,
    StorePciRow,
};
use rescue_agent::assess::assess;
use rescue_agent::bank_config::PolicyContext;
use rescue_agent::blockdev::{Access, BlockDevice};
use rescue_agent::driver_map::DriverPolicy;
use rescue_agent::esxconf::PciAddr;
use rescue_agent::passthru_policy::{PciFunction, Policy};
use rescue_agent::pipeline::{is_refusal, plan_repair};
use rescue_agent::probe::{self, Probe};

const RAID: &str = "0000:16:00.0";
const NVME: &str = "0000:03:00.0";
const GPU: &str = "0000:00:02.0";

/// The machine: the RAID and NVMe controllers carry ESXi disks, the GPU does not; each with
/// the Linux driver bound to it (what `--drivers boot` maps to ESXi modules).
fn functions() -> Vec<PciFunction> {
    let f = |addr: &str, class: u32, carries: bool, driver: &str| PciFunction {
        addr: PciAddr::parse_linux(addr).unwrap(),
        class: Some(class),
        carries_esxi_disk: carries,
        description: None,
        upstream: Vec::new(),
        driver: Some(driver.to_string()),
    };
    vec![
        f(RAID, 0x010400, true, "megaraid_sas"),
        f(NVME, 0x010802, true, "nvme"),
        f(GPU, 0x030000, false, "i915"),
    ]
}

fn ctx(policy: &str, drivers: &str) -> PolicyContext {
    PolicyContext {
        policy: Policy::parse(policy).unwrap(),
        functions: functions(),
        drivers: DriverPolicy::parse(drivers).unwrap(),
    }
}

/// Read once, then delete the image: what follows can only use the findings.
fn read_and_delete(path: &Path) -> Probe {
    let dev = BlockDevice::open(path, Access::ReadOnly).unwrap();
    let p = probe::read(&dev, true).unwrap();
    drop(dev);
    std::fs::remove_file(path).unwrap();
    p
}

fn problem_kinds(p: &Probe, c: &PolicyContext) -> Vec<String> {
    let report = assess(p, c);
    serde_json::to_value(&report.problems)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The plan's actions as "action detail" strings, or "refused: …". Assessing again under this
/// row's context replaces the last row's verdicts: nothing of them is left over.
fn actions(p: &mut Probe, c: &PolicyContext) -> Vec<String> {
    p.report = assess(p, c);
    match plan_repair(p, c) {
        Ok(plan) => plan
            .changes
            .iter()
            .map(|ch| {
                let v = serde_json::to_value(ch).unwrap();
                if v["action"] == "move_slot" {
                    return format!("move_slot {}→{}", v["from"], v["to"]);
                }
                let detail = ["key", "identifier", "module"]
                    .iter()
                    .find_map(|k| v.get(*k))
                    .map(|d| match d.as_str() {
                        Some(s) => format!(" {s}"),
                        None => format!(" {d}"),
                    })
                    .unwrap_or_default();
                format!("{}{detail}", v["action"].as_str().unwrap())
            })
            .collect(),
        Err(e) if is_refusal(&e) => vec![format!("refused: {e}")],
        Err(e) => panic!("{e:#}"),
    }
}

struct Row {
    policy: &'static str,
    drivers: &'static str,
    problems: &'static [&'static str],
    actions: &'static [&'static str],
}

fn check(name: &str, p: &mut Probe, rows: &[Row]) {
    for row in rows {
        let c = ctx(row.policy, row.drivers);
        let what = format!(
            "{name}, --passthru {} --drivers {}",
            row.policy, row.drivers
        );
        assert_eq!(problem_kinds(p, &c), row.problems, "problems: {what}");
        assert_eq!(actions(p, &c), row.actions, "actions: {what}");
    }
    // Assessment is a function of the findings and the context alone.
    let c = ctx(rows[0].policy, rows[0].drivers);
    assert_eq!(
        serde_json::to_string(&assess(p, &c)).unwrap(),
        serde_json::to_string(&assess(p, &c)).unwrap()
    );
}

/// Seed 001 in miniature: ESXi 5.5, compacted by another tool, the RAID controller and a GPU
/// passed through in the active bank's esx.conf.
#[test]
fn esxi5_compacted_with_raid_and_gpu_passthru() {
    let dir = tmpdir();
    let f = esxi_with_owners(
        dir.path(),
        Generation::Esxi5,
        ConfigFlavor::Plain,
        "5.5.0-1331820",
        &[("000:022:00.0", "passthru"), ("000:000:02.0", "passthru")],
    );
    damage(&f.path, &Damage::CompactKeepOrder).unwrap();
    let mut p = read_and_delete(&f.path);
    const GPT: &[&str] = &["slots_not_canonical"];
    // Table A: slots 1, 2, 3, 5, 6, 7, 8; compacted into 1..7.
    const MOVES: [&str; 4] = [
        "move_slot 4→5",
        "move_slot 5→6",
        "move_slot 6→7",
        "move_slot 7→8",
    ];
    check(
        "ESXi 5 compacted",
        &mut p,
        &[
            Row {
                policy: "storage",
                drivers: "boot",
                problems: &["slots_not_canonical", "passthru_on_esxi_device"],
                actions: &[
                    MOVES[0],
                    MOVES[1],
                    MOVES[2],
                    MOVES[3],
                    "flip_owner 000:022:00.0",
                ],
            },
            Row {
                policy: "none",
                drivers: "boot",
                problems: GPT,
                actions: &MOVES,
            },
            Row {
                policy: "all",
                drivers: "boot",
                problems: &["slots_not_canonical", "passthru_on_esxi_device"],
                actions: &[
                    MOVES[0],
                    MOVES[1],
                    MOVES[2],
                    MOVES[3],
                    // esx.conf's order.
                    "flip_owner 000:000:02.0",
                    "flip_owner 000:022:00.0",
                ],
            },
            Row {
                policy: GPU,
                drivers: "none",
                problems: &["slots_not_canonical", "passthru_on_esxi_device"],
                actions: &[
                    MOVES[0],
                    MOVES[1],
                    MOVES[2],
                    MOVES[3],
                    "flip_owner 000:000:02.0",
                ],
            },
        ],
    );
}

/// Seed 000 in miniature on 8.x: the store passes through the NVMe boot controller (also in
/// DesiredUserConfig) and a GPU, disables the NVMe driver, and the disk image was restored
/// onto a bigger disk.
#[test]
fn esxi8_store_passthru_disabled_driver_on_a_grown_disk() {
    let dir = tmpdir();
    let mut cfg = ConfigSpec::new(ConfigFlavor::Encrypted);
    cfg.store.pci_devices = vec![
        StorePciRow::new(NVME, "OWNER_PASSTHRU", Some("boot-nvme")),
        StorePciRow::new(GPU, "OWNER_PASSTHRU", Some("gpu")),
    ];
    cfg.store.desired = vec![StorePciRow::new(NVME, "OWNER_PASSTHRU", None)];
    cfg.store.disabled_modules = vec!["nvme_pcie".into()];
    let spec = Spec::new(Generation::Esxi7, Media::Disk, 512).with_banks(
        BankSpec::active("8.0.2-22380479", Some(cfg)),
        BankSpec::alternate_empty("8.0.2-22380479"),
    );
    let f = build_at(dir.path(), "esxi.img", &spec);
    damage(&f.path, &Damage::Grow(64 << 20)).unwrap();
    let mut p = read_and_delete(&f.path);
    check(
        "ESXi 8 grown, store passthru",
        &mut p,
        &[
            Row {
                policy: "storage",
                drivers: "boot",
                problems: &[
                    "backup_not_at_end",
                    "passthru_on_esxi_device",
                    "driver_disabled",
                ],
                actions: &[
                    "last_usable",
                    "move_backup",
                    "flip_store_row 0000:03:00.0",
                    "enable_module nvme_pcie",
                ],
            },
            Row {
                policy: "none",
                drivers: "none",
                // The disabled driver is reported, and left (advisory under --drivers none).
                problems: &["backup_not_at_end", "driver_disabled"],
                actions: &["last_usable", "move_backup"],
            },
            Row {
                policy: "all",
                drivers: "nvme_pcie",
                problems: &[
                    "backup_not_at_end",
                    "passthru_on_esxi_device",
                    "driver_disabled",
                ],
                actions: &[
                    "last_usable",
                    "move_backup",
                    // The store's row order.
                    "flip_store_row 0000:00:02.0",
                    "flip_store_row 0000:03:00.0",
                    "enable_module nvme_pcie",
                ],
            },
        ],
    );
}

/// 7.0U2+ with the key in the TPM: nothing offline can read the bank. The default policy
/// repairs the rest and says what it left; an explicit policy it cannot honour is refused.
#[test]
fn tpm_sealed_bank_is_kept_under_the_default_and_refused_when_asked_for() {
    let dir = tmpdir();
    let mut cfg = ConfigSpec::new(ConfigFlavor::EncryptedTpm);
    cfg.set_owner(OwnerSpec::new("0000:03:00.0", "passthru", None));
    let spec = Spec::new(Generation::Esxi7, Media::Disk, 512).with_banks(
        BankSpec::active("7.0.3-21930508", Some(cfg)),
        BankSpec::alternate_empty("7.0.3-21930508"),
    );
    let f = build_at(dir.path(), "esxi.img", &spec);
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let mut p = read_and_delete(&f.path);
    // Table C: slots 1, 5, 6, 7, 8; sorted into 1..5.
    const MOVES_C: [&str; 4] = [
        "move_slot 2→5",
        "move_slot 3→6",
        "move_slot 4→7",
        "move_slot 5→8",
    ];
    check(
        "ESXi 7 TPM-sealed, compacted",
        &mut p,
        &[
            Row {
                policy: "storage",
                drivers: "boot",
                problems: &["slots_not_canonical", "config_sealed"],
                actions: &MOVES_C,
            },
            Row {
                policy: "all",
                drivers: "boot",
                problems: &["slots_not_canonical", "config_sealed"],
                actions: &["refused: bootbank slot 5: the configuration is sealed by the TPM, so --passthru all cannot be applied offline; nothing written. Recovery: boot ESXi with Shift+O and encryptionRecoveryKey=<key>, then fix passthrough there (esxcli hardware pci pcipassthru set -d ADDR -e false) and run /sbin/auto-backup.sh (KB 81446)"],
            },
            Row {
                policy: "none",
                drivers: "boot",
                // --passthru none asks nothing of the configuration: sealed or not is moot.
                problems: &["slots_not_canonical"],
                actions: &MOVES_C,
            },
        ],
    );
    let c = ctx("storage", "boot");
    p.report = assess(&p, &c);
    let plan = plan_repair(&p, &c).unwrap();
    assert!(
        plan.kept
            .iter()
            .any(|k| k.contains("sealed by the TPM, left as it is")),
        "{:?}",
        plan.kept
    );
}

/// A power cut inside a FAT update left a lost cluster in the active bank: reconciled first,
/// whatever the policy.
#[test]
fn lost_cluster_is_reconciled_first_under_every_policy() {
    let dir = tmpdir();
    let f = esxi_with_owners(
        dir.path(),
        Generation::Esxi6,
        ConfigFlavor::Plain,
        "6.7.0-8169922",
        &[("0000:16:00.0", "passthru")],
    );
    // The last free cluster, marked end-of-chain in every copy: used, but no file reaches it.
    let bank = BankFat::of(&f, 5);
    let free = bank.free_cluster_near_end(&f.path);
    for copy in 0..2 {
        // a bootbank has two FATs
        bank.set(&f.path, copy, free, 0xFFFF);
    }
    let mut p = read_and_delete(&f.path);
    check(
        "ESXi 6, lost cluster",
        &mut p,
        &[
            Row {
                policy: "storage",
                drivers: "boot",
                problems: &["fat_not_reconciled", "passthru_on_esxi_device"],
                actions: &["reconcile_fat", "flip_owner 0000:16:00.0"],
            },
            Row {
                policy: "none",
                drivers: "boot",
                problems: &["fat_not_reconciled"],
                actions: &["reconcile_fat"],
            },
        ],
    );
    // The fix is one sector of each FAT copy, planned from the FAT bytes the probe read.
    let c = ctx("none", "boot");
    p.report = assess(&p, &c);
    let plan = plan_repair(&p, &c).unwrap();
    let fix = &plan.fat_fixes[0];
    assert_eq!(
        (fix.bank_slot, fix.lost_clusters, fix.differing_sectors),
        (5, 1, 0)
    );
    assert_eq!(fix.writes.len(), 2, "{:?}", fix.writes);
}
