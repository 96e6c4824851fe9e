//! Application files generated for tests of size: many servers, many groups.

/// `servers` Linux servers (`s<g>x<i>`) spread over `groups` groups (`g<g>`), sharing a default
/// instance type, subnet and security group; group `g` depends on group `(g - 1) / 2`, a tree
/// whose waves grow with the depth.
pub fn large_app(servers: usize, groups: usize) -> String {
    large_app_with(servers, groups, "large", |_| None)
}

/// As [`large_app`], named `name`, group `g` running the configure script `script(g)` when it
/// gives one (a path relative to the application file).
pub fn large_app_with(
    servers: usize,
    groups: usize,
    name: &str,
    script: impl Fn(usize) -> Option<String>,
) -> String {
    let text = String::from(
        "apiVersion: rehost/v1\nkind: Application\nname: NAME\ndefaults:\n  launch:\n    instanceType: m5.large\n    subnet: subnet-0a1b2c3d\n    securityGroups: [sg-0a1b2c3d]\nservers:\n",
    );
    let mut text = text.replace("NAME", name);
    let per = servers / groups;
    for g in 0..groups {
        for s in 0..per {
            text.push_str(&format!(
                "  - {{id: s{g}x{s}, os: linux, disks: [{{source: s{g}x{s}.img}}]}}\n"
            ));
        }
    }
    text.push_str("groups:\n");
    for g in 0..groups {
        let members: Vec<String> = (0..per).map(|s| format!("s{g}x{s}")).collect();
        text.push_str(&format!(
            "  - name: g{g}\n    servers: [{}]\n",
            members.join(", ")
        ));
        if let Some(script) = script(g) {
            text.push_str(&format!("    launch: {{configureScript: {script}}}\n"));
        }
        if g > 0 {
            text.push_str(&format!("    dependsOn: [g{}]\n", (g - 1) / 2));
        }
    }
    text
}
