//! Template outputs: each server's instance id and private IP while they fit the output quota,
//! one list per group beyond it, and the launch waves.

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::limits::MAX_OUTPUTS;

use super::names::Names;
use super::parameters::listing;

/// Outputs per server (instance id and private IP each, and the launch waves) while they fit.
fn per_server(app: &App) -> bool {
    2 * app.servers.len() < MAX_OUTPUTS
}

/// How many outputs `build` makes.
pub(super) fn count(app: &App) -> usize {
    1 + 2 * if per_server(app) {
        app.servers.len()
    } else {
        app.groups.len()
    }
}

/// The `Outputs` section.
pub(super) fn build(app: &App, waves: &[Vec<usize>]) -> Map<String, Value> {
    let mut outputs = Map::new();
    if per_server(app) {
        for server in app.servers_in_launch_order() {
            outputs.insert(
                Names::instance_output(server),
                json!({"Description": format!("Instance of server {}", server.id), "Value": {"Ref": server.logical_id}}),
            );
            outputs.insert(
                Names::private_ip_output(server),
                json!({
                    "Description": format!("Private IP of server {}", server.id),
                    "Value": {"Fn::GetAtt": [server.logical_id, "PrivateIp"]}
                }),
            );
        }
    } else {
        for &g in waves.iter().flatten() {
            let group = &app.groups[g];
            let servers = || group.servers.iter().map(|&s| &app.servers[s]);
            let ids: Vec<&str> = servers().map(|s| s.id.as_str()).collect();
            let refs: Vec<Value> = servers().map(|s| json!({"Ref": s.logical_id})).collect();
            let ips: Vec<Value> = servers()
                .map(|s| json!({"Fn::GetAtt": [s.logical_id, "PrivateIp"]}))
                .collect();
            outputs.insert(
                Names::group_instances_output(&group.logical_stem),
                json!({
                    "Description": format!("Instances of group {} ({})", group.name, listing(&ids, 1000usize.saturating_sub(group.name.len()))),
                    "Value": {"Fn::Join": [",", refs]}
                }),
            );
            outputs.insert(
                Names::group_private_ips_output(&group.logical_stem),
                json!({
                    "Description": format!("Private IPs of group {} ({})", group.name, listing(&ids, 1000usize.saturating_sub(group.name.len()))),
                    "Value": {"Fn::Join": [",", ips]}
                }),
            );
        }
    }
    outputs.insert(
        "LaunchWaves".into(),
        json!({
            "Description": "Groups in launch order; groups in one wave launch together",
            "Value": launch_waves_text(app),
        }),
    );
    outputs
}

/// `directory | database | app, search | web`: waves in order, groups of one wave by commas.
pub fn launch_waves_text(app: &App) -> String {
    app.graph
        .waves()
        .iter()
        .map(|w| {
            w.iter()
                .map(|&g| app.groups[g].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
