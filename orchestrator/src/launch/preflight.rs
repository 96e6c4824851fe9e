//! Pre-flight: everything a launch needs must exist before CloudFormation is asked, and every
//! problem is reported at once (exit code 2) instead of one failed stack at a time. That
//! includes what the guest inspections say (`guest::check`), judged against each instance
//! type's hypervisor.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{Filter, ImageState, LocationType};

use crate::app::{App, Mode};
use crate::launch::guest::{self, GuestCheck, GuestPolicy, Hypervisor};
use crate::launch::{AwsClients, LaunchError, aws};

/// What the launch will use, per server: the AMI plus the mode's launch settings.
pub struct Preflight<'a> {
    pub app: &'a App,
    pub mode: Mode,
    /// server id -> AMI (from `--ami` or the replication state).
    pub amis: &'a BTreeMap<String, String>,
    /// Whether the template waits for configure-script signals.
    pub health_gate: bool,
    /// The cached inspections and `--accept-risk`.
    pub guest: &'a GuestPolicy,
}

/// What pre-flight found.
#[derive(Debug, Default)]
pub struct PreflightReport {
    /// One line per problem; any refuses the launch.
    pub problems: Vec<String>,
    /// Printed, never refusing.
    pub warnings: Vec<String>,
    /// Guest refusals `--accept-risk` let through.
    pub accepted: Vec<guest::Accepted>,
}

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

struct SubnetInfo {
    vpc: String,
    cidr: Option<String>,
}

impl Preflight<'_> {
    /// All problems found, each naming the server and setting (none means ready to launch),
    /// with the warnings and accepted risks.
    pub async fn run(&self, clients: &AwsClients) -> Result<PreflightReport, LaunchError> {
        let app = self.app;
        let mut findings = Vec::new();
        let servers = app.servers_in_launch_order();

        for s in &servers {
            if !self.amis.contains_key(&s.id) {
                findings.push(format!(
                    "server {}: no AMI: replicate it first (`rehost replicate {} --server {}`) or pass --ami {}=ami-...",
                    s.id,
                    app.file.display(),
                    s.id,
                    s.id
                ));
            }
        }

        // AMIs: exist and are available; remember their architecture.
        let ami_ids: BTreeSet<String> = self.amis.values().cloned().collect();
        let mut ami_arch: BTreeMap<String, String> = BTreeMap::new();
        if !ami_ids.is_empty() {
            let out = clients
                .ec2
                .describe_images()
                .filters(filter("image-id", ami_ids.iter().cloned()))
                .send()
                .await
                .map_err(aws("ec2:DescribeImages"))?;
            for image in out.images() {
                let id = image.image_id().unwrap_or_default().to_string();
                // An image without a state (some endpoints omit it) is not refused.
                if let Some(state) = image.state()
                    && *state != ImageState::Available
                    && !state.as_str().is_empty()
                {
                    findings.push(format!("AMI {id} is {}, not available", state.as_str()));
                }
                ami_arch.insert(
                    id,
                    image
                        .architecture()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                );
            }
            for s in &servers {
                if let Some(ami) = self.amis.get(&s.id)
                    && !ami_arch.contains_key(ami)
                {
                    findings.push(format!(
                        "server {}: AMI {ami} does not exist in {}",
                        s.id, clients.region
                    ));
                }
            }
        }

        // Subnets and their VPCs.
        let subnet_ids: BTreeSet<String> = servers
            .iter()
            .filter_map(|s| s.launch(self.mode).subnet.as_ref().map(|x| x.value.clone()))
            .collect();
        let mut subnets: BTreeMap<String, SubnetInfo> = BTreeMap::new();
        if !subnet_ids.is_empty() {
            let out = clients
                .ec2
                .describe_subnets()
                .filters(filter("subnet-id", subnet_ids.iter().cloned()))
                .send()
                .await
                .map_err(aws("ec2:DescribeSubnets"))?;
            for subnet in out.subnets() {
                subnets.insert(
                    subnet.subnet_id().unwrap_or_default().to_string(),
                    SubnetInfo {
                        vpc: subnet.vpc_id().unwrap_or_default().to_string(),
                        cidr: subnet.cidr_block().map(str::to_string),
                    },
                );
            }
        }

        // Security groups and their VPCs.
        let sg_ids: BTreeSet<String> = servers
            .iter()
            .filter_map(|s| s.launch(self.mode).security_groups.as_ref())
            .flat_map(|x| x.value.iter().cloned())
            .collect();
        let mut sg_vpc: BTreeMap<String, String> = BTreeMap::new();
        if !sg_ids.is_empty() {
            let out = clients
                .ec2
                .describe_security_groups()
                .filters(filter("group-id", sg_ids.iter().cloned()))
                .send()
                .await
                .map_err(aws("ec2:DescribeSecurityGroups"))?;
            for sg in out.security_groups() {
                sg_vpc.insert(
                    sg.group_id().unwrap_or_default().to_string(),
                    sg.vpc_id().unwrap_or_default().to_string(),
                );
            }
        }

        // Key pairs.
        let key_names: BTreeSet<String> = servers
            .iter()
            .filter_map(|s| {
                s.launch(self.mode)
                    .key_name
                    .as_ref()
                    .map(|k| k.value.clone())
            })
            .collect();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        if !key_names.is_empty() {
            let out = clients
                .ec2
                .describe_key_pairs()
                .filters(filter("key-name", key_names.iter().cloned()))
                .send()
                .await
                .map_err(aws("ec2:DescribeKeyPairs"))?;
            keys.extend(
                out.key_pairs()
                    .iter()
                    .filter_map(|k| k.key_name().map(str::to_string)),
            );
        }

        // Instance profiles.
        let profiles: BTreeSet<String> = servers
            .iter()
            .filter_map(|s| {
                s.launch(self.mode)
                    .iam_instance_profile
                    .as_ref()
                    .map(|p| p.value.clone())
            })
            .collect();
        let mut missing_profiles = BTreeSet::new();
        for profile in &profiles {
            match clients
                .iam
                .get_instance_profile()
                .instance_profile_name(profile)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    let failure =
                        rehost_replication::aws::AwsFailure::from_sdk("iam:GetInstanceProfile", &e);
                    if failure.code == "NoSuchEntity" || failure.code.contains("NotFound") {
                        missing_profiles.insert(profile.clone());
                    } else {
                        return Err(LaunchError::Aws(failure));
                    }
                }
            }
        }

        // Instance types offered in the region, and the architectures they run.
        let types: BTreeSet<String> = servers
            .iter()
            .map(|s| s.launch(self.mode).instance_type.clone())
            .collect();
        let offered: BTreeSet<String> = {
            let out = clients
                .ec2
                .describe_instance_type_offerings()
                .location_type(LocationType::Region)
                .filters(filter("instance-type", types.iter().cloned()))
                .send()
                .await
                .map_err(aws("ec2:DescribeInstanceTypeOfferings"))?;
            out.instance_type_offerings()
                .iter()
                .filter_map(|o| o.instance_type().map(|t| t.as_str().to_string()))
                .collect()
        };
        let mut type_archs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut hypervisors: BTreeMap<String, Hypervisor> = BTreeMap::new();
        if !offered.is_empty() {
            let out = clients
                .ec2
                .describe_instance_types()
                .set_instance_types(Some(offered.iter().map(|t| t.as_str().into()).collect()))
                .send()
                .await
                .map_err(aws("ec2:DescribeInstanceTypes"))?;
            for info in out.instance_types() {
                let name = info
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
                let archs = info
                    .processor_info()
                    .map(|p| {
                        p.supported_architectures()
                            .iter()
                            .map(|a| a.as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                match info.hypervisor().map(|h| h.as_str()) {
                    Some("nitro") => {
                        hypervisors.insert(name.clone(), Hypervisor::Nitro);
                    }
                    Some("xen") => {
                        hypervisors.insert(name.clone(), Hypervisor::Xen);
                    }
                    _ => {}
                }
                type_archs.insert(name, archs);
            }
        }

        // Per server, in launch order: one line per problem.
        let mut reported_types = BTreeSet::new();
        for s in &servers {
            let l = s.launch(self.mode);
            let id = &s.id;
            if !offered.contains(&l.instance_type) {
                if reported_types.insert(l.instance_type.clone()) {
                    findings.push(format!(
                        "server {id}: instance type {} is not offered in {}",
                        l.instance_type, clients.region
                    ));
                }
            } else if let (Some(ami), Some(archs)) =
                (self.amis.get(id), type_archs.get(&l.instance_type))
            {
                let wanted = ami_arch
                    .get(ami)
                    .cloned()
                    .unwrap_or_else(|| s.architecture.as_aws().to_string());
                if !archs.is_empty() && !wanted.is_empty() && !archs.contains(&wanted) {
                    findings.push(format!(
                        "server {id}: instance type {} runs {}, but AMI {ami} is {wanted}",
                        l.instance_type,
                        archs.join("/")
                    ));
                }
            }
            let subnet = l.subnet.as_ref().map(|x| x.value.as_str());
            if let Some(subnet_id) = subnet {
                match subnets.get(subnet_id) {
                    None => findings.push(format!(
                        "server {id}: subnet {subnet_id} does not exist in {}",
                        clients.region
                    )),
                    Some(info) => {
                        if let Some(vpc) = &l.vpc
                            && &info.vpc != vpc
                        {
                            findings.push(format!(
                                "server {id}: subnet {subnet_id} is in {}, not in vpc {vpc}",
                                info.vpc
                            ));
                        }
                        if let (Some(ip), Some(cidr)) = (&l.private_ip_address, &info.cidr)
                            && let Err(why) = address_fits(ip, cidr)
                        {
                            findings.push(format!(
                                "server {id}: private IP {ip} {why} ({subnet_id} is {cidr})"
                            ));
                        }
                    }
                }
            }
            if let Some(groups) = &l.security_groups {
                for sg in &groups.value {
                    match sg_vpc.get(sg) {
                        None => findings.push(format!(
                            "server {id}: security group {sg} does not exist in {}",
                            clients.region
                        )),
                        Some(sg_vpc_id) => {
                            let expected = subnet
                                .and_then(|sn| subnets.get(sn))
                                .map(|i| i.vpc.as_str())
                                .or(l.vpc.as_deref());
                            if let Some(expected) = expected
                                && sg_vpc_id != expected
                            {
                                findings.push(format!(
                                        "server {id}: security group {sg} is in {sg_vpc_id}, but the instance goes into {expected}"
                                    ));
                            }
                        }
                    }
                }
            }
            if let Some(key) = &l.key_name
                && !keys.contains(&key.value)
            {
                findings.push(format!(
                    "server {id}: key pair {} does not exist in {}",
                    key.value, clients.region
                ));
            }
            if let Some(profile) = &l.iam_instance_profile
                && missing_profiles.contains(&profile.value)
            {
                findings.push(format!(
                    "server {id}: IAM instance profile {} does not exist",
                    profile.value
                ));
            }
        }
        findings.dedup();
        let GuestCheck {
            refusals,
            warnings,
            accepted,
        } = guest::check(app, self.mode, self.health_gate, self.guest, &hypervisors);
        findings.extend(refusals);
        Ok(PreflightReport {
            problems: findings,
            warnings,
            accepted,
        })
    }
}

/// An address EC2 can assign in the subnet: inside its CIDR and not one of the 4 first or the
/// last address, which AWS reserves.
pub fn address_fits(ip: &str, cidr: &str) -> Result<(), &'static str> {
    let ip: Ipv4Addr = ip.parse().map_err(|_| "is not an IPv4 address")?;
    let (net, len) = cidr.split_once('/').ok_or("cannot be checked")?;
    let net: Ipv4Addr = net.parse().map_err(|_| "cannot be checked")?;
    let len: u32 = len.parse().map_err(|_| "cannot be checked")?;
    if len > 32 {
        return Err("cannot be checked");
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let (ip, net) = (u32::from(ip), u32::from(net) & mask);
    if ip & mask != net {
        return Err("is outside the subnet");
    }
    let offset = ip - net;
    let size = if len == 0 {
        u64::from(u32::MAX) + 1
    } else {
        1u64 << (32 - len)
    };
    if offset < 4 || u64::from(offset) == size - 1 {
        return Err("is reserved by AWS in the subnet");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::address_fits;

    #[test]
    fn addresses_must_fit_the_subnet_and_avoid_reserved_ones() {
        assert!(address_fits("10.0.1.20", "10.0.1.0/24").is_ok());
        assert_eq!(
            address_fits("10.0.2.20", "10.0.1.0/24"),
            Err("is outside the subnet")
        );
        assert_eq!(
            address_fits("10.0.1.3", "10.0.1.0/24"),
            Err("is reserved by AWS in the subnet")
        );
        assert_eq!(
            address_fits("10.0.1.255", "10.0.1.0/24"),
            Err("is reserved by AWS in the subnet")
        );
        assert!(address_fits("10.0.200.9", "10.0.0.0/16").is_ok());
    }
}
