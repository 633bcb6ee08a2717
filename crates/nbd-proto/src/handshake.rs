//! The handshake phase as state machines fed with bytes: no sockets in here.

use std::collections::VecDeque;

use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::msgs::{
    BlockSize, ClientGreeting, ExportName, ExportNameReply, ExportRequest, Info, MetaContext,
    MetaContextRequest, OptionHeader, OptionReply, OptionRequest, ServerEntry, ServerGreeting,
    BASE_ALLOCATION, MAX_OPTION_DATA,
};
use crate::types::{ClientFlags, HandshakeFlags, InfoType, Opt, OptReplyType, TransmissionFlags};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    ClientFlags,
    Options,
    Discard { opt: Opt, left: usize },
    Done(usize),
    Aborted,
}

/// The server side of the fixed newstyle handshake.
///
/// Answers `EXPORT_NAME`, `ABORT`, `LIST`, `INFO`, `GO`, `STRUCTURED_REPLY`, `LIST_META_CONTEXT` and
/// `SET_META_CONTEXT` (with `base:allocation`), and refuses everything else with `ERR_UNSUP`.
#[derive(Debug)]
pub struct ServerHandshake {
    exports: Vec<Export>,
    state: ServerState,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    client_flags: ClientFlags,
    structured: bool,
    base_allocation: Option<u32>,
    upgrade: Option<u32>,
    upgraded: bool,
}

impl ServerHandshake {
    /// A server offering `exports`; the greeting is ready in [`Handshake::take_output`] at once.
    pub fn new(exports: Vec<Export>) -> Self {
        let mut out = Vec::new();
        ServerGreeting {
            flags: HandshakeFlags::FIXED_NEWSTYLE | HandshakeFlags::NO_ZEROES,
        }
        .encode(&mut out);
        ServerHandshake {
            exports,
            state: ServerState::ClientFlags,
            inbuf: Vec::new(),
            out,
            client_flags: ClientFlags::default(),
            structured: false,
            base_allocation: None,
            upgrade: None,
            upgraded: false,
        }
    }

    /// Also accepts the private option `option` (see [`Upgrade`]): its data names an export, and
    /// an acknowledgement ends the handshake with [`Session::upgraded`] set.
    pub fn accept_upgrade(mut self, option: u32) -> Self {
        self.upgrade = Some(option);
        self
    }

    /// The agreed session and any bytes the client already sent past the handshake (pipelined
    /// requests), once [`Handshake::is_done`].
    pub fn finish(self) -> Result<(Session, Vec<u8>)> {
        match self.state {
            ServerState::Done(i) => {
                let mut export = self.exports[i].clone();
                export.flags |= TransmissionFlags::HAS_FLAGS;
                Ok((
                    Session {
                        export,
                        structured_replies: self.structured,
                        base_allocation: self.base_allocation,
                        upgraded: self.upgraded,
                    },
                    self.inbuf,
                ))
            }
            ServerState::Aborted => Err(Error::Closed("client aborted the handshake".into())),
            _ => Err(Error::Protocol("handshake not finished".into())),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        // An empty name selects the default export, which is the first one.
        if name.is_empty() && !self.exports.is_empty() {
            return Some(0);
        }
        self.exports.iter().position(|e| e.name == name)
    }

    fn reply(&mut self, opt: Opt, kind: OptReplyType, payload: &impl Codec) {
        OptionReply::new(opt, kind, payload).encode(&mut self.out);
    }

    fn ack(&mut self, opt: Opt) {
        OptionReply {
            opt,
            reply: OptReplyType::Ack,
            data: Vec::new(),
        }
        .encode(&mut self.out);
    }

    fn refuse(&mut self, opt: Opt, kind: OptReplyType, message: &str) {
        OptionReply::error(opt, kind, message).encode(&mut self.out);
    }

    fn flags_of(&self, i: usize) -> TransmissionFlags {
        self.exports[i].flags | TransmissionFlags::HAS_FLAGS
    }

    fn on_option(&mut self, opt: Opt, data: &[u8]) -> Result<()> {
        if self.upgrade.is_some_and(|u| Opt::from(u) == opt) {
            let mut r = Reader::new(data);
            let Ok(name) = r.string32("upgrade.export") else {
                self.refuse(opt, OptReplyType::ErrInvalid, "the upgrade names no export");
                return Ok(());
            };
            let Some(i) = self.find(&name) else {
                self.refuse(
                    opt,
                    OptReplyType::ErrUnknown,
                    &format!("no export named {name:?}"),
                );
                return Ok(());
            };
            self.ack(opt);
            self.upgraded = true;
            self.state = ServerState::Done(i);
            return Ok(());
        }
        match opt {
            Opt::ExportName => {
                let name = ExportName::from_bytes(data)?.0;
                // EXPORT_NAME has no error reply: the protocol says to close the connection.
                let i = self.find(&name).ok_or_else(|| {
                    Error::Protocol(format!("client asked for unknown export {name:?}"))
                })?;
                ExportNameReply {
                    size: self.exports[i].size,
                    flags: self.flags_of(i),
                    zeroes: !self.client_flags.contains(ClientFlags::NO_ZEROES),
                }
                .encode(&mut self.out);
                self.state = ServerState::Done(i);
            }
            Opt::Abort => {
                self.ack(opt);
                self.state = ServerState::Aborted;
            }
            Opt::List => {
                if !data.is_empty() {
                    self.refuse(opt, OptReplyType::ErrInvalid, "LIST takes no payload");
                    return Ok(());
                }
                for e in self.exports.clone() {
                    self.reply(
                        opt,
                        OptReplyType::Server,
                        &ServerEntry {
                            name: e.name,
                            description: e.description,
                        },
                    );
                }
                self.ack(opt);
            }
            Opt::Info | Opt::Go => {
                let req = match ExportRequest::from_bytes(data) {
                    Ok(r) => r,
                    Err(e) => {
                        self.refuse(opt, OptReplyType::ErrInvalid, &e.to_string());
                        return Ok(());
                    }
                };
                let Some(i) = self.find(&req.name) else {
                    self.refuse(
                        opt,
                        OptReplyType::ErrUnknown,
                        &format!("no export named {:?}", req.name),
                    );
                    return Ok(());
                };
                let e = self.exports[i].clone();
                self.reply(
                    opt,
                    OptReplyType::Info,
                    &Info::Export {
                        size: e.size,
                        flags: self.flags_of(i),
                    },
                );
                for want in req.info {
                    match want {
                        InfoType::Name => {
                            self.reply(opt, OptReplyType::Info, &Info::Name(e.name.clone()))
                        }
                        InfoType::Description if !e.description.is_empty() => self.reply(
                            opt,
                            OptReplyType::Info,
                            &Info::Description(e.description.clone()),
                        ),
                        InfoType::BlockSize => {
                            if let Some(b) = e.block_size {
                                self.reply(opt, OptReplyType::Info, &Info::BlockSize(b));
                            }
                        }
                        _ => {}
                    }
                }
                self.ack(opt);
                if opt == Opt::Go {
                    self.state = ServerState::Done(i);
                }
            }
            Opt::StructuredReply => {
                if !data.is_empty() {
                    self.refuse(
                        opt,
                        OptReplyType::ErrInvalid,
                        "STRUCTURED_REPLY takes no payload",
                    );
                    return Ok(());
                }
                self.structured = true;
                self.ack(opt);
            }
            Opt::ListMetaContext | Opt::SetMetaContext => self.on_meta_context(opt, data),
            _ => self.refuse(
                opt,
                OptReplyType::ErrUnsup,
                &format!("option {opt:?} is not supported"),
            ),
        }
        Ok(())
    }

    fn on_meta_context(&mut self, opt: Opt, data: &[u8]) {
        if !self.structured {
            self.refuse(
                opt,
                OptReplyType::ErrInvalid,
                "negotiate structured replies first",
            );
            return;
        }
        let req = match MetaContextRequest::from_bytes(data) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(opt, OptReplyType::ErrInvalid, &e.to_string());
                return;
            }
        };
        if self.find(&req.export).is_none() {
            self.refuse(
                opt,
                OptReplyType::ErrUnknown,
                &format!("no export named {:?}", req.export),
            );
            return;
        }
        let list = opt == Opt::ListMetaContext;
        // LIST with no query, or with the namespace query "base:", lists every base context.
        let wanted = req
            .queries
            .iter()
            .any(|q| q == BASE_ALLOCATION || (list && q == "base:"))
            || (list && req.queries.is_empty());
        if wanted {
            let id = if list { 0 } else { ALLOCATION_CONTEXT_ID };
            self.reply(
                opt,
                OptReplyType::MetaContext,
                &MetaContext {
                    id,
                    name: BASE_ALLOCATION.into(),
                },
            );
        }
        if !list {
            self.base_allocation = wanted.then_some(ALLOCATION_CONTEXT_ID);
        }
        self.ack(opt);
    }
}

impl Handshake for ServerHandshake {
    fn received(&mut self, bytes: &[u8]) -> Result<()> {
        self.inbuf.extend_from_slice(bytes);
        loop {
            let used = match self.state {
                ServerState::Done(_) | ServerState::Aborted => return Ok(()),
                ServerState::ClientFlags => {
                    if self.inbuf.len() < ClientGreeting::LEN {
                        return Ok(());
                    }
                    let g = ClientGreeting::read(&mut Reader::new(&self.inbuf))?;
                    if g.flags.unknown_bits() != 0 {
                        return Err(Error::Protocol(format!(
                            "unknown client flags {:?}",
                            g.flags
                        )));
                    }
                    self.client_flags = g.flags;
                    self.state = ServerState::Options;
                    ClientGreeting::LEN
                }
                ServerState::Options => {
                    if self.inbuf.len() < OptionHeader::LEN {
                        return Ok(());
                    }
                    let h = OptionHeader::read(&mut Reader::new(&self.inbuf))?;
                    if h.length > MAX_OPTION_DATA {
                        self.state = ServerState::Discard {
                            opt: h.opt,
                            left: h.length as usize,
                        };
                        OptionHeader::LEN
                    } else {
                        let total = OptionHeader::LEN + h.length as usize;
                        if self.inbuf.len() < total {
                            return Ok(());
                        }
                        let data = self.inbuf[OptionHeader::LEN..total].to_vec();
                        self.on_option(h.opt, &data)?;
                        total
                    }
                }
                ServerState::Discard { opt, left } => {
                    let n = left.min(self.inbuf.len());
                    if n == left {
                        self.refuse(opt, OptReplyType::ErrTooBig, "option payload too large");
                        self.state = ServerState::Options;
                    } else {
                        self.state = ServerState::Discard {
                            opt,
                            left: left - n,
                        };
                    }
                    if n == 0 {
                        return Ok(());
                    }
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
        matches!(self.state, ServerState::Done(_) | ServerState::Aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(name: &str) -> Export {
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

    #[test]
    fn server_answers_export_name_info_list_meta_and_abort() {
        let mut s = ServerHandshake::new(vec![export("disk")]);
        let g = s.take_output();
        assert_eq!(
            ServerGreeting::from_bytes(&g).unwrap().flags,
            HandshakeFlags::FIXED_NEWSTYLE | HandshakeFlags::NO_ZEROES
        );
        let mut msg = Vec::new();
        ClientGreeting {
            flags: ClientFlags::FIXED_NEWSTYLE,
        }
        .encode(&mut msg);
        OptionRequest::new(
            Opt::SetMetaContext,
            &MetaContextRequest {
                export: "disk".into(),
                queries: vec![BASE_ALLOCATION.into()],
            },
        )
        .encode(&mut msg);
        OptionRequest::new(Opt::StructuredReply, &ExportName(String::new())).encode(&mut msg);
        OptionRequest::new(
            Opt::ListMetaContext,
            &MetaContextRequest {
                export: "disk".into(),
                queries: vec![],
            },
        )
        .encode(&mut msg);
        OptionRequest::new(
            Opt::Info,
            &ExportRequest {
                name: "disk".into(),
                info: vec![InfoType::Name, InfoType::Description],
            },
        )
        .encode(&mut msg);
        OptionRequest {
            opt: Opt::Unknown(1000),
            data: vec![],
        }
        .encode(&mut msg);
        OptionRequest::new(Opt::ExportName, &ExportName("disk".into())).encode(&mut msg);
        msg.extend_from_slice(b"pipelined");
        s.received(&msg).unwrap();
        let out = s.take_output();
        let mut r = Reader::new(&out);
        let mut replies = Vec::new();
        while r.left() > 10 + 124 {
            replies.push(OptionReply::read(&mut r).unwrap());
        }
        let kinds: Vec<_> = replies.iter().map(|x| (x.opt, x.reply)).collect();
        assert_eq!(
            kinds,
            [
                (Opt::SetMetaContext, OptReplyType::ErrInvalid),
                (Opt::StructuredReply, OptReplyType::Ack),
                (Opt::ListMetaContext, OptReplyType::MetaContext),
                (Opt::ListMetaContext, OptReplyType::Ack),
                (Opt::Info, OptReplyType::Info),
                (Opt::Info, OptReplyType::Info),
                (Opt::Info, OptReplyType::Info),
                (Opt::Info, OptReplyType::Ack),
                (Opt::Unknown(1000), OptReplyType::ErrUnsup),
            ]
        );
        assert_eq!(
            Info::from_bytes(&replies[6].data).unwrap(),
            Info::Description("test disk".into())
        );
        let en = ExportNameReply::read(&mut r, true).unwrap();
        assert_eq!(en.size, 1 << 20);
        let (session, rest) = s.finish().unwrap();
        assert_eq!(rest, b"pipelined");
        assert!(session.structured_replies);

        let mut s = ServerHandshake::new(vec![export("disk")]);
        let mut msg = Vec::new();
        ClientGreeting {
            flags: ClientFlags::FIXED_NEWSTYLE | ClientFlags::NO_ZEROES,
        }
        .encode(&mut msg);
        OptionRequest {
            opt: Opt::Abort,
            data: vec![],
        }
        .encode(&mut msg);
        s.received(&msg).unwrap();
        assert!(s.is_done());
        assert!(matches!(s.finish(), Err(Error::Closed(_))));
    }

    #[test]
    fn server_discards_oversized_options() {
        let mut s = ServerHandshake::new(vec![export("disk")]);
        s.take_output();
        let mut msg = Vec::new();
        ClientGreeting {
            flags: ClientFlags::FIXED_NEWSTYLE,
        }
        .encode(&mut msg);
        OptionHeader {
            opt: Opt::Go,
            length: MAX_OPTION_DATA + 5,
        }
        .encode(&mut msg);
        msg.resize(msg.len() + MAX_OPTION_DATA as usize + 5, 0);
        for piece in msg.chunks(4000) {
            s.received(piece).unwrap();
        }
        let r = OptionReply::from_bytes(&s.take_output()).unwrap();
        assert_eq!(r.reply, OptReplyType::ErrTooBig);
        assert!(!s.is_done());
    }

    #[test]
    fn server_rejects_unknown_client_flags_and_bad_magic() {
        let mut s = ServerHandshake::new(vec![export("disk")]);
        assert!(matches!(
            s.received(&[0, 0, 0, 0x80]),
            Err(Error::Protocol(_))
        ));
        let mut s = ServerHandshake::new(vec![export("disk")]);
        let mut msg = vec![0, 0, 0, 1];
        msg.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            s.received(&msg),
            Err(Error::BadMagic {
                what: "option.magic",
                ..
            })
        ));
    }
}
