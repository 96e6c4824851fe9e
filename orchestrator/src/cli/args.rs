//! Flags several subcommands share and what they mean: the template flags (render, plan, launch,
//! migrate) with `--ami` and the state database's AMI defaults, the launch flags (launch,
//! migrate), `--state`, `--output`, `--region`, and the parser for the domain's enums (`--mode`,
//! `--architecture`), which reads the same words the application file uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use rehost::app::App;
use rehost::diag::suggestion;
use rehost::error::InvalidInput;
use rehost::launch::AwsClients;
use rehost::launch::stack::OnFailureChoice;
use rehost::syntax::check_aws_id;
use rehost::template::RenderOptions;
use rehost_replication::domain::Choice;
use rehost_replication::{SqliteStore, StateStore};

use crate::cli::common::bound_state;

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
#[derive(Debug, Clone, clap::Args)]
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

/// `--state PATH`: the replication state database (default `.rehost/state.db` beside the file).
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    #[arg(long = "state", value_name = "PATH")]
    pub path: Option<PathBuf>,
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
    /// Default AMI of a server's parameter (repeatable), over the replication state's.
    #[arg(long = "ami", value_name = "SERVER=AMI")]
    pub amis: Vec<String>,
    /// Replication state database (default `.rehost/state.db` beside the application file),
    /// whose latest AMIs become the parameter defaults.
    #[arg(long = "state", value_name = "PATH")]
    pub state: Option<PathBuf>,
}

impl TemplateFlags {
    /// Render options with the AMI defaults: the latest replicated AMIs, overridden by `--ami`.
    /// With `aws` (plan, launch, migrate) the state is first bound to the account and region
    /// it reaches (another one is refused); without (render, which works offline) it is only
    /// read.
    pub async fn options(
        &self,
        app: &App,
        aws: Option<&AwsClients>,
    ) -> anyhow::Result<RenderOptions> {
        let path = state_path(self.state.as_deref(), &app.file);
        // A missing state database means nothing was replicated yet (and is not created by
        // reading).
        let mut amis = if !path.exists() {
            BTreeMap::new()
        } else {
            let store = match aws {
                Some(clients) => bound_state(&path, app, clients).await?,
                None => SqliteStore::open(&path).await?,
            };
            store
                .latest_amis(&app.name)
                .await?
                .into_iter()
                .map(|(server, ami)| (server, ami.ami_id))
                .collect()
        };
        amis.extend(parse_amis(app, &self.amis)?);
        Ok(RenderOptions {
            mode: self.mode,
            portable: self.portable,
            health_gate: !self.no_health_gate,
            amis,
        })
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
}

/// The replication state database: `--state`, else `.rehost/state.db` beside the application file.
pub fn state_path(explicit: Option<&Path>, app_file: &Path) -> PathBuf {
    explicit.map_or_else(
        || rehost_replication::state::default_state_path(app_file),
        Path::to_path_buf,
    )
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
