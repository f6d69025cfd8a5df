//! esxi-rescue: find an ESXi boot disk and repair what keeps the host from reaching it.
//!
//! Data flows one way: probe → findings → plan → apply → verify → report.

pub mod aligned_buf;
pub mod apply;
pub mod archive;
pub mod backup_sink;
pub mod bank_config;
pub mod blockdev;
pub mod bootbank;
pub mod change;
pub mod cli;
pub mod config_repair;
pub mod configstore;
pub mod driver_map;
pub mod envelope;
pub mod esxconf;
pub mod fat_check;
pub mod fat_overlay;
pub mod fat_reconcile;
pub mod fat_replace;
pub mod gpt;
pub mod gpt_repair;
pub mod init;
pub mod layout;
pub mod modindex;
pub mod multipath;
pub mod passthru_policy;
pub mod pci_context;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod raid_member;
pub mod record_store;
pub mod report;
pub mod state_archive;
pub mod sysblock;
pub mod unattended;
pub mod undo;
pub mod undo_record;
pub mod write_journal;

/// A deliberate refusal (not ESXi, ambiguous, unsupported, changed since): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);
