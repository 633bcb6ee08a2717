//! Chunk digests: what both agents compute over their own disk, and what a manifest is made of.

use std::fmt;

use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};

/// Bytes in a [`Digest`].
pub const DIGEST_LEN: usize = 16;

/// The digest algorithm, recorded in manifests and agreed in the handshake so a future change
/// cannot silently compare unlike digests.
pub const ALGORITHM: &str = "xxh3-128";
/// Its number on the wire and in manifest files.
pub const ALGORITHM_ID: u16 = 2;

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

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How chunks are digested: XXH3-128 with a seed.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hasher {
    /// The seed.
    pub seed: u64,
}

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl Hasher {
    /// A hasher with `seed`.
    pub fn new(seed: u64) -> Hasher {
        Hasher { seed }
    }

    /// The digest of `bytes`.
    pub fn digest(&self, bytes: &[u8]) -> Digest {
        Digest(xxh3_128_with_seed(bytes, self.seed).to_be_bytes())
    }

    /// The digest of `len` zero bytes, the digest of every chunk that reads as zeros. Computed
    /// through a small zero buffer, so it costs nothing to ask for any length.
    pub fn zero_digest(&self, len: usize) -> Digest {
        let mut h = Xxh3::with_seed(self.seed);
        let mut left = len;
        while left > 0 {
            let n = left.min(ZEROS.len());
            h.update(&ZEROS[..n]);
            left -= n;
        }
        Digest(h.digest128().to_be_bytes())
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
    /// what to send; the chunk digests still prove the result.
    pub fn block_sums(&self, chunk: &[u8], block: usize) -> Vec<u64> {
        chunk
            .chunks(block.max(1))
            .map(|b| xxh3_64_with_seed(b, self.seed))
            .collect()
    }
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
