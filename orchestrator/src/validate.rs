//! Semantic validation and settings resolution: everything the YAML's shape cannot say, each
//! problem reported at the node that causes it, all of them in one pass.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::app::*;
use crate::diag::{Diagnostics, suggestion};
use crate::graph::LaunchGraph;
use crate::model::{self, Application, LaunchSettings, ReplicationSettings, Spanned, TestSettings};
use crate::syntax::*;
use crate::userdata;
use crate::yaml::Pos;

/// EC2 allows 50 tags per resource; rehost puts 5 of its own on every instance.
pub const MAX_APP_TAGS: usize = 45;
pub const DEFAULT_FREQUENCY_HOURS: u8 = 12;
pub const DEFAULT_SIGNAL_TIMEOUT_MINUTES: u32 = 30;
/// Configure scripts are read into memory; anything this large cannot fit in user data anyway.
const MAX_SCRIPT_READ: u64 = 1024 * 1024;

/// Checks the decoded file and resolves it into an `App`, or reports why it cannot.
pub fn resolve(model: &Application, file: &Path, diags: &mut Diagnostics) -> Option<App> {
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    check_header(model, diags);
    let tags = check_tags(model, diags);

    let defaults = model.defaults.clone().unwrap_or_default();
    if let Some(r) = &defaults.replication {
        check_replication_block(r, diags);
    }
    if let Some(l) = &defaults.launch {
        check_launch_block(l, BlockLevel::Defaults, diags);
    }

    let server_index = index_servers(model, diags);
    let (memberships, depends_on) = index_groups(model, &server_index, diags);

    for (i, server) in model.servers.value.iter().enumerate() {
        if memberships[i].is_none() {
            diags.error(
                server.id.pos,
                format!(
                    "server `{}` is in no group; list it in one group's `servers`",
                    server.id.value
                ),
            );
        }
    }

    let graph = LaunchGraph::new(&depends_on);
    let names: Vec<&str> = model
        .groups
        .value
        .iter()
        .map(|g| g.name.value.as_str())
        .collect();
    for cycle in graph.cycles() {
        let path: Vec<&str> = cycle.iter().map(|&g| names[g]).collect();
        let first = &model.groups.value[cycle[0]];
        let pos = first.depends_on.as_ref().map_or(first.name.pos, |d| d.pos);
        diags.error(pos, format!("dependency cycle: {}", path.join(" -> ")));
    }

    let mut scripts = ScriptCache::default();
    let mut servers = Vec::with_capacity(model.servers.value.len());
    for (i, server) in model.servers.value.iter().enumerate() {
        let group = memberships[i].unwrap_or(0);
        let group_model = model.groups.value.get(group);
        servers.push(resolve_server(
            i,
            server,
            group,
            group_model,
            &defaults,
            &base_dir,
            &mut scripts,
            diags,
        ));
    }

    check_unique_private_ips(model, diags);

    if diags.has_errors() {
        return None;
    }
    let groups = model
        .groups
        .value
        .iter()
        .enumerate()
        .map(|(g, group)| AppGroup {
            name: group.name.value.clone(),
            description: group.description.as_ref().map(|d| d.value.clone()),
            servers: group
                .servers
                .value
                .iter()
                .filter_map(|s| server_index.get(s.value.as_str()).copied())
                .collect(),
            depends_on: graph.dependencies(g),
            logical_stem: pascal_case(&group.name.value),
            pos: group.name.pos,
        })
        .collect();
    Some(App {
        name: model.name.value.clone(),
        description: model.description.as_ref().map(|d| d.value.clone()),
        tags,
        groups,
        servers,
        graph,
        file: file.to_path_buf(),
        servers_pos: model.servers.pos,
    })
}

fn check_header(model: &Application, diags: &mut Diagnostics) {
    if model.api_version.value != model::API_VERSION {
        diags.error(
            model.api_version.pos,
            format!(
                "apiVersion `{}` is not supported; use `{}`",
                model.api_version.value,
                model::API_VERSION
            ),
        );
    }
    if model.kind.value != model::KIND {
        diags.error(
            model.kind.pos,
            format!(
                "kind `{}` is not supported; use `{}`",
                model.kind.value,
                model::KIND
            ),
        );
    }
    if let Err(e) = check_app_name(&model.name.value) {
        diags.error(model.name.pos, e);
    }
    if let Some(d) = &model.description
        && d.value.chars().count() > 1000
    {
        diags.error(d.pos, "description is longer than 1000 characters");
    }
    if model.servers.value.is_empty() {
        diags.error(
            model.servers.pos,
            "an application needs at least one server",
        );
    }
    if model.groups.value.is_empty() {
        diags.error(model.groups.pos, "an application needs at least one group");
    }
}

fn check_tags(model: &Application, diags: &mut Diagnostics) -> Vec<(String, String)> {
    let Some(tags) = &model.tags else {
        return Vec::new();
    };
    if tags.value.0.len() > MAX_APP_TAGS {
        diags.error(
            tags.pos,
            format!(
                "{} tags: at most {MAX_APP_TAGS} application tags fit, because every instance also carries \
                 rehost's 5 (Name, rehost:app, rehost:group, rehost:server, rehost:mode) within EC2's 50",
                tags.value.0.len()
            ),
        );
    }
    let mut out = Vec::new();
    for (key, value) in &tags.value.0 {
        let k = key.value.as_str();
        let lower = k.to_ascii_lowercase();
        if k.is_empty() || k.chars().count() > 128 {
            diags.error(
                key.pos,
                format!("tag key `{k}` must be 1 to 128 characters"),
            );
        } else if lower.starts_with("aws:") {
            diags.error(
                key.pos,
                format!("tag key `{k}`: the `aws:` prefix is reserved by AWS"),
            );
        } else if lower.starts_with("rehost:") || k == "Name" {
            diags.error(
                key.pos,
                format!("tag key `{k}` is set by rehost on every resource; choose another key"),
            );
        }
        if value.value.chars().count() > 256 {
            diags.error(
                value.pos,
                format!("tag `{k}`: value is longer than 256 characters"),
            );
        }
        out.push((key.value.clone(), value.value.clone()));
    }
    out
}

/// Map server id -> index, reporting bad and duplicate ids.
fn index_servers<'a>(model: &'a Application, diags: &mut Diagnostics) -> HashMap<&'a str, usize> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, server) in model.servers.value.iter().enumerate() {
        if let Err(e) = check_id(&server.id.value) {
            diags.error(server.id.pos, format!("server id {e}"));
        }
        if let Some(&first) = index.get(server.id.value.as_str()) {
            diags.error(
                server.id.pos,
                format!(
                    "duplicate server id `{}` (first defined at line {})",
                    server.id.value, model.servers.value[first].id.pos.line
                ),
            );
            continue;
        }
        index.insert(&server.id.value, i);
        check_server_fields(server, diags);
    }
    index
}

fn check_server_fields(server: &model::Server, diags: &mut Diagnostics) {
    if server.disks.value.is_empty() {
        diags.error(
            server.disks.pos,
            format!(
                "server `{}` needs at least one disk (the boot disk)",
                server.id.value
            ),
        );
    }
    if server.disks.value.len() > 26 {
        diags.error(
            server.disks.pos,
            "a server can have at most 26 disks (one root device and /dev/sdb to /dev/sdz)",
        );
    }
    for disk in &server.disks.value {
        if disk.source.value.trim().is_empty() {
            diags.error(
                disk.source.pos,
                "disk source must be a path to an image file or a /dev/ block device",
            );
        }
    }
    if let Some(r) = &server.replication {
        check_replication_block(r, diags);
    }
    if let Some(l) = &server.launch {
        check_launch_block(l, BlockLevel::Server, diags);
    }
}

/// Returns each server's group (by index) and each group's dependencies.
fn index_groups(
    model: &Application,
    servers: &HashMap<&str, usize>,
    diags: &mut Diagnostics,
) -> (Vec<Option<usize>>, Vec<Vec<usize>>) {
    let groups = &model.groups.value;
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        if let Err(e) = check_id(&group.name.value) {
            diags.error(group.name.pos, format!("group name {e}"));
        }
        if let Some(&first) = by_name.get(group.name.value.as_str()) {
            diags.error(
                group.name.pos,
                format!(
                    "duplicate group name `{}` (first defined at line {})",
                    group.name.value, groups[first].name.pos.line
                ),
            );
        } else {
            by_name.insert(&group.name.value, g);
        }
        if let Some(r) = &group.replication {
            check_replication_block(r, diags);
        }
        if let Some(l) = &group.launch {
            check_launch_block(l, BlockLevel::Group, diags);
        }
    }

    let server_ids: Vec<&str> = model
        .servers
        .value
        .iter()
        .map(|s| s.id.value.as_str())
        .collect();
    let mut membership: Vec<Option<usize>> = vec![None; model.servers.value.len()];
    let mut member_pos: Vec<Pos> = vec![Pos::default(); model.servers.value.len()];
    for (g, group) in groups.iter().enumerate() {
        if group.servers.value.is_empty() {
            diags.error(
                group.servers.pos,
                format!("group `{}` has no servers", group.name.value),
            );
        }
        for reference in &group.servers.value {
            if model.unreadable.server_ids.contains(&reference.value) {
                continue;
            }
            let Some(&s) = servers.get(reference.value.as_str()) else {
                diags.error(
                    reference.pos,
                    format!(
                        "group `{}` lists unknown server `{}`{}",
                        group.name.value,
                        reference.value,
                        suggestion(&reference.value, server_ids.iter().copied())
                    ),
                );
                continue;
            };
            match membership[s] {
                Some(other) if other == g => diags.error(
                    reference.pos,
                    format!("server `{}` is listed twice in group `{}`", reference.value, group.name.value),
                ),
                Some(other) => diags.error(
                    reference.pos,
                    format!(
                        "server `{}` is already in group `{}` (line {}); a server belongs to exactly one group",
                        reference.value, groups[other].name.value, member_pos[s].line
                    ),
                ),
                None => {
                    membership[s] = Some(g);
                    member_pos[s] = reference.pos;
                }
            }
        }
    }

    let group_names: Vec<&str> = groups.iter().map(|g| g.name.value.as_str()).collect();
    let mut depends_on: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (g, group) in groups.iter().enumerate() {
        let Some(deps) = &group.depends_on else {
            continue;
        };
        for dep in &deps.value {
            if model.unreadable.group_names.contains(&dep.value) {
                continue;
            }
            match by_name.get(dep.value.as_str()) {
                None => diags.error(
                    dep.pos,
                    format!(
                        "group `{}` depends on unknown group `{}`{}",
                        group.name.value,
                        dep.value,
                        suggestion(&dep.value, group_names.iter().copied())
                    ),
                ),
                Some(&d) if d == g => {
                    diags.error(
                        dep.pos,
                        format!("dependency cycle: {} -> {}", dep.value, dep.value),
                    );
                }
                Some(&d) if depends_on[g].contains(&d) => {
                    diags.error(
                        dep.pos,
                        format!(
                            "group `{}` lists dependency `{}` twice",
                            group.name.value, dep.value
                        ),
                    );
                }
                Some(&d) => depends_on[g].push(d),
            }
        }
    }

    // launchOrder n: depend on every group with the largest launchOrder below n.
    let orders: Vec<Option<i64>> = groups
        .iter()
        .map(|g| {
            g.launch_order.as_ref().and_then(|o| {
                if o.value < 0 {
                    diags.error(
                        o.pos,
                        format!("launchOrder must be 0 or more, not {}", o.value),
                    );
                    None
                } else {
                    Some(o.value)
                }
            })
        })
        .collect();
    for (g, order) in orders.iter().enumerate() {
        let Some(n) = *order else { continue };
        let below = orders.iter().flatten().copied().filter(|&o| o < n).max();
        if let Some(prev) = below {
            for (d, o) in orders.iter().enumerate() {
                if *o == Some(prev) && !depends_on[g].contains(&d) {
                    depends_on[g].push(d);
                }
            }
        }
    }
    for deps in &mut depends_on {
        deps.sort_unstable();
    }
    (membership, depends_on)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockLevel {
    Defaults,
    Group,
    Server,
}

fn check_replication_block(r: &ReplicationSettings, diags: &mut Diagnostics) {
    if let Some(f) = &r.frequency_hours {
        if !(1..=24).contains(&f.value) {
            diags.error(
                f.pos,
                format!("frequencyHours must be between 1 and 24, not {}", f.value),
            );
        }
        if r.run_once.as_ref().is_some_and(|o| o.value) {
            diags.error(
                f.pos,
                "set either frequencyHours or runOnce: true, not both",
            );
        }
    }
    if let Some(k) = &r.keep_recent_amis
        && !(0..=270).contains(&k.value)
    {
        diags.error(
            k.pos,
            format!(
                "keepRecentAmis must be 0 (keep all) or 1 to 270, not {}",
                k.value
            ),
        );
    }
    if let Some(k) = &r.kms_key_id
        && let Err(e) = check_kms_key(&k.value)
    {
        diags.error(k.pos, e);
    }
}

fn check_launch_block(l: &LaunchSettings, level: BlockLevel, diags: &mut Diagnostics) {
    if let Some(t) = &l.instance_type
        && let Err(e) = check_instance_type(&t.value)
    {
        diags.error(t.pos, e);
    }
    if let Some(v) = &l.vpc
        && let Err(e) = check_aws_id(&v.value, "vpc")
    {
        diags.error(v.pos, e);
    }
    check_network(l.subnet.as_ref(), l.security_groups.as_ref(), diags);
    if let Some(k) = &l.key_name
        && let Err(e) = check_key_name(&k.value)
    {
        diags.error(k.pos, e);
    }
    if let Some(p) = &l.iam_instance_profile
        && let Err(e) = check_instance_profile(&p.value)
    {
        diags.error(p.pos, e);
    }
    if let Some(t) = &l.signal_timeout_minutes
        && !(1..=720).contains(&t.value)
    {
        diags.error(
            t.pos,
            format!(
                "signalTimeoutMinutes must be between 1 and 720, not {}",
                t.value
            ),
        );
    }
    server_only(
        l.private_ip_address.as_ref(),
        "privateIpAddress",
        level,
        diags,
    );
    server_only(l.logical_id.as_ref(), "logicalId", level, diags);
    if let Some(ip) = &l.private_ip_address
        && let Err(e) = check_private_ipv4(&ip.value)
    {
        diags.error(ip.pos, e);
    }
    if let Some(id) = &l.logical_id
        && let Err(e) = check_logical_id(&id.value)
    {
        diags.error(id.pos, e);
    }
    if let Some(test) = &l.test {
        check_test_block(&test.value, level, diags);
    }
}

fn check_test_block(t: &TestSettings, level: BlockLevel, diags: &mut Diagnostics) {
    if let Some(v) = &t.vpc
        && let Err(e) = check_aws_id(&v.value, "vpc")
    {
        diags.error(v.pos, e);
    }
    check_network(t.subnet.as_ref(), t.security_groups.as_ref(), diags);
    if let Some(it) = &t.instance_type
        && let Err(e) = check_instance_type(&it.value)
    {
        diags.error(it.pos, e);
    }
    server_only(
        t.private_ip_address.as_ref(),
        "test.privateIpAddress",
        level,
        diags,
    );
    if let Some(ip) = &t.private_ip_address
        && let Err(e) = check_private_ipv4(&ip.value)
    {
        diags.error(ip.pos, e);
    }
}

fn check_network(
    subnet: Option<&Spanned<String>>,
    groups: Option<&Spanned<Vec<Spanned<model::SecurityGroupId>>>>,
    diags: &mut Diagnostics,
) {
    if let Some(s) = subnet
        && let Err(e) = check_aws_id(&s.value, "subnet")
    {
        diags.error(s.pos, e);
    }
    if let Some(list) = groups {
        if list.value.is_empty() {
            diags.error(
                list.pos,
                "securityGroups must list at least one security group",
            );
        }
        if list.value.len() > 16 {
            diags.error(
                list.pos,
                format!(
                    "{} security groups: a network interface takes at most 16",
                    list.value.len()
                ),
            );
        }
        let mut seen: Vec<&str> = Vec::new();
        for sg in &list.value {
            if let Err(e) = check_aws_id(&sg.value.0, "sg") {
                diags.error(sg.pos, e);
            }
            if seen.contains(&sg.value.0.as_str()) {
                diags.error(
                    sg.pos,
                    format!("security group `{}` is listed twice", sg.value.0),
                );
            }
            seen.push(&sg.value.0);
        }
    }
}

fn server_only(
    value: Option<&Spanned<String>>,
    field: &str,
    level: BlockLevel,
    diags: &mut Diagnostics,
) {
    if let Some(v) = value
        && level != BlockLevel::Server
    {
        diags.error(
            v.pos,
            format!("{field} can only be set on a server: every instance needs its own"),
        );
    }
}

/// The blocks that apply to one server, most specific first.
struct Layers<'a> {
    levels: [(Level, Option<&'a LaunchSettings>); 3],
    replication: [(Level, Option<&'a ReplicationSettings>); 3],
}

impl<'a> Layers<'a> {
    fn launch<T>(
        &self,
        get: impl Fn(&'a LaunchSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<(&'a Spanned<T>, Level)> {
        self.levels
            .iter()
            .find_map(|(level, block)| block.and_then(&get).map(|v| (v, *level)))
    }

    fn test<T>(
        &self,
        get: impl Fn(&'a TestSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<(&'a Spanned<T>, Level)> {
        self.levels.iter().find_map(|(level, block)| {
            block
                .and_then(|b| b.test.as_ref())
                .and_then(|t| get(&t.value))
                .map(|v| (v, *level))
        })
    }

    fn replication<T>(
        &self,
        get: impl Fn(&'a ReplicationSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<&'a Spanned<T>> {
        self.replication
            .iter()
            .find_map(|(_, block)| block.and_then(&get))
    }
}

fn setting<T: Clone, U>(
    found: Option<(&Spanned<T>, Level)>,
    test: bool,
    map: impl Fn(&T) -> U,
) -> Option<Setting<U>> {
    found.map(|(v, level)| Setting {
        value: map(&v.value),
        origin: Origin { level, test },
    })
}

#[allow(clippy::too_many_arguments)]
fn resolve_server(
    index: usize,
    server: &model::Server,
    group: usize,
    group_model: Option<&model::Group>,
    defaults: &model::Settings,
    base_dir: &Path,
    scripts: &mut ScriptCache,
    diags: &mut Diagnostics,
) -> AppServer {
    let layers = Layers {
        levels: [
            (Level::Server(index), server.launch.as_ref()),
            (
                Level::Group(group),
                group_model.and_then(|g| g.launch.as_ref()),
            ),
            (Level::Defaults, defaults.launch.as_ref()),
        ],
        replication: [
            (Level::Server(index), server.replication.as_ref()),
            (
                Level::Group(group),
                group_model.and_then(|g| g.replication.as_ref()),
            ),
            (Level::Defaults, defaults.replication.as_ref()),
        ],
    };
    let id = &server.id.value;

    let replication = resolve_replication(&layers, diags);

    let instance_type = layers.launch(|l| l.instance_type.as_ref());
    if instance_type.is_none() {
        diags.error(
            server.id.pos,
            format!("server `{id}` has no instance type: set launch.instanceType in defaults, its group or the server"),
        );
    }
    let signal_timeout_minutes = layers
        .launch(|l| l.signal_timeout_minutes.as_ref())
        .map_or(DEFAULT_SIGNAL_TIMEOUT_MINUTES, |(v, _)| {
            u32::try_from(v.value.clamp(1, 720)).unwrap_or(720)
        });
    let script = resolve_script(server, &layers, base_dir, scripts, diags);

    let cutover = Launch {
        instance_type: instance_type
            .map(|(v, _)| v.value.clone())
            .unwrap_or_default(),
        vpc: layers
            .launch(|l| l.vpc.as_ref())
            .map(|(v, _)| v.value.clone()),
        subnet: setting(layers.launch(|l| l.subnet.as_ref()), false, Clone::clone),
        security_groups: setting(layers.launch(|l| l.security_groups.as_ref()), false, |v| {
            sg_ids(v)
        }),
        key_name: setting(layers.launch(|l| l.key_name.as_ref()), false, Clone::clone),
        iam_instance_profile: setting(
            layers.launch(|l| l.iam_instance_profile.as_ref()),
            false,
            Clone::clone,
        ),
        associate_public_ip_address: layers
            .launch(|l| l.associate_public_ip_address.as_ref())
            .map(|(v, _)| v.value),
        signal_timeout_minutes,
        private_ip_address: server
            .launch
            .as_ref()
            .and_then(|l| l.private_ip_address.as_ref())
            .map(|v| v.value.clone()),
        configure_script: script,
    };
    let test_subnet = setting(layers.test(|t| t.subnet.as_ref()), true, Clone::clone);
    let test = Launch {
        // A test subnet may sit in an isolated VPC: check against test.vpc, or not at all.
        vpc: match layers.test(|t| t.vpc.as_ref()) {
            Some((v, _)) => Some(v.value.clone()),
            None if test_subnet.is_some() => None,
            None => cutover.vpc.clone(),
        },
        instance_type: layers
            .test(|t| t.instance_type.as_ref())
            .map_or_else(|| cutover.instance_type.clone(), |(v, _)| v.value.clone()),
        subnet: test_subnet.or_else(|| cutover.subnet.clone()),
        security_groups: setting(layers.test(|t| t.security_groups.as_ref()), true, |v| {
            sg_ids(v)
        })
        .or_else(|| cutover.security_groups.clone()),
        associate_public_ip_address: layers
            .test(|t| t.associate_public_ip_address.as_ref())
            .map(|(v, _)| v.value)
            .or(cutover.associate_public_ip_address),
        // Test instances run beside the cutover ones, so they never reuse the cutover address.
        private_ip_address: server
            .launch
            .as_ref()
            .and_then(|l| l.test.as_ref())
            .and_then(|t| t.value.private_ip_address.as_ref())
            .map(|v| v.value.clone()),
        ..cutover.clone()
    };

    let (logical_id, logical_id_pos) = server
        .launch
        .as_ref()
        .and_then(|l| l.logical_id.as_ref())
        .map_or_else(
            || (pascal_case(id), server.id.pos),
            |l| (l.value.clone(), l.pos),
        );

    let disks = server
        .disks
        .value
        .iter()
        .map(|d| {
            let p = PathBuf::from(&d.source.value);
            if p.is_absolute() { p } else { base_dir.join(p) }
        })
        .collect();

    AppServer {
        id: id.clone(),
        description: server.description.as_ref().map(|d| d.value.clone()),
        group,
        os: server.os.value,
        architecture: server
            .architecture
            .as_ref()
            .map_or(Architecture::X86_64, |a| a.value),
        boot_mode: server.boot_mode.as_ref().map(|b| b.value),
        ena_support: server.ena_support.as_ref().is_none_or(|e| e.value),
        logical_id,
        logical_id_pos,
        disks,
        replication,
        cutover,
        test,
    }
}

fn sg_ids(list: &[Spanned<model::SecurityGroupId>]) -> Vec<String> {
    list.iter().map(|s| s.value.0.clone()).collect()
}

fn resolve_replication(layers: &Layers<'_>, diags: &mut Diagnostics) -> Replication {
    // frequencyHours and runOnce are one choice: the most specific block that makes it wins.
    let mut frequency = None;
    for (_, block) in &layers.replication {
        let Some(block) = block else { continue };
        if block.run_once.as_ref().is_some_and(|o| o.value) {
            frequency = Some(Frequency::Once);
            break;
        }
        if let Some(f) = &block.frequency_hours {
            frequency = Some(Frequency::Hours(
                u8::try_from(f.value.clamp(1, 24)).unwrap_or(24),
            ));
            break;
        }
    }
    let encrypted = layers.replication(|r| r.encrypted.as_ref());
    let kms = layers.replication(|r| r.kms_key_id.as_ref());
    if let Some(k) = kms
        && !encrypted.is_some_and(|e| e.value)
    {
        diags.error(k.pos, "kmsKeyId is set but encrypted is not true: add `encrypted: true` (in this block or an outer one)");
    }
    Replication {
        frequency: frequency.unwrap_or(Frequency::Hours(DEFAULT_FREQUENCY_HOURS)),
        seed_time: layers
            .replication(|r| r.seed_time.as_ref())
            .map(|t| t.value.0),
        license_type: layers
            .replication(|r| r.license_type.as_ref())
            .map_or(LicenseType::Auto, |l| l.value),
        keep_recent_amis: layers
            .replication(|r| r.keep_recent_amis.as_ref())
            .map_or(0, |k| u32::try_from(k.value.clamp(0, 270)).unwrap_or(0)),
        encrypted: encrypted.is_some_and(|e| e.value),
        kms_key_id: kms.map(|k| k.value.clone()),
    }
}

#[derive(Default)]
struct ScriptCache {
    read: HashMap<PathBuf, Result<String, String>>,
}

impl ScriptCache {
    fn load(&mut self, path: &Path) -> Result<String, String> {
        self.read
            .entry(path.to_path_buf())
            .or_insert_with(|| read_script(path))
            .clone()
    }
}

fn read_script(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("configure script `{}` does not exist", path.display())
        }
        _ => format!("configure script `{}` cannot be read: {e}", path.display()),
    })?;
    if !meta.is_file() {
        return Err(format!(
            "configure script `{}` is not a file",
            path.display()
        ));
    }
    if meta.len() > MAX_SCRIPT_READ {
        return Err(format!(
            "configure script `{}` is {} bytes; EC2 user data holds at most {} bytes",
            path.display(),
            meta.len(),
            userdata::USER_DATA_LIMIT
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("configure script `{}` cannot be read: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("configure script `{}` is not UTF-8 text", path.display()))?;
    if text.contains('\0') {
        return Err(format!(
            "configure script `{}` contains NUL bytes; it must be text",
            path.display()
        ));
    }
    Ok(text)
}

fn resolve_script(
    server: &model::Server,
    layers: &Layers<'_>,
    base_dir: &Path,
    scripts: &mut ScriptCache,
    diags: &mut Diagnostics,
) -> Option<ConfigureScript> {
    let (declared, _) = layers.launch(|l| l.configure_script.as_ref())?;
    let declared_type = layers
        .launch(|l| l.configure_script_type.as_ref())
        .map(|(t, _)| t);
    let os = server.os.value;
    let kind = declared_type.map_or(
        match os {
            Os::Windows => ScriptType::PowerShell,
            Os::Linux => ScriptType::Shell,
        },
        |t| t.value,
    );
    let type_pos = declared_type.map_or(declared.pos, |t| t.pos);
    match (os, kind) {
        (Os::Linux, ScriptType::PowerShell) => diags.error(
            type_pos,
            format!(
                "server `{}` runs linux: a POWERSHELL_SCRIPT cannot run there; use SHELL_SCRIPT",
                server.id.value
            ),
        ),
        (Os::Windows, ScriptType::Shell) => diags.error(
            type_pos,
            format!(
                "server `{}` runs windows: a SHELL_SCRIPT cannot run there; use POWERSHELL_SCRIPT",
                server.id.value
            ),
        ),
        _ => {}
    }
    let lower = declared.value.to_ascii_lowercase();
    let looks_like = if lower.ends_with(".ps1") {
        Some(ScriptType::PowerShell)
    } else if lower.ends_with(".sh") || lower.ends_with(".bash") {
        Some(ScriptType::Shell)
    } else {
        None
    };
    if let Some(ext_kind) = looks_like
        && ext_kind != kind
    {
        let name = |k: ScriptType| match k {
            ScriptType::PowerShell => "POWERSHELL_SCRIPT",
            ScriptType::Shell => "SHELL_SCRIPT",
        };
        diags.error(
                declared.pos,
                format!(
                    "`{}` looks like a {} but runs as {} on server `{}`; set configureScriptType or fix the file",
                    declared.value,
                    name(ext_kind),
                    name(kind),
                    server.id.value
                ),
            );
    }
    let path = {
        let p = PathBuf::from(&declared.value);
        if p.is_absolute() { p } else { base_dir.join(p) }
    };
    let content = match scripts.load(&path) {
        Ok(c) => c,
        Err(e) => {
            diags.error(declared.pos, e);
            return None;
        }
    };
    let script = ConfigureScript {
        declared: declared.value.clone(),
        path,
        kind,
        content,
    };
    let size = userdata::wrapped_size(&script, &server.id.value);
    if size > userdata::SCRIPT_BUDGET {
        diags.error(
            declared.pos,
            format!(
                "configure script `{}` is {size} bytes once wrapped for server `{}`; EC2 user data holds {} bytes \
                 and {} of them are kept for the launch gate's signal URL",
                declared.value,
                server.id.value,
                userdata::USER_DATA_LIMIT,
                userdata::URL_RESERVE
            ),
        );
    }
    Some(script)
}

fn check_unique_private_ips(model: &Application, diags: &mut Diagnostics) {
    for (mode, pick) in [
        (
            Mode::Cutover,
            (|l: &LaunchSettings| l.private_ip_address.as_ref())
                as fn(&LaunchSettings) -> Option<&Spanned<String>>,
        ),
        (Mode::Test, |l: &LaunchSettings| {
            l.test
                .as_ref()
                .and_then(|t| t.value.private_ip_address.as_ref())
        }),
    ] {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for server in &model.servers.value {
            let Some(ip) = server.launch.as_ref().and_then(pick) else {
                continue;
            };
            if let Some(other) = seen.insert(&ip.value, &server.id.value) {
                diags.error(
                    ip.pos,
                    format!(
                        "private IP {} is also given to server `{other}` ({mode} mode)",
                        ip.value
                    ),
                );
            }
        }
    }
}
