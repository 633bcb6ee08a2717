//! `osm-cloudsim serve --state-dir DIR [--listen ADDR] [--ssh-port N] [--transition-ms N]
//! [--dirty-volumes CLOUD,...]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// OpenStack API simulator for osm's tests and demo.
#[derive(Parser)]
#[command(name = "osm-cloudsim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the clouds `src` and `dst` until SIGTERM/SIGINT; writes DIR/clouds.yaml once ready.
    Serve {
        /// State directory (created if missing; reused state survives restarts).
        #[arg(long)]
        state_dir: PathBuf,
        /// Listen address; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Port of the conversion hosts' sshd (each host has its own loopback address).
        #[arg(long, default_value_t = 2222)]
        ssh_port: u16,
        /// Duration of each status transition, in milliseconds.
        #[arg(long, default_value_t = 500)]
        transition_ms: u64,
        /// Log every request to stderr.
        #[arg(long, short)]
        verbose: bool,
        /// Directory of the conversion hosts' directories (default STATE_DIR/hosts); keep it short,
        /// since NBD socket paths under a host's home must fit in 108 bytes.
        #[arg(long)]
        hosts_dir: Option<PathBuf>,
        /// Clouds whose new empty volumes read as garbage instead of zeros, as on a Cinder backend
        /// that does not clear them (LVM thick, volume_clear=none); repeat or separate with commas.
        #[arg(long, value_name = "CLOUD", value_delimiter = ',')]
        dirty_volumes: Vec<String>,
    },
}

fn main() -> ExitCode {
    let Command::Serve {
        state_dir,
        listen,
        ssh_port,
        transition_ms,
        verbose,
        hosts_dir,
        dirty_volumes,
    } = Cli::parse().command;
    let cfg = osm_cloudsim::Config {
        state_dir,
        listen,
        ssh_port,
        transition: Duration::from_millis(transition_ms),
        verbose,
        hosts_dir,
        dirty_volumes,
    };
    match serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osm-cloudsim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cfg: osm_cloudsim::Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(osm_cloudsim::run(cfg));
    // A file copy still running on a blocking thread must not hold up the exit: the state on
    // disk already says what to redo.
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}
