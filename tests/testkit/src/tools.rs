//! Locating the project's tools: the virtual environment that `tests/setup.sh` builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// The directory holding `moto_server` and `cfn-lint`. `tests/run.sh` exports it; a plain
/// `cargo test` runs the (idempotent) setup script once per test binary instead.
pub fn tools_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("REHOST_TOOLS_BIN") {
            return PathBuf::from(dir);
        }
        let setup = workspace_root().join("tests/setup.sh");
        let out = Command::new(&setup)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            setup.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Result of linting one template with cfn-lint.
#[derive(Debug)]
pub struct LintReport {
    pub success: bool,
    pub output: String,
}

/// Runs cfn-lint on a template file; success means 0 errors and 0 warnings (informational
/// findings fail too, so nothing is silently tolerated).
pub fn cfn_lint(template: &Path) -> LintReport {
    cfn_lint_all(&[template])
}

/// cfn-lint on several templates in one run (a nested package: the parent and its children).
pub fn cfn_lint_all(templates: &[&Path]) -> LintReport {
    let out = Command::new(tools_bin().join("cfn-lint"))
        .arg("--regions")
        .arg("us-east-1")
        .arg("--")
        .args(templates)
        .output()
        .expect("cfn-lint runs");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    LintReport {
        success: out.status.success() && output.trim().is_empty(),
        output,
    }
}

/// A fresh, empty directory for one test (`<tmp>/rehost-<suite>-<pid>-<name>`): unique per test
/// process, removed and recreated so a rerun starts clean.
pub fn scratch_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rehost-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// Caps the address space of the process `cmd` starts (RLIMIT_AS), so a test can show that a
/// command stays in bounded memory: past the cap, allocation fails and the process aborts
/// instead of swapping the machine.
pub fn limit_address_space(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit is async-signal-safe and only touches the child after fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}
