//! Background transitions: every status that takes time (server BUILD, stop, start, reboot,
//! delete, createImage; volume creating/downloading, attaching, detaching, extending, deleting;
//! snapshot creating/deleting) is completed here by a task spawned when the request recorded it.
//! One file per resource: `servers.rs`, `volumes.rs`, `images.rs` (snapshots and images), and
//! `conversion_hosts.rs` (their sshd); this module holds the spawners, [`resume_all`] and
//! the transition machinery they share.
//!
//! Each driver looks at the resource's current status and moves it forward, so the same
//! drivers resume whatever was in flight when the simulator restarts ([`resume_all`]). Before a
//! transition completes, the fault registry is asked whether it is slow, stuck or fails. File
//! copies run on blocking threads without the state lock.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::{ResourceKind, TransitionFault};
use crate::image::ImagePending;
use crate::sim::Sim;
use crate::state::State;

use conversion_hosts::start_host;
use images::{drive_image, drive_snapshot};
use servers::{drive_server, set_server_error};
use volumes::drive_volume;

mod conversion_hosts;
mod images;
mod servers;
mod volumes;

pub use conversion_hosts::refresh_host;

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
