//! Post-launch checks (`checks:`): each server's list from the most specific block that sets
//! one, every value checked, and every `{{server:ID}}` resolved to a server that launches
//! before this one: in a group this server's group depends on, directly or through others.
//! Anything else would make the check wait for a server that is not there yet (or never).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use crate::app::{CheckKind, CheckText, LaunchCheck, TextPart};
use crate::diag::Diagnostics;
use crate::limits::{CHECK_TIMEOUT_SECONDS, DEFAULT_CHECK_TIMEOUT_SECONDS, MAX_CHECK_TEXT};
use crate::model::{self, Spanned};
use crate::yaml::Pos;

use super::layers::Layers;
use super::scripts::{ScriptCache, ScriptFiles, read_declared};

/// What resolving `{{server:ID}}` needs from the whole application.
pub(super) struct Topology<'a> {
    pub server_index: &'a HashMap<&'a str, usize>,
    /// Each server's group, when it has one.
    pub memberships: &'a [Option<usize>],
    /// Each group's direct dependencies.
    pub depends_on: &'a [Vec<usize>],
    /// Groups each group waits for, directly or not: computed once per group that asks.
    ancestors: RefCell<HashMap<usize, Vec<bool>>>,
}

impl<'a> Topology<'a> {
    pub fn new(
        server_index: &'a HashMap<&'a str, usize>,
        memberships: &'a [Option<usize>],
        depends_on: &'a [Vec<usize>],
    ) -> Self {
        Topology {
            server_index,
            memberships,
            depends_on,
            ancestors: RefCell::new(HashMap::new()),
        }
    }

    /// Whether group `g` waits for group `before`, directly or through others.
    fn waits_for(&self, g: usize, before: usize) -> bool {
        let mut cache = self.ancestors.borrow_mut();
        let reach = cache.entry(g).or_insert_with(|| {
            let mut seen = vec![false; self.depends_on.len()];
            let mut stack: Vec<usize> = self.depends_on.get(g).cloned().unwrap_or_default();
            while let Some(d) = stack.pop() {
                if d < seen.len() && !seen[d] {
                    seen[d] = true;
                    stack.extend(self.depends_on[d].iter().copied());
                }
            }
            seen
        });
        reach.get(before).copied().unwrap_or(false)
    }
}

/// Where the server's check scripts and names come from.
pub(super) struct CheckInputs<'a> {
    pub base_dir: &'a Path,
    pub scripts: &'a ScriptFiles,
    pub cache: &'a ScriptCache,
    pub topology: &'a Topology<'a>,
}

/// The server's checks (and the position of the block they came from), each problem reported.
pub(super) fn resolve_checks(
    server: &model::Server,
    group: Option<usize>,
    layers: &Layers<'_>,
    inputs: &CheckInputs<'_>,
    diags: &mut Diagnostics,
) -> (Vec<LaunchCheck>, Option<Pos>) {
    let Some((declared, _)) = layers.launch(|l| l.checks.as_ref()) else {
        return (Vec::new(), None);
    };
    let mut out = Vec::with_capacity(declared.value.len());
    for check in &declared.value {
        let timeout_seconds = match &check.timeout_seconds {
            Some(t) if CHECK_TIMEOUT_SECONDS.contains(&t.value) => t.value as u32,
            Some(t) => {
                diags.error(
                    t.pos,
                    format!(
                        "timeoutSeconds must be between {} and {}, got {}",
                        CHECK_TIMEOUT_SECONDS.start(),
                        CHECK_TIMEOUT_SECONDS.end(),
                        t.value
                    ),
                );
                DEFAULT_CHECK_TIMEOUT_SECONDS
            }
            None => DEFAULT_CHECK_TIMEOUT_SECONDS,
        };
        let kind = if let Some(tcp) = &check.tcp {
            let host = text(&tcp.value.host, Syntax::Host, server, group, inputs, diags);
            let port = match u16::try_from(tcp.value.port.value) {
                Ok(p) if p > 0 => p,
                _ => {
                    diags.error(
                        tcp.value.port.pos,
                        format!(
                            "port must be between 1 and 65535, got {}",
                            tcp.value.port.value
                        ),
                    );
                    0
                }
            };
            host.map(|host| CheckKind::Tcp { host, port })
        } else if let Some(http) = &check.http {
            let url = text(&http.value.url, Syntax::Url, server, group, inputs, diags);
            let expect_status = match &http.value.expect_status {
                None => 200,
                Some(s) if (100..=599).contains(&s.value) => s.value as u16,
                Some(s) => {
                    diags.error(
                        s.pos,
                        format!(
                            "expectStatus must be an HTTP status, 100 to 599, got {}",
                            s.value
                        ),
                    );
                    200
                }
            };
            let contains = http.value.contains.as_ref().and_then(|c| {
                plain_text(&c.value)
                    .map_err(|e| diags.error(c.pos, format!("contains {e}")))
                    .ok()
                    .map(|()| c.value.clone())
            });
            url.map(|url| CheckKind::Http {
                url,
                expect_status,
                contains,
            })
        } else if let Some(script) = &check.script {
            read_declared(
                script,
                server.os.value.native_script(),
                &server.id.value,
                inputs.base_dir,
                inputs.scripts,
                inputs.cache,
                diags,
            )
            .map(CheckKind::Script)
        } else {
            None
        };
        if let Some(kind) = kind {
            out.push(LaunchCheck {
                kind,
                timeout_seconds,
            });
        }
    }
    (out, Some(declared.pos))
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    Host,
    Url,
}

/// Text with no control characters (checks' values are data; they must also fit one line of
/// a signal's reason), at most `MAX_CHECK_TEXT` characters.
fn plain_text(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > MAX_CHECK_TEXT {
        return Err(format!("is longer than {MAX_CHECK_TEXT} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A host or URL split at each `{{server:ID}}`, each named server checked.
fn text(
    value: &Spanned<String>,
    syntax: Syntax,
    server: &model::Server,
    group: Option<usize>,
    inputs: &CheckInputs<'_>,
    diags: &mut Diagnostics,
) -> Option<CheckText> {
    let what = match syntax {
        Syntax::Host => "host",
        Syntax::Url => "url",
    };
    if let Err(e) = plain_text(&value.value) {
        diags.error(value.pos, format!("{what} {e}"));
        return None;
    }
    let mut parts = Vec::new();
    let mut ok = true;
    let mut rest = value.value.as_str();
    while let Some(start) = rest.find("{{server:") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        if start > 0 {
            parts.push(TextPart::Literal(rest[..start].to_string()));
        }
        let id = &rest[start + "{{server:".len()..start + len];
        match named_server(id, server, group, inputs) {
            Ok(s) => parts.push(TextPart::ServerIp {
                server: s,
                id: id.to_string(),
            }),
            Err(e) => {
                diags.error(value.pos, e);
                ok = false;
            }
        }
        rest = &rest[start + len + 2..];
    }
    if !rest.is_empty() {
        parts.push(TextPart::Literal(rest.to_string()));
    }
    let literal: String = parts
        .iter()
        .filter_map(|p| match p {
            TextPart::Literal(l) => Some(l.as_str()),
            TextPart::ServerIp { .. } => None,
        })
        .collect();
    let bad = match syntax {
        // Names, IPv4 and bracketed IPv6 addresses.
        Syntax::Host => literal.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        }),
        // RFC 3986's characters: printable ASCII but space, quotes, `<>\^`{|}`.
        Syntax::Url => literal.chars().find(|c| {
            !c.is_ascii_graphic()
                || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
        }),
    };
    if let Some(c) = bad {
        diags.error(
            value.pos,
            format!(
                "{what} `{}` contains `{c}`, which a {what} cannot hold",
                value.value
            ),
        );
        ok = false;
    }
    if syntax == Syntax::Url {
        let lower = value.value.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            diags.error(
                value.pos,
                format!("url `{}` must start with http:// or https://", value.value),
            );
            ok = false;
        }
    }
    if parts.is_empty() {
        ok = false;
    }
    ok.then_some(CheckText(parts))
}

/// The index of the server `{{server:ID}}` names, if it launches before `server`.
fn named_server(
    id: &str,
    server: &model::Server,
    group: Option<usize>,
    inputs: &CheckInputs<'_>,
) -> Result<usize, String> {
    let topology = inputs.topology;
    let Some(&target) = topology.server_index.get(id) else {
        let close = crate::diag::suggestion(id, topology.server_index.keys().copied());
        return Err(format!(
            "check names server `{id}`, which is not in the application{close}"
        ));
    };
    let (Some(g), Some(t)) = (group, topology.memberships.get(target).copied().flatten()) else {
        // A server in no group is reported as such already.
        return Ok(target);
    };
    if !topology.waits_for(g, t) {
        return Err(format!(
            "check of server `{}` names server `{id}`, which does not launch before it: \
             its group must depend on `{id}`'s group (directly or through others)",
            server.id.value
        ));
    }
    Ok(target)
}
