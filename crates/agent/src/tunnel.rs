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
/// prompts, and a fast AEAD cipher (the data is already the bottleneck's payload). `--` ends the
/// options, so the destination is never read as one.
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
        .arg("--")
        .arg(format!("{}@{}", o.user, o.host));
    c
}

/// Refuses a user or host that ssh could take for an option (`-oProxyCommand=...`) or that is no
/// name at all: the destination is data, never a switch, even where `--` would already hold.
pub fn check_destination(user: &str, host: &str) -> Result<()> {
    for (what, v) in [("user", user), ("host", host)] {
        if v.is_empty() {
            bail!("the SSH {what} is empty");
        }
        if v.starts_with('-') {
            bail!(
                "the SSH {what} {v:?} starts with '-', which ssh would read as an option; refused"
            );
        }
        if v.chars().any(char::is_control) {
            bail!("the SSH {what} {v:?} holds a control character; refused");
        }
    }
    if host.contains('@') {
        bail!("the SSH host {host:?} holds '@'; refused");
    }
    Ok(())
}

/// Runs the tunnel: in the foreground (ssh replaces this process), or detached once the local
/// socket exists.
pub fn run(o: TunnelOptions) -> Result<()> {
    check_destination(&o.user, &o.host)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(user: &str, host: &str) -> TunnelOptions {
        TunnelOptions {
            remote_socket: "/r.sock".into(),
            local_socket: "/l.sock".into(),
            host: host.into(),
            port: 22,
            user: user.into(),
            identity: "/k".into(),
            known_hosts: "/kh".into(),
            daemon: None,
        }
    }

    #[test]
    fn the_destination_comes_after_the_end_of_options() {
        let c = ssh_command(&options("root", "192.0.2.7"));
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[args.len() - 2..], ["--", "root@192.0.2.7"]);
    }

    #[test]
    fn a_user_or_host_that_looks_like_an_option_is_refused() {
        for (user, host) in [
            ("-oProxyCommand=touch /tmp/x", "192.0.2.7"),
            ("root", "-oProxyCommand=touch /tmp/x"),
            ("", "192.0.2.7"),
            ("root", ""),
            ("ro\not", "192.0.2.7"),
            ("root", "a@b"),
        ] {
            let e = check_destination(user, host).expect_err("refused");
            assert!(e.to_string().starts_with("the SSH "), "{e}");
        }
        let e = check_destination("-x", "h").expect_err("refused");
        assert!(e.to_string().contains("would read as an option"), "{e}");
        check_destination("cloud-user", "2001:db8::7").expect("a plain login");
        assert!(run(options("-oProxyCommand=x", "h")).is_err());
    }
}
