//! Nested stacks as a transformation of the rendered flat template: its resources are split
//! into child templates (units), and a parent template launches one `AWS::CloudFormation::Stack`
//! per child.
//!
//! The transformation knows nothing of how resources are rendered. It follows every reference
//! the flat template holds — `Ref`, `Fn::GetAtt` (both forms), `Fn::Sub` variables (string and
//! list forms, `${!...}` escapes left alone), `Fn::FindInMap`, `Condition`/`Fn::If` and
//! `DependsOn` — and moves what crosses a child boundary through the parent:
//!
//! - a flat parameter a child uses becomes that child's parameter, passed by the parent
//!   (`Ref`, or `Fn::Join` for list types, which nested stacks take as comma-separated text);
//! - a resource of another child becomes a parameter of the child that uses it, an output of the
//!   child that holds it, and `Fn::GetAtt [Child, Outputs.Name]` in the parent (which also
//!   orders the two child stacks);
//! - a `DependsOn` across children becomes a `DependsOn` between the child stacks (unless a
//!   `Fn::GetAtt` already orders them);
//! - mappings and conditions are copied into every template that uses them (of a mapping, only
//!   the top-level keys it reads, when they are literal).
//!
//! Units are given as seeds (logical ids) in launch order; every other resource is placed by
//! its references: a resource that depends on others goes to the latest unit among them (so it
//! comes after all of them), a resource nothing else depends on in turn (a handle, say) to the
//! earliest unit that uses it (so it exists before all of them).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::references::{Reference, alphanumeric, collect, resource_references, rewrite};
use super::render::cut_description;
use placement::{assign, check_acyclic};

mod placement;

/// The parameter the parent takes for where its children live (`render`, `share`).
pub const TEMPLATE_BASE_URL: &str = "TemplateBaseUrl";

/// One child stack to make: its logical id in the parent and the resources it starts from.
#[derive(Clone, Debug)]
pub struct Unit {
    pub logical_id: String,
    pub seeds: Vec<String>,
}

/// A child template and its place in the parent.
#[derive(Clone, Debug)]
pub struct Child {
    /// The `AWS::CloudFormation::Stack` resource in the parent.
    pub logical_id: String,
    pub body: Value,
}

impl Child {
    /// The child's stable file name beside the parent (`render -o DIR`, `share`).
    pub fn file_name(&self) -> String {
        format!("{}.json", self.logical_id)
    }
}

/// What cannot be nested (a flat template this transformation does not understand).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NestError {
    #[error("the nested stacks would depend on each other in a cycle (through {0})")]
    Cycle(String),
    #[error("name `{0}` is used twice in the nested templates")]
    Collision(String),
    #[error("unit {unit} names resource `{seed}`, which the template does not hold")]
    UnknownSeed { unit: String, seed: String },
}

/// The flat template's sections, borrowed.
struct Flat<'a> {
    body: &'a Value,
    parameters: &'a Map<String, Value>,
    resources: &'a Map<String, Value>,
}

impl<'a> Flat<'a> {
    fn section(body: &'a Value, name: &str) -> &'a Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        body.get(name)
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }
}

/// What crosses from one child to another: the name of the parameter and output that carry it.
struct Crossings {
    names: BTreeMap<Reference, String>,
    taken: BTreeSet<String>,
}

impl Crossings {
    fn name(&mut self, reference: &Reference) -> String {
        if let Some(name) = self.names.get(reference) {
            return name.clone();
        }
        let base = match reference {
            Reference::Ref(x) => format!("{x}Ref"),
            Reference::Att(x, attr) => format!("{x}{}", alphanumeric(attr)),
            _ => unreachable!("only resources cross"),
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        self.names.insert(reference.clone(), name.clone());
        name
    }
}

/// The parent template and its children.
#[derive(Clone, Debug)]
pub struct Nested {
    pub parent: Value,
    pub children: Vec<Child>,
}

impl Nested {
    /// The parent with each child's `TemplateURL` fixed to where it was uploaded (`launch`),
    /// instead of under the `TemplateBaseUrl` parameter.
    pub fn with_urls(&self, urls: &[String]) -> Value {
        let mut parent = self.parent.clone();
        if let Some(params) = parent["Parameters"].as_object_mut() {
            params.remove(TEMPLATE_BASE_URL);
        }
        for (child, url) in self.children.iter().zip(urls) {
            parent["Resources"][&child.logical_id]["Properties"]["TemplateURL"] =
                url.clone().into();
        }
        parent
    }
}

/// Nests the flat template into one child per unit (units in launch order); the flat template
/// is left as it was (its resources are copied into the children).
pub fn nest(flat: &Value, units: &[Unit]) -> Result<Nested, NestError> {
    let resources = Flat::section(flat, "Resources");
    nest_resources(
        flat,
        resources,
        resources.values().cloned().collect(),
        units,
    )
}

/// As [`nest`], the flat template consumed: its resources are moved into the children, not
/// copied (validation nests four variants of a large application only to measure them, and
/// copying them was most of what that cost).
pub fn nest_owned(mut flat: Value, units: &[Unit]) -> Result<Nested, NestError> {
    let mut resources = flat
        .get_mut("Resources")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    // The ids stay in `resources` (every lookup by id reads them); the bodies move out.
    let bodies = resources.values_mut().map(Value::take).collect();
    nest_resources(&flat, &resources, bodies, units)
}

/// Nests `flat`, whose resources are `resources` (ids) with `bodies` (in the same order).
fn nest_resources(
    flat: &Value,
    resources: &Map<String, Value>,
    bodies: Vec<Value>,
    units: &[Unit],
) -> Result<Nested, NestError> {
    let f = Flat {
        body: flat,
        parameters: Flat::section(flat, "Parameters"),
        resources,
    };
    let refs: HashMap<&str, (Vec<Reference>, Vec<String>)> = f
        .resources
        .keys()
        .zip(&bodies)
        .map(|(id, r)| (id.as_str(), resource_references(r)))
        .collect();
    let unit_of = assign(&f, &refs, units)?;
    let mut taken: BTreeSet<String> = ["Parameters", "Mappings", "Conditions", "Outputs"]
        .iter()
        .flat_map(|s| Flat::section(flat, s).keys())
        .chain(f.resources.keys())
        .cloned()
        .collect();
    taken.insert(TEMPLATE_BASE_URL.into());
    for unit in units {
        if !taken.insert(unit.logical_id.clone()) {
            return Err(NestError::Collision(unit.logical_id.clone()));
        }
    }
    let mut crossings = Crossings {
        names: BTreeMap::new(),
        taken,
    };
    let mut children: Vec<Draft> = units.iter().map(|_| Draft::default()).collect();
    // Resources, in the flat template's order, with what crosses to other children.
    for (id, resource) in f.resources.keys().zip(bodies) {
        let u = unit_of[id.as_str()];
        let (references, depends) = &refs[id.as_str()];
        let mut local_depends = Vec::new();
        for d in depends {
            match unit_of.get(d.as_str()) {
                Some(&v) if v != u => {
                    children[u].ordered_after.insert(v);
                }
                _ => local_depends.push(Value::String(d.clone())),
            }
        }
        let mut replaced: BTreeMap<Reference, (String, Value)> = BTreeMap::new();
        for reference in references {
            let target = match reference {
                Reference::Ref(x) | Reference::Att(x, _) => x,
                other => {
                    children[u].uses(other.clone());
                    continue;
                }
            };
            if f.parameters.contains_key(target) {
                children[u].uses(Reference::Ref(target.clone()));
                continue;
            }
            let Some(&v) = unit_of.get(target.as_str()) else {
                continue; // a pseudo parameter
            };
            if v == u {
                continue;
            }
            // A `Ref X` keeps its text: the child's parameter is named `X`.
            let output = crossings.name(reference);
            let parameter = match reference {
                Reference::Ref(x) => x.clone(),
                _ => output.clone(),
            };
            children[u]
                .crossing_in
                .insert(parameter.clone(), (v, output.clone()));
            children[v].crossing_out.insert(output, reference.clone());
            replaced.insert(
                reference.clone(),
                (parameter.clone(), json!({"Ref": parameter})),
            );
        }
        let mut moved = if replaced.is_empty() {
            resource
        } else {
            rewrite(&resource, &|r| replaced.get(r).cloned())
        };
        if let Some(map) = moved.as_object_mut() {
            if local_depends.is_empty() {
                map.remove("DependsOn");
            } else if local_depends.len() != depends.len() {
                map.insert("DependsOn".into(), Value::Array(local_depends));
            }
        }
        children[u].resources.insert(id.clone(), moved);
    }
    build(&f, units, children, &unit_of, &mut crossings)
}

/// One child being built.
#[derive(Default)]
struct Draft {
    resources: Map<String, Value>,
    /// Flat parameters (`Ref`), mappings and conditions the child uses.
    used: BTreeSet<Reference>,
    /// Parameter name -> (the child that outputs it, the output's name).
    crossing_in: BTreeMap<String, (usize, String)>,
    /// Output name -> what it outputs, for other children or the parent.
    crossing_out: BTreeMap<String, Reference>,
    /// Children this one must follow without taking a value from them (`DependsOn`).
    ordered_after: BTreeSet<usize>,
    /// Outputs of the flat template about this child's resources only.
    outputs: Map<String, Value>,
}

impl Draft {
    fn uses(&mut self, reference: Reference) {
        self.used.insert(reference);
    }
}

fn is_list_type(parameter: &Value) -> bool {
    parameter["Type"]
        .as_str()
        .is_some_and(|t| t.starts_with("List<") || t == "CommaDelimitedList")
}

/// Adds the conditions, mappings and parameters the used conditions need, transitively.
fn close_conditions(used: &mut BTreeSet<Reference>, conditions: &Map<String, Value>) {
    let mut pending: Vec<String> = used
        .iter()
        .filter_map(|r| match r {
            Reference::Condition(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    while let Some(c) = pending.pop() {
        let mut found = Vec::new();
        if let Some(body) = conditions.get(&c) {
            collect(body, &mut found);
        }
        for r in found {
            if let Reference::Condition(next) = &r
                && !used.contains(&r)
            {
                pending.push(next.clone());
            }
            used.insert(r);
        }
    }
}

/// The sections a template needs for what it uses: parameters (definitions without defaults in
/// a child), mappings, conditions.
fn copy_used(f: &Flat<'_>, used: &BTreeSet<Reference>, body: &mut Map<String, Value>, child: bool) {
    let mut parameters = Map::new();
    for (name, def) in f.parameters {
        if used.contains(&Reference::Ref(name.clone())) {
            let mut def = def.clone();
            if child && let Some(map) = def.as_object_mut() {
                map.remove("Default");
            }
            parameters.insert(name.clone(), def);
        }
    }
    if !parameters.is_empty() {
        body.insert("Parameters".into(), Value::Object(parameters));
    }
    let mappings: Map<String, Value> = Flat::section(f.body, "Mappings")
        .iter()
        .filter(|(name, _)| used.contains(&Reference::Mapping(name.to_string())))
        .map(|(name, mapping)| {
            let mapping = match mapping.as_object() {
                Some(keys) if !used.contains(&Reference::MappingAnyKey(name.clone())) => {
                    Value::Object(
                        keys.iter()
                            .filter(|(key, _)| {
                                used.contains(&Reference::MappingKey(name.clone(), key.to_string()))
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    )
                }
                _ => mapping.clone(),
            };
            (name.clone(), mapping)
        })
        .collect();
    if !mappings.is_empty() {
        body.insert("Mappings".into(), Value::Object(mappings));
    }
    let conditions: Map<String, Value> = Flat::section(f.body, "Conditions")
        .iter()
        .filter(|(name, _)| used.contains(&Reference::Condition(name.to_string())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !conditions.is_empty() {
        body.insert("Conditions".into(), Value::Object(conditions));
    }
}

/// The children's templates and the parent that launches them.
fn build(
    f: &Flat<'_>,
    units: &[Unit],
    mut children: Vec<Draft>,
    unit_of: &HashMap<&str, usize>,
    crossings: &mut Crossings,
) -> Result<Nested, NestError> {
    // Outputs: about one child's resources -> that child's; about none -> the parent's; about
    // several -> the parent's, reading each child's value through its outputs.
    let mut parent_outputs = Map::new();
    let mut parent_used = BTreeSet::new();
    for (name, output) in Flat::section(f.body, "Outputs") {
        let mut references = Vec::new();
        collect(output, &mut references);
        let owners: BTreeSet<usize> = references
            .iter()
            .filter_map(|r| match r {
                Reference::Ref(x) | Reference::Att(x, _) => unit_of.get(x.as_str()).copied(),
                _ => None,
            })
            .collect();
        let resource_of = |r: &Reference| match r {
            Reference::Ref(x) | Reference::Att(x, _) => unit_of.get(x.as_str()).copied(),
            _ => None,
        };
        if owners.len() == 1 {
            let u = *owners.first().expect("one owner");
            for r in references.into_iter().filter(|r| resource_of(r).is_none()) {
                children[u].uses(r);
            }
            children[u].outputs.insert(name.clone(), output.clone());
            continue;
        }
        let mut replaced: BTreeMap<Reference, (String, Value)> = BTreeMap::new();
        for r in references {
            match resource_of(&r) {
                Some(v) => {
                    let out = crossings.name(&r);
                    children[v].crossing_out.insert(out.clone(), r.clone());
                    let value =
                        json!({"Fn::GetAtt": [units[v].logical_id, format!("Outputs.{out}")]});
                    replaced.insert(r, (out, value));
                }
                None => {
                    parent_used.insert(r);
                }
            }
        }
        parent_outputs.insert(name.clone(), rewrite(output, &|r| replaced.get(r).cloned()));
    }

    // Order between children: values they take from each other, and DependsOn.
    let takes: Vec<BTreeSet<usize>> = children
        .iter()
        .map(|c| c.crossing_in.values().map(|(v, _)| *v).collect())
        .collect();
    check_acyclic(units, &children, &takes)?;

    let description = f.body["Description"].as_str().unwrap_or_default();
    let rehost_metadata = f.body["Metadata"]["rehost"].clone();
    let mut parent_resources = Map::new();
    let mut out = Vec::new();
    for (u, (unit, mut draft)) in units.iter().zip(children).enumerate() {
        close_conditions(&mut draft.used, Flat::section(f.body, "Conditions"));
        let mut body = Map::new();
        body.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
        body.insert(
            "Description".into(),
            cut_description(format!("Nested stack {}: {description}", unit.logical_id)).into(),
        );
        let mut metadata = rehost_metadata.clone();
        if let Some(m) = metadata.as_object_mut() {
            m.insert("nestedStack".into(), unit.logical_id.clone().into());
        }
        body.insert("Metadata".into(), json!({"rehost": metadata}));
        copy_used(f, &draft.used, &mut body, true);
        // The parameters the parent passes: flat parameters, then values of other children.
        let mut passed = Map::new();
        for (name, def) in f.parameters {
            if draft.used.contains(&Reference::Ref(name.clone())) {
                let value = if is_list_type(def) {
                    json!({"Fn::Join": [",", {"Ref": name}]})
                } else {
                    json!({"Ref": name})
                };
                passed.insert(name.clone(), value);
            }
        }
        for (parameter, (v, output)) in &draft.crossing_in {
            let from = &units[*v].logical_id;
            let params = body
                .entry("Parameters")
                .or_insert_with(|| Value::Object(Map::new()));
            params[parameter] = json!({
                "Type": "String",
                "Description": format!("Output {output} of nested stack {from}"),
            });
            passed.insert(
                parameter.clone(),
                json!({"Fn::GetAtt": [from, format!("Outputs.{output}")]}),
            );
        }
        body.insert("Resources".into(), Value::Object(draft.resources));
        let mut outputs = draft.outputs;
        for (name, reference) in &draft.crossing_out {
            let value = match reference {
                Reference::Ref(x) => json!({"Ref": x}),
                Reference::Att(x, a) => json!({"Fn::GetAtt": [x, a]}),
                _ => unreachable!("only resources cross"),
            };
            outputs.insert(name.clone(), json!({"Value": value}));
        }
        if !outputs.is_empty() {
            body.insert("Outputs".into(), Value::Object(outputs));
        }
        let child = Child {
            logical_id: unit.logical_id.clone(),
            body: Value::Object(body),
        };
        let mut properties = Map::new();
        properties.insert(
            "TemplateURL".into(),
            json!({"Fn::Sub": format!("${{{TEMPLATE_BASE_URL}}}/{}", child.file_name())}),
        );
        if !passed.is_empty() {
            properties.insert("Parameters".into(), Value::Object(passed));
        }
        let mut stack = Map::new();
        stack.insert("Type".into(), "AWS::CloudFormation::Stack".into());
        let after: Vec<&str> = draft
            .ordered_after
            .difference(&takes[u])
            .map(|&v| units[v].logical_id.as_str())
            .collect();
        if !after.is_empty() {
            stack.insert("DependsOn".into(), json!(after));
        }
        stack.insert("Properties".into(), Value::Object(properties));
        parent_resources.insert(unit.logical_id.clone(), Value::Object(stack));
        out.push(child);
    }

    let mut parent = Map::new();
    parent.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
    parent.insert("Description".into(), description.into());
    let mut metadata = f.body["Metadata"].clone();
    if let Some(m) = metadata["rehost"].as_object_mut() {
        let ids: Vec<&str> = units.iter().map(|u| u.logical_id.as_str()).collect();
        m.insert("nestedStacks".into(), json!(ids));
    }
    if !metadata.is_null() {
        parent.insert("Metadata".into(), metadata);
    }
    let mut used: BTreeSet<Reference> = f
        .parameters
        .keys()
        .map(|p| Reference::Ref(p.clone()))
        .chain(parent_used)
        .collect();
    close_conditions(&mut used, Flat::section(f.body, "Conditions"));
    copy_used(f, &used, &mut parent, false);
    let params = parent
        .entry("Parameters")
        .or_insert_with(|| Value::Object(Map::new()));
    params[TEMPLATE_BASE_URL] = json!({
        "Type": "String",
        "Description": "Where the nested stacks' templates are: the URL of the S3 folder holding \
                        the files `rehost render --nested -o` or `rehost share` wrote, without a \
                        trailing slash",
        "AllowedPattern": "^https://\\S+[^/]$",
    });
    parent.insert("Resources".into(), Value::Object(parent_resources));
    if !parent_outputs.is_empty() {
        parent.insert("Outputs".into(), Value::Object(parent_outputs));
    }
    Ok(Nested {
        parent: Value::Object(parent),
        children: out,
    })
}
