//! A blocking client with many requests in flight on one connection: a thin driver that moves
//! bytes between a socket and the sans-I/O [`ClientTransmission`].

use std::io::{BufReader, IoSlice, Read, Write};
use std::net::Shutdown;

use crate::error::{Error, Result};
use crate::handshake::{ClientConfig, ClientHandshake, Handshake, Session};
use crate::msgs::Request;
use crate::transmission::{ClientTransmission, Completion, Reply};
use crate::transport::{Stream, Uri};
use crate::types::{Extent, TransmissionFlags};

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
    conn: ClientTransmission,
    /// Request headers on their way out, kept to reuse the allocation.
    out: Vec<u8>,
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
            conn: ClientTransmission::new(session),
            out: Vec::with_capacity(Request::LEN),
        })
    }

    /// What was negotiated.
    pub fn session(&self) -> &Session {
        self.conn.session()
    }

    /// The export's size.
    pub fn size(&self) -> u64 {
        self.session().export.size
    }

    /// The export's transmission flags.
    pub fn flags(&self) -> TransmissionFlags {
        self.session().export.flags
    }

    /// How many requests await their reply.
    pub fn in_flight(&self) -> usize {
        self.conn.in_flight()
    }

    /// The stream, to set timeouts on reads for example.
    pub fn stream(&self) -> &Stream {
        &self.writer
    }

    /// Sends the request `encode` appended to the pending output, then `payload` (a write's data).
    fn send(
        &mut self,
        encode: impl FnOnce(&mut ClientTransmission, &mut Vec<u8>) -> Result<u64>,
        payload: &[u8],
    ) -> Result<u64> {
        self.out.clear();
        let cookie = encode(&mut self.conn, &mut self.out)?;
        if payload.is_empty() {
            self.writer.write_all(&self.out)?;
        } else {
            let mut both = [IoSlice::new(&self.out), IoSlice::new(payload)];
            write_all_vectored(&mut self.writer, &mut both)?;
        }
        Ok(cookie)
    }

    /// Reads `buf.len()` bytes at `offset`; the buffer comes back in the completion.
    pub fn submit_read(&mut self, offset: u64, buf: Vec<u8>) -> Result<u64> {
        self.send(|c, out| c.read(offset, buf, out), &[])
    }

    /// Writes `data` at `offset`.
    pub fn submit_write(&mut self, offset: u64, data: &[u8]) -> Result<u64> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.send(|c, out| c.write(offset, len, out), data)
    }

    /// Writes `length` zero bytes at `offset`.
    pub fn submit_write_zeroes(&mut self, offset: u64, length: u32) -> Result<u64> {
        self.send(|c, out| c.write_zeroes(offset, length, out), &[])
    }

    /// Flushes the server's caches.
    pub fn submit_flush(&mut self) -> Result<u64> {
        self.send(|c, out| c.flush(out), &[])
    }

    /// Asks for the `base:allocation` status of `length` bytes at `offset`; the server may answer
    /// for less (or, in the last extent, more).
    pub fn submit_block_status(&mut self, offset: u64, length: u32) -> Result<u64> {
        self.send(|c, out| c.block_status(offset, length, out), &[])
    }

    /// Sends `NBD_CMD_DISC` and closes the connection; requests still in flight are dropped.
    pub fn disconnect(mut self) -> Result<()> {
        self.send(|c, out| c.disconnect(out), &[])?;
        self.writer.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// Waits for the next request to complete.
    pub fn recv(&mut self) -> Result<Completion> {
        if self.conn.in_flight() == 0 {
            return Err(Error::Protocol("recv with no request in flight".into()));
        }
        loop {
            if let Some(c) = self.conn.next_completion() {
                return Ok(c);
            }
            if self.conn.read_from(&mut self.reader)? == 0 {
                return Err(Error::Closed(format!(
                    "while reading {}, with {} requests in flight",
                    self.conn.awaiting(),
                    self.conn.in_flight()
                )));
            }
        }
    }

    /// Runs one request to completion; only valid with nothing else in flight.
    fn call(&mut self, cookie: Result<u64>) -> Result<Reply> {
        let cookie = cookie?;
        if self.in_flight() != 1 {
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

fn write_all_vectored(w: &mut Stream, mut bufs: &mut [IoSlice<'_>]) -> Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs)?;
        if n == 0 {
            return Err(Error::Closed("while sending a request".into()));
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
