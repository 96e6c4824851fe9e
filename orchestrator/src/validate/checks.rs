//! Checks of single values and blocks of the application file: header, tags, ranges, AWS id
//! syntax, server-only fields, unique private IPs. Each problem is reported at its node.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use rehost_replication::tags;

use crate::app::{AppServer, Mode};
use crate::diag::Diagnostics;
use crate::limits::{
    EC2_MAX_TAGS, FREQUENCY_HOURS, INSTANCE_TAGS, KEEP_RECENT_AMIS, MAX_APP_DESCRIPTION, MAX_DISKS,
    MAX_LAG_MINUTES, MAX_SECURITY_GROUPS, MAX_TAG_KEY, SIGNAL_TIMEOUT_MINUTES, SNAPSHOT_TAGS,
    TAG_VALUE, ami_tags,
};
use crate::model::{self, Application, LaunchSettings, ReplicationSettings, Spanned, TestSettings};
use crate::syntax::*;

pub(super) fn check_header(model: &Application, diags: &mut Diagnostics) {
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
        && d.value.chars().count() > MAX_APP_DESCRIPTION
    {
        diags.error(
            d.pos,
            format!("description is longer than {MAX_APP_DESCRIPTION} characters"),
        );
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

/// Each application tag follows EC2's and CloudFormation's rules: key 1 to 128 characters,
/// value 1 to 256, no control characters, no reserved prefix.
pub(super) fn check_tags(model: &Application, diags: &mut Diagnostics) -> Vec<(String, String)> {
    let Some(tags) = &model.tags else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in &tags.value.0 {
        let k = key.value.as_str();
        let lower = k.to_ascii_lowercase();
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            diags.error(
                key.pos,
                format!("tag key `{k}` must be 1 to {MAX_TAG_KEY} characters"),
            );
        } else if k.chars().any(char::is_control) {
            diags.error(
                key.pos,
                "tag key holds a control character; EC2 refuses them",
            );
        } else if lower.starts_with("aws:") {
            diags.error(
                key.pos,
                format!("tag key `{k}`: the `aws:` prefix is reserved by AWS"),
            );
        } else if lower.starts_with(tags::PREFIX) || k == tags::NAME {
            diags.error(
                key.pos,
                format!("tag key `{k}` is set by rehost on every resource; choose another key"),
            );
        }
        let v = &value.value;
        if !TAG_VALUE.contains(&v.chars().count()) {
            diags.error(
                value.pos,
                format!(
                    "tag `{k}`: the value must be {} to {} characters (the application's tags are also \
                     its stacks', and CloudFormation refuses an empty value)",
                    TAG_VALUE.start(),
                    TAG_VALUE.end()
                ),
            );
        } else if v.chars().any(char::is_control) {
            diags.error(
                value.pos,
                format!("tag `{k}`: the value holds a control character; EC2 refuses them"),
            );
        }
        out.push((key.value.clone(), value.value.clone()));
    }
    out
}

/// Every resource rehost tags carries the application's tags beside rehost's own, within EC2's
/// 50 per resource: instances and their volumes, snapshots, and each server's AMI (one tag more
/// per disk, and one for a KMS key). Reported at `tags:` for each kind that would exceed.
pub(super) fn check_tag_budget(
    model: &Application,
    servers: &[AppServer],
    diags: &mut Diagnostics,
) {
    let Some(tags) = &model.tags else {
        return;
    };
    let count = tags.value.0.len();
    let mut report = |what: String, rehost: usize| {
        let total = count + rehost;
        if total > EC2_MAX_TAGS {
            diags.error(
                tags.pos,
                format!(
                    "{count} application tags and rehost's {rehost} make {total} tags on {what}, {} over \
                     EC2's {EC2_MAX_TAGS} per resource: remove application tags",
                    total - EC2_MAX_TAGS
                ),
            );
        }
    };
    report("every instance and its volumes".into(), INSTANCE_TAGS);
    report("every snapshot".into(), SNAPSHOT_TAGS);
    let ami = |s: &AppServer| ami_tags(s.disks.len(), s.replication.kms_key_id.is_some());
    if let Some(worst) = servers.iter().max_by_key(|s| ami(s)) {
        report(
            format!(
                "the AMI of server `{}` ({} disks{})",
                worst.id,
                worst.disks.len(),
                if worst.replication.kms_key_id.is_some() {
                    ", a KMS key"
                } else {
                    ""
                }
            ),
            ami(worst),
        );
    }
}

pub(super) fn check_server_fields(server: &model::Server, diags: &mut Diagnostics) {
    if server.disks.value.is_empty() {
        diags.error(
            server.disks.pos,
            format!(
                "server `{}` needs at least one disk (the boot disk)",
                server.id.value
            ),
        );
    }
    if server.disks.value.len() > MAX_DISKS {
        diags.error(
            server.disks.pos,
            format!(
                "a server can have at most {MAX_DISKS} disks (one root device and /dev/sdb to /dev/sdz)"
            ),
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

/// Which kind of block a setting is written in (some fields belong on servers only).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockLevel {
    Defaults,
    Group,
    Server,
}

pub(super) fn check_replication_block(r: &ReplicationSettings, diags: &mut Diagnostics) {
    in_range(
        r.frequency_hours.as_ref(),
        "frequencyHours",
        &FREQUENCY_HOURS,
        diags,
    );
    if let Some(f) = &r.frequency_hours
        && r.run_once.as_ref().is_some_and(|o| o.value)
    {
        diags.error(
            f.pos,
            "set either frequencyHours or runOnce: true, not both",
        );
    }
    if let Some(k) = &r.keep_recent_amis
        && !KEEP_RECENT_AMIS.contains(&k.value)
    {
        diags.error(
            k.pos,
            format!(
                "keepRecentAmis must be 0 (keep all) or 1 to {}, not {}",
                KEEP_RECENT_AMIS.end(),
                k.value
            ),
        );
    }
    valid(r.kms_key_id.as_ref(), check_kms_key, diags);
    in_range(
        r.max_lag_minutes.as_ref(),
        "maxLagMinutes",
        &MAX_LAG_MINUTES,
        diags,
    );
}

pub(super) fn check_launch_block(l: &LaunchSettings, level: BlockLevel, diags: &mut Diagnostics) {
    valid(l.instance_type.as_ref(), check_instance_type, diags);
    valid(l.vpc.as_ref(), |v| check_aws_id(v, "vpc"), diags);
    check_network(l.subnet.as_ref(), l.security_groups.as_ref(), diags);
    valid(l.key_name.as_ref(), check_key_name, diags);
    valid(
        l.iam_instance_profile.as_ref(),
        check_instance_profile,
        diags,
    );
    in_range(
        l.signal_timeout_minutes.as_ref(),
        "signalTimeoutMinutes",
        &SIGNAL_TIMEOUT_MINUTES,
        diags,
    );
    server_only(
        l.private_ip_address.as_ref(),
        "privateIpAddress",
        level,
        diags,
    );
    server_only(l.logical_id.as_ref(), "logicalId", level, diags);
    valid(l.private_ip_address.as_ref(), check_private_ipv4, diags);
    valid(l.logical_id.as_ref(), check_logical_id, diags);
    if let Some(test) = &l.test {
        check_test_block(&test.value, level, diags);
    }
}

fn check_test_block(t: &TestSettings, level: BlockLevel, diags: &mut Diagnostics) {
    valid(t.vpc.as_ref(), |v| check_aws_id(v, "vpc"), diags);
    check_network(t.subnet.as_ref(), t.security_groups.as_ref(), diags);
    valid(t.instance_type.as_ref(), check_instance_type, diags);
    server_only(
        t.private_ip_address.as_ref(),
        "test.privateIpAddress",
        level,
        diags,
    );
    valid(t.private_ip_address.as_ref(), check_private_ipv4, diags);
}

fn check_network(
    subnet: Option<&Spanned<String>>,
    groups: Option<&Spanned<Vec<Spanned<model::SecurityGroupId>>>>,
    diags: &mut Diagnostics,
) {
    valid(subnet, |s| check_aws_id(s, "subnet"), diags);
    if let Some(list) = groups {
        if list.value.is_empty() {
            diags.error(
                list.pos,
                "securityGroups must list at least one security group",
            );
        }
        if list.value.len() > MAX_SECURITY_GROUPS {
            diags.error(
                list.pos,
                format!(
                    "{} security groups: a network interface takes at most {MAX_SECURITY_GROUPS}",
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

/// A value `check` refuses is reported at its node, with the reason `check` gives.
#[track_caller]
fn valid<T>(
    value: Option<&Spanned<String>>,
    check: impl FnOnce(&str) -> Result<T, String>,
    diags: &mut Diagnostics,
) {
    if let Some(v) = value
        && let Err(e) = check(&v.value)
    {
        diags.error(v.pos, e);
    }
}

/// A number outside its range is reported at its node.
#[track_caller]
fn in_range(
    value: Option<&Spanned<i64>>,
    field: &str,
    range: &RangeInclusive<i64>,
    diags: &mut Diagnostics,
) {
    if let Some(v) = value
        && !range.contains(&v.value)
    {
        diags.error(
            v.pos,
            format!(
                "{field} must be between {} and {}, not {}",
                range.start(),
                range.end(),
                v.value
            ),
        );
    }
}

// Each caller's problems are a kind of their own (`Diagnostics` caps repeats per kind).
#[track_caller]
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

pub(super) fn check_unique_private_ips(model: &Application, diags: &mut Diagnostics) {
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
