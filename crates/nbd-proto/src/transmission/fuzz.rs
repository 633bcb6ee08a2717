//! Property tests: the client's reassembly against the server's own encoder, with the server's
//! replies cut into random chunks, shuffled, and fed in random splits; and garbage in either
//! direction, which must fail cleanly rather than panic.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::mpsc::sync_channel;

use proptest::prelude::*;

use super::*;
use crate::codec::{Codec, Reader};
use crate::handshake::{Export, Session};
use crate::msgs::{ChunkHeader, ReplyHeader};
use crate::server::{Backend, Connection};
use crate::types::{AllocFlags, Command, Extent, ReplyFlags, ReplyType, TransmissionFlags};

/// A run of the test disk.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// Bytes that are not all zero.
    Data(u16),
    /// Zeros the backend reports, so they go out as hole chunks.
    Zero(u16),
    /// Zeros the backend does not report, so they go out as data.
    Unreported(u16),
}

/// An in-memory disk that reports some of its zero runs.
struct Disk {
    bytes: Vec<u8>,
    zeros: Vec<Range<usize>>,
}

impl Disk {
    fn new(runs: &[Run]) -> Disk {
        let mut bytes = Vec::new();
        let mut zeros = Vec::new();
        for r in runs {
            let at = bytes.len();
            match *r {
                Run::Data(n) => bytes.extend((0..n).map(|i| (at + usize::from(i)) as u8 | 1)),
                Run::Zero(n) => {
                    bytes.resize(at + usize::from(n), 0);
                    zeros.push(at..bytes.len());
                }
                Run::Unreported(n) => bytes.resize(at + usize::from(n), 0),
            }
        }
        Disk { bytes, zeros }
    }
}

impl Backend for Disk {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<Vec<Range<usize>>> {
        let start = offset as usize;
        let end = start + buf.len();
        buf.copy_from_slice(&self.bytes[start..end]);
        Ok(self
            .zeros
            .iter()
            .map(|z| z.start.max(start) - start..z.end.min(end).max(start) - start)
            .filter(|z| !z.is_empty())
            .collect())
    }

    fn extents(&self, offset: u64, length: u32) -> io::Result<Vec<Extent>> {
        let end = (offset + u64::from(length)).min(self.bytes.len() as u64);
        let mut out: Vec<Extent> = Vec::new();
        for at in offset..end {
            let zero = self.zeros.iter().any(|z| z.contains(&(at as usize)));
            let flags = if zero {
                AllocFlags::ZERO
            } else {
                AllocFlags::default()
            };
            match out.last_mut() {
                Some(e) if e.flags == flags => e.length += 1,
                _ => out.push(Extent {
                    offset: at,
                    length: 1,
                    flags,
                }),
            }
        }
        Ok(out)
    }
}

/// Random decisions drawn from a list that proptest generates and shrinks (towards no shuffle
/// and whole pieces).
struct Choices<'a> {
    list: &'a [u16],
    at: usize,
}

impl Choices<'_> {
    /// A number below `n` (0 when `n` is 0 or the list is empty).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 || self.list.is_empty() {
            return 0;
        }
        let v = self.list[self.at % self.list.len()];
        self.at += 1;
        usize::from(v) % n
    }

    /// Cuts `bytes` into pieces of 1 to 64 bytes.
    fn pieces<'b>(&mut self, mut bytes: &'b [u8]) -> Vec<&'b [u8]> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let n = 1 + self.below(64.min(bytes.len()));
            let (piece, rest) = bytes.split_at(n.min(bytes.len()));
            out.push(piece);
            bytes = rest;
        }
        out
    }
}

/// One unit of the reply stream that may move on its own: a chunk, or a whole simple reply.
struct Unit {
    cookie: u64,
    done: bool,
    bytes: Vec<u8>,
}

/// Cuts one reply's bytes into units, splitting data chunks at random points.
fn units(reply: &[u8], read_len: Option<usize>, choose: &mut Choices<'_>) -> Vec<Unit> {
    let mut r = Reader::new(reply);
    let mut out = Vec::new();
    while r.left() > 0 {
        match ReplyHeader::read(&mut r).expect("the server's own header") {
            ReplyHeader::Simple(s) => {
                let data = match (s.error, read_len) {
                    (None, Some(n)) => r.take(n, "read data").expect("read data"),
                    _ => &[],
                };
                let mut bytes = s.to_bytes();
                bytes.extend_from_slice(data);
                out.push(Unit {
                    cookie: s.cookie,
                    done: true,
                    bytes,
                });
            }
            ReplyHeader::Chunk(c) => {
                let payload = r.take(c.length as usize, "payload").expect("payload");
                let done = c.flags.contains(ReplyFlags::DONE);
                if c.kind == ReplyType::OffsetData && payload.len() > 9 {
                    let offset = Reader::new(payload).u64("offset").expect("offset");
                    let data = &payload[8..];
                    let cut = 1 + choose.below(data.len() - 1);
                    out.push(data_unit(c.cookie, offset, &data[..cut], false));
                    out.push(data_unit(c.cookie, offset + cut as u64, &data[cut..], done));
                } else {
                    let mut bytes = c.to_bytes();
                    bytes.extend_from_slice(payload);
                    out.push(Unit {
                        cookie: c.cookie,
                        done,
                        bytes,
                    });
                }
            }
        }
    }
    out
}

fn data_unit(cookie: u64, offset: u64, data: &[u8], done: bool) -> Unit {
    let mut bytes = ChunkHeader {
        flags: if done {
            ReplyFlags::DONE
        } else {
            ReplyFlags::default()
        },
        kind: ReplyType::OffsetData,
        cookie,
        length: data.len() as u32 + 8,
    }
    .to_bytes();
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(data);
    Unit {
        cookie,
        done,
        bytes,
    }
}

/// Shuffles the units of all replies together, then puts each reply's `DONE` unit last among
/// its own, as the protocol requires.
fn shuffle(units: &mut [Unit], choose: &mut Choices<'_>) {
    for i in (1..units.len()).rev() {
        units.swap(i, choose.below(i + 1));
    }
    let mut last: HashMap<u64, usize> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        last.insert(u.cookie, i);
    }
    for i in 0..units.len() {
        if units[i].done {
            let j = last[&units[i].cookie];
            units.swap(i, j);
        }
    }
}

fn session(size: u64, structured: bool) -> Session {
    Session {
        export: Export {
            name: "fuzz".into(),
            description: String::new(),
            size,
            flags: TransmissionFlags::READ_ONLY,
            block_size: None,
        },
        structured_replies: structured,
        base_allocation: structured.then_some(1),
        upgraded: false,
    }
}

fn runs() -> impl Strategy<Value = Vec<Run>> {
    let run = prop_oneof![
        (1u16..3000).prop_map(Run::Data),
        (1u16..3000).prop_map(Run::Zero),
        (1u16..300).prop_map(Run::Unreported),
    ];
    prop::collection::vec(run, 1..12)
}

/// A request: a read (or, with structured replies, every fourth one a block status query), at a
/// place and of a length given as fractions of the disk.
type Ask = (u8, u16, u16);

fn asks() -> impl Strategy<Value = Vec<Ask>> {
    prop::collection::vec(any::<Ask>(), 1..12)
}

proptest! {
    #[test]
    fn reassembled_reads_equal_the_backend(
        runs in runs(),
        structured in any::<bool>(),
        asks in asks(),
        choices in prop::collection::vec(any::<u16>(), 0..64),
    ) {
        let disk = Disk::new(&runs);
        let size = disk.bytes.len();
        let session = session(size as u64, structured);
        let (_back, pool) = sync_channel(1);
        let server = Connection::new(session.clone(), &disk, pool);
        let mut client = ClientTransmission::new(session);
        let mut choose = Choices { list: &choices, at: 0 };

        let mut wire = Vec::new();
        let mut asked = HashMap::new();
        for (kind, at, len) in asks {
            let offset = usize::from(at) * size / 65536;
            let len = 1 + usize::from(len) * (size - offset - 1) / 65535;
            let cookie = if structured && kind % 4 == 0 {
                client.block_status(offset as u64, len as u32, &mut wire)
            } else {
                client.read(offset as u64, vec![0xa5; len], &mut wire)
            };
            let cookie = cookie.map_err(|e| TestCaseError::fail(e.to_string()))?;
            asked.insert(cookie, (offset, len));
        }

        let mut requests = RequestDecoder::new();
        for piece in choose.pieces(&wire) {
            requests.feed(piece).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut all = Vec::new();
        while let Some(i) = requests.next_request() {
            let mut reply = Vec::new();
            server.handle(&i.req, &i.payload).write_to(&mut reply).expect("to a vector");
            let read_len = (i.req.command == Command::Read).then_some(i.req.length as usize);
            all.extend(units(&reply, read_len, &mut choose));
        }
        if structured {
            shuffle(&mut all, &mut choose);
        }
        let stream: Vec<u8> = all.into_iter().flat_map(|u| u.bytes).collect();
        for (i, mut piece) in choose.pieces(&stream).into_iter().enumerate() {
            // Both ways in: bytes in hand, and a reader that fills buffers in place.
            if i % 2 == 0 {
                client.received(piece).map_err(|e| TestCaseError::fail(e.to_string()))?;
            } else {
                while !piece.is_empty() {
                    client.read_from(&mut piece).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
        }

        let mut seen = 0;
        while let Some(done) = client.next_completion() {
            seen += 1;
            let (offset, len) = asked[&done.cookie];
            let want = &disk.bytes[offset..offset + len];
            match done.result.map_err(|e| TestCaseError::fail(e.to_string()))? {
                Reply::Read { offset: o, buf, holes } => {
                    prop_assert_eq!(o as usize, offset);
                    prop_assert_eq!(&buf[..], want);
                    for h in holes {
                        prop_assert!(disk.zeros.iter().any(|z| z.start as u64 <= h.start && h.end <= z.end as u64),
                            "hole {:?} outside the reported zeros", h);
                    }
                }
                Reply::BlockStatus(extents) => {
                    prop_assert_eq!(extents[0].offset as usize, offset);
                    for pair in extents.windows(2) {
                        prop_assert_eq!(pair[0].end(), pair[1].offset);
                    }
                    for e in extents.iter().filter(|e| e.is_zero()) {
                        prop_assert!(disk.bytes[e.offset as usize..e.end() as usize].iter().all(|&b| b == 0));
                    }
                }
                Reply::Done => prop_assert!(false, "no request here gets a plain reply"),
            }
        }
        prop_assert_eq!(seen, asked.len());
        prop_assert_eq!(client.in_flight(), 0);
    }

    #[test]
    fn garbage_replies_fail_cleanly(
        structured in any::<bool>(),
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        prefix in prop::collection::vec(any::<u8>(), 0..2),
    ) {
        let mut client = ClientTransmission::new(session(1 << 20, structured));
        for i in 0..4u64 {
            client.read(i * 4096, vec![0; 4096], &mut Vec::new()).expect("in range");
        }
        // A real magic first now and then, so decoding gets past the first field.
        let mut bytes = match prefix.len() {
            0 => Vec::new(),
            _ if structured => 0x668e_33efu32.to_be_bytes().to_vec(),
            _ => 0x6744_6698u32.to_be_bytes().to_vec(),
        };
        bytes.extend(garbage);
        if client.received(&bytes).is_err() {
            prop_assert!(client.received(&[0]).is_err(), "a broken connection stays broken");
        }
        while let Some(done) = client.next_completion() {
            prop_assert!(done.cookie <= 4);
        }
    }

    #[test]
    fn garbage_requests_fail_cleanly(
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        magic in any::<bool>(),
    ) {
        let mut requests = RequestDecoder::new();
        let mut bytes = if magic { 0x2560_9513u32.to_be_bytes().to_vec() } else { Vec::new() };
        bytes.extend(garbage);
        let _ = requests.feed(&bytes);
        while let Some(i) = requests.next_request() {
            prop_assert!(i.req.command != Command::Write || i.payload.len() == i.req.length as usize);
        }
    }
}
