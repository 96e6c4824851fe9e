//! Inspection results kept in the state, keyed by what was read: a server whose disks are
//! unchanged since its last inspection is not read again.
//!
//! The key is a fingerprint over every disk's name, format and source path and, for every file
//! a reader of the disk reads (the image and, for qcow2 or VMDK, each file of its chain), its
//! path, size, mtime (ns), inode and device, plus [`INSPECTION_VERSION`]. A block device has no
//! fingerprint (its mtime says nothing about its contents): it is read every time.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{InspectError, Limits, ServerInspection, inspect_server};
use crate::clock::{from_unix_ms, unix_ms};
use crate::job::DiskJob;
use crate::source::{DiskSource, QemuTools};
use crate::state::{InspectionRecord, ServerKey, StateError, StateStore};

/// Part of every fingerprint: a rehost whose inspection reads or decides differently bumps it,
/// so results of an older one are not reused.
pub const INSPECTION_VERSION: u32 = 1;

/// Servers inspected at once: each takes a core while it decompresses an initramfs.
const PARALLEL: usize = 2;

/// The fingerprint of what an inspection of `disks` reads; `None` when it cannot be reused:
/// a block device, or a file that cannot be examined (the inspection then says why).
pub fn fingerprint(disks: &[DiskJob], tools: &QemuTools) -> Option<String> {
    let mut h = Sha256::new();
    h.update(format!("rehost-inspection-v{INSPECTION_VERSION}\n"));
    for disk in disks {
        let meta = std::fs::metadata(&disk.source).ok()?;
        if meta.file_type().is_block_device() || disk.source.starts_with("/dev") {
            return None;
        }
        h.update(format!(
            "disk {} {} {}\n",
            disk.name,
            disk.format.source_format().name(),
            disk.source.display()
        ));
        let files =
            DiskSource::chain_files(&disk.source, Some(disk.format.source_format()), tools).ok()?;
        for file in files {
            let m = std::fs::metadata(&file).ok()?;
            if !m.is_file() {
                return None;
            }
            h.update(format!(
                "file {} {} {}.{:09} {} {}\n",
                file.display(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.dev()
            ));
        }
    }
    Some(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inspects servers (id, disks) a few at a time on threads of their own; results in order.
pub fn inspect_many(
    servers: &[(String, Vec<DiskJob>)],
    tools: &QemuTools,
    limits: &Limits,
) -> Vec<Result<ServerInspection, InspectError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<ServerInspection, InspectError>>>> =
        Mutex::new((0..servers.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(servers.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, disks)) = servers.get(i) else {
                        break;
                    };
                    let r = inspect_server(id, disks, tools, limits);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every server was taken by a worker"))
        .collect()
}

/// One server's inspection and where it came from.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub inspection: ServerInspection,
    pub inspected_at: OffsetDateTime,
    /// Reused from the state: the disks are unchanged since `inspected_at`.
    pub cached: bool,
}

/// Inspects the servers (id, disks) of application `app`, reusing each cached result whose
/// fingerprint matches the disks as they are now (unless `fresh`), and storing every new one.
/// The disks are read on blocking threads, two servers at a time.
pub async fn inspect_cached(
    store: &dyn StateStore,
    app: &str,
    servers: &[(String, Vec<DiskJob>)],
    fresh: bool,
) -> Result<Vec<Result<Inspected, InspectError>>, StateError> {
    let owned = servers.to_vec();
    let prints = run_blocking(store, "fingerprint disks", move || {
        let tools = QemuTools::default();
        owned
            .iter()
            .map(|(_, disks)| fingerprint(disks, &tools))
            .collect::<Vec<_>>()
    })
    .await?;
    let mut out: Vec<Option<Result<Inspected, InspectError>>> = Vec::new();
    let mut stale = Vec::new();
    for ((id, disks), print) in servers.iter().zip(&prints) {
        let cached = match (fresh, print) {
            (false, Some(print)) => store
                .inspection(&ServerKey::new(app, id))
                .await?
                .filter(|r| &r.fingerprint == print),
            _ => None,
        };
        match cached {
            Some(r) => out.push(Some(Ok(Inspected {
                inspection: r.inspection,
                inspected_at: r.inspected_at,
                cached: true,
            }))),
            None => {
                out.push(None);
                stale.push((id.clone(), disks.clone()));
            }
        }
    }
    let inspected = run_blocking(store, "inspect disks", move || {
        inspect_many(&stale, &QemuTools::default(), &Limits::default())
    })
    .await?;
    let mut fresh_results = inspected.into_iter();
    for (slot, ((id, _), print)) in out.iter_mut().zip(servers.iter().zip(prints)) {
        if slot.is_some() {
            continue;
        }
        let result = fresh_results.next().expect("one result per stale server");
        *slot = Some(match result {
            Ok(inspection) => {
                // To the millisecond the state keeps, so what is returned is what is stored.
                let now = from_unix_ms(unix_ms(OffsetDateTime::now_utc()));
                let record = InspectionRecord {
                    // A block device's result is kept (status and launch read it) but never
                    // reused: no fingerprint matches the empty one.
                    fingerprint: print.unwrap_or_default(),
                    inspected_at: now,
                    inspection,
                };
                store
                    .store_inspection(&ServerKey::new(app, id), &record)
                    .await?;
                Ok(Inspected {
                    inspection: record.inspection,
                    inspected_at: now,
                    cached: false,
                })
            }
            Err(e) => Err(e),
        });
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every server has a result"))
        .collect())
}

async fn run_blocking<T: Send + 'static>(
    store: &dyn StateStore,
    operation: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StateError::Worker {
            location: store.location(),
            operation,
            message: e.to_string(),
        })
}

/// The cached inspection of each of `servers` that has one (whatever its disks are now: what
/// `render`, `status` and launch pre-flight use, without reading any disk).
pub async fn cached_inspections(
    store: &dyn StateStore,
    app: &str,
    servers: impl IntoIterator<Item = &str>,
) -> Result<std::collections::BTreeMap<String, InspectionRecord>, StateError> {
    let mut out = std::collections::BTreeMap::new();
    for id in servers {
        if let Some(r) = store.inspection(&ServerKey::new(app, id)).await? {
            out.insert(id.to_string(), r);
        }
    }
    Ok(out)
}
