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
use std::sync::OnceLock;

use base64::Engine as _;
use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// Who the user data is for.
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
    app: Cow<'a, str>,
    group: Cow<'a, str>,
    server: Cow<'a, str>,
    gate: bool,
    script: Option<ScriptContext>,
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
        let script = self
            .script
            .map(|s| embed(&s.content, self.os, escape_for_sub));
        let context = Context {
            app: safe_name(self.app),
            group: safe_name(self.group),
            server: safe_name(self.server),
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

fn embed(content: &str, os: Os, escape_for_sub: bool) -> ScriptContext {
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
            // Fn::Sub reads `${...}` as a variable; `${!` is its escape for a literal `${`.
            if escape_for_sub {
                body = body.replace("${", "${!");
            }
            ScriptContext {
                body,
                delimiter,
                sha256,
            }
        }
        // Base64 holds no `$`, quote or `<`: nothing to escape, nothing can end the string.
        Os::Windows => ScriptContext {
            body: base64::engine::general_purpose::STANDARD.encode(content.as_bytes()),
            delimiter: String::new(),
            sha256,
        },
    }
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

    /// The base64 a PowerShell wrapper carries, decoded.
    fn embedded_powershell(raw: &str) -> Vec<u8> {
        let start = raw
            .find("FromBase64String('")
            .expect("the script travels as base64")
            + "FromBase64String('".len();
        let len = raw[start..].find('\'').unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(&raw[start..start + len])
            .unwrap()
    }

    #[test]
    fn powershell_here_string_terminators_cannot_end_the_embedded_script() {
        let mut hostile: Vec<String> = [
            "$x = @'\nhi\n'@\nWrite-Host after\n",
            "$x = @'\rhi\r'@\rWrite-Host after",
            "$x = @'\r\nhi\r\n'@\r\nWrite-Host after\r\n",
            "Write-Host '</powershell>'\n",
            "echo '<script>'\n",
            "Write-Host ok\n",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for quote in ['\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'] {
            for newline in ["\n", "\r", "\r\n"] {
                hostile.push(format!(
                    "$x = @{quote}{newline}hi{newline}{quote}@{newline}Write-Host after"
                ));
            }
        }
        for text in &hostile {
            let s = script(text, ScriptType::PowerShell);
            for gate in [true, false] {
                let raw = wrap(Os::Windows, Some(&s), gate).render_raw();
                assert_eq!(embedded_powershell(&raw), text.as_bytes(), "{text:?}");
                assert!(!raw.contains("@'"), "no here-string: {raw}");
                assert_eq!(raw.matches("</powershell>").count(), 1);
                assert!(raw.ends_with("</powershell>\n"));
                let Rendered::Sub(sub) = wrap(Os::Windows, Some(&s), true).render() else {
                    panic!()
                };
                assert_eq!(sub.matches("${").count(), 1, "only the gate URL");
            }
        }
    }

    #[test]
    fn wrappers_render_any_name_without_panicking() {
        let s = script("echo hi\n", ScriptType::Shell);
        for name in ["Web 01", "a\"b'c$(id)`x`\n\u{2019}@", ""] {
            for os in [Os::Linux, Os::Windows] {
                let raw = Wrapper {
                    app: name,
                    group: name,
                    server: name,
                    os,
                    script: Some(&s),
                    gate: true,
                }
                .render_raw();
                assert!(!raw.contains(name) || name.is_empty(), "{raw}");
            }
        }
        assert_eq!(safe_name("Web 01"), "_eb_01");
        assert_eq!(safe_name("web-01"), "web-01");
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
        // The URL reaches curl/wget through the shell's built-in printf, never their arguments.
        for line in raw.lines().filter(|l| l.contains("$url")) {
            let before_pipe = line.split('|').next().unwrap();
            assert!(before_pipe.trim_start().starts_with("printf"), "{line}");
        }
    }
}
