//! Rendered templates: expected-output files for the examples, byte-for-byte determinism,
//! cfn-lint with 0 errors and 0 warnings on every variant, a 200-server application, and the
//! JSON Schema kept in step with the model.
//!
//! Why one file of ~950 lines: every test here renders through the same helpers (cfn-lint runner,
//! expected-file comparison, the template walker) and the cases are independent; splitting would
//! mean a second copy of those helpers or one more shared test module for little gain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rehost_testkit::{Rehost, cfn_lint, gate_id, resolve_user_data, tools_bin, workspace_root};
use serde_json::Value;

const EXAMPLES: &[&str] = &["sharepoint-farm", "ecommerce-3tier"];
const AMIS: &[(&str, &[&str])] = &[
    (
        "sharepoint-farm",
        &[
            "dc01=ami-0123456789abcdef0",
            "sql01=ami-0123456789abcdef1",
            "web02=ami-0123456789abcdef2",
        ],
    ),
    ("ecommerce-3tier", &["shopdb=ami-0fedcba9876543210"]),
];

/// Runs rehost from the workspace root. `render` gets a state database that does not exist, so
/// a developer's local replication state never changes the templates compared here.
fn rehost(args: &[&str]) -> Output {
    let cmd = Rehost::new(env!("CARGO_BIN_EXE_rehost")).args(args);
    if args.first() == Some(&"render") {
        cmd.arg("--state")
            .arg(std::env::temp_dir().join("rehost-render-tests-no-state.db"))
            .run()
    } else {
        cmd.run()
    }
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

fn scratch(name: &str) -> PathBuf {
    rehost_testkit::scratch_dir("render", name)
}

fn ami_args(app: &str) -> Vec<String> {
    AMIS.iter()
        .find(|(a, _)| *a == app)
        .map(|(_, amis)| {
            amis.iter()
                .flat_map(|a| ["--ami".to_string(), a.to_string()])
                .collect()
        })
        .unwrap_or_default()
}

/// The rendered example templates match `tests/expected/`. Set REHOST_BLESS=1 (or the older
/// REHOST_UPDATE_EXPECTED=1) to rewrite them after an intended change (and review the diff).
#[test]
fn example_templates_match_expected_files() {
    let update = ["REHOST_BLESS", "REHOST_UPDATE_EXPECTED"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    let mut stale = Vec::new();
    for app in EXAMPLES {
        for (suffix, extra) in [
            ("cutover", vec!["--mode", "cutover"]),
            ("test-portable", vec!["--mode", "test", "--portable"]),
        ] {
            let file = format!("apps/{app}.yaml");
            let mut args: Vec<String> = vec!["render".into(), file];
            args.extend(extra.iter().map(|s| s.to_string()));
            args.extend(ami_args(app));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let text = render(&args);
            let expected = workspace_root().join(format!("tests/expected/{app}.{suffix}.json"));
            if update {
                std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
                std::fs::write(&expected, &text).unwrap();
            } else if std::fs::read_to_string(&expected).ok().as_deref() != Some(text.as_str()) {
                stale.push(expected.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "rendered templates differ from {stale:?}; if the change is intended, rerun with REHOST_BLESS=1 and review the diff"
    );
}

#[test]
fn rendering_is_deterministic() {
    for app in EXAMPLES {
        let file = format!("apps/{app}.yaml");
        let a = render(&["render", &file, "--portable"]);
        let b = render(&["render", &file, "--portable"]);
        assert_eq!(a, b, "{app}: same input, different bytes");
        let y1 = render(&["render", &file, "--format", "yaml", "--mode", "test"]);
        let y2 = render(&["render", &file, "--format", "yaml", "--mode", "test"]);
        assert_eq!(y1, y2);
    }
}

/// Every combination a launch can produce: gated and not, test and cutover, portable and not,
/// JSON and YAML.
#[test]
fn every_example_variant_passes_cfn_lint() {
    let dir = scratch("lint");
    let mut failures = Vec::new();
    for app in EXAMPLES {
        for mode in ["cutover", "test"] {
            for portable in [false, true] {
                for gate in [true, false] {
                    for format in ["json", "yaml"] {
                        let name = format!("{app}-{mode}-{portable}-{gate}.{format}");
                        let out = dir.join(&name);
                        let file = format!("apps/{app}.yaml");
                        let mut args = vec!["render", &file, "--mode", mode, "--format", format];
                        if portable {
                            args.push("--portable");
                        }
                        if !gate {
                            args.push("--no-health-gate");
                        }
                        let out_str = out.to_string_lossy().into_owned();
                        args.extend(["-o", &out_str]);
                        render(&args);
                        let report = cfn_lint(&out);
                        if !report.success {
                            failures.push(format!("{name}:\n{}", report.output));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "cfn-lint findings:\n{}",
        failures.join("\n")
    );
}

fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("template is JSON")
}

#[test]
fn instances_depend_only_on_the_gates_of_their_groups_dependencies() {
    let t = load(&render(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--mode",
        "cutover",
    ]));
    let r = &t["Resources"];
    assert!(
        r["Dc01"].get("DependsOn").is_none(),
        "the first wave waits for nothing"
    );
    let g = |stem: &str| gate_id(&t, stem, "Gate");
    assert_eq!(
        r["SqlServer01"]["DependsOn"],
        serde_json::json!([g("Directory")])
    );
    assert_eq!(r["App01"]["DependsOn"], serde_json::json!([g("Database")]));
    assert_eq!(r["Web02"]["DependsOn"], serde_json::json!([g("App")]));
    assert_eq!(
        r[g("App")]["DependsOn"],
        serde_json::json!(["App01", "App02"])
    );
    assert_eq!(r[g("App")]["Properties"]["Count"], 2);
    assert_eq!(
        r[g("App")]["Properties"]["Handle"]["Ref"],
        gate_id(&t, "App", "GateHandle")
    );
    assert_eq!(
        r[g("Directory")]["Properties"]["Timeout"],
        "2700",
        "45 minutes from the group's setting"
    );
    assert_eq!(r[g("App")]["Properties"]["Timeout"], "1800");

    let ungated = load(&render(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--no-health-gate",
    ]));
    let r = &ungated["Resources"];
    assert!(
        !r.as_object().unwrap().keys().any(|k| k.contains("Gate")),
        "no gates"
    );
    assert_eq!(
        r["Web01"]["DependsOn"],
        serde_json::json!(["App01", "App02"])
    );
    let prelude = &r["Web01"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1][0];
    assert!(
        prelude.is_string(),
        "no gate to report to: nothing to substitute"
    );
    let user_data = resolve_user_data(&ungated, "Web01", &Default::default());
    assert!(!user_data.contains("GateUrl") && !user_data.contains("$url"));
}

#[test]
fn independent_groups_start_together() {
    let dir = scratch("parallel");
    let app = "apiVersion: rehost/v1\nkind: Application\nname: par\ndefaults:\n  launch: {instanceType: m5.large}\nservers:\n  - {id: db, os: linux, disks: [{source: a.img}]}\n  - {id: cache, os: linux, disks: [{source: b.img}]}\n  - {id: web, os: linux, disks: [{source: c.img}]}\ngroups:\n  - {name: db, servers: [db]}\n  - {name: cache, servers: [cache]}\n  - {name: web, servers: [web], dependsOn: [db, cache]}\n";
    let file = dir.join("par.yaml");
    std::fs::write(&file, app).unwrap();
    let t = load(&render(&["render", file.to_str().unwrap()]));
    assert!(t["Resources"]["Db"].get("DependsOn").is_none());
    assert!(t["Resources"]["Cache"].get("DependsOn").is_none());
    assert_eq!(
        t["Resources"]["Web"]["DependsOn"],
        serde_json::json!([gate_id(&t, "Db", "Gate"), gate_id(&t, "Cache", "Gate")])
    );
    assert_eq!(t["Outputs"]["LaunchWaves"]["Value"], "db, cache | web");
    let graph = render(&["graph", file.to_str().unwrap()]);
    assert!(graph.contains("wave 1: db (db); cache (cache)"), "{graph}");
}

#[test]
fn portable_template_has_typed_parameters_and_no_account_ids() {
    let text = render(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--portable",
        "--mode",
        "cutover",
    ]);
    let t = load(&text);
    let p = &t["Parameters"];
    assert_eq!(p["DefaultSubnet"]["Type"], "AWS::EC2::Subnet::Id");
    assert_eq!(
        p["DefaultSecurityGroups"]["Type"],
        "List<AWS::EC2::SecurityGroup::Id>"
    );
    assert_eq!(p["DefaultKeyName"]["Type"], "AWS::EC2::KeyPair::KeyName");
    assert_eq!(p["DefaultInstanceProfile"]["Type"], "String");
    assert_eq!(p["Dc01ImageId"]["Type"], "AWS::EC2::Image::Id");
    let resources = serde_json::to_string(&t["Resources"]).unwrap();
    for account_specific in [
        "subnet-0a1b2c3d4e5f60718",
        "sg-0a1b2c3d4e5f60718",
        "farm-admin",
        "rehost-ssm",
    ] {
        assert!(
            !resources.contains(account_specific),
            "{account_specific} leaked into portable resources"
        );
    }
    let test = load(&render(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--portable",
        "--mode",
        "test",
    ]));
    assert!(test["Parameters"].get("DefaultTestSubnet").is_some());
    assert!(
        test["Parameters"].get("DefaultSubnet").is_none(),
        "test mode uses only the test subnet"
    );
}

#[test]
fn test_mode_uses_test_overrides_and_drops_cutover_addresses() {
    let t = load(&render(&[
        "render",
        "apps/ecommerce-3tier.yaml",
        "--mode",
        "test",
    ]));
    let db = &t["Resources"]["Shopdb"]["Properties"];
    assert_eq!(db["SubnetId"], "subnet-0e0d0c0b0a0908070");
    assert_eq!(
        db["SecurityGroupIds"],
        serde_json::json!(["sg-0e0d0c0b0a0908070"])
    );
    assert!(
        db.get("PrivateIpAddress").is_none(),
        "a test instance never takes the cutover address"
    );
    assert_eq!(
        t["Resources"]["Iis01"]["Properties"]["InstanceType"],
        "t3.large"
    );
    let names: Vec<&str> = db["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["Key"] == "Name")
        .map(|t| t["Value"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shopdb-test"]);

    let c = load(&render(&[
        "render",
        "apps/ecommerce-3tier.yaml",
        "--mode",
        "cutover",
    ]));
    let db = &c["Resources"]["Shopdb"]["Properties"];
    assert_eq!(db["PrivateIpAddress"], "10.1.2.15");
    let nic = &c["Resources"]["Iis01"]["Properties"]["NetworkInterfaces"][0];
    assert_eq!(nic["AssociatePublicIpAddress"], true);
    assert_eq!(nic["SubnetId"], "subnet-0b1c2d3e4f5a60718");
}

/// Issue 8 item 3: without `--mode` a template is the test launch's (no production addresses,
/// `-test` names), as in plan, launch and migrate; the cutover template must be named.
#[test]
fn render_without_a_mode_renders_the_test_launch_not_production() {
    let t = load(&render(&["render", "apps/ecommerce-3tier.yaml"]));
    let db = &t["Resources"]["Shopdb"]["Properties"];
    assert!(db.get("PrivateIpAddress").is_none(), "{db}");
    assert_eq!(db["SubnetId"], "subnet-0e0d0c0b0a0908070");
    let named = load(&render(&[
        "render",
        "apps/ecommerce-3tier.yaml",
        "--mode",
        "test",
    ]));
    assert_eq!(t, named, "no --mode is --mode test");
}

#[test]
fn ami_flags_become_parameter_defaults_and_bad_ones_exit_2() {
    let t = load(&render(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--ami",
        "sql01=ami-0123456789abcdef1",
    ]));
    assert_eq!(
        t["Parameters"]["SqlServer01ImageId"]["Default"],
        "ami-0123456789abcdef1"
    );
    assert!(
        t["Parameters"]["Dc01ImageId"].get("Default").is_none(),
        "no default when the AMI is unknown"
    );
    let out = rehost(&[
        "render",
        "apps/sharepoint-farm.yaml",
        "--ami",
        "sql1=ami-0123456789abcdef1",
        "--ami",
        "dc01=ami-xyz",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no server `sql1`") && stderr.contains("did you mean `sql01`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ami-xyz"),
        "both problems reported at once: {stderr}"
    );
}

/// User strings can never break the template or the wrapper: a script full of `${`, quotes,
/// here-string terminators and closing tags arrives byte for byte.
#[test]
fn hostile_configure_scripts_survive_embedding() {
    let dir = scratch("hostile");
    let ps = "Write-Output \"${env:COMPUTERNAME} $(Get-Date) '\\\" }}]\"\n$x = @'\nnested\n'@\nWrite-Output '</powershell><script>'\n";
    let sh = "#!/bin/sh\necho \"${HOME}\" '$(id)' \"`uname`\" \\\"\nREHOST_CONFIGURE_EOF\ncat <<'EOF'\n${x}\nEOF\n";
    std::fs::write(dir.join("hostile.ps1"), ps).unwrap();
    std::fs::write(dir.join("hostile.sh"), sh).unwrap();
    let app = "apiVersion: rehost/v1\nkind: Application\nname: hostile\ndescription: \"quotes \\\" and ${braces} and \\n newlines\"\ntags: {Team: \"a\\\"b${c}\"}\ndefaults:\n  launch: {instanceType: m5.large}\nservers:\n  - {id: win, os: windows, disks: [{source: a.img}]}\n  - {id: lin, os: linux, disks: [{source: b.img}]}\ngroups:\n  - {name: w, servers: [win], launch: {configureScript: hostile.ps1}}\n  - {name: l, servers: [lin], dependsOn: [w], launch: {configureScript: hostile.sh}}\n";
    let file = dir.join("hostile.yaml");
    std::fs::write(&file, app).unwrap();
    let text = render(&["render", file.to_str().unwrap()]);
    let t = load(&text);
    let out = dir.join("t.json");
    std::fs::write(&out, &text).unwrap();
    let report = cfn_lint(&out);
    assert!(report.success, "{}", report.output);

    // Resolve Fn::Sub the way CloudFormation does and find each script intact.
    let sub = |id: &str| -> String {
        let parts = &t["Resources"][id]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1][0]["Fn::Sub"];
        assert_eq!(
            parts[1]["GateUrl"]["Ref"],
            gate_id(&t, if id == "Win" { "W" } else { "L" }, "GateHandle")
        );
        let prelude = parts[0].as_str().unwrap();
        assert_eq!(
            prelude.matches("${").count(),
            1,
            "only ${{GateUrl}} is substituted"
        );
        let values = [("GateUrl", "https://gate".to_string())]
            .into_iter()
            .collect();
        resolve_user_data(&t, id, &values)
    };
    let win = sub("Win");
    // Every PowerShell script travels as base64 of its exact bytes.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(ps);
    assert!(win.contains(&encoded), "{win}");
    assert_eq!(win.matches("</powershell>").count(), 1);
    let lin = sub("Lin");
    assert!(
        lin.contains(&format!(
            "<<'REHOST_CONFIGURE_EOF_1'\n{sh}REHOST_CONFIGURE_EOF_1\n"
        )),
        "{lin}"
    );
    // Run the Linux wrapper's extraction for real (up to `chmod`, without the traps that delete
    // the script on exit): the script file written must equal the input.
    let wrapper = lin
        .replace("/var/lib/rehost", dir.join("state").to_str().unwrap())
        .replace("/var/log/", &format!("{}/", dir.display()));
    let run_line = |l: &&str| l.starts_with("chmod 700 \"$script\"");
    assert!(wrapper.lines().any(|l| run_line(&l)), "{wrapper}");
    let extract: String = wrapper
        .lines()
        .take_while(|l| !run_line(l))
        .filter(|l| !l.starts_with("trap "))
        .collect::<Vec<_>>()
        .join("\n");
    let status = Command::new("sh").arg("-c").arg(&extract).status().unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("state/configure.sh")).unwrap(),
        sh
    );
}

/// Issue 8 item 18: a `--no-health-gate` template from a script holding `${AWS::Region}` failed
/// cfn-lint (E1029, embedded parameter outside Fn::Sub). Every variant lints clean whatever the
/// scripts hold, and the user data still carries each script byte for byte.
#[test]
fn every_variant_lints_clean_whatever_the_scripts_contain() {
    let dir = scratch("dollars");
    let dollars = "${AWS::Region} ${!x} $$ ${Foo.Bar} ${ ${AWS::StackName}";
    let sh = format!("#!/bin/sh\necho '{dollars}'\n");
    let ps = format!("Write-Output '{dollars}'\n");
    std::fs::write(dir.join("dollars.sh"), &sh).unwrap();
    std::fs::write(dir.join("dollars.ps1"), &ps).unwrap();
    let app = "apiVersion: rehost/v1\nkind: Application\nname: dollars\ndefaults:\n  launch:\n    \
        instanceType: m5.large\n    subnet: subnet-0a1b2c3d\n    securityGroups: [sg-0a1b2c3d]\nservers:\n  \
        - {id: win, os: windows, disks: [{source: a.vhdx}]}\n  - {id: lin, os: linux, disks: [{source: b.qcow2}]}\n\
        \x20\x20- {id: lin2, os: linux, disks: [{source: c.qcow2}]}\n\
        groups:\n  - {name: w, servers: [win], launch: {configureScript: dollars.ps1}}\n  \
        - {name: l, servers: [lin, lin2], dependsOn: [w], launch: {configureScript: dollars.sh}}\n";
    let file = dir.join("dollars.yaml");
    std::fs::write(&file, app).unwrap();
    let file = file.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for mode in ["cutover", "test"] {
        for portable in [false, true] {
            for gate in [true, false] {
                for format in ["json", "yaml"] {
                    let name = format!("{mode}-{portable}-{gate}.{format}");
                    let out = dir.join(&name).to_string_lossy().into_owned();
                    let mut args = vec![
                        "render", &file, "--mode", mode, "--format", format, "-o", &out,
                    ];
                    if portable {
                        args.push("--portable");
                    }
                    if !gate {
                        args.push("--no-health-gate");
                    }
                    render(&args);
                    let report = cfn_lint(Path::new(&out));
                    if !report.success {
                        failures.push(format!("{name}:\n{}", report.output));
                    }
                }
                // The user data as CloudFormation resolves it holds the shell script verbatim.
                let args = ["render", &file, "--mode", mode];
                let mut args = args.to_vec();
                if !gate {
                    args.push("--no-health-gate");
                }
                let t = load(&render(&args));
                let values = [("GateUrl", "https://gate".to_string())]
                    .into_iter()
                    .collect();
                for id in ["Lin", "Lin2"] {
                    let user_data = resolve_user_data(&t, id, &values);
                    assert!(user_data.contains(&sh), "{mode} gate={gate}: {user_data}");
                }
                // Two servers share the body: stored once, in pieces split at `${`.
                let pieces = &t["Mappings"]["RehostUserData"]["Body1"]["Text"];
                assert!(pieces.is_array(), "{pieces}");
                assert!(!pieces.to_string().contains("${"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "cfn-lint findings:\n{}",
        failures.join("\n")
    );
}

/// Issue 8 item 12: `render --format yaml` wrote `yes`, `on`, `12:30`, `1_000` and `2001-12-14`
/// plain, which YAML 1.1 readers turn into booleans, numbers and dates; `=` and `<<` made PyYAML
/// fail. Every string reads back as the JSON rendering's, in YAML 1.1 (PyYAML) and YAML 1.2
/// (serde_norway), and the YAML lints clean.
#[test]
fn yaml_rendering_reads_back_as_the_json_in_yaml_1_1_and_1_2() {
    let dir = scratch("yaml-strings");
    let values = [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "Y",
        "N",
        "~",
        "null",
        "Null",
        "true",
        "FALSE",
        "12:30",
        "190:20:30",
        "1_000",
        "0x1F",
        "0o17",
        "0b101",
        "0777",
        "+1",
        "-1",
        "1e3",
        "1.5",
        ".5",
        ".inf",
        "-.inf",
        ".nan",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "=",
        "<<",
        " lead",
        "trail ",
        "a: b",
        "a #b",
        "- x",
        "? x",
        "[x",
        "{x",
        "!x",
        "&x",
        "*x",
        "|x",
        ">x",
        "%x",
        "@x",
        "`x",
        "'x",
        "\"x",
        "#x",
        ":x",
        "x:",
        "---",
        "...",
        "\\",
        "é ünï",
        "a\u{2028}b",
        "a\u{2029}b",
        "\u{feff}bom",
    ];
    let description = serde_json::to_string(
        "Multi\nline\n  indented\n\n\ttab\r\nCRLF \u{85}NEL \u{7f}DEL \u{1b}[31mESC end ",
    )
    .unwrap();
    // EC2's tag budget leaves room for about 40 application tags: a few applications.
    for (chunk, values) in values.chunks(30).enumerate() {
        let mut tags = String::new();
        for (i, v) in values.iter().enumerate() {
            tags.push_str(&format!(
                "  k{i:02}: {}\n",
                serde_json::to_string(v).unwrap()
            ));
        }
        if chunk == 0 {
            for key in ["yes", "null", "<<", "=", "12:30"] {
                tags.push_str(&format!("  {}: v\n", serde_json::to_string(key).unwrap()));
            }
        }
        let app = format!(
            "apiVersion: rehost/v1\nkind: Application\nname: quoting\ndescription: {description}\n\
             tags:\n{tags}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  \
             - {{id: web, os: linux, disks: [{{source: web.vmdk}}]}}\ngroups:\n  - {{name: on, servers: [web]}}\n"
        );
        yaml_reads_back_as_json(&dir, &app);
    }
}

/// Renders `app` in two variants as JSON and YAML and compares what YAML 1.2 (serde_norway) and
/// YAML 1.1 (PyYAML) read with the JSON; the YAML must lint clean.
fn yaml_reads_back_as_json(dir: &Path, app: &str) {
    let file = dir.join("quoting.yaml");
    std::fs::write(&file, app).unwrap();
    let file = file.to_string_lossy().into_owned();
    for extra in [
        &[][..],
        &["--mode", "test", "--portable", "--no-health-gate"][..],
    ] {
        let mut args = vec!["render", file.as_str()];
        args.extend_from_slice(extra);
        let json = load(&render(&args));
        args.extend(["--format", "yaml"]);
        let yaml = render(&args);

        let yaml_1_2: Value = serde_norway::from_str(&yaml).expect("YAML 1.2 reads it");
        assert_eq!(yaml_1_2, json, "YAML 1.2 reads back the JSON rendering");

        let path = dir.join("t.yaml");
        std::fs::write(&path, &yaml).unwrap();
        let out = Command::new(tools_bin().join("python"))
            .arg("-c")
            .arg("import json, sys, yaml\nprint(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PyYAML: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml_1_1: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            yaml_1_1, json,
            "YAML 1.1 (PyYAML) reads back the JSON rendering"
        );

        let report = cfn_lint(&path);
        assert!(report.success, "{}", report.output);
    }
}

#[test]
fn two_hundred_servers_in_twenty_groups_render_and_lint() {
    let (t, out, _) = render_large("large", 200, 20);
    let resources = t["Resources"].as_object().unwrap();
    assert_eq!(resources.len(), 200 + 2 * 20);
    assert_eq!(
        t["Parameters"].as_object().unwrap().len(),
        200,
        "one AMI parameter per server"
    );
    let report = cfn_lint(&out);
    assert!(report.success, "{}", report.output);
}

/// Servers beyond the parameter quota switch AMI parameters to one list per group, which
/// CloudFormation and cfn-lint accept.
#[test]
fn four_hundred_eighty_servers_fit_with_group_ami_lists() {
    let (t, out, stderr) = render_large("larger", 480, 10);
    assert!(stderr.contains("one list parameter per group"));
    assert_eq!(t["Resources"].as_object().unwrap().len(), 500);
    assert_eq!(
        t["Parameters"]["G3GroupImageIds"]["Type"],
        "List<AWS::EC2::Image::Id>"
    );
    assert_eq!(
        t["Resources"]["S3x5"]["Properties"]["ImageId"]["Fn::Select"][0],
        "5"
    );
    let report = cfn_lint(&out);
    assert!(report.success, "{}", report.output);
}

/// Renders a generated application to a file: the template, its path, and rehost's stderr.
fn render_large(name: &str, servers: usize, groups: usize) -> (Value, PathBuf, String) {
    let dir = scratch(name);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, rehost_testkit::apps::large_app(servers, groups)).unwrap();
    let out = dir.join(format!("{name}.json"));
    let status = rehost(&[
        "render",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&status.stderr).into_owned();
    assert!(status.status.success(), "{stderr}");
    (load(&std::fs::read_to_string(&out).unwrap()), out, stderr)
}

#[test]
fn checked_in_schema_is_current() {
    let printed = render(&["schema"]);
    let on_disk =
        std::fs::read_to_string(workspace_root().join("schema/application.schema.json")).unwrap();
    assert!(
        printed == on_disk,
        "schema/application.schema.json is stale: run `cargo run -p rehost -- schema -o schema/application.schema.json`"
    );
}

/// The schema and rehost agree: every example and a file using every field validate against the
/// schema (with the `jsonschema` package cfn-lint brings), and every property the schema names
/// appears in that file, so no field exists in one and not the other.
#[test]
fn schema_accepts_what_rehost_accepts() {
    let root = workspace_root();
    let kitchen = root.join("tests/data/every-field.yaml");
    let out = rehost(&["validate", kitchen.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let schema: Value = serde_json::from_str(&render(&["schema"])).unwrap();
    let mut properties = BTreeSet::new();
    collect_properties(&schema, &mut properties);
    let kitchen_text = std::fs::read_to_string(&kitchen).unwrap();
    let missing: Vec<&String> = properties
        .iter()
        .filter(|p| !kitchen_text.contains(&format!("{p}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "schema properties not exercised by every-field.yaml: {missing:?}"
    );

    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    doc = yaml.safe_load(open(path))
    doc = json.loads(json.dumps(doc, default=lambda v: v.isoformat().replace('+00:00', 'Z')))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
print("ok")
"#;
    let schema_path = root.join("schema/application.schema.json");
    let out = Command::new(tools_bin().join("python"))
        .arg("-c")
        .arg(script)
        .arg(&schema_path)
        .arg(&kitchen)
        .arg(root.join("apps/sharepoint-farm.yaml"))
        .arg(root.join("apps/ecommerce-3tier.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // And the schema rejects what rehost rejects for shape: an unknown field.
    let bad = scratch("schema").join("bad.yaml");
    std::fs::write(
        &bad,
        kitchen_text.replacen("description:", "descripton:", 1),
    )
    .unwrap();
    let out = Command::new(tools_bin().join("python"))
        .arg("-c")
        .arg(script)
        .arg(&schema_path)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the schema must refuse unknown fields"
    );
}

fn collect_properties(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for value in map.values() {
                collect_properties(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_properties(i, out)),
        _ => {}
    }
}
