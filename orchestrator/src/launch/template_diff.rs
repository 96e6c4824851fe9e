//! How two templates differ, resource by resource: the properties of an instance that change
//! (with parameter references resolved, so a new AMI is an `ImageId` change) and how each
//! lands on the running instance, from CloudFormation's resource reference. Pure: `plan` and
//! the cutover `--yes` check use it where a change set gives no detail.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudformation::types::ChangeAction;
use serde_json::Value;

use super::preview::{INSTANCE, PropertyChange};

pub use crate::template::instance_update_effect;

/// The parameters' default values of a template (what a launch passes).
pub fn parameter_defaults(template: &Value) -> BTreeMap<String, String> {
    template["Parameters"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, spec)| Some((k.clone(), spec["Default"].as_str()?.to_string())))
        .collect()
}

/// The template with every `{"Ref": P}` to a parameter of `values` replaced by its value (and
/// `Fn::Select` over a resolved list taken), and every `Fn::FindInMap` into the template's own
/// `Mappings` replaced by the value, so two templates compare by what the resources get, not
/// by how they name it: a new AMI is an `ImageId` change, a new script a `UserData` one. Pure.
pub fn resolve_parameters(template: &Value, values: &BTreeMap<String, String>) -> Value {
    let mut out = template.clone();
    out["Resources"] = resolve(&template["Resources"], values, &template["Mappings"]);
    return out;

    fn resolve(v: &Value, values: &BTreeMap<String, String>, mappings: &Value) -> Value {
        match v {
            Value::Object(map) if map.len() == 1 => {
                // A user-data body stored once in `Mappings`: compared by its text.
                if let Some(Value::Array(keys)) = map.get("Fn::FindInMap")
                    && let [Some(m), Some(k), Some(a)] =
                        [0, 1, 2].map(|i| keys.get(i).and_then(Value::as_str))
                    && !mappings[m][k][a].is_null()
                {
                    return mappings[m][k][a].clone();
                }
                if let Some(Value::String(name)) = map.get("Ref")
                    && let Some(value) = values.get(name)
                {
                    return Value::String(value.clone());
                }
                if let Some(Value::Array(args)) = map.get("Fn::Select")
                    && let [index, list] = args.as_slice()
                {
                    let index = index
                        .as_u64()
                        .or_else(|| index.as_str().and_then(|s| s.parse().ok()));
                    let item = match (index, resolve(list, values, mappings)) {
                        (Some(i), Value::String(s)) => s
                            .split(',')
                            .nth(i as usize)
                            .map(|x| Value::String(x.into())),
                        (Some(i), Value::Array(items)) => items.get(i as usize).cloned(),
                        _ => None,
                    };
                    if let Some(item) = item {
                        return item;
                    }
                }
                Value::Object(
                    map.iter()
                        .map(|(k, x)| (k.clone(), resolve(x, values, mappings)))
                        .collect(),
                )
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, x)| (k.clone(), resolve(x, values, mappings)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|x| resolve(x, values, mappings)).collect())
            }
            other => other.clone(),
        }
    }
}

/// Every instance that differs between two (resolved) templates: added, removed, or modified
/// with the properties that change and how each lands. Pure.
pub fn instance_diff(old: &Value, new: &Value) -> Vec<(String, ChangeAction, Vec<PropertyChange>)> {
    let instances = |t: &Value| -> Vec<String> {
        t["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, r)| r["Type"] == INSTANCE)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (before, after) = (instances(old), instances(new));
    let mut out = Vec::new();
    for id in &after {
        if !before.contains(id) {
            out.push((id.clone(), ChangeAction::Add, vec![]));
            continue;
        }
        let properties: Vec<PropertyChange> = property_diff(old, new, id)
            .into_iter()
            .map(|name| PropertyChange {
                effect: instance_update_effect(&name),
                name,
            })
            .collect();
        if !properties.is_empty() {
            out.push((id.clone(), ChangeAction::Modify, properties));
        }
    }
    for id in before.iter().filter(|id| !after.contains(id)) {
        out.push((id.clone(), ChangeAction::Remove, vec![]));
    }
    out
}

/// Names of the top-level properties (and DependsOn) of one resource that differ between two
/// templates.
pub fn property_diff(old: &Value, new: &Value, logical_id: &str) -> Vec<String> {
    let before = &old["Resources"][logical_id];
    let after = &new["Resources"][logical_id];
    let mut names = BTreeSet::new();
    let empty = serde_json::Map::new();
    let (bp, ap) = (
        before["Properties"].as_object().unwrap_or(&empty),
        after["Properties"].as_object().unwrap_or(&empty),
    );
    for key in bp.keys().chain(ap.keys()) {
        if bp.get(key) != ap.get(key) {
            names.insert(key.clone());
        }
    }
    if before["DependsOn"] != after["DependsOn"] {
        names.insert("DependsOn".to_string());
    }
    names.into_iter().collect()
}

/// What an update means for the launch gates and the configure scripts, as warnings `plan`
/// shows: user data runs only when an instance is created, so a changed configure script (or
/// changed checks) on an instance that is not replaced never runs; and when a group's gate
/// gets a new generation (one of its instances is replaced), every instance of the group that
/// is not replaced cannot signal the new gate, which then waits until it times out. Pure.
pub fn update_warnings(
    app: &crate::app::App,
    template: &crate::template::Template,
    changes: &[super::preview::ResourceChange],
) -> Vec<String> {
    let change_of = |id: &str| changes.iter().find(|c| c.logical_id == id);
    let mut warnings = Vec::new();
    for (g, group) in app.groups.iter().enumerate() {
        let regated = template
            .gate(g)
            .is_some_and(|ids| change_of(&ids.gate).is_some_and(|c| c.action == ChangeAction::Add));
        let new_gate_of_existing = regated
            && group.servers.iter().any(|&s| {
                change_of(&app.servers[s].logical_id).is_none_or(|c| c.action != ChangeAction::Add)
            });
        for &s in &group.servers {
            let server = &app.servers[s];
            let change = change_of(&server.logical_id);
            if change.is_some_and(|c| c.action == ChangeAction::Add || c.endangers_instance()) {
                continue;
            }
            if regated && new_gate_of_existing {
                warnings.push(format!(
                    "group {}: server {} is not replaced, so it will not signal the group's new gate \
                     (user data does not run again); the update would wait until the gate times out. \
                     Give every server of the group its new AMI together, or launch this update with --no-health-gate",
                    group.name, server.id
                ));
            } else if change.is_some_and(|c| c.properties.iter().any(|p| p.name == "UserData")) {
                warnings.push(format!(
                    "server {}: its configure script or checks changed, but its instance is not replaced: \
                     user data does not run again on an existing instance, so the change will not run there",
                    server.id
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::preview::{ResourceChange, StackAction, UpdateEffect};
    use serde_json::json;

    #[test]
    fn diff_names_changed_properties_only() {
        let old = json!({"Resources": {"A": {"Properties": {"InstanceType": "m5.large", "ImageId": "x"}, "DependsOn": ["G"]}}});
        let new = json!({"Resources": {"A": {"Properties": {"InstanceType": "r5.large", "ImageId": "x", "KeyName": "k"}, "DependsOn": ["G"]}}});
        assert_eq!(
            property_diff(&old, &new, "A"),
            vec!["InstanceType", "KeyName"]
        );
        assert_eq!(
            instance_update_effect("InstanceType"),
            UpdateEffect::SomeInterruption
        );
        assert_eq!(instance_update_effect("ImageId"), UpdateEffect::Replacement);
        assert_eq!(
            instance_update_effect("SecurityGroupIds"),
            UpdateEffect::NoInterruption
        );
        let json = |e: UpdateEffect| serde_json::to_value(e).unwrap();
        for effect in [
            UpdateEffect::Replacement,
            UpdateEffect::ConditionalReplacement,
            UpdateEffect::SomeInterruption,
            UpdateEffect::NoInterruption,
            UpdateEffect::Unknown,
        ] {
            assert_eq!(json(effect), effect.as_str());
        }
        assert_eq!(serde_json::to_value(StackAction::None).unwrap(), "none");
    }

    /// A new AMI changes only a parameter's value: the resource still says `{"Ref": ...}`, so a
    /// plain diff sees nothing. Resolved against the running and the new values, it is an
    /// `ImageId` change, which replaces the instance; an unchanged AMI in the same group list
    /// leaves its instance alone, and a dropped server is a removal.
    #[test]
    fn a_new_ami_is_an_image_id_change_that_replaces_the_instance() {
        let template = |db_ami: &str, list: &str, with_old: bool| {
            let mut t = json!({
                "Parameters": {
                    "DbImageId": {"Type": "AWS::EC2::Image::Id", "Default": db_ami},
                    "WebImageIds": {"Type": "List<AWS::EC2::Image::Id>", "Default": list}
                },
                "Resources": {
                    "Db": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": {"Ref": "DbImageId"}, "InstanceType": "m5.large"}},
                    "Web0": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": {"Fn::Select": ["0", {"Ref": "WebImageIds"}]}}},
                    "Web1": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": {"Fn::Select": [1, {"Ref": "WebImageIds"}]}}},
                    "Gate": {"Type": "AWS::CloudFormation::WaitConditionHandle"}
                }
            });
            if with_old {
                t["Resources"]["Old"] = json!({"Type": "AWS::EC2::Instance", "Properties": {}});
            }
            t
        };
        let old = template("ami-1", "ami-w0,ami-w1", true);
        let new = template("ami-2", "ami-w0,ami-w9", false);
        assert!(
            property_diff(&old, &new, "Db").is_empty(),
            "the Ref is the same"
        );
        let resolve = |t: &Value| resolve_parameters(t, &parameter_defaults(t));
        let (old, new) = (resolve(&old), resolve(&new));
        assert_eq!(old["Resources"]["Web1"]["Properties"]["ImageId"], "ami-w1");
        let diff = instance_diff(&old, &new);
        let summary: Vec<(&str, &str, Vec<&str>)> = diff
            .iter()
            .map(|(id, action, props)| {
                (
                    id.as_str(),
                    action.as_str(),
                    props.iter().map(|p| p.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("Db", "Modify", vec!["ImageId"]),
                ("Web1", "Modify", vec!["ImageId"]),
                ("Old", "Remove", vec![]),
            ]
        );
        let as_change = |(id, action, properties): &(String, ChangeAction, Vec<PropertyChange>)| {
            ResourceChange {
                action: action.clone(),
                logical_id: id.clone(),
                resource_type: INSTANCE.into(),
                server: None,
                group: None,
                replacement: None,
                properties: properties.clone(),
            }
        };
        assert!(diff.iter().map(as_change).all(|c| c.endangers_instance()));
        let resized = ResourceChange {
            properties: vec![PropertyChange {
                name: "InstanceType".into(),
                effect: UpdateEffect::SomeInterruption,
            }],
            ..as_change(&diff[0])
        };
        assert!(!resized.endangers_instance(), "a resize keeps the instance");
    }
}
