//! Where a copy reads from: the `Source` ops table and its NBD implementation.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use osm_nbd::{Client, ClientConfig, Extent, Reply, TransmissionFlags, Uri};

/// A finished source operation.
#[derive(Debug)]
pub enum Done {
    /// A read: `buf` holds the bytes from `offset` (holes zero-filled); `holes` are the ranges
    /// the source reported as zeros, which never crossed the network.
    Read {
        /// Where the read started.
        offset: u64,
        /// The bytes.
        buf: Vec<u8>,
        /// Ranges known to be zero.
        holes: Vec<std::ops::Range<u64>>,
    },
    /// Extents from the start of the queried range; they may cover less or (last one) more.
    Extents(Vec<Extent>),
}

/// A source's capabilities and connections, like nbdcopy's `rw_ops`.
pub trait Source: Send + Sync {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Whether several connections see the same data (so a copy may use them in parallel).
    fn can_multi_conn(&self) -> bool;
    /// Whether it can report extents (holes and zeros) before reading.
    fn can_extents(&self) -> bool;
    /// Whether reads can report holes.
    fn can_holes(&self) -> bool;
    /// Opens one more connection.
    fn connect(&self) -> Result<Box<dyn SourceConn>>;
}

/// One connection with requests in flight.
pub trait SourceConn: Send {
    /// Starts reading `buf.len()` bytes at `offset`.
    fn submit_read(&mut self, offset: u64, buf: Vec<u8>) -> Result<()>;
    /// Starts an extents query for up to `length` bytes at `offset`.
    fn submit_extents(&mut self, offset: u64, length: u64) -> Result<()>;
    /// Waits for the next operation to finish.
    fn next(&mut self) -> Result<Done>;
}

/// An NBD export.
pub struct NbdSource {
    uri: Uri,
    text: String,
    first: Mutex<Option<Client>>,
    size: u64,
    flags: TransmissionFlags,
    extents: bool,
    holes: bool,
}

/// How long a handshake on an additional connection may take before it is given up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the source may stay silent while requests are in flight: a hung server (or a
/// tunnel that lost its peer without a reset) fails the copy instead of stalling it forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

impl NbdSource {
    /// Connects to `uri` (`nbd+unix:///NAME?socket=PATH` or `nbd://HOST:PORT/NAME`).
    pub fn open(uri: &str) -> Result<NbdSource> {
        let parsed = Uri::parse(uri)?;
        let client = connect(&parsed).with_context(|| format!("connecting to {uri}"))?;
        let s = client.session();
        Ok(NbdSource {
            text: uri.to_string(),
            size: client.size(),
            flags: client.flags(),
            extents: s.base_allocation.is_some(),
            holes: s.structured_replies,
            first: Mutex::new(Some(client)),
            uri: parsed,
        })
    }
}

fn connect(uri: &Uri) -> Result<Client> {
    let stream = uri.address.connect()?;
    // A server that accepts but never answers (one at a time, say) must not hang the copy.
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let client = Client::with_config(stream, ClientConfig::new(&uri.export))?;
    client.stream().set_read_timeout(Some(REPLY_TIMEOUT))?;
    Ok(client)
}

impl Source for NbdSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn can_multi_conn(&self) -> bool {
        self.flags.contains(TransmissionFlags::CAN_MULTI_CONN)
    }

    fn can_extents(&self) -> bool {
        self.extents
    }

    fn can_holes(&self) -> bool {
        self.holes
    }

    fn connect(&self) -> Result<Box<dyn SourceConn>> {
        let first = self
            .first
            .lock()
            .map_err(|_| anyhow!("source lock poisoned"))?
            .take();
        let client = match first {
            Some(c) => c,
            None => connect(&self.uri).with_context(|| format!("connecting to {}", self.text))?,
        };
        Ok(Box::new(NbdConn {
            client,
            uri: self.text.clone(),
        }))
    }
}

struct NbdConn {
    client: Client,
    uri: String,
}

impl SourceConn for NbdConn {
    fn submit_read(&mut self, offset: u64, buf: Vec<u8>) -> Result<()> {
        let len = buf.len();
        self.client.submit_read(offset, buf).with_context(|| {
            format!("sending a read of {len} bytes at {offset} to {}", self.uri)
        })?;
        Ok(())
    }

    fn submit_extents(&mut self, offset: u64, length: u64) -> Result<()> {
        // Block status lengths are 32-bit; keep the query block-aligned.
        let len = length.min(u64::from(u32::MAX) & !0xfff) as u32;
        self.client
            .submit_block_status(offset, len)
            .with_context(|| format!("sending block status at {offset} to {}", self.uri))?;
        Ok(())
    }

    fn next(&mut self) -> Result<Done> {
        let c = self.client.recv().map_err(|e| match e {
            osm_nbd::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                anyhow!(
                    "connection to the source {} failed: no reply for {}s",
                    self.uri,
                    REPLY_TIMEOUT.as_secs()
                )
            }
            e => anyhow::Error::new(e)
                .context(format!("connection to the source {} failed", self.uri)),
        })?;
        match c
            .result
            .with_context(|| format!("the source {} refused a request", self.uri))?
        {
            Reply::Read { offset, buf, holes } => Ok(Done::Read { offset, buf, holes }),
            Reply::BlockStatus(e) => Ok(Done::Extents(e)),
            Reply::Done => Err(anyhow!("unexpected reply from {}", self.uri)),
        }
    }
}
