//! `osm-agent tunnel`: a remote Unix socket forwarded to a local one by OpenSSH.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{daemon, serve};

/// What `tunnel` was asked to do.
#[derive(Debug, Clone)]
pub struct TunnelOptions {
    /// The socket on the remote host.
    pub remote_socket: PathBuf,
    /// The socket to create here.
    pub local_socket: PathBuf,
    /// The remote host.
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The login.
    pub user: String,
    /// The private key.
    pub identity: PathBuf,
    /// The known_hosts file holding the remote host key.
    pub known_hosts: PathBuf,
    /// Detach and write this pid file once the local socket exists.
    pub daemon: Option<PathBuf>,
}

/// How long a detached tunnel may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The ssh command line: no shell, host keys checked against the given file only, no password
/// prompts, and a fast AEAD cipher (the data is already the bottleneck's payload).
pub fn ssh_command(o: &TunnelOptions) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-N")
        .args(["-F", "none"])
        .args(["-o", "ExitOnForwardFailure=yes"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", o.known_hosts.display()))
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "StreamLocalBindUnlink=yes"])
        .args(["-o", "ServerAliveInterval=15"])
        .args(["-o", "ServerAliveCountMax=4"])
        .args(["-c", "aes128-gcm@openssh.com"])
        .arg("-L")
        .arg(format!(
            "{}:{}",
            o.local_socket.display(),
            o.remote_socket.display()
        ))
        .arg("-i")
        .arg(&o.identity)
        .arg("-p")
        .arg(o.port.to_string())
        .arg(format!("{}@{}", o.user, o.host));
    c
}

/// Runs the tunnel: in the foreground (ssh replaces this process), or detached once the local
/// socket exists.
pub fn run(o: TunnelOptions) -> Result<()> {
    for (what, p) in [("identity", &o.identity), ("known_hosts", &o.known_hosts)] {
        if !p.is_file() {
            bail!("the {what} file {} does not exist", p.display());
        }
    }
    serve::private_dir(&o.local_socket)?;
    serve::clear_stale_socket(&o.local_socket)?;
    let mut cmd = ssh_command(&o);
    let Some(pid_file) = &o.daemon else {
        let e = cmd.exec();
        return Err(e).context("running ssh");
    };
    let log = log_path(pid_file);
    let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    // Its own process group: a Ctrl-C meant for the caller does not reach the tunnel.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .context("starting ssh")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let msg = fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "ssh exited ({status}) before forwarding {}: {}",
                o.local_socket.display(),
                msg.trim()
            );
        }
        if o.local_socket.exists() {
            daemon::write_pid_file(pid_file, child.id() as i32)?;
            return Ok(());
        }
        if start.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "ssh did not create {} within {}s",
                o.local_socket.display(),
                START_TIMEOUT.as_secs()
            );
        }
        sleep(Duration::from_millis(50));
    }
}

/// Where a detached tunnel's ssh writes its messages: beside the pid file.
pub fn log_path(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".log");
    PathBuf::from(s)
}
