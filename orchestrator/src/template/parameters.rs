//! Template parameters: the AMIs (one per server, or one list per group beyond the quota), then
//! in portable templates the account-specific ids, with the console's parameter groups.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::app::{App, Mode};
use crate::limits::MAX_PARAMETERS;

use super::document::{AmiParameters, RenderOptions};
use super::names::{Names, PORTABLE_FIELDS, shown};

/// Portable-mode parameters, one per (origin, field): every server that inherits the value from
/// the same block shares the parameter. Name -> (type, description), sorted by name.
pub(super) fn portable(app: &App, mode: Mode) -> BTreeMap<String, (&'static str, String)> {
    let mut entries = BTreeMap::new();
    for server in &app.servers {
        let launch = server.launch(mode);
        for field in PORTABLE_FIELDS {
            if let Some((origin, value)) = (field.setting)(launch) {
                entries
                    .entry(Names::portable_parameter(app, origin, field.name))
                    .or_insert_with(|| {
                        (
                            field.parameter_type,
                            format!(
                                "{} (was {} in the source account)",
                                field.description,
                                shown(&value)
                            ),
                        )
                    });
            }
        }
    }
    entries
}

/// Per-server AMI parameters while they fit beside the portable ones in the quota.
pub(super) fn ami_layout(app: &App, portable_parameters: usize) -> AmiParameters {
    if portable_parameters + app.servers.len() <= MAX_PARAMETERS {
        AmiParameters::PerServer
    } else {
        AmiParameters::PerGroup
    }
}

/// The `Parameters` section and the console's parameter groups: AMIs in launch order, then
/// account-specific ids.
pub(super) fn build(
    app: &App,
    opts: &RenderOptions,
    waves: &[Vec<usize>],
    amis: AmiParameters,
    portable: &BTreeMap<String, (&'static str, String)>,
) -> (Map<String, Value>, Vec<Value>) {
    let mut parameters = Map::new();
    let mut interface_groups = Vec::new();
    for &g in waves.iter().flatten() {
        let group = &app.groups[g];
        let mut labels = Vec::new();
        match amis {
            AmiParameters::PerServer => {
                for &s in &group.servers {
                    let server = &app.servers[s];
                    let name = Names::image_parameter(server);
                    let mut p = Map::new();
                    p.insert("Type".into(), "AWS::EC2::Image::Id".into());
                    p.insert(
                        "Description".into(),
                        format!("AMI of server {} (group {})", server.id, group.name).into(),
                    );
                    if let Some(ami) = opts.amis.get(&server.id) {
                        p.insert("Default".into(), ami.clone().into());
                    }
                    parameters.insert(name.clone(), Value::Object(p));
                    labels.push(name);
                }
            }
            AmiParameters::PerGroup => {
                let name = Names::group_image_parameter(&group.logical_stem);
                let ids: Vec<&str> = group
                    .servers
                    .iter()
                    .map(|&s| app.servers[s].id.as_str())
                    .collect();
                let mut p = Map::new();
                p.insert("Type".into(), "List<AWS::EC2::Image::Id>".into());
                p.insert(
                    "Description".into(),
                    list_description(&group.name, &ids).into(),
                );
                let defaults: Option<Vec<&str>> = group
                    .servers
                    .iter()
                    .map(|&s| opts.amis.get(&app.servers[s].id).map(String::as_str))
                    .collect();
                if let Some(defaults) = defaults {
                    p.insert("Default".into(), defaults.join(",").into());
                }
                parameters.insert(name.clone(), Value::Object(p));
                labels.push(name);
            }
        }
        interface_groups.push(json!({
            "Label": {"default": format!("Group {} (AMIs)", group.name)},
            "Parameters": labels,
        }));
    }
    if !portable.is_empty() {
        let mut labels = Vec::new();
        for (name, (ty, description)) in portable {
            parameters.insert(
                name.clone(),
                json!({"Type": ty, "Description": description}),
            );
            labels.push(name.clone());
        }
        interface_groups
            .push(json!({"Label": {"default": "Network and access"}, "Parameters": labels}));
    }
    (parameters, interface_groups)
}

/// CloudFormation's longest parameter description.
const MAX_PARAMETER_DESCRIPTION: usize = 4000;

/// "AMIs of group G's servers, in this order: a, b, ...", within CloudFormation's limit.
fn list_description(group: &str, ids: &[&str]) -> String {
    let head = format!("AMIs of group {group}'s servers, in this order: ");
    let budget = MAX_PARAMETER_DESCRIPTION - head.len();
    head + &listing(ids, budget)
}

/// `a, b, c` in at most `budget` bytes: where the whole list would not fit, as many as fit
/// followed by ` and N more`.
pub(super) fn listing(ids: &[&str], budget: usize) -> String {
    let mut text = String::new();
    for (i, id) in ids.iter().enumerate() {
        let rest = format!(" and {} more", ids.len() - i);
        let last = i + 1 == ids.len();
        let need = text.len() + 2 + id.len() + if last { 0 } else { rest.len() };
        if need > budget {
            text.push_str(&rest);
            return text;
        }
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(id);
    }
    text
}
