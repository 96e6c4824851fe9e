//! The text of `rehost cutover` and `rehost rollback` (part of `print`): hooks as they ran,
//! the final sync per server, and the dry run.

use std::io::{self, Write};

use rehost::app::{AppHook, AppHooks};
use rehost::diag::escape_controls;
use rehost::launch::runbook::ExpectedDelta;
use rehost_replication::state::{HookOutcome, HookRecord, SyncRecord};

use super::bytes;

/// One hook as it ran, then the last lines of its output when it failed.
pub fn hook_ran(w: &mut dyn Write, h: &HookRecord) -> io::Result<()> {
    writeln!(
        w,
        "hook {} {}: {} in {:.1}s{}",
        h.phase.as_str(),
        h.name,
        h.outcome.as_str(),
        h.seconds,
        h.exit_code
            .map(|c| format!(" (exit {c})"))
            .unwrap_or_default()
    )?;
    if h.outcome != HookOutcome::Succeeded {
        // The hook's own output: the operator's program, but what it prints comes from the
        // sources it talks to.
        let lines: Vec<&str> = h.output.lines().collect();
        for line in &lines[lines.len().saturating_sub(10)..] {
            writeln!(w, "  | {}", escape_controls(line))?;
        }
    }
    Ok(())
}

/// One server's final increment: the delta the users' downtime waits for.
pub fn final_sync(w: &mut dyn Write, s: &SyncRecord) -> io::Result<()> {
    match (&s.error, &s.ami_id) {
        (None, Some(ami)) => writeln!(
            w,
            "final sync {}: {} blocks ({}) in {:.1}s -> {ami}",
            s.server,
            s.blocks,
            bytes(s.bytes),
            s.seconds
        ),
        (e, _) => writeln!(
            w,
            "final sync {}: failed: {}",
            s.server,
            escape_controls(e.as_deref().unwrap_or("no AMI"))
        ),
    }
}

/// What a cutover would do, in order (the change set is printed after it).
pub fn dry_run(
    w: &mut dyn Write,
    at: Option<&str>,
    hooks: &AppHooks,
    deltas: &[ExpectedDelta],
    guardrails: &[String],
) -> io::Result<()> {
    writeln!(w, "dry run: nothing is changed")?;
    writeln!(
        w,
        "1. start: {}",
        at.map_or("now".to_string(), |a| format!("at {a}"))
    )?;
    writeln!(
        w,
        "2. preCutover hooks (the first failure stops the cutover):"
    )?;
    hook_list(w, &hooks.pre_cutover)?;
    writeln!(
        w,
        "3. final sync, expected per server (mean of recent increments):"
    )?;
    for d in deltas {
        if d.increments == 0 {
            writeln!(w, "   {}: no increment recorded yet", d.server)?;
        } else {
            writeln!(
                w,
                "   {}: {} in {:.1}s ({} increment{})",
                d.server,
                bytes(d.bytes),
                d.seconds,
                d.increments,
                if d.increments == 1 { "" } else { "s" }
            )?;
        }
    }
    writeln!(
        w,
        "4. guardrails (replica lag is checked on the final sync's AMIs):"
    )?;
    if guardrails.is_empty() {
        writeln!(
            w,
            "   hold: a test of this definition succeeded since its last change"
        )?;
    }
    for g in guardrails {
        writeln!(w, "   refuse: {g}")?;
    }
    writeln!(
        w,
        "5. on failure, and after `rehost rollback`: postRollback hooks:"
    )?;
    hook_list(w, &hooks.post_rollback)?;
    writeln!(w, "the cutover launch:")
}

fn hook_list(w: &mut dyn Write, hooks: &[AppHook]) -> io::Result<()> {
    if hooks.is_empty() {
        writeln!(w, "   (none)")?;
    }
    for h in hooks {
        writeln!(
            w,
            "   {}: {} (timeout {}s)",
            h.name,
            escape_controls(&h.run.display()),
            h.timeout.as_secs()
        )?;
    }
    Ok(())
}
