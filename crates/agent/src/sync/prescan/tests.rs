use std::path::PathBuf;
use std::time::Duration;

use super::*;

const CS: u32 = 64 << 10;
const SEED: u64 = 0x5eed;

/// A disk of 6 chunks and a short seventh (data in chunks 0, 2, 3 and 6, zeros elsewhere), in a
/// directory of its own with the path of its scan beside it, opened as a sync's target.
struct Disk {
    _dir: tempfile::TempDir,
    dev: PathBuf,
    out: PathBuf,
    t: Target,
    size: u64,
}

impl Disk {
    fn new() -> Disk {
        let dir = tempfile::tempdir().unwrap();
        let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
        let cs = CS as usize;
        let mut data = vec![0u8; 6 * cs + 5000];
        for (i, b) in data.iter_mut().enumerate() {
            if [0, 2, 3, 6].contains(&(i / cs)) {
                *b = (i % 241 + 1) as u8;
            }
        }
        std::fs::write(&dev, &data).unwrap();
        let size = data.len() as u64;
        let t = Target::open(&dev, size).unwrap();
        Disk {
            _dir: dir,
            dev,
            out,
            t,
            size,
        }
    }

    /// The disk, already scanned.
    fn scanned() -> Disk {
        let d = Disk::new();
        d.scan();
        d
    }

    fn scan(&self) {
        run(&ScanOptions {
            device: self.dev.clone(),
            out: self.out.clone(),
            chunk_size: CS,
            seed: SEED,
        })
        .unwrap();
    }

    /// The whole disk as the sync cuts it.
    fn layout(&self) -> Layout {
        layout_of(self.size)
    }

    /// Flips one bit of the scan file at `at` (negative: from its end).
    fn damage(&self, at: isize) {
        let mut bytes = std::fs::read(&self.out).unwrap();
        let i = if at < 0 {
            bytes.len() - at.unsigned_abs()
        } else {
            at as usize
        };
        bytes[i] ^= 1;
        std::fs::write(&self.out, &bytes).unwrap();
    }
}

fn layout_of(size: u64) -> Layout {
    Layout::new(Hasher::new(SEED), CS.into(), size)
}

#[test]
fn a_scan_stands_in_for_reading_the_disk_and_is_consumed() {
    let d = Disk::scanned();
    let layout = d.layout();
    let Taken::Used(p) = take(&d.out, &d.t, &layout).unwrap() else {
        panic!("the scan of an unchanged disk is not used");
    };
    assert!(!d.out.exists(), "the scan outlives the sync that took it");
    let mut buf = AlignedBuf::default();
    let from_scan = p.digests(&d.t, &layout, 0, 7, &mut buf).unwrap();
    let from_disk = d.t.digests(&layout, 0, 7, &mut buf).unwrap();
    assert_eq!(from_scan.read, 0, "the disk was read despite the scan");
    assert_eq!(from_scan.digests, from_disk.digests);
    assert_eq!(from_scan.leaves, from_disk.leaves);
    assert!(from_scan.leaves[1].is_empty() && !from_scan.leaves[6].is_empty());
    assert!(matches!(
        take(&d.out, &d.t, &layout).unwrap(),
        Taken::Missing
    ));
}

#[test]
fn a_sync_cut_shorter_reads_the_chunk_the_scan_cut_otherwise() {
    // The destination volume is larger than the source: the sync's last chunk is shorter than
    // the scan's chunk at the same index, whose digest cannot stand for it.
    let d = Disk::scanned();
    let layout = layout_of(5 * u64::from(CS) + 100);
    let Taken::Used(p) = take(&d.out, &d.t, &layout).unwrap() else {
        panic!("not used");
    };
    let mut buf = AlignedBuf::default();
    let from_scan = p.digests(&d.t, &layout, 0, 6, &mut buf).unwrap();
    assert_eq!(from_scan.read, 100, "only the short last chunk is read");
    assert_eq!(
        from_scan.digests,
        d.t.digests(&layout, 0, 6, &mut buf).unwrap().digests
    );
}

#[test]
fn a_scan_that_no_longer_holds_is_ignored_and_says_why() {
    let d = Disk::new();
    let layout = d.layout();
    let ignored = |why: &str| {
        match take(&d.out, &d.t, &layout).unwrap() {
            Taken::Ignored(w) => assert!(w.contains(why), "{w}"),
            other => panic!("{other:?} where the reason was to be {why:?}"),
        }
        assert!(!d.out.exists());
    };

    // Written since: a file's times move (past the file system's clock tick).
    d.scan();
    std::thread::sleep(Duration::from_millis(30));
    d.t.write_at(&[9; 10], 4096).unwrap();
    ignored("written since");

    // Another seed.
    d.scan();
    let other = Layout::new(Hasher::new(SEED + 1), CS.into(), d.size);
    match take(&d.out, &d.t, &other).unwrap() {
        Taken::Ignored(w) => assert!(w.contains("seed"), "{w}"),
        o => panic!("{o:?}"),
    }

    // A damaged digest: the first byte of chunk 5's, before the 7 flags and the checksum.
    d.scan();
    d.damage(-(16 + 7 + 2 * 16));
    ignored("checksum");

    // Not a scan at all.
    std::fs::write(&d.out, b"hello").unwrap();
    ignored("header");
}

#[test]
fn a_change_that_keeps_the_identity_is_caught_by_the_sample() {
    // A block device's node does not show writes: the sample read again is what catches them.
    let d = Disk::scanned();
    let layout = d.layout();
    d.t.write_at(&[9; 10], 0).unwrap();
    let mut f = File::open(&d.out).unwrap();
    let mut head = vec![0u8; HEADER_LEN];
    f.read_exact(&mut head).unwrap();
    let h = Header::decode(&head).unwrap();
    let p = load(f, &h, &head, &layout.hasher).unwrap().unwrap();
    assert_eq!(p.sample_differs(&d.t, &layout).unwrap(), Some(0));
}

#[test]
fn leaves_that_do_not_make_their_digest_send_the_chunk_to_the_disk() {
    let d = Disk::scanned();
    // The first leaf of chunk 2, the second chunk with data, is damaged (the checksum covers
    // the digests, not the leaves).
    d.damage((HEADER_LEN + (CS as usize / LEAF) * DIGEST_LEN) as isize);
    let layout = d.layout();
    let Taken::Used(p) = take(&d.out, &d.t, &layout).unwrap() else {
        panic!("not used");
    };
    let mut buf = AlignedBuf::default();
    let got = p.digests(&d.t, &layout, 0, 7, &mut buf).unwrap();
    assert_eq!(
        got.read,
        u64::from(CS),
        "chunk 2 alone is read from the disk"
    );
    assert_eq!(
        got.digests,
        d.t.digests(&layout, 0, 7, &mut buf).unwrap().digests
    );
}
