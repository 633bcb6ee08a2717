/*!
Pieces shared by the module binaries of the `osm.workloads` collection (one `src/bin/<module>.rs` per
Ansible module; each `main` parses options, calls the `osm-workload` library and returns its result):
the OpenStack connection options every cloud module takes, as openstack.cloud's modules do.
*/
#![deny(missing_docs)]

use osm_module::{Failure, Opt, Type};
use osm_openstack::{CloudOptions, Connection};
use serde_json::{Map, Value};

/// The connection options of a module that talks to one cloud, named as openstack.cloud's (the
/// `osm.workloads.openstack` doc fragment documents them).
pub fn cloud_options() -> Vec<Opt> {
    vec![
        Opt::new("cloud", Type::Raw),
        Opt::new("auth", Type::Dict),
        Opt::new("auth_type", Type::Str),
        Opt::new("region_name", Type::Str),
        Opt::new("interface", Type::Str).choices(&["admin", "internal", "public"]).aliases(&["endpoint_type"]).default("public"),
        Opt::new("validate_certs", Type::Bool).aliases(&["verify"]),
        Opt::new("ca_cert", Type::Path).aliases(&["cacert"]),
        Opt::new("client_cert", Type::Path).aliases(&["cert"]),
        Opt::new("client_key", Type::Path).aliases(&["key"]),
        Opt::new("api_timeout", Type::Int),
    ]
}

const CLOUD_KEYS: &[&str] =
    &["cloud", "auth", "auth_type", "region_name", "interface", "validate_certs", "ca_cert", "client_cert", "client_key", "api_timeout"];

/// Connects with the connection options among `params`.
pub fn connect(params: &Map<String, Value>) -> Result<Connection, Failure> {
    let mut m = Map::new();
    for k in CLOUD_KEYS {
        if let Some(v) = params.get(*k).filter(|v| !v.is_null()) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    connect_value(&Value::Object(m), "cloud")
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
    Ok(Connection::from_options(&opts)?)
}
