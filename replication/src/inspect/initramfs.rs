//! Looks inside an initramfs for kernel modules, streaming: a sequence of cpio (newc) archives,
//! uncompressed (the early-microcode prefix) and then usually one compressed with gzip, xz or
//! zstd. Nothing is held whole: entries are skipped through a sink, decompressed bytes are
//! counted against a cap, the xz and zstd decoders get memory limits.

use std::collections::BTreeSet;
use std::io::{self, Read};

use super::limits::Limits;

/// What was found inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitramfsScan {
    /// Wanted modules present (names normalized: '-' becomes '_').
    pub modules: BTreeSet<String>,
    /// Compression of each segment, in order ("cpio", "gzip", "xz", "zstd").
    pub segments: Vec<&'static str>,
    pub entries: u64,
    /// Decompressed bytes scanned.
    pub bytes: u64,
}

/// A module name as the kernel knows it: `xen-blkfront.ko.xz` -> `xen_blkfront`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name
        .strip_suffix(".xz")
        .or_else(|| file_name.strip_suffix(".zst"))
        .or_else(|| file_name.strip_suffix(".gz"))
        .unwrap_or(file_name);
    let stem = stem.strip_suffix(".ko")?;
    Some(stem.replace('-', "_"))
}

/// A reader that can look ahead.
struct Peek<R> {
    inner: R,
    ahead: Vec<u8>,
}

impl<R: Read> Peek<R> {
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.ahead.len() < n {
            let mut buf = [0u8; 512];
            let want = (n - self.ahead.len()).min(buf.len());
            let got = self.inner.read(&mut buf[..want])?;
            if got == 0 {
                break;
            }
            self.ahead.extend_from_slice(&buf[..got]);
        }
        Ok(&self.ahead[..self.ahead.len().min(n)])
    }

    /// Skips NUL padding; false at the end of the input.
    fn skip_zeros(&mut self) -> io::Result<bool> {
        loop {
            let head = self.peek(512)?;
            if head.is_empty() {
                return Ok(false);
            }
            let zeros = head.iter().take_while(|&&b| b == 0).count();
            if zeros < head.len() {
                self.ahead.drain(..zeros);
                return Ok(true);
            }
            self.ahead.clear();
        }
    }
}

impl<R: Read> Read for Peek<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.ahead.is_empty() {
            let n = buf.len().min(self.ahead.len());
            buf[..n].copy_from_slice(&self.ahead[..n]);
            self.ahead.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// Counts decompressed bytes and fails past the cap.
struct Counted<R> {
    inner: R,
    count: u64,
    max: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.max {
            return Err(io::Error::new(
                io::ErrorKind::QuotaExceeded,
                format!("initramfs larger than {} MiB uncompressed", self.max >> 20),
            ));
        }
        Ok(n)
    }
}

struct Scanner<'a> {
    wanted: &'a [&'a str],
    limits: &'a Limits,
    scan: InitramfsScan,
}

impl Scanner<'_> {
    fn done(&self) -> bool {
        self.wanted.iter().all(|w| self.scan.modules.contains(*w))
    }

    /// Parses consecutive cpio archives until the input ends or holds something else.
    /// Returns the input back for the caller to continue with.
    fn archives<R: Read>(&mut self, r: &mut Peek<R>) -> Result<(), String> {
        loop {
            if !r.skip_zeros().map_err(|e| e.to_string())? || self.done() {
                return Ok(());
            }
            let magic = r.peek(6).map_err(|e| e.to_string())?;
            if magic != b"070701" && magic != b"070702" {
                return Ok(());
            }
            self.archive(r)?;
        }
    }

    /// One cpio newc archive, up to and including its TRAILER!!! entry.
    fn archive<R: Read>(&mut self, r: &mut Peek<R>) -> Result<(), String> {
        loop {
            if self.done() {
                return Ok(());
            }
            let mut h = [0u8; 110];
            r.read_exact(&mut h)
                .map_err(|e| format!("cpio header unreadable: {e}"))?;
            if &h[..6] != b"070701" && &h[..6] != b"070702" {
                return Err("cpio header with a bad magic".into());
            }
            let field = |i: usize| -> Result<u64, String> {
                let s = std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
                    .map_err(|_| "cpio header not hex")?;
                u64::from_str_radix(s, 16).map_err(|_| "cpio header not hex".to_string())
            };
            let size = field(6)?;
            let name_size = field(11)? as usize;
            if name_size == 0 || name_size > 4096 {
                return Err(format!("cpio entry name of {name_size} bytes"));
            }
            self.scan.entries += 1;
            if self.scan.entries > self.limits.max_cpio_entries {
                return Err(format!(
                    "more than {} cpio entries",
                    self.limits.max_cpio_entries
                ));
            }
            let mut name = vec![0u8; name_size];
            r.read_exact(&mut name)
                .map_err(|e| format!("cpio entry name unreadable: {e}"))?;
            let name = String::from_utf8_lossy(&name[..name_size - 1]).into_owned();
            skip(r, pad4(110 + name_size as u64))?;
            if name == "TRAILER!!!" {
                return Ok(());
            }
            if name.contains("modules/")
                && let Some(m) = name.rsplit('/').next().and_then(module_name)
                && self.wanted.contains(&m.as_str())
            {
                self.scan.modules.insert(m);
            }
            skip(r, size + pad4(size))?;
        }
    }

    fn compressed<R: Read>(&mut self, r: &mut Peek<R>, kind: &'static str) -> Result<(), String> {
        self.scan.segments.push(kind);
        let max = self
            .limits
            .max_initramfs_bytes
            .saturating_sub(self.scan.bytes);
        let result = match kind {
            "gzip" => self.decoded(flate2::read::MultiGzDecoder::new(&mut *r), max),
            "xz" => {
                // 32 MiB covers the xz presets up to -8 (initramfs tools use -6 or
                // less); a header asking for more is refused before any allocation.
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    32 << 20,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(|e| format!("xz decoder: {e}"))?;
                self.decoded(liblzma::read::XzDecoder::new_stream(&mut *r, stream), max)
            }
            "zstd" => {
                let mut total = Ok(());
                while total.is_ok() && !self.done() {
                    let head = r.peek(4).map_err(|e| e.to_string())?;
                    if head != [0x28, 0xB5, 0x2F, 0xFD] {
                        break;
                    }
                    let max = self
                        .limits
                        .max_initramfs_bytes
                        .saturating_sub(self.scan.bytes);
                    total = match ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                        &mut *r,
                        32 << 20,
                    ) {
                        Ok(d) => self.decoded(d, max),
                        Err(e) => Err(format!("zstd frame: {e}")),
                    };
                }
                total
            }
            other => Err(format!(
                "initramfs compressed with {other}, which rehost cannot read"
            )),
        };
        result.map_err(|e| format!("{kind} segment: {e}"))
    }

    fn decoded(&mut self, d: impl Read, max: u64) -> Result<(), String> {
        let mut inner = Peek {
            inner: Counted {
                inner: d,
                count: 0,
                max,
            },
            ahead: Vec::new(),
        };
        let r = self.archives(&mut inner);
        self.scan.bytes += inner.inner.count;
        r
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn skip(r: &mut impl Read, n: u64) -> Result<(), String> {
    let copied = io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| e.to_string())?;
    if copied < n {
        return Err("cpio archive truncated".into());
    }
    Ok(())
}

/// Scans an initramfs for the `wanted` modules (normalized names), stopping early once all are
/// found.
pub fn scan(input: impl Read, wanted: &[&str], limits: &Limits) -> Result<InitramfsScan, String> {
    let mut s = Scanner {
        wanted,
        limits,
        scan: InitramfsScan::default(),
    };
    let mut r = Peek {
        inner: input,
        ahead: Vec::new(),
    };
    let before = s.scan.entries;
    s.archives(&mut r)?;
    if s.scan.entries > before {
        s.scan.segments.push("cpio");
    }
    if s.done() || !r.skip_zeros().map_err(|e| e.to_string())? {
        return Ok(s.scan);
    }
    let head = r.peek(6).map_err(|e| e.to_string())?.to_vec();
    let kind = match head.as_slice() {
        [0x1F, 0x8B, ..] => "gzip",
        [0xFD, b'7', b'z', b'X', b'Z', 0] => "xz",
        [0x28, 0xB5, 0x2F, 0xFD, ..] => "zstd",
        [0x02, 0x21, 0x4C, 0x18, ..] => "lz4",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [0x89, b'L', b'Z', b'O', ..] => "lzo",
        [0x5D, 0, 0, ..] => "lzma",
        _ => return Err("not a cpio archive or a known compression".into()),
    };
    // The kernel accepts more segments after a compressed one; real images carry none.
    s.compressed(&mut r, kind)?;
    Ok(s.scan)
}
