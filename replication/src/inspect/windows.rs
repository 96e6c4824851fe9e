//! Windows facts from the system volume: the SOFTWARE hive (product, version, 32/64-bit), the
//! SYSTEM hive's current control set (storage and network drivers, agents), the kernel's PE
//! header, and the files the services point to.

use super::binfmt::{Machine, pe_machine};
use super::facts::{Agent, Service, WindowsFacts};
use super::guestfs::{FsError, GuestFs};
use super::hive::{Hive, HiveError, Key};
use super::io::read_head;
use super::limits::Limits;

pub const SYSTEM_HIVE: &str = "/Windows/System32/config/SYSTEM";
const SOFTWARE_HIVE: &str = "/Windows/System32/config/SOFTWARE";
const KERNEL: &str = "/Windows/System32/ntoskrnl.exe";

/// Services whose Start type and driver file decide the verdict.
const SERVICES: &[&str] = &[
    "AWSNVMe",
    "stornvme",
    "ena",
    "xenvbd",
    "rhelscsi",
    "EC2Launch",
    "Ec2Config",
    "cloudbase-init",
];

/// A service's Start type and image path.
type ServiceInfo = Option<(u32, Option<String>)>;

fn with_hive<T>(
    fs: &mut dyn GuestFs,
    path: &str,
    limits: &Limits,
    f: &mut dyn FnMut(&mut Hive) -> Result<T, HiveError>,
) -> Result<(T, bool), String> {
    let mut result = None;
    let found = fs
        .with_file(path, &mut |file| {
            if file.size() > limits.max_hive_file {
                return Err(FsError(format!(
                    "{path} is larger than {} MiB",
                    limits.max_hive_file >> 20
                )));
            }
            let mut hive =
                Hive::open(file, limits.max_hive_cells).map_err(|e| FsError(e.to_string()))?;
            let dirty = hive.dirty;
            let v = f(&mut hive).map_err(|e| FsError(e.to_string()))?;
            result = Some((v, dirty));
            Ok(())
        })
        .map_err(|e| format!("{path}: {e}"))?;
    if !found {
        return Err(format!("{path} is missing"));
    }
    result.ok_or_else(|| format!("{path} could not be read"))
}

fn string(h: &mut Hive, k: Key, name: &str) -> Result<Option<String>, HiveError> {
    Ok(h.value(k, name)?.and_then(|v| v.as_string()))
}

fn dword(h: &mut Hive, k: Key, name: &str) -> Result<Option<u32>, HiveError> {
    Ok(h.value(k, name)?.and_then(|v| v.as_u32()))
}

/// `\SystemRoot\System32\drivers\x.sys`, `System32\drivers\x.sys`, `C:\...` -> a volume path.
fn driver_path(image: &str) -> Option<String> {
    let image = image.trim();
    // A quoted path ends at its closing quote; arguments may follow.
    let image = match image.strip_prefix('"') {
        Some(rest) => rest.split('"').next().unwrap_or(rest),
        None => image,
    };
    let lower = image.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("\\systemroot\\") {
        format!("Windows\\{}", &image[image.len() - r.len()..])
    } else if lower.starts_with("system32\\") {
        format!("Windows\\{image}")
    } else if lower.len() > 3 && &lower[1..3] == ":\\" {
        image[3..].to_string()
    } else if let Some(r) = lower.strip_prefix("\\??\\c:\\") {
        image[image.len() - r.len()..].to_string()
    } else {
        return None;
    };
    // Only the executable, not its arguments.
    let exe_end = rest
        .to_ascii_lowercase()
        .find(".sys")
        .map(|i| i + 4)
        .or_else(|| rest.to_ascii_lowercase().find(".exe").map(|i| i + 4))?;
    Some(format!("/{}", rest[..exe_end].replace('\\', "/")))
}

pub fn probe(
    fs: &mut dyn GuestFs,
    location: String,
    limits: &Limits,
) -> (WindowsFacts, Option<(String, Machine)>) {
    let mut w = WindowsFacts {
        location,
        ..Default::default()
    };
    // SOFTWARE: product and version; WOW6432Node exists only on 64-bit Windows.
    match with_hive(fs, SOFTWARE_HIVE, limits, &mut |h| {
        let root = h.root();
        let bits64 = h.subkey(root, "WOW6432Node")?.is_some();
        let Some(cv) = h.path(root, "Microsoft\\Windows NT\\CurrentVersion")? else {
            return Ok((None, None, bits64));
        };
        let product = string(h, cv, "ProductName")?;
        let build = string(h, cv, "CurrentBuildNumber")?.or(string(h, cv, "CurrentBuild")?);
        let version = match (
            dword(h, cv, "CurrentMajorVersionNumber")?,
            dword(h, cv, "CurrentMinorVersionNumber")?,
        ) {
            (Some(a), Some(b)) => Some(format!("{a}.{b}")),
            _ => string(h, cv, "CurrentVersion")?,
        };
        let full = match (version, build) {
            (Some(v), Some(b)) => Some(format!("{v}.{b}")),
            (v, b) => v.or(b),
        };
        Ok((product, full, bits64))
    }) {
        Ok(((product, version, bits64), dirty)) => {
            w.product = product;
            w.version = version;
            w.bits64 = Some(bits64);
            w.hive_dirty |= dirty;
        }
        Err(e) => w.unreadable.push(e),
    }

    // SYSTEM: the current control set's services.
    let services = with_hive(fs, SYSTEM_HIVE, limits, &mut |h| {
        let root = h.root();
        let current = match h.path(root, "Select")? {
            Some(sel) => dword(h, sel, "Current")?.unwrap_or(1),
            None => 1,
        };
        let set = format!("ControlSet{current:03}");
        let Some(services) = h.path(root, &format!("{set}\\Services"))? else {
            return Err(HiveError(format!("{set}\\Services is missing")));
        };
        let mut out: Vec<ServiceInfo> = Vec::new();
        for name in SERVICES {
            out.push(match h.subkey(services, name)? {
                Some(k) => Some((
                    dword(h, k, "Start")?.unwrap_or(3),
                    string(h, k, "ImagePath")?,
                )),
                None => None,
            });
        }
        let arch = match h.path(
            root,
            &format!("{set}\\Control\\Session Manager\\Environment"),
        )? {
            Some(env) => string(h, env, "PROCESSOR_ARCHITECTURE")?,
            None => None,
        };
        Ok((out, arch))
    });
    match services {
        Ok(((list, env_arch), dirty)) => {
            w.hive_dirty |= dirty;
            let mut svc = |i: usize, check_file: bool| -> Service {
                match &list[i] {
                    None => Service::Missing,
                    Some((start, image)) => {
                        let file = if check_file {
                            let default = format!("/Windows/System32/drivers/{}.sys", SERVICES[i]);
                            let path = image.as_deref().and_then(driver_path).unwrap_or(default);
                            fs.exists(&path).ok()
                        } else {
                            None
                        };
                        Service::Present {
                            start: *start,
                            file,
                        }
                    }
                }
            };
            w.aws_nvme = Some(svc(0, true));
            w.stornvme = Some(svc(1, false));
            w.ena = Some(svc(2, true));
            let xen = match (svc(3, false), svc(4, false)) {
                (s @ Service::Present { start: 0, .. }, _)
                | (_, s @ Service::Present { start: 0, .. }) => s,
                (Service::Missing, b) => b,
                (a, _) => a,
            };
            w.xen_storage = Some(xen);
            let agent = [(5, "EC2Launch v2"), (6, "EC2Config"), (7, "cloudbase-init")]
                .into_iter()
                .map(|(i, name)| (name, svc(i, false)))
                .find(|(_, s)| *s != Service::Missing);
            w.agent = Some(match agent {
                Some((name, Service::Present { start: 4, .. })) => {
                    Agent::Disabled(format!("the {name} service is disabled"))
                }
                Some((name, _)) => Agent::Found(name.to_string()),
                None => {
                    // EC2Launch v1 is a scheduled task running these scripts, not a service.
                    match fs.exists(
                        "/ProgramData/Amazon/EC2-Windows/Launch/Scripts/InitializeInstance.ps1",
                    ) {
                        Ok(true) => Agent::Found("EC2Launch v1".into()),
                        Ok(false) => Agent::Missing,
                        Err(e) => Agent::Unknown(e.to_string()),
                    }
                }
            });
            if w.bits64.is_none() {
                w.bits64 = env_arch
                    .map(|a| a.eq_ignore_ascii_case("AMD64") || a.eq_ignore_ascii_case("ARM64"));
            }
        }
        Err(e) => {
            for s in [
                &mut w.aws_nvme,
                &mut w.stornvme,
                &mut w.ena,
                &mut w.xen_storage,
            ] {
                *s = Some(Service::Unknown(e.clone()));
            }
            w.agent = Some(Agent::Unknown(e.clone()));
            w.unreadable.push(e);
        }
    }

    let mut machine = None;
    let read = fs.with_file(KERNEL, &mut |file| {
        machine = pe_machine(&read_head(file, 4096)?);
        Ok(())
    });
    if let Err(e) = read {
        w.unreadable.push(format!("{KERNEL}: {e}"));
    }
    (w, machine.map(|m| ("ntoskrnl.exe".to_string(), m)))
}

#[cfg(test)]
mod tests {
    use super::driver_path;

    #[test]
    fn driver_paths_resolve_to_the_volume() {
        assert_eq!(
            driver_path("\\SystemRoot\\System32\\drivers\\AWSNVMe.sys").as_deref(),
            Some("/Windows/System32/drivers/AWSNVMe.sys")
        );
        assert_eq!(
            driver_path("System32\\drivers\\ena.sys").as_deref(),
            Some("/Windows/System32/drivers/ena.sys")
        );
        assert_eq!(
            driver_path(
                "\"C:\\Program Files\\Amazon\\EC2Launch\\service\\EC2LaunchService.exe\" -x"
            )
            .as_deref(),
            Some("/Program Files/Amazon/EC2Launch/service/EC2LaunchService.exe")
        );
        assert_eq!(driver_path("weird"), None);
    }
}
