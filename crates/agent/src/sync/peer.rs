//! The client side of the sync protocol: another agent's export, upgraded from NBD.

use std::borrow::Cow;
use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use osm_nbd::{Codec, Stream};
use osm_sync::{DataHead, Digest, Encoding, Frame, FrameHeader, Hello, Welcome};

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
    /// The last `Data` frame's payload, and its decoded bytes: reused, so the bulk of a sync
    /// costs no allocation and no copy between the socket and the destination.
    data: Vec<u8>,
    decoded: Vec<u8>,
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
            data: Vec::new(),
            decoded: Vec::new(),
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

    fn header(&mut self) -> Result<FrameHeader> {
        let mut h = [0u8; FrameHeader::LEN];
        if let Err(e) = self.reader.read_exact(&mut h) {
            return Err(self.io_error(e, "waiting for an answer"));
        }
        let h = FrameHeader::decode(&h)
            .with_context(|| format!("a frame from the source agent at {}", self.uri))?;
        self.wire.fetch_add(
            (FrameHeader::LEN + h.length as usize) as u64,
            Ordering::Relaxed,
        );
        Ok(h)
    }

    fn recv(&mut self) -> Result<Frame> {
        let h = self.header()?;
        self.frame(h)
    }

    fn frame(&mut self, h: FrameHeader) -> Result<Frame> {
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
        frame
    }

    /// Reads the payload of a `Data` frame into the reused buffer, decoding it there if needed.
    fn data(&mut self, h: FrameHeader) -> Result<Event<'_>> {
        let mut fields = [0u8; DataHead::LEN];
        let n = (h.length as usize)
            .checked_sub(DataHead::LEN)
            .ok_or_else(|| anyhow!("a short data frame from the source agent at {}", self.uri))?;
        if let Err(e) = self.reader.read_exact(&mut fields) {
            return Err(self.io_error(e, "reading an answer"));
        }
        let d = DataHead::decode(&fields)
            .with_context(|| format!("a frame from the source agent at {}", self.uri))?;
        if d.encoding == Encoding::Zeros {
            if n != 0 {
                bail!(
                    "the source agent at {} sent bytes with a zero range",
                    self.uri
                );
            }
            return Ok(Event::Zeros {
                chunk: d.chunk,
                offset: d.offset,
                len: d.raw_len,
            });
        }
        // Grown, never shrunk: a buffer is zeroed once, not for every frame.
        if self.data.len() < n {
            self.data.resize(n, 0);
        }
        if let Err(e) = self.reader.read_exact(&mut self.data[..n]) {
            return Err(self.io_error(e, "reading an answer"));
        }
        let bytes = if d.encoding == Encoding::Raw && n == d.raw_len as usize {
            &self.data[..n]
        } else {
            compress::decode(
                &mut self.zstd,
                d.encoding,
                &self.data[..n],
                d.raw_len as usize,
                &mut self.decoded,
            )
            .with_context(|| format!("chunk {} from the source agent at {}", d.chunk, self.uri))?;
            &self.decoded[..]
        };
        Ok(Event::Data {
            chunk: d.chunk,
            offset: d.offset,
            bytes: Cow::Borrowed(bytes),
            wire: n as u64,
        })
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

    fn next(&mut self) -> Result<Event<'_>> {
        let h = self.header()?;
        if h.kind == DataHead::KIND {
            return self.data(h);
        }
        Ok(match self.frame(h)? {
            Frame::Same { chunk } => Event::Same { chunk },
            Frame::Zero { chunk } => Event::Zero { chunk },
            Frame::Differs { chunk, .. } => Event::Differs { chunk },
            Frame::ChunkEnd { chunk, digest } => Event::ChunkEnd { chunk, digest },
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
