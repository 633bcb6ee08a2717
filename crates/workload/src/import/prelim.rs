//! `import_workload_prelim`: the workload's files, and whether it is to be migrated at all.

use osm_openstack::{Connection, Query};
use serde::Serialize;

use super::{ImportError, Settings};
use crate::model::Server;
use crate::state::{new_transfer_id, now, Log, Paths, Phase, State, StateError, Status};

/// What prelim decided.
#[derive(Debug, Clone, Serialize)]
pub struct Prelim {
    /// The workload's name.
    pub server_name: String,
    /// Whether the workload is to be migrated by this run.
    pub migrate: bool,
    /// Why not, when it is not.
    pub skip_reason: Option<String>,
    /// The log file.
    pub log_file: String,
    /// The state file.
    pub state_file: String,
    /// The transfer id of this run (kept from a failed run when resuming).
    pub transfer_id: Option<String>,
    /// Whether this run resumes a failed one.
    pub resumed: bool,
    /// Where the state of another server of the same name (or of another destination project) was
    /// set aside, when there was one: this run did not resume its transfer.
    pub superseded_state: Option<String>,
}

/// Creates `workload_logs/<name>.log` and `.state`, and decides whether the workload is migrated: not
/// when a server of that exact name already exists in the destination, nor when it is the source
/// conversion host itself. With `resume`, a failed run's transfer id (and so its destination volumes,
/// which the next sync completes) is kept, but only for the same source server id and destination
/// project: a state of another server of that name (deleted and made again, say) is set aside as
/// `<name>.<its source id>.state`, and this run starts its own transfer, saying so.
pub fn prelim(
    server: &Server,
    dst: &Connection,
    src_conversion_host: Option<(&str, &str)>,
    settings: &Settings,
    check_mode: bool,
) -> Result<Prelim, ImportError> {
    let name = server.params.name.clone();
    let paths = Paths::new(&settings.data_dir, &name, &server.info.id);
    let mut out = Prelim {
        server_name: name.clone(),
        migrate: false,
        skip_reason: None,
        log_file: paths.log.display().to_string(),
        state_file: paths.state.display().to_string(),
        transfer_id: None,
        resumed: false,
        superseded_state: None,
    };
    let skip = if let Some((id, host_name)) =
        src_conversion_host.filter(|(id, n)| *id == server.info.id || *n == name)
    {
        Some(format!(
            "it is the source conversion host ({host_name}, {id})"
        ))
    } else {
        let found = dst
            .compute()
            .list_servers_with(&Query::new().with("name", crate::nova_exact_name(&name)))
            .map_err(|source| ImportError::Cloud {
                workload: name.clone(),
                side: "destination",
                doing: "looking for a server of the same name".into(),
                source,
            })?;
        found.iter().find(|s| s.name == name).map(|s| {
            format!(
                "a server named '{name}' already exists in the destination ({}, {})",
                s.id, s.status
            )
        })
    };
    if check_mode {
        out.migrate = skip.is_none();
        out.skip_reason = skip;
        return Ok(out);
    }
    let dst_project = dst.project_id().map_err(|source| ImportError::Cloud {
        workload: name.clone(),
        side: "destination",
        doing: "finding the destination project".into(),
        source,
    })?;
    paths.create_dir()?;
    let log = Log::new(&paths.log);
    let previous = match State::load(&paths.state)? {
        Some(p)
            if p.belongs_to(&server.info.id)
                && p.dst_project_id.as_ref().is_none_or(|d| *d == dst_project) =>
        {
            Some(p)
        }
        Some(p) => {
            let aside = paths.superseded(&p.source_id);
            std::fs::rename(&paths.state, &aside).map_err(|source| StateError::Io {
                path: aside.clone(),
                source,
            })?;
            log.line(
                "prelim",
                &format!(
                    "the state file was for source server '{}' in destination project {}, not server {} in {dst_project}: it is kept as {} and its transfer {} is not resumed (os_migrate_leftovers finds what it left); starting afresh",
                    p.source_id,
                    p.dst_project_id.as_deref().unwrap_or("(not recorded)"),
                    server.info.id,
                    aside.display(),
                    p.transfer_id
                ),
            );
            out.superseded_state = Some(aside.display().to_string());
            None
        }
        None => None,
    };
    if let Some(reason) = skip {
        log.line("prelim", &format!("skipped: {reason}"));
        if previous.as_ref().is_none_or(|p| p.status != Status::Done) {
            let mut st = previous.unwrap_or_else(|| State {
                workload: name.clone(),
                source_id: server.info.id.clone(),
                dst_project_id: Some(dst_project.clone()),
                transfer_id: String::new(),
                ..State::default()
            });
            st.status = Status::Skipped;
            st.step = Some("prelim".into());
            st.save(&paths.state)?;
        }
        out.skip_reason = Some(reason);
        return Ok(out);
    }
    // A warm migration's kept volumes are its point: they are reused whatever `resume` says, until
    // the migration completes or is abandoned.
    let warm = previous.as_ref().and_then(|p| p.warm.as_ref()).filter(|_| {
        previous.as_ref().is_some_and(|p| {
            matches!(
                p.status,
                Status::Failed | Status::Running | Status::Precopied
            )
        })
    });
    if settings.phase == Phase::Cutover && warm.is_none_or(|w| w.precopies == 0) {
        let msg = format!(
            "no pre-copy round of workload '{name}' has finished, so there is nothing to cut over to: run the pre-copy phase first (os_migrate_workload_phase: precopy); nothing was changed"
        );
        log.line("prelim", &msg);
        return Err(ImportError::Invalid {
            workload: name,
            message: msg,
        });
    }
    let resumable = previous.as_ref().filter(|p| {
        !p.transfer_id.is_empty()
            && (warm.is_some()
                || settings.resume && matches!(p.status, Status::Failed | Status::Running))
    });
    let mut state = match resumable {
        Some(p) => {
            out.resumed = true;
            let mut s = p.clone();
            s.dst_project_id = Some(dst_project.clone());
            s.status = Status::Running;
            s.error = None;
            s.stop_requested_at = None;
            s.downtime_s = None;
            if let Some(w) = s.warm.as_mut() {
                w.prepared_at = None;
                w.homes.clear();
            }
            log.line(
                "prelim",
                &match (&s.warm, settings.phase) {
                    (Some(w), phase) => format!(
                        "{}: transfer {} of a warm migration ({} pre-copy rounds so far)",
                        phase.as_str(),
                        s.transfer_id,
                        w.precopies
                    ),
                    (None, _) => {
                        format!("resuming transfer {} of a previous run", s.transfer_id)
                    }
                },
            );
            s
        }
        None => {
            let s = State {
                workload: name.clone(),
                source_id: server.info.id.clone(),
                dst_project_id: Some(dst_project.clone()),
                transfer_id: new_transfer_id(),
                status: Status::Running,
                started_at: Some(now()),
                ..State::default()
            };
            log.line(
                "prelim",
                &format!(
                    "starting transfer {} of server {} ({}){}",
                    s.transfer_id,
                    name,
                    server.info.id,
                    if settings.phase == Phase::Precopy {
                        ", a warm migration: pre-copy while the server runs"
                    } else {
                        ""
                    }
                ),
            );
            s
        }
    };
    state.step = Some("prelim".into());
    state.save(&paths.state)?;
    out.migrate = true;
    out.transfer_id = Some(state.transfer_id);
    Ok(out)
}
