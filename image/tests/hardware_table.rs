//! docs/hardware.md against the real initramfs: every row's controller resolves through the
//! image's own modules.alias (the matching the agent's coldplug does) to the driver the row names
//! when it says "yes", and to nothing when it says "no".

mod support;

use std::path::Path;
use std::process::Command;

use rescue_agent::modindex::ModuleIndex;
use support::media::{build_initrd, cache, scratch_dir, workspace};

struct Row {
    vendor: String,
    device: String,
    class: String,
    driver: String,
    in_image: bool,
}

fn rows(doc: &str) -> Vec<Row> {
    doc.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| vendor") && !l.starts_with("|---"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let (vendor, device) = cells.first()?.split_once(':')?;
            Some(Row {
                vendor: vendor.to_ascii_uppercase(),
                device: device.to_ascii_uppercase(),
                class: cells.get(1)?.to_ascii_uppercase(),
                driver: cells.get(3)?.to_string(),
                in_image: *cells.get(4)? == "yes",
            })
        })
        .collect()
}

fn unpack(initrd: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc '{}' | cpio -idm --quiet", initrd.display()))
        .current_dir(into)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking the initramfs");
}

#[test]
fn every_row_of_the_hardware_table_matches_the_built_initramfs() {
    let Some(cache) = cache() else {
        eprintln!("skipped: run scripts/fetch-debian.sh first");
        return;
    };
    let dir = scratch_dir("hardware");
    let initrd = dir.join("initrd.img");
    build_initrd(&cache, &initrd);
    let root = dir.join("root");
    unpack(&initrd, &root);
    let version = std::fs::read_to_string(cache.join("kernel-version")).unwrap();
    let modules = root.join("lib/modules").join(version.trim());
    let index = ModuleIndex::load(&modules).unwrap();

    let doc = std::fs::read_to_string(workspace().join("docs/hardware.md")).unwrap();
    let rows = rows(&doc);
    assert!(rows.len() >= 40, "only {} rows parsed", rows.len());
    for r in &rows {
        let (base, sub, prog) = (&r.class[0..2], &r.class[2..4], &r.class[4..6]);
        let modalias = format!(
            "pci:v0000{}d0000{}sv00001028sd00001FFFbc{base}sc{sub}i{prog}",
            r.vendor, r.device
        );
        let found = index.modules_for(&modalias);
        if r.in_image {
            assert!(
                found.iter().any(|m| m == &r.driver),
                "{}:{} should load {} from the image, resolves to {found:?}",
                r.vendor,
                r.device,
                r.driver
            );
            let ko = index.path_of(&r.driver).unwrap();
            assert!(modules.join(ko).is_file(), "{ko} is in the image");
        } else {
            assert!(
                found.is_empty(),
                "{}:{} is marked not in the image but resolves to {found:?}",
                r.vendor,
                r.device
            );
        }
    }
}
