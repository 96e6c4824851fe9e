//! The contract for what the state keeps about guests: each server's latest inspection (one
//! value per server, replaced whole) and the risks operators accepted (appended per server).

use rehost_replication::inspect::{
    Finding, InspectedArch, InspectedBootMode, OsFamily, OsInfo, ServerInspection, Severity,
    Verdict,
};
use rehost_replication::state::{AcceptedRisk, InspectionRecord};
use time::macros::datetime;

use super::*;

pub(super) fn inspection(server: &str, verdict: Verdict) -> ServerInspection {
    ServerInspection {
        server: server.into(),
        verdict,
        boot_mode: Some(InspectedBootMode::Uefi),
        architecture: Some(InspectedArch::X86_64),
        os: Some(OsInfo {
            family: OsFamily::Windows,
            name: "Windows Server 2019 Datacenter".into(),
            version: Some("10.0.17763".into()),
        }),
        findings: vec![Finding {
            code: "no-nvme-driver".into(),
            severity: Severity::Error,
            message: "no AWSNVMe".into(),
            fix: Some("run launch-scripts/prepare/prepare-windows.ps1".into()),
        }],
        disks: Vec::new(),
    }
}

pub async fn an_inspection_is_kept_per_server_and_replaced_whole(f: &dyn Fixture) {
    let s = f.open().await;
    assert_eq!(s.inspection(&key("web")).await.unwrap(), None);
    let first = InspectionRecord {
        fingerprint: "aa".into(),
        inspected_at: datetime!(2025-03-01 10:00:00.123 UTC),
        inspection: inspection("web", Verdict::XenOnly),
    };
    s.store_inspection(&key("web"), &first).await.unwrap();
    // Another handle (another process) reads it back exactly, to the millisecond.
    let t = f.open().await;
    assert_eq!(
        t.inspection(&key("web")).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(t.inspection(&key("db")).await.unwrap(), None, "per server");
    assert_eq!(
        t.inspection(&ServerKey::new("crm", "web")).await.unwrap(),
        None,
        "per application"
    );
    let second = InspectionRecord {
        fingerprint: "bb".into(),
        inspected_at: datetime!(2025-03-01 11:00 UTC),
        inspection: ServerInspection {
            boot_mode: None,
            architecture: None,
            os: None,
            findings: Vec::new(),
            ..inspection("web", Verdict::Unknown)
        },
    };
    t.store_inspection(&key("web"), &second).await.unwrap();
    assert_eq!(s.inspection(&key("web")).await.unwrap(), Some(second));
}

pub async fn accepted_risks_are_appended_per_server_oldest_first(f: &dyn Fixture) {
    let s = f.open().await;
    assert!(s.accepted_risks(&key("web")).await.unwrap().is_empty());
    let risk = |mode: &str, at, finding: &str| AcceptedRisk {
        mode: mode.into(),
        findings: vec![finding.into(), "second finding".into()],
        accepted_at: at,
        caller_arn: "arn:aws:iam::123456789012:user/ops".into(),
    };
    let later = risk("cutover", datetime!(2025-03-02 09:00 UTC), "xen-only on m5");
    let earlier = risk("test", datetime!(2025-03-01 09:00 UTC), "no agent, gated");
    s.record_accepted_risk(&key("web"), &later).await.unwrap();
    s.record_accepted_risk(&key("web"), &earlier).await.unwrap();
    s.record_accepted_risk(&key("db"), &earlier).await.unwrap();
    let t = f.open().await;
    assert_eq!(
        t.accepted_risks(&key("web")).await.unwrap(),
        vec![earlier.clone(), later]
    );
    assert_eq!(t.accepted_risks(&key("db")).await.unwrap(), vec![earlier]);
    assert!(
        t.accepted_risks(&ServerKey::new("crm", "web"))
            .await
            .unwrap()
            .is_empty()
    );
}
