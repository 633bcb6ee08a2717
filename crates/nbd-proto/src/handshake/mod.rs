//! The handshake phase as state machines fed with bytes: no sockets in here.

mod client;
mod server;

use crate::error::Result;
use crate::msgs::BlockSize;
use crate::types::TransmissionFlags;

pub use client::{ClientConfig, ClientHandshake};
pub use server::ServerHandshake;

/// The context id a [`ServerHandshake`] gives `base:allocation`.
pub const ALLOCATION_CONTEXT_ID: u32 = 1;

/// An export as a server offers it and as a client learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Its name ("" is the default export).
    pub name: String,
    /// A description for humans.
    pub description: String,
    /// Its size in bytes.
    pub size: u64,
    /// Transmission flags; `HAS_FLAGS` is always set on the wire.
    pub flags: TransmissionFlags,
    /// Block size constraints, if any are advertised.
    pub block_size: Option<BlockSize>,
}

/// What both sides agreed on when the handshake ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The selected export.
    pub export: Export,
    /// Whether the server sends structured replies.
    pub structured_replies: bool,
    /// The id of `base:allocation` in block status replies, if it was selected.
    pub base_allocation: Option<u32>,
    /// The connection left NBD for another protocol through a private option (see [`Upgrade`]).
    /// The export's size and flags are then that protocol's business: they read as zero here.
    pub upgraded: bool,
}

/// A private option that, once the server acknowledges it, ends the handshake and switches the
/// connection to another protocol, as `NBD_OPT_STARTTLS` switches it to TLS. A server that does
/// not know the option refuses it (`NBD_REP_ERR_UNSUP`) and the client carries on in NBD, so the
/// same client code works against any NBD server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The option number (outside the range the NBD protocol assigns).
    pub option: u32,
    /// Its data, which must start with the export name in `u32`-prefixed form.
    pub data: Vec<u8>,
}

/// The common surface of both handshake state machines, so one I/O loop drives either.
pub trait Handshake {
    /// Feeds bytes received from the peer; any amount, split anywhere.
    fn received(&mut self, bytes: &[u8]) -> Result<()>;
    /// Takes the bytes that must be sent to the peer now.
    fn take_output(&mut self) -> Vec<u8>;
    /// Whether the handshake has ended (successfully or by abort).
    fn is_done(&self) -> bool;
}

// The two machines negotiating with each other; what only one side does is tested in its file.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::types::{Opt, OptReplyType};

    pub(super) fn export(name: &str) -> Export {
        Export {
            name: name.into(),
            description: "test disk".into(),
            size: 1 << 20,
            flags: TransmissionFlags::READ_ONLY | TransmissionFlags::CAN_MULTI_CONN,
            block_size: Some(BlockSize {
                min: 1,
                preferred: 4096,
                max: 32 << 20,
            }),
        }
    }

    /// Pumps bytes between the two machines, `chunk` bytes at a time, until both are done.
    fn pump(c: &mut ClientHandshake, s: &mut ServerHandshake, chunk: usize) -> Result<()> {
        for _ in 0..10_000 {
            if c.is_done() && s.is_done() {
                return Ok(());
            }
            let to_c = s.take_output();
            for piece in to_c.chunks(chunk) {
                c.received(piece)?;
            }
            let to_s = c.take_output();
            for piece in to_s.chunks(chunk) {
                s.received(piece)?;
            }
            if to_c.is_empty() && to_s.is_empty() {
                return Err(Error::Protocol("stalled".into()));
            }
        }
        Err(Error::Protocol("no progress".into()))
    }

    #[test]
    fn full_negotiation_in_any_split() {
        for chunk in [1, 3, 7, 1000] {
            let mut cfg = ClientConfig::new("disk");
            cfg.list_exports = true;
            let mut c = ClientHandshake::new(cfg);
            let mut s = ServerHandshake::new(vec![export("other"), export("disk")]);
            pump(&mut c, &mut s, chunk).unwrap();
            assert_eq!(
                c.exports()
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>(),
                ["other", "disk"]
            );
            let cs = c.finish().unwrap();
            let (ss, rest) = s.finish().unwrap();
            assert!(rest.is_empty());
            assert_eq!(cs, ss);
            assert!(cs.structured_replies);
            assert_eq!(cs.base_allocation, Some(ALLOCATION_CONTEXT_ID));
            assert_eq!(cs.export.block_size.unwrap().preferred, 4096);
            assert!(cs
                .export
                .flags
                .contains(TransmissionFlags::HAS_FLAGS | TransmissionFlags::CAN_MULTI_CONN));
        }
    }

    fn upgrade_config(export: &str) -> ClientConfig {
        let mut data = (export.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(export.as_bytes());
        let mut cfg = ClientConfig::new(export);
        cfg.upgrade = Some(Upgrade {
            option: 0x4f53_4d31,
            data,
        });
        cfg
    }

    #[test]
    fn upgrade_accepted_ends_the_handshake() {
        for chunk in [1, 5, 1000] {
            let mut c = ClientHandshake::new(upgrade_config("disk"));
            let mut s = ServerHandshake::new(vec![export("other"), export("disk")])
                .accept_upgrade(0x4f53_4d31);
            pump(&mut c, &mut s, chunk).unwrap();
            let cs = c.finish().unwrap();
            let (ss, rest) = s.finish().unwrap();
            assert!(rest.is_empty());
            assert!(cs.upgraded && ss.upgraded);
            assert_eq!(ss.export.name, "disk");
            assert!(!cs.structured_replies, "nothing else was negotiated");
        }
    }

    #[test]
    fn upgrade_refused_falls_back_to_nbd() {
        // A server that does not know the option (qemu-nbd, nbdkit) answers ERR_UNSUP.
        let mut c = ClientHandshake::new(upgrade_config("disk"));
        let mut s = ServerHandshake::new(vec![export("disk")]);
        pump(&mut c, &mut s, 1000).unwrap();
        assert!(c.upgrade_refusal().unwrap().contains("not supported"));
        let cs = c.finish().unwrap();
        assert!(!cs.upgraded && cs.structured_replies);
        assert_eq!(cs.export.size, 1 << 20);
        // An upgrade for an export the server lacks is refused, and so is the GO after it.
        let mut c = ClientHandshake::new(upgrade_config("nope"));
        let mut s = ServerHandshake::new(vec![export("disk")]).accept_upgrade(0x4f53_4d31);
        let e = pump(&mut c, &mut s, 1000).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn plain_client_without_extras() {
        let mut cfg = ClientConfig::new("");
        cfg.structured_replies = false;
        let mut c = ClientHandshake::new(cfg);
        let mut s = ServerHandshake::new(vec![export("disk")]);
        pump(&mut c, &mut s, 64).unwrap();
        let cs = c.finish().unwrap();
        assert!(!cs.structured_replies);
        assert_eq!(cs.base_allocation, None);
        assert_eq!(cs.export.size, 1 << 20);
    }

    #[test]
    fn unknown_export_is_refused_with_its_name() {
        let mut c = ClientHandshake::new(ClientConfig::new("nope"));
        let mut s = ServerHandshake::new(vec![export("disk")]);
        let err = pump(&mut c, &mut s, 64).unwrap_err();
        match err {
            Error::OptionRefused {
                option: Opt::Go,
                reply: OptReplyType::ErrUnknown,
                message,
            } => {
                assert!(message.contains("nope"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
