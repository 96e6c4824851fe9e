//! Gate generations: gates that also hold on updates.
//!
//! CloudFormation cannot update a WaitCondition or its handle: once complete they stay
//! complete, so an update that replaces a group's instances would run ungated. Each group's
//! gate and handle therefore carry a generation in their logical ids, a digest of exactly what
//! decides whether one of the group's instances is replaced: every instance property whose
//! update requires replacement (one table, `update_effect::instance_update_effect`,
//! from CloudFormation's resource reference), with the AMI as launched (the parameter's value,
//! never its name), plus the gate's own properties (its members, Count and Timeout, which
//! cannot be updated either). When an instance of the group will be replaced, the group gets a
//! new handle and condition (the old ones are removed) and the groups depending on it wait on
//! the new one; when none is, the gate keeps its id and nothing about it changes (a user-data
//! change alone restarts an instance without running user data again: a new gate would wait
//! for a signal that never comes).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::update_effect::{UpdateEffect, instance_update_effect};
use crate::app::AppServer;

/// Hex digits of a generation.
pub const GENERATION_LEN: usize = 8;

/// The generation of a group's gate. `instances` are the group's servers with their instance
/// resources (user data not yet set), `ami` the AMI each launches with when known (the value
/// `launch` passes for its parameter), `count` and `timeout` the gate's properties.
pub(super) fn generation(
    instances: &[(&AppServer, &Value)],
    ami: impl Fn(&AppServer) -> Option<String>,
    count: usize,
    timeout: &str,
) -> String {
    // What is hashed is `name=<compact JSON>;` per property, written straight into the digest
    // (no text or value copied per instance).
    let mut digest = DigestWriter(Sha256::new());
    digest
        .0
        .update(format!("count={count};timeout={timeout};").as_bytes());
    for (server, resource) in instances {
        digest.0.update(b"instance=");
        digest.0.update(server.logical_id.as_bytes());
        digest.0.update(b";");
        let Some(props) = resource["Properties"].as_object() else {
            continue;
        };
        for (name, value) in props {
            if instance_update_effect(name) != UpdateEffect::Replacement {
                continue;
            }
            digest.0.update(name.as_bytes());
            digest.0.update(b"=");
            let written = match (name.as_str(), ami(server)) {
                ("ImageId", Some(ami)) => serde_json::to_writer(&mut digest, &ami),
                _ => serde_json::to_writer(&mut digest, value),
            };
            written.expect("a template value serializes");
            digest.0.update(b";");
        }
    }
    digest
        .0
        .finalize()
        .iter()
        .take(GENERATION_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Feeds what serde_json writes to the digest.
struct DigestWriter(Sha256);

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::app::{App, Mode};
    use crate::diag::Diagnostics;
    use crate::template::{RenderOptions, Template, render};

    /// db <- app (two servers, a configure script) <- web.
    fn app(db_subnet: &str, web_type: &str, web_ip: &str, script: &[u8], tag: &str) -> App {
        let text = format!(
            "apiVersion: rehost/v1\nkind: Application\nname: shop\ntags: {{Team: {tag}}}\n\
             defaults:\n  launch: {{instanceType: m5.large, subnet: subnet-0a1b2c3d}}\nservers:\n  \
             - {{id: db01, os: linux, disks: [{{source: a.img}}], launch: {{subnet: {db_subnet}}}}}\n  \
             - {{id: app01, os: linux, disks: [{{source: b.img}}]}}\n  \
             - {{id: app02, os: linux, disks: [{{source: c.img}}]}}\n  \
             - {{id: web01, os: linux, disks: [{{source: d.img}}], launch: {{instanceType: {web_type}, privateIpAddress: {web_ip}}}}}\n\
             groups:\n  - {{name: db, servers: [db01]}}\n  \
             - {{name: app, servers: [app01, app02], dependsOn: [db], launch: {{configureScript: c.sh}}}}\n  \
             - {{name: web, servers: [web01], dependsOn: [app]}}\n"
        );
        let root = crate::yaml::parse(text.as_bytes()).unwrap();
        let mut diags = Diagnostics::default();
        let model = crate::decode::application(&root, &mut diags).unwrap();
        let scripts = [(Path::new("c.sh").to_path_buf(), Ok(script.to_vec()))]
            .into_iter()
            .collect();
        let app = crate::validate::resolve(&model, Path::new("shop.yaml"), &scripts, &mut diags);
        assert!(!diags.has_errors(), "{:?}", diags.into_sorted());
        app.unwrap()
    }

    fn base() -> App {
        app(
            "subnet-0f0f0f0f",
            "m5.large",
            "10.0.0.9",
            b"echo one\n",
            "a",
        )
    }

    fn amis(app02: &str) -> BTreeMap<String, String> {
        [
            ("db01", "ami-0000000000000000a"),
            ("app01", "ami-0000000000000000b"),
            ("app02", app02),
            ("web01", "ami-0000000000000000d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn rendered(app: &App, amis: BTreeMap<String, String>) -> Template {
        let mut opts = RenderOptions::new(Mode::Cutover);
        opts.amis = amis;
        render(app, &opts)
    }

    /// Group name -> gate id.
    fn gates(app: &App, t: &Template) -> BTreeMap<String, String> {
        app.groups
            .iter()
            .enumerate()
            .map(|(g, group)| (group.name.clone(), t.gate(g).unwrap().gate.clone()))
            .collect()
    }

    /// The groups whose gate ids differ between two renderings.
    fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
        a.keys().filter(|k| a[*k] != b[*k]).cloned().collect()
    }

    /// Issue 10 part 4: generations change exactly for the groups whose instances are replaced.
    #[test]
    fn gate_generations_change_exactly_for_groups_whose_instances_are_replaced() {
        let before_app = base();
        let before = rendered(&before_app, amis("ami-0000000000000000c"));
        let old = gates(&before_app, &before);
        assert!(old["app"].starts_with("AppGate") && old["app"].len() == "AppGate".len() + 8);

        // A new AMI for one server of `app` (the value launch passes for its parameter).
        let after = rendered(&before_app, amis("ami-0000000000000000e"));
        let new = gates(&before_app, &after);
        assert_eq!(changed(&old, &new), ["app"]);
        let r = &after.body["Resources"];
        assert!(r.get(&old["app"]).is_none(), "the old gate is removed");
        assert!(r.get(old["app"].replace("Gate", "GateHandle")).is_none());
        assert_eq!(
            r["Web01"]["DependsOn"],
            serde_json::json!([new["app"]]),
            "web waits on the new gate"
        );
        assert_eq!(
            r["App01"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1][0]["Fn::Sub"][1]["GateUrl"]
                ["Ref"],
            new["app"].replace("Gate", "GateHandle"),
            "servers signal the new handle"
        );

        // Replacement properties of other groups: a subnet (db), a private IP (web).
        let subnet = app(
            "subnet-0e0e0e0e",
            "m5.large",
            "10.0.0.9",
            b"echo one\n",
            "a",
        );
        let t = rendered(&subnet, amis("ami-0000000000000000c"));
        assert_eq!(changed(&old, &gates(&subnet, &t)), ["db"]);
        let ip = app(
            "subnet-0f0f0f0f",
            "m5.large",
            "10.0.0.10",
            b"echo one\n",
            "a",
        );
        let t = rendered(&ip, amis("ami-0000000000000000c"));
        assert_eq!(changed(&old, &gates(&ip, &t)), ["web"]);

        // What changes in place replaces nothing: instance type, configure script (user data),
        // tags. Rendering is deterministic.
        for same in [
            app(
                "subnet-0f0f0f0f",
                "m5.xlarge",
                "10.0.0.9",
                b"echo one\n",
                "a",
            ),
            app(
                "subnet-0f0f0f0f",
                "m5.large",
                "10.0.0.9",
                b"echo two\n",
                "a",
            ),
            app(
                "subnet-0f0f0f0f",
                "m5.large",
                "10.0.0.9",
                b"echo one\n",
                "b",
            ),
            base(),
        ] {
            let t = rendered(&same, amis("ami-0000000000000000c"));
            assert_eq!(changed(&old, &gates(&same, &t)), Vec::<String>::new());
        }
    }
}
