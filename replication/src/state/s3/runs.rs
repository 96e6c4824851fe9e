//! Runs and their AMIs, kept in each server's object.

use super::*;

pub(super) async fn begin_run(
    store: &S3Store,
    server: &ServerKey,
    group: &str,
    now: OffsetDateTime,
) -> Result<(RunRecord, bool), StateError> {
    let (run_id, resumed) = store
        .update(server, |doc| Ok((doc.begin_run(group, now)?, true)))
        .await?;
    let doc = store.cached(server).map(|(_, d)| d).unwrap_or_default();
    let run = match doc.run(&run_id).map_err(|c| store.corrupt(server, c))? {
        Some(run) => run,
        None => store
            .read_with(server, |doc| doc.run(&run_id))
            .await?
            .ok_or_else(|| StateError::Corrupt {
                location: store.location(),
                table: "runs",
                id: run_id.clone(),
                what: "vanished right after it was recorded".into(),
            })?,
    };
    Ok((run, resumed))
}

pub(super) async fn set_phase(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    phase: RunPhase,
) -> Result<(), StateError> {
    store
        .update(server, |doc| changed(doc.set_phase(run_id, phase)))
        .await
}

pub(super) async fn ami_name_for(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    proposed: &str,
) -> Result<String, StateError> {
    let name = store
        .update(server, |doc| {
            Ok(match doc.ami_name_for(run_id, proposed) {
                Some((name, changed)) => (Some(name), changed),
                None => (None, false),
            })
        })
        .await?;
    name.ok_or_else(|| StateError::Corrupt {
        location: store.location(),
        table: "runs",
        id: run_id.to_string(),
        what: format!("no such run of {server} to name its AMI"),
    })
}

pub(super) async fn fail_run(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    error: &str,
    timings: &BTreeMap<String, f64>,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    store
        .update(server, |doc| {
            changed(doc.fail_run(run_id, error, timings, now))
        })
        .await
}

pub(super) async fn complete_run(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    ami: &AmiRecord,
    timings: &BTreeMap<String, f64>,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    store
        .update(server, |doc| {
            changed(doc.complete_run(run_id, ami, timings, now))
        })
        .await
}

pub(super) async fn run(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
) -> Result<Option<RunRecord>, StateError> {
    store.read_with(server, |doc| doc.run(run_id)).await
}

pub(super) async fn server_history(
    store: &S3Store,
    server: &ServerKey,
    limit: usize,
) -> Result<Vec<RunRecord>, StateError> {
    store.read_with(server, |doc| doc.history(limit)).await
}

pub(super) async fn last_times(
    store: &S3Store,
    server: &ServerKey,
) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
    store.read_with(server, |doc| doc.last_times()).await
}

pub(super) async fn latest_amis(
    store: &S3Store,
    app: &str,
) -> Result<BTreeMap<String, AmiRecord>, StateError> {
    let keys = store
        .server_objects(app)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut out = BTreeMap::new();
    for doc in store.read_many(keys).await? {
        let key = ServerKey::new(&doc.app, &doc.server);
        if let Some(ami) = doc.latest_ami().map_err(|c| store.corrupt(&key, c))? {
            out.insert(doc.server.clone(), ami);
        }
    }
    Ok(out)
}

pub(super) async fn recorded_amis(
    store: &S3Store,
    server: &ServerKey,
) -> Result<Vec<AmiRecord>, StateError> {
    store.read_with(server, |doc| doc.recorded_amis()).await
}

pub(super) async fn mark_ami_deregistered(
    store: &S3Store,
    server: &ServerKey,
    ami_id: &str,
) -> Result<(), StateError> {
    store
        .update(server, |doc| changed(doc.mark_ami_deregistered(ami_id)))
        .await
}

/// The newest run's status and the last times from one read of the server's object.
pub(super) async fn due_facts(store: &S3Store, server: &ServerKey) -> Result<DueFacts, StateError> {
    store
        .read_with(server, |doc| {
            let newest = doc.history(1)?.first().map(|r| r.status);
            let (success, attempt) = doc.last_times()?;
            Ok(DueFacts {
                newest,
                success,
                attempt,
            })
        })
        .await
}
