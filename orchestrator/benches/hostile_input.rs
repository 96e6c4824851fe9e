//! Benchmark (a bench binary: `cargo bench -p rehost --bench hostile_input`): hostile
//! application files, each under 1 MB, answered by `rehost validate` in a child process. Prints
//! per file its size, the exit code, the lines of output, the median wall time of three runs and
//! the peak RSS (the child's high-water mark, from wait4's rusage). The target: every file
//! answered in under 2 s with under 256 MiB.
//!
//! The children run with a 2 GiB address-space cap, so an input that would exhaust memory
//! fails fast instead of taking the machine with it.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: hostile\n\
    defaults:\n  launch: {instanceType: m5.large}\n";
/// Every file stays under this (1 MB).
const BUDGET: usize = 1_000_000;

fn server(id: &str) -> String {
    format!("  - {{id: {id}, os: linux, disks: [{{source: {id}.img}}]}}\n")
}

/// 4,000 groups of one server, each one launchOrder above the last.
fn launch_order_chain() -> String {
    groups_by_launch_order(|i| i)
}

/// 4,000 groups in two launchOrder levels: 2,000 x 2,000 implied dependencies.
fn launch_order_two_levels() -> String {
    groups_by_launch_order(|i| i % 2)
}

/// 4,000 groups of one server each, group `i` at launchOrder `order(i)`.
fn groups_by_launch_order(order: fn(usize) -> usize) -> String {
    let n = 4000;
    let mut text = format!("{HEAD}servers:\n");
    (0..n).for_each(|i| text.push_str(&server(&format!("s{i}"))));
    text.push_str("groups:\n");
    for i in 0..n {
        let _ = writeln!(
            text,
            "  - {{name: g{i}, servers: [s{i}], launchOrder: {}}}",
            order(i)
        );
    }
    text
}

/// 3,000 servers and one group listing each of them misspelled, plus 3,000 misspelled
/// dependencies.
fn misspelled_references() -> String {
    let n = 3000;
    let mut text = format!("{HEAD}servers:\n");
    (0..n).for_each(|i| text.push_str(&server(&format!("server-{i:04}"))));
    text.push_str("groups:\n  - name: web\n    servers: [");
    let refs: Vec<String> = (0..n).map(|i| format!("sevrer-{i:04}")).collect();
    text.push_str(&refs.join(", "));
    text.push_str("]\n    dependsOn: [");
    let deps: Vec<String> = (0..n).map(|i| format!("gruop-{i:04}")).collect();
    text.push_str(&deps.join(", "));
    text.push_str("]\n");
    text
}

/// As many groups as fit, each depending on the one before; `cycle` closes the chain.
fn depends_on_chain(cycle: bool) -> String {
    let per = server("s00000").len()
        + "  - {name: g00000, servers: [s00000], dependsOn: [g00000]}\n".len();
    let n = (BUDGET - HEAD.len() - 100) / per;
    let mut text = format!("{HEAD}servers:\n");
    (0..n).for_each(|i| text.push_str(&server(&format!("s{i:05}"))));
    text.push_str("groups:\n");
    for i in 0..n {
        let dep = if i > 0 {
            format!(", dependsOn: [g{:05}]", i - 1)
        } else if cycle {
            format!(", dependsOn: [g{:05}]", n - 1)
        } else {
            String::new()
        };
        let _ = writeln!(text, "  - {{name: g{i:05}, servers: [s{i:05}]{dep}}}");
    }
    text
}

/// 1 MB of servers in one group.
fn servers_filling_a_megabyte() -> String {
    servers_in_one_group(HEAD)
}

/// 1 MB of servers in one group, all running one 13 KB configure script (`configure.sh`).
fn servers_sharing_a_script() -> String {
    servers_in_one_group(&format!(
        "{}    configureScript: configure.sh\n",
        HEAD.replace(
            "launch: {instanceType: m5.large}",
            "launch:\n    instanceType: m5.large"
        )
    ))
}

fn servers_in_one_group(head: &str) -> String {
    let mut text = format!("{head}servers:\n");
    let mut ids = Vec::new();
    let mut i = 0;
    while text.len() + server("s000000").len() + ids.len() * 9 + 40 < BUDGET {
        let id = format!("s{i:06}");
        text.push_str(&server(&id));
        ids.push(id);
        i += 1;
    }
    let _ = writeln!(
        text,
        "groups:\n  - name: all\n    servers: [{}]",
        ids.join(", ")
    );
    text
}

/// A group listing unknown servers until the file is full: over 100,000 problems.
fn a_hundred_thousand_problems() -> String {
    let mut text = format!(
        "{HEAD}servers:\n{}groups:\n  - name: g\n    servers: [s",
        server("s")
    );
    let mut i = 0;
    while text.len() + 10 < BUDGET {
        let _ = write!(text, ", x{i}");
        i += 1;
    }
    text.push_str("]\n");
    text
}

/// A 500 KB string anchored once and aliased by nested lists, ten at each level.
fn alias_bomb() -> String {
    let mut text = format!("{HEAD}description: &s \"{}\"\n", "x".repeat(500_000));
    text.push_str("a0: &a0 [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n");
    for level in 1..9 {
        let p = level - 1;
        let _ = writeln!(
            text,
            "a{level}: &a{level} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
        );
    }
    text.push_str(&format!(
        "servers:\n{}groups:\n  - {{name: g, servers: [s]}}\n",
        server("s")
    ));
    text
}

/// A hostile file: its name in the table and how to make it.
type Case = (&'static str, fn() -> String);

struct Run {
    code: String,
    lines: usize,
    wall: Duration,
    peak_rss_kib: i64,
}

/// Runs `rehost validate FILE` and waits with wait4 for its resource usage.
// The child is reaped by wait4 (which std's Child cannot do while reporting rusage).
#[allow(clippy::zombie_processes)]
fn validate(file: &Path) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .arg("validate")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .pre_exec_limit_memory()
        .spawn()
        .expect("rehost runs");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet waited for; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let wall = start.elapsed();
    let lines = reader
        .join()
        .expect("stderr reader")
        .split(|&b| b == b'\n')
        .count()
        - 1;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status).to_string()
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    Run {
        code,
        lines,
        wall,
        peak_rss_kib: usage.ru_maxrss,
    }
}

trait LimitMemory {
    fn pre_exec_limit_memory(&mut self) -> &mut Self;
}

impl LimitMemory for Command {
    /// Caps the child's address space at 2 GiB.
    fn pre_exec_limit_memory(&mut self) -> &mut Self {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            self.pre_exec(|| {
                let cap = libc::rlimit {
                    rlim_cur: 2 << 30,
                    rlim_max: 2 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rehost-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn main() {
    let dir = scratch();
    // The configure script one case shares between all its servers, near user data's limit.
    let script = "#!/bin/sh\necho 'configuring this server, one line of many'\n".repeat(220);
    std::fs::write(dir.join("configure.sh"), script).expect("write the script");
    let cases: [Case; 9] = [
        ("4,000 groups chained by launchOrder", launch_order_chain),
        (
            "4,000 groups in 2 launchOrder levels",
            launch_order_two_levels,
        ),
        ("3,000 misspelled references (x2)", misspelled_references),
        ("deep dependsOn chain", || depends_on_chain(false)),
        ("dependsOn cycle through every group", || {
            depends_on_chain(true)
        }),
        ("1 MB of servers", servers_filling_a_megabyte),
        (
            "1 MB of servers sharing a 13 KB script",
            servers_sharing_a_script,
        ),
        ("100k+ problems", a_hundred_thousand_problems),
        ("alias bomb (500 KB string x 10^9)", alias_bomb),
    ];
    println!(
        "{:<40} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "file", "bytes", "exit", "lines", "median", "peak RSS"
    );
    for (name, make) in cases {
        let text = make();
        assert!(text.len() < BUDGET, "{name}: {} bytes", text.len());
        let file = dir.join("app.yaml");
        std::fs::write(&file, &text).expect("write the hostile file");
        let mut runs: Vec<Run> = (0..3).map(|_| validate(&file)).collect();
        runs.sort_by_key(|r| r.wall);
        let peak = runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
        let median = &runs[1];
        println!(
            "{name:<40} {:>9} {:>9} {:>7} {:>8.0}ms {:>6.1} MiB",
            text.len(),
            median.code,
            median.lines,
            median.wall.as_secs_f64() * 1e3,
            peak as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
