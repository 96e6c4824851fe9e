//! A server object as a whole: its records out (`export_server`) and in (`import_server`).

use super::amis::{AMI_AVAILABLE, AMI_DEREGISTERED};
use super::{AmiDoc, Corrupt, RunDoc, ServerDoc, SnapDoc};
use crate::clock::unix_ms;
use crate::state::{AmiEntry, ServerDump, ServerKey};

impl ServerDoc {
    /// The records, as `export_server` gives them (manifests and accepted blocks are the
    /// store's to add).
    pub fn dump(&self) -> Result<ServerDump, Corrupt> {
        let mut dump = ServerDump::new(ServerKey::new(&self.app, &self.server));
        dump.runs = self
            .runs
            .iter()
            .map(|r| self.run_record(r))
            .collect::<Result<_, _>>()?;
        for a in &self.amis {
            dump.amis.push(AmiEntry {
                ami: a.record(),
                deregistered: !a.available()?,
            });
        }
        Ok(dump)
    }

    /// The object of a dump's records; `manifest_of` names each snapshot's manifest object.
    pub fn from_dump(dump: &ServerDump, manifest_of: impl Fn(&str) -> Option<String>) -> ServerDoc {
        let mut doc = ServerDoc::new(&dump.key);
        for run in &dump.runs {
            doc.runs.push(RunDoc {
                run_id: run.run_id.clone(),
                group: run.group.clone(),
                status: run.status.as_str().into(),
                phase: run.phase.as_str().into(),
                started_at: unix_ms(run.started_at),
                attempted_at: unix_ms(run.attempted_at),
                finished_at: run.finished_at.map(unix_ms),
                attempts: run.attempts,
                ami_id: run.ami_id.clone(),
                ami_name: run.ami_name.clone(),
                error: run.error.clone(),
                timings: run.timings.clone(),
            });
            for s in &run.snapshots {
                doc.snapshots.push(SnapDoc {
                    snapshot_id: s.snapshot_id.clone(),
                    run_id: s.run_id.clone(),
                    disk: s.disk.clone(),
                    parent_snapshot_id: s.parent_snapshot_id.clone(),
                    status: s.status.as_str().into(),
                    volume_size_gib: s.volume_size_gib,
                    block_count: s.block_count,
                    encrypted: s.encrypted,
                    kms_key_arn: s.kms_key_arn.clone(),
                    started_at: unix_ms(s.started_at),
                    completed_at: s.completed_at.map(unix_ms),
                    blocks_total: s.counts.blocks_total,
                    blocks_scanned: s.counts.blocks_scanned,
                    blocks_uploaded: s.counts.blocks_uploaded,
                    bytes_uploaded: s.counts.bytes_uploaded,
                    blocks_changed: s.counts.blocks_changed,
                    seconds: s.counts.seconds,
                    manifest: manifest_of(&s.snapshot_id),
                });
            }
        }
        for entry in &dump.amis {
            let a = &entry.ami;
            doc.amis.push(AmiDoc {
                ami_id: a.ami_id.clone(),
                run_id: a.run_id.clone(),
                name: a.name.clone(),
                created_at: unix_ms(a.created_at),
                snapshot_ids: a.snapshot_ids.clone(),
                encrypted: a.encrypted,
                kms_key_id: a.kms_key_id.clone(),
                status: if entry.deregistered {
                    AMI_DEREGISTERED
                } else {
                    AMI_AVAILABLE
                }
                .into(),
            });
        }
        doc
    }
}
