//! The `hooks:` section: each hook one way to run (a command without a shell, or shell text),
//! names unique per phase, timeouts in range. Whether a program exists is known only when the
//! hook runs (on the operator's machine, at cutover): then a missing one is a failed hook.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::app::{AppHook, AppHooks, HookRun};
use crate::diag::Diagnostics;
use crate::limits::{self, DEFAULT_HOOK_TIMEOUT_SECONDS, HOOK_TIMEOUT_SECONDS, MAX_HOOKS};
use crate::model::Spanned;
use crate::model::{Hook, Hooks};
use crate::syntax::check_id;

pub(super) fn resolve_hooks(hooks: Option<&Hooks>, diags: &mut Diagnostics) -> AppHooks {
    let Some(h) = hooks else {
        return AppHooks::default();
    };
    AppHooks {
        pre_cutover: phase(h.pre_cutover.as_ref(), "preCutover", diags),
        post_rollback: phase(h.post_rollback.as_ref(), "postRollback", diags),
    }
}

fn phase(list: Option<&Spanned<Vec<Hook>>>, phase: &str, diags: &mut Diagnostics) -> Vec<AppHook> {
    let Some(list) = list else {
        return Vec::new();
    };
    if list.value.len() > MAX_HOOKS {
        diags.error(
            list.pos,
            format!(
                "{phase} has {} hooks; at most {MAX_HOOKS}",
                list.value.len()
            ),
        );
    }
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for h in &list.value {
        let name = &h.name.value;
        if let Err(e) = check_id(name) {
            diags.error(h.name.pos, format!("hook name {e}"));
        }
        if let Some(first) = seen.insert(name.clone(), h.name.pos) {
            diags.error(
                h.name.pos,
                format!(
                    "hook `{name}` is already defined in {phase} at line {}",
                    first.line
                ),
            );
        }
        if let Some(t) = &h.timeout_seconds
            && !HOOK_TIMEOUT_SECONDS.contains(&t.value)
        {
            diags.error(
                t.pos,
                format!(
                    "timeoutSeconds must be between {} and {}, not {}",
                    HOOK_TIMEOUT_SECONDS.start(),
                    HOOK_TIMEOUT_SECONDS.end(),
                    t.value
                ),
            );
        }
        let run = match (&h.command, &h.shell) {
            (Some(c), None) if c.value.is_empty() || c.value[0].value.is_empty() => {
                diags.error(c.pos, format!("hook `{name}`: command needs a program"));
                None
            }
            (Some(c), None) => Some(HookRun::Command(
                c.value.iter().map(|a| a.value.clone()).collect(),
            )),
            (None, Some(s)) => Some(HookRun::Shell(s.value.clone())),
            (Some(c), Some(_)) => {
                diags.error(
                    c.pos,
                    format!("hook `{name}`: set either command (no shell) or shell, not both"),
                );
                None
            }
            (None, None) => {
                diags.error(
                    h.name.pos,
                    format!("hook `{name}`: needs `command: [PROGRAM, ARG...]` or `shell: TEXT`"),
                );
                None
            }
        };
        if let Some(run) = run {
            let seconds = h
                .timeout_seconds
                .as_ref()
                .map_or(DEFAULT_HOOK_TIMEOUT_SECONDS, |t| {
                    limits::clamp(t.value, &HOOK_TIMEOUT_SECONDS, DEFAULT_HOOK_TIMEOUT_SECONDS)
                });
            out.push(AppHook {
                name: name.clone(),
                run,
                timeout: Duration::from_secs(seconds),
            });
        }
    }
    out
}
