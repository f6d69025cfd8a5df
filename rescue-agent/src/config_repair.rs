//! The configuration repair: in every bank whose own configuration passes through a device ESXi
//! needs — esx.conf owner lines (up to 7.0U1) and ConfigStore `pci_devices` rows (7.0U2+) — or
//! disables the boot controller's driver, change exactly those settings and rebuild that bank's
//! state.tgz. A TPM-sealed bank is left as it is (nothing offline can open it) and said so.

use anyhow::bail;

use crate::bank_config::{ConfigReport, STATE_TGZ};
use crate::configstore::{self, StoreEdit};
use crate::esxconf;
use crate::passthru_policy::Policy;
use crate::plan::{Change, FileEdit, Plan};
use crate::probe::{Bank, Probe, Problem};
use crate::state_archive::StateArchive;
use crate::Refusal;

/// What to tell the admin of a sealed bank.
pub const TPM_ROUTE: &str = "boot ESXi with Shift+O and encryptionRecoveryKey=<key>, then fix \
    passthrough there (esxcli hardware pci pcipassthru set -d ADDR -e false) and run \
    /sbin/auto-backup.sh (KB 81446)";

pub fn plan_config(probe: &Probe, policy: &Policy, plan: &mut Plan) -> anyhow::Result<()> {
    let Some(esxi) = &probe.report.esxi else {
        return Ok(());
    };
    for p in &probe.report.problems {
        match p {
            Problem::ConfigUnreadable { slot, reason } => bail!(Refusal(format!(
                "bootbank slot {slot}: {reason}; nothing written (use --passthru none to repair only the partition table)"
            ))),
            // An explicit request the rescue cannot honour is refused; the default policy goes
            // on with the rest (GPT, the other bank) and says what was left.
            Problem::ConfigSealed { slot } if matches!(policy, Policy::List(_) | Policy::All) => {
                bail!(Refusal(format!(
                    "bootbank slot {slot}: the configuration is sealed by the TPM, so --passthru {policy} cannot be applied offline; nothing written. Recovery: {TPM_ROUTE}"
                )))
            }
            Problem::ConfigSealed { slot } => plan.kept.push(format!(
                "bootbank slot {slot}: configuration sealed by the TPM, left as it is; recovery: {TPM_ROUTE}"
            )),
            _ => {}
        }
    }
    for (bank, archive) in esxi.banks.iter().zip(&probe.archives) {
        let (Some(config), Some(archive)) = (&bank.config, archive) else {
            continue;
        };
        plan_bank(bank, config, archive, plan)?;
    }
    Ok(())
}

fn bank_label(bank: &Bank) -> String {
    format!(
        "bootbank slot {}{}",
        bank.slot,
        if bank.active { " (active)" } else { "" }
    )
}

fn plan_bank(
    bank: &Bank,
    config: &ConfigReport,
    archive: &StateArchive,
    plan: &mut Plan,
) -> anyhow::Result<()> {
    let label = bank_label(bank);
    for o in config
        .owners
        .iter()
        .filter(|o| o.owner.is_passthru() && !o.decision.flip)
    {
        plan.kept.push(format!(
            "bootbank slot {}: keep /device/{}/owner = passthru ({})",
            bank.slot, o.owner.key_addr, o.decision.reason
        ));
    }
    for r in config
        .configstore
        .iter()
        .flat_map(|s| s.pci_devices.iter())
        .filter(|r| r.row.is_passthru() && !r.decision.flip)
    {
        plan.kept.push(format!(
            "bootbank slot {}: keep ConfigStore pci_devices {} = OWNER_PASSTHRU ({})",
            bank.slot, r.row.identifier, r.decision.reason
        ));
    }
    for m in config
        .disabled_modules
        .iter()
        .filter(|m| !m.decision.enable)
    {
        plan.kept.push(format!(
            "bootbank slot {}: keep driver {} disabled ({})",
            bank.slot, m.module, m.decision.reason
        ));
    }

    let flips: Vec<_> = config.flips().collect();
    let store_flips: Vec<_> = config.store_flips().collect();
    let enables: Vec<_> = config.module_enables().collect();
    if flips.is_empty() && store_flips.is_empty() && enables.is_empty() {
        return Ok(());
    }
    let mut new_conf: Option<String> = None;
    if !flips.is_empty() {
        let lines: Vec<&esxconf::OwnerLine> = flips.iter().map(|o| &o.owner).collect();
        new_conf = Some(esxconf::set_owner_values(
            &archive.esx_conf,
            &lines,
            "vmkernel",
        )?);
    }
    let conf_modules: Vec<&str> = enables
        .iter()
        .filter(|m| m.found_in.iter().any(|f| f.starts_with("esx.conf")))
        .map(|m| m.module.as_str())
        .collect();
    if !conf_modules.is_empty() {
        let base = new_conf.as_deref().unwrap_or(&archive.esx_conf);
        new_conf = Some(esxconf::enable_modules(base, &conf_modules));
    }
    let store_edit = StoreEdit {
        owners_to_vmkernel: store_flips
            .iter()
            .map(|r| r.row.identifier.clone())
            .collect(),
        modules_to_enable: enables
            .iter()
            .flat_map(|m| m.store_ids.iter().cloned())
            .collect(),
    };
    let new_store = match (&archive.configstore, store_edit.is_empty()) {
        (Some(db), false) => Some(
            configstore::rewrite(db, &store_edit)
                .map_err(|e| anyhow::anyhow!("bootbank slot {}: {e}", bank.slot))?,
        ),
        _ => None,
    };
    let new_state = archive.with_changes(new_conf.as_deref(), new_store.as_deref())?;
    for o in &flips {
        plan.changes.push(Change::FlipOwner {
            bank: label.clone(),
            key: o.owner.key_addr.clone(),
            reason: o.decision.reason.clone(),
        });
    }
    for r in &store_flips {
        plan.changes.push(Change::FlipStoreRow {
            bank: label.clone(),
            identifier: r.row.identifier.clone(),
            columns: r.row.passthru_in.clone(),
            reason: r.decision.reason.clone(),
        });
    }
    for m in &enables {
        plan.changes.push(Change::EnableModule {
            bank: label.clone(),
            module: m.module.clone(),
            found_in: m.found_in.clone(),
            reason: m.decision.reason.clone(),
        });
    }
    plan.file_edits.push(FileEdit::new(
        bank.slot,
        bank.first_lba,
        bank.last_lba - bank.first_lba + 1,
        STATE_TGZ,
        &archive.state_tgz,
        new_state,
    ));
    Ok(())
}
