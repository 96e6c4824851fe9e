//! Creating or updating a stack (through a change set) and deleting it, each after looking at
//! the stack as it is, so an interrupted run started again converges. Only the application's
//! own stack (tagged `rehost:app` and `rehost:mode`) is ever updated or deleted, and a cutover
//! change set that would replace or remove instances runs only when the operator said `--yes`.

use std::time::Duration;

use aws_sdk_cloudformation::types::{ChangeSetType, OnFailure, StackStatus};
use aws_smithy_types::DateTime;

use crate::app::{App, Mode};
use crate::launch::preview::{self, ResourceChange};
use crate::launch::{AwsClients, LaunchError, aws};

use super::change_set::{create_change_set, delete_change_set};
use super::events::{Notice, Observer, wait};
use super::info::{StackInfo, describe, replaced_on_launch};
use super::request::{Body, OnFailureChoice, StackRequest, Started, body};

/// Creates the stack, or updates it through a change set, and returns without waiting for the
/// result. An operation already in progress is waited for first.
pub async fn start(
    clients: &AwsClients,
    req: &StackRequest<'_>,
    observer: &mut dyn Observer,
) -> Result<Started, LaunchError> {
    let name = req.name();
    let mut existing = describe(clients, &name).await?;
    if let Some(info) = &existing {
        info.check_owner(&req.app.name, req.mode)?;
    }
    let (body, text) = body(clients, req).await?;
    let token = req.token(&text);
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
        if let Some(info) = &existing {
            info.check_owner(&req.app.name, req.mode)?;
        }
    }
    if let Some(info) = &existing
        && replaced_on_launch(&info.status)
    {
        observer.notice(&Notice::ReplacingFailedStack {
            stack: name.clone(),
            status: info.status.as_str().to_string(),
        });
        delete_checked(clients, info, req.wait_limit, observer).await?;
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
        Some(info) => {
            let change_set =
                create_change_set(clients, req, &body, ChangeSetType::Update, "launch").await?;
            let Some(change_set) = change_set else {
                return Ok(Started::Unchanged);
            };
            if req.mode == Mode::Cutover && !req.allow_replacement {
                refuse_replacements(clients, req, &info, &change_set).await?;
            }
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

/// Deletes the application's stack of a mode and waits until it is gone. Deleting a missing
/// stack is not an error (false); a stack that is not this application's is refused.
pub async fn delete(
    clients: &AwsClients,
    app: &App,
    mode: Mode,
    limit: Duration,
    observer: &mut dyn Observer,
) -> Result<bool, LaunchError> {
    let Some(info) = describe(clients, &app.stack_name(mode)).await? else {
        return Ok(false);
    };
    info.check_owner(&app.name, mode)?;
    delete_checked(clients, &info, limit, observer).await?;
    Ok(true)
}

/// Refuses a cutover change set that would replace or remove instances: it is deleted
/// unexecuted, and the error carries the changes that endanger instances.
async fn refuse_replacements(
    clients: &AwsClients,
    req: &StackRequest<'_>,
    info: &StackInfo,
    change_set: &str,
) -> Result<(), LaunchError> {
    let described = preview::describe_changes(clients, req, info, change_set).await;
    let endangered: Vec<ResourceChange> = match described {
        Ok(changes) => changes
            .into_iter()
            .filter(ResourceChange::endangers_instance)
            .collect(),
        Err(e) => {
            // Never execute what could not be reviewed.
            let _ = delete_change_set(clients, &info.name, change_set).await;
            return Err(e);
        }
    };
    if endangered.is_empty() {
        return Ok(());
    }
    delete_change_set(clients, &info.name, change_set).await?;
    Err(LaunchError::WouldReplace {
        stack: info.name.clone(),
        changes: endangered,
    })
}

/// Deletes a stack already checked to be the application's, and waits until it is gone.
async fn delete_checked(
    clients: &AwsClients,
    info: &StackInfo,
    limit: Duration,
    observer: &mut dyn Observer,
) -> Result<(), LaunchError> {
    let name = info.name.as_str();
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
        None => Ok(()),
        Some(after) if after.status == StackStatus::DeleteComplete => Ok(()),
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
