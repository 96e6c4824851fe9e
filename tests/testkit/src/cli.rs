//! Running the `rehost` binary from a test: one command builder for every suite.
//!
//! ```ignore
//! let out = Rehost::new(env!("CARGO_BIN_EXE_rehost"))
//!     .args(["validate", "app.yaml"])
//!     .current_dir(&dir)
//!     .run();
//! ```

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

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
