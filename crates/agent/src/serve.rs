//! `osm-agent serve`: a device exported read-only over NBD on a private Unix socket, and the
//! source side of the sync protocol on the same socket.

use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use anyhow::{bail, Context, Result};
use osm_nbd::{BlockSize, Export, Server, Stream, TransmissionFlags};
use osm_sync::UPGRADE_OPTION;

use crate::disk::Device;
use crate::sync::SyncServer;
use crate::{daemon, sys, zero};

/// Checks (or creates, mode 0700) the directory that will hold a private socket.
pub fn private_dir(socket: &Path) -> Result<PathBuf> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            // The parents take the umask's mode; the last component must be exactly 0700.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", dir.display())),
        Ok(m) => {
            if !m.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            if m.uid() != sys::euid() || m.mode() & 0o077 != 0 {
                bail!(
                    "refusing to use {}: it is owned by uid {} with mode {:o}; it must be owned by uid {} with mode 0700, so no other user can reach the socket",
                    dir.display(),
                    m.uid(),
                    m.mode() & 0o7777,
                    sys::euid()
                );
            }
        }
    }
    Ok(dir.to_path_buf())
}

/// Removes a socket file left behind by a dead process; fails if something still listens there
/// or the path is not a socket.
pub fn clear_stale_socket(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", path.display())),
        Ok(m) if !m.file_type().is_socket() => {
            bail!("{} exists and is not a socket", path.display())
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                bail!("{} is in use by another server", path.display());
            }
            fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))
        }
    }
}

/// Binds a listening socket at `path` with mode 0600 in a private directory.
pub fn listen_private(path: &Path) -> Result<UnixListener> {
    private_dir(path)?;
    clear_stale_socket(path)?;
    let old = sys::umask(0o177);
    let bound = UnixListener::bind(path);
    sys::umask(old);
    let listener = bound.with_context(|| format!("listening on {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What `serve` was asked to do.
#[derive(Debug)]
pub struct ServeOptions {
    /// The device or image.
    pub device: PathBuf,
    /// The socket to listen on.
    pub socket: PathBuf,
    /// The export name.
    pub export: String,
    /// Detach and write this pid file once listening.
    pub daemon: Option<PathBuf>,
    /// Serve free filesystem space as holes.
    pub sparsify: bool,
    /// The zstd level of data sent to sync clients.
    pub compression_level: i32,
}

/// The signals that end `serve` cleanly.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Runs `serve`: in the foreground until SIGTERM/SIGINT, or detached with a pid file.
pub fn run(opts: ServeOptions) -> Result<()> {
    // Blocked before the socket exists (a caller may signal as soon as it sees it) and before
    // any thread starts, so every thread inherits the mask and only the waiter receives them.
    sys::block_signals(&STOP_SIGNALS).context("blocking signals")?;
    let mut device = Device::open(&opts.device)?;
    if opts.sparsify {
        device = sparsify(device, &opts.device)?;
    }
    let export = Export {
        name: opts.export.clone(),
        description: format!("{} (read-only)", opts.device.display()),
        size: device.size(),
        // Read-only, so any number of connections see the same bytes: multi-conn is safe.
        flags: TransmissionFlags::READ_ONLY
            | TransmissionFlags::CAN_MULTI_CONN
            | TransmissionFlags::SEND_DF,
        block_size: Some(BlockSize {
            min: 1,
            preferred: zero::BLOCK as u32,
            max: osm_nbd::MAX_PAYLOAD,
        }),
    };
    let device = Arc::new(device);
    let mut server = Server::new();
    server.add_export(export, device.clone());
    server.with_upgrade(
        UPGRADE_OPTION,
        Arc::new(SyncServer::new(device, opts.compression_level)),
    );
    // Binding before detaching means the socket exists once the command returns.
    let listener = listen_private(&opts.socket)?;
    let socket = opts.socket.clone();
    match &opts.daemon {
        None => serve_until_signal(server, listener, socket, None),
        Some(pid_file) => {
            let pf = pid_file.clone();
            daemon::daemonize(pid_file, move |ready| {
                serve_until_signal(server, listener, socket, Some((pf, ready)))
            })
        }
    }
}

/// Reads the device's allocation maps (partition tables, LVM, ext2/3/4, XFS, swap) and serves the
/// free space as holes. Prints what was recognised as one JSON line on stdout, for the caller's log.
fn sparsify(device: Device, path: &std::path::Path) -> Result<Device> {
    // A second handle without O_DIRECT: the scan's reads are small and unaligned.
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening {} for the free-space scan", path.display()))?;
    let map = osm_fsmap::scan(&file, device.size());
    let findings: Vec<serde_json::Value> = map
        .findings
        .iter()
        .map(|f| serde_json::json!({"offset": f.offset, "length": f.length, "kind": f.kind, "detail": f.detail, "free_bytes": f.free_bytes}))
        .collect();
    println!(
        "{}",
        serde_json::json!({"event": "sparsify", "size": device.size(), "free_bytes": map.free_bytes(), "summary": map.summary(), "findings": findings})
    );
    Ok(device.with_free_ranges(map.free))
}

/// Daemon mode: the pid file, and the call that tells the waiting parent we are ready.
type Detached = (PathBuf, Box<dyn FnOnce() -> Result<()>>);

fn serve_until_signal(
    server: Server,
    listener: UnixListener,
    socket: PathBuf,
    detached: Option<Detached>,
) -> Result<()> {
    let pid_file = match detached {
        Some((pid_file, ready)) => {
            ready()?;
            Some(pid_file)
        }
        None => None,
    };
    let server = Arc::new(server);
    thread::spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(s) => {
                    let server = Arc::clone(&server);
                    thread::spawn(move || {
                        if let Err(e) = server.serve(Stream::Unix(s)) {
                            eprintln!("osm-agent serve: connection ended: {e}");
                        }
                    });
                }
                Err(e) => eprintln!("osm-agent serve: accept: {e}"),
            }
        }
    });
    sys::wait_signal(&STOP_SIGNALS).context("waiting for a signal")?;
    let _ = fs::remove_file(&socket);
    if let Some(p) = pid_file {
        let _ = fs::remove_file(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_refuses_loose_permissions() {
        let t = tempfile::tempdir().unwrap();
        let loose = t.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).unwrap();
        let err = private_dir(&loose.join("s.sock")).unwrap_err().to_string();
        assert!(err.contains("mode 755"), "{err}");
        let fresh = t.path().join("a/b");
        private_dir(&fresh.join("s.sock")).unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }
}
