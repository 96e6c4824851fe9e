//! The rendered shell wrapper run for real on this machine, against loopback stand-ins: a
//! listener for the launch gate's presigned URL, and listeners for the post-launch checks
//! (issue 10 part 3). What each run sends to the gate is what an instance would send.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rehost_testkit::{Rehost, resolve_user_data};
use serde_json::Value;

fn rehost(args: &[&str]) -> Output {
    Rehost::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .arg("--state")
        .arg(std::env::temp_dir().join("rehost-gate-wrapper-tests-no-state.db"))
        .run()
}

fn render(args: &[&str]) -> String {
    let out = rehost(args);
    assert!(
        out.status.success(),
        "rehost {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 template")
}

fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("template is JSON")
}

fn scratch(name: &str) -> PathBuf {
    rehost_testkit::scratch_dir("gate-wrapper", name)
}

/// What the stand-in launch gate received: one line per PUT, `PATH BODY`.
struct Gate {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A loopback HTTP listener standing in for the gate's presigned URL. It answers each PUT after
/// 300 ms, so the client process lives long enough to be seen in /proc.
fn stand_in_gate() -> Gate {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            seen.lock()
                .unwrap()
                .push(format!("{path} {}", String::from_utf8_lossy(&body)));
            std::thread::sleep(Duration::from_millis(300));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Gate {
        url: format!("http://127.0.0.1:{port}/gate/secret-token-4f2a?X-Amz-Signature=c0ffee"),
        requests,
    }
}

/// Runs `wrapper` with `sh`, watching every process's command line in /proc meanwhile. Returns
/// the exit code, the command lines of curl/wget processes seen, and whether any command line
/// held `secret`.
fn run_watched(wrapper: &Path, path_env: &str, secret: &str) -> (Option<i32>, Vec<String>, bool) {
    let mut child = Command::new("/bin/sh")
        .arg(wrapper)
        .env("PATH", path_env)
        .spawn()
        .unwrap();
    let mut clients = BTreeSet::new();
    let mut leaked = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            leaked |= cmdline.contains(secret);
            let program = cmdline.split(' ').next().unwrap_or("");
            if program.ends_with("curl") || program.ends_with("wget") {
                clients.insert(cmdline);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status.code(), clients.into_iter().collect(), leaked)
}

/// The shell wrapper run for real, once with curl and once with only wget on PATH, with a
/// loopback listener as the gate: the configure script is gone afterwards, the gate URL appears
/// on no process's command line, and SUCCESS or FAILURE arrives with the script's exit code.
#[test]
fn shell_wrapper_deletes_its_script_and_keeps_the_gate_url_off_command_lines() {
    let dir = scratch("gate-run");
    std::fs::write(dir.join("ok.sh"), "#!/bin/sh\necho configured\n").unwrap();
    std::fs::write(dir.join("fail.sh"), "echo broken\nexit 3\n").unwrap();
    let app = "apiVersion: rehost/v1\nkind: Application\nname: gated\ndefaults:\n  launch: {instanceType: m5.large}\nservers:\n  - {id: good, os: linux, disks: [{source: a.img}]}\n  - {id: bad, os: linux, disks: [{source: b.img}]}\ngroups:\n  - {name: g1, servers: [good], launch: {configureScript: ok.sh}}\n  - {name: g2, servers: [bad], dependsOn: [g1], launch: {configureScript: fail.sh}}\n";
    std::fs::write(dir.join("gated.yaml"), app).unwrap();
    let t = load(&render(&[
        "render",
        dir.join("gated.yaml").to_str().unwrap(),
    ]));

    // Only wget on PATH (plus what the wrapper itself calls), for the second round.
    let wget_only = dir.join("bin");
    std::fs::create_dir_all(&wget_only).unwrap();
    for tool in [
        "mkdir", "chmod", "rm", "cat", "head", "grep", "sleep", "wget",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not installed"));
        let _ = std::os::unix::fs::symlink(found, wget_only.join(tool));
    }
    let full_path = std::env::var("PATH").unwrap();
    for (client, path_env) in [
        ("curl", full_path.as_str()),
        ("wget", wget_only.to_str().unwrap()),
    ] {
        for (id, server, rc, status) in
            [("Good", "good", 0, "SUCCESS"), ("Bad", "bad", 3, "FAILURE")]
        {
            let gate = stand_in_gate();
            let state = dir.join(format!("{client}-{server}"));
            let values = [("GateUrl", gate.url.clone())].into_iter().collect();
            let sub = resolve_user_data(&t, id, &values)
                .replace("/var/lib/rehost", state.join("lib").to_str().unwrap())
                .replace("/var/log/", &format!("{}/", state.display()));
            std::fs::create_dir_all(&state).unwrap();
            let wrapper = state.join("user-data.sh");
            std::fs::write(&wrapper, &sub).unwrap();
            let (code, clients, leaked) = run_watched(&wrapper, path_env, "secret-token-4f2a");
            let what = format!("{client}, server {server}");
            assert_eq!(
                code,
                Some(rc),
                "{what}: the wrapper exits with the script's code"
            );
            assert!(
                clients.iter().any(|c| c.contains(client)),
                "{what}: {client} was seen running (so /proc was watched): {clients:?}"
            );
            assert!(
                !leaked,
                "{what}: the gate URL appeared on a command line: {clients:?}"
            );
            assert!(
                !state.join("lib/configure.sh").exists(),
                "{what}: the configure script is deleted after it ran"
            );
            let requests = gate.requests.lock().unwrap().clone();
            assert_eq!(requests.len(), 1, "{what}: {requests:?}");
            let (path, body) = requests[0].split_once(' ').unwrap();
            assert_eq!(
                path, "/gate/secret-token-4f2a?X-Amz-Signature=c0ffee",
                "{what}"
            );
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["Status"], status, "{what}");
            assert_eq!(body["Data"], rc.to_string(), "{what}");
            assert_eq!(body["UniqueId"], server, "{what}");
            let log = std::fs::read_to_string(state.join("rehost-configure.log")).unwrap();
            assert!(
                !log.contains("secret-token"),
                "{what}: the URL is never logged"
            );
        }
    }
}

/// A loopback service for the checks: `/ok` answers 200 with "service ready", `/missing` 404,
/// `/hang` accepts and never answers. Returns its port.
fn stand_in_service() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/ok" => ("200 OK", "<html>service ready</html>"),
                    "/hang" => {
                        std::thread::sleep(Duration::from_secs(30));
                        return;
                    }
                    _ => ("404 Not Found", "no such page"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Issue 10 part 3: post-launch checks run inside the gate. The rendered shell wrapper of each
/// server runs here against loopback listeners and a loopback gate; `{{server:db01}}` is
/// db01's private IP through Fn::Sub's `Ip1` variable (127.0.0.1 here). Each server sends what
/// it should: SUCCESS when every check passes, FAILURE naming the check and its error for a
/// closed port, a wrong status, missing text, a timeout and a failing script check.
#[test]
fn post_launch_checks_run_in_the_shell_wrapper_and_report_to_the_gate() {
    let dir = scratch("checks");
    let port = stand_in_service();
    let closed = closed_port();
    std::fs::write(dir.join("configure.sh"), "#!/bin/sh\necho configured\n").unwrap();
    std::fs::write(dir.join("pass.sh"), "echo checked\n").unwrap();
    std::fs::write(dir.join("fail.sh"), "echo nope\nexit 4\n").unwrap();
    let server = |id: &str| format!("  - {{id: {id}, os: linux, disks: [{{source: {id}.img}}]}}\n");
    let ids = ["db01", "ok", "closed", "status", "text", "hang", "script"];
    let mut app = String::from(
        "apiVersion: rehost/v1\nkind: Application\nname: checked\ndefaults:\n  launch: {instanceType: m5.large}\nservers:\n",
    );
    for id in ids {
        app.push_str(&server(id));
    }
    app.push_str("groups:\n  - {name: db, servers: [db01]}\n");
    let group = |name: &str, checks: &str| {
        format!(
            "  - name: {name}\n    servers: [{name}]\n    dependsOn: [db]\n    launch:\n      configureScript: configure.sh\n      checks:\n{checks}"
        )
    };
    app.push_str(&group(
        "ok",
        &format!(
            "        - tcp: {{host: '{{{{server:db01}}}}', port: {port}}}\n\
             \x20       - http: {{url: 'http://{{{{server:db01}}}}:{port}/ok', expectStatus: 200, contains: ready}}\n\
             \x20         timeoutSeconds: 20\n\
             \x20       - script: pass.sh\n"
        ),
    ));
    app.push_str(&group(
        "closed",
        &format!("        - {{tcp: {{host: 127.0.0.1, port: {closed}}}, timeoutSeconds: 3}}\n"),
    ));
    app.push_str(&group(
        "status",
        &format!(
            "        - {{http: {{url: 'http://127.0.0.1:{port}/missing'}}, timeoutSeconds: 3}}\n"
        ),
    ));
    app.push_str(&group(
        "text",
        &format!(
            "        - {{http: {{url: 'http://{{{{server:db01}}}}:{port}/ok', contains: \"it's \\\"up\\\" $(id)\"}}, timeoutSeconds: 3}}\n"
        ),
    ));
    app.push_str(&group(
        "hang",
        &format!(
            "        - {{http: {{url: 'http://127.0.0.1:{port}/hang'}}, timeoutSeconds: 3}}\n"
        ),
    ));
    app.push_str(&group(
        "script",
        &format!(
            "        - {{tcp: {{host: localhost, port: {port}}}}}\n        - script: fail.sh\n"
        ),
    ));
    std::fs::write(dir.join("checked.yaml"), &app).unwrap();
    let t = load(&render(&[
        "render",
        dir.join("checked.yaml").to_str().unwrap(),
    ]));
    assert_eq!(
        t["Resources"]["Ok"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1][0]["Fn::Sub"]
            [1]["Ip1"],
        serde_json::json!({"Fn::GetAtt": ["Db01", "PrivateIp"]}),
        "the named server's address comes from Fn::GetAtt"
    );

    let expected: [(&str, &str, &str); 6] = [
        ("Ok", "SUCCESS", "configure script and 3 check(s) passed"),
        (
            "Closed",
            "FAILURE",
            &format!(
                "check 1 (tcp 127.0.0.1:{closed}) failed: timed out after 3 s; no connection to 127.0.0.1:{closed}"
            ),
        ),
        (
            "Status",
            "FAILURE",
            &format!(
                "check 1 (http http://127.0.0.1:{port}/missing) failed: timed out after 3 s; http://127.0.0.1:{port}/missing answered 404, expected 200"
            ),
        ),
        (
            "Text",
            "FAILURE",
            &format!(
                "check 1 (http http://{{{{server:db01}}}}:{port}/ok) failed: timed out after 3 s; the answer of http://127.0.0.1:{port}/ok does not contain the expected text"
            ),
        ),
        (
            "Hang",
            "FAILURE",
            &format!("check 1 (http http://127.0.0.1:{port}/hang) failed: timed out after 3 s"),
        ),
        (
            "Script",
            "FAILURE",
            "check 2 (script fail.sh) failed: exited with 4",
        ),
    ];
    let path = std::env::var("PATH").unwrap();
    for (id, status, reason) in expected {
        let gate = stand_in_gate();
        let state = dir.join(id);
        std::fs::create_dir_all(&state).unwrap();
        let values: BTreeMap<&str, String> = [
            ("GateUrl", gate.url.clone()),
            ("Ip1", "127.0.0.1".to_string()),
        ]
        .into_iter()
        .collect();
        let wrapper = state.join("user-data.sh");
        std::fs::write(
            &wrapper,
            resolve_user_data(&t, id, &values)
                .replace("/var/lib/rehost", state.join("lib").to_str().unwrap())
                .replace("/var/log/", &format!("{}/", state.display())),
        )
        .unwrap();
        let started = Instant::now();
        let (code, _, _) = run_watched(&wrapper, &path, "secret-token-4f2a");
        let took = started.elapsed();
        let requests = gate.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1, "{id}: one signal: {requests:?}");
        let (_, body) = requests[0].split_once(' ').unwrap();
        let body: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{id}: the signal is JSON ({e}): {body}"));
        assert_eq!(body["Status"], status, "{id}: {body}");
        assert_eq!(body["UniqueId"], id.to_lowercase(), "{id}");
        let got = body["Reason"].as_str().unwrap();
        assert!(
            got.starts_with(reason),
            "{id}: reason {got:?}, expected {reason:?}"
        );
        assert_eq!(code, Some(if status == "SUCCESS" { 0 } else { 1 }), "{id}");
        if reason.contains("timed out after 3 s") {
            assert!(
                took < Duration::from_secs(15),
                "{id}: the check's timeout bounds it ({took:?})"
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(state.join("lib"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            leftovers.is_empty(),
            "{id}: scripts and scratch files removed: {leftovers:?}"
        );
    }
}

/// Regression: under heavy load a failing script check was once reported as "timed out after
/// 60 s" although it had exited with 4 at once. Whatever ends the watcher's sleep early (here a
/// `sleep` on PATH that returns at once, standing in for a sleep that could not start or woke
/// early), a command that fails fast is reported with its own exit code, never as a timeout.
#[test]
fn a_check_that_fails_fast_is_never_reported_as_timed_out_when_the_watcher_wakes_early() {
    let dir = scratch("early-watcher");
    std::fs::write(dir.join("fail.sh"), "echo nope\nexit 4\n").unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: rehost/v1\nkind: Application\nname: early\ndefaults:\n  launch: {instanceType: m5.large}\n\
         servers:\n  - {id: web, os: linux, disks: [{source: web.img}]}\n\
         groups:\n  - name: web\n    servers: [web]\n    launch:\n      checks:\n        - script: fail.sh\n",
    )
    .unwrap();
    let t = load(&render(&["render", dir.join("app.yaml").to_str().unwrap()]));
    let fake = dir.join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("sleep"), "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fake.join("sleep"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());

    let gate = stand_in_gate();
    let state = dir.join("run");
    std::fs::create_dir_all(&state).unwrap();
    let values: BTreeMap<&str, String> = [("GateUrl", gate.url.clone())].into_iter().collect();
    let wrapper = state.join("user-data.sh");
    std::fs::write(
        &wrapper,
        resolve_user_data(&t, "Web", &values)
            .replace("/var/lib/rehost", state.join("lib").to_str().unwrap())
            .replace("/var/log/", &format!("{}/", state.display())),
    )
    .unwrap();
    let (code, _, _) = run_watched(&wrapper, &path, "secret-token-4f2a");
    let requests = gate.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "one signal: {requests:?}");
    let (_, body) = requests[0].split_once(' ').unwrap();
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["Status"], "FAILURE", "{body}");
    assert_eq!(
        body["Reason"], "check 1 (script fail.sh) failed: exited with 4",
        "{body}"
    );
    assert_eq!(code, Some(1));
}
