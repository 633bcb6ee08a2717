//! The host key: checked against a known_hosts file, or recorded there on first use.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, KnownHostKeyFormat, Session};

use crate::{Host, HostKeyPolicy, SshError};

impl Host {
    /// The name of the host's entry in a known_hosts file, as OpenSSH writes it.
    pub fn known_hosts_entry(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    pub(crate) fn check_host_key(
        &self,
        session: &Session,
        policy: HostKeyPolicy,
    ) -> Result<(), SshError> {
        let kh_err = |message: String| SshError::KnownHosts {
            path: self.known_hosts.clone(),
            message,
        };
        let (key, key_type) = session.host_key().ok_or_else(|| SshError::Session {
            host: self.label(),
            stage: "handshake",
            message: "the server sent no host key".into(),
        })?;
        let mut known = session
            .known_hosts()
            .map_err(|e| kh_err(e.message().to_string()))?;
        if self.known_hosts.exists() {
            known
                .read_file(&self.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| kh_err(format!("cannot be read: {}", e.message())))?;
        }
        match known.check_port(&self.address, self.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(SshError::HostKeyChanged {
                host: self.label(),
                known_hosts: self.known_hosts.clone(),
                entry: self.known_hosts_entry(),
            }),
            CheckResult::NotFound if policy == HostKeyPolicy::TrustOnFirstUse => {
                let fmt = key_format(key_type).ok_or_else(|| {
                    kh_err(format!(
                        "host key type {key_type:?} of {} cannot be recorded",
                        self.label()
                    ))
                })?;
                let line = format!(
                    "{} {} {}\n",
                    self.known_hosts_entry(),
                    fmt_name(fmt),
                    STANDARD.encode(key)
                );
                append_known_host(&self.known_hosts, &line).map_err(|e| kh_err(e.to_string()))?;
                Ok(())
            }
            CheckResult::NotFound => Err(SshError::HostKeyUnknown {
                host: self.label(),
                known_hosts: self.known_hosts.clone(),
            }),
            CheckResult::Failure => Err(kh_err(format!(
                "checking the key of {} failed",
                self.label()
            ))),
        }
    }
}

fn key_format(t: HostKeyType) -> Option<KnownHostKeyFormat> {
    match t {
        HostKeyType::Rsa => Some(KnownHostKeyFormat::SshRsa),
        HostKeyType::Dss => Some(KnownHostKeyFormat::SshDss),
        HostKeyType::Ecdsa256 => Some(KnownHostKeyFormat::Ecdsa256),
        HostKeyType::Ecdsa384 => Some(KnownHostKeyFormat::Ecdsa384),
        HostKeyType::Ecdsa521 => Some(KnownHostKeyFormat::Ecdsa521),
        HostKeyType::Ed25519 => Some(KnownHostKeyFormat::Ed25519),
        HostKeyType::Unknown => None,
    }
}

fn fmt_name(f: KnownHostKeyFormat) -> &'static str {
    match f {
        KnownHostKeyFormat::SshRsa => "ssh-rsa",
        KnownHostKeyFormat::SshDss => "ssh-dss",
        KnownHostKeyFormat::Ecdsa256 => "ecdsa-sha2-nistp256",
        KnownHostKeyFormat::Ecdsa384 => "ecdsa-sha2-nistp384",
        KnownHostKeyFormat::Ecdsa521 => "ecdsa-sha2-nistp521",
        KnownHostKeyFormat::Ed25519 => "ssh-ed25519",
        _ => "unknown",
    }
}

/// Appends a line, creating the file 0600 (it decides whom the migration trusts).
fn append_known_host(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_entry_brackets_non_default_ports() {
        let h = Host::new("10.0.0.5", 22, "u", "/k", "/kh");
        assert_eq!(h.known_hosts_entry(), "10.0.0.5");
        let h = Host::new("127.0.0.9", 2222, "u", "/k", "/kh");
        assert_eq!(h.known_hosts_entry(), "[127.0.0.9]:2222");
    }
}
