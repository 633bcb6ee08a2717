//! Protocol numbers: enums that keep unknown values, and flag sets.

/// Declares a wire enum whose unknown values survive a round trip in `Unknown(..)`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident: $t:ty { $($(#[$vm:meta])* $v:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A value this implementation does not know.
            Unknown($t),
        }

        impl From<$t> for $name {
            fn from(v: $t) -> Self {
                match v {
                    $($val => $name::$v,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $t {
            fn from(v: $name) -> $t {
                match v {
                    $($name::$v => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

/// Declares a set of wire flags as a newtype with named constants.
macro_rules! wire_flags {
    ($(#[$m:meta])* $name:ident: $t:ty { $($(#[$vm:meta])* $c:ident = $val:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $t);

        impl $name {
            $($(#[$vm])* pub const $c: $name = $name($val);)*

            /// Whether every bit of `other` is set.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Bits set here that this implementation has no name for.
            pub fn unknown_bits(self) -> $t {
                self.0 & !(0 $(| $val)*)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, o: $name) -> $name {
                $name(self.0 | o.0)
            }
        }

        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: $name) {
                self.0 |= o.0;
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut names = Vec::new();
                $(if self.contains($name::$c) && $val != 0 { names.push(stringify!($c)); })*
                if self.unknown_bits() != 0 {
                    return write!(f, "{}({:#x}: {})", stringify!($name), self.0, names.join("|"));
                }
                write!(f, "{}({})", stringify!($name), names.join("|"))
            }
        }
    };
}

wire_enum! {
    /// An option sent by the client during the handshake (`NBD_OPT_*`).
    Opt: u32 {
        /// `NBD_OPT_EXPORT_NAME`: select an export and end the handshake (no error reply possible).
        ExportName = 1,
        /// `NBD_OPT_ABORT`: end the session.
        Abort = 2,
        /// `NBD_OPT_LIST`: list exports.
        List = 3,
        /// `NBD_OPT_PEEK_EXPORT` (withdrawn).
        PeekExport = 4,
        /// `NBD_OPT_STARTTLS`.
        StartTls = 5,
        /// `NBD_OPT_INFO`: describe an export.
        Info = 6,
        /// `NBD_OPT_GO`: describe and select an export, ending the handshake.
        Go = 7,
        /// `NBD_OPT_STRUCTURED_REPLY`: enable structured replies.
        StructuredReply = 8,
        /// `NBD_OPT_LIST_META_CONTEXT`: list metadata contexts.
        ListMetaContext = 9,
        /// `NBD_OPT_SET_META_CONTEXT`: select metadata contexts.
        SetMetaContext = 10,
        /// `NBD_OPT_EXTENDED_HEADERS` (not supported here).
        ExtendedHeaders = 11,
    }
}

wire_enum! {
    /// The type of a server's reply to an option (`NBD_REP_*`).
    OptReplyType: u32 {
        /// `NBD_REP_ACK`: the option is done.
        Ack = 1,
        /// `NBD_REP_SERVER`: one export, in reply to `LIST`.
        Server = 2,
        /// `NBD_REP_INFO`: one piece of export information.
        Info = 3,
        /// `NBD_REP_META_CONTEXT`: one metadata context.
        MetaContext = 4,
        /// `NBD_REP_ERR_UNSUP`: the option is unknown to the server.
        ErrUnsup = 0x8000_0001,
        /// `NBD_REP_ERR_POLICY`: forbidden by policy.
        ErrPolicy = 0x8000_0002,
        /// `NBD_REP_ERR_INVALID`: syntactically or semantically invalid.
        ErrInvalid = 0x8000_0003,
        /// `NBD_REP_ERR_PLATFORM`: not supported on this platform.
        ErrPlatform = 0x8000_0004,
        /// `NBD_REP_ERR_TLS_REQD`: TLS is required first.
        ErrTlsReqd = 0x8000_0005,
        /// `NBD_REP_ERR_UNKNOWN`: no such export.
        ErrUnknown = 0x8000_0006,
        /// `NBD_REP_ERR_SHUTDOWN`: the server is shutting down.
        ErrShutdown = 0x8000_0007,
        /// `NBD_REP_ERR_BLOCK_SIZE_REQD`: the client must honour block sizes.
        ErrBlockSizeReqd = 0x8000_0008,
        /// `NBD_REP_ERR_TOO_BIG`: the option's payload is too large.
        ErrTooBig = 0x8000_0009,
        /// `NBD_REP_ERR_EXT_HEADER_REQD`: extended headers are required.
        ErrExtHeaderReqd = 0x8000_000a,
    }
}

impl OptReplyType {
    /// Whether this reply type reports an error (bit 31 set).
    pub fn is_error(self) -> bool {
        u32::from(self) & 0x8000_0000 != 0
    }
}

wire_enum! {
    /// The kind of an `NBD_REP_INFO` item (`NBD_INFO_*`).
    InfoType: u16 {
        /// `NBD_INFO_EXPORT`: size and transmission flags.
        Export = 0,
        /// `NBD_INFO_NAME`: the canonical name.
        Name = 1,
        /// `NBD_INFO_DESCRIPTION`: a description for humans.
        Description = 2,
        /// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes.
        BlockSize = 3,
    }
}

wire_enum! {
    /// A transmission-phase command (`NBD_CMD_*`).
    Command: u16 {
        /// `NBD_CMD_READ`.
        Read = 0,
        /// `NBD_CMD_WRITE`.
        Write = 1,
        /// `NBD_CMD_DISC`: disconnect.
        Disc = 2,
        /// `NBD_CMD_FLUSH`.
        Flush = 3,
        /// `NBD_CMD_TRIM`.
        Trim = 4,
        /// `NBD_CMD_CACHE`.
        Cache = 5,
        /// `NBD_CMD_WRITE_ZEROES`.
        WriteZeroes = 6,
        /// `NBD_CMD_BLOCK_STATUS`.
        BlockStatus = 7,
        /// `NBD_CMD_RESIZE`.
        Resize = 8,
    }
}

wire_enum! {
    /// The type of a structured reply chunk (`NBD_REPLY_TYPE_*`).
    ReplyType: u16 {
        /// `NBD_REPLY_TYPE_NONE`: no payload, ends a reply.
        None = 0,
        /// `NBD_REPLY_TYPE_OFFSET_DATA`: data at an offset.
        OffsetData = 1,
        /// `NBD_REPLY_TYPE_OFFSET_HOLE`: a run of zeros at an offset.
        OffsetHole = 2,
        /// `NBD_REPLY_TYPE_BLOCK_STATUS`: extents of one metadata context.
        BlockStatus = 5,
        /// `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` (extended headers only).
        BlockStatusExt = 6,
        /// `NBD_REPLY_TYPE_ERROR`.
        Error = 0x8001,
        /// `NBD_REPLY_TYPE_ERROR_OFFSET`.
        ErrorOffset = 0x8002,
    }
}

wire_enum! {
    /// An error code in a reply; the values are Linux errno numbers by the protocol's definition.
    ErrorCode: u32 {
        /// `NBD_EPERM`.
        Perm = 1,
        /// `NBD_EIO`.
        Io = 5,
        /// `NBD_ENOMEM`.
        NoMem = 12,
        /// `NBD_EINVAL`.
        Inval = 22,
        /// `NBD_ENOSPC`.
        NoSpc = 28,
        /// `NBD_EOVERFLOW`.
        Overflow = 75,
        /// `NBD_ENOTSUP`.
        NotSup = 95,
        /// `NBD_ESHUTDOWN`.
        Shutdown = 108,
    }
}

wire_flags! {
    /// Flags the server sends in its greeting.
    HandshakeFlags: u16 {
        /// `NBD_FLAG_FIXED_NEWSTYLE`.
        FIXED_NEWSTYLE = 1;
        /// `NBD_FLAG_NO_ZEROES`: the 124 padding bytes after `EXPORT_NAME` may be left out.
        NO_ZEROES = 2;
    }
}

wire_flags! {
    /// Flags the client answers the greeting with.
    ClientFlags: u32 {
        /// `NBD_FLAG_C_FIXED_NEWSTYLE`.
        FIXED_NEWSTYLE = 1;
        /// `NBD_FLAG_C_NO_ZEROES`.
        NO_ZEROES = 2;
    }
}

wire_flags! {
    /// Per-export transmission flags (`NBD_FLAG_*`).
    TransmissionFlags: u16 {
        /// `NBD_FLAG_HAS_FLAGS`: always set.
        HAS_FLAGS = 1;
        /// `NBD_FLAG_READ_ONLY`.
        READ_ONLY = 1 << 1;
        /// `NBD_FLAG_SEND_FLUSH`.
        SEND_FLUSH = 1 << 2;
        /// `NBD_FLAG_SEND_FUA`.
        SEND_FUA = 1 << 3;
        /// `NBD_FLAG_ROTATIONAL`.
        ROTATIONAL = 1 << 4;
        /// `NBD_FLAG_SEND_TRIM`.
        SEND_TRIM = 1 << 5;
        /// `NBD_FLAG_SEND_WRITE_ZEROES`.
        SEND_WRITE_ZEROES = 1 << 6;
        /// `NBD_FLAG_SEND_DF`: the server honours `NBD_CMD_FLAG_DF`.
        SEND_DF = 1 << 7;
        /// `NBD_FLAG_CAN_MULTI_CONN`: several connections see one consistent export.
        CAN_MULTI_CONN = 1 << 8;
        /// `NBD_FLAG_SEND_RESIZE`.
        SEND_RESIZE = 1 << 9;
        /// `NBD_FLAG_SEND_CACHE`.
        SEND_CACHE = 1 << 10;
        /// `NBD_FLAG_SEND_FAST_ZERO`.
        SEND_FAST_ZERO = 1 << 11;
        /// `NBD_FLAG_BLOCK_STAT_PAYLOAD`.
        BLOCK_STAT_PAYLOAD = 1 << 12;
    }
}

wire_flags! {
    /// Per-command flags (`NBD_CMD_FLAG_*`).
    CmdFlags: u16 {
        /// `NBD_CMD_FLAG_FUA`.
        FUA = 1;
        /// `NBD_CMD_FLAG_NO_HOLE`.
        NO_HOLE = 1 << 1;
        /// `NBD_CMD_FLAG_DF`: reply to a read with a single content chunk.
        DF = 1 << 2;
        /// `NBD_CMD_FLAG_REQ_ONE`: one block status descriptor is enough.
        REQ_ONE = 1 << 3;
        /// `NBD_CMD_FLAG_FAST_ZERO`.
        FAST_ZERO = 1 << 4;
        /// `NBD_CMD_FLAG_PAYLOAD_LEN`.
        PAYLOAD_LEN = 1 << 5;
    }
}

wire_flags! {
    /// Flags of a structured reply chunk.
    ReplyFlags: u16 {
        /// `NBD_REPLY_FLAG_DONE`: the last chunk of a reply.
        DONE = 1;
    }
}

wire_flags! {
    /// The status of an extent in the `base:allocation` context.
    AllocFlags: u32 {
        /// `NBD_STATE_HOLE`: not allocated.
        HOLE = 1;
        /// `NBD_STATE_ZERO`: reads as zeros.
        ZERO = 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_round_trip() {
        for v in [0u32, 1, 7, 11, 12, 0xdead] {
            assert_eq!(u32::from(Opt::from(v)), v);
        }
        assert_eq!(Opt::from(99), Opt::Unknown(99));
        assert_eq!(Command::from(7), Command::BlockStatus);
        assert_eq!(u16::from(ReplyType::from(0x8002)), 0x8002);
        assert!(OptReplyType::ErrUnknown.is_error());
        assert!(!OptReplyType::Info.is_error());
        assert_eq!(ErrorCode::from(22), ErrorCode::Inval);
    }

    #[test]
    fn flags_know_their_bits() {
        let f = TransmissionFlags::HAS_FLAGS | TransmissionFlags::READ_ONLY;
        assert!(f.contains(TransmissionFlags::READ_ONLY));
        assert!(!f.contains(TransmissionFlags::CAN_MULTI_CONN));
        assert_eq!(f.unknown_bits(), 0);
        assert_eq!(TransmissionFlags(1 << 15).unknown_bits(), 1 << 15);
        assert_eq!(format!("{f:?}"), "TransmissionFlags(HAS_FLAGS|READ_ONLY)");
    }
}

/// A range of an export with its `base:allocation` status, in absolute offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Where it starts.
    pub offset: u64,
    /// How long it is.
    pub length: u64,
    /// Its status.
    pub flags: AllocFlags,
}

impl Extent {
    /// Where it ends (exclusive).
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }

    /// Whether it reads as zeros, so copying it moves no data.
    pub fn is_zero(&self) -> bool {
        self.flags.contains(AllocFlags::ZERO)
    }
}
