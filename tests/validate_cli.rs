//! `rehost validate` on bad application files: each case asserts exit code 2, the FILE:LINE:COL
//! of the offending node and the key words of the message.
//!
//! In each case text, `⟦` marks where the reported problem must point; the marker is removed
//! before the file is written, so positions are never counted by hand.
//!
//! Why one file of ~1,100 lines: it is a flat list of ~90 independent cases, each a few lines of
//! application text and one assertion, sharing the `app_text` fixtures; a newcomer looking for
//! how a field is validated greps this file for the field. Nothing here is logic to hold in mind.

use std::path::PathBuf;

use rehost_testkit::Rehost;

mod app_text;
use app_text::{BASE_HEAD, MARK, WEB_GROUP, WEB01, app, locate};

/// The binary under test, from the test kit's one command builder.
fn rehost() -> Rehost {
    Rehost::new(env!("CARGO_BIN_EXE_rehost"))
}

fn tempdir(name: &str) -> PathBuf {
    rehost_testkit::scratch_dir("validate", name)
}

struct Case {
    text: String,
    keywords: &'static [&'static str],
    files: Vec<(&'static str, String)>,
}

fn case(text: &str, keywords: &'static [&'static str]) -> Case {
    Case {
        text: text.to_string(),
        keywords,
        files: Vec::new(),
    }
}

impl Case {
    /// A file the application refers to, written beside it.
    fn with_file(mut self, name: &'static str, content: &str) -> Case {
        self.files.push((name, content.to_string()));
        self
    }
}

/// Writes the case's file (and any files it needs), validates it, and expects exit code 2 and a
/// line at the marker's FILE:LINE:COL holding every keyword.
fn check(name: &str, c: Case) {
    let dir = tempdir(name);
    let (text, pos) = locate(&c.text);
    let (line, col) = pos.unwrap_or_else(|| panic!("case `{name}` has no {MARK} marker"));
    std::fs::write(dir.join("app.yaml"), &text).unwrap();
    for (file, content) in &c.files {
        std::fs::write(dir.join(file), content).unwrap();
    }
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("app.yaml:{line}:{col}: error: ");
    let hit = stderr
        .lines()
        .any(|l| l.starts_with(&prefix) && c.keywords.iter().all(|k| l.contains(k)));
    assert!(
        out.status.code() == Some(2) && hit,
        "case `{name}`: exit {:?}, wanted a line starting `{prefix}` with {:?}\nstderr:\n{stderr}",
        out.status.code(),
        c.keywords
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One test per bad file, named after it, plus a check that the suite keeps at least 40.
macro_rules! bad_files {
    ($($case:ident),+ $(,)?) => {
        mod bad_file {
            $(
                #[test]
                fn $case() {
                    super::check(stringify!($case), super::$case());
                }
            )+

            #[test]
            fn the_suite_keeps_at_least_40_bad_files() {
                let cases = [$(stringify!($case)),+];
                assert!(
                    cases.len() >= 40,
                    "the suite must keep at least 40 bad files, has {}",
                    cases.len()
                );
            }
        }
    };
}

bad_files!(
    unknown_top_level_field_with_suggestion,
    unknown_server_field,
    wrong_api_version,
    wrong_kind,
    bad_application_name,
    bad_server_id,
    duplicate_server_id,
    duplicate_group_name,
    group_lists_unknown_server,
    depends_on_unknown_group,
    dependency_cycle_is_named,
    group_depends_on_itself,
    server_in_no_group,
    server_in_two_groups,
    frequencyhours_above_range,
    frequencyhours_zero,
    frequencyhours_with_runonce,
    keeprecentamis_above_range,
    keeprecentamis_negative,
    signaltimeoutminutes_zero,
    signaltimeoutminutes_above_range,
    kmskeyid_without_encrypted,
    malformed_kms_key,
    malformed_subnet_id,
    malformed_security_group_id,
    malformed_vpc_id,
    instance_type_syntax,
    private_ip_syntax,
    public_address_as_private_ip,
    privateipaddress_on_a_group,
    duplicate_private_ip,
    invalid_logical_id,
    duplicate_logical_id,
    derived_logical_ids_collide,
    logical_id_collides_with_a_group_gate,
    configure_script_missing,
    powershell_script_on_linux,
    shell_script_for_windows_by_extension,
    configure_script_too_large_for_user_data,
    duplicate_yaml_key,
    quoted_integer,
    servers_not_a_list,
    yes_is_not_a_boolean,
    enum_in_wrong_case,
    seedtime_not_rfc_3339,
    aws_tag_prefix,
    empty_file,
    comment_only_file,
    yaml_syntax_error,
    missing_required_os,
    empty_disk_list,
    group_without_servers,
    unknown_field_in_test_block,
    no_instance_type_anywhere,
    yaml_merge_key,
    os_misspelled,
    security_group_listed_twice,
    key_pair_name_with_control_characters,
    instance_profile_given_as_arn,
    too_many_tags,
    too_many_parameters_for_the_parent_stack,
    disk_without_extension_or_format,
    disk_format_contradicts_its_extension,
    tags_that_fit_instances_but_not_the_ami_of_a_many_disk_server,
    tag_value_with_a_control_character,
    empty_tag_value,
);

/// unknown top-level field with suggestion
fn unknown_top_level_field_with_suggestion() -> Case {
    case(
        &format!("{BASE_HEAD}⟦servres:\n{WEB01}groups:\n{WEB_GROUP}"),
        &["unknown field `servres`", "did you mean `servers`"],
    )
}

/// unknown server field
fn unknown_server_field() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    ⟦diks:\n      - source: a.img\n",
            WEB_GROUP,
        ),
        &["unknown field `diks`", "did you mean `disks`"],
    )
}

/// wrong apiVersion
fn wrong_api_version() -> Case {
    case(
        &format!(
            "apiVersion: ⟦rehost/v2\nkind: Application\nname: shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["apiVersion", "rehost/v1"],
    )
}

/// wrong kind
fn wrong_kind() -> Case {
    case(
        &format!(
            "apiVersion: rehost/v1\nkind: ⟦App\nname: shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["kind", "Application"],
    )
}

/// bad application name
fn bad_application_name() -> Case {
    case(
        &format!(
            "apiVersion: rehost/v1\nkind: Application\nname: ⟦Shop\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["application name", "lowercase"],
    )
}

/// bad server id
fn bad_server_id() -> Case {
    case(
        &app(
            "",
            "  - id: ⟦Web_01\n    os: linux\n    disks: [{source: a.img}]\n",
            "  - name: web\n    servers: [Web_01]\n",
        ),
        &["server id", "lowercase"],
    )
}

/// duplicate server id
fn duplicate_server_id() -> Case {
    case(
        &app(
            "",
            &format!("{WEB01}  - id: ⟦web01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
            WEB_GROUP,
        ),
        &["duplicate server id `web01`", "line 8"],
    )
}

/// duplicate group name
fn duplicate_group_name() -> Case {
    case(
        &app(
            "",
            &format!("{WEB01}  - id: web02\n    os: linux\n    disks: [{{source: b.img}}]\n"),
            "  - name: web\n    servers: [web01]\n  - name: ⟦web\n    servers: [web02]\n",
        ),
        &["duplicate group name `web`"],
    )
}

/// group lists unknown server
fn group_lists_unknown_server() -> Case {
    case(
        &app("", WEB01, "  - name: web\n    servers: [⟦web1]\n"),
        &["unknown server `web1`", "did you mean `web01`"],
    )
}

/// dependsOn unknown group
fn depends_on_unknown_group() -> Case {
    case(
        &app(
            "",
            &format!("{WEB01}  - id: db01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
            "  - name: database\n    servers: [db01]\n  - name: web\n    dependsOn: [⟦databse]\n    servers: [web01]\n",
        ),
        &["unknown group `databse`", "did you mean `database`"],
    )
}

/// dependency cycle is named
fn dependency_cycle_is_named() -> Case {
    case(
        &app(
            "",
            &format!("{WEB01}  - id: app01\n    os: linux\n    disks: [{{source: b.img}}]\n"),
            "  - name: app\n    ⟦dependsOn: [web]\n    servers: [app01]\n  - name: web\n    dependsOn: [app]\n    servers: [web01]\n",
        ),
        &["dependency cycle", "app -> web -> app"],
    )
}

/// group depends on itself
fn group_depends_on_itself() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    dependsOn: [⟦web]\n    servers: [web01]\n",
        ),
        &["dependency cycle", "web -> web"],
    )
}

/// server in no group
fn server_in_no_group() -> Case {
    case(
        &app(
            "",
            &format!("{WEB01}  - id: ⟦orphan\n    os: linux\n    disks: [{{source: b.img}}]\n"),
            WEB_GROUP,
        ),
        &["server `orphan` is in no group"],
    )
}

/// server in two groups
fn server_in_two_groups() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n  - name: web2\n    servers: [⟦web01]\n",
        ),
        &["already in group `web`", "exactly one group"],
    )
}

/// frequencyHours above range
fn frequencyhours_above_range() -> Case {
    case(
        &format!(
            "{BASE_HEAD}defaults:\n  replication:\n    frequencyHours: ⟦25\n  launch:\n    instanceType: m5.large\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["frequencyHours", "between 1 and 24", "25"],
    )
}

/// frequencyHours zero
fn frequencyhours_zero() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {frequencyHours: ⟦0}\n",
            WEB_GROUP,
        ),
        &["frequencyHours", "between 1 and 24"],
    )
}

/// frequencyHours with runOnce
fn frequencyhours_with_runonce() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {frequencyHours: ⟦6, runOnce: true}\n",
            WEB_GROUP,
        ),
        &["either frequencyHours or runOnce"],
    )
}

/// keepRecentAmis above range
fn keeprecentamis_above_range() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {keepRecentAmis: ⟦300}\n",
            WEB_GROUP,
        ),
        &["keepRecentAmis", "1 to 270"],
    )
}

/// keepRecentAmis negative
fn keeprecentamis_negative() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n    replication:\n      keepRecentAmis: ⟦-1\n",
        ),
        &["keepRecentAmis", "0 (keep all)"],
    )
}

/// signalTimeoutMinutes zero
fn signaltimeoutminutes_zero() -> Case {
    case(
        &app("    signalTimeoutMinutes: ⟦0\n", WEB01, WEB_GROUP),
        &["signalTimeoutMinutes", "between 1 and 720"],
    )
}

/// signalTimeoutMinutes above range
fn signaltimeoutminutes_above_range() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n    launch: {signalTimeoutMinutes: ⟦721}\n",
        ),
        &["signalTimeoutMinutes", "720", "721"],
    )
}

/// kmsKeyId without encrypted
fn kmskeyid_without_encrypted() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {kmsKeyId: ⟦alias/migration}\n",
            WEB_GROUP,
        ),
        &["kmsKeyId", "encrypted"],
    )
}

/// malformed kms key
fn malformed_kms_key() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {encrypted: true, kmsKeyId: ⟦migration-key}\n",
            WEB_GROUP,
        ),
        &["not a KMS key reference"],
    )
}

/// malformed subnet id
fn malformed_subnet_id() -> Case {
    case(
        &app("    subnet: ⟦subnet-12345\n", WEB01, WEB_GROUP),
        &["subnet", "8 or 17"],
    )
}

/// malformed security group id
fn malformed_security_group_id() -> Case {
    case(
        &app(
            "    securityGroups: [sg-0a1b2c3d, ⟦sg-XYZ]\n",
            WEB01,
            WEB_GROUP,
        ),
        &["`sg-XYZ`", "sg id"],
    )
}

/// malformed vpc id
fn malformed_vpc_id() -> Case {
    case(
        &app("    vpc: ⟦vpc-0a1b2c3d4e5f6071\n", WEB01, WEB_GROUP),
        &["vpc id", "8 or 17"],
    )
}

/// instance type syntax
fn instance_type_syntax() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {instanceType: ⟦m5large}\n",
            WEB_GROUP,
        ),
        &["`m5large`", "instance type"],
    )
}

/// private ip syntax
fn private_ip_syntax() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: ⟦10.0.1}\n",
            WEB_GROUP,
        ),
        &["`10.0.1`", "IPv4"],
    )
}

/// public address as private ip
fn public_address_as_private_ip() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: ⟦8.8.8.8}\n",
            WEB_GROUP,
        ),
        &["not a private IPv4 address"],
    )
}

/// privateIpAddress on a group
fn privateipaddress_on_a_group() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n    launch: {privateIpAddress: ⟦10.0.0.5}\n",
        ),
        &["privateIpAddress can only be set on a server"],
    )
}

/// duplicate private ip
fn duplicate_private_ip() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {privateIpAddress: 10.0.0.5}\n  - id: web02\n    os: linux\n    disks: [{source: b.img}]\n    launch: {privateIpAddress: ⟦10.0.0.5}\n",
            "  - name: web\n    servers: [web01, web02]\n",
        ),
        &["private IP 10.0.0.5", "web01"],
    )
}

/// invalid logical id
fn invalid_logical_id() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: ⟦Web-01}\n",
            WEB_GROUP,
        ),
        &["`Web-01`", "logical id"],
    )
}

/// duplicate logical id
fn duplicate_logical_id() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: Front}\n  - id: web02\n    os: linux\n    disks: [{source: b.img}]\n    launch: {logicalId: ⟦Front}\n",
            "  - name: web\n    servers: [web01, web02]\n",
        ),
        &["logical id `Front`", "collides", "web01"],
    )
}

/// derived logical ids collide
fn derived_logical_ids_collide() -> Case {
    case(
        &app(
            "",
            "  - id: sql01\n    os: linux\n    disks: [{source: a.img}]\n  - id: ⟦sql-01\n    os: linux\n    disks: [{source: b.img}]\n",
            "  - name: db\n    servers: [sql01, sql-01]\n",
        ),
        &["logical id `Sql01`", "collides", "logicalId"],
    )
}

/// logical id collides with a group gate
fn logical_id_collides_with_a_group_gate() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    launch: {logicalId: ⟦WebGate}\n",
            WEB_GROUP,
        ),
        &["logical id `WebGate`", "group `web`"],
    )
}

/// configure script missing
fn configure_script_missing() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦scripts/missing.sh}\n",
        ),
        &["configure script", "missing.sh", "does not exist"],
    )
}

/// powershell script on linux
fn powershell_script_on_linux() -> Case {
    case(&app(
                "",
                WEB01,
                "  - name: web\n    servers: [web01]\n    launch:\n      configureScript: setup.sh\n      configureScriptType: ⟦POWERSHELL_SCRIPT\n",
            ),
            &["runs linux", "POWERSHELL_SCRIPT", "SHELL_SCRIPT"]).with_file("setup.sh", "echo hi\n")
}

/// shell script for windows by extension
fn shell_script_for_windows_by_extension() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: windows\n    disks: [{source: a.img}]\n",
            "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦setup.sh}\n",
        ),
        &["looks like a SHELL_SCRIPT", "POWERSHELL_SCRIPT"],
    )
    .with_file("setup.sh", "echo hi\n")
}

/// configure script too large for user data
fn configure_script_too_large_for_user_data() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n    launch: {configureScript: ⟦big.sh}\n",
        ),
        &["big.sh", "once wrapped", "16384"],
    )
    .with_file(
        "big.sh",
        &"echo 'padding the script beyond what user data holds'\n".repeat(400),
    )
}

/// duplicate yaml key
fn duplicate_yaml_key() -> Case {
    case(
        &format!("{BASE_HEAD}⟦name: shop2\nservers:\n{WEB01}groups:\n{WEB_GROUP}"),
        &["duplicate key `name`"],
    )
}

/// quoted integer
fn quoted_integer() -> Case {
    case(
        &app("    signalTimeoutMinutes: ⟦\"30\"\n", WEB01, WEB_GROUP),
        &["expected an integer", "found a string"],
    )
}

/// servers not a list
fn servers_not_a_list() -> Case {
    case(
        &format!("{BASE_HEAD}⟦servers: {{id: web01}}\ngroups:\n{WEB_GROUP}"),
        &["expected a list", "mapping"],
    )
}

/// yes is not a boolean
fn yes_is_not_a_boolean() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {encrypted: ⟦yes}\n",
            WEB_GROUP,
        ),
        &["expected true or false", "YAML 1.2"],
    )
}

/// enum in wrong case
fn enum_in_wrong_case() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {licenseType: ⟦auto}\n",
            WEB_GROUP,
        ),
        &["`auto` is not one of", "did you mean `AUTO`"],
    )
}

/// seedTime not RFC 3339
fn seedtime_not_rfc_3339() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks: [{source: a.img}]\n    replication: {seedTime: ⟦tomorrow}\n",
            WEB_GROUP,
        ),
        &["RFC 3339"],
    )
}

/// aws: tag prefix
fn aws_tag_prefix() -> Case {
    case(
        &format!(
            "{BASE_HEAD}tags:\n  ⟦aws:owner: me\ndefaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["aws:", "reserved"],
    )
}

/// empty file
fn empty_file() -> Case {
    case("⟦", &["empty"])
}

/// comment-only file
fn comment_only_file() -> Case {
    case("⟦# nothing here\n", &["empty"])
}

/// yaml syntax error
fn yaml_syntax_error() -> Case {
    case(
        "apiVersion: rehost/v1\nservers: [a, b\n⟦",
        &["YAML syntax error"],
    )
}

/// missing required os
fn missing_required_os() -> Case {
    case(
        &app(
            "",
            "  - ⟦id: web01\n    disks: [{source: a.img}]\n",
            WEB_GROUP,
        ),
        &["missing required field `os`"],
    )
}

/// empty disk list
fn empty_disk_list() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    ⟦disks: []\n",
            WEB_GROUP,
        ),
        &["at least one disk"],
    )
}

/// group without servers
fn group_without_servers() -> Case {
    case(
        &app(
            "",
            WEB01,
            "  - name: web\n    servers: [web01]\n  - name: empty\n    ⟦servers: []\n",
        ),
        &["group `empty` has no servers"],
    )
}

/// unknown field in test block
fn unknown_field_in_test_block() -> Case {
    case(
        &app(
            "    test:\n      ⟦subnets: [subnet-0a1b2c3d]\n",
            WEB01,
            WEB_GROUP,
        ),
        &["unknown field `subnets`", "did you mean `subnet`"],
    )
}

/// no instance type anywhere
fn no_instance_type_anywhere() -> Case {
    case(
        &format!(
            "{BASE_HEAD}servers:\n  - id: ⟦web01\n    os: linux\n    disks: [{{source: a.img}}]\ngroups:\n{WEB_GROUP}"
        ),
        &["no instance type", "launch.instanceType"],
    )
}

/// yaml merge key
fn yaml_merge_key() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    ⟦<<: {disks: [{source: a.img}]}\n    disks: [{source: a.img}]\n",
            WEB_GROUP,
        ),
        &["merge keys", "not supported"],
    )
}

/// os misspelled
fn os_misspelled() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: ⟦linx\n    disks: [{source: a.img}]\n",
            WEB_GROUP,
        ),
        &["`linx` is not one of", "did you mean `linux`"],
    )
}

/// security group listed twice
fn security_group_listed_twice() -> Case {
    case(
        &app(
            "    securityGroups: [sg-0a1b2c3d, ⟦sg-0a1b2c3d]\n",
            WEB01,
            WEB_GROUP,
        ),
        &["listed twice"],
    )
}

/// key pair name with control characters
fn key_pair_name_with_control_characters() -> Case {
    case(
        &app("    keyName: ⟦\"bad\\tkey\"\n", WEB01, WEB_GROUP),
        &["key pair name"],
    )
}

/// instance profile given as ARN
fn instance_profile_given_as_arn() -> Case {
    case(
        &app(
            "    iamInstanceProfile: ⟦arn:aws:iam::111122223333:instance-profile/ssm\n",
            WEB01,
            WEB_GROUP,
        ),
        &["name, not its ARN"],
    )
}

fn too_many_tags() -> Case {
    let mut text = format!("{BASE_HEAD}⟦tags:\n");
    for i in 0..46 {
        text.push_str(&format!("  k{i}: v\n"));
    }
    text.push_str(&format!(
        "defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
    ));
    case(
        &text,
        &[
            "46 application tags",
            "the AMI of server `web01`",
            "4 over EC2's 50",
        ],
    )
}

/// Issue 8 item 8: 45 application tags were allowed, but an AMI carries 7 of rehost's tags and
/// one per disk: a 20-disk server's AMI would exceed EC2's 50 (the emulator does not enforce it,
/// AWS does).
fn tags_that_fit_instances_but_not_the_ami_of_a_many_disk_server() -> Case {
    let mut text = format!("{BASE_HEAD}⟦tags:\n");
    for i in 0..30 {
        text.push_str(&format!("  k{i}: v\n"));
    }
    let disks: String = (0..20)
        .map(|d| format!("      - source: db/disk{d}.vmdk\n"))
        .collect();
    text.push_str(&format!(
        "defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  - id: db01\n    os: linux\n    disks:\n{disks}\
         groups:\n  - {{name: db, servers: [db01]}}\n"
    ));
    case(
        &text,
        &[
            "30 application tags and rehost's 27 make 57 tags on the AMI of server `db01` (20 disks)",
            "7 over",
        ],
    )
}

fn tag_value_with_a_control_character() -> Case {
    case(
        &format!(
            "{BASE_HEAD}tags:\n  owner: ⟦\"me\\u001b]52;c;x\\u0007\"\ndefaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["tag `owner`", "control character"],
    )
}

fn empty_tag_value() -> Case {
    case(
        &format!(
            "{BASE_HEAD}tags:\n  owner: ⟦\"\"\ndefaults:\n  launch: {{instanceType: m5.large}}\nservers:\n{WEB01}groups:\n{WEB_GROUP}"
        ),
        &["tag `owner`", "1 to 256 characters", "CloudFormation"],
    )
}

/// Issue 8 item 1: a disk without a known extension was opened with the format qemu-img
/// guessed from its contents, which a guest controls.
fn disk_without_extension_or_format() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks:\n      - source: ⟦exports/web01-disk0\n",
            WEB_GROUP,
        ),
        &["`exports/web01-disk0`", "add `format:`", "never guesses"],
    )
}

fn disk_format_contradicts_its_extension() -> Case {
    case(
        &app(
            "",
            "  - id: web01\n    os: linux\n    disks:\n      - {source: web01.vmdk, format: ⟦qcow2}\n",
            WEB_GROUP,
        ),
        &["`format: qcow2` contradicts", "`web01.vmdk`", "vmdk image"],
    )
}

/// An application of `groups` groups of two servers, the marker at `servers:`.
fn groups_of_two(groups: usize) -> String {
    let mut servers = String::new();
    let mut group_list = String::new();
    for g in 0..groups {
        group_list.push_str(&format!("  - name: g{g}\n    servers: [s{g}a, s{g}b]\n"));
        for s in ["a", "b"] {
            servers.push_str(&format!(
                "  - {{id: s{g}{s}, os: linux, disks: [{{source: x.img}}]}}\n"
            ));
        }
    }
    format!(
        "{BASE_HEAD}defaults:\n  launch: {{instanceType: m5.large}}\n⟦servers:\n{servers}groups:\n{group_list}"
    )
}

/// Over one template's resources is no longer an error (nested stacks, issue 11); what still
/// cannot launch is a parent over its parameters: 200 groups' AMI lists and the children's
/// location.
fn too_many_parameters_for_the_parent_stack() -> Case {
    let text = groups_of_two(200);
    case(&text, &["201 parameters", "200", "nested stacks"])
}

/// An application over one template's resources validates, with a note that it is rendered as
/// nested stacks (it was an error before issue 11).
#[test]
fn too_many_resources_for_one_template_is_a_note_about_nested_stacks() {
    let dir = tempdir("nested-note");
    let text = groups_of_two(150);
    let (text, pos) = locate(&text);
    let (line, col) = pos.unwrap();
    std::fs::write(dir.join("app.yaml"), &text).unwrap();
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let prefix = format!("app.yaml:{line}:{col}: note: ");
    assert!(
        stderr.lines().any(|l| l.starts_with(&prefix)
            && l.contains("600 resources")
            && l.contains("rendered as nested stacks")),
        "{stderr}"
    );
    assert!(!stderr.contains(": error: "), "{stderr}");
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
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
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
    // From the workspace root, the builder's default.
    let out = rehost()
        .args([
            "validate",
            "apps/sharepoint-farm.yaml",
            "apps/ecommerce-3tier.yaml",
        ])
        .run();
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
    let out = rehost()
        .args(["validate", "good.yaml", "bad.yaml"])
        .current_dir(&dir)
        .run();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("good.yaml: ok"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 files invalid"));
}

#[test]
fn missing_file_is_invalid_input_and_usage_errors_exit_2() {
    let dir = tempdir("missing");
    let out = rehost()
        .args(["validate", "nope.yaml"])
        .current_dir(&dir)
        .run();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml: no such file"));
    let out = rehost().args(["render"]).current_dir(&dir).run();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn non_yaml_bytes_do_not_panic() {
    let dir = tempdir("binary");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("app.yaml"), bytes).unwrap();
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
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
    let out = rehost()
        .args(["validate", "app.json"])
        .current_dir(&dir)
        .run();
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
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
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
    let out = rehost()
        .args(["validate", "app.yaml"])
        .current_dir(&dir)
        .run();
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
    let out = rehost()
        .args(["render", "missing\u{1b}]52;c;eA==\u{7}.yaml"])
        .current_dir(&dir)
        .run();
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
    let out = rehost()
        .args(["validate", "bomb.yaml"])
        .current_dir(&dir)
        .limit_address_space(256 << 20)
        .run();
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
