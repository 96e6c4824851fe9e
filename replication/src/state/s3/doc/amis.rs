//! A server object's AMIs: the latest one, those retention may remove, deregistration.

use super::{AmiDoc, Corrupt, ServerDoc};
use crate::clock::from_unix_ms;
use crate::state::{AmiRecord, RunStatus};

pub(super) const AMI_AVAILABLE: &str = "available";
pub(super) const AMI_DEREGISTERED: &str = "deregistered";

impl AmiDoc {
    pub(super) fn record(&self) -> AmiRecord {
        AmiRecord {
            ami_id: self.ami_id.clone(),
            name: self.name.clone(),
            run_id: self.run_id.clone(),
            created_at: from_unix_ms(self.created_at),
            snapshot_ids: self.snapshot_ids.clone(),
            encrypted: self.encrypted,
            kms_key_id: self.kms_key_id.clone(),
        }
    }

    pub(super) fn available(&self) -> Result<bool, Corrupt> {
        match self.status.as_str() {
            AMI_AVAILABLE => Ok(true),
            AMI_DEREGISTERED => Ok(false),
            other => Err(Corrupt {
                table: "amis",
                id: self.ami_id.clone(),
                what: format!("unknown status '{other}'"),
            }),
        }
    }
}

impl ServerDoc {
    /// The latest available AMI of a completed run (by creation time, then name).
    pub fn latest_ami(&self) -> Result<Option<AmiRecord>, Corrupt> {
        let mut best: Option<&AmiDoc> = None;
        for a in &self.amis {
            if !a.available()? {
                continue;
            }
            let completed = match self.runs.iter().find(|r| r.run_id == a.run_id) {
                Some(r) => r.status()? == RunStatus::Completed,
                None => false,
            };
            if completed && best.is_none_or(|b| (b.created_at, &b.name) <= (a.created_at, &a.name))
            {
                best = Some(a);
            }
        }
        Ok(best.map(AmiDoc::record))
    }

    /// The AMIs not marked deregistered, oldest first (creation time, then name): all that
    /// retention may ever remove.
    pub fn recorded_amis(&self) -> Result<Vec<AmiRecord>, Corrupt> {
        let mut kept = Vec::new();
        for a in &self.amis {
            if a.available()? {
                kept.push(a);
            }
        }
        kept.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(kept.into_iter().map(AmiDoc::record).collect())
    }

    pub fn mark_ami_deregistered(&mut self, ami_id: &str) -> bool {
        match self.amis.iter_mut().find(|a| a.ami_id == ami_id) {
            Some(a) if a.status != AMI_DEREGISTERED => {
                a.status = AMI_DEREGISTERED.into();
                true
            }
            _ => false,
        }
    }
}
