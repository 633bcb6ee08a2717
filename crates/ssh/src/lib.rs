/*!
Reaching conversion hosts over SSH, with the `ssh2` crate (libssh2).

- [`Host`] says where and as whom; [`Host::connect`] opens a [`Conn`] after checking the host key
  against a known_hosts file ([`HostKeyPolicy`]: verify, or trust on first use and record it). A key
  that changed is refused with an error that says what to do.
- [`Conn::run`] runs a command given as an argument vector: every argument is shell-quoted with
  [`quote`], so a name of a VM, volume or network never reaches a shell unquoted.
- [`Conn::stream`] runs a long command and hands each line of its stdout to a callback (the copy's
  progress).
- [`Conn::upload`] writes a file atomically on the host (temporary name, then rename) when its sha256
  differs from the local one; [`Conn::read_file`] reads one back, bytes as they are.
- No operation waits forever: every call fails, naming the host and the command, once the host has
  been silent for [`Conn::silence`] (a minute by default; [`Conn::set_silence`]), and a command's
  stdout and stderr are drained together, so neither can stall the other.

```no_run
use osm_ssh::{Host, HostKeyPolicy};
use std::time::Duration;

let host = Host::new("192.0.2.10", 22, "cloud-user", "/data/conversion/key", "/data/known_hosts");
let conn = host.connect(HostKeyPolicy::Verify, Duration::from_secs(30))?;
let out = conn.run(&["ls", "-l", "/dev/disk/by-id/virtio-0123 name; $(id)"])?;
println!("{}", out.stdout);
# Ok::<(), osm_ssh::SshError>(())
```
*/
#![deny(missing_docs)]

mod exec;
mod files;
mod known_hosts;
mod session;

use std::path::PathBuf;
use std::time::Duration;

use ssh2::Session;

pub use exec::{command_line, quote, Output};
pub use files::sha256_file;
pub use session::{Host, HostKeyPolicy};

/// How long [`Host::wait_reachable`] keeps retrying a host that refuses the key.
pub const AUTH_GRACE: Duration = Duration::from_secs(30);
/// How long a host may stay silent during an operation, by default.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(60);
/// How often an idle session sends a keepalive, so that firewalls keep it.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What failed while talking to a conversion host. Every variant names the host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {host}: {source}")]
    Connect {
        /// `user@address:port`.
        host: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The SSH handshake or authentication failed.
    #[error("SSH to {host} failed during {stage}: {message}")]
    Session {
        /// `user@address:port`.
        host: String,
        /// handshake, authentication, ...
        stage: &'static str,
        /// libssh2's message.
        message: String,
    },
    /// The host presented a key different from the one recorded.
    #[error("the SSH host key of {host} does not match the one recorded in {known_hosts}: refusing to connect. If the conversion host was rebuilt on purpose, remove its old key with `ssh-keygen -R '{entry}' -f {known_hosts}` and run again; otherwise someone may be intercepting the connection")]
    HostKeyChanged {
        /// `user@address:port`.
        host: String,
        /// The known_hosts file.
        known_hosts: PathBuf,
        /// The known_hosts entry name (`[addr]:port` or `addr`).
        entry: String,
    },
    /// The host's key is not recorded and the policy is to verify only.
    #[error("the SSH host key of {host} is not in {known_hosts}; deploy the conversion hosts first (it records their keys) or add the key yourself")]
    HostKeyUnknown {
        /// `user@address:port`.
        host: String,
        /// The known_hosts file.
        known_hosts: PathBuf,
    },
    /// Reading or writing the known_hosts file failed.
    #[error("known_hosts file {path}: {message}")]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A command ran and failed.
    #[error("command `{command}` on {host} exited with status {status}: {stderr}")]
    Command {
        /// `user@address:port`.
        host: String,
        /// The command line as sent (quoted).
        command: String,
        /// Its exit status.
        status: i32,
        /// The end of its stderr.
        stderr: String,
    },
    /// The host said nothing for too long during an operation.
    #[error("{host} did not answer for {} s while {doing}; it may be down or overloaded", .silence.as_secs())]
    Silent {
        /// `user@address:port`.
        host: String,
        /// What was being done (the command line).
        doing: String,
        /// How long it was silent.
        silence: Duration,
    },
    /// Reading or writing a channel failed.
    #[error("SSH channel to {host} failed while {doing}: {message}")]
    Channel {
        /// `user@address:port`.
        host: String,
        /// What was being done.
        doing: String,
        /// The error.
        message: String,
    },
    /// An argument holds a NUL byte, which no command line can carry.
    #[error(
        "argument {argument:?} holds a NUL byte, which no command line can carry; nothing was run"
    )]
    Nul {
        /// The argument.
        argument: String,
    },
    /// A local file could not be read.
    #[error("cannot read local file {path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An authenticated SSH session to one host.
pub struct Conn {
    session: Session,
    host: Host,
    silence: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("host", &self.host.label())
            .finish()
    }
}
