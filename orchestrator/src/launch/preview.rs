//! `rehost plan`: what a launch would do, reviewable like a code change. For a new stack, the
//! resources to create, wave by wave; for an existing one, CloudFormation's change set (Add /
//! Modify / Remove per resource) with the properties that change and whether that replaces the
//! instance. Nothing is changed: the change set is deleted afterwards.
//!
//! Besides CloudFormation's verdict, rehost diffs the deployed template against the new one
//! with parameter references resolved (the running stack's values against the new defaults), so
//! a new AMI shows as an `ImageId` change even where a change set gives no detail (or, as in the
//! emulator, lists no change at all for a parameter-only update). `launch` uses the same
//! description to refuse a cutover that would replace or remove instances without `--yes`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudformation::types::{ChangeAction, Replacement, RequiresRecreation};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::app::{App, Mode};
use crate::launch::stack::{self, StackRequest};
use crate::launch::template_diff::{
    instance_diff, instance_update_effect, parameter_defaults, property_diff, resolve_parameters,
    update_warnings,
};
use crate::launch::{AwsClients, LaunchError, aws, deploy};
use crate::template::{Names, Package, Template};

/// What `rehost plan` shows: the stack a launch would create or the changes it would make.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchPreview {
    pub stack: String,
    pub mode: Mode,
    pub action: StackAction,
    /// For a new stack: the resources in launch waves.
    pub waves: Vec<PlannedWave>,
    /// For an existing stack: the change set, one entry per resource.
    pub changes: Vec<ResourceChange>,
    /// What the update means for configure scripts and gates (`template_diff::update_warnings`).
    pub warnings: Vec<String>,
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

/// What a launch would do to the mode's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackAction {
    /// No stack (or one left by a failed creation): create it.
    Create,
    /// Update the stack through the change set shown.
    Update,
    /// The stack already runs this template.
    None,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceChange {
    #[serde(serialize_with = "as_str")]
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    pub server: Option<String>,
    pub group: Option<String>,
    /// CloudFormation's verdict when it gives one (True, False, Conditional).
    #[serde(serialize_with = "opt_as_str")]
    pub replacement: Option<Replacement>,
    pub properties: Vec<PropertyChange>,
}

impl ResourceChange {
    /// Whether executing the change replaces (or may replace) or removes a running instance:
    /// what a cutover launch needs `--yes` for.
    pub fn endangers_instance(&self) -> bool {
        self.resource_type == INSTANCE
            && (self.action == ChangeAction::Remove
                || matches!(
                    self.replacement,
                    Some(Replacement::True | Replacement::Conditional)
                )
                || self.properties.iter().any(|p| {
                    matches!(
                        p.effect,
                        UpdateEffect::Replacement | UpdateEffect::ConditionalReplacement
                    )
                }))
    }
}

pub(crate) const INSTANCE: &str = "AWS::EC2::Instance";

#[derive(Clone, Debug, Serialize)]
pub struct PropertyChange {
    pub name: String,
    pub effect: UpdateEffect,
}

pub use crate::template::UpdateEffect;

/// The SDK enums serialise as CloudFormation spells them.
fn as_str<T: AsRef<str>, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.as_ref())
}

fn opt_as_str<T: AsRef<str>, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(v.as_ref()),
        None => s.serialize_none(),
    }
}

/// What launching `package` would do to the mode's stack; changes nothing (a nested launch's
/// children are uploaded to the template bucket, as a launch would, for the change set).
pub async fn preview(
    clients: &AwsClients,
    app: &App,
    mode: Mode,
    package: &Package,
) -> Result<LaunchPreview, LaunchError> {
    let name = app.stack_name(mode);
    let existing = stack::describe(clients, &name).await?;
    let mut preview = LaunchPreview {
        stack: name.clone(),
        mode,
        action: StackAction::None,
        waves: vec![],
        changes: vec![],
        warnings: vec![],
    };
    // A stack of this name that is not the application's is refused, as launch refuses it.
    let Some(existing) = existing else {
        return Ok(creation(app, mode, package.flat()));
    };
    existing.check_owner(&app.name, mode)?;
    if stack::replaced_on_launch(&existing.status) {
        return Ok(creation(app, mode, package.flat()));
    }
    let parent;
    let template = match package {
        Package::Flat(template) => template,
        Package::Nested(nested) => {
            parent = deploy::upload_children(clients, &name, nested).await?;
            &parent
        }
    };
    let req = StackRequest {
        app,
        mode,
        template,
        children: package.children(),
        on_failure: stack::OnFailureChoice::Rollback,
        wait_limit: std::time::Duration::from_secs(600),
        allow_replacement: false,
    };
    let Some(change_set) = stack::plan_change_set(clients, &req).await? else {
        return Ok(preview);
    };
    let described = describe_changes(clients, &req, &existing, &change_set).await;
    // The plan changes nothing, whatever happened while reading it.
    let deleted = stack::delete_change_set(clients, &name, &change_set).await;
    preview.changes = described?;
    deleted?;
    if !preview.changes.is_empty() {
        preview.action = StackAction::Update;
        preview.warnings = update_warnings(app, template, &preview.changes);
    }
    Ok(preview)
}

/// The changes of a computed change set on `existing`, one per resource: CloudFormation's
/// list, with property detail from its own answer or else from rehost's diff of the deployed
/// template against the request's (parameters resolved), plus every instance that diff shows
/// changing which the change set leaves out. A nested launch's child stacks are described
/// inside too: through their nested change sets, or, where none was computed (the emulator
/// computes none), through rehost's diff of each child's deployed template against the new one.
pub(crate) async fn describe_changes(
    clients: &AwsClients,
    req: &StackRequest<'_>,
    existing: &stack::StackInfo,
    change_set: &str,
) -> Result<Vec<ResourceChange>, LaunchError> {
    let deployed = resolve_parameters(
        &deployed_template(clients, &existing.name).await?,
        &existing.parameters,
    );
    let defaults = parameter_defaults(&req.template.body);
    let proposed = resolve_parameters(&req.template.body, &defaults);
    let (mut changes, nested) = describe_set(
        clients,
        req.app,
        &existing.name,
        change_set,
        &deployed,
        &proposed,
    )
    .await?;
    // The running child stacks, for changes that do not name theirs (the emulator's).
    let running = if nested.iter().any(|n| n.physical_id.is_none()) {
        child_stacks(clients, &existing.name).await?
    } else {
        BTreeMap::new()
    };
    for mut n in nested {
        let Some(child) = req.children.iter().find(|c| c.logical_id == n.logical_id) else {
            continue;
        };
        if n.physical_id.is_none() {
            n.physical_id = running.get(&n.logical_id).cloned();
        }
        let values = passed_values(&req.template.body, &child.logical_id, &defaults);
        let proposed_child = resolve_parameters(&child.body, &values);
        let deployed_child = match &n.physical_id {
            Some(id) => {
                let values = stack::describe(clients, id)
                    .await?
                    .map(|info| info.parameters)
                    .unwrap_or_default();
                resolve_parameters(&deployed_template(clients, id).await?, &values)
            }
            None => Value::Null,
        };
        match (&n.change_set_id, &n.physical_id) {
            (Some(cs), Some(id)) => {
                let (inner, _) =
                    describe_set(clients, req.app, id, cs, &deployed_child, &proposed_child)
                        .await?;
                changes.extend(inner);
            }
            _ => changes.extend(diff_changes(
                req.app,
                &deployed_child,
                &proposed_child,
                &BTreeSet::new(),
            )),
        }
    }
    Ok(changes)
}

/// The stack's child stacks: logical id -> stack id.
async fn child_stacks(
    clients: &AwsClients,
    stack: &str,
) -> Result<BTreeMap<String, String>, LaunchError> {
    let out = clients
        .cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:DescribeStackResources"))?;
    Ok(out
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some(NESTED_STACK))
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id()?.to_string(),
            ))
        })
        .collect())
}

/// A child stack a change set changes, and its nested change set when one was computed.
struct NestedChange {
    logical_id: String,
    physical_id: Option<String>,
    change_set_id: Option<String>,
}

/// One change set's resource changes (every page), and the child stacks among them.
async fn describe_set(
    clients: &AwsClients,
    app: &App,
    stack: &str,
    change_set: &str,
    deployed: &Value,
    proposed: &Value,
) -> Result<(Vec<ResourceChange>, Vec<NestedChange>), LaunchError> {
    let mut changes = Vec::new();
    let mut nested = Vec::new();
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
                .cloned()
                .unwrap_or_else(|| ChangeAction::from(""));
            if resource_type == NESTED_STACK {
                nested.push(NestedChange {
                    logical_id: logical_id.clone(),
                    physical_id: rc
                        .physical_resource_id()
                        .filter(|id| !id.is_empty())
                        .map(str::to_string),
                    change_set_id: rc
                        .change_set_id()
                        .filter(|id| !id.is_empty())
                        .map(str::to_string),
                });
            }
            let from_cfn: Vec<PropertyChange> = rc
                .details()
                .iter()
                .filter_map(|d| d.target())
                .filter(|t| t.attribute().is_some_and(|a| a.as_str() == "Properties"))
                .filter_map(|t| {
                    let name = t.name()?.to_string();
                    let effect = match t.requires_recreation() {
                        Some(RequiresRecreation::Always) => UpdateEffect::Replacement,
                        Some(RequiresRecreation::Conditionally) => {
                            UpdateEffect::ConditionalReplacement
                        }
                        _ => effect_for(&resource_type, &name),
                    };
                    Some(PropertyChange { name, effect })
                })
                .collect();
            let properties = if from_cfn.is_empty() && action == ChangeAction::Modify {
                property_diff(deployed, proposed, &logical_id)
                    .into_iter()
                    .map(|name| PropertyChange {
                        effect: effect_for(&resource_type, &name),
                        name,
                    })
                    .collect()
            } else {
                dedup(from_cfn)
            };
            let (server, group) = owner_of(app, &logical_id);
            changes.push(ResourceChange {
                action,
                logical_id,
                resource_type,
                server,
                group,
                replacement: rc.replacement().cloned(),
                properties,
            });
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let listed: BTreeSet<String> = changes.iter().map(|c| c.logical_id.clone()).collect();
    changes.extend(diff_changes(app, deployed, proposed, &listed));
    Ok((changes, nested))
}

/// The instances rehost's own diff shows changing, except those already `listed`.
fn diff_changes(
    app: &App,
    deployed: &Value,
    proposed: &Value,
    listed: &BTreeSet<String>,
) -> Vec<ResourceChange> {
    instance_diff(deployed, proposed)
        .into_iter()
        .filter(|(logical_id, _, _)| !listed.contains(logical_id))
        .map(|(logical_id, action, properties)| {
            let (server, group) = owner_of(app, &logical_id);
            ResourceChange {
                action,
                logical_id,
                resource_type: INSTANCE.to_string(),
                server,
                group,
                replacement: None,
                properties,
            }
        })
        .collect()
}

/// The values a parent passes to a child stack, where they are the parent's parameters
/// (`Ref`, or a list parameter joined): the new defaults a launch would use.
fn passed_values(
    parent: &Value,
    child: &str,
    defaults: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let passed = &parent["Resources"][child]["Properties"]["Parameters"];
    let mut values = BTreeMap::new();
    for (name, value) in passed.as_object().into_iter().flatten() {
        let source = value["Ref"]
            .as_str()
            .or_else(|| value["Fn::Join"][1]["Ref"].as_str());
        if let Some(default) = source.and_then(|p| defaults.get(p)) {
            values.insert(name.clone(), default.clone());
        }
    }
    values
}

const NESTED_STACK: &str = "AWS::CloudFormation::Stack";

/// The server and group a resource of the template belongs to (an instance or a gate).
fn owner_of(app: &App, logical_id: &str) -> (Option<String>, Option<String>) {
    let server = app.servers.iter().find(|s| s.logical_id == logical_id);
    let group = server.map(|s| app.group_of(s).name.clone()).or_else(|| {
        app.groups
            .iter()
            .find(|g| Names::is_gate_of(&g.logical_stem, logical_id))
            .map(|g| g.name.clone())
    });
    (server.map(|s| s.id.clone()), group)
}

fn dedup(list: Vec<PropertyChange>) -> Vec<PropertyChange> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|p| seen.insert(p.name.clone()))
        .collect()
}

fn effect_for(resource_type: &str, property: &str) -> UpdateEffect {
    if resource_type == "AWS::EC2::Instance" {
        instance_update_effect(property)
    } else {
        UpdateEffect::Unknown
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

/// The preview of a new stack: every resource the template creates, wave by wave. Pure.
pub fn creation(app: &App, mode: Mode, template: &Template) -> LaunchPreview {
    LaunchPreview {
        stack: app.stack_name(mode),
        mode,
        action: StackAction::Create,
        waves: new_stack_waves(app, mode, template),
        changes: vec![],
        warnings: vec![],
    }
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
                if let Some(gate) = template.gate(g) {
                    planned.push(PlannedResource {
                        logical_id: gate.gate.clone(),
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
