//! `rehost share`: hand the replicated application to other accounts: launch permission on the
//! latest AMIs, create-volume permission on their snapshots, and the portable template.
//!
//! What is shared and whether it can be is decided from AWS, never from the local state alone:
//! the AMI as DescribeImages shows it (its block-device mappings name its snapshots), each
//! snapshot as DescribeSnapshots shows it (Encrypted, KmsKeyId), and each key as KMS describes
//! it (an AWS managed key, the account's default `aws/ebs`, cannot be shared). Everything is
//! checked before the first grant, so a refusal changes nothing; and when a grant fails part
//! way, exactly the permissions this call added are revoked, never one that was there before.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    ImageAttributeName, LaunchPermission, LaunchPermissionModifications, OperationType,
    SnapshotAttributeName,
};
use aws_sdk_kms::types::KeyManagerType;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use rehost_replication::aws::AwsFailure;
use serde::Serialize;

use crate::app::App;
use crate::launch::{AwsClients, LaunchError, aws};
use rehost_replication::AmiRecord;

#[derive(Clone, Debug, Serialize)]
pub struct Shared {
    pub server: String,
    pub ami_id: String,
    /// The AMI's snapshots (its block-device mappings, and those the state recorded for it).
    pub snapshot_ids: Vec<String>,
    /// Customer managed keys its snapshots are encrypted with, as EC2 reports them.
    pub kms_key_ids: Vec<String>,
}

/// Shares each server's latest AMI and its snapshots with `accounts`. Checks everything first
/// (account ids, each server has an AMI that exists in this account, its snapshots exist, none
/// is encrypted with an AWS managed key) and only then grants; a grant that fails revokes what
/// this call granted before returning the error.
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
    let mut keys = KeyVerdicts::default();
    let mut shared = Vec::new();
    for s in app.servers_in_launch_order() {
        let Some(record) = amis.get(&s.id) else {
            problems.push(format!(
                "server {}: no replicated AMI to share; run `rehost replicate` first",
                s.id
            ));
            continue;
        };
        match inspect(clients, &mut keys, &s.id, record).await? {
            Ok(item) => shared.push(item),
            Err(found) => problems.extend(found),
        }
    }
    if !problems.is_empty() {
        return Err(LaunchError::Refused(problems.join("\n")));
    }
    let mut ledger = Vec::new();
    if let Err(failure) = grant_all(clients, &shared, accounts, &mut ledger).await {
        let unrevoked = revoke(clients, &ledger).await;
        return Err(LaunchError::ShareFailed {
            cause: Box::new(failure),
            granted: ledger.len(),
            unrevoked,
        });
    }
    Ok(shared)
}

/// What AWS shows of one server's AMI: the share, or every reason it cannot be shared.
async fn inspect(
    clients: &AwsClients,
    keys: &mut KeyVerdicts,
    server: &str,
    record: &AmiRecord,
) -> Result<Result<Shared, Vec<String>>, LaunchError> {
    let ami = &record.ami_id;
    let images = clients
        .ec2
        .describe_images()
        .owners("self")
        .image_ids(ami)
        .send()
        .await;
    let image = absent_if_not_found("ec2:DescribeImages", images)?.and_then(|out| {
        out.images()
            .iter()
            .find(|i| i.image_id() == Some(ami))
            .cloned()
    });
    let Some(image) = image else {
        return Ok(Err(vec![format!(
            "server {server}: AMI {ami} recorded in the state is not an image of this account \
             (deregistered, or another account's); replicate again"
        )]));
    };
    let mut snapshot_ids: Vec<String> = image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
        .collect();
    for id in &record.snapshot_ids {
        if !snapshot_ids.contains(id) {
            snapshot_ids.push(id.clone());
        }
    }
    let mut problems = Vec::new();
    let mut kms_key_ids = BTreeSet::new();
    for snapshot in &snapshot_ids {
        let described = clients
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .snapshot_ids(snapshot)
            .send()
            .await;
        let found = absent_if_not_found("ec2:DescribeSnapshots", described)?.and_then(|out| {
            out.snapshots()
                .iter()
                .find(|s| s.snapshot_id() == Some(snapshot))
                .cloned()
        });
        let Some(found) = found else {
            problems.push(format!(
                "server {server}: snapshot {snapshot} of AMI {ami} no longer exists in this \
                 account; replicate again"
            ));
            continue;
        };
        if !found.encrypted().unwrap_or(false) {
            continue;
        }
        let Some(key) = found.kms_key_id() else {
            problems.push(format!(
                "server {server}: snapshot {snapshot} of AMI {ami} is encrypted but EC2 names \
                 no key; it cannot be shared"
            ));
            continue;
        };
        match keys.verdict(clients, key).await {
            KeyVerdict::Customer => {
                kms_key_ids.insert(key.to_string());
            }
            KeyVerdict::AwsManaged => problems.push(format!(
                "server {server}: AMI {ami} has snapshot {snapshot} encrypted with the AWS \
                 managed key {key} (the account's default aws/ebs key), which cannot be shared; \
                 set replication.kmsKeyId to a customer managed key and replicate again"
            )),
            KeyVerdict::Unknown(why) => problems.push(format!(
                "server {server}: snapshot {snapshot} of AMI {ami} is encrypted with KMS key \
                 {key}, which cannot be described ({why}); it is not shared without knowing \
                 whether the key can be"
            )),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(Shared {
        server: server.to_string(),
        ami_id: ami.clone(),
        snapshot_ids,
        kms_key_ids: kms_key_ids.into_iter().collect(),
    }))
}

/// An EC2 answer, where "not found" (or an id EC2 cannot read) means the resource is absent.
fn absent_if_not_found<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, LaunchError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            let failure = AwsFailure::from_sdk(operation, &e);
            if failure.is_not_found() || failure.code.contains("Malformed") {
                Ok(None)
            } else {
                Err(LaunchError::Aws(failure))
            }
        }
    }
}

/// Whether a KMS key can be shared with another account.
#[derive(Clone, Debug)]
enum KeyVerdict {
    Customer,
    AwsManaged,
    Unknown(String),
}

/// Each key described once per share.
#[derive(Default)]
struct KeyVerdicts(BTreeMap<String, KeyVerdict>);

impl KeyVerdicts {
    async fn verdict(&mut self, clients: &AwsClients, key: &str) -> KeyVerdict {
        if let Some(v) = self.0.get(key) {
            return v.clone();
        }
        let v = describe_key(clients, key).await;
        self.0.insert(key.to_string(), v.clone());
        v
    }
}

/// KMS's word on a key: KeyManager AWS (an AWS managed key such as `aws/ebs`) or an alias in
/// the reserved `alias/aws/` namespace, which only AWS managed keys have, means it cannot be
/// shared. (The emulator reports every key as CUSTOMER, but names the default key
/// `alias/aws/ebs` as AWS does.)
async fn describe_key(clients: &AwsClients, key: &str) -> KeyVerdict {
    let described = match clients.kms.describe_key().key_id(key).send().await {
        Ok(out) => out,
        Err(e) => {
            return KeyVerdict::Unknown(AwsFailure::from_sdk("kms:DescribeKey", &e).to_string());
        }
    };
    let Some(meta) = described.key_metadata() else {
        return KeyVerdict::Unknown("kms:DescribeKey returned no key metadata".into());
    };
    if meta.key_manager() == Some(&KeyManagerType::Aws) {
        return KeyVerdict::AwsManaged;
    }
    match clients
        .kms
        .list_aliases()
        .key_id(meta.key_id())
        .send()
        .await
    {
        Ok(out)
            if out
                .aliases()
                .iter()
                .any(|a| a.alias_name().is_some_and(|n| n.starts_with("alias/aws/"))) =>
        {
            KeyVerdict::AwsManaged
        }
        Ok(_) => KeyVerdict::Customer,
        Err(e) => KeyVerdict::Unknown(AwsFailure::from_sdk("kms:ListAliases", &e).to_string()),
    }
}

/// A permission this call added (or was adding when it failed): what a failure revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Grant {
    Launch {
        ami_id: String,
        accounts: Vec<String>,
    },
    CreateVolume {
        snapshot_id: String,
        accounts: Vec<String>,
    },
}

/// Grants every AMI and snapshot to the accounts that do not hold the permission yet, noting
/// each grant in `ledger` before it is sent (a call whose answer is lost may still have acted).
async fn grant_all(
    clients: &AwsClients,
    shared: &[Shared],
    accounts: &[String],
    ledger: &mut Vec<Grant>,
) -> Result<(), LaunchError> {
    let missing = |held: BTreeSet<String>| -> Vec<String> {
        accounts
            .iter()
            .filter(|a| !held.contains(*a))
            .cloned()
            .collect()
    };
    for item in shared {
        let held = clients
            .ec2
            .describe_image_attribute()
            .image_id(&item.ami_id)
            .attribute(ImageAttributeName::LaunchPermission)
            .send()
            .await
            .map_err(aws("ec2:DescribeImageAttribute"))?
            .launch_permissions()
            .iter()
            .filter_map(|p| p.user_id().map(str::to_string))
            .collect();
        let add = missing(held);
        if !add.is_empty() {
            ledger.push(Grant::Launch {
                ami_id: item.ami_id.clone(),
                accounts: add.clone(),
            });
            launch_permission(clients, &item.ami_id, &add, true).await?;
        }
        for snapshot in &item.snapshot_ids {
            let held = clients
                .ec2
                .describe_snapshot_attribute()
                .snapshot_id(snapshot)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .map_err(aws("ec2:DescribeSnapshotAttribute"))?
                .create_volume_permissions()
                .iter()
                .filter_map(|p| p.user_id().map(str::to_string))
                .collect();
            let add = missing(held);
            if !add.is_empty() {
                ledger.push(Grant::CreateVolume {
                    snapshot_id: snapshot.clone(),
                    accounts: add.clone(),
                });
                volume_permission(clients, snapshot, &add, true).await?;
            }
        }
    }
    Ok(())
}

/// Revokes the ledger's grants, newest first; returns those that could not be revoked.
async fn revoke(clients: &AwsClients, ledger: &[Grant]) -> Vec<String> {
    let mut unrevoked = Vec::new();
    for grant in ledger.iter().rev() {
        let (what, result) = match grant {
            Grant::Launch { ami_id, accounts } => (
                format!("launch permission on {ami_id} for {}", accounts.join(", ")),
                launch_permission(clients, ami_id, accounts, false).await,
            ),
            Grant::CreateVolume {
                snapshot_id,
                accounts,
            } => (
                format!(
                    "create-volume permission on {snapshot_id} for {}",
                    accounts.join(", ")
                ),
                volume_permission(clients, snapshot_id, accounts, false).await,
            ),
        };
        if let Err(e) = result {
            unrevoked.push(format!("{what} ({e})"));
        }
    }
    unrevoked
}

async fn launch_permission(
    clients: &AwsClients,
    ami_id: &str,
    accounts: &[String],
    add: bool,
) -> Result<(), LaunchError> {
    let list: Vec<LaunchPermission> = accounts
        .iter()
        .map(|a| LaunchPermission::builder().user_id(a).build())
        .collect();
    let change = LaunchPermissionModifications::builder();
    let change = if add {
        change.set_add(Some(list))
    } else {
        change.set_remove(Some(list))
    };
    clients
        .ec2
        .modify_image_attribute()
        .image_id(ami_id)
        .launch_permission(change.build())
        .send()
        .await
        .map_err(aws("ec2:ModifyImageAttribute"))?;
    Ok(())
}

async fn volume_permission(
    clients: &AwsClients,
    snapshot_id: &str,
    accounts: &[String],
    add: bool,
) -> Result<(), LaunchError> {
    clients
        .ec2
        .modify_snapshot_attribute()
        .snapshot_id(snapshot_id)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .operation_type(if add {
            OperationType::Add
        } else {
            OperationType::Remove
        })
        .set_user_ids(Some(accounts.to_vec()))
        .send()
        .await
        .map_err(aws("ec2:ModifySnapshotAttribute"))?;
    Ok(())
}

/// What an encrypted share still needs that rehost does not do on its own: the key belongs to
/// its owners' policy.
pub fn kms_note(shared: &[Shared], accounts: &[String]) -> Option<String> {
    let keys: BTreeSet<&str> = shared
        .iter()
        .flat_map(|s| s.kms_key_ids.iter().map(String::as_str))
        .collect();
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "the AMIs are encrypted with KMS key(s) {}: the receiving account(s) {} also need kms:DescribeKey, \
         kms:CreateGrant, kms:Decrypt, kms:ReEncrypt* and kms:GenerateDataKey* on them (key policy or grant), \
         and should launch with their own key (copy the AMI or set KmsKeyId on the volumes)",
        keys.into_iter().collect::<Vec<_>>().join(", "),
        accounts.join(", ")
    ))
}
