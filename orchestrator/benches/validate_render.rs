//! Benchmark (a bench binary, run with `cargo bench -p rehost --bench validate_render`): parse +
//! validate (which renders every template variant to check CloudFormation's quotas, and nests
//! those over one template's) + render the cutover launch to JSON (a parent and its children
//! when nested), for applications of 50 to 1,000 servers. Prints a table.

use std::path::Path;
use std::time::{Duration, Instant};

use rehost::app::Mode;
use rehost::load::load_bytes;
use rehost::template::{Package, RenderOptions, render_package};

fn application(servers: usize, groups: usize, script: Option<&Path>) -> String {
    let mut text = String::from(
        "apiVersion: rehost/v1\nkind: Application\nname: bench\ndefaults:\n  launch:\n    instanceType: m5.large\n    subnet: subnet-0a1b2c3d\n    securityGroups: [sg-0a1b2c3d]\n    keyName: admin\nservers:\n",
    );
    let per = servers / groups;
    for g in 0..groups {
        for s in 0..per {
            text.push_str(&format!(
                "  - id: s{g}x{s}\n    os: windows\n    disks:\n      - source: /vmstore/s{g}x{s}/disk0.vmdk\n      - source: /vmstore/s{g}x{s}/data.vmdk\n"
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
        if let Some(script) = script {
            text.push_str(&format!(
                "    launch: {{configureScript: {}}}\n",
                script.display()
            ));
        }
        if g > 0 {
            text.push_str(&format!("    dependsOn: [g{}]\n", (g - 1) / 2));
        }
    }
    text
}

fn main() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../launch-scripts/sharepoint/check-sql-server.ps1");
    println!(
        "{:>8} {:>7} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "servers", "groups", "scripts", "file bytes", "template B", "median", "min"
    );
    // Configure scripts are embedded in every instance's user data, so 480 scripted servers
    // would pass CloudFormation's 1 MB template quota for one template: that row runs without.
    // 1,000 servers in 40 groups are launched as nested stacks (a parent and 40 children).
    for (servers, groups, scripted) in [
        (50, 5, true),
        (200, 20, true),
        (200, 20, false),
        (480, 10, false),
        (1000, 40, true),
    ] {
        let text = application(servers, groups, scripted.then_some(script.as_path()));
        let mut times = Vec::new();
        let mut size = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while times.len() < 5 || (Instant::now() < deadline && times.len() < 200) {
            let start = Instant::now();
            let loaded = load_bytes(text.as_bytes(), Path::new("bench.yaml"))
                .expect("benchmark application is valid");
            let package = render_package(&loaded.app, &RenderOptions::new(Mode::Cutover))
                .expect("benchmark application nests");
            size = match &package {
                Package::Flat(template) => std::hint::black_box(template.to_json_pretty()).len(),
                Package::Nested(nested) => nested
                    .files("json")
                    .iter()
                    .map(|(_, body)| {
                        std::hint::black_box(serde_json::to_string_pretty(body).unwrap()).len()
                    })
                    .sum(),
            };
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{servers:>8} {groups:>7} {:>8} {:>12} {:>12} {:>10.2}ms {:>10.2}ms",
            if scripted { "yes" } else { "no" },
            text.len(),
            size,
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3
        );
    }
}
