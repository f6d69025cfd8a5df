//! The one place that writes to a disk. Every change — GPT sectors, a bank's FAT and directory
//! sectors, the data of a new state.tgz, the undo record, the report, a restore — reaches the
//! device as an ordered list of steps, each a list of sector batches:
//!
//! 1. every batch that says what the disk must hold there is checked first (a disk that changed
//!    since the bytes were planned is refused before the step writes anything);
//! 2. the batches are written in order;
//! 3. the step is flushed (fsync; on a block device also the buffer cache dropped);
//! 4. every batch is read back from the device and must equal what was written.
//!
//! A power cut can therefore fall only between steps or inside one step's writes, and the
//! callers order their steps so that either leaves a disk ESXi still boots.

use anyhow::{bail, Context};

use crate::blockdev::BlockDevice;
use crate::Refusal;

/// Bytes to put at a byte offset of the device (whole sectors on a block device).
#[derive(Clone, Debug)]
pub struct Batch<'a> {
    /// What is written and where, for messages: "the backup GPT header at LBA 1023".
    pub what: String,
    pub offset: u64,
    /// What the disk must hold there before the write; `None` where the caller just read it.
    pub expected: Option<&'a [u8]>,
    pub data: &'a [u8],
}

impl<'a> Batch<'a> {
    pub fn new(what: impl Into<String>, offset: u64, data: &'a [u8]) -> Batch<'a> {
        Batch {
            what: what.into(),
            offset,
            expected: None,
            data,
        }
    }

    /// Only if the disk still holds `expected` (same length as the data) at the offset.
    pub fn expecting(mut self, expected: &'a [u8]) -> Batch<'a> {
        self.expected = Some(expected);
        self
    }
}

/// Batches written together and made durable by one flush.
#[derive(Clone, Debug, Default)]
pub struct Step<'a> {
    pub batches: Vec<Batch<'a>>,
}

impl<'a> Step<'a> {
    pub fn of(batches: Vec<Batch<'a>>) -> Step<'a> {
        Step { batches }
    }

    pub fn one(batch: Batch<'a>) -> Step<'a> {
        Step {
            batches: vec![batch],
        }
    }
}

/// Run the steps in order: check, write, flush, read back. Stops at the first failure; a
/// batch whose expected bytes are not on the disk is a [`Refusal`] and its step writes nothing.
pub fn execute(dev: &BlockDevice, steps: &[Step]) -> anyhow::Result<()> {
    for step in steps.iter().filter(|s| !s.batches.is_empty()) {
        for b in &step.batches {
            let Some(expected) = b.expected else { continue };
            anyhow::ensure!(
                expected.len() == b.data.len(),
                "internal: {}: {} bytes expected, {} to write",
                b.what,
                expected.len(),
                b.data.len()
            );
            if !holds(dev, b.offset, expected)? {
                bail!(Refusal(format!(
                    "{} changed since it was planned; stopped before writing it",
                    b.what
                )));
            }
        }
        for b in &step.batches {
            dev.write_at(b.offset, b.data)
                .with_context(|| format!("writing {}", b.what))?;
        }
        dev.flush()
            .with_context(|| format!("flushing {}", dev.path().display()))?;
        for b in &step.batches {
            if !holds(dev, b.offset, b.data)? {
                bail!(
                    "verification failed: {} does not read back as written",
                    b.what
                );
            }
        }
    }
    Ok(())
}

/// A chunk of a comparison: a multiple of every sector size, small beside a 64 MiB file.
const COMPARE_CHUNK: usize = 1 << 20;

/// Whether the device holds `bytes` at `offset`, read a chunk at a time so a large batch costs
/// one chunk of memory, not a second copy of itself.
fn holds(dev: &BlockDevice, offset: u64, bytes: &[u8]) -> anyhow::Result<bool> {
    for (i, chunk) in bytes.chunks(COMPARE_CHUNK).enumerate() {
        let at = offset + (i * COMPARE_CHUNK) as u64;
        if dev.read_vec(at, chunk.len())? != chunk {
            return Ok(false);
        }
    }
    Ok(true)
}
