//! Where a copy writes to: the `Target` ops table and its local file/block device implementation,
//! with the zeroing policy in one place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{bail, Context, Result};

use crate::sys;

/// A target's capabilities and operations, like nbdcopy's `rw_ops`.
pub trait Target: Send + Sync {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Whether it is known to read as zeros everywhere (so zero ranges can be skipped).
    fn known_zero(&self) -> bool;
    /// How [`Target::zero`] zeroes, for the settings line.
    fn zero_method(&self) -> &'static str;
    /// Writes `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes `len` bytes at `offset` read as zeros, as cheaply as the target allows.
    fn zero(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Reads back (for verification).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Makes everything written durable.
    fn flush(&self) -> io::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Block,
    File,
}

/// A local block device or regular file.
#[derive(Debug)]
pub struct LocalTarget {
    file: File,
    kind: Kind,
    size: u64,
    known_zero: bool,
    /// Set once the cheap method failed, so later calls go straight to writing zeros.
    fallback: AtomicBool,
    /// Bytes written since writeback was last started.
    dirty: AtomicU64,
}

/// Start writeback after this many bytes: a copy then never builds up gigabytes of dirty pages,
/// and the final flush has little left to wait for.
const WRITEBACK_EVERY: u64 = 64 << 20;

static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

impl LocalTarget {
    /// Opens `path`, creating a sparse file of `source_size` bytes if it does not exist. Fails if
    /// the target is smaller than the source.
    pub fn open(path: &Path, source_size: u64) -> Result<LocalTarget> {
        let (file, created) = match fs::metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.set_len(source_size)
                    .with_context(|| format!("sizing {}", path.display()))?;
                (f, true)
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
            Ok(_) => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
                false,
            ),
        };
        let ft = file.metadata()?.file_type();
        let kind = if ft.is_block_device() {
            Kind::Block
        } else if ft.is_file() {
            Kind::File
        } else {
            bail!(
                "{} is neither a block device nor a regular file",
                path.display()
            );
        };
        let size = (&file)
            .seek(SeekFrom::End(0))
            .with_context(|| format!("sizing {}", path.display()))?;
        if size < source_size {
            bail!(
                "target {} has {size} bytes, less than the source's {source_size}",
                path.display()
            );
        }
        // A file with no data extent at all reads as zeros: as good as freshly created.
        let empty_file = kind == Kind::File && matches!(sys::seek(&file, 0, true), Ok(None));
        Ok(LocalTarget {
            file,
            kind,
            size,
            known_zero: created || empty_file,
            fallback: AtomicBool::new(false),
            dirty: AtomicU64::new(0),
        })
    }

    fn write_zeros(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    fn unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL | libc::ENOSYS)
        )
    }
}

impl Target for LocalTarget {
    fn size(&self) -> u64 {
        self.size
    }

    fn known_zero(&self) -> bool {
        self.known_zero
    }

    fn zero_method(&self) -> &'static str {
        match self.kind {
            Kind::Block => "blkzeroout",
            Kind::File => "punch-hole",
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        let n = buf.len() as u64;
        if self.dirty.fetch_add(n, Ordering::Relaxed) + n >= WRITEBACK_EVERY {
            self.dirty.store(0, Ordering::Relaxed);
            // Only a hint: the final flush still makes everything durable.
            let _ = sys::start_writeback(&self.file);
        }
        Ok(())
    }

    /// The zeroing policy: the device's own zeroing (BLKZEROOUT) or a punched hole (falling back
    /// to an allocated zero range) where possible, else writing zeros.
    fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.fallback.load(Ordering::Relaxed) {
            return self.write_zeros(offset, len);
        }
        let end = offset + len;
        match self.kind {
            Kind::Block => {
                // BLKZEROOUT wants 512-byte alignment; the ragged edges are written.
                let a = offset.next_multiple_of(512).min(end);
                let b = (end / 512 * 512).max(a);
                self.write_zeros(offset, a - offset)?;
                self.write_zeros(b, end - b)?;
                if b > a {
                    sys::blkzeroout(&self.file, a, b - a).or_else(|e| {
                        if Self::unsupported(&e) {
                            self.fallback.store(true, Ordering::Relaxed);
                            self.write_zeros(a, b - a)
                        } else {
                            Err(e)
                        }
                    })
                } else {
                    Ok(())
                }
            }
            Kind::File => sys::fallocate(
                &self.file,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )
            .or_else(|e| {
                if !Self::unsupported(&e) {
                    return Err(e);
                }
                sys::fallocate(
                    &self.file,
                    libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                    offset,
                    len,
                )
            })
            .or_else(|e| {
                if !Self::unsupported(&e) {
                    return Err(e);
                }
                self.fallback.store(true, Ordering::Relaxed);
                self.write_zeros(offset, len)
            }),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        sys::fdatasync(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_files_and_refuses_small_ones() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("new.img");
        let tg = LocalTarget::open(&p, 1 << 20).unwrap();
        assert!(tg.known_zero());
        assert_eq!(tg.size(), 1 << 20);
        tg.write_at(&[1; 8192], 4096).unwrap();
        tg.zero(4096 + 100, 5000).unwrap();
        let mut b = vec![9u8; 8192];
        tg.read_at(&mut b, 4096).unwrap();
        assert!(b[..100].iter().all(|&x| x == 1));
        assert!(b[100..5100].iter().all(|&x| x == 0));
        assert!(b[5100..].iter().all(|&x| x == 1));
        drop(tg);
        let again = LocalTarget::open(&p, 1 << 20).unwrap();
        assert!(
            !again.known_zero(),
            "a file with data is not known to be zero"
        );
        let err = LocalTarget::open(&p, 2 << 20).unwrap_err().to_string();
        assert!(err.contains("less than the source"), "{err}");
    }
}
