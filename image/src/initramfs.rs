//! Assembles the initramfs: the agent as /init, the minimal /dev and mount points, the storage
//! modules (byte for byte: they are signed) with a trimmed module index, optionally busybox.

use crate::archive::{Archive, Node};
use crate::compress::{compress, Compression};
use crate::kernel_tree::KernelTree;
use crate::modset::{builtin_names, select, trim_alias, trim_dep};
use anyhow::{bail, Context, Result};
use rescue_agent::modindex::ModuleIndex;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Options {
    pub agent: PathBuf,
    pub kernel_root: PathBuf,
    /// Module names to include (closed over their dependencies).
    pub modules: Vec<String>,
    pub busybox: Option<PathBuf>,
    pub compression: Compression,
    /// mtime of every entry (SOURCE_DATE_EPOCH or 0).
    pub mtime: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub kernel_version: String,
    pub agent_bytes: u64,
    pub busybox_bytes: u64,
    pub module_count: usize,
    pub modules_bytes: u64,
    pub builtin_skipped: Vec<String>,
    pub entries: usize,
    pub uncompressed_bytes: u64,
    pub compression: Compression,
    pub compressed_bytes: u64,
    pub sha256: String,
}

/// Builds the compressed initramfs image and a report of what went in.
pub fn build(opts: &Options) -> Result<(Vec<u8>, Report)> {
    let tree = KernelTree::open(&opts.kernel_root)?;
    let ver = tree.version().to_string();
    let mut archive = Archive::new();

    let agent = read(&opts.agent)?;
    archive.add(
        "init",
        Node::File {
            data: agent.clone(),
            perm: 0o755,
        },
    )?;
    archive.add(
        "dev/console",
        Node::CharDev {
            major: 5,
            minor: 1,
            perm: 0o600,
        },
    )?;
    for dir in ["dev", "proc", "sys", "run", "tmp", "mnt"] {
        archive.add(dir, Node::Dir)?;
    }
    let mut busybox_bytes = 0;
    if let Some(path) = &opts.busybox {
        let data = read(path)?;
        busybox_bytes = data.len() as u64;
        archive.add("bin/busybox", Node::File { data, perm: 0o755 })?;
        archive.add("bin/sh", Node::Symlink("busybox".into()))?;
    }

    let depmod = tree.depmod()?;
    let index =
        ModuleIndex::load(depmod.path()).context("reading the module index depmod wrote")?;
    if index.module_names().is_empty() {
        bail!(
            "{}: modules.dep lists no modules (did depmod fail?)",
            depmod.path().display()
        );
    }
    let builtin_text = read_text(&tree.modules_dir().join("modules.builtin"))?;
    let set = select(&index, &builtin_names(&builtin_text), &opts.modules)?;
    let mut modules_bytes = 0;
    let prefix = format!("lib/modules/{ver}");
    for module in &set.modules {
        let rel = index
            .path_of(module)
            .context("module without a path in modules.dep")?;
        let data = read(&tree.modules_dir().join(rel))?;
        modules_bytes += data.len() as u64;
        archive.add(&format!("{prefix}/{rel}"), Node::File { data, perm: 0o644 })?;
    }
    let names: BTreeSet<String> = set.modules.iter().cloned().collect();
    let dep = trim_dep(&read_text(&depmod.path().join("modules.dep"))?, &names);
    let alias = trim_alias(&read_text(&depmod.path().join("modules.alias"))?, &names);
    for (file, text) in [
        ("modules.dep", dep),
        ("modules.alias", alias),
        ("modules.builtin", builtin_text),
    ] {
        archive.add(
            &format!("{prefix}/{file}"),
            Node::File {
                data: text.into_bytes(),
                perm: 0o644,
            },
        )?;
    }

    let cpio = archive
        .write_cpio(Vec::new(), opts.mtime)
        .context("writing cpio")?;
    let image = compress(&cpio, opts.compression)?;
    let report = Report {
        kernel_version: ver,
        agent_bytes: agent.len() as u64,
        busybox_bytes,
        module_count: set.modules.len(),
        modules_bytes,
        builtin_skipped: set.builtin,
        entries: archive.len(),
        uncompressed_bytes: cpio.len() as u64,
        compression: opts.compression,
        compressed_bytes: image.len() as u64,
        sha256: sha256_hex(&image),
    };
    Ok((image, report))
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
