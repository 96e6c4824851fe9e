//! The source-side preparation scripts in `launch-scripts/prepare/`, which inspection findings
//! point to. The Linux one runs here against scratch root directories: real ext4 images stand in
//! for the devices fstab names (blkid reads their UUIDs) and a stand-in `chroot` records the
//! initramfs rebuild it is asked to run. The PowerShell one cannot run on this machine (no
//! PowerShell); its guarantees that can be read from the text are checked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rehost_testkit::{scratch_dir, workspace_root};

fn script() -> PathBuf {
    workspace_root().join("launch-scripts/prepare/prepare-linux-for-ec2.sh")
}

/// A scratch system: `root/` (the prepared system), `dev/` (device images), `bin/chroot` (records
/// its arguments in `calls`).
struct Scratch {
    dir: PathBuf,
}

const ROOT_UUID: &str = "0f3c9e2a-7d41-4b8e-9a55-2c6e1d7b3a10";
const DATA_UUID: &str = "5b9d2e71-3c84-4f0a-8e6d-9a1b7c2f4e53";

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = scratch_dir("prepare", name);
        for d in ["root/etc", "dev", "bin"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let chroot = dir.join("bin/chroot");
        fs::write(
            &chroot,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\n",
                dir.join("calls").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&chroot, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join(rel)).unwrap()
    }

    /// An ext4 filesystem with a known UUID at `dev/NAME`.
    fn device(&self, name: &str, uuid: &str) {
        let path = self.dir.join("dev").join(name);
        fs::File::create(&path).unwrap().set_len(4 << 20).unwrap();
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", uuid])
            .arg(&path)
            .output()
            .expect("mkfs.ext4 runs (tests/setup.sh installs e2fsprogs)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A kernel with `nvme` built in and the given loadable modules.
    fn kernel(&self, version: &str, builtin: &[&str], modules: &[&str]) {
        let base = format!("lib/modules/{version}");
        let lines: Vec<String> = builtin
            .iter()
            .map(|m| format!("kernel/drivers/{m}/{m}.ko\n"))
            .collect();
        self.write(&format!("{base}/modules.builtin"), &lines.concat());
        for m in modules {
            self.write(&format!("{base}/kernel/drivers/{m}/{m}.ko.xz"), "");
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(script())
            .arg("--root")
            .arg(self.root())
            .arg("--dev")
            .arg(self.dir.join("dev"))
            .args(args)
            .env("PATH", path)
            .output()
            .expect("sh runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.join("calls")).unwrap_or_default()
    }

    /// Every file under root, with its bytes, for "nothing changed" comparisons.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root(), &mut out);
        out
    }
}

const FSTAB: &str = "# /etc/fstab of a VMware guest\n\
/dev/sda1  /      ext4  defaults  0 1\n\
UUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n\
/dev/sdb1\t/data\txfs\tdefaults,nofail\t0 2\n\
/dev/sdc1 /scratch ext4 defaults 0 2\n\
proc /proc proc defaults 0 0\n";

/// A current Debian-like system: initramfs-tools, `nvme` built in, `ena` loadable.
fn debian_like(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.write("etc/fstab", FSTAB);
    s.write(
        "etc/initramfs-tools/modules",
        "# modules for the initramfs\nloop\n",
    );
    s.kernel("6.1.0-18-amd64", &["nvme"], &["ena"]);
    s.device("sda1", ROOT_UUID);
    s.device("sdb1", DATA_UUID);
    s
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn dry_run_says_what_it_would_change_and_changes_nothing() {
    let s = debian_like("dry-run");
    let before = s.snapshot();
    let out = s.run(&[]);
    let text = stdout(&out);
    assert!(text.contains("would update"), "{text}");
    assert!(
        text.contains("etc/initramfs-tools/modules: add ena"),
        "{text}"
    );
    assert!(
        text.contains("would rebuild the initramfs: update-initramfs -u -k all"),
        "{text}"
    );
    assert!(
        text.contains("mount /dev/sda1, /dev/sdb1 by UUID"),
        "{text}"
    );
    assert!(text.contains("dry run: nothing was changed"), "{text}");
    assert_eq!(s.snapshot(), before, "a dry run must not change a file");
    assert_eq!(s.calls(), "", "a dry run must not rebuild the initramfs");
}

#[test]
fn apply_mounts_by_uuid_and_puts_ena_in_the_initramfs() {
    let s = debian_like("apply");
    let out = s.run(&["--apply"]);
    let fstab = s.read("etc/fstab");
    assert_eq!(
        fstab,
        format!(
            "# /etc/fstab of a VMware guest\n\
UUID={ROOT_UUID}  /      ext4  defaults  0 1\n\
UUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n\
UUID={DATA_UUID}\t/data\txfs\tdefaults,nofail\t0 2\n\
/dev/sdc1 /scratch ext4 defaults 0 2\n\
proc /proc proc defaults 0 0\n"
        ),
        "only the device field of readable devices changes; spacing is kept"
    );
    assert!(
        stderr(&out).contains("/dev/sdc1 in /etc/fstab has no readable UUID"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.read("etc/fstab.rehost-backup"), FSTAB);
    assert_eq!(
        s.read("etc/initramfs-tools/modules"),
        "# modules for the initramfs\nloop\nena\n",
        "nvme is built into this kernel: only ena is added"
    );
    assert_eq!(
        s.calls(),
        format!("{} update-initramfs -u -k all\n", s.root().display())
    );
}

#[test]
fn second_apply_changes_nothing() {
    let s = debian_like("idempotent");
    s.run(&["--apply"]);
    let after_first = s.snapshot();
    let calls = s.calls();
    let out = s.run(&["--apply"]);
    assert_eq!(s.snapshot(), after_first);
    assert_eq!(s.calls(), calls, "no second initramfs rebuild");
    assert!(
        stdout(&out).contains("already includes ena"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("update "), "{}", stdout(&out));
}

#[test]
fn dracut_systems_get_a_drop_in_with_both_drivers() {
    let s = Scratch::new("dracut");
    s.write("etc/dracut.conf", "");
    fs::create_dir_all(s.root().join("etc/dracut.conf.d")).unwrap();
    s.kernel("5.14.0-362.el9.x86_64", &[], &["nvme", "ena"]);
    s.run(&["--apply", "--skip-fstab"]);
    let conf = s.read("etc/dracut.conf.d/90-rehost-ec2.conf");
    assert!(conf.contains("add_drivers+=\" nvme ena \""), "{conf}");
    assert_eq!(
        s.calls(),
        format!("{} dracut -f --regenerate-all\n", s.root().display())
    );
    let out = s.run(&["--apply", "--skip-fstab"]);
    assert!(stdout(&out).contains("already includes nvme ena"));
}

#[test]
fn mkinitcpio_modules_list_is_extended_in_place() {
    let s = Scratch::new("mkinitcpio");
    s.write(
        "etc/mkinitcpio.conf",
        "# vim:set ft=sh\nMODULES=(ext4)\nHOOKS=(base udev autodetect)\n",
    );
    s.kernel("6.6.8-arch1-1", &[], &["nvme", "ena"]);
    s.run(&["--apply", "--skip-fstab"]);
    assert_eq!(
        s.read("etc/mkinitcpio.conf"),
        "# vim:set ft=sh\nMODULES=(ext4 nvme ena)\nHOOKS=(base udev autodetect)\n"
    );
    assert_eq!(s.calls(), format!("{} mkinitcpio -P\n", s.root().display()));
}

#[test]
fn old_kernel_without_nitro_drivers_is_reported() {
    // An old RHEL-like guest: Xen drivers only, root on /dev/sda1, root= on the kernel line.
    let s = Scratch::new("old-rhel");
    s.write("etc/dracut.conf", "");
    s.kernel(
        "2.6.32-754.el6.x86_64",
        &[],
        &["xen-blkfront", "xen-netfront"],
    );
    s.write(
        "boot/grub/grub.cfg",
        "kernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/sda1\n",
    );
    let out = s.run(&["--skip-fstab"]);
    let err = stderr(&out);
    assert!(
        err.contains("kernel 2.6.32-754.el6.x86_64 has no nvme driver"),
        "{err}"
    );
    assert!(
        err.contains("kernel 2.6.32-754.el6.x86_64 has no ena driver"),
        "{err}"
    );
    assert!(err.contains("root=/dev/... to the kernel"), "{err}");
    assert!(stdout(&out).contains("problem(s) need attention"));
}

#[test]
fn windows_script_never_downloads_and_changes_nothing_without_apply() {
    let text = fs::read_to_string(
        workspace_root().join("launch-scripts/prepare/prepare-windows-for-ec2.ps1"),
    )
    .unwrap();
    let lower = text.to_ascii_lowercase();
    for fetch in [
        "invoke-webrequest",
        "invoke-restmethod",
        "net.webclient",
        "downloadfile",
        "downloadstring",
        "start-bitstransfer",
        "bitsadmin",
        "curl",
        "wget",
        "iwr ",
    ] {
        assert!(
            !lower.contains(fetch),
            "the preparation script must not fetch anything ({fetch})"
        );
    }
    for p in [
        "$NvmeDriverPath",
        "$EnaDriverPath",
        "$EC2LaunchPath",
        "[switch]$Apply",
    ] {
        assert!(text.contains(p), "parameter {p}");
    }
    // Every command that changes the system sits behind `if ($Apply)`.
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        let changes = [
            "Set-ItemProperty",
            "Install-DriverPackage $",
            "Start-Process",
            "diskpart.exe",
        ]
        .iter()
        .any(|c| l.contains(c));
        if changes && !l.starts_with("function") {
            let context: Vec<&str> = text.lines().take(n + 1).collect();
            let guarded = context
                .iter()
                .rev()
                .take(6)
                .any(|c| c.contains("if ($Apply)"));
            assert!(guarded, "line {}: `{l}` is not guarded by -Apply", n + 1);
        }
    }
}
