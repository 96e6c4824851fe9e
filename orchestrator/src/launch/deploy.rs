//! One launch of one mode, shared by `rehost launch` and `rehost migrate`: render, pre-flight,
//! create or update the stack, follow it until it settles, and read back its instances. The
//! result is data ([`Outcome`]); the CLI prints it, and shows progress through the
//! [`Observer`].

use std::time::Duration;

use aws_sdk_cloudformation::types::StackStatus;
use aws_smithy_types::DateTime;
use tokio::sync::watch;

use rehost_replication::state::{AcceptedRisk, ServerKey, StateStore};

use crate::app::{App, Mode};
use crate::launch::bucket;
use crate::launch::guest::{Accepted, GuestPolicy};
use crate::launch::preflight::Preflight;
use crate::launch::stack::{self, InstanceView, Observer, OnFailureChoice, StackRequest, Started};
use crate::launch::{AwsClients, LaunchError, cancelled};
use crate::template::{NestedPackage, Package, RenderOptions, Template, render_package};

/// What to launch and how.
pub struct Deployment<'a> {
    pub app: &'a App,
    /// Mode, gates and AMI defaults of the template; never portable.
    pub options: &'a RenderOptions,
    pub on_failure: OnFailureChoice,
    /// Follow the stack until it settles (false: start it and return, `--no-wait`).
    pub follow: bool,
    /// Give up following after this many minutes (default: [`follow_limit`]).
    pub timeout_minutes: Option<u64>,
    /// A cutover update may replace or remove running instances (`--yes`).
    pub allow_replacement: bool,
    /// The cached guest inspections and `--accept-risk`.
    pub guest: &'a GuestPolicy,
    /// Where accepted risks are recorded (the application's state, when it has one).
    pub state: Option<&'a dyn StateStore>,
    /// Turns true when the operator stops the launch: before the stack is created or updated,
    /// nothing is ([`LaunchError::Cancelled`]); while it is followed, rehost stops following
    /// ([`LaunchError::Detached`]; the stack goes on).
    pub stop: Option<&'a watch::Receiver<bool>>,
}

/// How a launch ended, when it did not fail.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The stack already runs this template with these parameters.
    Unchanged {
        stack: String,
        instances: Vec<InstanceView>,
    },
    /// Created or updated, and not followed.
    Started { stack: String, started: Started },
    /// Created or updated, followed until it succeeded.
    Completed {
        stack: String,
        status: StackStatus,
        instances: Vec<InstanceView>,
    },
}

/// A portable template leaves account-specific ids as parameters: it launches elsewhere.
pub fn refuse_portable(portable: bool) -> Result<(), LaunchError> {
    if portable {
        return Err(LaunchError::Refused(
            "--portable renders a template for another account, whose ids it leaves as parameters: \
             launch it there (`rehost share` writes it); here, launch without --portable"
                .into(),
        ));
    }
    Ok(())
}

/// How long a launch is followed: the worst case of the launch gates along the critical path
/// plus 30 minutes, unless `--timeout` says otherwise.
pub fn follow_limit(app: &App, mode: Mode, timeout_minutes: Option<u64>) -> Duration {
    let gate_path = app.graph.critical_path(&app.gate_minutes(mode)).1;
    Duration::from_secs(60 * timeout_minutes.unwrap_or(gate_path + 30))
}

/// Launches the application: every problem pre-flight finds is refused before anything is
/// created; a failed stack is an error naming the first resource that failed and why.
pub async fn deploy(
    clients: &AwsClients,
    deployment: &Deployment<'_>,
    observer: &mut dyn Observer,
) -> Result<Outcome, LaunchError> {
    let Deployment { app, options, .. } = *deployment;
    refuse_portable(options.portable)?;
    let mode = options.mode;
    let package = render_package(app, options)
        .map_err(|e| LaunchError::Refused(format!("cannot render nested stacks: {e}")))?;
    let report = Preflight {
        app,
        mode,
        amis: &options.amis,
        health_gate: options.health_gate,
        guest: deployment.guest,
    }
    .run(clients)
    .await?;
    for warning in &report.warnings {
        observer.warning(warning);
    }
    if !report.problems.is_empty() {
        return Err(LaunchError::Preflight(report.problems));
    }
    if !report.accepted.is_empty() {
        record_accepted(clients, deployment.state, app, mode, &report.accepted).await?;
    }
    let limit = follow_limit(app, mode, deployment.timeout_minutes);
    let name = app.stack_name(mode);
    let template = match &package {
        Package::Flat(template) => template.clone(),
        Package::Nested(nested) => upload_children(clients, &name, nested).await?,
    };
    let req = StackRequest {
        app,
        mode,
        template: &template,
        children: package.children(),
        on_failure: deployment.on_failure,
        wait_limit: limit,
        allow_replacement: deployment.allow_replacement,
    };
    if deployment.stop.is_some_and(|stop| *stop.borrow()) {
        return Err(LaunchError::Cancelled);
    }
    observer.deploying(app, &template);
    let since = DateTime::from(std::time::SystemTime::now());
    let started = stack::start(clients, &req, observer).await?;
    if started == Started::Unchanged {
        let instances = stack::instances(clients, app, &name).await?;
        return Ok(Outcome::Unchanged {
            stack: name,
            instances,
        });
    }
    if !deployment.follow {
        return Ok(Outcome::Started {
            stack: name,
            started,
        });
    }
    let waited = tokio::select! {
        info = stack::wait(clients, &name, Some(since), limit, observer) => Some(info),
        () = cancelled(deployment.stop) => None,
    };
    let Some(info) = waited else {
        return Err(LaunchError::Detached { stack: name });
    };
    let info = info?;
    let status = info
        .as_ref()
        .map_or(StackStatus::DeleteComplete, |i| i.status.clone());
    if !stack::succeeded(&status) {
        let id = info.as_ref().map_or(name.clone(), |i| i.id.clone());
        let (resource, reason) = stack::first_failure(clients, &id, Some(since))
            .await?
            .unwrap_or_else(|| {
                (
                    name.clone(),
                    info.and_then(|i| i.reason).unwrap_or_default(),
                )
            });
        return Err(LaunchError::StackFailed {
            stack: name,
            status: status.as_str().to_string(),
            resource,
            reason,
        });
    }
    let instances = stack::instances(clients, app, &name).await?;
    Ok(Outcome::Completed {
        stack: name,
        status,
        instances,
    })
}

/// Uploads a nested launch's children to the template bucket (content-addressed keys) and
/// returns the parent naming them by URL.
pub async fn upload_children(
    clients: &AwsClients,
    stack: &str,
    nested: &NestedPackage,
) -> Result<Template, LaunchError> {
    let bodies: Vec<String> = nested
        .children
        .iter()
        .map(|c| serde_json::to_string(&c.body).expect("template serializes"))
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let urls = bucket::upload_templates(clients, stack, &refs).await?;
    Ok(nested.with_urls(&urls))
}

/// Records each accepted risk in the state (server, the refusals let through, when, and the
/// caller's ARN) before anything is launched with it.
async fn record_accepted(
    clients: &AwsClients,
    state: Option<&dyn StateStore>,
    app: &App,
    mode: Mode,
    accepted: &[Accepted],
) -> Result<(), LaunchError> {
    let Some(state) = state else {
        // Without a state there are no inspections, so nothing can have been accepted.
        return Ok(());
    };
    let caller_arn = clients.caller_arn().await?;
    let now = time::OffsetDateTime::now_utc();
    for a in accepted {
        let risk = AcceptedRisk {
            mode: mode.as_str().to_string(),
            findings: a.findings.clone(),
            accepted_at: now,
            caller_arn: caller_arn.clone(),
        };
        state
            .record_accepted_risk(&ServerKey::new(&app.name, &a.server), &risk)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_is_followed_along_its_critical_path_plus_half_an_hour() {
        let text = concat!(
            "apiVersion: rehost/v1\nkind: Application\nname: shop\n",
            "defaults:\n  launch: {instanceType: m5.large}\n",
            "servers:\n",
            "  - {id: db, os: linux, disks: [{source: a.img}], launch: {signalTimeoutMinutes: 45}}\n",
            "  - {id: web, os: linux, disks: [{source: b.img}]}\n",
            "  - {id: cache, os: linux, disks: [{source: c.img}], launch: {signalTimeoutMinutes: 5}}\n",
            "groups:\n  - {name: db, servers: [db]}\n  - {name: cache, servers: [cache]}\n",
            "  - {name: web, servers: [web], dependsOn: [db, cache]}\n",
        );
        let app = crate::load::load_with(text.as_bytes(), std::path::Path::new("a.yaml"), |_| {
            Default::default()
        })
        .unwrap()
        .app;
        // db (45) then web (30 by default): 75 minutes, plus 30.
        assert_eq!(
            follow_limit(&app, Mode::Cutover, None),
            Duration::from_secs(105 * 60)
        );
        assert_eq!(
            follow_limit(&app, Mode::Cutover, Some(7)),
            Duration::from_secs(7 * 60)
        );
        assert!(refuse_portable(false).is_ok());
        assert!(matches!(
            refuse_portable(true),
            Err(LaunchError::Refused(m)) if m.contains("launch without --portable")
        ));
    }
}
