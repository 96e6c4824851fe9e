//! Harness shared by the test suites. It starts real tools (the moto server, cfn-lint, qemu-img);
//! nothing here imitates AWS.

pub mod guest;
pub mod moto;
pub mod proxy;
pub mod tools;

pub use moto::Moto;
pub use tools::{cfn_lint, scratch_dir, tools_bin, workspace_root};
