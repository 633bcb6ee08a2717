//! `import_workload_export_volumes`: make each disk of the source server readable on the source
//! conversion host, as a read-only NBD export on a private Unix socket.

use osm_openstack::{Connection, NewVolume};

use super::attachments::attach_all;
use super::{Hosts, ImportError, Job};
use crate::hosts::{transfer_dir, Sparsified};
use crate::state::{Detached, Kind, Phase, Side, VolumeTransfer};

const GIB: u64 = 1 << 30;

/// Boot disk: a server booted from a volume gets a snapshot and a volume made from it; one booted
/// from an image (with `boot_disk_copy`) gets a server image and a volume made from it. Additional
/// volumes are detached from the source server, except in a pre-copy, where the server keeps running
/// and each of them gets a snapshot and a volume made from it as well (snapshots of in-use volumes:
/// crash-consistent). Each is attached to the source conversion host, found there by serial, and
/// exported by the agent.
///
/// The server is stopped while this runs (but in a pre-copy), so each stage is requested for every
/// disk before any is waited for (the detaches once the images and snapshots are made, as Nova
/// wants), and the exports start together: the step takes as long as its slowest disk, not the sum
/// of them all.
pub fn export_volumes(
    job: &mut Job,
    src: &Connection,
    hosts: &Hosts,
    sparsify: bool,
) -> Result<Vec<VolumeTransfer>, ImportError> {
    if !job.server.migration_params.data_copy {
        job.log("data_copy is false: nothing to export, the destination volumes are reused");
        return Ok(Vec::new());
    }
    let timeout = job.settings.timeout;
    // Before any volume is detached or attached: a login that cannot open the devices would fail
    // only in the middle of the copy. (A cutover's preparation did this while the source ran.)
    let dir = match job.prepared_home(&hosts.src.id) {
        Some(home) => transfer_dir(home, &job.state.transfer_id),
        None => {
            let host = job.connect_host("source", &hosts.src, &hosts.login)?;
            job.ready_host(&host, &hosts.agent)?
        }
    };
    let roles = job.plan_roles();
    let precopy = job.settings.phase == Phase::Precopy;
    let mut started = Vec::new();
    for (role, source_volume, _) in &roles {
        started.push(match (role.as_str(), source_volume) {
            ("boot", None) => Started::Image(start_image(job, src)?),
            (_, Some(vol)) if role == "boot" || precopy => {
                Started::Snapshot(start_snapshot(job, src, role, vol)?)
            }
            (_, Some(vol)) => Started::Detaching(vol.clone()),
            (_, None) => {
                return Err(job.invalid(format!("volume role {role} without a source volume")))
            }
        });
    }
    let mut made = Vec::new();
    for ((role, _, size), s) in roles.iter().zip(started) {
        made.push(match s {
            Started::Image(image) => volume_from_image(job, src, &image)?,
            Started::Snapshot(snap) => volume_from_snapshot(job, src, role, &snap, *size)?,
            Started::Detaching(vol) => vol,
        });
    }
    // Only now that every image and snapshot of the server is made: Nova refuses to detach a
    // volume while the server's image is uploading, and the volumes made above need no wait.
    for ((_, source_volume, _), export_id) in roles.iter().zip(&made) {
        // Exported as itself: detached from the server, not copied.
        if source_volume.as_ref() == Some(export_id) {
            request_detach(job, src, export_id)?;
        }
    }
    for ((role, source_volume, _), export_id) in roles.iter().zip(&made) {
        // A volume made here must be available; a detached one must have left the server.
        src.block_storage()
            .wait_for_volume(export_id, &["available", "in-use"], timeout)
            .map_err(job.cloud_err(Side::Src, format!("waiting for volume {export_id}")))?;
        let v = src
            .block_storage()
            .get_volume(export_id)
            .map_err(job.cloud_err(Side::Src, format!("reading volume {export_id}")))?;
        if v.attachments
            .iter()
            .any(|a| a.server_id.as_deref() == Some(job.server.info.id.as_str()))
        {
            src.block_storage()
                .wait_for_volume(export_id, &["available"], timeout)
                .map_err(job.cloud_err(
                    Side::Src,
                    format!("waiting for volume {export_id} to be detached"),
                ))?;
        }
        let t = job.state.volume_mut(role);
        t.source_volume_id = source_volume.clone();
        t.export_volume_id = Some(export_id.clone());
        t.size_gib = v.size;
        job.save()?;
    }
    attach_all(
        job,
        src,
        &hosts.src.id,
        &made,
        "source conversion host",
        timeout,
    )?;

    let exports: Vec<(&String, &String)> = roles.iter().map(|r| &r.0).zip(&made).collect();
    let shared: &Job = job;
    let served = std::thread::scope(|s| {
        let handles: Vec<_> = exports
            .iter()
            .map(|(role, export_id)| {
                let dir = &dir;
                s.spawn(move || serve_one(shared, hosts, dir, role, export_id, sparsify))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(shared.invalid("an export's thread panicked")))
            })
            .collect::<Vec<_>>()
    });
    for ((role, export_id), result) in exports.into_iter().zip(served) {
        let (device, socket, found) = result?;
        job.log(&format!(
            "exporting {role} (volume {export_id}, {device}) on the source conversion host"
        ));
        if let Some(found) = found {
            job.log(&format!("{role}: {}", found.summary));
            job.state.volume_mut(role).used_bytes = Some(found.used_bytes);
        }
        let t = job.state.volume_mut(role);
        t.src_device = Some(device);
        t.src_socket = Some(socket);
        job.save()?;
    }
    Ok(job.state.volumes.clone())
}

/// The first request made for a disk, which the next stage waits for.
enum Started {
    /// A server image of an image-booted server.
    Image(String),
    /// A snapshot of a volume.
    Snapshot(String),
    /// An additional volume of the stopped server, to detach once the images and snapshots are made.
    Detaching(String),
}

/// Finds an attached export volume on the source conversion host (over its own SSH session, so
/// that the exports start together) and starts its export: (device, socket, what sparsify found).
fn serve_one(
    job: &Job,
    hosts: &Hosts,
    dir: &str,
    role: &str,
    export_id: &str,
    sparsify: bool,
) -> Result<(String, String, Option<Sparsified>), ImportError> {
    let host = job.connect_host("source", &hosts.src, &hosts.login)?;
    let socket = format!("{dir}/{role}.sock");
    let pid_file = format!("{dir}/{role}.pid");
    let (device, found) = host
        .export(
            export_id,
            job.settings.timeout,
            &socket,
            role,
            &pid_file,
            sparsify,
        )
        .map_err(job.host_err())?;
    Ok((device, socket, found))
}

/// Creates (or finds, when a previous run recorded it) a resource: plan it in the state, create,
/// record its ID. `create` returns the new ID.
fn ensure_created(
    job: &mut Job,
    side: Side,
    kind: Kind,
    role: &str,
    create: impl FnOnce(&str) -> Result<String, ImportError>,
) -> Result<String, ImportError> {
    if let Some(id) = job
        .state
        .created(side, kind, role)
        .and_then(|c| c.id.clone())
    {
        return Ok(id);
    }
    let name = job.state.temp_name(role);
    job.state.plan(side, kind, role, &name);
    job.save()?;
    let id = create(&name)?;
    job.state.set_id(side, kind, role, &id);
    job.save()?;
    job.log(&format!("created {} {name} ({id})", kind.as_str()));
    Ok(id)
}

/// Requests a snapshot of a source volume (in use or not: `force`, which Cinder needs below
/// microversion 3.66 for an in-use volume), or finds the one a previous run recorded.
fn start_snapshot(
    job: &mut Job,
    src: &Connection,
    role: &str,
    volume_id: &str,
) -> Result<String, ImportError> {
    let meta = job.transfer_metadata();
    let bs = src.block_storage();
    let snap_err = job.cloud_err(
        Side::Src,
        format!("snapshotting volume {volume_id} ({role})"),
    );
    ensure_created(job, Side::Src, Kind::Snapshot, role, |name| {
        bs.create_snapshot(
            volume_id,
            name,
            Some("osm: a disk of a migration"),
            true,
            &meta,
        )
        .map(|s| s.id)
        .map_err(snap_err)
    })
}

/// Waits for a snapshot and requests a volume made from it (the caller waits for the volume).
fn volume_from_snapshot(
    job: &mut Job,
    src: &Connection,
    role: &str,
    snap: &str,
    size: u64,
) -> Result<String, ImportError> {
    let meta = job.transfer_metadata();
    let bs = src.block_storage();
    bs.wait_for_snapshot(snap, &["available"], job.settings.timeout)
        .map_err(job.cloud_err(Side::Src, format!("waiting for snapshot {snap}")))?;
    let vol_err = job.cloud_err(Side::Src, format!("creating a volume from snapshot {snap}"));
    ensure_created(job, Side::Src, Kind::Volume, role, |name| {
        let new = NewVolume {
            size,
            name: Some(name.to_string()),
            snapshot_id: Some(snap.to_string()),
            metadata: meta.clone(),
            ..NewVolume::default()
        };
        bs.create_volume(&new).map(|v| v.id).map_err(vol_err)
    })
}

/// Requests a server image of an image-booted server, or finds the one a previous run recorded.
fn start_image(job: &mut Job, src: &Connection) -> Result<String, ImportError> {
    let meta = job.transfer_metadata();
    let server_id = job.server.info.id.clone();
    let img_err = job.cloud_err(
        Side::Src,
        format!("creating an image of server {server_id}"),
    );
    ensure_created(job, Side::Src, Kind::Image, "boot", |name| {
        src.compute()
            .create_server_image(&server_id, name, &meta)
            .map_err(img_err)
    })
}

/// Waits for the server image and requests a volume made from it, as large as the image, its
/// minimum disk and the flavor's disk (the caller waits for the volume).
fn volume_from_image(job: &mut Job, src: &Connection, image: &str) -> Result<String, ImportError> {
    let timeout = job.settings.timeout;
    let meta = job.transfer_metadata();
    let server_id = job.server.info.id.clone();
    let img = src
        .image()
        .wait_for_image(image, &["active"], timeout)
        .map_err(job.cloud_err(Side::Src, format!("waiting for image {image}")))?;
    let srv = src
        .compute()
        .get_server(&server_id)
        .map_err(job.cloud_err(Side::Src, format!("reading server {server_id}")))?;
    let bytes = img.virtual_size.or(img.size).unwrap_or(0);
    let size = bytes
        .div_ceil(GIB)
        .max(img.min_disk)
        .max(srv.flavor.disk.unwrap_or(0))
        .max(1);
    let vol_err = job.cloud_err(Side::Src, format!("creating a volume from image {image}"));
    let bs = src.block_storage();
    ensure_created(job, Side::Src, Kind::Volume, "boot", |name| {
        let new = NewVolume {
            size,
            name: Some(name.to_string()),
            image_ref: Some(image.to_string()),
            metadata: meta.clone(),
            ..NewVolume::default()
        };
        bs.create_volume(&new).map(|v| v.id).map_err(vol_err)
    })
}

/// Records and requests the detachment of an additional volume from the stopped source server
/// (the caller waits for it to leave the server).
fn request_detach(job: &mut Job, src: &Connection, volume_id: &str) -> Result<(), ImportError> {
    let server_id = job.server.info.id.clone();
    let v = src
        .block_storage()
        .get_volume(volume_id)
        .map_err(job.cloud_err(Side::Src, format!("reading volume {volume_id}")))?;
    if let Some(a) = v
        .attachments
        .iter()
        .find(|a| a.server_id.as_deref() == Some(server_id.as_str()))
    {
        if !job
            .state
            .detached
            .iter()
            .any(|d| d.volume_id == volume_id && !d.reattached)
        {
            job.state.detached.push(Detached {
                volume_id: volume_id.to_string(),
                device: a.device.clone(),
                reattached: false,
            });
            job.save()?;
        }
        src.compute()
            .detach_volume(&server_id, volume_id)
            .map_err(job.cloud_err(
                Side::Src,
                format!("detaching volume {volume_id} from server {server_id}"),
            ))?;
        job.log(&format!(
            "detached volume {volume_id} ({}) from the source server",
            a.device.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}
