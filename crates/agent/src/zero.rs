//! Finding runs of zeros in memory, fast enough to run on every byte served.

use std::ops::Range;

/// The granularity of zero detection: runs of zeros are found in aligned blocks of this size.
pub const BLOCK: u64 = 4096;

/// Whether every byte is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    // OR-folding fixed chunks lets the compiler vectorise, while still stopping at the first
    // chunk with data (the common case for data blocks).
    let mut chunks = buf.chunks_exact(256);
    for c in &mut chunks {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// The runs of all-zero blocks in `buf`, which holds the bytes from `offset` on. Blocks are
/// aligned to absolute offsets, so the same bytes give the same runs in any read; a partial
/// block at either end counts when it is zero.
pub fn zero_runs(offset: u64, buf: &[u8]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let abs = offset + at as u64;
        let n = ((BLOCK - abs % BLOCK) as usize).min(buf.len() - at);
        if is_zero(&buf[at..at + n]) {
            match runs.last_mut() {
                Some(r) if r.end == at => r.end = at + n,
                _ => runs.push(at..at + n),
            }
        }
        at += n;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_aligned_runs() {
        let mut b = vec![0u8; 5 * 4096];
        b[4096 + 7] = 1;
        b[3 * 4096] = 1;
        assert_eq!(zero_runs(0, &b), vec![0..4096, 2 * 4096..3 * 4096, 4 * 4096..5 * 4096]);
        // Unaligned start: the first partial block is bytes 0..96 of buf.
        assert_eq!(zero_runs(4000, &b[..200]), vec![0..200]);
        assert!(zero_runs(0, &[]).is_empty());
        assert!(is_zero(&[0; 1000]) && !is_zero(&[0, 0, 0, 1]));
        let mut big = vec![0u8; 10_000];
        big[9_999] = 1;
        assert!(!is_zero(&big));
    }
}
