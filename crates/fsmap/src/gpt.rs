//! GUID partition tables.
//!
//! On-disk structure (little-endian, LBA = logical sector, 512 or 4096 bytes): LBA 0 holds a
//! protective MBR with a type 0xEE entry starting at LBA 1. LBA 1 holds the primary header:
//! `"EFI PART"`, revision, header size (92), header CRC-32 (computed with the field zeroed),
//! `my_lba`, `alternate_lba` (the backup header, normally the last LBA), first and last usable LBA,
//! disk GUID, entry array LBA, entry count, entry size (128), entry array CRC-32. Each entry: type
//! GUID (all zero = unused), unique GUID, first and last LBA (inclusive), attributes, UTF-16 name.
//!
//! Both headers are checked. Like the kernel, a valid primary is used, and a valid backup stands in
//! for a corrupt primary; but when both are valid and disagree on the partitions, which one the
//! guest would use is a guess, so the disk is data. Invalid entries, overlapping partitions and
//! partitions over the header or entry areas also make it data. Gaps are data.

use crate::bytes::{bytes, has, le16, le32, le64};
use crate::crc::crc32;
use crate::error::{bail, ensure, Error, Result};
use crate::view::View;
use crate::walk::{Child, Container};

const SIG: &[u8] = b"EFI PART";

pub(crate) fn probe(head: &[u8]) -> bool {
    has(head, 512, SIG) || has(head, 4096, SIG)
}

#[derive(Clone, Debug)]
struct Header {
    alternate: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Vec<u8>,
    count: u64,
    entry_size: u64,
    entries_crc: u32,
    entries: Vec<u8>,
}

/// Reads and fully checks the header at `lba` and its entry array.
fn header(view: &View, ss: u64, lba: u64) -> Result<Header> {
    let total = view.len() / ss;
    ensure!(lba < total, "GPT header LBA {lba} is past the disk");
    let b = view.read_vec(lba * ss, ss)?;
    ensure!(has(&b, 0, SIG), "no GPT signature at LBA {lba}");
    let size = le32(&b, 12)? as usize;
    ensure!(
        (92..=ss as usize).contains(&size),
        "GPT header size {size} out of range"
    );
    let mut h = bytes(&b, 0, size)?.to_vec();
    let stored = le32(&h, 16)?;
    h[16..20].fill(0);
    ensure!(crc32(&h) == stored, "GPT header CRC mismatch at LBA {lba}");
    ensure!(
        le64(&b, 24)? == lba,
        "GPT header at LBA {lba} names another LBA as its own"
    );
    let hdr_first = le64(&b, 40)?;
    let hdr_last = le64(&b, 48)?;
    ensure!(
        hdr_first <= hdr_last && hdr_last < total,
        "GPT usable range {hdr_first}..={hdr_last} invalid"
    );
    let count = u64::from(le32(&b, 80)?);
    let entry_size = u64::from(le32(&b, 84)?);
    // The kernel accepts only the 128-byte entries it knows.
    ensure!(entry_size == 128, "GPT entry size {entry_size} is not 128");
    let entries_lba = le64(&b, 72)?;
    let len = count * entry_size;
    let entries = view.read_vec(
        entries_lba
            .checked_mul(ss)
            .ok_or_else(|| Error::bad("GPT entry LBA overflows"))?,
        len,
    )?;
    let entries_crc = le32(&b, 88)?;
    ensure!(
        crc32(&entries) == entries_crc,
        "GPT entry array CRC mismatch (header at LBA {lba})"
    );
    let arr_end = entries_lba + len.div_ceil(ss);
    // The array must lie outside the usable area, or partitions could be written over it.
    ensure!(
        arr_end <= hdr_first || entries_lba > hdr_last,
        "GPT entry array overlaps the usable area"
    );
    Ok(Header {
        alternate: le64(&b, 32)?,
        first_usable: hdr_first,
        last_usable: hdr_last,
        disk_guid: bytes(&b, 56, 16)?.to_vec(),
        count,
        entry_size,
        entries_crc,
        entries,
    })
}

fn same_table(a: &Header, b: &Header) -> bool {
    a.first_usable == b.first_usable
        && a.last_usable == b.last_usable
        && a.disk_guid == b.disk_guid
        && a.count == b.count
        && a.entries_crc == b.entries_crc
        && a.entries == b.entries
}

fn protective_mbr(view: &View) -> Result<()> {
    let s = view.read_vec(0, 512)?;
    ensure!(
        has(&s, 510, &[0x55, 0xAA]),
        "GPT without a protective MBR (the kernel ignores it)"
    );
    for i in 0..4 {
        let o = 446 + 16 * i;
        if bytes(&s, o + 4, 1)?[0] == 0xEE && le32(&s, o + 8)? == 1 {
            return Ok(());
        }
    }
    bail!("GPT without a protective MBR entry (the kernel ignores it)")
}

fn utf16_name(b: &[u8]) -> String {
    let units: Vec<u16> = (0..36)
        .filter_map(|i| le16(b, 2 * i).ok())
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

pub(crate) fn scan<'a>(view: &View<'a>) -> Result<Container<'a>> {
    let head = view.read_head(0, 8192)?;
    let ss = if has(&head, 512, SIG) { 512 } else { 4096 };
    protective_mbr(view)?;
    let total = view.len() / ss;
    ensure!(total >= 3, "disk too small for a GPT");
    let primary = header(view, ss, 1);
    let alt_lba = match &primary {
        Ok(p) => p.alternate,
        Err(_) => total - 1,
    };
    let backup = header(view, ss, alt_lba);
    let (h, note) = match (primary, backup) {
        (Ok(p), Ok(b)) => {
            ensure!(same_table(&p, &b), "primary and backup GPT disagree");
            (p, "primary and backup headers valid")
        }
        (Ok(p), Err(_)) => (p, "backup header missing or invalid, primary used"),
        (Err(_), Ok(b)) => (b, "primary header invalid, backup used"),
        (Err(e), Err(_)) => return Err(e),
    };
    let mut parts: Vec<(u64, u64, usize, String)> = Vec::new();
    for i in 0..h.count as usize {
        let e = bytes(&h.entries, i * h.entry_size as usize, h.entry_size as usize)?;
        if bytes(e, 0, 16)?.iter().all(|&b| b == 0) {
            continue;
        }
        let first = le64(e, 32)?;
        let last = le64(e, 40)?;
        ensure!(
            first <= last && first >= h.first_usable && last <= h.last_usable,
            "GPT entry {} ({first}..={last}) outside the usable area",
            i + 1
        );
        parts.push((first, last, i + 1, utf16_name(bytes(e, 56, 72)?)));
    }
    parts.sort_unstable();
    for w in parts.windows(2) {
        ensure!(
            w[0].1 < w[1].0,
            "GPT partitions {} and {} overlap",
            w[0].2,
            w[1].2
        );
    }
    let mut children = Vec::new();
    for (first, last, n, name) in &parts {
        let label = if name.is_empty() {
            format!("p{n}")
        } else {
            format!("p{n} '{name}'")
        };
        children.push(Child {
            label,
            view: view.slice(first * ss, (last - first + 1) * ss)?,
            own: None,
            scan: true,
        });
    }
    let detail = format!(
        "GPT, {}-byte sectors, {} partitions ({note})",
        ss,
        parts.len()
    );
    Ok(Container {
        detail,
        children,
        free: Vec::new(),
    })
}
