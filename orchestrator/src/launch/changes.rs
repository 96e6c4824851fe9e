//! `rehost plan`: what a launch would do, reviewable like a code change. For a new stack, the
//! resources to create, wave by wave; for an existing one, CloudFormation's change set (Add /
//! Modify / Remove per resource) with the properties that change and whether that replaces the
//! instance. Nothing is changed: the change set is deleted afterwards.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::app::{App, Mode};
use crate::launch::stack::{self, StackRequest};
use crate::launch::{AwsClients, LaunchError, aws};
use crate::template::{Names, Template};

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub stack: String,
    pub mode: String,
    /// "create", "update" or "none".
    pub action: String,
    /// For a new stack: the resources in launch waves.
    pub waves: Vec<PlannedWave>,
    /// For an existing stack: the change set, one entry per resource.
    pub changes: Vec<ResourceChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlannedWave {
    pub wave: usize,
    pub groups: Vec<String>,
    pub resources: Vec<PlannedResource>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlannedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub server: Option<String>,
    pub group: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceChange {
    /// Add, Modify, Remove.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    pub server: Option<String>,
    pub group: Option<String>,
    /// CloudFormation's verdict when it gives one (True, False, Conditional).
    pub replacement: Option<String>,
    pub properties: Vec<PropertyChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyChange {
    pub name: String,
    /// "replacement", "some interruption", "no interruption" or "unknown".
    pub effect: String,
}

/// How an update of an `AWS::EC2::Instance` property lands, from the CloudFormation resource
/// reference; used when the change set gives no detail.
pub fn instance_update_effect(property: &str) -> &'static str {
    match property {
        "AvailabilityZone"
        | "ImageId"
        | "KeyName"
        | "NetworkInterfaces"
        | "PrivateIpAddress"
        | "SubnetId"
        | "LaunchTemplate"
        | "CpuOptions"
        | "PlacementGroupName"
        | "HibernationOptions"
        | "EnclaveOptions"
        | "LicenseSpecifications"
        | "Ipv6AddressCount"
        | "Ipv6Addresses"
        | "HostId"
        | "SecurityGroups" => "replacement",
        "InstanceType" | "UserData" | "EbsOptimized" | "KernelId" | "RamdiskId" | "Tenancy" => {
            "some interruption"
        }
        _ => "no interruption",
    }
}

pub async fn plan(
    clients: &AwsClients,
    app: &App,
    mode: Mode,
    template: &Template,
) -> Result<Plan, LaunchError> {
    let name = app.stack_name(mode);
    let existing = stack::describe(clients, &name).await?;
    let mut plan = Plan {
        stack: name.clone(),
        mode: mode.to_string(),
        action: String::new(),
        waves: vec![],
        changes: vec![],
    };
    let replaceable = existing.as_ref().is_none_or(|s| {
        matches!(
            s.status.as_str(),
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "REVIEW_IN_PROGRESS"
        )
    });
    if replaceable {
        plan.action = "create".into();
        plan.waves = new_stack_waves(app, mode, template);
        return Ok(plan);
    }
    let req = StackRequest {
        app,
        mode,
        template,
        on_failure: stack::OnFailureChoice::Rollback,
        wait_limit: std::time::Duration::from_secs(600),
    };
    let Some(change_set) = stack::plan_change_set(clients, &req).await? else {
        plan.action = "none".into();
        return Ok(plan);
    };
    let described = describe_changes(clients, app, &name, &change_set, template).await;
    // The plan changes nothing, whatever happened while reading it.
    let deleted = stack::delete_change_set(clients, &name, &change_set).await;
    plan.changes = described?;
    deleted?;
    plan.action = if plan.changes.is_empty() {
        "none"
    } else {
        "update"
    }
    .into();
    Ok(plan)
}

async fn describe_changes(
    clients: &AwsClients,
    app: &App,
    stack: &str,
    change_set: &str,
    template: &Template,
) -> Result<Vec<ResourceChange>, LaunchError> {
    let deployed = deployed_template(clients, stack).await?;
    let mut changes = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = clients
            .cfn
            .describe_change_set()
            .change_set_name(change_set)
            .stack_name(stack)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(aws("cloudformation:DescribeChangeSet"))?;
        for change in out.changes() {
            let Some(rc) = change.resource_change() else {
                continue;
            };
            let logical_id = rc.logical_resource_id().unwrap_or_default().to_string();
            let resource_type = rc.resource_type().unwrap_or_default().to_string();
            let action = rc
                .action()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let from_cfn: Vec<PropertyChange> = rc
                .details()
                .iter()
                .filter_map(|d| d.target())
                .filter(|t| t.attribute().is_some_and(|a| a.as_str() == "Properties"))
                .filter_map(|t| {
                    let name = t.name()?.to_string();
                    let effect = match t.requires_recreation().map(|r| r.as_str()) {
                        Some("Always") => "replacement".to_string(),
                        Some("Conditionally") => "replacement (conditional)".to_string(),
                        Some("Never") => effect_for(&resource_type, &name).to_string(),
                        _ => effect_for(&resource_type, &name).to_string(),
                    };
                    Some(PropertyChange { name, effect })
                })
                .collect();
            let properties = if from_cfn.is_empty() && action == "Modify" {
                property_diff(&deployed, &template.body, &logical_id)
                    .into_iter()
                    .map(|name| PropertyChange {
                        effect: effect_for(&resource_type, &name).to_string(),
                        name,
                    })
                    .collect()
            } else {
                dedup(from_cfn)
            };
            let server = app.servers.iter().find(|s| s.logical_id == logical_id);
            let group = server.map(|s| app.group_of(s).name.clone()).or_else(|| {
                app.groups
                    .iter()
                    .find(|g| {
                        logical_id == Names::gate(&g.logical_stem)
                            || logical_id == Names::gate_handle(&g.logical_stem)
                    })
                    .map(|g| g.name.clone())
            });
            changes.push(ResourceChange {
                action,
                logical_id,
                resource_type,
                server: server.map(|s| s.id.clone()),
                group,
                replacement: rc.replacement().map(|r| r.as_str().to_string()),
                properties,
            });
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    Ok(changes)
}

fn dedup(list: Vec<PropertyChange>) -> Vec<PropertyChange> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|p| seen.insert(p.name.clone()))
        .collect()
}

fn effect_for(resource_type: &str, property: &str) -> &'static str {
    if resource_type == "AWS::EC2::Instance" {
        instance_update_effect(property)
    } else {
        "unknown"
    }
}

async fn deployed_template(clients: &AwsClients, stack: &str) -> Result<Value, LaunchError> {
    let out = clients
        .cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:GetTemplate"))?;
    let body = out.template_body().unwrap_or_default();
    Ok(serde_json::from_str(body)
        .or_else(|_| serde_norway::from_str(body))
        .unwrap_or(Value::Null))
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

fn new_stack_waves(app: &App, mode: Mode, template: &Template) -> Vec<PlannedWave> {
    let resources = template.body["Resources"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let gate_minutes = app.gate_minutes(mode);
    app.graph
        .waves()
        .iter()
        .enumerate()
        .map(|(i, wave)| {
            let mut planned = Vec::new();
            for &g in wave {
                let group = &app.groups[g];
                for &s in &group.servers {
                    let server = &app.servers[s];
                    let l = server.launch(mode);
                    let props = &resources
                        .get(&server.logical_id)
                        .map(|r| r["Properties"].clone())
                        .unwrap_or(Value::Null);
                    let ami =
                        template.body["Parameters"][Names::image_parameter(server)]["Default"]
                            .as_str()
                            .unwrap_or("(AMI parameter without default)");
                    let mut detail = format!("{} from {ami}", l.instance_type);
                    if let Some(subnet) = &l.subnet {
                        detail.push_str(&format!(" in {}", subnet.value));
                    }
                    if let Some(ip) = &l.private_ip_address {
                        detail.push_str(&format!(" at {ip}"));
                    }
                    if props.get("UserData").is_some() && l.configure_script.is_some() {
                        detail.push_str(", runs its configure script");
                    }
                    planned.push(PlannedResource {
                        logical_id: server.logical_id.clone(),
                        resource_type: "AWS::EC2::Instance".into(),
                        server: Some(server.id.clone()),
                        group: group.name.clone(),
                        detail,
                    });
                }
                if resources.contains_key(&Names::gate(&group.logical_stem)) {
                    planned.push(PlannedResource {
                        logical_id: Names::gate(&group.logical_stem),
                        resource_type: "AWS::CloudFormation::WaitCondition".into(),
                        server: None,
                        group: group.name.clone(),
                        detail: format!(
                            "waits up to {} min for {} success signal{}",
                            gate_minutes[g],
                            group.servers.len(),
                            if group.servers.len() == 1 { "" } else { "s" }
                        ),
                    });
                }
            }
            PlannedWave {
                wave: i + 1,
                groups: wave.iter().map(|&g| app.groups[g].name.clone()).collect(),
                resources: planned,
            }
        })
        .collect()
}

pub fn print(plan: &Plan) {
    match plan.action.as_str() {
        "create" => {
            let count: usize = plan.waves.iter().map(|w| w.resources.len()).sum();
            println!(
                "plan: create stack {} ({} mode): {count} resources in {} waves",
                plan.stack,
                plan.mode,
                plan.waves.len()
            );
            for wave in &plan.waves {
                println!("wave {}: {}", wave.wave, wave.groups.join(", "));
                for r in &wave.resources {
                    let who = r
                        .server
                        .as_deref()
                        .map(|s| format!("server {s}"))
                        .unwrap_or_else(|| format!("group {}", r.group));
                    println!(
                        "  + {:<22} {:<36} {who}: {}",
                        r.logical_id, r.resource_type, r.detail
                    );
                }
            }
        }
        "none" => println!(
            "plan: stack {} ({} mode) is up to date: no changes",
            plan.stack, plan.mode
        ),
        _ => {
            println!("plan: update stack {} ({} mode)", plan.stack, plan.mode);
            for c in &plan.changes {
                let who = match (&c.server, &c.group) {
                    (Some(s), Some(g)) => format!(" (server {s}, group {g})"),
                    (None, Some(g)) => format!(" (group {g})"),
                    _ => String::new(),
                };
                let props: Vec<String> = c
                    .properties
                    .iter()
                    .map(|p| format!("{} [{}]", p.name, p.effect))
                    .collect();
                let replacement = match c.replacement.as_deref() {
                    Some("True") => " -- replaces the instance",
                    Some("Conditional") => " -- may replace the instance",
                    _ => "",
                };
                println!(
                    "  {:<7} {}{who}: {}{replacement}",
                    c.action,
                    c.logical_id,
                    if props.is_empty() {
                        "-".to_string()
                    } else {
                        props.join(", ")
                    }
                );
            }
            let count = |a: &str| plan.changes.iter().filter(|c| c.action == a).count();
            println!(
                "{} changes: {} add, {} modify, {} remove",
                plan.changes.len(),
                count("Add"),
                count("Modify"),
                count("Remove")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_changed_properties_only() {
        let old = json!({"Resources": {"A": {"Properties": {"InstanceType": "m5.large", "ImageId": "x"}, "DependsOn": ["G"]}}});
        let new = json!({"Resources": {"A": {"Properties": {"InstanceType": "r5.large", "ImageId": "x", "KeyName": "k"}, "DependsOn": ["G"]}}});
        assert_eq!(
            property_diff(&old, &new, "A"),
            vec!["InstanceType", "KeyName"]
        );
        assert_eq!(instance_update_effect("InstanceType"), "some interruption");
        assert_eq!(instance_update_effect("ImageId"), "replacement");
        assert_eq!(
            instance_update_effect("SecurityGroupIds"),
            "no interruption"
        );
    }
}
