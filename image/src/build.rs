//! `rescue-image build`: the ISO, the USB image and the PXE tree from the cached Debian parts and
//! a built initramfs, then manifest.json. Each image is checked to carry exactly the expected
//! kernel-arguments areas, so `customize` will find them.

use crate::build_date::BuildDate;
use crate::customize;
use crate::debian_inputs::Inputs;
use crate::kargs_area;
use crate::manifest::{self, Manifest, Package};
use crate::tools;
use crate::{iso, pxe, usb};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    /// scripts/fetch-debian.sh's cache.
    pub cache: PathBuf,
    pub initrd: PathBuf,
    pub kargs: String,
}

pub fn build(opts: &Options) -> Result<Manifest> {
    let date = BuildDate::from_env()?;
    kargs_area::validate(&opts.kargs).context("--kargs")?;
    let inputs = Inputs::find(&opts.cache)?;
    if !opts.initrd.is_file() {
        bail!(
            "{} is missing (build it with `rescue-image initramfs`)",
            opts.initrd.display()
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let scratch = opts.out.join(".media-work");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let iso_path = opts.out.join(iso::FILE_NAME);
    let iso = iso::build(
        &inputs,
        &opts.initrd,
        &opts.kargs,
        &iso_path,
        &scratch,
        date,
    )?;
    expect_areas(&iso_path, 1)?;
    let usb_path = opts.out.join(usb::FILE_NAME);
    let usb = usb::build(
        &inputs,
        &opts.initrd,
        &opts.kargs,
        &usb_path,
        &scratch,
        date,
    )?;
    expect_areas(&usb_path, 1)?;
    let pxe_files = pxe::build(
        &inputs,
        &opts.initrd,
        &opts.kargs,
        &opts.out.join(pxe::DIR_NAME),
    )?;
    std::fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;

    let mut artifacts = vec![
        manifest::artifact(&opts.out, iso::FILE_NAME)?,
        manifest::artifact(&opts.out, usb::FILE_NAME)?,
    ];
    for f in &pxe_files {
        let rel = Path::new(pxe::DIR_NAME).join(f);
        artifacts.push(manifest::artifact(&opts.out, &rel.to_string_lossy())?);
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let sizes = serde_json::json!({
        "kernel": size(&inputs.vmlinuz),
        "initramfs": size(&opts.initrd),
        "shim": size(&inputs.shim),
        "mokmanager": size(&inputs.mokmanager),
        "grub_efi_signed": size(&inputs.grub_efi),
        "grub_net_signed": size(&inputs.grub_net),
        "iso": iso,
        "usb": usb,
    });
    let tools = [
        ("xorriso", "-version"),
        ("mformat", "--version"),
        ("grub-mkimage", "--version"),
        ("sgdisk", "--version"),
    ]
    .into_iter()
    .map(|(t, flag)| (t.to_string(), tools::version(t, flag)))
    .collect::<BTreeMap<_, _>>();
    let m = Manifest {
        source_date_epoch: date.epoch,
        kernel_version: inputs.kernel_version.clone(),
        default_kargs: opts.kargs.clone(),
        packages: inputs
            .packages
            .iter()
            .map(|(name, version)| Package {
                name: name.clone(),
                version: version.clone(),
            })
            .collect(),
        tools,
        artifacts,
        sizes,
    };
    manifest::write(&opts.out, &m)?;
    Ok(m)
}

fn expect_areas(image: &Path, n: usize) -> Result<()> {
    let found = customize::scan(image)?;
    if found.len() != n {
        bail!(
            "{}: {} kernel-arguments areas found, {n} expected (a menu split on disk?)",
            image.display(),
            found.len()
        );
    }
    Ok(())
}
