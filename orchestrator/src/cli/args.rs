//! Flags several subcommands share and what they mean: the template flags (render, plan, launch,
//! migrate) with `--ami` and the state's AMI defaults, the launch flags (launch, migrate),
//! `--state` (where the state lives, and opening it), `--output`, `--region`, and the parser
//! for the domain's enums (`--mode`, `--architecture`), which reads the same words the
//! application file uses.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use rehost::app::App;
use rehost::diag::suggestion;
use rehost::error::InvalidInput;
use rehost::launch::AwsClients;
use rehost::launch::stack::OnFailureChoice;
use rehost::syntax::check_aws_id;
use rehost::template::RenderOptions;
use rehost_replication::domain::Choice;
use rehost_replication::inspect::{ServerInspection, cached_inspections};
use rehost_replication::state::{StateLocation, StateStore};

use crate::cli::common::{bind_state, refuse_contradictions, state_error};

/// Each server's inspection, by server id.
pub type Inspections = BTreeMap<String, ServerInspection>;

/// A clap parser for a domain enum: its application-file spellings are the possible values.
pub fn choice<T: Choice + Clone + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::CHOICES.iter().map(|(name, _)| *name)).map(|name: String| {
        T::CHOICES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .expect("clap accepted one of the possible values")
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How to reach AWS: the standard chain (environment, profiles, SSO, instance metadata) and the
/// standard `AWS_ENDPOINT_URL` override, with rehost's retry and timeout policy.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// AWS region (default: from the environment or profile).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl AwsArgs {
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let opts = rehost_replication::aws::AwsOptions {
            region: self.region.clone(),
            ..Default::default()
        };
        rehost_replication::aws::load_sdk_config(&opts).await
    }
}

/// `--state PATH|s3://BUCKET/PREFIX`: where rehost keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    /// Where the state lives: a SQLite file, or s3://BUCKET/PREFIX shared by a team (set up
    /// with `rehost state init`). Default: the application's `state:` setting, else
    /// `.rehost/state.db` beside the application file.
    #[arg(
        long = "state",
        env = "REHOST_STATE",
        value_name = "PATH|s3://BUCKET/PREFIX"
    )]
    pub location: Option<String>,
}

impl StateArg {
    /// Where the state lives: `--state` (or `REHOST_STATE`), else the application's `state:`,
    /// else `.rehost/state.db` beside the application file.
    pub fn resolve(&self, app: &App) -> anyhow::Result<StateLocation> {
        match &self.location {
            Some(text) => StateLocation::parse(text, None).map_err(state_error),
            None => Ok(app.state.clone().unwrap_or_else(|| {
                StateLocation::File(rehost_replication::state::default_state_path(&app.file))
            })),
        }
    }
}

/// Flags shared by every command that renders a template (render, plan, launch, migrate).
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateFlags {
    /// Which launch: `test` (the default, beside production) or `cutover` (production), which
    /// must be named.
    #[arg(long, default_value = "test", value_parser = choice::<rehost::app::Mode>())]
    pub mode: rehost::app::Mode,
    /// Account-specific ids (subnets, security groups, key pair, instance profile) become
    /// typed parameters, so the template launches in another account.
    #[arg(long)]
    pub portable: bool,
    /// No launch gates: plain DependsOn between instances, no configure-script signals.
    #[arg(long)]
    pub no_health_gate: bool,
    /// Launch as nested stacks (a parent and a child stack per group) even when the
    /// application fits one template; larger applications always are.
    #[arg(long)]
    pub nested: bool,
    /// Default AMI of a server's parameter (repeatable), over the replication state's.
    #[arg(long = "ami", value_name = "SERVER=AMI")]
    pub amis: Vec<String>,
    /// The state whose latest AMIs become the parameter defaults.
    #[command(flatten)]
    pub state: StateArg,
}

impl TemplateFlags {
    /// Render options with the AMI defaults: the latest replicated AMIs, overridden by `--ami`,
    /// and the servers' cached inspections (never reading a disk), against which the file's
    /// `bootMode`, `architecture` and `os` are checked (a contradiction is an error at its
    /// FILE:LINE:COL, printed on `err`, exit code 2). With `clients` (plan, launch, migrate)
    /// the state is first bound to the account and region they reach (another one is
    /// refused); without (render, which works offline with a local state) it is only read.
    /// `aws` reaches a state on S3.
    pub async fn options(
        &self,
        app: &App,
        aws: &AwsArgs,
        clients: Option<&AwsClients>,
        err: &mut dyn Write,
    ) -> anyhow::Result<(RenderOptions, Inspections)> {
        let location = self.state.resolve(app)?;
        // A missing state database means nothing was replicated or inspected yet (and is not
        // created by reading).
        let (mut amis, inspections) = match open_state_to_read(&location, aws).await? {
            None => (BTreeMap::new(), BTreeMap::new()),
            Some(store) => {
                if let Some(clients) = clients {
                    bind_state(store.as_ref(), app, clients).await?;
                }
                let amis = store
                    .latest_amis(&app.name)
                    .await?
                    .into_iter()
                    .map(|(server, ami)| (server, ami.ami_id))
                    .collect();
                let ids = app.servers.iter().map(|s| s.id.as_str());
                let inspections = cached_inspections(store.as_ref(), &app.name, ids)
                    .await?
                    .into_iter()
                    .map(|(id, record)| (id, record.inspection))
                    .collect();
                (amis, inspections)
            }
        };
        refuse_contradictions(app, &inspections, err)?;
        amis.extend(parse_amis(app, &self.amis)?);
        let options = RenderOptions {
            mode: self.mode,
            portable: self.portable,
            health_gate: !self.no_health_gate,
            nested: self.nested,
            amis,
        };
        Ok((options, inspections))
    }
}

/// Flags of a launch (launch, migrate).
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchFlags {
    /// Start the launch and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// On failure: keep the failed resources, roll back, or delete a new stack.
    #[arg(long, value_enum, default_value_t = OnFailureChoice::Rollback)]
    pub on_failure: OnFailureChoice,
    /// Give up following the stack after this many minutes (default: the worst case of the
    /// launch gates along the critical path, plus 30).
    #[arg(long, value_name = "MINUTES")]
    pub timeout: Option<u64>,
    /// Let a cutover update replace or remove running instances (a new AMI replaces every
    /// instance it changes). Without it such an update is shown and refused, changing nothing.
    #[arg(long)]
    pub yes: bool,
    /// Cut over although guardrails refuse (no successful test of this definition, a stale
    /// replica, an inspection verdict); needs --reason, and both are recorded in the history.
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why the guardrails are overridden (with --force).
    #[arg(long, value_name = "TEXT", requires = "force")]
    pub reason: Option<String>,
    /// Launch this server although pre-flight refuses its guest (a Nitro type for a Xen-only
    /// image, no agent under the health gate, will not boot); repeatable. Said on stderr every
    /// time and recorded in the state with the caller's ARN.
    #[arg(long = "accept-risk", value_name = "SERVER")]
    pub accept_risk: Vec<String>,
}

/// Opens the state (creating a SQLite file that does not exist yet).
pub async fn open_state(
    location: &StateLocation,
    aws: &AwsArgs,
) -> anyhow::Result<Arc<dyn StateStore>> {
    let sdk = match location {
        StateLocation::File(_) => aws_config::SdkConfig::builder().build(),
        StateLocation::S3 { .. } => aws.sdk_config().await,
    };
    rehost_replication::state::open(location, &sdk)
        .await
        .map_err(state_error)
}

/// Opens the state to read it: `None` for a SQLite file that does not exist (nothing was
/// replicated yet; reading does not create it).
pub async fn open_state_to_read(
    location: &StateLocation,
    aws: &AwsArgs,
) -> anyhow::Result<Option<Arc<dyn StateStore>>> {
    if let StateLocation::File(path) = location
        && !path.exists()
    {
        return Ok(None);
    }
    open_state(location, aws).await.map(Some)
}

/// Parses `SERVER=ami-...` pairs, reporting every bad one at once.
pub fn parse_amis(app: &App, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for pair in pairs {
        let Some((server, ami)) = pair.split_once('=') else {
            problems.push(format!("--ami {pair}: expected SERVER=ami-..."));
            continue;
        };
        if app.server(server).is_none() {
            problems.push(format!(
                "--ami {pair}: no server `{server}` in application {}{}",
                app.name,
                suggestion(server, app.servers.iter().map(|s| s.id.as_str()))
            ));
        }
        if let Err(e) = check_aws_id(ami, "ami") {
            problems.push(format!("--ami {pair}: {e}"));
        }
        out.insert(server.to_string(), ami.to_string());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InvalidInput::new(problems.join("\n")).into())
    }
}
