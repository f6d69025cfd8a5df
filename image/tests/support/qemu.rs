//! Boots under QEMU with TCG (never KVM: on this machine kind /dev/kvm cannot run guests),
//! bounded by `timeout`, the serial console in a log file whose text is the verdict. QEMU's exit
//! status says little: under -no-reboot a reboot, a power-off and a kernel panic all exit 0.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The agent's first line as PID 1.
pub const AGENT_MARKER: &str = " as init, Linux ";
pub const REPAIRED_MARKER: &str = "esxi-rescue: REPAIRED";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    SeaBios,
    Ovmf,
    /// OVMF with Microsoft's keys enrolled: Secure Boot on.
    OvmfSecureBoot,
}

pub struct Vm {
    name: String,
    dir: PathBuf,
    firmware: Firmware,
    args: Vec<String>,
    timeout_s: u64,
}

pub struct Run {
    pub serial: String,
    /// QEMU start → the agent's first line.
    pub to_agent: Option<Duration>,
    pub total: Duration,
    pub status: ExitStatus,
    pub log: PathBuf,
}

impl Vm {
    pub fn new(name: &str, firmware: Firmware, dir: &Path) -> Vm {
        Vm {
            name: name.into(),
            dir: dir.to_path_buf(),
            firmware,
            args: Vec::new(),
            timeout_s: 240,
        }
    }

    pub fn arg(&mut self, a: impl Into<String>) -> &mut Vm {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, a: I) -> &mut Vm {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// The ISO as an IDE CD-ROM (boots first).
    pub fn ide_cd(&mut self, iso: &Path) -> &mut Vm {
        self.args([
            "-drive".into(),
            format!(
                "if=none,id=cd,file={},media=cdrom,format=raw,readonly=on",
                iso.display()
            ),
            "-device".into(),
            "ide-cd,drive=cd,bus=ide.1,bootindex=0".into(),
        ])
    }

    /// The ISO as a USB CD-ROM, the way a BMC's virtual media presents it.
    pub fn usb_cd(&mut self, iso: &Path) -> &mut Vm {
        self.args([
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-device".into(),
            "usb-bot,id=bot,bus=xhci.0".into(),
            "-drive".into(),
            format!(
                "if=none,id=cd,file={},media=cdrom,format=raw,readonly=on",
                iso.display()
            ),
            "-device".into(),
            "scsi-cd,bus=bot.0,drive=cd,bootindex=0".into(),
        ])
    }

    /// A disk image as a USB stick (boots first; writable).
    pub fn usb_stick(&mut self, image: &Path) -> &mut Vm {
        self.args([
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-drive".into(),
            format!("if=none,id=stick,file={},format=raw", image.display()),
            "-device".into(),
            "usb-storage,bus=xhci.0,drive=stick,bootindex=0".into(),
        ])
    }

    /// The disk to repair, on virtio-blk.
    pub fn virtio_disk(&mut self, image: &Path) -> &mut Vm {
        self.args([
            "-drive".into(),
            format!("if=none,id=target,file={},format=raw", image.display()),
            "-device".into(),
            "virtio-blk-pci,drive=target".into(),
        ])
    }

    /// A NIC on QEMU's user network whose TFTP server serves `dir` with `bootfile`; `ipxe` false
    /// drops the iPXE option ROM so the firmware's own PXE boots.
    pub fn pxe(&mut self, dir: &Path, bootfile: &str, ipxe: bool) -> &mut Vm {
        let rom = if ipxe { "" } else { ",romfile=" };
        self.args([
            "-netdev".into(),
            format!("user,id=net0,tftp={},bootfile={bootfile}", dir.display()),
            "-device".into(),
            format!("virtio-net-pci,netdev=net0{rom},bootindex=0"),
        ])
    }

    fn firmware_args(&self) -> Vec<String> {
        let ovmf = |code: &str, vars: &str, sb: bool| {
            let copy = self.dir.join(format!("{}-vars.fd", self.name));
            std::fs::copy(Path::new("/usr/share/OVMF").join(vars), &copy).unwrap();
            let mut a: Vec<String> = if sb {
                vec![
                    "-M".into(),
                    "q35,smm=on".into(),
                    "-global".into(),
                    "driver=cfi.pflash01,property=secure,value=on".into(),
                ]
            } else {
                vec!["-M".into(), "q35".into()]
            };
            a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/{code}"),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", copy.display()),
            ]);
            a
        };
        match self.firmware {
            Firmware::SeaBios => vec!["-M".into(), "pc".into()],
            Firmware::Ovmf => ovmf("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", false),
            Firmware::OvmfSecureBoot => ovmf("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", true),
        }
    }

    /// Boots; returns when QEMU exits or `timeout` kills it.
    pub fn run(&self) -> Run {
        let log = self.dir.join(format!("{}.serial.log", self.name));
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", &self.timeout_s.to_string(), "qemu-system-x86_64"])
            .args([
                "-accel",
                "tcg",
                "-m",
                "1024",
                "-nographic",
                "-monitor",
                "none",
            ])
            .arg("-no-reboot")
            .args(self.firmware_args())
            .args(&self.args)
            .arg("-serial")
            .arg(format!("file:{}", log.display()));
        if !self.args.iter().any(|a| a.starts_with("-netdev")) {
            cmd.args(["-nic", "none"]);
        }
        let start = Instant::now();
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
        let mut to_agent = None;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if to_agent.is_none() && read(&log).contains(AGENT_MARKER) {
                to_agent = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let total = start.elapsed();
        let serial = read(&log);
        if to_agent.is_none() && serial.contains(AGENT_MARKER) {
            to_agent = Some(total);
        }
        eprintln!(
            "BOOT {}: agent after {} s, QEMU exit after {:.1} s ({status})",
            self.name,
            to_agent.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64())),
            total.as_secs_f64()
        );
        Run {
            serial,
            to_agent,
            total,
            status,
            log,
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl Run {
    /// The agent ran as init, repaired the disk and rebooted (QEMU exited by itself).
    pub fn assert_repaired(&self) {
        let tail: String = {
            let lines: Vec<&str> = self.serial.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        assert!(
            !self.serial.contains("Kernel panic"),
            "kernel panic ({})\n{tail}",
            self.log.display()
        );
        assert!(
            self.status.code() != Some(124) && self.status.code() != Some(137),
            "timed out ({})\n{tail}",
            self.log.display()
        );
        assert!(
            self.serial.contains(AGENT_MARKER),
            "the agent never ran ({})\n{tail}",
            self.log.display()
        );
        assert!(
            self.serial.contains(REPAIRED_MARKER),
            "no repair ({})\n{tail}",
            self.log.display()
        );
    }

    /// The kernel's `Command line:` (what /proc/cmdline holds).
    pub fn kernel_cmdline(&self) -> String {
        self.serial
            .lines()
            .find_map(|l| {
                l.split_once("Command line: ")
                    .map(|(_, c)| c.trim().to_string())
            })
            .unwrap_or_default()
    }
}
