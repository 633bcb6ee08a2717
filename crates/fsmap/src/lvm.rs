//! LVM2 physical volumes and their linear logical volumes.
//!
//! On-disk structure (little-endian): one of the first four 512-byte sectors holds the label:
//! `"LABELONE"`, its own sector number (u64), a CRC (u32, over the rest of the sector), the offset
//! of the PV header within the sector (u32), and `"LVM2 001"`. The PV header is the PV UUID (32
//! characters), the device size, then two zero-terminated lists of `{offset, size}` byte ranges:
//! data areas (the first one starts the physical extents) and metadata areas. Each metadata area
//! starts with a 512-byte header: CRC, magic `" LVM2 x[5A%r0N*>"`, version 1, its own offset and
//! size, then `{offset, size, checksum, flags}` locations of the current metadata text inside the
//! area (a ring buffer after the header). The text (see [`crate::lvmtext`]) names the volume
//! group's PVs (`pe_start`, `pe_count`, in sectors and extents of `extent_size` sectors) and LVs,
//! each a list of segments mapping LV extents to PV extents.
//!
//! What is scanned: a visible LV whose segments are all `striped` with one stripe on this PV
//! (linear), which no other LV names (so not a snapshot origin or COW store, a thin pool's data,
//! a RAID or mirror leg, a cache origin). Everything else is data. Unallocated extents are free only
//! when the VG has this one PV and every segment in it is plain `striped`: then the metadata on
//! this disk is the whole truth about the extents. With several PVs, a pvmove, or segment types
//! whose PV usage lives in hidden sub-LVs, unallocated extents are data.
//!
//! Every metadata copy on the PV must pass its checksums and agree; the label, PV header,
//! metadata areas and the gap before the first extent are data.

use crate::bytes::{bytes, has, le32, le64};
use crate::crc::lvm_crc;
use crate::error::{bail, ensure, Error, Result};
use crate::lvmtext::{self, Section, Value};
use crate::ranges;
use crate::view::View;
use crate::walk::{Child, Container};
use std::ops::Range;

const LABEL_ID: &[u8] = b"LABELONE";
const LVM2_TYPE: &[u8] = b"LVM2 001";
const INITIAL_CRC: u32 = 0xf597_a6cf;
const MDA_MAGIC: &[u8] = b" LVM2 x[5A%r0N*>";
const MDA_HEADER: u64 = 512;
const RAW_LOCN_IGNORED: u32 = 1;
/// A metadata area larger than this is not something LVM writes by default (1 MiB) or allows
/// without unusual settings; it also bounds what we read.
const MAX_TEXT: u64 = 32 << 20;

pub(crate) fn probe(head: &[u8]) -> bool {
    (0..4).any(|s| has(head, s * 512, LABEL_ID) && has(head, s * 512 + 24, LVM2_TYPE))
}

struct Label {
    uuid: String,
    data_start: u64,
    mdas: Vec<(u64, u64)>,
}

fn label(view: &View) -> Result<Label> {
    let head = view.read_head(0, 2048)?;
    let mut found = None;
    for s in 0..4usize {
        if !(has(&head, s * 512, LABEL_ID) && has(&head, s * 512 + 24, LVM2_TYPE)) {
            continue;
        }
        ensure!(found.is_none(), "two LVM labels");
        found = Some(s);
    }
    let Some(s) = found else {
        bail!("no LVM label")
    };
    let sec = bytes(&head, s * 512, 512)?;
    ensure!(
        le64(sec, 8)? == s as u64,
        "LVM label names the wrong sector"
    );
    ensure!(
        le32(sec, 16)? == lvm_crc(INITIAL_CRC, bytes(sec, 20, 492)?),
        "LVM label CRC mismatch"
    );
    let off = le32(sec, 20)? as usize;
    ensure!(
        (32..512).contains(&off),
        "LVM PV header offset {off} out of range"
    );
    let uuid = String::from_utf8_lossy(bytes(sec, off, 32)?).into_owned();
    let mut pos = off + 40;
    let mut list = |sec: &[u8]| -> Result<Vec<(u64, u64)>> {
        let mut v = Vec::new();
        loop {
            let o = le64(sec, pos)?;
            let n = le64(sec, pos + 8)?;
            pos += 16;
            if o == 0 {
                return Ok(v);
            }
            ensure!(v.len() < 16, "LVM PV header lists too many areas");
            v.push((o, n));
        }
    };
    let data = list(sec)?;
    let mdas = list(sec)?;
    ensure!(
        data.len() == 1,
        "LVM PV has {} data areas, expected one",
        data.len()
    );
    Ok(Label {
        uuid,
        data_start: data[0].0,
        mdas,
    })
}

/// The current metadata text of one metadata area, `None` if the area is marked ignored.
fn mda_text(view: &View, start: u64, size: u64) -> Result<Option<String>> {
    ensure!(
        size > MDA_HEADER && size <= MAX_TEXT,
        "LVM metadata area size {size} out of range"
    );
    let h = view.read_vec(start, MDA_HEADER)?;
    ensure!(
        le32(&h, 0)? == lvm_crc(INITIAL_CRC, bytes(&h, 4, 508)?),
        "LVM metadata header CRC mismatch"
    );
    ensure!(has(&h, 4, MDA_MAGIC), "LVM metadata header magic wrong");
    ensure!(le32(&h, 20)? == 1, "LVM metadata header version not 1");
    ensure!(
        le64(&h, 24)? == start && le64(&h, 32)? == size,
        "LVM metadata header names another area"
    );
    let off = le64(&h, 40)?;
    let len = le64(&h, 48)?;
    let sum = le32(&h, 56)?;
    let flags = le32(&h, 60)?;
    if flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    ensure!(off != 0 && len != 0, "LVM metadata area holds no metadata");
    ensure!(
        off >= MDA_HEADER && off < size && len <= size - MDA_HEADER,
        "LVM metadata location out of range"
    );
    // The text is a ring buffer over the area after its header.
    let first = len.min(size - off);
    let mut text = view.read_vec(start.saturating_add(off), first)?;
    if first < len {
        text.extend(view.read_vec(start.saturating_add(MDA_HEADER), len - first)?);
    }
    ensure!(
        lvm_crc(INITIAL_CRC, &text) == sum,
        "LVM metadata text checksum mismatch"
    );
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

fn int(s: &Section, key: &str, what: &str) -> Result<u64> {
    s.int(key)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| Error::bad(format!("LVM metadata: {what} has no valid {key}")))
}

struct Seg {
    start: u64,
    count: u64,
    kind: String,
    stripes: Vec<(String, u64)>,
    stripe_count: u64,
}

fn segments(lv: &Section, name: &str) -> Result<Vec<Seg>> {
    let mut segs = Vec::new();
    for (_, s) in lv.sections().filter(|(k, _)| k.starts_with("segment")) {
        let kind = s.str("type").unwrap_or("").to_string();
        let mut stripes = Vec::new();
        if let Some(l) = s.list("stripes") {
            ensure!(l.len() % 2 == 0, "LVM metadata: odd stripes list in {name}");
            for p in l.chunks(2) {
                match (&p[0], &p[1]) {
                    (Value::Str(pv), Value::Int(e)) if *e >= 0 => {
                        stripes.push((pv.clone(), *e as u64))
                    }
                    _ => bail!("LVM metadata: malformed stripes list in {name}"),
                }
            }
        }
        segs.push(Seg {
            start: int(s, "start_extent", name)?,
            count: int(s, "extent_count", name)?,
            stripe_count: s
                .int("stripe_count")
                .and_then(|i| u64::try_from(i).ok())
                .unwrap_or(0),
            kind,
            stripes,
        });
    }
    segs.sort_by_key(|s| s.start);
    let declared = int(lv, "segment_count", name)?;
    ensure!(
        declared == segs.len() as u64,
        "LVM metadata: {name} declares {declared} segments, has {}",
        segs.len()
    );
    Ok(segs)
}

pub(crate) fn scan<'a>(view: &View<'a>) -> Result<Container<'a>> {
    let lab = label(view)?;
    ensure!(
        !lab.mdas.is_empty(),
        "LVM PV holds no metadata area (its VG is described on other PVs)"
    );
    let mut text: Option<String> = None;
    for &(start, size) in &lab.mdas {
        if let Some(t) = mda_text(view, start, size)? {
            match &text {
                Some(prev) => ensure!(*prev == t, "LVM metadata copies on this PV differ"),
                None => text = Some(t),
            }
        }
    }
    let Some(text) = text else {
        bail!("every LVM metadata area on this PV is ignored")
    };
    let doc = lvmtext::parse(&text)?;
    let vgs: Vec<(&str, &Section)> = doc.sections().collect();
    let [(vgname, vg)] = vgs.as_slice() else {
        bail!("LVM metadata describes {} volume groups", vgs.len())
    };
    let ext_sectors = int(vg, "extent_size", "the VG")?;
    ensure!(
        ext_sectors > 0 && ext_sectors <= (1 << 32),
        "LVM extent size {ext_sectors} out of range"
    );
    let ext = ext_sectors * 512;
    let pvs: Vec<(&str, &Section)> = vg
        .section("physical_volumes")
        .map(|s| s.sections().collect())
        .unwrap_or_default();
    let want: String = lab.uuid.chars().filter(|c| *c != '-').collect();
    let me: Vec<&(&str, &Section)> = pvs
        .iter()
        .filter(|(_, s)| {
            s.str("id")
                .map(|i| i.chars().filter(|c| *c != '-').collect::<String>())
                == Some(want.clone())
        })
        .collect();
    let [(pvname, pv)] = me.as_slice() else {
        bail!("LVM metadata does not list this PV exactly once")
    };
    let pe_start = int(pv, "pe_start", pvname)?
        .checked_mul(512)
        .ok_or_else(|| Error::bad("pe_start overflows"))?;
    let pe_count = int(pv, "pe_count", pvname)?;
    ensure!(
        pe_start == lab.data_start,
        "LVM pe_start disagrees with the PV header"
    );
    let pe_end = pe_count
        .checked_mul(ext)
        .and_then(|n| n.checked_add(pe_start))
        .filter(|&e| e <= view.len())
        .ok_or_else(|| Error::bad(format!("LVM extents of {pvname} run past the device")))?;
    for &(start, size) in &lab.mdas {
        ensure!(
            start.saturating_add(size) <= pe_start || start >= pe_end,
            "LVM metadata area overlaps the extents"
        );
    }
    let pv_names: Vec<&str> = pvs.iter().map(|(n, _)| *n).collect();

    let lvs: Vec<(&str, &Section)> = vg
        .section("logical_volumes")
        .map(|s| s.sections().collect())
        .unwrap_or_default();
    // Names mentioned by any segment (origins, COW stores, pools, legs, sub-LVs). Such an LV's
    // content is not what its own segments alone say, or it is shared: data.
    let mut named = Vec::new();
    for (_, lv) in &lvs {
        for (_, seg) in lv.sections().filter(|(k, _)| k.starts_with("segment")) {
            seg.all_strings(&mut named);
        }
    }
    let referenced = |lv: &str| named.iter().any(|(k, s)| *k != "type" && *s == lv);

    let mut allocated: Vec<Range<u64>> = Vec::new();
    let mut all_striped = true;
    let mut children = Vec::new();
    for (lvname, lv) in &lvs {
        let segs = segments(lv, lvname)?;
        let status = lv.flags("status");
        let mut why: Option<String> = None;
        let mut parts: Vec<Range<u64>> = Vec::new();
        let mut next = 0u64;
        for s in &segs {
            if s.kind != "striped" {
                all_striped = false;
                why.get_or_insert(format!("{} segment", s.kind));
                continue;
            }
            ensure!(
                s.stripe_count >= 1
                    && s.stripes.len() as u64 == s.stripe_count
                    && s.count % s.stripe_count == 0,
                "LVM metadata: inconsistent stripes in {lvname}"
            );
            let area = s.count / s.stripe_count;
            for (target, first) in &s.stripes {
                if *target == **pvname {
                    let end = first.checked_add(area).filter(|&e| e <= pe_count);
                    let Some(end) = end else {
                        bail!("LVM metadata: {lvname} maps past the PV's extents")
                    };
                    allocated.push(*first..end);
                    parts.push(pe_start + first * ext..pe_start + end * ext);
                } else if !pv_names.contains(&target.as_str())
                    && !lvs.iter().any(|(n, _)| *n == target)
                {
                    bail!("LVM metadata: {lvname} maps to unknown {target}");
                }
            }
            if s.stripe_count > 1 {
                why.get_or_insert(format!("{}-way striped", s.stripe_count));
            } else if s.stripes.first().map(|(t, _)| t.as_str()) != Some(*pvname) {
                why.get_or_insert(format!(
                    "maps to {}",
                    s.stripes
                        .first()
                        .map(|(t, _)| t.as_str())
                        .unwrap_or("nothing")
                ));
            }
            if s.start != next {
                why.get_or_insert("segments leave a gap".into());
            }
            next = s.start.saturating_add(s.count);
        }
        if status.iter().any(|f| matches!(*f, "PVMOVE" | "LOCKED")) {
            all_striped = false;
            why.get_or_insert("being moved (pvmove)".into());
        }
        if !status.contains(&"VISIBLE") {
            why.get_or_insert("hidden sub-volume".into());
        }
        if referenced(lvname) {
            why.get_or_insert("used by another LV (snapshot, pool, mirror or RAID)".into());
        }
        if segs.is_empty() {
            why.get_or_insert("no segments".into());
        }
        // Only LVs with extents on this PV appear here; the rest live entirely elsewhere.
        if parts.is_empty() {
            continue;
        }
        let full = format!("{vgname}/{lvname}");
        let size = next.saturating_mul(ext);
        let (scan, detail) = match &why {
            None => (
                true,
                format!(
                    "{full}: linear LV, {} segment(s), {}",
                    segs.len(),
                    crate::bytes::human(size)
                ),
            ),
            Some(w) => (false, format!("{full}: {w}; copied as data")),
        };
        // For an LV copied as data the view only places its finding (its extents on this PV).
        children.push(Child {
            label: full,
            view: view.concat(&parts)?,
            own: Some(("lvm2-lv", detail)),
            scan,
        });
    }
    // Two LVs on the same extents would make either map wrong.
    let mut sorted = allocated.clone();
    sorted.sort_by_key(|r| r.start);
    for w in sorted.windows(2) {
        ensure!(
            w[0].end <= w[1].start,
            "LVM metadata maps extent {} twice",
            w[1].start
        );
    }
    let mut free = Vec::new();
    let unalloc_note;
    if pvs.len() == 1 && all_striped {
        let mut at = 0;
        for r in &sorted {
            if r.start > at {
                free.push(pe_start + at * ext..pe_start + r.start * ext);
            }
            at = r.end;
        }
        if at < pe_count {
            free.push(pe_start + at * ext..pe_end);
        }
        ranges::merge(&mut free);
        unalloc_note = format!("{} unallocated", crate::bytes::human(ranges::total(&free)));
    } else if pvs.len() > 1 {
        unalloc_note = format!("unallocated extents kept: VG has {} PVs", pvs.len());
    } else {
        unalloc_note = "unallocated extents kept: VG has non-linear segments".into();
    }
    let detail = format!(
        "LVM2 PV {pvname} of VG {vgname}, {} extents of {}, {} LV(s) here, {unalloc_note}",
        pe_count,
        crate::bytes::human(ext),
        children.len()
    );
    Ok(Container {
        detail,
        children,
        free,
    })
}

#[cfg(test)]
mod tests {
    //! Segment types that need device-mapper to create (thin, RAID, pvmove) cannot be made by
    //! the tools on this machine, so these PVs are built here from the on-disk format: label, PV
    //! header, metadata area header and text, with their checksums.
    use super::*;
    use crate::walk::scan_device;

    const EXT: u64 = 8192; // sectors: 4 MiB extents
    const PE_COUNT: u64 = 32;

    fn pv(text: &str) -> Vec<u8> {
        let pe_start = 1u64 << 20;
        let mut d = vec![0u8; (pe_start + PE_COUNT * EXT * 512) as usize];
        let put = |d: &mut Vec<u8>, at: usize, b: &[u8]| d[at..at + b.len()].copy_from_slice(b);
        // Label in sector 1, PV header right after it.
        let s = 512;
        put(&mut d, s, LABEL_ID);
        put(&mut d, s + 8, &1u64.to_le_bytes());
        put(&mut d, s + 20, &32u32.to_le_bytes());
        put(&mut d, s + 24, LVM2_TYPE);
        put(&mut d, s + 32, b"abcdefghijklmnopqrstuvwxyz012345");
        let len = d.len() as u64;
        put(&mut d, s + 64, &len.to_le_bytes());
        put(&mut d, s + 72, &pe_start.to_le_bytes()); // data area, then a zero entry
        put(&mut d, s + 104, &4096u64.to_le_bytes()); // metadata area
        put(&mut d, s + 112, &(pe_start - 4096).to_le_bytes());
        let crc = lvm_crc(INITIAL_CRC, &d[s + 20..s + 512]);
        put(&mut d, s + 16, &crc.to_le_bytes());
        // Metadata area header and text.
        let m = 4096;
        put(&mut d, m + 4, MDA_MAGIC);
        put(&mut d, m + 20, &1u32.to_le_bytes());
        put(&mut d, m + 24, &4096u64.to_le_bytes());
        put(&mut d, m + 32, &(pe_start - 4096).to_le_bytes());
        put(&mut d, m + 40, &512u64.to_le_bytes());
        put(&mut d, m + 48, &(text.len() as u64).to_le_bytes());
        put(
            &mut d,
            m + 56,
            &lvm_crc(INITIAL_CRC, text.as_bytes()).to_le_bytes(),
        );
        let crc = lvm_crc(INITIAL_CRC, &d[m + 4..m + 512]);
        put(&mut d, m, &crc.to_le_bytes());
        put(&mut d, m + 512, text.as_bytes());
        d
    }

    /// A VG text with one PV (pv0, this one) and the given LV sections.
    fn vg(lvs: &str, extra_pvs: &str) -> String {
        format!(
            "vg {{\nid = \"x\"\nseqno = 1\nextent_size = {EXT}\nphysical_volumes {{\npv0 {{\n\
             id = \"abcdef-ghij-klmn-opqr-stuv-wxyz-012345\"\npe_start = 2048\npe_count = {PE_COUNT}\n}}\n\
             {extra_pvs}}}\nlogical_volumes {{\n{lvs}}}\n}}\ncontents = \"Text Format Volume\"\n"
        )
    }

    fn lv(name: &str, status: &str, segs: &[&str]) -> String {
        let mut s = format!(
            "{name} {{\nid = \"y\"\nstatus = [{status}]\nsegment_count = {}\n",
            segs.len()
        );
        for (i, seg) in segs.iter().enumerate() {
            s.push_str(&format!("segment{} {{\n{seg}\n}}\n", i + 1));
        }
        s.push_str("}\n");
        s
    }

    fn linear(start: u64, count: u64, pv: &str, pe: u64) -> String {
        format!(
            "start_extent = {start}\nextent_count = {count}\ntype = \"striped\"\nstripe_count = 1\n\
             stripes = [\"{pv}\", {pe}]"
        )
    }

    const VIS: &str = "\"READ\", \"WRITE\", \"VISIBLE\"";
    const HIDDEN: &str = "\"READ\", \"WRITE\"";

    fn summary(d: &[u8]) -> (Vec<String>, u64) {
        let map = scan_device(&d.to_vec(), d.len() as u64);
        let f = map
            .findings
            .iter()
            .map(|f| format!("{} {}", f.kind, f.detail))
            .collect();
        (f, map.free_bytes())
    }

    #[test]
    fn linear_lvs_and_unallocated_extents() {
        let lvs = lv(
            "a",
            VIS,
            &[&linear(0, 4, "pv0", 0), &linear(4, 2, "pv0", 10)],
        );
        let (f, free) = summary(&pv(&vg(&lvs, "")));
        assert!(
            f[0].contains("1 LV(s) here, 104.0 MiB unallocated"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with("lvm2-lv vg/a: linear LV, 2 segment(s), 24.0 MiB"),
            "{f:?}"
        );
        assert_eq!(free, (PE_COUNT - 6) * EXT * 512);
    }

    #[test]
    fn thin_raid_and_pvmove_are_data() {
        let thin = [
            lv("pool", VIS, &["start_extent = 0\nextent_count = 8\ntype = \"thin-pool\"\nmetadata = \"pool_tmeta\"\npool = \"pool_tdata\"\ntransaction_id = 0\nchunk_size = 128"]),
            lv("pool_tdata", HIDDEN, &[&linear(0, 8, "pv0", 0)]),
            lv("pool_tmeta", HIDDEN, &[&linear(0, 1, "pv0", 8)]),
            lv("thin1", VIS, &["start_extent = 0\nextent_count = 16\ntype = \"thin\"\nthin_pool = \"pool\"\ntransaction_id = 0\ndevice_id = 1"]),
        ]
        .concat();
        let raid = [
            lv("r", VIS, &["start_extent = 0\nextent_count = 4\ntype = \"raid1\"\ndevice_count = 2\nregion_size = 1024\nraids = [\"r_rmeta_0\", \"r_rimage_0\", \"r_rmeta_1\", \"r_rimage_1\"]"]),
            lv("r_rimage_0", HIDDEN, &[&linear(0, 4, "pv0", 10)]),
            lv("r_rmeta_0", HIDDEN, &[&linear(0, 1, "pv0", 14)]),
            lv("r_rimage_1", HIDDEN, &[&linear(0, 4, "pv0", 15)]),
            lv("r_rmeta_1", HIDDEN, &[&linear(0, 1, "pv0", 19)]),
        ]
        .concat();
        // A linear LV being moved: its segment maps to the pvmove LV, which mirrors PV extents.
        let pvmove = [
            lv("moving", VIS, &["start_extent = 0\nextent_count = 2\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pvmove0\", 0]"]),
            lv("pvmove0", "\"READ\", \"WRITE\", \"PVMOVE\", \"LOCKED\"", &["start_extent = 0\nextent_count = 2\ntype = \"mirror\"\nmirror_count = 2\nmirrors = [\"pv0\", 20, \"pv1\", 0]"]),
        ]
        .concat();
        let pv1 = "pv1 {\nid = \"other\"\npe_start = 2048\npe_count = 10\n}\n";
        for (name, lvs, extra) in [
            ("thin", thin, ""),
            ("raid", raid, ""),
            ("pvmove", pvmove, pv1),
        ] {
            let (f, free) = summary(&pv(&vg(&lvs, extra)));
            assert_eq!(free, 0, "{name}: {f:?}");
            assert!(f[0].contains("unallocated extents kept"), "{name}: {f:?}");
            assert!(
                f.iter().skip(1).all(|l| l.contains("copied as data")),
                "{name}: {f:?}"
            );
        }
    }

    #[test]
    fn inconsistent_metadata_is_data() {
        let cases = [
            (
                "overlap",
                vg(
                    &[
                        lv("a", VIS, &[&linear(0, 4, "pv0", 0)]),
                        lv("b", VIS, &[&linear(0, 4, "pv0", 3)]),
                    ]
                    .concat(),
                    "",
                ),
                "maps extent 3 twice",
            ),
            (
                "past the end",
                vg(&lv("a", VIS, &[&linear(0, 4, "pv0", 30)]), ""),
                "past the PV's extents",
            ),
            (
                "unknown target",
                vg(&lv("a", VIS, &[&linear(0, 4, "nope", 0)]), ""),
                "unknown nope",
            ),
            (
                "not this PV",
                vg("", "").replace("abcdef-ghij", "zzzzzz-ghij"),
                "does not list this PV",
            ),
            (
                "segment count",
                vg(
                    &lv("a", VIS, &[&linear(0, 4, "pv0", 0)])
                        .replace("segment_count = 1", "segment_count = 2"),
                    "",
                ),
                "declares 2 segments",
            ),
        ];
        for (name, text, why) in cases {
            let (f, free) = summary(&pv(&text));
            assert_eq!(free, 0, "{name}");
            assert!(
                f[0].contains(why) && f[0].contains("copied as data"),
                "{name}: {f:?}"
            );
        }
        // A gap between segments: the LV is data, the rest still understood.
        let (f, _) = summary(&pv(&vg(
            &lv(
                "a",
                VIS,
                &[&linear(0, 2, "pv0", 0), &linear(3, 2, "pv0", 5)],
            ),
            "",
        )));
        assert!(f[1].contains("segments leave a gap"), "{f:?}");
        // A corrupted text no longer matches its checksum.
        let mut d = pv(&vg(&lv("a", VIS, &[&linear(0, 4, "pv0", 0)]), ""));
        d[4096 + 512 + 10] ^= 1;
        let (f, free) = summary(&d);
        assert_eq!(free, 0);
        assert!(f[0].contains("checksum mismatch"), "{f:?}");
    }
}
