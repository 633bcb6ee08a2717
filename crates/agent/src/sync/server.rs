//! The source side of the sync protocol: an export's connection after the client upgraded it.
//!
//! One thread reads requests, a few workers read, digest, compare and compress chunks, and one
//! thread writes the answers, so that reading requests never waits on writing answers (the
//! client, which sends small requests while it receives data, can then never deadlock with us).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Cursor, Read, Write};
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use osm_nbd::{Codec, Stream, UpgradeHandler};
use osm_sync::{
    leaf_sums, DataHead, Digest, Encoding, Frame, FrameHeader, Hasher, Hello, Welcome, Zeros,
    ALGORITHM_ID, VERSION,
};

use super::compress::Compressor;
use crate::disk::{AlignedBuf, Device};
use crate::queue::Queue;
use crate::zero;

/// Workers per connection: one reads while another digests and compresses.
const WORKERS: usize = 2;
/// How long a connection may stay silent before it is dropped: a client always has requests in
/// flight while it works, so silence this long means it is gone.
const IDLE: Duration = Duration::from_secs(600);
/// How long an answer may wait for the client to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// Zero runs at least this long are not sent to a destination that holds zeros there.
const MIN_ZERO_RUN: usize = 64 << 10;

/// Serves the sync protocol for one export of a [`Device`].
pub struct SyncServer {
    device: Arc<Device>,
    level: i32,
}

impl SyncServer {
    /// For `device`, compressing at `level` when the client accepts compression.
    pub fn new(device: Arc<Device>, level: i32) -> SyncServer {
        SyncServer { device, level }
    }
}

impl UpgradeHandler for SyncServer {
    fn serve(&self, _export: &str, stream: Stream, leftover: Vec<u8>) -> osm_nbd::Result<()> {
        self.run(stream, leftover)
            .map_err(|e| osm_nbd::Error::Protocol(format!("sync: {e:#}")))
    }
}

enum Job {
    Chunk { chunk: u64, dst: Digest },
    Blocks { chunk: u64, sums: Vec<u64> },
}

fn read_frame(r: &mut impl Read) -> Result<Option<Frame>> {
    let mut h = [0u8; FrameHeader::LEN];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("reading a request"),
    }
    let h = FrameHeader::decode(&h)?;
    let mut payload = vec![0u8; h.length as usize];
    r.read_exact(&mut payload).context("reading a request")?;
    Ok(Some(Frame::decode(h.kind, &payload)?))
}

fn check_hello(h: &Hello) -> Result<()> {
    if h.version != VERSION {
        bail!(
            "protocol version {} (this agent speaks {VERSION})",
            h.version
        );
    }
    if h.algorithm != ALGORITHM_ID {
        bail!(
            "digest algorithm {} (this agent has {ALGORITHM_ID})",
            h.algorithm
        );
    }
    if !h.chunk_size.is_power_of_two() || !(64 << 10..=4 << 20).contains(&h.chunk_size) {
        bail!(
            "chunk size {} (a power of two from 64 KiB to 4 MiB)",
            h.chunk_size
        );
    }
    if !h.block_size.is_power_of_two() || !(512..=h.chunk_size).contains(&h.block_size) {
        bail!(
            "block size {} (a power of two from 512 to the chunk size)",
            h.block_size
        );
    }
    Ok(())
}

impl SyncServer {
    fn run(&self, stream: Stream, leftover: Vec<u8>) -> Result<()> {
        stream.set_read_timeout(Some(IDLE))?;
        let out = stream.try_clone()?;
        out.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut input = BufReader::with_capacity(64 << 10, Cursor::new(leftover).chain(stream));
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let hello = match read_frame(&mut input)? {
            Some(Frame::Hello(h)) => h,
            other => bail!("expected hello, got {other:?}"),
        };
        if let Err(e) = check_hello(&hello) {
            let _ = out.write_all(
                &Frame::Error {
                    message: format!("refused: {e}"),
                }
                .to_bytes(),
            );
            let _ = out.flush();
            return Err(e);
        }
        let welcome = Welcome {
            version: VERSION,
            size: self.device.size(),
            chunk_size: hello.chunk_size,
            block_size: hello.block_size,
            compression: hello.compression,
            free_bytes: self.device.free_bytes(),
        };
        out.write_all(&Frame::Welcome(welcome.clone()).to_bytes())?;
        out.flush()?;

        let jobs: Queue<Job> = Queue::new(usize::MAX);
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let hasher = Hasher::new(hello.seed);
        let zeros = hasher.zeros(welcome.chunk_size.into(), welcome.size);
        let differing = Differing::default();
        thread::scope(|s| -> Result<()> {
            let writer = s.spawn(move || write_frames(out, rx));
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    let (tx, jobs, w, d) = (tx.clone(), &jobs, &welcome, &differing);
                    s.spawn(move || -> Result<()> {
                        let r = self.work(jobs, &tx, w, &hasher, &zeros, d);
                        if let Err(e) = &r {
                            jobs.abort();
                            let _ = tx.send(
                                Frame::Error {
                                    message: format!("{e:#}"),
                                }
                                .to_bytes(),
                            );
                        }
                        r
                    })
                })
                .collect();
            let read = read_requests(&mut input, &jobs, &welcome);
            match &read {
                Ok(()) => jobs.close(),
                Err(e) => {
                    jobs.abort();
                    let _ = tx.send(
                        Frame::Error {
                            message: format!("{e:#}"),
                        }
                        .to_bytes(),
                    );
                }
            }
            drop(tx);
            let mut result = read;
            for w in workers {
                let r = w
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a sync worker panicked")));
                result = result.and(r);
            }
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the sync writer panicked")));
            result.and(written)
        })
    }

    fn work(
        &self,
        jobs: &Queue<Job>,
        tx: &SyncSender<Vec<u8>>,
        w: &Welcome,
        hasher: &Hasher,
        zeros: &Zeros,
        differing: &Differing,
    ) -> Result<()> {
        let mut c = Compressor::new(w.compression, self.level)?;
        let mut buf = AlignedBuf::default();
        let mut leaves = Vec::new();
        let cs = u64::from(w.chunk_size);
        let send = |bytes: Vec<u8>| {
            tx.send(bytes)
                .map_err(|_| anyhow!("the connection to the destination is gone"))
        };
        while let Some(job) = jobs.pop() {
            let chunk = match &job {
                Job::Chunk { chunk, .. } | Job::Blocks { chunk, .. } => *chunk,
            };
            let offset = chunk * cs;
            let len = cs.min(w.size - offset) as usize;
            let known = match &job {
                Job::Blocks { .. } => differing.lock().ok().and_then(|mut m| m.remove(&chunk)),
                Job::Chunk { .. } => None,
            };
            if let (Job::Blocks { sums, .. }, Some((digest, l))) = (&job, &known) {
                let bs = w.block_size as usize;
                if let Some(mine) = leaf_sums(l, bs) {
                    let held = Held::Nothing;
                    self.patch(&mut c, &mut buf, held, chunk, offset, len, &mine, sums, bs)?
                        .into_iter()
                        .try_for_each(send)?;
                    send(
                        Frame::ChunkEnd {
                            chunk,
                            digest: *digest,
                        }
                        .to_bytes(),
                    )?;
                    continue;
                }
            }
            buf.resize(len);
            let all_zero = self
                .device
                .read_view(offset, buf.as_mut_slice())
                .with_context(|| format!("reading {len} bytes at offset {offset}"))?;
            let zero = zeros.of(chunk);
            let digest = match known {
                Some((d, l)) => {
                    leaves = l;
                    d
                }
                None if all_zero => {
                    leaves.clear();
                    zero
                }
                None => {
                    hasher.leaves(buf.as_slice(), &mut leaves);
                    hasher.combine(&leaves)
                }
            };
            match job {
                Job::Chunk { dst, .. } if dst == digest => send(Frame::Same { chunk }.to_bytes())?,
                Job::Chunk { .. } if all_zero => send(Frame::Zero { chunk }.to_bytes())?,
                Job::Chunk { dst, .. } if dst == zero => {
                    for r in data_runs(offset, buf.as_slice()) {
                        send(data_frame(&mut c, chunk, r.start, &buf.as_slice()[r]))?;
                    }
                    send(Frame::ChunkEnd { chunk, digest }.to_bytes())?;
                }
                Job::Chunk { .. } => {
                    if let Ok(mut m) = differing.lock() {
                        m.insert(chunk, (digest, std::mem::take(&mut leaves)));
                    }
                    send(Frame::Differs { chunk, digest }.to_bytes())?
                }
                Job::Blocks { sums, .. } => {
                    let bs = w.block_size as usize;
                    let mine = leaf_sums(&leaves, bs)
                        .unwrap_or_else(|| hasher.block_sums(buf.as_slice(), bs));
                    let held = Held::Chunk;
                    self.patch(&mut c, &mut buf, held, chunk, offset, len, &mine, &sums, bs)?
                        .into_iter()
                        .try_for_each(send)?;
                    send(Frame::ChunkEnd { chunk, digest }.to_bytes())?;
                }
            }
        }
        Ok(())
    }
}

/// What a worker's buffer holds when it patches a chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The whole chunk, read to digest it.
    Chunk,
    /// Nothing of it: the blocks to send are read.
    Nothing,
}

impl SyncServer {
    /// The frames that patch the blocks of `chunk` (at `offset`, `len` bytes) whose sums `mine`
    /// differ from the destination's `sums`. When the chunk's leaves were kept from its compare,
    /// only those blocks are read again (`Held::Nothing`): reading the whole chunk again had the
    /// source read its disk twice for a rewrite of a few blocks in every chunk, a warm cutover's
    /// delta.
    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        c: &mut Compressor,
        buf: &mut AlignedBuf,
        held: Held,
        chunk: u64,
        offset: u64,
        len: usize,
        mine: &[u64],
        sums: &[u64],
        bs: usize,
    ) -> Result<Vec<Vec<u8>>> {
        if mine.len() != sums.len() {
            bail!(
                "chunk {chunk}: {} block sums for {} blocks",
                sums.len(),
                mine.len()
            );
        }
        let mut frames = Vec::new();
        for r in differing_runs(mine, sums, bs, len) {
            let bytes = match held {
                Held::Chunk => &buf.as_slice()[r.clone()],
                Held::Nothing => {
                    buf.resize(r.len());
                    let at = offset + r.start as u64;
                    self.device
                        .read_view(at, buf.as_mut_slice())
                        .with_context(|| format!("reading {} bytes at offset {at}", r.len()))?;
                    buf.as_slice()
                }
            };
            // Runs start on block boundaries, so splitting the run's bytes from 0 cuts at the
            // chunk's block boundaries.
            for (piece, zero) in split_zeros(0..bytes.len(), bytes, bs) {
                let whole = r.start + piece.start..r.start + piece.end;
                frames.push(if zero {
                    zeros_frame(chunk, whole)
                } else {
                    data_frame(c, chunk, whole.start, &bytes[piece])
                });
            }
        }
        Ok(frames)
    }
}

/// The digests (of the chunk and of its leaves) of the chunks this connection answered `Differs`
/// for, until their block sums come: the source is a snapshot, so the chunk still holds what was
/// digested, and a patched chunk is not digested twice. Bounded by the chunks in flight.
type Differing = Mutex<HashMap<u64, (Digest, Vec<Digest>)>>;

fn read_requests(input: &mut impl Read, jobs: &Queue<Job>, w: &Welcome) -> Result<()> {
    let chunks = osm_sync::chunk_count(w.size, w.chunk_size);
    loop {
        match read_frame(input)? {
            None | Some(Frame::Bye) => return Ok(()),
            Some(Frame::Compare { first, digests }) => {
                if first.saturating_add(digests.len() as u64) > chunks {
                    bail!(
                        "compare of chunks {first}..{} beyond the {chunks} chunks of the disk",
                        first + digests.len() as u64
                    );
                }
                for (i, dst) in digests.into_iter().enumerate() {
                    if !jobs.push(Job::Chunk {
                        chunk: first + i as u64,
                        dst,
                    }) {
                        return Ok(());
                    }
                }
            }
            Some(Frame::Blocks { chunk, sums }) => {
                if chunk >= chunks {
                    bail!("block sums for chunk {chunk} beyond the {chunks} chunks of the disk");
                }
                // The client waits on these while its other chunks flow: answer them first.
                if !jobs.push_front(Job::Blocks { chunk, sums }) {
                    return Ok(());
                }
            }
            Some(other) => bail!("unexpected request {other:?}"),
        }
    }
}

fn write_frames(mut out: BufWriter<Stream>, rx: Receiver<Vec<u8>>) -> Result<()> {
    while let Ok(f) = rx.recv() {
        out.write_all(&f).context("sending to the destination")?;
        // Flush only when nothing else is queued, so small answers travel together.
        let mut next = rx.try_recv();
        while let Ok(f) = next {
            out.write_all(&f).context("sending to the destination")?;
            next = rx.try_recv();
        }
        out.flush().context("sending to the destination")?;
    }
    out.flush().context("sending to the destination")
}

/// One `Data` frame for `bytes` at `offset` in `chunk`, compressed where the policy says so,
/// built in place: the data is copied (or compressed) once, into the frame that is sent.
fn data_frame(c: &mut Compressor, chunk: u64, offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut frame = DataHead::start(bytes.len());
    let encoding = c.encode(bytes, &mut frame);
    DataHead {
        chunk,
        offset: offset as u32,
        encoding,
        raw_len: bytes.len() as u32,
    }
    .seal(&mut frame);
    frame
}

/// A `Data` frame saying `range` of `chunk` reads as zeros.
fn zeros_frame(chunk: u64, range: Range<usize>) -> Vec<u8> {
    Frame::Data {
        chunk,
        offset: range.start as u32,
        encoding: Encoding::Zeros,
        raw_len: range.len() as u32,
        payload: Vec::new(),
    }
    .to_bytes()
}

/// Cuts `range` of a chunk into pieces of data and of zeros, at block boundaries, so zero blocks
/// that must replace other data go through the receiver's zeroing policy instead of the wire.
fn split_zeros(range: Range<usize>, chunk: &[u8], block: usize) -> Vec<(Range<usize>, bool)> {
    let mut out: Vec<(Range<usize>, bool)> = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = (at + block).min(range.end);
        let zero = zero::is_zero(&chunk[at..end]);
        match out.last_mut() {
            Some((r, z)) if *z == zero && r.end == at => r.end = end,
            _ => out.push((at..end, zero)),
        }
        at = end;
    }
    out
}

/// The parts of a chunk worth sending to a destination that reads as zeros there: everything
/// but zero runs of at least [`MIN_ZERO_RUN`].
fn data_runs(offset: u64, buf: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for z in zero::zero_runs(offset, buf)
        .into_iter()
        .filter(|z| z.len() >= MIN_ZERO_RUN)
        .chain(std::iter::once(buf.len()..buf.len()))
    {
        if z.start > at {
            out.push(at..z.start);
        }
        at = z.end;
    }
    out
}

/// Byte ranges of the blocks whose sums differ, adjacent ones merged.
fn differing_runs(mine: &[u64], theirs: &[u64], block: usize, len: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, _) in mine
        .iter()
        .zip(theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
    {
        let r = i * block..((i + 1) * block).min(len);
        match out.last_mut() {
            Some(l) if l.end == r.start => l.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs() {
        let mut b = vec![0u8; 256 << 10];
        b[10] = 1;
        b[(128 << 10) + 5] = 1;
        assert_eq!(
            data_runs(0, &b),
            vec![0..4096, 128 << 10..(128 << 10) + 4096]
        );
        assert!(data_runs(0, &[0; 65536]).is_empty());
        let mut c = vec![0u8; 5 * 4096];
        c[4096] = 1;
        c[3 * 4096 + 1] = 1;
        assert_eq!(
            split_zeros(0..5 * 4096, &c, 4096),
            vec![
                (0..4096, true),
                (4096..2 * 4096, false),
                (2 * 4096..3 * 4096, true),
                (3 * 4096..4 * 4096, false),
                (4 * 4096..5 * 4096, true)
            ]
        );
        assert_eq!(
            differing_runs(&[1, 2, 3, 4, 5], &[1, 0, 0, 4, 0], 4096, 4 * 4096 + 100),
            vec![4096..3 * 4096, 4 * 4096..4 * 4096 + 100]
        );
    }

    #[test]
    fn hello_checks() {
        let ok = Hello {
            version: VERSION,
            algorithm: ALGORITHM_ID,
            chunk_size: 1 << 20,
            block_size: 4096,
            compression: true,
            seed: 1,
        };
        assert!(check_hello(&ok).is_ok());
        for bad in [
            Hello {
                version: 9,
                ..ok.clone()
            },
            Hello {
                algorithm: 9,
                ..ok.clone()
            },
            Hello {
                chunk_size: 3 << 20,
                ..ok.clone()
            },
            Hello {
                chunk_size: 8 << 20,
                ..ok.clone()
            },
            Hello {
                block_size: 100,
                ..ok.clone()
            },
        ] {
            assert!(check_hello(&bad).is_err(), "{bad:?}");
        }
    }
}
