//! `import_workload_transfer_volumes`: destination volumes, the tunnels, the sync.

mod sync;
mod volume;

use osm_openstack::Connection;

use super::attachments::{attach_all, detach_all};
use super::{Hosts, ImportError, Job};
use crate::hosts::{agent_path, ensure_link, transfer_dir, ConvHost, HostError};
use crate::state::{new_digest_seed, now, Phase, Side, Status, VolumeTransfer, Warm};
use volume::destination_volume;

/// How the log names a destination volume: made by this run, or kept by an earlier one.
fn new_or_kept(fresh: bool) -> &'static str {
    if fresh {
        "the new"
    } else {
        "the kept"
    }
}

/// The data one SSH connection of a sync is worth. Each connection costs a key exchange: with
/// OpenSSH's default post-quantum one (sntrup761x25519), 70 ms of the client's CPU against 8 ms with
/// curve25519 alone (measured here: 20 connections, 1.41 s and 0.16 s of user time), and the server's
/// share on the other host. One connection moves a few hundred MiB per second: below this much data
/// a second one saves less than its exchange costs, the more so when many workloads share the
/// hosts' cores.
const BYTES_PER_STREAM: u64 = 512 << 20;

/// The SSH connections of one volume's sync: one per [`BYTES_PER_STREAM`] of the data it may move
/// (the bytes its export found in use, else its whole size), at least one, at most `max`.
fn streams_for(max: usize, used_bytes: Option<u64>, size_gib: u64) -> usize {
    let data = used_bytes.unwrap_or(size_gib.saturating_mul(1 << 30));
    usize::try_from(data.div_ceil(BYTES_PER_STREAM))
        .unwrap_or(usize::MAX)
        .clamp(1, max.max(1))
}

/// How the data crosses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOptions {
    /// SSH connections (each its own ssh process, so its own core for the cipher) per volume, at
    /// most: a volume with little data in use takes fewer (see [`streams_for`]).
    pub streams: usize,
    /// Compress data that compresses (the workload's `compression` parameter can turn it off).
    pub compression: bool,
    /// Read back and prove what was written (the workload's `verify` parameter can turn it off).
    pub verify: bool,
    /// Upstream's `os_migrate_workload_boot_volume_prefix`: the destination boot volume of a server
    /// booted from an image is named this followed by the server's name (unless
    /// `boot_volume_params.name` says otherwise); without it, `<server>-boot`.
    pub boot_volume_prefix: Option<String>,
    /// Get ready and stop there: the destination volumes found or created, attached to the
    /// destination conversion host and found there, the agent and the link in place; nothing is
    /// synced or detached. A cutover does this before it stops the source server, so the downtime
    /// is the delta's sync, not the attachments.
    pub prepare: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            streams: 4,
            compression: true,
            verify: true,
            boot_volume_prefix: None,
            prepare: false,
        }
    }
}

/// Connects to both conversion hosts and readies them (the link between them included); with
/// `prepare`, records the login's home on each for the steps after the stop. Returns the
/// destination's transfer directory, the source's agent, and the destination host.
fn ready_hosts(
    job: &mut Job,
    hosts: &Hosts,
    prepare: bool,
) -> Result<(String, String, ConvHost), ImportError> {
    let prepared = job.prepared();
    let (src_host, dst_host) = std::thread::scope(|s| {
        let src_host = s.spawn(|| ConvHost::connect("source", &hosts.src, &hosts.login));
        let dst_host = ConvHost::connect("destination", &hosts.dst, &hosts.login);
        let src_host = src_host.join().unwrap_or_else(|_| {
            Err(HostError::Agent {
                role: "source",
                name: hosts.src.name.clone(),
                message: "the thread connecting to it panicked".into(),
            })
        });
        (src_host, dst_host)
    });
    let src_host = src_host.map_err(job.host_err())?;
    let dst_host = dst_host.map_err(job.host_err())?;
    let dir = job.ready_host(&dst_host, &hosts.agent)?;
    if !prepared {
        for change in
            ensure_link(&src_host, &dst_host, &hosts.login.known_hosts).map_err(job.host_err())?
        {
            job.log(&format!("link between the conversion hosts: {change}"));
        }
    }
    if prepare {
        // The source host's part as well, so that export_volumes after the stop skips it.
        job.ready_host(&src_host, &hosts.agent)?;
        let w = job.state.warm.get_or_insert_with(Warm::default);
        for h in [&src_host, &dst_host] {
            w.homes.insert(h.spec.id.clone(), h.home().to_string());
        }
        job.save()?;
    }
    Ok((dir, src_host.agent(), dst_host))
}

/// Reads a kept destination volume ahead of the cutover's sync, while the source still runs, so
/// that the sync within the downtime reads only the source and what it changes. Nothing but the
/// sync writes the volume, attached to the destination host alone, in between; the sync still
/// checks the scan against the disk. A scan that fails costs only that saving: the sync reads the
/// volume as it would without one.
fn scan_ahead(job: &Job, host: &ConvHost, role: &str, device: &str, dir: &str, seed: &str) {
    let started = std::time::Instant::now();
    match host.scan_ahead(device, &sync::scan_path(dir, role), seed) {
        Ok(read) => job.log(&format!(
            "{role}: the destination volume read ahead of the stop ({:.1} MiB in {:.1} s): the cutover's sync reads only the source",
            read as f64 / 1_048_576.0,
            started.elapsed().as_secs_f64()
        )),
        Err(e) => job.log(&format!(
            "{role}: reading the destination volume ahead failed ({e}); the cutover's sync reads it instead"
        )),
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
    // This run's preparation checked the hosts and the link seconds ago, while the source ran,
    // and recorded where they keep the agent: the sync after the stop connects to neither first.
    let (dir, src_agent, dst_host) = match (
        opts.prepare,
        job.prepared_home(&hosts.src.id),
        job.prepared_home(&hosts.dst.id),
    ) {
        (false, Some(src_home), Some(dst_home)) => (
            transfer_dir(dst_home, &job.state.transfer_id),
            agent_path(src_home),
            None,
        ),
        _ => {
            let (dir, src_agent, dst_host) = ready_hosts(job, hosts, opts.prepare)?;
            (dir, src_agent, Some(dst_host))
        }
    };
    let params = &job.server.migration_params;
    let compression = opts.compression && params.compression.unwrap_or(true);
    let verify = opts.verify && params.verify.unwrap_or(true);
    let streams = opts.streams.clamp(1, 16);

    let roles: Vec<String> = job.state.volumes.iter().map(|v| v.role.clone()).collect();
    // First, serially, what talks to the cloud: each destination volume found or created; then
    // all of them attached to the destination conversion host (requests first, then the waits).
    let mut found = Vec::new();
    for role in roles {
        let t = job
            .state
            .volumes
            .iter()
            .find(|v| v.role == role)
            .cloned()
            .unwrap_or_default();
        if t.src_socket.is_none() && !opts.prepare {
            return Err(job.invalid(format!(
                "{role}: no source export recorded; import_workload_export_volumes must run first"
            )));
        }
        let (dst_id, fresh) =
            destination_volume(job, src, dst, &t, opts.boot_volume_prefix.as_deref())?;
        let streams = streams_for(streams, t.used_bytes, t.size_gib);
        found.push((
            role,
            t.src_socket.unwrap_or_default(),
            dst_id,
            fresh,
            streams,
        ));
    }
    let ids: Vec<String> = found.iter().map(|f| f.2.clone()).collect();
    attach_all(
        job,
        dst,
        &hosts.dst.id,
        &ids,
        "destination conversion host",
        timeout,
    )?;
    if job.state.digest_seed.is_none() {
        job.state.digest_seed = Some(new_digest_seed());
        job.save()?;
    }
    let seed = job.state.digest_seed.clone().unwrap_or_default();
    if let (true, Some(dst_host)) = (opts.prepare, &dst_host) {
        for (role, _, dst_id, fresh, _) in &found {
            let device = dst_host
                .find_device(dst_id, timeout)
                .map_err(job.host_err())?;
            job.state.volume_mut(role).dst_device = Some(device.clone());
            job.save()?;
            job.log(&format!(
                "{role}: {} destination volume {dst_id} is ready for the cutover ({device})",
                new_or_kept(*fresh)
            ));
            scan_ahead(job, dst_host, role, &device, &dir, &seed);
        }
        job.state.warm.get_or_insert_with(Warm::default).prepared_at = Some(now());
        job.save()?;
        return Ok(job.state.volumes.clone());
    }
    // Each volume's sync thread finds its device over its own session, so that the lookups of a
    // server's volumes run together; the first one takes over the session that readied the host
    // (one SSH connection, and its key exchange on both hosts, fewer per workload).
    let plans: Vec<sync::Plan> = found
        .into_iter()
        .map(|(role, remote, dst_id, fresh, streams)| sync::Plan {
            role,
            remote,
            dst_id,
            fresh,
            streams,
        })
        .collect();
    // Then the syncs, all volumes at once (each over its own connections), so that a server's
    // volumes take as long as its largest one, not as their sum.
    let how = sync::How {
        seed: &seed,
        dir: &dir,
        max_streams: streams,
        compression,
        verify,
        phase: job.settings.phase,
        src_agent: &src_agent,
    };
    let results = sync::all(job, hosts, &plans, &how, dst_host);
    // Within a cutover's downtime too: every synced volume's detach requested, then the waits.
    let synced: Vec<String> = plans
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| p.dst_id.clone())
        .collect();
    detach_all(dst, &hosts.dst.id, &synced, timeout).map_err(|(id, e)| {
        job.cloud_err(
            Side::Dst,
            format!("detaching volume {id} from the destination conversion host"),
        )(e)
    })?;
    let first_error = results.into_iter().find_map(Result::err);
    if let Some(e) = first_error {
        return Err(e);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_takes_a_connection_per_share_of_its_data_in_use_within_the_bounds() {
        const MIB: u64 = 1 << 20;
        // A small server's disk: what its filesystem uses, not its size, decides.
        assert_eq!(streams_for(4, Some(30 * MIB), 20), 1);
        assert_eq!(streams_for(4, Some(0), 1), 1);
        assert_eq!(streams_for(4, Some(512 * MIB), 1), 1);
        assert_eq!(streams_for(4, Some(512 * MIB + 1), 1), 2);
        assert_eq!(streams_for(4, Some(1100 * MIB), 8), 3);
        assert_eq!(streams_for(4, Some(100 << 30), 200), 4);
        assert_eq!(streams_for(16, Some(100 << 30), 200), 16);
        // An export that did not say (no sparsify line): the whole disk may be data.
        assert_eq!(streams_for(4, None, 1), 2);
        assert_eq!(streams_for(8, None, 3), 6);
        assert_eq!(streams_for(1, None, 100), 1);
        assert_eq!(streams_for(0, None, 0), 1);
        assert_eq!(streams_for(4, None, u64::MAX), 4);
    }
}
