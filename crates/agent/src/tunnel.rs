//! `osm-agent tunnel` and `osm-agent bridge`: a remote Unix socket made reachable as a local one
//! over OpenSSH, with a key that can do nothing else.
//!
//! The tunnel listens on the local socket; each connection to it runs one `ssh` to the remote host,
//! whose command is `osm-agent bridge`: the bridge reads the socket's path from the first line of
//! its stdin, checks that it is a socket under the agent's directory, and carries bytes between its
//! stdin/stdout and that socket. The link key's `authorized_keys` line forces that command and turns
//! everything else off (`restrict`): it runs no other command, opens no port forward in either
//! direction (an `ssh -L` key could reach any TCP service the source host reaches), and reaches
//! no socket outside the agent's directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::{daemon, serve, sys};

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
    /// The agent on the remote host, which the bridge command runs.
    pub remote_agent: PathBuf,
    /// Detach and write this pid file once the local socket exists.
    pub daemon: Option<PathBuf>,
}

/// How long the first connection through a new tunnel may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest first line the bridge reads: a socket path.
const MAX_PATH_LINE: usize = 4096;
/// What an NBD server says first (fixed newstyle): the proof that the tunnel reaches an export.
const NBD_MAGIC: &[u8; 8] = b"NBDMAGIC";
/// The signals that end a tunnel cleanly.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// glibc's allocator settings for ssh. OpenSSH grows its buffers by allocating anew, copying and
/// wiping the old (`recallocarray`), and shrinks a buffer that emptied back to a few hundred bytes;
/// with glibc's defaults, the large ones come from fresh mappings or a heap top that is handed back
/// to the kernel, so the data crossing a tunnel is chased by page faults and page clearing. Keeping
/// freed memory for reuse took a third of ssh's CPU off a copy of 1 GiB (1.83 s to 1.22 s) and
/// two thirds off a re-sync's (0.47 s to 0.18 s), measured with `bench/copy/run.py`'s tunnels;
/// ssh's memory stays what its buffers reach (a few MiB). Other C libraries ignore the variable.
pub const SSH_MALLOC_TUNABLES: &str =
    "glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864";

/// The ssh command line of one connection: no pty, no escape character, no forwarding asked for,
/// host keys checked against the given file only, no password prompts, a fast AEAD cipher (the
/// data is the link's payload). `--` ends the options, so the destination is never read as one;
/// the remote command is the bridge, which the link key forces anyway.
pub fn ssh_command(o: &TunnelOptions) -> Command {
    let mut c = Command::new("ssh");
    c.env("GLIBC_TUNABLES", SSH_MALLOC_TUNABLES);
    c.arg("-T")
        .args(["-e", "none"])
        .args(["-F", "none"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", o.known_hosts.display()))
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "ClearAllForwardings=yes"])
        .args(["-o", "ServerAliveInterval=15"])
        .args(["-o", "ServerAliveCountMax=4"])
        .args(["-c", "aes128-gcm@openssh.com"])
        .arg("-i")
        .arg(&o.identity)
        .arg("-p")
        .arg(o.port.to_string())
        .arg("--")
        .arg(format!("{}@{}", o.user, o.host))
        .arg(&o.remote_agent)
        .arg("bridge")
        .arg("--root")
        .arg(remote_root(&o.remote_socket));
    c
}

/// The directory the bridge is asked to confine itself to when no forced command fixes it: the
/// socket's own directory.
fn remote_root(socket: &Path) -> PathBuf {
    socket
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
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

/// Refuses a remote path that the remote shell would not take as one word: ssh joins the command's
/// arguments with spaces for that shell, and these paths are osm's own (`$HOME/.osm/...`).
fn check_remote_path(what: &str, p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if !s.starts_with('/')
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+@%=:,".contains(&b))
    {
        bail!("the remote {what} {s:?} is not a plain absolute path; refused");
    }
    Ok(())
}

/// Runs the tunnel: in the foreground, or detached once the first connection through it reached
/// the remote export.
pub fn run(o: TunnelOptions) -> Result<()> {
    check_destination(&o.user, &o.host)?;
    check_remote_path("socket", &o.remote_socket)?;
    check_remote_path("agent", &o.remote_agent)?;
    for (what, p) in [("identity", &o.identity), ("known_hosts", &o.known_hosts)] {
        if !p.is_file() {
            bail!("the {what} file {} does not exist", p.display());
        }
    }
    // Blocked before any thread starts, so that only the waiter receives them.
    sys::block_signals(&STOP_SIGNALS).context("blocking signals")?;
    let log = match &o.daemon {
        Some(pid_file) => {
            let path = log_path(pid_file);
            Some(File::create(&path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let spare = probe(&o, log.as_ref())?;
    let listener = serve::listen_private(&o.local_socket)?;
    match o.daemon.clone() {
        None => carry_until_signal(o, listener, log, spare),
        Some(pid_file) => daemon::daemonize(&pid_file, move |ready| {
            ready()?;
            carry_until_signal(o, listener, log, spare)
        }),
    }
}

/// Where a detached tunnel's ssh processes write their messages: beside the pid file.
pub fn log_path(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".log");
    PathBuf::from(s)
}

fn stderr_for(log: Option<&File>) -> Result<Stdio> {
    Ok(match log {
        Some(f) => Stdio::from(f.try_clone().context("sharing the tunnel log")?),
        None => Stdio::inherit(),
    })
}

/// Starts one ssh to the bridge and hands it the remote socket's path.
fn connect(o: &TunnelOptions, log: Option<&File>) -> Result<Child> {
    let mut child = ssh_command(o)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr_for(log)?)
        .spawn()
        .context("starting ssh")?;
    let mut line = o.remote_socket.as_os_str().as_encoded_bytes().to_vec();
    line.push(b'\n');
    if let Some(stdin) = child.stdin.as_mut() {
        // A failure here shows as ssh's own error, which the caller reports.
        let _ = stdin.write_all(&line);
    }
    Ok(child)
}

/// The probe's connection, proven and kept for the first client, which it spares an SSH handshake
/// (a cutover's downtime waits for every connection of every volume): its ssh, and ssh's stdout,
/// from which the export's first bytes (`NBD_MAGIC`) were already read.
struct Spare {
    child: Child,
    out: ChildStdout,
}

/// One connection through the tunnel before it is declared up: it must reach the export (an NBD
/// server speaks first), so a refused key, a changed host key or a wrong path fail the command
/// that starts the tunnel, with ssh's words. The connection is kept for the first client.
fn probe(o: &TunnelOptions, log: Option<&File>) -> Result<Spare> {
    let mut child = connect(o, log)?;
    let mut out = child.stdout.take().context("ssh's stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut magic = [0u8; 8];
        let _ = tx.send(out.read_exact(&mut magic).map(|()| magic));
        out
    });
    let got = rx.recv_timeout(START_TIMEOUT);
    if matches!(&got, Ok(Ok(magic)) if magic == NBD_MAGIC) {
        // The reader has sent its answer and returns ssh's stdout, so no thread outlives this
        // (the tunnel forks next).
        let out = reader
            .join()
            .map_err(|_| anyhow!("the probe's reader panicked"))?;
        return Ok(Spare { child, out });
    }
    let _ = child.kill();
    let status = child.wait().ok();
    let _ = reader.join();
    match got {
        Ok(Ok(other)) => bail!(
            "the tunnel to {} reached something that is no export (it said {:?})",
            o.remote_socket.display(),
            String::from_utf8_lossy(&other)
        ),
        Ok(Err(_)) | Err(_) => {
            let said = o
                .daemon
                .as_ref()
                .and_then(|p| fs::read_to_string(log_path(p)).ok())
                .unwrap_or_default();
            bail!(
                "ssh to {}@{}:{} did not reach {} within {} s (ssh {}): {}",
                o.user,
                o.host,
                o.port,
                o.remote_socket.display(),
                START_TIMEOUT.as_secs(),
                status.map_or("did not exit".into(), |s| s.to_string()),
                said.trim()
            )
        }
    }
}

/// Accepts connections until a stop signal, each carried by its own ssh; the signal ends them all.
fn carry_until_signal(
    o: TunnelOptions,
    listener: UnixListener,
    log: Option<File>,
    spare: Spare,
) -> Result<()> {
    let children: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(vec![spare.child.id()]));
    let mut spare = Some(spare);
    let socket = o.local_socket.clone();
    let o = Arc::new(o);
    let log = Arc::new(log);
    let running = Arc::clone(&children);
    thread::spawn(move || {
        for conn in listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("osm-agent tunnel: accept: {e}");
                    continue;
                }
            };
            let (o, log, running) = (Arc::clone(&o), Arc::clone(&log), Arc::clone(&running));
            let spare = spare.take();
            thread::spawn(move || {
                if let Err(e) = carry(conn, &o, (*log).as_ref(), &running, spare) {
                    eprintln!("osm-agent tunnel: connection ended: {e:#}");
                }
            });
        }
    });
    sys::wait_signal(&STOP_SIGNALS).context("waiting for a signal")?;
    let _ = fs::remove_file(&socket);
    for pid in children.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = sys::kill(*pid as i32, libc::SIGTERM);
    }
    Ok(())
}

/// Carries one local connection through its own ssh (the probe's, for the first) until either
/// side ends.
fn carry(
    conn: UnixStream,
    o: &TunnelOptions,
    log: Option<&File>,
    running: &Mutex<Vec<u32>>,
    spare: Option<Spare>,
) -> Result<()> {
    let mut downstream = conn;
    let (mut child, mut from_ssh, spared) = match spare {
        Some(Spare { child, out }) => {
            // What the probe read is the export's first bytes, owed to this client.
            downstream
                .write_all(NBD_MAGIC)
                .context("replaying the export's greeting")?;
            (child, out, true)
        }
        None => {
            let mut child = connect(o, log)?;
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(child.id());
            let out = child.stdout.take().context("ssh's stdout")?;
            (child, out, false)
        }
    };
    let pid = child.id();
    let mut to_ssh = child.stdin.take().context("ssh's stdin")?;
    let mut upstream = downstream.try_clone().context("sharing the connection")?;
    let up = thread::spawn(move || {
        let _ = pump(&mut upstream, &mut to_ssh);
        // Dropping ssh's stdin sends the remote end an EOF.
    });
    let _ = pump(&mut from_ssh, &mut downstream);
    let _ = downstream.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
    let status = child.wait();
    running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
    if spared {
        // The probe's ssh was started before the tunnel forked: it is not this process's child
        // and cannot be waited for here.
        return Ok(());
    }
    status.map(drop).context("waiting for ssh")
}

/// `osm-agent bridge`: the remote end of a tunnel connection. Reads a socket path from the first
/// line of stdin, refuses it unless it is a socket inside `root` (symlinks resolved), then carries
/// stdin to the socket and the socket to stdout until both end.
pub fn bridge(root: &Path) -> Result<()> {
    let mut stdin = std::io::stdin();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    // Byte by byte: what follows the line is the connection's data, which must stay in stdin.
    loop {
        if stdin.read(&mut b).context("reading the socket path")? == 0 {
            bail!("no socket path was given");
        }
        if b[0] == b'\n' {
            break;
        }
        if line.len() >= MAX_PATH_LINE {
            bail!("the socket path is longer than {MAX_PATH_LINE} bytes");
        }
        line.push(b[0]);
    }
    let path = PathBuf::from(String::from_utf8(line).context("the socket path is not UTF-8")?);
    let socket = confined_socket(root, &path)?;
    let stream = UnixStream::connect(&socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let mut to_socket = stream.try_clone().context("sharing the socket")?;
    thread::spawn(move || {
        let _ = pump(&mut stdin, &mut to_socket);
        let _ = to_socket.shutdown(std::net::Shutdown::Write);
    });
    let mut from_socket = stream;
    pump(&mut from_socket, &mut std::io::stdout().lock())
        .map(drop)
        .context("carrying the socket to ssh")
}

/// Copies until `from` ends, flushing each piece: the peers wait for each other's messages, so
/// nothing may sit in a buffer. (Not `io::copy`: on Linux it may splice between a socket and a pipe,
/// and a failed splice ends the copy.)
fn pump(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
        total += n as u64;
    }
}

/// `path` if it is a socket whose directory lies inside `root`, both with symlinks resolved.
fn confined_socket(root: &Path, path: &Path) -> Result<PathBuf> {
    let root = fs::canonicalize(root).with_context(|| format!("resolving {}", root.display()))?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} is not a socket path", path.display());
    };
    let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let socket = dir.join(name);
    if !socket.starts_with(&root) {
        bail!(
            "{} is outside {}; this key reaches osm's sockets only",
            path.display(),
            root.display()
        );
    }
    let kind = fs::symlink_metadata(&socket)
        .with_context(|| format!("inspecting {}", socket.display()))?
        .file_type();
    if !kind.is_socket() {
        bail!("{} is not a socket", socket.display());
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(user: &str, host: &str) -> TunnelOptions {
        TunnelOptions {
            remote_socket: "/home/u/.osm/t1/boot.sock".into(),
            local_socket: "/l.sock".into(),
            host: host.into(),
            port: 22,
            user: user.into(),
            identity: "/k".into(),
            known_hosts: "/kh".into(),
            remote_agent: "/home/u/.osm/bin/osm-agent".into(),
            daemon: None,
        }
    }

    #[test]
    fn the_destination_comes_after_the_end_of_options_then_the_bridge() {
        let c = ssh_command(&options("root", "192.0.2.7"));
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let end = args.iter().position(|a| a == "--").expect("--");
        assert_eq!(
            &args[end..],
            [
                "--",
                "root@192.0.2.7",
                "/home/u/.osm/bin/osm-agent",
                "bridge",
                "--root",
                "/home/u/.osm/t1"
            ]
        );
        assert!(!args.iter().any(|a| a == "-L" || a == "-R" || a == "-D"));
        let tunables = c
            .get_envs()
            .find(|(k, _)| *k == "GLIBC_TUNABLES")
            .and_then(|(_, v)| v);
        assert_eq!(tunables, Some(std::ffi::OsStr::new(SSH_MALLOC_TUNABLES)));
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
        let mut o = options("root", "h");
        o.remote_socket = "/home/u/.osm/t1/$(id).sock".into();
        let e = run(o).expect_err("refused");
        assert!(e.to_string().contains("not a plain absolute path"), "{e}");
    }

    #[test]
    fn the_bridge_reaches_sockets_inside_its_root_only() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path().join("osm");
        fs::create_dir_all(root.join("t1")).expect("mkdir");
        let inside = root.join("t1/boot.sock");
        let _l = UnixListener::bind(&inside).expect("bind");
        assert_eq!(
            confined_socket(&root, &inside).expect("inside"),
            fs::canonicalize(&inside).expect("canon")
        );
        let outside = t.path().join("other.sock");
        let _o = UnixListener::bind(&outside).expect("bind");
        for bad in [
            outside.clone(),
            root.join("t1/../../other.sock"),
            root.join(".."),
        ] {
            assert!(confined_socket(&root, &bad).is_err(), "{}", bad.display());
        }
        std::os::unix::fs::symlink(&outside, root.join("t1/link.sock")).expect("symlink");
        assert!(confined_socket(&root, &root.join("t1/link.sock")).is_err());
        std::os::unix::fs::symlink(t.path(), root.join("escape")).expect("symlink");
        let e = confined_socket(&root, &root.join("escape/other.sock")).expect_err("refused");
        assert!(e.to_string().contains("osm's sockets only"), "{e}");
        fs::write(root.join("t1/plain"), b"").expect("write");
        let e = confined_socket(&root, &root.join("t1/plain")).expect_err("refused");
        assert!(e.to_string().contains("is not a socket"), "{e}");
    }
}
