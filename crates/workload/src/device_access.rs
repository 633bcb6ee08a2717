//! Whether the SSH user of a conversion host can open the volumes attached to it.
//!
//! The agent runs as the SSH user and opens the attached volumes' block devices: it reads the
//! source's and writes the destination's. Linux gives block devices to root and the `disk` group
//! (mode 0660), so the user must be root or in `disk`. A user who is neither would get as far as
//! attaching a customer's volume and fail in the middle of the copy: the import steps and
//! `os_conversion_host_info` ask first.

use osm_ssh::{Conn, SshError};
use serde::Serialize;

/// How the SSH user opens attached devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceAccess {
    /// The user is root.
    Root,
    /// The user is in the `disk` group.
    DiskGroup,
}

/// Prints `root`, `disk` or `none`; `id` is POSIX, every image with sshd has it.
const PROBE: &str = "if [ \"$(id -u)\" = 0 ]; then echo root; exit 0; fi; \
                     for g in $(id -Gn); do if [ \"$g\" = disk ]; then echo disk; exit 0; fi; done; \
                     echo none";

/// How the logged-in user of `conn` opens attached devices; None when it cannot.
pub fn probe(conn: &Conn) -> Result<Option<DeviceAccess>, SshError> {
    let out = conn.run(&["sh", "-c", PROBE])?;
    Ok(parse(&out.stdout))
}

fn parse(stdout: &str) -> Option<DeviceAccess> {
    match stdout.trim() {
        "root" => Some(DeviceAccess::Root),
        "disk" => Some(DeviceAccess::DiskGroup),
        _ => None,
    }
}

/// What a user who cannot open attached devices is told: why, and the ways out.
pub fn refusal(user: &str) -> String {
    format!(
        "SSH user {user:?} cannot open the volumes osm attaches (block devices belong to root and the 'disk' group, and it is neither); log in as root, or add the user to the disk group on the conversion host (usermod -aG disk {user}), and set os_migrate_conversion_host_ssh_user accordingly; nothing was attached"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_answers_are_read_strictly() {
        assert_eq!(parse("root\n"), Some(DeviceAccess::Root));
        assert_eq!(parse("disk\n"), Some(DeviceAccess::DiskGroup));
        for other in ["none\n", "", "rootdisk", "Root"] {
            assert_eq!(parse(other), None, "{other:?}");
        }
        let m = refusal("cloud-user");
        assert!(
            m.contains("\"cloud-user\"") && m.contains("usermod -aG disk cloud-user"),
            "{m}"
        );
    }
}
