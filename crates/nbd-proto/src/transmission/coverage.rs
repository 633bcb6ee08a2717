//! Which parts of a read the reply has filled.

use std::ops::Range;

use crate::error::{Error, Result};

/// The parts of a read that chunks have filled, as sorted, disjoint ranges. A chunk that overlaps
/// another is a protocol error: it would leave the bytes of whichever came last, and a count of
/// covered bytes would then hide a gap elsewhere.
#[derive(Debug, Default)]
pub(super) struct Coverage(Vec<Range<u64>>);

impl Coverage {
    /// Adds `r`, merging it with its neighbours; fails if it overlaps what is already covered.
    pub(super) fn insert(&mut self, r: Range<u64>) -> Result<()> {
        if r.is_empty() {
            return Ok(());
        }
        let i = self.0.partition_point(|x| x.end <= r.start);
        if let Some(next) = self.0.get(i) {
            if next.start < r.end {
                return Err(Error::Protocol(format!(
                    "reply chunk {r:?} overlaps chunk {next:?} of the same read"
                )));
            }
        }
        match (i.checked_sub(1).and_then(|p| self.0.get_mut(p)), r) {
            (Some(prev), r) if prev.end == r.start => {
                prev.end = r.end;
                if let Some(next) = self.0.get(i).cloned().filter(|n| n.start == r.end) {
                    self.0[i - 1].end = next.end;
                    self.0.remove(i);
                }
            }
            (_, r) => {
                if let Some(next) = self.0.get_mut(i).filter(|n| n.start == r.end) {
                    next.start = r.start;
                } else {
                    self.0.insert(i, r);
                }
            }
        }
        Ok(())
    }

    /// Whether exactly `r` is covered, without a gap.
    pub(super) fn is_exactly(&self, r: &Range<u64>) -> bool {
        self.0.len() == 1 && self.0[0] == *r || (r.is_empty() && self.0.is_empty())
    }

    /// The covered ranges, for error messages.
    pub(super) fn ranges(&self) -> &[Range<u64>] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_merges_and_refuses_overlaps() {
        let mut c = Coverage::default();
        c.insert(100..200).unwrap();
        c.insert(0..50).unwrap();
        c.insert(300..400).unwrap();
        c.insert(50..100).unwrap();
        assert_eq!(c.0, vec![0..200, 300..400]);
        assert!(!c.is_exactly(&(0..400)), "a gap is not coverage");
        assert!(c.insert(150..250).is_err());
        assert!(c.insert(250..301).is_err());
        assert!(c.insert(0..1).is_err(), "a repeated chunk overlaps");
        c.insert(200..300).unwrap();
        assert!(c.is_exactly(&(0..400)));
    }
}
