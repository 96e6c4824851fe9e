//! Template resources in launch order: per group its gate handle, its instances, then its gate
//! (a WaitCondition counting the group's success signals), the gate's ids carrying the group's
//! generation (`gates`). Without gates, instances depend on the instances of the groups before
//! them.

use rehost_replication::tags;
use serde_json::{Map, Value, json};

use crate::app::{App, AppServer, Mode};
use crate::userdata::{BodyCache, Wrapper};

use super::document::{AmiParameters, GateIds, RenderOptions};
use super::gates;
use super::names::{INSTANCE_PROFILE, KEY_NAME, Names, SECURITY_GROUPS, SUBNET};
use super::user_data::UserDataStore;

/// How many resources `build` makes: an instance per server, and with gates a handle and a
/// wait condition per group.
pub(super) fn count(app: &App, health_gate: bool) -> usize {
    app.servers.len() + if health_gate { 2 * app.groups.len() } else { 0 }
}

/// The `Resources` section, the `Mappings` that hold the user-data bodies servers share, and
/// each group's gate ids.
pub(super) fn build(
    app: &App,
    opts: &RenderOptions,
    waves: &[Vec<usize>],
    amis: AmiParameters,
) -> Built {
    let gate_minutes = app.gate_minutes(opts.mode);
    let order: Vec<usize> = waves
        .iter()
        .flatten()
        .flat_map(|&g| app.groups[g].servers.iter().copied())
        .collect();
    let mut data = vec![None; app.servers.len()];
    // Servers sharing a script share its wrapper body: rendered once.
    let mut bodies = BodyCache::default();
    for &s in &order {
        let server = &app.servers[s];
        let launch = server.launch(opts.mode);
        data[s] = Some(
            Wrapper {
                app: &app.name,
                group: &app.group_of(server).name,
                server: &server.id,
                os: server.os,
                script: launch.configure_script.as_ref(),
                checks: &launch.checks,
                gate: opts.health_gate,
            }
            .render_cached(&mut bodies),
        );
    }
    let store = UserDataStore::new(data, &order);
    let mut resources = Map::new();
    let mut gates: Vec<Option<GateIds>> = vec![None; app.groups.len()];
    for &g in waves.iter().flatten() {
        let group = &app.groups[g];
        let depends_on: Vec<String> = if opts.health_gate {
            group
                .depends_on
                .iter()
                .filter_map(|&d| gates[d].as_ref().map(|ids| ids.gate.clone()))
                .collect()
        } else {
            group
                .depends_on
                .iter()
                .flat_map(|&d| {
                    app.groups[d]
                        .servers
                        .iter()
                        .map(|&s| app.servers[s].logical_id.clone())
                })
                .collect()
        };
        // The instances first, without user data (which names the gate): the gate's generation
        // depends on them.
        let mut instances: Vec<(usize, Value)> = Vec::with_capacity(group.servers.len());
        for (position, &s) in group.servers.iter().enumerate() {
            let server = &app.servers[s];
            let image = match amis {
                AmiParameters::PerServer => json!({"Ref": Names::image_parameter(server)}),
                AmiParameters::PerGroup => json!({"Fn::Select": [
                    position.to_string(),
                    {"Ref": Names::group_image_parameter(&group.logical_stem)}
                ]}),
            };
            instances.push((
                s,
                instance(app, opts, server, image, Value::Null, &depends_on),
            ));
        }
        let count = group.servers.len();
        let timeout = (gate_minutes[g] * 60).to_string();
        let ids = opts.health_gate.then(|| {
            let members: Vec<(&AppServer, &Value)> = instances
                .iter()
                .map(|(s, r)| (&app.servers[*s], r))
                .collect();
            let generation = gates::generation(
                &members,
                |server| opts.amis.get(&server.id).cloned(),
                count,
                &timeout,
            );
            GateIds {
                gate: Names::gate(&group.logical_stem, &generation),
                handle: Names::gate_handle(&group.logical_stem, &generation),
            }
        });
        if let Some(ids) = &ids {
            resources.insert(
                ids.handle.clone(),
                json!({"Type": "AWS::CloudFormation::WaitConditionHandle", "Properties": {}}),
            );
        }
        for (s, mut resource) in instances {
            resource["Properties"]["UserData"] =
                store.property(app, s, ids.as_ref().map(|i| i.handle.as_str()));
            resources.insert(app.servers[s].logical_id.clone(), resource);
        }
        if let Some(ids) = &ids {
            let members: Vec<&str> = group
                .servers
                .iter()
                .map(|&s| app.servers[s].logical_id.as_str())
                .collect();
            resources.insert(
                ids.gate.clone(),
                json!({
                    "Type": "AWS::CloudFormation::WaitCondition",
                    "DependsOn": members,
                    "Properties": {
                        "Handle": {"Ref": ids.handle},
                        "Count": count,
                        "Timeout": timeout,
                    }
                }),
            );
        }
        gates[g] = ids;
    }
    Built {
        resources,
        mappings: store.mappings,
        gates,
    }
}

/// What `build` makes.
pub(super) struct Built {
    pub resources: Map<String, Value>,
    /// The user-data bodies servers share.
    pub mappings: Map<String, Value>,
    /// Each group's gate (None without gates).
    pub gates: Vec<Option<GateIds>>,
}

/// One server's `AWS::EC2::Instance`.
fn instance(
    app: &App,
    opts: &RenderOptions,
    server: &AppServer,
    image: Value,
    user_data: Value,
    depends_on: &[String],
) -> Value {
    let launch = server.launch(opts.mode);
    let group = app.group_of(server);
    let mut props = Map::new();
    props.insert("ImageId".into(), image);
    props.insert("InstanceType".into(), launch.instance_type.clone().into());

    let subnet = SUBNET.value(app, launch, opts.portable);
    let groups = SECURITY_GROUPS.value(app, launch, opts.portable);
    match launch.associate_public_ip_address {
        // An explicit choice needs a network interface: only there can it override the subnet's
        // default public-IP behaviour.
        Some(public) => {
            let mut nic = Map::new();
            nic.insert("DeviceIndex".into(), "0".into());
            nic.insert("AssociatePublicIpAddress".into(), public.into());
            nic.insert("DeleteOnTermination".into(), true.into());
            if let Some(subnet) = subnet {
                nic.insert("SubnetId".into(), subnet);
            }
            if let Some(groups) = groups {
                nic.insert("GroupSet".into(), groups);
            }
            if let Some(ip) = &launch.private_ip_address {
                nic.insert("PrivateIpAddress".into(), ip.clone().into());
            }
            props.insert("NetworkInterfaces".into(), json!([nic]));
        }
        None => {
            if let Some(subnet) = subnet {
                props.insert("SubnetId".into(), subnet);
            }
            if let Some(groups) = groups {
                props.insert("SecurityGroupIds".into(), groups);
            }
            if let Some(ip) = &launch.private_ip_address {
                props.insert("PrivateIpAddress".into(), ip.clone().into());
            }
        }
    }
    if let Some(key) = KEY_NAME.value(app, launch, opts.portable) {
        props.insert("KeyName".into(), key);
    }
    if let Some(profile) = INSTANCE_PROFILE.value(app, launch, opts.portable) {
        props.insert("IamInstanceProfile".into(), profile);
    }
    props.insert("PropagateTagsToVolumeOnCreation".into(), true.into());

    props.insert("UserData".into(), user_data);

    let name = match opts.mode {
        Mode::Cutover => server.id.clone(),
        Mode::Test => format!("{}-test", server.id),
    };
    // rehost's own tags (`tags::INSTANCE_KEYS`, which the tag budget counts), then the app's.
    let own = [
        (tags::NAME, name.as_str()),
        (tags::APP, app.name.as_str()),
        (tags::GROUP, group.name.as_str()),
        (tags::SERVER, server.id.as_str()),
        (tags::MODE, opts.mode.as_str()),
    ];
    let tags: Vec<Value> = own
        .into_iter()
        .chain(app.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    props.insert("Tags".into(), Value::Array(tags));

    let mut resource = Map::new();
    resource.insert("Type".into(), "AWS::EC2::Instance".into());
    if !depends_on.is_empty() {
        resource.insert("DependsOn".into(), json!(depends_on));
    }
    resource.insert("Properties".into(), Value::Object(props));
    Value::Object(resource)
}
