//! `osm.workloads.os_migrate_workload_queue`: the queue of an import run (init, claim, release, summary).

use std::path::PathBuf;
use std::time::Duration;

use osm_module::{run, Failure, Opt, Outcome, Spec, Type};
use osm_workload::queue::{self, ItemStatus, NewItem};
use osm_workload::summary;

#[derive(serde::Deserialize)]
struct Options {
    action: String,
    data_dir: PathBuf,
    run_id: Option<String>,
    pairs: Option<Vec<String>>,
    per_pair: u32,
    workloads: Option<Vec<NewItem>>,
    lane: Option<String>,
    workload_id: Option<String>,
    outcome: Option<String>,
    step: Option<String>,
    message: Option<String>,
    poll_interval: f64,
}

fn need<T>(v: Option<T>, name: &str, action: &str) -> Result<T, Failure> {
    v.ok_or_else(|| Failure::new(format!("option {name} is required with action={action}")))
}

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_migrate_workload_queue")
        .opt(
            Opt::new("action", Type::Str)
                .required()
                .choices(&["init", "claim", "release", "summary"]),
        )
        .opt(Opt::new("data_dir", Type::Path).required())
        .opt(Opt::new("run_id", Type::Str))
        .opt(Opt::new("pairs", Type::List).elements(Type::Str))
        .opt(Opt::new("per_pair", Type::Int).default(1))
        .opt(Opt::new("workloads", Type::List).elements(Type::Dict))
        .opt(Opt::new("lane", Type::Str))
        .opt(Opt::new("workload_id", Type::Str))
        .opt(Opt::new("outcome", Type::Str).choices(&[
            "migrated",
            "skipped",
            "precopied",
            "abandoned",
            "failed",
        ]))
        .opt(Opt::new("step", Type::Str))
        .opt(Opt::new("message", Type::Str))
        .opt(Opt::new("poll_interval", Type::Float).default(1.0))
        .no_check_mode();
    run(&spec, |ctx| {
        let o: Options = ctx.options()?;
        let a = o.action.as_str();
        match a {
            "init" => {
                let q = queue::init(
                    &o.data_dir,
                    &need(o.pairs, "pairs", a)?,
                    o.per_pair,
                    &need(o.workloads, "workloads", a)?,
                )?;
                Ok(Outcome::changed(true)
                    .with("run_id", &q.run_id)
                    .with("queue", &q)
                    .msg(format!(
                        "{} workloads queued over {} conversion host pairs (at most {} at once on a pair); queue: {}",
                        q.items.len(),
                        q.pairs.len(),
                        q.per_pair,
                        queue::queue_path(&o.data_dir, &q.run_id).display()
                    )))
            }
            "claim" => {
                let run_id = need(o.run_id, "run_id", a)?;
                let lane = need(o.lane, "lane", a)?;
                let poll = Duration::from_secs_f64(o.poll_interval.clamp(0.05, 60.0));
                let c = queue::claim(&o.data_dir, &run_id, &lane, poll)?;
                let msg = match &c.item {
                    Some(i) => format!(
                        "{lane} takes '{}' on pair {} ({})",
                        i.name,
                        i.pair.as_deref().unwrap_or("-"),
                        c.reason.as_deref().unwrap_or("")
                    ),
                    None => format!("{lane}: nothing left in the queue"),
                };
                Ok(Outcome::changed(c.item.is_some())
                    .with("claimed", c.item.is_some())
                    .with("item", &c.item)
                    .msg(msg))
            }
            "release" => {
                let run_id = need(o.run_id, "run_id", a)?;
                let id = need(o.workload_id, "workload_id", a)?;
                let outcome = need(o.outcome, "outcome", a)?;
                let status = ItemStatus::outcome(&outcome)
                    .ok_or_else(|| Failure::new(format!("outcome {outcome:?} is not known")))?;
                let item = queue::release(&o.data_dir, &run_id, &id, status, o.step, o.message)?;
                Ok(Outcome::changed(true)
                    .with("item", &item)
                    .msg(format!("'{}': {outcome}", item.name)))
            }
            _ => {
                let run_id = need(o.run_id, "run_id", a)?;
                let (s, path) = summary::summarize(&o.data_dir, &run_id)?;
                let failed = s.counts.get("failed").copied().unwrap_or(0);
                Ok(Outcome::changed(false)
                    .with("summary", &s)
                    .with("lines", summary::lines(&s))
                    .with("failed_count", failed)
                    .with("path", path.display().to_string())
                    .msg(format!(
                        "{} workloads: {}; summary in {}",
                        s.workloads.len(),
                        s.counts
                            .iter()
                            .map(|(k, v)| format!("{v} {k}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        path.display()
                    )))
            }
        }
    })
}
