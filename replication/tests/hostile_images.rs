//! Disk images are untrusted: a guest can write any header into its own disk, and an image file
//! can name other files (backing files, data files, extents) that qemu would open. None of that
//! may make rehost read a file of the replication host, and qemu-nbd's socket is rehost's alone.
//!
//! Against the moto emulator: refused disks start no snapshot; a libvirt-style external
//! snapshot chain inside the disk's directory still replicates exactly.

mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_replication::source::{
    BlockRead, Confinement, DiskSource, QemuTools, Reference, SourceError, SourceFormat,
};
use rehost_replication::{ReplicationError, ReportStatus};
use rehost_testkit::Moto;

const BLOCK: u64 = BLOCK_SIZE as u64;
/// What the host's secret file holds at the start of every 4 KiB: if these bytes show up in
/// anything rehost reads from a disk, a host file leaked.
const SECRET: &[u8] = b"HOST-SECRET-c2c1b3f0-must-never-leave-the-host";

/// A directory holding the disk (`disks/`) and, beside it, a host file (`host/secret.raw`).
struct Scene {
    _tmp: tempfile::TempDir,
    disks: PathBuf,
    secret: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let disks = tmp.path().join("disks");
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&disks).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    let secret = host.join("secret.raw");
    let mut data = vec![0u8; 4 << 20];
    for chunk in data.chunks_mut(4096) {
        chunk[..SECRET.len()].copy_from_slice(SECRET);
    }
    std::fs::write(&secret, &data).unwrap();
    Scene {
        _tmp: tmp,
        disks,
        secret,
    }
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A qcow2 image at `image` over `backing` (as the image names it) in `format`.
fn overlay(image: &str, backing: &str, format: &str, size: Option<&str>) {
    let mut args = vec!["create", "-f", "qcow2", "-b", backing, "-F", format, image];
    args.extend(size);
    qemu_img(&args);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every block the source yields, concatenated (unallocated blocks as zeros).
fn read_all(source: &mut DiskSource) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; BLOCK_SIZE];
    for i in 0..source.block_count() {
        match source.read_block(i, &mut buf).unwrap() {
            BlockRead::Data => out.extend_from_slice(&buf),
            BlockRead::Unallocated => out.extend(std::iter::repeat_n(0, BLOCK_SIZE)),
        }
    }
    out.truncate(source.size() as usize);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Opens `path` as its extension says and expects a refusal of `reference`, returning the rule.
fn refused(path: &Path, reference: Reference) -> Confinement {
    match DiskSource::open(path, None, &QemuTools::default()) {
        Err(SourceError::Refused(refusal)) => {
            assert_eq!(refusal.reference, reference, "{}", path.display());
            assert_eq!(refusal.path, path);
            refusal.rule
        }
        Ok(_) => panic!(
            "{}: opened, but it names a file it must not",
            path.display()
        ),
        Err(e) => panic!("{}: failed otherwise: {e}", path.display()),
    }
}

fn assert_outside(rule: &Confinement, scene: &Scene) {
    match rule {
        Confinement::Outside {
            resolved,
            directory,
        } => {
            assert_eq!(resolved, &scene.secret.canonicalize().unwrap());
            assert_eq!(directory, &scene.disks.canonicalize().unwrap());
        }
        other => panic!("expected an outside-the-directory refusal, got {other:?}"),
    }
}

/// A guest wrote a qcow2 header into its own raw disk, with a backing file pointing at a host
/// file. Without an extension the disk is refused (never probed); named `.raw` or `.img` it is
/// read as the raw bytes it is, and the host file's bytes never appear.
#[test]
fn guest_written_qcow2_header_with_a_host_backing_file_is_never_followed() {
    let scene = scene();
    let header = scene.disks.join("header.qcow2");
    overlay(s(&header), s(&scene.secret), "raw", Some("4M"));
    let mut disk = std::fs::read(&header).unwrap();
    std::fs::remove_file(&header).unwrap();
    disk.resize(4 << 20, 0x5a);
    for name in ["guest", "guest.raw", "guest.img"] {
        std::fs::write(scene.disks.join(name), &disk).unwrap();
    }

    let err =
        DiskSource::open(&scene.disks.join("guest"), None, &QemuTools::default()).unwrap_err();
    assert!(
        matches!(err, SourceError::UnknownFormat { .. }) && err.is_refusal(),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("guest") && message.contains("format:"),
        "names the file and what to do: {message}"
    );

    for name in ["guest.raw", "guest.img"] {
        let mut source =
            DiskSource::open(&scene.disks.join(name), None, &QemuTools::default()).unwrap();
        assert_eq!(source.format(), SourceFormat::Raw, "{name}");
        let bytes = read_all(&mut source);
        assert!(bytes == disk, "{name}: read as the raw bytes of the file");
        assert!(!contains(&bytes, SECRET), "{name}: the host file leaked");
    }
}

#[test]
fn qcow2_with_a_backing_file_outside_the_directory_is_refused() {
    let scene = scene();
    let top = scene.disks.join("top.qcow2");
    overlay(s(&top), s(&scene.secret), "raw", None);
    let rule = refused(&top, Reference::BackingFile);
    assert_outside(&rule, &scene);

    // Deeper in a chain: the top's backing file is inside, its own backing file is not.
    let mid = scene.disks.join("mid.qcow2");
    std::fs::rename(&top, &mid).unwrap();
    let top = scene.disks.join("top2.qcow2");
    overlay(s(&top), "mid.qcow2", "qcow2", None);
    let err = DiskSource::open(&top, None, &QemuTools::default()).unwrap_err();
    match &err {
        SourceError::Refused(refusal) => {
            assert_eq!(refusal.image, mid);
            assert_outside(&refusal.rule, &scene);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("its backing image"), "{err}");
}

#[test]
fn qcow2_with_an_external_data_file_outside_is_refused() {
    let scene = scene();
    let image = scene.disks.join("data.qcow2");
    let data_file = format!("data_file={},data_file_raw=on", s(&scene.secret));
    qemu_img(&["create", "-f", "qcow2", "-o", &data_file, s(&image), "4M"]);
    let rule = refused(&image, Reference::DataFile);
    assert_outside(&rule, &scene);
}

#[test]
fn vmdk_descriptor_with_an_extent_outside_is_refused() {
    let scene = scene();
    let descriptor = scene.disks.join("flat.vmdk");
    write_file(
        &descriptor,
        &format!(
            "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
             createType=\"monolithicFlat\"\n\n# Extent description\nRW 8192 FLAT \"{}\" 0\n\n\
             # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
             ddb.geometry.cylinders = \"8\"\nddb.geometry.heads = \"16\"\n\
             ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n",
            s(&scene.secret)
        ),
    );
    let rule = refused(&descriptor, Reference::Extent);
    assert_outside(&rule, &scene);
}

/// `base.raw` sits in the directory, but as a symlink to the host file: symlinks are followed
/// before the check.
#[test]
fn symlink_escaping_the_directory_is_refused() {
    let scene = scene();
    std::os::unix::fs::symlink(&scene.secret, scene.disks.join("base.raw")).unwrap();
    let top = scene.disks.join("top.qcow2");
    // Relative, as libvirt writes it: resolved against the image's own directory.
    overlay(s(&top), "base.raw", "raw", None);
    let rule = refused(&top, Reference::BackingFile);
    assert_outside(&rule, &scene);
}

/// An image whose header names a backing file but not its format: qemu would guess the format
/// from the backing file's contents, so rehost refuses it and says how to record one.
#[test]
fn backing_file_without_a_recorded_format_is_refused() {
    let scene = scene();
    let base = scene.disks.join("base.raw");
    std::fs::write(&base, vec![0u8; 1 << 20]).unwrap();
    let top = scene.disks.join("top.qcow2");
    overlay(s(&top), "base.raw", "raw", None);
    // Turn the backing-format header extension (magic 0xe2792aca) into an unknown one, which
    // qemu skips: the image keeps its backing file and loses its format.
    let mut bytes = std::fs::read(&top).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
        .expect("backing format extension");
    bytes[at..at + 4].copy_from_slice(&[0x7e, 0x57, 0x00, 0x01]);
    std::fs::write(&top, bytes).unwrap();
    let rule = refused(&top, Reference::BackingFile);
    assert_eq!(rule, Confinement::UndeclaredFormat);
    let err = DiskSource::open(&top, None, &QemuTools::default()).unwrap_err();
    assert!(err.to_string().contains("qemu-img rebase -u -F"), "{err}");
}

/// The snapshot ids the emulator knows.
async fn snapshot_ids(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Tests of this binary that count the emulator's snapshots must not overlap.
static EMULATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server whose first disk is fine and whose second is hostile is refused before anything is
/// sent: the report names server, disk, path and rule, and no snapshot is started at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_disks_start_no_snapshot() {
    init_tracing();
    let moto = Moto::shared();
    let _alone = EMULATOR.lock().await;
    let scene = scene();
    let good = scene.disks.join("good.raw");
    write_raw(&good, 8 * BLOCK, &[(0, 8, Fill::Random)], 3);
    let outside = scene.disks.join("outside.qcow2");
    overlay(s(&outside), s(&scene.secret), "raw", None);
    // A qcow2 whose header names its backing file but not that file's format. (A disk with no
    // format at all cannot reach the engine any more: `DiskJob` always carries one, validation
    // refuses such a disk at its FILE:LINE:COL, and `DiskSource::open(path, None, ..)` refuses it
    // in `guest_written_qcow2_header_with_a_host_backing_file_is_never_followed`.)
    let base = scene.disks.join("base.raw");
    std::fs::write(&base, vec![0u8; 1 << 20]).unwrap();
    let unknown = scene.disks.join("unknown-backing.qcow2");
    overlay(s(&unknown), "base.raw", "raw", None);
    let mut bytes = std::fs::read(&unknown).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
        .expect("backing format extension");
    bytes[at..at + 4].copy_from_slice(&[0x7e, 0x57, 0x00, 0x01]);
    std::fs::write(&unknown, bytes).unwrap();

    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let rep = replicator(
        &moto.endpoint(),
        &scene.disks.join("state.db"),
        test_options(),
    )
    .await;
    let before = snapshot_ids(&ec2).await;
    for (server, bad, rule_words) in [
        ("hostile-backing", &outside, "outside"),
        ("hostile-unknown", &unknown, "format"),
    ] {
        let job = job("hostile", server, &[("disk0", &good), ("disk1", bad)]);
        let report = rep.replicate(&job).await;
        assert_eq!(report.status, ReportStatus::Failed, "{server}");
        let error = report.error.unwrap_or_default();
        for word in [server, "disk1", s(bad), rule_words] {
            assert!(
                error.contains(word),
                "{server}: `{word}` missing from: {error}"
            );
        }
        assert!(report.snapshots.is_empty(), "{server}: no disk was sent");
        let typed = job.inspect_disks(&QemuTools::default()).unwrap_err();
        assert!(
            matches!(&typed, ReplicationError::Source { disk, .. } if disk == "disk1")
                && typed.is_refusal(),
            "{typed}"
        );
    }
    assert_eq!(snapshot_ids(&ec2).await, before, "no snapshot was started");
    // The count is a real witness: the good disk alone does start one.
    let report = rep
        .replicate(&job("hostile", "control", &[("disk0", &good)]))
        .await;
    assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
    let control = &report.snapshots[0].snapshot_id;
    assert!(!before.contains(control) && snapshot_ids(&ec2).await.contains(control));
    println!("{}", typed_message(&outside));
}

/// The refusal as the operator reads it (printed by the test for the record).
fn typed_message(image: &Path) -> String {
    let job = job("hostile", "web01", &[("disk0", image)]);
    job.inspect_disks(&QemuTools::default())
        .unwrap_err()
        .to_string()
}

/// libvirt's external snapshots: a base image and an overlay naming it by a relative path, both
/// in the disk's directory. The chain is followed and the snapshot holds exactly what the
/// guest sees (the overlay's writes over the base).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_snapshot_chain_inside_the_directory_replicates_exactly() {
    init_tracing();
    let moto = Moto::shared();
    let _alone = EMULATOR.lock().await;
    let scene = scene();
    let raw = scene.disks.join("seed.raw");
    write_raw(
        &raw,
        24 * BLOCK,
        &[(0, 10, Fill::Random), (14, 6, Fill::Random)],
        21,
    );
    let base = scene.disks.join("vm.qcow2");
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&base)]);
    std::fs::remove_file(&raw).unwrap();
    let top = scene.disks.join("vm.snap1.qcow2");
    overlay(s(&top), "vm.qcow2", "qcow2", None);
    // The guest keeps writing into the overlay: over base data, into a hole, past the base.
    for (pattern, offset) in [
        ("0xab", 2 * BLOCK + 4096),
        ("0xcd", 11 * BLOCK),
        ("0xef", 22 * BLOCK),
    ] {
        let out = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c"])
            .arg(format!("write -P {pattern} {offset} 300k"))
            .arg(&top)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let flat = scene.disks.join("expected.raw");
    qemu_img(&["convert", "-f", "qcow2", "-O", "raw", s(&top), s(&flat)]);
    let expected = raw_blocks(&flat);

    let rep = replicator(
        &moto.endpoint(),
        &scene.disks.join("state.db"),
        test_options(),
    )
    .await;
    let report = rep
        .replicate(&job("chain", "libvirt-vm", &[("disk0", &top)]))
        .await;
    assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
    let ebs = aws_sdk_ebs::Client::new(&sdk_config(&moto.endpoint(), &Default::default()).await);
    let blocks = read_snapshot(&ebs, &report.snapshots[0].snapshot_id).await;
    assert_seed_matches(&blocks, &expected, "external snapshot chain");
}

/// rehost once put qemu-nbd's socket in `/tmp/rehost-nbd-<pid>-<n>`, creating the directory
/// only if missing: another local user could create it first and serve any disk contents. Here
/// such directories exist, each with a listening socket; none of them is used.
#[test]
fn a_precreated_directory_at_the_old_socket_path_is_not_used() {
    let scene = scene();
    let raw = scene.disks.join("d.raw");
    write_raw(&raw, 4 * BLOCK, &[(0, 4, Fill::Random)], 9);
    let image = convert(&raw, &scene.disks, "qcow2");

    let pid = std::process::id();
    let mut planted: Vec<(PathBuf, UnixListener)> = Vec::new();
    for n in 0..256 {
        let dir = std::env::temp_dir().join(format!("rehost-nbd-{pid}-{n}"));
        if std::fs::create_dir(&dir).is_ok() {
            let listener = UnixListener::bind(dir.join("nbd.sock")).unwrap();
            listener.set_nonblocking(true).unwrap();
            planted.push((dir, listener));
        }
    }
    // The planted servers answer anything with garbage, at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        let listeners: Vec<UnixListener> = planted
            .iter()
            .map(|(_, l)| l.try_clone().unwrap())
            .collect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for l in &listeners {
                    if let Ok((mut stream, _)) = l.accept() {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = std::io::Write::write_all(&mut stream, b"not your disk");
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };

    let opened = DiskSource::open(&image, None, &QemuTools::default());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    server.join().unwrap();
    for (dir, _) in &planted {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut source = opened.expect("opens through its own private socket");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a planted socket was connected to"
    );
    assert!(read_all(&mut source) == std::fs::read(&raw).unwrap());
}

/// A qemu-nbd that hands the serving to another process (here a wrapper that starts the real
/// qemu-nbd in the background and stays alive itself): the socket's peer is not the child rehost
/// started, so rehost refuses to read from it.
#[test]
fn a_socket_served_by_another_process_is_refused() {
    let scene = scene();
    let raw = scene.disks.join("d.raw");
    write_raw(&raw, 2 * BLOCK, &[(0, 2, Fill::Random)], 5);
    let image = convert(&raw, &scene.disks, "qcow2");
    let pidfile = scene.disks.join("server.pid");
    let wrapper = scene.disks.join("qemu-nbd-elsewhere");
    write_file(
        &wrapper,
        &format!(
            "#!/bin/sh\nqemu-nbd \"$@\" &\necho $! > '{}'\nexec sleep 30\n",
            pidfile.display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tools = QemuTools {
        qemu_nbd: wrapper,
        ..QemuTools::default()
    };
    let result = DiskSource::open(&image, None, &tools);
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    match result {
        Err(SourceError::Nbd { message, .. }) => {
            assert!(message.contains("not by the qemu-nbd"), "{message}")
        }
        Ok(_) => panic!("read from a socket another process serves"),
        Err(e) => panic!("failed otherwise: {e}"),
    }
}
