//! The server's side of the transmission phase: request bytes in, whole requests out.

use std::collections::VecDeque;

use super::Feed;
use crate::codec::{Codec, Reader};
use crate::error::{Error, Result};
use crate::msgs::{Request, MAX_PAYLOAD};
use crate::types::Command;

/// A request with its payload: a write's data, empty for every other command.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) req: Request,
    pub(crate) payload: Vec<u8>,
}

#[derive(Debug)]
enum In {
    Header {
        buf: [u8; Request::LEN],
        have: usize,
    },
    Payload {
        req: Request,
        buf: Vec<u8>,
        have: usize,
    },
}

impl In {
    fn header() -> In {
        In::Header {
            buf: [0; Request::LEN],
            have: 0,
        }
    }
}

/// Decodes requests fed in any split; a write's payload arrives straight in its own buffer.
#[derive(Debug)]
pub(crate) struct RequestDecoder {
    state: In,
    ready: VecDeque<Incoming>,
}

impl RequestDecoder {
    pub(crate) fn new() -> RequestDecoder {
        RequestDecoder {
            state: In::header(),
            ready: VecDeque::new(),
        }
    }

    /// The next whole request, in the order they arrived.
    pub(crate) fn next_request(&mut self) -> Option<Incoming> {
        self.ready.pop_front()
    }

    /// Whether a write's payload has begun (its header arrived) but is not whole: the stream
    /// ending here loses data the client meant to write.
    pub(crate) fn in_payload(&self) -> bool {
        matches!(self.state, In::Payload { .. })
    }

    fn on_header(&mut self, req: Request) -> Result<()> {
        if req.command != Command::Write || req.length == 0 {
            self.ready.push_back(Incoming {
                req,
                payload: Vec::new(),
            });
            return Ok(());
        }
        if req.length > MAX_PAYLOAD {
            // The payload cannot be skipped safely without reading up to 4 GiB: hang up.
            return Err(Error::TooLarge {
                what: "write payload",
                len: req.length.into(),
                max: MAX_PAYLOAD.into(),
            });
        }
        self.state = In::Payload {
            req,
            buf: vec![0; req.length as usize],
            have: 0,
        };
        Ok(())
    }
}

impl Feed for RequestDecoder {
    fn want(&mut self) -> &mut [u8] {
        match &mut self.state {
            In::Header { buf, have } => &mut buf[*have..],
            In::Payload { buf, have, .. } => &mut buf[*have..],
        }
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        let whole = match &mut self.state {
            In::Header { have, .. } => {
                *have += n;
                *have == Request::LEN
            }
            In::Payload { buf, have, .. } => {
                *have += n;
                *have == buf.len()
            }
        };
        if !whole {
            return Ok(());
        }
        match std::mem::replace(&mut self.state, In::header()) {
            In::Header { buf, .. } => self.on_header(Request::read(&mut Reader::new(&buf))?),
            In::Payload { req, buf, .. } => {
                self.ready.push_back(Incoming { req, payload: buf });
                Ok(())
            }
        }
    }
}
