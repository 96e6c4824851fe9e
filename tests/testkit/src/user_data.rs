//! What CloudFormation makes of the user data rehost renders: `Fn::Join ["\n", [prelude,
//! body]]`, the prelude a string or `Fn::Sub [text, variables]`, the body inline or from
//! `Mappings` through `Fn::FindInMap`, either joined with `Fn::Join` when written in pieces.

use std::collections::BTreeMap;

use serde_json::Value;

/// The user data instance `logical_id` receives, with `values` for the variables that are not
/// the body (`GateUrl`, `Ip1`...). Panics on a shape rehost does not render.
pub fn resolve_user_data(
    template: &Value,
    logical_id: &str,
    values: &BTreeMap<&str, String>,
) -> String {
    let join =
        &template["Resources"][logical_id]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"];
    assert_eq!(join[0], "\n", "prelude and body joined by a newline");
    let prelude = match &join[1][0] {
        Value::String(s) => s.clone(),
        sub => substitute(&sub["Fn::Sub"], values, logical_id),
    };
    format!("{prelude}\n{}", resolve(template, &join[1][1]))
}

/// Fn::Sub with the variables given `values`.
fn substitute(sub: &Value, values: &BTreeMap<&str, String>, logical_id: &str) -> String {
    let text = sub[0].as_str().expect("Fn::Sub's string");
    let variables = sub[1].as_object().expect("Fn::Sub's variables");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed variable") + start;
        let name = &rest[start + 2..end];
        assert!(
            variables.contains_key(name),
            "${{{name}}} is not a variable of {logical_id}'s user data"
        );
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("no value given for ${{{name}}}"));
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A string, a mapping lookup, or a join of a mapping's pieces.
fn resolve(template: &Value, v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let Some(find) = v.get("Fn::FindInMap") {
        let [map, key, attr] = [0, 1, 2].map(|i| find[i].as_str().unwrap());
        let value = &template["Mappings"][map][key][attr];
        return value
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| panic!("a mapping value read whole is a string: {value}"));
    }
    if let Some(join) = v.get("Fn::Join") {
        let delimiter = join[0].as_str().unwrap();
        let list = match join[1].get("Fn::FindInMap") {
            Some(find) => {
                let [map, key, attr] = [0, 1, 2].map(|i| find[i].as_str().unwrap());
                &template["Mappings"][map][key][attr]
            }
            None => &join[1],
        };
        let pieces: Vec<&str> = list
            .as_array()
            .expect("pieces")
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        return pieces.join(delimiter);
    }
    panic!("unexpected body: {v}")
}

/// The logical id of group `stem`'s gate (`{stem}Gate` + its 8-hex-digit generation), or of
/// its handle with `kind` = "GateHandle".
pub fn gate_id(t: &Value, stem: &str, kind: &str) -> String {
    let prefix = format!("{stem}{kind}");
    let found: Vec<&String> = t["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.strip_prefix(&prefix)
                .is_some_and(|g| g.len() == 8 && g.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .collect();
    assert_eq!(found.len(), 1, "one {prefix}: {found:?}");
    found[0].clone()
}
