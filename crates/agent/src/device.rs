//! `osm-agent device`: waits for an attached volume to show up by its serial.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The by-id path of a virtio disk with serial `serial`: the kernel keeps only its first 20
/// characters. `OSM_DEV_ROOT` prefixes it (simulated hosts set it; real hosts leave it empty).
pub fn by_id_path(serial: &str) -> PathBuf {
    let root = std::env::var("OSM_DEV_ROOT").unwrap_or_default();
    let short: String = serial.chars().take(20).collect();
    PathBuf::from(format!("{root}/dev/disk/by-id/virtio-{short}"))
}

/// Waits up to `timeout` for the device to exist and returns its resolved absolute path.
pub fn wait(serial: &str, timeout: Duration) -> Result<PathBuf> {
    if serial.is_empty() {
        bail!("--serial must not be empty");
    }
    let path = by_id_path(serial);
    let start = Instant::now();
    loop {
        // canonicalize resolves the udev symlink and fails while its target is missing.
        if let Ok(p) = std::fs::canonicalize(&path) {
            return Ok(p);
        }
        if start.elapsed() >= timeout {
            bail!(
                "no device {} after {}s (is volume {serial} attached to this host?)",
                path.display(),
                timeout.as_secs()
            );
        }
        sleep(Duration::from_millis(100));
    }
}

/// Checks that `device` is the disk attached with `serial`: the path the by-id link resolves to.
/// Guards `serve` against exporting anything else (a wrong path, a file of the host), since what it
/// exports is read by another host.
pub fn check_expected(device: &std::path::Path, serial: &str) -> Result<PathBuf> {
    let link = by_id_path(serial);
    let expected = std::fs::canonicalize(&link).map_err(|e| {
        anyhow::anyhow!(
            "no attached device with serial {serial} ({}): {e}",
            link.display()
        )
    })?;
    let actual =
        std::fs::canonicalize(device).map_err(|e| anyhow::anyhow!("{}: {e}", device.display()))?;
    if actual != expected {
        bail!(
            "refusing to export {}: it is not the device attached with serial {serial} ({} -> {})",
            device.display(),
            link.display(),
            expected.display()
        );
    }
    Ok(actual)
}
