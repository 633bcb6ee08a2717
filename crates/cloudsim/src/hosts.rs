//! Conversion hosts backed by a real OpenSSH server.
//!
//! A server that is a simulated conversion host gets a directory `DIR/hosts/<server id>/` with
//! `home/` (its `$HOME`, mode 0700, holding `.ssh/authorized_keys`), `dev/disk/by-id/` (symlinks
//! to attached volumes' files) and `etc/` (sshd config, host key, pid and log files). One
//! `/usr/sbin/sshd -D` per host listens on the host's own loopback address (and on its floating
//! IPs when those are loopback addresses) at the simulator's `--ssh-port`; its `SetEnv` gives
//! sessions `HOME=<host dir>/home` and `OSM_DEV_ROOT=<host dir>`.
//!
//! sshd processes are spawned and stopped by one dedicated thread: the parent-death signal that
//! takes them down when the simulator dies is tied to the spawning thread, and tokio's blocking
//! threads come and go.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::SimError;

/// Where sshd lives on Debian.
pub const SSHD: &str = "/usr/sbin/sshd";

/// What a host's sshd needs.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Server id (the key of the process table).
    pub server_id: String,
    /// `DIR/hosts/<server id>`.
    pub dir: PathBuf,
    /// Addresses to listen on: the host address first, then loopback floating IPs.
    pub addrs: Vec<IpAddr>,
    /// Port.
    pub port: u16,
    /// Content of `authorized_keys`.
    pub authorized_keys: String,
}

enum Cmd {
    Start(HostSpec, oneshot::Sender<Result<(), SimError>>),
    Stop(String, oneshot::Sender<()>),
    StopAll(oneshot::Sender<()>),
}

/// Handle to the thread that owns the sshd processes.
pub struct HostManager {
    tx: mpsc::Sender<Cmd>,
}

impl Default for HostManager {
    fn default() -> Self {
        HostManager::new()
    }
}

impl HostManager {
    /// Starts the owner thread.
    pub fn new() -> HostManager {
        let (tx, rx) = mpsc::channel::<Cmd>();
        std::thread::Builder::new()
            .name("sshd-owner".into())
            .spawn(move || owner(rx))
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("osm-cloudsim: cannot start the sshd thread: {e}"));
        HostManager { tx }
    }

    /// (Re)starts the sshd of a host and waits until it accepts connections.
    pub async fn start(&self, spec: HostSpec) -> Result<(), SimError> {
        let id = spec.server_id.clone();
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Start(spec, tx))
            .map_err(|_| SimError::Sshd {
                server: id.clone(),
                message: "sshd thread is gone".into(),
            })?;
        rx.await.map_err(|_| SimError::Sshd {
            server: id,
            message: "sshd thread is gone".into(),
        })?
    }

    /// Stops the sshd of a host (and its sessions).
    pub async fn stop(&self, server_id: &str) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Stop(server_id.to_string(), tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops every sshd.
    pub async fn stop_all(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::StopAll(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A running sshd and the addresses it listens on.
struct Running {
    child: Child,
    listen: Vec<SocketAddr>,
}

fn owner(rx: mpsc::Receiver<Cmd>) {
    let mut procs: HashMap<String, Running> = HashMap::new();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Cmd::Start(spec, reply) => {
                let r = match procs.remove(&spec.server_id) {
                    // Already running: reload with the new addresses so open sessions survive.
                    Some(mut running) => match reload_sshd(&spec, &mut running) {
                        Ok(()) => {
                            procs.insert(spec.server_id.clone(), running);
                            Ok(())
                        }
                        Err(e) => {
                            kill(running.child);
                            Err(e)
                        }
                    },
                    None => start_sshd(&spec).map(|child| {
                        procs.insert(
                            spec.server_id.clone(),
                            Running {
                                child,
                                listen: listen_addrs(&spec),
                            },
                        );
                    }),
                };
                let _ = reply.send(r);
            }
            Cmd::Stop(id, reply) => {
                if let Some(r) = procs.remove(&id) {
                    kill(r.child);
                }
                let _ = reply.send(());
            }
            Cmd::StopAll(reply) => {
                for (_, r) in procs.drain() {
                    kill(r.child);
                }
                let _ = reply.send(());
            }
        }
    }
    for (_, r) in procs.drain() {
        kill(r.child);
    }
}

fn listen_addrs(spec: &HostSpec) -> Vec<SocketAddr> {
    spec.addrs
        .iter()
        .map(|a| SocketAddr::new(*a, spec.port))
        .collect()
}

/// Processes descended from `pid` (sshd's per-connection children call setsid(), so they are
/// not in its process group).
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The command may contain spaces and parentheses; fields resume after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<i32>().ok())
            {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// Stops an sshd like a powered-off machine: the listener, its process group and every session
/// it forked; then reaps it.
fn kill(mut child: Child) {
    let pid = child.id() as i32;
    let sessions = descendants(pid);
    // SAFETY: plain signal syscalls on processes we started (and their children).
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
        for s in &sessions {
            libc::kill(*s, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait();
                break;
            }
        }
    }
    for s in sessions {
        // SAFETY: as above; a session that already ended makes this a no-op (ESRCH).
        unsafe {
            libc::kill(s, libc::SIGKILL);
        }
    }
}

/// Rewrites the config and sends SIGHUP: sshd re-executes itself with the new listen addresses
/// and keeps its pid, and established sessions (separate processes) are untouched.
fn reload_sshd(spec: &HostSpec, running: &mut Running) -> Result<(), SimError> {
    let err = |m: String| SimError::Sshd {
        server: spec.server_id.clone(),
        message: m,
    };
    prepare_dir(&spec.dir, &spec.authorized_keys)?;
    let cfg = spec.dir.join("etc/sshd_config");
    std::fs::write(&cfg, sshd_config(spec))
        .map_err(|e| err(format!("writing {}: {e}", cfg.display())))?;
    let wanted = listen_addrs(spec);
    if wanted == running.listen {
        return Ok(());
    }
    // SAFETY: signal to the sshd we started.
    unsafe {
        libc::kill(running.child.id() as i32, libc::SIGHUP);
    }
    let dropped: Vec<SocketAddr> = running
        .listen
        .iter()
        .filter(|a| !wanted.contains(a))
        .copied()
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(err(format!("sshd exited on reload ({status})")));
        }
        let up = wanted
            .iter()
            .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
        let down = dropped
            .iter()
            .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err());
        if up && down {
            break;
        }
        if Instant::now() > deadline {
            return Err(err(format!("sshd did not move to {wanted:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.listen = wanted;
    Ok(())
}

/// Creates the host directory layout (idempotent).
pub fn prepare_dir(dir: &Path, authorized_keys: &str) -> Result<(), SimError> {
    let io = |what: &str, e| SimError::io(format!("{what} in {}", dir.display()), e);
    for sub in ["home/.ssh", "dev/disk/by-id", "etc"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| io("creating directories", e))?;
    }
    std::fs::set_permissions(dir.join("home"), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io("chmod home", e))?;
    std::fs::set_permissions(
        dir.join("home/.ssh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .map_err(|e| io("chmod .ssh", e))?;
    let ak = dir.join("home/.ssh/authorized_keys");
    std::fs::write(&ak, authorized_keys).map_err(|e| io("writing authorized_keys", e))?;
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("chmod authorized_keys", e))?;
    Ok(())
}

/// The sshd configuration of a host.
pub fn sshd_config(spec: &HostSpec) -> String {
    let d = spec.dir.display();
    let mut s = String::from("# Written by osm-cloudsim for one simulated conversion host.\n");
    for a in &spec.addrs {
        s.push_str(&format!(
            "ListenAddress {}\n",
            SocketAddr::new(*a, spec.port)
        ));
    }
    s.push_str(&format!(
        "HostKey {d}/etc/ssh_host_ed25519_key\n\
         PidFile {d}/etc/sshd.pid\n\
         AuthorizedKeysFile {d}/home/.ssh/authorized_keys\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         AllowStreamLocalForwarding yes\n\
         AllowTcpForwarding yes\n\
         StreamLocalBindUnlink yes\n\
         PrintMotd no\n\
         MaxStartups 100:30:200\n\
         MaxSessions 50\n\
         Subsystem sftp internal-sftp\n\
         SetEnv HOME={d}/home OSM_DEV_ROOT={d}\n"
    ));
    s
}

fn start_sshd(spec: &HostSpec) -> Result<Child, SimError> {
    let err = |m: String| SimError::Sshd {
        server: spec.server_id.clone(),
        message: m,
    };
    prepare_dir(&spec.dir, &spec.authorized_keys)?;
    let etc = spec.dir.join("etc");
    let key = etc.join("ssh_host_ed25519_key");
    if !key.exists() {
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("osm-cloudsim-{}", spec.server_id),
                "-f",
            ])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("running ssh-keygen: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    let cfg = etc.join("sshd_config");
    std::fs::write(&cfg, sshd_config(spec))
        .map_err(|e| err(format!("writing {}: {e}", cfg.display())))?;
    kill_stale(&etc.join("sshd.pid"), &cfg);
    // The privilege separation directory sshd insists on.
    std::fs::create_dir_all("/run/sshd").map_err(|e| err(format!("creating /run/sshd: {e}")))?;
    let log = etc.join("sshd.log");
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D")
        .arg("-f")
        .arg(&cfg)
        .arg("-E")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("spawning {SSHD}: {e}")))?;
    // Ready when every listen address accepts a connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pending: Vec<SocketAddr> = spec
        .addrs
        .iter()
        .map(|a| SocketAddr::new(*a, spec.port))
        .collect();
    while !pending.is_empty() {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err(format!("sshd exited ({status}): {}", tail.trim())));
        }
        pending.retain(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err());
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            kill(child);
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err(format!(
                "sshd did not listen on {pending:?}: {}",
                tail.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Kills an sshd left over by a simulator that died without cleaning up (identified by its pid
/// file and its command line naming our config).
fn kill_stale(pidfile: &Path, cfg: &Path) {
    let Ok(text) = std::fs::read_to_string(pidfile) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    if String::from_utf8_lossy(&cmdline).contains(&*cfg.to_string_lossy()) {
        // SAFETY: signal to a process we verified is our stale sshd.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(pidfile);
}

/// Whether `addr:port` can be bound now (no other sshd or simulator uses it).
pub fn addr_free(addr: IpAddr, port: u16) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(addr, port)).is_ok()
}

/// Makes `DIR/hosts/<id>/dev/disk/by-id/<serial name>` point at a volume file, named as udev names
/// a disk on the host's bus ([`serial_name`]).
pub fn link_volume(
    host_dir: &Path,
    volume_id: &str,
    bus: Option<&str>,
    target: &Path,
) -> std::io::Result<()> {
    let dir = host_dir.join("dev/disk/by-id");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(serial_name(volume_id, bus));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, link)
}

/// Removes the by-id link of a volume, whichever bus named it.
pub fn unlink_volume(host_dir: &Path, volume_id: &str) {
    for bus in [None, Some("scsi")] {
        let _ = std::fs::remove_file(
            host_dir
                .join("dev/disk/by-id")
                .join(serial_name(volume_id, bus)),
        );
    }
}

/// The by-id name udev gives a disk whose serial is the volume id: on virtio-scsi
/// (`hw_disk_bus=scsi`) `scsi-0QEMU_QEMU_HARDDISK_<id>`, from the identification page that
/// libvirt fills with the whole serial; on virtio-blk `virtio-<first 20 characters>`, all the
/// kernel keeps.
pub fn serial_name(volume_id: &str, bus: Option<&str>) -> String {
    if bus == Some("scsi") {
        return format!("scsi-0QEMU_QEMU_HARDDISK_{volume_id}");
    }
    let n: String = volume_id.chars().take(20).collect();
    format!("virtio-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_contract_settings() {
        let spec = HostSpec {
            server_id: "s".into(),
            dir: PathBuf::from("/tmp/x/hosts/s"),
            addrs: vec![
                "127.201.0.2".parse().unwrap(),
                "127.50.0.9".parse().unwrap(),
            ],
            port: 2222,
            authorized_keys: String::new(),
        };
        let c = sshd_config(&spec);
        for needle in [
            "ListenAddress 127.201.0.2:2222",
            "ListenAddress 127.50.0.9:2222",
            "AuthorizedKeysFile /tmp/x/hosts/s/home/.ssh/authorized_keys",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowStreamLocalForwarding yes",
            "SetEnv HOME=/tmp/x/hosts/s/home OSM_DEV_ROOT=/tmp/x/hosts/s",
            "PidFile /tmp/x/hosts/s/etc/sshd.pid",
        ] {
            assert!(c.contains(needle), "missing {needle}");
        }
        assert_eq!(
            serial_name("0123456789abcdefghijklmnop", None),
            "virtio-0123456789abcdefghij"
        );
        assert_eq!(
            serial_name("0123456789abcdefghijklmnop", Some("scsi")),
            "scsi-0QEMU_QEMU_HARDDISK_0123456789abcdefghijklmnop"
        );
    }
}
