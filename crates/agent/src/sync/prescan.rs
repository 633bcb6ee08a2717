//! A scan ahead of a sync: the destination's chunk digests and their leaves, read from its own disk
//! while nothing waits for them, so that a sync soon after (a warm cutover's, within the downtime)
//! reads the source and the chunks it changes, not the whole destination again.
//!
//! `osm-agent scan` writes the file and `sync --scanned` takes it. The sync trusts it only as long
//! as it says what the disk holds:
//! - it is consumed: the sync unlinks it before anything is written, so that a sync that fails
//!   halfway leaves no scan of a disk it changed, and the next run reads the disk;
//! - it names its disk: the same file or block device (device and inode numbers, size, and for a
//!   file the modification and change times, which every write moves);
//! - a sample of its chunks that hold data is read again and must match;
//! - a checksum covers its header and digests, and each chunk's leaves must combine to its digest.
//!
//! Otherwise the sync reads the disk as it would without a scan, and says why.
//!
//! Layout, big-endian: the header (magic, format, algorithm, chunk size, seed, disk size, the
//! disk's identity, chunk count); the leaf digests of each chunk that holds data, in chunk order
//! (written as the scan goes); every chunk's digest; a byte per chunk, 1 where its leaves are in the
//! file; the checksum of the header, digests and flags.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use osm_sync::{chunk_count, digests_from, Digest, Hasher, ALGORITHM_ID, DIGEST_LEN, LEAF};
use serde_json::json;

use super::progress::{emit, secs};
use super::target::{Identity, Layout, Scanned, Target};
use crate::disk::AlignedBuf;

const MAGIC: &[u8; 8] = b"OSMSCAN1";
const FORMAT: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 2 + 4 + 8 + 8 + 8 * 8 + 8;
/// Chunks per unit of work of the scan's threads.
const RANGE: u64 = 16;
/// Threads reading the disk, each with one read in flight (as the sync's scanners).
const THREADS: u64 = 3;
/// How often a scan prints its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Chunks holding data that the sync reads again before it trusts a scan.
const SAMPLE: usize = 4;

/// What `scan` was asked to do.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The device or file to digest.
    pub device: PathBuf,
    /// Where to write the scan (atomically).
    pub out: PathBuf,
    /// Bytes per chunk: the sync's.
    pub chunk_size: u32,
    /// The digests' seed: the sync's.
    pub seed: u64,
}

struct Header {
    chunk_size: u32,
    seed: u64,
    size: u64,
    identity: Identity,
    chunks: u64,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&ALGORITHM_ID.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.seed.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        for f in self.identity.0 {
            out.extend_from_slice(&f.to_be_bytes());
        }
        out.extend_from_slice(&self.chunks.to_be_bytes());
        out
    }

    /// The header, or why it is not one this agent reads.
    fn decode(b: &[u8]) -> std::result::Result<Header, String> {
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return Err("it is not a scan file".into());
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        if u16_at(8) != FORMAT || u16_at(10) != ALGORITHM_ID {
            return Err(format!(
                "format {} with digest algorithm {}, not {FORMAT} with {ALGORITHM_ID}",
                u16_at(8),
                u16_at(10)
            ));
        }
        let mut identity = [0u64; 8];
        for (k, f) in identity.iter_mut().enumerate() {
            *f = u64_at(32 + 8 * k);
        }
        Ok(Header {
            chunk_size: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            seed: u64_at(16),
            size: u64_at(24),
            identity: Identity(identity),
            chunks: u64_at(96),
        })
    }
}

/// Digests every chunk of `opts.device` with its leaves and writes the scan; prints a `scanned`
/// JSON line.
pub fn run(opts: &ScanOptions) -> Result<()> {
    let started = Instant::now();
    super::check_chunk_size(opts.chunk_size)?;
    let path = &opts.device;
    fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    let target = Target::open(path, 0)?;
    let hasher = Hasher::new(opts.seed);
    let layout = Layout::new(hasher, opts.chunk_size.into(), target.size());
    // Taken before the first read: a write to a file while the scan runs moves its times, and
    // the sync then refuses the scan.
    let identity = target
        .identity()
        .with_context(|| format!("inspecting {}", path.display()))?;
    let header = Header {
        chunk_size: opts.chunk_size,
        seed: opts.seed,
        size: target.size(),
        identity,
        chunks: chunk_count(target.size(), opts.chunk_size),
    };
    let tmp = tmp_path(&opts.out);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = write(&target, &layout, &header, BufWriter::new(file))
        .with_context(|| format!("writing {}", tmp.display()));
    let read = match written {
        Ok(read) => read,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, &opts.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), opts.out.display()))?;
    emit(json!({
        "event": "scanned",
        "device": opts.device,
        "scan": opts.out,
        "size": header.size,
        "chunks": header.chunks,
        "bytes_read": read,
        "elapsed_s": secs(started.elapsed()),
    }));
    Ok(())
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes the whole scan file; returns the bytes read from the disk. Threads digest ranges in
/// turn and this one writes their leaves in chunk order.
fn write(
    target: &Target,
    layout: &Layout,
    header: &Header,
    mut out: BufWriter<File>,
) -> Result<u64> {
    let head = header.encode();
    out.write_all(&head)?;
    let ranges = header.chunks.div_ceil(RANGE);
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<std::io::Result<(u64, Scanned)>>();
    let mut digests = Vec::with_capacity(header.chunks as usize * DIGEST_LEN);
    let mut flags = Vec::with_capacity(header.chunks as usize);
    let mut read = 0;
    thread::scope(|s| -> Result<()> {
        for _ in 0..THREADS {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                let mut buf = AlignedBuf::default();
                loop {
                    let r = next.fetch_add(1, Ordering::SeqCst);
                    if r >= ranges {
                        break;
                    }
                    let first = r * RANGE;
                    let count = RANGE.min(header.chunks - first);
                    let got = target.digests(layout, first, count, &mut buf);
                    let failed = got.is_err();
                    if tx.send(got.map(|g| (r, g))).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<u64, Scanned> = BTreeMap::new();
        let mut due = 0;
        let mut shown = Instant::now();
        for got in rx.iter() {
            // Also what keeps the command talking to a migrator that gives up on silence.
            if shown.elapsed() >= PROGRESS_EVERY {
                shown = Instant::now();
                emit(json!({
                    "event": "progress",
                    "percent": (due as f64 * 100.0 / ranges.max(1) as f64 * 10.0).round() / 10.0,
                    "bytes_read": read,
                }));
            }
            let (r, scanned) = got.context("reading the disk")?;
            pending.insert(r, scanned);
            while let Some(scanned) = pending.remove(&due) {
                for (d, leaves) in scanned.digests.iter().zip(&scanned.leaves) {
                    digests.extend_from_slice(&d.0);
                    flags.push(u8::from(!leaves.is_empty()));
                    for l in leaves {
                        out.write_all(&l.0)?;
                    }
                }
                read += scanned.read;
                due += 1;
            }
        }
        if due != ranges {
            bail!("only {due} of {ranges} ranges were scanned");
        }
        Ok(())
    })?;
    out.write_all(&digests)?;
    out.write_all(&flags)?;
    out.write_all(&checksum(&layout.hasher, &head, &digests, &flags).0)?;
    out.flush()?;
    Ok(read)
}

fn checksum(hasher: &Hasher, head: &[u8], digests: &[u8], flags: &[u8]) -> Digest {
    let mut all = Vec::with_capacity(head.len() + digests.len() + flags.len());
    all.extend_from_slice(head);
    all.extend_from_slice(digests);
    all.extend_from_slice(flags);
    hasher.digest(&all)
}

/// A scan taken by a sync, checked against its disk.
#[derive(Debug)]
pub struct Prescan {
    file: File,
    chunk_size: u64,
    size: u64,
    digests: Vec<Digest>,
    /// Where each chunk's leaves start in the file; `None` for a chunk that reads as zeros.
    leaves_at: Vec<Option<u64>>,
}

/// What became of the scan a sync was given.
#[derive(Debug)]
pub enum Taken {
    /// It holds for the disk.
    Used(Prescan),
    /// It was there and is not trusted, for this reason.
    Ignored(String),
    /// There was none.
    Missing,
}

impl Taken {
    /// How the sync's `start` line says it.
    pub fn describe(&self) -> String {
        match self {
            Taken::Used(_) => "used".into(),
            Taken::Ignored(why) => format!("ignored: {why}"),
            Taken::Missing => "none".into(),
        }
    }
}

/// Takes the scan at `path` for a sync into `target` laid out as `layout`: removes the file, then
/// checks it against the disk (see the module's text).
pub fn take(path: &Path, target: &Target, layout: &Layout) -> Result<Taken> {
    let mut file = match File::open(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Taken::Missing),
        other => other.with_context(|| format!("opening the scan {}", path.display()))?,
    };
    if let Err(e) = fs::remove_file(path) {
        return Ok(Taken::Ignored(format!(
            "it could not be removed before the sync ({e}), so it could outlive a change"
        )));
    }
    let mut head = vec![0u8; HEADER_LEN];
    if file.read_exact(&mut head).is_err() {
        return Ok(Taken::Ignored("it is shorter than its header".into()));
    }
    let h = match Header::decode(&head) {
        Ok(h) => h,
        Err(why) => return Ok(Taken::Ignored(why)),
    };
    if u64::from(h.chunk_size) != layout.chunk_size || h.seed != layout.hasher.seed {
        return Ok(Taken::Ignored(
            "it was made with another chunk size or seed".into(),
        ));
    }
    let now = target.identity().context("inspecting the destination")?;
    if h.identity != now || h.size != target.size() {
        return Ok(Taken::Ignored(
            "the disk is not the one scanned, or was written since".into(),
        ));
    }
    match load(file, &h, &head, &layout.hasher)? {
        Err(why) => Ok(Taken::Ignored(why)),
        Ok(p) => match p.sample_differs(target, layout)? {
            Some(chunk) => Ok(Taken::Ignored(format!(
                "chunk {chunk} reads differently from the scan"
            ))),
            None => Ok(Taken::Used(p)),
        },
    }
}

/// Reads the digests and flags at the end of the file and checks them.
fn load(
    file: File,
    h: &Header,
    head: &[u8],
    hasher: &Hasher,
) -> Result<std::result::Result<Prescan, String>> {
    let n = usize::try_from(h.chunks).map_err(|_| anyhow!("too many chunks"))?;
    if h.chunks != chunk_count(h.size, h.chunk_size) {
        return Ok(Err("its chunk count does not fit its size".into()));
    }
    let len = file.metadata()?.len();
    let tail_len = (n * (DIGEST_LEN + 1) + DIGEST_LEN) as u64;
    let Some(tail_at) = len.checked_sub(tail_len) else {
        return Ok(Err("it is truncated".into()));
    };
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(&mut tail, tail_at)?;
    let (digests, rest) = tail.split_at(n * DIGEST_LEN);
    let (flags, sum) = rest.split_at(n);
    if checksum(hasher, head, digests, flags).0 != sum {
        return Ok(Err("its checksum does not match".into()));
    }
    let cs = u64::from(h.chunk_size);
    let mut at = HEADER_LEN as u64;
    let mut leaves_at = Vec::with_capacity(n);
    for (i, &f) in flags.iter().enumerate() {
        leaves_at.push((f == 1).then_some(at));
        if f == 1 {
            let len = cs.min(h.size - i as u64 * cs);
            at += len.div_ceil(LEAF as u64) * DIGEST_LEN as u64;
        }
    }
    if at != tail_at {
        return Ok(Err("its leaves do not fill their section".into()));
    }
    let digests = digests_from(digests);
    Ok(Ok(Prescan {
        file,
        chunk_size: cs,
        size: h.size,
        digests,
        leaves_at,
    }))
}

impl Prescan {
    fn len_of(&self, chunk: u64) -> Option<u64> {
        let start = chunk.checked_mul(self.chunk_size)?;
        (start < self.size).then(|| self.chunk_size.min(self.size - start))
    }

    /// The leaves of `chunk` as the scan holds them, if they combine to its digest.
    fn leaves(&self, hasher: &Hasher, chunk: u64) -> std::io::Result<Option<Vec<Digest>>> {
        let (Some(at), Some(len)) = (self.leaves_at[chunk as usize], self.len_of(chunk)) else {
            return Ok(Some(Vec::new()));
        };
        let mut raw = vec![0u8; len.div_ceil(LEAF as u64) as usize * DIGEST_LEN];
        self.file.read_exact_at(&mut raw, at)?;
        let leaves = digests_from(&raw);
        Ok((hasher.combine(&leaves) == self.digests[chunk as usize]).then_some(leaves))
    }

    /// The first chunk of a sample of those holding data that reads differently from the scan.
    fn sample_differs(&self, target: &Target, layout: &Layout) -> Result<Option<u64>> {
        let data: Vec<u64> = (0..self.digests.len() as u64)
            .filter(|&i| self.leaves_at[i as usize].is_some())
            .collect();
        let step = data.len().div_ceil(SAMPLE).max(1);
        let (mut buf, mut leaves) = (AlignedBuf::default(), Vec::new());
        for &i in data.iter().step_by(step) {
            let Some(len) = self.len_of(i) else { continue };
            let (d, _) = target
                .digest(
                    &layout.hasher,
                    i * self.chunk_size,
                    len as usize,
                    layout.zeros.of(i),
                    &mut buf,
                    &mut leaves,
                )
                .with_context(|| format!("reading chunk {i} of the destination"))?;
            if d != self.digests[i as usize] {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// As [`Target::digests`], from the scan where it covers a chunk as the sync cuts it, and
    /// from the disk where it does not (a last chunk cut shorter, leaves that do not combine).
    pub fn digests(
        &self,
        target: &Target,
        layout: &Layout,
        first: u64,
        count: u64,
        buf: &mut AlignedBuf,
    ) -> std::io::Result<Scanned> {
        let mut out = Scanned {
            digests: Vec::with_capacity(count as usize),
            leaves: Vec::with_capacity(count as usize),
            read: 0,
        };
        for i in first..first + count {
            let len = layout.chunk_size.min(layout.size - i * layout.chunk_size);
            if self.len_of(i) == Some(len) {
                if let Some(leaves) = self.leaves(&layout.hasher, i)? {
                    out.digests.push(self.digests[i as usize]);
                    out.leaves.push(leaves);
                    continue;
                }
            }
            let one = target.digests(layout, i, 1, buf)?;
            out.digests.extend(one.digests);
            out.leaves.extend(one.leaves);
            out.read += one.read;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
