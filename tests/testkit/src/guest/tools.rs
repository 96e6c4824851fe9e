//! Building guest disk images without root: sparse files, partition tables with sfdisk,
//! filesystems with mkfs.ext4 -d, mkfs.fat + mcopy, mkntfs + ntfs-3g (FUSE), mkfs.xfs, placed at
//! their partition offsets; initramfs archives with cpio and gzip/xz/zstd; format conversion
//! with qemu-img.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const MIB: u64 = 1 << 20;

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a command with `input` on its standard input.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Feed stdin from another thread: a tool writing output while we write input would
    // otherwise deadlock on full pipes.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A sparse file of `size` bytes.
pub fn sparse(path: &Path, size: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
}

/// Writes a partition table with sfdisk (its script syntax; sizes in sectors or with units).
pub fn sfdisk(image: &Path, script: &str) {
    run_with_input(
        Command::new("sfdisk")
            .arg("-q")
            .arg("--no-reread")
            .arg("--no-tell-kernel")
            .arg(image),
        script.as_bytes(),
    );
}

/// Copies `src` into `image` at `offset`, skipping all-zero chunks so the image stays sparse.
pub fn place(image: &Path, offset: u64, src: &Path) {
    let mut from = File::open(src).unwrap();
    let mut to = OpenOptions::new().write(true).open(image).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset;
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            to.seek(SeekFrom::Start(pos)).unwrap();
            to.write_all(&buf[..n]).unwrap();
        }
        pos += n as u64;
    }
}

/// Writes `bytes` into `image` at `offset`.
pub fn poke(image: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(image).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Reads `len` bytes of `image` at `offset`.
pub fn peek(image: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(image).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact(&mut b).unwrap();
    b
}

/// Writes files (relative path -> bytes) under `dir`.
pub fn tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = dir.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
}

/// An ext4 filesystem image of `size` bytes holding `dir`.
pub fn mkfs_ext4(out: &Path, dir: &Path, size: u64, uuid: &str, label: &str) {
    sparse(out, size);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid, "-L", label, "-d"])
        .arg(dir)
        .arg(out));
}

/// A FAT filesystem image holding `files` (guest path -> bytes), built with mkfs.fat and mtools.
pub fn mkfs_fat(out: &Path, size: u64, serial: u32, files: &[(&str, Vec<u8>)]) {
    let _ = std::fs::remove_file(out);
    run(Command::new("mkfs.fat")
        .args(["-C", "-i", &format!("{serial:08X}"), "-n", "ESP"])
        .arg(out)
        .arg((size / 1024).to_string()));
    let staging = out.with_extension("files");
    let _ = std::fs::remove_dir_all(&staging);
    for (guest, bytes) in files {
        let mut dirs = String::new();
        let parts: Vec<&str> = guest.trim_start_matches('/').split('/').collect();
        for d in &parts[..parts.len() - 1] {
            dirs.push('/');
            dirs.push_str(d);
            let _ = Command::new("mmd")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(out)
                .arg(format!("::{dirs}"))
                .output();
        }
        std::fs::create_dir_all(&staging).unwrap();
        let local = staging.join(parts.last().unwrap());
        std::fs::write(&local, bytes).unwrap();
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-o")
            .arg("-i")
            .arg(out)
            .arg(&local)
            .arg(format!("::{guest}")));
    }
    let _ = std::fs::remove_dir_all(&staging);
}

/// An NTFS filesystem image holding `dir`: mkntfs, then a FUSE mount with ntfs-3g to copy the
/// tree in (ntfscp cannot make directories).
pub fn mkfs_ntfs(out: &Path, dir: &Path, size: u64) {
    sparse(out, size);
    run(Command::new("mkntfs").args(["-F", "-Q", "-q"]).arg(out));
    let mnt = out.with_extension("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("ntfs-3g").arg(out).arg(&mnt));
    let copied = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", dir.display()))
        .arg(&mnt)
        .output();
    let unmount = Command::new("fusermount").arg("-u").arg(&mnt).output();
    let unmount_ok = unmount.as_ref().is_ok_and(|o| o.status.success())
        || Command::new("umount")
            .arg(&mnt)
            .output()
            .is_ok_and(|o| o.status.success());
    let copied = copied.unwrap();
    assert!(
        copied.status.success(),
        "copy into NTFS failed: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(unmount_ok, "cannot unmount {}", mnt.display());
    let _ = std::fs::remove_dir(&mnt);
}

/// A cpio (newc) archive of `dir`, as dracut and initramfs-tools write them.
pub fn cpio(dir: &Path) -> Vec<u8> {
    let list = run(Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort")
        .current_dir(dir));
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&list));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Compresses with a command-line tool: "gzip", "xz" (crc32 check, as the kernel wants) or "zstd".
pub fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(tool);
    match tool {
        "gzip" => cmd.args(["-c", "-9n"]),
        "xz" => cmd.args(["-c", "--check=crc32", "--lzma2=dict=1MiB"]),
        "zstd" => cmd.args(["-c", "-q", "-3"]),
        other => panic!("unknown compressor {other}"),
    };
    run_with_input(&mut cmd, data)
}

/// Converts a raw image with qemu-img into `format` (qcow2, vmdk, vhdx, vpc).
pub fn convert(raw: &Path, format: &str) -> PathBuf {
    let ext = if format == "vpc" { "vhd" } else { format };
    let out = raw.with_extension(ext);
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", format])
        .arg(raw)
        .arg(&out));
    out
}

/// A minimal PE image header for `machine` (0x8664 x64, 0xAA64 arm64, 0x14C i386).
pub fn pe_stub(machine: u16) -> Vec<u8> {
    let mut pe = vec![0u8; 1024];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    pe[0x80..0x84].copy_from_slice(b"PE\0\0");
    pe[0x84..0x86].copy_from_slice(&machine.to_le_bytes());
    pe
}

/// A minimal 64-bit little-endian ELF header for `machine` (62 x86_64, 183 aarch64).
pub fn elf_stub(machine: u16) -> Vec<u8> {
    let mut e = vec![0u8; 64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[18..20].copy_from_slice(&machine.to_le_bytes());
    e
}
