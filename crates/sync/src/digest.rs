//! Chunk digests: what both agents compute over their own disk, and what a manifest is made of.

use std::fmt;

use xxhash_rust::const_xxh3::const_custom_default_secret;
use xxhash_rust::xxh3::{xxh3_128_with_secret, xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};

/// Bytes in a [`Digest`].
pub const DIGEST_LEN: usize = 16;

/// The digest algorithm, recorded in manifests and agreed in the handshake so a future change
/// cannot silently compare unlike digests.
pub const ALGORITHM: &str = "xxh3-128/4k";
/// Its number on the wire and in manifest files (2 was XXH3-128 over whole chunks).
pub const ALGORITHM_ID: u16 = 3;
/// Bytes of a leaf: a chunk's digest is the digest of its leaves' digests.
///
/// A sync that patches a few blocks of a chunk then proves the result by reading back only the
/// leaves it wrote (the others were digested when the destination was scanned), and the block
/// sums that find what to patch are the leaves' digests it already has: with whole-chunk digests,
/// a warm cutover, where a few rewritten blocks touch every chunk, read and digested each
/// destination chunk three times and each source chunk twice.
pub const LEAF: usize = 4096;

/// The digest of one chunk: 128 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// Lower-case hex.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// The digests stored one after another in `bytes` (manifests, scans); a shorter tail is left out.
pub fn digests_from(bytes: &[u8]) -> Vec<Digest> {
    bytes
        .chunks_exact(DIGEST_LEN)
        .map(|c| {
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(c);
            Digest(d)
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How chunks are digested: XXH3-128 with a seed, over the digests of the chunk's [`LEAF`]s.
///
/// Chosen by measurement (README, benchmarks): on the reference machine XXH3-128 digests 7.7 GB/s
/// per core and BLAKE3 1.4 GB/s; a sync digests every byte on both sides and reads back what it
/// wrote, on conversion hosts whose cores the link's encryption already keeps busy, so BLAKE3 cost
/// more time than the link on a fast network. XXH3 is not a cryptographic hash: someone who knows
/// what a destination chunk holds could craft a source chunk with the same digest, so that the
/// sync keeps the destination's bytes. The only party that controls a disk's content is its guest,
/// and what a destination holds is its own earlier data, zeros, or whatever the storage backend
/// left there; the seed, drawn at random per transfer by the migrator and never shown to the guest,
/// keeps it from crafting such a chunk against any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hasher {
    /// The seed.
    pub seed: u64,
    /// XXH3's secret derived from the seed, as XXH3 derives it for every seeded digest of more
    /// than 240 bytes: derived once here, a leaf costs 15% less to digest.
    secret: [u8; 192],
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::new(0)
    }
}

/// Inputs up to this many bytes are digested with the seed itself (XXH3 uses no derived secret
/// for them).
const SHORT: usize = 240;

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl Hasher {
    /// A hasher with `seed`.
    pub fn new(seed: u64) -> Hasher {
        Hasher {
            seed,
            secret: const_custom_default_secret(seed),
        }
    }

    /// The digest of the chunk `bytes`.
    pub fn digest(&self, bytes: &[u8]) -> Digest {
        self.fold(bytes.chunks(LEAF).map(|l| self.leaf(l)))
    }

    /// Replaces `out` with the digests of the leaves of `bytes` (the last one may be shorter).
    pub fn leaves(&self, bytes: &[u8], out: &mut Vec<Digest>) {
        out.clear();
        out.extend(bytes.chunks(LEAF).map(|l| self.leaf(l)));
    }

    /// The digest of one leaf.
    pub fn leaf(&self, bytes: &[u8]) -> Digest {
        let h = if bytes.len() <= SHORT {
            xxh3_128_with_seed(bytes, self.seed)
        } else {
            xxh3_128_with_secret(bytes, &self.secret)
        };
        Digest(h.to_be_bytes())
    }

    /// The digest of a chunk whose leaves have the digests `leaves`.
    pub fn combine(&self, leaves: &[Digest]) -> Digest {
        self.fold(leaves.iter().copied())
    }

    /// The digest of a chunk from its leaves' digests, in order: the one definition that
    /// [`Hasher::digest`], [`Hasher::combine`] and [`Hasher::zero_digest`] share.
    fn fold(&self, leaves: impl Iterator<Item = Digest>) -> Digest {
        let mut h = Xxh3::with_seed(self.seed);
        for l in leaves {
            h.update(&l.0);
        }
        Digest(h.digest128().to_be_bytes())
    }

    /// The digest of `len` zero bytes, the digest of every chunk that reads as zeros: two leaf
    /// digests, so it costs nothing to ask for any length.
    pub fn zero_digest(&self, len: usize) -> Digest {
        let full = std::iter::repeat_n(self.leaf(&ZEROS[..LEAF]), len / LEAF);
        let tail = (!len.is_multiple_of(LEAF)).then(|| self.leaf(&ZEROS[..len % LEAF]));
        self.fold(full.chain(tail))
    }

    /// The zero digests of a disk of `size` bytes cut into `chunk_size` chunks.
    pub fn zeros(&self, chunk_size: u64, size: u64) -> Zeros {
        let tail = size % chunk_size;
        let full = self.zero_digest(chunk_size as usize);
        Zeros {
            full,
            last: if tail == 0 {
                full
            } else {
                self.zero_digest(tail as usize)
            },
            chunk_size,
            size,
        }
    }

    /// Sums of the blocks of a chunk, to find which parts of a chunk differ. They only decide
    /// what to send; the chunk digests still prove the result. Blocks of a leaf's size are
    /// summed as [`leaf_sums`] does, so a side that holds the leaves need not read the chunk.
    pub fn block_sums(&self, chunk: &[u8], block: usize) -> Vec<u64> {
        if block == LEAF {
            return chunk.chunks(LEAF).map(|l| sum_of(&self.leaf(l))).collect();
        }
        chunk
            .chunks(block.max(1))
            .map(|b| xxh3_64_with_seed(b, self.seed))
            .collect()
    }
}

/// The block sums of a chunk cut in blocks of `block` bytes, from its leaves' digests, where
/// they give them: with blocks of a [`LEAF`], and leaves known (a chunk of data). `None` means the
/// chunk's bytes must be summed ([`Hasher::block_sums`]).
pub fn leaf_sums(leaves: &[Digest], block: usize) -> Option<Vec<u64>> {
    (block == LEAF && !leaves.is_empty()).then(|| leaves.iter().map(sum_of).collect())
}

fn sum_of(d: &Digest) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_be_bytes(b)
}

/// The digests of the chunk sizes of one disk: full chunks and the short last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zeros {
    full: Digest,
    last: Digest,
    chunk_size: u64,
    size: u64,
}

impl Zeros {
    /// The zero digest of chunk `index`.
    pub fn of(&self, index: u64) -> Digest {
        if (index + 1).saturating_mul(self.chunk_size) > self.size {
            self.last
        } else {
            self.full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_digest_matches_hashing_zeros() {
        let h = Hasher::new(42);
        for len in [0usize, 1, 4096, 65536, 65537, 1 << 20] {
            assert_eq!(h.zero_digest(len), h.digest(&vec![0u8; len]), "{len}");
        }
        let z = h.zeros(1 << 20, (3 << 20) + 512);
        assert_eq!(z.of(0), h.zero_digest(1 << 20));
        assert_eq!(z.of(2), h.zero_digest(1 << 20));
        assert_eq!(z.of(3), h.zero_digest(512));
        assert_ne!(h.digest(b"a"), h.digest(b"b"));
        assert_eq!(h.digest(b"abc").hex().len(), 32);
    }

    #[test]
    fn the_seed_changes_every_digest() {
        let (a, b) = (Hasher::new(1), Hasher::new(2));
        assert_ne!(a.digest(b"same"), b.digest(b"same"));
        assert_ne!(a.zero_digest(4096), b.zero_digest(4096));
        assert_ne!(a.block_sums(b"same", 2), b.block_sums(b"same", 2));
    }

    #[test]
    fn a_leaf_digest_is_seeded_xxh3_128() {
        let h = Hasher::new(0xfeed_beef);
        let bytes: Vec<u8> = (0..LEAF).map(|i| (i * 7 % 256) as u8).collect();
        for n in [0, 1, 240, 241, 1000, LEAF] {
            let want = xxh3_128_with_seed(&bytes[..n], h.seed).to_be_bytes();
            assert_eq!(h.leaf(&bytes[..n]).0, want, "{n} bytes");
        }
    }

    #[test]
    fn a_chunk_digest_is_the_digest_of_its_leaves() {
        let h = Hasher::new(3);
        let mut chunk: Vec<u8> = (0..3 * LEAF + 100).map(|i| (i % 251) as u8).collect();
        let mut leaves = Vec::new();
        h.leaves(&chunk, &mut leaves);
        assert_eq!(leaves.len(), 4);
        assert_eq!(h.digest(&chunk), h.combine(&leaves));
        assert_eq!(leaf_sums(&leaves, LEAF), Some(h.block_sums(&chunk, LEAF)));
        assert_eq!(
            leaf_sums(&leaves, 512),
            None,
            "other blocks are summed from the bytes"
        );
        assert_eq!(leaf_sums(&[], LEAF), None, "no leaves: a zero chunk");
        // Changing one leaf and digesting only it again gives the digest of the whole.
        chunk[LEAF + 7] ^= 1;
        leaves[1] = h.leaf(&chunk[LEAF..2 * LEAF]);
        assert_eq!(h.digest(&chunk), h.combine(&leaves));
        assert_ne!(h.digest(&chunk), h.digest(&chunk[..3 * LEAF]));
    }

    #[test]
    fn block_sums_find_the_changed_block() {
        let h = Hasher::default();
        let mut a = vec![7u8; 4 * 4096];
        let s1 = h.block_sums(&a, 4096);
        a[2 * 4096 + 5] = 8;
        let s2 = h.block_sums(&a, 4096);
        let differ: Vec<usize> = (0..4).filter(|&i| s1[i] != s2[i]).collect();
        assert_eq!(differ, vec![2]);
        assert_eq!(h.block_sums(&a[..5000], 4096).len(), 2);
    }
}
