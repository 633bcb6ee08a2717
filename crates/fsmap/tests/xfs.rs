//! XFS v5 and v4 images made by mkfs.xfs, filled and thinned through a kernel mount, checked
//! after sparsifying with xfs_repair -n and by reading every file back through a mount.

use crate::skip;
use crate::util::*;
use osm_fsmap::Map;
use std::path::{Path, PathBuf};

/// Garbage-filled image, mkfs.xfs without discard, files copied in and two thirds deleted by the
/// kernel. Returns the source dir and the kept names.
pub fn build(tmp: &Tmp, img: &Path, opts: &str, files: usize, max_file: u64) -> (PathBuf, Vec<String>) {
    sh(&format!("mkfs.xfs -q -f -K {opts} {} 2>&1", q(img)));
    let src = tmp.join("src-xfs");
    let names = random_files(&src, files, 4096, max_file);
    let (keep, del) = split_keep(&names);
    let mnt = Mount::new(&q(img), &tmp.join("mnt"), "loop");
    sh(&format!("cp -r {}/. {} && sync", q(&src), q(&mnt.0)));
    for d in &del {
        std::fs::remove_file(mnt.0.join(d)).expect("rm");
    }
    sh("sync");
    mnt.unmount();
    xfs_repair_clean(img);
    (src, keep)
}

/// Sparsified copies pass xfs_repair -n, and (as root) every kept file reads back identical.
pub fn verify(tmp: &Tmp, img: &Path, map: &Map, src: Option<(&Path, &[String])>, name: &str, pattern: bool) {
    assert!(map.free_bytes() > 0, "{name}: nothing reported free");
    let nz = nonzero_fraction(img, &map.free);
    eprintln!("{name}: {:.0}% of sampled free blocks held garbage", nz * 100.0);
    assert!(nz > 0.5, "{name}: free space of the test image was mostly zero; the test would prove little");
    let fills: &[Option<u8>] = if pattern { &[None, Some(0x5A)] } else { &[None] };
    for fill in fills {
        let copy = tmp.join("copy.img");
        sparsified_copy(img, &copy, map, *fill);
        xfs_repair_clean(&copy);
        if let Some((src, keep)) = src {
            let mnt = Mount::new(&q(&copy), &tmp.join("mnt-copy"), "loop,ro,nouuid");
            let got = hash_tree(&mnt.0);
            mnt.unmount();
            assert_eq!(got, hash_some(src, keep), "{name}: files differ after sparsify ({fill:?})");
        }
    }
}

fn files_case(name: &str, opts: &str, pattern: bool) {
    if let Err(e) = can_loop().and(have(&["mkfs.xfs", "xfs_repair", "xfs_db", "sha256sum"])) {
        skip!("{name}: {e}");
    }
    let tmp = Tmp::new(name);
    let img = tmp.join("fs.img");
    let size = 640 * MIB;
    garbage_file(&img, size);
    let (src, keep) = build(&tmp, &img, opts, 60, 6 * MIB);
    let map = scan_path(&img);
    assert_eq!(map.findings.len(), 1);
    assert_eq!(map.findings[0].kind, "xfs", "{}", map.findings[0].detail);
    verify(&tmp, &img, &map, Some((&src, &keep)), name, pattern);
    let (used, free) = xfs_usage(&img);
    check_accuracy(name, size, map.free_bytes(), used, MIB);
    assert!(map.free_bytes() <= free);
}

#[test]
fn xfs_v5_files() {
    files_case("xfs-v5", "", true);
}

#[test]
fn xfs_v4_files() {
    files_case("xfs-v4", "-m crc=0", false);
}

/// Without root: a fresh filesystem on garbage (the free space is all garbage).
#[test]
fn xfs_fresh_without_mount() {
    if let Err(e) = have(&["mkfs.xfs", "xfs_repair", "xfs_db"]) {
        skip!("{e}");
    }
    for (name, opts) in [("xfs-v5-fresh", ""), ("xfs-v4-fresh", "-m crc=0"), ("xfs-v5-1k", "-b size=1024")] {
        let tmp = Tmp::new(name);
        let img = tmp.join("fs.img");
        garbage_file(&img, 320 * MIB);
        sh(&format!("mkfs.xfs -q -f -K {opts} {} 2>&1", q(&img)));
        let map = scan_path(&img);
        assert_eq!(map.findings[0].kind, "xfs");
        verify(&tmp, &img, &map, None, name, false);
        let (used, _) = xfs_usage(&img);
        check_accuracy(name, 320 * MIB, map.free_bytes(), used, MIB);
    }
}

/// A log with transactions to replay (kernel shutdown without flushing the log): data.
#[test]
fn xfs_dirty_log_is_data() {
    if let Err(e) = can_loop().and(have(&["mkfs.xfs", "xfs_io"])) {
        skip!("xfs_dirty_log_is_data: {e}");
    }
    let tmp = Tmp::new("xfs-dirty");
    let img = tmp.join("fs.img");
    garbage_file(&img, 320 * MIB);
    sh(&format!("mkfs.xfs -q -f {}", q(&img)));
    let mnt = Mount::new(&q(&img), &tmp.join("mnt"), "loop");
    sh(&format!(
        "head -c 20M /dev/urandom > {0}/a && sync && head -c 5M /dev/urandom > {0}/b && xfs_io -x -c shutdown {0}",
        q(&mnt.0)
    ));
    mnt.unmount();
    let map = scan_path(&img);
    assert!(map.free.is_empty());
    assert!(map.findings[0].detail.contains("log not clean"), "{}", map.findings[0].detail);
    // After log recovery and a clean unmount it is recognised again.
    Mount::new(&q(&img), &tmp.join("mnt"), "loop").unmount();
    assert!(!scan_path(&img).free.is_empty());
}

/// Corrupt btree blocks and headers: no free ranges, no panic.
#[test]
fn xfs_corruption_is_data() {
    if let Err(e) = have(&["mkfs.xfs", "xfs_db"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("xfs-corrupt");
    let img = tmp.join("fs.img");
    let bnoroot = |img: &Path| -> u64 {
        let out = sh_out(&format!("xfs_db -r -c 'agf 0' -c 'p bnoroot' {}", q(img)));
        out.trim().trim_start_matches("bnoroot = ").parse().expect("bnoroot")
    };
    // (mkfs options, what to break, expected reason)
    let cases = [
        ("", "btree-byte", "CRC mismatch"),
        ("", "agf-byte", "AGF 0 CRC mismatch"),
        ("-m crc=0", "record-count", "AGF says"),
        ("-m crc=0", "sb-agcount", "do not match"),
    ];
    for (opts, what, why) in cases {
        garbage_file(&img, 320 * MIB);
        sh(&format!("mkfs.xfs -q -f {opts} {} 2>&1", q(&img)));
        assert!(!scan_path(&img).free.is_empty());
        let root = bnoroot(&img) * 4096;
        match what {
            "btree-byte" => poke(&img, root + 100, &[0x42]),
            "agf-byte" => poke(&img, 512 + 100, &[0x42]),
            "record-count" => {
                // First leaf record's blockcount (v4 header is 16 bytes), one more block.
                let n = u32::from_be_bytes(peek(&img, root + 20, 4).try_into().expect("4 bytes"));
                poke(&img, root + 20, &(n + 1).to_be_bytes());
            }
            _ => poke(&img, 88, &1000u32.to_be_bytes()),
        }
        let map = scan_path(&img);
        assert!(map.free.is_empty(), "{what}: free space reported");
        assert!(map.findings[0].detail.contains(why), "{what}: {}", map.findings[0].detail);
    }
}
