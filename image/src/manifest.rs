//! manifest.json beside the outputs: what went in (Debian packages with versions, the tools that
//! assembled the media, the build date) and the sha256 of every output.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Artifact {
    /// Relative to the output directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub source_date_epoch: u64,
    pub kernel_version: String,
    pub default_kargs: String,
    pub packages: Vec<Package>,
    pub tools: BTreeMap<String, String>,
    pub artifacts: Vec<Artifact>,
    /// Size breakdown (docs/benchmarks.md "Boot media").
    pub sizes: serde_json::Value,
}

/// Size and sha256 of `dir/rel`.
pub fn artifact(dir: &Path, rel: &str) -> Result<Artifact> {
    let path = dir.join(rel);
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(Artifact {
        path: rel.to_string(),
        bytes,
        sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

pub fn write(dir: &Path, m: &Manifest) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let mut text = serde_json::to_string_pretty(m).context("serializing the manifest")?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
