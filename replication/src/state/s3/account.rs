//! The AWS account and region an application's state on S3 is bound to: one object per
//! application (`apps/<app>/account.json`), created once with `If-None-Match: *`, so when two
//! rehosts bind at once the first write wins and the other reads it back. Never updated.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::JSON;
use super::objects::{Objects, Put, layout};
use crate::clock::unix_ms;
use crate::state::{AccountBinding, StateError};

/// The object format this rehost reads and writes.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct BindingDoc {
    format: u32,
    account: String,
    region: String,
    /// Unix milliseconds.
    bound_at: i64,
}

/// The application's recorded binding, if any.
pub(super) async fn binding(
    objects: &Objects,
    app: &str,
) -> Result<Option<AccountBinding>, StateError> {
    let rel = layout::account(app);
    let Some(found) = objects.get(&rel).await? else {
        return Ok(None);
    };
    let corrupt = |what: String| StateError::Corrupt {
        location: objects.location.clone(),
        table: "account_bindings",
        id: objects.url(&rel),
        what,
    };
    let doc: BindingDoc = serde_json::from_slice(&found.body)
        .map_err(|e| corrupt(format!("not an account binding: {e}")))?;
    if doc.format > FORMAT {
        return Err(corrupt(format!(
            "format {} was written by a newer rehost (this one reads {FORMAT}): upgrade rehost",
            doc.format
        )));
    }
    Ok(Some(AccountBinding {
        account: doc.account,
        region: doc.region,
    }))
}

/// Records the binding unless one exists (the first wins); returns the recorded one.
pub(super) async fn bind(
    objects: &Objects,
    app: &str,
    proposed: &AccountBinding,
    now: OffsetDateTime,
) -> Result<AccountBinding, StateError> {
    if let Some(recorded) = binding(objects, app).await? {
        return Ok(recorded);
    }
    let rel = layout::account(app);
    let body = serde_json::to_vec(&BindingDoc {
        format: FORMAT,
        account: proposed.account.clone(),
        region: proposed.region.clone(),
        bound_at: unix_ms(now),
    })
    .unwrap_or_default();
    match objects.create(&rel, body, JSON).await? {
        Put::Written(_) => Ok(proposed.clone()),
        // Another rehost bound it first (or this write landed and its answer was lost):
        // whatever is there now is the binding.
        Put::Conflict => binding(objects, app)
            .await?
            .ok_or_else(|| StateError::Corrupt {
                location: objects.location.clone(),
                table: "account_bindings",
                id: objects.url(&rel),
                what: "the binding another writer created cannot be read back".into(),
            }),
    }
}
