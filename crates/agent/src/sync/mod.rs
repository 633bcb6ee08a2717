//! `osm-agent sync`: makes a local disk hold exactly a source's bytes, and proves it.
//!
//! Settled first (the source's kind and size, the connections, the chunking, the zeroing
//! method) and printed as the `start` line. Then, as in nbdcopy, work is cut into ranges that the
//! connections take in turn, with several in flight each:
//!
//! 1. scanners digest the destination's chunks of each range, reading its own disk (holes of a
//!    sparse file and zero chunks cost no hashing), or take them from a scan made ahead
//!    ([`prescan`]) where it still holds;
//! 2. a worker per connection sends the digests to the source and applies what comes back:
//!    equal chunks are left alone, zero chunks go through the zeroing policy, data is written;
//!    chunks that differ where the destination holds data get only their differing blocks;
//! 3. a verifier reads back every chunk it changed (what the final flush makes durable) and
//!    digests it again.
//!
//! The sync ends with the destination's manifest (every chunk digest, read from its own disk)
//! equal to the source's, or fails naming the first offsets that differ. A retry, a re-sync after
//! the source changed and the delta of a warm cutover are the same run: nothing is remembered
//! between runs but what the destination disk holds.

mod compress;
mod nbd;
mod peer;
pub mod prescan;
mod progress;
mod server;
mod source;
pub mod target;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use osm_nbd::{Client, ClientConfig, Negotiated, Stream, Upgrade, Uri};
use osm_sync::{
    chunk_count, leaf_sums, upgrade_data, Digest, Hasher, Hello, Manifest, Zeros, ALGORITHM,
    ALGORITHM_ID, UPGRADE_OPTION, VERSION,
};
use serde_json::json;

pub use self::compress::DEFAULT_LEVEL;
use self::prescan::{Prescan, Taken};
use self::progress::{add, emit, secs, Stats};
pub use self::server::SyncServer;
use self::source::{Event, Source, SourceStream};
use self::target::{Layout, Scanned, Target};
use crate::disk::AlignedBuf;
use crate::queue::Queue;

/// What `sync` was asked to do.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The source's NBD URIs: one per connection (each through its own tunnel, for an agent).
    pub from: Vec<String>,
    /// The device or file to write (a missing file is created).
    pub to: PathBuf,
    /// Where to write the proven manifest.
    pub manifest: Option<PathBuf>,
    /// A scan of the destination made ahead (`osm-agent scan`), used in place of reading it
    /// where it still holds, and removed; a missing file means none.
    pub scanned: Option<PathBuf>,
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// Bytes per block, the unit of partial chunk updates.
    pub block_size: u32,
    /// Accept compressed data.
    pub compression: bool,
    /// Read back and digest what was changed.
    pub verify: bool,
    /// The digests' seed (the same for every sync of a transfer, so their manifests compare).
    pub seed: u64,
    /// Connections to an NBD server that allows several, when `from` names just one.
    pub connections: usize,
    /// How often to print progress.
    pub progress_interval: Duration,
    /// How long a peer may stay silent.
    pub timeout: Duration,
}

/// Chunks per range: the unit of work a connection takes and of the read-back.
const RANGE_CHUNKS: u64 = 16;
/// Ranges one connection keeps asked, so the source never waits for the next question. A round
/// trip of small frames over the SSH link takes far longer than the source's work on a chunk it
/// need not send: with 3 ranges, the unchanged part of a re-sync was settled 3 times slower than
/// with 12 (measured through ssh on 127.0.0.1; 32 gained nothing more).
const WINDOW: usize = 12;
/// Threads digesting the destination ahead of the questions (each with one read in flight).
const SCANNERS: usize = 3;
/// Flush the destination behind the copy once this much was written since the last flush.
const FLUSH_EVERY: u64 = 128 << 20;
/// How often writeback of what was written since is started between flushes.
const WRITEBACK_TICK: Duration = Duration::from_millis(100);

/// Progress lines come at most this often, whatever `--progress-interval` asks.
const MIN_PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// Wakes the threads that wait for the others (the sync's end, the proof's end) at once: a
/// re-sync takes a fraction of a second, so a poll's period would show as a share of it.
#[derive(Default)]
struct Bell {
    lock: Mutex<()>,
    rung: Condvar,
}

impl Bell {
    fn ring(&self) {
        let _held = self.lock.lock();
        self.rung.notify_all();
    }

    /// Waits until `done` holds, or `timeout` passed; returns whether `done` holds.
    fn wait(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        if let Ok(held) = self.lock.lock() {
            let _ = self.rung.wait_timeout_while(held, timeout, |_| !done());
        }
        done()
    }
}

/// Runs the sync; on failure prints an `error` line before returning the error.
pub fn run(opts: SyncOptions) -> Result<()> {
    let start = Instant::now();
    sync(&opts, start).inspect_err(|e| {
        emit(json!({"event": "error", "message": format!("{e:#}"), "elapsed_s": secs(start.elapsed())}));
    })
}

/// Refuses a chunk size the digests and the protocol do not take.
fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !chunk_size.is_power_of_two() || !(64 << 10..=4 << 20).contains(&chunk_size) {
        bail!("--chunk-size must be a power of two from 65536 to 4194304");
    }
    Ok(())
}

fn check(opts: &SyncOptions) -> Result<()> {
    if opts.from.is_empty() {
        bail!("--from is required");
    }
    check_chunk_size(opts.chunk_size)?;
    if !opts.block_size.is_power_of_two() || !(512..=opts.chunk_size).contains(&opts.block_size) {
        bail!("--block-size must be a power of two from 512 to the chunk size");
    }
    if !(1..=16).contains(&opts.connections) {
        bail!("--connections must be between 1 and 16");
    }
    Ok(())
}

/// Connects to every URI, asking each to switch to the sync protocol: an agent says yes, any
/// other NBD server says no and is read as plain NBD.
fn open_source(opts: &SyncOptions) -> Result<Box<dyn Source>> {
    let hello = Hello {
        version: VERSION,
        algorithm: ALGORITHM_ID,
        chunk_size: opts.chunk_size,
        block_size: opts.block_size,
        compression: opts.compression,
        seed: opts.seed,
    };
    let connect = |uri: &str, upgrade: bool| -> Result<Negotiated> {
        let parsed = Uri::parse(uri).with_context(|| format!("--from {uri}"))?;
        let stream = parsed
            .address
            .connect()
            .with_context(|| format!("connecting to {uri}"))?;
        stream.set_read_timeout(Some(opts.timeout))?;
        let mut cfg = ClientConfig::new(&parsed.export);
        if upgrade {
            cfg.upgrade = Some(Upgrade {
                option: UPGRADE_OPTION,
                data: upgrade_data(&parsed.export),
            });
        }
        Client::negotiate(stream, cfg).with_context(|| format!("connecting to {uri}"))
    };
    let mut agents = Vec::new();
    let mut nbd = Vec::new();
    for uri in &opts.from {
        match connect(uri, true)? {
            Negotiated::Upgraded(s) => agents.push((uri.clone(), s)),
            Negotiated::Nbd(c, _) => nbd.push((uri.clone(), *c)),
        }
    }
    if !agents.is_empty() {
        if let Some((uri, _)) = nbd.first() {
            bail!("{uri} is a plain NBD server while {} is an agent: all --from must be the same source", agents[0].0);
        }
        return Ok(Box::new(peer::PeerSource::open(
            agents,
            &hello,
            opts.timeout,
        )?));
    }
    let first = opts.from[0].clone();
    if nbd.len() == 1
        && nbd[0]
            .1
            .flags()
            .contains(osm_nbd::TransmissionFlags::CAN_MULTI_CONN)
    {
        while nbd.len() < opts.connections {
            match connect(&first, false) {
                Ok(Negotiated::Nbd(c, _)) => nbd.push((first.clone(), *c)),
                // Extra connections are a convenience: go on with what there is.
                _ => break,
            }
        }
    }
    Ok(Box::new(nbd::NbdSource::new(
        nbd,
        opts.chunk_size.into(),
        Hasher::new(opts.seed),
    )?))
}

fn sync(opts: &SyncOptions, start: Instant) -> Result<()> {
    check(opts)?;
    let source = open_source(opts)?;
    let size = source.size();
    let target = Target::open(&opts.to, size)?;
    let layout = Layout::new(Hasher::new(opts.seed), opts.chunk_size.into(), size);
    let taken = match &opts.scanned {
        Some(p) => prescan::take(p, &target, &layout)?,
        None => Taken::Missing,
    };
    let streams = source.take_streams();
    emit(json!({
        "event": "start",
        "from": opts.from,
        "to": opts.to,
        "source": source.kind(),
        "size": size,
        "target_size": target.size(),
        "connections": streams.len(),
        "chunk_size": opts.chunk_size,
        "block_size": opts.block_size,
        "digest": ALGORITHM,
        "seed": format!("{:016x}", opts.seed),
        "compression": source.compression(),
        "zero_method": target.zero_method(),
        "verify": opts.verify,
        "free_bytes": source.free_bytes(),
        "manifest": opts.manifest,
        "prescan": taken.describe(),
    }));
    let prescan = match taken {
        Taken::Used(p) => Some(p),
        _ => None,
    };
    let engine = Engine::new(&target, size, opts, prescan);
    let (src, dst) = engine.run(source.as_ref(), streams, opts.progress_interval)?;
    let diff = src.differences(&dst, 8);
    if !diff.is_empty() {
        bail!(
            "verification failed: {} differs from the source at offsets {}",
            opts.to.display(),
            diff.iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(p) = &opts.manifest {
        src.write_atomic(p)?;
    }
    let mut done = engine
        .stats
        .line(size, source.wire_bytes(), engine.started, true);
    done["root"] = json!(src.root().to_string());
    done["verified"] = json!(opts.verify);
    done["chunks"] = json!(src.digests.len());
    done["elapsed_s"] = json!(secs(start.elapsed()));
    emit(done);
    Ok(())
}

/// One range asked of the source: the destination's digests and what the source said so far.
struct RangeState {
    first: u64,
    dst: Vec<Digest>,
    /// The destination's leaf digests of each chunk that held data.
    leaves: Vec<Vec<Digest>>,
    src: Vec<Option<Digest>>,
    changed: Vec<bool>,
    patched: Vec<bool>,
    /// What was written into each patched chunk, the only part its proof reads back.
    written: Vec<Vec<Range<usize>>>,
    left: usize,
}

impl RangeState {
    fn new(first: u64, scanned: Scanned) -> RangeState {
        let n = scanned.digests.len();
        RangeState {
            first,
            dst: scanned.digests,
            leaves: scanned.leaves,
            src: vec![None; n],
            changed: vec![false; n],
            patched: vec![false; n],
            written: vec![Vec::new(); n],
            left: n,
        }
    }
}

struct Engine<'a> {
    target: &'a Target,
    /// The destination's digests read ahead, where they still hold.
    prescan: Option<Prescan>,
    size: u64,
    cs: u64,
    block: usize,
    chunks: u64,
    ranges: u64,
    hasher: Hasher,
    layout: Layout,
    zeros: Zeros,
    verify: bool,
    stats: Stats,
    started: Instant,
    src: Mutex<Vec<Digest>>,
    dst: Mutex<Vec<Digest>>,
    settled: AtomicU64,
    next_scan: AtomicU64,
    scanned: Queue<(u64, Scanned)>,
    proven: Queue<RangeState>,
    scanners_left: AtomicUsize,
    workers_left: AtomicUsize,
    proved: AtomicBool,
    running: AtomicUsize,
    aborted: AtomicBool,
    /// Rung when a thread ends, the proof is done or the sync fails.
    bell: Bell,
    error: Mutex<Option<anyhow::Error>>,
    shutdowns: Mutex<Vec<Stream>>,
}

impl<'a> Engine<'a> {
    fn new(
        target: &'a Target,
        size: u64,
        opts: &SyncOptions,
        prescan: Option<Prescan>,
    ) -> Engine<'a> {
        let cs = u64::from(opts.chunk_size);
        let chunks = chunk_count(size, opts.chunk_size);
        Engine {
            target,
            prescan,
            size,
            cs,
            block: opts.block_size as usize,
            chunks,
            ranges: chunks.div_ceil(RANGE_CHUNKS),
            hasher: Hasher::new(opts.seed),
            layout: Layout::new(Hasher::new(opts.seed), cs, size),
            zeros: Hasher::new(opts.seed).zeros(cs, size),
            verify: opts.verify,
            stats: Stats::default(),
            started: Instant::now(),
            src: Mutex::new(vec![Digest::default(); chunks as usize]),
            dst: Mutex::new(vec![Digest::default(); chunks as usize]),
            settled: AtomicU64::new(0),
            next_scan: AtomicU64::new(0),
            scanned: Queue::new(WINDOW * 2),
            proven: Queue::new(usize::MAX),
            scanners_left: AtomicUsize::new(SCANNERS),
            workers_left: AtomicUsize::new(0),
            proved: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            aborted: AtomicBool::new(false),
            bell: Bell::default(),
            error: Mutex::new(None),
            shutdowns: Mutex::new(Vec::new()),
        }
    }

    fn chunk_len(&self, chunk: u64) -> u64 {
        self.cs.min(self.size - chunk * self.cs)
    }

    /// Records the first failure and stops everything: queues end, connections are shut so that
    /// blocked reads return.
    fn fail(&self, e: anyhow::Error) {
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
        self.aborted.store(true, Ordering::SeqCst);
        self.scanned.abort();
        self.proven.abort();
        if let Ok(s) = self.shutdowns.lock() {
            for s in s.iter() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        self.bell.ring();
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Runs `f` as one of the sync's threads: a failure or a panic stops the whole sync, and
    /// the thread is counted out whatever happens, so the caller never waits for a dead one.
    fn guarded(&self, what: &str, f: impl FnOnce() -> Result<()>) {
        let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(anyhow!("the {what} thread panicked: {msg}"))
        });
        if let Err(e) = r {
            self.fail(e);
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.bell.ring();
    }

    fn run(
        &self,
        source: &dyn Source,
        mut streams: Vec<Box<dyn SourceStream>>,
        interval: Duration,
    ) -> Result<(Manifest, Manifest)> {
        if let Ok(mut s) = self.shutdowns.lock() {
            s.extend(streams.iter().filter_map(|s| s.shutdown_handle()));
        }
        self.workers_left.store(streams.len(), Ordering::SeqCst);
        self.running
            .store(SCANNERS + streams.len() + 2, Ordering::SeqCst);
        thread::scope(|s| {
            for _ in 0..SCANNERS {
                s.spawn(|| {
                    self.guarded("scanner", || self.scan());
                    if self.scanners_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                        self.scanned.close();
                    }
                });
            }
            for mut stream in streams.drain(..) {
                s.spawn(move || {
                    self.guarded("connection", || self.work(stream.as_mut()));
                    if self.workers_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                        self.proven.close();
                    }
                });
            }
            s.spawn(|| {
                self.guarded("verifier", || self.prove());
                self.proved.store(true, Ordering::SeqCst);
                self.bell.ring();
            });
            s.spawn(|| self.guarded("flusher", || self.flush_behind()));
            let interval = interval.max(MIN_PROGRESS_INTERVAL);
            let mut last = Instant::now();
            let ended = || self.running.load(Ordering::SeqCst) == 0;
            while !self
                .bell
                .wait(interval.saturating_sub(last.elapsed()), ended)
            {
                if last.elapsed() >= interval {
                    emit(
                        self.stats
                            .line(self.size, source.wire_bytes(), self.started, false),
                    );
                    last = Instant::now();
                }
            }
        });
        if let Some(e) = self.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let settled = self.settled.load(Ordering::SeqCst);
        if settled != self.chunks {
            bail!("only {settled} of {} chunks were settled", self.chunks);
        }
        self.target.flush().context("flushing the destination")?;
        let take = |m: &Mutex<Vec<Digest>>| {
            m.lock()
                .map(|mut v| std::mem::take(&mut *v))
                .map_err(|_| anyhow!("a manifest lock was poisoned"))
        };
        let manifest = |digests| Manifest {
            chunk_size: self.cs as u32,
            size: self.size,
            seed: self.hasher.seed,
            digests,
        };
        Ok((manifest(take(&self.src)?), manifest(take(&self.dst)?)))
    }

    /// Flushes the destination while the copy runs. The final flush waits for everything not
    /// flushed yet (on a virtual disk, the host's cache as well: seconds per GiB on the reference
    /// machine), while the copy itself is bound by the CPU and the link, not the disk: flushing
    /// behind it takes that wait off the end, and a crash loses less. Between flushes, writeback
    /// of what was written is started every [`WRITEBACK_TICK`], so that even a delta too small to
    /// reach a flush (a warm cutover's scattered blocks) is mostly on disk when the sync ends.
    fn flush_behind(&self) -> Result<()> {
        let (mut flushed_at, mut started_at) = (0, 0);
        let mut started = Instant::now();
        let over = || self.aborted() || self.proved.load(Ordering::SeqCst);
        while !over() {
            let written = self.stats.bytes_written.load(Ordering::Relaxed);
            if written - flushed_at >= FLUSH_EVERY {
                (flushed_at, started_at) = (written, written);
                self.target
                    .flush()
                    .context("flushing the destination behind the copy")?;
                continue;
            }
            if written > started_at && started.elapsed() >= WRITEBACK_TICK {
                (started_at, started) = (written, Instant::now());
                // Only a hint: the flushes make everything durable.
                let _ = self.target.start_writeback();
            }
            // Short, to start a flush soon after enough was written; the proof's end rings.
            self.bell.wait(Duration::from_millis(20), over);
        }
        Ok(())
    }

    /// Digests the destination's ranges, in turn with the other scanners.
    fn scan(&self) -> Result<()> {
        let mut buf = AlignedBuf::default();
        while !self.aborted() {
            let r = self.next_scan.fetch_add(1, Ordering::SeqCst);
            if r >= self.ranges {
                break;
            }
            let first = r * RANGE_CHUNKS;
            let count = RANGE_CHUNKS.min(self.chunks - first);
            let scanned = match &self.prescan {
                Some(p) => p.digests(self.target, &self.layout, first, count, &mut buf),
                None => self.target.digests(&self.layout, first, count, &mut buf),
            }
            .with_context(|| format!("reading the destination at {}", first * self.cs))?;
            add(&self.stats.bytes_read, scanned.read);
            if !self.scanned.push((r, scanned)) {
                break;
            }
        }
        Ok(())
    }

    /// One connection: asks about scanned ranges, a few at a time, and applies the answers.
    fn work(&self, stream: &mut dyn SourceStream) -> Result<()> {
        let mut asked: BTreeMap<u64, RangeState> = BTreeMap::new();
        let mut buf = AlignedBuf::default();
        while !self.aborted() {
            while asked.len() < WINDOW {
                let next = if asked.is_empty() {
                    self.scanned.pop()
                } else {
                    self.scanned.try_pop()
                };
                let Some((r, scanned)) = next else { break };
                let first = r * RANGE_CHUNKS;
                stream.compare(first, &scanned.digests)?;
                asked.insert(r, RangeState::new(first, scanned));
            }
            if asked.is_empty() {
                break;
            }
            let ev = stream.next()?;
            if let Some((chunk, sums)) = self.apply(ev, &mut asked, &mut buf)? {
                stream.blocks(chunk, &sums)?;
            }
        }
        if !self.aborted() {
            stream.finish()?;
        }
        Ok(())
    }

    /// Applies one event; returns the block sums to send when the source asked for them.
    fn apply(
        &self,
        ev: Event<'_>,
        asked: &mut BTreeMap<u64, RangeState>,
        buf: &mut AlignedBuf,
    ) -> Result<Option<(u64, Vec<u64>)>> {
        let chunk = match &ev {
            Event::Same { chunk }
            | Event::Zero { chunk }
            | Event::Differs { chunk }
            | Event::Data { chunk, .. }
            | Event::Zeros { chunk, .. }
            | Event::ChunkEnd { chunk, .. } => *chunk,
        };
        let r = chunk / RANGE_CHUNKS;
        let st = asked
            .get_mut(&r)
            .ok_or_else(|| anyhow!("the source answered for chunk {chunk}, which was not asked"))?;
        let i = (chunk - st.first) as usize;
        if st.src[i].is_some() {
            bail!("the source answered twice for chunk {chunk}");
        }
        let offset = chunk * self.cs;
        let len = self.chunk_len(chunk);
        let settle = |st: &mut RangeState, digest: Digest, changed: bool| {
            st.src[i] = Some(digest);
            st.changed[i] = changed;
            st.left -= 1;
            add(&self.stats.bytes_done, len);
        };
        match ev {
            Event::Same { .. } => {
                let d = st.dst[i];
                settle(st, d, false);
                add(&self.stats.chunks_equal, 1);
            }
            Event::Zero { .. } => {
                self.target.zero(offset, len).with_context(|| {
                    format!("zeroing {len} bytes at {offset} on the destination")
                })?;
                add(&self.stats.bytes_zeroed, len);
                add(&self.stats.chunks_zeroed, 1);
                settle(st, self.zeros.of(chunk), true);
            }
            Event::Differs { .. } => {
                if st.dst[i] == self.zeros.of(chunk) || st.patched[i] {
                    bail!("the source asked for block sums of chunk {chunk} out of turn");
                }
                st.patched[i] = true;
                if let Some(sums) = leaf_sums(&st.leaves[i], self.block) {
                    return Ok(Some((chunk, sums)));
                }
                buf.resize(len as usize);
                self.target
                    .read_at(buf.as_mut_slice(), offset)
                    .with_context(|| format!("reading the destination at {offset}"))?;
                add(&self.stats.bytes_read, len);
                return Ok(Some((
                    chunk,
                    self.hasher.block_sums(buf.as_slice(), self.block),
                )));
            }
            Event::Data {
                offset: o,
                bytes,
                wire,
                ..
            } => {
                if u64::from(o) + bytes.len() as u64 > len {
                    bail!("the source sent data past the end of chunk {chunk}");
                }
                let at = offset + u64::from(o);
                self.target.write_at(&bytes, at).with_context(|| {
                    format!("writing {} bytes at {at} on the destination", bytes.len())
                })?;
                st.written[i].push(o as usize..o as usize + bytes.len());
                add(&self.stats.bytes_written, bytes.len() as u64);
                add(&self.stats.data_wire, wire);
            }
            Event::Zeros {
                offset: o, len: n, ..
            } => {
                if u64::from(o) + u64::from(n) > len {
                    bail!("the source sent zeros past the end of chunk {chunk}");
                }
                let at = offset + u64::from(o);
                self.target
                    .zero(at, n.into())
                    .with_context(|| format!("zeroing {n} bytes at {at} on the destination"))?;
                st.written[i].push(o as usize..(o + n) as usize);
                add(&self.stats.bytes_zeroed, n.into());
            }
            Event::ChunkEnd { digest, .. } => {
                add(
                    if st.patched[i] {
                        &self.stats.chunks_patched
                    } else {
                        &self.stats.chunks_written
                    },
                    1,
                );
                settle(st, digest, true);
            }
        }
        if st.left == 0 {
            if let Some(done) = asked.remove(&r) {
                self.proven.push(done);
            }
        }
        Ok(None)
    }

    /// Reads back what each finished range changed and records both manifests. A patched chunk
    /// is read back only where it was written: the rest of it was read by the scan, and nothing
    /// else writes the destination.
    fn prove(&self) -> Result<()> {
        let mut buf = AlignedBuf::default();
        let mut scratch = Vec::new();
        while let Some(mut st) = self.proven.pop() {
            let mut src = Vec::with_capacity(st.dst.len());
            let mut dst = Vec::with_capacity(st.dst.len());
            for i in 0..st.dst.len() {
                let chunk = st.first + i as u64;
                let s = st.src[i].ok_or_else(|| anyhow!("chunk {chunk} was never settled"))?;
                let (offset, len) = (chunk * self.cs, self.chunk_len(chunk) as usize);
                let proven = if !st.changed[i] {
                    st.dst[i]
                } else if self.verify {
                    let (d, read) = if st.patched[i] && !st.leaves[i].is_empty() {
                        self.target.digest_written(
                            &self.hasher,
                            offset,
                            len,
                            &st.written[i],
                            &mut st.leaves[i],
                            &mut buf,
                        )
                    } else {
                        self.target.digest(
                            &self.hasher,
                            offset,
                            len,
                            self.zeros.of(chunk),
                            &mut buf,
                            &mut scratch,
                        )
                    }
                    .with_context(|| format!("reading back the destination at {offset}"))?;
                    add(&self.stats.bytes_verified, read);
                    add(&self.stats.bytes_read, read);
                    d
                } else {
                    s
                };
                src.push(s);
                dst.push(proven);
            }
            let at = st.first as usize;
            let n = src.len();
            self.src
                .lock()
                .map_err(|_| anyhow!("a manifest lock was poisoned"))?[at..at + n]
                .copy_from_slice(&src);
            self.dst
                .lock()
                .map_err(|_| anyhow!("a manifest lock was poisoned"))?[at..at + n]
                .copy_from_slice(&dst);
            self.settled.fetch_add(n as u64, Ordering::SeqCst);
        }
        Ok(())
    }
}
