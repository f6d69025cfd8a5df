//! esxi-rescue: find an ESXi boot disk and repair what keeps the host from reaching it.
//!
//! Data flows one way: select → probe → assess → plan → apply → verify → report. `format/` knows the
//! bytes, `disk/` reads and writes them, `machine/` knows the host; the pipeline modules below
//! them run a repair, and the front ends (`cli`, `init` + `unattended`) only wire it.

// The rooms, by layer.
pub mod disk;
pub mod format;
pub mod machine;

// The pipeline, in the order a run takes it.
// 0. Select the disk: every whole disk, identified, the ESXi ones grouped into LUNs.
pub mod select;

// 1. Probe one disk: findings, read once, no policy in them.
pub mod bank_config;
pub mod probe;

// 2. Assess: the findings under the passthrough and driver policies — problems and decisions.
pub mod assess;
pub mod passthru_policy;

// 3. Plan: every write, typed and in order (partition table, bank FATs, configurations).
pub mod change;
pub mod config_repair;
pub mod fat_reconcile;
pub mod gpt_repair;
pub mod pipeline;
pub mod plan;

// 4. Apply (backup first, crash-safe order), verify by probing again; undo; the run's one JSON
//    report and the text of findings and plans.
pub mod apply;
pub mod repair_report;
pub mod report;
pub mod undo;

// The front ends: the offline CLI, and PID 1 (init) with its unattended run.
pub mod cli;
pub mod init;
pub mod unattended;

// Short paths to the rooms' modules (`crate::gpt`, `rescue_agent::blockdev`, ...).
pub use disk::{
    aligned_buf, backup_sink, blockdev, fat_check, fat_overlay, fat_replace, record_store,
    sector_snapshot, sector_writer, write_journal,
};
pub use format::{
    archive, bootbank, configstore, envelope, esxconf, gpt, layout, raid_member, state_archive,
    undo_record,
};
pub use machine::{driver_map, modindex, multipath, pci_context, sysblock};

/// A deliberate refusal (not ESXi, ambiguous, unsupported, changed since): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);
