//! Finding runs of zeros in memory, fast enough to run on every byte served.

use std::ops::Range;

/// The granularity of zero detection: runs of zeros are found in aligned blocks of this size.
pub const BLOCK: u64 = 4096;

/// Whether every byte is zero.
///
/// Every byte served passes through here, and the release profile optimises for size, under
/// which a plain loop runs at a fraction of memory speed: so the SIMD is spelled out.
pub fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        if !chunk_is_zero(c) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(target_arch = "x86_64")]
fn chunk_is_zero(c: &[u8]) -> bool {
    use std::arch::x86_64::*;
    assert_eq!(c.len(), 64);
    // SAFETY: SSE2 is part of the x86_64 baseline; the four unaligned 16-byte loads stay inside
    // the 64 bytes of `c` (checked above).
    unsafe {
        let p = c.as_ptr() as *const __m128i;
        let a = _mm_or_si128(_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)));
        let b = _mm_or_si128(_mm_loadu_si128(p.add(2)), _mm_loadu_si128(p.add(3)));
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_or_si128(a, b), _mm_setzero_si128())) == 0xffff
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn chunk_is_zero(c: &[u8]) -> bool {
    c.chunks_exact(8).fold(0u64, |a, w| {
        a | u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
    }) == 0
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
        assert_eq!(
            zero_runs(0, &b),
            vec![0..4096, 2 * 4096..3 * 4096, 4 * 4096..5 * 4096]
        );
        // Unaligned start: the first partial block is bytes 0..96 of buf.
        assert_eq!(zero_runs(4000, &b[..200]), vec![0..200]);
        assert!(zero_runs(0, &[]).is_empty());
        assert!(is_zero(&[0; 1000]) && !is_zero(&[0, 0, 0, 1]));
        for at in [0, 63, 64, 130, 9_999] {
            let mut big = vec![0u8; 10_000];
            big[at] = 1;
            assert!(!is_zero(&big), "{at}");
        }
    }
}
