//! The destination disk: a local block device or file that the sync writes, with its own chunk
//! digests read locally and the zeroing policy in one place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use osm_sync::{Digest, Hasher, Zeros, LEAF};

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

/// What a scan of some chunks found.
pub struct Scanned {
    /// Each chunk's digest.
    pub digests: Vec<Digest>,
    /// Each chunk's leaf digests, empty where it reads as zeros.
    pub leaves: Vec<Vec<Digest>>,
    /// Bytes read.
    pub read: u64,
}

/// The leaf-aligned byte ranges of a chunk of `len` bytes that cover `written`, merged.
fn leaf_runs(written: &[Range<usize>], len: usize) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = written
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.start / LEAF * LEAF..r.end.div_ceil(LEAF).saturating_mul(LEAF).min(len))
        .collect();
    spans.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in spans {
        match out.last_mut() {
            Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// What names a disk and, for a file, its last change: kind, device and inode numbers, device
/// number, size, and a file's modification and change times in nanoseconds (zero for a block
/// device, whose node's times do not follow writes to the disk). A scan of the disk holds while it
/// stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity(pub [u64; 8]);

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
}

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
        })
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its [`Identity`] now.
    pub fn identity(&self) -> io::Result<Identity> {
        let m = self.file.metadata()?;
        let ns = |s: i64, n: i64| {
            (s as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(n as u64)
        };
        let (kind, mtime, ctime) = match self.kind {
            Kind::File => (
                1,
                ns(m.mtime(), m.mtime_nsec()),
                ns(m.ctime(), m.ctime_nsec()),
            ),
            Kind::Block => (2, 0, 0),
        };
        Ok(Identity([
            kind,
            m.dev(),
            m.ino(),
            m.rdev(),
            self.size,
            mtime,
            ctime,
            0,
        ]))
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
        self.file.write_all_at(buf, offset)
    }

    /// Starts writing what was written back, without waiting for it.
    pub fn start_writeback(&self) -> io::Result<()> {
        sys::start_writeback(&self.file)
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

    /// The digest of the chunk at `offset` of `len` bytes, and in `leaves` the digests of its
    /// leaves where it holds data (left empty for zeros). `buf` is scratch space; on return it
    /// holds the chunk's bytes unless it was a hole.
    pub fn digest(
        &self,
        hasher: &Hasher,
        offset: u64,
        len: usize,
        zeros: Digest,
        buf: &mut AlignedBuf,
        leaves: &mut Vec<Digest>,
    ) -> io::Result<(Digest, u64)> {
        leaves.clear();
        if self.is_hole(offset, len as u64)? {
            return Ok((zeros, 0));
        }
        buf.resize(len);
        self.read_at(buf.as_mut_slice(), offset)?;
        let d = if zero::is_zero(buf.as_slice()) {
            zeros
        } else {
            hasher.leaves(buf.as_slice(), leaves);
            hasher.combine(leaves)
        };
        Ok((d, len as u64))
    }

    /// The digest of a chunk of which only `written` (ranges within the chunk) changed since its
    /// leaves were digested: reads and digests again only the leaves those ranges touch, and
    /// updates `leaves`. Returns (digest, bytes read).
    pub fn digest_written(
        &self,
        hasher: &Hasher,
        offset: u64,
        len: usize,
        written: &[Range<usize>],
        leaves: &mut [Digest],
        buf: &mut AlignedBuf,
    ) -> io::Result<(Digest, u64)> {
        let mut read = 0;
        for r in leaf_runs(written, len) {
            buf.resize(r.len());
            self.read_at(buf.as_mut_slice(), offset + r.start as u64)?;
            for (k, l) in buf.as_slice().chunks(LEAF).enumerate() {
                leaves[r.start / LEAF + k] = hasher.leaf(l);
            }
            read += r.len() as u64;
        }
        Ok((hasher.combine(leaves), read))
    }

    /// Digests of `count` chunks from chunk `first`: (digests, the leaves of each, bytes read).
    pub fn digests(
        &self,
        layout: &Layout,
        first: u64,
        count: u64,
        buf: &mut AlignedBuf,
    ) -> io::Result<Scanned> {
        let mut out = Scanned {
            digests: Vec::with_capacity(count as usize),
            leaves: Vec::with_capacity(count as usize),
            read: 0,
        };
        for i in first..first + count {
            let start = i * layout.chunk_size;
            let len = layout.chunk_size.min(layout.size - start) as usize;
            let mut leaves = Vec::new();
            let (d, n) = self.digest(
                &layout.hasher,
                start,
                len,
                layout.zeros.of(i),
                buf,
                &mut leaves,
            )?;
            out.digests.push(d);
            out.leaves.push(leaves);
            out.read += n;
        }
        Ok(out)
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
        let s = tg.digests(&layout, 0, 4, &mut buf).unwrap();
        assert_eq!(
            s.read, 0,
            "a fresh sparse file is proven zero without reading"
        );
        assert!((0..4).all(|i| s.digests[i as usize] == zeros.of(i)));
        assert!(s.leaves.iter().all(|l| l.is_empty()));
        tg.write_at(&[5; 100], cs + 10).unwrap();
        let s = tg.digests(&layout, 0, 4, &mut buf).unwrap();
        assert!(s.read > 0);
        let mut want = vec![0u8; cs as usize];
        want[10..110].fill(5);
        assert_eq!(s.digests[1], h.digest(&want));
        assert_eq!(s.leaves[1].len(), cs as usize / LEAF);
        assert_eq!(s.digests[3], zeros.of(3));
        // Zeroing makes it a zero chunk again, whatever the file system does underneath.
        tg.zero(cs, cs).unwrap();
        let s = tg.digests(&layout, 1, 1, &mut buf).unwrap();
        assert_eq!(s.digests[0], zeros.of(1));
    }

    #[test]
    fn a_patched_chunk_is_proven_from_the_leaves_it_wrote() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("p.img");
        let cs = 64 << 10;
        let tg = Target::open(&p, cs).unwrap();
        let h = Hasher::new(9);
        let mut want: Vec<u8> = (0..cs as usize).map(|i| (i % 13 + 1) as u8).collect();
        tg.write_at(&want, 0).unwrap();
        let (mut buf, mut leaves) = (AlignedBuf::default(), Vec::new());
        tg.digest(
            &h,
            0,
            cs as usize,
            h.zero_digest(cs as usize),
            &mut buf,
            &mut leaves,
        )
        .unwrap();
        // Two writes, one across a leaf boundary: three leaves are read again, not the chunk.
        let written = [LEAF - 10..LEAF + 10, 5 * LEAF + 1..5 * LEAF + 2];
        for r in &written {
            want[r.clone()].fill(0xee);
            tg.write_at(&want[r.clone()], r.start as u64).unwrap();
        }
        let (d, read) = tg
            .digest_written(&h, 0, cs as usize, &written, &mut leaves, &mut buf)
            .unwrap();
        assert_eq!(read, 3 * LEAF as u64);
        assert_eq!(d, h.digest(&want));
        assert_eq!(
            leaf_runs(&[9000..9001, 0..10, 100..200, 19_000..19_999], 20_000),
            vec![0..LEAF, 2 * LEAF..3 * LEAF, 4 * LEAF..20_000]
        );
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
