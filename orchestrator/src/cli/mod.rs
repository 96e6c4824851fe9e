//! The `rehost` command line, part of the binary: one module per subcommand, each owning its clap
//! `Args` and `run`, on top of the `rehost` library (the engine). anyhow lives only here.

pub mod common;
pub mod graph;
pub mod inspect;
pub mod launch;
pub mod migrate;
pub mod plan;
pub mod render;
pub mod replicate;
pub mod schema;
pub mod share;
pub mod status;
pub mod terminate;
pub mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rehost",
    version,
    about = "Move whole multi-server applications to AWS: replicate disks block by block to AMIs, \
             launch them in dependency order from one CloudFormation template",
    propagate_version = true
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check application files and report every problem as FILE:LINE:COL
    Validate(validate::Args),
    /// Show the launch order: waves, critical path, or a mermaid/dot drawing
    Graph(graph::Args),
    /// Render the application's CloudFormation template
    Render(render::Args),
    /// Print the JSON Schema of the application file
    Schema(schema::Args),
    /// Replicate servers' disks block by block to EBS snapshots and register AMIs
    Replicate(replicate::Args),
    /// Show what a launch would create or change, without changing anything
    Plan(plan::Args),
    /// Launch the whole application (test or cutover) from its template, tier by tier
    Launch(launch::Args),
    /// Replication and launch state of every server
    Status(status::Args),
    /// Share the latest AMIs with other accounts and write the portable template
    Share(share::Args),
    /// Delete a mode's stack
    Terminate(terminate::Args),
    /// Replicate every server, then launch: the whole application in one action
    Migrate(migrate::Args),
    /// Inspect every server's disks offline: will it boot on EC2 and run its configure script?
    Inspect(inspect::Args),
}

impl Command {
    /// Whether the command talks to AWS (and so needs an async runtime).
    pub fn needs_runtime(&self) -> bool {
        !matches!(
            self,
            Command::Validate(_)
                | Command::Graph(_)
                | Command::Render(_)
                | Command::Schema(_)
                | Command::Inspect(_)
        )
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Validate(args) => validate::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Render(args) => render::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Replicate(args) => replicate::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::Launch(args) => launch::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Share(args) => share::run(args).await,
        Command::Terminate(args) => terminate::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Inspect(args) => inspect::run(args),
    }
}
