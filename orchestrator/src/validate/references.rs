//! References between servers and groups: ids are unique, every group member exists and is in
//! exactly one group, every dependency names a group, and `launchOrder` becomes dependencies.

use std::collections::HashMap;

use crate::diag::{Diagnostics, suggestion};
use crate::model::Application;
use crate::syntax::check_id;
use crate::yaml::Pos;

use super::checks::{BlockLevel, check_launch_block, check_replication_block, check_server_fields};

/// Map server id -> index, reporting bad and duplicate ids.
pub(super) fn index_servers<'a>(
    model: &'a Application,
    diags: &mut Diagnostics,
) -> HashMap<&'a str, usize> {
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

/// Returns each server's group (by index) and each group's dependencies.
pub(super) fn index_groups(
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
