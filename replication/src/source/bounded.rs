//! Runs a helper tool (qemu-img) on an untrusted image with a deadline and a cap on what it may
//! print, both enforced whatever the tool does: it runs in its own process group, which is
//! killed when the deadline passes or the output outgrows the cap, and its output is read by
//! threads that stop storing at the cap.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::SourceError;

/// How long a tool may run and how much it may print.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub timeout: Duration,
    pub max_stdout: usize,
}

/// What stderr may hold before the rest is dropped (it only feeds error messages).
const MAX_STDERR: usize = 64 * 1024;

/// The tool's stdout when it exits successfully within the limits.
pub(super) fn run(
    tool: &Path,
    args: &[&OsStr],
    image: &Path,
    limits: Limits,
) -> Result<Vec<u8>, SourceError> {
    let failed = |message: String| SourceError::Tool {
        path: image.to_path_buf(),
        tool: tool.display().to_string(),
        message,
    };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("cannot run it: {e}")))?;
    let overflow = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    for (stream, cap, is_stdout) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            limits.max_stdout,
            true,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            MAX_STDERR,
            false,
        ),
    ] {
        let (tx, overflow) = (tx.clone(), overflow.clone());
        std::thread::spawn(move || {
            let (data, over) = stream.map_or((Vec::new(), false), |s| read_capped(s, cap));
            if over && is_stdout {
                overflow.store(true, Ordering::SeqCst);
            }
            let _ = tx.send((is_stdout, data));
        });
    }
    drop(tx);

    let deadline = Instant::now() + limits.timeout;
    let status = wait(&mut child, deadline, &overflow, limits).map_err(failed)?;
    // Both streams end once the tool has exited (unless something it started still holds them).
    let (mut stdout, mut stderr) = (None, Vec::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(100))) {
            Ok((true, data)) => stdout = Some(data),
            Ok((false, data)) => stderr = data,
            Err(_) => {
                return Err(failed(format!(
                    "its output did not end within {} s",
                    limits.timeout.as_secs()
                )));
            }
        }
    }
    if overflow.load(Ordering::SeqCst) {
        return Err(failed(too_much(limits)));
    }
    if !status.success() {
        return Err(failed(format!(
            "{status}: {}",
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    Ok(stdout.unwrap_or_default())
}

/// Waits for the child, killing its process group at the deadline or when its output
/// overflowed. The child is reaped here, so its process group id stays its own until then.
fn wait(
    child: &mut Child,
    deadline: Instant,
    overflow: &AtomicBool,
    limits: Limits,
) -> Result<ExitStatus, String> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for it: {e}"))?
        {
            return Ok(status);
        }
        let why = if overflow.load(Ordering::SeqCst) {
            Some(too_much(limits))
        } else if Instant::now() >= deadline {
            Some(format!(
                "it did not finish within {} s; stopped it",
                limits.timeout.as_secs_f64()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            kill_group(child);
            return Err(why);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn too_much(limits: Limits) -> String {
    format!(
        "printed more than {} bytes; stopped it (an image that makes it say that much is refused)",
        limits.max_stdout
    )
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signals the process group the child leads (process_group(0)); the child is
        // not reaped yet, so the group id cannot belong to anyone else.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads to the end, keeping at most `cap` bytes; reports whether there was more.
fn read_capped(mut stream: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (data, false),
            Ok(n) if data.len() + n > cap => return (data, true),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limits: Limits) -> Result<Vec<u8>, SourceError> {
        run(
            Path::new("/bin/sh"),
            &["-c".as_ref(), script.as_ref()],
            Path::new("image"),
            limits,
        )
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_stdout: 1024,
    };

    #[test]
    fn output_within_the_cap_is_returned() {
        assert_eq!(sh("printf hello", LIMITS).unwrap(), b"hello");
        let err = sh("echo oops >&2; exit 3", LIMITS).unwrap_err().to_string();
        assert!(err.contains("oops") && err.contains('3'), "{err}");
    }

    #[test]
    fn a_tool_that_prints_without_end_is_stopped_at_the_cap() {
        let t0 = Instant::now();
        let err = sh("yes", LIMITS).unwrap_err().to_string();
        assert!(err.contains("more than 1024 bytes"), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "stopped early, not at the deadline"
        );
    }

    #[test]
    fn a_tool_that_hangs_is_killed_with_its_children_at_the_deadline() {
        let limits = Limits {
            timeout: Duration::from_millis(300),
            ..LIMITS
        };
        let t0 = Instant::now();
        // The grandchild keeps stdout open: killing only the child would leave the read hanging.
        let err = sh("sleep 30 & sleep 30", limits).unwrap_err().to_string();
        assert!(err.contains("did not finish within 0.3 s"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
