//! Background transitions: every status that takes time (server BUILD, stop, start, reboot,
//! delete, createImage; volume creating/downloading, attaching, detaching, extending, deleting;
//! snapshot creating/deleting) is completed here by a task spawned when the request recorded it.
//!
//! Each driver looks at the resource's current status and moves it forward, so the same
//! drivers resume whatever was in flight when the simulator restarts ([`resume_all`]). Before a
//! transition completes, the fault registry is asked whether it is slow, stuck or fails. File
//! copies run on blocking threads without the state lock.

use std::sync::Arc;
use std::time::Duration;

use crate::compute::{ServerFault, HOST};
use crate::faults::{ResourceKind, TransitionFault};
use crate::files::{self, GIB};
use crate::hosts::{self, HostSpec};
use crate::image::ImagePending;
use crate::network;
use crate::sim::Sim;
use crate::state::State;
use crate::util;
use crate::volume::VolumeSource;

/// How a transition ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Apply the change.
    Proceed,
    /// An error fault fired: go to the error status with this message.
    Fail(String),
    /// The resource disappeared or the simulator is stopping: do nothing.
    Abort,
}

/// Name and current statuses (status and, for servers, task state) of a resource.
fn current(sim: &Sim, kind: ResourceKind, cloud: &str, id: &str) -> Option<(String, Vec<String>)> {
    let st = sim.lock();
    let c = st.clouds.get(cloud)?;
    match kind {
        ResourceKind::Server => c.compute.servers.get(id).map(|s| {
            // A delete is its own transition: a fault holding the status the server had (BUILD,
            // say) must not hold its deletion, as Nova deletes a server stuck in BUILD.
            if s.task_state.as_deref() == Some("deleting") {
                return (s.name.clone(), vec!["deleting".to_string()]);
            }
            let mut v = vec![s.status().to_string()];
            if let Some(t) = &s.task_state {
                v.push(t.clone());
            }
            (s.name.clone(), v)
        }),
        ResourceKind::Volume => c
            .volume
            .volumes
            .get(id)
            .map(|v| (v.name.clone().unwrap_or_default(), vec![v.status.clone()])),
        ResourceKind::Snapshot => c
            .volume
            .snapshots
            .get(id)
            .map(|s| (s.name.clone().unwrap_or_default(), vec![s.status.clone()])),
        ResourceKind::Image => c
            .image
            .images
            .get(id)
            .map(|i| (i.name.clone().unwrap_or_default(), vec![i.status.clone()])),
    }
}

/// Waits out one transition: the configured delay (or a slow fault's), then as long as a stuck
/// fault holds it.
async fn transition(sim: &Arc<Sim>, kind: ResourceKind, cloud: &str, id: &str) -> Outcome {
    let Some((name, statuses)) = current(sim, kind, cloud, id) else {
        return Outcome::Abort;
    };
    let refs: Vec<&str> = statuses.iter().map(String::as_str).collect();
    let delay = sim
        .faults
        .delay(sim.transition(), kind, cloud, id, &name, &refs);
    tokio::time::sleep(delay).await;
    loop {
        if sim.stopping() {
            return Outcome::Abort;
        }
        let Some((name, statuses)) = current(sim, kind, cloud, id) else {
            return Outcome::Abort;
        };
        let refs: Vec<&str> = statuses.iter().map(String::as_str).collect();
        match sim.faults.check(kind, cloud, id, &name, &refs) {
            TransitionFault::None => return Outcome::Proceed,
            TransitionFault::Error(m) => return Outcome::Fail(m),
            TransitionFault::Stuck => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs a blocking file operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

fn with_state<R>(sim: &Sim, f: impl FnOnce(&mut State) -> R) -> R {
    let r = {
        let mut st = sim.lock();
        f(&mut st)
    };
    sim.changed();
    r
}

// ---------------------------------------------------------------------------------------------
// Spawners

/// Drives a server forward (build, stop, start, reboot, delete).
pub fn spawn_server(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let (sim, cloud, id) = (sim.clone(), cloud.to_string(), id.to_string());
    tokio::spawn(async move { drive_server(sim, cloud, id).await });
}

/// Drives a volume forward (create, attach, detach, extend, delete).
pub fn spawn_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let (sim, cloud, id) = (sim.clone(), cloud.to_string(), id.to_string());
    tokio::spawn(async move { drive_volume(sim, cloud, id).await });
}

/// Drives a snapshot forward (create, delete).
pub fn spawn_snapshot(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let (sim, cloud, id) = (sim.clone(), cloud.to_string(), id.to_string());
    tokio::spawn(async move { drive_snapshot(sim, cloud, id).await });
}

/// Drives an image made by createImage to active.
pub fn spawn_image(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let (sim, cloud, id) = (sim.clone(), cloud.to_string(), id.to_string());
    tokio::spawn(async move { drive_image(sim, cloud, id).await });
}

/// Restarts every in-flight transition after a restart and brings conversion hosts back up.
pub async fn resume_all(sim: &Arc<Sim>) {
    let mut servers = Vec::new();
    let mut hosts_up = Vec::new();
    let mut volumes = Vec::new();
    let mut snapshots = Vec::new();
    let mut images = Vec::new();
    with_state(sim, |st| {
        for (cname, c) in st.clouds.iter_mut() {
            c.compute.servers.retain(|_, s| s.vm_state != "deleted");
            for s in c.compute.servers.values_mut() {
                if matches!(
                    s.task_state.as_deref(),
                    Some("image_snapshot") | Some("image_pending_upload") | Some("image_uploading")
                ) {
                    let pending = c.image.images.values().any(|i| matches!(&i.pending, Some(ImagePending::ServerDisk { server_id }) | Some(ImagePending::VolumeSnapshots { server_id, .. }) if *server_id == s.id));
                    if !pending {
                        s.task_state = None;
                    }
                }
                if s.vm_state == "building"
                    || matches!(
                        s.task_state.as_deref(),
                        Some("deleting")
                            | Some("powering-off")
                            | Some("powering-on")
                            | Some("rebooting")
                            | Some("rebooting_hard")
                    )
                {
                    servers.push((cname.clone(), s.id.clone()));
                } else if s.is_host && s.vm_state == "active" {
                    hosts_up.push((cname.clone(), s.id.clone()));
                }
            }
            for v in c.volume.volumes.values() {
                if [
                    "creating",
                    "downloading",
                    "attaching",
                    "detaching",
                    "deleting",
                    "extending",
                ]
                .contains(&v.status.as_str())
                {
                    volumes.push((cname.clone(), v.id.clone()));
                }
            }
            for s in c.volume.snapshots.values() {
                if s.status == "creating" || s.status == "deleting" {
                    snapshots.push((cname.clone(), s.id.clone()));
                }
            }
            for i in c.image.images.values_mut() {
                if i.pending.is_some() {
                    images.push((cname.clone(), i.id.clone()));
                } else if i.status == "saving" {
                    // An upload cut by the restart: the client has to upload again.
                    i.status = "queued".into();
                }
            }
        }
    });
    for (c, id) in hosts_up {
        if let Err(e) = start_host(sim, &c, &id).await {
            eprintln!("osm-cloudsim: restarting conversion host {id}: {e}");
            set_server_error(sim, &c, &id, &e);
        }
    }
    for (c, id) in servers {
        spawn_server(sim, &c, &id);
    }
    for (c, id) in volumes {
        spawn_volume(sim, &c, &id);
    }
    for (c, id) in snapshots {
        spawn_snapshot(sim, &c, &id);
    }
    for (c, id) in images {
        spawn_image(sim, &c, &id);
    }
}

// ---------------------------------------------------------------------------------------------
// Conversion hosts

/// The sshd settings of a host server, with the volumes to link (id, file), or None if the
/// server is not a running host.
fn host_spec(
    sim: &Sim,
    cloud: &str,
    id: &str,
) -> Option<(HostSpec, Vec<(String, std::path::PathBuf)>)> {
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
async fn start_host(sim: &Arc<Sim>, cloud: &str, id: &str) -> Result<(), String> {
    let Some((spec, links)) = host_spec(sim, cloud, id) else {
        return Ok(());
    };
    if spec.addrs.is_empty() {
        return Err("the conversion host has no address".into());
    }
    hosts::prepare_dir(&spec.dir, &spec.authorized_keys).map_err(|e| e.to_string())?;
    for (vid, file) in links {
        hosts::link_volume(&spec.dir, &vid, &file)
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

// ---------------------------------------------------------------------------------------------
// Servers

fn set_server_error(sim: &Sim, cloud: &str, id: &str, message: &str) {
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

async fn drive_server(sim: Arc<Sim>, cloud: String, id: String) {
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

// ---------------------------------------------------------------------------------------------
// Volumes

fn set_volume_status(sim: &Sim, cloud: &str, id: &str, from: &[&str], to: &str) -> bool {
    with_state(sim, |st| {
        let Some(v) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.volume.volumes.get_mut(id))
        else {
            return false;
        };
        if !from.contains(&v.status.as_str()) {
            return false;
        }
        v.status = to.to_string();
        v.updated = util::now();
        true
    })
}

async fn drive_volume(sim: Arc<Sim>, cloud: String, id: String) {
    let status = {
        let st = sim.lock();
        st.clouds
            .get(&cloud)
            .and_then(|c| c.volume.volumes.get(&id))
            .map(|v| v.status.clone())
    };
    match status.as_deref() {
        Some("creating") | Some("downloading") => create_volume(&sim, &cloud, &id).await,
        Some("attaching") => attach_volume(&sim, &cloud, &id).await,
        Some("detaching") => detach_volume(&sim, &cloud, &id).await,
        Some("extending") => extend_volume(&sim, &cloud, &id).await,
        Some("deleting") => delete_volume(&sim, &cloud, &id).await,
        _ => {}
    }
}

async fn create_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let Some((source, size)) = ({
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.volume.volumes.get(id))
            .map(|v| (v.source.clone(), v.size))
    }) else {
        return;
    };
    let dst = sim.data_path(cloud, "volumes", id);
    let len = size * GIB;
    let src = match &source {
        VolumeSource::Blank => None,
        VolumeSource::Image { id: i } => {
            set_volume_status(sim, cloud, id, &["creating"], "downloading");
            Some(sim.data_path(cloud, "images", i))
        }
        VolumeSource::Snapshot { id: s } => Some(sim.data_path(cloud, "snapshots", s)),
        VolumeSource::Volume { id: v } => Some(sim.data_path(cloud, "volumes", v)),
    };
    let copied = blocking(move || match src {
        None => files::create_sparse(&dst, len),
        Some(src) => files::sparse_copy(&src, &dst, len).map(|_| ()),
    })
    .await;
    if let Err(e) = copied {
        eprintln!("osm-cloudsim: creating volume {id}: {e}");
        fail_volume(sim, cloud, id, &source, "An unknown error occurred.");
        return;
    }
    match transition(sim, ResourceKind::Volume, cloud, id).await {
        Outcome::Abort => {}
        Outcome::Fail(m) => fail_volume(sim, cloud, id, &source, &m),
        Outcome::Proceed => {
            with_state(sim, |st| {
                if let Some(v) = st
                    .clouds
                    .get_mut(cloud)
                    .and_then(|c| c.volume.volumes.get_mut(id))
                {
                    if v.status == "creating" || v.status == "downloading" {
                        v.status = "available".into();
                        v.source = VolumeSource::Blank;
                        v.updated = util::now();
                    }
                }
            });
        }
    }
}

/// A volume that could not be created: status `error` and a user message saying why.
fn fail_volume(sim: &Sim, cloud: &str, id: &str, source: &VolumeSource, detail: &str) {
    let action = match source {
        VolumeSource::Image { .. } => "create volume from image",
        VolumeSource::Snapshot { .. } => "create volume from snapshot",
        VolumeSource::Volume { .. } => "create volume from volume",
        VolumeSource::Blank => "create volume",
    };
    with_state(sim, |st| {
        let Some(c) = st.clouds.get_mut(cloud) else {
            return;
        };
        let Some(v) = c.volume.volumes.get_mut(id) else {
            return;
        };
        if v.status != "creating" && v.status != "downloading" {
            return;
        }
        v.status = "error".into();
        v.updated = util::now();
        c.volume.add_message("VOLUME", id, action, detail);
    });
}

/// Whether a server is a conversion host, and its directory.
fn host_dir_of(sim: &Sim, st: &State, cloud: &str, server_id: &str) -> Option<std::path::PathBuf> {
    let s = st.clouds.get(cloud)?.compute.servers.get(server_id)?;
    s.is_host.then(|| sim.host_dir(server_id))
}

async fn attach_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let outcome = transition(sim, ResourceKind::Volume, cloud, id).await;
    if outcome == Outcome::Abort {
        return;
    }
    let file = sim.data_path(cloud, "volumes", id);
    with_state(sim, |st| {
        let host_dir = {
            let server = st
                .clouds
                .get(cloud)
                .and_then(|c| c.volume.volumes.get(id))
                .and_then(|v| v.pending_attach.as_ref())
                .map(|a| a.server_id.clone());
            server.and_then(|s| host_dir_of(sim, st, cloud, &s))
        };
        let Some(c) = st.clouds.get_mut(cloud) else {
            return;
        };
        let Some(v) = c.volume.volumes.get_mut(id) else {
            return;
        };
        if v.status != "attaching" {
            return;
        }
        let Some(att) = v.pending_attach.take() else {
            v.status = "available".into();
            return;
        };
        if let Outcome::Fail(_) = outcome {
            v.status = "available".into();
            v.updated = util::now();
            if let Some(s) = c.compute.servers.get_mut(&att.server_id) {
                s.bdms.retain(|b| b.volume_id != id);
            }
            return;
        }
        // The device appears on the host before the volume reports in-use, as on a real host.
        if let Some(dir) = host_dir {
            if let Err(e) = hosts::link_volume(&dir, id, &file) {
                eprintln!(
                    "osm-cloudsim: linking volume {id} into {}: {e}",
                    dir.display()
                );
            }
        }
        v.attachments.push(att);
        v.status = "in-use".into();
        v.updated = util::now();
    });
}

async fn detach_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let outcome = transition(sim, ResourceKind::Volume, cloud, id).await;
    if outcome == Outcome::Abort {
        return;
    }
    with_state(sim, |st| {
        let server = st
            .clouds
            .get(cloud)
            .and_then(|c| c.volume.volumes.get(id))
            .and_then(|v| v.pending_detach.clone());
        let host_dir = server.as_ref().and_then(|s| host_dir_of(sim, st, cloud, s));
        let Some(c) = st.clouds.get_mut(cloud) else {
            return;
        };
        let Some(v) = c.volume.volumes.get_mut(id) else {
            return;
        };
        if v.status != "detaching" {
            return;
        }
        if let Outcome::Fail(_) = outcome {
            v.status = "in-use".into();
            v.pending_detach = None;
            return;
        }
        // The device disappears before the volume reports available.
        if let Some(dir) = host_dir {
            hosts::unlink_volume(&dir, id);
        }
        if let Some(sid) = &server {
            v.attachments.retain(|a| a.server_id != *sid);
        }
        v.pending_detach = None;
        v.status = if v.attachments.is_empty() {
            "available".into()
        } else {
            "in-use".into()
        };
        v.updated = util::now();
        if let Some(s) = server.and_then(|sid| c.compute.servers.get_mut(&sid)) {
            s.bdms.retain(|b| b.volume_id != id);
            s.updated = util::now();
        }
    });
}

async fn extend_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    let outcome = transition(sim, ResourceKind::Volume, cloud, id).await;
    if outcome == Outcome::Abort {
        return;
    }
    let target = {
        let st = sim.lock();
        st.clouds
            .get(cloud)
            .and_then(|c| c.volume.volumes.get(id))
            .and_then(|v| v.extend_to)
    };
    let Some(new) = target else { return };
    let grown = if outcome == Outcome::Proceed {
        let path = sim.data_path(cloud, "volumes", id);
        blocking(move || files::grow(&path, new * GIB))
            .await
            .is_ok()
    } else {
        false
    };
    with_state(sim, |st| {
        if let Some(v) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.volume.volumes.get_mut(id))
        {
            if v.status != "extending" {
                return;
            }
            if grown {
                v.size = new;
                v.status = v.status_before.take().unwrap_or_else(|| "available".into());
            } else {
                v.status = "error_extending".into();
            }
            v.extend_to = None;
            v.updated = util::now();
        }
    });
}

async fn delete_volume(sim: &Arc<Sim>, cloud: &str, id: &str) {
    match transition(sim, ResourceKind::Volume, cloud, id).await {
        Outcome::Abort => {}
        Outcome::Fail(_) => {
            set_volume_status(sim, cloud, id, &["deleting"], "error_deleting");
        }
        Outcome::Proceed => {
            // Snapshots deleted in cascade go first, as Cinder does.
            for _ in 0..6000 {
                let waiting = {
                    let st = sim.lock();
                    st.clouds.get(cloud).is_some_and(|c| {
                        c.volume
                            .snapshots
                            .values()
                            .any(|s| s.volume_id == id && s.status == "deleting")
                    })
                };
                if !waiting || sim.stopping() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            files::remove(&sim.data_path(cloud, "volumes", id));
            with_state(sim, |st| {
                if let Some(c) = st.clouds.get_mut(cloud) {
                    if c.volume
                        .volumes
                        .get(id)
                        .is_some_and(|v| v.status == "deleting")
                    {
                        c.volume.volumes.remove(id);
                    }
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots and images

async fn drive_snapshot(sim: Arc<Sim>, cloud: String, id: String) {
    let Some((status, volume_id)) = ({
        let st = sim.lock();
        st.clouds
            .get(&cloud)
            .and_then(|c| c.volume.snapshots.get(&id))
            .map(|s| (s.status.clone(), s.volume_id.clone()))
    }) else {
        return;
    };
    let set = |to: &str| {
        let to = to.to_string();
        with_state(&sim, |st| {
            let Some(c) = st.clouds.get_mut(&cloud) else {
                return;
            };
            if let Some(s) = c.volume.snapshots.get_mut(&id) {
                s.status = to.clone();
                s.updated = util::now();
            }
            if to == "error" {
                c.volume.add_message(
                    "SNAPSHOT",
                    &id,
                    "create snapshot",
                    "Snapshot failed to create.",
                );
            }
        })
    };
    match status.as_str() {
        "creating" => {
            // The data is taken at request time, before the transition delay.
            let src = sim.data_path(&cloud, "volumes", &volume_id);
            let dst = sim.data_path(&cloud, "snapshots", &id);
            if blocking(move || files::sparse_copy(&src, &dst, 0))
                .await
                .is_err()
            {
                set("error");
                return;
            }
            match transition(&sim, ResourceKind::Snapshot, &cloud, &id).await {
                Outcome::Abort => {}
                Outcome::Fail(_) => set("error"),
                Outcome::Proceed => set("available"),
            }
        }
        "deleting" => match transition(&sim, ResourceKind::Snapshot, &cloud, &id).await {
            Outcome::Abort => {}
            Outcome::Fail(_) => set("error_deleting"),
            Outcome::Proceed => {
                files::remove(&sim.data_path(&cloud, "snapshots", &id));
                with_state(&sim, |st| {
                    if let Some(c) = st.clouds.get_mut(&cloud) {
                        c.volume.snapshots.remove(&id);
                    }
                });
            }
        },
        _ => {}
    }
}

fn clear_server_task(st: &mut State, cloud: &str, server_id: &str) {
    if let Some(s) = st
        .clouds
        .get_mut(cloud)
        .and_then(|c| c.compute.servers.get_mut(server_id))
    {
        if matches!(
            s.task_state.as_deref(),
            Some("image_snapshot") | Some("image_pending_upload") | Some("image_uploading")
        ) {
            s.task_state = None;
            s.updated = util::now();
        }
    }
}

fn set_server_task(sim: &Sim, cloud: &str, server_id: &str, task: &str) {
    with_state(sim, |st| {
        if let Some(s) = st
            .clouds
            .get_mut(cloud)
            .and_then(|c| c.compute.servers.get_mut(server_id))
        {
            if s.task_state
                .as_deref()
                .is_some_and(|t| t.starts_with("image_"))
            {
                s.task_state = Some(task.to_string());
            }
        }
    });
}

/// A failed snapshot image is deleted, as Nova does.
fn fail_image(sim: &Sim, cloud: &str, id: &str, server_id: &str) {
    with_state(sim, |st| {
        if let Some(c) = st.clouds.get_mut(cloud) {
            c.image.images.remove(id);
        }
        clear_server_task(st, cloud, server_id);
    });
    files::remove(&sim.data_path(cloud, "images", id));
}

async fn drive_image(sim: Arc<Sim>, cloud: String, id: String) {
    let Some(pending) = ({
        let st = sim.lock();
        st.clouds
            .get(&cloud)
            .and_then(|c| c.image.images.get(&id))
            .and_then(|i| i.pending.clone())
    }) else {
        return;
    };
    match pending {
        ImagePending::ServerDisk { server_id } => {
            set_server_task(&sim, &cloud, &server_id, "image_pending_upload");
            with_state(&sim, |st| {
                if let Some(i) = st
                    .clouds
                    .get_mut(&cloud)
                    .and_then(|c| c.image.images.get_mut(&id))
                {
                    i.status = "saving".into();
                    i.updated = util::now();
                }
            });
            set_server_task(&sim, &cloud, &server_id, "image_uploading");
            let src = sim.data_path(&cloud, "disks", &server_id);
            let dst = sim.data_path(&cloud, "images", &id);
            let hashed = blocking(move || {
                files::sparse_copy(&src, &dst, 0)?;
                crate::image::hash_file(&dst)
            })
            .await;
            let (size, md5, sha) = match hashed {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("osm-cloudsim: createImage {id} of {server_id}: {e}");
                    fail_image(&sim, &cloud, &id, &server_id);
                    return;
                }
            };
            match transition(&sim, ResourceKind::Image, &cloud, &id).await {
                Outcome::Abort => {}
                Outcome::Fail(_) => fail_image(&sim, &cloud, &id, &server_id),
                Outcome::Proceed => with_state(&sim, |st| {
                    if let Some(i) = st
                        .clouds
                        .get_mut(&cloud)
                        .and_then(|c| c.image.images.get_mut(&id))
                    {
                        i.size = Some(size);
                        i.checksum = Some(md5);
                        i.os_hash_value = Some(sha);
                        i.status = "active".into();
                        i.pending = None;
                        i.updated = util::now();
                    }
                    clear_server_task(st, &cloud, &server_id);
                }),
            }
        }
        ImagePending::VolumeSnapshots {
            server_id,
            snapshot_ids,
        } => {
            set_server_task(&sim, &cloud, &server_id, "image_pending_upload");
            loop {
                let states: Vec<Option<String>> = {
                    let st = sim.lock();
                    let Some(c) = st.clouds.get(&cloud) else {
                        return;
                    };
                    snapshot_ids
                        .iter()
                        .map(|s| c.volume.snapshots.get(s).map(|x| x.status.clone()))
                        .collect()
                };
                if states
                    .iter()
                    .any(|s| s.as_deref() != Some("available") && s.as_deref() != Some("creating"))
                {
                    fail_image(&sim, &cloud, &id, &server_id);
                    return;
                }
                if states.iter().all(|s| s.as_deref() == Some("available")) {
                    break;
                }
                if sim.stopping() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            match transition(&sim, ResourceKind::Image, &cloud, &id).await {
                Outcome::Abort => {}
                Outcome::Fail(_) => fail_image(&sim, &cloud, &id, &server_id),
                Outcome::Proceed => with_state(&sim, |st| {
                    if let Some(i) = st
                        .clouds
                        .get_mut(&cloud)
                        .and_then(|c| c.image.images.get_mut(&id))
                    {
                        i.size = Some(0);
                        i.status = "active".into();
                        i.pending = None;
                        i.updated = util::now();
                    }
                    clear_server_task(st, &cloud, &server_id);
                }),
            }
        }
    }
}
