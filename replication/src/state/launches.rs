//! Launch history: what the state records of every launch of an application (`launch`,
//! `migrate`, the `cutover` runbook, `rollback`), whatever its end: the definition it launched,
//! the AMIs, who ran it, how it ended, any override of the cutover guardrails, and for the
//! runbook its hooks and final sync. One record per launch, written when it starts and again
//! when it ends: on an object store, one object per launch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::records::StoredText;

/// Which stack a launch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchMode {
    Test,
    Cutover,
}

stored_text!(LaunchMode {
    Test => "test",
    Cutover => "cutover",
});

/// The command that launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchKind {
    Launch,
    Migrate,
    /// The `cutover` runbook: hooks, final sync, guardrails, the cutover launch.
    Cutover,
    /// `rollback`: the cutover stack deleted, `postRollback` hooks run.
    Rollback,
}

stored_text!(LaunchKind {
    Launch => "launch",
    Migrate => "migrate",
    Cutover => "cutover",
    Rollback => "rollback",
});

/// How a launch ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchOutcome {
    /// Started and not ended: still going, or the process was killed.
    Running,
    /// Followed until the stack succeeded (a rollback: the stack is gone).
    Succeeded,
    /// The stack already ran this template with these parameters.
    Unchanged,
    /// Created or updated and not followed (`--no-wait`, or no longer followed after a
    /// signal): its end is CloudFormation's.
    Started,
    /// The stack failed, timed out, or AWS failed; a hook or the final sync failed.
    Failed,
    /// Stopped before anything changed in AWS: pre-flight, guardrails, a refused replacement,
    /// a foreign stack.
    Refused,
    /// Interrupted by the operator (Ctrl-C, SIGTERM, SIGHUP) before the launch started: a
    /// launch before its stack was created or updated, a cutover runbook (rolled back) during
    /// its hooks or final sync.
    Cancelled,
}

stored_text!(LaunchOutcome {
    Running => "running",
    Succeeded => "succeeded",
    Unchanged => "unchanged",
    Started => "started",
    Failed => "failed",
    Refused => "refused",
    Cancelled => "cancelled",
});

impl LaunchOutcome {
    /// The stack runs this launch's template, as far as rehost followed it.
    pub fn succeeded(self) -> bool {
        matches!(self, LaunchOutcome::Succeeded | LaunchOutcome::Unchanged)
    }
}

/// One launch of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// UTC start time and random bits, e.g. `20250301T120000Z-1f2e3d4c`: ids sort by time.
    pub launch_id: String,
    pub kind: LaunchKind,
    pub mode: LaunchMode,
    pub stack: String,
    /// The launch-relevant definition's hash (the orchestrator's `definition_hash`).
    pub definition: String,
    /// Launched with health gates (false: `--no-health-gate`).
    pub health_gate: bool,
    /// The AMI of every server, as launched.
    pub amis: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: LaunchOutcome,
    /// Why it failed or was refused.
    pub failure: Option<LaunchFailure>,
    /// Who ran it: the caller's ARN (STS GetCallerIdentity).
    pub caller: Option<String>,
    /// The guardrails let through with `--force --reason`.
    pub forced: Option<Override>,
    /// The runbook's hooks, in the order they ran.
    pub hooks: Vec<HookRecord>,
    /// The runbook's final sync, per server.
    pub final_sync: Vec<SyncRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchFailure {
    /// The first resource that failed, when a stack failed.
    pub resource: Option<String>,
    /// CloudFormation's reason, or every refusal (pre-flight findings, guardrails).
    pub reasons: Vec<String>,
}

/// Guardrails overridden with `--force --reason TEXT`: who, when, why, and what was overridden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub reason: String,
    pub by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The guardrails that would have refused the launch.
    pub overridden: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPhase {
    PreCutover,
    PostRollback,
}

impl HookPhase {
    /// The application file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreCutover => "preCutover",
            HookPhase::PostRollback => "postRollback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookOutcome {
    Succeeded,
    /// Exited non-zero or was killed by a signal.
    Failed,
    /// Ran past its timeout and was killed.
    TimedOut,
    /// Could not be started (no such program, not executable).
    NotStarted,
    /// The operator interrupted it.
    Cancelled,
}

impl HookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Succeeded => "succeeded",
            HookOutcome::Failed => "failed",
            HookOutcome::TimedOut => "timed-out",
            HookOutcome::NotStarted => "not-started",
            HookOutcome::Cancelled => "cancelled",
        }
    }
}

/// One hook as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    pub phase: HookPhase,
    pub name: String,
    /// The command as declared (argv joined, or the shell text).
    pub command: String,
    pub outcome: HookOutcome,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// Standard output and error as they came, the last part when there was more.
    pub output: String,
    /// Output before `output` was dropped (bytes).
    pub output_dropped: u64,
}

/// One server's final increment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub server: String,
    pub ami_id: Option<String>,
    pub run_id: String,
    /// Blocks and bytes sent by the final increment: the delta the users' downtime waits for.
    pub blocks: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: StoredText + Serialize + std::fmt::Debug + PartialEq>() {
        for &v in T::ALL {
            assert_eq!(T::from_text(v.as_str()), Some(v));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::from(v.as_str()),
                "stored text is the JSON name"
            );
        }
        assert_eq!(T::from_text("bogus"), None);
    }

    #[test]
    fn launch_texts_round_trip_and_match_the_json_names() {
        round_trips::<LaunchMode>();
        round_trips::<LaunchKind>();
        round_trips::<LaunchOutcome>();
        for p in [HookPhase::PreCutover, HookPhase::PostRollback] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(
            serde_json::to_value(HookOutcome::TimedOut).unwrap(),
            HookOutcome::TimedOut.as_str()
        );
    }
}
