//! Change sets: how an existing stack is updated (`launch`) and previewed (`plan`). A change
//! set is computed, then executed or described and deleted.

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{ChangeSetStatus, ChangeSetType};

use crate::launch::{AwsClients, LaunchError, aws};

use super::request::{Body, StackRequest, body};

/// Creates a change set and waits until CloudFormation has computed it. Returns its id, or
/// None when the template changes nothing (the empty change set is deleted).
pub(super) async fn create_change_set(
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
        // A nested launch: change sets of the child stacks too, so the plan shows inside them.
        .include_nested_stacks(!req.children.is_empty())
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
