//! XFS v5 and v4 images made by mkfs.xfs, filled and thinned through a kernel mount, checked
//! after sparsifying with xfs_repair -n and by reading every file back through a mount.

use crate::skip;
use crate::util::*;
use osm_fsmap::Map;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Garbage-filled image, mkfs.xfs without discard, files copied in and two thirds deleted by the
/// kernel. Returns the source dir and the kept names.
pub fn build(
    tmp: &Tmp,
    img: &Path,
    opts: &str,
    files: usize,
    max_file: u64,
) -> (PathBuf, Vec<String>) {
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

/// Garbage-filled image populated at mkfs time from a prototype file (no kernel needed, and the
/// only way to put files into a v4 filesystem where the kernel no longer mounts v4). All files
/// are kept; the free space holds the garbage the image was filled with.
pub fn build_proto(
    tmp: &Tmp,
    img: &Path,
    opts: &str,
    files: usize,
    max_file: u64,
) -> (PathBuf, Vec<String>) {
    let src = tmp.join("src-xfs");
    let mut names = random_files(&src, files, 4096, max_file);
    names.sort();
    // Prototype: boot image, block/inode counts, root dir, entries ("$" closes a directory).
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    let mut dir = String::new();
    for n in &names {
        let (d, f) = n.rsplit_once('/').unwrap_or(("", n));
        if d != dir {
            if !dir.is_empty() {
                proto.push_str("$\n");
            }
            if !d.is_empty() {
                proto.push_str(&format!("{d} d--755 0 0\n"));
            }
            dir = d.to_string();
        }
        proto.push_str(&format!("{f} ---644 0 0 {}\n", src.join(n).display()));
    }
    if !dir.is_empty() {
        proto.push_str("$\n");
    }
    proto.push_str("$\n");
    let pf = tmp.join("proto");
    std::fs::write(&pf, proto).expect("proto");
    sh(&format!(
        "mkfs.xfs -q -f -K {opts} -p {} {} 2>&1",
        q(&pf),
        q(img)
    ));
    xfs_repair_clean(img);
    (src, names)
}

/// sha256 of files read back with xfs_db: size and extent map from the inode, bytes from the
/// image (an independent reader, and one that needs neither root nor kernel v4 support).
pub fn xfs_db_hashes(tmp: &Tmp, img: &Path, names: &[String]) -> BTreeMap<String, String> {
    let geo = sh_out(&format!(
        "xfs_db -r -c 'sb 0' -c 'p agblocks blocksize' {}",
        q(img)
    ));
    let num = |k: &str| -> u64 {
        geo.lines()
            .find_map(|l| {
                l.strip_prefix(k)?
                    .trim_start_matches(" = ")
                    .trim()
                    .parse()
                    .ok()
            })
            .expect(k)
    };
    let (agblocks, bs) = (num("agblocks"), num("blocksize"));
    let out_dir = tmp.join("xfsdb-files");
    let _ = std::fs::remove_dir_all(&out_dir);
    let image = File::open(img).expect("open");
    for n in names {
        let info = sh_out(&format!(
            "xfs_db -r -c 'path /{n}' -c 'p core.size' -c bmap {}",
            q(img)
        ));
        let size: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("core.size = ")?.trim().parse().ok())
            .expect("core.size");
        let mut content = vec![0u8; size as usize];
        for l in info.lines().filter(|l| l.starts_with("data offset")) {
            // data offset O startblock S (AG/AGBNO) count C flag F
            let w: Vec<&str> = l.split_whitespace().collect();
            let off: u64 = w[2].parse().expect("offset");
            let (ag, agbno) = w[5]
                .trim_matches(|c| c == '(' || c == ')')
                .split_once('/')
                .expect("ag/agbno");
            let (ag, agbno): (u64, u64) = (ag.parse().expect("ag"), agbno.parse().expect("agbno"));
            let count: u64 = w[7].parse().expect("count");
            if w[9] != "0" {
                continue; // unwritten extent: reads as zeros
            }
            let start = (off * bs) as usize;
            let end = ((off + count) * bs).min(size) as usize;
            if start < end {
                image
                    .read_exact_at(&mut content[start..end], (ag * agblocks + agbno) * bs)
                    .expect("read extent");
            }
        }
        let p = out_dir.join(n);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &content).expect("write");
    }
    hash_tree(&out_dir)
}

/// Sparsified copies pass xfs_repair -n, and every kept file reads back identical (through
/// xfs_db, and through a mount when `mount`).
pub fn verify(
    tmp: &Tmp,
    img: &Path,
    map: &Map,
    src: Option<(&Path, &[String])>,
    name: &str,
    pattern: bool,
    mount: bool,
) {
    assert!(map.free_bytes() > 0, "{name}: nothing reported free");
    let nz = nonzero_fraction(img, &map.free);
    eprintln!(
        "{name}: {:.0}% of sampled free blocks held garbage",
        nz * 100.0
    );
    assert!(
        nz > 0.5,
        "{name}: free space of the test image was mostly zero; the test would prove little"
    );
    let fills: &[Option<u8>] = if pattern {
        &[None, Some(0x5A)]
    } else {
        &[None]
    };
    for fill in fills {
        let copy = tmp.join("copy.img");
        sparsified_copy(img, &copy, map, *fill);
        xfs_repair_clean(&copy);
        if let Some((src, keep)) = src {
            let want = hash_some(src, keep);
            assert_eq!(
                xfs_db_hashes(tmp, &copy, keep),
                want,
                "{name}: files differ after sparsify ({fill:?})"
            );
            if mount {
                let mnt = Mount::new(&q(&copy), &tmp.join("mnt-copy"), "loop,ro,nouuid");
                let got = hash_tree(&mnt.0);
                mnt.unmount();
                assert_eq!(
                    got, want,
                    "{name}: files differ after sparsify ({fill:?}), read through a mount"
                );
            }
        }
    }
}

/// `kernel`: files written and deleted through a mount (root), else put in by mkfs -p.
fn files_case(name: &str, opts: &str, pattern: bool, kernel: bool) {
    if let Err(e) = have(&["mkfs.xfs", "xfs_repair", "xfs_db", "sha256sum"]) {
        skip!("{name}: {e}");
    }
    if kernel {
        if let Err(e) = can_loop() {
            skip!("{name}: {e}");
        }
    }
    let tmp = Tmp::new(name);
    let img = tmp.join("fs.img");
    let size = 640 * MIB;
    garbage_file(&img, size);
    let (src, keep) = if kernel {
        build(&tmp, &img, opts, 60, 6 * MIB)
    } else {
        build_proto(&tmp, &img, opts, 24, 6 * MIB)
    };
    let map = scan_path(&img);
    assert_eq!(map.findings.len(), 1);
    assert_eq!(map.findings[0].kind, "xfs", "{}", map.findings[0].detail);
    verify(&tmp, &img, &map, Some((&src, &keep)), name, pattern, kernel);
    let (used, free) = xfs_usage(&img);
    check_accuracy(name, size, map.free_bytes(), used, MIB);
    assert!(map.free_bytes() <= free);
}

#[test]
fn xfs_v5_files_kernel() {
    files_case("xfs-v5", "", true, true);
}

#[test]
fn xfs_v5_files_proto() {
    files_case("xfs-v5-proto", "-b size=1024", false, false);
}

/// v4 (the kernel here no longer mounts v4, so the files come from mkfs -p).
#[test]
fn xfs_v4_files_proto() {
    files_case("xfs-v4", "-m crc=0", true, false);
}

/// Without root: a fresh filesystem on garbage (the free space is all garbage).
#[test]
fn xfs_fresh_without_mount() {
    if let Err(e) = have(&["mkfs.xfs", "xfs_repair", "xfs_db"]) {
        skip!("{e}");
    }
    for (name, opts) in [("xfs-v5-fresh", ""), ("xfs-v4-fresh", "-m crc=0")] {
        let tmp = Tmp::new(name);
        let img = tmp.join("fs.img");
        garbage_file(&img, 320 * MIB);
        sh(&format!("mkfs.xfs -q -f -K {opts} {} 2>&1", q(&img)));
        let map = scan_path(&img);
        assert_eq!(map.findings[0].kind, "xfs");
        verify(&tmp, &img, &map, None, name, false, false);
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
    assert!(
        map.findings[0].detail.contains("log not clean"),
        "{}",
        map.findings[0].detail
    );
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
        out.trim()
            .trim_start_matches("bnoroot = ")
            .parse()
            .expect("bnoroot")
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
                poke(&img, root + 20, &(n - 1).to_be_bytes());
            }
            _ => poke(&img, 88, &1000u32.to_be_bytes()),
        }
        let map = scan_path(&img);
        assert!(map.free.is_empty(), "{what}: free space reported");
        assert!(
            map.findings[0].detail.contains(why),
            "{what}: {}",
            map.findings[0].detail
        );
    }
}

/// Enough metadata traffic that the log wraps (cycle 2 and beyond), then a clean unmount; then
/// the same with a shutdown. The verdict must match xfs_logprint's.
#[test]
fn xfs_wrapped_log() {
    if let Err(e) = can_loop().and(have(&["mkfs.xfs", "xfs_logprint", "xfs_io"])) {
        skip!("xfs_wrapped_log: {e}");
    }
    let tmp = Tmp::new("xfs-wrap");
    let img = tmp.join("fs.img");
    garbage_file(&img, 320 * MIB);
    sh(&format!("mkfs.xfs -q -f {}", q(&img)));
    let state = |img: &Path| -> (u64, String) {
        let out = sh_out(&format!("xfs_logprint -t {} 2>/dev/null", q(img)));
        let line = out
            .lines()
            .find(|l| l.contains("log tail:"))
            .expect("log tail line")
            .to_string();
        let head = line
            .split("head:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("head");
        (head, line)
    };
    let mut last_head = 0;
    let mut wrapped = false;
    for round in 0..3 {
        let mnt = Mount::new(&q(&img), &tmp.join("mnt"), "loop");
        let d = mnt.0.join(format!("r{round}"));
        std::fs::create_dir(&d).expect("mkdir");
        for i in 0..60000 {
            std::fs::File::create(d.join(format!("f{i}"))).expect("create");
        }
        for i in 0..60000 {
            std::fs::remove_file(d.join(format!("f{i}"))).expect("rm");
        }
        mnt.unmount();
        let (head, line) = state(&img);
        eprintln!("round {round}: {line}");
        assert!(line.contains("CLEAN"), "{line}");
        wrapped |= head < last_head;
        last_head = head;
        let map = scan_path(&img);
        assert!(
            map.findings[0].detail.contains("clean"),
            "round {round}: {}",
            map.findings[0].detail
        );
        if wrapped {
            break;
        }
    }
    assert!(
        wrapped,
        "the log never wrapped; the test proves less than it claims"
    );
    let mnt = Mount::new(&q(&img), &tmp.join("mnt"), "loop");
    sh(&format!(
        "touch {0}/x && sync && touch {0}/y && xfs_io -x -c shutdown {0}",
        q(&mnt.0)
    ));
    mnt.unmount();
    let (_, line) = state(&img);
    assert!(line.contains("DIRTY"), "{line}");
    let map = scan_path(&img);
    assert!(map.free.is_empty(), "dirty wrapped log reported free space");
}
