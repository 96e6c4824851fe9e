//! Semantic validation and settings resolution: everything the YAML's shape cannot say, each
//! problem reported at the node that causes it, all of them in one pass. Pure: configure
//! scripts arrive already read (`load` reads them), so nothing here touches the file system.
//!
//! - `checks`: single values and blocks (header, tags, ranges, id syntax, server-only fields)
//! - `disks`: each disk's source and format (declared, or by extension; never guessed)
//! - `references`: server and group references, membership, `dependsOn` and `launchOrder`
//! - `layers`: the blocks a server's settings come from, most specific first
//! - `settings`: each server's settings merged from defaults, its group and itself
//! - `scripts`: which scripts an application declares, and each server's script checks
//! - `post_launch`: each server's post-launch `checks:` and the servers they name

mod checks;
mod disks;
mod hooks;
mod layers;
mod post_launch;
#[cfg(test)]
mod post_launch_tests;
mod references;
mod scripts;
mod settings;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use scripts::{ScriptFiles, ScriptReadError, declared_scripts};

use crate::app::*;
use crate::diag::Diagnostics;
use crate::graph::LaunchGraph;
use crate::model::Application;
use crate::syntax::pascal_case;

use checks::{
    BlockLevel, check_header, check_launch_block, check_replication_block, check_tag_budget,
    check_tags, check_unique_private_ips,
};
use references::{index_groups, index_servers};
use settings::{Inputs, resolve_server};

/// The application file's directory, against which relative paths (disks, scripts) resolve.
pub fn base_dir(file: &Path) -> &Path {
    file.parent().unwrap_or(Path::new(""))
}

/// Checks the decoded file and resolves it into an `App`, or reports why it cannot. `scripts`
/// holds the files [`declared_scripts`] names, as read by the caller.
pub fn resolve(
    model: &Application,
    file: &Path,
    scripts: &ScriptFiles,
    diags: &mut Diagnostics,
) -> Option<App> {
    check_header(model, diags);
    let tags = check_tags(model, diags);
    let state = model.state.as_ref().and_then(|s| {
        rehost_replication::state::StateLocation::parse(&s.value, Some(base_dir(file)))
            .map_err(|e| diags.error(s.pos, e.to_string()))
            .ok()
    });

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

    let inputs = Inputs {
        defaults: &defaults,
        base_dir: base_dir(file),
        scripts,
        script_cache: Default::default(),
        topology: post_launch::Topology::new(&server_index, &memberships, &depends_on),
    };
    let mut servers = Vec::with_capacity(model.servers.value.len());
    for (i, server) in model.servers.value.iter().enumerate() {
        let group = memberships[i].unwrap_or(0);
        let group_model = model.groups.value.get(group);
        servers.push(resolve_server(
            i,
            server,
            group,
            group_model,
            &inputs,
            diags,
        ));
    }

    let hooks = hooks::resolve_hooks(model.hooks.as_ref(), diags);
    check_unique_private_ips(model, diags);
    check_tag_budget(model, &servers, diags);

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
        state,
        groups,
        servers,
        graph,
        file: file.to_path_buf(),
        servers_pos: model.servers.pos,
        hooks,
    })
}
