//! Guest inspection benchmark: time and peak memory (VmHWM) of inspecting one server, for
//! disks of 1 GiB and 64 GiB (sparse) and for each OS layout of the tests, raw and qcow2.
//! Each measurement runs in a child process so its peak RSS is the inspection's alone.
//!
//! `cargo bench -p rehost-replication --bench inspect`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rehost_replication::DiskJob;
use rehost_replication::inspect::{Limits, inspect_server};
use rehost_replication::source::QemuTools;
use rehost_testkit::guest::images::{self, WindowsSpec};
use rehost_testkit::guest::tools::{MIB, convert};

const CHILD: &str = "REHOST_INSPECT_BENCH_IMAGE";
const RUNS: usize = 5;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// In the child: inspect the image RUNS times; print "median_ms max_ms hwm_kib verdict".
fn child(image: &Path) {
    let tools = QemuTools::default();
    let limits = Limits::default();
    let mut times = Vec::new();
    let mut verdict = String::new();
    let disks = DiskJob::implied_all(&[image.to_path_buf()]).expect("a .raw or .qcow2 image");
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = inspect_server("bench", &disks, &tools, &limits).expect("opens");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        verdict = r.verdict.as_str().to_string();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{:.0} {:.0} {} {verdict}",
        times[RUNS / 2],
        times[RUNS - 1],
        vm_hwm_kib()
    );
}

fn measure(label: &str, image: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, image)
        .output()
        .expect("child runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    let size = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
    println!(
        "| {label:<48} | {:>9} | {:>8} ms | {:>8} ms | {:>7} MiB | {:<13} |",
        human(size),
        f[0],
        f[1],
        f[2].parse::<u64>().unwrap_or(0) / 1024,
        f[3]
    );
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

fn main() {
    if let Some(image) = std::env::var_os(CHILD) {
        child(Path::new(&image));
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("rehost-inspect-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("building images in {} ...", dir.display());
    let cases: Vec<(String, PathBuf)> = vec![
        (
            "Debian, 1 GiB disk, 64 MiB initramfs".into(),
            images::debian_image_with(&dir, "deb1g", 1 << 30, 64 * MIB),
        ),
        (
            "Debian, 64 GiB sparse, 64 MiB initramfs".into(),
            images::debian_image_with(&dir, "deb64g", 64 << 30, 64 * MIB),
        ),
        (
            "RHEL 8 on LVM (xz initramfs)".into(),
            images::rhel8_lvm_image(&dir, "rhel8"),
        ),
        (
            "RHEL 6 (gzip initramfs)".into(),
            images::rhel6_image(&dir, "rhel6"),
        ),
        (
            "Windows Server, UEFI".into(),
            images::windows_image(&dir, "win", &WindowsSpec::ready(true)),
        ),
    ];
    println!(
        "| {:<48} | file size |   median    |   slowest   | peak RSS    | verdict       |",
        "image"
    );
    println!(
        "|{}|-----------|-------------|-------------|-------------|---------------|",
        "-".repeat(50)
    );
    for (label, raw) in &cases {
        measure(&format!("{label}, raw"), raw);
        let qcow2 = convert(raw, "qcow2");
        measure(&format!("{label}, qcow2"), &qcow2);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
