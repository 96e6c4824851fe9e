//! CloudFormation's quotas decided right at their limits: validation's answer for an
//! application exactly at a quota and for one just over it. Template sizes here are measured
//! on the serialised text (`to_json_compact`), not with the length validation counts, so a
//! counting shortcut that drifted by a byte would move a decision and fail here.

use std::path::{Path, PathBuf};

use super::*;
use crate::app::{App, Mode};
use crate::diag::{Diagnostics, Severity};
use crate::limits::{MAX_INLINE_BODY, MAX_S3_BODY};

const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

/// The application as validation resolves it (configure scripts given by path), before the
/// template checks.
fn resolved(text: &str, scripts: Vec<(PathBuf, Vec<u8>)>) -> App {
    let root = crate::yaml::parse(text.as_bytes()).expect("valid YAML");
    let mut diags = Diagnostics::default();
    let model = crate::decode::application(&root, &mut diags).expect("decodes");
    let scripts: crate::validate::ScriptFiles =
        scripts.into_iter().map(|(p, s)| (p, Ok(s))).collect();
    let app = crate::validate::resolve(&model, Path::new("shop.yaml"), &scripts, &mut diags);
    assert!(!diags.has_errors(), "{:?}", diags.into_sorted());
    app.expect("valid application")
}

/// What the template checks answer: (severity, message), sorted.
fn checked(app: &App) -> Vec<(Severity, String)> {
    let mut diags = Diagnostics::default();
    check(app, &mut diags);
    diags
        .into_sorted()
        .into_iter()
        .map(|d| (d.severity, d.message))
        .collect()
}

/// `servers` Linux servers in `groups` groups of equal size, no subnet or security group (so
/// no portable parameters), no scripts.
fn plain(servers: usize, groups: usize) -> App {
    let mut text = format!("{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n");
    for s in 0..servers {
        text.push_str(&format!(
            "  - {{id: s{s}, os: linux, disks: [{{source: s{s}.img}}]}}\n"
        ));
    }
    text.push_str("groups:\n");
    let per = servers / groups;
    for g in 0..groups {
        let members: Vec<String> = (g * per..(g + 1) * per).map(|s| format!("s{s}")).collect();
        text.push_str(&format!(
            "  - {{name: g{g}, servers: [{}]}}\n",
            members.join(", ")
        ));
    }
    resolved(&text, Vec::new())
}

/// `servers` Linux servers in one group, each running its own configure script of
/// `script_len + extra[s]` bytes (one server each: every body stays inline).
fn scripted(servers: usize, script_len: usize, extra: &[usize]) -> App {
    let mut text = format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large, subnet: subnet-0a1b2c3d}}\nservers:\n"
    );
    let mut scripts = Vec::new();
    for s in 0..servers {
        text.push_str(&format!(
            "  - {{id: s{s}, os: linux, disks: [{{source: s{s}.img}}], launch: {{configureScript: s{s}.sh}}}}\n"
        ));
        // Each script its own (so no body is shared through `Mappings`); a letter adds one
        // byte to the JSON text: nothing in it is escaped.
        let pad = "a".repeat(script_len + extra.get(s).copied().unwrap_or(0));
        scripts.push((
            PathBuf::from(format!("s{s}.sh")),
            format!("#!/bin/sh\n# s{s} {pad}\n").into_bytes(),
        ));
    }
    let members: Vec<String> = (0..servers).map(|s| format!("s{s}")).collect();
    text.push_str(&format!(
        "groups:\n  - {{name: web, servers: [{}]}}\n",
        members.join(", ")
    ));
    resolved(&text, scripts)
}

/// The compact JSON length of the largest gated variant (the four validation checks).
fn largest_variant(app: &App) -> usize {
    [Mode::Cutover, Mode::Test]
        .into_iter()
        .flat_map(|mode| {
            [false, true].map(|portable| {
                let mut opts = RenderOptions::new(mode);
                opts.portable = portable;
                render(app, &opts).to_json_compact().len()
            })
        })
        .max()
        .expect("four variants")
}

/// Scripted servers whose largest variant is exactly `target` bytes: as many servers with a
/// 1,000-byte script as stay under it, then the scripts padded (spread over the servers, each
/// staying far under EC2's user-data budget).
fn scripted_at(target: usize) -> App {
    const SCRIPT: usize = 1_000;
    let size = |servers: usize| largest_variant(&scripted(servers, SCRIPT, &[]));
    let (one, two) = (size(1), size(2));
    let mut servers = 1 + (target - one) / (two - one);
    let mut base = size(servers);
    while base > target {
        servers -= 1;
        base = size(servers);
    }
    let missing = target - base;
    let extra: Vec<usize> = (0..servers)
        .map(|s| missing / servers + usize::from(s < missing % servers))
        .collect();
    let app = scripted(servers, SCRIPT, &extra);
    assert_eq!(
        largest_variant(&app),
        target,
        "padding adds a byte per letter"
    );
    app
}

fn has(messages: &[(Severity, String)], severity: Severity, text: &str) -> bool {
    messages
        .iter()
        .any(|(s, m)| *s == severity && m.contains(text))
}

#[test]
fn size_quotas_are_decided_at_the_exact_byte() {
    // 51,200 bytes go to CloudFormation inline; one more is uploaded to S3 (a warning).
    let at = checked(&scripted_at(MAX_INLINE_BODY));
    assert!(at.is_empty(), "{at:?}");
    let over = checked(&scripted_at(MAX_INLINE_BODY + 1));
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(
        has(
            &over,
            Severity::Warning,
            "template is 51201 bytes, over the 51200 bytes CloudFormation takes inline"
        ),
        "{over:?}"
    );

    // 1,000,000 bytes fit one template; one more is launched as nested stacks (a note, the
    // children within every quota once the group is split).
    // (Warnings beside: over 51,200 bytes, and too many servers for one AMI parameter each.)
    let at = checked(&scripted_at(MAX_S3_BODY));
    assert!(at.iter().all(|(s, _)| *s == Severity::Warning), "{at:?}");
    let over = checked(&scripted_at(MAX_S3_BODY + 1));
    assert!(!over.iter().any(|(s, _)| *s == Severity::Error), "{over:?}");
    assert!(
        has(
            &over,
            Severity::Note,
            "template is 1000001 bytes, over the 1000000 CloudFormation accepts for one template: \
             it is rendered as nested stacks, one per group"
        ),
        "{over:?}"
    );
}

#[test]
fn count_quotas_are_decided_at_the_exact_count() {
    // 498 instances and a gate's two resources are 500: one template (over 51,200 bytes).
    let at = checked(&plain(498, 1));
    assert!(
        has(&at, Severity::Warning, "CloudFormation takes inline"),
        "{at:?}"
    );
    assert!(!has(&at, Severity::Note, "nested"), "{at:?}");
    let over = checked(&plain(499, 1));
    assert!(
        has(
            &over,
            Severity::Note,
            "needs 501 resources and 3 outputs (499 instances, 2 launch-gate resources per group)"
        ),
        "{over:?}"
    );
    assert!(!over.iter().any(|(s, _)| *s == Severity::Error), "{over:?}");

    // 200 servers take one AMI parameter each; 201 take one list per group (a warning).
    let at = checked(&plain(200, 1));
    assert!(!has(&at, Severity::Warning, "AMIs are passed"), "{at:?}");
    let over = checked(&plain(201, 1));
    assert!(
        has(
            &over,
            Severity::Warning,
            "201 servers do not fit one AMI parameter each"
        ),
        "{over:?}"
    );

    // Nested: the parent holds one AMI list per group and `TemplateBaseUrl`: 199 groups make
    // 200 parameters, 200 groups one too many.
    let at = checked(&plain(398, 199));
    assert!(!at.iter().any(|(s, _)| *s == Severity::Error), "{at:?}");
    assert!(has(&at, Severity::Note, "rendered as nested stacks"));
    let over = checked(&plain(400, 200));
    let errors: Vec<&String> = over
        .iter()
        .filter(|(s, _)| *s == Severity::Error)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(errors.len(), 1, "{over:?}");
    assert!(
        errors[0].starts_with("the cutover template needs 201 parameters"),
        "{errors:?}"
    );
}

/// The length validation counts is serde_json's, for every character it escapes (short
/// escapes, `\u00XX`, quotes, backslashes), characters it does not (DEL, non-ASCII) and numbers.
#[test]
fn the_counted_length_is_the_serialised_length_for_every_escape() {
    let every_ascii: String = (0u8..128).map(char::from).collect();
    let value = serde_json::json!({
        "ascii": every_ascii,
        "non-ascii \u{e9}": "\u{fc}n\u{ef}code \u{2028} \u{1f600}",
        "numbers": [0, -1, 1.5, 1e300, -2.5e-8, u64::MAX, i64::MIN],
        "literals": [true, false, null, [], {}],
    });
    assert_eq!(
        compact_len(&value),
        serde_json::to_string(&value).unwrap().len()
    );
}
