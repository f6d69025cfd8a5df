//! The GPT repair: canonical slots, the backup at the end of the disk, a primary rebuilt from a
//! good backup. The probe reads the sectors a repair may write ([`read_sectors`]); the plan
//! computes target bytes from those alone; writing is the sector writer's job.

use anyhow::{bail, Context};

use crate::blockdev::BlockDevice;
use crate::gpt::{DiskGpt, EntryArray, Header};
use crate::layout::Layout;
use crate::plan::{Change, Plan, SectorWrite, Target};
use crate::sector_snapshot::SectorSnapshot;

/// ESXi's slot for every partition, everything else zeroed; each entry's bytes unchanged.
pub fn canonical_array(source: &EntryArray, layout: &Layout) -> anyhow::Result<EntryArray> {
    let mut entries = vec![source.empty_entry(); source.entries.len()];
    for p in &layout.placements {
        let to = p.canonical_slot as usize;
        if to == 0 || to > entries.len() {
            bail!("the GPT has {} slots; ESXi needs slot {to}", entries.len());
        }
        entries[to - 1] = source.entries[p.current_slot as usize - 1].clone();
    }
    Ok(EntryArray {
        entry_size: source.entry_size,
        entries,
    })
}

/// Where the primary's entry array goes: where it is, or LBA 2 when the primary is unusable.
fn primary_entries_lba(gpt: &DiskGpt) -> u64 {
    match &gpt.primary {
        Ok(p) => p.header.entries_lba(),
        Err(_) => 2,
    }
}

/// Read the sectors a GPT repair of this disk may write (both headers, both arrays at their
/// repaired places) into `sectors`. Nothing when no copy is valid: there is no plan then.
pub fn read_sectors(
    dev: &BlockDevice,
    gpt: &DiskGpt,
    sectors: &mut SectorSnapshot,
) -> anyhow::Result<()> {
    let Some(source) = gpt.source() else {
        return Ok(());
    };
    let last = gpt.last_lba();
    let asec = source.header.array_sectors();
    let regions = [
        (1, 1),
        (primary_entries_lba(gpt), asec),
        (last.saturating_sub(asec), asec),
        (last, 1),
    ];
    for (lba, count) in regions {
        sectors
            .read(dev, lba, count)
            .with_context(|| format!("reading the GPT sectors at LBA {lba}"))?;
    }
    Ok(())
}

/// Array bytes padded to whole sectors with what the disk held there when probed.
fn array_sectors(
    sectors: &SectorSnapshot,
    lba: u64,
    header: &Header,
    array: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut buf = sectors
        .get(lba, header.array_sectors())
        .with_context(|| format!("internal: the GPT entry array at LBA {lba} was not read"))?
        .to_vec();
    buf[..array.len()].copy_from_slice(array);
    Ok(buf)
}

/// Every GPT write the repair needs, from the GPT as read and the probe's sectors.
pub fn plan_gpt(gpt: &DiskGpt, layout: &Layout, sectors: &SectorSnapshot) -> anyhow::Result<Plan> {
    let source = gpt.source().context("no valid GPT copy to repair from")?;
    let mut plan = Plan::default();
    let last = gpt.last_lba();
    let array = canonical_array(&source.array, layout)?;
    let array_bytes = array.to_bytes();
    let crc = crc32fast::hash(&array_bytes);
    let asec = source.header.array_sectors();
    let backup_array_lba = last - asec;

    for p in layout.misplaced() {
        plan.changes.push(Change::MoveSlot {
            from: p.current_slot,
            to: p.canonical_slot,
            role: p.role.label().to_string(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
        });
    }
    let alternate = gpt.primary_alternate_lba.unwrap_or(last);
    let backup_at_end = gpt.backup.is_ok() && gpt.backup_lba == Some(last);
    let relocate = !backup_at_end || alternate != last;
    let mut last_usable = source.header.last_usable();
    if relocate || last_usable >= backup_array_lba {
        let wanted = backup_array_lba - 1;
        if wanted < source.header.last_usable() {
            let end = layout
                .placements
                .iter()
                .map(|p| p.last_lba)
                .max()
                .unwrap_or(0);
            if end > wanted {
                bail!("partitions end at LBA {end}, past the last usable LBA {wanted}: the disk is smaller than its GPT");
            }
        }
        if wanted != last_usable {
            plan.changes.push(Change::LastUsable {
                from: last_usable,
                to: wanted,
            });
        }
        last_usable = wanted;
    }
    match (&gpt.primary, &gpt.backup) {
        (Err(e), _) => plan.changes.push(Change::RebuildPrimary {
            backup_lba: gpt.backup_lba.unwrap_or(last),
            reason: format!("primary: {e}"),
        }),
        (Ok(_), Err(e)) => plan.changes.push(Change::WriteBackup {
            lba: last,
            reason: format!("was: {e}"),
        }),
        (Ok(_), Ok(_)) if gpt.backup_lba != Some(last) => plan.changes.push(Change::MoveBackup {
            from: gpt.backup_lba.unwrap_or(alternate),
            to: last,
        }),
        _ => {}
    }

    let primary_entries_lba = primary_entries_lba(gpt);
    let primary = source
        .header
        .relocated(1, last, primary_entries_lba, last_usable, crc);
    let backup = primary.relocated(last, 1, backup_array_lba, last_usable, crc);

    let writes = [
        (
            Target::BackupGptArray,
            backup_array_lba,
            array_sectors(sectors, backup_array_lba, &backup, &array_bytes)?,
        ),
        (Target::BackupGptHeader, last, backup.to_bytes().to_vec()),
        (
            Target::PrimaryGptArray,
            primary_entries_lba,
            array_sectors(sectors, primary_entries_lba, &primary, &array_bytes)?,
        ),
        (Target::PrimaryGptHeader, 1, primary.to_bytes().to_vec()),
    ];
    for (target, lba, bytes) in writes {
        if let Some(w) = SectorWrite::new(sectors, target, lba, bytes)? {
            plan.writes.push(w);
        }
    }
    if plan.writes.is_empty() {
        plan.changes.clear();
    } else if plan.changes.is_empty() {
        plan.changes.push(Change::AlignHeaders);
    }
    Ok(plan)
}
