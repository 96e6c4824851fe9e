//! The references a CloudFormation template value holds, and rewriting them: what nesting
//! (`nested`) follows across child templates. `Ref`, `Fn::GetAtt` (both forms), `Fn::Sub`
//! variables (string and list forms, `${!...}` literals skipped, local variables bound),
//! `Fn::FindInMap`, `Condition` and `Fn::If`; `DependsOn` as a resource attribute.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A reference found in a template value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Reference {
    /// `Ref X` or `${X}`.
    Ref(String),
    /// `Fn::GetAtt [X, Attr]`, `X.Attr` or `${X.Attr}`.
    Att(String, String),
    /// `Fn::FindInMap [X, ...]`: the mapping is used.
    Mapping(String),
    /// `Fn::FindInMap [X, Key, ...]` with a literal `Key`: that top-level key is read.
    MappingKey(String, String),
    /// `Fn::FindInMap [X, <not a literal>, ...]`: any key may be read.
    MappingAnyKey(String),
    Condition(String),
}

/// The variables of a `Fn::Sub` string (`${X}`, `${X.Attr}`), skipping `${!...}` literals.
pub(super) fn sub_variables(text: &str) -> Vec<&str> {
    let mut vars = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        if let Some(literal) = after.strip_prefix('!') {
            rest = literal;
            continue;
        }
        match after.find('}') {
            Some(end) => {
                vars.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    vars
}

pub(super) fn variable_reference(var: &str) -> Reference {
    match var.split_once('.') {
        Some((name, attr)) => Reference::Att(name.into(), attr.into()),
        None => Reference::Ref(var.into()),
    }
}

/// Every reference in `value` (not `DependsOn`, which is a resource attribute).
pub(super) fn collect(value: &Value, out: &mut Vec<Reference>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => {
            if map.len() == 1 {
                let (key, arg) = map.iter().next().expect("one entry");
                match (key.as_str(), arg) {
                    ("Ref", Value::String(name)) => return out.push(Reference::Ref(name.clone())),
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let (Some(Value::String(name)), Some(attr)) =
                            (parts.first(), parts.get(1))
                        {
                            match attr {
                                Value::String(attr) => {
                                    out.push(Reference::Att(name.clone(), attr.clone()))
                                }
                                other => {
                                    out.push(Reference::Ref(name.clone()));
                                    collect(other, out);
                                }
                            }
                            return;
                        }
                    }
                    ("Fn::GetAtt", Value::String(dotted)) => {
                        if let Some((name, attr)) = dotted.split_once('.') {
                            return out.push(Reference::Att(name.into(), attr.into()));
                        }
                    }
                    ("Fn::Sub", Value::String(text)) => {
                        return out.extend(sub_variables(text).into_iter().map(variable_reference));
                    }
                    ("Fn::Sub", Value::Array(parts)) => {
                        let locals = parts.get(1).and_then(Value::as_object);
                        if let Some(Value::String(text)) = parts.first() {
                            for var in sub_variables(text) {
                                if !locals.is_some_and(|l| l.contains_key(var)) {
                                    out.push(variable_reference(var));
                                }
                            }
                        }
                        if let Some(locals) = locals {
                            locals.values().for_each(|v| collect(v, out));
                        }
                        return;
                    }
                    ("Fn::FindInMap", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            out.push(Reference::Mapping(name.clone()));
                            // A child copies only the keys it reads (a group's child carries
                            // its own configure script, not every group's).
                            out.push(match parts.get(1) {
                                Some(Value::String(key)) => {
                                    Reference::MappingKey(name.clone(), key.clone())
                                }
                                _ => Reference::MappingAnyKey(name.clone()),
                            });
                        }
                        parts.iter().skip(1).for_each(|v| collect(v, out));
                        return;
                    }
                    ("Fn::If", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            out.push(Reference::Condition(name.clone()));
                        }
                        parts.iter().skip(1).for_each(|v| collect(v, out));
                        return;
                    }
                    ("Condition", Value::String(name)) => {
                        return out.push(Reference::Condition(name.clone()));
                    }
                    _ => {}
                }
            }
            map.values().for_each(|v| collect(v, out));
        }
        _ => {}
    }
}

/// A resource's references, its own `Condition` and `DependsOn` included.
pub(super) fn resource_references(resource: &Value) -> (Vec<Reference>, Vec<String>) {
    let mut refs = Vec::new();
    let mut depends = Vec::new();
    if let Some(map) = resource.as_object() {
        for (key, value) in map {
            match (key.as_str(), value) {
                ("DependsOn", Value::String(d)) => depends.push(d.clone()),
                ("DependsOn", Value::Array(ds)) => {
                    depends.extend(ds.iter().filter_map(Value::as_str).map(str::to_string))
                }
                ("Condition", Value::String(c)) => refs.push(Reference::Condition(c.clone())),
                ("Type", _) => {}
                _ => collect(value, &mut refs),
            }
        }
    }
    (refs, depends)
}

/// Only letters and digits, as logical ids and parameter names must be.
pub(super) fn alphanumeric(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Replaces references: a `Ref` or `Fn::GetAtt` (and the same inside `Fn::Sub` strings) that
/// `replace` answers for becomes its value; in a `Fn::Sub` the variable is renamed to the
/// answer's name, and bound as a local variable unless the value is `Ref` of that name.
pub(super) fn rewrite(
    value: &Value,
    replace: &dyn Fn(&Reference) -> Option<(String, Value)>,
) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| rewrite(v, replace)).collect()),
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            let reference = match (key.as_str(), arg) {
                ("Ref", Value::String(x)) => Some(Reference::Ref(x.clone())),
                ("Fn::GetAtt", Value::Array(p)) => match (p.first(), p.get(1)) {
                    (Some(Value::String(x)), Some(Value::String(a))) => {
                        Some(Reference::Att(x.clone(), a.clone()))
                    }
                    _ => None,
                },
                ("Fn::GetAtt", Value::String(d)) => d
                    .split_once('.')
                    .map(|(x, a)| Reference::Att(x.into(), a.into())),
                _ => None,
            };
            if let Some((_, value)) = reference.as_ref().and_then(replace) {
                return value;
            }
            match (key.as_str(), arg) {
                ("Fn::Sub", Value::String(text)) => rewrite_sub(text, None, replace),
                ("Fn::Sub", Value::Array(parts)) => match parts.first() {
                    Some(Value::String(text)) => {
                        rewrite_sub(text, parts.get(1).and_then(Value::as_object), replace)
                    }
                    _ => json!({"Fn::Sub": rewrite(arg, replace)}),
                },
                _ => json!({key.clone(): rewrite(arg, replace)}),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), rewrite(v, replace)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(super) fn rewrite_sub(
    text: &str,
    locals: Option<&Map<String, Value>>,
    replace: &dyn Fn(&Reference) -> Option<(String, Value)>,
) -> Value {
    let mut out = text.to_string();
    let mut bound: Map<String, Value> = locals
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), rewrite(v, replace)))
                .collect()
        })
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for var in sub_variables(text) {
        if bound.contains_key(var) || !seen.insert(var) {
            continue;
        }
        if let Some((name, value)) = replace(&variable_reference(var)) {
            if name != var {
                out = out.replace(&format!("${{{var}}}"), &format!("${{{name}}}"));
            }
            if value != json!({"Ref": name}) {
                bound.insert(name, value);
            }
        }
    }
    if bound.is_empty() && locals.is_none() {
        json!({"Fn::Sub": out})
    } else {
        json!({"Fn::Sub": [out, bound]})
    }
}
