//! `osm-agent copy`: an NBD export to a local device or file, after nbdcopy's design.
//!
//! Everything is settled first (sizes, connections, zeroing, checkpoint) and printed as the
//! `start` line. The work is cut into ranges that connections take in turn; for each range a
//! connection asks for extents first, zeroes the long zero runs on the target (or skips them
//! when the target is known to be zero), and reads the rest with many requests in flight, capped
//! in count and in bytes. Zero runs inside reads arrive as hole chunks and are handled like
//! extents. Finished ranges go to the checkpoint.

mod checkpoint;
mod source;
mod target;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use self::checkpoint::{Checkpoint, RangeSet};
pub use self::source::{Done, NbdSource, Source, SourceConn};
pub use self::target::{LocalTarget, Target};

/// How much of the export one connection takes at a time.
const RANGE: u64 = 128 << 20;
/// Zero extents shorter than this are read like data: the server sends them as hole chunks
/// anyway, and one read beats many small zero operations.
const MIN_ZERO_RUN: u64 = 64 << 10;
/// The most bytes one connection keeps in flight, whatever `requests x request_size` says.
const MAX_BYTES_IN_FLIGHT: u64 = 64 << 20;
/// Ask for the next extents once fewer bytes than this wait to be read. Small, because a server
/// that scans for zeros reads the data then, and may keep it only briefly for the reads.
const LOOKAHEAD: u64 = 16 << 20;

/// What `copy` was asked to do.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// The NBD URI to read.
    pub from: String,
    /// The device or file to write.
    pub to: PathBuf,
    /// Connections to use when the server allows multi-conn (1 to 4).
    pub connections: usize,
    /// Requests in flight per connection.
    pub requests: usize,
    /// Bytes per read request.
    pub request_size: u64,
    /// The caller vouches that the target reads as zeros.
    pub target_is_zero: bool,
    /// Read both sides back and compare SHA-256 at the end.
    pub verify: bool,
    /// Where to record finished ranges.
    pub checkpoint: Option<PathBuf>,
    /// Skip the ranges the checkpoint records.
    pub resume: bool,
    /// How often to print progress (and save the checkpoint).
    pub progress_interval: Duration,
}

/// Prints one JSON object per line on stdout.
fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the copy; the exit code still tells the outcome.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Runs the copy; on failure prints an `error` line before returning the error.
pub fn run(opts: CopyOptions) -> Result<()> {
    let start = Instant::now();
    copy(&opts, start).inspect_err(|e| {
        emit(json!({"event": "error", "message": format!("{e:#}"), "elapsed_s": secs(start.elapsed())}));
    })
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

struct Shared {
    done: Mutex<RangeSet>,
    work: Mutex<VecDeque<Range<u64>>>,
    bytes_done: AtomicU64,
    transferred: AtomicU64,
    zeroed: AtomicU64,
    abort: AtomicBool,
}

impl Shared {
    fn next_range(&self) -> Option<Range<u64>> {
        self.work.lock().ok()?.pop_front()
    }

    fn finished(&self, r: Range<u64>) {
        self.bytes_done
            .fetch_add(r.end - r.start, Ordering::Relaxed);
        if let Ok(mut d) = self.done.lock() {
            d.insert(r);
        }
    }
}

/// Settled parameters that every worker shares.
struct Plan<'a> {
    target: &'a dyn Target,
    target_zero: bool,
    extents: bool,
    requests: usize,
    request_size: u64,
    max_bytes: u64,
}

fn copy(opts: &CopyOptions, start: Instant) -> Result<()> {
    if !(1..=4).contains(&opts.connections) {
        bail!("--connections must be between 1 and 4");
    }
    if opts.requests == 0 {
        bail!("--requests must be at least 1");
    }
    if !(4096..=u64::from(osm_nbd::MAX_PAYLOAD)).contains(&opts.request_size) {
        bail!(
            "--request-size must be between 4096 and {}",
            osm_nbd::MAX_PAYLOAD
        );
    }
    let source = NbdSource::open(&opts.from)?;
    let size = source.size();
    let previous = match (&opts.checkpoint, opts.resume) {
        (None, true) => bail!("--resume needs --checkpoint"),
        (Some(p), true) => Checkpoint::load(p)?,
        _ => None,
    };
    if let Some(c) = &previous {
        if c.source_size != size {
            bail!(
                "checkpoint {} is for a source of {} bytes, but {} has {size}",
                c.path.display(),
                c.source_size,
                opts.from
            );
        }
    }
    let target = LocalTarget::open(&opts.to, size)?;
    let target_zero = opts.target_is_zero
        || previous
            .as_ref()
            .map_or(target.known_zero(), |c| c.target_was_zero);
    let done = previous
        .as_ref()
        .map(|c| c.done.clone())
        .unwrap_or_default();
    let checkpoint = opts.checkpoint.as_ref().map(|p| Checkpoint {
        path: p.clone(),
        source_size: size,
        target_was_zero: target_zero,
        done: done.clone(),
    });
    let resumed = done.total();

    let wanted = if source.can_multi_conn() {
        opts.connections
    } else {
        1
    };
    // Each extra connection is a convenience: if the server will not take it, go on without.
    let mut conns = vec![source.connect()?];
    let mut conn_errors = Vec::new();
    while conns.len() < wanted.min(size.div_ceil(RANGE).max(1) as usize) {
        match source.connect() {
            Ok(c) => conns.push(c),
            Err(e) => {
                conn_errors.push(format!("{e:#}"));
                break;
            }
        }
    }
    let max_bytes = (opts.requests as u64 * opts.request_size)
        .min(MAX_BYTES_IN_FLIGHT)
        .max(opts.request_size);
    let plan = Plan {
        target: &target,
        target_zero,
        extents: source.can_extents(),
        requests: opts.requests,
        request_size: opts.request_size,
        max_bytes,
    };
    let mut settings = json!({
        "event": "start",
        "from": opts.from,
        "to": opts.to,
        "size": size,
        "target_size": target.size(),
        "connections": conns.len(),
        "multi_conn": source.can_multi_conn(),
        "requests": opts.requests,
        "request_size": opts.request_size,
        "max_bytes_in_flight": max_bytes,
        "extents": plan.extents,
        "hole_chunks": source.can_holes(),
        "target_is_zero": target_zero,
        "zero_method": if target_zero { "skip" } else { target.zero_method() },
        "verify": opts.verify,
        "checkpoint": opts.checkpoint,
        "resume": opts.resume,
        "resumed_bytes": resumed,
    });
    if !conn_errors.is_empty() {
        settings["connection_errors"] = json!(conn_errors);
    }
    emit(settings);

    let mut work = VecDeque::new();
    for r in done.missing(size) {
        let mut at = r.start;
        while at < r.end {
            let end = (at / RANGE + 1).saturating_mul(RANGE).min(r.end);
            work.push_back(at..end);
            at = end;
        }
    }
    let shared = Shared {
        done: Mutex::new(done),
        work: Mutex::new(work),
        bytes_done: AtomicU64::new(resumed),
        transferred: AtomicU64::new(0),
        zeroed: AtomicU64::new(0),
        abort: AtomicBool::new(false),
    };
    let copy_start = Instant::now();
    let progress = |final_line: bool| -> Value {
        let done = shared.bytes_done.load(Ordering::Relaxed);
        let elapsed = copy_start.elapsed().as_secs_f64();
        let rate = (done - resumed) as f64 / elapsed.max(1e-6);
        let mut v = json!({
            "event": if final_line { "done" } else { "progress" },
            "bytes_done": done,
            "bytes_total": size,
            "bytes_transferred": shared.transferred.load(Ordering::Relaxed),
            "bytes_zeroed": shared.zeroed.load(Ordering::Relaxed),
            "mib_per_s": (rate / 1048576.0 * 10.0).round() / 10.0,
            "elapsed_s": secs(copy_start.elapsed()),
        });
        if !final_line {
            v["eta_s"] = json!(if rate > 0.0 {
                ((size - done) as f64 / rate).round()
            } else {
                0.0
            });
        }
        v
    };
    let save = |flush: bool| -> Result<()> {
        if let Some(c) = &checkpoint {
            // Data must be durable before the checkpoint claims it is there.
            if flush {
                target.flush().context("flushing the target")?;
            }
            let mut c = c.clone();
            c.done = shared
                .done
                .lock()
                .map_err(|_| anyhow!("lock poisoned"))?
                .clone();
            c.save()?;
        }
        Ok(())
    };

    let (tx, rx) = mpsc::channel::<(usize, Result<Box<dyn SourceConn>>)>();
    let mut first_error: Option<anyhow::Error> = None;
    let mut kept: Option<Box<dyn SourceConn>> = None;
    thread::scope(|s| {
        let n = conns.len();
        for (i, mut conn) in conns.drain(..).enumerate() {
            let tx = tx.clone();
            let (plan, shared) = (&plan, &shared);
            s.spawn(move || {
                let r = worker(conn.as_mut(), plan, shared);
                if r.is_err() {
                    shared.abort.store(true, Ordering::Relaxed);
                }
                let _ = tx.send((i, r.map(|()| conn)));
            });
        }
        let mut finished = 0;
        while finished < n {
            match rx.recv_timeout(opts.progress_interval) {
                Ok((i, r)) => {
                    finished += 1;
                    match r {
                        Ok(c) if i == 0 => kept = Some(c),
                        Ok(_) => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(_) => {
                    emit(progress(false));
                    if let Err(e) = save(true) {
                        shared.abort.store(true, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
    });
    if let Some(e) = first_error {
        // Record what did finish, so --resume can skip it; the copy error is the one to report.
        let _ = save(true);
        return Err(e);
    }
    target.flush().context("flushing the target")?;
    save(false)?;
    let mut done_line = progress(true);
    done_line["elapsed_s"] = json!(secs(start.elapsed()));
    if opts.verify {
        let conn = kept.ok_or_else(|| anyhow!("no source connection left to verify with"))?;
        let digest = verify(conn, &target, size, opts)?;
        done_line["sha256"] = json!(digest);
        done_line["elapsed_s"] = json!(secs(start.elapsed()));
    }
    emit(done_line);
    Ok(())
}

fn worker(conn: &mut dyn SourceConn, plan: &Plan<'_>, sh: &Shared) -> Result<()> {
    let mut todo: VecDeque<Range<u64>> = VecDeque::new();
    let mut todo_bytes = 0u64;
    let mut mapping: Option<Range<u64>> = None;
    let mut extents_pending = false;
    let mut exhausted = false;
    let mut reads = 0usize;
    let mut in_flight = 0u64;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    loop {
        if sh.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Map the next range a little ahead of time, so reads never wait for extents.
        if !extents_pending && todo_bytes < LOOKAHEAD {
            if mapping.is_none() && !exhausted {
                mapping = sh.next_range();
                exhausted = mapping.is_none();
            }
            if let Some(r) = mapping.clone() {
                if plan.extents {
                    conn.submit_extents(r.start, r.end - r.start)?;
                    extents_pending = true;
                } else {
                    todo_bytes += queue_reads(&mut todo, r, plan.request_size);
                    mapping = None;
                }
            }
        }
        while let Some(p) = todo.front().cloned() {
            let len = p.end - p.start;
            if reads >= plan.requests || in_flight + len > plan.max_bytes {
                break;
            }
            todo.pop_front();
            todo_bytes -= len;
            let mut buf = pool.pop().unwrap_or_default();
            buf.resize(len as usize, 0);
            conn.submit_read(p.start, buf)?;
            reads += 1;
            in_flight += len;
        }
        if reads == 0 && !extents_pending {
            if todo.is_empty() && mapping.is_none() && exhausted {
                return Ok(());
            }
            continue;
        }
        match conn.next()? {
            Done::Extents(extents) => {
                extents_pending = false;
                let r = mapping
                    .take()
                    .ok_or_else(|| anyhow!("extents arrived for no range"))?;
                let mut at = r.start;
                let mut data_from: Option<u64> = None;
                for e in &extents {
                    if at >= r.end {
                        break;
                    }
                    if e.offset != at {
                        bail!("source extents are not contiguous at {at}");
                    }
                    let end = e.end().min(r.end);
                    if e.is_zero() && end - at >= MIN_ZERO_RUN {
                        if let Some(d) = data_from.take() {
                            todo_bytes += queue_reads(&mut todo, d..at, plan.request_size);
                        }
                        if !plan.target_zero {
                            plan.target.zero(at, end - at).with_context(|| {
                                format!("zeroing {} bytes at {at} on the target", end - at)
                            })?;
                        }
                        sh.zeroed.fetch_add(end - at, Ordering::Relaxed);
                        sh.finished(at..end);
                    } else if data_from.is_none() {
                        data_from = Some(at);
                    }
                    at = end;
                }
                if let Some(d) = data_from {
                    todo_bytes += queue_reads(&mut todo, d..at, plan.request_size);
                }
                if at < r.end {
                    mapping = Some(at..r.end);
                }
            }
            Done::Read { offset, buf, holes } => {
                let len = buf.len() as u64;
                reads -= 1;
                in_flight -= len;
                store(plan, sh, offset, &buf, holes)?;
                sh.finished(offset..offset + len);
                pool.push(buf);
            }
        }
    }
}

/// Cuts `r` into reads at multiples of `size`, so requests stay aligned.
fn queue_reads(todo: &mut VecDeque<Range<u64>>, r: Range<u64>, size: u64) -> u64 {
    let mut at = r.start;
    while at < r.end {
        let end = (at / size + 1).saturating_mul(size).min(r.end);
        todo.push_back(at..end);
        at = end;
    }
    r.end - r.start
}

/// Writes what a read returned: data as data, and the holes by the zeroing policy.
fn store(
    plan: &Plan<'_>,
    sh: &Shared,
    offset: u64,
    buf: &[u8],
    mut holes: Vec<Range<u64>>,
) -> Result<()> {
    let end = offset + buf.len() as u64;
    let hole_bytes: u64 = holes.iter().map(|h| h.end - h.start).sum();
    sh.transferred
        .fetch_add(buf.len() as u64 - hole_bytes, Ordering::Relaxed);
    // Short holes are written with the data around them (the buffer holds zeros there) unless
    // the target already reads as zeros.
    holes.retain(|h| plan.target_zero || h.end - h.start >= MIN_ZERO_RUN);
    holes.sort_by_key(|h| h.start);
    let mut at = offset;
    for h in holes.iter().chain(std::iter::once(&(end..end))) {
        if h.start > at {
            let s = (at - offset) as usize..(h.start - offset) as usize;
            plan.target
                .write_at(&buf[s], at)
                .with_context(|| format!("writing {} bytes at {at} to the target", h.start - at))?;
        }
        if h.end > h.start {
            if !plan.target_zero {
                plan.target
                    .zero(h.start, h.end - h.start)
                    .with_context(|| format!("zeroing at {} on the target", h.start))?;
            }
            sh.zeroed.fetch_add(h.end - h.start, Ordering::Relaxed);
        }
        at = at.max(h.end);
    }
    Ok(())
}

/// Reads both sides back and compares their SHA-256; returns the digest.
fn verify(
    mut conn: Box<dyn SourceConn>,
    target: &dyn Target,
    size: u64,
    opts: &CopyOptions,
) -> Result<String> {
    let (src, dst) = thread::scope(|s| {
        let dst = s.spawn(|| -> Result<String> {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 4 << 20];
            let mut at = 0;
            while at < size {
                let n = (size - at).min(buf.len() as u64) as usize;
                target
                    .read_at(&mut buf[..n], at)
                    .with_context(|| format!("reading the target back at {at}"))?;
                h.update(&buf[..n]);
                at += n as u64;
            }
            Ok(hex(&h.finalize()))
        });
        let src = (|| -> Result<String> {
            let mut h = Sha256::new();
            let mut next_submit = 0u64;
            let mut next_hash = 0u64;
            let mut ready: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut in_flight = 0usize;
            while next_hash < size {
                while next_submit < size && in_flight < opts.requests.min(16) {
                    let n = (size - next_submit).min(opts.request_size);
                    conn.submit_read(next_submit, vec![0; n as usize])?;
                    next_submit += n;
                    in_flight += 1;
                }
                match conn.next()? {
                    Done::Read { offset, buf, .. } => {
                        in_flight -= 1;
                        ready.insert(offset, buf);
                    }
                    Done::Extents(_) => bail!("unexpected extents while verifying"),
                }
                while let Some(buf) = ready.remove(&next_hash) {
                    h.update(&buf);
                    next_hash += buf.len() as u64;
                }
            }
            Ok(hex(&h.finalize()))
        })();
        (
            src,
            dst.join()
                .unwrap_or_else(|_| Err(anyhow!("target reader panicked"))),
        )
    });
    let (src, dst) = (src?, dst?);
    if src != dst {
        bail!("verification failed: source sha256 {src}, target sha256 {dst}");
    }
    Ok(src)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
