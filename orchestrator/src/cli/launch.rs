//! `rehost launch FILE`: pre-flight, then create or update the mode's stack, follow it wave by
//! wave, and end with the servers in launch order.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use aws_smithy_types::DateTime;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::common::AwsArgs;
use crate::cli::render::TemplateFlags;
use rehost::app::App;
use rehost::error::InvalidInput;
use rehost::launch::preflight::Preflight;
use rehost::launch::stack::{self, EventView, Observer, OnFailureChoice, StackRequest, Started};
use rehost::launch::{AwsClients, LaunchError};
use rehost::template::{Template, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub launch: LaunchFlags,
    #[command(flatten)]
    pub template: TemplateFlags,
    #[command(flatten)]
    pub aws: AwsArgs,
}

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
}

/// Lines on a pipe or log, one progress bar per launch wave on a terminal.
pub enum Progress {
    Lines,
    Bars {
        bars: Vec<ProgressBar>,
        wave_of: BTreeMap<String, usize>,
        _multi: MultiProgress,
    },
}

impl Progress {
    pub fn new(app: &App, template: &Template) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let multi = MultiProgress::new();
        let mut wave_of = BTreeMap::new();
        let mut bars = Vec::new();
        let resources = template.body["Resources"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (i, wave) in app.graph.waves().iter().enumerate() {
            let mut count = 0;
            for &g in wave {
                let group = &app.groups[g];
                let mut ids: Vec<String> = group
                    .servers
                    .iter()
                    .map(|&s| app.servers[s].logical_id.clone())
                    .collect();
                ids.push(rehost::template::Names::gate(&group.logical_stem));
                ids.push(rehost::template::Names::gate_handle(&group.logical_stem));
                for id in ids.into_iter().filter(|id| resources.contains_key(id)) {
                    wave_of.insert(id, i);
                    count += 1;
                }
            }
            let names: Vec<&str> = wave.iter().map(|&g| app.groups[g].name.as_str()).collect();
            let bar = multi.add(ProgressBar::new(count));
            bar.set_style(
                ProgressStyle::with_template("wave {prefix:>2} {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix((i + 1).to_string());
            bar.set_message(names.join(", "));
            bars.push(bar);
        }
        Progress::Bars {
            bars,
            wave_of,
            _multi: multi,
        }
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &EventView) {
        match self {
            Progress::Lines => {
                let reason = e
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                eprintln!(
                    "{} {:<24} {:<36} {}{reason}",
                    e.time, e.logical_id, e.resource_type, e.status
                );
            }
            Progress::Bars { bars, wave_of, .. } => {
                if let Some(&w) = wave_of.get(&e.logical_id) {
                    if e.status == "CREATE_COMPLETE" || e.status == "UPDATE_COMPLETE" {
                        bars[w].inc(1);
                    }
                    if e.status.ends_with("FAILED") {
                        bars[w].set_message(format!("{} {}", e.logical_id, e.status));
                    }
                }
            }
        }
    }
}

/// The launch itself, shared with `migrate`.
pub async fn launch(
    clients: &AwsClients,
    app: &App,
    flags: &TemplateFlags,
    launch: &LaunchFlags,
) -> anyhow::Result<()> {
    if flags.portable {
        return Err(InvalidInput::new(
            "--portable renders a template for another account, whose ids it leaves as parameters: \
             launch it there (`rehost share` writes it); here, launch without --portable",
        )
        .into());
    }
    let options = flags.options(app).await?;
    let mode = options.mode;
    let template = render(app, &options);
    let findings = Preflight {
        app,
        mode,
        amis: &options.amis,
    }
    .run(clients)
    .await?;
    if !findings.is_empty() {
        return Err(LaunchError::Preflight(findings).into());
    }
    let gate_path: u64 = {
        let weights = app.gate_minutes(mode);
        app.graph.critical_path(&weights).1
    };
    let limit = Duration::from_secs(60 * launch.timeout.unwrap_or(gate_path + 30));
    let req = StackRequest {
        app,
        mode,
        template: &template,
        on_failure: launch.on_failure,
        wait_limit: limit,
    };
    let name = req.name();
    let mut progress = Progress::new(app, &template);
    let since = DateTime::from(std::time::SystemTime::now());
    let started = stack::start(clients, &req, &mut progress).await?;
    match started {
        Started::Unchanged => {
            println!("stack {name} is up to date: nothing to launch");
        }
        Started::Created | Started::Updated if launch.no_wait => {
            let verb = if started == Started::Created {
                "creating"
            } else {
                "updating"
            };
            println!(
                "{verb} stack {name}; follow it with `rehost status {}`",
                app.file.display()
            );
            return Ok(());
        }
        Started::Created | Started::Updated => {
            let info = stack::wait(clients, &name, Some(since), limit, &mut progress).await?;
            let status = info
                .as_ref()
                .map_or("DELETE_COMPLETE".to_string(), |i| i.status.clone());
            if status != "CREATE_COMPLETE" && status != "UPDATE_COMPLETE" {
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
                    status,
                    resource,
                    reason,
                }
                .into());
            }
            println!("stack {name}: {status}");
        }
    }
    let instances = stack::instances(clients, app, &name).await?;
    stack::print_instances(&instances);
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = crate::cli::common::load_app(&args.file)?.app;
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    launch(&clients, &app, &args.template, &args.launch)
        .await
        .map_err(invalid_if_user_error)
}

/// Pre-flight findings and refusals are the user's to fix: exit code 2.
pub fn invalid_if_user_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<LaunchError>() {
        Some(l) if l.is_invalid_input() => InvalidInput::new(l.to_string()).into(),
        _ => e,
    }
}
