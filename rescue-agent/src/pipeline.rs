//! The repair as both front ends run it, the CLI and PID 1: from one probe of the chosen disk,
//! the whole plan — partition table, bank configurations, bank FATs — in one place, so the two
//! cannot drift apart. Apply and verify follow in apply.rs.

use anyhow::bail;

use crate::bank_config::PolicyContext;
use crate::config_repair;
use crate::fat_reconcile;
use crate::gpt_repair;
use crate::plan::Plan;
use crate::probe::Probe;
use crate::Refusal;

/// Everything a repair of this disk would write, in order. A disk that is not positively ESXi,
/// and a plan that would need what cannot be done safely, are refusals ([`Refusal`]).
/// Pure: it reads the probe, never the disk.
pub fn plan_repair(probe: &Probe, ctx: &PolicyContext) -> anyhow::Result<Plan> {
    let (Some(gpt), Some(layout)) = (&probe.gpt, &probe.layout) else {
        bail!(Refusal(format!(
            "{}: not an ESXi disk ({}); nothing written",
            probe.report.path,
            probe.report.not_esxi.as_deref().unwrap_or("unrecognised")
        )));
    };
    let mut plan = gpt_repair::plan_gpt(gpt, layout, &probe.sectors)?;
    config_repair::plan_config(probe, &ctx.policy, &mut plan)?;
    fat_reconcile::plan_fat(probe, &mut plan)?;
    Ok(plan)
}

/// Whether an error is a deliberate refusal (exit code 2, "refused" on the console).
pub fn is_refusal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Refusal>().is_some()
}
