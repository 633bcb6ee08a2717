//! LVM2 physical volumes made by the real pvcreate/vgcreate/lvcreate on loop devices.
//!
//! This machine has no device-mapper, so LVs are never activated: the tools run with
//! `global/activation=0` and a device filter that shows them only our loop devices. LV contents
//! are made by formatting the LV's extents (extracted from the image by the segment list `lvs`
//! prints) and writing them back. Snapshots cannot be created without device-mapper, so that case
//! adds a snapshot to real metadata with vgcfgbackup, an edit, and vgcfgrestore (LVM writes the
//! on-disk format itself).

use crate::parts::{make_ext, make_swap, make_xfs, raw, verify_disk, Part};
use crate::skip;
use crate::util::*;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

struct Lvm {
    conf: String,
}

impl Lvm {
    fn new(devs: &[&str]) -> Lvm {
        let accept: Vec<String> = devs.iter().map(|d| format!("\\\"a|^{d}$|\\\"")).collect();
        let conf = format!(
            "devices {{ filter=[{},\\\"r|.*|\\\"] use_devicesfile=0 }} global {{ activation=0 }} backup {{ backup=0 archive=0 }}",
            accept.join(",")
        );
        Lvm { conf }
    }
    fn run(&self, cmd: &str, args: &str) -> String {
        sh(&format!("{cmd} --config \"{}\" {args} 2>&1", self.conf))
    }
    fn out(&self, cmd: &str, args: &str) -> String {
        sh_out(&format!(
            "{cmd} --config \"{}\" {args} 2>/dev/null",
            self.conf
        ))
    }
}

fn vg_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "osmfsmap{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Byte ranges of each LV on `dev`, in segment order, and the unallocated ranges.
/// An LV's name and its byte ranges on one PV.
type Lvs = (String, Vec<Range<u64>>);

fn layout(lvm: &Lvm, vg: &str, dev: &str) -> (Vec<Lvs>, Vec<Range<u64>>) {
    let num = |s: &str| -> u64 { s.trim().parse().expect("number") };
    let pe_start = num(&lvm.out(
        "pvs",
        &format!("-o pe_start --units b --nosuffix --noheadings {dev}"),
    ));
    let ext = num(&lvm.out(
        "vgs",
        &format!("-o vg_extent_size --units b --nosuffix --noheadings {vg}"),
    ));
    let bytes = |a: u64, n: u64| pe_start + a * ext..pe_start + (a + n) * ext;
    let mut lvs: Vec<Lvs> = Vec::new();
    let mut free = Vec::new();
    let segs = lvm.out(
        "pvs",
        &format!("--segments -o pvseg_start,pvseg_size,lv_name --noheadings --separator '|' {dev}"),
    );
    for l in segs.lines() {
        let f: Vec<&str> = l.trim().split('|').collect();
        let (a, n, lv) = (num(f[0]), num(f[1]), f.get(2).copied().unwrap_or("").trim());
        if lv.is_empty() {
            free.push(bytes(a, n));
        }
    }
    // LV segments in LV order (a PV segment list is in PV order).
    let lsegs = lvm.out(
        "lvs",
        &format!("--segments -o lv_name,seg_pe_ranges --noheadings --separator '|' {vg}"),
    );
    for l in lsegs.lines() {
        let (lv, ranges) = l.trim().split_once('|').expect("lvs line");
        for r in ranges.split_whitespace() {
            let (d, span) = r.rsplit_once(':').expect("pe range");
            if d != dev {
                continue;
            }
            let (a, b) = span.split_once('-').expect("span");
            let (a, b) = (num(a), num(b));
            match lvs.iter_mut().find(|(n, _)| n == lv) {
                Some((_, v)) => v.push(bytes(a, b - a + 1)),
                None => lvs.push((lv.to_string(), vec![bytes(a, b - a + 1)])),
            }
        }
    }
    (lvs, free)
}

fn lv(lvs: &[Lvs], name: &str) -> Vec<Range<u64>> {
    lvs.iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("LV {name} missing"))
}

/// One PV holding ext4 (two segments), XFS, swap and an unformatted LV; unallocated extents in
/// between and at the end.
#[test]
fn lvm_linear_volumes() {
    if let Err(e) = can_loop().and(have(&[
        "pvcreate",
        "vgcreate",
        "lvcreate",
        "mkfs.ext4",
        "mkfs.xfs",
        "mkswap",
    ])) {
        skip!("lvm_linear_volumes: {e}");
    }
    let tmp = Tmp::new("lvm");
    let pv = tmp.join("pv.img");
    garbage_file(&pv, 768 * MIB);
    let vg = vg_name();
    let (lvs, unalloc, before) = {
        let l = Loop::new(&pv);
        let lvm = Lvm::new(&[&l.0]);
        lvm.run("pvcreate", &format!("-ff -y {}", l.0));
        lvm.run("vgcreate", &format!("{vg} {}", l.0));
        lvm.run("lvcreate", &format!("-an -Zn -L 64M -n root {vg}"));
        lvm.run("lvcreate", &format!("-an -Zn -L 340M -n data {vg}"));
        lvm.run("lvcreate", &format!("-an -Zn -L 32M -n swap {vg}"));
        lvm.run("lvextend", &format!("-L +32M {vg}/root"));
        lvm.run("lvcreate", &format!("-an -Zn -L 16M -n spare {vg}"));
        let (lvs, unalloc) = layout(&lvm, &vg, &l.0);
        let before = lvm.out(
            "lvs",
            &format!("--segments -o lv_name,seg_pe_ranges --noheadings {vg}"),
        );
        (lvs, unalloc, before)
    };
    assert_eq!(lv(&lvs, "root").len(), 2, "root should have two segments");
    let parts: Vec<Part> = vec![
        make_ext(&tmp, &pv, "lv-root", lv(&lvs, "root"), "mkfs.ext4", ""),
        make_xfs(&tmp, &pv, "lv-data", lv(&lvs, "data")),
        make_swap(&tmp, &pv, "lv-swap", lv(&lvs, "swap")),
        raw("lv-spare", lv(&lvs, "spare")),
    ];
    let map = scan_path(&pv);
    let kinds: Vec<&str> = map.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "lvm2-pv", "lvm2-lv", "ext4", "lvm2-lv", "xfs", "lvm2-lv", "swap", "lvm2-lv", "unknown"
        ]
    );
    assert!(
        map.findings[1].detail.contains("2 segment"),
        "{}",
        map.findings[1].detail
    );
    // Unallocated extents are free (single-PV VG).
    for r in &unalloc {
        assert!(
            map.free
                .iter()
                .any(|f| f.start <= r.start && r.end <= f.end),
            "unallocated {r:?} not free"
        );
    }
    verify_disk(&tmp, &pv, &map, &parts, &unalloc, "lvm-pv");
    // The copy's LVM metadata is intact: same LVs on the same extents, vgck clean.
    let copy = tmp.join("disk-copy.img");
    let l = Loop::new(&copy);
    let lvm = Lvm::new(&[&l.0]);
    lvm.run("vgck", &vg);
    let after = lvm.out(
        "lvs",
        &format!("--segments -o lv_name,seg_pe_ranges --noheadings {vg}"),
    );
    assert_eq!(
        after.replace(&l.0, "DEV"),
        before.replace(&lvm_dev(&before), "DEV")
    );
}

/// The device name in an `lvs` seg_pe_ranges listing.
fn lvm_dev(listing: &str) -> String {
    listing
        .split_whitespace()
        .find_map(|w| w.rsplit_once(':').map(|(d, _)| d.to_string()))
        .expect("device in listing")
}

/// A snapshot (origin and COW store are data, unallocated extents kept), and a VG over two PVs
/// with a striped LV (data) next to a linear one (scanned).
#[test]
fn lvm_snapshot_and_striped_are_data() {
    if let Err(e) = can_loop().and(have(&[
        "pvcreate",
        "vgcfgbackup",
        "vgcfgrestore",
        "mkfs.ext4",
    ])) {
        skip!("lvm_snapshot_and_striped_are_data: {e}");
    }
    let tmp = Tmp::new("lvm-snap");
    let pv = tmp.join("pv.img");
    garbage_file(&pv, 256 * MIB);
    let vg = vg_name();
    let lvs = {
        let l = Loop::new(&pv);
        let lvm = Lvm::new(&[&l.0]);
        lvm.run("pvcreate", &format!("-ff -y {}", l.0));
        lvm.run("vgcreate", &format!("{vg} {}", l.0));
        lvm.run("lvcreate", &format!("-an -Zn -L 64M -n origin {vg}"));
        lvm.run("lvcreate", &format!("-an -Zn -L 16M -n cow {vg}"));
        let meta = tmp.join("meta.txt");
        lvm.run("vgcfgbackup", &format!("-f {} {vg}", q(&meta)));
        let text = std::fs::read_to_string(&meta).expect("metadata");
        let snap = "\t\tsnapshot0 {\n\t\t\tid = \"Abcdef-abcd-abcd-abcd-abcd-abcd-abcdef\"\n\t\t\tstatus = [\"READ\"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 16\n\t\t\t\ttype = \"snapshot\"\n\t\t\t\tchunk_size = 8\n\t\t\t\torigin = \"origin\"\n\t\t\t\tcow_store = \"cow\"\n\t\t\t}\n\t\t}\n";
        let at = text.rfind("\t}\n\n}").expect("end of logical_volumes");
        std::fs::write(&meta, format!("{}{snap}{}", &text[..at], &text[at..])).expect("write");
        lvm.run("vgcfgrestore", &format!("-f {} {vg}", q(&meta)));
        let attrs = lvm.out(
            "lvs",
            &format!("-o lv_name,lv_attr,origin --noheadings {vg}"),
        );
        assert!(
            attrs.contains("cow") && attrs.contains("swi"),
            "snapshot not restored: {attrs}"
        );
        layout(&lvm, &vg, &l.0).0
    };
    let parts = [make_ext(
        &tmp,
        &pv,
        "origin",
        lv(&lvs, "origin"),
        "mkfs.ext4",
        "",
    )];
    let _ = parts;
    let map = scan_path(&pv);
    assert!(map.free.is_empty(), "snapshot VG reported free space");
    assert!(
        map.findings[0].detail.contains("unallocated extents kept"),
        "{}",
        map.findings[0].detail
    );
    assert!(
        map.findings[1].detail.contains("used by another LV"),
        "{}",
        map.findings[1].detail
    );

    // Two PVs, a 2-way striped LV and a linear LV on the first PV.
    let tmp = Tmp::new("lvm-striped");
    let (a, b) = (tmp.join("a.img"), tmp.join("b.img"));
    garbage_file(&a, 256 * MIB);
    garbage_file(&b, 256 * MIB);
    let vg = vg_name();
    let lvs = {
        let (la, lb) = (Loop::new(&a), Loop::new(&b));
        let lvm = Lvm::new(&[&la.0, &lb.0]);
        lvm.run("pvcreate", &format!("-ff -y {} {}", la.0, lb.0));
        lvm.run("vgcreate", &format!("{vg} {} {}", la.0, lb.0));
        lvm.run("lvcreate", &format!("-an -Zn -i2 -L 64M -n striped {vg}"));
        lvm.run(
            "lvcreate",
            &format!("-an -Zn -L 64M -n linear {vg} {}", la.0),
        );
        layout(&lvm, &vg, &la.0).0
    };
    let parts = vec![make_ext(
        &tmp,
        &a,
        "linear",
        lv(&lvs, "linear"),
        "mkfs.ext4",
        "",
    )];
    let map = scan_path(&a);
    let kinds: Vec<&str> = map.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, vec!["lvm2-pv", "lvm2-lv", "lvm2-lv", "ext4"]);
    assert!(
        map.findings[0].detail.contains("VG has 2 PVs"),
        "{}",
        map.findings[0].detail
    );
    assert!(
        map.findings[1].detail.contains("2-way striped"),
        "{}",
        map.findings[1].detail
    );
    let linear = lv(&lvs, "linear");
    assert_free_within(&map, &linear);
    verify_part_only(&tmp, &a, &map, &parts);
}

/// verify_disk without the garbage-fraction and accuracy parts (most of this PV is data).
fn verify_part_only(tmp: &Tmp, disk: &Path, map: &osm_fsmap::Map, parts: &[Part]) {
    let copy = tmp.join("copy.img");
    sparsified_copy(disk, &copy, map, None);
    for p in parts {
        let img = tmp.join("check.img");
        crate::parts::extract_ranges(&copy, &p.ranges, &img);
        e2fsck_clean(&img);
        if let crate::parts::Content::Ext { want } = &p.content {
            assert_eq!(&ext_tree(&img, &tmp.join("tree-check")), want);
        }
    }
    let _ = verify_disk;
}

/// The usual distribution layout: an MBR disk with /boot in p1 and an LVM PV in p2 holding
/// root (XFS) and swap LVs; the PV keeps a second metadata copy at its end.
#[test]
fn lvm_on_a_partition_like_a_distribution_install() {
    if let Err(e) = can_loop().and(have(&[
        "sfdisk",
        "partx",
        "pvcreate",
        "mkfs.ext4",
        "mkfs.xfs",
        "mkswap",
    ])) {
        skip!("lvm_on_a_partition: {e}");
    }
    let tmp = Tmp::new("lvm-part");
    let disk = tmp.join("disk.img");
    garbage_file(&disk, 512 * MIB);
    sh(&format!(
        "printf 'label: dos\\n,64MiB,83,*\\n,,8e\\n' | sfdisk -q {}",
        q(&disk)
    ));
    let pl = crate::parts::partx(&disk);
    let p2 = crate::parts::part(&pl, 2)[0].clone();
    let vg = vg_name();
    let (lvs, unalloc) = {
        let l = Loop(
            sh_out(&format!(
                "losetup -f --show -o {} --sizelimit {} {}",
                p2.start,
                p2.end - p2.start,
                q(&disk)
            ))
            .trim()
            .to_string(),
        );
        let lvm = Lvm::new(&[&l.0]);
        lvm.run("pvcreate", &format!("-ff -y --pvmetadatacopies 2 {}", l.0));
        lvm.run("vgcreate", &format!("{vg} {}", l.0));
        lvm.run("lvcreate", &format!("-an -Zn -L 32M -n swap {vg}"));
        lvm.run("lvcreate", &format!("-an -Zn -l 100%FREE -n root {vg}"));
        layout(&lvm, &vg, &l.0)
    };
    let shift = |v: Vec<Range<u64>>| -> Vec<Range<u64>> {
        v.into_iter()
            .map(|r| r.start + p2.start..r.end + p2.start)
            .collect()
    };
    assert!(unalloc.is_empty(), "root should take every free extent");
    let parts = vec![
        make_ext(
            &tmp,
            &disk,
            "boot",
            crate::parts::part(&pl, 1),
            "mkfs.ext4",
            "",
        ),
        make_swap(&tmp, &disk, "swap", shift(lv(&lvs, "swap"))),
        make_xfs(&tmp, &disk, "root", shift(lv(&lvs, "root"))),
    ];
    let map = scan_path(&disk);
    let kinds: Vec<&str> = map.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["mbr", "ext4", "lvm2-pv", "lvm2-lv", "swap", "lvm2-lv", "xfs"]
    );
    verify_disk(&tmp, &disk, &map, &parts, &[], "distro-disk");
    // Both metadata copies survive: LVM reads the VG from the copy's partition.
    let copy = tmp.join("disk-copy.img");
    let l = Loop(
        sh_out(&format!(
            "losetup -f --show -o {} --sizelimit {} {}",
            p2.start,
            p2.end - p2.start,
            q(&copy)
        ))
        .trim()
        .to_string(),
    );
    let lvm = Lvm::new(&[&l.0]);
    lvm.run("vgck", &vg);
    let mdas = lvm.out(
        "pvs",
        &format!("-o pv_mda_count,pv_mda_used_count --noheadings {}", l.0),
    );
    assert_eq!(
        mdas.split_whitespace().collect::<Vec<_>>(),
        vec!["2", "2"],
        "{mdas}"
    );
}
