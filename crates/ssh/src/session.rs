//! Opening a session: TCP with retries, the SSH handshake, key authentication, keepalives.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ssh2::Session;

use crate::{Conn, SshError, AUTH_GRACE, DEFAULT_SILENCE, KEEPALIVE};

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
}
