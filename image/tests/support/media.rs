//! Building the boot media for tests (`rescue-image initramfs` + `rescue-image build`) from the
//! cache scripts/fetch-debian.sh fills, fixtures from `mkfixture`, and reading results back
//! (`rescue-agent scan`, mtools).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// SOURCE_DATE_EPOCH of the test builds.
pub const EPOCH: &str = "1767225600";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// out/cache when scripts/fetch-debian.sh has filled it.
pub fn cache() -> Option<PathBuf> {
    let c = workspace().join("out/cache");
    (c.join("packages.txt").is_file() && c.join("kernel-root").is_dir()).then_some(c)
}

/// Runs `rescue-image build`; returns manifest.json.
pub fn build_media(cache: &Path, initrd: &Path, out: &Path, epoch: &str) -> serde_json::Value {
    let res = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .arg("build")
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .arg("--initrd")
        .arg(initrd)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "rescue-image build: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// The real initramfs: out/rescue-agent (scripts/build.sh) as /init, the storage modules and
/// busybox, xz — as image/build.sh makes it.
pub fn build_initrd(cache: &Path, out: &Path) {
    let agent = workspace().join("out/rescue-agent");
    assert!(
        agent.is_file(),
        "{} is missing: run scripts/build.sh first",
        agent.display()
    );
    let res = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .args(["initramfs", "--compress", "xz", "--agent"])
        .arg(&agent)
        .arg("--kernel-root")
        .arg(cache.join("kernel-root"))
        .arg("--busybox")
        .arg(cache.join("root-busybox-static/bin/busybox"))
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "rescue-image initramfs: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// The real media, built once per test binary into target/media-test/<binary>/media.
pub fn real_media() -> &'static Path {
    static MEDIA: OnceLock<PathBuf> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let cache = cache().expect("run scripts/fetch-debian.sh first");
        let dir = scratch_dir("media");
        let initrd = dir.join("initrd.img");
        build_initrd(&cache, &initrd);
        build_media(&cache, &initrd, &dir, EPOCH);
        dir
    })
}

/// target/media-test/<test binary>/<name>, emptied.
pub fn scratch_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = target_dir().join("media-test").join(stem).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A workspace binary (mkfixture, rescue-agent) from target/debug, built once when missing.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = target_dir().join("debug").join(name);
    if !path.is_file() {
        BUILT.get_or_init(|| {
            let ok = Command::new(env!("CARGO"))
                .args(["build", "-p", "esxi-fixtures", "-p", "rescue-agent"])
                .current_dir(workspace())
                .status()
                .unwrap();
            assert!(ok.success(), "cargo build -p esxi-fixtures -p rescue-agent");
        });
    }
    assert!(path.is_file(), "{} missing", path.display());
    path
}

/// `mkfixture esxi5 --damage compact-keep DISK`: an ESXi 5 disk with its GPT compacted.
pub fn damaged_fixture(path: &Path) {
    let _ = std::fs::remove_file(path);
    let out = Command::new(workspace_bin("mkfixture"))
        .args(["esxi5", "--damage", "compact-keep"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scan = scan(path);
    assert!(scan.contains("problem:"), "fixture not damaged?\n{scan}");
}

/// `rescue-agent scan DISK` (stdout).
pub fn scan(disk: &Path) -> String {
    let out = Command::new(workspace_bin("rescue-agent"))
        .arg("scan")
        .arg(disk)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mdir -/ -i IMAGE@@OFFSET ::` — the files of a FAT filesystem inside a disk image.
pub fn mdir(image: &Path, offset: u64) -> String {
    let out = Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-/")
        .arg("-i")
        .arg(format!("{}@@{offset}", image.display()))
        .arg("::")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mtype` of one file of a FAT filesystem inside a disk image.
pub fn mtype(image: &Path, offset: u64, file: &str) -> String {
    let out = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{offset}", image.display()))
        .arg(format!("::{file}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mtype {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts one file of an ISO with xorriso.
pub fn iso_file(iso: &Path, file: &str, dir: &Path) -> Vec<u8> {
    let dest = dir.join("extracted");
    let _ = std::fs::remove_file(&dest);
    let out = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .args(["-extract", file])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xorriso extract {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&dest).unwrap()
}

/// Byte offset of GPT partition `n` (1-based) of a disk image, from `sgdisk -i`.
pub fn partition_offset(image: &Path, n: u32) -> u64 {
    let out = Command::new("sgdisk")
        .arg(format!("--info={n}"))
        .arg(image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text
        .lines()
        .find_map(|l| l.strip_prefix("First sector: "))
        .unwrap_or_else(|| panic!("sgdisk --info={n}: {text}"));
    first
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 512
}

/// `sgdisk --info=N` output (partition name, type...).
pub fn partition_info(image: &Path, n: u32) -> String {
    let out = Command::new("sgdisk")
        .arg(format!("--info={n}"))
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
