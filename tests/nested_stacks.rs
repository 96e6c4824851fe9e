//! Nested stacks from the command line: 1,000 servers in 40 groups, each group with its own
//! configure script, rendered as a parent and 40 children that all pass cfn-lint; a group too
//! large for one template split into parts that pass it too (values crossing between the parts
//! through `Fn::GetAtt` of child outputs, which real CloudFormation supports); `--nested` on an
//! example in every variant; and the refusals.

use std::path::{Path, PathBuf};
use std::process::Output;

use rehost_testkit::{Rehost, cfn_lint_all};
use serde_json::Value;

/// rehost in `dir`; `render` reads a state database that does not exist (no AMI defaults).
fn rehost(dir: &Path, args: &[&str]) -> Output {
    let cmd = Rehost::new(env!("CARGO_BIN_EXE_rehost"))
        .current_dir(dir)
        .args(args);
    if args.first() == Some(&"render") {
        cmd.arg("--state").arg(dir.join("no-state.db")).run()
    } else {
        cmd.run()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// 1,000 servers in 40 groups, group `g` running its own `g<g>.sh`.
fn thousand(dir: &Path) -> PathBuf {
    for g in 0..40 {
        std::fs::write(
            dir.join(format!("g{g}.sh")),
            format!("#!/bin/sh\n# configure group g{g}\nsystemctl restart app-{g} && curl -fsS http://localhost:8080/health\n"),
        )
        .unwrap();
    }
    let file = dir.join("estate.yaml");
    let text =
        rehost_testkit::apps::large_app_with(1000, 40, "estate", |g| Some(format!("g{g}.sh")));
    std::fs::write(&file, text).unwrap();
    file
}

/// The files of a rendered package: `template.json` first, then the children by name.
fn package(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "template.json")
        .collect();
    files.sort();
    files.insert(0, dir.join("template.json"));
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn lint(files: &[PathBuf]) {
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let report = cfn_lint_all(&refs);
    assert!(report.success, "cfn-lint findings:\n{}", report.output);
}

#[test]
fn a_thousand_servers_in_forty_groups_render_as_nested_stacks_that_lint_clean() {
    let dir = rehost_testkit::scratch_dir("nested", "thousand");
    let file = thousand(&dir);
    let f = file.to_str().unwrap();

    let out = rehost(&dir, &["validate", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: the cutover template needs 1080 resources")
            && stderr(&out).contains("rendered as nested stacks, one per group"),
        "{}",
        stderr(&out)
    );

    // Without a directory there is nowhere to put the children.
    let out = rehost(&dir, &["render", f]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-o DIR"), "{}", stderr(&out));

    for (variant, flags) in [
        ("gated", &[][..]),
        ("portable", &["--portable"][..]),
        ("ungated", &["--no-health-gate", "--mode", "cutover"][..]),
    ] {
        let out_dir = dir.join(variant);
        let mut args = vec!["render", f, "-o", out_dir.to_str().unwrap()];
        args.extend(flags);
        let out = rehost(&dir, &args);
        assert!(out.status.success(), "{variant}: {}", stderr(&out));
        let files = package(&out_dir);
        assert_eq!(files.len(), 41, "{variant}: a parent and a child per group");
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"G0Stack.json".to_string()), "{names:?}");
        assert!(names.contains(&"G39Stack.json".to_string()), "{names:?}");
        lint(&files);

        let parent = read(&files[0]);
        let stacks = parent["Resources"].as_object().unwrap();
        assert_eq!(stacks.len(), 40);
        // Group g depends on group (g - 1) / 2: exactly that child stack, nothing else.
        for g in 1..40 {
            let stack = &stacks[&format!("G{g}Stack")];
            assert_eq!(
                stack["DependsOn"],
                serde_json::json!([format!("G{}Stack", (g - 1) / 2)]),
                "{variant}: G{g}"
            );
            assert_eq!(
                stack["Properties"]["TemplateURL"]["Fn::Sub"],
                format!("${{TemplateBaseUrl}}/G{g}Stack.json")
            );
        }
        assert!(stacks["G0Stack"].get("DependsOn").is_none());
        assert_eq!(parent["Parameters"]["TemplateBaseUrl"]["Type"], "String");
        // Every server is in exactly one child, with its group's script.
        let mut servers = 0;
        for path in &files[1..] {
            let child = read(path);
            for (_, r) in child["Resources"].as_object().unwrap() {
                if r["Type"] == "AWS::EC2::Instance" {
                    servers += 1;
                }
            }
        }
        assert_eq!(servers, 1000, "{variant}");
        let g7 = std::fs::read_to_string(out_dir.join("G7Stack.json")).unwrap();
        assert!(g7.contains("systemctl restart app-7 "), "{variant}");
        assert!(!g7.contains("app-8 "), "{variant}");
    }
    // Stable names and content: a second render writes the same files.
    let again = dir.join("again");
    let out = rehost(&dir, &["render", f, "-o", again.to_str().unwrap()]);
    assert!(out.status.success());
    for path in package(&again) {
        let first = dir.join("gated").join(path.file_name().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(first).unwrap());
    }
}

/// A group of 600 servers does not fit one template: it is split into parts, each part's
/// instances taking the gate handle of the first part through the parent (`Fn::GetAtt` of a
/// child output), the gate waiting in the last part. cfn-lint checks the GetAtt against the
/// child templates' outputs.
#[test]
fn a_group_too_large_for_one_template_is_split_into_parts_that_lint_clean() {
    let dir = rehost_testkit::scratch_dir("nested", "parts");
    let file = dir.join("big.yaml");
    std::fs::write(&file, rehost_testkit::apps::large_app(1200, 2)).unwrap();
    let out_dir = dir.join("out");
    let out = rehost(
        &dir,
        &[
            "render",
            file.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--format",
            "yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 15, "a parent and 7 parts per group: {files:?}");
    let parent = std::fs::read_to_string(out_dir.join("template.yaml")).unwrap();
    // The handle's id carries the gate's generation: `G0GateHandle<8 hex digits>`.
    let handle_output = parent
        .split("Outputs.G0GateHandle")
        .nth(1)
        .map(|rest| &rest[..rest.len().min(11)]);
    assert!(
        handle_output.is_some_and(|g| g.len() == 11
            && g[..8].chars().all(|c| c.is_ascii_hexdigit())
            && g.ends_with("Ref")),
        "{parent}"
    );
    assert!(
        parent.contains("${TemplateBaseUrl}/G0Part2Stack.yaml"),
        "{parent}"
    );
    lint(&files);
}

#[test]
fn nested_on_request_for_an_example_in_every_variant() {
    let dir = rehost_testkit::scratch_dir("nested", "example");
    let root = rehost_testkit::workspace_root();
    let file = root.join("apps/sharepoint-farm.yaml");
    let mut all = Vec::new();
    for mode in ["test", "cutover"] {
        for flags in [&[][..], &["--portable"][..], &["--no-health-gate"][..]] {
            let out_dir = dir.join(format!("{mode}{}", flags.join("")));
            let mut args = vec![
                "render",
                file.to_str().unwrap(),
                "--nested",
                "--mode",
                mode,
                "-o",
                out_dir.to_str().unwrap(),
                "--ami",
                "dc01=ami-0123456789abcdef0",
            ];
            args.extend(flags);
            let out = rehost(&root, &args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let files = package(&out_dir);
            assert_eq!(files.len(), 5, "four groups: {files:?}");
            all.extend(files);
        }
    }
    lint(&all);
}
