//! One CloudFormation template for the whole application.
//!
//! Servers launch group by group: each group has a WaitConditionHandle + WaitCondition (its
//! "gate", Count = its servers) that opens once every server of the group has signalled that its
//! configure script succeeded; a server's instance DependsOn the gates of exactly the groups its
//! group depends on, so independent groups start together. `--no-health-gate` drops the gates and
//! makes instances DependsOn the instances of those groups instead.
//!
//! Output is deterministic: maps keep insertion order, which follows launch order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::app::{App, AppServer, Level, Mode, Origin, Setting};
use crate::diag::Diagnostics;
use crate::userdata::{GATE_URL_VARIABLE, Rendered, Wrapper};

/// CloudFormation quotas a template must respect.
pub const MAX_RESOURCES: usize = 500;
pub const MAX_PARAMETERS: usize = 200;
pub const MAX_OUTPUTS: usize = 200;
/// Largest body CreateStack/CreateChangeSet accept inline; larger ones go through S3.
pub const MAX_INLINE_BODY: usize = 51_200;
/// Largest body through S3 (TemplateURL).
pub const MAX_S3_BODY: usize = 1_000_000;
const MAX_DESCRIPTION: usize = 1024;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub mode: Mode,
    /// Account-specific ids become typed parameters so the template launches in other accounts.
    pub portable: bool,
    pub health_gate: bool,
    /// Default AMI per server id (from `--ami` or the replication state).
    pub amis: BTreeMap<String, String>,
}

impl RenderOptions {
    pub fn new(mode: Mode) -> Self {
        RenderOptions {
            mode,
            portable: false,
            health_gate: true,
            amis: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Template {
    pub body: Value,
    pub resources: usize,
    pub parameters: usize,
    pub outputs: usize,
    /// How AMIs are parameterised (per server while they fit in the parameter quota).
    pub ami_parameters: AmiParameters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmiParameters {
    /// One `AWS::EC2::Image::Id` per server.
    PerServer,
    /// One `List<AWS::EC2::Image::Id>` per group, in the group's server order: used only when
    /// per-server parameters would exceed CloudFormation's 200-parameter quota.
    PerGroup,
}

impl Template {
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.body).expect("template serializes");
        s.push('\n');
        s
    }

    /// The form sent to CloudFormation: smallest, so more templates fit inline.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(&self.body).expect("template serializes")
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.body).expect("template serializes")
    }
}

/// Names of the template's logical ids and parameters, derived from the application.
pub struct Names;

impl Names {
    pub fn image_parameter(server: &AppServer) -> String {
        format!("{}ImageId", server.logical_id)
    }
    pub fn group_image_parameter(stem: &str) -> String {
        format!("{stem}GroupImageIds")
    }
    pub fn gate(stem: &str) -> String {
        format!("{stem}Gate")
    }
    pub fn gate_handle(stem: &str) -> String {
        format!("{stem}GateHandle")
    }
    pub fn instance_output(server: &AppServer) -> String {
        format!("{}InstanceId", server.logical_id)
    }
    pub fn private_ip_output(server: &AppServer) -> String {
        format!("{}PrivateIp", server.logical_id)
    }
    fn origin(app: &App, origin: Origin) -> String {
        let level = match origin.level {
            Level::Defaults => "Default".to_string(),
            Level::Group(g) => format!("{}Group", app.groups[g].logical_stem),
            Level::Server(s) => app.servers[s].logical_id.clone(),
        };
        if origin.test {
            format!("{level}Test")
        } else {
            level
        }
    }
    pub fn network_parameter(app: &App, origin: Origin, field: &str) -> String {
        format!("{}{field}", Self::origin(app, origin))
    }
}

/// Portable-mode parameters for account-specific ids, one per (origin, field): every server that
/// inherits the value from the same block shares the parameter.
struct NetworkParameters {
    /// name -> (type, description, source value)
    entries: BTreeMap<String, (&'static str, String)>,
}

impl NetworkParameters {
    fn collect(app: &App, mode: Mode) -> Self {
        let mut entries = BTreeMap::new();
        for server in &app.servers {
            let launch = server.launch(mode);
            let mut add = |setting: Option<Origin>,
                           field: &str,
                           ty: &'static str,
                           what: &str,
                           value: String| {
                if let Some(origin) = setting {
                    entries
                        .entry(Names::network_parameter(app, origin, field))
                        .or_insert((ty, format!("{what} (was {value} in the source account)")));
                }
            };
            add(
                launch.subnet.as_ref().map(|s| s.origin),
                "Subnet",
                "AWS::EC2::Subnet::Id",
                "Subnet",
                launch
                    .subnet
                    .as_ref()
                    .map(|s| s.value.clone())
                    .unwrap_or_default(),
            );
            add(
                launch.security_groups.as_ref().map(|s| s.origin),
                "SecurityGroups",
                "List<AWS::EC2::SecurityGroup::Id>",
                "Security groups",
                launch
                    .security_groups
                    .as_ref()
                    .map(|s| s.value.join(","))
                    .unwrap_or_default(),
            );
            add(
                launch.key_name.as_ref().map(|s| s.origin),
                "KeyName",
                "AWS::EC2::KeyPair::KeyName",
                "EC2 key pair",
                launch
                    .key_name
                    .as_ref()
                    .map(|s| s.value.clone())
                    .unwrap_or_default(),
            );
            add(
                launch.iam_instance_profile.as_ref().map(|s| s.origin),
                "InstanceProfile",
                "String",
                "IAM instance profile name",
                launch
                    .iam_instance_profile
                    .as_ref()
                    .map(|s| s.value.clone())
                    .unwrap_or_default(),
            );
        }
        NetworkParameters { entries }
    }
}

/// A value that is either literal or, in portable mode, a Ref to its parameter.
fn id_value<T: Clone + Into<Value>>(
    app: &App,
    opts: &RenderOptions,
    setting: &Setting<T>,
    field: &str,
) -> Value {
    if opts.portable {
        json!({"Ref": Names::network_parameter(app, setting.origin, field)})
    } else {
        setting.value.clone().into()
    }
}

pub fn render(app: &App, opts: &RenderOptions) -> Template {
    let mode = opts.mode;
    let order = app.servers_in_launch_order();
    let waves = app.graph.waves();
    let network = if opts.portable {
        NetworkParameters::collect(app, mode).entries
    } else {
        BTreeMap::new()
    };
    let ami_parameters = if network.len() + app.servers.len() <= MAX_PARAMETERS {
        AmiParameters::PerServer
    } else {
        AmiParameters::PerGroup
    };

    // Parameters: AMIs in launch order, then account-specific ids.
    let mut parameters = Map::new();
    let mut interface_groups = Vec::new();
    for wave in &waves {
        for &g in wave {
            let group = &app.groups[g];
            let mut labels = Vec::new();
            match ami_parameters {
                AmiParameters::PerServer => {
                    for &s in &group.servers {
                        let server = &app.servers[s];
                        let name = Names::image_parameter(server);
                        let mut p = Map::new();
                        p.insert("Type".into(), "AWS::EC2::Image::Id".into());
                        p.insert(
                            "Description".into(),
                            format!("AMI of server {} (group {})", server.id, group.name).into(),
                        );
                        if let Some(ami) = opts.amis.get(&server.id) {
                            p.insert("Default".into(), ami.clone().into());
                        }
                        parameters.insert(name.clone(), Value::Object(p));
                        labels.push(name);
                    }
                }
                AmiParameters::PerGroup => {
                    let name = Names::group_image_parameter(&group.logical_stem);
                    let ids: Vec<&str> = group
                        .servers
                        .iter()
                        .map(|&s| app.servers[s].id.as_str())
                        .collect();
                    let mut p = Map::new();
                    p.insert("Type".into(), "List<AWS::EC2::Image::Id>".into());
                    p.insert(
                        "Description".into(),
                        format!(
                            "AMIs of group {}'s servers, in this order: {}",
                            group.name,
                            ids.join(", ")
                        )
                        .into(),
                    );
                    let defaults: Option<Vec<&String>> = group
                        .servers
                        .iter()
                        .map(|&s| opts.amis.get(&app.servers[s].id))
                        .collect();
                    if let Some(defaults) = defaults {
                        let joined: Vec<&str> = defaults.iter().map(|s| s.as_str()).collect();
                        p.insert("Default".into(), joined.join(",").into());
                    }
                    parameters.insert(name.clone(), Value::Object(p));
                    labels.push(name);
                }
            }
            interface_groups.push(json!({
                "Label": {"default": format!("Group {} (AMIs)", group.name)},
                "Parameters": labels,
            }));
        }
    }
    if !network.is_empty() {
        let mut labels = Vec::new();
        for (name, (ty, description)) in &network {
            parameters.insert(
                name.clone(),
                json!({"Type": ty, "Description": description}),
            );
            labels.push(name.clone());
        }
        interface_groups
            .push(json!({"Label": {"default": "Network and access"}, "Parameters": labels}));
    }

    // Resources in launch order: each group's instances, then its gate.
    let mut resources = Map::new();
    for wave in &waves {
        for &g in wave {
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
                let image = match ami_parameters {
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
                let timeout_minutes = app.gate_minutes(mode)[g];
                resources.insert(
                    Names::gate(&group.logical_stem),
                    json!({
                        "Type": "AWS::CloudFormation::WaitCondition",
                        "DependsOn": members,
                        "Properties": {
                            "Handle": {"Ref": Names::gate_handle(&group.logical_stem)},
                            "Count": group.servers.len(),
                            "Timeout": (timeout_minutes * 60).to_string(),
                        }
                    }),
                );
            }
        }
    }

    // Outputs: per server while they fit in the quota, else per group.
    let mut outputs = Map::new();
    if 2 * app.servers.len() < MAX_OUTPUTS {
        for server in &order {
            outputs.insert(
                Names::instance_output(server),
                json!({"Description": format!("Instance of server {}", server.id), "Value": {"Ref": server.logical_id}}),
            );
            outputs.insert(
                Names::private_ip_output(server),
                json!({
                    "Description": format!("Private IP of server {}", server.id),
                    "Value": {"Fn::GetAtt": [server.logical_id, "PrivateIp"]}
                }),
            );
        }
    } else {
        for wave in &waves {
            for &g in wave {
                let group = &app.groups[g];
                let ids: Vec<&str> = group
                    .servers
                    .iter()
                    .map(|&s| app.servers[s].id.as_str())
                    .collect();
                let refs: Vec<Value> = group
                    .servers
                    .iter()
                    .map(|&s| json!({"Ref": app.servers[s].logical_id}))
                    .collect();
                let ips: Vec<Value> = group
                    .servers
                    .iter()
                    .map(|&s| json!({"Fn::GetAtt": [app.servers[s].logical_id, "PrivateIp"]}))
                    .collect();
                outputs.insert(
                    format!("{}GroupInstanceIds", group.logical_stem),
                    json!({
                        "Description": format!("Instances of group {} ({})", group.name, ids.join(", ")),
                        "Value": {"Fn::Join": [",", refs]}
                    }),
                );
                outputs.insert(
                    format!("{}GroupPrivateIps", group.logical_stem),
                    json!({
                        "Description": format!("Private IPs of group {} ({})", group.name, ids.join(", ")),
                        "Value": {"Fn::Join": [",", ips]}
                    }),
                );
            }
        }
    }
    outputs.insert(
        "LaunchWaves".into(),
        json!({
            "Description": "Groups in launch order; groups in one wave launch together",
            "Value": launch_waves_text(app),
        }),
    );

    let wave_names: Vec<Vec<&str>> = waves
        .iter()
        .map(|w| w.iter().map(|&g| app.groups[g].name.as_str()).collect())
        .collect();
    let mut body = Map::new();
    body.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
    body.insert("Description".into(), description(app, opts).into());
    body.insert(
        "Metadata".into(),
        json!({
            "rehost": {
                "application": app.name,
                "mode": mode.as_str(),
                "healthGate": opts.health_gate,
                "portable": opts.portable,
                "launchWaves": wave_names,
                "generator": concat!("rehost ", env!("CARGO_PKG_VERSION")),
            },
            "AWS::CloudFormation::Interface": {"ParameterGroups": interface_groups},
        }),
    );
    let (resource_count, parameter_count, output_count) =
        (resources.len(), parameters.len(), outputs.len());
    body.insert("Parameters".into(), Value::Object(parameters));
    body.insert("Resources".into(), Value::Object(resources));
    body.insert("Outputs".into(), Value::Object(outputs));
    Template {
        body: Value::Object(body),
        resources: resource_count,
        parameters: parameter_count,
        outputs: output_count,
        ami_parameters,
    }
}

/// `directory | database | app, search | web`: waves in order, groups of one wave by commas.
pub fn launch_waves_text(app: &App) -> String {
    app.graph
        .waves()
        .iter()
        .map(|w| {
            w.iter()
                .map(|&g| app.groups[g].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn description(app: &App, opts: &RenderOptions) -> String {
    let suffix = format!("(rehost application {}, {} launch)", app.name, opts.mode);
    let text = match &app.description {
        Some(d) => format!("{d} {suffix}"),
        None => suffix,
    };
    if text.len() <= MAX_DESCRIPTION {
        return text;
    }
    let mut end = MAX_DESCRIPTION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

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

    let subnet = launch
        .subnet
        .as_ref()
        .map(|s| id_value(app, opts, s, "Subnet"));
    let groups = launch
        .security_groups
        .as_ref()
        .map(|s| id_value(app, opts, s, "SecurityGroups"));
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
    if let Some(key) = &launch.key_name {
        props.insert("KeyName".into(), id_value(app, opts, key, "KeyName"));
    }
    if let Some(profile) = &launch.iam_instance_profile {
        props.insert(
            "IamInstanceProfile".into(),
            id_value(app, opts, profile, "InstanceProfile"),
        );
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
        Rendered::Plain(text) => json!({"Fn::Base64": text}),
    };
    props.insert("UserData".into(), user_data);

    let name = match opts.mode {
        Mode::Cutover => server.id.clone(),
        Mode::Test => format!("{}-test", server.id),
    };
    let mut tags = vec![
        json!({"Key": "Name", "Value": name}),
        json!({"Key": "rehost:app", "Value": app.name}),
        json!({"Key": "rehost:group", "Value": group.name}),
        json!({"Key": "rehost:server", "Value": server.id}),
        json!({"Key": "rehost:mode", "Value": opts.mode.as_str()}),
    ];
    tags.extend(app.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})));
    props.insert("Tags".into(), Value::Array(tags));

    let mut resource = Map::new();
    resource.insert("Type".into(), "AWS::EC2::Instance".into());
    if !depends_on.is_empty() {
        resource.insert("DependsOn".into(), json!(depends_on));
    }
    resource.insert("Properties".into(), Value::Object(props));
    Value::Object(resource)
}

/// The checks only a rendered template can answer: logical-id collisions and CloudFormation's
/// quotas, for every variant a launch can produce (modes, gated or not, portable or not).
pub fn check(app: &App, diags: &mut Diagnostics) {
    check_names(app, diags);
    // Each quota is reported once, for the first variant that breaks it.
    let mut errors: BTreeMap<&str, String> = BTreeMap::new();
    let mut warnings: BTreeMap<&str, String> = BTreeMap::new();
    for mode in [Mode::Cutover, Mode::Test] {
        for portable in [false, true] {
            let opts = RenderOptions {
                mode,
                portable,
                health_gate: true,
                amis: BTreeMap::new(),
            };
            let t = render(app, &opts);
            let what = format!("{mode}{} template", if portable { " portable" } else { "" });
            if t.resources > MAX_RESOURCES {
                errors.entry("resources").or_insert_with(|| {
                    format!(
                        "the {what} needs {} resources ({} instances and 2 launch-gate resources per group); \
                         CloudFormation allows {MAX_RESOURCES}: split the application",
                        t.resources,
                        app.servers.len()
                    )
                });
            }
            if t.parameters > MAX_PARAMETERS {
                errors.entry("parameters").or_insert_with(|| {
                    format!(
                        "the {what} needs {} parameters; CloudFormation allows {MAX_PARAMETERS}: split the application",
                        t.parameters
                    )
                });
            }
            let size = t.to_json_compact().len();
            if size > MAX_S3_BODY {
                errors.entry("size").or_insert_with(|| {
                    format!(
                        "the {what} is {size} bytes; CloudFormation accepts at most {MAX_S3_BODY} through S3: \
                         shorten configure scripts or split the application"
                    )
                });
            } else if size > MAX_INLINE_BODY {
                warnings.entry("size").or_insert_with(|| {
                    format!(
                        "the {what} is {size} bytes, over the {MAX_INLINE_BODY} bytes CloudFormation takes inline: \
                         `rehost launch` uploads it to its S3 bucket"
                    )
                });
            }
            if t.ami_parameters == AmiParameters::PerGroup {
                warnings.entry("amis").or_insert_with(|| {
                    format!(
                        "{} servers do not fit one AMI parameter each within CloudFormation's {MAX_PARAMETERS} \
                         parameters: AMIs are passed as one list parameter per group",
                        app.servers.len()
                    )
                });
            }
        }
    }
    for message in errors.into_values() {
        diags.error(app.servers_pos, message);
    }
    for message in warnings.into_values() {
        diags.warning(app.servers_pos, message);
    }
}

/// Every logical id and parameter name the template can use must be unique (CloudFormation puts
/// parameters and resources in one namespace).
fn check_names(app: &App, diags: &mut Diagnostics) {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: String, owner: String, pos, diags: &mut Diagnostics| {
        if let Some(other) = taken.get(&name) {
            if *other != owner {
                diags.error(
                    pos,
                    format!(
                        "logical id `{name}` of {owner} collides with {other}; set a distinct `logicalId` on the server"
                    ),
                );
            }
        } else {
            taken.insert(name, owner);
        }
    };
    for group in &app.groups {
        let owner = format!("group `{}`", group.name);
        claim(
            Names::gate(&group.logical_stem),
            owner.clone(),
            group.pos,
            diags,
        );
        claim(
            Names::gate_handle(&group.logical_stem),
            owner.clone(),
            group.pos,
            diags,
        );
        claim(
            Names::group_image_parameter(&group.logical_stem),
            owner,
            group.pos,
            diags,
        );
    }
    for server in &app.servers {
        let owner = format!("server `{}`", server.id);
        claim(
            server.logical_id.clone(),
            owner.clone(),
            server.logical_id_pos,
            diags,
        );
        claim(
            Names::image_parameter(server),
            owner,
            server.logical_id_pos,
            diags,
        );
    }
    let mut origins: BTreeSet<(Origin, &str)> = BTreeSet::new();
    for server in &app.servers {
        for mode in [Mode::Cutover, Mode::Test] {
            let l = server.launch(mode);
            for (origin, field) in [
                (l.subnet.as_ref().map(|s| s.origin), "Subnet"),
                (
                    l.security_groups.as_ref().map(|s| s.origin),
                    "SecurityGroups",
                ),
                (l.key_name.as_ref().map(|s| s.origin), "KeyName"),
                (
                    l.iam_instance_profile.as_ref().map(|s| s.origin),
                    "InstanceProfile",
                ),
            ] {
                if let Some(origin) = origin {
                    origins.insert((origin, field));
                }
            }
        }
    }
    for (origin, field) in origins {
        let name = Names::network_parameter(app, origin, field);
        let (pos, block) = match origin.level {
            Level::Server(s) => (
                app.servers[s].logical_id_pos,
                format!("server `{}`", app.servers[s].id),
            ),
            Level::Group(g) => (app.groups[g].pos, format!("group `{}`", app.groups[g].name)),
            Level::Defaults => (app.servers_pos, "defaults".to_string()),
        };
        let test = if origin.test { " test" } else { "" };
        claim(
            name,
            format!("the portable {field} parameter of {block}{test}"),
            pos,
            diags,
        );
    }
}
