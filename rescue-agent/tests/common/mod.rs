//! Shared helpers for the integration tests: run the CLI, hash and compare images.
#![allow(dead_code)]

mod bank_fat;
mod state_files;
#[allow(unused_imports)] // Not every test binary damages a FAT.
pub use bank_fat::BankFat;
#[allow(unused_imports)] // Not every test binary builds its own state.tgz.
pub use state_files::{gz, member, put_state, state_with_local, tar_of};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use esxi_fixtures::{
    build, content_digest, sgdisk_clean, sgdisk_verify, BankSpec, ConfigFlavor, ConfigSpec,
    Fixture, Generation, Media, OwnerSpec, Spec,
};

pub fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rescue-agent"))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Run {
    let out: Output = agent().args(args).output().expect("run rescue-agent");
    let code = out.status.code().unwrap_or(-1);
    let run = Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        code == 0 || code == 1 || code == 2,
        "rescue-agent {args:?} died (code {code}):\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

pub fn run_ok(args: &[&str]) -> Run {
    let r = run(args);
    assert_eq!(
        r.code, 0,
        "rescue-agent {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("esxi-rescue-test")
        .tempdir()
        .expect("tempdir")
}

pub fn image(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

pub fn build_at(dir: &Path, name: &str, spec: &Spec) -> Fixture {
    build(&dir.join(name), spec).expect("build fixture")
}

/// What the image reads as (sparse-independent; see esxi_fixtures::content_digest).
pub fn hash(path: &Path) -> String {
    content_digest(path).expect("hash image")
}

/// Copy a sparse image keeping it sparse.
pub fn copy_image(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .args(["--sparse=always"])
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

pub fn assert_sgdisk_clean(path: &Path, sector_size: u32) {
    let v = sgdisk_verify(path, sector_size).expect("sgdisk -v");
    assert!(sgdisk_clean(&v), "sgdisk -v {}:\n{v}", path.display());
}

/// `fsck.vfat -n` on the FAT at a byte range of an image, through a read-only loop device
/// (no copy of the partition; needs root, which the test machines have).
pub fn fsck_vfat_clean(path: &Path, offset: u64, len: u64) {
    let attach = Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(format!("--offset={offset}"))
        .arg(format!("--sizelimit={len}"))
        .arg(path)
        .output()
        .expect("losetup (util-linux)");
    assert!(
        attach.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&attach.stderr)
    );
    let dev = String::from_utf8_lossy(&attach.stdout).trim().to_string();
    let out = Command::new("fsck.vfat")
        .args(["-n", &dev])
        .output()
        .expect("fsck.vfat must be installed (scripts/setup.sh)");
    let detached = Command::new("losetup").args(["--detach", &dev]).status();
    assert!(detached.is_ok_and(|s| s.success()), "detaching {dev}");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "fsck.vfat -n at byte {offset} of {}:\n{text}",
        path.display()
    );
}

/// An ESXi disk whose active bank (slot 5) has these `(address, value)` owner lines; the
/// alternate bank is empty, as after a fresh install.
pub fn esxi_with_owners(
    dir: &Path,
    generation: Generation,
    flavor: ConfigFlavor,
    build_id: &str,
    owners: &[(&str, &str)],
) -> Fixture {
    let cfg = ConfigSpec {
        flavor,
        owners: owners
            .iter()
            .map(|(addr, value)| OwnerSpec::new(addr, value, None))
            .collect(),
        hostname: "esx01".into(),
        store: Default::default(),
    };
    let spec = Spec::new(generation, Media::Disk, 512).with_banks(
        BankSpec::active(build_id, Some(cfg)),
        BankSpec::alternate_empty(build_id),
    );
    build_at(dir, "esxi.img", &spec)
}

/// The seed-001 host in miniature: ESXi 5.5, a plain config whose active bank passes through
/// the RAID controller at 0000:16:00.0 (written 000:022:00.0).
pub fn esxi5_raid_passthru(dir: &Path) -> Fixture {
    esxi_with_owners(
        dir,
        Generation::Esxi5,
        ConfigFlavor::Plain,
        "5.5.0-1331820",
        &[("000:022:00.0", "passthru")],
    )
}

/// Runs the agent with its address space capped (`ulimit -v`), as a small initramfs machine
/// would be: a size read from hostile bytes that sized an allocation fails the run.
pub fn run_capped(mib: u64, args: &[&str]) -> Run {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {}; exec '{}' {}",
            mib * 1024,
            env!("CARGO_BIN_EXE_rescue-agent"),
            quoted.join(" ")
        ))
        .output()
        .expect("run rescue-agent under ulimit");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
