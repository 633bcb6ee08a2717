//! Conversion hosts as the import steps use them: the agent on them, NBD exports, the tunnel
//! between them, and the copy.
//!
//! Every path lives under the login's `$HOME/.osm/`; every command is an argument vector quoted by
//! osm-ssh, so no name reaches a shell unquoted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use osm_ssh::{Conn, Host, HostKeyPolicy, SshError};

use crate::device_access::{self, DeviceAccess};
use serde::{Deserialize, Serialize};

mod link;
mod steps;
pub use steps::Sparsified;

/// The longest wait for an attached volume's device to appear on a conversion host.
const FIND_DEVICE_MAX: Duration = Duration::from_secs(300);
pub use link::{ensure_link, known_host_lines, link_key_line};

/// What went wrong on a conversion host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// SSH failed.
    #[error("{role} conversion host {name}: {source}")]
    Ssh {
        /// `source` or `destination`.
        role: &'static str,
        /// The host's name.
        name: String,
        /// The SSH error.
        source: SshError,
    },
    /// The agent printed something unexpected.
    #[error("{role} conversion host {name}: {message}")]
    Agent {
        /// `source` or `destination`.
        role: &'static str,
        /// The host's name.
        name: String,
        /// What happened.
        message: String,
    },
    /// A login setting would be read as something else than a name (an option, another command).
    #[error("{role} conversion host {name}: {field} {value:?} {message}")]
    Setting {
        /// `source` or `destination`.
        role: &'static str,
        /// The host's name.
        name: String,
        /// The setting (`ssh_user`, `address`).
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        message: &'static str,
    },
    /// The SSH user cannot open attached volumes (see [`crate::device_access`]).
    #[error(
        "{role} conversion host {name}: {}",
        crate::device_access::refusal(user)
    )]
    DeviceAccess {
        /// `source` or `destination`.
        role: &'static str,
        /// The host's name.
        name: String,
        /// The SSH user.
        user: String,
    },
    /// A local file (the agent binary, the known_hosts file) is unusable.
    #[error("{path}: {message}")]
    Local {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A conversion host: what `os_conversion_host_info` returns plus how to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Server ID.
    #[serde(default)]
    pub id: String,
    /// Server name.
    #[serde(default)]
    pub name: String,
    /// Address to reach it (floating IP or access IPv4).
    pub address: String,
    /// SSH port.
    #[serde(default = "default_port")]
    pub ssh_port: u16,
}

fn default_port() -> u16 {
    22
}

/// How the migrator logs in to conversion hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// SSH user.
    pub user: String,
    /// Private key of the conversion hosts' keypair.
    pub key: PathBuf,
    /// The migrator's known_hosts for conversion hosts (`os_migrate_data_dir/known_hosts`).
    pub known_hosts: PathBuf,
    /// How unknown host keys are treated.
    pub policy: HostKeyPolicy,
    /// How long to keep trying to connect.
    pub timeout: Duration,
    /// How long a host may stay silent during one operation before it fails
    /// (`ssh_silence_timeout`).
    pub silence: Duration,
}

/// A connected conversion host.
pub struct ConvHost {
    conn: Conn,
    home: String,
    user: String,
    /// `source` or `destination`, for messages.
    pub role: &'static str,
    /// The host.
    pub spec: HostSpec,
}

impl std::fmt::Debug for ConvHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvHost")
            .field("role", &self.role)
            .field("spec", &self.spec)
            .finish()
    }
}

/// One line of `osm-agent sync`: `start`, `progress`, `done` or `error`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncEvent {
    /// `start`, `progress`, `done` or `error`.
    pub event: String,
    /// Percent of the disk settled.
    #[serde(default)]
    pub percent: f64,
    /// Bytes of the disk settled (found equal, zeroed or written).
    #[serde(default)]
    pub bytes_done: u64,
    /// The disk's size.
    #[serde(default)]
    pub bytes_total: u64,
    /// Bytes the destination agent read from its own disk.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes of data written.
    #[serde(default)]
    pub bytes_written: u64,
    /// Bytes zeroed.
    #[serde(default)]
    pub bytes_zeroed: u64,
    /// Bytes that crossed the link, both ways.
    #[serde(default)]
    pub bytes_on_wire: u64,
    /// Data bytes per byte on the wire.
    #[serde(default)]
    pub compression_ratio: f64,
    /// Chunks found equal on both sides.
    #[serde(default)]
    pub chunks_equal: u64,
    /// Chunks zeroed.
    #[serde(default)]
    pub chunks_zeroed: u64,
    /// Chunks written whole.
    #[serde(default)]
    pub chunks_written: u64,
    /// Chunks written in part.
    #[serde(default)]
    pub chunks_patched: u64,
    /// Throughput over the disk.
    #[serde(default)]
    pub mib_per_s: f64,
    /// Seconds left, estimated.
    #[serde(default)]
    pub eta_s: Option<f64>,
    /// Seconds since the sync started.
    #[serde(default)]
    pub elapsed_s: f64,
    /// The failure (`error`).
    #[serde(default)]
    pub message: Option<String>,
    /// The manifest's root digest (`done`).
    #[serde(default)]
    pub root: Option<String>,
    /// Whether what was written was read back and proven (`done`).
    #[serde(default)]
    pub verified: bool,
    /// Connections used (`start`).
    #[serde(default)]
    pub connections: u64,
    /// Bytes the source knows free (`start`).
    #[serde(default)]
    pub free_bytes: u64,
    /// `agent` or `nbd` (`start`).
    #[serde(default)]
    pub source: Option<String>,
    /// What became of a scan made ahead: `used`, `ignored: <why>` or `none` (`start`).
    #[serde(default)]
    pub prescan: Option<String>,
}

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncSpec<'a> {
    /// The local sockets of the tunnels to the source export, one per connection.
    pub sockets: &'a [String],
    /// The export's name.
    pub export: &'a str,
    /// The destination device.
    pub device: &'a str,
    /// Where the agent writes the manifest on the host.
    pub manifest: &'a str,
    /// Where the agent's pid goes, so a cleanup can stop it.
    pub pid_file: &'a str,
    /// Where a scan of the device made ahead may be ([`ConvHost::scan_ahead`]): the sync takes
    /// it, and uses it if it still holds.
    pub scanned: &'a str,
    /// Accept compressed data.
    pub compression: bool,
    /// Read back and prove what was written.
    pub verify: bool,
    /// The transfer's digest seed (16 hex digits).
    pub seed: &'a str,
}

impl ConvHost {
    /// Connects to a conversion host, checking its key.
    pub fn connect(
        role: &'static str,
        spec: &HostSpec,
        login: &Login,
    ) -> Result<ConvHost, HostError> {
        ConvHost::open(role, spec, login, None)
    }

    /// Connects to a conversion host, checking its key; `home`, the login's home directory as an
    /// earlier connection found it, spares the command that asks for it.
    pub fn open(
        role: &'static str,
        spec: &HostSpec,
        login: &Login,
        home: Option<&str>,
    ) -> Result<ConvHost, HostError> {
        for (field, value) in [("ssh_user", &login.user), ("address", &spec.address)] {
            if let Some(message) = unusable_login_word(value) {
                return Err(HostError::Setting {
                    role,
                    name: spec.name.clone(),
                    field,
                    value: value.clone(),
                    message,
                });
            }
        }
        let host = Host::new(
            spec.address.clone(),
            spec.ssh_port,
            login.user.clone(),
            &login.key,
            &login.known_hosts,
        );
        let ssh = |source| HostError::Ssh {
            role,
            name: spec.name.clone(),
            source,
        };
        let mut conn = host
            .wait_reachable(login.policy, login.timeout)
            .map_err(ssh)?;
        conn.set_silence(login.silence);
        let home = match home {
            Some(h) => h.to_string(),
            None => conn.home().map_err(ssh)?,
        };
        Ok(ConvHost {
            conn,
            home,
            user: login.user.clone(),
            role,
            spec: spec.clone(),
        })
    }

    fn ssh(&self, source: SshError) -> HostError {
        HostError::Ssh {
            role: self.role,
            name: self.spec.name.clone(),
            source,
        }
    }

    fn agent_err(&self, message: String) -> HostError {
        HostError::Agent {
            role: self.role,
            name: self.spec.name.clone(),
            message,
        }
    }

    /// Makes sure the SSH user can open the volumes attached to this host (before any is).
    pub fn require_device_access(&self) -> Result<DeviceAccess, HostError> {
        device_access::probe(&self.conn)
            .map_err(|e| self.ssh(e))?
            .ok_or_else(|| HostError::DeviceAccess {
                role: self.role,
                name: self.spec.name.clone(),
                user: self.user.clone(),
            })
    }

    /// `source` or `destination`.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The SSH session.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The login's home directory.
    pub fn home(&self) -> &str {
        &self.home
    }

    /// `$HOME/.osm`.
    pub fn osm_dir(&self) -> String {
        osm_dir(&self.home)
    }

    /// The agent's path on the host.
    pub fn agent(&self) -> String {
        agent_path(&self.home)
    }

    /// The per-transfer directory (0700).
    pub fn transfer_dir(&self, transfer_id: &str) -> String {
        transfer_dir(&self.home, transfer_id)
    }

    /// Runs a command on the host.
    pub fn run(&self, argv: &[&str]) -> Result<String, HostError> {
        self.conn
            .run(argv)
            .map(|o| o.stdout)
            .map_err(|e| self.ssh(e))
    }

    /// Uploads the agent unless the host already has the same binary; returns whether it uploaded.
    pub fn ensure_agent(&self, local: &Path) -> Result<bool, HostError> {
        if !local.is_file() {
            return Err(HostError::Local {
                path: local.to_path_buf(),
                message: "the osm-agent binary is missing (the collection's files/osm-agent; run `make build` in a checkout)".into(),
            });
        }
        self.run(&["mkdir", "-p", "-m", "0700", "--", &self.osm_dir()])?;
        self.conn
            .upload(local, &self.agent(), 0o755)
            .map_err(|e| self.ssh(e))
    }

    /// Creates the per-transfer directory.
    pub fn make_transfer_dir(&self, transfer_id: &str) -> Result<String, HostError> {
        let dir = self.transfer_dir(transfer_id);
        self.run(&["mkdir", "-p", "-m", "0700", "--", &dir])?;
        self.run(&["chmod", "0700", "--", &dir])?;
        Ok(dir)
    }

    /// Stops background exports or tunnels (idempotent), all in one command, so that they exit
    /// together: a cutover stops every tunnel of every volume within its downtime.
    pub fn stop(&self, pid_files: &[String]) -> Result<(), HostError> {
        // Only the pid files that exist reach the agent, which may be gone with nothing to stop.
        let mut argv = vec![
            "sh",
            "-c",
            "a=$1; shift; for p do shift; [ ! -e \"$p\" ] || set -- \"$@\" --pid-file \"$p\"; done; [ $# -eq 0 ] || exec \"$a\" stop \"$@\"",
            "sh",
        ];
        let agent = self.agent();
        argv.push(&agent);
        argv.extend(pid_files.iter().map(String::as_str));
        self.conn
            .run_unchecked(&argv)
            .map_err(|e| self.ssh(e))
            .and_then(|o| {
                if o.status == 0 {
                    Ok(())
                } else {
                    Err(self.agent_err(format!(
                        "stopping {} failed: {}",
                        pid_files.join(", "),
                        o.stderr.trim()
                    )))
                }
            })
    }

    /// Stops every background process of a transfer (pid files in its directory) and removes the
    /// directory.
    pub fn clean_transfer(&self, transfer_id: &str) -> Result<(), HostError> {
        let dir = self.transfer_dir(transfer_id);
        let listing = self
            .conn
            .run_unchecked(&[
                "sh",
                "-c",
                "cd -- \"$1\" 2>/dev/null && ls -1 -- *.pid 2>/dev/null",
                "sh",
                &dir,
            ])
            .map_err(|e| self.ssh(e))?;
        let pid_files: Vec<String> = listing
            .stdout
            .lines()
            .filter(|l| l.ends_with(".pid"))
            .map(|name| format!("{dir}/{name}"))
            .collect();
        self.stop(&pid_files)?;
        self.run(&["rm", "-rf", "--", &dir]).map(|_| ())
    }

    /// The link key's path on the destination host.
    pub fn link_key(&self) -> String {
        format!("{}/link_key", self.osm_dir())
    }

    /// The known_hosts file the tunnel checks the source host against.
    pub fn link_known_hosts(&self) -> String {
        format!("{}/known_hosts", self.osm_dir())
    }

    /// Digests the device `device` (chunks and leaves) into the scan file `out`, for the next sync
    /// into it to take instead of reading the device; an older scan there is removed first, so
    /// that a scan that fails leaves none. Returns the bytes read.
    pub fn scan_ahead(&self, device: &str, out: &str, seed: &str) -> Result<u64, HostError> {
        let agent = self.agent();
        let argv = [
            "sh",
            "-c",
            "a=$1 o=$2; shift 2; rm -f -- \"$o\" && exec \"$a\" scan --out \"$o\" \"$@\"",
            "sh",
            &agent,
            out,
            "--device",
            device,
            "--seed",
            seed,
        ];
        let mut read = None;
        self.conn
            .stream(&argv, |line| {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if v["event"] == "scanned" {
                        read = v["bytes_read"].as_u64();
                    }
                }
            })
            .map_err(|e| self.ssh(e))?;
        read.ok_or_else(|| self.agent_err(format!("the scan of {device} printed no result")))
    }

    /// Runs the sync, handing each event to `on_event`; fails with the agent's message.
    pub fn sync(
        &self,
        spec: &SyncSpec<'_>,
        mut on_event: impl FnMut(&SyncEvent),
    ) -> Result<SyncEvent, HostError> {
        let mut argv: Vec<String> = vec![
            // The sync gets a pid file like the exports and tunnels, so that a cleanup after a
            // crash of the migrator can stop it before it detaches the volume being written.
            "sh".into(),
            "-c".into(),
            "echo $$ > \"$1\" && shift && exec \"$@\"".into(),
            "sh".into(),
            spec.pid_file.into(),
            self.agent(),
            "sync".into(),
        ];
        for s in spec.sockets {
            argv.extend([
                "--from".into(),
                format!("nbd+unix:///{}?socket={s}", spec.export),
            ]);
        }
        argv.extend([
            "--to".into(),
            spec.device.into(),
            "--manifest".into(),
            spec.manifest.into(),
            // Passed to every sync, so that whichever sync comes next consumes a scan before it
            // writes: none outlives a change to its disk.
            "--scanned".into(),
            spec.scanned.into(),
            "--progress-interval".into(),
            "0.5".into(),
            "--seed".into(),
            spec.seed.into(),
        ]);
        if !spec.compression {
            argv.push("--no-compression".into());
        }
        if !spec.verify {
            argv.push("--no-verify".into());
        }
        let mut last = SyncEvent::default();
        let mut error: Option<String> = None;
        let result = self.conn.stream(&argv, |line| {
            if let Ok(ev) = serde_json::from_str::<SyncEvent>(line) {
                if ev.event == "error" {
                    error = ev.message.clone();
                }
                on_event(&ev);
                last = ev;
            }
        });
        let to = spec.device;
        match result {
            Ok(_) if last.event == "done" => Ok(last),
            Ok(_) => Err(self.agent_err(format!(
                "the sync to {to} ended without finishing (last event: {:?})",
                last.event
            ))),
            Err(e) => match error {
                Some(msg) => Err(self.agent_err(format!("the sync to {to} failed: {msg}"))),
                None => Err(self.ssh(e)),
            },
        }
    }
}

/// `$HOME/.osm` of the login whose home is `home`.
pub fn osm_dir(home: &str) -> String {
    format!("{home}/.osm")
}

/// The agent's path under the login's home `home`.
pub fn agent_path(home: &str) -> String {
    format!("{}/bin/osm-agent", osm_dir(home))
}

/// A transfer's directory under the login's home `home`.
pub fn transfer_dir(home: &str, transfer_id: &str) -> String {
    format!("{}/{transfer_id}", osm_dir(home))
}

/// Why a user or address cannot be a login: the tunnel hands both to ssh as `user@address`, where a
/// leading `-` would be an option.
fn unusable_login_word(v: &str) -> Option<&'static str> {
    if v.is_empty() {
        Some("is empty")
    } else if v.starts_with('-') {
        Some("starts with '-', which ssh would read as an option; refused")
    } else if v.chars().any(char::is_control) {
        Some("holds a control character; refused")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str) -> Login {
        Login {
            user: user.into(),
            key: "/nonexistent/key".into(),
            known_hosts: "/nonexistent/known_hosts".into(),
            policy: HostKeyPolicy::Verify,
            timeout: Duration::from_secs(1),
            silence: Duration::from_secs(60),
        }
    }

    fn spec(address: &str) -> HostSpec {
        HostSpec {
            id: "id".into(),
            name: "conv".into(),
            address: address.into(),
            ssh_port: 22,
        }
    }

    #[test]
    fn a_user_or_address_that_ssh_would_read_as_an_option_is_refused_before_connecting() {
        let e = ConvHost::connect("source", &spec("192.0.2.1"), &login("-oProxyCommand=id"))
            .expect_err("refused");
        assert!(
            matches!(
                e,
                HostError::Setting {
                    field: "ssh_user",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("would read as an option"), "{e}");
        let e = ConvHost::connect("source", &spec("-oProxyCommand=id"), &login("root"))
            .expect_err("refused");
        assert!(
            matches!(
                e,
                HostError::Setting {
                    field: "address",
                    ..
                }
            ),
            "{e:?}"
        );
        for bad in ["", "a\nb"] {
            assert!(unusable_login_word(bad).is_some(), "{bad:?}");
        }
        assert_eq!(unusable_login_word("cloud-user"), None);
    }
}
