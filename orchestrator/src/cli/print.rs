//! The text the CLI prints, rendered from the libraries' data to any writer: standard output
//! and standard error in the binary, buffers in the tests below, which compare each rendering
//! with a file under `tests/expected/cli/` (`REHOST_BLESS=1` rewrites them).

use std::io::{self, Write};
use std::path::Path;

use aws_sdk_cloudformation::types::{ChangeAction, Replacement};
use rehost::app::App;
use rehost::diag::{Diagnostic, escape_controls};
use rehost::launch::deploy::Outcome;
use rehost::launch::history::{Entry, History};
use rehost::launch::preview::{LaunchPreview, ResourceChange, StackAction};
use rehost::launch::stack::{EventView, InstanceView, Notice, Started};
use rehost::launch::status::Status;
use rehost::replication_jobs::Reused;
use rehost_replication::ServerReport;
use rehost_replication::inspect::{Inspected, ServerInspection};
use rehost_replication::state::RunStatus;

/// `FILE:LINE:COL: severity: message`, one line each.
pub fn diagnostics(w: &mut dyn Write, file: &Path, list: &[Diagnostic]) -> io::Result<()> {
    for d in list {
        writeln!(w, "{}", d.display(file))?;
    }
    Ok(())
}

/// `FILE: ok: ...`: a valid application in one line.
pub fn valid_app(w: &mut dyn Write, file: &Path, app: &App) -> io::Result<()> {
    writeln!(
        w,
        "{}: ok: application {}, {} servers in {} groups, {} launch waves",
        file.display(),
        app.name,
        app.servers.len(),
        app.groups.len(),
        app.graph.waves().len()
    )
}

/// The servers of a stack in launch order.
pub fn instances(w: &mut dyn Write, instances: &[InstanceView]) -> io::Result<()> {
    writeln!(
        w,
        "{:<16} {:<14} {:<21} {:<16} STATE",
        "SERVER", "GROUP", "INSTANCE", "PRIVATE IP"
    )?;
    for i in instances {
        writeln!(
            w,
            "{:<16} {:<14} {:<21} {:<16} {}",
            i.server,
            i.group,
            i.instance_id.as_deref().unwrap_or("-"),
            i.private_ip.as_deref().unwrap_or("-"),
            i.state.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// How a launch ended; `file` is the application file, for the follow-up command.
pub fn outcome(w: &mut dyn Write, file: &Path, outcome: &Outcome) -> io::Result<()> {
    match outcome {
        Outcome::Unchanged {
            stack,
            instances: list,
        } => {
            writeln!(w, "stack {stack} is up to date: nothing to launch")?;
            instances(w, list)
        }
        Outcome::Started { stack, started } => {
            let verb = if *started == Started::Created {
                "creating"
            } else {
                "updating"
            };
            writeln!(
                w,
                "{verb} stack {stack}; follow it with `rehost status {}`",
                file.display()
            )
        }
        Outcome::Completed {
            stack,
            status,
            instances: list,
        } => {
            writeln!(w, "stack {stack}: {}", status.as_str())?;
            instances(w, list)
        }
    }
}

/// What a launch would do: the resources of a new stack by wave, or an update's change set.
pub fn preview(w: &mut dyn Write, preview: &LaunchPreview) -> io::Result<()> {
    match preview.action {
        StackAction::Create => {
            let count: usize = preview.waves.iter().map(|w| w.resources.len()).sum();
            writeln!(
                w,
                "plan: create stack {} ({} mode): {count} resources in {} waves",
                preview.stack,
                preview.mode,
                preview.waves.len()
            )?;
            for wave in &preview.waves {
                writeln!(w, "wave {}: {}", wave.wave, wave.groups.join(", "))?;
                for r in &wave.resources {
                    let who = r
                        .server
                        .as_deref()
                        .map(|s| format!("server {s}"))
                        .unwrap_or_else(|| format!("group {}", r.group));
                    writeln!(
                        w,
                        "  + {:<22} {:<36} {who}: {}",
                        r.logical_id, r.resource_type, r.detail
                    )?;
                }
            }
            Ok(())
        }
        StackAction::None => writeln!(
            w,
            "plan: stack {} ({} mode) is up to date: no changes",
            preview.stack, preview.mode
        ),
        StackAction::Update => {
            writeln!(
                w,
                "plan: update stack {} ({} mode)",
                preview.stack, preview.mode
            )?;
            for c in &preview.changes {
                change_line(w, c)?;
            }
            let count = |a: ChangeAction| preview.changes.iter().filter(|c| c.action == a).count();
            writeln!(
                w,
                "{} changes: {} add, {} modify, {} remove",
                preview.changes.len(),
                count(ChangeAction::Add),
                count(ChangeAction::Modify),
                count(ChangeAction::Remove)
            )?;
            for warning in &preview.warnings {
                writeln!(w, "warning: {warning}")?;
            }
            Ok(())
        }
    }
}

/// One resource change of a change set: action, logical id, server and group, the properties
/// that change with how each lands, and whether CloudFormation says it replaces the instance.
fn change_line(w: &mut dyn Write, c: &ResourceChange) -> io::Result<()> {
    let who = match (&c.server, &c.group) {
        (Some(s), Some(g)) => format!(" (server {s}, group {g})"),
        (None, Some(g)) => format!(" (group {g})"),
        _ => String::new(),
    };
    let props: Vec<String> = c
        .properties
        .iter()
        .map(|p| format!("{} [{}]", p.name, p.effect.as_str()))
        .collect();
    let replacement = match c.replacement {
        Some(Replacement::True) => " -- replaces the instance",
        Some(Replacement::Conditional) => " -- may replace the instance",
        _ => "",
    };
    writeln!(
        w,
        "  {:<7} {}{who}: {}{replacement}",
        c.action.as_str(),
        c.logical_id,
        if props.is_empty() {
            "-".to_string()
        } else {
            props.join(", ")
        }
    )
}

/// What a refused cutover update would have done to running instances (before the error).
pub fn refused_changes(
    w: &mut dyn Write,
    stack: &str,
    changes: &[ResourceChange],
) -> io::Result<()> {
    writeln!(
        w,
        "refused: updating {stack} would replace or remove these running instances:"
    )?;
    for c in changes {
        change_line(w, c)?;
    }
    Ok(())
}

/// Every guardrail that refuses a cutover (before the error).
pub fn guardrails_refused(w: &mut dyn Write, reasons: &[String]) -> io::Result<()> {
    writeln!(w, "refused: the cutover guardrails do not hold:")?;
    for r in reasons {
        writeln!(w, "  - {r}")?;
    }
    Ok(())
}

/// Guardrails overridden with `--force --reason`: what was let through, and why.
pub fn guardrails_overridden(w: &mut dyn Write, reasons: &[String], why: &str) -> io::Result<()> {
    writeln!(
        w,
        "warning: cutover forced past {} guardrail{} (reason: {why}), recorded in the history:",
        reasons.len(),
        if reasons.len() == 1 { "" } else { "s" }
    )?;
    for r in reasons {
        writeln!(w, "  - {r}")?;
    }
    Ok(())
}

/// Replication and launch state of every server.
pub fn status(w: &mut dyn Write, status: &Status) -> io::Result<()> {
    writeln!(w, "application {}", status.application)?;
    writeln!(
        w,
        "{:<14} {:<12} {:<10} {:<22} {:<24} {:>8}  {:<13}  NOTE",
        "SERVER", "GROUP", "SCHEDULE", "LAST SUCCESS", "AMI", "LAG (h)", "VERDICT"
    )?;
    for s in &status.servers {
        let success = s.last_success.as_ref();
        let mut note = Vec::new();
        if s.behind_schedule {
            note.push("behind schedule".to_string());
        }
        if s.failures > 0 {
            let last_error = s
                .last_run
                .as_ref()
                .and_then(|r| r.error.clone())
                .unwrap_or_default();
            note.push(format!(
                "{} failed run(s) since, last: {last_error}",
                s.failures
            ));
        }
        if let Some(run) = &s.last_run
            && run.status == RunStatus::Running
        {
            note.push(format!(
                "run {} {} ({})",
                run.run_id,
                run.status.as_str(),
                run.phase
            ));
        }
        writeln!(
            w,
            "{:<14} {:<12} {:<10} {:<22} {:<24} {:>8}  {:<13}  {}",
            s.server,
            s.group,
            s.schedule,
            success.map_or("never", |r| r.time.as_str()),
            success.and_then(|r| r.ami_id.as_deref()).unwrap_or("-"),
            s.lag_hours.map_or("-".to_string(), |l| format!("{l:.1}")),
            s.verdict.map_or("not inspected", |v| v.as_str()),
            note.join("; ")
        )?;
    }
    for st in &status.stacks {
        match (&st.status, &st.error) {
            (_, Some(e)) => writeln!(w, "{} stack {}: unknown ({e})", st.mode, st.stack)?,
            (None, None) => writeln!(w, "{} stack {}: not launched", st.mode, st.stack)?,
            (Some(status), None) => {
                writeln!(
                    w,
                    "{} stack {}: {}{}",
                    st.mode,
                    st.stack,
                    status.as_str(),
                    st.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )?;
                if !st.instances.is_empty() {
                    instances(w, &st.instances)?;
                }
            }
        }
    }
    Ok(())
}

/// One line per replicated server (and one per warning).
pub fn report_line(w: &mut dyn Write, report: &ServerReport) -> io::Result<()> {
    match (&report.ami_id, &report.error) {
        (Some(ami), _) => {
            let uploaded: u64 = report.snapshots.iter().map(|s| s.blocks_uploaded).sum();
            let total: u64 = report.snapshots.iter().map(|s| s.blocks_total).sum();
            writeln!(
                w,
                "{}: {ami} ({uploaded} of {total} blocks sent, {:.1} s){}",
                report.server,
                report.seconds,
                if report.resumed { ", resumed" } else { "" }
            )?;
        }
        (None, error) => writeln!(
            w,
            "{}: failed: {}",
            report.server,
            error.as_deref().unwrap_or("unknown error")
        )?,
    }
    for warning in &report.warnings {
        writeln!(w, "{}: warning: {warning}", report.server)?;
    }
    Ok(())
}

/// A server `migrate --max-age` launches from its existing AMI.
pub fn reused(w: &mut dyn Write, reused: &Reused) -> io::Result<()> {
    writeln!(
        w,
        "{}: reusing {} from {}",
        reused.server, reused.ami_id, reused.created_at
    )
}

/// A stack event, as one line (logs, pipes).
pub fn event(w: &mut dyn Write, e: &EventView) -> io::Result<()> {
    let reason = e
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    writeln!(
        w,
        "{} {:<24} {:<36} {}{reason}",
        e.time,
        e.logical_id,
        e.resource_type,
        e.status.as_str()
    )
}

/// What a launch does before its own operation.
pub fn notice(w: &mut dyn Write, notice: &Notice) -> io::Result<()> {
    match notice {
        Notice::WaitingForOperation { stack, status } => {
            writeln!(
                w,
                "stack {stack} is {status}: waiting for it to settle first"
            )
        }
        Notice::ReplacingFailedStack { stack, status } => writeln!(
            w,
            "stack {stack} is {status} from a failed creation: deleting it before launching again"
        ),
    }
}

#[cfg(test)]
#[path = "print_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "print_history_tests.rs"]
mod history_tests;

#[path = "print_runbook.rs"]
mod runbook;
pub use runbook::*;

/// One line per server with its verdict, then its findings and their fixes.
/// A pre-flight warning.
pub fn warning(err: &mut dyn Write, warning: &str) -> io::Result<()> {
    writeln!(err, "warning: {warning}")
}

/// A server whose disks are unchanged since its cached inspection (to stderr: the report
/// itself is the same either way).
pub fn inspection_reused(err: &mut dyn Write, inspected: &Inspected) -> io::Result<()> {
    writeln!(
        err,
        "{}: disks unchanged since {}: not read again (--fresh reads them)",
        inspected.inspection.server,
        inspected
            .inspected_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    )
}

pub fn inspections(out: &mut dyn Write, reports: &[ServerInspection]) -> io::Result<()> {
    for r in reports {
        let mut about = Vec::new();
        if let Some(os) = &r.os {
            about.push(match &os.version {
                Some(v) => format!("{} {v}", os.name),
                None => os.name.clone(),
            });
        }
        about.extend(r.architecture.map(|a| a.as_str().to_string()));
        about.extend(r.boot_mode.map(|b| b.as_str().to_string()));
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        writeln!(out, "{}: {}{about}", r.server, r.verdict.as_str())?;
        for f in &r.findings {
            writeln!(
                out,
                "  {:<7} {}: {}",
                f.severity.as_str(),
                f.code,
                f.message
            )?;
            if let Some(fix) = &f.fix {
                writeln!(out, "          fix: {fix}")?;
            }
        }
    }
    Ok(())
}

/// The launch history and replication runs, newest first: one line each, then a launch's
/// failure, override, hooks and final sync indented below it.
pub fn history(w: &mut dyn Write, h: &History) -> io::Result<()> {
    writeln!(w, "application {}", h.application)?;
    if h.entries.is_empty() {
        return writeln!(w, "no launches or replications recorded");
    }
    writeln!(
        w,
        "{:<21} {:<12} {:<8} {:<10} DETAIL",
        "STARTED", "WHAT", "MODE", "OUTCOME"
    )?;
    for e in &h.entries {
        match e {
            Entry::Launch(l) => {
                let definition: String = l
                    .definition
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                let gate = if l.health_gate {
                    ""
                } else {
                    ", no health gate"
                };
                writeln!(
                    w,
                    "{:<21} {:<12} {:<8} {:<10} {} definition {definition}{gate}{}",
                    utc(l.started_at),
                    l.kind.as_str(),
                    l.mode.as_str(),
                    l.outcome.as_str(),
                    l.stack,
                    l.caller
                        .as_ref()
                        .map(|c| format!(" by {c}"))
                        .unwrap_or_default()
                )?;
                if let Some(f) = &l.failure {
                    let at = f
                        .resource
                        .as_ref()
                        .map(|r| format!("{r}: "))
                        .unwrap_or_default();
                    // CloudFormation's reasons carry what the instance signalled: guest text.
                    for reason in &f.reasons {
                        writeln!(w, "    {at}{}", escape_controls(reason))?;
                    }
                }
                if let Some(o) = &l.forced {
                    let by = o.by.as_deref().unwrap_or("unknown caller");
                    writeln!(w, "    forced by {by} at {}: {}", utc(o.at), o.reason)?;
                    for r in &o.overridden {
                        writeln!(w, "      overrode: {r}")?;
                    }
                }
                for hk in &l.hooks {
                    writeln!(
                        w,
                        "    hook {} {}: {} ({:.1}s{})",
                        hk.phase.as_str(),
                        hk.name,
                        hk.outcome.as_str(),
                        hk.seconds,
                        hk.exit_code
                            .map(|c| format!(", exit {c}"))
                            .unwrap_or_default()
                    )?;
                }
                for s in &l.final_sync {
                    match &s.error {
                        None => writeln!(
                            w,
                            "    final sync {}: {} blocks, {} in {:.1}s",
                            s.server,
                            s.blocks,
                            bytes(s.bytes),
                            s.seconds
                        )?,
                        Some(e) => writeln!(w, "    final sync {}: failed: {e}", s.server)?,
                    }
                }
            }
            Entry::Replication(r) => {
                let detail = match (&r.ami_id, &r.error) {
                    (Some(ami), _) => format!(
                        "{} {ami}, {} blocks changed ({})",
                        r.server,
                        r.blocks_changed,
                        bytes(r.bytes_uploaded)
                    ),
                    (None, Some(e)) => format!("{}: {}", r.server, escape_controls(e)),
                    (None, None) => r.server.clone(),
                };
                writeln!(
                    w,
                    "{:<21} {:<12} {:<8} {:<10} {detail}",
                    utc(r.started_at),
                    "replication",
                    "-",
                    r.status.as_str(),
                )?;
            }
        }
    }
    Ok(())
}

fn utc(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Bytes in the largest binary unit that keeps a whole number above 1.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
