//! Rendering: the three sections (parameters, resources, outputs) assembled with the
//! template's description and metadata.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::limits::MAX_TEMPLATE_DESCRIPTION;

use super::document::{RenderOptions, Template};
use super::{outputs, parameters, resources};

/// The application's template for one variant.
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
    let resources::Built {
        resources,
        mappings,
        gates,
    } = resources::build(app, opts, &waves, ami_parameters);
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
    if !mappings.is_empty() {
        body.insert("Mappings".into(), Value::Object(mappings));
    }
    body.insert("Resources".into(), Value::Object(resources));
    body.insert("Outputs".into(), Value::Object(outputs));
    Template {
        body: Value::Object(body),
        resources: resource_count,
        parameters: parameter_count,
        outputs: output_count,
        ami_parameters,
        gates,
    }
}

/// The application's description and what the template launches, cut to CloudFormation's limit.
fn description(app: &App, opts: &RenderOptions) -> String {
    let suffix = format!("(rehost application {}, {} launch)", app.name, opts.mode);
    let text = match &app.description {
        Some(d) => format!("{d} {suffix}"),
        None => suffix,
    };
    cut_description(text)
}

/// A template description cut to CloudFormation's limit (on a character boundary).
pub(super) fn cut_description(text: String) -> String {
    if text.len() <= MAX_TEMPLATE_DESCRIPTION {
        return text;
    }
    let mut end = MAX_TEMPLATE_DESCRIPTION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
