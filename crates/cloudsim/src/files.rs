//! Data files: sparse volumes, images, snapshots and root disks, and the sparse copy between them.
//!
//! Copies walk the source's data extents with `SEEK_DATA`/`SEEK_HOLE` and also skip all-zero
//! blocks inside them, so a 10 GiB volume holding 1 MiB of data costs 1 MiB of disk and of copy
//! time. They run on blocking threads, never under the state lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// One gibibyte: the unit of Cinder volume sizes.
pub const GIB: u64 = 1 << 30;

const CHUNK: usize = 1 << 20;

/// Creates (or truncates) a sparse file of `len` bytes.
pub fn create_sparse(path: &Path, len: u64) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.set_len(len)
}

/// Creates (or truncates) a file of `len` bytes of pseudo-random non-zero data, every byte
/// written: what a disk that was never cleared holds. Blocks are rotations of one random pool,
/// so the cost is the writes, not the randomness.
pub fn create_garbage(path: &Path, len: u64) -> io::Result<()> {
    const POOL: usize = 4 << 20;
    // Not a multiple of the 4 KiB sector: each block is a different rotation of the pool.
    const STEP: usize = 8 * 4093;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.set_len(len)?;
    let mut pool = vec![0u8; POOL];
    rand::Rng::fill(&mut rand::thread_rng(), &mut pool[..]);
    // A zero byte could start a run that reads as cleared; garbage has none.
    for b in pool.iter_mut().filter(|b| **b == 0) {
        *b = 0xa5;
    }
    let mut off = 0u64;
    let mut k = 0usize;
    while off < len {
        // Block k is the pool rotated by r: pool[r..] then pool[..r], cut at the end of the file.
        let r = k.wrapping_mul(STEP) % POOL;
        let n = (len - off).min(POOL as u64) as usize;
        let head = &pool[r..][..n.min(POOL - r)];
        f.write_all_at(head, off)?;
        f.write_all_at(&pool[..n - head.len()], off + head.len() as u64)?;
        off += n as u64;
        k += 1;
    }
    Ok(())
}

/// Grows a file to at least `len` bytes (holes at the end).
pub fn grow(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.len() < len {
        f.set_len(len)?;
    }
    Ok(())
}

fn seek(fd: i32, off: u64, whence: i32) -> io::Result<Option<u64>> {
    // SAFETY: lseek on a file descriptor we own; no memory is passed.
    let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// Data extents `(offset, length)` of a file; the whole file if the filesystem cannot tell.
pub fn data_extents(f: &File) -> io::Result<Vec<(u64, u64)>> {
    let len = f.metadata()?.len();
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match seek(fd, pos, libc::SEEK_DATA) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(vec![(0, len)]),
            Err(e) => return Err(e),
        };
        let end = seek(fd, start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if end > start {
            out.push((start, end - start));
        }
        pos = end;
    }
    Ok(out)
}

/// Copies `src` to `dst` preserving holes; `dst` ends up `max(len(src), min_len)` bytes long.
/// Returns the number of data bytes written. No fsync: the simulator's clouds do not outlive a
/// crash of the machine they run on, and syncing made every gigabyte a test volume holds wait on
/// the disk (the page cache serves the conversion hosts, which read the same files).
pub fn sparse_copy(src: &Path, dst: &Path, min_len: u64) -> io::Result<u64> {
    let s = File::open(src)?;
    let len = s.metadata()?.len();
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let d = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(dst)?;
    d.set_len(len.max(min_len))?;
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0;
    for (off, n) in data_extents(&s)? {
        let mut pos = off;
        let end = off + n;
        while pos < end {
            let want = ((end - pos) as usize).min(CHUNK);
            let got = s.read_at(&mut buf[..want], pos)?;
            if got == 0 {
                break;
            }
            // Zero blocks stay holes in the copy.
            if buf[..got].iter().any(|b| *b != 0) {
                d.write_all_at(&buf[..got], pos)?;
                written += got as u64;
            }
            pos += got as u64;
        }
    }
    Ok(written)
}

/// Removes a file, ignoring its absence.
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("osm-cloudsim: removing {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        create_sparse(&a, 64 << 20).unwrap();
        let f = OpenOptions::new().write(true).open(&a).unwrap();
        f.write_all_at(b"hello", 10 << 20).unwrap();
        f.write_all_at(&[0u8; 4096], 20 << 20).unwrap();
        f.write_all_at(b"end", (64 << 20) - 3).unwrap();
        let written = sparse_copy(&a, &b, 128 << 20).unwrap();
        assert!(written <= 2 * CHUNK as u64, "wrote {written}");
        let g = File::open(&b).unwrap();
        assert_eq!(g.metadata().unwrap().len(), 128 << 20);
        let mut buf = [0u8; 5];
        g.read_at(&mut buf, 10 << 20).unwrap();
        assert_eq!(&buf, b"hello");
        g.read_at(&mut buf[..3], (64 << 20) - 3).unwrap();
        assert_eq!(&buf[..3], b"end");
        use std::os::unix::fs::MetadataExt;
        assert!(
            g.metadata().unwrap().blocks() * 512 < 8 << 20,
            "copy is not sparse"
        );
    }

    #[test]
    fn garbage_fills_every_byte_up_to_an_odd_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g");
        let len = (9 << 20) + 5;
        create_garbage(&p, len).unwrap();
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len() as u64, len);
        assert!(data.iter().all(|b| *b != 0), "a zero byte");
        assert_ne!(
            data[..4096],
            data[4 << 20..(4 << 20) + 4096],
            "blocks repeat"
        );
    }
}
