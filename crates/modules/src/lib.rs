/*!
The Ansible modules of the `osm.workloads` collection: one file per module under `modules/`, whose
`main` parses options, calls the `osm-workload` library and returns its result; and the pieces they
share (the OpenStack connection options every cloud module takes, as openstack.cloud's modules do,
and the options of the import steps). The `osm-modules` binary runs the module named by `argv[0]`.
*/
#![deny(missing_docs)]

mod modules;
mod sdk_log;

pub use crate::modules::MODULES;

use osm_module::{Failure, Opt, Type};
use osm_openstack::{CloudOptions, Connection};
use serde_json::{Map, Value};

/// The connection options of a module that talks to one cloud, named as openstack.cloud's (the
/// `osm.workloads.openstack` doc fragment documents them), with its common `wait`, `sdk_log_path`
/// and `sdk_log_level`. (Its `timeout` is each module's own: the defaults differ.)
pub fn cloud_options() -> Vec<Opt> {
    vec![
        Opt::new("cloud", Type::Raw).credentials(),
        Opt::new("auth", Type::Dict).credentials(),
        Opt::new("auth_type", Type::Str),
        Opt::new("region_name", Type::Str),
        Opt::new("interface", Type::Str)
            .choices(&["admin", "internal", "public"])
            .aliases(&["endpoint_type"])
            .default("public"),
        Opt::new("validate_certs", Type::Bool).aliases(&["verify"]),
        Opt::new("ca_cert", Type::Path).aliases(&["cacert"]),
        Opt::new("client_cert", Type::Path).aliases(&["cert"]),
        Opt::new("client_key", Type::Path).aliases(&["key"]),
        Opt::new("api_timeout", Type::Int),
        Opt::new("wait", Type::Bool).default(true),
        Opt::new("sdk_log_path", Type::Path),
        Opt::new("sdk_log_level", Type::Str)
            .choices(&["INFO", "DEBUG"])
            .default("INFO"),
    ]
}

/// `timeout` of a module that waits for no cloud resource: accepted, as openstack.cloud's info
/// modules accept it, so that `module_defaults` of the whole group can set it; it has no effect.
pub fn unused_timeout() -> Opt {
    Opt::new("timeout", Type::Int).default(180)
}

/// Refuses `wait: false` in a module that cannot return before its resources settle, saying why.
pub fn must_wait(params: &Map<String, Value>, why: &str) -> Result<(), Failure> {
    if params.get("wait").and_then(Value::as_bool) == Some(false) {
        return Err(Failure::new(format!(
            "option 'wait': false is not supported here: {why}"
        )));
    }
    Ok(())
}

const CLOUD_KEYS: &[&str] = &[
    "cloud",
    "auth",
    "auth_type",
    "region_name",
    "interface",
    "validate_certs",
    "ca_cert",
    "client_cert",
    "client_key",
    "api_timeout",
    "sdk_log_path",
    "sdk_log_level",
];

/// Connects with the connection options among `params`.
///
/// `cloud` may also be a connection mapping as the roles build it (`{cloud: NAME, auth: ..., ...}`,
/// recognised by its `cloud` key): its keys are used, and the module's own options override them.
pub fn connect(params: &Map<String, Value>) -> Result<Connection, Failure> {
    connect_value(&Value::Object(connection_options(params)), "cloud")
}

/// The connection options of `params`, with a connection mapping given as `cloud` unpacked.
fn connection_options(params: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    let mut unpacked = false;
    if let Some(Value::Object(inner)) = params.get("cloud") {
        if inner.contains_key("cloud") || inner.keys().all(|k| CLOUD_KEYS.contains(&k.as_str())) {
            m.extend(
                inner
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            unpacked = true;
        }
    }
    for k in CLOUD_KEYS {
        if *k == "cloud" && unpacked {
            continue;
        }
        if let Some(v) = params.get(*k).filter(|v| !v.is_null()) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    m
}

/// Connects with a cloud given as one value: a clouds.yaml cloud name, or a mapping of the connection
/// options (`cloud`, `auth`, `region_name`, ...). `option` names the module option, for errors.
pub fn connect_value(value: &Value, option: &str) -> Result<Connection, Failure> {
    let opts: CloudOptions = match value {
        Value::String(name) => CloudOptions { cloud: Some(osm_openstack::CloudRef::Name(name.clone())), ..CloudOptions::default() },
        Value::Object(_) => serde_json::from_value(value.clone())
            .map_err(|e| Failure::new(format!("option '{option}': not a usable cloud connection: {e}")))?,
        other => {
            return Err(Failure::new(format!(
                "option '{option}' must be a clouds.yaml cloud name or a mapping of connection options, got {}",
                if other.is_null() { "nothing".to_string() } else { other.to_string() }
            )))
        }
    };
    let mut conn = Connection::from_options(&opts)?;
    if let Value::Object(m) = value {
        if let Some(log) = sdk_log::request_log(m)? {
            conn.set_request_log(log);
        }
    }
    Ok(conn)
}

/// Which parts of the shared import-step options a module takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepParts {
    /// `src_cloud`.
    pub src: bool,
    /// `dst_cloud`.
    pub dst: bool,
    /// The conversion hosts and how to log in to them.
    pub hosts: bool,
    /// The conversion hosts may be left out: a cleanup of a workload that copies no data (a run where
    /// no workload copies data has none).
    pub hosts_optional: bool,
}

/// The options of an import step module: the workload, the data directory, the clouds and the
/// conversion hosts it needs (documented in the `osm.workloads.import_step` doc fragment).
pub fn step_spec(module: &'static str, parts: StepParts) -> osm_module::Spec {
    let mut spec = osm_module::Spec::new(module)
        .opt(Opt::new("data", Type::Dict).required())
        .opt(
            Opt::new("data_dir", Type::Path)
                .required()
                .aliases(&["os_migrate_data_dir"]),
        )
        .opt(Opt::new("timeout", Type::Int).default(1800))
        .opt(Opt::new("resume", Type::Bool).default(true))
        .opt(
            Opt::new("phase", Type::Str)
                .default("cold")
                .choices(&["cold", "precopy", "cutover"]),
        );
    if parts.src {
        spec = spec.opt(Opt::new("src_cloud", Type::Raw).required().credentials());
    }
    if parts.dst {
        spec = spec.opt(Opt::new("dst_cloud", Type::Raw).required().credentials());
    }
    if parts.hosts {
        spec = spec
            .opt(host_opt("src_conversion_host", parts.hosts_optional))
            .opt(host_opt("dst_conversion_host", parts.hosts_optional))
            .opt(Opt::new("ssh_user", Type::Str).default("cloud-user"))
            .opt(Opt::new("ssh_key", Type::Path).required())
            .opt(Opt::new("ssh_port", Type::Int).default(22))
            .opt(ssh_silence_option())
            .opt(Opt::new("known_hosts", Type::Path))
            .opt(Opt::new("agent_path", Type::Path).required());
    }
    spec
}

/// `ssh_silence_timeout`: how long a conversion host may stay silent during one SSH operation.
pub fn ssh_silence_option() -> Opt {
    Opt::new("ssh_silence_timeout", Type::Int).default(osm_ssh::DEFAULT_SILENCE.as_secs())
}

/// The shortest `ssh_silence_timeout`: a sync reports progress every 5 seconds, so a shorter bound
/// would end healthy copies.
const MIN_SILENCE_S: u64 = 10;

/// The value of `ssh_silence_timeout`.
pub fn ssh_silence(params: &Map<String, Value>) -> Result<std::time::Duration, Failure> {
    let secs = params
        .get("ssh_silence_timeout")
        .and_then(Value::as_i64)
        .unwrap_or(osm_ssh::DEFAULT_SILENCE.as_secs() as i64);
    match u64::try_from(secs) {
        Ok(s) if s >= MIN_SILENCE_S => Ok(std::time::Duration::from_secs(s)),
        _ => Err(Failure::new(format!(
            "option 'ssh_silence_timeout': {secs} is too short; give at least {MIN_SILENCE_S} seconds (a copy reports progress every 5 seconds); nothing was changed"
        ))),
    }
}

fn host_opt(name: &'static str, optional: bool) -> Opt {
    let o = Opt::new(name, Type::Dict);
    if optional {
        o
    } else {
        o.required()
    }
}

/// The workload given as `data`.
pub fn workload(params: &Map<String, Value>) -> Result<osm_workload::Server, Failure> {
    let data = params.get("data").cloned().unwrap_or(Value::Null);
    let name = data
        .pointer("/params/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    serde_json::from_value(data).map_err(|e| {
        Failure::new(format!(
            "option 'data': not a workload (server '{name}'): {e}"
        ))
    })
}

/// The shared step settings.
pub fn settings(params: &Map<String, Value>) -> osm_workload::import::Settings {
    osm_workload::import::Settings {
        data_dir: params
            .get("data_dir")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .into(),
        timeout: std::time::Duration::from_secs(
            params
                .get("timeout")
                .and_then(Value::as_u64)
                .unwrap_or(1800)
                .max(1),
        ),
        resume: params
            .get("resume")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        phase: match params.get("phase").and_then(Value::as_str) {
            Some("precopy") => osm_workload::Phase::Precopy,
            Some("cutover") => osm_workload::Phase::Cutover,
            _ => osm_workload::Phase::Cold,
        },
    }
}

/// The conversion hosts, or `None` when neither is given: a run where no selected workload copies
/// data deploys none (upstream's #602), and its cleanups have nothing on them to undo.
pub fn optional_hosts(
    params: &Map<String, Value>,
) -> Result<Option<osm_workload::import::Hosts>, Failure> {
    let given = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    };
    if !given("src_conversion_host") && !given("dst_conversion_host") {
        return Ok(None);
    }
    hosts(params).map(Some)
}

/// The conversion hosts and the login, from the step options.
pub fn hosts(params: &Map<String, Value>) -> Result<osm_workload::import::Hosts, Failure> {
    let port = params
        .get("ssh_port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(22);
    let host = |key: &str| -> Result<osm_workload::hosts::HostSpec, Failure> {
        let mut v = params.get(key).cloned().unwrap_or(Value::Null);
        if v.as_object().is_none_or(|m| m.is_empty()) {
            return Err(Failure::new(format!(
                "option '{key}' is required: the workload copies data through the conversion hosts (its _migration_params.data_copy is true)"
            )));
        }
        if let Value::Object(m) = &mut v {
            m.entry("ssh_port").or_insert(Value::from(port));
        }
        serde_json::from_value(v).map_err(|e| {
            Failure::new(format!("option '{key}': a conversion host needs at least 'address' (and 'id', 'name'), as os_conversion_host_info returns: {e}"))
        })
    };
    let data_dir = settings(params).data_dir;
    let known_hosts = params
        .get("known_hosts")
        .and_then(Value::as_str)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| data_dir.join("known_hosts"));
    let timeout = settings(params).timeout;
    Ok(osm_workload::import::Hosts {
        src: host("src_conversion_host")?,
        dst: host("dst_conversion_host")?,
        login: osm_workload::hosts::Login {
            user: params
                .get("ssh_user")
                .and_then(Value::as_str)
                .unwrap_or("cloud-user")
                .to_string(),
            key: params
                .get("ssh_key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            known_hosts,
            policy: osm_ssh::HostKeyPolicy::Verify,
            timeout: timeout.min(std::time::Duration::from_secs(300)),
            silence: ssh_silence(params)?,
        },
        agent: params
            .get("agent_path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
    })
}

/// Opens a step's job; prelim must have run.
pub fn job(params: &Map<String, Value>, step: &str) -> Result<osm_workload::import::Job, Failure> {
    Ok(osm_workload::import::Job::open(
        workload(params)?,
        settings(params),
        step,
    )?)
}

#[cfg(test)]
mod tests {
    use super::connection_options;
    use serde_json::{json, Map, Value};

    fn opts(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else {
            unreachable!("a test literal is an object")
        };
        connection_options(&m)
    }

    #[test]
    fn a_role_connection_without_a_cloud_name_is_unpacked() {
        let auth = json!({"auth_url": "https://keystone:5000/v3", "application_credential_id": "x", "application_credential_secret": "y"});
        let m = opts(
            json!({"cloud": {"auth": auth, "auth_type": "v3applicationcredential", "interface": "public"}}),
        );
        assert!(!m.contains_key("cloud"), "{m:?}");
        assert_eq!(m["auth"], auth);
        assert_eq!(m["auth_type"], "v3applicationcredential");
    }

    #[test]
    fn a_role_connection_with_a_cloud_name_keeps_the_name_and_module_options_win() {
        let m = opts(
            json!({"cloud": {"cloud": "src", "region_name": "r1", "validate_certs": null}, "region_name": "r2"}),
        );
        assert_eq!(m["cloud"], "src");
        assert_eq!(m["region_name"], "r2");
        assert!(!m.contains_key("validate_certs"));
    }

    #[test]
    fn a_plain_cloud_name_passes_through() {
        let m = opts(json!({"cloud": "dst", "api_timeout": 30}));
        assert_eq!(m["cloud"], "dst");
        assert_eq!(m["api_timeout"], 30);
    }
}
