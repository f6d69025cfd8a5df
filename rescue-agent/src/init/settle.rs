//! Waiting for disks without udev: poll /sys/block until every storage controller that got a
//! driver has a disk beneath it and nothing has changed for a quiet period, bounded by
//! `rescue.wait`.
//!
//! Storage controllers: PCI functions of class 0x01xxxx and USB mass-storage interfaces
//! (bInterfaceClass 08), counted once bound (their `driver` link exists). A disk belongs to a
//! controller when its resolved `/sys/block/X/device` path lies under the controller's path.
//!
//! An empty controller (an onboard AHCI with nothing attached, common on servers) never shows a
//! disk: once it has been bound for `empty_grace` without one, it stops holding the wait up
//! (AHCI link-up and SCSI scans take well under that) and is reported as empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sysfs;

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
    /// A bound controller with no disk for this long counts as empty.
    pub empty_grace: Duration,
}

impl SettleConfig {
    pub fn with_timeout(timeout: Duration) -> SettleConfig {
        SettleConfig {
            timeout,
            quiet: Duration::from_millis(500),
            poll: Duration::from_millis(50),
            empty_grace: Duration::from_secs(8),
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
    pub elapsed_ms: u64,
    /// Stopped by the timeout rather than by being settled.
    pub timed_out: bool,
    pub polls: u32,
}

/// Polls until settled or `cfg.timeout`. `on_poll` runs before every look (the boot sequence
/// runs a coldplug pass there) and returns whether it changed something, which restarts the
/// quiet period.
pub fn settle(
    sys_root: &Path,
    cfg: SettleConfig,
    clock: &mut dyn Clock,
    on_poll: &mut dyn FnMut() -> bool,
) -> SettleReport {
    let start = clock.now();
    let mut last_sig: Option<(Vec<String>, Vec<String>)> = None;
    let mut last_change = start;
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut polls = 0;
    loop {
        polls += 1;
        let acted = on_poll();
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
        for c in &controllers {
            first_seen.entry(c.id.clone()).or_insert(now);
        }
        let all_have_disks = controllers.iter().all(|c| {
            !c.disks.is_empty() || now.saturating_sub(first_seen[&c.id]) >= cfg.empty_grace
        });
        let quiet = now.saturating_sub(last_change) >= cfg.quiet;
        let timed_out = now.saturating_sub(start) >= cfg.timeout;
        if (all_have_disks && quiet) || timed_out {
            return SettleReport {
                empty_controllers: controllers
                    .iter()
                    .filter(|c| c.disks.is_empty())
                    .map(|c| c.id.clone())
                    .collect(),
                controllers,
                disks: sig.0,
                elapsed_ms: now.saturating_sub(start).as_millis() as u64,
                timed_out: timed_out && !(all_have_disks && quiet),
                polls,
            };
        }
        clock.sleep(cfg.poll);
    }
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
            kind: "usb-storage".into(),
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
    use crate::init::sysfs::tests::fake_sys;
    use crate::init::testutil::TempDir;

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
            empty_grace: Duration::from_secs(8),
        }
    }

    #[test]
    fn stops_after_quiet_period_when_every_controller_has_a_disk() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        let mut clock = FakeClock {
            t: ms(0),
            events: Vec::new(),
        };
        let r = settle(&sys, cfg(), &mut clock, &mut || false);
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 500);
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
    }

    #[test]
    fn waits_for_a_late_disk_then_quiet() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        std::fs::remove_file(sys.join("block/sda")).unwrap();
        let sys2 = sys.clone();
        let mut clock = FakeClock {
            t: ms(0),
            events: vec![(
                ms(1200),
                Box::new(move || {
                    std::os::unix::fs::symlink(
                        "../devices/pci0000:00/0000:00:01.0/0000:03:00.0/host0/target0:2:0/0:2:0:0/block/sda",
                        sys2.join("block/sda"),
                    )
                    .unwrap()
                }),
            )],
        };
        let r = settle(&sys, cfg(), &mut clock, &mut || false);
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 1700, "disk at 1.2 s + 0.5 s quiet");
        assert!(r.empty_controllers.is_empty());
    }

    #[test]
    fn an_empty_controller_costs_the_grace_and_is_reported() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        std::fs::remove_file(sys.join("block/sdb")).unwrap();
        let mut clock = FakeClock {
            t: ms(0),
            events: Vec::new(),
        };
        let c = SettleConfig {
            empty_grace: Duration::from_secs(2),
            ..cfg()
        };
        let r = settle(&sys, c, &mut clock, &mut || false);
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 2000, "the grace, not the 30 s timeout");
        assert_eq!(r.empty_controllers, ["0000:00:1f.2"]);
    }

    #[test]
    fn an_empty_controller_within_a_short_wait_times_out() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        std::fs::remove_file(sys.join("block/sdb")).unwrap();
        let mut clock = FakeClock {
            t: ms(0),
            events: Vec::new(),
        };
        let c = SettleConfig {
            timeout: Duration::from_secs(3),
            ..cfg()
        };
        let r = settle(&sys, c, &mut clock, &mut || false);
        assert!(r.timed_out);
        assert_eq!(r.elapsed_ms, 3000);
        assert_eq!(r.empty_controllers, ["0000:00:1f.2"]);
    }

    #[test]
    fn unbound_controllers_do_not_count_and_activity_restarts_quiet() {
        let t = TempDir::new("settle");
        let sys = fake_sys(&t);
        // 0000:00:07.0 (mass storage, no driver) has no disk: it must not hold us up.
        let mut clock = FakeClock {
            t: ms(0),
            events: Vec::new(),
        };
        let mut calls = 0;
        // The coldplug hook loads something on its first 4 calls.
        let r = settle(&sys, cfg(), &mut clock, &mut || {
            calls += 1;
            calls <= 4
        });
        assert!(!r.timed_out);
        assert_eq!(r.elapsed_ms, 150 + 500);
        assert!(r.controllers.iter().all(|c| c.id != "0000:00:07.0"));
    }

    #[test]
    fn no_controllers_settles_on_quiet() {
        let t = TempDir::new("settle");
        t.mkdir("sys/block");
        let mut clock = FakeClock {
            t: ms(0),
            events: Vec::new(),
        };
        let r = settle(&t.path().join("sys"), cfg(), &mut clock, &mut || false);
        assert_eq!(
            (r.timed_out, r.elapsed_ms, r.controllers.len()),
            (false, 500, 0)
        );
    }
}
