//! The record of finished ranges that lets an interrupted copy resume.

use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A set of byte ranges, kept sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<Range<u64>>);

impl RangeSet {
    /// Adds `r`, merging it with neighbours it touches.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let i = self.0.partition_point(|x| x.end < r.start);
        let mut j = i;
        let mut merged = r;
        while j < self.0.len() && self.0[j].start <= merged.end {
            merged.start = merged.start.min(self.0[j].start);
            merged.end = merged.end.max(self.0[j].end);
            j += 1;
        }
        self.0.splice(i..j, std::iter::once(merged));
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.0
    }

    /// How many bytes the set covers.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.start).sum()
    }

    /// The parts of `0..size` not in the set.
    pub fn missing(&self, size: u64) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut at = 0;
        for r in &self.0 {
            if r.start > at {
                out.push(at..r.start.min(size));
            }
            at = at.max(r.end);
        }
        if at < size {
            out.push(at..size);
        }
        out.retain(|r| r.start < r.end);
        out
    }
}

/// A checkpoint file: what was copied from which source.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Where it lives.
    pub path: PathBuf,
    /// The source's size, which a resumed copy must match.
    pub source_size: u64,
    /// Whether the target was known to be zero when the first run started; a resumed run
    /// inherits it, since its unfinished ranges still hold only zeros or source bytes.
    pub target_was_zero: bool,
    /// The finished ranges.
    pub done: RangeSet,
}

impl Checkpoint {
    /// Loads `path`, or `None` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading checkpoint {}", path.display()))
            }
        };
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing checkpoint {}", path.display()))?;
        let bad = |what: &str| anyhow::anyhow!("checkpoint {}: {what}", path.display());
        if v["version"] != 1 {
            return Err(bad("unknown version (expected 1)"));
        }
        let source_size = v["source_size"]
            .as_u64()
            .ok_or_else(|| bad("missing source_size"))?;
        let target_was_zero = v["target_was_zero"]
            .as_bool()
            .ok_or_else(|| bad("missing target_was_zero"))?;
        let mut done = RangeSet::default();
        for r in v["done"].as_array().ok_or_else(|| bad("missing done"))? {
            let (Some(a), Some(b)) = (r[0].as_u64(), r[1].as_u64()) else {
                return Err(bad("bad range in done"));
            };
            if a > b || b > source_size {
                bail!(
                    "checkpoint {}: range {a}..{b} outside the source's {source_size} bytes",
                    path.display()
                );
            }
            done.insert(a..b);
        }
        Ok(Some(Checkpoint {
            path: path.to_path_buf(),
            source_size,
            target_was_zero,
            done,
        }))
    }

    /// Writes the checkpoint atomically: a crash leaves the old or the new file, never a mix.
    pub fn save(&self) -> Result<()> {
        let v = json!({
            "version": 1,
            "source_size": self.source_size,
            "target_was_zero": self.target_was_zero,
            "done_bytes": self.done.total(),
            "done": self.done.ranges().iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
        });
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(v.to_string().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_complements() {
        let mut s = RangeSet::default();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        s.insert(5..5);
        assert_eq!(s.ranges(), &[10..25, 30..40]);
        s.insert(0..12);
        s.insert(24..31);
        assert_eq!(s.ranges().to_vec(), vec![0..40]);
        s.insert(50..60);
        assert_eq!(s.total(), 50);
        assert_eq!(s.missing(70), vec![40..50, 60..70]);
        assert_eq!(RangeSet::default().missing(5), vec![0..5]);
    }

    #[test]
    fn checkpoint_round_trips() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("ck.json");
        assert!(Checkpoint::load(&path).unwrap().is_none());
        let mut done = RangeSet::default();
        done.insert(0..4096);
        done.insert(8192..16384);
        let c = Checkpoint {
            path: path.clone(),
            source_size: 16384,
            target_was_zero: true,
            done,
        };
        c.save().unwrap();
        let back = Checkpoint::load(&path).unwrap().unwrap();
        assert_eq!(back.done, c.done);
        assert!(back.target_was_zero);
        fs::write(
            &path,
            r#"{"version":1,"source_size":10,"target_was_zero":false,"done":[[0,20]]}"#,
        )
        .unwrap();
        assert!(Checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("outside"));
    }
}
