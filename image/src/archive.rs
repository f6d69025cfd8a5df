//! An in-memory file tree for an initramfs: paths map to nodes, parents are created on demand,
//! and it is written as cpio in sorted path order (so parents precede their children).

use crate::cpio::{CpioWriter, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, perm: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32, perm: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("bad archive path {0:?}: must be relative, without empty, '.' or '..' components")]
    BadPath(String),
    #[error("{0:?} is already in the archive as something else")]
    Conflict(String),
}

#[derive(Debug, Default)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `node` at `path` (e.g. "lib/modules/6.1.0/kernel/x.ko") and any missing parent
    /// directories. Adding an existing directory again is a no-op.
    pub fn add(&mut self, path: &str, node: Node) -> Result<(), ArchiveError> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(ArchiveError::BadPath(path.to_string()));
        }
        for end in 1..parts.len() {
            self.put(parts[..end].join("/"), Node::Dir)?;
        }
        self.put(path.to_string(), node)
    }

    fn put(&mut self, path: String, node: Node) -> Result<(), ArchiveError> {
        match self.nodes.get(&path) {
            Some(existing) if *existing == node && node == Node::Dir => Ok(()),
            Some(_) => Err(ArchiveError::Conflict(path)),
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Writes every node as a newc entry, sorted by path, all with the same mtime.
    pub fn write_cpio<W: Write>(&self, out: W, mtime: u32) -> io::Result<W> {
        let mut cpio = CpioWriter::new(out, mtime);
        for (path, node) in &self.nodes {
            match node {
                Node::Dir => cpio.entry(path, S_IFDIR | 0o755, (0, 0), &[])?,
                Node::File { data, perm } => cpio.entry(path, S_IFREG | perm, (0, 0), data)?,
                Node::Symlink(target) => {
                    cpio.entry(path, S_IFLNK | 0o777, (0, 0), target.as_bytes())?
                }
                Node::CharDev { major, minor, perm } => {
                    cpio.entry(path, S_IFCHR | perm, (*major, *minor), &[])?
                }
            }
        }
        cpio.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut a = Archive::new();
        a.add(
            "lib/modules/v/kernel/a.ko",
            Node::File {
                data: vec![1],
                perm: 0o644,
            },
        )
        .unwrap();
        a.add("lib-x", Node::Dir).unwrap();
        a.add("lib/modules/v", Node::Dir).unwrap();
        let paths: Vec<&str> = a.nodes.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "lib",
                "lib-x",
                "lib/modules",
                "lib/modules/v",
                "lib/modules/v/kernel",
                "lib/modules/v/kernel/a.ko"
            ]
        );
    }

    #[test]
    fn bad_paths_and_conflicts_are_refused() {
        let mut a = Archive::new();
        for bad in ["/init", "a//b", "a/../b", "", "a/"] {
            assert_eq!(
                a.add(bad, Node::Dir),
                Err(ArchiveError::BadPath(bad.into()))
            );
        }
        a.add("bin/sh", Node::Symlink("busybox".into())).unwrap();
        assert_eq!(
            a.add("bin/sh/x", Node::Dir),
            Err(ArchiveError::Conflict("bin/sh".into()))
        );
        assert_eq!(
            a.add("bin", Node::Symlink("usr/bin".into())),
            Err(ArchiveError::Conflict("bin".into()))
        );
    }
}
