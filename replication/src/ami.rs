//! AMIs: register from the snapshots (boot disk as root), find by name, tag, wait until
//! available, deregister.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter, Image,
    ImageState, ResourceType, Tag, TagSpecification, VolumeType,
};

use crate::aws::AwsFailure;
use crate::job::{Architecture, BootMode};

pub struct DiskImage<'a> {
    pub disk: &'a str,
    pub snapshot_id: &'a str,
    pub volume_size_gib: u64,
}

pub struct AmiSpec<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub architecture: Architecture,
    pub boot_mode: Option<BootMode>,
    pub ena_support: bool,
    /// Boot disk first.
    pub disks: &'a [DiskImage<'a>],
    pub tags: &'a [(String, String)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub ami_id: String,
    pub name: String,
    pub state: String,
    pub creation_date: String,
    pub tags: Vec<(String, String)>,
    /// Snapshot ids from the block-device mappings.
    pub mapped_snapshots: Vec<String>,
}

impl FoundImage {
    fn from(img: &Image) -> Option<FoundImage> {
        Some(FoundImage {
            ami_id: img.image_id()?.to_string(),
            name: img.name().unwrap_or_default().to_string(),
            state: img
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            creation_date: img.creation_date().unwrap_or_default().to_string(),
            tags: img
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            mapped_snapshots: img
                .block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
                .collect(),
        })
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Device names: the root and then one per data disk.
pub fn device_names(arch: Architecture, disks: usize) -> Result<Vec<String>, String> {
    if disks > 26 {
        return Err(format!(
            "{disks} disks: at most 26 fit the device names of an AMI"
        ));
    }
    let (root, prefix) = match arch {
        Architecture::X86_64 => ("/dev/sda1", "/dev/sd"),
        Architecture::Arm64 => ("/dev/xvda", "/dev/xvd"),
    };
    let mut names = vec![root.to_string()];
    names.extend((1..disks).map(|i| format!("{prefix}{}", (b'a' + i as u8) as char)));
    Ok(names)
}

pub async fn find_by_name(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
) -> Result<Vec<FoundImage>, AwsFailure> {
    let filters = vec![Filter::builder().name("name").values(name).build()];
    own_images(ec2, filters, |i| i.name == name).await
}

/// This account's images matching `filters`, checked again with `keep` (a filter is only a
/// request to the API: what comes back is checked for what we rely on).
async fn own_images(
    ec2: &aws_sdk_ec2::Client,
    filters: Vec<Filter>,
    keep: impl Fn(&FoundImage) -> bool,
) -> Result<Vec<FoundImage>, AwsFailure> {
    let out = ec2
        .describe_images()
        .owners("self")
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("DescribeImages", &e))?;
    Ok(out
        .images()
        .iter()
        .filter_map(FoundImage::from)
        .filter(|i| keep(i))
        .collect())
}

pub async fn describe(
    ec2: &aws_sdk_ec2::Client,
    ami_id: &str,
) -> Result<Option<FoundImage>, AwsFailure> {
    match ec2.describe_images().image_ids(ami_id).send().await {
        Ok(out) => Ok(out
            .images()
            .iter()
            .filter_map(FoundImage::from)
            .find(|i| i.ami_id == ami_id)),
        Err(e) => {
            let failure = AwsFailure::from_sdk("DescribeImages", &e);
            if failure.is_not_found() {
                Ok(None)
            } else {
                Err(failure)
            }
        }
    }
}

/// The server's AMIs made by rehost (found by their tags).
pub async fn server_images(
    ec2: &aws_sdk_ec2::Client,
    app: &str,
    server: &str,
) -> Result<Vec<FoundImage>, AwsFailure> {
    let tag = |key: &str, value: &str| {
        Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build()
    };
    let filters = vec![tag(crate::tags::APP, app), tag(crate::tags::SERVER, server)];
    own_images(ec2, filters, |i| {
        i.tag(crate::tags::APP) == Some(app) && i.tag(crate::tags::SERVER) == Some(server)
    })
    .await
}

pub async fn register(ec2: &aws_sdk_ec2::Client, spec: &AmiSpec<'_>) -> Result<String, AwsFailure> {
    let devices =
        device_names(spec.architecture, spec.disks.len()).map_err(|message| AwsFailure {
            operation: "RegisterImage",
            code: "TooManyDisks".into(),
            message,
        })?;
    let mappings = spec
        .disks
        .iter()
        .zip(&devices)
        .map(|(d, device)| {
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id(d.snapshot_id)
                        .volume_size(d.volume_size_gib as i32)
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(true)
                        .build(),
                )
                .build()
        })
        .collect::<Vec<_>>();
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Image)
        .set_tags(Some(to_tags(spec.tags)))
        .build();
    let out = ec2
        .register_image()
        .name(spec.name)
        .description(spec.description)
        .architecture(match spec.architecture {
            Architecture::X86_64 => ArchitectureValues::X8664,
            Architecture::Arm64 => ArchitectureValues::Arm64,
        })
        .set_boot_mode(spec.boot_mode.map(|b| match b {
            BootMode::LegacyBios => BootModeValues::LegacyBios,
            BootMode::Uefi => BootModeValues::Uefi,
            BootMode::UefiPreferred => BootModeValues::UefiPreferred,
        }))
        .ena_support(spec.ena_support)
        .virtualization_type("hvm")
        .root_device_name(&devices[0])
        .set_block_device_mappings(Some(mappings))
        .tag_specifications(tags)
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("RegisterImage", &e))?;
    out.image_id()
        .map(str::to_string)
        .ok_or_else(|| AwsFailure {
            operation: "RegisterImage",
            code: "MissingImageId".into(),
            message: "the response carries no image id".into(),
        })
}

fn to_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Adds the tags the image lacks (some endpoints ignore RegisterImage's tag specifications;
/// a resumed run may find an image registered before the crash).
pub async fn ensure_tags(
    ec2: &aws_sdk_ec2::Client,
    image: &FoundImage,
    wanted: &[(String, String)],
) -> Result<(), AwsFailure> {
    let missing: Vec<(String, String)> = wanted
        .iter()
        .filter(|(k, v)| image.tag(k) != Some(v.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    ec2.create_tags()
        .resources(&image.ami_id)
        .set_tags(Some(to_tags(&missing)))
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("CreateTags", &e))?;
    Ok(())
}

/// Polls until the image is available; bounded by `timeout`.
pub async fn wait_available(
    ec2: &aws_sdk_ec2::Client,
    ami_id: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<FoundImage, AwsFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        let image = describe(ec2, ami_id).await?;
        match image {
            Some(img) if img.state == ImageState::Available.as_str() => return Ok(img),
            Some(img)
                if img.state == ImageState::Failed.as_str()
                    || img.state == ImageState::Error.as_str() =>
            {
                return Err(AwsFailure {
                    operation: "DescribeImages",
                    code: "ImageFailed".into(),
                    message: format!("AMI {ami_id} went to state {}", img.state),
                });
            }
            _ if Instant::now() >= deadline => {
                return Err(AwsFailure {
                    operation: "DescribeImages",
                    code: "ImageNotAvailable".into(),
                    message: format!("AMI {ami_id} not available after {} s", timeout.as_secs()),
                });
            }
            _ => tokio::time::sleep(interval).await,
        }
    }
}

/// Deregisters an image; one already gone is fine.
pub async fn deregister(ec2: &aws_sdk_ec2::Client, ami_id: &str) -> Result<(), AwsFailure> {
    match ec2.deregister_image().image_id(ami_id).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let failure = AwsFailure::from_sdk("DeregisterImage", &e);
            if failure.is_not_found() || failure.code == "InvalidAMIID.Unavailable" {
                Ok(())
            } else {
                Err(failure)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_per_architecture() {
        assert_eq!(
            device_names(Architecture::X86_64, 3).unwrap(),
            ["/dev/sda1", "/dev/sdb", "/dev/sdc"]
        );
        assert_eq!(
            device_names(Architecture::Arm64, 2).unwrap(),
            ["/dev/xvda", "/dev/xvdb"]
        );
        assert!(device_names(Architecture::X86_64, 27).is_err());
    }
}
