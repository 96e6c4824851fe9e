//! EC2 user data for each server: the handlebars wrappers in `templates/` that run the
//! application's configure script at first boot and report SUCCESS or FAILURE (with the exit
//! code) to the group's launch gate with tools a bare OS has (curl/wget, PowerShell's WebClient),
//! because migrated images rarely carry cfn-bootstrap.
//!
//! No script content can break out of its wrapper: a shell script is embedded literally in a
//! quoted heredoc whose delimiter is chosen to be none of the script's lines (a reviewer reads it
//! in the template); a PowerShell script always travels as base64 of its exact bytes, because a
//! single-quoted here-string also ends after a lone `\r` and at Unicode quotes followed by `@`,
//! and EC2Launch cuts user data at `</powershell>` wherever it appears. Names are validated ids;
//! anything else (seen only while validation reports that id's error) is rendered with each other
//! character replaced by `_`, so rendering is total and the wrapper stays well-formed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::{CheckKind, CheckText, ConfigureScript, LaunchCheck, Os, TextPart};

/// The Fn::Sub variable the prelude references; the template binds it to the gate handle.
pub const GATE_URL_VARIABLE: &str = "GateUrl";
/// Longest text a `${IpN}` variable becomes (an IPv4 address).
const IP_LEN: usize = 15;

const SHELL: &str = include_str!("../../templates/configure-shell.sh.hbs");
const POWERSHELL: &str = include_str!("../../templates/configure-powershell.ps1.hbs");

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_template_string("shell", SHELL)
            .expect("templates/configure-shell.sh.hbs is valid handlebars");
        hb.register_template_string("powershell", POWERSHELL)
            .expect("templates/configure-powershell.ps1.hbs is valid handlebars");
        hb
    })
}

/// Wrapper bodies already rendered, for [`Wrapper::render_cached`]: one render per distinct
/// (OS, gate, configure script, checks) instead of one per server.
#[derive(Default)]
pub struct BodyCache {
    /// (Windows, gated, the script content's address or null) -> the checks and the body
    /// rendered for them.
    bodies: HashMap<BodyKey, Vec<RenderedBody>>,
    /// Every script content whose address is a key, kept alive so no address is reused while
    /// the cache lives.
    scripts: Vec<Arc<str>>,
}

/// What a wrapper body depends on besides the checks: (Windows, gated, the configure script
/// content's address, null without a script).
type BodyKey = (bool, bool, *const u8);

/// A body and the checks it was rendered for.
struct RenderedBody {
    checks: Vec<LaunchCheck>,
    body: Arc<str>,
}

/// Who the user data is for.
pub struct Wrapper<'a> {
    pub app: &'a str,
    pub group: &'a str,
    pub server: &'a str,
    pub os: Os,
    pub script: Option<&'a ConfigureScript>,
    /// Post-launch checks, run after the script and before the signal.
    pub checks: &'a [LaunchCheck],
    /// Report to the group's launch gate (`${GateUrl}`); off with `--no-health-gate`.
    pub gate: bool,
}

#[derive(Serialize)]
struct Context {
    gate: bool,
    script: Option<ScriptContext>,
    checks: Vec<CheckContext>,
    check_count: usize,
}

#[derive(Serialize)]
struct ScriptContext {
    /// Shell: the script's text for the heredoc. PowerShell: base64 of the script's bytes.
    body: String,
    /// The heredoc's end line (shell only).
    delimiter: String,
    /// Hex SHA-256 of the script, so a reviewer can match the base64 to the file.
    sha256: String,
}

#[derive(Serialize)]
struct CheckContext {
    n: usize,
    timeout: u32,
    /// Shell: the label, single-quoted.
    label: String,
    /// Shell: the command `run_check` runs, every value single-quoted.
    call: String,
    /// Shell: a script check's script.
    script: Option<ScriptContext>,
    /// PowerShell: base64 of the label.
    ps_label: String,
    /// PowerShell: the expression that runs the check (`$null` when it passed).
    ps_call: String,
}

/// A server's user data in two parts, joined by a newline: the prelude, which names the server,
/// its gate URL and the addresses its checks use (Fn::Sub variables), and the body, the same
/// for every server with the same script, checks and OS, which the template stores once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserData {
    /// Without its final newline.
    pub prelude: String,
    /// Shared by every server rendered from the same [`BodyCache`] entry.
    pub body: Arc<str>,
    /// Servers whose private IP the checks use: `${Ip1}` is the first, and so on.
    pub peers: Vec<usize>,
}

/// The Fn::Sub variable for the `n`th (1-based) peer address.
pub fn ip_variable(n: usize) -> String {
    format!("Ip{n}")
}

impl UserData {
    /// The whole text (the prelude's variables left as they are).
    pub fn joined(&self) -> String {
        format!("{}\n{}", self.prelude, self.body)
    }
}

impl Wrapper<'_> {
    pub fn render(&self) -> UserData {
        let peers = self.peers();
        UserData {
            prelude: self.prelude(peers.len()),
            body: self.body(&peers).into(),
            peers,
        }
    }

    /// As [`Wrapper::render`], the body taken from `cache` when a server with the same OS,
    /// gate, configure script and checks was rendered before (the body depends on nothing
    /// else: names are in the prelude).
    pub fn render_cached(&self, cache: &mut BodyCache) -> UserData {
        let peers = self.peers();
        let key = (
            self.os == Os::Windows,
            self.gate,
            self.script
                .map_or(std::ptr::null(), |s| Arc::as_ptr(&s.content).cast::<u8>()),
        );
        let rendered = cache.bodies.entry(key).or_default();
        let body = match rendered.iter().find(|r| r.checks.as_slice() == self.checks) {
            Some(r) => r.body.clone(),
            None => {
                let body: Arc<str> = self.body(&peers).into();
                rendered.push(RenderedBody {
                    checks: self.checks.to_vec(),
                    body: body.clone(),
                });
                if let Some(script) = self.script {
                    cache.scripts.push(script.content.clone());
                }
                body
            }
        };
        UserData {
            prelude: self.prelude(peers.len()),
            body,
            peers,
        }
    }

    /// The servers whose addresses the checks use, in order of first mention.
    fn peers(&self) -> Vec<usize> {
        let mut peers: Vec<usize> = Vec::new();
        for check in self.checks {
            for s in check.servers() {
                if !peers.contains(&s) {
                    peers.push(s);
                }
            }
        }
        peers
    }

    /// The wrapper around the script and checks: handlebars, and the script's base64 and
    /// SHA-256, most of the cost of user data.
    fn body(&self, peers: &[usize]) -> String {
        let peer_var = |s: usize| peers.iter().position(|&p| p == s).unwrap_or(0) + 1;
        let checks = self
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| check_context(i + 1, c, self.os, &peer_var))
            .collect::<Vec<_>>();
        let context = Context {
            gate: self.gate,
            script: self.script.map(|s| embed(&s.content, self.os)),
            check_count: checks.len(),
            checks,
        };
        let template = match self.os {
            Os::Linux => "shell",
            Os::Windows => "powershell",
        };
        registry()
            .render(template, &context)
            .expect("wrapper context matches its template")
    }

    /// Names are validated ids (made inert by `safe_name` otherwise): safe in a comment and
    /// in a single-quoted string of either language.
    fn prelude(&self, peers: usize) -> String {
        let gated = if self.gate {
            ", reported to the launch gate"
        } else {
            ""
        };
        let (app, group, server) = (
            safe_name(self.app),
            safe_name(self.group),
            safe_name(self.server),
        );
        let mut out = match self.os {
            Os::Linux => "#!/bin/sh\n".to_string(),
            Os::Windows => "<powershell>\n".to_string(),
        };
        out.push_str(&format!(
            "# rehost: {app}/{group}/{server} first-boot configuration{gated}.\n"
        ));
        let assign = |name: &str, value: &str| match self.os {
            Os::Linux => format!("{name}='{value}'\n"),
            Os::Windows => format!("${name} = '{value}'\n"),
        };
        out.push_str(&assign("server", &server));
        if self.gate {
            out.push_str(&assign("url", &format!("${{{GATE_URL_VARIABLE}}}")));
        }
        for n in 1..=peers {
            let name = match self.os {
                Os::Linux => format!("ip_{n}"),
                Os::Windows => format!("ip{n}"),
            };
            out.push_str(&assign(&name, &format!("${{{}}}", ip_variable(n))));
        }
        out.pop();
        out
    }
}

/// One check's values, encoded for the wrapper's language: single-quoted shell words, base64
/// in PowerShell; another server's address is a variable the prelude set.
fn check_context(
    n: usize,
    check: &LaunchCheck,
    os: Os,
    peer_var: &dyn Fn(usize) -> usize,
) -> CheckContext {
    let shell_text = |t: &CheckText| -> String {
        t.0.iter()
            .map(|p| match p {
                TextPart::Literal(l) => sh_quote(l),
                TextPart::ServerIp { server, .. } => format!("\"$ip_{}\"", peer_var(*server)),
            })
            .collect()
    };
    let ps_text = |t: &CheckText| -> String {
        let parts: Vec<String> =
            t.0.iter()
                .map(|p| match p {
                    TextPart::Literal(l) => format!("(D '{}')", b64(l)),
                    TextPart::ServerIp { server, .. } => format!("$ip{}", peer_var(*server)),
                })
                .collect();
        format!("({})", parts.join(" + "))
    };
    let t = check.timeout_seconds;
    let (label, call, ps_call, script) = match &check.kind {
        CheckKind::Tcp { host, port } => (
            format!("tcp {}:{port}", label_text(host)),
            format!("tcp_until {} '{port}'", shell_text(host)),
            format!("Wait-Check {t} {{ Test-TcpOnce {} {port} }}", ps_text(host)),
            None,
        ),
        CheckKind::Http {
            url,
            expect_status,
            contains,
        } => {
            let shell_contains = contains
                .as_deref()
                .map(|c| format!(" {}", sh_quote(c)))
                .unwrap_or_default();
            let ps_contains = contains
                .as_deref()
                .map_or_else(|| "$null".to_string(), |c| format!("(D '{}')", b64(c)));
            (
                format!("http {}", label_text(url)),
                format!(
                    "http_until {} '{expect_status}'{shell_contains}",
                    shell_text(url)
                ),
                format!(
                    "Wait-Check {t} {{ Test-HttpOnce {} {expect_status} {ps_contains} }}",
                    ps_text(url)
                ),
                None,
            )
        }
        CheckKind::Script(script) => (
            format!("script {}", script.declared),
            format!("script_check \"$dir/check-{n}.sh\""),
            format!("Test-Script '{}' {t}", b64(&script.content)),
            Some(embed(&script.content, os)),
        ),
    };
    CheckContext {
        n,
        timeout: t,
        label: sh_quote(&label),
        call,
        script: script.filter(|_| os == Os::Linux),
        ps_label: b64(&label),
        ps_call,
    }
}

/// A check's host or URL as its label shows it: a named server by its id.
fn label_text(t: &CheckText) -> String {
    t.0.iter()
        .map(|p| match p {
            TextPart::Literal(l) => l.clone(),
            TextPart::ServerIp { id, .. } => format!("{{{{server:{}}}}}", safe_name(id)),
        })
        .collect()
}

/// A POSIX shell word that is exactly `text`: single quotes keep everything literal, and a
/// quote itself is closed, escaped and reopened. Labels end up in the signal's JSON reason:
/// `"` and `\\` become `_` there (values never hold them: validation refuses them in URLs and
/// hosts, and `contains` never appears in a label).
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// The name itself when it is a valid id (always, once validation passed); otherwise each
/// character outside `[a-z0-9-]` becomes `_`, which is inert in a comment, a double-quoted shell
/// string, a single-quoted PowerShell string and JSON alike.
fn safe_name(name: &str) -> Cow<'_, str> {
    let inert = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.chars().all(inert) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(
            name.chars()
                .map(|c| if inert(c) { c } else { '_' })
                .collect(),
        )
    }
}

fn embed(content: &str, os: Os) -> ScriptContext {
    let sha256 = Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match os {
        Os::Linux => {
            // A quoted heredoc ends only at its delimiter line, which is chosen to be absent.
            let mut body = content.to_string();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            let delimiter = delimiter_for(&body);
            ScriptContext {
                body,
                delimiter,
                sha256,
            }
        }
        // Base64 holds no `$`, quote or `<`: nothing to escape, nothing can end the string.
        Os::Windows => ScriptContext {
            body: b64_bytes(content.as_bytes()),
            delimiter: String::new(),
            sha256,
        },
    }
}

fn b64_bytes(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn delimiter_for(body: &str) -> String {
    let taken = |d: &str| body.lines().any(|l| l.trim_end_matches('\r') == d);
    let mut delimiter = "REHOST_CONFIGURE_EOF".to_string();
    let mut n = 1;
    while taken(&delimiter) {
        delimiter = format!("REHOST_CONFIGURE_EOF_{n}");
        n += 1;
    }
    delimiter
}

/// Bytes of user data a server's wrapper takes, for validation, the gate URL not counted (the
/// budget keeps room for it). Names are taken at their maximum length, and each address at an
/// IPv4 address's, so the bound holds whatever the application and group are called.
pub fn wrapped_size(
    os: Os,
    script: Option<&ConfigureScript>,
    checks: &[LaunchCheck],
    server: &str,
) -> usize {
    let long = "a".repeat(63);
    let data = Wrapper {
        app: &long,
        group: &long,
        server,
        os,
        script,
        checks,
        gate: true,
    }
    .render();
    data.joined().len() + data.peers.len() * IP_LEN
}

#[cfg(test)]
#[path = "userdata_tests.rs"]
mod tests;
