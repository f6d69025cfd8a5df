//! The Range header (RFC 9110 §14.2) against a representation of `size` bytes: one byte span,
//! the whole body, or unsatisfiable. BMCs ask for one span at a time; multiple ranges and anything
//! malformed fall back to the full body, which the RFC allows (a server may ignore Range).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Send everything with 200.
    Full,
    /// Bytes `first..=last`, both inside the representation: 206.
    Part { first: u64, last: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

impl Span {
    /// Bytes the body carries for a representation of `size` bytes.
    pub fn len(self, size: u64) -> u64 {
        match self {
            Span::Full => size,
            Span::Part { first, last } => last - first + 1,
            Span::Unsatisfiable => 0,
        }
    }
}

/// Resolves a Range header value.
pub fn resolve(header: &str, size: u64) -> Span {
    let Some((unit, set)) = header.trim().split_once('=') else {
        return Span::Full;
    };
    // Range units are case-insensitive; other units (none exist in practice) are ignored.
    if !unit.eq_ignore_ascii_case("bytes") {
        return Span::Full;
    }
    let spec = set.trim_matches([' ', '\t']);
    if spec.contains(',') {
        return Span::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Full;
    };
    if first.is_empty() {
        // Suffix range "-n": the last n bytes.
        return match number(last) {
            None => Span::Full,
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part {
                first: size - n.min(size),
                last: size - 1,
            },
        };
    }
    let Some(first) = number(first) else {
        return Span::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(l) => l,
            None => return Span::Full,
        }
    };
    if last < first {
        // An invalid range-spec: the whole header is ignored.
        return Span::Full;
    }
    if first >= size {
        return Span::Unsatisfiable;
    }
    Span::Part {
        first,
        last: last.min(size - 1),
    }
}

/// A run of ASCII digits; values past u64 saturate (they are past any file's end anyway).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> Span {
        Span::Part { first, last }
    }

    #[test]
    fn closed_range() {
        assert_eq!(resolve("bytes=0-99", 1000), part(0, 99));
        assert_eq!(resolve("bytes=100-199", 1000), part(100, 199));
        assert_eq!(resolve("bytes=5-5", 1000), part(5, 5));
        assert_eq!(part(100, 199).len(1000), 100);
    }

    #[test]
    fn open_range() {
        assert_eq!(resolve("bytes=900-", 1000), part(900, 999));
        assert_eq!(resolve("bytes=0-", 1000), part(0, 999));
        assert_eq!(resolve("bytes=999-", 1000), part(999, 999));
    }

    #[test]
    fn suffix_range() {
        assert_eq!(resolve("bytes=-100", 1000), part(900, 999));
        assert_eq!(resolve("bytes=-1", 1000), part(999, 999));
        // Longer than the file: the whole file, still as a 206.
        assert_eq!(resolve("bytes=-5000", 1000), part(0, 999));
        assert_eq!(resolve("bytes=-5000", 1000).len(1000), 1000);
    }

    #[test]
    fn end_past_size_is_clamped() {
        assert_eq!(resolve("bytes=500-5000", 1000), part(500, 999));
        assert_eq!(
            resolve("bytes=0-99999999999999999999999", 1000),
            part(0, 999)
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve("bytes=1000-", 1000), Span::Unsatisfiable);
        assert_eq!(resolve("bytes=1000-2000", 1000), Span::Unsatisfiable);
        assert_eq!(resolve("bytes=-0", 1000), Span::Unsatisfiable);
        assert_eq!(resolve("bytes=0-", 0), Span::Unsatisfiable);
        assert_eq!(resolve("bytes=-10", 0), Span::Unsatisfiable);
        assert_eq!(
            resolve("bytes=99999999999999999999999-", 1000),
            Span::Unsatisfiable
        );
        assert_eq!(Span::Unsatisfiable.len(1000), 0);
    }

    #[test]
    fn multiple_ranges_are_ignored() {
        assert_eq!(resolve("bytes=0-1,5-6", 1000), Span::Full);
        assert_eq!(resolve("bytes=0-1, 5-6", 1000), Span::Full);
        assert_eq!(resolve("bytes=-1,0-0", 1000), Span::Full);
    }

    #[test]
    fn malformed_is_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=--5",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=200-100",
            "items=0-10",
            "bytes 0-10",
            "=0-10",
            "bytes=0x10-20",
            "bytes=١-٢",
        ] {
            assert_eq!(resolve(h, 1000), Span::Full, "{h:?}");
        }
        assert_eq!(Span::Full.len(1000), 1000);
    }

    #[test]
    fn unit_case_and_whitespace() {
        assert_eq!(resolve("Bytes=1-2", 1000), part(1, 2));
        assert_eq!(resolve(" bytes=1-2 ", 1000), part(1, 2));
        assert_eq!(resolve("bytes= 1-2", 1000), part(1, 2));
    }
}
