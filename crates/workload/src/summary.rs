//! The summary of an import run: per workload, how it ended, on which pair, how long it took, how
//! many bytes its disks hold and sent, and its downtime; written as JSON for programs
//! (`{{ os_migrate_data_dir }}/import_summary.json`, and `summaries/import-<run id>.json` kept per run)
//! and returned as lines for people.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::file::write_atomic;
use crate::queue::{load, ItemStatus, QueueError};
use crate::state::{now, Paths, State};

/// One workload's line of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Server name.
    pub name: String,
    /// Source server id.
    pub id: String,
    /// The pair it ran on.
    pub pair: Option<String>,
    /// How it ended (`pending` when the run stopped before it started).
    pub status: ItemStatus,
    /// The step it failed in.
    pub step: Option<String>,
    /// Why it failed.
    pub message: Option<String>,
    /// Seconds from its claim to its end.
    pub duration_s: Option<f64>,
    /// When it was claimed and ended, seconds since the epoch.
    pub started_at: Option<f64>,
    /// When it ended.
    pub ended_at: Option<f64>,
    /// Bytes of its disks (the last sync of each volume).
    pub bytes: u64,
    /// Bytes that crossed the link in the last sync of each volume.
    pub bytes_on_wire: u64,
    /// From the stop of the source to the destination server ACTIVE, in seconds.
    pub downtime_s: Option<f64>,
    /// Its state file.
    pub state_file: String,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run.
    pub run_id: String,
    /// When it started and when the summary was written.
    pub created_at: String,
    /// When the summary was written.
    pub finished_at: String,
    /// The pool's pairs.
    pub pairs: Vec<String>,
    /// Workloads per outcome.
    pub counts: BTreeMap<String, usize>,
    /// Per workload, in queue order.
    pub workloads: Vec<Row>,
}

fn status_name(s: ItemStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the summary of run `run_id` from its queue and the workloads' state files, and writes it.
pub fn summarize(data_dir: &Path, run_id: &str) -> Result<(Summary, PathBuf), QueueError> {
    let q = load(data_dir, run_id)?;
    let mut counts = BTreeMap::new();
    let workloads: Vec<Row> = q
        .items
        .iter()
        .map(|i| {
            let paths = Paths::new(data_dir, &i.name, &i.id);
            let state = State::load(&paths.state).ok().flatten();
            let last = |f: fn(&crate::state::SyncRound) -> u64| -> u64 {
                state.as_ref().map_or(0, |s| {
                    s.volumes
                        .iter()
                        .filter_map(|v| v.rounds.last())
                        .map(f)
                        .sum()
                })
            };
            *counts.entry(status_name(i.status)).or_insert(0) += 1;
            Row {
                name: i.name.clone(),
                id: i.id.clone(),
                pair: i.pair.clone(),
                status: i.status,
                step: i.step.clone(),
                message: i.message.clone(),
                duration_s: i.started_at.zip(i.ended_at).map(|(a, b)| b - a),
                started_at: i.started_at,
                ended_at: i.ended_at,
                bytes: last(|r| r.bytes_total),
                bytes_on_wire: last(|r| r.bytes_on_wire),
                downtime_s: state.as_ref().and_then(|s| s.downtime_s),
                state_file: paths.state.display().to_string(),
            }
        })
        .collect();
    let summary = Summary {
        run_id: q.run_id.clone(),
        created_at: q.created_at.clone(),
        finished_at: now(),
        pairs: q.pairs.clone(),
        counts,
        workloads,
    };
    let text = serde_json::to_vec_pretty(&summary).map_err(|e| QueueError::Damaged {
        path: data_dir.join("import_summary.json"),
        message: e.to_string(),
    })?;
    let kept = data_dir
        .join("summaries")
        .join(format!("import-{}.json", q.run_id));
    let dir = kept.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(|source| QueueError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let latest = data_dir.join("import_summary.json");
    for path in [&kept, &latest] {
        write_atomic(path, &text, 0o640).map_err(|source| QueueError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok((summary, latest))
}

fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// One line per workload, for people.
pub fn lines(s: &Summary) -> Vec<String> {
    s.workloads
        .iter()
        .map(|r| {
            let pair = r.pair.as_deref().unwrap_or("-");
            let took = r
                .duration_s
                .map(|d| format!(" in {d:.1} s"))
                .unwrap_or_default();
            let data = if r.bytes > 0 {
                format!(", {} ({} on the wire)", gib(r.bytes), gib(r.bytes_on_wire))
            } else {
                String::new()
            };
            let down = r
                .downtime_s
                .map(|d| format!(", downtime {d:.1} s"))
                .unwrap_or_default();
            match r.status {
                ItemStatus::Failed => format!(
                    "{}: failed in step {} on pair {pair}{took}: {}",
                    r.name,
                    r.step.as_deref().unwrap_or("?"),
                    r.message.as_deref().unwrap_or("(no message)")
                ),
                ItemStatus::Pending => format!("{}: not started", r.name),
                st => format!(
                    "{}: {} on pair {pair}{took}{data}{down}",
                    r.name,
                    status_name(st)
                ),
            }
        })
        .collect()
}
