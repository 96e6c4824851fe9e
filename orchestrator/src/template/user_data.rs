//! Each instance's `UserData`, with every distinct wrapper body stored once.
//!
//! A server's user data is a short prelude of its own (its id, its gate's URL, the addresses
//! its checks use: `Fn::Sub [prelude, {GateUrl, Ip1..}]`) and a body shared by every server
//! with the same OS, configure script and checks, joined by a newline (`Fn::Join`). A body two
//! or more servers share goes to `Mappings` once and reaches each of them through
//! `Fn::FindInMap`; a body only one server uses stays inline. The body is never inside Fn::Sub,
//! so a script's `${...}` needs no escape. It must not read as a parameter reference either:
//! cfn-lint flags `${AWS::Region}` in any string outside Fn::Sub (E1029), mapping values
//! included, so a body holding `${` is written as the list of its pieces split at every `${`
//! and joined again with `Fn::Join` (no piece holds `${`; the delimiter is inserted verbatim).
//! CloudFormation allows 200 mappings of 200 attributes each: bodies beyond that stay inline.
//! (Why not the body as a Fn::Sub variable, which CloudFormation also inserts literally: the
//! emulator substitutes `${...}` again inside variable values.)

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::limits::{MAX_MAPPING_ATTRIBUTES, MAX_MAPPINGS};
use crate::userdata::{GATE_URL_VARIABLE, UserData, ip_variable};

/// The user data of every server, and where each body is stored.
pub(super) struct UserDataStore {
    /// By server index.
    data: Vec<Option<UserData>>,
    /// Body text -> (mapping name, attribute name), for bodies stored once.
    stored: HashMap<String, (String, String)>,
    /// The `Mappings` section.
    pub mappings: Map<String, Value>,
}

/// The mapping holding the `n`th (0-based) run of 200 bodies.
fn mapping_name(n: usize) -> String {
    if n == 0 {
        "RehostUserData".to_string()
    } else {
        format!("RehostUserData{}", n + 1)
    }
}

/// Second-level key of a stored body.
const TEXT_KEY: &str = "Text";

impl UserDataStore {
    /// `data[s]` is server `s`'s user data; `order` the servers in launch order (bodies are
    /// numbered by first use, so the template is deterministic).
    pub(super) fn new(data: Vec<Option<UserData>>, order: &[usize]) -> Self {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for d in data.iter().flatten() {
            *uses.entry(d.body.as_str()).or_default() += 1;
        }
        let mut stored = HashMap::new();
        let mut mappings = Map::new();
        let capacity = MAX_MAPPINGS * MAX_MAPPING_ATTRIBUTES;
        for &s in order {
            let Some(d) = &data[s] else { continue };
            if uses[d.body.as_str()] < 2 || stored.contains_key(&d.body) || stored.len() >= capacity
            {
                continue;
            }
            let n = stored.len();
            let (mapping, key) = (
                mapping_name(n / MAX_MAPPING_ATTRIBUTES),
                format!("Body{}", n + 1),
            );
            let value = if d.body.contains("${") {
                json!(d.body.split("${").collect::<Vec<_>>())
            } else {
                Value::String(d.body.clone())
            };
            mappings
                .entry(mapping.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("a mapping is an object")
                .insert(key.clone(), json!({ TEXT_KEY: value }));
            stored.insert(d.body.clone(), (mapping, key));
        }
        UserDataStore {
            data,
            stored,
            mappings,
        }
    }

    /// Server `s`'s `UserData` property. `gate_handle` is its group's handle when gated.
    pub(super) fn property(&self, app: &App, s: usize, gate_handle: Option<&str>) -> Value {
        let d = self.data[s]
            .as_ref()
            .expect("user data rendered for every server");
        let mut variables = Map::new();
        if let Some(handle) = gate_handle {
            variables.insert(GATE_URL_VARIABLE.into(), json!({"Ref": handle}));
        }
        for (i, &peer) in d.peers.iter().enumerate() {
            variables.insert(
                ip_variable(i + 1),
                json!({"Fn::GetAtt": [app.servers[peer].logical_id, "PrivateIp"]}),
            );
        }
        let body = match self.stored.get(&d.body) {
            Some((mapping, key)) => {
                let find = json!({"Fn::FindInMap": [mapping, key, TEXT_KEY]});
                if d.body.contains("${") {
                    json!({"Fn::Join": ["${", find]})
                } else {
                    find
                }
            }
            None if d.body.contains("${") => {
                json!({"Fn::Join": ["${", d.body.split("${").collect::<Vec<_>>()]})
            }
            None => Value::String(d.body.clone()),
        };
        // Without variables (no gate, no checks naming servers) the prelude is plain text.
        let prelude = if variables.is_empty() {
            Value::String(d.prelude.clone())
        } else {
            json!({"Fn::Sub": [d.prelude, variables]})
        };
        json!({"Fn::Base64": {"Fn::Join": ["\n", [prelude, body]]}})
    }
}
