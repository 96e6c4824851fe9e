//! The checks only a rendered template can answer, run while loading an application: logical-id
//! collisions and CloudFormation's quotas, for every variant a launch can produce.

use std::collections::{BTreeMap, BTreeSet};

use crate::app::{App, Level, Mode, Origin};
use crate::diag::Diagnostics;
use crate::limits::{
    MAX_INLINE_BODY, MAX_OUTPUTS, MAX_PARAMETERS, MAX_RESOURCES, MAX_S3_BODY, MAX_SERVERS,
};

use super::document::{AmiParameters, RenderOptions, Template};
use super::names::{Names, PORTABLE_FIELDS};
use super::package::{nest_app_measured, quota_problems};
use super::render::render;
use super::{outputs, parameters, resources};

/// The checks only a rendered template can answer: logical-id collisions and CloudFormation's
/// quotas, for every variant a launch can produce (modes, gated or not, portable or not).
///
/// Resources, parameters and outputs are counted without rendering; only when every count fits
/// is each variant rendered, for its size, so an application far beyond what CloudFormation
/// takes is answered at once, whatever its size.
pub fn check(app: &App, diags: &mut Diagnostics) {
    check_names(app, diags);
    // Each quota is reported once, for the first variant that breaks it.
    let mut errors: BTreeMap<&str, String> = BTreeMap::new();
    let mut warnings: BTreeMap<&str, String> = BTreeMap::new();
    let mut notes: BTreeMap<&str, String> = BTreeMap::new();
    let variants: Vec<(String, RenderOptions)> = [Mode::Cutover, Mode::Test]
        .into_iter()
        .flat_map(|mode| {
            [false, true].map(|portable| {
                let what = format!("{mode}{} template", if portable { " portable" } else { "" });
                let opts = RenderOptions {
                    mode,
                    portable,
                    health_gate: true,
                    nested: false,
                    amis: BTreeMap::new(),
                };
                (what, opts)
            })
        })
        .collect();
    // Whether each variant is launched as one template or as nested stacks.
    let mut nested = vec![false; variants.len()];
    if app.servers.len() > MAX_SERVERS {
        errors.insert(
            "servers",
            format!(
                "{} servers: rehost launches at most {MAX_SERVERS} servers per application: split the application",
                app.servers.len()
            ),
        );
    }
    for (i, (what, opts)) in variants.iter().enumerate() {
        let c = counts(app, opts);
        if c.resources > MAX_RESOURCES || c.outputs > MAX_OUTPUTS {
            nested[i] = true;
            notes.entry("nested").or_insert_with(|| {
                format!(
                    "the {what} needs {} resources and {} outputs ({} instances, 2 launch-gate resources \
                     per group), over one CloudFormation template's {MAX_RESOURCES} and {MAX_OUTPUTS}: \
                     it is rendered as nested stacks, one per group",
                    c.resources,
                    c.outputs,
                    app.servers.len()
                )
            });
        }
        // The parent holds every parameter (and the children's location): nesting cannot help.
        if c.parameters + usize::from(nested[i]) > MAX_PARAMETERS {
            errors.entry("parameters").or_insert_with(|| {
                format!(
                    "the {what} needs {} parameters (one AMI list per group{}); CloudFormation allows \
                     {MAX_PARAMETERS} in the template that holds them, and nested stacks need one more: \
                     split the application",
                    c.parameters + usize::from(nested[i]),
                    if opts.portable { " and the portable settings" } else { "" },
                )
            });
        }
        if c.ami_parameters == AmiParameters::PerGroup {
            warnings.entry("amis").or_insert_with(|| {
                format!(
                    "{} servers do not fit one AMI parameter each within CloudFormation's {MAX_PARAMETERS} \
                     parameters: AMIs are passed as one list parameter per group",
                    app.servers.len()
                )
            });
        }
    }
    if errors.is_empty() {
        let rendered = render_variants(app, &variants, &nested);
        for ((what, _), rendered) in variants.iter().zip(rendered) {
            match rendered.size {
                Some(size) if size <= MAX_S3_BODY => {
                    if size > MAX_INLINE_BODY {
                        warnings.entry("size").or_insert_with(|| {
                            format!(
                                "the {what} is {size} bytes, over the {MAX_INLINE_BODY} bytes CloudFormation takes inline: \
                                 `rehost launch` uploads it to its S3 bucket"
                            )
                        });
                    }
                    continue;
                }
                Some(size) => {
                    notes.entry("nested").or_insert_with(|| {
                        format!(
                            "the {what} is {size} bytes, over the {MAX_S3_BODY} CloudFormation accepts for one \
                             template: it is rendered as nested stacks, one per group"
                        )
                    });
                }
                // Nested by its counts (noted above).
                None => {}
            }
            for (quota, message) in rendered.nested_problems {
                errors.entry(quota).or_insert(message);
            }
        }
    }
    for message in errors.into_values() {
        diags.error(app.servers_pos, message);
    }
    for message in warnings.into_values() {
        diags.warning(app.servers_pos, message);
    }
    for message in notes.into_values() {
        diags.note(app.servers_pos, message);
    }
}

/// What rendering one variant found: its compact length (not measured when the counts already
/// said it is nested: nothing reads it then) and, when it is launched as nested stacks, what
/// breaks the quotas of those (keyed by quota, as `check` reports them).
struct Rendered {
    size: Option<usize>,
    nested_problems: Vec<(&'static str, String)>,
}

/// Every variant rendered (and nested where `nested` says so or its size asks for it), two at
/// a time: they are independent, and rendering is most of what validating a large application
/// costs. Two, not four: each holds its whole template and nested stacks in memory, and hostile
/// files must stay answered in bounded memory. Results in variant order, so the messages are
/// deterministic.
fn render_variants(
    app: &App,
    variants: &[(String, RenderOptions)],
    nested: &[bool],
) -> Vec<Rendered> {
    let jobs: Vec<(&str, &RenderOptions, bool)> = variants
        .iter()
        .zip(nested)
        .map(|((what, opts), &nested)| (what.as_str(), opts, nested))
        .collect();
    let mut rendered = Vec::with_capacity(jobs.len());
    for pair in jobs.chunks(2) {
        std::thread::scope(|scope| {
            let second = pair.get(1).map(|&(what, opts, nested)| {
                scope.spawn(move || render_variant(app, what, opts, nested))
            });
            let (what, opts, nested) = pair[0];
            rendered.push(render_variant(app, what, opts, nested));
            if let Some(second) = second {
                rendered.push(
                    second
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
        });
    }
    rendered
}

/// One variant rendered and measured; nested (and its packages' quotas checked) when its counts
/// said so (`nested`) or its size says so.
fn render_variant(app: &App, what: &str, opts: &RenderOptions, nested: bool) -> Rendered {
    let flat = render(app, opts);
    let size = (!nested).then(|| flat.compact_len());
    let nested_problems = if nested || size > Some(MAX_S3_BODY) {
        nested_problems(app, what, opts, flat)
    } else {
        Vec::new()
    };
    Rendered {
        size,
        nested_problems,
    }
}

/// The quotas of every template of a nested launch: the parent's (a child stack per group or
/// part) and each child's, which splitting a group into parts could not bring under them.
/// Only the first child over a quota is reported.
fn nested_problems(
    app: &App,
    what: &str,
    opts: &RenderOptions,
    flat: Template,
) -> Vec<(&'static str, String)> {
    let package = match nest_app_measured(app, opts, flat) {
        Ok(package) => package,
        Err(e) => {
            return vec![(
                "nested",
                format!("the {what} cannot be rendered as nested stacks: {e}"),
            )];
        }
    };
    let mut found = Vec::new();
    let problems = quota_problems(&package.parent);
    if !problems.is_empty() {
        found.push((
            "parent",
            format!(
                "the parent of the {what}'s nested stacks needs {}: split the application",
                problems.join(", ")
            ),
        ));
    }
    if let Some((child, problems)) = package.first_child_over() {
        found.push((
            "child",
            format!(
                "nested stack {} of the {what} needs {} even after its group was split: \
                 shorten configure scripts or split the application",
                child.logical_id,
                problems.join(", ")
            ),
        ));
    }
    found
}

/// What a variant of the template will hold, counted without rendering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Counts {
    pub resources: usize,
    pub parameters: usize,
    pub outputs: usize,
    pub ami_parameters: AmiParameters,
}

/// The counts `render` arrives at, from the same decisions (`ami_layout`, `per_server`).
pub(super) fn counts(app: &App, opts: &RenderOptions) -> Counts {
    let portable = if opts.portable {
        parameters::portable(app, opts.mode).len()
    } else {
        0
    };
    let ami_parameters = parameters::ami_layout(app, portable);
    let amis = match ami_parameters {
        AmiParameters::PerServer => app.servers.len(),
        AmiParameters::PerGroup => app.groups.len(),
    };
    Counts {
        resources: resources::count(app, opts.health_gate),
        parameters: amis + portable,
        outputs: outputs::count(app),
        ami_parameters,
    }
}

/// Every logical id and parameter name the template can use must be unique (CloudFormation puts
/// parameters and resources in one namespace).
fn check_names(app: &App, diags: &mut Diagnostics) {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: String, owner: String, pos, diags: &mut Diagnostics| {
        if let Some(other) = taken.get(&name) {
            if *other != owner {
                diags.error(
                    pos,
                    format!(
                        "logical id `{name}` of {owner} collides with {other}; set a distinct `logicalId` on the server"
                    ),
                );
            }
        } else {
            taken.insert(name, owner);
        }
    };
    for group in &app.groups {
        let owner = format!("group `{}`", group.name);
        claim(
            Names::gate(&group.logical_stem, ""),
            owner.clone(),
            group.pos,
            diags,
        );
        claim(
            Names::gate_handle(&group.logical_stem, ""),
            owner.clone(),
            group.pos,
            diags,
        );
        claim(
            Names::group_image_parameter(&group.logical_stem),
            owner,
            group.pos,
            diags,
        );
    }
    for server in &app.servers {
        let owner = format!("server `{}`", server.id);
        claim(
            server.logical_id.clone(),
            owner.clone(),
            server.logical_id_pos,
            diags,
        );
        claim(
            Names::image_parameter(server),
            owner,
            server.logical_id_pos,
            diags,
        );
    }
    let mut origins: BTreeSet<(Origin, &str)> = BTreeSet::new();
    for server in &app.servers {
        for mode in [Mode::Cutover, Mode::Test] {
            for field in PORTABLE_FIELDS {
                if let Some((origin, _)) = (field.setting)(server.launch(mode)) {
                    origins.insert((origin, field.name));
                }
            }
        }
    }
    for (origin, field) in origins {
        let name = Names::portable_parameter(app, origin, field);
        let (pos, block) = match origin.level {
            Level::Server(s) => (
                app.servers[s].logical_id_pos,
                format!("server `{}`", app.servers[s].id),
            ),
            Level::Group(g) => (app.groups[g].pos, format!("group `{}`", app.groups[g].name)),
            Level::Defaults => (app.servers_pos, "defaults".to_string()),
        };
        let test = if origin.test { " test" } else { "" };
        claim(
            name,
            format!("the portable {field} parameter of {block}{test}"),
            pos,
            diags,
        );
    }
}
