//! Volume transitions: create (empty, or from an image, snapshot or volume), attach, detach,
//! extend, delete.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::ResourceKind;
use crate::files::{self, GIB};
use crate::hosts;
use crate::sim::Sim;
use crate::state::State;
use crate::util;
use crate::volume::VolumeSource;

use super::{blocking, transition, with_state, Outcome};

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

pub(super) async fn drive_volume(sim: Arc<Sim>, cloud: String, id: String) {
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
    let dirty = sim.dirty_volumes(cloud);
    let copied = blocking(move || match src {
        None if dirty => files::create_garbage(&dst, len),
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
/// The directory of a simulated conversion host, with its disk bus.
fn host_dir_of(
    sim: &Sim,
    st: &State,
    cloud: &str,
    server_id: &str,
) -> Option<(std::path::PathBuf, Option<String>)> {
    let s = st.clouds.get(cloud)?.compute.servers.get(server_id)?;
    s.is_host
        .then(|| (sim.host_dir(server_id), s.disk_bus.clone()))
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
        if let Some((dir, bus)) = host_dir {
            if let Err(e) = hosts::link_volume(&dir, id, bus.as_deref(), &file) {
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
        if let Some((dir, _)) = host_dir {
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
