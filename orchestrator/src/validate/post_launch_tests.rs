//! Post-launch checks: what validation accepts, and every refusal at its FILE:LINE:COL.

use super::tests::{HEAD, resolve_with};
use super::*;

/// db <- app <- web (web depends on db only through app), and batch on nothing.
fn app_with(checks_of_web: &str, extra: &str) -> String {
    format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  \
         - {{id: db01, os: linux, disks: [{{source: db.img}}]}}\n  \
         - {{id: app01, os: linux, disks: [{{source: app.img}}]}}\n  \
         - {{id: web01, os: linux, disks: [{{source: web.img}}]}}\n  \
         - {{id: web02, os: linux, disks: [{{source: web2.img}}]}}\n  \
         - {{id: batch01, os: linux, disks: [{{source: batch.img}}]}}\n\
         groups:\n  - {{name: db, servers: [db01]}}\n  - {{name: app, servers: [app01], dependsOn: [db]}}\n  \
         - name: web\n    servers: [web01, web02]\n    dependsOn: [app]\n    launch:\n      checks:\n{checks_of_web}\
         \x20 - {{name: batch, servers: [batch01]{extra}}}\n"
    )
}

#[test]
fn checks_resolve_named_servers_through_transitive_dependencies() {
    let text = app_with(
        "        - tcp: {host: '{{server:db01}}', port: 1433}\n          timeoutSeconds: 90\n\
         \x20       - http: {url: 'https://{{server:app01}}:8443/health?x={{server:db01}}', expectStatus: 204, contains: ok}\n\
         \x20       - script: check.sh\n",
        "",
    );
    let (app, problems) = resolve_with(&text, &[("check.sh", Ok(b"exit 0\n".as_slice()))]);
    assert_eq!(problems, Vec::<String>::new());
    let app = app.unwrap();
    let web = app.server("web01").unwrap();
    let checks = &web.cutover.checks;
    assert_eq!(checks.len(), 3);
    assert_eq!(checks, &web.test.checks, "the same checks in both modes");
    assert_eq!(checks[0].timeout_seconds, 90);
    assert_eq!(checks[1].timeout_seconds, 60, "the default");
    assert_eq!(checks[0].servers(), [0]);
    assert_eq!(checks[1].servers(), [1, 0]);
    let CheckKind::Http { expect_status, .. } = &checks[1].kind else {
        panic!()
    };
    assert_eq!(*expect_status, 204);
    let CheckKind::Script(s) = &checks[2].kind else {
        panic!()
    };
    assert_eq!(s.kind, ScriptType::Shell);
    assert!(app.server("batch01").unwrap().cutover.checks.is_empty());
}

#[test]
fn a_check_naming_a_server_not_launched_before_is_an_error_at_its_place() {
    let text = app_with(
        "        - tcp: {host: '{{server:web02}}', port: 80}\n\
         \x20       - tcp: {host: '{{server:batch01}}', port: 80}\n\
         \x20       - http: {url: 'http://{{server:dbo1}}/'}\n",
        ", launch: {checks: [{tcp: {host: '{{server:web01}}', port: 443}}]}",
    );
    let (app, problems) = resolve_with(&text, &[]);
    assert!(app.is_none());
    let joined = problems.join("\n");
    // web01 and web02 each report their group's checks; batch names a later server.
    assert!(
        joined.contains("names server `web02`, which does not launch before it"),
        "{joined}"
    );
    assert!(
        joined.contains("names server `batch01`, which does not launch before it"),
        "{joined}"
    );
    assert!(
        joined.contains(
            "check names server `dbo1`, which is not in the application (did you mean `db01`?)"
        ),
        "{joined}"
    );
    assert!(
        joined.contains("check of server `batch01` names server `web01`"),
        "{joined}"
    );
    let at = |needle: &str| {
        problems
            .iter()
            .find(|p| p.contains(needle))
            .map(|p| p.split(' ').next().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(at("`web02`, which"), "20:23", "at the host");
    assert_eq!(at("`dbo1`"), "22:23", "at the url");
}

#[test]
fn check_values_and_timeouts_have_limits() {
    let text = app_with(
        "        - tcp: {host: 'db01; rm -rf /', port: 70000}\n          timeoutSeconds: 0\n\
         \x20       - http: {url: 'ftp://x/', expectStatus: 99, contains: \"a\\tb\"}\n          timeoutSeconds: 3601\n\
         \x20       - http: {url: 'http://x/\"quoted\"'}\n\
         \x20       - {tcp: {host: a, port: 1}, script: x.sh}\n\
         \x20       - script: check.ps1\n",
        "",
    );
    let (app, problems) = resolve_with(&text, &[("check.ps1", Ok(b"exit 0\n".as_slice()))]);
    assert!(app.is_none());
    let joined = problems.join("\n");
    for expected in [
        "host `db01; rm -rf /` contains `;`, which a host cannot hold",
        "port must be between 1 and 65535, got 70000",
        "timeoutSeconds must be between 1 and 3600, got 0",
        "timeoutSeconds must be between 1 and 3600, got 3601",
        "url `ftp://x/` must start with http:// or https://",
        "expectStatus must be an HTTP status, 100 to 599, got 99",
        "contains must not contain control characters",
        "contains `\"`, which a url cannot hold",
        "a check is exactly one of `tcp`, `http` or `script`",
        // Linux servers run shell checks.
        "`check.ps1` looks like a POWERSHELL_SCRIPT but runs as SHELL_SCRIPT on server `web01`",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
}

#[test]
fn checks_count_toward_the_user_data_budget() {
    let big = "echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n".repeat(200);
    let text = app_with("        - script: big.sh\n", "");
    let (_, problems) = resolve_with(&text, &[("big.sh", Ok(big.as_bytes()))]);
    let joined = problems.join("\n");
    assert!(
        joined.contains("the checks is")
            || joined.contains("bytes once wrapped for server `web01`"),
        "{joined}"
    );
}

#[test]
fn checks_longer_than_the_signal_timeout_are_a_warning() {
    let text = app_with(
        "        - {tcp: {host: '{{server:db01}}', port: 1}, timeoutSeconds: 3600}\n",
        "",
    )
    .replace(
        "instanceType: m5.large}",
        "instanceType: m5.large, signalTimeoutMinutes: 30}",
    );
    let (app, problems) = resolve_with(&text, &[]);
    assert!(app.is_some(), "a warning, not an error: {problems:?}");
    assert!(
        problems.iter().any(
            |p| p.contains("may take up to 3600 s, more than its signalTimeoutMinutes (30 min")
        ),
        "{problems:?}"
    );
}
