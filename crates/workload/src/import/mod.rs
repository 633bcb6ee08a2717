//! The import steps of DESIGN.md section 4, one function per step module.
//!
//! Every step loads the workload's state file, does its part, and records what it created in the
//! state file *before* each create call returns, so cleanup can always find it. Every step is
//! idempotent: run again, it finds what the previous run recorded and carries on from there.

mod attachments;
mod checks;
mod cleanup;
mod create;
mod export_volumes;
mod prelim;
mod refs;
mod transfer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use osm_openstack as os;

use crate::hosts::{ConvHost, HostError, HostSpec, Login};
use crate::model::Server;
use crate::state::{Log, Paths, Phase, Side, State, StateError, TRANSFER_KEY};

pub use checks::{dst_check, src_check, DstCheck};
pub use cleanup::{dst_failure_cleanup, src_cleanup, CleanupReport};
pub use create::{create_instance, CreatedServer};
pub use export_volumes::export_volumes;
pub use prelim::{prelim, Prelim};
pub use refs::Resolver;
pub use transfer::{transfer_volumes, TransferOptions};

/// What failed during an import step. Messages name the workload and the resource.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A cloud call failed.
    #[error("workload '{workload}': {side} cloud: {doing}: {source}")]
    Cloud {
        /// Workload name.
        workload: String,
        /// `source` or `destination`.
        side: &'static str,
        /// What was being done.
        doing: String,
        /// The client's error.
        source: os::Error,
    },
    /// A conversion host failed.
    #[error("workload '{workload}': {source}")]
    Host {
        /// Workload name.
        workload: String,
        /// The host error.
        source: HostError,
    },
    /// The log or state files failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The workload's state file is missing: prelim did not run.
    #[error(
        "workload '{workload}': no state file at {path}; import_workload_prelim must run first"
    )]
    NoState {
        /// Workload name.
        workload: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The state file is another server's (one of the same name, deleted since, say).
    #[error(
        "workload '{workload}': the state file {path} is the record of source server {recorded}, not of this server {source_id}; import_workload_prelim sets it aside and starts afresh: run it first; nothing was changed"
    )]
    OtherServer {
        /// Workload name.
        workload: String,
        /// The state file.
        path: PathBuf,
        /// The source server id it records.
        recorded: String,
        /// This workload's source server id.
        source_id: String,
    },
    /// References missing in the destination (dst_check lists all of them).
    #[error("workload '{workload}': the destination cloud lacks what the server needs: {}", .missing.join("; "))]
    Missing {
        /// Workload name.
        workload: String,
        /// One line per missing item.
        missing: Vec<String>,
    },
    /// The source server is not in a state that can be migrated.
    #[error("workload '{workload}': {message}")]
    Source {
        /// Workload name.
        workload: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Something else that stops the step.
    #[error("workload '{workload}': {message}")]
    Invalid {
        /// Workload name.
        workload: String,
        /// What is wrong.
        message: String,
    },
}

/// Settings every step shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `os_migrate_data_dir`.
    pub data_dir: PathBuf,
    /// How long to wait for one cloud resource to reach a status.
    pub timeout: Duration,
    /// Keep the destination volumes of a failed sync for the next run (`os_migrate_workload_resume`).
    pub resume: bool,
    /// The part of the migration this run does (`os_migrate_workload_phase`).
    pub phase: Phase,
}

/// The conversion hosts and how to reach them.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// Source conversion host.
    pub src: HostSpec,
    /// Destination conversion host.
    pub dst: HostSpec,
    /// Login used for both.
    pub login: Login,
    /// The agent binary to upload.
    pub agent: PathBuf,
}

/// One workload being imported: the serialized server, its files, its state.
pub struct Job {
    /// The workload.
    pub server: Server,
    /// Its files.
    pub paths: Paths,
    /// Its log.
    pub log: Log,
    /// Its state.
    pub state: State,
    /// Shared settings.
    pub settings: Settings,
    /// The step this job's log lines are under, when it is not the recorded step: a cleanup keeps
    /// the step that failed recorded, and logs as itself.
    log_step: Option<&'static str>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("workload", &self.server.params.name)
            .field("transfer_id", &self.state.transfer_id)
            .finish()
    }
}

impl Job {
    /// Opens the job of a workload whose prelim ran.
    pub fn open(server: Server, settings: Settings, step: &str) -> Result<Job, ImportError> {
        let paths = Paths::new(&settings.data_dir, &server.params.name, &server.info.id);
        let state = State::load(&paths.state)?.ok_or_else(|| ImportError::NoState {
            workload: server.params.name.clone(),
            path: paths.state.clone(),
        })?;
        if !state.belongs_to(&server.info.id) {
            return Err(ImportError::OtherServer {
                workload: server.params.name.clone(),
                path: paths.state.clone(),
                recorded: state.source_id,
                source_id: server.info.id.clone(),
            });
        }
        let mut job = Job {
            log: Log::new(&paths.log),
            server,
            paths,
            state,
            settings,
            log_step: None,
        };
        job.state.step = Some(step.to_string());
        job.save()?;
        Ok(job)
    }

    /// Opens the job of a workload for the cleanup step `step`, which its log lines are under: the
    /// step that failed stays recorded. None when there is no state of this server: no transfer of
    /// it started (a state of another server of the same name is left alone: cleaning up after it
    /// here would undo that server's run).
    pub fn open_for_cleanup(
        server: Server,
        settings: Settings,
        step: &'static str,
    ) -> Result<Option<Job>, ImportError> {
        let paths = Paths::new(&settings.data_dir, &server.params.name, &server.info.id);
        let Some(state) = State::load(&paths.state)? else {
            return Ok(None);
        };
        let log = Log::new(&paths.log);
        if !state.belongs_to(&server.info.id) {
            log.line(
                step,
                &format!(
                    "nothing to clean up for source server {}: the state file is the record of source server {}, whose transfer this cleanup leaves alone",
                    server.info.id, state.source_id
                ),
            );
            return Ok(None);
        }
        Ok(Some(Job {
            log,
            server,
            paths,
            state,
            settings,
            log_step: Some(step),
        }))
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.server.params.name
    }

    /// Writes the state file.
    pub fn save(&mut self) -> Result<(), ImportError> {
        self.state
            .save(&self.paths.state)
            .map_err(ImportError::from)
    }

    /// Logs a line under the current step.
    pub fn log(&self, message: &str) {
        let step = self.log_step.or(self.state.step.as_deref()).unwrap_or("-");
        self.log.line(step, message);
    }

    pub(crate) fn cloud_err(
        &self,
        side: Side,
        doing: impl Into<String>,
    ) -> impl FnOnce(os::Error) -> ImportError + 'static {
        let doing = doing.into();
        let workload = self.name().to_string();
        move |source| ImportError::Cloud {
            workload,
            side: match side {
                Side::Src => "source",
                Side::Dst => "destination",
            },
            doing,
            source,
        }
    }

    pub(crate) fn host_err(&self) -> impl FnOnce(HostError) -> ImportError + 'static {
        let workload = self.name().to_string();
        move |source| ImportError::Host { workload, source }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            workload: self.name().to_string(),
            message: message.into(),
        }
    }

    /// The metadata that marks a resource as this transfer's, so cleanup finds it by a query.
    pub(crate) fn transfer_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(TRANSFER_KEY.to_string(), self.state.transfer_id.clone());
        m.insert("osm_workload".to_string(), self.server.info.id.clone());
        m
    }

    /// Whether this run's `prepare_cutover` already readied both conversion hosts (see
    /// [`crate::state::Warm::prepared_at`]).
    pub(crate) fn prepared(&self) -> bool {
        self.settings.phase == Phase::Cutover
            && self
                .state
                .warm
                .as_ref()
                .is_some_and(|w| w.prepared_at.is_some())
    }

    /// The SSH login's home on the conversion host `host_id`, as this run's cutover preparation
    /// recorded it.
    pub(crate) fn prepared_home(&self, host_id: &str) -> Option<&str> {
        if !self.prepared() {
            return None;
        }
        self.state
            .warm
            .as_ref()?
            .homes
            .get(host_id)
            .map(String::as_str)
    }

    /// Connects to a conversion host; after this run's cutover preparation, without asking for the
    /// login's home again (one command fewer within the downtime).
    pub(crate) fn connect_host(
        &self,
        role: &'static str,
        spec: &HostSpec,
        login: &Login,
    ) -> Result<ConvHost, ImportError> {
        ConvHost::open(role, spec, login, self.prepared_home(&spec.id)).map_err(self.host_err())
    }

    /// Readies a conversion host for this transfer (the SSH user can open devices, the agent is
    /// in place, the transfer's directory exists) and returns that directory. After this run's
    /// cutover preparation did so, only the directory's path.
    pub(crate) fn ready_host(&self, host: &ConvHost, agent: &Path) -> Result<String, ImportError> {
        let id = &self.state.transfer_id;
        if self.prepared() {
            return Ok(host.transfer_dir(id));
        }
        host.require_device_access().map_err(self.host_err())?;
        if host.ensure_agent(agent).map_err(self.host_err())? {
            self.log(&format!(
                "uploaded osm-agent to the {} conversion host {}",
                host.role(),
                host.name()
            ));
        }
        host.make_transfer_dir(id).map_err(self.host_err())
    }

    /// The volumes to move, in order: the boot disk (when copied) then the additional volumes.
    pub(crate) fn plan_roles(&self) -> Vec<(String, Option<String>, u64)> {
        let mut roles = Vec::new();
        if self.server.migration_params.boot_disk_copy {
            let (id, size) = match self.server.boot_volume() {
                Some(v) => (Some(v.info.id.clone()), v.info.size),
                None => (None, 0),
            };
            roles.push(("boot".to_string(), id, size));
        }
        for (i, v) in self.server.additional_volumes().iter().enumerate() {
            roles.push((format!("data-{i}"), Some(v.info.id.clone()), v.info.size));
        }
        roles
    }
}
