//! What a launch sends: one flat template while the application fits CloudFormation's quotas
//! for one template, else (and always with `--nested`) a parent template with one nested stack
//! per group, a group too large for one template split into parts.
//!
//! The units (which group's instances go to which child) are the one thing taken from the
//! application; everything else follows from the flat template's references (`nested`).

use std::borrow::Cow;

use serde_json::Value;

use crate::app::App;
use crate::limits::{MAX_OUTPUTS, MAX_PARAMETERS, MAX_RESOURCES, MAX_S3_BODY};

use super::document::{RenderOptions, Template};
use super::names::Names;
use super::nested::{Child, NestError, Nested, Unit, nest, nest_owned};
use super::render::render;

/// Rounds of splitting oversized children before the remaining problems are reported.
const MAX_SPLIT_ROUNDS: usize = 6;

/// A rendered launch: one template, or a parent and its children.
#[derive(Clone, Debug)]
pub enum Package {
    Flat(Template),
    Nested(NestedPackage),
}

#[derive(Clone, Debug)]
pub struct NestedPackage {
    /// The flat template the package was made from (what `plan` shows of a new launch).
    pub flat: Template,
    /// The parent, with each child under the `TemplateBaseUrl` parameter.
    pub parent: Template,
    pub children: Vec<Child>,
    /// Each child's compact length, measured once while nesting (validation's quota check
    /// reads it again).
    child_lens: Vec<usize>,
}

impl NestedPackage {
    fn from(nested: Nested, flat: Template, child_lens: Vec<usize>) -> Self {
        NestedPackage {
            parent: Template {
                resources: section_len(&nested.parent, "Resources"),
                parameters: section_len(&nested.parent, "Parameters"),
                outputs: section_len(&nested.parent, "Outputs"),
                body: nested.parent,
                ami_parameters: flat.ami_parameters,
                // The gates live in the children; their ids are the flat template's.
                gates: flat.gates.clone(),
            },
            flat,
            children: nested.children,
            child_lens,
        }
    }

    /// The parent with the children's uploaded URLs in place of `TemplateBaseUrl`.
    pub fn with_urls(&self, urls: &[String]) -> Template {
        let nested = Nested {
            parent: self.parent.body.clone(),
            children: self.children.clone(),
        };
        let mut parent = self.parent.clone();
        parent.body = nested.with_urls(urls);
        parent.parameters = section_len(&parent.body, "Parameters");
        parent
    }
}

impl NestedPackage {
    /// The files of the package, named for `ext` (`json`, `yaml`): the parent as `template.EXT`,
    /// each child as `<logical id>.EXT`, which the parent's `TemplateURL`s name under
    /// `TemplateBaseUrl`. The children are borrowed (only the parent's URLs change).
    pub fn files(&self, ext: &str) -> Vec<(String, Cow<'_, Value>)> {
        let mut parent = self.parent.body.clone();
        let mut files = Vec::with_capacity(self.children.len() + 1);
        for child in &self.children {
            let name = format!("{}.{ext}", child.logical_id);
            let url = &mut parent["Resources"][&child.logical_id]["Properties"]["TemplateURL"];
            if url.get("Fn::Sub").is_some() {
                *url = serde_json::json!({"Fn::Sub": format!("${{{}}}/{name}", super::nested::TEMPLATE_BASE_URL)});
            }
            files.push((name, Cow::Borrowed(&child.body)));
        }
        files.insert(0, (format!("template.{ext}"), Cow::Owned(parent)));
        files
    }
}

impl Package {
    /// The template CloudFormation is given (the parent when nested).
    pub fn top(&self) -> &Template {
        match self {
            Package::Flat(t) => t,
            Package::Nested(n) => &n.parent,
        }
    }

    /// The whole application in one template, as rendered before nesting.
    pub fn flat(&self) -> &Template {
        match self {
            Package::Flat(t) => t,
            Package::Nested(n) => &n.flat,
        }
    }

    /// The child templates (none for a flat launch).
    pub fn children(&self) -> &[Child] {
        match self {
            Package::Flat(_) => &[],
            Package::Nested(n) => &n.children,
        }
    }
}

fn section_len(body: &Value, section: &str) -> usize {
    body.get(section)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// What breaks one template's quotas (resources, parameters, outputs, size), as messages.
pub fn quota_problems(body: &Value) -> Vec<String> {
    quota_problems_of(body, compact_len(body))
}

/// As [`quota_problems`], the template's compact length `size` already measured.
fn quota_problems_of(body: &Value, size: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for (section, limit) in [
        ("Resources", MAX_RESOURCES),
        ("Parameters", MAX_PARAMETERS),
        ("Outputs", MAX_OUTPUTS),
    ] {
        let n = section_len(body, section);
        if n > limit {
            problems.push(format!(
                "{n} {}; CloudFormation allows {limit}",
                section.to_lowercase()
            ));
        }
    }
    if size > MAX_S3_BODY {
        problems.push(format!(
            "{size} bytes; CloudFormation accepts at most {MAX_S3_BODY}"
        ));
    }
    problems
}

/// The length of the compact JSON text (`serde_json::to_string`), counted without building
/// it: validation sizes every variant and every nested child, a few megabytes of text.
pub fn compact_len(body: &Value) -> usize {
    match body {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(n),
        Value::String(s) => string_len(s),
        // `[a,b]`
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(compact_len).sum::<usize>()
        }
        // `{"k":v,"l":w}`
        Value::Object(map) => {
            2 + map.len().saturating_sub(1)
                + map
                    .iter()
                    .map(|(k, v)| string_len(k) + 1 + compact_len(v))
                    .sum::<usize>()
        }
    }
}

/// A JSON string's length with its quotes and escapes. serde_json adds to each byte: `\"`,
/// `\\` and the short escapes `\b \t \n \f \r` one, any other control character five
/// (`\u001f`); nothing else is escaped (not DEL, not non-ASCII).
///
/// Written as comparisons summed in 16-bit lanes, not a table lookup: the compiler turns it
/// into vector code (a lookup cannot be), and validation sizes tens of megabytes of user-data
/// text for a large application.
fn string_len(s: &str) -> usize {
    let extra: usize = s
        .as_bytes()
        .chunks(4096)
        .map(|chunk| {
            // At most 5 per byte: 5 * 4096 fits a u16's 65,535.
            chunk
                .iter()
                .map(|&b| {
                    let control = u16::from(b < 0x20);
                    let short = u16::from(matches!(b, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d));
                    let quoted = u16::from(b == b'"' || b == b'\\');
                    control * 5 - short * 4 + quoted
                })
                .sum::<u16>() as usize
        })
        .sum();
    2 + s.len() + extra
}

/// A number as serde_json writes it (integers and floats have their own formatting; templates
/// hold a few, so serde_json writes them).
fn number_len(n: &serde_json::Number) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, n).expect("a number serializes");
    counter.0
}

/// Whether the flat template breaks a quota of one template.
pub fn needs_nesting(flat: &Template) -> bool {
    flat.resources > MAX_RESOURCES
        || flat.parameters > MAX_PARAMETERS
        || flat.outputs > MAX_OUTPUTS
        || flat.compact_len() > MAX_S3_BODY
}

/// The application's launch for these options: flat when it fits, nested when it does not or
/// when `opts.nested` asks for it.
pub fn render_package(app: &App, opts: &RenderOptions) -> Result<Package, NestError> {
    let flat = render(app, opts);
    if !opts.nested && !needs_nesting(&flat) {
        return Ok(Package::Flat(flat));
    }
    Ok(Package::Nested(nest_app(app, flat)?))
}

/// One unit per group in launch order; a group whose child breaks a quota is split into
/// parts of equal size, as many as the worst quota asks for, until every child fits (or after
/// a few rounds, leaving what remains for the quota check to report).
/// The flat template is kept in the package (taken, not copied: it is the size of all the
/// children together).
pub fn nest_app(app: &App, flat: Template) -> Result<NestedPackage, NestError> {
    nest_rounds(app, flat, vec![1; app.groups.len()], 1)
}

/// `nest_app` from round `round`, each group in `parts[g]` parts.
fn nest_rounds(
    app: &App,
    flat: Template,
    mut parts: Vec<usize>,
    mut round: usize,
) -> Result<NestedPackage, NestError> {
    loop {
        let (units, unit_group) = units(app, &flat, &parts);
        let nested = nest(&flat.body, &units)?;
        let lens = child_lens(&nested);
        if !split_further(app, &nested, &lens, &unit_group, &mut parts, round) {
            return Ok(NestedPackage::from(nested, flat, lens));
        }
        round += 1;
    }
}

/// A nested launch as validation measures it: its parent, and each child with its compact
/// length.
pub(super) struct NestedQuotas {
    pub(super) parent: Value,
    pub(super) children: Vec<Child>,
    pub(super) child_lens: Vec<usize>,
}

impl NestedQuotas {
    /// The first child that breaks a quota, with what it breaks.
    pub(super) fn first_child_over(&self) -> Option<(&Child, Vec<String>)> {
        self.children
            .iter()
            .zip(&self.child_lens)
            .map(|(child, &len)| (child, quota_problems_of(&child.body, len)))
            .find(|(_, problems)| !problems.is_empty())
    }
}

/// The templates `nest_app` makes of this variant, for validation, which only measures them:
/// the first round moves the flat template's resources into the children instead of copying
/// them (copies of four variants were most of what validating a large application cost). Only
/// when a group must be split is the variant rendered again for `nest_app`'s further rounds.
pub(super) fn nest_app_measured(
    app: &App,
    opts: &RenderOptions,
    flat: Template,
) -> Result<NestedQuotas, NestError> {
    let mut parts = vec![1; app.groups.len()];
    let (units, unit_group) = units(app, &flat, &parts);
    let nested = nest_owned(flat.body, &units)?;
    let lens = child_lens(&nested);
    if !split_further(app, &nested, &lens, &unit_group, &mut parts, 1) {
        return Ok(NestedQuotas {
            parent: nested.parent,
            children: nested.children,
            child_lens: lens,
        });
    }
    drop(nested);
    let package = nest_rounds(app, render(app, opts), parts, 2)?;
    Ok(NestedQuotas {
        parent: package.parent.body,
        children: package.children,
        child_lens: package.child_lens,
    })
}

/// One unit per group in launch order, group `g` in `parts[g]` parts of equal size; and each
/// unit's group.
fn units(app: &App, flat: &Template, parts: &[usize]) -> (Vec<Unit>, Vec<usize>) {
    let mut units = Vec::new();
    let mut unit_group = Vec::new();
    for g in app.graph.waves().into_iter().flatten() {
        let group = &app.groups[g];
        let seeds: Vec<String> = group
            .servers
            .iter()
            .map(|&s| app.servers[s].logical_id.clone())
            .filter(|id| flat.has_resource(id))
            .collect();
        let n = parts[g].min(seeds.len().max(1));
        let per = seeds.len().div_ceil(n).max(1);
        for (k, chunk) in seeds.chunks(per).enumerate() {
            let logical_id = if n == 1 {
                Names::nested_stack(&group.logical_stem)
            } else {
                Names::nested_stack_part(&group.logical_stem, k + 1)
            };
            units.push(Unit {
                logical_id,
                seeds: chunk.to_vec(),
            });
            unit_group.push(g);
        }
    }
    (units, unit_group)
}

fn child_lens(nested: &Nested) -> Vec<usize> {
    nested
        .children
        .iter()
        .map(|c| compact_len(&c.body))
        .collect()
}

/// Whether another round should split groups (`parts` updated for it): some child of round
/// `round` breaks a quota and its group can still be split, and rounds remain.
fn split_further(
    app: &App,
    nested: &Nested,
    lens: &[usize],
    unit_group: &[usize],
    parts: &mut [usize],
    round: usize,
) -> bool {
    if round >= MAX_SPLIT_ROUNDS {
        return false;
    }
    // The worst part of each group decides how many parts it gets next.
    let mut worst = vec![0.0f64; app.groups.len()];
    for ((child, &len), &g) in nested.children.iter().zip(lens).zip(unit_group) {
        worst[g] = worst[g].max(oversize(&child.body, len));
    }
    let mut split = false;
    for (g, &factor) in worst.iter().enumerate() {
        if factor > 1.0 && parts[g] < app.groups[g].servers.len() {
            let wanted = (parts[g] as f64 * factor).ceil() as usize;
            parts[g] = wanted.max(parts[g] + 1).min(app.groups[g].servers.len());
            split = true;
        }
    }
    split
}

/// How many times over its worst quota a child is (with a margin for what splitting adds:
/// parameters and outputs carried between the parts). `size` is its compact length.
fn oversize(body: &Value, size: usize) -> f64 {
    let ratio = |n: usize, limit: usize| n as f64 / (limit as f64 * 0.9);
    [
        ratio(section_len(body, "Resources"), MAX_RESOURCES),
        ratio(section_len(body, "Parameters"), MAX_PARAMETERS),
        ratio(section_len(body, "Outputs"), MAX_OUTPUTS),
        ratio(size, MAX_S3_BODY),
    ]
    .into_iter()
    .fold(0.0, f64::max)
}
