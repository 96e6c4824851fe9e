//! The AWS edge of launching: pre-flight checks, the template bucket, CloudFormation stacks and
//! change sets, status and sharing. Each step looks before it acts, so every command can be
//! re-run after a crash or Ctrl-C and converges. Functions return data; the CLI prints it.
//!
//! - `deploy`: one whole launch (`launch`, `migrate`) -> `Outcome`
//! - `preview`: what a launch would do (`plan`) -> `LaunchPreview`; `template_diff`: how two
//!   templates differ per instance (pure)
//! - `stack`: stacks, change sets, events and the `Observer` that follows them, instances
//! - `preflight` (with `guest`: what the inspections allow), `bucket`, `share`, `status`: the
//!   other steps and reports

pub mod bucket;
pub mod deploy;
pub mod guardrails;
pub mod guest;
pub mod history;
pub mod hooks;
pub mod preflight;
pub mod preview;
pub mod record;
pub mod runbook;
pub mod share;
pub mod stack;
pub mod status;
pub mod template_diff;

use aws_config::SdkConfig;
use rehost_replication::aws::AwsFailure;
use rehost_replication::state::AccountBinding;

/// Every client a launch needs, built from one SDK configuration (one retry/timeout policy).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub kms: aws_sdk_kms::Client,
    /// Set when `AWS_ENDPOINT_URL` (or a profile) points the SDK elsewhere, e.g. at an emulator.
    pub endpoint_url: Option<String>,
    pub region: String,
}

impl AwsClients {
    pub fn new(sdk: &SdkConfig) -> Self {
        let endpoint_url = sdk.endpoint_url().map(str::to_string);
        // Custom endpoints rarely serve virtual-hosted bucket names; path style works everywhere.
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(endpoint_url.is_some())
            .build();
        AwsClients {
            cfn: aws_sdk_cloudformation::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            endpoint_url,
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
        }
    }

    /// The account the credentials reach (STS GetCallerIdentity) and the region in use: what
    /// a state store is bound to.
    pub async fn identity(&self) -> Result<AccountBinding, LaunchError> {
        Ok(AccountBinding {
            account: self.account_id().await?,
            region: self.region.clone(),
        })
    }

    /// Who runs this: the caller's ARN (STS GetCallerIdentity), for the launch history and
    /// an accepted risk.
    pub async fn caller_arn(&self) -> Result<String, LaunchError> {
        let out = self.caller_identity().await?;
        out.arn()
            .map(str::to_string)
            .ok_or_else(|| LaunchError::Unexpected("GetCallerIdentity returned no ARN".into()))
    }

    pub async fn account_id(&self) -> Result<String, LaunchError> {
        let out = self.caller_identity().await?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| LaunchError::Unexpected("GetCallerIdentity returned no account".into()))
    }

    async fn caller_identity(
        &self,
    ) -> Result<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput, LaunchError>
    {
        self.sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| LaunchError::Aws(AwsFailure::from_sdk("sts:GetCallerIdentity", &e)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Aws(AwsFailure),
    /// What the user must fix before anything is launched (exit code 2).
    #[error("pre-flight found {} problem{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n"))]
    Preflight(Vec<String>),
    #[error("stack {stack} ended {status}: {resource} failed: {reason}")]
    StackFailed {
        stack: String,
        status: String,
        resource: String,
        reason: String,
    },
    #[error(
        "stack {stack} is {status} after waiting {minutes} minutes; it keeps going in CloudFormation"
    )]
    Timeout {
        stack: String,
        status: String,
        minutes: u64,
    },
    #[error("{0}")]
    Refused(String),
    /// The operator stopped the launch before anything was created or updated.
    #[error("the launch was cancelled before anything was created or updated")]
    Cancelled,
    /// The operator stopped following the stack, which goes on in CloudFormation.
    #[error(
        "stopped following stack {stack}: it goes on in CloudFormation (`rehost status` shows \
         where it is)"
    )]
    Detached { stack: String },
    /// A stack of rehost's name that rehost did not create for this application and mode.
    #[error(
        "stack {stack} is not this application's: it carries {tags}, where rehost's own carries \
         {expected}; rehost updates and deletes only its own stacks (rename or remove that one, \
         or rename the application)"
    )]
    ForeignStack {
        stack: String,
        tags: String,
        expected: String,
    },
    /// A cutover launch would replace or remove running instances and `--yes` was not given:
    /// the change set was deleted, nothing changed.
    #[error(
        "the cutover launch would replace or remove {} running instance{} of stack {stack}; \
         nothing was changed (the change set was deleted): review with `rehost plan --mode \
         cutover`, then run again with --yes",
        .changes.len(),
        if .changes.len() == 1 { "" } else { "s" }
    )]
    WouldReplace {
        stack: String,
        changes: Vec<preview::ResourceChange>,
    },
    /// The template bucket is not in the caller's own ListBuckets: never written to.
    #[error(
        "S3 bucket {bucket} does not belong to this account; rehost writes templates only to a \
         bucket this account owns"
    )]
    BucketNotOwned { bucket: String },
    /// A grant of `rehost share` failed after others succeeded: those were revoked.
    #[error(
        "sharing failed: {cause}; {}",
        if .unrevoked.is_empty() {
            format!("the {granted} grant(s) this share had made were revoked, permissions held before it are untouched")
        } else {
            format!("COULD NOT REVOKE {} of the {granted} grant(s) this share made, remove them by hand: {}", .unrevoked.len(), .unrevoked.join("; "))
        }
    )]
    ShareFailed {
        cause: Box<LaunchError>,
        granted: usize,
        unrevoked: Vec<String>,
    },
    #[error("unexpected answer from AWS: {0}")]
    Unexpected(String),
    #[error(transparent)]
    State(#[from] rehost_replication::StateError),
}

impl LaunchError {
    /// Whether the fix is the user's (exit code 2) rather than a runtime failure (1).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            LaunchError::Preflight(_)
                | LaunchError::Refused(_)
                | LaunchError::ForeignStack { .. }
                | LaunchError::WouldReplace { .. }
        )
    }
}

/// Resolves once `cancel` holds true; never when it cannot (no receiver, or its sender gone
/// while it held false).
pub async fn cancelled(cancel: Option<&tokio::sync::watch::Receiver<bool>>) {
    if let Some(cancel) = cancel {
        let mut cancel = cancel.clone();
        if cancel.wait_for(|c| *c).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Shorthand for mapping an SDK error to a `LaunchError` naming the operation.
pub(crate) fn aws<E>(
    operation: &'static str,
) -> impl FnOnce(
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> LaunchError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| LaunchError::Aws(AwsFailure::from_sdk(operation, &e))
}
