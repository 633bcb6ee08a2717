//! The syncs of a workload's volumes, all at once: each over its own SSH session to the destination
//! conversion host and its own tunnels, progress into the shared state file and log.

use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use super::super::{Hosts, ImportError, Job};
use crate::hosts::{ConvHost, SyncEvent, SyncSpec};
use crate::state::{now, Phase, Progress, State, SyncRound};

const MIB: f64 = 1_048_576.0;
const STEP: &str = "transfer_volumes";

/// One volume to sync, attached to the destination conversion host.
pub(crate) struct Plan {
    /// `boot` or `data-<n>`.
    pub role: String,
    /// The source export's socket on the source conversion host.
    pub remote: String,
    /// The destination volume.
    pub dst_id: String,
    /// Whether it was created by this run.
    pub fresh: bool,
    /// Its SSH connections.
    pub streams: usize,
}

/// How every volume is synced.
pub(crate) struct How<'a> {
    /// The transfer's directory on the destination conversion host.
    pub dir: &'a str,
    /// SSH connections per volume at most (the log says when a volume took fewer).
    pub max_streams: usize,
    /// Accept compressed data.
    pub compression: bool,
    /// Prove what was written.
    pub verify: bool,
    /// The phase the rounds belong to.
    pub phase: Phase,
    /// The transfer's digest seed.
    pub seed: &'a str,
    /// The agent on the source conversion host, whose bridge carries each tunnel connection.
    pub src_agent: &'a str,
}

/// Syncs every planned volume at once; one result per plan, in order. The first plan's thread
/// uses `host`, a session to the destination host already open, where there is one.
pub(crate) fn all(
    job: &mut Job,
    hosts: &Hosts,
    plans: &[Plan],
    how: &How<'_>,
    mut host: Option<ConvHost>,
) -> Vec<Result<(), ImportError>> {
    let state = Mutex::new(std::mem::take(&mut job.state));
    let shared: &Job = job;
    let results = thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|p| {
                let host = host.take();
                let state = &state;
                s.spawn(move || one(shared, hosts, p, how, state, host))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(shared.invalid("a volume's sync thread panicked")))
            })
            .collect()
    });
    job.state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = job.save() {
        return vec![Err(e)];
    }
    results
}

fn save(job: &Job, state: &Mutex<State>, f: impl FnOnce(&mut State)) -> Result<(), ImportError> {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut st);
    st.save(&job.paths.state).map_err(ImportError::from)
}

fn one(
    job: &Job,
    hosts: &Hosts,
    p: &Plan,
    how: &How<'_>,
    state: &Mutex<State>,
    host: Option<ConvHost>,
) -> Result<(), ImportError> {
    let host = match host {
        Some(h) => h,
        None => job.connect_host("destination", &hosts.dst, &hosts.login)?,
    };
    let (dir, role) = (how.dir, p.role.as_str());
    let sockets: Vec<String> = (0..p.streams)
        .map(|i| format!("{dir}/{role}.{i}.sock"))
        .collect();
    let tunnel_pids: Vec<String> = (0..p.streams)
        .map(|i| format!("{dir}/{role}.tunnel{i}.pid"))
        .collect();
    let pairs: Vec<(String, String)> = sockets
        .iter()
        .cloned()
        .zip(tunnel_pids.iter().cloned())
        .collect();
    let device = match host.tunnels_to(
        &p.dst_id,
        job.settings.timeout,
        &hosts.src,
        &hosts.login.user,
        &p.remote,
        how.src_agent,
        &pairs,
    ) {
        Ok(device) => device,
        Err(e) => {
            let _ = host.stop(&tunnel_pids);
            return Err(job.host_err()(e));
        }
    };
    save(job, state, |st| {
        st.volume_mut(role).dst_device = Some(device.clone())
    })?;
    job.log.line(
        STEP,
        &format!(
            "{role}: syncing into {} destination volume {} ({device}) over {} SSH connection{}{}",
            super::new_or_kept(p.fresh),
            p.dst_id,
            p.streams,
            if p.streams == 1 { "" } else { "s" },
            if p.streams < how.max_streams {
                format!(
                    " (of {} at most: one per {} MiB of data in use)",
                    how.max_streams,
                    super::BYTES_PER_STREAM >> 20
                )
            } else {
                String::new()
            }
        ),
    );
    let manifest = format!("{dir}/{role}.manifest");
    let spec = SyncSpec {
        sockets: &sockets,
        export: role,
        device: &device,
        manifest: &manifest,
        pid_file: &format!("{dir}/{role}.sync.pid"),
        scanned: &scan_path(dir, role),
        compression: how.compression,
        verify: how.verify,
        seed: how.seed,
    };
    let started = Instant::now();
    let at = now();
    let result = host.sync(&spec, |ev| {
        let _ = save(job, state, |st| report(&job.log, st, role, ev));
    });
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = host.stop(&tunnel_pids);
            return Err(job.host_err()(e));
        }
    };
    // The tunnels stopped and the manifest fetched in one command: both wait within a cutover.
    let bytes = host
        .stop_and_read(&tunnel_pids, &manifest)
        .map_err(job.host_err())?;
    let seconds = started.elapsed().as_secs_f64();
    let root = done.root.clone().unwrap_or_default();
    let local_manifest = save_manifest(job, &bytes, &manifest, role, &root)?;
    job.log.line(
        STEP,
        &format!(
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
            if done.verified {
                "verified"
            } else {
                "NOT verified (verify is off)"
            },
        ),
    );
    save(job, state, |st| {
        let t = st.volume_mut(role);
        t.copied = true;
        t.verified = done.verified;
        t.root_digest = Some(root.clone());
        t.manifest = Some(local_manifest);
        t.progress.percent = 100.0;
        t.rounds.push(SyncRound {
            phase: how.phase,
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
    })
}

/// Where the destination host keeps a volume's scan made ahead of its next sync.
pub(crate) fn scan_path(dir: &str, role: &str) -> String {
    format!("{dir}/{role}.scan")
}

/// Checks that the proven manifest fetched from the destination host (`remote` there) has the root
/// the sync reported, and writes it next to the workload's state; returns its path there.
fn save_manifest(
    job: &Job,
    bytes: &[u8],
    remote: &str,
    role: &str,
    root: &str,
) -> Result<String, ImportError> {
    let path = job.paths.manifest(role);
    let m = osm_sync::Manifest::decode(bytes, remote)
        .map_err(|e| job.invalid(format!("{role}: {e}")))?;
    if m.root().to_string() != root {
        return Err(job.invalid(format!(
            "{role}: the manifest fetched from the destination conversion host has root {}, not the {root} the sync reported",
            m.root()
        )));
    }
    crate::file::write_atomic(&path, bytes, 0o640).map_err(|source| {
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
                    STEP,
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
            STEP,
            &format!(
                "{role}: {} source over {} connections{}{}",
                ev.source.as_deref().unwrap_or("?"),
                ev.connections,
                if ev.free_bytes > 0 {
                    format!(
                        ", {:.1} MiB known free at the source",
                        ev.free_bytes as f64 / MIB
                    )
                } else {
                    String::new()
                },
                match ev.prescan.as_deref() {
                    Some("used") => "; the destination's digests come from its scan before the stop, not read again".to_string(),
                    Some(why) if why.starts_with("ignored") => format!("; the destination's scan made ahead was {why}, so it is read again"),
                    _ => String::new(),
                }
            ),
        ),
        "error" => log.line(
            STEP,
            &format!(
                "{role}: sync failed: {}",
                ev.message.as_deref().unwrap_or("?")
            ),
        ),
        _ => {}
    }
}
