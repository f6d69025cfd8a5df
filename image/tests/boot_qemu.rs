//! Boots the fetched Debian kernel with an initramfs whose /init is a tiny static program that
//! prints "INIT OK" and reboots. Slow (TCG) and needs out/cache: run with `--ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "boots QEMU (TCG, ~10 s); needs scripts/fetch-debian.sh"]
fn debian_kernel_runs_our_init() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = top.join("out/cache/kernel-root");
    assert!(root.is_dir(), "run scripts/fetch-debian.sh first");
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("initok");
    let cc = Command::new("musl-gcc")
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&init)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/initok.c"))
        .status()
        .expect("musl-gcc (musl-tools)");
    assert!(cc.success());
    let (initrd, vmlinuz, log) = (
        dir.path().join("initrd"),
        dir.path().join("vmlinuz"),
        dir.path().join("serial.log"),
    );
    let bin = env!("CARGO_BIN_EXE_rescue-image");
    let ok = Command::new(bin)
        .args(["initramfs", "--compress", "xz", "--agent"])
        .arg(&init)
        .arg("--kernel-root")
        .arg(&root)
        .arg("--out")
        .arg(&initrd)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new(bin)
        .args(["kernel", "--kernel-root"])
        .arg(&root)
        .arg("--out")
        .arg(&vmlinuz)
        .status()
        .unwrap();
    assert!(ok.success());
    let qemu = Command::new("bash")
        .arg(top.join("scripts/qemu.sh"))
        .arg("--kernel")
        .arg(&vmlinuz)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--timeout", "120", "--log"])
        .arg(&log)
        .status()
        .unwrap();
    let serial = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(qemu.success(), "qemu: {qemu}\n{serial}");
    assert!(serial.contains("Linux version"), "{serial}");
    assert!(serial.contains("\nINIT OK"), "{serial}");
}
