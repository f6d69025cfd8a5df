//! The machine-readable verdict, printed last on every console as one ASCII line:
//!
//! `ESXI-RESCUE-RESULT v1 {json} crc32=xxxxxxxx`
//!
//! A fleet reads it from a serial-over-LAN capture, which drops and mangles bytes: the CRC-32
//! (IEEE, as zlib's) of the JSON text exactly as printed tells a whole line from a damaged one.
//! Non-ASCII characters are `\u` escaped, so the line survives any console and the JSON is the
//! same value.

use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "ESXI-RESCUE-RESULT v1 ";
const CRC_TAG: &str = " crc32=";
/// Changes listed in the line; the report has them all.
const MAX_CHANGES: usize = 24;
const MAX_TEXT: usize = 160;

/// What the run came to, in one word a playbook can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Written and verified.
    Repaired,
    /// An ESXi install was found with nothing to do under the policy.
    NothingToDo,
    /// `rescue.mode=plan`: a plan was printed, nothing written.
    Planned,
    /// A deliberate refusal (ambiguous disks, an unreadable bank under an explicit policy, …).
    Refused,
    /// An error, or the worker died: nothing further was written.
    #[default]
    Failed,
    /// No disk holds an ESXi install (or `rescue.disk=` named none).
    NoEsxiDisk,
}

/// The line's content. init fills the host identity and mode; the worker the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub verdict: Verdict,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub disk: Option<String>,
    #[serde(default)]
    pub changes: Vec<String>,
    /// The JSON report's file name in a bootbank (`RSQ00001.JSN`).
    #[serde(default)]
    pub report: Option<String>,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl RunResult {
    pub fn new(verdict: Verdict) -> RunResult {
        RunResult {
            verdict,
            ..RunResult::default()
        }
    }

    /// The console line (no newline).
    pub fn line(&self) -> String {
        let mut shown = self.clone();
        if shown.changes.len() > MAX_CHANGES {
            let more = shown.changes.len() - MAX_CHANGES;
            shown.changes.truncate(MAX_CHANGES);
            shown.changes.push(format!("... and {more} more"));
        }
        for text in shown.changes.iter_mut().chain(shown.errors.iter_mut()) {
            if text.chars().count() > MAX_TEXT {
                *text = text.chars().take(MAX_TEXT - 3).collect::<String>() + "...";
            }
        }
        shown.errors.truncate(8);
        let json = ascii_json(&serde_json::to_string(&shown).unwrap_or_else(|_| "{}".into()));
        let crc = crc32fast::hash(json.as_bytes());
        format!("{PREFIX}{json}{CRC_TAG}{crc:08x}")
    }

    /// The last whole line in a console capture; lines whose CRC does not match are skipped.
    pub fn find_last(capture: &str) -> Option<RunResult> {
        capture.lines().rev().find_map(|l| Self::parse(l).ok())
    }

    /// One line (leading console noise before the prefix is allowed).
    pub fn parse(line: &str) -> Result<RunResult, String> {
        let start = line.find(PREFIX).ok_or("no result prefix")?;
        let rest = line[start + PREFIX.len()..].trim_end_matches(['\r', '\n']);
        let (json, crc) = rest.rsplit_once(CRC_TAG).ok_or("no crc32")?;
        let want = u32::from_str_radix(crc, 16).map_err(|_| format!("bad crc32 {crc:?}"))?;
        if crc.len() != 8 || crc32fast::hash(json.as_bytes()) != want {
            return Err("crc32 mismatch: the line was damaged".into());
        }
        serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))
    }
}

/// serde_json writes UTF-8 as is; every non-ASCII character (only possible inside strings)
/// becomes `\uXXXX` (a surrogate pair above the BMP).
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunResult {
        RunResult {
            verdict: Verdict::Repaired,
            mode: "repair".into(),
            uuid: Some("4c4c4544-0042-3510-8052-b4c04f4e4d32".into()),
            serial: Some("CZ2D1234AB".into()),
            disk: Some("/dev/sda".into()),
            changes: vec!["GPT: slot 5 bootbank → slot 5 (LBA 8224–520191)".into()],
            report: Some("RSQ00001.JSN".into()),
            errors: vec![],
        }
    }

    #[test]
    fn the_line_is_ascii_and_reads_back() {
        let line = sample().line();
        assert!(line.is_ascii(), "{line}");
        assert!(line.starts_with("ESXI-RESCUE-RESULT v1 {\"verdict\":\"repaired\""));
        assert!(line.contains("\\u2192"), "{line}");
        assert_eq!(RunResult::parse(&line), Ok(sample()));
        // A console timestamp in front is fine.
        assert_eq!(RunResult::parse(&format!("[ 12.3] {line}\r")), Ok(sample()));
        // The CRC is zlib's over the JSON text as printed.
        let json = &line[PREFIX.len()..line.rfind(" crc32=").unwrap()];
        let crc = &line[line.rfind('=').unwrap() + 1..];
        assert_eq!(format!("{:08x}", crc32fast::hash(json.as_bytes())), crc);
    }

    #[test]
    fn a_damaged_line_is_not_trusted() {
        let line = sample().line();
        let dropped = line.replacen("repaired", "repaire", 1);
        assert!(RunResult::parse(&dropped).unwrap_err().contains("crc32"));
        let flipped = line.replacen("sda", "sdb", 1);
        assert!(RunResult::parse(&flipped).is_err());
        assert!(RunResult::parse(&line[..line.len() - 1]).is_err());
        let mut older = sample();
        older.verdict = Verdict::Failed;
        let capture = format!("{}\nnoise\n{dropped}\n", older.line());
        assert_eq!(
            RunResult::find_last(&capture).unwrap().verdict,
            Verdict::Failed
        );
        assert_eq!(RunResult::find_last("nothing here"), None);
    }

    #[test]
    fn long_lists_are_cut_in_the_line() {
        let mut r = sample();
        r.changes = (0..100)
            .map(|i| format!("change {i} {}", "x".repeat(300)))
            .collect();
        let back = RunResult::parse(&r.line()).unwrap();
        assert_eq!(back.changes.len(), MAX_CHANGES + 1);
        assert_eq!(back.changes.last().unwrap(), "... and 76 more");
        assert!(back.changes[0].chars().count() <= MAX_TEXT);
    }

    #[test]
    fn verdict_words() {
        let words: Vec<String> = [
            Verdict::Repaired,
            Verdict::NothingToDo,
            Verdict::Planned,
            Verdict::Refused,
            Verdict::Failed,
            Verdict::NoEsxiDisk,
        ]
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
        assert_eq!(
            words,
            [
                "\"repaired\"",
                "\"nothing_to_do\"",
                "\"planned\"",
                "\"refused\"",
                "\"failed\"",
                "\"no_esxi_disk\""
            ]
        );
    }
}
