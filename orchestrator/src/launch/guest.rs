//! What the guest inspections say about a launch (pure): a server that cannot boot on the
//! instance type it gets, one that will not boot at all, and one whose image runs no user data
//! while the health gate waits for its signal are refused; what could not be told, or a server
//! never inspected, is a warning. `--accept-risk SERVER` lets a named server's refusals
//! through, said loudly every time (and recorded in the state by the caller).

use std::collections::{BTreeMap, BTreeSet};

use rehost_replication::inspect::{ServerInspection, Severity, Verdict};

use crate::app::{App, Mode};

/// The hypervisor of an instance type, from DescribeInstanceTypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    Nitro,
    Xen,
}

/// What the launch knows about the guests: each server's cached inspection and the servers
/// whose risks the operator accepts.
#[derive(Debug, Clone, Default)]
pub struct GuestPolicy {
    pub inspections: BTreeMap<String, ServerInspection>,
    pub accept_risk: BTreeSet<String>,
}

/// Refusals of one server let through by `--accept-risk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub server: String,
    pub findings: Vec<String>,
}

/// The guest check of one launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestCheck {
    /// One line per problem, naming the server; any refuses the launch.
    pub refusals: Vec<String>,
    /// Printed, never refusing.
    pub warnings: Vec<String>,
    pub accepted: Vec<Accepted>,
}

/// Checks every server in launch order against its inspection. `hypervisors` maps instance
/// types to their hypervisor (a type missing from it is not judged: another check reports it);
/// `health_gate` is whether the template waits for configure-script signals.
pub fn check(
    app: &App,
    mode: Mode,
    health_gate: bool,
    policy: &GuestPolicy,
    hypervisors: &BTreeMap<String, Hypervisor>,
) -> GuestCheck {
    let mut out = GuestCheck::default();
    let file = app.file.display();
    for server in app.servers_in_launch_order() {
        let id = &server.id;
        let Some(inspection) = policy.inspections.get(id) else {
            out.warnings.push(format!(
                "server {id}: never inspected, so whether it boots on EC2 is not known: run \
                 `rehost inspect {file} --server {id}` (replicate inspects it too)"
            ));
            continue;
        };
        let instance_type = &server.launch(mode).instance_type;
        let mut refusals = Vec::new();
        match inspection.verdict {
            Verdict::Ready => {}
            Verdict::WillNotBoot => refusals.push(format!(
                "server {id}: will not boot: {}",
                reasons(inspection, Severity::Error)
            )),
            Verdict::XenOnly => {
                if hypervisors.get(instance_type) == Some(&Hypervisor::Nitro) {
                    refusals.push(format!(
                        "server {id}: boots only on Xen instance types (no NVMe or ENA driver), \
                         but {instance_type} is a Nitro type: {}; or use a Xen type (m4, c4, t2)",
                        fixes(inspection)
                    ));
                }
            }
            Verdict::NoAgent => {
                if health_gate {
                    refusals.push(format!(
                        "server {id}: nothing in the image runs user data (no cloud-init, \
                         EC2Launch or EC2Config), so its configure script never runs and the \
                         health gate would wait {} minutes for nothing: launch with \
                         --no-health-gate, or {}",
                        server.launch(mode).signal_timeout_minutes,
                        fixes(inspection)
                    ));
                }
            }
            Verdict::Unknown => out.warnings.push(format!(
                "server {id}: inspection could not tell whether it boots on EC2: {}",
                reasons(inspection, Severity::Warning)
            )),
        }
        if refusals.is_empty() {
            if policy.accept_risk.contains(id) {
                out.warnings.push(format!(
                    "--accept-risk {id}: nothing to accept, pre-flight found no guest problem"
                ));
            }
        } else if policy.accept_risk.contains(id) {
            for r in &refusals {
                out.warnings
                    .push(format!("RISK ACCEPTED (--accept-risk {id}): {r}"));
            }
            out.accepted.push(Accepted {
                server: id.clone(),
                findings: refusals,
            });
        } else {
            out.refusals.extend(refusals);
        }
    }
    out
}

/// The messages of the findings of at least `severity`, or the verdict when there are none.
fn reasons(inspection: &ServerInspection, severity: Severity) -> String {
    let list: Vec<&str> = inspection
        .findings
        .iter()
        .filter(|f| f.severity >= severity)
        .map(|f| f.message.as_str())
        .collect();
    if list.is_empty() {
        inspection.verdict.as_str().to_string()
    } else {
        list.join("; ")
    }
}

/// The fixes of the server's error findings, or a pointer to `rehost inspect`.
fn fixes(inspection: &ServerInspection) -> String {
    let mut list: Vec<&str> = Vec::new();
    for f in &inspection.findings {
        if f.severity == Severity::Error
            && let Some(fix) = &f.fix
            && !list.contains(&fix.as_str())
        {
            list.push(fix);
        }
    }
    if list.is_empty() {
        "see `rehost inspect` for the fixes".into()
    } else {
        list.join("; ")
    }
}

#[cfg(test)]
#[path = "guest_tests.rs"]
mod tests;
