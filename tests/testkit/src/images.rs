//! Test disk images: deterministic pseudo-random data, written zeros and holes laid out in
//! 512 KiB blocks (the EBS block size), converted with qemu-img to qcow2, VMDK (sparse and
//! stream-optimized), VHD and VHDX. The same seed always gives the same bytes, so a test can
//! regenerate what it expects instead of storing images.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit of a layout: one EBS block.
pub const BLOCK: u64 = 512 * 1024;

/// The formats `convert` makes, by the names tests use.
pub const FORMATS: [&str; 5] = ["qcow2", "vmdk-sparse", "vmdk-stream", "vhd", "vhdx"];

/// A deterministic pseudo-random generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// What a region of a test image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Random,
    /// Zeros written out (allocated in a raw file).
    Zeros,
    /// Never written: a hole in a raw file.
    Hole,
}

/// Writes a raw image of `size` bytes: `layout` gives (start block, blocks, fill); the rest are
/// holes. A block past `size` is cut short (the last block may be partial).
pub fn write_raw(path: &Path, size: u64, layout: &[(u64, u64, Fill)], seed: u64) {
    let file = std::fs::File::create(path).expect("create image");
    file.set_len(size).expect("size image");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; BLOCK as usize];
    for &(start, count, fill) in layout {
        for b in start..start + count {
            let off = b * BLOCK;
            if off >= size {
                break;
            }
            let len = (size - off).min(BLOCK) as usize;
            match fill {
                Fill::Hole => continue,
                Fill::Zeros => buf[..len].fill(0),
                Fill::Random => rng.fill(&mut buf[..len]),
            }
            std::os::unix::fs::FileExt::write_all_at(&file, &buf[..len], off).expect("write image");
        }
    }
    file.sync_all().ok();
}

/// Overwrites whole blocks of a raw image: zeros for `zero_block`, random data for the others.
pub fn change_blocks(path: &Path, blocks: &[u64], zero_block: Option<u64>, seed: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open image");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; BLOCK as usize];
    for &b in blocks {
        if Some(b) == zero_block {
            buf.fill(0);
        } else {
            rng.fill(&mut buf);
        }
        std::os::unix::fs::FileExt::write_all_at(&file, &buf, b * BLOCK).expect("write block");
    }
    file.sync_all().ok();
}

/// The blocks of a raw image, the last one zero-padded; `None` for all-zero blocks.
pub fn raw_blocks(path: &Path) -> Vec<Option<Vec<u8>>> {
    let data = std::fs::read(path).expect("read image");
    data.chunks(BLOCK as usize)
        .map(|c| {
            let mut b = c.to_vec();
            b.resize(BLOCK as usize, 0);
            if b.iter().all(|&x| x == 0) {
                None
            } else {
                Some(b)
            }
        })
        .collect()
}

/// qemu-img's output format and options for one of [`FORMATS`] (or `raw`).
fn qemu_format(format: &str) -> (&'static str, &'static [&'static str]) {
    match format {
        "raw" => ("raw", &[]),
        "qcow2" => ("qcow2", &[]),
        "vmdk-sparse" => ("vmdk", &["-o", "subformat=monolithicSparse"]),
        "vmdk-stream" => ("vmdk", &["-o", "subformat=streamOptimized"]),
        // force_size keeps the exact size instead of rounding to a CHS geometry.
        "vhd" => ("vpc", &["-o", "subformat=dynamic,force_size=on"]),
        "vhdx" => ("vhdx", &[]),
        other => panic!("unknown image format {other}"),
    }
}

fn qemu_convert(raw: &Path, format: &str, out: &Path) {
    let (fmt, opts) = qemu_format(format);
    let status = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", fmt])
        .args(opts)
        .arg(raw)
        .arg(out)
        .status()
        .expect("qemu-img runs");
    assert!(status.success(), "qemu-img convert to {format} failed");
}

/// Converts a raw image with qemu-img to one of [`FORMATS`], as
/// `<dir>/<raw stem>-<format>.<extension>`; returns the new path.
pub fn convert(raw: &Path, dir: &Path, format: &str) -> PathBuf {
    let ext = match format {
        "vmdk-sparse" | "vmdk-stream" => "vmdk",
        other => other,
    };
    let out = dir.join(format!(
        "{}-{format}.{ext}",
        raw.file_stem().unwrap().to_string_lossy()
    ));
    qemu_convert(raw, format, &out);
    out
}

/// Writes an image at `path` in the format its extension names (`.qcow2`, `.vmdk` sparse,
/// `.vhd`, `.vhdx`; anything else raw), creating its directory: [`write_raw`]'s layout, then
/// converted.
pub fn write_image(path: &Path, size: u64, layout: &[(u64, u64, Fill)], seed: u64) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create image directory");
    }
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("qcow2") => "qcow2",
        Some("vmdk") => "vmdk-sparse",
        Some("vhd") => "vhd",
        Some("vhdx") => "vhdx",
        _ => return write_raw(path, size, layout, seed),
    };
    let raw = path.with_extension("raw-src");
    write_raw(&raw, size, layout, seed);
    qemu_convert(&raw, format, path);
    std::fs::remove_file(raw).expect("remove the raw source");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 20]);
        let mut z = [0u8; 20];
        Rng::new(8).fill(&mut z);
        assert_ne!(x, z);
    }

    #[test]
    fn raw_layouts_hold_data_zeros_and_holes() {
        let dir = std::env::temp_dir().join(format!("rehost-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("layout.raw");
        let size = 3 * BLOCK + 100;
        write_raw(
            &path,
            size,
            &[
                (0, 1, Fill::Random),
                (1, 1, Fill::Zeros),
                (3, 1, Fill::Random),
            ],
            5,
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        let blocks = raw_blocks(&path);
        assert_eq!(blocks.len(), 4);
        assert!(blocks[0].is_some() && blocks[1].is_none() && blocks[2].is_none());
        let last = blocks[3].as_ref().unwrap();
        assert!(
            last[..100].iter().any(|&b| b != 0),
            "the partial block has data"
        );
        assert!(last[100..].iter().all(|&b| b == 0), "padded with zeros");
        change_blocks(&path, &[0, 2], Some(0), 9);
        let changed = raw_blocks(&path);
        assert!(changed[0].is_none() && changed[2].is_some());
        std::fs::remove_dir_all(dir).ok();
    }
}
