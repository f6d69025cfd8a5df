//! Multipath: on boot from SAN every path to the boot LUN shows up as its own disk. Disks that
//! share a WWN (VPD page 0x83), or a serial where there is no WWN, and that show the same size
//! and the same GPT disk GUID, are one LUN with several paths: probed once, written through one
//! path, every path listed.

use serde::Serialize;

/// What makes two disks the same LUN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathFacts {
    /// `naa.…`/`eui.…` (normalised) or `serial:…`; None when the disk names neither.
    pub lun_key: Option<String>,
    pub size_bytes: u64,
    /// The GPT disk GUID the probe read (None for a disk without a valid GPT).
    pub disk_guid: Option<String>,
}

/// One LUN and the indexes of its paths (in input order; the first is written through).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lun {
    pub key: Option<String>,
    pub paths: Vec<usize>,
}

/// Groups disks into LUNs. A disk without a LUN key or a GPT is a LUN of its own: only disks that
/// agree on key, size and disk GUID are taken for paths of one LUN.
pub fn group(disks: &[PathFacts]) -> Vec<Lun> {
    let mut luns: Vec<(Option<&PathFacts>, Lun)> = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let joinable = d.lun_key.is_some() && d.disk_guid.is_some();
        let existing = joinable
            .then(|| {
                luns.iter_mut()
                    .find(|(facts, _)| facts.is_some_and(|f| f == d))
            })
            .flatten();
        match existing {
            Some((_, lun)) => lun.paths.push(i),
            None => luns.push((
                joinable.then_some(d),
                Lun {
                    key: d.lun_key.clone(),
                    paths: vec![i],
                },
            )),
        }
    }
    luns.into_iter().map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(key: Option<&str>, size: u64, guid: Option<&str>) -> PathFacts {
        PathFacts {
            lun_key: key.map(str::to_string),
            size_bytes: size,
            disk_guid: guid.map(str::to_string),
        }
    }

    #[test]
    fn paths_of_one_lun_group_and_different_disks_do_not() {
        let disks = [
            facts(Some("naa.5000c500aa"), 100, Some("g1")),
            facts(Some("naa.5000c500bb"), 100, Some("g2")),
            facts(Some("naa.5000c500aa"), 100, Some("g1")),
            facts(None, 100, Some("g1")),
            facts(None, 100, Some("g1")),
            // Same WWN but another size or GPT: not trusted as the same LUN.
            facts(Some("naa.5000c500aa"), 200, Some("g1")),
            facts(Some("naa.5000c500aa"), 100, None),
        ];
        let luns = group(&disks);
        let paths: Vec<Vec<usize>> = luns.iter().map(|l| l.paths.clone()).collect();
        assert_eq!(
            paths,
            [vec![0, 2], vec![1], vec![3], vec![4], vec![5], vec![6]]
        );
        assert_eq!(luns[0].key.as_deref(), Some("naa.5000c500aa"));
    }
}
