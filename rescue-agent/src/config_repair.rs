//! The configuration repair: in every bank whose own esx.conf passes through a device ESXi
//! needs, flip exactly those owner lines to "vmkernel" and rebuild that bank's state.tgz.

use anyhow::bail;

use crate::bank_config::STATE_TGZ;
use crate::esxconf;
use crate::plan::{FileEdit, Plan};
use crate::probe::{Probe, Problem};
use crate::Refusal;

pub fn plan_config(probe: &Probe, plan: &mut Plan) -> anyhow::Result<()> {
    let Some(esxi) = &probe.report.esxi else {
        return Ok(());
    };
    for p in &probe.report.problems {
        if let Problem::ConfigUnreadable { slot, reason } = p {
            bail!(Refusal(format!(
                "bootbank slot {slot}: {reason}; nothing written (use --passthru none to repair only the partition table)"
            )));
        }
    }
    for (bank, archive) in esxi.banks.iter().zip(&probe.archives) {
        let (Some(config), Some(archive)) = (&bank.config, archive) else {
            continue;
        };
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
        let flips: Vec<_> = config.flips().collect();
        if flips.is_empty() {
            continue;
        }
        let lines: Vec<&esxconf::OwnerLine> = flips.iter().map(|o| &o.owner).collect();
        let new_conf = esxconf::set_owner_values(&archive.esx_conf, &lines, "vmkernel")?;
        let new_state = archive.with_esx_conf(&new_conf)?;
        for o in &flips {
            plan.changes.push(format!(
                "bootbank slot {}{}: /device/{}/owner passthru → vmkernel ({})",
                bank.slot,
                if bank.active { " (active)" } else { "" },
                o.owner.key_addr,
                o.decision.reason
            ));
        }
        plan.file_edits.push(FileEdit::new(
            bank.slot,
            bank.first_lba,
            bank.last_lba - bank.first_lba + 1,
            STATE_TGZ,
            archive.state_tgz.clone(),
            new_state,
        ));
    }
    Ok(())
}
