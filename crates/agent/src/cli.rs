//! The command line, and the dispatch from it to the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{copy, daemon, device, serve, tunnel};

/// osm-agent: the conversion-host agent of osm (serve, copy, tunnel, device).
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
        /// ${OSM_DEV_ROOT}/dev/disk/by-id/virtio-<first 20 characters>.
        #[arg(long)]
        expect_serial: Option<String>,
        /// Serve the free space of recognised filesystems (ext2/3/4, XFS, swap, inside MBR/GPT
        /// partitions and LVM) as holes; prints what was recognised as a JSON line first.
        #[arg(long)]
        sparsify: bool,
    },
    /// Stop a background serve or tunnel and wait for it to exit.
    Stop {
        /// The pid file it wrote.
        #[arg(long)]
        pid_file: PathBuf,
        /// Seconds to wait after SIGTERM.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Copy an NBD export to a local device or file; prints JSON lines.
    Copy {
        /// nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME.
        #[arg(long)]
        from: String,
        /// The device or file to write (a missing file is created).
        #[arg(long)]
        to: PathBuf,
        /// Connections when the server allows multi-conn.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
        connections: u8,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 64)]
        requests: usize,
        /// Bytes per read request.
        #[arg(long, default_value_t = 1 << 20)]
        request_size: u64,
        /// The target is known to read as zeros (a fresh volume): skip writing zeros.
        #[arg(long)]
        target_is_zero: bool,
        /// Read both sides back and compare SHA-256.
        #[arg(long)]
        verify: bool,
        /// Record finished ranges in this file.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Skip the ranges the checkpoint records.
        #[arg(long, requires = "checkpoint")]
        resume: bool,
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 2.0)]
        progress_interval: f64,
    },
    /// Wait for an attached volume and print its device path.
    Device {
        /// The volume id (its first 20 characters are the virtio serial).
        #[arg(long)]
        serial: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Forward a remote Unix socket to a local one over OpenSSH.
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
        /// Run in the background; return once the local socket exists.
        #[arg(long, requires = "pid_file")]
        daemon: bool,
        /// Where to write ssh's pid (with --daemon); ssh's messages go to PID_FILE.log.
        #[arg(long, requires = "daemon")]
        pid_file: Option<PathBuf>,
    },
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
            })
        }
        Command::Stop { pid_file, timeout } => {
            daemon::stop(&pid_file, Duration::from_secs(timeout))
        }
        Command::Copy {
            from,
            to,
            connections,
            requests,
            request_size,
            target_is_zero,
            verify,
            checkpoint,
            resume,
            progress_interval,
        } => copy::run(copy::CopyOptions {
            from,
            to,
            connections: connections.into(),
            requests,
            request_size,
            target_is_zero,
            verify,
            checkpoint,
            resume,
            progress_interval: Duration::from_secs_f64(if progress_interval.is_finite() {
                progress_interval.clamp(0.05, 3600.0)
            } else {
                2.0
            }),
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
            daemon: pid_file,
        }),
    }
}
