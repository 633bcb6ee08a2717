//! `osm-agent device`: waits for an attached volume to show up by its serial.
//!
//! Nova gives an attached volume its ID as the disk serial, and udev names the disk by it under
//! `/dev/disk/by-id/`, by bus:
//! - virtio-blk: `virtio-<serial>`, the kernel keeping only the first 20 characters;
//! - virtio-scsi (an image with `hw_disk_bus=scsi`): `scsi-0QEMU_QEMU_HARDDISK_<serial>` from the
//!   device identification page (the whole serial where libvirt passes it as `device_id`, its first
//!   20 characters with older QEMU), and `scsi-SQEMU_QEMU_HARDDISK_<serial>` where sg3_utils' rules
//!   name disks by their unit serial page too.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The by-id paths a disk with serial `serial` may have, one per bus and naming rule.
/// `OSM_DEV_ROOT` prefixes them (simulated hosts set it; real hosts leave it empty).
pub fn by_id_paths(serial: &str) -> Vec<PathBuf> {
    let root = std::env::var("OSM_DEV_ROOT").unwrap_or_default();
    let short: String = serial.chars().take(20).collect();
    let mut names = vec![
        format!("virtio-{short}"),
        format!("scsi-0QEMU_QEMU_HARDDISK_{serial}"),
        format!("scsi-SQEMU_QEMU_HARDDISK_{serial}"),
    ];
    if short != serial {
        names.push(format!("scsi-0QEMU_QEMU_HARDDISK_{short}"));
    }
    names
        .into_iter()
        .map(|n| PathBuf::from(format!("{root}/dev/disk/by-id/{n}")))
        .collect()
}

/// The device the first existing by-id link of `serial` resolves to.
fn resolve(serial: &str) -> Option<PathBuf> {
    // canonicalize resolves the udev symlink and fails while its target is missing.
    by_id_paths(serial)
        .iter()
        .find_map(|p| std::fs::canonicalize(p).ok())
}

fn names(serial: &str) -> String {
    by_id_paths(serial)
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits up to `timeout` for the device to exist and returns its resolved absolute path.
pub fn wait(serial: &str, timeout: Duration) -> Result<PathBuf> {
    if serial.is_empty() {
        bail!("--serial must not be empty");
    }
    let start = Instant::now();
    loop {
        if let Some(p) = resolve(serial) {
            return Ok(p);
        }
        if start.elapsed() >= timeout {
            bail!(
                "no device with serial {serial} after {}s, none of {} (is volume {serial} attached to this host?)",
                timeout.as_secs(),
                names(serial)
            );
        }
        sleep(Duration::from_millis(100));
    }
}

/// Checks that `device` is the disk attached with `serial`: the path one of its by-id links
/// resolves to. Guards `serve` against exporting anything else (a wrong path, a file of the host),
/// since what it exports is read by another host.
pub fn check_expected(device: &std::path::Path, serial: &str) -> Result<PathBuf> {
    let Some(expected) = resolve(serial) else {
        bail!(
            "no attached device with serial {serial} (none of {})",
            names(serial)
        );
    };
    let actual =
        std::fs::canonicalize(device).map_err(|e| anyhow::anyhow!("{}: {e}", device.display()))?;
    if actual != expected {
        bail!(
            "refusing to export {}: it is not the device attached with serial {serial} ({})",
            device.display(),
            expected.display()
        );
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test owns `OSM_DEV_ROOT`, so parallel tests never see another's value.
    #[test]
    fn finds_virtio_and_scsi_disks_by_serial() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::env::set_var("OSM_DEV_ROOT", dir.path());
        let by_id = dir.path().join("dev/disk/by-id");
        std::fs::create_dir_all(&by_id).expect("mkdir");
        let serial = "0123456789abcdefghijklmnopqrstuvwxyz";
        let disk = |name: &str, link: &str| {
            let target = dir.path().join(name);
            std::fs::write(&target, b"").expect("disk");
            std::os::unix::fs::symlink(&target, by_id.join(link)).expect("link");
            std::fs::canonicalize(target).expect("canonical")
        };
        let missing = wait(serial, Duration::ZERO).unwrap_err().to_string();
        assert!(
            missing.contains("scsi-0QEMU_QEMU_HARDDISK_0123456789abcdefghijklmnopqrstuvwxyz"),
            "{missing}"
        );
        assert!(
            missing.contains("virtio-0123456789abcdefghij,"),
            "{missing}"
        );

        // virtio-scsi as udev names it from the whole serial (libvirt's device_id).
        let sdb = disk("sdb", &format!("scsi-0QEMU_QEMU_HARDDISK_{serial}"));
        assert_eq!(wait(serial, Duration::ZERO).unwrap(), sdb);
        assert_eq!(check_expected(&sdb, serial).unwrap(), sdb);
        let other = disk("sdc", "scsi-0QEMU_QEMU_HARDDISK_other");
        let refused = check_expected(&other, serial).unwrap_err().to_string();
        assert!(refused.starts_with("refusing to export"), "{refused}");

        // Older QEMU: the identification page keeps 20 characters.
        let short = "fedcba9876543210fedcba98-7654";
        let sdd = disk("sdd", "scsi-0QEMU_QEMU_HARDDISK_fedcba9876543210fedc");
        assert_eq!(wait(short, Duration::ZERO).unwrap(), sdd);

        // virtio-blk: 20 characters.
        let v = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
        let vdb = disk("vdb", "virtio-aaaaaaaa-bbbb-cccc-d");
        assert_eq!(wait(v, Duration::ZERO).unwrap(), vdb);
        assert_eq!(check_expected(&vdb, v).unwrap(), vdb);
        std::env::remove_var("OSM_DEV_ROOT");
    }
}
