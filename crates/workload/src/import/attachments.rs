//! Volumes on conversion hosts: attaching one for a step and detaching it afterwards, shared by
//! export_volumes (source host), transfer_volumes (destination host) and the cleanups.

use std::time::Duration;

use osm_openstack::Connection;

use super::{ImportError, Job};
use crate::state::Side;

fn side_of(what: &str) -> Side {
    if what.starts_with("source") {
        Side::Src
    } else {
        Side::Dst
    }
}

/// Asks to attach a volume to a conversion host unless it already is, without waiting for the
/// attachment: a step that attaches several volumes requests them all, then waits
/// ([`wait_attached`]), so that they take as long as the slowest one, not their sum.
fn request_attach(
    job: &Job,
    conn: &Connection,
    host_id: &str,
    volume_id: &str,
    what: &str,
    timeout: Duration,
) -> Result<(), ImportError> {
    let side = side_of(what);
    let v = conn
        .block_storage()
        .get_volume(volume_id)
        .map_err(job.cloud_err(side, format!("reading volume {volume_id}")))?;
    if v.attachments
        .iter()
        .any(|a| a.server_id.as_deref() == Some(host_id))
    {
        return Ok(());
    }
    if v.status != "available" {
        conn.block_storage()
            .wait_for_volume(volume_id, &["available"], timeout)
            .map_err(job.cloud_err(
                side,
                format!("waiting for volume {volume_id} to be available"),
            ))?;
    }
    conn.compute()
        .attach_volume(host_id, volume_id, None, None)
        .map_err(job.cloud_err(side, format!("attaching volume {volume_id} to the {what}")))?;
    Ok(())
}

/// Waits for a volume whose attachment was requested to be `in-use`.
fn wait_attached(
    job: &Job,
    conn: &Connection,
    volume_id: &str,
    what: &str,
    timeout: Duration,
) -> Result<(), ImportError> {
    conn.block_storage()
        .wait_for_volume(volume_id, &["in-use"], timeout)
        .map_err(job.cloud_err(
            side_of(what),
            format!("waiting for volume {volume_id} to attach to the {what}"),
        ))?;
    Ok(())
}

/// Attaches every volume of `volume_ids` to a conversion host (those not attached yet), requests
/// first, then the waits.
pub(crate) fn attach_all(
    job: &Job,
    conn: &Connection,
    host_id: &str,
    volume_ids: &[String],
    what: &str,
    timeout: Duration,
) -> Result<(), ImportError> {
    for id in volume_ids {
        request_attach(job, conn, host_id, id, what, timeout)?;
    }
    for id in volume_ids {
        wait_attached(job, conn, id, what, timeout)?;
    }
    Ok(())
}

/// Detaches a volume from a conversion host if it is attached there, and waits for `available`.
/// Returns whether it was attached.
pub(crate) fn detach(
    conn: &Connection,
    host_id: &str,
    volume_id: &str,
    timeout: Duration,
) -> Result<bool, osm_openstack::Error> {
    detach_all(conn, host_id, &[volume_id.to_string()], timeout)
        .map(|attached| attached.contains(&true))
        .map_err(|(_, e)| e)
}

/// Detaches every volume of `volume_ids` from a conversion host (those attached there), requests
/// first, then the waits for `available`, so that they take as long as the slowest one: returns
/// whether each was attached, or the volume that failed and why.
pub(crate) fn detach_all(
    conn: &Connection,
    host_id: &str,
    volume_ids: &[String],
    timeout: Duration,
) -> Result<Vec<bool>, (String, osm_openstack::Error)> {
    let mut requested = Vec::new();
    for id in volume_ids {
        requested.push(request_detach(conn, host_id, id).map_err(|e| (id.clone(), e))?);
    }
    for (id, (_, wait)) in volume_ids.iter().zip(&requested) {
        if *wait {
            conn.block_storage()
                .wait_for_volume(id, &["available"], timeout)
                .map_err(|e| (id.clone(), e))?;
        }
    }
    Ok(requested
        .into_iter()
        .map(|(attached, _)| attached)
        .collect())
}

/// Asks to detach a volume from a conversion host if it is attached there: (whether it was
/// attached, whether it has to be waited for).
fn request_detach(
    conn: &Connection,
    host_id: &str,
    volume_id: &str,
) -> Result<(bool, bool), osm_openstack::Error> {
    let v = match conn.block_storage().get_volume(volume_id) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok((false, false)),
        Err(e) => return Err(e),
    };
    let attached = v
        .attachments
        .iter()
        .any(|a| a.server_id.as_deref() == Some(host_id));
    if attached {
        match conn.compute().detach_volume(host_id, volume_id) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok((attached, attached || v.status == "detaching"))
}
