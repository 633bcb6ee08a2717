//! Swap areas made by mkswap over garbage.

use crate::skip;
use crate::util::*;
use osm_fsmap::scan;
use std::fs::File;

fn blkid(img: &std::path::Path) -> String {
    sh_out(&format!("blkid -p -o export {} || true", q(img)))
        .lines()
        .filter(|l| l.starts_with("TYPE=") || l.starts_with("UUID=") || l.starts_with("LABEL="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn swap_everything_after_the_header_page_is_free() {
    if let Err(e) = have(&["mkswap", "blkid"]) {
        skip!("{e}");
    }
    for (page, bad) in [(4096u64, false), (65536, false), (4096, true)] {
        let tmp = Tmp::new("swap");
        let img = tmp.join("swap.img");
        let size = 64 * MIB;
        garbage_file(&img, size);
        sh(&format!("mkswap -q -p {page} -L osmswap {} 2>&1", q(&img)));
        if bad {
            // No tool writes a bad-page list to a file; patch one in (nr_badpages, badpages[]).
            poke(&img, 1032, &2u32.to_le_bytes());
            poke(&img, 1536, &[5, 0, 0, 0, 9, 0, 0, 0]);
        }
        let map = scan_path(&img);
        assert_eq!(map.findings[0].kind, "swap");
        assert_eq!(
            map.free,
            vec![page..size],
            "page size {page}, bad pages {bad}"
        );
        let copy = tmp.join("copy.img");
        sparsified_copy(&img, &copy, &map, None);
        assert_eq!(
            peek(&img, 0, page as usize),
            peek(&copy, 0, page as usize),
            "header page changed"
        );
        let (a, b) = (blkid(&img), blkid(&copy));
        assert!(
            a.contains("TYPE=swap") && a.contains("LABEL=osmswap"),
            "{a}"
        );
        assert_eq!(a, b);
        check_accuracy("swap", size, map.free_bytes(), page, 0);
    }
}

#[test]
fn swap_hibernation_image_and_truncation_are_data() {
    if let Err(e) = have(&["mkswap"]) {
        skip!("{e}");
    }
    let tmp = Tmp::new("swap-hib");
    let img = tmp.join("swap.img");
    garbage_file(&img, 32 * MIB);
    sh(&format!("mkswap -q {} 2>&1", q(&img)));
    // A swap area scanned through a region smaller than it claims (a shrunk partition).
    let f = File::open(&img).expect("open");
    let map = scan(&f, 16 * MIB);
    assert!(map.free.is_empty());
    assert!(
        map.findings[0].detail.contains("region has"),
        "{}",
        map.findings[0].detail
    );
    // The kernel writes S1SUSPEND over the signature when it hibernates into the area.
    poke(&img, 4086, b"S1SUSPEND\0");
    let map = scan_path(&img);
    assert!(map.free.is_empty());
    assert!(
        map.findings[0].detail.contains("hibernation"),
        "{}",
        map.findings[0].detail
    );
}
