//! Names in the template (logical ids, parameters, outputs) and the one table of portable
//! fields: the account-specific settings a `--portable` template turns into parameters.

use serde_json::Value;

use crate::app::{App, AppServer, Launch, Level, Origin, Setting};

/// Names of the template's logical ids and parameters, derived from the application.
pub struct Names;

impl Names {
    pub fn image_parameter(server: &AppServer) -> String {
        format!("{}ImageId", server.logical_id)
    }
    pub fn group_image_parameter(stem: &str) -> String {
        format!("{stem}GroupImageIds")
    }
    /// A group's WaitCondition: `{stem}Gate{generation}`. The generation changes exactly when
    /// one of the group's instances is replaced (see `template::gates`), because
    /// CloudFormation cannot update a WaitCondition or its handle.
    pub fn gate(stem: &str, generation: &str) -> String {
        format!("{stem}Gate{generation}")
    }
    pub fn gate_handle(stem: &str, generation: &str) -> String {
        format!("{stem}GateHandle{generation}")
    }
    /// Whether `logical_id` is a gate or gate handle of the group with this stem, of any
    /// generation (an old one in a deployed template included).
    pub fn is_gate_of(stem: &str, logical_id: &str) -> bool {
        let Some(rest) = logical_id.strip_prefix(stem) else {
            return false;
        };
        let Some(rest) = rest.strip_prefix("Gate") else {
            return false;
        };
        let generation = rest.strip_prefix("Handle").unwrap_or(rest);
        generation.is_empty()
            || (generation.len() == super::gates::GENERATION_LEN
                && generation
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
    }
    pub fn instance_output(server: &AppServer) -> String {
        format!("{}InstanceId", server.logical_id)
    }
    pub fn private_ip_output(server: &AppServer) -> String {
        format!("{}PrivateIp", server.logical_id)
    }
    pub fn group_instances_output(stem: &str) -> String {
        format!("{stem}GroupInstanceIds")
    }
    pub fn group_private_ips_output(stem: &str) -> String {
        format!("{stem}GroupPrivateIps")
    }
    /// A group's nested stack, when the application is launched as nested stacks.
    pub fn nested_stack(stem: &str) -> String {
        format!("{stem}Stack")
    }
    /// Part `k` (from 1) of a group too large for one nested stack.
    pub fn nested_stack_part(stem: &str, k: usize) -> String {
        format!("{stem}Part{k}Stack")
    }
    /// The block a setting came from: `Default`, `DatabaseGroup`, `SqlServer01`, + `Test`.
    fn origin(app: &App, origin: Origin) -> String {
        let level = match origin.level {
            Level::Defaults => "Default".to_string(),
            Level::Group(g) => format!("{}Group", app.groups[g].logical_stem),
            Level::Server(s) => app.servers[s].logical_id.clone(),
        };
        if origin.test {
            format!("{level}Test")
        } else {
            level
        }
    }
    /// A portable field's parameter: `DefaultSubnet`, `DatabaseGroupTestSecurityGroups`.
    pub fn portable_parameter(app: &App, origin: Origin, field: &str) -> String {
        format!("{}{field}", Self::origin(app, origin))
    }
}

/// An account-specific launch setting: literal in a normal template, a typed parameter (one
/// per block that sets it, shared by every server inheriting it) in a portable one.
pub struct PortableField {
    /// Suffix of the parameter name.
    pub name: &'static str,
    /// CloudFormation parameter type.
    pub parameter_type: &'static str,
    /// What the parameter holds, for its description.
    pub description: &'static str,
    /// Where the setting came from and its literal template value, when it is set.
    pub setting: fn(&Launch) -> Option<(Origin, Value)>,
}

fn literal<T: Clone + Into<Value>>(setting: &Option<Setting<T>>) -> Option<(Origin, Value)> {
    setting.as_ref().map(|s| (s.origin, s.value.clone().into()))
}

pub const SUBNET: PortableField = PortableField {
    name: "Subnet",
    parameter_type: "AWS::EC2::Subnet::Id",
    description: "Subnet",
    setting: |l| literal(&l.subnet),
};

pub const SECURITY_GROUPS: PortableField = PortableField {
    name: "SecurityGroups",
    parameter_type: "List<AWS::EC2::SecurityGroup::Id>",
    description: "Security groups",
    setting: |l| literal(&l.security_groups),
};

pub const KEY_NAME: PortableField = PortableField {
    name: "KeyName",
    parameter_type: "AWS::EC2::KeyPair::KeyName",
    description: "EC2 key pair",
    setting: |l| literal(&l.key_name),
};

pub const INSTANCE_PROFILE: PortableField = PortableField {
    name: "InstanceProfile",
    parameter_type: "String",
    description: "IAM instance profile name",
    setting: |l| literal(&l.iam_instance_profile),
};

/// Every portable field, in the order parameters are described.
pub const PORTABLE_FIELDS: [&PortableField; 4] =
    [&SUBNET, &SECURITY_GROUPS, &KEY_NAME, &INSTANCE_PROFILE];

impl PortableField {
    /// The value an instance property takes: the literal, or in a portable template a Ref to
    /// the field's parameter. None when the setting is not set.
    pub fn value(&self, app: &App, launch: &Launch, portable: bool) -> Option<Value> {
        let (origin, literal) = (self.setting)(launch)?;
        Some(if portable {
            serde_json::json!({"Ref": Names::portable_parameter(app, origin, self.name)})
        } else {
            literal
        })
    }
}

/// A literal value as the parameter description shows it (lists joined by commas).
pub fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}
