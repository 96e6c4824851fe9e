//! A team's state on S3, through the `rehost` binary against the emulator: `state init`,
//! replication with the state named in the application file, status and render from "another
//! machine" (another working directory), where `--state`, `REHOST_STATE`, the file's `state:`
//! and the default take precedence in that order, and `state migrate` of a local state.

use std::path::Path;
use std::process::Output;

use rehost_testkit::cli::{refused, succeeded as ok};
use rehost_testkit::images::{Fill, write_raw};
use rehost_testkit::{Moto, Rehost};
use serde_json::Value;

const BLOCK: u64 = 512 * 1024;

fn rehost(dir: &Path, args: &[&str]) -> Output {
    Rehost::new(env!("CARGO_BIN_EXE_rehost"))
        .current_dir(dir)
        .env_moto(Moto::shared())
        // A test machine may have REHOST_STATE set; these tests set it themselves.
        .env_remove("REHOST_STATE")
        .args(args)
        .run()
}

fn bucket() -> String {
    format!("rehost-team-{:012x}", fastrand::u64(..) >> 16)
}

/// An application of two small servers replicated once; `state` is its `state:` line.
fn application(dir: &Path, state: Option<&str>) -> std::path::PathBuf {
    for (n, server) in ["web", "db"].iter().enumerate() {
        write_raw(
            &dir.join(format!("{server}.raw")),
            3 * BLOCK,
            &[(0, 2, Fill::Random)],
            40 + n as u64,
        );
    }
    let state = state.map_or(String::new(), |s| format!("state: {s}\n"));
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: team\n{state}\
         defaults:\n  replication: {{runOnce: true}}\n  launch: {{instanceType: m5.large, subnet: subnet-0a1b2c3d, securityGroups: [sg-0a1b2c3d]}}\n\
         servers:\n  - {{id: web, os: linux, disks: [{{source: web.raw}}]}}\n  - {{id: db, os: linux, disks: [{{source: db.raw}}]}}\n\
         groups:\n  - {{name: db, servers: [db]}}\n  - {{name: web, servers: [web], dependsOn: [db]}}\n"
    );
    let file = dir.join("team.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Each server's last successful AMI per `status --output json` (servers without one left out).
fn amis(status: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(status).unwrap();
    doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            Some((
                s["server"].as_str()?.to_string(),
                s["last_success"]["ami_id"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn a_team_shares_one_state_on_s3() {
    let bucket = bucket();
    let state = format!("s3://{bucket}/migrations");
    let host = tempfile::tempdir().unwrap();
    let file = application(host.path(), Some(&state));

    // Replicating into a state nobody set up is refused, saying how to set it up.
    let err = refused(&rehost(host.path(), &["replicate", "team.yaml"]));
    assert!(
        err.contains(&format!("rehost state init s3://{bucket}")),
        "{err}"
    );

    let first = ok(&rehost(host.path(), &["state", "init", &state]));
    assert!(
        first.contains(&format!("created bucket {bucket}")),
        "{first}"
    );
    assert!(
        first.contains("encrypted with SSE-S3") && first.contains("ready"),
        "{first}"
    );
    let again = ok(&rehost(host.path(), &["state", "init", &state]));
    assert!(again.contains("already set up"), "{again}");

    // The replication host: the state comes from the application file.
    let out = ok(&rehost(
        host.path(),
        &["replicate", "team.yaml", "--parallel", "2"],
    ));
    assert!(out.contains("web") && out.contains("db"), "{out}");
    assert!(
        !host.path().join(".rehost/state.db").exists(),
        "nothing was kept locally"
    );

    // A laptop: another directory with a copy of the file; the same state.
    let laptop = tempfile::tempdir().unwrap();
    std::fs::copy(&file, laptop.path().join("team.yaml")).unwrap();
    let status = ok(&rehost(
        laptop.path(),
        &["status", "team.yaml", "--output", "json"],
    ));
    let replicated = amis(&status);
    assert_eq!(replicated.len(), 2, "{status}");
    let template = ok(&rehost(laptop.path(), &["render", "team.yaml"]));
    for (_, ami) in &replicated {
        assert!(
            template.contains(ami.as_str()),
            "AMI default {ami} in the template"
        );
    }

    // Precedence: --state over REHOST_STATE over the file's `state:` over the default.
    let local = laptop.path().join("elsewhere.db");
    let with_env = |args: &[&str]| {
        Rehost::new(env!("CARGO_BIN_EXE_rehost"))
            .current_dir(laptop.path())
            .env_moto(Moto::shared())
            .env("REHOST_STATE", &local)
            .args(args)
            .run()
    };
    let status = ok(&with_env(&["status", "team.yaml", "--output", "json"]));
    assert!(amis(&status).is_empty(), "REHOST_STATE wins over the file");
    let status = ok(&with_env(&[
        "status",
        "team.yaml",
        "--output",
        "json",
        "--state",
        &state,
    ]));
    assert_eq!(amis(&status), replicated, "--state wins over REHOST_STATE");
    let bare = tempfile::tempdir().unwrap();
    application(bare.path(), None);
    let status = ok(&rehost(
        bare.path(),
        &["status", "team.yaml", "--output", "json"],
    ));
    assert!(
        amis(&status).is_empty(),
        "no state: the default local file, empty"
    );

    // A bad location in the file is reported at its place.
    let broken = tempfile::tempdir().unwrap();
    application(broken.path(), Some("s3://No_Such/x"));
    let err = refused(&rehost(broken.path(), &["validate", "team.yaml"]));
    assert!(
        err.contains("team.yaml:4:8") && err.contains("lowercase"),
        "{err}"
    );
}

#[test]
fn a_local_state_moves_to_s3_and_moving_it_again_changes_nothing() {
    let bucket = bucket();
    let state = format!("s3://{bucket}/moved");
    let dir = tempfile::tempdir().unwrap();
    application(dir.path(), None);
    ok(&rehost(dir.path(), &["replicate", "team.yaml"]));
    // Inspected too: the cached inspections move with the rest.
    ok(&rehost(dir.path(), &["inspect", "team.yaml"]));
    let local = ok(&rehost(
        dir.path(),
        &["status", "team.yaml", "--output", "json"],
    ));

    let migrate = [
        "state",
        "migrate",
        "--from",
        ".rehost/state.db",
        "--to",
        &state,
    ];
    let err = refused(&rehost(dir.path(), &migrate));
    assert!(err.contains("rehost state init"), "{err}");
    ok(&rehost(dir.path(), &["state", "init", &state]));
    let moved = ok(&rehost(dir.path(), &migrate));
    assert!(
        moved.contains("2 servers moved, 0 already there")
            && moved.contains("0 launch records, 2 inspections and 0 accepted risks moved"),
        "{moved}"
    );
    let again = ok(&rehost(dir.path(), &migrate));
    assert!(
        again.contains("0 servers moved, 2 already there")
            && again.contains("0 launch records, 0 inspections and 0 accepted risks moved"),
        "{again}"
    );
    // The inspections arrived whole: inspecting against the state on S3 reuses them.
    let reused = rehost(dir.path(), &["inspect", "team.yaml", "--state", &state]);
    let stderr = String::from_utf8_lossy(&reused.stderr);
    assert!(reused.status.success(), "{stderr}");
    for server in ["web", "db"] {
        assert!(
            stderr.contains(&format!("{server}: disks unchanged since")),
            "{stderr}"
        );
    }

    let on_s3 = ok(&rehost(
        dir.path(),
        &["status", "team.yaml", "--output", "json", "--state", &state],
    ));
    assert_eq!(amis(&on_s3), amis(&local));
    assert_eq!(amis(&on_s3).len(), 2);

    // Another local state of the same application: the destination holds other records.
    ok(&rehost(
        dir.path(),
        &["replicate", "team.yaml", "--state", "other.db"],
    ));
    let err = refused(&rehost(
        dir.path(),
        &["state", "migrate", "--from", "other.db", "--to", &state],
    ));
    assert!(
        err.contains("already holds other records of team/db"),
        "{err}"
    );
}
