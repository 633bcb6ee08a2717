/*!
Free-space maps of a block device, read from its own on-disk allocation structures.

`osm-fsmap` answers one question for the conversion-host agent: which byte ranges of a source disk
are *known* to hold no live data, so they can be served as holes (zeros) and never cross the network.
It is what `virt-sparsify` achieves, without booting a libguestfs appliance: [`scan`] reads the
partition tables, volume-manager metadata and filesystem allocation maps directly.

# What is recognised

| layer | format | what is reported free |
|---|---|---|
| partition tables | MBR with extended/logical partitions (EBR chain), GPT (header and entry CRCs, primary and backup compared, protective MBR required) | nothing itself; each partition is scanned |
| volume manager | LVM2 physical volume (label, text metadata) with linear logical volumes | each linear LV is scanned; unallocated extents of a single-PV volume group |
| filesystems | ext2, ext3, ext4 (block bitmaps, `flex_bg`, `uninit_bg`/`BLOCK_UNINIT` groups, `64bit`, `meta_bg`) | blocks free in the bitmaps |
| | XFS v4 and v5 (free-space B+tree by block number, per allocation group) | extents in the bnobt |
| | Linux swap (`SWAPSPACE2`) | every page after the header page |

Everything else (gaps between partitions, unknown partitions, striped/thin/RAID/snapshot logical
volumes, `bigalloc` ext4, filesystems that were not cleanly unmounted) is data.

# The safety rule

A range is reported free only when the structures that own it say, consistently, that nothing lives
there. Any read error, checksum mismatch, count that does not add up, unsupported feature, dirty
journal or log, or ambiguous signature turns the whole structure into data, and a [`Finding`] says
why. Superblocks, group descriptors, bitmaps, inode tables, journals, XFS AG headers and btree
blocks, the XFS log, LVM labels and metadata, partition tables and the swap header are never free:
they are either absent from the free-space maps or checked against them. Free ranges are shrunk
inward to 4 KiB boundaries of the device, so a free range never covers part of a used block.

[`scan`] never fails and never panics on bad input; the worst it does is report nothing free.

# Choices worth knowing

- Unallocated LVM extents are free only when the volume group has this single PV and every
  segment in it is plain `striped`/linear: then this PV's metadata is the whole truth about its
  extents. With several PVs, a pvmove in progress, or thin/RAID/mirror/snapshot/cache segments
  (whose PV use lives in hidden sub-LVs), they are data.
- ext: the filesystem must be cleanly unmounted (`s_state` valid, no `needs_recovery`, an empty
  journal); XFS: the log must end in an unmount record. A guest that was not shut down cleanly is
  copied whole; its journal replay on first boot needs the blocks the on-disk maps call free.
- Swap areas holding a hibernation image are data.
- MBR tables are read with 512-byte sectors (what virtual disks present); GPT is found with 512-
  or 4096-byte sectors.
- Containers nest at most 8 deep, and at most 4096 regions are examined in one scan.

# Using it

Scan once, before serving: `let map = scan(&file, size)`, log [`Map::summary`], then answer each
block-status or read request from [`Map::free_in`] (ranges reported free read as zeros). The
crate has no dependencies and does no I/O beyond positional reads through [`ReadAt`]. Its tests
(`cargo test -p osm-fsmap`) build images with the real tools (mkfs.ext4, mkfs.xfs, mkswap,
sfdisk, sgdisk, LVM); those that need root and loop devices say SKIPPED loudly without them.

# Example

```
// A 1 MiB Linux swap area: the header page is kept, the 255 pages after it are free.
let mut disk = vec![0xA5u8; 1 << 20];
disk[..4096].fill(0);
disk[1024..1028].copy_from_slice(&1u32.to_le_bytes()); // version 1
disk[1028..1032].copy_from_slice(&255u32.to_le_bytes()); // last page
disk[4086..4096].copy_from_slice(b"SWAPSPACE2");

let map = osm_fsmap::scan(&disk[..], disk.len() as u64);
assert_eq!(map.free, vec![4096..1 << 20]);
assert_eq!(map.free_in(0..8192), vec![4096..8192]); // what a block-status reply needs
assert_eq!(map.findings[0].kind, "swap");
println!("{}", map.summary());

// Random bytes are not recognised: nothing is free.
let noise: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
assert!(osm_fsmap::scan(&noise, noise.len() as u64).free.is_empty());
```
*/
#![deny(missing_docs)]

mod bytes;
mod crc;
mod error;
mod ext;
mod gpt;
mod lvm;
mod lvmtext;
mod mbr;
mod ranges;
mod swap;
mod view;
mod walk;
mod xfs;

use std::ops::Range;

/// Positional reads from a device or image.
pub trait ReadAt {
    /// Fills all of `buf` from byte `offset`, or fails (a short read is an error).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// An in-memory image (tests, and small devices read whole).
impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|s| Some(s..s.checked_add(buf.len())?))
            .and_then(|r| self.get(r))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// The result of [`scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Map {
    /// Sorted, non-overlapping, merged device byte ranges known to hold no live data (their
    /// content is irrelevant). Each starts and ends on a 4 KiB boundary.
    pub free: Vec<Range<u64>>,
    /// What was found where, in scan order (a container before what it contains), including the
    /// structures that were copied as data and why.
    pub findings: Vec<Finding>,
}

/// One recognised (or rejected) structure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    /// Device offset of the structure's first byte.
    pub offset: u64,
    /// Size of the region it occupies (for a multi-segment logical volume, the LV size).
    pub length: u64,
    /// `"gpt"`, `"mbr"`, `"lvm2-pv"`, `"lvm2-lv"`, `"ext2"`, `"ext3"`, `"ext4"`, `"xfs"`, `"swap"`,
    /// or `"unknown"`.
    pub kind: String,
    /// Human-readable: what was recognised, or why the region is copied as data.
    pub detail: String,
    /// Free bytes reported inside this structure (for containers, the sum over their contents).
    pub free_bytes: u64,
}

/// Scans the first `size` bytes of `dev` and returns what is known to be free.
///
/// Never fails: I/O errors, inconsistencies, unsupported features and unknown layouts only mean
/// "no free ranges there", with a [`Finding`] explaining why.
pub fn scan<R: ReadAt + ?Sized>(dev: &R, size: u64) -> Map {
    // Type-erase once, so the format modules are compiled once rather than per reader type.
    struct Erased<'a, R: ?Sized>(&'a R);
    impl<R: ReadAt + ?Sized> ReadAt for Erased<'_, R> {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            self.0.read_exact_at(buf, offset)
        }
    }
    let erased = Erased(dev);
    walk::scan_device(&erased, size)
}

impl Map {
    /// Total number of free bytes.
    pub fn free_bytes(&self) -> u64 {
        ranges::total(&self.free)
    }

    /// The free parts of `range`, in order (for answering block-status and read requests; a
    /// binary search, so cheap per request).
    pub fn free_in(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let first = self.free.partition_point(|r| r.end <= range.start);
        self.free[first..]
            .iter()
            .take_while(|r| r.start < range.end)
            .map(|r| r.start.max(range.start)..r.end.min(range.end))
            .filter(|r| r.start < r.end)
            .collect()
    }

    /// One line for the log: what was recognised, what is copied as data and why, and how many
    /// bytes are skipped.
    pub fn summary(&self) -> String {
        let mut seen: Vec<String> = Vec::new();
        let mut data: Vec<String> = Vec::new();
        for f in &self.findings {
            let what = format!("{} at {}", f.kind, bytes::human(f.offset));
            if f.detail.contains("copied as data") {
                data.push(format!("{what} ({})", f.detail));
            } else {
                seen.push(what);
            }
        }
        let size = self.findings.first().map(|f| f.length).unwrap_or(0);
        let free = self.free_bytes();
        let pct = if size > 0 {
            free as f64 * 100.0 / size as f64
        } else {
            0.0
        };
        let mut s = format!(
            "sparsify: {} of {} free ({pct:.1}%), not copied",
            bytes::human(free),
            bytes::human(size)
        );
        if !seen.is_empty() {
            s.push_str("; recognised: ");
            s.push_str(&seen.join(", "));
        }
        if !data.is_empty() {
            s.push_str("; copied as data: ");
            s.push_str(&data.join("; "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_in_clips_to_the_request() {
        let m = Map {
            free: vec![0..4096, 8192..16384, 20480..24576],
            findings: vec![],
        };
        assert_eq!(m.free_in(4000..9000), vec![4000..4096, 8192..9000]);
        assert_eq!(m.free_in(16384..20480), Vec::<Range<u64>>::new());
        assert_eq!(m.free_in(0..u64::MAX), m.free);
        assert_eq!(m.free_in(9000..9000), Vec::<Range<u64>>::new());
        assert_eq!(m.free_bytes(), 4096 * 4);
    }
}
