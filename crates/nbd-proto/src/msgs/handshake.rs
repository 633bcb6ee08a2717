//! The messages of the handshake phase: greetings, options, their payloads and replies.

use super::{
    magic64, IHAVEOPT, MAX_OPTION_DATA, MAX_OPTION_REPLY_DATA, NBD_MAGIC, OPT_REPLY_MAGIC,
};
use crate::codec::{put_string32, put_u16, put_u32, put_u64, Codec, Reader};
use crate::error::{Error, Result};
use crate::types::{ClientFlags, HandshakeFlags, InfoType, Opt, OptReplyType, TransmissionFlags};

/// The server's first message: `NBDMAGIC`, `IHAVEOPT`, handshake flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerGreeting {
    /// The handshake flags.
    pub flags: HandshakeFlags,
}

impl ServerGreeting {
    /// Its size on the wire.
    pub const LEN: usize = 18;
}

impl Codec for ServerGreeting {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, NBD_MAGIC);
        put_u64(out, IHAVEOPT);
        put_u16(out, self.flags.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic64(r, NBD_MAGIC, "greeting.nbdmagic")?;
        let second = r.u64("greeting.ihaveopt")?;
        if second != IHAVEOPT {
            // 0x00420281861253 is the oldstyle magic: name it, since it is the likely cause.
            let what = if second == 0x0000_4202_8186_1253 {
                "greeting (oldstyle server, not supported)"
            } else {
                "greeting.ihaveopt"
            };
            return Err(Error::BadMagic { what, got: second });
        }
        Ok(ServerGreeting {
            flags: HandshakeFlags(r.u16("greeting.flags")?),
        })
    }
}

/// The client's answer to the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGreeting {
    /// The client flags.
    pub flags: ClientFlags,
}

impl ClientGreeting {
    /// Its size on the wire.
    pub const LEN: usize = 4;
}

impl Codec for ClientGreeting {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.flags.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ClientGreeting {
            flags: ClientFlags(r.u32("client flags")?),
        })
    }
}

/// The fixed part of an option: magic, option, payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option.
    pub opt: Opt,
    /// The length of the payload that follows.
    pub length: u32,
}

impl OptionHeader {
    /// Its size on the wire.
    pub const LEN: usize = 16;
}

impl Codec for OptionHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, IHAVEOPT);
        put_u32(out, self.opt.into());
        put_u32(out, self.length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic64(r, IHAVEOPT, "option.magic")?;
        Ok(OptionHeader {
            opt: r.u32("option.opt")?.into(),
            length: r.u32("option.length")?,
        })
    }
}

/// A whole option: header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRequest {
    /// The option.
    pub opt: Opt,
    /// Its raw payload.
    pub data: Vec<u8>,
}

impl OptionRequest {
    /// An option whose payload is encoded from `payload`.
    pub fn new(opt: Opt, payload: &impl Codec) -> Self {
        OptionRequest {
            opt,
            data: payload.to_bytes(),
        }
    }
}

impl Codec for OptionRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        OptionHeader {
            opt: self.opt,
            length: self.data.len() as u32,
        }
        .encode(out);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let h = OptionHeader::read(r)?;
        if h.length > MAX_OPTION_DATA {
            return Err(Error::TooLarge {
                what: "option payload",
                len: h.length.into(),
                max: MAX_OPTION_DATA.into(),
            });
        }
        Ok(OptionRequest {
            opt: h.opt,
            data: r.take(h.length as usize, "option.data")?.to_vec(),
        })
    }
}

/// The payload of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// The export name ("" is the default export).
    pub name: String,
    /// The information items the client asks for.
    pub info: Vec<InfoType>,
}

impl Codec for ExportRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        put_string32(out, &self.name);
        put_u16(out, self.info.len() as u16);
        for i in &self.info {
            put_u16(out, (*i).into());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let name = r.string32("go.name")?;
        let n = r.u16("go.info_count")?;
        let info = (0..n)
            .map(|_| r.u16("go.info").map(InfoType::from))
            .collect::<Result<_>>()?;
        Ok(ExportRequest { name, info })
    }
}

/// The payload of `NBD_OPT_SET_META_CONTEXT` and `NBD_OPT_LIST_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaContextRequest {
    /// The export the contexts are for.
    pub export: String,
    /// The context names or queries (such as `base:`).
    pub queries: Vec<String>,
}

impl Codec for MetaContextRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        put_string32(out, &self.export);
        put_u32(out, self.queries.len() as u32);
        for q in &self.queries {
            put_string32(out, q);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let export = r.string32("meta.export")?;
        let n = r.u32("meta.query_count")?;
        let mut queries = Vec::new();
        for _ in 0..n {
            queries.push(r.string32("meta.query")?);
        }
        Ok(MetaContextRequest { export, queries })
    }
}

/// A raw name as the payload of `NBD_OPT_EXPORT_NAME` (no length prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportName(pub String);

impl Codec for ExportName {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.left();
        Ok(ExportName(r.string(n, "export name")?))
    }
}

/// A server's reply to an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionReply {
    /// The option being answered.
    pub opt: Opt,
    /// What kind of reply this is.
    pub reply: OptReplyType,
    /// The raw payload.
    pub data: Vec<u8>,
}

impl OptionReply {
    /// The size of the fixed header.
    pub const HEADER_LEN: usize = 20;

    /// A reply whose payload is encoded from `payload`.
    pub fn new(opt: Opt, reply: OptReplyType, payload: &impl Codec) -> Self {
        OptionReply {
            opt,
            reply,
            data: payload.to_bytes(),
        }
    }

    /// An error reply carrying a message for humans.
    pub fn error(opt: Opt, reply: OptReplyType, message: &str) -> Self {
        OptionReply {
            opt,
            reply,
            data: message.as_bytes().to_vec(),
        }
    }

    /// The payload length announced by a complete header, or `None` if `header` is too short.
    pub fn peek_length(header: &[u8]) -> Option<u32> {
        let b = header.get(16..20)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Codec for OptionReply {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, OPT_REPLY_MAGIC);
        put_u32(out, self.opt.into());
        put_u32(out, self.reply.into());
        put_u32(out, self.data.len() as u32);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        magic64(r, OPT_REPLY_MAGIC, "option reply.magic")?;
        let opt = r.u32("option reply.opt")?.into();
        let reply = r.u32("option reply.type")?.into();
        let len = r.u32("option reply.length")?;
        if len > MAX_OPTION_REPLY_DATA {
            return Err(Error::TooLarge {
                what: "option reply payload",
                len: len.into(),
                max: MAX_OPTION_REPLY_DATA.into(),
            });
        }
        let data = r.take(len as usize, "option reply.data")?.to_vec();
        Ok(OptionReply { opt, reply, data })
    }
}

/// Minimum, preferred and maximum block sizes of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSize {
    /// Requests should be aligned to this.
    pub min: u32,
    /// Requests of this size and alignment are most efficient.
    pub preferred: u32,
    /// The largest request payload accepted.
    pub max: u32,
}

/// One item of an `NBD_REP_INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    /// `NBD_INFO_EXPORT`.
    Export {
        /// The export's size in bytes.
        size: u64,
        /// Its transmission flags.
        flags: TransmissionFlags,
    },
    /// `NBD_INFO_NAME`.
    Name(String),
    /// `NBD_INFO_DESCRIPTION`.
    Description(String),
    /// `NBD_INFO_BLOCK_SIZE`.
    BlockSize(BlockSize),
    /// An item of a type this implementation does not know.
    Unknown {
        /// Its type.
        kind: u16,
        /// Its raw payload.
        data: Vec<u8>,
    },
}

impl Codec for Info {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Info::Export { size, flags } => {
                put_u16(out, InfoType::Export.into());
                put_u64(out, *size);
                put_u16(out, flags.0);
            }
            Info::Name(s) | Info::Description(s) => {
                let t = if matches!(self, Info::Name(_)) {
                    InfoType::Name
                } else {
                    InfoType::Description
                };
                put_u16(out, t.into());
                out.extend_from_slice(s.as_bytes());
            }
            Info::BlockSize(b) => {
                put_u16(out, InfoType::BlockSize.into());
                put_u32(out, b.min);
                put_u32(out, b.preferred);
                put_u32(out, b.max);
            }
            Info::Unknown { kind, data } => {
                put_u16(out, *kind);
                out.extend_from_slice(data);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(match InfoType::from(r.u16("info.type")?) {
            InfoType::Export => Info::Export {
                size: r.u64("info.export.size")?,
                flags: TransmissionFlags(r.u16("info.export.flags")?),
            },
            InfoType::Name => {
                let n = r.left();
                Info::Name(r.string(n, "info.name")?)
            }
            InfoType::Description => {
                let n = r.left();
                Info::Description(r.string(n, "info.description")?)
            }
            InfoType::BlockSize => Info::BlockSize(BlockSize {
                min: r.u32("info.block_size.min")?,
                preferred: r.u32("info.block_size.preferred")?,
                max: r.u32("info.block_size.max")?,
            }),
            InfoType::Unknown(kind) => Info::Unknown {
                kind,
                data: r.rest().to_vec(),
            },
        })
    }
}

/// The payload of `NBD_REP_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaContext {
    /// The id the server will use in block status replies.
    pub id: u32,
    /// The context name.
    pub name: String,
}

impl Codec for MetaContext {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.id);
        out.extend_from_slice(self.name.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let id = r.u32("meta context.id")?;
        let n = r.left();
        Ok(MetaContext {
            id,
            name: r.string(n, "meta context.name")?,
        })
    }
}

/// The payload of `NBD_REP_SERVER`: one export in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// The export name.
    pub name: String,
    /// Its description (may be empty).
    pub description: String,
}

impl Codec for ServerEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        put_string32(out, &self.name);
        out.extend_from_slice(self.description.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let name = r.string32("server.name")?;
        let n = r.left();
        Ok(ServerEntry {
            name,
            description: r.string(n, "server.description")?,
        })
    }
}

/// The server's answer to `NBD_OPT_EXPORT_NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportNameReply {
    /// The export's size.
    pub size: u64,
    /// Its transmission flags.
    pub flags: TransmissionFlags,
    /// Whether the 124 zero bytes follow (unless both sides agreed on `NO_ZEROES`).
    pub zeroes: bool,
}

impl ExportNameReply {
    /// The length on the wire, which depends on whether zero padding is sent.
    pub fn len(zeroes: bool) -> usize {
        if zeroes {
            134
        } else {
            10
        }
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.size);
        put_u16(out, self.flags.0);
        if self.zeroes {
            out.extend_from_slice(&[0u8; 124]);
        }
    }

    /// Reads the reply; `zeroes` says whether padding is expected.
    pub fn read(r: &mut Reader<'_>, zeroes: bool) -> Result<Self> {
        let size = r.u64("export name reply.size")?;
        let flags = TransmissionFlags(r.u16("export name reply.flags")?);
        if zeroes {
            r.take(124, "export name reply.zeroes")?;
        }
        Ok(ExportNameReply {
            size,
            flags,
            zeroes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::tests::round_trip;
    use crate::msgs::BASE_ALLOCATION;

    #[test]
    fn handshake_messages_round_trip() {
        round_trip(ServerGreeting {
            flags: HandshakeFlags::FIXED_NEWSTYLE | HandshakeFlags::NO_ZEROES,
        });
        round_trip(ClientGreeting {
            flags: ClientFlags::FIXED_NEWSTYLE,
        });
        round_trip(OptionHeader {
            opt: Opt::Go,
            length: 12,
        });
        round_trip(OptionRequest {
            opt: Opt::Unknown(77),
            data: vec![1, 2, 3],
        });
        round_trip(ExportRequest {
            name: "disk".into(),
            info: vec![InfoType::BlockSize, InfoType::Unknown(9)],
        });
        round_trip(MetaContextRequest {
            export: "".into(),
            queries: vec!["base:allocation".into(), "qemu:".into()],
        });
        round_trip(ExportName("vda".into()));
        round_trip(OptionReply::error(
            Opt::Go,
            OptReplyType::ErrUnknown,
            "no such export",
        ));
        round_trip(OptionReply::new(
            Opt::Go,
            OptReplyType::Info,
            &Info::BlockSize(BlockSize {
                min: 1,
                preferred: 4096,
                max: 1 << 25,
            }),
        ));
        round_trip(Info::Export {
            size: 1 << 40,
            flags: TransmissionFlags::HAS_FLAGS | TransmissionFlags::CAN_MULTI_CONN,
        });
        round_trip(Info::Name("x".into()));
        round_trip(Info::Description("a disk".into()));
        round_trip(Info::Unknown {
            kind: 42,
            data: vec![9, 9],
        });
        round_trip(MetaContext {
            id: 1,
            name: BASE_ALLOCATION.into(),
        });
        round_trip(ServerEntry {
            name: "a".into(),
            description: "b".into(),
        });
    }

    #[test]
    fn export_name_reply_with_and_without_zeroes() {
        for zeroes in [true, false] {
            let v = ExportNameReply {
                size: 12345,
                flags: TransmissionFlags::READ_ONLY,
                zeroes,
            };
            let mut b = Vec::new();
            v.encode(&mut b);
            assert_eq!(b.len(), ExportNameReply::len(zeroes));
            let mut r = Reader::new(&b);
            assert_eq!(ExportNameReply::read(&mut r, zeroes).unwrap(), v);
            r.expect_empty("reply").unwrap();
        }
    }
}
