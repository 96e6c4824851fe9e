//! What rendering takes and gives: the options of a variant (mode, portable, gates, AMI
//! defaults) and the rendered template with its counts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::app::Mode;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub mode: Mode,
    /// Account-specific ids become typed parameters so the template launches in other accounts.
    pub portable: bool,
    pub health_gate: bool,
    /// Launch as nested stacks even when one template would do (`--nested`).
    pub nested: bool,
    /// Default AMI per server id (from `--ami` or the replication state).
    pub amis: BTreeMap<String, String>,
}

impl RenderOptions {
    pub fn new(mode: Mode) -> Self {
        RenderOptions {
            mode,
            portable: false,
            health_gate: true,
            nested: false,
            amis: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Template {
    pub body: Value,
    pub resources: usize,
    pub parameters: usize,
    pub outputs: usize,
    /// How AMIs are parameterised (per server while they fit in the parameter quota).
    pub ami_parameters: AmiParameters,
    /// Each group's gate (by group index; None without gates).
    pub gates: Vec<Option<GateIds>>,
}

/// The logical ids of a group's gate, which carry its generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateIds {
    pub gate: String,
    pub handle: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmiParameters {
    /// One `AWS::EC2::Image::Id` per server.
    PerServer,
    /// One `List<AWS::EC2::Image::Id>` per group, in the group's server order: used only when
    /// per-server parameters would exceed CloudFormation's 200-parameter quota.
    PerGroup,
}

impl Template {
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.body).expect("template serializes");
        s.push('\n');
        s
    }

    /// The form sent to CloudFormation: smallest, so more templates fit inline.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(&self.body).expect("template serializes")
    }

    /// The length of `to_json_compact`, counted without building the text.
    pub fn compact_len(&self) -> usize {
        super::package::compact_len(&self.body)
    }

    /// Block-style YAML that YAML 1.1 and 1.2 readers read back as the JSON rendering.
    pub fn to_yaml(&self) -> String {
        super::emit_yaml::to_yaml(&self.body)
    }

    /// The gate of group `g`, when the template is gated.
    pub fn gate(&self, g: usize) -> Option<&GateIds> {
        self.gates.get(g).and_then(Option::as_ref)
    }

    /// Whether the template declares this logical id.
    pub fn has_resource(&self, logical_id: &str) -> bool {
        self.body["Resources"].get(logical_id).is_some()
    }
}
