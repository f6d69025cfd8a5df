//! rescue-agent as PID 1 in QEMU (TCG): the seeds' hosts on emulated RAID, SATA, NVMe, SCSI and
//! USB controllers. Each boots the Debian kernel with the agent's initramfs directly
//! (-kernel/-initrd), lets the agent find, repair and verify, and then checks the disk itself
//! and the serial log. `-no-reboot` turns the agent's reboot into QEMU's exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use esxi_fixtures::{
    build, build_foreign, content_digest, damage, dump_store, inspect_state_tgz, read_bank_file,
    stamp_raid_member, BankSpec, ConfigFlavor, ConfigSpec, Damage, Fixture, Foreign, Generation,
    Media, OwnerSpec, RaidStamp, Spec, StorePciRow,
};
use rescue_agent::bank_config::PolicyContext;
use rescue_agent::probe;

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// vmlinuz and the agent's initramfs, built once per test run from out/rescue-agent.
fn boot_files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let top = top();
        let agent = top.join("out/rescue-agent");
        let root = top.join("out/cache/kernel-root");
        assert!(
            agent.is_file(),
            "out/rescue-agent missing: run scripts/build.sh (scripts/test.sh does)"
        );
        assert!(
            root.is_dir(),
            "out/cache missing: run scripts/fetch-debian.sh (scripts/test.sh does)"
        );
        let dir = top.join("target/agent-boots");
        std::fs::create_dir_all(&dir).unwrap();
        let (initrd, vmlinuz) = (dir.join("initrd.img"), dir.join("vmlinuz"));
        let bin = env!("CARGO_BIN_EXE_rescue-image");
        for args in [
            vec![
                "initramfs",
                "--compress",
                "gzip",
                "--agent",
                agent.to_str().unwrap(),
                "--kernel-root",
                root.to_str().unwrap(),
                "--out",
                initrd.to_str().unwrap(),
            ],
            vec![
                "kernel",
                "--kernel-root",
                root.to_str().unwrap(),
                "--out",
                vmlinuz.to_str().unwrap(),
            ],
        ] {
            let out = Command::new(bin).args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "rescue-image {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (vmlinuz, initrd)
    })
}

struct Boot {
    log: String,
    exit: i32,
}

impl Boot {
    fn assert_has(&self, text: &str) {
        assert!(
            self.log.contains(text),
            "serial log lacks {text:?}:\n{}",
            self.log
        );
    }
    /// Like assert_has, across the consoles' 80-column wrapping (whitespace runs compare equal).
    fn assert_has_text(&self, text: &str) {
        let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squash(&self.log).contains(&squash(text)),
            "serial log lacks {text:?}:\n{}",
            self.log
        );
    }
    fn ended_by_reboot(&self) {
        assert_eq!(self.exit, 0, "QEMU exit {}:\n{}", self.exit, self.log);
        self.assert_has("reboot: Restarting system");
        assert!(!self.log.contains("Kernel panic"), "{}", self.log);
    }
    fn ended_by_poweroff(&self) {
        assert_eq!(self.exit, 0, "QEMU exit {}:\n{}", self.exit, self.log);
        self.assert_has("reboot: Power down");
    }
    /// Agent time (its own clock) of the closing banner, and the kernel time it started at.
    fn timing(&self, name: &str) {
        let kernel_init = self
            .log
            .lines()
            .find(|l| l.contains("Run /init as init process"))
            .and_then(|l| l.trim_start_matches('[').split(']').next())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let agent_done = self
            .log
            .lines()
            .filter_map(|l| l.strip_prefix('[').and_then(|r| r.split(" s]").next()))
            .filter_map(|t| t.trim().parse::<f64>().ok())
            .fold(0.0, f64::max);
        let modules = self
            .log
            .lines()
            .find(|l| l.contains("drivers:"))
            .unwrap_or("")
            .trim();
        let line = format!(
            "TIMING {name}: kernel start → /init {kernel_init:.1} s, agent to verdict {agent_done:.1} s, total {:.1} s (+10 s countdown); {modules}\n",
            kernel_init + agent_done
        );
        // The harness captures stderr of passing tests; scripts/test.sh prints this file.
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(top().join("target/agent-boots/TIMINGS"))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn qemu(name: &str, disks: &[(&str, &Path, &str)], append: &str) -> Boot {
    qemu_with(name, disks, append, &[])
}

fn qemu_with(name: &str, disks: &[(&str, &Path, &str)], append: &str, extra: &[String]) -> Boot {
    let (vmlinuz, initrd) = boot_files();
    let log = top().join(format!("target/agent-boots/{name}.log"));
    let mut cmd = Command::new("bash");
    cmd.arg(top().join("scripts/qemu.sh"))
        .arg("--kernel")
        .arg(vmlinuz)
        .arg("--initrd")
        .arg(initrd)
        .arg("--append")
        .arg(format!(
            "console=ttyS0,115200n8 panic=-1 rescue.log=debug rescue.wait=15 {append}"
        ))
        .args(["--timeout", "300", "--log"])
        .arg(&log);
    for (ctrl, img, addr) in disks {
        cmd.arg("--disk")
            .arg(format!("{ctrl}:{}:{addr}", img.display()));
    }
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    let status = cmd.status().expect("scripts/qemu.sh");
    let boot = Boot {
        log: String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned(),
        exit: status.code().unwrap_or(-1),
    };
    boot.timing(name);
    boot
}

fn owner(addr: &str, value: &str) -> OwnerSpec {
    OwnerSpec::new(addr, value, None)
}

fn config(flavor: ConfigFlavor, owners: Vec<OwnerSpec>) -> Option<ConfigSpec> {
    Some(ConfigSpec {
        flavor,
        owners,
        hostname: "esx01".into(),
        store: Default::default(),
    })
}

fn esx_conf(f: &Fixture, slot: u32) -> String {
    let state = read_bank_file(&f.path, f, slot, "state.tgz")
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    inspect_state_tgz(&state, dir.path()).unwrap().esx_conf
}

fn assert_healthy(img: &Path) {
    let p = probe::probe_path(img, &PolicyContext::default()).unwrap();
    assert!(
        p.report.esxi.is_some(),
        "{img:?} is no longer ESXi: {:?}",
        p.report.not_esxi
    );
    assert!(
        p.report.problems.is_empty(),
        "{img:?}: {:?}",
        p.report.problems
    );
}

fn fsck_banks(f: &Fixture) {
    let ss = u64::from(f.spec.sector_size);
    for p in f.partitions.iter().filter(|p| p.slot == 5 || p.slot == 6) {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("bank.img");
        let status = Command::new("dd")
            .arg(format!("if={}", f.path.display()))
            .arg(format!("of={}", part.display()))
            .arg(format!("bs={ss}"))
            .arg(format!("skip={}", p.first_lba))
            .arg(format!("count={}", p.last_lba - p.first_lba + 1))
            .args(["conv=sparse", "status=none"])
            .status()
            .unwrap();
        assert!(status.success());
        let out = Command::new("fsck.vfat")
            .arg("-n")
            .arg(&part)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fsck.vfat bank {}: {}",
            p.slot,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn seed_001_megasas_raid_passthru_in_both_banks() {
    let dir = tempfile::tempdir().unwrap();
    // megasas pinned at slot 5: 0000:00:05.0, which ESXi's esx.conf writes as 000:05.0.
    let cfg = config(ConfigFlavor::Plain, vec![owner("000:05.0", "passthru")]);
    let spec = Spec::new(Generation::Esxi5, Media::Disk, 512).with_banks(
        BankSpec::active("5.5.0-1331820", cfg.clone()),
        BankSpec::alternate_valid("5.5.0-1331820", cfg),
    );
    let f = build(&dir.path().join("seed001.img"), &spec).unwrap();
    let boot = qemu("seed001", &[("megasas", &f.path, "0x05")], "");
    boot.ended_by_reboot();
    boot.assert_has("esxi-rescue: REPAIRED");
    boot.assert_has("megaraid_sas");
    for slot in [5, 6] {
        assert!(
            esx_conf(&f, slot).contains("/device/000:05.0/owner = \"vmkernel\""),
            "bank {slot}"
        );
    }
    assert_healthy(&f.path);
    fsck_banks(&f);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn seed_002_ahci_passthru_in_active_bank_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::new(Generation::Esxi6, Media::Disk, 512).with_banks(
        BankSpec::active(
            "6.5.0-4564106",
            config(ConfigFlavor::Plain, vec![owner("000:06.0", "passthru")]),
        ),
        BankSpec::alternate_valid(
            "6.0.0-3620759",
            config(ConfigFlavor::Plain, vec![owner("000:06.0", "vmkernel")]),
        ),
    );
    let f = build(&dir.path().join("seed002.img"), &spec).unwrap();
    let bank6 = read_bank_file(&f.path, &f, 6, "state.tgz").unwrap();
    let boot = qemu("seed002", &[("ich9-ahci", &f.path, "0x06")], "");
    boot.ended_by_reboot();
    boot.assert_has("ahci");
    assert!(esx_conf(&f, 5).contains("/device/000:06.0/owner = \"vmkernel\""));
    assert_eq!(
        read_bank_file(&f.path, &f, 6, "state.tgz").unwrap(),
        bank6,
        "the alternate bank changed"
    );
    assert_healthy(&f.path);
    fsck_banks(&f);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn seed_000_nvme_encrypted_config_gpu_passthru_kept() {
    let dir = tempfile::tempdir().unwrap();
    // The boot NVMe at 0000:00:07.0 inherited a passthru owner; QEMU's VGA at 0000:00:02.0
    // (class 0x0300, like the GPU of the seed) is passed through and must stay so. As on a real
    // 8.x host, both live in the ConfigStore (esx.conf has no /device/ branch since 7.0U2).
    let mut cfg = ConfigSpec::new(ConfigFlavor::Encrypted);
    cfg.owners.clear();
    cfg.store.pci_devices = vec![
        StorePciRow::new("0000:00:02.0", "OWNER_PASSTHRU", Some("gpu")),
        StorePciRow::new("0000:00:07.0", "OWNER_PASSTHRU", None),
    ];
    let spec = Spec::new(Generation::Esxi7, Media::Disk, 512).with_banks(
        BankSpec::active("8.0.3-24022510", Some(cfg.clone())),
        BankSpec::alternate_valid("8.0.2-22380479", Some(cfg)),
    );
    let f = build(&dir.path().join("seed000.img"), &spec).unwrap();
    let boot = qemu("seed000", &[("nvme", &f.path, "0x07")], "");
    boot.ended_by_reboot();
    boot.assert_has("nvme");
    for slot in [5, 6] {
        let state = read_bank_file(&f.path, &f, slot, "state.tgz")
            .unwrap()
            .unwrap();
        let work = tempfile::tempdir().unwrap();
        let view = inspect_state_tgz(&state, work.path()).unwrap();
        let store = dump_store(view.configstore.as_ref().unwrap(), work.path()).unwrap();
        assert_eq!(store.integrity, "ok");
        let owner_of = |sbdf: &str| -> String {
            let row = store.tables["Config"]
                .iter()
                .find(|r| r[2] == "pci_devices" && r[3] == sbdf)
                .unwrap_or_else(|| panic!("bank {slot}: no row {sbdf}"));
            row[9].as_str().unwrap_or_default().to_string()
        };
        assert!(
            owner_of("0000:00:07.0").contains("\"owner\":\"OWNER_VMKERNEL\""),
            "bank {slot}"
        );
        assert!(
            owner_of("0000:00:02.0").contains("\"owner\":\"OWNER_PASSTHRU\""),
            "bank {slot}: GPU passthrough must stay"
        );
    }
    boot.assert_has("keep ConfigStore pci_devices 0000:00:02.0");
    assert_healthy(&f.path);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn seed_003_compacted_and_grown_gpt_on_virtio_scsi() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("seed003.img"),
        &Spec::new(Generation::Esxi5, Media::Disk, 512),
    )
    .unwrap();
    for d in [
        Damage::Grow(2 << 30),
        Damage::RelocateBackupToEnd,
        Damage::CompactKeepOrder,
    ] {
        damage(&f.path, &d).unwrap();
    }
    let boot = qemu("seed003", &[("virtio-scsi", &f.path, "0x08")], "");
    boot.ended_by_reboot();
    boot.assert_has("slot 4 -> 5: bootbank");
    assert_healthy(&f.path);
    let sg = Command::new("sgdisk")
        .arg("-v")
        .arg(&f.path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sg.stdout).contains("No problems found"));
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn healthy_disk_is_left_alone_and_no_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("healthy.img"),
        &Spec::new(Generation::Esxi6, Media::Disk, 512),
    )
    .unwrap();
    let before = esxi_fixtures::content_digest(&f.path).unwrap();
    let boot = qemu(
        "healthy",
        &[("virtio-blk", &f.path, "0x09")],
        "rescue.idle=poweroff",
    );
    boot.ended_by_poweroff();
    boot.assert_has("healthy; nothing to repair, nothing written");
    boot.assert_has("NOTHING REPAIRED");
    assert_eq!(
        esxi_fixtures::content_digest(&f.path).unwrap(),
        before,
        "a healthy disk was written"
    );
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn foreign_disks_beside_esxi_stay_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let esxi = build(
        &dir.path().join("esxi.img"),
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    )
    .unwrap();
    damage(&esxi.path, &Damage::CompactSorted).unwrap();
    let linux = dir.path().join("linux.img");
    let windows = dir.path().join("windows.img");
    let look_alike = dir.path().join("basic56.img");
    build_foreign(&linux, Foreign::LinuxGpt, 4 << 30).unwrap();
    build_foreign(&windows, Foreign::WindowsGpt, 4 << 30).unwrap();
    build_foreign(&look_alike, Foreign::BasicDataInSlots5And6, 8 << 30).unwrap();
    let digests: Vec<String> = [&linux, &windows, &look_alike]
        .iter()
        .map(|p| esxi_fixtures::content_digest(p).unwrap())
        .collect();
    let boot = qemu(
        "foreign",
        &[
            ("megasas-gen2", &linux, "0x05"),
            ("megasas-gen2", &esxi.path, "0x06"),
            ("megasas-gen2", &windows, "0x07"),
            ("megasas-gen2", &look_alike, "0x08"),
        ],
        "",
    );
    boot.ended_by_reboot();
    assert_healthy(&esxi.path);
    for (p, d) in [&linux, &windows, &look_alike].iter().zip(&digests) {
        assert_eq!(
            &esxi_fixtures::content_digest(p).unwrap(),
            d,
            "{p:?} changed"
        );
    }
    assert_eq!(boot.log.matches("not ESXi").count(), 3, "{}", boot.log);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn esxi_on_usb_stick_with_its_xhci_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    // The xHCI controller the stick hangs off, pinned at 0000:00:0a.0 → ESXi's 000:10.0.
    let cfg = config(ConfigFlavor::Plain, vec![owner("000:10.0", "passthru")]);
    let spec = Spec::new(Generation::Esxi6, Media::Usb, 512).with_banks(
        BankSpec::active("6.7.0-8169922", cfg),
        BankSpec::alternate_empty("6.7.0-8169922"),
    );
    let f = build(&dir.path().join("usb.img"), &spec).unwrap();
    let boot = qemu("usb", &[("qemu-xhci", &f.path, "0x0a")], "");
    boot.ended_by_reboot();
    boot.assert_has("usb-storage");
    assert!(esx_conf(&f, 5).contains("/device/000:10.0/owner = \"vmkernel\""));
    assert_healthy(&f.path);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn vmkusb_disabled_on_an_8x_usb_install_is_enabled_again() {
    // William Lam's case: `esxcli system module set --enabled=false -m vmkusb` on a host that
    // boots from USB. The ConfigStore of 8.x keeps it in esx/vmkernel/module_settings; PID 1 sees
    // the stick behind xhci_hcd and re-enables vmkusb, nothing else.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ConfigSpec::new(ConfigFlavor::Encrypted);
    cfg.store.disabled_modules = vec!["vmkusb".into()];
    let spec = Spec::new(Generation::Esxi7, Media::Usb, 512).with_banks(
        BankSpec::active("8.0.3-24022510", Some(cfg)),
        BankSpec::alternate_empty("8.0.3-24022510"),
    );
    let f = build(&dir.path().join("vmkusb.img"), &spec).unwrap();
    let boot = qemu("vmkusb", &[("qemu-xhci", &f.path, "0x0a")], "");
    boot.ended_by_reboot();
    boot.assert_has("driver vmkusb disabled");
    boot.assert_has("drives the controller of the ESXi disk");
    let state = read_bank_file(&f.path, &f, 5, "state.tgz")
        .unwrap()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let view = inspect_state_tgz(&state, work.path()).unwrap();
    let store = dump_store(view.configstore.as_ref().unwrap(), work.path()).unwrap();
    assert_eq!(store.integrity, "ok");
    let row = store.tables["Config"]
        .iter()
        .find(|r| r[2] == "module_settings" && r[3] == "vmkusb")
        .expect("the vmkusb row");
    assert!(
        row[9]
            .as_str()
            .unwrap_or_default()
            .contains("\"enabled\":true"),
        "{row:?}"
    );
    assert_healthy(&f.path);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn boot_from_san_two_paths_to_one_lun_are_one_esxi_disk() {
    // One backing file behind two controllers with the same WWN: two /dev/sdX, one LUN.
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("lun.img"),
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    )
    .unwrap();
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let wwn = "0x5000c50015ea71ac";
    let boot = qemu(
        "multipath",
        &[
            ("virtio-scsi", &f.path, &format!("0x08:{wwn}")),
            ("megasas-gen2", &f.path, &format!("0x05:{wwn}")),
        ],
        "",
    );
    boot.ended_by_reboot();
    boot.assert_has_text("ESXi LUN naa.5000c50015ea71ac: 2 paths");
    boot.assert_has("REPAIRED");
    assert_healthy(&f.path);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn pvscsi_is_driven_and_a_controller_without_a_driver_is_named() {
    // Nested ESXi on VMware: the boot disk on PVSCSI. An AMD Am53c974 SCSI HBA has no driver in
    // the image: it is named, and the closing screen says a disk behind it cannot be seen.
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("nested.img"),
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    )
    .unwrap();
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let hidden = dir.path().join("hidden.img");
    build_foreign(&hidden, Foreign::LinuxGpt, 1 << 30).unwrap();
    let boot = qemu(
        "pvscsi",
        &[("pvscsi", &f.path, "0x09"), ("am53c974", &hidden, "0x0b")],
        "",
    );
    boot.ended_by_reboot();
    boot.assert_has("vmw_pvscsi");
    boot.assert_has_text(
        "0000:00:0b.0 [1022:2020] mass-storage controller: no driver in this image",
    );
    boot.assert_has_text("an ESXi disk behind it cannot be seen");
    assert_healthy(&f.path);
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn software_raid_members_stay_byte_identical() {
    // VROC/RST, DDF and md members carrying an ESXi GPT whose backup sits before the metadata.
    let dir = tempfile::tempdir().unwrap();
    let mut members = Vec::new();
    for (i, kind) in [RaidStamp::IntelImsm, RaidStamp::Ddf, RaidStamp::Md10]
        .into_iter()
        .enumerate()
    {
        let f = build(
            &dir.path().join(format!("member{i}.img")),
            &Spec::new(Generation::Esxi7, Media::Disk, 512),
        )
        .unwrap();
        damage(&f.path, &Damage::Grow(4 << 20)).unwrap();
        stamp_raid_member(&f.path, kind).unwrap();
        let before = content_digest(&f.path).unwrap();
        members.push((f, before));
    }
    let boot = qemu(
        "raid-members",
        &[
            ("megasas-gen2", &members[0].0.path, "0x05"),
            ("virtio-scsi", &members[1].0.path, "0x08"),
            ("ich9-ahci", &members[2].0.path, "0x06"),
        ],
        "rescue.idle=poweroff",
    );
    boot.ended_by_poweroff();
    boot.assert_has_text("software-RAID member (Intel IMSM");
    boot.assert_has_text("software-RAID member (SNIA DDF");
    boot.assert_has_text("software-RAID member (Linux md");
    boot.assert_has("no ESXi disk found; nothing written");
    for (f, before) in &members {
        assert_eq!(&content_digest(&f.path).unwrap(), before, "{:?}", f.path);
    }
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn init_outlives_a_worker_that_dies_and_follows_rescue_idle() {
    // The test-only hook aborts the worker as it starts planning (as a failed allocation or a
    // panic would): init says what happened and where, writes nothing, and powers off.
    let dir = tempfile::tempdir().unwrap();
    let f = build(
        &dir.path().join("abort.img"),
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    )
    .unwrap();
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let before = content_digest(&f.path).unwrap();
    let boot = qemu(
        "worker-abort",
        &[("virtio-blk", &f.path, "0x08")],
        "rescue.selftest=abort:planning rescue.idle=poweroff",
    );
    boot.ended_by_poweroff();
    boot.assert_has_text("the rescue worker was killed by SIGABRT");
    boot.assert_has_text("while planning");
    boot.assert_has("NOTHING REPAIRED");
    assert!(!boot.log.contains("Kernel panic"), "{}", boot.log);
    assert_eq!(content_digest(&f.path).unwrap(), before, "nothing written");
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn two_esxi_disks_refused_unless_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(
        &dir.path().join("a.img"),
        &Spec::new(Generation::Esxi5, Media::Disk, 512),
    )
    .unwrap();
    let b = build(
        &dir.path().join("b.img"),
        &Spec::new(Generation::Esxi6, Media::Disk, 512),
    )
    .unwrap();
    damage(&a.path, &Damage::CompactKeepOrder).unwrap();
    damage(&b.path, &Damage::CompactKeepOrder).unwrap();
    let (da, db) = (
        esxi_fixtures::content_digest(&a.path).unwrap(),
        esxi_fixtures::content_digest(&b.path).unwrap(),
    );
    // scripts/qemu.sh gives NVMe disk N the serial "rescueN".
    let disks = [
        ("nvme", a.path.as_path(), "0x05"),
        ("nvme", b.path.as_path(), "0x06"),
    ];
    let boot = qemu("two-unnamed", &disks, "rescue.idle=poweroff");
    boot.ended_by_poweroff();
    boot.assert_has("2 ESXi disks found");
    assert_eq!(esxi_fixtures::content_digest(&a.path).unwrap(), da);
    assert_eq!(esxi_fixtures::content_digest(&b.path).unwrap(), db);

    let boot = qemu("two-named", &disks, "rescue.disk=rescue1");
    boot.ended_by_reboot();
    assert_healthy(&b.path);
    assert_eq!(
        esxi_fixtures::content_digest(&a.path).unwrap(),
        da,
        "the unnamed disk was written"
    );
}

#[test]
#[ignore = "boots QEMU (TCG); run by scripts/test.sh"]
fn uefi_boot_mounts_efivarfs_and_handles_boot_next() {
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("ovmf (scripts/setup.sh)");
    let f = build(
        &dir.path().join("uefi.img"),
        &Spec::new(Generation::Esxi7, Media::Disk, 512),
    )
    .unwrap();
    damage(&f.path, &Damage::CompactSorted).unwrap();
    let extra = vec![
        "-drive".to_string(),
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".to_string(),
        "-drive".to_string(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ];
    let boot = qemu_with("uefi", &[("virtio-blk", &f.path, "0x05")], "", &extra);
    boot.ended_by_reboot();
    boot.assert_has("UEFI boot: efivarfs mounted");
    // OVMF's own entries name whole disks, not the ESXi system partition (no HD() node): the
    // agent must say so and leave the boot order alone rather than point at the wrong entry.
    assert!(
        boot.log.contains("BootNext set to") || boot.log.contains("BootNext not set"),
        "{}",
        boot.log
    );
    assert_healthy(&f.path);
}
