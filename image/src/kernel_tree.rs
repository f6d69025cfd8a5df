//! The extracted `linux-image-<ver>` package: its version, vmlinuz, modules directory, and the
//! depmod outputs the .deb does not ship (generated in a scratch tree, never in the input).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct KernelTree {
    root: PathBuf,
    modules_dir: PathBuf,
    version: String,
}

impl KernelTree {
    /// Opens an extracted kernel package root; it must hold exactly one `lib/modules/<ver>`
    /// (or `usr/lib/modules/<ver>`).
    pub fn open(root: &Path) -> Result<KernelTree> {
        // Absolute, so the links of the depmod scratch tree resolve.
        let root =
            &std::fs::canonicalize(root).with_context(|| format!("opening {}", root.display()))?;
        let base = ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|p| root.join(p))
            .find(|p| p.is_dir())
            .with_context(|| {
                format!(
                    "{}: no lib/modules directory (not an extracted linux-image package?)",
                    root.display()
                )
            })?;
        let mut versions = Vec::new();
        for entry in
            std::fs::read_dir(&base).with_context(|| format!("reading {}", base.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", base.display()))?;
            if entry.file_type()?.is_dir() {
                versions.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let [version] = &versions[..] else {
            bail!(
                "{}: expected one kernel version, found {versions:?}",
                base.display()
            );
        };
        Ok(KernelTree {
            root: root.to_path_buf(),
            modules_dir: base.join(version),
            version: version.clone(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// `lib/modules/<ver>` inside the package root.
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// `boot/vmlinuz-<ver>`: the signed kernel, used as is.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.version))
    }

    /// A modules directory with `modules.dep` and `modules.alias`: the package's own when it has
    /// them, otherwise a scratch tree where depmod ran (removed when the value is dropped).
    pub fn depmod(&self) -> Result<DepmodDir> {
        if self.modules_dir.join("modules.dep").is_file()
            && self.modules_dir.join("modules.alias").is_file()
        {
            return Ok(DepmodDir {
                dir: self.modules_dir.clone(),
                scratch: None,
            });
        }
        let scratch = std::env::temp_dir().join(format!(
            "rescue-image-depmod-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let out = DepmodDir {
            dir: scratch.join("lib/modules").join(&self.version),
            scratch: Some(scratch.clone()),
        };
        std::fs::create_dir_all(&out.dir)
            .with_context(|| format!("creating {}", out.dir.display()))?;
        // Module subtrees are linked, not copied (390 MB); the inputs depmod reads are copied.
        for entry in std::fs::read_dir(&self.modules_dir)
            .with_context(|| format!("reading {}", self.modules_dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let target = out.dir.join(&name);
            if entry.file_type()?.is_dir() {
                std::os::unix::fs::symlink(entry.path(), &target)
                    .with_context(|| format!("linking {}", target.display()))?;
            } else if matches!(
                name.to_str(),
                Some("modules.order" | "modules.builtin" | "modules.builtin.modinfo")
            ) {
                std::fs::copy(entry.path(), &target)
                    .with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
        let depmod = ["depmod", "/usr/sbin/depmod", "/sbin/depmod"]
            .into_iter()
            .find(|cmd| Command::new(cmd).arg("--version").output().is_ok())
            .context("depmod not found (install kmod)")?;
        let status = Command::new(depmod)
            .arg("-b")
            .arg(&scratch)
            .arg(&self.version)
            .status()
            .with_context(|| format!("running {depmod}"))?;
        if !status.success() {
            bail!(
                "depmod -b {} {} failed: {status}",
                scratch.display(),
                self.version
            );
        }
        Ok(out)
    }
}

/// Copies `boot/vmlinuz-<ver>` byte for byte (it is signed) to `out`; returns its size.
pub fn copy_kernel(tree: &KernelTree, out: &Path) -> Result<u64> {
    let src = tree.vmlinuz();
    std::fs::copy(&src, out)
        .with_context(|| format!("copying {} to {}", src.display(), out.display()))
}

/// A modules directory with depmod's outputs; a scratch one is deleted on drop.
#[derive(Debug)]
pub struct DepmodDir {
    dir: PathBuf,
    scratch: Option<PathBuf>,
}

impl DepmodDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DepmodDir {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            // Removes the links, not what they point to.
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}
