//! ext2/3/4 images made by mke2fs (populated with `-d`, files deleted with debugfs, or through a
//! kernel mount), checked after sparsifying with e2fsck and debugfs.

use crate::skip;
use crate::util::*;
use osm_fsmap::Map;
use std::path::{Path, PathBuf};

pub struct Case<'a> {
    pub name: &'a str,
    pub mkfs: &'a str,
    pub opts: &'a str,
    pub size: u64,
    pub files: usize,
    pub max_file: u64,
    pub kind: &'a str,
    pub pattern: bool,
}

/// A garbage-filled image, formatted and populated by `mkfs -d`, with two thirds of the files
/// deleted again. Returns the image, the source dir and the kept file names.
pub fn build(tmp: &Tmp, img: &Path, c: &Case) -> (PathBuf, Vec<String>) {
    let src = tmp.join(format!("src-{}", c.name));
    let names = random_files(&src, c.files, 4096, c.max_file);
    if !img.exists() {
        garbage_file(img, c.size);
    }
    sh(&format!(
        "{} -q -F -E nodiscard,lazy_itable_init=0 -d {} {} {}",
        c.mkfs,
        q(&src),
        c.opts,
        q(img)
    ));
    let (keep, del) = split_keep(&names);
    ext_delete(img, &del, tmp);
    e2fsck_clean(img); // the source itself must be sound, or the test proves nothing
    (src, keep)
}

/// The checks every ext image gets: sparsified copies (zeros, and a pattern) are clean and hold
/// the same files; free space held garbage; accuracy.
pub fn verify(
    tmp: &Tmp,
    img: &Path,
    map: &Map,
    src: &Path,
    keep: &[String],
    name: &str,
    pattern: bool,
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
    let want = ext_tree(img, &tmp.join(format!("tree-src-{name}")));
    assert_eq!(
        hash_some(src, keep),
        want,
        "{name}: source image does not hold the kept files"
    );
    let fills: &[Option<u8>] = if pattern {
        &[None, Some(0xA5)]
    } else {
        &[None]
    };
    for fill in fills {
        let copy = tmp.join("copy.img");
        sparsified_copy(img, &copy, map, *fill);
        e2fsck_clean(&copy);
        assert_eq!(
            ext_tree(&copy, &tmp.join(format!("tree-copy-{name}"))),
            want,
            "{name}: files differ after sparsify ({fill:?})"
        );
    }
}

fn run(c: &Case) {
    if let Err(e) = have(&[c.mkfs, "debugfs", "e2fsck", "dumpe2fs", "sha256sum"]) {
        skip!("{}: {e}", c.name);
    }
    let tmp = Tmp::new(c.name);
    let img = tmp.join("fs.img");
    let (src, keep) = build(&tmp, &img, c);
    let map = scan_path(&img);
    assert_eq!(map.findings.len(), 1);
    assert_eq!(map.findings[0].kind, c.kind, "{}", map.findings[0].detail);
    verify(&tmp, &img, &map, &src, &keep, c.name, c.pattern);
    let (used, free) = ext_usage(&img);
    // Free ranges are exact for 4 KiB blocks; 1 KiB blocks lose partial 4 KiB pieces.
    check_accuracy(c.name, c.size, map.free_bytes(), used, 2 * MIB);
    assert!(
        map.free_bytes() <= free,
        "{}: more reported free than the filesystem has",
        c.name
    );
}

fn uninit_groups(map: &Map) -> u64 {
    let d = &map.findings[0].detail;
    let at = d
        .find(" BLOCK_UNINIT")
        .expect("detail names BLOCK_UNINIT groups");
    d[..at]
        .rsplit('(')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("count")
}

#[test]
fn ext4_default_features() {
    run(&Case {
        name: "ext4-default",
        mkfs: "mkfs.ext4",
        opts: "",
        size: 512 * MIB,
        files: 60,
        max_file: 4 * MIB,
        kind: "ext4",
        pattern: true,
    });
}

#[test]
fn ext4_without_flex_bg() {
    run(&Case {
        name: "ext4-noflex",
        mkfs: "mkfs.ext4",
        opts: "-O ^flex_bg",
        size: 384 * MIB,
        files: 40,
        max_file: 4 * MIB,
        kind: "ext4",
        pattern: false,
    });
}

/// uninit_bg (gdt_csum, CRC16 descriptors) on a filesystem large enough that most groups are
/// never touched and keep BLOCK_UNINIT.
#[test]
fn ext4_uninit_bg_block_uninit_groups() {
    if let Err(e) = have(&["mkfs.ext4"]) {
        skip!("{e}");
    }
    let c = Case {
        name: "ext4-uninit",
        mkfs: "mkfs.ext4",
        opts: "-O ^metadata_csum,uninit_bg",
        size: 1024 * MIB,
        files: 30,
        max_file: 2 * MIB,
        kind: "ext4",
        pattern: true,
    };
    let tmp = Tmp::new(c.name);
    let img = tmp.join("fs.img");
    let (src, keep) = build(&tmp, &img, &c);
    let map = scan_path(&img);
    assert!(
        map.findings[0].detail.contains("uninit_bg"),
        "{}",
        map.findings[0].detail
    );
    assert!(uninit_groups(&map) > 0, "no BLOCK_UNINIT group exercised");
    verify(&tmp, &img, &map, &src, &keep, c.name, true);
    let (used, _) = ext_usage(&img);
    check_accuracy(c.name, c.size, map.free_bytes(), used, MIB);
}

/// metadata_csum with BLOCK_UNINIT groups, flex_bg, and a small flex group so group metadata
/// spreads over several groups.
#[test]
fn ext4_metadata_csum_flex_uninit() {
    if let Err(e) = have(&["mkfs.ext4"]) {
        skip!("{e}");
    }
    let c = Case {
        name: "ext4-csum-flex4",
        mkfs: "mkfs.ext4",
        opts: "-O metadata_csum,64bit,flex_bg -G 4",
        size: 1024 * MIB,
        files: 30,
        max_file: 2 * MIB,
        kind: "ext4",
        pattern: false,
    };
    let tmp = Tmp::new(c.name);
    let img = tmp.join("fs.img");
    let (src, keep) = build(&tmp, &img, &c);
    let map = scan_path(&img);
    assert!(map.findings[0].detail.contains("metadata_csum"));
    assert!(uninit_groups(&map) > 0, "no BLOCK_UNINIT group exercised");
    verify(&tmp, &img, &map, &src, &keep, c.name, false);
    let (used, _) = ext_usage(&img);
    check_accuracy(c.name, c.size, map.free_bytes(), used, MIB);
}

/// 1 KiB blocks (first data block 1, many groups) with meta_bg descriptors.
#[test]
fn ext4_1k_blocks_meta_bg() {
    run(&Case {
        name: "ext4-1k-metabg",
        mkfs: "mkfs.ext4",
        opts: "-b 1024 -O meta_bg,^resize_inode",
        size: 256 * MIB,
        files: 40,
        max_file: 2 * MIB,
        kind: "ext4",
        pattern: true,
    });
}

#[test]
fn ext2() {
    run(&Case {
        name: "ext2",
        mkfs: "mkfs.ext2",
        opts: "",
        size: 256 * MIB,
        files: 40,
        max_file: 2 * MIB,
        kind: "ext2",
        pattern: true,
    });
}

#[test]
fn ext3_with_journal() {
    run(&Case {
        name: "ext3",
        mkfs: "mkfs.ext3",
        opts: "-b 4096",
        size: 256 * MIB,
        files: 40,
        max_file: 2 * MIB,
        kind: "ext3",
        pattern: false,
    });
}

/// Files written and deleted by the kernel through a loop mount: real allocator, journal
/// commits, groups initialised on first use.
#[test]
fn ext4_kernel_mounted() {
    if let Err(e) = can_loop().and(have(&["mkfs.ext4", "debugfs", "e2fsck"])) {
        skip!("ext4_kernel_mounted: {e}");
    }
    let tmp = Tmp::new("ext4-kernel");
    let img = tmp.join("fs.img");
    garbage_file(&img, 768 * MIB);
    sh(&format!("mkfs.ext4 -q -F -E nodiscard {}", q(&img)));
    let src = tmp.join("src");
    let names = random_files(&src, 60, 4096, 6 * MIB);
    let (keep, del) = split_keep(&names);
    let mnt = Mount::new(&q(&img), &tmp.join("mnt"), "loop");
    sh(&format!("cp -r {}/. {} && sync", q(&src), q(&mnt.0)));
    for d in &del {
        std::fs::remove_file(mnt.0.join(d)).expect("rm");
    }
    sh("sync");
    mnt.unmount();
    e2fsck_clean(&img);
    let map = scan_path(&img);
    assert_eq!(map.findings[0].kind, "ext4");
    verify(&tmp, &img, &map, &src, &keep, "ext4-kernel", true);
    let (used, _) = ext_usage(&img);
    check_accuracy("ext4-kernel", 768 * MIB, map.free_bytes(), used, MIB);
}

#[test]
fn ext4_bigalloc_is_data() {
    if let Err(e) = have(&["mkfs.ext4"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("ext4-bigalloc");
    let img = tmp.join("fs.img");
    garbage_file(&img, 256 * MIB);
    sh(&format!(
        "mkfs.ext4 -q -F -O bigalloc -C 65536 {} 2>&1",
        q(&img)
    ));
    let map = scan_path(&img);
    assert!(map.free.is_empty());
    assert_eq!(map.findings[0].kind, "ext4");
    assert!(
        map.findings[0].detail.contains("bigalloc"),
        "{}",
        map.findings[0].detail
    );
}

/// A filesystem that needs journal replay, or was marked not clean, or has errors: data.
#[test]
fn ext4_unclean_states_are_data() {
    if let Err(e) = have(&["mkfs.ext4", "debugfs"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("ext4-unclean");
    let img = tmp.join("fs.img");
    garbage_file(&img, 128 * MIB);
    for (cmd, why) in [
        ("feature needs_recovery", "needs journal recovery"),
        ("ssv state 0", "not cleanly unmounted"),
        ("ssv state 3", "has errors"),
    ] {
        sh(&format!("mkfs.ext4 -q -F {}", q(&img)));
        assert!(
            !scan_path(&img).free.is_empty(),
            "fresh filesystem not recognised"
        );
        sh(&format!("debugfs -w -R '{cmd}' {} 2>&1", q(&img)));
        let map = scan_path(&img);
        assert!(map.free.is_empty(), "{cmd}: free space reported");
        assert!(
            map.findings[0].detail.contains(why),
            "{cmd}: {}",
            map.findings[0].detail
        );
    }
}

/// Journal with a transaction left to replay (kernel shutdown without a checkpoint): data.
#[test]
fn ext4_crashed_journal_is_data() {
    if let Err(e) = can_loop().and(have(&["mkfs.ext4", "xfs_io"])) {
        skip!("ext4_crashed_journal_is_data: {e}");
    }
    let tmp = Tmp::new("ext4-crash");
    let img = tmp.join("fs.img");
    garbage_file(&img, 256 * MIB);
    sh(&format!("mkfs.ext4 -q -F {}", q(&img)));
    let mnt = Mount::new(&q(&img), &tmp.join("mnt"), "loop");
    sh(&format!(
        "head -c 20M /dev/urandom > {0}/a && sync && head -c 5M /dev/urandom > {0}/b && xfs_io -x -c shutdown {0}",
        q(&mnt.0)
    ));
    mnt.unmount();
    let map = scan_path(&img);
    assert!(map.free.is_empty());
    assert!(
        map.findings[0].detail.contains("recovery"),
        "{}",
        map.findings[0].detail
    );
}

/// Corrupt bitmaps, descriptors and superblocks: no free ranges for that filesystem, no panic.
#[test]
fn ext_corruption_is_data() {
    if let Err(e) = have(&["mkfs.ext4", "mkfs.ext2", "dumpe2fs"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("ext-corrupt");
    let img = tmp.join("fs.img");
    let bitmap_of_group0 = |img: &Path| -> u64 {
        let out = sh_out(&format!("dumpe2fs {} 2>/dev/null", q(img)));
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("Block bitmap at "))
            .expect("bitmap line");
        line.trim_start()["Block bitmap at ".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|s| s.parse().ok())
            .expect("bitmap block")
    };
    let cases: [(&str, &str, &str); 4] = [
        // metadata_csum: one flipped bitmap bit fails the bitmap checksum.
        ("mkfs.ext4 -q -F -b 4096", "bitmap", "checksum mismatch"),
        // ext2 (no checksums): a flipped bit no longer matches the descriptor's free count.
        ("mkfs.ext2 -q -F -b 4096", "bitmap", "descriptor says"),
        // Superblock block count beyond the region.
        ("mkfs.ext2 -q -F -b 4096", "blocks", "region has"),
        // metadata_csum: any superblock byte changed fails its checksum.
        ("mkfs.ext4 -q -F -b 4096", "sbbyte", "superblock checksum"),
    ];
    for (mkfs, what, why) in cases {
        garbage_file(&img, 64 * MIB);
        sh(&format!("{mkfs} {}", q(&img)));
        assert!(!scan_path(&img).free.is_empty());
        match what {
            "bitmap" => {
                let off = bitmap_of_group0(&img) * 4096 + 2000;
                let b = peek(&img, off, 1)[0];
                poke(&img, off, &[b ^ 0x10]);
            }
            "blocks" => poke(&img, 1024 + 4, &(1u32 << 30).to_le_bytes()),
            _ => {
                let b = peek(&img, 1024 + 0x78, 1)[0]; // volume name
                poke(&img, 1024 + 0x78, &[b ^ 0xFF]);
            }
        }
        let map = scan_path(&img);
        assert!(map.free.is_empty(), "{mkfs} / {what}: free space reported");
        assert!(
            map.findings[0].detail.contains(why),
            "{mkfs} / {what}: {}",
            map.findings[0].detail
        );
    }
}

/// Less common layouts: sparse_super2, 64 KiB blocks, inline data, no 64bit and no resize inode,
/// orphan file, no journal, MMP, project ids, huge files without flex_bg, many tiny groups.
#[test]
fn ext4_feature_matrix() {
    if let Err(e) = have(&["mkfs.ext4", "debugfs", "e2fsck"]) {
        skip!("{e}");
    }
    let variants = [
        ("sparse_super2", "-O sparse_super2"),
        ("64k-blocks", "-b 65536"),
        ("inline-data", "-O inline_data"),
        ("no64-noresize", "-O ^64bit,^resize_inode"),
        ("orphan-file", "-O orphan_file"),
        ("no-journal", "-O ^has_journal"),
        ("mmp", "-O mmp"),
        ("project", "-O project -I 256"),
        ("huge-noflex", "-T huge -O ^flex_bg"),
        ("tiny-groups", "-b 1024 -g 1024 -N 2000"),
        ("csum-seed-4k", "-b 4096 -O metadata_csum_seed"),
    ];
    for (name, opts) in variants {
        let c = Case {
            name,
            mkfs: "mkfs.ext4",
            opts,
            size: 160 * MIB,
            files: 24,
            max_file: MIB,
            kind: "ext4",
            pattern: false,
        };
        let tmp = Tmp::new(name);
        let img = tmp.join("fs.img");
        garbage_file(&img, c.size);
        let (src, keep) = build(&tmp, &img, &c);
        if name == "csum-seed-4k" {
            // With metadata_csum_seed a new UUID leaves the checksum seed in the superblock.
            sh(&format!("tune2fs -U random {} >/dev/null 2>&1", q(&img)));
            e2fsck_clean(&img);
        }
        let map = scan_path(&img);
        assert_eq!(
            map.findings[0].kind, "ext4",
            "{name}: {}",
            map.findings[0].detail
        );
        verify(&tmp, &img, &map, &src, &keep, name, false);
        let (used, _) = ext_usage(&img);
        check_accuracy(name, c.size, map.free_bytes(), used, MIB);
    }
}
