//! `import_workload_export_volumes`: make each disk of the source server readable on the source
//! conversion host, as a read-only NBD export on a private Unix socket.

use std::time::Duration;

use osm_openstack::{Connection, NewVolume};

use super::attachments::attach;
use super::{Hosts, ImportError, Job};
use crate::hosts::ConvHost;
use crate::state::{Detached, Kind, Phase, Side, VolumeTransfer};

const GIB: u64 = 1 << 30;

/// Boot disk: a server booted from a volume gets a snapshot and a volume made from it; one booted
/// from an image (with `boot_disk_copy`) gets a server image and a volume made from it. Additional
/// volumes are detached from the source server, except in a pre-copy, where the server keeps running
/// and each of them gets a snapshot and a volume made from it as well (snapshots of in-use volumes:
/// crash-consistent). Each is attached to the source conversion host, found there by serial, and
/// exported by the agent.
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
    // only in the middle of the copy.
    let host = ConvHost::connect("source", &hosts.src, &hosts.login).map_err(job.host_err())?;
    host.require_device_access().map_err(job.host_err())?;
    let roles = job.plan_roles();
    let precopy = job.settings.phase == Phase::Precopy;
    for (role, source_volume, size) in &roles {
        let export_id = match (role.as_str(), source_volume) {
            ("boot", None) => boot_from_image(job, src)?,
            (_, Some(vol)) if role == "boot" || precopy => {
                from_snapshot(job, src, role, vol, *size)?
            }
            (_, Some(vol)) => detach_from_source(job, src, vol)?,
            (_, None) => {
                return Err(job.invalid(format!("volume role {role} without a source volume")))
            }
        };
        let v = src
            .block_storage()
            .get_volume(&export_id)
            .map_err(job.cloud_err(Side::Src, format!("reading volume {export_id}")))?;
        let t = job.state.volume_mut(role);
        t.source_volume_id = source_volume.clone();
        t.export_volume_id = Some(export_id.clone());
        t.size_gib = v.size;
        job.save()?;
        attach(
            job,
            src,
            &hosts.src.id,
            &export_id,
            "source conversion host",
            timeout,
        )?;
    }

    if host.ensure_agent(&hosts.agent).map_err(job.host_err())? {
        job.log(&format!(
            "uploaded osm-agent to the source conversion host {}",
            hosts.src.name
        ));
    }
    let dir = host
        .make_transfer_dir(&job.state.transfer_id)
        .map_err(job.host_err())?;
    for (role, _, _) in &roles {
        let Some(export_id) = job
            .state
            .volumes
            .iter()
            .find(|v| &v.role == role)
            .and_then(|v| v.export_volume_id.clone())
        else {
            continue;
        };
        let device = host
            .find_device(&export_id, timeout.min(Duration::from_secs(300)))
            .map_err(job.host_err())?;
        let socket = format!("{dir}/{role}.sock");
        let found = host
            .serve(
                &device,
                &export_id,
                &socket,
                role,
                &format!("{dir}/{role}.pid"),
                sparsify,
            )
            .map_err(job.host_err())?;
        job.log(&format!(
            "exporting {role} (volume {export_id}, {device}) on the source conversion host"
        ));
        if let Some(found) = found {
            job.log(&format!("{role}: {found}"));
        }
        let t = job.state.volume_mut(role);
        t.src_device = Some(device);
        t.src_socket = Some(socket);
        job.save()?;
    }
    Ok(job.state.volumes.clone())
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

/// A snapshot of a source volume (in use or not: `force`, which Cinder needs below microversion
/// 3.66 for an in-use volume) and a volume made from it.
fn from_snapshot(
    job: &mut Job,
    src: &Connection,
    role: &str,
    volume_id: &str,
    size: u64,
) -> Result<String, ImportError> {
    let timeout = job.settings.timeout;
    let meta = job.transfer_metadata();
    let bs = src.block_storage();
    let snap_err = job.cloud_err(
        Side::Src,
        format!("snapshotting volume {volume_id} ({role})"),
    );
    let snap = ensure_created(job, Side::Src, Kind::Snapshot, role, |name| {
        bs.create_snapshot(
            volume_id,
            name,
            Some("osm: a disk of a migration"),
            true,
            &meta,
        )
        .map(|s| s.id)
        .map_err(snap_err)
    })?;
    bs.wait_for_snapshot(&snap, &["available"], timeout)
        .map_err(job.cloud_err(Side::Src, format!("waiting for snapshot {snap}")))?;
    let vol_err = job.cloud_err(Side::Src, format!("creating a volume from snapshot {snap}"));
    let vol = ensure_created(job, Side::Src, Kind::Volume, role, |name| {
        let new = NewVolume {
            size,
            name: Some(name.to_string()),
            snapshot_id: Some(snap.clone()),
            metadata: meta.clone(),
            ..NewVolume::default()
        };
        bs.create_volume(&new).map(|v| v.id).map_err(vol_err)
    })?;
    bs.wait_for_volume(&vol, &["available", "in-use"], timeout)
        .map_err(job.cloud_err(Side::Src, format!("waiting for volume {vol}")))?;
    Ok(vol)
}

fn boot_from_image(job: &mut Job, src: &Connection) -> Result<String, ImportError> {
    let timeout = job.settings.timeout;
    let meta = job.transfer_metadata();
    let server_id = job.server.info.id.clone();
    let img_err = job.cloud_err(
        Side::Src,
        format!("creating an image of server {server_id}"),
    );
    let image = ensure_created(job, Side::Src, Kind::Image, "boot", |name| {
        src.compute()
            .create_server_image(&server_id, name, &meta)
            .map_err(img_err)
    })?;
    let img = src
        .image()
        .wait_for_image(&image, &["active"], timeout)
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
    let vol = ensure_created(job, Side::Src, Kind::Volume, "boot", |name| {
        let new = NewVolume {
            size,
            name: Some(name.to_string()),
            image_ref: Some(image.clone()),
            metadata: meta.clone(),
            ..NewVolume::default()
        };
        bs.create_volume(&new).map(|v| v.id).map_err(vol_err)
    })?;
    bs.wait_for_volume(&vol, &["available", "in-use"], timeout)
        .map_err(job.cloud_err(Side::Src, format!("waiting for volume {vol}")))?;
    Ok(vol)
}

fn detach_from_source(
    job: &mut Job,
    src: &Connection,
    volume_id: &str,
) -> Result<String, ImportError> {
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
    src.block_storage()
        .wait_for_volume(volume_id, &["available"], job.settings.timeout)
        .map_err(job.cloud_err(
            Side::Src,
            format!("waiting for volume {volume_id} to be detached"),
        ))?;
    Ok(volume_id.to_string())
}
