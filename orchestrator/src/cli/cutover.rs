//! `rehost cutover FILE [--at TIME] [--dry-run] --yes`: the runbook in one command. Wait for
//! `--at`; run the `preCutover` hooks (a failure stops here); one last increment of every
//! server (the final sync, whose delta is the users' downtime); the guardrails on exactly
//! those AMIs; the cutover launch, followed to its end. When anything fails after the hooks
//! started, the `postRollback` hooks run (the launch's own failure is first kept, rolled back
//! or deleted as `--on-failure` says). Everything is recorded as one launch in the history.
//!
//! The runbook is the explicit decision to change production: it needs `--yes`, which also
//! lets the cutover update replace instances. `--dry-run` needs nothing and changes nothing.
//!
//! Interrupting it (Ctrl-C, SIGTERM) once the hooks have started is a rollback, not a crash:
//! the hook or the final sync under way is stopped (a hook's processes killed, the sync's
//! uploads left to resume at the next replication), the `postRollback` hooks run, and the launch
//! is recorded `cancelled`. Once the launch has started, CloudFormation carries it on whatever
//! rehost does: a first signal only says so and rehost follows it to its end (so its record and
//! the rollback hooks stay right); a second one stops following (recorded `started`, no hook).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use rehost::app::{App, Mode};
use rehost::error::InvalidInput;
use rehost::launch::cancelled;
use rehost::launch::guardrails::{self, Facts};
use rehost::launch::hooks::run_phase;
use rehost::launch::preview;
use rehost::launch::runbook::{expected_delta, parse_at};
use rehost::launch::{AwsClients, LaunchError};
use rehost::replication_jobs::scheduled_jobs;
use rehost::template::render_package;
use rehost_replication::state::{
    HookOutcome, HookPhase, LaunchFailure, LaunchKind, LaunchOutcome, LaunchRecord, ServerKey,
    SyncRecord,
};
use rehost_replication::watch::{DEFAULT_PARALLEL, replicate_all};
use rehost_replication::{ReplicateOptions, Replicator, ServerReport, StateStore};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::cli::args::{AwsArgs, LaunchFlags, StateArg, TemplateFlags, open_state_to_read};
use crate::cli::common::{
    all_replicated, app_dir, check_bound_account, exit_code_of, inspect_jobs, load_app,
    validate_named_servers,
};
use crate::cli::guarded::Guarded;
use crate::cli::io::Io;
use crate::cli::print;
use crate::cli::signals::{Interruption, interrupted};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// When to start: RFC 3339 (2026-03-01T22:00:00Z) or HH:MM local time (today, or tomorrow
    /// once that time has passed). Ctrl-C while waiting cancels; nothing has started.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Show the hooks, the expected final delta per server, the guardrails and the change set;
    /// change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No launch gates (images without an agent that runs user data).
    #[arg(long)]
    pub no_health_gate: bool,
    /// Launch as nested stacks (a parent and a child stack per group) even when the
    /// application fits one template; larger applications always are.
    #[arg(long)]
    pub nested: bool,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub launch: LaunchFlags,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    if args.launch.no_wait {
        return Err(
            InvalidInput::new("the cutover runbook follows its launch: drop --no-wait").into(),
        );
    }
    if !args.dry_run && !args.launch.yes {
        return Err(InvalidInput::new(
            "rehost cutover runs the preCutover hooks, a final sync and the production launch \
             (replacing instances where the update needs it): add --yes, or see it first with --dry-run",
        )
        .into());
    }
    let at = match &args.at {
        Some(text) => Some(parse_at(text, local_now()).map_err(InvalidInput::new)?),
        None => None,
    };
    let template = TemplateFlags {
        mode: Mode::Cutover,
        portable: false,
        no_health_gate: args.no_health_gate,
        nested: args.nested,
        amis: Vec::new(),
        state: args.state.clone(),
    };
    let sdk = args.aws.sdk_config().await;
    let clients = AwsClients::new(&sdk);
    let guarded = Guarded {
        clients: &clients,
        app: &app,
        template: &template,
        flags: &args.launch,
        aws: &args.aws,
        kind: LaunchKind::Cutover,
    };
    if args.dry_run {
        return dry_run(&guarded, args.at.as_deref(), io).await;
    }
    // From here until the launch starts, a signal stops the step under way: before the
    // hooks, nothing has run; after them, the runbook rolls back.
    let (cancel_tx, cancel) = watch::channel(false);
    let listener = tokio::spawn(async move {
        let signal = interrupted().await;
        let _ = cancel_tx.send(true);
        signal
    });
    let stopped = |listener: tokio::task::JoinHandle<Interruption>| async move {
        listener.await.unwrap_or(Interruption::Interrupt)
    };
    if let Some(at) = at {
        wait_until(at, &cancel, io).await?;
    }
    let store = guarded.store().await?;
    let (options, inspections) = guarded.options(io).await?;
    let mut rec = guarded.start_record(&options).await;
    if !args.launch.force {
        // The test rule and the inspections refuse before any hook stops a source.
        guarded
            .hold(store.as_ref(), &mut rec, None, &inspections, io)
            .await?;
    }
    if *cancel.borrow() {
        let signal = stopped(listener).await;
        anyhow::bail!(
            "cutover cancelled by {signal} before it started: nothing was run or changed"
        );
    }
    // One runbook at a time: the application's lock is held from before the first hook to the
    // end (the final sync replicates under it), so a second runbook, or a one-off replicate,
    // is refused before it runs anything.
    let _lock = store.lock_app(&app.name).await?;
    // The record is written before the hooks and after them, so even a runbook killed
    // outright (SIGKILL) leaves its trace in the history (`running`, with the hooks that ran).
    store.record_launch(&app.name, &rec).await?;
    // From the first hook on, whatever stops the runbook goes through `abort`.
    let stop = async {
        let dir = app_dir(&app);
        rec.hooks = run_phase(
            &app.hooks.pre_cutover,
            HookPhase::PreCutover,
            dir,
            true,
            Some(&cancel),
        )
        .await;
        for h in &rec.hooks {
            print::hook_ran(io.err, h)?;
        }
        if let Some(bad) = rec
            .hooks
            .iter()
            .find(|h| h.outcome != HookOutcome::Succeeded)
        {
            if bad.outcome == HookOutcome::Cancelled {
                let signal = stopped(listener).await;
                let what = format!("while preCutover hook {} ran", bad.name);
                return Err(Stop::cancelled(signal, &what));
            }
            let reason = format!("preCutover hook {} {}", bad.name, bad.outcome.as_str());
            return Err(Stop::Failed(anyhow::anyhow!(reason)));
        }
        store
            .record_launch(&app.name, &rec)
            .await
            .map_err(|e| Stop::Failed(e.into()))?;

        let synced = tokio::select! {
            synced = final_sync(&app, &sdk, store.clone(), io.err) => Some(synced),
            () = cancelled(Some(&cancel)) => None,
        };
        let Some(synced) = synced else {
            let signal = stopped(listener).await;
            let what = "during the final sync (each server's interrupted run resumes at its \
                        next replication)";
            return Err(Stop::cancelled(signal, what));
        };
        // The hooks may have stopped the sources: the postRollback hooks run.
        let reports = synced.map_err(|e| Stop::Failed(e.context("final sync")))?;
        rec.final_sync = reports.iter().map(sync_record).collect();
        for s in &rec.final_sync {
            print::final_sync(io.out, s)?;
        }
        all_replicated(&reports).map_err(|e| Stop::Failed(e.context("final sync")))?;

        let (options, inspections) = guarded
            .hold_replicated(store.as_ref(), &mut rec, io)
            .await?;
        if *cancel.borrow() {
            let signal = stopped(listener).await;
            return Err(Stop::cancelled(signal, "before the launch started"));
        }
        listener.abort();
        // From here a signal is the launch's (`Guarded::deploy`): the first only says that it
        // goes on, a second stops following it.
        guarded
            .deploy(store.as_ref(), &options, inspections, &mut rec, io)
            .await
            .map_err(|e| match e.downcast_ref::<LaunchError>() {
                Some(LaunchError::Detached { .. }) => Stop::Detached(e),
                _ => Stop::Failed(e),
            })
    };
    let Err(why) = stop.await else {
        return Ok(());
    };
    let (outcome, error) = match why {
        Stop::Failed(e) => (LaunchOutcome::Failed, e),
        Stop::Cancelled(e) => (LaunchOutcome::Cancelled, e),
        // The stack's end is not known: no rollback hook runs; the history says `started`.
        Stop::Detached(e) => return Err(e.context("no postRollback hook ran")),
    };
    abort(&app, store.as_ref(), &mut rec, outcome, error, io).await
}

/// Why the runbook stopped after its hooks started.
enum Stop {
    /// A hook, the final sync, a guardrail or the launch failed: roll back.
    Failed(anyhow::Error),
    /// A signal stopped the step under way: roll back.
    Cancelled(anyhow::Error),
    /// A second signal during the launch: rehost stopped following it, nothing is rolled back.
    Detached(anyhow::Error),
}

impl Stop {
    fn cancelled(signal: Interruption, what: &str) -> Stop {
        Stop::Cancelled(anyhow::anyhow!("cancelled by {signal} {what}"))
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Failed(e)
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// After the hooks started: the `postRollback` hooks run, the record (failed or cancelled as
/// `outcome` says, or refused as the guardrails left it) is written with them, and the error
/// is returned. A signal while they run does not stop them (each has its timeout).
async fn abort(
    app: &App,
    store: &dyn StateStore,
    rec: &mut LaunchRecord,
    outcome: LaunchOutcome,
    error: anyhow::Error,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    // What is printed here is best effort: an unwritable terminal must not keep the rollback
    // hooks from running or the launch from being recorded.
    if outcome == LaunchOutcome::Cancelled {
        // The operator waits for this answer to the signal.
        let _ = writeln!(
            io.err,
            "{error:#}: running the postRollback hooks (each to its end or its timeout)"
        );
    }
    let post = run_phase(
        &app.hooks.post_rollback,
        HookPhase::PostRollback,
        app_dir(app),
        false,
        None,
    )
    .await;
    for h in &post {
        let _ = print::hook_ran(io.err, h);
    }
    rec.hooks.extend(post);
    if rec.finished_at.is_none() {
        // A hook or the final sync failed, or the operator stopped the runbook (a refusal or
        // a failed launch is already recorded).
        rec.outcome = outcome;
        rec.failure = Some(LaunchFailure {
            resource: None,
            reasons: vec![format!("{error:#}")],
        });
        rec.finished_at = Some(OffsetDateTime::now_utc());
    }
    store.record_launch(&app.name, rec).await?;
    Err(error)
}

/// One increment of every server, now (under the runbook's application lock).
async fn final_sync(
    app: &App,
    sdk: &aws_config::SdkConfig,
    store: Arc<dyn StateStore>,
    err: &mut dyn Write,
) -> anyhow::Result<Vec<ServerReport>> {
    let mut jobs = scheduled_jobs(app, &[], None);
    // As replicate and migrate do: the AMIs take their boot mode and architecture from the
    // inspections, refreshed where a disk changed (the guardrails then weigh these).
    inspect_jobs(store.as_ref(), app, &mut jobs, false, err).await?;
    let replicator = Replicator::new(sdk, store.clone(), ReplicateOptions::default());
    Ok(replicate_all(&replicator, &jobs, DEFAULT_PARALLEL).await)
}

fn sync_record(r: &ServerReport) -> SyncRecord {
    SyncRecord {
        server: r.server.clone(),
        ami_id: r.ami_id.clone(),
        run_id: r.run_id.clone(),
        blocks: r.snapshots.iter().map(|s| s.blocks_uploaded).sum(),
        bytes: r.snapshots.iter().map(|s| s.bytes_uploaded).sum(),
        seconds: r.seconds,
        error: r.error.clone(),
    }
}

/// Waits until `at`, showing the time left on a terminal; a signal (`cancel`) cancels (exit 1),
/// nothing having started.
async fn wait_until(
    at: OffsetDateTime,
    cancel: &watch::Receiver<bool>,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    writeln!(io.err, "cutover starts at {at}; Ctrl-C cancels")?;
    loop {
        let left = at - OffsetDateTime::now_utc();
        if left <= time::Duration::ZERO {
            break;
        }
        if terminal {
            let s = left.whole_seconds();
            write!(
                io.err,
                "\rstarting in {:02}:{:02}:{:02} ",
                s / 3600,
                s / 60 % 60,
                s % 60
            )?;
            io.err.flush()?;
        }
        let step = std::time::Duration::from_secs_f64(left.as_seconds_f64().min(1.0));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = cancelled(Some(cancel)) => {
                writeln!(io.err)?;
                anyhow::bail!("cutover cancelled before it started: nothing was run or changed");
            }
        }
    }
    if terminal {
        writeln!(io.err)?;
    }
    Ok(())
}

/// The operator's local time (its UTC offset from the C library; UTC when unknown).
fn local_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i32
        }
    };
    time::UtcOffset::from_whole_seconds(offset).map_or(now, |o| now.to_offset(o))
}

/// Everything the runbook would do, from the state as it is, changing nothing: the state is
/// only read (its account binding is checked, not written: a state bound to another account
/// or region is refused as the runbook would refuse it), the change set is created and deleted
/// as `plan` does.
async fn dry_run(guarded: &Guarded<'_>, at: Option<&str>, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = guarded.app;
    let location = guarded.template.state.resolve(app)?;
    let (history, runs) = if let Some(store) = open_state_to_read(&location, guarded.aws).await? {
        check_bound_account(store.as_ref(), &app.name, guarded.clients).await?;
        let mut runs = Vec::new();
        for s in app.servers_in_launch_order() {
            let key = ServerKey::new(&app.name, &s.id);
            runs.push((s.id.clone(), store.server_history(&key, 20).await?));
        }
        (store.launches(&app.name, 100_000).await?, runs)
    } else {
        let none = app
            .servers_in_launch_order()
            .into_iter()
            .map(|s| (s.id.clone(), Vec::new()))
            .collect();
        (Vec::new(), none)
    };
    let deltas: Vec<_> = runs.iter().map(|(s, r)| expected_delta(s, r)).collect();
    validate_named_servers(app, "--accept-risk", &guarded.flags.accept_risk)?;
    let (options, inspections) = guarded
        .template
        .options(app, guarded.aws, None, io.err)
        .await?;
    let refusals = guardrails::evaluate(&Facts {
        definition: &guardrails::definition_hash(app),
        history: &history,
        amis: &[],
        inspections: &guarded.inspection_gates(&inspections),
        health_gate: options.health_gate,
        now: OffsetDateTime::now_utc(),
    });
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    print::dry_run(io.out, at, &app.hooks, &deltas, &reasons)?;
    let package = render_package(app, &options)?;
    let preview = preview::preview(guarded.clients, app, Mode::Cutover, &package)
        .await
        .map_err(exit_code_of)?;
    print::preview(io.out, &preview)?;
    Ok(())
}
