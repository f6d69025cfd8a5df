//! A newc ("070701") cpio writer, the format the kernel unpacks as an initramfs.
//!
//! Entries go out in the order given; uid/gid are 0, inodes are numbered 1, 2, 3... and every
//! name and body is padded to 4 bytes. `write_all` turns a short write into an error.

use std::io::{self, Write};

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Writes newc entries to `out`, then the `TRAILER!!!` entry on `finish`.
pub struct CpioWriter<W: Write> {
    out: W,
    mtime: u32,
    next_ino: u32,
    offset: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W, mtime: u32) -> Self {
        CpioWriter {
            out,
            mtime,
            next_ino: 1,
            offset: 0,
        }
    }

    /// One entry: `mode` includes the file type bits; `rdev` is (major, minor) for devices;
    /// `data` is the file body or the symlink target.
    pub fn entry(
        &mut self,
        path: &str,
        mode: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        self.record(path, [ino, mode, 0, 0, nlink, self.mtime], rdev, data)
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.record("TRAILER!!!", [0, 0, 0, 0, 1, 0], (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// `head` = ino, mode, uid, gid, nlink, mtime.
    fn record(
        &mut self,
        name: &str,
        head: [u32; 6],
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let too_big = |what| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: {what} too large for cpio"),
            )
        };
        let size = u32::try_from(data.len()).map_err(|_| too_big("body"))?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("name"))?;
        let mut header = String::from("070701");
        for field in head
            .into_iter()
            .chain([size, 0, 0, rdev.0, rdev.1, namesize, 0])
        {
            header.push_str(&format!("{field:08X}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let fill = (4 - self.offset % 4) % 4;
        self.put(&[0u8; 3][..fill as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_padding() {
        let mut w = CpioWriter::new(Vec::new(), 0x1234);
        w.entry("init", S_IFREG | 0o755, (0, 0), b"hello").unwrap();
        let out = w.finish().unwrap();
        let head = std::str::from_utf8(&out[..110]).unwrap();
        let fields = [
            "00000001", "000081ED", "00000000", "00000000", "00000001", "00001234", "00000005",
            "00000000", "00000000", "00000000", "00000000", "00000005", "00000000",
        ];
        assert_eq!(head, format!("070701{}", fields.concat()));
        // header 110 + "init\0" 5 = 115 → pad to 116; body 5 → pad to 124.
        assert_eq!(&out[110..116], b"init\0\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[121..124], &[0, 0, 0]);
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn short_writes_are_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = CpioWriter::new(Full, 0);
        let err = w.entry("x", S_IFREG | 0o644, (0, 0), b"y").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }
}
