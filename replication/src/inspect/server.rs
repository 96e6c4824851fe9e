//! One server's inspection: open its disks, read their partition tables and LVM volumes, look
//! at every filesystem, find the system, gather facts, and evaluate them.

use crate::job::DiskJob;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::source::{DiskSource, QemuTools, SourceError};

use super::binfmt::{Machine, pe_machine};
use super::detect::{FsKind, detect};
use super::ext::ExtFs;
use super::facts::{BootFacts, Facts, OsFacts};
use super::fat::FatFs;
use super::guestfs::GuestFs;
use super::io::{Disk, ReadAt, Segment, Volume, read_head};
use super::limits::{Budget, Limits};
use super::lvm;
use super::ntfsfs::NtfsFs;
use super::partition::{Partition, PartitionTable, TableKind, read_table};
use super::report::{DiskReport, PartitionReport, ServerInspection};
use super::{linux, verdict, windows};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("server {server}: {disk} cannot be opened: {source}")]
    Open {
        server: String,
        disk: String,
        #[source]
        source: SourceError,
    },
}

/// A volume that may hold a filesystem.
struct Candidate {
    location: String,
    volume: Volume,
    disk: usize,
    partition: Option<Partition>,
    kind: Option<FsKind>,
    /// Device names a guest may use for it (LVM).
    lv_names: Vec<String>,
    fs: Option<Box<dyn GuestFs>>,
    uuid: Option<String>,
    label: Option<String>,
    role: Role,
    disk_rc: Rc<Disk>,
}

/// What a readable filesystem is to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    WindowsRoot,
    LinuxRoot,
    /// A separate /boot (kernels or boot loader configuration at its top).
    Boot,
    Esp,
}

fn letter(disk: usize) -> char {
    (b'a' + (disk % 26) as u8) as char
}

impl Candidate {
    /// Whether an fstab device spec names this volume.
    fn matches(&self, spec: &str) -> bool {
        let eq =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
        if let Some(u) = spec
            .strip_prefix("UUID=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-uuid/"))
        {
            return eq(&self.uuid, u.trim_matches('"'));
        }
        if let Some(l) = spec
            .strip_prefix("LABEL=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-label/"))
        {
            return eq(&self.label, l.trim_matches('"'));
        }
        if let Some(p) = spec
            .strip_prefix("PARTUUID=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-partuuid/"))
        {
            return self
                .partition
                .as_ref()
                .is_some_and(|part| eq(&part.part_uuid, p.trim_matches('"')));
        }
        if self.lv_names.iter().any(|n| n == spec) {
            return true;
        }
        let Some(part) = &self.partition else {
            return false;
        };
        let (l, n, d) = (letter(self.disk), part.index, self.disk);
        [
            format!("/dev/sd{l}{n}"),
            format!("/dev/xvd{l}{n}"),
            format!("/dev/vd{l}{n}"),
            format!("/dev/hd{l}{n}"),
            format!("/dev/nvme{d}n1p{n}"),
        ]
        .iter()
        .any(|s| s == spec)
    }
}

/// Inspects one server's disks (the first is the boot disk). A disk that cannot be opened is
/// an error; everything found on the disks, damaged or not, is in the result.
pub fn inspect_server(
    server: &str,
    disks: &[DiskJob],
    tools: &QemuTools,
    limits: &Limits,
) -> Result<ServerInspection, InspectError> {
    let budget = Rc::new(Budget::new(limits.clone()));
    let mut opened = Vec::new();
    for disk in disks {
        let name = disk.name.clone();
        let path = &disk.source;
        // Opened exactly as replication opens it: the declared format, the same chain checks.
        let source =
            DiskSource::open(path, Some(disk.format.source_format()), tools).map_err(|source| {
                InspectError::Open {
                    server: server.to_string(),
                    disk: format!("{name} ({})", path.display()),
                    source,
                }
            })?;
        // The cache budget is the server's, shared by its disks.
        let cache = limits.cache_bytes / disks.len().max(1);
        opened.push(Rc::new(Disk::new(name, source, budget.clone(), cache)));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        inspect_disks(server, &opened, limits)
    }));
    Ok(result.unwrap_or_else(|_| {
        let facts = Facts {
            unreadable: vec!["inspection failed on damaged data (internal error)".into()],
            ..Default::default()
        };
        assemble(server, &facts, Vec::new())
    }))
}

fn assemble(server: &str, facts: &Facts, disks: Vec<DiskReport>) -> ServerInspection {
    let e = verdict::evaluate(facts);
    ServerInspection {
        server: server.to_string(),
        verdict: e.verdict,
        boot_mode: e.boot_mode,
        architecture: e.architecture,
        os: e.os,
        findings: e.findings,
        disks,
    }
}

fn inspect_disks(server: &str, disks: &[Rc<Disk>], limits: &Limits) -> ServerInspection {
    let mut facts = Facts::default();
    let mut reports = Vec::new();
    let mut tables: Vec<Option<PartitionTable>> = Vec::new();
    let mut cands: Vec<Candidate> = Vec::new();
    for (d, disk) in disks.iter().enumerate() {
        let table = match read_table(disk.as_ref(), limits.max_partitions) {
            Ok(t) => Some(t),
            Err(e) => {
                facts
                    .problems
                    .push(format!("{}: partition table unreadable: {e}", disk.name()));
                None
            }
        };
        let mut report = DiskReport {
            disk: disk.name().to_string(),
            partition_table: table
                .as_ref()
                .map_or(TableKind::None, |t| t.kind)
                .as_str()
                .into(),
            partitions: Vec::new(),
        };
        if let Some(t) = &table {
            facts
                .problems
                .extend(t.problems.iter().map(|p| format!("{}: {p}", disk.name())));
            facts.damaged |= t
                .partitions
                .iter()
                .any(|p| p.start.saturating_add(p.size) > disk.size());
            if t.kind == TableKind::None {
                let volume = Volume::on_disk(disk, 0, disk.size());
                cands.push(candidate(
                    format!("{} (no partition table)", disk.name()),
                    volume,
                    disk,
                    d,
                    None,
                ));
            }
            for p in &t.partitions {
                facts.dynamic_disk |= p.kind.is_ldm();
                let volume = Volume::on_disk(disk, p.start, p.size);
                let mut c = candidate(
                    format!("{} partition {}", disk.name(), p.index),
                    volume,
                    disk,
                    d,
                    Some(p.clone()),
                );
                if p.kind.name() == "extended" {
                    c.kind = None;
                }
                report.partitions.push(PartitionReport {
                    index: p.index,
                    kind: p.kind.name(),
                    start: p.start,
                    size: p.size,
                    filesystem: c.kind.map(|k| k.as_str().to_string()),
                });
                if p.kind.name() != "extended" {
                    cands.push(c);
                }
            }
        }
        reports.push(report);
        tables.push(table);
    }
    cands.extend(logical_volumes(&cands, &mut facts, limits));
    open_filesystems(&mut cands, &mut facts, limits);
    facts.boot = boot_facts(
        tables.first().and_then(|t| t.as_ref()),
        &mut cands,
        &mut facts.loader_machine,
    );

    let root = cands
        .iter()
        .position(|c| c.role == Role::WindowsRoot)
        .or_else(|| cands.iter().position(|c| c.role == Role::LinuxRoot));
    if let Some(i) = root {
        if cands[i].role == Role::WindowsRoot {
            let c = &mut cands[i];
            let location = c.location.clone();
            let fs = c.fs.as_mut().expect("a root has an open filesystem");
            let (w, machine) = windows::probe(fs.as_mut(), location, limits);
            facts.os = Some(OsFacts::Windows(w));
            facts.os_machine = machine;
        } else {
            let (l, machine) = probe_linux(&mut cands, i, limits);
            facts.os = Some(OsFacts::Linux(l));
            facts.os_machine = machine;
        }
    }
    assemble(server, &facts, reports)
}

fn candidate(
    location: String,
    volume: Volume,
    disk: &Rc<Disk>,
    index: usize,
    partition: Option<Partition>,
) -> Candidate {
    let kind = detect(&volume);
    Candidate {
        location,
        volume,
        disk: index,
        disk_rc: disk.clone(),
        role: Role::Other,
        partition,
        kind,
        lv_names: Vec::new(),
        fs: None,
        uuid: None,
        label: None,
    }
}

fn logical_volumes(cands: &[Candidate], facts: &mut Facts, limits: &Limits) -> Vec<Candidate> {
    // Physical volumes by label UUID; volume groups by name, newest metadata (seqno) first.
    let mut pvs: BTreeMap<String, usize> = BTreeMap::new();
    let mut vgs: BTreeMap<String, (i64, lvm::Val)> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.kind != Some(FsKind::Lvm2) {
            continue;
        }
        let Some(label) = lvm::read_label(&c.volume) else {
            facts
                .unreadable
                .push(format!("{}: LVM label unreadable", c.location));
            continue;
        };
        pvs.insert(label.uuid.clone(), i);
        let parsed = lvm::read_metadata(&c.volume, &label, limits.max_lvm_metadata)
            .and_then(|t| lvm::parse(&t, limits.max_depth));
        match parsed {
            Ok(items) => {
                for (name, vg) in items {
                    if let lvm::Val::Section(_) = &vg {
                        let seq = vg.int("seqno").unwrap_or(0);
                        if vgs.get(&name).is_none_or(|(s, _)| seq > *s) {
                            vgs.insert(name, (seq, vg));
                        }
                    }
                }
            }
            Err(e) => facts.unreadable.push(format!("{}: {e}", c.location)),
        }
    }
    let items: Vec<(String, lvm::Val)> = vgs.into_iter().map(|(n, (_, v))| (n, v)).collect();
    let mut out = Vec::new();
    for lv in lvm::logical_volumes(&items) {
        let location = format!("LVM volume {}/{}", lv.vg, lv.name);
        let map = match &lv.map {
            Ok(m) => m,
            Err(e) => {
                facts.unreadable.push(format!("{location}: {e}"));
                continue;
            }
        };
        let mut segments = Vec::new();
        let mut owner = None;
        for s in map {
            let Some(pv) = pvs.get(&s.pv_uuid).map(|&i| &cands[i]) else {
                facts.unreadable.push(format!(
                    "{location} lies on a physical volume that is not on this server's disks"
                ));
                segments.clear();
                break;
            };
            let start = pv.partition.as_ref().map_or(0, |p| p.start);
            if s.pv_offset.saturating_add(s.len) > pv.volume.size() {
                facts
                    .unreadable
                    .push(format!("{location} extends past its physical volume"));
                segments.clear();
                break;
            }
            owner.get_or_insert((pv.disk_rc.clone(), pv.disk));
            // Physical volumes are partitions or whole disks: one segment each.
            segments.push(Segment {
                disk: pv.disk_rc.clone(),
                disk_offset: start + s.pv_offset,
                len: s.len,
            });
        }
        let Some((disk, index)) = owner.filter(|_| !segments.is_empty()) else {
            continue;
        };
        let volume = Volume::new(segments, disk.budget().clone());
        let mut c = candidate(location, volume, &disk, index, None);
        c.lv_names = lv.device_names().to_vec();
        out.push(c);
    }
    out
}

/// Opens every readable filesystem and gives it a role; what cannot be read is recorded.
fn open_filesystems(cands: &mut [Candidate], facts: &mut Facts, limits: &Limits) {
    for c in cands.iter_mut() {
        let Some(kind) = c.kind else { continue };
        if let Some(reason) = kind.unreadable_reason() {
            facts
                .unreadable
                .push(format!("{} holds {reason}", c.location));
            continue;
        }
        let opened: Result<Box<dyn GuestFs>, String> = match kind {
            FsKind::Ntfs => NtfsFs::open(&c.volume)
                .map(|f| Box::new(f) as Box<dyn GuestFs>)
                .map_err(|e| e.0),
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => ExtFs::open(&c.volume)
                .map(|f| {
                    c.uuid = Some(f.uuid());
                    c.label = Some(f.label());
                    Box::new(f) as Box<dyn GuestFs>
                })
                .map_err(|e| e.0),
            FsKind::Fat => FatFs::open(c.volume.clone(), limits.max_dir_entries)
                .map(|f| {
                    c.uuid = Some(f.geometry().uuid());
                    Box::new(f) as Box<dyn GuestFs>
                })
                .map_err(|e| e.0),
            _ => continue,
        };
        let mut fs = match opened {
            Ok(fs) => fs,
            Err(e) => {
                facts
                    .unreadable
                    .push(format!("{} ({}): {e}", c.location, kind.as_str()));
                continue;
            }
        };
        let has = |fs: &mut Box<dyn GuestFs>, p: &str| fs.exists(p).unwrap_or(false);
        c.role = match kind {
            FsKind::Ntfs if has(&mut fs, windows::SYSTEM_HIVE) => Role::WindowsRoot,
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 if linux::is_root(fs.as_mut()) => {
                Role::LinuxRoot
            }
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4
                if has(&mut fs, "/grub")
                    || has(&mut fs, "/grub2")
                    || has(&mut fs, "/loader/entries") =>
            {
                Role::Boot
            }
            FsKind::Fat if has(&mut fs, "/EFI") => Role::Esp,
            _ => Role::Other,
        };
        c.fs = Some(fs);
    }
}

const UEFI_LOADERS: &[&str] = &[
    "/EFI/BOOT/BOOTX64.EFI",
    "/EFI/BOOT/BOOTAA64.EFI",
    "/EFI/Microsoft/Boot/bootmgfw.efi",
];

/// Boot mode evidence on the boot disk: a UEFI loader on an EFI system partition, BIOS boot
/// code with an active partition or a BIOS boot partition.
fn boot_facts(
    table: Option<&PartitionTable>,
    cands: &mut [Candidate],
    loader: &mut Option<Machine>,
) -> BootFacts {
    let mut b = BootFacts {
        table_read: table.is_some(),
        ..Default::default()
    };
    if let Some(t) = table
        && t.boot_code
    {
        let active = t.partitions.iter().any(|p| p.active);
        let bios_part = t.partitions.iter().any(|p| p.kind.is_bios_boot());
        b.bios = match t.kind {
            TableKind::Mbr if active => Some("MBR boot code and an active partition".into()),
            TableKind::Gpt if bios_part => {
                Some("boot code in the protective MBR and a BIOS boot partition".into())
            }
            _ => None,
        };
    }
    for c in cands.iter_mut().filter(|c| c.disk == 0) {
        let esp_type = c.partition.as_ref().is_some_and(|p| p.kind.is_efi_system());
        if !esp_type && c.role != Role::Esp {
            continue;
        }
        let Some(fs) = c.fs.as_mut() else {
            if esp_type {
                b.esp_unreadable.get_or_insert_with(|| {
                    format!("{} is not a readable FAT filesystem", c.location)
                });
            }
            continue;
        };
        let mut paths: Vec<String> = UEFI_LOADERS.iter().map(|s| s.to_string()).collect();
        if let Ok(Some(dirs)) = fs.list_dir("/EFI", 64) {
            for d in dirs.iter().filter(|d| d.is_dir) {
                for f in ["shimx64.efi", "grubx64.efi", "shimaa64.efi", "grubaa64.efi"] {
                    paths.push(format!("/EFI/{}/{f}", d.name));
                }
            }
        }
        for p in paths {
            let mut machine = None;
            match fs.with_file(&p, &mut |f| {
                machine = pe_machine(&read_head(f, 4096)?);
                Ok(())
            }) {
                Ok(true) => {
                    b.uefi_loader = Some(p.replace('/', "\\"));
                    *loader = machine.or_else(|| {
                        let l = p.to_ascii_lowercase();
                        if l.contains("aa64") {
                            Some(Machine::Arm64)
                        } else if l.contains("x64") {
                            Some(Machine::X86_64)
                        } else {
                            None
                        }
                    });
                    return b;
                }
                Ok(false) => {}
                Err(e) => {
                    b.esp_unreadable = Some(format!("{}: {e}", c.location));
                }
            }
        }
    }
    b
}

/// Mounts /boot and /boot/efi as the root's fstab says (or as found), then probes Linux.
fn probe_linux(
    cands: &mut [Candidate],
    root: usize,
    limits: &Limits,
) -> (super::facts::LinuxFacts, Option<(String, Machine)>) {
    let location = cands[root].location.clone();
    let mut root_fs = cands[root]
        .fs
        .take()
        .expect("a root has an open filesystem");
    let mut unreadable = Vec::new();
    let fstab = match root_fs.read_text("/etc/fstab", limits.max_text_file) {
        Ok(t) => linux::parse_fstab(&t.unwrap_or_default()),
        Err(e) => {
            unreadable.push(e.to_string());
            Vec::new()
        }
    };
    let root_has_boot = root_fs.exists("/boot/grub").unwrap_or(false)
        || root_fs.exists("/boot/grub2").unwrap_or(false)
        || root_fs.exists("/boot/loader/entries").unwrap_or(false);
    let mut mounts = linux::Mounts::new(root_fs);
    for at in ["/boot", "/boot/efi"] {
        let wanted = fstab.iter().find(|e| e.mountpoint == at);
        let found = match wanted {
            Some(e) => cands
                .iter()
                .position(|c| c.fs.is_some() && c.matches(&e.spec)),
            None if at == "/boot" && !root_has_boot => cands
                .iter()
                .position(|c| c.role == Role::Boot && c.fs.is_some()),
            None if at == "/boot/efi" => cands
                .iter()
                .position(|c| c.role == Role::Esp && c.disk == 0 && c.fs.is_some()),
            None => None,
        };
        match (found, wanted) {
            (Some(i), _) => mounts.mount(at, cands[i].fs.take().expect("checked")),
            (None, Some(e)) => unreadable.push(format!(
                "{at} ({}) is not a readable filesystem on this server's disks",
                e.spec
            )),
            (None, None) => {}
        }
    }
    let (mut l, machine) = linux::probe(&mut mounts, location, &fstab, limits);
    l.unreadable.extend(unreadable);
    (l, machine)
}
