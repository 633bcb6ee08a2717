//! Bounds-checked field access for on-disk structures.
//!
//! Every offset that comes from the disk goes through these helpers, so a corrupt length or index
//! becomes an [`Error`] (the structure is copied as data) instead of a panic.

use crate::error::{Error, Result};

/// `n` bytes of `b` at `off`, or an error naming what was missing.
pub(crate) fn bytes(b: &[u8], off: usize, n: usize) -> Result<&[u8]> {
    off.checked_add(n)
        .and_then(|end| b.get(off..end))
        .ok_or_else(|| {
            Error::bad(format!(
                "structure truncated: {n} bytes at {off} of {}",
                b.len()
            ))
        })
}

fn arr<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N]> {
    let s = bytes(b, off, N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

pub(crate) fn u8_at(b: &[u8], off: usize) -> Result<u8> {
    Ok(arr::<1>(b, off)?[0])
}
pub(crate) fn le16(b: &[u8], off: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(arr(b, off)?))
}
pub(crate) fn le32(b: &[u8], off: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(arr(b, off)?))
}
pub(crate) fn le64(b: &[u8], off: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(arr(b, off)?))
}
pub(crate) fn be16(b: &[u8], off: usize) -> Result<u16> {
    Ok(u16::from_be_bytes(arr(b, off)?))
}
pub(crate) fn be32(b: &[u8], off: usize) -> Result<u32> {
    Ok(u32::from_be_bytes(arr(b, off)?))
}
pub(crate) fn be64(b: &[u8], off: usize) -> Result<u64> {
    Ok(u64::from_be_bytes(arr(b, off)?))
}

/// True when `b` holds `magic` at `off` (false when `b` is too short).
pub(crate) fn has(b: &[u8], off: usize, magic: &[u8]) -> bool {
    bytes(b, off, magic.len())
        .map(|s| s == magic)
        .unwrap_or(false)
}

/// Human-readable size for findings and the summary line.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_an_error_not_a_panic() {
        let b = [1u8, 2, 3];
        assert!(le32(&b, 0).is_err());
        assert!(le16(&b, 2).is_err());
        assert!(bytes(&b, usize::MAX, 2).is_err());
        assert_eq!(le16(&b, 1).ok(), Some(0x0302));
        assert_eq!(be16(&b, 0).ok(), Some(0x0102));
        assert!(!has(&b, 2, b"xy"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
