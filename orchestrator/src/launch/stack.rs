//! CloudFormation stacks: create or update (through a change set) the application's stack for a
//! mode, follow its events until it settles, explain a failure, delete it.
//!
//! Every entry point starts by looking at the stack as it is, so a run interrupted at any point
//! (Ctrl-C, crash) and started again converges: an operation still in progress is waited for, a
//! stack left by a failed creation is replaced, an unchanged template is a no-op.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    ChangeSetStatus, ChangeSetType, OnFailure, Parameter, StackStatus, Tag,
};
use aws_smithy_types::DateTime;
use sha2::{Digest, Sha256};

use crate::app::{App, Mode};
use crate::launch::{AwsClients, LaunchError, aws, bucket};
use crate::limits::MAX_INLINE_BODY;
use crate::template::Template;

/// What to do when a launch fails (`--on-failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFailureChoice {
    /// Leave the failed resources in place to investigate.
    Keep,
    /// Roll back to the previous state (a new stack: delete what was created, keep the stack).
    Rollback,
    /// Delete the stack (a new stack only; an update rolls back instead).
    Delete,
}

#[derive(Clone, Debug)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub updated: Option<String>,
}

impl StackInfo {
    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
}

/// One stack event, as shown to the user.
#[derive(Clone, Debug)]
pub struct EventView {
    pub time: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Receives stack events as they arrive (progress bars on a terminal, lines otherwise).
pub trait Observer {
    fn event(&mut self, event: &EventView);
}

/// The stack as it is, or None when it does not exist (or was deleted).
pub async fn describe(clients: &AwsClients, name: &str) -> Result<Option<StackInfo>, LaunchError> {
    match clients.cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks().first().and_then(|s| {
            let status = s
                .stack_status()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default();
            if status == StackStatus::DeleteComplete.as_str() {
                return None;
            }
            Some(StackInfo {
                id: s.stack_id().unwrap_or_default().to_string(),
                name: s.stack_name().unwrap_or(name).to_string(),
                status,
                reason: s.stack_status_reason().map(str::to_string),
                outputs: s
                    .outputs()
                    .iter()
                    .filter_map(|o| {
                        Some((o.output_key()?.to_string(), o.output_value()?.to_string()))
                    })
                    .collect(),
                updated: s
                    .last_updated_time()
                    .or(s.creation_time())
                    .map(|t| t.to_string()),
            })
        })),
        Err(e) => {
            let failure =
                rehost_replication::aws::AwsFailure::from_sdk("cloudformation:DescribeStacks", &e);
            if failure.message.contains("does not exist") {
                Ok(None)
            } else {
                Err(LaunchError::Aws(failure))
            }
        }
    }
}

/// What a deployment started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    Created,
    Updated,
    /// The stack already runs exactly this template and these parameters.
    Unchanged,
}

pub struct StackRequest<'a> {
    pub app: &'a App,
    pub mode: Mode,
    pub template: &'a Template,
    pub on_failure: OnFailureChoice,
    /// Upper bound for waiting on an operation that was already running.
    pub wait_limit: Duration,
}

impl StackRequest<'_> {
    pub fn name(&self) -> String {
        self.app.stack_name(self.mode)
    }

    /// Every parameter with its value (the template's default), so an update never silently
    /// keeps an older AMI.
    fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        if let Some(params) = self.template.body["Parameters"].as_object() {
            for (key, spec) in params {
                if let Some(default) = spec["Default"].as_str() {
                    out.push(
                        Parameter::builder()
                            .parameter_key(key)
                            .parameter_value(default)
                            .build(),
                    );
                }
            }
        }
        out
    }

    fn tags(&self) -> Vec<Tag> {
        let mut tags = vec![
            Tag::builder()
                .key("rehost:app")
                .value(&self.app.name)
                .build(),
            Tag::builder()
                .key("rehost:mode")
                .value(self.mode.as_str())
                .build(),
        ];
        tags.extend(
            self.app
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build()),
        );
        tags
    }

    /// A token naming this exact request, so a retried call after a crash is not run twice.
    fn token(&self, body: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.name().as_bytes());
        h.update(body.as_bytes());
        for p in self.parameters() {
            h.update(p.parameter_key().unwrap_or_default().as_bytes());
            h.update(p.parameter_value().unwrap_or_default().as_bytes());
        }
        let hex: String = h
            .finalize()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("rehost-{hex}")
    }
}

enum Body {
    Inline(String),
    Url(String),
}

async fn body(clients: &AwsClients, req: &StackRequest<'_>) -> Result<(Body, String), LaunchError> {
    let compact = req.template.to_json_compact();
    if compact.len() <= MAX_INLINE_BODY {
        Ok((Body::Inline(compact.clone()), compact))
    } else {
        tracing::info!(
            "template is {} bytes: uploading it to the rehost template bucket",
            compact.len()
        );
        let url = bucket::upload_template(clients, &req.name(), &compact).await?;
        Ok((Body::Url(url), compact))
    }
}

/// Statuses of a stack whose creation failed: it cannot be updated, only replaced.
fn failed_creation(status: &str) -> bool {
    matches!(
        status,
        "ROLLBACK_COMPLETE"
            | "ROLLBACK_FAILED"
            | "CREATE_FAILED"
            | "REVIEW_IN_PROGRESS"
            | "DELETE_FAILED"
    )
}

/// Creates the stack, or updates it through a change set, and returns without waiting for the
/// result. An operation already in progress is waited for first.
pub async fn start(
    clients: &AwsClients,
    req: &StackRequest<'_>,
    observer: &mut dyn Observer,
) -> Result<Started, LaunchError> {
    let name = req.name();
    let (body, text) = body(clients, req).await?;
    let token = req.token(&text);
    let mut existing = describe(clients, &name).await?;
    if let Some(info) = &existing
        && info.in_progress()
        && info.status != "REVIEW_IN_PROGRESS"
    {
        eprintln!(
            "stack {name} is {}: waiting for it to settle first",
            info.status
        );
        wait(clients, &name, None, req.wait_limit, observer)
            .await
            .ok();
        existing = describe(clients, &name).await?;
    }
    if let Some(info) = &existing
        && failed_creation(&info.status)
    {
        eprintln!(
            "stack {name} is {} from a failed creation: deleting it before launching again",
            info.status
        );
        delete(clients, &name, req.wait_limit, observer).await?;
        existing = None;
    }
    match existing {
        None => {
            let mut create = clients
                .cfn
                .create_stack()
                .stack_name(&name)
                .set_parameters(Some(req.parameters()))
                .set_tags(Some(req.tags()))
                .client_request_token(&token)
                .on_failure(match req.on_failure {
                    OnFailureChoice::Keep => OnFailure::DoNothing,
                    OnFailureChoice::Rollback => OnFailure::Rollback,
                    OnFailureChoice::Delete => OnFailure::Delete,
                });
            create = match &body {
                Body::Inline(b) => create.template_body(b),
                Body::Url(u) => create.template_url(u),
            };
            create
                .send()
                .await
                .map_err(aws("cloudformation:CreateStack"))?;
            Ok(Started::Created)
        }
        Some(_) => {
            let change_set =
                create_change_set(clients, req, &body, ChangeSetType::Update, "launch").await?;
            let Some(change_set) = change_set else {
                return Ok(Started::Unchanged);
            };
            clients
                .cfn
                .execute_change_set()
                .change_set_name(&change_set)
                .stack_name(&name)
                .client_request_token(&token)
                .disable_rollback(req.on_failure == OnFailureChoice::Keep)
                .send()
                .await
                .map_err(aws("cloudformation:ExecuteChangeSet"))?;
            Ok(Started::Updated)
        }
    }
}

/// Creates a change set and waits until CloudFormation has computed it. Returns its id, or
/// None when the template changes nothing (the empty change set is deleted).
async fn create_change_set(
    clients: &AwsClients,
    req: &StackRequest<'_>,
    body: &Body,
    kind: ChangeSetType,
    purpose: &str,
) -> Result<Option<String>, LaunchError> {
    let name = req.name();
    let unique = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let mut create = clients
        .cfn
        .create_change_set()
        .stack_name(&name)
        .change_set_name(format!("rehost-{purpose}-{unique}"))
        .change_set_type(kind)
        .set_parameters(Some(req.parameters()))
        .set_tags(Some(req.tags()))
        .description(format!(
            "rehost {purpose} of {} ({})",
            req.app.name, req.mode
        ));
    create = match body {
        Body::Inline(b) => create.template_body(b),
        Body::Url(u) => create.template_url(u),
    };
    let out = match create.send().await {
        Ok(out) => out,
        Err(e) => {
            let failure =
                rehost_replication::aws::AwsFailure::from_sdk("cloudformation:CreateChangeSet", &e);
            // Some endpoints refuse an empty change set up front instead of failing it.
            if failure.message.contains("No updates are to be performed") {
                return Ok(None);
            }
            return Err(LaunchError::Aws(failure));
        }
    };
    let id = out.id().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut interval = Duration::from_millis(500);
    loop {
        let cs = clients
            .cfn
            .describe_change_set()
            .change_set_name(&id)
            .stack_name(&name)
            .send()
            .await
            .map_err(aws("cloudformation:DescribeChangeSet"))?;
        match cs.status() {
            Some(ChangeSetStatus::CreateComplete) | None => return Ok(Some(id)),
            Some(ChangeSetStatus::Failed) => {
                let reason = cs.status_reason().unwrap_or_default().to_string();
                let _ = clients
                    .cfn
                    .delete_change_set()
                    .change_set_name(&id)
                    .stack_name(&name)
                    .send()
                    .await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(None);
                }
                return Err(LaunchError::StackFailed {
                    stack: name,
                    status: "change set FAILED".into(),
                    resource: "change set".into(),
                    reason,
                });
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(LaunchError::Timeout {
                stack: name,
                status: "change set pending".into(),
                minutes: 10,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(5));
    }
}

/// A change set for planning: computed, described by the caller, then deleted.
pub async fn plan_change_set(
    clients: &AwsClients,
    req: &StackRequest<'_>,
) -> Result<Option<String>, LaunchError> {
    let (body, _) = body(clients, req).await?;
    create_change_set(clients, req, &body, ChangeSetType::Update, "plan").await
}

pub async fn delete_change_set(
    clients: &AwsClients,
    stack: &str,
    id: &str,
) -> Result<(), LaunchError> {
    clients
        .cfn
        .delete_change_set()
        .change_set_name(id)
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:DeleteChangeSet"))?;
    Ok(())
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
                status: info.map(|i| i.status).unwrap_or_default(),
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
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
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
            e.status.ends_with("_FAILED")
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
                e.reason.clone().unwrap_or_else(|| e.status.clone()),
            )
        })
}

/// Deletes the stack and waits until it is gone. Deleting a missing stack is not an error.
pub async fn delete(
    clients: &AwsClients,
    name: &str,
    limit: Duration,
    observer: &mut dyn Observer,
) -> Result<bool, LaunchError> {
    let Some(info) = describe(clients, name).await? else {
        return Ok(false);
    };
    let since = Some(DateTime::from(std::time::SystemTime::now()));
    clients
        .cfn
        .delete_stack()
        .stack_name(&info.id)
        .send()
        .await
        .map_err(aws("cloudformation:DeleteStack"))?;
    // Follow by id: the name is free again once the stack is deleted.
    match wait(clients, &info.id, since, limit, observer).await? {
        None => Ok(true),
        Some(after) if after.status == StackStatus::DeleteComplete.as_str() => Ok(true),
        Some(after) => Err(LaunchError::StackFailed {
            stack: name.to_string(),
            status: after.status.clone(),
            resource: name.to_string(),
            reason: after
                .reason
                .unwrap_or_else(|| "deletion did not complete".into()),
        }),
    }
}

/// One launched server, for the final table and `status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceView {
    pub server: String,
    pub group: String,
    pub logical_id: String,
    pub instance_id: Option<String>,
    pub private_ip: Option<String>,
    pub state: Option<String>,
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Ec2Detail {
    private_ip: Option<String>,
    state: Option<String>,
    instance_type: Option<String>,
    image_id: Option<String>,
}

/// The application's instances in this stack, in launch order.
pub async fn instances(
    clients: &AwsClients,
    app: &App,
    stack: &str,
) -> Result<Vec<InstanceView>, LaunchError> {
    let resources = clients
        .cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:DescribeStackResources"))?;
    let physical: BTreeMap<String, String> = resources
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::EC2::Instance"))
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id()?.to_string(),
            ))
        })
        .filter(|(_, id)| id.starts_with("i-"))
        .collect();
    let mut details: BTreeMap<String, Ec2Detail> = BTreeMap::new();
    if !physical.is_empty() {
        let out = clients
            .ec2
            .describe_instances()
            .set_instance_ids(Some(physical.values().cloned().collect()))
            .send()
            .await
            .map_err(aws("ec2:DescribeInstances"))?;
        for reservation in out.reservations() {
            for i in reservation.instances() {
                if let Some(id) = i.instance_id() {
                    details.insert(
                        id.to_string(),
                        Ec2Detail {
                            private_ip: i.private_ip_address().map(str::to_string),
                            state: i
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string()),
                            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                            image_id: i.image_id().map(str::to_string),
                        },
                    );
                }
            }
        }
    }
    Ok(app
        .servers_in_launch_order()
        .into_iter()
        .map(|s| {
            let instance_id = physical.get(&s.logical_id).cloned();
            let d = instance_id
                .as_ref()
                .and_then(|id| details.get(id))
                .cloned()
                .unwrap_or_default();
            InstanceView {
                server: s.id.clone(),
                group: app.group_of(s).name.clone(),
                logical_id: s.logical_id.clone(),
                instance_id,
                private_ip: d.private_ip,
                state: d.state,
                instance_type: d.instance_type,
                image_id: d.image_id,
            }
        })
        .collect())
}

/// Prints the table of servers in launch order.
pub fn print_instances(instances: &[InstanceView]) {
    println!(
        "{:<16} {:<14} {:<21} {:<16} STATE",
        "SERVER", "GROUP", "INSTANCE", "PRIVATE IP"
    );
    for i in instances {
        println!(
            "{:<16} {:<14} {:<21} {:<16} {}",
            i.server,
            i.group,
            i.instance_id.as_deref().unwrap_or("-"),
            i.private_ip.as_deref().unwrap_or("-"),
            i.state.as_deref().unwrap_or("-")
        );
    }
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
            status: status.into(),
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
}
