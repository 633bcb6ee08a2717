use std::path::Path;
use std::time::Duration;

use super::*;

const CS: u32 = 64 << 10;
const SEED: u64 = 0x5eed;

/// A disk of 6 chunks and a short seventh: data in chunks 0, 2, 3 and 6, zeros elsewhere.
fn disk(path: &Path) -> Vec<u8> {
    let cs = CS as usize;
    let mut data = vec![0u8; 6 * cs + 5000];
    for (i, b) in data.iter_mut().enumerate() {
        if [0, 2, 3, 6].contains(&(i / cs)) {
            *b = (i % 241 + 1) as u8;
        }
    }
    std::fs::write(path, &data).unwrap();
    data
}

fn scan(device: &Path, out: &Path) {
    run(&ScanOptions {
        device: device.into(),
        out: out.into(),
        chunk_size: CS,
        seed: SEED,
    })
    .unwrap();
}

fn layout_of(size: u64) -> Layout {
    Layout::new(Hasher::new(SEED), CS.into(), size)
}

#[test]
fn a_scan_stands_in_for_reading_the_disk_and_is_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
    let data = disk(&dev);
    scan(&dev, &out);
    let t = Target::open(&dev, data.len() as u64).unwrap();
    let layout = layout_of(data.len() as u64);
    let Taken::Used(p) = take(&out, &t, &layout).unwrap() else {
        panic!("the scan of an unchanged disk is not used");
    };
    assert!(!out.exists(), "the scan outlives the sync that took it");
    let mut buf = AlignedBuf::default();
    let from_scan = p.digests(&t, &layout, 0, 7, &mut buf).unwrap();
    let from_disk = t.digests(&layout, 0, 7, &mut buf).unwrap();
    assert_eq!(from_scan.read, 0, "the disk was read despite the scan");
    assert_eq!(from_scan.digests, from_disk.digests);
    assert_eq!(from_scan.leaves, from_disk.leaves);
    assert!(from_scan.leaves[1].is_empty() && !from_scan.leaves[6].is_empty());
    assert!(matches!(take(&out, &t, &layout).unwrap(), Taken::Missing));
}

#[test]
fn a_sync_cut_shorter_reads_the_chunk_the_scan_cut_otherwise() {
    // The destination volume is larger than the source: the sync's last chunk is shorter than
    // the scan's chunk at the same index, whose digest cannot stand for it.
    let dir = tempfile::tempdir().unwrap();
    let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
    let data = disk(&dev);
    scan(&dev, &out);
    let t = Target::open(&dev, data.len() as u64).unwrap();
    let short = 5 * u64::from(CS) + 100;
    let layout = layout_of(short);
    let Taken::Used(p) = take(&out, &t, &layout).unwrap() else {
        panic!("not used");
    };
    let mut buf = AlignedBuf::default();
    let from_scan = p.digests(&t, &layout, 0, 6, &mut buf).unwrap();
    assert_eq!(from_scan.read, 100, "only the short last chunk is read");
    assert_eq!(
        from_scan.digests,
        t.digests(&layout, 0, 6, &mut buf).unwrap().digests
    );
}

#[test]
fn a_scan_that_no_longer_holds_is_ignored_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
    let data = disk(&dev);
    let t = Target::open(&dev, data.len() as u64).unwrap();
    let layout = layout_of(data.len() as u64);
    let ignored = |why: &str| {
        match take(&out, &t, &layout).unwrap() {
            Taken::Ignored(w) => assert!(w.contains(why), "{w}"),
            other => panic!("{other:?} where the reason was to be {why:?}"),
        }
        assert!(!out.exists());
    };

    // Written since: a file's times move (past the file system's clock tick).
    scan(&dev, &out);
    std::thread::sleep(Duration::from_millis(30));
    t.write_at(&[9; 10], 4096).unwrap();
    ignored("written since");

    // Another seed.
    scan(&dev, &out);
    let other = Layout::new(Hasher::new(SEED + 1), CS.into(), data.len() as u64);
    match take(&out, &t, &other).unwrap() {
        Taken::Ignored(w) => assert!(w.contains("seed"), "{w}"),
        o => panic!("{o:?}"),
    }

    // A damaged digest.
    scan(&dev, &out);
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 16 - 7 - 2 * 16] ^= 1;
    std::fs::write(&out, &bytes).unwrap();
    ignored("checksum");

    // Not a scan at all.
    std::fs::write(&out, b"hello").unwrap();
    ignored("header");
}

#[test]
fn a_change_that_keeps_the_identity_is_caught_by_the_sample() {
    // A block device's node does not show writes: the sample read again is what catches them.
    let dir = tempfile::tempdir().unwrap();
    let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
    let data = disk(&dev);
    scan(&dev, &out);
    let t = Target::open(&dev, data.len() as u64).unwrap();
    let layout = layout_of(data.len() as u64);
    t.write_at(&[9; 10], 0).unwrap();
    let mut f = File::open(&out).unwrap();
    let mut head = vec![0u8; HEADER_LEN];
    f.read_exact(&mut head).unwrap();
    let h = Header::decode(&head).unwrap();
    let p = load(f, &h, &head, &layout.hasher).unwrap().unwrap();
    assert_eq!(p.sample_differs(&t, &layout).unwrap(), Some(0));
}

#[test]
fn leaves_that_do_not_make_their_digest_send_the_chunk_to_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, out) = (dir.path().join("d.img"), dir.path().join("d.scan"));
    let data = disk(&dev);
    scan(&dev, &out);
    // The first leaf of chunk 2, the second chunk with data, is damaged (the checksum covers
    // the digests, not the leaves).
    let mut bytes = std::fs::read(&out).unwrap();
    let at = HEADER_LEN + (CS as usize / LEAF) * DIGEST_LEN;
    bytes[at] ^= 1;
    std::fs::write(&out, &bytes).unwrap();
    let t = Target::open(&dev, data.len() as u64).unwrap();
    let layout = layout_of(data.len() as u64);
    let Taken::Used(p) = take(&out, &t, &layout).unwrap() else {
        panic!("not used");
    };
    let mut buf = AlignedBuf::default();
    let got = p.digests(&t, &layout, 0, 7, &mut buf).unwrap();
    assert_eq!(
        got.read,
        u64::from(CS),
        "chunk 2 alone is read from the disk"
    );
    assert_eq!(
        got.digests,
        t.digests(&layout, 0, 7, &mut buf).unwrap().digests
    );
}
