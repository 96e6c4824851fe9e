//! Harness shared by the test suites. It starts real tools (the moto server, cfn-lint, qemu-img);
//! nothing here imitates AWS.

pub mod apps;
pub mod cli;
pub mod guest;
pub mod images;
pub mod moto;
pub mod proxy;
pub mod tools;
pub mod user_data;

pub use cli::Rehost;
pub use moto::Moto;
pub use tools::{
    cfn_lint, cfn_lint_all, limit_address_space, scratch_dir, tools_bin, workspace_root,
};
pub use user_data::{gate_id, resolve_user_data};
