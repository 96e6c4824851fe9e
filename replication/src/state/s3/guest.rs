//! What the state on S3 keeps about guests, one object per server each, beside (not inside)
//! the server's own object so listing servers is unchanged:
//! - `apps/<app>/inspections/<server>.json`: the latest inspection, replaced whole;
//! - `apps/<app>/risks/<server>.json`: the accepted risks, appended.
//!
//! Listing these per application gives the servers inspected but never replicated, which a
//! whole-state migration must find too: [`StateInventory`] for the S3 store is here.
//!
//! Every write is conditional (`If-Match` on the ETag read, `If-None-Match: *` for a new
//! object); a lost race re-reads and re-applies. An appended risk carries an id, so a write whose
//! answer was lost (the SDK retried one that had landed) is not appended twice.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::objects::{Objects, Put, layout};
use super::{JSON, S3Store, UPDATE_ATTEMPTS, backoff, new_id};
use crate::clock::{from_unix_ms, unix_ms};
use crate::inspect::ServerInspection;
use crate::state::{
    AcceptedRisk, InspectionRecord, Inventory, ServerKey, StateError, StateInventory,
};

/// The object format this rehost reads and writes.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct InspectionDoc {
    format: u32,
    fingerprint: String,
    /// Unix milliseconds.
    inspected_at: i64,
    inspection: ServerInspection,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RisksDoc {
    format: u32,
    risks: Vec<RiskEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RiskEntry {
    id: String,
    mode: String,
    findings: Vec<String>,
    /// Unix milliseconds.
    accepted_at: i64,
    caller_arn: String,
}

fn read<T: serde::de::DeserializeOwned>(
    objects: &Objects,
    rel: &str,
    table: &'static str,
    body: &[u8],
    format: impl Fn(&T) -> u32,
) -> Result<T, StateError> {
    let corrupt = |what: String| StateError::Corrupt {
        location: objects.location.clone(),
        table,
        id: objects.url(rel),
        what,
    };
    let doc: T = serde_json::from_slice(body).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    if format(&doc) > FORMAT {
        return Err(corrupt(format!(
            "format {} was written by a newer rehost (this one reads {FORMAT}): upgrade rehost",
            format(&doc)
        )));
    }
    Ok(doc)
}

pub(super) async fn inspection(
    objects: &Objects,
    server: &ServerKey,
) -> Result<Option<InspectionRecord>, StateError> {
    let rel = layout::inspection(server);
    let Some(found) = objects.get(&rel).await? else {
        return Ok(None);
    };
    let doc: InspectionDoc = read(
        objects,
        &rel,
        "inspections",
        &found.body,
        |d: &InspectionDoc| d.format,
    )?;
    Ok(Some(InspectionRecord {
        fingerprint: doc.fingerprint,
        inspected_at: from_unix_ms(doc.inspected_at),
        inspection: doc.inspection,
    }))
}

pub(super) async fn store_inspection(
    objects: &Objects,
    server: &ServerKey,
    record: &InspectionRecord,
) -> Result<(), StateError> {
    let rel = layout::inspection(server);
    let body = serde_json::to_vec(&InspectionDoc {
        format: FORMAT,
        fingerprint: record.fingerprint.clone(),
        inspected_at: unix_ms(record.inspected_at),
        inspection: record.inspection.clone(),
    })
    .unwrap_or_default();
    for attempt in 0..UPDATE_ATTEMPTS {
        let put = match objects.get(&rel).await? {
            Some(found) => {
                objects
                    .replace(&rel, body.clone(), JSON, &found.etag)
                    .await?
            }
            None => objects.create(&rel, body.clone(), JSON).await?,
        };
        match put {
            Put::Written(_) => return Ok(()),
            Put::Conflict => tokio::time::sleep(backoff(attempt)).await,
        }
    }
    Err(contention(objects, &rel))
}

pub(super) async fn accepted_risks(
    objects: &Objects,
    server: &ServerKey,
) -> Result<Vec<AcceptedRisk>, StateError> {
    let rel = layout::risks(server);
    let Some(found) = objects.get(&rel).await? else {
        return Ok(Vec::new());
    };
    let doc: RisksDoc = read(
        objects,
        &rel,
        "accepted_risks",
        &found.body,
        |d: &RisksDoc| d.format,
    )?;
    let mut risks: Vec<AcceptedRisk> = doc
        .risks
        .into_iter()
        .map(|r| AcceptedRisk {
            mode: r.mode,
            findings: r.findings,
            accepted_at: from_unix_ms(r.accepted_at),
            caller_arn: r.caller_arn,
        })
        .collect();
    // Oldest first; appended in order, equal times keep it.
    risks.sort_by_key(|r| r.accepted_at);
    Ok(risks)
}

pub(super) async fn record_accepted_risk(
    objects: &Objects,
    server: &ServerKey,
    risk: &AcceptedRisk,
) -> Result<(), StateError> {
    let rel = layout::risks(server);
    let entry = RiskEntry {
        id: new_id(),
        mode: risk.mode.clone(),
        findings: risk.findings.clone(),
        accepted_at: unix_ms(risk.accepted_at),
        caller_arn: risk.caller_arn.clone(),
    };
    for attempt in 0..UPDATE_ATTEMPTS {
        let found = objects.get(&rel).await?;
        let mut doc = match &found {
            Some(f) => read(objects, &rel, "accepted_risks", &f.body, |d: &RisksDoc| {
                d.format
            })?,
            None => RisksDoc::default(),
        };
        if doc.risks.iter().any(|r| r.id == entry.id) {
            return Ok(()); // an earlier attempt landed; its answer was lost
        }
        doc.format = FORMAT;
        doc.risks.push(entry.clone());
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let put = match &found {
            Some(f) => objects.replace(&rel, body, JSON, &f.etag).await?,
            None => objects.create(&rel, body, JSON).await?,
        };
        match put {
            Put::Written(_) => return Ok(()),
            Put::Conflict => tokio::time::sleep(backoff(attempt)).await,
        }
    }
    Err(contention(objects, &rel))
}

#[async_trait]
impl StateInventory for S3Store {
    /// Every application directory (whatever it holds: servers, binding, launches, guests),
    /// then each application's inspection and risk objects: one LIST per application and kind.
    async fn inventory(&self) -> Result<Inventory, StateError> {
        let objects = self.objects();
        let mut out = Inventory::default();
        for dir in objects.list(&layout::apps(), true).await?.prefixes {
            let Some(app) = dir
                .strip_prefix(&layout::apps())
                .and_then(|a| a.strip_suffix('/'))
                .and_then(layout::decode)
            else {
                continue;
            };
            for under in [layout::inspections(&app), layout::all_risks(&app)] {
                for rel in objects.list(&under, true).await?.keys {
                    let server = rel
                        .strip_prefix(&under)
                        .and_then(|name| name.strip_suffix(".json"))
                        .and_then(layout::decode);
                    if let Some(server) = server {
                        out.guests.insert(ServerKey::new(&app, server));
                    }
                }
            }
            out.apps.insert(app);
        }
        Ok(out)
    }
}

fn contention(objects: &Objects, rel: &str) -> StateError {
    StateError::Contention {
        location: objects.location.clone(),
        key: objects.url(rel),
        attempts: UPDATE_ATTEMPTS,
    }
}
