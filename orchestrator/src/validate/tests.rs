//! Validation and settings resolution from YAML text and script bytes: no files, no CLI.

use std::path::{Path, PathBuf};

use super::*;

pub(super) const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

/// Resolves a document with these scripts (path relative to `apps/`, bytes or read error);
/// returns the application, if valid, and every problem as `LINE:COL message`.
pub(super) fn resolve_with(
    text: &str,
    scripts: &[(&str, Result<&[u8], ScriptReadError>)],
) -> (Option<App>, Vec<String>) {
    let root = crate::yaml::parse(text.as_bytes()).expect("valid YAML");
    let mut diags = Diagnostics::default();
    let model = crate::decode::application(&root, &mut diags).expect("decodes");
    let files: ScriptFiles = scripts
        .iter()
        .map(|(p, r)| (Path::new("apps").join(p), r.clone().map(<[u8]>::to_vec)))
        .collect();
    let app = resolve(&model, Path::new("apps/shop.yaml"), &files, &mut diags);
    (app, diags.lines())
}

fn valid(text: &str) -> App {
    let (app, problems) = resolve_with(text, &[]);
    assert_eq!(problems, Vec::<String>::new());
    app.expect("valid")
}

#[test]
fn settings_merge_field_by_field_and_remember_their_block() {
    let app = valid(&format!(
        "{HEAD}defaults:\n  launch:\n    instanceType: m5.large\n    subnet: subnet-0a1b2c3d\n    keyName: admin\n    \
         test: {{subnet: subnet-0e0e0e0e, instanceType: t3.large}}\n\
         servers:\n  - {{id: db, os: linux, disks: [{{source: db.img}}], launch: {{privateIpAddress: 10.0.0.5, keyName: db-admin}}}}\n  \
         - {{id: web, os: linux, disks: [{{source: /srv/web.img}}]}}\n\
         groups:\n  - name: data\n    servers: [db]\n    launch: {{instanceType: r5.large, securityGroups: [sg-0a1b2c3d]}}\n  \
         - {{name: web, servers: [web], dependsOn: [data]}}\n"
    ));
    let db = app.server("db").unwrap();
    assert_eq!(
        db.cutover.instance_type, "r5.large",
        "the group's over defaults"
    );
    assert_eq!(db.cutover.key_name.as_ref().unwrap().value, "db-admin");
    assert_eq!(
        db.cutover.key_name.as_ref().unwrap().origin.level,
        Level::Server(0)
    );
    let sg = db.cutover.security_groups.as_ref().unwrap();
    assert_eq!(sg.value, ["sg-0a1b2c3d"]);
    assert_eq!(
        sg.origin,
        Origin {
            level: Level::Group(0),
            test: false
        }
    );
    assert_eq!(
        db.cutover.subnet.as_ref().unwrap().origin.level,
        Level::Defaults
    );
    assert_eq!(db.cutover.private_ip_address.as_deref(), Some("10.0.0.5"));
    assert_eq!(db.cutover.signal_timeout_minutes, 30);
    assert_eq!(
        db.disks,
        [AppDisk {
            source: PathBuf::from("apps/db.img"),
            format: DiskFormat::Raw
        }]
    );
    // Test mode: the test block's subnet and type, no cutover address, no VPC check.
    let test = db.launch(Mode::Test);
    assert_eq!(test.subnet.as_ref().unwrap().value, "subnet-0e0e0e0e");
    assert!(test.subnet.as_ref().unwrap().origin.test);
    assert_eq!(test.instance_type, "t3.large");
    assert_eq!(test.private_ip_address, None);
    assert_eq!(test.security_groups, db.cutover.security_groups);
    let web = app.server("web").unwrap();
    assert_eq!(web.cutover.instance_type, "m5.large");
    assert_eq!(web.disks[0].source, PathBuf::from("/srv/web.img"));
    assert_eq!(web.logical_id, "Web");
    assert_eq!(app.groups[1].depends_on, [0]);
    assert_eq!(app.groups[0].logical_stem, "Data");
}

#[test]
fn replication_settings_have_defaults_and_the_most_specific_schedule_wins() {
    let app = valid(&format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\n  replication: {{runOnce: true, encrypted: true}}\n\
         servers:\n  - {{id: a, os: linux, disks: [{{source: a.img}}], replication: {{frequencyHours: 6, kmsKeyId: alias/k, maxLagMinutes: 30}}}}\n  \
         - {{id: b, os: linux, disks: [{{source: b.img}}]}}\n  - {{id: c, os: linux, disks: [{{source: c.img}}]}}\n\
         groups:\n  - {{name: g, servers: [a, b], replication: {{keepRecentAmis: 4, licenseType: AWS, maxLagMinutes: 60}}}}\n  \
         - {{name: h, servers: [c], replication: {{encrypted: false}}}}\n"
    ));
    let a = &app.server("a").unwrap().replication;
    assert_eq!(a.frequency, Frequency::Hours(6));
    assert_eq!(a.keep_recent_amis, 4);
    assert_eq!(a.license_type, LicenseType::Aws);
    assert!(
        a.encrypted,
        "encrypted from defaults makes the server's kmsKeyId valid"
    );
    assert_eq!(a.kms_key_id.as_deref(), Some("alias/k"));
    assert_eq!(a.max_lag_minutes, 30, "the server's own wins");
    let b = &app.server("b").unwrap().replication;
    assert_eq!(b.frequency, Frequency::Once);
    assert_eq!(b.max_lag_minutes, 60, "from its group");
    let c = &app.server("c").unwrap().replication;
    assert_eq!(c.keep_recent_amis, 0, "keeps every AMI by default");
    assert_eq!(c.max_lag_minutes, 180, "180 minutes by default");
    assert_eq!(c.license_type, LicenseType::Auto);
    assert!(!c.encrypted);
}

/// Issue 8 item 1: a disk's format is declared or named by its extension (a `/dev/` source is
/// raw); anything else, or a declaration that contradicts the extension, is an error at the disk.
#[test]
fn disk_format_is_declared_or_named_by_the_extension_never_guessed() {
    let text = |disks: &str| {
        format!(
            "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  - id: a\n    os: linux\n    disks:\n{disks}\
             groups:\n  - {{name: g, servers: [a]}}\n"
        )
    };
    let app = valid(&text(
        "      - {source: /dev/vdb}\n      - {source: b.QCOW2}\n      - {source: c.img, format: vhdx}\n      \
         - {source: exported-disk, format: vmdk}\n      - {source: /dev/sdc, format: raw}\n      - {source: e.vhd, format: vhd}\n",
    ));
    let formats: Vec<DiskFormat> = app.servers[0].disks.iter().map(|d| d.format).collect();
    assert_eq!(
        formats,
        [
            DiskFormat::Raw,
            DiskFormat::Qcow2,
            DiskFormat::Vhdx,
            DiskFormat::Vmdk,
            DiskFormat::Raw,
            DiskFormat::Vhd
        ]
    );

    let (app, problems) = resolve_with(
        &text(
            "      - {source: disk0}\n      - {source: disk1.bin}\n      - {source: d.vmdk, format: qcow2}\n      \
             - {source: /dev/sdb, format: qcow2}\n      - {source: e.raw, format: raw}\n",
        ),
        &[],
    );
    assert!(app.is_none());
    assert_eq!(
        problems,
        [
            "10:18 the extension of `disk0` does not say its format: add `format:` (raw, qcow2, vmdk, vhd, vhdx) \
             to the disk; rehost never guesses a format from an image's contents",
            "11:18 the extension of `disk1.bin` does not say its format: add `format:` (raw, qcow2, vmdk, vhd, vhdx) \
             to the disk; rehost never guesses a format from an image's contents",
            "12:34 `format: qcow2` contradicts the extension of `d.vmdk`, which names a vmdk image; fix one of them",
            "13:36 `/dev/sdb` is a block device, read raw: `format: qcow2` cannot apply to it",
        ]
    );
}

#[test]
fn launch_order_depends_on_every_group_of_the_largest_order_below() {
    let app = valid(&format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{}groups:\n  \
         - {{name: dc, servers: [s0], launchOrder: 1}}\n  - {{name: db, servers: [s1], launchOrder: 2}}\n  \
         - {{name: cache, servers: [s2], launchOrder: 2}}\n  - {{name: web, servers: [s3], launchOrder: 5}}\n  \
         - {{name: batch, servers: [s4], dependsOn: [dc]}}\n",
        (0..5)
            .map(|i| format!("  - {{id: s{i}, os: linux, disks: [{{source: s{i}.img}}]}}\n"))
            .collect::<String>()
    ));
    let deps: Vec<&[usize]> = app.groups.iter().map(|g| g.depends_on.as_slice()).collect();
    assert_eq!(deps, [&[][..], &[0], &[0], &[1, 2], &[0]]);
}

#[test]
fn references_are_checked_without_repeating_errors_about_unreadable_entries() {
    let (app, problems) = resolve_with(
        &format!(
            "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  - {{id: a, os: linux, disks: [{{source: a.img}}]}}\n  \
             - {{id: b, os: bsd, disks: [{{source: b.img}}]}}\n  - {{id: c, os: linux, disks: [{{source: c.img}}]}}\n\
             groups:\n  - {{name: g, servers: [a, b, x], dependsOn: [h, zz]}}\n  - {{name: h, servers: [a]}}\n"
        ),
        &[],
    );
    assert!(app.is_none());
    assert_eq!(
        problems,
        [
            "8:17 `bsd` is not one of windows, linux",
            "9:10 server `c` is in no group; list it in one group's `servers`",
            "11:31 group `g` lists unknown server `x` (did you mean `a`?)",
            "11:50 group `g` depends on unknown group `zz`",
            "12:25 server `a` is already in group `g` (line 11); a server belongs to exactly one group",
        ],
        "no second error about `b`: its own entry is the problem, reported while decoding"
    );
}

#[test]
fn declared_scripts_are_collected_once_from_every_block() {
    let root = crate::yaml::parse(
        format!(
            "{HEAD}defaults:\n  launch: {{configureScript: setup.sh}}\nservers:\n  \
             - {{id: a, os: linux, disks: [{{source: a.img}}], launch: {{configureScript: /opt/a.sh}}}}\n  \
             - {{id: b, os: linux, disks: [{{source: b.img}}], launch: {{configureScript: setup.sh}}}}\n\
             groups:\n  - {{name: g, servers: [a, b], launch: {{configureScript: ../scripts/g.sh}}}}\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let model = crate::decode::application(&root, &mut Diagnostics::default()).unwrap();
    let paths: Vec<PathBuf> = declared_scripts(&model, Path::new("apps"))
        .into_iter()
        .collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("/opt/a.sh"),
            PathBuf::from("apps/../scripts/g.sh"),
            PathBuf::from("apps/setup.sh"),
        ]
    );
}

fn one_script(script: &str, os: &str, extra: &str) -> String {
    format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  - {{id: a, os: {os}, disks: [{{source: a.img}}]}}\n\
         groups:\n  - name: g\n    servers: [a]\n    launch: {{configureScript: {script}{extra}}}\n"
    )
}

#[test]
fn a_script_is_embedded_as_read() {
    let (app, problems) = resolve_with(
        &one_script("setup.sh", "linux", ""),
        &[("setup.sh", Ok(b"echo hi\n"))],
    );
    assert_eq!(problems, Vec::<String>::new());
    let script = app.unwrap().servers[0]
        .cutover
        .configure_script
        .clone()
        .unwrap();
    assert_eq!(&*script.content, "echo hi\n");
    assert_eq!(script.kind, ScriptType::Shell);
    assert_eq!(script.path, Path::new("apps/setup.sh"));
    assert_eq!(script.declared, "setup.sh");
}

#[test]
fn scripts_that_cannot_be_used_are_reported_at_their_declaration() {
    type Case<'a> = (&'a str, Result<&'a [u8], ScriptReadError>, &'a str);
    let cases: [Case; 6] = [
        (
            "gone.sh",
            Err(ScriptReadError::NotFound),
            "configure script `apps/gone.sh` does not exist",
        ),
        (
            "dir.sh",
            Err(ScriptReadError::NotAFile("a directory")),
            "configure script `apps/dir.sh` is a directory, not a regular file",
        ),
        (
            "huge.sh",
            Err(ScriptReadError::TooLarge(Some(5_000_000))),
            "configure script `apps/huge.sh` is 5000000 bytes; EC2 user data holds at most 16384 bytes",
        ),
        (
            "locked.sh",
            Err(ScriptReadError::Io(
                "Permission denied (os error 13)".into(),
            )),
            "configure script `apps/locked.sh` cannot be read: Permission denied (os error 13)",
        ),
        (
            "bin.sh",
            Ok(&[0xff, 0xfe, 0x00]),
            "configure script `apps/bin.sh` is not UTF-8 text",
        ),
        (
            "nul.sh",
            Ok(b"echo\0hi"),
            "configure script `apps/nul.sh` contains NUL bytes; it must be text",
        ),
    ];
    for (name, read, message) in cases {
        let (app, problems) = resolve_with(&one_script(name, "linux", ""), &[(name, read)]);
        assert!(app.is_none(), "{name}");
        assert_eq!(problems, [format!("11:31 {message}")], "{name}");
    }
}

#[test]
fn a_script_must_suit_the_server_and_fit_user_data() {
    let (_, problems) = resolve_with(
        &one_script(
            "setup.ps1",
            "linux",
            ", configureScriptType: POWERSHELL_SCRIPT",
        ),
        &[("setup.ps1", Ok(b"Write-Output hi"))],
    );
    assert_eq!(
        problems,
        ["11:63 server `a` runs linux: a POWERSHELL_SCRIPT cannot run there; use SHELL_SCRIPT"]
    );
    let (_, problems) = resolve_with(
        &one_script("setup.sh", "windows", ""),
        &[("setup.sh", Ok(b"echo hi"))],
    );
    assert_eq!(
        problems,
        [
            "11:31 `setup.sh` looks like a SHELL_SCRIPT but runs as POWERSHELL_SCRIPT on server `a`; \
          set configureScriptType or fix the file"
        ]
    );
    let big = vec![b'x'; crate::limits::SCRIPT_BUDGET];
    let (_, problems) = resolve_with(&one_script("big.sh", "linux", ""), &[("big.sh", Ok(&big))]);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("11:31 configure script `big.sh` is ")
            && problems[0].contains("once wrapped for server `a`"),
        "{problems:?}"
    );
}

#[test]
fn values_out_of_range_are_errors_and_never_reach_the_app() {
    let (app, problems) = resolve_with(
        &format!(
            "{HEAD}tags: {{rehost:x: y}}\ndefaults:\n  launch: {{instanceType: m5.large, signalTimeoutMinutes: 721}}\n  \
             replication: {{keepRecentAmis: 271, frequencyHours: 0, maxLagMinutes: 0}}\nservers:\n  - {{id: a, os: linux, disks: [{{source: a.img}}]}}\n\
             groups:\n  - {{name: g, servers: [a]}}\n"
        ),
        &[],
    );
    assert!(app.is_none());
    assert_eq!(
        problems,
        [
            "4:8 tag key `rehost:x` is set by rehost on every resource; choose another key",
            "6:58 signalTimeoutMinutes must be between 1 and 720, not 721",
            "7:33 keepRecentAmis must be 0 (keep all) or 1 to 270, not 271",
            "7:54 frequencyHours must be between 1 and 24, not 0",
            "7:72 maxLagMinutes must be between 1 and 10080, not 0",
        ]
    );
}

#[test]
fn hooks_run_one_way_with_unique_names_and_timeouts_in_range() {
    let servers = "servers:\n  - {id: a, os: linux, disks: [{source: a.img}]}\ngroups:\n  - {name: g, servers: [a]}\n";
    let app = valid(&format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\n{servers}hooks:\n  preCutover:\n    \
         - {{name: stop, command: [./stop.sh, --all], timeoutSeconds: 30}}\n    - {{name: wait, shell: 'sleep 1 && true'}}\n"
    ));
    use crate::app::HookRun;
    assert_eq!(app.hooks.pre_cutover.len(), 2);
    assert_eq!(
        app.hooks.pre_cutover[0].run,
        HookRun::Command(vec!["./stop.sh".into(), "--all".into()])
    );
    assert_eq!(app.hooks.pre_cutover[0].timeout.as_secs(), 30);
    assert_eq!(
        app.hooks.pre_cutover[1].run,
        HookRun::Shell("sleep 1 && true".into())
    );
    assert_eq!(app.hooks.pre_cutover[1].timeout.as_secs(), 600, "default");
    assert!(app.hooks.post_rollback.is_empty());

    let (app, problems) = resolve_with(
        &format!(
            "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\n{servers}hooks:\n  postRollback:\n    \
             - {{name: a, command: [x], shell: y}}\n    - {{name: a}}\n    - {{name: B_, command: []}}\n    \
             - {{name: c, command: [x], timeoutSeconds: 0}}\n"
        ),
        &[],
    );
    assert!(app.is_none());
    assert_eq!(
        problems,
        [
            "12:17 hook `a`: set either command (no shell) or shell, not both",
            "13:14 hook `a` is already defined in postRollback at line 12",
            "13:14 hook `a`: needs `command: [PROGRAM, ARG...]` or `shell: TEXT`",
            "14:14 hook name `B_` must be 1 to 63 lowercase letters, digits or hyphens, starting with a letter or digit",
            "14:18 hook `B_`: command needs a program",
            "15:47 timeoutSeconds must be between 1 and 86400, not 0",
        ]
    );
}
