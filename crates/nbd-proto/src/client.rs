//! A blocking client with many requests in flight on one connection.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::ops::Range;

use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::handshake::{ClientConfig, ClientHandshake, Handshake, Session};
use crate::msgs::{
    BlockStatus, ChunkHeader, ErrorChunk, OffsetHole, ReplyHeader, Request, MAX_PAYLOAD,
};
use crate::transport::{Stream, Uri};
use crate::types::{CmdFlags, Command, Extent, ReplyFlags, ReplyType, TransmissionFlags};

/// Drives a handshake state machine over a stream until it is done.
pub fn drive_handshake(stream: &mut Stream, hs: &mut impl Handshake) -> Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
        if hs.is_done() {
            return Ok(());
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(Error::Closed("during the handshake".into()));
        }
        hs.received(&buf[..n])?;
    }
}

/// A finished request.
#[derive(Debug)]
pub struct Completion {
    /// The cookie [`Client`]'s `submit_*` returned.
    pub cookie: u64,
    /// The reply, or the server's error for this request (the connection stays usable).
    pub result: Result<Reply>,
}

/// The successful outcome of a request.
#[derive(Debug)]
pub enum Reply {
    /// A read: the buffer given to [`Client::submit_read`], filled.
    Read {
        /// Where the read started.
        offset: u64,
        /// The data; holes are zero-filled.
        buf: Vec<u8>,
        /// The ranges (absolute offsets) the server sent as hole chunks, in arrival order.
        holes: Vec<Range<u64>>,
    },
    /// A block status query in `base:allocation`.
    BlockStatus(Vec<Extent>),
    /// Any other command.
    Done,
}

#[derive(Debug)]
struct Pending {
    command: Command,
    offset: u64,
    length: u32,
    buf: Vec<u8>,
    holes: Vec<Range<u64>>,
    extents: Vec<Extent>,
    covered: Coverage,
    error: Option<Error>,
}

/// The parts of a read that chunks have filled, as sorted, disjoint ranges. A chunk that overlaps
/// another is a protocol error: it would leave the bytes of whichever came last, and a count of
/// covered bytes would then hide a gap elsewhere.
#[derive(Debug, Default)]
struct Coverage(Vec<Range<u64>>);

impl Coverage {
    fn insert(&mut self, r: Range<u64>) -> Result<()> {
        if r.is_empty() {
            return Ok(());
        }
        let i = self.0.partition_point(|x| x.end <= r.start);
        if let Some(next) = self.0.get(i) {
            if next.start < r.end {
                return Err(Error::Protocol(format!(
                    "reply chunk {r:?} overlaps chunk {next:?} of the same read"
                )));
            }
        }
        match (i.checked_sub(1).and_then(|p| self.0.get_mut(p)), r) {
            (Some(prev), r) if prev.end == r.start => {
                prev.end = r.end;
                if let Some(next) = self.0.get(i).cloned().filter(|n| n.start == r.end) {
                    self.0[i - 1].end = next.end;
                    self.0.remove(i);
                }
            }
            (_, r) => {
                if let Some(next) = self.0.get_mut(i).filter(|n| n.start == r.end) {
                    next.start = r.start;
                } else {
                    self.0.insert(i, r);
                }
            }
        }
        Ok(())
    }

    fn is_exactly(&self, r: &Range<u64>) -> bool {
        self.0.len() == 1 && self.0[0] == *r || (r.is_empty() && self.0.is_empty())
    }
}

/// What a handshake with [`ClientConfig::upgrade`] ended in.
#[derive(Debug)]
pub enum Negotiated {
    /// The server refused the upgrade (the reason is kept) and the connection speaks NBD.
    Nbd(Box<Client>, Option<String>),
    /// The server switched protocols: the stream is the other protocol's now.
    Upgraded(Stream),
}

/// A connected client. Requests are submitted and their completions received separately, so
/// many can be in flight; each is identified by its cookie.
///
/// Writes are sent inline: submitting a large write blocks until the payload is on the wire,
/// which is fine with servers that keep reading requests while replying (all common ones do).
#[derive(Debug)]
pub struct Client {
    reader: BufReader<Stream>,
    writer: Stream,
    session: Session,
    next_cookie: u64,
    pending: HashMap<u64, Pending>,
}

impl Client {
    /// Connects to `uri` and negotiates structured replies and `base:allocation` (when offered).
    pub fn connect(uri: &Uri) -> Result<Client> {
        Client::with_config(uri.address.connect()?, ClientConfig::new(&uri.export))
    }

    /// Negotiates per `config` on an open stream.
    pub fn with_config(stream: Stream, config: ClientConfig) -> Result<Client> {
        match Client::negotiate(stream, config)? {
            Negotiated::Nbd(c, _) => Ok(*c),
            Negotiated::Upgraded(_) => Err(Error::Protocol(
                "the server switched protocols, which Client::with_config cannot speak".into(),
            )),
        }
    }

    /// Negotiates per `config`, which may ask for an upgrade to another protocol.
    pub fn negotiate(mut stream: Stream, config: ClientConfig) -> Result<Negotiated> {
        let mut hs = ClientHandshake::new(config);
        drive_handshake(&mut stream, &mut hs)?;
        let refusal = hs.upgrade_refusal().map(str::to_string);
        let session = hs.finish()?;
        if session.upgraded {
            return Ok(Negotiated::Upgraded(stream));
        }
        Ok(Negotiated::Nbd(
            Box::new(Client::over(stream, session)?),
            refusal,
        ))
    }

    fn over(stream: Stream, session: Session) -> Result<Client> {
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::with_capacity(256 << 10, stream),
            writer,
            session,
            next_cookie: 1,
            pending: HashMap::new(),
        })
    }

    /// What was negotiated.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The export's size.
    pub fn size(&self) -> u64 {
        self.session.export.size
    }

    /// The export's transmission flags.
    pub fn flags(&self) -> TransmissionFlags {
        self.session.export.flags
    }

    /// How many requests await their reply.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The stream, to set timeouts on reads for example.
    pub fn stream(&self) -> &Stream {
        &self.writer
    }

    fn submit(
        &mut self,
        command: Command,
        flags: CmdFlags,
        offset: u64,
        length: u32,
        payload: &[u8],
        buf: Vec<u8>,
    ) -> Result<u64> {
        let end = offset
            .checked_add(length.into())
            .filter(|&e| e <= self.size());
        if end.is_none() && !matches!(command, Command::Flush | Command::Disc) {
            return Err(Error::Protocol(format!(
                "{command:?} of {length} bytes at {offset} is beyond the export's size {}",
                self.size()
            )));
        }
        if matches!(command, Command::Read | Command::Write) && length > MAX_PAYLOAD {
            return Err(Error::TooLarge {
                what: "request payload",
                len: length.into(),
                max: MAX_PAYLOAD.into(),
            });
        }
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let mut msg = Vec::with_capacity(Request::LEN);
        Request {
            flags,
            command,
            cookie,
            offset,
            length,
        }
        .encode(&mut msg);
        if payload.is_empty() {
            self.writer.write_all(&msg)?;
        } else {
            let mut both = [std::io::IoSlice::new(&msg), std::io::IoSlice::new(payload)];
            write_all_vectored(&mut self.writer, &mut both)?;
        }
        if command != Command::Disc {
            self.pending.insert(
                cookie,
                Pending {
                    command,
                    offset,
                    length,
                    buf,
                    holes: Vec::new(),
                    extents: Vec::new(),
                    covered: Coverage::default(),
                    error: None,
                },
            );
        }
        Ok(cookie)
    }

    /// Reads `buf.len()` bytes at `offset`; the buffer comes back in the completion.
    pub fn submit_read(&mut self, offset: u64, buf: Vec<u8>) -> Result<u64> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        self.submit(Command::Read, CmdFlags::default(), offset, len, &[], buf)
    }

    /// Writes `data` at `offset`.
    pub fn submit_write(&mut self, offset: u64, data: &[u8]) -> Result<u64> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.submit(
            Command::Write,
            CmdFlags::default(),
            offset,
            len,
            data,
            Vec::new(),
        )
    }

    /// Writes `length` zero bytes at `offset`.
    pub fn submit_write_zeroes(&mut self, offset: u64, length: u32) -> Result<u64> {
        self.submit(
            Command::WriteZeroes,
            CmdFlags::default(),
            offset,
            length,
            &[],
            Vec::new(),
        )
    }

    /// Flushes the server's caches.
    pub fn submit_flush(&mut self) -> Result<u64> {
        self.submit(Command::Flush, CmdFlags::default(), 0, 0, &[], Vec::new())
    }

    /// Asks for the `base:allocation` status of `length` bytes at `offset`; the server may answer
    /// for less (or, in the last extent, more).
    pub fn submit_block_status(&mut self, offset: u64, length: u32) -> Result<u64> {
        if self.session.base_allocation.is_none() {
            return Err(Error::Protocol("base:allocation was not negotiated".into()));
        }
        self.submit(
            Command::BlockStatus,
            CmdFlags::default(),
            offset,
            length,
            &[],
            Vec::new(),
        )
    }

    /// Sends `NBD_CMD_DISC` and closes the connection; requests still in flight are dropped.
    pub fn disconnect(mut self) -> Result<()> {
        self.submit(Command::Disc, CmdFlags::default(), 0, 0, &[], Vec::new())?;
        self.writer.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// Waits for the next request to complete.
    pub fn recv(&mut self) -> Result<Completion> {
        if self.pending.is_empty() {
            return Err(Error::Protocol("recv with no request in flight".into()));
        }
        loop {
            if let Some(c) = self.recv_one()? {
                return Ok(c);
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.reader.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Closed(format!(
                    "while reading {what}, with {} requests in flight",
                    self.pending.len()
                ))
            } else {
                Error::Io(e)
            }
        })
    }

    fn recv_one(&mut self) -> Result<Option<Completion>> {
        let mut hdr = [0u8; ChunkHeader::LEN];
        self.read_exact(&mut hdr[..4], "a reply")?;
        let len = ReplyHeader::len_for_magic([hdr[0], hdr[1], hdr[2], hdr[3]])?;
        self.read_exact(&mut hdr[4..len], "a reply header")?;
        match ReplyHeader::read(&mut Reader::new(&hdr[..len]))? {
            ReplyHeader::Simple(s) => {
                let mut p = self.pending.remove(&s.cookie).ok_or_else(|| {
                    Error::Protocol(format!("simple reply for unknown cookie {}", s.cookie))
                })?;
                if let Some(code) = s.error {
                    return Ok(Some(Completion {
                        cookie: s.cookie,
                        result: Err(command_error(&p, code, String::new())),
                    }));
                }
                if p.command == Command::Read {
                    let mut buf = std::mem::take(&mut p.buf);
                    self.read_exact(&mut buf, "read data")?;
                    p.buf = buf;
                    p.covered.insert(p.offset..p.offset + u64::from(p.length))?;
                }
                Ok(Some(self.complete(s.cookie, p)))
            }
            ReplyHeader::Chunk(c) => self.on_chunk(c),
        }
    }

    fn on_chunk(&mut self, c: ChunkHeader) -> Result<Option<Completion>> {
        if c.length > MAX_PAYLOAD + 64 {
            return Err(Error::TooLarge {
                what: "reply chunk",
                len: c.length.into(),
                max: (MAX_PAYLOAD + 64).into(),
            });
        }
        let mut p = self.pending.remove(&c.cookie).ok_or_else(|| {
            Error::Protocol(format!("reply chunk for unknown cookie {}", c.cookie))
        })?;
        let range = p.offset..p.offset + u64::from(p.length);
        let within = |off: u64, len: u64| {
            off >= range.start && off.checked_add(len).is_some_and(|e| e <= range.end)
        };
        match c.kind {
            ReplyType::OffsetData if p.command == Command::Read && c.length >= 8 => {
                let mut o = [0u8; 8];
                self.read_exact(&mut o, "data chunk offset")?;
                let off = u64::from_be_bytes(o);
                let len = u64::from(c.length - 8);
                if !within(off, len) {
                    return Err(Error::Protocol(format!(
                        "data chunk {off}+{len} outside read {range:?}"
                    )));
                }
                p.covered.insert(off..off + len)?;
                let at = (off - p.offset) as usize;
                let mut buf = std::mem::take(&mut p.buf);
                self.read_exact(&mut buf[at..at + len as usize], "data chunk")?;
                p.buf = buf;
            }
            ReplyType::OffsetHole if p.command == Command::Read && c.length == 12 => {
                let mut b = [0u8; 12];
                self.read_exact(&mut b, "hole chunk")?;
                let h = OffsetHole::from_bytes(&b)?;
                if !within(h.offset, h.length.into()) {
                    return Err(Error::Protocol(format!(
                        "hole chunk {}+{} outside read {range:?}",
                        h.offset, h.length
                    )));
                }
                p.covered.insert(h.offset..h.offset + u64::from(h.length))?;
                let at = (h.offset - p.offset) as usize;
                p.buf[at..at + h.length as usize].fill(0);
                p.holes.push(h.offset..h.offset + u64::from(h.length));
            }
            ReplyType::BlockStatus if p.command == Command::BlockStatus => {
                let payload = self.payload(c.length, "block status chunk")?;
                let bs = BlockStatus::from_bytes(&payload)?;
                if Some(bs.context) == self.session.base_allocation {
                    let mut at = p.offset;
                    for d in bs.descriptors {
                        if d.length == 0 {
                            return Err(Error::Protocol(
                                "block status descriptor of length 0".into(),
                            ));
                        }
                        p.extents.push(Extent {
                            offset: at,
                            length: d.length.into(),
                            flags: d.flags,
                        });
                        at += u64::from(d.length);
                    }
                }
            }
            ReplyType::Error | ReplyType::ErrorOffset => {
                let payload = self.payload(c.length, "error chunk")?;
                let e = ErrorChunk::decode(c.kind, &payload)?;
                if p.error.is_none() {
                    p.error = Some(command_error(&p, e.code, e.message));
                }
            }
            ReplyType::None if c.length == 0 && c.flags.contains(ReplyFlags::DONE) => {}
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected chunk {other:?} of {} bytes for {:?}",
                    c.length, p.command
                )));
            }
        }
        if c.flags.contains(ReplyFlags::DONE) {
            return Ok(Some(self.complete(c.cookie, p)));
        }
        self.pending.insert(c.cookie, p);
        Ok(None)
    }

    fn payload(&mut self, len: u32, what: &str) -> Result<Vec<u8>> {
        let mut v = vec![0; len as usize];
        self.read_exact(&mut v, what)?;
        Ok(v)
    }

    fn complete(&mut self, cookie: u64, p: Pending) -> Completion {
        let result = match p.error {
            Some(e) => Err(e),
            None => match p.command {
                Command::Read
                    if !p
                        .covered
                        .is_exactly(&(p.offset..p.offset + u64::from(p.length))) =>
                {
                    Err(Error::Protocol(format!(
                        "read of {} bytes at {} answered only for {:?}",
                        p.length, p.offset, p.covered.0
                    )))
                }
                Command::Read => Ok(Reply::Read {
                    offset: p.offset,
                    buf: p.buf,
                    holes: p.holes,
                }),
                Command::BlockStatus if p.extents.is_empty() => Err(Error::Protocol(format!(
                    "block status at {} returned no extents",
                    p.offset
                ))),
                Command::BlockStatus => Ok(Reply::BlockStatus(p.extents)),
                _ => Ok(Reply::Done),
            },
        };
        Completion { cookie, result }
    }

    /// Runs one request to completion; only valid with nothing else in flight.
    fn call(&mut self, cookie: Result<u64>) -> Result<Reply> {
        let cookie = cookie?;
        if self.pending.len() != 1 {
            return Err(Error::Protocol(
                "synchronous call with other requests in flight".into(),
            ));
        }
        let c = self.recv()?;
        debug_assert_eq!(c.cookie, cookie);
        c.result
    }

    /// Reads `len` bytes at `offset`, waiting for the reply.
    pub fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let c = self.submit_read(offset, vec![0; len]);
        match self.call(c)? {
            Reply::Read { buf, .. } => Ok(buf),
            other => Err(Error::Protocol(format!(
                "unexpected reply {other:?} to a read"
            ))),
        }
    }

    /// Writes `data` at `offset`, waiting for the reply.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let c = self.submit_write(offset, data);
        self.call(c).map(drop)
    }

    /// Writes zeros, waiting for the reply.
    pub fn write_zeroes(&mut self, offset: u64, length: u32) -> Result<()> {
        let c = self.submit_write_zeroes(offset, length);
        self.call(c).map(drop)
    }

    /// Flushes, waiting for the reply.
    pub fn flush(&mut self) -> Result<()> {
        let c = self.submit_flush();
        self.call(c).map(drop)
    }

    /// Queries block status, waiting for the reply.
    pub fn block_status(&mut self, offset: u64, length: u32) -> Result<Vec<Extent>> {
        let c = self.submit_block_status(offset, length);
        match self.call(c)? {
            Reply::BlockStatus(e) => Ok(e),
            other => Err(Error::Protocol(format!(
                "unexpected reply {other:?} to block status"
            ))),
        }
    }
}

fn command_error(p: &Pending, code: crate::types::ErrorCode, message: String) -> Error {
    Error::Command {
        what: format!("{:?} of {} bytes at {}", p.command, p.length, p.offset),
        code,
        message,
    }
}

fn write_all_vectored(w: &mut Stream, mut bufs: &mut [std::io::IoSlice<'_>]) -> Result<()> {
    std::io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs)?;
        if n == 0 {
            return Err(Error::Closed("while sending a request".into()));
        }
        std::io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_merges_and_refuses_overlaps() {
        let mut c = Coverage::default();
        c.insert(100..200).unwrap();
        c.insert(0..50).unwrap();
        c.insert(300..400).unwrap();
        c.insert(50..100).unwrap();
        assert_eq!(c.0, vec![0..200, 300..400]);
        assert!(!c.is_exactly(&(0..400)), "a gap is not coverage");
        assert!(c.insert(150..250).is_err());
        assert!(c.insert(250..301).is_err());
        assert!(c.insert(0..1).is_err(), "a repeated chunk overlaps");
        c.insert(200..300).unwrap();
        assert!(c.is_exactly(&(0..400)));
    }
}
