//! Images in qemu formats (qcow2, VMDK, VHD, VHDX): size and allocation map from `qemu-img`,
//! data from a read-only `qemu-nbd` on a private Unix socket.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::nbd::NbdClient;
use super::{DiskSource, Extent, ReadAt, SourceError, SourceFormat, normalize};

/// Where qemu's tools are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuTools {
    pub qemu_img: PathBuf,
    pub qemu_nbd: PathBuf,
}

impl Default for QemuTools {
    fn default() -> Self {
        QemuTools {
            qemu_img: "qemu-img".into(),
            qemu_nbd: "qemu-nbd".into(),
        }
    }
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    format: String,
}

#[derive(Deserialize)]
struct MapEntry {
    start: u64,
    length: u64,
    data: bool,
    zero: bool,
}

impl QemuTools {
    fn run(
        &self,
        tool: &Path,
        args: &[&std::ffi::OsStr],
        path: &Path,
    ) -> Result<Vec<u8>, SourceError> {
        let out = Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| SourceError::Tool {
                path: path.to_path_buf(),
                tool: tool.display().to_string(),
                message: format!("cannot run it: {e}"),
            })?;
        if !out.status.success() {
            return Err(SourceError::Tool {
                path: path.to_path_buf(),
                tool: tool.display().to_string(),
                message: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(out.stdout)
    }

    /// The format qemu-img detects, or `None` if qemu-img cannot be run at all.
    pub(super) fn probe_format(&self, path: &Path) -> Result<Option<SourceFormat>, SourceError> {
        if Command::new(&self.qemu_img)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Ok(None);
        }
        let info = self.info(path, None)?;
        SourceFormat::from_qemu_name(&info.format)
            .map(Some)
            .ok_or_else(|| SourceError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "image format {:?} is not supported (raw, qcow2, vmdk, vhd, vhdx are)",
                    info.format
                ),
            })
    }

    fn info(&self, path: &Path, format: Option<SourceFormat>) -> Result<Info, SourceError> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["info".as_ref(), "--output=json".as_ref()];
        if let Some(f) = format {
            args.push("-f".as_ref());
            args.push(f.qemu_name().as_ref());
        }
        args.push(path.as_os_str());
        let out = self.run(&self.qemu_img, &args, path)?;
        serde_json::from_slice(&out).map_err(|e| SourceError::Tool {
            path: path.to_path_buf(),
            tool: "qemu-img info".into(),
            message: format!("unexpected output: {e}"),
        })
    }

    /// Extents holding data: `data` true and `zero` false. Everything else reads as zeros.
    fn map(&self, path: &Path, format: SourceFormat) -> Result<Vec<Extent>, SourceError> {
        let args: [&std::ffi::OsStr; 5] = [
            "map".as_ref(),
            "--output=json".as_ref(),
            "-f".as_ref(),
            format.qemu_name().as_ref(),
            path.as_os_str(),
        ];
        let out = self.run(&self.qemu_img, &args, path)?;
        let entries: Vec<MapEntry> =
            serde_json::from_slice(&out).map_err(|e| SourceError::Tool {
                path: path.to_path_buf(),
                tool: "qemu-img map".into(),
                message: format!("unexpected output: {e}"),
            })?;
        Ok(entries
            .into_iter()
            .filter(|e| e.data && !e.zero)
            .map(|e| Extent {
                start: e.start,
                len: e.length,
            })
            .collect())
    }
}

pub(super) fn open(
    path: &Path,
    format: SourceFormat,
    tools: &QemuTools,
) -> Result<DiskSource, SourceError> {
    let info = tools.info(path, Some(format))?;
    let extents = normalize(tools.map(path, format)?, info.virtual_size);
    let mut server = NbdServer::start(path, format, tools)?;
    let client = server.connect(path)?;
    if client.size() < info.virtual_size {
        return Err(SourceError::Nbd {
            path: path.to_path_buf(),
            message: format!(
                "export is {} bytes, qemu-img says {}",
                client.size(),
                info.virtual_size
            ),
        });
    }
    Ok(DiskSource {
        path: path.to_path_buf(),
        format,
        size: info.virtual_size,
        extents,
        reader: Box::new(NbdReader {
            client,
            _server: server,
        }),
    })
}

struct NbdReader {
    client: NbdClient,
    // Dropped after the client, which disconnects first.
    _server: NbdServer,
}

impl ReadAt for NbdReader {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.client.read_at(offset, buf)
    }
}

/// A qemu-nbd process serving one image read-only on a socket in a private directory; killed
/// and cleaned up on drop.
struct NbdServer {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(0);

impl NbdServer {
    fn start(
        path: &Path,
        format: SourceFormat,
        tools: &QemuTools,
    ) -> Result<NbdServer, SourceError> {
        let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rehost-nbd-{}-{n}", std::process::id()));
        let io_err = |operation, source| SourceError::Io {
            path: path.to_path_buf(),
            operation,
            offset: None,
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create qemu-nbd socket directory", e))?;
        let socket = dir.join("nbd.sock");
        let child = Command::new(&tools.qemu_nbd)
            .arg("--read-only")
            .arg(format!("--format={}", format.qemu_name()))
            .arg("--socket")
            .arg(&socket)
            .arg("--shared=1")
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SourceError::Tool {
                path: path.to_path_buf(),
                tool: tools.qemu_nbd.display().to_string(),
                message: format!("cannot run it: {e}"),
            });
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(NbdServer { child, dir, socket })
    }

    /// Connects once the socket is up (qemu-nbd creates it when ready).
    fn connect(&mut self, path: &Path) -> Result<NbdClient, SourceError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_err = None;
        while Instant::now() < deadline {
            if self.socket.exists() {
                match NbdClient::connect(&self.socket) {
                    Ok(c) => return Ok(c),
                    Err(e) => last_err = Some(e),
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Err(SourceError::Tool {
                    path: path.to_path_buf(),
                    tool: "qemu-nbd".into(),
                    message: format!("{status}: {}", stderr.trim()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(SourceError::Nbd {
            path: path.to_path_buf(),
            message: format!(
                "qemu-nbd did not accept connections within 30 s{}",
                last_err.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        })
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
