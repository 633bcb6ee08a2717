//! Reading, validating and writing the workloads file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::{Server, FLOATING_IP_TYPE, PORT_TYPE, SERVER_TYPE, VOLUME_TYPE};

/// The `os_migrate_version` osm writes: upstream OS Migrate's loader accepts a file only when this
/// equals its own version exactly, and 1.0.5 (also the version of upstream's main branch) is the
/// newest. Files of every upstream 1.x version are read; each written file says 1.0.5.
pub const FORMAT_VERSION: &str = "1.0.5";

/// What is wrong with a workloads file. Each variant names the file, and where it applies the
/// resource (by name, or by position when it has no usable name) and the key path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read workloads file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("workloads file {path} is not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A top-level key is missing or has the wrong shape.
    #[error("workloads file {path}: {message}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A resource has a missing key or a wrong value.
    #[error("workloads file {path}: resource {resource}: {key_path}: {message}")]
    Resource {
        /// The file.
        path: PathBuf,
        /// `'name' (resources[3])` or `resources[3]`.
        resource: String,
        /// The key path inside the resource, like `params.flavor_ref.name`.
        key_path: String,
        /// What is wrong.
        message: String,
    },
    /// Two servers have the same name, which the destination cannot tell apart.
    #[error("workloads file {path}: servers resources[{first}] and resources[{second}] have the same name '{name}'; server names must be unique")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
        /// Index of the first.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// The file could not be written.
    #[error("cannot write workloads file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content could not be serialized (a value YAML cannot hold).
    #[error("cannot serialize workloads file {path}: {message}")]
    Serialize {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// A workloads file: a version and the servers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadsFile {
    /// `os_migrate_version` as found (or [`FORMAT_VERSION`] for a new file); writing always writes
    /// [`FORMAT_VERSION`].
    pub os_migrate_version: String,
    /// The servers, in file order.
    pub resources: Vec<Server>,
}

impl Default for WorkloadsFile {
    fn default() -> WorkloadsFile {
        WorkloadsFile {
            os_migrate_version: FORMAT_VERSION.to_string(),
            resources: Vec::new(),
        }
    }
}

impl WorkloadsFile {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<WorkloadsFile, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.into(),
            source,
        })?;
        WorkloadsFile::parse(path, &text)
    }

    /// Reads the file if it exists, or starts an empty one.
    pub fn load_or_new(path: &Path) -> Result<WorkloadsFile, FileError> {
        if path.exists() {
            WorkloadsFile::load(path)
        } else {
            Ok(WorkloadsFile::default())
        }
    }

    /// Parses and validates file content; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<WorkloadsFile, FileError> {
        let layout = |message: String| FileError::Layout {
            path: path.into(),
            message,
        };
        let doc: Value = serde_yaml::from_str(text).map_err(|e| FileError::Yaml {
            path: path.into(),
            message: e.to_string(),
        })?;
        let Value::Object(top) = doc else {
            return Err(layout(
                "the file must be a mapping with keys os_migrate_version and resources".into(),
            ));
        };
        let version = match top.get("os_migrate_version") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(layout("os_migrate_version must be a version string".into())),
            None => return Err(layout("missing key os_migrate_version".into())),
        };
        let items = match top.get("resources") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) => {
                return Ok(WorkloadsFile {
                    os_migrate_version: version,
                    resources: vec![],
                })
            }
            Some(_) => return Err(layout("resources must be a list".into())),
            None => return Err(layout("missing key resources".into())),
        };
        let mut resources = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            resources.push(parse_server(path, i, item)?);
        }
        for (i, a) in resources.iter().enumerate() {
            if let Some(j) = resources[..i]
                .iter()
                .position(|b| b.params.name == a.params.name)
            {
                return Err(FileError::DuplicateName {
                    path: path.into(),
                    name: a.params.name.clone(),
                    first: j,
                    second: i,
                });
            }
        }
        Ok(WorkloadsFile {
            os_migrate_version: version,
            resources,
        })
    }

    /// Adds `server`, or replaces the server with the same `_info.id`. Returns whether the content
    /// changed.
    pub fn add_or_replace(&mut self, server: Server) -> bool {
        match self
            .resources
            .iter_mut()
            .find(|r| r.kind == server.kind && r.info.id == server.info.id)
        {
            Some(existing) if *existing == server => false,
            Some(existing) => {
                *existing = server;
                true
            }
            None => {
                self.resources.push(server);
                true
            }
        }
    }

    /// The file content: YAML with every mapping's keys sorted, so that equal content is equal text.
    pub fn to_yaml(&self, path: &Path) -> Result<String, FileError> {
        let ser = |message: String| FileError::Serialize {
            path: path.into(),
            message,
        };
        let resources = serde_json::to_value(&self.resources).map_err(|e| ser(e.to_string()))?;
        let mut top = Map::new();
        top.insert(
            "os_migrate_version".into(),
            Value::String(FORMAT_VERSION.to_string()),
        );
        top.insert("resources".into(), resources);
        serde_yaml::to_string(&sorted(Value::Object(top))).map_err(|e| ser(e.to_string()))
    }

    /// Writes the file if its content differs from what is on disk; returns whether it wrote.
    /// The write is atomic (a temporary file in the same directory, then rename) and the file's
    /// mode is 0600: it holds servers' user data, which often carries passwords and keys. A file
    /// left readable by others (written by an older release, or by hand) is narrowed even when its
    /// content stays.
    pub fn save(&self, path: &Path) -> Result<bool, FileError> {
        use std::os::unix::fs::PermissionsExt;
        let text = self.to_yaml(path)?;
        let write_err = |source| FileError::Write {
            path: path.into(),
            source,
        };
        if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
            let mode = std::fs::metadata(path)
                .map_err(write_err)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(WORKLOADS_MODE))
                    .map_err(write_err)?;
            }
            return Ok(false);
        }
        write_atomic(path, text.as_bytes(), WORKLOADS_MODE).map_err(|source| FileError::Write {
            path: path.into(),
            source,
        })?;
        Ok(true)
    }
}

/// The mode of workloads.yml: its owner's alone (user data carries secrets).
const WORKLOADS_MODE: u32 = 0o600;

/// Rebuilds every mapping with its keys in sorted order, whatever map type serde_json was built with.
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Writes `data` to `path` atomically with `mode`: a reader sees the old file or the new one, never
/// half of one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parse_server(path: &Path, index: usize, item: &Value) -> Result<Server, FileError> {
    let name = item
        .pointer("/params/name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty());
    let resource = match name {
        Some(n) => format!("'{n}' (resources[{index}])"),
        None => format!("resources[{index}]"),
    };
    let err = |key_path: &str, message: String| FileError::Resource {
        path: path.into(),
        resource: resource.clone(),
        key_path: key_path.to_string(),
        message,
    };
    if !item.is_object() {
        return Err(err("", "a resource must be a mapping".into()));
    }
    check_type(item, "type", SERVER_TYPE).map_err(|m| err("type", m))?;
    match item.pointer("/params/name") {
        None => return Err(err("params.name", "missing key".into())),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(err("params.name", "a server name must not be empty".into()))
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(err("params.name", "must be a string".into())),
    }
    for (list, want) in [
        ("ports", PORT_TYPE),
        ("floating_ips", FLOATING_IP_TYPE),
        ("volumes", VOLUME_TYPE),
    ] {
        if let Some(Value::Array(items)) = item.pointer(&format!("/params/{list}")) {
            for (j, sub) in items.iter().enumerate() {
                check_type(sub, "type", want)
                    .map_err(|m| err(&format!("params.{list}[{j}].type"), m))?;
            }
        }
    }
    serde_path_to_error::deserialize::<_, Server>(item).map_err(|e| {
        let key_path = e.path().to_string();
        let message = e.into_inner().to_string();
        err(&key_path, message)
    })
}

fn check_type(item: &Value, key: &str, want: &str) -> Result<(), String> {
    match item.get(key) {
        None => Err("missing key".into()),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(Value::String(s)) => Err(format!("unknown type '{s}', expected '{want}'")),
        Some(_) => Err(format!("must be the string '{want}'")),
    }
}
