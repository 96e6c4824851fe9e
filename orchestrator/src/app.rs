//! The validated application: every server's settings merged (defaults, then group, then
//! server), references resolved to indices, configure scripts checked and embedded. Everything
//! downstream (graph output, template, replication jobs, launch) works from this and never from
//! the raw file.

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::graph::LaunchGraph;
pub use crate::model::{Architecture, BootMode, DiskFormat, LicenseType, Os, ScriptType};
use crate::yaml::Pos;
pub use rehost_replication::domain::Frequency;

#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The `state:` setting, relative paths resolved against the file's directory.
    pub state: Option<rehost_replication::state::StateLocation>,
    pub groups: Vec<AppGroup>,
    pub servers: Vec<AppServer>,
    pub graph: LaunchGraph,
    /// The application file as given on the command line.
    pub file: PathBuf,
    /// Where the `servers` list starts, for problems of the application as a whole.
    pub servers_pos: Pos,
    pub hooks: AppHooks,
}

/// Commands run on the operator's machine around a cutover, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppHooks {
    pub pre_cutover: Vec<AppHook>,
    pub post_rollback: Vec<AppHook>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppHook {
    pub name: String,
    pub run: HookRun,
    pub timeout: std::time::Duration,
}

/// How a hook runs: a program and its arguments without a shell, or shell text.
#[derive(Clone, Debug, PartialEq)]
pub enum HookRun {
    Command(Vec<String>),
    Shell(String),
}

impl HookRun {
    /// As declared, for the history and the dry run.
    pub fn display(&self) -> String {
        match self {
            HookRun::Command(argv) => argv.join(" "),
            HookRun::Shell(text) => format!("sh -c {text:?}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AppGroup {
    pub name: String,
    pub description: Option<String>,
    /// Indices into `App::servers`, in the group's order.
    pub servers: Vec<usize>,
    /// Groups this one waits for (explicit and launchOrder-derived), in group order.
    pub depends_on: Vec<usize>,
    /// PascalCase stem for the group's resources (`Database` -> `DatabaseGate`).
    pub logical_stem: String,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct AppServer {
    pub id: String,
    pub description: Option<String>,
    pub group: usize,
    pub os: Os,
    /// Where `os:` is written (a contradicting inspection is reported there).
    pub os_pos: Pos,
    /// As set, or x86_64 when unset (then the inspection's, where it found one).
    pub architecture: Architecture,
    /// Where `architecture:` is set; `None` when the file leaves it to the default.
    pub architecture_pos: Option<Pos>,
    pub boot_mode: Option<BootMode>,
    /// Where `bootMode:` is set.
    pub boot_mode_pos: Option<Pos>,
    pub ena_support: bool,
    pub logical_id: String,
    /// Where the logical id comes from: the `logicalId` field, or the server's `id`.
    pub logical_id_pos: Pos,
    /// The boot disk first; only `replicate` reads them.
    pub disks: Vec<AppDisk>,
    pub replication: Replication,
    pub cutover: Launch,
    pub test: Launch,
}

/// A disk to replicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDisk {
    /// Resolved against the application file's directory.
    pub source: PathBuf,
    /// As declared, or as the extension (or `/dev/`) says: the engine opens it so.
    pub format: DiskFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Cutover,
}

rehost_replication::choices!(Mode {
    "test" => Mode::Test,
    "cutover" => Mode::Cutover,
});

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Cutover => "cutover",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AppServer {
    pub fn launch(&self, mode: Mode) -> &Launch {
        match mode {
            Mode::Test => &self.test,
            Mode::Cutover => &self.cutover,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Replication {
    pub frequency: Frequency,
    pub seed_time: Option<OffsetDateTime>,
    pub license_type: LicenseType,
    /// 0 keeps every AMI.
    pub keep_recent_amis: u32,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// Cutover refuses an AMI older than this (`maxLagMinutes`).
    pub max_lag_minutes: u32,
}

/// Which block of the file a launch setting came from. Portable templates name their
/// parameters after it (`DefaultSubnet`, `DatabaseGroupSubnet`, `Sql01TestSubnet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub level: Level,
    /// Set by a `test:` block.
    pub test: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Defaults,
    Group(usize),
    Server(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub instance_type: String,
    pub vpc: Option<String>,
    pub subnet: Option<Setting<String>>,
    pub security_groups: Option<Setting<Vec<String>>>,
    pub key_name: Option<Setting<String>>,
    pub iam_instance_profile: Option<Setting<String>>,
    pub associate_public_ip_address: Option<bool>,
    pub signal_timeout_minutes: u32,
    pub private_ip_address: Option<String>,
    pub configure_script: Option<ConfigureScript>,
    /// Post-launch checks, run in order after the configure script (the same in both modes:
    /// a server named in one resolves to its private IP in whichever stack it runs).
    pub checks: Vec<LaunchCheck>,
}

/// One post-launch check of a server, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchCheck {
    pub kind: CheckKind,
    /// Seconds the check may take, retries included.
    pub timeout_seconds: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    Tcp {
        host: CheckText,
        port: u16,
    },
    Http {
        url: CheckText,
        expect_status: u16,
        contains: Option<String>,
    },
    /// Same rules as a configure script; run with the server's script type.
    Script(ConfigureScript),
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Http { .. } => "http",
            CheckKind::Script(_) => "script",
        }
    }
}

/// A check's host or URL: literal text and other servers' private IPs (`{{server:ID}}`), which
/// the template fills in with `Fn::GetAtt` (never by splicing text).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CheckText(pub Vec<TextPart>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TextPart {
    Literal(String),
    /// The private IP of the server with this index (and id, for messages).
    ServerIp {
        server: usize,
        id: String,
    },
}

impl CheckText {
    /// The servers it names, in order of appearance.
    pub fn servers(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().filter_map(|p| match p {
            TextPart::ServerIp { server, .. } => Some(*server),
            TextPart::Literal(_) => None,
        })
    }
}

impl LaunchCheck {
    /// Servers whose private IP the check needs.
    pub fn servers(&self) -> Vec<usize> {
        match &self.kind {
            CheckKind::Tcp { host, .. } => host.servers().collect(),
            CheckKind::Http { url, .. } => url.servers().collect(),
            CheckKind::Script(_) => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConfigureScript {
    /// As written in the file, for messages.
    pub declared: String,
    pub path: PathBuf,
    pub kind: ScriptType,
    /// Shared by every server that runs the script.
    pub content: Arc<str>,
}

impl App {
    pub fn group_of(&self, server: &AppServer) -> &AppGroup {
        &self.groups[server.group]
    }

    pub fn server(&self, id: &str) -> Option<&AppServer> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// Servers in launch order: by wave, then group order, then the group's server order.
    pub fn servers_in_launch_order(&self) -> Vec<&AppServer> {
        let mut out = Vec::with_capacity(self.servers.len());
        for wave in self.graph.waves() {
            for g in wave {
                out.extend(self.groups[g].servers.iter().map(|&s| &self.servers[s]));
            }
        }
        out
    }

    /// `rehost-<app>-<mode>`: test and cutover stacks never touch each other.
    pub fn stack_name(&self, mode: Mode) -> String {
        format!("rehost-{}-{}", self.name, mode)
    }

    /// Worst-case minutes each group's health gate may take (its slowest server's timeout).
    pub fn gate_minutes(&self, mode: Mode) -> Vec<u64> {
        self.groups
            .iter()
            .map(|g| {
                g.servers
                    .iter()
                    .map(|&s| u64::from(self.servers[s].launch(mode).signal_timeout_minutes))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}
