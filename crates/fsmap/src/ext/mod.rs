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

mod journal;
mod superblock;

use crate::bytes::{be32, bytes, le16, le32};
use crate::crc::crc32c_raw;
use crate::error::{bail, ensure, Result};
use crate::ranges;
use crate::view::View;
use crate::walk::Leaf;
use journal::inode_blocks;
use std::ops::Range;
use superblock::{descriptors, superblock};

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
}
