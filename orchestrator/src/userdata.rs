//! EC2 user data for each server: the handlebars wrappers in `templates/` that run the
//! application's configure script at first boot and report SUCCESS or FAILURE (with the exit
//! code) to the group's launch gate with tools a bare OS has (curl/wget, PowerShell's WebClient),
//! because migrated images rarely carry cfn-bootstrap.
//!
//! The user's script is embedded literally (quoted heredoc / single-quoted here-string) so a
//! reviewer reads it in the template; when a script contains what would end that literal or
//! confuse EC2Launch's tag parsing, it is embedded as base64 instead. No user text can break out.

use std::sync::OnceLock;

use base64::Engine as _;
use handlebars::Handlebars;
use serde::Serialize;

use crate::app::{ConfigureScript, Os};

/// The Fn::Sub variable the wrappers reference; the template binds it to the gate handle.
pub const GATE_URL_VARIABLE: &str = "GateUrl";

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

/// Who the user data is for. Names are validated identifiers (`[a-z0-9-]`), safe in any context.
pub struct Wrapper<'a> {
    pub app: &'a str,
    pub group: &'a str,
    pub server: &'a str,
    pub os: Os,
    pub script: Option<&'a ConfigureScript>,
    /// Report to the group's launch gate (`${GateUrl}`); off with `--no-health-gate`.
    pub gate: bool,
}

#[derive(Serialize)]
struct Context<'a> {
    app: &'a str,
    group: &'a str,
    server: &'a str,
    gate: bool,
    script: Option<ScriptContext>,
}

#[derive(Serialize)]
struct ScriptContext {
    body: String,
    base64: bool,
    delimiter: String,
}

/// How the user data is written into the template.
pub enum Rendered {
    /// Contains `${GateUrl}`; every other `${` is escaped as `${!` so Fn::Sub leaves it alone.
    Sub(String),
    /// No variables: used as is.
    Plain(String),
}

impl Wrapper<'_> {
    /// The user data as the instance will receive it (with `${GateUrl}` still a placeholder).
    pub fn render_raw(&self) -> String {
        self.render_with(false)
    }

    /// The user data ready for the template: for Fn::Sub when gated, plain otherwise.
    pub fn render(&self) -> Rendered {
        if self.gate {
            Rendered::Sub(self.render_with(true))
        } else {
            Rendered::Plain(self.render_with(false))
        }
    }

    fn render_with(&self, escape_for_sub: bool) -> String {
        for name in [self.app, self.group, self.server] {
            debug_assert!(
                crate::syntax::check_id(name).is_ok(),
                "unvalidated name {name:?} in user data"
            );
        }
        let script = self
            .script
            .map(|s| embed(&s.content, self.os, escape_for_sub));
        let context = Context {
            app: self.app,
            group: self.group,
            server: self.server,
            gate: self.gate,
            script,
        };
        let template = match self.os {
            Os::Linux => "shell",
            Os::Windows => "powershell",
        };
        registry()
            .render(template, &context)
            .expect("wrapper context matches its template")
    }
}

fn embed(content: &str, os: Os, escape_for_sub: bool) -> ScriptContext {
    let mut body = content.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let base64 = match os {
        // A quoted heredoc ends only at its delimiter line, which is chosen to be absent.
        Os::Linux => false,
        Os::Windows => needs_base64_powershell(&body),
    };
    let delimiter = delimiter_for(&body);
    let body = if base64 {
        let encoded = base64::engine::general_purpose::STANDARD.encode(content.as_bytes());
        match os {
            Os::Linux => wrap_lines(&encoded, 76),
            Os::Windows => encoded,
        }
    } else {
        body
    };
    // Fn::Sub reads `${...}` as a variable; `${!` is its escape for a literal `${`.
    let body = if escape_for_sub {
        body.replace("${", "${!")
    } else {
        body
    };
    ScriptContext {
        body,
        base64,
        delimiter,
    }
}

/// A single-quoted here-string ends at a line starting with `'@`; EC2Launch extracts
/// `<powershell>`/`<script>`/`<persist>` blocks from the whole user data, so such text inside the
/// script would cut it short.
fn needs_base64_powershell(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    body.lines().any(|l| l.starts_with("'@"))
        || [
            "<powershell",
            "</powershell",
            "<script",
            "</script",
            "<persist",
            "</persist",
            "<runaslocalsystem",
        ]
        .iter()
        .any(|tag| lower.contains(tag))
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

fn wrap_lines(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width + 1);
    for chunk in text.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// Bytes of user data a server's wrapped script takes, for validation. Names are taken at their
/// maximum length so the bound holds whatever the application and group are called.
pub fn wrapped_size(script: &ConfigureScript, server: &str) -> usize {
    let long = "a".repeat(63);
    Wrapper {
        app: &long,
        group: &long,
        server,
        os: script.kind.os(),
        script: Some(script),
        gate: true,
    }
    .render_raw()
    .len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ScriptType;

    fn script(content: &str, kind: ScriptType) -> ConfigureScript {
        ConfigureScript {
            declared: "x".into(),
            path: "x".into(),
            kind,
            content: content.into(),
        }
    }

    fn wrap(os: Os, script: Option<&ConfigureScript>, gate: bool) -> Wrapper<'_> {
        Wrapper {
            app: "shop",
            group: "web",
            server: "web01",
            os,
            script,
            gate,
        }
    }

    #[test]
    fn templates_have_no_sub_variables_but_the_gate_url() {
        for t in [SHELL, POWERSHELL] {
            let without = t.replace("${GateUrl}", "");
            assert!(
                !without.contains("${"),
                "a wrapper template must not contain `${{` besides the gate URL"
            );
        }
    }

    #[test]
    fn shell_script_embedded_literally_and_escaped_for_sub() {
        let s = script(
            "#!/bin/bash\necho \"${HOME}\" $((1+1))\n",
            ScriptType::Shell,
        );
        let raw = wrap(Os::Linux, Some(&s), true).render_raw();
        assert!(raw.contains("cat > \"$script\" <<'REHOST_CONFIGURE_EOF'\n#!/bin/bash\necho \"${HOME}\" $((1+1))\nREHOST_CONFIGURE_EOF\n"), "{raw}");
        let Rendered::Sub(sub) = wrap(Os::Linux, Some(&s), true).render() else {
            panic!()
        };
        assert!(sub.contains("echo \"${!HOME}\""));
        assert!(sub.contains("url='${GateUrl}'"));
        assert_eq!(
            sub.matches("${").count(),
            2,
            "only the gate URL and the escaped one"
        );
    }

    #[test]
    fn heredoc_delimiter_avoids_the_scripts_own_lines() {
        let s = script("echo a\nREHOST_CONFIGURE_EOF\necho b\n", ScriptType::Shell);
        let raw = wrap(Os::Linux, Some(&s), false).render_raw();
        assert!(raw.contains("<<'REHOST_CONFIGURE_EOF_1'\necho a\nREHOST_CONFIGURE_EOF\necho b\nREHOST_CONFIGURE_EOF_1\n"), "{raw}");
    }

    #[test]
    fn powershell_falls_back_to_base64_when_the_script_could_escape() {
        for hostile in [
            "$x = @'\nhi\n'@\n",
            "Write-Host '</powershell>'\n",
            "echo '<script>'\n",
        ] {
            let s = script(hostile, ScriptType::PowerShell);
            let raw = wrap(Os::Windows, Some(&s), true).render_raw();
            assert!(raw.contains("FromBase64String"), "{hostile}");
            assert_eq!(raw.matches("</powershell>").count(), 1);
            let encoded = base64::engine::general_purpose::STANDARD.encode(hostile);
            assert!(raw.contains(&encoded));
        }
        let plain = script("Write-Host ok\n", ScriptType::PowerShell);
        let raw = wrap(Os::Windows, Some(&plain), true).render_raw();
        assert!(raw.contains("$text = @'\nWrite-Host ok\n'@\n"), "{raw}");
    }

    #[test]
    fn ungated_wrapper_never_signals() {
        let raw = wrap(Os::Linux, None, false).render_raw();
        assert!(!raw.contains("GateUrl"));
        assert!(!raw.contains("curl"));
        assert!(raw.starts_with("#!/bin/sh\n"));
        let Rendered::Plain(_) = wrap(Os::Windows, None, false).render() else {
            panic!()
        };
    }

    #[test]
    fn gated_wrapper_signals_with_the_exit_code() {
        let raw = wrap(Os::Linux, None, true).render_raw();
        assert!(raw.contains("\\\"UniqueId\\\":\\\"web01\\\""));
        assert!(raw.contains("-H 'Content-Type:'"));
        let ps = wrap(Os::Windows, None, true).render_raw();
        assert!(ps.starts_with("<powershell>\n") && ps.ends_with("</powershell>\n"));
        assert!(ps.contains("UploadString($url, 'PUT', $body)"));
    }
}
