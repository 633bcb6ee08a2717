//! The journal's blocks, found through its inode's extent tree or block map.

use super::superblock::{Gd, Sb};
use super::{EXTENTS_FL, EXTENT_MAGIC};
use crate::bytes::{bytes, le16, le32};
use crate::error::{ensure, Error, Result};
use crate::ranges;
use crate::view::View;
use std::ops::Range;

/// Physical blocks of inode `ino` (data and mapping blocks), merged.
pub(super) fn inode_blocks(
    view: &View,
    sb: &Sb,
    gds: &[Gd],
    ino: u64,
) -> Result<(Vec<Range<u64>>, Option<u64>, u64)> {
    ensure!(ino >= 1 && ino <= sb.inodes, "inode {ino} out of range");
    let g = (ino - 1) / sb.ipg;
    let idx = (ino - 1) % sb.ipg;
    let gd = gds
        .get(g as usize)
        .ok_or_else(|| Error::bad("inode group out of range"))?;
    ensure!(
        gd.inode_table < sb.blocks,
        "inode table of group {g} past the end"
    );
    let off = gd.inode_table * sb.bs + idx * sb.inode_size;
    let inode = view.read_vec(off, 128)?;
    let size = u64::from(le32(&inode, 4)?) | u64::from(le32(&inode, 0x6C)?) << 32;
    let flags = le32(&inode, 0x20)?;
    let iblock = bytes(&inode, 0x28, 60)?.to_vec();
    // Each entry is a block the walk must not pass twice; this bounds the work on a corrupt tree.
    let limit = size.div_ceil(sb.bs) + 1024;
    let mut w = Walk {
        view,
        sb,
        out: Vec::new(),
        first: None,
        visited: 0,
        limit,
    };
    if flags & EXTENTS_FL != 0 {
        w.extent_node(&iblock, 5)?;
    } else {
        for i in 0..12 {
            let b = u64::from(le32(&iblock, i * 4)?);
            w.data(i as u64, b, 1)?;
        }
        let mut logical = 12u64;
        for (i, depth) in [(12usize, 1u32), (13, 2), (14, 3)] {
            let b = u64::from(le32(&iblock, i * 4)?);
            w.indirect(b, depth, &mut logical)?;
        }
    }
    let mut v = w.out;
    ranges::merge(&mut v);
    Ok((v, w.first, size))
}

struct Walk<'v, 'a> {
    view: &'v View<'a>,
    sb: &'v Sb,
    out: Vec<Range<u64>>,
    /// Physical block of logical block 0.
    first: Option<u64>,
    visited: u64,
    limit: u64,
}

impl Walk<'_, '_> {
    fn block(&mut self, b: u64, n: u64) -> Result<()> {
        ensure!(
            b >= self.sb.first && b.checked_add(n).is_some_and(|e| e <= self.sb.blocks),
            "journal block {b}+{n} out of range"
        );
        self.visited += n;
        ensure!(
            self.visited <= self.limit,
            "journal maps more blocks than its size"
        );
        self.out.push(b..b + n);
        Ok(())
    }
    fn data(&mut self, logical: u64, b: u64, n: u64) -> Result<()> {
        if b == 0 {
            return Ok(()); // a hole in a block map
        }
        if logical == 0 {
            self.first = Some(b);
        }
        self.block(b, n)
    }
    fn read_block(&self, b: u64) -> Result<Vec<u8>> {
        self.view.read_vec(b * self.sb.bs, self.sb.bs)
    }
    fn extent_node(&mut self, node: &[u8], depth_left: u32) -> Result<()> {
        ensure!(
            le16(node, 0)? == EXTENT_MAGIC,
            "journal extent header magic wrong"
        );
        let entries = le16(node, 2)? as usize;
        let max = le16(node, 4)? as usize;
        let depth = le16(node, 6)?;
        ensure!(
            entries <= max && 12 + 12 * max <= node.len(),
            "journal extent header counts wrong"
        );
        ensure!(
            u32::from(depth) < depth_left,
            "journal extent tree too deep"
        );
        for i in 0..entries {
            let e = bytes(node, 12 + 12 * i, 12)?;
            if depth == 0 {
                let logical = u64::from(le32(e, 0)?);
                let mut len = u64::from(le16(e, 4)?);
                if len > 32768 {
                    len -= 32768; // unwritten extent: still allocated
                }
                let start = u64::from(le16(e, 6)?) << 32 | u64::from(le32(e, 8)?);
                if logical == 0 {
                    self.first = Some(start);
                }
                self.block(start, len)?;
            } else {
                let child = u64::from(le32(e, 4)?) | u64::from(le16(e, 8)?) << 32;
                self.block(child, 1)?;
                let b = self.read_block(child)?;
                self.extent_node(&b, u32::from(depth))?;
            }
        }
        Ok(())
    }
    fn indirect(&mut self, b: u64, depth: u32, logical: &mut u64) -> Result<()> {
        let per = self.sb.bs / 4;
        if b == 0 {
            *logical += per.pow(depth);
            return Ok(());
        }
        self.block(b, 1)?;
        let blk = self.read_block(b)?;
        for i in 0..per as usize {
            let c = u64::from(le32(&blk, i * 4)?);
            if depth == 1 {
                self.data(*logical, c, 1)?;
                *logical += 1;
            } else {
                self.indirect(c, depth - 1, logical)?;
            }
        }
        Ok(())
    }
}
