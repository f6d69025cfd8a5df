//! Probe: read one disk (device or image) and turn it into findings. Never writes.

use std::path::Path;

use serde::Serialize;

use crate::assess;
use crate::bank_config::{self, ConfigFacts, ConfigReport, PolicyContext};
use crate::blockdev::{Access, BlockDevice};
use crate::bootbank::{self, BootCfg};
use crate::fat_check::{self, FatState};
use crate::fat_reconcile;
use crate::gpt::{self, DiskGpt, GptCopy};
use crate::gpt_repair;
use crate::layout::{self, Generation, Layout, Media, PartFacts, Placement};
use crate::raid_member::{self, RaidKind};
use crate::sector_snapshot::SectorSnapshot;
use crate::state_archive::StateArchive;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Gpt,
    Mbr,
    None,
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableKind::Gpt => "GPT",
            TableKind::Mbr => "MBR",
            TableKind::None => "no partition table",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The primary GPT is unusable; the backup is good.
    PrimaryInvalid { reason: String },
    /// The backup GPT is missing or damaged.
    BackupInvalid { reason: String },
    /// The backup GPT is not at the last LBA (the disk grew), or the primary points elsewhere.
    BackupNotAtEnd {
        backup_lba: Option<u64>,
        alternate_lba: u64,
        last_lba: u64,
    },
    /// Both copies are valid but do not describe the same partitions.
    CopiesDiffer,
    /// Entries are not in the slots ESXi put them in.
    SlotsNotCanonical { moves: Vec<Placement> },
    /// A bank's esx.conf or ConfigStore passes through a device the policy says ESXi needs.
    PassthruOnEsxiDevice { slot: u32, owners: Vec<String> },
    /// A bank's configuration could not be read (damaged archive or ConfigStore).
    ConfigUnreadable { slot: u32, reason: String },
    /// A bank's configuration is sealed by the host's TPM: nothing offline can read it.
    ConfigSealed { slot: u32 },
    /// A passthru owner whose address is not a valid PCI address (kept under the policy).
    UnreadableOwnerKey {
        slot: u32,
        key: String,
        likely: Vec<String>,
    },
    /// A bank's FAT copies differ or it has lost clusters (an interrupted write), while the first
    /// copy still matches its files: reconciled before anything else is written.
    FatNotReconciled {
        slot: u32,
        differing_sectors: usize,
        lost_clusters: usize,
    },
    /// A bank's first FAT does not match its files: nothing is written to that bank.
    FatInconsistent { slot: u32, reason: String },
    /// A bank disables an ESXi storage or USB driver module.
    DriverDisabled {
        slot: u32,
        module: String,
        found_in: Vec<String>,
        enable: bool,
        reason: String,
    },
}

impl Problem {
    /// Reported but, under the chosen policy, not something a repair changes: verification
    /// does not count these, and a disk with only these has nothing to repair.
    pub fn is_advisory(&self) -> bool {
        match self {
            Problem::ConfigSealed { .. }
            | Problem::UnreadableOwnerKey { .. }
            | Problem::FatInconsistent { .. } => true,
            Problem::DriverDisabled { enable, .. } => !enable,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Problem::PrimaryInvalid { reason } => format!("primary GPT unusable: {reason}"),
            Problem::BackupInvalid { reason } => format!("backup GPT unusable: {reason}"),
            Problem::BackupNotAtEnd {
                backup_lba,
                alternate_lba,
                last_lba,
            } => match backup_lba {
                Some(b) if b != last_lba => format!(
                    "backup GPT at LBA {b}, not at the last LBA {last_lba} (the disk grew)"
                ),
                _ => format!("primary GPT points to its backup at LBA {alternate_lba}, not at the last LBA {last_lba}"),
            },
            Problem::CopiesDiffer => "primary and backup GPT describe different partitions".into(),
            Problem::PassthruOnEsxiDevice { slot, owners } => {
                format!("bootbank slot {slot}: passthru on {}", owners.join("; "))
            }
            Problem::ConfigUnreadable { slot, reason } => {
                format!("bootbank slot {slot}: configuration unreadable: {reason}")
            }
            Problem::ConfigSealed { slot } => format!(
                "bootbank slot {slot}: configuration sealed by the TPM; it cannot be checked or changed offline"
            ),
            Problem::UnreadableOwnerKey { slot, key, likely } => format!(
                "bootbank slot {slot}: passthru owner {key} is not a valid PCI address (likely {}); ESXi most probably ignores it; --passthru all flips it",
                likely.join(" or ")
            ),
            Problem::FatNotReconciled {
                slot,
                differing_sectors,
                lost_clusters,
            } => format!(
                "bootbank slot {slot}: FAT copies differ in {differing_sectors} sector(s), {lost_clusters} lost cluster(s) (an interrupted write); the first copy matches the files"
            ),
            Problem::FatInconsistent { slot, reason } => format!(
                "bootbank slot {slot}: FAT does not match its files ({reason}); this bank is not written"
            ),
            Problem::DriverDisabled {
                slot,
                module,
                found_in,
                enable,
                reason,
            } => format!(
                "bootbank slot {slot}: driver {module} disabled ({}){}: {reason}",
                found_in.join(", "),
                if *enable { ", will be re-enabled" } else { ", left" }
            ),
            Problem::SlotsNotCanonical { moves } => {
                let list: Vec<String> = moves
                    .iter()
                    .map(|m| format!("{}→{}", m.current_slot, m.canonical_slot))
                    .collect();
                format!("partitions not in ESXi's slots ({})", list.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Bank {
    /// ESXi's slot for this bank (5 or 6) and the slot it sits in now.
    pub slot: u32,
    pub current_slot: u32,
    pub first_lba: u64,
    pub last_lba: u64,
    /// `/vmfs/volumes/<uuid>` name from the VMware FAT header.
    pub volume_uuid: Option<String>,
    pub boot_cfg: Option<BootCfg>,
    pub active: bool,
    /// Why boot.cfg could not be read, when it could not.
    pub error: Option<String>,
    /// The bank's own configuration (state.tgz), when it has one.
    pub config: Option<ConfigReport>,
    /// The FAT invariant (copies identical, no lost clusters, chains whole), for FAT banks.
    pub fat: Option<FatState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EsxiDisk {
    pub generation: Generation,
    pub media: Media,
    pub build: Option<String>,
    pub partitions: Vec<Placement>,
    pub banks: Vec<Bank>,
}

impl EsxiDisk {
    /// "ESXi 5.x layout, build 5.5.0-1331820"
    pub fn label(&self) -> String {
        match &self.build {
            Some(b) => format!("{}, build {b}", self.generation.label()),
            None => self.generation.label().to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    pub path: String,
    pub size_bytes: u64,
    pub sector_size: u32,
    pub block_device: bool,
    pub table: TableKind,
    pub esxi: Option<EsxiDisk>,
    /// Why the disk is not taken for ESXi (absent on ESXi disks).
    pub not_esxi: Option<String>,
    /// Software-RAID metadata at the end of the disk: a member, never written.
    pub raid_member: Option<RaidKind>,
    pub problems: Vec<Problem>,
}

impl DiskReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// Problems a repair under the policy would change.
    pub fn repairable(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_advisory())
    }
}

/// Findings plus what planning needs (the GPT as read, the layout, each bank's opened archive
/// in the order of `report.esxi.banks`, the sectors a repair may write as they were read).
pub struct Probe {
    pub report: DiskReport,
    pub gpt: Option<DiskGpt>,
    pub layout: Option<Layout>,
    pub archives: Vec<Option<StateArchive>>,
    /// Each bank's configuration as read, before any policy (None: not read or no bank).
    pub configs: Vec<Option<ConfigFacts>>,
    pub sectors: SectorSnapshot,
}

impl Probe {
    /// Drop the opened configuration layers once the plan is made: the plan holds every byte it
    /// writes, and apply needs only the findings. On a large state.tgz this is most of the
    /// memory a repair holds while it writes and verifies.
    pub fn release_archives(&mut self) {
        for a in &mut self.archives {
            *a = None;
        }
    }
}

pub fn probe_path(path: &Path, ctx: &PolicyContext) -> anyhow::Result<Probe> {
    let dev = BlockDevice::open(path, Access::ReadOnly)?;
    probe(&dev, ctx)
}

/// Whether `path` holds an ESXi install (valid GPT in an ESXi layout, a bank with a readable
/// boot.cfg), without opening any configuration: cheap enough to ask of every disk while waiting.
pub fn is_esxi(path: &Path) -> bool {
    let Ok(dev) = BlockDevice::open(path, Access::ReadOnly) else {
        return false;
    };
    identify(&dev).is_ok_and(|p| p.report.esxi.is_some())
}

/// Everything but the bank configurations (no state.tgz opened, no key derived): what choosing
/// the disk to act on needs — ESXi or not and why, layout, GPT, bank FATs, RAID membership.
/// The disk chosen is then probed in full once, through the handle that writes it.
pub fn identify(dev: &BlockDevice) -> anyhow::Result<Probe> {
    read(dev, false)
}

pub fn identify_path(path: &Path) -> anyhow::Result<Probe> {
    identify(&BlockDevice::open(path, Access::ReadOnly)?)
}

/// Read the disk once (configurations included), then assess it under `ctx`.
pub fn probe(dev: &BlockDevice, ctx: &PolicyContext) -> anyhow::Result<Probe> {
    let mut probe = read(dev, true)?;
    probe.report = assess::assess(&probe, ctx);
    Ok(probe)
}

/// The findings alone, before any policy: the report carries the partition-table and FAT
/// problems (they depend on no policy); [`assess::assess`] adds the configurations' verdicts.
pub fn read(dev: &BlockDevice, read_configs: bool) -> anyhow::Result<Probe> {
    let mut report = DiskReport {
        path: dev.path().display().to_string(),
        size_bytes: dev.size(),
        sector_size: dev.sector_size(),
        block_device: dev.is_block_device(),
        table: TableKind::None,
        esxi: None,
        not_esxi: None,
        raid_member: None,
        problems: Vec::new(),
    };
    if dev.size() < 64 * u64::from(dev.sector_size()) {
        report.not_esxi = Some("too small for a GPT disk".into());
        return Ok(Probe {
            report,
            gpt: None,
            layout: None,
            archives: Vec::new(),
            configs: Vec::new(),
            sectors: SectorSnapshot::default(),
        });
    }
    report.table = table_kind(&dev.read_vec(0, 512)?);
    if let Some(kind) = raid_member::detect(dev) {
        report.raid_member = Some(kind);
        report.not_esxi = Some(format!(
            "software-RAID member ({}): its metadata is at the end of the disk; {}; left untouched",
            kind.label(),
            kind.advice()
        ));
        return Ok(Probe {
            report,
            gpt: None,
            layout: None,
            archives: Vec::new(),
            configs: Vec::new(),
            sectors: SectorSnapshot::default(),
        });
    }
    let disk_gpt = gpt::read_disk_gpt(dev)?;
    let Some(source) = disk_gpt.source() else {
        let reason = match &disk_gpt.primary {
            Err(e) => format!("no valid GPT ({e})"),
            Ok(_) => unreachable!("source() returns the primary when valid"),
        };
        report.not_esxi = Some(reason);
        return Ok(Probe {
            report,
            gpt: Some(disk_gpt),
            layout: None,
            archives: Vec::new(),
            configs: Vec::new(),
            sectors: SectorSnapshot::default(),
        });
    };
    report.table = TableKind::Gpt;
    let facts = partition_facts(dev, source)?;
    let layout = match layout::classify(&facts) {
        Ok(l) => l,
        Err(e) => {
            report.not_esxi = Some(e.to_string());
            return Ok(Probe {
                report,
                gpt: Some(disk_gpt),
                layout: None,
                archives: Vec::new(),
                configs: Vec::new(),
                sectors: SectorSnapshot::default(),
            });
        }
    };
    let mut banks = read_banks(dev, &layout, &facts);
    let mut sectors = SectorSnapshot::new(dev.sector_size());
    if !banks.iter().any(|b| b.boot_cfg.is_some()) {
        report.not_esxi = Some("no bootbank holds a readable boot.cfg".into());
        return Ok(Probe {
            report,
            gpt: Some(disk_gpt),
            layout: None,
            archives: Vec::new(),
            configs: Vec::new(),
            sectors: SectorSnapshot::default(),
        });
    }
    let build = banks
        .iter()
        .find(|b| b.active)
        .or(banks.first())
        .and_then(|b| b.boot_cfg.as_ref())
        .map(|c| c.build.clone())
        .filter(|b| !b.is_empty());
    gpt_repair::read_sectors(dev, &disk_gpt, &mut sectors)?;
    for bank in banks.iter_mut() {
        if matches!(&bank.fat, Some(FatState::Sound(h)) if !h.is_clean()) {
            if let Err(e) = fat_reconcile::read_sectors(dev, bank, &mut sectors) {
                bank.fat = Some(FatState::Inconsistent {
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    report.problems = assess::gpt_problems(&disk_gpt, &layout);
    report
        .problems
        .extend(banks.iter().filter_map(assess::fat_problem));
    let mut archives = Vec::new();
    let mut configs = Vec::new();
    for bank in &banks {
        if bank.boot_cfg.is_none() || !read_configs {
            archives.push(None);
            configs.push(None);
            continue;
        }
        let loaded = bank_config::read_bank_config(dev, bank.first_lba);
        configs.push(Some(loaded.facts));
        archives.push(loaded.archive);
    }
    report.esxi = Some(EsxiDisk {
        generation: layout.generation,
        media: layout.media,
        build,
        partitions: layout.placements.clone(),
        banks,
    });
    Ok(Probe {
        report,
        gpt: Some(disk_gpt),
        layout: Some(layout),
        archives,
        configs,
        sectors,
    })
}

fn table_kind(mbr: &[u8]) -> TableKind {
    if mbr[510..512] != [0x55, 0xAA] {
        return TableKind::None;
    }
    let has_protective = (0..4).any(|i| mbr[446 + i * 16 + 4] == 0xEE);
    if has_protective {
        TableKind::Gpt
    } else {
        TableKind::Mbr
    }
}

fn partition_facts(dev: &BlockDevice, copy: &GptCopy) -> anyhow::Result<Vec<PartFacts>> {
    copy.array
        .used()
        .map(|(slot, e)| {
            let vmware_fat = if e.type_guid() == layout::BASIC_DATA {
                bootbank::read_vmware_header(dev, e.first_lba())?
            } else {
                None
            };
            Ok(PartFacts {
                slot,
                type_guid: e.type_guid(),
                first_lba: e.first_lba(),
                last_lba: e.last_lba(),
                name: e.name(),
                vmware_fat,
            })
        })
        .collect()
}

fn read_banks(dev: &BlockDevice, layout: &Layout, facts: &[PartFacts]) -> Vec<Bank> {
    let mut banks: Vec<Bank> = layout
        .bootbanks()
        .map(|p| {
            let header = facts
                .iter()
                .find(|f| f.slot == p.current_slot)
                .and_then(|f| f.vmware_fat);
            let (boot_cfg, error) = match header {
                None => (None, Some("no VMware FAT header".to_string())),
                Some(_) => match bootbank::read_boot_cfg(dev, p.first_lba) {
                    Ok(cfg) => (cfg, None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                },
            };
            let fat = header.map(|_| {
                fat_check::check_bank(dev, p.first_lba * u64::from(dev.sector_size()))
                    .unwrap_or_else(|e| FatState::Inconsistent {
                        reason: format!("{e:#}"),
                    })
            });
            Bank {
                slot: p.canonical_slot,
                current_slot: p.current_slot,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                volume_uuid: header.map(|h| h.volume_uuid()),
                boot_cfg,
                active: false,
                error,
                config: None,
                fat,
            }
        })
        .collect();
    let cfgs: Vec<Option<&BootCfg>> = banks.iter().map(|b| b.boot_cfg.as_ref()).collect();
    if let Some(i) = bootbank::active_bank(&cfgs) {
        banks[i].active = true;
    }
    banks
}
