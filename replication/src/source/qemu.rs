//! Images in qemu formats (qcow2, VMDK, VHD, VHDX): size and allocation map from `qemu-img`,
//! data from a read-only `qemu-nbd` on a Unix socket in a private directory. Every tool is told
//! the format, and runs only after the image's chain was vetted (`confine`).

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::bounded::{self, Limits};
use super::nbd::NbdClient;
use super::{DiskSource, Extent, ReadAt, SourceError, SourceFormat, confine, normalize};

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

/// `qemu-img map` of a large, fragmented image prints one line per run of clusters: allow it
/// minutes and up to 1 GiB, as much as the map of a multi-terabyte disk needs.
const MAP_LIMITS: Limits = Limits {
    timeout: Duration::from_secs(600),
    max_stdout: 1 << 30,
};

#[derive(Deserialize)]
struct MapEntry {
    start: u64,
    length: u64,
    data: bool,
    zero: bool,
}

impl QemuTools {
    /// Extents holding data: `data` true and `zero` false. Everything else reads as zeros.
    fn map(&self, path: &Path, format: SourceFormat) -> Result<Vec<Extent>, SourceError> {
        let args: [&std::ffi::OsStr; 5] = [
            "map".as_ref(),
            "--output=json".as_ref(),
            "-f".as_ref(),
            format.qemu_name().as_ref(),
            path.as_os_str(),
        ];
        let out = bounded::run(&self.qemu_img, &args, path, MAP_LIMITS)?;
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
    let size = confine::vet(path, format, tools)?.virtual_size;
    let extents = normalize(tools.map(path, format)?, size);
    let mut server = NbdServer::start(path, format, tools)?;
    let client = server.connect(path)?;
    if client.size() < size {
        return Err(SourceError::Nbd {
            path: path.to_path_buf(),
            message: format!("export is {} bytes, qemu-img says {size}", client.size()),
        });
    }
    Ok(DiskSource {
        path: path.to_path_buf(),
        format,
        size,
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
    socket: PathBuf,
    /// Created 0700 under an unpredictable name that must not exist yet (mkdtemp), so no other
    /// local user can put a socket of theirs where rehost connects. Removed on drop.
    _dir: tempfile::TempDir,
}

impl NbdServer {
    fn start(
        path: &Path,
        format: SourceFormat,
        tools: &QemuTools,
    ) -> Result<NbdServer, SourceError> {
        let dir = tempfile::Builder::new()
            .prefix("rehost-nbd-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|source| SourceError::Io {
                path: path.to_path_buf(),
                operation: "create qemu-nbd socket directory",
                offset: None,
                source,
            })?;
        let socket = dir.path().join("nbd.sock");
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
            })?;
        Ok(NbdServer {
            child,
            socket,
            _dir: dir,
        })
    }

    /// Connects once the socket is up (qemu-nbd creates it when ready), and only to the
    /// qemu-nbd this server started: the peer's pid (SO_PEERCRED) must be the child's.
    fn connect(&mut self, path: &Path) -> Result<NbdClient, SourceError> {
        let nbd_err = |message: String| SourceError::Nbd {
            path: path.to_path_buf(),
            message,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_err = None;
        while Instant::now() < deadline {
            if self.socket.exists() {
                match UnixStream::connect(&self.socket) {
                    Ok(stream) => {
                        let peer = peer_pid(&stream)
                            .map_err(|e| nbd_err(format!("cannot identify the server: {e}")))?;
                        if peer != self.child.id() {
                            return Err(nbd_err(format!(
                                "the socket is served by process {peer}, not by the qemu-nbd \
                                 rehost started (process {}); refusing to read from it",
                                self.child.id()
                            )));
                        }
                        return NbdClient::handshake(stream).map_err(|e| nbd_err(e.to_string()));
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(e) = self.child.stderr.take() {
                    let _ = e.take(64 * 1024).read_to_string(&mut stderr);
                }
                return Err(SourceError::Tool {
                    path: path.to_path_buf(),
                    tool: "qemu-nbd".into(),
                    message: format!("{status}: {}", stderr.trim()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(nbd_err(format!(
            "qemu-nbd did not accept connections within 30 s{}",
            last_err.map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }
}

/// The pid of the process that listens on the other end of a Unix stream.
fn peer_pid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a ucred we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(cred.pid).map_err(|_| io::Error::other("no peer process"))
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
