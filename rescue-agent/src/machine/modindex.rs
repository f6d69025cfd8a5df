//! The kernel module index: which modules a device's modalias asks for (`modules.alias`), where
//! each module file lives and what it needs first (`modules.dep`).
//!
//! Shared by the agent (coldplug as PID 1) and the image builder (module closure, trimmed index
//! files). Self-contained: std and thiserror only.
//!
//! Matching is fnmatch(3) without flags, as kmod does. Patterns are indexed by their literal
//! prefix (the text before the first wildcard, e.g. `pci:v00001000d00000060sv`): a modalias only
//! looks at patterns whose literal prefix is one of its own prefixes, so a few hundred modaliases
//! against Debian's ~26k alias lines take a few milliseconds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A malformed `modules.alias` / `modules.dep`, or one that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ModIndexError {
    #[error("bad line {line} of {file}: {what}")]
    BadLine {
        file: &'static str,
        line: usize,
        what: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The parsed `modules.alias` + `modules.dep` of one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// Compiled alias patterns with the (normalised) module each one names.
    aliases: Vec<(Pattern, String)>,
    /// Literal prefix → indices into `aliases`.
    by_prefix: HashMap<String, Vec<usize>>,
    /// Module name → path relative to the modules dir (from either side of a modules.dep line).
    paths: HashMap<String, String>,
    /// Module name → its dependencies as listed on its own modules.dep line.
    deps: HashMap<String, Vec<String>>,
}

impl ModuleIndex {
    /// Parses the text of `modules.alias` and `modules.dep`.
    pub fn parse(modules_alias: &str, modules_dep: &str) -> Result<ModuleIndex, ModIndexError> {
        let mut index = ModuleIndex::default();
        for (n, line) in content_lines(modules_dep) {
            let bad = |what: &str| ModIndexError::BadLine {
                file: "modules.dep",
                line: n,
                what: what.to_string(),
            };
            let (path, rest) = line.split_once(':').ok_or_else(|| bad("no ':'"))?;
            let path = path.trim();
            let name = module_name_of_path(path).ok_or_else(|| bad("no module file name"))?;
            let mut deps = Vec::new();
            for dep_path in rest.split_whitespace() {
                let dep = module_name_of_path(dep_path)
                    .ok_or_else(|| bad(&format!("bad dependency {dep_path:?}")))?;
                index
                    .paths
                    .entry(dep.clone())
                    .or_insert_with(|| dep_path.to_string());
                deps.push(dep);
            }
            index.paths.insert(name.clone(), path.to_string());
            // depmod never lists a module twice; if it did, the first line wins.
            index.deps.entry(name).or_insert(deps);
        }
        for (n, line) in content_lines(modules_alias) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [keyword, pattern, module] = fields[..] else {
                return Err(ModIndexError::BadLine {
                    file: "modules.alias",
                    line: n,
                    what: format!(
                        "expected 'alias PATTERN MODULE', found {} fields",
                        fields.len()
                    ),
                });
            };
            if keyword != "alias" {
                return Err(ModIndexError::BadLine {
                    file: "modules.alias",
                    line: n,
                    what: format!("unknown keyword {keyword:?}"),
                });
            }
            let compiled = Pattern::compile(pattern);
            index
                .by_prefix
                .entry(compiled.literal_prefix())
                .or_default()
                .push(index.aliases.len());
            index.aliases.push((compiled, normalise(module)));
        }
        Ok(index)
    }

    /// Reads `modules.alias` and `modules.dep` from a modules directory (`/lib/modules/<ver>`).
    pub fn load(dir: &Path) -> Result<ModuleIndex, ModIndexError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| ModIndexError::Read { path, source })
        };
        ModuleIndex::parse(&read("modules.alias")?, &read("modules.dep")?)
    }

    /// Modules whose alias patterns match a modalias (e.g.
    /// "pci:v00001000d00000060sv00001000sd00001013bc01sc04i00"); names normalised ('-' → '_'),
    /// deduplicated, sorted.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        let text: Vec<char> = modalias.chars().collect();
        let mut found = BTreeSet::new();
        let prefix_ends = modalias
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(modalias.len()));
        for end in prefix_ends {
            let Some(candidates) = self.by_prefix.get(&modalias[..end]) else {
                continue;
            };
            for &i in candidates {
                let (pattern, module) = &self.aliases[i];
                if pattern.matches(&text) {
                    found.insert(module.clone());
                }
            }
        }
        found.into_iter().collect()
    }

    /// Path of the module file relative to the modules dir, from modules.dep.
    pub fn path_of(&self, module: &str) -> Option<&str> {
        self.paths.get(&normalise(module)).map(String::as_str)
    }

    /// The module and all its dependencies (transitively), dependencies first, each once: the
    /// insmod order. Empty when modules.dep does not know the module (built in, or absent).
    /// A dependency cycle (never produced by depmod) is cut where it closes.
    pub fn load_order(&self, module: &str) -> Vec<String> {
        let root = normalise(module);
        if !self.paths.contains_key(&root) {
            return Vec::new();
        }
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        // Iterative post-order DFS: (module, index of the next dependency to visit).
        let mut stack = vec![(root.clone(), 0usize)];
        seen.insert(root);
        while let Some((name, next)) = stack.pop() {
            let deps = self.deps.get(&name).map(Vec::as_slice).unwrap_or(&[]);
            match deps.get(next) {
                Some(dep) => {
                    let dep = dep.clone();
                    stack.push((name, next + 1));
                    if seen.insert(dep.clone()) {
                        stack.push((dep, 0));
                    }
                }
                None => order.push(name),
            }
        }
        order
    }

    /// Every module named in modules.dep, sorted.
    pub fn module_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.paths.keys().cloned().collect();
        names.sort();
        names
    }
}

/// fnmatch(3) without flags: '*', '?', '[...]' incl. ranges and '!'/'^' negation, backslash escape.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    Pattern::compile(pattern).matches(&text)
}

/// Module name of a module path: the file name without `.ko[.xz|.zst|.gz]`, '-' → '_'.
fn module_name_of_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    (!stem.is_empty()).then(|| normalise(stem))
}

fn normalise(module: &str) -> String {
    module.replace('-', "_")
}

/// Non-empty, non-comment lines with their 1-based line numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// One element of a compiled pattern; every element but `Star` matches exactly one character.
#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    Named(NamedClass),
}

#[derive(Debug, Clone, Copy)]
enum NamedClass {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl NamedClass {
    fn from_name(name: &str) -> Option<NamedClass> {
        Some(match name {
            "alnum" => NamedClass::Alnum,
            "alpha" => NamedClass::Alpha,
            "blank" => NamedClass::Blank,
            "cntrl" => NamedClass::Cntrl,
            "digit" => NamedClass::Digit,
            "graph" => NamedClass::Graph,
            "lower" => NamedClass::Lower,
            "print" => NamedClass::Print,
            "punct" => NamedClass::Punct,
            "space" => NamedClass::Space,
            "upper" => NamedClass::Upper,
            "xdigit" => NamedClass::Xdigit,
            _ => return None,
        })
    }

    fn contains(self, c: char) -> bool {
        match self {
            NamedClass::Alnum => c.is_ascii_alphanumeric(),
            NamedClass::Alpha => c.is_ascii_alphabetic(),
            NamedClass::Blank => c == ' ' || c == '\t',
            NamedClass::Cntrl => c.is_ascii_control(),
            NamedClass::Digit => c.is_ascii_digit(),
            NamedClass::Graph => c.is_ascii_graphic(),
            NamedClass::Lower => c.is_ascii_lowercase(),
            NamedClass::Print => c.is_ascii_graphic() || c == ' ',
            NamedClass::Punct => c.is_ascii_punctuation(),
            NamedClass::Space => c.is_ascii_whitespace() || c == '\x0b',
            NamedClass::Upper => c.is_ascii_uppercase(),
            NamedClass::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, items } => {
                let hit = items.iter().any(|item| match item {
                    ClassItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
                    ClassItem::Named(class) => class.contains(c),
                });
                hit != *negated
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    fn compile(pattern: &str) -> Pattern {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    if !matches!(tokens.last(), Some(Token::Star)) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '\\' => match chars.get(i) {
                    Some(&escaped) => {
                        tokens.push(Token::Literal(escaped));
                        i += 1;
                    }
                    None => tokens.push(Token::Literal('\\')),
                },
                '[' => match parse_class(&chars, i) {
                    Some((token, next)) => {
                        tokens.push(token);
                        i = next;
                    }
                    // An unterminated bracket is an ordinary '['.
                    None => tokens.push(Token::Literal('[')),
                },
                _ => tokens.push(Token::Literal(c)),
            }
        }
        Pattern { tokens }
    }

    /// The text every match starts with: the literals before the first wildcard.
    fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Greedy match with backtracking to the last '*': linear for the patterns modules use.
    fn matches(&self, text: &[char]) -> bool {
        let tokens = &self.tokens;
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(token) if token.matches_one(text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        tokens[p..].iter().all(|token| matches!(token, Token::Star))
    }
}

/// Parses a bracket expression whose '[' is just before `start`. Returns the token and the index
/// after its ']', or None when there is no closing ']'.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        first = false;
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest = &chars[i + 2..];
            if let Some(len) = rest.windows(2).position(|w| w == [':', ']']) {
                let name: String = rest[..len].iter().collect();
                if let Some(class) = NamedClass::from_name(&name) {
                    items.push(ClassItem::Named(class));
                    i += 2 + len + 2;
                    continue;
                }
            }
        }
        let (lo, after_lo) = class_char(chars, i)?;
        i = after_lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            let (hi, after_hi) = class_char(chars, i + 1)?;
            items.push(ClassItem::Range(lo, hi));
            i = after_hi;
        } else {
            items.push(ClassItem::Range(lo, lo));
        }
    }
}

/// One (possibly backslash-escaped) character inside a bracket expression.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '\\' => chars.get(i + 1).map(|&c| (c, i + 2)),
        &c => Some((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001000d00000060sv*sd*bc*sc*i* megaraid_sas
alias pci:v00001000d00000079sv*sd*bc*sc*i* megaraid_sas
alias pci:v00001000d00000012sv*sd*bc*sc*i* sym53c8xx
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias pci:v00008086d00002922sv*sd*bc*sc*i* ahci
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias pci:v00001B36d00000010sv*sd*bc*sc*i* nvme
alias pci:v*d*sv*sd*bc0Csc03i30* xhci-pci
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb-storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip62in* uas
alias usb:v0BC2p2321d[0-9]*dc*dsc*dp*ic*isc*ip*in* usb-storage
alias usb:v054Cp0010d0[0-4][0-9][0-9]dc*dsc*dp*ic*isc*ip*in* usb-storage
alias virtio:d00000002v* virtio_blk
alias virtio:d00000008v* virtio_scsi
alias scsi:t-0x00* sd_mod
alias scsi:t-0x05* sr_mod
alias fs-vfat vfat
alias *:*foo* catch_all
";

    const DEP: &str = "\
kernel/drivers/scsi/megaraid/megaraid_sas.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/sd_mod.ko: kernel/block/t10-pi.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko kernel/lib/crc-t10dif.ko
kernel/block/t10-pi.ko: kernel/lib/crc-t10dif.ko
kernel/lib/crc-t10dif.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz
kernel/drivers/nvme/host/nvme-core.ko.xz:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/fat/fat.ko:
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(ALIAS, DEP).unwrap()
    }

    #[test]
    fn pci_modalias_finds_its_driver() {
        let idx = index();
        assert_eq!(
            idx.modules_for("pci:v00001000d00000060sv00001000sd00001013bc01sc04i00"),
            ["megaraid_sas"]
        );
        assert_eq!(
            idx.modules_for("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"),
            ["ahci"]
        );
        assert_eq!(
            idx.modules_for("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"),
            ["nvme"]
        );
        assert_eq!(
            idx.modules_for("pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30"),
            ["xhci_pci"]
        );
        assert!(idx
            .modules_for("pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00")
            .is_empty());
    }

    #[test]
    fn usb_interface_and_bcd_ranges() {
        let idx = index();
        let bot = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";
        assert_eq!(idx.modules_for(bot), ["usb_storage"]);
        let uas = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip62in00";
        assert_eq!(idx.modules_for(uas), ["uas"]);
        // bcdDevice range d0[0-4][0-9][0-9]: 0499 is in, 0500 is out.
        assert_eq!(
            idx.modules_for("usb:v054Cp0010d0499dcFFdsc00dp00icFFisc00ip00in00"),
            ["usb_storage"]
        );
        assert!(idx
            .modules_for("usb:v054Cp0010d0500dcFFdsc00dp00icFFisc00ip00in00")
            .is_empty());
    }

    #[test]
    fn virtio_scsi_and_wildcard_first_patterns() {
        let idx = index();
        assert_eq!(idx.modules_for("virtio:d00000002v00001AF4"), ["virtio_blk"]);
        assert_eq!(idx.modules_for("scsi:t-0x00"), ["sd_mod"]);
        assert_eq!(idx.modules_for("scsi:t-0x05"), ["sr_mod"]);
        assert_eq!(idx.modules_for("fs-vfat"), ["vfat"]);
        assert_eq!(
            idx.modules_for("virtio:d00000008v00001AF4foo"),
            ["catch_all", "virtio_scsi"]
        );
    }

    #[test]
    fn duplicate_matches_are_reported_once() {
        let idx = ModuleIndex::parse(
            "alias pci:v00001000* megaraid-sas\nalias pci:v*d00000060* megaraid_sas\n",
            "",
        )
        .unwrap();
        assert_eq!(
            idx.modules_for("pci:v00001000d00000060sv0sd0bc01sc04i00"),
            ["megaraid_sas"]
        );
    }

    #[test]
    fn paths_and_load_order() {
        let idx = index();
        assert_eq!(
            idx.path_of("megaraid_sas"),
            Some("kernel/drivers/scsi/megaraid/megaraid_sas.ko")
        );
        assert_eq!(
            idx.path_of("nvme-core"),
            Some("kernel/drivers/nvme/host/nvme-core.ko.xz")
        );
        assert_eq!(idx.path_of("nope"), None);
        assert_eq!(
            idx.load_order("megaraid_sas"),
            ["scsi_common", "scsi_mod", "megaraid_sas"]
        );
        assert_eq!(
            idx.load_order("sd-mod"),
            ["crc_t10dif", "t10_pi", "scsi_common", "scsi_mod", "sd_mod"]
        );
        assert_eq!(idx.load_order("nvme"), ["nvme_core", "nvme"]);
        assert!(idx.load_order("ext4").is_empty());
    }

    #[test]
    fn load_order_lists_each_dependency_before_its_users() {
        let idx = index();
        for name in idx.module_names() {
            let order = idx.load_order(&name);
            assert_eq!(order.last(), Some(&name));
            let unique: HashSet<_> = order.iter().collect();
            assert_eq!(unique.len(), order.len(), "{name}: {order:?}");
            for (i, m) in order.iter().enumerate() {
                for dep in &idx.deps[m] {
                    let at = order.iter().position(|x| x == dep).unwrap();
                    assert!(at < i, "{dep} after {m} in {order:?}");
                }
            }
        }
    }

    #[test]
    fn dependency_cycles_terminate() {
        let idx = ModuleIndex::parse("", "a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\nself.ko: self.ko\n")
            .unwrap();
        assert_eq!(idx.load_order("a"), ["c", "b", "a"]);
        assert_eq!(idx.load_order("self"), ["self"]);
    }

    #[test]
    fn module_names_are_normalised_and_sorted() {
        let names = index().module_names();
        assert_eq!(names.first().map(String::as_str), Some("crc_t10dif"));
        assert!(names.contains(&"usb_storage".to_string()));
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(names.len(), 13);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = ModuleIndex::parse("alias a b\n\nalias onlytwo\n", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad line 3 of modules.alias: expected 'alias PATTERN MODULE', found 2 fields"
        );
        let err = ModuleIndex::parse("options a b\n", "").unwrap_err();
        assert!(err.to_string().contains("line 1 of modules.alias"));
        let err = ModuleIndex::parse("", "a.ko: b.ko\nkernel/x.ko b.ko\n").unwrap_err();
        assert_eq!(err.to_string(), "bad line 2 of modules.dep: no ':'");
        let err = ModuleIndex::parse("", "kernel/readme.txt:\n").unwrap_err();
        assert!(err.to_string().contains("line 1 of modules.dep"));
    }

    #[test]
    fn load_reads_a_modules_dir() {
        let dir = std::env::temp_dir().join(format!("modindex-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.alias"), ALIAS).unwrap();
        std::fs::write(dir.join("modules.dep"), DEP).unwrap();
        let idx = ModuleIndex::load(&dir).unwrap();
        assert_eq!(idx.modules_for("scsi:t-0x00"), ["sd_mod"]);
        std::fs::remove_file(dir.join("modules.dep")).unwrap();
        let err = ModuleIndex::load(&dir).unwrap_err();
        assert!(matches!(err, ModIndexError::Read { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn glob_basics() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "any/thing.here"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
        assert!(!glob_match("a*b*c", "aXXbYYbZ"));
        assert!(glob_match("**a**", "bab"));
        assert!(glob_match("*ic08isc06ip50in*", "dp00ic08isc06ip50in00"));
    }

    #[test]
    fn glob_brackets() {
        assert!(glob_match("d[0-9]", "d7"));
        assert!(!glob_match("d[0-9]", "dA"));
        assert!(glob_match("[!0-9]", "x"));
        assert!(!glob_match("[!0-9]", "5"));
        assert!(glob_match("[^a]", "b"));
        assert!(!glob_match("[^a]", "a"));
        assert!(glob_match("[]x]", "]"));
        assert!(glob_match("[!]]", "a"));
        assert!(!glob_match("[!]]", "]"));
        assert!(glob_match("[a-]", "-"));
        assert!(glob_match("[ac-e]", "d"));
        assert!(!glob_match("[ac-e]", "b"));
        assert!(!glob_match("[z-a]", "m"));
        assert!(glob_match("[[:digit:]x]", "4"));
        assert!(glob_match("[[:upper:]]", "Q"));
        assert!(!glob_match("[[:upper:]]", "q"));
        // Unterminated: '[' is literal.
        assert!(glob_match("a[b", "a[b"));
        assert!(!glob_match("a[b", "ab"));
        assert!(glob_match("[\\]]", "]"));
    }

    #[test]
    fn glob_escapes() {
        assert!(glob_match("a\\*b", "a*b"));
        assert!(!glob_match("a\\*b", "aXb"));
        assert!(glob_match("\\?", "?"));
        assert!(!glob_match("\\?", "x"));
        assert!(glob_match("\\[x]", "[x]"));
        assert!(glob_match("a\\", "a\\"));
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        let p = |s: &str| Pattern::compile(s).literal_prefix();
        assert_eq!(
            p("pci:v00001000d00000060sv*sd*"),
            "pci:v00001000d00000060sv"
        );
        assert_eq!(p("usb:v*p*"), "usb:v");
        assert_eq!(p("scsi:t-0x00*"), "scsi:t-0x00");
        assert_eq!(p("a\\*b*"), "a*b");
        assert_eq!(p("*foo"), "");
        assert_eq!(p("fs-vfat"), "fs-vfat");
    }

    #[test]
    fn many_patterns_match_fast() {
        let mut alias = String::new();
        for v in 0..30_000u32 {
            alias.push_str(&format!(
                "alias pci:v{:08X}d{:08X}sv*sd*bc*sc*i* m{}\n",
                v % 700,
                v,
                v % 50
            ));
        }
        alias.push_str(ALIAS);
        let idx = ModuleIndex::parse(&alias, DEP).unwrap();
        let start = std::time::Instant::now();
        for v in 0..300u32 {
            let modalias = format!("pci:v{:08X}d{:08X}sv00001AF4sd00001100bc01sc06i01", v, v);
            assert!(idx.modules_for(&modalias).contains(&"ahci".to_string()));
        }
        // Speed is a benchmark matter (docs/benchmarks.md); shown, not asserted.
        eprintln!("300 modaliases matched in {:?}", start.elapsed());
    }
}
