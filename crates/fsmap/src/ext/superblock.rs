//! The superblock and the group descriptors: the geometry, features and checksums everything
//! else relies on.

use super::{
    COMPAT_SPARSE_SUPER2, INCOMPAT_64BIT, INCOMPAT_COMPRESSION, INCOMPAT_CSUM_SEED,
    INCOMPAT_JOURNAL_DEV, INCOMPAT_KNOWN, INCOMPAT_META_BG, INCOMPAT_MMP, INCOMPAT_RECOVER, MAGIC,
    RO_BIGALLOC, RO_GDT_CSUM, RO_HAS_SNAPSHOT, RO_KNOWN, RO_METADATA_CSUM, RO_SPARSE_SUPER,
    SB_OFFSET, STATE_ERROR, STATE_VALID,
};
use crate::bytes::{bytes, le16, le32, u8_at};
use crate::crc::{crc16, crc32c_raw};
use crate::error::{ensure, Error, Result};
use crate::view::View;

pub(super) struct Sb {
    pub(super) bs: u64,
    pub(super) blocks: u64,
    pub(super) first: u64,
    pub(super) bpg: u64,
    pub(super) ipg: u64,
    pub(super) inodes: u64,
    pub(super) inode_size: u64,
    pub(super) compat: u32,
    pub(super) incompat: u32,
    pub(super) ro: u32,
    pub(super) uuid: [u8; 16],
    pub(super) reserved_gdt: u64,
    pub(super) journal_inum: u32,
    pub(super) journal_dev: u32,
    pub(super) desc_size: u64,
    pub(super) first_meta_bg: u64,
    pub(super) backup_bgs: [u64; 2],
    pub(super) csum_seed: u32,
    pub(super) mmp_block: u64,
    pub(super) groups: u64,
    /// Descriptors per block.
    pub(super) dpb: u64,
}

impl Sb {
    pub(super) fn has(&self, ro: u32) -> bool {
        self.ro & ro != 0
    }
    fn group_csum(&self) -> bool {
        self.has(RO_GDT_CSUM) || self.has(RO_METADATA_CSUM)
    }
    pub(super) fn group_start(&self, g: u64) -> u64 {
        self.first + g * self.bpg
    }
    pub(super) fn group_len(&self, g: u64) -> u64 {
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
    pub(super) fn meta_bg(&self) -> bool {
        self.incompat & INCOMPAT_META_BG != 0
    }
    /// Blocks at the start of group `g` holding the superblock copy and descriptor blocks.
    pub(super) fn base_meta(&self, g: u64) -> u64 {
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
    pub(super) fn inode_table_blocks(&self) -> u64 {
        (self.ipg * self.inode_size).div_ceil(self.bs)
    }
}

pub(super) fn superblock(view: &View) -> Result<Sb> {
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

pub(super) struct Gd {
    pub(super) block_bitmap: u64,
    pub(super) inode_bitmap: u64,
    pub(super) inode_table: u64,
    pub(super) free: u64,
    pub(super) flags: u16,
    pub(super) bitmap_csum: u32,
}

pub(super) fn descriptors(view: &View, sb: &Sb) -> Result<Vec<Gd>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
