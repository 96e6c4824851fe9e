//! The cutover guardrails, pure: what the launch history, the age of the AMIs about to be
//! launched and the servers' inspection verdicts say about cutting over now. No AWS, no
//! clock: the caller reads the state and passes `now`.
//!
//! - [`definition_hash`]: what "the same definition" means. It is the SHA-256 of the cutover
//!   template rendered with health gates and without AMI defaults: everything that shapes what
//!   is launched (servers, instance types, network, key pairs, profiles, private IPs, tags,
//!   groups and their order, gates and timeouts, configure scripts byte for byte, and whatever
//!   later issues add to the template) and nothing else: AMI ids (they change with every
//!   replication), the `test:` blocks and test-only settings (they shape only the test
//!   template), replication settings, descriptions outside the template, and the launch flags
//!   (`--no-health-gate`, `--on-failure`, which the history records beside the hash).
//! - [`evaluate`]: every reason to refuse a cutover, all at once.

use std::collections::BTreeMap;

use rehost_replication::inspect::Verdict;
use rehost_replication::state::{LaunchKind, LaunchMode, LaunchRecord};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::app::{App, Mode};
use crate::template::{RenderOptions, render};

/// `sha256:<hex>` of the launch-relevant definition (see the module comment).
pub fn definition_hash(app: &App) -> String {
    let template = render(app, &RenderOptions::new(Mode::Cutover));
    let digest = Sha256::digest(template.to_json_compact().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The AMI a cutover would launch for one server, and when its replication completed (None:
/// the state did not record that AMI, e.g. an `--ami` override).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchedAmi {
    pub server: String,
    pub ami_id: Option<String>,
    pub replicated_at: Option<OffsetDateTime>,
    pub max_lag_minutes: u32,
}

/// A server's cached inspection verdict, and whether `--accept-risk SERVER` accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InspectionGate {
    pub verdict: Verdict,
    pub accepted: bool,
}

/// What the guardrails weigh.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// [`definition_hash`] of the application about to be cut over.
    pub definition: &'a str,
    /// The application's launches, any order.
    pub history: &'a [LaunchRecord],
    pub amis: &'a [LaunchedAmi],
    /// Per server, where an inspection exists.
    pub inspections: &'a BTreeMap<String, InspectionGate>,
    /// Launched with health gates: a server with no agent to run user data cannot pass them.
    pub health_gate: bool,
    pub now: OffsetDateTime,
}

/// One reason to refuse a cutover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No test launch of this definition succeeded.
    NotTested {
        definition: String,
    },
    /// The newest successful test of this definition predates a launch of another one.
    TestOutdated {
        tested: OffsetDateTime,
        changed: OffsetDateTime,
        other: String,
    },
    NoAmi {
        server: String,
    },
    /// The AMI was not replicated through this state: its age is unknown.
    UnknownAge {
        server: String,
        ami: String,
    },
    Stale {
        server: String,
        ami: String,
        age_minutes: i64,
        max_lag_minutes: u32,
    },
    Inspection {
        server: String,
        verdict: Verdict,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |h: &str| {
            h.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect::<String>()
        };
        match self {
            Refusal::NotTested { definition } => write!(
                f,
                "no test launch of this definition ({}) succeeded: run `rehost launch FILE` (test mode) first",
                short(definition)
            ),
            Refusal::TestOutdated {
                tested,
                changed,
                other,
            } => write!(
                f,
                "the last successful test of this definition ({}) is older than the launch of another definition ({}, {}): test again",
                rfc3339(*tested),
                short(other),
                rfc3339(*changed)
            ),
            Refusal::NoAmi { server } => {
                write!(f, "{server}: no AMI to launch (replicate it first)")
            }
            Refusal::UnknownAge { server, ami } => write!(
                f,
                "{server}: {ami} was not replicated through this state, so its lag is unknown"
            ),
            Refusal::Stale {
                server,
                ami,
                age_minutes,
                max_lag_minutes,
            } => write!(
                f,
                "{server}: {ami} was replicated {} ago, more than maxLagMinutes {max_lag_minutes}: replicate it again",
                minutes(*age_minutes)
            ),
            Refusal::Inspection { server, verdict } => write!(
                f,
                "{server}: inspection verdict {} forbids cutover (fix it and inspect again, or --accept-risk {server})",
                verdict.as_str()
            ),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// `95` -> `1h35m`.
fn minutes(m: i64) -> String {
    if m >= 60 {
        format!("{}h{:02}m", m / 60, m % 60)
    } else {
        format!("{m}m")
    }
}

/// Every reason to refuse cutting over now; empty when every guardrail holds.
pub fn evaluate(facts: &Facts<'_>) -> Vec<Refusal> {
    let mut out = Vec::new();
    out.extend(tested(facts));
    for a in facts.amis {
        out.extend(lag(a, facts.now));
    }
    for (server, gate) in facts.inspections {
        if !gate.accepted && forbids(gate.verdict, facts.health_gate) {
            out.push(Refusal::Inspection {
                server: server.clone(),
                verdict: gate.verdict,
            });
        }
    }
    out
}

/// A verdict that makes a cutover fail for certain. `unknown` is a warning, never a refusal;
/// `xen-only` depends on the instance type, which pre-flight checks.
fn forbids(verdict: Verdict, health_gate: bool) -> bool {
    match verdict {
        Verdict::WillNotBoot => true,
        Verdict::NoAgent => health_gate,
        Verdict::Ready | Verdict::XenOnly | Verdict::Unknown => false,
    }
}

/// The test rule: a test launch of this definition succeeded, and no launch of another
/// definition started after it ("the last change to the definition" is the newest launch,
/// of any mode and outcome, refused ones included, whose definition differs; rollbacks launch
/// nothing and do not count).
fn tested(facts: &Facts<'_>) -> Option<Refusal> {
    let last_test = facts
        .history
        .iter()
        .filter(|l| {
            l.mode == LaunchMode::Test
                && l.kind != LaunchKind::Rollback
                && l.definition == facts.definition
                && l.outcome.succeeded()
        })
        .max_by_key(|l| l.started_at);
    let Some(test) = last_test else {
        return Some(Refusal::NotTested {
            definition: facts.definition.to_string(),
        });
    };
    let change = facts
        .history
        .iter()
        .filter(|l| l.kind != LaunchKind::Rollback && l.definition != facts.definition)
        .max_by_key(|l| l.started_at)?;
    (change.started_at > test.started_at).then(|| Refusal::TestOutdated {
        tested: test.started_at,
        changed: change.started_at,
        other: change.definition.clone(),
    })
}

fn lag(a: &LaunchedAmi, now: OffsetDateTime) -> Option<Refusal> {
    let server = a.server.clone();
    let Some(ami) = a.ami_id.clone() else {
        return Some(Refusal::NoAmi { server });
    };
    let Some(at) = a.replicated_at else {
        return Some(Refusal::UnknownAge { server, ami });
    };
    let age = now - at;
    (age > time::Duration::minutes(i64::from(a.max_lag_minutes))).then(|| Refusal::Stale {
        server,
        ami,
        age_minutes: age.whole_minutes(),
        max_lag_minutes: a.max_lag_minutes,
    })
}

#[cfg(test)]
#[path = "guardrails_tests.rs"]
mod tests;
