//! Text for the consoles a BMC shows: the Linux VGA console font has no en dash, arrow or
//! ellipsis (iLO/iDRAC video shows a box), and a serial-over-LAN line may not be UTF-8. Console
//! output is therefore plain ASCII; the JSON report keeps full Unicode.

/// `text` with every non-ASCII character replaced by its ASCII spelling ("–" → "-", "→" →
/// "->", "…" → "...") or, for anything without one, "?".
pub fn ascii(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c.is_ascii() => out.push(c),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2192}' | '\u{27f6}' => out.push_str("->"),
            '\u{2190}' => out.push_str("<-"),
            '\u{2194}' => out.push_str("<->"),
            '\u{2264}' => out.push_str("<="),
            '\u{2265}' => out.push_str(">="),
            '\u{2260}' => out.push_str("!="),
            '\u{2248}' => out.push('~'),
            '\u{00d7}' => out.push('x'),
            '\u{2026}' => out.push_str("..."),
            '\u{2018}' | '\u{2019}' | '\u{201a}' => out.push('\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' => out.push('"'),
            '\u{2022}' | '\u{00b7}' => out.push('*'),
            '\u{00a0}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            '\u{00b5}' => out.push('u'),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_text_is_ascii() {
        assert_eq!(
            ascii("bootbank slot 5 (LBA 8224–520191): passthru → vmkernel … ≤ 80×25"),
            "bootbank slot 5 (LBA 8224-520191): passthru -> vmkernel ... <= 80x25"
        );
        assert_eq!(ascii("plain"), "plain");
        assert_eq!(ascii("é"), "?");
        assert!(ascii("“quoted” — ≈ ≥ ← ·").is_ascii());
    }
}
