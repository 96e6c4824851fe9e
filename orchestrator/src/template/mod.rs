//! One CloudFormation template for the whole application.
//!
//! Servers launch group by group: each group has a WaitConditionHandle + WaitCondition (its
//! "gate", Count = its servers) that opens once every server of the group has signalled that its
//! configure script succeeded; a server's instance DependsOn the gates of exactly the groups its
//! group depends on, so independent groups start together. `--no-health-gate` drops the gates and
//! makes instances DependsOn the instances of those groups instead.
//!
//! - `names`: logical ids and parameter names, and the table of portable fields
//! - `parameters`, `resources`, `outputs`: the three sections [`render`] assembles
//! - `check`: collisions and quotas, checked for every variant while loading
//!
//! Output is deterministic: maps keep insertion order, which follows launch order.

mod check;
mod names;
mod outputs;
mod parameters;
mod resources;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub use check::check;
pub use names::{Names, PORTABLE_FIELDS, PortableField};

use crate::app::{App, Mode};
use crate::limits::MAX_TEMPLATE_DESCRIPTION;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub mode: Mode,
    /// Account-specific ids become typed parameters so the template launches in other accounts.
    pub portable: bool,
    pub health_gate: bool,
    /// Default AMI per server id (from `--ami` or the replication state).
    pub amis: BTreeMap<String, String>,
}

impl RenderOptions {
    pub fn new(mode: Mode) -> Self {
        RenderOptions {
            mode,
            portable: false,
            health_gate: true,
            amis: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Template {
    pub body: Value,
    pub resources: usize,
    pub parameters: usize,
    pub outputs: usize,
    /// How AMIs are parameterised (per server while they fit in the parameter quota).
    pub ami_parameters: AmiParameters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmiParameters {
    /// One `AWS::EC2::Image::Id` per server.
    PerServer,
    /// One `List<AWS::EC2::Image::Id>` per group, in the group's server order: used only when
    /// per-server parameters would exceed CloudFormation's 200-parameter quota.
    PerGroup,
}

impl Template {
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.body).expect("template serializes");
        s.push('\n');
        s
    }

    /// The form sent to CloudFormation: smallest, so more templates fit inline.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(&self.body).expect("template serializes")
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.body).expect("template serializes")
    }

    /// Whether the template declares this logical id.
    pub fn has_resource(&self, logical_id: &str) -> bool {
        self.body["Resources"].get(logical_id).is_some()
    }
}

pub fn render(app: &App, opts: &RenderOptions) -> Template {
    let waves = app.graph.waves();
    let portable = if opts.portable {
        parameters::portable(app, opts.mode)
    } else {
        BTreeMap::new()
    };
    let ami_parameters = parameters::ami_layout(app, portable.len());
    let (parameters, interface_groups) =
        parameters::build(app, opts, &waves, ami_parameters, &portable);
    let resources = resources::build(app, opts, &waves, ami_parameters);
    let outputs = outputs::build(app, &waves);

    let wave_names: Vec<Vec<&str>> = waves
        .iter()
        .map(|w| w.iter().map(|&g| app.groups[g].name.as_str()).collect())
        .collect();
    let mut body = Map::new();
    body.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
    body.insert("Description".into(), description(app, opts).into());
    body.insert(
        "Metadata".into(),
        json!({
            "rehost": {
                "application": app.name,
                "mode": opts.mode.as_str(),
                "healthGate": opts.health_gate,
                "portable": opts.portable,
                "launchWaves": wave_names,
                "generator": concat!("rehost ", env!("CARGO_PKG_VERSION")),
            },
            "AWS::CloudFormation::Interface": {"ParameterGroups": interface_groups},
        }),
    );
    let (resource_count, parameter_count, output_count) =
        (resources.len(), parameters.len(), outputs.len());
    body.insert("Parameters".into(), Value::Object(parameters));
    body.insert("Resources".into(), Value::Object(resources));
    body.insert("Outputs".into(), Value::Object(outputs));
    Template {
        body: Value::Object(body),
        resources: resource_count,
        parameters: parameter_count,
        outputs: output_count,
        ami_parameters,
    }
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

/// The application's description and what the template launches, cut to CloudFormation's limit.
fn description(app: &App, opts: &RenderOptions) -> String {
    let suffix = format!("(rehost application {}, {} launch)", app.name, opts.mode);
    let text = match &app.description {
        Some(d) => format!("{d} {suffix}"),
        None => suffix,
    };
    if text.len() <= MAX_TEMPLATE_DESCRIPTION {
        return text;
    }
    let mut end = MAX_TEMPLATE_DESCRIPTION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
