//! The moto server: the AWS API emulator the integration tests run against, one per test binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::tools::tools_bin;

const WATCHDOG: &str = r#"parent=$1; shift; "$@" & server=$!
trap 'kill $server 2>/dev/null; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
kill $server 2>/dev/null; wait"#;

pub struct Moto {
    child: Mutex<Child>,
    port: u16,
}

impl Moto {
    /// Starts a moto server on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("rehost-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("moto log file");
        // A watchdog shell owns the server: statics are never dropped, so when the test binary
        // exits the watchdog notices its parent is gone and stops the server.
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(tools_bin().join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child: Mutex::new(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if moto.request("GET", "/moto-api/").is_ok() {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.lock().unwrap().try_wait() {
                panic!("moto_server exited with {status}; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on port {port} within 60 s; see {}",
            log.display()
        );
    }

    /// One emulator shared by every test of the calling test binary.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Clears every emulated resource.
    pub fn reset(&self) {
        self.request("POST", "/moto-api/reset").expect("moto reset");
    }

    /// Environment for a child process (or an SDK config) to talk to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }

    fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        stream.read_to_string(&mut out)?;
        if out.starts_with("HTTP/1.1 2") || out.starts_with("HTTP/1.0 2") {
            Ok(out)
        } else {
            Err(std::io::Error::other(
                out.lines().next().unwrap_or("").to_string(),
            ))
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", child.id()))
            .status();
        let _ = child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .unwrap()
        .port()
}
