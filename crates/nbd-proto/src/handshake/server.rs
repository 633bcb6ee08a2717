//! The server side of the handshake: answering each option from the list of exports.

use super::{Export, Handshake, Session, ALLOCATION_CONTEXT_ID};
use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::msgs::{
    ClientGreeting, ExportName, ExportNameReply, ExportRequest, Info, MetaContext,
    MetaContextRequest, OptionHeader, OptionReply, ServerEntry, ServerGreeting, BASE_ALLOCATION,
    MAX_OPTION_DATA,
};
use crate::types::{ClientFlags, HandshakeFlags, InfoType, Opt, OptReplyType, TransmissionFlags};

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

    /// Also accepts the private option `option` (see [`Upgrade`](super::Upgrade)): its data names
    /// an export, and an acknowledgement ends the handshake with [`Session::upgraded`] set.
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
    use crate::handshake::tests::export;
    use crate::msgs::OptionRequest;

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
