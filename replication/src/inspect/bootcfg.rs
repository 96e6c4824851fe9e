//! Which kernel boots by default, from the boot loader's own configuration: GRUB 2 (`grub.cfg`
//! with `set default`, submenus and `grubenv`'s saved_entry), Boot Loader Specification entries
//! (RHEL 8+, Fedora), and GRUB legacy (`grub.conf`/`menu.lst`, RHEL 6 and older). Pure text
//! parsing, bounded in nesting.

/// A boot entry: the kernel and initrd paths as the configuration writes them, and the command
/// line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootEntry {
    pub title: String,
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
}

/// The kernel version in a kernel path: `/boot/vmlinuz-5.10.0-28-amd64` -> `5.10.0-28-amd64`.
pub fn kernel_version(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    ["vmlinuz-", "vmlinux-", "bzImage-", "Image-", "kernel-"]
        .iter()
        .find_map(|p| base.strip_prefix(p))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `KEY=value` lines of grubenv.
pub fn grubenv(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
        .filter(|v| !v.is_empty())
}

/// Splits a line into words, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[derive(Debug, Default)]
struct Menu {
    items: Vec<Item>,
}

#[derive(Debug)]
enum Item {
    Entry {
        id: Option<String>,
        entry: BootEntry,
    },
    Sub {
        title: String,
        id: Option<String>,
        menu: Menu,
    },
}

/// The id given with `--id` or `$menuentry_id_option`.
fn entry_id(w: &[String]) -> Option<String> {
    w.iter()
        .position(|x| x == "--id" || x == "$menuentry_id_option")
        .and_then(|i| w.get(i + 1).cloned())
}

/// A submenu being parsed: its title and id.
type SubmenuHead = (String, Option<String>);

/// Parses grub.cfg into its menu and the last `set default=` outside `next_entry` handling.
fn parse_grub2(text: &str, max_depth: usize) -> (Menu, Option<String>) {
    let mut stack: Vec<(Menu, Option<SubmenuHead>)> = vec![(Menu::default(), None)];
    let mut current: Option<(Option<String>, BootEntry)> = None;
    let mut default = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let w = words(line);
        let Some(first) = w.first().map(String::as_str) else {
            continue;
        };
        if let Some((_, entry)) = current.as_mut() {
            match first {
                "linux" | "linuxefi" | "linux16" if w.len() > 1 => {
                    entry.kernel = w[1].clone();
                    entry.cmdline = w[2..].join(" ");
                }
                "initrd" | "initrdefi" | "initrd16" if w.len() > 1 => {
                    // Microcode images come first; the kernel's own initrd is the last one.
                    entry.initrd = w.last().cloned();
                }
                "}" => {
                    let (id, entry) = current.take().expect("checked above");
                    if let Some((menu, _)) = stack.last_mut() {
                        menu.items.push(Item::Entry { id, entry });
                    }
                }
                _ => {}
            }
            continue;
        }
        match first {
            "menuentry" => {
                let title = w.get(1).cloned().unwrap_or_default();
                current = Some((
                    entry_id(&w),
                    BootEntry {
                        title,
                        ..Default::default()
                    },
                ));
            }
            "submenu" if stack.len() <= max_depth => {
                let title = w.get(1).cloned().unwrap_or_default();
                stack.push((Menu::default(), Some((title, entry_id(&w)))));
            }
            "}" if stack.len() > 1 => {
                let (menu, head) = stack.pop().expect("more than one");
                if let (Some((title, id)), Some((parent, _))) = (head, stack.last_mut()) {
                    parent.items.push(Item::Sub { title, id, menu });
                }
            }
            "set" => {
                if let Some(v) = w.get(1).and_then(|a| a.strip_prefix("default="))
                    && !v.contains("next_entry")
                {
                    default = Some(v.to_string());
                }
            }
            _ => {}
        }
    }
    while stack.len() > 1 {
        let (menu, head) = stack.pop().expect("more than one");
        if let (Some((title, id)), Some((parent, _))) = (head, stack.last_mut()) {
            parent.items.push(Item::Sub { title, id, menu });
        }
    }
    (stack.pop().map(|(m, _)| m).unwrap_or_default(), default)
}

fn choose<'m>(menu: &'m Menu, path: &str) -> Option<&'m BootEntry> {
    let mut menu = menu;
    let parts: Vec<&str> = path.split('>').collect();
    for (i, part) in parts.iter().enumerate() {
        let item = match part.parse::<usize>() {
            Ok(n) => menu.items.get(n)?,
            Err(_) => menu.items.iter().find(|it| match it {
                Item::Entry { id, entry } => entry.title == *part || id.as_deref() == Some(part),
                Item::Sub { title, id, .. } => title == part || id.as_deref() == Some(part),
            })?,
        };
        match item {
            Item::Entry { entry, .. } if i + 1 == parts.len() => return Some(entry),
            Item::Sub { menu: sub, .. } if i + 1 < parts.len() => menu = sub,
            // "1" naming a submenu boots its first entry.
            Item::Sub { menu: sub, .. } => return first(sub),
            Item::Entry { .. } => return None,
        }
    }
    None
}

fn first(menu: &Menu) -> Option<&BootEntry> {
    menu.items.iter().find_map(|it| match it {
        Item::Entry { entry, .. } => Some(entry),
        Item::Sub { menu, .. } => first(menu),
    })
}

/// The default entry of a grub.cfg. `saved_entry` comes from grubenv. `None` when the file has
/// no menu entries (a stub pointing elsewhere, or BLS-only).
pub fn grub2_default(text: &str, saved_entry: Option<&str>, max_depth: usize) -> Option<BootEntry> {
    let (menu, default) = parse_grub2(text, max_depth);
    let default = match default.as_deref() {
        None => "0".to_string(),
        Some(d) if d.contains("saved_entry") || d == "saved" => {
            saved_entry.unwrap_or("0").to_string()
        }
        Some(d) => d.to_string(),
    };
    choose(&menu, &default).or_else(|| first(&menu)).cloned()
}

/// A Boot Loader Specification entry (`/boot/loader/entries/*.conf`). `$kernelopts` in its
/// options comes from grubenv.
pub fn bls_entry(text: &str, kernelopts: Option<&str>) -> Option<BootEntry> {
    let mut e = BootEntry::default();
    for line in text.lines() {
        let line = line.trim();
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "title" => e.title = value.to_string(),
            "linux" => e.kernel = value.to_string(),
            "initrd" => e.initrd = value.split_whitespace().last().map(str::to_string),
            "options" => e.cmdline = value.replace("$kernelopts", kernelopts.unwrap_or("")),
            _ => {}
        }
    }
    (!e.kernel.is_empty()).then_some(e)
}

/// Orders version strings the way humans (and BLS) do: numeric runs compare as numbers.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut num = String::new();
        let mut text = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !text.is_empty() {
                    out.push((0, std::mem::take(&mut text)));
                }
                num.push(c);
            } else {
                if !num.is_empty() {
                    out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                    num.clear();
                }
                text.push(c);
            }
        }
        if !num.is_empty() {
            out.push((num.parse().unwrap_or(u64::MAX), String::new()));
        }
        if !text.is_empty() {
            out.push((0, text));
        }
        out
    };
    split(a).cmp(&split(b))
}

/// The default entry of a GRUB legacy configuration (`default=N`, `title`, `kernel`, `initrd`).
pub fn grub_legacy_default(text: &str) -> Option<BootEntry> {
    let mut default = 0usize;
    let mut entries: Vec<BootEntry> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(['=', ' ', '\t'])
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((line, ""));
        match key {
            "default" => default = value.parse().unwrap_or(0),
            "title" => entries.push(BootEntry {
                title: value.to_string(),
                ..Default::default()
            }),
            "kernel" => {
                if let Some(e) = entries.last_mut() {
                    let mut w = value.split_whitespace();
                    e.kernel = w.next().unwrap_or("").to_string();
                    e.cmdline = w.collect::<Vec<_>>().join(" ");
                }
            }
            "initrd" => {
                if let Some(e) = entries.last_mut() {
                    e.initrd = Some(value.to_string());
                }
            }
            _ => {}
        }
    }
    entries
        .into_iter()
        .filter(|e| !e.kernel.is_empty())
        .nth(default)
}

/// `root=` of a command line when it names a kernel device (`/dev/sda1`, `/dev/xvda1`...).
pub fn root_device_name(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("root="))
        .filter(|r| is_kernel_device_name(r))
        .map(str::to_string)
}

/// Whether a device path is a kernel name that changes on Nitro (SCSI, IDE, Xen, virtio).
pub fn is_kernel_device_name(spec: &str) -> bool {
    let Some(name) = spec.strip_prefix("/dev/") else {
        return false;
    };
    ["sd", "hd", "xvd", "vd"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
            letters > 0 && rest[letters..].chars().all(|c| c.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
else
   set default="0"
fi
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-abc' {
	linux	/boot/vmlinuz-6.1.0-18-amd64 root=UUID=abc ro quiet
	initrd	/boot/initrd.img-6.1.0-18-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-abc' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-18-amd64' $menuentry_id_option 'gnulinux-6.1.0-18-amd64-advanced-abc' {
		linux	/boot/vmlinuz-6.1.0-18-amd64 root=UUID=abc ro quiet
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-9-amd64' $menuentry_id_option 'gnulinux-6.1.0-9-amd64-advanced-abc' {
		linux	/boot/vmlinuz-6.1.0-9-amd64 root=/dev/sda1 ro quiet
		initrd	/boot/initrd.img-6.1.0-9-amd64
	}
}
"#;

    #[test]
    fn grub2_default_by_index_title_id_and_saved_entry() {
        let e = grub2_default(DEBIAN, None, 8).unwrap();
        assert_eq!(kernel_version(&e.kernel).as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(e.initrd.as_deref(), Some("/boot/initrd.img-6.1.0-18-amd64"));
        let cfg = DEBIAN.replace("set default=\"0\"", "set default=\"${saved_entry}\"");
        let e = grub2_default(
            &cfg,
            Some("gnulinux-advanced-abc>gnulinux-6.1.0-9-amd64-advanced-abc"),
            8,
        )
        .unwrap();
        assert_eq!(kernel_version(&e.kernel).as_deref(), Some("6.1.0-9-amd64"));
        assert_eq!(root_device_name(&e.cmdline).as_deref(), Some("/dev/sda1"));
        let e = grub2_default(&cfg, Some("1>1"), 8).unwrap();
        assert_eq!(kernel_version(&e.kernel).as_deref(), Some("6.1.0-9-amd64"));
        let e = grub2_default(
            &cfg,
            Some(
                "Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-18-amd64",
            ),
            8,
        )
        .unwrap();
        assert_eq!(kernel_version(&e.kernel).as_deref(), Some("6.1.0-18-amd64"));
        // An unknown saved entry falls back to the first entry, like GRUB.
        let e = grub2_default(&cfg, Some("gone"), 8).unwrap();
        assert_eq!(kernel_version(&e.kernel).as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(grub2_default("configfile $prefix/grub.cfg", None, 8), None);
    }

    #[test]
    fn bls_legacy_and_versions() {
        let e = bls_entry("title RHEL\nversion 4.18.0\nlinux /vmlinuz-4.18.0-513.el8.x86_64\ninitrd /initramfs-4.18.0-513.el8.x86_64.img $tuned_initrd\noptions $kernelopts\n", Some("root=/dev/xvda2 ro")).unwrap();
        assert_eq!(
            kernel_version(&e.kernel).as_deref(),
            Some("4.18.0-513.el8.x86_64")
        );
        assert_eq!(e.initrd.as_deref(), Some("$tuned_initrd"));
        assert_eq!(root_device_name(&e.cmdline).as_deref(), Some("/dev/xvda2"));
        let legacy = "default=1\ntimeout=5\ntitle A\n\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=UUID=x\n\tinitrd /initramfs-2.6.32-754.el6.x86_64.img\ntitle B\n\tkernel /vmlinuz-2.6.32-696.el6.x86_64 ro root=/dev/sda1\n";
        let e = grub_legacy_default(legacy).unwrap();
        assert_eq!(
            kernel_version(&e.kernel).as_deref(),
            Some("2.6.32-696.el6.x86_64")
        );
        assert!(version_cmp("5.10.0-28", "5.10.0-9").is_gt());
        assert!(version_cmp("4.18.0-513.el8", "4.18.0-80.el8").is_gt());
        assert_eq!(
            grubenv(
                "# GRUB\nsaved_entry=abc\nkernelopts=root=x\n",
                "saved_entry"
            )
            .as_deref(),
            Some("abc")
        );
        for (name, yes) in [
            ("/dev/sda1", true),
            ("/dev/xvdf", true),
            ("/dev/hda", true),
            ("/dev/vda3", true),
            ("/dev/nvme0n1p1", false),
            ("/dev/mapper/vg-root", false),
            ("UUID=x", false),
            ("/dev/sd", false),
        ] {
            assert_eq!(is_kernel_device_name(name), yes, "{name}");
        }
    }
}
