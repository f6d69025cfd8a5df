//! Driver coldplug without udev: every device's `modalias` in sysfs → the modules whose aliases
//! match (modules.alias) → loaded with their dependencies first (modules.dep), in passes, because
//! children (virtio devices, USB interfaces, SCSI disks) appear only once their parent's driver
//! is loaded.
//!
//! [`Coldplug::pass`] is one scan; [`coldplug`] repeats it until a pass loads nothing new. The
//! settle loop keeps calling `pass` while it waits, so devices that show up late (USB enumeration,
//! asynchronous SCSI scans) still get their drivers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::machine::nic_modules::is_nic_module;
use crate::modindex::ModuleIndex;

/// Loads one kernel module file.
pub trait ModuleLoader {
    /// `name` is the normalised module name, `path` the module file. Already loaded = `Ok`.
    fn load(&mut self, name: &str, path: &Path) -> Result<(), String>;
}

/// The real loader: `finit_module(2)` on the opened file, no parameters. Compressed modules
/// (`.ko.xz`, `.ko.zst`, `.ko.gz`) are handed to the kernel to decompress.
#[derive(Debug, Default)]
pub struct KernelLoader;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 5.17+), missing from nix.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Whether a module file is compressed (by its name, as kmod decides).
pub fn is_compressed_module(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

impl ModuleLoader for KernelLoader {
    fn load(&mut self, _name: &str, path: &Path) -> Result<(), String> {
        use nix::kmod::{finit_module, ModuleInitFlags};
        let file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
        let flags = if is_compressed_module(path) {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        match finit_module(&file, c"", flags) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One module load attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleLoad {
    pub module: String,
    /// The pass that loaded it (1-based).
    pub pass: u32,
    /// Time spent in the load call.
    pub ms: u64,
    /// `None` = loaded (or was already loaded).
    pub error: Option<String>,
    /// The device modalias that asked for it (dependencies carry their user's).
    pub modalias: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ColdplugReport {
    /// Every load attempt, in order.
    pub loads: Vec<ModuleLoad>,
    /// Passes that found new devices (the scans that found none are not counted).
    pub passes: u32,
    /// Devices with a modalias seen so far.
    pub devices: usize,
    /// Modules an alias asked for that modules.dep does not list (built in, or left out of the
    /// image).
    pub unavailable: Vec<String>,
    /// modules.alias / modules.dep could not be read: nothing was loaded.
    pub index_error: Option<String>,
    pub elapsed_ms: u64,
    /// The deadline ended the passes before they ran dry.
    pub deadline_hit: bool,
}

impl ColdplugReport {
    pub fn failures(&self) -> impl Iterator<Item = &ModuleLoad> {
        self.loads.iter().filter(|l| l.error.is_some())
    }
}

/// Coldplug state across passes: which devices were looked at and which modules tried.
pub struct Coldplug {
    sysfs_root: PathBuf,
    modules_dir: PathBuf,
    index: Option<ModuleIndex>,
    seen_devices: HashSet<PathBuf>,
    attempted: HashSet<String>,
    /// NIC drivers the devices asked for, with the modalias that asked: loaded only by
    /// [`Coldplug::release_nic_drivers`] (a report over the network was asked for).
    held: Vec<(String, String)>,
    release_nics: bool,
    started: Instant,
    pub report: ColdplugReport,
}

impl Coldplug {
    /// Loads the module index of `modules_dir` (`/lib/modules/<release>`); a missing index is
    /// recorded in the report and makes every pass a no-op.
    pub fn new(sysfs_root: &Path, modules_dir: &Path) -> Coldplug {
        let mut report = ColdplugReport::default();
        let index = match ModuleIndex::load(modules_dir) {
            Ok(i) => Some(i),
            Err(e) => {
                report.index_error = Some(e.to_string());
                None
            }
        };
        Coldplug {
            sysfs_root: sysfs_root.to_path_buf(),
            modules_dir: modules_dir.to_path_buf(),
            index,
            seen_devices: HashSet::new(),
            attempted: HashSet::new(),
            held: Vec::new(),
            release_nics: false,
            started: Instant::now(),
            report,
        }
    }

    /// One pass: reads the modalias of every device not seen before, loads what they ask for.
    /// Returns the number of modules attempted (0 = nothing new).
    pub fn pass(&mut self, loader: &mut dyn ModuleLoader) -> usize {
        let Some(index) = self.index.take() else {
            return 0;
        };
        let new = new_modaliases(&self.sysfs_root, &mut self.seen_devices);
        if !new.is_empty() {
            self.report.passes += 1;
        }
        let pass = self.report.passes;
        let mut attempts = 0;
        for (_device, modalias) in new {
            self.report.devices += 1;
            for module in index.modules_for(&modalias) {
                if !self.release_nics && is_nic_module(&module) {
                    if !self.held.iter().any(|(m, _)| *m == module) {
                        self.held.push((module, modalias.clone()));
                    }
                    continue;
                }
                attempts += self.load_with_deps(&index, &module, &modalias, pass, loader);
            }
        }
        self.index = Some(index);
        self.report.elapsed_ms = self.started.elapsed().as_millis() as u64;
        attempts
    }

    /// The NIC drivers held back so far, by name.
    pub fn held_nic_drivers(&self) -> Vec<&str> {
        self.held.iter().map(|(m, _)| m.as_str()).collect()
    }

    /// Loads the NIC drivers the devices asked for (and from now on any later NIC too);
    /// returns the number of load calls made.
    pub fn release_nic_drivers(&mut self, loader: &mut dyn ModuleLoader) -> usize {
        self.release_nics = true;
        let Some(index) = self.index.take() else {
            return 0;
        };
        let pass = self.report.passes;
        let mut attempts = 0;
        for (module, modalias) in std::mem::take(&mut self.held) {
            attempts += self.load_with_deps(&index, &module, &modalias, pass, loader);
        }
        self.index = Some(index);
        attempts
    }

    /// Loads what a non-device alias asks for (e.g. `fs-efivarfs` before mounting efivarfs), once,
    /// recorded like the device loads. Returns the number of modules attempted.
    pub fn load_alias(&mut self, alias: &str, loader: &mut dyn ModuleLoader) -> usize {
        let Some(index) = self.index.take() else {
            return 0;
        };
        let pass = self.report.passes;
        let mut attempts = 0;
        for module in index.modules_for(alias) {
            attempts += self.load_with_deps(&index, &module, alias, pass, loader);
        }
        self.index = Some(index);
        attempts
    }

    /// Loads `module` after its dependencies, skipping what was attempted before; returns the
    /// number of load calls made.
    fn load_with_deps(
        &mut self,
        index: &ModuleIndex,
        module: &str,
        modalias: &str,
        pass: u32,
        loader: &mut dyn ModuleLoader,
    ) -> usize {
        if self.attempted.contains(module) {
            return 0;
        }
        let order = index.load_order(module);
        if order.is_empty() {
            self.attempted.insert(module.to_string());
            self.report.unavailable.push(module.to_string());
            return 0;
        }
        let mut attempts = 0;
        for m in order {
            if !self.attempted.insert(m.clone()) {
                continue;
            }
            let Some(rel) = index.path_of(&m) else {
                self.report.unavailable.push(m);
                continue;
            };
            let path = self.modules_dir.join(rel);
            let t = Instant::now();
            let result = loader.load(&m, &path);
            attempts += 1;
            self.report.loads.push(ModuleLoad {
                module: m,
                pass,
                ms: t.elapsed().as_millis() as u64,
                error: result.err(),
                modalias: modalias.to_string(),
            });
        }
        attempts
    }
}

/// Runs passes until one loads nothing new, or `deadline` passes.
pub fn coldplug(
    sysfs_root: &Path,
    modules_dir: &Path,
    loader: &mut dyn ModuleLoader,
    deadline: Instant,
) -> ColdplugReport {
    let mut c = Coldplug::new(sysfs_root, modules_dir);
    run_passes(&mut c, loader, deadline);
    c.report
}

/// Repeats [`Coldplug::pass`] until a pass attempts nothing or the deadline passes. The first
/// pass always runs: without drivers there is nothing to rescue.
pub fn run_passes(c: &mut Coldplug, loader: &mut dyn ModuleLoader, deadline: Instant) {
    while c.pass(loader) > 0 {
        if Instant::now() >= deadline {
            c.report.deadline_hit = true;
            break;
        }
    }
    c.report.elapsed_ms = c.started.elapsed().as_millis() as u64;
}

/// `(device, modalias)` for every `<sysfs>/bus/*/devices/*` not in `seen` (which is updated), in
/// sorted order. Devices without a (non-empty) modalias are marked seen and skipped.
fn new_modaliases(sysfs_root: &Path, seen: &mut HashSet<PathBuf>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for bus in sorted_entries(&sysfs_root.join("bus")) {
        for dev in sorted_entries(&bus.join("devices")) {
            if seen.contains(&dev) {
                continue;
            }
            seen.insert(dev.clone());
            if let Ok(text) = std::fs::read_to_string(dev.join("modalias")) {
                let alias = text.trim();
                if !alias.is_empty() {
                    out.push((dev, alias.to_string()));
                }
            }
        }
    }
    out
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;
    use std::collections::HashMap;

    const DEP: &str = "\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/scsi/megaraid/megaraid_sas.ko: kernel/drivers/scsi/scsi_mod.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko
kernel/drivers/broken.ko:
kernel/fs/efivarfs/efivarfs.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko:
";
    const ALIAS: &str = "\
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias pci:v00001000d00000060sv*sd*bc*sc*i* megaraid_sas
alias scsi:t-0x00* sd_mod
alias pci:v00008086d00002922sv*sd*bc*sc*i* ahci
alias pci:v0000DEADd*sv*sd*bc*sc*i* broken
alias fs-efivarfs efivarfs
alias virtio:d00000001v* virtio_net
";

    /// A loader that records calls and, like the kernel, makes child devices appear.
    struct FakeKernel {
        sys: PathBuf,
        loaded: Vec<String>,
        children: HashMap<&'static str, Vec<(&'static str, &'static str)>>,
        fail: HashSet<&'static str>,
    }

    impl ModuleLoader for FakeKernel {
        fn load(&mut self, name: &str, path: &Path) -> Result<(), String> {
            assert!(path.starts_with(self.sys.parent().unwrap().join("modules")));
            if self.fail.contains(name) {
                return Err("ENOEXEC: Exec format error".into());
            }
            self.loaded.push(name.to_string());
            for (dev, alias) in self.children.get(name).into_iter().flatten() {
                let d = self.sys.join(dev);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("modalias"), format!("{alias}\n")).unwrap();
            }
            Ok(())
        }
    }

    fn tree() -> (TempDir, PathBuf, PathBuf) {
        let t = TempDir::new("coldplug");
        t.write("modules/modules.dep", DEP);
        t.write("modules/modules.alias", ALIAS);
        t.write(
            "sys/bus/pci/devices/0000:00:04.0/modalias",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        );
        t.write(
            "sys/bus/pci/devices/0000:00:05.0/modalias",
            "pci:v00001000d00000060sv00001000sd00001013bc01sc04i00\n",
        );
        t.write(
            "sys/bus/pci/devices/0000:00:01.0/modalias",
            "pci:v00008086d00007000sv00000000sd00000000bc06sc01i00\n",
        );
        t.write(
            "sys/bus/pci/devices/0000:00:06.0/modalias",
            "pci:v0000DEADd00000001sv00000000sd00000000bc01sc00i00\n",
        );
        t.mkdir("sys/bus/pci/devices/0000:00:00.0"); // no modalias
        t.mkdir("sys/bus/cpu/devices");
        let sys = t.path().join("sys");
        let modules = t.path().join("modules");
        (t, sys, modules)
    }

    fn fake(sys: &Path) -> FakeKernel {
        let mut children = HashMap::new();
        children.insert(
            "virtio_pci",
            vec![("bus/virtio/devices/virtio0", "virtio:d00000002v00001AF4")],
        );
        children.insert(
            "megaraid_sas",
            vec![("bus/scsi/devices/0:2:0:0", "scsi:t-0x00")],
        );
        FakeKernel {
            sys: sys.to_path_buf(),
            loaded: Vec::new(),
            children,
            fail: HashSet::from(["broken"]),
        }
    }

    #[test]
    fn passes_until_nothing_new_dependencies_first() {
        let (_t, sys, modules) = tree();
        let mut k = fake(&sys);
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let r = coldplug(&sys, &modules, &mut k, far);
        // Every module once; each after its dependencies (their order among themselves is the
        // index's business).
        let pos = |m: &str| k.loaded.iter().position(|x| x == m).unwrap();
        let mut sorted = k.loaded.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "megaraid_sas",
                "scsi_common",
                "scsi_mod",
                "sd_mod",
                "virtio",
                "virtio_blk",
                "virtio_pci",
                "virtio_pci_modern_dev",
            ]
        );
        for (dep, user) in [
            ("virtio", "virtio_pci"),
            ("virtio_pci_modern_dev", "virtio_pci"),
            ("scsi_common", "scsi_mod"),
            ("scsi_mod", "megaraid_sas"),
            // PCI functions in address order: virtio (00:04.0) before megaraid (00:05.0)
            ("virtio_pci", "scsi_common"),
            // pass 2: the children those drivers created
            ("megaraid_sas", "sd_mod"),
            ("virtio_pci", "virtio_blk"),
        ] {
            assert!(pos(dep) < pos(user), "{dep} before {user}: {:?}", k.loaded);
        }
        let passes: Vec<(&str, u32)> = r
            .loads
            .iter()
            .map(|l| (l.module.as_str(), l.pass))
            .collect();
        assert!(passes.contains(&("megaraid_sas", 1)));
        assert!(passes.contains(&("virtio_blk", 2)));
        assert!(passes.contains(&("sd_mod", 2)));
        assert_eq!(r.passes, 2, "a third scan found nothing new");
        assert_eq!(r.devices, 6);
        assert!(!r.deadline_hit);
        assert_eq!(r.index_error, None);
        let failed: Vec<_> = r
            .failures()
            .map(|l| (l.module.as_str(), l.error.as_deref()))
            .collect();
        assert_eq!(failed, [("broken", Some("ENOEXEC: Exec format error"))]);
        let sd = r.loads.iter().find(|l| l.module == "sd_mod").unwrap();
        assert_eq!(sd.modalias, "scsi:t-0x00");
    }

    #[test]
    fn nic_drivers_wait_until_released() {
        let (t, sys, modules) = tree();
        t.write(
            "sys/bus/virtio/devices/virtio1/modalias",
            "virtio:d00000001v00001AF4\n",
        );
        let mut k = fake(&sys);
        let mut c = Coldplug::new(&sys, &modules);
        run_passes(
            &mut c,
            &mut k,
            Instant::now() + std::time::Duration::from_secs(60),
        );
        assert!(
            !k.loaded.iter().any(|m| m.contains("net")),
            "{:?}",
            k.loaded
        );
        assert_eq!(c.held_nic_drivers(), ["virtio_net"]);
        assert_eq!(
            c.release_nic_drivers(&mut k),
            2,
            "net_failover, then virtio_net"
        );
        let net = k.loaded.iter().position(|m| m == "virtio_net").unwrap();
        let dep = k.loaded.iter().position(|m| m == "net_failover").unwrap();
        assert!(dep < net);
        assert!(c.held_nic_drivers().is_empty());
        assert_eq!(c.release_nic_drivers(&mut k), 0, "once only");
    }

    #[test]
    fn each_module_is_tried_once_and_missing_ones_reported() {
        let (t, sys, modules) = tree();
        t.write(
            "sys/bus/pci/devices/0000:00:1f.2/modalias",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
        );
        let mut k = fake(&sys);
        let mut c = Coldplug::new(&sys, &modules);
        let far = Instant::now() + std::time::Duration::from_secs(60);
        run_passes(&mut c, &mut k, far);
        // A second virtio device later: virtio_blk is not loaded again.
        t.write(
            "sys/bus/virtio/devices/virtio1/modalias",
            "virtio:d00000002v00001AF4\n",
        );
        assert_eq!(c.pass(&mut k), 0);
        assert_eq!(c.report.unavailable, ["ahci"]);
        let count = |m: &str| k.loaded.iter().filter(|x| *x == m).count();
        assert_eq!(count("virtio"), 1);
        assert_eq!(count("virtio_blk"), 1);
        assert_eq!(count("scsi_mod"), 1);
    }

    #[test]
    fn filesystem_alias() {
        let (_t, sys, modules) = tree();
        let mut k = fake(&sys);
        let mut c = Coldplug::new(&sys, &modules);
        assert_eq!(c.load_alias("fs-efivarfs", &mut k), 1);
        assert_eq!(c.load_alias("fs-efivarfs", &mut k), 0);
        assert_eq!(c.load_alias("fs-nothing", &mut k), 0);
        assert_eq!(k.loaded, ["efivarfs"]);
        assert_eq!(c.report.loads[0].modalias, "fs-efivarfs");
    }

    #[test]
    fn deadline_and_missing_index() {
        let (_t, sys, modules) = tree();
        let mut k = fake(&sys);
        let r = coldplug(&sys, &modules, &mut k, Instant::now());
        assert!(r.deadline_hit);
        assert_eq!(r.passes, 1, "the first pass always runs");
        assert!(k.loaded.contains(&"megaraid_sas".to_string()));
        assert!(!k.loaded.contains(&"sd_mod".to_string()));
        let r = coldplug(
            &sys,
            &sys.join("nope"),
            &mut k,
            Instant::now() + std::time::Duration::from_secs(5),
        );
        assert!(r.index_error.unwrap().contains("modules.alias"));
        assert_eq!(r.passes, 0);
    }

    #[test]
    fn compressed_modules() {
        assert!(is_compressed_module(Path::new("a/sd_mod.ko.xz")));
        assert!(is_compressed_module(Path::new("a/sd_mod.ko.zst")));
        assert!(!is_compressed_module(Path::new("a/sd_mod.ko")));
        // The real loader reports errors as text (no such file here).
        let e = KernelLoader
            .load("x", Path::new("/nonexistent/x.ko"))
            .unwrap_err();
        assert!(e.starts_with("open:"), "{e}");
    }
}
