use std::io;

use crate::types::{ErrorCode, Opt, OptReplyType};

/// Everything that can go wrong while speaking NBD.
///
/// Decoding errors name the field that was missing or wrong, so a trace of a broken peer reads as
/// "missing data: request.cookie" rather than "unexpected EOF".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes ended before the named field was complete.
    #[error("missing data: {0}")]
    MissingData(&'static str),
    /// A message had bytes left over after its last field.
    #[error("{what}: {len} unexpected trailing bytes")]
    TrailingData {
        /// The message being decoded.
        what: &'static str,
        /// How many bytes were left.
        len: usize,
    },
    /// A magic number did not match.
    #[error("bad magic in {what}: {got:#x}")]
    BadMagic {
        /// Where the magic was expected.
        what: &'static str,
        /// The value received.
        got: u64,
    },
    /// A length field exceeds what this implementation accepts.
    #[error("{what} too large: {len} bytes (at most {max})")]
    TooLarge {
        /// The field or payload.
        what: &'static str,
        /// Its announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A string was not UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// The peer broke the protocol in a way that is not a simple decode error.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server answered an option with an error reply.
    #[error("server refused {option:?}: {reply:?}{}", fmt_message(message))]
    OptionRefused {
        /// The option that was refused.
        option: Opt,
        /// The error reply type.
        reply: OptReplyType,
        /// The server's free-form message, if any.
        message: String,
    },
    /// The server answered a command with an error.
    #[error("server error {code:?} for {what}{}", fmt_message(message))]
    Command {
        /// The command that failed, with its range.
        what: String,
        /// The error code.
        code: ErrorCode,
        /// The server's free-form message, if any.
        message: String,
    },
    /// The peer closed the connection.
    #[error("connection closed by peer{}", fmt_message(.0))]
    Closed(String),
    /// An I/O error on the underlying transport.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

fn fmt_message(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
