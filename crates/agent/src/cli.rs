//! The command line, and the dispatch from it to the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{daemon, device, serve, sync, tunnel};

/// osm-agent: the conversion-host agent of osm (serve, sync, tunnel, device).
#[derive(Debug, Parser)]
#[command(name = "osm-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export a device read-only over NBD on a private Unix socket.
    Serve {
        /// The block device or image file.
        #[arg(long)]
        device: PathBuf,
        /// The socket to create (mode 0600; its directory must be, or is created, 0700).
        #[arg(long)]
        socket: PathBuf,
        /// The export name.
        #[arg(long)]
        export: String,
        /// Run in the background; return once the socket is listening.
        #[arg(long, requires = "pid_file")]
        daemon: bool,
        /// Where the background process writes its pid (with --daemon).
        #[arg(long, requires = "daemon")]
        pid_file: Option<PathBuf>,
        /// Refuse unless --device is the disk attached with this serial (a volume id), found as
        /// udev names it under ${OSM_DEV_ROOT}/dev/disk/by-id/ (virtio-<first 20 characters>, or
        /// scsi-0QEMU_QEMU_HARDDISK_<serial> on virtio-scsi).
        #[arg(long)]
        expect_serial: Option<String>,
        /// Serve the free space of recognised filesystems (ext2/3/4, XFS, swap, inside MBR/GPT
        /// partitions and LVM) as holes; prints what was recognised as a JSON line first.
        #[arg(long)]
        sparsify: bool,
        /// The zstd level of data sent to sync clients that accept compression.
        #[arg(long, default_value_t = sync::DEFAULT_LEVEL, value_parser = clap::value_parser!(i32).range(-7..=19))]
        compression_level: i32,
    },
    /// Stop background serves or tunnels, all at once, and wait for them to exit.
    Stop {
        /// The pid file one wrote; repeat it for several.
        #[arg(long, required = true)]
        pid_file: Vec<PathBuf>,
        /// Seconds to wait after SIGTERM.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Make a local device or file hold exactly a source's bytes, proven by chunk digests;
    /// prints JSON lines.
    Sync {
        /// The source: nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME. Repeat it, one per
        /// tunnel to the same agent export, to carry the data over several connections.
        #[arg(long, required = true)]
        from: Vec<String>,
        /// The device or file to write (a missing file is created).
        #[arg(long)]
        to: PathBuf,
        /// Write the proven manifest (every chunk digest and the root) here, atomically.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// A scan of --to made ahead by `osm-agent scan`: where it still holds (same disk, not
        /// written since, a sample read again matches), the destination is not read again. The
        /// file is removed before anything is written; a missing file means none.
        #[arg(long)]
        scanned: Option<PathBuf>,
        /// Bytes per chunk.
        #[arg(long, default_value_t = 1 << 20)]
        chunk_size: u32,
        /// Bytes per block, the unit in which a chunk holding other data is patched.
        #[arg(long, default_value_t = 4096)]
        block_size: u32,
        /// Do not accept compressed data.
        #[arg(long)]
        no_compression: bool,
        /// Do not read back what was written (the result is then not proven).
        #[arg(long)]
        no_verify: bool,
        /// The digests' seed, 16 hex digits: the migrator draws one per transfer, so that no
        /// guest can craft chunks whose digests collide, and every sync of the transfer compares.
        #[arg(long, default_value = "0000000000000000", value_parser = parse_seed)]
        seed: u64,
        /// Connections to an NBD server that allows several, when --from is given once.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 2.0)]
        progress_interval: f64,
        /// Seconds a peer may stay silent before the sync fails.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Digest every chunk of a device or file, with the leaves a sync patches by, ahead of a
    /// `sync --scanned` into it (a warm cutover's, so that its downtime does not read the
    /// destination); prints a JSON line.
    Scan {
        /// The device or file.
        #[arg(long)]
        device: PathBuf,
        /// Where to write the scan (atomically, mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Bytes per chunk: the sync's.
        #[arg(long, default_value_t = 1 << 20)]
        chunk_size: u32,
        /// The digests' seed, 16 hex digits: the sync's.
        #[arg(long, default_value = "0000000000000000", value_parser = parse_seed)]
        seed: u64,
    },
    /// Wait for an attached volume and print its device path.
    Device {
        /// The volume id: the disk serial Nova gives it (virtio-blk keeps its first 20 characters).
        #[arg(long)]
        serial: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Make a remote Unix socket reachable as a local one over OpenSSH: each connection runs
    /// `osm-agent bridge` on the remote host through its own ssh.
    Tunnel {
        /// The socket on the remote host.
        #[arg(long)]
        remote_socket: PathBuf,
        /// The socket to create here.
        #[arg(long)]
        local_socket: PathBuf,
        /// The remote host.
        #[arg(long)]
        host: String,
        /// Its SSH port.
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The login.
        #[arg(long)]
        user: String,
        /// The private key file.
        #[arg(long)]
        identity: PathBuf,
        /// The known_hosts file with the remote host key.
        #[arg(long)]
        known_hosts: PathBuf,
        /// The agent on the remote host (it runs the bridge).
        #[arg(long)]
        remote_agent: PathBuf,
        /// Run in the background; return once a first connection reached the remote socket.
        #[arg(long, requires = "pid_file")]
        daemon: bool,
        /// Where to write the tunnel's pid (with --daemon); ssh's messages go to PID_FILE.log.
        #[arg(long, requires = "daemon")]
        pid_file: Option<PathBuf>,
    },
    /// The remote end of a tunnel connection (the link key's forced command): reads a socket
    /// path from the first line of stdin and carries stdin and stdout to and from that socket,
    /// which must lie inside --root.
    Bridge {
        /// The directory every reachable socket lies in (the agent's directory, ~/.osm).
        #[arg(long)]
        root: PathBuf,
    },
}

fn parse_seed(s: &str) -> std::result::Result<u64, String> {
    if s.len() != 16 {
        return Err("a seed is 16 hex digits".into());
    }
    u64::from_str_radix(s, 16).map_err(|_| "a seed is 16 hex digits".into())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            device,
            socket,
            export,
            daemon: _,
            pid_file,
            sparsify,
            expect_serial,
            compression_level,
        } => {
            if let Some(serial) = &expect_serial {
                device::check_expected(&device, serial)?;
            }
            serve::run(serve::ServeOptions {
                device,
                socket,
                export,
                daemon: pid_file,
                sparsify,
                compression_level,
            })
        }
        Command::Stop { pid_file, timeout } => {
            daemon::stop(&pid_file, Duration::from_secs(timeout))
        }
        Command::Sync {
            from,
            to,
            manifest,
            scanned,
            chunk_size,
            block_size,
            no_compression,
            no_verify,
            seed,
            connections,
            progress_interval,
            timeout,
        } => sync::run(sync::SyncOptions {
            seed,
            from,
            to,
            manifest,
            scanned,
            chunk_size,
            block_size,
            compression: !no_compression,
            verify: !no_verify,
            connections,
            progress_interval: Duration::from_secs_f64(if progress_interval.is_finite() {
                progress_interval.clamp(0.05, 3600.0)
            } else {
                2.0
            }),
            timeout: Duration::from_secs(timeout.max(1)),
        }),
        Command::Scan {
            device,
            out,
            chunk_size,
            seed,
        } => sync::prescan::run(&sync::prescan::ScanOptions {
            device,
            out,
            chunk_size,
            seed,
        }),
        Command::Device { serial, timeout } => {
            let p = device::wait(&serial, Duration::from_secs(timeout))?;
            println!("{}", p.display());
            Ok(())
        }
        Command::Tunnel {
            remote_socket,
            local_socket,
            host,
            port,
            user,
            identity,
            known_hosts,
            remote_agent,
            daemon: _,
            pid_file,
        } => tunnel::run(tunnel::TunnelOptions {
            remote_socket,
            local_socket,
            host,
            port,
            user,
            identity,
            known_hosts,
            remote_agent,
            daemon: pid_file,
        }),
        Command::Bridge { root } => tunnel::bridge(&root),
    }
}
