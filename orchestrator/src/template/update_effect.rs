//! How an update of each `AWS::EC2::Instance` property lands on the running instance, from
//! CloudFormation's resource reference ("Update requires"): the one table `plan`, the cutover
//! `--yes` check and the gate generations read.

use serde::Serialize;

/// How changing a property lands on the running resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UpdateEffect {
    #[serde(rename = "replacement")]
    Replacement,
    #[serde(rename = "replacement (conditional)")]
    ConditionalReplacement,
    #[serde(rename = "some interruption")]
    SomeInterruption,
    #[serde(rename = "no interruption")]
    NoInterruption,
    #[serde(rename = "unknown")]
    Unknown,
}

impl UpdateEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateEffect::Replacement => "replacement",
            UpdateEffect::ConditionalReplacement => "replacement (conditional)",
            UpdateEffect::SomeInterruption => "some interruption",
            UpdateEffect::NoInterruption => "no interruption",
            UpdateEffect::Unknown => "unknown",
        }
    }
}

/// How an update of an `AWS::EC2::Instance` property lands, from the CloudFormation resource
/// reference; used when the change set gives no detail.
pub fn instance_update_effect(property: &str) -> UpdateEffect {
    match property {
        "AvailabilityZone"
        | "ImageId"
        | "KeyName"
        | "NetworkInterfaces"
        | "PrivateIpAddress"
        | "SubnetId"
        | "LaunchTemplate"
        | "CpuOptions"
        | "PlacementGroupName"
        | "HibernationOptions"
        | "EnclaveOptions"
        | "LicenseSpecifications"
        | "Ipv6AddressCount"
        | "Ipv6Addresses"
        | "HostId"
        | "SecurityGroups" => UpdateEffect::Replacement,
        "InstanceType" | "UserData" | "EbsOptimized" | "KernelId" | "RamdiskId" | "Tenancy" => {
            UpdateEffect::SomeInterruption
        }
        _ => UpdateEffect::NoInterruption,
    }
}
