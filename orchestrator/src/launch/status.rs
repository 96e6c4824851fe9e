//! `rehost status`: where a migration stands, in one place: per server the last replication
//! and how far behind its schedule it is, per mode the stack and its instances.

use aws_sdk_cloudformation::types::StackStatus;
use rehost_replication::inspect::{Verdict, cached_inspections};
use rehost_replication::state::read_histories;
use rehost_replication::state::{RunPhase, RunStatus};
use rehost_replication::{RunRecord, ServerKey, StateError, StateStore, schedule};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::{App, Frequency, Mode};
use crate::launch::AwsClients;
use crate::launch::stack::{self, InstanceView};

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub application: String,
    pub servers: Vec<ServerStatus>,
    pub stacks: Vec<StackView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerStatus {
    pub server: String,
    pub group: String,
    /// "every 12h" or "once".
    pub schedule: String,
    pub last_run: Option<RunView>,
    pub last_success: Option<RunView>,
    /// Hours since the last successful replication.
    pub lag_hours: Option<f64>,
    /// The last success is older than the schedule allows (or there is none yet).
    pub behind_schedule: bool,
    /// Failed runs since the last success.
    pub failures: usize,
    pub next_run: Option<String>,
    /// The guest inspection's verdict (`ready`, `xen-only`, ...), from the state; null when the
    /// server was never inspected.
    pub verdict: Option<Verdict>,
    pub inspected_at: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    #[serde(serialize_with = "run_status")]
    pub status: RunStatus,
    pub phase: RunPhase,
    pub time: String,
    pub ami_id: Option<String>,
    pub snapshot_ids: Vec<String>,
    pub error: Option<String>,
    pub seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StackView {
    pub mode: Mode,
    pub stack: String,
    /// None when the stack does not exist.
    #[serde(serialize_with = "stack_status")]
    pub status: Option<StackStatus>,
    pub reason: Option<String>,
    pub updated: Option<String>,
    pub instances: Vec<InstanceView>,
    /// Set when AWS could not be asked.
    pub error: Option<String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn run_status<S: Serializer>(status: &RunStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

fn stack_status<S: Serializer>(status: &Option<StackStatus>, s: S) -> Result<S::Ok, S::Error> {
    match status {
        Some(status) => s.serialize_str(status.as_str()),
        None => s.serialize_none(),
    }
}

/// Runs of each server read for its status.
const HISTORY: usize = 50;

/// The replication half, from the state only (no other AWS call).
pub async fn replication(
    app: &App,
    store: Option<&dyn StateStore>,
    now: OffsetDateTime,
) -> Result<Vec<ServerStatus>, StateError> {
    let servers = app.servers_in_launch_order();
    let histories = match store {
        Some(store) => {
            let keys: Vec<ServerKey> = servers
                .iter()
                .map(|s| ServerKey::new(&app.name, &s.id))
                .collect();
            read_histories(store, &keys, HISTORY).await?
        }
        None => vec![Vec::new(); servers.len()],
    };
    let mut inspections = match store {
        Some(store) => {
            cached_inspections(store, &app.name, servers.iter().map(|s| s.id.as_str())).await?
        }
        None => Default::default(),
    };
    let mut out = Vec::new();
    for (s, history) in servers.into_iter().zip(histories) {
        let inspection = inspections.remove(&s.id);
        let view = |r: &RunRecord| RunView {
            run_id: r.run_id.clone(),
            status: r.status,
            phase: r.phase,
            time: rfc3339(r.finished_at.unwrap_or(r.attempted_at)),
            ami_id: r.ami_id.clone(),
            snapshot_ids: r.snapshot_ids(),
            error: r.error.clone(),
            seconds: r.timings.get("total").copied(),
        };
        let success = history.iter().find(|r| r.status == RunStatus::Completed);
        let failures = history
            .iter()
            .take_while(|r| r.status != RunStatus::Completed)
            .filter(|r| r.status == RunStatus::Failed)
            .count();
        let success_time = success.and_then(|r| r.finished_at);
        let lag_hours =
            success_time.map(|t| ((now - t).whole_seconds() as f64 / 3600.0 * 10.0).round() / 10.0);
        let frequency = s.replication.frequency;
        let behind = match frequency {
            Frequency::Hours(h) => lag_hours.is_none_or(|lag| lag > f64::from(h)),
            Frequency::Once => success.is_none(),
        };
        let last_attempt = history.first().map(|r| r.attempted_at);
        let next = schedule::next_run(
            frequency,
            s.replication.seed_time,
            success_time,
            last_attempt,
            now,
        );
        out.push(ServerStatus {
            server: s.id.clone(),
            group: app.group_of(s).name.clone(),
            schedule: frequency.to_string(),
            last_run: history.first().map(view),
            last_success: success.map(view),
            lag_hours,
            behind_schedule: behind,
            failures,
            next_run: next.map(rfc3339),
            verdict: inspection.as_ref().map(|r| r.inspection.verdict),
            inspected_at: inspection.map(|r| rfc3339(r.inspected_at)),
        });
    }
    Ok(out)
}

/// The launch half: each mode's stack and instances.
pub async fn stacks(clients: &AwsClients, app: &App) -> Vec<StackView> {
    let mut out = Vec::new();
    for mode in [Mode::Test, Mode::Cutover] {
        let name = app.stack_name(mode);
        let mut view = StackView {
            mode,
            stack: name.clone(),
            status: None,
            reason: None,
            updated: None,
            instances: vec![],
            error: None,
        };
        match stack::describe(clients, &name).await {
            Ok(None) => {}
            Ok(Some(info)) => {
                view.status = Some(info.status.clone());
                view.reason = info.reason.clone();
                view.updated = info.updated.clone();
                match stack::instances(clients, app, &info.id).await {
                    Ok(list) => view.instances = list,
                    Err(e) => view.error = Some(e.to_string()),
                }
            }
            Err(e) => view.error = Some(e.to_string()),
        }
        out.push(view);
    }
    out
}
