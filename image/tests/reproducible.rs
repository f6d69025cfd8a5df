//! `rescue-image initramfs` twice on the same inputs gives the same bytes; the module set is the
//! requested closure; with the fetched Debian kernel (out/cache) when it is there.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn build(
    kernel_root: &Path,
    agent: &Path,
    out: &Path,
    extra: &[&str],
    epoch: Option<&str>,
) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rescue-image"));
    cmd.arg("initramfs")
        .arg("--agent")
        .arg(agent)
        .arg("--kernel-root")
        .arg(kernel_root)
        .arg("--out")
        .arg(out)
        .args(extra);
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    let res = cmd.output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8(res.stdout).unwrap()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn synthetic_tree_builds_reproducibly_with_the_closure_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kernel");
    support::fake_kernel_tree(&root);
    let agent = dir.path().join("agent");
    std::fs::write(&agent, b"\x7fELF agent").unwrap();
    for compress in ["gzip", "xz"] {
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let args = ["--compress", compress, "--modules", "sd-mod,ext4"];
        let report = build(&root, &agent, &a, &args, Some("1700000000"));
        build(&root, &agent, &b, &args, Some("1700000000"));
        assert_eq!(sha256(&a), sha256(&b), "{compress}");
        assert!(report.contains("in 2 modules"), "{report}");
        assert!(report.contains("built in         ext4"), "{report}");
        let c = dir.path().join("c");
        build(&root, &agent, &c, &args, None);
        assert_ne!(
            sha256(&a),
            sha256(&c),
            "SOURCE_DATE_EPOCH must reach the archive"
        );
    }
    let out = dir.path().join("x");
    let res = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .args(["initramfs", "--modules", "sd_mod,nosuch", "--agent"])
        .arg(&agent)
        .arg("--kernel-root")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("unknown kernel modules"));
    assert!(!out.exists());
}

#[test]
fn json_report_lists_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kernel");
    support::fake_kernel_tree(&root);
    let agent = dir.path().join("agent");
    std::fs::write(&agent, b"agent").unwrap();
    let text = build(
        &root,
        &agent,
        &dir.path().join("i.gz"),
        &["--compress", "gzip", "--modules", "sd_mod", "--json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["kernel_version"], support::VERSION);
    assert_eq!(v["agent_bytes"], 5);
    assert_eq!(v["module_count"], 2);
    assert_eq!(v["compression"], "gzip");
    assert_eq!(
        v["compressed_bytes"],
        std::fs::metadata(dir.path().join("i.gz")).unwrap().len()
    );
}

#[test]
fn kernel_is_copied_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kernel");
    support::fake_kernel_tree(&root);
    let out = dir.path().join("vmlinuz");
    let res = Command::new(env!("CARGO_BIN_EXE_rescue-image"))
        .args(["kernel", "--kernel-root"])
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(std::fs::read(out).unwrap(), b"signed kernel");
}

/// The Debian kernel fetched by scripts/fetch-debian.sh, when present.
fn debian_kernel_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/cache/kernel-root");
    root.join("lib/modules").is_dir().then_some(root)
}

#[test]
fn debian_storage_initramfs_is_reproducible() {
    let Some(root) = debian_kernel_root() else {
        eprintln!("skipped: run scripts/fetch-debian.sh first");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent");
    std::fs::write(&agent, b"agent").unwrap();
    let (a, b) = (dir.path().join("a.gz"), dir.path().join("b.gz"));
    let report = build(&root, &agent, &a, &["--compress", "gzip"], None);
    build(&root, &agent, &b, &["--compress", "gzip"], None);
    assert_eq!(sha256(&a), sha256(&b));
    assert!(report.contains("modules (raw)"), "{report}");
}
