//! `osm.workloads.os_conversion_host_info`: find a conversion host and the address to reach it.

use osm_module::{run, Failure, Opt, Outcome, Spec, Type};
use osm_modules::{cloud_options, connect};

fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_conversion_host_info")
        .opts(cloud_options())
        .opt(Opt::new("server", Type::Str).required().aliases(&["name", "id", "server_id"]))
        .opt(Opt::new("ssh_port", Type::Int).default(22));
    run(&spec, |ctx| {
        let p = ctx.params().clone();
        let name = p["server"].as_str().unwrap_or_default().to_string();
        let conn = connect(&p)?;
        let srv = conn
            .compute()
            .find_server(&name)?
            .ok_or_else(|| Failure::new(format!("conversion host {name:?} not found; deploy it with the deploy_conversion_hosts playbook")))?;
        if srv.status != "ACTIVE" {
            return Err(Failure::new(format!("conversion host '{}' ({}) is {}, not ACTIVE", srv.name, srv.id, srv.status)));
        }
        let floating = srv
            .addresses
            .values()
            .flatten()
            .find(|a| a.ip_type.as_deref() == Some("floating"))
            .map(|a| a.addr.clone());
        let address = srv
            .access_ipv4
            .clone()
            .filter(|a| !a.is_empty())
            .or(floating)
            .ok_or_else(|| Failure::new(format!("conversion host '{}' ({}) has no access IPv4 and no floating IP to reach it by", srv.name, srv.id)))?;
        let host = serde_json::json!({
            "id": srv.id, "name": srv.name, "status": srv.status, "address": address,
            "ssh_port": p["ssh_port"].as_u64().unwrap_or(22),
        });
        Ok(Outcome::changed(false).with("openstack_conversion_host", host).msg(format!("conversion host '{}' at {address}", srv.name)))
    })
}
