//! The messages of the transmission phase: requests, reply headers and structured chunk payloads.

use super::{magic32, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC};
use crate::codec::{put_u16, put_u32, put_u64, Codec, Reader};
use crate::error::{Error, Result};
use crate::types::{AllocFlags, CmdFlags, Command, ErrorCode, ReplyFlags, ReplyType};

/// A transmission-phase request (the 28-byte compact form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags.
    pub flags: CmdFlags,
    /// The command.
    pub command: Command,
    /// An opaque value the reply echoes (the "handle").
    pub cookie: u64,
    /// The offset in the export.
    pub offset: u64,
    /// The length of the range (and of the payload for writes).
    pub length: u32,
}

impl Request {
    /// Its size on the wire.
    pub const LEN: usize = 28;

    /// The end of the range, or `None` if it overflows.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length.into())
    }
}

impl Codec for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, REQUEST_MAGIC);
        put_u16(out, self.flags.0);
        put_u16(out, self.command.into());
        put_u64(out, self.cookie);
        put_u64(out, self.offset);
        put_u32(out, self.length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic32(r, REQUEST_MAGIC, "request.magic")?;
        Ok(Request {
            flags: CmdFlags(r.u16("request.flags")?),
            command: r.u16("request.type")?.into(),
            cookie: r.u64("request.cookie")?,
            offset: r.u64("request.offset")?,
            length: r.u32("request.length")?,
        })
    }
}

/// A simple reply: an error code (0 for success) and the cookie; read data follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    /// `None` on success.
    pub error: Option<ErrorCode>,
    /// The request's cookie.
    pub cookie: u64,
}

impl SimpleReply {
    /// Its size on the wire.
    pub const LEN: usize = 16;
}

impl Codec for SimpleReply {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, SIMPLE_REPLY_MAGIC);
        put_u32(out, self.error.map_or(0, u32::from));
        put_u64(out, self.cookie);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic32(r, SIMPLE_REPLY_MAGIC, "simple reply.magic")?;
        let e = r.u32("simple reply.error")?;
        Ok(SimpleReply {
            error: (e != 0).then(|| e.into()),
            cookie: r.u64("simple reply.cookie")?,
        })
    }
}

/// The header of one structured reply chunk; `length` payload bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// `DONE` on the last chunk of a reply.
    pub flags: ReplyFlags,
    /// The chunk type.
    pub kind: ReplyType,
    /// The request's cookie.
    pub cookie: u64,
    /// The payload length.
    pub length: u32,
}

impl ChunkHeader {
    /// Its size on the wire.
    pub const LEN: usize = 20;
}

impl Codec for ChunkHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, STRUCTURED_REPLY_MAGIC);
        put_u16(out, self.flags.0);
        put_u16(out, self.kind.into());
        put_u64(out, self.cookie);
        put_u32(out, self.length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic32(r, STRUCTURED_REPLY_MAGIC, "chunk.magic")?;
        Ok(ChunkHeader {
            flags: ReplyFlags(r.u16("chunk.flags")?),
            kind: r.u16("chunk.type")?.into(),
            cookie: r.u64("chunk.cookie")?,
            length: r.u32("chunk.length")?,
        })
    }
}

/// Either kind of reply header, told apart by the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyHeader {
    /// A simple reply.
    Simple(SimpleReply),
    /// A structured reply chunk.
    Chunk(ChunkHeader),
}

impl ReplyHeader {
    /// How many bytes a header that starts with `magic` has in total.
    pub fn len_for_magic(magic: [u8; 4]) -> Result<usize> {
        match u32::from_be_bytes(magic) {
            SIMPLE_REPLY_MAGIC => Ok(SimpleReply::LEN),
            STRUCTURED_REPLY_MAGIC => Ok(ChunkHeader::LEN),
            got => Err(Error::BadMagic {
                what: "reply.magic",
                got: got.into(),
            }),
        }
    }
}

impl Codec for ReplyHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ReplyHeader::Simple(s) => s.encode(out),
            ReplyHeader::Chunk(c) => c.encode(out),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let m = r.peek(4, "reply.magic")?;
        Ok(match u32::from_be_bytes([m[0], m[1], m[2], m[3]]) {
            STRUCTURED_REPLY_MAGIC => ReplyHeader::Chunk(ChunkHeader::read(r)?),
            _ => ReplyHeader::Simple(SimpleReply::read(r)?),
        })
    }
}

/// The payload of `NBD_REPLY_TYPE_OFFSET_HOLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetHole {
    /// Where the zeros start.
    pub offset: u64,
    /// How many bytes of zeros.
    pub length: u32,
}

impl Codec for OffsetHole {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.offset);
        put_u32(out, self.length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetHole {
            offset: r.u64("hole.offset")?,
            length: r.u32("hole.length")?,
        })
    }
}

/// One block status descriptor: a length and the status flags of that many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The extent's length.
    pub length: u32,
    /// Its flags in the context (for `base:allocation`, [`AllocFlags`]).
    pub flags: AllocFlags,
}

/// The payload of `NBD_REPLY_TYPE_BLOCK_STATUS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStatus {
    /// The metadata context id.
    pub context: u32,
    /// Consecutive extents from the request's offset.
    pub descriptors: Vec<Descriptor>,
}

impl Codec for BlockStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.context);
        for d in &self.descriptors {
            put_u32(out, d.length);
            put_u32(out, d.flags.0);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let context = r.u32("block status.context")?;
        if !r.left().is_multiple_of(8) {
            return Err(Error::TrailingData {
                what: "block status descriptors",
                len: r.left() % 8,
            });
        }
        let mut descriptors = Vec::with_capacity(r.left() / 8);
        while r.left() > 0 {
            descriptors.push(Descriptor {
                length: r.u32("block status.length")?,
                flags: AllocFlags(r.u32("block status.flags")?),
            });
        }
        Ok(BlockStatus {
            context,
            descriptors,
        })
    }
}

/// The payload of `NBD_REPLY_TYPE_ERROR` and `NBD_REPLY_TYPE_ERROR_OFFSET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorChunk {
    /// The error code.
    pub code: ErrorCode,
    /// A message for humans.
    pub message: String,
    /// The offset the error applies to (only in `ERROR_OFFSET`).
    pub offset: Option<u64>,
}

impl ErrorChunk {
    /// The chunk type this payload goes with.
    pub fn kind(&self) -> ReplyType {
        if self.offset.is_some() {
            ReplyType::ErrorOffset
        } else {
            ReplyType::Error
        }
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.code.into());
        put_u16(out, self.message.len() as u16);
        out.extend_from_slice(self.message.as_bytes());
        if let Some(o) = self.offset {
            put_u64(out, o);
        }
    }

    /// Decodes a payload of chunk type `kind`, which must be one of the two error types.
    pub fn decode(kind: ReplyType, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let code = r.u32("error.code")?.into();
        let len = r.u16("error.message_length")?;
        let message = String::from_utf8_lossy(r.take(len.into(), "error.message")?).into_owned();
        let offset = match kind {
            ReplyType::ErrorOffset => Some(r.u64("error.offset")?),
            _ => None,
        };
        r.expect_empty("error chunk")?;
        Ok(ErrorChunk {
            code,
            message,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::tests::round_trip;

    #[test]
    fn transmission_messages_round_trip() {
        round_trip(Request {
            flags: CmdFlags::DF | CmdFlags::FUA,
            command: Command::Read,
            cookie: 7,
            offset: 1 << 33,
            length: 4096,
        });
        round_trip(Request {
            flags: CmdFlags::default(),
            command: Command::Unknown(99),
            cookie: u64::MAX,
            offset: 0,
            length: 0,
        });
        round_trip(SimpleReply {
            error: None,
            cookie: 3,
        });
        round_trip(SimpleReply {
            error: Some(ErrorCode::Unknown(1234)),
            cookie: 3,
        });
        round_trip(ChunkHeader {
            flags: ReplyFlags::DONE,
            kind: ReplyType::OffsetHole,
            cookie: 9,
            length: 12,
        });
        round_trip(ReplyHeader::Simple(SimpleReply {
            error: Some(ErrorCode::Io),
            cookie: 1,
        }));
        round_trip(ReplyHeader::Chunk(ChunkHeader {
            flags: ReplyFlags::default(),
            kind: ReplyType::Unknown(3),
            cookie: 2,
            length: 0,
        }));
        round_trip(OffsetHole {
            offset: 512,
            length: 1 << 20,
        });
        round_trip(BlockStatus {
            context: 1,
            descriptors: vec![
                Descriptor {
                    length: 4096,
                    flags: AllocFlags::default(),
                },
                Descriptor {
                    length: 1 << 20,
                    flags: AllocFlags::HOLE | AllocFlags::ZERO,
                },
            ],
        });
    }

    #[test]
    fn error_chunks_round_trip() {
        for e in [
            ErrorChunk {
                code: ErrorCode::Io,
                message: "read failed".into(),
                offset: None,
            },
            ErrorChunk {
                code: ErrorCode::Inval,
                message: String::new(),
                offset: Some(4096),
            },
        ] {
            let mut b = Vec::new();
            e.encode(&mut b);
            assert_eq!(ErrorChunk::decode(e.kind(), &b).unwrap(), e);
            assert!(ErrorChunk::decode(e.kind(), &b[..b.len() - 1]).is_err());
        }
    }
}
