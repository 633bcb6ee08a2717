//! The transmission phase without a socket: hand-made replies, split anywhere.

use std::io::{self, Read};

use super::*;
use crate::codec::Codec;
use crate::error::Error;
use crate::handshake::{Export, Session};
use crate::msgs::{
    BlockStatus, ChunkHeader, Descriptor, ErrorChunk, OffsetHole, Request, SimpleReply, MAX_PAYLOAD,
};
use crate::types::{
    AllocFlags, CmdFlags, Command, ErrorCode, Extent, ReplyFlags, ReplyType, TransmissionFlags,
};

const SIZE: u64 = 1 << 20;

fn session(structured: bool) -> Session {
    Session {
        export: Export {
            name: "t".into(),
            description: String::new(),
            size: SIZE,
            flags: TransmissionFlags::default(),
            block_size: None,
        },
        structured_replies: structured,
        base_allocation: structured.then_some(1),
        upgraded: false,
    }
}

fn flags(done: bool) -> ReplyFlags {
    if done {
        ReplyFlags::DONE
    } else {
        ReplyFlags::default()
    }
}

fn chunk(cookie: u64, kind: ReplyType, done: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = ChunkHeader {
        flags: flags(done),
        kind,
        cookie,
        length: payload.len() as u32,
    }
    .to_bytes();
    b.extend_from_slice(payload);
    b
}

fn data(cookie: u64, offset: u64, bytes: &[u8], done: bool) -> Vec<u8> {
    let mut payload = offset.to_be_bytes().to_vec();
    payload.extend_from_slice(bytes);
    chunk(cookie, ReplyType::OffsetData, done, &payload)
}

fn hole(cookie: u64, offset: u64, length: u32, done: bool) -> Vec<u8> {
    chunk(
        cookie,
        ReplyType::OffsetHole,
        done,
        &OffsetHole { offset, length }.to_bytes(),
    )
}

/// A block status chunk with one descriptor.
fn extent(cookie: u64, context: u32, length: u32, flags: AllocFlags) -> Vec<u8> {
    let bs = BlockStatus {
        context,
        descriptors: vec![Descriptor { length, flags }],
    };
    chunk(cookie, ReplyType::BlockStatus, true, &bs.to_bytes())
}

fn error(cookie: u64, code: ErrorCode, message: &str, done: bool) -> Vec<u8> {
    let mut payload = Vec::new();
    ErrorChunk {
        code,
        message: message.into(),
        offset: None,
    }
    .encode(&mut payload);
    chunk(cookie, ReplyType::Error, done, &payload)
}

fn read(c: &mut ClientTransmission, offset: u64, len: usize) -> u64 {
    c.read(offset, vec![0xee; len], &mut Vec::new()).unwrap()
}

fn completed(c: &mut ClientTransmission) -> Completion {
    c.next_completion().expect("a completion")
}

fn read_reply(c: Completion) -> (u64, Vec<u8>, Vec<std::ops::Range<u64>>) {
    match c.result {
        Ok(Reply::Read { offset, buf, holes }) => (offset, buf, holes),
        other => panic!("not a read: {other:?}"),
    }
}

fn protocol_error(r: crate::Result<()>) -> String {
    match r {
        Err(Error::Protocol(m)) => m,
        other => panic!("not a protocol error: {other:?}"),
    }
}

#[test]
fn requests_encode_to_the_wire_and_decode_on_the_server() {
    let mut c = ClientTransmission::new(session(true));
    let mut out = Vec::new();
    let r = c.read(4096, vec![0; 512], &mut out).unwrap();
    let w = c.write(0, 5, &mut out).unwrap();
    out.extend_from_slice(b"hello");
    let z = c.write_zeroes(8192, 100, &mut out).unwrap();
    let f = c.flush(&mut out).unwrap();
    let b = c.block_status(0, 65536, &mut out).unwrap();
    let d = c.disconnect(&mut out).unwrap();
    assert_eq!(c.in_flight(), 5, "DISC gets no reply");
    assert_eq!(out.len(), 6 * Request::LEN + 5);

    let mut dec = RequestDecoder::new();
    for byte in out.chunks(1) {
        dec.feed(byte).unwrap();
    }
    let got: Vec<(Command, u64, u64, u32, Vec<u8>)> = std::iter::from_fn(|| dec.next_request())
        .map(|i| {
            assert_eq!(i.req.flags, CmdFlags::default());
            (
                i.req.command,
                i.req.cookie,
                i.req.offset,
                i.req.length,
                i.payload,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Command::Read, r, 4096, 512, vec![]),
            (Command::Write, w, 0, 5, b"hello".to_vec()),
            (Command::WriteZeroes, z, 8192, 100, vec![]),
            (Command::Flush, f, 0, 0, vec![]),
            (Command::BlockStatus, b, 0, 65536, vec![]),
            (Command::Disc, d, 0, 0, vec![]),
        ]
    );
    assert!(!dec.in_payload());
}

#[test]
fn refused_requests_send_nothing() {
    let mut c = ClientTransmission::new(session(false));
    let mut out = Vec::new();
    assert!(c.read(SIZE - 1, vec![0; 2], &mut out).is_err());
    assert!(c.write(u64::MAX, 1, &mut out).is_err(), "overflow");
    assert!(matches!(
        c.block_status(0, 1, &mut out),
        Err(Error::Protocol(m)) if m.contains("base:allocation")
    ));
    let mut big = session(true);
    big.export.size = 1 << 40;
    let mut c2 = ClientTransmission::new(big);
    assert!(matches!(
        c2.write(0, MAX_PAYLOAD + 1, &mut out),
        Err(Error::TooLarge { .. })
    ));
    assert!(out.is_empty());
    assert_eq!(c.in_flight() + c2.in_flight(), 0);
    c.disconnect(&mut out).unwrap();
    assert!(
        matches!(c.flush(&mut out), Err(Error::Protocol(m)) if m.contains("after NBD_CMD_DISC"))
    );
}

#[test]
fn out_of_order_chunks_reassemble_and_holes_zero_the_buffer() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 4096, 12288);
    c.received(&data(k, 12288, &[3; 4096], false)).unwrap();
    c.received(&hole(k, 8192, 4096, false)).unwrap();
    assert!(c.next_completion().is_none());
    c.received(&data(k, 4096, &[1; 4096], true)).unwrap();
    let done = completed(&mut c);
    assert_eq!(done.cookie, k);
    let (offset, buf, holes) = read_reply(done);
    assert_eq!(offset, 4096);
    assert_eq!(&buf[..4096], &[1; 4096][..]);
    assert_eq!(&buf[4096..8192], &[0; 4096][..], "stale bytes under a hole");
    assert_eq!(&buf[8192..], &[3; 4096][..]);
    assert_eq!(holes, vec![8192..12288]);
    assert_eq!(c.in_flight(), 0);
}

/// Interleaved replies to three requests, as one byte stream.
fn interleaved() -> (ClientTransmission, Vec<u8>, [u64; 3]) {
    let mut c = ClientTransmission::new(session(true));
    let a = read(&mut c, 0, 100);
    let b = c.block_status(0, 4096, &mut Vec::new()).unwrap();
    let w = c.write_zeroes(0, 10, &mut Vec::new()).unwrap();
    let mut wire = data(a, 50, &[7; 50], false);
    wire.extend(extent(b, 1, 4096, AllocFlags::ZERO));
    wire.extend(
        SimpleReply {
            error: None,
            cookie: w,
        }
        .to_bytes(),
    );
    wire.extend(data(a, 0, &[6; 50], true));
    (c, wire, [a, b, w])
}

fn check_interleaved(mut c: ClientTransmission, cookies: [u64; 3]) {
    let [a, b, w] = cookies;
    let first = completed(&mut c);
    assert_eq!(first.cookie, b);
    assert!(
        matches!(first.result, Ok(Reply::BlockStatus(e)) if e == vec![Extent {
            offset: 0,
            length: 4096,
            flags: AllocFlags::ZERO
        }])
    );
    let second = completed(&mut c);
    assert_eq!(second.cookie, w);
    assert!(matches!(second.result, Ok(Reply::Done)));
    let third = completed(&mut c);
    assert_eq!(third.cookie, a);
    let (_, buf, holes) = read_reply(third);
    assert_eq!(&buf[..50], &[6; 50][..]);
    assert_eq!(&buf[50..], &[7; 50][..]);
    assert!(holes.is_empty());
    assert!(c.next_completion().is_none());
}

/// Hands out its bytes a few at a time, as a socket might.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn any_split_gives_the_same_completions() {
    let (_, wire, _) = interleaved();
    for step in 1..=wire.len() {
        let (mut c, wire, cookies) = interleaved();
        for piece in wire.chunks(step) {
            c.received(piece).unwrap();
        }
        check_interleaved(c, cookies);

        let (mut c, wire, cookies) = interleaved();
        let mut r = Trickle { bytes: &wire, step };
        while c.read_from(&mut r).unwrap() > 0 {}
        check_interleaved(c, cookies);
    }
}

#[test]
fn overlapping_chunks_break_the_connection() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 8192);
    c.received(&data(k, 0, &[1; 4096], false)).unwrap();
    let m = protocol_error(c.received(&data(k, 2048, &[2; 4096], true)));
    assert!(m.contains("overlaps"), "{m}");
    let m = protocol_error(c.received(&hole(k, 4096, 4096, true)));
    assert!(m.contains("broke earlier") && m.contains("overlaps"), "{m}");
}

#[test]
fn a_repeated_chunk_is_an_overlap() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 8192);
    c.received(&hole(k, 0, 4096, false)).unwrap();
    let m = protocol_error(c.received(&hole(k, 0, 4096, false)));
    assert!(m.contains("overlaps"), "{m}");
}

#[test]
fn a_missing_chunk_fails_the_read_and_the_connection_goes_on() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 8192);
    c.received(&data(k, 0, &[1; 2048], false)).unwrap();
    c.received(&data(k, 6144, &[1; 2048], true)).unwrap();
    match completed(&mut c).result {
        Err(Error::Protocol(m)) => {
            assert!(m.contains("answered only for [0..2048, 6144..8192]"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let k = read(&mut c, 0, 4);
    c.received(&data(k, 0, b"next", true)).unwrap();
    assert_eq!(read_reply(completed(&mut c)).1, b"next");
}

#[test]
fn an_error_mid_read_fails_only_that_read() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 8192);
    let other = read(&mut c, 0, 4);
    c.received(&data(k, 0, &[1; 4096], false)).unwrap();
    c.received(&error(k, ErrorCode::Io, "bad sector", false))
        .unwrap();
    c.received(&data(other, 0, b"fine", true)).unwrap();
    // A second error for the same read is an echo: the first one is reported.
    c.received(&error(k, ErrorCode::Inval, "echo", false))
        .unwrap();
    c.received(&data(k, 4096, &[1; 4096], true)).unwrap();
    assert_eq!(read_reply(completed(&mut c)).1, b"fine");
    match completed(&mut c) {
        Completion {
            cookie,
            result:
                Err(Error::Command {
                    code: ErrorCode::Io,
                    message,
                    what,
                }),
        } => {
            assert_eq!(cookie, k);
            assert_eq!(message, "bad sector");
            assert_eq!(what, "Read of 8192 bytes at 0");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_simple_error_reply_carries_no_data() {
    let mut c = ClientTransmission::new(session(false));
    let a = read(&mut c, 0, 4);
    let b = read(&mut c, 4, 4);
    let mut wire = SimpleReply {
        error: Some(ErrorCode::Perm),
        cookie: a,
    }
    .to_bytes();
    wire.extend(
        SimpleReply {
            error: None,
            cookie: b,
        }
        .to_bytes(),
    );
    wire.extend_from_slice(b"abcd");
    c.received(&wire).unwrap();
    assert!(matches!(
        completed(&mut c).result,
        Err(Error::Command {
            code: ErrorCode::Perm,
            ..
        })
    ));
    assert_eq!(read_reply(completed(&mut c)).1, b"abcd");
}

#[test]
fn unknown_cookies_are_protocol_errors() {
    let mut c = ClientTransmission::new(session(true));
    read(&mut c, 0, 4);
    let simple = SimpleReply {
        error: None,
        cookie: 99,
    }
    .to_bytes();
    let m = protocol_error(c.received(&simple));
    assert_eq!(m, "simple reply for unknown cookie 99");
    let mut c = ClientTransmission::new(session(true));
    let m = protocol_error(c.received(&hole(7, 0, 1, true)));
    assert_eq!(m, "reply chunk for unknown cookie 7");
}

#[test]
fn an_oversized_chunk_is_refused_before_its_payload() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 4);
    let header = ChunkHeader {
        flags: ReplyFlags::DONE,
        kind: ReplyType::OffsetData,
        cookie: k,
        length: MAX_PAYLOAD + 65,
    }
    .to_bytes();
    assert!(matches!(
        c.received(&header),
        Err(Error::TooLarge {
            what: "reply chunk",
            ..
        })
    ));
}

#[test]
fn chunks_outside_the_read_are_refused() {
    for (wire, what) in [
        (
            data(1, 4095, &[0; 2], true),
            "data chunk 4095+2 outside read 0..4096",
        ),
        (
            hole(1, 4096, 1, true),
            "hole chunk 4096+1 outside read 0..4096",
        ),
        (
            hole(1, u64::MAX, 2, true),
            "hole chunk 18446744073709551615+2 outside read 0..4096",
        ),
    ] {
        let mut c = ClientTransmission::new(session(true));
        read(&mut c, 0, 4096);
        assert_eq!(protocol_error(c.received(&wire)), what);
    }
}

#[test]
fn chunk_kinds_must_fit_the_command() {
    let mut c = ClientTransmission::new(session(true));
    let b = c.block_status(0, 4096, &mut Vec::new()).unwrap();
    let m = protocol_error(c.received(&hole(b, 0, 1, true)));
    assert!(m.contains("OffsetHole") && m.contains("BlockStatus"), "{m}");

    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 4);
    let m = protocol_error(c.received(&chunk(k, ReplyType::OffsetData, true, &[0; 7])));
    assert!(m.contains("unexpected chunk OffsetData of 7 bytes"), "{m}");

    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 4);
    let m = protocol_error(c.received(&chunk(k, ReplyType::None, false, &[])));
    assert!(m.contains("unexpected chunk None"), "{m}");
}

#[test]
fn block_status_keeps_its_context_and_refuses_empty_extents() {
    let mut c = ClientTransmission::new(session(true));
    let b = c.block_status(100, 4096, &mut Vec::new()).unwrap();
    // Extents of a context not asked for are no answer.
    c.received(&extent(b, 9, 1, AllocFlags::HOLE)).unwrap();
    assert!(matches!(
        completed(&mut c).result,
        Err(Error::Protocol(m)) if m == "block status at 100 returned no extents"
    ));

    let b = c.block_status(0, 4096, &mut Vec::new()).unwrap();
    let m = protocol_error(c.received(&extent(b, 1, 0, AllocFlags::default())));
    assert_eq!(m, "block status descriptor of length 0");
}

#[test]
fn decode_errors_name_the_field() {
    let mut c = ClientTransmission::new(session(true));
    read(&mut c, 0, 4);
    assert!(matches!(
        c.received(&[0, 0, 0, 0]),
        Err(Error::BadMagic {
            what: "reply.magic",
            ..
        })
    ));
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 4);
    assert!(matches!(
        c.received(&chunk(k, ReplyType::Error, true, &[0, 0, 0, 5, 0, 9, b'x'])),
        Err(Error::MissingData("error.message"))
    ));
}

#[test]
fn awaiting_names_where_the_stream_broke_off() {
    let mut c = ClientTransmission::new(session(true));
    let k = read(&mut c, 0, 8);
    assert_eq!(c.awaiting(), "a reply");
    let wire = data(k, 0, &[1; 8], true);
    c.received(&wire[..2]).unwrap();
    assert_eq!(c.awaiting(), "a reply header");
    c.received(&wire[2..ChunkHeader::LEN + 3]).unwrap();
    assert_eq!(c.awaiting(), "data chunk offset");
    c.received(&wire[ChunkHeader::LEN + 3..wire.len() - 1])
        .unwrap();
    assert_eq!(c.awaiting(), "data chunk");
    c.received(&wire[wire.len() - 1..]).unwrap();
    assert_eq!(c.awaiting(), "a reply");
}

/// Fails with `WouldBlock` every other call, as a socket with a read timeout does.
struct Flaky<'a> {
    bytes: &'a [u8],
    fail: bool,
}

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fail = !self.fail;
        if self.fail {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.bytes.len()).min(3);
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn an_io_error_consumes_nothing_and_can_be_retried() {
    let (mut c, wire, cookies) = interleaved();
    let mut r = Flaky {
        bytes: &wire,
        fail: false,
    };
    let mut timeouts = 0;
    loop {
        match c.read_from(&mut r) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(timeouts > 10);
    check_interleaved(c, cookies);
}

#[test]
fn the_decoder_refuses_oversized_writes_and_bad_magic() {
    let mut dec = RequestDecoder::new();
    let big = Request {
        flags: CmdFlags::default(),
        command: Command::Write,
        cookie: 1,
        offset: 0,
        length: MAX_PAYLOAD + 1,
    };
    assert!(matches!(
        dec.feed(&big.to_bytes()),
        Err(Error::TooLarge {
            what: "write payload",
            ..
        })
    ));
    let mut dec = RequestDecoder::new();
    let write = Request { length: 4, ..big };
    dec.feed(&write.to_bytes()[..27]).unwrap();
    assert!(!dec.in_payload());
    dec.feed(&write.to_bytes()[27..]).unwrap();
    assert!(dec.in_payload(), "a header without its payload");
    dec.feed(b"abcd").unwrap();
    assert_eq!(
        dec.next_request().map(|i| i.payload),
        Some(b"abcd".to_vec())
    );
    let mut dec = RequestDecoder::new();
    assert!(matches!(
        dec.feed(&[0; Request::LEN]),
        Err(Error::BadMagic {
            what: "request.magic",
            ..
        })
    ));
}
