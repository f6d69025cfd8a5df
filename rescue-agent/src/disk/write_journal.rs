//! The write journal: with `RESCUE_AGENT_WRITE_JOURNAL=FILE` set, every write a repair issues
//! (offset and bytes) and every flush is appended to FILE, in order. The crash-cut test replays
//! prefixes and per-flush reorderings of it; an audit can read exactly what a run changed.
//!
//! Format, repeated: one tag byte, `W` then offset and length (u64 little-endian) and the bytes,
//! or `F` for a flush.

use std::fs::OpenOptions;
use std::io::Write;

pub const WRITE_JOURNAL_ENV: &str = "RESCUE_AGENT_WRITE_JOURNAL";

/// One journal entry, as read back by [`parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalEntry {
    Write { offset: u64, data: Vec<u8> },
    Flush,
}

fn append(bytes: &[&[u8]]) {
    let Some(path) = std::env::var_os(WRITE_JOURNAL_ENV) else {
        return;
    };
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        for b in bytes {
            let _ = f.write_all(b);
        }
    }
}

pub fn record_write(offset: u64, data: &[u8]) {
    append(&[
        b"W",
        &offset.to_le_bytes(),
        &(data.len() as u64).to_le_bytes(),
        data,
    ]);
}

pub fn record_flush() {
    append(&[b"F"]);
}

/// Read a journal back; a truncated or unknown entry is an error naming its byte offset.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Vec<JournalEntry>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match bytes[at] {
            b'F' => {
                out.push(JournalEntry::Flush);
                at += 1;
            }
            b'W' => {
                let head = bytes
                    .get(at + 1..at + 17)
                    .ok_or_else(|| anyhow::anyhow!("journal truncated at byte {at}"))?;
                let offset = u64::from_le_bytes(head[..8].try_into()?);
                let len = usize::try_from(u64::from_le_bytes(head[8..].try_into()?))?;
                let data = (at + 17)
                    .checked_add(len)
                    .and_then(|end| bytes.get(at + 17..end))
                    .ok_or_else(|| anyhow::anyhow!("journal write at byte {at} truncated"))?;
                out.push(JournalEntry::Write {
                    offset,
                    data: data.to_vec(),
                });
                at += 17 + len;
            }
            t => anyhow::bail!("journal: unknown tag {t:#04x} at byte {at}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_writes_and_flushes_and_rejects_truncation() {
        let mut bytes = b"W".to_vec();
        bytes.extend(512u64.to_le_bytes());
        bytes.extend(3u64.to_le_bytes());
        bytes.extend(b"abcF");
        let entries = parse(&bytes).unwrap();
        assert_eq!(
            entries,
            vec![
                JournalEntry::Write {
                    offset: 512,
                    data: b"abc".to_vec()
                },
                JournalEntry::Flush
            ]
        );
        assert!(parse(&bytes[..bytes.len() - 2]).is_err());
        assert!(parse(b"X").is_err());
    }
}
