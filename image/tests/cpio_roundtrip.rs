//! The cpio writer's output read back by GNU cpio: names, order, types, modes, bodies.

use rescue_image::archive::{Archive, Node};
use std::process::Command;

fn sample() -> Archive {
    let mut a = Archive::new();
    a.add(
        "init",
        Node::File {
            data: b"#!agent\n".to_vec(),
            perm: 0o755,
        },
    )
    .unwrap();
    a.add(
        "dev/console",
        Node::CharDev {
            major: 5,
            minor: 1,
            perm: 0o600,
        },
    )
    .unwrap();
    a.add(
        "bin/busybox",
        Node::File {
            data: vec![0xAB; 5],
            perm: 0o755,
        },
    )
    .unwrap();
    a.add("bin/sh", Node::Symlink("busybox".into())).unwrap();
    a.add(
        "lib/modules/v/kernel/x.ko",
        Node::File {
            data: vec![7; 1001],
            perm: 0o644,
        },
    )
    .unwrap();
    a.add("tmp", Node::Dir).unwrap();
    a
}

fn cpio(args: &[&str], input: &[u8], cwd: &std::path::Path) -> String {
    use std::io::Write;
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("GNU cpio is needed (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn gnu_cpio_lists_sorted_entries_parents_first() {
    let bytes = sample().write_cpio(Vec::new(), 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = cpio(&["-it", "--quiet"], &bytes, dir.path())
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "dev",
            "dev/console",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/v",
            "lib/modules/v/kernel",
            "lib/modules/v/kernel/x.ko",
            "tmp"
        ]
    );
    let long = cpio(&["-itv", "--quiet"], &bytes, dir.path());
    let line = |name: &str| {
        long.lines()
            .find(|l| l.ends_with(name))
            .unwrap()
            .to_string()
    };
    assert!(
        line(" init").starts_with("-rwxr-xr-x   1 root     root            8 "),
        "{long}"
    );
    assert!(
        line(" dev/console").starts_with("crw-------   1 root     root       5,   1 "),
        "{long}"
    );
    assert!(
        line(" bin/sh -> busybox").starts_with("lrwxrwxrwx"),
        "{long}"
    );
    assert!(
        line(" tmp").starts_with("drwxr-xr-x   2 root     root "),
        "{long}"
    );
    assert!(long.contains("Jan  1  1970"), "{long}");
}

#[test]
fn gnu_cpio_extracts_identical_bodies() {
    let bytes = sample().write_cpio(Vec::new(), 1_700_000_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No device nodes without privileges in every environment: leave dev/console out here.
    cpio(
        &[
            "-id",
            "--quiet",
            "--no-absolute-filenames",
            "--preserve-modification-time",
            "--nonmatching",
            "dev/console",
        ],
        &bytes,
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("init")).unwrap(),
        b"#!agent\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("lib/modules/v/kernel/x.ko")).unwrap(),
        vec![7; 1001]
    );
    assert_eq!(
        std::fs::read_link(dir.path().join("bin/sh"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.path().join("init")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), 1_700_000_000);
}

#[test]
fn inodes_are_sequential_and_the_trailer_closes() {
    let bytes = sample().write_cpio(Vec::new(), 0).unwrap();
    let mut inodes = Vec::new();
    let mut at = 0;
    loop {
        let head = std::str::from_utf8(&bytes[at..at + 110]).unwrap();
        assert_eq!(&head[..6], "070701");
        let field =
            |i: usize| u32::from_str_radix(&head[6 + 8 * i..14 + 8 * i], 16).unwrap() as usize;
        let (ino, uid, gid, size, namesize) = (field(0), field(2), field(3), field(6), field(11));
        assert_eq!((uid, gid), (0, 0));
        let name = std::str::from_utf8(&bytes[at + 110..at + 110 + namesize - 1]).unwrap();
        if name == "TRAILER!!!" {
            break;
        }
        inodes.push(ino);
        at = (at + 110 + namesize).div_ceil(4) * 4;
        at = (at + size).div_ceil(4) * 4;
    }
    assert_eq!(inodes, (1..=12).collect::<Vec<_>>());
    assert_eq!(bytes.len() % 4, 0);
}
