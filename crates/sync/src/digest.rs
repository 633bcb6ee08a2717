//! Chunk digests: what both agents compute over their own disk, and what a manifest is made of.

use std::fmt;

/// Bytes in a [`Digest`].
pub const DIGEST_LEN: usize = 16;

/// The digest algorithm, recorded in manifests and agreed in the handshake so a future change
/// cannot silently compare unlike digests.
pub const ALGORITHM: &str = "blake3-128";
/// Its number on the wire and in manifest files.
pub const ALGORITHM_ID: u16 = 1;

/// The digest of one chunk: BLAKE3, truncated to 128 bits.
///
/// A cryptographic hash, so that nobody who controls a disk's content (a guest) can make two
/// different chunks look equal and keep stale bytes in a destination; 128 bits keep a 2 TiB
/// manifest at 32 MiB with 1 MiB chunks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let h = blake3::hash(bytes);
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(&h.as_bytes()[..DIGEST_LEN]);
        Digest(d)
    }

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

/// The digest of `len` zero bytes, the digest of every chunk that reads as zeros. Computed by
/// hashing through a small zero buffer, so it costs nothing to ask for any length.
pub fn zero_digest(len: usize) -> Digest {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut h = blake3::Hasher::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS.len());
        h.update(&ZEROS[..n]);
        left -= n;
    }
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&h.finalize().as_bytes()[..DIGEST_LEN]);
    Digest(d)
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
    /// For a disk of `size` bytes cut into `chunk_size` chunks.
    pub fn new(chunk_size: u64, size: u64) -> Zeros {
        let tail = size % chunk_size;
        let full = zero_digest(chunk_size as usize);
        Zeros {
            full,
            last: if tail == 0 {
                full
            } else {
                zero_digest(tail as usize)
            },
            chunk_size,
            size,
        }
    }

    /// The zero digest of chunk `index`.
    pub fn of(&self, index: u64) -> Digest {
        if (index + 1).saturating_mul(self.chunk_size) > self.size {
            self.last
        } else {
            self.full
        }
    }
}

/// Cheap sums of the blocks of a chunk, to find which parts of a chunk differ: the first 8 bytes
/// of each block's BLAKE3. They only decide what to send; the chunk digests still prove the result.
pub fn block_sums(chunk: &[u8], block: usize) -> Vec<u64> {
    chunk
        .chunks(block.max(1))
        .map(|b| {
            let h = blake3::hash(b);
            let mut s = [0u8; 8];
            s.copy_from_slice(&h.as_bytes()[..8]);
            u64::from_le_bytes(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_digest_matches_hashing_zeros() {
        for len in [0usize, 1, 4096, 65536, 65537, 1 << 20] {
            assert_eq!(zero_digest(len), Digest::of(&vec![0u8; len]), "{len}");
        }
        let z = Zeros::new(1 << 20, (3 << 20) + 512);
        assert_eq!(z.of(0), zero_digest(1 << 20));
        assert_eq!(z.of(2), zero_digest(1 << 20));
        assert_eq!(z.of(3), zero_digest(512));
        assert_ne!(Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(Digest::of(b"abc").hex().len(), 32);
    }

    #[test]
    fn block_sums_find_the_changed_block() {
        let mut a = vec![7u8; 4 * 4096];
        let s1 = block_sums(&a, 4096);
        a[2 * 4096 + 5] = 8;
        let s2 = block_sums(&a, 4096);
        let differ: Vec<usize> = (0..4).filter(|&i| s1[i] != s2[i]).collect();
        assert_eq!(differ, vec![2]);
        assert_eq!(block_sums(&a[..5000], 4096).len(), 2);
    }
}
