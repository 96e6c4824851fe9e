//! `rehost validate` on bad application files: each case asserts exit code 2, the FILE:LINE:COL
//! of the offending node and the key words of the message.
//!
//! In each case text, `⟦` marks where the reported problem must point; the marker is removed
//! before the file is written, so positions are never counted by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MARK: char = '⟦';

fn rehost(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("rehost runs")
}

fn tempdir(name: &str) -> PathBuf {
    rehost_testkit::scratch_dir("validate", name)
}

/// The position of the marker (1-based line and column, in characters) and the text without it.
fn locate(marked: &str) -> (String, Option<(usize, usize)>) {
    let mut pos = None;
    let mut text = String::new();
    let (mut line, mut col) = (1, 1);
    for c in marked.chars() {
        if c == MARK {
            pos = Some((line, col));
            continue;
        }
        text.push(c);
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (text, pos)
}

struct Case {
    name: &'static str,
    text: String,
    keywords: &'static [&'static str],
    files: Vec<(&'static str, String)>,
}

fn case(name: &'static str, text: &str, keywords: &'static [&'static str]) -> Case {
    Case {
        name,
        text: text.to_string(),
        keywords,
        files: Vec::new(),
    }
}

const BASE_HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

/// A valid application with hooks: `{launch}` lands in defaults.launch, `{servers}` and
/// `{groups}` replace the lists.
fn app(defaults: &str, servers: &str, groups: &str) -> String {
    format!(
        "{BASE_HEAD}defaults:\n  launch:\n    instanceType: m5.large\n{defaults}servers:\n{servers}groups:\n{groups}"
    )
}

const WEB01: &str = "  - id: web01\n    os: linux\n    disks:\n      - source: web01.img\n";
const WEB_GROUP: &str = "  - name: web\n    servers: [web01]\n";

fn cases() -> Vec<Case> {
    let mut v = vec![
        case(
            "unknown top-level field with suggestion",
            &format!("{BASE_HEAD}⟦servres:\n{WEB01}groups:\n{WEB_GROUP}"),
            &["unknown field `servres`", "did you mean `servers`"],
        ),
        case(
            "unknown server field",
            &app(
                "",
                "  - id: web01\n    os: linux\n    ⟦diks:\n      - source: a.img\n",
                WEB_GROUP,
            ),
            &["unknown field `diks`", "did you mean `disks`"],
        ),
        case(
            "wrong apiVersion",
            &format!(
                "apiVersion: ⟦rehost/v2\nkind: Application\nname: shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
            ),
            &["apiVersion", "rehost/v1"],
        ),
        case(
            "wrong kind",
            &format!(
                "apiVersion: rehost/v1\nkind: ⟦App\nname: shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
            ),
            &["kind", "Application"],
        ),
        case(
            "bad application name",
            &format!(
                "apiVersion: rehost/v1\nkind: Application\nname: ⟦Shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
            ),
            &["application name", "lowercase"],
        ),
        case(
            "bad server id",
            &app(
                "",
                "  - id: ⟦Web_01\n    os: linux\n    disks: [{source: a.img}]\n",
                "  - name: web\n    servers: [Web_01]\n",
            ),
            &["server id", "lowercase"],
        ),
        case(
            "duplicate server id",
            &app(
                "",
                &format!("{WEB01}  - id: ⟦web01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
                WEB_GROUP,
            ),
            &["duplicate server id `web01`", "line 8"],
        ),
        case(
            "duplicate group name",
            &app(
                "",
                &format!("{WEB01}  - id: web02\n    os: linux\n    disks: [{{source: b.img}}]\n"),
                "  - name: web\n    servers: [web01]\n  - name: ⟦web\n    servers: [web02]\n",
            ),
            &["duplicate group name `web`"],
        ),
        case(
            "group lists unknown server",
            &app("", WEB01, "  - name: web\n    servers: [⟦web1]\n"),
            &["unknown server `web1`", "did you mean `web01`"],
        ),
        case(
            "dependsOn unknown group",
            &app(
                "",
                &format!("{WEB01}  - id: db01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
                "  - name: database\n    servers: [db01]\n  - name: web\n    dependsOn: [⟦databse]\n    servers: [web01]\n",
            ),
            &["unknown group `databse`", "did you mean `database`"],
        ),
        case(
            "dependency cycle is named",
            &app(
                "",
                &format!("{WEB01}  - id: app01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
                "  - name: app\n    ⟦dependsOn: [web]\n    servers: [app01]\n  - name: web\n    dependsOn: [app]\n    servers: [web01]\n",
            ),
            &["dependency cycle", "app -> web -> app"],
        ),
        case(
            "group depends on itself",
            &app(
                "",
                WEB01,
                "  - name: web\n    dependsOn: [⟦web]\n    servers: [web01]\n",
            ),
            &["dependency cycle", "web -> web"],
        ),
        case(
            "server in no group",
            &app(
                "",
                &format!("{WEB01}  - id: ⟦orphan\n    os: linux\n    disks: [{{source: b.img}}]\n"),
                WEB_GROUP,
            ),
            &["server `orphan` is in no group"],
        ),
        case(
            "server in two groups",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n  - name: web2\n    servers: [⟦web01]\n",
            ),
            &["already in group `web`", "exactly one group"],
        ),
        case(
            "frequencyHours above range",
            &format!(
                "{BASE_HEAD}defaults:\n  replication:\n    frequencyHours: ⟦25\n  launch:\n    instanceType: m5.large\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
            ),
            &["frequencyHours", "between 1 and 24", "25"],
        ),
        case(
            "frequencyHours zero",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {frequencyHours: ⟦0}\n",
                WEB_GROUP,
            ),
            &["frequencyHours", "between 1 and 24"],
        ),
        case(
            "frequencyHours with runOnce",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {frequencyHours: ⟦6, runOnce: true}\n",
                WEB_GROUP,
            ),
            &["either frequencyHours or runOnce"],
        ),
        case(
            "keepRecentAmis above range",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {keepRecentAmis: ⟦300}\n",
                WEB_GROUP,
            ),
            &["keepRecentAmis", "1 to 270"],
        ),
        case(
            "keepRecentAmis negative",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    replication:\n      keepRecentAmis: ⟦-1\n",
            ),
            &["keepRecentAmis", "0 (keep all)"],
        ),
        case(
            "signalTimeoutMinutes zero",
            &app("    signalTimeoutMinutes: ⟦0\n", WEB01, WEB_GROUP),
            &["signalTimeoutMinutes", "between 1 and 720"],
        ),
        case(
            "signalTimeoutMinutes above range",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch: {signalTimeoutMinutes: ⟦721}\n",
            ),
            &["signalTimeoutMinutes", "720", "721"],
        ),
        case(
            "kmsKeyId without encrypted",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {kmsKeyId: ⟦alias/migration}\n",
                WEB_GROUP,
            ),
            &["kmsKeyId", "encrypted"],
        ),
        case(
            "malformed kms key",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {encrypted: true, kmsKeyId: ⟦migration-key}\n",
                WEB_GROUP,
            ),
            &["not a KMS key reference"],
        ),
        case(
            "malformed subnet id",
            &app("    subnet: ⟦subnet-12345\n", WEB01, WEB_GROUP),
            &["subnet", "8 or 17"],
        ),
        case(
            "malformed security group id",
            &app(
                "    securityGroups: [sg-0a1b2c3d, ⟦sg-XYZ]\n",
                WEB01,
                WEB_GROUP,
            ),
            &["`sg-XYZ`", "sg id"],
        ),
        case(
            "malformed vpc id",
            &app("    vpc: ⟦vpc-0a1b2c3d4e5f6071\n", WEB01, WEB_GROUP),
            &["vpc id", "8 or 17"],
        ),
        case(
            "instance type syntax",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {instanceType: ⟦m5large}\n",
                WEB_GROUP,
            ),
            &["`m5large`", "instance type"],
        ),
        case(
            "private ip syntax",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: ⟦10.0.1}\n",
                WEB_GROUP,
            ),
            &["`10.0.1`", "IPv4"],
        ),
        case(
            "public address as private ip",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: ⟦8.8.8.8}\n",
                WEB_GROUP,
            ),
            &["not a private IPv4 address"],
        ),
        case(
            "privateIpAddress on a group",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch: {privateIpAddress: ⟦10.0.0.5}\n",
            ),
            &["privateIpAddress can only be set on a server"],
        ),
        case(
            "duplicate private ip",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: 10.0.0.5}\n  - id: web02\n    os: linux\n    disks: [{source: b.img}]\n    launch: {privateIpAddress: ⟦10.0.0.5}\n",
                "  - name: web\n    servers: [web01, web02]\n",
            ),
            &["private IP 10.0.0.5", "web01"],
        ),
        case(
            "invalid logical id",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: ⟦Web-01}\n",
                WEB_GROUP,
            ),
            &["`Web-01`", "logical id"],
        ),
        case(
            "duplicate logical id",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: Front}\n  - id: web02\n    os: linux\n    disks: [{source: b.img}]\n    launch: {logicalId: ⟦Front}\n",
                "  - name: web\n    servers: [web01, web02]\n",
            ),
            &["logical id `Front`", "collides", "web01"],
        ),
        case(
            "derived logical ids collide",
            &app(
                "",
                "  - id: sql01\n    os: linux\n    disks: [{source: a.img}]\n  - id: ⟦sql-01\n    os: linux\n    disks: [{source: b.img}]\n",
                "  - name: db\n    servers: [sql01, sql-01]\n",
            ),
            &["logical id `Sql01`", "collides", "logicalId"],
        ),
        case(
            "logical id collides with a group gate",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: ⟦WebGate}\n",
                WEB_GROUP,
            ),
            &["logical id `WebGate`", "group `web`"],
        ),
        case(
            "configure script missing",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦scripts/missing.sh}\n",
            ),
            &["configure script", "missing.sh", "does not exist"],
        ),
        case(
            "powershell script on linux",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch:\n      configureScript: setup.sh\n      configureScriptType: ⟦POWERSHELL_SCRIPT\n",
            ),
            &["runs linux", "POWERSHELL_SCRIPT", "SHELL_SCRIPT"],
        ),
        case(
            "shell script for windows by extension",
            &app(
                "",
                "  - id: web01\n    os: windows\n    disks: [{source: a.img}]\n",
                "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦setup.sh}\n",
            ),
            &["looks like a SHELL_SCRIPT", "POWERSHELL_SCRIPT"],
        ),
        case(
            "configure script too large for user data",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦big.sh}\n",
            ),
            &["big.sh", "once wrapped", "16384"],
        ),
        case(
            "duplicate yaml key",
            &format!("{BASE_HEAD}⟦name: shop2\nservers:\n{WEB01}groups:\n{WEB_GROUP}"),
            &["duplicate key `name`"],
        ),
        case(
            "quoted integer",
            &app("    signalTimeoutMinutes: ⟦\"30\"\n", WEB01, WEB_GROUP),
            &["expected an integer", "found a string"],
        ),
        case(
            "servers not a list",
            &format!("{BASE_HEAD}⟦servers: {{id: web01}}\ngroups:\n{WEB_GROUP}"),
            &["expected a list", "mapping"],
        ),
        case(
            "yes is not a boolean",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {encrypted: ⟦yes}\n",
                WEB_GROUP,
            ),
            &["expected true or false", "YAML 1.2"],
        ),
        case(
            "enum in wrong case",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {licenseType: ⟦auto}\n",
                WEB_GROUP,
            ),
            &["`auto` is not one of", "did you mean `AUTO`"],
        ),
        case(
            "seedTime not RFC 3339",
            &app(
                "",
                "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {seedTime: ⟦tomorrow}\n",
                WEB_GROUP,
            ),
            &["RFC 3339"],
        ),
        case(
            "aws: tag prefix",
            &format!(
                "{BASE_HEAD}tags:\n  ⟦aws:owner: me\ndefaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
            ),
            &["aws:", "reserved"],
        ),
        case("empty file", "⟦", &["empty"]),
        case("comment-only file", "⟦# nothing here\n", &["empty"]),
        case(
            "yaml syntax error",
            "apiVersion: rehost/v1\nservers: [a, b\n⟦",
            &["YAML syntax error"],
        ),
        case(
            "missing required os",
            &app(
                "",
                "  - ⟦id: web01\n    disks: [{source: a.img}]\n",
                WEB_GROUP,
            ),
            &["missing required field `os`"],
        ),
        case(
            "empty disk list",
            &app(
                "",
                "  - id: web01\n    os: linux\n    ⟦disks: []\n",
                WEB_GROUP,
            ),
            &["at least one disk"],
        ),
        case(
            "group without servers",
            &app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n  - name: empty\n    ⟦servers: []\n",
            ),
            &["group `empty` has no servers"],
        ),
        case(
            "unknown field in test block",
            &app(
                "    test:\n      ⟦subnets: [subnet-0a1b2c3d]\n",
                WEB01,
                WEB_GROUP,
            ),
            &["unknown field `subnets`", "did you mean `subnet`"],
        ),
        case(
            "no instance type anywhere",
            &format!(
                "{BASE_HEAD}servers:\n  - id: ⟦web01\n    os: linux\n    disks: [{{source: a.img}}]\ngroups:\n{WEB_GROUP}"
            ),
            &["no instance type", "launch.instanceType"],
        ),
        case(
            "yaml merge key",
            &app(
                "",
                "  - id: web01\n    os: linux\n    ⟦<<: {disks: [{source: a.img}]}\n    disks: [{source: a.img}]\n",
                WEB_GROUP,
            ),
            &["merge keys", "not supported"],
        ),
        case(
            "os misspelled",
            &app(
                "",
                "  - id: web01\n    os: ⟦linx\n    disks: [{source: a.img}]\n",
                WEB_GROUP,
            ),
            &["`linx` is not one of", "did you mean `linux`"],
        ),
        case(
            "security group listed twice",
            &app(
                "    securityGroups: [sg-0a1b2c3d, ⟦sg-0a1b2c3d]\n",
                WEB01,
                WEB_GROUP,
            ),
            &["listed twice"],
        ),
        case(
            "key pair name with control characters",
            &app("    keyName: ⟦\"bad\\tkey\"\n", WEB01, WEB_GROUP),
            &["key pair name"],
        ),
        case(
            "instance profile given as ARN",
            &app(
                "    iamInstanceProfile: ⟦arn:aws:iam::111122223333:instance-profile/ssm\n",
                WEB01,
                WEB_GROUP,
            ),
            &["name, not its ARN"],
        ),
    ];
    for c in &mut v {
        match c.name {
            "powershell script on linux" => c.files.push(("setup.sh", "echo hi\n".into())),
            "shell script for windows by extension" => {
                c.files.push(("setup.sh", "echo hi\n".into()))
            }
            "configure script too large for user data" => c.files.push((
                "big.sh",
                "echo 'padding the script beyond what user data holds'\n".repeat(400),
            )),
            _ => {}
        }
    }
    v.push(too_many_tags());
    v.push(too_many_resources());
    v
}

fn too_many_tags() -> Case {
    let mut text = format!("{BASE_HEAD}⟦tags:\n");
    for i in 0..46 {
        text.push_str(&format!("  k{i}: v\n"));
    }
    text.push_str(&format!(
        "defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
    ));
    case("too many tags", &text, &["46 tags", "at most 45"])
}

/// 300 servers in 150 groups need 600 resources.
fn too_many_resources() -> Case {
    let mut servers = String::new();
    let mut groups = String::new();
    for g in 0..150 {
        groups.push_str(&format!("  - name: g{g}\n    servers: [s{g}a, s{g}b]\n"));
        for s in ["a", "b"] {
            servers.push_str(&format!(
                "  - {{id: s{g}{s}, os: linux, disks: [{{source: x.img}}]}}\n"
            ));
        }
    }
    let text = format!(
        "{BASE_HEAD}defaults:\n  launch: {{instanceType: m5.large}}\n⟦servers:\n{servers}groups:\n{groups}"
    );
    case("too many resources", &text, &["600 resources", "500"])
}

#[test]
fn bad_application_files_are_reported_at_their_node() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the suite must keep at least 40 bad files, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let dir = tempdir(&format!("case{i}"));
        let (text, pos) = locate(&c.text);
        let (line, col) = pos.unwrap_or_else(|| panic!("case `{}` has no {MARK} marker", c.name));
        std::fs::write(dir.join("app.yaml"), &text).unwrap();
        for (name, content) in &c.files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let out = rehost(&["validate", "app.yaml"], &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("app.yaml:{line}:{col}: error: ");
        let hit = stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && c.keywords.iter().all(|k| l.contains(k)));
        if out.status.code() != Some(2) || !hit {
            failures.push(format!(
                "case `{}`: exit {:?}, wanted a line starting `{prefix}` with {:?}\nstderr:\n{stderr}",
                c.name,
                out.status.code(),
                c.keywords
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let dir = tempdir("many");
    let text = app(
        "    subnet: subnet-bad\n",
        "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {frequencyHours: 99}\n    launch: {privateIpAddress: 1.2.3.4}\n",
        "  - name: web\n    servers: [web01, web9]\n    dependsOn: [nothing]\n",
    );
    std::fs::write(dir.join("app.yaml"), text).unwrap();
    let out = rehost(&["validate", "app.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 5, "{stderr}");
    let lines: Vec<usize> = errors
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "problems come in file order: {stderr}");
    assert!(
        stderr.contains("app.yaml is invalid: 5 problems"),
        "{stderr}"
    );
}

#[test]
fn examples_are_valid() {
    let root = rehost_testkit::workspace_root();
    let out = rehost(
        &[
            "validate",
            "apps/sharepoint-farm.yaml",
            "apps/ecommerce-3tier.yaml",
        ],
        &root,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sharepoint-farm, 6 servers in 4 groups, 4 launch waves"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ecommerce-3tier, 5 servers in 3 groups, 3 launch waves"),
        "{stdout}"
    );
}

#[test]
fn one_invalid_file_among_several_fails_with_2_and_reports_the_others() {
    let dir = tempdir("several");
    std::fs::write(dir.join("good.yaml"), app("", WEB01, WEB_GROUP)).unwrap();
    std::fs::write(dir.join("bad.yaml"), "not: [an, application").unwrap();
    let out = rehost(&["validate", "good.yaml", "bad.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("good.yaml: ok"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 files invalid"));
}

#[test]
fn missing_file_is_invalid_input_and_usage_errors_exit_2() {
    let dir = tempdir("missing");
    let out = rehost(&["validate", "nope.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml: no such file"));
    let out = rehost(&["render"], &dir);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn non_yaml_bytes_do_not_panic() {
    let dir = tempdir("binary");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("app.yaml"), bytes).unwrap();
    let out = rehost(&["validate", "app.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("app.yaml:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn json_application_files_are_accepted() {
    let dir = tempdir("json");
    let json = r#"{"apiVersion": "rehost/v1", "kind": "Application", "name": "shop",
  "defaults": {"launch": {"instanceType": "m5.large"}},
  "servers": [{"id": "web01", "os": "linux", "disks": [{"source": "a.img"}]}],
  "groups": [{"name": "web", "servers": ["web01"], "launch": {"signalTimeoutMinutes": 0}}]}"#;
    std::fs::write(dir.join("app.json"), json).unwrap();
    let out = rehost(&["validate", "app.json"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app.json:4:") && stderr.contains("signalTimeoutMinutes"),
        "{stderr}"
    );
}

/// A server id with a space and a configure script once reached the user-data wrapper's debug
/// assertion (exit 101). Invalid ids are diagnostics: exit 2, the id's error at its position.
/// Tests run the debug build, so a debug-only assertion would show here.
#[test]
fn server_id_with_a_space_and_a_configure_script_is_a_diagnostic_not_a_panic() {
    let dir = tempdir("web-space-01");
    std::fs::write(dir.join("setup.sh"), "echo hi\n").unwrap();
    let (text, pos) = locate(&app(
        "    configureScript: setup.sh\n",
        "  - id: ⟦Web 01\n    os: linux\n    disks: [{source: a.img}]\n",
        "  - name: web\n    servers: [Web 01]\n",
    ));
    let (line, col) = pos.unwrap();
    std::fs::write(dir.join("app.yaml"), text).unwrap();
    let out = rehost(&["validate", "app.yaml"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.lines().any(
            |l| l.starts_with(&format!("app.yaml:{line}:{col}: error: "))
                && l.contains("server id")
        ),
        "{stderr}"
    );
}

/// User text in a diagnostic (here a quoted key) once reached the terminal raw: an OSC 52
/// sequence could write the clipboard, `\r` overwrite the line. Both are escaped, as are the
/// same characters in an error's cause chain (here a file name that fails to load).
#[test]
fn control_characters_in_diagnostics_are_escaped() {
    let dir = tempdir("controls");
    let text = app(
        "",
        "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    \"x\\e]52;c;ZXZpbA==\\a\\rok\\u202e\": 1\n",
        WEB_GROUP,
    );
    std::fs::write(dir.join("app.yaml"), text).unwrap();
    let out = rehost(&["validate", "app.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("x\\u{1b}]52;c;ZXZpbA==\\u{7}\\rok\\u{202e}"),
        "{stderr}"
    );
    let out = rehost(&["render", "missing\u{1b}]52;c;eA==\u{7}.yaml"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains(['\u{1b}', '\u{7}']), "{stderr:?}");
    assert!(stderr.contains("missing\\u{1b}]52"), "{stderr}");
}

/// A 1 MB file of nested aliases of a 1 MB string once expanded to gigabytes (3.97 GB RSS, then
/// an abort). It is refused at the alias that crosses the tree budget, with the process held to
/// 256 MiB of address space, so an expansion cannot go unnoticed.
#[test]
fn alias_bomb_of_a_large_string_is_refused_in_bounded_memory() {
    let dir = tempdir("alias-bomb");
    let mut text = format!("s: &s \"{}\"\n", "x".repeat(1_000_000));
    let mut previous = "s".to_string();
    for name in ["a", "b", "c", "d", "e", "f"] {
        let aliases = vec![format!("*{previous}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        previous = name.to_string();
    }
    std::fs::write(dir.join("bomb.yaml"), &text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    cmd.args(["validate", "bomb.yaml"]).current_dir(&dir);
    rehost_testkit::limit_address_space(&mut cmd, 256 << 20);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // 10 copies of the string fit the budget, the copies of those do not: line 3 (`b`).
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("bomb.yaml:3:") && l.contains("expands to more than")),
        "{stderr}"
    );
}
