//! rehost's engine: application definitions as code, validated into a launch graph, rendered
//! into one CloudFormation template, replicated and launched on AWS.
//!
//! Data flows one way: file -> `yaml` tree -> `decode`d model -> (`load` reads the configure
//! scripts) -> `validate`d `App` with its `graph` -> {`replication_jobs`, `template`} ->
//! `launch` (AWS). Everything before `launch` is pure: `load` is the only module that reads
//! files, and it does so before validation. Limits live in `limits`, domain enums shared with
//! the replication engine in `rehost_replication::domain`.

pub mod app;
pub mod decode;
pub mod diag;
pub mod error;
pub mod graph;
pub mod inspected;
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
