//! The frames two agents exchange once a connection is upgraded to the sync protocol.
//!
//! Every frame is an 8-byte header (type `u16`, flags `u16` that must be 0, payload length `u32`,
//! big-endian like NBD) and its payload. The destination (client) asks; the source (server)
//! answers each chunk of a [`Frame::Compare`] exactly once with `Same`, `Zero`, `Differs`, or
//! `Data` pieces closed by `ChunkEnd`; a `Differs` chunk is answered again, after the client's
//! [`Frame::Blocks`], with the `Data` pieces of the blocks that differ and a `ChunkEnd`.

use osm_nbd::{Codec, Error, Reader, Result};

use crate::digest::{Digest, DIGEST_LEN};

/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// The private NBD option that switches a connection from NBD to this protocol (ASCII "OSM1").
/// Servers that do not know it refuse it with `NBD_REP_ERR_UNSUP`, and the client goes on in NBD.
pub const UPGRADE_OPTION: u32 = 0x4f53_4d31;
/// The largest payload either side accepts: a 4 MiB chunk plus zstd's worst-case growth.
pub const MAX_PAYLOAD: u32 = (4 << 20) + (64 << 10);

/// How a piece of data travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes as they are.
    Raw,
    /// A zstd frame.
    Zstd,
    /// No payload: the range reads as zeros (the receiver's zeroing policy makes it so).
    Zeros,
    /// A value this version does not know.
    Unknown(u8),
}

impl Encoding {
    fn to_u8(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::Zstd => 1,
            Encoding::Zeros => 2,
            Encoding::Unknown(v) => v,
        }
    }

    fn from_u8(v: u8) -> Encoding {
        match v {
            0 => Encoding::Raw,
            1 => Encoding::Zstd,
            2 => Encoding::Zeros,
            v => Encoding::Unknown(v),
        }
    }
}

/// The fields of a `Data` frame that come before its payload. The bulk of a sync crosses in these
/// frames, so they are also built and read in place: the sender appends the (compressed) payload
/// right after room for the header ([`DataHead::start`], [`DataHead::seal`]) and the receiver
/// reads the payload straight into its own buffer ([`DataHead::decode`]), with no copy between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHead {
    /// The chunk.
    pub chunk: u64,
    /// Where in the chunk the bytes go.
    pub offset: u32,
    /// How they are encoded.
    pub encoding: Encoding,
    /// Their length once decoded.
    pub raw_len: u32,
}

impl DataHead {
    /// Bytes of the fields.
    pub const LEN: usize = 17;
    /// The frame type of `Data`.
    pub const KIND: u16 = DATA;

    fn to_bytes(self) -> [u8; DataHead::LEN] {
        let mut b = [0u8; DataHead::LEN];
        b[..8].copy_from_slice(&self.chunk.to_be_bytes());
        b[8..12].copy_from_slice(&self.offset.to_be_bytes());
        b[12] = self.encoding.to_u8();
        b[13..].copy_from_slice(&self.raw_len.to_be_bytes());
        b
    }

    /// Decodes the fields from the first [`DataHead::LEN`] bytes of a `Data` frame's payload.
    pub fn decode(b: &[u8]) -> Result<DataHead> {
        let mut r = Reader::new(b);
        DataHead::read(&mut r)
    }

    fn read(r: &mut Reader<'_>) -> Result<DataHead> {
        Ok(DataHead {
            chunk: r.u64("data.chunk")?,
            offset: r.u32("data.offset")?,
            encoding: Encoding::from_u8(r.take(1, "data.encoding")?[0]),
            raw_len: r.u32("data.raw_len")?,
        })
    }

    /// An empty `Data` frame with room for `payload` bytes: the payload is appended to it, then
    /// [`DataHead::seal`] fills in the header.
    pub fn start(payload: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(FrameHeader::LEN + DataHead::LEN + payload);
        v.resize(FrameHeader::LEN + DataHead::LEN, 0);
        v
    }

    /// Fills in the header of a frame begun with [`DataHead::start`] whose payload is complete.
    pub fn seal(&self, frame: &mut [u8]) {
        let len = (frame.len() - FrameHeader::LEN) as u32;
        frame[..2].copy_from_slice(&DATA.to_be_bytes());
        frame[2..4].copy_from_slice(&0u16.to_be_bytes());
        frame[4..8].copy_from_slice(&len.to_be_bytes());
        frame[FrameHeader::LEN..FrameHeader::LEN + DataHead::LEN].copy_from_slice(&self.to_bytes());
    }
}

/// What the client proposes right after the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's protocol version.
    pub version: u16,
    /// The digest algorithm ([`crate::ALGORITHM_ID`]).
    pub algorithm: u16,
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// Bytes per block, the unit of partial chunk updates.
    pub block_size: u32,
    /// Whether the client accepts compressed data.
    pub compression: bool,
    /// The digests' seed ([`crate::Hasher`]).
    pub seed: u64,
}

/// What the server settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The server's protocol version.
    pub version: u16,
    /// The export's size in bytes.
    pub size: u64,
    /// Bytes per chunk, as asked.
    pub chunk_size: u32,
    /// Bytes per block, as asked.
    pub block_size: u32,
    /// Whether data may arrive compressed.
    pub compression: bool,
    /// Bytes the server knows to be free (they read as zeros and are never read).
    pub free_bytes: u64,
}

/// One frame of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client: the proposal.
    Hello(Hello),
    /// Server: the settled parameters.
    Welcome(Welcome),
    /// Client: its digests of the chunks from `first` on.
    Compare {
        /// The first chunk's index.
        first: u64,
        /// One digest per chunk.
        digests: Vec<Digest>,
    },
    /// Client: the block sums of a chunk the server said `Differs`.
    Blocks {
        /// The chunk.
        chunk: u64,
        /// One sum per block ([`crate::Hasher::block_sums`]).
        sums: Vec<u64>,
    },
    /// Client: no more requests; the server ends once its answers are out.
    Bye,
    /// Server: the chunk is the same on both sides.
    Same {
        /// The chunk.
        chunk: u64,
    },
    /// Server: the chunk reads as zeros at the source.
    Zero {
        /// The chunk.
        chunk: u64,
    },
    /// Server: the chunk differs and the client holds data there; send block sums.
    Differs {
        /// The chunk.
        chunk: u64,
        /// The source's digest of it.
        digest: Digest,
    },
    /// Server: bytes of a chunk.
    Data {
        /// The chunk.
        chunk: u64,
        /// Where in the chunk they go.
        offset: u32,
        /// How they are encoded.
        encoding: Encoding,
        /// Their length once decoded.
        raw_len: u32,
        /// The encoded bytes.
        payload: Vec<u8>,
    },
    /// Server: every piece of the chunk was sent; its digest at the source.
    ChunkEnd {
        /// The chunk.
        chunk: u64,
        /// The source's digest of it.
        digest: Digest,
    },
    /// Either side: a failure that ends the connection.
    Error {
        /// What failed.
        message: String,
    },
    /// A frame type this version does not know.
    Unknown {
        /// Its type.
        kind: u16,
        /// Its payload.
        payload: Vec<u8>,
    },
}

/// The fixed part of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type.
    pub kind: u16,
    /// The payload's length.
    pub length: u32,
}

impl FrameHeader {
    /// Bytes in a header.
    pub const LEN: usize = 8;

    /// Decodes a header, refusing nonzero flags and oversized payloads.
    pub fn decode(b: &[u8; 8]) -> Result<FrameHeader> {
        let mut r = Reader::new(b);
        let kind = r.u16("frame.type")?;
        let flags = r.u16("frame.flags")?;
        let length = r.u32("frame.length")?;
        if flags != 0 {
            return Err(Error::Protocol(format!(
                "sync frame type {kind} with unknown flags {flags:#x}"
            )));
        }
        if length > MAX_PAYLOAD {
            return Err(Error::TooLarge {
                what: "sync frame",
                len: length.into(),
                max: MAX_PAYLOAD.into(),
            });
        }
        Ok(FrameHeader { kind, length })
    }
}

const HELLO: u16 = 1;
const WELCOME: u16 = 2;
const COMPARE: u16 = 3;
const BLOCKS: u16 = 4;
const BYE: u16 = 5;
const SAME: u16 = 16;
const ZERO: u16 = 17;
const DIFFERS: u16 = 18;
const DATA: u16 = 19;
const CHUNK_END: u16 = 20;
const ERROR: u16 = 31;

fn digest(r: &mut Reader<'_>, what: &'static str) -> Result<Digest> {
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(r.take(DIGEST_LEN, what)?);
    Ok(Digest(d))
}

impl Frame {
    /// The frame's type number.
    pub fn kind(&self) -> u16 {
        match self {
            Frame::Hello(_) => HELLO,
            Frame::Welcome(_) => WELCOME,
            Frame::Compare { .. } => COMPARE,
            Frame::Blocks { .. } => BLOCKS,
            Frame::Bye => BYE,
            Frame::Same { .. } => SAME,
            Frame::Zero { .. } => ZERO,
            Frame::Differs { .. } => DIFFERS,
            Frame::Data { .. } => DATA,
            Frame::ChunkEnd { .. } => CHUNK_END,
            Frame::Error { .. } => ERROR,
            Frame::Unknown { kind, .. } => *kind,
        }
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Hello(h) => {
                out.extend_from_slice(&h.version.to_be_bytes());
                out.extend_from_slice(&h.algorithm.to_be_bytes());
                out.extend_from_slice(&h.chunk_size.to_be_bytes());
                out.extend_from_slice(&h.block_size.to_be_bytes());
                out.push(u8::from(h.compression));
                out.extend_from_slice(&h.seed.to_be_bytes());
            }
            Frame::Welcome(w) => {
                out.extend_from_slice(&w.version.to_be_bytes());
                out.extend_from_slice(&w.size.to_be_bytes());
                out.extend_from_slice(&w.chunk_size.to_be_bytes());
                out.extend_from_slice(&w.block_size.to_be_bytes());
                out.push(u8::from(w.compression));
                out.extend_from_slice(&w.free_bytes.to_be_bytes());
            }
            Frame::Compare { first, digests } => {
                out.extend_from_slice(&first.to_be_bytes());
                for d in digests {
                    out.extend_from_slice(&d.0);
                }
            }
            Frame::Blocks { chunk, sums } => {
                out.extend_from_slice(&chunk.to_be_bytes());
                for s in sums {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
            Frame::Bye => {}
            Frame::Same { chunk } | Frame::Zero { chunk } => {
                out.extend_from_slice(&chunk.to_be_bytes())
            }
            Frame::Differs { chunk, digest } | Frame::ChunkEnd { chunk, digest } => {
                out.extend_from_slice(&chunk.to_be_bytes());
                out.extend_from_slice(&digest.0);
            }
            Frame::Data {
                chunk,
                offset,
                encoding,
                raw_len,
                payload,
            } => {
                let head = DataHead {
                    chunk: *chunk,
                    offset: *offset,
                    encoding: *encoding,
                    raw_len: *raw_len,
                };
                out.extend_from_slice(&head.to_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Error { message } => out.extend_from_slice(message.as_bytes()),
            Frame::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
    }

    /// Decodes the payload of a frame whose header said `kind`.
    pub fn decode(kind: u16, payload: &[u8]) -> Result<Frame> {
        let mut r = Reader::new(payload);
        let f = match kind {
            HELLO => Frame::Hello(Hello {
                version: r.u16("hello.version")?,
                algorithm: r.u16("hello.algorithm")?,
                chunk_size: r.u32("hello.chunk_size")?,
                block_size: r.u32("hello.block_size")?,
                compression: r.take(1, "hello.compression")?[0] != 0,
                seed: r.u64("hello.seed")?,
            }),
            WELCOME => Frame::Welcome(Welcome {
                version: r.u16("welcome.version")?,
                size: r.u64("welcome.size")?,
                chunk_size: r.u32("welcome.chunk_size")?,
                block_size: r.u32("welcome.block_size")?,
                compression: r.take(1, "welcome.compression")?[0] != 0,
                free_bytes: r.u64("welcome.free_bytes")?,
            }),
            COMPARE => {
                let first = r.u64("compare.first")?;
                if !r.left().is_multiple_of(DIGEST_LEN) {
                    return Err(Error::Protocol(format!(
                        "compare with {} bytes of digests",
                        r.left()
                    )));
                }
                let mut digests = Vec::with_capacity(r.left() / DIGEST_LEN);
                while r.left() > 0 {
                    digests.push(digest(&mut r, "compare.digest")?);
                }
                Frame::Compare { first, digests }
            }
            BLOCKS => {
                let chunk = r.u64("blocks.chunk")?;
                if !r.left().is_multiple_of(8) {
                    return Err(Error::Protocol(format!(
                        "blocks with {} bytes of sums",
                        r.left()
                    )));
                }
                let mut sums = Vec::with_capacity(r.left() / 8);
                while r.left() > 0 {
                    sums.push(r.u64("blocks.sum")?);
                }
                Frame::Blocks { chunk, sums }
            }
            BYE => Frame::Bye,
            SAME => Frame::Same {
                chunk: r.u64("same.chunk")?,
            },
            ZERO => Frame::Zero {
                chunk: r.u64("zero.chunk")?,
            },
            DIFFERS => Frame::Differs {
                chunk: r.u64("differs.chunk")?,
                digest: digest(&mut r, "differs.digest")?,
            },
            CHUNK_END => Frame::ChunkEnd {
                chunk: r.u64("chunk_end.chunk")?,
                digest: digest(&mut r, "chunk_end.digest")?,
            },
            DATA => {
                let h = DataHead::read(&mut r)?;
                Frame::Data {
                    chunk: h.chunk,
                    offset: h.offset,
                    encoding: h.encoding,
                    raw_len: h.raw_len,
                    payload: r.rest().to_vec(),
                }
            }
            ERROR => Frame::Error {
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            },
            kind => Frame::Unknown {
                kind,
                payload: r.rest().to_vec(),
            },
        };
        r.expect_empty("sync frame")?;
        Ok(f)
    }
}

impl Codec for Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.kind().to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        self.encode_payload(out);
        let len = (out.len() - start - FrameHeader::LEN) as u32;
        out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Frame> {
        let mut h = [0u8; FrameHeader::LEN];
        h.copy_from_slice(r.take(FrameHeader::LEN, "frame header")?);
        let h = FrameHeader::decode(&h)?;
        Frame::decode(h.kind, r.take(h.length as usize, "frame payload")?)
    }
}

/// The option data of the upgrade: the export name, as in `NBD_OPT_EXPORT_NAME`'s `u32`-prefixed
/// form, so a server finds the export before it hands the connection over.
pub fn upgrade_data(export: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + export.len());
    v.extend_from_slice(&(export.len() as u32).to_be_bytes());
    v.extend_from_slice(export.as_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello {
                version: VERSION,
                algorithm: 1,
                chunk_size: 1 << 20,
                block_size: 4096,
                compression: true,
                seed: 77,
            }),
            Frame::Welcome(Welcome {
                version: VERSION,
                size: 5 << 30,
                chunk_size: 1 << 20,
                block_size: 4096,
                compression: false,
                free_bytes: 77,
            }),
            Frame::Compare {
                first: 9,
                digests: vec![Digest([1; 16]), Digest([2; 16])],
            },
            Frame::Blocks {
                chunk: 3,
                sums: vec![1, u64::MAX],
            },
            Frame::Bye,
            Frame::Same { chunk: 1 },
            Frame::Zero { chunk: 2 },
            Frame::Differs {
                chunk: 3,
                digest: Digest([3; 16]),
            },
            Frame::Data {
                chunk: 4,
                offset: 4096,
                encoding: Encoding::Zstd,
                raw_len: 8192,
                payload: vec![1, 2, 3],
            },
            Frame::ChunkEnd {
                chunk: 4,
                digest: Digest([4; 16]),
            },
            Frame::Error {
                message: "disk gone".into(),
            },
            Frame::Unknown {
                kind: 999,
                payload: vec![5],
            },
        ]
    }

    #[test]
    fn data_frames_built_in_place_equal_encoded_ones() {
        let head = DataHead {
            chunk: 7,
            offset: 512,
            encoding: Encoding::Raw,
            raw_len: 3,
        };
        let mut f = DataHead::start(3);
        f.extend_from_slice(&[9, 8, 7]);
        head.seal(&mut f);
        let whole = Frame::Data {
            chunk: 7,
            offset: 512,
            encoding: Encoding::Raw,
            raw_len: 3,
            payload: vec![9, 8, 7],
        };
        assert_eq!(f, whole.to_bytes());
        let h = FrameHeader::decode(f[..8].try_into().unwrap()).unwrap();
        assert_eq!(h.kind, DataHead::KIND);
        assert_eq!(DataHead::decode(&f[8..]).unwrap(), head);
        assert!(DataHead::decode(&f[8..20]).is_err());
    }

    #[test]
    fn every_frame_round_trips() {
        for f in all() {
            let bytes = f.to_bytes();
            assert_eq!(Frame::from_bytes(&bytes).unwrap(), f);
            // Every truncation is an error naming what is missing, never a panic.
            for cut in 0..bytes.len() {
                assert!(
                    Frame::from_bytes(&bytes[..cut]).is_err(),
                    "{f:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut b = Frame::Bye.to_bytes();
        b[3] = 1;
        assert!(Frame::from_bytes(&b).is_err(), "flags must be zero");
        let mut h = [0u8; 8];
        h[4..].copy_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
        assert!(matches!(
            FrameHeader::decode(&h),
            Err(Error::TooLarge { .. })
        ));
        let e = Frame::decode(COMPARE, &[0; 8 + 15])
            .unwrap_err()
            .to_string();
        assert!(e.contains("digests"), "{e}");
        assert!(Frame::decode(SAME, &[0; 9]).is_err(), "trailing bytes");
    }
}
