//! Benchmark (a bench binary, run with `cargo bench -p rehost --bench validate_render`): parse +
//! validate (which counts every template variant's resources, parameters and outputs, then
//! renders the four variants for their size and nests those over one template's quotas) +
//! render the cutover launch to JSON (a parent and its children when nested), for applications
//! of 50 to 1,000 servers. Prints a table: the median of validation alone, of rendering alone,
//! and the median and minimum of the two together (the figure issue 11 sets: 150 ms for 1,000
//! servers in 40 groups, each group with a configure script).
//!
//! `cargo bench -p rehost --bench validate_render -- 1000` runs only the rows of 1,000 servers;
//! `--once` runs each row once (for `valgrind --tool=callgrind`, which counts instructions
//! repeatably on a loaded machine).
//!
//! Why not the test kit's `apps::large_app`: that one generates Linux servers with one disk
//! image each (what the tests launch against the emulator); this one generates Windows servers
//! with two VMDK disks and a key pair, the heavier template (PowerShell wrappers carry their
//! script as base64) that every figure in the README's table has been measured on since the
//! first, so rows stay comparable across versions.

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

/// One run: validation (`load_bytes`) and rendering (`render_package` and the JSON text of
/// every file), timed apart, and the bytes rendered.
fn run(text: &str) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let loaded = load_bytes(text.as_bytes(), Path::new("bench.yaml"))
        .expect("benchmark application is valid");
    let validated = start.elapsed();
    let start = Instant::now();
    let package = render_package(&loaded.app, &RenderOptions::new(Mode::Cutover))
        .expect("benchmark application nests");
    let size = match &package {
        Package::Flat(template) => std::hint::black_box(template.to_json_pretty()).len(),
        Package::Nested(nested) => nested
            .files("json")
            .iter()
            .map(|(_, body)| {
                std::hint::black_box(serde_json::to_string_pretty(body).unwrap()).len()
            })
            .sum(),
    };
    (validated, start.elapsed(), size)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let only: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../launch-scripts/sharepoint/check-sql-server.ps1");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    println!(
        "{:>8} {:>7} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "servers",
        "groups",
        "scripts",
        "file bytes",
        "template B",
        "validate",
        "render",
        "median",
        "min"
    );
    // Configure scripts are stored once per group (`Mappings`), so every row could carry one;
    // the rows without keep the earlier tables' shape. 1,000 servers in 40 groups are launched
    // as nested stacks (a parent and 40 children).
    for (servers, groups, scripted) in [
        (50, 5, true),
        (200, 20, true),
        (200, 20, false),
        (480, 10, false),
        (1000, 40, true),
    ] {
        if !only.is_empty() && !only.contains(&servers) {
            continue;
        }
        let text = application(servers, groups, scripted.then_some(script.as_path()));
        let (mut validate, mut render, mut total) = (Vec::new(), Vec::new(), Vec::new());
        let mut size = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while total.len() < 5 || (Instant::now() < deadline && total.len() < 200) {
            let (v, r, s) = run(&text);
            validate.push(v);
            render.push(r);
            total.push(v + r);
            size = s;
            if once {
                break;
            }
        }
        let min = *total.iter().min().expect("at least one run");
        println!(
            "{servers:>8} {groups:>7} {:>8} {:>12} {:>12} {:>10.2}ms {:>10.2}ms {:>10.2}ms {:>10.2}ms",
            if scripted { "yes" } else { "no" },
            text.len(),
            size,
            ms(median(validate)),
            ms(median(render)),
            ms(median(total)),
            ms(min)
        );
    }
}
