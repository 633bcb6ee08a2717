//! The simulator process: configuration, the shared [`Sim`] handle, start-up, persistence and
//! shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::error::SimError;
use crate::faults::Faults;
use crate::hosts::HostManager;
use crate::state::{self, State};

/// How the simulator was asked to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where state.json, clouds.yaml, data files and host directories live.
    pub state_dir: PathBuf,
    /// HTTP listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Port of every conversion host's sshd (each host has its own loopback address).
    pub ssh_port: u16,
    /// How long one status transition takes.
    pub transition: Duration,
    /// Log every request to stderr.
    pub verbose: bool,
    /// Where conversion host directories live (default `DIR/hosts`). Their sockets' paths must stay
    /// under the 108 bytes a Unix socket path may have, so a deep state directory needs a short one.
    pub hosts_dir: Option<PathBuf>,
    /// Clouds whose new empty volumes read as garbage (see [`Sim::dirty_volumes`]).
    pub dirty_volumes: Vec<String>,
}

/// Everything the request handlers and background jobs share.
pub struct Sim {
    /// The configuration.
    pub cfg: Config,
    /// `http://127.0.0.1:PORT`, the prefix of every URL the simulator hands out.
    pub base_url: String,
    state: Mutex<State>,
    /// Held while the state is written: the persister and the final save at shutdown both write
    /// through one temporary file, and the later snapshot must be the one that lands.
    saving: Mutex<()>,
    dirty: Notify,
    stopping: AtomicBool,
    /// Injected faults.
    pub faults: Faults,
    /// Request counts per cloud, per `METHOD /path/template`.
    pub requests: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// The sshd processes of conversion hosts.
    pub hosts: HostManager,
    dirty_volumes: Mutex<BTreeSet<String>>,
}

impl Sim {
    /// Locks the state. A panic in another holder does not make the state unusable: every change
    /// is made in small steps that leave records consistent, so the poison flag is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the state changed; the persister writes it out shortly after.
    pub fn changed(&self) {
        self.dirty.notify_one();
    }

    /// Whether shutdown has begun (background jobs stop changing things).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Writes the state file now.
    pub fn save_now(&self) -> Result<(), SimError> {
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut st = self.lock();
            st.prune_tokens();
            st.to_bytes()
        };
        state::write_atomic(&self.state_file(), &bytes)
    }

    /// `DIR/state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.cfg.state_dir.join("state.json")
    }

    /// Path of a data file: `DIR/clouds/<cloud>/<kind>/<id>` (`kind`: volumes, images,
    /// snapshots, disks).
    pub fn data_path(&self, cloud: &str, kind: &str, id: &str) -> PathBuf {
        state::Cloud::data_dir(&self.cfg.state_dir, cloud)
            .join(kind)
            .join(id)
    }

    /// `DIR/hosts/<server id>` (or `--hosts-dir/<server id>`): a conversion host's directory.
    pub fn host_dir(&self, server_id: &str) -> PathBuf {
        match &self.cfg.hosts_dir {
            Some(d) => d.join(server_id),
            None => self.cfg.state_dir.join("hosts").join(server_id),
        }
    }

    /// Whether new empty volumes of `cloud` read as garbage rather than zeros, as on a Cinder
    /// backend that does not clear what it allocates (LVM thick with `volume_clear=none`): a
    /// volume created with no image, snapshot or volume to copy is filled with pseudo-random
    /// non-zero bytes over its whole size. Volumes with a source keep its content.
    pub fn dirty_volumes(&self, cloud: &str) -> bool {
        self.dirty_clouds().contains(cloud)
    }

    /// The clouds whose new empty volumes read as garbage.
    pub fn dirty_clouds(&self) -> BTreeSet<String> {
        self.dirty_volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes exactly `clouds` the clouds whose new empty volumes read as garbage; fails, changing
    /// nothing, on a name that is not a cloud.
    pub fn set_dirty_clouds(&self, clouds: &[String]) -> Result<(), SimError> {
        let known: Vec<String> = self.lock().clouds.keys().cloned().collect();
        if let Some(unknown) = clouds.iter().find(|c| !known.contains(c)) {
            return Err(SimError::UnknownCloud {
                cloud: unknown.clone(),
                known: known.join(", "),
            });
        }
        *self.dirty_volumes.lock().unwrap_or_else(|e| e.into_inner()) =
            clouds.iter().cloned().collect();
        Ok(())
    }

    /// How long a transition takes when no fault changes it.
    pub fn transition(&self) -> Duration {
        self.cfg.transition
    }
}

/// A started simulator (used by `main` and by tests).
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The shared handle.
    pub sim: Arc<Sim>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops serving, stops every sshd, and writes the state a last time.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sim.stopping.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        // Requests in flight get a moment to finish; a client stuck on a long download does not
        // hold up the exit.
        if tokio::time::timeout(Duration::from_secs(5), &mut self.server)
            .await
            .is_err()
        {
            eprintln!("osm-cloudsim: requests still open after 5 s; stopping anyway");
        }
        self.sim.hosts.stop_all().await;
        self.sim.save_now()?;
        if started.elapsed() > Duration::from_secs(2) {
            eprintln!("osm-cloudsim: shutdown took {:?}", started.elapsed());
        }
        Ok(())
    }
}

/// Loads or creates the state, binds the listener, starts the background tasks, restarts the
/// sshd of every conversion host, serves, and writes `clouds.yaml` once requests are answered.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| SimError::io(format!("creating {}", cfg.state_dir.display()), e))?;
    let state_path = cfg.state_dir.join("state.json");
    let (state, fresh) = match State::load(&state_path)? {
        Some(s) => (s, false),
        None => (State::bootstrap(), true),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| SimError::io(format!("binding {}", cfg.listen), e))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        base_url: format!("http://{addr}"),
        cfg,
        state: Mutex::new(state),
        saving: Mutex::new(()),
        dirty: Notify::new(),
        stopping: AtomicBool::new(false),
        faults: Faults::default(),
        requests: Mutex::new(BTreeMap::new()),
        hosts: HostManager::new(),
        dirty_volumes: Mutex::new(BTreeSet::new()),
    });
    sim.set_dirty_clouds(&sim.cfg.dirty_volumes)?;
    if fresh {
        sim.save_now()?;
    }
    tokio::spawn(persister(sim.clone()));

    let app = crate::http::app(sim.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    // Resume what was in flight when the previous process stopped, and bring conversion hosts up.
    crate::jobs::resume_all(&sim).await;
    wait_until_answering(addr).await;
    write_clouds_yaml(&sim)?;
    Ok(Running {
        addr,
        sim,
        shutdown: Some(tx),
        server,
    })
}

/// Runs until SIGTERM or SIGINT, then shuts down cleanly.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let running = start(cfg).await?;
    eprintln!(
        "osm-cloudsim: listening on {} (clouds.yaml: {})",
        running.sim.base_url,
        running.sim.cfg.state_dir.join("clouds.yaml").display()
    );
    wait_for_signal().await;
    eprintln!("osm-cloudsim: shutting down");
    running.shutdown().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Polls the listener until a TCP connection succeeds, so clouds.yaml appears only once the
/// server answers.
async fn wait_until_answering(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes the state file shortly after changes, coalescing bursts.
async fn persister(sim: Arc<Sim>) {
    loop {
        sim.dirty.notified().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if sim.stopping() {
            return;
        }
        let s = sim.clone();
        let res = tokio::task::spawn_blocking(move || s.save_now()).await;
        if let Ok(Err(e)) = res {
            eprintln!("osm-cloudsim: saving state: {e}");
        }
    }
}

/// `DIR/clouds.yaml` for openstacksdk, python-openstackclient and osm's modules.
pub fn write_clouds_yaml(sim: &Sim) -> Result<(), SimError> {
    let text = clouds_yaml(sim);
    state::write_atomic(&sim.cfg.state_dir.join("clouds.yaml"), text.as_bytes())
}

/// The clouds.yaml text. Per cloud: `<cloud>` (password auth, admin of the cloud's project),
/// `<cloud>-oidc` (`v3oidcpassword`: the user of the cloud's OpenID Connect provider, through its
/// discovery document) and `<cloud>-mfa` (`v3multifactor`: password and the fixed TOTP passcode);
/// see [`crate::identity`].
pub fn clouds_yaml(sim: &Sim) -> String {
    let st = sim.lock();
    let mut clouds = serde_yaml::Mapping::new();
    let mut add = |name: String, entry: serde_json::Value| {
        if let Ok(v) = serde_yaml::to_value(entry) {
            clouds.insert(serde_yaml::Value::String(name), v);
        }
    };
    for (name, cloud) in &st.clouds {
        let (user, project) = cloud.identity.main_user_and_project();
        let auth_url = format!("{}/{}/identity/v3", sim.base_url, name);
        let common = |auth_type: &str, auth: serde_json::Value| {
            serde_json::json!({
                "auth": auth,
                "auth_type": auth_type,
                "region_name": cloud.region,
                "interface": "public",
                "identity_api_version": 3,
                "volume_api_version": 3,
            })
        };
        let scope =
            serde_json::json!({"project_name": project.name, "project_domain_name": "Default"});
        let with_scope = |mut auth: serde_json::Value| {
            if let (Some(a), Some(s)) = (auth.as_object_mut(), scope.as_object()) {
                a.extend(s.clone());
            }
            auth
        };
        add(
            name.clone(),
            common(
                "password",
                with_scope(serde_json::json!({
                    "auth_url": auth_url,
                    "username": user.name,
                    "password": user.password,
                    "user_domain_name": "Default",
                })),
            ),
        );
        let fed = &cloud.identity.federation;
        if let Some((idp_user, idp_password)) = fed.user() {
            add(
                format!("{name}-oidc"),
                common(
                    "v3oidcpassword",
                    with_scope(serde_json::json!({
                        "auth_url": auth_url,
                        "identity_provider": crate::identity::IDENTITY_PROVIDER,
                        "protocol": crate::identity::PROTOCOL,
                        "discovery_endpoint": format!("{}/{}/idp/.well-known/openid-configuration", sim.base_url, name),
                        "client_id": crate::identity::CLIENT_ID,
                        "client_secret": fed.client_secret,
                        "username": idp_user,
                        "password": idp_password,
                    })),
                ),
            );
        }
        if let Some(passcode) = &user.totp_passcode {
            let mut mfa = common(
                "v3multifactor",
                with_scope(serde_json::json!({
                    "auth_url": auth_url,
                    "username": user.name,
                    "password": user.password,
                    "passcode": passcode,
                    "user_domain_name": "Default",
                })),
            );
            mfa["auth_methods"] = serde_json::json!(["v3password", "v3totp"]);
            add(format!("{name}-mfa"), mfa);
        }
    }
    let mut root = serde_yaml::Mapping::new();
    root.insert("clouds".into(), serde_yaml::Value::Mapping(clouds));
    let body = serde_yaml::to_string(&root).unwrap_or_default();
    format!(
        "# Written by osm-cloudsim for {}; rewritten at every start.\n{body}",
        sim.base_url
    )
}

/// Makes a directory and its parents.
pub fn mkdirs(p: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(p).map_err(|e| SimError::io(format!("creating {}", p.display()), e))
}
