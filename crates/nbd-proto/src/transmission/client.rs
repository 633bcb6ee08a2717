//! The client's side of the transmission phase: requests encoded, replies reassembled.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::ops::Range;

use super::coverage::Coverage;
use super::Feed;
use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::handshake::Session;
use crate::msgs::{
    BlockStatus, ChunkHeader, ErrorChunk, OffsetHole, ReplyHeader, Request, SimpleReply,
    MAX_PAYLOAD,
};
use crate::types::{CmdFlags, Command, ErrorCode, Extent, ReplyFlags, ReplyType};

/// The largest chunk payload accepted: a whole read's data behind its 8-byte offset, with some
/// slack (holes, block status and errors are far smaller). Anything longer is a broken peer, and
/// refusing it before allocating keeps a bad length field from costing gigabytes.
const MAX_CHUNK: u32 = MAX_PAYLOAD + 64;

/// The reply header's magic is read first, since it tells how long the header is.
const MAGIC_LEN: usize = 4;

/// A finished request.
#[derive(Debug)]
pub struct Completion {
    /// The cookie the request was submitted with.
    pub cookie: u64,
    /// The reply, or the server's error for this request (the connection stays usable).
    pub result: Result<Reply>,
}

/// The successful outcome of a request.
#[derive(Debug)]
pub enum Reply {
    /// A read: the buffer given to [`ClientTransmission::read`], filled.
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

/// A request awaiting its reply.
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

impl Pending {
    fn range(&self) -> Range<u64> {
        self.offset..self.offset + u64::from(self.length)
    }

    /// Records the server's error; the first one is kept, as the one nearest the cause.
    fn fail(&mut self, code: ErrorCode, message: String) {
        if self.error.is_none() {
            self.error = Some(Error::Command {
                what: format!(
                    "{:?} of {} bytes at {}",
                    self.command, self.length, self.offset
                ),
                code,
                message,
            });
        }
    }

    /// The part of this request `off`..`off + len` stands for, if it lies within it.
    fn inside(&self, off: u64, len: u64, what: &str) -> Result<Range<u64>> {
        let range = self.range();
        match off.checked_add(len) {
            Some(end) if off >= range.start && end <= range.end => Ok(off..end),
            _ => Err(Error::Protocol(format!(
                "{what} {off}+{len} outside read {range:?}"
            ))),
        }
    }

    fn finish(self) -> Result<Reply> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.command {
            Command::Read if !self.covered.is_exactly(&self.range()) => {
                Err(Error::Protocol(format!(
                    "read of {} bytes at {} answered only for {:?}",
                    self.length,
                    self.offset,
                    self.covered.ranges()
                )))
            }
            Command::Read => Ok(Reply::Read {
                offset: self.offset,
                buf: self.buf,
                holes: self.holes,
            }),
            Command::BlockStatus if self.extents.is_empty() => Err(Error::Protocol(format!(
                "block status at {} returned no extents",
                self.offset
            ))),
            Command::BlockStatus => Ok(Reply::BlockStatus(self.extents)),
            _ => Ok(Reply::Done),
        }
    }
}

/// What the next bytes from the server are.
#[derive(Debug)]
enum Recv {
    /// A reply header: [`MAGIC_LEN`] bytes of magic first (`len` is then `MAGIC_LEN`), then the
    /// rest of the kind of header the magic names.
    Header {
        buf: [u8; ChunkHeader::LEN],
        have: usize,
        len: usize,
    },
    /// A chunk payload decoded once whole: a data chunk's offset, a hole, block status, an error.
    Payload {
        chunk: ChunkHeader,
        buf: Vec<u8>,
        have: usize,
        what: &'static str,
    },
    /// Read data, straight into the read's buffer, which its [`Pending`] lends meanwhile.
    Data {
        cookie: u64,
        done: bool,
        buf: Vec<u8>,
        at: usize,
        end: usize,
        what: &'static str,
    },
}

impl Recv {
    fn header() -> Recv {
        Recv::Header {
            buf: [0; ChunkHeader::LEN],
            have: 0,
            len: MAGIC_LEN,
        }
    }
}

/// The client's side of the transmission phase, without I/O: requests are encoded into a byte
/// buffer the caller sends, and the server's bytes, fed in any split, come out as [`Completion`]s.
///
/// Many requests may be in flight, each identified by its cookie. Structured replies are
/// reassembled whatever the order of their chunks; a read completes only when its chunks covered
/// it exactly once (an overlap, a repeat or a chunk outside the read is a protocol error, a gap
/// fails that read). A protocol error breaks the connection: where the next reply starts is lost,
/// so every later [`received`](Self::received) or [`read_from`](Self::read_from) fails with it.
///
/// ```
/// use osm_nbd::{ClientTransmission, Codec, Export, Reply, Session, SimpleReply, TransmissionFlags};
///
/// let export = Export {
///     name: "disk".into(),
///     description: String::new(),
///     size: 4096,
///     flags: TransmissionFlags::READ_ONLY,
///     block_size: None,
/// };
/// let session =
///     Session { export, structured_replies: false, base_allocation: None, upgraded: false };
/// let mut conn = ClientTransmission::new(session);
/// let mut out = Vec::new();
/// let cookie = conn.read(0, vec![0; 4], &mut out)?;
/// assert_eq!(out.len(), 28, "one request header to send");
///
/// let mut reply = SimpleReply { error: None, cookie }.to_bytes();
/// reply.extend_from_slice(b"data");
/// conn.received(&reply[..7])?;
/// assert!(conn.next_completion().is_none(), "half a reply completes nothing");
/// conn.received(&reply[7..])?;
/// let done = conn.next_completion().expect("the whole reply arrived");
/// assert!(matches!(done.result?, Reply::Read { buf, .. } if buf == b"data"));
/// # Ok::<(), osm_nbd::Error>(())
/// ```
#[derive(Debug)]
pub struct ClientTransmission {
    session: Session,
    next_cookie: u64,
    pending: HashMap<u64, Pending>,
    recv: Recv,
    done: VecDeque<Completion>,
    disconnected: bool,
    failed: Option<String>,
}

impl ClientTransmission {
    /// The transmission phase of a finished handshake's session.
    pub fn new(session: Session) -> ClientTransmission {
        ClientTransmission {
            session,
            next_cookie: 1,
            pending: HashMap::new(),
            recv: Recv::header(),
            done: VecDeque::new(),
            disconnected: false,
            failed: None,
        }
    }

    /// What was negotiated.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// How many requests were submitted whose completion was not yet taken.
    pub fn in_flight(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    /// Appends a read of `buf.len()` bytes at `offset` to `out`; the buffer comes back filled in
    /// the completion.
    pub fn read(&mut self, offset: u64, buf: Vec<u8>, out: &mut Vec<u8>) -> Result<u64> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        self.submit(Command::Read, offset, len, buf, out)
    }

    /// Appends the header of a write of `length` bytes at `offset` to `out`; the caller sends the
    /// payload right after it.
    pub fn write(&mut self, offset: u64, length: u32, out: &mut Vec<u8>) -> Result<u64> {
        self.submit(Command::Write, offset, length, Vec::new(), out)
    }

    /// Appends a request to write `length` zero bytes at `offset` to `out`.
    pub fn write_zeroes(&mut self, offset: u64, length: u32, out: &mut Vec<u8>) -> Result<u64> {
        self.submit(Command::WriteZeroes, offset, length, Vec::new(), out)
    }

    /// Appends a flush to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<u64> {
        self.submit(Command::Flush, 0, 0, Vec::new(), out)
    }

    /// Appends a `base:allocation` status query of `length` bytes at `offset` to `out`; the server
    /// may answer for less (or, in the last extent, more).
    pub fn block_status(&mut self, offset: u64, length: u32, out: &mut Vec<u8>) -> Result<u64> {
        if self.session.base_allocation.is_none() {
            return Err(Error::Protocol("base:allocation was not negotiated".into()));
        }
        self.submit(Command::BlockStatus, offset, length, Vec::new(), out)
    }

    /// Appends `NBD_CMD_DISC` to `out`; no request may follow it, and it gets no reply.
    pub fn disconnect(&mut self, out: &mut Vec<u8>) -> Result<u64> {
        self.submit(Command::Disc, 0, 0, Vec::new(), out)
    }

    fn submit(
        &mut self,
        command: Command,
        offset: u64,
        length: u32,
        buf: Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        if self.disconnected {
            return Err(Error::Protocol(format!(
                "{command:?} after NBD_CMD_DISC was sent"
            )));
        }
        let size = self.session.export.size;
        let fits = offset
            .checked_add(length.into())
            .is_some_and(|end| end <= size);
        if !fits && !matches!(command, Command::Flush | Command::Disc) {
            return Err(Error::Protocol(format!(
                "{command:?} of {length} bytes at {offset} is beyond the export's size {size}"
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
        Request {
            flags: CmdFlags::default(),
            command,
            cookie,
            offset,
            length,
        }
        .encode(out);
        if command == Command::Disc {
            self.disconnected = true;
        } else {
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

    /// Feeds bytes received from the server; any amount, split anywhere.
    pub fn received(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_failed()?;
        let r = self.feed(bytes);
        self.note(r)
    }

    /// Reads once from `r`, placing read data straight into the read's buffer, and decodes what
    /// arrived; returns how many bytes were read (0: the server closed the connection). An I/O
    /// error consumes nothing, so after a timeout the call can be made again.
    pub fn read_from(&mut self, r: &mut dyn Read) -> Result<usize> {
        self.check_failed()?;
        match self.fill_from(r) {
            // The reader failed before anything was decoded: the state is intact, a retry resumes.
            Err(e @ Error::Io(_)) => Err(e),
            other => self.note(other),
        }
    }

    /// The next finished request, in the order the replies completed.
    pub fn next_completion(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    /// What the next bytes from the server are for, to say where a connection broke off.
    pub fn awaiting(&self) -> &'static str {
        match &self.recv {
            Recv::Header { have: 0, .. } => "a reply",
            Recv::Header { .. } => "a reply header",
            Recv::Payload { what, .. } | Recv::Data { what, .. } => what,
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(Error::Protocol(format!(
                "the connection broke earlier: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Remembers a decoding error: the stream's position in the protocol is lost with it.
    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn pending_mut(&mut self, cookie: u64) -> Result<&mut Pending> {
        self.pending
            .get_mut(&cookie)
            .ok_or_else(|| Error::Protocol(format!("reply for unknown cookie {cookie}")))
    }

    /// A whole segment (header, payload or data) arrived.
    fn on_segment(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.recv, Recv::header()) {
            Recv::Header {
                buf,
                len: MAGIC_LEN,
                ..
            } => {
                let len = ReplyHeader::len_for_magic([buf[0], buf[1], buf[2], buf[3]])?;
                self.recv = Recv::Header {
                    buf,
                    have: MAGIC_LEN,
                    len,
                };
                Ok(())
            }
            Recv::Header { buf, len, .. } => {
                match ReplyHeader::read(&mut Reader::new(&buf[..len]))? {
                    ReplyHeader::Simple(s) => self.on_simple(s),
                    ReplyHeader::Chunk(c) => self.on_chunk(c),
                }
            }
            Recv::Payload { chunk, buf, .. } => self.on_payload(chunk, &buf),
            Recv::Data {
                cookie, done, buf, ..
            } => {
                self.pending_mut(cookie)?.buf = buf;
                if done {
                    self.complete(cookie);
                }
                Ok(())
            }
        }
    }

    fn on_simple(&mut self, s: SimpleReply) -> Result<()> {
        let p = self.pending.get_mut(&s.cookie).ok_or_else(|| {
            Error::Protocol(format!("simple reply for unknown cookie {}", s.cookie))
        })?;
        match s.error {
            // No data follows an error, not even for a read.
            Some(code) => p.fail(code, String::new()),
            None if p.command == Command::Read => {
                p.covered.insert(p.range())?;
                if !p.buf.is_empty() {
                    let buf = std::mem::take(&mut p.buf);
                    let end = buf.len();
                    self.recv = Recv::Data {
                        cookie: s.cookie,
                        done: true,
                        buf,
                        at: 0,
                        end,
                        what: "read data",
                    };
                    return Ok(());
                }
            }
            None => {}
        }
        self.complete(s.cookie);
        Ok(())
    }

    fn on_chunk(&mut self, c: ChunkHeader) -> Result<()> {
        if c.length > MAX_CHUNK {
            return Err(Error::TooLarge {
                what: "reply chunk",
                len: c.length.into(),
                max: MAX_CHUNK.into(),
            });
        }
        let p = self.pending.get(&c.cookie).ok_or_else(|| {
            Error::Protocol(format!("reply chunk for unknown cookie {}", c.cookie))
        })?;
        let read = p.command == Command::Read;
        let (len, what) = match c.kind {
            ReplyType::OffsetData if read && c.length >= 8 => (8, "data chunk offset"),
            ReplyType::OffsetHole if read && c.length == 12 => (12, "hole chunk"),
            ReplyType::BlockStatus if p.command == Command::BlockStatus => {
                (c.length, "block status chunk")
            }
            ReplyType::Error | ReplyType::ErrorOffset => (c.length, "error chunk"),
            ReplyType::None if c.length == 0 && c.flags.contains(ReplyFlags::DONE) => (0, ""),
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected chunk {other:?} of {} bytes for {:?}",
                    c.length, p.command
                )));
            }
        };
        if len == 0 {
            // Nothing to wait for: an empty payload is whole already (and `want` is never empty).
            return self.on_payload(c, &[]);
        }
        self.recv = Recv::Payload {
            chunk: c,
            buf: vec![0; len as usize],
            have: 0,
            what,
        };
        Ok(())
    }

    fn on_payload(&mut self, c: ChunkHeader, payload: &[u8]) -> Result<()> {
        let context = self.session.base_allocation;
        let done = c.flags.contains(ReplyFlags::DONE);
        let p = self.pending_mut(c.cookie)?;
        match c.kind {
            ReplyType::OffsetData => {
                let off = Reader::new(payload).u64("data chunk.offset")?;
                let r = p.inside(off, u64::from(c.length - 8), "data chunk")?;
                p.covered.insert(r.clone())?;
                if !r.is_empty() {
                    self.recv = Recv::Data {
                        cookie: c.cookie,
                        done,
                        at: (r.start - p.offset) as usize,
                        end: (r.end - p.offset) as usize,
                        buf: std::mem::take(&mut p.buf),
                        what: "data chunk",
                    };
                    return Ok(());
                }
            }
            ReplyType::OffsetHole => {
                let h = OffsetHole::from_bytes(payload)?;
                let r = p.inside(h.offset, h.length.into(), "hole chunk")?;
                p.covered.insert(r.clone())?;
                let at = (r.start - p.offset) as usize;
                let end = (r.end - p.offset) as usize;
                p.buf[at..end].fill(0);
                p.holes.push(r);
            }
            ReplyType::BlockStatus => {
                let bs = BlockStatus::from_bytes(payload)?;
                // Extents of other contexts are not asked for; a server may still send them.
                if Some(bs.context) == context {
                    let mut at = p.offset;
                    for d in bs.descriptors {
                        if d.length == 0 {
                            return Err(Error::Protocol(
                                "block status descriptor of length 0".into(),
                            ));
                        }
                        let length = u64::from(d.length);
                        p.extents.push(Extent {
                            offset: at,
                            length,
                            flags: d.flags,
                        });
                        at = at.checked_add(length).ok_or_else(|| {
                            Error::Protocol("block status extents run past 2^64".into())
                        })?;
                    }
                }
            }
            ReplyType::Error | ReplyType::ErrorOffset => {
                let e = ErrorChunk::decode(c.kind, payload)?;
                p.fail(e.code, e.message);
            }
            // NBD_REPLY_TYPE_NONE, the only other kind `on_chunk` lets through, carries nothing.
            _ => {}
        }
        if done {
            self.complete(c.cookie);
        }
        Ok(())
    }

    fn complete(&mut self, cookie: u64) {
        if let Some(p) = self.pending.remove(&cookie) {
            self.done.push_back(Completion {
                cookie,
                result: p.finish(),
            });
        }
    }
}

impl Feed for ClientTransmission {
    fn want(&mut self) -> &mut [u8] {
        match &mut self.recv {
            Recv::Header { buf, have, len } => &mut buf[*have..*len],
            Recv::Payload { buf, have, .. } => &mut buf[*have..],
            Recv::Data { buf, at, end, .. } => &mut buf[*at..*end],
        }
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        let whole = match &mut self.recv {
            Recv::Header { have, len, .. } => {
                *have += n;
                *have == *len
            }
            Recv::Payload { buf, have, .. } => {
                *have += n;
                *have == buf.len()
            }
            Recv::Data { at, end, .. } => {
                *at += n;
                *at == *end
            }
        };
        if whole {
            self.on_segment()
        } else {
            Ok(())
        }
    }
}
