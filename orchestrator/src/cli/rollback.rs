//! `rehost rollback FILE --yes`: delete the cutover stack (only this application's own) and
//! wait until it is gone, then run the `postRollback` hooks (e.g. start the source services
//! again). Recorded in the launch history.

use std::path::PathBuf;
use std::time::Duration;

use rehost::app::Mode;
use rehost::error::InvalidInput;
use rehost::launch::guardrails::definition_hash;
use rehost::launch::hooks::run_phase;
use rehost::launch::record;
use rehost::launch::{AwsClients, stack};
use rehost::template::RenderOptions;
use rehost_replication::state::{HookOutcome, HookPhase, LaunchKind, LaunchOutcome};
use time::OffsetDateTime;

use crate::cli::args::{AwsArgs, StateArg};
use crate::cli::common::{app_dir, bound_state, exit_code_of, load_app};
use crate::cli::io::Io;
use crate::cli::print;
use crate::cli::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Required: the cutover stack runs production.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let name = app.stack_name(Mode::Cutover);
    if !args.yes {
        return Err(InvalidInput::new(format!(
            "rollback deletes the cutover stack {name}, which runs the migrated application, then runs the postRollback hooks: add --yes if you mean it"
        ))
        .into());
    }
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let location = args.state.resolve(&app)?;
    let store = bound_state(&location, &args.aws, &app, &clients).await?;
    let caller = clients.caller_arn().await.ok();
    let mut rec = record::started(
        LaunchKind::Rollback,
        &app,
        &RenderOptions::new(Mode::Cutover),
        &definition_hash(&app),
        caller,
        OffsetDateTime::now_utc(),
    );
    store.record_launch(&app.name, &rec).await?;
    let mut progress = Progress::lines(io.err);
    let deleted = stack::delete(
        &clients,
        &app,
        Mode::Cutover,
        Duration::from_secs(3600),
        &mut progress,
    )
    .await;
    let deleted = match deleted {
        Ok(d) => d,
        Err(e) => {
            // The stack may still run: the sources are not started beside it.
            record::refused(&mut rec, vec![e.to_string()], OffsetDateTime::now_utc());
            if !e.is_invalid_input() {
                rec.outcome = LaunchOutcome::Failed;
            }
            store.record_launch(&app.name, &rec).await?;
            return Err(exit_code_of(e));
        }
    };
    if deleted {
        writeln!(io.out, "stack {name} deleted")?;
    } else {
        writeln!(io.out, "stack {name} does not exist: nothing to delete")?;
    }
    rec.hooks = run_phase(
        &app.hooks.post_rollback,
        HookPhase::PostRollback,
        app_dir(&app),
        false,
        None,
    )
    .await;
    for h in &rec.hooks {
        print::hook_ran(io.err, h)?;
    }
    let failed: Vec<&str> = rec
        .hooks
        .iter()
        .filter(|h| h.outcome != HookOutcome::Succeeded)
        .map(|h| h.name.as_str())
        .collect();
    rec.finished_at = Some(OffsetDateTime::now_utc());
    rec.outcome = if failed.is_empty() {
        LaunchOutcome::Succeeded
    } else {
        LaunchOutcome::Failed
    };
    if !failed.is_empty() {
        rec.failure = Some(rehost_replication::state::LaunchFailure {
            resource: None,
            reasons: vec![format!("postRollback hooks failed: {}", failed.join(", "))],
        });
    }
    store.record_launch(&app.name, &rec).await?;
    if !failed.is_empty() {
        anyhow::bail!(
            "the stack is gone, but postRollback hooks failed: {}",
            failed.join(", ")
        );
    }
    Ok(())
}
