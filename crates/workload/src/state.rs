//! The per-workload log and state files under `{{ os_migrate_data_dir }}/workload_logs/`.
//!
//! The log (`<name>.log`) is for people: one timestamped line per event, sync progress included. The
//! state (`<name>.state`) is JSON for programs and for recovery: the transfer id, every resource the
//! run created (recorded *before* the create call, then completed with its ID), the source volumes it
//! detached, and each volume's sync progress, rounds and proven root digest. Cleanup works from it
//! even when the module that created a resource crashed. Beside them, `<name>.<role>.manifest` holds
//! each volume's proven manifest (every chunk digest).
//!
//! The files are named after the workload, as upstream OS Migrate names them and operators look for
//! them, but a state belongs to the source server *id* (and the destination project) it records:
//! every step refuses a state of another server, and a later server of the same name sets the old
//! state aside as `<name>.<old source id>.state` and starts its own transfer.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::file::write_atomic;

/// Metadata key (volumes, snapshots, images, servers) carrying the transfer id.
pub const TRANSFER_KEY: &str = "osm_transfer_id";
/// Neutron tag prefix (ports, floating IPs) carrying the transfer id: `osm-transfer-<id>`.
pub const TRANSFER_TAG_PREFIX: &str = "osm-transfer-";
/// Prefix of the names of temporary resources: `osm-<transfer id>-...`.
pub const NAME_PREFIX: &str = "osm-";

/// What failed with the log or state files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory could not be written or read.
    #[error("workload files: {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not valid.
    #[error("workload state file {path} is damaged: {message}; move it aside to start this workload afresh")]
    Damaged {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The current UTC time as `2026-11-25T21:03:04Z`.
pub fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A new transfer id: 8 random hex digits.
pub fn new_transfer_id() -> String {
    random_hex::<4>()
}

/// A new digest seed: 16 random hex digits.
pub fn new_digest_seed() -> String {
    random_hex::<8>()
}

fn random_hex<const N: usize>() -> String {
    let mut buf = [0u8; N];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    if random.is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let x = t ^ (u128::from(std::process::id()) << 64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (x >> (8 * (i % 16))) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name stem for a workload: its name with `/` and control characters replaced, and the
/// start of the source ID appended when anything was replaced (so two names cannot collide).
pub fn file_stem(name: &str, source_id: &str) -> String {
    let mut changed = false;
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                changed = true;
                '_'
            } else {
                c
            }
        })
        .collect();
    if stem.starts_with('.') || stem.is_empty() {
        stem.insert(0, '_');
        changed = true;
    }
    if stem.len() > 200 {
        stem = stem.chars().take(100).collect();
        changed = true;
    }
    if changed {
        stem.push('-');
        stem.extend(source_id.chars().take(8));
    }
    stem
}

/// Where a workload's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `workload_logs/<stem>.log`.
    pub log: PathBuf,
    /// `workload_logs/<stem>.state`.
    pub state: PathBuf,
}

impl Paths {
    /// `workload_logs/<stem>.<role>.manifest`: a volume's proven manifest.
    pub fn manifest(&self, role: &str) -> PathBuf {
        let mut name = self
            .state
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        name.push(format!(".{role}.manifest"));
        self.state.with_file_name(name)
    }
}

impl Paths {
    /// `workload_logs/<stem>.<source id>.state`: where a state of another server of the same name is
    /// set aside, so that its record (what its transfer left) stays readable.
    pub fn superseded(&self, source_id: &str) -> PathBuf {
        let id: String = source_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let id = if id.is_empty() { "unknown".into() } else { id };
        let mut name = self
            .state
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        name.push(format!(".{id}.state"));
        self.state.with_file_name(name)
    }

    /// The files of the workload `name` (source ID `source_id`) under `data_dir`.
    pub fn new(data_dir: &Path, name: &str, source_id: &str) -> Paths {
        let dir = data_dir.join("workload_logs");
        let stem = file_stem(name, source_id);
        Paths {
            log: dir.join(format!("{stem}.log")),
            state: dir.join(format!("{stem}.state")),
        }
    }

    /// Creates `workload_logs/` (0750).
    pub fn create_dir(&self) -> Result<(), StateError> {
        let dir = self.log.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })
    }
}

/// The human log of one workload.
#[derive(Debug, Clone)]
pub struct Log {
    path: PathBuf,
}

impl Log {
    /// The log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Log {
        Log { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line `TIME [step] message`. Logging never fails a migration: an unwritable log is
    /// reported on stderr instead.
    pub fn line(&self, step: &str, message: &str) {
        let text = format!("{} [{step}] {}\n", now(), message.replace('\n', " | "));
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = r {
            eprintln!("cannot write {}: {e}: {text}", self.path.display());
        }
    }
}

/// Which cloud a resource lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The source cloud.
    Src,
    /// The destination cloud.
    Dst,
}

/// Kinds of resources a run creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Cinder snapshot.
    Snapshot,
    /// A Glance image.
    Image,
    /// A Cinder volume.
    Volume,
    /// A Neutron port.
    Port,
    /// A Neutron floating IP.
    FloatingIp,
    /// A Nova server.
    Server,
}

impl Kind {
    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Port => "port",
            Kind::FloatingIp => "floating IP",
            Kind::Server => "server",
        }
    }
}

/// A resource this run created (or is about to create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// Cloud.
    pub side: Side,
    /// Kind.
    pub kind: Kind,
    /// What it is for (`boot`, `data-0`, `port-1`, ...).
    pub role: String,
    /// The name it was created with.
    pub name: String,
    /// Its ID, once the create call returned.
    #[serde(default)]
    pub id: Option<String>,
    /// Removed by cleanup.
    #[serde(default)]
    pub deleted: bool,
}

/// A source volume the run detached from the source server, to re-attach in cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    /// The volume.
    pub volume_id: String,
    /// Its device on the source server.
    #[serde(default)]
    pub device: Option<String>,
    /// Attached back by cleanup.
    #[serde(default)]
    pub reattached: bool,
}

/// Sync progress of one volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Percent of the disk settled.
    pub percent: f64,
    /// Bytes settled (found equal, zeroed or written).
    pub bytes_done: u64,
    /// Bytes in all.
    pub bytes_total: u64,
    /// Bytes the destination agent read from its own disk.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes of data written to the destination.
    #[serde(default)]
    pub bytes_written: u64,
    /// Bytes that crossed the link between the conversion hosts.
    #[serde(default)]
    pub bytes_on_wire: u64,
    /// Data bytes per byte on the wire.
    #[serde(default)]
    pub compression_ratio: f64,
    /// Chunks the destination already held.
    #[serde(default)]
    pub chunks_equal: u64,
    /// Throughput over the disk.
    pub mib_per_s: f64,
    /// Seconds left, estimated.
    #[serde(default)]
    pub eta_s: Option<f64>,
}

/// Which part of a migration a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The whole migration with the source stopped: export, sync, create the server.
    #[default]
    Cold,
    /// A sync while the source runs, from snapshots; the destination volumes are kept.
    Precopy,
    /// Stop the source, sync what changed since the last pre-copy, create the server.
    Cutover,
}

impl Phase {
    /// Its name, as the role variable spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Cold => "cold",
            Phase::Precopy => "precopy",
            Phase::Cutover => "cutover",
        }
    }
}

/// A warm migration's record across its phases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Warm {
    /// Pre-copy rounds that finished.
    #[serde(default)]
    pub precopies: u32,
    /// When the last one finished.
    #[serde(default)]
    pub last_precopy_at: Option<String>,
    /// When this run's `prepare_cutover` readied both conversion hosts (device access, the agent,
    /// the link, the transfer directories) and attached the kept destination volumes: the steps
    /// after the stop skip those checks, so the downtime does not pay for them twice. Prelim
    /// clears it, so only a preparation of the same run counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared_at: Option<String>,
    /// The SSH login's home directory on each conversion host (by server ID), as that
    /// preparation found it: the steps after the stop connect without asking again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub homes: BTreeMap<String, String>,
}

/// One finished sync of a volume (a cold copy, a retry, a pre-copy round, a cutover delta).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRound {
    /// The phase it belonged to.
    #[serde(default)]
    pub phase: Phase,
    /// When it started.
    pub at: String,
    /// How long it took.
    pub seconds: f64,
    /// The disk's size.
    pub bytes_total: u64,
    /// Bytes of data written.
    pub bytes_written: u64,
    /// Bytes zeroed.
    pub bytes_zeroed: u64,
    /// Bytes that crossed the link.
    pub bytes_on_wire: u64,
    /// Chunks the destination already held.
    pub chunks_equal: u64,
    /// The root digest of the manifest both sides ended with.
    pub root: String,
    /// Whether the destination was read back and proven equal.
    pub verified: bool,
}

/// One volume's way from the source to the destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeTransfer {
    /// `boot` or `data-<n>` (n: position among the additional volumes).
    pub role: String,
    /// The source server's volume (none for an image-booted server's boot disk).
    #[serde(default)]
    pub source_volume_id: Option<String>,
    /// The volume exported on the source conversion host (a temporary copy, or the detached original).
    #[serde(default)]
    pub export_volume_id: Option<String>,
    /// Size in GiB.
    pub size_gib: u64,
    /// Device path on the source conversion host.
    #[serde(default)]
    pub src_device: Option<String>,
    /// NBD socket on the source conversion host.
    #[serde(default)]
    pub src_socket: Option<String>,
    /// The source disk's bytes less the free space its export's sparsify found (none when the
    /// export did not say): what the sync reads, and sizes its SSH connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// The destination volume.
    #[serde(default)]
    pub dst_volume_id: Option<String>,
    /// Device path on the destination conversion host.
    #[serde(default)]
    pub dst_device: Option<String>,
    /// The sync finished.
    #[serde(default)]
    pub copied: bool,
    /// The destination was read back and its manifest proven equal to the source's.
    #[serde(default)]
    pub verified: bool,
    /// The root digest of the last sync's manifest.
    #[serde(default)]
    pub root_digest: Option<String>,
    /// The last sync's manifest, next to the state file.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Sync progress.
    #[serde(default)]
    pub progress: Progress,
    /// Every finished sync of this volume, oldest first.
    #[serde(default)]
    pub rounds: Vec<SyncRound>,
}

/// Where a workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A run is (or was, if it crashed) in progress.
    #[default]
    Running,
    /// The last run failed.
    Failed,
    /// Migrated.
    Done,
    /// Not migrated: already in the destination, or the conversion host itself.
    Skipped,
    /// A pre-copy round finished: the destination volumes hold the source as of its snapshots,
    /// and wait for the next round or the cutover.
    Precopied,
    /// A warm migration given up: what its pre-copies kept was deleted.
    Abandoned,
}

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Workload name.
    pub workload: String,
    /// Source server ID: the state belongs to this server, whatever its name.
    pub source_id: String,
    /// The destination project the transfer creates its resources in (none in states written before
    /// osm recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_project_id: Option<String>,
    /// The transfer id naming and tagging everything this run creates.
    pub transfer_id: String,
    /// The seed of this transfer's chunk digests (16 hex digits), drawn at random so that no guest
    /// can craft chunks whose digests collide; every sync of the transfer uses it, so the rounds'
    /// manifests compare.
    #[serde(default)]
    pub digest_seed: Option<String>,
    /// Where the workload is.
    pub status: Status,
    /// The step running or last run.
    #[serde(default)]
    pub step: Option<String>,
    /// The last failure's message.
    #[serde(default)]
    pub error: Option<String>,
    /// When the run started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Last write.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Everything created.
    #[serde(default)]
    pub created: Vec<Created>,
    /// Source volumes detached from the source server.
    #[serde(default)]
    pub detached: Vec<Detached>,
    /// Per-volume transfer.
    #[serde(default)]
    pub volumes: Vec<VolumeTransfer>,
    /// The destination server, once created.
    #[serde(default)]
    pub dst_server_id: Option<String>,
    /// Set once a pre-copy ran: a warm migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<Warm>,
    /// When this run asked the source server to stop (seconds since the epoch), the start of the
    /// downtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested_at: Option<f64>,
    /// From the stop request to the destination server ACTIVE, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_s: Option<f64>,
    /// The conversion-host pair the workload runs on: a retry goes back to it (its kept volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_host_pair: Option<String>,
}

impl State {
    /// Whether this state is the record of the source server `source_id` (a state without a source
    /// server belongs to none).
    pub fn belongs_to(&self, source_id: &str) -> bool {
        !self.source_id.is_empty() && self.source_id == source_id
    }

    /// Reads the state at `path`, or None when there is none.
    pub fn load(path: &Path) -> Result<Option<State>, StateError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StateError::Damaged {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the state atomically (mode 0640).
    pub fn save(&mut self, path: &Path) -> Result<(), StateError> {
        self.updated_at = Some(now());
        let text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Damaged {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomic(path, &text, 0o640).map_err(|source| StateError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The name of a temporary resource of this transfer.
    pub fn temp_name(&self, role: &str) -> String {
        format!("{NAME_PREFIX}{}-{role}", self.transfer_id)
    }

    /// The Neutron tag of this transfer.
    pub fn tag(&self) -> String {
        format!("{TRANSFER_TAG_PREFIX}{}", self.transfer_id)
    }

    /// The recorded resource of that side, kind and role, if any.
    pub fn created(&self, side: Side, kind: Kind, role: &str) -> Option<&Created> {
        self.created
            .iter()
            .find(|c| c.side == side && c.kind == kind && c.role == role && !c.deleted)
    }

    /// Records that a resource is about to be created (before the create call).
    pub fn plan(&mut self, side: Side, kind: Kind, role: &str, name: &str) {
        if self.created(side, kind, role).is_none() {
            self.created.push(Created {
                side,
                kind,
                role: role.into(),
                name: name.into(),
                id: None,
                deleted: false,
            });
        }
    }

    /// Records the ID of a planned resource.
    pub fn set_id(&mut self, side: Side, kind: Kind, role: &str, id: &str) {
        if let Some(c) = self
            .created
            .iter_mut()
            .find(|c| c.side == side && c.kind == kind && c.role == role && !c.deleted)
        {
            c.id = Some(id.to_string());
        }
    }

    /// The transfer of a volume role, created if missing.
    pub fn volume_mut(&mut self, role: &str) -> &mut VolumeTransfer {
        if let Some(i) = self.volumes.iter().position(|v| v.role == role) {
            return &mut self.volumes[i];
        }
        self.volumes.push(VolumeTransfer {
            role: role.to_string(),
            ..VolumeTransfer::default()
        });
        let last = self.volumes.len() - 1;
        &mut self.volumes[last]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(file_stem("web-01", "abcdef123456"), "web-01");
        assert_eq!(file_stem("web 01; $(id)", "abcdef123456"), "web 01; $(id)");
        assert_eq!(file_stem("a/b", "abcdef123456"), "a_b-abcdef12");
        assert_ne!(
            file_stem("a/b", "abcdef123456"),
            file_stem("a_b", "abcdef123456")
        );
        assert_eq!(file_stem("../etc", "abcdef123456"), "_.._etc-abcdef12");
        assert_eq!(file_stem("x\ny", "0123456789"), "x_y-01234567");
    }

    #[test]
    fn a_state_belongs_to_its_source_id_only_and_is_set_aside_by_it() {
        let s = State {
            source_id: "abc-1".into(),
            ..State::default()
        };
        assert!(s.belongs_to("abc-1"));
        assert!(!s.belongs_to("abc-2"));
        assert!(!State::default().belongs_to(""), "no source: nobody's");
        let p = Paths::new(Path::new("/d"), "web 01", "abc-2");
        assert_eq!(p.state, Path::new("/d/workload_logs/web 01.state"));
        assert_eq!(
            p.superseded("abc-1"),
            Path::new("/d/workload_logs/web 01.abc-1.state")
        );
        assert_eq!(
            p.superseded("../x"),
            Path::new("/d/workload_logs/web 01.___x.state")
        );
        assert_eq!(
            p.superseded(""),
            Path::new("/d/workload_logs/web 01.unknown.state")
        );
    }

    #[test]
    fn time_format() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }

    #[test]
    fn transfer_ids_are_hex_and_differ() {
        let a = new_transfer_id();
        let b = new_transfer_id();
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn plan_then_id_then_reload() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("w.state");
        let mut s = State {
            workload: "w".into(),
            source_id: "id".into(),
            transfer_id: "0badf00d".into(),
            ..State::default()
        };
        s.plan(Side::Src, Kind::Snapshot, "boot", &s.temp_name("boot"));
        s.plan(Side::Src, Kind::Snapshot, "boot", "again");
        assert_eq!(s.created.len(), 1);
        s.set_id(Side::Src, Kind::Snapshot, "boot", "snap-1");
        s.volume_mut("boot").size_gib = 3;
        s.save(&path).expect("save");
        let back = State::load(&path).expect("load").expect("present");
        assert_eq!(back.created[0].name, "osm-0badf00d-boot");
        assert_eq!(back.created[0].id.as_deref(), Some("snap-1"));
        assert_eq!(back.volumes[0].size_gib, 3);
        assert!(State::load(&dir.path().join("none")).expect("ok").is_none());
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(
            State::load(&path),
            Err(StateError::Damaged { .. })
        ));
    }
}
