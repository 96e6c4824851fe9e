//! Turns the position-carrying YAML tree into the model, reporting every type error, unknown
//! field and missing field at its node and carrying on, so one run shows all problems.
//!
//! Size: ~630 lines: one decoder function per block of the application file, in the file's order,
//! each a list of fields; splitting it would split the file format's one description.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use rehost_replication::domain::Choice;

use crate::diag::Diagnostics;
use crate::model::*;
use crate::yaml::{Node, Value};

pub fn application(root: &Node, diags: &mut Diagnostics) -> Option<Application> {
    let mut m = Fields::open(root, "the application", diags)?;
    let api_version = m.required("apiVersion", string);
    let kind = m.required("kind", string);
    let name = m.required("name", string);
    let description = m.optional("description", string);
    let tags = m.optional("tags", tags);
    let state = m.optional("state", string);
    let defaults = m.optional("defaults", |n, d| settings(n, d, "defaults"));
    let mut unreadable = Unreadable::default();
    let servers = m.required("servers", |n, d| {
        list(n, d, |item, d| {
            let read = server(item, d);
            if read.is_none() {
                unreadable.server_ids.extend(field_text(item, "id"));
            }
            read
        })
    });
    let groups = m.required("groups", |n, d| {
        list(n, d, |item, d| {
            let read = group(item, d);
            if read.is_none() {
                unreadable.group_names.extend(field_text(item, "name"));
            }
            read
        })
    });
    let hooks = m.optional("hooks", hooks);
    m.finish();
    Some(Application {
        api_version: api_version?,
        kind: kind?,
        name: name?,
        description,
        tags,
        state,
        defaults: defaults.map(|s| s.value),
        servers: servers?,
        groups: groups?,
        hooks,
        unreadable,
    })
}

fn hooks(node: &Node, diags: &mut Diagnostics) -> Option<Hooks> {
    let mut m = Fields::open(node, "hooks", diags)?;
    let pre_cutover = m.optional("preCutover", |n, d| list(n, d, hook));
    let post_rollback = m.optional("postRollback", |n, d| list(n, d, hook));
    m.finish();
    Some(Hooks {
        pre_cutover,
        post_rollback,
    })
}

fn hook(node: &Node, diags: &mut Diagnostics) -> Option<Hook> {
    let mut m = Fields::open(node, "a hook", diags)?;
    let name = m.required("name", string);
    let command = m.optional("command", |n, d| list(n, d, string));
    let shell = m.optional("shell", string);
    let timeout_seconds = m.optional("timeoutSeconds", integer);
    m.finish();
    Some(Hook {
        name: name?,
        command,
        shell,
        timeout_seconds,
    })
}

/// A scalar field of a mapping that could not be read as a whole.
fn field_text(node: &Node, key: &str) -> Option<String> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string)
}

fn settings(node: &Node, diags: &mut Diagnostics, what: &str) -> Option<Spanned<Settings>> {
    let mut m = Fields::open(node, what, diags)?;
    let replication = m.optional("replication", replication);
    let launch = m.optional("launch", launch);
    m.finish();
    Some(Spanned::new(
        Settings {
            replication: replication.map(|s| s.value),
            launch: launch.map(|s| s.value),
        },
        node.pos,
    ))
}

fn replication(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<ReplicationSettings>> {
    let mut m = Fields::open(node, "replication settings", diags)?;
    let s = ReplicationSettings {
        frequency_hours: m.optional("frequencyHours", integer),
        run_once: m.optional("runOnce", boolean),
        seed_time: m.optional("seedTime", timestamp),
        license_type: m.optional("licenseType", choice),
        keep_recent_amis: m.optional("keepRecentAmis", integer),
        encrypted: m.optional("encrypted", boolean),
        kms_key_id: m.optional("kmsKeyId", string),
        max_lag_minutes: m.optional("maxLagMinutes", integer),
    };
    m.finish();
    Some(Spanned::new(s, node.pos))
}

fn launch(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<LaunchSettings>> {
    let mut m = Fields::open(node, "launch settings", diags)?;
    let s = LaunchSettings {
        instance_type: m.optional("instanceType", string),
        vpc: m.optional("vpc", string),
        subnet: m.optional("subnet", string),
        security_groups: m.optional("securityGroups", security_groups),
        key_name: m.optional("keyName", string),
        iam_instance_profile: m.optional("iamInstanceProfile", string),
        associate_public_ip_address: m.optional("associatePublicIpAddress", boolean),
        signal_timeout_minutes: m.optional("signalTimeoutMinutes", integer),
        private_ip_address: m.optional("privateIpAddress", string),
        logical_id: m.optional("logicalId", string),
        configure_script: m.optional("configureScript", string),
        configure_script_type: m.optional("configureScriptType", choice),
        checks: m.optional("checks", |n, d| list(n, d, check)),
        test: m.optional("test", test_settings),
    };
    m.finish();
    Some(Spanned::new(s, node.pos))
}

fn check(node: &Node, diags: &mut Diagnostics) -> Option<Check> {
    let mut m = Fields::open(node, "a check", diags)?;
    let tcp = m.optional("tcp", |n, d| {
        let mut m = Fields::open(n, "a tcp check", d)?;
        let host = m.required("host", string);
        let port = m.required("port", integer);
        m.finish();
        Some(Spanned::new(
            TcpCheck {
                host: host?,
                port: port?,
            },
            n.pos,
        ))
    });
    let http = m.optional("http", |n, d| {
        let mut m = Fields::open(n, "an http check", d)?;
        let url = m.required("url", string);
        let expect_status = m.optional("expectStatus", integer);
        let contains = m.optional("contains", string);
        m.finish();
        Some(Spanned::new(
            HttpCheck {
                url: url?,
                expect_status,
                contains,
            },
            n.pos,
        ))
    });
    let script = m.optional("script", string);
    let timeout_seconds = m.optional("timeoutSeconds", integer);
    m.finish();
    let kinds =
        usize::from(tcp.is_some()) + usize::from(http.is_some()) + usize::from(script.is_some());
    if kinds != 1 {
        diags.error(
            node.pos,
            "a check is exactly one of `tcp`, `http` or `script`".to_string(),
        );
        return None;
    }
    Some(Check {
        tcp,
        http,
        script,
        timeout_seconds,
        pos: node.pos,
    })
}

fn test_settings(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<TestSettings>> {
    let mut m = Fields::open(node, "test settings", diags)?;
    let s = TestSettings {
        vpc: m.optional("vpc", string),
        subnet: m.optional("subnet", string),
        security_groups: m.optional("securityGroups", security_groups),
        instance_type: m.optional("instanceType", string),
        private_ip_address: m.optional("privateIpAddress", string),
        associate_public_ip_address: m.optional("associatePublicIpAddress", boolean),
    };
    m.finish();
    Some(Spanned::new(s, node.pos))
}

fn security_groups(
    node: &Node,
    diags: &mut Diagnostics,
) -> Option<Spanned<Vec<Spanned<SecurityGroupId>>>> {
    list(node, diags, |n, d| {
        string(n, d).map(|s| Spanned::new(SecurityGroupId(s.value), s.pos))
    })
}

fn server(node: &Node, diags: &mut Diagnostics) -> Option<Server> {
    let mut m = Fields::open(node, "a server", diags)?;
    let id = m.required("id", string);
    let description = m.optional("description", string);
    let os = m.required("os", choice);
    let architecture = m.optional("architecture", choice);
    let boot_mode = m.optional("bootMode", choice);
    let ena_support = m.optional("enaSupport", boolean);
    let disks = m.required("disks", |n, d| list(n, d, disk));
    let replication = m.optional("replication", replication);
    let launch = m.optional("launch", launch);
    m.finish();
    Some(Server {
        id: id?,
        description,
        os: os?,
        architecture,
        boot_mode,
        ena_support,
        disks: disks?,
        replication: replication.map(|s| s.value),
        launch: launch.map(|s| s.value),
        pos: node.pos,
    })
}

fn disk(node: &Node, diags: &mut Diagnostics) -> Option<Disk> {
    let mut m = Fields::open(node, "a disk", diags)?;
    let source = m.required("source", string);
    let format = m.optional("format", choice);
    m.finish();
    Some(Disk {
        source: source?,
        format,
    })
}

fn group(node: &Node, diags: &mut Diagnostics) -> Option<Group> {
    let mut m = Fields::open(node, "a group", diags)?;
    let name = m.required("name", string);
    let description = m.optional("description", string);
    let depends_on = m.optional("dependsOn", |n, d| list(n, d, string));
    let launch_order = m.optional("launchOrder", integer);
    let servers = m.required("servers", |n, d| list(n, d, string));
    let replication = m.optional("replication", replication);
    let launch = m.optional("launch", launch);
    m.finish();
    Some(Group {
        name: name?,
        description,
        depends_on,
        launch_order,
        servers: servers?,
        replication: replication.map(|s| s.value),
        launch: launch.map(|s| s.value),
        pos: node.pos,
    })
}

fn tags(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<Tags>> {
    let Value::Map(entries) = &node.value else {
        diags.error(
            node.pos,
            format!(
                "`tags` must be a mapping of tag keys to values, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let (Some(k), Some(v)) = (string(key, diags), string(value, diags)) else {
            continue;
        };
        out.push((k, v));
    }
    Some(Spanned::new(Tags(out), node.pos))
}

/// Reads a mapping's fields, remembering which ones were asked for so the rest are reported as
/// unknown, with a suggestion when one is a likely typo.
struct Fields<'n, 'd> {
    node: &'n Node,
    entries: &'n [(Node, Node)],
    known: Vec<&'static str>,
    diags: &'d mut Diagnostics,
    what: String,
}

impl<'n, 'd> Fields<'n, 'd> {
    fn open(node: &'n Node, what: &str, diags: &'d mut Diagnostics) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            diags.error(
                node.pos,
                format!(
                    "expected {} (a mapping of fields), found {}",
                    describe(what),
                    node.kind()
                ),
            );
            return None;
        };
        Some(Fields {
            node,
            entries,
            known: Vec::new(),
            diags,
            what: what.to_string(),
        })
    }

    fn find(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn required<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&Node, &mut Diagnostics) -> Option<T>,
    ) -> Option<T> {
        match self.find(key) {
            Some(v) if !v.is_null() => read(v, self.diags),
            Some(v) => {
                self.diags
                    .error(v.pos, format!("`{key}` must have a value"));
                None
            }
            None => {
                self.diags.error(
                    self.node.pos,
                    format!("{} is missing required field `{key}`", self.what),
                );
                None
            }
        }
    }

    /// An absent field and an explicit `null` both mean "not set".
    fn optional<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&Node, &mut Diagnostics) -> Option<T>,
    ) -> Option<T> {
        match self.find(key) {
            Some(v) if !v.is_null() => read(v, self.diags),
            _ => None,
        }
    }

    fn finish(self) {
        for (key, _) in self.entries {
            let name = key.as_str().unwrap_or_default();
            if self.known.contains(&name) {
                continue;
            }
            let hint = if name == "<<" {
                " (YAML merge keys are not supported: use `defaults` or a group's settings)"
                    .to_string()
            } else {
                let close = self.diags.suggestion(name, self.known.iter().copied());
                if close.is_empty() {
                    format!("; expected one of: {}", self.known.join(", "))
                } else {
                    close
                }
            };
            self.diags.error(
                key.pos,
                format!("unknown field `{name}` in {}{hint}", self.what),
            );
        }
    }
}

fn describe(what: &str) -> &str {
    match what {
        "the application" => "the application definition",
        other => other,
    }
}

fn string(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    match &node.value {
        Value::Scalar { text, plain } => {
            if *plain && matches!(node.kind(), "a boolean" | "null") {
                diags.error(
                    node.pos,
                    format!(
                        "expected a string, found {} (quote it if you mean the text)",
                        node.kind()
                    ),
                );
                return None;
            }
            Some(Spanned::new(text.clone(), node.pos))
        }
        _ => {
            diags.error(
                node.pos,
                format!("expected a string, found {}", node.kind()),
            );
            None
        }
    }
}

fn integer(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<i64>> {
    if let Value::Scalar { text, plain: true } = &node.value
        && let Ok(n) = text.parse::<i64>()
    {
        return Some(Spanned::new(n, node.pos));
    }
    diags.error(
        node.pos,
        format!("expected an integer, found {}", node.kind()),
    );
    None
}

fn boolean(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<bool>> {
    if let Value::Scalar { text, plain: true } = &node.value {
        match text.as_str() {
            "true" | "True" | "TRUE" => return Some(Spanned::new(true, node.pos)),
            "false" | "False" | "FALSE" => return Some(Spanned::new(false, node.pos)),
            _ => {}
        }
    }
    let hint = match node.as_str() {
        Some("yes" | "no" | "on" | "off" | "Yes" | "No") => " (YAML 1.2: write true or false)",
        _ => "",
    };
    diags.error(
        node.pos,
        format!("expected true or false, found {}{hint}", node.kind()),
    );
    None
}

fn timestamp(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<Timestamp>> {
    let s = string(node, diags)?;
    match OffsetDateTime::parse(&s.value, &Rfc3339) {
        Ok(t) => Some(Spanned::new(Timestamp(t), s.pos)),
        Err(e) => {
            diags.error(
                s.pos,
                format!(
                    "`{}` is not an RFC 3339 timestamp such as 2026-12-01T02:00:00Z ({e})",
                    s.value
                ),
            );
            None
        }
    }
}

/// One of an enum's spellings (`Choice::CHOICES`), with "did you mean" for a wrong case or a typo.
fn choice<T: Choice>(node: &Node, diags: &mut Diagnostics) -> Option<Spanned<T>> {
    let options = T::CHOICES;
    let s = string(node, diags)?;
    if let Some((_, v)) = options.iter().find(|(name, _)| *name == s.value) {
        return Some(Spanned::new(*v, s.pos));
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let close = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(&s.value))
        .map(|n| format!(" (did you mean `{n}`?)"));
    let close = close.unwrap_or_else(|| diags.suggestion(&s.value, names.iter().copied()));
    diags.error(
        s.pos,
        format!("`{}` is not one of {}{close}", s.value, names.join(", ")),
    );
    None
}

/// A list with a broken element still yields the good ones, so cross-checks (references,
/// uniqueness) run on what could be read; the error already recorded keeps the file invalid.
fn list<T>(
    node: &Node,
    diags: &mut Diagnostics,
    mut item: impl FnMut(&Node, &mut Diagnostics) -> Option<T>,
) -> Option<Spanned<Vec<T>>> {
    let Value::Seq(items) = &node.value else {
        diags.error(node.pos, format!("expected a list, found {}", node.kind()));
        return None;
    };
    Some(Spanned::new(
        items.iter().filter_map(|n| item(n, diags)).collect(),
        node.pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a document; returns the model (if any) and every problem as `LINE:COL message`.
    fn decode(text: &str) -> (Option<Application>, Vec<String>) {
        let root = crate::yaml::parse(text.as_bytes()).expect("valid YAML");
        let mut diags = Diagnostics::default();
        let model = application(&root, &mut diags);
        (model, diags.lines())
    }

    const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

    #[test]
    fn a_complete_server_decodes_with_positions() {
        let (model, problems) = decode(&format!(
            "{HEAD}servers:\n  - id: web01\n    os: windows\n    architecture: arm64\n    bootMode: uefi\n    \
             enaSupport: false\n    disks: [{{source: a.vmdk}}]\n    replication: {{licenseType: BYOL, frequencyHours: 6}}\n    \
             launch: {{configureScriptType: POWERSHELL_SCRIPT, securityGroups: [sg-0a1b2c3d]}}\ngroups:\n  - {{name: web, servers: [web01]}}\n"
        ));
        assert_eq!(problems, Vec::<String>::new());
        let model = model.unwrap();
        let server = &model.servers.value[0];
        assert_eq!(server.id.value, "web01");
        assert_eq!(server.id.pos.line, 5);
        assert_eq!(server.os.value, Os::Windows);
        assert_eq!(
            server.architecture.as_ref().unwrap().value,
            Architecture::Arm64
        );
        assert_eq!(server.boot_mode.as_ref().unwrap().value, BootMode::Uefi);
        assert!(!server.ena_support.as_ref().unwrap().value);
        let r = server.replication.as_ref().unwrap();
        assert_eq!(r.license_type.as_ref().unwrap().value, LicenseType::Byol);
        assert_eq!(r.frequency_hours.as_ref().unwrap().value, 6);
        let l = server.launch.as_ref().unwrap();
        assert_eq!(
            l.configure_script_type.as_ref().unwrap().value,
            ScriptType::PowerShell
        );
        assert_eq!(
            l.security_groups.as_ref().unwrap().value[0].value,
            SecurityGroupId("sg-0a1b2c3d".into())
        );
    }

    #[test]
    fn every_shape_error_is_reported_and_decoding_goes_on() {
        let (model, problems) = decode(&format!(
            "{HEAD}servers:\n  - id: web01\n    os: linux\n    disks: [{{source: a}}]\n    replication: {{frequencyHours: \"6\", encrypted: yes}}\n    \
             launch: {{instanceType: true, subnt: subnet-0a1b2c3d}}\ngroups:\n  - {{name: web, servers: [web01], launchOrder: first}}\n"
        ));
        assert_eq!(
            problems,
            [
                "8:35 expected an integer, found a string",
                "8:51 expected true or false, found a string (YAML 1.2: write true or false)",
                "9:28 expected a string, found a boolean (quote it if you mean the text)",
                "9:34 unknown field `subnt` in launch settings (did you mean `subnet`?)",
                "11:48 expected an integer, found a string",
            ]
        );
        // The server and the group are still read, so later checks can run on them.
        let model = model.unwrap();
        assert_eq!(model.servers.value.len(), 1);
        assert_eq!(model.groups.value.len(), 1);
    }

    #[test]
    fn enum_values_suggest_their_spelling() {
        let (_, problems) = decode(&format!(
            "{HEAD}servers:\n  - {{id: a, os: Linux, architecture: x86-64, disks: [{{source: a}}]}}\ngroups: []\n"
        ));
        assert_eq!(
            problems,
            [
                "5:17 `Linux` is not one of windows, linux (did you mean `linux`?)",
                "5:38 `x86-64` is not one of x86_64, arm64 (did you mean `x86_64`?)",
            ]
        );
    }

    #[test]
    fn null_means_unset_but_a_required_field_needs_a_value() {
        let (model, problems) = decode(&format!(
            "{HEAD}description: ~\nservers:\n  - {{id: a, os: linux, disks: [{{source: a}}], launch: null}}\ngroups:\n  - name:\n    servers: [a]\n"
        ));
        assert_eq!(problems, ["8:9 `name` must have a value"]);
        let model = model.unwrap();
        assert!(model.description.is_none());
        assert!(model.servers.value[0].launch.is_none());
        assert!(
            model.groups.value.is_empty(),
            "the unreadable group is left out"
        );
    }

    #[test]
    fn unreadable_servers_and_groups_are_remembered_by_name() {
        let (model, problems) = decode(&format!(
            "{HEAD}servers:\n  - {{id: db, os: solaris, disks: [{{source: a}}]}}\n  - {{id: web, os: linux, disks: [{{source: b}}]}}\n\
             groups:\n  - {{name: data, servers: db}}\n"
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        let model = model.unwrap();
        assert_eq!(model.unreadable.server_ids, ["db"]);
        assert_eq!(model.unreadable.group_names, ["data"]);
        assert_eq!(model.servers.value.len(), 1);
    }

    #[test]
    fn missing_fields_and_wrong_top_level_shapes() {
        let (model, problems) = decode("apiVersion: rehost/v1\nservers: {}\ngroups: []\n");
        assert!(model.is_none());
        assert_eq!(
            problems,
            [
                "1:1 the application is missing required field `kind`",
                "1:1 the application is missing required field `name`",
                // A flow collection is reported at its key (as `rehost validate` shows it).
                "2:1 expected a list, found a mapping",
            ]
        );
        let (_, problems) = decode("- a\n- b\n");
        assert_eq!(
            problems,
            ["1:1 expected the application definition (a mapping of fields), found a list"]
        );
        let (_, problems) = decode(&format!(
            "{HEAD}tags: [a]\nservers: []\ngroups: []\nextra: 1\n"
        ));
        assert_eq!(
            problems,
            [
                "4:1 `tags` must be a mapping of tag keys to values, found a list",
                "7:1 unknown field `extra` in the application; expected one of: apiVersion, kind, name, \
                 description, tags, state, defaults, servers, groups, hooks",
            ]
        );
    }
}
