//! The launch history on S3: one object per launch (`apps/<app>/launches/<launch id>.json`),
//! created with `If-None-Match: *` when the launch starts and replaced with `If-Match` when it
//! ends. Launch ids start with their UTC start time, so the keys list in start order and the
//! newest `limit` are the last `limit` keys.

use serde::{Deserialize, Serialize};

use super::JSON;
use super::objects::{Objects, Put, layout};
use crate::state::{LaunchRecord, StateError};

/// The object format this rehost reads and writes.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct LaunchDoc {
    format: u32,
    launch: LaunchRecord,
}

fn rel(app: &str, launch_id: &str) -> String {
    format!("{}{}.json", prefix(app), layout::encode(launch_id))
}

fn prefix(app: &str) -> String {
    format!("apps/{}/launches/", layout::encode(app))
}

/// Writes the launch's record whole: created, or replaced as read (one conditional write; a
/// concurrent writer of the same launch makes it read and try once more).
pub(super) async fn record(
    objects: &Objects,
    app: &str,
    launch: &LaunchRecord,
) -> Result<(), StateError> {
    let key = rel(app, &launch.launch_id);
    let body = serde_json::to_vec(&LaunchDoc {
        format: FORMAT,
        launch: launch.clone(),
    })
    .unwrap_or_default();
    for _ in 0..2 {
        let put = match objects.get(&key).await? {
            None => objects.create(&key, body.clone(), JSON).await?,
            Some(found) => {
                objects
                    .replace(&key, body.clone(), JSON, &found.etag)
                    .await?
            }
        };
        if let Put::Written(_) = put {
            return Ok(());
        }
    }
    Err(StateError::Corrupt {
        location: objects.location.clone(),
        table: "launches",
        id: objects.url(&key),
        what: "changed by another writer while it was being recorded".into(),
    })
}

/// The application's launches, newest first, at most `limit`.
pub(super) async fn list(
    objects: &Objects,
    app: &str,
    limit: usize,
) -> Result<Vec<LaunchRecord>, StateError> {
    let listing = objects.list(&prefix(app), true).await?;
    let mut out = Vec::new();
    for key in listing.keys.iter().rev().take(limit) {
        let Some(found) = objects.get(key).await? else {
            continue;
        };
        let corrupt = |what: String| StateError::Corrupt {
            location: objects.location.clone(),
            table: "launches",
            id: objects.url(key),
            what,
        };
        let doc: LaunchDoc = serde_json::from_slice(&found.body)
            .map_err(|e| corrupt(format!("not a launch record: {e}")))?;
        if doc.format > FORMAT {
            return Err(corrupt(format!(
                "format {} was written by a newer rehost (this one reads {FORMAT}): upgrade rehost",
                doc.format
            )));
        }
        out.push(doc.launch);
    }
    out.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.launch_id.cmp(&a.launch_id))
    });
    Ok(out)
}
