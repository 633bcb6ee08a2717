//! Conversion hosts: the sshd each simulated conversion host runs, started when the server
//! becomes ACTIVE and refreshed when its ports or volumes change.

use std::sync::Arc;

use crate::hosts::{self, HostSpec};
use crate::network;
use crate::sim::Sim;

/// The sshd settings of a host server, with the volumes to link (id, file), or None if the
/// server is not a running host.
/// A volume attached to a host: its id, the host's disk bus and the file behind it.
type HostLink = (String, Option<String>, std::path::PathBuf);

fn host_spec(sim: &Sim, cloud: &str, id: &str) -> Option<(HostSpec, Vec<HostLink>)> {
    let st = sim.lock();
    let c = st.clouds.get(cloud)?;
    let s = c.compute.servers.get(id)?;
    if !s.is_host {
        return None;
    }
    let mut addrs: Vec<std::net::IpAddr> = s
        .host_addr
        .as_ref()
        .and_then(|a| a.parse().ok())
        .into_iter()
        .collect();
    for a in network::loopback_fips_of_server(&c.network, id) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let links = s
        .bdms
        .iter()
        .filter(|b| {
            c.volume.volumes.get(&b.volume_id).is_some_and(|v| {
                v.status == "in-use" && v.attachments.iter().any(|a| a.server_id == id)
            })
        })
        .map(|b| {
            (
                b.volume_id.clone(),
                s.disk_bus.clone(),
                sim.data_path(cloud, "volumes", &b.volume_id),
            )
        })
        .collect();
    Some((
        HostSpec {
            server_id: id.to_string(),
            dir: sim.host_dir(id),
            addrs,
            port: sim.cfg.ssh_port,
            authorized_keys: s
                .key_data
                .clone()
                .map(|k| format!("{k}\n"))
                .unwrap_or_default(),
        },
        links,
    ))
}

/// Starts (or restarts) a host's sshd after laying out its directory and device links.
pub(super) async fn start_host(sim: &Arc<Sim>, cloud: &str, id: &str) -> Result<(), String> {
    let Some((spec, links)) = host_spec(sim, cloud, id) else {
        return Ok(());
    };
    if spec.addrs.is_empty() {
        return Err("the conversion host has no address".into());
    }
    hosts::prepare_dir(&spec.dir, &spec.authorized_keys).map_err(|e| e.to_string())?;
    for (vid, bus, file) in links {
        hosts::link_volume(&spec.dir, &vid, bus.as_deref(), &file)
            .map_err(|e| format!("linking volume {vid}: {e}"))?;
    }
    sim.hosts.start(spec).await.map_err(|e| e.to_string())
}

/// Re-reads a host's addresses (floating IPs changed) and restarts its sshd if it runs.
pub async fn refresh_host(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let running = {
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.compute.servers.get(id))
            .is_some_and(|s| {
                s.is_host && s.vm_state == "active" && s.task_state.as_deref() != Some("deleting")
            })
    };
    if running {
        if let Err(e) = start_host(sim, cloud, id).await {
            eprintln!("osm-cloudsim: refreshing conversion host {id}: {e}");
        }
    }
}
