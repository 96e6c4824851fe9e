//! The application file as written: every field keeps its position so validation can point at it.
//! These types are also the source of the JSON Schema (`rehost schema`); `decode` fills them.
//!
//! Field names follow the AWS SMS API where it has one, so SMS users recognise them.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use time::OffsetDateTime;

pub use rehost_replication::domain::{Architecture, BootMode, DiskFormat, LicenseType};

use crate::limits;
use crate::yaml::Pos;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Spanned<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Spanned { value, pos }
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

pub const API_VERSION: &str = "rehost/v1";
pub const KIND: &str = "Application";

/// An application: servers, the groups they launch in, and how to replicate and launch them.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "rehost application", extend("$id" = "https://rehost.dev/schema/application.schema.json"))]
pub struct Application {
    /// Always `rehost/v1`.
    #[schemars(extend("const" = "rehost/v1"))]
    pub api_version: Spanned<String>,
    /// Always `Application`.
    #[schemars(extend("const" = "Application"))]
    pub kind: Spanned<String>,
    /// Names the application; stack names (`rehost-<name>-<mode>`) derive from it.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub name: Spanned<String>,
    #[schemars(length(max = limits::MAX_APP_DESCRIPTION))]
    pub description: Option<Spanned<String>>,
    /// Tags for every snapshot, AMI, instance and stack of the application.
    pub tags: Option<Spanned<Tags>>,
    /// Where rehost keeps the application's state: a SQLite file (relative paths from this
    /// file's directory) or `s3://BUCKET/PREFIX`, shared by a team. `--state` and
    /// `REHOST_STATE` take precedence; default `.rehost/state.db` beside this file.
    #[schemars(length(min = 1))]
    pub state: Option<Spanned<String>>,
    /// Settings every group and server inherits; a group's and then a server's own blocks
    /// override them field by field.
    pub defaults: Option<Settings>,
    #[schemars(length(min = 1))]
    pub servers: Spanned<Vec<Server>>,
    #[schemars(length(min = 1))]
    pub groups: Spanned<Vec<Group>>,
    /// Commands `rehost cutover` and `rehost rollback` run on the operator's machine.
    pub hooks: Option<Hooks>,
    /// Servers and groups that could not be read (their errors are already reported); kept so
    /// references to them do not raise a second, misleading error.
    #[schemars(skip)]
    pub unreadable: Unreadable,
}

/// Ids of servers and names of groups whose entries had errors (when the id or name itself
/// could be read).
#[derive(Clone, Debug, Default)]
pub struct Unreadable {
    pub server_ids: Vec<String>,
    pub group_names: Vec<String>,
}

/// Tags for everything rehost creates, sharing EC2's 50 per resource with rehost's own (at most
/// 42: an AMI carries 8 of rehost's for one disk, one more per further disk); keys 1 to 128
/// characters, values 1 to 256, no control characters; no `aws:` or `rehost:` prefix and no
/// `Name` (rehost names instances after their servers).
#[derive(Clone, Debug, Default)]
pub struct Tags(pub Vec<(Spanned<String>, Spanned<String>)>);

/// Tag keys and values hold no control characters.
const NO_CONTROLS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

impl JsonSchema for Tags {
    fn schema_name() -> Cow<'static, str> {
        "Tags".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "object",
            "maxProperties": limits::MAX_APP_TAGS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": limits::MAX_TAG_KEY,
                "pattern": NO_CONTROLS,
                "not": {"pattern": "^([aA][wW][sS]|[rR][eE][hH][oO][sS][tT]):|^Name$"}
            },
            "additionalProperties": {
                "type": "string",
                "minLength": limits::TAG_VALUE.start(),
                "maxLength": limits::TAG_VALUE.end(),
                "pattern": NO_CONTROLS
            }
        })
    }
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    pub replication: Option<ReplicationSettings>,
    pub launch: Option<LaunchSettings>,
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationSettings {
    /// Hours between replication runs, 1..24 (`--watch`). Exclusive with `runOnce`.
    #[schemars(range(min = *limits::FREQUENCY_HOURS.start(), max = *limits::FREQUENCY_HOURS.end()))]
    pub frequency_hours: Option<Spanned<i64>>,
    /// Replicate once instead of on a frequency.
    pub run_once: Option<Spanned<bool>>,
    /// When the first run may start (RFC 3339); later runs follow the frequency from it.
    #[schemars(extend("format" = "date-time"))]
    pub seed_time: Option<Spanned<Timestamp>>,
    pub license_type: Option<Spanned<LicenseType>>,
    /// How many of the most recent AMIs to keep per server; 0 keeps all, else 1..270.
    #[schemars(range(min = *limits::KEEP_RECENT_AMIS.start(), max = *limits::KEEP_RECENT_AMIS.end()))]
    pub keep_recent_amis: Option<Spanned<i64>>,
    /// Encrypt snapshots and AMIs.
    pub encrypted: Option<Spanned<bool>>,
    /// KMS key (key id, `alias/...`, or key ARN); only with `encrypted: true`.
    pub kms_key_id: Option<Spanned<String>>,
    /// Cutover refuses a server whose launched AMI is older than this many minutes (1..10080;
    /// default 180).
    #[schemars(range(min = *limits::MAX_LAG_MINUTES.start(), max = *limits::MAX_LAG_MINUTES.end()))]
    pub max_lag_minutes: Option<Spanned<i64>>,
}

/// An RFC 3339 timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub OffsetDateTime);

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchSettings {
    /// EC2 instance type, e.g. `m5.large`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$"))]
    pub instance_type: Option<Spanned<String>>,
    /// When set, pre-flight checks that the subnet and security groups belong to it.
    #[schemars(regex(pattern = r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub vpc: Option<Spanned<String>>,
    #[schemars(regex(pattern = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub subnet: Option<Spanned<String>>,
    #[schemars(length(min = 1, max = limits::MAX_SECURITY_GROUPS))]
    pub security_groups: Option<Spanned<Vec<Spanned<SecurityGroupId>>>>,
    pub key_name: Option<Spanned<String>>,
    /// Name of an IAM instance profile.
    pub iam_instance_profile: Option<Spanned<String>>,
    /// When set (true or false), the instance gets a network interface that says so explicitly,
    /// whatever the subnet's default.
    pub associate_public_ip_address: Option<Spanned<bool>>,
    /// Minutes a server has to boot, run its configure script and signal, 1..720.
    #[schemars(range(
        min = *limits::SIGNAL_TIMEOUT_MINUTES.start(),
        max = *limits::SIGNAL_TIMEOUT_MINUTES.end()
    ))]
    pub signal_timeout_minutes: Option<Spanned<i64>>,
    /// Server only: the instance's primary private IPv4 address (cutover mode).
    pub private_ip_address: Option<Spanned<String>>,
    /// Server only: the CloudFormation logical id of the instance (default: from the server id).
    #[schemars(regex(pattern = r"^[A-Za-z0-9]{1,200}$"))]
    pub logical_id: Option<Spanned<String>>,
    /// Script run at first boot (path relative to the application file).
    pub configure_script: Option<Spanned<String>>,
    /// Default: POWERSHELL_SCRIPT on Windows, SHELL_SCRIPT on Linux.
    pub configure_script_type: Option<Spanned<ScriptType>>,
    /// Post-launch checks, run in order inside each instance after its configure script and
    /// before it signals the launch gate; any failure is the server's FAILURE. The most specific
    /// block that sets `checks` wins (its list replaces the others).
    #[schemars(length(max = limits::MAX_CHECKS))]
    pub checks: Option<Spanned<Vec<Check>>>,
    /// Used instead of the settings above when launching in test mode.
    pub test: Option<Spanned<TestSettings>>,
}

/// One post-launch check: exactly one of `tcp`, `http` or `script`. `host` and `url` may name
/// another server as `{{server:ID}}`, replaced by that server's private IP; it must launch in a
/// group this server's group depends on (directly or through others).
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["tcp"]},
    {"required": ["http"]},
    {"required": ["script"]}
]))]
pub struct Check {
    /// A TCP connection to `host:port` succeeds.
    pub tcp: Option<Spanned<TcpCheck>>,
    /// An HTTP(S) answer with the expected status (and text).
    pub http: Option<Spanned<HttpCheck>>,
    /// A script in the repository exits 0 (same rules as configure scripts).
    pub script: Option<Spanned<String>>,
    /// Seconds the check may take, retries included; 1..3600, default 60.
    #[schemars(range(min = *limits::CHECK_TIMEOUT_SECONDS.start(), max = *limits::CHECK_TIMEOUT_SECONDS.end()))]
    pub timeout_seconds: Option<Spanned<i64>>,
    #[schemars(skip)]
    pub pos: Pos,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpCheck {
    /// A host name, an IP address, or `{{server:ID}}`.
    #[schemars(length(min = 1, max = limits::MAX_CHECK_TEXT))]
    pub host: Spanned<String>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: Spanned<i64>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://` or `https://`; the host may be `{{server:ID}}`.
    #[schemars(regex(pattern = r"^[hH][tT][tT][pP][sS]?://"), length(max = limits::MAX_CHECK_TEXT))]
    pub url: Spanned<String>,
    /// The status the answer must have (default 200).
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<Spanned<i64>>,
    /// Text the answer's body must contain.
    #[schemars(length(min = 1, max = limits::MAX_CHECK_TEXT))]
    pub contains: Option<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupId(pub String);

impl JsonSchema for SecurityGroupId {
    fn schema_name() -> Cow<'static, str> {
        "SecurityGroupId".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "string", "pattern": "^sg-([0-9a-f]{8}|[0-9a-f]{17})$"})
    }
}

/// Test-mode overrides; a test launch and a cutover launch run side by side, so a test instance
/// keeps no cutover private IP unless `privateIpAddress` is given here.
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestSettings {
    /// The test subnet's VPC, when it is not the cutover `vpc`.
    #[schemars(regex(pattern = r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub vpc: Option<Spanned<String>>,
    #[schemars(regex(pattern = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub subnet: Option<Spanned<String>>,
    #[schemars(length(min = 1, max = limits::MAX_SECURITY_GROUPS))]
    pub security_groups: Option<Spanned<Vec<Spanned<SecurityGroupId>>>>,
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$"))]
    pub instance_type: Option<Spanned<String>>,
    /// Server only.
    pub private_ip_address: Option<Spanned<String>>,
    pub associate_public_ip_address: Option<Spanned<bool>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ScriptType {
    #[serde(rename = "SHELL_SCRIPT")]
    Shell,
    #[serde(rename = "POWERSHELL_SCRIPT")]
    PowerShell,
}

rehost_replication::choices!(ScriptType {
    "SHELL_SCRIPT" => ScriptType::Shell,
    "POWERSHELL_SCRIPT" => ScriptType::PowerShell,
});

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Windows,
    Linux,
}

rehost_replication::choices!(Os {
    "windows" => Os::Windows,
    "linux" => Os::Linux,
});

impl Os {
    /// The script type a server of this OS runs when `configureScriptType` is not set.
    pub fn native_script(self) -> ScriptType {
        match self {
            Os::Windows => ScriptType::PowerShell,
            Os::Linux => ScriptType::Shell,
        }
    }
}

impl ScriptType {
    /// The OS that runs scripts of this type.
    pub fn os(self) -> Os {
        match self {
            ScriptType::PowerShell => Os::Windows,
            ScriptType::Shell => Os::Linux,
        }
    }
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"))]
    pub id: Spanned<String>,
    pub description: Option<Spanned<String>>,
    pub os: Spanned<Os>,
    /// CPU architecture of the AMI (default x86_64).
    pub architecture: Option<Spanned<Architecture>>,
    /// Firmware the AMI boots with (default: EC2's default for the instance type).
    pub boot_mode: Option<Spanned<BootMode>>,
    /// Whether the AMI declares ENA networking (default true: current instance types need it).
    pub ena_support: Option<Spanned<bool>>,
    /// The disks to replicate; the first is the boot disk.
    #[schemars(length(min = 1, max = limits::MAX_DISKS))]
    pub disks: Spanned<Vec<Disk>>,
    pub replication: Option<ReplicationSettings>,
    pub launch: Option<LaunchSettings>,
    #[schemars(skip)]
    pub pos: Pos,
}

/// Commands run on the operator's machine (not in the instances) around a cutover, in order.
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hooks {
    /// Before the final sync, e.g. to stop the services on the source servers; a failing hook
    /// stops the cutover before anything else.
    pub pre_cutover: Option<Spanned<Vec<Hook>>>,
    /// After a failed cutover was kept, rolled back or deleted, and after `rehost rollback`,
    /// e.g. to start the source services again.
    pub post_rollback: Option<Spanned<Vec<Hook>>>,
}

/// One command. Exactly one of `command` (run without a shell) and `shell`.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"))]
    pub name: Spanned<String>,
    /// The program and its arguments, run without a shell in the application file's
    /// directory; a program path with a `/` is relative to that directory, others are looked
    /// up in PATH.
    #[schemars(length(min = 1))]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Text run by `/bin/sh -c` in the application file's directory, when a shell is wanted.
    pub shell: Option<Spanned<String>>,
    /// Killed after this many seconds (1..86400; default 600).
    #[schemars(range(min = *limits::HOOK_TIMEOUT_SECONDS.start(), max = *limits::HOOK_TIMEOUT_SECONDS.end()))]
    pub timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disk {
    /// A raw, qcow2, vmdk, vhd or vhdx image file, or a `/dev/` block device; relative paths
    /// are relative to the application file.
    pub source: Spanned<String>,
    /// The image format, when the extension does not say it (`.raw`/`.img`, `.qcow2`, `.vmdk`,
    /// `.vhd`, `.vhdx`); a `/dev/` source is raw. Never guessed from the image's contents.
    pub format: Option<Spanned<DiskFormat>>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"))]
    pub name: Spanned<String>,
    pub description: Option<Spanned<String>>,
    /// Groups whose servers must all have signalled success before this group starts.
    pub depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    /// SMS-style shorthand: depends on every group with the largest launchOrder below this one.
    #[schemars(range(min = 0))]
    pub launch_order: Option<Spanned<i64>>,
    #[schemars(length(min = 1))]
    pub servers: Spanned<Vec<Spanned<String>>>,
    pub replication: Option<ReplicationSettings>,
    pub launch: Option<LaunchSettings>,
    #[schemars(skip)]
    pub pos: Pos,
}

/// The JSON Schema of the application file, as `rehost schema` prints it and
/// `schema/application.schema.json` holds it.
pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Application>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}
