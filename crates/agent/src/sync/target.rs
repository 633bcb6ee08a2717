//! The destination disk: a local block device or file that the sync writes, with its own chunk
//! digests read locally and the zeroing policy in one place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use osm_sync::{Digest, Hasher, Zeros};

use crate::disk::AlignedBuf;
use crate::{sys, zero};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Block,
    File,
}

/// How a disk is cut into chunks and digested.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The digests' hasher.
    pub hasher: Hasher,
    /// The zero digests of the chunk sizes.
    pub zeros: Zeros,
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// The disk's size.
    pub size: u64,
}

impl Layout {
    /// `size` bytes in chunks of `chunk_size`, digested with `hasher`.
    pub fn new(hasher: Hasher, chunk_size: u64, size: u64) -> Layout {
        Layout {
            hasher,
            zeros: hasher.zeros(chunk_size, size),
            chunk_size,
            size,
        }
    }
}

/// A local block device or regular file.
#[derive(Debug)]
///
/// Reads go through the page cache: it is the file's content as the kernel holds it and will
/// write it back, so digests of it are what a later reader sees (after a crash, the cache is gone
/// and reads come from the device); and a re-sync soon after a copy, or the read-back of what was
/// just written, runs at memory speed instead of reading the device again.
pub struct Target {
    file: File,
    kind: Kind,
    size: u64,
    /// Set once the cheap zeroing call failed, so later calls go straight to writing zeros.
    fallback: AtomicBool,
    /// Bytes written since writeback was last started.
    dirty: AtomicU64,
}

/// Start writeback after this many bytes: a sync never builds up gigabytes of dirty pages, and
/// the final flush has little left to wait for.
const WRITEBACK_EVERY: u64 = 64 << 20;

static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

impl Target {
    /// Opens `path`, creating a sparse file of `source_size` bytes if it does not exist. Fails if
    /// the target is smaller than the source.
    pub fn open(path: &Path, source_size: u64) -> Result<Target> {
        let file = match fs::metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.set_len(source_size)
                    .with_context(|| format!("sizing {}", path.display()))?;
                f
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
            Ok(_) => OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
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
        Ok(Target {
            file,
            kind,
            size,
            fallback: AtomicBool::new(false),
            dirty: AtomicU64::new(0),
        })
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How [`Target::zero`] zeroes, for the settings line.
    pub fn zero_method(&self) -> &'static str {
        match self.kind {
            Kind::Block => "blkzeroout",
            Kind::File => "punch-hole",
        }
    }

    /// Writes `buf` at `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        let n = buf.len() as u64;
        if self.dirty.fetch_add(n, Ordering::Relaxed) + n >= WRITEBACK_EVERY {
            self.dirty.store(0, Ordering::Relaxed);
            // Only a hint: the final flush still makes everything durable.
            let _ = sys::start_writeback(&self.file);
        }
        Ok(())
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

    /// The zeroing policy, the one place that decides how a range comes to read as zeros: the
    /// device's own zeroing (`BLKZEROOUT`, which the kernel turns into WRITE ZEROES or a discard
    /// that guarantees zeros, or writes) on block devices; a punched hole, else an allocated
    /// zero range, on files; writing zeros where neither works. Nothing is assumed about what a
    /// fresh volume holds: the caller zeroes every range its digests do not prove zero, and the
    /// read-back proves the result.
    pub fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
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

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Whether `offset..offset+len` holds no data at all (a hole in a sparse file), known from the
    /// file system without reading.
    fn is_hole(&self, offset: u64, len: u64) -> io::Result<bool> {
        if self.kind != Kind::File {
            return Ok(false);
        }
        Ok(match sys::seek(&self.file, offset, true)? {
            None => true,
            Some(data) => data >= offset + len,
        })
    }

    /// The digest of the chunk at `offset` of `len` bytes. `buf` is scratch space; on return it
    /// holds the chunk's bytes unless it was a hole.
    pub fn digest(
        &self,
        hasher: &Hasher,
        offset: u64,
        len: usize,
        zeros: Digest,
        buf: &mut AlignedBuf,
    ) -> io::Result<(Digest, u64)> {
        if self.is_hole(offset, len as u64)? {
            return Ok((zeros, 0));
        }
        buf.resize(len);
        self.read_at(buf.as_mut_slice(), offset)?;
        let d = if zero::is_zero(buf.as_slice()) {
            zeros
        } else {
            hasher.digest(buf.as_slice())
        };
        Ok((d, len as u64))
    }

    /// Digests of `count` chunks from chunk `first`: (digests, bytes read).
    pub fn digests(
        &self,
        layout: &Layout,
        first: u64,
        count: u64,
        buf: &mut AlignedBuf,
    ) -> io::Result<(Vec<Digest>, u64)> {
        let mut out = Vec::with_capacity(count as usize);
        let mut read = 0;
        for i in first..first + count {
            let start = i * layout.chunk_size;
            let len = layout.chunk_size.min(layout.size - start) as usize;
            let (d, n) = self.digest(&layout.hasher, start, len, layout.zeros.of(i), buf)?;
            out.push(d);
            read += n;
        }
        Ok((out, read))
    }

    /// Makes everything written durable.
    pub fn flush(&self) -> io::Result<()> {
        sys::fdatasync(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_prove_zeros_and_data() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("new.img");
        let cs = 64 << 10;
        let size = 3 * cs + 4096;
        let tg = Target::open(&p, size).unwrap();
        let h = Hasher::new(7);
        let layout = Layout::new(h, cs, size);
        let zeros = layout.zeros;
        let mut buf = AlignedBuf::default();
        let (d, read) = tg.digests(&layout, 0, 4, &mut buf).unwrap();
        assert_eq!(
            read, 0,
            "a fresh sparse file is proven zero without reading"
        );
        assert!((0..4).all(|i| d[i as usize] == zeros.of(i)));
        tg.write_at(&[5; 100], cs + 10).unwrap();
        let (d, read) = tg.digests(&layout, 0, 4, &mut buf).unwrap();
        assert!(read > 0);
        let mut want = vec![0u8; cs as usize];
        want[10..110].fill(5);
        assert_eq!(d[1], h.digest(&want));
        assert_eq!(d[3], zeros.of(3));
        // Zeroing makes it a zero chunk again, whatever the file system does underneath.
        tg.zero(cs, cs).unwrap();
        let (d, _) = tg.digests(&layout, 1, 1, &mut buf).unwrap();
        assert_eq!(d[0], zeros.of(1));
    }

    #[test]
    fn refuses_small_targets_and_zeroes_ragged_ranges() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("t.img");
        let tg = Target::open(&p, 1 << 20).unwrap();
        tg.write_at(&[1; 8192], 4096).unwrap();
        tg.zero(4096 + 100, 5000).unwrap();
        let mut b = vec![9u8; 8192];
        tg.read_at(&mut b, 4096).unwrap();
        assert!(b[..100].iter().all(|&x| x == 1));
        assert!(b[100..5100].iter().all(|&x| x == 0));
        assert!(b[5100..].iter().all(|&x| x == 1));
        drop(tg);
        let err = Target::open(&p, 2 << 20).unwrap_err().to_string();
        assert!(err.contains("less than the source"), "{err}");
    }
}
