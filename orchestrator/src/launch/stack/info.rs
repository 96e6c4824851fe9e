//! The stack as CloudFormation shows it, and what its status means for a launch.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::StackStatus;

use rehost_replication::tags;

use crate::app::Mode;
use crate::launch::{AwsClients, LaunchError};

#[derive(Clone, Debug)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: StackStatus,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub updated: Option<String>,
    /// The stack's tags: rehost's own stacks carry `rehost:app` and `rehost:mode`.
    pub tags: BTreeMap<String, String>,
    /// The parameter values the stack runs with.
    pub parameters: BTreeMap<String, String>,
}

impl StackInfo {
    pub fn in_progress(&self) -> bool {
        in_progress(&self.status)
    }

    /// Refuses a stack that is not this application's launch of this mode: rehost updates and
    /// deletes only stacks it created, which carry `rehost:app` and `rehost:mode`. A stack of
    /// the same name made by hand or by another tool (or another application's) is left alone.
    pub fn check_owner(&self, app: &str, mode: Mode) -> Result<(), LaunchError> {
        let tag = |key: &str| self.tags.get(key).map(String::as_str);
        if tag(tags::APP) == Some(app) && tag(tags::MODE) == Some(mode.as_str()) {
            return Ok(());
        }
        let shown = if self.tags.is_empty() {
            "no tags".to_string()
        } else {
            let list: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("tags {}", list.join(", "))
        };
        Err(LaunchError::ForeignStack {
            stack: self.name.clone(),
            tags: shown,
            expected: format!("{}={app}, {}={}", tags::APP, tags::MODE, mode.as_str()),
        })
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
                tags: s
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
                parameters: s
                    .parameters()
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.parameter_key()?.to_string(),
                            p.resolved_value()
                                .or(p.parameter_value())
                                .unwrap_or_default()
                                .to_string(),
                        ))
                    })
                    .collect(),
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
