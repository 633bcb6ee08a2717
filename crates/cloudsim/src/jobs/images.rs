//! Snapshot and image transitions: a snapshot's copy of its volume, a server image's copy of
//! the root disk or its volume snapshots, and their deletion.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::ResourceKind;
use crate::files;
use crate::image::ImagePending;
use crate::sim::Sim;
use crate::state::State;
use crate::util;

use super::{blocking, transition, with_state, Outcome};

pub(super) async fn drive_snapshot(sim: Arc<Sim>, cloud: String, id: String) {
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

pub(super) async fn drive_image(sim: Arc<Sim>, cloud: String, id: String) {
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
