//! Server transitions: build (volumes, ports, root disk, conversion host), stop, start,
//! reboot, delete.

use std::sync::Arc;
use std::time::Duration;

use crate::compute::{ServerFault, HOST};
use crate::faults::ResourceKind;
use crate::files;
use crate::network;
use crate::sim::Sim;
use crate::util;

use super::conversion_hosts::start_host;
use super::{blocking, spawn_volume, transition, with_state, Outcome};

pub(super) fn set_server_error(sim: &Sim, cloud: &str, id: &str, message: &str) {
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(id))
        {
            if s.task_state.as_deref() == Some("deleting") {
                return;
            }
            s.vm_state = "error".into();
            s.task_state = None;
            s.power_state = 0;
            s.fault = Some(ServerFault {
                code: 500,
                message: message.to_string(),
                created: util::now(),
            });
            s.updated = util::now();
        }
    });
}

/// Task state, vm_state and the root image of a server.
fn server_phase(sim: &Sim, cloud: &str, id: &str) -> Option<(String, Option<String>)> {
    let st = sim.lock();
    let s = st.clouds.get(cloud)?.compute.servers.get(id)?;
    Some((s.vm_state.clone(), s.task_state.clone()))
}

pub(super) async fn drive_server(sim: Arc<Sim>, cloud: String, id: String) {
    let Some((vm, task)) = server_phase(&sim, &cloud, &id) else {
        return;
    };
    match (vm.as_str(), task.as_deref()) {
        (_, Some("deleting")) => delete_server(&sim, &cloud, &id).await,
        ("building", _) => build_server(&sim, &cloud, &id).await,
        (_, Some("powering-off")) => power(&sim, &cloud, &id, "powering-off").await,
        (_, Some("powering-on")) | (_, Some("rebooting")) | (_, Some("rebooting_hard")) => {
            power(&sim, &cloud, &id, task.as_deref().unwrap_or("")).await
        }
        _ => {}
    }
}

fn still(sim: &Sim, cloud: &str, id: &str, vm: &str, task: Option<&str>) -> bool {
    server_phase(sim, cloud, id).is_some_and(|(v, t)| v == vm && t.as_deref() == task)
}

async fn build_server(sim: &Arc<Sim>, cloud: &str, id: &str) {
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(id))
        {
            if s.task_state.as_deref() == Some("scheduling") {
                s.task_state = Some("block_device_mapping".into());
            }
        }
    });
    // Wait for the volumes created for this server.
    let mut waited = 0u64;
    loop {
        let (pending, failed): (Vec<String>, Vec<(String, String)>) = {
            let st = sim.lock();
            let Some(c) = st.clouds.get(cloud) else {
                return;
            };
            let Some(s) = c.compute.servers.get(id) else {
                return;
            };
            if s.vm_state != "building" || s.task_state.as_deref() == Some("deleting") {
                return;
            }
            let mut pending = Vec::new();
            let mut failed = Vec::new();
            for b in s.bdms.iter().filter(|b| b.created_for_boot) {
                match c
                    .volume
                    .volumes
                    .get(&b.volume_id)
                    .map(|v| v.status.as_str())
                {
                    Some("creating") | Some("downloading") => pending.push(b.volume_id.clone()),
                    Some("available") | Some("attaching") | Some("in-use") => {}
                    Some(other) => failed.push((b.volume_id.clone(), other.to_string())),
                    None => failed.push((b.volume_id.clone(), "deleted".into())),
                }
            }
            (pending, failed)
        };
        if let Some((vid, status)) = failed.first() {
            let msg = format!("Build of instance {id} aborted: Volume {vid} did not finish being created even after we waited {} seconds or {} attempts. And its status is {status}.", waited / 1000, waited / 50 + 1);
            set_server_error(sim, cloud, id, &msg);
            return;
        }
        if pending.is_empty() {
            break;
        }
        if sim.stopping() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 50;
    }
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(id))
        {
            if s.vm_state == "building" && s.task_state.as_deref() != Some("deleting") {
                s.task_state = Some("spawning".into());
            }
        }
    });
    // The root disk of an image-booted server: a sparse copy of the image.
    let image = {
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.compute.servers.get(id))
            .and_then(|s| s.image_id.clone())
    };
    if let Some(image_id) = image {
        let src = sim.data_path(cloud, "images", &image_id);
        let dst = sim.data_path(cloud, "disks", id);
        if let Err(e) = blocking(move || files::sparse_copy(&src, &dst, 0)).await {
            set_server_error(
                sim,
                cloud,
                id,
                &format!("Build of instance {id} aborted: Image {image_id} could not be read: {e}"),
            );
            return;
        }
    }
    match transition(sim, ResourceKind::Server, cloud, id).await {
        Outcome::Abort => return,
        Outcome::Fail(m) => {
            set_server_error(sim, cloud, id, &m);
            return;
        }
        Outcome::Proceed => {}
    }
    if !still(sim, cloud, id, "building", Some("spawning")) {
        return;
    }
    // Attach the boot volumes and bind the ports.
    with_state(sim, |st| {
        let Some(c) = st.clouds.get_mut(cloud) else {
            return;
        };
        let Some(s) = c.compute.servers.get(id).cloned() else {
            return;
        };
        for b in &s.bdms {
            if let Some(v) = c.volume.volumes.get_mut(&b.volume_id) {
                v.status = "in-use".into();
                v.pending_attach = None;
                v.attachments = vec![crate::volume::VolAttachment {
                    id: b.attachment_id.clone(),
                    server_id: id.to_string(),
                    device: b.device.clone(),
                    host_name: HOST.into(),
                    attached_at: util::now(),
                }];
                v.updated = util::now();
            }
        }
        network::bind_server_ports(&mut c.network, id, HOST);
    });
    if let Err(e) = start_host(sim, cloud, id).await {
        set_server_error(
            sim,
            cloud,
            id,
            &format!("Build of instance {id} aborted: {e}"),
        );
        return;
    }
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(id))
        {
            if s.vm_state == "building" && s.task_state.as_deref() == Some("spawning") {
                s.vm_state = "active".into();
                s.task_state = None;
                s.power_state = 1;
                s.launched_at = Some(util::now());
                s.updated = util::now();
            }
        }
    });
}

async fn power(sim: &Arc<Sim>, cloud: &str, id: &str, task: &str) {
    match transition(sim, ResourceKind::Server, cloud, id).await {
        Outcome::Abort => return,
        Outcome::Fail(m) => {
            set_server_error(sim, cloud, id, &m);
            return;
        }
        Outcome::Proceed => {}
    }
    let Some((_, t)) = server_phase(sim, cloud, id) else {
        return;
    };
    if t.as_deref() != Some(task) {
        return;
    }
    let running = task != "powering-off";
    let is_host = {
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.compute.servers.get(id))
            .is_some_and(|s| s.is_host)
    };
    if is_host {
        if task != "powering-on" {
            // A reboot or a stop ends every session, as it does on a real machine.
            sim.hosts.stop(id).await;
        }
        if running {
            if let Err(e) = start_host(sim, cloud, id).await {
                set_server_error(sim, cloud, id, &e);
                return;
            }
        }
    }
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(id))
        {
            if s.task_state.as_deref() == Some(task) {
                s.vm_state = if running {
                    "active".into()
                } else {
                    "stopped".into()
                };
                s.power_state = if running { 1 } else { 4 };
                s.task_state = None;
                s.updated = util::now();
            }
        }
    });
}

async fn delete_server(sim: &Arc<Sim>, cloud: &str, id: &str) {
    if transition(sim, ResourceKind::Server, cloud, id).await == Outcome::Abort {
        return;
    }
    // A failing delete is not simulated: Nova's delete succeeds locally in the end.
    // Volumes still being created for the server must settle before they can be deleted.
    for _ in 0..6000 {
        let busy = {
            let st = sim.lock();
            let Some(c) = st.clouds.get(cloud) else {
                return;
            };
            let Some(s) = c.compute.servers.get(id) else {
                return;
            };
            s.bdms.iter().any(|b| {
                c.volume
                    .volumes
                    .get(&b.volume_id)
                    .is_some_and(|v| v.status == "creating" || v.status == "downloading")
            })
        };
        if !busy || sim.stopping() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let is_host = {
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.compute.servers.get(id))
            .is_some_and(|s| s.is_host)
    };
    if is_host {
        sim.hosts.stop(id).await;
        let dir = sim.host_dir(id);
        let _ = blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await;
    }
    let to_delete = with_state(sim, |st| {
        let Some(c) = st.clouds.get_mut(cloud) else {
            return vec![];
        };
        let Some(s) = c.compute.servers.get(id).cloned() else {
            return vec![];
        };
        let mut to_delete = Vec::new();
        for v in c.volume.volumes.values_mut() {
            let mine = v.attachments.iter().any(|a| a.server_id == id)
                || v.pending_attach.as_ref().is_some_and(|a| a.server_id == id)
                || s.bdms.iter().any(|b| b.volume_id == v.id);
            if !mine {
                continue;
            }
            v.attachments.retain(|a| a.server_id != id);
            v.pending_attach = None;
            v.pending_detach = None;
            let dot = s
                .bdms
                .iter()
                .any(|b| b.volume_id == v.id && b.delete_on_termination);
            if dot {
                v.status = "deleting".into();
                to_delete.push(v.id.clone());
            } else if v.attachments.is_empty()
                && !["error", "deleting", "creating", "downloading"].contains(&v.status.as_str())
            {
                v.status = "available".into();
            }
            v.updated = util::now();
        }
        network::release_server_ports(&mut c.network, id, &s.created_ports);
        if let Some(s) = c.compute.servers.get_mut(id) {
            s.vm_state = "deleted".into();
            s.task_state = None;
            s.power_state = 0;
            s.terminated_at = Some(util::now());
            s.updated = util::now();
        }
        to_delete
    });
    for v in to_delete {
        spawn_volume(sim, cloud, &v);
    }
    files::remove(&sim.data_path(cloud, "disks", id));
    // DELETED is visible for a moment, then the server is gone.
    tokio::time::sleep(sim.transition()).await;
    with_state(sim, |st| {
        if let Some(c) = st.clouds.get_mut(cloud) {
            c.compute.servers.remove(id);
        }
    });
}
