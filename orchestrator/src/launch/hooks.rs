//! Running the application's cutover hooks on the operator's machine: each in the application
//! file's directory, in its own process group (a timeout kills the hook and whatever it
//! started), standard output and error captured together in the order they came, the last
//! [`OUTPUT_KEPT`] bytes kept for the history.
//!
//! A hook can be cancelled (`cancel` turning true: the operator interrupted a cutover): its
//! process group is killed at once and it is recorded `cancelled` with its output so far.
//!
//! A `command:` hook runs its program directly (no shell: arguments are passed as written, no
//! quoting, globbing or expansion); a `shell:` hook runs `/bin/sh -c TEXT`, because it said so.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rehost_replication::state::{HookOutcome, HookPhase, HookRecord};
use tokio::sync::watch;

use crate::app::{AppHook, HookRun};
use crate::launch::cancelled;

/// Output kept per hook (the end of it).
pub const OUTPUT_KEPT: usize = 64 * 1024;

/// Runs `hooks` in order; with `stop_on_failure` the first hook that does not succeed ends
/// the phase, and a cancelled hook always does (`cancel`: see the module's comment). Returns
/// every hook that ran.
pub async fn run_phase(
    hooks: &[AppHook],
    phase: HookPhase,
    dir: &Path,
    stop_on_failure: bool,
    cancel: Option<&watch::Receiver<bool>>,
) -> Vec<HookRecord> {
    let mut out = Vec::new();
    for h in hooks {
        let rec = run_hook(h, phase, dir, cancel).await;
        let outcome = rec.outcome;
        out.push(rec);
        if outcome == HookOutcome::Cancelled
            || (outcome != HookOutcome::Succeeded && stop_on_failure)
        {
            break;
        }
    }
    out
}

/// Runs one hook to its end, its timeout or its cancellation.
pub async fn run_hook(
    hook: &AppHook,
    phase: HookPhase,
    dir: &Path,
    cancel: Option<&watch::Receiver<bool>>,
) -> HookRecord {
    let started = Instant::now();
    let mut rec = HookRecord {
        phase,
        name: hook.name.clone(),
        command: hook.run.display(),
        outcome: HookOutcome::NotStarted,
        exit_code: None,
        seconds: 0.0,
        output: String::new(),
        output_dropped: 0,
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => {
            rec.output = format!("cannot create a pipe: {e}");
            return rec;
        }
    };
    let mut cmd = match &hook.run {
        HookRun::Command(argv) => {
            let program = if argv[0].contains('/') {
                dir.join(&argv[0])
            } else {
                argv[0].clone().into()
            };
            let mut c = Command::new(program);
            c.args(&argv[1..]);
            c
        }
        HookRun::Shell(text) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(text);
            c
        }
    };
    let err_writer = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => {
            rec.output = format!("cannot create a pipe: {e}");
            return rec;
        }
    };
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(err_writer)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            rec.output = format!("cannot start: {e}");
            return rec;
        }
    };
    // The parent's copies of the writer went into `cmd`: drop them so the reader sees the end
    // when the hook's processes are gone.
    drop(cmd);
    let pid = child.id() as i32;
    let collect = tokio::task::spawn_blocking(move || tail(reader));
    let wait = tokio::task::spawn_blocking(move || child.wait());
    let waited = tokio::select! {
        waited = tokio::time::timeout(hook.timeout, wait) => Some(waited),
        () = cancelled(cancel) => None,
    };
    let status = match waited {
        Some(Ok(Ok(Ok(status)))) => Some(status),
        Some(Ok(_)) => None,
        Some(Err(_)) => {
            // SAFETY: kill(2) on the hook's own process group; no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            rec.outcome = HookOutcome::TimedOut;
            None
        }
        None => {
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            rec.outcome = HookOutcome::Cancelled;
            None
        }
    };
    // Whatever the hook left running in its group does not outlive it.
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let (output, dropped) = collect.await.unwrap_or_default();
    rec.output = output;
    rec.output_dropped = dropped;
    rec.seconds = started.elapsed().as_secs_f64();
    if let Some(status) = status {
        rec.exit_code = status.code();
        rec.outcome = if status.success() {
            HookOutcome::Succeeded
        } else {
            HookOutcome::Failed
        };
    } else if !matches!(rec.outcome, HookOutcome::TimedOut | HookOutcome::Cancelled) {
        rec.outcome = HookOutcome::Failed;
    }
    rec
}

/// Reads to the end, keeping the last [`OUTPUT_KEPT`] bytes; returns them (lossy UTF-8) and
/// how many bytes came before them.
fn tail(mut reader: impl Read) -> (String, u64) {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_KEPT {
                    let cut = kept.len() - OUTPUT_KEPT;
                    dropped += cut as u64;
                    kept.drain(..cut);
                }
            }
        }
    }
    if kept.len() > OUTPUT_KEPT {
        let cut = kept.len() - OUTPUT_KEPT;
        dropped += cut as u64;
        kept.drain(..cut);
    }
    (String::from_utf8_lossy(&kept).into_owned(), dropped)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hook(name: &str, run: HookRun, seconds: u64) -> AppHook {
        AppHook {
            name: name.into(),
            run,
            timeout: Duration::from_secs(seconds),
        }
    }

    fn sh(text: &str) -> HookRun {
        HookRun::Shell(text.into())
    }

    #[tokio::test]
    async fn hooks_capture_output_exit_codes_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run_hook(
            &hook("ok", sh("echo out; echo err >&2; pwd"), 10),
            HookPhase::PreCutover,
            dir.path(),
            None,
        )
        .await;
        assert_eq!(ok.outcome, HookOutcome::Succeeded);
        assert_eq!(ok.exit_code, Some(0));
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(
            ok.output,
            format!("out\nerr\n{}\n", real.display()),
            "both streams, in order, run in the file's directory"
        );

        let failed = run_hook(
            &hook("f", sh("exit 3"), 10),
            HookPhase::PreCutover,
            dir.path(),
            None,
        )
        .await;
        assert_eq!(
            (failed.outcome, failed.exit_code),
            (HookOutcome::Failed, Some(3))
        );

        // A timeout kills the hook and what it started (the sleep holds the pipe otherwise).
        let started = Instant::now();
        let slow = run_hook(
            &hook("slow", sh("sleep 30 & sleep 30"), 1),
            HookPhase::PostRollback,
            dir.path(),
            None,
        )
        .await;
        assert_eq!(slow.outcome, HookOutcome::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );

        let missing = run_hook(
            &hook("m", HookRun::Command(vec!["./nope.sh".into()]), 10),
            HookPhase::PreCutover,
            dir.path(),
            None,
        )
        .await;
        assert_eq!(missing.outcome, HookOutcome::NotStarted);
        assert!(
            missing.output.contains("cannot start"),
            "{}",
            missing.output
        );
    }

    #[tokio::test]
    async fn commands_run_without_a_shell_and_a_failure_stops_the_phase() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("args.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let hooks = [
            hook(
                "args",
                HookRun::Command(vec!["./args.sh".into(), "a b".into(), "$HOME;`x`".into()]),
                10,
            ),
            hook("fail", sh("exit 1"), 10),
            hook("never", sh("echo never"), 10),
        ];
        let ran = run_phase(&hooks, HookPhase::PreCutover, dir.path(), true, None).await;
        assert_eq!(ran.len(), 2, "stopped at the failure");
        assert_eq!(
            ran[0].output, "[a b]\n[$HOME;`x`]\n",
            "no shell: arguments as written"
        );
        let all = run_phase(&hooks, HookPhase::PostRollback, dir.path(), false, None).await;
        assert_eq!(all.len(), 3, "post-rollback hooks all run");
    }

    #[test]
    fn output_keeps_the_end() {
        let data = vec![b'x'; OUTPUT_KEPT * 3 + 5];
        let (kept, dropped) = tail(&data[..]);
        assert_eq!(kept.len(), OUTPUT_KEPT);
        assert_eq!(dropped, (OUTPUT_KEPT * 2 + 5) as u64);
    }

    /// The operator interrupting a cutover stops the hook that runs (and what it started) at
    /// once, keeps its output, and ends the phase even where failures would not.
    #[tokio::test]
    async fn a_cancelled_hook_is_killed_at_once_and_ends_the_phase() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(false);
        let hooks = [
            hook("stop", sh("echo stopping; sleep 30 & sleep 30"), 60),
            hook("never", sh("echo never"), 10),
        ];
        let started = Instant::now();
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            tx.send(true).unwrap();
        };
        let (ran, ()) = tokio::join!(
            run_phase(&hooks, HookPhase::PreCutover, dir.path(), false, Some(&rx)),
            cancel
        );
        assert_eq!(ran.len(), 1, "the phase ended at the cancelled hook");
        assert_eq!(ran[0].outcome, HookOutcome::Cancelled);
        assert_eq!(ran[0].output, "stopping\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "killed with what it started: {:?}",
            started.elapsed()
        );
    }
}
