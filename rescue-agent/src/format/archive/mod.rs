//! Byte-exact editing of ESXi `state.tgz` / `local.tgz` archives.
//!
//! ESXi keeps its configuration in `state.tgz` (gzip of a tar holding one member,
//! `local.tgz`), which is itself a gzip of a tar of `/etc` files.  To change one file
//! (e.g. `etc/vmware/esx.conf`) we must leave every other member byte-identical and
//! keep the gzip header verbatim, so this module never re-creates an archive: it
//! splices raw bytes.
//!
//! * [`gunzip`] inflates a single-member gzip with hard limits, verifying CRC32 and
//!   ISIZE and refusing trailing garbage.
//! * [`list`] walks every tar header itself (checksum, magic, numeric fields, sizes,
//!   names, types) and refuses size/checksum fields and end blocks that other tar
//!   readers would read differently. This walk is the only tar parser in production;
//!   the unit tests re-read every archive they use with the `tar` crate to check that
//!   the two agree.
//! * [`replace_member`] rewrites only the size and checksum fields of one header
//!   (keeping their original formatting) plus that member's data and padding.
//! * [`regzip_like`] writes the original gzip header verbatim, a raw deflate stream,
//!   then CRC32 and ISIZE.
//!
//! Nothing here trusts declared sizes or names: `..` components, absolute paths,
//! links, devices, directories, sparse files and ambiguous extension headers are
//! refused with a specific [`ArchiveError`].
//!
//! Layout: gzip framing lives in `gzip.rs`, the strict tar walk and member reads in
//! `tar.rs`, the byte-exact edit in `splice.rs`; this file holds the shared types.

mod gzip;
mod splice;
mod tar;

#[cfg(test)]
mod cross_check;
#[cfg(test)]
mod test_util;

pub use self::gzip::GzipFrame;
pub use self::gzip::{gunzip, regzip_like};
pub use self::splice::{
    rebuild_around, replace_in_tgz, replace_member, replace_member_in_place,
    replace_members_in_tgz, OuterFrame,
};
pub use self::tar::{list, read_member, take_member};

/// Size of a tar block.
const BLOCK: usize = 512;

/// Resource bounds applied to every archive operation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest gzip input accepted (and largest gzip output produced by [`replace_in_tgz`]).
    pub max_compressed: u64,
    /// Largest tar (decompressed) size accepted or produced.
    pub max_uncompressed: u64,
    /// Largest single member (declared size or new content).
    pub max_member: u64,
    /// Largest number of members in one tar.
    pub max_members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Sized to what ESXi writes (state.tgz of KiB to a few MiB; the benchmarks' 64 MiB
        // stress case fits) and to an initramfs machine: the layers of one state.tgz — outer
        // tar, local.tgz, inner tar, esx.conf — stay within a few hundred MiB together.
        Limits {
            max_compressed: 96 << 20,
            max_uncompressed: 128 << 20,
            max_member: 96 << 20,
            max_members: 100_000,
        }
    }
}

/// Every refusal of this module; each message says what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Bad gzip framing: header, truncated or corrupt deflate data, CRC32/ISIZE
    /// mismatch, trailing garbage, multi-member stream.
    #[error("gzip: {0}")]
    Gzip(String),
    /// A size or count exceeds a [`Limits`] bound.
    #[error("{what} exceeds the limit ({limit})")]
    TooLarge { what: String, limit: u64 },
    /// A member name has a `..` component.
    #[error("tar member {name:?} has a '..' path component")]
    Traversal { name: String },
    /// A member name is absolute.
    #[error("tar member {name:?} has an absolute path")]
    AbsolutePath { name: String },
    /// A member is not a regular file (symlink, hardlink, device, fifo, directory, sparse, ...).
    #[error("tar member {name:?} is a {kind}; only regular files are allowed")]
    NotRegular { name: String, kind: &'static str },
    /// The member to edit carries a PAX `x` / GNU `L`/`K` extension header, or the
    /// archive has a global PAX `g` header.
    #[error(
        "tar member {name:?} to be edited has a PAX/GNU extension header \
         (or the archive has a global PAX header); refusing to edit it"
    )]
    PaxOnEdited { name: String },
    /// The requested member name appears more than once.
    #[error("tar member {name:?} appears more than once")]
    Duplicate { name: String },
    /// The requested member is not in the archive.
    #[error("tar member {name:?} not found")]
    MemberMissing { name: String },
    /// Bad tar structure: checksum, truncated header or data, garbage, bad fields.
    #[error("tar: {0}")]
    Tar(String),
}

/// One regular-file member of a tar, as validated by [`list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Effective name (GNU long name or PAX path if present), exactly as stored.
    pub name: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Offset of the member's own header (after any extension headers).
    pub header_offset: u64,
    /// Offset of the member's data.
    pub data_offset: u64,
}

type Result<T> = std::result::Result<T, ArchiveError>;

/// A re-compressed layer, refused when it is past [`Limits::max_compressed`] (`what` names it).
pub fn within_compressed_limit(out: Vec<u8>, what: &str, limits: &Limits) -> Result<Vec<u8>> {
    if out.len() as u64 > limits.max_compressed {
        return Err(ArchiveError::TooLarge {
            what: format!("re-compressed {what} ({} bytes)", out.len()),
            limit: limits.max_compressed,
        });
    }
    Ok(out)
}

fn tar_err(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Tar(msg.into())
}

fn gz_err(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Gzip(msg.into())
}

#[cfg(test)]
mod tests {
    //! Property test over every entry point at once (gzip, walk, read, splice).

    use super::*;
    use crate::archive::test_util::{
        entry, finish, gz, pax_record, read_from_tgz, sample_tar, ESX_CONF,
    };
    use crate::archive::test_util::{list, read_member, replace_in_tgz, replace_member};

    /// Tiny deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(7) {
                0 | 1 => {
                    let i = rng.below(v.len());
                    if let Some(b) = v.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    let i = rng.below(v.len());
                    if let Some(b) = v.get_mut(i) {
                        *b = rng.next() as u8;
                    }
                }
                3 => v.truncate(rng.below(v.len() + 1)),
                4 => {
                    let i = rng.below(v.len() + 1);
                    let extra: Vec<u8> = (0..rng.below(600)).map(|_| rng.next() as u8).collect();
                    v.splice(i..i, extra);
                }
                5 => {
                    // write a plausible octal number into a header numeric field
                    let base = rng.below(v.len() / 512 + 1) * 512;
                    let (off, len) = [(124, 12), (148, 8), (100, 8), (136, 12)][rng.below(4)];
                    let s = format!("{:011o}", rng.next() >> rng.below(64));
                    for (k, c) in s.bytes().take(len).enumerate() {
                        if let Some(b) = v.get_mut(base + off + k) {
                            *b = c;
                        }
                    }
                }
                _ => {
                    let i = rng.below(v.len());
                    let j = rng.below(v.len());
                    if i < v.len() && j < v.len() {
                        v.swap(i, j);
                    }
                }
            }
        }
        v
    }

    #[test]
    fn random_mutations_never_panic() {
        let lim = Limits {
            max_compressed: 1 << 20,
            max_uncompressed: 4 << 20,
            max_member: 1 << 20,
            max_members: 1000,
        };
        let tar = {
            let pax = entry(
                "././@PaxHeader",
                b'x',
                pax_record("path", "etc/long").as_bytes(),
            );
            let long = entry("././@LongLink", b'L', b"etc/longer/name\0");
            let mut t = sample_tar();
            t.truncate(t.len() - 1024);
            finish(
                [
                    t,
                    pax,
                    entry("p", b'0', b"pp"),
                    long,
                    entry("q", b'0', b"qq"),
                ]
                .concat(),
            )
        };
        assert_eq!(list(&tar, &lim).unwrap().len(), 7);
        let tgz = gz(&tar);
        // ARCHIVE_FUZZ_SEED / ARCHIVE_FUZZ_ITERS allow longer local runs.
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let mut rng = Rng(env("ARCHIVE_FUZZ_SEED").unwrap_or(0x9E37_79B9_7F4A_7C15) | 1);
        let mut outcomes = [0usize; 2];
        for i in 0..env("ARCHIVE_FUZZ_ITERS").unwrap_or(2000) as usize {
            let t = mutate(&mut rng, &tar);
            let g = mutate(&mut rng, &tgz);
            let name = [ESX_CONF, "etc/hosts", "etc/long", "q", ""][i % 5];
            let content = vec![b'c'; rng.below(1500)];
            let r = [
                list(&t, &lim).map(|_| ()),
                read_member(&t, name, &lim).map(|_| ()),
                replace_member(&t, name, &content, &lim).map(|_| ()),
                gunzip(&g, &lim).map(|_| ()),
                regzip_like(&g, &t).map(|_| ()),
                read_from_tgz(&g, name, &lim).map(|_| ()),
                replace_in_tgz(&g, name, &content, &lim).map(|_| ()),
            ];
            for x in r {
                outcomes[usize::from(x.is_ok())] += 1;
                if let Err(e) = x {
                    assert!(!e.to_string().is_empty());
                }
            }
            // anything we produce must itself parse
            if let Ok(out) = replace_member(&t, name, &content, &lim) {
                assert_eq!(read_member(&out, name, &lim).unwrap(), content);
            }
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }
}
