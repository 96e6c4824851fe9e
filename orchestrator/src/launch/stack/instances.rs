//! The application's instances in a stack, as `launch` and `status` show them.

use std::collections::BTreeMap;

use crate::app::App;
use crate::launch::{AwsClients, LaunchError, aws};

/// One launched server, for the final table and `status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceView {
    pub server: String,
    pub group: String,
    pub logical_id: String,
    pub instance_id: Option<String>,
    pub private_ip: Option<String>,
    pub state: Option<String>,
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Ec2Detail {
    private_ip: Option<String>,
    state: Option<String>,
    instance_type: Option<String>,
    image_id: Option<String>,
}

/// The application's instances in this stack, in launch order.
pub async fn instances(
    clients: &AwsClients,
    app: &App,
    stack: &str,
) -> Result<Vec<InstanceView>, LaunchError> {
    let resources = clients
        .cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws("cloudformation:DescribeStackResources"))?;
    let physical: BTreeMap<String, String> = resources
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::EC2::Instance"))
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                r.physical_resource_id()?.to_string(),
            ))
        })
        .filter(|(_, id)| id.starts_with("i-"))
        .collect();
    let mut details: BTreeMap<String, Ec2Detail> = BTreeMap::new();
    if !physical.is_empty() {
        let out = clients
            .ec2
            .describe_instances()
            .set_instance_ids(Some(physical.values().cloned().collect()))
            .send()
            .await
            .map_err(aws("ec2:DescribeInstances"))?;
        for reservation in out.reservations() {
            for i in reservation.instances() {
                if let Some(id) = i.instance_id() {
                    details.insert(
                        id.to_string(),
                        Ec2Detail {
                            private_ip: i.private_ip_address().map(str::to_string),
                            state: i
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string()),
                            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                            image_id: i.image_id().map(str::to_string),
                        },
                    );
                }
            }
        }
    }
    Ok(app
        .servers_in_launch_order()
        .into_iter()
        .map(|s| {
            let instance_id = physical.get(&s.logical_id).cloned();
            let d = instance_id
                .as_ref()
                .and_then(|id| details.get(id))
                .cloned()
                .unwrap_or_default();
            InstanceView {
                server: s.id.clone(),
                group: app.group_of(s).name.clone(),
                logical_id: s.logical_id.clone(),
                instance_id,
                private_ip: d.private_ip,
                state: d.state,
                instance_type: d.instance_type,
                image_id: d.image_id,
            }
        })
        .collect())
}
