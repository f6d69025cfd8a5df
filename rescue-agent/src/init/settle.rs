//! Waiting for disks without udev, for as long as it takes to find ESXi: poll /sys/block until
//! an ESXi install has been positively identified and nothing has changed for a quiet period,
//! bounded by `rescue.wait`.
//!
//! While no ESXi disk has been found the wait goes on to `rescue.wait`, however quiet the
//! machine is: a PERC whose virtual disk comes up late, an FC fabric login, a SAS expander that
//! enumerates in bursts or a slow SD module may take many seconds. Once one is found, controllers
//! still without a disk (an empty onboard AHCI, common on servers) no longer hold the run up;
//! they are reported as empty.
//!
//! Storage controllers: PCI functions of class 0x01xxxx and USB mass-storage interfaces
//! (bInterfaceClass 08), counted once bound (their `driver` link exists). A disk belongs to a
//! controller when its resolved `/sys/block/X/device` path lies under the controller's path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::machine::sysfs;

const USB_STORAGE: &str = "usb-storage";

/// Time source, injectable for tests.
pub trait Clock {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct RealClock(Instant);

impl Default for RealClock {
    fn default() -> Self {
        RealClock(Instant::now())
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleConfig {
    /// Give up after this long (`rescue.wait`).
    pub timeout: Duration,
    /// Nothing may change for this long before we stop.
    pub quiet: Duration,
    /// Poll interval.
    pub poll: Duration,
    /// A bound USB mass-storage interface is a device that is there (the rescue stick itself,
    /// where the undo copy goes): its disk is waited for this long, even once ESXi is found.
    pub device_grace: Duration,
}

impl SettleConfig {
    pub fn with_timeout(timeout: Duration) -> SettleConfig {
        SettleConfig {
            timeout,
            quiet: Duration::from_millis(500),
            poll: Duration::from_millis(50),
            device_grace: Duration::from_secs(8),
        }
    }
}

/// A storage controller as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controller {
    /// PCI address (`0000:03:00.0`) or USB interface (`2-1:1.0`).
    pub id: String,
    /// `pci 0x010400` / `usb-storage`.
    pub kind: String,
    pub driver: String,
    /// Block devices beneath it, sorted.
    pub disks: Vec<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettleReport {
    pub controllers: Vec<Controller>,
    /// Every /sys/block entry at the end.
    pub disks: Vec<String>,
    /// Bound controllers that never showed a disk.
    pub empty_controllers: Vec<String>,
    /// Disks positively identified as ESXi installs.
    pub esxi_disks: Vec<String>,
    pub elapsed_ms: u64,
    /// Stopped by the timeout rather than by being settled.
    pub timed_out: bool,
    pub polls: u32,
}

/// What the wait asks of the rest of the boot: a coldplug pass before every look (returns
/// whether it loaded something, which restarts the quiet period), whether a disk holds an ESXi
/// install (asked once per disk and size), and a progress line once a second.
pub trait SettleHooks {
    fn poll(&mut self) -> bool;
    fn is_esxi(&mut self, disk: &str) -> bool;
    fn progress(&mut self, line: &str);
}

/// Polls until an ESXi disk is found and all is quiet, or `cfg.timeout`.
pub fn settle(
    sys_root: &Path,
    cfg: SettleConfig,
    clock: &mut dyn Clock,
    hooks: &mut dyn SettleHooks,
) -> SettleReport {
    let start = clock.now();
    let mut last_sig: Option<(Vec<String>, Vec<String>)> = None;
    let mut last_change = start;
    // (disk, size in sectors) → ESXi or not: a disk is asked again when its size changes.
    let mut verdicts: BTreeMap<(String, u64), bool> = BTreeMap::new();
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut last_progress_secs = 0;
    let mut polls = 0;
    loop {
        polls += 1;
        let acted = hooks.poll();
        let now = clock.now();
        let disks = block_devices(sys_root);
        let controllers = controllers(sys_root, &disks);
        let sig = (
            disks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            controllers.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        );
        if acted || last_sig.as_ref() != Some(&sig) {
            last_change = now;
            last_sig = Some(sig.clone());
        }
        let mut esxi_disks = Vec::new();
        for (name, _) in &disks {
            let key = (name.clone(), disk_sectors(sys_root, name));
            let verdict = match verdicts.get(&key) {
                Some(v) => *v,
                None => {
                    let v = key.1 > 0 && hooks.is_esxi(name);
                    verdicts.insert(key, v);
                    v
                }
            };
            if verdict {
                esxi_disks.push(name.clone());
            }
        }
        for c in &controllers {
            first_seen.entry(c.id.clone()).or_insert(now);
        }
        let device_pending = controllers.iter().any(|c| {
            c.kind == USB_STORAGE
                && c.disks.is_empty()
                && now.saturating_sub(first_seen[&c.id]) < cfg.device_grace
        });
        let elapsed = now.saturating_sub(start);
        let quiet = now.saturating_sub(last_change) >= cfg.quiet;
        let timed_out = elapsed >= cfg.timeout;
        let settled = !esxi_disks.is_empty() && quiet && !device_pending;
        if settled || timed_out {
            return SettleReport {
                empty_controllers: controllers
                    .iter()
                    .filter(|c| c.disks.is_empty())
                    .map(|c| c.id.clone())
                    .collect(),
                controllers,
                disks: sig.0,
                esxi_disks,
                elapsed_ms: elapsed.as_millis() as u64,
                timed_out: timed_out && !settled,
                polls,
            };
        }
        let secs = elapsed.as_secs();
        if secs > last_progress_secs {
            last_progress_secs = secs;
            hooks.progress(&format!(
                "waiting for disks: {} controllers, {} ESXi disks, {secs} s of {}",
                controllers.len(),
                esxi_disks.len(),
                cfg.timeout.as_secs()
            ));
        }
        clock.sleep(cfg.poll);
    }
}

/// `/sys/block/<name>/size` (512-byte sectors), 0 when unreadable or not yet known.
fn disk_sectors(sys_root: &Path, name: &str) -> u64 {
    std::fs::read_to_string(sys_root.join("block").join(name).join("size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `(name, resolved device path)` of every /sys/block entry, sorted by name.
fn block_devices(sys_root: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(sys_root.join("block"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter_map(|n| sysfs::block_device_path(sys_root, &n).map(|p| (n, p)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Bound storage controllers with the disks beneath them, sorted by id.
fn controllers(sys_root: &Path, disks: &[(String, PathBuf)]) -> Vec<Controller> {
    let mut out = Vec::new();
    for f in sysfs::pci_functions(sys_root) {
        if let (true, Some(driver)) = (f.is_mass_storage(), f.driver.clone()) {
            out.push(Controller {
                id: f.address.clone(),
                kind: format!("pci 0x{:06x}", f.class),
                driver,
                disks: Vec::new(),
                path: f.sysfs_path,
            });
        }
    }
    let usb = sys_root.join("bus/usb/devices");
    let mut names: BTreeSet<String> = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(&usb) {
        names.extend(
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    for name in names {
        let dir = usb.join(&name);
        let class = std::fs::read_to_string(dir.join("bInterfaceClass")).unwrap_or_default();
        if class.trim() != "08" {
            continue;
        }
        let (Some(driver), Ok(path)) = (sysfs::driver_of(&dir), std::fs::canonicalize(&dir)) else {
            continue;
        };
        out.push(Controller {
            id: name,
            kind: USB_STORAGE.into(),
            driver,
            disks: Vec::new(),
            path,
        });
    }
    for c in &mut out {
        c.disks = disks
            .iter()
            .filter(|(_, p)| p.starts_with(&c.path))
            .map(|(n, _)| n.clone())
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;
    use crate::machine::sysfs::tests::fake_sys;

    /// A clock whose sleep advances time and runs the scheduled changes that are due.
    struct FakeClock<'a> {
        t: Duration,
        events: Vec<(Duration, Box<dyn FnMut() + 'a>)>,
    }

    impl Clock for FakeClock<'_> {
        fn now(&self) -> Duration {
            self.t
        }
        fn sleep(&mut self, d: Duration) {
            self.t += d;
            let t = self.t;
            for (at, f) in self.events.iter_mut() {
                if *at <= t && *at + d > t {
                    f();
                }
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cfg() -> SettleConfig {
        SettleConfig {
            timeout: Duration::from_secs(30),
            quiet: ms(500),
            poll: ms(50),
            device_grace: Duration::from_secs(8),
        }
    }

    /// Hooks for tests: which disks are ESXi, a scripted coldplug, and the progress lines.
    struct Hooks<'a> {
        esxi: &'a [&'a str],
        loads: u32,
        asked: Vec<String>,
        progress: Vec<String>,
    }

    impl<'a> Hooks<'a> {
        fn esxi(esxi: &'a [&'a str]) -> Hooks<'a> {
            Hooks {
                esxi,
                loads: 0,
                asked: Vec::new(),
                progress: Vec::new(),
            }
        }
    }

    impl SettleHooks for Hooks<'_> {
        fn poll(&mut self) -> bool {
            if self.loads > 0 {
                self.loads -= 1;
                true
            } else {
                false
            }
        }
        fn is_esxi(&mut self, disk: &str) -> bool {
            self.asked.push(disk.to_string());
            self.esxi.contains(&disk)
        }
        fn progress(&mut self, line: &str) {
            self.progress.push(line.to_string());
        }
    }

    fn clock() -> FakeClock<'static> {
        FakeClock {
            t: ms(0),
            events: Vec::new(),
        }
    }

    #[test]
    fn stops_after_quiet_period_once_esxi_is_found() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        let mut hooks = Hooks::esxi(&["sda"]);
        let r = settle(&sys, cfg(), &mut clock(), &mut hooks);
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 500);
        assert_eq!(r.esxi_disks, ["sda"]);
        assert!(r.empty_controllers.is_empty(), "{r:?}");
        let ids: Vec<(&str, &str, Vec<String>)> = r
            .controllers
            .iter()
            .map(|c| (c.id.as_str(), c.driver.as_str(), c.disks.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("0000:00:04.0", "nvme", vec!["nvme0n1".to_string()]),
                ("0000:00:06.0", "virtio-pci", vec!["vda".to_string()]),
                ("0000:00:1f.2", "ahci", vec!["sdb".to_string()]),
                ("0000:03:00.0", "megaraid_sas", vec!["sda".to_string()]),
                ("2-1:1.0", "usb-storage", vec!["sdc".to_string()]),
            ]
        );
        assert_eq!(r.disks, ["loop0", "nvme0n1", "sda", "sdb", "sdc", "vda"]);
        // Each disk is asked once, however many polls.
        let mut asked = hooks.asked.clone();
        asked.dedup();
        assert_eq!(asked.len(), hooks.asked.len(), "{:?}", hooks.asked);
    }

    #[test]
    fn a_disk_behind_a_slow_controller_after_20_s_is_found() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        std::fs::remove_file(sys.join("block/sda")).unwrap();
        let sys2 = sys.clone();
        let mut clock = FakeClock {
            t: ms(0),
            events: vec![(
                ms(20_000),
                Box::new(move || {
                    std::os::unix::fs::symlink(
                        "../devices/pci0000:00/0000:00:01.0/0000:03:00.0/host0/target0:2:0/0:2:0:0/block/sda",
                        sys2.join("block/sda"),
                    )
                    .unwrap()
                }),
            )],
        };
        let mut hooks = Hooks::esxi(&["sda"]);
        let r = settle(&sys, cfg(), &mut clock, &mut hooks);
        assert!(!r.timed_out, "{r:?}");
        assert_eq!(
            r.elapsed_ms, 20_500,
            "the late PERC disk at 20 s + 0.5 s quiet"
        );
        assert_eq!(r.esxi_disks, ["sda"]);
        assert_eq!(
            hooks.progress.len(),
            20,
            "one line a second: {:?}",
            hooks.progress
        );
        assert_eq!(
            hooks.progress[11],
            "waiting for disks: 5 controllers, 0 ESXi disks, 12 s of 30"
        );
    }

    #[test]
    fn an_empty_onboard_ahci_beside_a_found_esxi_disk_costs_no_extra_wait() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        std::fs::remove_file(sys.join("block/sdb")).unwrap();
        let r = settle(&sys, cfg(), &mut clock(), &mut Hooks::esxi(&["sda"]));
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 500);
        assert_eq!(r.empty_controllers, ["0000:00:1f.2"]);
    }

    #[test]
    fn a_usb_stick_still_enumerating_is_waited_for_beside_a_found_esxi_disk() {
        // The rescue stick's usb-storage interface is bound; its disk comes at 2 s.
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        let link = std::fs::read_link(sys.join("block/sdc")).unwrap();
        std::fs::remove_file(sys.join("block/sdc")).unwrap();
        let sys2 = sys.clone();
        let mut clock = FakeClock {
            t: ms(0),
            events: vec![(
                ms(2000),
                Box::new(move || {
                    std::os::unix::fs::symlink(&link, sys2.join("block/sdc")).unwrap()
                }),
            )],
        };
        let r = settle(&sys, cfg(), &mut clock, &mut Hooks::esxi(&["sda"]));
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 2500);
        assert!(r.disks.contains(&"sdc".to_string()));
    }

    #[test]
    fn without_an_esxi_disk_the_wait_runs_to_rescue_wait() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        let c = SettleConfig {
            timeout: Duration::from_secs(3),
            ..cfg()
        };
        let mut hooks = Hooks::esxi(&[]);
        let r = settle(&sys, c, &mut clock(), &mut hooks);
        assert!(r.timed_out);
        assert_eq!(r.elapsed_ms, 3000);
        assert!(r.esxi_disks.is_empty());
        assert_eq!(hooks.progress.len(), 2);
    }

    #[test]
    fn unbound_controllers_do_not_count_and_activity_restarts_quiet() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        // 0000:00:07.0 (mass storage, no driver) has no disk: it must not hold us up.
        let mut hooks = Hooks::esxi(&["sda"]);
        // The coldplug hook loads something on its first 4 calls.
        hooks.loads = 4;
        let r = settle(&sys, cfg(), &mut clock(), &mut hooks);
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 150 + 500);
        assert!(r.controllers.iter().all(|c| c.id != "0000:00:07.0"));
    }

    #[test]
    fn no_controllers_waits_to_the_timeout() {
        let t = TempDir::new("settle");
        t.mkdir("sys/block");
        let c = SettleConfig {
            timeout: Duration::from_secs(2),
            ..cfg()
        };
        let r = settle(
            &t.path().join("sys"),
            c,
            &mut clock(),
            &mut Hooks::esxi(&[]),
        );
        assert_eq!(
            (r.timed_out, r.elapsed_ms, r.controllers.len()),
            (true, 2000, 0)
        );
    }
}
