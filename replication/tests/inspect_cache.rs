//! The inspection cache: a server whose disks are unchanged is not read again (the stored
//! `inspectedAt` stays), a touched disk, or any file of its qcow2 chain, is read again, and a
//! block device never has a fingerprint.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use rehost_replication::DiskJob;
use rehost_replication::inspect::cache::fingerprint;
use rehost_replication::inspect::{Verdict, inspect_cached};
use rehost_replication::source::QemuTools;
use rehost_replication::state::{ServerKey, SqliteStore, StateStore};
use rehost_testkit::guest::images;
use rehost_testkit::scratch_dir;

fn touch(path: &Path, secs_later: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(secs_later))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_chain_is_not_read_again_and_a_touched_file_is() {
    let d = scratch_dir("inspect-cache", "chain");
    let base = images::rhel6_image(&d, "old01");
    // An overlay on the raw base: the chain is old01.qcow2 -> old01.raw.
    let overlay = d.join("old01.qcow2");
    let _ = std::fs::remove_file(&overlay);
    let status = Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "old01.raw",
        ])
        .arg(&overlay)
        .status()
        .unwrap();
    assert!(status.success());
    let servers = vec![(
        "old01".to_string(),
        DiskJob::implied_all(std::slice::from_ref(&overlay)).unwrap(),
    )];
    let store = SqliteStore::open(&d.join(".rehost/state.db"))
        .await
        .unwrap();
    let key = ServerKey::new("estate", "old01");
    assert_eq!(store.inspection(&key).await.unwrap(), None);

    let run = |fresh| {
        let (store, servers) = (store.clone(), servers.clone());
        async move {
            let mut out = inspect_cached(&store, "estate", &servers, fresh)
                .await
                .unwrap();
            out.remove(0).expect("inspects")
        }
    };
    let first = run(false).await;
    assert!(!first.cached);
    assert_eq!(first.inspection.verdict, Verdict::XenOnly);
    let stored = store.inspection(&key).await.unwrap().expect("stored");
    assert_eq!(stored.inspection, first.inspection);
    assert_eq!(stored.inspected_at, first.inspected_at);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = run(false).await;
    assert!(second.cached, "unchanged disks are not read again");
    assert_eq!(second.inspected_at, first.inspected_at);
    assert_eq!(second.inspection, first.inspection);

    // The backing file changes (a new mtime): the chain is read again.
    touch(&base, 5);
    let third = run(false).await;
    assert!(!third.cached, "a touched backing file is read again");
    assert!(third.inspected_at > first.inspected_at);
    assert_eq!(
        store.inspection(&key).await.unwrap().unwrap().inspected_at,
        third.inspected_at
    );
    let fourth = run(false).await;
    assert!(fourth.cached);

    // --fresh reads it whatever the cache holds.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let fifth = run(true).await;
    assert!(!fifth.cached);
    assert!(fifth.inspected_at > third.inspected_at);
}

#[test]
fn fingerprints_cover_format_and_file_identity_and_block_devices_have_none() {
    let d = scratch_dir("inspect-cache", "prints");
    let a = d.join("a.raw");
    std::fs::write(&a, vec![0u8; 4096]).unwrap();
    let tools = QemuTools::default();
    let job = |path: &Path| DiskJob::implied_all(&[path.to_path_buf()]).unwrap();
    let p1 = fingerprint(&job(&a), &tools).expect("a regular file has one");
    assert_eq!(fingerprint(&job(&a), &tools).as_deref(), Some(p1.as_str()));
    // The same bytes in a new file (another inode) are another disk as far as the cache knows.
    let b = d.join("b.raw");
    std::fs::copy(&a, &b).unwrap();
    std::fs::rename(&b, &a).unwrap();
    let p2 = fingerprint(&job(&a), &tools).unwrap();
    assert_ne!(p1, p2, "a replaced file");
    // Declared as another format: another reading.
    let mut declared = job(&a);
    declared[0].format = rehost_replication::DiskFormat::Qcow2;
    assert_ne!(fingerprint(&declared, &tools).as_deref(), Some(p2.as_str()));
    // A block device (any /dev/ source) is read every time.
    let dev = vec![DiskJob::implied("disk0", "/dev/null").unwrap()];
    assert_eq!(fingerprint(&dev, &tools), None);
    assert_eq!(fingerprint(&job(&d.join("missing.raw")), &tools), None);
}
