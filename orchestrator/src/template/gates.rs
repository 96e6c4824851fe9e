//! Gate generations: gates that also hold on updates.
//!
//! CloudFormation cannot update a WaitCondition or its handle: once complete they stay
//! complete, so an update that replaces a group's instances would run ungated. Each group's
//! gate and handle therefore carry a generation in their logical ids, a digest of exactly what
//! decides whether one of the group's instances is replaced: every instance property whose
//! update requires replacement (one table, `update_effect::instance_update_effect`,
//! from CloudFormation's resource reference), with the AMI as launched (the parameter's value,
//! never its name), plus the gate's own properties (its members, Count and Timeout, which
//! cannot be updated either). When an instance of the group will be replaced, the group gets a
//! new handle and condition (the old ones are removed) and the groups depending on it wait on
//! the new one; when none is, the gate keeps its id and nothing about it changes (a user-data
//! change alone restarts an instance without running user data again: a new gate would wait
//! for a signal that never comes).

use sha2::{Digest, Sha256};
use serde_json::Value;

use crate::app::AppServer;
use super::update_effect::{UpdateEffect, instance_update_effect};

/// Hex digits of a generation.
pub const GENERATION_LEN: usize = 8;

/// The generation of a group's gate. `instances` are the group's servers with their instance
/// resources (user data not yet set), `ami` the AMI each launches with when known (the value
/// `launch` passes for its parameter), `count` and `timeout` the gate's properties.
pub(super) fn generation(
    instances: &[(&AppServer, &Value)],
    ami: impl Fn(&AppServer) -> Option<String>,
    count: usize,
    timeout: &str,
) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("count={count};timeout={timeout};").as_bytes());
    for (server, resource) in instances {
        digest.update(format!("instance={};", server.logical_id).as_bytes());
        let Some(props) = resource["Properties"].as_object() else {
            continue;
        };
        for (name, value) in props {
            if instance_update_effect(name) != UpdateEffect::Replacement {
                continue;
            }
            let value = match (name.as_str(), ami(server)) {
                ("ImageId", Some(ami)) => Value::String(ami),
                _ => value.clone(),
            };
            digest.update(format!("{name}={value};").as_bytes());
        }
    }
    digest
        .finalize()
        .iter()
        .take(GENERATION_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}
