//! The `rehost` binary: parses the command line, runs the command, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 invalid input) and prints the cause chain, never a Debug dump.

use std::process::ExitCode;

mod cli;

use clap::Parser;
use cli::{Cli, run};
use rehost::error::InvalidInput;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = if cli.command.needs_runtime() {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(cli.command)),
            Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
        }
    } else {
        futures_lite_block_on(run(cli.command))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let invalid = e.chain().any(|c| c.is::<InvalidInput>());
            // Errors can quote user text (paths, ids, AWS messages): no control characters
            // reach the terminal.
            let shown = |m: &dyn std::fmt::Display| {
                rehost::diag::escape_controls_multiline(&m.to_string()).into_owned()
            };
            eprintln!("error: {}", shown(&e));
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {}", shown(&cause));
            }
            if invalid {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Pure commands need no runtime: their futures never wait, so one poll finishes them.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime always builds");
    rt.block_on(future)
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // The credential chain warns about every provider it tries; the final error says enough.
        0 => "warn,aws_config=error",
        1 => "info,rehost=info,rehost_replication=info",
        _ => "debug,hyper=info,h2=info,aws_smithy_runtime=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
