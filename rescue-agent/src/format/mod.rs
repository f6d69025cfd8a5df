//! The bytes ESXi writes, parsed and written back exactly: the GPT and ESXi's partition
//! layouts, bootbank headers and boot.cfg, esx.conf, the state.tgz / local.tgz archives and the
//! 7.0U2+ envelope, the ConfigStore database, software-RAID metadata, and our undo record.
//! Nothing here opens a disk by itself.

pub mod archive;
pub mod bootbank;
pub mod configstore;
pub mod envelope;
pub mod esxconf;
pub mod gpt;
pub mod layout;
pub mod raid_member;
pub mod state_archive;
pub mod undo_record;
