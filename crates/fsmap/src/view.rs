//! A region of the device as a structure sees it: a partition, a logical volume, the whole disk.
//!
//! A view is a list of pieces of the device laid end to end, so an LVM logical volume made of
//! several segments reads as one contiguous space. Filesystem modules work in view offsets only;
//! [`View::to_dev`] turns the free ranges they find back into device offsets.

use crate::error::{Error, Result};
use crate::ReadAt;
use std::ops::Range;

/// Largest single read a structure may ask for (a bitmap, a metadata text, a btree block).
/// Sizes come from the disk, so this caps what a corrupt field can make us allocate.
pub(crate) const MAX_READ: u64 = 64 << 20;

#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Offset of the piece in the view.
    at: u64,
    /// Offset of the piece on the device.
    dev: u64,
    len: u64,
}

/// A contiguous address space mapped onto pieces of the device.
#[derive(Clone)]
pub(crate) struct View<'a> {
    dev: &'a dyn ReadAt,
    pieces: Vec<Piece>,
    len: u64,
}

impl<'a> View<'a> {
    /// The whole device.
    pub(crate) fn whole(dev: &'a dyn ReadAt, size: u64) -> View<'a> {
        let pieces = if size > 0 {
            vec![Piece {
                at: 0,
                dev: 0,
                len: size,
            }]
        } else {
            vec![]
        };
        View {
            dev,
            pieces,
            len: size,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Device offset of the first byte (for findings).
    pub(crate) fn dev_offset(&self) -> u64 {
        self.pieces.first().map(|p| p.dev).unwrap_or(0)
    }

    /// Number of device pieces (1 for a partition).
    #[cfg(test)]
    pub(crate) fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    fn check(&self, off: u64, len: u64) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfRange {
                offset: off,
                len,
                region: self.len,
            }),
        }
    }

    /// Fills `buf` from view offset `off`.
    pub(crate) fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.check(off, buf.len() as u64)?;
        let mut done = 0usize;
        let mut i = self.pieces.partition_point(|p| p.at + p.len <= off);
        while done < buf.len() {
            let p = self
                .pieces
                .get(i)
                .ok_or_else(|| Error::bad("view pieces do not cover the view"))?;
            let pos = off + done as u64;
            let within = pos - p.at;
            let n = ((p.len - within) as usize).min(buf.len() - done);
            let dev_off = p.dev + within;
            self.dev
                .read_exact_at(&mut buf[done..done + n], dev_off)
                .map_err(|source| Error::Io {
                    offset: dev_off,
                    len: n,
                    source,
                })?;
            done += n;
            i += 1;
        }
        Ok(())
    }

    /// Reads `len` bytes at `off` into a new buffer (bounded by [`MAX_READ`]).
    pub(crate) fn read_vec(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        if len > MAX_READ {
            return Err(Error::bad(format!("refusing a {len}-byte metadata read")));
        }
        self.check(off, len)?;
        let mut v = vec![0u8; len as usize];
        self.read(&mut v, off)?;
        Ok(v)
    }

    /// Reads up to `len` bytes at `off`, fewer if the view ends first (for probing signatures).
    pub(crate) fn read_head(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        let n = len.min(self.len.saturating_sub(off));
        self.read_vec(off, n)
    }

    /// The sub-range `off..off+len` of this view.
    #[allow(clippy::single_range_in_vec_init)] // one range: the slice
    pub(crate) fn slice(&self, off: u64, len: u64) -> Result<View<'a>> {
        self.concat(&[off..off.saturating_add(len)])
    }

    /// The given ranges of this view laid end to end (an LV's segments on its PV).
    pub(crate) fn concat(&self, parts: &[Range<u64>]) -> Result<View<'a>> {
        let mut pieces = Vec::new();
        let mut at = 0u64;
        for r in parts {
            if r.start > r.end {
                return Err(Error::bad("inverted range"));
            }
            self.check(r.start, r.end - r.start)?;
            for d in self.to_dev(r.clone()) {
                let len = d.end - d.start;
                // Join with the previous piece when contiguous on the device too.
                match pieces.last_mut() {
                    Some(Piece { dev, len: plen, .. }) if *dev + *plen == d.start => *plen += len,
                    _ => pieces.push(Piece {
                        at,
                        dev: d.start,
                        len,
                    }),
                }
                at += len;
            }
        }
        Ok(View {
            dev: self.dev,
            pieces,
            len: at,
        })
    }

    /// Device ranges holding view range `r` (clipped to the view).
    pub(crate) fn to_dev(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let end = r.end.min(self.len);
        let mut out = Vec::new();
        if r.start >= end {
            return out;
        }
        let mut i = self.pieces.partition_point(|p| p.at + p.len <= r.start);
        let mut pos = r.start;
        while pos < end {
            let Some(p) = self.pieces.get(i) else { break };
            let within = pos - p.at;
            let n = (p.len - within).min(end - pos);
            out.push(p.dev + within..p.dev + within + n);
            pos += n;
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_reads_across_pieces_and_maps_back() {
        let dev: Vec<u8> = (0..=255u8).collect();
        let v = View::whole(&dev, 256);
        let c = v.concat(&[100..110, 10..20, 20..25]).expect("concat");
        assert_eq!(c.len(), 25);
        assert_eq!(c.piece_count(), 2); // 10..20 and 20..25 join
        let mut b = [0u8; 6];
        c.read(&mut b, 7).expect("read");
        assert_eq!(b, [107, 108, 109, 10, 11, 12]);
        assert_eq!(c.to_dev(5..15), vec![105..110, 10..15]);
        assert!(c.read(&mut b, 20).is_err());
        let s = c.slice(8, 4).expect("slice");
        assert_eq!(s.to_dev(0..4), vec![108..110, 10..12]);
        assert!(v.slice(250, 10).is_err());
    }
}
