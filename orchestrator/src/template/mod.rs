//! One CloudFormation template for the whole application.
//!
//! Servers launch group by group: each group has a WaitConditionHandle + WaitCondition (its
//! "gate", Count = its servers) that opens once every server of the group has signalled that its
//! configure script succeeded; a server's instance DependsOn the gates of exactly the groups its
//! group depends on, so independent groups start together. `--no-health-gate` drops the gates and
//! makes instances DependsOn the instances of those groups instead.
//!
//! - `document`: `RenderOptions` in, `Template` out
//! - `render`: assembles `parameters`, `resources` and `outputs` with the description and metadata
//! - `user_data`: each instance's user data, every distinct wrapper body stored once in `Mappings`
//! - `names`: logical ids and parameter names, and the one table of portable fields
//! - `gates`: each group's gate generation, which changes exactly when an instance is replaced
//! - `update_effect`: how each instance property's update lands (replacement or not)
//! - `check`: collisions and quotas, checked for every variant while loading
//! - `emit_yaml`: `render --format yaml`, quoted so YAML 1.1 and 1.2 readers agree with the JSON
//!
//! Output is deterministic: maps keep insertion order, which follows launch order.

mod check;
mod document;
mod emit_yaml;
mod gates;
mod names;
mod nested;
#[cfg(test)]
mod nested_tests;
mod outputs;
mod package;
pub(crate) mod parameters;
#[cfg(test)]
mod quota_tests;
mod references;
mod render;
mod resources;
#[cfg(test)]
mod tests;
mod update_effect;
mod user_data;

pub use check::check;
pub use document::{AmiParameters, GateIds, RenderOptions, Template};
pub use emit_yaml::to_yaml;
pub use names::{Names, PORTABLE_FIELDS, PortableField};
pub use nested::{Child, NestError, TEMPLATE_BASE_URL};
pub use outputs::launch_waves_text;
pub use package::{NestedPackage, Package, compact_len, quota_problems, render_package};
pub use render::render;
pub use update_effect::{UpdateEffect, instance_update_effect};
