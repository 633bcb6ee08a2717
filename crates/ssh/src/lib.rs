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

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, KnownHostKeyFormat, Session};

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
    #[error("argument {argument:?} holds a NUL byte, which no command line can carry; nothing was run")]
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

/// How to treat the host's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The key must already be in the known_hosts file.
    Verify,
    /// An unknown host's key is recorded (first deploy); a known host's key must match.
    TrustOnFirstUse,
}

/// Where a conversion host is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Address (IP or name).
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file.
    pub key: PathBuf,
    /// known_hosts file the host key is checked against.
    pub known_hosts: PathBuf,
}

impl Host {
    /// A host description.
    pub fn new(
        address: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        key: impl Into<PathBuf>,
        known_hosts: impl Into<PathBuf>,
    ) -> Host {
        Host {
            address: address.into(),
            port,
            user: user.into(),
            key: key.into(),
            known_hosts: known_hosts.into(),
        }
    }

    /// `user@address:port`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// The name of the host's entry in a known_hosts file, as OpenSSH writes it.
    pub fn known_hosts_entry(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    /// Connects, checks the host key, and authenticates with the private key. Retries the TCP
    /// connection until `timeout` (a host that is still booting refuses connections).
    pub fn connect(&self, policy: HostKeyPolicy, timeout: Duration) -> Result<Conn, SshError> {
        let tcp = self.tcp(timeout)?;
        let mut session = Session::new().map_err(|e| self.session_err("setup", e))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(
            u32::try_from(timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1000),
        );
        session
            .handshake()
            .map_err(|e| self.session_err("handshake", e))?;
        self.check_host_key(&session, policy)?;
        session
            .userauth_pubkey_file(&self.user, None, &self.key, None)
            .map_err(|e| self.session_err("authentication with the conversion host key", e))?;
        if !session.authenticated() {
            return Err(SshError::Session {
                host: self.label(),
                stage: "authentication",
                message: "the server did not accept the key".into(),
            });
        }
        session.set_keepalive(false, KEEPALIVE.as_secs() as u32);
        let mut conn = Conn {
            session,
            host: self.clone(),
            silence: DEFAULT_SILENCE,
        };
        conn.set_silence(DEFAULT_SILENCE);
        Ok(conn)
    }

    /// Waits until the host accepts an SSH session (a booting VM), up to `timeout`. A refused key is
    /// retried for [`AUTH_GRACE`] only: a booting VM gets its key moments after sshd starts, while a
    /// wrong user or key stays wrong, and the operator should hear so without waiting out `timeout`.
    pub fn wait_reachable(
        &self,
        policy: HostKeyPolicy,
        timeout: Duration,
    ) -> Result<Conn, SshError> {
        let deadline = Instant::now() + timeout;
        let mut refused_since = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connect(policy, left.max(Duration::from_secs(5))) {
                Ok(c) => return Ok(c),
                Err(
                    e @ (SshError::HostKeyChanged { .. }
                    | SshError::HostKeyUnknown { .. }
                    | SshError::KnownHosts { .. }),
                ) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e @ SshError::Session { stage, .. }) if stage.starts_with("authentication") => {
                    if refused_since.get_or_insert_with(Instant::now).elapsed() >= AUTH_GRACE {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    fn tcp(&self, timeout: Duration) -> Result<TcpStream, SshError> {
        let deadline = Instant::now() + timeout;
        let connect_err = |source| SshError::Connect {
            host: self.label(),
            source,
        };
        let addrs: Vec<_> = (self.address.as_str(), self.port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        );
        loop {
            for a in &addrs {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1));
                match TcpStream::connect_timeout(a, left) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(connect_err(last));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn session_err(&self, stage: &'static str, e: ssh2::Error) -> SshError {
        SshError::Session {
            host: self.label(),
            stage,
            message: e.message().to_string(),
        }
    }

    fn check_host_key(&self, session: &Session, policy: HostKeyPolicy) -> Result<(), SshError> {
        let kh_err = |message: String| SshError::KnownHosts {
            path: self.known_hosts.clone(),
            message,
        };
        let (key, key_type) = session.host_key().ok_or_else(|| SshError::Session {
            host: self.label(),
            stage: "handshake",
            message: "the server sent no host key".into(),
        })?;
        let mut known = session
            .known_hosts()
            .map_err(|e| kh_err(e.message().to_string()))?;
        if self.known_hosts.exists() {
            known
                .read_file(&self.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| kh_err(format!("cannot be read: {}", e.message())))?;
        }
        match known.check_port(&self.address, self.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(SshError::HostKeyChanged {
                host: self.label(),
                known_hosts: self.known_hosts.clone(),
                entry: self.known_hosts_entry(),
            }),
            CheckResult::NotFound if policy == HostKeyPolicy::TrustOnFirstUse => {
                let fmt = key_format(key_type).ok_or_else(|| {
                    kh_err(format!(
                        "host key type {key_type:?} of {} cannot be recorded",
                        self.label()
                    ))
                })?;
                let line = format!(
                    "{} {} {}\n",
                    self.known_hosts_entry(),
                    fmt_name(fmt),
                    base64(key)
                );
                append_known_host(&self.known_hosts, &line).map_err(|e| kh_err(e.to_string()))?;
                Ok(())
            }
            CheckResult::NotFound => Err(SshError::HostKeyUnknown {
                host: self.label(),
                known_hosts: self.known_hosts.clone(),
            }),
            CheckResult::Failure => Err(kh_err(format!(
                "checking the key of {} failed",
                self.label()
            ))),
        }
    }
}

fn key_format(t: HostKeyType) -> Option<KnownHostKeyFormat> {
    match t {
        HostKeyType::Rsa => Some(KnownHostKeyFormat::SshRsa),
        HostKeyType::Dss => Some(KnownHostKeyFormat::SshDss),
        HostKeyType::Ecdsa256 => Some(KnownHostKeyFormat::Ecdsa256),
        HostKeyType::Ecdsa384 => Some(KnownHostKeyFormat::Ecdsa384),
        HostKeyType::Ecdsa521 => Some(KnownHostKeyFormat::Ecdsa521),
        HostKeyType::Ed25519 => Some(KnownHostKeyFormat::Ed25519),
        HostKeyType::Unknown => None,
    }
}

fn fmt_name(f: KnownHostKeyFormat) -> &'static str {
    match f {
        KnownHostKeyFormat::SshRsa => "ssh-rsa",
        KnownHostKeyFormat::SshDss => "ssh-dss",
        KnownHostKeyFormat::Ecdsa256 => "ecdsa-sha2-nistp256",
        KnownHostKeyFormat::Ecdsa384 => "ecdsa-sha2-nistp384",
        KnownHostKeyFormat::Ecdsa521 => "ecdsa-sha2-nistp521",
        KnownHostKeyFormat::Ed25519 => "ssh-ed25519",
        _ => "unknown",
    }
}

/// Appends a line, creating the file 0600 (it decides whom the migration trusts).
fn append_known_host(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quotes one argument for a POSIX shell: the result is always a single word with the exact bytes
/// of `arg`, whatever it holds (spaces, `$(...)`, quotes, newlines). A NUL byte is refused: no
/// command line can carry it (the remote shell would end the argument there, running another
/// command than the one asked for).
pub fn quote(arg: &str) -> Result<String, SshError> {
    if arg.contains('\0') {
        return Err(SshError::Nul {
            argument: arg.to_string(),
        });
    }
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return Ok(arg.to_string());
    }
    Ok(format!("'{}'", arg.replace('\'', r"'\''")))
}

/// The command line for an argument vector, each argument quoted.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> Result<String, SshError> {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map(|words| words.join(" "))
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// An authenticated SSH session to one host.
pub struct Conn {
    session: Session,
    host: Host,
    silence: Duration,
}

/// What a command printed, as bytes.
struct Raw {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Raw {
    fn text(self) -> Output {
        Output {
            status: self.status,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("host", &self.host.label())
            .finish()
    }
}

impl Conn {
    /// The host this session is connected to.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// How long the host may stay silent during one operation before it fails.
    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// Sets [`Conn::silence`] (at least one second).
    pub fn set_silence(&mut self, d: Duration) {
        self.silence = d.max(Duration::from_secs(1));
        // Bounds every blocking libssh2 call (opening channels, sending input, closing).
        self.session
            .set_timeout(u32::try_from(self.silence.as_millis()).unwrap_or(u32::MAX));
    }

    fn channel_err(&self, doing: &str, e: impl std::fmt::Display) -> SshError {
        SshError::Channel {
            host: self.host.label(),
            doing: doing.to_string(),
            message: e.to_string(),
        }
    }

    /// Runs `argv` (quoted) and returns its output, whatever its exit status.
    pub fn run_unchecked<S: AsRef<str>>(&self, argv: &[S]) -> Result<Output, SshError> {
        self.exec(&command_line(argv)?, None, |_| {}, self.silence)
            .map(Raw::text)
    }

    /// Runs `argv` (quoted); a non-zero exit status is an error carrying stderr.
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, |_| {}, self.silence)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted), a command known to stay silent for up to `quiet` (it waits for
    /// something); a non-zero exit status is an error.
    pub fn run_quiet<S: AsRef<str>>(
        &self,
        argv: &[S],
        quiet: Duration,
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, |_| {}, self.silence + quiet)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted) with `input` on its stdin; a non-zero exit status is an error.
    pub fn run_with_input<S: AsRef<str>>(
        &self,
        argv: &[S],
        input: &mut dyn Read,
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, Some(input), |_| {}, self.silence)?;
        self.checked(cmd, out.text())
    }

    /// Runs `argv` (quoted), calling `on_line` with each line of stdout as it arrives.
    pub fn stream<S: AsRef<str>>(
        &self,
        argv: &[S],
        on_line: impl FnMut(&str),
    ) -> Result<Output, SshError> {
        let cmd = command_line(argv)?;
        let out = self.exec(&cmd, None, on_line, self.silence)?;
        self.checked(cmd, out.text())
    }

    /// The bytes of a file on the host.
    pub fn read_file(&self, remote: &str) -> Result<Vec<u8>, SshError> {
        let cmd = command_line(&["cat", "--", remote])?;
        let out = self.exec(&cmd, None, |_| {}, self.silence)?;
        if out.status != 0 {
            let text = out.text();
            return Err(self
                .checked(cmd, text)
                .err()
                .unwrap_or_else(|| self.channel_err("reading a file", "cat failed")));
        }
        Ok(out.stdout)
    }

    fn checked(&self, command: String, out: Output) -> Result<Output, SshError> {
        if out.status == 0 {
            return Ok(out);
        }
        let tail: String = {
            let s = out.stderr.trim();
            let start = s.char_indices().rev().nth(1999).map_or(0, |(i, _)| i);
            s[start..].to_string()
        };
        Err(SshError::Command {
            host: self.host.label(),
            command,
            status: out.status,
            stderr: tail,
        })
    }

    fn silent(&self, command: &str, silence: Duration) -> SshError {
        SshError::Silent {
            host: self.host.label(),
            doing: format!("running `{command}`"),
            silence,
        }
    }

    fn exec(
        &self,
        command: &str,
        input: Option<&mut dyn Read>,
        mut on_line: impl FnMut(&str),
        silence: Duration,
    ) -> Result<Raw, SshError> {
        let timed_out = |e: &ssh2::Error| {
            matches!(
                e.code(),
                ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_TIMEOUT)
            )
        };
        let mut ch = self
            .session
            .channel_session()
            .map_err(|e| self.channel_err("opening a session", e))?;
        ch.exec(command).map_err(|e| {
            if timed_out(&e) {
                self.silent(command, self.silence)
            } else {
                self.channel_err(&format!("starting `{command}`"), e)
            }
        })?;
        if let Some(input) = input {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| self.channel_err("reading the local input", e))?;
                if n == 0 {
                    break;
                }
                ch.write_all(&buf[..n]).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        self.silent(command, self.silence)
                    } else {
                        self.channel_err("sending input", e)
                    }
                })?;
            }
            ch.send_eof()
                .map_err(|e| self.channel_err("closing input", e))?;
        }
        // Both streams are read as data arrives, without blocking on either: a command that
        // fills its stderr while we wait for stdout (or the reverse) would otherwise stall.
        self.session.set_blocking(false);
        let drained = self.drain(&mut ch, command, &mut on_line, silence);
        self.session.set_blocking(true);
        let (stdout, stderr) = drained?;
        ch.wait_close().map_err(|e| {
            if timed_out(&e) {
                self.silent(command, self.silence)
            } else {
                self.channel_err("closing the channel", e)
            }
        })?;
        let status = ch
            .exit_status()
            .map_err(|e| self.channel_err("reading the exit status", e))?;
        Ok(Raw {
            status,
            stdout,
            stderr,
        })
    }

    fn drain(
        &self,
        ch: &mut ssh2::Channel,
        command: &str,
        on_line: &mut impl FnMut(&str),
        silence: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), SshError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut line_start = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut out_done, mut err_done) = (false, false);
        let mut heard = Instant::now();
        let mut kept_alive = Instant::now();
        while !(out_done && err_done) {
            let mut progressed = false;
            for (id, done) in [(0, &mut out_done), (1, &mut err_done)] {
                if *done {
                    continue;
                }
                match ch.stream(id).read(&mut buf) {
                    // libssh2 may also return 0 when a packet for something else arrived.
                    Ok(0) if ch.eof() => *done = true,
                    Ok(0) => {}
                    Ok(n) => {
                        progressed = true;
                        if id == 0 {
                            stdout.extend_from_slice(&buf[..n]);
                            while let Some(nl) =
                                stdout[line_start..].iter().position(|&b| b == b'\n')
                            {
                                let line =
                                    String::from_utf8_lossy(&stdout[line_start..line_start + nl]);
                                on_line(line.trim_end_matches('\r'));
                                line_start += nl + 1;
                            }
                        } else {
                            stderr.extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.channel_err("reading output", e)),
                }
            }
            if progressed {
                heard = Instant::now();
                continue;
            }
            if heard.elapsed() >= silence {
                return Err(self.silent(command, silence));
            }
            if kept_alive.elapsed() >= KEEPALIVE {
                // Only keeps middleboxes from dropping an idle session; silence ends the wait.
                let _ = self.session.keepalive_send();
                kept_alive = Instant::now();
            }
            wait_readable(&self.session, Duration::from_millis(200));
        }
        if line_start < stdout.len() {
            let line = String::from_utf8_lossy(&stdout[line_start..]);
            on_line(line.trim_end_matches(['\n', '\r']));
        }
        Ok((stdout, stderr))
    }

    /// The login's home directory on the host.
    pub fn home(&self) -> Result<String, SshError> {
        let out = self.exec("printf %s \"$HOME\"", None, |_| {}, self.silence)?;
        let out = self.checked("printf %s \"$HOME\"".into(), out.text())?;
        if out.stdout.starts_with('/') {
            Ok(out.stdout)
        } else {
            Err(self.channel_err(
                "finding the home directory",
                format!("unexpected answer {:?}", out.stdout),
            ))
        }
    }

    /// The sha256 of a remote file, or None when it does not exist.
    pub fn remote_sha256(&self, path: &str) -> Result<Option<String>, SshError> {
        let out = self.run_unchecked(&["sha256sum", "--", path])?;
        if out.status != 0 {
            return Ok(None);
        }
        Ok(out.stdout.split_whitespace().next().map(str::to_string))
    }

    /// Uploads `local` to `remote` with `mode` unless the remote file already has the same sha256.
    /// The file appears atomically (written under a temporary name, then renamed). Returns whether it
    /// uploaded.
    pub fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<bool, SshError> {
        let local_err = |source| SshError::Local {
            path: local.to_path_buf(),
            source,
        };
        let want = sha256_file(local).map_err(local_err)?;
        if self.remote_sha256(remote)?.as_deref() == Some(want.as_str()) {
            return Ok(false);
        }
        let dir = match remote.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => remote[..i].to_string(),
            None => ".".to_string(),
        };
        let tmp = format!("{remote}.upload-{}", std::process::id());
        self.run(&["mkdir", "-p", "--", &dir])?;
        let mut f = std::fs::File::open(local).map_err(local_err)?;
        self.run_with_input(
            &["sh", "-c", "umask 077 && cat > \"$1\"", "sh", &tmp],
            &mut f,
        )?;
        let got = self.remote_sha256(&tmp)?;
        if got.as_deref() != Some(want.as_str()) {
            let _ = self.run_unchecked(&["rm", "-f", "--", &tmp]);
            return Err(self.channel_err(
                &format!("uploading {}", local.display()),
                "the checksum of the uploaded file differs",
            ));
        }
        self.run(&["chmod", &format!("{mode:o}"), "--", &tmp])?;
        self.run(&["mv", "-f", "--", &tmp, remote])?;
        Ok(true)
    }

    /// Writes `content` to `remote` (mode `mode`) atomically.
    pub fn write_file(&self, remote: &str, content: &[u8], mode: u32) -> Result<(), SshError> {
        let tmp = format!("{remote}.write-{}", std::process::id());
        let mut input: &[u8] = content;
        self.run_with_input(
            &["sh", "-c", "umask 077 && cat > \"$1\"", "sh", &tmp],
            &mut input,
        )?;
        self.run(&["chmod", &format!("{mode:o}"), "--", &tmp])?;
        self.run(&["mv", "-f", "--", &tmp, remote])?;
        Ok(())
    }
}

/// Waits until the session's socket has something to read (or `max` passes).
fn wait_readable(session: &Session, max: Duration) {
    use std::os::unix::io::AsRawFd;
    let mut events = libc::POLLIN;
    if session
        .block_directions()
        .eq(&ssh2::BlockDirections::Outbound)
        || session.block_directions() == ssh2::BlockDirections::Both
    {
        events |= libc::POLLOUT;
    }
    let mut fd = libc::pollfd {
        fd: session.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd; poll only writes its revents.
    unsafe {
        libc::poll(&mut fd, 1, max.as_millis() as libc::c_int);
    }
}

/// The sha256 of a local file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte_in_one_word() {
        let q = |s| quote(s).expect("quotable");
        assert_eq!(q("plain-name_1.2"), "plain-name_1.2");
        assert_eq!(q(""), "''");
        assert_eq!(q("web 01; $(id)"), "'web 01; $(id)'");
        assert_eq!(q("it's"), r"'it'\''s'");
        assert_eq!(q("a\nb"), "'a\nb'");
        assert_eq!(
            command_line(&["echo", "a b", "`id`"]).expect("quotable"),
            "echo 'a b' '`id`'"
        );
    }

    #[test]
    fn a_nul_byte_is_refused_not_cut() {
        let e = quote("vol\0; rm -rf /").expect_err("refused");
        assert!(matches!(e, SshError::Nul { .. }), "{e:?}");
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(command_line(&["cat", "--", "a\0b"]).is_err());
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn known_hosts_entry_brackets_non_default_ports() {
        let h = Host::new("10.0.0.5", 22, "u", "/k", "/kh");
        assert_eq!(h.known_hosts_entry(), "10.0.0.5");
        let h = Host::new("127.0.0.9", 2222, "u", "/k", "/kh");
        assert_eq!(h.known_hosts_entry(), "[127.0.0.9]:2222");
    }
}
