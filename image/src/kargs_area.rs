//! The fixed-size kernel-arguments area reserved in the GRUB menu at build time, so a built image
//! can take other default arguments in place (`rescue-image customize`) without changing the
//! length of any file or touching a signed binary:
//!
//! ```text
//! #>esxi-rescue-kargs-area-begin
//! set rescue_kargs="console=tty0 console=ttyS0,115200n8"          ...spaces... \n
//! #<esxi-rescue-kargs-area-end
//! ```
//!
//! The middle line is always [`LINE_LEN`] bytes. The markers are unique, so the areas are found
//! by scanning an image's bytes, whatever filesystem holds the file.

use anyhow::{bail, Result};

pub const BEGIN: &[u8] = b"#>esxi-rescue-kargs-area-begin\n";
pub const END: &[u8] = b"#<esxi-rescue-kargs-area-end\n";
/// Length of the `set rescue_kargs="…"` line, padding and newline included.
pub const LINE_LEN: usize = 448;
const PREFIX: &[u8] = b"set rescue_kargs=\"";
/// Longest argument string the area holds.
pub const MAX_KARGS: usize = LINE_LEN - PREFIX.len() - 2;
/// Bytes from a begin marker to the end of its end marker.
pub const AREA_LEN: usize = BEGIN.len() + LINE_LEN + END.len();

/// One area found in an image: where its line starts and the arguments it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub line_offset: u64,
    pub kargs: String,
}

/// Refuses what does not fit or would not survive GRUB's quoting: at most [`MAX_KARGS`] bytes of
/// printable ASCII without `"`, `\`, `$` (GRUB would expand or end the string there).
pub fn validate(kargs: &str) -> Result<()> {
    if kargs.len() > MAX_KARGS {
        bail!(
            "kernel arguments are {} bytes; the area reserved in the image holds at most {MAX_KARGS}",
            kargs.len()
        );
    }
    if let Some(c) = kargs
        .chars()
        .find(|c| !(' '..='~').contains(c) || matches!(c, '"' | '\\' | '$'))
    {
        bail!("kernel arguments may not contain {c:?} (printable ASCII without \" \\ $ only)");
    }
    Ok(())
}

/// The padded `set rescue_kargs="…"` line, exactly [`LINE_LEN`] bytes.
pub fn line(kargs: &str) -> Result<Vec<u8>> {
    validate(kargs)?;
    let mut out = Vec::with_capacity(LINE_LEN);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(kargs.as_bytes());
    out.push(b'"');
    out.resize(LINE_LEN - 1, b' ');
    out.push(b'\n');
    Ok(out)
}

/// The whole area as it goes into a GRUB config at build time.
pub fn render(kargs: &str) -> Result<String> {
    let mut out = BEGIN.to_vec();
    out.extend(line(kargs)?);
    out.extend_from_slice(END);
    Ok(String::from_utf8(out).expect("ASCII"))
}

/// Every area in `bytes` (offsets relative to `base`). A begin marker not followed by a
/// well-formed line and the end marker is an error: such an image is not ours to patch.
pub fn find(bytes: &[u8], base: u64) -> Result<Vec<Area>> {
    find_starting_before(bytes, base, bytes.len())
}

/// Like [`find`], for a window of a larger image: only begin markers that start before `limit`
/// count (the rest of the window is the overlap with the next one).
pub fn find_starting_before(bytes: &[u8], base: u64, limit: usize) -> Result<Vec<Area>> {
    let mut areas = Vec::new();
    let mut at = 0;
    while let Some(pos) = find_from(bytes, BEGIN, at).filter(|&p| p < limit) {
        let line_start = pos + BEGIN.len();
        let Some(line) = bytes.get(line_start..line_start + LINE_LEN) else {
            bail!(
                "kernel-arguments area at byte {} is cut off",
                base + pos as u64
            );
        };
        let end_ok = bytes
            .get(line_start + LINE_LEN..line_start + LINE_LEN + END.len())
            .is_some_and(|e| e == END);
        if !end_ok || !line.starts_with(PREFIX) || line[LINE_LEN - 1] != b'\n' {
            bail!(
                "kernel-arguments area at byte {} is damaged (split across blocks?)",
                base + pos as u64
            );
        }
        let body = &line[PREFIX.len()..LINE_LEN - 1];
        let Some(close) = body.iter().position(|&b| b == b'"') else {
            bail!(
                "kernel-arguments area at byte {} has no closing quote",
                base + pos as u64
            );
        };
        if body[close + 1..].iter().any(|&b| b != b' ') {
            bail!(
                "kernel-arguments area at byte {} has text after the closing quote",
                base + pos as u64
            );
        }
        areas.push(Area {
            line_offset: base + line_start as u64,
            kargs: String::from_utf8_lossy(&body[..close]).into_owned(),
        });
        at = line_start + LINE_LEN;
    }
    Ok(areas)
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_find_round_trip() {
        let area = render("console=ttyS0 rescue.log=debug").unwrap();
        assert_eq!(area.len(), BEGIN.len() + LINE_LEN + END.len());
        let mut img = vec![0u8; 100];
        img.extend_from_slice(area.as_bytes());
        img.extend_from_slice(b"menuentry ...");
        img.extend_from_slice(area.as_bytes());
        let found = find(&img, 1000).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line_offset, 1100 + BEGIN.len() as u64);
        assert_eq!(found[0].kargs, "console=ttyS0 rescue.log=debug");
    }

    #[test]
    fn refuses_bad_kargs() {
        assert!(validate(&"x".repeat(MAX_KARGS)).is_ok());
        assert!(validate(&"x".repeat(MAX_KARGS + 1)).is_err());
        for bad in ["a\"b", "a$b", "a\\b", "a\nb", "é"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(line("").unwrap().len(), LINE_LEN);
    }

    #[test]
    fn damaged_area_is_an_error() {
        let area = render("quiet").unwrap();
        let mut img = area.clone().into_bytes();
        img.truncate(BEGIN.len() + 100);
        assert!(find(&img, 0).is_err());
        let mut img = area.into_bytes();
        img[BEGIN.len() + 300] = b'x';
        assert!(find(&img, 0).is_err());
    }
}
