//! Per-bank configuration findings: every passthru owner in the bank's own esx.conf, and the
//! policy's decision for it.

use serde::Serialize;

use crate::blockdev::BlockDevice;
use crate::configstore;
use crate::esxconf::{self, OwnerLine};
use crate::fat_replace;
use crate::passthru_policy::{self, Decision, PciFunction, Policy};
use crate::state_archive::{Flavor, StateArchive};

/// state.tgz is kilobytes to a few MiB in practice; refuse to load anything absurd.
pub const STATE_TGZ_LIMIT: u64 = 256 << 20;
pub const STATE_TGZ: &str = "state.tgz";

/// How passthrough decisions are made: the policy and what is known of the PCI functions.
#[derive(Clone, Debug)]
pub struct PolicyContext {
    pub policy: Policy,
    pub functions: Vec<PciFunction>,
}

impl Default for PolicyContext {
    fn default() -> Self {
        PolicyContext {
            policy: Policy::Storage,
            functions: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OwnerFinding {
    #[serde(flatten)]
    pub owner: OwnerLine,
    /// The address in Linux form ("0000:16:00.0") when it parsed.
    pub normalised: Option<String>,
    pub class: Option<String>,
    pub decision: Decision,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigReport {
    /// The bank has a state.tgz (readable or not).
    pub present: bool,
    pub flavor: Option<Flavor>,
    pub state_tgz_bytes: Option<u64>,
    pub owners: Vec<OwnerFinding>,
    /// ConfigStore rows mentioning passthrough (shown, never edited).
    pub configstore_rows: Vec<String>,
    /// Why the configuration could not be read (no state.tgz, TPM-sealed, damaged archive).
    pub unreadable: Option<String>,
    pub tpm_sealed: bool,
}

impl ConfigReport {
    pub fn flips(&self) -> impl Iterator<Item = &OwnerFinding> {
        self.owners.iter().filter(|o| o.decision.flip)
    }
}

/// What planning needs beyond the report: the opened archive.
pub struct LoadedConfig {
    pub report: ConfigReport,
    pub archive: Option<StateArchive>,
}

pub fn read_bank_config(dev: &BlockDevice, first_lba: u64, ctx: &PolicyContext) -> LoadedConfig {
    let mut report = ConfigReport {
        present: true,
        flavor: None,
        state_tgz_bytes: None,
        owners: Vec::new(),
        configstore_rows: Vec::new(),
        unreadable: None,
        tpm_sealed: false,
    };
    let offset = first_lba * u64::from(dev.sector_size());
    let state = match fat_replace::read_root_file(dev, offset, STATE_TGZ, STATE_TGZ_LIMIT) {
        Ok(Some(s)) => s,
        Ok(None) => {
            report.present = false;
            report.unreadable = Some("no state.tgz".into());
            return LoadedConfig {
                report,
                archive: None,
            };
        }
        Err(e) => {
            report.unreadable = Some(format!("state.tgz: {e:#}"));
            return LoadedConfig {
                report,
                archive: None,
            };
        }
    };
    report.state_tgz_bytes = Some(state.len() as u64);
    let archive = match StateArchive::open(state) {
        Ok(a) => a,
        Err(e) => {
            report.tpm_sealed = e.is_tpm_sealed();
            report.unreadable = Some(e.to_string());
            return LoadedConfig {
                report,
                archive: None,
            };
        }
    };
    report.flavor = Some(archive.flavor);
    report.owners = esxconf::parse_owners(&archive.esx_conf)
        .into_iter()
        .map(|owner| {
            let decision = passthru_policy::decide(&ctx.policy, &owner, &ctx.functions);
            let class = owner.addr.and_then(|a| {
                ctx.functions
                    .iter()
                    .find(|f| f.addr == a)
                    .and_then(|f| f.class)
                    .map(|c| format!("{c:#08x} {}", passthru_policy::class_name(c)))
            });
            OwnerFinding {
                normalised: owner.addr.map(|a| a.to_string()),
                class,
                decision,
                owner,
            }
        })
        .collect();
    if let Some(db) = &archive.configstore {
        let needles: Vec<String> = report
            .owners
            .iter()
            .filter(|o| o.owner.is_passthru())
            .flat_map(|o| [Some(o.owner.key_addr.clone()), o.normalised.clone()])
            .flatten()
            .collect();
        match configstore::passthru_rows(db, &needles) {
            Ok(rows) => report.configstore_rows = rows,
            Err(e) => report
                .configstore_rows
                .push(format!("(ConfigStore unreadable: {e})")),
        }
    }
    LoadedConfig {
        report,
        archive: Some(archive),
    }
}
