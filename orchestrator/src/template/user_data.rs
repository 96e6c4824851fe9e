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
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::limits::{MAX_MAPPING_ATTRIBUTES, MAX_MAPPINGS};
use crate::userdata::{GATE_URL_VARIABLE, UserData, ip_variable};

/// The user data of every server, and where each body is stored.
pub(super) struct UserDataStore {
    /// By server index.
    data: Vec<Option<UserData>>,
    /// By server index: its body's index in `bodies` (unused for servers without user data).
    body_of: Vec<usize>,
    /// Every distinct body text, in order of first use by server index.
    bodies: Vec<Body>,
    /// The `Mappings` section.
    pub mappings: Map<String, Value>,
}

/// One distinct body text, looked at once however many servers share it (a thousand servers
/// of a group share one wrapper of several kilobytes: hashing or scanning it per server cost
/// more than rendering the instance).
struct Body {
    text: Arc<str>,
    /// Holds `${`: written as its pieces joined on `${` (see the module's comment).
    split: bool,
    /// How many servers use it.
    uses: usize,
    /// Where it is stored once: (mapping name, attribute name).
    stored: Option<(String, String)>,
}

impl Body {
    /// The body as a template value that is not read as a parameter reference: the text, or
    /// its pieces around every `${`.
    fn pieces(&self) -> Value {
        if self.split {
            json!(self.text.split("${").collect::<Vec<_>>())
        } else {
            Value::String(self.text.to_string())
        }
    }
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
        // Bodies are told apart by their text; servers rendered from one wrapper share one
        // `Arc`, so its text is hashed once, not once per server.
        let mut by_address: HashMap<*const u8, usize> = HashMap::new();
        let mut by_text: HashMap<&str, usize> = HashMap::new();
        let mut bodies: Vec<Body> = Vec::new();
        let mut body_of = vec![usize::MAX; data.len()];
        for (s, d) in data.iter().enumerate() {
            let Some(d) = d else { continue };
            let address = Arc::as_ptr(&d.body).cast::<u8>();
            let i = match by_address.get(&address) {
                Some(&i) => i,
                None => {
                    let i = *by_text.entry(&*d.body).or_insert_with(|| {
                        bodies.push(Body {
                            text: d.body.clone(),
                            split: d.body.contains("${"),
                            uses: 0,
                            stored: None,
                        });
                        bodies.len() - 1
                    });
                    by_address.insert(address, i);
                    i
                }
            };
            bodies[i].uses += 1;
            body_of[s] = i;
        }
        let mut mappings = Map::new();
        let mut stored = 0;
        let capacity = MAX_MAPPINGS * MAX_MAPPING_ATTRIBUTES;
        for &s in order {
            if data[s].is_none() {
                continue;
            }
            let body = &mut bodies[body_of[s]];
            if body.uses < 2 || body.stored.is_some() || stored >= capacity {
                continue;
            }
            let (mapping, key) = (
                mapping_name(stored / MAX_MAPPING_ATTRIBUTES),
                format!("Body{}", stored + 1),
            );
            stored += 1;
            mappings
                .entry(mapping.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("a mapping is an object")
                .insert(key.clone(), json!({ TEXT_KEY: body.pieces() }));
            body.stored = Some((mapping, key));
        }
        UserDataStore {
            data,
            body_of,
            bodies,
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
        let body = &self.bodies[self.body_of[s]];
        let body = match &body.stored {
            Some((mapping, key)) => {
                let find = json!({"Fn::FindInMap": [mapping, key, TEXT_KEY]});
                if body.split {
                    json!({"Fn::Join": ["${", find]})
                } else {
                    find
                }
            }
            None if body.split => json!({"Fn::Join": ["${", body.pieces()]}),
            None => body.pieces(),
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
