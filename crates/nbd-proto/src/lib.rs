/*!
The NBD (network block device) protocol, client and server.

The core never touches a socket, in the style of rustls: every wire type implements [`Codec`]
(encode to bytes, decode from a bounds-checked [`Reader`] whose errors name the missing or wrong
field), protocol numbers are enums that keep unknown values ([`Opt`], [`Command`], ...), and the
handshake is a pair of state machines, [`ClientHandshake`] and [`ServerHandshake`], fed with bytes
through the [`Handshake`] trait. The transmission phase is one too: [`ClientTransmission`] encodes
requests to bytes and turns the server's bytes, split anywhere, into [`Completion`]s, reassembling
structured replies whatever the order of their chunks and tracking which ranges of each read they
covered (an overlap or a repeat is a protocol error, a gap fails the read).

On top sits a thin blocking layer over Unix sockets and TCP ([`Stream`], [`Uri`]):

- [`Client`] negotiates the fixed newstyle handshake with `NBD_OPT_GO` (falling back to
  `NBD_OPT_EXPORT_NAME`), structured replies and the `base:allocation` context, then drives a
  [`ClientTransmission`] with many requests in flight, keyed by cookie: `submit_*` sends,
  [`Client::recv`] returns the next [`Completion`]. Reads report the ranges that came back as hole
  chunks.
- [`Server`] answers the same handshake (plus `INFO`, `LIST`, `LIST_META_CONTEXT`) and serves one
  connection from a [`Backend`], decoding requests with a state machine of the same kind and sending
  the zero runs a backend reports as hole chunks.

Payloads are capped at [`MAX_PAYLOAD`] (32 MiB).

```
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use osm_nbd::{Backend, BlockSize, Client, ClientConfig, Export, Server, Stream, TransmissionFlags};

/// Four KiB of data followed by four KiB of zeros.
struct Half;
impl Backend for Half {
    fn read(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<Vec<std::ops::Range<usize>>> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = if offset + (i as u64) < 4096 { 0xaa } else { 0 };
        }
        let zero_from = 4096u64.saturating_sub(offset).min(buf.len() as u64) as usize;
        Ok(vec![zero_from..buf.len()])
    }
}

let export = Export {
    name: "disk".into(),
    description: String::new(),
    size: 8192,
    flags: TransmissionFlags::READ_ONLY,
    block_size: Some(BlockSize { min: 1, preferred: 4096, max: 32 << 20 }),
};
let mut server = Server::new();
server.add_export(export, Arc::new(Half));
let (a, b) = UnixStream::pair()?;
let t = std::thread::spawn(move || server.serve(Stream::Unix(b)));

let mut client = Client::with_config(Stream::Unix(a), ClientConfig::new("disk"))?;
assert_eq!(client.size(), 8192);
let cookie = client.submit_read(0, vec![0; 8192])?;
let done = client.recv()?;
assert_eq!(done.cookie, cookie);
match done.result? {
    osm_nbd::Reply::Read { buf, holes, .. } => {
        assert!(buf[..4096].iter().all(|&b| b == 0xaa));
        assert_eq!(holes, vec![4096..8192]);
    }
    other => panic!("{other:?}"),
}
client.disconnect()?;
t.join().unwrap()?;
# Ok::<(), osm_nbd::Error>(())
```
*/
#![deny(missing_docs)]

pub use crate::client::{drive_handshake, Client, Negotiated};
pub use crate::codec::{Codec, Reader};
pub use crate::error::{Error, Result};
pub use crate::handshake::{
    ClientConfig, ClientHandshake, Export, Handshake, ServerHandshake, Session, Upgrade,
    ALLOCATION_CONTEXT_ID,
};
pub use crate::msgs::{
    BlockSize, BlockStatus, ChunkHeader, ClientGreeting, Descriptor, ErrorChunk, ExportName,
    ExportNameReply, ExportRequest, Info, MetaContext, MetaContextRequest, OffsetHole,
    OptionHeader, OptionReply, OptionRequest, ReplyHeader, Request, ServerEntry, ServerGreeting,
    SimpleReply, BASE_ALLOCATION, MAX_OPTION_DATA, MAX_PAYLOAD,
};
pub use crate::server::{Backend, Server, UpgradeHandler, READ_ALIGN};
pub use crate::transmission::{ClientTransmission, Completion, Reply};
pub use crate::transport::{Address, Stream, Uri, DEFAULT_PORT};
pub use crate::types::{
    AllocFlags, ClientFlags, CmdFlags, Command, ErrorCode, Extent, HandshakeFlags, InfoType, Opt,
    OptReplyType, ReplyFlags, ReplyType, TransmissionFlags,
};

mod client;
mod codec;
mod error;
mod handshake;
mod msgs;
mod server;
mod transmission;
mod transport;
mod types;
