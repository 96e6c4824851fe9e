//! `rehost inspect FILE`: will each server boot on EC2 and run its configure script? Reads every
//! disk read-only through the replication sources and prints a verdict per server with its
//! findings and fixes. Exit 0 whatever the verdicts (launch pre-flight is where they refuse);
//! 2 for an invalid file or an unknown --server; 1 when a disk cannot be opened.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use rehost_replication::inspect::{InspectError, Limits, ServerInspection, inspect_server};
use rehost_replication::source::QemuTools;

use rehost::replication_jobs::server_job;
use rehost_replication::DiskJob;

use crate::cli::args::OutputFormat;
use crate::cli::common::{load_app, validate_server_ids};
use crate::cli::io::Io;
use crate::cli::print;

/// Servers inspected at once: each takes a core while it decompresses an initramfs.
const PARALLEL: usize = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Inspect only these servers (repeatable); default: all.
    #[arg(long = "server", value_name = "ID")]
    pub servers: Vec<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Inspects servers (id, disks) a few at a time; results in the given order.
pub fn inspect_servers(
    servers: &[(String, Vec<DiskJob>)],
) -> Vec<Result<ServerInspection, InspectError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<ServerInspection, InspectError>>>> =
        Mutex::new((0..servers.len()).map(|_| None).collect());
    let tools = QemuTools::default();
    let limits = Limits::default();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(servers.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, disks)) = servers.get(i) else {
                        break;
                    };
                    let r = inspect_server(id, disks, &tools, &limits);
                    results.lock().expect("no worker panics holding it")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("workers finished")
        .into_iter()
        .map(|r| r.expect("every server was taken by a worker"))
        .collect()
}

pub fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    validate_server_ids(&app, &args.servers)?;
    // The disks exactly as replication reads them: same names, formats and checks.
    let chosen: Vec<(String, Vec<DiskJob>)> = app
        .servers_in_launch_order()
        .into_iter()
        .filter(|s| args.servers.is_empty() || args.servers.contains(&s.id))
        .map(|s| (s.id.clone(), server_job(&app, s, None).disks))
        .collect();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for r in inspect_servers(&chosen) {
        match r {
            Ok(report) => reports.push(report),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let out = &mut *io.out;
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({"application": app.name, "servers": reports});
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
        }
        OutputFormat::Text => print::inspections(out, &reports),
    }
    .context("cannot write to standard output")?;
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("\n"))
    }
}
