//! MBR (DOS) partition tables, with extended partitions and their chain of EBRs.
//!
//! On-disk structure (sectors of 512 bytes, the logical sector size of virtual disks): sector 0
//! ends with `55 AA`; at byte 446 sit four 16-byte entries: boot flag (0x00 or 0x80), CHS start,
//! type, CHS end, start LBA (u32 LE), sector count (u32 LE). A type 0x05, 0x0F or 0x85 entry is an
//! extended partition: its first sector is an EBR laid out like an MBR, whose first entry is a
//! logical partition (start relative to this EBR) and whose second entry links to the next EBR
//! (start relative to the extended partition). Type 0xEE marks a protective MBR in front of a GPT.
//!
//! Like Linux, an entry with a sector count is a partition whatever its type; the contents decide
//! what it holds. The tables, EBRs and the gaps between partitions are data. Anything that is not
//! the plain standard form (overlaps, EBRs with several data entries, links going backwards, a
//! partition past the end of the disk) makes the whole table data.

use crate::bytes::{has, le32, u8_at};
use crate::error::{bail, ensure, Result};
use crate::view::View;
use crate::walk::{Child, Container};

const SECTOR: u64 = 512;
/// Linux caps partitions per disk at 256; an EBR chain longer than that is corrupt or a loop.
const MAX_LOGICAL: usize = 256;

/// What the signature check saw.
pub(crate) struct Probe {
    /// An entry of type 0xEE (protective MBR of a GPT disk).
    pub protective: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    status: u8,
    ptype: u8,
    start: u64,
    count: u64,
}

impl Entry {
    fn empty(&self) -> bool {
        self.count == 0
    }
    fn extended(&self) -> bool {
        matches!(self.ptype, 0x05 | 0x0F | 0x85)
    }
}

fn entries(sector: &[u8]) -> Result<[Entry; 4]> {
    let mut out = [Entry {
        status: 0,
        ptype: 0,
        start: 0,
        count: 0,
    }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let o = 446 + 16 * i;
        *e = Entry {
            status: u8_at(sector, o)?,
            ptype: u8_at(sector, o + 4)?,
            start: u64::from(le32(sector, o + 8)?),
            count: u64::from(le32(sector, o + 12)?),
        };
    }
    Ok(out)
}

/// Boot sectors of filesystems that also end in `55 AA` (an EFI system partition is FAT).
fn volume_boot_record(head: &[u8]) -> bool {
    has(head, 3, b"NTFS    ")
        || has(head, 3, b"EXFAT   ")
        || has(head, 54, b"FAT")
        || has(head, 82, b"FAT")
}

pub(crate) fn probe(head: &[u8]) -> Option<Probe> {
    if !has(head, 510, &[0x55, 0xAA]) || volume_boot_record(head) {
        return None;
    }
    let es = entries(head).ok()?;
    // Boot flags other than 0/0x80 mean this is a boot sector (FAT, NTFS, a loader), not a table.
    if es.iter().any(|e| e.status != 0 && e.status != 0x80) || es.iter().all(Entry::empty) {
        return None;
    }
    Some(Probe {
        protective: es.iter().any(|e| e.ptype == 0xEE && !e.empty()),
    })
}

pub(crate) fn scan<'a>(view: &View<'a>) -> Result<Container<'a>> {
    let total = view.len() / SECTOR;
    let mbr = view.read_vec(0, SECTOR)?;
    let es = entries(&mbr)?;
    ensure!(
        !es.iter().any(|e| e.ptype == 0xEE && !e.empty()),
        "protective MBR without a GPT header"
    );
    // (start LBA, count, number) of every data partition; sectors holding tables.
    let mut parts: Vec<(u64, u64, usize)> = Vec::new();
    let mut tables: Vec<u64> = vec![0];
    let mut extended = None;
    for (i, e) in es.iter().enumerate() {
        if e.empty() {
            continue;
        }
        if e.extended() {
            ensure!(extended.is_none(), "more than one extended partition");
            extended = Some(*e);
        } else {
            parts.push((e.start, e.count, i + 1));
        }
    }
    let mut logical = 0;
    if let Some(ext) = extended {
        let ext_end = ext.start.checked_add(ext.count).filter(|&e| e <= total);
        let Some(ext_end) = ext_end else {
            bail!("extended partition ends past the disk")
        };
        ensure!(ext.start >= 1, "extended partition starts at sector 0");
        let mut cur = ext.start;
        loop {
            ensure!(logical < MAX_LOGICAL, "EBR chain longer than {MAX_LOGICAL}");
            let ebr = view.read_vec(cur * SECTOR, SECTOR)?;
            if !has(&ebr, 510, &[0x55, 0xAA]) {
                // Linux ends the chain here too; the rest of the extended partition is data.
                break;
            }
            tables.push(cur);
            let es = entries(&ebr)?;
            ensure!(
                es[2].empty() && es[3].empty(),
                "EBR at sector {cur} uses its third or fourth entry"
            );
            let (data, link) = (es[0], es[1]);
            ensure!(
                !data.extended() && (link.empty() || link.extended()),
                "EBR at sector {cur} is not in standard form"
            );
            if !data.empty() {
                let start = cur.saturating_add(data.start);
                let end = start.saturating_add(data.count);
                ensure!(
                    start > cur && end <= ext_end,
                    "logical partition at EBR {cur} leaves the extended partition"
                );
                parts.push((start, data.count, 5 + logical));
                logical += 1;
            }
            if link.empty() {
                break;
            }
            let next = ext.start.saturating_add(link.start);
            ensure!(
                next > cur && next < ext_end,
                "EBR link at sector {cur} does not go forward"
            );
            cur = next;
        }
    }
    parts.sort_unstable();
    let mut prev_end = 1u64;
    for &(start, count, n) in &parts {
        let end = start.saturating_add(count);
        ensure!(
            start >= prev_end,
            "partition {n} overlaps another or the MBR"
        );
        ensure!(
            end <= total,
            "partition {n} ends past the disk ({end} > {total} sectors)"
        );
        ensure!(
            !tables.iter().any(|&t| t >= start && t < end),
            "partition {n} covers a partition table sector"
        );
        prev_end = end;
    }
    let mut children = Vec::new();
    for &(start, count, n) in &parts {
        children.push(Child {
            label: format!("p{n}"),
            view: view.slice(start * SECTOR, count * SECTOR)?,
            own: None,
            scan: true,
        });
    }
    children.sort_by_key(|c| c.view.dev_offset());
    let detail = match extended {
        Some(_) => format!(
            "MBR, {} primary partitions and an extended one with {logical} logical",
            parts.len() - logical
        ),
        None => format!("MBR, {} primary partitions", parts.len()),
    };
    Ok(Container {
        detail,
        children,
        free: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_and_ntfs_boot_sectors_are_not_tables() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        s[446 + 4] = 0x83;
        s[446 + 12] = 8;
        assert!(probe(&s).is_some());
        for (off, sig) in [
            (3, &b"NTFS    "[..]),
            (82, b"FAT32   "),
            (54, b"FAT16   "),
            (3, b"EXFAT   "),
        ] {
            let mut v = s.clone();
            v[off..off + sig.len()].copy_from_slice(sig);
            assert!(probe(&v).is_none(), "{sig:?}");
        }
    }
}
