//! XFS, v4 and v5 (CRC) formats.
//!
//! On-disk structure (big-endian, except the little-endian CRC fields of v5): the filesystem is a
//! row of allocation groups (AGs) of `sb_agblocks` blocks. The first sectors of each AG hold a
//! superblock copy, the AGF (free-space header), the AGI (inode header) and the AGFL. The AGF names
//! the roots and heights of two B+trees indexing the same free extents: the bnobt by start block
//! and the cntbt by length. Each btree block starts with a short-form header (magic, level, record
//! count, siblings; v5 adds block number, LSN, filesystem UUID, owning AG and CRC); leaves hold
//! `(startblock, blockcount)` records, nodes hold keys followed by child pointers (AG block
//! numbers). The internal log sits at `sb_logstart` (an AG-encoded block number).
//!
//! Only extents in the bnobt are reported free; AG headers, the AGFL, every btree block, inode
//! chunks, the log and all file data are absent from it and stay data. Before trusting the tree:
//! the superblock and AGF pass their CRCs (v5) and sanity checks, every btree block has the right
//! magic, level, AG, block number and CRC, records are sorted and in range, the bnobt total equals
//! the AGF's free count, the cntbt holds exactly the same extents, and no btree block, header or
//! log block is among the free extents. The log must be clean: its head must directly follow an
//! unmount record, otherwise replaying it could allocate blocks the on-disk trees still show free.

use crate::bytes::{be16, be32, be64, bytes, has, le32};
use crate::crc::crc32c;
use crate::error::{bail, ensure, Error, Result};
use crate::ranges;
use crate::view::View;
use crate::walk::Leaf;
use std::collections::HashSet;
use std::ops::Range;

const SB_MAGIC: &[u8] = b"XFSB";
const AGF_MAGIC: &[u8] = b"XAGF";
/// bnobt and cntbt magics, v4 then v5.
const ABTB: [&[u8]; 2] = [b"ABTB", b"AB3B"];
const ABTC: [&[u8]; 2] = [b"ABTC", b"AB3C"];
/// v5 incompat: ftype, sparse inodes, meta_uuid, bigtime, nrext64 (needsrepair 0x10 is refused).
const INCOMPAT_KNOWN: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x20;
const INCOMPAT_META_UUID: u32 = 0x4;
const INCOMPAT_NEEDSREPAIR: u32 = 0x10;
const MAX_BTREE_LEVELS: u32 = 9;
const LOG_MAGIC: u32 = 0xFEED_BABE;
const XLOG_UNMOUNT_TRANS: u8 = 0x20;
const XFS_LOG_CLIENT: u8 = 0xAA;
/// Log I/O in flight at a crash spans at most 8 iclogs of 256 KiB; checking this far on both
/// sides of the head catches a torn tail.
const LOG_WINDOW_BB: u64 = 8192;

pub(crate) fn probe(head: &[u8]) -> bool {
    has(head, 0, SB_MAGIC)
}

struct Sb {
    bs: u64,
    sectsize: u64,
    dblocks: u64,
    agblocks: u64,
    agcount: u64,
    agblklog: u32,
    logstart: u64,
    logblocks: u64,
    v5: bool,
    uuid: Vec<u8>,
}

impl Sb {
    fn ag_len(&self, ag: u64) -> u64 {
        self.agblocks.min(self.dblocks - ag * self.agblocks)
    }
    /// Byte offset of AG block `agbno` of AG `ag`.
    fn byte(&self, ag: u64, agbno: u64) -> u64 {
        (ag * self.agblocks + agbno) * self.bs
    }
}

fn superblock(view: &View) -> Result<Sb> {
    let head = view.read_head(0, 512)?;
    let sectsize = u64::from(be16(&head, 102)?);
    ensure!(
        sectsize.is_power_of_two() && (512..=32768).contains(&sectsize),
        "sector size {sectsize} out of range"
    );
    let b = view.read_vec(0, sectsize)?;
    ensure!(has(&b, 0, SB_MAGIC), "no XFS superblock magic");
    let bs = u64::from(be32(&b, 4)?);
    ensure!(
        bs.is_power_of_two() && (512..=65536).contains(&bs) && bs >= sectsize,
        "block size {bs} out of range"
    );
    ensure!(
        1u64 << bytes(&b, 120, 1)?[0].min(63) == bs,
        "block log disagrees with block size"
    );
    let version = be16(&b, 100)? & 0xF;
    ensure!(
        version == 4 || version == 5,
        "superblock version {version} unknown"
    );
    let v5 = version == 5;
    ensure!(
        bytes(&b, 126, 1)?[0] == 0,
        "mkfs did not finish (sb_inprogress)"
    );
    let mut uuid = bytes(&b, 32, 16)?.to_vec();
    if v5 {
        let stored = le32(&b, 224)?;
        let mut c = b.clone();
        c[224..228].fill(0);
        ensure!(crc32c(&c) == stored, "superblock CRC mismatch");
        let incompat = be32(&b, 216)?;
        ensure!(
            incompat & INCOMPAT_NEEDSREPAIR == 0,
            "marked as needing xfs_repair"
        );
        ensure!(
            incompat & !INCOMPAT_KNOWN == 0,
            "unknown incompatible features {:#x}",
            incompat & !INCOMPAT_KNOWN
        );
        ensure!(
            be32(&b, 220)? == 0,
            "log holds incompatible items (not cleanly unmounted)"
        );
        if incompat & INCOMPAT_META_UUID != 0 {
            uuid = bytes(&b, 248, 16)?.to_vec();
        }
    }
    let dblocks = be64(&b, 8)?;
    let agblocks = u64::from(be32(&b, 84)?);
    let agcount = u64::from(be32(&b, 88)?);
    let agblklog = u32::from(bytes(&b, 124, 1)?[0]);
    ensure!(
        agblocks >= 8 && agcount >= 1,
        "AG geometry {agcount} x {agblocks} invalid"
    );
    ensure!(
        agblklog < 32 && agblocks <= 1 << agblklog && agblocks > (1 << agblklog) / 2,
        "AG block log invalid"
    );
    ensure!(
        (agcount - 1) * agblocks < dblocks
            && agcount.checked_mul(agblocks).is_some_and(|n| dblocks <= n),
        "data blocks {dblocks} do not match {agcount} AGs of {agblocks}"
    );
    let len = dblocks
        .checked_mul(bs)
        .ok_or_else(|| Error::bad("block count overflows"))?;
    ensure!(
        len <= view.len(),
        "filesystem is {len} bytes but its region has {}",
        view.len()
    );
    Ok(Sb {
        bs,
        sectsize,
        dblocks,
        agblocks,
        agcount,
        agblklog,
        logstart: be64(&b, 48)?,
        logblocks: u64::from(be32(&b, 96)?),
        v5,
        uuid,
    })
}

/// Cycle number of a 512-byte log block (a record header keeps it after its magic).
fn cycle_of(bb: &[u8]) -> Result<u32> {
    let w = be32(bb, 0)?;
    if w == LOG_MAGIC {
        be32(bb, 4)
    } else {
        Ok(w)
    }
}

/// Checks the internal log ends with an unmount record (a clean unmount). Returns the log's
/// (AG, first AG block, block count).
fn log_clean(view: &View, sb: &Sb) -> Result<(u64, u64, u64)> {
    ensure!(
        sb.logstart != 0,
        "external log device: cannot check the log is clean"
    );
    let ag = sb.logstart >> sb.agblklog;
    let agbno = sb.logstart & ((1 << sb.agblklog) - 1);
    ensure!(
        ag < sb.agcount && sb.logblocks > 0 && agbno + sb.logblocks <= sb.ag_len(ag),
        "log at {ag}/{agbno} (+{}) outside its AG",
        sb.logblocks
    );
    let base = sb.byte(ag, agbno);
    let n = sb.logblocks * sb.bs / 512;
    let bb = |i: u64| -> Result<Vec<u8>> { view.read_vec(base + i * 512, 512) };
    let cyc = |i: u64| -> Result<u32> { cycle_of(&bb(i)?) };
    let first = cyc(0)?;
    let last = cyc(n - 1)?;
    ensure!(first != 0, "log was never written");
    // Blocks before the head carry the current cycle, blocks after it the previous one.
    let head = if first == last {
        n
    } else {
        ensure!(
            last == first - 1,
            "log cycles {first} and {last} do not follow each other"
        );
        let (mut lo, mut hi) = (0u64, n - 1); // cyc(lo) == first, cyc(hi) == last
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if cyc(mid)? == first {
                lo = mid
            } else {
                hi = mid
            }
        }
        hi
    };
    // Verify the window around the head block by block (a torn write would show up here).
    let from = head.saturating_sub(LOG_WINDOW_BB);
    let to = (head + LOG_WINDOW_BB).min(n);
    let win = view.read_vec(base + from * 512, (to - from) * 512)?;
    for i in from..to {
        let c = cycle_of(bytes(&win, ((i - from) * 512) as usize, 512)?)?;
        let want = if i < head { first } else { last };
        ensure!(
            c == want,
            "log block {i} has cycle {c}, expected {want}: log not cleanly written"
        );
    }
    // Find the last record header before the head.
    let head = head % n;
    let mut found = None;
    for k in 1..=(LOG_WINDOW_BB.min(n)) {
        let i = (head + n - k) % n;
        let b = bb(i)?;
        if be32(&b, 0)? == LOG_MAGIC {
            found = Some((i, b));
            break;
        }
    }
    let Some((hb, h)) = found else {
        bail!("no log record header before the log head")
    };
    let version = be32(&h, 8)?;
    let len = u64::from(be32(&h, 12)?);
    let lsn = be64(&h, 16)?;
    let ops = be32(&h, 40)?;
    let size = u64::from(be32(&h, 320)?);
    let hblks = if version & 2 != 0 && size > 32768 {
        size.div_ceil(32768)
    } else {
        1
    };
    ensure!(
        lsn & 0xFFFF_FFFF == hb,
        "log record header at {hb} names block {}",
        lsn & 0xFFFF_FFFF
    );
    ensure!(
        (hb + hblks + len.div_ceil(512)) % n == head,
        "last log record does not end at the head: log not clean"
    );
    ensure!(
        ops == 1,
        "last log record is not an unmount record: log not clean"
    );
    let op = bb((hb + hblks) % n)?;
    let oh = bytes(&op, 8, 2)?;
    ensure!(
        oh[0] == XFS_LOG_CLIENT && oh[1] & XLOG_UNMOUNT_TRANS != 0,
        "last log record is not an unmount record: log not clean"
    );
    Ok((ag, agbno, sb.logblocks))
}

/// What walking a free-space btree found.
struct Walked {
    /// (start AG block, length) records, in tree order.
    recs: Vec<(u64, u64)>,
    /// AG blocks holding the tree itself.
    blocks: Vec<u64>,
}

/// Walks one free-space btree of one AG; returns its records and the blocks it occupies.
fn walk_btree(
    view: &View,
    sb: &Sb,
    ag: u64,
    ag_len: u64,
    root: u64,
    levels: u32,
    magic: &[u8],
) -> Result<Walked> {
    ensure!(
        (1..=MAX_BTREE_LEVELS).contains(&levels),
        "btree height {levels} out of range"
    );
    let hdr = if sb.v5 { 56 } else { 16 };
    let bs = sb.bs as usize;
    let leaf_max = (bs - hdr) / 8;
    let node_max = (bs - hdr) / 12;
    let mut recs = Vec::new();
    let mut blocks = Vec::new();
    let mut seen = HashSet::new();
    // (block, expected level); depth-first in key order keeps records sorted.
    let mut stack = vec![(root, levels - 1)];
    while let Some((agbno, level)) = stack.pop() {
        ensure!(
            agbno > 0 && agbno < ag_len,
            "btree block {agbno} outside AG {ag}"
        );
        ensure!(
            seen.insert(agbno),
            "btree block {agbno} of AG {ag} reached twice"
        );
        blocks.push(agbno);
        let b = view.read_vec(sb.byte(ag, agbno), sb.bs)?;
        ensure!(
            has(&b, 0, magic),
            "btree block {agbno} of AG {ag} has the wrong magic"
        );
        ensure!(
            u32::from(be16(&b, 4)?) == level,
            "btree block {agbno} of AG {ag} at the wrong level"
        );
        let n = be16(&b, 6)? as usize;
        if sb.v5 {
            let daddr = sb.byte(ag, agbno) / 512;
            ensure!(
                be64(&b, 16)? == daddr,
                "btree block {agbno} of AG {ag} names another address"
            );
            ensure!(
                bytes(&b, 32, 16)? == sb.uuid.as_slice(),
                "btree block {agbno} of AG {ag} has another UUID"
            );
            ensure!(
                u64::from(be32(&b, 48)?) == ag,
                "btree block {agbno} belongs to another AG"
            );
            let stored = le32(&b, 52)?;
            let mut c = b.clone();
            c[52..56].fill(0);
            ensure!(
                crc32c(&c) == stored,
                "btree block {agbno} of AG {ag} CRC mismatch"
            );
        }
        if level == 0 {
            ensure!(
                n <= leaf_max,
                "btree leaf {agbno} of AG {ag} holds too many records"
            );
            for i in 0..n {
                let o = hdr + 8 * i;
                recs.push((u64::from(be32(&b, o)?), u64::from(be32(&b, o + 4)?)));
            }
        } else {
            ensure!(
                n >= 1 && n <= node_max,
                "btree node {agbno} of AG {ag} has {n} pointers"
            );
            let ptrs = hdr + 8 * node_max;
            // Pushed in reverse so the leftmost child is visited first.
            for i in (0..n).rev() {
                stack.push((u64::from(be32(&b, ptrs + 4 * i)?), level - 1));
            }
        }
        ensure!(
            recs.len() <= ag_len as usize,
            "btree of AG {ag} holds more records than blocks"
        );
    }
    Ok(Walked { recs, blocks })
}

pub(crate) fn scan(view: &View) -> Result<Leaf> {
    let sb = superblock(view)?;
    let (log_ag, log_start, log_len) = log_clean(view, &sb)?;
    // AG headers: superblock, AGF, AGI, AGFL, one sector each.
    let hdr_blocks = (4 * sb.sectsize).div_ceil(sb.bs);
    let mut free: Vec<Range<u64>> = Vec::new();
    let mut free_blocks = 0u64;
    for ag in 0..sb.agcount {
        let ag_len = sb.ag_len(ag);
        let a = view.read_vec(sb.byte(ag, 0) + sb.sectsize, sb.sectsize)?;
        ensure!(has(&a, 0, AGF_MAGIC), "AGF {ag} magic wrong");
        ensure!(be32(&a, 4)? == 1, "AGF {ag} version unknown");
        ensure!(
            u64::from(be32(&a, 8)?) == ag,
            "AGF {ag} has sequence number {}",
            be32(&a, 8)?
        );
        ensure!(
            u64::from(be32(&a, 12)?) == ag_len,
            "AGF {ag} length disagrees with the superblock"
        );
        if sb.v5 {
            ensure!(
                bytes(&a, 64, 16)? == sb.uuid.as_slice(),
                "AGF {ag} has another UUID"
            );
            let stored = le32(&a, 216)?;
            let mut c = a.clone();
            c[216..220].fill(0);
            ensure!(crc32c(&c) == stored, "AGF {ag} CRC mismatch");
        }
        let freeblks = u64::from(be32(&a, 52)?);
        let v = usize::from(sb.v5);
        let Walked {
            recs: mut bno,
            blocks: bno_blocks,
        } = walk_btree(
            view,
            &sb,
            ag,
            ag_len,
            u64::from(be32(&a, 16)?),
            be32(&a, 28)?,
            ABTB[v],
        )?;
        let Walked {
            recs: mut cnt,
            blocks: cnt_blocks,
        } = walk_btree(
            view,
            &sb,
            ag,
            ag_len,
            u64::from(be32(&a, 20)?),
            be32(&a, 32)?,
            ABTC[v],
        )?;
        let mut prev_end = hdr_blocks;
        let mut total = 0;
        for &(s, n) in &bno {
            ensure!(
                n > 0 && s >= prev_end,
                "AG {ag} free extents unsorted, overlapping or over the headers"
            );
            let end = s.checked_add(n).filter(|&e| e <= ag_len);
            let Some(end) = end else {
                bail!("AG {ag} free extent {s}+{n} past the AG")
            };
            if ag == log_ag {
                ensure!(
                    end <= log_start || s >= log_start + log_len,
                    "AG {ag} free extent {s}+{n} over the log"
                );
            }
            total += n;
            prev_end = end;
        }
        ensure!(
            total == freeblks,
            "AG {ag}: bnobt holds {total} free blocks, AGF says {freeblks}"
        );
        bno.sort_unstable_by_key(|&(s, n)| (n, s));
        cnt.sort_unstable_by_key(|&(s, n)| (n, s));
        ensure!(bno == cnt, "AG {ag}: the two free-space btrees disagree");
        bno.sort_unstable();
        for b in bno_blocks.iter().chain(&cnt_blocks) {
            let i = bno.partition_point(|&(s, _)| s <= *b);
            if i > 0 {
                let (s, n) = bno[i - 1];
                ensure!(
                    *b >= s + n,
                    "btree block {b} of AG {ag} lies in a free extent"
                );
            }
        }
        for &(s, n) in &bno {
            free.push(sb.byte(ag, s)..sb.byte(ag, s + n));
        }
        free_blocks += total;
    }
    ranges::merge(&mut free);
    let detail = format!(
        "XFS v{}, {} blocks of {} in {} AGs ({} free in the bnobt), internal log {} clean",
        if sb.v5 { 5 } else { 4 },
        sb.dblocks,
        crate::bytes::human(sb.bs),
        sb.agcount,
        free_blocks,
        crate::bytes::human(log_len * sb.bs)
    );
    Ok(Leaf {
        kind: "xfs",
        detail,
        free,
    })
}
