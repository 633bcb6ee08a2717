//! The transmission phase as state machines fed with bytes: no sockets in here.
//!
//! [`ClientTransmission`] encodes requests and turns reply bytes into [`Completion`]s; the server's
//! [`RequestDecoder`] turns request bytes into whole requests. Both say where their next bytes go
//! ([`Feed::want`]), so a blocking driver reads a multi-MiB payload straight into its final buffer
//! while a test copies in bytes split anywhere: one state machine either way.

mod client;
mod coverage;
mod server;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use std::io::{self, Read};

use crate::error::Result;

pub use client::{ClientTransmission, Completion, Reply};
pub(crate) use server::{Incoming, RequestDecoder};

/// A decoder that hands out the buffer its next bytes belong in.
pub(crate) trait Feed {
    /// Where the next received bytes go; never empty.
    fn want(&mut self) -> &mut [u8];

    /// Takes note that the first `n` bytes of [`Feed::want`] were filled, and decodes whatever
    /// that completed.
    fn advance(&mut self, n: usize) -> Result<()>;

    /// Feeds bytes received from the peer; any amount, split anywhere.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let dst = self.want();
            let n = dst.len().min(bytes.len());
            dst[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.advance(n)?;
        }
        Ok(())
    }

    /// Reads once from `r` into [`Feed::want`] and decodes; 0 means end of stream. Interrupted reads
    /// are retried, so a signal is not mistaken for a failure.
    fn fill_from(&mut self, r: &mut dyn Read) -> Result<usize> {
        loop {
            match r.read(self.want()) {
                Ok(0) => return Ok(0),
                Ok(n) => {
                    self.advance(n)?;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
