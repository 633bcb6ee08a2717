//! The client side of the handshake: which options to send, and what their replies mean.

use std::collections::VecDeque;

use super::{Export, Handshake, Session, Upgrade};
use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::msgs::{
    BlockSize, ClientGreeting, ExportName, ExportNameReply, ExportRequest, Info, MetaContext,
    MetaContextRequest, OptionReply, OptionRequest, ServerEntry, ServerGreeting, BASE_ALLOCATION,
};
use crate::types::{ClientFlags, HandshakeFlags, InfoType, Opt, OptReplyType, TransmissionFlags};

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The export to select.
    pub export: String,
    /// Ask for structured replies (needed for hole chunks and block status).
    pub structured_replies: bool,
    /// Ask for the `base:allocation` metadata context.
    pub base_allocation: bool,
    /// List the server's exports first (`NBD_OPT_LIST`); see [`ClientHandshake::exports`].
    pub list_exports: bool,
    /// Ask to switch protocols before anything else.
    pub upgrade: Option<Upgrade>,
}

impl ClientConfig {
    /// Structured replies and `base:allocation` for `export`, the usual choice.
    pub fn new(export: &str) -> Self {
        ClientConfig {
            export: export.to_string(),
            structured_replies: true,
            base_allocation: true,
            list_exports: false,
            upgrade: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Greeting,
    Replies(Opt),
    ExportName { zeroes: bool },
    Done,
}

/// The client side of the fixed newstyle handshake.
///
/// It sends, in order: `LIST` (if asked), `STRUCTURED_REPLY`, `SET_META_CONTEXT` (only if structured
/// replies were accepted), then `GO` asking for block sizes, falling back to `EXPORT_NAME` when the
/// server does not know `GO`.
#[derive(Debug)]
pub struct ClientHandshake {
    config: ClientConfig,
    state: ClientState,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    steps: VecDeque<Opt>,
    structured: bool,
    base_allocation: Option<u32>,
    export: Option<(u64, TransmissionFlags)>,
    block_size: Option<BlockSize>,
    description: String,
    exports: Vec<ServerEntry>,
    no_zeroes: bool,
    upgraded: bool,
    upgrade_refusal: Option<String>,
}

impl ClientHandshake {
    /// A client that will negotiate per `config`; it waits for the server's greeting.
    pub fn new(config: ClientConfig) -> Self {
        let mut steps = VecDeque::new();
        if let Some(u) = &config.upgrade {
            steps.push_back(Opt::from(u.option));
        }
        if config.list_exports {
            steps.push_back(Opt::List);
        }
        if config.structured_replies {
            steps.push_back(Opt::StructuredReply);
            if config.base_allocation {
                steps.push_back(Opt::SetMetaContext);
            }
        }
        steps.push_back(Opt::Go);
        ClientHandshake {
            config,
            state: ClientState::Greeting,
            inbuf: Vec::new(),
            out: Vec::new(),
            steps,
            structured: false,
            base_allocation: None,
            export: None,
            block_size: None,
            description: String::new(),
            exports: Vec::new(),
            no_zeroes: false,
            upgraded: false,
            upgrade_refusal: None,
        }
    }

    /// Why the server refused the upgrade, when it did (the connection then went on in NBD).
    pub fn upgrade_refusal(&self) -> Option<&str> {
        self.upgrade_refusal.as_deref()
    }

    /// The exports the server listed, when [`ClientConfig::list_exports`] was set.
    pub fn exports(&self) -> &[ServerEntry] {
        &self.exports
    }

    /// The agreed session, once [`Handshake::is_done`].
    pub fn finish(self) -> Result<Session> {
        let (size, flags) = match (self.state, self.export) {
            (ClientState::Done, Some(e)) => e,
            (ClientState::Done, None) if self.upgraded => (0, TransmissionFlags::default()),
            _ => return Err(Error::Protocol("handshake not finished".into())),
        };
        if !self.inbuf.is_empty() {
            return Err(Error::Protocol(format!(
                "server sent {} bytes after the handshake, before any request",
                self.inbuf.len()
            )));
        }
        Ok(Session {
            export: Export {
                name: self.config.export,
                description: self.description,
                size,
                flags,
                block_size: self.block_size,
            },
            structured_replies: self.structured,
            base_allocation: self.base_allocation,
            upgraded: self.upgraded,
        })
    }

    fn is_upgrade(&self, opt: Opt) -> bool {
        self.config
            .upgrade
            .as_ref()
            .is_some_and(|u| Opt::from(u.option) == opt)
    }

    fn send_option(&mut self, opt: Opt) {
        let req = match opt {
            Opt::SetMetaContext => OptionRequest::new(
                opt,
                &MetaContextRequest {
                    export: self.config.export.clone(),
                    queries: vec![BASE_ALLOCATION.to_string()],
                },
            ),
            Opt::Go | Opt::Info => OptionRequest::new(
                opt,
                &ExportRequest {
                    name: self.config.export.clone(),
                    info: vec![InfoType::BlockSize, InfoType::Description],
                },
            ),
            Opt::ExportName => OptionRequest::new(opt, &ExportName(self.config.export.clone())),
            _ if self.is_upgrade(opt) => OptionRequest {
                opt,
                data: self
                    .config
                    .upgrade
                    .as_ref()
                    .map(|u| u.data.clone())
                    .unwrap_or_default(),
            },
            _ => OptionRequest {
                opt,
                data: Vec::new(),
            },
        };
        req.encode(&mut self.out);
    }

    fn next_step(&mut self) {
        while let Some(opt) = self.steps.pop_front() {
            if opt == Opt::SetMetaContext && !self.structured {
                continue;
            }
            self.send_option(opt);
            self.state = ClientState::Replies(opt);
            return;
        }
    }

    fn on_greeting(&mut self, g: ServerGreeting) {
        if !g.flags.contains(HandshakeFlags::FIXED_NEWSTYLE) {
            // A plain newstyle server may drop the connection on any option it does not know, so
            // only EXPORT_NAME is safe.
            ClientGreeting {
                flags: ClientFlags::default(),
            }
            .encode(&mut self.out);
            self.send_option(Opt::ExportName);
            self.state = ClientState::ExportName { zeroes: true };
            return;
        }
        self.no_zeroes = g.flags.contains(HandshakeFlags::NO_ZEROES);
        let mut flags = ClientFlags::FIXED_NEWSTYLE;
        if self.no_zeroes {
            flags |= ClientFlags::NO_ZEROES;
        }
        ClientGreeting { flags }.encode(&mut self.out);
        self.next_step();
    }

    fn on_reply(&mut self, opt: Opt, reply: OptionReply) -> Result<()> {
        if reply.opt != opt {
            return Err(Error::Protocol(format!(
                "reply for {:?} while waiting for {opt:?}",
                reply.opt
            )));
        }
        let refused = |reply: &OptionReply| Error::OptionRefused {
            option: opt,
            reply: reply.reply,
            message: String::from_utf8_lossy(&reply.data).into_owned(),
        };
        if self.is_upgrade(opt) {
            if reply.reply == OptReplyType::Ack {
                self.upgraded = true;
                self.state = ClientState::Done;
            } else if reply.reply.is_error() {
                self.upgrade_refusal = Some(refused(&reply).to_string());
                self.next_step();
            } else {
                return Err(Error::Protocol(format!(
                    "unexpected reply {:?} to the upgrade option",
                    reply.reply
                )));
            }
            return Ok(());
        }
        match (opt, reply.reply) {
            (_, OptReplyType::Ack) => {
                match opt {
                    Opt::StructuredReply => self.structured = true,
                    Opt::Go => {
                        if self.export.is_none() {
                            return Err(Error::Protocol(
                                "GO acknowledged without NBD_INFO_EXPORT".into(),
                            ));
                        }
                        self.state = ClientState::Done;
                        return Ok(());
                    }
                    _ => {}
                }
                self.next_step();
            }
            (Opt::List, OptReplyType::Server) => {
                self.exports.push(ServerEntry::from_bytes(&reply.data)?)
            }
            (Opt::SetMetaContext, OptReplyType::MetaContext) => {
                let m = MetaContext::from_bytes(&reply.data)?;
                if m.name == BASE_ALLOCATION {
                    self.base_allocation = Some(m.id);
                }
            }
            (Opt::Go, OptReplyType::Info) => match Info::from_bytes(&reply.data)? {
                Info::Export { size, flags } => self.export = Some((size, flags)),
                Info::BlockSize(b) => self.block_size = Some(b),
                Info::Description(d) => self.description = d,
                Info::Name(_) | Info::Unknown { .. } => {}
            },
            (Opt::Go, OptReplyType::ErrUnsup) => {
                self.send_option(Opt::ExportName);
                self.state = ClientState::ExportName {
                    zeroes: !self.no_zeroes,
                };
            }
            (Opt::Go, t) if t.is_error() => return Err(refused(&reply)),
            // Optional features: a refusal only means going on without them.
            (Opt::List | Opt::StructuredReply | Opt::SetMetaContext, t) if t.is_error() => {
                self.next_step()
            }
            (_, t) => {
                return Err(Error::Protocol(format!(
                    "unexpected reply {t:?} to {opt:?}"
                )));
            }
        }
        Ok(())
    }
}

impl Handshake for ClientHandshake {
    fn received(&mut self, bytes: &[u8]) -> Result<()> {
        self.inbuf.extend_from_slice(bytes);
        loop {
            let used = match self.state {
                ClientState::Done => return Ok(()),
                ClientState::Greeting => {
                    if self.inbuf.len() < ServerGreeting::LEN {
                        return Ok(());
                    }
                    let g = ServerGreeting::read(&mut Reader::new(&self.inbuf))?;
                    self.on_greeting(g);
                    ServerGreeting::LEN
                }
                ClientState::Replies(opt) => {
                    let Some(len) = OptionReply::peek_length(&self.inbuf) else {
                        return Ok(());
                    };
                    let total = OptionReply::HEADER_LEN.saturating_add(len as usize);
                    if self.inbuf.len() < total {
                        // Decode the header now so an oversized or garbled reply fails early.
                        if len > crate::msgs::MAX_OPTION_REPLY_DATA {
                            OptionReply::read(&mut Reader::new(&self.inbuf))?;
                        }
                        return Ok(());
                    }
                    let reply = OptionReply::read(&mut Reader::new(&self.inbuf[..total]))?;
                    self.on_reply(opt, reply)?;
                    total
                }
                ClientState::ExportName { zeroes } => {
                    let n = ExportNameReply::len(zeroes);
                    if self.inbuf.len() < n {
                        return Ok(());
                    }
                    let r = ExportNameReply::read(&mut Reader::new(&self.inbuf), zeroes)?;
                    self.export = Some((r.size, r.flags));
                    self.state = ClientState::Done;
                    n
                }
            };
            self.inbuf.drain(..used);
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that only knows EXPORT_NAME, as old servers do.
    #[test]
    fn client_falls_back_to_export_name() {
        let mut c = ClientHandshake::new(ClientConfig::new("disk"));
        let mut greeting = Vec::new();
        ServerGreeting {
            flags: HandshakeFlags::FIXED_NEWSTYLE,
        }
        .encode(&mut greeting);
        c.received(&greeting).unwrap();
        let sent = c.take_output();
        let mut r = Reader::new(&sent);
        assert_eq!(
            ClientGreeting::read(&mut r).unwrap().flags,
            ClientFlags::FIXED_NEWSTYLE
        );
        let opt = OptionRequest::read(&mut r).unwrap();
        assert_eq!(opt.opt, Opt::StructuredReply);
        let mut back = Vec::new();
        OptionReply::error(Opt::StructuredReply, OptReplyType::ErrUnsup, "").encode(&mut back);
        c.received(&back).unwrap();
        let go = OptionRequest::from_bytes(&c.take_output()).unwrap();
        assert_eq!(go.opt, Opt::Go);
        let mut back = Vec::new();
        OptionReply::error(Opt::Go, OptReplyType::ErrUnsup, "").encode(&mut back);
        c.received(&back).unwrap();
        let en = OptionRequest::from_bytes(&c.take_output()).unwrap();
        assert_eq!(
            (en.opt, en.data.as_slice()),
            (Opt::ExportName, &b"disk"[..])
        );
        let mut back = Vec::new();
        ExportNameReply {
            size: 4096,
            flags: TransmissionFlags::HAS_FLAGS,
            zeroes: true,
        }
        .encode(&mut back);
        c.received(&back).unwrap();
        let cs = c.finish().unwrap();
        assert_eq!(cs.export.size, 4096);
        assert!(!cs.structured_replies);
    }
}
