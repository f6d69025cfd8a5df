//! What a repair changes, as typed values: one [`Change`] per change, rendered as the long line
//! (the CLI, the undo record, the JSON `changes`), the short line (PID 1's 80×25 closing
//! screen) and JSON (`actions`), all from the same value.

use serde::Serialize;

/// The widest line the closing screen shows.
const SCREEN_WIDTH: usize = 78;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// A partition entry goes back to the slot ESXi gave it.
    MoveSlot {
        from: u32,
        to: u32,
        role: String,
        first_lba: u64,
        last_lba: u64,
    },
    /// The headers' last usable LBA, to leave room for the backup array at the disk's end.
    LastUsable { from: u64, to: u64 },
    /// The primary GPT is unusable and is written from the backup.
    RebuildPrimary { backup_lba: u64, reason: String },
    /// The backup GPT is unusable and is written at the last LBA.
    WriteBackup { lba: u64, reason: String },
    /// The backup GPT is valid but not at the disk's last LBA (the disk grew).
    MoveBackup { from: u64, to: u64 },
    /// Only the headers and CRCs change.
    AlignHeaders,
    /// An esx.conf `/device/<addr>/owner` line flips from passthru to vmkernel.
    FlipOwner {
        bank: String,
        key: String,
        reason: String,
    },
    /// A ConfigStore `esx/hardware/pci_devices` row flips to OWNER_VMKERNEL.
    FlipStoreRow {
        bank: String,
        identifier: String,
        columns: Vec<String>,
        reason: String,
    },
    /// A disabled storage/USB driver module is enabled again.
    EnableModule {
        bank: String,
        module: String,
        found_in: Vec<String>,
        reason: String,
    },
    /// A bank's FAT copies made identical and its lost clusters freed.
    ReconcileFat {
        slot: u32,
        differing_sectors: usize,
        lost_clusters: usize,
    },
}

impl Change {
    /// The line without its reason, and the reason (shown in parentheses after it).
    fn parts(&self) -> (String, Option<&str>) {
        match self {
            Change::MoveSlot {
                from,
                to,
                role,
                first_lba,
                last_lba,
            } => (
                format!("slot {from} → {to}: {role} (LBA {first_lba}–{last_lba})"),
                None,
            ),
            Change::LastUsable { from, to } => (format!("last usable LBA {from} → {to}"), None),
            Change::RebuildPrimary { backup_lba, reason } => (
                format!("primary GPT rebuilt from the backup at LBA {backup_lba}"),
                Some(reason),
            ),
            Change::WriteBackup { lba, reason } => {
                (format!("backup GPT written at LBA {lba}"), Some(reason))
            }
            Change::MoveBackup { from, to } => (
                format!("backup GPT moved from LBA {from} to the last LBA {to}"),
                None,
            ),
            Change::AlignHeaders => (
                "GPT headers and CRCs brought in line with the entry array".into(),
                None,
            ),
            Change::FlipOwner { bank, key, reason } => (
                format!("{bank}: /device/{key}/owner passthru → vmkernel"),
                Some(reason),
            ),
            Change::FlipStoreRow {
                bank,
                identifier,
                columns,
                reason,
            } => (
                format!(
                    "{bank}: ConfigStore pci_devices {identifier} owner OWNER_PASSTHRU → OWNER_VMKERNEL in {}",
                    columns.join(", ")
                ),
                Some(reason),
            ),
            Change::EnableModule {
                bank,
                module,
                found_in,
                reason,
            } => (
                format!(
                    "{bank}: driver {module} disabled → enabled in {}",
                    found_in.join(", ")
                ),
                Some(reason),
            ),
            Change::ReconcileFat {
                slot,
                differing_sectors,
                lost_clusters,
            } => (
                format!(
                    "bootbank slot {slot}: FAT reconciled: first copy written over {differing_sectors} differing sector(s), {lost_clusters} lost cluster(s) freed"
                ),
                Some("it matches the files; an interrupted write left the rest"),
            ),
        }
    }

    /// The line without its reason (the result line's `changes`).
    pub fn head(&self) -> String {
        self.parts().0
    }

    /// The full line, with its reason.
    pub fn long(&self) -> String {
        match self.parts() {
            (head, Some(reason)) => format!("{head} ({reason})"),
            (head, None) => head,
        }
    }

    /// One screen line: the full line when it fits, else without its reason, else cut.
    pub fn short(&self) -> String {
        let long = self.long().replace('→', "->");
        let line = if long.len() > SCREEN_WIDTH {
            self.parts().0.replace('→', "->")
        } else {
            long
        };
        if line.chars().count() > SCREEN_WIDTH {
            line.chars().take(SCREEN_WIDTH - 3).collect::<String>() + "..."
        } else {
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_keep_their_reason_and_short_ones_fit_the_screen() {
        let flip = Change::FlipStoreRow {
            bank: "bootbank slot 5 (active)".into(),
            identifier: "0000:03:00.0".into(),
            columns: vec!["Config.UserValue".into(), "DesiredUserConfig.Value".into()],
            reason: "carries a disk of the ESXi install (boot disk or VMFS)".into(),
        };
        assert_eq!(
            flip.long(),
            "bootbank slot 5 (active): ConfigStore pci_devices 0000:03:00.0 owner OWNER_PASSTHRU → OWNER_VMKERNEL in Config.UserValue, DesiredUserConfig.Value (carries a disk of the ESXi install (boot disk or VMFS))"
        );
        let short = flip.short();
        assert!(short.chars().count() <= SCREEN_WIDTH, "{short}");
        assert!(short.ends_with("..."), "{short}");
        assert!(!short.contains('→'));
        let moved = Change::MoveSlot {
            from: 4,
            to: 5,
            role: "bootbank".into(),
            first_lba: 8224,
            last_lba: 520191,
        };
        assert_eq!(moved.long(), "slot 4 → 5: bootbank (LBA 8224–520191)");
        assert_eq!(moved.short(), "slot 4 -> 5: bootbank (LBA 8224–520191)");
        let owner = Change::FlipOwner {
            bank: "bootbank slot 5 (active)".into(),
            key: "000:022:00.0".into(),
            reason: "carries the ESXi boot disk".into(),
        };
        assert_eq!(
            owner.short(),
            "bootbank slot 5 (active): /device/000:022:00.0/owner passthru -> vmkernel"
        );
        let json = serde_json::to_value(&owner).unwrap();
        assert_eq!(json["action"], "flip_owner");
        assert_eq!(json["key"], "000:022:00.0");
    }
}
