//! The import queue of one run: which workload runs next, on which conversion-host pair.
//!
//! `import_workloads` runs P *lanes* (in-memory hosts under the `free` strategy); each lane claims the
//! next workload from this queue as soon as its previous one ended, so a slow workload never holds
//! back unrelated ones (no batch barrier). The queue lives in
//! `{{ os_migrate_data_dir }}/queue/<run id>.json`, changed only under an exclusive lock on
//! `<run id>.lock`, so lanes in separate worker processes never claim the same workload.
//!
//! A workload goes to its *fixed* pair when it has one (the pair its state file records for kept
//! volumes, else the pair pinned by the operator); otherwise to the pair running the fewest workloads.
//! No pair runs more than `per_pair` workloads at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::file::write_atomic;
use crate::state::{new_transfer_id, now, Paths, State, Status};

/// What failed with the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue file or its lock could not be read or written.
    #[error("import queue {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The queue file is not valid JSON of a queue.
    #[error("import queue {path} is damaged: {message}")]
    Damaged {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An option or a workload's field is invalid; nothing was written.
    #[error("{field}: {message}")]
    Invalid {
        /// The option or field, with the workload it belongs to.
        field: String,
        /// Why.
        message: String,
    },
    /// A workload the caller names is not in the queue.
    #[error("workload {id} is not in import queue {run_id}")]
    Unknown {
        /// The source server id.
        id: String,
        /// The run.
        run_id: String,
    },
}

/// Where a workload of the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Waiting for a lane.
    Pending,
    /// A lane runs it.
    Running,
    /// Migrated (the server is ACTIVE in the destination).
    Migrated,
    /// Not migrated: already in the destination.
    Skipped,
    /// A pre-copy round finished.
    Precopied,
    /// A warm migration given up.
    Abandoned,
    /// Failed in a step.
    Failed,
}

impl ItemStatus {
    /// The outcome a lane reports, by name.
    pub fn outcome(name: &str) -> Option<ItemStatus> {
        Some(match name {
            "migrated" => ItemStatus::Migrated,
            "skipped" => ItemStatus::Skipped,
            "precopied" => ItemStatus::Precopied,
            "abandoned" => ItemStatus::Abandoned,
            "failed" => ItemStatus::Failed,
            _ => return None,
        })
    }
}

/// One workload in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Source server id.
    pub id: String,
    /// Server name.
    pub name: String,
    /// The inventory host carrying the workload.
    pub host: String,
    /// The pair it must run on, when it has one.
    pub fixed_pair: Option<String>,
    /// Why it has one: `state file` (kept volumes of an earlier run) or where the pin came from.
    pub fixed_by: Option<String>,
    /// The pair it runs (or ran) on.
    pub pair: Option<String>,
    /// Where it is.
    pub status: ItemStatus,
    /// The lane that claimed it.
    pub lane: Option<String>,
    /// When it was claimed, seconds since the epoch.
    pub started_at: Option<f64>,
    /// When it ended.
    pub ended_at: Option<f64>,
    /// The step it failed in.
    pub step: Option<String>,
    /// The failure's message.
    pub message: Option<String>,
}

/// The queue file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// This run's id (the file's name).
    pub run_id: String,
    /// When the run started.
    pub created_at: String,
    /// The pool's pairs, in order.
    pub pairs: Vec<String>,
    /// At most this many workloads run on one pair at once.
    pub per_pair: u32,
    /// Every workload of the run, in the order they are claimed when free to run.
    pub items: Vec<Item>,
}

/// A workload handed to [`init`].
#[derive(Debug, Clone, Deserialize)]
pub struct NewItem {
    /// The inventory host carrying it.
    pub host: String,
    /// The serialized workload (`params.name`, `_info.id`, `_migration_params.conversion_host_pair`).
    pub workload: Value,
    /// A pin set by a variable (`os_migrate_conversion_host_pair` on the host, or the run's map).
    #[serde(default)]
    pub pair: Option<String>,
}

/// What a lane got from [`claim`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    /// The workload, or None when the queue holds nothing more to run.
    pub item: Option<Item>,
    /// Why it runs on its pair.
    pub reason: Option<String>,
}

/// A pair's name: becomes part of server and resource names and of an inventory group.
pub fn check_pair_name(field: &str, name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::Invalid {
            field: field.to_string(),
            message: format!(
                "conversion host pair name {name:?} must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit"
            ),
        })
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The pair a workload's state file records, when its last run kept something (volumes of a failed
/// run, pre-copied volumes) that the next run must find on that pair.
fn recorded_pair(data_dir: &Path, name: &str, id: &str) -> Option<String> {
    let state = State::load(&Paths::new(data_dir, name, id).state).ok()??;
    let keeps = matches!(
        state.status,
        Status::Running | Status::Failed | Status::Precopied
    );
    state.conversion_host_pair.filter(|_| keeps)
}

/// The queue file of a run.
pub fn queue_path(data_dir: &Path, run_id: &str) -> PathBuf {
    data_dir.join("queue").join(format!("{run_id}.json"))
}

/// Creates the queue of a new run and returns it. Every workload's pin must name a pair of the pool;
/// a pair recorded in a workload's state file for kept volumes wins over a pin.
pub fn init(
    data_dir: &Path,
    pairs: &[String],
    per_pair: u32,
    workloads: &[NewItem],
) -> Result<Queue, QueueError> {
    if pairs.is_empty() {
        return Err(QueueError::Invalid {
            field: "pairs".into(),
            message: "the pool of conversion host pairs is empty".into(),
        });
    }
    for (i, p) in pairs.iter().enumerate() {
        check_pair_name(&format!("pairs[{i}]"), p)?;
        if pairs[..i].contains(p) {
            return Err(QueueError::Invalid {
                field: format!("pairs[{i}]"),
                message: format!("pair '{p}' is listed twice"),
            });
        }
    }
    if per_pair == 0 {
        return Err(QueueError::Invalid {
            field: "per_pair".into(),
            message: "must be at least 1".into(),
        });
    }
    let mut items = Vec::with_capacity(workloads.len());
    for (i, w) in workloads.iter().enumerate() {
        let name = str_at(&w.workload, &["params", "name"]).ok_or(QueueError::Invalid {
            field: format!("workloads[{i}].workload.params.name"),
            message: "missing".into(),
        })?;
        let id = str_at(&w.workload, &["_info", "id"]).ok_or(QueueError::Invalid {
            field: format!("workloads[{i}].workload._info.id (workload '{name}')"),
            message: "missing".into(),
        })?;
        let pins = [
            (
                "_migration_params.conversion_host_pair",
                str_at(&w.workload, &["_migration_params", "conversion_host_pair"]),
            ),
            (
                "os_migrate_conversion_host_pair (or os_migrate_workload_conversion_host_pairs)",
                w.pair.as_deref(),
            ),
        ];
        for (field, pin) in pins {
            if let Some(p) = pin.filter(|p| !pairs.iter().any(|x| x == p)) {
                return Err(QueueError::Invalid {
                    field: format!("{field} of workload '{name}'"),
                    message: format!(
                        "pair '{p}' is not in the pool of conversion host pairs ({})",
                        pairs.join(", ")
                    ),
                });
            }
        }
        let recorded = recorded_pair(data_dir, name, id).filter(|p| pairs.contains(p));
        let (fixed_pair, fixed_by) = match recorded {
            Some(p) => (Some(p), Some("state file".to_string())),
            None => match pins.iter().find_map(|(f, p)| p.map(|p| (p, *f))) {
                Some((p, f)) => (Some(p.to_string()), Some(f.to_string())),
                None => (None, None),
            },
        };
        items.push(Item {
            id: id.to_string(),
            name: name.to_string(),
            host: w.host.clone(),
            fixed_pair,
            fixed_by,
            pair: None,
            status: ItemStatus::Pending,
            lane: None,
            started_at: None,
            ended_at: None,
            step: None,
            message: None,
        });
    }
    let created_at = now();
    let queue = Queue {
        run_id: format!("{}-{}", created_at.replace(':', ""), new_transfer_id()),
        created_at,
        pairs: pairs.to_vec(),
        per_pair,
        items,
    };
    let path = queue_path(data_dir, &queue.run_id);
    let dir = path.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(|source| QueueError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    save(&path, &queue)?;
    Ok(queue)
}

fn save(path: &Path, q: &Queue) -> Result<(), QueueError> {
    let text = serde_json::to_vec_pretty(q).map_err(|e| QueueError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &text, 0o640).map_err(|source| QueueError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a run's queue.
pub fn load(data_dir: &Path, run_id: &str) -> Result<Queue, QueueError> {
    let path = queue_path(data_dir, run_id);
    let text = std::fs::read(&path).map_err(|source| QueueError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| QueueError::Damaged {
        path,
        message: e.to_string(),
    })
}

/// Runs `f` on the queue under its exclusive lock, saving what it changed.
fn locked<T>(
    data_dir: &Path,
    run_id: &str,
    f: impl FnOnce(&mut Queue) -> Result<T, QueueError>,
) -> Result<T, QueueError> {
    check_run_id(run_id)?;
    let path = queue_path(data_dir, run_id);
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| QueueError::Io {
            path: lock_path.clone(),
            source,
        })?;
    lock.lock().map_err(|source| QueueError::Io {
        path: lock_path,
        source,
    })?;
    let mut q = load(data_dir, run_id)?;
    let before = q.clone();
    let out = f(&mut q)?;
    if q != before {
        save(&path, &q)?;
    }
    Ok(out)
}

/// A run id names a file: it is what [`init`] made, never a path.
fn check_run_id(run_id: &str) -> Result<(), QueueError> {
    if !run_id.is_empty()
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(())
    } else {
        Err(QueueError::Invalid {
            field: "run_id".into(),
            message: format!("{run_id:?} is not a run id of import_workloads"),
        })
    }
}

/// Picks the next workload free to run now, marks it running on its pair, and returns it with why
/// that pair; None when every pending workload waits for a busy pair.
fn pick(q: &mut Queue, lane: &str) -> Option<(Item, String)> {
    let running = |q: &Queue, p: &str| {
        q.items
            .iter()
            .filter(|i| i.status == ItemStatus::Running && i.pair.as_deref() == Some(p))
            .count()
    };
    let assigned = |q: &Queue, p: &str| {
        q.items
            .iter()
            .filter(|i| i.pair.as_deref() == Some(p))
            .count()
    };
    let cap = q.per_pair as usize;
    for idx in 0..q.items.len() {
        if q.items[idx].status != ItemStatus::Pending {
            continue;
        }
        let (pair, reason) = match &q.items[idx].fixed_pair {
            Some(p) if running(q, p) < cap => (
                p.clone(),
                format!(
                    "fixed by {}",
                    q.items[idx].fixed_by.as_deref().unwrap_or("a pin")
                ),
            ),
            Some(_) => continue,
            None => {
                let best = q
                    .pairs
                    .iter()
                    .filter(|p| running(q, p) < cap)
                    .min_by_key(|p| (running(q, p), assigned(q, p)));
                match best {
                    Some(p) => (p.clone(), "least loaded".to_string()),
                    None => return None,
                }
            }
        };
        let item = &mut q.items[idx];
        item.status = ItemStatus::Running;
        item.pair = Some(pair);
        item.lane = Some(lane.to_string());
        item.started_at = Some(epoch());
        return Some((item.clone(), reason));
    }
    None
}

/// Claims the next workload for `lane`, waiting (polling every `poll`) while every pending workload's
/// pair is at its limit. Returns an empty claim when nothing is pending.
pub fn claim(
    data_dir: &Path,
    run_id: &str,
    lane: &str,
    poll: Duration,
) -> Result<Claim, QueueError> {
    loop {
        let got = locked(data_dir, run_id, |q| {
            let pending = q.items.iter().any(|i| i.status == ItemStatus::Pending);
            Ok(pending.then(|| pick(q, lane)))
        })?;
        match got {
            None => {
                return Ok(Claim {
                    item: None,
                    reason: None,
                })
            }
            Some(Some((item, reason))) => {
                return Ok(Claim {
                    item: Some(item),
                    reason: Some(reason),
                })
            }
            Some(None) => std::thread::sleep(poll),
        }
    }
}

/// Records how a claimed workload ended.
pub fn release(
    data_dir: &Path,
    run_id: &str,
    id: &str,
    outcome: ItemStatus,
    step: Option<String>,
    message: Option<String>,
) -> Result<Item, QueueError> {
    locked(data_dir, run_id, |q| {
        let run = q.run_id.clone();
        let item = q
            .items
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(QueueError::Unknown {
                id: id.to_string(),
                run_id: run,
            })?;
        item.status = outcome;
        item.ended_at = Some(epoch());
        item.step = step;
        item.message = message;
        Ok(item.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(n: usize, pins: &[(usize, &str)]) -> Vec<NewItem> {
        (0..n)
            .map(|i| NewItem {
                host: format!("h{i}"),
                workload: json!({"params": {"name": format!("w{i}")}, "_info": {"id": format!("id{i}")}}),
                pair: pins
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, p)| p.to_string()),
            })
            .collect()
    }

    fn pairs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    const NOW: Duration = Duration::from_millis(1);

    #[test]
    fn least_loaded_pairs_and_the_per_pair_limit() {
        let dir = tempfile::tempdir().unwrap();
        let q = init(dir.path(), &pairs(&["p1", "p2"]), 1, &items(3, &[])).unwrap();
        let a = claim(dir.path(), &q.run_id, "l1", NOW)
            .unwrap()
            .item
            .unwrap();
        let b = claim(dir.path(), &q.run_id, "l2", NOW)
            .unwrap()
            .item
            .unwrap();
        assert_eq!(
            (a.pair.as_deref(), b.pair.as_deref()),
            (Some("p1"), Some("p2"))
        );
        // Both pairs are busy: the third waits until one ends, then runs on the pair that freed.
        let run_id = q.run_id.clone();
        let path = dir.path().to_path_buf();
        let waiter =
            std::thread::spawn(move || claim(&path, &run_id, "l3", Duration::from_millis(20)));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "a third workload ran on a busy pair");
        release(
            dir.path(),
            &q.run_id,
            &b.id,
            ItemStatus::Migrated,
            None,
            None,
        )
        .unwrap();
        let c = waiter.join().unwrap().unwrap().item.unwrap();
        assert_eq!((c.name.as_str(), c.pair.as_deref()), ("w2", Some("p2")));
        release(
            dir.path(),
            &q.run_id,
            &a.id,
            ItemStatus::Migrated,
            None,
            None,
        )
        .unwrap();
        release(
            dir.path(),
            &q.run_id,
            &c.id,
            ItemStatus::Failed,
            Some("x".into()),
            None,
        )
        .unwrap();
        assert!(claim(dir.path(), &q.run_id, "l1", NOW)
            .unwrap()
            .item
            .is_none());
    }

    #[test]
    fn a_pinned_workload_waits_for_its_pair_and_others_pass_it() {
        let dir = tempfile::tempdir().unwrap();
        let q = init(
            dir.path(),
            &pairs(&["p1", "p2"]),
            1,
            &items(3, &[(1, "p1")]),
        )
        .unwrap();
        let a = claim(dir.path(), &q.run_id, "l1", NOW)
            .unwrap()
            .item
            .unwrap();
        assert_eq!(a.pair.as_deref(), Some("p1"));
        // w1 is pinned to the busy p1: w2 goes first, on p2.
        let b = claim(dir.path(), &q.run_id, "l2", NOW)
            .unwrap()
            .item
            .unwrap();
        assert_eq!((b.name.as_str(), b.pair.as_deref()), ("w2", Some("p2")));
    }

    #[test]
    fn the_pair_of_kept_volumes_wins_over_a_pin() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path(), "w0", "id0");
        paths.create_dir().unwrap();
        let mut st = State {
            workload: "w0".into(),
            source_id: "id0".into(),
            transfer_id: "t".into(),
            status: Status::Failed,
            conversion_host_pair: Some("p2".into()),
            ..State::default()
        };
        st.save(&paths.state).unwrap();
        let q = init(
            dir.path(),
            &pairs(&["p1", "p2"]),
            1,
            &items(1, &[(0, "p1")]),
        )
        .unwrap();
        assert_eq!(q.items[0].fixed_pair.as_deref(), Some("p2"));
        assert_eq!(q.items[0].fixed_by.as_deref(), Some("state file"));
    }

    #[test]
    fn bad_input_is_refused_naming_the_field_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let e = init(dir.path(), &pairs(&["p1"]), 1, &items(1, &[(0, "p9")])).unwrap_err();
        assert!(
            e.to_string().contains("of workload 'w0'") && e.to_string().contains("'p9'"),
            "{e}"
        );
        let e = init(dir.path(), &pairs(&["p1", "a b"]), 1, &items(1, &[])).unwrap_err();
        assert!(e.to_string().starts_with("pairs[1]"), "{e}");
        let e = init(dir.path(), &pairs(&["p1", "p1"]), 1, &items(1, &[])).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        assert!(init(dir.path(), &pairs(&["p1"]), 0, &items(1, &[])).is_err());
        assert!(!dir.path().join("queue").exists());
        assert!(claim(dir.path(), "../x", "l", NOW).is_err());
    }
}
