//! What a sync counts, and the JSON lines it prints about it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Counters every thread of a sync adds to.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes of the disk settled (found equal, zeroed or written).
    pub bytes_done: AtomicU64,
    /// Bytes the destination read from its own disk (digests, block sums, read-back).
    pub bytes_read: AtomicU64,
    /// Bytes of data written to the destination.
    pub bytes_written: AtomicU64,
    /// Bytes those data pieces took on the wire (compressed or raw).
    pub data_wire: AtomicU64,
    /// Bytes made zero by the zeroing policy.
    pub bytes_zeroed: AtomicU64,
    /// Chunks found equal.
    pub chunks_equal: AtomicU64,
    /// Chunks zeroed.
    pub chunks_zeroed: AtomicU64,
    /// Chunks written in full.
    pub chunks_written: AtomicU64,
    /// Chunks written in part (only their differing blocks).
    pub chunks_patched: AtomicU64,
    /// Bytes read back to prove what was written.
    pub bytes_verified: AtomicU64,
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Seconds with millisecond precision.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Stats {
    /// A `progress` (or, with `last`, `done`) line.
    pub fn line(&self, total: u64, wire: u64, started: Instant, last: bool) -> Value {
        let done = get(&self.bytes_done);
        let elapsed = started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-6);
        let data = get(&self.bytes_written);
        let data_wire = get(&self.data_wire);
        let mut v = json!({
            "event": if last { "done" } else { "progress" },
            "percent": if total == 0 { 100.0 } else { round1(done as f64 * 100.0 / total as f64) },
            "bytes_done": done,
            "bytes_total": total,
            "bytes_read": get(&self.bytes_read),
            "bytes_written": data,
            "bytes_zeroed": get(&self.bytes_zeroed),
            "bytes_on_wire": wire,
            "compression_ratio": if data_wire == 0 { 1.0 } else { (data as f64 / data_wire as f64 * 100.0).round() / 100.0 },
            "chunks_equal": get(&self.chunks_equal),
            "chunks_zeroed": get(&self.chunks_zeroed),
            "chunks_written": get(&self.chunks_written),
            "chunks_patched": get(&self.chunks_patched),
            "bytes_verified": get(&self.bytes_verified),
            "mib_per_s": round1(rate / 1048576.0),
            "elapsed_s": secs(started.elapsed()),
        });
        if !last {
            v["eta_s"] = json!(if rate > 0.0 {
                ((total.saturating_sub(done)) as f64 / rate).round()
            } else {
                0.0
            });
        }
        v
    }
}

/// Prints one JSON object per line on stdout.
pub fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the sync; the exit code still tells the outcome.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
