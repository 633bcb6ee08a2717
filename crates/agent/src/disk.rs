//! The source disk as the agent reads it: a device or image, read-only, with known free ranges
//! served as zeros, `O_DIRECT` reads on block devices, and zero detection.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use osm_nbd::{AllocFlags, Backend, Extent};

use crate::{sys, zero};

/// How block status learns where the zeros are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDetection {
    /// `SEEK_DATA`/`SEEK_HOLE`: a sparse regular file.
    SeekHole,
    /// Reading and scanning for zero blocks: block devices, and files without holes.
    Scan,
}

/// The most a single block status reply scans, so one query never stalls the connection long.
const SCAN_LIMIT: u64 = 16 << 20;
/// Offsets, lengths and buffers of `O_DIRECT` reads are aligned to this (any device's logical
/// block size divides it).
const DIRECT_ALIGN: u64 = 4096;
/// The largest single `O_DIRECT` read.
const BOUNCE_LEN: usize = 4 << 20;

thread_local! {
    /// Each serving thread's aligned buffer for `O_DIRECT` reads.
    static BOUNCE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The first `n` bytes of `v` that start at a `DIRECT_ALIGN` boundary, growing `v` as needed.
fn aligned_slice(v: &mut Vec<u8>, n: usize) -> &mut [u8] {
    let want = n + DIRECT_ALIGN as usize;
    if v.len() < want {
        *v = vec![0; want.max(BOUNCE_LEN + DIRECT_ALIGN as usize)];
    }
    let off = v.as_ptr().align_offset(DIRECT_ALIGN as usize);
    &mut v[off..off + n]
}

/// Offsets, lengths and buffers of `O_DIRECT` I/O are aligned to this.
pub const ALIGN: usize = DIRECT_ALIGN as usize;

/// A buffer whose usable part starts at an [`ALIGN`] boundary, so `O_DIRECT` reads can fill it.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> AlignedBuf {
        let mut b = AlignedBuf::default();
        b.resize(len);
        b
    }

    /// Makes the usable part `len` bytes long (its content is unspecified after growing).
    pub fn resize(&mut self, len: usize) {
        if self.v.len() < len + ALIGN {
            self.v = vec![0; len + ALIGN];
        }
        self.off = self.v.as_ptr().align_offset(ALIGN);
        self.len = len;
    }

    /// The usable bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }

    /// The usable bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// A device or image file, read-only, as an NBD backend.
///
/// `free` holds byte ranges known to hold nothing worth copying (free space of a filesystem);
/// they are served exactly like holes: reads return hole chunks and block status reports
/// `HOLE|ZERO`, whatever the bytes there are. `serve --sparsify` is meant to fill it from
/// `osm_fsmap::scan(&file, size).free` through [`Device::with_free_ranges`].
#[derive(Debug)]
pub struct Device {
    file: File,
    /// The same device opened with `O_DIRECT`, for block devices: streaming a whole disk through
    /// the page cache is slower (a loop device: 4x) and evicts everything else on the host.
    direct: Option<File>,
    size: u64,
    detection: ZeroDetection,
    free: Vec<Range<u64>>,
    cache: ScanCache,
}

/// The data a zero scan read, kept for the reads that usually follow (a client asks for block
/// status, then reads the data extents): without it, every data byte of a block device is read
/// twice, and with `O_DIRECT` nothing else caches it.
#[derive(Debug, Default)]
struct ScanCache {
    chunks: Mutex<VecDeque<Cached>>,
    spare: Mutex<Vec<Vec<u8>>>,
}

#[derive(Debug)]
struct Cached {
    start: u64,
    base: usize,
    len: usize,
    bytes: Vec<u8>,
    /// Data bytes not yet read back; the chunk is dropped when it reaches zero.
    unread: u64,
}

/// How many scanned chunks (of up to `BOUNCE_LEN` bytes) the cache holds: enough for four
/// NBD connections of a client that reads what it mapped right away (nbdcopy, qemu-img).
const CACHE_CHUNKS: usize = 48;

impl ScanCache {
    /// An aligned buffer of `n` bytes: (the vector, where the aligned part starts).
    fn buffer(&self, n: usize) -> (Vec<u8>, usize) {
        let mut v = self
            .spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        v.resize(n + DIRECT_ALIGN as usize, 0);
        let base = v.as_ptr().align_offset(DIRECT_ALIGN as usize);
        (v, base)
    }

    fn recycle(&self, v: Vec<u8>) {
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < 4 {
                s.push(v);
            }
        }
    }

    fn insert(&self, c: Cached) {
        let evicted = match self.chunks.lock() {
            Ok(mut q) => {
                q.retain(|x| x.start != c.start);
                q.push_back(c);
                if q.len() > CACHE_CHUNKS {
                    q.pop_front()
                } else {
                    None
                }
            }
            Err(_) => None,
        };
        if let Some(e) = evicted {
            self.recycle(e.bytes);
        }
    }

    /// Fills `buf` from a cached chunk holding all of `offset..offset+buf.len()`.
    fn take(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Ok(mut q) = self.chunks.lock() else {
            return false;
        };
        let end = offset + buf.len() as u64;
        let Some(i) = q
            .iter()
            .position(|c| c.start <= offset && end <= c.start + c.len as u64)
        else {
            return false;
        };
        let c = &mut q[i];
        let at = c.base + (offset - c.start) as usize;
        buf.copy_from_slice(&c.bytes[at..at + buf.len()]);
        c.unread = c.unread.saturating_sub(buf.len() as u64);
        if c.unread == 0 {
            if let Some(done) = q.remove(i) {
                drop(q);
                self.recycle(done.bytes);
            }
        }
        true
    }
}

impl Device {
    /// Opens `path` read-only and picks how to find zeros in it.
    pub fn open(path: &Path) -> Result<Device> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("inspecting {}", path.display()))?;
        let ft = meta.file_type();
        let size = if ft.is_block_device() {
            // Block devices report 0 in st_size; their end is their size.
            io::Seek::seek(&mut &file, io::SeekFrom::End(0))
                .with_context(|| format!("sizing {}", path.display()))?
        } else if ft.is_file() {
            meta.len()
        } else {
            bail!(
                "{} is neither a block device nor a regular file",
                path.display()
            );
        };
        // SEEK_HOLE is only useful if the file has holes: on a fully allocated file (or a
        // filesystem that reports no holes) it says "all data" and scanning finds the zeros.
        let detection = if ft.is_file()
            && size > 0
            && matches!(sys::seek(&file, 0, false), Ok(Some(h)) if h < size)
        {
            ZeroDetection::SeekHole
        } else {
            ZeroDetection::Scan
        };
        let direct = if ft.is_block_device() {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        } else {
            None
        };
        Ok(Device {
            file,
            direct,
            size,
            detection,
            free: Vec::new(),
            cache: ScanCache::default(),
        })
    }

    /// Fills `buf` with the bytes served at `offset`: free ranges, and the holes of a sparse file,
    /// as zeros without reading them (the kernel would only clear pages to return them), the rest
    /// from the device. Returns whether every byte is zero.
    pub fn read_view(&self, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
        let end = offset + buf.len() as u64;
        let mut free: Vec<Range<u64>> = self.free_in(offset..end).collect();
        if self.detection == ZeroDetection::SeekHole {
            free.extend(
                self.raw_extents(offset..end)?
                    .into_iter()
                    .filter(|e| e.flags.contains(AllocFlags::HOLE))
                    .map(|e| e.offset..e.offset + e.length),
            );
            free.sort_by_key(|r| r.start);
        }
        let mut at = offset;
        for f in free.iter().chain(std::iter::once(&(end..end))) {
            if f.start > at {
                let piece = &mut buf[(at - offset) as usize..(f.start - offset) as usize];
                self.read_exact_at(piece, at)?;
            }
            buf[(f.start - offset) as usize..(f.end - offset) as usize].fill(0);
            at = at.max(f.end);
        }
        Ok(zero::is_zero(buf))
    }

    /// Bytes of the free ranges.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.end - r.start).sum()
    }

    /// Reads exactly `buf.len()` bytes at `offset`, directly from the device where alignment
    /// allows (through an aligned bounce buffer), else through the page cache.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let Some(direct) = &self.direct else {
            return self.file.read_exact_at(buf, offset);
        };
        let aligned =
            offset.is_multiple_of(DIRECT_ALIGN) && (buf.len() as u64).is_multiple_of(DIRECT_ALIGN);
        if !aligned {
            return self.file.read_exact_at(buf, offset);
        }
        if buf.as_ptr().align_offset(DIRECT_ALIGN as usize) == 0 {
            return direct.read_exact_at(buf, offset);
        }
        BOUNCE.with(|b| {
            let mut bounce = b.borrow_mut();
            for (i, piece) in buf.chunks_mut(BOUNCE_LEN).enumerate() {
                let at = offset + (i * BOUNCE_LEN) as u64;
                let n = piece.len();
                let space = aligned_slice(&mut bounce, n);
                direct.read_exact_at(space, at)?;
                piece.copy_from_slice(space);
            }
            Ok(())
        })
    }

    /// Treats `free` byte ranges as holes (see the type's documentation).
    pub fn with_free_ranges(mut self, mut free: Vec<Range<u64>>) -> Device {
        free.retain(|r| r.start < r.end);
        free.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        for r in free {
            match merged.last_mut() {
                Some(m) if m.end >= r.start => m.end = m.end.max(r.end),
                _ => merged.push(r),
            }
        }
        self.free = merged;
        self
    }

    /// The device's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How zeros are found.
    pub fn detection(&self) -> ZeroDetection {
        self.detection
    }

    /// The free ranges overlapping `range`, clipped to it.
    fn free_in(&self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self.free.partition_point(|f| f.end <= range.start);
        self.free[first..]
            .iter()
            .take_while(move |f| f.start < range.end)
            .map(move |f| f.start.max(range.start)..f.end.min(range.end))
    }

    /// Extents of `range` from the file itself, ignoring the free map.
    fn raw_extents(&self, range: Range<u64>) -> io::Result<Vec<Extent>> {
        let mut out = Vec::new();
        match self.detection {
            ZeroDetection::SeekHole => {
                let mut at = range.start;
                while at < range.end {
                    let data = sys::seek(&self.file, at, true)?
                        .unwrap_or(self.size)
                        .min(range.end);
                    if data > at {
                        out.push(Extent {
                            offset: at,
                            length: data - at,
                            flags: AllocFlags::HOLE | AllocFlags::ZERO,
                        });
                        at = data;
                        continue;
                    }
                    let hole = sys::seek(&self.file, at, false)?
                        .unwrap_or(self.size)
                        .min(range.end)
                        .max(at + 1);
                    out.push(Extent {
                        offset: at,
                        length: hole - at,
                        flags: AllocFlags::default(),
                    });
                    at = hole;
                }
            }
            ZeroDetection::Scan => {
                let end = range.end.min(range.start + SCAN_LIMIT);
                let mut at = range.start;
                while at < end {
                    let n = ((end - at) as usize).min(BOUNCE_LEN);
                    let (mut bytes, base) = self.cache.buffer(n);
                    let buf = &mut bytes[base..base + n];
                    self.read_exact_at(buf, at)?;
                    let mut pos = 0usize;
                    let mut data = 0u64;
                    for z in zero::zero_runs(at, buf)
                        .into_iter()
                        .chain(std::iter::once(n..n))
                    {
                        if z.start > pos {
                            push_extent(
                                &mut out,
                                at + pos as u64,
                                (z.start - pos) as u64,
                                AllocFlags::default(),
                            );
                            data += (z.start - pos) as u64;
                        }
                        if z.end > z.start {
                            push_extent(
                                &mut out,
                                at + z.start as u64,
                                (z.end - z.start) as u64,
                                AllocFlags::ZERO,
                            );
                        }
                        pos = z.end;
                    }
                    if data > 0 {
                        self.cache.insert(Cached {
                            start: at,
                            base,
                            len: n,
                            bytes,
                            unread: data,
                        });
                    } else {
                        self.cache.recycle(bytes);
                    }
                    at += n as u64;
                }
            }
        }
        Ok(out)
    }
}

fn push_extent(out: &mut Vec<Extent>, offset: u64, length: u64, flags: AllocFlags) {
    match out.last_mut() {
        Some(l) if l.flags == flags && l.end() == offset => l.length += length,
        _ => out.push(Extent {
            offset,
            length,
            flags,
        }),
    }
}

impl Backend for Device {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<Vec<Range<usize>>> {
        let range = offset..offset + buf.len() as u64;
        let free: Vec<Range<u64>> = self.free_in(range.clone()).collect();
        if free.first() == Some(&range) {
            return Ok(std::iter::once(0..buf.len()).collect());
        }
        if !self.cache.take(offset, buf) {
            self.read_exact_at(buf, offset)?;
        }
        let mut runs = zero::zero_runs(offset, buf);
        if !free.is_empty() {
            runs.extend(
                free.iter()
                    .map(|f| (f.start - offset) as usize..(f.end - offset) as usize),
            );
            runs.sort_by_key(|r| r.start);
            let mut merged: Vec<Range<usize>> = Vec::new();
            for r in runs {
                match merged.last_mut() {
                    Some(m) if m.end >= r.start => m.end = m.end.max(r.end),
                    _ => merged.push(r),
                }
            }
            runs = merged;
        }
        Ok(runs)
    }

    /// Free ranges are holes without looking at their bytes; only the gaps between them are
    /// read for zeros (the free space of a filesystem is most of a disk and never crosses the
    /// tunnel, so reading it would be the copy's largest cost).
    fn extents(&self, offset: u64, length: u32) -> io::Result<Vec<Extent>> {
        let range = offset..(offset + u64::from(length)).min(self.size);
        let mut out = Vec::new();
        let mut at = range.start;
        let mut budget = SCAN_LIMIT;
        let gaps_then_free = self
            .free_in(range.clone())
            .map(|f| (f.start, Some(f)))
            .chain(std::iter::once((range.end, None)));
        for (gap_end, free) in gaps_then_free {
            if gap_end > at {
                let scan_end = match self.detection {
                    ZeroDetection::Scan => gap_end.min(at + budget),
                    ZeroDetection::SeekHole => gap_end,
                };
                let raw = self.raw_extents(at..scan_end)?;
                let covered = raw.last().map_or(at, |e| e.end());
                budget = budget.saturating_sub(covered - at);
                for e in raw {
                    push_extent(&mut out, e.offset, e.length, e.flags);
                }
                // A partial answer is allowed; the client asks again from where it ends.
                if covered < gap_end || (budget == 0 && self.detection == ZeroDetection::Scan) {
                    return Ok(out);
                }
            }
            if let Some(f) = free {
                push_extent(
                    &mut out,
                    f.start,
                    f.end - f.start,
                    AllocFlags::HOLE | AllocFlags::ZERO,
                );
                at = f.end;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_view_zeroes_free_ranges_without_reading_them() {
        let f = image(&[1, 3, 3, 2]);
        let d = Device::open(f.path())
            .unwrap()
            .with_free_ranges(std::iter::once(4096..12288).collect());
        let mut buf = vec![9u8; 16384];
        assert!(!d.read_view(0, &mut buf).unwrap());
        assert!(buf[..4096].iter().all(|&b| b == 1));
        assert!(buf[4096..12288].iter().all(|&b| b == 0));
        assert!(buf[12288..].iter().all(|&b| b == 2));
        let mut buf = vec![9u8; 8192];
        assert!(d.read_view(4096, &mut buf).unwrap());
        assert_eq!(d.free_bytes(), 8192);
    }

    fn image(blocks: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for &b in blocks {
            f.write_all(&[b; 4096]).unwrap();
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn scan_reports_zero_blocks() {
        let f = image(&[1, 0, 0, 2]);
        let d = Device::open(f.path()).unwrap();
        assert_eq!(d.detection(), ZeroDetection::Scan);
        let e = d.extents(0, 16384).unwrap();
        assert_eq!(
            e,
            vec![
                Extent {
                    offset: 0,
                    length: 4096,
                    flags: AllocFlags::default()
                },
                Extent {
                    offset: 4096,
                    length: 8192,
                    flags: AllocFlags::ZERO
                },
                Extent {
                    offset: 12288,
                    length: 4096,
                    flags: AllocFlags::default()
                },
            ]
        );
        let mut buf = vec![0u8; 16384];
        assert_eq!(d.read(0, &mut buf).unwrap(), vec![4096..12288]);
    }

    #[test]
    fn free_ranges_are_holes_whatever_their_bytes() {
        let f = image(&[1, 3, 3, 2]);
        let d =
            Device::open(f.path())
                .unwrap()
                .with_free_ranges(vec![8192..12288, 4096..8192, 0..0]);
        let e = d.extents(0, 16384).unwrap();
        assert_eq!(
            e[1],
            Extent {
                offset: 4096,
                length: 8192,
                flags: AllocFlags::HOLE | AllocFlags::ZERO
            }
        );
        assert_eq!(e.len(), 3);
        let mut buf = vec![0u8; 8192];
        assert_eq!(d.read(4096, &mut buf).unwrap(), vec![0..8192]);
        let mut buf = vec![0u8; 12288];
        assert_eq!(d.read(0, &mut buf).unwrap(), vec![4096..12288]);
    }

    #[test]
    fn block_status_does_not_read_free_ranges() {
        let f = image(&[1, 3, 3, 0, 3, 2]);
        let d = Device::open(f.path())
            .unwrap()
            .with_free_ranges(vec![4096..12288, 16384..20480]);
        let e = d.extents(0, 6 * 4096).unwrap();
        let hole = AllocFlags::HOLE | AllocFlags::ZERO;
        let got: Vec<(u64, u64, AllocFlags)> =
            e.iter().map(|x| (x.offset, x.length, x.flags)).collect();
        assert_eq!(
            got,
            vec![
                (0, 4096, AllocFlags::default()),
                (4096, 8192, hole),
                (12288, 4096, AllocFlags::ZERO),
                (16384, 4096, hole),
                (20480, 4096, AllocFlags::default()),
            ]
        );
        // What the scan read is what it cached: only the blocks outside the free ranges.
        let chunks = d.cache.chunks.lock().unwrap();
        let read: Vec<(u64, usize)> = chunks.iter().map(|c| (c.start, c.len)).collect();
        assert_eq!(read, vec![(0, 4096), (20480, 4096)]);
    }

    #[test]
    fn block_status_scans_at_most_the_limit_and_starts_with_free_space() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().write_all_at(&[9; 4096], 0).unwrap();
        f.as_file().set_len(SCAN_LIMIT * 2 + 8192).unwrap();
        f.as_file()
            .write_all_at(&[9; 4096], SCAN_LIMIT * 2 + 4096)
            .unwrap();
        let d = Device::open(f.path()).unwrap();
        let d = Device {
            detection: ZeroDetection::Scan,
            ..d
        }
        .with_free_ranges(std::iter::once(0..4096).collect());
        let e = d.extents(0, u32::MAX).unwrap();
        assert_eq!(e[0].flags, AllocFlags::HOLE | AllocFlags::ZERO);
        let end = e.last().unwrap().end();
        assert_eq!(
            end,
            4096 + SCAN_LIMIT,
            "one reply scans at most SCAN_LIMIT bytes"
        );
        let rest = d.extents(end, u32::MAX).unwrap();
        assert_eq!(rest[0].offset, end);
    }

    #[test]
    fn sparse_files_use_seek_hole() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        f.as_file().write_all_at(&[7; 4096], 65536).unwrap();
        let d = Device::open(f.path()).unwrap();
        assert_eq!(d.detection(), ZeroDetection::SeekHole);
        let e = d.extents(0, 1 << 20).unwrap();
        assert_eq!(e[0].flags, AllocFlags::HOLE | AllocFlags::ZERO);
        assert!(e
            .iter()
            .any(|x| x.flags == AllocFlags::default() && x.offset <= 65536 && x.end() >= 69632));
        assert_eq!(e.last().unwrap().end(), 1 << 20);
    }

    #[test]
    fn the_view_of_a_sparse_file_takes_its_holes_as_zeros_and_its_data_as_written() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        f.as_file().write_all_at(&[7; 4096], 65536).unwrap();
        f.as_file()
            .write_all_at(&[5; 100], (1 << 20) - 100)
            .unwrap();
        let d = Device::open(f.path())
            .unwrap()
            .with_free_ranges(std::iter::once(0..8192).collect());
        assert_eq!(d.detection(), ZeroDetection::SeekHole);
        let mut buf = vec![9u8; 1 << 20];
        assert!(!d.read_view(0, &mut buf).unwrap());
        let mut want = vec![0u8; 1 << 20];
        want[65536..69632].fill(7);
        want[(1 << 20) - 100..].fill(5);
        assert!(buf == want, "the view differs from the file");
        let mut buf = vec![9u8; 65536];
        assert!(
            d.read_view(131072, &mut buf).unwrap(),
            "a hole reads as zeros"
        );
    }
}
