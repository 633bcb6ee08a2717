//! Any NBD server as a sync source (qemu-nbd, nbdkit, or an agent that refused the upgrade):
//! every data byte crosses and is digested here, but the zeroing policy, the proof and the
//! resume-from-disk semantics are the same as with an agent.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use osm_nbd::{Client, Extent, Reply, Stream};
use osm_sync::{Digest, Hasher, Zeros};

use super::source::{Event, Source, SourceStream};
use crate::zero;

/// Chunks one connection reads at a time: bounds memory at this many chunks per connection.
const CHUNKS_IN_FLIGHT: usize = 16;
/// Zero extents shorter than this are read with the data around them: one read beats many.
const MIN_ZERO_RUN: u64 = 64 << 10;

/// An NBD export, over one or more connections.
pub struct NbdSource {
    size: u64,
    streams: Mutex<Vec<Box<dyn SourceStream>>>,
    wire: Arc<AtomicU64>,
}

impl NbdSource {
    /// Wraps connected clients (all to the same export); the first decides size and flags.
    pub fn new(
        clients: Vec<(String, Client)>,
        chunk_size: u64,
        hasher: Hasher,
    ) -> Result<NbdSource> {
        let (_, first) = clients
            .first()
            .ok_or_else(|| anyhow!("no connection to the source"))?;
        let size = first.size();
        let wire = Arc::new(AtomicU64::new(0));
        let mut streams: Vec<Box<dyn SourceStream>> = Vec::new();
        for (uri, client) in clients {
            if client.size() != size {
                bail!(
                    "{uri} has {} bytes where the first connection saw {size}",
                    client.size()
                );
            }
            streams.push(Box::new(NbdStream {
                extents: client.session().base_allocation.is_some(),
                client,
                uri,
                cs: chunk_size,
                size,
                zeros: hasher.zeros(chunk_size, size),
                hasher,
                jobs: VecDeque::new(),
                ready: VecDeque::new(),
                cur: None,
                reads: HashMap::new(),
                wire: Arc::clone(&wire),
            }));
        }
        Ok(NbdSource {
            size,
            streams: Mutex::new(streams),
            wire,
        })
    }
}

impl Source for NbdSource {
    fn kind(&self) -> &'static str {
        "nbd"
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn free_bytes(&self) -> u64 {
        0
    }

    fn compression(&self) -> bool {
        false
    }

    fn take_streams(&self) -> Vec<Box<dyn SourceStream>> {
        self.streams
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    fn wire_bytes(&self) -> u64 {
        self.wire.load(Ordering::Relaxed)
    }
}

struct Job {
    first: u64,
    dst: Vec<Digest>,
}

/// The job being mapped and read: its extents so far and the next chunk to look at.
struct Current {
    job: Job,
    extents: Vec<Extent>,
    mapped_to: u64,
    asked: bool,
    next: usize,
}

struct Reading {
    dst: Digest,
    buf: Vec<u8>,
    left: usize,
}

/// The data parts of `start..end` per the extents: data extents, with zero gaps shorter than
/// [`MIN_ZERO_RUN`] read along.
fn data_pieces(extents: &[Extent], start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in extents.iter().filter(|e| !e.is_zero()) {
        let (s, t) = (e.offset.max(start), e.end().min(end));
        if s >= t {
            continue;
        }
        match out.last_mut() {
            Some(last) if s - last.1 < MIN_ZERO_RUN => last.1 = t,
            _ => out.push((s, t)),
        }
    }
    out
}

struct NbdStream {
    client: Client,
    uri: String,
    cs: u64,
    size: u64,
    zeros: Zeros,
    hasher: Hasher,
    extents: bool,
    jobs: VecDeque<Job>,
    ready: VecDeque<Event<'static>>,
    cur: Option<Current>,
    /// Chunks being read: chunk -> the destination's digest, the bytes so far, reads left.
    reads: HashMap<u64, Reading>,
    wire: Arc<AtomicU64>,
}

impl NbdStream {
    /// Maps and submits reads until enough chunks are in flight or a block status answer is
    /// needed first.
    fn fill(&mut self) -> Result<()> {
        while self.reads.len() < CHUNKS_IN_FLIGHT {
            if self.cur.is_none() {
                let Some(job) = self.jobs.pop_front() else {
                    return Ok(());
                };
                let start = job.first * self.cs;
                self.cur = Some(Current {
                    job,
                    extents: Vec::new(),
                    mapped_to: if self.extents { start } else { self.size },
                    asked: false,
                    next: 0,
                });
            }
            let Some(cur) = self.cur.as_mut() else {
                return Ok(());
            };
            if cur.next == cur.job.dst.len() {
                self.cur = None;
                continue;
            }
            let chunk = cur.job.first + cur.next as u64;
            let (start, end) = (chunk * self.cs, ((chunk + 1) * self.cs).min(self.size));
            if cur.mapped_to < end {
                if !cur.asked {
                    let job_end =
                        ((cur.job.first + cur.job.dst.len() as u64) * self.cs).min(self.size);
                    let len = (job_end - cur.mapped_to).min(u64::from(u32::MAX) & !0xfff) as u32;
                    self.client
                        .submit_block_status(cur.mapped_to, len)
                        .with_context(|| format!("asking {} for block status", self.uri))?;
                    cur.asked = true;
                }
                return Ok(());
            }
            let dst = cur.job.dst[cur.next];
            cur.next += 1;
            let pieces = if self.extents {
                data_pieces(&cur.extents, start, end)
            } else {
                vec![(start, end)]
            };
            if !pieces.is_empty() {
                for &(s, t) in &pieces {
                    self.client
                        .submit_read(s, vec![0; (t - s) as usize])
                        .with_context(|| {
                            format!("reading {} bytes at {s} from {}", t - s, self.uri)
                        })?;
                }
                self.reads.insert(
                    chunk,
                    Reading {
                        dst,
                        buf: vec![0; (end - start) as usize],
                        left: pieces.len(),
                    },
                );
            } else if dst == self.zeros.of(chunk) {
                self.ready.push_back(Event::Same { chunk });
            } else {
                self.ready.push_back(Event::Zero { chunk });
            }
        }
        Ok(())
    }

    fn on_reply(&mut self, reply: Reply) -> Result<()> {
        match reply {
            Reply::BlockStatus(extents) => {
                let cur = self
                    .cur
                    .as_mut()
                    .ok_or_else(|| anyhow!("block status from {} for nothing asked", self.uri))?;
                cur.asked = false;
                for e in extents {
                    if e.offset != cur.mapped_to {
                        bail!(
                            "block status from {} is not contiguous at {}",
                            self.uri,
                            cur.mapped_to
                        );
                    }
                    cur.mapped_to = e.end().min(self.size);
                    cur.extents.push(e);
                }
            }
            Reply::Read {
                offset,
                buf: piece,
                holes,
            } => {
                let chunk = offset / self.cs;
                let r = self
                    .reads
                    .get_mut(&chunk)
                    .ok_or_else(|| anyhow!("a read from {} for nothing asked", self.uri))?;
                let hole_bytes: u64 = holes.iter().map(|h| h.end - h.start).sum();
                let wire = piece.len() as u64 - hole_bytes;
                self.wire.fetch_add(wire, Ordering::Relaxed);
                let at = (offset - chunk * self.cs) as usize;
                r.buf[at..at + piece.len()].copy_from_slice(&piece);
                r.left -= 1;
                if r.left > 0 {
                    return Ok(());
                }
                let Some(Reading { dst, buf, .. }) = self.reads.remove(&chunk) else {
                    return Ok(());
                };
                let zeros = self.zeros.of(chunk);
                let digest = if zero::is_zero(&buf) {
                    zeros
                } else {
                    self.hasher.digest(&buf)
                };
                if digest == dst {
                    self.ready.push_back(Event::Same { chunk });
                } else if digest == zeros {
                    self.ready.push_back(Event::Zero { chunk });
                } else {
                    let wire = buf.len() as u64;
                    self.ready.push_back(Event::Data {
                        chunk,
                        offset: 0,
                        bytes: buf.into(),
                        wire,
                    });
                    self.ready.push_back(Event::ChunkEnd { chunk, digest });
                }
            }
            Reply::Done => bail!("an unexpected reply from {}", self.uri),
        }
        Ok(())
    }
}

impl SourceStream for NbdStream {
    fn compare(&mut self, first: u64, digests: &[Digest]) -> Result<()> {
        self.jobs.push_back(Job {
            first,
            dst: digests.to_vec(),
        });
        Ok(())
    }

    fn blocks(&mut self, chunk: u64, _sums: &[u64]) -> Result<()> {
        bail!(
            "{} is an NBD server: it never asks for block sums (chunk {chunk})",
            self.uri
        )
    }

    fn next(&mut self) -> Result<Event<'_>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(e);
            }
            self.fill()?;
            if let Some(e) = self.ready.pop_front() {
                return Ok(e);
            }
            if self.client.in_flight() == 0 {
                bail!("waiting for {} with nothing asked", self.uri);
            }
            let c = self.client.recv().map_err(|e| match e {
                osm_nbd::Error::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    anyhow!("{} did not answer in time", self.uri)
                }
                e => {
                    anyhow::Error::new(e).context(format!("the connection to {} failed", self.uri))
                }
            })?;
            let reply = c
                .result
                .with_context(|| format!("{} refused a request", self.uri))?;
            self.on_reply(reply)?;
        }
    }

    fn finish(&mut self) -> Result<()> {
        let _ = self.client.stream().shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    fn shutdown_handle(&self) -> Option<Stream> {
        self.client.stream().try_clone().ok()
    }
}
