//! ext2, ext3 and ext4.
//!
//! On-disk structure (little-endian): the superblock sits at byte 1024 (magic 0xEF53 at 0x38). The
//! filesystem is split into block groups of `s_blocks_per_group` blocks starting at
//! `s_first_data_block`. Group descriptors (32 bytes, or `s_desc_size` with `64bit`) follow the
//! superblock, or with `meta_bg` sit at the start of each meta-group; each names the group's block
//! bitmap, inode bitmap and inode table (anywhere in the filesystem under `flex_bg`), its free block
//! count, flags and checksums. A set bit in a block bitmap means the block is in use. Groups with
//! `BLOCK_UNINIT` (honoured only with `uninit_bg`/`gdt_csum` or `metadata_csum`) have no
//! initialised bitmap: their used blocks are the superblock backup, descriptor and reserved
//! descriptor blocks at the group start plus whatever group metadata lies inside the group, which is
//! what the kernel computes too. The journal is inode `s_journal_inum` (normally 8); its blocks are
//! found through its extent tree or block map.
//!
//! Before anything is reported free, the filesystem must be cleanly unmounted (valid state, no
//! `needs_recovery`, an empty journal), use only features whose allocation we understand (no
//! `bigalloc`, snapshots, compression), and pass these checks: superblock, descriptor and bitmap
//! checksums where the features provide them; every descriptor's free count equals the free bits
//! we count for that group; no two metadata areas overlap; and no superblock copy, descriptor,
//! bitmap, inode table, journal or MMP block is among the free blocks.

use crate::bytes::{be32, bytes, le16, le32, u8_at};
use crate::crc::{crc16, crc32c_raw};
use crate::error::{bail, ensure, Error, Result};
use crate::ranges;
use crate::view::View;
use crate::walk::Leaf;
use std::ops::Range;

const SB_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;

// s_state
const STATE_VALID: u16 = 1;
const STATE_ERROR: u16 = 2;
// compat
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
// incompat
const INCOMPAT_COMPRESSION: u32 = 0x1;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// filetype, meta_bg, extents, 64bit, mmp, flex_bg, ea_inode, csum_seed, largedir, inline_data,
/// encrypt, casefold: none changes what a block bitmap means.
const INCOMPAT_KNOWN: u32 =
    0x2 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000;
// ro_compat
const RO_SPARSE_SUPER: u32 = 0x1;
const RO_GDT_CSUM: u32 = 0x10;
const RO_HAS_SNAPSHOT: u32 = 0x80;
const RO_BIGALLOC: u32 = 0x200;
const RO_METADATA_CSUM: u32 = 0x400;
/// sparse_super, large_file, btree_dir, huge_file, gdt_csum, dir_nlink, extra_isize, quota,
/// metadata_csum, readonly, project, shared_blocks, verity, orphan_present.
const RO_KNOWN: u32 = 0x1
    | 0x2
    | 0x4
    | 0x8
    | 0x10
    | 0x20
    | 0x40
    | 0x100
    | 0x400
    | 0x1000
    | 0x2000
    | 0x4000
    | 0x8000
    | 0x10000;
// bg_flags
const BG_BLOCK_UNINIT: u16 = 0x2;
// inode
const EXTENTS_FL: u32 = 0x80000;
const EXTENT_MAGIC: u16 = 0xF30A;
const JBD2_MAGIC: u32 = 0xC03B_3998;

pub(crate) fn probe(head: &[u8]) -> bool {
    le16(head, SB_OFFSET as usize + 0x38).ok() == Some(MAGIC)
}

/// ext2, ext3 or ext4, by features, the way blkid names them.
pub(crate) fn kind_hint(head: &[u8]) -> &'static str {
    let sb = bytes(head, SB_OFFSET as usize, 1024).unwrap_or(&[]);
    kind_of(
        le32(sb, 0x5C).unwrap_or(0),
        le32(sb, 0x60).unwrap_or(0),
        le32(sb, 0x64).unwrap_or(0),
    )
}

fn kind_of(compat: u32, incompat: u32, ro: u32) -> &'static str {
    // Anything beyond what ext3 knows (extents, flex_bg, 64bit, huge_file, gdt_csum, dir_nlink,
    // extra_isize, metadata_csum, ...) is ext4.
    if incompat & !(0x2 | 0x4 | 0x8 | 0x10) != 0 || ro & !(0x1 | 0x2 | 0x4) != 0 {
        "ext4"
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    }
}

struct Sb {
    bs: u64,
    blocks: u64,
    first: u64,
    bpg: u64,
    ipg: u64,
    inodes: u64,
    inode_size: u64,
    compat: u32,
    incompat: u32,
    ro: u32,
    uuid: [u8; 16],
    reserved_gdt: u64,
    journal_inum: u32,
    journal_dev: u32,
    desc_size: u64,
    first_meta_bg: u64,
    backup_bgs: [u64; 2],
    csum_seed: u32,
    mmp_block: u64,
    groups: u64,
    /// Descriptors per block.
    dpb: u64,
}

impl Sb {
    fn has(&self, ro: u32) -> bool {
        self.ro & ro != 0
    }
    fn group_csum(&self) -> bool {
        self.has(RO_GDT_CSUM) || self.has(RO_METADATA_CSUM)
    }
    fn group_start(&self, g: u64) -> u64 {
        self.first + g * self.bpg
    }
    fn group_len(&self, g: u64) -> u64 {
        self.bpg.min(self.blocks - self.group_start(g))
    }
    fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return g == self.backup_bgs[0] || g == self.backup_bgs[1];
        }
        if g <= 1 || !self.has(RO_SPARSE_SUPER) {
            return true;
        }
        if g % 2 == 0 {
            return false;
        }
        [3u64, 5, 7].iter().any(|&b| {
            let mut p = b;
            while p < g {
                p *= b;
            }
            p == g
        })
    }
    fn meta_bg(&self) -> bool {
        self.incompat & INCOMPAT_META_BG != 0
    }
    /// Blocks at the start of group `g` holding the superblock copy and descriptor blocks.
    fn base_meta(&self, g: u64) -> u64 {
        let sb = u64::from(self.has_super(g));
        if !self.meta_bg() || g / self.dpb < self.first_meta_bg {
            if sb == 0 {
                return 0;
            }
            let gdt = if self.meta_bg() {
                self.first_meta_bg
            } else {
                self.groups.div_ceil(self.dpb)
            };
            sb + gdt + self.reserved_gdt
        } else {
            let i = g % self.dpb;
            sb + u64::from(i == 0 || i == 1 || i == self.dpb - 1)
        }
    }
    /// Block holding descriptor block number `n`.
    fn desc_block(&self, n: u64) -> u64 {
        if !self.meta_bg() || n < self.first_meta_bg {
            self.first + 1 + n
        } else {
            let g = n * self.dpb;
            self.group_start(g) + u64::from(self.has_super(g))
        }
    }
    fn inode_table_blocks(&self) -> u64 {
        (self.ipg * self.inode_size).div_ceil(self.bs)
    }
}

fn superblock(view: &View) -> Result<Sb> {
    let b = view.read_vec(SB_OFFSET, 1024)?;
    ensure!(le16(&b, 0x38)? == MAGIC, "no ext superblock magic");
    let compat = le32(&b, 0x5C)?;
    let incompat = le32(&b, 0x60)?;
    let ro = le32(&b, 0x64)?;
    let log_bs = le32(&b, 0x18)?;
    ensure!(log_bs <= 6, "block size 1024 << {log_bs} out of range");
    let bs = 1024u64 << log_bs;
    ensure!(
        ro & RO_BIGALLOC == 0,
        "bigalloc (cluster allocation) is not supported"
    );
    ensure!(
        ro & RO_HAS_SNAPSHOT == 0,
        "has_snapshot filesystems are not supported"
    );
    ensure!(
        incompat & INCOMPAT_JOURNAL_DEV == 0,
        "external journal device"
    );
    ensure!(
        incompat & INCOMPAT_COMPRESSION == 0,
        "compression is not supported"
    );
    ensure!(
        incompat & INCOMPAT_RECOVER == 0,
        "needs journal recovery (not cleanly unmounted)"
    );
    ensure!(
        incompat & !INCOMPAT_KNOWN == 0,
        "unknown incompatible features {:#x}",
        incompat & !INCOMPAT_KNOWN
    );
    ensure!(
        ro & !RO_KNOWN == 0,
        "unknown read-only-compatible features {:#x}",
        ro & !RO_KNOWN
    );
    let state = le16(&b, 0x3A)?;
    ensure!(
        state & STATE_VALID != 0 && state & STATE_ERROR == 0,
        "not cleanly unmounted or has errors (state {state:#x})"
    );
    if ro & RO_METADATA_CSUM != 0 {
        ensure!(u8_at(&b, 0x175)? == 1, "unknown metadata checksum type");
        ensure!(
            crc32c_raw(!0, bytes(&b, 0, 0x3FC)?) == le32(&b, 0x3FC)?,
            "superblock checksum mismatch"
        );
    }
    let rev = le32(&b, 0x4C)?;
    ensure!(rev <= 1, "revision {rev} unknown");
    let bits64 = incompat & INCOMPAT_64BIT != 0;
    let mut blocks = u64::from(le32(&b, 0x4)?);
    if bits64 {
        blocks |= u64::from(le32(&b, 0x150)?) << 32;
    }
    let first = u64::from(le32(&b, 0x14)?);
    ensure!(
        first == u64::from(bs == 1024),
        "first data block {first} unexpected for {bs}-byte blocks"
    );
    ensure!(
        le32(&b, 0x1C)? == log_bs,
        "cluster size differs from block size without bigalloc"
    );
    let bpg = u64::from(le32(&b, 0x20)?);
    ensure!(
        bpg > 0 && bpg <= 8 * bs && bpg % 8 == 0,
        "blocks per group {bpg} out of range"
    );
    ensure!(
        u64::from(le32(&b, 0x24)?) == bpg,
        "clusters per group differs from blocks per group"
    );
    let ipg = u64::from(le32(&b, 0x28)?);
    ensure!(
        ipg > 0 && ipg <= 8 * bs,
        "inodes per group {ipg} out of range"
    );
    let inode_size = if rev == 0 {
        128
    } else {
        u64::from(le16(&b, 0x58)?)
    };
    ensure!(
        inode_size.is_power_of_two() && (128..=bs).contains(&inode_size),
        "inode size {inode_size} out of range"
    );
    ensure!(blocks > first, "block count {blocks} too small");
    let bytes_len = blocks
        .checked_mul(bs)
        .ok_or_else(|| Error::bad("block count overflows"))?;
    ensure!(
        bytes_len <= view.len(),
        "filesystem is {} bytes but its region has {}",
        bytes_len,
        view.len()
    );
    let groups = (blocks - first).div_ceil(bpg);
    let inodes = u64::from(le32(&b, 0)?);
    ensure!(
        Some(inodes) == groups.checked_mul(ipg),
        "inode count {inodes} is not groups x inodes per group"
    );
    let desc_size = if bits64 {
        u64::from(le16(&b, 0xFE)?)
    } else {
        32
    };
    ensure!(
        desc_size.is_power_of_two() && desc_size >= if bits64 { 64 } else { 32 } && desc_size <= bs,
        "descriptor size {desc_size} out of range"
    );
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(bytes(&b, 0x68, 16)?);
    let csum_seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
        le32(&b, 0x270)?
    } else {
        crc32c_raw(!0, &uuid)
    };
    let sb = Sb {
        bs,
        blocks,
        first,
        bpg,
        ipg,
        inodes,
        inode_size,
        compat,
        incompat,
        ro,
        uuid,
        reserved_gdt: u64::from(le16(&b, 0xCE)?),
        journal_inum: le32(&b, 0xE0)?,
        journal_dev: le32(&b, 0xE4)?,
        desc_size,
        first_meta_bg: u64::from(le32(&b, 0x104)?),
        backup_bgs: [u64::from(le32(&b, 0x24C)?), u64::from(le32(&b, 0x250)?)],
        csum_seed,
        mmp_block: if incompat & INCOMPAT_MMP != 0 {
            u64::from(le32(&b, 0x168)?) | u64::from(le32(&b, 0x16C)?) << 32
        } else {
            0
        },
        groups,
        dpb: bs / desc_size,
    };
    ensure!(
        !sb.meta_bg() || sb.first_meta_bg <= sb.groups.div_ceil(sb.dpb),
        "first_meta_bg {} out of range",
        sb.first_meta_bg
    );
    Ok(sb)
}

struct Gd {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    free: u64,
    flags: u16,
    bitmap_csum: u32,
}

fn descriptors(view: &View, sb: &Sb) -> Result<Vec<Gd>> {
    let mut out = Vec::with_capacity(sb.groups as usize);
    let nblocks = sb.groups.div_ceil(sb.dpb);
    let ds = sb.desc_size as usize;
    let big = ds >= 64;
    for n in 0..nblocks {
        let blk = sb.desc_block(n);
        ensure!(blk < sb.blocks, "descriptor block {blk} past the end");
        let b = view.read_vec(blk * sb.bs, sb.bs)?;
        for i in 0..sb.dpb.min(sb.groups - n * sb.dpb) {
            let g = n * sb.dpb + i;
            let d = bytes(&b, i as usize * ds, ds)?;
            let hi = |off: usize| -> Result<u64> {
                Ok(if big {
                    u64::from(le32(d, off)?) << 32
                } else {
                    0
                })
            };
            let hi16 = |off: usize| -> Result<u64> {
                Ok(if big {
                    u64::from(le16(d, off)?) << 16
                } else {
                    0
                })
            };
            let gd = Gd {
                block_bitmap: u64::from(le32(d, 0)?) | hi(0x20)?,
                inode_bitmap: u64::from(le32(d, 4)?) | hi(0x24)?,
                inode_table: u64::from(le32(d, 8)?) | hi(0x28)?,
                free: u64::from(le16(d, 0xC)?) | hi16(0x2C)?,
                flags: if sb.group_csum() { le16(d, 0x12)? } else { 0 },
                bitmap_csum: u32::from(le16(d, 0x18)?)
                    | if ds >= 0x3A {
                        u32::from(le16(d, 0x38)?) << 16
                    } else {
                        0
                    },
            };
            if sb.group_csum() {
                let stored = le16(d, 0x1E)?;
                let g32 = (g as u32).to_le_bytes();
                let computed = if sb.has(RO_METADATA_CSUM) {
                    let mut c = crc32c_raw(sb.csum_seed, &g32);
                    c = crc32c_raw(c, bytes(d, 0, 0x1E)?);
                    c = crc32c_raw(c, &[0, 0]);
                    c = crc32c_raw(c, bytes(d, 0x20, ds - 0x20)?);
                    (c & 0xFFFF) as u16
                } else {
                    let mut c = crc16(0xFFFF, &sb.uuid);
                    c = crc16(c, &g32);
                    c = crc16(c, bytes(d, 0, 0x1E)?);
                    crc16(c, bytes(d, 0x20, ds - 0x20)?)
                };
                ensure!(stored == computed, "group {g} descriptor checksum mismatch");
            }
            out.push(gd);
        }
    }
    Ok(out)
}

/// Physical blocks of inode `ino` (data and mapping blocks), merged.
fn inode_blocks(
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

/// Appends the runs of clear bits among the first `n` bits of `bm` as (first bit, count).
fn clear_runs(bm: &[u8], n: u64, base: u64, out: &mut Vec<(u64, u64)>) -> u64 {
    let mut free = 0;
    let mut run: Option<u64> = None;
    let mut i = 0u64;
    while i < n {
        let byte = bm.get((i / 8) as usize).copied().unwrap_or(0xFF);
        // Whole bytes at once when aligned: all used or all free.
        if i % 8 == 0 && i + 8 <= n && (byte == 0xFF || byte == 0) {
            if byte == 0xFF {
                if let Some(s) = run.take() {
                    out.push((base + s, i - s));
                    free += i - s;
                }
            } else if run.is_none() {
                run = Some(i);
            }
            i += 8;
            continue;
        }
        let used = byte >> (i % 8) & 1 == 1;
        match (used, run) {
            (true, Some(s)) => {
                out.push((base + s, i - s));
                free += i - s;
                run = None;
            }
            (false, None) => run = Some(i),
            _ => {}
        }
        i += 1;
    }
    if let Some(s) = run {
        out.push((base + s, n - s));
        free += n - s;
    }
    free
}

pub(crate) fn scan(view: &View) -> Result<Leaf> {
    let sb = superblock(view)?;
    let kind = kind_of(sb.compat, sb.incompat, sb.ro);
    let gds = descriptors(view, &sb)?;
    let itb = sb.inode_table_blocks();

    // Every metadata area: superblock copies and descriptors at group starts, bitmaps, tables.
    let mut meta: Vec<(Range<u64>, &'static str)> = Vec::new();
    for (g, gd) in gds.iter().enumerate() {
        let g = g as u64;
        let base = sb.base_meta(g);
        if base > 0 {
            meta.push((
                sb.group_start(g)..sb.group_start(g) + base,
                "superblock/descriptor copy",
            ));
        }
        meta.push((
            gd.block_bitmap..gd.block_bitmap.saturating_add(1),
            "block bitmap",
        ));
        meta.push((
            gd.inode_bitmap..gd.inode_bitmap.saturating_add(1),
            "inode bitmap",
        ));
        meta.push((
            gd.inode_table..gd.inode_table.saturating_add(itb),
            "inode table",
        ));
    }
    if sb.mmp_block != 0 {
        meta.push((sb.mmp_block..sb.mmp_block.saturating_add(1), "MMP block"));
    }
    let mut journal_note = String::new();
    if sb.compat & COMPAT_HAS_JOURNAL != 0 {
        if sb.journal_inum != 0 {
            let (jblocks, first, size) = inode_blocks(view, &sb, &gds, u64::from(sb.journal_inum))?;
            let Some(first) = first else {
                bail!("journal has no first block")
            };
            let js = view.read_vec(first * sb.bs, 1024)?;
            ensure!(
                be32(&js, 0)? == JBD2_MAGIC,
                "journal superblock magic wrong"
            );
            ensure!(
                matches!(be32(&js, 4)?, 3 | 4),
                "journal superblock type unknown"
            );
            ensure!(be32(&js, 28)? == 0, "journal holds transactions to replay");
            journal_note = format!(", journal {}", crate::bytes::human(size));
            for r in jblocks {
                meta.push((r, "journal"));
            }
        } else {
            ensure!(
                sb.journal_dev != 0,
                "has_journal without a journal inode or device"
            );
            journal_note = ", external journal".into();
        }
    }
    for (r, what) in &meta {
        ensure!(
            r.start >= sb.first && r.end <= sb.blocks && r.start < r.end,
            "{what} at block {} outside the filesystem",
            r.start
        );
    }
    meta.sort_by_key(|(r, _)| (r.start, r.end));
    for w in meta.windows(2) {
        ensure!(
            w[0].0.end <= w[1].0.start,
            "{} at block {} overlaps {} at block {}",
            w[0].1,
            w[0].0.start,
            w[1].1,
            w[1].0.start
        );
    }

    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut uninit = 0;
    for (g, gd) in gds.iter().enumerate() {
        let g = g as u64;
        let start = sb.group_start(g);
        let len = sb.group_len(g);
        let free = if gd.flags & BG_BLOCK_UNINIT != 0 {
            uninit += 1;
            // No bitmap on disk: everything in the group but its metadata is free.
            let mut at = start;
            let mut free = 0;
            let end = start + len;
            let from = meta.partition_point(|(r, _)| r.end <= start);
            for (r, _) in meta[from..].iter().take_while(|(r, _)| r.start < end) {
                if r.start > at {
                    runs.push((at, r.start - at));
                    free += r.start - at;
                }
                at = at.max(r.end);
            }
            if at < end {
                runs.push((at, end - at));
                free += end - at;
            }
            free
        } else {
            let bm = view.read_vec(gd.block_bitmap * sb.bs, sb.bs)?;
            if sb.has(RO_METADATA_CSUM) {
                let c = crc32c_raw(sb.csum_seed, bytes(&bm, 0, (sb.bpg / 8) as usize)?);
                let c = if sb.desc_size >= 0x3A { c } else { c & 0xFFFF };
                ensure!(
                    c == gd.bitmap_csum,
                    "group {g} block bitmap checksum mismatch"
                );
            }
            clear_runs(&bm, len, start, &mut runs)
        };
        if free != gd.free {
            bail!(
                "group {g}: bitmap shows {free} free blocks, descriptor says {}",
                gd.free
            );
        }
    }
    // Runs are in block order; so is `meta`. No metadata block may be free.
    let mut mi = 0;
    for &(s, n) in &runs {
        while mi < meta.len() && meta[mi].0.end <= s {
            mi += 1;
        }
        if let Some((r, what)) = meta.get(mi) {
            ensure!(
                r.start >= s + n,
                "{what} at block {} is marked free",
                r.start
            );
        }
    }
    let free_blocks: u64 = runs.iter().map(|&(_, n)| n).sum();
    let mut features = Vec::new();
    if sb.incompat & INCOMPAT_FLEX_BG != 0 {
        features.push("flex_bg");
    }
    if sb.incompat & INCOMPAT_64BIT != 0 {
        features.push("64bit");
    }
    if sb.meta_bg() {
        features.push("meta_bg");
    }
    if sb.incompat & INCOMPAT_EXTENTS != 0 {
        features.push("extents");
    }
    if sb.has(RO_METADATA_CSUM) {
        features.push("metadata_csum");
    } else if sb.has(RO_GDT_CSUM) {
        features.push("uninit_bg");
    }
    let detail = format!(
        "{kind}, {} blocks of {} ({} free), {} groups ({uninit} BLOCK_UNINIT){}{}",
        sb.blocks,
        crate::bytes::human(sb.bs),
        free_blocks,
        sb.groups,
        if features.is_empty() {
            String::new()
        } else {
            format!(", {}", features.join(" "))
        },
        journal_note
    );
    Ok(Leaf {
        kind,
        detail,
        free: ranges::from_units(runs, sb.bs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_runs_finds_zero_bits() {
        let bm = [0b1111_0001u8, 0x00, 0xFF, 0b0000_0011];
        let mut out = Vec::new();
        let free = clear_runs(&bm, 30, 100, &mut out);
        assert_eq!(out, vec![(101, 3), (108, 8), (26 + 100, 4)]);
        assert_eq!(free, 15);
    }

    #[test]
    fn sparse_super_groups() {
        let sb = Sb {
            bs: 4096,
            blocks: 1 << 30,
            first: 0,
            bpg: 32768,
            ipg: 8192,
            inodes: 0,
            inode_size: 256,
            compat: 0,
            incompat: 0,
            ro: RO_SPARSE_SUPER,
            uuid: [0; 16],
            reserved_gdt: 0,
            journal_inum: 0,
            journal_dev: 0,
            desc_size: 32,
            first_meta_bg: 0,
            backup_bgs: [0, 0],
            csum_seed: 0,
            mmp_block: 0,
            groups: 32768,
            dpb: 128,
        };
        let with: Vec<u64> = (0..100).filter(|&g| sb.has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }
}
