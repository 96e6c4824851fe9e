//! One launch's request to CloudFormation: the stack, its template body (inline or through the
//! template bucket), parameters, tags, client token and failure policy.

use std::time::Duration;

use aws_sdk_cloudformation::types::{Parameter, Tag};
use rehost_replication::tags;
use sha2::{Digest, Sha256};

use crate::app::{App, Mode};
use crate::launch::{AwsClients, LaunchError, bucket};
use crate::limits::MAX_INLINE_BODY;
use crate::template::{Child, Template};

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
    /// A nested launch's child templates, as the parent's stacks name them (empty when flat):
    /// what `plan` and the cutover check compare the deployed children with.
    pub children: &'a [Child],
    pub on_failure: OnFailureChoice,
    /// Upper bound for waiting on an operation that was already running.
    pub wait_limit: Duration,
    /// A cutover update may replace or remove running instances (`--yes`). Without it, such a
    /// change set is deleted unexecuted and the launch refused.
    pub allow_replacement: bool,
}

impl StackRequest<'_> {
    pub fn name(&self) -> String {
        self.app.stack_name(self.mode)
    }

    /// Every parameter with its value (the template's default), so an update never silently
    /// keeps an older AMI.
    pub(super) fn parameters(&self) -> Vec<Parameter> {
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

    pub(super) fn tags(&self) -> Vec<Tag> {
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
    pub(super) fn token(&self, body: &str) -> String {
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
