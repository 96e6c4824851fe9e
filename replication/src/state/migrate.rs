//! Moving a whole state to another place (`rehost state migrate --from PATH --to s3://...`):
//! every server's records, manifests and accepted blocks, through the trait, so any backend
//! moves to any other, with each application's account binding and launch history. Idempotent: a server already moved (exactly the same records) is left
//! as it is, so an interrupted migration is finished by running it again. Nothing is written
//! when the destination holds other records of an application being moved.

use std::collections::BTreeSet;

use super::{ImportOutcome, ServerKey, StateError, StateStore};

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// Servers written to the destination.
    pub moved: Vec<ServerKey>,
    /// Servers the destination already held exactly.
    pub already_there: Vec<ServerKey>,
}

/// Moves every server of `from` to `to`. Both applications' locks are held meanwhile (no
/// replication changes either side); each server is read whole, one at a time, so memory
/// stays at one server's records.
pub async fn migrate(from: &dyn StateStore, to: &dyn StateStore) -> Result<Migration, StateError> {
    if from.location() == to.location() {
        return Err(StateError::BadLocation {
            text: to.location(),
            why: "the destination is the source".into(),
        });
    }
    let servers = from.servers().await?;
    let apps: BTreeSet<String> = servers.iter().map(|k| k.app.clone()).collect();
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
    // The launch history moves whole (a record written again is replaced by the same).
    for app in &apps {
        for launch in from.launches(app, usize::MAX).await? {
            to.record_launch(app, &launch).await?;
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
