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
pub(crate) fn detach(
    conn: &Connection,
    host_id: &str,
    volume_id: &str,
    timeout: Duration,
) -> Result<bool, osm_openstack::Error> {
    let v = match conn.block_storage().get_volume(volume_id) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(false),
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
    if attached || v.status == "detaching" {
        conn.block_storage()
            .wait_for_volume(volume_id, &["available"], timeout)?;
    }
    Ok(attached)
}
