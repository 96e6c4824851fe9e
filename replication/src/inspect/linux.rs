//! Linux facts from the root filesystem (with /boot and the EFI system partition mounted where
//! /etc/fstab says): os-release, kernels, the boot loader's default kernel, its built-in and
//! loadable modules, its initramfs, cloud-init, and device names in fstab and on the kernel
//! command line.

use super::binfmt::{Machine, elf_machine};
use super::bootcfg::{self, BootEntry, kernel_version};
use super::facts::{Agent, FstabEntry, LinuxFacts, Module};
use super::guestfs::{DirEntry, FsError, GuestFs};
use super::initramfs::{self, module_name};
use super::io::{FileRead, FileStream, read_head};
use super::limits::Limits;

/// Filesystems mounted at their guest mount points; paths go to the longest matching one.
pub struct Mounts {
    mounts: Vec<(String, Box<dyn GuestFs>)>,
}

impl Mounts {
    pub fn new(root: Box<dyn GuestFs>) -> Mounts {
        Mounts {
            mounts: vec![("/".into(), root)],
        }
    }

    pub fn mount(&mut self, at: &str, fs: Box<dyn GuestFs>) {
        self.mounts.push((at.trim_end_matches('/').to_string(), fs));
        self.mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    }

    fn route(&mut self, path: &str) -> (&mut dyn GuestFs, String) {
        let i = self
            .mounts
            .iter()
            .position(|(m, _)| m == "/" || path == m || path.starts_with(&format!("{m}/")))
            .unwrap_or(self.mounts.len() - 1);
        let (m, fs) = &mut self.mounts[i];
        let rest = if m == "/" {
            path.to_string()
        } else {
            path[m.len()..].to_string()
        };
        let rest = if rest.is_empty() {
            "/".to_string()
        } else {
            rest
        };
        (fs.as_mut(), rest)
    }
}

impl GuestFs for Mounts {
    fn with_file(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(&mut dyn FileRead) -> Result<(), FsError>,
    ) -> Result<bool, FsError> {
        let (fs, p) = self.route(path);
        fs.with_file(&p, f)
    }
    fn list_dir(&mut self, path: &str, max: usize) -> Result<Option<Vec<DirEntry>>, FsError> {
        let (fs, p) = self.route(path);
        fs.list_dir(&p, max)
    }
    fn exists(&mut self, path: &str) -> Result<bool, FsError> {
        let (fs, p) = self.route(path);
        fs.exists(&p)
    }
    fn read_link(&mut self, path: &str) -> Result<Option<String>, FsError> {
        let (fs, p) = self.route(path);
        fs.read_link(&p)
    }
}

/// Whether a filesystem is a Linux root.
pub fn is_root(fs: &mut dyn GuestFs) -> bool {
    let any =
        |fs: &mut dyn GuestFs, paths: &[&str]| paths.iter().any(|p| fs.exists(p).unwrap_or(false));
    any(
        fs,
        &[
            "/etc/os-release",
            "/usr/lib/os-release",
            "/etc/redhat-release",
            "/etc/system-release",
        ],
    ) || (any(fs, &["/etc/fstab"]) && any(fs, &["/bin", "/usr/bin", "/sbin"]))
}

/// Parses /etc/fstab.
pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let opts = f.get(3).copied().unwrap_or("defaults");
            if opts.split(',').any(|o| o == "noauto") {
                return None;
            }
            Some(FstabEntry {
                spec: f.first()?.to_string(),
                mountpoint: f.get(1)?.to_string(),
                fstype: f.get(2).copied().unwrap_or("auto").to_string(),
                nofail: opts.split(',').any(|o| o == "nofail"),
            })
        })
        .collect()
}

/// `NAME` and `VERSION_ID` of an os-release file.
fn os_release(text: &str) -> (Option<String>, Option<String>) {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    (get("NAME"), get("VERSION_ID"))
}

/// `Red Hat Enterprise Linux Server release 6.10 (Santiago)` -> (name, version).
fn release_line(text: &str) -> (String, Option<String>) {
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(" release ") {
        Some((name, rest)) => (
            name.to_string(),
            rest.split_whitespace().next().map(str::to_string),
        ),
        None => (line.to_string(), None),
    }
}

fn name_and_version(
    fs: &mut dyn GuestFs,
    limits: &Limits,
    unreadable: &mut Vec<String>,
) -> (String, Option<String>) {
    let mut text = |path: &str| match fs.read_text(path, limits.max_text_file) {
        Ok(t) => t,
        Err(e) => {
            unreadable.push(e.to_string());
            None
        }
    };
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(t) = text(path) {
            let (name, version) = os_release(&t);
            if let Some(name) = name {
                return (name, version);
            }
        }
    }
    for path in [
        "/etc/redhat-release",
        "/etc/system-release",
        "/etc/SuSE-release",
    ] {
        if let Some(t) = text(path) {
            return release_line(&t);
        }
    }
    if let Some(v) = text("/etc/debian_version") {
        return ("Debian".into(), Some(v.trim().to_string()));
    }
    ("Linux".into(), None)
}

/// Kernels: versions under /lib/modules and vmlinuz-* under /boot.
fn kernels(fs: &mut dyn GuestFs, limits: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["/lib/modules", "/usr/lib/modules"] {
        if let Ok(Some(entries)) = fs.list_dir(dir, limits.max_dir_entries) {
            out.extend(entries.into_iter().filter(|e| e.is_dir).map(|e| e.name));
        }
    }
    if let Ok(Some(entries)) = fs.list_dir("/boot", limits.max_dir_entries) {
        out.extend(entries.iter().filter_map(|e| kernel_version(&e.name)));
    }
    out.sort_by(|a, b| bootcfg::version_cmp(a, b));
    out.dedup();
    out
}

/// The boot loader's default entry and the file it came from.
fn default_entry(fs: &mut dyn GuestFs, limits: &Limits) -> Option<(BootEntry, String)> {
    let max = limits.max_text_file;
    let mut text = |p: &str| fs.read_text(p, max).ok().flatten();
    let env = text("/boot/grub2/grubenv")
        .or_else(|| text("/boot/grub/grubenv"))
        .unwrap_or_default();
    let saved = bootcfg::grubenv(&env, "saved_entry");
    let kernelopts = bootcfg::grubenv(&env, "kernelopts");
    let mut grub_cfgs: Vec<String> =
        vec!["/boot/grub2/grub.cfg".into(), "/boot/grub/grub.cfg".into()];
    if let Ok(Some(dirs)) = fs.list_dir("/boot/efi/EFI", 64) {
        grub_cfgs.extend(
            dirs.into_iter()
                .filter(|d| d.is_dir)
                .map(|d| format!("/boot/efi/EFI/{}/grub.cfg", d.name)),
        );
    }
    for path in &grub_cfgs {
        let Some(cfg) = fs.read_text(path, max).ok().flatten() else {
            continue;
        };
        if let Some(e) = bootcfg::grub2_default(&cfg, saved.as_deref(), limits.max_depth) {
            return Some((e, path.clone()));
        }
    }
    if let Ok(Some(entries)) = fs.list_dir("/boot/loader/entries", limits.max_dir_entries) {
        let mut names: Vec<String> = entries
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n.ends_with(".conf"))
            .collect();
        names.sort_by(|a, b| bootcfg::version_cmp(b, a));
        let chosen = saved
            .as_ref()
            .and_then(|s| names.iter().find(|n| n.trim_end_matches(".conf") == s))
            .or(names.first())
            .cloned();
        if let Some(name) = chosen {
            let path = format!("/boot/loader/entries/{name}");
            if let Some(e) = fs
                .read_text(&path, max)
                .ok()
                .flatten()
                .and_then(|t| bootcfg::bls_entry(&t, kernelopts.as_deref()))
            {
                return Some((e, path));
            }
        }
    }
    for path in ["/boot/grub/grub.conf", "/boot/grub/menu.lst"] {
        if let Some(e) = fs
            .read_text(path, max)
            .ok()
            .flatten()
            .and_then(|t| bootcfg::grub_legacy_default(&t))
        {
            return Some((e, path.to_string()));
        }
    }
    None
}

/// Module names listed in modules.builtin / modules.dep (`path.ko[.xz]: deps`).
fn listed(text: &str, wanted: &str) -> bool {
    text.lines().any(|l| {
        let path = l.split(':').next().unwrap_or("");
        path.rsplit('/').next().and_then(module_name).as_deref() == Some(wanted)
    })
}

/// `CONFIG_X=y|m` of a kernel config.
fn config(text: &str, key: &str) -> Option<char> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.chars().next())
}

struct ModuleLists {
    builtin: Option<String>,
    dep: Option<String>,
    config: Option<String>,
}

impl ModuleLists {
    /// Built in, in the tree, absent, or unknown (no lists to tell).
    fn state(&self, name: &str, config_key: &str) -> Module {
        if self.builtin.as_deref().is_some_and(|t| listed(t, name)) {
            return Module::BuiltIn;
        }
        if self.dep.as_deref().is_some_and(|t| listed(t, name)) {
            return Module::Tree;
        }
        match self.config.as_deref().and_then(|c| config(c, config_key)) {
            Some('y') => return Module::BuiltIn,
            Some('m') if self.dep.is_none() => return Module::Tree,
            _ => {}
        }
        if self.dep.is_some() {
            Module::Missing
        } else {
            Module::Unknown(format!(
                "no modules.dep or kernel config to tell whether {name} exists"
            ))
        }
    }
}

fn elf_of(fs: &mut dyn GuestFs) -> Option<(String, Machine)> {
    for path in ["/bin/sh", "/usr/bin/sh", "/sbin/init", "/usr/bin/env"] {
        let mut m = None;
        if fs
            .with_file(path, &mut |f| {
                m = elf_machine(&read_head(f, 64)?);
                Ok(())
            })
            .unwrap_or(false)
            && let Some(m) = m
        {
            return Some((path.to_string(), m));
        }
    }
    None
}

fn cloud_init(fs: &mut dyn GuestFs, limits: &Limits) -> Agent {
    let exists = |fs: &mut dyn GuestFs, p: &str| fs.exists(p).unwrap_or(false);
    let installed = [
        "/usr/bin/cloud-init",
        "/usr/local/bin/cloud-init",
        "/etc/cloud/cloud.cfg",
    ]
    .iter()
    .any(|p| exists(fs, p));
    if !installed {
        return Agent::Missing;
    }
    if exists(fs, "/etc/cloud/cloud-init.disabled") {
        return Agent::Disabled("cloud-init is disabled by /etc/cloud/cloud-init.disabled".into());
    }
    if fs
        .read_link("/etc/systemd/system/cloud-init.service")
        .ok()
        .flatten()
        .as_deref()
        == Some("/dev/null")
    {
        return Agent::Disabled("cloud-init.service is masked".into());
    }
    // The last datasource_list wins: cloud.cfg, then cloud.cfg.d/*.cfg in name order.
    let mut files = vec!["/etc/cloud/cloud.cfg".to_string()];
    if let Ok(Some(mut d)) = fs.list_dir("/etc/cloud/cloud.cfg.d", 256) {
        d.sort_by(|a, b| a.name.cmp(&b.name));
        files.extend(
            d.into_iter()
                .filter(|e| e.name.ends_with(".cfg"))
                .map(|e| format!("/etc/cloud/cloud.cfg.d/{}", e.name)),
        );
    }
    let mut list = None;
    for f in files {
        if let Ok(Some(t)) = fs.read_text(&f, limits.max_text_file) {
            for l in t.lines() {
                if let Some(v) = l.trim().strip_prefix("datasource_list:") {
                    list = Some(v.trim().trim_matches(['[', ']']).to_string());
                }
            }
        }
    }
    if let Some(l) = list
        && !l
            .split(',')
            .any(|d| d.trim().trim_matches(['"', '\'']) == "Ec2")
    {
        return Agent::Disabled(format!(
            "cloud-init's datasource_list [{l}] does not include Ec2"
        ));
    }
    Agent::Found("cloud-init".into())
}

/// Finds the initramfs of kernel `k` and scans it for the storage modules.
fn scan_initramfs(
    fs: &mut dyn GuestFs,
    k: &str,
    entry: Option<&BootEntry>,
    limits: &Limits,
) -> (Option<String>, Result<initramfs::InitramfsScan, String>) {
    let mut candidates = Vec::new();
    if let Some(i) = entry
        .and_then(|e| e.initrd.as_deref())
        .filter(|i| !i.starts_with('$'))
    {
        candidates.push(format!("/boot/{}", i.rsplit('/').next().unwrap_or(i)));
    }
    for pattern in [
        "initrd.img-{}",
        "initramfs-{}.img",
        "initrd-{}",
        "initramfs-{}",
        "initrd-{}.img",
    ] {
        candidates.push(format!("/boot/{}", pattern.replace("{}", k)));
    }
    for path in candidates {
        let mut result = None;
        let found = fs.with_file(&path, &mut |file| {
            if file.size() > limits.max_initramfs_file {
                result = Some(Err(format!(
                    "{path} is larger than {} MiB",
                    limits.max_initramfs_file >> 20
                )));
                return Ok(());
            }
            let stream = std::io::BufReader::with_capacity(64 << 10, FileStream::new(file));
            result = Some(initramfs::scan(stream, &["nvme", "xen_blkfront"], limits));
            Ok(())
        });
        match found {
            Ok(true) => {
                let r = result.unwrap_or_else(|| Err("not read".into()));
                return (Some(path.clone()), r.map_err(|e| format!("{path}: {e}")));
            }
            Ok(false) => continue,
            Err(e) => return (Some(path.clone()), Err(format!("{path}: {e}"))),
        }
    }
    (None, Ok(Default::default()))
}

/// Gathers the facts of a Linux system; `fs` has /boot and /boot/efi mounted when separate.
pub fn probe(
    fs: &mut dyn GuestFs,
    location: String,
    fstab: &[FstabEntry],
    limits: &Limits,
) -> (LinuxFacts, Option<(String, Machine)>) {
    let mut l = LinuxFacts {
        location,
        ..Default::default()
    };
    let (name, version) = name_and_version(fs, limits, &mut l.unreadable);
    l.name = name;
    l.version = version;
    l.kernels = kernels(fs, limits);
    let entry = default_entry(fs, limits);
    let mut default = None;
    if let Some((e, src)) = &entry {
        let mut version = kernel_version(&e.kernel);
        if version.is_none() {
            // `/vmlinuz` is often a symbolic link to the versioned file.
            let path = if e.kernel.starts_with("/boot") {
                e.kernel.clone()
            } else {
                format!("/boot{}", e.kernel)
            };
            for p in [path, e.kernel.clone()] {
                if let Ok(Some(target)) = fs.read_link(&p) {
                    version = kernel_version(&target);
                    break;
                }
            }
        }
        if let Some(v) = version {
            default = Some(v);
            l.default_from = Some(src.clone());
        }
        l.root_device_name = bootcfg::root_device_name(&e.cmdline);
    }
    if default.is_none() {
        default = l.kernels.last().cloned();
    }
    l.default_kernel = default.clone();
    l.fstab_device_names = fstab
        .iter()
        .filter(|e| bootcfg::is_kernel_device_name(&e.spec))
        .cloned()
        .collect();
    l.agent = Some(cloud_init(fs, limits));
    if let Some(k) = default {
        let max = limits.max_text_file * 4;
        let mut read = |p: String| match fs.read_text(&p, max) {
            Ok(t) => t,
            Err(e) => {
                l.unreadable.push(e.to_string());
                None
            }
        };
        let lists = ModuleLists {
            builtin: read(format!("/lib/modules/{k}/modules.builtin")),
            dep: read(format!("/lib/modules/{k}/modules.dep")),
            config: read(format!("/boot/config-{k}")),
        };
        let nvme = lists.state("nvme", "CONFIG_BLK_DEV_NVME");
        let xen = lists.state("xen_blkfront", "CONFIG_XEN_BLKDEV_FRONTEND");
        l.ena = Some(lists.state("ena", "CONFIG_ENA_ETHERNET"));
        let need_scan = !matches!(nvme, Module::BuiltIn) || !matches!(xen, Module::BuiltIn);
        let (path, scan) = if need_scan {
            scan_initramfs(fs, &k, entry.as_ref().map(|(e, _)| e), limits)
        } else {
            (None, Ok(Default::default()))
        };
        l.initramfs = path.clone();
        let in_initramfs = |m: Module, name: &str| match (&m, &scan) {
            (Module::BuiltIn, _) => m,
            (_, Ok(s)) if s.modules.contains(name) => Module::Initramfs,
            (Module::Tree | Module::Unknown(_), Err(e)) => {
                Module::Unknown(format!("initramfs unreadable: {e}"))
            }
            (Module::Tree, Ok(_)) if path.is_none() => Module::Tree,
            _ => m,
        };
        l.nvme = Some(in_initramfs(nvme, "nvme"));
        l.xen_blk = Some(in_initramfs(xen, "xen_blkfront"));
    } else {
        for m in [&mut l.nvme, &mut l.ena, &mut l.xen_blk] {
            *m = Some(Module::Unknown("no kernel found".into()));
        }
    }
    let machine = elf_of(fs);
    (l, machine)
}
