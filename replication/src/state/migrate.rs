//! Moving a whole state to another place (`rehost state migrate --from PATH --to s3://...`),
//! through the trait, so any backend moves to any other: every server's records, manifests and
//! accepted blocks; each application's account binding and launch history; each server's
//! cached guest inspection and the risks operators accepted for it (servers inspected but never
//! replicated included).
//!
//! Everything is checked before anything is written: the destination may hold records of the
//! moved applications only where they are exactly the same (an interrupted or repeated
//! migration; for accepted risks, which are appended one at a time, the first ones of the
//! source's list), else nothing is written and every difference is named. So a migration is
//! idempotent, and an interrupted one is finished by running it again.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::{
    AcceptedRisk, ImportOutcome, InspectionRecord, LaunchRecord, ServerKey, StateError, StateStore,
};

/// Everything a state holds beyond the servers [`StateStore::servers`] lists: what a migration
/// must find to move the whole state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Every application with any record: replicated servers, an account binding, launches,
    /// inspections or accepted risks.
    pub apps: BTreeSet<String>,
    /// Every server with a cached inspection or accepted risks, replicated or not (`rehost
    /// inspect` runs before the first replication).
    pub guests: BTreeSet<ServerKey>,
}

/// Lists a whole state for a migration. Apart from [`StateStore`]'s per-record methods (it is
/// a supertrait of it) because only a whole-state move needs it; each backend implements it
/// beside its migration code.
#[async_trait]
pub trait StateInventory: Send + Sync {
    async fn inventory(&self) -> Result<Inventory, StateError>;
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// Servers written to the destination.
    pub moved: Vec<ServerKey>,
    /// Servers the destination already held exactly.
    pub already_there: Vec<ServerKey>,
    /// Launch records, inspections and accepted risks written (those the destination already
    /// held are not counted).
    pub launches: usize,
    pub inspections: usize,
    pub accepted_risks: usize,
}

/// What is written once every check passed.
#[derive(Default)]
struct Plan {
    launches: Vec<(String, LaunchRecord)>,
    inspections: Vec<(ServerKey, InspectionRecord)>,
    risks: Vec<(ServerKey, Vec<AcceptedRisk>)>,
}

/// Moves every record of `from` to `to`. Both sides' application locks are held meanwhile (no
/// replication changes either side); each server's replication records are read whole, one
/// server at a time, so memory stays at one server's records (plus the launch history).
pub async fn migrate(from: &dyn StateStore, to: &dyn StateStore) -> Result<Migration, StateError> {
    if from.location() == to.location() {
        return Err(StateError::BadLocation {
            text: to.location(),
            why: "the destination is the source".into(),
        });
    }
    let servers = from.servers().await?;
    let inventory = from.inventory().await?;
    let apps: BTreeSet<String> = servers
        .iter()
        .map(|k| k.app.clone())
        .chain(inventory.apps.iter().cloned())
        .collect();
    let mut locks = Vec::new();
    for app in &apps {
        locks.push(from.lock_app(app).await?);
        locks.push(to.lock_app(app).await?);
    }
    // Everything is checked before anything is written.
    let wanted: BTreeSet<&ServerKey> = servers.iter().collect();
    let mut differ: Vec<String> = to
        .servers()
        .await?
        .into_iter()
        .filter(|k| apps.contains(&k.app) && !wanted.contains(k))
        .map(|k| format!("{k} (not in the source)"))
        .collect();
    // Guests of either side: an inspection or a risk only the destination holds differs too.
    let guests: BTreeSet<ServerKey> = to
        .inventory()
        .await?
        .guests
        .into_iter()
        .filter(|k| apps.contains(&k.app))
        .chain(inventory.guests)
        .collect();
    // An application keeps its binding: one bound to another account at the destination is
    // refused, as a command run with that account would be.
    let mut bindings = Vec::new();
    for app in &apps {
        let Some(binding) = from.account_binding(app).await? else {
            continue;
        };
        match to.account_binding(app).await? {
            Some(there) if there != binding => differ.push(format!(
                "application {app} (bound to {there} there, to {binding} here)"
            )),
            _ => bindings.push((app, binding)),
        }
    }
    for key in &servers {
        let there = to.export_server(key).await?;
        if !there.is_empty() && there != from.export_server(key).await? {
            differ.push(key.to_string());
        }
    }
    let mut plan = Plan::default();
    for app in &apps {
        plan_launches(from, to, app, &mut plan, &mut differ).await?;
    }
    for key in &guests {
        plan_guest(from, to, key, &mut plan, &mut differ).await?;
    }
    if !differ.is_empty() {
        return Err(StateError::Differs {
            location: to.location(),
            server: differ.join(", "),
        });
    }
    let mut done = Migration::default();
    for (app, binding) in bindings {
        to.bind_account(app, &binding).await?;
    }
    for (app, launch) in &plan.launches {
        to.record_launch(app, launch).await?;
        done.launches += 1;
    }
    for (key, inspection) in &plan.inspections {
        to.store_inspection(key, inspection).await?;
        done.inspections += 1;
    }
    for (key, risks) in &plan.risks {
        for risk in risks {
            to.record_accepted_risk(key, risk).await?;
            done.accepted_risks += 1;
        }
    }
    for key in servers {
        let dump = from.export_server(&key).await?;
        match to.import_server(&dump).await? {
            ImportOutcome::Created => done.moved.push(key),
            ImportOutcome::Identical => done.already_there.push(key),
        }
    }
    drop(locks);
    Ok(done)
}

/// The application's launches the destination lacks; a launch it holds otherwise, or one the
/// source does not have, is a difference.
async fn plan_launches(
    from: &dyn StateStore,
    to: &dyn StateStore,
    app: &str,
    plan: &mut Plan,
    differ: &mut Vec<String>,
) -> Result<(), StateError> {
    let mut there: BTreeMap<String, LaunchRecord> = to
        .launches(app, usize::MAX)
        .await?
        .into_iter()
        .map(|l| (l.launch_id.clone(), l))
        .collect();
    // Oldest first, so an interrupted migration leaves the oldest ones moved.
    for launch in from.launches(app, usize::MAX).await?.into_iter().rev() {
        match there.remove(&launch.launch_id) {
            None => plan.launches.push((app.to_string(), launch)),
            Some(held) if held == launch => {}
            Some(_) => differ.push(format!("launch {} of {app}", launch.launch_id)),
        }
    }
    differ.extend(
        there
            .into_keys()
            .map(|id| format!("launch {id} of {app} (not in the source)")),
    );
    Ok(())
}

/// The server's inspection and accepted risks the destination lacks. Its inspection must be
/// absent or the same; its accepted risks the first ones of the source's (appended one at a
/// time, an interrupted migration may have moved some).
async fn plan_guest(
    from: &dyn StateStore,
    to: &dyn StateStore,
    key: &ServerKey,
    plan: &mut Plan,
    differ: &mut Vec<String>,
) -> Result<(), StateError> {
    let inspection = from.inspection(key).await?;
    match (inspection, to.inspection(key).await?) {
        (Some(here), None) => plan.inspections.push((key.clone(), here)),
        (here, there) if here == there => {}
        _ => differ.push(format!("the inspection of {key}")),
    }
    let mut risks = from.accepted_risks(key).await?;
    let there = to.accepted_risks(key).await?;
    if risks.starts_with(&there) {
        let rest = risks.split_off(there.len());
        if !rest.is_empty() {
            plan.risks.push((key.clone(), rest));
        }
    } else {
        differ.push(format!("the accepted risks of {key}"));
    }
    Ok(())
}
