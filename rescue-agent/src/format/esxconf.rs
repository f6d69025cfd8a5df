//! PCI passthrough owner lines in ESXi's `/etc/vmware/esx.conf`.
//!
//! esx.conf holds one setting per line: `/path/key = "value"`. Passthrough is
//! recorded as `/device/<addr>/owner = "passthru"` (the other value ESXi knows
//! is `"vmkernel"`; anything but `passthru` counts as vmkernel). The same
//! `/device/<addr>/` branch may also carry `vmkname = "vmhba0"`.
//!
//! `<addr>` has been seen in several spellings, all parsed here:
//!
//! | form                                   | example          | digits  |
//! |----------------------------------------|------------------|---------|
//! | [`AddrForm::DecimalBusSlot`]           | `000:31.2`       | 3:2.1   |
//! | [`AddrForm::DecimalSegmentBusSlot`]    | `000:022:00.0`   | 3:3:2.1 |
//! | [`AddrForm::LinuxHex`]                 | `0000:01:00.0`   | 4:2:2.1 |
//! | [`AddrForm::DecimalColonFunction`]     | `000:022:00:0`   | 3:3:2:1 |
//!
//! The decimal forms are ESXi's own (KB 309986: `000:11.0` is bus 0, device
//! 0x0b). The hex form is what users append by hand. Addresses are compared
//! numerically through [`PciAddr`], never as strings. Anything else (SR-IOV
//! `.vf` names, garbage) is kept, reported with `addr: None`, and never edited
//! unless the caller explicitly asks.
//!
//! Editing is in place: [`set_owner_values`] replaces only the bytes between
//! the quotes of the chosen lines and refuses if the text changed since it was
//! parsed.

use std::fmt;
use std::ops::Range;

/// A PCI function address (segment/domain, bus, device, function).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PciAddr {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

/// Highest valid device (slot) number.
const MAX_DEVICE: u32 = 31;
/// Highest valid function number.
const MAX_FUNCTION: u32 = 7;
/// Highest valid bus number.
const MAX_BUS: u32 = 255;

impl PciAddr {
    /// Linux sysfs / lspci form: "0000:01:00.0" or "01:00.0" (hex). Error names the bad input.
    ///
    /// Accepts 1–4 hex digits of segment, 1–2 of bus and device, 1 of
    /// function, either case, surrounding whitespace ignored. A three-digit
    /// bus (ESXi's decimal `000:31.2`) is rejected rather than misread.
    pub fn parse_linux(s: &str) -> Result<PciAddr, AddrError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(AddrError::Empty);
        }
        let shape_err = || AddrError::Shape {
            input: input.to_string(),
        };
        let (head, function) = input.rsplit_once('.').ok_or_else(shape_err)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (segment, bus, device) = match parts.as_slice() {
            [b, d] => (None, *b, *d),
            [s, b, d] => (Some(*s), *b, *d),
            _ => return Err(shape_err()),
        };
        let segment = match segment {
            Some(t) => hex_field(input, "segment", t, 4, u32::from(u16::MAX))?,
            None => 0,
        };
        let bus = hex_field(input, "bus", bus, 2, MAX_BUS)?;
        let device = hex_field(input, "device", device, 2, MAX_DEVICE)?;
        let function = hex_field(input, "function", function, 1, MAX_FUNCTION)?;
        Ok(PciAddr::from_u32s(segment, bus, device, function))
    }

    /// Build from already range-checked values.
    fn from_u32s(segment: u32, bus: u32, device: u32, function: u32) -> PciAddr {
        PciAddr {
            segment: segment as u16,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        }
    }
}

/// One hex field of a Linux-style address, checked for digits and range.
fn hex_field(
    input: &str,
    field: &'static str,
    text: &str,
    max_digits: usize,
    max: u32,
) -> Result<u32, AddrError> {
    if text.is_empty() {
        return Err(AddrError::EmptyField {
            input: input.to_string(),
            field,
        });
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddrError::NotHex {
            input: input.to_string(),
            field,
            text: text.to_string(),
        });
    }
    if text.len() > max_digits {
        return Err(AddrError::TooManyDigits {
            input: input.to_string(),
            field,
            text: text.to_string(),
            max_digits,
        });
    }
    // At most 4 hex digits: cannot overflow u32.
    let value = u32::from_str_radix(text, 16).map_err(|_| AddrError::NotHex {
        input: input.to_string(),
        field,
        text: text.to_string(),
    })?;
    if value > max {
        return Err(AddrError::OutOfRange {
            input: input.to_string(),
            field,
            value,
            max,
        });
    }
    Ok(value)
}

impl fmt::Display for PciAddr {
    /// Linux form, lower-case hex: `0000:01:00.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// Why a Linux-style PCI address did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("empty PCI address (expected hex [SSSS:]BB:DD.F, e.g. 0000:01:00.0)")]
    Empty,
    #[error("PCI address {input:?} is not of the form [SSSS:]BB:DD.F (hex, e.g. 0000:01:00.0)")]
    Shape { input: String },
    #[error("PCI address {input:?}: {field} is empty")]
    EmptyField { input: String, field: &'static str },
    #[error("PCI address {input:?}: {field} {text:?} is not a hex number")]
    NotHex {
        input: String,
        field: &'static str,
        text: String,
    },
    #[error(
        "PCI address {input:?}: {field} {text:?} has more than {max_digits} hex digit(s) \
         (ESXi's decimal esx.conf form is not accepted here; use the Linux form, e.g. 0000:01:00.0)"
    )]
    TooManyDigits {
        input: String,
        field: &'static str,
        text: String,
        max_digits: usize,
    },
    #[error("PCI address {input:?}: {field} {value:#x} is out of range (max {max:#x})")]
    OutOfRange {
        input: String,
        field: &'static str,
        value: u32,
        max: u32,
    },
}

/// How an esx.conf `/device/<addr>/` key spelled its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrForm {
    /// `BBB:DD.F`, decimal (ESXi 4–8), e.g. `000:31.2`.
    DecimalBusSlot,
    /// `SSS:BBB:DD.F`, decimal with segment, e.g. `000:022:00.0`.
    DecimalSegmentBusSlot,
    /// `SSSS:BB:DD.F`, Linux-style hex, e.g. `0000:01:00.0` (user-written).
    LinuxHex,
    /// `SSS:BBB:DD:F`, decimal with the function after a colon, e.g. `000:022:00:0`.
    DecimalColonFunction,
}

/// Parse the `<addr>` part of a /device/<addr>/ key as ESXi writes it (rules above; decide the form by the digit counts: 3:2.1 → DecimalBusSlot, 3:3:2.1 → DecimalSegmentBusSlot, 4:2:2.1 → LinuxHex, 3:3:2:1 → DecimalColonFunction; reject out-of-range values: bus ≤ 255, device ≤ 31, function ≤ 7).
///
/// Exact digit counts are required; no whitespace is trimmed. SR-IOV `.vf`
/// names and anything else yield `None`.
pub fn parse_esx_addr(s: &str) -> Option<(PciAddr, AddrForm)> {
    // Split into fields and the separators between them.
    let mut fields: Vec<&str> = Vec::with_capacity(4);
    let mut seps: Vec<u8> = Vec::with_capacity(3);
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b':' || b == b'.' {
            fields.push(&s[start..i]);
            seps.push(b);
            start = i + 1;
        }
    }
    fields.push(&s[start..]);
    let lens: Vec<usize> = fields.iter().map(|f| f.len()).collect();

    let (form, radix) = match (seps.as_slice(), lens.as_slice()) {
        (b":.", [3, 2, 1]) => (AddrForm::DecimalBusSlot, 10),
        (b"::.", [3, 3, 2, 1]) => (AddrForm::DecimalSegmentBusSlot, 10),
        (b"::.", [4, 2, 2, 1]) => (AddrForm::LinuxHex, 16),
        (b":::", [3, 3, 2, 1]) => (AddrForm::DecimalColonFunction, 10),
        _ => return None,
    };
    let mut values = Vec::with_capacity(4);
    for field in &fields {
        let ok = if radix == 10 {
            field.bytes().all(|b| b.is_ascii_digit())
        } else {
            field.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !ok {
            return None;
        }
        // At most 4 digits: fits u32.
        values.push(u32::from_str_radix(field, radix).ok()?);
    }
    let (segment, bus, device, function) = match values.as_slice() {
        [b, d, f] => (0, *b, *d, *f),
        [s, b, d, f] => (*s, *b, *d, *f),
        _ => return None,
    };
    if segment > u32::from(u16::MAX)
        || bus > MAX_BUS
        || device > MAX_DEVICE
        || function > MAX_FUNCTION
    {
        return None;
    }
    Some((PciAddr::from_u32s(segment, bus, device, function), form))
}

/// The addresses a PCI-shaped key that [`parse_esx_addr`] rejects most likely means: every
/// valid reading with each of bus and device taken as decimal or hex (`0000:00:31.2`, device 31
/// written in decimal in the hex form, reads as `0000:00:1f.2`). Empty for SR-IOV `.vf` names,
/// valid keys and anything not made of 3 or 4 short numeric fields.
pub fn likely_readings(s: &str) -> Vec<PciAddr> {
    if parse_esx_addr(s).is_some() {
        return Vec::new();
    }
    let Some((head, function)) = s.rsplit_once(['.', ':']) else {
        return Vec::new();
    };
    let fields: Vec<&str> = head.split(':').collect();
    let shaped =
        |f: &str| !f.is_empty() && f.len() <= 4 && f.bytes().all(|b| b.is_ascii_hexdigit());
    if !(2..=3).contains(&fields.len())
        || !fields.iter().all(|f| shaped(f))
        || function.len() != 1
        || !function.bytes().all(|b| b.is_ascii_digit())
    {
        return Vec::new();
    }
    let function: u32 = function.parse().unwrap_or(u32::MAX);
    let (segment, bus, device) = match fields.as_slice() {
        [b, d] => ("0", *b, *d),
        [s, b, d] => (*s, *b, *d),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for seg_radix in [16, 10] {
        for bus_radix in [16, 10] {
            for dev_radix in [10, 16] {
                let parsed = (
                    u32::from_str_radix(segment, seg_radix),
                    u32::from_str_radix(bus, bus_radix),
                    u32::from_str_radix(device, dev_radix),
                );
                let (Ok(sg), Ok(b), Ok(d)) = parsed else {
                    continue;
                };
                if sg > u32::from(u16::MAX)
                    || b > MAX_BUS
                    || d > MAX_DEVICE
                    || function > MAX_FUNCTION
                {
                    continue;
                }
                let a = PciAddr::from_u32s(sg, b, d, function);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// One `/device/<addr>/owner = "…"` line of esx.conf.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OwnerLine {
    /// 1-based line number in esx.conf.
    pub line: usize,
    /// The `<addr>` exactly as written.
    pub key_addr: String,
    /// `None` when unparseable (kept, reported).
    pub addr: Option<PciAddr>,
    pub form: Option<AddrForm>,
    /// As written between the quotes, e.g. `passthru`.
    pub value: String,
    /// Byte range of the value (inside the quotes) in the whole text.
    #[serde(skip)]
    pub value_range: Range<usize>,
    /// From `/device/<same addr>/vmkname`, if present.
    pub vmkname: Option<String>,
}

impl OwnerLine {
    /// `value == "passthru"` (ESXi: anything else is vmkernel).
    pub fn is_passthru(&self) -> bool {
        self.value == "passthru"
    }
}

/// A `key = "value"` line, with the value's byte range in the whole text.
struct Setting<'a> {
    line: usize,
    key: &'a str,
    value: &'a str,
    value_range: Range<usize>,
}

/// Split `text` into `key = "value"` settings. Lines of any other shape are skipped.
fn settings(text: &str) -> Vec<Setting<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (idx, raw) in text.split('\n').enumerate() {
        let line_start = offset;
        offset += raw.len() + 1;
        let body = raw.strip_suffix('\r').unwrap_or(raw);
        let Some(eq) = body.find('=') else { continue };
        let key = body[..eq].trim();
        if key.is_empty() || key.contains('"') {
            continue;
        }
        let after_eq = &body[eq + 1..];
        let rest = after_eq.trim_start();
        let Some(quoted) = rest.strip_prefix('"') else {
            continue;
        };
        let Some(close) = quoted.find('"') else {
            continue;
        };
        if !quoted[close + 1..].trim().is_empty() {
            continue;
        }
        // Byte offset of the value inside `body` (== inside `raw`).
        let value_start_in_line = eq + 1 + (after_eq.len() - rest.len()) + 1;
        let start = line_start + value_start_in_line;
        out.push(Setting {
            line: idx + 1,
            key,
            value: &quoted[..close],
            value_range: start..start + close,
        });
    }
    out
}

/// `/device/<addr>/<leaf>` → `<addr>` (which must be non-empty and hold no `/`).
fn device_key<'a>(key: &'a str, leaf: &str) -> Option<&'a str> {
    let addr = key.strip_prefix("/device/")?.strip_suffix(leaf)?;
    let addr = addr.strip_suffix('/')?;
    if addr.is_empty() || addr.contains('/') {
        return None;
    }
    Some(addr)
}

/// Every `/device/<addr>/owner = "…"` line. Tolerate CRLF, spaces around '=', missing final newline; ignore everything else.
///
/// `vmkname` is taken from a `/device/<addr>/vmkname` line with the identical
/// `<addr>` spelling anywhere in the file (the last one if repeated).
pub fn parse_owners(text: &str) -> Vec<OwnerLine> {
    let all = settings(text);
    // One pass for the vmknames (the last one of an address wins): linear in the file, however
    // many owner lines a hostile esx.conf carries.
    let mut vmknames: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for s in &all {
        if let Some(addr) = device_key(s.key, "vmkname") {
            vmknames.insert(addr, s.value);
        }
    }
    all.iter()
        .filter_map(|s| {
            let key_addr = device_key(s.key, "owner")?;
            let parsed = parse_esx_addr(key_addr);
            Some(OwnerLine {
                line: s.line,
                key_addr: key_addr.to_string(),
                addr: parsed.map(|(a, _)| a),
                form: parsed.map(|(_, f)| f),
                value: s.value.to_string(),
                value_range: s.value_range.clone(),
                vmkname: vmknames.get(key_addr).map(|v| v.to_string()),
            })
        })
        .collect()
}

/// A driver module that esx.conf disables (ESXi up to 7.0U1 keeps module settings here).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DisabledModuleLine {
    pub line: usize,
    pub module: String,
}

/// Every `/vmkernel/module/<name>/enabled = "false"` line (also `/vmkernel/modules/…` and the
/// value `"0"`). The exact key `esxcli system module set --enabled=false` writes is UNVERIFIED
/// (docs/drivers.md): this is the branch where esx.conf keeps module options. One pass, linear.
pub fn disabled_modules(text: &str) -> Vec<DisabledModuleLine> {
    settings(text)
        .into_iter()
        .filter(|s| is_disabled_value(s.value))
        .filter_map(|s| {
            module_of_enabled_key(s.key).map(|name| DisabledModuleLine {
                line: s.line,
                module: name.to_string(),
            })
        })
        .collect()
}

/// `text` with the `enabled` value of each named module's disabling line set to `true`; every
/// other byte identical (the value is replaced between its quotes, no line is added).
pub fn enable_modules(text: &str, modules: &[&str]) -> String {
    let mut out = text.to_string();
    let mut targets: Vec<(Range<usize>, &str)> = settings(text)
        .into_iter()
        .filter(|s| is_disabled_value(s.value))
        .filter(|s| module_of_enabled_key(s.key).is_some_and(|name| modules.contains(&name)))
        .map(|s| (s.value_range, if s.value == "0" { "1" } else { "true" }))
        .collect();
    // Back to front, so earlier ranges stay valid.
    targets.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    for (r, value) in targets {
        out.replace_range(r, value);
    }
    out
}

const MODULE_BRANCHES: [&str; 2] = ["/vmkernel/module/", "/vmkernel/modules/"];
const MODULE_ENABLED_LEAF: &str = "/enabled";

fn is_disabled_value(v: &str) -> bool {
    v.eq_ignore_ascii_case("false") || v == "0"
}

/// `/vmkernel/module/<name>/enabled` → `<name>`.
fn module_of_enabled_key(key: &str) -> Option<&str> {
    let rest = MODULE_BRANCHES.iter().find_map(|b| key.strip_prefix(b))?;
    let name = rest.strip_suffix(MODULE_ENABLED_LEAF)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Why [`set_owner_values`] refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error(
        "esx.conf changed since it was read: line {line} (/device/{key_addr}/owner) \
         no longer holds \"{expected}\" at bytes {start}..{end}"
    )]
    Stale {
        line: usize,
        key_addr: String,
        expected: String,
        start: usize,
        end: usize,
    },
    #[error("owner lines {first} and {second} overlap in esx.conf; refusing to edit")]
    Overlap { first: usize, second: usize },
    #[error("new owner value {value:?} is not allowed (must be non-empty, without quotes or line breaks)")]
    BadValue { value: String },
}

/// Return `text` with the value of each given owner line replaced by `new_value`; every other byte identical (including the quotes, spacing and line endings). Never adds lines. Errors if a line's range no longer holds its recorded value (stale).
///
/// The range must also still sit between two `"` characters. The same line
/// given twice is edited once.
pub fn set_owner_values(
    text: &str,
    lines: &[&OwnerLine],
    new_value: &str,
) -> Result<String, EditError> {
    if new_value.is_empty() || new_value.contains(['"', '\n', '\r']) {
        return Err(EditError::BadValue {
            value: new_value.to_string(),
        });
    }
    let mut edits: Vec<&OwnerLine> = lines.to_vec();
    edits.sort_by_key(|l| (l.value_range.start, l.value_range.end));
    edits.dedup_by_key(|l| (l.value_range.start, l.value_range.end));

    let bytes = text.as_bytes();
    for l in &edits {
        let r = &l.value_range;
        let holds = text.get(r.clone()) == Some(l.value.as_str())
            && r.start > 0
            && bytes.get(r.start - 1) == Some(&b'"')
            && bytes.get(r.end) == Some(&b'"');
        if !holds {
            return Err(EditError::Stale {
                line: l.line,
                key_addr: l.key_addr.clone(),
                expected: l.value.clone(),
                start: r.start,
                end: r.end,
            });
        }
    }
    for pair in edits.windows(2) {
        // Each range is followed by its closing quote, so touching ranges overlap too.
        if pair[1].value_range.start <= pair[0].value_range.end {
            return Err(EditError::Overlap {
                first: pair[0].line,
                second: pair[1].line,
            });
        }
    }

    let mut out = String::with_capacity(text.len() + edits.len() * new_value.len());
    let mut pos = 0;
    for l in &edits {
        out.push_str(&text[pos..l.value_range.start]);
        out.push_str(new_value);
        pos = l.value_range.end;
    }
    out.push_str(&text[pos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(segment: u16, bus: u8, device: u8, function: u8) -> PciAddr {
        PciAddr {
            segment,
            bus,
            device,
            function,
        }
    }

    #[test]
    fn likely_readings_of_out_of_range_keys() {
        // A real user's edit: device 31 decimal in the hex form.
        assert_eq!(likely_readings("0000:00:31.2"), vec![addr(0, 0, 0x1f, 2)]);
        // Two readings: bus 10 hex or decimal, device 20 only decimal (0x20 > 0x1f).
        assert_eq!(
            likely_readings("0000:10:20.0"),
            vec![addr(0, 0x10, 20, 0), addr(0, 10, 20, 0)]
        );
        assert!(
            likely_readings("000:31.2").is_empty(),
            "valid keys have no other reading"
        );
        assert!(likely_readings("000:022:00.0.vf0").is_empty());
        assert!(likely_readings("garbage").is_empty());
        assert!(
            likely_readings("0000:00:99.9").is_empty(),
            "function 9 has no reading"
        );
    }

    #[test]
    fn disabled_module_lines_are_found_and_enabled_in_place() {
        let text = "/adv/Misc/HostName = \"esx01\"\n/vmkernel/module/vmkusb/enabled = \"false\"\r\n\
                    /vmkernel/module/lsi_mr3/enabled = \"true\"\n/vmkernel/modules/nvme_pcie/enabled = \"0\"\n";
        let found = disabled_modules(text);
        let names: Vec<&str> = found.iter().map(|m| m.module.as_str()).collect();
        assert_eq!(names, ["vmkusb", "nvme_pcie"]);
        assert_eq!(found[0].line, 2);
        let fixed = enable_modules(text, &["vmkusb"]);
        assert_eq!(
            fixed,
            text.replace("vmkusb/enabled = \"false\"", "vmkusb/enabled = \"true\"")
        );
        assert_eq!(disabled_modules(&fixed).len(), 1);
    }

    // ---- PciAddr::parse_linux / Display ----

    #[test]
    fn linux_full_and_short_forms() {
        assert_eq!(PciAddr::parse_linux("0000:01:00.0"), Ok(addr(0, 1, 0, 0)));
        assert_eq!(PciAddr::parse_linux("01:00.0"), Ok(addr(0, 1, 0, 0)));
        assert_eq!(
            PciAddr::parse_linux("0000:3B:1f.7"),
            Ok(addr(0, 0x3b, 0x1f, 7))
        );
        assert!(PciAddr::parse_linux("10000:01:00.0").is_err());
        assert_eq!(
            PciAddr::parse_linux(" 0001:ff:00.1\n"),
            Ok(addr(1, 0xff, 0, 1))
        );
        assert_eq!(
            PciAddr::parse_linux("ffff:16:00.0"),
            Ok(addr(0xffff, 0x16, 0, 0))
        );
    }

    #[test]
    fn linux_display_round_trip() {
        let a = addr(0, 0x3b, 0x1f, 7);
        assert_eq!(a.to_string(), "0000:3b:1f.7");
        assert_eq!(PciAddr::parse_linux(&a.to_string()), Ok(a));
        assert_eq!(addr(0xabcd, 1, 2, 3).to_string(), "abcd:01:02.3");
    }

    #[test]
    fn linux_errors_name_the_input() {
        assert_eq!(PciAddr::parse_linux("  "), Err(AddrError::Empty));
        let e = PciAddr::parse_linux("0000:01:00").unwrap_err();
        assert!(matches!(e, AddrError::Shape { .. }));
        assert!(e.to_string().contains("\"0000:01:00\""), "{e}");

        let e = PciAddr::parse_linux("0000:0g:00.0").unwrap_err();
        assert_eq!(
            e,
            AddrError::NotHex {
                input: "0000:0g:00.0".into(),
                field: "bus",
                text: "0g".into()
            }
        );
        assert!(e.to_string().contains("bus"), "{e}");

        let e = PciAddr::parse_linux("0000:01:20.0").unwrap_err();
        assert!(
            matches!(
                e,
                AddrError::OutOfRange {
                    field: "device",
                    value: 0x20,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("0000:01:20.0"), "{e}");

        let e = PciAddr::parse_linux("0000:01:00.8").unwrap_err();
        assert!(matches!(
            e,
            AddrError::OutOfRange {
                field: "function",
                ..
            }
        ));

        // ESXi decimal form has a 3-digit bus: refused, not misread as hex.
        let e = PciAddr::parse_linux("000:31.2").unwrap_err();
        assert!(
            matches!(e, AddrError::TooManyDigits { field: "bus", .. }),
            "{e:?}"
        );

        let e = PciAddr::parse_linux("0000::00.0").unwrap_err();
        assert!(matches!(e, AddrError::EmptyField { field: "bus", .. }));
        assert!(PciAddr::parse_linux("0:0:0:00.0").is_err());
        assert!(PciAddr::parse_linux("+1:00.0").is_err());
        assert!(PciAddr::parse_linux("01:00.00").is_err());
    }

    // ---- parse_esx_addr ----

    #[test]
    fn esx_decimal_bus_slot() {
        assert_eq!(
            parse_esx_addr("000:31.2"),
            Some((addr(0, 0, 31, 2), AddrForm::DecimalBusSlot))
        );
        assert_eq!(
            parse_esx_addr("001:00.0"),
            Some((addr(0, 1, 0, 0), AddrForm::DecimalBusSlot))
        );
    }

    #[test]
    fn esx_kb_decimal_11_is_device_0x0b() {
        // KB 309986: device 00:0b.0 is written /device/000:11.0/.
        let (a, form) = parse_esx_addr("000:11.0").unwrap();
        assert_eq!(form, AddrForm::DecimalBusSlot);
        assert_eq!(a.device, 0x0b);
        assert_eq!(a, PciAddr::parse_linux("0000:00:0b.0").unwrap());
    }

    #[test]
    fn esx_decimal_segment_bus_slot() {
        assert_eq!(
            parse_esx_addr("000:022:00.0"),
            Some((addr(0, 22, 0, 0), AddrForm::DecimalSegmentBusSlot))
        );
    }

    #[test]
    fn esx_linux_hex() {
        assert_eq!(
            parse_esx_addr("0000:01:00.0"),
            Some((addr(0, 1, 0, 0), AddrForm::LinuxHex))
        );
        assert_eq!(
            parse_esx_addr("0000:3B:1f.7"),
            Some((addr(0, 0x3b, 0x1f, 7), AddrForm::LinuxHex))
        );
    }

    #[test]
    fn esx_seed_001_colon_function() {
        // Seed 001: /device/000:022:00:0/owner = "passthru"
        assert_eq!(
            parse_esx_addr("000:022:00:0"),
            Some((addr(0, 22, 0, 0), AddrForm::DecimalColonFunction))
        );
    }

    #[test]
    fn esx_forms_compare_numerically() {
        let dec = parse_esx_addr("000:022:00.0").unwrap().0;
        let colon = parse_esx_addr("000:022:00:0").unwrap().0;
        let hex = parse_esx_addr("0000:16:00.0").unwrap().0;
        let linux = PciAddr::parse_linux("0000:16:00.0").unwrap();
        assert_eq!(dec, hex);
        assert_eq!(colon, hex);
        assert_eq!(linux, dec);
        assert_ne!(parse_esx_addr("0000:22:00.0").unwrap().0, dec);
        // 3:2.1 decimal vs 4:2:2.1 hex
        assert_eq!(
            parse_esx_addr("000:31.2").unwrap().0,
            parse_esx_addr("0000:00:1f.2").unwrap().0
        );
        // Ordering is numeric (segment, bus, device, function).
        assert!(parse_esx_addr("000:09.0").unwrap().0 < parse_esx_addr("000:10.0").unwrap().0);
    }

    #[test]
    fn esx_out_of_range_rejected() {
        assert_eq!(parse_esx_addr("256:00.0"), None); // bus
        assert_eq!(parse_esx_addr("000:32.0"), None); // device
        assert_eq!(parse_esx_addr("000:00.8"), None); // function
        assert_eq!(parse_esx_addr("000:256:00.0"), None);
        assert_eq!(parse_esx_addr("000:000:32:0"), None);
        assert_eq!(parse_esx_addr("0000:00:20.0"), None); // hex device 0x20
        assert_eq!(parse_esx_addr("0000:00:00.8"), None);
        assert!(parse_esx_addr("255:31.7").is_some());
        assert!(parse_esx_addr("999:255:31.7").is_some());
    }

    #[test]
    fn esx_garbage_and_vf_rejected() {
        for bad in [
            "",
            "foo",
            "000:022:00.0.vf0",
            "000:022:00.0.vf",
            "0000:01:00.0.vf3",
            "00:0b.0",   // 2:2.1 is no known form
            "00:0b:0",   // KB's display notation, not an esx.conf key
            "0:31.2",    // wrong digit count
            "000:31.22", // wrong digit count
            "000:3a.0",  // hex digit in a decimal form
            "00a:022:00:0",
            "0000:1g:00.0",
            "000.31:2",
            "000:31:2",
            " 000:31.2",
            "000:31.2 ",
            "+00:31.2",
            "000:022:00.0:0",
            "000::00.0",
            "٠٠٠:31.2", // non-ASCII digits
        ] {
            assert_eq!(parse_esx_addr(bad), None, "{bad:?}");
        }
    }

    // ---- parse_owners ----

    const SAMPLE: &str = "/system/uuid = \"5e1f-aa\"\n\
/device/000:31.2/owner = \"vmkernel\"\n\
/device/000:27.0/owner = \"passthru\"\n\
/device/001:00.0/owner = \"passthru\"\n\
/device/000:31.2/vmkname = \"vmhba0\"\n\
/vmkdevmgr/pci/m00008901/alias = \"vmhba0\"\n\
/device/000:022:00:0/owner = \"passthru\"\n\
/device/000:022:00.0.vf0/owner = \"passthru\"\n\
/device/0000:01:00.0/owner = \"passthru\"\n";

    #[test]
    fn owners_from_sample() {
        let owners = parse_owners(SAMPLE);
        let keys: Vec<&str> = owners.iter().map(|o| o.key_addr.as_str()).collect();
        assert_eq!(
            keys,
            [
                "000:31.2",
                "000:27.0",
                "001:00.0",
                "000:022:00:0",
                "000:022:00.0.vf0",
                "0000:01:00.0"
            ]
        );
        assert_eq!(owners[0].line, 2);
        assert_eq!(owners[0].value, "vmkernel");
        assert!(!owners[0].is_passthru());
        assert!(owners[1].is_passthru());
        assert_eq!(owners[3].line, 7);
        assert_eq!(owners[3].addr, Some(addr(0, 22, 0, 0)));
        assert_eq!(owners[3].form, Some(AddrForm::DecimalColonFunction));
        // SR-IOV VF: kept and reported, not parsed.
        assert_eq!(owners[4].addr, None);
        assert_eq!(owners[4].form, None);
        assert!(owners[4].is_passthru());
        // Linux hex, user-written, same address as 001:00.0.
        assert_eq!(owners[5].form, Some(AddrForm::LinuxHex));
        assert_eq!(owners[5].addr, owners[2].addr);
        for o in &owners {
            assert_eq!(&SAMPLE[o.value_range.clone()], o.value);
        }
    }

    #[test]
    fn owners_vmkname_association() {
        let owners = parse_owners(SAMPLE);
        assert_eq!(owners[0].vmkname.as_deref(), Some("vmhba0"));
        assert!(owners[1..].iter().all(|o| o.vmkname.is_none()));

        // vmkname before the owner line; last one wins; other spellings of
        // the same address do not count (esx.conf keys are strings).
        let text = "/device/000:022:00.0/vmkname = \"vmhba1\"\n\
/device/000:022:00.0/vmkname = \"vmhba2\"\n\
/device/0000:16:00.0/vmkname = \"vmhba9\"\n\
/device/000:022:00.0/owner = \"passthru\"\n";
        let owners = parse_owners(text);
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].vmkname.as_deref(), Some("vmhba2"));
    }

    #[test]
    fn owners_crlf_spacing_and_no_final_newline() {
        let text = "/a/b = \"c\"\r\n\
/device/000:31.2/owner=\"passthru\"\r\n\
  /device/000:27.0/owner   =   \"vmkernel\"  \r\n\
/device/000:11.0/owner\t=\t\"passthru\"\r\n\
/device/000:02.0/owner = \"passthru\"";
        let owners = parse_owners(text);
        assert_eq!(owners.len(), 4);
        assert_eq!(
            owners.iter().map(|o| o.line).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert_eq!(owners[0].value, "passthru");
        assert_eq!(owners[1].value, "vmkernel");
        assert_eq!(owners[2].addr, Some(addr(0, 0, 0x0b, 0)));
        assert_eq!(owners[3].value, "passthru");
        for o in &owners {
            assert_eq!(&text[o.value_range.clone()], o.value);
            assert!(!o.value.contains('\r'));
        }
    }

    #[test]
    fn owners_ignore_other_lines() {
        let text = "\n\
# comment\n\
/device/000:31.2/owner\n\
/device/000:31.2/owner = passthru\n\
/device/000:31.2/owner = \"passthru\n\
/device/000:31.2/owner = \"passthru\" trailing\n\
/device//owner = \"passthru\"\n\
/device/a/b/owner = \"passthru\"\n\
/device/000:31.2/ownerx = \"passthru\"\n\
/device/000:31.2/vmkname = \"vmhba0\"\n\
/xdevice/000:31.2/owner = \"passthru\"\n\
/device/000:31.2owner = \"passthru\"\n\
/device/000:31.2/owner = \"\"\n";
        let owners = parse_owners(text);
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].line, 13);
        assert_eq!(owners[0].value, "");
        assert!(!owners[0].is_passthru());
        assert_eq!(owners[0].vmkname.as_deref(), Some("vmhba0"));
        assert!(parse_owners("").is_empty());
    }

    #[test]
    fn owners_value_range_with_multibyte_text() {
        let text = "/system/name = \"héllo wörld\"\n/device/000:31.2/owner = \"passthru\"\n";
        let owners = parse_owners(text);
        assert_eq!(&text[owners[0].value_range.clone()], "passthru");
    }

    // ---- set_owner_values ----

    /// Assert `after` equals `before` except that each range was replaced by `new`.
    fn assert_only_ranges_changed(before: &str, after: &str, ranges: &[Range<usize>], new: &str) {
        let mut sorted = ranges.to_vec();
        sorted.sort_by_key(|r| r.start);
        let mut pos_b = 0;
        let mut pos_a = 0;
        for r in &sorted {
            let keep = r.start - pos_b;
            assert_eq!(
                &before.as_bytes()[pos_b..r.start],
                &after.as_bytes()[pos_a..pos_a + keep]
            );
            pos_a += keep;
            assert_eq!(&after[pos_a..pos_a + new.len()], new);
            pos_a += new.len();
            pos_b = r.end;
        }
        assert_eq!(&before.as_bytes()[pos_b..], &after.as_bytes()[pos_a..]);
        assert_eq!(
            after.len() as isize - before.len() as isize,
            sorted
                .iter()
                .map(|r| new.len() as isize - r.len() as isize)
                .sum::<isize>()
        );
    }

    #[test]
    fn set_changes_only_the_values() {
        let text = "/a = \"b\"\r\n/device/000:27.0/owner  =\"passthru\"\r\n/device/000:31.2/owner = \"vmkernel\"\r\n/device/000:022:00:0/owner = \"passthru\"";
        let owners = parse_owners(text);
        let chosen = [&owners[0], &owners[2]];
        let out = set_owner_values(text, &chosen, "vmkernel").unwrap();
        assert_eq!(
            out,
            "/a = \"b\"\r\n/device/000:27.0/owner  =\"vmkernel\"\r\n/device/000:31.2/owner = \"vmkernel\"\r\n/device/000:022:00:0/owner = \"vmkernel\""
        );
        assert_only_ranges_changed(
            text,
            &out,
            &[owners[0].value_range.clone(), owners[2].value_range.clone()],
            "vmkernel",
        );
        assert_eq!(out.lines().count(), text.lines().count());
        // Re-parse: same lines, same addresses, new values.
        let again = parse_owners(&out);
        assert_eq!(again.len(), owners.len());
        assert!(again.iter().all(|o| o.value == "vmkernel"));
        assert_eq!(again[1], owners[1]);
    }

    #[test]
    fn set_with_length_change_and_unsorted_duplicate_input() {
        let owners = parse_owners(SAMPLE);
        // Unsorted, with a duplicate, different value length.
        let chosen = [&owners[5], &owners[1], &owners[5], &owners[3]];
        let out = set_owner_values(SAMPLE, &chosen, "x").unwrap();
        assert_only_ranges_changed(
            SAMPLE,
            &out,
            &[
                owners[1].value_range.clone(),
                owners[3].value_range.clone(),
                owners[5].value_range.clone(),
            ],
            "x",
        );
        let again = parse_owners(&out);
        let vals: Vec<&str> = again.iter().map(|o| o.value.as_str()).collect();
        assert_eq!(vals, ["vmkernel", "x", "passthru", "x", "passthru", "x"]);
    }

    #[test]
    fn set_nothing_is_identity() {
        assert_eq!(set_owner_values(SAMPLE, &[], "vmkernel").unwrap(), SAMPLE);
    }

    #[test]
    fn set_refuses_stale_ranges() {
        let owners = parse_owners(SAMPLE);
        // Text edited since parsing: value moved.
        let shifted = format!("/new = \"line\"\n{SAMPLE}");
        let e = set_owner_values(&shifted, &[&owners[1]], "vmkernel").unwrap_err();
        assert!(matches!(e, EditError::Stale { line: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("000:27.0"), "{e}");

        // Value changed in place.
        let changed = SAMPLE.replacen("\"passthru\"", "\"vmkernel\"", 1);
        assert!(matches!(
            set_owner_values(&changed, &[&owners[1]], "vmkernel"),
            Err(EditError::Stale { .. })
        ));

        // Range past the end of a shorter text.
        assert!(matches!(
            set_owner_values("short", &[&owners[5]], "vmkernel"),
            Err(EditError::Stale { .. })
        ));

        // Same bytes but no longer between quotes.
        let mut fake = owners[1].clone();
        fake.value = "passthru".into();
        let unquoted = "xpassthrux";
        fake.value_range = 1..9;
        assert!(matches!(
            set_owner_values(unquoted, &[&fake], "vmkernel"),
            Err(EditError::Stale { .. })
        ));
        // A range at 0 has no opening quote.
        fake.value_range = 0..8;
        assert!(matches!(
            set_owner_values("passthru\"", &[&fake], "vmkernel"),
            Err(EditError::Stale { .. })
        ));
    }

    #[test]
    fn set_refuses_bad_values_and_overlaps() {
        let owners = parse_owners(SAMPLE);
        for bad in ["", "a\"b", "a\nb", "a\rb"] {
            assert_eq!(
                set_owner_values(SAMPLE, &[&owners[1]], bad),
                Err(EditError::BadValue { value: bad.into() })
            );
        }
        // Overlapping ranges that both pass the quote check: `"a"b"` with
        // values `a"b` (1..4) and `b` (3..4).
        let text = "\"a\"b\"";
        let mut a = owners[1].clone();
        a.value = "a\"b".into();
        a.value_range = 1..4;
        let mut b = a.clone();
        b.value = "b".into();
        b.value_range = 3..4;
        b.line = 99;
        assert_eq!(
            set_owner_values(text, &[&b, &a], "vmkernel"),
            Err(EditError::Overlap {
                first: a.line,
                second: 99
            })
        );
        // Empty value inside `""`; identical ranges given twice.
        let text = "\"\"";
        let mut e1 = owners[1].clone();
        e1.value = String::new();
        e1.value_range = 1..1;
        let mut e2 = e1.clone();
        e2.line = 50;
        e2.value_range = 1..1;
        // Identical ranges are deduplicated, not an overlap.
        assert_eq!(set_owner_values(text, &[&e1, &e2], "v").unwrap(), "\"v\"");
    }

    #[test]
    fn serialize_shapes() {
        fn is_serialize<T: serde::Serialize>() {}
        is_serialize::<OwnerLine>();
        is_serialize::<PciAddr>();
        is_serialize::<AddrForm>();
    }
}
