//! A launch as `launch`, `migrate` and the `cutover` runbook run it, recorded in the launch
//! history from start to end (refusals included) and, in cutover mode, held by the guardrails
//! unless `--force --reason` overrides them.

use std::collections::BTreeMap;

use rehost::app::{App, Mode};
use rehost::error::InvalidInput;
use rehost::launch::deploy::{self, Deployment, Outcome};
use rehost::launch::guardrails::{self, Facts, InspectionGate, LaunchedAmi, Refusal};
use rehost::launch::guest::GuestPolicy;
use rehost::launch::record;
use rehost::launch::{AwsClients, LaunchError};
use rehost::template::RenderOptions;
use rehost_replication::state::{LaunchKind, LaunchRecord, Override, ServerKey};
use std::sync::Arc;

use rehost_replication::StateStore;
use time::OffsetDateTime;

use crate::cli::args::{AwsArgs, Inspections, LaunchFlags, TemplateFlags};
use crate::cli::common::{bound_state, exit_code_of, validate_named_servers};
use crate::cli::io::Io;
use crate::cli::print;
use crate::cli::progress::Progress;
use crate::cli::signals::StopOnSignal;

/// Every launch of the application the guardrails weigh (far more than any history holds).
const HISTORY_LIMIT: usize = 100_000;

/// One launch with its history record: what `launch` and `migrate` run.
pub struct Guarded<'a> {
    pub clients: &'a AwsClients,
    pub app: &'a App,
    pub template: &'a TemplateFlags,
    pub flags: &'a LaunchFlags,
    /// Reaches a state on S3.
    pub aws: &'a AwsArgs,
    pub kind: LaunchKind,
}

impl Guarded<'_> {
    /// The state (created when there is none: it records the launch) bound to this account.
    pub async fn store(&self) -> anyhow::Result<Arc<dyn StateStore>> {
        let location = self.template.state.resolve(self.app)?;
        bound_state(&location, self.aws, self.app, self.clients).await
    }

    /// The render options (the state bound to this account) and the servers' cached
    /// inspections; every `--accept-risk` must name a server of the application.
    pub async fn options(&self, io: &mut Io<'_>) -> anyhow::Result<(RenderOptions, Inspections)> {
        validate_named_servers(self.app, "--accept-risk", &self.flags.accept_risk)?;
        self.template
            .options(self.app, self.aws, Some(self.clients), io.err)
            .await
    }

    /// The guardrails' view of the cached inspections: each server's verdict, and whether
    /// `--accept-risk SERVER` accepted it.
    pub fn inspection_gates(&self, inspections: &Inspections) -> BTreeMap<String, InspectionGate> {
        inspection_gates(inspections, &self.flags.accept_risk)
    }

    /// After a replication (migrate, the cutover's final sync): the render options with the
    /// AMIs it made, recorded in `rec`, and the guardrails on exactly those AMIs.
    pub async fn hold_replicated(
        &self,
        store: &dyn StateStore,
        rec: &mut LaunchRecord,
        io: &mut Io<'_>,
    ) -> anyhow::Result<(RenderOptions, Inspections)> {
        let (options, inspections) = self.options(io).await?;
        rec.amis = options.amis.clone();
        self.hold(store, rec, Some(&options.amis), &inspections, io)
            .await?;
        Ok((options, inspections))
    }

    /// A record of this launch as it starts.
    pub async fn start_record(&self, options: &RenderOptions) -> LaunchRecord {
        let caller = self.clients.caller_arn().await.ok();
        let definition = guardrails::definition_hash(self.app);
        record::started(
            self.kind,
            self.app,
            options,
            &definition,
            caller,
            OffsetDateTime::now_utc(),
        )
    }

    /// In cutover mode, every guardrail that refuses; with `--force --reason` they are
    /// recorded as overridden and the launch goes on. A refusal is recorded and returned as
    /// invalid input (exit code 2) after its reasons are printed; nothing changed in AWS.
    /// `amis: None` checks only what does not depend on the AMIs (before a migrate replicates).
    pub async fn hold(
        &self,
        store: &dyn StateStore,
        rec: &mut LaunchRecord,
        amis: Option<&BTreeMap<String, String>>,
        inspections: &Inspections,
        io: &mut Io<'_>,
    ) -> anyhow::Result<()> {
        if self.template.mode != Mode::Cutover {
            return Ok(());
        }
        let refusals = self.refusals(store, rec, amis, inspections).await?;
        if refusals.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = refusals.iter().map(Refusal::to_string).collect();
        if let (true, Some(reason)) = (self.flags.force, &self.flags.reason) {
            print::guardrails_overridden(io.err, &reasons, reason)?;
            rec.forced = Some(Override {
                reason: reason.clone(),
                by: rec.caller.clone(),
                at: OffsetDateTime::now_utc(),
                overridden: reasons,
            });
            return Ok(());
        }
        print::guardrails_refused(io.err, &reasons)?;
        record::refused(rec, reasons, OffsetDateTime::now_utc());
        store.record_launch(&self.app.name, rec).await?;
        Err(InvalidInput::new(format!(
            "cutover of {} refused by {} guardrail{}; nothing was changed (fix them, or override \
             with --force --reason TEXT)",
            self.app.name,
            refusals.len(),
            if refusals.len() == 1 { "" } else { "s" }
        ))
        .into())
    }

    async fn refusals(
        &self,
        store: &dyn StateStore,
        rec: &LaunchRecord,
        amis: Option<&BTreeMap<String, String>>,
        inspections: &Inspections,
    ) -> anyhow::Result<Vec<Refusal>> {
        let history = store.launches(&self.app.name, HISTORY_LIMIT).await?;
        let launched: Vec<LaunchedAmi> = match amis {
            None => Vec::new(),
            Some(amis) => {
                let mut recorded = BTreeMap::new();
                for s in &self.app.servers {
                    let key = ServerKey::new(&self.app.name, &s.id);
                    recorded.insert(s.id.clone(), store.recorded_amis(&key).await?);
                }
                record::launched_amis(self.app, amis, &recorded)
            }
        };
        Ok(guardrails::evaluate(&Facts {
            definition: &rec.definition,
            history: &history,
            amis: &launched,
            inspections: &self.inspection_gates(inspections),
            health_gate: rec.health_gate,
            now: OffsetDateTime::now_utc(),
        }))
    }

    /// Records a launch refused before it reached CloudFormation (the replication before a
    /// migrate's launch failed or was refused).
    pub async fn refuse(
        &self,
        store: &dyn StateStore,
        rec: &mut LaunchRecord,
        reason: String,
    ) -> anyhow::Result<()> {
        record::refused(rec, vec![reason], OffsetDateTime::now_utc());
        store.record_launch(&self.app.name, rec).await?;
        Ok(())
    }

    /// The launch, recorded when it starts and when it ends, its outcome printed on `io.out`.
    pub async fn run(&self, io: &mut Io<'_>) -> anyhow::Result<()> {
        deploy::refuse_portable(self.template.portable).map_err(exit_code_of)?;
        let store = self.store().await?;
        let (options, inspections) = self.options(io).await?;
        let mut rec = self.start_record(&options).await;
        self.hold(
            store.as_ref(),
            &mut rec,
            Some(&options.amis),
            &inspections,
            io,
        )
        .await?;
        self.deploy(store.as_ref(), &options, inspections, &mut rec, io)
            .await
    }

    /// Deploys (the guest pre-flight on the cached inspections first, accepted risks recorded
    /// in the state) with the record written before and after; prints the outcome.
    ///
    /// A signal (Ctrl-C, SIGTERM, SIGHUP) before the stack is created or updated cancels it;
    /// once it is, CloudFormation carries it on whatever rehost does, and a signal stops
    /// following it (recorded `started`, as with `--no-wait`). A cutover asks for two: the
    /// first only says so, since its rollback hooks depend on how the launch ends.
    pub async fn deploy(
        &self,
        store: &dyn StateStore,
        options: &RenderOptions,
        inspections: Inspections,
        rec: &mut LaunchRecord,
        io: &mut Io<'_>,
    ) -> anyhow::Result<()> {
        store.record_launch(&self.app.name, rec).await?;
        let guest = GuestPolicy {
            inspections,
            accept_risk: self.flags.accept_risk.iter().cloned().collect(),
        };
        let signals = if self.kind == LaunchKind::Cutover {
            StopOnSignal::new(
                2,
                "the cutover launch is under way in CloudFormation and goes on whatever rehost \
                 does; rehost follows it to its end so that the history and the postRollback \
                 hooks stay right. A second signal stops following.",
            )
        } else {
            StopOnSignal::new(1, "")
        };
        let deployment = Deployment {
            app: self.app,
            options,
            on_failure: self.flags.on_failure,
            follow: !self.flags.no_wait,
            timeout_minutes: self.flags.timeout,
            allow_replacement: self.flags.yes,
            guest: &guest,
            state: Some(store),
            stop: Some(&signals.stop),
        };
        let result = deploy::deploy(self.clients, &deployment, &mut Progress::new(io.err)).await;
        record::finished(rec, &result, OffsetDateTime::now_utc());
        let recorded = store.record_launch(&self.app.name, rec).await;
        let outcome = report(result, io)?;
        recorded?;
        // Best effort: the launch has succeeded and is recorded; a terminal gone meanwhile
        // (SIGHUP) must not turn it into a failure (and a cutover's into a rollback).
        let _ = print::outcome(io.out, &self.app.file, &outcome);
        Ok(())
    }
}

/// The launch's error, after printing what a refused replacement would have changed.
fn report(result: Result<Outcome, LaunchError>, io: &mut Io<'_>) -> anyhow::Result<Outcome> {
    result.or_else(|e| {
        if let LaunchError::WouldReplace { stack, changes } = &e {
            print::refused_changes(io.err, stack, changes)?;
        }
        Err(exit_code_of(e))
    })
}

/// Each inspected server's verdict, accepted when `--accept-risk` names it. A server without
/// a cached inspection has no gate: the guardrail holds only where inspection exists.
fn inspection_gates(
    inspections: &Inspections,
    accept_risk: &[String],
) -> BTreeMap<String, InspectionGate> {
    inspections
        .iter()
        .map(|(server, inspection)| {
            let gate = InspectionGate {
                verdict: inspection.verdict,
                accepted: accept_risk.contains(server),
            };
            (server.clone(), gate)
        })
        .collect()
}
