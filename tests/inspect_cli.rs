//! `rehost inspect` end to end: real images (Windows-like UEFI, old RHEL-like as qcow2, XFS),
//! text output against an expected file, the JSON contract's exact field names, and the exit
//! codes (0 whatever the verdicts, 2 for bad input, 1 when a disk cannot be opened).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rehost_testkit::guest::images::{self, WindowsSpec};
use rehost_testkit::guest::tools::convert;
use rehost_testkit::{scratch_dir, workspace_root};

fn rehost(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("rehost runs")
}

/// The images and an application file naming them, built once per test binary.
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = scratch_dir("inspect-cli", "images");
        images::windows_image(&d, "dc01", &WindowsSpec::ready(true));
        let old = images::rhel6_image(&d, "old01");
        convert(&old, "qcow2");
        images::xfs_image(&d, "xfs01");
        let app = "apiVersion: rehost/v1\nkind: Application\nname: estate\ndefaults:\n  launch:\n    instanceType: m5.large\nservers:\n  - id: dc01\n    os: windows\n    disks:\n      - source: dc01.raw\n  - id: old01\n    os: linux\n    disks:\n      - source: old01.qcow2\n  - id: xfs01\n    os: linux\n    disks:\n      - source: xfs01.raw\n  - id: gone01\n    os: linux\n    disks:\n      - source: gone01.raw\ngroups:\n  - name: all\n    servers: [dc01, old01, xfs01]\n  - name: lost\n    servers: [gone01]\n    dependsOn: [all]\n";
        std::fs::write(d.join("estate.yaml"), app).unwrap();
        d
    })
}

const INSPECTED: [&str; 8] = [
    "inspect",
    "estate.yaml",
    "--server",
    "dc01",
    "--server",
    "old01",
    "--server",
    "xfs01",
];

#[test]
fn text_output_matches_the_expected_file() {
    let d = fixture();
    let out = rehost(&INSPECTED, d);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let expected_path = workspace_root().join("tests/expected/inspect.txt");
    if std::env::var_os("REHOST_UPDATE_EXPECTED").is_some() {
        std::fs::write(&expected_path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(
        text, expected,
        "rerun with REHOST_UPDATE_EXPECTED=1 to accept a deliberate change"
    );
    assert!(
        text.starts_with("dc01: ready (Windows Server 2019 Datacenter 10.0.17763, x86_64, uefi)\n")
    );
    assert!(text.contains("old01: xen-only ("));
    assert!(text.contains("xfs01: unknown"));
}

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn json_output_follows_the_contract() {
    let d = fixture();
    let mut args = INSPECTED.to_vec();
    args.extend(["--output", "json"]);
    let out = rehost(&args, d);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys(&doc), BTreeSet::from(["application", "servers"]));
    assert_eq!(doc["application"], "estate");
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for s in servers {
        assert_eq!(
            keys(s),
            BTreeSet::from([
                "server",
                "verdict",
                "bootMode",
                "architecture",
                "os",
                "findings",
                "disks"
            ])
        );
        for f in s["findings"].as_array().unwrap() {
            assert_eq!(
                keys(f),
                BTreeSet::from(["code", "severity", "message", "fix"])
            );
        }
        for disk in s["disks"].as_array().unwrap() {
            assert_eq!(
                keys(disk),
                BTreeSet::from(["disk", "partitionTable", "partitions"])
            );
            for p in disk["partitions"].as_array().unwrap() {
                assert_eq!(
                    keys(p),
                    BTreeSet::from(["index", "type", "start", "size", "filesystem"])
                );
            }
        }
    }
    assert_eq!(servers[0]["verdict"], "ready");
    assert_eq!(servers[0]["bootMode"], "uefi");
    assert_eq!(servers[0]["architecture"], "x86_64");
    assert_eq!(
        servers[0]["os"],
        serde_json::json!({"family": "windows", "name": "Windows Server 2019 Datacenter", "version": "10.0.17763"})
    );
    assert_eq!(servers[1]["verdict"], "xen-only");
    assert_eq!(servers[1]["bootMode"], "legacy-bios");
    assert_eq!(servers[1]["os"]["family"], "linux");
    assert_eq!(servers[1]["disks"][0]["partitionTable"], "mbr");
    assert_eq!(
        servers[1]["disks"][0]["partitions"][0],
        serde_json::json!({"index": 1, "type": "linux", "start": 1048576, "size": 49283072, "filesystem": "ext4"})
    );
    let xfs = &servers[2];
    assert_eq!(
        (
            &xfs["verdict"],
            &xfs["os"],
            &xfs["architecture"],
            &xfs["bootMode"]
        ),
        (
            &serde_json::json!("unknown"),
            &serde_json::Value::Null,
            &serde_json::Value::Null,
            &serde_json::Value::Null
        )
    );
}

#[test]
fn bad_input_exits_2_and_an_unopenable_disk_exits_1() {
    let d = fixture();
    let out = rehost(&["inspect", "estate.yaml", "--server", "nope"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server nope: no such server"));
    let out = rehost(&["inspect", "missing.yaml"], d);
    assert_eq!(out.status.code(), Some(2));
    // gone01's disk does not exist: the others are still reported, then exit 1.
    let out = rehost(
        &[
            "inspect",
            "estate.yaml",
            "--server",
            "gone01",
            "--server",
            "dc01",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("dc01: ready"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gone01") && err.contains("disk0"), "{err}");
}

/// The cache through the command line: a second `inspect` does not read unchanged disks again
/// (it says so on stderr, the report is the same and the stored `inspectedAt` stays), and
/// `--fresh` reads them anyway.
#[test]
fn a_second_inspect_reuses_the_stored_result_and_fresh_reads_again() {
    let d = fixture();
    let state = scratch_dir("inspect-cli", "cache-state").join("state.db");
    let _ = std::fs::remove_file(&state);
    let state = state.to_str().unwrap();
    let args = [
        "inspect",
        "estate.yaml",
        "--server",
        "old01",
        "--state",
        state,
    ];
    let stored_at = || -> i64 {
        let conn = rusqlite::Connection::open(state).unwrap();
        conn.query_row(
            "SELECT inspected_at FROM inspections WHERE app = 'estate' AND server = 'old01'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let first = rehost(&args, d);
    assert_eq!(first.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&first.stderr).contains("not read again"));
    let at = stored_at();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = rehost(&args, d);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(second.stdout, first.stdout, "the same report");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("old01: disks unchanged since"), "{err}");
    assert_eq!(stored_at(), at, "not inspected again");
    let mut fresh = args.to_vec();
    fresh.push("--fresh");
    let third = rehost(&fresh, d);
    assert_eq!(third.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&third.stderr).contains("not read again"));
    assert!(stored_at() > at, "--fresh inspected again");
}
