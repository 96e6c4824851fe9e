//! CloudFormation stacks: create or update (through a change set) the application's stack for a
//! mode, follow its events until it settles, explain a failure, delete it.
//!
//! - `info`: the stack as it is (`describe`) and what its status means
//! - `request`: what a launch sends: body, parameters, tags, client token, failure policy
//! - `lifecycle`: `start` (create, or update through a change set) and `delete`
//! - `change_set`: computing, executing and deleting change sets
//! - `events`: following a stack's events (the `Observer`), the cause of a failure
//! - `instances`: the launched instances, as `launch` and `status` show them
//!
//! Every entry point starts by looking at the stack as it is, so a run interrupted at any point
//! (Ctrl-C, crash) and started again converges: an operation still in progress is waited for, a
//! stack left by a failed creation is replaced, an unchanged template is a no-op.

mod change_set;
mod events;
mod info;
mod instances;
mod lifecycle;
mod request;

pub use change_set::{delete_change_set, plan_change_set};
pub use events::{
    EventView, Notice, Observer, cause_of_failure, events, first_failure, is_done, is_failure, wait,
};
pub use info::{StackInfo, describe, in_progress, replaced_on_launch, succeeded};
pub use instances::{InstanceView, instances};
pub use lifecycle::{delete, start};
pub use request::{OnFailureChoice, StackRequest, Started};
