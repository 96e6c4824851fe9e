//! `rehost share`: hand the replicated application to other accounts: launch permission on the
//! latest AMIs, create-volume permission on their snapshots, and the portable template.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications, OperationType};
use serde::Serialize;

use crate::app::App;
use crate::launch::{AwsClients, LaunchError, aws};
use rehost_replication::AmiRecord;

#[derive(Clone, Debug, Serialize)]
pub struct Shared {
    pub server: String,
    pub ami_id: String,
    pub snapshot_ids: Vec<String>,
    pub kms_key_id: Option<String>,
}

/// Checks everything first (each server has an AMI, no AMI uses the account's default EBS key,
/// which cannot be shared) and only then grants, so a refusal changes nothing.
pub async fn share(
    clients: &AwsClients,
    app: &App,
    amis: &BTreeMap<String, AmiRecord>,
    accounts: &[String],
) -> Result<Vec<Shared>, LaunchError> {
    let mut problems = Vec::new();
    let own = clients.account_id().await?;
    for account in accounts {
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            problems.push(format!(
                "--account {account}: an AWS account id is 12 digits"
            ));
        } else if *account == own {
            problems.push(format!("--account {account}: that is this account"));
        }
    }
    let mut shared = Vec::new();
    for s in app.servers_in_launch_order() {
        match amis.get(&s.id) {
            None => problems.push(format!("server {}: no replicated AMI to share; run `rehost replicate` first", s.id)),
            Some(ami) if ami.encrypted && ami.kms_key_id.is_none() => problems.push(format!(
                "server {}: AMI {} is encrypted with the account's default EBS key, which cannot be shared; \
                 set replication.kmsKeyId to a customer managed key and replicate again",
                s.id, ami.ami_id
            )),
            Some(ami) => shared.push(Shared {
                server: s.id.clone(),
                ami_id: ami.ami_id.clone(),
                snapshot_ids: ami.snapshot_ids.clone(),
                kms_key_id: ami.kms_key_id.clone().filter(|_| ami.encrypted),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(LaunchError::Refused(problems.join("\n")));
    }
    for item in &shared {
        let add: Vec<LaunchPermission> = accounts
            .iter()
            .map(|a| LaunchPermission::builder().user_id(a).build())
            .collect();
        clients
            .ec2
            .modify_image_attribute()
            .image_id(&item.ami_id)
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .set_add(Some(add))
                    .build(),
            )
            .send()
            .await
            .map_err(aws("ec2:ModifyImageAttribute"))?;
        for snapshot in &item.snapshot_ids {
            clients
                .ec2
                .modify_snapshot_attribute()
                .snapshot_id(snapshot)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .operation_type(OperationType::Add)
                .set_user_ids(Some(accounts.to_vec()))
                .send()
                .await
                .map_err(aws("ec2:ModifySnapshotAttribute"))?;
        }
    }
    Ok(shared)
}

/// What an encrypted share still needs that rehost does not do on its own: the key belongs to
/// its owners' policy.
pub fn kms_note(shared: &[Shared], accounts: &[String]) -> Option<String> {
    let mut keys: Vec<&str> = shared
        .iter()
        .filter_map(|s| s.kms_key_id.as_deref())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "the AMIs are encrypted with KMS key(s) {}: the receiving account(s) {} also need kms:DescribeKey, \
         kms:CreateGrant, kms:Decrypt, kms:ReEncrypt* and kms:GenerateDataKey* on them (key policy or grant), \
         and should launch with their own key (copy the AMI or set KmsKeyId on the volumes)",
        keys.join(", "),
        accounts.join(", ")
    ))
}
