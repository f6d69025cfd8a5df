//! Which disk a run acts on, for both front ends: every whole disk of the machine, narrowed by
//! the user's disk name (`--disk` / `rescue.disk=`), identified without opening any
//! configuration, and the ESXi ones grouped into LUNs (the paths of a multipath boot LUN are one
//! disk). The front ends word the refusals their own way.

use std::path::{Path, PathBuf};

use crate::layout;
use crate::machine::sysfs::{self, DiskIdentity};
use crate::multipath;
use crate::probe::{self, Probe};
use crate::sysblock;

/// One whole disk of the machine.
pub struct Candidate {
    pub path: PathBuf,
    pub identity: Option<DiskIdentity>,
    /// The identification probe (GPT and layout, boot.cfg; no configuration opened).
    pub probe: Option<Probe>,
    /// Why it could not be identified.
    pub error: Option<String>,
}

impl Candidate {
    pub fn is_esxi(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| p.report.esxi.is_some())
    }

    /// Holds a VMFS partition (a datastore of the install, on another disk maybe).
    pub fn has_vmfs(&self) -> bool {
        self.probe
            .as_ref()
            .and_then(|p| p.gpt.as_ref())
            .and_then(|g| g.source())
            .is_some_and(|c| c.array.used().any(|(_, e)| e.type_guid() == layout::VMFS))
    }

    fn path_facts(&self) -> multipath::PathFacts {
        multipath::PathFacts {
            lun_key: self.identity.as_ref().and_then(|i| i.lun_key()),
            size_bytes: self.probe.as_ref().map_or(0, |p| p.report.size_bytes),
            disk_guid: self
                .probe
                .as_ref()
                .and_then(|p| p.gpt.as_ref())
                .and_then(|g| g.source())
                .map(|c| c.header.disk_guid().to_string()),
        }
    }
}

/// The user's disk name matched nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct NoSuchDisk;

/// Every whole disk under `sys`, kept to those `disk` names (serial, WWN, by-path, /dev path),
/// each identified.
pub fn candidates(sys: &Path, disk: Option<&str>) -> Result<Vec<Candidate>, NoSuchDisk> {
    let mut all: Vec<Candidate> = sysblock::whole_disks()
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Candidate {
                identity: sysfs::disk_identity(sys, &name),
                path,
                probe: None,
                error: None,
            }
        })
        .collect();
    if let Some(spec) = disk {
        all.retain(|c| {
            c.identity.as_ref().is_some_and(|i| i.matches(spec)) || c.path.to_string_lossy() == spec
        });
        if all.is_empty() {
            return Err(NoSuchDisk);
        }
    }
    for c in all.iter_mut() {
        match probe::identify_path(&c.path) {
            Ok(p) => c.probe = Some(p),
            Err(e) => c.error = Some(format!("{e:#}")),
        }
    }
    Ok(all)
}

/// What the ESXi disks among the candidates come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// One ESXi disk: act through `target`, the first of its `paths` (one unless multipath).
    One {
        target: PathBuf,
        paths: Vec<PathBuf>,
        lun_key: Option<String>,
    },
    None,
    /// Several ESXi disks, each named by its first path: the user must name one.
    Many(Vec<PathBuf>),
}

pub fn choose(candidates: &[Candidate]) -> Choice {
    let esxi: Vec<&Candidate> = candidates.iter().filter(|c| c.is_esxi()).collect();
    let luns = multipath::group(&esxi.iter().map(|c| c.path_facts()).collect::<Vec<_>>());
    match luns.as_slice() {
        [] => Choice::None,
        [lun] => {
            let paths: Vec<PathBuf> = lun.paths.iter().map(|&i| esxi[i].path.clone()).collect();
            Choice::One {
                target: paths[0].clone(),
                paths,
                lun_key: lun.key.clone(),
            }
        }
        many => Choice::Many(many.iter().map(|l| esxi[l.paths[0]].path.clone()).collect()),
    }
}

/// Display form of a path list: "a, b, c".
pub fn joined(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
