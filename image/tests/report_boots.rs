//! The fleet's view of a run, in QEMU (TCG): the `ESXI-RESCUE-RESULT v1` line last on the
//! serial console, and `rescue.report=` POSTing the signed run report over a virtio NIC (QEMU
//! user networking: the guest's 10.0.2.2 is this machine's 127.0.0.1). The initramfs carries
//! busybox here, as the shipped one does (udhcpc, ip).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use esxi_fixtures::{
    build, damage, BankSpec, ConfigFlavor, ConfigSpec, Damage, Generation, Media, OwnerSpec, Spec,
};
use rescue_agent::init::http_post::signature;
use rescue_agent::init::result_line::{RunResult, Verdict};

const UUID: &str = "5a1e0000-0000-4000-8000-00000000f1ee";
const SERIAL: &str = "FLEET-HOST-01";
const TOKEN: &str = "fleet-test-token";

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// vmlinuz and an initramfs with the agent, the default module set (storage + NIC) and busybox.
fn boot_files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let top = top();
        let agent = top.join("out/rescue-agent");
        let root = top.join("out/cache/kernel-root");
        let busybox = top.join("out/cache/root-busybox-static/bin/busybox");
        for p in [&agent, &root, &busybox] {
            assert!(
                p.exists(),
                "{} missing: scripts/test.sh builds it",
                p.display()
            );
        }
        let dir = top.join("target/report-boots");
        std::fs::create_dir_all(&dir).unwrap();
        let (initrd, vmlinuz) = (dir.join("initrd.img"), dir.join("vmlinuz"));
        let bin = env!("CARGO_BIN_EXE_rescue-image");
        let initramfs = Command::new(bin)
            .args(["initramfs", "--compress", "gzip", "--agent"])
            .arg(&agent)
            .arg("--kernel-root")
            .arg(&root)
            .arg("--busybox")
            .arg(&busybox)
            .arg("--out")
            .arg(&initrd)
            .output()
            .unwrap();
        assert!(
            initramfs.status.success(),
            "{}",
            String::from_utf8_lossy(&initramfs.stderr)
        );
        let kernel = Command::new(bin)
            .args(["kernel", "--kernel-root"])
            .arg(&root)
            .arg("--out")
            .arg(&vmlinuz)
            .output()
            .unwrap();
        assert!(
            kernel.status.success(),
            "{}",
            String::from_utf8_lossy(&kernel.stderr)
        );
        (vmlinuz, initrd)
    })
}

/// Boots one machine with a virtio disk and a virtio NIC; returns the serial log.
fn boot(name: &str, disk: &Path, append: &str) -> String {
    let (vmlinuz, initrd) = boot_files();
    let log = top().join(format!("target/report-boots/{name}.log"));
    let status = Command::new("bash")
        .arg(top().join("scripts/qemu.sh"))
        .arg("--kernel")
        .arg(vmlinuz)
        .arg("--initrd")
        .arg(initrd)
        .arg("--append")
        .arg(format!(
            "console=ttyS0,115200n8 panic=-1 rescue.log=debug rescue.wait=15 \
             rescue.after=poweroff rescue.idle=poweroff {append}"
        ))
        .args(["--timeout", "400", "--log"])
        .arg(&log)
        .arg("--disk")
        .arg(format!("virtio-blk:{}:0x09", disk.display()))
        .arg("--")
        .args(["-nic", "user,model=virtio-net-pci", "-uuid", UUID])
        .arg("-smbios")
        .arg(format!("type=1,serial={SERIAL}"))
        .status()
        .unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    assert_eq!(status.code(), Some(0), "QEMU did not power off:\n{text}");
    assert!(text.contains("reboot: Power down"), "{text}");
    text
}

/// The result line must be the agent's last line: nothing of ours after it.
fn last_result(log: &str) -> RunResult {
    let result = RunResult::find_last(log).unwrap_or_else(|| panic!("no result line:\n{log}"));
    // The agent stamps its lines "[ 12.345 s] "; the kernel's own are "[   12.345678] ".
    let agent_line = |l: &&str| {
        l.strip_prefix('[')
            .and_then(|r| r.split_once(" s] "))
            .is_some_and(|(t, _)| t.trim().parse::<f64>().is_ok())
    };
    let after: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("ESXI-RESCUE-RESULT v1 "))
        .skip(1)
        .filter(agent_line)
        .collect();
    assert!(after.is_empty(), "agent lines after the result: {after:?}");
    result
}

/// A one-shot HTTP sink: the first POST's headers and body, answered 201.
fn report_sink() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break (String::new(), Vec::new()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    break (head, got[end + 4..end + 4 + len].to_vec());
                }
            };
            let _ = s.write_all(
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if !head.is_empty() && tx.send((head, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn a_repair_posts_its_signed_report_and_ends_with_the_result_line() {
    let dir = tempfile::tempdir().unwrap();
    // Seed 001's host, on virtio: compacted GPT and a passthru owner on the boot controller.
    let cfg = ConfigSpec {
        flavor: ConfigFlavor::Plain,
        owners: vec![OwnerSpec::new("000:09.0", "passthru", None)],
        hostname: "esx01".into(),
        store: Default::default(),
    };
    let spec = Spec::new(Generation::Esxi5, Media::Disk, 512).with_banks(
        BankSpec::active("5.5.0-1331820", Some(cfg)),
        BankSpec::alternate_empty("5.5.0-1331820"),
    );
    let f = build(&dir.path().join("fleet.img"), &spec).unwrap();
    damage(&f.path, &Damage::CompactKeepOrder).unwrap();
    let (port, reports) = report_sink();
    let log = boot(
        "report-repair",
        &f.path,
        &format!("rescue.report=http://10.0.2.2:{port}/report rescue.token={TOKEN}"),
    );
    let (head, body) = reports
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("no report arrived:\n{log}"));
    assert!(head.starts_with("POST /report HTTP/1.1"), "{head}");
    let sig = format!("X-Rescue-Signature: {}", signature(TOKEN, &body));
    assert!(head.lines().any(|l| l == sig), "bad signature:\n{head}");
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["host"]["uuid"], UUID);
    assert_eq!(report["host"]["serial"], SERIAL);
    assert_eq!(report["result"]["verdict"], "repaired");
    assert!(report["repair"]["plan"].is_object(), "{report}");
    // The bootbank report has the shape the CLI prints for `repair --json`.
    assert_eq!(report["repair"]["front_end"], "pid1", "{report}");
    assert!(report["repair"]["before"]["esxi"].is_object(), "{report}");
    assert!(
        log.contains("virtio_net"),
        "the NIC driver was not loaded:\n{log}"
    );
    assert!(log.contains("report sent to http://10.0.2.2"), "{log}");

    let result = last_result(&log);
    assert_eq!(result.verdict, Verdict::Repaired, "{log}");
    assert_eq!(result.mode, "repair");
    assert_eq!(result.uuid.as_deref(), Some(UUID));
    assert_eq!(result.serial.as_deref(), Some(SERIAL));
    assert_eq!(result.disk.as_deref(), Some("/dev/vda"));
    assert_eq!(result.report.as_deref(), Some("RSQ00001.JSN"));
    assert!(
        result
            .changes
            .iter()
            .any(|c| c.contains("000:09.0") && c.contains("vmkernel")),
        "{:?}",
        result.changes
    );
    assert!(
        result.changes.iter().any(|c| c.contains("slot")),
        "{:?}",
        result.changes
    );
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    // The report the agent names is the one in the bootbank.
    let probe = rescue_agent::probe::probe_path(&f.path, &Default::default()).unwrap();
    assert!(
        probe.report.problems.is_empty(),
        "{:?}",
        probe.report.problems
    );
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn without_a_report_url_no_nic_driver_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("healthy.img"),
        &Spec::new(Generation::Esxi6, Media::Disk, 512),
    )
    .unwrap();
    let log = boot("report-none", &f.path, "");
    assert!(log.contains("drivers:"), "{log}");
    assert!(log.contains("virtio_blk"), "{log}");
    assert!(
        !log.contains("virtio_net"),
        "a NIC driver was loaded:\n{log}"
    );
    assert!(!log.contains("report to http"), "{log}");
    let result = last_result(&log);
    assert_eq!(result.verdict, Verdict::NothingToDo);
    assert_eq!(result.uuid.as_deref(), Some(UUID));
    assert_eq!(result.disk.as_deref(), Some("/dev/vda"));
    assert_eq!(result.report, None);
}
