//! rehost's engine: application definitions as code, validated into a launch graph, rendered
//! into one CloudFormation template, replicated and launched on AWS.
//!
//! Data flows one way: file -> `yaml` tree -> `decode`d model -> `validate`d `App` with its
//! `graph` -> {replication plan, `template`} -> AWS. Everything before AWS is pure.

pub mod app;
pub mod decode;
pub mod diag;
pub mod error;
pub mod graph;
pub mod launch;
pub mod limits;
pub mod load;
pub mod model;
pub mod replication_jobs;
pub mod syntax;
pub mod template;
pub mod userdata;
pub mod validate;
pub mod yaml;
