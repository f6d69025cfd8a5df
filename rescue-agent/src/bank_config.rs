//! Per-bank configuration: what the bank's own esx.conf and ConfigStore (7.0U2+) hold — every
//! passthru owner, every disabled storage/USB driver module — read once ([`read_bank_config`]),
//! and the policies' decisions on it ([`assess_config`], pure).

use serde::Serialize;

use crate::blockdev::BlockDevice;
use crate::configstore::{self, PciDeviceRow, StoreFindings};
use crate::driver_map::{self, DriverDecision, DriverPolicy};
use crate::esxconf::{self, DisabledModuleLine, OwnerLine};
use crate::fat_replace;
use crate::passthru_policy::{self, Decision, PciFunction, Policy};
use crate::state_archive::{Flavor, StateArchive};

/// state.tgz is kilobytes to a few MiB in practice; 96 MiB leaves room for the 64 MiB stress
/// case of the benchmarks and keeps every layer of it inside an initramfs machine's memory.
pub const STATE_TGZ_LIMIT: u64 = 96 << 20;
pub const STATE_TGZ: &str = "state.tgz";

/// How passthrough decisions are made: the policy and what is known of the PCI functions.
#[derive(Clone, Debug)]
pub struct PolicyContext {
    pub policy: Policy,
    pub functions: Vec<PciFunction>,
    pub drivers: DriverPolicy,
}

impl Default for PolicyContext {
    fn default() -> Self {
        PolicyContext {
            policy: Policy::Storage,
            functions: Vec::new(),
            drivers: DriverPolicy::Boot,
        }
    }
}

impl PolicyContext {
    /// The Linux drivers of the functions that carry the ESXi disk (None where unknown).
    pub fn boot_drivers(&self) -> Vec<Option<String>> {
        self.functions
            .iter()
            .filter(|f| f.carries_esxi_disk)
            .map(|f| f.driver.clone())
            .collect()
    }

    fn class_of(&self, addr: Option<esxconf::PciAddr>) -> Option<String> {
        let a = addr?;
        self.functions
            .iter()
            .find(|f| f.addr == a)
            .and_then(|f| f.class)
            .map(|c| format!("{c:#08x} {}", passthru_policy::class_name(c)))
    }
}

/// One `esx/hardware/pci_devices` row of the bank's ConfigStore, with the policy's decision.
#[derive(Clone, Debug, Serialize)]
pub struct StoreOwnerFinding {
    #[serde(flatten)]
    pub row: PciDeviceRow,
    pub class: Option<String>,
    pub decision: Decision,
}

/// The bank's ConfigStore as far as passthrough goes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreReport {
    pub pci_devices: Vec<StoreOwnerFinding>,
    /// Why the store could not be read (then nothing in it is changed).
    pub error: Option<String>,
}

/// A storage or USB driver module the bank disables, with the driver policy's decision.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleFinding {
    pub module: String,
    /// Where: "ConfigStore Config.UserValue" or "esx.conf line 12".
    pub found_in: Vec<String>,
    /// Identifiers of its ConfigStore module_settings rows (empty for esx.conf lines).
    pub store_ids: Vec<String>,
    pub decision: DriverDecision,
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
    /// The ConfigStore's PCI ownership rows, when local.tgz carries a store (7.0+).
    pub configstore: Option<StoreReport>,
    /// Disabled storage/USB driver modules (ConfigStore module_settings, esx.conf).
    pub disabled_modules: Vec<ModuleFinding>,
    /// Why the configuration could not be read (no state.tgz, TPM-sealed, damaged archive).
    pub unreadable: Option<String>,
    pub tpm_sealed: bool,
}

impl ConfigReport {
    pub fn flips(&self) -> impl Iterator<Item = &OwnerFinding> {
        self.owners.iter().filter(|o| o.decision.flip)
    }

    pub fn store_flips(&self) -> impl Iterator<Item = &StoreOwnerFinding> {
        self.configstore
            .iter()
            .flat_map(|s| s.pci_devices.iter())
            .filter(|r| r.decision.flip)
    }

    pub fn module_enables(&self) -> impl Iterator<Item = &ModuleFinding> {
        self.disabled_modules.iter().filter(|m| m.decision.enable)
    }
}

/// What a bank's configuration holds, before any policy looks at it: read once per probe.
#[derive(Clone, Debug)]
pub struct ConfigFacts {
    pub present: bool,
    pub flavor: Option<Flavor>,
    pub state_tgz_bytes: Option<u64>,
    pub owners: Vec<OwnerLine>,
    /// The ConfigStore's findings, or why it could not be read (when local.tgz carries one).
    pub store: Option<Result<StoreFindings, String>>,
    pub esxconf_disabled: Vec<DisabledModuleLine>,
    pub unreadable: Option<String>,
    pub tpm_sealed: bool,
}

/// What planning needs beyond the facts: the opened archive.
pub struct LoadedConfig {
    pub facts: ConfigFacts,
    pub archive: Option<StateArchive>,
}

/// Read and open the bank's state.tgz (and its ConfigStore): facts only, no decisions.
pub fn read_bank_config(dev: &BlockDevice, first_lba: u64) -> LoadedConfig {
    let mut facts = ConfigFacts {
        present: true,
        flavor: None,
        state_tgz_bytes: None,
        owners: Vec::new(),
        store: None,
        esxconf_disabled: Vec::new(),
        unreadable: None,
        tpm_sealed: false,
    };
    let offset = first_lba * u64::from(dev.sector_size());
    let state = match fat_replace::read_root_file(dev, offset, STATE_TGZ, STATE_TGZ_LIMIT) {
        Ok(Some(s)) => s,
        Ok(None) => {
            facts.present = false;
            facts.unreadable = Some("no state.tgz".into());
            return LoadedConfig {
                facts,
                archive: None,
            };
        }
        Err(e) => {
            facts.unreadable = Some(format!("state.tgz: {e:#}"));
            return LoadedConfig {
                facts,
                archive: None,
            };
        }
    };
    facts.state_tgz_bytes = Some(state.len() as u64);
    let archive = match StateArchive::open(state) {
        Ok(a) => a,
        Err(e) => {
            facts.tpm_sealed = e.is_tpm_sealed();
            facts.unreadable = Some(e.to_string());
            return LoadedConfig {
                facts,
                archive: None,
            };
        }
    };
    facts.flavor = Some(archive.flavor);
    facts.owners = esxconf::parse_owners(&archive.esx_conf);
    facts.esxconf_disabled = esxconf::disabled_modules(&archive.esx_conf);
    facts.store = archive
        .configstore
        .as_ref()
        .map(|db| configstore::read(db).map_err(|e| e.to_string()));
    LoadedConfig {
        facts,
        archive: Some(archive),
    }
}

/// The policies' decisions on one bank's facts. Pure: the same facts and context give the
/// same report, so one read serves any policy.
pub fn assess_config(facts: &ConfigFacts, ctx: &PolicyContext) -> ConfigReport {
    let mut report = ConfigReport {
        present: facts.present,
        flavor: facts.flavor,
        state_tgz_bytes: facts.state_tgz_bytes,
        owners: Vec::new(),
        configstore: None,
        disabled_modules: Vec::new(),
        unreadable: facts.unreadable.clone(),
        tpm_sealed: facts.tpm_sealed,
    };
    report.owners = facts
        .owners
        .iter()
        .map(|owner| OwnerFinding {
            normalised: owner.addr.map(|a| a.to_string()),
            class: ctx.class_of(owner.addr),
            decision: passthru_policy::decide(&ctx.policy, owner, &ctx.functions),
            owner: owner.clone(),
        })
        .collect();
    let boot_drivers = ctx.boot_drivers();
    let mut disabled: Vec<(String, String, Vec<String>)> = facts
        .esxconf_disabled
        .iter()
        .map(|m| {
            (
                m.module.clone(),
                format!("esx.conf line {}", m.line),
                Vec::new(),
            )
        })
        .collect();
    if let Some(found) = &facts.store {
        let mut store = StoreReport::default();
        match found {
            Ok(found) => {
                store.pci_devices = found
                    .pci_devices
                    .iter()
                    .map(|row| StoreOwnerFinding {
                        class: ctx.class_of(row.addr),
                        decision: store_decision(ctx, row),
                        row: row.clone(),
                    })
                    .collect();
                for m in &found.disabled_modules {
                    for column in &m.disabled_in {
                        disabled.push((
                            m.module.clone(),
                            format!("ConfigStore {column}"),
                            m.identifiers.clone(),
                        ));
                    }
                }
            }
            Err(e) => store.error = Some(e.clone()),
        }
        report.configstore = Some(store);
    }
    for (module, found_in, ids) in disabled {
        if !driver_map::is_storage_or_usb_module(&module) {
            continue;
        }
        match report
            .disabled_modules
            .iter_mut()
            .find(|m| m.module == module)
        {
            Some(m) => {
                m.found_in.push(found_in);
                for id in ids {
                    if !m.store_ids.contains(&id) {
                        m.store_ids.push(id);
                    }
                }
            }
            None => report.disabled_modules.push(ModuleFinding {
                decision: driver_map::decide(&ctx.drivers, &module, &boot_drivers),
                module,
                found_in: vec![found_in],
                store_ids: ids,
            }),
        }
    }
    report
}

fn store_decision(ctx: &PolicyContext, row: &PciDeviceRow) -> Decision {
    if !row.is_passthru() {
        return Decision {
            flip: false,
            reason: format!(
                "owner is {}, not OWNER_PASSTHRU; nothing to change",
                row.owner.as_deref().unwrap_or("unset (OWNER_VMKERNEL)")
            ),
        };
    }
    match row.addr {
        Some(addr) => passthru_policy::decide_addr(&ctx.policy, addr, &ctx.functions),
        None => passthru_policy::decide_unreadable(&ctx.policy, &row.identifier),
    }
}
