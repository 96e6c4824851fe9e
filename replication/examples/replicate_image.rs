//! Replicates one disk image as one server, the way `rehost replicate` drives the engine:
//!
//!     cargo run -p rehost-replication --example replicate_image -- APP SERVER IMAGE [STATE_DB]
//!
//! AWS access comes from the standard chain (`AWS_ENDPOINT_URL` points it at an emulator).
//! Prints the server report as JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rehost_replication::aws::{AwsOptions, load_sdk_config};
use rehost_replication::{
    Architecture, DiskFormat, DiskJob, LicenseType, ReplicateOptions, Replicator, ServerJob,
    SqliteStore, StateStore,
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, server, image, rest @ ..] = args.as_slice() else {
        eprintln!("usage: replicate_image APP SERVER IMAGE [STATE_DB]");
        return std::process::ExitCode::from(2);
    };
    // The format comes from the extension, never from the image's own header.
    let Some(format) = DiskFormat::implied_by(Path::new(image)) else {
        eprintln!("error: {image}: name a .raw, .img, .qcow2, .vmdk, .vhd or .vhdx image");
        return std::process::ExitCode::from(2);
    };
    let state = rest
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".rehost/state.db"));
    let store = match SqliteStore::open(&state).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _lock = match store.lock_app(app).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sdk = load_sdk_config(&AwsOptions::default()).await;
    let replicator = Replicator::new(&sdk, Arc::new(store), ReplicateOptions::default());
    let job = ServerJob {
        app: app.clone(),
        server: server.clone(),
        group: "default".into(),
        disks: vec![DiskJob {
            name: "disk0".into(),
            source: image.into(),
            format,
        }],
        architecture: Architecture::X86_64,
        boot_mode: None,
        ena_support: true,
        license_type: LicenseType::Auto,
        encryption: None,
        keep_recent_amis: 0,
        tags: Vec::new(),
    };
    let report = replicator.replicate(&job).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if report.status == rehost_replication::ReportStatus::Completed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
