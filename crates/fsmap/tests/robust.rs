//! Noise, planted signatures, truncation and random corruption: never a panic, and noise is
//! never free.

use crate::skip;
use crate::util::*;
use osm_fsmap::{scan, ReadAt};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    let s = std::env::var("OSM_FSMAP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("seed {s} (set OSM_FSMAP_SEED to repeat)");
    s | 1
}

#[test]
fn random_bytes_are_never_free() {
    let mut r = Rng(seed());
    for size in [0usize, 1, 511, 512, 4096, 65536, 1 << 20, (1 << 20) + 77] {
        let buf = r.bytes(size);
        let map = scan(&buf, size as u64);
        assert!(map.free.is_empty(), "noise of {size} bytes reported free");
        assert_eq!(map.findings.len(), 1);
        check_map_shape(&map, size as u64);
    }
    // A size larger than the buffer: reads fail, nothing is free.
    let buf = r.bytes(4096);
    let map = scan(&buf, 1 << 30);
    assert!(map.free.is_empty());
}

/// Every signature the scanner looks for, planted in noise, alone and together.
#[test]
fn planted_signatures_in_noise_never_panic() {
    let mut r = Rng(seed());
    let plants: [(usize, &[u8]); 10] = [
        (512, b"EFI PART"),
        (4096, b"EFI PART"),
        (512, b"LABELONE"),
        (0, b"XFSB"),
        (1080, &[0x53, 0xEF]),
        (4086, b"SWAPSPACE2"),
        (65526, b"SWAPSPACE2"),
        (510, &[0x55, 0xAA]),
        (446, &[0x80, 0, 0, 0, 0x83, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]),
        (536, b"LVM2 001"),
    ];
    for i in 0..300 {
        let size = 64 * 1024 + r.below(1 << 20) as usize;
        let mut buf = r.bytes(size);
        // Some runs zero most of the buffer, so structures read zeros rather than noise.
        if i % 3 == 0 {
            buf[8192..].fill(0);
        }
        for (off, sig) in plants {
            if r.below(3) == 0 && off + sig.len() <= buf.len() {
                buf[off..off + sig.len()].copy_from_slice(sig);
            }
        }
        let map = scan(&buf, size as u64);
        check_map_shape(&map, size as u64);
    }
}

/// Reads from a file with some bytes replaced.
struct Overlay<'a> {
    file: &'a File,
    patches: BTreeMap<u64, u8>,
    reads: RefCell<Vec<(u64, usize)>>,
}

impl ReadAt for Overlay<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self.file, buf, offset)?;
        for (&at, &b) in self.patches.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] = b;
        }
        self.reads.borrow_mut().push((offset, buf.len()));
        Ok(())
    }
}

/// Scans `img` many times with random bytes changed where the scanner reads, and truncated.
fn mutate(img: &Path, rounds: usize, r: &mut Rng) {
    let file = File::open(img).expect("open");
    let size = file.metadata().expect("stat").len();
    let clean = Overlay {
        file: &file,
        patches: BTreeMap::new(),
        reads: RefCell::new(Vec::new()),
    };
    let base = scan(&clean, size);
    assert!(
        !base.free.is_empty(),
        "{}: unmutated image not recognised",
        img.display()
    );
    let reads = clean.reads.into_inner();
    let mut outcomes = BTreeMap::<bool, usize>::new();
    for _ in 0..rounds {
        let mut patches = BTreeMap::new();
        for _ in 0..1 + r.below(4) {
            let (off, len) = reads[r.below(reads.len() as u64) as usize];
            let at = off + r.below(len as u64);
            patches.insert(at, r.next() as u8);
        }
        let ov = Overlay {
            file: &file,
            patches,
            reads: RefCell::new(Vec::new()),
        };
        let map = scan(&ov, size);
        check_map_shape(&map, size);
        *outcomes.entry(map.free.is_empty()).or_default() += 1;
    }
    for _ in 0..rounds / 4 {
        let cut = r.below(size);
        let map = scan(&file, cut);
        check_map_shape(&map, cut);
    }
    eprintln!(
        "{}: {} mutated scans, {} still free space, {} copied as data",
        img.display(),
        rounds,
        outcomes.get(&false).unwrap_or(&0),
        outcomes.get(&true).unwrap_or(&0)
    );
}

#[test]
fn mutated_real_images_never_panic() {
    if let Err(e) = have(&["mkfs.ext4", "mkfs.xfs", "sfdisk", "mkswap"]) {
        skip!("{e}");
    }
    let mut r = Rng(seed());
    let tmp = Tmp::new("mutate");
    let cases: [(&str, u64, &str); 5] = [
        ("ext4.img", 32 * MIB, "mkfs.ext4 -q -F -b 4096 IMG"),
        ("ext2.img", 16 * MIB, "mkfs.ext2 -q -F IMG"),
        ("xfs.img", 300 * MIB, "mkfs.xfs -q -f IMG"),
        (
            "xfs4.img",
            300 * MIB,
            "mkfs.xfs -q -f -m crc=0 IMG 2>/dev/null",
        ),
        (
            "mbr.img",
            64 * MIB,
            "printf 'label: dos\\n,8MiB,82\\n,,5\\n,8MiB,82\\n,8MiB,83\\n' | sfdisk -q IMG",
        ),
    ];
    for (name, size, cmd) in cases {
        let img = tmp.join(name);
        garbage_file(&img, size);
        sh(&cmd.replace("IMG", &q(&img)));
        if name == "mbr.img" {
            // Swap in p1 and p5, ext4 in p6: the walk goes through the EBR chain into each.
            let pl = crate::parts::partx(&img);
            for (n, mk) in [(1, "mkswap -q"), (5, "mkswap -q"), (6, "mkfs.ext4 -q -F")] {
                let r = crate::parts::part(&pl, n);
                let p = tmp.join("p.img");
                crate::parts::extract_ranges(&img, &r, &p);
                sh(&format!("{mk} {} 2>&1", q(&p)));
                crate::parts::insert_ranges(&p, &img, &r);
            }
        }
        // OSM_FSMAP_FUZZ_ROUNDS runs a longer campaign locally.
        let rounds = std::env::var("OSM_FSMAP_FUZZ_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(150);
        mutate(&img, rounds, &mut r);
    }
}
