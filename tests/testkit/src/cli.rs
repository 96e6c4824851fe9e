//! Running the `rehost` binary from a test: one command builder for every suite.
//!
//! ```ignore
//! let out = Rehost::new(env!("CARGO_BIN_EXE_rehost"))
//!     .args(["validate", "app.yaml"])
//!     .current_dir(&dir)
//!     .run();
//! ```

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Moto;

/// A `rehost` invocation being built.
pub struct Rehost {
    cmd: Command,
}

impl Rehost {
    /// `bin` is the binary under test (`env!("CARGO_BIN_EXE_rehost")` in the calling suite). Runs
    /// from the workspace root unless `current_dir` says otherwise; no colours.
    pub fn new(bin: impl AsRef<OsStr>) -> Self {
        let mut cmd = Command::new(bin);
        cmd.current_dir(crate::workspace_root())
            .env("NO_COLOR", "1");
        Rehost { cmd }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Talk to this emulator (endpoint, region, test credentials, no instance metadata).
    pub fn env_moto(mut self, moto: &Moto) -> Self {
        for (k, v) in moto.env() {
            self.cmd.env(k, v);
        }
        self
    }

    /// Caps the process's address space (RLIMIT_AS), so a runaway allocation fails fast.
    pub fn limit_address_space(mut self, bytes: u64) -> Self {
        crate::tools::limit_address_space(&mut self.cmd, bytes);
        self
    }

    /// Runs to completion and returns the exit status and both outputs.
    pub fn run(mut self) -> Output {
        self.cmd.output().expect("rehost runs")
    }

    /// As `run`, for a command that must not hang: a run still going after `limit` is killed
    /// and fails the test.
    pub fn run_within(self, limit: Duration) -> Output {
        self.spawn().wait_within(limit)
    }

    /// Starts it, both outputs drained while it runs (so a full pipe never looks like a hang),
    /// for a test that acts on it while it runs (a signal, say).
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rehost runs");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
        Running {
            child,
            stdout,
            stderr,
        }
    }
}

/// A `rehost` process started by [`Rehost::spawn`].
pub struct Running {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Running {
    /// Sends it `signal` (`libc::SIGINT`, ...).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits i32");
        // SAFETY: kill(2) on our own child, which has not been waited for (no pid reuse).
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "signal {signal} sent"
        );
    }

    /// Whether it has installed a handler for `signal` (its `SigCgt` mask in /proc), so a
    /// test sends a signal only once the process will catch it rather than die of it.
    pub fn catches(&self, signal: i32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
    }

    /// Whether it has not exited yet.
    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().expect("wait for rehost").is_none()
    }

    /// Its exit status and both outputs; a run still going after `limit` is killed and fails
    /// the test.
    pub fn wait_within(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for rehost") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("rehost still running after {limit:?}: killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
        }
    }
}

/// The standard output of a run that must have succeeded; otherwise panics showing both outputs.
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard error of a run that must have been refused (exit code 2).
pub fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
