//! `import_workload_transfer_volumes`: destination volumes, the tunnel, the copy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use osm_openstack::{Connection, NewVolume};

use super::export_volumes::{attach, detach, transfer_metadata};
use super::{Hosts, ImportError, Job};
use crate::hosts::{ensure_link, ConvHost, CopyEvent};
use crate::state::{Kind, Progress, Side, VolumeTransfer};

const MIB: f64 = 1_048_576.0;

/// Creates each destination volume (or reuses the one a failed run left, when resuming), attaches it
/// to the destination conversion host, forwards the source export to it over SSH, has the agent copy
/// it (progress into the log and state files), and detaches it.
pub fn transfer_volumes(
    job: &mut Job,
    src: &Connection,
    dst: &Connection,
    hosts: &Hosts,
) -> Result<Vec<VolumeTransfer>, ImportError> {
    if !job.server.migration_params.data_copy {
        job.log("data_copy is false: nothing to copy");
        return Ok(Vec::new());
    }
    let timeout = job.settings.timeout;
    let src_host = ConvHost::connect("source", &hosts.src, &hosts.login).map_err(job.host_err())?;
    let dst_host =
        ConvHost::connect("destination", &hosts.dst, &hosts.login).map_err(job.host_err())?;
    if dst_host
        .ensure_agent(&hosts.agent)
        .map_err(job.host_err())?
    {
        job.log(&format!(
            "uploaded osm-agent to the destination conversion host {}",
            hosts.dst.name
        ));
    }
    for change in
        ensure_link(&src_host, &dst_host, &hosts.login.known_hosts).map_err(job.host_err())?
    {
        job.log(&format!("link between the conversion hosts: {change}"));
    }
    drop(src_host);
    let dir = dst_host
        .make_transfer_dir(&job.state.transfer_id)
        .map_err(job.host_err())?;
    let verify = job.server.migration_params.verify;

    let roles: Vec<String> = job.state.volumes.iter().map(|v| v.role.clone()).collect();
    for role in roles {
        let t = job
            .state
            .volumes
            .iter()
            .find(|v| v.role == role)
            .cloned()
            .unwrap_or_default();
        if t.copied {
            job.log(&format!("{role}: already copied"));
            continue;
        }
        let Some(remote) = t.src_socket.clone() else {
            return Err(job.invalid(format!(
                "{role}: no source export recorded; import_workload_export_volumes must run first"
            )));
        };
        let (dst_id, fresh) = destination_volume(job, src, dst, &t)?;
        attach(
            job,
            dst,
            &hosts.dst.id,
            &dst_id,
            "destination conversion host",
            timeout,
        )?;
        let device = dst_host
            .find_device(&dst_id, timeout.min(Duration::from_secs(300)))
            .map_err(job.host_err())?;
        job.state.volume_mut(&role).dst_device = Some(device.clone());
        job.save()?;

        let local = format!("{dir}/{role}.sock");
        let tunnel_pid = format!("{dir}/{role}.tunnel.pid");
        dst_host
            .tunnel(&hosts.src, &hosts.login.user, &remote, &local, &tunnel_pid)
            .map_err(job.host_err())?;
        let resume = !fresh && job.settings.resume;
        job.log(&format!(
            "{role}: copying to destination volume {dst_id} ({device}){}",
            if resume {
                ", resuming from the checkpoint of the failed run"
            } else {
                ""
            }
        ));
        let from = format!("nbd+unix:///{role}?socket={local}");
        let checkpoint = format!("{dir}/{role}.ckpt");
        let started = Instant::now();
        let result = {
            let paths_state = job.paths.state.clone();
            let log = job.log.clone();
            let state = &mut job.state;
            dst_host.copy(&from, &device, &checkpoint, fresh, resume, verify, |ev| {
                report(&log, state, &role, ev);
                let _ = state.save(&paths_state);
            })
        };
        let stopped = dst_host.stop(&tunnel_pid);
        let done = result.map_err(job.host_err())?;
        stopped.map_err(job.host_err())?;
        job.log(&format!(
            "{role}: copied {:.1} MiB in {:.1} s ({:.1} MiB over the network){}",
            done.bytes_total as f64 / MIB,
            started.elapsed().as_secs_f64(),
            done.bytes_transferred as f64 / MIB,
            done.sha256
                .as_deref()
                .map(|s| format!(", verified sha256 {s}"))
                .unwrap_or_default()
        ));
        let t = job.state.volume_mut(&role);
        t.copied = true;
        t.progress.percent = 100.0;
        job.save()?;
        detach(dst, &hosts.dst.id, &dst_id, timeout).map_err(job.cloud_err(
            Side::Dst,
            format!("detaching volume {dst_id} from the destination conversion host"),
        ))?;
    }
    Ok(job.state.volumes.clone())
}

/// The destination volume of a role: the one recorded by a previous run when it still exists, else
/// a new one. Returns its ID and whether it is fresh (known to read as zeros).
fn destination_volume(
    job: &mut Job,
    src: &Connection,
    dst: &Connection,
    t: &VolumeTransfer,
) -> Result<(String, bool), ImportError> {
    let timeout = job.settings.timeout;
    if let Some(id) = &t.dst_volume_id {
        match dst.block_storage().get_volume(id) {
            Ok(v) if v.status != "error" => return Ok((v.id, false)),
            Ok(v) => {
                job.log(&format!(
                    "destination volume {} of the failed run is in error: replacing it",
                    v.id
                ));
                dst.block_storage().delete_volume(&v.id, false).map_err(
                    job.cloud_err(Side::Dst, format!("deleting volume {} in error", v.id)),
                )?;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(job.cloud_err(Side::Dst, format!("reading volume {id}"))(e)),
        }
        if let Some(c) = job.state.created.iter_mut().find(|c| {
            c.side == Side::Dst && c.kind == Kind::Volume && c.role == t.role && !c.deleted
        }) {
            c.deleted = true;
        }
    }
    let (name, description, volume_type, az, image_meta) = volume_params(job, &t.role);
    let mut meta = transfer_metadata(job);
    if let Some(s) = &t.source_volume_id {
        meta.insert("osm_source_volume".into(), s.clone());
    }
    let planned_name = name.clone();
    job.state
        .plan(Side::Dst, Kind::Volume, &t.role, &planned_name);
    job.save()?;
    let new = NewVolume {
        size: t.size_gib.max(1),
        name: Some(name),
        description,
        volume_type,
        availability_zone: az,
        metadata: meta,
        ..NewVolume::default()
    };
    let v = dst
        .block_storage()
        .create_volume(&new)
        .map_err(job.cloud_err(
            Side::Dst,
            format!("creating destination volume '{planned_name}'"),
        ))?;
    job.state.set_id(Side::Dst, Kind::Volume, &t.role, &v.id);
    job.state.volume_mut(&t.role).dst_volume_id = Some(v.id.clone());
    job.save()?;
    job.log(&format!(
        "created destination volume '{planned_name}' ({}, {} GiB)",
        v.id, t.size_gib
    ));
    dst.block_storage()
        .wait_for_volume(&v.id, &["available"], timeout)
        .map_err(job.cloud_err(
            Side::Dst,
            format!("waiting for destination volume {}", v.id),
        ))?;
    if t.role == "boot" {
        dst.block_storage()
            .set_volume_bootable(&v.id, true)
            .map_err(job.cloud_err(Side::Dst, format!("marking volume {} bootable", v.id)))?;
        let mut image_meta = image_meta;
        if image_meta.is_empty() {
            if let Some(export) = &t.export_volume_id {
                if let Ok(ev) = src.block_storage().get_volume(export) {
                    image_meta = ev.volume_image_metadata;
                }
            }
        }
        image_meta.retain(|k, _| {
            !matches!(k.as_str(), "image_id" | "checksum" | "size" | "image_name")
                && !k.starts_with("osm_")
        });
        if !image_meta.is_empty() {
            if let Err(e) = dst
                .block_storage()
                .set_volume_image_metadata(&v.id, &image_meta)
            {
                job.log(&format!(
                    "could not copy the boot volume's image metadata: {e}"
                ));
            }
        }
    }
    Ok((v.id, true))
}

type VolumeParams = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    BTreeMap<String, String>,
);

/// Name, description, type, AZ and image metadata of a role's destination volume.
fn volume_params(job: &Job, role: &str) -> VolumeParams {
    let s = &job.server;
    let to_strings = |m: &Option<BTreeMap<String, serde_json::Value>>| -> BTreeMap<String, String> {
        m.iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    };
    if role == "boot" {
        let bp = &s.migration_params.boot_volume_params;
        let src = s.boot_volume();
        let name = bp
            .name
            .clone()
            .or_else(|| src.and_then(|v| v.params.name.clone()))
            .unwrap_or_else(|| format!("{}-boot", s.params.name));
        return (
            name,
            bp.description
                .clone()
                .or_else(|| src.and_then(|v| v.params.description.clone())),
            bp.volume_type
                .clone()
                .or_else(|| src.and_then(|v| v.params.volume_type.clone())),
            bp.availability_zone
                .clone()
                .or_else(|| src.and_then(|v| v.params.availability_zone.clone())),
            src.map(|v| to_strings(&v.params.volume_image_metadata))
                .unwrap_or_default(),
        );
    }
    let index: usize = role
        .strip_prefix("data-")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let v = s.additional_volumes().get(index).map(|v| (*v).clone());
    match v {
        Some(v) => (
            v.params
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{role}", s.params.name)),
            v.params.description.clone(),
            v.params.volume_type.clone(),
            v.params.availability_zone.clone(),
            to_strings(&v.params.volume_image_metadata),
        ),
        None => (
            format!("{}-{role}", s.params.name),
            None,
            None,
            None,
            BTreeMap::new(),
        ),
    }
}

/// Turns a copy event into a log line and the state's progress.
fn report(log: &crate::state::Log, state: &mut crate::state::State, role: &str, ev: &CopyEvent) {
    let total = ev.bytes_total.max(1);
    let percent = (ev.bytes_done as f64 * 1000.0 / total as f64).round() / 10.0;
    match ev.event.as_str() {
        "progress" | "done" => {
            let t = state.volume_mut(role);
            t.progress = Progress {
                percent,
                bytes_done: ev.bytes_done,
                bytes_total: ev.bytes_total,
                bytes_transferred: ev.bytes_transferred,
                mib_per_s: ev.mib_per_s,
                eta_s: ev.eta_s,
            };
            let eta = ev
                .eta_s
                .map(|e| format!(", ETA {e:.0} s"))
                .unwrap_or_default();
            log.line(
                "transfer_volumes",
                &format!(
                    "{role}: {percent:.1}% ({:.1} of {:.1} MiB), {:.1} MiB/s{eta}",
                    ev.bytes_done as f64 / MIB,
                    ev.bytes_total as f64 / MIB,
                    ev.mib_per_s
                ),
            );
        }
        "start" => {
            if let Some(r) = ev.resumed_bytes.filter(|r| *r > 0) {
                log.line(
                    "transfer_volumes",
                    &format!(
                        "{role}: {:.1} MiB already copied by the failed run",
                        r as f64 / MIB
                    ),
                );
            }
        }
        "error" => log.line(
            "transfer_volumes",
            &format!(
                "{role}: copy failed: {}",
                ev.message.as_deref().unwrap_or("?")
            ),
        ),
        _ => {}
    }
}
