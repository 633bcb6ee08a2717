//! Whole disks: MBR with logical partitions (sfdisk) and GPT (sgdisk), each partition formatted
//! on its own garbage and written back, gaps and unformatted partitions left full of garbage.

use crate::skip;
use crate::util::*;
use crate::{ext, xfs};
use osm_fsmap::Map;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub enum Content {
    Ext {
        want: BTreeMap<String, String>,
    },
    Xfs {
        files: Option<BTreeMap<String, String>>,
    },
    Swap {
        header: Vec<u8>,
    },
    Raw,
}

/// A region of a test disk (a partition, or an LV as a list of extents) and what it holds.
pub struct Part {
    pub name: String,
    pub ranges: Vec<Range<u64>>,
    pub content: Content,
    /// Free bytes according to the filesystem's own tools.
    pub tool_free: u64,
}

/// Copies the concatenation of `ranges` of `img` into a new file.
pub fn extract_ranges(img: &Path, ranges: &[Range<u64>], out: &Path) {
    let s = File::open(img).expect("open");
    let d = File::create(out).expect("create");
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut at = 0;
    for r in ranges {
        let mut p = r.start;
        while p < r.end {
            let n = (r.end - p).min(buf.len() as u64) as usize;
            s.read_exact_at(&mut buf[..n], p).expect("read");
            d.write_all_at(&buf[..n], at).expect("write");
            p += n as u64;
            at += n as u64;
        }
    }
}

/// Writes `src` back over the concatenation of `ranges` of `img`.
pub fn insert_ranges(src: &Path, img: &Path, ranges: &[Range<u64>]) {
    let s = File::open(src).expect("open");
    let d = OpenOptions::new().write(true).open(img).expect("open");
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut at = 0;
    for r in ranges {
        let mut p = r.start;
        while p < r.end {
            let n = (r.end - p).min(buf.len() as u64) as usize;
            s.read_exact_at(&mut buf[..n], at).expect("read");
            d.write_all_at(&buf[..n], p).expect("write");
            p += n as u64;
            at += n as u64;
        }
    }
}

pub fn make_ext(
    tmp: &Tmp,
    disk: &Path,
    name: &str,
    ranges: Vec<Range<u64>>,
    mkfs: &str,
    opts: &str,
) -> Part {
    let img = tmp.join(format!("{name}.img"));
    extract_ranges(disk, &ranges, &img);
    let c = ext::Case {
        name,
        mkfs,
        opts,
        size: 0,
        files: 24,
        max_file: 2 * MIB,
        kind: "",
        pattern: false,
    };
    let (src, keep) = ext::build(tmp, &img, &c);
    let want = ext_tree(&img, &tmp.join(format!("tree-{name}")));
    assert_eq!(want, hash_some(&src, &keep));
    insert_ranges(&img, disk, &ranges);
    let tool_free = ext_usage(&img).1;
    Part {
        name: name.into(),
        ranges,
        content: Content::Ext { want },
        tool_free,
    }
}

/// XFS with files when loop mounts work, else a fresh filesystem.
pub fn make_xfs(tmp: &Tmp, disk: &Path, name: &str, ranges: Vec<Range<u64>>) -> Part {
    let img = tmp.join(format!("{name}.img"));
    extract_ranges(disk, &ranges, &img);
    // Kernel-written files where loop mounts work, else files put in by mkfs -p.
    let (src, keep) = if can_loop().is_ok() {
        xfs::build(tmp, &img, "", 30, 4 * MIB)
    } else {
        xfs::build_proto(tmp, &img, "", 20, 4 * MIB)
    };
    let files = Some(hash_some(&src, &keep));
    insert_ranges(&img, disk, &ranges);
    let tool_free = xfs_usage(&img).1;
    Part {
        name: name.into(),
        ranges,
        content: Content::Xfs { files },
        tool_free,
    }
}

pub fn make_swap(tmp: &Tmp, disk: &Path, name: &str, ranges: Vec<Range<u64>>) -> Part {
    let img = tmp.join(format!("{name}.img"));
    extract_ranges(disk, &ranges, &img);
    sh(&format!("mkswap -q {} 2>&1", q(&img)));
    insert_ranges(&img, disk, &ranges);
    let len: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    Part {
        name: name.into(),
        ranges,
        content: Content::Swap {
            header: peek(&img, 0, 4096),
        },
        tool_free: len - 4096,
    }
}

pub fn raw(name: &str, ranges: Vec<Range<u64>>) -> Part {
    Part {
        name: name.into(),
        ranges,
        content: Content::Raw,
        tool_free: 0,
    }
}

/// Sparsified copy of the disk; each part, read back from it, passes its checks; free space lies
/// only in parts with a filesystem (or `extra` ranges, e.g. unallocated LVM extents).
pub fn verify_disk(
    tmp: &Tmp,
    disk: &Path,
    map: &Map,
    parts: &[Part],
    extra: &[Range<u64>],
    label: &str,
) {
    let mut allowed: Vec<Range<u64>> = extra.to_vec();
    for p in parts {
        if !matches!(p.content, Content::Raw) {
            allowed.extend(p.ranges.iter().cloned());
        }
    }
    assert_free_within(map, &allowed);
    let nz = nonzero_fraction(disk, &map.free);
    assert!(nz > 0.5, "{label}: free space was mostly zero ({nz})");
    let copy = tmp.join("disk-copy.img");
    sparsified_copy(disk, &copy, map, None);
    for p in parts {
        let img = tmp.join(format!("check-{}.img", p.name));
        extract_ranges(&copy, &p.ranges, &img);
        match &p.content {
            Content::Ext { want } => {
                e2fsck_clean(&img);
                assert_eq!(
                    &ext_tree(&img, &tmp.join(format!("tree-check-{}", p.name))),
                    want,
                    "{}",
                    p.name
                );
            }
            Content::Xfs { files } => {
                xfs_repair_clean(&img);
                if let Some(want) = files {
                    let names: Vec<String> = want.keys().cloned().collect();
                    assert_eq!(&xfs::xfs_db_hashes(tmp, &img, &names), want, "{}", p.name);
                }
            }
            Content::Swap { header } => {
                assert_eq!(
                    &peek(&img, 0, 4096),
                    header,
                    "{}: swap header changed",
                    p.name
                );
            }
            Content::Raw => {
                let orig = tmp.join("orig-raw.img");
                extract_ranges(disk, &p.ranges, &orig);
                assert!(
                    std::fs::read(&orig).ok() == std::fs::read(&img).ok(),
                    "{}: raw region changed",
                    p.name
                );
            }
        }
    }
    let size = std::fs::metadata(disk).expect("stat").len();
    let tool_free: u64 = parts.iter().map(|p| p.tool_free).sum::<u64>()
        + extra.iter().map(|r| r.end - r.start).sum::<u64>();
    check_accuracy(label, size, map.free_bytes(), size - tool_free, 2 * MIB);
}

/// (number, start byte, length, type) of each partition, as partx reads them.
pub fn partx(disk: &Path) -> Vec<(u32, u64, u64, String)> {
    sh_out(&format!("partx -g -o NR,START,SECTORS,TYPE {}", q(disk)))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse::<u64>().ok()? * 512,
                f.get(2)?.parse::<u64>().ok()? * 512,
                f.get(3)?.to_string(),
            ))
        })
        .collect()
}

#[allow(clippy::single_range_in_vec_init)] // a partition is one range of the disk
pub fn part(list: &[(u32, u64, u64, String)], n: u32) -> Vec<Range<u64>> {
    let p = list
        .iter()
        .find(|p| p.0 == n)
        .unwrap_or_else(|| panic!("partition {n} missing"));
    vec![p.1..p.1 + p.2]
}

fn kinds(map: &Map) -> Vec<&str> {
    map.findings.iter().map(|f| f.kind.as_str()).collect()
}

#[test]
fn mbr_with_logical_partitions() {
    if let Err(e) = have(&[
        "sfdisk",
        "partx",
        "mkfs.ext4",
        "mkfs.ext2",
        "mkfs.xfs",
        "mkswap",
        "xfs_repair",
        "debugfs",
    ]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("mbr");
    let disk = tmp.join("disk.img");
    garbage_file(&disk, 600 * MIB);
    sh(&format!(
        "printf 'label: dos\\n,64MiB,83\\n,,5\\n,340MiB,83\\n,32MiB,82\\n,48MiB,83\\n' | sfdisk -q {}",
        q(&disk)
    ));
    let pl = partx(&disk);
    let parts = vec![
        make_ext(&tmp, &disk, "p1-ext4", part(&pl, 1), "mkfs.ext4", ""),
        make_xfs(&tmp, &disk, "p5-xfs", part(&pl, 5)),
        make_swap(&tmp, &disk, "p6-swap", part(&pl, 6)),
        make_ext(&tmp, &disk, "p7-ext2", part(&pl, 7), "mkfs.ext2", "-b 1024"),
    ];
    let map = scan_path(&disk);
    assert_eq!(kinds(&map), vec!["mbr", "ext4", "xfs", "swap", "ext2"]);
    assert!(
        map.findings[0]
            .detail
            .contains("1 primary partitions and an extended one with 3 logical"),
        "{}",
        map.findings[0].detail
    );
    verify_disk(&tmp, &disk, &map, &parts, &[], "mbr-disk");
    let copy = tmp.join("disk-copy.img");
    assert_eq!(partx(&copy), pl, "partition table changed");
}

#[test]
fn gpt_with_several_partitions() {
    if let Err(e) = have(&[
        "sgdisk",
        "partx",
        "mkfs.ext4",
        "mkfs.xfs",
        "mkswap",
        "xfs_repair",
        "debugfs",
    ]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("gpt");
    let disk = tmp.join("disk.img");
    garbage_file(&disk, 600 * MIB);
    sh(&format!(
        "sgdisk -n 1:2048:+1M -t 1:ef02 -c 1:bios -n 2:0:+64M -c 2:root -n 3:0:+340M -c 3:data \
         -n 4:0:+32M -t 4:8200 -n 5:0:+40M -c 5:unformatted {} >/dev/null",
        q(&disk)
    ));
    let pl = partx(&disk);
    let parts = vec![
        raw("p1-bios", part(&pl, 1)),
        make_ext(&tmp, &disk, "p2-ext4", part(&pl, 2), "mkfs.ext4", ""),
        make_xfs(&tmp, &disk, "p3-xfs", part(&pl, 3)),
        make_swap(&tmp, &disk, "p4-swap", part(&pl, 4)),
        raw("p5-raw", part(&pl, 5)),
    ];
    let map = scan_path(&disk);
    assert_eq!(
        kinds(&map),
        vec!["gpt", "unknown", "ext4", "xfs", "swap", "unknown"]
    );
    assert!(map.findings[0]
        .detail
        .contains("primary and backup headers valid"));
    assert!(
        map.findings[2].detail.starts_with("p2 'root'"),
        "{}",
        map.findings[2].detail
    );
    verify_disk(&tmp, &disk, &map, &parts, &[], "gpt-disk");
    assert_eq!(
        partx(&tmp.join("disk-copy.img")),
        pl,
        "partition table changed"
    );
    let (rc, out) = sh_status(&format!("sgdisk -v {}", q(&tmp.join("disk-copy.img"))));
    assert!(rc == 0 && out.contains("No problems found"), "{out}");
}

/// Primary or backup GPT damaged, the two disagreeing, or no protective MBR.
#[test]
fn gpt_header_damage() {
    if let Err(e) = have(&["sgdisk", "mkfs.ext4"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("gpt-damage");
    let disk = tmp.join("disk.img");
    let size = 96 * MIB;
    let fresh = || {
        garbage_file(&disk, size);
        sh(&format!("sgdisk -n 1:2048:+64M {} >/dev/null", q(&disk)));
        let pl = partx(&disk);
        let r = part(&pl, 1);
        let img = tmp.join("p.img");
        extract_ranges(&disk, &r, &img);
        sh(&format!("mkfs.ext4 -q -F {}", q(&img)));
        insert_ranges(&img, &disk, &r);
    };
    let last_lba = size / 512 - 1;

    fresh();
    poke(&disk, 512 + 40, &[0xFF]); // primary header: first usable LBA, CRC now wrong
    let map = scan_path(&disk);
    assert!(
        map.findings[0]
            .detail
            .contains("primary header invalid, backup used"),
        "{}",
        map.findings[0].detail
    );
    assert!(!map.free.is_empty());

    fresh();
    poke(&disk, last_lba * 512 + 40, &[0xFF]); // backup header
    let map = scan_path(&disk);
    assert!(
        map.findings[0]
            .detail
            .contains("backup header missing or invalid"),
        "{}",
        map.findings[0].detail
    );
    assert!(!map.free.is_empty());

    // Both valid but different: keep the old backup, let sgdisk rewrite both, put the old back.
    fresh();
    let tail = 33 * 512;
    let old = peek(&disk, size - tail, tail as usize);
    sh(&format!("sgdisk -c 1:renamed {} >/dev/null", q(&disk)));
    poke(&disk, size - tail, &old);
    let map = scan_path(&disk);
    assert!(map.free.is_empty());
    assert!(
        map.findings[0].detail.contains("disagree"),
        "{}",
        map.findings[0].detail
    );

    fresh();
    poke(&disk, 0, &[0u8; 512]);
    let map = scan_path(&disk);
    assert!(map.free.is_empty());
    assert!(
        map.findings[0].detail.contains("protective MBR"),
        "{}",
        map.findings[0].detail
    );
}

/// Overlapping partitions and EBR chains that loop (sfdisk refuses to write either, so the
/// entries are patched): data.
#[test]
fn mbr_inconsistent_tables_are_data() {
    if let Err(e) = have(&["sfdisk", "mkfs.ext4"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("mbr-bad");
    let disk = tmp.join("disk.img");
    let fresh = || -> Vec<(u32, u64, u64, String)> {
        garbage_file(&disk, 128 * MIB);
        sh(&format!(
            "printf 'label: dos\\n,32MiB,83\\n,,5\\n,32MiB,83\\n,32MiB,83\\n' | sfdisk -q {}",
            q(&disk)
        ));
        let pl = partx(&disk);
        for n in [1, 5] {
            let r = part(&pl, n);
            let img = tmp.join("p.img");
            extract_ranges(&disk, &r, &img);
            sh(&format!("mkfs.ext4 -q -F {}", q(&img)));
            insert_ranges(&img, &disk, &r);
        }
        pl
    };
    let pl = fresh();
    assert!(!scan_path(&disk).free.is_empty());
    // Partition 1 grown into the extended partition.
    poke(&disk, 446 + 12, &(200_000u32).to_le_bytes());
    let map = scan_path(&disk);
    let d = &map.findings[0].detail;
    assert!(
        map.free.is_empty() && (d.contains("overlaps") || d.contains("covers a partition table")),
        "{d}"
    );

    fresh();
    // The first EBR's link entry points at the first EBR itself.
    let ext_start = pl.iter().find(|p| p.0 == 2).expect("extended").1;
    assert_ne!(
        peek(&disk, ext_start + 446 + 16 + 8, 4),
        vec![0; 4],
        "no link to patch"
    );
    poke(&disk, ext_start + 446 + 16 + 8, &0u32.to_le_bytes());
    let map = scan_path(&disk);
    assert!(
        map.free.is_empty() && map.findings[0].detail.contains("does not go forward"),
        "{}",
        map.findings[0].detail
    );
}

/// GPT written by sgdisk on a loop device with 4 KiB logical sectors.
#[test]
fn gpt_with_4k_sectors() {
    if let Err(e) = can_loop().and(have(&["sgdisk", "mkfs.ext4", "debugfs"])) {
        skip!("gpt_with_4k_sectors: {e}");
    }
    let tmp = Tmp::new("gpt4k");
    let disk = tmp.join("disk.img");
    garbage_file(&disk, 200 * MIB);
    let pl = {
        let l = Loop(
            sh_out(&format!("losetup -f --show -b 4096 {}", q(&disk)))
                .trim()
                .to_string(),
        );
        assert_eq!(sh_out(&format!("blockdev --getss {}", l.0)).trim(), "4096");
        sh(&format!(
            "sgdisk -n 1:0:+64M -n 2:0:+64M {} >/dev/null",
            l.0
        ));
        partx(Path::new(&l.0))
    };
    let parts = vec![
        make_ext(&tmp, &disk, "p1-ext4", part(&pl, 1), "mkfs.ext4", "-b 4096"),
        raw("p2-raw", part(&pl, 2)),
    ];
    let map = scan_path(&disk);
    assert!(
        map.findings[0].detail.contains("GPT, 4096-byte sectors"),
        "{}",
        map.findings[0].detail
    );
    assert_eq!(kinds(&map), vec!["gpt", "ext4", "unknown"]);
    verify_disk(&tmp, &disk, &map, &parts, &[], "gpt-4k");
}
