//! CloudFormation stacks: create or update (through a change set) the application's stack for a
//! mode, follow its events until it settles, explain a failure, delete it.
//!
//! - `change_set`: computing, executing and deleting change sets
//! - `events`: following a stack's events (the `Observer`), the cause of a failure
//! - `instances`: the launched instances, as `launch` and `status` show them
//!
//! Every entry point starts by looking at the stack as it is, so a run interrupted at any point
//! (Ctrl-C, crash) and started again converges: an operation still in progress is waited for, a
//! stack left by a failed creation is replaced, an unchanged template is a no-op.

mod change_set;
mod events;
mod instances;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::{ChangeSetType, OnFailure, Parameter, StackStatus, Tag};
use aws_smithy_types::DateTime;
use rehost_replication::tags;
use sha2::{Digest, Sha256};

pub use change_set::{delete_change_set, plan_change_set};
pub use events::{
    EventView, Notice, Observer, cause_of_failure, events, first_failure, is_done, is_failure, wait,
};
pub use instances::{InstanceView, instances};

use crate::app::{App, Mode};
use crate::launch::{AwsClients, LaunchError, aws, bucket};
use crate::limits::MAX_INLINE_BODY;
use crate::template::Template;
use change_set::create_change_set;

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
    pub status: StackStatus,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub updated: Option<String>,
}

impl StackInfo {
    pub fn in_progress(&self) -> bool {
        in_progress(&self.status)
    }
}

/// An operation on the stack is still running. Statuses newer than this SDK are judged by
/// CloudFormation's naming (`*_IN_PROGRESS`).
pub fn in_progress(status: &StackStatus) -> bool {
    use StackStatus as S;
    match status {
        S::CreateInProgress
        | S::DeleteInProgress
        | S::ImportInProgress
        | S::ImportRollbackInProgress
        | S::ReviewInProgress
        | S::RollbackInProgress
        | S::UpdateCompleteCleanupInProgress
        | S::UpdateInProgress
        | S::UpdateRollbackCompleteCleanupInProgress
        | S::UpdateRollbackInProgress => true,
        S::CreateComplete
        | S::CreateFailed
        | S::DeleteComplete
        | S::DeleteFailed
        | S::ImportComplete
        | S::ImportRollbackComplete
        | S::ImportRollbackFailed
        | S::RollbackComplete
        | S::RollbackFailed
        | S::UpdateComplete
        | S::UpdateFailed
        | S::UpdateRollbackComplete
        | S::UpdateRollbackFailed => false,
        unknown => unknown.as_str().ends_with("_IN_PROGRESS"),
    }
}

/// A stack left by a failed creation (or one never created, REVIEW_IN_PROGRESS): it cannot be
/// updated, so a launch deletes it and creates it again, and a plan shows a creation.
pub fn replaced_on_launch(status: &StackStatus) -> bool {
    matches!(
        status,
        StackStatus::RollbackComplete
            | StackStatus::RollbackFailed
            | StackStatus::CreateFailed
            | StackStatus::ReviewInProgress
            | StackStatus::DeleteFailed
    )
}

/// A creation or update that ended well.
pub fn succeeded(status: &StackStatus) -> bool {
    matches!(
        status,
        StackStatus::CreateComplete | StackStatus::UpdateComplete
    )
}

/// The stack as it is, or None when it does not exist (or was deleted).
pub async fn describe(clients: &AwsClients, name: &str) -> Result<Option<StackInfo>, LaunchError> {
    match clients.cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks().first().and_then(|s| {
            let status = s
                .stack_status()
                .cloned()
                .unwrap_or_else(|| StackStatus::from(""));
            if status == StackStatus::DeleteComplete {
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
            Tag::builder().key(tags::APP).value(&self.app.name).build(),
            Tag::builder()
                .key(tags::MODE)
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

/// How the template reaches CloudFormation: inline, or through the template bucket.
pub(super) enum Body {
    Inline(String),
    Url(String),
}

/// The template's body and its compact text (what the client token hashes).
pub(super) async fn body(
    clients: &AwsClients,
    req: &StackRequest<'_>,
) -> Result<(Body, String), LaunchError> {
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
        && info.status != StackStatus::ReviewInProgress
    {
        observer.notice(&Notice::WaitingForOperation {
            stack: name.clone(),
            status: info.status.as_str().to_string(),
        });
        wait(clients, &name, None, req.wait_limit, observer)
            .await
            .ok();
        existing = describe(clients, &name).await?;
    }
    if let Some(info) = &existing
        && replaced_on_launch(&info.status)
    {
        observer.notice(&Notice::ReplacingFailedStack {
            stack: name.clone(),
            status: info.status.as_str().to_string(),
        });
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
        Some(after) if after.status == StackStatus::DeleteComplete => Ok(true),
        Some(after) => Err(LaunchError::StackFailed {
            stack: name.to_string(),
            status: after.status.as_str().to_string(),
            resource: name.to_string(),
            reason: after
                .reason
                .unwrap_or_else(|| "deletion did not complete".into()),
        }),
    }
}
