//! `osm.workloads.os_workloads_info`: list the servers of the source project that a filter selects.

use crate::{cloud_options, connect, unused_timeout};
use osm_module::{run, Opt, Outcome, Spec, Type};
use osm_workload::export::list_servers;
use osm_workload::Filter;

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_workloads_info")
        .opts(cloud_options())
        .opt(unused_timeout())
        .opt(Opt::new("filters", Type::Raw).aliases(&["os_migrate_workloads_filter"]));
    run(&spec, |ctx| {
        let filter = Filter::from_value(&ctx.params()["filters"])?;
        let conn = connect(ctx.params())?;
        let servers = list_servers(&conn, &filter)?;
        let workloads: Vec<_> = servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id, "name": s.name, "status": s.status,
                    "flavor": s.flavor_name_or_id(),
                    "boots_from_volume": s.is_volume_backed(),
                    "volume_ids": s.volumes_attached.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
                    "addresses": s.addresses,
                })
            })
            .collect();
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        Ok(Outcome::changed(false)
            .with("names", &names)
            .with("workloads", workloads))
    })
}
