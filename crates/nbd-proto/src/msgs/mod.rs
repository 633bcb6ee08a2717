//! Wire messages, each with a [`Codec`](crate::codec::Codec) implementation.
//!
//! [`handshake`] holds those of the option haggling, [`transmission`] the requests, reply headers
//! and structured chunk payloads; the magic numbers and limits both phases check are here.

mod handshake;
mod transmission;

use crate::codec::Reader;
use crate::error::{Error, Result};

pub use handshake::{
    BlockSize, ClientGreeting, ExportName, ExportNameReply, ExportRequest, Info, MetaContext,
    MetaContextRequest, OptionHeader, OptionReply, OptionRequest, ServerEntry, ServerGreeting,
};
pub use transmission::{
    BlockStatus, ChunkHeader, Descriptor, ErrorChunk, OffsetHole, ReplyHeader, Request, SimpleReply,
};

/// `NBDMAGIC`, the first 8 bytes a server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle greeting and the prefix of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The prefix of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// The prefix of every request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// The prefix of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// The prefix of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
/// The largest read or write payload this implementation sends or accepts (32 MiB).
pub const MAX_PAYLOAD: u32 = 32 << 20;
/// The largest option payload a server accepts; longer ones get `NBD_REP_ERR_TOO_BIG`.
pub const MAX_OPTION_DATA: u32 = 64 << 10;
/// The largest option reply payload a client accepts.
pub const MAX_OPTION_REPLY_DATA: u32 = 1 << 20;
/// The name of the allocation metadata context.
pub const BASE_ALLOCATION: &str = "base:allocation";

fn magic64(r: &mut Reader<'_>, want: u64, what: &'static str) -> Result<()> {
    let got = r.u64(what)?;
    if got != want {
        return Err(Error::BadMagic { what, got });
    }
    Ok(())
}

fn magic32(r: &mut Reader<'_>, want: u32, what: &'static str) -> Result<()> {
    let got = r.u32(what)?;
    if got != want {
        return Err(Error::BadMagic {
            what,
            got: got.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::types::{CmdFlags, Command, Opt};

    pub(super) fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = v.to_bytes();
        assert_eq!(T::from_bytes(&bytes).unwrap(), v);
        // Every strict prefix must fail as missing data, never panic or succeed.
        for cut in 0..bytes.len() {
            if let Ok(short) = T::from_bytes(&bytes[..cut]) {
                // Types ending in a "rest of payload" string accept shorter input by design.
                assert_ne!(short, v, "prefix of {cut} bytes decoded to the same value");
            }
        }
    }

    #[test]
    fn decode_errors_name_the_field() {
        let mut b = Request {
            flags: CmdFlags::default(),
            command: Command::Read,
            cookie: 1,
            offset: 0,
            length: 1,
        }
        .to_bytes();
        b[0] ^= 1;
        assert!(matches!(
            Request::from_bytes(&b),
            Err(Error::BadMagic {
                what: "request.magic",
                ..
            })
        ));
        assert!(matches!(
            Request::from_bytes(&b[..20]),
            Err(Error::BadMagic { .. })
        ));
        b[0] ^= 1;
        assert!(matches!(
            Request::from_bytes(&b[..20]),
            Err(Error::MissingData("request.offset"))
        ));
        let mut big = OptionHeader {
            opt: Opt::Go,
            length: MAX_OPTION_DATA + 1,
        }
        .to_bytes();
        big.resize(big.len() + MAX_OPTION_DATA as usize + 1, 0);
        assert!(matches!(
            OptionRequest::from_bytes(&big),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            ReplyHeader::len_for_magic([0, 0, 0, 0]),
            Err(Error::BadMagic {
                what: "reply.magic",
                ..
            })
        ));
    }
}
