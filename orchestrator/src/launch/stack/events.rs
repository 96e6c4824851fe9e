//! Following a stack: its events as they arrive, handed to an observer (progress bars or lines
//! in the CLI), until it settles; and the first failure among them, which explains a failed
//! launch.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::ResourceStatus;
use aws_smithy_types::DateTime;

use crate::app::App;
use crate::launch::{AwsClients, LaunchError, aws};
use crate::template::Template;

use super::info::{StackInfo, describe};

/// One stack event, as shown to the user.
#[derive(Clone, Debug)]
pub struct EventView {
    pub time: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: ResourceStatus,
    pub reason: Option<String>,
}

/// Something a launch does before its own operation starts, worth telling the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Another operation on the stack is running: it is waited for first.
    WaitingForOperation { stack: String, status: String },
    /// The stack is left from a failed creation: it is deleted and created again.
    ReplacingFailedStack { stack: String, status: String },
}

/// Follows a launch as it goes: progress bars on a terminal, lines otherwise (the CLI's).
pub trait Observer {
    /// The template about to be deployed, before any stack operation.
    fn deploying(&mut self, _app: &App, _template: &Template) {}
    fn notice(&mut self, notice: &Notice);
    /// A pre-flight warning (a guest that could not be judged, an accepted risk), before any
    /// stack operation; printed every time.
    fn warning(&mut self, _warning: &str) {}
    /// A stack event, each once, oldest first.
    fn event(&mut self, event: &EventView);
}

/// Whether a resource (or the stack itself) reports a failure. Statuses newer than this SDK
/// are judged by CloudFormation's naming (`*_FAILED`).
pub fn is_failure(status: &ResourceStatus) -> bool {
    use ResourceStatus as S;
    match status {
        S::CreateFailed
        | S::DeleteFailed
        | S::ExportFailed
        | S::ExportRollbackFailed
        | S::ImportFailed
        | S::ImportRollbackFailed
        | S::RollbackFailed
        | S::UpdateFailed
        | S::UpdateRollbackFailed => true,
        S::CreateComplete
        | S::CreateInProgress
        | S::DeleteComplete
        | S::DeleteInProgress
        | S::DeleteSkipped
        | S::ExportComplete
        | S::ExportInProgress
        | S::ExportRollbackComplete
        | S::ExportRollbackInProgress
        | S::ImportComplete
        | S::ImportInProgress
        | S::ImportRollbackComplete
        | S::ImportRollbackInProgress
        | S::RollbackComplete
        | S::RollbackInProgress
        | S::UpdateComplete
        | S::UpdateInProgress
        | S::UpdateRollbackComplete
        | S::UpdateRollbackInProgress => false,
        unknown => unknown.as_str().ends_with("_FAILED"),
    }
}

/// Whether a resource finished being created or updated (a step of a launch's progress).
pub fn is_done(status: &ResourceStatus) -> bool {
    matches!(
        status,
        ResourceStatus::CreateComplete | ResourceStatus::UpdateComplete
    )
}

/// Follows the stack until it settles, reporting each new event; returns the settled stack.
/// Polling is bounded: 1 s growing to 10 s between polls, and `limit` in all.
pub async fn wait(
    clients: &AwsClients,
    name: &str,
    since: Option<DateTime>,
    limit: Duration,
    observer: &mut dyn Observer,
) -> Result<Option<StackInfo>, LaunchError> {
    let started = Instant::now();
    let mut seen: HashSet<String> = HashSet::new();
    let mut interval = Duration::from_secs(1);
    loop {
        let info = describe(clients, name).await?;
        let settled = info.as_ref().is_none_or(|i| !i.in_progress());
        if let Some(info) = &info {
            report_new_events(clients, &info.id, since, &mut seen, observer).await?;
        }
        if settled {
            return Ok(info);
        }
        if started.elapsed() > limit {
            return Err(LaunchError::Timeout {
                stack: name.to_string(),
                status: info
                    .map(|i| i.status.as_str().to_string())
                    .unwrap_or_default(),
                minutes: limit.as_secs() / 60,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval + interval / 2).min(Duration::from_secs(10));
    }
}

async fn report_new_events(
    clients: &AwsClients,
    stack_id: &str,
    since: Option<DateTime>,
    seen: &mut HashSet<String>,
    observer: &mut dyn Observer,
) -> Result<(), LaunchError> {
    let events = events(clients, stack_id, since).await?;
    for (id, event) in events {
        if seen.insert(id) {
            observer.event(&event);
        }
    }
    Ok(())
}

/// The stack's events since `since` (all when None), oldest first, with their ids.
pub async fn events(
    clients: &AwsClients,
    stack: &str,
    since: Option<DateTime>,
) -> Result<Vec<(String, EventView)>, LaunchError> {
    // The newest page is enough while following a launch: events arrive in order.
    let out = clients
        .cfn
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:DescribeStackEvents"))?;
    let mut list: Vec<(String, DateTime, EventView)> = out
        .stack_events()
        .iter()
        .filter(|e| match (since, e.timestamp()) {
            (Some(since), Some(t)) => t.secs() >= since.secs(),
            _ => true,
        })
        .map(|e| {
            let time = e.timestamp().copied().unwrap_or(DateTime::from_secs(0));
            (
                e.event_id().unwrap_or_default().to_string(),
                time,
                EventView {
                    time: time
                        .fmt(aws_smithy_types::date_time::Format::DateTime)
                        .unwrap_or_default(),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: e
                        .resource_status()
                        .cloned()
                        .unwrap_or_else(|| ResourceStatus::from("")),
                    reason: e.resource_status_reason().map(str::to_string),
                },
            )
        })
        .collect();
    list.sort_by_key(|(_, t, _)| (t.secs(), t.subsec_nanos()));
    Ok(list.into_iter().map(|(id, _, e)| (id, e)).collect())
}

/// The first resource that failed since `since`, and why: the cause, not the cancellations that
/// follow it.
pub async fn first_failure(
    clients: &AwsClients,
    stack: &str,
    since: Option<DateTime>,
) -> Result<Option<(String, String)>, LaunchError> {
    let events: Vec<EventView> = events(clients, stack, since)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    Ok(cause_of_failure(&events))
}

/// Among events oldest first: the first resource that failed, and CloudFormation's reason. The
/// stack's own events and the cancellations a failure triggers in its siblings are not causes.
pub fn cause_of_failure(events: &[EventView]) -> Option<(String, String)> {
    events
        .iter()
        .find(|e| {
            is_failure(&e.status)
                && e.resource_type != "AWS::CloudFormation::Stack"
                && !e
                    .reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("cancelled")
        })
        .map(|e| {
            (
                e.logical_id.clone(),
                e.reason
                    .clone()
                    .unwrap_or_else(|| e.status.as_str().to_string()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        logical_id: &str,
        resource_type: &str,
        status: &str,
        reason: Option<&str>,
    ) -> EventView {
        EventView {
            time: String::new(),
            logical_id: logical_id.into(),
            resource_type: resource_type.into(),
            status: ResourceStatus::from(status),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn the_cause_is_the_first_failed_resource_not_the_cancellations_after_it() {
        let events = [
            event(
                "shop",
                "AWS::CloudFormation::Stack",
                "CREATE_IN_PROGRESS",
                Some("User Initiated"),
            ),
            event("Shopdb", "AWS::EC2::Instance", "CREATE_COMPLETE", None),
            event(
                "Tomcat02",
                "AWS::EC2::Instance",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
            ),
            event(
                "DatabaseGate",
                "AWS::CloudFormation::WaitCondition",
                "CREATE_FAILED",
                Some(
                    "WaitCondition received failed message: 'configure script exited with 4' for uniqueId: shopdb",
                ),
            ),
            event(
                "Tomcat01",
                "AWS::EC2::Instance",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
            ),
            event(
                "shop",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to create: [DatabaseGate]"),
            ),
        ];
        let (resource, reason) = cause_of_failure(&events).unwrap();
        assert_eq!(resource, "DatabaseGate");
        assert!(reason.contains("configure script exited with 4"));
        assert_eq!(cause_of_failure(&events[..2]), None);
    }

    #[test]
    fn failures_are_recognised_by_status_including_unknown_ones() {
        assert!(is_failure(&ResourceStatus::CreateFailed));
        assert!(is_failure(&ResourceStatus::from("SOMETHING_NEW_FAILED")));
        assert!(!is_failure(&ResourceStatus::CreateComplete));
        assert!(!is_failure(&ResourceStatus::from(
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        )));
        assert!(is_done(&ResourceStatus::UpdateComplete));
        assert!(!is_done(&ResourceStatus::DeleteComplete));
    }
}
