//! Where a sync reads from: the `Source` ops table, in the manner of nbdcopy's `rw_ops`.
//!
//! Two kinds: another agent speaking the sync protocol ([`super::peer`]), which digests its own
//! disk and sends only what differs, and any NBD server ([`super::nbd`]), whose data all crosses
//! and is digested here.

use std::borrow::Cow;

use anyhow::Result;
use osm_nbd::Stream;
use osm_sync::Digest;

/// What a source said about one chunk (or part of one). Data may borrow the connection's own
/// buffer: a worker applies an event before it asks for the next.
#[derive(Debug)]
pub enum Event<'a> {
    /// The chunk is the same on both sides.
    Same {
        /// The chunk.
        chunk: u64,
    },
    /// The chunk reads as zeros at the source.
    Zero {
        /// The chunk.
        chunk: u64,
    },
    /// The chunk differs and the destination holds data there: the source wants its block sums.
    Differs {
        /// The chunk.
        chunk: u64,
    },
    /// Decoded bytes of a chunk.
    Data {
        /// The chunk.
        chunk: u64,
        /// Where in the chunk they go.
        offset: u32,
        /// The bytes.
        bytes: Cow<'a, [u8]>,
        /// Bytes that crossed the link for them.
        wire: u64,
    },
    /// A range of a chunk that reads as zeros at the source.
    Zeros {
        /// The chunk.
        chunk: u64,
        /// Where in the chunk it starts.
        offset: u32,
        /// How long it is.
        len: u32,
    },
    /// The chunk's data is complete; its digest at the source.
    ChunkEnd {
        /// The chunk.
        chunk: u64,
        /// The source's digest.
        digest: Digest,
    },
}

/// A source: its size and capabilities, and its connections.
pub trait Source: Send + Sync {
    /// `agent` or `nbd`.
    fn kind(&self) -> &'static str;
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Bytes the source knows to be free, never read.
    fn free_bytes(&self) -> u64;
    /// Whether data may arrive compressed.
    fn compression(&self) -> bool;
    /// Takes the opened connections; each serves one worker.
    fn take_streams(&self) -> Vec<Box<dyn SourceStream>>;
    /// Bytes that crossed the connections so far, both ways.
    fn wire_bytes(&self) -> u64;
}

/// One connection with requests in flight.
pub trait SourceStream: Send {
    /// Asks about `digests.len()` chunks from `first`, given the destination's digests of them.
    fn compare(&mut self, first: u64, digests: &[Digest]) -> Result<()>;
    /// Sends the block sums of a chunk the source said `Differs` about.
    fn blocks(&mut self, chunk: u64, sums: &[u64]) -> Result<()>;
    /// Waits for the next event.
    fn next(&mut self) -> Result<Event<'_>>;
    /// Says goodbye; the connection is done.
    fn finish(&mut self) -> Result<()>;
    /// A handle that can shut the connection down from another thread, to end a blocked read
    /// when another worker failed.
    fn shutdown_handle(&self) -> Option<Stream>;
}
