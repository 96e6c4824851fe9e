//! What the launch suites (`launch_lifecycle`, `launch_safety`, `share_safety`) share: the
//! emulator (one per test binary), running rehost against it, the network and example
//! applications they launch, and reading back what was launched.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use aws_sdk_ec2::types::Filter;
use rehost_testkit::cli::Running;
use rehost_testkit::images::{Fill, write_image};
use rehost_testkit::proxy::{Action, Proxy};
use rehost_testkit::{Moto, Rehost, workspace_root};
use serde_json::Value;

pub fn moto() -> &'static Moto {
    Moto::shared()
}

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// rehost against the shared emulator, from the test kit's one command builder.
pub fn rehost_at(dir: &Path) -> Rehost {
    Rehost::new(env!("CARGO_BIN_EXE_rehost"))
        .current_dir(dir)
        .env_moto(moto())
}

pub fn rehost(dir: &Path, args: &[&str]) -> Output {
    rehost_at(dir).args(args).run()
}

/// The standard output of a run that must have succeeded.
pub use rehost_testkit::cli::succeeded as ok;

pub fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

pub async fn sdk() -> aws_config::SdkConfig {
    for (k, v) in moto().env() {
        // SAFETY: set once per process before any client reads the environment, identical values.
        unsafe { std::env::set_var(k, v) };
    }
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

pub struct Infra {
    pub vpc: String,
    pub subnet: String,
    pub test_subnet: String,
    pub sg: String,
    pub test_sg: String,
}

/// Network, key pair, instance profile and KMS alias the examples name, created in the emulator
/// (its ids are random, so the example files are copied with the real ids put in).
pub async fn infra(prefix: &str) -> Infra {
    infra_in(&sdk().await, prefix).await
}

/// As [`infra`], in the account `conf` reaches.
pub async fn infra_in(conf: &aws_config::SdkConfig, prefix: &str) -> Infra {
    // Tests of this binary run in parallel against one emulator: set up one at a time.
    static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = SETUP.lock().await;
    let conf = conf.clone();
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let subnet = |cidr: &'static str| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .send()
                .await
                .unwrap()
                .subnet
                .unwrap()
                .subnet_id
                .unwrap()
        }
    };
    let (s1, s2) = (subnet("10.0.1.0/24").await, subnet("10.0.9.0/24").await);
    let sg = |name: String| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_security_group()
                .group_name(&name)
                .description(&name)
                .vpc_id(vpc)
                .send()
                .await
                .unwrap()
                .group_id
                .unwrap()
        }
    };
    let (g1, g2) = (
        sg(format!("{prefix}-app")).await,
        sg(format!("{prefix}-test")).await,
    );
    for key in ["farm-admin", "shop-admin"] {
        let _ = ec2.create_key_pair().key_name(key).send().await;
    }
    let _ = aws_sdk_iam::Client::new(&conf)
        .create_instance_profile()
        .instance_profile_name("rehost-ssm")
        .send()
        .await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let aliases = kms.list_aliases().send().await.unwrap();
    if !aliases
        .aliases()
        .iter()
        .any(|a| a.alias_name() == Some("alias/migration"))
    {
        let key = kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        kms.create_alias()
            .alias_name("alias/migration")
            .target_key_id(key)
            .send()
            .await
            .unwrap();
    }
    Infra {
        vpc,
        subnet: s1,
        test_subnet: s2,
        sg: g1,
        test_sg: g2,
    }
}

/// Copies an example into `dir` with the emulator's ids, generated disks and its configure
/// scripts (which must live in the application's repository: here, `dir`).
pub fn prepare(example: &str, dir: &Path, infra: &Infra, name: &str) -> PathBuf {
    let root = workspace_root();
    let mut text = std::fs::read_to_string(root.join(format!("apps/{example}.yaml"))).unwrap();
    for (from, to) in [
        ("vpc-0a1b2c3d4e5f60718", infra.vpc.as_str()),
        ("subnet-0a1b2c3d4e5f60718", infra.subnet.as_str()),
        ("subnet-0f0e0d0c0b0a09080", infra.test_subnet.as_str()),
        ("sg-0a1b2c3d4e5f60718", infra.sg.as_str()),
        ("sg-0f0e0d0c0b0a09080", infra.test_sg.as_str()),
        ("subnet-0b1c2d3e4f5a60718", infra.subnet.as_str()),
        ("subnet-0e0d0c0b0a0908070", infra.test_subnet.as_str()),
        ("sg-0b1c2d3e4f5a60718", infra.sg.as_str()),
        ("sg-0e0d0c0b0a0908070", infra.test_sg.as_str()),
        ("10.1.2.15", "10.0.1.15"),
        ("../launch-scripts/", "launch-scripts/"),
        (&format!("name: {example}"), &format!("name: {name}")),
    ] {
        text = text.replace(from, to);
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, &text).unwrap();
    for folder in ["sharepoint", "ecommerce"] {
        let to = dir.join("launch-scripts").join(folder);
        std::fs::create_dir_all(&to).unwrap();
        for script in std::fs::read_dir(root.join("launch-scripts").join(folder)).unwrap() {
            let script = script.unwrap().path();
            std::fs::copy(&script, to.join(script.file_name().unwrap())).unwrap();
        }
    }
    for (i, line) in text
        .lines()
        .filter(|l| l.contains("source: vmstore/"))
        .enumerate()
    {
        let source = line.split("source:").nth(1).unwrap().trim();
        // An 8 MiB disk with 1.5 MiB of data, in the format its extension names.
        write_image(
            &dir.join(source),
            8 << 20,
            &[(0, 2, Fill::Random), (10, 1, Fill::Random)],
            i as u64 + 1,
        );
    }
    file
}

pub fn scratch(name: &str) -> PathBuf {
    rehost_testkit::scratch_dir("launch", name)
}

pub struct Instance {
    pub image: String,
    pub instance_type: String,
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

pub async fn instances(app: &str, mode: &str) -> BTreeMap<String, Instance> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk().await);
    let mut map = BTreeMap::new();
    // Every page: an estate has more instances than one answer holds.
    let mut token: Option<String> = None;
    loop {
        let out = ec2
            .describe_instances()
            .set_next_token(token.take())
            .filters(Filter::builder().name("tag:rehost:app").values(app).build())
            .filters(
                Filter::builder()
                    .name("tag:rehost:mode")
                    .values(mode)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for r in out.reservations() {
            for i in r.instances() {
                let tags: BTreeMap<String, String> = i
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                    .collect();
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                if state == "terminated" {
                    continue;
                }
                map.insert(
                    tags["rehost:server"].clone(),
                    Instance {
                        image: i.image_id().unwrap().to_string(),
                        instance_type: i.instance_type().unwrap().as_str().to_string(),
                        state,
                        tags,
                    },
                );
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    map
}

pub async fn deployed_template(stack: &str) -> Value {
    let cfn = aws_sdk_cloudformation::Client::new(&sdk().await);
    let body = cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .template_body
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

pub async fn stack_exists(stack: &str) -> bool {
    let cfn = aws_sdk_cloudformation::Client::new(&sdk().await);
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => out
            .stacks()
            .iter()
            .any(|s| s.stack_status().map(|x| x.as_str()) != Some("DELETE_COMPLETE")),
        Err(_) => false,
    }
}

/// The first public image the emulator offers the account `conf` reaches.
pub async fn amazon_image(conf: &aws_config::SdkConfig) -> String {
    aws_sdk_ec2::Client::new(conf)
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string()
}

/// Credentials of another account of the emulator (STS AssumeRole into its account id): the
/// SDK configuration for it and the environment a child process needs.
pub async fn other_account(account: &str) -> (aws_config::SdkConfig, Vec<(&'static str, String)>) {
    let sts = aws_sdk_sts::Client::new(&sdk().await);
    let creds = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/rehost-tests"))
        .role_session_name("rehost-tests")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let (key, secret, token) = (
        creds.access_key_id().to_string(),
        creds.secret_access_key().to_string(),
        creds.session_token().to_string(),
    );
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            &key,
            &secret,
            Some(token.clone()),
            None,
            "assumed-role",
        ))
        .load()
        .await;
    let who = aws_sdk_sts::Client::new(&conf)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.account(), Some(account));
    let env = vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_SESSION_TOKEN", token),
    ];
    (conf, env)
}

pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit code 2 and returns stderr.
pub fn refused(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// An application of `servers` Linux servers in one group, launched into the infra's network.
pub fn small_app(dir: &Path, name: &str, servers: &[&str], infra: &Infra) -> PathBuf {
    let mut text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: {name}\ndefaults:\n  launch:\n    instanceType: m5.large\n    subnet: {}\n    securityGroups: [{}]\n    test: {{subnet: {}, securityGroups: [{}]}}\nservers:\n",
        infra.subnet, infra.sg, infra.test_subnet, infra.test_sg
    );
    for s in servers {
        text.push_str(&format!(
            "  - {{id: {s}, os: linux, disks: [{{source: {s}.img}}]}}\n"
        ));
    }
    text.push_str(&format!(
        "groups:\n  - {{name: g, servers: [{}]}}\n",
        servers.join(", ")
    ));
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// `small_app` with servers `a` and `b` whose small raw disks (`a.img`, `b.img`, random data
/// from `seed`) replicate.
pub fn replicable_small_app(dir: &Path, name: &str, infra: &Infra, seed: u64) -> PathBuf {
    let file = small_app(dir, name, &["a", "b"], infra);
    for (i, s) in ["a", "b"].iter().enumerate() {
        rehost_testkit::images::write_raw(
            &dir.join(format!("{s}.img")),
            2 << 20,
            &[(0, 2, Fill::Random)],
            seed + i as u64,
        );
    }
    file
}

/// Snapshots the emulator's default account owns.
pub async fn own_snapshots() -> usize {
    aws_sdk_ec2::Client::new(&sdk().await)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .len()
}

/// `n` distinct x86_64 images the emulator offers.
pub async fn x86_images(n: usize) -> Vec<String> {
    let out = aws_sdk_ec2::Client::new(&sdk().await)
        .describe_images()
        .owners("amazon")
        .filters(
            Filter::builder()
                .name("architecture")
                .values("x86_64")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = out
        .images()
        .iter()
        .filter_map(|i| i.image_id().map(str::to_string))
        .take(n)
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// Completed replication runs in the application's history.
pub fn completed_replications(dir: &Path, f: &str) -> usize {
    let h = json(&rehost(dir, &["history", f, "--output", "json"]));
    h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "replication" && e["status"] == "completed")
        .count()
}

/// `rehost ARGS` through a proxy that holds every `operation` request; returns once the first
/// is held (the proxy's holds are released by `release_holds` or when it is dropped).
pub fn held_at(dir: &Path, args: &[&str], operation: &'static str) -> (Proxy, Running) {
    let proxy = Proxy::start(moto().port());
    proxy.set_policy(move |r| {
        if r.operation == operation {
            Action::Hold
        } else {
            Action::Forward
        }
    });
    let mut running = rehost_at(dir)
        .args(args)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while proxy.held() == 0 {
        assert!(
            running.still_running() && std::time::Instant::now() < deadline,
            "rehost {args:?} never reached {operation}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (proxy, running)
}

/// Sends `signal` to a run `held_at` holds, waits for it to end (within a minute), releases
/// the proxy's holds, and returns its standard error; it must have ended with exit code 1.
pub fn ended_by_signal(proxy: &Proxy, running: Running, signal: i32) -> String {
    running.signal(signal);
    let out = running.wait_within(std::time::Duration::from_secs(60));
    proxy.release_holds();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}
