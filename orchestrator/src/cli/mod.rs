//! The `rehost` command line, part of the binary: one module per subcommand, each owning its clap
//! `Args` and `run`, on top of the `rehost` library (the engine). anyhow lives only here.
//!
//! Subcommands never import each other: shared flags live in `args`, shared helpers in
//! `common`, the printed text in `print` (tested against `tests/expected/cli/`), and the launch
//! progress display in `progress`. Every command writes through an [`Io`] (`io`), so its output can
//! be captured in process.

pub mod args;
pub mod common;
pub mod cutover;
pub mod graph;
pub mod guarded;
pub mod history;
pub mod inspect;
pub mod io;
pub mod launch;
pub mod migrate;
pub mod plan;
pub mod print;
pub mod progress;
pub mod render;
pub mod replicate;
pub mod rollback;
pub mod schema;
pub mod share;
pub mod signals;
pub mod state;
pub mod status;
pub mod terminate;
pub mod validate;

use std::future::Future;

use anyhow::Context;
use clap::{Parser, Subcommand};

pub use io::Io;

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
    /// Set up a state on S3 shared by a team, or move a state there
    State(state::Args),
    /// Inspect every server's disks offline: will it boot on EC2 and run its configure script?
    Inspect(inspect::Args),
    /// Launches and replication runs, newest first
    History(history::Args),
    /// The cutover runbook: wait, preCutover hooks, final sync, guardrails, production launch
    Cutover(cutover::Args),
    /// Delete the cutover stack and run the postRollback hooks
    Rollback(rollback::Args),
}

/// Runs a command. The pure ones (validate, graph, schema) run without an async runtime; the
/// ones that talk to AWS or use the state store (render reads the latest AMIs, inspect keeps
/// its results there) get one.
pub fn run(command: Command, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        Command::Validate(args) => validate::run(args, io),
        Command::Graph(args) => graph::run(args, io),
        Command::Render(args) => block_on(render::run(args, io)),
        Command::Schema(args) => schema::run(args, io),
        Command::Replicate(args) => block_on(replicate::run(args, io)),
        Command::Plan(args) => block_on(plan::run(args, io)),
        Command::Launch(args) => block_on(launch::run(args, io)),
        Command::Status(args) => block_on(status::run(args, io)),
        Command::Share(args) => block_on(share::run(args, io)),
        Command::Terminate(args) => block_on(terminate::run(args, io)),
        Command::Migrate(args) => block_on(migrate::run(args, io)),
        Command::State(args) => block_on(state::run(args, io)),
        Command::Inspect(args) => block_on(inspect::run(args, io)),
        Command::History(args) => block_on(history::run(args, io)),
        Command::Cutover(args) => block_on(cutover::run(args, io)),
        Command::Rollback(args) => block_on(rollback::run(args, io)),
    }
}

fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}
