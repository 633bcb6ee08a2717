//! `import_workload_transfer_volumes`: destination volumes, the tunnels, the sync.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use osm_openstack::{Connection, NewVolume};

use super::export_volumes::{attach, detach, transfer_metadata};
use super::{Hosts, ImportError, Job};
use crate::hosts::{ensure_link, ConvHost, SyncEvent, SyncSpec};
use crate::state::{now, Kind, Phase, Progress, Side, Status, SyncRound, VolumeTransfer, Warm};

const MIB: f64 = 1_048_576.0;

/// How the data crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// SSH connections (each its own ssh process, so its own core for the cipher) per volume.
    pub streams: usize,
    /// Compress data that compresses (the workload's `compression` parameter can turn it off).
    pub compression: bool,
    /// Read back and prove what was written (the workload's `verify` parameter can turn it off).
    pub verify: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            streams: 4,
            compression: true,
            verify: true,
        }
    }
}

/// Creates each destination volume (or reuses the one a failed or earlier run left), attaches it to
/// the destination conversion host, forwards the source export to it over several SSH tunnels, has
/// the agent sync it (progress into the log and state files), records the proven manifest, and
/// detaches it.
pub fn transfer_volumes(
    job: &mut Job,
    src: &Connection,
    dst: &Connection,
    hosts: &Hosts,
    opts: &TransferOptions,
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
    let src_agent = src_host.agent();
    drop(src_host);
    let dir = dst_host
        .make_transfer_dir(&job.state.transfer_id)
        .map_err(job.host_err())?;
    let params = &job.server.migration_params;
    let compression = opts.compression && params.compression.unwrap_or(true);
    let verify = opts.verify && params.verify.unwrap_or(true);
    let streams = opts.streams.clamp(1, 16);

    let roles: Vec<String> = job.state.volumes.iter().map(|v| v.role.clone()).collect();
    for role in roles {
        let t = job
            .state
            .volumes
            .iter()
            .find(|v| v.role == role)
            .cloned()
            .unwrap_or_default();
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

        let sockets: Vec<String> = (0..streams)
            .map(|i| format!("{dir}/{role}.{i}.sock"))
            .collect();
        let tunnel_pids: Vec<String> = (0..streams)
            .map(|i| format!("{dir}/{role}.tunnel{i}.pid"))
            .collect();
        let tunnels: Result<(), ImportError> =
            sockets
                .iter()
                .zip(&tunnel_pids)
                .try_for_each(|(local, pid)| {
                    dst_host
                        .tunnel(
                            &hosts.src,
                            &hosts.login.user,
                            &remote,
                            &src_agent,
                            local,
                            pid,
                        )
                        .map_err(job.host_err())
                });
        let stop_tunnels = |h: &ConvHost| tunnel_pids.iter().try_for_each(|p| h.stop(p));
        if let Err(e) = tunnels {
            let _ = stop_tunnels(&dst_host);
            return Err(e);
        }
        job.log(&format!(
            "{role}: syncing into {} destination volume {dst_id} ({device}) over {streams} SSH connections",
            if fresh { "the new" } else { "the kept" }
        ));
        let manifest = format!("{dir}/{role}.manifest");
        let spec = SyncSpec {
            sockets: &sockets,
            export: &role,
            device: &device,
            manifest: &manifest,
            pid_file: &format!("{dir}/{role}.sync.pid"),
            compression,
            verify,
        };
        let started = Instant::now();
        let at = now();
        let result = {
            let paths_state = job.paths.state.clone();
            let log = job.log.clone();
            let state = &mut job.state;
            dst_host.sync(&spec, |ev| {
                report(&log, state, &role, ev);
                let _ = state.save(&paths_state);
            })
        };
        let stopped = stop_tunnels(&dst_host);
        let done = result.map_err(job.host_err())?;
        stopped.map_err(job.host_err())?;
        let seconds = started.elapsed().as_secs_f64();
        let root = done.root.clone().unwrap_or_default();
        let local_manifest = save_manifest(job, &dst_host, &manifest, &role, &root)?;
        job.log(&format!(
            "{role}: synced {:.1} MiB in {seconds:.1} s: {:.1} MiB written, {:.1} MiB zeroed, {:.1} MiB on the wire{}, {} chunks already equal; {}, root {root}",
            done.bytes_total as f64 / MIB,
            done.bytes_written as f64 / MIB,
            done.bytes_zeroed as f64 / MIB,
            done.bytes_on_wire as f64 / MIB,
            if done.compression_ratio > 1.0 {
                format!(" (data compressed {:.2}x)", done.compression_ratio)
            } else {
                String::new()
            },
            done.chunks_equal,
            if done.verified { "verified" } else { "NOT verified (verify is off)" },
        ));
        let t = job.state.volume_mut(&role);
        t.copied = true;
        t.verified = done.verified;
        t.root_digest = Some(root.clone());
        t.manifest = Some(local_manifest);
        t.progress.percent = 100.0;
        t.rounds.push(SyncRound {
            phase: job.settings.phase,
            at,
            seconds: (seconds * 10.0).round() / 10.0,
            bytes_total: done.bytes_total,
            bytes_written: done.bytes_written,
            bytes_zeroed: done.bytes_zeroed,
            bytes_on_wire: done.bytes_on_wire,
            chunks_equal: done.chunks_equal,
            root,
            verified: done.verified,
        });
        job.save()?;
        detach(dst, &hosts.dst.id, &dst_id, timeout).map_err(job.cloud_err(
            Side::Dst,
            format!("detaching volume {dst_id} from the destination conversion host"),
        ))?;
    }
    if job.settings.phase == Phase::Precopy {
        let w = job.state.warm.get_or_insert_with(Warm::default);
        w.precopies += 1;
        w.last_precopy_at = Some(now());
        let n = w.precopies;
        job.state.status = Status::Precopied;
        job.save()?;
        job.log(&format!(
            "pre-copy round {n} finished: the destination volumes hold the source as of this round's snapshots"
        ));
    }
    Ok(job.state.volumes.clone())
}

/// The destination volume of a role: the one recorded by a previous run when it still exists, else
/// a new one. Returns its ID and whether it is new (nothing is assumed about what a new volume
/// holds: the sync proves every chunk).
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

/// Fetches the proven manifest from the destination host, checks that its root is the one the sync
/// reported, and writes it next to the workload's state; returns its path there.
fn save_manifest(
    job: &Job,
    host: &ConvHost,
    remote: &str,
    role: &str,
    root: &str,
) -> Result<String, ImportError> {
    let bytes = host.read_file(remote).map_err(job.host_err())?;
    let path = job.paths.manifest(role);
    let m = osm_sync::Manifest::decode(&bytes, remote)
        .map_err(|e| job.invalid(format!("{role}: {e}")))?;
    if m.root().to_string() != root {
        return Err(job.invalid(format!(
            "{role}: the manifest fetched from the destination conversion host has root {}, not the {root} the sync reported",
            m.root()
        )));
    }
    crate::file::write_atomic(&path, &bytes, 0o640).map_err(|source| {
        ImportError::State(crate::state::StateError::Io {
            path: path.clone(),
            source,
        })
    })?;
    Ok(path.display().to_string())
}

/// Turns a sync event into a log line and the state's progress.
fn report(log: &crate::state::Log, state: &mut crate::state::State, role: &str, ev: &SyncEvent) {
    match ev.event.as_str() {
        "progress" | "done" => {
            let t = state.volume_mut(role);
            t.progress = Progress {
                percent: ev.percent,
                bytes_done: ev.bytes_done,
                bytes_total: ev.bytes_total,
                bytes_read: ev.bytes_read,
                bytes_written: ev.bytes_written,
                bytes_on_wire: ev.bytes_on_wire,
                compression_ratio: ev.compression_ratio,
                chunks_equal: ev.chunks_equal,
                mib_per_s: ev.mib_per_s,
                eta_s: ev.eta_s,
            };
            if ev.event == "progress" {
                let eta = ev
                    .eta_s
                    .map(|e| format!(", ETA {e:.0} s"))
                    .unwrap_or_default();
                log.line(
                    "transfer_volumes",
                    &format!(
                        "{role}: {:.1}% ({:.1} of {:.1} MiB), {:.1} MiB/s, {:.1} MiB read, {:.1} MiB on the wire, compression {:.2}x, {} chunks equal{eta}",
                        ev.percent,
                        ev.bytes_done as f64 / MIB,
                        ev.bytes_total as f64 / MIB,
                        ev.mib_per_s,
                        ev.bytes_read as f64 / MIB,
                        ev.bytes_on_wire as f64 / MIB,
                        ev.compression_ratio,
                        ev.chunks_equal,
                    ),
                );
            }
        }
        "start" => log.line(
            "transfer_volumes",
            &format!(
                "{role}: {} source over {} connections{}",
                ev.source.as_deref().unwrap_or("?"),
                ev.connections,
                if ev.free_bytes > 0 {
                    format!(
                        ", {:.1} MiB known free at the source",
                        ev.free_bytes as f64 / MIB
                    )
                } else {
                    String::new()
                }
            ),
        ),
        "error" => log.line(
            "transfer_volumes",
            &format!(
                "{role}: sync failed: {}",
                ev.message.as_deref().unwrap_or("?")
            ),
        ),
        _ => {}
    }
}
