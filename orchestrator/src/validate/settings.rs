//! Settings resolution: each server's launch and replication settings merged field by field
//! (the server's block, then its group's, then `defaults`), remembering which block each
//! account-specific value came from (portable templates name their parameters after it).

use std::path::Path;

use crate::app::*;
use crate::diag::Diagnostics;
use crate::limits::{
    self, DEFAULT_FREQUENCY_HOURS, DEFAULT_MAX_LAG_MINUTES, DEFAULT_SIGNAL_TIMEOUT_MINUTES,
    FREQUENCY_HOURS, KEEP_RECENT_AMIS, MAX_LAG_MINUTES, SIGNAL_TIMEOUT_MINUTES,
};
use crate::model::{self, Spanned};
use crate::syntax::pascal_case;

use super::disks::resolve_disks;
use super::layers::{Layers, setting};
use super::post_launch::{CheckInputs, Topology, resolve_checks};
use super::scripts::{ScriptCache, ScriptFiles, check_user_data_size, resolve_script};

/// What every server's resolution reads besides its own entry.
pub(super) struct Inputs<'a> {
    pub defaults: &'a model::Settings,
    /// The application file's directory: relative paths are relative to it.
    pub base_dir: &'a Path,
    pub scripts: &'a ScriptFiles,
    /// Shared by every server's script check.
    pub script_cache: ScriptCache,
    /// Servers and groups, for checks that name other servers.
    pub topology: Topology<'a>,
}

/// One server's settings, merged; problems found while merging go to `diags`.
pub(super) fn resolve_server(
    index: usize,
    server: &model::Server,
    group: usize,
    group_model: Option<&model::Group>,
    inputs: &Inputs<'_>,
    diags: &mut Diagnostics,
) -> AppServer {
    let layers = Layers::new(index, server, group, group_model, inputs.defaults);
    let id = &server.id.value;

    let replication = resolve_replication(&layers, diags);

    let instance_type = layers.launch(|l| l.instance_type.as_ref());
    if instance_type.is_none() {
        diags.error(
            server.id.pos,
            format!("server `{id}` has no instance type: set launch.instanceType in defaults, its group or the server"),
        );
    }
    let signal_timeout_minutes = layers.launch(|l| l.signal_timeout_minutes.as_ref()).map_or(
        DEFAULT_SIGNAL_TIMEOUT_MINUTES,
        |(v, _)| {
            limits::clamp(
                v.value,
                &SIGNAL_TIMEOUT_MINUTES,
                DEFAULT_SIGNAL_TIMEOUT_MINUTES,
            )
        },
    );
    let script = resolve_script(
        server,
        &layers,
        inputs.base_dir,
        inputs.scripts,
        &inputs.script_cache,
        diags,
    );
    let check_inputs = CheckInputs {
        base_dir: inputs.base_dir,
        scripts: inputs.scripts,
        cache: &inputs.script_cache,
        topology: &inputs.topology,
    };
    let member_of = inputs.topology.memberships.get(index).copied().flatten();
    let (checks, checks_pos) = resolve_checks(server, member_of, &layers, &check_inputs, diags);
    let checks_seconds: u64 = checks.iter().map(|c| u64::from(c.timeout_seconds)).sum();
    if let Some(pos) = checks_pos
        && checks_seconds > u64::from(signal_timeout_minutes) * 60
    {
        diags.warning(
            pos,
            format!(
                "the checks of server `{id}` may take up to {checks_seconds} s, more than its \
                 signalTimeoutMinutes ({signal_timeout_minutes} min, configure script included): \
                 its gate may time out before they fail"
            ),
        );
    }
    let script_pos = layers
        .launch(|l| l.configure_script.as_ref())
        .map(|(d, _)| d.pos);
    if let Some(pos) = script_pos.or(checks_pos) {
        check_user_data_size(
            server,
            server.os.value,
            script.as_ref(),
            &checks,
            checks_pos,
            pos,
            &inputs.script_cache,
            diags,
        );
    }

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
        checks,
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

    let disks = resolve_disks(server, inputs.base_dir, diags);

    AppServer {
        id: id.clone(),
        description: server.description.as_ref().map(|d| d.value.clone()),
        group,
        os: server.os.value,
        os_pos: server.os.pos,
        architecture: server
            .architecture
            .as_ref()
            .map_or(Architecture::X86_64, |a| a.value),
        architecture_pos: server.architecture.as_ref().map(|a| a.pos),
        boot_mode: server.boot_mode.as_ref().map(|b| b.value),
        boot_mode_pos: server.boot_mode.as_ref().map(|b| b.pos),
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
    for block in layers.replication_blocks() {
        if block.run_once.as_ref().is_some_and(|o| o.value) {
            frequency = Some(Frequency::Once);
            break;
        }
        if let Some(f) = &block.frequency_hours {
            frequency = Some(Frequency::Hours(limits::clamp(
                f.value,
                &FREQUENCY_HOURS,
                DEFAULT_FREQUENCY_HOURS,
            )));
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
            .map_or(0, |k| limits::clamp(k.value, &KEEP_RECENT_AMIS, 0)),
        encrypted: encrypted.is_some_and(|e| e.value),
        kms_key_id: kms.map(|k| k.value.clone()),
        max_lag_minutes: layers
            .replication(|r| r.max_lag_minutes.as_ref())
            .map_or(DEFAULT_MAX_LAG_MINUTES, |m| {
                limits::clamp(m.value, &MAX_LAG_MINUTES, DEFAULT_MAX_LAG_MINUTES)
            }),
    }
}
