//! `rehost render FILE`: the application's CloudFormation template.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::common::{ModeArg, load_app, replicated_amis, state_path, write_output};
use rehost::app::App;
use rehost::diag::suggestion;
use rehost::error::InvalidInput;
use rehost::syntax::check_aws_id;
use rehost::template::{RenderOptions, render};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Flags shared by every command that renders a template (render, plan, launch, migrate).
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateFlags {
    #[arg(long, value_enum, default_value_t = ModeArg::Cutover)]
    pub mode: ModeArg,
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
    pub async fn options(&self, app: &App) -> anyhow::Result<RenderOptions> {
        let mut amis =
            replicated_amis(&state_path(self.state.as_deref(), &app.file), &app.name).await?;
        amis.extend(parse_amis(app, &self.amis)?);
        Ok(RenderOptions {
            mode: self.mode.into(),
            portable: self.portable,
            health_gate: !self.no_health_gate,
            amis,
        })
    }
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

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub template: TemplateFlags,
    /// Write to this file instead of standard output (atomically).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
    let options = args.template.options(&app).await?;
    let template = render(&app, &options);
    let text = match args.format {
        Format::Json => {
            let pretty = template.to_json_pretty();
            if pretty.len() > rehost::template::MAX_S3_BODY {
                // Indentation alone can push a large template over CloudFormation's limit.
                eprintln!(
                    "note: the indented template would be {} bytes, over CloudFormation's {}: writing it compact",
                    pretty.len(),
                    rehost::template::MAX_S3_BODY
                );
                template.to_json_compact() + "\n"
            } else {
                pretty
            }
        }
        Format::Yaml => template.to_yaml(),
    };
    write_output(args.output.as_deref(), &text)
}
