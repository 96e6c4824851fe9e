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

/// Logical id -> instance id of the stack's instances, those of its nested stacks included
/// (a nested launch keeps its instances in one child stack per group).
async fn instance_ids(
    clients: &AwsClients,
    stack: &str,
) -> Result<BTreeMap<String, String>, LaunchError> {
    let mut physical = BTreeMap::new();
    let mut stacks = vec![stack.to_string()];
    while let Some(stack) = stacks.pop() {
        let resources = clients
            .cfn
            .describe_stack_resources()
            .stack_name(&stack)
            .send()
            .await
            .map_err(aws("cloudformation:DescribeStackResources"))?;
        for r in resources.stack_resources() {
            let (Some(logical), Some(id)) = (r.logical_resource_id(), r.physical_resource_id())
            else {
                continue;
            };
            match r.resource_type() {
                Some("AWS::EC2::Instance") if id.starts_with("i-") => {
                    physical.insert(logical.to_string(), id.to_string());
                }
                Some("AWS::CloudFormation::Stack") => stacks.push(id.to_string()),
                _ => {}
            }
        }
    }
    Ok(physical)
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
    let physical = instance_ids(clients, stack).await?;
    let mut details: BTreeMap<String, Ec2Detail> = BTreeMap::new();
    let ids: Vec<String> = physical.values().cloned().collect();
    // DescribeInstances answers for a bounded number of ids per call.
    for batch in ids.chunks(200) {
        let out = clients
            .ec2
            .describe_instances()
            .set_instance_ids(Some(batch.to_vec()))
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
