//! Template resources in launch order: per group its gate handle, its instances, then its gate
//! (a WaitCondition counting the group's success signals). Without gates, instances depend on
//! the instances of the groups before them.

use rehost_replication::tags;
use serde_json::{Map, Value, json};

use crate::app::{App, AppServer, Mode};
use crate::userdata::{GATE_URL_VARIABLE, Rendered, Wrapper};

use super::document::{AmiParameters, RenderOptions};
use super::names::{INSTANCE_PROFILE, KEY_NAME, Names, SECURITY_GROUPS, SUBNET};

/// How many resources `build` makes: an instance per server, and with gates a handle and a
/// wait condition per group.
pub(super) fn count(app: &App, health_gate: bool) -> usize {
    app.servers.len() + if health_gate { 2 * app.groups.len() } else { 0 }
}

/// The `Resources` section.
pub(super) fn build(
    app: &App,
    opts: &RenderOptions,
    waves: &[Vec<usize>],
    amis: AmiParameters,
) -> Map<String, Value> {
    let gate_minutes = app.gate_minutes(opts.mode);
    let mut resources = Map::new();
    for &g in waves.iter().flatten() {
        let group = &app.groups[g];
        let depends_on: Vec<String> = if opts.health_gate {
            group
                .depends_on
                .iter()
                .map(|&d| Names::gate(&app.groups[d].logical_stem))
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
        if opts.health_gate {
            resources.insert(
                Names::gate_handle(&group.logical_stem),
                json!({"Type": "AWS::CloudFormation::WaitConditionHandle", "Properties": {}}),
            );
        }
        for (position, &s) in group.servers.iter().enumerate() {
            let server = &app.servers[s];
            let image = match amis {
                AmiParameters::PerServer => json!({"Ref": Names::image_parameter(server)}),
                AmiParameters::PerGroup => json!({"Fn::Select": [
                    position.to_string(),
                    {"Ref": Names::group_image_parameter(&group.logical_stem)}
                ]}),
            };
            resources.insert(
                server.logical_id.clone(),
                instance(app, opts, server, image, &depends_on),
            );
        }
        if opts.health_gate {
            let members: Vec<&str> = group
                .servers
                .iter()
                .map(|&s| app.servers[s].logical_id.as_str())
                .collect();
            resources.insert(
                Names::gate(&group.logical_stem),
                json!({
                    "Type": "AWS::CloudFormation::WaitCondition",
                    "DependsOn": members,
                    "Properties": {
                        "Handle": {"Ref": Names::gate_handle(&group.logical_stem)},
                        "Count": group.servers.len(),
                        "Timeout": (gate_minutes[g] * 60).to_string(),
                    }
                }),
            );
        }
    }
    resources
}

/// `text` as a template value that is exactly that text and nothing CloudFormation or cfn-lint
/// reads as an embedded parameter: a script may hold `${AWS::Region}`, `${Foo.Bar}` or a lone
/// `${`, which outside Fn::Sub are literal to CloudFormation but flagged by cfn-lint (E1029).
/// The text is split at every `${` and joined with it: no piece holds `${`, and the delimiter
/// (never a complete `${...}`) is inserted verbatim. A non-empty delimiter also keeps cfn-lint
/// from preferring Fn::Sub (I1022), which would need every `${` escaped.
fn literal(text: &str) -> Value {
    if text.contains("${") {
        json!({"Fn::Join": ["${", text.split("${").collect::<Vec<_>>()]})
    } else {
        Value::String(text.to_string())
    }
}

/// One server's `AWS::EC2::Instance`.
fn instance(
    app: &App,
    opts: &RenderOptions,
    server: &AppServer,
    image: Value,
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

    let wrapper = Wrapper {
        app: &app.name,
        group: &group.name,
        server: &server.id,
        os: server.os,
        script: launch.configure_script.as_ref(),
        gate: opts.health_gate,
    };
    let user_data = match wrapper.render() {
        Rendered::Sub(text) => json!({"Fn::Base64": {"Fn::Sub": [
            text,
            {GATE_URL_VARIABLE: {"Ref": Names::gate_handle(&group.logical_stem)}}
        ]}}),
        Rendered::Plain(text) => json!({"Fn::Base64": literal(&text)}),
    };
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
