//! `import_workload_src_cleanup` and `import_workload_dst_failure_cleanup`.
//!
//! Both work from the state file and from a search by the transfer id (metadata, tags, the name
//! prefix), so they are complete even when the module that created a resource crashed before
//! recording its ID. Both are idempotent and report what they removed. Neither ever deletes a
//! volume of the source server.

use std::collections::BTreeMap;
use std::time::Duration;

use osm_openstack::{self as os, metadata_filter, Connection, Query};
use serde::Serialize;

use super::attachments::detach;
use super::{Hosts, ImportError, Job};
use crate::hosts::ConvHost;
use crate::state::{Kind, Side, Status, TRANSFER_KEY};

/// What a cleanup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    /// Resources deleted, as `kind name (id)`.
    pub removed: Vec<String>,
    /// Volumes detached from a conversion host.
    pub detached: Vec<String>,
    /// Source volumes attached back to the source server.
    pub reattached: Vec<String>,
    /// Destination resources kept (volumes kept for a resumed copy).
    pub kept: Vec<String>,
    /// Problems that did not stop the cleanup (an unreachable conversion host, ...).
    pub warnings: Vec<String>,
}

impl CleanupReport {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.removed.is_empty() && self.detached.is_empty() && self.reattached.is_empty())
    }
}

fn gone(e: &os::Error) -> bool {
    e.is_not_found()
}

/// Deletes a recorded or found resource; a resource already gone counts as done.
fn delete(
    job: &mut Job,
    conn: &Connection,
    side: Side,
    kind: Kind,
    id: &str,
    name: &str,
    report: &mut CleanupReport,
) -> Result<(), ImportError> {
    let t = job.settings.timeout;
    let r = match kind {
        Kind::Snapshot => settle(conn, kind, id, t)
            .and_then(|()| conn.block_storage().delete_snapshot(id))
            .and_then(|()| conn.block_storage().wait_for_snapshot_deleted(id, t)),
        Kind::Image => conn.image().delete_image(id),
        Kind::Volume => settle(conn, kind, id, t)
            .and_then(|()| conn.block_storage().delete_volume(id, false))
            .and_then(|()| conn.block_storage().wait_for_volume_deleted(id, t)),
        Kind::Port => conn.network().delete_port(id),
        Kind::FloatingIp => conn.network().delete_floating_ip(id),
        Kind::Server => conn
            .compute()
            .delete_server(id)
            .and_then(|()| conn.compute().wait_for_server_deleted(id, t)),
    };
    match r {
        Ok(()) => {
            report
                .removed
                .push(format!("{} {name} ({id})", kind.as_str()));
            job.log(&format!("deleted {} {name} ({id})", kind.as_str()));
        }
        Err(e) if gone(&e) => {}
        Err(e) => {
            return Err(job.cloud_err(
                side,
                format!("deleting {} {name} ({id})", kind.as_str()),
            )(e))
        }
    }
    for c in job
        .state
        .created
        .iter_mut()
        .filter(|c| c.side == side && c.kind == kind && c.id.as_deref() == Some(id))
    {
        c.deleted = true;
    }
    job.save()
}

/// Cinder refuses to delete a volume or snapshot while it is being created (a run killed while it
/// waited for one); wait until it settles.
fn settle(conn: &Connection, kind: Kind, id: &str, timeout: Duration) -> Result<(), os::Error> {
    const SETTLED: &[&str] = &["available", "error", "in-use"];
    let bs = conn.block_storage();
    let status = match kind {
        Kind::Snapshot => bs.get_snapshot(id)?.status,
        _ => bs.get_volume(id)?.status,
    };
    if SETTLED.contains(&status.as_str()) {
        return Ok(());
    }
    let waited = match kind {
        Kind::Snapshot => bs.wait_for_snapshot(id, SETTLED, timeout).map(drop),
        _ => bs.wait_for_volume(id, SETTLED, timeout).map(drop),
    };
    match waited {
        Err(os::Error::ErrorState { .. }) => Ok(()),
        other => other,
    }
}

/// What carries this transfer's marks, besides what the state records.
fn tagged(
    job: &Job,
    conn: &Connection,
    side: Side,
) -> Result<Vec<(Kind, String, String)>, ImportError> {
    let tid = job.state.transfer_id.clone();
    if tid.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let mut meta = BTreeMap::new();
    meta.insert(TRANSFER_KEY.to_string(), tid.clone());
    let by_meta = Query::new().with("metadata", metadata_filter(&meta));
    let vols = conn
        .block_storage()
        .list_volumes_with(&by_meta)
        .map_err(job.cloud_err(side, "searching volumes by transfer id"))?;
    found.extend(
        vols.into_iter()
            .filter(|v| v.metadata.get(TRANSFER_KEY) == Some(&tid))
            .map(|v| (Kind::Volume, v.id, v.name)),
    );
    if side == Side::Src {
        let snaps = conn
            .block_storage()
            .list_snapshots_with(&by_meta)
            .map_err(job.cloud_err(side, "searching snapshots by transfer id"))?;
        found.extend(
            snaps
                .into_iter()
                .filter(|s| s.metadata.get(TRANSFER_KEY) == Some(&tid))
                .map(|s| (Kind::Snapshot, s.id, s.name)),
        );
        let images = conn
            .image()
            .list_images_with(&Query::new().with(TRANSFER_KEY, tid.clone()))
            .map_err(job.cloud_err(side, "searching images by transfer id"))?;
        found.extend(
            images
                .into_iter()
                .filter(|i| {
                    i.property(TRANSFER_KEY) == Some(tid.as_str())
                        || i.name.starts_with(&job.state.temp_name(""))
                })
                .map(|i| (Kind::Image, i.id, i.name)),
        );
    } else {
        let tag = Query::new().with("tags", job.state.tag());
        let ports = conn
            .network()
            .list_ports(&tag)
            .map_err(job.cloud_err(side, "searching ports by transfer tag"))?;
        found.extend(
            ports
                .into_iter()
                .filter(|p| p.tags.contains(&job.state.tag()))
                .map(|p| (Kind::Port, p.id, p.name)),
        );
        let fips = conn
            .network()
            .list_floating_ips(&tag)
            .map_err(job.cloud_err(side, "searching floating IPs by transfer tag"))?;
        found.extend(
            fips.into_iter()
                .filter(|f| f.tags.contains(&job.state.tag()))
                .map(|f| (Kind::FloatingIp, f.id, f.floating_ip_address)),
        );
        let servers = conn
            .compute()
            .list_servers_with(&Query::new().with("name", crate::nova_exact_name(job.name())))
            .map_err(job.cloud_err(side, "searching the destination server"))?;
        found.extend(
            servers
                .into_iter()
                .filter(|s| s.metadata.get(TRANSFER_KEY) == Some(&tid))
                .map(|s| (Kind::Server, s.id, s.name)),
        );
    }
    Ok(found)
}

/// Every resource of `side` to remove: recorded ones first (in reverse creation order), then what the
/// tag search finds that the state missed.
fn to_remove(
    job: &Job,
    conn: &Connection,
    side: Side,
    kinds: &[Kind],
) -> Result<Vec<(Kind, String, String)>, ImportError> {
    let mut list: Vec<(Kind, String, String)> = job
        .state
        .created
        .iter()
        .rev()
        .filter(|c| c.side == side && !c.deleted && kinds.contains(&c.kind))
        .filter_map(|c| c.id.clone().map(|id| (c.kind, id, c.name.clone())))
        .collect();
    for t in tagged(job, conn, side)? {
        if kinds.contains(&t.0) && !list.iter().any(|l| l.1 == t.1) {
            list.push(t);
        }
    }
    let protected: Vec<&str> = job.server.volume_ids().collect();
    list.retain(|(k, id, _)| !(*k == Kind::Volume && protected.contains(&id.as_str())));
    Ok(list)
}

fn connect_host(
    job: &Job,
    role: &'static str,
    hosts: Option<&Hosts>,
    report: &mut CleanupReport,
) -> Option<ConvHost> {
    let hosts = hosts?;
    let spec = if role == "source" {
        &hosts.src
    } else {
        &hosts.dst
    };
    let mut login = hosts.login.clone();
    login.timeout = login.timeout.min(Duration::from_secs(60));
    match ConvHost::connect(role, spec, &login) {
        Ok(h) => Some(h),
        Err(e) => {
            let w = format!(
                "could not reach the {role} conversion host to stop this transfer's processes: {e}"
            );
            job.log(&w);
            report.warnings.push(w);
            None
        }
    }
}

/// Stops the exports, detaches the exported volumes from the source conversion host, deletes the
/// temporary snapshot, image and volume, and attaches the detached volumes back to the source server
/// at their devices. With `restart_source` (set by the role when this run stopped the server and the
/// migration failed), the source server is started again. Without conversion hosts (a run where no
/// workload copies data deploys none), there is nothing on them to stop or detach.
pub fn src_cleanup(
    job: &mut Job,
    src: &Connection,
    hosts: Option<&Hosts>,
    restart_source: bool,
) -> Result<CleanupReport, ImportError> {
    let mut report = CleanupReport::default();
    let timeout = job.settings.timeout;
    if job.state.transfer_id.is_empty() {
        return Ok(report);
    }
    if let Some(h) = connect_host(job, "source", hosts, &mut report) {
        h.clean_transfer(&job.state.transfer_id)
            .map_err(job.host_err())?;
    }
    let mut on_host: Vec<String> = job
        .state
        .volumes
        .iter()
        .filter_map(|v| v.export_volume_id.clone())
        .collect();
    for (kind, id, _) in tagged(job, src, Side::Src)? {
        if kind == Kind::Volume && !on_host.contains(&id) {
            on_host.push(id);
        }
    }
    let host_id = hosts.map(|h| h.src.id.as_str());
    for (host_id, id) in host_id
        .iter()
        .flat_map(|h| on_host.iter().map(move |v| (*h, v)))
    {
        if detach(src, host_id, id, timeout).map_err(job.cloud_err(
            Side::Src,
            format!("detaching volume {id} from the source conversion host"),
        ))? {
            job.log(&format!(
                "detached volume {id} from the source conversion host"
            ));
            report.detached.push(id.clone());
        }
    }
    for (kind, id, name) in to_remove(
        job,
        src,
        Side::Src,
        &[Kind::Volume, Kind::Snapshot, Kind::Image],
    )? {
        delete(job, src, Side::Src, kind, &id, &name, &mut report)?;
    }
    let server_id = job.server.info.id.clone();
    for i in 0..job.state.detached.len() {
        let d = job.state.detached[i].clone();
        if d.reattached {
            continue;
        }
        let v = src
            .block_storage()
            .get_volume(&d.volume_id)
            .map_err(job.cloud_err(Side::Src, format!("reading volume {}", d.volume_id)))?;
        if !v
            .attachments
            .iter()
            .any(|a| a.server_id.as_deref() == Some(server_id.as_str()))
        {
            if v.status != "available" {
                src.block_storage()
                    .wait_for_volume(&d.volume_id, &["available"], timeout)
                    .map_err(job.cloud_err(
                        Side::Src,
                        format!("waiting for volume {} to be available", d.volume_id),
                    ))?;
            }
            src.compute()
                .attach_volume(&server_id, &d.volume_id, d.device.as_deref(), None)
                .map_err(job.cloud_err(
                    Side::Src,
                    format!(
                        "attaching volume {} back to server {server_id}",
                        d.volume_id
                    ),
                ))?;
        }
        src.block_storage()
            .wait_for_volume(&d.volume_id, &["in-use"], timeout)
            .map_err(job.cloud_err(
                Side::Src,
                format!(
                    "waiting for volume {} to attach to server {server_id}",
                    d.volume_id
                ),
            ))?;
        job.state.detached[i].reattached = true;
        job.save()?;
        job.log(&format!(
            "attached volume {} back to the source server at {}",
            d.volume_id,
            d.device.as_deref().unwrap_or("its device")
        ));
        report.reattached.push(d.volume_id);
    }
    if restart_source {
        let srv = src
            .compute()
            .get_server(&server_id)
            .map_err(job.cloud_err(Side::Src, format!("reading server {server_id}")))?;
        if srv.status == "SHUTOFF" {
            src.compute()
                .start_server(&server_id)
                .map_err(job.cloud_err(Side::Src, format!("starting server {server_id}")))?;
            src.compute()
                .wait_for_server(&server_id, &["ACTIVE"], timeout)
                .map_err(job.cloud_err(
                    Side::Src,
                    format!("waiting for server {server_id} to start"),
                ))?;
            job.log(
                "started the source server again: this run had stopped it and the migration failed",
            );
        }
    }
    job.log(&format!(
        "source cleanup: {} removed, {} detached, {} attached back",
        report.removed.len(),
        report.detached.len(),
        report.reattached.len()
    ));
    Ok(report)
}

/// On failure: deletes what this run created in the destination (a half-made server, ports,
/// floating IPs, volumes). The destination volumes are kept when resuming is on and the failure came
/// during or after the sync, and always in a warm migration (its pre-copies are in them), so that
/// the next run's sync sends only what they lack. `discard_kept` deletes them anyway: abandoning a
/// migration.
pub fn dst_failure_cleanup(
    job: &mut Job,
    dst: &Connection,
    hosts: Option<&Hosts>,
    failure: Option<&str>,
    discard_kept: bool,
) -> Result<CleanupReport, ImportError> {
    let mut report = CleanupReport::default();
    if job.state.status == Status::Done || job.state.transfer_id.is_empty() {
        job.log("destination cleanup: nothing to do (the migration completed, or never started)");
        return Ok(report);
    }
    let timeout = job.settings.timeout;
    let failed_step = job.state.step.clone().unwrap_or_default();
    let keep_volumes = !discard_kept
        && (job.state.warm.is_some()
            || job.settings.resume
                && matches!(failed_step.as_str(), "transfer_volumes" | "create_instance"));
    if let Some(h) = connect_host(job, "destination", hosts, &mut report) {
        h.clean_transfer(&job.state.transfer_id)
            .map_err(job.host_err())?;
    }
    for (kind, id, name) in to_remove(job, dst, Side::Dst, &[Kind::Server])? {
        delete(job, dst, Side::Dst, kind, &id, &name, &mut report)?;
    }
    job.state.dst_server_id = None;
    let volumes = to_remove(job, dst, Side::Dst, &[Kind::Volume])?;
    let host_id = hosts.map(|h| h.dst.id.as_str());
    for (host_id, (_, id, _)) in host_id
        .iter()
        .flat_map(|h| volumes.iter().map(move |v| (*h, v)))
    {
        if detach(dst, host_id, id, timeout).map_err(job.cloud_err(
            Side::Dst,
            format!("detaching volume {id} from the destination conversion host"),
        ))? {
            report.detached.push(id.clone());
        }
    }
    for (kind, id, name) in to_remove(job, dst, Side::Dst, &[Kind::FloatingIp, Kind::Port])? {
        delete(job, dst, Side::Dst, kind, &id, &name, &mut report)?;
    }
    for (kind, id, name) in volumes {
        if keep_volumes {
            report.kept.push(format!("volume {name} ({id})"));
            continue;
        }
        delete(job, dst, Side::Dst, kind, &id, &name, &mut report)?;
        for v in job
            .state
            .volumes
            .iter_mut()
            .filter(|v| v.dst_volume_id.as_deref() == Some(id.as_str()))
        {
            v.dst_volume_id = None;
            v.copied = false;
        }
    }
    if keep_volumes && !report.kept.is_empty() {
        job.log(&format!(
            "kept for the next run, whose sync sends only what they lack: {}",
            report.kept.join(", ")
        ));
    }
    if discard_kept {
        job.state.status = Status::Abandoned;
        job.state.warm = None;
        job.log("abandoned: the destination volumes this migration kept are deleted");
    } else {
        job.state.status = Status::Failed;
    }
    if let Some(f) = failure {
        job.state.error = Some(f.to_string());
    }
    job.save()?;
    job.log(&format!(
        "destination cleanup: {} removed, {} detached",
        report.removed.len(),
        report.detached.len()
    ));
    Ok(report)
}
