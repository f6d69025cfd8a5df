//! Deterministic initramfs compression: xz through the `xz` command (single-threaded, CRC32 as
//! the kernel's decompressor wants) or gzip through flate2 (mtime 0).

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Gzip,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
        }
    }
}

pub fn compress(data: &[u8], how: Compression) -> Result<Vec<u8>> {
    match how {
        Compression::Xz => xz(data),
        Compression::Gzip => gzip(data),
    }
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data).context("gzip")?;
    enc.finish().context("gzip")
}

fn xz(data: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new("xz")
        .args([
            "--format=xz",
            "--check=crc32",
            "-9e",
            "-T1",
            "--stdout",
            "--quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running xz (install xz-utils)")?;
    let mut stdin = child.stdin.take().context("xz stdin")?;
    let mut stdout = child.stdout.take().context("xz stdout")?;
    // Feed and drain at once: xz blocks on a full pipe otherwise.
    let out = std::thread::scope(|s| {
        let feeder = s.spawn(move || stdin.write_all(data));
        let mut out = Vec::new();
        let read = stdout.read_to_end(&mut out);
        let fed = feeder
            .join()
            .map_err(|_| anyhow::anyhow!("xz feeder panicked"))?;
        fed.context("writing to xz")?;
        read.context("reading from xz")?;
        anyhow::Ok(out)
    })?;
    let status = child.wait().context("waiting for xz")?;
    if !status.success() {
        bail!("xz failed: {status}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_deterministic_and_valid() {
        let data = b"initramfs ".repeat(1000);
        let a = compress(&data, Compression::Gzip).unwrap();
        assert_eq!(a, compress(&data, Compression::Gzip).unwrap());
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime must be 0");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn xz_uses_crc32() {
        if Command::new("xz").arg("--version").output().is_err() {
            eprintln!("skipped: no xz");
            return;
        }
        let data = b"initramfs ".repeat(1000);
        let a = compress(&data, Compression::Xz).unwrap();
        assert_eq!(&a[..6], b"\xFD7zXZ\0");
        // Stream flags: check type 1 = CRC32.
        assert_eq!(a[7], 0x01);
        assert_eq!(a, compress(&data, Compression::Xz).unwrap());
    }
}
