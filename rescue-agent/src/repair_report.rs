//! The one JSON document of a repair run, whichever front end made it: `rescue-agent plan|repair
//! --json` prints it, PID 1 keeps it in the bootbank beside the undo record (`RSQnnnnn.JSN`) and
//! sends it inside its run report (docs/report.md). Fields a front end has nothing for are empty.

use std::path::Path;

use serde::Serialize;

use crate::apply::Applied;
use crate::machine::sysfs;
use crate::plan::Plan;
use crate::probe::DiskReport;
use crate::report::SCHEMA_VERSION;
use crate::select::Candidate;

#[derive(Serialize)]
pub struct RepairReport<'a> {
    pub schema_version: u32,
    pub tool: String,
    /// `cli` or `pid1`.
    pub front_end: &'static str,
    /// How the run was asked for: the command line (CLI) or the kernel arguments without the
    /// token (PID 1).
    pub args: serde_json::Value,
    /// Every disk looked at when the ESXi disk was found among them (empty when named).
    pub disks: Vec<DiskLine>,
    /// Mass-storage controllers no driver bound: disks behind them were not seen (PID 1).
    pub unbound_controllers: &'a [String],
    pub esxi_disk: Option<String>,
    /// Every path to the ESXi LUN (one unless boot from SAN / multipath); the first was used.
    pub esxi_paths: Vec<String>,
    pub before: Option<&'a DiskReport>,
    pub plan: Option<&'a Plan>,
    pub applied: Option<&'a Applied>,
    /// The firmware entry set for the next boot (PID 1 on UEFI).
    pub boot_next: Option<String>,
    pub verdict: String,
}

impl<'a> RepairReport<'a> {
    /// A report of `front_end` with nothing found yet.
    pub fn new(front_end: &'static str, args: serde_json::Value) -> RepairReport<'a> {
        RepairReport {
            schema_version: SCHEMA_VERSION,
            tool: format!("rescue-agent {}", env!("CARGO_PKG_VERSION")),
            front_end,
            args,
            disks: Vec::new(),
            unbound_controllers: &[],
            esxi_disk: None,
            esxi_paths: Vec::new(),
            before: None,
            plan: None,
            applied: None,
            boot_next: None,
            verdict: String::new(),
        }
    }
}

/// One disk of the machine as the report lists it.
#[derive(Clone, Serialize)]
pub struct DiskLine {
    pub path: String,
    pub pci: Option<String>,
    pub driver: Option<String>,
    pub serial: Option<String>,
    pub size_bytes: u64,
    pub esxi: Option<String>,
    pub note: Option<String>,
}

impl DiskLine {
    /// The line of a selection candidate; the driver comes from `sys` (/sys).
    pub fn of(d: &Candidate, sys: &Path) -> DiskLine {
        let report = d.probe.as_ref().map(|p| &p.report);
        DiskLine {
            path: d.path.display().to_string(),
            pci: d.identity.as_ref().and_then(|i| i.pci.clone()),
            driver: d
                .identity
                .as_ref()
                .and_then(|i| i.pci.as_ref())
                .and_then(|a| sysfs::pci_function(sys, a))
                .and_then(|f| f.driver),
            serial: d.identity.as_ref().and_then(|i| i.serial.clone()),
            size_bytes: report.map_or(0, |r| r.size_bytes),
            esxi: report.and_then(|r| r.esxi.as_ref()).map(|e| e.label()),
            note: d.error.clone().or_else(|| {
                report
                    .and_then(|r| r.not_esxi.clone())
                    .map(|n| format!("not ESXi ({n})"))
            }),
        }
    }
}
