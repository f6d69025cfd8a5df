//! Command line: `rescue-image initramfs ...`, `kernel ...`, `build ...`, `customize ...` and
//! `serve ...`.

use crate::compress::Compression;
use crate::initramfs::{self, sha256_hex, Report};
use crate::kernel_tree::{copy_kernel, KernelTree};
use crate::modset::STORAGE_MODULES;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rescue_agent::machine::nic_modules::NIC_MODULES;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "rescue-image",
    about = "Builds the rescue boot artifacts from Debian parts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the initramfs: the agent as /init plus the storage modules.
    Initramfs {
        /// The static agent binary (becomes /init).
        #[arg(long)]
        agent: PathBuf,
        /// Root of the extracted linux-image-<ver> package.
        #[arg(long)]
        kernel_root: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "xz")]
        compress: Compression,
        /// A static busybox for /bin/busybox and /bin/sh (debug shells).
        #[arg(long)]
        busybox: Option<PathBuf>,
        /// Modules to include instead of the storage set (comma-separated; deps are added).
        #[arg(long, value_delimiter = ',')]
        modules: Option<Vec<String>>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the signed kernel (boot/vmlinuz-<ver>) untouched.
    Kernel {
        #[arg(long)]
        kernel_root: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the boot media: esxi-rescue.iso, esxi-rescue-usb.img, pxe/ and manifest.json.
    Build {
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// scripts/fetch-debian.sh's cache (default: OUT/cache).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The initramfs (default: OUT/initrd.img).
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// Default kernel arguments (change them later with `customize`).
        #[arg(long, default_value = crate::grub_cfg::DEFAULT_KARGS)]
        kargs: String,
    },
    /// Change the default kernel arguments of a built ISO or USB image in place.
    Customize {
        image: PathBuf,
        /// The new arguments; without them, print the current ones.
        #[arg(long, allow_hyphen_values = true)]
        kargs: Option<String>,
    },
    /// Serve DIR over HTTP/1.1 with Range requests (BMC virtual media) and store agent reports.
    Serve {
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Store POSTed reports here (without it, POST answers 404).
        #[arg(long)]
        reports: Option<PathBuf>,
        /// The HMAC key reports must be signed with (a file: argv shows in ps).
        #[arg(long, requires = "reports")]
        token_file: Option<PathBuf>,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rescue-image: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Initramfs {
            agent,
            kernel_root,
            out,
            compress,
            busybox,
            modules,
            json,
        } => {
            let opts = initramfs::Options {
                agent,
                kernel_root,
                modules: modules.unwrap_or_else(|| {
                    // The NIC drivers ride along for rescue.report=; coldplug holds them back.
                    STORAGE_MODULES
                        .iter()
                        .chain(NIC_MODULES)
                        .map(|s| s.to_string())
                        .collect()
                }),
                busybox,
                compression: compress,
                mtime: source_date_epoch()?,
            };
            let (image, report) = initramfs::build(&opts)?;
            write_atomically(&out, &image)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&out, &report);
            }
        }
        Command::Kernel { kernel_root, out } => {
            let tree = KernelTree::open(&kernel_root)?;
            let size = copy_kernel(&tree, &out)?;
            let data = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
            println!(
                "kernel {}: {} ({size} bytes, sha256 {})",
                tree.version(),
                out.display(),
                sha256_hex(&data)
            );
        }
        Command::Build {
            out,
            cache,
            initrd,
            kargs,
        } => {
            let opts = crate::build::Options {
                cache: cache.unwrap_or_else(|| out.join("cache")),
                initrd: initrd.unwrap_or_else(|| out.join("initrd.img")),
                out,
                kargs,
            };
            let m = crate::build::build(&opts)?;
            for a in &m.artifacts {
                println!(
                    "{:>10} {} {}",
                    a.bytes,
                    a.sha256,
                    opts.out.join(&a.path).display()
                );
            }
            println!(
                "manifest: {}",
                opts.out.join(crate::manifest::FILE_NAME).display()
            );
        }
        Command::Customize { image, kargs } => match kargs {
            None => {
                for a in crate::customize::scan(&image)? {
                    println!("byte {}: {}", a.line_offset, a.kargs);
                }
            }
            Some(kargs) => {
                let c = crate::customize::customize(&image, &kargs)?;
                for a in &c.before {
                    println!("byte {}: {:?} -> {kargs:?}", a.line_offset, a.kargs);
                }
                println!("{}: {} area(s) rewritten", image.display(), c.before.len());
            }
        },
        Command::Serve {
            dir,
            listen,
            reports,
            token_file,
        } => crate::serve::run(&crate::serve::Options {
            dir,
            listen,
            reports,
            token_file,
        })?,
    }
    Ok(())
}

fn print_report(out: &Path, r: &Report) {
    println!(
        "initramfs for kernel {}: {}",
        r.kernel_version,
        out.display()
    );
    println!("  agent            {:>10} bytes", r.agent_bytes);
    if r.busybox_bytes > 0 {
        println!("  busybox          {:>10} bytes", r.busybox_bytes);
    }
    println!(
        "  modules (raw)    {:>10} bytes in {} modules",
        r.modules_bytes, r.module_count
    );
    if !r.builtin_skipped.is_empty() {
        println!("  built in         {}", r.builtin_skipped.join(" "));
    }
    println!(
        "  uncompressed     {:>10} bytes in {} entries",
        r.uncompressed_bytes, r.entries
    );
    println!(
        "  compressed ({}) {:>10} bytes",
        r.compression.name(),
        r.compressed_bytes
    );
    println!("  sha256           {}", r.sha256);
}

/// SOURCE_DATE_EPOCH when set (reproducible builds), else 0.
fn source_date_epoch() -> Result<u32> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a 32-bit timestamp")),
        _ => Ok(0),
    }
}

fn write_atomically(out: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
}
