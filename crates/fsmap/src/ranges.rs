//! Byte-range bookkeeping: merging, inward alignment, totals.

use std::ops::Range;

/// Sorts `v` and joins overlapping or touching ranges; drops empty ones.
pub(crate) fn merge(v: &mut Vec<Range<u64>>) {
    v.retain(|r| r.start < r.end);
    v.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
    for r in v.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    *v = out;
}

/// The largest `align`-aligned range inside `r`, if it is not empty. Shrinking (never growing) is
/// what keeps a free range inside the free blocks it came from.
pub(crate) fn align_in(r: &Range<u64>, align: u64) -> Option<Range<u64>> {
    let start = r.start.checked_add(align - 1)? / align * align;
    let end = r.end / align * align;
    (start < end).then_some(start..end)
}

/// Sum of the lengths.
pub(crate) fn total(v: &[Range<u64>]) -> u64 {
    v.iter().map(|r| r.end - r.start).sum()
}

/// Turns a run-list of free units (start, count) into byte ranges, merged.
pub(crate) fn from_units(runs: impl IntoIterator<Item = (u64, u64)>, unit: u64) -> Vec<Range<u64>> {
    let mut v: Vec<Range<u64>> = runs
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(s, n)| s * unit..(s + n) * unit)
        .collect();
    merge(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_and_sorts() {
        let mut v = vec![10..20, 0..5, 5..7, 15..30, 40..40];
        merge(&mut v);
        assert_eq!(v, vec![0..7, 10..30]);
    }

    #[test]
    fn align_shrinks_inward() {
        assert_eq!(align_in(&(1..8193), 4096), Some(4096..8192));
        assert_eq!(align_in(&(4096..8192), 4096), Some(4096..8192));
        assert_eq!(align_in(&(1..4097), 4096), None);
        assert_eq!(align_in(&(u64::MAX - 3..u64::MAX), 4096), None);
    }
}
