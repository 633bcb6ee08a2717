//! Why a structure could not be used.
//!
//! [`crate::scan`] never fails: an [`Error`] only ever ends the scan of one structure, whose bytes
//! are then copied as data, and its text becomes the detail of that structure's
//! [`crate::Finding`].

use std::fmt;

/// The reason a structure is copied as data.
#[derive(Debug)]
pub(crate) enum Error {
    /// Reading the device failed (or it is shorter than it claims).
    Io {
        offset: u64,
        len: usize,
        source: std::io::Error,
    },
    /// A read past the end of the region holding the structure.
    OutOfRange { offset: u64, len: u64, region: u64 },
    /// The structure is inconsistent, unsupported, or not in a state that can be trusted.
    Bad(String),
}

impl Error {
    pub(crate) fn bad(msg: impl Into<String>) -> Error {
        Error::Bad(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                offset,
                len,
                source,
            } => {
                write!(
                    f,
                    "read of {len} bytes at device offset {offset} failed: {source}"
                )
            }
            Error::OutOfRange {
                offset,
                len,
                region,
            } => {
                write!(
                    f,
                    "needs {len} bytes at {offset}, past the end of its {region}-byte region"
                )
            }
            Error::Bad(m) => f.write_str(m),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// `Err(Error::Bad(format!(..)))`, for the many consistency checks.
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::Bad(format!($($arg)*))) };
}
pub(crate) use bail;

/// Fails with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !($cond) { $crate::error::bail!($($arg)*); } };
}
pub(crate) use ensure;
