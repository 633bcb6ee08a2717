//! Client against server over a socket pair: every command, many in flight, both reply styles.

use std::io;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use osm_nbd::{
    AllocFlags, Backend, BlockSize, Client, ClientConfig, Error, ErrorCode, Export, Extent, Reply,
    Server, Stream, TransmissionFlags,
};

/// A writable in-memory disk that reports 4 KiB blocks of zeros as holes.
struct Memory(Mutex<Vec<u8>>);

impl Backend for Memory {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<Vec<Range<usize>>> {
        let d = self.0.lock().unwrap();
        let o = offset as usize;
        buf.copy_from_slice(&d[o..o + buf.len()]);
        let mut zeros: Vec<Range<usize>> = Vec::new();
        for (i, c) in buf.chunks(4096).enumerate() {
            if c.iter().all(|&b| b == 0) {
                let r = i * 4096..i * 4096 + c.len();
                match zeros.last_mut() {
                    Some(l) if l.end == r.start => l.end = r.end,
                    _ => zeros.push(r),
                }
            }
        }
        Ok(zeros)
    }

    fn extents(&self, offset: u64, length: u32) -> io::Result<Vec<Extent>> {
        let d = self.0.lock().unwrap();
        let mut out: Vec<Extent> = Vec::new();
        let end = (offset + u64::from(length)).min(d.len() as u64);
        let mut at = offset;
        while at < end {
            let n = (4096 - at % 4096).min(end - at);
            let zero = d[at as usize..(at + n) as usize].iter().all(|&b| b == 0);
            let flags = if zero {
                AllocFlags::ZERO
            } else {
                AllocFlags::default()
            };
            match out.last_mut() {
                Some(l) if l.flags == flags => l.length += n,
                _ => out.push(Extent {
                    offset: at,
                    length: n,
                    flags,
                }),
            }
            at += n;
        }
        Ok(out)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let o = offset as usize;
        self.0.lock().unwrap()[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, length: u32) -> io::Result<()> {
        let o = offset as usize;
        self.0.lock().unwrap()[o..o + length as usize].fill(0);
        Ok(())
    }
}

const SIZE: u64 = 1 << 20;

fn start(
    flags: TransmissionFlags,
    config: ClientConfig,
) -> (Client, JoinHandle<osm_nbd::Result<()>>) {
    let mut server = Server::new();
    let export = Export {
        name: "mem".into(),
        description: "memory".into(),
        size: SIZE,
        flags,
        block_size: Some(BlockSize {
            min: 1,
            preferred: 4096,
            max: 32 << 20,
        }),
    };
    server.add_export(export, Arc::new(Memory(Mutex::new(vec![0; SIZE as usize]))));
    let (a, b) = UnixStream::pair().unwrap();
    let t = thread::spawn(move || server.serve(Stream::Unix(b)));
    (Client::with_config(Stream::Unix(a), config).unwrap(), t)
}

fn writable() -> TransmissionFlags {
    TransmissionFlags::SEND_FLUSH | TransmissionFlags::SEND_WRITE_ZEROES
}

#[test]
fn write_read_zero_flush_and_block_status() {
    let (mut c, t) = start(writable(), ClientConfig::new("mem"));
    assert!(c.session().structured_replies);
    let pattern: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8 + 1).collect();
    c.write_at(8192, &pattern).unwrap();
    c.flush().unwrap();
    let back = c.read_at(0, 131072).unwrap();
    assert!(back[..8192].iter().all(|&b| b == 0));
    assert_eq!(&back[8192..8192 + 65536], &pattern[..]);
    let ext = c.block_status(0, SIZE as u32).unwrap();
    assert_eq!(
        ext[0],
        Extent {
            offset: 0,
            length: 8192,
            flags: AllocFlags::ZERO
        }
    );
    assert_eq!(
        ext[1],
        Extent {
            offset: 8192,
            length: 65536,
            flags: AllocFlags::default()
        }
    );
    assert_eq!(ext.iter().map(|e| e.length).sum::<u64>(), SIZE);
    c.write_zeroes(8192, 4096).unwrap();
    let ext = c.block_status(0, 65536).unwrap();
    assert_eq!(
        ext[0],
        Extent {
            offset: 0,
            length: 12288,
            flags: AllocFlags::ZERO
        }
    );
    c.disconnect().unwrap();
    t.join().unwrap().unwrap();
}

#[test]
fn many_reads_in_flight_with_holes() {
    let (mut c, t) = start(writable(), ClientConfig::new("mem"));
    for i in 0..16u64 {
        // Every other 16 KiB block holds data.
        if i % 2 == 0 {
            c.write_at(i * 16384, &vec![i as u8 + 1; 16384]).unwrap();
        }
    }
    let mut cookies = Vec::new();
    for i in 0..16u64 {
        cookies.push(c.submit_read(i * 16384, vec![0xee; 16384]).unwrap());
    }
    assert_eq!(c.in_flight(), 16);
    let mut seen = Vec::new();
    while c.in_flight() > 0 {
        let done = c.recv().unwrap();
        let Reply::Read { offset, buf, holes } = done.result.unwrap() else {
            panic!("not a read")
        };
        let i = offset / 16384;
        if i % 2 == 0 {
            assert!(buf.iter().all(|&b| b == i as u8 + 1));
            assert!(holes.is_empty());
        } else {
            assert!(
                buf.iter().all(|&b| b == 0),
                "hole chunks must zero the stale buffer"
            );
            assert_eq!(holes, vec![offset..offset + 16384]);
        }
        seen.push(done.cookie);
    }
    seen.sort();
    assert_eq!(seen, cookies);
    drop(c);
    t.join().unwrap().unwrap();
}

#[test]
fn simple_replies_without_structured_negotiation() {
    let mut cfg = ClientConfig::new("mem");
    cfg.structured_replies = false;
    let (mut c, t) = start(writable(), cfg);
    assert!(!c.session().structured_replies);
    c.write_at(0, b"hello").unwrap();
    assert_eq!(&c.read_at(0, 5).unwrap(), b"hello");
    assert!(matches!(c.block_status(0, 1), Err(Error::Protocol(_))));
    c.disconnect().unwrap();
    t.join().unwrap().unwrap();
}

#[test]
fn read_only_export_refuses_writes_with_eperm() {
    let (mut c, t) = start(TransmissionFlags::READ_ONLY, ClientConfig::new("mem"));
    assert!(c.flags().contains(TransmissionFlags::READ_ONLY));
    match c.write_at(0, b"x") {
        Err(Error::Command {
            code: ErrorCode::Perm,
            message,
            ..
        }) => assert!(message.contains("read-only")),
        other => panic!("{other:?}"),
    }
    // The connection survives a refused command.
    assert_eq!(c.read_at(0, 4).unwrap(), vec![0; 4]);
    assert!(
        c.read_at(SIZE, 1).is_err(),
        "reads past the end are refused before sending"
    );
    drop(c);
    t.join().unwrap().unwrap();
}

#[test]
fn killed_server_fails_pending_requests() {
    let (a, b) = UnixStream::pair().unwrap();
    let t = thread::spawn(move || {
        // Serve the handshake only, then vanish.
        let export = Export {
            name: String::new(),
            description: String::new(),
            size: SIZE,
            flags: TransmissionFlags::READ_ONLY,
            block_size: None,
        };
        let mut hs = osm_nbd::ServerHandshake::new(vec![export]);
        let mut s = Stream::Unix(b);
        osm_nbd::drive_handshake(&mut s, &mut hs).unwrap();
    });
    let mut c = Client::with_config(Stream::Unix(a), ClientConfig::new("")).unwrap();
    t.join().unwrap();
    let err = match c.submit_read(0, vec![0; 4096]) {
        Ok(_) => c.recv().unwrap_err(),
        Err(e) => e,
    };
    match err {
        Error::Closed(m) => assert!(m.contains("in flight"), "{m}"),
        Error::Io(e) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("{other:?}"),
    }
}
