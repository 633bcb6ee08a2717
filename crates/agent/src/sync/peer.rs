//! The client side of the sync protocol: another agent's export, upgraded from NBD.

use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use osm_nbd::{Codec, Stream};
use osm_sync::{Digest, Encoding, Frame, FrameHeader, Hello, Welcome};

use super::compress;
use super::source::{Event, Source, SourceStream};

/// Another agent, reached over one or more upgraded connections.
pub struct PeerSource {
    welcome: Welcome,
    streams: Mutex<Vec<Box<dyn SourceStream>>>,
    wire: Arc<AtomicU64>,
}

impl PeerSource {
    /// Says hello on each upgraded connection (all to the same export) and checks that every one
    /// of them agrees on the parameters.
    pub fn open(conns: Vec<(String, Stream)>, hello: &Hello, timeout: Duration) -> Result<Self> {
        let wire = Arc::new(AtomicU64::new(0));
        let mut streams: Vec<Box<dyn SourceStream>> = Vec::new();
        let mut welcome: Option<Welcome> = None;
        for (uri, stream) in conns {
            let mut s = PeerStream::new(uri.clone(), stream, timeout, Arc::clone(&wire))?;
            s.send(&Frame::Hello(hello.clone()))?;
            let w = match s.recv()? {
                Frame::Welcome(w) => w,
                Frame::Error { message } => bail!("the source agent at {uri} refused: {message}"),
                other => bail!("the source agent at {uri} answered hello with {other:?}"),
            };
            if w.version != hello.version
                || w.chunk_size != hello.chunk_size
                || w.block_size != hello.block_size
            {
                bail!("the source agent at {uri} settled {w:?}, not what was asked ({hello:?})");
            }
            if let Some(first) = &welcome {
                if first != &w {
                    bail!("the connections disagree about the source: {first:?} and {w:?}");
                }
            }
            welcome = Some(w);
            streams.push(Box::new(s));
        }
        let welcome = welcome.ok_or_else(|| anyhow!("no connection to the source"))?;
        Ok(PeerSource {
            welcome,
            streams: Mutex::new(streams),
            wire,
        })
    }
}

impl Source for PeerSource {
    fn kind(&self) -> &'static str {
        "agent"
    }

    fn size(&self) -> u64 {
        self.welcome.size
    }

    fn free_bytes(&self) -> u64 {
        self.welcome.free_bytes
    }

    fn compression(&self) -> bool {
        self.welcome.compression
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

struct PeerStream {
    uri: String,
    reader: BufReader<Stream>,
    writer: Stream,
    timeout: Duration,
    wire: Arc<AtomicU64>,
    zstd: zstd::bulk::Decompressor<'static>,
    payload: Vec<u8>,
}

impl PeerStream {
    fn new(uri: String, stream: Stream, timeout: Duration, wire: Arc<AtomicU64>) -> Result<Self> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        Ok(PeerStream {
            uri,
            reader: BufReader::with_capacity(1 << 20, stream),
            writer,
            timeout,
            wire,
            zstd: zstd::bulk::Decompressor::new().context("setting up zstd")?,
            payload: Vec::new(),
        })
    }

    fn io_error(&self, e: std::io::Error, doing: &str) -> anyhow::Error {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            anyhow!(
                "the source agent at {} did not answer for {} s while {doing}",
                self.uri,
                self.timeout.as_secs()
            )
        } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
            anyhow!(
                "the connection to the source agent at {} closed while {doing}",
                self.uri
            )
        } else {
            anyhow::Error::new(e).context(format!(
                "the connection to the source agent at {} failed while {doing}",
                self.uri
            ))
        }
    }

    fn send(&mut self, f: &Frame) -> Result<()> {
        let bytes = f.to_bytes();
        self.writer
            .write_all(&bytes)
            .map_err(|e| self.io_error(e, "sending a request"))?;
        self.wire.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn recv(&mut self) -> Result<Frame> {
        let mut h = [0u8; FrameHeader::LEN];
        if let Err(e) = self.reader.read_exact(&mut h) {
            return Err(self.io_error(e, "waiting for an answer"));
        }
        let h = FrameHeader::decode(&h)
            .with_context(|| format!("a frame from the source agent at {}", self.uri))?;
        self.payload.resize(h.length as usize, 0);
        let mut payload = std::mem::take(&mut self.payload);
        let read = self.reader.read_exact(&mut payload);
        let frame = read
            .map_err(|e| self.io_error(e, "reading an answer"))
            .and_then(|()| {
                Frame::decode(h.kind, &payload)
                    .with_context(|| format!("a frame from the source agent at {}", self.uri))
            });
        self.payload = payload;
        self.wire.fetch_add(
            (FrameHeader::LEN + h.length as usize) as u64,
            Ordering::Relaxed,
        );
        frame
    }
}

impl SourceStream for PeerStream {
    fn compare(&mut self, first: u64, digests: &[Digest]) -> Result<()> {
        self.send(&Frame::Compare {
            first,
            digests: digests.to_vec(),
        })
    }

    fn blocks(&mut self, chunk: u64, sums: &[u64]) -> Result<()> {
        self.send(&Frame::Blocks {
            chunk,
            sums: sums.to_vec(),
        })
    }

    fn next(&mut self) -> Result<Event> {
        Ok(match self.recv()? {
            Frame::Same { chunk } => Event::Same { chunk },
            Frame::Zero { chunk } => Event::Zero { chunk },
            Frame::Differs { chunk, .. } => Event::Differs { chunk },
            Frame::ChunkEnd { chunk, digest } => Event::ChunkEnd { chunk, digest },
            Frame::Data {
                chunk,
                offset,
                encoding: Encoding::Zeros,
                raw_len,
                ..
            } => Event::Zeros {
                chunk,
                offset,
                len: raw_len,
            },
            Frame::Data {
                chunk,
                offset,
                encoding,
                raw_len,
                payload,
            } => {
                let wire = payload.len() as u64;
                let bytes = if encoding == Encoding::Raw && payload.len() == raw_len as usize {
                    payload
                } else {
                    let mut out = Vec::new();
                    compress::decode(
                        &mut self.zstd,
                        encoding,
                        &payload,
                        raw_len as usize,
                        &mut out,
                    )
                    .with_context(|| {
                        format!("chunk {chunk} from the source agent at {}", self.uri)
                    })?;
                    out
                };
                Event::Data {
                    chunk,
                    offset,
                    bytes,
                    wire,
                }
            }
            Frame::Error { message } => {
                bail!("the source agent at {} failed: {message}", self.uri)
            }
            other => bail!(
                "the source agent at {} sent an unexpected {other:?}",
                self.uri
            ),
        })
    }

    fn finish(&mut self) -> Result<()> {
        self.send(&Frame::Bye)?;
        let _ = self.writer.shutdown(Shutdown::Write);
        Ok(())
    }

    fn shutdown_handle(&self) -> Option<Stream> {
        self.writer.try_clone().ok()
    }
}
