//! The `rehost` binary: parses the command line, runs the command, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 invalid input) and prints the cause chain, never a Debug dump.

use std::io::Write;
use std::process::ExitCode;

mod cli;

use clap::Parser;
use cli::{Cli, Io, run};
use rehost::error::InvalidInput;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let mut out = Stdout(std::io::stdout());
    let mut err = std::io::stderr();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let result = run(cli.command, &mut io);
    let _ = io.out.flush();
    exit(result, io.err)
}

/// Prints an error with its cause chain and chooses the exit code.
fn exit(result: anyhow::Result<()>, err: &mut dyn Write) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    let invalid = e.chain().any(|c| c.is::<InvalidInput>());
    // Errors can quote user text (paths, ids, AWS messages): no control characters reach the
    // terminal.
    let shown = |m: &dyn std::fmt::Display| {
        rehost::diag::escape_controls_multiline(&m.to_string()).into_owned()
    };
    let _ = writeln!(err, "error: {}", shown(&e));
    for cause in e.chain().skip(1) {
        let _ = writeln!(err, "  caused by: {}", shown(&cause));
    }
    ExitCode::from(if invalid { 2 } else { 1 })
}

/// Standard output where a closed pipe ends the output quietly: `rehost render | head` is not
/// a failure.
struct Stdout(std::io::Stdout);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
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
