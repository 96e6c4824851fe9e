//! Unit tests of the user-data wrappers.

use std::process::Command;

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

fn wrap<'a>(os: Os, script: Option<&'a ConfigureScript>, gate: bool) -> Wrapper<'a> {
    Wrapper {
        app: "shop",
        group: "web",
        server: "web01",
        os,
        script,
        checks: &[],
        gate,
    }
}

#[test]
fn wrapper_bodies_hold_no_sub_syntax() {
    // The body is a Fn::Sub variable's value: CloudFormation inserts it literally, but the
    // emulator reads `${...}` in it again, so the wrappers themselves never write `${`.
    for t in [SHELL, POWERSHELL] {
        assert!(
            !t.contains("${"),
            "a wrapper template must not contain `${{`"
        );
    }
}

#[test]
fn shell_script_embedded_literally_without_escapes() {
    let s = script(
        "#!/bin/bash\necho \"${HOME}\" $((1+1))\n",
        ScriptType::Shell,
    );
    let data = wrap(Os::Linux, Some(&s), true).render();
    assert!(data.body.contains("cat > \"$script\" <<'REHOST_CONFIGURE_EOF'\n#!/bin/bash\necho \"${HOME}\" $((1+1))\nREHOST_CONFIGURE_EOF\n"), "{}", data.body);
    assert_eq!(
        data.prelude,
        "#!/bin/sh\n# rehost: shop/web/web01 first-boot configuration, reported to the launch gate.\nserver='web01'\nurl='${GateUrl}'"
    );
    assert!(data.joined().starts_with("#!/bin/sh\n"));
    assert!(data.peers.is_empty());
}

#[test]
fn one_body_for_every_server_of_a_group() {
    let s = script("echo hi\n", ScriptType::Shell);
    let a = wrap(Os::Linux, Some(&s), true).render();
    let mut other = wrap(Os::Linux, Some(&s), true);
    other.server = "web02";
    let b = other.render();
    assert_eq!(a.body, b.body, "the server is named in the prelude only");
    assert_ne!(a.prelude, b.prelude);
}

#[test]
fn heredoc_delimiter_avoids_the_scripts_own_lines() {
    let s = script("echo a\nREHOST_CONFIGURE_EOF\necho b\n", ScriptType::Shell);
    let raw = wrap(Os::Linux, Some(&s), false).render().joined();
    assert!(raw.contains("<<'REHOST_CONFIGURE_EOF_1'\necho a\nREHOST_CONFIGURE_EOF\necho b\nREHOST_CONFIGURE_EOF_1\n"), "{raw}");
}

/// The base64 a PowerShell wrapper carries after `marker`, decoded.
fn embedded_powershell(raw: &str, marker: &str) -> Vec<u8> {
    let start = raw.find(marker).expect("the script travels as base64") + marker.len();
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
            let data = wrap(Os::Windows, Some(&s), gate).render();
            let raw = data.joined();
            assert_eq!(
                embedded_powershell(&raw, "Write-Embedded 'configure' '"),
                text.as_bytes(),
                "{text:?}"
            );
            assert!(!raw.contains("@'"), "no here-string: {raw}");
            assert_eq!(raw.matches("</powershell>").count(), 1);
            assert!(raw.ends_with("</powershell>\n"));
            assert!(!data.body.contains("${"), "nothing for Fn::Sub in the body");
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
                checks: &[],
                gate: true,
            }
            .render()
            .joined();
            assert!(!raw.contains(name) || name.is_empty(), "{raw}");
        }
    }
    assert_eq!(safe_name("Web 01"), "_eb_01");
    assert_eq!(safe_name("web-01"), "web-01");
}

#[test]
fn ungated_wrapper_never_signals() {
    let raw = wrap(Os::Linux, None, false).render().joined();
    assert!(!raw.contains("GateUrl"));
    assert!(!raw.contains("curl -sS --fail"));
    assert!(raw.starts_with("#!/bin/sh\n"));
    let ps = wrap(Os::Windows, None, false).render().joined();
    assert!(!ps.contains("GateUrl") && !ps.contains("UploadString"));
}

#[test]
fn gated_wrapper_signals_with_the_exit_code() {
    let raw = wrap(Os::Linux, None, true).render().joined();
    assert!(raw.contains("\\\"UniqueId\\\":\\\"$server\\\""));
    assert!(raw.contains("-H 'Content-Type:'"));
    let ps = wrap(Os::Windows, None, true).render().joined();
    assert!(ps.starts_with("<powershell>\n") && ps.ends_with("</powershell>\n"));
    assert!(ps.contains("UploadString($url, 'PUT', $body)"));
    assert!(ps.contains("$server = 'web01'"));
    // The URL reaches curl/wget through the shell's built-in printf, never their arguments.
    for line in raw.lines().filter(|l| l.contains("\"$url\"")) {
        let before_pipe = line.split('|').next().unwrap();
        assert!(before_pipe.trim_start().starts_with("printf"), "{line}");
    }
}

fn text(parts: Vec<TextPart>) -> CheckText {
    CheckText(parts)
}

fn literal(s: &str) -> TextPart {
    TextPart::Literal(s.into())
}

/// Values that would break out of a quoted shell word or PowerShell string if spliced in.
const HOSTILE: &str = "a'b\"c$(id)`id`${HOME}\\'; rm -rf / #</powershell>\u{2019}@";

#[test]
fn check_values_are_data_in_both_languages() {
    let peer = TextPart::ServerIp {
        server: 7,
        id: "sql01".into(),
    };
    let checks = [
        LaunchCheck {
            kind: CheckKind::Tcp {
                host: text(vec![peer.clone()]),
                port: 1433,
            },
            timeout_seconds: 30,
        },
        LaunchCheck {
            kind: CheckKind::Http {
                url: text(vec![literal("http://"), peer, literal("/it's?a=$(x)")]),
                expect_status: 204,
                contains: Some(HOSTILE.into()),
            },
            timeout_seconds: 60,
        },
    ];
    let mut w = wrap(Os::Linux, None, true);
    w.checks = &checks;
    let data = w.render();
    assert_eq!(data.peers, vec![7], "one address variable per named server");
    assert!(data.prelude.ends_with("ip_1='${Ip1}'"));
    assert_eq!(
        data.prelude.matches("${").count(),
        2,
        "GateUrl and Ip1 only"
    );
    // The shell reads each call's words back as exactly the values.
    let call = data
        .body
        .lines()
        .find(|l| l.contains("run_check 2 "))
        .unwrap()
        .trim()
        .trim_start_matches("run_check ")
        .trim_end_matches(" || { rc=1; break; }");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip_1=10.0.0.9; for w in {call}; do printf '%s\\n' \"$w\"; done"
        ))
        .output()
        .unwrap();
    let words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        words,
        [
            "2",
            "http http://{{server:sql01}}/it's?a=$(x)",
            "60",
            "http_until",
            "http://10.0.0.9/it's?a=$(x)",
            "204",
            HOSTILE
        ],
        "{call}"
    );

    let mut w = wrap(Os::Windows, None, true);
    w.checks = &checks;
    let ps = w.render();
    assert!(ps.prelude.ends_with("$ip1 = '${Ip1}'"));
    assert!(!ps.body.contains("${") && !ps.body.contains(HOSTILE));
    assert!(
        ps.body
            .contains("Wait-Check 30 { Test-TcpOnce ($ip1) 1433 }"),
        "{}",
        ps.body
    );
    let hostile_b64 = base64::engine::general_purpose::STANDARD.encode(HOSTILE);
    assert!(ps.body.contains(&format!("204 (D '{hostile_b64}')")));
    assert_eq!(ps.joined().matches("</powershell>").count(), 1);
}
