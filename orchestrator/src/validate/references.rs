//! References between servers and groups: ids are unique, every group member exists and is in
//! exactly one group, every dependency names a group, and `launchOrder` becomes dependencies.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::Diagnostics;
use crate::limits::{MAX_IMPLIED_DEPENDENCIES, MAX_RESOURCES};
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

/// Returns each server's group (by index) and each group's dependencies. Linear in the file
/// (hash lookups, a per-group mark instead of searching a group's list) except for what
/// `launchOrder` itself implies: see [`launch_order_dependencies`].
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

    let unreadable_servers: HashSet<&str> = model
        .unreadable
        .server_ids
        .iter()
        .map(String::as_str)
        .collect();
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
            if unreadable_servers.contains(reference.value.as_str()) {
                continue;
            }
            let Some(&s) = servers.get(reference.value.as_str()) else {
                let close = diags.suggestion(&reference.value, server_ids.iter().copied());
                diags.error(
                    reference.pos,
                    format!(
                        "group `{}` lists unknown server `{}`{close}",
                        group.name.value, reference.value,
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

    let unreadable_groups: HashSet<&str> = model
        .unreadable
        .group_names
        .iter()
        .map(String::as_str)
        .collect();
    let group_names: Vec<&str> = groups.iter().map(|g| g.name.value.as_str()).collect();
    let mut depends_on: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    // marked[d] == Some(g): group g already depends on d (so a repeat is found in O(1)).
    let mut marked: Vec<Option<usize>> = vec![None; groups.len()];
    for (g, group) in groups.iter().enumerate() {
        let Some(deps) = &group.depends_on else {
            continue;
        };
        for dep in &deps.value {
            if unreadable_groups.contains(dep.value.as_str()) {
                continue;
            }
            match by_name.get(dep.value.as_str()) {
                None => {
                    let close = diags.suggestion(&dep.value, group_names.iter().copied());
                    diags.error(
                        dep.pos,
                        format!(
                            "group `{}` depends on unknown group `{}`{close}",
                            group.name.value, dep.value,
                        ),
                    );
                }
                Some(&d) if d == g => {
                    diags.error(
                        dep.pos,
                        format!("dependency cycle: {} -> {}", dep.value, dep.value),
                    );
                }
                Some(&d) if marked[d] == Some(g) => {
                    diags.error(
                        dep.pos,
                        format!(
                            "group `{}` lists dependency `{}` twice",
                            group.name.value, dep.value
                        ),
                    );
                }
                Some(&d) => {
                    marked[d] = Some(g);
                    depends_on[g].push(d);
                }
            }
        }
    }

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
    if let Err(implied) = launch_order_dependencies(&orders, &mut depends_on, &mut marked) {
        diags.error(
            model.groups.pos,
            format!(
                "launchOrder implies {implied} dependencies between groups, more than the \
                 {MAX_IMPLIED_DEPENDENCIES} rehost works out: one CloudFormation stack (500 resources) \
                 holds at most {} gated groups; split the application",
                MAX_RESOURCES / 3
            ),
        );
    }
    for deps in &mut depends_on {
        deps.sort_unstable();
    }
    (membership, depends_on)
}

/// `launchOrder: n` depends on every group with the largest launchOrder below n. Groups are
/// put in levels by order once (sorted), so each group's new dependencies are exactly the level
/// below it: the work is the number of dependencies added, never a scan of every group per
/// group. (That number can be the product of two levels' sizes; an application that large is
/// refused by the resource quota, so beyond `MAX_IMPLIED_DEPENDENCIES` nothing is added and the
/// number is returned as the error.) `marked` is `index_groups`' per-group mark, so explicit
/// `dependsOn` entries are not added twice.
fn launch_order_dependencies(
    orders: &[Option<i64>],
    depends_on: &mut [Vec<usize>],
    marked: &mut [Option<usize>],
) -> Result<(), usize> {
    let mut levels: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (g, order) in orders.iter().enumerate() {
        if let Some(o) = order {
            levels.entry(*o).or_default().push(g);
        }
    }
    let sizes: Vec<usize> = levels.values().map(Vec::len).collect();
    let implied: usize = sizes.windows(2).map(|w| w[0] * w[1]).sum();
    if implied > MAX_IMPLIED_DEPENDENCIES {
        return Err(implied);
    }
    let mut below: Option<&Vec<usize>> = None;
    for level in levels.values() {
        if let Some(prev) = below {
            for &g in level {
                // Re-mark g's explicit dependencies: marks of other groups may have replaced them.
                for &d in &depends_on[g] {
                    marked[d] = Some(g);
                }
                for &d in prev {
                    if marked[d] != Some(g) {
                        marked[d] = Some(g);
                        depends_on[g].push(d);
                    }
                }
            }
        }
        below = Some(level);
    }
    Ok(())
}
