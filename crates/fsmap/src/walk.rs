//! The recursive walk: identify what a region holds, hand it to its format module, recurse into
//! containers, and collect free ranges and findings.
//!
//! Identification is by signature only, and deliberately suspicious: when two formats both claim a
//! region (say an old ext4 superblock under a newer XFS), neither is trusted and the region is data.

use crate::error::Result;
use crate::view::View;
use crate::{bytes, ext, gpt, lvm, mbr, ranges, swap, xfs, Finding, Map, ReadAt};
use std::ops::Range;

/// Containers nest: disk > partition > extended partition > PV > LV > (a partition table inside
/// an LV) ... Deeper than this is either a pathological image or a loop in corrupt metadata.
pub(crate) const MAX_DEPTH: u32 = 8;
/// Upper bound on regions examined in one scan (GPT allows thousands of entries).
const MAX_REGIONS: usize = 4096;
/// Free ranges are shrunk to this device alignment.
pub(crate) const ALIGN: u64 = 4096;
/// Bytes read to recognise a region: enough for swap headers of 64 KiB pages.
const HEAD: u64 = 64 * 1024;

/// A filesystem-like leaf: its free ranges in view offsets.
pub(crate) struct Leaf {
    pub kind: &'static str,
    pub detail: String,
    pub free: Vec<Range<u64>>,
}

/// One region inside a container.
pub(crate) struct Child<'a> {
    /// Prefix for the findings of what it holds ("p1", "vg0/root").
    pub label: String,
    pub view: View<'a>,
    /// A finding for the child itself (an LV), before what it contains.
    pub own: Option<(&'static str, String)>,
    /// Whether to look inside (false: copied as data, `own` says why).
    pub scan: bool,
}

/// A partition table or volume manager.
pub(crate) struct Container<'a> {
    pub detail: String,
    pub children: Vec<Child<'a>>,
    /// Free ranges of the container itself, in view offsets (unallocated PV extents).
    pub free: Vec<Range<u64>>,
}

struct Ctx {
    findings: Vec<Finding>,
    free: Vec<Range<u64>>,
    free_total: u64,
    regions: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Gpt,
    Mbr,
    Lvm,
    Ext,
    Xfs,
    Swap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gpt => "gpt",
            Kind::Mbr => "mbr",
            Kind::Lvm => "lvm2-pv",
            Kind::Ext => "ext4",
            Kind::Xfs => "xfs",
            Kind::Swap => "swap",
        }
    }
}

pub(crate) fn scan_device(dev: &dyn ReadAt, size: u64) -> Map {
    let mut ctx = Ctx {
        findings: Vec::new(),
        free: Vec::new(),
        free_total: 0,
        regions: 0,
    };
    let view = View::whole(dev, size);
    region(&mut ctx, &view, 0, "");
    ranges::merge(&mut ctx.free);
    Map {
        free: ctx.free,
        findings: ctx.findings,
    }
}

fn with_label(label: &str, s: &str) -> String {
    if label.is_empty() {
        s.to_string()
    } else {
        format!("{label}: {s}")
    }
}

fn finding(ctx: &mut Ctx, view: &View, kind: &str, detail: String) -> usize {
    ctx.findings.push(Finding {
        offset: view.dev_offset(),
        length: view.len(),
        kind: kind.to_string(),
        detail,
        free_bytes: 0,
    });
    ctx.findings.len() - 1
}

/// Records free view ranges of `view`: mapped to the device and shrunk to [`ALIGN`].
fn add_free(ctx: &mut Ctx, view: &View, free: &[Range<u64>]) -> u64 {
    let mut added = 0;
    for r in free {
        for d in view.to_dev(r.clone()) {
            if let Some(a) = ranges::align_in(&d, ALIGN) {
                added += a.end - a.start;
                ctx.free.push(a);
            }
        }
    }
    ctx.free_total += added;
    added
}

/// Which formats claim this region, from its first bytes.
fn identify(head: &[u8]) -> Vec<Kind> {
    let mut kinds = Vec::new();
    let gpt = gpt::probe(head);
    if gpt {
        kinds.push(Kind::Gpt);
    }
    if lvm::probe(head) {
        kinds.push(Kind::Lvm);
    }
    if xfs::probe(head) {
        kinds.push(Kind::Xfs);
    }
    if ext::probe(head) {
        kinds.push(Kind::Ext);
    }
    if swap::probe(head) {
        kinds.push(Kind::Swap);
    }
    match mbr::probe(head) {
        // A protective MBR belongs to the GPT; without a GPT signature the GPT module is not
        // consulted and the protective entry alone means "a GPT disk whose GPT we cannot see".
        Some(mbr::Probe { protective: true }) if gpt => {}
        Some(_) => kinds.push(Kind::Mbr),
        None => {}
    }
    kinds
}

fn region(ctx: &mut Ctx, view: &View, depth: u32, label: &str) {
    ctx.regions += 1;
    if ctx.regions > MAX_REGIONS {
        finding(
            ctx,
            view,
            "unknown",
            with_label(label, "too many regions in one scan; copied as data"),
        );
        return;
    }
    if depth > MAX_DEPTH {
        finding(
            ctx,
            view,
            "unknown",
            with_label(
                label,
                &format!("nested deeper than {MAX_DEPTH} levels; copied as data"),
            ),
        );
        return;
    }
    let head = match view.read_head(0, HEAD) {
        Ok(h) => h,
        Err(e) => {
            finding(
                ctx,
                view,
                "unknown",
                with_label(label, &format!("{e}; copied as data")),
            );
            return;
        }
    };
    let kinds = identify(&head);
    let kind = match kinds.as_slice() {
        [] => {
            finding(
                ctx,
                view,
                "unknown",
                with_label(label, "no recognised signature; copied as data"),
            );
            return;
        }
        [k] => *k,
        many => {
            let names: Vec<&str> = many.iter().map(|k| k.name()).collect();
            let msg = format!(
                "ambiguous: signatures of {} at once; copied as data",
                names.join(" and ")
            );
            finding(ctx, view, "unknown", with_label(label, &msg));
            return;
        }
    };
    match kind {
        Kind::Gpt => container(ctx, view, depth, label, "gpt", gpt::scan(view)),
        Kind::Mbr => container(ctx, view, depth, label, "mbr", mbr::scan(view)),
        Kind::Lvm => container(ctx, view, depth, label, "lvm2-pv", lvm::scan(view)),
        Kind::Ext => leaf(ctx, view, label, ext::kind_hint(&head), ext::scan(view)),
        Kind::Xfs => leaf(ctx, view, label, "xfs", xfs::scan(view)),
        Kind::Swap => leaf(ctx, view, label, "swap", swap::scan(view, &head)),
    }
}

fn leaf(ctx: &mut Ctx, view: &View, label: &str, kind: &'static str, res: Result<Leaf>) {
    match res {
        Ok(l) => {
            let i = finding(ctx, view, l.kind, with_label(label, &l.detail));
            let n = add_free(ctx, view, &l.free);
            ctx.findings[i].free_bytes = n;
            ctx.findings[i]
                .detail
                .push_str(&format!("; {} free", bytes::human(n)));
        }
        Err(e) => {
            finding(
                ctx,
                view,
                kind,
                with_label(label, &format!("{e}; copied as data")),
            );
        }
    }
}

fn container(
    ctx: &mut Ctx,
    view: &View,
    depth: u32,
    label: &str,
    kind: &'static str,
    res: Result<Container>,
) {
    let c = match res {
        Ok(c) => c,
        Err(e) => {
            finding(
                ctx,
                view,
                kind,
                with_label(label, &format!("{e}; copied as data")),
            );
            return;
        }
    };
    let i = finding(ctx, view, kind, with_label(label, &c.detail));
    let before = ctx.free_total;
    add_free(ctx, view, &c.free);
    for child in c.children {
        let own = child
            .own
            .map(|(k, d)| (finding(ctx, &child.view, k, d), ctx.free_total));
        if child.scan {
            region(ctx, &child.view, depth + 1, &child.label);
        }
        if let Some((j, at)) = own {
            ctx.findings[j].free_bytes = ctx.free_total - at;
        }
    }
    ctx.findings[i].free_bytes = ctx.free_total - before;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MBR inside MBR inside MBR...: the walk stops at MAX_DEPTH and says so.
    #[test]
    fn nesting_is_bounded() {
        let sectors = 64usize;
        let mut disk = vec![0u8; sectors * 512];
        for i in 0..40 {
            let s = &mut disk[i * 512..(i + 1) * 512];
            s[510] = 0x55;
            s[511] = 0xAA;
            s[446 + 4] = 0x83;
            s[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
            s[446 + 12..446 + 16].copy_from_slice(&((sectors - i - 1) as u32).to_le_bytes());
        }
        let map = scan_device(&disk, disk.len() as u64);
        assert!(map.free.is_empty());
        assert_eq!(map.findings.len(), MAX_DEPTH as usize + 2);
        let last = map.findings.last().expect("findings");
        assert!(last.detail.contains("nested deeper"), "{}", last.detail);
    }

    /// Two signatures at once: trust neither.
    #[test]
    fn ambiguous_signatures_are_data() {
        let mut disk = vec![0u8; 1 << 20];
        disk[0..4].copy_from_slice(b"XFSB");
        disk[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        let map = scan_device(&disk, disk.len() as u64);
        assert!(map.free.is_empty());
        assert!(
            map.findings[0].detail.contains("ambiguous"),
            "{}",
            map.findings[0].detail
        );
    }
}
