//! A blocking server: one connection at a time per call, backed by a [`Backend`].

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;

use crate::client::drive_handshake;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::handshake::{Export, ServerHandshake, Session};
use crate::msgs::{
    BlockStatus, ChunkHeader, Descriptor, ErrorChunk, OffsetHole, Request, SimpleReply, MAX_PAYLOAD,
};
use crate::transmission::{Feed, Incoming, RequestDecoder};
use crate::transport::Stream;
use crate::types::{
    AllocFlags, CmdFlags, Command, ErrorCode, Extent, ReplyFlags, ReplyType, TransmissionFlags,
};

/// What a server serves: the bytes of one export.
///
/// Only reads are required; the write operations default to failing, which suits read-only
/// exports (advertise `READ_ONLY` in the [`Export`] flags then).
pub trait Backend: Send + Sync {
    /// Fills `buf` from `offset`, and returns the runs of `buf` (sorted, not overlapping) that
    /// read as zeros and may go out as hole chunks. An empty list is always correct. `buf` starts
    /// at a [`READ_ALIGN`] boundary, so it can take an `O_DIRECT` read.
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<Vec<Range<usize>>>;

    /// The `base:allocation` status from `offset` on, for about `length` bytes: at least one
    /// extent starting at `offset`, contiguous. Defaults to "all data".
    fn extents(&self, offset: u64, length: u32) -> io::Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset,
            length: length.into(),
            flags: AllocFlags::default(),
        }])
    }

    /// Writes `data` at `offset`.
    fn write(&self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::PermissionDenied))
    }

    /// Writes `length` zero bytes at `offset`.
    fn write_zeroes(&self, _offset: u64, _length: u32) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::PermissionDenied))
    }

    /// Makes written data durable.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes over a connection whose client asked for the private upgrade option (see
/// [`crate::Upgrade`]) and speaks the other protocol on it.
pub trait UpgradeHandler: Send + Sync {
    /// Serves the connection for `export`; `leftover` holds bytes the client already sent.
    fn serve(&self, export: &str, stream: Stream, leftover: Vec<u8>) -> Result<()>;
}

/// A set of exports, each with its backend; [`Server::serve`] runs one connection.
#[derive(Clone, Default)]
pub struct Server {
    exports: Vec<(Export, Arc<dyn Backend>)>,
    upgrade: Option<(u32, Arc<dyn UpgradeHandler>)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.exports.iter().map(|(e, _)| e))
            .finish()
    }
}

/// One reply on its way out: header bytes, with read data spliced in between.
pub(crate) struct Outgoing {
    meta: Vec<u8>,
    /// (end of a stretch of `meta`, range of `data` that follows it)
    parts: Vec<(usize, Range<usize>)>,
    data: Vec<u8>,
}

impl Outgoing {
    fn meta(meta: Vec<u8>) -> Self {
        Outgoing {
            meta,
            parts: Vec::new(),
            data: Vec::new(),
        }
    }

    pub(crate) fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut at = 0;
        for (end, r) in &self.parts {
            w.write_all(&self.meta[at..*end])?;
            w.write_all(&self.data[r.clone()])?;
            at = *end;
        }
        w.write_all(&self.meta[at..])
    }
}

impl Server {
    /// A server with no exports yet.
    pub fn new() -> Self {
        Server::default()
    }

    /// Adds an export; the first one is also the default export (name "").
    pub fn add_export(&mut self, export: Export, backend: Arc<dyn Backend>) -> &mut Self {
        self.exports.push((export, backend));
        self
    }

    /// Accepts the private option `option`, handing such connections to `handler`.
    pub fn with_upgrade(&mut self, option: u32, handler: Arc<dyn UpgradeHandler>) -> &mut Self {
        self.upgrade = Some((option, handler));
        self
    }

    /// Handshakes and serves one connection until the client disconnects.
    pub fn serve(&self, mut stream: Stream) -> Result<()> {
        let mut hs = ServerHandshake::new(self.exports.iter().map(|(e, _)| e.clone()).collect());
        if let Some((option, _)) = &self.upgrade {
            hs = hs.accept_upgrade(*option);
        }
        drive_handshake(&mut stream, &mut hs)?;
        let (session, leftover) = match hs.finish() {
            Ok(v) => v,
            Err(Error::Closed(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if session.upgraded {
            let (_, handler) = self
                .upgrade
                .as_ref()
                .ok_or_else(|| Error::Protocol("upgraded without a handler".into()))?;
            return handler.serve(&session.export.name, stream, leftover);
        }
        let backend = self
            .exports
            .iter()
            .find(|(e, _)| e.name == session.export.name)
            .map(|(_, b)| Arc::clone(b))
            .ok_or_else(|| Error::Protocol("negotiated export vanished".into()))?;
        let (tx, rx) = sync_channel::<Outgoing>(8);
        // Read buffers go back to the reading side once sent: fresh multi-MiB allocations cost a
        // page fault per 4 KiB on every request.
        let (back, pool) = sync_channel::<Vec<u8>>(16);
        let out = stream.try_clone()?;
        let writer = thread::spawn(move || write_replies(out, rx, back));
        let conn = Connection::new(session, &*backend, pool);
        let mut requests = RequestDecoder::new();
        let mut input = BufReader::with_capacity(256 << 10, stream);
        let result = requests
            .feed(&leftover)
            .and_then(|()| conn.run(&mut requests, &mut input, |o| tx.send(o).is_ok()));
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("reply writer panicked")));
        result?;
        written.map_err(Error::Io)
    }
}

fn write_replies(
    stream: Stream,
    rx: Receiver<Outgoing>,
    back: SyncSender<Vec<u8>>,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(256 << 10, stream);
    let send = |o: Outgoing, w: &mut BufWriter<Stream>| -> io::Result<()> {
        o.write_to(w)?;
        if o.data.capacity() > 0 {
            let _ = back.try_send(o.data);
        }
        Ok(())
    };
    while let Ok(o) = rx.recv() {
        send(o, &mut w)?;
        // Flush only when nothing else is queued, so small replies travel together.
        let mut next = rx.try_recv();
        while let Ok(o) = next {
            send(o, &mut w)?;
            next = rx.try_recv();
        }
        w.flush()?;
    }
    w.flush()
}

/// Alignment of read buffers handed to backends, so they can read with `O_DIRECT` into them.
pub const READ_ALIGN: usize = 4096;

/// Answers the requests of one connection from a backend, without I/O: each request becomes the
/// bytes of its reply.
pub(crate) struct Connection<'a> {
    session: Session,
    backend: &'a dyn Backend,
    /// Read buffers the reply writer is done with.
    pool: Receiver<Vec<u8>>,
}

fn io_code(e: &io::Error) -> ErrorCode {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ErrorCode::Perm,
        io::ErrorKind::InvalidInput => ErrorCode::Inval,
        io::ErrorKind::OutOfMemory => ErrorCode::NoMem,
        io::ErrorKind::Unsupported => ErrorCode::NotSup,
        _ => match e.raw_os_error() {
            Some(28) => ErrorCode::NoSpc,
            _ => ErrorCode::Io,
        },
    }
}

impl<'a> Connection<'a> {
    pub(crate) fn new(
        session: Session,
        backend: &'a dyn Backend,
        pool: Receiver<Vec<u8>>,
    ) -> Connection<'a> {
        Connection {
            session,
            backend,
            pool,
        }
    }

    fn run(
        &self,
        requests: &mut RequestDecoder,
        input: &mut dyn Read,
        mut send: impl FnMut(Outgoing) -> bool,
    ) -> Result<()> {
        loop {
            while let Some(Incoming { req, payload }) = requests.next_request() {
                if req.command == Command::Disc {
                    return Ok(());
                }
                if !send(self.handle(&req, &payload)) {
                    return Ok(());
                }
            }
            if requests.fill_from(input)? == 0 {
                if requests.in_payload() {
                    return Err(Error::Closed("in the middle of a write's payload".into()));
                }
                // A client that just closes instead of sending DISC is common (and harmless).
                return Ok(());
            }
        }
    }

    fn simple(&self, cookie: u64, error: Option<ErrorCode>) -> Outgoing {
        Outgoing::meta(SimpleReply { error, cookie }.to_bytes())
    }

    fn error(&self, req: &Request, code: ErrorCode, message: &str) -> Outgoing {
        if !self.session.structured_replies {
            return self.simple(req.cookie, Some(code));
        }
        let e = ErrorChunk {
            code,
            message: message.chars().take(4096).collect(),
            offset: None,
        };
        let mut payload = Vec::new();
        e.encode(&mut payload);
        let mut meta = Vec::new();
        ChunkHeader {
            flags: ReplyFlags::DONE,
            kind: e.kind(),
            cookie: req.cookie,
            length: payload.len() as u32,
        }
        .encode(&mut meta);
        meta.extend_from_slice(&payload);
        Outgoing::meta(meta)
    }

    /// The reply to `req`; `payload` is a write's data.
    pub(crate) fn handle(&self, req: &Request, payload: &[u8]) -> Outgoing {
        let size = self.session.export.size;
        let in_range = req.end().is_some_and(|e| e <= size);
        let read_only = self
            .session
            .export
            .flags
            .contains(TransmissionFlags::READ_ONLY);
        match req.command {
            Command::Write => {
                if read_only {
                    self.error(req, ErrorCode::Perm, "export is read-only")
                } else if !in_range {
                    self.error(req, ErrorCode::NoSpc, "write beyond the end of the export")
                } else {
                    match self.backend.write(req.offset, payload) {
                        Ok(()) => self.simple(req.cookie, None),
                        Err(e) => self.error(req, io_code(&e), &e.to_string()),
                    }
                }
            }
            _ if !in_range && req.command != Command::Flush => self.error(
                req,
                ErrorCode::Inval,
                "request beyond the end of the export",
            ),
            Command::Read if req.length > MAX_PAYLOAD => {
                self.error(req, ErrorCode::Overflow, "read too large")
            }
            Command::Read => self.read(req),
            Command::WriteZeroes if read_only => {
                self.error(req, ErrorCode::Perm, "export is read-only")
            }
            Command::WriteZeroes => match self.backend.write_zeroes(req.offset, req.length) {
                Ok(()) => self.simple(req.cookie, None),
                Err(e) => self.error(req, io_code(&e), &e.to_string()),
            },
            Command::Flush => match self.backend.flush() {
                Ok(()) => self.simple(req.cookie, None),
                Err(e) => self.error(req, io_code(&e), &e.to_string()),
            },
            Command::BlockStatus => self.block_status(req),
            other => self.error(
                req,
                ErrorCode::Inval,
                &format!("command {other:?} is not supported"),
            ),
        }
    }

    fn read(&self, req: &Request) -> Outgoing {
        let len = req.length as usize;
        let mut data = self.pool.try_recv().unwrap_or_default();
        data.resize(len + READ_ALIGN, 0);
        let base = data.as_ptr().align_offset(READ_ALIGN);
        let zeros = match self.backend.read(req.offset, &mut data[base..base + len]) {
            Ok(z) => z,
            Err(e) => return self.error(req, io_code(&e), &format!("read at {}: {e}", req.offset)),
        };
        if !self.session.structured_replies {
            let mut o = self.simple(req.cookie, None);
            o.parts.push((o.meta.len(), base..base + len));
            o.data = data;
            return o;
        }
        // Split into content chunks: data between the zero runs, holes for the runs.
        let mut pieces: Vec<(bool, Range<usize>)> = Vec::new();
        let mut at = 0;
        for z in zeros
            .into_iter()
            .filter(|z| z.start < z.end && z.end <= len)
        {
            if z.start < at {
                continue;
            }
            if z.start > at {
                pieces.push((false, at..z.start));
            }
            pieces.push((true, z.clone()));
            at = z.end;
        }
        if at < len {
            pieces.push((false, at..len));
        }
        if req.flags.contains(CmdFlags::DF) && pieces.len() > 1 {
            pieces = vec![(false, 0..len)];
        }
        let mut meta = Vec::new();
        let mut parts = Vec::new();
        if pieces.is_empty() {
            ChunkHeader {
                flags: ReplyFlags::DONE,
                kind: ReplyType::None,
                cookie: req.cookie,
                length: 0,
            }
            .encode(&mut meta);
        }
        let last = pieces.len().saturating_sub(1);
        for (i, (hole, r)) in pieces.into_iter().enumerate() {
            let flags = if i == last {
                ReplyFlags::DONE
            } else {
                ReplyFlags::default()
            };
            let offset = req.offset + r.start as u64;
            let len = (r.end - r.start) as u32;
            if hole {
                ChunkHeader {
                    flags,
                    kind: ReplyType::OffsetHole,
                    cookie: req.cookie,
                    length: 12,
                }
                .encode(&mut meta);
                OffsetHole {
                    offset,
                    length: len,
                }
                .encode(&mut meta);
            } else {
                ChunkHeader {
                    flags,
                    kind: ReplyType::OffsetData,
                    cookie: req.cookie,
                    length: len + 8,
                }
                .encode(&mut meta);
                meta.extend_from_slice(&offset.to_be_bytes());
                parts.push((meta.len(), base + r.start..base + r.end));
            }
        }
        Outgoing { meta, parts, data }
    }

    fn block_status(&self, req: &Request) -> Outgoing {
        let Some(context) = self.session.base_allocation else {
            return self.error(req, ErrorCode::Inval, "no metadata context was negotiated");
        };
        if req.length == 0 {
            return self.error(req, ErrorCode::Inval, "block status of length 0");
        }
        let extents = match self.backend.extents(req.offset, req.length) {
            Ok(e) => e,
            Err(e) => return self.error(req, io_code(&e), &e.to_string()),
        };
        let end = req.offset + u64::from(req.length);
        let mut descriptors: Vec<Descriptor> = Vec::new();
        let mut at = req.offset;
        for e in extents {
            if e.offset != at || e.length == 0 || at >= end {
                break;
            }
            // Descriptor lengths are 32-bit; stay within the request so no extent overflows.
            let len = e.length.min(end - at) as u32;
            match descriptors.last_mut() {
                Some(d) if d.flags == e.flags => d.length += len,
                _ => descriptors.push(Descriptor {
                    length: len,
                    flags: e.flags,
                }),
            }
            at += u64::from(len);
            if req.flags.contains(CmdFlags::REQ_ONE) {
                break;
            }
        }
        if descriptors.is_empty() {
            return self.error(
                req,
                ErrorCode::Io,
                "backend returned no extent for the range",
            );
        }
        if req.flags.contains(CmdFlags::REQ_ONE) {
            descriptors.truncate(1);
        }
        let payload = BlockStatus {
            context,
            descriptors,
        }
        .to_bytes();
        let mut meta = Vec::new();
        ChunkHeader {
            flags: ReplyFlags::DONE,
            kind: ReplyType::BlockStatus,
            cookie: req.cookie,
            length: payload.len() as u32,
        }
        .encode(&mut meta);
        meta.extend_from_slice(&payload);
        Outgoing::meta(meta)
    }
}
